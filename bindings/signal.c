/*
** signal.c: the C side of loom.signal (lib/loom/signal.lua has wait and
** on): subscriptions to a signal, each counting the deliveries it has not
** yet been waited for, on one uv_signal_t per signal and runtime; and
** Ctrl-C as the loom command handles it for scripts (loom_catch_sigint in
** loom.h): the first SIGINT cancels the main task (and Lua code running
** at that moment, which may never wait: a busy loop), the second ends the
** process at once.
**
** A signal's handle is referenced (keeps the loop alive) only while a task
** waits on it with keepalive (signal.wait), not for listeners (signal.on),
** as in Node.
**
** The default SIGINT handler is a plain sigaction handler, not libuv's, so
** that the second Ctrl-C works even while a task keeps the loop busy: it
** kills the process with SIGINT from inside the handler. The first one
** reaches the loop through a uv_async_t (async-signal-safe). A task that
** subscribes to SIGINT takes it over (libuv's handler replaces ours) until
** its subscription ends, when ours is put back.
*/
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"

/* ---- subscriptions -------------------------------------------------- */

typedef struct lsig {
  uv_signal_t h;          /* first: the handle is the record */
  loom_t *lm;
  loom__io *io;
  loom__closer closer;
  int signum;
  loom__link subs;        /* the subscriptions (sigsub.link) */
  int refs;               /* keepalive waiters: referenced while > 0 */
  uint8_t closing;
} lsig;

typedef struct sigstate {
  lsig *by_num[65];
  loom__closer closer;
} sigstate;

typedef struct sigsub {
  uint32_t tag;           /* LOOM_SIGSUB_TAG */
  loom__link link;        /* in its lsig's subs */
  lsig *sig;              /* NULL once closed */
  sigstate *state;
  int signum;
  int pending;            /* deliveries not yet waited for */
  loom_task_t *waiter;
  uint8_t waiting, keepalive;
} sigsub;

static void default_reinstall(void);

static void on_sig_closed(uv_handle_t *h) {
  lsig *g = (lsig *)h;
  loom__io_count(g->lm, &g->io->handles, -1);
  free(g);
}

static void sig_close(lsig *g) {
  if (g->closing) return;
  g->closing = 1;
  loom__remove_closer(&g->closer);
  loom__close_handle(g->lm, (uv_handle_t *)&g->h, on_sig_closed);
  if (g->signum == SIGINT) default_reinstall();  /* libuv left SIG_DFL */
}

static void sig_close_with_runtime(loom_t *lm, loom__closer *c) {
  (void)lm;
  sig_close((lsig *)((char *)c - offsetof(lsig, closer)));
}

static void state_close(loom_t *lm, loom__closer *c) {
  sigstate *st = (sigstate *)((char *)c - offsetof(sigstate, closer));
  (void)lm;
  for (int i = 0; i < 65; i++)
    if (st->by_num[i] != NULL) sig_close(st->by_num[i]);
  free(st);
}

static sigstate *state_of(lua_State *L, loom__io *io) {
  if (io->signals == NULL) {
    sigstate *st = calloc(1, sizeof *st);
    if (st == NULL) luaL_error(L, "loom.signal: not enough memory");
    st->closer.close = state_close;
    loom__add_closer(io->lm, &st->closer);
    io->signals = st;
  }
  return io->signals;
}

static void on_signal(uv_signal_t *h, int signum) {
  lsig *g = (lsig *)h;
  (void)signum;
  for (loom__link *l = g->subs.next; l != &g->subs; l = l->next) {
    sigsub *s = (sigsub *)((char *)l - offsetof(sigsub, link));
    s->pending++;
    if (s->waiting) {
      s->waiting = 0;
      if (s->keepalive && --g->refs == 0) uv_unref((uv_handle_t *)&g->h);
      loom__wake(s->waiter);
    }
  }
}

static void stop_waiting(sigsub *s) {
  if (!s->waiting) return;
  s->waiting = 0;
  if (s->keepalive && s->sig && --s->sig->refs == 0)
    uv_unref((uv_handle_t *)&s->sig->h);
}

/* Ends s (unlinks it; the last one closes the handle). */
static void sub_end(sigsub *s, int wake) {
  lsig *g = s->sig;
  if (g == NULL) return;
  int was_waiting = s->waiting;
  stop_waiting(s);
  loom__link_unlink(&s->link);
  s->sig = NULL;
  if (loom__list_empty(&g->subs)) {
    s->state->by_num[g->signum] = NULL;
    sig_close(g);
  }
  if (wake && was_waiting) loom__wake(s->waiter);
}

static sigsub *checksub(lua_State *L) {
  return loom__type_check(L, &loom__io_get(L)->sigsub_type,
                          LOOM_SIGSUB_TAG);
}

