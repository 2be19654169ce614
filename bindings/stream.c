/*
** stream.c: loom.Stream, the byte stream TCP connections and process
** pipes share (see stream.h).
**
** Reading: once a task first reads, the handle reads into the stream's
** buffer, and keeps reading while less than HIGH_WATER bytes wait there,
** so a slow reader applies backpressure to the peer. One task reads at a
** time (another gets EBUSY, as asyncio's streams do); it waits in the
** stream's reader slot until the read callback sees enough (a byte, n
** bytes, a line, the end), an error, a close, or the stream's timeout.
** The data is taken from the buffer by the continuation, in the task, so
** a read cancelled after it was woken loses nothing.
**
** Writing: uv_try_write first; only what the kernel did not take is
** copied into a write request, and the task waits for it (backpressure).
** That request is queued before the task may be cancelled, so a
** cancellation never sends half a write. Requests (writes, shutdown)
** outlive the task that made them if it is cancelled: each is freed when
** its callback has run and its task has let go of it, whichever is last.
*/
#include <stdlib.h>
#include <string.h>

#include "stream.h"

#define HIGH_WATER (64 * 1024)   /* stop reading beyond this many bytes */
#define READ_CHUNK (64 * 1024)   /* room offered to each read */
#define LINE_MAX_LEN (1 << 20)   /* read_line refuses longer lines */
#define WRITE_STACK_BUFS 16

enum { R_SOME, R_EXACT, R_LINE, R_ALL };

struct lstream {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h;                     /* first: the handle is the stream */
  loom_t *lm;
  loom__io *io;
  loom__closer closer;     /* closes it with the runtime */
  int kind;
  uint8_t readable, writable;
  uint8_t reading;         /* uv_read_start is on */
  uint8_t eof;             /* the peer ended its side */
  uint8_t closing;         /* close() was called (or the runtime closed) */
  uint8_t closed;          /* the close callback ran */
  uint8_t wrapped;         /* a userdata refers to it */
  uint8_t shut;            /* close_write() was called */
  int rerr;                /* a read error, kept (reads raise it) */
  char *buf;               /* read buffer: buf[start, start + len) */
  size_t start, len, cap, scanned;  /* scanned: searched for '\n' */
  /* the task inside a read, what it asked for, and its deadline */
  loom_task_t *reader;
  uint8_t rwaiting;        /* still waiting (not yet woken) */
  uint8_t rtimedout;
  int rmode;
  size_t rneed;
  int keep_nl;
  double timeout_ms;       /* per wait; < 0: none */
  loom__waiter rtimer;
  void *rtimer_h;          /* the deadline while armed */
  char name[72];
};

typedef struct stream_ud {
  uint32_t tag;            /* LOOM_STREAM_TAG */
  lstream *s;
} stream_ud;

/* ---- life ----------------------------------------------------------- */

static void stream_free(lstream *s) {
  free(s->buf);
  free(s);
}

static void on_closed(uv_handle_t *h) {
  lstream *s = (lstream *)h;
  s->closed = 1;
  loom__io_count(s->lm, &s->io->handles, -1);
  if (!s->wrapped) stream_free(s);
}

static void cancel_rtimer(lstream *s) {
  if (s->rtimer_h != NULL) {
    loom__deadline_cancel(s->lm, &s->rtimer, s->rtimer_h);
    s->rtimer_h = NULL;
  }
}

/* Wakes the task waiting to read, if any: it sees why in the stream. */
static void wake_reader(lstream *s) {
  if (s->reader == NULL || !s->rwaiting) return;
  s->rwaiting = 0;
  cancel_rtimer(s);
  loom__wake(s->reader);
}

/* Closes the handle (once). wake: tell a waiting reader (not from a
** finalizer or the runtime's teardown, where no task may run). */
static void start_close(lstream *s, int wake) {
  if (s->closing) return;
  s->closing = 1;
  loom__remove_closer(&s->closer);
  if (wake) wake_reader(s);
  else cancel_rtimer(s);
  loom__close_handle(s->lm, &s->h.handle, on_closed);
}

