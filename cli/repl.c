/*
** repl.c: the loom REPL. It follows lua.c's doREPL (try "return <line>;"
** first, chunk name "=stdin", a leading '=' means return, continue while
** the syntax error ends in "<eof>", prompts from _PROMPT and _PROMPT2,
** results handed to the global print), but is driven by the loop: the
** prompt waits in a loop callback (lineedit.c), so tasks keep running
** while it does, and each input runs as a task of its own, so it can
** await. The next prompt appears when that task is over.
**
** An input is two tasks: the chunk itself (its error goes through loom's
** message handler, so the traceback includes where an awaited task
** failed), and a watcher that waits for it, shows its results or its
** error and puts up the next prompt.
**
** On a terminal: tables are pretty-printed and the first result is kept
** in _ (lib/loom/repl.lua), and print, io.write and io.stdout:write are
** gated so that output from a background task while the prompt waits
** clears the prompt line, writes, and redraws prompt and typed text. A
** partial line is held until its newline comes (or the prompt goes).
**
** Ctrl-C: a sigaction handler (not a uv_signal_t, since an input that
** never waits keeps the loop from ever running a callback) sets a hook on
** the thread running Lua, as lua.c's laction does, that raises a
** cancellation there; and it wakes the loop, which cancels the running
** input (task:cancel(): its cleanup runs) or, at the prompt, drops the
** typed text and any pending '>>' chunk. A second Ctrl-C before the
** first is dealt with, or while a cancelled input still unwinds, exits.
*/
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lineedit.h"
#include "repl.h"

#define EOFMARK "<eof>"
#define PROMPT1 "> "    /* lua.c's LUA_PROMPT and LUA_PROMPT2 */
#define PROMPT2 ">> "
#define HINT "await, sleep and gather work here; spawn(fn) runs fn in the " \
             "background; Ctrl-D exits"

enum { ST_OFF, ST_PROMPT, ST_RUNNING, ST_CLOSED };

typedef struct buffer { char *s; size_t n, cap; } buffer;

static struct {
  lua_State *L;        /* the main thread */
  loom_t *lm;
  lineedit *le;
  int tty;             /* stdin is a terminal: pretty results, _, gating */
  int started;
  buffer chunk;        /* a pending '>>' chunk, as compiled */
  buffer raw;          /* the same, as typed: one history entry */
  int pending;         /* chunk holds an incomplete chunk */
  int input_ref;       /* registry: the running input's Task */
  int module_ref;      /* registry: loom.repl */
  int cancel_sent;     /* the running input was cancelled by Ctrl-C */
  uv_async_t wake;     /* from the SIGINT handler into the loop */
  uv_prepare_t report; /* reports failures while the prompt waits */
  buffer held[2];      /* partial lines for stdout, stderr */
} R;

/* Shared with the SIGINT handler. */
static volatile sig_atomic_t state = ST_OFF;
static volatile sig_atomic_t run_int;     /* Ctrl-C while an input ran */
static volatile sig_atomic_t prompt_int;  /* Ctrl-C at the prompt */

static const char cancelled_key = 0;  /* registry: loom.Cancelled */

int repl_started(void) { return R.started; }

/* ---- small buffers -------------------------------------------------- */

static void buf_add(buffer *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->s, cap);
    if (p == NULL) return;  /* out of memory: the text is lost */
    b->s = p;
    b->cap = cap;
  }
  memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = '\0';
}

static void buf_free(buffer *b) {
  free(b->s);
  b->s = NULL;
  b->n = b->cap = 0;
}

/* ---- output while the prompt waits ---------------------------------- */

static int gating(void) {
  return R.tty && R.le != NULL && lineedit_visible(R.le);
}

static void flush_held(void) {
  FILE *files[2] = { stdout, stderr };
  for (int i = 0; i < 2; i++) {
    if (R.held[i].n == 0) continue;
    fwrite(R.held[i].s, 1, R.held[i].n, files[i]);
    fflush(files[i]);
    R.held[i].n = 0;
  }
}