/* subscribe(name [, keepalive]) -> a subscription */
static int l_subscribe(lua_State *L) {
  int signum = loom__io_checksignal(L, 1, "subscribe");
  int keepalive = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
  if (signum == SIGSEGV || signum == SIGBUS || signum == SIGFPE ||
      signum == SIGILL)  /* caught, a fault would repeat forever */
    return loom__io_error2(L, "subscribe", "EINVAL", "a fault signal "
                           "cannot be waited for", "signal",
                           loom__io_signame(signum));
  loom__io *io = loom__io_get(L);
  sigstate *st = state_of(L, io);
  sigsub *s = loom__type_new(L, &io->sigsub_type, 0, LOOM_SIGSUB_TAG);
  lsig *g = st->by_num[signum];
  if (g == NULL) {
    g = calloc(1, sizeof *g);
    if (g == NULL) return luaL_error(L, "subscribe: not enough memory");
    int r = uv_signal_init(loom_loop(io->lm), &g->h);
    if (r != 0) {
      free(g);
      return loom__io_error(L, "subscribe", r, NULL, NULL);
    }
    g->lm = io->lm;
    g->io = io;
    g->signum = signum;
    loom__list_init(&g->subs);
    g->closer.close = sig_close_with_runtime;
    loom__add_closer(io->lm, &g->closer);
    io->handles++;
    r = uv_signal_start(&g->h, on_signal, signum);
    if (r != 0) {
      sig_close(g);
      return loom__io_error2(L, "subscribe", uv_err_name(r),
                             "this signal cannot be caught", "signal",
                             loom__io_signame(signum));
    }
    uv_unref((uv_handle_t *)&g->h);
    st->by_num[signum] = g;
  }
  s->sig = g;
  s->state = st;
  s->signum = signum;
  s->keepalive = (uint8_t)keepalive;
  loom__link_push(&g->subs, &s->link);
  return 1;
}

static void sub_cancel(loom_task_t *t, void *data, int woken) {
  sigsub *s = data;
  (void)t;
  if (woken) return;  /* the delivery stays counted for the next wait */
  stop_waiting(s);
}

static const loom__wait sig_wait = { "a signal", sub_cancel, NULL };

static int take(lua_State *L, sigsub *s) {
  if (s->pending == 0) {  /* closed */
    lua_pushnil(L);
    return 1;
  }
  s->pending--;
  lua_pushstring(L, loom__io_signame(s->signum));
  return 1;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  loom__resumed(L, loom__up(L));
  return take(L, lua_touserdata(L, 1));
}

/* sub:wait() -> the signal's name, or nil once the subscription ended */
static int sub_wait(lua_State *L) {
  sigsub *s = checksub(L);
  lua_settop(L, 1);
  if (s->pending > 0 || s->sig == NULL) return take(L, s);
  if (s->waiting)
    return loom__io_error2(L, "wait", "EBUSY", "another task waits on "
                           "this subscription", NULL, NULL);
  loom_t *lm = loom__up(L);
  s->waiter = loom__prepare_suspend(L, lm, "wait");
  s->waiting = 1;
  if (s->keepalive && s->sig->refs++ == 0)
    uv_ref((uv_handle_t *)&s->sig->h);
  return loom__suspend(L, lm, &sig_wait, s, 0, wait_k);
}

static int sub_close(lua_State *L) {
  sub_end(checksub(L), 1);
  return 0;
}

static int sub_gc(lua_State *L) {
  sub_end(lua_touserdata(L, 1), 0);
  return 0;
}

static int sub_tostring(lua_State *L) {
  sigsub *s = checksub(L);
  lua_pushfstring(L, "loom.Subscription: %s%s",
                  loom__io_signame(s->signum) ? loom__io_signame(s->signum)
                                              : "?",
                  s->sig ? "" : " (closed)");
  return 1;
}

/* number(name) -> the signal's number, or nil if it has no such name */
static int l_number(lua_State *L) {
  if (lua_type(L, 1) == LUA_TNUMBER) {
    lua_Integer n = lua_isinteger(L, 1) ? lua_tointeger(L, 1) : 0;
    if (n >= 1 && n <= 64) lua_pushinteger(L, n);
    else lua_pushnil(L);
    return 1;
  }
  const char *name = lua_tostring(L, 1);
  if (name == NULL || lua_type(L, 1) != LUA_TSTRING) {
    lua_pushnil(L);
    return 1;
  }
  for (int i = 1; i <= 64; i++) {
    const char *n = loom__io_signame(i);
    if (n != NULL && (strcmp(n, name) == 0 || strcmp(n + 3, name) == 0)) {
      lua_pushinteger(L, i);
      return 1;
    }
  }
  lua_pushnil(L);
  return 1;
}

/* raise(name): sends the signal to this process (tests, mostly). */
static int l_raise(lua_State *L) {
  int signum = loom__io_checksignal(L, 1, "raise");
  if (raise(signum) != 0) return luaL_error(L, "raise: cannot send it");
  return 0;
}

/* ---- Ctrl-C for the loom command ------------------------------------ */

/* One per process (signals are), owned by the runtime that asked. */
static struct {
  loom_t *lm;
  lua_State *L;
  uv_async_t *async;
  loom__closer closer;
  int task_ref;
  loom_task_t *main;       /* the task at task_ref */
  int interrupted;
  /* A Ctrl-C set the hook and it has not fired yet; it fired in the main
  ** task (which then needs no second cancellation from the loop). */
  volatile sig_atomic_t hook_armed, hook_hit_main;
} dflt;
static volatile sig_atomic_t sigint_hits;
static const char sigint_reason = 0;

