#!/bin/sh
# tests/install/install.sh: installs the build into a temporary prefix as
# 'cmake --install --prefix' does, checks what landed there (files, the
# soname, that libloom.so and loom.so export only the public API), then
# builds examples/embed.c and examples/embed/host.c against the prefix
# twice, with pkg-config (shared and --static) and with find_package(loom)
# (tests/install/CMakeLists.txt), and runs each program. Also runs the installed loom and loads the
# installed loom.so from lua5.4. Run by ctest (tests/CMakeLists.txt), which
# sets:
#   LOOM_BUILD_DIR LOOM_SOURCE_DIR CMAKE CC LOOM_VERSION LOOM_SONAME
#   LOOM_BINDIR LOOM_LIBDIR LOOM_INCLUDEDIR LOOM_MANDIR LOOM_LUA_CDIR
#   LOOM_SANITIZE
set -eu

fail() { echo "install test: $*" >&2; exit 1; }
case $LOOM_SANITIZE in ON|on|1|TRUE|true|YES|yes)
  echo "install test: skipped: a sanitized libloom needs the ASan runtime" \
    "in every host, and lua5.4 cannot load a sanitized loom.so"
  exit 77 ;;
esac
for d in "$LOOM_BINDIR" "$LOOM_LIBDIR" "$LOOM_INCLUDEDIR" "$LOOM_MANDIR" \
         "$LOOM_LUA_CDIR"; do
  case $d in /*)
    echo "install test: skipped: $d is absolute, not under a prefix"
    exit 77 ;;
  esac
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/loom-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
P=$tmp/prefix
src=$LOOM_SOURCE_DIR
lib=$P/$LOOM_LIBDIR

"$CMAKE" --install "$LOOM_BUILD_DIR" --prefix "$P" >"$tmp/install.log" ||
  { cat "$tmp/install.log"; fail "cmake --install failed"; }

for f in "$LOOM_BINDIR/loom" "$LOOM_LIBDIR/libloom.a" \
         "$LOOM_LIBDIR/libloom.so" "$LOOM_LIBDIR/$LOOM_SONAME" \
         "$LOOM_INCLUDEDIR/loom.h" "$LOOM_LIBDIR/pkgconfig/loom.pc" \
         "$LOOM_LIBDIR/cmake/loom/loomConfig.cmake" \
         "$LOOM_LIBDIR/cmake/loom/loomConfigVersion.cmake" \
         "$LOOM_LUA_CDIR/loom.so" "$LOOM_MANDIR/man1/loom.1" \
         share/loom/types/loom.lua; do
  [ -e "$P/$f" ] || fail "not installed: $f"
done
echo "installed: every file in place under the prefix"

soname=$(readelf -d "$lib/libloom.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "$LOOM_SONAME" ] ||
  fail "libloom.so has soname '$soname', expected '$LOOM_SONAME'"
echo "soname: $soname"

# What the libraries export: exactly the LOOM_API names of loom.h, and
# luaopen_loom.
{ sed -n 's/^LOOM_API[^(]*[ *]\([A-Za-z_][A-Za-z0-9_]*\)(.*/\1/p' \
    "$P/$LOOM_INCLUDEDIR/loom.h"
  echo luaopen_loom; } | sort -u >"$tmp/api.txt"
for so in "$lib/libloom.so" "$P/$LOOM_LUA_CDIR/loom.so"; do
  nm -D --defined-only "$so" | awk '{ print $NF }' |
    grep -v -x -E '_init|_fini|_edata|_end|__bss_start' | sort -u \
    >"$tmp/exported.txt"
  if ! cmp -s "$tmp/api.txt" "$tmp/exported.txt"; then
    diff "$tmp/api.txt" "$tmp/exported.txt" >&2 || :
    fail "$so exports other symbols than loom.h's LOOM_API ('>' above)"
  fi
done
echo "exports: only the $(wc -l <"$tmp/api.txt") public functions"

