-- loom.wait, loom.race, loom.as_completed, loom.settle.
local T = require "spec.support.task"
local it, err_of = T.it, T.error_of
local loom = require "loom"

local function job(seconds, value, fail)
  return function()
    loom.sleep(seconds)
    if fail then error(fail, 0) end
    return value
  end
end

local function spawn(...) return loom.spawn(...) end

describe("loom.wait", function()
  it("by default waits for all and returns done and pending lists",
    function()
      local a, b = spawn(job(0.01, "a")), spawn(job(0.02, "b"))
      local done, pending = loom.wait({ a, b })
      assert.same({ a, b }, done)
      assert.same({}, pending)
    end)

  it("return_when = 'first' returns when one is done", function()
    local a, b = spawn(job(0.02, "a")), spawn(job(0.005, "b"))
    local done, pending = loom.wait({ a, b }, { return_when = "first" })
    assert.same({ b }, done)
    assert.same({ a }, pending)
    assert.equal("running", a:status())  -- nothing is cancelled
    a:cancel()
  end)

  it("return_when = 'first_error' returns at a failure, or when all are "
    .. "done", function()
      local a = spawn(job(0.01, nil, "bad"))
      local b = spawn(job(5, "b"))
      local done, pending = loom.wait({ a, b }, { return_when = "first_error" })
      assert.same({ a }, done)
      assert.same({ b }, pending)
      assert.equal("bad", err_of(a.result, a))
      b:cancel()
      local c, d = spawn(job(0, 1)), spawn(job(0.01, 2))
      done = loom.wait({ c, d }, { return_when = "first_error" })
      assert.equal(2, #done)
    end)

  it("a timeout returns what is done so far", function()
    local a, b = spawn(job(0.005, "a")), spawn(job(5, "b"))
    local t0 = loom.now()
    local done, pending = loom.wait({ a, b }, { timeout = 0.03 })
    assert.is_true(loom.now() - t0 < 1)
    assert.same({ a }, done)
    assert.same({ b }, pending)
    b:cancel()
  end)

  it("spawns functions; finished tasks and an empty list are fine",
    function()
      local done, pending = loom.wait({ job(0, 1) })
      assert.equal(1, done[1]:result())
      assert.same({}, pending)
      done, pending = loom.wait({})
      assert.same({}, done)
      assert.same({}, pending)
      done = loom.wait({ done[1] or spawn(job(0, 1)) })
      assert.equal(1, #done)
    end)

  it("a waiter cancelled while it waits leaves the tasks running", function()
    local a = spawn(job(5, "a"))
    local w = spawn(function() return loom.wait({ a }) end)
    loom.sleep(0.01)
    w:cancel()
    assert.is_true(loom.is_cancelled(err_of(w.await, w)))
    assert.equal("running", a:status())
    a:cancel()
  end)

  it("checks its arguments", function()
    assert.matches("bad argument #1 to 'wait' %(table expected, got number%)",
      err_of(function() loom.wait(1) end))
    assert.matches("bad argument #1 to 'wait' %(item 2 is a string, "
      .. "expected a task or a function%)",
      err_of(function() loom.wait({ job(0), "x" }) end))
    assert.matches("bad argument #2 to 'wait' %(return_when must be \"all\", "
      .. "\"first\" or \"first_error\"%)",
      err_of(function() loom.wait({}, { return_when = "any" }) end))
    assert.matches("bad argument #2 to 'wait' %(timeout must be a "
      .. "non%-negative number%)",
      err_of(function() loom.wait({}, { timeout = -1 }) end))
    assert.matches("bad argument #2 to 'wait' %(table expected, got string%)",
      err_of(function() loom.wait({}, "first") end))
  end)
end)

describe("loom.race", function()
  it("returns the first finisher's results and cancels the rest", function()
    local slow = spawn(job(5, "slow"))
    assert.same({ "fast", n = 1 },
      table.pack(loom.race(slow, job(0.005, "fast"))))
    loom.sleep(0)
    assert.equal("cancelled", slow:status())
    assert.same({ 1, 2 }, { loom.race({ function() return 1, 2 end,
                                        job(5, "x") }) })
  end)

  it("raises the error of a first finisher that failed", function()
    local other = spawn(job(5, "x"))
    assert.equal("lost", err_of(loom.race, job(0, nil, "lost"), other))
    loom.sleep(0)
    assert.equal("cancelled", other:status())
  end)

  it("a loser that fails is not reported as nobody's", function()
    local loser = spawn(job(0.01, nil, "loser fails"))
    assert.equal("won", loom.race(function() return "won" end, loser))
    loom.sleep(0.02)  -- (it was cancelled: make one that fails first)
    local a = spawn(job(0, nil, "first"))
    local b = spawn(job(0, nil, "second"))
    assert.equal("first", err_of(loom.race, a, b))
    loom.sleep(0)
    collectgarbage()
    collectgarbage()
    assert.equal(0, loom.report_unretrieved())
  end)

  it("a racer cancelled while it waits cancels the racing tasks", function()
    local a, b = spawn(job(5)), spawn(job(5))
    local r = spawn(function() return loom.race(a, b) end)
    loom.sleep(0.01)
    r:cancel()
    assert.is_true(loom.is_cancelled(err_of(r.await, r)))
    loom.sleep(0)
    assert.equal("cancelled", a:status())
    assert.equal("cancelled", b:status())
  end)

  it("checks its arguments", function()
    assert.matches("bad argument #1 to 'race' %(at least one task or "
      .. "function expected%)", err_of(function() loom.race() end))
    assert.matches("bad argument #2 to 'race' %(task or function expected, "
      .. "got number%)", err_of(function() loom.race(job(0), 2) end))
  end)
end)

describe("loom.as_completed", function()
  it("gives the tasks in the order they finish", function()
    local order = {}
    for t in loom.as_completed({ job(0.03, 3), job(0.01, 1), job(0.02, 2) })
    do
      order[#order + 1] = t:result()
    end
    assert.same({ 1, 2, 3 }, order)
  end)

  it("gives finished tasks first, then waits for the others", function()
    local done = spawn(job(0, "done"))
    loom.sleep(0)
    local order = {}
    for t in loom.as_completed({ spawn(job(0.01, "later")), done }) do
      order[#order + 1] = t:result()
    end
    assert.same({ "done", "later" }, order)
  end)

  it("a loop left early lets go of the tasks (they run on)", function()
    local slow = spawn(job(0.02, "slow"))
    for t in loom.as_completed({ job(0, "fast"), slow }) do
      assert.equal("fast", t:result())
      break
    end
    assert.equal("slow", slow:await())
  end)

  it("with a timeout, raises Timeout when the time runs out", function()
    local slow = spawn(job(5))
    local e = err_of(function()
      for _ in loom.as_completed({ slow }, { timeout = 0.01 }) do end
    end)
    assert.is_true(loom.is_timeout(e))
    assert.matches("%(as_completed%)$", tostring(e))
    assert.equal("running", slow:status())
    slow:cancel()
  end)

  it("a task waiting on the iterator can be cancelled", function()
    local slow = spawn(job(5))
    local t = spawn(function()
      for _ in loom.as_completed({ slow }) do end
    end)
    loom.sleep(0.01)
    t:cancel()
    assert.is_true(loom.is_cancelled(err_of(t.await, t)))
    assert.equal("running", slow:status())
    slow:cancel()
  end)

  it("an empty list ends at once", function()
    for _ in loom.as_completed({}) do error("not reached") end
  end)

  it("checks its arguments", function()
    assert.matches("bad argument #1 to 'as_completed' %(table expected, got "
      .. "no value%)", err_of(function() loom.as_completed() end))
    assert.matches("bad argument #2 to 'as_completed' %(timeout must be a "
      .. "non%-negative number%)",
      err_of(function() loom.as_completed({}, { timeout = "x" }) end))
  end)
end)

describe("loom.settle", function()
  it("gives every outcome; nothing is cancelled by a failure", function()
    local slow = spawn(job(0.02, "slow"))
    local r = loom.settle({ job(0, 1), job(0, nil, "bad"), slow })
    assert.same({ ok = true, value = 1 }, r[1])
    assert.same({ ok = false, error = "bad" }, r[2])
    assert.same({ ok = true, value = "slow" }, r[3])
    local a, b = loom.settle(job(0, "a"), job(0, nil, "b"))
    assert.same({ ok = true, value = "a" }, a)
    assert.same({ ok = false, error = "b" }, b)
    assert.equal(0, select("#", loom.settle()))
    assert.same({}, loom.settle({}))
  end)

  it("a cancelled task's outcome carries a Cancelled error", function()
    local t = spawn(job(5))
    loom.sleep(0)
    t:cancel()
    local r = loom.settle(t)
    assert.is_false(r.ok)
    assert.is_true(loom.is_cancelled(r.error))
  end)

  it("failures count as retrieved", function()
    loom.settle(job(0, nil, "x"))
    collectgarbage()
    collectgarbage()
    assert.equal(0, loom.report_unretrieved())
  end)

  it("a settler cancelled while it waits cancels its tasks", function()
    local a = spawn(job(5))
    local s = spawn(function() return loom.settle(a) end)
    loom.sleep(0.01)
    s:cancel()
    assert.is_true(loom.is_cancelled(err_of(s.await, s)))
    loom.sleep(0)
    assert.equal("cancelled", a:status())
  end)

  it("checks its arguments", function()
    assert.matches("bad argument #1 to 'settle' %(task or function "
      .. "expected, got boolean%)", err_of(function() loom.settle(true) end))
    assert.matches("bad argument #1 to 'settle' %(item 1 is a number, "
      .. "expected a task or a function%)",
      err_of(function() loom.settle({ 1 }) end))
  end)
end)