static void close_with_runtime(loom_t *lm, loom__closer *c) {
  (void)lm;
  start_close((lstream *)((char *)c - offsetof(lstream, closer)), 0);
}

lstream *loom__stream_alloc(loom__io *io, int kind, int *err) {
  lstream *s = calloc(1, sizeof *s);
  if (s == NULL) {
    *err = UV_ENOMEM;
    return NULL;
  }
  uv_loop_t *loop = loom_loop(io->lm);
  int r = kind == LOOM_STREAM_TCP ? uv_tcp_init(loop, &s->h.tcp)
                                  : uv_pipe_init(loop, &s->h.pipe, 0);
  if (r != 0) {
    free(s);
    *err = r;
    return NULL;
  }
  loom__io_ignore_sigpipe();
  s->lm = io->lm;
  s->io = io;
  s->kind = kind;
  s->timeout_ms = -1;
  s->closer.close = close_with_runtime;
  loom__add_closer(io->lm, &s->closer);
  io->handles++;
  return s;
}

uv_stream_t *loom__stream_handle(lstream *s) {
  return &s->h.stream;
}

void loom__stream_discard(lstream *s) {
  start_close(s, 0);
}

/* ---- the userdata --------------------------------------------------- */

void loom__stream_push(lua_State *L, lstream *s, int readable,
                       int writable, const char *name) {
  loom__io *io = loom__io_get(L);
  stream_ud *u = loom__type_new(L, &io->stream_type, 0, LOOM_STREAM_TAG);
  u->s = s;
  s->wrapped = 1;
  s->readable = (uint8_t)readable;
  s->writable = (uint8_t)writable;
  snprintf(s->name, sizeof s->name, "%s", name);
}

lstream *loom__stream_test(lua_State *L, int idx) {
  loom__io *io = loom__io_of(L);
  stream_ud *u = io ? loom__type_test(L, idx, &io->stream_type,
                                      LOOM_STREAM_TAG) : NULL;
  return u ? u->s : NULL;
}

static lstream *checkstream(lua_State *L) {
  stream_ud *u = loom__type_check(L, &loom__io_get(L)->stream_type,
                                  LOOM_STREAM_TAG);
  return u->s;
}

static lstream *checkopen(lua_State *L, const char *fname) {
  lstream *s = checkstream(L);
  if (s->closing)
    loom__io_error2(L, fname, "ECLOSED", "the stream is closed", NULL,
                    NULL);
  return s;
}

static int s_gc(lua_State *L) {
  stream_ud *u = lua_touserdata(L, 1);
  lstream *s = u->s;
  if (s == NULL) return 0;
  u->s = NULL;
  s->wrapped = 0;
  if (!s->closing) start_close(s, 0);
  else if (s->closed) stream_free(s);
  return 0;
}

static int s_close(lua_State *L) {
  lstream *s = checkstream(L);
  start_close(s, 1);
  return 0;
}

static int s_tostring(lua_State *L) {
  lstream *s = checkstream(L);
  lua_pushfstring(L, "loom.Stream: %p (%s %s%s)", (void *)s,
                  s->kind == LOOM_STREAM_TCP ? "tcp" : "pipe", s->name,
                  s->closing ? ", closed" : "");
  return 1;
}

static int s_set_timeout(lua_State *L) {
  lstream *s = checkstream(L);
  s->timeout_ms = loom__io_opttimeout(L, 2, "set_timeout");
  lua_settop(L, 1);
  return 1;
}

