/*
** binding.h: what a binding (bindings/NAME.c, or runtime code that waits)
** may use of the runtime: finding it, suspending the running task until a
** callback completes its wait, deadlines, and closing with the runtime.
** Everything else about tasks and the scheduler stays in internal.h.
**
** The suspend protocol, whole:
**
**   static void on_cancel(loom_task_t *t, void *data, int woken) {...}
**   static const loom__wait my_wait = { "a thing", on_cancel, NULL };
**
**   static int my_k(lua_State *L, int status, lua_KContext ctx) {
**     loom__resumed(L, loom__up(L));   raises Cancelled if cancelled
**     ... return the results (pushed on L by the callback, or made here)
**   }
**   static int l_thing(lua_State *L) {
**     loom_t *lm = loom__up(L);
**     loom_task_t *t = loom__prepare_suspend(L, lm, "thing");
**     ... check arguments first; start the request (it keeps t)
**     return loom__suspend(L, lm, &my_wait, req, ctx, my_k);
**   }
**   and from the libuv callback: loom__wake(t).
**
** A callback never calls into Lua: it may push values on the thread that
** suspended (the L the C function was called with: keep it in the
** request) and wake the task; the continuation sees them on top of its
** stack. If the task is cancelled while it waits,
** the wait's cancel hook runs once (on the loop thread, never into Lua),
** with woken = 1 if the wait had already completed and the task was only
** queued to run: a wait that handed the task something (a queue's item)
** takes it back then. After the hook the request must let go of the task.
** The task then resumes in the continuation (which raises Cancelled), so
** state on its stack is still there for the continuation to tidy; only
** with woken = LOOM_WAIT_DETACHED will it never resume (its thread is
** about to be reset as the runtime exits): let go of everything then.
*/
#define LOOM_WAIT_DETACHED 2
#ifndef LOOM_BINDING_H
#define LOOM_BINDING_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>
#include <lauxlib.h>
#include <uv.h>

#include "loom.h"

typedef struct loom_task loom_task_t;

/* ---- finding the runtime -------------------------------------------- */

/* Lua-facing C functions carry the runtime's box as upvalue 1: a userdata
** that outlives every finalizer, so one that runs after the runtime closed
** (lua_close) gets an error, not freed memory. */
typedef struct loom__box { loom_t *lm; } loom__box;  /* NULL once closed */

static inline loom_t *loom__up(lua_State *L) {
  loom_t *lm = ((loom__box *)lua_touserdata(L, lua_upvalueindex(1)))->lm;
  if (lm == NULL) luaL_error(L, "loom: the runtime is closed");
  return lm;
}
/* The same, or NULL once closed (for finalizers, which must not raise). */
static inline loom_t *loom__up_or_null(lua_State *L) {
  return ((loom__box *)lua_touserdata(L, lua_upvalueindex(1)))->lm;
}
/* Pushes the box, for closures made outside loom__setfuncs. */
void loom__push_box(lua_State *L);
/* Registers fns in the table on top, each with the box as upvalue 1. */
void loom__setfuncs(lua_State *L, const luaL_Reg *fns);

/* ---- loom's userdata ------------------------------------------------- */

/* A metatable for a userdata type, and what recognises the type's
** userdata: their size and a tag their memory starts with (each loom type
** has its own). debug.setmetatable can give any userdata a loom
** metatable, so the metatable proves nothing; Lua code cannot make a full
** userdata of a chosen size and contents, so size and tag do, and they
** cost a few loads where fetching and comparing the metatable costs a
** hundred instructions on every method call. */
typedef struct loom__type {
  const char *name;   /* "loom.Future": its __name, and messages */
  const void *mt;     /* the metatable */
  int ref;            /* registry ref, to set it */
  size_t size;        /* the userdata's size */
} loom__type;

/* Makes the metatable on top the one of ty (size bytes, named ty->name). */
void loom__type_init(lua_State *L, loom__type *ty, size_t size);
/* A new userdata of type ty with nuv user values, zeroed but for tag. */
void *loom__type_new(lua_State *L, const loom__type *ty, int nuv,
                     uint32_t tag);
