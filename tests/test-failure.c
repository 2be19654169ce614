/*
** test-failure.c: how things going wrong reach a C host. A failing main
** task (LOOM_EFAILED with the error value unchanged and a traceback), a
** cancelled one, failures nobody retrieved (the report hook, the default
** report on stderr, loom_report_unretrieved's count, reports from the
** garbage collector), deadlock (LOOM_EDEADLOCK) and os.exit inside a task
** (LOOM_EEXIT and loom_exit_code).
*/
#include <unistd.h>

#include "test.h"

/* ---- the report hook, recording what it is given --------------------- */

#define MAX_REPORTS 4

typedef struct reports {
  loom_t *lm;               /* the runtime the hook was called for */
  int calls;
  char text[MAX_REPORTS][2048];
} reports;

static void record(loom_t *lm, const char *report, void *ud) {
  reports *r = ud;
  r->lm = lm;
  if (r->calls < MAX_REPORTS)
    snprintf(r->text[r->calls], sizeof r->text[0], "%s", report);
  r->calls++;
}

/* A runtime whose reports go to r. */
static lua_State *newloom_reporting(loom_t **lm, reports *r) {
  lua_State *L = test_newloom(NULL, lm);
  memset(r, 0, sizeof *r);
  loom_set_report(*lm, record, r);
  return L;
}

/* ---- the main task fails -------------------------------------------- */

/* The error value comes back as it was raised (the same table), with a
** traceback beside it; a retrieved failure is never reported. */
static void test_main_fails_with_table(void) {
  loom_t *lm;
  reports r;
  lua_State *L = newloom_reporting(&lm, &r);
  int n = -1;
  TEST_DO(L,
    "E = {code = 42}\n"
    "function fail()\n"
    "  sleep(0.01)\n"
    "  error(E)\n"
    "end\n");
  lua_pushliteral(L, "below");
  TEST_SPAWN(L, "fail");
  ASSERT_INT_EQ(loom_run(L, &n), LOOM_EFAILED);
  ASSERT_INT_EQ(n, 0);
  ASSERT_INT_EQ(lua_gettop(L), 3);  /* below, error, traceback */
  ASSERT_STR_EQ(lua_tostring(L, 1), "below");
  lua_getglobal(L, "E");
  ASSERT(lua_rawequal(L, 2, -1));
  lua_pop(L, 1);
  ASSERT_INT_EQ(lua_type(L, 3), LUA_TSTRING);
  ASSERT(strncmp(lua_tostring(L, 3), "stack traceback:\n", 17) == 0);
  ASSERT_HAS(lua_tostring(L, 3), "[C]: in function 'error'");
  ASSERT_HAS(lua_tostring(L, 3), "in function 'fail'");
  lua_settop(L, 0);
  ASSERT_INT_EQ(loom_report_unretrieved(lm), 0);
  ASSERT_INT_EQ(r.calls, 0);
  lua_close(L);
  ASSERT_INT_EQ(r.calls, 0);
}

/* A string error keeps its position; runtime errors come the same way. */
static void test_main_fails_with_string(void) {
  loom_t *lm;
  reports r;
  lua_State *L = newloom_reporting(&lm, &r);
  TEST_DO(L,
    "function fail() sleep(0) error('boom') end\n"
    "function arith() sleep(0) local x; return x + 1 end\n");
  TEST_SPAWN(L, "fail");
  ASSERT_INT_EQ(loom_run(L, NULL), LOOM_EFAILED);
  ASSERT_INT_EQ(lua_gettop(L), 2);
  ASSERT_STR_EQ(lua_tostring(L, 1), "[string \"function fail() sleep(0) "
                                    "error('boom') end...\"]:1: boom");
  ASSERT_HAS(lua_tostring(L, 2), "stack traceback:");
  lua_settop(L, 0);

  TEST_SPAWN(L, "arith");
  ASSERT_INT_EQ(loom_run(L, NULL), LOOM_EFAILED);
  ASSERT_INT_EQ(lua_gettop(L), 2);
  ASSERT_HAS(lua_tostring(L, 1), "attempt to perform arithmetic on a nil "
                                 "value (local 'x')");
  ASSERT_HAS(lua_tostring(L, 2), "in function 'arith'");
  lua_settop(L, 0);
  ASSERT_INT_EQ(loom_report_unretrieved(lm), 0);
  lua_close(L);
  ASSERT_INT_EQ(r.calls, 0);
}