/* Ends the process as killed by SIGINT (so a shell sees it was), also
** from inside the handler, where SIGINT is blocked until it returns. */
static void die_by_sigint(void) {
  sigset_t set;
  signal(SIGINT, SIG_DFL);
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  raise(SIGINT);
  _exit(130);  /* if it could not be delivered: end all the same */
}

/* Set from the handler on the thread running Lua: Lua code that never
** waits (a busy loop) is cancelled where it is, as at a wait point. */
static void interrupt_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  if (!dflt.hook_armed) return;  /* the loop saw this Ctrl-C first */
  dflt.hook_armed = 0;
  if (dflt.lm != NULL && loom__running_task(dflt.lm) == dflt.main)
    dflt.hook_hit_main = 1;
  dflt.interrupted = 1;
  loom__push_cancelled(L, &sigint_reason);
  lua_pushliteral(L, "interrupted");
  lua_setfield(L, -2, "message");
  lua_error(L);
}

static void on_sigint(int sig) {
  (void)sig;
  if (++sigint_hits >= 2 || dflt.async == NULL) die_by_sigint();
  lua_State *T = dflt.lm != NULL ? loom_running(dflt.lm) : NULL;
  if (T != NULL) {  /* lua_sethook is safe here: lua.c's laction does it */
    dflt.hook_armed = 1;
    lua_sethook(T, interrupt_hook,
                LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
  }
  uv_async_send(dflt.async);
}

static void default_reinstall(void) {
  if (dflt.async == NULL) return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
}

/* On the loop: the first Ctrl-C cancels the main task (or, once it has
** finished and only background work is left, ends the process), unless
** the hook already interrupted the main task where it ran: cancelling it
** again would cut short the cleanup that Ctrl-C started. A hook that has
** not fired is disarmed, for the same reason. */
static void on_sigint_async(uv_async_t *h) {
  (void)h;
  if (sigint_hits == 0 || dflt.lm == NULL) return;
  dflt.hook_armed = 0;
  if (dflt.hook_hit_main) return;
  lua_State *L = dflt.L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, dflt.task_ref);
  loom_task_t *t = lua_touserdata(L, -1);
  lua_pop(L, 1);
  dflt.interrupted = 1;
  if (t == NULL || !loom__cancel(dflt.lm, t, &sigint_reason))
    die_by_sigint();
}

static void on_async_closed(uv_handle_t *h) {
  free(h);
}

static void default_close(loom_t *lm, loom__closer *c) {
  (void)c;
  if (dflt.async != NULL) {
    loom__close_handle(lm, (uv_handle_t *)dflt.async, on_async_closed);
    dflt.async = NULL;
    signal(SIGINT, SIG_DFL);
  }
  dflt.lm = NULL;
}

LOOM_API int loom_catch_sigint(lua_State *L, int idx) {
  loom_t *lm = loom_get(L);
  if (lm == NULL || luaL_testudata(L, idx, "loom.Task") == NULL)
    return UV_EINVAL;
  if (dflt.lm != NULL) return UV_EBUSY;
  uv_async_t *a = malloc(sizeof *a);
  if (a == NULL) return UV_ENOMEM;
  int r = uv_async_init(loom_loop(lm), a, on_sigint_async);
  if (r != 0) {
    free(a);
    return r;
  }
  uv_unref((uv_handle_t *)a);
  lua_pushvalue(L, idx);
  dflt.task_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  dflt.lm = lm;
  dflt.L = L;
  dflt.main = lua_touserdata(L, idx);
  dflt.interrupted = 0;
  dflt.hook_armed = dflt.hook_hit_main = 0;
  dflt.closer.close = default_close;
  loom__add_closer(lm, &dflt.closer);
  sigint_hits = 0;
  dflt.async = a;
  default_reinstall();
  return 0;
}

LOOM_API int loom_interrupted(loom_t *lm) {
  return dflt.lm == lm && dflt.interrupted;
}

/* ---- the module ----------------------------------------------------- */

static void open_sigsub_type(lua_State *L, loom__io *io) {
  static const luaL_Reg methods[] = {
    {"wait", sub_wait}, {"close", sub_close}, {NULL, NULL}
  };
  static const luaL_Reg metamethods[] = {
    {"__gc", sub_gc}, {"__close", sub_close}, {"__tostring", sub_tostring},
    {NULL, NULL}
  };
  loom__io_type(L, &io->sigsub_type, "loom.Subscription", sizeof(sigsub),
                metamethods, methods, NULL);
}

int luaopen_loom_signal(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"subscribe", l_subscribe}, {"raise", l_raise}, {"number", l_number},
    {NULL, NULL}
  };
  if (loom_get(L) == NULL)
    return luaL_error(L, "loom.signal: require \"loom\" first");
  open_sigsub_type(L, loom__io_of(L));
  lua_createtable(L, 0, 2);
  loom__setfuncs(L, fns);
  return 1;
}
