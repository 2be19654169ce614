/*
** internal.h: what the runtime shares with itself. Bindings see only
** binding.h; this adds the runtime's record and the tasks' insides.
**
** Ownership in one paragraph: a loom_t is malloc'd by loom_open and freed
** after the __gc of its box (a userdata in L's registry) closed its
** handles, so lua_close frees it. A task is a full userdata ("loom.Task").
** Every unfinished task and its Lua thread are anchored together in the
** live table (registry), never through anything Lua code can reach by the
** debug library's object functions, so nothing the scheduler holds as a
** raw pointer can be collected under it.
*/
#ifndef LOOM_INTERNAL_H
#define LOOM_INTERNAL_H

#include "binding.h"

#define LOOM_TASK_MT      "loom.Task"
#define LOOM_FUTURE_MT    "loom.Future"
#define LOOM_CANCELLED_MT "loom.Cancelled"
#define LOOM_FAILURE_MT   "loom.Failure"

/* The first word of each loom userdata (see loom__type_test). */
#define LOOM_TASK_TAG    0x6b736174u  /* "task" */
#define LOOM_FUTURE_TAG  0x75747566u  /* "futu" */
#define LOOM_FAILURE_TAG 0x6c696166u  /* "fail" */
#define LOOM_GATHER_TAG  0x68746167u  /* "gath" */
#define LOOM_CALL_TAG    0x6c6c6163u  /* "call" */
#define LOOM_QUEUE_TAG   0x75657571u  /* "queu" */
#define LOOM_EVENT_TAG   0x6e657665u  /* "even" */
#define LOOM_SEM_TAG     0x616d6573u  /* "sema" */
#define LOOM_GUARD_TAG   0x72617567u  /* "guar" */
#define LOOM_TIMEOUT_TAG 0x656d6974u  /* "time" */
#define LOOM_GROUP_TAG   0x756f7267u  /* "grou" */
#define LOOM_WAITSET_TAG 0x74696177u  /* "wait" */
#define LOOM_LOADING_TAG 0x64616f6cu  /* "load" */

/* Resumes drained from the ready queue in one turn before I/O is polled. */
#define LOOM_READY_BURST 4096
/* Spawns in one turn that make a burst, and the collector's pause while
** it lasts (see sched.c). */
#define LOOM_BURST_SPAWNS 1024
#define LOOM_BURST_PAUSE  1000
/* Finished threads kept for reuse. */
#define LOOM_THREAD_POOL 64

/* ---- tasks ---------------------------------------------------------- */

typedef enum {
  LOOM_PENDING,    /* spawned, not started */
  LOOM_RUNNING,    /* started, not finished (also while suspended) */
  LOOM_DONE,
  LOOM_FAILED,
  LOOM_CANCELLED
} loom_state;

/* task->flags */
#define LOOM_TF_QUEUED     0x01  /* in the ready or next queue */
#define LOOM_TF_SUSPENDED  0x02  /* yielded to the scheduler, waiting */
#define LOOM_TF_CANCEL     0x04  /* cancel requested, not yet delivered */
#define LOOM_TF_WOKEN_CANCEL 0x08  /* queued to raise Cancelled */
#define LOOM_TF_MAIN       0x10  /* the task loom_run waits for */
#define LOOM_TF_CAUSE      0x20  /* an awaited task's failure is stashed */

struct loom_task {
  uint32_t tag;            /* LOOM_TASK_TAG */
  uint32_t live_index;     /* its pair in the live table, 0 once done */
  loom__waiter node;       /* links this task into what it awaits */
  loom__link waiters;      /* who awaits this task */
  lua_State *thread;       /* NULL once finished */
  const loom__wait *wait;  /* what it waits on while suspended */
  void *wait_data;         /* the wait's data; with LOOM_TF_CANCEL or
                              LOOM_TF_WOKEN_CANCEL, the cancel's reason */
  uint32_t nresults;       /* results kept once done */
  int spawn_line;          /* line of the spawn call, -1 if unknown */
  struct loom__timeout *timeouts;  /* innermost loom.timeout running in
                                      it, or NULL (timeout.c) */
  uint8_t state;           /* loom_state */
  uint8_t flags;           /* LOOM_TF_* */
};

