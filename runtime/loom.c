/*
** loom.c: the runtime's lifetime inside a lua_State (loom_open, the
** finalizer that closes it with the state) and the public C entry points
** that drive the loop (loom_spawn, loom_run, reporting).
*/
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

static const char runtime_key = 0;  /* registry: the runtime's userdata */

void loom__push_box(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &runtime_key);
}

void loom__setfuncs(lua_State *L, const luaL_Reg *fns) {
  for (; fns->name != NULL; fns++) {
    loom__push_box(L);
    lua_pushcclosure(L, fns->func, 1);
    lua_setfield(L, -2, fns->name);
  }
}

void loom__keep_metatable(lua_State *L, const void **mt, int *ref) {
  *mt = lua_topointer(L, -1);
  lua_pushvalue(L, -1);
  *ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

static void default_report(loom_t *lm, const char *report, void *ud) {
  (void)lm; (void)ud;
  fprintf(stderr, "loom: %s\n", report);
  fflush(stderr);
}

/* ---- closing -------------------------------------------------------- */

static void free_runtime(loom_t *lm) {
  loom__timer_free(lm);
  free(lm);
}

static void on_handle_closed(uv_handle_t *h) {
  loom_t *lm = h->data;
  if (--lm->closing == 0 && !lm->owns_loop) free_runtime(lm);
}

/* __gc of the runtime's userdata: runs when the state closes. */
static int runtime_gc(lua_State *L) {
  loom__box *box = lua_touserdata(L, 1);
  loom_t *lm = box->lm;
  if (lm == NULL) return 0;
  uv_handle_t *handles[] = {
    (uv_handle_t *)&lm->check, (uv_handle_t *)&lm->idle,
    loom__timer_handle(lm)
  };
  box->lm = NULL;
  loom__sched_close(lm);
  loom__timer_close(lm);
  lm->closing = 3;
  for (int i = 0; i < 3; i++) {
    handles[i]->data = lm;
    uv_close(handles[i], on_handle_closed);
  }
  if (lm->owns_loop) {
    uv_run(lm->loop, UV_RUN_DEFAULT);  /* lets the close callbacks run */
    uv_loop_close(lm->loop);
    free_runtime(lm);
  }
  /* else: freed by the last close callback, when the host runs its loop */
  return 0;
}

/* ---- opening -------------------------------------------------------- */

static int new_registry_table(lua_State *L, const char *mode) {
  lua_newtable(L);
  if (mode != NULL) {
    lua_createtable(L, 0, 1);
    lua_pushstring(L, mode);
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
  }
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

loom_t *loom_get(lua_State *L) {
  loom__box *box;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &runtime_key);
  box = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return box ? box->lm : NULL;
}

uv_loop_t *loom_loop(loom_t *lm) {
  return lm->loop;
}

loom_t *loom_open(lua_State *L, uv_loop_t *loop) {
  if (loom_get(L) != NULL) return NULL;
  loom_t *lm = calloc(1, sizeof *lm);
  if (lm == NULL) return NULL;
  if (loop == NULL) {
    if (uv_loop_init(&lm->own_loop) != 0) {
      free(lm);
      return NULL;
    }
    loop = &lm->own_loop;
    lm->owns_loop = 1;
  }
  lm->loop = loop;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  lm->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  /* loom owns the extra space: threads created from now on copy this */
  *(loom_t **)lua_getextraspace(lm->L) = lm;
  lm->report = default_report;
  loom__sched_init(lm);
  loom__timer_init(lm);

  loom__box *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->lm = lm;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, runtime_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &runtime_key);

  lm->live_ref = new_registry_table(L, NULL);
  lm->pool_ref = new_registry_table(L, NULL);
  lm->failed_ref = new_registry_table(L, "k");

  loom__open_error(L);
  loom__open_task(L, lm);
  loom__open_coroutine(L);
  loom__open_os(L);
  loom__open_preload(L);
  loom__open_api(L, lm);  /* pushes the module table */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "loom");
  lua_pop(L, 1);
  return lm;
}

void loom_openglobals(lua_State *L) {
  static const char *const names[] = {
    "sleep", "create_task", "spawn", "gather", "async", "await", NULL
  };
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "loom");
  lua_pushvalue(L, -1);
  lua_setglobal(L, "loom");
  for (int i = 0; names[i] != NULL; i++) {
    lua_getfield(L, -1, names[i]);
    lua_setglobal(L, names[i]);
  }
  lua_pop(L, 2);
}

void loom_set_report(loom_t *lm, loom_report_fn fn, void *ud) {
  lm->report = fn ? fn : default_report;
  lm->report_ud = fn ? ud : NULL;
}

int loom_report_unretrieved(loom_t *lm) {
  return loom__report_failures(lm);
}

