/*
** test-host.c: what a C host does around tasks. Spawning a file or a
** string (and the errors: a missing file, a syntax error, no runtime);
** holding a task from C and reading its status and results; what
** lua_close does to unfinished tasks (their <close> variables run, and
** cannot wait); loom_close refusing where closing would crash; require
** "loom" from loom.so finding the runtime the host opened; two runtimes
** on two threads at once; memory running out inside the scheduler; and
** the failure contracts of loom_openglobals and loom_push_errmsg.
*/
#include <stdatomic.h>

#include "test.h"

/* ---- spawning a chunk ------------------------------------------------ */

static char *write_temp(const char *text) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/loom-test-host-XXXXXX");
  int fd = mkstemp(path);
  ASSERT(fd >= 0);
  ASSERT(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
  close(fd);
  return path;
}

static void test_spawn_file(void) {
  loom_t *lm;
  int n;
  lua_State *L = test_newloom(NULL, &lm);
  char *path = write_temp("#!/usr/bin/env loom\n"
                          "sleep(0.01)\n"
                          "return 'from a file', select('#', ...)\n");
  lua_pushliteral(L, "below");
  ASSERT_INT_EQ(loom_spawn_file(L, path), 0);
  ASSERT_INT_EQ(lua_gettop(L), 2);
  ASSERT(luaL_testudata(L, -1, "loom.Task") != NULL);
  ASSERT_INT_EQ(loom_run(L, &n), 0);
  ASSERT_INT_EQ(n, 2);
  ASSERT_STR_EQ(lua_tostring(L, 2), "from a file");
  ASSERT_INT_EQ(lua_tointeger(L, 3), 0);
  ASSERT_STR_EQ(lua_tostring(L, 1), "below");
  unlink(path);
  lua_close(L);
}

static void test_spawn_file_errors(void) {
  loom_t *lm;
  lua_State *L = test_newloom(NULL, &lm);
  ASSERT_INT_EQ(loom_spawn_file(L, "/nonexistent/script.lua"), LOOM_EFILE);
  ASSERT_INT_EQ(lua_gettop(L), 1);
  ASSERT_STR_EQ(lua_tostring(L, -1), "cannot open /nonexistent/script.lua: "
                                     "No such file or directory");
  lua_settop(L, 0);

  char *path = write_temp("local x = = 1\n");
  ASSERT_INT_EQ(loom_spawn_file(L, path), LOOM_ESYNTAX);
  ASSERT_INT_EQ(lua_gettop(L), 1);
  ASSERT_HAS(lua_tostring(L, -1), path);
  ASSERT_HAS(lua_tostring(L, -1), ":1: unexpected symbol near '='");
  unlink(path);
  lua_settop(L, 0);

  ASSERT_INT_EQ(loom_spawn_file(L, "/tmp"), LOOM_EFILE);  /* a directory */
  ASSERT_HAS(lua_tostring(L, -1), "cannot read /tmp");
  lua_close(L);

  L = test_newstate();  /* no runtime */
  ASSERT_INT_EQ(loom_spawn_file(L, "x.lua"), UV_EINVAL);
  ASSERT_STR_EQ(lua_tostring(L, -1),
                "loom_spawn_file: no loom runtime in this state");
  lua_close(L);
}

