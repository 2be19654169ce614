/*
** host.c: what a C host gets beyond opening and running: spawning a file
** or a string as a task (loom_spawn_file, loom_spawn_string), holding a
** task from C and reading how it ended (loom_task_*), closing the state
** where that is safe (loom_close), and what lua_close does to the tasks
** still unfinished (loom__close_tasks).
**
** Every entry point does its Lua work under lua_pcall, so no Lua error
** (a memory error included) reaches the host's panic handler.
*/
#include <string.h>

#include "internal.h"

/* loom keeps a pointer in every thread's extra space (internal.h). */
_Static_assert(LUA_EXTRASPACE >= sizeof(void *),
               "loom needs LUA_EXTRASPACE to hold a pointer");
/* loom.h's LOOM_TASK_* are the task states. */
_Static_assert(LOOM_TASK_PENDING == LOOM_PENDING &&
               LOOM_TASK_RUNNING == LOOM_RUNNING &&
               LOOM_TASK_DONE == LOOM_DONE &&
               LOOM_TASK_FAILED == LOOM_FAILED &&
               LOOM_TASK_CANCELLED == LOOM_CANCELLED,
               "LOOM_TASK_* match loom_state");

/* ---- spawning a chunk ----------------------------------------------- */

typedef struct chunk {
  const char *fname;      /* the public function, for messages */
  int file;               /* loom_spawn_file, else loom_spawn_string */
  const char *path;       /* loom_spawn_file */
  const char *code;       /* loom_spawn_string */
  const char *chunkname;
} chunk;

static int load_code(int status) {
  switch (status) {
    case LUA_ERRSYNTAX: return LOOM_ESYNTAX;
    case LUA_ERRFILE: return LOOM_EFILE;
    case LUA_ERRMEM: return UV_ENOMEM;
    default: return LOOM_EFAILED;
  }
}

/* [chunk] -> [code, task or message] */
static int spawn_chunk_protected(lua_State *L) {
  const chunk *ch = lua_touserdata(L, 1);
  loom_t *lm = loom_get(L);
  int st;
  lua_settop(L, 0);
  if (lm == NULL) {
    lua_pushinteger(L, UV_EINVAL);
    lua_pushfstring(L, "%s: no loom runtime in this state", ch->fname);
    return 2;
  }
  if (ch->file)
    st = luaL_loadfilex(L, ch->path, NULL);
  else
    st = luaL_loadbufferx(L, ch->code, strlen(ch->code),
                          ch->chunkname ? ch->chunkname : ch->code, NULL);
  if (st != LUA_OK) {
    if (lua_type(L, -1) != LUA_TSTRING) {  /* a reader raised a value */
      lua_pop(L, 1);
      lua_pushfstring(L, "%s: the chunk could not be loaded", ch->fname);
    }
    lua_pushinteger(L, load_code(st));
    lua_insert(L, -2);
    return 2;
  }
  loom__spawn(L, lm, 0, ch->fname);
  lua_pushinteger(L, 0);
  lua_insert(L, -2);
  return 2;
}

static int spawn_chunk(lua_State *L, chunk *ch) {
  if (!lua_checkstack(L, 3)) return UV_ENOMEM;
  lua_pushcfunction(L, spawn_chunk_protected);
  lua_pushlightuserdata(L, ch);
  if (lua_pcall(L, 1, 2, 0) != LUA_OK) return UV_ENOMEM;  /* message */
  int r = (int)lua_tointeger(L, -2);
  lua_remove(L, -2);
  return r;
}

LOOM_API int loom_spawn_file(lua_State *L, const char *path) {
  chunk ch = { "loom_spawn_file", 1, path, NULL, NULL };
  return spawn_chunk(L, &ch);
}

LOOM_API int loom_spawn_string(lua_State *L, const char *code,
                               const char *chunkname) {
  chunk ch = { "loom_spawn_string", 0, NULL, code, chunkname };
  if (code == NULL) {
    if (!lua_checkstack(L, 1)) return UV_ENOMEM;
    lua_pushliteral(L, "loom_spawn_string: code is NULL");
    return UV_EINVAL;
  }
  return spawn_chunk(L, &ch);
}

/* ---- tasks held from C ---------------------------------------------- */

/* registry: the tasks C holds. anchors[light t] = task, anchors[task] =
** how many refs it has. */
static const char anchors_key = 0;

/* [task] -> [], one more ref */
static int ref_protected(lua_State *L) {
  void *t = lua_touserdata(L, 1);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &anchors_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &anchors_key);
  }
  lua_pushvalue(L, 1);
  lua_rawget(L, 2);
  lua_Integer n = lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_pushvalue(L, 1);
  lua_rawsetp(L, 2, t);
  lua_pushvalue(L, 1);
  lua_pushinteger(L, n + 1);
  lua_rawset(L, 2);
  return 0;
}

