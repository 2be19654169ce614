/*
** module.c: require "loom" from a stock lua5.4 (loom.so). The runtime is
** created in the requiring state with its own loop; loom.run drives it.
**
** A host that links libloom and opened a runtime may also let scripts
** require "loom" with loom.so on package.cpath: that is another copy of
** loom's code, whose own keys and loom_get know nothing of the host's
** runtime. So the runtime is found by a registry field any copy reads,
** and its module is returned as it is: one state, one runtime, whichever
** copy asks.
*/
#include "internal.h"

LOOM_API int luaopen_loom(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, LOOM_RUNTIME_FIELD) ==
      LUA_TUSERDATA && lua_getiuservalue(L, -1, 1) == LUA_TTABLE)
    return 1;  /* the module of the runtime already there */
  lua_settop(L, 0);
  if (loom_open(L, NULL) == NULL)
    return luaL_error(L, "loom: cannot start the runtime");
  return 1;
}