static void test_spawn_string(void) {
  loom_t *lm;
  int n;
  lua_State *L = test_newloom(NULL, &lm);
  ASSERT_INT_EQ(loom_spawn_string(L, "sleep(0) return 6 * 7", "=answer"),
                0);
  ASSERT_INT_EQ(loom_run(L, &n), 0);
  ASSERT_INT_EQ(n, 1);
  ASSERT_INT_EQ(lua_tointeger(L, -1), 42);
  lua_settop(L, 0);

  /* the chunk's name is in its errors; NULL names it by its code */
  ASSERT_INT_EQ(loom_spawn_string(L, "sleep(0) error('oops')", "=snippet"),
                0);
  ASSERT_INT_EQ(loom_run(L, NULL), LOOM_EFAILED);
  ASSERT_STR_EQ(lua_tostring(L, -2), "snippet:1: oops");
  lua_settop(L, 0);
  ASSERT_INT_EQ(loom_spawn_string(L, "return +", NULL), LOOM_ESYNTAX);
  ASSERT_STR_EQ(lua_tostring(L, -1),
                "[string \"return +\"]:1: unexpected symbol near '+'");
  lua_settop(L, 0);
  ASSERT_INT_EQ(loom_spawn_string(L, "x = ", "=snippet"), LOOM_ESYNTAX);
  ASSERT_STR_EQ(lua_tostring(L, -1), "snippet:1: unexpected symbol near "
                                     "<eof>");
  lua_settop(L, 0);
  ASSERT_INT_EQ(loom_spawn_string(L, NULL, "=x"), UV_EINVAL);
  ASSERT_STR_EQ(lua_tostring(L, -1), "loom_spawn_string: code is NULL");
  lua_close(L);

  L = test_newstate();
  ASSERT_INT_EQ(loom_spawn_string(L, "return 1", NULL), UV_EINVAL);
  ASSERT_STR_EQ(lua_tostring(L, -1),
                "loom_spawn_string: no loom runtime in this state");
  lua_close(L);
}

/* ---- tasks held from C ----------------------------------------------- */

static void test_task_refs(void) {
  loom_t *lm;
  int n;
  lua_State *L = test_newloom(NULL, &lm);
  ASSERT_INT_EQ(loom_spawn_string(L, "sleep(0.01) return 'a', nil, 3",
                                  "=t"), 0);
  /* before any ref was taken: a pointer loom does not hold */
  loom_task_t *t = lua_touserdata(L, -1);
  ASSERT_INT_EQ(loom_task_push(L, t), UV_EINVAL);
  ASSERT_INT_EQ(lua_gettop(L), 1);
  loom_task_unref(L, t);
  ASSERT_INT_EQ(lua_gettop(L), 1);
  t = loom_task_ref(L, -1);
  ASSERT(t != NULL);
  ASSERT(loom_task_ref(L, -1) == t);  /* a second ref */
  lua_pop(L, 1);
  lua_gc(L, LUA_GCCOLLECT);  /* referenced from C only: it stays */
  ASSERT_INT_EQ(loom_task_status(t), LOOM_TASK_PENDING);
  ASSERT_INT_EQ(loom_task_results(L, t, &n), UV_EAGAIN);
  ASSERT_INT_EQ(lua_gettop(L), 0);
  uv_run(loom_loop(lm), UV_RUN_NOWAIT);
  ASSERT_INT_EQ(loom_task_status(t), LOOM_TASK_RUNNING);
  ASSERT_INT_EQ(loom_run(L, NULL), 0);
  ASSERT_INT_EQ(loom_task_status(t), LOOM_TASK_DONE);
  ASSERT_INT_EQ(loom_task_results(L, t, &n), 0);
  ASSERT_INT_EQ(n, 3);
  ASSERT_INT_EQ(lua_gettop(L), 3);
  ASSERT_STR_EQ(lua_tostring(L, 1), "a");
  ASSERT(lua_isnil(L, 2));
  ASSERT_INT_EQ(lua_tointeger(L, 3), 3);
  lua_settop(L, 0);

  ASSERT_INT_EQ(loom_task_push(L, t), 0);
  ASSERT(luaL_testudata(L, -1, "loom.Task") != NULL);
  lua_pop(L, 1);
  loom_task_unref(L, t);
  ASSERT_INT_EQ(loom_task_push(L, t), 0);  /* one ref is left */
  lua_pop(L, 1);
  loom_task_unref(L, t);
  ASSERT_INT_EQ(loom_task_push(L, t), UV_EINVAL);
  ASSERT_INT_EQ(loom_task_results(L, t, &n), UV_EINVAL);
  ASSERT_STR_EQ(lua_tostring(L, -1),
                "loom_task_results: the task is not referenced");
  lua_settop(L, 0);
  loom_task_unref(L, t);  /* not referenced any more: nothing */
  loom_task_unref(L, NULL);

  /* not a Task */
  lua_pushinteger(L, 1);
  ASSERT(loom_task_ref(L, -1) == NULL);
  lua_newuserdatauv(L, sizeof(loom_task_t *), 0);
  ASSERT(loom_task_ref(L, -1) == NULL);
  lua_settop(L, 0);
  lua_close(L);

  L = test_newstate();
  lua_pushinteger(L, 1);
  ASSERT(loom_task_ref(L, -1) == NULL);  /* no runtime */
  lua_close(L);
}

