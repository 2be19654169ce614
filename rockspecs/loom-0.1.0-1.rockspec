-- rockspecs/loom-0.1.0-1.rockspec: loom's Lua module (loom.so) for
-- luarocks. Only the module is built (LOOM_MODULE_ONLY): it takes Lua from
-- the interpreter that loads it and libuv from the system, and is
-- installed into the LIBDIR luarocks gives. lib/loom/*.lua is compiled
-- into loom.so, so nothing goes to LUADIR.
--   luarocks --lua-version=5.4 make rockspecs/loom-0.1.0-1.rockspec
rockspec_format = "3.0"
package = "loom"
version = "0.1.0-1"
source = {
  -- the release tarball ('git archive --prefix=loom-0.1.0/ HEAD'); loom has
  -- no published address yet: set the URL when it does.
  url = "loom-0.1.0.tar.gz",
  dir = "loom-0.1.0",
}
description = {
  summary = "Async runtime for Lua 5.4 on libuv: tasks, await, gather",
  detailed = [[
loom runs Lua code as tasks on a libuv event loop: sleep, spawn tasks,
gather and await them, cancel them, futures, JSON. From a stock lua5.4,
require "loom" and loom.run(main).]],
  -- no license field: loom has not chosen one yet ('luarocks lint' and
  -- an upload want it).
}
dependencies = {
  "lua >= 5.4, < 5.5",
  "lua-cjson >= 2.1",  -- loom.json
}
external_dependencies = {
  LIBUV = { header = "uv.h" },
}
build = {
  type = "cmake",
  variables = {
    LOOM_MODULE_ONLY = "ON",
    LOOM_WERROR = "OFF",
    CMAKE_C_FLAGS = "$(CFLAGS)",
    CMAKE_MODULE_LINKER_FLAGS = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    LIBDIR = "$(LIBDIR)",
    LIBUV_INCDIR = "$(LIBUV_INCDIR)",
    LIBUV_LIBDIR = "$(LIBUV_LIBDIR)",
  },
  copy_directories = { "docs", "types" },
}
