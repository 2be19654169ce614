-- tasks.lua: a tour of loom's tasks in about a second. Simulated downloads
-- run together and are gathered; a slow one is cancelled and its cleanup
-- (a <close> variable, a pcall) runs; a timeout is built from spawn, sleep
-- and cancel.
--   run: build/loom examples/tasks.lua

local start = loom.now()

-- print with the time since the start, to show what overlaps.
local function say(fmt, ...)
  print(string.format("[%.1fs] " .. fmt, loom.now() - start, ...))
end

-- A stand-in for a network call: takes 'seconds', returns a size.
local function fetch(name, seconds)
  say("fetch %s: started", name)
  sleep(seconds)
  say("fetch %s: done", name)
  return #name * 1000
end

-- 1. gather: three fetches at once; the wait is the longest, not the sum.
say("1. gather")
local sizes = gather({
  function() return fetch("index.html", 0.3) end,
  function() return fetch("style.css", 0.1) end,
  function() return fetch("logo.png", 0.2) end,
})
say("gathered %d, %d and %d bytes", sizes[1], sizes[2], sizes[3])

-- A resource that says when it is released, as a file or socket would.
local function open(name)
  say("open %s", name)
  return setmetatable({}, {
    __close = function() say("close %s", name) end,
  })
end

-- 2. cancel: the task sees Cancelled raised where it waits; <close>
-- variables and pcall let it clean up on the way out.
say("2. cancel")
local slow = spawn(function()
  local conn <close> = open("slow connection")
  local ok, err = pcall(sleep, 10)
  if not ok then
    say("slow task interrupted: %s", tostring(err))
    error(err)  -- raise it again, so the task ends as cancelled
  end
end)
sleep(0.2)
say("cancel -> %s", tostring(slow:cancel()))
local ok, err = pcall(slow.await, slow)
say("await -> %s, %s; status %s", tostring(ok), tostring(err), slow:status())

-- 3. a timeout made of tasks: one runs fn, another sleeps then cancels it.
-- Both are <close>: whatever happens, neither outlives the call.
local function with_timeout(seconds, fn, ...)
  local task <close> = spawn(fn, ...)
  local timer <close> = spawn(function()
    sleep(seconds)
    task:cancel()
  end)
  local done, result = pcall(task.await, task)
  if done then return result end
  if task:status() == "cancelled" then return nil, "timed out" end
  error(result, 0)  -- a real failure: pass it on
end

say("3. timeout")
say("fast: %s", tostring(with_timeout(0.3, fetch, "api/fast", 0.1)))
local size, why = with_timeout(0.3, fetch, "api/stuck", 5)
say("stuck: %s (%s)", tostring(size), why)
