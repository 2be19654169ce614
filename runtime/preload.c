/*
** preload.c: serves from package.preload the bindings (bindings/NAME.c,
** as luaopen_loom_NAME) and the standard library written in Lua
** (lib/loom/NAME.lua, compiled into the binary as byte arrays by
** cmake/embed_lua.cmake), so loom runs with no files installed beside it.
** loom.NAME loads them on first use.
*/
#include "internal.h"

typedef struct loom__embedded {
  const char *name;       /* "loom.json" */
  const char *chunkname;  /* "@loom/json.lua" */
  const unsigned char *data;
  size_t size;
} loom__embedded;

extern const loom__embedded loom__embedded_modules[];

static int load_embedded(lua_State *L) {
  const loom__embedded *m = lua_touserdata(L, lua_upvalueindex(1));
  if (luaL_loadbuffer(L, (const char *)m->data, m->size, m->chunkname))
    return lua_error(L);
  lua_pushstring(L, m->name);
  lua_call(L, 1, 1);
  return 1;
}

/* The bindings: one luaopen_loom_<name> per file of bindings/. */
int luaopen_loom_timer(lua_State *L);
int luaopen_loom_io(lua_State *L);
int luaopen_loom_fs(lua_State *L);
int luaopen_loom_tcp(lua_State *L);
int luaopen_loom_dns(lua_State *L);
int luaopen_loom_process(lua_State *L);
int luaopen_loom_signal(lua_State *L);
int luaopen_loom_worker(lua_State *L);
int luaopen_loom_http_core(lua_State *L);
int luaopen_loom_sync(lua_State *L);
int luaopen_loom_debug(lua_State *L);

static const luaL_Reg bindings[] = {
  {"loom.timer", luaopen_loom_timer},
  {"loom.io", luaopen_loom_io},
  {"loom.fs", luaopen_loom_fs},
  {"loom.tcp.core", luaopen_loom_tcp},
  {"loom.dns", luaopen_loom_dns},
  {"loom.process.core", luaopen_loom_process},
  {"loom.signal.core", luaopen_loom_signal},
  {"loom.worker", luaopen_loom_worker},
  {"loom.http.core", luaopen_loom_http_core},
  {"loom.sync", luaopen_loom_sync},
  {"loom.debug", luaopen_loom_debug},
  {NULL, NULL}
};

void loom__open_preload(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  luaL_setfuncs(L, bindings, 0);
  for (const loom__embedded *m = loom__embedded_modules; m->name; m++) {
    lua_pushlightuserdata(L, (void *)m);
    lua_pushcclosure(L, load_embedded, 1);
    lua_setfield(L, -2, m->name);
  }
  lua_pop(L, 1);
}
