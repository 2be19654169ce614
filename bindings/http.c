/*
** http.c: the curl bridge behind loom.http (lib/loom/http.lua), served as
** "loom.http.core". A session is one curl multi handle driven by the
** loop: CURLMOPT_SOCKETFUNCTION maps curl's sockets to uv_poll_t handles
** (one per socket, kept until curl closes it), CURLMOPT_TIMERFUNCTION to
** one uv_timer_t, and curl_multi_socket_action runs from their callbacks
** only, never from inside a curl callback; finished transfers are collected
** with curl_multi_info_read once socket_action has returned.
**
** A request is an xfer (malloc'd, pooled per session with its easy handle
** and buffers) owned by a small Lua handle (loom.http.Transfer) that is
** marked to-be-closed in perform's frame: whatever way perform ends (a
** response, an error, Cancelled, a failing body function) the handle lets
** go of the transfer, exactly once; a stream's handle is kept instead and
** lets go when closed or collected. Curl callbacks never call Lua: they
** fill the xfer's buffers and wake the waiting task, whose continuation
** builds the response.
**
** Timeouts: connect is curl's (CURLOPT_CONNECTTIMEOUT_MS, DNS included);
** the total and the idle (read) timeouts are the runtime's deadlines, one
** per transfer at a time, so loom can tell them apart and the idle clock
** stops while loom itself holds the transfer paused.
*/
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../runtime/binding.h"
#include "curl_api.h"

#define SESSION_TAG  0x73657368u  /* "hses" */
#define HANDLE_TAG   0x72667868u  /* "hxfr" */
#define GUARD_TAG    0x72617567u  /* "guar" */

#define MAX_HEAD     (256 * 1024)   /* response header block */
#define STREAM_HWM   (1024 * 1024)  /* a stream pauses with this buffered */
#define STREAM_GZIP_READ 4096       /* a decoding stream's socket reads */
#define POOL_MAX     64             /* idle xfers kept per session */
#define KEEP_BUF     (256 * 1024)   /* buffers kept on pooled xfers */
#define PROGRESS_MS  100            /* on_progress at most this often */
#define IDLE_CONNECTIONS 100        /* kept-alive connections per session */
#define NO_TIME      UINT64_MAX

#define container_of(p, T, m) ((T *)((char *)(p) - offsetof(T, m)))

static const loom__curl *C;  /* libcurl, once loaded: process-wide */

/* ---- small buffers --------------------------------------------------- */

typedef struct hbuf { char *p; size_t len, cap; } hbuf;