/* ---- reading -------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  lstream *s = (lstream *)h;
  (void)suggested;
  if (s->cap - s->start - s->len < READ_CHUNK) {
    if (s->start > 0) {
      memmove(s->buf, s->buf + s->start, s->len);
      s->start = 0;
    }
    if (s->cap - s->len < READ_CHUNK) {
      size_t ncap = s->cap * 2 > s->len + READ_CHUNK ? s->cap * 2
                                                     : s->len + READ_CHUNK;
      char *nb = realloc(s->buf, ncap);
      if (nb == NULL) {  /* libuv then reports UV_ENOBUFS */
        b->base = NULL;
        b->len = 0;
        return;
      }
      s->buf = nb;
      s->cap = ncap;
    }
  }
  b->base = s->buf + s->start + s->len;
  b->len = s->cap - s->start - s->len;
}

/* The buffer holds what the reader asked for. */
static int satisfied(lstream *s) {
  switch (s->rmode) {
    case R_SOME: return s->len > 0;
    case R_EXACT: return s->len >= s->rneed;
    case R_LINE:
      if (s->len > s->scanned &&
          memchr(s->buf + s->start + s->scanned, '\n',
                 s->len - s->scanned) != NULL)
        return 1;
      s->scanned = s->len;
      return s->len >= LINE_MAX_LEN;  /* then take() raises */
    default: return 0;
  }
}

static void stop_reading(lstream *s) {
  if (s->reading) {
    uv_read_stop(&s->h.stream);
    s->reading = 0;
  }
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *b) {
  lstream *s = (lstream *)h;
  (void)b;
  if (nread > 0) {
    s->len += (size_t)nread;
  } else if (nread == UV_EOF) {
    s->eof = 1;
    stop_reading(s);
  } else if (nread < 0) {
    s->rerr = (int)nread;
    stop_reading(s);
  }
  int wants = s->reader != NULL && s->rwaiting;
  int enough = wants && satisfied(s);
  if (s->len >= HIGH_WATER && (!wants || enough)) stop_reading(s);
  if (wants && (enough || s->eof || s->rerr)) wake_reader(s);
}

static int start_reading(lstream *s) {
  if (s->reading || s->eof || s->rerr) return 0;
  int r = uv_read_start(&s->h.stream, on_alloc, on_read);
  if (r == 0) s->reading = 1;
  return r;
}

static void consume(lstream *s, size_t n) {
  s->start += n;
  s->len -= n;
  s->scanned = 0;
  if (s->len == 0) {
    s->start = 0;
    if (s->cap > 4 * HIGH_WATER) {  /* a big read_all is over: shrink */
      free(s->buf);
      s->buf = NULL;
      s->cap = 0;
    }
  }
}

static int raise_rerr(lua_State *L, lstream *s, const char *fname) {
  return loom__io_error(L, fname, s->rerr, "address",
                        s->kind == LOOM_STREAM_TCP ? s->name : NULL);
}

/* Pushes what the read asked for, from the buffer, if the stream can
** give it now (returns 1), or returns 0 if the task must wait. */
static int take(lua_State *L, lstream *s, const char *fname) {
  char *p = s->buf + s->start;
  size_t n;
  if (s->closing)
    return loom__io_error2(L, fname, "ECLOSED", "the stream is closed",
                           NULL, NULL);
  int ended = s->eof || s->rerr;
  switch (s->rmode) {
    case R_SOME:
      if (s->len == 0) {
        if (!ended) return 0;
        if (s->rerr) return raise_rerr(L, s, fname);
        lua_pushnil(L);
        return 1;
      }
      n = s->rneed < s->len ? s->rneed : s->len;
      lua_pushlstring(L, p, n);
      consume(s, n);
      return 1;
    case R_EXACT:
      if (s->len < s->rneed) {
        if (!ended) return 0;
        if (s->rerr) return raise_rerr(L, s, fname);
        if (s->len == 0) {
          lua_pushnil(L);
          return 1;
        }
        return loom__io_error(L, fname, UV_EOF, NULL, NULL);
      }
      lua_pushlstring(L, p, s->rneed);
      consume(s, s->rneed);
      return 1;
    case R_LINE: {
      char *nl = s->len ? memchr(p, '\n', s->len) : NULL;
      if (nl == NULL) {
        if (s->len >= LINE_MAX_LEN)
          return loom__io_error2(L, fname, "EMSGSIZE", "line longer than "
                                 "1 MiB", NULL, NULL);
        if (!ended) {
          s->scanned = s->len;
          return 0;
        }
        if (s->len == 0) {
          if (s->rerr) return raise_rerr(L, s, fname);
          lua_pushnil(L);
          return 1;
        }
        n = s->len;
        lua_pushlstring(L, p, n);
      } else {
        n = (size_t)(nl - p) + 1;
        lua_pushlstring(L, p, s->keep_nl ? n : n - 1);
      }
      consume(s, n);
      return 1;
    }
    default:  /* R_ALL */
      if (!ended) return 0;
      if (s->rerr) return raise_rerr(L, s, fname);
      lua_pushlstring(L, p, s->len);
      consume(s, s->len);
      return 1;
  }
}

