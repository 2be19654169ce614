/*
** loom.c: the runtime's lifetime inside a lua_State (loom_open; the
** finalizer that closes it with the state; the bindings' teardown steps)
** and the public C entry points that drive the loop (loom_spawn, loom_run,
** reporting). What else hosts get is in host.c and post.c.
*/
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

static const char runtime_key = 0;  /* registry: the runtime's box */

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

static void default_report(loom_t *lm, const char *report, void *ud) {
  (void)lm; (void)ud;
  fprintf(stderr, "loom: %s\n", report);
  fflush(stderr);
}

/* ---- closing -------------------------------------------------------- */

static void free_runtime(loom_t *lm) {
  loom__deadline_free(lm);
  free(lm->live_free);
  lm->live_free = NULL;
  loom__post_free(lm);  /* lm itself, unless a thread still holds it */
}

void loom__hold(loom_t *lm) {
  lm->holds++;
}

void loom__release(loom_t *lm) {
  /* with its own loop, the runtime is freed by whoever ran it dry */
  if (--lm->holds == 0 && lm->closed && !lm->owns_loop) free_runtime(lm);
}

int loom__closed(loom_t *lm) {
  return lm->closed;
}

typedef struct closing {
  loom_t *lm;
  uv_close_cb cb;
  void *data;
} closing;

static void on_closed(uv_handle_t *h) {
  closing *c = h->data;
  h->data = c->data;
  if (c->cb != NULL) c->cb(h);
  loom__release(c->lm);
  free(c);
}

void loom__close_handle(loom_t *lm, uv_handle_t *h, uv_close_cb cb) {
  closing *c = malloc(sizeof *c);
  if (c == NULL) {  /* not counted: the runtime may be gone before cb */
    uv_close(h, cb);
    return;
  }
  c->lm = lm;
  c->cb = cb;
  c->data = h->data;
  h->data = c;
  loom__hold(lm);
  uv_close(h, on_closed);
}

void loom__add_closer(loom_t *lm, loom__closer *c) {
  c->next = lm->closers.next;
  c->prev = &lm->closers;
  lm->closers.next->prev = c;
  lm->closers.next = c;
}

void loom__remove_closer(loom__closer *c) {
  if (c->next == NULL) return;
  c->next->prev = c->prev;
  c->prev->next = c->next;
  c->next = c->prev = NULL;
}

/* Closes every handle loom opened and frees the runtime once libuv is
** done with them: at once with a private loop (unless that loop is
** running: os.exit from inside it, where the process ends next), or in
** the last close callback when the host next runs its loop. */
static void close_runtime(loom_t *lm) {
  lm->closed = 1;
  loom__close_tasks(lm);  /* their <close> variables run */
  while (lm->closers.next != &lm->closers) {
    loom__closer *c = lm->closers.next;
    loom__remove_closer(c);
    c->close(lm, c);
  }
  loom__sched_close(lm);
  loom__deadline_close(lm);
  if (!lm->owns_loop) {
    loom__hold(lm);
    loom__release(lm);  /* frees it if nothing was left to close */
    return;
  }
  if (lm->running) return;
  uv_run(lm->loop, UV_RUN_DEFAULT);  /* lets the close callbacks run */
  uv_loop_close(lm->loop);
  free_runtime(lm);
}

/* __gc of the runtime's box: runs when the state closes. */
static int runtime_gc(lua_State *L) {
  loom__box *box = lua_touserdata(L, 1);
  loom_t *lm = box->lm;
  if (lm == NULL) return 0;
  box->lm = NULL;
  close_runtime(lm);
  return 0;
}

/* ---- opening -------------------------------------------------------- */

static int new_registry_table(lua_State *L) {
  lua_newtable(L);
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

LOOM_API loom_t *loom_get(lua_State *L) {
  loom__box *box;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &runtime_key);
  box = lua_type(L, -1) == LUA_TUSERDATA ? lua_touserdata(L, -1) : NULL;
  lua_pop(L, 1);
  return box ? box->lm : NULL;
}

