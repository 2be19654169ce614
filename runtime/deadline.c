/*
** deadline.c: the runtime's deadlines. Anything waiting for a deadline (a
** sleeping task's node, a timeout) is a loom__waiter grouped with others by deadline (loop time in
** ms): one bucket per deadline lists them in the order they started, and a
** min-heap orders the buckets, behind a single uv_timer_t armed for the
** earliest. Many share a deadline (a burst of sleeps in the same
** millisecond), so starting and firing are O(1) per waiter and the heap
** only sees buckets. No libuv handle per sleep; buckets are reused, so the
** sleep/wake path does not allocate.
*/
#include <math.h>
#include <stdlib.h>

#include "internal.h"

typedef struct bucket {
  uint64_t deadline;
  uint32_t heap_index;  /* 1-based; 0 once out of the heap */
  uint32_t order;       /* creation order: FIFO among equal deadlines */
  loom__link waiters;   /* in the order they started waiting */
  struct bucket *next_free;
} bucket;

typedef struct loom__deadlines {
  uv_timer_t timer;
  bucket **heap;        /* 1-based */
  uint32_t count, cap, order;
  bucket *last;         /* the newest bucket: the next sleep often joins it */
  bucket *free;
} loom__deadlines;

/* ---- the heap of buckets -------------------------------------------- */

static int earlier(const bucket *a, const bucket *b) {
  if (a->deadline != b->deadline) return a->deadline < b->deadline;
  return (int32_t)(a->order - b->order) < 0;
}

static void heap_set(loom__deadlines *tm, uint32_t i, bucket *b) {
  tm->heap[i] = b;
  b->heap_index = i;
}

static void sift_up(loom__deadlines *tm, uint32_t i) {
  bucket *b = tm->heap[i];
  while (i > 1 && earlier(b, tm->heap[i / 2])) {
    heap_set(tm, i, tm->heap[i / 2]);
    i /= 2;
  }
  heap_set(tm, i, b);
}

static void sift_down(loom__deadlines *tm, uint32_t i) {
  bucket *b = tm->heap[i];
  for (;;) {
    uint32_t c = 2 * i;
    if (c > tm->count) break;
    if (c < tm->count && earlier(tm->heap[c + 1], tm->heap[c])) c++;
    if (!earlier(tm->heap[c], b)) break;
    heap_set(tm, i, tm->heap[c]);
    i = c;
  }
  heap_set(tm, i, b);
}

/* Takes b out of the heap (heap_index 0 tells it is out). */
static void heap_remove(loom__deadlines *tm, bucket *b) {
  uint32_t i = b->heap_index;
  bucket *last = tm->heap[tm->count--];
  b->heap_index = 0;
  if (last != b) {
    heap_set(tm, i, last);
    sift_up(tm, i);
    sift_down(tm, last->heap_index);
  }
  if (tm->last == b) tm->last = NULL;
}

static void keep_for_reuse(loom__deadlines *tm, bucket *b) {
  b->next_free = tm->free;
  tm->free = b;
}

/* The bucket for a deadline: the newest one if it matches, else a new one
** (reused if possible). NULL if out of memory. */
static bucket *bucket_for(loom__deadlines *tm, uint64_t deadline) {
  bucket *b = tm->last;
  if (b != NULL && b->deadline == deadline) return b;
  if (tm->count + 1 >= tm->cap) {
    uint32_t cap = tm->cap ? tm->cap * 2 : 64;
    bucket **heap = realloc(tm->heap, cap * sizeof *heap);
    if (heap == NULL) return NULL;
    tm->heap = heap;
    tm->cap = cap;
  }
  if (tm->free != NULL) {
    b = tm->free;
    tm->free = b->next_free;
  } else if ((b = malloc(sizeof *b)) == NULL) {
    return NULL;
  }
  b->deadline = deadline;
  b->order = tm->order++;
  loom__list_init(&b->waiters);
  tm->count++;
  heap_set(tm, tm->count, b);
  sift_up(tm, tm->count);
  tm->last = b;
  return b;
}

/* ---- the timer ------------------------------------------------------ */

static void on_timer(uv_timer_t *h);

static void arm(loom__deadlines *tm) {
  if (tm->count == 0) {
    uv_timer_stop(&tm->timer);
    return;
  }
  uint64_t now = uv_now(tm->timer.loop), when = tm->heap[1]->deadline;
  uv_timer_start(&tm->timer, on_timer, when > now ? when - now : 0, 0);
}

static void on_timer(uv_timer_t *h) {
  loom__deadlines *tm = h->data;
  uint64_t now = uv_now(h->loop);
  while (tm->count && tm->heap[1]->deadline <= now) {
    /* out of the heap while it fires: a fire that cancels another waiter
    ** of this bucket (a timeout cancelling its task's sleep) only unlinks
    ** it, and a deadline started meanwhile gets a bucket of its own */
    bucket *b = tm->heap[1];
    heap_remove(tm, b);
    while (b->waiters.next != &b->waiters) {
      loom__waiter *w = (loom__waiter *)b->waiters.next;
      loom__list_unlink(w);
      w->fire(w, 0);
    }
    keep_for_reuse(tm, b);
  }
  arm(tm);
}

/* ---- deadlines for anything that waits ------------------------------ */

void *loom__deadline_start(loom_t *lm, loom__waiter *w, double ms) {
  loom__deadlines *tm = lm->deadlines;
  uv_update_time(lm->loop);  /* a long-running task made uv_now stale */
  ms = ms > 0 ? ceil(ms) : 0;
  uint64_t deadline = !(ms < 1e15) ? UINT64_MAX / 2  /* forever (or NaN) */
                                   : uv_now(lm->loop) + (uint64_t)ms;
  bucket *b = bucket_for(tm, deadline);
  if (b == NULL) return NULL;
  w->link.next = NULL;
  loom__list_push(&b->waiters, w);
  if (tm->heap[1] == b && b->waiters.next == &w->link) arm(tm);
  return b;
}

void loom__deadline_cancel(loom_t *lm, loom__waiter *w, void *handle) {
  loom__deadlines *tm = lm->deadlines;
  bucket *b = handle;
  loom__list_unlink(w);
  if (b->heap_index != 0 && b->waiters.next == &b->waiters) {  /* the last */
    int was_first = tm->heap[1] == b;
    heap_remove(tm, b);
    keep_for_reuse(tm, b);
    if (was_first) arm(tm);
  }
}

/* ---- life ----------------------------------------------------------- */

int loom__deadline_init(loom_t *lm) {
  loom__deadlines *tm = calloc(1, sizeof *tm);
  if (tm == NULL) return UV_ENOMEM;
  int r = uv_timer_init(lm->loop, &tm->timer);
  if (r != 0) {
    free(tm);
    return r;
  }
  tm->timer.data = tm;
  lm->deadlines = tm;
  return 0;
}

/* Frees the buckets and closes the handle; the rest is freed with
** loom__deadline_free once the handle is closed. */
void loom__deadline_close(loom_t *lm) {
  loom__deadlines *tm = lm->deadlines;
  if (tm == NULL) return;
  for (uint32_t i = 1; i <= tm->count; i++) free(tm->heap[i]);
  while (tm->free != NULL) {
    bucket *next = tm->free->next_free;
    free(tm->free);
    tm->free = next;
  }
  free(tm->heap);
  tm->heap = NULL;
  tm->count = 0;
  loom__close_handle(lm, (uv_handle_t *)&tm->timer, NULL);
}

void loom__deadline_free(loom_t *lm) {
  free(lm->deadlines);
  lm->deadlines = NULL;
}