/* Writes s to f (stdout or stderr), around the prompt if one is shown. */
static void out_write(FILE *f, const char *s, size_t n) {
  buffer *h = &R.held[f == stderr];
  if (!gating()) {
    flush_held();
    fwrite(s, 1, n, f);
    fflush(f);
    return;
  }
  buf_add(h, s, n);
  char *nl = NULL;
  for (size_t i = h->n; i > 0; i--) {
    if (h->s[i - 1] == '\n') {
      nl = h->s + i - 1;
      break;
    }
  }
  if (nl == NULL) return;  /* a partial line: held until it ends */
  size_t upto = (size_t)(nl - h->s) + 1;
  lineedit_hide(R.le);
  fwrite(h->s, 1, upto, f);
  fflush(f);
  memmove(h->s, h->s + upto, h->n - upto);
  h->n -= upto;
  lineedit_show(R.le);
}

static void out_string(FILE *f, const char *s) {
  out_write(f, s, strlen(s));
}

/* print, as Lua's, through out_write. */
static int gated_print(lua_State *L) {
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  out_write(stdout, s, len);
  return 0;
}

/* The values first..last as io.write writes them, through out_write. */
static void write_values(lua_State *L, int first, int last, FILE *f) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = first; i <= last; i++) {
    if (lua_type(L, i) == LUA_TNUMBER) {
      char num[64];
      if (lua_isinteger(L, i))
        snprintf(num, sizeof num, LUA_INTEGER_FMT,
                 (LUAI_UACINT)lua_tointeger(L, i));
      else
        snprintf(num, sizeof num, LUA_NUMBER_FMT,
                 (LUAI_UACNUMBER)lua_tonumber(L, i));
      luaL_addstring(&b, num);
    } else {
      size_t len;
      const char *s = luaL_checklstring(L, i, &len);
      luaL_addlstring(&b, s, len);
    }
  }
  luaL_pushresult(&b);
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  out_write(f, s, len);
  lua_pop(L, 1);
}

/* The terminal's stdout or stderr as a Lua file at idx, or NULL. */
static FILE *terminal_file(lua_State *L, int idx) {
  luaL_Stream *p = luaL_testudata(L, idx, LUA_FILEHANDLE);
  if (p == NULL || p->closef == NULL) return NULL;
  return p->f == stdout || p->f == stderr ? p->f : NULL;
}