static void read_cancel(loom_task_t *t, void *data, int woken) {
  lstream *s = data;
  (void)t; (void)woken;
  s->reader = NULL;
  s->rwaiting = 0;
  cancel_rtimer(s);
}

static const loom__wait read_wait = { "a stream read", read_cancel, NULL };

static void on_rtimeout(loom__waiter *w, int failed) {
  lstream *s = (lstream *)((char *)w - offsetof(lstream, rtimer));
  (void)failed;
  s->rtimer_h = NULL;
  s->rtimedout = 1;
  wake_reader(s);
}

static int read_k(lua_State *L, int status, lua_KContext ctx) {
  const char *fname = (const char *)ctx;
  (void)status;
  loom__resumed(L, loom__up(L));  /* cancelled: the hook let go */
  stream_ud *u = lua_touserdata(L, 1);
  lstream *s = u->s;
  s->reader = NULL;
  if (s->rtimedout) {
    s->rtimedout = 0;
    return loom__io_error2(L, fname, "ETIMEDOUT", "timed out", "address",
                           s->kind == LOOM_STREAM_TCP ? s->name : NULL);
  }
  if (!take(L, s, fname))  /* woken early: cannot happen, but wait on */
    return luaL_error(L, "%s: woken with nothing to read", fname);
  return 1;
}

/* Reads with mode/need; suspends if the buffer cannot answer yet. */
static int do_read(lua_State *L, lstream *s, int mode, size_t need,
                   int keep_nl, const char *fname) {
  if (!s->readable)
    return loom__io_error2(L, fname, "EBADF", "the stream is not readable",
                           NULL, NULL);
  if (s->reader != NULL)
    return loom__io_error2(L, fname, "EBUSY", "another task is reading "
                           "this stream", NULL, NULL);
  s->rmode = mode;
  s->rneed = need;
  s->keep_nl = keep_nl;
  if (take(L, s, fname)) return 1;
  loom_t *lm = loom__up(L);
  loom_task_t *t = loom__prepare_suspend(L, lm, fname);
  int r = start_reading(s);
  if (r != 0) return loom__io_error(L, fname, r, NULL, NULL);
  s->reader = t;
  s->rwaiting = 1;
  s->rtimedout = 0;
  if (s->timeout_ms >= 0) {
    s->rtimer.fire = on_rtimeout;
    s->rtimer_h = loom__deadline_start(lm, &s->rtimer, s->timeout_ms);
  }
  return loom__suspend(L, lm, &read_wait, s, (lua_KContext)fname, read_k);
}

static size_t checkcount(lua_State *L, int idx) {
  lua_Integer n = luaL_checkinteger(L, idx);
  luaL_argcheck(L, n > 0, idx, "count must be positive");
  return (size_t)n;
}