LOOM_API loom_task_t *loom_task_ref(lua_State *L, int idx) {
  loom_t *lm = loom_get(L);
  if (lm == NULL || !lua_checkstack(L, 2)) return NULL;
  idx = lua_absindex(L, idx);
  loom_task_t *t = loom__totask(L, lm, idx);
  if (t == NULL) return NULL;
  lua_pushcfunction(L, ref_protected);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    lua_pop(L, 1);
    return NULL;
  }
  return t;
}

/* Pushes the referenced task t, or returns 0 pushing nothing. Reads raw
** fields only: never raises (the caller made room for 2). */
static int push_ref(lua_State *L, loom_task_t *t) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &anchors_key) != LUA_TTABLE) {
    lua_pop(L, 1);  /* no task was ever referenced */
    return 0;
  }
  if (lua_rawgetp(L, -1, t) != LUA_TUSERDATA) {
    lua_pop(L, 2);
    return 0;
  }
  lua_remove(L, -2);
  return 1;
}

LOOM_API void loom_task_unref(lua_State *L, loom_task_t *t) {
  if (t == NULL || !lua_checkstack(L, 4) || !push_ref(L, t)) return;
  int task = lua_gettop(L);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &anchors_key);
  lua_pushvalue(L, task);
  lua_rawget(L, -2);
  lua_Integer n = lua_tointeger(L, -1);
  lua_pop(L, 1);
  /* setting a field that exists, or clearing one, never allocates */
  lua_pushvalue(L, task);
  if (n > 1) lua_pushinteger(L, n - 1);
  else lua_pushnil(L);
  lua_rawset(L, -3);
  if (n <= 1) {
    lua_pushnil(L);
    lua_rawsetp(L, -2, t);
  }
  lua_settop(L, task - 1);
}

LOOM_API int loom_task_status(loom_task_t *t) {
  return t->state;
}

LOOM_API int loom_task_push(lua_State *L, loom_task_t *t) {
  if (!lua_checkstack(L, 2)) return UV_ENOMEM;
  return push_ref(L, t) ? 0 : UV_EINVAL;
}

LOOM_API int loom_task_results(lua_State *L, loom_task_t *t, int *nresults) {
  if (nresults) *nresults = 0;
  if (loom_get(L) == NULL) return UV_EINVAL;
  if (!lua_checkstack(L, 1)) return UV_ENOMEM;
  if (!push_ref(L, t)) {
    lua_pushliteral(L, "loom_task_results: the task is not referenced");
    return UV_EINVAL;
  }
  int idx = lua_gettop(L);
  int r = loom_task_outcome(L, idx, nresults);
  lua_remove(L, idx);
  return r;
}

/* ---- closing -------------------------------------------------------- */

LOOM_API int loom_close(lua_State *L) {
  loom_t *lm = loom_get(L);
  lua_Debug ar;
  lua_State *main;
  if (lm != NULL) {
    if (lm->current != NULL || lm->running || lm->closed ||
        loom__post_busy(lm))
      return UV_EBUSY;
    main = lm->L;
  } else {
    if (!lua_checkstack(L, 1)) return UV_ENOMEM;
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    main = lua_tothread(L, -1);
    lua_pop(L, 1);
  }
  /* a Lua call in progress on the main thread: a C function, a callback
  ** under a protected call, a finalizer */
  if (lua_getstack(main, 0, &ar)) return UV_EBUSY;
  lua_close(L);
  return 0;
}

/* At lua_close (the runtime's finalizer): every unfinished task is closed
** as coroutine.close closes a coroutine: its pending <close> variables
** run, with a nil error (or an inner handler's error), in a place where
** they cannot wait; loom functions there raise "the runtime is closed"
** (the box is already cleared), and lua_resetthread swallows what they
** raise. What the task waits on is not let go through the wait's cancel
** hook: Lua runs the finalizers of a closing state newest first and the
** runtime's box is one of the oldest objects, so what a wait points to
** may already be finalized (a loom.http session frees its transfers);
** the closers that run next let go of what the bindings still hold, and
** close_calls tells the hosts' async C functions. The task running now
** (lua_close from inside a task: os.exit) is left alone, and so are tasks
** that never started: they have nothing to close.
*/
void loom__close_tasks(loom_t *lm) {
  lua_State *L = lm->L;
  int top = lua_gettop(L);
  if (lm->live_ref <= 0 || !lua_checkstack(L, 2)) return;
  if (lua_rawgeti(L, LUA_REGISTRYINDEX, lm->live_ref) != LUA_TTABLE) {
    lua_settop(L, top);
    return;
  }
  for (uint32_t i = lm->live_top; i >= 1; i--) {
    lua_rawgeti(L, top + 1, 2 * (lua_Integer)i - 1);
    loom_task_t *t = loom__totask(L, lm, -1);
    lua_pop(L, 1);
    if (t == NULL || t->thread == NULL || t == lm->current) continue;
    if (lua_status(t->thread) == LUA_YIELD) lua_resetthread(t->thread);
  }
  lua_settop(L, top);
}
