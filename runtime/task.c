/*
** task.c: the Task: spawning, the body that runs in each task's thread,
** loom__task_resume (the one place that resumes a task), finishing,
** cancelling, awaiting, and the Lua methods of "loom.Task".
*/
#include <string.h>

#include "internal.h"

static const char *const state_names[] = {
  "pending", "running", "done", "failed", "cancelled"
};

/* ---- the live table and the thread pool (both in the registry) ----- */

static void live_push(lua_State *L, loom_t *lm, loom_task_t *t) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, lm->live_ref);
  lua_rawgeti(L, -1, t->live_index);
  lua_remove(L, -2);
}

static void live_add(lua_State *L, loom_t *lm, loom_task_t *t, int ud) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, lm->live_ref);
  lua_pushvalue(L, ud);
  t->live_index = ++lm->live_count;
  lua_rawseti(L, -2, t->live_index);
  lua_pop(L, 1);
}

/* Swap-remove: the last task takes the hole. */
static void live_remove(lua_State *L, loom_t *lm, loom_task_t *t) {
  uint32_t last = lm->live_count--;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lm->live_ref);
  if (t->live_index != last) {
    lua_rawgeti(L, -1, last);
    ((loom_task_t *)lua_touserdata(L, -1))->live_index = t->live_index;
    lua_rawseti(L, -2, t->live_index);
  }
  lua_pushnil(L);
  lua_rawseti(L, -2, last);
  lua_pop(L, 1);
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

/* Leaves the outcome for finish(): nothing, the one result, a table of
** the results, or the record of a failure. Stack: [task, spawner, msgh,
** results... or error]. */
static int body_k(lua_State *T, int status, lua_KContext ctx) {
  loom_task_t *t = lua_touserdata(T, 1);
  (void)ctx;
  if (t->flags & LOOM_TF_CAUSE) loom__drop_cause(T, t);  /* caught, unused */
  if ((status == LUA_OK || status == LUA_YIELD) &&
      (t->flags & LOOM_TF_CANCEL)) {
    /* cancelled while running, and it never waited again: as asyncio,
    ** it ends cancelled all the same */
    lua_settop(T, 3);
    loom__push_cancelled(T);
    status = LUA_ERRRUN;
  }
  if (status == LUA_OK || status == LUA_YIELD) {
    int n = lua_gettop(T) - 3;
    t->nresults = (uint32_t)n;
    t->state = LOOM_DONE;
    if (n <= 1) return n;
    lua_createtable(T, n, 0);
    lua_insert(T, 4);
    for (int i = n; i >= 1; i--) lua_rawseti(T, 4, i);
    return 1;
  }
  t->state = loom__is_cancelled(T, -1) ? LOOM_CANCELLED : LOOM_FAILED;
  lua_createtable(T, 3, 0);
  lua_insert(T, -2);
  lua_rawseti(T, -2, LOOM_REC_ERROR);
  lua_rawgetp(T, LUA_REGISTRYINDEX, t);  /* traceback left by the handler */
  lua_rawseti(T, -2, LOOM_REC_TRACEBACK);
  lua_pushnil(T);
  lua_rawsetp(T, LUA_REGISTRYINDEX, t);
  lua_pushvalue(T, 2);
  lua_rawseti(T, -2, LOOM_REC_SPAWNER);
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

loom_task_t *loom__spawn(lua_State *L, loom_t *lm, int nargs) {
  int base = lua_gettop(L) - nargs;  /* the function */
  lua_Debug ar;
  loom_task_t *t = lua_newuserdatauv(L, sizeof *t, 1);
  memset(t, 0, sizeof *t);
  loom__list_init(&t->waiters);
  loom__setmetatable(L, lm->task_mt_ref);
  lua_insert(L, base);  /* [task, fn, args...] */
  lua_State *T = take_thread(L, lm);
  if (!lua_checkstack(T, nargs + 5))
    luaL_error(L, "create_task: too many arguments");
  lua_setiuservalue(L, base, 1);
  t->thread = T;
  lua_pushcfunction(T, body);
  lua_pushvalue(L, base);
  lua_xmove(L, T, 1);
  t->spawn_line = -1;
  lua_pushnil(T);
  /* the spawn site: the nearest Lua function (pcall(spawn, f) is spawned
  ** by whoever called pcall) */
  for (int level = 1; level <= 4 && lua_getstack(L, level, &ar); level++) {
    if (lua_getinfo(L, "fl", &ar) && ar.currentline >= 0) {
      t->spawn_line = ar.currentline;
      lua_pop(T, 1);
      lua_xmove(L, T, 1);
      break;
    }
    lua_pop(L, 1);
  }
  lua_xmove(L, T, nargs + 1);  /* T: [body, task, spawner, fn, args...] */
  live_add(L, lm, t, base);
  loom__enqueue_next(lm, t);
  return t;
}

/* ---- resuming and finishing ----------------------------------------- */

/* Pushes a record {error} for a task that failed without running its
** body to the end: never started, or out of memory. */
static void push_record(lua_State *L) {
  lua_createtable(L, 3, 0);
  lua_insert(L, -2);
  lua_rawseti(L, -2, LOOM_REC_ERROR);
}

/* The body returned (or failed): keep its outcome on the task, let the
** thread go, wake whoever waits. */
static void finish(loom_t *lm, loom_task_t *t, int status, int nres) {
  lua_State *L = lm->L, *T = t->thread;
  int top = lua_gettop(L);
  live_push(L, lm, t);
  int ud = lua_gettop(L);
  lua_pushthread(T);
  lua_xmove(T, L, 1);   /* keep the thread anchored while we tidy up */
  if (status != LUA_OK) {  /* an error escaped the body */
    t->state = LOOM_FAILED;
    lua_pushnil(L);  /* what the handler may have left for the body */
    lua_rawsetp(L, LUA_REGISTRYINDEX, t);
    if (t->flags & LOOM_TF_CAUSE) loom__drop_cause(L, t);
    lua_xmove(T, L, 1);
    push_record(L);
  } else if (nres == 1) {
    lua_xmove(T, L, 1);
  } else {
    lua_pushnil(L);
  }
  lua_setiuservalue(L, ud, 1);
  lua_settop(T, 0);
  if (status == LUA_OK) give_thread(L, lm, ud + 1);
  t->thread = NULL;
  live_remove(L, lm, t);
  if (t->state == LOOM_FAILED) {
    loom__setmetatable_at(L, ud, lm->failed_task_mt_ref);
    t->seq = ++lm->fail_seq;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lm->failed_ref);
    lua_pushvalue(L, ud);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
  }
  if ((t->flags & LOOM_TF_MAIN) && t->state != LOOM_DONE) {
    lm->stopping = 1;
    uv_stop(lm->loop);
  }
  lua_settop(L, top);
  loom__list_fire(&t->waiters, t->state != LOOM_DONE);
}

