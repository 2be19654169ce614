-- loom.signal: waiting for POSIX signals.
--
--   loom.signal.wait("SIGTERM")                  -- suspends until it comes
--   local sub = loom.signal.on("SIGHUP", reload) -- reload(name) as a task,
--   ...                                          -- each time; sub:close()
--
-- The C side (bindings/signal.c) has subscriptions: each counts the
-- deliveries it has not been waited for yet, so a signal that comes while
-- a listener's handler is being spawned is not lost. A task waiting in
-- wait() keeps the program alive; a listener (on) does not, as in Node.
-- A script that waits for SIGINT, or listens to it, replaces the default
-- Ctrl-C (which cancels the main task) while it does.
local core = require "loom.signal.core"
local loom = require "loom"

local spawn = loom.spawn

local signal = { subscribe = core.subscribe }

local function checksignal(fname, name, nargs)
  if core.number(name) then return end
  local msg = type(name) == "string" and ("unknown signal '%s'"):format(name)
    or ("signal name expected, got %s"):format(
      nargs == 0 and "no value" or type(name))
  error(("bad argument #1 to '%s' (%s)"):format(fname, msg), 3)
end

local function callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and rawget(mt, "__call") ~= nil
end

--- wait(name) -> name: suspends the task until the signal arrives.
function signal.wait(...)
  local name = ...
  checksignal("wait", name, select("#", ...))
  local sub <close> = core.subscribe(name)
  return sub:wait()
end

--- on(name, fn) -> Subscription: runs fn(name) as a new task each time the
--- signal arrives, until sub:close().
function signal.on(name, ...)
  checksignal("on", name)
  local fn = ...
  if not callable(fn) then
    error(("bad argument #2 to 'on' (function expected, got %s)")
      :format(select("#", ...) == 0 and "no value" or type(fn)), 2)
  end
  local sub = core.subscribe(name, false)
  spawn(function()
    while true do
      local got = sub:wait()
      if got == nil then return end
      spawn(fn, got)
    end
  end)
  return sub
end

return signal
