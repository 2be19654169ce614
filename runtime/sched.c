/*
** sched.c: the run queues and the turn of the loop that drains them.
**
** Two FIFO rings of task pointers. 'ready' holds tasks woken by a future,
** another task or an I/O callback; it is drained until empty within the
** turn (capped, so a ping-pong pair cannot starve I/O). 'next' holds new
** tasks and sleep(0); it becomes ready at the start of the next turn, so
** those really yield to I/O. A uv_check_t drains after each poll; a
** uv_idle_t is active only while work is queued, so the loop never blocks
** in poll with work ready.
*/
#include <stdlib.h>

#include "internal.h"

const char loom__suspend_sentinel = 0;

/* ---- rings ---------------------------------------------------------- */

static int queue_grow(loom__queue *q) {
  uint32_t cap = q->cap ? q->cap * 2 : 64;
  loom_task_t **items = malloc(cap * sizeof *items);
  if (items == NULL) return UV_ENOMEM;
  for (uint32_t i = 0; i < q->count; i++)
    items[i] = q->items[(q->head + i) & (q->cap - 1)];
  free(q->items);
  q->items = items;
  q->head = 0;
  q->cap = cap;
  return 0;
}

static void queue_push(loom__queue *q, loom_task_t *t) {
  if (q->count == q->cap && queue_grow(q) != 0) abort();  /* out of memory */
  q->items[(q->head + q->count++) & (q->cap - 1)] = t;
}

static loom_task_t *queue_pop(loom__queue *q) {
  loom_task_t *t = q->items[q->head];
  q->head = (q->head + 1) & (q->cap - 1);
  q->count--;
  return t;
}

/* Appends all of src to dst; swaps when dst is empty (the common case). */
static void queue_move(loom__queue *dst, loom__queue *src) {
  if (dst->count == 0) {
    loom__queue tmp = *dst;
    *dst = *src;
    *src = tmp;
    return;
  }
  while (src->count) queue_push(dst, queue_pop(src));
}

/* ---- waking --------------------------------------------------------- */

static void on_idle(uv_idle_t *h) {
  (void)h;  /* only keeps poll from blocking while work is queued */
}

static void update_idle(loom_t *lm) {
  int work = lm->ready.count || lm->next.count;
  if (work != lm->idle_on) {
    lm->idle_on = work;
    if (work) uv_idle_start(&lm->idle, on_idle);
    else uv_idle_stop(&lm->idle);
  }
}

void loom__wake(loom_task_t *t) {
  if (!(t->flags & LOOM_TF_SUSPENDED) || (t->flags & LOOM_TF_QUEUED)) return;
  loom_t *lm = loom__thread_loom(t->thread);
  t->flags |= LOOM_TF_QUEUED;
  queue_push(&lm->ready, t);
  update_idle(lm);
}

void loom__enqueue_next(loom_t *lm, loom_task_t *t) {
  t->flags |= LOOM_TF_QUEUED;
  queue_push(&lm->next, t);
  update_idle(lm);
}

/* ---- the turn ------------------------------------------------------- */

static void on_check(uv_check_t *h) {
  loom_t *lm = h->data;
  queue_move(&lm->ready, &lm->next);
  for (int budget = LOOM_READY_BURST;
       lm->ready.count && budget > 0 && !lm->stopping; budget--)
    loom__task_resume(lm, queue_pop(&lm->ready));
  update_idle(lm);
}

int loom__sched_init(loom_t *lm) {
  int r = uv_check_init(lm->loop, &lm->check);
  if (r) return r;
  r = uv_idle_init(lm->loop, &lm->idle);
  if (r) return r;
  lm->check.data = lm->idle.data = lm;
  uv_check_start(&lm->check, on_check);
  uv_unref((uv_handle_t *)&lm->check);  /* draining is not work by itself */
  return 0;
}

/* Frees the rings; the handles are closed by the runtime's finalizer. */
void loom__sched_close(loom_t *lm) {
  free(lm->ready.items);
  free(lm->next.items);
}
