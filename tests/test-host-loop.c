/*
** test-host-loop.c: a host that owns the libuv loop and lends it to loom
** (loom_open(L, &loop)). The host's own handles run beside loom's tasks
** on that loop, two runtimes can share it, and after lua_close the host
** runs the loop once more so loom's handles close: then uv_loop_close
** succeeds, which says nothing of loom's was left on the loop.
*/
#include "test.h"

/* What the host's timer saw: at each tick, the step the task was at. */
static struct {
  int ticks, max_ticks;
  int step;               /* set by the task through set_step() */
  int step_at_tick[32];
} host;

static void on_tick(uv_timer_t *timer) {
  host.step_at_tick[host.ticks++] = host.step;
  if (host.ticks == host.max_ticks) uv_timer_stop(timer);
}

static int set_step(lua_State *L) {
  host.step = (int)luaL_checkinteger(L, 1);
  return 0;
}

static int host_ticks(lua_State *L) {
  lua_pushinteger(L, host.ticks);
  return 1;
}

static void on_closed(uv_handle_t *h) {
  *(int *)h->data = 1;
}

/* The end of every test: close the state, let loom's handles close on the
** host's loop, and check the loop is empty. */
static void close_all(lua_State *L, uv_loop_t *loop) {
  lua_close(L);
  ASSERT_INT_EQ(uv_run(loop, UV_RUN_DEFAULT), 0);
  ASSERT_INT_EQ(uv_loop_close(loop), 0);
}

/* A host timer ticks while a task sleeps in steps; each sees the other
** move, and loom_run returns once both are done. */
static void test_timer_alongside_tasks(void) {
  uv_loop_t loop;
  uv_timer_t timer;
  int closed = 0, n;
  loom_t *lm;
  ASSERT_INT_EQ(uv_loop_init(&loop), 0);
  lua_State *L = test_newloom(&loop, &lm);
  ASSERT(loom_loop(lm) == &loop);
  lua_register(L, "set_step", set_step);
  lua_register(L, "host_ticks", host_ticks);
  TEST_DO(L,
    "function main()\n"
    "  for i = 1, 3 do set_step(i) sleep(0.02) end\n"
    "  set_step(4)\n"
    "  return host_ticks()\n"
    "end\n");

  memset(&host, 0, sizeof host);
  host.max_ticks = 10;  /* 100 ms: outlives the task's 60 */
  ASSERT_INT_EQ(uv_timer_init(&loop, &timer), 0);
  uv_update_time(&loop);  /* the loop's clock stood still since init */
  double t0 = test_ms();
  ASSERT_INT_EQ(uv_timer_start(&timer, on_tick, 10, 10), 0);
  TEST_SPAWN(L, "main");
  ASSERT_INT_EQ(loom_run(L, &n), 0);
  ASSERT(test_ms() - t0 >= 99.0);  /* the host's timer is work too */
  ASSERT_INT_EQ(n, 1);
  ASSERT_INT_EQ(host.ticks, host.max_ticks);
  int seen = (int)lua_tointeger(L, -1);
  ASSERT(seen >= 2 && seen < host.max_ticks);  /* ticks while sleeping */
  lua_pop(L, 1);

  /* The timer saw the task move on, step by step, and ticked while it
  ** was mid-way (not all before it started nor all after it ended). */
  int midway = 0;
  for (int i = 0; i < host.ticks; i++) {
    if (i > 0) ASSERT(host.step_at_tick[i] >= host.step_at_tick[i - 1]);
    midway += host.step_at_tick[i] >= 1 && host.step_at_tick[i] <= 3;
  }
  ASSERT(midway >= 2);
  ASSERT_INT_EQ(host.step_at_tick[host.ticks - 1], 4);

  timer.data = &closed;
  uv_close((uv_handle_t *)&timer, on_closed);
  close_all(L, &loop);
  ASSERT_INT_EQ(closed, 1);
}

/* The host runs the loop itself (no loom_run): tasks still progress. */
static void test_host_runs_loop(void) {
  uv_loop_t loop;
  ASSERT_INT_EQ(uv_loop_init(&loop), 0);
  lua_State *L = test_newloom(&loop, NULL);
  TEST_DO(L,
    "t = spawn(function(x)\n"
    "  sleep(0.02)\n"
    "  local inner = spawn(function() sleep(0.01) return 2 end)\n"
    "  return x + inner:await()\n"
    "end, 40)\n");
  ASSERT_INT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
  TEST_DO(L, "assert(t:status() == 'done', t:status())\n"
             "assert(t:result() == 42)");
  close_all(L, &loop);
}

