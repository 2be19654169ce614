/*
** timeout.c: deadlines for work: loom.timeout(seconds, fn, ...), which
** runs fn in the calling task and cancels it at the deadline;
** loom.wait_for(x, seconds) and task:await(seconds), which give up waiting
** (and cancel the task) when the time runs out; the Timeout error.
**
** loom.timeout runs fn inline, with a record (a userdata) in a
** to-be-closed slot of its own frame: the record holds the deadline, and
** its __close (on return or on any error passing out of fn) disarms it.
** At the deadline the record cancels its task with itself as the cancel
** reason; when a Cancelled error with that reason reaches the record's
** __close, the record raises Timeout instead. Any other error passes
** through unchanged, with its own traceback, since nothing catches it.
**
** As for task:cancel() (and asyncio), the cancellation is delivered once:
** code that catches it (a pcall) and goes on is not cancelled again, and
** cleanup (<close> handlers) may wait while it unwinds. (Trio's rule, a
** scope cancelled until it ends, would stop cleanup from waiting, and Lua
** gives no way to tell unwinding code from code that caught the error.)
**
** Nesting: a task's records form a chain, innermost first. An outer
** deadline that passes while an inner one's cancellation is still on its
** way takes that cancellation over (its reason replaces the inner's), so
** the outer scope, not the inner, sees its own Cancelled and the code
** between them never runs on past the outer deadline. A plain cancel
** (task:cancel()) is never replaced: it wins over every deadline.
**
** Records are anchored (an array in the registry) while they are armed,
** so nothing the debug library does to the stack can free one under the
** timer; a record whose frame is abandoned (a coroutine that errored or
** never resumed) stays armed, but its firing is ignored unless its code
** is the one waiting, and it is let go when its task finishes. One that
** fires while its coroutine is suspended by a plain yield is late: it is
** delivered at that coroutine's next wait (loom__timeouts_due).
*/
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define LOOM_TIMEOUT_MT "loom.Timeout"

/* ---- the anchors ---------------------------------------------------- */

/* Armed records (loom.timeout's, the timed waits', loom.wait's) sit in an
** array in the registry, each at its 'anchor' index, swap-removed. */
typedef loom__anchored anchored;

void loom__anchor(lua_State *L, loom_t *lm, int idx) {
  anchored *a = lua_touserdata(L, idx);
  idx = lua_absindex(L, idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, lm->anchors_ref);
  lua_pushvalue(L, idx);
  lua_rawseti(L, -2, (lua_Integer)lm->anchors + 1);
  lua_pop(L, 1);
  a->anchor = ++lm->anchors;
}

void loom__unanchor(lua_State *L, loom_t *lm, loom__anchored *a) {
  if (a->anchor == 0) return;
  lua_Integer last = lm->anchors--, hole = a->anchor;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lm->anchors_ref);
  if (hole != last) {
    lua_rawgeti(L, -1, last);
    ((anchored *)lua_touserdata(L, -1))->anchor = (uint32_t)hole;
    lua_rawseti(L, -2, hole);
  }
  lua_pushnil(L);
  lua_rawseti(L, -2, last);
  lua_pop(L, 1);
  a->anchor = 0;
}

/* ---- the Timeout error ---------------------------------------------- */

/* [] -> [a Timeout error]: {message = "timed out after S s ...", seconds}*/
void loom__push_timeout(lua_State *L, double seconds, const char *more) {
  lua_createtable(L, 0, 2);
  char num[32];
  snprintf(num, sizeof num, "%.14g", seconds == 0 ? 0.0 : seconds);
  lua_pushfstring(L, "timed out after %s s%s", num, more);
  lua_setfield(L, -2, "message");
  lua_pushnumber(L, seconds);
  lua_setfield(L, -2, "seconds");
  luaL_setmetatable(L, LOOM_TIMEOUT_MT);
}

