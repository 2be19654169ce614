/*
** diagnose.c: the error a wait raises where the task cannot be suspended:
** it names the construct in the way (a table.sort comparator, a
** string.gsub callback, a __gc finalizer, a metamethod called from a C
** function, a debug hook ...) and says how to restructure the code.
**
** Lua cannot yield across a C function that called Lua with lua_call
** (table.sort calling its comparator, tostring calling __tostring, the
** collector calling __gc). The debug API does not say which frame is that
** boundary, so this walks the stack from the waiting function outwards:
** a finalizer or a hook is known by how it was called; otherwise the
** first C function that is not one that can be waited through (pcall,
** loom's own) is the culprit, recognised by identity where it is one of
** Lua's well-known callers, by name otherwise. Only ever on an error path.
*/
#include <string.h>

#include "internal.h"

typedef struct known {
  const char *lib, *fn;   /* package.loaded[lib][fn] */
  const char *what;       /* "a table.sort comparator" */
  const char *fix;        /* how to restructure */
} known;

static const known knowns[] = {
  {"table", "sort", "a table.sort comparator",
   "compute what the comparator needs first (that part may wait), then "
   "sort with a comparator that does not wait"},
  {"string", "gsub", "a string.gsub replacement function",
   "collect the matches first (for m in s:gmatch(p) do ... end), wait for "
   "each outside the callback, then build the result"},
  {"_G", "tostring", "a __tostring metamethod called by tostring",
   "compute the text before converting, or give the object a field that "
   "holds it"},
  {"_G", "print", "a __tostring metamethod called by print",
   "compute the text first and print that"},
  {"string", "format", "a __tostring metamethod called by string.format",
   "compute the text first and format that"},
  {"table", "concat", "a metamethod called by table.concat",
   "build the list of strings first, then concatenate"},
  {"_G", "load", "a reader function called by load",
   "read the whole chunk first (it may wait), then load the string"},
  {NULL, NULL, NULL, NULL}
};

/* C functions a wait passes through: they call Lua so that it can yield */
static const char *const yieldable[] = {
  "pcall", "xpcall", "require", "dofile", "timeout", "scope", "run",
  "resume", "wrap", NULL
};

static int in_list(const char *name, const char *const *list) {
  for (; name != NULL && *list != NULL; list++)
    if (strcmp(name, *list) == 0) return 1;
  return 0;
}

/* Pushes the function of frame ar and finds it among the known ones. */
static const known *identify(lua_State *L, lua_Debug *ar) {
  const known *found = NULL;
  if (!lua_checkstack(L, 4)) return NULL;
  lua_getinfo(L, "f", ar);
  int fn = lua_gettop(L);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  for (const known *k = knowns; k->lib != NULL && found == NULL; k++) {
    if (lua_type(L, -1) == LUA_TTABLE &&
        lua_getfield(L, -1, k->lib) == LUA_TTABLE) {
      lua_getfield(L, -1, k->fn);
      if (lua_rawequal(L, -1, fn)) found = k;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_settop(L, fn - 1);
  return found;
}

void loom__cannot_wait(lua_State *L, loom_t *lm, const char *fname) {
  lua_Debug ar;
  if (!lua_isyieldable(L)) {
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
      if (!lua_getinfo(L, "Sn", &ar)) break;
      if (ar.namewhat != NULL && strcmp(ar.namewhat, "hook") == 0)
        luaL_error(L, "%s: cannot wait here: inside a debug hook (hooks run "
                   "where nothing can be suspended); spawn a task from the "
                   "hook for the waiting part", fname);
      if (ar.namewhat != NULL && strcmp(ar.namewhat, "metamethod") == 0 &&
          ar.name != NULL && strcmp(ar.name, "__gc") == 0)
        luaL_error(L, "%s: cannot wait here: inside a __gc finalizer "
                   "(finalizers run where nothing can be suspended); spawn a "
                   "task from the finalizer to do the waiting: "
                   "loom.spawn(function() ... end)", fname);
      if (strcmp(ar.what, "C") != 0 || in_list(ar.name, yieldable)) continue;
      const known *k = identify(L, &ar);
      if (k != NULL)
        luaL_error(L, "%s: cannot wait here: inside %s (%s calls it from C, "
                   "where a task cannot be suspended); %s", fname, k->what,
                   k->fn, k->fix);
      if (ar.name != NULL)
        luaL_error(L, "%s: cannot wait here: inside a function called by "
                   "'%s', a C function that cannot be suspended (a callback "
                   "or a metamethod it calls, such as __index, __eq or "
                   "__tostring, cannot wait); wait before or after that call, "
                   "or spawn a task for the waiting part", fname, ar.name);
      break;
    }
  }
  if (lm->unyieldable)
    luaL_error(L, "%s: cannot wait here: in a coroutine resumed from a C call "
               "that cannot yield (a callback or metamethod called from C); "
               "wait outside that call, or spawn a task for the waiting part",
               fname);
  luaL_error(L, "%s: cannot wait here: inside a C call that cannot yield (a "
             "callback or metamethod called from C); wait outside that call, "
             "or spawn a task for the waiting part", fname);
}
