/*
** post.c: loom_post, loom_acquire and loom_release: handing work to the
** loop thread from any thread.
**
** One uv_async_t per runtime and a queue under a mutex. A post appends
** to the queue and, if it was empty, wakes the loop; the async callback
** swaps the queue for an empty buffer (so posters never wait for the fns
** to run) and runs the whole batch in order, under one protected call.
** Posts made while a batch runs go to the next one. The two buffers are
** kept and reused, so a steady stream of posts does not allocate.
**
** The async handle is referenced while a thread holds the runtime
** (loom_acquire), so the loop waits for that thread, and while posts are
** queued as far as the loop thread knows (a post made on it, loom_run
** before it runs the loop, each batch after it ran), so a post made while
** the loop was stopped still runs; otherwise it is unreferenced, so a
** runtime nobody posts to never keeps the loop running. (Another thread
** cannot reference it: uv_ref is for the loop's thread.)
**
** Lifetime: the queue lives as long as lm's memory. When the runtime
** closes, posts still queued get fn(NULL, ud) and later posts are refused;
** once the runtime is done, lm is freed then, or by the last loom_release
** if a thread still holds it.
*/
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct post_item {
  loom_post_fn fn;
  void *ud;
} post_item;

typedef struct post_buf {
  post_item *items;
  size_t count, cap;
} post_buf;

typedef struct loom__post {
  uv_mutex_t lock;
  uv_async_t async;
  loom__closer closer;
  post_buf queue;  /* under lock: posted, not run yet */
  int holds;       /* under lock: loom_acquire's, not yet released */
  int closing;     /* under lock: the runtime is closing, posts refused */
  int done;        /* under lock: the runtime is freed but for lm */
  uv_thread_t loop_thread;  /* under lock: lm->loop_thread's copy */
  /* the loop thread's own: */
  post_buf batch;  /* the batch being run */
  size_t next;     /* its next item */
  int refd;        /* the async handle is referenced */
  int busy;        /* running fns */
} loom__post;

/* ---- from any thread ------------------------------------------------ */

static int grow(post_buf *b) {
  size_t cap = b->cap ? b->cap * 2 : 64;
  post_item *items = realloc(b->items, cap * sizeof *items);
  if (items == NULL) return UV_ENOMEM;
  b->items = items;
  b->cap = cap;
  return 0;
}

static void update_ref(loom__post *p);

LOOM_API int loom_post(loom_t *lm, void (*fn)(loom_t *lm, void *ud),
                       void *ud) {
  loom__post *p = lm->post;
  uv_thread_t self = uv_thread_self();
  int r = 0, on_loop;
  if (fn == NULL) return UV_EINVAL;
  uv_mutex_lock(&p->lock);
  on_loop = uv_thread_equal(&self, &p->loop_thread);
  if (p->closing) {
    r = LOOM_ECLOSED;
  } else if (p->queue.count < p->queue.cap || (r = grow(&p->queue)) == 0) {
    p->queue.items[p->queue.count].fn = fn;
    p->queue.items[p->queue.count].ud = ud;
    /* the first of a batch wakes the loop; under the lock, so the handle
    ** cannot be closing meanwhile */
    if (p->queue.count++ == 0) uv_async_send(&p->async);
  }
  uv_mutex_unlock(&p->lock);
  if (r == 0 && on_loop) update_ref(p);  /* the loop now has work */
  return r;
}

static void destroy(loom_t *lm) {
  loom__post *p = lm->post;
  uv_mutex_destroy(&p->lock);
  free(p->queue.items);
  free(p->batch.items);
  free(p);
  free(lm);
}

LOOM_API void loom_release(loom_t *lm) {
  loom__post *p = lm->post;
  int last = 0;
  uv_mutex_lock(&p->lock);
  assert(p->holds > 0);  /* a release without its acquire */
  if (p->holds > 0 && --p->holds == 0) {
    if (p->done) last = 1;
    else if (!p->closing) uv_async_send(&p->async);  /* to unref it */
  }
  uv_mutex_unlock(&p->lock);
  if (last) destroy(lm);
}

/* ---- on the loop thread --------------------------------------------- */

/* References the async handle while a thread holds the runtime or posts
** wait. */
static void update_ref(loom__post *p) {
  uv_mutex_lock(&p->lock);
  int want = p->holds > 0 || p->queue.count > 0, closing = p->closing;
  uv_mutex_unlock(&p->lock);
  if (closing || want == p->refd) return;
  p->refd = want;
  if (want) uv_ref((uv_handle_t *)&p->async);
  else uv_unref((uv_handle_t *)&p->async);
}