typedef struct reports {
  int calls;
  char text[2][1024];
} reports;

static void record(loom_t *lm, const char *report, void *ud) {
  reports *r = ud;
  (void)lm;
  if (r->calls < 2) snprintf(r->text[r->calls], 1024, "%s", report);
  r->calls++;
}

/* A failed or cancelled task from C: its error and traceback, read once
** (which counts as retrieving it); one never read is reported. */
static void test_task_failures(void) {
  loom_t *lm;
  reports r = { 0 };
  lua_State *L = test_newloom(NULL, &lm);
  loom_set_report(lm, record, &r);
  ASSERT_INT_EQ(loom_spawn_string(L, "sleep(0) error({code = 5})", "=f"),
                0);
  loom_task_t *failed = loom_task_ref(L, -1);
  ASSERT_INT_EQ(loom_spawn_string(L, "sleep(10)", "=c"), 0);
  loom_task_t *cancelled = loom_task_ref(L, -1);
  lua_getfield(L, -1, "cancel");
  lua_insert(L, -2);
  lua_call(L, 1, 0);
  ASSERT_INT_EQ(loom_spawn_string(L, "sleep(0) error('never read')", "=u"),
                0);
  loom_task_t *unread = loom_task_ref(L, -1);
  lua_settop(L, 0);
  ASSERT_INT_EQ(loom_run(L, NULL), 0);

  ASSERT_INT_EQ(loom_task_status(failed), LOOM_TASK_FAILED);
  ASSERT_INT_EQ(loom_task_results(L, failed, NULL), LOOM_EFAILED);
  ASSERT_INT_EQ(lua_gettop(L), 2);
  ASSERT(lua_istable(L, 1));
  lua_getfield(L, 1, "code");
  ASSERT_INT_EQ(lua_tointeger(L, -1), 5);
  ASSERT_HAS(lua_tostring(L, 2), "stack traceback:");
  lua_settop(L, 0);

  ASSERT_INT_EQ(loom_task_status(cancelled), LOOM_TASK_CANCELLED);
  ASSERT_INT_EQ(loom_task_results(L, cancelled, NULL), LOOM_EFAILED);
  ASSERT_STR_EQ(luaL_tolstring(L, 1, NULL), "Cancelled: task cancelled");
  ASSERT(lua_isnil(L, 2));
  lua_settop(L, 0);

  ASSERT_INT_EQ(loom_report_unretrieved(lm), 1);  /* only 'unread' */
  ASSERT_HAS(r.text[0], "never read");
  loom_task_unref(L, failed);
  loom_task_unref(L, cancelled);
  loom_task_unref(L, unread);
  lua_close(L);
  ASSERT_INT_EQ(r.calls, 1);
}

/* ---- lua_close and unfinished tasks ---------------------------------- */

static char closed_log[8][128];
static int nclosed;

static int note(lua_State *L) {
  if (nclosed < 8)
    snprintf(closed_log[nclosed], 128, "%s", luaL_checkstring(L, 1));
  nclosed++;
  return 0;
}

