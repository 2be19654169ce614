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

/* The cause of a task's error is kept under the address just past the
** task, a key nothing else uses. */
#define CAUSE_KEY(t) ((const char *)(t) + 1)

/* Pushes "\n(task spawned at file:line<more>)" for the failed task whose
** record is at rec, or "\n(<more>)" without the spawn site. */
static void push_spawn_site(lua_State *L, loom_task_t *t, int rec,
                            const char *more) {
  lua_Debug ar;
  if (lua_rawgeti(L, rec, LOOM_REC_SPAWNER) == LUA_TFUNCTION) {
    lua_getinfo(L, ">S", &ar);  /* pops the function */
    lua_pushfstring(L, "\n(task spawned at %s:%d%s%s)", ar.short_src,
                    t->spawn_line, *more ? ", " : "", more);
  } else {
    lua_pop(L, 1);
    lua_pushfstring(L, "%s%s%s", *more ? "\n(" : "", more, *more ? ")" : "");
  }
}

void loom__stash_cause(lua_State *L, loom_task_t *me, loom_task_t *failed,
                       int idx) {
  int top = lua_gettop(L);
  lua_getiuservalue(L, idx, 1);  /* the record */
  int rec = lua_gettop(L);
  lua_createtable(L, 2, 0);
  lua_rawgeti(L, rec, LOOM_REC_ERROR);
  lua_rawseti(L, -2, 1);
  if (lua_rawgeti(L, rec, LOOM_REC_TRACEBACK) != LUA_TSTRING) {
    lua_settop(L, top);  /* a cancellation: nothing to tell */
    return;
  }
  push_spawn_site(L, failed, rec, "awaited here:");
  lua_concat(L, 2);
  lua_rawseti(L, rec + 1, 2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, CAUSE_KEY(me));
  me->flags |= LOOM_TF_CAUSE;
  lua_settop(L, top);
}

void loom__drop_cause(lua_State *L, loom_task_t *me) {
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, CAUSE_KEY(me));
  me->flags &= ~LOOM_TF_CAUSE;
}

/* Runs at the point of the error, inside the failing task's thread:
** leaves the error value as it is and keeps the traceback in the
** registry under the task's address, where the body picks it up. If the
** error was re-raised from an awaited task, the traceback starts with
** where it was first raised. */
int loom__msgh(lua_State *T) {
  loom_t *lm = loom__thread_loom(T);
  loom_task_t *t = lm->current;
  if (t == NULL || loom__is_cancelled(T, 1)) return 1;
  luaL_traceback(T, T, NULL, 1);
  /* drop the last line: the task's body, a C function nobody wrote */
  size_t len;
  const char *tb = lua_tolstring(T, -1, &len);
  const char *last = strrchr(tb, '\n');
  if (last != NULL && strcmp(last, "\n\t[C]: in ?") == 0)
    lua_pushlstring(T, tb, (size_t)(last - tb));
  if ((t->flags & LOOM_TF_CAUSE) &&
      lua_rawgetp(T, LUA_REGISTRYINDEX, CAUSE_KEY(t)) == LUA_TTABLE) {
    lua_rawgeti(T, -1, 1);
    if (lua_rawequal(T, -1, 1)) {  /* this error is the awaited one */
      lua_rawgeti(T, -2, 2);       /* its traceback and spawn site */
      const char *own = lua_tostring(T, -4);
      const char *frames = strchr(own, '\n');  /* skip "stack traceback:" */
      lua_pushstring(T, frames ? frames : "");
      lua_concat(T, 2);
      lua_replace(T, -4);
    }
    lua_pop(T, 2);
    loom__drop_cause(T, t);
  }
  lua_rawsetp(T, LUA_REGISTRYINDEX, t);
  lua_settop(T, 1);
  return 1;
}

/* [value] -> text, and whether __tostring gave it */
static int errmsg(lua_State *L) {
  int own = 0;
  if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER)
    lua_pushstring(L, lua_tostring(L, 1));
  else if (luaL_callmeta(L, 1, "__tostring") &&
           lua_type(L, -1) == LUA_TSTRING)
    own = 1;
  else
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  lua_pushboolean(L, own);
  return 2;
}

int loom_push_errmsg(lua_State *L, int idx) {
  int own = 0;
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, errmsg);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 2, 0) == LUA_OK) {
    own = lua_toboolean(L, -1);
    lua_pop(L, 1);
  } else {
    lua_pop(L, 1);
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, idx));
  }
  return own;
}

/* The report of the failed task at idx: message, traceback, spawn site. */
void loom__push_report(lua_State *L, int idx) {
  loom_task_t *t = lua_touserdata(L, idx);
  lua_getiuservalue(L, idx, 1);  /* {error, traceback, spawner} */
  int rec = lua_gettop(L);
  lua_pushliteral(L, "error in a task nobody awaited: ");
  lua_rawgeti(L, rec, LOOM_REC_ERROR);
  loom_push_errmsg(L, -1);
  lua_remove(L, -2);
  if (lua_rawgeti(L, rec, LOOM_REC_TRACEBACK) == LUA_TSTRING) {
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
  } else {
    lua_pop(L, 1);
  }
  push_spawn_site(L, t, rec, "");
  lua_concat(L, lua_gettop(L) - rec);
  lua_remove(L, rec);
}
