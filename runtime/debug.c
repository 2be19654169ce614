/*
** debug.c: what loom says about the tasks that have not finished: each
** one's spawn site, what it waits on and the line where it waits. Used by
** the deadlock report (every task that waits, not only the main one) and
** by loom.debug.pending(), which the loom command prints at exit under
** --debug. Also the loom.debug module: enable/disable (the blocking
** detector, watchdog.c), pending(), tasks().
*/
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define LIST_MAX 20  /* tasks listed; then "... and N more" */

/* Pushes "task (spawned at x.lua:3) waits on a lock at x.lua:7". */
static void push_task_line(lua_State *L, loom_task_t *t) {
  int top = lua_gettop(L);
  lua_pushliteral(L, "task");
  loom__describe_task(L, NULL, t);  /* " (spawned at ...)", or "" */
  if (t->state == LOOM_PENDING) {
    lua_pushliteral(L, ", not started yet");
  } else if (t->flags & LOOM_TF_QUEUED) {
    lua_pushliteral(L, ", ready to run");
  } else if (t->flags & LOOM_TF_SUSPENDED) {
    lua_pushfstring(L, " waits on %s", t->wait ? t->wait->what
                                               : "something");
    if (t->wait != NULL && t->wait->describe != NULL)
      t->wait->describe(L, t, t->wait_data);
    if (loom__push_where(L, t)) {
      lua_pushliteral(L, " at ");
      lua_insert(L, -2);
    }
  } else {
    lua_pushliteral(L, ", running");
  }
  lua_concat(L, lua_gettop(L) - top);
}

int loom__push_waiting(lua_State *L, loom_t *lm, loom_task_t *skip,
                       const char *prefix) {
  int n = 0;
  luaL_checkstack(L, 20, "listing tasks");
  lua_rawgeti(L, LUA_REGISTRYINDEX, lm->live_ref);
  int live = lua_gettop(L);
  lua_pushliteral(L, "");  /* the text so far: one slot, whatever n is */
  for (uint32_t i = 1; i <= lm->live_top; i++) {  /* with holes */
    lua_rawgeti(L, live, 2 * (lua_Integer)i - 1);
    loom_task_t *t = loom__totask(L, lm, -1);
    lua_pop(L, 1);
    if (t == NULL || t == skip) continue;
    if (++n > LIST_MAX) continue;
    lua_pushstring(L, prefix);
    push_task_line(L, t);
    lua_concat(L, 3);
  }
  if (n > LIST_MAX) {
    lua_pushfstring(L, "%s... and %d more", prefix, n - LIST_MAX);
    lua_concat(L, 2);
  }
  lua_remove(L, live);
  return n;
}

/* loom.debug.pending(): a text listing the unfinished tasks (but the
** calling one), or nil if there are none. */
static int l_pending(lua_State *L) {
  loom_t *lm = loom__up(L);
  int n = loom__push_waiting(L, lm, lm->current, "\n  ");
  if (n == 0) return 0;
  lua_pushfstring(L, "%d task%s never finished:", n, n == 1 ? "" : "s");
  lua_insert(L, -2);
  lua_concat(L, 2);
  return 1;
}

/* loom.debug.tasks(): the unfinished tasks, as a sequence */
static int l_tasks(lua_State *L) {
  loom_t *lm = loom__up(L);
  lua_Integer n = 0;
  lua_createtable(L, (int)lm->live_count, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, lm->live_ref);
  for (uint32_t i = 1; i <= lm->live_top; i++) {  /* with holes */
    if (lua_rawgeti(L, -1, 2 * (lua_Integer)i - 1) == LUA_TNIL) lua_pop(L, 1);
    else lua_rawseti(L, -3, ++n);
  }
  lua_pop(L, 1);
  return 1;
}

/* loom.debug.enable([block_ms]): the blocking detector, on */
static int l_enable(lua_State *L) {
  loom_t *lm = loom__up(L);
  lua_Number ms = luaL_optnumber(L, 1, 100);
  luaL_argcheck(L, ms > 0 && ms < 1e9, 1, "milliseconds expected, "
                "more than 0");
  int r = loom__watch_start(lm, (double)ms);
  if (r != 0) return luaL_error(L, "enable: %s", uv_strerror(r));
  return 0;
}

static int l_disable(lua_State *L) {
  loom__watch_stop(loom__up(L));
  return 0;
}

static int l_enabled(lua_State *L) {
  lua_pushboolean(L, loom__up(L)->watch != NULL);
  return 1;
}

int luaopen_loom_debug(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"enable", l_enable}, {"disable", l_disable}, {"enabled", l_enabled},
    {"pending", l_pending}, {"tasks", l_tasks}, {NULL, NULL}
  };
  if (loom_get(L) == NULL)
    return luaL_error(L, "loom.debug: require \"loom\" first");
  lua_createtable(L, 0, 5);
  loom__setfuncs(L, fns);
  return 1;
}