LOOM_API int loom_acquire(loom_t *lm) {
  loom__post *p = lm->post;
  int r = 0;
  assert(loom__on_loop_thread(lm));
  uv_mutex_lock(&p->lock);
  if (p->closing) r = LOOM_ECLOSED;
  else p->holds++;
  uv_mutex_unlock(&p->lock);
  if (r == 0) update_ref(p);
  return r;
}

/* A posted fn raised: the error (on top of L) goes to the report hook. */
static void report_raised(loom_t *lm, lua_State *L) {
  static const char prefix[] = "error in a function given to loom_post: ";
  int own = loom_push_errmsg(L, -1);
  const char *msg = own < 0 ? "(no room to say)" : lua_tostring(L, -1);
  size_t len = sizeof prefix + strlen(msg);
  char *text = malloc(len);
  if (text != NULL) snprintf(text, len, "%s%s", prefix, msg);
  lm->reported++;
  lm->reported_total++;
  lm->report(lm, text ? text : msg, lm->report_ud);
  free(text);
  lua_settop(L, lua_gettop(L) - (own < 0 ? 1 : 2));
}

/* [p, lm] -> []: runs the batch on from p->next. */
static int run_protected(lua_State *L) {
  loom__post *p = lua_touserdata(L, 1);
  loom_t *lm = lua_touserdata(L, 2);
  while (p->next < p->batch.count) {
    post_item *it = &p->batch.items[p->next++];
    it->fn(lm, it->ud);
  }
  return 0;
}

static void run_batch(loom_t *lm, loom__post *p) {
  lua_State *L = lm->L;
  p->next = 0;
  p->busy = 1;
  while (p->next < p->batch.count) {
    if (!lua_checkstack(L, LUA_MINSTACK)) {  /* no room: run them bare */
      for (; p->next < p->batch.count; p->next++)
        p->batch.items[p->next].fn(lm, p->batch.items[p->next].ud);
      break;
    }
    lua_pushcfunction(L, run_protected);
    lua_pushlightuserdata(L, p);
    lua_pushlightuserdata(L, lm);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) report_raised(lm, L);
  }
  p->busy = 0;
  p->batch.count = 0;
}

static void on_async(uv_async_t *h) {
  loom_t *lm = h->data;
  loom__post *p = lm->post;
  post_buf spare = p->batch;
  uv_mutex_lock(&p->lock);
  p->batch = p->queue;
  p->queue = spare;
  p->queue.count = 0;
  uv_mutex_unlock(&p->lock);
  run_batch(lm, p);
  update_ref(p);
}

void loom__post_prepare(loom_t *lm) {
  loom__post *p = lm->post;
  if (p == NULL) return;
  uv_mutex_lock(&p->lock);
  p->loop_thread = lm->loop_thread;
  uv_mutex_unlock(&p->lock);
  update_ref(p);
}

int loom__post_busy(loom_t *lm) {
  return lm->post != NULL && lm->post->busy;
}

/* The runtime closes: what is queued is told so, later posts refused. */
static void close_post(loom_t *lm, loom__closer *closer) {
  loom__post *p = lm->post;
  (void)closer;
  uv_mutex_lock(&p->lock);
  p->closing = 1;
  post_buf left = p->queue;
  p->queue.items = NULL;
  p->queue.count = p->queue.cap = 0;
  uv_mutex_unlock(&p->lock);
  for (size_t i = 0; i < left.count; i++) left.items[i].fn(NULL,
                                                           left.items[i].ud);
  free(left.items);
  loom__close_handle(lm, (uv_handle_t *)&p->async, NULL);
}

int loom__post_init(loom_t *lm) {
  loom__post *p = calloc(1, sizeof *p);
  if (p == NULL) return UV_ENOMEM;
  int r = uv_mutex_init(&p->lock);
  if (r != 0) {
    free(p);
    return r;
  }
  r = uv_async_init(lm->loop, &p->async, on_async);
  if (r != 0) {
    uv_mutex_destroy(&p->lock);
    free(p);
    return r;
  }
  p->async.data = lm;
  p->loop_thread = lm->loop_thread;
  uv_unref((uv_handle_t *)&p->async);  /* posting alone is no work */
  lm->post = p;
  p->closer.close = close_post;
  loom__add_closer(lm, &p->closer);
  return 0;
}

void loom__post_free(loom_t *lm) {
  loom__post *p = lm->post;
  int last = 1;
  if (p != NULL) {
    uv_mutex_lock(&p->lock);
    p->done = 1;
    last = p->holds == 0;
    uv_mutex_unlock(&p->lock);
  }
  if (!last) return;  /* the last loom_release frees it */
  if (p != NULL) destroy(lm);
  else free(lm);
}
