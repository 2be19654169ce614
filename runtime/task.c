/*
** task.c: the Task: spawning, the body that runs in each task's thread,
** loom__task_resume (the one place that resumes a task), finishing,
** awaiting, and the Lua methods of "loom.Task".
*/
#include <stdlib.h>

#include "internal.h"

static const char *const state_names[] = {
  "pending", "running", "done", "failed", "cancelled"
};

/* ---- the live table and the thread pool (both in the registry) ----- */

/* The live table holds each unfinished task and its thread side by side,
** at 2i-1 and 2i for live_index i: anchored where the debug library's
** object functions (setuservalue, setlocal) cannot unhook them. A finished
** task leaves a hole whose index is reused by the next spawn (a stack of
** free indexes in C): two stores each way, nothing moved. */
static void live_add(lua_State *L, loom_t *lm, loom_task_t *t, int ud,
                     int thread) {
  uint32_t i;
  if (lm->live_free_count > 0) {
    i = lm->live_free[--lm->live_free_count];
  } else {
    if (lm->live_top == lm->live_free_cap) {  /* room to free them all */
      uint32_t cap = lm->live_free_cap ? lm->live_free_cap * 2 : 64;
      uint32_t *free_ = realloc(lm->live_free, cap * sizeof *free_);
      if (free_ == NULL || cap < lm->live_free_cap)
        luaL_error(L, "not enough memory for a task");
      lm->live_free = free_;
      lm->live_free_cap = cap;
    }
    i = ++lm->live_top;
  }
  lm->live_count++;
  t->live_index = i;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lm->live_ref);
  lua_pushvalue(L, ud);
  lua_rawseti(L, -2, 2 * (lua_Integer)i - 1);
  lua_pushvalue(L, thread);
  lua_rawseti(L, -2, 2 * (lua_Integer)i);
  lua_pop(L, 1);
}

/* Pushes the task of t's pair. */
static void live_push(lua_State *L, loom_t *lm, loom_task_t *t) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, lm->live_ref);
  lua_rawgeti(L, -1, 2 * (lua_Integer)t->live_index - 1);
  lua_remove(L, -2);
}

void loom__push_task(lua_State *L, loom_t *lm, loom_task_t *t) {
  live_push(L, lm, t);
}

static void live_remove(lua_State *L, loom_t *lm, loom_task_t *t) {
  lua_Integer i = t->live_index;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lm->live_ref);
  lua_pushnil(L);
  lua_rawseti(L, -2, 2 * i);
  lua_pushnil(L);
  lua_rawseti(L, -2, 2 * i - 1);
  lua_pop(L, 1);
  lm->live_free[lm->live_free_count++] = (uint32_t)i;
  lm->live_count--;
  t->live_index = 0;
}

/* Pushes a thread for a new task: a finished one from the pool if any. */
static lua_State *take_thread(lua_State *L, loom_t *lm) {
  if (lm->pool_count == 0) {
    lua_State *T = lua_newthread(L);
    loom__mark_task_thread(T, lm);
    return T;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, lm->pool_ref);
  lua_rawgeti(L, -1, lm->pool_count);
  lua_pushnil(L);
  lua_rawseti(L, -3, lm->pool_count--);
  lua_remove(L, -2);
  lua_State *T = lua_tothread(L, -1);
  lua_sethook(T, NULL, 0, 0);  /* a hook set by the task before goes too */
  return T;
}

/* Keeps the (finished, emptied) thread at idx for reuse if there is room. */
static void give_thread(lua_State *L, loom_t *lm, int idx) {
  if (lm->pool_count >= LOOM_THREAD_POOL) return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lm->pool_ref);
  lua_pushvalue(L, idx);
  lua_rawseti(L, -2, ++lm->pool_count);
  lua_pop(L, 1);
}

/* ---- the body: runs inside the task's thread ------------------------ */