static int buf_reserve(hbuf *b, size_t n) {
  if (n <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 1024;
  while (cap < n) {
    if (cap > SIZE_MAX / 2) return -1;
    cap *= 2;
  }
  char *p = realloc(b->p, cap);
  if (p == NULL) return -1;
  b->p = p;
  b->cap = cap;
  return 0;
}

static int buf_add(hbuf *b, const char *p, size_t n) {
  if (b->len + n < b->len || buf_reserve(b, b->len + n)) return -1;
  memcpy(b->p + b->len, p, n);
  b->len += n;
  return 0;
}

static void buf_free(hbuf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

/* ---- sessions, sockets, transfers ----------------------------------- */

typedef struct session session;
typedef struct xhandle xhandle;

/* A socket curl asked us to watch. 'owned': curl opened it through our
** opensocket callback and closes it through closesocket, so its poll is
** kept across CURL_POLL_REMOVE (which comes after every transfer on a
** kept-alive connection); any other (the threaded resolver's socketpair)
** is closed at REMOVE, before curl closes the descriptor itself. */
typedef struct sock {
  uv_poll_t poll;
  session *s;
  curl_socket_t fd;
  int owned;
} sock;

/* Per-request settings: the session's, overridden by the request's. */
typedef struct cfg {
  double total_ms;      /* < 0: none */
  double read_ms;       /* idle between bytes; < 0: none */
  long connect_ms;      /* <= 0: none */
  int64_t max_body;     /* < 0: none */
  long http_version;    /* CURL_HTTP_VERSION_* */
  int verify, decompress, follow, stream;
  const char *cafile;   /* NULL: curl's default */
  const char *proxy;    /* NULL: the environment's; "": none */
} cfg;

struct session {
  loom_t *lm;
  uv_loop_t *loop;
  CURLM *multi;
  CURLSH *share;          /* the cookie jar, or NULL */
  uv_timer_t timer;
  loom__closer closer;
  sock **socks;           /* by descriptor */
  int nsocks;
  loom__link active;      /* xfers checked out */
  struct xfer *pool;      /* idle xfers, ready for reuse */
  int npool;
  int running;            /* xfers in the multi handle */
  int paused;             /* of which loom holds paused (a stream's
                             reader not reading): not work for the loop */
  curl_socket_t broken[8];  /* sockets to fail (sock_broken) */
  int nbroken;
  int refs;               /* the Lua object, the open timer, and each
                             xfer checked out */
  int closed;             /* torn down: no multi any more */
  struct session **owner; /* the Lua object's pointer, cleared at teardown */
  cfg cfg;                /* defaults */
  char *cafile, *proxy;   /* cfg's strings */
  int env_proxy;          /* a proxy variable is set: curl reads them */
  struct curl_slist *headers;  /* default header lines */
};

enum { X_RUNNING, X_DONE };
/* why loom stopped a transfer itself */
enum { W_NONE, W_TOO_LARGE, W_HEAD_LARGE, W_TOTAL, W_READ, W_NOMEM,
       W_CLOSED, W_UPLOAD };
enum { UP_NONE, UP_STRING, UP_FILE, UP_FN, UP_MIME };

#define F_STREAM       0x0001
#define F_FOLLOW       0x0002  /* loom follows redirects: skip their bodies */
#define F_DISCARD      0x0004  /* this block's body is a redirect's */
#define F_HEADERS      0x0008  /* the final header block is in */
#define F_RECV_PAUSED  0x0010
#define F_SEND_PAUSED  0x0020
#define F_NEED_BODY    0x0040  /* the body function must give a chunk */
#define F_BODY_EOF     0x0080
#define F_PROGRESS     0x0100  /* on_progress given */
#define F_PROGRESS_DUE 0x0200
#define F_SENT         0x0400  /* upload bytes went out (no rewind) */
#define F_PROGRESS_END 0x0800  /* on_progress had its last call */

typedef struct xfer {
  loom__link link;        /* in s->active while checked out */
  struct xfer *next_free; /* in s->pool */
  session *s;
  CURL *easy;
  loom_task_t *task;      /* the task waiting on it, or NULL */
  xhandle *owner;         /* the handle that lets go of it */
  int state, why, added, up_kind;
  int used;               /* the easy handle ran before: reset it */
  int preset;             /* it holds the session's plain-GET options */
  int cookiefile;         /* CURLOPT_COOKIEFILE was set on it */
  unsigned flags;
  CURLcode result;
  hbuf body, head, up;    /* response body, header block, upload chunk */
  size_t up_pos;
  int64_t received, max_body;
  struct curl_slist *headers;  /* this request's, or NULL */
  curl_mime *mime;
  FILE *upfile;
  loom__waiter dl;        /* the deadline (total or idle) */
  void *dl_h;             /* its handle while armed */
  uint64_t total_at;      /* loop ms, or NO_TIME */
  double read_ms;
  uint64_t last_io, last_progress, t0;
  const char *cafile;     /* the request's, for messages (NULL: curl's) */
  char errbuf[CURL_ERROR_SIZE];
} xfer;

struct xhandle {
  uint32_t tag;
  xfer *x;
  int keep;               /* a stream's: not released when perform ends */
};

typedef struct session_ud {
  uint32_t tag;
  session *s;
} session_ud;

/* The module's state, one per runtime: upvalue 2 of its functions. */
typedef struct hstate {
  loom__type session_type, handle_type;
  loom__type guard_type;  /* a plain request's handle: no __gc (it never
                             leaves perform's frame), less for the GC */
  int response_ref;       /* registry: the Response metatable, or none */
  int heads_ref;          /* registry: response -> header block (weak) */
} hstate;

static void sock_close(session *s, sock *k);
static void xfer_release(xfer *x);

/* ---- the loop side: sockets and the timer ---------------------------- */

static void timer_ref(session *s) {
  /* curl's timer is work only while transfers run, so an idle session
  ** never keeps the loop (and the script) alive */
  if (s->running > s->paused) uv_ref((uv_handle_t *)&s->timer);
  else uv_unref((uv_handle_t *)&s->timer);
}

static sock *sock_find(session *s, curl_socket_t fd) {
  return fd >= 0 && fd < s->nsocks ? s->socks[fd] : NULL;
}

static sock *sock_new(session *s, curl_socket_t fd, int owned) {
  if (fd < 0) return NULL;
  if (fd >= s->nsocks) {
    int n = s->nsocks ? s->nsocks : 64;
    while (n <= fd) n *= 2;
    sock **a = realloc(s->socks, (size_t)n * sizeof *a);
    if (a == NULL) return NULL;
    memset(a + s->nsocks, 0, (size_t)(n - s->nsocks) * sizeof *a);
    s->socks = a;
    s->nsocks = n;
  }
  sock *k = calloc(1, sizeof *k);
  if (k == NULL) return NULL;
  /* UV_EEXIST: another handle of this loop watches fd; never two */
  if (uv_poll_init_socket(s->loop, &k->poll, fd) != 0) {
    free(k);
    return NULL;
  }
  k->s = s;
  k->fd = fd;
  k->owned = owned;
  s->socks[fd] = k;
  return k;
}

static void sock_freed(uv_handle_t *h) {
  free(container_of(h, sock, poll));
}

static void sock_close(session *s, sock *k) {
  s->socks[k->fd] = NULL;
  loom__close_handle(s->lm, (uv_handle_t *)&k->poll, sock_freed);
}

static void check_done(session *s);

static void on_timer(uv_timer_t *t);

static void socket_action(session *s, curl_socket_t fd, int flags) {
  int running;
  C->multi_socket_action(s->multi, fd, flags, &running);
  /* sockets loom could not watch fail now, outside curl's callbacks */
  while (s->nbroken > 0 && s->multi != NULL) {
    curl_socket_t b = s->broken[--s->nbroken];
    C->multi_socket_action(s->multi, b, CURL_CSELECT_ERR, &running);
  }
  check_done(s);
}

/* From on_socket: fd cannot be watched (out of memory, or UV_EEXIST).
** Returning -1 would make the whole multi handle dead: instead curl hears
** of an error on fd once the current call returns (the transfer fails). */
static int sock_broken(session *s, curl_socket_t fd) {
  if (s->nbroken < (int)(sizeof s->broken / sizeof *s->broken))
    s->broken[s->nbroken++] = fd;
  uv_timer_start(&s->timer, on_timer, 0, 0);  /* in case no call follows */
  return 0;
}

static void on_poll(uv_poll_t *p, int status, int events) {
  sock *k = container_of(p, sock, poll);
  int flags = 0;
  if (status < 0) flags = CURL_CSELECT_ERR;
  else {
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  }
  socket_action(k->s, k->fd, flags);  /* may close k: not used after */
}

static void on_timer(uv_timer_t *t) {
  socket_action(t->data, CURL_SOCKET_TIMEOUT, 0);
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *ud,
                     void *sockp) {
  session *s = ud;
  sock *k = sock_find(s, fd);
  (void)e; (void)sockp;
  if (what == CURL_POLL_REMOVE) {
    if (k == NULL) return 0;  /* never announced: nothing to do */
    if (!k->owned) sock_close(s, k);
    else if (uv_is_active((uv_handle_t *)&k->poll)) uv_poll_stop(&k->poll);
    return 0;
  }
  if (k == NULL && (k = sock_new(s, fd, 0)) == NULL)
    return sock_broken(s, fd);
  int ev = (what & CURL_POLL_IN ? UV_READABLE : 0) |
           (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
  if (uv_poll_start(&k->poll, ev, on_poll) != 0) return sock_broken(s, fd);
  return 0;
}

static int on_timer_set(CURLM *m, long ms, void *ud) {
  session *s = ud;
  (void)m;
  /* 0 is "now": the next turn of the loop, not rounded up to 1 ms */
  if (ms < 0) uv_timer_stop(&s->timer);
  else uv_timer_start(&s->timer, on_timer, (uint64_t)ms, 0);
  return 0;
}

static curl_socket_t on_opensocket(void *ud, curlsocktype purpose,
                                   struct curl_sockaddr *a) {
  session *s = ud;
  (void)purpose;
  curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC,
                            a->protocol);
  if (fd < 0) return CURL_SOCKET_BAD;
  sock *stale = sock_find(s, fd);
  if (stale != NULL) sock_close(s, stale);  /* fd was closed behind us */
  if (sock_new(s, fd, 1) == NULL) {
    close(fd);
    return CURL_SOCKET_BAD;
  }
  return fd;
}

static int on_closesocket(void *ud, curl_socket_t fd) {
  session *s = ud;
  sock *k = sock_find(s, fd);
  if (k != NULL) sock_close(s, k);  /* stops watching before the close */
  return close(fd);
}

/* ---- transfers: life ------------------------------------------------ */

static void session_unref(session *s) {
  if (--s->refs > 0) return;
  free(s->cafile);
  free(s->proxy);
  free(s->socks);
  if (s->headers) C->slist_free_all(s->headers);
  free(s);
}

static xfer *xfer_get(session *s) {
  xfer *x = s->pool;
  if (x != NULL) {
    s->pool = x->next_free;
    s->npool--;
  } else {
    x = calloc(1, sizeof *x);
    if (x == NULL) return NULL;
    x->easy = C->easy_init();
    if (x->easy == NULL) {
      free(x);
      return NULL;
    }
    x->used = x->preset = x->cookiefile = 0;
  }
  x->s = s;
  x->task = NULL;
  x->owner = NULL;
  x->state = X_RUNNING;
  x->why = W_NONE;
  x->added = 0;
  x->up_kind = UP_NONE;
  x->flags = 0;
  x->result = CURLE_OK;
  x->body.len = x->head.len = x->up.len = 0;
  x->up_pos = 0;
  x->received = 0;
  x->max_body = -1;
  x->headers = NULL;
  x->mime = NULL;
  x->upfile = NULL;
  x->dl_h = NULL;
  x->errbuf[0] = '\0';
  s->refs++;
  loom__link_push(&s->active, &x->link);
  return x;
}

static void xfer_free(xfer *x) {
  if (x->easy) C->easy_cleanup(x->easy);
  buf_free(&x->body);
  buf_free(&x->head);
  buf_free(&x->up);
  free(x);
}

static void dl_cancel(xfer *x) {
  if (x->dl_h != NULL) {
    loom__deadline_cancel(x->s->lm, &x->dl, x->dl_h);
    x->dl_h = NULL;
  }
}

/* Out of the multi handle (never from inside a curl callback), no
** deadline left. */
static void xfer_stop(xfer *x) {
  session *s = x->s;
  dl_cancel(x);
  if (x->flags & F_RECV_PAUSED) {
    x->flags &= ~F_RECV_PAUSED;
    s->paused--;
  }
  if (x->added) {
    x->added = 0;
    C->multi_remove_handle(s->multi, x->easy);
    s->running--;
    timer_ref(s);
  }
}

/* Frees what one request owns (not the easy handle and buffers). */
static void xfer_clear(xfer *x) {
  if (x->headers) C->slist_free_all(x->headers);
  if (x->mime) C->mime_free(x->mime);
  if (x->upfile) fclose(x->upfile);
  x->headers = NULL;
  x->mime = NULL;
  x->upfile = NULL;
}

static void shrink(hbuf *b) {
  if (b->cap > KEEP_BUF) buf_free(b);
  b->len = 0;
}

/* Lets go of x: out of the multi, off its handle, back to the pool (or
** freed). Called once per checkout. */
static void xfer_release(xfer *x) {
  session *s = x->s;
  xfer_stop(x);
  if (x->owner) x->owner->x = NULL;
  x->owner = NULL;
  x->task = NULL;
  loom__link_unlink(&x->link);
  xfer_clear(x);
  if (!s->closed && s->npool < POOL_MAX) {
    shrink(&x->body);
    shrink(&x->head);
    shrink(&x->up);
    x->next_free = s->pool;
    s->pool = x;
    s->npool++;
  } else {
    xfer_free(x);
  }
  session_unref(s);
}

static void wake(xfer *x) {
  if (x->task != NULL) {
    loom__wake(x->task);
    x->task = NULL;
  }
}

/* The transfer is over (curl said so, or loom stopped it). */
static void xfer_finish(xfer *x, CURLcode rc, int why) {
  xfer_stop(x);
  x->state = X_DONE;
  x->result = rc;
  if (x->why == W_NONE) x->why = why;
  wake(x);
}

static void check_done(session *s) {
  CURLMsg *m;
  int left;
  while ((m = C->multi_info_read(s->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE) continue;
    CURLcode rc = m->data.result;  /* m goes with the removal */
    char *p = NULL;
    C->easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &p);
    if (p != NULL) xfer_finish((xfer *)p, rc, W_NONE);
  }
}

/* ---- deadlines ------------------------------------------------------ */

static void dl_fire(loom__waiter *w, int failed);

static int paused_by_us(xfer *x) {
  return (x->flags & (F_RECV_PAUSED | F_NEED_BODY)) != 0;
}

/* Arms the deadline: the total one, or the idle one (not while loom holds
** the transfer paused: a forgotten stream must not keep the loop alive). */
static int dl_arm(xfer *x, uint64_t now, uint64_t idle_from) {
  uint64_t at = x->total_at;
  if (x->read_ms >= 0 && !(x->flags & F_RECV_PAUSED)) {
    uint64_t r = idle_from + (uint64_t)ceil(x->read_ms);
    if (r < at) at = r;
  }
  if (at == NO_TIME) return 0;
  double ms = at > now ? (double)(at - now) : 1;  /* never this instant */
  x->dl.fire = dl_fire;
  x->dl_h = loom__deadline_start(x->s->lm, &x->dl, ms);
  return x->dl_h != NULL ? 0 : -1;  /* out of memory */
}

/* The deadline came: the total one, or time to look at the idle clock. */
static void dl_fire(loom__waiter *w, int failed) {
  xfer *x = container_of(w, xfer, dl);
  (void)failed;
  x->dl_h = NULL;  /* fired: its bucket is not ours any more */
  if (x->state != X_RUNNING) return;
  uint64_t now = uv_now(x->s->loop);
  if (now >= x->total_at) {
    xfer_finish(x, CURLE_OK, W_TOTAL);
    return;
  }
  if (x->read_ms >= 0) {
    curl_off_t pre = 0;
    C->easy_getinfo(x->easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
    if (pre <= 0 || paused_by_us(x)) {
      x->last_io = now;  /* not sent yet, or ours to wait for */
    } else if ((double)(now - x->last_io) >= x->read_ms) {
      xfer_finish(x, CURLE_OK, W_READ);
      return;
    }
  }
  if (dl_arm(x, now, x->last_io)) xfer_finish(x, CURLE_OK, W_NOMEM);
}

/* ---- curl's callbacks: data in and out ------------------------------ */

static int has_location(const hbuf *h) {
  for (size_t i = 0; i + 10 < h->len; i++)
    if (h->p[i] == '\n' && strncasecmp(h->p + i + 1, "location:", 9) == 0)
      return 1;
  return 0;
}

static int is_redirect(long code) {
  return code == 301 || code == 302 || code == 303 || code == 307 ||
         code == 308;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  xfer *x = ud;
  size_t len = size * n;
  x->last_io = uv_now(x->s->loop);
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    /* a new block (after 1xx, or a proxy's): only the last one counts */
    x->head.len = 0;
    x->flags &= ~(F_DISCARD | F_HEADERS);
  }
  if (x->head.len + len > MAX_HEAD) {
    x->why = W_HEAD_LARGE;
    return 0;
  }
  if (buf_add(&x->head, p, len)) {
    x->why = W_NOMEM;
    return 0;
  }
  if (len <= 2 && (p[0] == '\r' || p[0] == '\n')) {  /* end of a block */
    long code = 0;
    C->easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 100 && code < 200) return len;  /* another block comes */
    if ((x->flags & F_FOLLOW) && is_redirect(code) && has_location(&x->head))
      x->flags |= F_DISCARD;  /* loom goes on to the next hop */
    else {
      x->flags |= F_HEADERS;
      if (x->flags & F_STREAM) wake(x);
    }
  }
  return len;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud) {
  xfer *x = ud;
  size_t len = size * n;
  x->last_io = uv_now(x->s->loop);
  /* counted after decompression: a bomb stops at max_body */
  if (x->max_body >= 0 && x->received + (int64_t)len > x->max_body) {
    x->why = W_TOO_LARGE;
    return 0;
  }
  if (x->flags & F_DISCARD) {
    x->received += (int64_t)len;
    return len;
  }
  if ((x->flags & F_STREAM) && x->body.len >= STREAM_HWM) {
    if (!(x->flags & F_RECV_PAUSED)) {
      x->flags |= F_RECV_PAUSED;  /* curl keeps p and gives it again */
      x->s->paused++;
      timer_ref(x->s);
      dl_cancel(x);  /* our pause: no idle clock */
      if (dl_arm(x, x->last_io, x->last_io)) {
        x->why = W_NOMEM;
        return 0;
      }
    }
    return CURL_WRITEFUNC_PAUSE;
  }
  if (buf_add(&x->body, p, len)) {
    x->why = W_NOMEM;
    return 0;
  }
  x->received += (int64_t)len;
  if (x->flags & F_STREAM) {
    wake(x);
  } else if ((x->flags & F_PROGRESS) &&
             x->last_io - x->last_progress >= PROGRESS_MS) {
    x->last_progress = x->last_io;
    x->flags |= F_PROGRESS_DUE;
    wake(x);
  }
  return len;
}

static size_t on_read(char *dst, size_t size, size_t n, void *ud) {
  xfer *x = ud;
  size_t cap = size * n, m;
  x->last_io = uv_now(x->s->loop);
  if (x->up_kind == UP_FILE) {
    m = fread(dst, 1, cap, x->upfile);
    if (m == 0 && ferror(x->upfile)) {
      x->why = W_UPLOAD;
      return CURL_READFUNC_ABORT;
    }
    if (m > 0) x->flags |= F_SENT;
    return m;
  }
  if (x->up_pos < x->up.len) {
    m = x->up.len - x->up_pos;
    if (m > cap) m = cap;
    memcpy(dst, x->up.p + x->up_pos, m);
    x->up_pos += m;
    x->flags |= F_SENT;
    return m;
  }
  if (x->flags & F_BODY_EOF) return 0;
  /* the task calls the body function, then unpauses */
  x->flags |= F_NEED_BODY | F_SEND_PAUSED;
  wake(x);
  return CURL_READFUNC_PAUSE;
}

static int on_seek(void *ud, curl_off_t off, int origin) {
  xfer *x = ud;
  if (x->up_kind == UP_FILE)
    return fseeko(x->upfile, (off_t)off, origin) == 0 ? CURL_SEEKFUNC_OK
                                                      : CURL_SEEKFUNC_FAIL;
  /* a body function cannot go back, but nothing sent is no rewind */
  if (off == 0 && origin == SEEK_SET && !(x->flags & F_SENT)) {
    x->up_pos = 0;
    return CURL_SEEKFUNC_OK;
  }
  return CURL_SEEKFUNC_CANTSEEK;
}

/* Unpauses what loom paused and nothing else still holds. */
static void unpause(xfer *x, unsigned which) {
  if (!(x->flags & which)) return;
  x->flags &= ~which;
  if (which & F_RECV_PAUSED) {
    session *s = x->s;
    s->paused--;
    timer_ref(s);
    if (x->state == X_RUNNING) {
      uint64_t now = uv_now(s->loop);
      dl_cancel(x);
      if (dl_arm(x, now, now)) {  /* the idle clock again */
        xfer_finish(x, CURLE_OK, W_NOMEM);
        return;
      }
    }
  }
  if (x->state != X_RUNNING || !x->added) return;
  int mask = ((x->flags & F_RECV_PAUSED) ? CURLPAUSE_RECV : 0) |
             ((x->flags & F_SEND_PAUSED) ? CURLPAUSE_SEND : 0);
  x->last_io = uv_now(x->s->loop);
  /* may deliver data at once, into on_write */
  C->easy_pause(x->easy, mask);
}

/* ---- the module's state, handles ------------------------------------ */

static hstate *getstate(lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(2));
}