/* read([n | "a" | "l" | "L"]): up to n bytes (at least one), as soon as
** there are some; with no argument, whatever is there; nil at the end */
static int s_read(lua_State *L) {
  lstream *s = checkopen(L, "read");
  if (lua_type(L, 2) == LUA_TSTRING) {
    const char *p = lua_tostring(L, 2);
    if (*p == '*') p++;
    switch (*p) {
      case 'a': return do_read(L, s, R_ALL, 0, 0, "read");
      case 'l': return do_read(L, s, R_LINE, 0, 0, "read");
      case 'L': return do_read(L, s, R_LINE, 0, 1, "read");
      default: return luaL_argerror(L, 2, "invalid format");
    }
  }
  size_t n = lua_isnoneornil(L, 2) ? (size_t)-1 : checkcount(L, 2);
  return do_read(L, s, R_SOME, n, 0, "read");
}

static int s_read_exactly(lua_State *L) {
  lstream *s = checkopen(L, "read_exactly");
  size_t n = checkcount(L, 2);
  return do_read(L, s, R_EXACT, n, 0, "read_exactly");
}

static int s_read_line(lua_State *L) {
  lstream *s = checkopen(L, "read_line");
  return do_read(L, s, R_LINE, 0, lua_toboolean(L, 2), "read_line");
}

static int s_read_all(lua_State *L) {
  lstream *s = checkopen(L, "read_all");
  return do_read(L, s, R_ALL, 0, 0, "read_all");
}

/* the iterator of lines(): upvalue 2 is the stream */
static int lines_iter(lua_State *L) {
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(2));
  lstream *s = checkopen(L, "lines");
  return do_read(L, s, R_LINE, 0, 0, "lines");
}

static int s_lines(lua_State *L) {
  checkstream(L);
  loom__push_box(L);
  lua_pushvalue(L, 1);
  lua_pushcclosure(L, lines_iter, 2);
  return 1;
}

/* ---- requests: writes and the shutdown ------------------------------ */

typedef struct sreq {
  union { uv_write_t write; uv_shutdown_t shutdown; } req;
  loom_t *lm;
  loom__io *io;
  lstream *s;
  loom_task_t *task;
  int status;
  uint8_t pending;   /* libuv's callback is still to come */
  uint8_t owned;     /* the task (continuation or cancel hook) still has it */
  uint8_t woken, timedout;
  loom__waiter timer;
  void *timer_h;
  const char *fname;
  loom__closer closer;  /* lets go if the runtime closes first */
  char data[];
} sreq;

static void req_free(sreq *r) {
  loom__remove_closer(&r->closer);
  free(r);
}

static void req_let_go(sreq *r) {
  r->owned = 0;
  if (r->timer_h != NULL) {
    loom__deadline_cancel(r->lm, &r->timer, r->timer_h);
    r->timer_h = NULL;
  }
  if (!r->pending) req_free(r);
}

/* The runtime closes while the task has the request: let go (libuv's
** callback, if still to come, frees it). */
static void req_close(loom_t *lm, loom__closer *c) {
  (void)lm;
  req_let_go((sreq *)((char *)c - offsetof(sreq, closer)));
}

static void req_done(sreq *r, int status) {
  loom_t *lm = r->lm;
  r->status = status;
  r->pending = 0;
  loom__io_count(lm, &r->io->requests, -1);
  if (!r->owned || loom__closed(lm)) {
    req_free(r);
  } else if (!r->woken) {
    r->woken = 1;
    if (r->timer_h != NULL) {
      loom__deadline_cancel(lm, &r->timer, r->timer_h);
      r->timer_h = NULL;
    }
    loom__wake(r->task);
  }
  loom__release(lm);
}

static void on_write(uv_write_t *w, int status) {
  req_done((sreq *)w, status);
}

static void on_shutdown(uv_shutdown_t *w, int status) {
  req_done((sreq *)w, status);
}

static void on_req_timeout(loom__waiter *w, int failed) {
  sreq *r = (sreq *)((char *)w - offsetof(sreq, timer));
  (void)failed;
  r->timer_h = NULL;
  if (r->woken) return;
  r->woken = 1;
  r->timedout = 1;
  loom__wake(r->task);
}

