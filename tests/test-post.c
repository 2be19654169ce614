/*
** test-post.c: loom_post, loom_acquire and loom_release. Posts from four
** threads, 10,000 each, all run once and in order per thread; a worker
** thread completes a future a task awaits (with a hold the loop waits for
** it; without, loom_run reports the deadlock it sees); posts made after
** the state closed are refused, those still queued get fn(NULL, ud); a
** thread holding the runtime across lua_close frees it last; a fn that
** raises is reported and the batch goes on; a fn posting again runs a
** turn later; two runtimes on one loop each get their own posts.
*/
#include <stdatomic.h>

#include "test.h"

#define THREADS 4
#define PER_THREAD 10000

/* ---- 4 threads x 10,000 posts ---------------------------------------- */

typedef struct poster {
  loom_t *lm;
  int id;
  uv_thread_t thread;
} poster;

static struct {
  int count[THREADS];       /* posts run, per thread (loop thread only) */
  int out_of_order;
  int batches;              /* loop turns in which posts ran */
  int last_turn;
  int turns;                /* counted by a prepare handle */
} seen;

static void on_prepare(uv_prepare_t *h) {
  (void)h;
  seen.turns++;
}

/* ud encodes (thread, seq): seq must follow the last one seen */
static void count_post(loom_t *lm, void *ud) {
  ASSERT(lm != NULL);
  uintptr_t v = (uintptr_t)ud;
  int id = (int)(v % THREADS), seq = (int)(v / THREADS);
  if (seq != seen.count[id]) seen.out_of_order++;
  seen.count[id]++;
  if (seen.last_turn != seen.turns) {
    seen.batches++;
    seen.last_turn = seen.turns;
  }
}

static void post_many(void *arg) {
  poster *p = arg;
  for (int i = 0; i < PER_THREAD; i++) {
    uintptr_t v = (uintptr_t)i * THREADS + (uintptr_t)p->id;
    ASSERT_INT_EQ(loom_post(p->lm, count_post, (void *)v), 0);
  }
  loom_release(p->lm);  /* done posting: the loop may end */
}

static void test_four_threads(void) {
  loom_t *lm;
  lua_State *L = test_newloom(NULL, &lm);
  poster ps[THREADS];
  uv_prepare_t prepare;
  memset(&seen, 0, sizeof seen);
  seen.last_turn = -1;
  uv_prepare_init(loom_loop(lm), &prepare);
  uv_prepare_start(&prepare, on_prepare);
  uv_unref((uv_handle_t *)&prepare);
  for (int i = 0; i < THREADS; i++) {
    ps[i].lm = lm;
    ps[i].id = i;
    ASSERT_INT_EQ(loom_acquire(lm), 0);  /* before the thread starts */
    ASSERT_INT_EQ(uv_thread_create(&ps[i].thread, post_many, &ps[i]), 0);
  }
  /* runs until every thread released its hold and its posts ran */
  ASSERT_INT_EQ(loom_run(L, NULL), 0);
  for (int i = 0; i < THREADS; i++) {
    ASSERT_INT_EQ(uv_thread_join(&ps[i].thread), 0);
    ASSERT_INT_EQ(seen.count[i], PER_THREAD);
  }
  ASSERT_INT_EQ(seen.out_of_order, 0);
  ASSERT(seen.batches >= 1 && seen.batches < THREADS * PER_THREAD);
  printf("%d posts ran in %d batches\n", THREADS * PER_THREAD,
         seen.batches);
  uv_close((uv_handle_t *)&prepare, NULL);
  lua_close(L);
}

/* ---- a worker thread completes a future ------------------------------ */

typedef struct worker {
  loom_t *lm;
  lua_State *L;
  int future_ref;   /* the future, in the registry */
  int hold;         /* take a hold for the thread */
  int value;
  uv_thread_t thread;
} worker;

static worker the_worker;

/* On the loop thread: f:set(value), under loom's protected call. */
static void set_future(loom_t *lm, void *ud) {
  worker *w = ud;
  if (lm == NULL) return;  /* closed first: nothing to free here */
  lua_State *L = loom_lua(lm);
  lua_rawgeti(L, LUA_REGISTRYINDEX, w->future_ref);
  lua_getfield(L, -1, "set");
  lua_insert(L, -2);
  lua_pushinteger(L, w->value);
  lua_call(L, 2, 0);
  luaL_unref(L, LUA_REGISTRYINDEX, w->future_ref);
}

