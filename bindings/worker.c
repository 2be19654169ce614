/*
** worker.c: loom.worker.to_thread (also loom.to_thread) and
** loom.worker.size: a Lua function run
** in a worker thread with a Lua state of its own, so CPU-heavy or
** blocking work does not freeze the loop.
**
** The function travels as its bytecode (lua_dump), so it must be
** self-contained: any upvalue but _ENV is refused (the worker's globals
** take _ENV's place). Arguments and results are copied, encoded as bytes:
** nil, booleans, numbers, strings and plain tables (no metatable, no
** cycles); anything else is refused with an error naming it.
**
** The pool: up to as many threads as the machine has cores (LOOM_WORKERS
** overrides), started as jobs need them, each with its own lua_State kept
** for the next jobs, fed from one FIFO queue under a mutex. A finished job
** goes on a done list, and a uv_async_t tells the loop, which wakes its
** task. A job whose task is cancelled is dropped from the queue if it has
** not started; if it runs, a count hook in the worker raises at the next
** thousand instructions (a blocking C call finishes first), and the job
** is freed when it ends. The async handle keeps the loop alive only while
** some task waits for a job. When the runtime closes, queued jobs are
** dropped, running ones are told to stop, and the threads are joined.
*/
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "io.h"

#define MAX_DEPTH 100        /* nesting of tables sent */
#define HOOK_EVERY 1000      /* instructions between cancellation checks */
#define CODE_CACHE 64        /* functions a worker keeps loaded */

enum { J_QUEUED, J_RUNNING, J_DONE };

typedef struct pool pool;

typedef struct job {
  struct job *next;
  loom__link delivered;     /* in the pool's, once woken, until run_k */
  pool *p;
  loom_task_t *task;        /* NULL once its task let go */
  char *code;               /* the function's bytecode */
  size_t codelen;
  char *args;               /* the encoded arguments */
  size_t argslen;
  int nargs;
  char *res;                /* the encoded results, or error */
  size_t reslen;
  int nres;
  int failed;
  int state;                /* J_*, under the pool's mutex */
  int cancel;               /* atomic: the worker should stop */
} job;

struct pool {
  uv_mutex_t mu;
  uv_cond_t cv;
  job *head, *tail;         /* queued */
  job *done;                /* finished, for the loop */
  loom__link delivered;     /* finished, their tasks woken, not yet run */
  uv_async_t *async;
  uv_thread_t *threads;
  int size, started, idle, quit;
  int queued;               /* jobs in the queue */
  int waiting;              /* jobs a task waits for */
  loom_t *lm;
  loom__io *io;
  loom__closer closer;
};

static void job_free(job *j) {
  loom__link_unlink(&j->delivered);
  free(j->code);
  free(j->args);
  free(j->res);
  free(j);
}

/* ---- encoding values ------------------------------------------------ */

typedef struct mbuf { char *p; size_t len, cap; } mbuf;

static int mput(mbuf *m, const void *p, size_t n) {
  if (m->len + n > m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 256;
    while (cap < m->len + n) cap *= 2;
    char *np = realloc(m->p, cap);
    if (np == NULL) return -1;
    m->p = np;
    m->cap = cap;
  }
  memcpy(m->p + m->len, p, n);
  m->len += n;
  return 0;
}

/* Raises, naming what ("argument #2"), if the value at idx cannot be
** sent. Run before encoding, which then cannot fail but for memory. */
static void check_value(lua_State *L, int idx, int depth, const char *fname,
                        const char *what) {
  switch (lua_type(L, idx)) {
    case LUA_TNIL: case LUA_TBOOLEAN: case LUA_TNUMBER: case LUA_TSTRING:
      return;
    case LUA_TTABLE:
      if (depth > MAX_DEPTH)
        luaL_error(L, "%s: %s is nested too deeply (or has a cycle)", fname,
                   what);
      if (lua_getmetatable(L, idx))
        luaL_error(L, "%s: %s is a table with a metatable (only plain "
                   "tables can be sent)", fname, what);
      luaL_checkstack(L, 4, "too deep");
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        check_value(L, lua_absindex(L, -2), depth + 1, fname, what);
        check_value(L, lua_absindex(L, -1), depth + 1, fname, what);
        lua_pop(L, 1);
      }
      return;
    default:
      luaL_error(L, "%s: %s is or holds a %s (only nil, booleans, numbers, "
                 "strings and plain tables can be sent)", fname, what,
                 luaL_typename(L, idx));
  }
}

