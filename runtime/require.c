/*
** require.c: loom's require, installed over Lua's at loom_open. It does
** what Lua 5.4's does (package.loaded first, then package.searchers in
** order, the same messages, loaded[name] = the loader's result or true,
** the loader data as a second result), with two differences:
**  - the loader runs as a call that can suspend, so a module's top level
**    may sleep or await when it is required from a task (module
**    top-level await); Lua's require calls it where nothing can yield;
**  - while a task loads a module, another task that requires it waits for
**    that load to end instead of loading it a second time; then it finds
**    it in package.loaded (or, if the load failed, tries itself). A module
**    that requires itself while loading (in the same task) is loaded
**    again, as Lua does.
*/
#include <string.h>

#include <lualib.h>

#include "internal.h"

static const char loading_key = 0;  /* registry: name -> a load under way */
static const char entry_mt_key = 0;  /* registry: the entries' metatable */

/* A load under way: who loads, who waits. In a to-be-closed slot of the
** loading require, and in the loading table; user value 1: the name. */
typedef struct loading {
  uint32_t tag;        /* LOOM_LOADING_TAG */
  loom_task_t *task;   /* the task loading it */
  const char *name;    /* user value 1's */
  loom__link waiters;
  uint8_t done;
} loading;

static void describe(lua_State *L, loom_task_t *t, void *data) {
  loading *ld = data;
  (void)t;
  lua_pushfstring(L, " (require \"%s\")", ld->name);
}

static const loom__wait loading_wait = {
  "a module that another task is loading", loom__list_cancel, describe
};

/* __close: the load ended (loaded, or failed): who waited looks again. */
static int loading_close(lua_State *L) {
  loading *ld = lua_touserdata(L, 1);
  if (ld == NULL || lua_rawlen(L, 1) != sizeof *ld ||
      ld->tag != LOOM_LOADING_TAG || ld->done)
    return 0;
  ld->done = 1;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &loading_key);
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, -1);
  if (lua_rawget(L, -3) == LUA_TUSERDATA && lua_touserdata(L, -1) == ld) {
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_rawset(L, -3);
  }
  loom__list_fire(&ld->waiters, 0);
  return 0;
}

/* Stack [name, loaded]: finds a loader through package.searchers (the
** package table is upvalue 2); pushes it and its data, or raises. */
static void find_loader(lua_State *L, const char *name) {
  luaL_Buffer msg;
  if (lua_getfield(L, lua_upvalueindex(2), "searchers") != LUA_TTABLE)
    luaL_error(L, "'package.searchers' must be a table");
  int searchers = lua_gettop(L);
  luaL_buffinit(L, &msg);
  for (lua_Integer i = 1;; i++) {
    luaL_addstring(&msg, "\n\t");
    if (lua_rawgeti(L, searchers, i) == LUA_TNIL) {
      lua_pop(L, 1);
      luaL_buffsub(&msg, 2);
      luaL_pushresult(&msg);
      luaL_error(L, "module '%s' not found:%s", name, lua_tostring(L, -1));
    }
    lua_pushstring(L, name);
    lua_call(L, 1, 2);
    if (lua_isfunction(L, -2)) break;
    if (lua_isstring(L, -2)) {
      lua_pop(L, 1);
      luaL_addvalue(&msg);
    } else {
      lua_pop(L, 2);
      luaL_buffsub(&msg, 2);
    }
  }
  /* [..., searchers, <msg buffer>?, loader, data] */
  lua_rotate(L, searchers, 2);
  lua_settop(L, searchers + 1);
}

static int require_step(lua_State *L);

static int waited_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  loom__resumed(L, loom__up(L));
  lua_settop(L, 2);
  return require_step(L);
}

/* [name, loaded, loader data, entry?, result] -> the two results */
static int loaded_k(lua_State *L, int status, lua_KContext ctx) {
  const char *name = lua_tostring(L, 1);
  (void)status; (void)ctx;
  if (!lua_isnil(L, -1)) lua_setfield(L, 2, name);
  else lua_pop(L, 1);
  if (lua_getfield(L, 2, name) == LUA_TNIL) {
    lua_pushboolean(L, 1);
    lua_copy(L, -1, -2);
    lua_setfield(L, 2, name);
  }
  lua_pushvalue(L, 3);
  return 2;
}

/* Stack [name, loaded]. */
static int require_step(lua_State *L) {
  loom_t *lm = loom__up(L);
  const char *name = lua_tostring(L, 1);
  if (lua_getfield(L, 2, name) != LUA_TNIL && lua_toboolean(L, -1))
    return 1;
  lua_pop(L, 1);
  loom_task_t *me = lm->current;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &loading_key);
  lua_pushvalue(L, 1);
  lua_rawget(L, -2);
  loading *ld = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (ld != NULL && ld->task != me && me != NULL &&
      loom__can_suspend(L, lm)) {  /* another task loads it: wait */
    lua_settop(L, 2);
    loom__prepare_suspend(L, lm, "require");
    return loom__wait_in_list(L, lm, &ld->waiters, &loading_wait, ld, 0,
                              waited_k);
  }
  lua_settop(L, 2);
  find_loader(L, name);  /* [name, loaded, loader, data] */
  lua_insert(L, 3);      /* [name, loaded, data, loader] */
  if (me != NULL) {
    ld = lua_newuserdatauv(L, sizeof *ld, 1);
    memset(ld, 0, sizeof *ld);
    ld->tag = LOOM_LOADING_TAG;
    ld->task = me;
    loom__list_init(&ld->waiters);
    lua_pushvalue(L, 1);
    ld->name = lua_tostring(L, -1);
    lua_setiuservalue(L, -2, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &entry_mt_key);
    lua_setmetatable(L, -2);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &loading_key);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    lua_insert(L, 4);    /* [name, loaded, data, entry, loader] */
    lua_toclose(L, 4);
  }
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 3);
  lua_callk(L, 2, 1, 0, loaded_k);
  return loaded_k(L, LUA_OK, 0);
}

static int l_require(lua_State *L) {
  luaL_checkstring(L, 1);
  lua_settop(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  return require_step(L);
}

void loom__open_require(lua_State *L) {
  int top = lua_gettop(L);
  if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) == LUA_TTABLE &&
      lua_getfield(L, -1, LUA_LOADLIBNAME) == LUA_TTABLE) {
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &loading_key);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, loading_close);
    lua_setfield(L, -2, "__close");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &entry_mt_key);
    loom__push_box(L);
    lua_pushvalue(L, -2);  /* the package table, for package.searchers */
    lua_pushcclosure(L, l_require, 2);
    lua_setglobal(L, "require");
  }
  lua_settop(L, top);
}
