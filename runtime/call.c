/*
** call.c: async C functions (loom_call_* in loom.h), the public form of
** the suspend protocol of binding.h.
**
** A call is malloc'd by loom_call_begin and has one owner at a time: the
** host while it waits, loom once it is resolved or cancelled. It is freed
** by the continuation after a resolve, by the cancel hook after on_cancel
** (or after a resolve that a cancel overtook), by the runtime's teardown
** for calls still waiting, or, if the C function raised between begin and
** suspend, when its task next yields or ends.
*/
#include <assert.h>
#include <stdlib.h>

#include "internal.h"

enum { CALL_BEGUN, CALL_WAITING, CALL_RESOLVED, CALL_REJECTED };

struct loom_call {
  loom__link link;        /* in the runtime's waiting calls */
  lua_State *L;           /* the thread whose C function suspended */
  loom_t *lm;
  loom_task_t *task;
  loom_cancel_fn on_cancel;
  void *ud;
  int nresults;
  int state;
};

/* The task was cancelled: the host lets go (unless it already resolved,
** which the cancel overtook), and the call is gone. */
static void call_cancel(loom_task_t *t, void *data, int woken) {
  loom_call_t *c = data;
  (void)t; (void)woken;
  loom__link_unlink(&c->link);
  if (c->state == CALL_WAITING && c->on_cancel != NULL)
    c->on_cancel(c, c->ud);
  free(c);
}

static const loom__wait call_wait = { "an async C function", call_cancel,
                                      NULL };

static int call_k(lua_State *L, int status, lua_KContext ctx) {
  loom_call_t *c = (loom_call_t *)ctx;
  (void)status;
  loom__resumed(L, loom__thread_loom(L));  /* cancelled: c is gone */
  int n = c->nresults, rejected = c->state == CALL_REJECTED;
  free(c);
  if (rejected) return lua_error(L);
  return n;
}

/* A call begun but never suspended (the C function raised in between). */
void loom__call_abandoned(loom_t *lm) {
  free(lm->begun_call);
  lm->begun_call = NULL;
}

/* At close: every call still waiting is cancelled. */
static void close_calls(loom_t *lm, loom__closer *closer) {
  (void)closer;
  loom__call_abandoned(lm);
  while (lm->calls.next != &lm->calls) {
    loom_call_t *c = (loom_call_t *)lm->calls.next;
    loom__link_unlink(&c->link);
    if (c->on_cancel != NULL) c->on_cancel(c, c->ud);
    free(c);
  }
}

void loom__open_calls(loom_t *lm) {
  loom__list_init(&lm->calls);
  lm->calls_closer.close = close_calls;
  loom__add_closer(lm, &lm->calls_closer);
}

LOOM_API loom_call_t *loom_call_begin(lua_State *L, loom_cancel_fn on_cancel,
                                      void *ud) {
  loom_t *lm = loom_get(L);
  lua_Debug ar;
  const char *fname = "async C function";
  if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.name)
    fname = ar.name;
  if (lm == NULL)
    luaL_error(L, "%s: not inside a task (no loom runtime)", fname);
  loom__prepare_suspend(L, lm, fname);
  loom__call_abandoned(lm);
  loom_call_t *c = malloc(sizeof *c);
  if (c == NULL) luaL_error(L, "%s: not enough memory", fname);
  c->link.next = c->link.prev = NULL;
  c->L = L;
  c->lm = lm;
  c->task = lm->current;
  c->on_cancel = on_cancel;
  c->ud = ud;
  c->nresults = 0;
  c->state = CALL_BEGUN;
  lm->begun_call = c;
  return c;
}

LOOM_API int loom_call_suspend(lua_State *L, loom_call_t *c) {
  loom_t *lm = c->lm;
  assert(c->state == CALL_BEGUN && c->L == L && lm->begun_call == c);
  lm->begun_call = NULL;
  c->state = CALL_WAITING;
  loom__link_push(&lm->calls, &c->link);
  return loom__suspend(L, lm, &call_wait, c, (lua_KContext)c, call_k);
}

LOOM_API lua_State *loom_call_thread(loom_call_t *c) {
  return c->L;
}

static void complete(loom_call_t *c, int state, int nresults) {
  assert(c->state == CALL_WAITING);  /* resolved twice, or after cancel */
  assert(loom__on_loop_thread(c->lm));  /* never from another thread */
  c->state = state;
  c->nresults = nresults;
  loom__link_unlink(&c->link);
  loom__wake(c->task);
}

LOOM_API void loom_call_resolve(loom_call_t *c, int nresults) {
  complete(c, CALL_RESOLVED, nresults);
}

LOOM_API void loom_call_reject(loom_call_t *c) {
  complete(c, CALL_REJECTED, 0);
}
