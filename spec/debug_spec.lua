-- Debuggability: the blocking detector (loom --debug), tasks listed at
-- exit and in deadlocks, "cannot wait here" errors that name the
-- construct, failed futures reported, loom.debug.
local T = require "spec.support.task"
local it, err_of = T.it, T.error_of
local cli = require "spec.support.cli"
local loom = require "loom"

-- Runs src as a script named FILE under "loom", with the given options and
-- environment; returns stdout, stderr, exit code.
local function run(src, args, env)
  local file = cli.tmpfile(src, ".lua")
  local argv = {}
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  argv[#argv + 1] = file
  local out, err, code = cli.run { args = argv, env = env, argv0 = "loom" }
  os.remove(file)
  return out, (err:gsub(file:gsub("%p", "%%%0"), "FILE")), code
end

local BUSY = [[
local stop = os.clock() + 0.3
while os.clock() < stop do end
print("busy done")
]]

describe("loom --debug", function()
  it("warns, with the traceback of the blocking line, while a busy loop "
    .. "blocks", function()
      local out, err, code = run(BUSY, { "--debug" },
        { LOOM_DEBUG_BLOCK_MS = "50" })
      assert.equal("busy done\n", out)
      assert.equal(0, code)
      assert.matches("^loom: warning: a task has blocked the loop for %d+ ms "
        .. "%(no other task, timer or I/O can run meanwhile%); it is "
        .. "running:\nstack traceback:\n", err)
      assert.matches("\n\tFILE:2: in main chunk\n", err)
      assert.matches("\nloom: warning: the task blocked the loop for "
        .. "0%.%d%d%d s in all\n$", err)
    end)

  it("finds a blocking C call (os.execute) at once, with its Lua line",
    function()
      local out, err = run([[
sleep(0)
os.execute("sleep 0.4")
print("done")
]], { "--debug" }, { LOOM_DEBUG_BLOCK_MS = "50" })
      assert.equal("done\n", out)
      assert.matches("^loom: warning: a task has blocked the loop for %d+ ms "
        .. "%(no other task, timer or I/O can run meanwhile%) inside a C "
        .. "function that waits %(a blocking call, such as os%.execute, "
        .. "io%.read or a C module's%); it is running:\nstack traceback:\n"
        .. "\t%[C%]: in field 'execute'\n\tFILE:2: in main chunk\n", err)
    end)

  it("finds io.read on a pipe that waits", function()
    local out, err = run([[
local p = io.popen("sleep 0.3; echo line")
print(p:read("l"))
p:close()
]], { "--debug" }, { LOOM_DEBUG_BLOCK_MS = "50" })
    assert.equal("line\n", out)
    assert.matches("inside a C function that waits", err)
    assert.matches("\tFILE:2: in main chunk\n", err)
  end)

  it("names the task that blocks (its spawn site)", function()
    local _, err = run([[
local t = spawn(function()
  local stop = os.clock() + 0.3
  while os.clock() < stop do end
end)
t:await()
]], { "--debug" }, { LOOM_DEBUG_BLOCK_MS = "50" })
    assert.matches("\tFILE:3: in function <FILE:1>\n%(the task %(spawned "
      .. "at FILE:1%)", err)
  end)

  it("is turned on by LOOM_DEBUG=1 too, not by LOOM_DEBUG=0 or under -E",
    function()
      local _, err = run(BUSY, {}, { LOOM_DEBUG = "1",
                                    LOOM_DEBUG_BLOCK_MS = "50" })
      assert.matches("warning: a task has blocked the loop", err)
      _, err = run(BUSY, {}, { LOOM_DEBUG = "0", LOOM_DEBUG_BLOCK_MS = "50" })
      assert.equal("", err)
      _, err = run(BUSY, { "-E" }, { LOOM_DEBUG = "1",
                                    LOOM_DEBUG_BLOCK_MS = "50" })
      assert.equal("", err)
    end)

  it("says nothing when off, and nothing for tasks that do not block",
    function()
      local _, err, code = run(BUSY, {}, { LOOM_DEBUG_BLOCK_MS = "50" })
      assert.equal("", err)
      assert.equal(0, code)
      _, err = run([[for i = 1, 20 do sleep(0.005) end]], { "--debug" },
        { LOOM_DEBUG_BLOCK_MS = "200" })
      assert.equal("", err)
    end)

  it("has a default threshold, and LOOM_DEBUG_BLOCK_MS sets it", function()
    local _, err = run(BUSY, { "--debug" })  -- 300 ms: over the default
    assert.matches("warning: a task has blocked the loop", err)
    _, err = run(BUSY, { "--debug" }, { LOOM_DEBUG_BLOCK_MS = "5000" })
    assert.equal("", err)
  end)

  it("lists the tasks still unfinished at exit", function()
    local _, err, code = run([[
local f = loom.future()
spawn(function() f:await() end)
local q = loom.Queue()
spawn(function() q:get() end)
]], { "--debug" })
    assert.equal(0, code)
    assert.matches("^loom: 2 tasks never finished:\n", err)
    assert.matches("\n  task %(spawned at FILE:2%) waits on a future at "
      .. "FILE:2", err)
    assert.matches("\n  task %(spawned at FILE:4%) waits on a queue %(get%) "
      .. "at FILE:4", err)
    local _, quiet = run([[spawn(function() loom.future():await() end)]])
    assert.equal("", quiet)  -- without --debug: Node's rule, silently
  end)

  it("is in the help and the usage", function()
    local out = cli.loom({ "-h" })
    assert.matches("%-%-debug   warn when a task blocks the loop", out)
    local _, err = cli.loom({ "--debu" })
    assert.matches("%-%-debug   warn about blocked loops", err)
  end)
end)

describe("deadlocks", function()
  it("list every waiting task, what it waits on and where", function()
    local _, err, code = run([[
local lock = loom.Lock()
local q = loom.Queue()
local held = lock:acquire()
spawn(function() local _ <close> = lock:acquire() end)
spawn(function() q:get() end)
loom.Event():wait()
]])
    assert.equal(1, code)
    assert.matches("^loom: deadlock: the main task waits on an event at "
      .. "FILE:6, and nothing left to run can wake it\n", err)
    assert.matches("\n  also waiting: task %(spawned at FILE:4%) waits on a "
      .. "lock at FILE:4", err)
    assert.matches("\n  also waiting: task %(spawned at FILE:5%) waits on a "
      .. "queue %(get%) at FILE:5", err)
  end)

  it("say which module a require waits for", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. cli.quote(dir))
    local f = assert(io.open(dir .. "/stuck.lua", "w"))
    f:write("loom.future():await()\n")
    f:close()
    local _, err = run(([[
package.path = %q
spawn(function() require "stuck" end)
sleep(0)
require "stuck"
]]):format(dir .. "/?.lua"))
    os.remove(dir .. "/stuck.lua")
    os.remove(dir)
    assert.matches("waits on a module that another task is loading "
      .. "%(require \"stuck\"%)", err)
  end)
end)