# The installed command and module.
v=$("$P/$LOOM_BINDIR/loom" -e 'io.write(loom.version)')
[ "$v" = "$LOOM_VERSION" ] || fail "installed loom says version '$v'"
out=$(lua5.4 -e "package.cpath = '$P/$LOOM_LUA_CDIR/?.so'
  local loom = require 'loom'
  io.write(loom.run(function() loom.sleep(0.01) return 'ran' end))")
[ "$out" = ran ] || fail "installed loom.so from lua5.4 gave '$out'"
echo "bin/loom and loom.so (from lua5.4) run"

# pkg-config: shared, and --static with libloom.a picked by name.
export PKG_CONFIG_PATH="$lib/pkgconfig"
[ "$(pkg-config --modversion loom)" = "$LOOM_VERSION" ] ||
  fail "pkg-config --modversion loom is not $LOOM_VERSION"
cflags=$(pkg-config --cflags loom)
libs=$(pkg-config --libs loom)
static_libs=$(pkg-config --static --libs loom)
echo "pkg-config --cflags --libs loom: $cflags $libs"
echo "pkg-config --static --libs loom: $static_libs"
static_libs=$(echo " $static_libs " | sed 's/ -lloom / -l:libloom.a /')
# shellcheck disable=SC2086
"$CC" -Wall -Wextra -Werror -o "$tmp/embed-pc" "$src/examples/embed.c" \
  $cflags $libs "-Wl,-rpath,$lib"
# shellcheck disable=SC2086
"$CC" -Wall -Wextra -Werror -o "$tmp/embed-pc-static" \
  "$src/examples/embed.c" $cflags $static_libs
# shellcheck disable=SC2086
"$CC" -Wall -Wextra -Werror -o "$tmp/host-pc" "$src/examples/embed/host.c" \
  $cflags $libs "-Wl,-rpath,$lib"
# shellcheck disable=SC2086
"$CC" -Wall -Wextra -Werror -o "$tmp/host-pc-static" \
  "$src/examples/embed/host.c" $cflags $static_libs
readelf -d "$tmp/embed-pc" | grep -q "NEEDED.*\[$LOOM_SONAME\]" ||
  fail "embed (pkg-config) does not use $LOOM_SONAME"
if readelf -d "$tmp/embed-pc-static" | grep -q "NEEDED.*libloom"; then
  fail "embed (pkg-config --static) needs libloom.so"
fi

# find_package(loom): loom::loom (shared) and loom::loom_static.
"$CMAKE" -S "$src/tests/install" -B "$tmp/host" -DCMAKE_PREFIX_PATH="$P" \
  -DCMAKE_C_COMPILER="$CC" -DLOOM_EXAMPLE="$src/examples/embed.c" \
  -DLOOM_HOST_EXAMPLE="$src/examples/embed/host.c" \
  >"$tmp/host.log" 2>&1 &&
  "$CMAKE" --build "$tmp/host" >>"$tmp/host.log" 2>&1 ||
  { cat "$tmp/host.log"; fail "the find_package(loom) host did not build"; }
readelf -d "$tmp/host/embed_shared" | grep -q "NEEDED.*\[$LOOM_SONAME\]" ||
  fail "embed_shared (find_package) does not use $LOOM_SONAME"

for prog in embed-pc embed-pc-static host/embed_shared host/embed_static; do
  out=$("$tmp/$prog") || fail "$prog failed"
  case $out in
    "Hello, embedder! "*) echo "$prog: $out" ;;
    *) fail "$prog printed '$out'" ;;
  esac
done
for prog in host-pc host-pc-static host/host_shared host/host_static; do
  out=$("$tmp/$prog") || fail "$prog failed: $out"
  case $out in
    *"worker: 5 values, sum 15"*"host: the loop closed cleanly")
      echo "$prog: ran the script on its own loop" ;;
    *) fail "$prog printed '$out'" ;;
  esac
done

# The man page formats without warnings and man finds it.
if command -v man >/dev/null 2>&1; then
  warnings=$(MANWIDTH=80 man --warnings -l "$P/$LOOM_MANDIR/man1/loom.1" \
    2>&1 >/dev/null) || fail "man cannot format loom.1"
  [ -z "$warnings" ] || fail "loom.1: $warnings"
  MANPATH="$P/$LOOM_MANDIR" man -w loom >/dev/null || fail "man -w loom"
  echo "man page: formats cleanly"
fi
echo "install test: passed"
