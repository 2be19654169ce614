/*
** loom.h: the public C API of loom, an async runtime for Lua 5.4 on libuv.
**
** A loom runtime lives inside one lua_State. It owns (or borrows) a libuv
** loop, runs Lua functions as tasks and drives them from that loop.
**
** Failure reporting: functions returning int give 0 on success or a
** negative error code (LOOM_E* below, or a libuv code); functions returning
** a pointer give NULL on failure. Lua errors never escape these functions
** unless the comment says so.
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
#define LOOM_EEXIT     (-20003)  /* a task called os.exit; see loom_exit_code */

typedef struct loom loom_t;

/* Called once per failed task whose error nobody retrieved. 'report' is
** the whole message: error, traceback and the site that spawned the task. */
typedef void (*loom_report_fn)(loom_t *lm, const char *report, void *ud);

/*
** Installs a runtime in L: opens the 'loom' module (left on the stack as
** package.loaded.loom would be) and makes the runtime owned by L, so
** lua_close(L) frees it. 'loop' is the host's loop, or NULL for a private
** one. Returns NULL if L already has a runtime or memory runs out (then
** nothing is pushed). loom uses the LUA_EXTRASPACE of L's threads.
*/
LOOM_API loom_t *loom_open(lua_State *L, uv_loop_t *loop);

/* The runtime installed in L's state, or NULL. Any thread of L will do. */
LOOM_API loom_t *loom_get(lua_State *L);

/* The loop the runtime runs on. */
LOOM_API uv_loop_t *loom_loop(loom_t *lm);

/* Makes the stock globals of the loom CLI: sleep, create_task, spawn,
** gather, async, await and loom. Returns 0, UV_EINVAL if L has no
** runtime, or UV_ENOMEM. */
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
** Runs the loop until no work remains: no task ready, sleeping or waiting
** on I/O (with a host's loop, the host's own active handles count too; a
** host may also drive the loop with uv_run itself, and tasks run as well).
** If the value on top of L is a Task (it is popped), reports on that task
** in particular: returns 0 and pushes its results (the count is in
** *nresults when not NULL); or LOOM_EFAILED, the loop stopped as soon as
** it failed or was cancelled, with its error value and a traceback (a
** string, or nil for a cancellation) pushed; or LOOM_EDEADLOCK with a
** message pushed, if the loop ran dry while it still waited; or
** LOOM_EEXIT, nothing pushed, if a task called os.exit (then the runtime
** runs nothing more: close the state). Returns UV_EBUSY when called from
** inside a task, while the loop runs or after os.exit.
*/
LOOM_API int loom_run(lua_State *L, int *nresults);

/* The code given to os.exit once loom_run returned LOOM_EEXIT, and
** whether the caller asked to close the state first. */
LOOM_API int loom_exit_code(loom_t *lm, int *close_state);

/*
** Reports through the report hook every failure that nobody retrieved and
** that is not reported yet. Returns how many failures were reported since
** the previous call (by this call or when failed tasks were collected).
*/
LOOM_API int loom_report_unretrieved(loom_t *lm);

/* How many failures were reported since the runtime started, however
** they were (loom.report_unretrieved, collection, this API): the loom
** command exits 1 if any was. */
LOOM_API int loom_reported_total(loom_t *lm);

/* Sets the report hook; NULL restores the default (stderr). */
LOOM_API void loom_set_report(loom_t *lm, loom_report_fn fn, void *ud);

/*
** Async C functions. A lua_CFunction called from a task suspends the task
** and completes it later, from a libuv callback on the loop's thread:
**
**   static int read_sensor(lua_State *L) {
**     loom_call_t *c = loom_call_begin(L, on_cancel, req);
**     start_request(req, c);   (keeps c)
**     return loom_call_suspend(L, c);
**   }
**   later: lua_pushnumber(loom_call_thread(c), v); loom_call_resolve(c, 1);
**
** loom_call_begin raises a Lua error (naming the function) outside a task,
** where the task cannot wait, or if it is being cancelled; call it after
** checking the arguments. If the C function raises between begin and
** suspend, the call is dropped. Push results, or the error value, on
** loom_call_thread(c) (the task sees them as the function's results, or
** as the error it raises), then resolve or reject. If the task is
** cancelled while it waits, loom calls on_cancel(c, ud) once, on the loop
** thread (also when the state closes); after it returns the call is gone
** and the host must not resolve it: cancel or orphan the I/O there.
** Resolving twice, after on_cancel, or from another thread is an error
** (asserted unless NDEBUG).
*/
typedef struct loom_call loom_call_t;
typedef void (*loom_cancel_fn)(loom_call_t *call, void *ud);
LOOM_API loom_call_t *loom_call_begin(lua_State *L, loom_cancel_fn on_cancel,
                                      void *ud);
LOOM_API int loom_call_suspend(lua_State *L, loom_call_t *call);
LOOM_API lua_State *loom_call_thread(loom_call_t *call);
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
** traceback). Never raises, except for memory errors.
*/
LOOM_API int loom_push_errmsg(lua_State *L, int idx);

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
** while the task has not finished, and UV_EINVAL if the value is not a
** Task. Raises only memory errors.
*/
LOOM_API int loom_task_outcome(lua_State *L, int idx, int *nresults);

/*
** Cancels, as task:cancel() does, every unfinished task but the one
** running; returns how many. They unwind (their cleanup runs) as the
** loop goes on. Does not call Lua.
*/
LOOM_API int loom_cancel_all(loom_t *lm);

#endif
