-- loom.sleep and loom.now, and the order in which ready tasks run.
local it = require("spec.support.task").it
local cli = require "spec.support.cli"
local loom = require "loom"

local err_of = require("spec.support.task").error_of

describe("loom.sleep", function()
  it("suspends the task for at least the given time", function()
    local t0 = loom.now()
    loom.sleep(0.05)
    assert.is_true(loom.now() - t0 >= 0.049)
  end)

  it("returns no values", function()
    assert.equal(0, select("#", loom.sleep(0.01)))
    assert.equal(0, select("#", loom.sleep(0)))
  end)

  it("accepts integers and floats", function()
    loom.sleep(0)
    loom.sleep(0.0)
    loom.sleep(1 / 1000)
  end)

  it("is the global sleep in the loom binary", function()
    assert.equal(loom.sleep, sleep)
  end)

  it("sleep(0) lets the other ready tasks run, then comes back", function()
    local log = {}
    loom.spawn(function() log[#log + 1] = "other" end)
    log[#log + 1] = "before"
    loom.sleep(0)
    log[#log + 1] = "after"
    assert.same({ "before", "other", "after" }, log)
  end)

  it("sleep(0) takes turns with other tasks doing the same", function()
    local log = {}
    local function worker(name)
      for i = 1, 3 do
        log[#log + 1] = name .. i
        loom.sleep(0)
      end
    end
    loom.gather(function() worker("a") end, function() worker("b") end)
    assert.same({ "a1", "b1", "a2", "b2", "a3", "b3" }, log)
  end)

  it("runs ready tasks in FIFO order", function()
    local log = {}
    for i = 1, 5 do
      loom.spawn(function()
        log[#log + 1] = i
        loom.sleep(0)
        log[#log + 1] = 10 + i
      end)
    end
    log[#log + 1] = "main"
    loom.sleep(0)
    log[#log + 1] = "main2"
    loom.sleep(0)
    assert.same({ "main", 1, 2, 3, 4, 5, "main2", 11, 12, 13, 14, 15 }, log)
  end)

  it("wakes sleepers in deadline order, ties in the order they slept",
    function()
      local log = {}
      local tasks = {}
      for i, d in ipairs({ 0.08, 0.02, 0.05, 0.05, 0.05, 0.03 }) do
        tasks[i] = loom.spawn(function()
          loom.sleep(d)
          log[#log + 1] = i
        end)
      end
      loom.gather(tasks)
      assert.same({ 2, 6, 3, 4, 5, 1 }, log)
    end)

  it("many concurrent sleepers all wake", function()
    local n, woke = 200, 0
    local tasks = {}
    for i = 1, n do
      tasks[i] = loom.spawn(function()
        loom.sleep((i % 7) / 100)
        woke = woke + 1
      end)
    end
    loom.gather(tasks)
    assert.equal(n, woke)
  end)

  it("a sleep cancelled before its deadline does not wake anyone later",
    function()
      local woke = {}
      local a = loom.spawn(function() loom.sleep(0.02); woke[#woke + 1] = "a" end)
      local b = loom.spawn(function() loom.sleep(0.04); woke[#woke + 1] = "b" end)
      loom.sleep(0.01)
      a:cancel()
      b:await()
      assert.same({ "b" }, woke)
      assert.equal("cancelled", a:status())
    end)

  it("an endless sleep can be cancelled", function()
    local t = loom.spawn(function() loom.sleep(math.huge) end)
    loom.sleep(0.01)
    assert.is_true(t:cancel())
    assert.is_false(pcall(t.await, t))
    assert.equal("cancelled", t:status())
  end)

  it("rejects a negative duration", function()
    -- the message names the function and points at the caller's line
    local line = debug.getinfo(1, "l").currentline + 1
    local err = err_of(function() sleep(-1) end)
    assert.equal("spec/sleep_spec.lua:" .. line
      .. ": bad argument #1 to 'sleep' (non-negative number expected)", err)
    assert.matches("bad argument #1 to 'sleep' %(non%-negative number expected%)",
      err_of(function() loom.sleep(-0.5) end))
  end)

  it("rejects NaN", function()
    assert.matches("bad argument #1 to 'sleep' %(non%-negative number expected%)",
      err_of(function() loom.sleep(0 / 0) end))
  end)

  it("rejects a non-number", function()
    assert.matches("bad argument #1 to 'sleep' %(number expected, got string%)$",
      err_of(function() loom.sleep("x") end))
    assert.matches("bad argument #1 to 'sleep' %(number expected, got no value%)$",
      err_of(function() loom.sleep() end))
    assert.matches("bad argument #1 to 'sleep' %(number expected, got table%)$",
      err_of(function() loom.sleep({}) end))
  end)

  it("says so when called where the task cannot yield", function()
    local err = err_of(function()
      string.gsub("a", "a", function() loom.sleep(0.01) end)
    end)
    assert.matches("sleep: cannot wait here: inside a string%.gsub "
      .. "replacement function %(gsub calls it from C, where a task cannot be "
      .. "suspended%); collect the matches first", err)
    err = err_of(function()
      table.sort({ 3, 2, 1 }, function(a, b) loom.sleep(0); return a < b end)
    end)
    assert.matches("sleep: cannot wait here: inside a table%.sort comparator "
      .. "%(sort calls it from C, where a task cannot be suspended%); compute "
      .. "what the comparator needs first", err)
  end)

  it("says to use loom.run when called outside a task (module mode)", function()
    if cli.SANITIZE then pending("loom.so is sanitized: lua5.4 cannot load it") end
    local out, err, code = cli.module([[
      local loom = require "loom"
      print(pcall(loom.sleep, 0.01))
      print(pcall(loom.sleep, 0))
    ]])
    assert.equal("", err)
    assert.equal(0, code)
    assert.equal(
      "false\tsleep: not inside a task (wrap the code in loom.run(fn))\n"
      .. "false\tsleep: not inside a task (wrap the code in loom.run(fn))\n", out)
  end)
end)

describe("spawned tasks", function()
  it("start on the next turn, never inside spawn", function()
    local started = false
    local t = loom.spawn(function() started = true end)
    assert.is_false(started)
    assert.equal("pending", t:status())
    for _ = 1, 1000 do local _ = {} end  -- no yield: still not started
    assert.is_false(started)
    loom.sleep(0)
    assert.is_true(started)
  end)

  it("spawned from a task start after that task yields", function()
    local log = {}
    local outer = loom.spawn(function()
      loom.spawn(function() log[#log + 1] = "inner" end)
      log[#log + 1] = "outer before yield"
      loom.sleep(0)
      log[#log + 1] = "outer after yield"
    end)
    outer:await()
    assert.same({ "outer before yield", "inner", "outer after yield" }, log)
  end)

  it("a task woken by another runs in the same turn as the waker", function()
    -- the ready queue is drained within the turn: a chain of awaits does
    -- not take one loop turn per link
    local log = {}
    local f = loom.future()
    local waiter = loom.spawn(function() f:await(); log[#log + 1] = "waiter" end)
    local next_turn = loom.spawn(function()
      -- runs before main in this turn; its sleep(0) queues it for the
      -- next turn, behind nothing: a waiter woken by main in this turn
      -- must still run first
      loom.sleep(0)
      log[#log + 1] = "next turn"
    end)
    loom.sleep(0)
    f:set(true)
    loom.gather(waiter, next_turn)
    assert.same({ "waiter", "next turn" }, log)
  end)
end)

describe("loom.now", function()
  it("is a float number of seconds that never goes back", function()
    local a = loom.now()
    assert.equal("float", math.type(a))
    loom.sleep(0.01)
    local b = loom.now()
    assert.is_true(b >= a + 0.009)
    for _ = 1, 100 do
      local c = loom.now()
      assert.is_true(c >= b)
      b = c
    end
  end)
end)
