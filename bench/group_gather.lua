-- group_gather: N children that each sleep(0) once and return i, waited
-- for by a loom.group (loom.scope) or by gather (target: the group at most
-- 1.2x the gather). "both" alternates the two R times in one process and
-- reports the medians and their ratio; "group" or "gather" runs one (for
-- whole-process A/B timing).
local loom = loom or require "loom"
local mode = arg[1] or "both"
local N = tonumber(arg[2]) or 100000
local R = tonumber(arg[3]) or 5

local function child(i)
  loom.sleep(0)
  return i
end

local function with_gather()
  local tasks = {}
  for i = 1, N do tasks[i] = loom.spawn(child, i) end
  local res = loom.gather(tasks)
  assert(#res == N and res[N] == N, "bad results")
end

local function with_group()
  local tasks
  loom.scope(function(g)
    tasks = {}
    for i = 1, N do tasks[i] = g:spawn(child, i) end
  end)
  assert(tasks[N]:result() == N, "bad results")
end

local function timed(fn)
  collectgarbage()
  local t0 = loom.now()
  fn()
  return loom.now() - t0
end

loom.run(function()
  if mode ~= "both" then
    local wall = timed(mode == "group" and with_group or with_gather)
    print(("RESULT workload=%s peer=loom n=%d wall_s=%.4f"):format(mode, N,
      wall))
    return
  end
  local ga, gr = {}, {}
  for r = 1, R do
    ga[r] = timed(with_gather)
    gr[r] = timed(with_group)
  end
  table.sort(ga)
  table.sort(gr)
  local a, b = ga[(R + 1) // 2], gr[(R + 1) // 2]
  print(("RESULT workload=group_vs_gather peer=loom n=%d gather_s=%.4f "
    .. "group_s=%.4f ratio=%.3f"):format(N, a, b, b / a))
end)
