/*
** wait.c: the suspend protocol of binding.h: suspending the running task,
** waking it from a callback, cancelling it at its wait point, and the
** common waits (in a list of waiters, for a number of milliseconds).
**
** Cancelling never reaches from one task into another's fate in the same
** C call: a cancel runs the wait's hook (which only lets go) and queues
** the task; whatever the task does next (a gather cancelling its own
** children) happens in that task's own resume. So a chain of any depth
** unwinds one resume at a time, never one C frame per level.
*/
#include "internal.h"

/* ---- suspending ----------------------------------------------------- */

int loom__can_suspend(lua_State *L, loom_t *lm) {
  return lm->current != NULL && L == lm->inner && !lm->unyieldable &&
         lua_isyieldable(L);
}

loom_task_t *loom__prepare_suspend(lua_State *L, loom_t *lm,
                                   const char *fname) {
  loom_task_t *t = lm->current;
  if (t == NULL)
    luaL_error(L, "%s: not inside a task (wrap the code in loom.run(fn))",
               fname);
  if (L != lm->inner)
    luaL_error(L, "%s: cannot wait here: in a coroutine that loom's "
               "coroutine.resume did not resume", fname);
  if (!lua_isyieldable(L) || lm->unyieldable)
    loom__cannot_wait(L, lm, fname);  /* says what is in the way */
  if (t->flags & LOOM_TF_CANCEL) {
    const void *reason = t->wait_data;
    t->flags &= ~LOOM_TF_CANCEL;
    t->wait_data = NULL;
    loom__push_cancelled(L, reason);
    lua_error(L);
  }
  if (t->timeouts != NULL) loom__timeouts_due(L, t);
  return t;
}

int loom__suspend(lua_State *L, loom_t *lm, const loom__wait *wait,
                  void *data, lua_KContext ctx, lua_KFunction k) {
  loom_task_t *t = lm->current;
  t->wait = wait;
  t->wait_data = data;
  t->flags |= LOOM_TF_SUSPENDED;
  lua_pushlightuserdata(L, LOOM_SUSPEND);
  return lua_yieldk(L, 1, ctx, k);
}

void loom__resumed(lua_State *L, loom_t *lm) {
  loom_task_t *t = lm->current;
  /* only loom resumes a waiting thread; Lua's own coroutine.resume, kept
  ** from before loom was loaded, must not run a continuation */
  if (t == NULL || L != lm->inner)
    luaL_error(L, "loom: a waiting task was resumed from outside loom");
  if (t->flags & LOOM_TF_WOKEN_CANCEL) {
    const void *reason = t->wait_data;
    t->flags &= ~LOOM_TF_WOKEN_CANCEL;
    t->wait_data = NULL;
    loom__push_cancelled(L, reason);
    lua_error(L);
  }
}

void loom__wake(loom_task_t *t) {
  if ((t->flags & (LOOM_TF_SUSPENDED | LOOM_TF_QUEUED)) != LOOM_TF_SUSPENDED)
    return;
  loom__enqueue_ready(loom__task_loom(t), t);
}

loom_t *loom__task_loom(loom_task_t *t) {
  return loom__thread_loom(t->thread);
}

loom_task_t *loom__running_task(loom_t *lm) {
  return lm->current;
}

/* ---- cancelling ----------------------------------------------------- */

int loom__cancel(loom_t *lm, loom_task_t *t, const void *reason) {
  if (t->state >= LOOM_DONE) return 0;
  if (t->flags & (LOOM_TF_CANCEL | LOOM_TF_WOKEN_CANCEL)) {
    if (reason == NULL) t->wait_data = NULL;  /* a plain cancel wins */
    return 1;
  }
  if (!(t->flags & LOOM_TF_SUSPENDED)) {
    /* not started, or the one running: it is raised when it next waits,
    ** or as it ends (as asyncio) */
    t->flags |= LOOM_TF_CANCEL;
    t->wait_data = (void *)reason;
    return 1;
  }
  const loom__wait *w = t->wait;
  void *data = t->wait_data;
  int woken = (t->flags & LOOM_TF_QUEUED) != 0;
  t->wait = NULL;
  t->wait_data = (void *)reason;
  t->flags |= LOOM_TF_WOKEN_CANCEL;
  if (w != NULL && w->cancel != NULL) w->cancel(t, data, woken);
  if (!(t->flags & LOOM_TF_QUEUED)) loom__enqueue_ready(lm, t);
  return 1;
}

void loom__detach(loom_t *lm, loom_task_t *t) {
  (void)lm;
  if (!(t->flags & LOOM_TF_SUSPENDED)) return;
  const loom__wait *w = t->wait;
  void *data = t->wait_data;
  t->wait = NULL;
  t->wait_data = NULL;
  if (w != NULL && w->cancel != NULL)
    w->cancel(t, data, LOOM_WAIT_DETACHED);
  t->flags &= ~(LOOM_TF_SUSPENDED | LOOM_TF_WOKEN_CANCEL);
}

/* ---- waiting in a list ---------------------------------------------- */

void loom__list_fire(loom__link *head, int failed) {
  while (head->next != head) {
    loom__waiter *w = (loom__waiter *)head->next;
    loom__list_unlink(w);
    w->fire(w, failed);
  }
}

void loom__fire_wake(loom__waiter *w, int failed) {
  (void)failed;
  loom__wake((loom_task_t *)((char *)w - offsetof(loom_task_t, node)));
}

void loom__list_cancel(loom_task_t *t, void *data, int woken) {
  (void)data; (void)woken;
  loom__list_unlink(&t->node);
}

int loom__wait_in_list(lua_State *L, loom_t *lm, loom__link *waiters,
                       const loom__wait *wait, void *data, lua_KContext ctx,
                       lua_KFunction k) {
  loom_task_t *t = lm->current;
  t->node.fire = loom__fire_wake;
  loom__list_push(waiters, &t->node);
  return loom__suspend(L, lm, wait, data, ctx, k);
}

/* ---- waiting for a deadline ----------------------------------------- */

static void ms_cancel(loom_task_t *t, void *data, int woken) {
  if (!woken)  /* once fired, its bucket is not its own any more */
    loom__deadline_cancel(loom__task_loom(t), &t->node, data);
}

static const loom__wait sleep_wait = { "sleep", ms_cancel, NULL };
static const loom__wait yield_wait = { "sleep(0)", NULL, NULL };

int loom__wait_ms(lua_State *L, loom_t *lm, double ms, lua_KContext ctx,
                  lua_KFunction k) {
  loom_task_t *t = lm->current;
  if (ms <= 0) {
    loom__enqueue_next(lm, t);
    return loom__suspend(L, lm, &yield_wait, NULL, ctx, k);
  }
  t->node.fire = loom__fire_wake;
  void *bucket = loom__deadline_start(lm, &t->node, ms);
  if (bucket == NULL) return luaL_error(L, "not enough memory");
  return loom__suspend(L, lm, &sleep_wait, bucket, ctx, k);
}