/* A task cancelled before it ever ran: it finishes without running. */
static void cancel_unstarted(loom_t *lm, loom_task_t *t) {
  lua_State *T = t->thread;
  t->state = LOOM_CANCELLED;
  lua_settop(T, 0);
  loom__push_cancelled(T);
  push_record(T);
  finish(lm, t, LUA_OK, 1);
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
  status = lua_resume(T, lm->L, nargs, &nres);
  lm->current = NULL;
  lm->inner = inner;
  lm->unyieldable = unyieldable;
  if (status == LUA_YIELD) {
    if (nres != 1 || lua_touserdata(T, -1) != LOOM_SUSPEND) {
      /* a raw lua_yield from some C code: treat it as sleep(0) */
      t->wait = NULL;
      t->flags |= LOOM_TF_SUSPENDED;
      loom__enqueue_next(lm, t);
    }
    lua_pop(T, nres);
    return;
  }
  finish(lm, t, status, nres);
}

/* ---- suspending ----------------------------------------------------- */

loom_task_t *loom__prepare_suspend(lua_State *L, loom_t *lm,
                                   const char *fname) {
  loom_task_t *t = lm->current;
  if (t == NULL)
    luaL_error(L, "%s: not inside a task (wrap the code in loom.run(fn))",
               fname);
  if (L != lm->inner)
    luaL_error(L, "%s: cannot wait here: in a coroutine that loom's "
               "coroutine.resume did not resume", fname);
  if (!lua_isyieldable(L) || lm->unyieldable)
    luaL_error(L, "%s: cannot wait here: inside a C call that cannot yield",
               fname);
  if (t->flags & LOOM_TF_CANCEL) {
    t->flags &= ~LOOM_TF_CANCEL;
    loom__push_cancelled(L);
    lua_error(L);
  }
  return t;
}

