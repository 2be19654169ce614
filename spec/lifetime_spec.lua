-- Process lifetime in the loom binary: it runs until no work remains,
-- reports failures nobody retrieved (exit 1), and detects deadlocks.
local it = require("spec.support.task").it
local cli = require "spec.support.cli"
local loom = require "loom"

local run = cli.script_as_loom  -- stderr with the script's name as FILE

describe("the loom process", function()
  it("waits for spawned tasks nobody awaits", function()
    local out, err, code = run([[
      spawn(function() sleep(0.05) print("late task") end)
      print("main done")
    ]])
    assert.same({ "main done\nlate task\n", "", 0 }, { out, err, code })
  end)

  it("waits for tasks spawned by tasks, down the chain", function()
    local out, err, code = run([[
      spawn(function()
        sleep(0.01)
        spawn(function()
          sleep(0.01)
          spawn(function() sleep(0.01) print("third") end)
          print("second")
        end)
        print("first")
      end)
    ]])
    assert.same({ "first\nsecond\nthird\n", "", 0 }, { out, err, code })
  end)

  it("does not wait for a task blocked on a future nobody can set", function()
    -- only the main task waiting forever is a deadlock; a forgotten task
    -- waiting forever is not work
    local out, err, code = run([[
      local f = loom.future()
      spawn(function() f:await() print("never") end)
      sleep(0.01)
      print("main done")
    ]])
    assert.same({ "main done\n", "", 0 }, { out, err, code })
  end)

  it("reports a failure nobody retrieved, with traceback and spawn site, and exits 1",
    function()
      local out, err, code = run([[
local function work()
  sleep(0.01)
  error("bad thing")
end
spawn(work)
print("main done")
]])
      assert.equal("main done\n", out)
      assert.equal(1, code)
      assert.equal("loom: error in a task nobody awaited: FILE:3: bad thing\n"
        .. "stack traceback:\n\t[C]: in function 'error'\n"
        .. "\tFILE:3: in function <FILE:1>\n(task spawned at FILE:5)\n", err)
    end)

  it("reports each unretrieved failure once, in the order they failed",
    function()
      local _, err, code = run([[
spawn(function() sleep(0.03) error("second", 0) end)
spawn(function() sleep(0.01) error("first", 0) end)
local t = spawn(function() error("retrieved", 0) end)
sleep(0.05)
assert(not pcall(t.await, t))
]])
      assert.equal(1, code)
      local msgs = {}
      for m in err:gmatch("error in a task nobody awaited: ([^\n]*)") do
        msgs[#msgs + 1] = m
      end
      assert.same({ "first", "second" }, msgs)
    end)

  it("reports a failed task when it is collected, once", function()
    local out, err, code = run([[
local t = spawn(function() error("collected", 0) end)
sleep(0.01)
t = nil
collectgarbage()
collectgarbage()
io.stderr:write("-- after gc --\n")
sleep(0.01)
print("end")
]])
    assert.equal("end\n", out)
    assert.equal(1, code)
    assert.matches("^loom: error in a task nobody awaited: collected\n.*\n%-%- after gc %-%-\n$", err)
    local _, n = err:gsub("nobody awaited", "")
    assert.equal(1, n)
  end)

  it("a failure retrieved by await, result or gather is not reported", function()
    local out, err, code = run([[
local a = spawn(function() error("a", 0) end)
local b = spawn(function() error("b", 0) end)
local c = spawn(function() error("c", 0) end)
sleep(0.01)
print(pcall(a.await, a))
print(pcall(b.result, b))
print(pcall(gather, c))
]])
    assert.same({ "false\ta\nfalse\tb\nfalse\tc\n", "", 0 }, { out, err, code })
  end)

  it("a cancelled task is not a failure", function()
    local out, err, code = run([[
local t = spawn(function() sleep(10) end)
local u = spawn(function() return t:await() end) -- gets Cancelled, nobody awaits
local never = spawn(function() end)
never:cancel()
sleep(0.01)
t:cancel()
sleep(0.01)
print(t:status(), u:status(), never:status())
]])
    assert.same({ "cancelled\tcancelled\tcancelled\n", "", 0 }, { out, err, code })
  end)

  it("a deadlock of the main task is reported, exit 1", function()
    local out, err, code = run([[
print("before")
loom.future():await()
print("not reached")
]])
    assert.equal("before\n", out)
    assert.equal("loom: deadlock: the main task waits on a future at FILE:2, "
      .. "and nothing left to run can wake it\n", err)
    assert.equal(1, code)
  end)

  it("the deadlock message names what the main task waits on", function()
    local _, err, code = run([[
local f = loom.future()
spawn(function() f:await() end):await()
]])
    assert.equal("loom: deadlock: the main task waits on a task (spawned at "
      .. "FILE:2) at FILE:2, and nothing left to run can wake it\n"
      .. "  also waiting: task (spawned at FILE:2) waits on a future at "
      .. "FILE:2\n", err)
    assert.equal(1, code)
    _, err, code = run([[
local f = loom.future()
gather(function() f:await() end)
]])
    assert.equal("loom: deadlock: the main task waits on gather at FILE:2, "
      .. "and nothing left to run can wake it\n  also waiting: task (spawned "
      .. "at FILE:2) waits on a future at FILE:2\n", err)
    assert.equal(1, code)
  end)

  it("a deadlock is found only once nothing else can run", function()
    local out, err, code = run([[
local f = loom.future()
spawn(function() sleep(0.05) print("sleeper done") end)
f:await()
]])
    assert.equal("sleeper done\n", out)
    assert.matches("^loom: deadlock: ", err)
    assert.equal(1, code)
  end)

  it("when the main task fails, the process exits 1 without waiting for the rest",
    function()
      local t0 = loom.now()
      local out, err, code = run([[
spawn(function() sleep(10) print("not reached") end)
sleep(0.01)
error("main failed", 0)
]])
      assert.is_true(loom.now() - t0 < 5)
      assert.equal("", out)
      assert.equal(1, code)
      assert.matches("^loom: main failed\nstack traceback:\n", err)
    end)

  it("a main failure and an unretrieved failure are both reported", function()
    local _, err, code = run([[
spawn(function() error("lost", 0) end)
sleep(0.01)
error("main failed", 0)
]])
    assert.equal(1, code)
    assert.matches("^loom: main failed\n", err)
    assert.matches("\nloom: error in a task nobody awaited: lost\n", err)
  end)

  it("os.exit(0) exits 0 even with an unretrieved failure, which is still reported",
    function()
      local _, err, code = run([[
spawn(function() error("lost", 0) end)
sleep(0.01)
os.exit(0)
]])
      assert.equal(0, code)
      assert.matches("^loom: error in a task nobody awaited: lost\n", err)
    end)
end)
