/*
** gather.c: loom.gather(...), waiting for many tasks at once.
**
** One waiter node per child, all in one userdata on the gatherer's stack.
** A node fires when its child finishes; the gatherer is woken once, when
** the last child is done or at the first failure (then the others are
** cancelled and that error is raised), never once per child. A cancelled
** gatherer cancels its children in its own resume, not in the cancel
** hook, so a chain of nested gathers unwinds one task at a time.
*/
#include <limits.h>

#include "internal.h"

typedef struct gather_state gather_state;

typedef struct gather_node {
  loom__waiter w;
  gather_state *g;
  loom_task_t *child;
} gather_node;

struct gather_state {
  uint32_t tag;      /* LOOM_GATHER_TAG */
  uint32_t n, pending;
  uint32_t failed;   /* 1-based index of the first child that failed */
  uint8_t as_table;  /* called with one table: results come as a table */
  uint8_t cancelled; /* the gatherer was cancelled while it waited */
  loom_task_t *gatherer;
  gather_node nodes[];
};

/* Items beyond this are refused: their nodes would not fit in memory. */
#define MAX_ITEMS ((lua_Integer)(INT_MAX / sizeof(gather_node)))

static void node_fire(loom__waiter *w, int failed) {
  gather_node *nd = (gather_node *)w;
  gather_state *g = nd->g;
  g->pending--;
  if (failed) {
    /* gather handles every child's failure: the first is raised, the
    ** others are not reported as nobody's */
    loom__task_loom(g->gatherer)->failure_handled = 1;
    if (g->failed == 0) g->failed = (uint32_t)(nd - g->nodes) + 1;
  }
  if (g->failed || g->pending == 0) loom__wake(g->gatherer);
}

static void let_go(gather_state *g) {
  for (uint32_t i = 0; i < g->n; i++) loom__list_unlink(&g->nodes[i].w);
}

static void cancel_children(loom_t *lm, gather_state *g) {
  for (uint32_t i = 0; i < g->n; i++)
    loom__cancel(lm, g->nodes[i].child, NULL);
}

/* The gatherer was cancelled. Its children are cancelled when it resumes
** (gather_k), so this hook never reaches another task; until then its
** nodes stay linked, so a child that fails meanwhile is still seen. */
static void gather_cancel(loom_task_t *t, void *data, int woken) {
  gather_state *g = data;
  (void)t;
  if (woken == LOOM_WAIT_DETACHED) let_go(g);  /* it will not resume */
  g->cancelled = 1;
}

static const loom__wait gather_wait = { "gather", gather_cancel, NULL };

/* The state at gidx, and the tasks table below it, as gather left them
** (the debug library could have replaced either). */
static gather_state *checkstate(lua_State *L, int gidx) {
  gather_state *g = lua_touserdata(L, gidx);
  if (g == NULL || lua_type(L, gidx) != LUA_TUSERDATA ||
      lua_rawlen(L, gidx) < sizeof *g || g->tag != LOOM_GATHER_TAG ||
      lua_rawlen(L, gidx) != sizeof *g + g->n * sizeof(gather_node) ||
      lua_type(L, gidx - 1) != LUA_TTABLE)
    luaL_error(L, "gather: its state was tampered with");
  return g;
}

/* Stack: ... tasks(gidx - 1) state(gidx) */
static int finish(lua_State *L, loom_t *lm, int gidx) {
  gather_state *g = checkstate(L, gidx);
  int tasks = gidx - 1, n = (int)g->n;
  let_go(g);
  if (g->failed) {
    cancel_children(lm, g);
    lua_rawgeti(L, tasks, (lua_Integer)g->failed);
    return loom__task_results(L, lm, g->nodes[g->failed - 1].child,
                              lua_gettop(L), "gather");  /* raises */
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
  if (!lua_checkstack(L, n + LUA_MINSTACK))
    return luaL_error(L, "gather: too many results (%d)", n);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, tasks, i);
    loom__task_first_result(L, g->nodes[i - 1].child, -1);
    lua_remove(L, -2);
  }
  return n;
}

