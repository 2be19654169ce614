/*
** call.c: async C functions (loom_call_* in loom.h), the public form of
** the suspend protocol of binding.h.
**
** A call is malloc'd by loom_call_begin and has one owner at a time: the
** host while it waits, loom once it is resolved or cancelled. It stays in
** the runtime's list of calls until it is freed, which happens once: by
** the continuation after a resolve; by the cancel hook after on_cancel
** (or after a resolve that a cancel overtook); by loom_call_suspend for a
** call resolved before it suspended; by the runtime's teardown for calls
** still in the list (waiting, or resolved with the task not yet run when
** the state closed); or, if the C function raised between begin and
** suspend, when its task next yields or ends.
*/
#include <assert.h>
#include <stdlib.h>

#include "internal.h"

enum {
  CALL_BEGUN,     /* begun, not suspended yet */
  CALL_WAITING,   /* suspended: the host owns it */
  CALL_RESOLVED,
  CALL_REJECTED,
  CALL_GONE       /* in on_cancel: resolving now is the host's bug */
};

struct loom_call {
  loom__link link;        /* in the runtime's calls, until freed */
  lua_State *L;           /* the thread whose C function suspended */
  loom_t *lm;
  loom_task_t *task;
  loom_cancel_fn on_cancel;
  void *ud;
  int nresults;
  int state;
};

static void call_free(loom_call_t *c) {
  loom__link_unlink(&c->link);
  free(c);
}

/* Tells the host its call is gone, if it still owned it. */
static void let_go(loom_call_t *c) {
  if (c->state == CALL_WAITING && c->on_cancel != NULL) {
    c->state = CALL_GONE;
    c->on_cancel(c, c->ud);
  }
}

/* The task was cancelled: the host lets go (unless it already resolved,
** which the cancel overtook), and the call is gone. */
static void call_cancel(loom_task_t *t, void *data, int woken) {
  loom_call_t *c = data;
  (void)t; (void)woken;
  let_go(c);
  call_free(c);
}

static const loom__wait call_wait = { "an async C function", call_cancel,
                                      NULL };

/* The results (or the error) are the top of L: n of them, or 1. */
static int finish_call(lua_State *L, loom_call_t *c) {
  int n = c->nresults, rejected = c->state == CALL_REJECTED;
  call_free(c);
  if (rejected) return lua_error(L);
  if (n > lua_gettop(L))
    return luaL_error(L, "async C function: resolved with %d results, "
                      "more than its stack holds (%d)", n, lua_gettop(L));
  return n;
}

static int call_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  /* cancelled: this raises, and c is gone (ctx is not looked at) */
  loom__resumed(L, loom__thread_loom(L));
  return finish_call(L, (loom_call_t *)ctx);
}

/* A call begun but never suspended (the C function raised in between). */
void loom__call_abandoned(loom_t *lm) {
  if (lm->begun_call != NULL) call_free(lm->begun_call);
  lm->begun_call = NULL;
}

/* At close: calls the tasks' teardown did not reach are let go too. */
static void close_calls(loom_t *lm, loom__closer *closer) {
  (void)closer;
  loom__call_abandoned(lm);
  while (lm->calls.next != &lm->calls) {
    loom_call_t *c = (loom_call_t *)lm->calls.next;
    let_go(c);
    call_free(c);
  }
}

void loom__open_calls(loom_t *lm) {
  loom__list_init(&lm->calls);
  lm->calls_closer.close = close_calls;
  loom__add_closer(lm, &lm->calls_closer);
}

/* The name the running C function was called by, for messages. */
static const char *fname_of(lua_State *L) {
  lua_Debug ar;
  if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.name)
    return ar.name;
  return "async C function";
}

LOOM_API loom_call_t *loom_call_begin(lua_State *L, loom_cancel_fn on_cancel,
                                      void *ud) {
  loom_t *lm = loom_get(L);
  const char *fname = fname_of(L);
  if (lm == NULL)
    luaL_error(L, "%s: not inside a task (no loom runtime)", fname);
  loom__prepare_suspend(L, lm, fname);
  loom__call_abandoned(lm);
  loom_call_t *c = malloc(sizeof *c);
  if (c == NULL) luaL_error(L, "%s: not enough memory", fname);
  c->L = L;
  c->lm = lm;
  c->task = lm->current;
  c->on_cancel = on_cancel;
  c->ud = ud;
  c->nresults = 0;
  c->state = CALL_BEGUN;
  loom__link_push(&lm->calls, &c->link);
  lm->begun_call = c;
  return c;
}

LOOM_API int loom_call_suspend(lua_State *L, loom_call_t *c) {
  loom_t *lm = c->lm;
  assert(c->L == L && lm->begun_call == c);
  lm->begun_call = NULL;
  if (c->state == CALL_RESOLVED || c->state == CALL_REJECTED)
    return finish_call(L, c);  /* answered at once: no wait */
  assert(c->state == CALL_BEGUN);
  if (c->on_cancel == NULL) {
    call_free(c);
    return luaL_error(L, "%s: an async C function needs an on_cancel to "
                      "suspend", fname_of(L));
  }
  if (lm->current->flags & LOOM_TF_CANCEL) {
    /* the C function cancelled its own task after begin (it ran Lua that
    ** did): the host lets go now, and Cancelled is raised here as at any
    ** wait point */
    c->state = CALL_WAITING;
    let_go(c);
    call_free(c);
    loom__prepare_suspend(L, lm, fname_of(L));  /* raises Cancelled */
  }
  c->state = CALL_WAITING;
  return loom__suspend(L, lm, &call_wait, c, (lua_KContext)c, call_k);
}

LOOM_API lua_State *loom_call_thread(loom_call_t *c) {
  return c->L;
}

LOOM_API void loom_call_set_ud(loom_call_t *c, void *ud) {
  assert(c->state == CALL_BEGUN || c->state == CALL_WAITING);
  c->ud = ud;
}

static void complete(loom_call_t *c, int state, int nresults) {
  /* resolved twice, or from on_cancel */
  assert(c->state == CALL_WAITING || c->state == CALL_BEGUN);
  assert(loom__on_loop_thread(c->lm));  /* never from another thread */
  int waiting = c->state == CALL_WAITING;
  c->state = state;
  c->nresults = nresults;
  if (waiting) loom__wake(c->task);
}

LOOM_API void loom_call_resolve(loom_call_t *c, int nresults) {
  complete(c, CALL_RESOLVED, nresults < 0 ? 0 : nresults);
}

LOOM_API void loom_call_reject(loom_call_t *c) {
  complete(c, CALL_REJECTED, 0);
}
