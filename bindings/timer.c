/*
** timer.c: loom.sleep and loom.now (require "loom.timer"; also found in
** the loom table). A sleep is a wait on the runtime's deadlines
** (runtime/deadline.c): no handle and no allocation per sleeping task.
** sleep(0) re-queues the task for the next turn of the loop.
*/
#include "../runtime/binding.h"

static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  loom__resumed(L, loom__up(L));
  return 0;
}

static int l_sleep(lua_State *L) {
  loom_t *lm = loom__up(L);
  lua_Number s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s >= 0, 1, "non-negative number expected");
  loom__prepare_suspend(L, lm, "sleep");
  return loom__wait_ms(L, lm, s * 1000.0, 0, sleep_k);
}

static int l_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e9);
  return 1;
}

int luaopen_loom_timer(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"sleep", l_sleep}, {"now", l_now}, {NULL, NULL}
  };
  if (loom_get(L) == NULL)
    return luaL_error(L, "loom.timer: require \"loom\" first");
  lua_createtable(L, 0, 2);
  loom__setfuncs(L, fns);
  return 1;
}
