/*
** io.c: what the I/O bindings share (see io.h): the runtime's I/O record,
** their error values, signal names and option helpers; and loom.io, the
** module that shows the error type and what is open (for leak checks).
*/
#include <math.h>
#include <signal.h>
#include <string.h>

#include "io.h"

static const char io_key = 0;  /* registry: the loom__io userdata */

#define IOERROR_MT "loom.IOError"

/* ---- the record ----------------------------------------------------- */

static int error_tostring(lua_State *L);

static loom__io *io_make(lua_State *L, loom_t *lm) {
  loom__io *io = lua_newuserdatauv(L, sizeof *io, 0);
  memset(io, 0, sizeof *io);
  io->lm = lm;
  lua_rawsetp(L, LUA_REGISTRYINDEX, &io_key);
  if (luaL_newmetatable(L, IOERROR_MT)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  return io;
}

loom__io *loom__io_of(lua_State *L) {
  loom_t *lm = loom_get(L);
  if (lm == NULL) return NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &io_key);
  loom__io *io = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return io != NULL ? io : io_make(L, lm);
}

loom__io *loom__io_get(lua_State *L) {
  loom_t *lm = loom__up(L);  /* raises once the runtime is closed */
  lua_rawgetp(L, LUA_REGISTRYINDEX, &io_key);
  loom__io *io = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return io != NULL ? io : io_make(L, lm);
}

/* ---- errors --------------------------------------------------------- */

/* "op: what: message (CODE)" */
static int error_tostring(lua_State *L) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  static const char *const parts[] = { "op", "path", "address", "host",
                                        "signal" };
  for (int i = 0; i < 5; i++) {
    if (lua_type(L, 1) == LUA_TTABLE &&
        lua_getfield(L, 1, parts[i]) == LUA_TSTRING) {
      luaL_addvalue(&b);
      luaL_addstring(&b, ": ");
    } else {
      lua_pop(L, 1);
    }
  }
  if (lua_type(L, 1) == LUA_TTABLE &&
      lua_getfield(L, 1, "message") == LUA_TSTRING)
    luaL_addvalue(&b);
  else {
    lua_pop(L, 1);
    luaL_addstring(&b, "I/O error");
  }
  if (lua_type(L, 1) == LUA_TTABLE &&
      lua_getfield(L, 1, "code") == LUA_TSTRING) {
    luaL_addstring(&b, " (");
    luaL_addvalue(&b);
    luaL_addstring(&b, ")");
  } else {
    lua_pop(L, 1);
  }
  luaL_pushresult(&b);
  return 1;
}

void loom__io_push_error2(lua_State *L, const char *op, const char *code,
                          const char *message, const char *key,
                          const char *what) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, code);
  lua_setfield(L, -2, "code");
  lua_pushstring(L, message);
  lua_setfield(L, -2, "message");
  if (op != NULL) {
    lua_pushstring(L, op);
    lua_setfield(L, -2, "op");
  }
  if (key != NULL && what != NULL) {
    lua_pushstring(L, what);
    lua_setfield(L, -2, key);
  }
  if (luaL_getmetatable(L, IOERROR_MT) != LUA_TTABLE) {
    lua_pop(L, 1);  /* first error of this state, made before any record */
    loom__io_of(L);
    luaL_getmetatable(L, IOERROR_MT);
  }
  lua_setmetatable(L, -2);
}

void loom__io_push_error(lua_State *L, const char *op, int uverr,
                         const char *key, const char *what) {
  loom__io_push_error2(L, op, uv_err_name(uverr), uv_strerror(uverr), key,
                       what);
}

int loom__io_error(lua_State *L, const char *op, int uverr,
                   const char *key, const char *what) {
  loom__io_push_error(L, op, uverr, key, what);
  return lua_error(L);
}

int loom__io_error2(lua_State *L, const char *op, const char *code,
                    const char *message, const char *key, const char *what) {
  loom__io_push_error2(L, op, code, message, key, what);
  return lua_error(L);
}

/* ---- signals -------------------------------------------------------- */

static const struct { const char *name; int num; } signals[] = {
  {"SIGHUP", SIGHUP}, {"SIGINT", SIGINT}, {"SIGQUIT", SIGQUIT},
  {"SIGILL", SIGILL}, {"SIGTRAP", SIGTRAP}, {"SIGABRT", SIGABRT},
  {"SIGBUS", SIGBUS}, {"SIGFPE", SIGFPE}, {"SIGKILL", SIGKILL},
  {"SIGUSR1", SIGUSR1}, {"SIGSEGV", SIGSEGV}, {"SIGUSR2", SIGUSR2},
  {"SIGPIPE", SIGPIPE}, {"SIGALRM", SIGALRM}, {"SIGTERM", SIGTERM},
  {"SIGCHLD", SIGCHLD}, {"SIGCONT", SIGCONT}, {"SIGSTOP", SIGSTOP},
  {"SIGTSTP", SIGTSTP}, {"SIGTTIN", SIGTTIN}, {"SIGTTOU", SIGTTOU},
  {"SIGURG", SIGURG}, {"SIGXCPU", SIGXCPU}, {"SIGXFSZ", SIGXFSZ},
  {"SIGVTALRM", SIGVTALRM}, {"SIGPROF", SIGPROF}, {"SIGWINCH", SIGWINCH},
  {"SIGIO", SIGIO}, {"SIGSYS", SIGSYS},
  {NULL, 0}
};

