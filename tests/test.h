/*
** test.h: the little kit shared by tests/test-*.c, after libuv's
** test/task.h: assertions that say what they compared, a fresh Lua state
** with the standard libraries, running Lua text that must not fail, and a
** clock for checking that sleeps really waited.
**
** Each test file is one program (one ctest entry) made of several
** test_* functions listed in a test_case table for test_main; an assertion
** that fails prints the file, the line and the values, then aborts that
** test. 'test-run name...' runs only the named tests.
*/
#ifndef LOOM_TEST_H
#define LOOM_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <uv.h>

#include "loom.h"

#define TEST_FAIL(...)                                                  \
  do {                                                                  \
    fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                     \
    fprintf(stderr, __VA_ARGS__);                                       \
    fputc('\n', stderr);                                                \
    fflush(stderr);                                                     \
    abort();                                                            \
  } while (0)

#define ASSERT(expr)                                                    \
  do {                                                                  \
    if (!(expr)) TEST_FAIL("assertion failed: %s", #expr);              \
  } while (0)

#define ASSERT_INT_EQ(a, b)                                             \
  do {                                                                  \
    long long a_ = (long long)(a), b_ = (long long)(b);                 \
    if (a_ != b_)                                                       \
      TEST_FAIL("%s == %s: %lld != %lld", #a, #b, a_, b_);              \
  } while (0)

#define ASSERT_STR_EQ(a, b)                                             \
  do {                                                                  \
    const char *a_ = (a), *b_ = (b);                                    \
    if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                \
      TEST_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b,                   \
                a_ ? a_ : "(null)", b_ ? b_ : "(null)");                \
  } while (0)

/* 'hay' contains 'needle' */
#define ASSERT_HAS(hay, needle)                                         \
  do {                                                                  \
    const char *h_ = (hay), *n_ = (needle);                             \
    if (h_ == NULL || strstr(h_, n_) == NULL)                           \
      TEST_FAIL("%s does not contain \"%s\":\n%s", #hay, n_,            \
                h_ ? h_ : "(null)");                                    \
  } while (0)

/* A state with the standard libraries, as lua.c makes it. */
static inline lua_State *test_newstate(void) {
  lua_State *L = luaL_newstate();
  ASSERT(L != NULL);
  luaL_openlibs(L);
  return L;
}

/* A state with a runtime on 'loop' (NULL: its own) and the CLI's globals;
** the module table loom_open pushed is popped. */
static inline lua_State *test_newloom(uv_loop_t *loop, loom_t **lm) {
  lua_State *L = test_newstate();
  loom_t *m = loom_open(L, loop);
  ASSERT(m != NULL);
  lua_pop(L, 1);
  loom_openglobals(L);
  if (lm) *lm = m;
  return L;
}

/* Runs Lua text that must not fail, leaving nothing on the stack. */
#define TEST_DO(L, code)                                                \
  do {                                                                  \
    if (luaL_dostring((L), (code)) != LUA_OK)                           \
      TEST_FAIL("Lua failed: %s", lua_tostring((L), -1));               \
    lua_settop((L), 0);                                                 \
  } while (0)

/* Pushes global 'name', which must be a function, and spawns it with no
** arguments; the Task is left on top. */
#define TEST_SPAWN(L, name)                                             \
  do {                                                                  \
    ASSERT_INT_EQ(lua_getglobal((L), (name)), LUA_TFUNCTION);           \
    ASSERT_INT_EQ(loom_spawn((L), 0), 0);                               \
  } while (0)

/* Milliseconds on a monotonic clock. */
static inline double test_ms(void) {
  return (double)uv_hrtime() / 1e6;
}

typedef struct test_case {
  const char *name;
  void (*fn)(void);
} test_case;

#define TEST_CASE(fn) { #fn, fn }

/* Runs every case of the NULL-terminated table, or those named in argv,
** each in a child process as libuv's runner does, so one that aborts
** does not hide the others. Under valgrind each child is checked. */
static inline int test_main(const test_case *cases, int argc, char **argv) {
  int ran = 0, failed = 0;
  for (const test_case *c = cases; c->name != NULL; c++) {
    int wanted = argc <= 1, status;
    for (int i = 1; i < argc && !wanted; i++)
      wanted = strcmp(argv[i], c->name) == 0;
    if (!wanted) continue;
    ran++;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
      c->fn();
      exit(EXIT_SUCCESS);
    }
    ASSERT(waitpid(pid, &status, 0) == pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      printf("ok %s\n", c->name);
    } else {
      failed++;
      if (WIFSIGNALED(status))
        printf("FAIL %s (signal %d)\n", c->name, WTERMSIG(status));
      else
        printf("FAIL %s (exit %d)\n", c->name, WEXITSTATUS(status));
    }
  }
  fflush(stdout);
  if (ran == 0) {
    fprintf(stderr, "no test of that name\n");
    return EXIT_FAILURE;
  }
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