int loom__suspend(lua_State *L, loom_t *lm, const loom__wait *wait,
                  lua_KContext ctx, lua_KFunction k) {
  loom_task_t *t = lm->current;
  t->wait = wait;
  t->flags |= LOOM_TF_SUSPENDED;
  lua_pushlightuserdata(L, LOOM_SUSPEND);
  return lua_yieldk(L, 1, ctx, k);
}

void loom__resumed(lua_State *L, loom_t *lm) {
  loom_task_t *t = lm->current;
  if (t->wake == LOOM_WAKE_CANCEL) {
    t->wake = LOOM_WAKE_OK;
    loom__push_cancelled(L);
    lua_error(L);
  }
}

int loom__task_cancel(loom_t *lm, loom_task_t *t) {
  if (t->state >= LOOM_DONE) return 0;
  if (t->state == LOOM_PENDING || t == lm->current) {
    t->flags |= LOOM_TF_CANCEL;  /* delivered when it starts or waits */
  } else if (t->flags & LOOM_TF_QUEUED) {
    t->wake = LOOM_WAKE_CANCEL;  /* woken already: raise when it resumes */
  } else if (t->flags & LOOM_TF_SUSPENDED) {
    if (t->wait && t->wait->cancel) t->wait->cancel(t);
    t->wake = LOOM_WAKE_CANCEL;
    loom__wake(t);
  }
  return 1;
}

/* ---- awaiting ------------------------------------------------------- */

void loom__list_fire(loom__link *head, int failed) {
  while (head->next != head) {
    loom__waiter *w = (loom__waiter *)head->next;
    loom__list_unlink(w);
    w->fire(w, failed);
  }
}

void loom__fire_wake(loom__waiter *w, int failed) {
  (void)failed;
  loom__wake((loom_task_t *)((char *)w - offsetof(loom_task_t, node)));
}

void loom__wait_on(loom__link *waiters, loom_task_t *me) {
  me->node.fire = loom__fire_wake;
  loom__list_push(waiters, &me->node);
}

void loom__stop_waiting(loom_task_t *t) {
  loom__list_unlink(&t->node);
}

static const loom__wait await_wait = { "a task", loom__stop_waiting };

