/*
** values.c: loom's userdata types (recognised by size and tag, so no
** other userdata passes for one) and packed values (any number of
** results held as one Lua value: tasks, futures, queues and HTTP share it).
*/
#include <string.h>

#include "internal.h"

void loom__type_init(lua_State *L, loom__type *ty, size_t size) {
  ty->mt = lua_topointer(L, -1);
  ty->size = size;
  lua_pushvalue(L, -1);
  ty->ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

void *loom__type_new(lua_State *L, const loom__type *ty, int nuv,
                     uint32_t tag) {
  void *p = lua_newuserdatauv(L, ty->size, nuv);
  memset(p, 0, ty->size);
  *(uint32_t *)p = tag;
  /* at once, while it is the newest object: with a __gc, Lua then finds
  ** it at the head of its list (see luaC_checkfinalizer) */
  lua_rawgeti(L, LUA_REGISTRYINDEX, ty->ref);
  lua_setmetatable(L, -2);
  return p;
}

int loom__iscallable(lua_State *L, int idx) {
  if (lua_isfunction(L, idx)) return 1;
  if (luaL_getmetafield(L, idx, "__call") == LUA_TNIL) return 0;
  lua_pop(L, 1);
  return 1;
}

void loom__checkcallable(lua_State *L, int idx) {
  if (!loom__iscallable(L, idx)) luaL_typeerror(L, idx, "function");
}

void loom__pack(lua_State *L, int n) {
  if (n == 0) {
    lua_pushnil(L);
  } else if (n > 1) {
    lua_createtable(L, n, 0);
    lua_insert(L, -n - 1);
    for (int i = n; i >= 1; i--) lua_rawseti(L, -i - 1, i);
  }
}

int loom__unpack(lua_State *L, int idx, int n, const char *fname) {
  idx = lua_absindex(L, idx);
  if (n == 0) return 0;
  if (!lua_checkstack(L, n + LUA_MINSTACK))
    return luaL_error(L, "%s: too many results (%d)", fname, n);
  if (n == 1) {
    lua_pushvalue(L, idx);
    return 1;
  }
  if (lua_type(L, idx) != LUA_TTABLE)  /* only the debug library does it */
    return luaL_error(L, "%s: the results were tampered with", fname);
  for (int i = 1; i <= n; i++) lua_rawgeti(L, idx, i);
  return n;
}