LOOM_API uv_loop_t *loom_loop(loom_t *lm) {
  return lm->loop;
}

LOOM_API lua_State *loom_lua(loom_t *lm) {
  return lm->L;
}

/* The Lua side of loom_open, under pcall: [lm] -> the module table. */
static int open_protected(lua_State *L) {
  loom_t *lm = lua_touserdata(L, 1);
  loom__box *box = lua_newuserdatauv(L, sizeof *box, 1);
  box->lm = NULL;  /* set once the rest is made: a failure frees nothing */
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, runtime_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, LOOM_RUNTIME_FIELD);  /* for loom.so */
  lua_rawsetp(L, LUA_REGISTRYINDEX, &runtime_key);

  lm->live_ref = new_registry_table(L);
  lm->pool_ref = new_registry_table(L);
  loom__open_error(L, lm);
  loom__open_task(L, lm);
  loom__open_coroutine(L);
  loom__open_os(L);
  loom__open_preload(L);
  box->lm = lm;   /* loom.timer's opener asks for the runtime */
  loom__open_api(L, lm);  /* pushes the module table */
  loom__push_box(L);
  lua_pushvalue(L, -2);
  lua_setiuservalue(L, -2, 1);  /* the box keeps the module */
  lua_pop(L, 1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "loom");
  lua_pop(L, 1);
  return 1;
}

/* Undoes a loom_open that failed after its loop was ready. */
static void abandon(loom_t *lm) {
  close_runtime(lm);
}

/* Whether L's state has a runtime, made by this copy of loom or another
** one (loom.so beside a libloom linked into the host). */
static int has_runtime(lua_State *L) {
  int t = lua_getfield(L, LUA_REGISTRYINDEX, LOOM_RUNTIME_FIELD);
  lua_pop(L, 1);
  return loom_get(L) != NULL || t != LUA_TNIL;
}

LOOM_API loom_t *loom_open(lua_State *L, uv_loop_t *loop) {
  if (!lua_checkstack(L, LUA_MINSTACK) || has_runtime(L)) return NULL;
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
  lm->report = default_report;
  lm->closers.next = lm->closers.prev = &lm->closers;
  loom__list_init(&lm->failures);
  lm->loop_thread = uv_thread_self();
  loom__open_calls(lm);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  lm->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  if (loom__sched_init(lm) != 0) {
    abandon(lm);
    return NULL;
  }
  if (loom__deadline_init(lm) != 0 || loom__post_init(lm) != 0) {
    abandon(lm);
    return NULL;
  }
  /* loom owns the extra space: threads created from now on copy this */
  uintptr_t old_xs = *loom__xs(lm->L);
  *loom__xs(lm->L) = (uintptr_t)lm;
  lua_pushcfunction(L, open_protected);
  lua_pushlightuserdata(L, lm);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    lua_pop(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &runtime_key);  /* the box, if made */
    if (lua_type(L, -1) == LUA_TUSERDATA)
      ((loom__box *)lua_touserdata(L, -1))->lm = NULL;
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &runtime_key);
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, LOOM_RUNTIME_FIELD);
    *loom__xs(lm->L) = old_xs;
    abandon(lm);
    return NULL;
  }
  return lm;
}

static int openglobals_protected(lua_State *L) {
  static const char *const names[] = {
    "sleep", "create_task", "spawn", "gather", "async", "await", NULL
  };
  loom__push_box(L);
  lua_getiuservalue(L, -1, 1);  /* the module, even if package.loaded
                                   lost it */
  lua_pushvalue(L, -1);
  lua_setglobal(L, "loom");
  for (int i = 0; names[i] != NULL; i++) {
    lua_getfield(L, -1, names[i]);
    lua_setglobal(L, names[i]);
  }
  return 0;
}

LOOM_API int loom_openglobals(lua_State *L) {
  if (loom_get(L) == NULL) return UV_EINVAL;
  if (!lua_checkstack(L, 1)) return UV_ENOMEM;
  lua_pushcfunction(L, openglobals_protected);
  int r = lua_pcall(L, 0, 0, 0);
  if (r != LUA_OK) {
    lua_pop(L, 1);
    return r == LUA_ERRMEM ? UV_ENOMEM : LOOM_EFAILED;
  }
  return 0;
}