/* A failing main task stops the loop at once, even with other tasks
** still sleeping; a later loom_run lets them finish. */
static void test_main_failure_stops_loop(void) {
  loom_t *lm;
  reports r;
  lua_State *L = newloom_reporting(&lm, &r);
  int n;
  TEST_DO(L,
    "late = false\n"
    "function main()\n"
    "  spawn(function() sleep(0.2) late = true end)\n"
    "  sleep(0.01)\n"
    "  error('early')\n"
    "end\n");
  TEST_SPAWN(L, "main");
  double t0 = test_ms();
  ASSERT_INT_EQ(loom_run(L, NULL), LOOM_EFAILED);
  ASSERT(test_ms() - t0 < 150.0);
  lua_settop(L, 0);
  TEST_DO(L, "assert(late == false)");
  ASSERT_INT_EQ(loom_run(L, &n), 0);  /* no task on top: runs dry */
  ASSERT_INT_EQ(n, 0);
  ASSERT(test_ms() - t0 >= 199.0);
  TEST_DO(L, "assert(late == true)");
  lua_close(L);
  ASSERT_INT_EQ(r.calls, 0);
}

/* A main task cancelled by another task: its error is a Cancelled. */
static void test_main_cancelled(void) {
  loom_t *lm;
  reports r;
  lua_State *L = newloom_reporting(&lm, &r);
  TEST_DO(L,
    "function main() sleep(10) end\n"
    "spawn(function() sleep(0.01) main_task:cancel() end)\n");
  lua_pushliteral(L, "below");
  TEST_SPAWN(L, "main");
  lua_pushvalue(L, -1);
  lua_setglobal(L, "main_task");
  double t0 = test_ms();
  ASSERT_INT_EQ(loom_run(L, NULL), LOOM_EFAILED);
  ASSERT(test_ms() - t0 < 1000.0);
  ASSERT_INT_EQ(lua_gettop(L), 3);  /* below, error, traceback or nil */
  lua_getglobal(L, "loom");
  lua_getfield(L, -1, "is_cancelled");
  lua_pushvalue(L, 2);
  lua_call(L, 1, 1);
  ASSERT(lua_toboolean(L, -1));
  ASSERT_STR_EQ(luaL_tolstring(L, 2, NULL), "Cancelled: task cancelled");
  ASSERT(lua_isnil(L, 3) || lua_isstring(L, 3));
  lua_settop(L, 0);
  TEST_DO(L, "assert(main_task:status() == 'cancelled')");
  ASSERT_INT_EQ(loom_report_unretrieved(lm), 0);
  lua_close(L);
  ASSERT_INT_EQ(r.calls, 0);
}

/* ---- failures nobody retrieved -------------------------------------- */