/* Appends the (checked) value at idx; -1 if out of memory. */
static int put_value(lua_State *L, mbuf *m, int idx) {
  char tag;
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      return mput(m, "n", 1);
    case LUA_TBOOLEAN:
      return mput(m, lua_toboolean(L, idx) ? "t" : "f", 1);
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        tag = 'i';
        return mput(m, &tag, 1) || mput(m, &i, sizeof i) ? -1 : 0;
      } else {
        lua_Number d = lua_tonumber(L, idx);
        tag = 'd';
        return mput(m, &tag, 1) || mput(m, &d, sizeof d) ? -1 : 0;
      }
    case LUA_TSTRING: {
      size_t len;
      const char *str = lua_tolstring(L, idx, &len);
      tag = 's';
      return mput(m, &tag, 1) || mput(m, &len, sizeof len) ||
             mput(m, str, len) ? -1 : 0;
    }
    default: {  /* a table, checked: its stack room was made then */
      int r = mput(m, "T", 1);
      lua_pushnil(L);
      while (r == 0 && lua_next(L, idx)) {
        r = put_value(L, m, lua_absindex(L, -2));
        if (r == 0) r = put_value(L, m, lua_absindex(L, -1));
        lua_pop(L, 1);
      }
      if (r != 0) {
        lua_pop(L, 1);  /* the key lua_next left */
        return -1;
      }
      return mput(m, "E", 1);
    }
  }
}

/* Encodes n values from idx into a malloc'd block. Raises (before any
** allocation) on a value that cannot be sent, naming it. */
static char *encode_values(lua_State *L, int idx, int n, size_t *len,
                           const char *fname, int first_arg) {
  for (int i = 0; i < n; i++) {
    char what[48];
    if (first_arg > 0) snprintf(what, sizeof what, "argument #%d",
                                first_arg + i);
    else snprintf(what, sizeof what, "result #%d", i + 1);
    check_value(L, idx + i, 0, fname, what);
  }
  mbuf m = { NULL, 0, 0 };
  int r = 0;
  for (int i = 0; i < n && r == 0; i++) r = put_value(L, &m, idx + i);
  if (r == 0 && m.p == NULL) r = mput(&m, "n", 1) ? -1 : 0;  /* not NULL */
  if (r != 0) {
    free(m.p);
    luaL_error(L, "%s: not enough memory", fname);
  }
  *len = m.len;
  return m.p;
}

typedef struct reader { const char *p, *end; } reader;

static int decode(lua_State *L, reader *r);

static int get(reader *r, void *out, size_t n) {
  if ((size_t)(r->end - r->p) < n) return 0;
  memcpy(out, r->p, n);
  r->p += n;
  return 1;
}

/* Pushes the next value; returns 0 on a malformed block. */
static int decode(lua_State *L, reader *r) {
  luaL_checkstack(L, 3, "too deep");
  if (r->p >= r->end) return 0;
  switch (*r->p++) {
    case 'n': lua_pushnil(L); return 1;
    case 't': lua_pushboolean(L, 1); return 1;
    case 'f': lua_pushboolean(L, 0); return 1;
    case 'i': {
      lua_Integer i;
      if (!get(r, &i, sizeof i)) return 0;
      lua_pushinteger(L, i);
      return 1;
    }
    case 'd': {
      lua_Number d;
      if (!get(r, &d, sizeof d)) return 0;
      lua_pushnumber(L, d);
      return 1;
    }
    case 's': {
      size_t len;
      if (!get(r, &len, sizeof len) || (size_t)(r->end - r->p) < len)
        return 0;
      lua_pushlstring(L, r->p, len);
      r->p += len;
      return 1;
    }
    case 'T':
      lua_newtable(L);
      while (r->p < r->end && *r->p != 'E') {
        if (!decode(L, r) || !decode(L, r)) return 0;
        lua_rawset(L, -3);
      }
      if (r->p >= r->end) return 0;
      r->p++;
      return 1;
    default:
      return 0;
  }
}

static int decode_values(lua_State *L, const char *p, size_t len, int n) {
  reader r = { p, p + len };
  luaL_checkstack(L, n + LUA_MINSTACK, "too many values");
  for (int i = 0; i < n; i++)
    if (!decode(L, &r)) return luaL_error(L, "to_thread: bad values");
  return n;
}

/* ---- in the worker thread ------------------------------------------- */

