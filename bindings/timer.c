/*
** timer.c: loom.sleep and loom.now.
**
** Every sleeping task sits in one min-heap, ordered by (deadline, order of
** sleeping), behind a single uv_timer_t armed for the earliest deadline:
** no libuv handle and no malloc per sleep (the heap array only grows).
** sleep(0) does not touch the heap: it re-queues the task for the next
** turn of the loop.
*/
#include <math.h>
#include <stdlib.h>

#include "../runtime/internal.h"

static int earlier(const loom_task_t *a, const loom_task_t *b) {
  if (a->w.deadline != b->w.deadline) return a->w.deadline < b->w.deadline;
  return (int32_t)(a->seq - b->seq) < 0;
}

static void heap_set(loom_t *lm, uint32_t i, loom_task_t *t) {
  lm->heap[i] = t;
  t->heap_index = i;
}

static void sift_up(loom_t *lm, uint32_t i) {
  loom_task_t *t = lm->heap[i];
  while (i > 1 && earlier(t, lm->heap[i / 2])) {
    heap_set(lm, i, lm->heap[i / 2]);
    i /= 2;
  }
  heap_set(lm, i, t);
}

static void sift_down(loom_t *lm, uint32_t i) {
  loom_task_t *t = lm->heap[i];
  for (;;) {
    uint32_t c = 2 * i;
    if (c > lm->heap_count) break;
    if (c < lm->heap_count && earlier(lm->heap[c + 1], lm->heap[c])) c++;
    if (!earlier(lm->heap[c], t)) break;
    heap_set(lm, i, lm->heap[c]);
    i = c;
  }
  heap_set(lm, i, t);
}

static void heap_remove(loom_t *lm, loom_task_t *t) {
  uint32_t i = t->heap_index;
  loom_task_t *last = lm->heap[lm->heap_count--];
  t->heap_index = 0;
  if (last == t) return;
  heap_set(lm, i, last);
  sift_up(lm, i);
  sift_down(lm, last->heap_index);
}

static void on_timer(uv_timer_t *h);

static void arm(loom_t *lm) {
  if (lm->heap_count == 0) {
    uv_timer_stop(&lm->timer);
    return;
  }
  uint64_t now = uv_now(lm->loop), when = lm->heap[1]->w.deadline;
  uv_timer_start(&lm->timer, on_timer, when > now ? when - now : 0, 0);
}

static void on_timer(uv_timer_t *h) {
  loom_t *lm = h->data;
  uint64_t now = uv_now(lm->loop);
  while (lm->heap_count && lm->heap[1]->w.deadline <= now) {
    loom_task_t *t = lm->heap[1];
    heap_remove(lm, t);
    loom__wake(t);
  }
  arm(lm);
}

static void sleep_cancel(loom_task_t *t) {
  loom_t *lm = loom__thread_loom(t->thread);
  int was_first = lm->heap[1] == t;
  heap_remove(lm, t);
  if (was_first) arm(lm);
}

static const loom__wait sleep_wait = { "sleep", sleep_cancel };
static const loom__wait yield_wait = { "sleep(0)", NULL };

static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  loom__resumed(L, loom__up(L));
  return 0;
}

static int l_sleep(lua_State *L) {
  loom_t *lm = loom__up(L);
  lua_Number s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s >= 0, 1, "non-negative number expected");
  loom_task_t *t = loom__prepare_suspend(L, lm, "sleep");
  if (s == 0) {
    loom__enqueue_next(lm, t);
    return loom__suspend(L, lm, &yield_wait, 0, sleep_k);
  }
  if (lm->heap_count + 1 >= lm->heap_cap) {
    uint32_t cap = lm->heap_cap ? lm->heap_cap * 2 : 256;
    loom_task_t **heap = realloc(lm->heap, cap * sizeof *heap);
    if (heap == NULL) return luaL_error(L, "sleep: not enough memory");
    lm->heap = heap;
    lm->heap_cap = cap;
  }
  uv_update_time(lm->loop);
  double ms = ceil(s * 1000.0);
  t->w.deadline = ms >= 1e15 ? UINT64_MAX / 2  /* forever, in practice */
                             : uv_now(lm->loop) + (uint64_t)ms;
  t->seq = lm->sleep_seq++;
  lm->heap_count++;
  heap_set(lm, lm->heap_count, t);
  sift_up(lm, lm->heap_count);
  if (lm->heap[1] == t) arm(lm);
  return loom__suspend(L, lm, &sleep_wait, 0, sleep_k);
}

static int l_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e9);
  return 1;
}

int loom__timer_init(loom_t *lm) {
  int r = uv_timer_init(lm->loop, &lm->timer);
  lm->timer.data = lm;
  return r;
}

/* Frees the heap; the handle is closed by the runtime's finalizer. */
void loom__timer_close(loom_t *lm) {
  free(lm->heap);
  lm->heap = NULL;
}

void loom__open_timer(lua_State *L, loom_t *lm) {
  static const luaL_Reg fns[] = {
    {"sleep", l_sleep}, {"now", l_now}, {NULL, NULL}
  };
  loom__setfuncs(L, lm, fns);
}