LOOM_API void loom_set_report(loom_t *lm, loom_report_fn fn, void *ud) {
  lm->report = fn ? fn : default_report;
  lm->report_ud = fn ? ud : NULL;
}

static int report_protected(lua_State *L) {
  lua_pushinteger(L, loom__report_failures(lua_touserdata(L, 1)));
  return 1;
}

LOOM_API int loom_report_unretrieved(loom_t *lm) {
  lua_State *L = lm->L;
  int n;
  if (!lua_checkstack(L, 2)) {
    lm->report(lm, "not enough memory to report failures", lm->report_ud);
    return 0;
  }
  lua_pushcfunction(L, report_protected);
  lua_pushlightuserdata(L, lm);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {  /* out of memory: report that */
    lm->report(lm, "not enough memory to report failures", lm->report_ud);
    lua_pop(L, 1);
    return 0;
  }
  n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return n;
}

LOOM_API int loom_reported_total(loom_t *lm) {
  return lm->reported_total;
}

LOOM_API int loom_exit_code(loom_t *lm, int *close_state) {
  if (close_state) *close_state = lm->exit_close;
  return lm->exit_code;
}

/* ---- running -------------------------------------------------------- */

/* [fn, args...] -> [task], under pcall */
static int spawn_protected(lua_State *L) {
  loom__spawn(L, loom_get(L), lua_gettop(L) - 1, "loom_spawn");
  return 1;
}

LOOM_API int loom_spawn(lua_State *L, int nargs) {
  loom_t *lm = loom_get(L);
  int fn = lua_gettop(L) - nargs;
  if (lm == NULL || fn < 1 || nargs < 0) return UV_EINVAL;
  if (!lua_checkstack(L, 3)) return UV_ENOMEM;
  if (!loom__iscallable(L, fn)) return UV_EINVAL;
  lua_pushcfunction(L, spawn_protected);
  lua_insert(L, fn);
  if (lua_pcall(L, nargs + 1, 1, 0) != LUA_OK) {
    lua_pop(L, 1);
    return UV_ENOMEM;
  }
  return 0;
}

/* The deadlock message for the main task t, which still waits. */
static void push_deadlock(lua_State *L, loom_task_t *t) {
  int top = lua_gettop(L);
  lua_pushfstring(L, "deadlock: the main task waits on %s",
                  t->wait ? t->wait->what : "something");
  if (t->wait && t->wait->describe)
    t->wait->describe(L, t, t->wait_data);
  if (loom__push_where(L, t)) {
    lua_pushliteral(L, " at ");
    lua_insert(L, -2);
  }
  lua_pushliteral(L, ", and nothing left to run can wake it");
  loom__push_waiting(L, loom__task_loom(t), t, "\n  also waiting: ");
  lua_concat(L, lua_gettop(L) - top);
}

/* [task] -> [code, results or error and traceback or message], under
** pcall: how the main task ended. */
static int outcome_protected(lua_State *L) {
  loom_t *lm = loom_get(L);
  loom_task_t *t = lua_touserdata(L, 1);
  loom__failure *f;
  switch (t->state) {
    case LOOM_DONE:
      lua_pushinteger(L, 0);
      return 1 + loom__task_results(L, lm, t, 1, "loom_run");
    case LOOM_FAILED:
    case LOOM_CANCELLED:
      lua_pushinteger(L, LOOM_EFAILED);
      lua_getiuservalue(L, 1, 1);
      f = loom__tofailure(L, lm, -1);
      if (f == NULL) {
        lua_settop(L, 2);
        lua_pushliteral(L, "the task's record was tampered with");
        lua_pushnil(L);
        return 3;
      }
      loom__failure_retrieved(f);
      loom__failure_error(L, 3);
      loom__failure_traceback(L, 3);
      lua_remove(L, 3);
      return 3;
    default:
      lua_pushinteger(L, LOOM_EDEADLOCK);
      push_deadlock(L, t);
      return 2;
  }
}

