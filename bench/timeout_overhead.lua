-- timeout_overhead: what loom.timeout costs around a call that finishes in
-- time (target: at most 1 µs over the bare call). Alternates the bare and
-- the wrapped loop R times in one process and reports the medians.
local loom = loom or require "loom"
local N = tonumber(arg[1]) or 1000000
local R = tonumber(arg[2]) or 5

local function f(x) return x end

loom.run(function()
  local timeout = loom.timeout
  local bare, wrapped = {}, {}
  for r = 1, R do
    local t0 = loom.now()
    for i = 1, N do f(i) end
    bare[r] = (loom.now() - t0) / N
    t0 = loom.now()
    for i = 1, N do timeout(1, f, i) end
    wrapped[r] = (loom.now() - t0) / N
  end
  table.sort(bare)
  table.sort(wrapped)
  local mb, mw = bare[(R + 1) // 2], wrapped[(R + 1) // 2]
  print(("RESULT workload=timeout_overhead peer=loom n=%d wall_s=%.4f "
    .. "bare_ns=%.1f timeout_ns=%.1f overhead_ns=%.1f"):format(N,
    mw * N, mb * 1e9, mw * 1e9, (mw - mb) * 1e9))
end)
