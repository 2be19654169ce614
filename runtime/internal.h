/*
** internal.h: what the runtime shares with itself and with bindings/.
**
** Ownership in one paragraph: a loom_t is malloc'd by loom_open and freed
** by the __gc of a sentinel userdata in L's registry, so lua_close frees
** it. A task is a full userdata ("loom.Task"); its Lua thread is anchored
** in the task's first user value while it runs, and every unfinished task
** is anchored in the live table (registry), so nothing the scheduler holds
** as a raw pointer can be collected under it.
*/
#ifndef LOOM_INTERNAL_H
#define LOOM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>
#include <lauxlib.h>
#include <uv.h>

#include "loom.h"

#define LOOM_TASK_MT      "loom.Task"
#define LOOM_FUTURE_MT    "loom.Future"
#define LOOM_CANCELLED_MT "loom.Cancelled"

/* Resumes drained from the ready queue in one turn before I/O is polled. */
#define LOOM_READY_BURST 4096
/* Finished threads kept for reuse. */
#define LOOM_THREAD_POOL 64

/* ---- intrusive lists: who waits on a task, a future, a deadline ---- */

typedef struct loom__link { struct loom__link *next, *prev; } loom__link;

typedef struct loom__waiter loom__waiter;
struct loom__waiter {
  loom__link link;  /* first member: a link is its waiter */
  /* Called (from C, never into Lua) when the awaited object finishes;
  ** failed: it ended with an error or a cancellation. */
  void (*fire)(loom__waiter *w, int failed);
};

static inline void loom__list_init(loom__link *head) {
  head->next = head->prev = head;
}
static inline void loom__list_push(loom__link *head, loom__waiter *w) {
  w->link.prev = head->prev;
  w->link.next = head;
  head->prev->next = &w->link;
  head->prev = &w->link;
}
static inline void loom__list_unlink(loom__waiter *w) {
  if (w->link.next == NULL) return;  /* not linked */
  w->link.prev->next = w->link.next;
  w->link.next->prev = w->link.prev;
  w->link.next = w->link.prev = NULL;
}
/* Unlinks and fires every waiter of head, in the order they came. */
void loom__list_fire(loom__link *head, int failed);

/* ---- tasks ---------------------------------------------------------- */

typedef enum {
  LOOM_PENDING,    /* spawned, not started */
  LOOM_RUNNING,    /* started, not finished (also while suspended) */
  LOOM_DONE,
  LOOM_FAILED,
  LOOM_CANCELLED
} loom_state;

/* How a suspended task is resumed. */
enum { LOOM_WAKE_OK = 0, LOOM_WAKE_CANCEL = 1 };

/* task->flags */
#define LOOM_TF_QUEUED     0x01  /* in the ready or next queue */
#define LOOM_TF_SUSPENDED  0x02  /* yielded to the scheduler, waiting */
#define LOOM_TF_CANCEL     0x04  /* cancel requested, not yet delivered */
#define LOOM_TF_RETRIEVED  0x08  /* its failure was retrieved */
#define LOOM_TF_REPORTED   0x10  /* its failure was reported */
#define LOOM_TF_MAIN       0x20  /* the task loom_run waits for */
#define LOOM_TF_CAUSE      0x40  /* an awaited task's failure is stashed */

typedef struct loom_task loom_task_t;

/* What a suspended task waits on: a name for messages and how to let go
** of the wait when the task is cancelled (the hook must not call Lua). */
typedef struct loom__wait {
  const char *what;                    /* "sleep", "a task", ... */
  void (*cancel)(loom_task_t *t);      /* detach; NULL if nothing to do */
} loom__wait;

struct loom_task {
  loom__waiter node;       /* links this task into what it awaits */
  loom__link waiters;      /* who awaits this task */
  lua_State *thread;       /* NULL once finished */
  const loom__wait *wait;  /* what it waits on while suspended */
  void *wait_data;         /* what wait->cancel needs */
  uint32_t live_index;     /* position in the live table, 0 once done */
  uint32_t seq;            /* failed: the order of failure */
  uint32_t nresults;       /* results kept once done */
  int spawn_line;          /* line of the spawn call, -1 if unknown */
  uint8_t state;           /* loom_state */
  uint8_t flags;           /* LOOM_TF_* */
  uint8_t wake;            /* LOOM_WAKE_* for the next resume */
};

/*
** A task userdata has one user value: its thread while pending or running;
** once done, its one result or a table of its results (nresults says
** which); once failed or cancelled, a record {error, traceback, spawner},
** where spawner is the function that called spawn. While the task runs,
** its thread's stack starts [body, task, spawner, fn, args...].
*/
enum { LOOM_REC_ERROR = 1, LOOM_REC_TRACEBACK, LOOM_REC_SPAWNER };

/* ---- the runtime ---------------------------------------------------- */

typedef struct loom__queue {
  loom_task_t **items;
  uint32_t head, count, cap;  /* cap is a power of two */
} loom__queue;

