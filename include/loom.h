/*
** loom.h: the public C API of loom, an async runtime for Lua 5.4 on libuv.
**
** A loom runtime lives inside one lua_State. It owns (or borrows) a libuv
** loop, runs Lua functions as tasks and drives them from that loop.
** docs/embedding.md walks through all of it.
**
** Failure reporting: functions returning int give 0 (or a count, where
** said) on success and a negative error code on failure (LOOM_E* below,
** or a libuv code); functions returning a pointer give NULL on failure.
** None of them exits, prints (except the default report hook, on stderr)
** or lets a Lua error escape, unless its comment says so.
**
** Threads: everything here is for the thread that runs the loop (the one
** that called loom_open, or runs loom_run), except loom_post and
** loom_release, which any thread may call.
**
** LUA_EXTRASPACE: loom keeps its runtime in the extra space of every
** thread of the state (lua_getextraspace), so it finds it in O(1) from any
** coroutine. A host must not use that space for anything else; a custom
** Lua build needs LUA_EXTRASPACE >= sizeof(void *) (the default).
*/
#ifndef LOOM_H
#define LOOM_H

#include <lua.h>
#include <uv.h>

#define LOOM_VERSION "0.1.0"

/* Marks the public functions: libloom and loom.so export only these. */
#if defined(__GNUC__)
#define LOOM_API __attribute__((visibility("default")))
#else
#define LOOM_API
#endif

/* Error codes beyond libuv's (which are negative errno values). */
#define LOOM_EFAILED   (-20001)  /* the task failed; its error is pushed */
#define LOOM_EDEADLOCK (-20002)  /* the loop ran dry while the task waited */
#define LOOM_EEXIT     (-20003)  /* a task called os.exit: loom_exit_code */
#define LOOM_ECLOSED   (-20004)  /* the runtime is closing or closed */
#define LOOM_EFILE     (-20005)  /* a script cannot be opened or read */
#define LOOM_ESYNTAX   (-20006)  /* a script does not compile */

typedef struct loom loom_t;

/* Called once per failed task whose error nobody retrieved. 'report' is
** the whole message: error, traceback and the site that spawned the task. */
typedef void (*loom_report_fn)(loom_t *lm, const char *report, void *ud);

/*
** Installs a runtime in L: opens the 'loom' module (left on the stack as
** package.loaded.loom would be) and makes the runtime owned by L, so
** lua_close(L) frees it. 'loop' is the host's loop, or NULL for a private
** one. Returns NULL if L already has a runtime (also one made by another
** copy of loom in the process, such as loom.so), if the loop's handles
** cannot be made, or if memory runs out; then nothing is pushed. Call it
** on the thread that will run the loop. A script's require "loom" then
** gives this module (even from loom.so: it never opens a second runtime).
**
** Closing: lua_close(L) closes the runtime. Every unfinished task is
** closed as coroutine.close would: its pending <close> variables run
** (with a nil error, or the one an inner handler raised), where they
** cannot wait (a loom function called there raises "loom: the runtime is
** closed"), and nothing else of it runs.
** Async C functions still waiting get their on_cancel, posts still queued
** get fn(NULL, ud), and every handle loom opened is closed. With loom's
** own loop, all is freed before lua_close returns. With the host's loop,
** loom's handles are closing when lua_close returns: the host runs its
** loop once more (uv_run, any mode that lets close callbacks run) and the
** runtime's memory is freed in the last of them; then uv_loop_close
** succeeds, as far as loom is concerned. Never call lua_close inside a
** task, a loom callback (a post's fn, on_cancel, the report hook) or
** loom_run: loom_close says so instead of crashing.
*/
LOOM_API loom_t *loom_open(lua_State *L, uv_loop_t *loop);

/* The runtime installed in L's state, or NULL. Any thread of L will do. */
LOOM_API loom_t *loom_get(lua_State *L);

/* The loop the runtime runs on. */
LOOM_API uv_loop_t *loom_loop(loom_t *lm);

/* The main thread of the runtime's state: the lua_State a loom callback
** (a post's fn, the report hook) may use. */
LOOM_API lua_State *loom_lua(loom_t *lm);

/*
** lua_close(L), unless that cannot be done safely here: returns UV_EBUSY,
** closing nothing, when called inside a task, inside a Lua call on L's
** main thread (a C function, a loom callback such as a post's fn), inside
** loom_run, or while the state is already closing. Returns 0 once closed
** (with a host's loop, run it once more as lua_close says).
*/
LOOM_API int loom_close(lua_State *L);