static void work(void *arg) {
  worker *w = arg;
  uv_sleep(30);  /* the loop has nothing else to do meanwhile */
  w->value = 42;
  ASSERT_INT_EQ(loom_post(w->lm, set_future, w), 0);
  if (w->hold) loom_release(w->lm);
}

/* start_worker(f): a thread will set f */
static int start_worker(lua_State *L) {
  worker *w = &the_worker;
  lua_settop(L, 1);
  w->future_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (w->hold) ASSERT_INT_EQ(loom_acquire(w->lm), 0);
  ASSERT_INT_EQ(uv_thread_create(&w->thread, work, w), 0);
  return 0;
}

static lua_State *worker_state(int hold) {
  loom_t *lm;
  lua_State *L = test_newloom(NULL, &lm);
  the_worker.lm = lm;
  the_worker.L = L;
  the_worker.hold = hold;
  lua_register(L, "start_worker", start_worker);
  TEST_DO(L, "function main()\n"
             "  local f = loom.future()\n"
             "  start_worker(f)\n"
             "  return f:await() + 1\n"
             "end");
  TEST_SPAWN(L, "main");
  return L;
}

static void test_worker_sets_future(void) {
  int n;
  lua_State *L = worker_state(1);
  double t0 = test_ms();
  ASSERT_INT_EQ(loom_run(L, &n), 0);
  ASSERT(test_ms() - t0 >= 29.0);
  ASSERT_INT_EQ(n, 1);
  ASSERT_INT_EQ(lua_tointeger(L, -1), 43);
  ASSERT_INT_EQ(uv_thread_join(&the_worker.thread), 0);
  lua_close(L);
}

/* With no hold, the loop does not know a thread will post: loom_run
** reports what it sees, a deadlock. The post still comes, and a later
** loom_run runs it and the task ends. */
static void test_worker_without_hold(void) {
  int n;
  lua_State *L = worker_state(0);
  lua_pushvalue(L, -1);
  ASSERT_INT_EQ(loom_run(L, &n), LOOM_EDEADLOCK);
  ASSERT_HAS(lua_tostring(L, -1), "waits on a future");
  lua_pop(L, 1);
  ASSERT_INT_EQ(uv_thread_join(&the_worker.thread), 0);  /* it posted */
  ASSERT_INT_EQ(loom_run(L, &n), 0);
  ASSERT_INT_EQ(n, 1);
  ASSERT_INT_EQ(lua_tointeger(L, -1), 43);
  lua_close(L);
}

/* ---- closing --------------------------------------------------------- */

static int freed_by_fn, called_with_null, ran;

static void free_ud(loom_t *lm, void *ud) {
  if (lm == NULL) called_with_null++;
  else ran++;
  free(ud);
  freed_by_fn++;
}

static void on_closed(uv_handle_t *h) {
  (void)h;
}

/* Queued, never run: each fn is called with NULL as the state closes. */
static void test_queued_at_close(void) {
  loom_t *lm;
  lua_State *L = test_newloom(NULL, &lm);
  freed_by_fn = called_with_null = ran = 0;
  for (int i = 0; i < 3; i++)
    ASSERT_INT_EQ(loom_post(lm, free_ud, malloc(16)), 0);
  ASSERT_INT_EQ(loom_post(lm, NULL, NULL), UV_EINVAL);
  lua_close(L);  /* valgrind: the three blocks were freed */
  ASSERT_INT_EQ(called_with_null, 3);
  ASSERT_INT_EQ(ran, 0);
}

