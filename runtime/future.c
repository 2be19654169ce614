/*
** future.c: loom.future(), the low-level awaitable. Set once (with any
** number of values, or a failure), awaited by any number of tasks; the
** primitive that library code (queues, HTTP) builds on.
*/

#include "internal.h"

enum { F_PENDING, F_DONE, F_FAILED };
static const char *const fstate_names[] = { "pending", "done", "failed" };

typedef struct loom_future {
  uint32_t tag;      /* LOOM_FUTURE_TAG */
  uint32_t nvalues;
  loom__link waiters;
  uint8_t state;
} loom_future_t;

/* user value 1: its values (loom__pack), or a failure record (error.c),
** made by fail: a future that fails and is never awaited is reported as a
** task is */

static loom_future_t *checkfuture(lua_State *L, loom_t *lm) {
  return loom__type_check(L, &lm->future_type, LOOM_FUTURE_TAG);
}

/* loom.future(): upvalue 2 is the metatable (a future per wait is the
** hot path of channels built on futures: no registry lookup here) */
static int f_new(lua_State *L) {
  loom__up(L);
  loom_future_t *f = lua_newuserdatauv(L, sizeof *f, 1);
  f->tag = LOOM_FUTURE_TAG;
  f->nvalues = 0;
  f->state = F_PENDING;
  loom__list_init(&f->waiters);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_setmetatable(L, -2);
  return 1;
}

static void check_pending(lua_State *L, loom_future_t *f, const char *fn) {
  if (f->state != F_PENDING)
    luaL_error(L, "%s: future is already %s", fn, fstate_names[f->state]);
}

static void settle(loom_future_t *f, int state) {
  f->state = (uint8_t)state;
  loom__list_fire(&f->waiters, state == F_FAILED);
}

/* f:set(...) */
static int f_set(lua_State *L) {
  loom_future_t *f = checkfuture(L, loom__up(L));
  int n = lua_gettop(L) - 1;
  check_pending(L, f, "set");
  loom__pack(L, n);
  lua_setiuservalue(L, 1, 1);
  f->nvalues = (uint32_t)n;
  settle(f, F_DONE);
  return 0;
}

/* f:fail(err) */
static int f_fail(lua_State *L) {
  loom_t *lm = loom__up(L);
  loom_future_t *f = checkfuture(L, lm);
  luaL_checkany(L, 2);
  check_pending(L, f, "fail");
  lua_settop(L, 2);
  loom__failure_new_future(L, lm);
  lua_setiuservalue(L, 1, 1);
  settle(f, F_FAILED);
  return 0;
}

static int f_done(lua_State *L) {
  lua_pushboolean(L, checkfuture(L, loom__up(L))->state != F_PENDING);
  return 1;
}

static int f_status(lua_State *L) {
  lua_pushstring(L, fstate_names[checkfuture(L, loom__up(L))->state]);
  return 1;
}

static int values(lua_State *L, loom_future_t *f, int idx, const char *fn) {
  lua_getiuservalue(L, idx, 1);
  if (f->nvalues == 1 && f->state == F_DONE) return 1;  /* the usual case */
  if (f->state == F_FAILED) {
    loom__failure *rec = loom__tofailure(L, loom_get(L), -1);
    if (rec == NULL)
      return luaL_error(L, "%s: the future was tampered with", fn);
    loom__failure_retrieved(rec);
    loom__failure_error(L, -1);
    return lua_error(L);
  }
  int n = loom__unpack(L, -1, (int)f->nvalues, fn);
  lua_remove(L, -n - 1);
  return n;
}

static int f_result(lua_State *L) {
  loom_future_t *f = checkfuture(L, loom__up(L));
  if (f->state == F_PENDING) return luaL_error(L, "result: future not done");
  return values(L, f, 1, "result");
}

static const loom__wait future_wait = { "a future", loom__list_cancel, NULL };

static int await_k(lua_State *L, int status, lua_KContext ctx) {
  int idx = (int)ctx;
  loom_t *lm = loom__up(L);
  (void)status;
  loom__resumed(L, lm);
  loom_future_t *f = loom__tofuture(L, lm, idx);
  if (f == NULL) return luaL_error(L, "await: the future was tampered with");
  return values(L, f, idx, "await");
}

int loom__await_future(lua_State *L, loom_t *lm, int idx, const char *fn) {
  loom_future_t *f = lua_touserdata(L, idx);
  if (f->state != F_PENDING) return values(L, f, idx, fn);
  loom__prepare_suspend(L, lm, fn);
  return loom__wait_in_list(L, lm, &f->waiters, &future_wait, f, idx,
                            await_k);
}

loom__link *loom__future_waiters(lua_State *L, loom_t *lm, int idx) {
  loom_future_t *f = loom__tofuture(L, lm, idx);
  return f != NULL && f->state == F_PENDING ? &f->waiters : NULL;
}

/* f:await([seconds]) */
static int f_await(lua_State *L) {
  loom_t *lm = loom__up(L);
  checkfuture(L, lm);
  if (!lua_isnoneornil(L, 2)) return loom__wait_for(L, lm, 1, 2, "await");
  return loom__await_future(L, lm, 1, "await");
}

static int f_tostring(lua_State *L) {
  loom_future_t *f = checkfuture(L, loom__up(L));
  lua_pushfstring(L, "loom.Future: %p (%s)", (void *)f,
                  fstate_names[f->state]);
  return 1;
}

int loom__open_future(lua_State *L, loom_t *lm) {
  static const luaL_Reg methods[] = {
    {"set", f_set}, {"fail", f_fail}, {"done", f_done},
    {"status", f_status}, {"result", f_result}, {"await", f_await},
    {NULL, NULL}
  };
  luaL_newmetatable(L, LOOM_FUTURE_MT);
  lm->future_type.name = LOOM_FUTURE_MT;
  loom__type_init(L, &lm->future_type, sizeof(loom_future_t));
  static const luaL_Reg metamethods[] = {
    {"__tostring", f_tostring}, {NULL, NULL}
  };
  loom__setfuncs(L, metamethods);
  lua_newtable(L);
  loom__setfuncs(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  loom__push_box(L);
  luaL_getmetatable(L, LOOM_FUTURE_MT);
  lua_pushcclosure(L, f_new, 2);
  return 1;  /* leaves loom.future on the stack */
}