/* Makes the stock globals of the loom CLI: sleep, create_task, spawn,
** gather, async, await and loom. Returns 0; UV_EINVAL if L has no
** runtime; UV_ENOMEM; or LOOM_EFAILED if setting a global raised (a
** sandbox's _G with a __newindex that refuses). Nothing is pushed. */
LOOM_API int loom_openglobals(lua_State *L);

/*
** Pops a function (or any callable) and its nargs arguments from L and
** spawns them as a task; pushes the Task. The task starts on the next loop
** turn. Returns 0, or UV_EINVAL with nothing popped or pushed if L has no
** runtime or the value below the arguments is not callable, or UV_ENOMEM
** (out of memory, or too many arguments) with them popped.
*/
LOOM_API int loom_spawn(lua_State *L, int nargs);

/*
** Loads a Lua chunk and spawns it as a task (with no arguments: its ...
** is empty); the task starts on the next loop turn. Returns 0 with the
** Task pushed; or, with the error message pushed (a string): LOOM_EFILE
** if the file cannot be opened or read, LOOM_ESYNTAX if the chunk does
** not compile, UV_EINVAL if L has no runtime (or code is NULL), UV_ENOMEM.
** path NULL reads stdin, as luaL_loadfile; a first line starting with #
** is skipped. The chunk is named "@path", or chunkname (NULL: the code
** itself, as luaL_loadstring). Text and binary chunks are accepted, as by
** luaL_loadfile: load only what you trust.
*/
LOOM_API int loom_spawn_file(lua_State *L, const char *path);
LOOM_API int loom_spawn_string(lua_State *L, const char *code,
                               const char *chunkname);

/*
** Tasks seen from C. A Task on L's stack is an ordinary Lua value; a host
** that keeps a task beyond the stack takes a reference:
**   loom_task_t *t = loom_task_ref(L, -1);   (the Task stays alive)
**   ... loom_task_status(t) ... loom_task_results(L, t, &n) ...
**   loom_task_unref(L, t);
** Each ref needs its own unref; lua_close drops whatever refs remain (the
** pointers are then dead: do not unref after lua_close).
*/
typedef struct loom_task loom_task_t;

/* A task's status, as task:status() names it. */
#define LOOM_TASK_PENDING   0  /* spawned, not started */
#define LOOM_TASK_RUNNING   1  /* started, not finished (or waiting) */
#define LOOM_TASK_DONE      2
#define LOOM_TASK_FAILED    3
#define LOOM_TASK_CANCELLED 4

/* The Task at idx, referenced; NULL if the value there is not a Task of
** L's runtime, L has no runtime, or memory runs out. */
LOOM_API loom_task_t *loom_task_ref(lua_State *L, int idx);
/* Drops one reference taken by loom_task_ref (NULL: nothing). */
LOOM_API void loom_task_unref(lua_State *L, loom_task_t *t);
/* LOOM_TASK_*; never fails for a referenced task. Reads no Lua. */
LOOM_API int loom_task_status(loom_task_t *t);
/* Pushes the Task userdata. Returns 0; UV_EINVAL (nothing pushed) if t
** is not referenced any more; UV_ENOMEM (nothing pushed) if the stack
** cannot grow. */
LOOM_API int loom_task_push(lua_State *L, loom_task_t *t);
/*
** How the task ended, as loom_task_outcome (below) tells it for a Task on
** the stack: 0 with its results pushed (their count in *nresults when not
** NULL); LOOM_EFAILED with its error value and a traceback (a string, or
** nil for a cancellation) pushed, which counts as retrieving the error;
** UV_EAGAIN, nothing pushed, if it has not finished; UV_EINVAL with a
** message pushed if t is not referenced any more (nothing pushed if L has
** no runtime); UV_ENOMEM, nothing pushed, if the stack cannot grow.
*/
LOOM_API int loom_task_results(lua_State *L, loom_task_t *t, int *nresults);