int loom_reported_total(loom_t *lm) {
  return lm->reported_total;
}

int loom_exit_code(loom_t *lm, int *close_state) {
  if (close_state) *close_state = lm->exit_close;
  return lm->exit_code;
}

/* ---- running -------------------------------------------------------- */

int loom_spawn(lua_State *L, int nargs) {
  loom_t *lm = loom_get(L);
  int fn = lua_gettop(L) - nargs;
  if (lm == NULL || fn < 1) return UV_EINVAL;
  if (!lua_isfunction(L, fn)) {
    if (luaL_getmetafield(L, fn, "__call") == LUA_TNIL) return UV_EINVAL;
    lua_pop(L, 1);
  }
  loom__spawn(L, lm, nargs);
  return 0;
}

static int main_outcome(lua_State *L, loom_t *lm, loom_task_t *t, int idx,
                        int *nresults) {
  int n;
  switch (t->state) {
    case LOOM_DONE:
      n = loom__task_results(L, lm, t, idx);
      lua_remove(L, idx);
      if (nresults) *nresults = n;
      return 0;
    case LOOM_FAILED:
    case LOOM_CANCELLED:
      t->flags |= LOOM_TF_RETRIEVED;
      lua_getiuservalue(L, idx, 1);  /* the record */
      lua_rawgeti(L, -1, LOOM_REC_ERROR);
      lua_rawgeti(L, -2, LOOM_REC_TRACEBACK);  /* a string or nil */
      lua_remove(L, -3);
      lua_remove(L, idx);
      return LOOM_EFAILED;
    default:
      (void)lm;
      lua_pushfstring(L, "deadlock: the main task waits on %s, and nothing "
                      "left to run can wake it",
                      t->wait ? t->wait->what : "something");
      lua_remove(L, idx);
      return LOOM_EDEADLOCK;
  }
}

int loom_run(lua_State *L, int *nresults) {
  loom_t *lm = loom_get(L);
  loom_task_t *t = lm ? loom__totask(L, lm, -1) : NULL;
  int idx = lua_gettop(L);
  if (nresults) *nresults = 0;
  if (lm == NULL || lm->running || lm->current) return UV_EBUSY;
  if (!lua_checkstack(lm->L, LUA_MINSTACK))  /* the scheduler's scratch */
    return UV_ENOMEM;
  if (t) t->flags |= LOOM_TF_MAIN;
  lm->running = 1;
  lm->stopping = 0;
  lm->exit_requested = 0;
  uv_run(lm->loop, UV_RUN_DEFAULT);
  lm->running = 0;
  if (t) t->flags &= ~LOOM_TF_MAIN;
  if (lm->exit_requested) {
    /* as lua.c's os.exit(code, true) closes the main chunk's pending
    ** <close> variables: close the main task's */
    if (t && lm->exit_close && t->thread) lua_resetthread(t->thread);
    if (t) lua_remove(L, idx);
    return LOOM_EEXIT;
  }
  return t ? main_outcome(L, lm, t, idx, nresults) : 0;
}

/* ---- for hosts that drive a prompt (the loom REPL) ------------------ */

lua_State *loom_running(loom_t *lm) {
  return lm->current != NULL ? lm->inner : NULL;
}

int loom_task_outcome(lua_State *L, int idx, int *nresults) {
  loom_t *lm = loom_get(L);
  loom_task_t *t = lm ? loom__totask(L, lm, idx) : NULL;
  if (nresults) *nresults = 0;
  if (t == NULL) return UV_EINVAL;
  if (t->state < LOOM_DONE) return UV_EAGAIN;
  idx = lua_absindex(L, idx);
  if (t->state == LOOM_DONE) {
    int n = loom__task_results(L, lm, t, idx);  /* cannot raise: done */
    if (nresults) *nresults = n;
    return 0;
  }
  t->flags |= LOOM_TF_RETRIEVED;
  lua_getiuservalue(L, idx, 1);  /* the record */
  lua_rawgeti(L, -1, LOOM_REC_ERROR);
  lua_rawgeti(L, -2, LOOM_REC_TRACEBACK);  /* a string or nil */
  lua_remove(L, -3);
  return LOOM_EFAILED;
}

int loom_cancel_all(loom_t *lm) {
  lua_State *L = lm->L;
  int n = 0;
  /* cancel hooks only unlink and queue: the live table stays as it is */
  lua_rawgeti(L, LUA_REGISTRYINDEX, lm->live_ref);
  for (uint32_t i = 1; i <= lm->live_count; i++) {
    lua_rawgeti(L, -1, (lua_Integer)i);
    loom_task_t *t = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (t != NULL && t != lm->current && loom__task_cancel(lm, t)) n++;
  }
  lua_pop(L, 1);
  return n;
}
