/*
** watchdog.c: the blocking detector (loom --debug, LOOM_DEBUG=1, or
** loom.debug.enable(ms)). A task that runs for longer than the threshold
** without waiting blocks every other task, timer and I/O; a watchdog
** thread notices while it still blocks and says where.
**
** The loop thread only stamps each task resume (a counter and a start
** time, in loom__task_resume, when the detector is on; one test of a
** pointer when it is off). The watchdog thread wakes a few times per
** threshold; when a resume has lasted the threshold it sets a debug hook
** on the thread running Lua (lua_sethook is the one Lua call meant to be
** made from elsewhere, as lua.c does from its SIGINT handler). The hook
** runs on the loop thread at the next Lua instruction, call or return,
** prints the warning with the traceback of the blocking line, and puts
** back the hook that was there.
**
** If the hook does not run soon, the task is inside a C function
** (os.execute, io.read on a pipe, a C module). If the loop thread uses
** no CPU meanwhile, it is asleep in the kernel and its Lua stack is still:
** the watchdog reads it (lua_getstack and lua_getinfo, which only read)
** and warns at once; if it is busy in C, the watchdog warns without a
** traceback and the hook shows where when the C function returns. When a
** resume that was warned about ends, the time it took in all is said.
** Warnings go through the report hook (loom_set_report), from the loop
** thread, or from the watchdog thread in the case above.
**
** The watchdog reads lm->inner and hooks that thread within microseconds;
** a coroutine that ended and was collected in exactly that window would
** be touched after its end (the same bet lua.c makes with its SIGINT
** handler). A debugging aid, off by default.
*/
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

struct loom__watch {
  loom_t *lm;
  loom__closer closer;
  uv_thread_t thread;
  uv_mutex_t lock;
  uv_cond_t cond;
  uint64_t threshold_ns;
  int stop;
  /* written by the loop thread, read by the watchdog (atomics) */
  uint64_t seq;        /* resumes begun */
  uint64_t start;      /* uv_hrtime() when the current one began */
  int busy;            /* a resume is running */
  /* the watchdog's, for one resume */
  uint64_t acted;      /* the resume it set the hook for */
  uint64_t warned;     /* ... and warned about */
  uint64_t shown;      /* ... and showed the traceback of */
  lua_State *hooked;   /* the thread its hook is on, or NULL */
  lua_Hook old_hook;   /* the hook that was there */
  int old_mask, old_count;
  int fired;           /* the hook ran for 'acted' */
};

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)

static void report(loom_t *lm, const char *text) {
  lm->report(lm, text, lm->report_ud);
}

/* ---- the hook (loop thread) ----------------------------------------- */

/* [] -> [the warning text], under pcall: the hook must not raise. */
static int warning_text(lua_State *L) {
  loom__watch *w = lua_touserdata(L, 1);
  lua_State *T = lua_touserdata(L, 2);
  double ms = (double)(uv_hrtime() - LOAD(w->start)) / 1e6;
  lua_pushfstring(L, "warning: a task has blocked the loop for %d ms (no "
                  "other task, timer or I/O can run meanwhile); it is "
                  "running:\n", (int)ms);
  luaL_traceback(L, T, NULL, 1);  /* from below the hook itself */
  size_t len;  /* less the task body's frames, C functions nobody wrote */
  const char *tb = lua_tolstring(L, -1, &len);
  while (len >= 11 && memcmp(tb + len - 11, "\n\t[C]: in ?", 11) == 0)
    len -= 11;
  lua_pushlstring(L, tb, len);
  lua_remove(L, -2);
  lua_concat(L, 2);
  loom_task_t *t = w->lm->current;
  if (t != NULL) {
    loom__describe_task(L, NULL, t);
    if (lua_gettop(L) > 3 && lua_rawlen(L, -1) > 0) {
      lua_pushliteral(L, "\n(the task");
      lua_insert(L, -2);
      lua_concat(L, 3);
    } else if (lua_gettop(L) > 3) {
      lua_pop(L, 1);
    }
  }
  return 1;
}