static void stop_hook(lua_State *W, lua_Debug *ar) {
  job *j = *(job **)lua_getextraspace(W);
  (void)ar;
  if (j != NULL && (__atomic_load_n(&j->cancel, __ATOMIC_RELAXED) ||
                    __atomic_load_n(&j->p->quit, __ATOMIC_RELAXED)))
    luaL_error(W, "to_thread: cancelled");
}

/* Errors become values that can travel: a string, or a plain value, or
** the text of anything else. */
static int msgh(lua_State *W) {
  int t = lua_type(W, 1);
  if (t == LUA_TSTRING || t == LUA_TNUMBER || t == LUA_TBOOLEAN ||
      t == LUA_TNIL || (t == LUA_TTABLE && !lua_getmetatable(W, 1)))
    return 1;
  luaL_tolstring(W, 1, NULL);
  return 1;
}

/* [job] -> runs it, leaving its encoded results in it (under pcall) */
static int run_protected(lua_State *W) {
  job *j = lua_touserdata(W, 1);
  lua_settop(W, 0);
  /* the function, loaded once per worker */
  lua_pushlstring(W, j->code, j->codelen);
  if (lua_rawget(W, LUA_REGISTRYINDEX) != LUA_TFUNCTION) {
    lua_pop(W, 1);
    lua_getfield(W, LUA_REGISTRYINDEX, "loom.worker.count");
    lua_Integer cached = lua_tointeger(W, -1);
    lua_pop(W, 1);
    if (luaL_loadbufferx(W, j->code, j->codelen, "=to_thread", "b"))
      return lua_error(W);
    if (cached >= CODE_CACHE) cached = 0;  /* forgotten: GC takes them */
    lua_pushlstring(W, j->code, j->codelen);
    lua_pushvalue(W, -2);
    lua_rawset(W, LUA_REGISTRYINDEX);
    lua_pushinteger(W, cached + 1);
    lua_setfield(W, LUA_REGISTRYINDEX, "loom.worker.count");
  }
  lua_pushcfunction(W, msgh);
  lua_insert(W, 1);
  decode_values(W, j->args, j->argslen, j->nargs);
  *(job **)lua_getextraspace(W) = j;
  lua_sethook(W, stop_hook, LUA_MASKCOUNT, HOOK_EVERY);
  int st = lua_pcall(W, j->nargs, LUA_MULTRET, 1);
  lua_sethook(W, NULL, 0, 0);
  *(job **)lua_getextraspace(W) = NULL;
  int n = lua_gettop(W) - 1;
  if (st != LUA_OK) {
    j->failed = 1;
    j->nres = 1;
    j->res = encode_values(W, 2, 1, &j->reslen, "to_thread", 0);
  } else {
    j->nres = n;
    j->res = encode_values(W, 2, n, &j->reslen, "to_thread", 0);
  }
  return 0;
}

static void run_job(lua_State *W, job *j) {
  lua_pushcfunction(W, run_protected);
  lua_pushlightuserdata(W, j);
  if (lua_pcall(W, 1, 0, 0) != LUA_OK) {  /* load, decode or encode */
    size_t len;
    const char *msg = lua_tolstring(W, -1, &len);
    free(j->res);
    j->failed = 1;
    j->nres = 1;
    j->res = malloc(len + 1 + sizeof len);
    if (j->res != NULL) {
      j->res[0] = 's';
      memcpy(j->res + 1, &len, sizeof len);
      memcpy(j->res + 1 + sizeof len, msg ? msg : "", msg ? len : 0);
      j->reslen = len + 1 + sizeof len;
    } else {
      j->nres = 0;
    }
    lua_settop(W, 0);
  }
  lua_gc(W, LUA_GCSTEP, 0);
}

static void worker_main(void *arg) {
  pool *p = arg;
  lua_State *W = NULL;
  uv_mutex_lock(&p->mu);
  for (;;) {
    while (p->head == NULL && !p->quit) {
      p->idle++;
      uv_cond_wait(&p->cv, &p->mu);
      p->idle--;
    }
    if (p->head == NULL) break;  /* quit */
    job *j = p->head;
    p->head = j->next;
    if (p->head == NULL) p->tail = NULL;
    p->queued--;
    j->state = J_RUNNING;
    uv_mutex_unlock(&p->mu);
    if (W == NULL && (W = luaL_newstate()) != NULL) {
      luaL_openlibs(W);
      *(job **)lua_getextraspace(W) = NULL;
    }
    if (W != NULL) {
      run_job(W, j);
    } else {
      j->failed = 1;  /* no state: no results, an error with no text */
      j->nres = 0;
    }
    uv_mutex_lock(&p->mu);
    j->state = J_DONE;
    j->next = p->done;
    p->done = j;
    if (p->async != NULL) uv_async_send(p->async);
  }
  uv_mutex_unlock(&p->mu);
  if (W != NULL) lua_close(W);
}

