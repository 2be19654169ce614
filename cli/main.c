/*
** main.c: the loom command. It reads its arguments as lua(1) does, but
** runs everything (LUA_INIT, -e, -l, the script or stdin) in one main
** task, so the main chunk can await; then runs the loop until no work
** remains (Node's rule) and exits 0, or 1 with the error on stderr. With
** -i, or alone on a terminal, the main task ends by starting the REPL
** (repl.c), which then runs until the end of input.
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "alloc.h"
#include "loom.h"
#include "repl.h"

#define HAS_E 0x01  /* -e */
#define HAS_V 0x02  /* -v */
#define HAS_BIG_E 0x04  /* -E */
#define HAS_W 0x08  /* -W */
#define HAS_H 0x10  /* -h */
#define HAS_I 0x20  /* -i */
#define HAS_DEBUG 0x40  /* --debug, or LOOM_DEBUG=1 */

typedef struct cli {
  int argc;
  char **argv;
  int script;      /* index of the script in argv, or 0 */
  int flags;
  int load_error;  /* the failure is a load error: no traceback */
  const char *global;  /* -l: the global that receives the module */
} cli_t;

static const char *progname = "loom";

static void message(const char *msg) {
  fprintf(stderr, "%s: %s\n", progname, msg);
  fflush(stderr);
}

static void print_usage(const char *badoption) {
  if (badoption[1] == 'e' || badoption[1] == 'l')
    fprintf(stderr, "%s: '%s' needs argument\n", progname, badoption);
  else
    fprintf(stderr, "%s: unrecognized option '%s'\n", progname, badoption);
  fprintf(stderr,
          "usage: %s [options] [script [args]]\n"
          "Available options are:\n"
          "  -e stat   execute string 'stat'\n"
          "  -i        enter interactive mode after executing 'script'\n"
          "  -l mod    require library 'mod' into global 'mod'\n"
          "  -v        show version information\n"
          "  -E        ignore environment variables\n"
          "  -W        turn warnings on\n"
          "  -h        show this help\n"
          "  --debug   warn about blocked loops, list tasks left at exit\n"
          "  --        stop handling options\n"
          "  -         stop handling options and execute stdin\n",
          progname);
  fflush(stderr);
}

static void print_version(void) {
  printf("loom %s (%s, libuv %s)\n", LOOM_VERSION, LUA_RELEASE,
         uv_version_string());
  fflush(stdout);
}

static void print_help(void) {
  print_version();
  printf("usage: %s [options] [script [args]]\n"
         "Runs a Lua 5.4 script as a task on an event loop: the script can\n"
         "sleep, spawn tasks, gather and await them. Options as lua(1):\n"
         "  -e stat   execute string 'stat'\n"
         "  -i        enter interactive mode after executing 'script'\n"
         "  -l mod    require library 'mod' into global 'mod'\n"
         "  -v        show version information\n"
         "  -E        ignore environment variables\n"
         "  -W        turn warnings on\n"
         "  -h        show this help\n"
         "  --debug   warn when a task blocks the loop (over\n"
         "            LOOM_DEBUG_BLOCK_MS, 100 ms), list tasks left at\n"
         "            exit; also LOOM_DEBUG=1\n"
         "  --        stop handling options\n"
         "  -         stop handling options and execute stdin\n",
         progname);
}

/* Returns 0, or -1 after printing the usage. As lua.c's collectargs. */
static int collect_args(cli_t *c) {
  char **argv = c->argv;
  for (int i = 1; argv[i] != NULL; i++) {
    if (argv[i][0] != '-') {  /* the script */
      c->script = i;
      return 0;
    }
    switch (argv[i][1]) {
      case '-':
        if (strcmp(argv[i], "--debug") == 0) {
          c->flags |= HAS_DEBUG;
          continue;
        }
        if (argv[i][2] != '\0') break;
        c->script = argv[i + 1] != NULL ? i + 1 : 0;
        return 0;
      case '\0':  /* '-': stdin */
        c->script = i;
        return 0;
      case 'E':
        if (argv[i][2] != '\0') break;
        c->flags |= HAS_BIG_E;
        continue;
      case 'W':
        if (argv[i][2] != '\0') break;
        c->flags |= HAS_W;
        continue;
      case 'i':  /* implies -v, as in lua.c */
        if (argv[i][2] != '\0') break;
        c->flags |= HAS_I | HAS_V;
        continue;
      case 'v':
        if (argv[i][2] != '\0') break;
        c->flags |= HAS_V;
        continue;
      case 'h':
        if (argv[i][2] != '\0') break;
        c->flags |= HAS_H;
        continue;
      case 'e':
        c->flags |= HAS_E;
        /* FALLTHROUGH */
      case 'l':
        if (argv[i][2] == '\0') {
          i++;
          if (argv[i] == NULL || argv[i][0] == '-') {
            print_usage(argv[i - 1]);
            return -1;
          }
        }
        continue;
      default:
        break;
    }
    print_usage(argv[i]);
    return -1;
  }
  return 0;
}