/* The userdata of type ty at idx, or NULL (a light userdata has size 0). */
static inline void *loom__type_test(lua_State *L, int idx,
                                    const loom__type *ty, uint32_t tag) {
  void *p = lua_touserdata(L, idx);
  if (p == NULL || lua_rawlen(L, idx) != ty->size || *(uint32_t *)p != tag)
    return NULL;
  return p;
}
/* As luaL_checkudata for argument 1 (self) of a method. */
static inline void *loom__type_check(lua_State *L, const loom__type *ty,
                                     uint32_t tag) {
  void *p = loom__type_test(L, 1, ty, tag);
  if (p == NULL) luaL_typeerror(L, 1, ty->name);
  return p;
}

/* Whether the value at idx can be called (a function, or __call). */
int loom__iscallable(lua_State *L, int idx);
/* As luaL_checktype for a callable argument: "function expected". */
void loom__checkcallable(lua_State *L, int idx);

/* n values on top -> one value: nil for none, the value itself for one,
** a table for more. loom__unpack pushes them back (n as given to pack);
** it raises if they do not fit on the stack. */
void loom__pack(lua_State *L, int n);
int loom__unpack(lua_State *L, int idx, int n, const char *fname);

/* ---- suspending the running task ------------------------------------ */

typedef struct loom__wait {
  const char *what;  /* what the task waits on: "sleep", "a future" ... */
  /* The task was cancelled while waiting: let go (see above); woken is
  ** 0, 1 or LOOM_WAIT_DETACHED. NULL if there is nothing to let go of. */
  void (*cancel)(loom_task_t *t, void *data, int woken);
  /* Optional: pushes a few words more for a deadlock report, such as
  ** "(spawned at x.lua:3)"; may call the Lua API, not Lua code. */
  void (*describe)(lua_State *L, loom_task_t *t, void *data);
} loom__wait;

/* Before registering a wait anywhere: raises a clear error naming fname
** outside a task, or where the task cannot yield (a C call, a coroutine
** loom did not resume), and raises Cancelled if a cancellation is pending.
** Returns the running task. */
loom_task_t *loom__prepare_suspend(lua_State *L, loom_t *lm,
                                   const char *fname);
/* Whether L may suspend the running task right now. */
int loom__can_suspend(lua_State *L, loom_t *lm);
/* Suspends the running task on wait (data goes to its hooks); when woken,
** the task continues in k(L, LUA_YIELD, ctx). Use as 'return ...'. */
int loom__suspend(lua_State *L, loom_t *lm, const loom__wait *wait,
                  void *data, lua_KContext ctx, lua_KFunction k);
/* First thing in a continuation: raises the Cancelled error in the
** task's own frame if the task was woken to be cancelled. */
void loom__resumed(lua_State *L, loom_t *lm);
/* From a callback: the wait of t is complete, make it ready to run.
** Does nothing if t is not waiting (already woken or cancelled). */
void loom__wake(loom_task_t *t);
/* The runtime a task belongs to. */
loom_t *loom__task_loom(loom_task_t *t);
/* The task being resumed, or NULL (safe from a signal handler or hook). */
loom_task_t *loom__running_task(loom_t *lm);

/* Cancels t, as t:cancel() does: raises Cancelled at its wait point (or
** when it next waits, or as it ends). reason tells this cancellation from
** others (a timeout passes its own address; NULL is a plain cancel, which
** wins over a reason given before). Returns 1 if t was not finished. */
int loom__cancel(loom_t *lm, loom_task_t *t, const void *reason);
/* The reason of the Cancelled error at idx, or NULL (a plain cancel, or
** not a Cancelled error). */
const void *loom__cancel_reason(lua_State *L, int idx);
/* Pushes a new Cancelled error (what loom__resumed raises). */
void loom__push_cancelled(lua_State *L, const void *reason);
int loom__is_cancelled(lua_State *L, int idx);