static session_ud *checksession(lua_State *L, int idx, const char *fname) {
  hstate *hs = getstate(L);
  session_ud *u = loom__type_test(L, idx, &hs->session_type, SESSION_TAG);
  if (u == NULL)
    luaL_error(L, "bad argument #%d to '%s' (loom.http session expected)",
               idx, fname);
  if (u->s == NULL) luaL_error(L, "%s: the session is closed", fname);
  return u;
}

static xhandle *checkhandle(lua_State *L, int idx, const char *fname) {
  hstate *hs = getstate(L);
  xhandle *h = loom__type_test(L, idx, &hs->handle_type, HANDLE_TAG);
  if (h == NULL)
    luaL_error(L, "bad argument #%d to '%s' (loom.http transfer expected)",
               idx, fname);
  return h;
}

static int handle_gc(lua_State *L) {
  xhandle *h = lua_touserdata(L, 1);
  if (h->x) xfer_release(h->x);
  return 0;
}

static int handle_close(lua_State *L) {
  xhandle *h = lua_touserdata(L, 1);
  if (h->x && !h->keep) xfer_release(h->x);
  return 0;
}

/* ---- building a request --------------------------------------------- */

/* Pushes field k of the table at idx (nothing if idx is 0); its type. */
static int field(lua_State *L, int idx, const char *k) {
  if (idx == 0) {
    lua_pushnil(L);
    return LUA_TNIL;
  }
  return lua_getfield(L, idx, k);
}

/* A time in ms: nil leaves *out, false means none (-1). */
static void opt_ms(lua_State *L, int idx, const char *k, double *out,
                   const char *fname) {
  int t = field(L, idx, k);
  if (t == LUA_TNUMBER) {
    double v = lua_tonumber(L, -1);
    if (!(v >= 0)) luaL_error(L, "%s: option '%s' is negative", fname, k);
    *out = v;
  } else if (t == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
    *out = -1;
  } else if (t != LUA_TNIL) {
    luaL_error(L, "%s: option '%s' must be a number or false", fname, k);
  }
  lua_pop(L, 1);
}

static void opt_bool(lua_State *L, int idx, const char *k, int *out) {
  if (field(L, idx, k) != LUA_TNIL) *out = lua_toboolean(L, -1);
  lua_pop(L, 1);
}

/* A string option (kept on the stack by the caller's table), or false
** for "" when allow_false. */
static void opt_str(lua_State *L, int idx, const char *k, const char **out,
                    const char *fname) {
  int t = field(L, idx, k);
  if (t == LUA_TSTRING) *out = lua_tostring(L, -1);
  else if (t == LUA_TBOOLEAN && !lua_toboolean(L, -1)) *out = "";
  else if (t != LUA_TNIL)
    luaL_error(L, "%s: option '%s' must be a string", fname, k);
  lua_pop(L, 1);  /* the table keeps the string alive */
}

static void opt_version(lua_State *L, int idx, long *out, const char *fname) {
  int t = field(L, idx, "http_version");
  if (t != LUA_TNIL) {
    const char *v = lua_tostring(L, -1);
    if (t != LUA_TSTRING) v = "?";
    if (strcmp(v, "1.1") == 0) *out = CURL_HTTP_VERSION_1_1;
    else if (strcmp(v, "1.0") == 0) *out = CURL_HTTP_VERSION_1_0;
    else if (strcmp(v, "2") == 0) *out = CURL_HTTP_VERSION_2_0;
    else luaL_error(L, "%s: option 'http_version' must be \"1.0\", "
                    "\"1.1\" or \"2\"", fname);
  }
  lua_pop(L, 1);
}

static void read_cfg(lua_State *L, int idx, cfg *c, const char *fname) {
  double connect = c->connect_ms, max_body = (double)c->max_body;
  opt_ms(L, idx, "timeout", &c->total_ms, fname);
  opt_ms(L, idx, "read_timeout", &c->read_ms, fname);
  opt_ms(L, idx, "connect_timeout", &connect, fname);
  opt_ms(L, idx, "max_body", &max_body, fname);
  c->connect_ms = connect < 0 ? 0 : connect > 2e9 ? 2000000000L
                                                  : (long)ceil(connect);
  c->max_body = max_body < 0 ? -1 : max_body >= 9e18 ? INT64_MAX
                                                     : (int64_t)max_body;
  opt_bool(L, idx, "verify", &c->verify);
  opt_bool(L, idx, "decompress", &c->decompress);
  opt_bool(L, idx, "follow", &c->follow);
  opt_bool(L, idx, "stream", &c->stream);
  opt_str(L, idx, "cafile", &c->cafile, fname);
  opt_str(L, idx, "proxy", &c->proxy, fname);
  opt_version(L, idx, &c->http_version, fname);
}