/* arg: the script at 0, its arguments from 1, what came before below. */
static void create_arg_table(lua_State *L, cli_t *c) {
  int script = c->script ? c->script : 0;
  lua_createtable(L, c->argc - script, script + 1);
  for (int i = 0; i < c->argc; i++) {
    lua_pushstring(L, c->argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* ---- the main task: a small machine over the steps, so each chunk can
** suspend (a continuation picks up at the next step) ------------------ */

enum { STEP_INIT = 0, STEP_ARGS = 1 };
#define STEP_SCRIPT  (1 << 24)
#define STEP_STDIN   (STEP_SCRIPT + 1)
#define STEP_REPL    (STEP_SCRIPT + 2)
#define STEP_END     (STEP_SCRIPT + 3)
#define SET_GLOBAL   (1 << 28)   /* -l: the result goes into c->global */

static int steps(lua_State *L, cli_t *c, int step);

static int loaded(lua_State *L, cli_t *c, int status) {
  if (status != LUA_OK) {
    c->load_error = 1;
    return lua_error(L);
  }
  return 0;
}

static int steps_k(lua_State *L, int status, lua_KContext ctx) {
  cli_t *c = lua_touserdata(L, 1);
  int step = (int)ctx;
  (void)status;
  if (step & SET_GLOBAL) {
    lua_setglobal(L, c->global);
    step &= ~SET_GLOBAL;
  }
  return steps(L, c, step);
}

/* Calls the function on top (with nargs below it moved above) and then
** goes on at step 'next'. */
static int call_then(lua_State *L, int nargs, int nres, int next) {
  lua_callk(L, nargs, nres, next, steps_k);
  return steps_k(L, LUA_OK, next);
}

static int run_init(lua_State *L, cli_t *c) {
  const char *name = "=LUA_INIT_5_4";
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=LUA_INIT";
    init = getenv(name + 1);
  }
  if (init == NULL || (c->flags & HAS_BIG_E)) return steps(L, c, STEP_ARGS);
  if (init[0] == '@')
    loaded(L, c, luaL_loadfile(L, init + 1));
  else
    loaded(L, c, luaL_loadbuffer(L, init, strlen(init), name));
  return call_then(L, 0, 0, STEP_ARGS);
}

static int run_option(lua_State *L, cli_t *c, int i) {
  char **argv = c->argv;
  int opt = argv[i][1];
  if (opt != 'e' && opt != 'l')
    return steps(L, c, i + 1);  /* -E, -W, -v, -h: done before */
  char *extra = argv[i][2] ? argv[i] + 2 : argv[++i];
  if (opt == 'e') {
    loaded(L, c, luaL_loadbuffer(L, extra, strlen(extra), "=(command line)"));
    return call_then(L, 0, 0, i + 1);
  }
  /* -l mod, or -l g=mod: g = require "mod" */
  char *modname = strchr(extra, '=');
  if (modname != NULL) *modname++ = '\0';
  else modname = extra;
  c->global = extra;
  lua_getglobal(L, "require");
  lua_pushstring(L, modname);
  return call_then(L, 1, 1, (i + 1) | SET_GLOBAL);
}

static int run_script(lua_State *L, cli_t *c) {
  char **argv = c->argv;
  const char *fname = argv[c->script];
  if (strcmp(fname, "-") == 0 && strcmp(argv[c->script - 1], "--") != 0)
    fname = NULL;  /* stdin */
  loaded(L, c, luaL_loadfile(L, fname));
  /* as lua.c: the script's ... is the global arg as it is now, after the
  ** -e chunks ran (which may have changed it) */
  c->load_error = 1;  /* an error here is reported as lua.c does: bare */
  if (lua_getglobal(L, "arg") != LUA_TTABLE)
    return luaL_error(L, "'arg' is not a table");
  int n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  for (int i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -n - 1);
  c->load_error = 0;
  return call_then(L, n, 0, STEP_REPL);
}

/* Whether the loom command starts its REPL once the steps are done: with
** -i, or with nothing to run and stdin a terminal (lua.c's rule). */
static int wants_repl(const cli_t *c) {
  return (c->flags & HAS_I) ||
         (!c->script && !(c->flags & (HAS_E | HAS_V)) &&
          isatty(STDIN_FILENO));
}

static int run_repl(lua_State *L, cli_t *c) {
  if (!(c->flags & HAS_V)) print_version();  /* as lua.c, after the rest */
  if (repl_start(L, loom_get(L)) != 0)
    return luaL_error(L, "cannot start the REPL: not enough memory");
  return 0;
}

static int steps(lua_State *L, cli_t *c, int step) {
  int last_option = c->script ? c->script : c->argc;
  if (step == STEP_INIT) return run_init(L, c);
  if (step < STEP_SCRIPT) {
    if (step < last_option && c->argv[step][0] == '-')
      return run_option(L, c, step);
    return steps(L, c, c->script ? STEP_SCRIPT : STEP_STDIN);
  }
  if (step == STEP_SCRIPT) return run_script(L, c);
  if (step == STEP_STDIN && !(c->flags & (HAS_E | HAS_V)) &&
      !wants_repl(c)) {
    loaded(L, c, luaL_loadfile(L, NULL));
    return call_then(L, 0, 0, STEP_END);
  }
  if (step <= STEP_REPL && wants_repl(c)) return run_repl(L, c);
  return 0;
}

static int main_body(lua_State *L) {
  return steps(L, lua_touserdata(L, 1), STEP_INIT);
}

/* ---- the process ---------------------------------------------------- */

static int panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "%s: PANIC: unprotected error in call to Lua API (%s)\n",
          progname, msg ? msg : "error object is not a string");
  return 0;
}

