/*
** process.c: the C side of loom.process (lib/loom/process.lua has run):
** spawn(argv [, opts]) giving a loom.Process with wait(), kill(sig), pid,
** code, signal and loom.Streams for the pipes asked for (stdin, stdout,
** stderr). No shell: argv is passed to execvp as it is.
**
** A process lives in malloc'd memory (lproc) with its uv_process_t, which
** stays open until the child exits, even if the userdata is collected
** first (so the child is reaped); the exit callback closes it, and the
** lproc is freed once it is closed and no userdata refers to it. A process
** in a <close> variable (as process.run's) is killed, and waited for, when
** the variable goes out of scope before it exited; started with detached
** = true it leads a process group of its own, and kill() signals the whole
** group, so a shell's children go too.
*/
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stream.h"

extern char **environ;

typedef struct lproc {
  uv_process_t proc;      /* first: the handle is the process */
  loom_t *lm;
  loom__io *io;
  loom__closer closer;
  uint8_t exited, closing, closed, wrapped, detached, kill_at_close;
  int64_t status;         /* the exit status */
  int signal;             /* the signal that ended it, or 0 */
  int pid;
  loom__link waiters;     /* tasks in wait() */
} lproc;

typedef struct proc_ud {
  uint32_t tag;           /* LOOM_PROCESS_TAG */
  lproc *p;
} proc_ud;

/* user values of the userdata: its stdin, stdout and stderr streams */
enum { UV_STDIN = 1, UV_STDOUT, UV_STDERR, NUV = 3 };

/* ---- life ----------------------------------------------------------- */

static void on_proc_closed(uv_handle_t *h) {
  lproc *p = (lproc *)h;
  p->closed = 1;
  loom__io_count(p->lm, &p->io->handles, -1);
  if (!p->wrapped) free(p);
}

static void proc_close(lproc *p) {
  if (p->closing) return;
  p->closing = 1;
  loom__remove_closer(&p->closer);
  loom__close_handle(p->lm, (uv_handle_t *)&p->proc, on_proc_closed);
}

static int send_signal(lproc *p, int sig) {
  if (p->exited) return UV_ESRCH;
  if (p->detached && kill(-p->pid, sig) == 0) return 0;
  return uv_process_kill(&p->proc, sig);
}

/* The runtime closes: a child of process.run is killed (nobody will wait
** for it any more); the others go on, as Python's do. */
static void proc_close_with_runtime(loom_t *lm, loom__closer *c) {
  lproc *p = (lproc *)((char *)c - offsetof(lproc, closer));
  (void)lm;
  if (p->kill_at_close) send_signal(p, SIGKILL);
  proc_close(p);
}

static void on_exit_cb(uv_process_t *h, int64_t status, int sig) {
  lproc *p = (lproc *)h;
  p->exited = 1;
  p->status = sig ? 128 + sig : status;
  p->signal = sig;
  loom__list_fire(&p->waiters, 0);
  proc_close(p);
}

/* ---- arguments ------------------------------------------------------ */

/* As luaL_argerror, naming fname; for "run" (process.lua's caller) the
** position is that of run's caller. */
static int argerror(lua_State *L, int idx, const char *fname,
                    const char *msg) {
  luaL_where(L, strcmp(fname, "run") == 0 ? 2 : 1);
  lua_pushfstring(L, "bad argument #%d to '%s' (%s)", idx, fname, msg);
  lua_concat(L, 2);
  return lua_error(L);
}

/* A string field of the options (raw), or NULL. */
static const char *optstring(lua_State *L, int opts, const char *field,
                             const char *fname) {
  int t = loom__io_optfield(L, opts, field, fname);
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return NULL;
  }
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  if (t != LUA_TSTRING || strlen(s) != len)
    argerror(L, opts, fname, lua_pushfstring(L, "%s must be a string",
                                             field));
  return s;  /* left on the stack, so it stays until spawn */
}

/* "inherit", "pipe" or "null" for stdio field; 'inherit' by default */
static int optstdio(lua_State *L, int opts, const char *field,
                    const char *fname) {
  static const char *const names[] = { "inherit", "pipe", "null", NULL };
  int t = loom__io_optfield(L, opts, field, fname);
  int which = 0;
  if (t != LUA_TNIL) {
    const char *s = t == LUA_TSTRING ? lua_tostring(L, -1) : "";
    for (which = 0; names[which] && strcmp(names[which], s) != 0; which++)
      ;
    if (names[which] == NULL)
      argerror(L, opts, fname, lua_pushfstring(L, "%s must be \"inherit\", "
               "\"pipe\" or \"null\"", field));
  }
  lua_pop(L, 1);
  return which;
}