/* CR, LF and NUL never reach the wire: lib/loom/http.lua refuses them
** with a clearer message; this guards the core on its own. */
static int clean(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0') return 0;
  return 1;
}

/* The array of header lines at the top -> a curl list (NULL if empty). */
static struct curl_slist *header_list(lua_State *L, const char *fname,
                                      int *err) {
  struct curl_slist *list = NULL;
  lua_Integer n = luaL_len(L, -1);
  *err = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    size_t len;
    lua_rawgeti(L, -1, i);
    const char *line = lua_tolstring(L, -1, &len);
    if (line == NULL || !clean(line, len)) {
      if (list) C->slist_free_all(list);
      luaL_error(L, "%s: header line %d is not a clean string", fname,
                 (int)i);
    }
    struct curl_slist *l = C->slist_append(list, line);
    lua_pop(L, 1);
    if (l == NULL) {
      if (list) C->slist_free_all(list);
      *err = 1;
      return NULL;
    }
    list = l;
  }
  return list;
}

#define SET(opt, v) \
  do { if (rc == CURLE_OK) rc = C->easy_setopt(e, opt, v); } while (0)

/* The multipart parts at the top: an array of {name=, data= | file=,
** filename=, type=}. */
static CURLcode build_mime(lua_State *L, xfer *x, const char *fname) {
  x->mime = C->mime_init(x->easy);
  if (x->mime == NULL) return CURLE_OUT_OF_MEMORY;
  lua_Integer n = luaL_len(L, -1);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, -1, i) != LUA_TTABLE)
      luaL_error(L, "%s: multipart part %d is not a table", fname, (int)i);
    curl_mimepart *part = C->mime_addpart(x->mime);
    if (part == NULL) return CURLE_OUT_OF_MEMORY;
    CURLcode rc = CURLE_OK;
    size_t len;
    const char *v;
    if (lua_getfield(L, -1, "name") == LUA_TSTRING)
      rc = C->mime_name(part, lua_tostring(L, -1));
    lua_pop(L, 1);
    if (rc == CURLE_OK && lua_getfield(L, -1, "data") == LUA_TSTRING) {
      v = lua_tolstring(L, -1, &len);
      rc = C->mime_data(part, v, len);
    }
    lua_pop(L, 1);
    if (rc == CURLE_OK && lua_getfield(L, -1, "file") == LUA_TSTRING) {
      rc = C->mime_filedata(part, lua_tostring(L, -1));
      if (rc != CURLE_OK && rc != CURLE_OUT_OF_MEMORY)
        luaL_error(L, "%s: cannot read multipart file '%s'", fname,
                   lua_tostring(L, -1));
    }
    lua_pop(L, 1);
    if (rc == CURLE_OK && lua_getfield(L, -1, "filename") == LUA_TSTRING)
      rc = C->mime_filename(part, lua_tostring(L, -1));
    lua_pop(L, 1);
    if (rc == CURLE_OK && lua_getfield(L, -1, "type") == LUA_TSTRING)
      rc = C->mime_type(part, lua_tostring(L, -1));
    lua_pop(L, 2);
    if (rc != CURLE_OK) return rc;
  }
  return CURLE_OK;
}

/* The method and the body: req's body, body_file, body_fn or multipart.
** Leaves the stack as it was. */
static CURLcode set_method(lua_State *L, xfer *x, const char *method,
                           int req, const char *fname) {
  CURL *e = x->easy;
  CURLcode rc = CURLE_OK;
  int post = strcmp(method, "POST") == 0;
  int has_body = 0;
  if (strcmp(method, "HEAD") == 0) {
    SET(CURLOPT_NOBODY, 1L);
    return rc;
  }
  if (field(L, req, "body") == LUA_TSTRING) {
    size_t len;
    const char *b = lua_tolstring(L, -1, &len);  /* req keeps it alive */
    x->up_kind = UP_STRING;
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    SET(CURLOPT_POSTFIELDS, b);
    has_body = 1;
  }
  lua_pop(L, 1);
  if (field(L, req, "body_file") == LUA_TSTRING && !has_body) {
    const char *path = lua_tostring(L, -1);
    struct stat st;
    x->upfile = fopen(path, "rb");
    if (x->upfile == NULL || fstat(fileno(x->upfile), &st) != 0)
      luaL_error(L, "%s: cannot open body file '%s': %s", fname, path,
                 strerror(errno));
    x->up_kind = UP_FILE;
    SET(CURLOPT_READFUNCTION, on_read);
    SET(CURLOPT_READDATA, x);
    SET(CURLOPT_SEEKFUNCTION, on_seek);
    SET(CURLOPT_SEEKDATA, x);
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)st.st_size);
    SET(CURLOPT_POST, 1L);
    has_body = 1;
  }
  lua_pop(L, 1);
  if (field(L, req, "body_fn") == LUA_TFUNCTION && !has_body) {
    x->up_kind = UP_FN;
    SET(CURLOPT_READFUNCTION, on_read);
    SET(CURLOPT_READDATA, x);
    SET(CURLOPT_SEEKFUNCTION, on_seek);
    SET(CURLOPT_SEEKDATA, x);
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);  /* chunked */
    SET(CURLOPT_POST, 1L);
    has_body = 1;
  }
  lua_pop(L, 1);
  if (field(L, req, "multipart") == LUA_TTABLE && !has_body) {
    x->up_kind = UP_MIME;
    if (rc == CURLE_OK) rc = build_mime(L, x, fname);
    SET(CURLOPT_MIMEPOST, x->mime);
    has_body = 1;
  }
  lua_pop(L, 1);
  if (has_body) {
    if (x->up_kind == UP_STRING) SET(CURLOPT_POST, 1L);
    if (!post) SET(CURLOPT_CUSTOMREQUEST, method);
  } else if (strcmp(method, "GET") == 0) {
    SET(CURLOPT_HTTPGET, 1L);
  } else if (post || strcmp(method, "PUT") == 0 ||
             strcmp(method, "PATCH") == 0) {
    /* no body: still Content-Length: 0, as fetch sends */
    SET(CURLOPT_POST, 1L);
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    SET(CURLOPT_POSTFIELDS, "");
    if (!post) SET(CURLOPT_CUSTOMREQUEST, method);
  } else {
    SET(CURLOPT_CUSTOMREQUEST, method);
  }
  return rc;
}