/* Leaves the outcome for finish(): the results packed into one value, or
** a failure record. Stack: [task, spawner, msgh, results... or error].
** The task is lm->current: slot 1 may have been changed by debug.setlocal. */
static int body_k(lua_State *T, int status, lua_KContext ctx) {
  loom_t *lm = loom__thread_loom(T);
  loom_task_t *t = lm->current;
  (void)ctx;
  if (t->flags & LOOM_TF_CAUSE) loom__drop_cause(T, t);  /* caught, unused */
  if ((status == LUA_OK || status == LUA_YIELD) &&
      (t->flags & LOOM_TF_CANCEL)) {
    /* cancelled while running, and it never waited again: as asyncio,
    ** it ends cancelled all the same */
    const void *reason = t->wait_data;
    t->flags &= ~LOOM_TF_CANCEL;
    t->wait_data = NULL;
    lua_settop(T, 3);
    loom__push_cancelled(T, reason);
    status = LUA_ERRRUN;
  }
  if (status == LUA_OK || status == LUA_YIELD) {
    int n = lua_gettop(T) - 3;
    t->nresults = (uint32_t)n;
    t->state = LOOM_DONE;
    loom__pack(T, n);
    return 1;
  }
  int cancelled = loom__is_cancelled(T, -1);
  t->state = cancelled ? LOOM_CANCELLED : LOOM_FAILED;
  loom__failure_new(T, lm, t, 2, cancelled);
  return 1;
}

/* [task, spawner, fn, args...]: calls fn under a yieldable pcall, so the
** task's <close> variables run inside the task, and may await, when it
** fails. */
static int body(lua_State *T) {
  lua_pushcfunction(T, loom__msgh);
  lua_insert(T, 3);
  return body_k(T, lua_pcallk(T, lua_gettop(T) - 4, LUA_MULTRET, 3, 0,
                              body_k), 0);
}

/* ---- spawning ------------------------------------------------------- */