static int is_timeout(lua_State *L, int idx) {
  int yes = 0;
  if (lua_type(L, idx) == LUA_TTABLE && lua_getmetatable(L, idx)) {
    luaL_getmetatable(L, LOOM_TIMEOUT_MT);
    yes = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  return yes;
}

static int timeout_tostring(lua_State *L) {
  if (lua_type(L, 1) == LUA_TTABLE) lua_getfield(L, 1, "message");
  else lua_pushnil(L);
  if (!lua_isstring(L, -1)) lua_pushliteral(L, "timed out");
  lua_pushfstring(L, "Timeout: %s", lua_tostring(L, -1));
  return 1;
}

static int l_is_timeout(lua_State *L) {
  lua_pushboolean(L, is_timeout(L, 1));
  return 1;
}

/* ---- loom.timeout --------------------------------------------------- */

typedef struct loom__timeout loom__timeout;
struct loom__timeout {
  uint32_t tag;         /* LOOM_TIMEOUT_TAG */
  uint32_t anchor;      /* (as anchored) */
  loom__waiter w;       /* in a deadline bucket while armed */
  void *bucket;         /* its bucket while armed */
  loom_task_t *task;    /* NULL once closed or orphaned */
  lua_State *L;         /* the thread fn runs in (user value 1) */
  loom__timeout *outer, *inner;  /* the task's chain */
  double seconds;
  const char *what;     /* what the work waited on when the time ran out */
  uint8_t armed, fired, closed;
  uint8_t late;         /* fired while its coroutine was suspended by a
                           plain yield: due at that coroutine's next wait */
  char where[LUA_IDSIZE + 16];  /* and where: "x.lua:7" */
};

static loom__timeout *of_waiter(loom__waiter *w) {
  return (loom__timeout *)((char *)w - offsetof(loom__timeout, w));
}

/* Whether 'reason' is one of t's records inside r. */
static int inside(loom_task_t *t, loom__timeout *r, const void *reason) {
  for (loom__timeout *x = t->timeouts; x != NULL && x != r; x = x->outer)
    if (x == reason) return 1;
  return 0;
}

/* Whether the code of r (running in r->L) is what waits now: r->L is
** the task's own thread, or a coroutine the wait passed through. */
static int is_waiting(loom__timeout *r, loom_task_t *t, loom_t *lm) {
  return r->L == t->thread ||
         (*loom__xs(r->L) == ((uintptr_t)lm | LOOM_XS_PARKED) &&
          lua_status(r->L) == LUA_YIELD);
}

/* Notes what the work waits on and where (no allocation: a callback). */
static void note_where(loom__timeout *r, loom_task_t *t) {
  lua_Debug ar;
  r->what = t->wait != NULL ? t->wait->what : NULL;
  r->where[0] = '\0';
  for (int level = 0; lua_getstack(r->L, level, &ar); level++) {
    if (lua_getinfo(r->L, "Sl", &ar) && ar.currentline > 0) {
      snprintf(r->where, sizeof r->where, "%s:%d", ar.short_src,
               ar.currentline);
      return;
    }
  }
}

static void timeout_fire(loom__waiter *w, int failed) {
  loom__timeout *r = of_waiter(w);
  loom_task_t *t = r->task;
  (void)failed;
  r->armed = 0;
  r->fired = 1;
  if (t == NULL) return;
  loom_t *lm = loom__task_loom(t);
  if (!is_waiting(r, t, lm)) {  /* suspended by a yield, or abandoned */
    r->late = 1;
    return;
  }
  if (t->flags & (LOOM_TF_CANCEL | LOOM_TF_WOKEN_CANCEL)) {
    /* a cancellation is on its way: take it over if it is an inner
    ** deadline's; a plain cancel or anyone else's stays */
    if (t->wait_data != NULL && inside(t, r, t->wait_data)) {
      const loom__timeout *in = t->wait_data;
      r->what = in->what;  /* where the work waited: the inner one saw */
      memcpy(r->where, in->where, sizeof r->where);
      t->wait_data = r;
    }
    return;
  }
  note_where(r, t);
  loom__cancel(lm, t, r);
}

/* Before a wait in L: a deadline that passed while L was suspended by a
** plain coroutine.yield is delivered now, the outermost first, as if it
** had fired during this wait. */
void loom__timeouts_due(lua_State *L, loom_task_t *t) {
  loom__timeout *due = NULL;
  for (loom__timeout *x = t->timeouts; x != NULL; x = x->outer)
    if (x->late && x->L == L) due = x;
  if (due == NULL) return;
  for (loom__timeout *x = t->timeouts; x != NULL; x = x->outer)
    if (x->L == L) x->late = 0;
  note_where(due, t);
  loom__push_cancelled(L, due);
  lua_error(L);
}

/* Disarms r and takes it out of its task's chain; L for the anchors. */
static void let_go(lua_State *L, loom_t *lm, loom__timeout *r) {
  if (r->armed) {
    r->armed = 0;
    loom__deadline_cancel(lm, &r->w, r->bucket);
  }
  loom_task_t *t = r->task;
  if (t != NULL) {
    if (r->inner != NULL) r->inner->outer = r->outer;
    else t->timeouts = r->outer;
    if (r->outer != NULL) r->outer->inner = r->inner;
    r->task = NULL;
  }
  r->outer = r->inner = NULL;
  loom__unanchor(L, lm, (anchored *)r);
}

void loom__timeouts_orphan(loom_t *lm, loom_task_t *t) {
  while (t->timeouts != NULL) {
    loom__timeout *r = t->timeouts;
    let_go(lm->L, lm, r);
    r->closed = 1;
  }
}

static loom__timeout *checkrecord(lua_State *L, loom_t *lm) {
  return loom__type_check(L, &lm->timeout_type, LOOM_TIMEOUT_TAG);
}

/* __close(record, err): the scope of loom.timeout ends. */
static int record_close(lua_State *L) {
  loom_t *lm = loom__up(L);
  loom__timeout *r = checkrecord(L, lm);
  if (r->closed) return 0;
  r->closed = 1;
  let_go(L, lm, r);
  if (r->fired && loom__cancel_reason(L, 2) == r) {
    char more[sizeof r->where + 64];
    if (r->where[0] != '\0')
      snprintf(more, sizeof more, " (the work was waiting on %s at %s)",
               r->what ? r->what : "something", r->where);
    else
      more[0] = '\0';
    loom__push_timeout(L, r->seconds, more);
    return lua_error(L);
  }
  return 0;
}

static int record_tostring(lua_State *L) {
  loom__timeout *r = checkrecord(L, loom__up(L));
  lua_pushfstring(L, "loom.timeout scope: %p (%s)", (void *)r,
                  r->closed ? "closed" : r->fired ? "expired" : "running");
  return 1;
}

static double checkseconds(lua_State *L, int idx) {
  lua_Number s = luaL_checknumber(L, idx);
  luaL_argcheck(L, s >= 0, idx, "non-negative number expected");
  return (double)s;
}

static int timeout_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return lua_gettop(L) - 1;  /* the results, above the record */
}

