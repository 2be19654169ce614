/*
** waitset.c: waiting on many tasks in other ways than gather:
**   loom.wait(tasks [, {return_when = "all"|"first"|"first_error",
**             timeout = s}])   -> done, pending (asyncio.wait)
**   loom.race(...)             -> the first to finish's results; the
**                                 others are cancelled (Promise.race)
**   loom.as_completed(tasks [, {timeout = s}])
**                              -> for t in ... do: tasks as they finish
**   loom.settle(...)           -> every outcome, {ok = true, value = v}
**                                 or {ok = false, error = e}; nothing is
**                                 cancelled (Promise.allSettled)
** Items are tasks or functions (spawned), as for gather: several
** arguments, or one table (race and settle then answer with a table).
**
** One userdata holds a node per task, as gather's does; a node fires
** when its task finishes and only counts, waking the waiter once what it
** waits for is there. A waiter that is cancelled lets go in its hook;
** race and settle cancel their tasks then, in the waiter's own resume.
** as_completed's state lives in its iterator, so it has a __gc (and a
** __close, the for loop's closing value) that lets go of the tasks.
*/
#include <limits.h>
#include <string.h>

#include "internal.h"

enum { M_ALL, M_FIRST, M_FIRST_ERROR, M_ITER };

typedef struct waitset waitset;

typedef struct wnode {
  loom__waiter w;
  waitset *s;
  loom_task_t *child;
} wnode;

struct waitset {
  uint32_t tag;          /* LOOM_WAITSET_TAG */
  uint32_t anchor;       /* (loom__anchored) while the deadline is armed */
  uint32_t n, done, failed;
  uint32_t first;        /* 1-based index of the first to finish, or 0 */
  uint32_t qhead, qcount;  /* as_completed: finished, not yet given */
  uint8_t mode;
  uint8_t cancelled;     /* the waiter was cancelled while it waited */
  uint8_t armed, expired, released, as_table;
  uint8_t handles;       /* race, settle: its tasks' failures are seen */
  loom_t *lm;
  loom_task_t *waiter;   /* the task waiting, or NULL */
  loom__waiter dl;       /* the deadline */
  void *bucket;
  double seconds;
  wnode nodes[];         /* then, for as_completed, uint32_t ring[n] */
};

#define MAX_ITEMS \
  ((lua_Integer)((INT_MAX - sizeof(waitset)) / \
                 (sizeof(wnode) + sizeof(uint32_t))))

static uint32_t *ring(waitset *s) {
  return (uint32_t *)(s->nodes + s->n);
}

static int satisfied(const waitset *s) {
  switch (s->mode) {
    case M_FIRST: return s->done > 0 || s->n == 0;
    case M_FIRST_ERROR: return s->failed > 0 || s->done == s->n;
    case M_ITER: return s->qcount > 0 || s->done == s->n;
    default: return s->done == s->n;
  }
}

static void node_fire(loom__waiter *w, int failed) {
  wnode *nd = (wnode *)w;
  waitset *s = nd->s;
  uint32_t i = (uint32_t)(nd - s->nodes);
  (void)failed;
  s->done++;
  if (nd->child->state == LOOM_FAILED) {
    s->failed++;
    /* race and settle take every failure as seen (as Promise.race and
    ** allSettled do, and gather); wait and as_completed hand the tasks
    ** to the caller, who looks at them */
    if (s->handles) s->lm->failure_handled = 1;
  }
  if (s->first == 0) s->first = i + 1;
  if (s->mode == M_ITER) ring(s)[(s->qhead + s->qcount++) % s->n] = i;
  if (s->waiter != NULL && satisfied(s)) loom__wake(s->waiter);
}

static void deadline_fire(loom__waiter *w, int failed) {
  waitset *s = (waitset *)((char *)w - offsetof(waitset, dl));
  (void)failed;
  s->armed = 0;
  s->expired = 1;
  if (s->waiter != NULL) loom__wake(s->waiter);
}

/* Lets go of the tasks and the deadline (no Lua: hooks call it). */
static void release(loom_t *lm, waitset *s) {
  if (s->released) return;
  s->released = 1;
  for (uint32_t i = 0; i < s->n; i++) loom__list_unlink(&s->nodes[i].w);
  if (s->armed) {
    s->armed = 0;
    loom__deadline_cancel(lm, &s->dl, s->bucket);
  }
}

