/*
** future.c: loom.future(), the low-level awaitable. Set once (with any
** number of values, or a failure), awaited by any number of tasks; the
** primitive that library code (queues, HTTP) builds on.
*/

#include "internal.h"

enum { F_PENDING, F_DONE, F_FAILED };
static const char *const fstate_names[] = { "pending", "done", "failed" };

typedef struct loom_future {
  loom__link waiters;
  uint32_t nvalues;
  uint8_t state;
} loom_future_t;

/* user value 1: the one value, a table of them, or the error */

static loom_future_t *checkfuture(lua_State *L, loom_t *lm) {
  return loom__checkself(L, lm->future_mt, LOOM_FUTURE_MT);
}

/* loom.future(): upvalue 2 is the metatable */
static int f_new(lua_State *L) {
  loom_future_t *f = lua_newuserdatauv(L, sizeof *f, 1);
  loom__list_init(&f->waiters);
  f->nvalues = 0;
  f->state = F_PENDING;
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_setmetatable(L, -2);
  return 1;
}

static void settle(lua_State *L, loom_future_t *f, int state) {
  if (f->state != F_PENDING)
    luaL_error(L, "future is already %s", fstate_names[f->state]);
  f->state = (uint8_t)state;
  loom__list_fire(&f->waiters, state == F_FAILED);
}

/* f:set(...) */
static int f_set(lua_State *L) {
  loom_future_t *f = checkfuture(L, loom__up(L));
  int n = lua_gettop(L) - 1;
  if (f->state != F_PENDING) settle(L, f, F_DONE);  /* raises */
  if (n == 1) {
    lua_setiuservalue(L, 1, 1);
  } else if (n > 1) {
    lua_createtable(L, n, 0);
    lua_insert(L, 2);
    for (int i = n; i >= 1; i--) lua_rawseti(L, 2, i);
    lua_setiuservalue(L, 1, 1);
  }
  f->nvalues = (uint32_t)n;
  settle(L, f, F_DONE);
  return 0;
}

/* f:fail(err) */
static int f_fail(lua_State *L) {
  loom_future_t *f = checkfuture(L, loom__up(L));
  luaL_checkany(L, 2);
  if (f->state != F_PENDING) settle(L, f, F_FAILED);  /* raises */
  lua_settop(L, 2);
  lua_setiuservalue(L, 1, 1);
  settle(L, f, F_FAILED);
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

static int values(lua_State *L, loom_future_t *f, int idx) {
  int n = (int)f->nvalues;
  if (f->state == F_FAILED) {
    lua_getiuservalue(L, idx, 1);
    return lua_error(L);
  }
  if (n == 0) return 0;
  luaL_checkstack(L, n + 1, "too many values");
  lua_getiuservalue(L, idx, 1);
  if (n == 1) return 1;
  for (int i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -n - 1);
  return n;
}

static int f_result(lua_State *L) {
  loom_future_t *f = checkfuture(L, loom__up(L));
  if (f->state == F_PENDING) return luaL_error(L, "result: future not done");
  return values(L, f, 1);
}

static const loom__wait future_wait = { "a future", loom__stop_waiting };

static int await_k(lua_State *L, int status, lua_KContext ctx) {
  int idx = (int)ctx;
  (void)status;
  loom__resumed(L, loom__up(L));
  return values(L, lua_touserdata(L, idx), idx);
}

static int wait_for(lua_State *L, loom_t *lm, loom_future_t *f, int idx,
                    const char *fn) {
  loom_task_t *me = loom__prepare_suspend(L, lm, fn);
  loom__wait_on(&f->waiters, me);
  return loom__suspend(L, lm, &future_wait, idx, await_k);
}

int loom__await_future(lua_State *L, loom_t *lm, int idx, const char *fn) {
  loom_future_t *f = lua_touserdata(L, idx);
  if (f->state != F_PENDING) return values(L, f, idx);
  return wait_for(L, lm, f, idx, fn);
}

static int f_await(lua_State *L) {
  loom_t *lm = loom__up(L);
  loom_future_t *f = checkfuture(L, lm);
  if (f->state != F_PENDING) return values(L, f, 1);
  return wait_for(L, lm, f, 1, "await");
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
  loom__keep_metatable(L, &lm->future_mt, &lm->future_mt_ref);
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