static void req_cancel(loom_task_t *t, void *data, int woken) {
  (void)t; (void)woken;
  req_let_go(data);
}

static const loom__wait write_wait = { "a stream write", req_cancel, NULL };
static const loom__wait shutdown_wait = { "close_write", req_cancel, NULL };

static int req_k(lua_State *L, int status, lua_KContext ctx) {
  sreq *r = (sreq *)ctx;
  (void)status;
  loom__resumed(L, loom__up(L));  /* cancelled: the hook let go */
  int st = r->status, timedout = r->timedout;
  const char *fname = r->fname;
  lstream *s = r->s;
  req_let_go(r);
  if (timedout)
    return loom__io_error2(L, fname, "ETIMEDOUT", "timed out", "address",
                           s->kind == LOOM_STREAM_TCP ? s->name : NULL);
  if (st == UV_ECANCELED)
    return loom__io_error2(L, fname, "ECLOSED", "the stream was closed "
                           "before the data was sent", NULL, NULL);
  if (st < 0)
    return loom__io_error(L, fname, st, "address",
                          s->kind == LOOM_STREAM_TCP ? s->name : NULL);
  lua_settop(L, 1);
  return 1;
}

static sreq *req_new(lua_State *L, lstream *s, size_t extra,
                     const char *fname) {
  sreq *r = malloc(sizeof *r + extra);
  if (r == NULL) luaL_error(L, "%s: not enough memory", fname);
  memset(r, 0, sizeof *r);
  r->lm = s->lm;
  r->io = s->io;
  r->s = s;
  r->fname = fname;
  return r;
}

/* The request is started: wait for it if the task can, else let it go
** on alone. */
static int req_wait(lua_State *L, sreq *r, const loom__wait *wait) {
  loom_t *lm = r->lm;
  loom__hold(lm);
  r->io->requests++;
  r->pending = 1;
  if (!loom__can_suspend(L, lm)) {
    lua_settop(L, 1);
    return 1;
  }
  /* may raise Cancelled: the request then goes on alone */
  r->task = loom__prepare_suspend(L, lm, r->fname);
  r->owned = 1;
  r->closer.close = req_close;
  loom__add_closer(lm, &r->closer);
  if (r->s->timeout_ms >= 0) {
    r->timer.fire = on_req_timeout;
    r->timer_h = loom__deadline_start(lm, &r->timer, r->s->timeout_ms);
  }
  return loom__suspend(L, lm, wait, r, (lua_KContext)r, req_k);
}

static int s_write(lua_State *L) {
  lstream *s = checkopen(L, "write");
  int n = lua_gettop(L) - 1;
  uv_buf_t stackbufs[WRITE_STACK_BUFS], *bufs = stackbufs;
  size_t total = 0;
  for (int i = 2; i <= n + 1; i++)
    if (lua_type(L, i) != LUA_TSTRING && lua_type(L, i) != LUA_TNUMBER)
      return luaL_typeerror(L, i, "string or number");
  if (!s->writable)
    return loom__io_error2(L, "write", "EBADF", "the stream is not "
                           "writable", NULL, NULL);
  if (s->shut)
    return loom__io_error2(L, "write", "EPIPE", "write after close_write",
                           NULL, NULL);
  if (n > WRITE_STACK_BUFS) {
    bufs = lua_newuserdatauv(L, (size_t)n * sizeof *bufs, 0);
    lua_insert(L, 2);  /* below the data, so indexes stay */
  }
  int first = n > WRITE_STACK_BUFS ? 3 : 2;
  for (int i = 0; i < n; i++) {
    size_t len;
    const char *p = lua_tolstring(L, first + i, &len);
    bufs[i] = uv_buf_init((char *)p, (unsigned)len);
    total += len;
  }
  if (total == 0) {
    lua_settop(L, 1);
    return 1;
  }
  size_t done = 0;
  if (s->h.stream.write_queue_size == 0) {
    int r = uv_try_write(&s->h.stream, bufs, (unsigned)n);
    if (r < 0 && r != UV_EAGAIN)
      return loom__io_error(L, "write", r, "address",
                            s->kind == LOOM_STREAM_TCP ? s->name : NULL);
    if (r > 0) done = (size_t)r;
    if (done == total) {
      lua_settop(L, 1);
      return 1;
    }
  }
  /* the kernel is full: copy the rest into a request and wait for it */
  sreq *r = req_new(L, s, total - done, "write");
  size_t at = 0, skip = done;
  for (int i = 0; i < n; i++) {
    size_t len = bufs[i].len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    memcpy(r->data + at, bufs[i].base + skip, len - skip);
    at += len - skip;
    skip = 0;
  }
  uv_buf_t one = uv_buf_init(r->data, (unsigned)at);
  int e = uv_write(&r->req.write, &s->h.stream, &one, 1, on_write);
  if (e != 0) {
    free(r);
    return loom__io_error(L, "write", e, "address",
                          s->kind == LOOM_STREAM_TCP ? s->name : NULL);
  }
  lua_settop(L, 1);
  return req_wait(L, r, &write_wait);
}