static void waiter_cancel(loom_task_t *t, void *data, int woken) {
  waitset *s = data;
  (void)woken;
  s->waiter = NULL;
  s->cancelled = 1;
  if (s->mode != M_ITER) release(loom__task_loom(t), s);
}

static const loom__wait set_wait = { "several tasks", waiter_cancel, NULL };

/* ---- making one ----------------------------------------------------- */

static void push_item(lua_State *L, int base, lua_Integer i, int as_table) {
  if (as_table) lua_rawgeti(L, base, i);
  else lua_pushvalue(L, base + (int)i - 1);
}

/* Checks the items (at base.., or in the table at base) before anything is
** spawned, so a bad one leaves nothing behind. */
static lua_Integer check_items(lua_State *L, loom_t *lm, int base, int n,
                               int as_table, const char *fname) {
  lua_Integer count = as_table ? (lua_Integer)lua_rawlen(L, base) : n;
  if (count < 0 || count > MAX_ITEMS)
    luaL_error(L, "%s: too many items (at most %I)", fname, MAX_ITEMS);
  for (lua_Integer i = 1; i <= count; i++) {
    push_item(L, base, i, as_table);
    loom_task_t *t = loom__totask(L, lm, -1);
    if (t != NULL && t == lm->current)
      luaL_error(L, "%s: a task cannot await itself", fname);
    if (t == NULL && !lua_isfunction(L, -1)) {
      if (as_table)
        luaL_error(L, "bad argument #%d to '%s' (item %I is a %s, expected "
                   "a task or a function)", base, fname, i,
                   luaL_typename(L, -1));
      luaL_typeerror(L, base + (int)i - 1, "task or function");
    }
    lua_pop(L, 1);
  }
  return count;
}

/* Pushes the tasks table and the state; spawns the functions; links the
** nodes. Returns the state (at the top; the tasks just below). */
static waitset *new_set(lua_State *L, loom_t *lm, int base, lua_Integer n,
                        int as_table, int mode, const char *fname,
                        const loom__type *ty) {
  lua_createtable(L, (int)n, 0);
  int tasks = lua_gettop(L);
  size_t size = sizeof(waitset) + (size_t)n * sizeof(wnode) +
                (mode == M_ITER ? (size_t)n * sizeof(uint32_t) : 0);
  waitset *s;
  if (ty != NULL) {  /* as_completed: a type with __gc and __close */
    s = lua_newuserdatauv(L, size, 1);
    memset(s, 0, size);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ty->ref);
    lua_setmetatable(L, -2);
  } else {
    s = lua_newuserdatauv(L, size, 0);
    memset(s, 0, size);
  }
  s->tag = LOOM_WAITSET_TAG;
  s->n = (uint32_t)n;
  s->mode = (uint8_t)mode;
  s->as_table = (uint8_t)as_table;
  s->lm = lm;
  s->released = 1;  /* nothing linked yet */
  s->dl.fire = deadline_fire;
  for (lua_Integer i = 1; i <= n; i++) {
    wnode *nd = &s->nodes[i - 1];
    nd->s = s;
    nd->w.fire = node_fire;
    push_item(L, base, i, as_table);
    loom_task_t *t = loom__totask(L, lm, -1);
    if (t == NULL) t = loom__spawn(L, lm, 0, fname);
    lua_rawseti(L, tasks, i);
    nd->child = t;
  }
  s->released = 0;
  for (uint32_t i = 0; i < s->n; i++) {
    loom_task_t *t = s->nodes[i].child;
    if (t->state < LOOM_DONE) {
      loom__list_push(&t->waiters, &s->nodes[i].w);
    } else {
      s->done++;
      if (t->state == LOOM_FAILED) s->failed++;
      if (s->first == 0) s->first = i + 1;
      if (mode == M_ITER) ring(s)[s->qcount++] = i;
    }
  }
  return s;
}