/* Calls the original function (upvalue 1) with the arguments. */
static int call_original(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* io.write; upvalues: the original, io.output */
static int gated_io_write(lua_State *L) {
  if (!gating()) return call_original(L);
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_call(L, 0, 1);
  FILE *f = terminal_file(L, -1);
  if (f == NULL) {
    lua_pop(L, 1);
    return call_original(L);
  }
  write_values(L, 1, n, f);
  return 1;  /* the file, as io.write returns it */
}

/* file:write; upvalue: the original */
static int gated_file_write(lua_State *L) {
  FILE *f = gating() ? terminal_file(L, 1) : NULL;
  if (f == NULL) return call_original(L);
  write_values(L, 2, lua_gettop(L), f);
  lua_settop(L, 1);
  return 1;
}

static void install_gate(lua_State *L) {
  lua_pushcfunction(L, gated_print);
  lua_setglobal(L, "print");
  if (lua_getglobal(L, "io") == LUA_TTABLE) {
    lua_getfield(L, -1, "write");
    lua_getfield(L, -2, "output");
    lua_pushcclosure(L, gated_io_write, 2);
    lua_setfield(L, -2, "write");
  }
  lua_pop(L, 1);
  if (luaL_getmetatable(L, LUA_FILEHANDLE) == LUA_TTABLE &&
      lua_getfield(L, -1, "__index") == LUA_TTABLE) {
    lua_getfield(L, -1, "write");
    lua_pushcclosure(L, gated_file_write, 1);
    lua_setfield(L, -2, "write");
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* Failures nobody retrieved: shown as they come, without the program
** name (as lua.c shows errors in its REPL). */
static void report(loom_t *lm, const char *text, void *ud) {
  (void)lm; (void)ud;
  out_string(stderr, text);
  out_string(stderr, "\n");
}

/* ---- Ctrl-C --------------------------------------------------------- */

/* The hook set from the handler: raises a cancellation where Lua runs. */
static void interrupt_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "interrupted");
  lua_setfield(L, -2, "message");
  lua_rawgetp(L, LUA_REGISTRYINDEX, &cancelled_key);
  lua_setmetatable(L, -2);
  lua_error(L);
}

static void die_by_sigint(void) {
  lineedit_restore_terminal();
  signal(SIGINT, SIG_DFL);
  raise(SIGINT);  /* delivered as the handler returns */
}

static void on_sigint(int sig) {
  (void)sig;
  if (state == ST_CLOSED || (state == ST_RUNNING && run_int) ||
      (state == ST_PROMPT && prompt_int)) {
    die_by_sigint();  /* a second Ctrl-C: the first did not do it */
    return;
  }
  lua_State *T = loom_running(R.lm);
  if (T != NULL)
    lua_sethook(T, interrupt_hook, LUA_MASKCALL | LUA_MASKRET |
                LUA_MASKCOUNT, 1);
  if (state == ST_RUNNING) {
    run_int = 1;
    /* what the input or its cleanup prints goes under the echoed ^C */
    if (R.tty && write(STDOUT_FILENO, "\n", 1) < 0) prompt_int = 0;
  } else {
    prompt_int = 1;
  }
  uv_async_send(&R.wake);
}

static void set_sigint(void (*handler)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  /* a read at the prompt just goes on */
  sigaction(SIGINT, &sa, NULL);
}

/* ---- prompts -------------------------------------------------------- */

/* Pushes the prompt text: _PROMPT or _PROMPT2 through tostring, as lua.c
** (the default if that fails). */
static int prompt_text(lua_State *L) {
  int first = (int)lua_toboolean(L, 1);
  if (lua_getglobal(L, first ? "_PROMPT" : "_PROMPT2") == LUA_TNIL)
    lua_pushstring(L, first ? PROMPT1 : PROMPT2);
  else
    luaL_tolstring(L, -1, NULL);
  return 1;
}

static void prompt(lua_State *L, int first) {
  lua_pushcfunction(L, prompt_text);
  lua_pushboolean(L, first);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    lua_pop(L, 1);
    lua_pushstring(L, first ? PROMPT1 : PROMPT2);
  }
  state = ST_PROMPT;
  lineedit_read(R.le, lua_tostring(L, -1));
  lua_pop(L, 1);
}

/* ---- showing an input's outcome ------------------------------------- */

static int is_cancelled(lua_State *L, int idx) {
  int yes = 0;
  if (lua_getmetatable(L, idx)) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &cancelled_key);
    yes = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  return yes;
}

/* [error, traceback]: as lua.c's msghandler and report would show it. */
static void show_error(lua_State *L) {
  int err = lua_gettop(L) - 1;
  if (run_int && is_cancelled(L, err)) {
    out_string(stderr, "interrupted\n");
    return;
  }
  int own = loom_push_errmsg(L, err);
  out_string(stderr, lua_tostring(L, -1));
  if (!own && lua_type(L, err + 1) == LUA_TSTRING) {
    out_string(stderr, "\n");
    out_string(stderr, lua_tostring(L, err + 1));
  }
  out_string(stderr, "\n");
  lua_pop(L, 1);
}

