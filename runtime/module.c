/*
** module.c: require "loom" from a stock lua5.4 (loom.so). The runtime is
** created in the requiring state with its own loop; loom.run drives it.
*/
#include "internal.h"

LOOM_API int luaopen_loom(lua_State *L) {
  if (loom_get(L) != NULL) {
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "loom");
    return 1;
  }
  if (loom_open(L, NULL) == NULL)
    return luaL_error(L, "loom: cannot start the runtime");
  return 1;
}
