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

/* Grows q to hold at least n tasks. */
static int queue_reserve(loom__queue *q, uint32_t n) {
  if (n <= q->cap) return 0;
  uint32_t cap = q->cap ? q->cap : 64;
  while (cap < n) {
    if (cap > UINT32_MAX / 2) return UV_ENOMEM;
    cap *= 2;
  }
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

/* A task is in one queue at most (LOOM_TF_QUEUED), and both queues have
** room for every live task (loom__sched_reserve), so this never grows. */
static void queue_push(loom__queue *q, loom_task_t *t) {
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

int loom__sched_room(loom_t *lm, uint32_t n) {
  return queue_reserve(&lm->ready, n) != 0 || queue_reserve(&lm->next, n) != 0
         ? -1 : 0;
}

void loom__sched_reserve(lua_State *L, loom_t *lm) {
  if (loom__sched_room(lm, lm->live_count + 1) != 0)
    luaL_error(L, "not enough memory for the run queue");
}

void loom__enqueue_ready(loom_t *lm, loom_task_t *t) {
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

/* [lm] -> []: the resumes of one turn. Finishing a task allocates on the
** main thread (its failure record): under a protected call, so a memory
** error there never unwinds through libuv. */
static int drain(lua_State *L) {
  loom_t *lm = lua_touserdata(L, 1);
  for (int budget = LOOM_READY_BURST;
       lm->ready.count && budget > 0 && !lm->stopping; budget--)
    loom__task_resume(lm, queue_pop(&lm->ready));
  return 0;
}

/*
** Spawn bursts. Tasks spawned by the thousand in one turn are live data the
** collector can only walk, again at every cycle, while the heap grows with
** them (200,000 spawns: a fifth of the time in incremental mode's marking).
** So for a burst that takes the number of live tasks past its highest, the
** pause between cycles goes up (a cycle starts when the heap is 10 times,
** not twice, what the last one kept), and back to the program's own in the
** first turn that spawns few. A burst that only replaces finished tasks
** (batches of the same size) is not paced: there the garbage of the last
** batch is most of the heap, and the raised pause let it pile up five
** times over. With the generational mode (lua.c's, and so stock lua5.4's)
** the pause is not used: nothing changes.
*/
void loom__pace_burst(lua_State *L, loom_t *lm) {
  if (lm->burst_pause == 0 && lm->live_count > lm->live_high) {
    /* inside a finalizer lua_gc does nothing and says -1 */
    int pause = lua_gc(L, LUA_GCSETPAUSE, LOOM_BURST_PAUSE);
    if (pause > 0) lm->burst_pause = pause;
  }
}

static void end_burst(loom_t *lm) {
  if (lm->burst_pause != 0 && lm->turn_spawns < LOOM_BURST_SPAWNS &&
      lua_gc(lm->L, LUA_GCSETPAUSE, lm->burst_pause) >= 0)
    lm->burst_pause = 0;
  if (lm->live_count > lm->live_high) lm->live_high = lm->live_count;
  lm->turn_spawns = 0;
}

static void on_check(uv_check_t *h) {
  loom_t *lm = h->data;
  lua_State *L = lm->L;
  if (lm->exiting) return;  /* os.exit is closing the state */
  end_burst(lm);
  queue_move(&lm->ready, &lm->next);
  if (lm->ready.count && !lm->stopping) {
    int ok = lua_checkstack(L, 2);
    if (ok) {
      lua_pushcfunction(L, drain);
      lua_pushlightuserdata(L, lm);
      ok = lua_pcall(L, 1, 0, 0) == LUA_OK;
      if (!ok) lua_pop(L, 1);
    }
    if (!ok) {  /* out of memory: a task is half finished, stop for good */
      lm->sched_error = 1;
      lm->exiting = lm->stopping = 1;
      uv_stop(lm->loop);
    }
  }
  update_idle(lm);
}

int loom__sched_init(loom_t *lm) {
  int r = uv_check_init(lm->loop, &lm->check);
  if (r) return r;
  lm->check.data = lm;
  r = uv_idle_init(lm->loop, &lm->idle);
  if (r) {
    loom__close_handle(lm, (uv_handle_t *)&lm->check, NULL);
    return r;
  }
  lm->idle.data = lm;
  lm->sched_open = 1;
  uv_check_start(&lm->check, on_check);
  uv_unref((uv_handle_t *)&lm->check);  /* draining is not work by itself */
  if (queue_reserve(&lm->ready, 64) || queue_reserve(&lm->next, 64))
    return UV_ENOMEM;  /* loom_open closes what was opened */
  return 0;
}

/* Closes the handles and frees the rings. */
void loom__sched_close(loom_t *lm) {
  if (!lm->sched_open) return;
  lm->sched_open = 0;
  loom__close_handle(lm, (uv_handle_t *)&lm->check, NULL);
  loom__close_handle(lm, (uv_handle_t *)&lm->idle, NULL);
  free(lm->ready.items);
  free(lm->next.items);
  lm->ready.items = lm->next.items = NULL;
}