/* With the host's loop, lm lives until the host ran the loop once more:
** meanwhile posts and holds are refused. */
static void test_refused_after_close(void) {
  uv_loop_t loop;
  loom_t *lm;
  ASSERT_INT_EQ(uv_loop_init(&loop), 0);
  lua_State *L = test_newloom(&loop, &lm);
  freed_by_fn = called_with_null = ran = 0;
  ASSERT_INT_EQ(loom_post(lm, free_ud, malloc(16)), 0);
  ASSERT_INT_EQ(uv_run(&loop, UV_RUN_NOWAIT), 0);  /* it runs */
  ASSERT_INT_EQ(ran, 1);
  ASSERT_INT_EQ(loom_post(lm, free_ud, malloc(16)), 0);
  lua_close(L);
  ASSERT_INT_EQ(called_with_null, 1);
  void *ud = malloc(16);
  ASSERT_INT_EQ(loom_post(lm, free_ud, ud), LOOM_ECLOSED);
  free(ud);  /* refused: still the caller's */
  ASSERT_INT_EQ(loom_acquire(lm), LOOM_ECLOSED);
  ASSERT_INT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ASSERT_INT_EQ(uv_loop_close(&loop), 0);
  ASSERT_INT_EQ(freed_by_fn, 2);
}

/* A thread holds the runtime across lua_close: it posts until refused,
** every accepted post is run or told of the close, and its release frees
** the runtime (valgrind: nothing leaks, nothing is used after free). */
static atomic_int accepted, handled;
static atomic_int go_close;

static void count_handled(loom_t *lm, void *ud) {
  (void)lm; (void)ud;
  atomic_fetch_add(&handled, 1);
}

static void post_until_refused(void *arg) {
  loom_t *lm = arg;
  int r;
  while ((r = loom_post(lm, count_handled, NULL)) == 0)
    if (atomic_fetch_add(&accepted, 1) == 1000) atomic_store(&go_close, 1);
  ASSERT_INT_EQ(r, LOOM_ECLOSED);
  ASSERT_INT_EQ(loom_post(lm, count_handled, NULL), LOOM_ECLOSED);
  loom_release(lm);  /* the last hold: frees lm */
}

static void test_hold_across_close(void) {
  loom_t *lm;
  uv_thread_t th;
  lua_State *L = test_newloom(NULL, &lm);
  atomic_store(&accepted, 0);
  atomic_store(&handled, 0);
  atomic_store(&go_close, 0);
  ASSERT_INT_EQ(loom_acquire(lm), 0);
  ASSERT_INT_EQ(uv_thread_create(&th, post_until_refused, lm), 0);
  while (!atomic_load(&go_close))
    uv_run(loom_loop(lm), UV_RUN_NOWAIT);  /* some run, some wait */
  lua_close(L);  /* the thread still holds lm */
  ASSERT_INT_EQ(uv_thread_join(&th), 0);
  ASSERT_INT_EQ(atomic_load(&handled), atomic_load(&accepted));
}

/* ---- what a fn may do ------------------------------------------------ */

typedef struct reports {
  int calls;
  char text[2][256];
} reports;

static void record(loom_t *lm, const char *report, void *ud) {
  reports *r = ud;
  (void)lm;
  if (r->calls < 2) snprintf(r->text[r->calls], 256, "%s", report);
  r->calls++;
}

static void raise_error(loom_t *lm, void *ud) {
  (void)ud;
  if (lm == NULL) return;
  luaL_error(loom_lua(lm), "posted %s", "boom");
}

static int order[8], norder;

static void note(loom_t *lm, void *ud) {
  if (lm == NULL) return;
  order[norder++] = (int)(intptr_t)ud;
}

/* A fn that raises is reported through the hook (and counted); the posts
** after it in the same batch still run, in order. */
static void test_fn_raises(void) {
  loom_t *lm;
  reports r = { 0 };
  lua_State *L = test_newloom(NULL, &lm);
  loom_set_report(lm, record, &r);
  norder = 0;
  ASSERT_INT_EQ(loom_post(lm, note, (void *)1), 0);
  ASSERT_INT_EQ(loom_post(lm, raise_error, NULL), 0);
  ASSERT_INT_EQ(loom_post(lm, note, (void *)2), 0);
  ASSERT_INT_EQ(loom_post(lm, raise_error, NULL), 0);
  ASSERT_INT_EQ(loom_post(lm, note, (void *)3), 0);
  ASSERT_INT_EQ(uv_run(loom_loop(lm), UV_RUN_NOWAIT), 0);
  ASSERT_INT_EQ(norder, 3);
  ASSERT(order[0] == 1 && order[1] == 2 && order[2] == 3);
  ASSERT_INT_EQ(r.calls, 2);
  ASSERT_STR_EQ(r.text[0], "error in a function given to loom_post: "
                           "posted boom");
  ASSERT_INT_EQ(loom_report_unretrieved(lm), 2);
  ASSERT_INT_EQ(loom_reported_total(lm), 2);
  ASSERT_INT_EQ(lua_gettop(L), 0);
  lua_close(L);
}

