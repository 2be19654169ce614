/*
** test-call.c: async C functions (loom_call_*). A host function suspends
** its task and completes it from a libuv timer: resolved with values,
** rejected with an error, cancelled mid-wait (on_cancel called once, the
** host's request let go), overtaken by a cancel after it resolved, raised
** before suspending, still waiting when the state closes, and called
** outside a task. Also: answered before suspending, resolved but closed
** before the task ran, the task cancelled by the function itself between
** begin and suspend, a call from a coroutine inside the task, an error
** value kept as it is, and the misuses loom refuses.
*/
#include "test.h"

/* One request of the host: a timer that completes a call. The requests
** are static slots, so a loom_call_begin that raises leaks nothing. */
typedef struct req {
  uv_timer_t timer;
  loom_call_t *call;
  int reject;
  int busy;
} req;

static req reqs[8];
static int cancels, freed;  /* on_cancel calls; requests let go */

static void on_req_closed(uv_handle_t *h) {
  req *r = h->data;
  freed++;
  r->busy = 0;
}

static void on_fire(uv_timer_t *t) {
  req *r = t->data;
  lua_State *T = loom_call_thread(r->call);
  if (r->reject) {
    lua_pushliteral(T, "sensor broke");
    loom_call_reject(r->call);
  } else {
    lua_pushinteger(T, 42);
    lua_pushliteral(T, "celsius");
    loom_call_resolve(r->call, 2);
  }
  uv_close((uv_handle_t *)&r->timer, on_req_closed);
}

/* The task was cancelled: the host stops its timer and frees the request
** (the call is gone after this returns). */
static void on_cancel(loom_call_t *call, void *ud) {
  req *r = ud;
  ASSERT(r->call == call);
  cancels++;
  uv_timer_stop(&r->timer);
  uv_close((uv_handle_t *)&r->timer, on_req_closed);
}

/* read_sensor(ms [, reject]): a reading after ms milliseconds. */
static int read_sensor(lua_State *L) {
  lua_Integer ms = luaL_checkinteger(L, 1);
  int reject = lua_toboolean(L, 2);
  loom_t *lm = loom_get(L);
  req *r = reqs;
  while (r->busy) r++;
  ASSERT(r < reqs + 8);
  r->reject = reject;
  r->call = loom_call_begin(L, on_cancel, r);  /* raises outside a task */
  r->busy = 1;
  uv_timer_init(loom_loop(lm), &r->timer);
  r->timer.data = r;
  uv_timer_start(&r->timer, on_fire, (uint64_t)ms, 0);
  return loom_call_suspend(L, r->call);
}

/* begin, then raise before suspending: the call is dropped */
static int broken(lua_State *L) {
  loom_call_begin(L, NULL, NULL);
  return luaL_error(L, "broken: gave up before suspending");
}

/* now(v [, reject]): answered before suspending, so the task never
** waits: resolve (or reject) first, suspend after. */
static int now(lua_State *L) {
  int reject = lua_toboolean(L, 2);
  luaL_checkany(L, 1);
  loom_call_t *c = loom_call_begin(L, NULL, NULL);
  lua_pushvalue(L, 1);
  if (reject) loom_call_reject(c);
  else loom_call_resolve(c, 1);
  return loom_call_suspend(L, c);
}

/* The last call a C function below began, for tests that complete it by
** hand (held: the host keeps it until on_cancel). */
static loom_call_t *held;
static int held_cancels;

static void on_held_cancel(loom_call_t *call, void *ud) {
  (void)ud;
  ASSERT(call == held);
  held = NULL;
  held_cancels++;
}

/* hold(): waits until the test resolves it by hand. */
static int hold(lua_State *L) {
  held = loom_call_begin(L, on_held_cancel, NULL);
  return loom_call_suspend(L, held);
}

/* self_cancel(): cancels its own task (through Lua) after begin. */
static int self_cancel(lua_State *L) {
  held = loom_call_begin(L, on_held_cancel, NULL);
  lua_getglobal(L, "cancel_me");
  lua_call(L, 0, 0);
  return loom_call_suspend(L, held);
}

/* no_hook(): suspends without an on_cancel. */
static int no_hook(lua_State *L) {
  return loom_call_suspend(L, loom_call_begin(L, NULL, NULL));
}