/*
** Runs the loop until no work remains: no task ready, sleeping or waiting
** on I/O (with a host's loop, the host's own active handles count too; a
** host may also drive the loop with uv_run itself, and tasks run as well;
** never call it from a callback of that same loop: uv_run is not
** reentrant).
** If the value on top of L is a Task (it is popped), reports on that task
** in particular: returns 0 and pushes its results (the count is in
** *nresults when not NULL); or LOOM_EFAILED, the loop stopped as soon as
** it failed or was cancelled, with its error value and a traceback (a
** string, or nil for a cancellation) pushed; or LOOM_EDEADLOCK with a
** message pushed, if the loop ran dry while it still waited; or
** LOOM_EEXIT, nothing pushed, if a task called os.exit (then the runtime
** runs nothing more: close the state). Returns UV_EBUSY when called from
** inside a task or a post's fn, while the loop runs (from loom_run) or
** after os.exit; UV_ENOMEM, nothing
** pushed, if memory ran out before it could start, or inside the
** scheduler (then the runtime runs nothing more: close the state).
*/
LOOM_API int loom_run(lua_State *L, int *nresults);

/* The code given to os.exit once loom_run returned LOOM_EEXIT, and
** whether the caller asked to close the state first. */
LOOM_API int loom_exit_code(loom_t *lm, int *close_state);

/*
** Reports through the report hook every failure that nobody retrieved and
** that is not reported yet. Returns how many failures were reported since
** the previous call (by this call, when failed tasks were collected, or
** posted functions that raised). If memory runs out while reporting, the
** hook is told "not enough memory to report failures" instead.
*/
LOOM_API int loom_report_unretrieved(loom_t *lm);

/* How many failures were reported since the runtime started, however
** they were (loom.report_unretrieved, collection, this API): the loom
** command exits 1 if any was. */
LOOM_API int loom_reported_total(loom_t *lm);

/* Sets the report hook; NULL restores the default (stderr). The hook is
** called on the loop thread, also from the garbage collector and from
** lua_close: it must not run Lua code nor close the state. */
LOOM_API void loom_set_report(loom_t *lm, loom_report_fn fn, void *ud);

/*
** Async C functions. A lua_CFunction called from a task suspends the task
** and completes it later, from a libuv callback on the loop's thread:
**
**   static int read_sensor(lua_State *L) {
**     ... check the arguments first
**     loom_call_t *c = loom_call_begin(L, on_cancel, req);
**     start_request(req, c);   (keeps c)
**     return loom_call_suspend(L, c);
**   }
**   later: lua_pushnumber(loom_call_thread(c), v); loom_call_resolve(c, 1);
**
** loom_call_begin raises a Lua error (naming the function) outside a task,
** where the task cannot wait, or if it is being cancelled (then it raises
** the Cancelled error); it raises a memory error if out of memory. So
** begin before allocating what a raise would leak, and attach it after
** with loom_call_set_ud (as examples/embed/host.c does). One call per C
** function call. If the C function raises between begin and suspend, the
** call is dropped (freed when the task next waits or ends).
**
** Push results, or the error value, on loom_call_thread(c) (the task sees
** them as the function's results, or as the error it raises: the value on
** top), then resolve or reject; beyond LUA_MINSTACK values, lua_checkstack
** that thread first. Resolving or rejecting before loom_call_suspend (the
** answer was at hand) is allowed: suspend then returns the results, or
** raises the error, at once, and the task does not wait.
**
** If the task is cancelled while it waits, loom calls on_cancel(c, ud)
** once, on the loop thread (also from lua_close, when the state closes
** with the call still waiting); after it returns the call is gone and the
** host must not resolve it: cancel or orphan the I/O there. on_cancel must
** not call into Lua. A call that suspends needs an on_cancel
** (loom_call_suspend raises without one); NULL is fine for a call
** resolved before suspending. Resolving twice, from on_cancel, or from
** another thread is an error (asserted unless NDEBUG); resolving after
** on_cancel returned is a use after free. loom_call_suspend raises if
** nresults is more than was pushed.
*/
typedef struct loom_call loom_call_t;
typedef void (*loom_cancel_fn)(loom_call_t *call, void *ud);
LOOM_API loom_call_t *loom_call_begin(lua_State *L, loom_cancel_fn on_cancel,
                                      void *ud);
LOOM_API int loom_call_suspend(lua_State *L, loom_call_t *call);
LOOM_API lua_State *loom_call_thread(loom_call_t *call);
/* Sets the ud on_cancel is given (for a call not yet completed). */
LOOM_API void loom_call_set_ud(loom_call_t *call, void *ud);
LOOM_API void loom_call_resolve(loom_call_t *call, int nresults);
LOOM_API void loom_call_reject(loom_call_t *call);

