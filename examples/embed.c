/*
** embed.c: a minimal C host for loom. It makes a Lua state, installs a
** runtime on it, runs a Lua snippet that sleeps as a task, and prints
** what the task returned. Build (from the repository root):
**   gcc -std=gnu11 -Iinclude -I/usr/include/lua5.4 examples/embed.c \
**     build/libloom.a /usr/lib/x86_64-linux-gnu/liblua5.4.a \
**     -luv -lm -ldl -Wl,-E
** or against an installed loom (docs/install.md):
**   cc examples/embed.c $(pkg-config --cflags --libs loom)
*/
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lualib.h>

#include "loom.h"

/* The task: gets the host's argument as '...', waits on two sleeps at
** once and returns a greeting and how long it took. */
static const char snippet[] =
  "local name = ...\n"
  "local t0 = loom.now()\n"
  "local hello, who = loom.gather(\n"
  "  function() loom.sleep(0.2) return 'Hello' end,\n"
  "  function() loom.sleep(0.1) return name end)\n"
  "return hello .. ', ' .. who .. '!', loom.now() - t0\n";

/* Prints what loom_run left when it did not return 0. */
static void print_failure(lua_State *L, loom_t *lm, int r) {
  if (r == LOOM_EFAILED) {  /* error value, then traceback (or nil) */
    int tb = lua_gettop(L);
    loom_push_errmsg(L, tb - 1);  /* protected: __tostring may fail */
    fprintf(stderr, "embed: %s\n", lua_tostring(L, -1));
    if (lua_isstring(L, tb)) fprintf(stderr, "%s\n", lua_tostring(L, tb));
  } else if (r == LOOM_EDEADLOCK) {
    fprintf(stderr, "embed: %s\n", lua_tostring(L, -1));
  } else if (r == LOOM_EEXIT) {
    fprintf(stderr, "embed: os.exit(%d)\n", loom_exit_code(lm, NULL));
  } else {
    fprintf(stderr, "embed: %s\n", uv_strerror(r));
  }
}

int main(void) {
  int status = EXIT_SUCCESS, n, r;
  lua_State *L = luaL_newstate();
  if (L == NULL) return EXIT_FAILURE;
  luaL_openlibs(L);
  loom_t *lm = loom_open(L, NULL);  /* NULL: loom makes its own loop */
  if (lm == NULL) {
    lua_close(L);
    return EXIT_FAILURE;
  }
  lua_setglobal(L, "loom");  /* the module table loom_open pushed */

  if (luaL_loadstring(L, snippet) != LUA_OK) {
    fprintf(stderr, "embed: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return EXIT_FAILURE;
  }
  lua_pushliteral(L, "embedder");  /* the task's argument */
  loom_spawn(L, 1);                /* pops both, pushes the Task */
  r = loom_run(L, &n);             /* waits for the Task on top */
  if (r == 0) {
    printf("%s (took %.1f s, %d results)\n", lua_tostring(L, -2),
           lua_tonumber(L, -1), n);
    lua_pop(L, n);
  } else {
    print_failure(L, lm, r);
    status = EXIT_FAILURE;
  }
  if (loom_report_unretrieved(lm) > 0) status = EXIT_FAILURE;
  lua_close(L);  /* frees the runtime and closes its loop */
  return status;
}
