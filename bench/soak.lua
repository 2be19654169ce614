-- soak: spawn and finish 1,000,000 tasks in batches of 10,000 (each
-- sleeps 0 or 1 ms, some fail and are awaited, some are cancelled) and
-- print the process's resident memory every ten batches (100,000 tasks):
-- after warm-up it must stay flat (within 5 %), or something leaks.
--   usage: loom bench/soak.lua [N=1000000] [BATCH=10000]
local loom = loom or require "loom"
local N = tonumber(arg[1]) or 1000000
local BATCH = tonumber(arg[2]) or 10000

local function rss_kb()
  local f = io.open("/proc/self/status")
  if not f then return 0 end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)")) or 0
end

local function work(i)
  if i % 7 == 0 then error("fails " .. i) end
  loom.sleep(i % 3 == 0 and 0.001 or 0)
  return i
end

loom.run(function()
  local t0, done, series = loom.now(), 0, {}
  while done < N do
    local tasks = {}
    for i = 1, BATCH do tasks[i] = loom.spawn(work, done + i) end
    for i = 1, BATCH, 11 do tasks[i]:cancel() end
    for i = 1, BATCH do pcall(tasks[i].await, tasks[i]) end
    done = done + BATCH
    if done % (BATCH * 10) == 0 then
      local kb = rss_kb()
      series[#series + 1] = kb
      print(("soak: %7d tasks  rss %6d KB  %.2f s"):format(done, kb,
        loom.now() - t0))
    end
  end
  -- flat after warm-up: the last reading against the second
  local warm, last = series[2] or series[1], series[#series]
  local drift = warm > 0 and (last - warm) / warm * 100 or 0
  print(("RESULT workload=soak peer=loom n=%d wall_s=%.4f rss_kb=%d "
    .. "drift_pct=%.1f"):format(N, loom.now() - t0, last, drift))
end)