/* loom.timeout(seconds, fn, ...) */
static int l_timeout(lua_State *L) {
  loom_t *lm = loom__up(L);
  double s = checkseconds(L, 1);
  loom__checkcallable(L, 2);
  loom_task_t *t = lm->current;
  if (t == NULL)
    return luaL_error(L, "timeout: not inside a task (wrap the code in "
                      "loom.run(fn))");
  int nargs = lua_gettop(L) - 2;
  loom__timeout *r = loom__type_new(L, &lm->timeout_type, 1,
                                    LOOM_TIMEOUT_TAG);
  lua_pushthread(L);
  lua_setiuservalue(L, -2, 1);
  r->L = L;
  r->seconds = s;
  r->w.fire = timeout_fire;
  lua_replace(L, 1);  /* [record, fn, args...] */
  loom__anchor(L, lm, 1);
  r->bucket = loom__deadline_start(lm, &r->w, s * 1000.0);
  if (r->bucket == NULL) {
    loom__unanchor(L, lm, (anchored *)r);
    return luaL_error(L, "timeout: not enough memory");
  }
  r->armed = 1;
  r->task = t;
  r->outer = t->timeouts;
  if (r->outer != NULL) r->outer->inner = r;
  t->timeouts = r;
  lua_toclose(L, 1);
  lua_callk(L, nargs, LUA_MULTRET, 0, timeout_k);
  return lua_gettop(L) - 1;
}

/* ---- waiting with a deadline: wait_for, task:await(s) ---------------- */

/* One timed wait: the task's node in what it awaits, and a deadline. A
** userdata on the waiting thread, just above the awaited value. */
typedef struct timed {
  uint32_t tag;         /* LOOM_TIMEOUT_TAG + 1 */
  uint32_t anchor;      /* (as anchored) */
  loom__waiter w;       /* the deadline */
  void *bucket;
  loom_task_t *me;
  loom_task_t *awaited; /* the task awaited, or NULL (a future) */
  double seconds;
  uint8_t armed, fired, done, is_task;
} timed;

