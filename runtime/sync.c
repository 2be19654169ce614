/*
** sync.c: loom.sync, what tasks coordinate with: Queue, Event, Semaphore
** and Lock (also loom.Queue, loom.Event ...). In C on the runtime's waiter
** lists: a waiting task links its own node into the primitive's list, so
** a waiting get, put, wait or acquire allocates nothing.
**
** Wake-ups are handed over, never left for a race: put gives its item to
** the first waiting getter (pushed on the getter's stack, which it
** returns), release gives the permit to the first waiting acquirer, and a
** get that frees a slot promises it to the first waiting putter. So
** waiters are served FIFO and nobody barges in ahead of them. A waiter
** cancelled after it was handed something (its cancel hook sees woken = 1)
** gives it back: the item to the next getter or the front of the queue,
** the permit or the slot to the next waiter; so a cancelled waiter never
** swallows a wake-up meant for another. The hooks never allocate: the
** queue's ring always has room for every item handed out and not yet
** taken (q->handed), so giving one back always fits.
**
** An object (a Queue ...) is a table whose methods are its own C closures,
** with the object's state, a userdata, as their upvalue: q:put(x) then
** finds put in q itself, the VM's fast path, and put finds its state
** without looking at self. (Through a metatable's __index, the two lookups
** of a queue pass cost more than the rest of put and get together.)
*/
#include <math.h>
#include <string.h>

#include "internal.h"

/* Pushed on a waiter's stack when the queue closes under it. */
static const char closed_mark = 0;
#define CLOSED_MARK ((void *)&closed_mark)

/* A table's key for its state, for the metamethods. */
static const char state_key = 0;

static loom_task_t *task_of(loom__waiter *w) {
  return (loom_task_t *)((char *)w - offsetof(loom_task_t, node));
}

/* (lua_touserdata gives a full userdata's block, never this address) */
static int is_closed_mark(lua_State *L, int idx) {
  return lua_touserdata(L, idx) == CLOSED_MARK;
}

/* What is pushed on a waiter's stack while it waits (the item or the
** closed mark) and its cancel hook's scratch (a table) fit in the
** LUA_MINSTACK slots every C function has. */

/* The first fields of every state. */
typedef struct state {
  uint32_t tag;
  loom__box *box;   /* the runtime's: lives as long as any loom object */
} state;

/* The state of the method being called (its upvalue 1), checked by its
** tag: the debug library can change a C function's upvalue. (A light
** userdata is not a state: Lua code only ever sees ones that point to
** loom's own memory, whose first word is never a state's tag.) */
static void *upstate(lua_State *L, uint32_t tag) {
  state *s = lua_touserdata(L, lua_upvalueindex(1));
  if (s == NULL || s->tag != tag)
    luaL_error(L, "loom.sync: the object was tampered with");
  return s;
}

static loom_t *state_loom(lua_State *L, void *st) {
  loom_t *lm = ((state *)st)->box->lm;
  if (lm == NULL) luaL_error(L, "loom: the runtime is closed");
  return lm;
}

/* The state of the object at idx, for its metamethods, or raises. */
static void *selfstate(lua_State *L, uint32_t tag, const char *tname) {
  state *s = NULL;
  if (lua_type(L, 1) == LUA_TTABLE &&
      lua_rawgetp(L, 1, &state_key) == LUA_TUSERDATA)
    s = lua_touserdata(L, -1);
  if (s == NULL || s->tag != tag) luaL_typeerror(L, 1, tname);
  lua_pop(L, 1);
  return s;
}

/* [state] -> [object]: a table of the methods, each a closure over the
** state, with the metatable named tname. */
static void new_object(lua_State *L, const luaL_Reg *methods,
                       const char *tname) {
  int st = lua_gettop(L), n = 0;
  while (methods[n].name != NULL) n++;
  lua_createtable(L, 0, n + 1);
  for (const luaL_Reg *m = methods; m->name != NULL; m++) {
    lua_pushvalue(L, st);
    lua_pushcclosure(L, m->func, 1);
    lua_setfield(L, -2, m->name);
  }
  lua_pushvalue(L, st);
  lua_rawsetp(L, -2, &state_key);
  luaL_setmetatable(L, tname);
  lua_replace(L, st);
}

