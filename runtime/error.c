/*
** error.c: the Cancelled error type; the message handler of task bodies
** (it keeps a traceback beside the error, never inside it); failure
** records, which keep a failed task's error, traceback and spawn site and
** report it if nobody retrieved it; and the text of an error value.
**
** A failure record ("loom.Failure") is a userdata with a finalizer, made
** when a task fails: being the newest object then, Lua links it into its
** finalizer list in O(1) (giving the old task a finalizer would walk the
** list of every object made since the task was born). Records nobody has
** retrieved or reported sit in a list of the runtime's own, in the order
** they failed, which is what gets reported at exit (a weak index finds
** each one's userdata from its address).
*/
#include <string.h>

#include "internal.h"

/* ---- Cancelled ------------------------------------------------------ */

static const char reason_key = 0;  /* a Cancelled's field: its reason */

static int cancelled_tostring(lua_State *L) {
  if (lua_type(L, 1) == LUA_TTABLE) lua_getfield(L, 1, "message");
  else lua_pushnil(L);
  if (!lua_isstring(L, -1)) lua_pushliteral(L, "task cancelled");
  lua_pushfstring(L, "Cancelled: %s", lua_tostring(L, -1));
  return 1;
}

void loom__push_cancelled(lua_State *L, const void *reason) {
  lua_createtable(L, 0, 2);
  lua_pushliteral(L, "task cancelled");
  lua_setfield(L, -2, "message");
  if (reason != NULL) {
    lua_pushlightuserdata(L, (void *)reason);
    lua_rawsetp(L, -2, &reason_key);
  }
  luaL_setmetatable(L, LOOM_CANCELLED_MT);
}

int loom__is_cancelled(lua_State *L, int idx) {
  int yes = 0;
  if (lua_type(L, idx) == LUA_TTABLE && lua_getmetatable(L, idx)) {
    luaL_getmetatable(L, LOOM_CANCELLED_MT);
    yes = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  return yes;
}

const void *loom__cancel_reason(lua_State *L, int idx) {
  if (!loom__is_cancelled(L, idx)) return NULL;
  lua_rawgetp(L, idx, &reason_key);
  const void *reason = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return reason;
}

/* ---- the text of an error value ------------------------------------- */

/* [value] -> text, and whether __tostring gave it. As lua.c's msghandler:
** if __tostring raises, the text is what it raised (or, not a string, its
** type). Only a memory error escapes. */
static int errmsg(lua_State *L) {
  int own = 0;
  if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER) {
    lua_pushstring(L, lua_tostring(L, 1));
  } else if (luaL_getmetafield(L, 1, "__tostring") != LUA_TNIL) {
    lua_pushvalue(L, 1);
    int r = lua_pcall(L, 1, 1, 0);
    if (r == LUA_ERRMEM) return lua_error(L);
    own = r == LUA_OK;
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pushfstring(L, "(error object is a %s value)",
                      luaL_typename(L, r == LUA_OK ? 1 : -1));
      own = 0;
    }
  } else {
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  lua_pushboolean(L, own);
  return 2;
}

int loom_push_errmsg(lua_State *L, int idx) {
  int own = 0;
  if (!lua_checkstack(L, 3)) return -1;
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, errmsg);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 2, 0) == LUA_OK) {
    own = lua_toboolean(L, -1);
    lua_pop(L, 1);
  } else if (lua_type(L, -1) != LUA_TSTRING) {  /* cannot be: a memory
                                                   error is a string */
    lua_pop(L, 1);
    lua_pushliteral(L, "not enough memory");  /* interned: no allocation */
  }
  return own;
}

/* ---- the message handler -------------------------------------------- */

/* The cause of a task's error is kept under the address just past the
** task, a key nothing else uses. */
#define CAUSE_KEY(t) ((const char *)(t) + 1)