/* Arms the deadline of the state at idx (seconds < 0: none). */
static void arm(lua_State *L, loom_t *lm, waitset *s, int idx, double sec,
                int anchored, const char *fname) {
  if (sec < 0) return;
  s->seconds = sec;
  if (anchored) loom__anchor(L, lm, idx);
  s->bucket = loom__deadline_start(lm, &s->dl, sec * 1000.0);
  if (s->bucket == NULL) {
    if (anchored) loom__unanchor(L, lm, (loom__anchored *)s);
    luaL_error(L, "%s: not enough memory", fname);
  }
  s->armed = 1;
}

/* The state at idx with the tasks just below, as made (the debug library
** could have replaced either). */
static waitset *checkset(lua_State *L, int idx, const char *fname) {
  waitset *s = lua_touserdata(L, idx);
  if (s == NULL || lua_type(L, idx) != LUA_TUSERDATA ||
      lua_rawlen(L, idx) < sizeof *s || s->tag != LOOM_WAITSET_TAG ||
      lua_type(L, idx - 1) != LUA_TTABLE)
    luaL_error(L, "%s: its state was tampered with", fname);
  return s;
}

static void cancel_all(loom_t *lm, waitset *s, uint32_t except) {
  for (uint32_t i = 0; i < s->n; i++)
    if (i + 1 != except) loom__cancel(lm, s->nodes[i].child, NULL);
}

/* Suspends until the state at sidx is satisfied, then k. */
static int wait_set(lua_State *L, loom_t *lm, waitset *s, int sidx,
                    lua_KFunction k) {
  if (satisfied(s) || s->expired) return k(L, LUA_OK, sidx);
  s->waiter = lm->current;
  return loom__suspend(L, lm, &set_wait, s, sidx, k);
}

/* What every continuation does first: let go, then raise Cancelled if
** the waiter was cancelled (race and settle cancel their tasks first). */
static waitset *resumed(lua_State *L, loom_t *lm, int sidx, int cancel,
                        const char *fname) {
  waitset *s = checkset(L, sidx, fname);
  s->waiter = NULL;
  release(lm, s);
  loom__unanchor(L, lm, (loom__anchored *)s);
  if (s->cancelled && cancel) cancel_all(lm, s, 0);
  loom__resumed(L, lm);
  return s;
}

/* ---- loom.wait ------------------------------------------------------ */

/* Reads opts at idx: return_when and timeout (-1: none). */
static int read_opts(lua_State *L, int idx, int modes, double *timeout,
                     const char *fname) {
  static const char *const names[] = { "all", "first", "first_error", NULL };
  int mode = M_ALL;
  *timeout = -1;
  if (lua_isnoneornil(L, idx)) return mode;
  luaL_checktype(L, idx, LUA_TTABLE);
  if (modes) {
    lua_getfield(L, idx, "return_when");
    if (!lua_isnil(L, -1)) {
      const char *w = lua_tostring(L, -1);
      int i = 0;
      while (w != NULL && names[i] != NULL && strcmp(names[i], w) != 0) i++;
      if (w == NULL || names[i] == NULL)
        luaL_error(L, "bad argument #%d to '%s' (return_when must be "
                   "\"all\", \"first\" or \"first_error\")", idx, fname);
      mode = i;
    }
    lua_pop(L, 1);
  }
  lua_getfield(L, idx, "timeout");
  if (!lua_isnil(L, -1)) {
    int isnum;
    lua_Number t = lua_tonumberx(L, -1, &isnum);
    if (!isnum || !(t >= 0))
      luaL_error(L, "bad argument #%d to '%s' (timeout must be a "
                 "non-negative number)", idx, fname);
    *timeout = (double)t;
  }
  lua_pop(L, 1);
  return mode;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  loom_t *lm = loom__up(L);
  int sidx = (int)ctx, tasks = sidx - 1;
  (void)status;
  waitset *s = resumed(L, lm, sidx, 0, "wait");
  lua_createtable(L, (int)s->done, 0);
  lua_createtable(L, (int)(s->n - s->done), 0);
  int nd = 0, np = 0;
  for (uint32_t i = 0; i < s->n; i++) {
    lua_rawgeti(L, tasks, (lua_Integer)i + 1);
    if (s->nodes[i].child->state >= LOOM_DONE)
      lua_rawseti(L, -3, ++nd);
    else
      lua_rawseti(L, -2, ++np);
  }
  return 2;
}

