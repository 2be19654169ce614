-- spawn_gather: spawn N tasks, each yields once to the loop (sleep(0)) and
-- returns i; gather them all in spawn order; check the sum.
local loom = loom or require "loom"
local N = tonumber(arg[1]) or 200000

local function task(i)
  loom.sleep(0)
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
  print(("RESULT workload=spawn_gather peer=loom n=%d wall_s=%.4f")
    :format(N, wall))
end)