/* Runs at the point of the error, inside the failing task's thread:
** leaves the error value as it is and keeps the traceback in the
** registry under the task's address, where the body picks it up. If the
** error was re-raised from an awaited task, the traceback starts with
** where it was first raised. */
int loom__msgh(lua_State *T) {
  loom_t *lm = loom__thread_loom(T);
  loom_task_t *t = lm->current;
  if (t == NULL || loom__is_cancelled(T, 1)) return 1;
  luaL_traceback(T, T, NULL, 1);
  /* drop the last line: the task's body, a C function nobody wrote */
  size_t len;
  const char *tb = lua_tolstring(T, -1, &len);
  const char *last = strrchr(tb, '\n');
  if (last != NULL && strcmp(last, "\n\t[C]: in ?") == 0)
    lua_pushlstring(T, tb, (size_t)(last - tb));
  if ((t->flags & LOOM_TF_CAUSE) &&
      lua_rawgetp(T, LUA_REGISTRYINDEX, CAUSE_KEY(t)) == LUA_TTABLE) {
    lua_rawgeti(T, -1, 1);
    if (lua_rawequal(T, -1, 1)) {  /* this error is the awaited one */
      lua_rawgeti(T, -2, 2);       /* its traceback and spawn site */
      const char *own = lua_tostring(T, -4);
      const char *frames = strchr(own, '\n');  /* skip "stack traceback:" */
      lua_pushstring(T, frames ? frames : "");
      lua_concat(T, 2);
      lua_replace(T, -4);
    }
    lua_pop(T, 2);
    loom__drop_cause(T, t);
  }
  lua_rawsetp(T, LUA_REGISTRYINDEX, t);
  lua_settop(T, 1);
  return 1;
}

/* ---- failure records ------------------------------------------------ */

#define FF_RETRIEVED 0x01
#define FF_REPORTED  0x02
#define FF_CANCELLED 0x04

/* user values: the error, the traceback (or nil), the spawner (or nil) */
enum { UV_ERROR = 1, UV_TRACEBACK, UV_SPAWNER, UV_COUNT = UV_SPAWNER };

struct loom__failure {
  uint32_t tag;        /* LOOM_FAILURE_TAG */
  int spawn_line;
  loom__link link;     /* in lm->failures while unreported */
  uint8_t flags;
  uint8_t future;      /* a future's failure, not a task's */
};

loom__failure *loom__tofailure(lua_State *L, loom_t *lm, int idx) {
  return loom__type_test(L, idx, &lm->failure_type, LOOM_FAILURE_TAG);
}

/* Keeps it among the unreported failures, unless it is a cancellation. */
static void track(lua_State *L, loom_t *lm, loom__failure *f, int rec,
                  int cancelled) {
  if (cancelled) {
    f->flags = FF_CANCELLED;  /* never reported */
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, lm->failure_index_ref);
  lua_pushvalue(L, rec);
  lua_rawsetp(L, -2, f);
  lua_rawgeti(L, LUA_REGISTRYINDEX, lm->failure_set_ref);
  lua_pushvalue(L, rec);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 2);
  loom__link_push(&lm->failures, &f->link);
}

void loom__failure_new(lua_State *L, loom_t *lm, loom_task_t *t, int sp,
                       int cancelled) {
  int err = lua_gettop(L);
  loom__failure *f = loom__type_new(L, &lm->failure_type, UV_COUNT,
                                    LOOM_FAILURE_TAG);
  f->spawn_line = t->spawn_line;
  lua_pushvalue(L, err);
  lua_setiuservalue(L, -2, UV_ERROR);
  lua_rawgetp(L, LUA_REGISTRYINDEX, t);  /* traceback left by the handler */
  lua_setiuservalue(L, -2, UV_TRACEBACK);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, t);
  if (sp != 0 && lua_type(L, sp) == LUA_TFUNCTION) {
    lua_pushvalue(L, sp);
    lua_setiuservalue(L, -2, UV_SPAWNER);
  }
  track(L, lm, f, lua_gettop(L), cancelled);
  lua_replace(L, err);
}

void loom__failure_new_future(lua_State *L, loom_t *lm) {
  int err = lua_gettop(L);
  loom__failure *f = loom__type_new(L, &lm->failure_type, UV_COUNT,
                                    LOOM_FAILURE_TAG);
  f->spawn_line = -1;
  f->future = 1;
  lua_pushvalue(L, err);
  lua_setiuservalue(L, -2, UV_ERROR);
  luaL_traceback(L, L, NULL, 1);  /* where it was failed */
  size_t len;  /* less the task bodies' frames, C functions nobody wrote */
  const char *tb = lua_tolstring(L, -1, &len);
  while (len >= 11 && memcmp(tb + len - 11, "\n\t[C]: in ?", 11) == 0)
    len -= 11;
  lua_pushlstring(L, tb, len);
  lua_remove(L, -2);
  lua_setiuservalue(L, -2, UV_TRACEBACK);
  track(L, lm, f, lua_gettop(L), loom__is_cancelled(L, err));
  lua_replace(L, err);
}