static void *new_state(lua_State *L, size_t size, int nuv, uint32_t tag) {
  state *s = lua_newuserdatauv(L, size, nuv);
  memset(s, 0, size);
  s->tag = tag;
  s->box = lua_touserdata(L, lua_upvalueindex(1));  /* a constructor's */
  return s;
}

/* ---- Queue ---------------------------------------------------------- */

typedef struct queue {
  state s;            /* tag LOOM_QUEUE_TAG */
  uint32_t head, count, cap;  /* a ring in user value 1, slots 1..cap */
  uint32_t maxsize;   /* 0: unbounded */
  uint32_t reserved;  /* free slots promised to woken putters */
  uint32_t handed;    /* items handed to getters that have not resumed */
  uint8_t closed;
  loom__link getters; /* waiting tasks; their wait data is their thread */
  loom__link putters; /* the same; the item is at index 2 of the thread */
} queue;

#define MAX_ITEMS (1u << 30)
#define RING lua_upvalueindex(1)  /* the state, in a method */

/* The queue of a waiting thread's method, for a cancel hook: the thread
** is suspended in that method, so its upvalues are the thread's to read. */
static queue *waiting_queue(lua_State *T) {
  queue *q = lua_touserdata(T, lua_upvalueindex(1));
  return q != NULL && q->s.tag == LOOM_QUEUE_TAG ? q : NULL;
}

static lua_Integer slot(const queue *q, uint32_t i) {
  return (lua_Integer)((q->head + i) & (q->cap - 1)) + 1;
}

