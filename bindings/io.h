/*
** io.h: what loom's I/O bindings (fs, stream, tcp, process, dns, signal,
** worker) share, in bindings/io.c: the runtime's I/O record (the
** userdata types and counts of what is open, for leak checks), the error
** values they raise, and signal names. Like any binding, they know the
** runtime only through runtime/binding.h.
**
** Lifetimes, for all of them: a libuv handle lives in malloc'd memory of
** its own (never inside a Lua userdata, which the collector may free
** while libuv still holds the handle), registers a closer so lua_close
** closes it, and is closed with loom__close_handle, its memory freed in
** the close callback. A request that can outlive the task that made it
** (a cancelled read_file, getaddrinfo, a worker job) owns its memory, holds
** the runtime (loom__hold) and, in its callback, only frees if its task
** let go of it or the runtime is closed (loom__closed).
*/
#ifndef LOOM_IO_H
#define LOOM_IO_H

#include "../runtime/binding.h"

/* The first word of each I/O userdata (see loom__type_test). */
#define LOOM_STREAM_TAG  0x6d727473u  /* "strm" */
#define LOOM_SERVER_TAG  0x76727373u  /* "ssrv" */
#define LOOM_FILE_TAG    0x656c6966u  /* "file" */
#define LOOM_PROCESS_TAG 0x636f7270u  /* "proc" */
#define LOOM_SIGSUB_TAG  0x62757373u  /* "ssub" */
#define LOOM_DIRITER_TAG 0x72696464u  /* "ddir" */

/* One per runtime, in a userdata of the registry (made on first use). It
** is Lua memory: callbacks that run after lua_close (a host's loop) must
** check loom__closed before they touch it. */
typedef struct loom__io {
  loom_t *lm;
  long handles;     /* libuv handles open: streams, servers, processes ... */
  long requests;    /* requests in flight: fs, dns, connect, write, jobs */
  long files;       /* loom.fs files open */
  loom__type stream_type, server_type, file_type, process_type;
  loom__type sigsub_type, diriter_type;
  void *signals;    /* signal.c's record, or NULL */
  void *workers;    /* worker.c's pool, or NULL */
} loom__io;

/* The I/O record of the runtime of the calling C function (which has the
** box as upvalue 1, see loom__setfuncs). */
loom__io *loom__io_get(lua_State *L);
/* The same from any thread of the state (NULL if it has no runtime). */
loom__io *loom__io_of(lua_State *L);

/* Counts, where the runtime may already be closed. */
static inline void loom__io_count(loom_t *lm, long *counter, int delta) {
  if (!loom__closed(lm)) *counter += delta;
}

/* ---- errors --------------------------------------------------------- */

/* Pushes an I/O error: a table { code = "ENOENT", message = "no such file
** or directory", op = "read_file", [key] = what } with the loom.IOError
** metatable, whose __tostring gives "read_file: /x: no such file or
** directory (ENOENT)". uverr is a libuv error code; key names what the
** error is about ("path", "address", "host") and may be NULL. */
void loom__io_push_error(lua_State *L, const char *op, int uverr,
                         const char *key, const char *what);
/* The same with a code and message of loom's own ("ETIMEDOUT", "timed
** out"). */
void loom__io_push_error2(lua_State *L, const char *op, const char *code,
                          const char *message, const char *key,
                          const char *what);
/* Pushes and raises them. */
int loom__io_error(lua_State *L, const char *op, int uverr,
                   const char *key, const char *what);
int loom__io_error2(lua_State *L, const char *op, const char *code,
                    const char *message, const char *key, const char *what);

/* ---- small things --------------------------------------------------- */

/* A signal's number from a name ("SIGINT", or "INT") or a number at idx;
** raises a bad argument error naming fname otherwise. */
int loom__io_checksignal(lua_State *L, int idx, const char *fname);
/* "SIGINT" for SIGINT, or NULL. */
const char *loom__io_signame(int signum);
/* A timeout in seconds at idx (nil or absent: none, returned as -1);
** raises for a negative number or NaN. */
double loom__io_opttimeout(lua_State *L, int idx, const char *fname);
/* The 'timeout' field of the options table at idx, in ms, or -1. */
double loom__io_opttimeout_field(lua_State *L, int idx, const char *fname);
/* A field of the options table at idx, if any: its type (LUA_TNIL if
** absent), the value pushed. Raises if idx holds neither nil nor a table. */
int loom__io_optfield(lua_State *L, int idx, const char *field,
                      const char *fname);
/* Makes the metatable of one of the I/O types, once per runtime (does
** nothing if ty has one): name, size and metamethods, and the methods as
** __index; with index, __index is that function instead, over the box
** and the methods table as upvalues (for fields computed on the fly). */
void loom__io_type(lua_State *L, loom__type *ty, const char *name,
                   size_t size, const luaL_Reg *metamethods,
                   const luaL_Reg *methods, lua_CFunction index);
/* Ignores SIGPIPE (once per process): writing to a closed socket or pipe
** must give EPIPE, not kill the process. */
void loom__io_ignore_sigpipe(void);

#endif