static void watch_hook(lua_State *L, lua_Debug *ar) {
  loom_t *lm = loom_get(L);
  loom__watch *w = lm ? lm->watch : NULL;
  (void)ar;
  if (w == NULL) {
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  uv_mutex_lock(&w->lock);
  if (w->hooked == L) {
    lua_sethook(L, w->old_hook, w->old_mask, w->old_count);
    w->hooked = NULL;
  } else {
    lua_sethook(L, NULL, 0, 0);  /* a stale one */
  }
  int show = LOAD(w->busy) && w->acted != 0 && w->acted == LOAD(w->seq) &&
             w->shown != w->acted;
  if (show) w->shown = w->warned = w->acted;
  w->fired = 1;
  uv_cond_signal(&w->cond);
  uv_mutex_unlock(&w->lock);
  if (!show || !lua_checkstack(L, 12)) return;
  lua_pushcfunction(L, warning_text);
  lua_pushlightuserdata(L, w);
  lua_pushlightuserdata(L, L);
  if (lua_pcall(L, 2, 1, 0) == LUA_OK) report(lm, lua_tostring(L, -1));
  lua_pop(L, 1);
}

/* ---- stamping resumes (loop thread) ---------------------------------- */

void loom__watch_begin(loom__watch *w) {
  STORE(w->start, uv_hrtime());
  STORE(w->seq, w->seq + 1);
  STORE(w->busy, 1);
}

/* T: the task's thread, alive here: a hook left on it comes off now (one
** left on a coroutine comes off when it runs; the coroutine may be gone). */
void loom__watch_end(loom__watch *w, lua_State *T) {
  STORE(w->busy, 0);
  uv_mutex_lock(&w->lock);
  int warned = w->warned != 0 && w->warned == w->seq;
  if (w->hooked == T && T != NULL) {
    lua_sethook(T, w->old_hook, w->old_mask, w->old_count);
    w->hooked = NULL;
  }
  uv_mutex_unlock(&w->lock);
  if (warned) {
    char text[128];
    snprintf(text, sizeof text, "warning: the task blocked the loop for "
             "%.3f s in all", (double)(uv_hrtime() - w->start) / 1e9);
    report(w->lm, text);
  }
}

/* ---- the watchdog thread -------------------------------------------- */

static uint64_t thread_cpu_ns(uv_thread_t th) {
  clockid_t cid;
  struct timespec ts;
  if (pthread_getcpuclockid(th, &cid) != 0 || clock_gettime(cid, &ts) != 0)
    return UINT64_MAX;
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The traceback of T, read from this thread while the loop thread sleeps
** in a C function (lua_getstack and lua_getinfo "Sln" only read). */
static void read_stack(lua_State *T, char *buf, size_t size) {
  lua_Debug ar;
  size_t used = (size_t)snprintf(buf, size, "stack traceback:");
  for (int level = 0; used < size && lua_getstack(T, level, &ar);
       level++) {
    if (level == 12) {
      snprintf(buf + used, size - used, "\n\t...");
      return;
    }
    if (used >= size) break;
    if (!lua_getinfo(T, "Sln", &ar)) break;
    if (ar.currentline > 0)
      used += (size_t)snprintf(buf + used, size - used, "\n\t%s:%d: in ",
                               ar.short_src, ar.currentline);
    else
      used += (size_t)snprintf(buf + used, size - used, "\n\t%s: in ",
                               ar.short_src);
    if (used >= size) break;
    if (ar.name != NULL)
      used += (size_t)snprintf(buf + used, size - used, "%s '%s'",
                               *ar.namewhat ? ar.namewhat : "function",
                               ar.name);
    else if (*ar.what == 'm')
      used += (size_t)snprintf(buf + used, size - used, "main chunk");
    else if (*ar.what == 'C')
      used += (size_t)snprintf(buf + used, size - used, "?");
    else
      used += (size_t)snprintf(buf + used, size - used,
                               "function <%s:%d>", ar.short_src,
                               ar.linedefined);
  }
}

/* A resume has lasted the threshold: find out where it is. Called and
** returns with the lock held. */
static void act(loom__watch *w, uint64_t seq) {
  loom_t *lm = w->lm;
  lua_State *T = LOAD(lm->inner);
  w->acted = seq;
  w->fired = 0;
  if (T == NULL) return;
  w->hooked = T;
  w->old_hook = lua_gethook(T);
  w->old_mask = lua_gethookmask(T);
  w->old_count = lua_gethookcount(T);
  lua_sethook(T, watch_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE |
              LUA_MASKCOUNT, 1);
  /* the hook runs at once if Lua code is running */
  uint64_t grace = w->threshold_ns / 5 + 5000000u;
  uint64_t cpu0 = thread_cpu_ns(lm->loop_thread);
  uv_cond_timedwait(&w->cond, &w->lock, grace);
  if (w->fired || w->stop || LOAD(w->seq) != seq || !LOAD(w->busy)) return;
  uint64_t cpu1 = thread_cpu_ns(lm->loop_thread);
  int asleep = cpu0 != UINT64_MAX && cpu1 != UINT64_MAX &&
               cpu1 - cpu0 < grace / 10;
  char text[2048];
  size_t n = (size_t)snprintf(text, sizeof text, "warning: a task has "
    "blocked the loop for %d ms (no other task, timer or I/O can run "
    "meanwhile) inside a C function",
    (int)((uv_hrtime() - LOAD(w->start)) / 1000000u));
  if (asleep) {
    snprintf(text + n, sizeof text - n, " that waits (a blocking call, "
             "such as os.execute, io.read or a C module's); it is "
             "running:\n");
    n = strlen(text);
    read_stack(T, text + n, sizeof text - n);
    n = strlen(text);  /* less the task body's frames, as above */
    while (n >= 11 && memcmp(text + n - 11, "\n\t[C]: in ?", 11) == 0)
      text[n -= 11] = '\0';
    if (LOAD(w->seq) != seq || w->fired) return;  /* it moved meanwhile */
    w->shown = seq;
  } else {
    snprintf(text + n, sizeof text - n, " that computes; where it was "
             "called from is shown when it returns");
  }
  w->warned = seq;
  uv_mutex_unlock(&w->lock);
  report(lm, text);
  uv_mutex_lock(&w->lock);
}

static void watchdog(void *arg) {
  loom__watch *w = arg;
  uint64_t period = w->threshold_ns / 4;
  if (period < 2000000u) period = 2000000u;
  uv_mutex_lock(&w->lock);
  while (!w->stop) {
    uv_cond_timedwait(&w->cond, &w->lock, period);
    if (w->stop) break;
    uint64_t seq = LOAD(w->seq);
    if (!LOAD(w->busy) || seq == w->acted) continue;
    if (uv_hrtime() - LOAD(w->start) < w->threshold_ns) continue;
    if (LOAD(w->seq) != seq) continue;
    act(w, seq);
  }
  uv_mutex_unlock(&w->lock);
}

/* ---- on and off ----------------------------------------------------- */

static void watch_free(loom_t *lm) {
  loom__watch *w = lm->watch;
  if (w == NULL) return;
  lm->watch = NULL;
  uv_mutex_lock(&w->lock);
  w->stop = 1;
  uv_cond_signal(&w->cond);
  uv_mutex_unlock(&w->lock);
  uv_thread_join(&w->thread);
  /* a hook still set goes when it runs: it finds no watch and clears */
  loom__remove_closer(&w->closer);
  uv_cond_destroy(&w->cond);
  uv_mutex_destroy(&w->lock);
  free(w);
}

static void watch_close(loom_t *lm, loom__closer *c) {
  (void)c;
  watch_free(lm);
}

void loom__watch_stop(loom_t *lm) {
  watch_free(lm);
}

int loom__watch_start(loom_t *lm, double ms) {
  loom__watch_stop(lm);
  loom__watch *w = calloc(1, sizeof *w);
  if (w == NULL) return UV_ENOMEM;
  w->lm = lm;
  w->threshold_ns = (uint64_t)(ms * 1e6);
  int r = uv_mutex_init(&w->lock);
  if (r != 0) {
    free(w);
    return r;
  }
  if ((r = uv_cond_init(&w->cond)) != 0) {
    uv_mutex_destroy(&w->lock);
    free(w);
    return r;
  }
  if ((r = uv_thread_create(&w->thread, watchdog, w)) != 0) {
    uv_cond_destroy(&w->cond);
    uv_mutex_destroy(&w->lock);
    free(w);
    return r;
  }
  w->closer.close = watch_close;
  loom__add_closer(lm, &w->closer);
  lm->watch = w;
  return 0;
}