/* Makes the ring hold n items (its table is preallocated, so storing in
** it never allocates afterwards). Raises on a memory error. */
static void ring_reserve(lua_State *L, queue *q, uint32_t n) {
  if (n <= q->cap) return;
  uint32_t cap = q->cap;
  while (cap < n) {
    if (cap >= MAX_ITEMS) luaL_error(L, "put: too many items in the queue");
    cap *= 2;
  }
  lua_getiuservalue(L, RING, 1);
  lua_createtable(L, (int)cap, 0);
  for (uint32_t i = 0; i < q->count; i++) {
    lua_rawgeti(L, -2, slot(q, i));
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setiuservalue(L, RING, 1);
  lua_pop(L, 1);
  q->head = 0;
  q->cap = cap;
}

/* Gives the value at vidx of 'from' to the first waiting getter. */
static void hand(lua_State *from, int vidx, queue *q) {
  loom__waiter *w = (loom__waiter *)q->getters.next;
  loom_task_t *t = task_of(w);
  loom__list_unlink(w);
  if (lua_gettop(from) != vidx) lua_pushvalue(from, vidx);
  lua_xmove(from, (lua_State *)t->wait_data, 1);
  q->handed++;
  loom__wake(t);
}

/* Promises free slots to waiting putters, first come first served. */
static void make_room(queue *q) {
  while (q->maxsize != 0 && !loom__list_empty(&q->putters) &&
         q->count + q->reserved < q->maxsize) {
    loom__waiter *w = (loom__waiter *)q->putters.next;
    loom__list_unlink(w);
    q->reserved++;
    loom__wake(task_of(w));
  }
}

/* The value at vidx goes to a waiting getter or the back of the ring. */
static void deliver(lua_State *L, queue *q, int vidx) {
  ring_reserve(L, q, q->count + q->handed + 1);
  if (!loom__list_empty(&q->getters)) {
    hand(L, vidx, q);
    return;
  }
  lua_getiuservalue(L, RING, 1);
  lua_pushvalue(L, vidx);
  lua_rawseti(L, -2, slot(q, q->count));
  lua_pop(L, 1);
  q->count++;
}

/* Pushes the front item (count > 0). */
static void take(lua_State *L, queue *q) {
  lua_Integer s = (lua_Integer)q->head + 1;
  lua_getiuservalue(L, RING, 1);
  lua_rawgeti(L, -1, s);
  lua_pushnil(L);
  lua_rawseti(L, -3, s);
  lua_remove(L, -2);
  q->head = (q->head + 1) & (q->cap - 1);
  q->count--;
  make_room(q);
}

/* A getter cancelled after it was handed an item (on top of T) gives it
** to the next getter, or back to the front of the queue. */
static void give_back(lua_State *T, queue *q) {
  q->handed--;
  if (!loom__list_empty(&q->getters)) {
    hand(T, -1, q);
    lua_pop(T, 1);
    return;
  }
  /* room: cap >= count + handed held before this item came back */
  q->head = (q->head - 1) & (q->cap - 1);
  lua_getiuservalue(T, RING, 1);
  lua_rotate(T, -2, 1);
  lua_rawseti(T, -2, (lua_Integer)q->head + 1);
  lua_pop(T, 1);
  q->count++;
}

static void get_cancel(loom_task_t *t, void *data, int woken) {
  lua_State *T = data;
  loom__list_unlink(&t->node);
  if (!woken) return;
  if (is_closed_mark(T, -1)) {
    lua_pop(T, 1);
    return;
  }
  queue *q = waiting_queue(T);
  if (q != NULL) give_back(T, q);
  else lua_pop(T, 1);  /* the debug library took the queue away */
}

static void put_cancel(loom_task_t *t, void *data, int woken) {
  lua_State *T = data;
  loom__list_unlink(&t->node);
  if (!woken) return;
  if (is_closed_mark(T, -1)) {
    lua_pop(T, 1);
    return;
  }
  queue *q = waiting_queue(T);
  if (q == NULL) return;
  q->reserved--;  /* the slot promised to it goes to the next putter */
  make_room(q);
}

static const loom__wait get_wait = { "a queue (get)", get_cancel, NULL };
static const loom__wait put_wait = { "a queue (put)", put_cancel, NULL };

/* ctx: the queue, its low bit set for the iterator (which ends where get
** raises). */
static int get_k(lua_State *L, int status, lua_KContext ctx) {
  queue *q = (queue *)(ctx & ~(lua_KContext)1);
  (void)status;
  loom__resumed(L, state_loom(L, q));
  if (is_closed_mark(L, -1)) {
    if (ctx & 1) {
      lua_pushnil(L);
      return 1;
    }
    return luaL_error(L, "get: the queue is closed");
  }
  q->handed--;
  return 1;
}

static int wait_get(lua_State *L, queue *q, int iter) {
  loom_t *lm = state_loom(L, q);
  loom__prepare_suspend(L, lm, iter ? "iter" : "get");
  return loom__wait_in_list(L, lm, &q->getters, &get_wait, L,
                            (lua_KContext)q | iter, get_k);
}

static int q_get(lua_State *L) {
  queue *q = upstate(L, LOOM_QUEUE_TAG);
  if (q->count > 0) {
    take(L, q);
    return 1;
  }
  if (q->closed) return luaL_error(L, "get: the queue is closed");
  return wait_get(L, q, 0);
}

/* The iterator of q:iter(): as get, but nil once closed and drained. */
static int q_next(lua_State *L) {
  queue *q = upstate(L, LOOM_QUEUE_TAG);
  if (q->count > 0) {
    take(L, q);
    return 1;
  }
  if (q->closed) {
    lua_pushnil(L);
    return 1;
  }
  return wait_get(L, q, 1);
}

static int q_iter(lua_State *L) {
  upstate(L, LOOM_QUEUE_TAG);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushcclosure(L, q_next, 1);
  return 1;
}

static int q_try_get(lua_State *L) {
  queue *q = upstate(L, LOOM_QUEUE_TAG);
  if (q->count == 0) {
    lua_pushnil(L);  /* nil, as the docs say: not nothing */
    return 1;
  }
  take(L, q);
  return 1;
}

static void checkitem(lua_State *L) {
  luaL_argcheck(L, !lua_isnoneornil(L, 2), 2,
                "value expected (nil cannot be queued: close the queue to "
                "say there is no more)");
}

static int put_k(lua_State *L, int status, lua_KContext ctx) {
  queue *q = (queue *)ctx;
  (void)status;
  loom__resumed(L, state_loom(L, q));
  if (is_closed_mark(L, -1))
    return luaL_error(L, "put: the queue is closed");
  q->reserved--;
  if (q->closed) return luaL_error(L, "put: the queue is closed");
  deliver(L, q, 2);
  return 0;
}

static int has_room(const queue *q) {
  return q->maxsize == 0 || q->count + q->reserved < q->maxsize ||
         !loom__list_empty(&q->getters);
}

static int q_put(lua_State *L) {
  queue *q = upstate(L, LOOM_QUEUE_TAG);
  checkitem(L);
  if (q->closed) return luaL_error(L, "put: the queue is closed");
  if (has_room(q)) {
    deliver(L, q, 2);
    return 0;
  }
  loom_t *lm = state_loom(L, q);
  loom__prepare_suspend(L, lm, "put");
  return loom__wait_in_list(L, lm, &q->putters, &put_wait, L,
                            (lua_KContext)q, put_k);
}

static int q_try_put(lua_State *L) {
  queue *q = upstate(L, LOOM_QUEUE_TAG);
  checkitem(L);
  if (q->closed) return luaL_error(L, "try_put: the queue is closed");
  int ok = has_room(q);
  if (ok) deliver(L, q, 2);
  lua_pushboolean(L, ok);
  return 1;
}

/* Wakes every waiter of list with the closed mark on its stack. */
static void wake_closed(loom__link *list) {
  while (!loom__list_empty(list)) {
    loom__waiter *w = (loom__waiter *)list->next;
    loom_task_t *t = task_of(w);
    loom__list_unlink(w);
    lua_pushlightuserdata((lua_State *)t->wait_data, CLOSED_MARK);
    loom__wake(t);
  }
}

static int q_close(lua_State *L) {
  queue *q = upstate(L, LOOM_QUEUE_TAG);
  q->closed = 1;
  wake_closed(&q->getters);
  wake_closed(&q->putters);
  return 0;
}

static int q_is_closed(lua_State *L) {
  lua_pushboolean(L, ((queue *)upstate(L, LOOM_QUEUE_TAG))->closed);
  return 1;
}

static int q_len(lua_State *L) {
  queue *q = selfstate(L, LOOM_QUEUE_TAG, "loom.Queue");
  lua_pushinteger(L, q->count);
  return 1;
}

static int q_tostring(lua_State *L) {
  queue *q = selfstate(L, LOOM_QUEUE_TAG, "loom.Queue");
  lua_pushfstring(L, "loom.Queue: %p (%d item%s", lua_topointer(L, 1),
                  (int)q->count, q->count == 1 ? "" : "s");
  if (q->maxsize) lua_pushfstring(L, " of %d", (int)q->maxsize);
  else lua_pushliteral(L, "");
  lua_pushstring(L, q->closed ? ", closed)" : ")");
  lua_concat(L, 3);
  return 1;
}

/* Queue([maxsize]): nil, 0 or math.huge for no bound. */
static int l_queue(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"get", q_get}, {"put", q_put}, {"try_get", q_try_get},
    {"try_put", q_try_put}, {"close", q_close}, {"is_closed", q_is_closed},
    {"iter", q_iter}, {NULL, NULL}
  };
  lua_Integer max = 0;
  loom__up(L);
  if (!lua_isnoneornil(L, 1) &&
      !(lua_type(L, 1) == LUA_TNUMBER && lua_tonumber(L, 1) == HUGE_VAL)) {
    max = luaL_checkinteger(L, 1);
    luaL_argcheck(L, max >= 0, 1, "non-negative integer expected");
    luaL_argcheck(L, max <= (lua_Integer)MAX_ITEMS, 1, "too large");
  }
  queue *q = new_state(L, sizeof *q, 1, LOOM_QUEUE_TAG);
  q->maxsize = (uint32_t)max;
  q->cap = 4;
  loom__list_init(&q->getters);
  loom__list_init(&q->putters);
  lua_createtable(L, 4, 0);
  lua_setiuservalue(L, -2, 1);
  new_object(L, methods, "loom.Queue");
  return 1;
}