describe("waiting where a task cannot be suspended", function()
  it("names table.sort, string.gsub, __tostring, load, and says how to "
    .. "restructure", function()
      assert.matches("sleep: cannot wait here: inside a table%.sort "
        .. "comparator %(sort calls it from C, where a task cannot be "
        .. "suspended%); compute what the comparator needs first",
        err_of(table.sort, { 2, 1 }, function(a, b) loom.sleep(0) return a < b end))
      assert.matches("inside a string%.gsub replacement function",
        err_of(string.gsub, "a", "a", function() loom.sleep(0) end))
      local obj = setmetatable({}, { __tostring = function()
        loom.sleep(0) return "x" end })
      assert.matches("inside a __tostring metamethod called by tostring",
        err_of(tostring, obj))
      assert.matches("inside a reader function called by load",
        select(2, load(function() loom.sleep(0) end)))
    end)

  it("names another C function that called the code", function()
    local t = setmetatable({}, { __newindex = function() loom.sleep(0) end })
    assert.matches("sleep: cannot wait here: inside a function called by "
      .. "'insert', a C function that cannot be suspended %(a callback or a "
      .. "metamethod it calls, such as __index, __eq or __tostring, cannot "
      .. "wait%); wait before or after that call, or spawn a task",
      err_of(function() table.insert(t, 1) end))
  end)

  it("names a __gc finalizer and a debug hook", function()
    local out = cli.loom({ "-e", [[
setmetatable({}, { __gc = function()
  print(select(2, pcall(sleep, 0)))
end })
collectgarbage()
collectgarbage()
debug.sethook(function()
  debug.sethook()
  print(select(2, pcall(sleep, 0)))
end, "l")
local x = 1
]] })
    assert.matches("^sleep: cannot wait here: inside a __gc finalizer "
      .. "%(finalizers run where nothing can be suspended%); spawn a task "
      .. "from the finalizer to do the waiting: loom%.spawn%(function%(%) "
      .. "%.%.%. end%)\n", out)
    assert.matches("\nsleep: cannot wait here: inside a debug hook %(hooks "
      .. "run where nothing can be suspended%); spawn a task from the hook "
      .. "for the waiting part\n$", out)
  end)

  it("waiting in a metamethod that Lua code calls is fine", function()
    local t = setmetatable({}, { __index = function(_, k)
      loom.sleep(0.001) return k end })
    assert.equal("key", t.key)
  end)
end)

describe("a future that fails and is never awaited", function()
  it("is reported as a task is, with where it was failed", function()
    local _, err, code = run([[
local f = loom.future()
f:fail("nobody looks")
f = nil
collectgarbage()
collectgarbage()
]])
    assert.equal("loom: error in a future nobody awaited: nobody looks\n"
      .. "stack traceback:\n\tFILE:2: in main chunk\n", err)
    assert.equal(1, code)
  end)

  it("is not reported once awaited, or when failed with Cancelled", function()
    local _, err, code = run([[
local f = loom.future()
f:fail("seen")
print(pcall(f.await, f))
local g = loom.future()
g:fail(setmetatable({}, loom.Cancelled))
]])
    assert.equal("", err)
    assert.equal(0, code)
  end)
end)

describe("loom.debug", function()
  it("is off by default; enable, enabled, disable", function()
    assert.is_false(loom.debug.enabled())
    loom.debug.enable(1000)
    assert.is_true(loom.debug.enabled())
    loom.debug.enable()  -- again: restarts it
    loom.debug.disable()
    loom.debug.disable()
    assert.is_false(loom.debug.enabled())
  end)

  it("tasks() lists the unfinished tasks, pending() describes them",
    function()
      local f = loom.future()
      local t = loom.spawn(function() f:await() end)
      loom.sleep(0)
      local found = false
      for _, x in ipairs(loom.debug.tasks()) do
        if x == t then found = true end
      end
      assert.is_true(found)
      assert.matches("task %(spawned at [^)]*debug_spec%.lua:%d+%) waits on a "
        .. "future at [^\n]*debug_spec%.lua:%d+", loom.debug.pending())
      f:set()
      t:await()
    end)

  it("checks its arguments", function()
    assert.matches("bad argument #1 to 'enable' %(milliseconds expected, "
      .. "more than 0%)", err_of(function() loom.debug.enable(-5) end))
    assert.matches("bad argument #1 to 'enable' %(number expected, got "
      .. "string%)", err_of(function() loom.debug.enable("x") end))
  end)
end)