int loom__task_results(lua_State *L, loom_t *lm, loom_task_t *t, int idx) {
  int n = (int)t->nresults;
  switch (t->state) {
    case LOOM_DONE:
      if (n == 0) return 0;
      luaL_checkstack(L, n + 1, "too many results");
      lua_getiuservalue(L, idx, 1);
      if (n == 1) return 1;
      for (int i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
      lua_remove(L, -n - 1);
      return n;
    case LOOM_FAILED:
      t->flags |= LOOM_TF_RETRIEVED;
      if (lm->current != NULL) loom__stash_cause(L, lm->current, t, idx);
      /* FALLTHROUGH */
    case LOOM_CANCELLED:
      loom__push_task_error(L, idx);
      return lua_error(L);
    default:
      return luaL_error(L, "task not finished");
  }
}

void loom__push_task_error(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_getiuservalue(L, idx, 1);
  lua_rawgeti(L, -1, LOOM_REC_ERROR);
  lua_remove(L, -2);
}

void loom__task_first_result(lua_State *L, loom_task_t *t, int idx) {
  if (t->nresults == 0) {
    lua_pushnil(L);
  } else {
    lua_getiuservalue(L, idx, 1);
    if (t->nresults > 1) {
      lua_rawgeti(L, -1, 1);
      lua_remove(L, -2);
    }
  }
}

static int await_k(lua_State *L, int status, lua_KContext ctx) {
  int idx = (int)ctx;
  (void)status;
  loom__resumed(L, loom__up(L));
  return loom__task_results(L, loom__up(L), lua_touserdata(L, idx), idx);
}

int loom__await_task(lua_State *L, loom_t *lm, int idx, const char *fname) {
  loom_task_t *t = lua_touserdata(L, idx);
  if (t->state >= LOOM_DONE) return loom__task_results(L, lm, t, idx);
  if (t == lm->current)
    return luaL_error(L, "%s: a task cannot await itself", fname);
  loom_task_t *me = loom__prepare_suspend(L, lm, fname);
  loom__wait_on(&t->waiters, me);
  return loom__suspend(L, lm, &await_wait, idx, await_k);
}

/* ---- methods -------------------------------------------------------- */

static loom_task_t *checktask(lua_State *L) {
  loom_task_t *t = loom__totask(L, loom__up(L), 1);
  if (t == NULL) luaL_typeerror(L, 1, LOOM_TASK_MT);
  return t;
}

static int t_await(lua_State *L) {
  checktask(L);
  return loom__await_task(L, loom__up(L), 1, "await");
}

static int t_cancel(lua_State *L) {
  lua_pushboolean(L, loom__task_cancel(loom__up(L), checktask(L)));
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
  if (t->state < LOOM_DONE)
    return luaL_error(L, "result: task not finished (status '%s')",
                      state_names[t->state]);
  return loom__task_results(L, loom__up(L), t, 1);
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
  loom__task_cancel(lm, t);
  if (t->state >= LOOM_DONE || t == lm->current || lm->current == NULL)
    return 0;
  loom_task_t *me = loom__prepare_suspend(L, lm, "close");
  loom__wait_on(&t->waiters, me);
  return loom__suspend(L, lm, &await_wait, 0, close_k);
}

/* ---- failures nobody retrieved -------------------------------------- */

static void report(loom_t *lm, lua_State *L, loom_task_t *t, int idx) {
  t->flags |= LOOM_TF_REPORTED;
  lm->reported++;
  lm->reported_total++;
  loom__push_report(L, idx);
  lm->report(lm, lua_tostring(L, -1), lm->report_ud);
  lua_pop(L, 1);
}

static int unreported(loom_task_t *t) {
  return t->state == LOOM_FAILED &&
         !(t->flags & (LOOM_TF_RETRIEVED | LOOM_TF_REPORTED));
}

static int t_gc(lua_State *L) {
  loom_task_t *t = lua_touserdata(L, 1);
  loom_t *lm = loom__up(L);
  if (unreported(t)) report(lm, L, t, 1);
  return 0;
}

/* Reports, in the order they failed, the failed tasks nobody retrieved. */
int loom__report_failures(loom_t *lm) {
  lua_State *L = lm->L;
  int top = lua_gettop(L), n = 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lm->failed_ref);
  lua_newtable(L);  /* the unreported ones, as an array */
  lua_pushnil(L);
  while (lua_next(L, top + 1)) {
    lua_pop(L, 1);
    if (unreported(lua_touserdata(L, -1))) {
      lua_pushvalue(L, -1);
      lua_rawseti(L, top + 2, ++n);
    }
  }
  for (;;) {  /* few of them: pick the earliest failure each time */
    int best = 0;
    uint32_t best_seq = 0;
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, top + 2, i);
      loom_task_t *t = lua_touserdata(L, -1);
      if (unreported(t) && (best == 0 || t->seq < best_seq)) {
        best = i;
        best_seq = t->seq;
      }
      lua_pop(L, 1);
    }
    if (best == 0) break;
    lua_rawgeti(L, top + 2, best);
    report(lm, L, lua_touserdata(L, -1), lua_gettop(L));
    lua_pop(L, 1);
  }
  lua_settop(L, top);
  n = lm->reported;
  lm->reported = 0;
  return n;
}

int loom__open_task(lua_State *L, loom_t *lm) {
  static const luaL_Reg methods[] = {
    {"await", t_await}, {"cancel", t_cancel}, {"done", t_done},
    {"status", t_status}, {"result", t_result}, {NULL, NULL}
  };
  static const luaL_Reg metamethods[] = {
    {"__tostring", t_tostring}, {"__close", t_close}, {NULL, NULL}
  };
  static const luaL_Reg finalizer[] = { {"__gc", t_gc}, {NULL, NULL} };
  luaL_newmetatable(L, LOOM_TASK_MT);
  loom__keep_metatable(L, &lm->task_mt, &lm->task_mt_ref);
  loom__setfuncs(L, metamethods);
  lua_newtable(L);
  loom__setfuncs(L, methods);
  lua_setfield(L, -2, "__index");
  /* A failed task gets a twin metatable with a finalizer, to report the
  ** failure if it is collected unretrieved: only those pay for one. */
  lua_createtable(L, 0, 5);
  lua_pushnil(L);
  while (lua_next(L, -3)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
  loom__setfuncs(L, finalizer);
  loom__keep_metatable(L, &lm->failed_task_mt, &lm->failed_task_mt_ref);
  lua_pop(L, 2);
  return 0;
}
