-- sleepers: N concurrent tasks each sleep S seconds, then gather them.
local loom = loom or require "loom"
local N = tonumber(arg[1]) or 100000
local S = tonumber(arg[2]) or 1.0

local function task(i)
  loom.sleep(S)
  return i
end

loom.run(function()
  local t0 = loom.now()
  local tasks = {}
  for i = 0, N - 1 do tasks[i + 1] = loom.spawn(task, i) end
  local res = loom.gather(tasks)
  local wall = loom.now() - t0
  local sum = 0
  for _, v in ipairs(res) do sum = sum + v end
  assert(sum == N * (N - 1) // 2, "bad sum")
  print(("RESULT workload=sleepers peer=loom n=%d wall_s=%.4f"):format(N, wall))
end)