/* ---- on the loop ---------------------------------------------------- */

static void unwait(pool *p) {
  if (--p->waiting == 0 && p->async != NULL)
    uv_unref((uv_handle_t *)p->async);
}

static void on_done(uv_async_t *h) {
  pool *p = h->data;
  uv_mutex_lock(&p->mu);
  job *j = p->done;
  p->done = NULL;
  uv_mutex_unlock(&p->mu);
  while (j != NULL) {
    job *next = j->next;
    loom__io_count(p->lm, &p->io->requests, -1);
    if (j->task == NULL) {
      job_free(j);
    } else {
      unwait(p);
      loom__link_push(&p->delivered, &j->delivered);
      loom__wake(j->task);  /* the continuation owns it now */
    }
    j = next;
  }
}

static void job_cancel(loom_task_t *t, void *data, int woken) {
  job *j = data;
  pool *p = j->p;
  (void)t;
  /* done (detached: if it was delivered): the continuation will not run */
  if (woken == 1 ||
      (woken == LOOM_WAIT_DETACHED && j->delivered.next != NULL)) {
    job_free(j);
    return;
  }
  unwait(p);
  uv_mutex_lock(&p->mu);
  if (j->state == J_QUEUED) {  /* never started: drop it */
    job **pp = &p->head;
    while (*pp != j) pp = &(*pp)->next;
    *pp = j->next;
    p->queued--;
    if (p->tail == j) {
      p->tail = NULL;
      for (job *q = p->head; q; q = q->next) p->tail = q;
    }
    uv_mutex_unlock(&p->mu);
    loom__io_count(p->lm, &p->io->requests, -1);
    job_free(j);
    return;
  }
  j->task = NULL;  /* running: stop it; freed once it ends */
  __atomic_store_n(&j->cancel, 1, __ATOMIC_RELAXED);
  uv_mutex_unlock(&p->mu);
}

static const loom__wait job_wait = { "a worker thread", job_cancel, NULL };

static void on_async_closed(uv_handle_t *h) {
  free(h);
}

/* The runtime closes: drop what is queued, stop what runs (the hook of
** a running job sees quit), join the threads. */
static void pool_close(loom_t *lm, loom__closer *c) {
  pool *p = (pool *)((char *)c - offsetof(pool, closer));
  uv_mutex_lock(&p->mu);
  while (p->head != NULL) {
    job *j = p->head;
    p->head = j->next;
    job_free(j);
  }
  p->tail = NULL;
  __atomic_store_n(&p->quit, 1, __ATOMIC_RELAXED);
  uv_cond_broadcast(&p->cv);
  uv_mutex_unlock(&p->mu);
  for (int i = 0; i < p->started; i++) uv_thread_join(&p->threads[i]);
  while (p->done != NULL) {
    job *j = p->done;
    p->done = j->next;
    job_free(j);
  }
  while (!loom__list_empty(&p->delivered))  /* never to be run */
    job_free((job *)((char *)p->delivered.next - offsetof(job, delivered)));
  loom__close_handle(lm, (uv_handle_t *)p->async, on_async_closed);
  p->async = NULL;
  uv_cond_destroy(&p->cv);
  uv_mutex_destroy(&p->mu);
  free(p->threads);
  p->io->workers = NULL;
  free(p);
}

static int pool_size(void) {
  const char *env = getenv("LOOM_WORKERS");
  int n = env ? atoi(env) : 0;
  if (n <= 0) n = (int)uv_available_parallelism();
  if (n < 1) n = 1;
  if (n > 256) n = 256;
  return n;
}

static pool *pool_of(lua_State *L, loom__io *io) {
  if (io->workers != NULL) return io->workers;
  pool *p = calloc(1, sizeof *p);
  if (p == NULL) luaL_error(L, "to_thread: not enough memory");
  p->size = pool_size();
  p->threads = calloc((size_t)p->size, sizeof *p->threads);
  p->async = malloc(sizeof *p->async);
  if (p->threads == NULL || p->async == NULL ||
      uv_async_init(loom_loop(io->lm), p->async, on_done) != 0) {
    free(p->threads);
    free(p->async);
    free(p);
    luaL_error(L, "to_thread: cannot start the worker pool");
  }
  p->async->data = p;
  uv_unref((uv_handle_t *)p->async);
  uv_mutex_init(&p->mu);
  uv_cond_init(&p->cv);
  loom__list_init(&p->delivered);
  p->lm = io->lm;
  p->io = io;
  p->closer.close = pool_close;
  loom__add_closer(io->lm, &p->closer);
  io->workers = p;
  return p;
}

