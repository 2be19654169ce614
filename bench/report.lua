-- bench/report.lua: the medians of the RESULT lines that scripts/bench
-- printed, as Markdown tables (absolute figures, then loom's ratio to each
-- peer), and optionally an SVG chart of those ratios. Plain Lua 5.4 (run by
-- the loom binary or lua5.4); lines that are not RESULT, SKIP or FAIL lines
-- are ignored, so the harness's whole output can be read back.
--   usage: loom bench/report.lua [--scaling] [--chart OUT.svg]
--                                [--note TEXT] FILE...
-- Ratios are loom's cost divided by the peer's: loom's time / the peer's
-- time (for a rate, the peer's rate / loom's), loom's bytes / the peer's.
-- Below 1, loom is faster or lighter.

local files, chart, note, scaling = {}, nil, nil, false
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "--chart" then chart = arg[i + 1]; i = i + 1
    elseif a == "--note" then note = arg[i + 1]; i = i + 1
    elseif a == "--scaling" then scaling = true
    else files[#files + 1] = a end
    i = i + 1
  end
end

-- the metric each workload is judged by, and whether more is better
local METRIC = {
  spawn_gather = "wall_s", sleepers = "wall_s", pingpong = "switches_per_s",
  http_get = "rps", startup = "median_ms", tcp_echo = "msgs_per_s",
  fs_read = "files_per_s", timeout_overhead = "overhead_ns",
  group_vs_gather = "ratio", fail_many = "wall_s", soak = "drift_pct",
  floor_resume_yield = "ns_per_switch", floor_spawn = "ns_per_task",
  floor_loop_iter = "ns_per_iter",
}
local RATE = { switches_per_s = true, rps = true, msgs_per_s = true,
  files_per_s = true }

-- peers in a fixed order (runtimes, then floors and ceilings)
local ORDER = { "loom", "loom-queue", "node", "node-fetch", "python",
  "python-uvloop", "lua-luv", "lua-luv-timer", "lua-luv-now", "lua-cqueues",
  "curl-floor", "wrk-t1", "wrk-t2", "c-uv", "c-lua", "lua-coro", "node-bare",
  "python-bare", "lua-bare" }
local RANK = {}
for i, p in ipairs(ORDER) do RANK[p] = i end
local FLOORS = { ["curl-floor"] = true, ["wrk-t1"] = true, ["wrk-t2"] = true,
  ["c-uv"] = true, ["c-lua"] = true, ["lua-coro"] = true,
  ["node-bare"] = true, ["python-bare"] = true, ["lua-bare"] = true }

local function peer_less(a, b)
  local ra, rb = RANK[a] or 1000, RANK[b] or 1000
  if ra ~= rb then return ra < rb end
  return a < b
end

-- runs[workload][peer][size] = { kv, kv, ... }; notes = SKIP and FAIL lines
local runs, notes = {}, {}
for _, f in ipairs(files) do
  for line in io.lines(f) do
    if line:match("^RESULT ") then
      local kv = {}
      for k, v in line:gmatch("(%S+)=(%S+)") do kv[k] = v end
      local w, p, n = kv.workload, kv.peer, tonumber(kv.n)
      -- one group per size in the scaling tables; else the n=0 runs (the
      -- baseline of sleepers) apart from the rest, as n is a count of
      -- round trips or requests done in some workloads
      if n and not scaling then n = n == 0 and 0 or 1 end
      if w and p and n then
        runs[w] = runs[w] or {}
        runs[w][p] = runs[w][p] or {}
        runs[w][p][n] = runs[w][p][n] or {}
        table.insert(runs[w][p][n], kv)
      end
    elseif line:match("^SKIP ") or line:match("^FAIL ") then
      notes[#notes + 1] = line
    end
  end
end

local function median(vals)
  if #vals == 0 then return nil end
  table.sort(vals)
  local m = (#vals + 1) // 2
  if #vals % 2 == 1 then return vals[m] end
  return (vals[m] + vals[m + 1]) / 2
end

local function values(rows, key)
  local vals = {}
  for _, r in ipairs(rows) do
    local v = tonumber(r[key])
    if v then vals[#vals + 1] = v end
  end
  return vals
end

-- stats(w, p, n): medians of every numeric field, plus min and max of the
-- workload's metric, bytes_per_task (against the n=0 runs) and
-- cpu_us_per_req (http_get)
local cache = {}
local function stats(w, p, n)
  local key = w .. "\0" .. p .. "\0" .. n
  if cache[key] ~= nil then return cache[key] or nil end
  local rows = runs[w] and runs[w][p] and runs[w][p][n]
  if not rows then cache[key] = false; return nil end
  local s, seen = { runs = #rows }, {}
  for _, r in ipairs(rows) do
    for k in pairs(r) do
      if not seen[k] then
        seen[k] = true
        local vals = values(rows, k)
        if #vals > 0 then s[k] = median(vals) end
      end
    end
  end
  local m = values(rows, METRIC[w] or "wall_s")
  table.sort(m)
  if #m > 0 then s.min, s.max = m[1], m[#m] end
  local base = n > 0 and runs[w][p][0]
  if base and s.rss_kb then
    local b = median(values(base, "rss_kb"))
    if b then s.bytes_per_task = (s.rss_kb - b) * 1024 / s.n end
  end
  if w == "http_get" and s.cpu_s and s.n > 0 then
    s.cpu_us_per_req = s.cpu_s * 1e6 / s.n
  end
  cache[key] = s
  return s
end

-- the sizes a (workload, peer) ran at, biggest first, without the n=0 runs
-- where there are others
local function sizes(w, p)
  local ns = {}
  for n in pairs(runs[w][p]) do ns[#ns + 1] = n end
  table.sort(ns, function(a, b) return a > b end)
  if #ns > 1 and ns[#ns] == 0 then ns[#ns] = nil end
  return ns
end

local function sorted_keys(t, less)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks, less)
  return ks
end

local function fmt(v)
  if v == nil then return "" end
  if math.abs(v) >= 100 then return ("%.0f"):format(v) end
  return (("%.4g"):format(v))
end

-- 1234567 -> "1,234,567"
local function count(n)
  return (("%.0f"):format(n):reverse():gsub("(%d%d%d)", "%1,"):reverse()
    :gsub("^,", ""))
end

local function fmt_ratio(r)
  if r == nil then return "" end
  if r >= 100 then return ("%.0fx"):format(r) end
  if r >= 10 then return ("%.1fx"):format(r) end
  if r >= 0.1 then return ("%.2fx"):format(r) end
  return ("%.2gx"):format(r)
end

-- loom's cost / the peer's cost for a metric
local function ratio(metric, loomv, peerv)
  if not loomv or not peerv or loomv == 0 or peerv == 0 then return nil end
  if RATE[metric] then return peerv / loomv end
  return loomv / peerv
end

local out = io.stdout
local function printf(...) out:write(string.format(...)) end

---------------------------------------------------------------- scaling --

if scaling then
  local function table_for(w, title, value, unit)
    if not runs[w] then return end
    local peers = sorted_keys(runs[w], peer_less)
    local ns = {}
    for _, p in ipairs(peers) do
      for n in pairs(runs[w][p]) do if n > 0 then ns[n] = true end end
    end
    ns = sorted_keys(ns)
    printf("\n%s\n\n| tasks |", title)
    for _, p in ipairs(peers) do printf(" %s %s |", p, unit) end
    local others = {}
    for _, p in ipairs(peers) do
      if p ~= "loom" and p ~= "loom-queue" and runs[w].loom then
        others[#others + 1] = p
        printf(" loom/%s |", p)
      end
    end
    printf(" runs |\n|---|")
    for _ = 1, #peers + #others + 1 do printf("---|") end
    printf("\n")
    for _, n in ipairs(ns) do
      printf("| %s |", count(n))
      local loomv, nruns = nil, 0
      for _, p in ipairs(peers) do
        local s = stats(w, p, n)
        local v = s and value(s)
        if p == "loom" then loomv = v end
        if s then nruns = math.max(nruns, s.runs) end
        printf(" %s |", fmt(v))
      end
      for _, p in ipairs(others) do
        local s = stats(w, p, n)
        local v = s and value(s)
        printf(" %s |", fmt_ratio(loomv and v and loomv / v))
      end
      printf(" %d |\n", nruns)
    end
  end
  table_for("sleepers", "Bytes per sleeping task: (peak RSS at N - peak RSS "
    .. "at N=0) * 1024 / N, medians", function(s) return s.bytes_per_task end,
    "B/task")
  table_for("spawn_gather", "spawn_gather: time per task (the script's own "
    .. "wall time / N), medians", function(s)
      return s.wall_s and s.wall_s * 1e6 / s.n end, "µs/task")
  for _, l in ipairs(notes) do printf("%s\n", l) end
  return
end

----------------------------------------------------------- main tables --

local WORDER = { "spawn_gather", "sleepers", "pingpong", "http_get",
  "startup", "tcp_echo", "fs_read", "timeout_overhead", "group_vs_gather",
  "fail_many", "soak" }
local WRANK = {}
for i, w in ipairs(WORDER) do WRANK[w] = i end
local workloads = sorted_keys(runs, function(a, b)
  local ra, rb = WRANK[a] or 1000, WRANK[b] or 1000
  if ra ~= rb then return ra < rb end
  return a < b
end)
printf("\nMedians (runs = repeats; range = min-max of the metric; rss_kb = "
  .. "peak RSS; cpu_s = user+sys of the whole process; loom/peer = loom's "
  .. "time / the peer's time, for a rate the peer's rate / loom's: below 1 "
  .. "loom is faster)\n\n")
printf("| workload | peer | n | runs | metric | median | range | wall_s | "
  .. "rss_kb | bytes/task | cpu_s | cpu_us/req | loom/peer |\n")
printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
for _, w in ipairs(workloads) do
  local metric = METRIC[w] or "wall_s"
  for _, p in ipairs(sorted_keys(runs[w], peer_less)) do
    for _, n in ipairs(sizes(w, p)) do
      local s = stats(w, p, n)
      local r
      if p ~= "loom" and p ~= "loom-queue" and runs[w].loom then
        local l = stats(w, "loom", sizes(w, "loom")[1])
        r = ratio(metric, l and l[metric], s[metric])
      end
      local range = s.min and s.runs > 1
        and (fmt(s.min) .. "-" .. fmt(s.max)) or ""
      printf("| %s | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s "
        .. "| %s |\n", w, p, fmt(s.n), s.runs, metric, fmt(s[metric]), range,
        fmt(s.wall_s), fmt(s.rss_kb), fmt(s.bytes_per_task), fmt(s.cpu_s),
        fmt(s.cpu_us_per_req), fmt_ratio(r))
    end
  end
end

-- subjects: what loom is compared on, one row each in the ratio table and
-- one group in the chart
local SUBJECTS = {
  { "spawn_gather", "spawn_gather", "loom", "wall_s", "wall time" },
  { "sleepers", "sleepers", "loom", "wall_s", "wall time" },
  { "sleepers memory", "sleepers", "loom", "bytes_per_task",
    "bytes per sleeping task" },
  { "pingpong", "pingpong", "loom", "switches_per_s",
    "passes/s (loom: a future per pass)" },
  { "queue_pingpong", "pingpong", "loom-queue", "switches_per_s",
    "passes/s (loom: loom.Queue)" },
  { "http_get", "http_get", "loom", "rps", "requests/s" },
  { "http_get CPU", "http_get", "loom", "cpu_us_per_req",
    "CPU per request" },
  { "startup", "startup", "loom", "median_ms", "start-up, median" },
  { "tcp_echo", "tcp_echo", "loom", "msgs_per_s", "round trips/s" },
  { "fs_read", "fs_read", "loom", "files_per_s", "files/s" },
}

local function biggest(w, p)
  if not (runs[w] and runs[w][p]) then return nil end
  return stats(w, p, sizes(w, p)[1])
end

-- rows[i] = { label, what, metric, n, loomv, { {peer, value, ratio}... } }
local rows, peers_seen = {}, {}
for _, sub in ipairs(SUBJECTS) do
  local label, w, lp, metric, what = table.unpack(sub)
  local l = biggest(w, lp)
  if l and l[metric] then
    local row = { label = label, what = what, metric = metric, n = l.n,
      loom = l[metric], peers = {} }
    for _, p in ipairs(sorted_keys(runs[w], peer_less)) do
      if p ~= "loom" and p ~= "loom-queue" and not FLOORS[p] then
        local s = biggest(w, p)
        local r = s and ratio(metric, l[metric], s[metric])
        if r then
          row.peers[#row.peers + 1] = { peer = p, value = s[metric], ratio = r }
          peers_seen[p] = true
        end
      end
    end
    rows[#rows + 1] = row
  end
end

local columns = sorted_keys(peers_seen, peer_less)
if #rows > 0 and #columns > 0 then
  printf("\nloom against each peer: loom's cost / the peer's (time, or for a "
    .. "rate the peer's rate / loom's; bytes for memory): below 1 loom is "
    .. "faster or lighter\n\n| workload | metric | loom |")
  for _, p in ipairs(columns) do printf(" loom/%s |", p) end
  printf("\n|---|---|---|")
  for _ = 1, #columns do printf("---|") end
  printf("\n")
  for _, row in ipairs(rows) do
    local by = {}
    for _, e in ipairs(row.peers) do by[e.peer] = e.ratio end
    printf("| %s | %s | %s |", row.label, row.metric, fmt(row.loom))
    for _, p in ipairs(columns) do printf(" %s |", fmt_ratio(by[p])) end
    printf("\n")
  end
end

-- loom-only workloads
local lonely = {}
local function only(w, f)
  local s = biggest(w, "loom")
  if s then lonely[#lonely + 1] = f(s) end
end
only("timeout_overhead", function(s)
  return ("timeout_overhead: loom.timeout costs %.0f ns over the bare call "
    .. "(%.0f ns wrapped)"):format(s.overhead_ns or 0, s.timeout_ns or 0) end)
only("group_vs_gather", function(s)
  return ("group_gather: %.0f children, group %.3f s, gather %.3f s: group/"
    .. "gather %.2f"):format(s.n, s.group_s or 0, s.gather_s or 0,
      s.ratio or 0) end)
only("fail_many", function(s)
  return ("fail_many: %.0f failing tasks awaited in %.3f s"):format(s.n,
    s.wall_s or 0) end)
only("soak", function(s)
  return ("soak: %.0f tasks in %.2f s, RSS drift after warm-up %.1f %%")
    :format(s.n, s.wall_s or 0, s.drift_pct or 0) end)
if #lonely > 0 then
  printf("\nloom only:\n")
  for _, l in ipairs(lonely) do printf("- %s\n", l) end
end
if #notes > 0 then
  printf("\nSkipped or failed:\n")
  for _, l in ipairs(notes) do printf("- %s\n", l) end
end

------------------------------------------------------------------ chart --

if not chart then return end

local function sig3(v)
  if v >= 100 then return ("%.0f"):format(v) end
  if v >= 10 then return ("%.1f"):format(v) end
  return ("%.3g"):format(v)
end

local function human(metric, v)
  if metric == "wall_s" then return sig3(v) .. " s" end
  if metric == "median_ms" then return sig3(v) .. " ms" end
  if metric == "bytes_per_task" then return ("%.0f B"):format(v) end
  if metric == "cpu_us_per_req" then return sig3(v) .. " µs" end
  if v >= 1e6 then return sig3(v / 1e6) .. " M/s" end
  if v >= 1e3 then return sig3(v / 1e3) .. " k/s" end
  return sig3(v) .. " /s"
end

local function esc(s)
  return (tostring(s):gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;"))
end

local SIZE_WORD = { spawn_gather = " tasks", sleepers = " tasks",
  pingpong = " passes", queue_pingpong = " passes", http_get = " GETs",
  ["http_get CPU"] = " GETs", ["sleepers memory"] = " tasks",
  fs_read = " files" }

-- the log scale: whole decades around every peer's cost / loom's
local lo, hi = 0, 0
for _, row in ipairs(rows) do
  for _, e in ipairs(row.peers) do
    local x = math.log(1 / e.ratio, 10)
    lo, hi = math.min(lo, x), math.max(hi, x)
  end
end
lo, hi = math.floor(lo), math.ceil(hi)
if lo == hi then hi = lo + 1 end

local W, NAME_X, X0, X1, LABEL_X = 980, 150, 160, 640, 652
local ROW, GAP, HEAD, TOP = 17, 10, 20, 78
local function xof(cost) -- cost = the peer's cost / loom's
  local x = math.log(cost, 10)
  x = math.max(lo, math.min(hi, x))
  return X0 + (x - lo) / (hi - lo) * (X1 - X0)
end

local body, y = {}, TOP
local function add(s, ...) body[#body + 1] = s:format(...) end
for _, row in ipairs(rows) do
  if #row.peers > 0 then
    local size = SIZE_WORD[row.label] and
      (", " .. count(row.n) .. SIZE_WORD[row.label]) or ""
    if row.label == "tcp_echo" then
      local s = biggest("tcp_echo", "loom")
      size = (", %.0f clients, %s s"):format(s.conc or 0,
        sig3(s.wall_s or 0))
    end
    add('<text x="10" y="%d" class="h">%s%s: %s · loom %s</text>',
      y + 13, esc(row.label), esc(size), esc(row.what),
      esc(human(row.metric, row.loom)))
    y = y + HEAD
    for _, e in ipairs(row.peers) do
      local cost = 1 / e.ratio
      local a, b = xof(1), xof(cost)
      local cls = cost >= 1 and "win" or "lose"
      add('<text x="%d" y="%d" class="p">%s</text>', NAME_X, y + 12,
        esc(e.peer))
      add('<rect x="%.1f" y="%d" width="%.1f" height="12" class="%s"/>',
        math.min(a, b), y + 2, math.max(1, math.abs(b - a)), cls)
      add('<text x="%d" y="%d" class="v">%s · %s loom\'s %s</text>',
        LABEL_X, y + 12, esc(human(row.metric, e.value)),
        (fmt_ratio(cost):gsub("x$", "×")), row.metric == "bytes_per_task"
        and "bytes" or row.metric == "cpu_us_per_req" and "CPU" or "time")
      y = y + ROW
    end
    y = y + GAP
  end
end
local bottom = y

-- loom-only figures under the chart
local foot = {}
if #lonely > 0 then
  foot[1] = ('<text x="10" y="%d" class="h">loom only (no peer runs '
    .. 'these):</text>'):format(y + 14)
  y = y + 18
end
for _, l in ipairs(lonely) do
  foot[#foot + 1] = ('<text x="10" y="%d" class="f">%s</text>'):format(
    y + 14, esc(l))
  y = y + 16
end

local H = y + 16
local svg = {}
local function put(s, ...) svg[#svg + 1] = s:format(...) end
put('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
  .. 'viewBox="0 0 %d %d" font-family="DejaVu Sans, Arial, sans-serif" '
  .. 'font-size="12">', W, H, W, H)
put('<style>.h{font-weight:bold;paint-order:stroke;stroke:#fff;'
  .. 'stroke-width:4px;stroke-linejoin:round}.p{text-anchor:end}.v{fill:#222}'
  .. '.f{fill:#333}.win{fill:#4c9a5b}.lose{fill:#d0674f}'
  .. '.g{stroke:#ccc;stroke-width:1}.one{stroke:#000;stroke-width:1.5}'
  .. '.t{text-anchor:middle;fill:#555;font-size:11}</style>')
put('<rect width="%d" height="%d" fill="#fff"/>', W, H)
put('<text x="10" y="22" font-size="16" class="h">loom beside its peers: '
  .. 'each peer\'s cost relative to loom\'s (loom = 1, log scale)</text>')
put('<text x="10" y="40" class="f">A bar is the peer\'s time (for a rate: '
  .. 'loom\'s rate / the peer\'s; memory: its bytes) divided by loom\'s. '
  .. '<tspan fill="#2e7a3e">Right of the line: loom is faster or '
  .. 'lighter</tspan>; <tspan fill="#b0452f">left: the peer is</tspan>.'
  .. '</text>')
if note then
  put('<text x="10" y="56" class="f">%s</text>', esc(note))
end
for d = lo, hi do
  local x = X0 + (d - lo) / (hi - lo) * (X1 - X0)
  local lab = d == 0 and "1 (loom)" or (d < 0 and ("1/" ..
    count(10 ^ -d)) or (count(10 ^ d)
    .. "×"))
  put('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" class="%s"/>', x, TOP - 4,
    x, bottom - GAP, d == 0 and "one" or "g")
  put('<text x="%.1f" y="%d" class="t">%s</text>', x, TOP - 8, lab)
  put('<text x="%.1f" y="%d" class="t">%s</text>', x, bottom + 4, lab)
end
for _, s in ipairs(body) do svg[#svg + 1] = s end
for _, s in ipairs(foot) do svg[#svg + 1] = s end
put('</svg>')
local f = assert(io.open(chart, "w"))
f:write(table.concat(svg, "\n"), "\n")
f:close()
printf("\nchart: %s\n", chart)