/* close_write(): half-close, once the writes before it are sent. */
static int s_close_write(lua_State *L) {
  lstream *s = checkopen(L, "close_write");
  if (!s->writable)
    return loom__io_error2(L, "close_write", "EBADF", "the stream is not "
                           "writable", NULL, NULL);
  lua_settop(L, 1);
  if (s->shut) return 1;
  sreq *r = req_new(L, s, 0, "close_write");
  int e = uv_shutdown(&r->req.shutdown, &s->h.stream, on_shutdown);
  if (e != 0) {
    free(r);
    return loom__io_error(L, "close_write", e, NULL, NULL);
  }
  s->shut = 1;
  return req_wait(L, r, &shutdown_wait);
}

/* ---- addresses ------------------------------------------------------ */

static int push_addr(lua_State *L, const struct sockaddr_storage *ss) {
  char ip[64];
  int port;
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    uv_ip6_name(a, ip, sizeof ip);
    port = ntohs(a->sin6_port);
  } else if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    uv_ip4_name(a, ip, sizeof ip);
    port = ntohs(a->sin_port);
  } else {
    return 0;
  }
  lua_pushstring(L, ip);
  lua_pushinteger(L, port);
  return 2;
}

static int address(lua_State *L, int peer) {
  lstream *s = checkopen(L, peer ? "remote_address" : "local_address");
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (s->kind != LOOM_STREAM_TCP) return 0;
  int r = peer ? uv_tcp_getpeername(&s->h.tcp, (struct sockaddr *)&ss, &len)
               : uv_tcp_getsockname(&s->h.tcp, (struct sockaddr *)&ss, &len);
  if (r != 0)
    return loom__io_error(L, peer ? "remote_address" : "local_address", r,
                          NULL, NULL);
  return push_addr(L, &ss);
}

static int s_remote_address(lua_State *L) {
  return address(L, 1);
}

static int s_local_address(lua_State *L) {
  return address(L, 0);
}

/* ---- the type ------------------------------------------------------- */

void loom__stream_open_type(lua_State *L, loom__io *io) {
  static const luaL_Reg methods[] = {
    {"read", s_read}, {"read_exactly", s_read_exactly},
    {"read_line", s_read_line}, {"read_all", s_read_all},
    {"lines", s_lines}, {"write", s_write}, {"close_write", s_close_write},
    {"shutdown", s_close_write}, {"close", s_close},
    {"set_timeout", s_set_timeout}, {"remote_address", s_remote_address},
    {"local_address", s_local_address}, {NULL, NULL}
  };
  static const luaL_Reg metamethods[] = {
    {"__gc", s_gc}, {"__close", s_close}, {"__tostring", s_tostring},
    {NULL, NULL}
  };
  loom__io_type(L, &io->stream_type, "loom.Stream", sizeof(stream_ud),
                metamethods, methods, NULL);
}