struct loom {
  lua_State *L;              /* the main thread of the state */
  uv_loop_t *loop;
  uv_loop_t own_loop;
  int owns_loop;
  uv_check_t check;          /* drains the queues after each poll */
  uv_idle_t idle;            /* active while work is queued: no blocking */
  loom__queue ready;         /* drained until empty within a turn */
  loom__queue next;          /* moved to ready at the start of a turn */
  loom_task_t *current;      /* the task being resumed, or NULL */
  struct loom__timers *timers;  /* deadlines: bindings/timer.c */
  uint32_t live_count;       /* unfinished tasks */
  int live_ref;              /* registry: array of unfinished tasks */
  int pool_ref;              /* registry: finished threads for reuse */
  int running;               /* inside loom_run */
  int stopping;              /* main task failed or os.exit: stop draining */
  int idle_on;               /* the idle handle is started */
  lua_State *inner;          /* the thread loom resumed last (a task's, or a
                                coroutine in loom's resume): only it may
                                wait, so waits never pass foreign resumes */
  int unyieldable;           /* resumes in progress from where no yield can
                                pass: a wait under them must fail */
  int closing;               /* handles not yet closed, at the end */
  int failed_ref;            /* registry: weak set of failed tasks */
  uint32_t fail_seq;
  uint32_t pool_count;
  int exit_requested, exit_code, exit_close;
  int reported;              /* failures reported since last asked */
  int reported_total;        /* failures reported since the start */
  /* metatables: pointers to recognise them (see testudata), registry
  ** refs to set them; a failed task's has a finalizer (see task.c) */
  const void *task_mt, *failed_task_mt, *future_mt;
  int task_mt_ref, failed_task_mt_ref, future_mt_ref;
  loom_report_fn report;
  void *report_ud;
};

/*
** Finding the runtime. Lua-facing C functions carry its box as upvalue 1
** (loom__up). loom owns LUA_EXTRASPACE: loom_open puts the runtime in the
** main thread's, which threads created later copy; task threads carry it
** tagged with the low bit, which tells a task's thread from any other.
** (Threads created before loom_open hold whatever was there: only
** compared, never followed.)
*/
typedef struct loom__box { loom_t *lm; } loom__box;  /* NULL once closed */

/* The runtime of a Lua-facing C function: its upvalue 1 is the runtime's
** box, a userdata that outlives every finalizer, so a finalizer that runs
** after the runtime closed (lua_close) gets an error, not freed memory. */
static inline loom_t *loom__up(lua_State *L) {
  loom_t *lm = ((loom__box *)lua_touserdata(L, lua_upvalueindex(1)))->lm;
  if (lm == NULL) luaL_error(L, "loom: the runtime is closed");
  return lm;
}
/* Pushes the box, for functions made outside loom__setfuncs. */
void loom__push_box(lua_State *L);

static inline void loom__mark_task_thread(lua_State *T, loom_t *lm) {
  *(uintptr_t *)lua_getextraspace(T) = (uintptr_t)lm | 1;
}
static inline int loom__is_task_thread(lua_State *co, loom_t *lm) {
  return *(uintptr_t *)lua_getextraspace(co) == ((uintptr_t)lm | 1);
}
static inline loom_t *loom__thread_loom(lua_State *T) {
  return (loom_t *)(*(uintptr_t *)lua_getextraspace(T) & ~(uintptr_t)1);
}
/* The userdata at idx if its metatable is mt, else NULL: as
** luaL_testudata, with a pointer compare instead of a lookup by name. */
static inline void *loom__testudata(lua_State *L, int idx, const void *mt) {
  void *p = lua_touserdata(L, idx);
  if (p != NULL && lua_getmetatable(L, idx)) {
    int same = lua_topointer(L, -1) == mt;
    lua_pop(L, 1);
    if (same) return p;
  }
  return NULL;
}
/* As luaL_checkudata, for argument 1 (self) of a method. */
static inline void *loom__checkself(lua_State *L, const void *mt,
                                    const char *tname) {
  void *p = loom__testudata(L, 1, mt);
  if (p == NULL) luaL_typeerror(L, 1, tname);
  return p;
}
/* Makes the metatable on top the one of tname; remembers it in *mt, *ref. */
void loom__keep_metatable(lua_State *L, const void **mt, int *ref);
/* Sets the metatable remembered in ref on the value on top. */
static inline void loom__setmetatable(lua_State *L, int ref) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  lua_setmetatable(L, -2);
}
static inline void loom__setmetatable_at(lua_State *L, int idx, int ref) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  lua_setmetatable(L, idx < 0 ? idx - 1 : idx);
}
/* Registers fns with the runtime as their upvalue 1. */
void loom__setfuncs(lua_State *L, const luaL_Reg *fns);

