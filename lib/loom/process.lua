-- loom.process: child processes. spawn (C, bindings/process.c) starts one
-- with pipes as loom streams; run, here, is Python's subprocess.run: it
-- starts the command, feeds it input, collects its output and waits, and
-- a cancelled (or timed out) run kills the child and its group, and reaps
-- it, so nothing is left behind.
--
--   local r = loom.process.run({ "ls", "-l" }, { cwd = "/tmp" })
--   print(r.code, r.stdout)
--   local r = loom.process.run("ls | wc -l", { shell = true, check = true })
local core = require "loom.process.core"
local loom = require "loom"
local io_error = require("loom.io").Error

local spawn, sleep = loom.spawn, loom.sleep

local process = { spawn = core.spawn }

-- As a C function's bad argument error, at the position of run's caller
-- (level: 3 from run itself, 4 from a function run calls).
local function bad(n, msg, level)
  error(("bad argument #%d to 'run' (%s)"):format(n, msg), level or 3)
end

local function err(code, message, fields)
  local e = { code = code, message = message, op = "run" }
  for k, v in pairs(fields or {}) do e[k] = v end
  return setmetatable(e, io_error)
end

local function argv_of(cmd, opts)
  if type(cmd) == "string" then
    if rawget(opts, "shell") then return { "/bin/sh", "-c", cmd } end
    if cmd:find("%s") then
      bad(1, ("command '%s' has spaces: pass an argv table, or shell = true")
        :format(cmd), 4)
    end
    if cmd == "" then bad(1, "the command is empty", 4) end
    return { cmd }
  elseif type(cmd) == "table" then
    if rawget(opts, "shell") then
      bad(1, "shell = true takes a command string", 4)
    end
    return cmd
  end
  bad(1, ("string or table expected, got %s"):format(
    cmd == nil and "no value" or type(cmd)), 4)
end

local function read_all(stream)
  return stream:read_all()
end

local function feed(stream, input)
  -- a child that exits without reading its input is not an error
  pcall(stream.write, stream, input)
  stream:close()
end

--- run(cmd, opts) -> { code, signal, ok, stdout, stderr }
--- opts: cwd, env (name = value, or false to unset), clear_env, input
--- (a string for its stdin), timeout (s), check (raise if code ~= 0),
--- shell (cmd is a command line for /bin/sh), stdin/stdout/stderr
--- ("pipe", "inherit", "null"; stdout and stderr are captured by default).
function process.run(cmd, opts)
  if opts ~= nil and type(opts) ~= "table" then
    bad(2, ("table expected, got %s"):format(type(opts)))
  end
  opts = opts or {}
  local argv = argv_of(cmd, opts)
  local input, timeout = rawget(opts, "input"), rawget(opts, "timeout")
  if input ~= nil and type(input) ~= "string" then
    bad(2, "input must be a string")
  end
  if timeout ~= nil and (type(timeout) ~= "number" or not (timeout >= 0)) then
    bad(2, "timeout must be a non-negative number")
  end
  local p <close> = core.spawn(argv, {
    cwd = rawget(opts, "cwd"), env = rawget(opts, "env"),
    clear_env = rawget(opts, "clear_env"),
    stdin = input and "pipe" or rawget(opts, "stdin") or "null",
    stdout = rawget(opts, "stdout") or "pipe",
    stderr = rawget(opts, "stderr") or "pipe",
    detached = true, kill_at_close = true,
  }, "run")
  -- each <close> task is cancelled (and waited for) on the way out; p's
  -- <close>, last, kills the child and its group if it still runs
  local writer <close> = input and spawn(feed, p.stdin, input)
  local out <close> = p.stdout and spawn(read_all, p.stdout)
  local errs <close> = p.stderr and spawn(read_all, p.stderr)
  local timed_out = false
  local timer <close> = timeout and spawn(function()
    sleep(timeout)
    timed_out = true
    p:kill("SIGKILL")
  end)
  local code, signal = p:wait()
  local result = {
    code = code, signal = signal, ok = code == 0,
    stdout = out and out:await(), stderr = errs and errs:await(),
  }
  if timed_out then
    error(err("ETIMEDOUT", ("timed out after %g s"):format(timeout), {
      path = argv[1], stdout = result.stdout, stderr = result.stderr }), 2)
  end
  if rawget(opts, "check") and code ~= 0 then
    local why = signal and ("was killed by " .. signal)
      or ("exited with code " .. code)
    error(err("EXIT", ("'%s' %s"):format(argv[1], why), {
      path = argv[1], exit_code = code, signal = signal,
      stdout = result.stdout, stderr = result.stderr }), 2)
  end
  return result
end

return process