/* Sets every option of one request on x's fresh easy handle. */
static CURLcode configure(lua_State *L, xfer *x, const char *method,
                          const char *url, int req, cfg *c,
                          const char *fname) {
  session *s = x->s;
  CURL *e = x->easy;
  CURLcode rc = CURLE_OK;
  int plain = req == 0 && strcmp(method, "GET") == 0;
  x->max_body = c->max_body;
  if (c->follow) x->flags |= F_FOLLOW;
  x->cafile = c->cafile != NULL && *c->cafile ? c->cafile : NULL;
  if (plain && x->preset) {
    /* a plain GET on a handle that ran one: only the URL is new (no
    ** reset and thirty options again, about 10 % of a request's CPU) */
    SET(CURLOPT_URL, url);
    return rc;
  }
  if (x->used) {
    /* libcurl 7.88's reset forgets, and leaks, the list of cookie files
    ** (curl PR 10709): empty it first (a shared jar keeps its cookies) */
    if (x->cookiefile) C->easy_setopt(e, CURLOPT_COOKIEFILE, (char *)NULL);
    x->cookiefile = 0;
    C->easy_reset(e);
  }
  x->used = 1;
  x->preset = 0;
  SET(CURLOPT_PRIVATE, (void *)x);
  SET(CURLOPT_URL, url);
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_QUICK_EXIT, 1L);  /* no join of a resolver thread */
  SET(CURLOPT_ERRORBUFFER, x->errbuf);
  SET(CURLOPT_WRITEFUNCTION, on_write);
  SET(CURLOPT_WRITEDATA, x);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  SET(CURLOPT_HEADERDATA, x);
  SET(CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
  SET(CURLOPT_OPENSOCKETDATA, s);
  SET(CURLOPT_CLOSESOCKETFUNCTION, on_closesocket);
  SET(CURLOPT_CLOSESOCKETDATA, s);
  SET(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  if (c->connect_ms > 0) SET(CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
  else SET(CURLOPT_CONNECTTIMEOUT_MS, 2000000000L);  /* none */
  /* decoding on; the header itself is among the lines (http.lua), which
  ** spares curl formatting it at every request */
  if (c->decompress) SET(CURLOPT_ACCEPT_ENCODING, "");
  if (c->stream) {
    /* a paused HTTP/2 stream would stall the others on its connection */
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    /* while loom pauses a stream, curl keeps what it decoded from one
    ** read: small reads keep that small (a 16 KiB read of a gzip bomb
    ** decodes to 16 MiB) */
    if (c->decompress) SET(CURLOPT_BUFFERSIZE, (long)STREAM_GZIP_READ);
  } else {
    SET(CURLOPT_HTTP_VERSION, c->http_version);
    SET(CURLOPT_PIPEWAIT, 1L);  /* one h2 connection, not one each */
  }
  if (!c->verify) {
    SET(CURLOPT_SSL_VERIFYPEER, 0L);
    SET(CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (x->cafile) SET(CURLOPT_CAINFO, x->cafile);
  if (c->proxy != NULL) SET(CURLOPT_PROXY, c->proxy);
  else if (!s->env_proxy) SET(CURLOPT_PROXY, "");  /* as curl would find:
    no variable, no proxy (without its getenv calls at every request) */
  if (s->share != NULL) {
    SET(CURLOPT_SHARE, s->share);
    SET(CURLOPT_COOKIEFILE, "");  /* the engine on, the jar shared */
    x->cookiefile = 1;
  }
  if (c->max_body >= 0)
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_body);
  if (field(L, req, "headers") == LUA_TTABLE) {
    int err;
    x->headers = header_list(L, fname, &err);
    if (err && rc == CURLE_OK) rc = CURLE_OUT_OF_MEMORY;
    SET(CURLOPT_HTTPHEADER, x->headers);
  } else {
    SET(CURLOPT_HTTPHEADER, s->headers);
  }
  lua_pop(L, 1);
  if (rc == CURLE_OK) rc = set_method(L, x, method, req, fname);
  if (c->stream) x->flags |= F_STREAM;
  x->preset = plain && rc == CURLE_OK;
  return rc;
}

#undef SET

/* ---- results -------------------------------------------------------- */

static const char *const code_names[] = {
#define N(c) [c] = #c
  N(CURLE_OK), N(CURLE_UNSUPPORTED_PROTOCOL), N(CURLE_FAILED_INIT),
  N(CURLE_URL_MALFORMAT), N(CURLE_NOT_BUILT_IN),
  N(CURLE_COULDNT_RESOLVE_PROXY), N(CURLE_COULDNT_RESOLVE_HOST),
  N(CURLE_COULDNT_CONNECT), N(CURLE_WEIRD_SERVER_REPLY),
  N(CURLE_REMOTE_ACCESS_DENIED), N(CURLE_HTTP2), N(CURLE_PARTIAL_FILE),
  N(CURLE_QUOTE_ERROR), N(CURLE_HTTP_RETURNED_ERROR), N(CURLE_WRITE_ERROR),
  N(CURLE_UPLOAD_FAILED), N(CURLE_READ_ERROR), N(CURLE_OUT_OF_MEMORY),
  N(CURLE_OPERATION_TIMEDOUT), N(CURLE_RANGE_ERROR),
  N(CURLE_HTTP_POST_ERROR), N(CURLE_SSL_CONNECT_ERROR),
  N(CURLE_BAD_DOWNLOAD_RESUME), N(CURLE_FILE_COULDNT_READ_FILE),
  N(CURLE_FUNCTION_NOT_FOUND), N(CURLE_ABORTED_BY_CALLBACK),
  N(CURLE_BAD_FUNCTION_ARGUMENT), N(CURLE_INTERFACE_FAILED),
  N(CURLE_TOO_MANY_REDIRECTS), N(CURLE_UNKNOWN_OPTION),
  N(CURLE_SETOPT_OPTION_SYNTAX), N(CURLE_GOT_NOTHING),
  N(CURLE_SSL_ENGINE_NOTFOUND), N(CURLE_SSL_ENGINE_SETFAILED),
  N(CURLE_SEND_ERROR), N(CURLE_RECV_ERROR), N(CURLE_SSL_CERTPROBLEM),
  N(CURLE_SSL_CIPHER), N(CURLE_PEER_FAILED_VERIFICATION),
  N(CURLE_BAD_CONTENT_ENCODING), N(CURLE_FILESIZE_EXCEEDED),
  N(CURLE_USE_SSL_FAILED), N(CURLE_SEND_FAIL_REWIND),
  N(CURLE_SSL_ENGINE_INITFAILED), N(CURLE_LOGIN_DENIED),
  N(CURLE_SSL_CACERT_BADFILE), N(CURLE_SSL_SHUTDOWN_FAILED), N(CURLE_AGAIN),
  N(CURLE_SSL_CRL_BADFILE), N(CURLE_SSL_ISSUER_ERROR),
  N(CURLE_CHUNK_FAILED), N(CURLE_NO_CONNECTION_AVAILABLE),
  N(CURLE_SSL_PINNEDPUBKEYNOTMATCH), N(CURLE_SSL_INVALIDCERTSTATUS),
  N(CURLE_HTTP2_STREAM), N(CURLE_RECURSIVE_API_CALL), N(CURLE_AUTH_ERROR),
  N(CURLE_HTTP3), N(CURLE_QUIC_CONNECT_ERROR), N(CURLE_PROXY),
  N(CURLE_SSL_CLIENTCERT), N(CURLE_UNRECOVERABLE_POLL),
#undef N
};

static const char *code_name(CURLcode rc) {
  if ((size_t)rc < sizeof code_names / sizeof *code_names &&
      code_names[rc] != NULL)
    return code_names[rc];
  return "CURLE_UNKNOWN";
}

static const char *kind_of(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_RESOLVE_PROXY:
      return "dns";
    case CURLE_COULDNT_CONNECT: case CURLE_PROXY:
      return "connect";
    case CURLE_OPERATION_TIMEDOUT:
      return "timeout";
    case CURLE_SSL_CONNECT_ERROR: case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER: case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_USE_SSL_FAILED: case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED: case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE: case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE: case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH: case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
      return "tls";
    case CURLE_UNSUPPORTED_PROTOCOL: case CURLE_URL_MALFORMAT:
      return "url";
    case CURLE_TOO_MANY_REDIRECTS:
      return "redirects";
    case CURLE_FILESIZE_EXCEEDED:
      return "too_large";
    default:
      return "protocol";
  }
}

static int is_verify_error(CURLcode rc) {
  return rc == CURLE_PEER_FAILED_VERIFICATION ||
         rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_ISSUER_ERROR;
}

/* Pushes nil, kind, message, code, code name, timeout which: a failure
** lib/loom/http.lua turns into a loom.http.Error. */
static int push_failure(lua_State *L, xfer *x, const char *fname) {
  CURLcode rc = x->result;
  lua_pushnil(L);
  switch (x->why) {
    case W_CLOSED:
      return luaL_error(L, "%s: the session was closed", fname);
    case W_NOMEM:
      return luaL_error(L, "%s: not enough memory", fname);
    case W_TOO_LARGE:
      lua_pushliteral(L, "too_large");
      lua_pushfstring(L, "response body larger than max_body (%I bytes)",
                      (lua_Integer)x->max_body);
      lua_pushnil(L);
      lua_pushnil(L);
      lua_pushnil(L);
      return 6;
    case W_HEAD_LARGE:
      lua_pushliteral(L, "too_large");
      lua_pushfstring(L, "response headers larger than %d bytes", MAX_HEAD);
      lua_pushnil(L);
      lua_pushnil(L);
      lua_pushnil(L);
      return 6;
    case W_TOTAL: case W_READ:
      lua_pushliteral(L, "timeout");
      if (x->why == W_TOTAL)
        lua_pushliteral(L, "the request took longer than its timeout");
      else
        lua_pushfstring(L, "no data for %f s (read_timeout)",
                        x->read_ms / 1000.0);
      lua_pushnil(L);
      lua_pushnil(L);
      lua_pushstring(L, x->why == W_TOTAL ? "total" : "read");
      return 6;
    case W_UPLOAD:
      lua_pushliteral(L, "protocol");
      lua_pushliteral(L, "reading the body file failed");
      lua_pushinteger(L, rc);
      lua_pushstring(L, code_name(rc));
      lua_pushnil(L);
      return 6;
    default:
      break;
  }
  if (rc == CURLE_OUT_OF_MEMORY && !(x->flags & F_HEADERS)) {
    /* curl 7.88 says only this when a header line passes its bound of
    ** 100 KB (CURL_MAX_HTTP_HEADER) */
    lua_pushliteral(L, "too_large");
    lua_pushliteral(L, "a response header is larger than 100 KB");
    lua_pushinteger(L, rc);
    lua_pushstring(L, code_name(rc));
    lua_pushnil(L);
    return 6;
  }
  if (rc == CURLE_OUT_OF_MEMORY)
    return luaL_error(L, "%s: not enough memory", fname);
  if (rc == CURLE_FILESIZE_EXCEEDED) {  /* Content-Length said so */
    lua_pushliteral(L, "too_large");
    lua_pushfstring(L, "response body larger than max_body (%I bytes)",
                    (lua_Integer)x->max_body);
    lua_pushinteger(L, rc);
    lua_pushstring(L, code_name(rc));
    lua_pushnil(L);
    return 6;
  }
  lua_pushstring(L, kind_of(rc));
  const char *msg = x->errbuf[0] ? x->errbuf : C->easy_strerror(rc);
  if (is_verify_error(rc)) {
    char *ca = NULL;
    C->easy_getinfo(x->easy, CURLINFO_CAINFO, &ca);
    lua_pushfstring(L, "%s (CA file: %s)", msg,
                    x->cafile ? x->cafile : ca ? ca : "?");
  } else {
    lua_pushstring(L, msg);
  }
  lua_pushinteger(L, rc);
  lua_pushstring(L, code_name(rc));
  if (rc == CURLE_OPERATION_TIMEDOUT) lua_pushliteral(L, "connect");
  else lua_pushnil(L);
  return 6;
}

static const char *reason_of(long code) {
  switch (code) {
    case 200: return "OK"; case 201: return "Created";
    case 202: return "Accepted"; case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently"; case 302: return "Found";
    case 303: return "See Other"; case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request"; case 401: return "Unauthorized";
    case 403: return "Forbidden"; case 404: return "Not Found";
    case 405: return "Method Not Allowed"; case 409: return "Conflict";
    case 410: return "Gone"; case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented"; case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
  }
}

static void set_str(lua_State *L, const char *k, const char *v, size_t n) {
  lua_pushlstring(L, v, n);
  lua_setfield(L, -2, k);
}

/* headers and header_list from the last header block, and the reason
** from its status line, into the table on top. */
static void push_headers(lua_State *L, const hbuf *h, long code) {
  const char *p = h->len ? h->p : "", *end = p + h->len;
  int reason_set = 0, n = 0;
  lua_createtable(L, 0, 8);   /* headers */
  lua_createtable(L, 8, 0);   /* header_list */
  int headers = lua_gettop(L) - 1, list = headers + 1;
  for (int first = 1; p < end; first = 0) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *next = eol ? eol + 1 : end;
    const char *e = eol ? eol : end;
    if (e > p && e[-1] == '\r') e--;
    if (e == p) break;  /* the blank line: end of the block */
    if (first) {
      /* "HTTP/1.1 200 OK": the reason after the second space */
      const char *sp = memchr(p, ' ', (size_t)(e - p));
      const char *sp2 = sp ? memchr(sp + 1, ' ', (size_t)(e - sp - 1)) : 0;
      if (sp2 && sp2 + 1 < e) {
        lua_pushlstring(L, sp2 + 1, (size_t)(e - sp2 - 1));
        lua_setfield(L, headers - 1, "reason");
        reason_set = 1;
      }
      p = next;
      continue;
    }
    lua_pushlstring(L, p, (size_t)(e - p));
    lua_rawseti(L, list, ++n);
    const char *colon = memchr(p, ':', (size_t)(e - p));
    if (colon != NULL && colon > p) {
      char small[64];
      luaL_Buffer b;
      size_t nl = (size_t)(colon - p);
      const char *v = colon + 1, *ve = e;
      while (v < ve && (*v == ' ' || *v == '\t')) v++;
      while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
      if (nl < sizeof small) {
        for (size_t i = 0; i < nl; i++)
          small[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
        lua_pushlstring(L, small, nl);
      } else {
        luaL_buffinit(L, &b);
        for (size_t i = 0; i < nl; i++)
          luaL_addchar(&b, (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32
                                                             : p[i]));
        luaL_pushresult(&b);
      }
      int setcookie = nl == 10 && memcmp(lua_tostring(L, -1),
                                         "set-cookie", 10) == 0;
      lua_pushvalue(L, -1);
      int t = lua_rawget(L, headers);
      if (setcookie) {
        /* kept as a list: cookie values may hold ", " themselves */
        if (t != LUA_TTABLE) {
          lua_pop(L, 1);
          lua_createtable(L, 2, 0);
          lua_pushvalue(L, -2);
          lua_pushvalue(L, -2);
          lua_rawset(L, headers);
        }
        lua_pushlstring(L, v, (size_t)(ve - v));
        lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
        lua_pop(L, 2);
      } else if (t == LUA_TSTRING) {
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, v, (size_t)(ve - v));
        lua_concat(L, 3);
        lua_rawset(L, headers);
      } else {
        lua_pop(L, 1);
        lua_pushlstring(L, v, (size_t)(ve - v));
        lua_rawset(L, headers);
      }
    }
    p = next;
  }
  lua_setfield(L, headers - 1, "header_list");
  lua_setfield(L, headers - 1, "headers");
  if (!reason_set) {
    lua_pushstring(L, reason_of(code));
    lua_setfield(L, -2, "reason");
  }
}

static const char *version_name(long v) {
  switch (v) {
    case CURL_HTTP_VERSION_1_0: return "1.0";
    case CURL_HTTP_VERSION_1_1: return "1.1";
    case CURL_HTTP_VERSION_2_0: return "2";
    case CURL_HTTP_VERSION_3: return "3";
    default: return "?";
  }
}

/* The response table (with the body unless a stream's). */
static void push_response(lua_State *L, xfer *x) {
  hstate *hs = getstate(L);
  CURL *e = x->easy;
  long code = 0, ver = 0;
  char *url = NULL, *to = NULL;
  C->easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
  C->easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &url);
  C->easy_getinfo(e, CURLINFO_HTTP_VERSION, &ver);
  lua_createtable(L, 0, 12);
  lua_pushinteger(L, code);
  lua_setfield(L, -2, "status");
  lua_pushboolean(L, code >= 200 && code < 300);
  lua_setfield(L, -2, "ok");
  lua_pushstring(L, url ? url : "");
  lua_setfield(L, -2, "url");
  lua_pushstring(L, version_name(ver));
  lua_setfield(L, -2, "http_version");
  lua_pushnumber(L, (lua_Number)(uv_hrtime() - x->t0) / 1e9);
  lua_setfield(L, -2, "elapsed");
  if (is_redirect(code)) {
    C->easy_getinfo(e, CURLINFO_REDIRECT_URL, &to);
    if (to != NULL) {
      lua_pushstring(L, to);
      lua_setfield(L, -2, "redirect_url");
    }
  }
  if (hs->heads_ref != LUA_NOREF) {
    /* headers, header_list and reason are made on first use, from the
    ** block kept here (parse_head): most callers never look */
    lua_rawgeti(L, LUA_REGISTRYINDEX, hs->heads_ref);
    lua_pushvalue(L, -2);
    lua_pushlstring(L, x->head.len ? x->head.p : "", x->head.len);
    lua_rawset(L, -3);
    lua_pop(L, 1);
  } else {
    push_headers(L, &x->head, code);
  }
  if (!(x->flags & F_STREAM) || !(x->flags & F_HEADERS)) {
    set_str(L, "body", x->body.len ? x->body.p : "", x->body.len);
    x->body.len = 0;
  }
  if (hs->response_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, hs->response_ref);
    lua_setmetatable(L, -2);
  }
}