/*
** A task userdata has one user value: nil while it runs; once done, its
** results (loom__pack); once failed or cancelled, a loom.Failure (error.c).
** While it runs, its thread's stack starts [body, task, spawner, fn,
** args...], where spawner is the function that called spawn.
*/

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
  loom_task_t *main_task;    /* the task loom_run waits for, or NULL */
  struct loom__deadlines *deadlines;  /* deadline.c */
  uint32_t live_count;       /* unfinished tasks */
  uint32_t live_top;         /* highest pair index of the live table: the
                                pairs 1..live_top hold them, with holes */
  uint32_t *live_free;       /* the holes' indexes (task.c) */
  uint32_t live_free_count, live_free_cap;
  int live_ref;              /* registry: [task, thread] pairs, unfinished */
  int pool_ref;              /* registry: finished threads for reuse */
  int running;               /* inside loom_run */
  int stopping;              /* main task failed or os.exit: stop draining */
  int exiting;               /* os.exit is closing: nothing may run now */
  int idle_on;               /* the idle handle is started */
  lua_State *inner;          /* the thread loom resumed last (a task's, or a
                                coroutine in loom's resume): only it may
                                wait, so waits never pass foreign resumes */
  int unyieldable;           /* resumes in progress from where no yield can
                                pass: a wait under them must fail */
  int closed;                /* the state is closing: late callbacks free */
  int holds;                 /* handles closing, requests in flight */
  int sched_open;            /* the scheduler's handles are open */
  uv_thread_t loop_thread;   /* that opened it, or last ran loom_run */
  loom__link calls;          /* async C functions waiting (call.c) */
  loom__closer calls_closer;
  struct loom_call *begun_call;  /* begun, not yet suspended */
  loom__closer closers;      /* bindings' teardown steps (list head) */
  loom__link failures;       /* unreported failures, in the order they
                                failed (error.c) */
  int failure_index_ref;     /* registry: weak, address -> failure */
  int failure_set_ref;       /* registry: weak keys, failure -> true */
  int failure_handled;       /* set by a waiter's fire: it takes the
                                failure of the finishing task as seen (a
                                gather: as Promise.all and asyncio do) */
  uint32_t pool_count;
  int exit_requested, exit_code, exit_close;
  int reported;              /* failures reported since last asked */
  int reported_total;        /* failures reported since the start */
  loom__type task_type, future_type, failure_type;
  loom__type timeout_type, group_type, waitset_type;    /* toolkit */
  loom__type guard_type;     /* sync.c */
  struct loom__watch *watch; /* the blocking detector, or NULL (watchdog.c) */
  int anchors_ref;           /* registry: armed deadline records (timeout.c) */
  uint32_t anchors;
  loom_report_fn report;
  void *report_ud;
  struct loom__post *post;   /* loom_post's queue (post.c) */
  int sched_error;           /* memory ran out in the scheduler: stopped */
  uint32_t turn_spawns;      /* tasks spawned since the turn began */
  int burst_pause;           /* while a spawn burst is paced: the GC pause
                                to restore after it; else 0 (sched.c) */
  uint32_t live_high;        /* most unfinished tasks at a turn's end */
};

/* loom owns LUA_EXTRASPACE: loom_open puts the runtime in the main
** thread's, which threads created later copy. The low bits tag it: 1 on
** a task's own thread, 2 on a coroutine parked in a wait (coro.c). Threads
** created before loom_open hold whatever was there: only compared, never
** followed. */
#define LOOM_XS_TASK   1u
#define LOOM_XS_PARKED 2u
#define LOOM_XS_BITS   3u

static inline uintptr_t *loom__xs(lua_State *T) {
  return (uintptr_t *)lua_getextraspace(T);
}
static inline void loom__mark_task_thread(lua_State *T, loom_t *lm) {
  *loom__xs(T) = (uintptr_t)lm | LOOM_XS_TASK;
}
static inline int loom__is_task_thread(lua_State *co, loom_t *lm) {
  return *loom__xs(co) == ((uintptr_t)lm | LOOM_XS_TASK);
}
static inline loom_t *loom__thread_loom(lua_State *T) {
  return (loom_t *)(*loom__xs(T) & ~(uintptr_t)LOOM_XS_BITS);
}

static inline loom_task_t *loom__totask(lua_State *L, loom_t *lm, int idx) {
  return loom__type_test(L, idx, &lm->task_type, LOOM_TASK_TAG);
}

/* The sentinel yielded to suspend a task; only loom knows its address. */
extern const char loom__suspend_sentinel;
#define LOOM_SUSPEND ((void *)&loom__suspend_sentinel)