void loom__failure_retrieved(loom__failure *f) {
  f->flags |= FF_RETRIEVED;
  loom__link_unlink(&f->link);
}

void loom__failure_error(lua_State *L, int idx) {
  lua_getiuservalue(L, idx, UV_ERROR);
}

void loom__failure_traceback(lua_State *L, int idx) {
  lua_getiuservalue(L, idx, UV_TRACEBACK);
}

int loom__push_spawn_site(lua_State *L, int spawner, int line) {
  lua_Debug ar;
  if (lua_type(L, spawner) != LUA_TFUNCTION) return 0;
  lua_pushvalue(L, spawner);
  lua_getinfo(L, ">S", &ar);  /* pops the function */
  lua_pushfstring(L, "%s:%d", ar.short_src, line);
  return 1;
}

/* Pushes "\n(task spawned at file:line<, more>)", or "\n(<more>)" if the
** spawn site is unknown, or "" if that leaves nothing to say. */
static void push_spawned_at(lua_State *L, int rec, int line,
                            const char *more) {
  lua_getiuservalue(L, rec, UV_SPAWNER);
  if (loom__push_spawn_site(L, lua_gettop(L), line)) {
    lua_pushfstring(L, "\n(task spawned at %s%s%s)", lua_tostring(L, -1),
                    *more ? ", " : "", more);
    lua_replace(L, -3);
    lua_pop(L, 1);
  } else {
    lua_pop(L, 1);
    lua_pushfstring(L, "%s%s%s", *more ? "\n(" : "", more, *more ? ")" : "");
  }
}

/* A traceback re-raised through awaits grows by a few lines per await; a
** chain of them (nested gathers) would make it grow without bound and
** cost quadratic time. Past this size, its middle is cut. */
#define TRACEBACK_MAX 4096

/* Replaces the string on top with its head and tail, cut at lines. */
static void cap_traceback(lua_State *L) {
  size_t len;
  const char *tb = lua_tolstring(L, -1, &len);
  if (len <= TRACEBACK_MAX) return;
  const char *head_end = tb + TRACEBACK_MAX / 2;
  while (head_end > tb && *head_end != '\n') head_end--;
  const char *tail = tb + len - TRACEBACK_MAX / 2;
  while (*tail != '\0' && *tail != '\n') tail++;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, tb, (size_t)(head_end - tb));
  luaL_addstring(&b, "\n\t...\t(lines left out)");
  luaL_addstring(&b, tail);
  luaL_pushresult(&b);
  lua_remove(L, -2);
}

int loom__failure_site(lua_State *L, int idx) {
  loom__failure *f = lua_touserdata(L, idx);
  lua_getiuservalue(L, idx, UV_SPAWNER);
  if (loom__push_spawn_site(L, lua_gettop(L), f->spawn_line)) {
    lua_remove(L, -2);
    return 1;
  }
  lua_pop(L, 1);
  return 0;
}

void loom__stash_cause(lua_State *L, loom_task_t *me, int idx) {
  int top = lua_gettop(L);
  int rec = lua_absindex(L, idx);
  loom__failure *f = lua_touserdata(L, rec);
  lua_createtable(L, 2, 0);
  lua_getiuservalue(L, rec, UV_ERROR);
  lua_rawseti(L, -2, 1);
  if (lua_getiuservalue(L, rec, UV_TRACEBACK) != LUA_TSTRING) {
    lua_settop(L, top);  /* a cancellation: nothing to tell */
    return;
  }
  cap_traceback(L);
  push_spawned_at(L, rec, f->spawn_line, "awaited here:");
  lua_concat(L, 2);
  lua_rawseti(L, top + 1, 2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, CAUSE_KEY(me));
  me->flags |= LOOM_TF_CAUSE;
  lua_settop(L, top);
}

void loom__drop_cause(lua_State *L, loom_task_t *me) {
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, CAUSE_KEY(me));
  me->flags &= ~LOOM_TF_CAUSE;
}

/* The report of the failure at idx: message, traceback, spawn site. */
static void push_report(lua_State *L, int rec) {
  loom__failure *f = lua_touserdata(L, rec);
  int top = lua_gettop(L);
  lua_pushstring(L, f->future ? "error in a future nobody awaited: "
                              : "error in a task nobody awaited: ");
  lua_getiuservalue(L, rec, UV_ERROR);
  loom_push_errmsg(L, -1);
  lua_remove(L, -2);
  if (lua_getiuservalue(L, rec, UV_TRACEBACK) == LUA_TSTRING) {
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
  } else {
    lua_pop(L, 1);
  }
  push_spawned_at(L, rec, f->spawn_line, "");
  lua_concat(L, lua_gettop(L) - top);
}