/* Two states, one loop: either loom_run drives both runtimes' tasks. */
static void test_two_runtimes_one_loop(void) {
  uv_loop_t loop;
  loom_t *lm1, *lm2;
  int n;
  ASSERT_INT_EQ(uv_loop_init(&loop), 0);
  lua_State *L1 = test_newloom(&loop, &lm1);
  lua_State *L2 = test_newloom(&loop, &lm2);
  ASSERT(lm1 != lm2);
  ASSERT(loom_get(L1) == lm1 && loom_get(L2) == lm2);
  TEST_DO(L1, "function f() sleep(0.05) return 'one' end");
  TEST_DO(L2, "function f() sleep(0.05) return 'two' end");
  TEST_SPAWN(L1, "f");
  TEST_SPAWN(L2, "f");
  double t0 = test_ms();
  ASSERT_INT_EQ(loom_run(L1, &n), 0);
  ASSERT_STR_EQ(lua_tostring(L1, -1), "one");
  ASSERT_INT_EQ(loom_run(L2, &n), 0);  /* already done: returns at once */
  ASSERT_INT_EQ(n, 1);
  ASSERT_STR_EQ(lua_tostring(L2, -1), "two");
  double elapsed = test_ms() - t0;
  ASSERT(elapsed >= 49.0 && elapsed < 95.0);  /* concurrently, not 100 */
  lua_close(L1);
  close_all(L2, &loop);
}

/* os.exit stops the host's loop too; the host's handles are untouched
** and everything still closes cleanly. */
static void test_exit_on_host_loop(void) {
  uv_loop_t loop;
  uv_timer_t timer;
  int closed = 0;
  loom_t *lm;
  ASSERT_INT_EQ(uv_loop_init(&loop), 0);
  lua_State *L = test_newloom(&loop, &lm);
  memset(&host, 0, sizeof host);
  host.max_ticks = 1;
  ASSERT_INT_EQ(uv_timer_init(&loop, &timer), 0);
  ASSERT_INT_EQ(uv_timer_start(&timer, on_tick, 200, 0), 0);
  TEST_DO(L, "function main() sleep(0.01) os.exit(9) end");
  TEST_SPAWN(L, "main");
  ASSERT_INT_EQ(loom_run(L, NULL), LOOM_EEXIT);
  ASSERT_INT_EQ(loom_exit_code(lm, NULL), 9);
  ASSERT_INT_EQ(host.ticks, 0);
  ASSERT(uv_is_active((uv_handle_t *)&timer));
  timer.data = &closed;
  uv_close((uv_handle_t *)&timer, on_closed);
  close_all(L, &loop);
  ASSERT_INT_EQ(closed, 1);
  ASSERT_INT_EQ(host.ticks, 0);
}

/* A state closed with tasks still suspended (main task failed): the host
** loop is left empty all the same. */
static void test_close_with_pending_tasks(void) {
  uv_loop_t loop;
  ASSERT_INT_EQ(uv_loop_init(&loop), 0);
  lua_State *L = test_newloom(&loop, NULL);
  TEST_DO(L,
    "function main()\n"
    "  for i = 1, 5 do spawn(sleep, 10) end\n"
    "  spawn(function() loom.future():await() end)\n"
    "  sleep(0.01)\n"
    "  error('stop here')\n"
    "end\n");
  TEST_SPAWN(L, "main");
  ASSERT_INT_EQ(loom_run(L, NULL), LOOM_EFAILED);
  ASSERT_HAS(lua_tostring(L, -2), "stop here");
  close_all(L, &loop);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    TEST_CASE(test_timer_alongside_tasks),
    TEST_CASE(test_host_runs_loop),
    TEST_CASE(test_two_runtimes_one_loop),
    TEST_CASE(test_exit_on_host_loop),
    TEST_CASE(test_close_with_pending_tasks),
    { NULL, NULL }
  };
  return test_main(cases, argc, argv);
}