/* sched.c */
int loom__sched_init(loom_t *lm);
void loom__sched_close(loom_t *lm);
/* Makes room in the queues for every live task (so waking, from a
** callback, never allocates); raises a memory error if it cannot. */
void loom__sched_reserve(lua_State *L, loom_t *lm);
/* The same for n tasks, without raising: 0, or -1 if out of memory. */
int loom__sched_room(loom_t *lm, uint32_t n);
void loom__enqueue_ready(loom_t *lm, loom_task_t *t);
/* A spawn: paces the collector when many come in one turn (sched.c). */
static inline void loom__count_spawn(lua_State *L, loom_t *lm) {
  void loom__pace_burst(lua_State *L, loom_t *lm);
  if (++lm->turn_spawns == LOOM_BURST_SPAWNS) loom__pace_burst(L, lm);
}
void loom__enqueue_next(loom_t *lm, loom_task_t *t);

static inline int loom__on_loop_thread(loom_t *lm) {
  uv_thread_t self = uv_thread_self();
  return uv_thread_equal(&self, &lm->loop_thread);
}

/* call.c */
void loom__open_calls(loom_t *lm);
void loom__call_abandoned(loom_t *lm);  /* when the running task yields */

/* wait.c: loom__prepare_suspend ... loom__cancel (binding.h), and: */
/* Lets go of whatever t waits on (its cancel hook), as if cancelled, and
** makes sure the scheduler never resumes it: for a thread about to be
** reset outside the scheduler. */
void loom__detach(loom_t *lm, loom_task_t *t);
void loom__fire_wake(loom__waiter *w, int failed);  /* wakes w's task */
/* For a task waiting on a task (deadlock reports): its spawn site. */
void loom__describe_task(lua_State *L, loom_task_t *t, void *data);

/* task.c */
int loom__open_task(lua_State *L, loom_t *lm);
/* Pops a function and nargs arguments, pushes the new Task. fname names
** the caller in errors. */
loom_task_t *loom__spawn(lua_State *L, loom_t *lm, int nargs,
                         const char *fname);
void loom__task_resume(loom_t *lm, loom_task_t *t);
/* For a finished task at idx: pushes its results and returns their count,
** or raises its error (which counts as retrieving it). */
int loom__task_results(lua_State *L, loom_t *lm, loom_task_t *t, int idx,
                       const char *fname);
void loom__task_first_result(lua_State *L, loom_task_t *t, int idx);
/* Marks the failure of the task at idx retrieved, if it failed: for a
** waiter that saw it but is cancelled before it could raise it. */
void loom__task_retrieve(lua_State *L, loom_t *lm, loom_task_t *t, int idx);
/* Pushes the error of a failed or cancelled task at idx. */
void loom__push_task_error(lua_State *L, loom_t *lm, int idx);
int loom__await_task(lua_State *L, loom_t *lm, int idx, const char *fname);
/* Pushes "file:line" where t (running, or its thread's top frame) waits,
** or nothing and returns 0. */
int loom__push_where(lua_State *L, loom_task_t *t);
/* Pushes the Task userdata of the unfinished task t. */
void loom__push_task(lua_State *L, loom_t *lm, loom_task_t *t);

/* future.c */
int loom__open_future(lua_State *L, loom_t *lm);
int loom__await_future(lua_State *L, loom_t *lm, int idx, const char *fn);
static inline void *loom__tofuture(lua_State *L, loom_t *lm, int idx) {
  return loom__type_test(L, idx, &lm->future_type, LOOM_FUTURE_TAG);
}

/* For timed waits: the waiters of the pending future at idx, or NULL if
** it is not a pending future. */
loom__link *loom__future_waiters(lua_State *L, loom_t *lm, int idx);

/* Userdata that hold a deadline (or waiter nodes) start with these, and
** are anchored in the registry while a deadline is armed, so nothing the
** debug library does to a stack frees one under the timer. */
typedef struct loom__anchored {
  uint32_t tag;
  uint32_t anchor;   /* 1-based slot in the anchors, 0 when not anchored */
} loom__anchored;
void loom__anchor(lua_State *L, loom_t *lm, int idx);  /* may raise */
/* Never allocates; L is any thread with a few free slots. */
void loom__unanchor(lua_State *L, loom_t *lm, loom__anchored *a);
/* Pushes a Timeout error: "timed out after S s<more>". */
void loom__push_timeout(lua_State *L, double seconds, const char *more);

/* timeout.c: loom.timeout, wait_for, Timeout (into the table on top) */
void loom__open_timeout(lua_State *L, loom_t *lm);
/* t finished: its loom.timeout records (frames it abandoned) let go. */
void loom__timeouts_orphan(loom_t *lm, loom_task_t *t);
/* Before a wait in L: raises the Cancelled of a deadline that passed while
** L was suspended by a plain yield, if any. */
void loom__timeouts_due(lua_State *L, loom_task_t *t);
/* Awaits the task or future at idx for at most the seconds at sidx (none
** or nil: no limit); a task still running then is cancelled, and waited
** for, and Timeout is raised. */
int loom__wait_for(lua_State *L, loom_t *lm, int idx, int sidx,
                   const char *fname);