/* loom.wait(tasks [, opts]) -> done, pending */
static int l_wait(lua_State *L) {
  loom_t *lm = loom__up(L);
  double timeout;
  luaL_checktype(L, 1, LUA_TTABLE);
  int mode = read_opts(L, 2, 1, &timeout, "wait");
  lua_Integer n = check_items(L, lm, 1, 1, 1, "wait");
  loom__prepare_suspend(L, lm, "wait");
  lua_settop(L, 1);
  waitset *s = new_set(L, lm, 1, n, 1, mode, "wait", NULL);
  int sidx = lua_gettop(L);
  if (!satisfied(s)) arm(L, lm, s, sidx, timeout, 1, "wait");
  return wait_set(L, lm, s, sidx, wait_k);
}

/* ---- loom.race ------------------------------------------------------ */

static int race_k(lua_State *L, int status, lua_KContext ctx) {
  loom_t *lm = loom__up(L);
  int sidx = (int)ctx, tasks = sidx - 1;
  (void)status;
  waitset *s = resumed(L, lm, sidx, 1, "race");
  cancel_all(lm, s, s->first);
  lua_rawgeti(L, tasks, (lua_Integer)s->first);
  return loom__task_results(L, lm, s->nodes[s->first - 1].child,
                            lua_gettop(L), "race");
}

/* loom.race(...) / loom.race{...} */
static int l_race(lua_State *L) {
  loom_t *lm = loom__up(L);
  int n = lua_gettop(L);
  int as_table = n == 1 && lua_type(L, 1) == LUA_TTABLE;
  lua_Integer count = check_items(L, lm, 1, n, as_table, "race");
  if (count == 0)
    return luaL_argerror(L, 1, "at least one task or function expected");
  loom__prepare_suspend(L, lm, "race");
  waitset *s = new_set(L, lm, 1, count, as_table, M_FIRST, "race", NULL);
  s->handles = 1;
  return wait_set(L, lm, s, lua_gettop(L), race_k);
}

/* ---- loom.settle ---------------------------------------------------- */

static void push_outcome(lua_State *L, loom_t *lm, loom_task_t *t,
                         int task) {
  lua_createtable(L, 0, 2);
  lua_pushboolean(L, t->state == LOOM_DONE);
  lua_setfield(L, -2, "ok");
  if (t->state == LOOM_DONE) {
    loom__task_first_result(L, t, task);
    lua_setfield(L, -2, "value");
    return;
  }
  lua_getiuservalue(L, task, 1);
  loom__failure *f = loom__tofailure(L, lm, -1);
  if (f != NULL) {
    loom__failure_retrieved(f);
    loom__failure_error(L, -1);
  } else {
    lua_pushliteral(L, "settle: the task's record was tampered with");
  }
  lua_setfield(L, -3, "error");
  lua_pop(L, 1);
}

static int settle_k(lua_State *L, int status, lua_KContext ctx) {
  loom_t *lm = loom__up(L);
  int sidx = (int)ctx, tasks = sidx - 1;
  (void)status;
  waitset *s = resumed(L, lm, sidx, 1, "settle");
  int n = (int)s->n;
  if (s->as_table) lua_createtable(L, n, 0);
  else if (!lua_checkstack(L, n + LUA_MINSTACK))
    return luaL_error(L, "settle: too many results (%d)", n);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, tasks, i);
    push_outcome(L, lm, s->nodes[i - 1].child, lua_gettop(L));
    lua_remove(L, -2);
    if (s->as_table) lua_rawseti(L, -2, i);
  }
  return s->as_table ? 1 : n;
}

/* loom.settle(...) / loom.settle{...} */
static int l_settle(lua_State *L) {
  loom_t *lm = loom__up(L);
  int n = lua_gettop(L);
  int as_table = n == 1 && lua_type(L, 1) == LUA_TTABLE;
  lua_Integer count = check_items(L, lm, 1, n, as_table, "settle");
  loom__prepare_suspend(L, lm, "settle");
  waitset *s = new_set(L, lm, 1, count, as_table, M_ALL, "settle", NULL);
  s->handles = 1;
  return wait_set(L, lm, s, lua_gettop(L), settle_k);
}

