/*
** group.c: structured concurrency, as Trio's nursery or asyncio's
** TaskGroup: loom.group(), used as 'local g <close> = loom.group()', and
** loom.scope(fn, ...), which calls fn(g, ...) in such a scope.
**
** g:spawn(fn, ...) starts a child; leaving the scope waits for every
** child. The first child that fails cancels the task that owns the group
** (its body stops at its next wait), and the group's close then cancels
** the other children, waits for all of them, and raises a GroupError that
** carries every child failure (a child that ends cancelled is not one).
**
** One waiter node per child, carved from blocks (userdata the group keeps)
** so a node never moves. A node fires when its child finishes; firing
** only counts, and wakes or cancels the owner: the siblings are cancelled
** by the owner, in its own resume (as gather does), so one task's failure
** never reaches through another task's C frames to a third.
**
** A group dropped without being closed (no <close>) lets go of its nodes
** when it is collected; its children run on, and a failure among them is
** reported as any task's nobody awaited.
*/
#include <string.h>

#include "internal.h"

#define LOOM_GROUP_ERROR_MT "loom.GroupError"

typedef struct group group;

typedef struct gnode {
  loom__waiter w;
  group *g;
  loom_task_t *child;
  uint32_t index;            /* the child's index in the children table */
  struct gnode *next_failed; /* the failures, in the order they came */
} gnode;

struct group {
  uint32_t tag;              /* LOOM_GROUP_TAG */
  uint32_t n, pending;       /* children spawned; not finished */
  uint32_t nfailed;
  uint32_t left;             /* free nodes in the newest block */
  gnode *next;               /* the next free one */
  gnode *failed, *last_failed;
  loom_t *lm;
  loom_task_t *owner;        /* the task that made it (user value 3); it
                                may have finished (a group never closed) */
  loom_task_t *closer;       /* the task waiting in its close, or NULL */
  const void *reason;        /* a cancel that came while closing */
  uint8_t closing, closed;
  uint8_t cancelled;         /* its children were cancelled */
  uint8_t interrupted;       /* its closer was cancelled meanwhile */
};

/* user values: 1 the children (a sequence of Tasks), 2 the node blocks,
** 3 the owner's Task */
enum { UV_CHILDREN = 1, UV_BLOCKS, UV_OWNER, UV_COUNT = UV_OWNER };

#define BLOCK_MIN 16
#define BLOCK_MAX 4096

static group *checkgroup(lua_State *L, loom_t *lm) {
  return loom__type_check(L, &lm->group_type, LOOM_GROUP_TAG);
}

static void node_fire(loom__waiter *w, int failed) {
  gnode *nd = (gnode *)w;
  group *g = nd->g;
  int first = 0;
  g->pending--;
  if (failed && nd->child->state == LOOM_FAILED) {
    nd->next_failed = NULL;
    if (g->last_failed) g->last_failed->next_failed = nd;
    else g->failed = nd;
    g->last_failed = nd;
    first = ++g->nfailed == 1;
    if (first && !g->closing && !g->closed)  /* the owner is in the body */
      loom__cancel(g->lm, g->owner, g);
  }
  if (g->closer != NULL && (g->pending == 0 || first))
    loom__wake(g->closer);
}