/* ---- waiting in lists: a task, a future, a queue's getters ----------- */

typedef struct loom__link { struct loom__link *next, *prev; } loom__link;

typedef struct loom__waiter loom__waiter;
struct loom__waiter {
  loom__link link;  /* first member: a link is its waiter */
  /* Called (from C, never into Lua) when what it waits on completes;
  ** failed: it ended with an error or a cancellation. */
  void (*fire)(loom__waiter *w, int failed);
};

static inline void loom__list_init(loom__link *head) {
  head->next = head->prev = head;
}
static inline int loom__list_empty(const loom__link *head) {
  return head->next == head;
}
/* Appends l to the list head; unlinks l (if linked: next is NULL if not) */
static inline void loom__link_push(loom__link *head, loom__link *l) {
  l->prev = head->prev;
  l->next = head;
  head->prev->next = l;
  head->prev = l;
}
static inline void loom__link_unlink(loom__link *l) {
  if (l->next == NULL) return;  /* not linked */
  l->prev->next = l->next;
  l->next->prev = l->prev;
  l->next = l->prev = NULL;
}
static inline void loom__list_push(loom__link *head, loom__waiter *w) {
  loom__link_push(head, &w->link);
}
static inline void loom__list_unlink(loom__waiter *w) {
  loom__link_unlink(&w->link);
}
/* Unlinks and fires every waiter of head, in the order they came. */
void loom__list_fire(loom__link *head, int failed);

/* The running task waits in list 'waiters' until fired (which wakes it):
** 'return loom__wait_in_list(L, lm, waiters, &wait, data, ctx, k)', after
** loom__prepare_suspend, where wait's cancel hook is loom__list_cancel
** (or calls it: it unlinks the task). */
int loom__wait_in_list(lua_State *L, loom_t *lm, loom__link *waiters,
                       const loom__wait *wait, void *data, lua_KContext ctx,
                       lua_KFunction k);
void loom__list_cancel(loom_task_t *t, void *data, int woken);

/* ---- deadlines (runtime/deadline.c) --------------------------------- */

/* w->fire(w, 0) runs once ms milliseconds of loop time have passed (ms
** of 1e15 or more: never). Returns what loom__deadline_cancel needs, or
** NULL if out of memory. Starting and firing are O(1) per waiter. */
void *loom__deadline_start(loom_t *lm, loom__waiter *w, double ms);
void loom__deadline_cancel(loom_t *lm, loom__waiter *w, void *handle);
/* The running task sleeps ms milliseconds: 'return loom__wait_ms(...)'.
** ms = 0 re-queues it for the next turn of the loop. */
int loom__wait_ms(lua_State *L, loom_t *lm, double ms, lua_KContext ctx,
                  lua_KFunction k);

/* ---- closing with the runtime --------------------------------------- */

/* A binding's teardown step: close runs once, when the runtime closes
** (lua_close), before the runtime's own handles; it closes its handles
** with loom__close_handle and must not call Lua. A closer whose state
** goes away earlier removes itself. When closers run, tasks still
** waiting have been reset (their <close> variables ran) but their waits'
** cancel hooks were not called: a closer lets go of what its requests
** hold, as they will never complete for anyone. */
typedef struct loom__closer loom__closer;
struct loom__closer {
  loom__closer *next, *prev;
  void (*close)(loom_t *lm, loom__closer *c);
};
void loom__add_closer(loom_t *lm, loom__closer *c);
void loom__remove_closer(loom__closer *c);
/* uv_close(h, cb), counted: the runtime's memory outlives every handle
** closed this way, so cb may still look at it. */
void loom__close_handle(loom_t *lm, uv_handle_t *h, uv_close_cb cb);
/* For requests that can outlive the state (a uv_fs_t in flight when the
** task is gone): hold the runtime's memory until released. */
void loom__hold(loom_t *lm);
void loom__release(loom_t *lm);
/* Whether the runtime is closing or closed: a late callback only frees. */
int loom__closed(loom_t *lm);

#endif