/* debug.c: pushes the lines describing each unfinished task but skip
** ("<prefix>task (spawned at x.lua:3) waits on a lock at x.lua:7"), at
** most 20; returns how many there are. luaopen_loom_debug: loom.debug. */
int loom__push_waiting(lua_State *L, loom_t *lm, loom_task_t *skip,
                       const char *prefix);

/* watchdog.c: the blocking detector (lm->watch while it is on) */
typedef struct loom__watch loom__watch;
int loom__watch_start(loom_t *lm, double ms);  /* 0 or a libuv error */
void loom__watch_stop(loom_t *lm);
void loom__watch_begin(loom__watch *w);              /* a resume begins */
void loom__watch_end(loom__watch *w, lua_State *T);  /* ... and ends */

/* diagnose.c: raises "fname: cannot wait here: inside <what>; <fix>" */
void loom__cannot_wait(lua_State *L, loom_t *lm, const char *fname);

/* require.c: loom's require, over Lua's (module top-level await) */
void loom__open_require(lua_State *L);

/* group.c, waitset.c: into the loom table on top */
void loom__open_group(lua_State *L, loom_t *lm);
void loom__open_waitset(lua_State *L, loom_t *lm);

/* gather.c */
int loom__gather(lua_State *L);

/* error.c: Cancelled, the task bodies' message handler, failure records */
void loom__open_error(lua_State *L, loom_t *lm);
int loom__msgh(lua_State *L);
/* [error] -> a loom.Failure for task t (its traceback is taken from where
** loom__msgh left it; spawner at index sp, or 0). */
void loom__failure_new(lua_State *L, loom_t *lm, loom_task_t *t, int sp,
                       int cancelled);
typedef struct loom__failure loom__failure;
/* [error] -> a loom.Failure for a future failed here (f:fail): reported
** as a task's is, if nobody retrieves it. */
void loom__failure_new_future(lua_State *L, loom_t *lm);
/* The failure record at idx, or NULL. */
loom__failure *loom__tofailure(lua_State *L, loom_t *lm, int idx);
void loom__failure_retrieved(loom__failure *f);
/* Pushes the error of the failure at idx. */
void loom__failure_error(lua_State *L, int idx);
/* Pushes the traceback (a string, or nil for a cancellation). */
void loom__failure_traceback(lua_State *L, int idx);
/* Pushes "file:line" where the failed task was spawned, or returns 0. */
int loom__failure_site(lua_State *L, int idx);
/* Before 'me' re-raises the failure at idx: keeps where that error came
** from, for me's traceback to start with. */
void loom__stash_cause(lua_State *L, loom_task_t *me, int idx);
void loom__drop_cause(lua_State *L, loom_task_t *me);
/* Pushes "file:line" of a spawn site (the spawner function at index
** spawner, the line of the call); returns 0, pushing nothing, if the
** spawner is not a function. */
int loom__push_spawn_site(lua_State *L, int spawner, int line);
/* Reports, in the order they failed, every failure nobody retrieved and
** nobody reported; returns how many were reported since last asked. */
int loom__report_failures(loom_t *lm);

/* coro.c, api.c, preload.c (serves the Lua files of lib/loom) */
void loom__open_coroutine(lua_State *L);
void loom__open_os(lua_State *L);
void loom__open_api(lua_State *L, loom_t *lm);
void loom__open_preload(lua_State *L);  /* lib/loom and bindings/ */

/* post.c: loom_post, loom_acquire, loom_release */
int loom__post_init(loom_t *lm);
/* Before loom_run runs the loop: posts already queued keep it running. */
void loom__post_prepare(loom_t *lm);
/* Whether loom_post's fns are running now (loom_close refuses then). */
int loom__post_busy(loom_t *lm);
/* The runtime is done: frees lm now, or leaves that to the last
** loom_release if a thread still holds it. */
void loom__post_free(loom_t *lm);

/* host.c: what loom_open and lua_close do for hosts */
/* Registry field holding the runtime's box, whatever copy of loom made it
** (libloom in the host, loom.so): require "loom" finds it there. The box's
** user value is the module table. */
#define LOOM_RUNTIME_FIELD "loom.runtime"
/* Closes every unfinished task as coroutine.close does (lua_close). */
void loom__close_tasks(loom_t *lm);

/* deadline.c */
int loom__deadline_init(loom_t *lm);
void loom__deadline_close(loom_t *lm);   /* closes its handle */
void loom__deadline_free(loom_t *lm);    /* once its handle is closed */

#endif