/* The n values on top, through loom.repl's results (on a terminal), then
** the global print, as lua.c's l_print. */
static void show_results(lua_State *L, int n) {
  if (n == 0) return;
  int base = lua_gettop(L) - n;
  if (R.tty) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, R.module_ref);
    lua_getfield(L, -1, "results");
    lua_remove(L, -2);
    lua_insert(L, base + 1);
    if (lua_pcall(L, n, LUA_MULTRET, 0) != LUA_OK) {
      lua_pushnil(L);  /* no traceback: the error is ours */
      show_error(L);
      lua_settop(L, base);
      return;
    }
    n = lua_gettop(L) - base;
    if (n == 0) return;
  }
  luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
  lua_getglobal(L, "print");
  lua_insert(L, base + 1);
  if (lua_pcall(L, n, 0, 0) != LUA_OK) {
    lua_pushfstring(L, "error calling 'print' (%s)\n", lua_tostring(L, -1));
    out_string(stderr, lua_tostring(L, -1));
  }
  lua_settop(L, base);
}

/* ---- running an input ----------------------------------------------- */

static int call_input_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return lua_gettop(L);
}

/* The input task's body: [chunk]. A C frame under the chunk, so its
** traceback ends as lua.c's does ("[C]: in ?"). */
static int call_input(lua_State *L) {
  lua_callk(L, 0, LUA_MULTRET, 0, call_input_k);
  return lua_gettop(L);
}

static void input_done(lua_State *L) {
  luaL_unref(L, LUA_REGISTRYINDEX, R.input_ref);
  R.input_ref = LUA_NOREF;
  if (state != ST_RUNNING) return;  /* closed meanwhile */
  prompt(L, 1);
}

static int watch_k(lua_State *L, int status, lua_KContext ctx);

/* [task]: waits until the input task is over */
static int watch_wait(lua_State *L) {
  lua_settop(L, 1);
  lua_getfield(L, 1, "await");
  lua_pushvalue(L, 1);
  return watch_k(L, lua_pcallk(L, 1, 0, 0, 0, watch_k), 0);
}

static int watch_k(lua_State *L, int status, lua_KContext ctx) {
  int n, r;
  (void)status; (void)ctx;
  lua_settop(L, 1);  /* the task; its results are taken below */
  r = loom_task_outcome(L, 1, &n);
  if (r == UV_EAGAIN) return watch_wait(L);  /* only the watcher stopped */
  if (r == 0) show_results(L, n);
  else if (r == LOOM_EFAILED) show_error(L);
  lua_settop(L, 0);
  input_done(L);
  return 0;
}

/* Runs the compiled chunk on top of L (popped) as the input. */
static void run(lua_State *L) {
  lua_pushcfunction(L, call_input);
  lua_insert(L, -2);
  if (loom_spawn(L, 1) != 0) {
    lua_pop(L, 2);
    prompt(L, 1);
    return;
  }
  lua_pushvalue(L, -1);
  R.input_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushcfunction(L, watch_wait);
  lua_insert(L, -2);
  loom_spawn(L, 1);
  lua_pop(L, 1);
  run_int = 0;
  R.cancel_sent = 0;
  state = ST_RUNNING;
}

/* ---- reading lines, as lua.c's loadline and multiline --------------- */

/* Whether the load status and message on top say the chunk is only
** incomplete (the message is then popped). */
static int incomplete(lua_State *L, int status) {
  if (status == LUA_ERRSYNTAX) {
    size_t len, mark = sizeof EOFMARK - 1;
    const char *msg = lua_tolstring(L, -1, &len);
    if (len >= mark && strcmp(msg + len - mark, EOFMARK) == 0) {
      lua_pop(L, 1);
      return 1;
    }
  }
  return 0;
}

static void clear_pending(void) {
  R.pending = 0;
  R.chunk.n = R.raw.n = 0;
}

/* A syntax error of the input: shown, and the next prompt. */
static void syntax_error(lua_State *L) {
  out_string(stderr, lua_tostring(L, -1));
  out_string(stderr, "\n");
  lua_pop(L, 1);
  prompt(L, 1);
}

