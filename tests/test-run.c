/*
** test-run.c: the life of a runtime on its own loop, seen from a C host:
** loom_open and loom_get, spawning a Lua function with loom_spawn,
** loom_run returning its results, tasks nobody awaits still running to the
** end, running again on the same state, and the calls that must refuse
** (a second loom_open, spawning a non-callable, loom_run from a task), and
** a runtime in a state with no standard library.
*/
#include "test.h"

/* loom_open pushes the module, registers it as package.loaded.loom and
** makes the runtime reachable from any thread of the state. */
static void test_open_get(void) {
  lua_State *L = test_newstate();
  ASSERT(loom_get(L) == NULL);
  loom_t *lm = loom_open(L, NULL);
  ASSERT(lm != NULL);
  ASSERT_INT_EQ(lua_gettop(L), 1);
  ASSERT(lua_istable(L, 1));
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "loom");
  ASSERT(lua_rawequal(L, 1, -1));
  lua_getfield(L, 1, "version");
  ASSERT_STR_EQ(lua_tostring(L, -1), LOOM_VERSION);
  lua_settop(L, 0);

  ASSERT(loom_get(L) == lm);
  lua_State *co = lua_newthread(L);
  ASSERT(loom_get(co) == lm);
  lua_pop(L, 1);
  uv_loop_t *loop = loom_loop(lm);
  ASSERT(loop != NULL);
  ASSERT_INT_EQ(uv_loop_alive(loop), 0);  /* a runtime alone is no work */

  /* A second runtime in the same state: refused, nothing pushed. */
  ASSERT(loom_open(L, NULL) == NULL);
  ASSERT_INT_EQ(lua_gettop(L), 0);
  ASSERT(loom_get(L) == lm);
  lua_close(L);
}

/* A Lua function that sleeps, spawned from C: loom_run waits for it and
** pushes everything it returned, trailing nil included. */
static void test_results(void) {
  loom_t *lm;
  lua_State *L = test_newloom(NULL, &lm);
  int n = -1;
  TEST_DO(L,
    "function work(a, b)\n"
    "  local t0 = loom.now()\n"
    "  sleep(0.05)\n"
    "  return a + b, 'slept', loom.now() - t0, nil\n"
    "end\n");
  lua_pushliteral(L, "below");  /* the host's own value stays put */
  lua_getglobal(L, "work");
  lua_pushinteger(L, 2);
  lua_pushinteger(L, 3);
  ASSERT_INT_EQ(loom_spawn(L, 2), 0);
  ASSERT_INT_EQ(lua_gettop(L), 2);
  ASSERT(luaL_testudata(L, -1, "loom.Task") != NULL);
  ASSERT_HAS(luaL_tolstring(L, -1, NULL), "(pending)");
  lua_pop(L, 1);

  double t0 = test_ms();
  ASSERT_INT_EQ(loom_run(L, &n), 0);
  double elapsed = test_ms() - t0;
  ASSERT_INT_EQ(n, 4);
  ASSERT_INT_EQ(lua_gettop(L), 1 + 4);
  ASSERT_STR_EQ(lua_tostring(L, 1), "below");
  ASSERT(lua_isinteger(L, 2));
  ASSERT_INT_EQ(lua_tointeger(L, 2), 5);
  ASSERT_STR_EQ(lua_tostring(L, 3), "slept");
  ASSERT(lua_tonumber(L, 4) >= 0.049);
  ASSERT(lua_isnil(L, 5));
  ASSERT(elapsed >= 49.0);
  ASSERT(elapsed < 1000.0);
  lua_settop(L, 0);

  /* Nothing returned: 0 results, nothing pushed. nresults may be NULL. */
  TEST_DO(L, "function nothing() sleep(0) end");
  TEST_SPAWN(L, "nothing");
  n = -1;
  ASSERT_INT_EQ(loom_run(L, &n), 0);
  ASSERT_INT_EQ(n, 0);
  ASSERT_INT_EQ(lua_gettop(L), 0);
  TEST_SPAWN(L, "work");  /* no arguments: a + b fails, but NULL is ok */
  ASSERT_INT_EQ(loom_run(L, NULL), LOOM_EFAILED);
  lua_settop(L, 0);

  ASSERT_INT_EQ(uv_loop_alive(loom_loop(lm)), 0);
  ASSERT_INT_EQ(loom_report_unretrieved(lm), 0);
  lua_close(L);
}