static int gather_k(lua_State *L, int status, lua_KContext ctx) {
  loom_t *lm = loom__up(L);
  gather_state *g = checkstate(L, (int)ctx);
  (void)status;
  if (g->cancelled) {
    let_go(g);
    cancel_children(lm, g);
  }
  loom__resumed(L, lm);
  return finish(L, lm, (int)ctx);
}

static void push_item(lua_State *L, lua_Integer i, int as_table) {
  if (as_table) lua_rawgeti(L, 1, i);
  else lua_pushvalue(L, (int)i);
}

/* Checks every item before anything is spawned or linked, so a bad one
** leaves nothing behind. */
static void check_items(lua_State *L, loom_t *lm, lua_Integer n,
                        int as_table) {
  loom_task_t *me = lm->current;
  for (lua_Integer i = 1; i <= n; i++) {
    push_item(L, i, as_table);
    loom_task_t *t = loom__totask(L, lm, -1);
    if (t == me && me != NULL)
      luaL_error(L, "gather: a task cannot await itself");
    if (t == NULL && !lua_isfunction(L, -1)) {
      if (as_table)
        luaL_error(L, "bad argument #1 to 'gather' (item %I is a %s, "
                   "expected a task or a function)", i, luaL_typename(L, -1));
      luaL_typeerror(L, (int)i, "task or function");
    }
    lua_pop(L, 1);
  }
  if (n > MAX_ITEMS)
    luaL_error(L, "gather: too many items (%I; at most %I)", n, MAX_ITEMS);
}

int loom__gather(lua_State *L) {
  loom_t *lm = loom__up(L);
  int as_table = lua_gettop(L) == 1 && lua_type(L, 1) == LUA_TTABLE;
  lua_Integer n = as_table ? (lua_Integer)lua_rawlen(L, 1) : lua_gettop(L);
  if (n < 0) n = MAX_ITEMS + 1;  /* a border past LUA_MAXINTEGER */
  check_items(L, lm, n, as_table);
  loom_task_t *me = loom__prepare_suspend(L, lm, "gather");
  lua_createtable(L, (int)n, 0);
  int tasks = lua_gettop(L);
  gather_state *g = lua_newuserdatauv(L, sizeof *g +
                                      (size_t)n * sizeof(gather_node), 0);
  int gidx = lua_gettop(L);
  g->tag = LOOM_GATHER_TAG;
  g->gatherer = me;
  g->n = (uint32_t)n;
  g->pending = g->failed = 0;
  g->as_table = (uint8_t)as_table;
  g->cancelled = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    gather_node *nd = &g->nodes[i - 1];
    nd->g = g;
    nd->child = NULL;
    nd->w.link.next = nd->w.link.prev = NULL;
    nd->w.fire = node_fire;
  }
  /* spawn first, link after: a spawn that raises leaves nothing linked */
  for (lua_Integer i = 1; i <= n; i++) {
    push_item(L, i, as_table);  /* a task or a function: raw reads only */
    loom_task_t *t = loom__totask(L, lm, -1);
    if (t == NULL) t = loom__spawn(L, lm, 0, "gather");
    lua_rawseti(L, tasks, i);
    g->nodes[i - 1].child = t;
  }
  for (uint32_t i = 0; i < g->n; i++) {
    loom_task_t *t = g->nodes[i].child;
    if (t->state < LOOM_DONE) {
      loom__list_push(&t->waiters, &g->nodes[i].w);
      g->pending++;
    } else if (t->state != LOOM_DONE && g->failed == 0) {
      g->failed = i + 1;
    }
  }
  if (g->failed || g->pending == 0) return finish(L, lm, gidx);
  return loom__suspend(L, lm, &gather_wait, g, gidx, gather_k);
}