/* Pushes the nearest Lua function on L's stack (pcall(spawn, f) is
** spawned by whoever called pcall) and returns its current line, or
** pushes nil and returns -1. */
static int push_spawner(lua_State *L) {
  lua_Debug ar;
  for (int level = 1; level <= 4 && lua_getstack(L, level, &ar); level++) {
    if (lua_getinfo(L, "fl", &ar) && ar.currentline >= 0)
      return ar.currentline;
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  return -1;
}

loom_task_t *loom__spawn(lua_State *L, loom_t *lm, int nargs,
                         const char *fname) {
  int base = lua_gettop(L) - nargs;  /* the function */
  if (!lua_checkstack(L, LUA_MINSTACK))
    luaL_error(L, "%s: stack overflow", fname);
  if (lm->exiting) luaL_error(L, "%s: the runtime is exiting", fname);
  loom__sched_reserve(L, lm);
  loom__count_spawn(L, lm);
  loom_task_t *t = loom__type_new(L, &lm->task_type, 1, LOOM_TASK_TAG);
  loom__list_init(&t->waiters);
  lua_insert(L, base);  /* [task, fn, args...] */
  lua_State *T = take_thread(L, lm);
  if (!lua_checkstack(T, nargs + 5))
    luaL_error(L, "%s: too many arguments", fname);
  lua_insert(L, base + 1);  /* [task, thread, fn, args...] */
  t->thread = T;
  lua_pushcfunction(T, body);
  lua_pushvalue(L, base);
  lua_xmove(L, T, 1);
  t->spawn_line = push_spawner(L);
  lua_xmove(L, T, 1);
  lua_xmove(L, T, nargs + 1);  /* T: [body, task, spawner, fn, args...] */
  live_add(L, lm, t, base, base + 1);
  lua_pop(L, 1);  /* the thread: the live table holds it */
  /* the allocations since the reserve may have run finalizers that
  ** spawned too: room for them all, with nothing allocated from here on */
  if (loom__sched_room(lm, lm->live_count) != 0) {
    live_remove(L, lm, t);
    t->thread = NULL;
    t->state = LOOM_DONE;
    luaL_error(L, "not enough memory for the run queue");
  }
  loom__enqueue_next(lm, t);
  return t;
}

/* ---- resuming and finishing ----------------------------------------- */

/* The body returned, or an error escaped it (out of memory): keep its
** outcome on the task, let the thread go, wake whoever waits. */
static void finish(loom_t *lm, loom_task_t *t, int status) {
  lua_State *L = lm->L, *T = t->thread;
  int top = lua_gettop(L);
  live_push(L, lm, t);
  int ud = lua_gettop(L);
  lua_pushthread(T);
  lua_xmove(T, L, 1);   /* keep the thread anchored while we tidy up */
  lua_xmove(T, L, 1);   /* the outcome, or the error that escaped */
  if (status != LUA_OK) {
    t->state = LOOM_FAILED;
    if (t->flags & LOOM_TF_CAUSE) loom__drop_cause(L, t);
    loom__failure_new(L, lm, t, 0, 0);
  }
  loom__failure *f = loom__tofailure(L, lm, -1);  /* anchored by the task */
  lua_setiuservalue(L, ud, 1);
  lua_settop(T, 0);
  if (status == LUA_OK) give_thread(L, lm, ud + 1);
  t->thread = NULL;
  t->wait = NULL;
  t->wait_data = NULL;
  t->flags &= ~(LOOM_TF_CANCEL | LOOM_TF_WOKEN_CANCEL | LOOM_TF_SUSPENDED);
  if (t->timeouts != NULL) loom__timeouts_orphan(lm, t);
  live_remove(L, lm, t);
  if ((t->flags & LOOM_TF_MAIN) && t->state != LOOM_DONE) {
    lm->stopping = 1;
    uv_stop(lm->loop);
  }
  lua_settop(L, top);
  lm->failure_handled = 0;
  loom__list_fire(&t->waiters, t->state != LOOM_DONE);
  if (lm->failure_handled && t->state == LOOM_FAILED && f != NULL)
    loom__failure_retrieved(f);
}

/* A task cancelled before it ever ran: it finishes without running. */
static void cancel_unstarted(loom_t *lm, loom_task_t *t) {
  lua_State *T = t->thread;
  const void *reason = t->wait_data;
  t->state = LOOM_CANCELLED;
  lua_settop(T, 3);  /* [body, task, spawner] */
  loom__push_cancelled(T, reason);
  loom__failure_new(T, lm, t, 3, 1);
  finish(lm, t, LUA_OK);
}

void loom__task_resume(loom_t *lm, loom_task_t *t) {
  lua_State *T = t->thread;
  int nargs = 0, nres, status;
  t->flags &= ~(LOOM_TF_QUEUED | LOOM_TF_SUSPENDED);
  if (t->state == LOOM_PENDING) {
    if (t->flags & LOOM_TF_CANCEL) {
      cancel_unstarted(lm, t);
      return;
    }
    t->state = LOOM_RUNNING;
    nargs = lua_gettop(T) - 1;
  }
  /* a task may run inside a resume loom did not make (module loom.run in
  ** a coroutine): that resume's limits are not the task's */
  lua_State *inner = lm->inner;
  int unyieldable = lm->unyieldable;
  lm->current = t;
  lm->inner = T;
  lm->unyieldable = 0;
  if (lm->watch != NULL) loom__watch_begin(lm->watch);  /* --debug */
  status = lua_resume(T, lm->L, nargs, &nres);
  if (lm->watch != NULL) loom__watch_end(lm->watch, T);
  lm->current = NULL;
  lm->inner = inner;
  lm->unyieldable = unyieldable;
  if (lm->begun_call != NULL) loom__call_abandoned(lm);
  if (status == LUA_YIELD) {
    if (nres != 1 || lua_touserdata(T, -1) != LOOM_SUSPEND ||
        !(t->flags & LOOM_TF_SUSPENDED)) {
      /* a raw lua_yield from some C code: treat it as sleep(0) */
      t->wait = NULL;
      t->wait_data = NULL;
      t->flags |= LOOM_TF_SUSPENDED;
      if (!(t->flags & LOOM_TF_QUEUED)) loom__enqueue_next(lm, t);
    }
    lua_pop(T, nres);
    return;
  }
  if (status == LUA_OK && nres != 1) {  /* only the debug library can */
    lua_settop(T, 0);
    lua_pushliteral(T, "loom: the task's body was tampered with");
    status = LUA_ERRRUN;
  }
  finish(lm, t, status);
}

/* ---- awaiting ------------------------------------------------------- */

/* Pushes the failure record of the finished task at idx, or raises. */
static loom__failure *push_failure(lua_State *L, loom_t *lm, int idx,
                                   const char *fname) {
  lua_getiuservalue(L, idx, 1);
  loom__failure *f = loom__tofailure(L, lm, -1);
  if (f == NULL)
    luaL_error(L, "%s: the task's record was tampered with", fname);
  return f;
}

int loom__task_results(lua_State *L, loom_t *lm, loom_task_t *t, int idx,
                       const char *fname) {
  idx = lua_absindex(L, idx);
  switch (t->state) {
    case LOOM_DONE: {
      lua_getiuservalue(L, idx, 1);
      int n = loom__unpack(L, -1, (int)t->nresults, fname);
      lua_remove(L, -n - 1);
      return n;
    }
    case LOOM_FAILED:
    case LOOM_CANCELLED: {
      loom__failure *f = push_failure(L, lm, idx, fname);
      if (t->state == LOOM_FAILED) {
        loom__failure_retrieved(f);
        if (lm->current != NULL) loom__stash_cause(L, lm->current, -1);
      }
      loom__failure_error(L, -1);
      return lua_error(L);
    }
    default:
      return luaL_error(L, "%s: task not finished (status '%s')", fname,
                        state_names[t->state]);
  }
}

void loom__task_retrieve(lua_State *L, loom_t *lm, loom_task_t *t,
                         int idx) {
  if (t->state != LOOM_FAILED) return;
  lua_getiuservalue(L, idx, 1);
  loom__failure *f = loom__tofailure(L, lm, -1);
  if (f != NULL) loom__failure_retrieved(f);
  lua_pop(L, 1);
}

void loom__push_task_error(lua_State *L, loom_t *lm, int idx) {
  push_failure(L, lm, lua_absindex(L, idx), "await");
  loom__failure_error(L, -1);
  lua_remove(L, -2);
}

void loom__task_first_result(lua_State *L, loom_task_t *t, int idx) {
  lua_getiuservalue(L, idx, 1);
  if (t->nresults > 1) {
    if (lua_type(L, -1) == LUA_TTABLE) lua_rawgeti(L, -1, 1);
    else lua_pushnil(L);  /* tampered with */
    lua_remove(L, -2);
  }
}

/* Pushes the spawner of the unfinished task a: slot 3 of its thread
** before it starts, the body's second local once it runs. */
static int push_live_spawner(lua_State *L, loom_task_t *a) {
  lua_State *T = a->thread;
  lua_Debug ar;
  int level = 0;
  if (!lua_getstack(T, 0, &ar)) {
    if (lua_gettop(T) < 3) return 0;
    lua_pushvalue(T, 3);
  } else {
    while (lua_getstack(T, level + 1, &ar)) level++;
    lua_getstack(T, level, &ar);
    if (lua_getlocal(T, &ar, 2) == NULL) return 0;
  }
  lua_xmove(T, L, 1);
  return 1;
}

void loom__describe_task(lua_State *L, loom_task_t *t, void *data) {
  loom_task_t *a = data;
  (void)t;
  if (a == NULL || a->thread == NULL || !push_live_spawner(L, a)) return;
  int sp = lua_gettop(L);
  if (loom__push_spawn_site(L, sp, a->spawn_line))
    lua_pushfstring(L, " (spawned at %s)", lua_tostring(L, -1));
  else
    lua_pushliteral(L, "");
  lua_replace(L, sp);
  lua_settop(L, sp);
}

int loom__push_where(lua_State *L, loom_task_t *t) {
  lua_Debug ar;
  if (t->thread == NULL) return 0;
  for (int level = 0; lua_getstack(t->thread, level, &ar); level++) {
    if (lua_getinfo(t->thread, "Sl", &ar) && ar.currentline >= 0) {
      lua_pushfstring(L, "%s:%d", ar.short_src, ar.currentline);
      return 1;
    }
  }
  return 0;
}

static const loom__wait await_wait = {
  "a task", loom__list_cancel, loom__describe_task
};

static int await_k(lua_State *L, int status, lua_KContext ctx) {
  int idx = (int)ctx;
  loom_t *lm = loom__up(L);
  (void)status;
  loom__resumed(L, lm);
  loom_task_t *t = loom__totask(L, lm, idx);
  if (t == NULL) return luaL_error(L, "await: the task was tampered with");
  return loom__task_results(L, lm, t, idx, "await");
}

int loom__await_task(lua_State *L, loom_t *lm, int idx, const char *fname) {
  loom_task_t *t = lua_touserdata(L, idx);
  if (t->state >= LOOM_DONE) return loom__task_results(L, lm, t, idx, fname);
  if (t == lm->current)
    return luaL_error(L, "%s: a task cannot await itself", fname);
  loom__prepare_suspend(L, lm, fname);
  return loom__wait_in_list(L, lm, &t->waiters, &await_wait, t, idx,
                            await_k);
}

/* ---- methods -------------------------------------------------------- */

static loom_task_t *checktask(lua_State *L) {
  return loom__type_check(L, &loom__up(L)->task_type, LOOM_TASK_TAG);
}

/* t:await([seconds]) */
static int t_await(lua_State *L) {
  checktask(L);
  if (!lua_isnoneornil(L, 2))
    return loom__wait_for(L, loom__up(L), 1, 2, "await");
  return loom__await_task(L, loom__up(L), 1, "await");
}

static int t_cancel(lua_State *L) {
  loom_task_t *t = checktask(L);
  lua_pushboolean(L, loom__cancel(loom__up(L), t, NULL));
  return 1;
}

static int t_done(lua_State *L) {
  lua_pushboolean(L, checktask(L)->state >= LOOM_DONE);
  return 1;
}

static int t_status(lua_State *L) {
  lua_pushstring(L, state_names[checktask(L)->state]);
  return 1;
}

static int t_result(lua_State *L) {
  loom_task_t *t = checktask(L);
  return loom__task_results(L, loom__up(L), t, 1, "result");
}

static int t_tostring(lua_State *L) {
  loom_task_t *t = checktask(L);
  lua_pushfstring(L, "loom.Task: %p (%s)", (void *)t, state_names[t->state]);
  return 1;
}

static int close_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  loom__resumed(L, loom__up(L));
  return 0;
}

/* <close>: cancel the task and wait until it has finished unwinding. */
static int t_close(lua_State *L) {
  loom_t *lm = loom__up(L);
  loom_task_t *t = checktask(L);
  loom__cancel(lm, t, NULL);
  if (t->state >= LOOM_DONE || t == lm->current || !loom__can_suspend(L, lm))
    return 0;
  loom__prepare_suspend(L, lm, "close");
  return loom__wait_in_list(L, lm, &t->waiters, &await_wait, t, 0, close_k);
}

int loom__open_task(lua_State *L, loom_t *lm) {
  static const luaL_Reg methods[] = {
    {"await", t_await}, {"cancel", t_cancel}, {"done", t_done},
    {"status", t_status}, {"result", t_result}, {NULL, NULL}
  };
  static const luaL_Reg metamethods[] = {
    {"__tostring", t_tostring}, {"__close", t_close}, {NULL, NULL}
  };
  luaL_newmetatable(L, LOOM_TASK_MT);
  lm->task_type.name = LOOM_TASK_MT;
  loom__type_init(L, &lm->task_type, sizeof(loom_task_t));
  loom__setfuncs(L, metamethods);
  lua_newtable(L);
  loom__setfuncs(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  return 0;
}