/* overclaim(): pushes one value, resolves with 1000 */
static int overclaim(lua_State *L) {
  loom_call_t *c = loom_call_begin(L, NULL, NULL);
  lua_pushinteger(L, 1);
  loom_call_resolve(c, 1000);
  return loom_call_suspend(L, c);
}

static lua_State *setup(loom_t **lm) {
  cancels = freed = held_cancels = 0;
  held = NULL;
  lua_State *L = test_newloom(NULL, lm);
  lua_register(L, "read_sensor", read_sensor);
  lua_register(L, "broken", broken);
  lua_register(L, "now", now);
  lua_register(L, "hold", hold);
  lua_register(L, "self_cancel", self_cancel);
  lua_register(L, "no_hook", no_hook);
  lua_register(L, "overclaim", overclaim);
  return L;
}

static int run_main(lua_State *L, const char *code, int *n) {
  if (luaL_loadstring(L, code) != LUA_OK)
    TEST_FAIL("Lua failed: %s", lua_tostring(L, -1));
  ASSERT_INT_EQ(loom_spawn(L, 0), 0);
  int r = loom_run(L, n);
  if (r == LOOM_EFAILED && getenv("TEST_VERBOSE"))
    fprintf(stderr, "main task failed: %s\n", luaL_tolstring(L, -2, NULL));
  return r;
}

static void test_resolved(void) {
  loom_t *lm;
  int n;
  lua_State *L = setup(&lm);
  ASSERT_INT_EQ(run_main(L,
    "local t0 = loom.now()\n"
    "local a, b = gather(function() return read_sensor(30) end,\n"
    "                    function() return read_sensor(30) end)\n"
    "local v, unit = read_sensor(1)\n"
    "return v, unit, a + b, loom.now() - t0 < 0.5", &n), 0);
  ASSERT_INT_EQ(n, 4);
  ASSERT_INT_EQ(lua_tointeger(L, 1), 42);
  ASSERT_STR_EQ(lua_tostring(L, 2), "celsius");
  ASSERT_INT_EQ(lua_tointeger(L, 3), 84);
  ASSERT(lua_toboolean(L, 4));
  lua_close(L);
  ASSERT_INT_EQ(freed, 3);
  ASSERT_INT_EQ(cancels, 0);
}

static void test_rejected(void) {
  loom_t *lm;
  int n;
  lua_State *L = setup(&lm);
  ASSERT_INT_EQ(run_main(L,
    "local ok, err = pcall(read_sensor, 5, true)\n"
    "return ok, err", &n), 0);
  ASSERT_INT_EQ(n, 2);
  ASSERT(!lua_toboolean(L, 1));
  ASSERT_STR_EQ(lua_tostring(L, 2), "sensor broke");
  lua_close(L);
  ASSERT_INT_EQ(freed, 1);
}

static void test_cancelled_mid_wait(void) {
  loom_t *lm;
  int n;
  lua_State *L = setup(&lm);
  ASSERT_INT_EQ(run_main(L,
    "local cleaned = 0\n"
    "local t = spawn(function()\n"
    "  local guard <close> = setmetatable({}, {__close = function()\n"
    "    cleaned = cleaned + 1 end})\n"
    "  return read_sensor(10000)\n"
    "end)\n"
    "sleep(0.01)\n"
    "t:cancel()\n"
    "t:cancel()\n"
    "local ok, err = pcall(t.await, t)\n"
    "return ok, loom.is_cancelled(err), cleaned, t:status()", &n), 0);
  ASSERT_INT_EQ(n, 4);
  ASSERT(!lua_toboolean(L, 1));
  ASSERT(lua_toboolean(L, 2));
  ASSERT_INT_EQ(lua_tointeger(L, 3), 1);
  ASSERT_STR_EQ(lua_tostring(L, 4), "cancelled");
  ASSERT_INT_EQ(cancels, 1);
  lua_close(L);
  ASSERT_INT_EQ(freed, 1);
}