static void cancel_children(lua_State *L, loom_t *lm, group *g, int gidx) {
  g->cancelled = 1;
  lua_getiuservalue(L, gidx, UV_CHILDREN);
  for (uint32_t i = 1; i <= g->n; i++) {
    lua_rawgeti(L, -1, (lua_Integer)i);
    loom_task_t *t = loom__totask(L, lm, -1);
    if (t != NULL) loom__cancel(lm, t, NULL);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* A free node (may raise: memory). */
static gnode *new_node(lua_State *L, group *g, int gidx) {
  if (g->left == 0) {
    uint32_t n = g->n < BLOCK_MIN ? BLOCK_MIN
               : g->n > BLOCK_MAX ? BLOCK_MAX : g->n;
    lua_getiuservalue(L, gidx, UV_BLOCKS);
    g->next = lua_newuserdatauv(L, n * sizeof(gnode), 0);
    memset(g->next, 0, n * sizeof(gnode));
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
    g->left = n;
  }
  g->left--;
  return g->next++;
}

/* g:spawn(fn, ...) */
static int g_spawn(lua_State *L) {
  loom_t *lm = loom__up(L);
  group *g = checkgroup(L, lm);
  if (g->closed) return luaL_error(L, "spawn: the group is closed");
  loom__checkcallable(L, 2);
  if (g->n == UINT32_MAX - 1)
    return luaL_error(L, "spawn: too many tasks in the group");
  gnode *nd = new_node(L, g, 1);
  lua_getiuservalue(L, 1, UV_CHILDREN);
  lua_insert(L, 2);  /* [g, children, fn, args...] */
  loom_task_t *t = loom__spawn(L, lm, lua_gettop(L) - 3, "spawn");
  lua_pushvalue(L, -1);
  lua_rawseti(L, 2, (lua_Integer)g->n + 1);
  nd->g = g;
  nd->child = t;
  nd->index = ++g->n;
  nd->w.fire = node_fire;
  loom__list_push(&t->waiters, &nd->w);
  g->pending++;
  if (g->cancelled || g->nfailed) loom__cancel(lm, t, NULL);
  return 1;
}

/* g:cancel(): cancels every child; the scope still waits for them. */
static int g_cancel(lua_State *L) {
  loom_t *lm = loom__up(L);
  group *g = checkgroup(L, lm);
  cancel_children(L, lm, g, 1);
  return 0;
}

/* ---- the GroupError ------------------------------------------------- */

/* Pushes the error of the failed child at idx, its traceback and spawn
** site, marking the failure retrieved. */
static void push_child_failure(lua_State *L, loom_t *lm, int idx) {
  lua_getiuservalue(L, idx, 1);
  loom__failure *f = loom__tofailure(L, lm, -1);
  if (f == NULL) {  /* tampered with */
    lua_pop(L, 1);
    lua_pushliteral(L, "(the task's record was tampered with)");
    lua_pushnil(L);
    lua_pushnil(L);
    return;
  }
  loom__failure_retrieved(f);
  int rec = lua_gettop(L);
  loom__failure_error(L, rec);
  loom__failure_traceback(L, rec);
  if (!loom__failure_site(L, rec)) lua_pushnil(L);
  lua_remove(L, rec);
}

/* [] -> [GroupError]. body: the index of the scope's own error, or 0.
** Fields: message, errors, tasks, tracebacks, spawned_at (one per failed
** child, in the order they failed) and error (the scope's own, or false).
*/
static void push_group_error(lua_State *L, loom_t *lm, group *g, int gidx,
                             int body) {
  int n = (int)g->nfailed, i = 1;
  lua_createtable(L, 0, 7);
  int e = lua_gettop(L);
  for (int k = 0; k < 5; k++) lua_createtable(L, n, 0);
  /* e+1 errors, e+2 tasks, e+3 tracebacks, e+4 spawned_at, e+5 lines */
  lua_pushfstring(L, "%d of %d task%s in the group failed", n, (int)g->n,
                  g->n == 1 ? "" : "s");
  lua_rawseti(L, e + 5, 1);
  lua_pushboolean(L, 0);  /* error: the scope's own, or false */
  lua_setfield(L, e, "error");
  if (body) {
    lua_pushvalue(L, body);
    lua_setfield(L, e, "error");
    lua_pushliteral(L, "\n  the scope itself: ");
    loom_push_errmsg(L, body);
    lua_concat(L, 2);
    lua_rawseti(L, e + 5, 2);
  }
  lua_getiuservalue(L, gidx, UV_CHILDREN);
  int children = lua_gettop(L);
  for (gnode *nd = g->failed; nd != NULL; nd = nd->next_failed, i++) {
    lua_rawgeti(L, children, (lua_Integer)nd->index);
    int task = lua_gettop(L);
    push_child_failure(L, lm, task);  /* error, traceback, site */
    lua_pushfstring(L, "\n  %d. ", i);
    loom_push_errmsg(L, task + 1);
    if (lua_isstring(L, task + 3))
      lua_pushfstring(L, " (task spawned at %s)", lua_tostring(L, task + 3));
    else
      lua_pushliteral(L, "");
    lua_concat(L, 3);
    lua_rawseti(L, e + 5, (lua_Integer)lua_rawlen(L, e + 5) + 1);
    lua_rawseti(L, e + 4, i);  /* site */
    lua_rawseti(L, e + 3, i);  /* traceback */
    lua_rawseti(L, e + 1, i);  /* error */
    lua_rawseti(L, e + 2, i);  /* task */
  }
  lua_settop(L, e + 5);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (lua_Integer k = 1; lua_rawgeti(L, e + 5, k) == LUA_TSTRING; k++)
    luaL_addvalue(&b);
  lua_pop(L, 1);
  luaL_pushresult(&b);
  lua_setfield(L, e, "message");
  lua_pop(L, 1);  /* lines */
  lua_setfield(L, e, "spawned_at");
  lua_setfield(L, e, "tracebacks");
  lua_setfield(L, e, "tasks");
  lua_setfield(L, e, "errors");
  luaL_setmetatable(L, LOOM_GROUP_ERROR_MT);
}

static int group_error_tostring(lua_State *L) {
  if (lua_type(L, 1) == LUA_TTABLE) lua_getfield(L, 1, "message");
  else lua_pushnil(L);
  if (!lua_isstring(L, -1)) lua_pushliteral(L, "tasks in a group failed");
  lua_pushfstring(L, "GroupError: %s", lua_tostring(L, -1));
  return 1;
}

/* ---- closing: wait for every child ---------------------------------- */

static void close_cancel(loom_task_t *t, void *data, int woken) {
  group *g = data;
  (void)t; (void)woken;
  g->closer = NULL;  /* its continuation takes the cancel in */
}

static const loom__wait close_wait = {
  "the tasks of a group", close_cancel, NULL
};

/* The closer was cancelled (or a deadline around it passed): note it and
** cancel the children; the close still waits for them to finish. */
static void interrupted(lua_State *L, loom_t *lm, group *g, int gidx,
                        const void *reason) {
  if (!g->interrupted) {
    g->interrupted = 1;
    g->reason = reason;
  } else if (reason == NULL) {
    g->reason = NULL;  /* a plain cancel wins */
  }
  if (!g->cancelled) cancel_children(L, lm, g, gidx);
}

static int close_k(lua_State *L, int status, lua_KContext ctx);

/* Stack: [g, err]. Waits until no child runs, then ends the scope. */
static int close_step(lua_State *L, loom_t *lm, group *g) {
  for (;;) {
    loom_task_t *me = lm->current;
    if (g->nfailed && !g->cancelled) cancel_children(L, lm, g, 1);
    if (g->pending == 0) break;
    if (!loom__can_suspend(L, lm)) {
      g->closing = 0;
      loom__prepare_suspend(L, lm, "close");  /* raises, saying why */
    }
    if (me->flags & LOOM_TF_CANCEL) {  /* delivered here, not raised */
      const void *reason = me->wait_data;
      me->flags &= ~LOOM_TF_CANCEL;
      me->wait_data = NULL;
      interrupted(L, lm, g, 1, reason);
      continue;
    }
    g->closer = me;
    return loom__suspend(L, lm, &close_wait, g, 0, close_k);
  }
  g->closed = 1;
  g->closing = 0;
  int body = 0;
  if (!lua_isnil(L, 2)) {
    if (!loom__is_cancelled(L, 2)) body = 2;  /* the scope's own error */
    else if (loom__cancel_reason(L, 2) != g && g->nfailed == 0)
      return 0;  /* a cancel from outside: it goes on as it is */
  }
  if (g->nfailed == 0) {
    if (body) return 0;  /* the scope's error goes on as it is */
    if (g->interrupted) {
      loom__push_cancelled(L, g->reason);
      return lua_error(L);
    }
    return 0;
  }
  push_group_error(L, lm, g, 1, body);
  return lua_error(L);
}

static int close_k(lua_State *L, int status, lua_KContext ctx) {
  loom_t *lm = loom__up(L);
  loom_task_t *me = lm->current;
  (void)status; (void)ctx;
  if (me == NULL || L != lm->inner)
    return luaL_error(L, "loom: a waiting task was resumed from outside "
                      "loom");
  group *g = checkgroup(L, lm);
  g->closer = NULL;
  if (me->flags & LOOM_TF_WOKEN_CANCEL) {
    const void *reason = me->wait_data;
    me->flags &= ~LOOM_TF_WOKEN_CANCEL;
    me->wait_data = NULL;
    interrupted(L, lm, g, 1, reason);
  }
  return close_step(L, lm, g);
}

/* __close(g, err): the scope ends. */
static int g_close(lua_State *L) {
  loom_t *lm = loom__up(L);
  group *g = checkgroup(L, lm);
  lua_settop(L, 2);
  if (g->closed) return 0;
  if (g->closing)
    return luaL_error(L, "close: the group is already being closed");
  g->closing = 1;
  if (!lua_isnil(L, 2)) {
    if (loom__is_cancelled(L, 2) && loom__cancel_reason(L, 2) != g &&
        !g->interrupted) {
      g->interrupted = 1;  /* cancelled from outside while in the body */
      g->reason = loom__cancel_reason(L, 2);
    }
    if (!g->cancelled) cancel_children(L, lm, g, 1);
  }
  if (g->pending > 0 && lm->current == NULL) {
    g->closing = 0;
    return luaL_error(L, "close: not inside a task (wrap the code in "
                      "loom.run(fn))");
  }
  return close_step(L, lm, g);
}

/* __gc: a group nobody closed lets go of the children it still waits on */
static int g_gc(lua_State *L) {
  group *g = lua_touserdata(L, 1);
  if (loom__up_or_null(L) == NULL || g->pending == 0) return 0;
  lua_getiuservalue(L, 1, UV_BLOCKS);
  for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TUSERDATA; i++) {
    gnode *nd = lua_touserdata(L, -1);
    size_t n = lua_rawlen(L, -1) / sizeof(gnode);
    for (size_t j = 0; j < n; j++) loom__list_unlink(&nd[j].w);
    lua_pop(L, 1);
  }
  g->pending = 0;
  return 0;
}

static int g_tostring(lua_State *L) {
  group *g = checkgroup(L, loom__up(L));
  lua_pushfstring(L, "loom.Group: %p (%d task%s, %d running%s)", (void *)g,
                  (int)g->n, g->n == 1 ? "" : "s", (int)g->pending,
                  g->closed ? ", closed" : "");
  return 1;
}

/* [] -> [a new group], owned by the running task */
static group *new_group(lua_State *L, loom_t *lm, const char *fname) {
  if (lm->current == NULL)
    luaL_error(L, "%s: not inside a task (wrap the code in loom.run(fn))",
               fname);
  group *g = loom__type_new(L, &lm->group_type, UV_COUNT, LOOM_GROUP_TAG);
  g->owner = lm->current;
  g->lm = lm;
  lua_newtable(L);
  lua_setiuservalue(L, -2, UV_CHILDREN);
  lua_newtable(L);
  lua_setiuservalue(L, -2, UV_BLOCKS);
  loom__push_task(L, lm, lm->current);
  lua_setiuservalue(L, -2, UV_OWNER);
  return g;
}

static int l_group(lua_State *L) {
  new_group(L, loom__up(L), "group");
  return 1;
}

static int scope_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return lua_gettop(L) - 1;  /* fn's results, above the group */
}

