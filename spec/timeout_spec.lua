-- loom.timeout, loom.wait_for, task:await(seconds), future:await(seconds)
-- and the Timeout error: deadlines on work, nesting, and telling a
-- deadline's cancellation from another's.
local T = require "spec.support.task"
local it, err_of = T.it, T.error_of
local cli = require "spec.support.cli"
local loom = require "loom"

local function closer(fn)
  return setmetatable({}, { __close = fn })
end

describe("loom.timeout", function()
  it("returns fn's results when it finishes in time", function()
    assert.same({ 3, "x", n = 2 }, table.pack(loom.timeout(1,
      function(a, b) loom.sleep(0.001) return a + b, "x" end, 1, 2)))
    assert.equal(0, select("#", loom.timeout(1, function() end)))
  end)

  it("fires at the next wait when the deadline passed while its coroutine "
     .. "was suspended by a yield", function()
    local co = coroutine.wrap(function()
      return pcall(loom.timeout, 0.05, function()
        coroutine.yield("paused")
        sleep(0.5)  -- already past the deadline: must not run to its end
        return "finished"
      end)
    end)
    local t0 = loom.now()
    assert.equal("paused", co())
    sleep(0.1)
    local ok, err = co()
    assert.is_false(ok)
    assert.is_true(loom.is_timeout(err), tostring(err))
    assert.is_true(loom.now() - t0 < 0.4)
  end)

  it("raises a Timeout error at the deadline", function()
    local t0 = loom.now()
    local e = err_of(loom.timeout, 0.02, function() loom.sleep(10) end)
    assert.is_true(loom.now() - t0 < 1)
    assert.is_true(loom.is_timeout(e))
    assert.is_false(loom.is_cancelled(e))
    assert.equal(loom.Timeout, getmetatable(e))
    assert.equal(0.02, e.seconds)
    assert.equal("Timeout: " .. e.message, tostring(e))
    assert.matches("^Timeout: timed out after 0%.02 s %(the work was waiting "
      .. "on sleep at [^)]*timeout_spec%.lua:%d+%)$", tostring(e))
    assert.is_false(loom.is_timeout("Timeout"))
    assert.is_false(loom.is_timeout(nil))
  end)

  it("cancels the work where it waits; its cleanup runs once", function()
    local seen, closed = nil, 0
    local e = err_of(loom.timeout, 0.01, function()
      local _ <close> = closer(function(_, err)
        closed = closed + 1
        seen = err
      end)
      loom.future():await()
    end)
    assert.is_true(loom.is_timeout(e))
    assert.equal(1, closed)
    assert.is_true(loom.is_cancelled(seen))  -- the work saw Cancelled
  end)

  it("cleanup may itself wait", function()
    local log = {}
    assert.is_true(loom.is_timeout(err_of(loom.timeout, 0.01, function()
      local _ <close> = closer(function()
        loom.sleep(0.01)
        log[#log + 1] = "cleaned"
      end)
      loom.sleep(10)
    end)))
    assert.same({ "cleaned" }, log)
  end)

  it("lets other errors through unchanged", function()
    local obj = {}
    assert.equal(obj, err_of(loom.timeout, 1, function() error(obj) end))
    assert.matches("timeout_spec%.lua:%d+: plain$",
      err_of(loom.timeout, 1, function() error("plain") end))
  end)

  it("a deadline of 0 lets work that does not wait finish", function()
    assert.equal(5, loom.timeout(0, function() return 5 end))
    assert.is_true(loom.is_timeout(err_of(loom.timeout, 0, loom.sleep, 1)))
  end)

  it("math.huge means no deadline", function()
    assert.equal("ok", loom.timeout(math.huge, function()
      loom.sleep(0.01) return "ok" end))
  end)

  it("an inner deadline that passes raises in the inner scope only",
    function()
      local r = loom.timeout(1, function()
        local e = err_of(loom.timeout, 0.01, loom.sleep, 10)
        assert.is_true(loom.is_timeout(e))
        loom.sleep(0.01)  -- the outer scope goes on
        return "outer went on"
      end)
      assert.equal("outer went on", r)
    end)

  it("an inner timeout never outlives the outer one", function()
    local t0, log = loom.now(), {}
    local e = err_of(loom.timeout, 0.02, function()
      local _ <close> = closer(function(_, err)
        log[#log + 1] = loom.is_cancelled(err)
      end)
      loom.timeout(5, loom.sleep, 5)  -- cancelled at the outer deadline
      log[#log + 1] = "not reached"
    end)
    assert.is_true(loom.is_timeout(e))
    assert.equal(0.02, e.seconds)  -- the outer one's
    assert.same({ true }, log)
    assert.is_true(loom.now() - t0 < 2)
  end)

  it("the inner scope lets the outer cancellation through, not as its "
    .. "own timeout", function()
      local inner
      local e = err_of(loom.timeout, 0.02, function()
        local ok
        ok, inner = pcall(loom.timeout, 5, loom.sleep, 5)
        assert.is_false(ok)
        error(inner, 0)  -- caught Cancelled errors are raised again
      end)
      assert.is_true(loom.is_cancelled(inner))
      assert.is_false(loom.is_timeout(inner))
      assert.is_true(loom.is_timeout(e))
    end)

  it("a cancellation caught and not raised again is not delivered twice "
    .. "(as asyncio): the code goes on", function()
      local r = loom.timeout(0.01, function()
        pcall(loom.sleep, 5)
        loom.sleep(0.01)  -- the deadline has passed: not cancelled again
        return "went on"
      end)
      assert.equal("went on", r)
    end)

  it("when both deadlines pass at once, the outer one wins", function()
    local e = err_of(loom.timeout, 0.02, function()
      local ok, inner = pcall(loom.timeout, 0.01, function()
        local stop = os.clock() + 0.05  -- block the loop past both
        while os.clock() < stop do end
        loom.sleep(5)
      end)
      assert.is_false(ok)
      assert.is_true(loom.is_cancelled(inner))
      error(inner, 0)
    end)
    assert.is_true(loom.is_timeout(e))
    assert.equal(0.02, e.seconds)
  end)

  it("a timeout tells its own cancellation from a task:cancel()", function()
    local seen
    local t = loom.spawn(function()
      local ok, e = pcall(loom.timeout, 5, loom.sleep, 10)
      seen = e
      return ok
    end)
    loom.sleep(0.01)
    t:cancel()  -- a plain cancel: not the timeout's
    assert.is_false(t:await())
    assert.is_true(loom.is_cancelled(seen))
    assert.is_false(loom.is_timeout(seen))
  end)

  it("a plain cancel wins over a deadline passing at the same time",
    function()
      local t = loom.spawn(function()
        return loom.timeout(0.01, function()
          local stop = os.clock() + 0.03
          while os.clock() < stop do end
          loom.sleep(5)
        end)
      end)
      loom.sleep(0)  -- it runs, blocks past its deadline, then waits
      t:cancel()
      local e = err_of(t.await, t)
      assert.is_true(loom.is_cancelled(e))
      assert.equal("cancelled", t:status())
    end)

  it("the deadline cancels work waiting inside a user coroutine", function()
    local e = err_of(loom.timeout, 0.01, function()
      local gen = coroutine.wrap(function() loom.sleep(5) end)
      gen()
    end)
    assert.is_true(loom.is_timeout(e))
  end)

  it("a coroutine that leaves its timeout's scope by yielding does not "
    .. "cancel the task later", function()
      local co = coroutine.wrap(function()
        loom.timeout(0.01, function() coroutine.yield("out") end)
      end)
      assert.equal("out", co())
      loom.sleep(0.05)  -- past that deadline: not cancelled here
      assert.is_true(true)
    end)

  it("checks its arguments", function()
    assert.matches("bad argument #1 to 'timeout' %(number expected, got "
      .. "string%)", err_of(function() loom.timeout("x", print) end))
    assert.matches("bad argument #1 to 'timeout' %(non%-negative number "
      .. "expected%)", err_of(function() loom.timeout(-1, print) end))
    assert.matches("bad argument #1 to 'timeout' %(non%-negative number "
      .. "expected%)", err_of(function() loom.timeout(0 / 0, print) end))
    assert.matches("bad argument #2 to 'timeout' %(function expected, got "
      .. "no value%)", err_of(function() loom.timeout(1) end))
  end)

  it("needs a task (module mode)", function()
    if cli.SANITIZE then pending("loom.so is sanitized: lua5.4 cannot load it") end
    local out = cli.module([[
      local loom = require "loom"
      print(pcall(loom.timeout, 1, print))
    ]])
    assert.equal("false\ttimeout: not inside a task (wrap the code in "
      .. "loom.run(fn))\n", out)
  end)

  it("costs little: a call that finishes in time is not slowed much",
    function()
      local f = function(x) return x end
      local t0 = loom.now()
      for i = 1, 10000 do loom.timeout(1, f, i) end
      assert.is_true(loom.now() - t0 < 1)  -- 10k scopes: far below 1 s
    end)
end)

describe("loom.wait_for and await(seconds)", function()
  it("returns the results of a task that finishes in time", function()
    local t = loom.spawn(function() loom.sleep(0.01) return 1, 2 end)
    assert.same({ 1, 2 }, { loom.wait_for(t, 1) })
    local u = loom.spawn(function() loom.sleep(0.01) return "u" end)
    assert.equal("u", u:await(1))
    assert.equal("u", u:await(0))  -- finished: at once
    assert.equal(7, loom.wait_for(function() return 7 end, 1))
  end)

  it("cancels a task that does not finish in time, then raises Timeout",
    function()
      local cleaned = false
      local t = loom.spawn(function()
        local _ <close> = closer(function() loom.sleep(0.01) cleaned = true end)
        loom.sleep(10)
      end)
      local e = err_of(loom.wait_for, t, 0.01)
      assert.is_true(loom.is_timeout(e))
      assert.matches("^Timeout: timed out after 0%.01 s %(wait_for%)$",
        tostring(e))
      assert.equal("cancelled", t:status())
      assert.is_true(cleaned)  -- wait_for waited for it to unwind
      local u = loom.spawn(loom.sleep, 10)
      assert.matches("^Timeout: timed out after 0%.01 s %(await%)$",
        tostring(err_of(u.await, u, 0.01)))
      assert.equal("cancelled", u:status())
    end)

  it("gives the outcome of a task that did not let itself be cancelled",
    function()
      local t = loom.spawn(function()
        pcall(loom.sleep, 10)
        return "finished anyway"
      end)
      assert.equal("finished anyway", t:await(0.01))
      local f = loom.spawn(function()
        pcall(loom.sleep, 10)
        error("failed while unwinding", 0)
      end)
      assert.equal("failed while unwinding", err_of(f.await, f, 0.01))
    end)

  it("raises the error of a task that fails in time", function()
    local t = loom.spawn(function() error("boom", 0) end)
    assert.equal("boom", err_of(loom.wait_for, t, 1))
  end)

  it("works on futures, which are not cancelled", function()
    local f = loom.future()
    assert.is_true(loom.is_timeout(err_of(f.await, f, 0.01)))
    assert.equal("pending", f:status())
    loom.spawn(function() loom.sleep(0.01) f:set("v") end)
    assert.equal("v", loom.wait_for(f, 1))
    local g = loom.future()
    loom.spawn(function() g:fail("gone") end)
    assert.equal("gone", err_of(g.await, g, 1))
  end)

  it("with no seconds (nil), is a plain await", function()
    local t = loom.spawn(function() loom.sleep(0.01) return "plain" end)
    assert.equal("plain", loom.wait_for(t))
    assert.equal("plain", t:await(nil))
  end)

  it("a waiter cancelled while it waits leaves the task running", function()
    local t = loom.spawn(loom.sleep, 10)
    local w = loom.spawn(function() return t:await(5) end)
    loom.sleep(0.01)
    w:cancel()
    assert.is_true(loom.is_cancelled(err_of(w.await, w)))
    assert.equal("running", t:status())
    t:cancel()
  end)

  it("checks its arguments", function()
    local t = loom.spawn(function() end)
    assert.matches("bad argument #1 to 'wait_for' %(task, function or future "
      .. "expected, got number%)", err_of(function() loom.wait_for(1, 1) end))
    assert.matches("bad argument #2 to 'wait_for' %(non%-negative number "
      .. "expected%)", err_of(function() loom.wait_for(t, -1) end))
    assert.matches("bad argument #1 to 'await' %(number expected, got "
      .. "string%)", err_of(function() t:await("x") end))
    local self_wait = loom.spawn(function()
      local own
      own = loom.spawn(function() return err_of(loom.wait_for, own, 1) end)
      return own:await()
    end)
    assert.matches("wait_for: a task cannot await itself",
      self_wait:await())
  end)
end)

describe("a Timeout reported at the command line", function()
  it("prints as its message", function()
    local _, err, code = cli.script_as_loom([[
loom.timeout(0.01, function() sleep(5) end)
]])
    assert.equal("loom: Timeout: timed out after 0.01 s (the work was "
      .. "waiting on sleep at FILE:1)\n", err)
    assert.equal(1, code)
  end)

  it("an error raised inside a timeout keeps its own traceback", function()
    local _, err, code = cli.script_as_loom([[
local function inner() error("deep") end
loom.timeout(1, function() inner() end)
]])
    assert.matches("^loom: FILE:1: deep\nstack traceback:\n\t%[C%]: in "
      .. "function 'error'\n\tFILE:1: in ", err)
    assert.equal(1, code)
  end)
end)