/* resolved, then cancelled before the task ran: on_cancel is not called
** (the host is done), the task ends cancelled */
static void test_cancel_after_resolve(void) {
  loom_t *lm;
  int n;
  lua_State *L = setup(&lm);
  ASSERT_INT_EQ(run_main(L,
    "local t = spawn(function() return read_sensor(20) end)\n"
    "local f = loom.future()\n"
    "spawn(function() sleep(0.02) t:cancel() f:set() end)\n"
    "f:await()\n"
    "local ok, err = pcall(t.await, t)\n"
    "return t:status(), ok", &n), 0);
  ASSERT_INT_EQ(n, 2);
  /* whichever came first in that millisecond, no call leaked */
  ASSERT(strcmp(lua_tostring(L, 1), "done") == 0 ||
         strcmp(lua_tostring(L, 1), "cancelled") == 0);
  ASSERT_INT_EQ(cancels, 0);
  lua_close(L);
  ASSERT_INT_EQ(freed, 1);
}

static void test_raised_before_suspend(void) {
  loom_t *lm;
  int n;
  lua_State *L = setup(&lm);
  ASSERT_INT_EQ(run_main(L,
    "local ok, err = pcall(broken)\n"
    "local ok2, err2 = pcall(broken)\n"
    "return ok, err, read_sensor(1)", &n), 0);
  ASSERT_INT_EQ(n, 4);
  ASSERT(!lua_toboolean(L, 1));
  ASSERT_HAS(lua_tostring(L, 2), "gave up before suspending");
  ASSERT_INT_EQ(lua_tointeger(L, 3), 42);
  lua_close(L);   /* valgrind: the dropped calls were freed */
}

/* The state closes while a call waits: on_cancel lets the host go. */
static void test_waiting_at_close(void) {
  loom_t *lm;
  lua_State *L = setup(&lm);
  TEST_DO(L, "t = spawn(function() return read_sensor(100000) end)");
  /* run one turn: the task starts and suspends */
  uv_run(loom_loop(lm), UV_RUN_NOWAIT);
  ASSERT_INT_EQ(cancels, 0);
  lua_close(L);
  ASSERT_INT_EQ(cancels, 1);
  ASSERT_INT_EQ(freed, 1);
}

static void test_outside_a_task(void) {
  loom_t *lm;
  lua_State *L = setup(&lm);
  ASSERT(luaL_dostring(L, "return read_sensor(1)") != LUA_OK);
  ASSERT_HAS(lua_tostring(L, -1),
             "read_sensor: not inside a task (wrap the code in loom.run");
  lua_settop(L, 0);
  int n;
  ASSERT_INT_EQ(run_main(L,
    "local ok, err = pcall(table.sort, {1, 2}, function(a, b)\n"
    "  read_sensor(1) return a < b end)\n"
    "return ok, err", &n), 0);
  ASSERT(!lua_toboolean(L, 1));
  ASSERT_HAS(lua_tostring(L, 2), "cannot wait here");
  lua_close(L);
}

/* Resolved or rejected before suspending: the task goes straight on. */
static void test_answered_before_suspend(void) {
  loom_t *lm;
  int n;
  lua_State *L = setup(&lm);
  ASSERT_INT_EQ(run_main(L,
    "E = {code = 7}\n"
    "local order = {}\n"
    "spawn(function() order[#order + 1] = 'other' end)\n"
    "local v = now(5)\n"
    "order[#order + 1] = 'main'\n"  /* no wait: before the other task */
    "local ok, err = pcall(now, E, true)\n"
    "return v, ok, err == E, table.concat(order, ',')", &n), 0);
  ASSERT_INT_EQ(n, 4);
  ASSERT_INT_EQ(lua_tointeger(L, 1), 5);
  ASSERT(!lua_toboolean(L, 2));
  ASSERT(lua_toboolean(L, 3));  /* the error value as it was pushed */
  ASSERT_STR_EQ(lua_tostring(L, 4), "main");  /* it never let others run */
  lua_close(L);
}

/* Resolved, then the state closes before the task could run: the call is
** freed with the state (valgrind and ASan check), on_cancel not called. */
static void test_resolved_then_closed(void) {
  loom_t *lm;
  lua_State *L = setup(&lm);
  TEST_DO(L, "t = spawn(function() return hold() end)");
  uv_run(loom_loop(lm), UV_RUN_NOWAIT);  /* it starts and waits */
  ASSERT(held != NULL);
  lua_pushliteral(loom_call_thread(held), "late");
  loom_call_resolve(held, 1);
  lua_close(L);
  ASSERT_INT_EQ(held_cancels, 0);
}

