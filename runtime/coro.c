/*
** coro.c: loom's coroutine library. It behaves as Lua's own, with two
** differences nobody should be able to see:
**  - when a user coroutine suspends the task (sleep, await inside a
**    generator), resume and wrap pass the suspension up to the scheduler
**    and resume the coroutine with what the task is resumed with;
**  - a task's own thread looks like the main thread: at a task's top level
**    running() gives (thread, true), isyieldable() is false and yield()
**    raises "attempt to yield from outside a coroutine".
*/
#include "internal.h"

static lua_State *getco(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTHREAD);  /* Lua 5.4.4 says "thread expected" */
  return lua_tothread(L, 1);
}

/* A coroutine that passed a suspension up is "parked" until the task
** resumes it, and nobody else may resume it. loom knows it by a tag in
** the coroutine's extra space, which no Lua code can reach. */
static int parked(lua_State *co, loom_t *lm) {
  return *loom__xs(co) == ((uintptr_t)lm | LOOM_XS_PARKED) &&
         lua_status(co) == LUA_YIELD;
}

static void park(lua_State *co, loom_t *lm, int on) {
  *loom__xs(co) = (uintptr_t)lm | (on ? LOOM_XS_PARKED : 0);
}

/*
** Resumes co with the narg values on top of L. Returns how many values co
** gave (now on L's top), or -1 with the error message on top. If co
** suspended the task, passes that suspension up by yielding from L too;
** the task's resume then continues in k (ctx = co), which steps again.
*/
static int step(lua_State *L, lua_State *co, int narg, lua_KFunction k) {
  loom_t *lm = loom__up(L);
  int nres, status, blocked = !lua_isyieldable(L);
  lua_State *inner = lm->inner;
  lua_xmove(L, co, narg);
  lm->unyieldable += blocked;  /* a wait in co could not pass L: refuse it */
  lm->inner = co;
  status = lua_resume(co, L, narg, &nres);
  lm->inner = inner;
  lm->unyieldable -= blocked;
  if (status == LUA_YIELD && nres == 1 &&
      lua_touserdata(co, -1) == LOOM_SUSPEND && lm->current != NULL &&
      (lm->current->flags & LOOM_TF_SUSPENDED)) {
    lua_pop(co, 1);  /* values a callback pushes on co go to its wait */
    park(co, lm, 1);
    lua_pushlightuserdata(L, LOOM_SUSPEND);
    return lua_yieldk(L, 1, (lua_KContext)co, k);
  }
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return -1;
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1);
  return -1;
}

/* The task resumed: unpark co and resume it with what the task got. */
static int step_again(lua_State *L, lua_State *co, int narg,
                      lua_KFunction k) {
  park(co, loom__up(L), 0);
  return step(L, co, narg, k);
}

static int auxresume(lua_State *L, lua_State *co, int narg,
                     lua_KFunction k) {
  if (loom__is_task_thread(co, loom__up(L)) || parked(co, loom__up(L))) {
    lua_pushliteral(L, "cannot resume non-suspended coroutine");
    return -1;
  }
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
  return step(L, co, narg, k);
}

static int resume_done(lua_State *L, int r) {
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1;
}

static int resume_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;  /* the stack is [co, what the task was resumed with] */
  return resume_done(L, step_again(L, (lua_State *)ctx, lua_gettop(L) - 1,
                                   resume_k));
}

static int co_resume(lua_State *L) {
  lua_State *co = getco(L);
  return resume_done(L, auxresume(L, co, lua_gettop(L) - 1, resume_k));
}

static int co_yield(lua_State *L) {
  if (loom__is_task_thread(L, loom__up(L))) {  /* as Lua: no position */
    lua_pushliteral(L, "attempt to yield from outside a coroutine");
    return lua_error(L);
  }
  return lua_yield(L, lua_gettop(L));
}

static int co_running(lua_State *L) {
  int ismain = lua_pushthread(L);
  lua_pushboolean(L, ismain || loom__is_task_thread(L, loom__up(L)));
  return 2;
}

static int co_isyieldable(lua_State *L) {
  lua_State *co = lua_isnone(L, 1) ? L : getco(L);
  lua_pushboolean(L, lua_isyieldable(co) &&
                     !loom__is_task_thread(co, loom__up(L)));
  return 1;
}

static const char *status_of(lua_State *L, lua_State *co) {
  if (L == co) return "running";
  if (loom__is_task_thread(co, loom__up(L)) || parked(co, loom__up(L)))
    return "normal";
  switch (lua_status(co)) {
    case LUA_YIELD:
      return "suspended";
    case LUA_OK: {
      lua_Debug ar;
      if (lua_getstack(co, 0, &ar)) return "normal";
      return lua_gettop(co) == 0 ? "dead" : "suspended";
    }
    default:
      return "dead";
  }
}

static int co_status(lua_State *L) {
  lua_pushstring(L, status_of(L, getco(L)));
  return 1;
}

static int co_close(lua_State *L) {
  lua_State *co = getco(L);
  const char *st = status_of(L, co);
  if (st[0] == 'd' || st[0] == 's') {  /* dead or suspended */
    if (lua_resetthread(co) == LUA_OK) {
      lua_pushboolean(L, 1);
      return 1;
    }
    lua_pushboolean(L, 0);
    lua_xmove(co, L, 1);
    return 2;
  }
  return luaL_error(L, "cannot close a %s coroutine", st);
}

/* wrap: errors inside the coroutine close its pending <close> variables
** and propagate, with position information for string messages. */
static int wrap_done(lua_State *L, lua_State *co, int r) {
  if (r >= 0) return r;
  int st = lua_status(co);
  if (st != LUA_OK && st != LUA_YIELD) {
    lua_resetthread(co);
    lua_pop(L, 1);
    lua_xmove(co, L, 1);
  }
  if (lua_type(L, -1) == LUA_TSTRING) {
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  return lua_error(L);
}

static int wrap_k(lua_State *L, int status, lua_KContext ctx) {
  lua_State *co = (lua_State *)ctx;
  (void)status;  /* the stack is [what the task was resumed with] */
  return wrap_done(L, co, step_again(L, co, lua_gettop(L), wrap_k));
}

static int co_wrapped(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(2));
  return wrap_done(L, co, auxresume(L, co, lua_gettop(L), wrap_k));
}

static int co_wrap(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_pushvalue(L, lua_upvalueindex(1));  /* the runtime's box */
  lua_State *co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, co_wrapped, 2);
  return 1;
}

void loom__open_coroutine(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"resume", co_resume}, {"yield", co_yield}, {"running", co_running},
    {"isyieldable", co_isyieldable}, {"status", co_status},
    {"close", co_close}, {"wrap", co_wrap}, {NULL, NULL}
  };
  lua_getglobal(L, "coroutine");
  if (lua_istable(L, -1)) loom__setfuncs(L, fns);
  lua_pop(L, 1);
}
