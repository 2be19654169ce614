/*
** error.c: the Cancelled error type, the message handler of task bodies
** (it keeps a traceback beside the error, never inside it), and turning
** a task's failure into the text that gets reported.
*/
#include <string.h>

#include "internal.h"

static int cancelled_tostring(lua_State *L) {
  lua_getfield(L, 1, "message");
  if (!lua_isstring(L, -1)) lua_pushliteral(L, "task cancelled");
  lua_pushfstring(L, "Cancelled: %s", lua_tostring(L, -1));
  return 1;
}

void loom__open_error(lua_State *L) {
  luaL_newmetatable(L, LOOM_CANCELLED_MT);
  lua_pushcfunction(L, cancelled_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "Cancelled");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}

void loom__push_cancelled(lua_State *L) {
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "task cancelled");
  lua_setfield(L, -2, "message");
  luaL_setmetatable(L, LOOM_CANCELLED_MT);
}

int loom__is_cancelled(lua_State *L, int idx) {
  int yes = 0;
  if (lua_type(L, idx) == LUA_TTABLE && lua_getmetatable(L, idx)) {
    luaL_getmetatable(L, LOOM_CANCELLED_MT);
    yes = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  return yes;
}

/* Runs at the point of the error, inside the failing task's thread:
** leaves the error value as it is and keeps the traceback in the
** registry under the task's address, where the body picks it up. */
int loom__msgh(lua_State *T) {
  loom_t *lm = loom__thread_loom(T);
  if (lm->current == NULL || loom__is_cancelled(T, 1)) return 1;
  luaL_traceback(T, T, NULL, 1);
  /* drop the last line: the task's body, a C function nobody wrote */
  size_t len;
  const char *tb = lua_tolstring(T, -1, &len);
  const char *last = strrchr(tb, '\n');
  if (last != NULL && strcmp(last, "\n\t[C]: in ?") == 0)
    lua_pushlstring(T, tb, (size_t)(last - tb));
  lua_rawsetp(T, LUA_REGISTRYINDEX, lm->current);
  lua_settop(T, 1);
  return 1;
}

/* The text lua.c would print for the error value at idx. */
void loom__push_errmsg(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TSTRING || lua_type(L, idx) == LUA_TNUMBER)
    lua_pushstring(L, lua_tostring(L, idx));
  else if (luaL_callmeta(L, idx, "__tostring") && lua_isstring(L, -1))
    return;
  else
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, idx));
}

/* The report of the failed task at idx: message, traceback, spawn site. */
void loom__push_report(lua_State *L, int idx) {
  loom_task_t *t = lua_touserdata(L, idx);
  lua_Debug ar;
  lua_getiuservalue(L, idx, 1);  /* {error, traceback, spawner} */
  int rec = lua_gettop(L);
  lua_pushliteral(L, "error in a task nobody awaited: ");
  lua_rawgeti(L, rec, LOOM_REC_ERROR);
  loom__push_errmsg(L, -1);
  lua_remove(L, -2);
  if (lua_rawgeti(L, rec, LOOM_REC_TRACEBACK) == LUA_TSTRING) {
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
  } else {
    lua_pop(L, 1);
  }
  if (lua_rawgeti(L, rec, LOOM_REC_SPAWNER) == LUA_TFUNCTION &&
      lua_getinfo(L, ">S", &ar))
    lua_pushfstring(L, "\n(task spawned at %s:%d)", ar.short_src,
                    t->spawn_line);
  else
    lua_pop(L, 1);
  lua_concat(L, lua_gettop(L) - rec);
  lua_remove(L, rec);
}