/* ---- Event ---------------------------------------------------------- */

typedef struct event {
  state s;            /* tag LOOM_EVENT_TAG */
  uint8_t set;
  loom__link waiters;
} event;

static const loom__wait event_wait = { "an event", loom__list_cancel, NULL };

static int event_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  loom__resumed(L, state_loom(L, (event *)ctx));
  return 0;
}

static int e_wait(lua_State *L) {
  event *e = upstate(L, LOOM_EVENT_TAG);
  if (e->set) return 0;
  loom_t *lm = state_loom(L, e);
  loom__prepare_suspend(L, lm, "wait");
  return loom__wait_in_list(L, lm, &e->waiters, &event_wait, NULL,
                            (lua_KContext)e, event_k);
}

static int e_set(lua_State *L) {
  event *e = upstate(L, LOOM_EVENT_TAG);
  e->set = 1;
  loom__list_fire(&e->waiters, 0);
  return 0;
}

static int e_clear(lua_State *L) {
  ((event *)upstate(L, LOOM_EVENT_TAG))->set = 0;
  return 0;
}

static int e_is_set(lua_State *L) {
  lua_pushboolean(L, ((event *)upstate(L, LOOM_EVENT_TAG))->set);
  return 1;
}

static int e_tostring(lua_State *L) {
  event *e = selfstate(L, LOOM_EVENT_TAG, "loom.Event");
  lua_pushfstring(L, "loom.Event: %p (%s)", lua_topointer(L, 1),
                  e->set ? "set" : "clear");
  return 1;
}