/* Each task still waiting is closed as coroutine.close would: its <close>
** variables run (innermost first, with a nil error), a wait there raises
** "the runtime is closed", the rest of the task never runs. Works the
** same on the host's loop, which is left empty. */
static void close_tasks_on(uv_loop_t *loop) {
  loom_t *lm;
  lua_State *L = test_newloom(loop, &lm);
  nclosed = 0;
  lua_register(L, "note", note);
  TEST_DO(L,
    "local function closer(name, f)\n"
    "  return setmetatable({}, {__close = function(_, err)\n"
    "    note(name .. ':' .. tostring(err) .. (f and (':' .. f()) or ''))\n"
    "  end})\n"
    "end\n"
    "spawn(function()\n"
    "  local a <close> = closer('a')\n"
    "  local b <close> = closer('b', function()\n"
    "    local ok, e = pcall(sleep, 0)\n"
    "    return tostring(ok) .. ':' .. e\n"
    "  end)\n"
    "  sleep(100)\n"
    "  note('not reached')\n"
    "end)\n"
    "local f = loom.future()\n"
    "spawn(function()\n"
    "  local c <close> = closer('c')\n"
    "  f:await()\n"
    "end)\n"
    "spawn(function()\n"
    "  local d <close> = closer('d')\n"
    "  loom.gather(function() sleep(100) end, function() f:await() end)\n"
    "end)\n"
    "spawn(function() note('never started') end)\n");
  uv_run(loom_loop(lm), UV_RUN_NOWAIT);  /* all but the last are waiting */
  ASSERT_INT_EQ(nclosed, 1);
  ASSERT_STR_EQ(closed_log[0], "never started");  /* it did start */
  TEST_DO(L, "spawn(function() note('pending') end)");  /* never starts */
  nclosed = 0;
  lua_close(L);
  ASSERT_INT_EQ(nclosed, 4);
  int seen_a = 0, seen_b = 0, seen_c = 0, seen_d = 0;
  for (int i = 0; i < nclosed; i++) {
    if (strcmp(closed_log[i], "a:nil") == 0) seen_a = i + 1;
    if (strcmp(closed_log[i], "b:nil:false:loom: the runtime is closed") ==
        0)
      seen_b = i + 1;
    seen_c += strcmp(closed_log[i], "c:nil") == 0;
    seen_d += strcmp(closed_log[i], "d:nil") == 0;
  }
  ASSERT(seen_b && seen_a && seen_b < seen_a);  /* innermost first */
  ASSERT(seen_c == 1 && seen_d == 1);
  if (loop) {
    ASSERT_INT_EQ(uv_run(loop, UV_RUN_DEFAULT), 0);
    ASSERT_INT_EQ(uv_loop_close(loop), 0);
  }
}

static void test_close_unfinished_tasks(void) {
  close_tasks_on(NULL);
}

static void test_close_unfinished_tasks_host_loop(void) {
  uv_loop_t loop;
  ASSERT_INT_EQ(uv_loop_init(&loop), 0);
  close_tasks_on(&loop);
}

/* ---- loom_close ------------------------------------------------------ */

static int close_from_c(lua_State *L) {
  lua_pushinteger(L, loom_close(L));
  return 1;
}

static int post_result = 1;

static void close_from_post(loom_t *lm, void *ud) {
  (void)ud;
  if (lm != NULL) post_result = loom_close(loom_lua(lm));
}

static void run_from_post(loom_t *lm, void *ud) {
  (void)ud;
  if (lm != NULL) post_result = loom_run(loom_lua(lm), NULL);
}

static void test_loom_close(void) {
  loom_t *lm;
  int n;
  lua_State *L = test_newloom(NULL, &lm);
  lua_register(L, "close_from_c", close_from_c);
  /* inside a task */
  ASSERT_INT_EQ(loom_spawn_string(L, "return close_from_c()", "=t"), 0);
  ASSERT_INT_EQ(loom_run(L, &n), 0);
  ASSERT_INT_EQ(lua_tointeger(L, -1), UV_EBUSY);
  lua_settop(L, 0);
  /* inside a C function the host called through Lua */
  TEST_DO(L, "result = close_from_c()");
  lua_getglobal(L, "result");
  ASSERT_INT_EQ(lua_tointeger(L, -1), UV_EBUSY);
  lua_settop(L, 0);
  /* inside a post's fn */
  ASSERT_INT_EQ(loom_post(lm, close_from_post, NULL), 0);
  ASSERT_INT_EQ(loom_run(L, NULL), 0);
  ASSERT_INT_EQ(post_result, UV_EBUSY);
  /* loom_run from a post's fn while the host runs the loop: uv_run would
  ** nest */
  post_result = 1;
  ASSERT_INT_EQ(loom_post(lm, run_from_post, NULL), 0);
  uv_run(loom_loop(lm), UV_RUN_NOWAIT);
  ASSERT_INT_EQ(post_result, UV_EBUSY);
  /* from the host's own code: closes */
  ASSERT_INT_EQ(loom_close(L), 0);

  L = test_newstate();  /* no runtime: just lua_close */
  ASSERT_INT_EQ(loom_close(L), 0);
}

