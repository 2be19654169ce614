-- spec/support/cli.lua: runs a program (the loom binary by default) as a
-- subprocess and returns what it printed and how it exited.
--
--   local cli = require "spec.support.cli"
--   local out, err, code = cli.loom({"-e", "print(1)"})
--   local out, err, code = cli.run{prog = "lua5.4", args = {...},
--     stdin = "...", env = {LUA_INIT = "x=1", LUA_PATH = false},
--     argv0 = "lua", cwd = "/tmp"}
--
-- env: name = string sets it, name = false unsets it; LUA_INIT,
-- LUA_INIT_5_4 and LUA_INIT_5_3 are unset unless given, so the caller's
-- environment never leaks into a test. argv0 sets the program name the
-- process sees (messages start with it, as in lua.c), so the output of
-- loom and of lua5.4 can be compared byte for byte.
local M = {}

M.LOOM = os.getenv("LOOM") or "build/loom"
M.SO_DIR = os.getenv("LOOM_SO_DIR") or "build"
M.TIMEOUT = 20  -- seconds a subprocess may run
local sanitize = (os.getenv("LOOM_SANITIZE") or ""):upper()
M.SANITIZE = sanitize == "ON" or sanitize == "1" or sanitize == "TRUE"
  or sanitize == "YES"

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = quote

local tmpfiles = {}

-- Writes content to a new temporary file and returns its name (removed by
-- M.cleanup()).
function M.tmpfile(content, suffix)
  local name = os.tmpname()
  if suffix then
    os.remove(name)
    name = name .. suffix
  end
  local f = assert(io.open(name, "wb"))
  f:write(content or "")
  f:close()
  tmpfiles[#tmpfiles + 1] = name
  return name
end

function M.cleanup()
  for i = #tmpfiles, 1, -1 do
    os.remove(tmpfiles[i])
    tmpfiles[i] = nil
  end
end

local function slurp(name)
  local f = assert(io.open(name, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function copy(t)
  local c = {}
  for k, v in pairs(t or {}) do c[k] = v end
  return c
end

-- Runs opts.prog (default: $LOOM) with opts.args; returns stdout, stderr
-- and the exit code (128 + n if killed by signal n). The program is killed
-- after opts.timeout seconds (default M.TIMEOUT), and the exit code is
-- then 124 (as timeout(1) says), so a hang fails one test, not the file.
function M.run(opts)
  local env = { LUA_INIT = false, LUA_INIT_5_4 = false, LUA_INIT_5_3 = false }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local out, err = os.tmpname(), os.tmpname()
  local input = "/dev/null"
  if opts.stdin then
    input = os.tmpname()
    local f = assert(io.open(input, "wb"))
    f:write(opts.stdin)
    f:close()
  end
  local cmd = { "exec env" }
  local names = {}
  for k in pairs(env) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    if env[k] == false then cmd[#cmd + 1] = "-u " .. quote(k) end
  end
  for _, k in ipairs(names) do
    if env[k] ~= false then cmd[#cmd + 1] = quote(k .. "=" .. env[k]) end
  end
  cmd[#cmd + 1] = ("timeout -k 2 %g"):format(opts.timeout or M.TIMEOUT)
  if opts.argv0 then
    -- bash's exec -a sets the name the program is started under
    cmd[#cmd + 1] = "bash -c " .. quote('exec -a "$0" "$@"') .. " "
      .. quote(opts.argv0)
  end
  cmd[#cmd + 1] = quote(opts.prog or M.LOOM)
  for _, a in ipairs(opts.args or {}) do cmd[#cmd + 1] = quote(a) end
  local line = table.concat(cmd, " ") .. " <" .. quote(input) .. " >"
    .. quote(out) .. " 2>" .. quote(err)
  if opts.cwd then line = "cd " .. quote(opts.cwd) .. " && " .. line end
  local _, how, code = os.execute(line)
  if how == "signal" then code = 128 + code end
  local o, e = slurp(out), slurp(err)
  os.remove(out)
  os.remove(err)
  if input ~= "/dev/null" then os.remove(input) end
  return o, e, code
end

-- cli.loom(args [, opts]): the loom binary.
function M.loom(args, opts)
  local run = copy(opts)
  run.args = args
  return M.run(run)
end

-- cli.lua(args [, opts]): the stock interpreter.
function M.lua(args, opts)
  local run = copy(opts)
  run.args = args
  run.prog = "lua5.4"
  return M.run(run)
end

-- Runs the Lua source src as a script file with the loom binary (or
-- opts.prog); script arguments in opts.args. Returns stdout, stderr, code
-- and the script's file name (already removed).
function M.script(src, opts)
  local run = copy(opts)
  local file = M.tmpfile(src, ".lua")
  run.args = { file }
  for _, a in ipairs(opts and opts.args or {}) do run.args[#run.args + 1] = a end
  local o, e, c = M.run(run)
  os.remove(file)
  return o, e, c, file
end

-- Runs src as a script under loom started as "loom"; returns stdout,
-- stderr with the script's name replaced by FILE, and the exit code.
function M.script_as_loom(src)
  local out, err, code, file = M.script(src, { argv0 = "loom" })
  return out, (err:gsub(file:gsub("%p", "%%%0"), "FILE")), code
end

-- Module mode: runs the Lua source src as a script file with stock lua5.4,
-- loom.so first on package.cpath. Returns stdout, stderr, code and the
-- script's file name (already removed).
function M.module(src, opts)
  local prelude = ("package.cpath = %q .. '/?.so;' .. package.cpath")
    :format(M.SO_DIR)
  local run = copy(opts)
  local file = M.tmpfile(src, ".lua")
  run.prog = "lua5.4"
  run.args = { "-e", prelude, file }
  for _, a in ipairs(opts and opts.args or {}) do run.args[#run.args + 1] = a end
  local o, e, c = M.run(run)
  os.remove(file)
  return o, e, c, file
end

return M
