#!/bin/bash
# bench-smoke: runs every benchmark workload of bench/ for loom at a tiny
# size and checks that it exits 0 and prints its RESULT line with the
# expected workload= and peer= fields; then has bench/report.lua make its
# tables and chart from those lines. No timing is asserted. http_get runs
# against the specs' HTTP server (spec/support/http_server.py, on
# 127.0.0.1), or is skipped with the reason when python3 is missing.
#   env: LOOM=path/to/loom (ctest sets it)
set -u
cd "$(dirname "$0")/.." || exit 1
LOOM=${LOOM:-build/loom}
unset http_proxy https_proxy all_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY
tmp=$(mktemp -d)
srv=""
# shellcheck disable=SC2317  # run by the trap
cleanup() {
  [ -n "$srv" ] && kill "$srv" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail=0 done=" report "

# check SCRIPT "workload=W peer=P" ARGS...
check() {
  local w=$1 want=$2 out rc line
  shift 2
  out=$(timeout 60 "$LOOM" "bench/$w.lua" "$@" 2>&1)
  rc=$?
  line=$(grep -m1 "^RESULT $want " <<<"$out")
  if [ $rc -eq 0 ] && [ -n "$line" ]; then
    echo "ok   $w $*: $line"
    echo "$line" >>"$tmp/results"
  else
    echo "FAIL $w $* (exit $rc, want 'RESULT $want ...'):"
    echo "$out" | tail -n 20
    fail=1
  fi
  done="$done$w "
}

check spawn_gather "workload=spawn_gather peer=loom" 200
check sleepers "workload=sleepers peer=loom" 100 0.01
check sleepers "workload=sleepers peer=loom" 0 0.01
check pingpong "workload=pingpong peer=loom" 200
check queue_pingpong "workload=pingpong peer=loom-queue" 200
check tcp_echo "workload=tcp_echo peer=loom" 4 0.2
check fs_read "workload=fs_read peer=loom" 50
check timeout_overhead "workload=timeout_overhead peer=loom" 1000 3
check group_gather "workload=group_vs_gather peer=loom" both 1000 3
check fail_many "workload=fail_many peer=loom" 200
check soak "workload=soak peer=loom" 2000 100

# startup prints nothing by design (scripts/bench times it from outside
# with hyperfine): it must exit 0 and print nothing
out=$(timeout 60 "$LOOM" bench/startup.lua 2>&1)
rc=$?
if [ $rc -eq 0 ] && [ -z "$out" ]; then
  echo "ok   startup: exits 0, prints nothing (timed from outside)"
else
  echo "FAIL startup (exit $rc): $out"
  fail=1
fi
done="${done}startup "

# http_get against the specs' HTTP server
py=/usr/bin/python3
[ -x $py ] || py=$(command -v python3)
if [ -z "$py" ]; then
  echo "skip http_get: no python3 for spec/support/http_server.py"
else
  "$py" spec/support/http_server.py --lifetime 60 >"$tmp/server" 2>&1 &
  srv=$!
  for _ in $(seq 100); do
    grep -q '^PORT' "$tmp/server" && break
    sleep 0.05
  done
  port=$(sed -n 's/^PORT \([0-9]*\).*/\1/p' "$tmp/server")
  if [ -z "$port" ]; then
    echo "FAIL http_get: the HTTP server did not start:"
    cat "$tmp/server"
    fail=1
  else
    check http_get "workload=http_get peer=loom" 20 4 \
      "http://127.0.0.1:$port/large/1024"
  fi
fi
done="${done}http_get "

# every bench/*.lua is a workload checked above (report.lua aside)
for f in bench/*.lua; do
  w=$(basename "$f" .lua)
  if [[ $done != *" $w "* ]]; then
    echo "FAIL $w: bench/$w.lua is not checked by tests/bench_smoke.sh"
    fail=1
  fi
done

# scripts/bench refuses bad arguments before it builds or runs anything
# want ARGS -> "MESSAGE": exit 2 and that message on stderr
want() {
  local msg=$1 err rc
  shift
  err=$(scripts/bench "$@" 2>&1 >/dev/null)
  rc=$?
  if [ $rc -eq 2 ] && [[ $err == "bench: $msg"* ]]; then
    echo "ok   scripts/bench $*: $err"
  else
    echo "FAIL scripts/bench $* (exit $rc): $err"
    fail=1
  fi
}
want "unknown option --bogus" --bogus
want "unknown workload nosuch" nosuch
want "--chart needs a file" --chart
want "--out needs a file" --out

# the tables and the chart, from the lines above
if "$LOOM" bench/report.lua --chart "$tmp/chart.svg" "$tmp/results" \
     >"$tmp/report" 2>&1 && grep -q '^| spawn_gather | loom ' "$tmp/report" &&
   grep -q '^<svg ' "$tmp/chart.svg" && grep -q '</svg>' "$tmp/chart.svg"; then
  echo "ok   report.lua: tables and chart"
else
  echo "FAIL report.lua:"
  cat "$tmp/report"
  fail=1
fi
exit $fail
