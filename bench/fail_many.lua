-- fail_many: N concurrent tasks that each fail; all awaited (the failure
-- retrieved). Cost must grow linearly with N (it once grew quadratically:
-- 230 s at 40,000).
local loom = loom or require "loom"
local N = tonumber(arg[1]) or 40000

loom.run(function()
  local t0 = loom.now()
  local tasks = {}
  for i = 1, N do
    tasks[i] = loom.spawn(function() loom.sleep(0) error("boom " .. i) end)
  end
  local failed = 0
  for i = 1, N do
    if not pcall(tasks[i].await, tasks[i]) then failed = failed + 1 end
  end
  assert(failed == N, "every task should fail")
  print(("RESULT workload=fail_many peer=loom n=%d wall_s=%.4f")
    :format(N, loom.now() - t0))
end)
