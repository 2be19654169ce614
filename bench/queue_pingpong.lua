-- queue_pingpong: the pingpong workload (../shared/bench: two tasks pass a
-- counter M times through two channels) with two loom.Queue as the
-- channels. put hands the item to the waiting getter and makes it ready;
-- loom resumes ready tasks within the same loop turn (microtask-like, as
-- Node): no future and no allocation per pass.
local loom = loom or require "loom"
local M = tonumber(arg[1]) or 1000000
M = M + M % 2

loom.run(function()
  local a, b = loom.Queue(), loom.Queue()
  local t0 = loom.now()
  local ping = loom.spawn(function()
    local x = 0
    while x < M do a:put(x + 1); x = b:get() end
    return x
  end)
  local pong = loom.spawn(function()
    while true do
      local x = a:get()
      b:put(x + 1)
      if x + 1 >= M then return x + 1 end
    end
  end)
  local x, y = loom.gather(ping, pong)
  local wall = loom.now() - t0
  assert(x == M and y == M, "bad count")
  print(("RESULT workload=pingpong peer=loom-queue n=%d wall_s=%.4f "
    .. "switches_per_s=%.0f"):format(M, wall, M / wall))
end)
