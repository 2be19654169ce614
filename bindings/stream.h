/*
** stream.h: loom.Stream (bindings/stream.c), the byte stream that TCP
** connections and process pipes share: read(n), read_line, read_all,
** read_exactly, lines, write (which waits while the kernel's buffer is
** full), close_write (half-close), close, <close>, set_timeout.
**
** The libuv handle lives in an lstream (malloc'd), which the bindings
** that make streams (tcp.c, process.c) allocate, open and then wrap in a
** userdata. An lstream is freed once its handle is closed and no userdata
** refers to it, whichever comes last.
*/
#ifndef LOOM_STREAM_H
#define LOOM_STREAM_H

#include "io.h"

enum { LOOM_STREAM_TCP, LOOM_STREAM_PIPE };

typedef struct lstream lstream;

/* A new stream of kind LOOM_STREAM_*, its handle initialised on the
** runtime's loop (uv_tcp_init / uv_pipe_init), closed with the runtime
** until it is wrapped or closed. NULL and *err set if that fails. */
lstream *loom__stream_alloc(loom__io *io, int kind, int *err);
/* Its handle, to connect, accept into or spawn with. */
uv_stream_t *loom__stream_handle(lstream *s);
/* Closes a stream nobody wrapped (a failed connect); frees it once
** closed. */
void loom__stream_discard(lstream *s);
/* Wraps s in a new loom.Stream pushed on L (which now owns it). name
** says what it is in tostring ("tcp 127.0.0.1:80", "stdout of 1234"). */
void loom__stream_push(lua_State *L, lstream *s, int readable,
                       int writable, const char *name);
/* Makes the loom.Stream metatable of the runtime (once). */
void loom__stream_open_type(lua_State *L, loom__io *io);
/* The stream at idx, or NULL. */
lstream *loom__stream_test(lua_State *L, int idx);

#endif