const char *loom__io_signame(int signum) {
  for (int i = 0; signals[i].name; i++)
    if (signals[i].num == signum) return signals[i].name;
  return NULL;
}

int loom__io_checksignal(lua_State *L, int idx, const char *fname) {
  (void)fname;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Integer n;
    if (!lua_isinteger(L, idx) ||
        (n = lua_tointeger(L, idx)) < 1 || n > 64)
      return luaL_argerror(L, idx, "not a signal number");
    return (int)n;
  }
  const char *name = luaL_checkstring(L, idx);
  const char *bare = strncmp(name, "SIG", 3) == 0 ? name + 3 : name;
  for (int i = 0; signals[i].name; i++)
    if (strcmp(signals[i].name + 3, bare) == 0) return signals[i].num;
  return luaL_argerror(L, idx, lua_pushfstring(L, "unknown signal '%s'",
                                               name));
}

/* ---- options -------------------------------------------------------- */

double loom__io_opttimeout(lua_State *L, int idx, const char *fname) {
  (void)fname;
  if (lua_isnoneornil(L, idx)) return -1;
  lua_Number s = luaL_checknumber(L, idx);
  if (!(s >= 0))  /* NaN too */
    luaL_argerror(L, idx, "timeout must be a non-negative number");
  return s * 1000.0;
}

double loom__io_opttimeout_field(lua_State *L, int idx, const char *fname) {
  double ms = -1;
  int t = loom__io_optfield(L, idx, "timeout", fname);
  if (t != LUA_TNIL) {
    lua_Number s = lua_tonumber(L, -1);
    if (t != LUA_TNUMBER || !(s >= 0))
      luaL_argerror(L, idx, "timeout must be a non-negative number");
    ms = s * 1000.0;
  }
  lua_pop(L, 1);
  return ms;
}

int loom__io_optfield(lua_State *L, int idx, const char *field,
                      const char *fname) {
  (void)fname;
  if (lua_isnoneornil(L, idx)) {
    lua_pushnil(L);
    return LUA_TNIL;
  }
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushstring(L, field);
  return lua_rawget(L, idx < 0 ? idx - 1 : idx);  /* raw: no metamethods */
}

void loom__io_type(lua_State *L, loom__type *ty, const char *name,
                   size_t size, const luaL_Reg *metamethods,
                   const luaL_Reg *methods, lua_CFunction index) {
  if (ty->mt != NULL) return;
  luaL_newmetatable(L, name);
  ty->name = name;
  loom__type_init(L, ty, size);
  loom__setfuncs(L, metamethods);
  if (index != NULL) loom__push_box(L);
  lua_newtable(L);
  loom__setfuncs(L, methods);
  if (index != NULL) lua_pushcclosure(L, index, 2);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

void loom__io_ignore_sigpipe(void) {
  static int done;
  if (done) return;
  done = 1;
  signal(SIGPIPE, SIG_IGN);
}

/* ---- loom.io -------------------------------------------------------- */

/* loom.io.stats(): what the I/O bindings hold open, for leak checks. */
static int l_stats(lua_State *L) {
  loom__io *io = loom__io_get(L);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, io->handles);
  lua_setfield(L, -2, "handles");
  lua_pushinteger(L, io->requests);
  lua_setfield(L, -2, "requests");
  lua_pushinteger(L, io->files);
  lua_setfield(L, -2, "files");
  return 1;
}

/* loom.io.is_error(v): whether v is an I/O error value. */
static int l_is_error(lua_State *L) {
  int yes = 0;
  if (lua_type(L, 1) == LUA_TTABLE && lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, IOERROR_MT);
    yes = lua_rawequal(L, -1, -2);
  }
  lua_pushboolean(L, yes);
  return 1;
}

int luaopen_loom_io(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"stats", l_stats}, {"is_error", l_is_error}, {NULL, NULL}
  };
  if (loom_get(L) == NULL)
    return luaL_error(L, "loom.io: require \"loom\" first");
  lua_createtable(L, 0, 3);
  loom__setfuncs(L, fns);
  loom__io_of(L);
  luaL_getmetatable(L, IOERROR_MT);
  lua_setfield(L, -2, "Error");
  return 1;
}