/* A rejection raises the very value pushed (a table stays that table),
** with a traceback through the C function. */
static void test_rejected_with_table(void) {
  loom_t *lm;
  lua_State *L = setup(&lm);
  TEST_DO(L, "E = setmetatable({}, {__tostring = function() "
             "return 'sensor error' end})\n"
             "t = spawn(function() return hold() end)");
  uv_run(loom_loop(lm), UV_RUN_NOWAIT);
  ASSERT(held != NULL);
  lua_getglobal(loom_call_thread(held), "E");
  loom_call_reject(held);
  held = NULL;
  lua_getglobal(L, "t");
  ASSERT_INT_EQ(loom_run(L, NULL), LOOM_EFAILED);
  lua_getglobal(L, "E");
  ASSERT(lua_rawequal(L, -1, -3));
  ASSERT_HAS(lua_tostring(L, -2), "in function 'hold'");
  lua_close(L);
  ASSERT_INT_EQ(held_cancels, 0);
}

/* The C function cancels its own task between begin and suspend: the
** host is told at once, and Cancelled is raised right there. */
static void test_cancelled_before_suspend(void) {
  loom_t *lm;
  int n;
  lua_State *L = setup(&lm);
  ASSERT_INT_EQ(run_main(L,
    "local t\n"
    "function cancel_me() t:cancel() end\n"
    "t = spawn(function() self_cancel() return 'not reached' end)\n"
    "local ok, err = pcall(t.await, t)\n"
    "return ok, loom.is_cancelled(err), t:status()", &n), 0);
  ASSERT_INT_EQ(n, 3);
  ASSERT(!lua_toboolean(L, 1));
  ASSERT(lua_toboolean(L, 2));
  ASSERT_STR_EQ(lua_tostring(L, 3), "cancelled");
  ASSERT_INT_EQ(held_cancels, 1);
  lua_close(L);
  ASSERT_INT_EQ(held_cancels, 1);
}

/* From a coroutine inside the task (a generator that waits): the results
** are pushed on that coroutine and come out of the generator. */
static void test_inside_coroutine(void) {
  loom_t *lm;
  int n;
  lua_State *L = setup(&lm);
  ASSERT_INT_EQ(run_main(L,
    "local gen = coroutine.wrap(function()\n"
    "  for i = 1, 3 do coroutine.yield(read_sensor(1) + i) end\n"
    "end)\n"
    "return gen() + gen() + gen()", &n), 0);
  ASSERT_INT_EQ(n, 1);
  ASSERT_INT_EQ(lua_tointeger(L, 1), 3 * 42 + 6);
  lua_close(L);
  ASSERT_INT_EQ(freed, 3);
}

/* Misuse loom can see: suspending with no on_cancel, claiming more
** results than were pushed. Each raises in the task, naming the
** function; nothing leaks. */
static void test_misuse(void) {
  loom_t *lm;
  int n;
  lua_State *L = setup(&lm);
  ASSERT_INT_EQ(run_main(L,
    "local ok1, e1 = pcall(function() no_hook() end)\n"
    "local ok2, e2 = pcall(function() overclaim() end)\n"
    "return ok1, e1, ok2, e2", &n), 0);
  ASSERT_INT_EQ(n, 4);
  ASSERT(!lua_toboolean(L, 1));
  ASSERT_HAS(lua_tostring(L, 2), "no_hook: an async C function needs an "
                                 "on_cancel to suspend");
  ASSERT(!lua_toboolean(L, 3));
  ASSERT_HAS(lua_tostring(L, 4), "resolved with 1000 results");
  lua_close(L);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    TEST_CASE(test_resolved), TEST_CASE(test_rejected),
    TEST_CASE(test_cancelled_mid_wait), TEST_CASE(test_cancel_after_resolve),
    TEST_CASE(test_raised_before_suspend), TEST_CASE(test_waiting_at_close),
    TEST_CASE(test_outside_a_task), TEST_CASE(test_answered_before_suspend),
    TEST_CASE(test_resolved_then_closed), TEST_CASE(test_rejected_with_table),
    TEST_CASE(test_cancelled_before_suspend),
    TEST_CASE(test_inside_coroutine), TEST_CASE(test_misuse), {NULL, NULL}
  };
  return test_main(cases, argc, argv);
}