/* Reported once, through the hook, when the host asks. */
static void test_unretrieved_reported(void) {
  loom_t *lm;
  reports r;
  lua_State *L = newloom_reporting(&lm, &r);
  int n;
  TEST_DO(L,
    "function main()\n"
    "  bg = spawn(function()\n"
    "    sleep(0.01)\n"
    "    error('bg boom')\n"
    "  end)\n"
    "  sleep(0.03)\n"
    "  return 'main ok'\n"
    "end\n");
  TEST_SPAWN(L, "main");
  ASSERT_INT_EQ(loom_run(L, &n), 0);  /* the main task did fine */
  ASSERT_INT_EQ(n, 1);
  ASSERT_STR_EQ(lua_tostring(L, -1), "main ok");
  lua_settop(L, 0);
  ASSERT_INT_EQ(r.calls, 0);  /* 'bg' keeps the task: not collected */

  ASSERT_INT_EQ(loom_report_unretrieved(lm), 1);
  ASSERT_INT_EQ(r.calls, 1);
  ASSERT(r.lm == lm);
  ASSERT(strncmp(r.text[0], "error in a task nobody awaited: ", 32) == 0);
  ASSERT_HAS(r.text[0], "bg boom");
  ASSERT_HAS(r.text[0], "\nstack traceback:\n");
  ASSERT_HAS(r.text[0], "[C]: in function 'error'");
  ASSERT_HAS(r.text[0], "(task spawned at [string \"function main()...\"]"
                        ":2)");

  /* Reported once: neither asking again nor collecting repeats it. */
  ASSERT_INT_EQ(loom_report_unretrieved(lm), 0);
  TEST_DO(L, "bg = nil");
  lua_gc(L, LUA_GCCOLLECT);
  ASSERT_INT_EQ(loom_report_unretrieved(lm), 0);
  ASSERT_INT_EQ(r.calls, 1);
  lua_close(L);
  ASSERT_INT_EQ(r.calls, 1);
}

/* A failed task collected before anyone asked is reported by the
** collector; the next loom_report_unretrieved counts it, once. */
static void test_unretrieved_collected(void) {
  loom_t *lm;
  reports r;
  lua_State *L = newloom_reporting(&lm, &r);
  TEST_DO(L, "spawn(function() sleep(0) error('lost') end)");
  ASSERT_INT_EQ(loom_run(L, NULL), 0);
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  ASSERT_INT_EQ(r.calls, 1);
  ASSERT_HAS(r.text[0], "lost");
  ASSERT_INT_EQ(loom_report_unretrieved(lm), 1);
  ASSERT_INT_EQ(r.calls, 1);
  ASSERT_INT_EQ(loom_report_unretrieved(lm), 0);
  lua_close(L);
  ASSERT_INT_EQ(r.calls, 1);
}

/* A failure still unreported when the state closes goes to the hook then,
** so closing never loses one silently. */
static void test_unretrieved_at_close(void) {
  loom_t *lm;
  reports r;
  lua_State *L = newloom_reporting(&lm, &r);
  TEST_DO(L, "keep = spawn(function() error('at close') end)");
  ASSERT_INT_EQ(loom_run(L, NULL), 0);
  ASSERT_INT_EQ(r.calls, 0);
  lua_close(L);
  ASSERT_INT_EQ(r.calls, 1);
  ASSERT(r.lm == lm);
  ASSERT_HAS(r.text[0], "at close");
}

/* Several failures are reported in the order they failed. */
static void test_unretrieved_order(void) {
  loom_t *lm;
  reports r;
  lua_State *L = newloom_reporting(&lm, &r);
  TEST_DO(L,
    "keep = {\n"
    "  spawn(function() sleep(0.03) error('third') end),\n"
    "  spawn(function() sleep(0.01) error('first') end),\n"
    "  spawn(function() sleep(0.02) error('second') end),\n"
    "}\n");
  ASSERT_INT_EQ(loom_run(L, NULL), 0);
  ASSERT_INT_EQ(r.calls, 0);
  ASSERT_INT_EQ(loom_report_unretrieved(lm), 3);
  ASSERT_INT_EQ(r.calls, 3);
  ASSERT_HAS(r.text[0], "first");
  ASSERT_HAS(r.text[1], "second");
  ASSERT_HAS(r.text[2], "third");
  ASSERT_INT_EQ(loom_report_unretrieved(lm), 0);
  lua_close(L);
  ASSERT_INT_EQ(r.calls, 3);
}