#define TIMED_TAG (LOOM_TIMEOUT_TAG + 1)

static void timed_fire(loom__waiter *w, int failed) {
  timed *tw = (timed *)((char *)w - offsetof(timed, w));
  (void)failed;
  tw->armed = 0;
  tw->fired = 1;
  loom__wake(tw->me);
}

static void timed_disarm(loom_t *lm, timed *tw) {
  if (tw->armed) {
    tw->armed = 0;
    loom__deadline_cancel(lm, &tw->w, tw->bucket);
  }
}

/* The waiting task was cancelled: let go of both. */
static void timed_cancel(loom_task_t *t, void *data, int woken) {
  timed *tw = data;
  (void)woken;
  loom__list_unlink(&t->node);
  timed_disarm(loom__task_loom(t), tw);
}

/* For deadlock reports: the awaited task's spawn site. */
static void timed_describe(lua_State *L, loom_task_t *t, void *data) {
  timed *tw = data;
  loom__describe_task(L, t, tw->awaited);
}

static const loom__wait timed_task_wait = {
  "a task (with a timeout)", timed_cancel, timed_describe
};
static const loom__wait timed_future_wait = {
  "a future (with a timeout)", timed_cancel, NULL
};
static const loom__wait unwind_wait = {
  "a timed-out task to unwind", loom__list_cancel, loom__describe_task
};

/* Pushes the Timeout of a timed wait named fname. */
static void push_wait_timeout(lua_State *L, timed *tw, const char *fname) {
  char more[64];
  snprintf(more, sizeof more, " (%s)", fname);
  loom__push_timeout(L, tw->seconds, more);
}

/* ctx: the stack index of the awaited value; the record is just above,
** and the name of the function in its user value. */
static int unwound_k(lua_State *L, int status, lua_KContext ctx) {
  loom_t *lm = loom__up(L);
  int idx = (int)ctx;
  (void)status;
  loom__resumed(L, lm);
  loom_task_t *t = loom__totask(L, lm, idx);
  timed *tw = lua_touserdata(L, idx + 1);
  lua_getiuservalue(L, idx + 1, 1);
  const char *fname = lua_tostring(L, -1);
  if (t == NULL || tw == NULL || fname == NULL)
    return luaL_error(L, "wait_for: its state was tampered with");
  if (t->state == LOOM_CANCELLED) {
    push_wait_timeout(L, tw, fname);
    return lua_error(L);
  }
  /* it finished anyway, or failed while unwinding: that is the outcome */
  return loom__task_results(L, lm, t, idx, fname);
}

static int timed_k(lua_State *L, int status, lua_KContext ctx) {
  loom_t *lm = loom__up(L);
  int idx = (int)ctx;
  loom_task_t *me = lm->current;
  timed *tw = (timed *)lua_touserdata(L, idx + 1);
  (void)status;
  if (me != NULL) loom__list_unlink(&me->node);  /* if the time ran out */
  if (tw == NULL || lua_type(L, idx + 1) != LUA_TUSERDATA ||
      lua_rawlen(L, idx + 1) != sizeof *tw || tw->tag != TIMED_TAG)
    return luaL_error(L, "wait_for: its state was tampered with");
  timed_disarm(lm, tw);
  loom__unanchor(L, lm, (anchored *)tw);
  loom__resumed(L, lm);
  lua_getiuservalue(L, idx + 1, 1);
  const char *fname = lua_tostring(L, -1);
  lua_pop(L, 1);
  if (fname == NULL) fname = "wait_for";
  if (!tw->fired || !tw->is_task) {
    if (tw->is_task) {
      loom_task_t *t = loom__totask(L, lm, idx);
      if (t == NULL) return luaL_error(L, "%s: the task was tampered with",
                                       fname);
      return loom__task_results(L, lm, t, idx, fname);
    }
    if (tw->fired && loom__future_waiters(L, lm, idx) != NULL) {
      push_wait_timeout(L, tw, fname);
      return lua_error(L);
    }
    return loom__await_future(L, lm, idx, fname);
  }
  /* the time ran out: cancel the task and wait until it has unwound */
  loom_task_t *t = loom__totask(L, lm, idx);
  if (t == NULL) return luaL_error(L, "%s: the task was tampered with",
                                   fname);
  if (t->state < LOOM_DONE) {
    loom__cancel(lm, t, NULL);
    if (t->state < LOOM_DONE) {
      loom__prepare_suspend(L, lm, fname);
      return loom__wait_in_list(L, lm, &t->waiters, &unwind_wait, t, idx,
                                unwound_k);
    }
  }
  return unwound_k(L, LUA_OK, idx);
}