/* The sentinel yielded to suspend a task; only loom knows its address. */
extern const char loom__suspend_sentinel;
#define LOOM_SUSPEND ((void *)&loom__suspend_sentinel)

/* sched.c */
int loom__sched_init(loom_t *lm);
void loom__sched_close(loom_t *lm);
void loom__wake(loom_task_t *t);      /* make a suspended task ready */
void loom__enqueue_next(loom_t *lm, loom_task_t *t);

/*
** Suspending the running task, in two steps. First, before registering
** the wait anywhere, loom__prepare_suspend: it raises a clear error naming
** fname outside a task or where the task cannot yield, and raises
** Cancelled if a cancellation is pending; it returns the running task.
** Then register the wait and 'return loom__suspend(L, lm, &wait, ctx, k)'.
** The continuation k starts with loom__resumed(L, lm), which raises
** Cancelled if the task was woken to be cancelled (wait->cancel has then
** already detached it).
*/
loom_task_t *loom__prepare_suspend(lua_State *L, loom_t *lm,
                                   const char *fname);
/* Whether L may suspend the running task right now (see above). */
static inline int loom__can_suspend(lua_State *L, loom_t *lm) {
  return lm->current != NULL && L == lm->inner && !lm->unyieldable &&
         lua_isyieldable(L);
}
int loom__suspend(lua_State *L, loom_t *lm, const loom__wait *wait,
                  lua_KContext ctx, lua_KFunction k);
void loom__resumed(lua_State *L, loom_t *lm);

/* task.c */
int loom__open_task(lua_State *L, loom_t *lm);
static inline loom_task_t *loom__totask(lua_State *L, loom_t *lm, int idx) {
  void *p = lua_touserdata(L, idx);  /* NULL if not a task: */
  if (p == NULL || !lua_getmetatable(L, idx)) return NULL;
  const void *mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  return mt == lm->task_mt || mt == lm->failed_task_mt ? p : NULL;
}
/* Pops a function and nargs arguments, pushes the new Task. */
loom_task_t *loom__spawn(lua_State *L, loom_t *lm, int nargs);
void loom__task_resume(loom_t *lm, loom_task_t *t);
int loom__task_cancel(loom_t *lm, loom_task_t *t);  /* 1 if requested */
/* For a finished task at idx: pushes its results and returns their count,
** or raises its error (which counts as retrieving it). */
int loom__task_results(lua_State *L, loom_t *lm, loom_task_t *t, int idx);
void loom__task_first_result(lua_State *L, loom_task_t *t, int idx);
/* Pushes the error of a failed or cancelled task at idx. */
void loom__push_task_error(lua_State *L, int idx);
int loom__await_task(lua_State *L, loom_t *lm, int idx, const char *fname);
/* Waits on one task or future: links me->node into its list of waiters
** (firing wakes me); loom__stop_waiting, the wait's cancel hook, unlinks. */
void loom__wait_on(loom__link *waiters, loom_task_t *me);
void loom__fire_wake(loom__waiter *w, int failed);  /* wakes w's task */
void loom__stop_waiting(loom_task_t *t);
void loom__push_report(lua_State *L, int idx);  /* for a failed task */
int loom__report_failures(loom_t *lm);

/* future.c */
int loom__open_future(lua_State *L, loom_t *lm);
int loom__await_future(lua_State *L, loom_t *lm, int idx, const char *fn);

/* gather.c */
int loom__gather(lua_State *L);

/* error.c */
void loom__open_error(lua_State *L);
void loom__push_cancelled(lua_State *L);
int loom__is_cancelled(lua_State *L, int idx);
int loom__msgh(lua_State *L);   /* the task bodies' message handler */
/* Before 'me' re-raises the error of the failed task at idx: keeps where
** that error came from, for me's traceback to start with. */
void loom__stash_cause(lua_State *L, loom_task_t *me, loom_task_t *failed,
                       int idx);
void loom__drop_cause(lua_State *L, loom_task_t *me);

/* coro.c, api.c, preload.c (serves the Lua files of lib/loom) */
void loom__open_coroutine(lua_State *L);
void loom__open_os(lua_State *L);
void loom__open_api(lua_State *L, loom_t *lm);
void loom__open_preload(lua_State *L);  /* lib/loom and bindings/ */

/* bindings/timer.c */
typedef struct loom__timers loom__timers;
int luaopen_loom_timer(lua_State *L);
int loom__timer_init(loom_t *lm);
uv_handle_t *loom__timer_handle(loom_t *lm);
/* w->fire(w, 0) runs once ms milliseconds of loop time have passed.
** Returns what loom__timer_cancel needs, or NULL if out of memory. */
void *loom__timer_start(loom_t *lm, loom__waiter *w, double ms);
void loom__timer_cancel(loom_t *lm, loom__waiter *w, void *handle);
void loom__timer_close(loom_t *lm);   /* before its handle is closed */
void loom__timer_free(loom_t *lm);    /* once its handle is closed */

#endif
