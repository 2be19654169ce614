/*
** api.c: the 'loom' module table: create_task/spawn, await, async,
** gather, future, run, sleep, now, Cancelled, is_cancelled, version, and
** loom.<name> submodules loaded on first use (loom.json, later loom.http,
** so a script that never touches them never pays for them). Also loom's
** os.exit, which stops the loop before the state is closed.
*/
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char os_exit_key = 0;  /* registry: Lua's own os.exit */

static int l_create_task(lua_State *L) {
  loom__checkcallable(L, 1);
  loom__spawn(L, loom__up(L), lua_gettop(L) - 1, "create_task");
  return 1;
}

static int l_spawn(lua_State *L) {
  loom__checkcallable(L, 1);
  loom__spawn(L, loom__up(L), lua_gettop(L) - 1, "spawn");
  return 1;
}

static int l_await(lua_State *L) {
  loom_t *lm = loom__up(L);
  luaL_checkany(L, 1);
  if (loom__totask(L, lm, 1)) return loom__await_task(L, lm, 1, "await");
  if (loom__tofuture(L, lm, 1))
    return loom__await_future(L, lm, 1, "await");
  return lua_gettop(L);  /* not awaitable: returned as is */
}

static int async_call(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_insert(L, 1);
  loom__spawn(L, loom__up(L), lua_gettop(L) - 1, "async");
  return 1;
}

static int l_async(lua_State *L) {
  loom__checkcallable(L, 1);
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_pushcclosure(L, async_call, 2);
  return 1;
}

static int call_os_exit(lua_State *L, int code, int close) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &os_exit_key);
  lua_pushinteger(L, code);
  lua_pushboolean(L, close);
  lua_call(L, 2, 0);
  return 0;
}

/* loom.run inside a task waits for the task it spawned, which nobody else
** holds: if the caller is cancelled, so is that task. */
static int run_k(lua_State *L, int status, lua_KContext ctx) {
  loom_t *lm = loom__up(L);
  loom_task_t *t = loom__totask(L, lm, (int)ctx);
  (void)status;
  if (t != NULL && t->state < LOOM_DONE) loom__cancel(lm, t, NULL);
  else if (t != NULL) loom__task_retrieve(L, lm, t, (int)ctx);  /* seen */
  loom__resumed(L, lm);
  if (t == NULL) return luaL_error(L, "run: the task was tampered with");
  return loom__task_results(L, lm, t, (int)ctx, "run");
}

static const loom__wait run_wait = {
  "loom.run", loom__list_cancel, loom__describe_task
};

static int l_run(lua_State *L) {
  loom_t *lm = loom__up(L);
  int nres, r;
  loom__checkcallable(L, 1);
  if (lm->exiting)
    return luaL_error(L, "run: the runtime is exiting");
  if (lm->running && !lm->current)
    return luaL_error(L, "run: the loop is already running");
  if (lm->current) {  /* already inside loom: spawn and await, never nest */
    loom__prepare_suspend(L, lm, "run");  /* first: spawn nothing if not */
    loom_task_t *t = loom__spawn(L, lm, lua_gettop(L) - 1, "run");
    return loom__wait_in_list(L, lm, &t->waiters, &run_wait, t,
                              lua_gettop(L), run_k);
  }
  loom__spawn(L, lm, lua_gettop(L) - 1, "run");
  r = loom_run(L, &nres);
  switch (r) {
    case 0:
      break;
    case LOOM_EFAILED:
      lua_pop(L, 1);  /* the traceback: the error itself goes on as is */
      return lua_error(L);
    case LOOM_EEXIT:
      return call_os_exit(L, lm->exit_code, lm->exit_close);
    default:
      return luaL_error(L, "run: %s", lua_tostring(L, -1));
  }
  int failures = loom__report_failures(lm);
  if (failures > 0)
    return luaL_error(L, "run: %d task(s) failed and nobody retrieved "
                      "the error (reported above)", failures);
  return nres;
}

static int l_is_cancelled(lua_State *L) {
  lua_pushboolean(L, loom__is_cancelled(L, 1));
  return 1;
}

static int l_report(lua_State *L) {
  lua_pushinteger(L, loom__report_failures(loom__up(L)));
  return 1;
}

/* Names of the loom table that are a submodule's: loom.Queue is
** loom.sync.Queue. */
static const char *const aliases[][2] = {
  {"Queue", "sync"}, {"Event", "sync"}, {"Semaphore", "sync"},
  {"Lock", "sync"}, {NULL, NULL}
};

