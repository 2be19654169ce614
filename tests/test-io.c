/*
** test-io.c: loom's I/O on a host's loop. The host drives the loop itself
** while tasks open everything the I/O modules have (a TCP server and
** connections, a child process and its pipes, a signal subscription, an
** open file, requests in flight on the thread pool, a busy worker
** thread), then closes the state with all of it still open: after one
** more run of the host's loop nothing of loom's is left on it
** (uv_loop_close succeeds), and valgrind finds nothing leaked. Also with
** loom's own loop, and the Ctrl-C API's arguments.
*/
#include <signal.h>

#include "test.h"

static const char *const busy_script =
  "function main()\n"
  "  local server = loom.tcp.listen('127.0.0.1', 0, function(s)\n"
  "    s:read_all()\n"
  "  end)\n"
  "  local held = loom.tcp.listen('127.0.0.1', 0)\n"
  "  clients = {}\n"
  "  for i = 1, 4 do\n"
  "    clients[i] = loom.tcp.connect('127.0.0.1', server.port)\n"
  "    clients[i]:write('unanswered')\n"
  "  end\n"
  "  spawn(function() held:accept() end)\n"
  "  spawn(function() clients[1]:read() end)\n"
  "  child = loom.process.spawn({'sleep', '30'}, {stdin = 'pipe',\n"
  "    stdout = 'pipe', kill_at_close = true})\n"
  "  spawn(function() child.stdout:read() end)\n"
  "  spawn(function() child:wait() end)\n"
  "  sub = loom.signal.subscribe('SIGUSR1')\n"
  "  spawn(function() sub:wait() end)\n"
  "  file = loom.fs.open('/etc/passwd')\n"
  "  for i = 1, 20 do\n"
  "    spawn(loom.fs.read_file, '/etc/passwd')\n"
  "    spawn(loom.dns.resolve, 'localhost')\n"
  "  end\n"
  "  spawn(loom.to_thread, function() while true do end end)\n"
  "  spawn(loom.to_thread, function() return 1 end)\n"
  "  ready = true\n"
  "  sleep(1000)\n"
  "end\n";

static int ready(lua_State *L) {
  int r = lua_getglobal(L, "ready") == LUA_TBOOLEAN;
  lua_pop(L, 1);
  return r;
}

/* The host's loop: everything open when the state closes. */
static void test_close_with_everything_open(void) {
  uv_loop_t loop;
  ASSERT_INT_EQ(uv_loop_init(&loop), 0);
  lua_State *L = test_newloom(&loop, NULL);
  TEST_DO(L, busy_script);
  TEST_SPAWN(L, "main");
  lua_pop(L, 1);
  double t0 = test_ms();
  while (!ready(L) && test_ms() - t0 < 5000) uv_run(&loop, UV_RUN_ONCE);
  ASSERT(ready(L));
  for (int i = 0; i < 20; i++) uv_run(&loop, UV_RUN_NOWAIT);
  lua_close(L);
  ASSERT_INT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ASSERT_INT_EQ(uv_loop_close(&loop), 0);
}

/* loom's own loop: lua_close closes it all and returns. */
static void test_own_loop(void) {
  loom_t *lm;
  lua_State *L = test_newloom(NULL, &lm);
  TEST_DO(L, busy_script);
  TEST_DO(L,
    "spawn(function()\n"
    "  spawn(main)\n"
    "  while not ready do sleep(0.01) end\n"
    "  sleep(0.05)\n"
    "  os.exit(0, true)\n"
    "end)\n");
  ASSERT_INT_EQ(loom_run(L, NULL), LOOM_EEXIT);
  double t0 = test_ms();
  lua_close(L);
  ASSERT(test_ms() - t0 < 5000);  /* the busy worker was stopped */
}

/* loom_catch_sigint: a Task, one runtime at a time, undone at close. */
static void test_catch_sigint_arguments(void) {
  loom_t *lm;
  lua_State *L = test_newloom(NULL, &lm);
  lua_pushinteger(L, 1);
  ASSERT_INT_EQ(loom_catch_sigint(L, -1), UV_EINVAL);
  lua_pop(L, 1);
  ASSERT(!loom_interrupted(lm));
  TEST_DO(L, "function main() return 7 end");
  TEST_SPAWN(L, "main");
  ASSERT_INT_EQ(loom_catch_sigint(L, -1), 0);
  lua_State *L2 = test_newloom(NULL, NULL);
  TEST_DO(L2, "function main() end");
  TEST_SPAWN(L2, "main");
  ASSERT_INT_EQ(loom_catch_sigint(L2, -1), UV_EBUSY);
  lua_close(L2);
  int n;
  ASSERT_INT_EQ(loom_run(L, &n), 0);
  ASSERT_INT_EQ(lua_tointeger(L, -1), 7);
  ASSERT(!loom_interrupted(lm));
  lua_close(L);
  struct sigaction sa;
  ASSERT_INT_EQ(sigaction(SIGINT, NULL, &sa), 0);
  ASSERT(sa.sa_handler == SIG_DFL);  /* given back */
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    TEST_CASE(test_close_with_everything_open),
    TEST_CASE(test_own_loop),
    TEST_CASE(test_catch_sigint_arguments),
    { NULL, NULL }
  };
  return test_main(cases, argc, argv);
}