/* Warnings as lua(1) shows them (lauxlib's warnfoff, warnfon and
** warnfcont): off until "@on"; a one-piece message starting with '@' is a
** control message, also the last piece of one while warnings are off. */
typedef struct { int on, cont; } warn_state;

static int warn_control(warn_state *w, const char *msg, int tocont) {
  if (tocont || msg[0] != '@') return 0;
  if (strcmp(msg, "@off") == 0) w->on = 0;
  else if (strcmp(msg, "@on") == 0) w->on = 1;
  return 1;
}

static void warn(void *ud, const char *msg, int tocont) {
  warn_state *w = ud;
  if (!w->cont) {
    if (!w->on) {
      warn_control(w, msg, tocont);
      return;
    }
    if (warn_control(w, msg, tocont)) return;
    fputs("Lua warning: ", stderr);
  }
  fputs(msg, stderr);
  if (!tocont) fputs("\n", stderr);
  fflush(stderr);
  w->cont = tocont;
}

/* A state on loom's pool allocator (see alloc.c); LOOM_ALLOC=system, or a
** sanitizer build, keeps malloc for every block so tools see them all. */
static lua_State *new_state(loom_pool **pool, warn_state *w) {
  const char *choice = getenv("LOOM_ALLOC");
  lua_State *L;
  *pool = NULL;
#ifndef LOOM_SANITIZE
  if (choice == NULL || strcmp(choice, "system") != 0)
    *pool = loom_pool_new();
#else
  (void)choice;
#endif
  if (*pool == NULL) {
    L = luaL_newstate();
  } else {
    L = lua_newstate(loom_pool_alloc, *pool);
    if (L != NULL) {
      lua_atpanic(L, panic);
      lua_setwarnf(L, warn, w);
    }
  }
  return L;
}

/* --debug: loom.debug[what](arg), under pcall; a string it gives is
** printed (the tasks left at exit). */
static int debug_protected(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "loom");
  lua_getfield(L, -1, "debug");
  lua_getfield(L, -1, lua_tostring(L, 1));
  lua_pushvalue(L, 2);
  lua_call(L, 1, 1);
  return 1;
}