/*
** Ctrl-C as the loom command handles it for a script: the first SIGINT
** cancels the task at idx, so its cleanup runs (loom_run then returns
** LOOM_EFAILED with the Cancelled error, as for any failure of that task,
** or the process ends if the task had finished); a second SIGINT ends the
** process at once, killed by SIGINT, even while a task keeps the loop
** busy. While a task waits for SIGINT or listens to it (loom.signal), it
** gets the signal instead. One runtime per process can have this; it ends
** when the state closes. Returns 0, UV_EINVAL (no runtime, or no Task at
** idx), UV_EBUSY (another runtime has it) or a libuv error.
*/
LOOM_API int loom_catch_sigint(lua_State *L, int idx);
/* Whether SIGINT cancelled the task given to loom_catch_sigint. */
LOOM_API int loom_interrupted(loom_t *lm);

/*
** Pushes the text lua(1) would print for the error value at idx: a string
** or number as is; otherwise what its __tostring gives or, if that fails,
** the error __tostring raised; else "(error object is a T value)".
** Returns 1 if the text came from __tostring (lua(1) then shows no
** traceback), else 0. Never raises: out of memory, the text pushed is
** "not enough memory"; returns -1, pushing nothing, if L's stack cannot
** grow.
*/
LOOM_API int loom_push_errmsg(lua_State *L, int idx);

/*
** Posting from other threads. loom_post queues fn(lm, ud) to run on the
** loop thread, in the loop's next turn (posts are run in the order they
** were made, in batches: one uv_async_t wakes the loop for all that are
** queued). Any thread may call it; fn may call into loom_lua(lm) (under a
** protected call: a Lua error it raises is reported through the report
** hook, and the next posts still run), spawn tasks, set futures, post
** again (that runs in a later turn). Returns 0: fn will be called exactly
** once, either on the loop as said, or as fn(NULL, ud) if the runtime
** closes first (from lua_close, on its thread: free ud then, and touch
** nothing else). Or a negative code, and fn will never be called:
** LOOM_ECLOSED once the runtime is closing, UV_EINVAL if fn is NULL,
** UV_ENOMEM.
**
** A post wakes a running loop. Queued posts count as work for loom_run,
** and for uv_run if they were made on the loop thread; one made by another
** thread while the loop is stopped runs when the loop next runs with work
** (libuv lets only the loop's thread say what keeps it alive).
**
** lm must still be allocated: it is until lua_close returns (own loop) or
** the host's loop ran loom's close callbacks (host's loop). A thread that
** may post after that point, or while the loop could otherwise run out of
** work, holds the runtime with loom_acquire: while any hold is taken, the
** loop counts as having work (loom_run does not return, nor report a
** deadlock, while a thread may still post), and lm's memory stays valid
** (posts fail with LOOM_ECLOSED once it closed) until the last
** loom_release, which then frees it. loom_acquire is for the loop thread:
** take the hold before starting the thread that posts, so the loop cannot
** run dry in between; it returns 0, or LOOM_ECLOSED (no hold taken).
** loom_release may be called from any thread, once per hold.
*/
typedef void (*loom_post_fn)(loom_t *lm, void *ud);
LOOM_API int loom_post(loom_t *lm, void (*fn)(loom_t *lm, void *ud),
                       void *ud);
LOOM_API int loom_acquire(loom_t *lm);
LOOM_API void loom_release(loom_t *lm);

/*
** The thread running Lua code for the runtime right now: the running
** task's thread, or a coroutine resumed inside it; NULL while no task runs
** (the loop waits, or runs C). It only reads the runtime, so a signal
** handler may call it, e.g. to set a hook on that thread as lua.c's
** laction does for Ctrl-C, and interrupt code that never waits.
*/
LOOM_API lua_State *loom_running(loom_t *lm);

/*
** For the Task at idx (left in place), once it has finished: pushes its
** results and returns 0 (their count in *nresults when not NULL); or, if
** it failed or was cancelled, pushes its error value and a traceback (a
** string, or nil for a cancellation) and returns LOOM_EFAILED, the
** failure then counting as retrieved. Returns UV_EAGAIN, nothing pushed,
** while the task has not finished, UV_EINVAL if the value is not a Task,
** UV_ENOMEM, nothing pushed, if the stack cannot grow; if memory runs out
** on the way, LOOM_EFAILED with the memory error and nil pushed. Never
** raises. (loom_task_results does the same for a task held from C.)
*/
LOOM_API int loom_task_outcome(lua_State *L, int idx, int *nresults);

/*
** Cancels, as task:cancel() does, every unfinished task but the one
** running; returns how many. They unwind (their cleanup runs) as the
** loop goes on. Does not call Lua.
*/
LOOM_API int loom_cancel_all(loom_t *lm);

#endif