static void take_line(lua_State *L, const char *line) {
  if (!R.pending) {
    if (line[0] == '=')  /* as in Lua 5.2 */
      lua_pushfstring(L, "return %s", line + 1);
    else
      lua_pushstring(L, line);
    const char *text = lua_tostring(L, -1);
    const char *ret = lua_pushfstring(L, "return %s;", text);
    if (luaL_loadbuffer(L, ret, strlen(ret), "=stdin") == LUA_OK) {
      lua_replace(L, -3);
      lua_pop(L, 1);
      lineedit_history_add(R.le, line);
      run(L);
      return;
    }
    lua_pop(L, 2);  /* the message and "return ...;" */
    buf_add(&R.chunk, text, strlen(text));
    buf_add(&R.raw, line, strlen(line));
    lua_pop(L, 1);
    R.pending = 1;
  } else {
    buf_add(&R.chunk, "\n", 1);
    buf_add(&R.chunk, line, strlen(line));
    buf_add(&R.raw, "\n", 1);
    buf_add(&R.raw, line, strlen(line));
  }
  int status = luaL_loadbuffer(L, R.chunk.s, R.chunk.n, "=stdin");
  if (incomplete(L, status)) {
    prompt(L, 0);
    return;
  }
  lineedit_history_add(R.le, R.raw.s);
  clear_pending();
  if (status == LUA_OK) run(L);
  else syntax_error(L);
}

static void finish(lua_State *L);

static void on_line(char *line, void *ud) {
  lua_State *L = R.L;
  (void)ud;
  flush_held();
  if (line != NULL) {
    take_line(L, line);
    free(line);
  } else if (R.pending) {  /* the end of input inside a chunk */
    luaL_loadbuffer(L, R.chunk.s, R.chunk.n, "=stdin");
    lineedit_history_add(R.le, R.raw.s);
    clear_pending();
    syntax_error(L);
  } else {
    finish(L);
  }
}

/* ---- completion ----------------------------------------------------- */

static int complete_list(lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, R.module_ref);
  lua_getfield(L, -1, "complete");
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  luaL_checktype(L, -1, LUA_TTABLE);
  return 1;
}

static char **complete(const char *word, void *ud) {
  lua_State *L = R.L;
  char **out = NULL;
  (void)ud;
  /* no user code while completing: not even a finalizer */
  int running = lua_gc(L, LUA_GCISRUNNING);
  lua_gc(L, LUA_GCSTOP);
  lua_pushcfunction(L, complete_list);
  lua_pushstring(L, word);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
    size_t n = (size_t)lua_rawlen(L, -1);
    out = calloc(n + 1, sizeof *out);
    for (size_t i = 0; out != NULL && i < n; i++) {
      lua_rawgeti(L, -1, (lua_Integer)i + 1);
      const char *s = lua_tostring(L, -1);
      out[i] = strdup(s ? s : "");
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  if (running) lua_gc(L, LUA_GCRESTART);
  return out;
}

/* ---- the loop's side ------------------------------------------------ */

static void cancel_input(lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, R.input_ref);
  if (lua_getfield(L, -1, "cancel") == LUA_TFUNCTION) {
    lua_insert(L, -2);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
  } else {
    lua_pop(L, 2);
  }
}

static void on_wake(uv_async_t *h) {
  lua_State *L = R.L;
  (void)h;
  if (prompt_int) {
    prompt_int = 0;
    if (state == ST_PROMPT && lineedit_visible(R.le)) {
      clear_pending();
      flush_held();
      lineedit_abort(R.le);
      prompt(L, 1);
    }
  }
  if (run_int && state == ST_RUNNING && !R.cancel_sent) {
    R.cancel_sent = 1;
    cancel_input(L);
  }
}

/* A Ctrl-C at the prompt clears the line before the next key goes in. */
static void before_read(void *ud) {
  (void)ud;
  if (prompt_int) on_wake(NULL);
}

static void on_report(uv_prepare_t *h) {
  (void)h;
  if (state == ST_PROMPT) loom_report_unretrieved(R.lm);
}