static int l_event(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"wait", e_wait}, {"set", e_set}, {"clear", e_clear},
    {"is_set", e_is_set}, {NULL, NULL}
  };
  loom__up(L);
  event *e = new_state(L, sizeof *e, 0, LOOM_EVENT_TAG);
  loom__list_init(&e->waiters);
  new_object(L, methods, "loom.Event");
  return 1;
}

/* ---- Semaphore and Lock --------------------------------------------- */

typedef struct sem {
  state s;            /* tag LOOM_SEM_TAG */
  uint32_t value;     /* permits free; with waiters, always 0 */
  uint8_t lock;       /* a Lock: one permit, released only when held */
  loom__link waiters; /* wait data: the semaphore */
} sem;

/* What acquire returns: releases its permit once, on <close> or
** guard:release(). User value 1 keeps the semaphore's state. */
typedef struct guard {
  uint32_t tag;       /* LOOM_GUARD_TAG */
  uint8_t released;
  sem *s;
} guard;

/* A permit comes back: to the first waiter, else to the pool. */
static void sem_release(sem *s) {
  if (!loom__list_empty(&s->waiters)) {
    loom__waiter *w = (loom__waiter *)s->waiters.next;
    loom__list_unlink(w);
    loom__wake(task_of(w));
    return;
  }
  s->value++;
}

static void acquire_cancel(loom_task_t *t, void *data, int woken) {
  loom__list_unlink(&t->node);
  if (woken) sem_release(data);  /* it was handed the permit: pass it on */
}

static const loom__wait semaphore_wait = {
  "a semaphore", acquire_cancel, NULL
};
static const loom__wait lock_wait = { "a lock", acquire_cancel, NULL };

static int push_guard(lua_State *L, loom_t *lm, sem *s) {
  guard *g = loom__type_new(L, &lm->guard_type, 1, LOOM_GUARD_TAG);
  g->s = s;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_setiuservalue(L, -2, 1);
  return 1;
}

static int acquire_k(lua_State *L, int status, lua_KContext ctx) {
  sem *s = (sem *)ctx;
  loom_t *lm = state_loom(L, s);
  (void)status;
  loom__resumed(L, lm);
  return push_guard(L, lm, s);
}

static int s_acquire(lua_State *L) {
  sem *s = upstate(L, LOOM_SEM_TAG);
  loom_t *lm = state_loom(L, s);
  if (s->value > 0) {
    s->value--;
    return push_guard(L, lm, s);
  }
  loom__prepare_suspend(L, lm, "acquire");
  return loom__wait_in_list(L, lm, &s->waiters,
                            s->lock ? &lock_wait : &semaphore_wait, s,
                            (lua_KContext)s, acquire_k);
}

static int do_release(lua_State *L, sem *s, const char *fname) {
  if (s->lock && s->value > 0)
    return luaL_error(L, "%s: the lock is not locked", fname);
  if (s->value == UINT32_MAX)
    return luaL_error(L, "%s: too many releases", fname);
  sem_release(s);
  return 0;
}

static int s_release(lua_State *L) {
  return do_release(L, upstate(L, LOOM_SEM_TAG), "release");
}

static int s_locked(lua_State *L) {
  lua_pushboolean(L, ((sem *)upstate(L, LOOM_SEM_TAG))->value == 0);
  return 1;
}