/* A fn that posts again: that one runs in a later turn, not this one. A
** fn may spawn a task, which runs as any other. */
static int turns;

static void on_check_turn(uv_check_t *h) {
  (void)h;
  turns++;
}

static void spawn_from_post(loom_t *lm, void *ud) {
  (void)ud;
  if (lm == NULL) return;
  lua_State *L = loom_lua(lm);
  ASSERT_INT_EQ(loom_spawn_string(L, "sleep(0.01) posted_task = 'ran'",
                                  "=posted"), 0);
  lua_pop(L, 1);
  order[norder++] = turns;
}

static void post_again(loom_t *lm, void *ud) {
  (void)ud;
  if (lm == NULL) return;
  order[norder++] = turns;
  ASSERT_INT_EQ(loom_post(lm, spawn_from_post, NULL), 0);
}

static void test_fn_posts_again(void) {
  loom_t *lm;
  uv_check_t check;
  lua_State *L = test_newloom(NULL, &lm);
  norder = turns = 0;
  uv_check_init(loom_loop(lm), &check);
  uv_check_start(&check, on_check_turn);
  uv_unref((uv_handle_t *)&check);
  ASSERT_INT_EQ(loom_post(lm, post_again, NULL), 0);
  ASSERT_INT_EQ(loom_run(L, NULL), 0);  /* queued posts are work */
  ASSERT_INT_EQ(norder, 2);
  ASSERT(order[1] > order[0]);
  TEST_DO(L, "assert(posted_task == 'ran')");
  uv_close((uv_handle_t *)&check, on_closed);
  lua_close(L);
}

/* Two runtimes on one loop: each post reaches the runtime it was made to,
** and closing one leaves the other's posts working. */
static loom_t *got[4];
static int ngot;

static void which(loom_t *lm, void *ud) {
  (void)ud;
  if (lm != NULL) got[ngot++] = lm;
}

static void test_two_runtimes_one_loop(void) {
  uv_loop_t loop;
  loom_t *lm1, *lm2;
  ASSERT_INT_EQ(uv_loop_init(&loop), 0);
  lua_State *L1 = test_newloom(&loop, &lm1);
  lua_State *L2 = test_newloom(&loop, &lm2);
  ngot = 0;
  ASSERT_INT_EQ(loom_post(lm1, which, NULL), 0);
  ASSERT_INT_EQ(loom_post(lm2, which, NULL), 0);
  ASSERT_INT_EQ(uv_run(&loop, UV_RUN_NOWAIT), 0);
  ASSERT_INT_EQ(ngot, 2);
  ASSERT((got[0] == lm1 && got[1] == lm2) ||
         (got[0] == lm2 && got[1] == lm1));
  lua_close(L1);
  ASSERT_INT_EQ(loom_post(lm1, which, NULL), LOOM_ECLOSED);
  ASSERT_INT_EQ(loom_post(lm2, which, NULL), 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  ASSERT_INT_EQ(ngot, 3);
  ASSERT(got[2] == lm2);
  lua_close(L2);
  ASSERT_INT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ASSERT_INT_EQ(uv_loop_close(&loop), 0);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    TEST_CASE(test_four_threads),
    TEST_CASE(test_worker_sets_future),
    TEST_CASE(test_worker_without_hold),
    TEST_CASE(test_queued_at_close),
    TEST_CASE(test_refused_after_close),
    TEST_CASE(test_hold_across_close),
    TEST_CASE(test_fn_raises),
    TEST_CASE(test_fn_posts_again),
    TEST_CASE(test_two_runtimes_one_loop),
    { NULL, NULL }
  };
  return test_main(cases, argc, argv);
}