/* The strings of argv at idx as an array (a userdata pushed, with a
** table anchoring the strings below it). */
static char **checkargv(lua_State *L, int idx, const char *fname) {
  if (lua_type(L, idx) != LUA_TTABLE)
    argerror(L, idx, fname, lua_pushfstring(L, "table expected, got %s",
                                            luaL_typename(L, idx)));
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  if (n < 1) argerror(L, idx, fname, "argv is empty");
  if (n > 65536) argerror(L, idx, fname, "argv is too long");
  lua_createtable(L, (int)n, 0);
  int anchor = lua_gettop(L);
  char **argv = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *argv, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    int t = lua_rawgeti(L, idx, i);
    size_t len;
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      argerror(L, idx, fname, lua_pushfstring(L, "argv[%I] is a %s, "
               "expected a string", i, luaL_typename(L, -1)));
    const char *s = lua_tolstring(L, -1, &len);
    if (strlen(s) != len)
      argerror(L, idx, fname, lua_pushfstring(L, "argv[%I] contains a "
               "zero byte", i));
    argv[i - 1] = (char *)s;
    lua_rawseti(L, anchor, i);  /* the string stays while we spawn */
  }
  argv[n] = NULL;
  return argv;
}

/* The environment: the inherited one (unless clear_env), with env's
** entries set (a string) or removed (false). Pushes a userdata holding
** the array and a table anchoring its strings. */
static char **build_env(lua_State *L, int opts, const char *fname) {
  int clear = 0;
  if (loom__io_optfield(L, opts, "clear_env", fname) != LUA_TNIL)
    clear = lua_toboolean(L, -1);
  lua_pop(L, 1);
  int t = loom__io_optfield(L, opts, "env", fname);
  if (t == LUA_TNIL && !clear) {
    lua_pop(L, 1);
    return NULL;  /* inherit as is */
  }
  if (t != LUA_TNIL && t != LUA_TTABLE)
    argerror(L, opts, fname, "env must be a table");
  int env = lua_gettop(L);
  lua_newtable(L);  /* name -> "name=value", the environment to pass */
  int out = lua_gettop(L);
  if (!clear) {
    for (char **e = environ; *e; e++) {
      const char *eq = strchr(*e, '=');
      if (eq == NULL) continue;
      lua_pushlstring(L, *e, (size_t)(eq - *e));
      lua_pushstring(L, *e);
      lua_rawset(L, out);
    }
  }
  if (t == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, env)) {
      size_t klen;
      if (lua_type(L, -2) != LUA_TSTRING)
        argerror(L, opts, fname, "env keys must be strings");
      const char *k = lua_tolstring(L, -2, &klen);
      if (klen == 0 || strchr(k, '=') || strlen(k) != klen)
        argerror(L, opts, fname, lua_pushfstring(L, "bad env name '%s'",
                                                 k));
      if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
        lua_pushvalue(L, -2);
        lua_pushnil(L);
        lua_rawset(L, out);
      } else if (lua_type(L, -1) == LUA_TSTRING ||
                 lua_type(L, -1) == LUA_TNUMBER) {
        size_t vlen;
        const char *v = lua_tolstring(L, -1, &vlen);
        if (strlen(v) != vlen)
          argerror(L, opts, fname, "env values cannot contain zero bytes");
        lua_pushvalue(L, -2);
        lua_pushfstring(L, "%s=%s", k, v);
        lua_rawset(L, out);
      } else {
        argerror(L, opts, fname, lua_pushfstring(L, "env.%s must be a "
                 "string or false", k));
      }
      lua_pop(L, 1);
    }
  }
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, out)) {
    n++;
    lua_pop(L, 1);
  }
  char **envp = lua_newuserdatauv(L, (n + 1) * sizeof *envp, 0);
  size_t i = 0;
  lua_pushnil(L);
  while (lua_next(L, out)) {
    envp[i++] = (char *)lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  envp[i] = NULL;
  /* keep [out table, envp] above; drop the options' env value */
  lua_remove(L, env);
  return envp;
}

/* ---- spawn ---------------------------------------------------------- */

static const char *const stdio_names[] = { "stdin", "stdout", "stderr" };

