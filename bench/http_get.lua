-- http_get: N GETs of a 1 KiB body over keep-alive, C concurrent workers
-- sharing one counter (the peer suite's workload, ../shared/bench): loom.http
-- with its default session (one curl multi handle, at most C connections
-- since at most C requests are in flight).
local loom = require "loom"
local http = loom.http
local N = tonumber(arg[1]) or 20000
local C = tonumber(arg[2]) or 64
local URL = arg[3] or "http://127.0.0.1:18089/1k"

loom.run(function()
  local get = http.get
  local left, done = N, 0
  local function worker()
    while left > 0 do
      left = left - 1
      local res = get(URL)
      assert(res.status == 200 and #res.body == 1024, "bad response")
      done = done + 1
    end
  end
  local t0 = loom.now()
  local workers = {}
  for i = 1, C do workers[i] = loom.spawn(worker) end
  loom.gather(workers)
  local wall = loom.now() - t0
  assert(done == N, "incomplete")
  print(("RESULT workload=http_get peer=loom n=%d wall_s=%.4f conc=%d rps=%.0f")
    :format(N, wall, C, N / wall))
end)