/* A C function can be a task too (lua_isfunction), arguments and all. */
static int c_task(lua_State *L) {
  lua_Integer x = luaL_checkinteger(L, 1);
  lua_pushinteger(L, x * 10);
  lua_pushvalue(L, 2);
  return 2;
}

static void test_c_function_task(void) {
  lua_State *L = test_newloom(NULL, NULL);
  int n;
  lua_pushcfunction(L, c_task);
  lua_pushinteger(L, 4);
  lua_pushliteral(L, "x");
  ASSERT_INT_EQ(loom_spawn(L, 2), 0);
  ASSERT_INT_EQ(loom_run(L, &n), 0);
  ASSERT_INT_EQ(n, 2);
  ASSERT_INT_EQ(lua_tointeger(L, -2), 40);
  ASSERT_STR_EQ(lua_tostring(L, -1), "x");
  lua_close(L);
}

/* loom_run returns only once no work remains: tasks spawned from C and
** from inside the main task, never awaited, all finish first. */
static void test_unawaited_tasks_run(void) {
  lua_State *L = test_newloom(NULL, NULL);
  int n;
  TEST_DO(L,
    "log = {}\n"
    "function bg(name, s) sleep(s) log[#log + 1] = name end\n"
    "function main()\n"
    "  spawn(bg, 'from main', 0.15)\n"
    "  spawn(function() sleep(0.01); spawn(bg, 'grandchild', 0.02) end)\n"
    "  log[#log + 1] = 'main'\n"
    "  return 'main done'\n"
    "end\n");
  lua_getglobal(L, "bg");
  lua_pushliteral(L, "from C");
  lua_pushnumber(L, 0.09);
  ASSERT_INT_EQ(loom_spawn(L, 2), 0);
  lua_pop(L, 1);  /* nobody keeps this Task */
  TEST_SPAWN(L, "main");
  double t0 = test_ms();
  ASSERT_INT_EQ(loom_run(L, &n), 0);
  ASSERT(test_ms() - t0 >= 149.0);
  ASSERT_INT_EQ(n, 1);
  ASSERT_STR_EQ(lua_tostring(L, -1), "main done");
  lua_settop(L, 0);
  TEST_DO(L,
    "assert(table.concat(log, ',') == 'main,grandchild,from C,from main',\n"
    "       table.concat(log, ','))");

  /* No Task on top: loom_run just runs the loop dry and pushes nothing. */
  TEST_DO(L, "log = {}; spawn(bg, 'alone', 0.01)");
  lua_pushinteger(L, 7);  /* not a task: left alone */
  n = -1;
  ASSERT_INT_EQ(loom_run(L, &n), 0);
  ASSERT_INT_EQ(n, 0);
  ASSERT_INT_EQ(lua_gettop(L), 1);
  ASSERT_INT_EQ(lua_tointeger(L, 1), 7);
  lua_settop(L, 0);
  TEST_DO(L, "assert(log[1] == 'alone')");
  lua_close(L);
}

/* The same state runs again and again; loom.run from plain host code
** (outside any task) works as loom_run does. */
static void test_run_again(void) {
  lua_State *L = test_newloom(NULL, NULL);
  int n;
  TEST_DO(L, "count = 0; function step() sleep(0.001) count = count + 1 "
             "return count end");
  for (int i = 1; i <= 3; i++) {
    TEST_SPAWN(L, "step");
    ASSERT_INT_EQ(loom_run(L, &n), 0);
    ASSERT_INT_EQ(n, 1);
    ASSERT_INT_EQ(lua_tointeger(L, -1), i);
    lua_pop(L, 1);
  }
  TEST_DO(L,
    "local a, b = loom.run(function(x) sleep(0.01) return x, step() end,"
    " 'x')\n"
    "assert(a == 'x' and b == 4)");
  lua_close(L);
}