/* spawn(argv [, opts [, fname]]): fname names the function in errors
** (process.run passes "run"). */
static int l_spawn(lua_State *L) {
  const char *fname = luaL_optstring(L, 3, "spawn");
  if (strcmp(fname, "run") != 0) fname = "spawn";
  lua_settop(L, 2);
  if (!lua_isnoneornil(L, 2) && lua_type(L, 2) != LUA_TTABLE)
    argerror(L, 2, fname, lua_pushfstring(L, "table expected, got %s",
                                          luaL_typename(L, 2)));
  char **argv = checkargv(L, 1, fname);
  const char *cwd = optstring(L, 2, "cwd", fname);
  char **envp = build_env(L, 2, fname);
  int modes[3], detached = 0, kill_at_close = 0;
  for (int i = 0; i < 3; i++) modes[i] = optstdio(L, 2, stdio_names[i],
                                                  fname);
  if (loom__io_optfield(L, 2, "detached", fname) != LUA_TNIL)
    detached = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (loom__io_optfield(L, 2, "kill_at_close", fname) != LUA_TNIL)
    kill_at_close = lua_toboolean(L, -1);
  lua_pop(L, 1);
  loom__io *io = loom__io_get(L);
  loom__stream_open_type(L, io);

  lproc *p = calloc(1, sizeof *p);
  if (p == NULL) return luaL_error(L, "%s: not enough memory", fname);
  lstream *pipes[3] = { NULL, NULL, NULL };
  uv_stdio_container_t stdio[3];
  int err = 0;
  for (int i = 0; i < 3; i++) {
    if (modes[i] == 1) {
      pipes[i] = loom__stream_alloc(io, LOOM_STREAM_PIPE, &err);
      if (pipes[i] == NULL) break;
      stdio[i].flags = UV_CREATE_PIPE |
                       (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE);
      stdio[i].data.stream = loom__stream_handle(pipes[i]);
    } else if (modes[i] == 2) {
      stdio[i].flags = UV_IGNORE;
    } else {
      stdio[i].flags = UV_INHERIT_FD;
      stdio[i].data.fd = i;
    }
  }
  uv_process_options_t o;
  memset(&o, 0, sizeof o);
  o.exit_cb = on_exit_cb;
  o.file = argv[0];
  o.args = argv;
  o.env = envp;
  o.cwd = cwd;
  o.stdio = stdio;
  o.stdio_count = 3;
  if (detached) o.flags |= UV_PROCESS_DETACHED;
  if (err == 0) {
    err = uv_spawn(loom_loop(io->lm), &p->proc, &o);
    p->lm = io->lm;
    p->io = io;
    loom__list_init(&p->waiters);
    if (err == 0 || p->proc.type == UV_PROCESS) {  /* initialised */
      p->closer.close = proc_close_with_runtime;
      loom__add_closer(io->lm, &p->closer);
      io->handles++;
    } else {
      free(p);
      p = NULL;
    }
  }
  if (err != 0) {
    for (int i = 0; i < 3; i++)
      if (pipes[i] != NULL) loom__stream_discard(pipes[i]);
    if (p != NULL) {
      p->exited = 1;
      proc_close(p);  /* not wrapped: freed once closed */
    }
    return loom__io_error(L, fname, err, "path", argv[0]);
  }
  p->pid = p->proc.pid;
  p->detached = (uint8_t)detached;
  p->kill_at_close = (uint8_t)kill_at_close;
  proc_ud *u = loom__type_new(L, &io->process_type, NUV, LOOM_PROCESS_TAG);
  u->p = p;
  p->wrapped = 1;
  for (int i = 0; i < 3; i++) {
    if (pipes[i] == NULL) continue;
    char name[64];
    snprintf(name, sizeof name, "%s of %d", stdio_names[i], p->pid);
    loom__stream_push(L, pipes[i], i != 0, i == 0, name);
    lua_setiuservalue(L, -2, UV_STDIN + i);
  }
  return 1;
}

/* ---- the Process ---------------------------------------------------- */

static proc_ud *checkproc(lua_State *L) {
  return loom__type_check(L, &loom__io_get(L)->process_type,
                          LOOM_PROCESS_TAG);
}

static int push_outcome(lua_State *L, lproc *p) {
  lua_pushinteger(L, (lua_Integer)p->status);
  if (p->signal) lua_pushstring(L, loom__io_signame(p->signal));
  else lua_pushnil(L);
  return 2;
}

static const loom__wait exit_wait = { "a process to exit",
                                      loom__list_cancel, NULL };

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  loom__resumed(L, loom__up(L));
  return push_outcome(L, ((proc_ud *)lua_touserdata(L, 1))->p);
}

/* p:wait() -> code, signal: code is the exit status, or 128 + n if
** signal n ended it (as a shell's $?); signal is its name, or nil. */
static int p_wait(lua_State *L) {
  lproc *p = checkproc(L)->p;
  lua_settop(L, 1);
  if (p->exited) return push_outcome(L, p);
  loom_t *lm = loom__up(L);
  loom__prepare_suspend(L, lm, "wait");
  return loom__wait_in_list(L, lm, &p->waiters, &exit_wait, p, 0, wait_k);
}