/* ---- require "loom" from loom.so ------------------------------------- */

/* libloom is linked into this test; loom.so is a second copy of loom's
** code. Requiring it must give the runtime the host opened, not a new
** one (which would take over the state's extra space). */
static void test_require_finds_host_runtime(void) {
  const char *dir = getenv("LOOM_SO_DIR");
  ASSERT(dir != NULL);
  loom_t *lm;
  int n;
  lua_State *L = test_newstate();
  lm = loom_open(L, NULL);
  ASSERT(lm != NULL);
  lua_setglobal(L, "host_loom");
  lua_pushfstring(L, "%s/?.so", dir);
  lua_setglobal(L, "cpath");
  TEST_DO(L,
    "package.cpath = cpath\n"
    "assert(require('loom') == host_loom)\n"   /* package.loaded */
    "package.loaded.loom = nil\n"
    "local so = package.searchpath('loom', cpath)\n"
    "assert(so, 'no loom.so in ' .. cpath)\n"
    "local m = require('loom')\n"               /* loom.so's luaopen */
    "assert(m == host_loom, 'a second loom module')\n"
    "assert(package.loaded.loom == host_loom)\n");
  ASSERT(loom_get(L) == lm);
  ASSERT_INT_EQ(loom_openglobals(L), 0);
  ASSERT_INT_EQ(loom_spawn_string(L, "sleep(0.01) return loom == host_loom",
                                  "=t"), 0);
  ASSERT_INT_EQ(loom_run(L, &n), 0);
  ASSERT(lua_toboolean(L, -1));
  lua_close(L);
}

/* ---- two runtimes, two threads --------------------------------------- */

typedef struct runner {
  const char *name;
  int ok;
  uv_thread_t thread;
} runner;

static void run_one(void *arg) {
  runner *r = arg;
  loom_t *lm;
  int n;
  lua_State *L = test_newloom(NULL, &lm);
  lua_pushstring(L, r->name);
  lua_setglobal(L, "name");
  ASSERT_INT_EQ(loom_spawn_string(L,
    "local t0 = loom.now()\n"
    "local parts = loom.gather({\n"
    "  function() sleep(0.05) return name end,\n"
    "  function() for i = 1, 50 do sleep(0.001) end return '!' end,\n"
    "})\n"
    "return parts[1] .. parts[2], loom.now() - t0", "=runner"), 0);
  ASSERT_INT_EQ(loom_run(L, &n), 0);
  r->ok = n == 2 && strcmp(lua_tostring(L, -2), r->name) != 0 &&
          strncmp(lua_tostring(L, -2), r->name, strlen(r->name)) == 0 &&
          lua_tonumber(L, -1) >= 0.049;
  lua_close(L);
}

static void test_two_runtimes_two_threads(void) {
  runner a = { "one", 0, 0 }, b = { "two", 0, 0 };
  double t0 = test_ms();
  ASSERT_INT_EQ(uv_thread_create(&a.thread, run_one, &a), 0);
  ASSERT_INT_EQ(uv_thread_create(&b.thread, run_one, &b), 0);
  ASSERT_INT_EQ(uv_thread_join(&a.thread), 0);
  ASSERT_INT_EQ(uv_thread_join(&b.thread), 0);
  ASSERT(a.ok && b.ok);
  ASSERT(test_ms() - t0 < 2000.0);
}

/* ---- memory runs out inside the scheduler ---------------------------- */