static void report(loom_t *lm, lua_State *L, int rec) {
  loom__failure *f = lua_touserdata(L, rec);
  f->flags |= FF_REPORTED;
  loom__link_unlink(&f->link);
  lua_rawgeti(L, LUA_REGISTRYINDEX, lm->failure_set_ref);
  lua_pushvalue(L, rec);
  lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  lm->reported++;
  lm->reported_total++;
  push_report(L, rec);
  lm->report(lm, lua_tostring(L, -1), lm->report_ud);
  lua_pop(L, 1);
}

static loom__failure *of_link(loom__link *l) {
  return (loom__failure *)((char *)l - offsetof(loom__failure, link));
}

/* Whether the unreported record f is being finalized: the weak-valued
** index lets go of a record before its finalizer runs; the weak-keyed set
** holds it until it is freed, so it can still be reported in order. */
static int finalizing(lua_State *L, loom_t *lm, loom__failure *f) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, lm->failure_index_ref);
  int gone = lua_rawgetp(L, -1, f) == LUA_TNIL;
  lua_pop(L, 2);
  return gone;
}

/* Reports, in the order they failed, the unreported failures before
** 'stop' (every one if NULL): those being finalized, or all if 'alive'.
** Finalizers run newest first, so records collected together would be
** reported backwards without this. The GC is held while the list is
** read (a finalizer could report, and unlink, meanwhile). */
static void report_in_order(loom_t *lm, lua_State *L, loom__failure *stop,
                            int alive) {
  int top = lua_gettop(L), running = lua_gc(L, LUA_GCISRUNNING);
  if (running == 1) lua_gc(L, LUA_GCSTOP);
  lua_newtable(L);  /* address -> record */
  int map = top + 1;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lm->failure_set_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, map, lua_touserdata(L, -1));
  }
  lua_pop(L, 1);
  lua_newtable(L);  /* the records to report, in order */
  int order = top + 2, n = 0;
  for (loom__link *l = lm->failures.next; l != &lm->failures; l = l->next) {
    loom__failure *f = of_link(l);
    if (f == stop) break;
    if (!alive && !finalizing(L, lm, f)) continue;
    if (lua_rawgetp(L, map, f) == LUA_TUSERDATA) lua_rawseti(L, order, ++n);
    else lua_pop(L, 1);
  }
  if (running == 1) lua_gc(L, LUA_GCRESTART);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, order, i);
    if (((loom__failure *)lua_touserdata(L, -1))->flags == 0)
      report(lm, L, lua_gettop(L));
    lua_pop(L, 1);
  }
  lua_settop(L, top);
}

static int failure_gc(lua_State *L) {
  loom_t *lm = loom__up_or_null(L);
  loom__failure *f = lua_touserdata(L, 1);
  if (lm == NULL || f->flags != 0) return 0;
  /* an older failure finalized in the same cycle is reported first */
  if (f->link.prev != &lm->failures &&
      finalizing(L, lm, of_link(f->link.prev)))
    report_in_order(lm, L, f, 0);
  if (f->flags == 0) report(lm, L, 1);
  return 0;
}

int loom__report_failures(loom_t *lm) {
  report_in_order(lm, lm->L, NULL, 1);
  int n = lm->reported;
  lm->reported = 0;
  return n;
}

void loom__open_error(lua_State *L, loom_t *lm) {
  static const luaL_Reg failure_mm[] = { {"__gc", failure_gc}, {NULL, NULL} };
  luaL_newmetatable(L, LOOM_CANCELLED_MT);
  lua_pushcfunction(L, cancelled_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "Cancelled");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  luaL_newmetatable(L, LOOM_FAILURE_MT);
  lm->failure_type.name = LOOM_FAILURE_MT;
  loom__type_init(L, &lm->failure_type, sizeof(loom__failure));
  loom__setfuncs(L, failure_mm);
  lua_pop(L, 1);
  loom__list_init(&lm->failures);
  lua_newtable(L);  /* the weak index: record address -> record */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lm->failure_index_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);  /* the weak set: record -> true, until it is freed */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lm->failure_set_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}
