-- spec/support/pty.lua: runs the loom binary (or another program) on a
-- pseudo-terminal and plays a scenario against it, through Python 3's pty
-- module (spec/support/pty_session.py, which also renders the screen).
--
--   local pty = require "spec.support.pty"
--   local r = pty.run({ "1 + 1\r", { expect = "2\r\n" }, "\4",
--     { wait = true } }, { env = { HOME = dir } })
--   assert.same({ true, 0 }, { r.ok, r.status }, r.error)
--
-- A step is a string (typed as is: "\r" is Enter, "\3" Ctrl-C, "\4"
-- Ctrl-D, "\t" Tab) or a table: { enter = text } types text and Enter
-- and waits for its echo, { expect = text } waits until the output
-- since the last match contains text, { screen = text } until the
-- rendered screen does, { line = text } until the cursor's line is text,
-- { sleep = s }, { wait = true } until the program exits; each may have a
-- timeout (seconds, default 10). The result: ok, error (with the output,
-- for the failure message), step, status (exit code, or -signal),
-- output, screen, times (seconds from the start when each step ended).
-- Every run is bounded: opts.timeout (default 30 s) for the whole.
local json = require "loom.json"
local cli = require "spec.support.cli"

local M = {}

local HELPER = "spec/support/pty_session.py"

-- Environment that keeps the caller's own from leaking in: no LUA_INIT,
-- and a HOME (for history) that the spec chose or a throwaway one.
local function environment(opts)
  local env = { LUA_INIT = json.null, LUA_INIT_5_4 = json.null,
    XDG_STATE_HOME = json.null, HOME = "/nonexistent" }
  for k, v in pairs(opts.env or {}) do
    env[k] = v == false and json.null or v
  end
  return env
end

function M.run(steps, opts)
  opts = opts or {}
  local list = {}
  for _, s in ipairs(steps) do
    if type(s) == "string" then
      list[#list + 1] = { send = s }
    elseif s.enter then  -- typed, then its echo
      list[#list + 1] = { send = s.enter .. "\r" }
      list[#list + 1] = { expect = s.enter .. "\r\n", timeout = s.timeout }
    else
      list[#list + 1] = s
    end
  end
  local argv = { opts.prog or cli.LOOM }
  for _, a in ipairs(opts.args or {}) do argv[#argv + 1] = a end
  local scenario = cli.tmpfile(json.encode({
    argv = argv, env = environment(opts), timeout = opts.timeout or 30,
    rows = opts.rows or 24, cols = opts.cols or 200, steps = list,
  }), ".json")
  local p = assert(io.popen(("timeout -k 2 %d python3 %s %s"):format(
    (opts.timeout or 30) + 10, HELPER, cli.quote(scenario))))
  local text = p:read("a")
  p:close()
  os.remove(scenario)
  local ok, r = pcall(json.decode, text)
  if not ok then
    return { ok = false, error = "pty helper: " .. tostring(text),
      output = "", screen = "", times = {} }
  end
  if not r.ok then
    r.error = ("step %d: %s\n--- output:\n%s\n--- screen:\n%s"):format(
      r.step, r.error, r.output, r.screen)
  end
  return r
end

-- The screen's lines, as a table.
function M.lines(r)
  local t = {}
  for l in (r.screen .. "\n"):gmatch("(.-)\n") do t[#t + 1] = l end
  return t
end

return M