static void debug_call(lua_State *L, const char *what, double arg) {
  lua_pushcfunction(L, debug_protected);
  lua_pushstring(L, what);
  lua_pushnumber(L, arg);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK || lua_type(L, -1) == LUA_TSTRING)
    message(lua_tostring(L, -1));
  lua_pop(L, 1);
}

/* The threshold of --debug: LOOM_DEBUG_BLOCK_MS, else 100 ms. */
static double block_ms(void) {
  const char *s = getenv("LOOM_DEBUG_BLOCK_MS");
  double ms = s ? strtod(s, NULL) : 0;
  return ms > 0 && ms < 1e9 ? ms : 100;
}

static void report(loom_t *lm, const char *text, void *ud) {
  (void)lm; (void)ud;
  message(text);
}

/* As lua.c: an error object with __tostring is its own message, with no
** traceback; any other gets one. */
static int report_failure(lua_State *L, cli_t *c, int r) {
  if (r == LOOM_EFAILED) {
    int tb = lua_gettop(L);
    int own_message = loom_push_errmsg(L, tb - 1);
    if (c->load_error || own_message || !lua_isstring(L, tb))
      message(lua_tostring(L, -1));
    else
      fprintf(stderr, "%s: %s\n%s\n", progname, lua_tostring(L, -1),
              lua_tostring(L, tb));
  } else if (r == LOOM_EDEADLOCK) {
    message(lua_tostring(L, -1));
  } else {
    message(uv_strerror(r));
  }
  fflush(stderr);
  return EXIT_FAILURE;
}

int main(int argc, char **argv) {
  cli_t c = { argc, argv, 0, 0, 0, NULL };
  int status = EXIT_SUCCESS, r, close_state;
  if (argv[0] && argv[0][0]) progname = argv[0];
  if (collect_args(&c) != 0) return EXIT_FAILURE;
  if (c.flags & HAS_H) {
    print_help();
    return EXIT_SUCCESS;
  }
  if (c.flags & HAS_V) print_version();

  loom_pool *pool;
  warn_state w = { 0, 0 };
  lua_State *L = new_state(&pool, &w);
  if (L == NULL) {
    message("cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  if (c.flags & HAS_BIG_E) {
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  loom_t *lm = loom_open(L, NULL);
  if (lm == NULL) {
    message("cannot start the runtime");
    lua_close(L);
    return EXIT_FAILURE;
  }
  lua_pop(L, 1);
  loom_set_report(lm, report, NULL);
  loom_openglobals(L);
  if (c.flags & HAS_W) lua_warning(L, "@on", 0);
  const char *env_debug = getenv("LOOM_DEBUG");
  if (!(c.flags & HAS_BIG_E) && env_debug && *env_debug &&
      strcmp(env_debug, "0") != 0)
    c.flags |= HAS_DEBUG;
  if (c.flags & HAS_DEBUG) debug_call(L, "enable", block_ms());
  /* incremental, where lua.c chooses generational: it serves spawn bursts
  ** better (see runtime/sched.c) and measured no worse elsewhere
  ** (docs/performance.md) */
  lua_gc(L, LUA_GCINC, 0, 0, 0);
  create_arg_table(L, &c);

  lua_pushcfunction(L, main_body);
  lua_pushlightuserdata(L, &c);
  loom_spawn(L, 1);
  loom_catch_sigint(L, -1);  /* Ctrl-C cancels the main task (loom.h) */
  r = loom_run(L, NULL);
  signal(SIGINT, SIG_DFL);
  repl_shutdown();
  if (r == LOOM_EEXIT) {
    status = loom_exit_code(lm, &close_state);
    loom_report_unretrieved(lm);
    if (close_state) {
      lua_close(L);
      loom_pool_free(pool);
    }
    exit(status);
  }
  if (r != 0 && loom_interrupted(lm)) {  /* cancelled by Ctrl-C */
    message("interrupted");
    status = 130;
  } else if (r != 0) {
    status = report_failure(L, &c, r);
  } else if (c.flags & HAS_DEBUG) {
    debug_call(L, "pending", 0);
  }
  loom_report_unretrieved(lm);
  /* errors in the REPL's inputs were shown there and leave the status 0 */
  if (loom_reported_total(lm) > 0 && !repl_started()) status = EXIT_FAILURE;
  lua_close(L);
  loom_pool_free(pool);
  return status;
}