int loom__wait_for(lua_State *L, loom_t *lm, int idx, int sidx,
                   const char *fname) {
  idx = lua_absindex(L, idx);
  loom_task_t *t = loom__totask(L, lm, idx);
  loom__link *waiters;
  if (lua_isnoneornil(L, sidx)) {  /* no deadline: a plain await */
    lua_settop(L, idx);
    if (t != NULL) return loom__await_task(L, lm, idx, fname);
    return loom__await_future(L, lm, idx, fname);
  }
  double s = checkseconds(L, sidx);
  if (t != NULL) {
    if (t->state >= LOOM_DONE)
      return loom__task_results(L, lm, t, idx, fname);
    if (t == lm->current)
      return luaL_error(L, "%s: a task cannot await itself", fname);
    waiters = &t->waiters;
  } else {
    waiters = loom__future_waiters(L, lm, idx);
    if (waiters == NULL) return loom__await_future(L, lm, idx, fname);
  }
  loom_task_t *me = loom__prepare_suspend(L, lm, fname);
  lua_settop(L, idx);
  timed *tw = lua_newuserdatauv(L, sizeof *tw, 1);
  memset(tw, 0, sizeof *tw);
  tw->tag = TIMED_TAG;
  tw->me = me;
  tw->seconds = s;
  tw->is_task = t != NULL;
  tw->awaited = t;
  tw->w.fire = timed_fire;
  lua_pushstring(L, fname);
  lua_setiuservalue(L, -2, 1);
  loom__anchor(L, lm, -1);
  tw->bucket = loom__deadline_start(lm, &tw->w, s * 1000.0);
  if (tw->bucket == NULL) {
    loom__unanchor(L, lm, (anchored *)tw);
    return luaL_error(L, "%s: not enough memory", fname);
  }
  tw->armed = 1;
  me->node.fire = loom__fire_wake;
  loom__list_push(waiters, &me->node);
  return loom__suspend(L, lm, t ? &timed_task_wait : &timed_future_wait,
                       tw, idx, timed_k);
}

/* loom.wait_for(x, seconds): x a Task, a function (spawned) or a future */
static int l_wait_for(lua_State *L) {
  loom_t *lm = loom__up(L);
  luaL_checkany(L, 1);
  if (lua_isfunction(L, 1)) {
    lua_pushvalue(L, 1);
    loom__spawn(L, lm, 0, "wait_for");
    lua_replace(L, 1);
  } else if (!loom__totask(L, lm, 1) && !loom__tofuture(L, lm, 1)) {
    return luaL_typeerror(L, 1, "task, function or future");
  }
  return loom__wait_for(L, lm, 1, 2, "wait_for");
}

/* ---- the module ----------------------------------------------------- */

void loom__open_timeout(lua_State *L, loom_t *lm) {
  static const luaL_Reg record_mm[] = {
    {"__close", record_close}, {"__tostring", record_tostring},
    {NULL, NULL}
  };
  static const luaL_Reg fns[] = {
    {"timeout", l_timeout}, {"wait_for", l_wait_for},
    {"is_timeout", l_is_timeout}, {NULL, NULL}
  };
  lua_newtable(L);
  lm->anchors_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  luaL_newmetatable(L, "loom.TimeoutScope");
  lm->timeout_type.name = "loom.TimeoutScope";
  loom__type_init(L, &lm->timeout_type, sizeof(loom__timeout));
  loom__setfuncs(L, record_mm);
  lua_pop(L, 1);
  luaL_newmetatable(L, LOOM_TIMEOUT_MT);
  lua_pushcfunction(L, timeout_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "Timeout");
  lua_setfield(L, -2, "__name");
  lua_setfield(L, -2, "Timeout");  /* loom.Timeout, in the table on top */
  loom__setfuncs(L, fns);
}