static void on_closed(uv_handle_t *h) {
  (void)h;
}

/* Lets go of the terminal, the handles and the buffers. */
static void close_all(void) {
  state = ST_CLOSED;
  flush_held();
  lineedit_close(R.le);
  R.le = NULL;
  uv_close((uv_handle_t *)&R.wake, on_closed);
  uv_close((uv_handle_t *)&R.report, on_closed);
  buf_free(&R.chunk);
  buf_free(&R.raw);
  buf_free(&R.held[0]);
  buf_free(&R.held[1]);
}

/* The end of input: as lua.c, a newline; then the background tasks are
** cancelled, and the loop ends once they have unwound. */
static void finish(lua_State *L) {
  (void)L;
  close_all();
  fputs("\n", stdout);
  fflush(stdout);
  int n = loom_cancel_all(R.lm);
  if (n > 0)
    fprintf(stderr, "cancelling %d background task%s\n", n,
            n == 1 ? "" : "s");
}

void repl_shutdown(void) {
  if (state == ST_OFF) return;
  if (state != ST_CLOSED) close_all();  /* so lua_close can end the loop */
  lineedit_restore_terminal();
  signal(SIGINT, SIG_DFL);
}

/* ---- starting ------------------------------------------------------- */

/* $XDG_STATE_HOME/loom/history, else ~/.local/state/loom/history; the
** directories are made (0700) if missing. NULL if there is no home. */
static char *history_path(void) {
  const char *base = getenv("XDG_STATE_HOME");
  const char *home = getenv("HOME");
  char *path;
  size_t len;
  if (base != NULL && base[0] == '/') {
    len = strlen(base) + sizeof "/loom/history";
    path = malloc(len);
    if (path) snprintf(path, len, "%s/loom/history", base);
  } else if (home != NULL && home[0] != '\0') {
    len = strlen(home) + sizeof "/.local/state/loom/history";
    path = malloc(len);
    if (path) snprintf(path, len, "%s/.local/state/loom/history", home);
  } else {
    return NULL;
  }
  if (path == NULL) return NULL;
  for (char *p = path + 1; *p; p++) {  /* mkdir -p of the directory */
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
      free(path);
      return NULL;
    }
    *p = '/';
  }
  return path;
}

/* package.preload["loom.repl"]: the module, not through require (which
** the user may have changed). */
static int load_module(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_getfield(L, -1, "loom.repl");
  lua_pushliteral(L, "loom.repl");
  lua_call(L, 1, 1);
  luaL_checktype(L, -1, LUA_TTABLE);
  R.module_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "loom");
  lua_getfield(L, -1, "Cancelled");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &cancelled_key);
  return 0;
}

int repl_start(lua_State *L, loom_t *lm) {
  static const lineedit_hooks hooks = {
    on_line, complete, before_read, NULL
  };
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  R.L = lua_tothread(L, -1);
  lua_pop(L, 1);
  R.lm = lm;
  R.input_ref = LUA_NOREF;
  lua_pushcfunction(L, load_module);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    lua_pop(L, 1);
    return -1;
  }
  R.le = lineedit_open(loom_loop(lm), &hooks);
  if (R.le == NULL) return -1;
  R.started = 1;
  R.tty = lineedit_is_tty(R.le);
  /* wake keeps the loop alive until the end of input, also while an
  ** input waits on something nothing else will complete */
  uv_async_init(loom_loop(lm), &R.wake, on_wake);
  uv_prepare_init(loom_loop(lm), &R.report);
  uv_prepare_start(&R.report, on_report);
  uv_unref((uv_handle_t *)&R.report);
  loom_set_report(lm, report, NULL);
  if (R.tty) {
    install_gate(L);
    char *path = history_path();
    lineedit_history(R.le, path);
    free(path);
    fputs(HINT "\n", stdout);
    fflush(stdout);
  }
  set_sigint(on_sigint);
  prompt(L, 1);
  return 0;
}