/* ---- loom.to_thread ------------------------------------------------- */

static int run_k(lua_State *L, int status, lua_KContext ctx) {
  job *j = (job *)ctx;
  (void)status;
  loom__resumed(L, loom__up(L));  /* cancelled: the hook let go */
  int failed = j->failed, n = j->nres;
  lua_pushlstring(L, j->res ? j->res : "", j->reslen);
  job_free(j);
  size_t len;
  const char *p = lua_tolstring(L, -1, &len);
  int top = lua_gettop(L);
  if (failed) {
    if (n == 0) return luaL_error(L, "to_thread: the worker failed");
    decode_values(L, p, len, 1);
    return lua_error(L);
  }
  decode_values(L, p, len, n);
  return lua_gettop(L) - top;
}

/* lua_dump's writer: into malloc'd memory (a luaL_Buffer would have to be
** on top of the stack, where the function must be) */
static int dump_writer(lua_State *L, const void *p, size_t n, void *ud) {
  mbuf *m = ud;
  (void)L;
  if (m->len + n > m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 1024;
    while (cap < m->len + n) cap *= 2;
    char *np = realloc(m->p, cap);
    if (np == NULL) return 1;
    m->p = np;
    m->cap = cap;
  }
  memcpy(m->p + m->len, p, n);
  m->len += n;
  return 0;
}

static int l_run(lua_State *L) {
  const char *fname = "to_thread";
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (lua_iscfunction(L, 1))
    return luaL_error(L, "%s: a C function cannot run in a worker (call "
                      "it from a Lua function)", fname);
  for (int i = 1; ; i++) {
    const char *name = lua_getupvalue(L, 1, i);
    if (name == NULL) break;
    lua_pop(L, 1);
    if (strcmp(name, "_ENV") != 0 || i != 1)
      return luaL_error(L, "%s: the function uses upvalue '%s' (a worker "
                        "has its own Lua state: pass values as arguments)",
                        fname, *name ? name : "?");
  }
  int nargs = lua_gettop(L) - 1;
  loom_t *lm = loom__up(L);
  loom_task_t *t = loom__prepare_suspend(L, lm, fname);
  pool *p = pool_of(L, loom__io_get(L));
  size_t argslen;
  char *args = encode_values(L, 2, nargs, &argslen, fname, 2);
  mbuf code = { NULL, 0, 0 };
  lua_pushvalue(L, 1);
  int bad = lua_dump(L, dump_writer, &code, 0);
  job *j = bad ? NULL : calloc(1, sizeof *j);
  if (j == NULL) {
    free(code.p);
    free(args);
    return luaL_error(L, "%s: not enough memory", fname);
  }
  j->p = p;
  j->code = code.p;
  j->codelen = code.len;
  j->args = args;
  j->argslen = argslen;
  j->nargs = nargs;
  j->task = t;
  j->state = J_QUEUED;
  uv_mutex_lock(&p->mu);
  if (p->tail) p->tail->next = j;
  else p->head = j;
  p->tail = j;
  /* an idle thread signalled may not have woken yet: count the queue */
  p->queued++;
  int start = p->queued > p->idle && p->started < p->size;
  if (!start) uv_cond_signal(&p->cv);
  uv_mutex_unlock(&p->mu);
  if (start && uv_thread_create(&p->threads[p->started], worker_main,
                                p) == 0)
    p->started++;
  if (p->waiting++ == 0) uv_ref((uv_handle_t *)p->async);
  p->io->requests++;
  lua_settop(L, 0);
  return loom__suspend(L, lm, &job_wait, j, (lua_KContext)j, run_k);
}

static int l_size(lua_State *L) {
  loom__io *io = loom__io_get(L);
  lua_pushinteger(L, io->workers ? ((pool *)io->workers)->size
                                 : pool_size());
  return 1;
}

int luaopen_loom_worker(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"to_thread", l_run}, {"size", l_size}, {NULL, NULL}
  };
  if (loom_get(L) == NULL)
    return luaL_error(L, "loom.worker: require \"loom\" first");
  lua_createtable(L, 0, 2);
  loom__setfuncs(L, fns);
  return 1;
}
