/*
** gather.c: loom.gather(...), waiting for many tasks at once.
**
** One waiter node per child, all in one userdata on the gatherer's stack.
** A node fires when its child finishes; the gatherer is woken once, when
** the last child is done or at the first failure (then the others are
** cancelled and that error is raised), never once per child.
*/
#include "internal.h"

typedef struct gather_state gather_state;

typedef struct gather_node {
  loom__waiter w;
  gather_state *g;
  loom_task_t *child;  /* for cancelling it from the wait's cancel hook */
} gather_node;

struct gather_state {
  loom_task_t *gatherer;
  uint32_t n, pending;
  uint32_t failed;   /* 1-based index of the first child that failed */
  int as_table;      /* called with one table: results come as a table */
  gather_node nodes[];
};

static void node_fire(loom__waiter *w, int failed) {
  gather_node *nd = (gather_node *)w;
  gather_state *g = nd->g;
  g->pending--;
  if (failed && g->failed == 0)
    g->failed = (uint32_t)(nd - g->nodes) + 1;
  if (g->failed || g->pending == 0) loom__wake(g->gatherer);
}

static void let_go(gather_state *g) {
  for (uint32_t i = 0; i < g->n; i++) loom__list_unlink(&g->nodes[i].w);
}

static void cancel_children(loom_t *lm, gather_state *g) {
  for (uint32_t i = 0; i < g->n; i++) loom__task_cancel(lm, g->nodes[i].child);
}

/* The gatherer was cancelled: so are the children (as asyncio does). */
static void gather_cancel(loom_task_t *t) {
  gather_state *g = t->wait_data;
  let_go(g);
  cancel_children(loom__thread_loom(t->thread), g);
}

static const loom__wait gather_wait = { "gather", gather_cancel };

/* Stack: ... tasks(gidx - 1) state(gidx) */
static int finish(lua_State *L, loom_t *lm, int gidx) {
  gather_state *g = lua_touserdata(L, gidx);
  int tasks = gidx - 1, n = (int)g->n;
  let_go(g);
  if (g->failed) {
    cancel_children(lm, g);
    lua_rawgeti(L, tasks, (lua_Integer)g->failed);
    return loom__task_results(L, lm, g->nodes[g->failed - 1].child,
                              lua_gettop(L));  /* raises its error */
  }
  if (g->as_table) {
    lua_createtable(L, n, 0);
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, tasks, i);
      loom__task_first_result(L, g->nodes[i - 1].child, -1);
      lua_remove(L, -2);
      lua_rawseti(L, -2, i);
    }
    return 1;
  }
  luaL_checkstack(L, n + 1, "too many results");
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, tasks, i);
    loom__task_first_result(L, g->nodes[i - 1].child, -1);
    lua_remove(L, -2);
  }
  return n;
}

static int gather_k(lua_State *L, int status, lua_KContext ctx) {
  loom_t *lm = loom__up(L);
  (void)status;
  if (lm->current->wake == LOOM_WAKE_CANCEL) {
    /* cancelled after it was woken (so its cancel hook did not run):
    ** let go of the children and cancel them, then raise */
    gather_state *g = lua_touserdata(L, (int)ctx);
    let_go(g);
    cancel_children(lm, g);
  }
  loom__resumed(L, lm);
  return finish(L, lm, (int)ctx);
}

static void push_item(lua_State *L, int i, int as_table) {
  if (as_table) lua_rawgeti(L, 1, i);
  else lua_pushvalue(L, i);
}

/* Checks every item before anything is spawned or linked, so a bad one
** leaves nothing behind. */
static void check_items(lua_State *L, loom_t *lm, int n, int as_table) {
  loom_task_t *me = lm->current;
  for (int i = 1; i <= n; i++) {
    push_item(L, i, as_table);
    loom_task_t *t = loom__totask(L, lm, -1);
    if (t == me && me != NULL)
      luaL_error(L, "gather: a task cannot await itself");
    if (t == NULL && !lua_isfunction(L, -1)) {
      if (as_table)
        luaL_error(L, "bad argument #1 to 'gather' (item %d is a %s, "
                   "expected a task or a function)", i, luaL_typename(L, -1));
      luaL_typeerror(L, i, "task or function");
    }
    lua_pop(L, 1);
  }
}

int loom__gather(lua_State *L) {
  loom_t *lm = loom__up(L);
  int as_table = lua_gettop(L) == 1 && lua_type(L, 1) == LUA_TTABLE;
  int n = as_table ? (int)lua_rawlen(L, 1) : lua_gettop(L);
  check_items(L, lm, n, as_table);
  loom_task_t *me = loom__prepare_suspend(L, lm, "gather");
  lua_createtable(L, n, 0);
  int tasks = lua_gettop(L);
  gather_state *g = lua_newuserdatauv(L, sizeof *g + n * sizeof(gather_node),
                                      0);
  int gidx = lua_gettop(L);
  g->gatherer = me;
  g->n = (uint32_t)n;
  g->pending = g->failed = 0;
  g->as_table = as_table;
  for (int i = 1; i <= n; i++) {
    push_item(L, i, as_table);
    loom_task_t *t = loom__totask(L, lm, -1);
    if (t == NULL) t = loom__spawn(L, lm, 0);
    lua_rawseti(L, tasks, i);
    gather_node *nd = &g->nodes[i - 1];
    nd->g = g;
    nd->child = t;
    nd->w.link.next = nd->w.link.prev = NULL;
    nd->w.fire = node_fire;
    if (t->state < LOOM_DONE) {
      loom__list_push(&t->waiters, &nd->w);
      g->pending++;
    } else if (t->state != LOOM_DONE && g->failed == 0) {
      g->failed = (uint32_t)i;
    }
  }
  if (g->failed || g->pending == 0) return finish(L, lm, gidx);
  me->wait_data = g;
  return loom__suspend(L, lm, &gather_wait, gidx, gather_k);
}
