-- tcp_echo: C clients send 1 KiB messages to an echo server in the same
-- process, each waiting for its echo before sending the next, for S
-- seconds; reports round trips per second. Server and clients are loom
-- tasks on loom.tcp streams (127.0.0.1).
--   usage: loom bench/tcp_echo.lua [C=64] [S=10] [SIZE=1024]
local loom = loom or require "loom"
local C = tonumber(arg[1]) or 64
local S = tonumber(arg[2]) or 10
local SIZE = tonumber(arg[3]) or 1024
local tcp = loom.tcp

local function echo(stream)
  while true do
    local data = stream:read()
    if data == nil then return end
    stream:write(data)
  end
end

local function main()
  local server <close> = tcp.listen("127.0.0.1", 0, echo)
  local msg = ("x"):rep(SIZE)
  local running, counts = true, {}
  local clients = {}
  for i = 1, C do
    clients[i] = loom.spawn(function()
      local c <close> = tcp.connect("127.0.0.1", server.port)
      local n = 0
      while running do
        c:write(msg)
        assert(c:read_exactly(SIZE) == msg)
        n = n + 1
      end
      counts[i] = n
    end)
  end
  local t0 = loom.now()
  loom.sleep(S)
  running = false
  loom.gather(clients)
  local wall = loom.now() - t0
  local total = 0
  for i = 1, C do total = total + counts[i] end
  print(("RESULT workload=tcp_echo peer=loom n=%d wall_s=%.4f conc=%d "
    .. "size=%d msgs_per_s=%.0f"):format(total, wall, C, SIZE, total / wall))
end

loom.run(main)