/* ---- loom.as_completed ---------------------------------------------- */

/* The iterator's state (upvalue 2; the tasks are its user value). */
static waitset *iterstate(lua_State *L) {
  waitset *s = lua_touserdata(L, lua_upvalueindex(2));
  if (s == NULL || s->tag != LOOM_WAITSET_TAG || s->mode != M_ITER)
    luaL_error(L, "as_completed: its state was tampered with");
  return s;
}

/* Pushes the next finished task (qcount > 0). */
static int give_next(lua_State *L, waitset *s) {
  uint32_t i = ring(s)[s->qhead];
  s->qhead = (s->qhead + 1) % s->n;
  s->qcount--;
  lua_getiuservalue(L, lua_upvalueindex(2), 1);
  lua_rawgeti(L, -1, (lua_Integer)i + 1);
  return 1;
}

static int next_k(lua_State *L, int status, lua_KContext ctx) {
  loom_t *lm = loom__up(L);
  waitset *s = (waitset *)ctx;
  (void)status;
  s->waiter = NULL;
  loom__resumed(L, lm);
  if (s->qcount > 0) return give_next(L, s);
  if (s->expired) {
    loom__push_timeout(L, s->seconds, " (as_completed)");
    return lua_error(L);
  }
  return 0;  /* all given */
}

static int as_next(lua_State *L) {
  loom_t *lm = loom__up(L);
  waitset *s = iterstate(L);
  if (s->qcount > 0) return give_next(L, s);
  if (s->done == s->n || s->released) return 0;
  if (s->expired) {
    loom__push_timeout(L, s->seconds, " (as_completed)");
    return lua_error(L);
  }
  if (s->waiter != NULL)
    return luaL_error(L, "as_completed: another task is already waiting "
                      "on this iterator");
  loom__prepare_suspend(L, lm, "as_completed");
  s->waiter = lm->current;
  return loom__suspend(L, lm, &set_wait, s, (lua_KContext)s, next_k);
}

/* __gc and __close of the state: a loop left early lets go. */
static int as_release(lua_State *L) {
  loom_t *lm = loom__up_or_null(L);
  waitset *s = lua_touserdata(L, 1);
  if (lm == NULL || s == NULL || lua_rawlen(L, 1) < sizeof *s ||
      s->tag != LOOM_WAITSET_TAG)
    return 0;
  if (s->waiter == NULL) release(lm, s);
  return 0;
}

/* loom.as_completed(tasks [, {timeout = s}]) -> iterator, nil, nil, state */
static int l_as_completed(lua_State *L) {
  loom_t *lm = loom__up(L);
  double timeout;
  luaL_checktype(L, 1, LUA_TTABLE);
  read_opts(L, 2, 0, &timeout, "as_completed");
  lua_Integer n = check_items(L, lm, 1, 1, 1, "as_completed");
  lua_settop(L, 1);
  waitset *s = new_set(L, lm, 1, n, 1, M_ITER, "as_completed",
                       &lm->waitset_type);
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, 1);  /* the tasks */
  if (s->done < s->n) arm(L, lm, s, -1, timeout, 0, "as_completed");
  loom__push_box(L);
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, as_next, 2);
  lua_pushnil(L);
  lua_pushnil(L);
  lua_pushvalue(L, -4);  /* the closing value */
  return 4;
}

void loom__open_waitset(lua_State *L, loom_t *lm) {
  static const luaL_Reg state_mm[] = {
    {"__gc", as_release}, {"__close", as_release}, {NULL, NULL}
  };
  static const luaL_Reg fns[] = {
    {"wait", l_wait}, {"race", l_race}, {"settle", l_settle},
    {"as_completed", l_as_completed}, {NULL, NULL}
  };
  luaL_newmetatable(L, "loom.AsCompleted");
  lm->waitset_type.name = "loom.AsCompleted";
  loom__type_init(L, &lm->waitset_type, 0);
  loom__setfuncs(L, state_mm);
  lua_pop(L, 1);
  loom__setfuncs(L, fns);
}