static int sem_tostring(lua_State *L) {
  sem *s = selfstate(L, LOOM_SEM_TAG, "loom.Semaphore");
  lua_pushfstring(L, "loom.Semaphore: %p (%d free)", lua_topointer(L, 1),
                  (int)s->value);
  return 1;
}

static int lock_tostring(lua_State *L) {
  sem *s = selfstate(L, LOOM_SEM_TAG, "loom.Lock");
  lua_pushfstring(L, "loom.Lock: %p (%s)", lua_topointer(L, 1),
                  s->value ? "unlocked" : "locked");
  return 1;
}

static int new_sem(lua_State *L, lua_Integer n, int lock) {
  static const luaL_Reg methods[] = {
    {"acquire", s_acquire}, {"release", s_release}, {"locked", s_locked},
    {NULL, NULL}
  };
  sem *s = new_state(L, sizeof *s, 0, LOOM_SEM_TAG);
  s->value = (uint32_t)n;
  s->lock = (uint8_t)lock;
  loom__list_init(&s->waiters);
  new_object(L, methods, lock ? "loom.Lock" : "loom.Semaphore");
  return 1;
}

static int l_semaphore(lua_State *L) {
  loom__up(L);
  lua_Integer n = luaL_optinteger(L, 1, 1);
  luaL_argcheck(L, n >= 0 && n <= (lua_Integer)UINT32_MAX - 1, 1,
                "non-negative integer expected");
  return new_sem(L, n, 0);
}

static int l_lock(lua_State *L) {
  loom__up(L);
  return new_sem(L, 1, 1);
}

static guard *checkguard(lua_State *L) {
  return loom__type_check(L, &loom__up(L)->guard_type, LOOM_GUARD_TAG);
}

/* guard:release() and <close>: the permit goes back once. */
static int g_release(lua_State *L) {
  guard *g = checkguard(L);
  if (g->released) return 0;
  g->released = 1;
  return do_release(L, g->s, "release");
}

static int g_tostring(lua_State *L) {
  guard *g = checkguard(L);
  lua_pushfstring(L, "loom.Guard: %p (%s)", (void *)g,
                  g->released ? "released" : "held");
  return 1;
}

/* ---- the module ----------------------------------------------------- */

static void new_class(lua_State *L, const char *name, const luaL_Reg *mm) {
  luaL_newmetatable(L, name);
  loom__setfuncs(L, mm);
  lua_pop(L, 1);
}

int luaopen_loom_sync(lua_State *L) {
  static const luaL_Reg queue_mm[] = {
    {"__len", q_len}, {"__tostring", q_tostring}, {NULL, NULL}
  };
  static const luaL_Reg event_mm[] = {
    {"__tostring", e_tostring}, {NULL, NULL}
  };
  static const luaL_Reg sem_mm[] = {
    {"__tostring", sem_tostring}, {NULL, NULL}
  };
  static const luaL_Reg lock_mm[] = {
    {"__tostring", lock_tostring}, {NULL, NULL}
  };
  static const luaL_Reg guard_m[] = { {"release", g_release}, {NULL, NULL} };
  static const luaL_Reg guard_mm[] = {
    {"__close", g_release}, {"__tostring", g_tostring}, {NULL, NULL}
  };
  static const luaL_Reg fns[] = {
    {"Queue", l_queue}, {"Event", l_event}, {"Semaphore", l_semaphore},
    {"Lock", l_lock}, {NULL, NULL}
  };
  loom_t *lm = loom_get(L);
  if (lm == NULL) return luaL_error(L, "loom.sync: require \"loom\" first");
  new_class(L, "loom.Queue", queue_mm);
  new_class(L, "loom.Event", event_mm);
  new_class(L, "loom.Semaphore", sem_mm);
  new_class(L, "loom.Lock", lock_mm);
  luaL_newmetatable(L, "loom.Guard");
  lm->guard_type.name = "loom.Guard";
  loom__type_init(L, &lm->guard_type, sizeof(guard));
  loom__setfuncs(L, guard_mm);
  lua_newtable(L);
  loom__setfuncs(L, guard_m);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_createtable(L, 0, 4);
  loom__setfuncs(L, fns);
  return 1;
}