/* ---- perform: start a request and wait ------------------------------ */

/* perform's stack: 1 session, 2 method, 3 url, 4 req or nil, 5 fname,
** then what perform pushes: */
#define P_HANDLE 6
#define P_BODY   7
#define P_PROG   8

static void xfer_cancel(loom_task_t *t, void *data, int woken) {
  xfer *x = data;
  (void)t; (void)woken;
  /* at once: out of the multi handle, the connection closed by curl
  ** rather than pooled half-read, and freed (the handle sees NULL) */
  x->task = NULL;
  xfer_release(x);
}

static void describe(lua_State *L, loom_task_t *t, void *data) {
  xfer *x = data;
  char *url = NULL;
  (void)t;
  C->easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &url);
  lua_pushfstring(L, "(%s)", url ? url : "?");
}

static const loom__wait xfer_wait = { "an HTTP request", xfer_cancel,
                                      describe };

static int perform_k(lua_State *L, int status, lua_KContext ctx);
static int body_k(lua_State *L, int status, lua_KContext ctx);
static int progress_k(lua_State *L, int status, lua_KContext ctx);

/* Takes the chunk on top (a string, or nil: the end) for the upload. */
static void feed(lua_State *L, xfer *x, const char *fname) {
  size_t len;
  if (lua_isnil(L, -1)) {
    x->flags |= F_BODY_EOF;
  } else if (lua_type(L, -1) == LUA_TSTRING) {
    const char *p = lua_tolstring(L, -1, &len);
    x->up.len = 0;
    x->up_pos = 0;
    if (buf_add(&x->up, p, len))
      luaL_error(L, "%s: not enough memory", fname);
    if (len == 0) return;  /* nothing: ask again */
  } else {
    luaL_error(L, "%s: the body function returned a %s (string or nil "
               "expected)", fname, luaL_typename(L, -1));
  }
  x->flags &= ~F_NEED_BODY;
  unpause(x, F_SEND_PAUSED);
}

static int suspend(lua_State *L, loom_t *lm, xfer *x, const char *fname,
                   lua_KContext ctx, lua_KFunction k) {
  loom_task_t *t = loom__prepare_suspend(L, lm, fname);
  x->task = t;
  return loom__suspend(L, lm, &xfer_wait, x, ctx, k);
}

static int drive(lua_State *L) {
  loom_t *lm = loom__up(L);
  xhandle *h = lua_touserdata(L, P_HANDLE);
  const char *fname = lua_tostring(L, 5);
  xfer *x = h->x;
  if (x == NULL) return luaL_error(L, "%s: the session was closed", fname);
  if (x->state == X_RUNNING && (x->flags & F_NEED_BODY)) {
    lua_pushvalue(L, P_BODY);
    return body_k(L, lua_pcallk(L, 0, 1, 0, 0, body_k), 0);
  }
  if (x->state == X_RUNNING && (x->flags & F_PROGRESS_DUE)) {
    x->flags &= ~F_PROGRESS_DUE;
    curl_off_t total = -1;
    C->easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &total);
    lua_pushvalue(L, P_PROG);
    lua_pushinteger(L, x->received);
    if (total >= 0) lua_pushinteger(L, total);
    else lua_pushnil(L);
    return progress_k(L, lua_pcallk(L, 2, 0, 0, 0, progress_k), 0);
  }
  if ((x->flags & (F_STREAM | F_HEADERS)) == (F_STREAM | F_HEADERS)) {
    /* what goes wrong from here on is raised by read() */
    push_response(L, x);
    h->keep = 1;  /* the stream's handle lives on with the response */
    lua_pushvalue(L, P_HANDLE);
    return 2;
  }
  if (x->state == X_DONE) {
    if (x->why != W_NONE || x->result != CURLE_OK)
      return push_failure(L, x, fname);  /* the handle lets go at return */
    if ((x->flags & F_PROGRESS) && !(x->flags & F_PROGRESS_END)) {
      x->flags |= F_PROGRESS_END;  /* a last call with the whole size */
      lua_pushvalue(L, P_PROG);
      lua_pushinteger(L, x->received);
      lua_pushinteger(L, x->received);
      return progress_k(L, lua_pcallk(L, 2, 0, 0, 0, progress_k), 0);
    }
    push_response(L, x);
    return 1;
  }
  return suspend(L, lm, x, fname, 0, perform_k);
}

static int perform_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  loom__resumed(L, loom__up(L));  /* cancelled: the hook let go */
  return drive(L);
}

static int body_k(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  if (status != LUA_OK && status != LUA_YIELD) return lua_error(L);
  xhandle *h = lua_touserdata(L, P_HANDLE);
  if (h->x != NULL) feed(L, h->x, lua_tostring(L, 5));
  lua_settop(L, P_PROG);
  return drive(L);
}

static int progress_k(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  if (status != LUA_OK && status != LUA_YIELD) return lua_error(L);
  lua_settop(L, P_PROG);
  return drive(L);
}

