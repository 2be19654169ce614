-- Cancellation: Task:cancel(), the Cancelled error, <close> on tasks.
local it = require("spec.support.task").it
local loom = require "loom"

local function closer(fn)
  return setmetatable({}, { __close = fn })
end

describe("cancel", function()
  it("raises Cancelled at the wait point, where pcall sees it", function()
    local seen = {}
    local t = loom.spawn(function()
      local ok, err = pcall(loom.sleep, 10)
      seen.ok, seen.err = ok, err
      return "went on"
    end)
    loom.sleep(0.01)
    assert.is_true(t:cancel())
    -- the task caught Cancelled and finished normally: allowed, as asyncio
    assert.equal("went on", t:await())
    assert.equal("done", t:status())
    assert.is_false(seen.ok)
    assert.is_true(loom.is_cancelled(seen.err))
    assert.equal(loom.Cancelled, getmetatable(seen.err))
    assert.equal("Cancelled: task cancelled", tostring(seen.err))
  end)

  it("a task that caught Cancelled can wait again afterwards", function()
    local t = loom.spawn(function()
      pcall(loom.sleep, 10)
      loom.sleep(0.01) -- the cancellation was delivered once, not again
      return "slept again"
    end)
    loom.sleep(0.01)
    t:cancel()
    assert.equal("slept again", t:await())
  end)

  it("runs the task's <close> variables, with the Cancelled error", function()
    local log = {}
    local t = loom.spawn(function()
      local a <close> = closer(function(_, e)
        log[#log + 1] = "a " .. tostring(loom.is_cancelled(e))
      end)
      local b <close> = closer(function(_, e)
        log[#log + 1] = "b " .. tostring(loom.is_cancelled(e))
      end)
      loom.sleep(10)
      log[#log + 1] = "not reached"
    end)
    loom.sleep(0.01)
    t:cancel()
    assert.is_false(pcall(t.await, t))
    assert.same({ "b true", "a true" }, log)
    assert.equal("cancelled", t:status())
  end)

  it("lets a closer sleep and await while the task unwinds", function()
    local log = {}
    local helper = loom.spawn(function() loom.sleep(0.02); return "helped" end)
    local t = loom.spawn(function()
      local c <close> = closer(function()
        log[#log + 1] = "closing"
        loom.sleep(0.02)
        log[#log + 1] = helper:await()
        log[#log + 1] = "closed"
      end)
      loom.sleep(10)
    end)
    loom.sleep(0.01)
    t:cancel()
    local ok, err = pcall(t.await, t)
    assert.is_false(ok)
    assert.is_true(loom.is_cancelled(err))
    assert.same({ "closing", "helped", "closed" }, log)
    assert.equal("cancelled", t:status())
  end)

  it("runs <close> variables of a task that fails, and they may sleep",
    function()
      local log = {}
      local t = loom.spawn(function()
        local c <close> = closer(function(_, e)
          loom.sleep(0.01)
          log[#log + 1] = e
        end)
        error("plain failure", 0)
      end)
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.equal("plain failure", err)
      assert.same({ "plain failure" }, log)
    end)

  it("awaiting a cancelled task raises Cancelled", function()
    local t = loom.spawn(function() loom.sleep(10) end)
    local waiter = loom.spawn(function() return t:await() end)
    loom.sleep(0.01)
    t:cancel()
    local ok, err = pcall(waiter.await, waiter)
    assert.is_false(ok)
    assert.is_true(loom.is_cancelled(err))
    -- the waiter itself failed with Cancelled raised by await: it was not
    -- cancelled, but Cancelled propagated, so it counts as cancelled
    assert.equal("cancelled", waiter:status())
    ok, err = pcall(loom.await, t)
    assert.is_false(ok)
    assert.is_true(loom.is_cancelled(err))
  end)

  it("cancelling a task that awaits another leaves the other running",
    function()
      local f = loom.future()
      local inner = loom.spawn(function() return f:await() end)
      local outer = loom.spawn(function() return inner:await() end)
      loom.sleep(0)
      outer:cancel()
      assert.is_false(pcall(outer.await, outer))
      assert.equal("cancelled", outer:status())
      assert.equal("running", inner:status())
      f:set("inner done")
      assert.equal("inner done", inner:await())
    end)

  it("cancelling a task that awaits a future leaves the future usable",
    function()
      local f = loom.future()
      local a = loom.spawn(function() return f:await() end)
      local b = loom.spawn(function() return f:await() end)
      loom.sleep(0)
      a:cancel()
      assert.is_false(pcall(a.await, a))
      assert.equal("pending", f:status())
      f:set("value")
      assert.equal("value", b:await())
      assert.equal("cancelled", a:status())
    end)

  it("a task woken but not yet resumed gets Cancelled when it resumes",
    function()
      local f = loom.future()
      local w = loom.spawn(function() return f:await() end)
      loom.sleep(0)
      f:set(1)           -- w is now ready to run ...
      assert.is_true(w:cancel()) -- ... but is cancelled before it does
      local ok, err = pcall(w.await, w)
      assert.is_false(ok)
      assert.is_true(loom.is_cancelled(err))
      assert.equal("cancelled", w:status())
    end)

  it("a task cancelled before it starts never runs", function()
    local ran = false
    local t = loom.spawn(function() ran = true end)
    t:cancel()
    local ok, err = pcall(t.await, t)
    assert.is_false(ok)
    assert.is_true(loom.is_cancelled(err))
    assert.is_false(ran)
  end)

  it("a task that cancels itself gets Cancelled at its next wait", function()
    local t
    local caught
    t = loom.spawn(function()
      assert.is_true(t:cancel())
      local ok, err = pcall(loom.sleep, 0.01)
      caught = not ok and loom.is_cancelled(err)
      loom.sleep(0.01)
      return "after"
    end)
    assert.equal("after", t:await())
    assert.is_true(caught)
  end)

  it("a task that cancels itself and returns without waiting is cancelled",
    function()
      local t
      t = loom.spawn(function()
        t:cancel()
        return "x"
      end)
      local ok, err = pcall(t.await, t)
      assert.equal("cancelled", t:status())
      assert.is_false(ok)
      -- awaiting a cancelled task raises Cancelled, whatever it returned
      assert.is_true(loom.is_cancelled(err), "got " .. tostring(err))
      ok, err = pcall(t.result, t)
      assert.is_false(ok)
      assert.is_true(loom.is_cancelled(err), "got " .. tostring(err))
    end)

  it("reaches a task suspended inside a coroutine.wrap generator", function()
    local closed = false
    local t = loom.spawn(function()
      local gen = coroutine.wrap(function()
        local c <close> = closer(function() closed = true end)
        loom.sleep(10)
        coroutine.yield(1)
      end)
      gen()
    end)
    loom.sleep(0.01)
    t:cancel()
    local ok, err = pcall(t.await, t)
    assert.is_false(ok)
    assert.is_true(loom.is_cancelled(err))
    assert.is_true(closed)
    assert.equal("cancelled", t:status())
  end)

  it("a cancelled task is not an unretrieved failure", function()
    -- nobody awaits t: the spec helper fails this test if loom thinks a
    -- failure went unretrieved
    local t = loom.spawn(function() loom.sleep(10) end)
    loom.sleep(0.01)
    t:cancel()
    loom.sleep(0.01)
    assert.equal("cancelled", t:status())
  end)
end)

describe("loom.Cancelled", function()
  it("is the metatable of Cancelled errors", function()
    local t = loom.spawn(function() loom.sleep(10) end)
    loom.sleep(0)
    t:cancel()
    local _, err = pcall(t.await, t)
    assert.equal("table", type(err))
    assert.equal(loom.Cancelled, getmetatable(err))
    assert.equal("Cancelled", loom.Cancelled.__name)
    assert.equal("Cancelled: task cancelled", tostring(err))
  end)

  it("loom.is_cancelled tells Cancelled errors from anything else", function()
    assert.is_true(loom.is_cancelled(setmetatable({}, loom.Cancelled)))
    assert.is_false(loom.is_cancelled({}))
    assert.is_false(loom.is_cancelled("Cancelled: task cancelled"))
    assert.is_false(loom.is_cancelled(nil))
    assert.is_false(loom.is_cancelled(setmetatable({}, {})))
    assert.is_false(loom.is_cancelled(loom.spawn(function() end)))
    loom.sleep(0)
  end)
end)

describe("Task <close>", function()
  it("cancels the task and waits until it has unwound", function()
    local log = {}
    local t
    do
      local task <close> = loom.spawn(function()
        local c <close> = closer(function()
          loom.sleep(0.02)
          log[#log + 1] = "task closer done"
        end)
        loom.sleep(10)
      end)
      t = task
      loom.sleep(0.01)
    end
    log[#log + 1] = "after block"
    assert.same({ "task closer done", "after block" }, log)
    assert.equal("cancelled", t:status())
  end)

  it("cancels a task that has not started yet", function()
    local ran = false
    local t
    do
      local task <close> = loom.spawn(function() ran = true end)
      t = task
    end
    assert.equal("cancelled", t:status())
    assert.is_false(ran)
  end)

  it("leaves a finished task as it is", function()
    local t
    do
      local task <close> = loom.spawn(function() return 7 end)
      t = task
      t:await()
    end
    assert.equal("done", t:status())
    assert.equal(7, t:result())
  end)

  it("runs when the block is left by an error", function()
    local t
    local ok, err = pcall(function()
      local task <close> = loom.spawn(function() loom.sleep(10) end)
      t = task
      loom.sleep(0)
      error("leaving", 0)
    end)
    assert.is_false(ok)
    assert.equal("leaving", err)
    assert.equal("cancelled", t:status())
  end)
end)
