-- pingpong: two tasks pass a counter back and forth M times through two
-- channels. A channel is a buffer plus at most one waiting receiver, which
-- is a loom.future: send sets it, which makes the receiver ready, and loom
-- resumes ready tasks within the same loop turn (microtask-like, as Node).
local loom = loom or require "loom"
local M = tonumber(arg[1]) or 1000000
M = M + M % 2
local future = loom.future

local function chan() return { head = 1, tail = 0, waiter = false } end

local function send(c, v)
  local w = c.waiter
  if w then
    c.waiter = false
    w:set(v)
  else
    c.tail = c.tail + 1
    c[c.tail] = v
  end
end

local function recv(c)
  if c.head <= c.tail then
    local v = c[c.head]
    c[c.head] = nil
    c.head = c.head + 1
    return v
  end
  local f = future()
  c.waiter = f
  return f:await()
end

loom.run(function()
  local a, b = chan(), chan()
  local t0 = loom.now()
  local ping = loom.spawn(function()
    local x = 0
    while x < M do send(a, x + 1); x = recv(b) end
    return x
  end)
  local pong = loom.spawn(function()
    while true do
      local x = recv(a)
      send(b, x + 1)
      if x + 1 >= M then return x + 1 end
    end
  end)
  local x, y = loom.gather(ping, pong)
  local wall = loom.now() - t0
  assert(x == M and y == M, "bad count")
  print(("RESULT workload=pingpong peer=loom n=%d wall_s=%.4f "
    .. "switches_per_s=%.0f"):format(M, wall, M / wall))
end)