LOOM_API int loom_run(lua_State *L, int *nresults) {
  loom_t *lm = loom_get(L);
  int idx = lua_gettop(L), r;
  loom_task_t *t = lm && idx > 0 ? loom__totask(L, lm, -1) : NULL;
  if (nresults) *nresults = 0;
  if (lm != NULL && lm->sched_error) return UV_ENOMEM;
  if (lm == NULL || lm->running || lm->current || lm->exiting ||
      loom__post_busy(lm))  /* a post's fn: inside the loop's callback */
    return UV_EBUSY;
  if (!lua_checkstack(lm->L, LUA_MINSTACK) || !lua_checkstack(L, 4))
    return UV_ENOMEM;  /* the scheduler's scratch, and the outcome's */
  if (t) {
    t->flags |= LOOM_TF_MAIN;
    lm->main_task = t;
  }
  lm->loop_thread = uv_thread_self();
  lm->running = 1;
  lm->stopping = 0;
  lm->exit_requested = 0;
  loom__post_prepare(lm);
  uv_run(lm->loop, UV_RUN_DEFAULT);
  lm->running = 0;
  lm->main_task = NULL;
  if (t) t->flags &= ~LOOM_TF_MAIN;
  if (lm->sched_error) {  /* sched.c stopped everything */
    if (t) lua_remove(L, idx);
    return UV_ENOMEM;
  }
  if (lm->exit_requested) {
    /* nothing runs any more; as lua.c's os.exit(code, true) closes the
    ** main chunk's pending <close> variables: close the main task's, once
    ** it lets go of what it waits on */
    lm->exiting = 1;
    if (t && lm->exit_close && t->thread) {
      loom__detach(lm, t);
      lua_resetthread(t->thread);
    }
    if (t) lua_remove(L, idx);
    return LOOM_EEXIT;
  }
  if (t == NULL) return 0;
  lua_pushcfunction(L, outcome_protected);
  lua_insert(L, idx);
  if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) {
    lua_pushnil(L);  /* the memory error, and no traceback */
    return LOOM_EFAILED;
  }
  r = (int)lua_tointeger(L, idx);
  lua_remove(L, idx);
  if (r == 0 && nresults) *nresults = lua_gettop(L) - idx + 1;
  return r;
}

/* ---- for hosts that drive a prompt (the loom REPL) ------------------ */

LOOM_API lua_State *loom_running(loom_t *lm) {
  return lm->current != NULL ? lm->inner : NULL;
}

LOOM_API int loom_task_outcome(lua_State *L, int idx, int *nresults) {
  loom_t *lm = loom_get(L);
  loom_task_t *t = lm ? loom__totask(L, lm, idx) : NULL;
  int top = lua_gettop(L), r;
  if (nresults) *nresults = 0;
  if (t == NULL) return UV_EINVAL;
  if (t->state < LOOM_DONE) return UV_EAGAIN;
  if (!lua_checkstack(L, 3)) return UV_ENOMEM;
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, outcome_protected);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) {
    lua_pushnil(L);  /* the memory error, and no traceback */
    return LOOM_EFAILED;
  }
  r = (int)lua_tointeger(L, top + 1);
  lua_remove(L, top + 1);
  if (r == 0 && nresults) *nresults = lua_gettop(L) - top;
  return r;
}

LOOM_API int loom_cancel_all(loom_t *lm) {
  lua_State *L = lm->L;
  int n = 0;
  /* cancel hooks only let go and queue: the live table stays as it is */
  if (!lua_checkstack(L, 2)) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lm->live_ref);
  for (uint32_t i = 1; i <= lm->live_top; i++) {
    lua_rawgeti(L, -1, 2 * (lua_Integer)i - 1);  /* the task of pair i */
    loom_task_t *t = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (t != NULL && t != lm->current && loom__cancel(lm, t, NULL)) n++;
  }
  lua_pop(L, 1);
  return n;
}