/* What was retrieved (await, result, a failed gather) or cancelled is
** not a failure to report. */
static void test_retrieved_not_reported(void) {
  loom_t *lm;
  reports r;
  lua_State *L = newloom_reporting(&lm, &r);
  int n;
  TEST_DO(L,
    "function main()\n"
    "  local a = spawn(function() sleep(0) error('a') end)\n"
    "  local b = spawn(function() sleep(0) error('b') end)\n"
    "  local c = spawn(function() sleep(10) end)\n"
    "  local ok1, e1 = pcall(a.await, a)\n"
    "  sleep(0.01)\n"
    "  local ok2, e2 = pcall(b.result, b)\n"
    "  c:cancel()\n"
    "  local ok3 = pcall(gather, function() error('g') end)\n"
    "  assert(not ok1 and e1:find('a$') and not ok2 and e2:find('b$'))\n"
    "  return not ok3\n"
    "end\n");
  TEST_SPAWN(L, "main");
  ASSERT_INT_EQ(loom_run(L, &n), 0);
  ASSERT_INT_EQ(n, 1);
  ASSERT(lua_toboolean(L, -1));
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  ASSERT_INT_EQ(loom_report_unretrieved(lm), 0);
  lua_close(L);
  ASSERT_INT_EQ(r.calls, 0);
}

/* With no hook (or after loom_set_report(lm, NULL, NULL)) reports go to
** stderr, prefixed with "loom: ". */
static void test_default_report(void) {
  loom_t *lm;
  reports r;
  lua_State *L = newloom_reporting(&lm, &r);
  char buf[4096];
  FILE *tmp = tmpfile();
  ASSERT(tmp != NULL);
  loom_set_report(lm, NULL, NULL);
  TEST_DO(L, "keep = spawn(function() sleep(0) error('to stderr') end)");
  ASSERT_INT_EQ(loom_run(L, NULL), 0);

  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  ASSERT(saved >= 0);
  ASSERT(dup2(fileno(tmp), STDERR_FILENO) >= 0);
  int reported = loom_report_unretrieved(lm);
  fflush(stderr);
  ASSERT(dup2(saved, STDERR_FILENO) >= 0);
  close(saved);

  ASSERT_INT_EQ(reported, 1);
  ASSERT_INT_EQ(r.calls, 0);
  rewind(tmp);
  size_t len = fread(buf, 1, sizeof buf - 1, tmp);
  buf[len] = '\0';
  fclose(tmp);
  ASSERT(strncmp(buf, "loom: error in a task nobody awaited: ", 38) == 0);
  ASSERT_HAS(buf, "to stderr");
  ASSERT_HAS(buf, "stack traceback:");
  ASSERT_HAS(buf, "task spawned at");
  lua_close(L);
}

/* ---- deadlock ------------------------------------------------------- */

/* The main task waits on something nothing left can finish: loom_run
** says what it waits on; closing the state frees the stuck tasks. */
static void test_deadlock(void) {
  loom_t *lm;
  reports r;
  lua_State *L = newloom_reporting(&lm, &r);
  int n = -1;
  TEST_DO(L,
    "function on_future() local f = loom.future(); return f:await() end\n"
    "function on_task()\n"
    "  local t = spawn(on_future)\n"
    "  return t:await()\n"
    "end\n");
  lua_pushliteral(L, "below");
  TEST_SPAWN(L, "on_future");
  ASSERT_INT_EQ(loom_run(L, &n), LOOM_EDEADLOCK);
  ASSERT_INT_EQ(n, 0);
  ASSERT_INT_EQ(lua_gettop(L), 2);
  ASSERT_STR_EQ(lua_tostring(L, 1), "below");
  ASSERT_STR_EQ(lua_tostring(L, 2), "deadlock: the main task waits on a "
                "future at [string \"function on_future() local f = "
                "loom.future();...\"]:1, and nothing left to run can wake "
                "it");
  lua_settop(L, 0);

  TEST_SPAWN(L, "on_task");
  ASSERT_INT_EQ(loom_run(L, NULL), LOOM_EDEADLOCK);
  ASSERT_INT_EQ(lua_gettop(L), 1);
  ASSERT_HAS(lua_tostring(L, 1), "deadlock: the main task waits on a task");
  lua_settop(L, 0);
  ASSERT_INT_EQ(loom_report_unretrieved(lm), 0);
  lua_close(L);
  ASSERT_INT_EQ(r.calls, 0);
}

