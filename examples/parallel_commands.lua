-- parallel_commands.lua: runs several shell commands at once and prints
-- each one's output as soon as it finishes, so the whole takes as long as
-- the slowest, not the sum.
--   run: build/loom examples/parallel_commands.lua ["cmd1" "cmd2" ...]
local process = loom.process

local commands = { ... }
if #commands == 0 then
  commands = {
    "sleep 0.3; echo 'slow: done'",
    "echo 'fast: done'",
    "sleep 0.1; echo 'medium: done'; echo 'medium: to stderr' >&2",
    "sleep 0.2; exit 3",
  }
end

local start = loom.now()

local function run(cmd)
  local r = process.run(cmd, { shell = true, timeout = 30 })
  -- printed from this task as soon as its command ends
  print(("[%.1fs] $ %s  (exit %d)"):format(loom.now() - start, cmd, r.code))
  for line in (r.stdout .. r.stderr):gmatch("[^\n]+") do
    print("    " .. line)
  end
  return r.code
end

local jobs = {}
for i, cmd in ipairs(commands) do jobs[i] = function() return run(cmd) end end
local codes = gather(jobs)

local failed = 0
for _, code in ipairs(codes) do if code ~= 0 then failed = failed + 1 end end
print(("%d commands in %.1fs, %d failed"):format(#commands,
  loom.now() - start, failed))
