#!/bin/sh
# tests/install/luarocks.sh: builds and installs loom with luarocks from
# rockspecs/loom-<version>-1.rockspec, offline, into a temporary tree
# (from a copy of the sources, since luarocks builds in the current
# directory), then requires the module from a stock lua5.4 and runs a task.
# Run by ctest (tests/CMakeLists.txt), which sets LOOM_SOURCE_DIR,
# LOOM_BUILD_DIR and LOOM_VERSION. Exits 77 (skipped) without luarocks.
set -eu

fail() { echo "luarocks test: $*" >&2; exit 1; }
if ! command -v luarocks >/dev/null 2>&1; then
  echo "luarocks test: skipped: luarocks is not installed" \
    "(scripts/setup installs it)"
  exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/loom-rock.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
rockspec=rockspecs/loom-$LOOM_VERSION-1.rockspec
[ -f "$LOOM_SOURCE_DIR/$rockspec" ] || fail "no $rockspec"

# The sources without .git and build directories (ours among them).
build=$(cd "$LOOM_BUILD_DIR" && pwd -P)
mkdir "$tmp/src"
(cd "$LOOM_SOURCE_DIR" &&
  for f in * .[!.]*; do
    [ -e "$f" ] || continue
    case $f in .git|build*) continue ;; esac
    [ "$(cd "$f" 2>/dev/null && pwd -P)" = "$build" ] && continue
    cp -R "$f" "$tmp/src/"
  done)

# --deps-mode=none: offline, and Debian's lua-cjson is no rock.
(cd "$tmp/src" && luarocks --lua-version=5.4 --tree="$tmp/tree" \
  make --deps-mode=none "$rockspec") >"$tmp/build.log" 2>&1 ||
  { cat "$tmp/build.log"; fail "luarocks make failed"; }
so=$tmp/tree/lib/lua/5.4/loom.so
[ -f "$so" ] || { cat "$tmp/build.log"; fail "luarocks installed no $so"; }
grep -q "LOOM_MODULE_ONLY" "$tmp/src/build.luarocks/CMakeCache.txt" ||
  fail "luarocks did not build in module-only mode"
echo "luarocks make: installed $(cd "$tmp/tree" && ls lib/lua/5.4/*.so)"

# loom.so takes Lua from the interpreter: it must not carry its own.
if nm -D --defined-only "$so" | grep -q -w "lua_newstate"; then
  fail "loom.so defines lua_newstate: it links a static Lua"
fi

luarocks --lua-version=5.4 --tree="$tmp/tree" list --porcelain |
  grep -q "^loom	$LOOM_VERSION-1" || fail "luarocks list shows no loom"

out=$(lua5.4 -e "package.cpath = '$tmp/tree/lib/lua/5.4/?.so'
  local loom = require 'loom'
  loom.run(function() loom.sleep(0.01) end)
  io.write(loom.version)")
[ "$out" = "$LOOM_VERSION" ] || fail "lua5.4 with the rock's loom.so: '$out'"
echo "lua5.4: require 'loom' from the rock runs a task"
echo "luarocks test: passed"