/* ---- os.exit -------------------------------------------------------- */

/* Spawns a function of 'code' as the main task; returns loom_run's code
** and checks that the task was popped and nothing pushed. */
static int run_code(lua_State *L, const char *code) {
  if (luaL_loadstring(L, code) != LUA_OK)
    TEST_FAIL("Lua failed: %s", lua_tostring(L, -1));
  ASSERT_INT_EQ(loom_spawn(L, 0), 0);
  int top = lua_gettop(L) - 1, n = -1;
  int r = loom_run(L, &n);
  if (r == LOOM_EEXIT) {
    ASSERT_INT_EQ(lua_gettop(L), top);
    ASSERT_INT_EQ(n, 0);
  }
  return r;
}

/* os.exit in a task stops the loop at once (other tasks left as they
** are) and lets the host decide; the state is still the host's to close. */
static void test_exit(void) {
  loom_t *lm;
  reports r;
  lua_State *L = newloom_reporting(&lm, &r);
  int close_state = -1;
  double t0 = test_ms();
  ASSERT_INT_EQ(run_code(L,
    "spawn(function() sleep(10) end)\n"
    "sleep(0.01)\n"
    "os.exit(3)\n"
    "error('not reached')\n"), LOOM_EEXIT);
  ASSERT(test_ms() - t0 < 1000.0);
  ASSERT_INT_EQ(loom_exit_code(lm, &close_state), 3);
  ASSERT_INT_EQ(close_state, 0);
  ASSERT_INT_EQ(loom_exit_code(lm, NULL), 3);
  ASSERT_INT_EQ(loom_report_unretrieved(lm), 0);
  lua_close(L);
  ASSERT_INT_EQ(r.calls, 0);
}

/* The forms of os.exit's arguments, and an exit no pcall can catch. */
static void test_exit_forms(void) {
  static const struct { const char *code; int status, close; } cases[] = {
    { "os.exit(5, true)", 5, 1 },
    { "os.exit(false)", EXIT_FAILURE, 0 },
    { "os.exit(true)", EXIT_SUCCESS, 0 },
    { "os.exit()", EXIT_SUCCESS, 0 },
    { "pcall(os.exit, 6); error('not reached')", 6, 0 },
    { "spawn(function() sleep(0) os.exit(7) end) sleep(10)", 7, 0 },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    loom_t *lm;
    lua_State *L = test_newloom(NULL, &lm);
    int close_state = -1;
    ASSERT_INT_EQ(run_code(L, cases[i].code), LOOM_EEXIT);
    ASSERT_INT_EQ(loom_exit_code(lm, &close_state), cases[i].status);
    ASSERT_INT_EQ(close_state, cases[i].close);
    lua_close(L);
  }
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    TEST_CASE(test_main_fails_with_table),
    TEST_CASE(test_main_fails_with_string),
    TEST_CASE(test_main_failure_stops_loop),
    TEST_CASE(test_main_cancelled),
    TEST_CASE(test_unretrieved_reported),
    TEST_CASE(test_unretrieved_collected),
    TEST_CASE(test_unretrieved_at_close),
    TEST_CASE(test_unretrieved_order),
    TEST_CASE(test_retrieved_not_reported),
    TEST_CASE(test_default_report),
    TEST_CASE(test_deadlock),
    TEST_CASE(test_exit),
    TEST_CASE(test_exit_forms),
    { NULL, NULL }
  };
  return test_main(cases, argc, argv);
}