/* session:perform(method, url, req, fname): runs one request (one hop:
** loom follows redirects in lib/loom/http.lua) and returns the response,
** or nil and the failure (push_failure); a stream's response comes with
** its handle once the headers are in. */
static int l_perform(lua_State *L) {
  loom_t *lm = loom__up(L);
  hstate *hs = getstate(L);
  lua_settop(L, 5);
  const char *fname = lua_tostring(L, 5);
  if (fname == NULL) fname = "perform";
  session *s = checksession(L, 1, fname)->s;
  const char *method = luaL_checkstring(L, 2);
  const char *url = luaL_checkstring(L, 3);
  int req = lua_istable(L, 4) ? 4 : 0;
  if (!req) luaL_argcheck(L, lua_isnil(L, 4), 4, "table or nil expected");
  size_t ulen;
  lua_tolstring(L, 3, &ulen);
  if (!clean(method, strlen(method)))
    return luaL_error(L, "%s: CR, LF or NUL in the method", fname);
  if (!clean(url, ulen)) {
    lua_pushnil(L);
    lua_pushliteral(L, "url");
    lua_pushliteral(L, "the URL contains CR, LF or NUL");
    return 3;
  }
  cfg c = s->cfg;
  if (req) read_cfg(L, req, &c, fname);
  loom__prepare_suspend(L, lm, fname);  /* before anything starts */
  xhandle *h = c.stream
    ? loom__type_new(L, &hs->handle_type, 3, HANDLE_TAG)
    : loom__type_new(L, &hs->guard_type, 0, GUARD_TAG);
  lua_toclose(L, P_HANDLE);  /* lets go of the transfer however we end */
  if (req) {
    lua_getfield(L, req, "body_fn");
    lua_getfield(L, req, "progress");
  } else {
    lua_settop(L, P_PROG);
  }
  if (c.stream) {
    lua_pushvalue(L, P_BODY);
    lua_setiuservalue(L, P_HANDLE, 1);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, P_HANDLE, 2);  /* keeps the session */
    lua_pushvalue(L, 4);
    lua_setiuservalue(L, P_HANDLE, 3);  /* keeps the body string */
  }
  xfer *x = xfer_get(s);
  if (x == NULL) return luaL_error(L, "%s: not enough memory", fname);
  h->x = x;
  x->owner = h;
  CURLcode rc = configure(L, x, method, url, req, &c, fname);
  if (rc != CURLE_OK) {
    if (rc == CURLE_OUT_OF_MEMORY)
      return luaL_error(L, "%s: not enough memory", fname);
    x->state = X_DONE;
    x->result = rc;
    return push_failure(L, x, fname);
  }
  if (lua_isfunction(L, P_PROG)) x->flags |= F_PROGRESS;
  x->t0 = uv_hrtime();
  uint64_t now = uv_now(s->loop);  /* the deadline itself is exact */
  x->last_io = x->last_progress = now;
  x->read_ms = c.read_ms;
  x->total_at = c.total_ms >= 0 && c.total_ms < 1e15
                ? now + (uint64_t)ceil(c.total_ms) : NO_TIME;
  CURLMcode mc = C->multi_add_handle(s->multi, x->easy);
  if (mc != CURLM_OK)
    return luaL_error(L, "%s: cannot start the request (%s)", fname,
                      mc == CURLM_OUT_OF_MEMORY ? "not enough memory"
                                                : "curl refused it");
  x->added = 1;
  s->running++;
  timer_ref(s);
  if (dl_arm(x, now, now))
    return luaL_error(L, "%s: not enough memory", fname);
  return drive(L);
}

/* ---- streams -------------------------------------------------------- */

static int read_k(lua_State *L, int status, lua_KContext ctx);

static int read_body_k(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  if (status != LUA_OK && status != LUA_YIELD) return lua_error(L);
  xhandle *h = lua_touserdata(L, 1);
  if (h->x != NULL) feed(L, h->x, "read");
  lua_settop(L, 1);
  return read_k(L, LUA_OK, 0);
}

/* read(handle): the next chunk of a stream's body, nil at its end, or
** nil and the failure; suspends while nothing is buffered. */
static int read_k(lua_State *L, int status, lua_KContext ctx) {
  loom_t *lm = loom__up(L);
  (void)ctx;
  if (status == LUA_YIELD) loom__resumed(L, lm);
  xhandle *h = lua_touserdata(L, 1);
  xfer *x = h->x;
  if (x == NULL) return luaL_error(L, "read: the response is closed");
  if (x->body.len > 0) {
    lua_pushlstring(L, x->body.p, x->body.len);
    x->body.len = 0;
    unpause(x, F_RECV_PAUSED);  /* may refill the buffer at once */
    return 1;
  }
  if (x->state == X_DONE) {
    if (x->why != W_NONE || x->result != CURLE_OK)
      return push_failure(L, x, "read");
    lua_pushnil(L);
    return 1;
  }
  if (x->flags & F_NEED_BODY) {
    lua_getiuservalue(L, 1, 1);
    return read_body_k(L, lua_pcallk(L, 0, 1, 0, 0, read_body_k), 0);
  }
  unpause(x, F_RECV_PAUSED);
  if (x->body.len > 0 || x->state == X_DONE) return read_k(L, LUA_OK, 0);
  return suspend(L, lm, x, "read", 0, read_k);
}

static int l_read(lua_State *L) {
  checkhandle(L, 1, "read");
  lua_settop(L, 1);
  return read_k(L, LUA_OK, 0);
}

/* close(handle): lets go of a stream at once (the connection is closed
** by curl if the body was not all read). */
static int l_close(lua_State *L) {
  xhandle *h = checkhandle(L, 1, "close");
  if (h->x) xfer_release(h->x);
  return 0;
}

/* received(handle): bytes of body received so far and the expected
** total (nil if unknown). */
static int l_received(lua_State *L) {
  xhandle *h = checkhandle(L, 1, "received");
  if (h->x == NULL) return 0;
  curl_off_t total = -1;
  C->easy_getinfo(h->x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &total);
  lua_pushinteger(L, h->x->received);
  if (total >= 0) lua_pushinteger(L, total);
  else lua_pushnil(L);
  return 2;
}

/* ---- sessions ------------------------------------------------------- */

/* Takes s apart. orderly (session:close()): tasks waiting on its
** transfers are woken to raise "session was closed", and their handles
** let go later; otherwise (collected, or the runtime closing) nobody
** waits any more and everything is freed now. */
static void timer_closed(uv_handle_t *h) {
  session_unref(container_of(h, session, timer));  /* its memory is s's */
}

static void session_teardown(session *s, int orderly) {
  if (s->closed) return;
  s->closed = 1;
  loom__remove_closer(&s->closer);
  if (s->owner) *s->owner = NULL;
  s->owner = NULL;
  loom__link keep;
  loom__list_init(&keep);
  while (!loom__list_empty(&s->active)) {
    xfer *x = container_of(s->active.next, xfer, link);
    loom__link_unlink(&x->link);
    xfer_stop(x);
    if (orderly) {
      x->state = X_DONE;
      x->why = W_CLOSED;
      wake(x);
      loom__link_push(&keep, &x->link);  /* its handle lets go */
    } else {
      if (x->owner) x->owner->x = NULL;
      xfer_clear(x);
      xfer_free(x);
      s->refs--;
    }
  }
  if (!loom__list_empty(&keep)) {  /* back, so a release unlinks them */
    s->active = keep;
    s->active.next->prev = &s->active;
    s->active.prev->next = &s->active;
  }
  while (s->pool) {
    xfer *x = s->pool;
    s->pool = x->next_free;
    xfer_free(x);
  }
  s->npool = 0;
  C->multi_cleanup(s->multi);  /* closes the pooled connections */
  s->multi = NULL;
  if (s->share) C->share_cleanup(s->share);
  s->share = NULL;
  for (int fd = 0; fd < s->nsocks; fd++)
    if (s->socks[fd]) sock_close(s, s->socks[fd]);
  loom__close_handle(s->lm, (uv_handle_t *)&s->timer, timer_closed);
}

static void session_closer(loom_t *lm, loom__closer *c) {
  (void)lm;
  session_teardown(container_of(c, session, closer), 0);
}

static int session_gc(lua_State *L) {
  session_ud *u = lua_touserdata(L, 1);
  session *s = u->s;
  if (s == NULL) return 0;
  u->s = NULL;
  s->owner = NULL;
  session_teardown(s, 0);
  session_unref(s);
  return 0;
}

static void copy_str(lua_State *L, char **dst, const char **p) {
  if (*p == NULL) return;
  *dst = strdup(*p);
  if (*dst == NULL) luaL_error(L, "session: not enough memory");
  *p = *dst;
}