/* Two states, each with its own runtime and loop, in one process. */
static void test_two_runtimes(void) {
  loom_t *lm1, *lm2;
  lua_State *L1 = test_newloom(NULL, &lm1);
  lua_State *L2 = test_newloom(NULL, &lm2);
  int n;
  ASSERT(lm1 != lm2);
  ASSERT(loom_loop(lm1) != loom_loop(lm2));
  TEST_DO(L1, "function f() sleep(0.01) return 'one' end");
  TEST_DO(L2, "function f() sleep(0.01) return 'two' end");
  TEST_SPAWN(L1, "f");
  TEST_SPAWN(L2, "f");
  ASSERT_INT_EQ(loom_run(L2, &n), 0);
  ASSERT_STR_EQ(lua_tostring(L2, -1), "two");
  ASSERT_INT_EQ(loom_run(L1, &n), 0);
  ASSERT_STR_EQ(lua_tostring(L1, -1), "one");
  lua_close(L1);
  lua_close(L2);
}

/* loom_spawn refuses what cannot be called and pushes nothing; anything
** callable (as for create_task in Lua) is accepted. */
static void test_spawn_refuses(void) {
  lua_State *L = test_newstate();
  lua_pushcfunction(L, c_task);
  ASSERT(loom_spawn(L, 0) < 0);  /* no runtime in this state */
  lua_close(L);

  L = test_newloom(NULL, NULL);
  lua_pushinteger(L, 42);
  lua_pushinteger(L, 1);
  ASSERT(loom_spawn(L, 1) < 0);
  ASSERT_INT_EQ(lua_gettop(L), 2);
  ASSERT(loom_spawn(L, 5) < 0);  /* more arguments than the stack holds */
  lua_settop(L, 0);

  int n;
  TEST_DO(L, "callable = setmetatable({}, {__call = function(self, x)\n"
             "  sleep(0) return x + 1 end})");
  lua_getglobal(L, "callable");
  lua_pushinteger(L, 1);
  ASSERT_INT_EQ(loom_spawn(L, 1), 0);
  ASSERT_INT_EQ(loom_run(L, &n), 0);
  ASSERT_INT_EQ(n, 1);
  ASSERT_INT_EQ(lua_tointeger(L, -1), 2);
  lua_close(L);
}

/* A state with no standard library at all (a sandbox) can host loom: the
** runtime needs nothing the host did not open. */
static void test_open_bare_state(void) {
  lua_State *L = luaL_newstate();
  int n;
  ASSERT(L != NULL);
  loom_t *lm = loom_open(L, NULL);
  ASSERT(lm != NULL);
  ASSERT_INT_EQ(lua_gettop(L), 1);
  ASSERT(lua_istable(L, 1));
  lua_setglobal(L, "loom");
  ASSERT_INT_EQ(luaL_loadstring(L, "loom.sleep(0.01) return 7"), LUA_OK);
  ASSERT_INT_EQ(loom_spawn(L, 0), 0);
  ASSERT_INT_EQ(loom_run(L, &n), 0);
  ASSERT_INT_EQ(n, 1);
  ASSERT_INT_EQ(lua_tointeger(L, -1), 7);
  lua_close(L);
}

/* loom_run from inside a task (here through a C function the host gave
** to Lua) must refuse instead of nesting the loop. */
static int nested_run(lua_State *L) {
  lua_pushinteger(L, loom_run(L, NULL));
  return 1;
}

static void test_run_inside_task(void) {
  lua_State *L = test_newloom(NULL, NULL);
  int n;
  lua_register(L, "nested_run", nested_run);
  TEST_DO(L, "function f() sleep(0) return nested_run() end");
  TEST_SPAWN(L, "f");
  ASSERT_INT_EQ(loom_run(L, &n), 0);
  ASSERT_INT_EQ(n, 1);
  ASSERT_INT_EQ(lua_tointeger(L, -1), UV_EBUSY);
  lua_close(L);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    TEST_CASE(test_open_get),
    TEST_CASE(test_results),
    TEST_CASE(test_c_function_task),
    TEST_CASE(test_unawaited_tasks_run),
    TEST_CASE(test_run_again),
    TEST_CASE(test_two_runtimes),
    TEST_CASE(test_run_inside_task),
    TEST_CASE(test_spawn_refuses),
    TEST_CASE(test_open_bare_state),
    { NULL, NULL }
  };
  return test_main(cases, argc, argv);
}