/* loom.<name>: requires "loom.<name>" the first time, if loom has it. */
static int lazy_index(lua_State *L) {
  if (lua_type(L, 2) != LUA_TSTRING) return 0;
  const char *key = lua_tostring(L, 2), *field = NULL;
  for (int i = 0; aliases[i][0] != NULL; i++) {
    if (strcmp(key, aliases[i][0]) == 0) {
      field = key;
      key = aliases[i][1];
      break;
    }
  }
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  const char *name = lua_pushfstring(L, "loom.%s", key);
  if (lua_getfield(L, -2, name) == LUA_TNIL) return 0;
  lua_getglobal(L, "require");
  lua_pushstring(L, name);
  lua_call(L, 1, 1);
  if (field != NULL) {
    if (lua_type(L, -1) != LUA_TTABLE) return 0;
    lua_getfield(L, -1, field);
  }
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);
  return 1;
}

/* os.exit inside a task: stop the loop and let the host close the state
** once no task is running, instead of closing it under the scheduler. */
static int exit_k(lua_State *L, int status, lua_KContext ctx) {
  (void)L; (void)status; (void)ctx;
  return 0;  /* never resumed */
}

static const loom__wait exit_wait = { "os.exit", NULL, NULL };

/* os.exit(code, true) where the task cannot stop (a sort comparator, a
** __gc): as lua.c, close the main chunk's pending <close> variables and
** run the finalizers, right here, then exit. */
static void exit_closing(loom_t *lm, int code) {
  loom_task_t *m = lm->main_task;
  lm->exiting = 1;
  loom__watch_stop(lm);  /* it must not look at a state being closed */
  loom__report_failures(lm);
  if (m != NULL && m->thread != NULL) {
    loom__detach(lm, m);
    lua_resetthread(m->thread);
  }
  lua_close(lm->L);
  exit(code);
}

static int l_exit(lua_State *L) {
  loom_t *lm = loom__up(L);
  int code = EXIT_SUCCESS, close = lua_toboolean(L, 2);
  if (lua_isboolean(L, 1))
    code = lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE;
  else
    code = (int)luaL_optinteger(L, 1, EXIT_SUCCESS);
  if (lm->current == NULL)  /* not in a task: Lua's own */
    return call_os_exit(L, code, close);
  if (!loom__can_suspend(L, lm)) {  /* in a task that cannot stop */
    if (close) exit_closing(lm, code);
    return call_os_exit(L, code, 0);
  }
  lm->exit_requested = 1;
  lm->exit_code = code;
  lm->exit_close = close;
  lm->stopping = 1;
  uv_stop(lm->loop);
  return loom__suspend(L, lm, &exit_wait, NULL, 0, exit_k);
}

void loom__open_os(lua_State *L) {
  static const luaL_Reg fns[] = { {"exit", l_exit}, {NULL, NULL} };
  lua_getglobal(L, "os");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "exit");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &os_exit_key);
    loom__setfuncs(L, fns);
  }
  lua_pop(L, 1);
}

void loom__open_api(lua_State *L, loom_t *lm) {
  static const luaL_Reg fns[] = {
    {"create_task", l_create_task}, {"spawn", l_spawn}, {"await", l_await},
    {"async", l_async}, {"gather", loom__gather}, {"run", l_run},
    {"is_cancelled", l_is_cancelled}, {"report_unretrieved", l_report},
    {NULL, NULL}
  };
  loom__open_require(L);
  lua_newtable(L);
  loom__setfuncs(L, fns);
  /* sleep and now are the loom.timer binding's, in the loom table too */
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_getfield(L, -1, "loom.timer");
  luaL_requiref(L, "loom.timer", lua_tocfunction(L, -1), 0);
  lua_replace(L, -3);
  lua_pop(L, 1);
  lua_getfield(L, -1, "sleep");
  lua_setfield(L, -3, "sleep");
  lua_getfield(L, -1, "now");
  lua_setfield(L, -3, "now");
  lua_pop(L, 1);
  loom__open_future(L, lm);
  lua_setfield(L, -2, "future");
  loom__open_timeout(L, lm);
  loom__open_group(L, lm);
  loom__open_waitset(L, lm);
  luaL_getmetatable(L, LOOM_CANCELLED_MT);
  lua_setfield(L, -2, "Cancelled");
  lua_pushliteral(L, LOOM_VERSION);
  lua_setfield(L, -2, "version");
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, lazy_index);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
}