/* p:kill([sig]) -> true, or false if it has exited */
static int p_kill(lua_State *L) {
  lproc *p = checkproc(L)->p;
  int sig = lua_isnoneornil(L, 2) ? SIGTERM
                                  : loom__io_checksignal(L, 2, "kill");
  int r = send_signal(p, sig);
  if (r == UV_ESRCH) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (r != 0) return loom__io_error(L, "kill", r, NULL, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

static int p_done(lua_State *L) {
  lua_pushboolean(L, checkproc(L)->p->exited);
  return 1;
}

static void close_pipes(lua_State *L, int idx) {
  for (int i = UV_STDIN; i <= UV_STDERR; i++) {
    if (lua_getiuservalue(L, idx, i) == LUA_TUSERDATA &&
        luaL_getmetafield(L, -1, "__close") != LUA_TNIL) {
      lua_pushvalue(L, -2);
      lua_call(L, 1, 0);
    }
    lua_pop(L, 1);
  }
}

static int close_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  loom__resumed(L, loom__up(L));
  close_pipes(L, 1);
  return 0;
}

/* <close>: a child still running is killed (SIGKILL, its group if
** detached) and waited for, so none is left behind; the pipes close. */
static int p_close(lua_State *L) {
  proc_ud *u = checkproc(L);
  lproc *p = u->p;
  loom_t *lm = loom__up(L);
  lua_settop(L, 1);
  if (!p->exited) {
    send_signal(p, SIGKILL);
    if (loom__can_suspend(L, lm)) {
      loom__prepare_suspend(L, lm, "close");
      return loom__wait_in_list(L, lm, &p->waiters, &exit_wait, p, 0,
                                close_k);
    }
  }
  close_pipes(L, 1);
  return 0;
}

static int p_gc(lua_State *L) {
  proc_ud *u = lua_touserdata(L, 1);
  lproc *p = u->p;
  if (p == NULL) return 0;
  u->p = NULL;
  p->wrapped = 0;
  if (p->closed) free(p);  /* else freed once closed (at exit) */
  return 0;
}

static int p_tostring(lua_State *L) {
  lproc *p = checkproc(L)->p;
  if (p->exited)
    lua_pushfstring(L, "loom.Process: %d (exited, code %d)", p->pid,
                    (int)p->status);
  else
    lua_pushfstring(L, "loom.Process: %d (running)", p->pid);
  return 1;
}

static int p_index(lua_State *L) {
  proc_ud *u = checkproc(L);
  lproc *p = u->p;
  if (lua_type(L, 2) == LUA_TSTRING) {
    const char *k = lua_tostring(L, 2);
    if (strcmp(k, "pid") == 0) {
      lua_pushinteger(L, p->pid);
      return 1;
    }
    for (int i = 0; i < 3; i++)
      if (strcmp(k, stdio_names[i]) == 0) {
        lua_getiuservalue(L, 1, UV_STDIN + i);
        return 1;
      }
    if (strcmp(k, "code") == 0) {
      if (p->exited) lua_pushinteger(L, (lua_Integer)p->status);
      else lua_pushnil(L);
      return 1;
    }
    if (strcmp(k, "signal") == 0) {
      if (p->signal) lua_pushstring(L, loom__io_signame(p->signal));
      else lua_pushnil(L);
      return 1;
    }
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(2));
  return 1;
}

static void open_process_type(lua_State *L, loom__io *io) {
  static const luaL_Reg methods[] = {
    {"wait", p_wait}, {"kill", p_kill}, {"done", p_done},
    {"close", p_close}, {NULL, NULL}
  };
  static const luaL_Reg metamethods[] = {
    {"__gc", p_gc}, {"__close", p_close}, {"__tostring", p_tostring},
    {NULL, NULL}
  };
  loom__io_type(L, &io->process_type, "loom.Process", sizeof(proc_ud),
                metamethods, methods, p_index);
}

int luaopen_loom_process(lua_State *L) {
  static const luaL_Reg fns[] = { {"spawn", l_spawn}, {NULL, NULL} };
  if (loom_get(L) == NULL)
    return luaL_error(L, "loom.process: require \"loom\" first");
  loom__io *io = loom__io_of(L);
  loom__stream_open_type(L, io);
  open_process_type(L, io);
  lua_createtable(L, 0, 1);
  loom__setfuncs(L, fns);
  return 1;
}