static atomic_int failing;

static void *failing_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  if (atomic_load(&failing) && (ptr == NULL || nsize > osize)) return NULL;
  return realloc(ptr, nsize);
}

static int start_failing(lua_State *L) {
  (void)L;
  atomic_store(&failing, 1);
  return 0;
}

/* Finishing a task allocates on the main thread, outside the task: a
** memory error there stops the runtime (UV_ENOMEM), it does not unwind
** through libuv nor reach the panic handler; the state still closes
** cleanly. */
static void test_memory_error_in_scheduler(void) {
  lua_State *L = lua_newstate(failing_alloc, NULL);
  ASSERT(L != NULL);
  luaL_openlibs(L);
  loom_t *lm = loom_open(L, NULL);
  ASSERT(lm != NULL);
  lua_pop(L, 1);
  ASSERT_INT_EQ(loom_openglobals(L), 0);
  lua_register(L, "start_failing", start_failing);
  atomic_store(&failing, 0);
  ASSERT_INT_EQ(loom_spawn_string(L, "sleep(0) start_failing() return 1",
                                  "=t"), 0);
  int r = loom_run(L, NULL);
  atomic_store(&failing, 0);
  ASSERT_INT_EQ(r, UV_ENOMEM);
  ASSERT_INT_EQ(loom_run(L, NULL), UV_ENOMEM);  /* it stays stopped */
  lua_close(L);
}

/* ---- failure contracts ----------------------------------------------- */

static void test_failure_contracts(void) {
  loom_t *lm;
  lua_State *L = test_newloom(NULL, &lm);
  ASSERT_INT_EQ(loom_run(L, NULL), 0);  /* an empty stack is fine */
  /* a sandbox whose _G refuses new globals */
  TEST_DO(L, "rawset(_G, 'sleep', nil)\n"
             "setmetatable(_G, {__newindex = function() "
             "error('read-only') end})");
  ASSERT_INT_EQ(loom_openglobals(L), LOOM_EFAILED);
  ASSERT_INT_EQ(lua_gettop(L), 0);
  TEST_DO(L, "setmetatable(_G, nil)");

  /* error values whose __tostring misbehaves */
  TEST_DO(L, "bad = {\n"
             "  setmetatable({}, {__tostring = function() error({}) end}),\n"
             "  setmetatable({}, {__tostring = function() error('mine') "
             "end}),\n"
             "  setmetatable({}, {__tostring = function() return 1 end}),\n"
             "  setmetatable({}, {__tostring = function() "
             "coroutine.yield() end}),\n"
             "  setmetatable({}, {__tostring = function() return 'ok' end}),"
             "\n}");
  static const char *const want[] = {
    "(error object is a table value)", "[string \"bad = {...\"]:3: mine",
    "(error object is a table value)",
    "attempt to yield from outside a coroutine", "ok"
  };
  lua_getglobal(L, "bad");
  for (int i = 1; i <= 5; i++) {
    lua_rawgeti(L, 1, i);
    int own = loom_push_errmsg(L, -1);
    ASSERT_INT_EQ(own, i == 5);
    ASSERT_HAS(lua_tostring(L, -1), want[i - 1]);
    lua_pop(L, 2);
  }
  lua_close(L);

  L = test_newstate();
  ASSERT_INT_EQ(loom_openglobals(L), UV_EINVAL);
  lua_close(L);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    TEST_CASE(test_spawn_file),
    TEST_CASE(test_spawn_file_errors),
    TEST_CASE(test_spawn_string),
    TEST_CASE(test_task_refs),
    TEST_CASE(test_task_failures),
    TEST_CASE(test_close_unfinished_tasks),
    TEST_CASE(test_close_unfinished_tasks_host_loop),
    TEST_CASE(test_loom_close),
    TEST_CASE(test_require_finds_host_runtime),
    TEST_CASE(test_two_runtimes_two_threads),
    TEST_CASE(test_memory_error_in_scheduler),
    TEST_CASE(test_failure_contracts),
    { NULL, NULL }
  };
  return test_main(cases, argc, argv);
}