/* session(opts): a new session (multi handle, pool, DNS cache, optional
** cookie jar) with the defaults in opts (times in ms, header lines). */
static int l_session(lua_State *L) {
  loom_t *lm = loom__up(L);
  hstate *hs = getstate(L);
  int opts = lua_istable(L, 1) ? 1 : 0;
  if (!opts && !lua_isnoneornil(L, 1))
    luaL_typeerror(L, 1, "table or nil");
  session_ud *u = loom__type_new(L, &hs->session_type, 0, SESSION_TAG);
  session *s = calloc(1, sizeof *s);
  if (s == NULL) return luaL_error(L, "session: not enough memory");
  s->lm = lm;
  s->loop = loom_loop(lm);
  loom__list_init(&s->active);
  s->refs = 1;  /* the Lua object */
  s->closed = 1;  /* until the multi handle is up */
  u->s = s;
  s->owner = &u->s;
  s->cfg.total_ms = -1;
  s->cfg.read_ms = -1;
  s->cfg.connect_ms = 0;
  s->cfg.max_body = -1;
  s->cfg.http_version = CURL_HTTP_VERSION_2TLS;
  s->cfg.verify = 1;
  s->cfg.decompress = 1;
  s->cfg.follow = 0;
  read_cfg(L, opts, &s->cfg, "session");
  s->cfg.stream = 0;
  copy_str(L, &s->cafile, &s->cfg.cafile);
  copy_str(L, &s->proxy, &s->cfg.proxy);
  static const char *const proxy_vars[] = {
    "http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
    NULL
  };
  for (int i = 0; proxy_vars[i] != NULL; i++) {
    const char *v = getenv(proxy_vars[i]);
    if (v != NULL && *v != '\0') s->env_proxy = 1;
  }
  if (field(L, opts, "headers") == LUA_TTABLE) {
    int err;
    s->headers = header_list(L, "session", &err);
    if (err) return luaL_error(L, "session: not enough memory");
  }
  lua_pop(L, 1);
  s->multi = C->multi_init();
  if (s->multi == NULL) return luaL_error(L, "session: not enough memory");
  if (uv_timer_init(s->loop, &s->timer) != 0) {
    C->multi_cleanup(s->multi);
    return luaL_error(L, "session: cannot make a timer");
  }
  s->timer.data = s;
  s->refs++;  /* the timer's, until its close callback */
  s->closed = 0;
  uv_unref((uv_handle_t *)&s->timer);
  s->closer.close = session_closer;
  loom__add_closer(lm, &s->closer);
  CURLM *m = s->multi;
  C->multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_socket);
  C->multi_setopt(m, CURLMOPT_SOCKETDATA, s);
  C->multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_timer_set);
  C->multi_setopt(m, CURLMOPT_TIMERDATA, s);
  lua_Integer n;
  long idle = IDLE_CONNECTIONS;
  if (field(L, opts, "max_connections") == LUA_TNUMBER &&
      (n = lua_tointeger(L, -1)) > 0) {
    C->multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)n);
    if (n > idle) idle = n > 100000 ? 100000 : (long)n;
  }
  lua_pop(L, 1);
  /* curl's own bound is 4 per easy handle in the multi at the moment a
  ** connection is returned: it closed kept-alive connections whenever a
  ** burst of transfers ended together (714 connects for 20,000 GETs at
  ** 64 in flight, against 64) */
  C->multi_setopt(m, CURLMOPT_MAXCONNECTS, idle);
  if (field(L, opts, "max_per_host") == LUA_TNUMBER &&
      (n = lua_tointeger(L, -1)) > 0)
    C->multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)n);
  lua_pop(L, 1);
  if (field(L, opts, "cookies") != LUA_TNIL && lua_toboolean(L, -1)) {
    s->share = C->share_init();
    if (s->share == NULL ||
        C->share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_COOKIE))
      return luaL_error(L, "session: cannot make a cookie jar");
  }
  lua_pop(L, 1);
  return 1;
}

/* session:close(): its requests fail, its connections close. */
static int l_session_close(lua_State *L) {
  hstate *hs = getstate(L);
  session_ud *u = loom__type_test(L, 1, &hs->session_type, SESSION_TAG);
  if (u == NULL) return luaL_typeerror(L, 1, "loom.http session");
  if (u->s != NULL) {
    session *s = u->s;
    u->s = NULL;
    s->owner = NULL;
    session_teardown(s, 1);
    session_unref(s);
  }
  return 0;
}

/* ---- URLs ----------------------------------------------------------- */

static int push_lower(lua_State *L, const char *p) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (; *p; p++)
    luaL_addchar(&b, (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p));
  luaL_pushresult(&b);
  return 1;
}

/* origin(url): "scheme://host:port" (lower case, the port filled in), or
** nil if curl cannot parse url. */
static int l_origin(lua_State *L) {
  const char *u = luaL_checkstring(L, 1);
  CURLU *h = C->url();
  char *scheme = NULL, *host = NULL, *port = NULL;
  int ok = 0;
  if (h == NULL) return luaL_error(L, "origin: not enough memory");
  if (C->url_set(h, CURLUPART_URL, u, 0) == CURLUE_OK &&
      C->url_get(h, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
      C->url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
      C->url_get(h, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
    ok = 1;
  if (ok) {
    lua_pushfstring(L, "%s://%s:%s", scheme, host, port);
    lua_replace(L, 1);
  }
  C->free(scheme);
  C->free(host);
  C->free(port);
  C->url_cleanup(h);
  if (!ok) return 0;
  return push_lower(L, lua_tostring(L, 1));
}

/* join(base, ref): ref resolved against base (as a redirect is), or nil
** and curl's reason. */
static int l_join(lua_State *L) {
  const char *base = luaL_checkstring(L, 1);
  const char *ref = luaL_checkstring(L, 2);
  CURLU *h = C->url();
  char *out = NULL;
  CURLUcode uc;
  if (h == NULL) return luaL_error(L, "join: not enough memory");
  uc = C->url_set(h, CURLUPART_URL, base, 0);
  if (uc == CURLUE_OK) uc = C->url_set(h, CURLUPART_URL, ref, 0);
  if (uc == CURLUE_OK) uc = C->url_get(h, CURLUPART_URL, &out, 0);
  C->url_cleanup(h);
  if (uc != CURLUE_OK) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot resolve '%s' against '%s'", ref, base);
    return 2;
  }
  lua_pushstring(L, out);
  C->free(out);
  return 1;
}

/* ---- the module ----------------------------------------------------- */

static void set_ref(lua_State *L, int *ref) {
  if (*ref == LUA_NOREF) *ref = luaL_ref(L, LUA_REGISTRYINDEX);
  else lua_rawseti(L, LUA_REGISTRYINDEX, *ref);
}

/* set_response_mt(mt [, heads]): responses get metatable mt; with heads
** (a weak-keyed table), their header block goes there instead of being
** parsed (see parse_head). */
static int l_set_response_mt(lua_State *L) {
  hstate *hs = getstate(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 2);
  if (lua_istable(L, 2)) set_ref(L, &hs->heads_ref);
  else lua_pop(L, 1);
  set_ref(L, &hs->response_ref);
  return 0;
}

/* parse_head(block, status): headers, header_list, reason. */
static int l_parse_head(lua_State *L) {
  hbuf h;
  size_t len;
  h.p = (char *)luaL_checklstring(L, 1, &len);
  h.len = h.cap = len;
  long code = (long)luaL_optinteger(L, 2, 0);
  lua_settop(L, 0);
  lua_createtable(L, 0, 3);
  push_headers(L, &h, code);
  lua_getfield(L, 1, "headers");
  lua_getfield(L, 1, "header_list");
  lua_getfield(L, 1, "reason");
  return 3;
}

/* version(): libcurl's version, and the Accept-Encoding it decodes. */
static int l_version(lua_State *L) {
  curl_version_info_data *v = C->version_info(CURLVERSION_NOW);
  lua_pushstring(L, v && v->version ? v->version : "?");
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (v && (v->features & CURL_VERSION_LIBZ))
    luaL_addstring(&b, "deflate, gzip");
  if (v && (v->features & CURL_VERSION_BROTLI))
    luaL_addstring(&b, luaL_bufflen(&b) ? ", br" : "br");
  if (v && (v->features & CURL_VERSION_ZSTD))
    luaL_addstring(&b, luaL_bufflen(&b) ? ", zstd" : "zstd");
  luaL_pushresult(&b);
  return 2;
}

static void setfuncs(lua_State *L, int state, const luaL_Reg *fns) {
  for (; fns->name != NULL; fns++) {
    loom__push_box(L);
    lua_pushvalue(L, state);
    lua_pushcclosure(L, fns->func, 2);
    lua_setfield(L, -2, fns->name);
  }
}

static void make_type(lua_State *L, int state, loom__type *ty,
                      const char *name, size_t size, const luaL_Reg *mm) {
  lua_createtable(L, 0, 4);
  setfuncs(L, state, mm);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pushliteral(L, "not yours");
  lua_setfield(L, -2, "__metatable");
  ty->name = name;
  loom__type_init(L, ty, size);
  lua_pop(L, 1);
}

int luaopen_loom_http_core(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"session", l_session}, {"perform", l_perform},
    {"close_session", l_session_close}, {"read", l_read},
    {"close", l_close}, {"received", l_received}, {"origin", l_origin},
    {"join", l_join}, {"set_response_mt", l_set_response_mt},
    {"parse_head", l_parse_head},
    {"version", l_version}, {NULL, NULL}
  };
  static const luaL_Reg session_mm[] = { {"__gc", session_gc},
                                         {NULL, NULL} };
  static const luaL_Reg handle_mm[] = { {"__gc", handle_gc},
                                        {"__close", handle_close},
                                        {NULL, NULL} };
  static const luaL_Reg guard_mm[] = { {"__close", handle_close},
                                       {NULL, NULL} };
  const char *why = NULL;
  if (loom_get(L) == NULL)
    return luaL_error(L, "loom.http: require \"loom\" first");
  C = loom__curl_load(&why);
  if (C == NULL) return luaL_error(L, "loom.http: %s", why);
  hstate *hs = lua_newuserdatauv(L, sizeof *hs, 0);
  memset(hs, 0, sizeof *hs);
  hs->response_ref = LUA_NOREF;
  hs->heads_ref = LUA_NOREF;
  int state = lua_gettop(L);
  lua_pushvalue(L, state);
  lua_rawsetp(L, LUA_REGISTRYINDEX, (void *)&C);  /* anchored for good */
  make_type(L, state, &hs->session_type, "loom.http.Session",
            sizeof(session_ud), session_mm);
  make_type(L, state, &hs->handle_type, "loom.http.Transfer",
            sizeof(xhandle), handle_mm);
  make_type(L, state, &hs->guard_type, "loom.http.Guard", sizeof(xhandle),
            guard_mm);
  lua_createtable(L, 0, 12);
  setfuncs(L, state, fns);
  return 1;
}