/* loom.scope(fn, ...): fn(g, ...) in a group's scope; fn's results. */
static int l_scope(lua_State *L) {
  loom_t *lm = loom__up(L);
  loom__checkcallable(L, 1);
  int nargs = lua_gettop(L) - 1;
  new_group(L, lm, "scope");
  lua_insert(L, 1);        /* [g, fn, args...] */
  lua_toclose(L, 1);
  lua_pushvalue(L, 1);
  lua_insert(L, 3);        /* [g, fn, g, args...] */
  lua_callk(L, nargs + 1, LUA_MULTRET, 0, scope_k);
  return lua_gettop(L) - 1;
}

void loom__open_group(lua_State *L, loom_t *lm) {
  static const luaL_Reg methods[] = {
    {"spawn", g_spawn}, {"cancel", g_cancel}, {NULL, NULL}
  };
  static const luaL_Reg metamethods[] = {
    {"__close", g_close}, {"__gc", g_gc}, {"__tostring", g_tostring},
    {NULL, NULL}
  };
  static const luaL_Reg fns[] = {
    {"group", l_group}, {"scope", l_scope}, {NULL, NULL}
  };
  luaL_newmetatable(L, "loom.Group");
  lm->group_type.name = "loom.Group";
  loom__type_init(L, &lm->group_type, sizeof(group));
  loom__setfuncs(L, metamethods);
  lua_newtable(L);
  loom__setfuncs(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, LOOM_GROUP_ERROR_MT);
  lua_pushcfunction(L, group_error_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "GroupError");
  lua_setfield(L, -2, "__name");
  lua_setfield(L, -2, "GroupError");  /* in the loom table on top */
  loom__setfuncs(L, fns);
}
