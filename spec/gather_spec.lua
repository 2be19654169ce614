-- loom.gather: waiting for many tasks at once.
local it = require("spec.support.task").it
local loom = require "loom"

local err_of = require("spec.support.task").error_of

describe("loom.gather", function()
  it("is the global gather", function()
    assert.equal(loom.gather, gather)
  end)

  it("returns each one's first result, in argument order", function()
    local a = loom.spawn(function() loom.sleep(0.03); return "a", "extra" end)
    local b = loom.spawn(function() loom.sleep(0.01); return "b" end)
    local c = loom.spawn(function() return "c" end)
    local r = table.pack(loom.gather(a, b, c))
    assert.equal(3, r.n)
    assert.same({ "a", "b", "c" }, { r[1], r[2], r[3] })
  end)

  it("gives nil for a task that returned nothing, keeping the count", function()
    local r = table.pack(loom.gather(
      function() end,
      function() return nil end,
      function() return 3 end))
    assert.equal(3, r.n)
    assert.same({ nil, nil, 3 }, { r[1], r[2], r[3] })
  end)

  it("spawns functions and accepts tasks, mixed", function()
    local t = loom.spawn(function() loom.sleep(0.01); return 1 end)
    assert.same({ 1, 2, 3 }, { loom.gather(
      t,
      function() return 2 end,
      loom.spawn(function() return 3 end)) })
  end)

  it("with one table returns a table of results, in order", function()
    local r = loom.gather({
      function() loom.sleep(0.02); return "a" end,
      loom.spawn(function() return "b" end),
      function() end,
      function() loom.sleep(0.01); return "d", "ignored" end,
    })
    assert.equal("table", type(r))
    assert.equal("a", r[1])
    assert.equal("b", r[2])
    assert.is_nil(r[3])
    assert.equal("d", r[4])
  end)

  it("with no arguments returns nothing; with an empty table, an empty table",
    function()
      assert.equal(0, select("#", loom.gather()))
      local r = loom.gather({})
      assert.same({}, r)
    end)

  it("accepts tasks that are already finished", function()
    local a = loom.spawn(function() return 5 end)
    a:await()
    assert.same({ 5, 5 }, { loom.gather(a, a) })
  end)

  it("runs the children concurrently: three 1 s sleeps take ~1 s", function()
    local t0 = loom.now()
    local r = { loom.gather(
      function() loom.sleep(1); return 1 end,
      function() loom.sleep(1); return 2 end,
      function() loom.sleep(1); return 3 end) }
    local elapsed = loom.now() - t0
    assert.same({ 1, 2, 3 }, r)
    assert.is_true(elapsed >= 0.99, "took " .. elapsed)
    assert.is_true(elapsed < 1.5, "took " .. elapsed)
  end)

  it("re-raises the first failure unchanged and cancels the rest", function()
    local e = { "first" }
    local log = {}
    local slow = loom.spawn(function()
      local ok, err = pcall(loom.sleep, 10)
      log[#log + 1] = loom.is_cancelled(err) and "slow cancelled" or "slow woke"
      error(err, 0)
    end)
    local failing = loom.spawn(function() loom.sleep(0.03); error(e) end)
    local later = loom.spawn(function() loom.sleep(1); error("second") end)
    local fine = loom.spawn(function() loom.sleep(0.01); return "fine" end)
    local ok, err = pcall(loom.gather, slow, failing, later, fine)
    assert.is_false(ok)
    assert.is_true(rawequal(e, err))
    assert.equal("failed", failing:status())
    assert.equal("done", fine:status())
    -- the others are cancelled (delivered when they next run)
    loom.sleep(0)
    assert.equal("cancelled", slow:status())
    assert.equal("cancelled", later:status())
    assert.same({ "slow cancelled" }, log)
  end)

  it("with a table, a failure also cancels the rest and re-raises", function()
    local other
    local ok, err = pcall(loom.gather, {
      function() loom.sleep(0.01); error("table form failure", 0) end,
      function() other = "started"; loom.sleep(10); other = "woke" end,
    })
    assert.is_false(ok)
    assert.equal("table form failure", err)
    loom.sleep(0)
    assert.equal("started", other)
  end)

  it("an already failed task fails the gather at once", function()
    local f = loom.spawn(function() error("early", 0) end)
    loom.sleep(0)
    local ran = false
    local ok, err = pcall(loom.gather, function() ran = true end, f)
    assert.is_false(ok)
    assert.equal("early", err)
    loom.sleep(0)
    assert.is_false(ran) -- spawned, then cancelled before it started
  end)

  it("a cancelled child cancels the gather, and the rest", function()
    local x = loom.spawn(function() loom.sleep(10) end)
    local y = loom.spawn(function() loom.sleep(10) end)
    local g = loom.spawn(function() return loom.gather(x, y) end)
    loom.sleep(0.01)
    x:cancel()
    local ok, err = pcall(g.await, g)
    assert.is_false(ok)
    assert.is_true(loom.is_cancelled(err))
    loom.sleep(0)
    assert.equal("cancelled", y:status())
  end)

  it("cancelling the gathering task cancels the children", function()
    local children = {}
    local g = loom.spawn(function()
      children[1] = loom.spawn(function() loom.sleep(10) end)
      children[2] = loom.spawn(function() loom.sleep(10) end)
      return loom.gather(children[1], children[2], function() loom.sleep(10) end)
    end)
    loom.sleep(0.01)
    assert.is_true(g:cancel())
    local ok, err = pcall(g.await, g)
    assert.is_false(ok)
    assert.is_true(loom.is_cancelled(err))
    assert.equal("cancelled", g:status())
    loom.sleep(0)
    assert.equal("cancelled", children[1]:status())
    assert.equal("cancelled", children[2]:status())
  end)

  it("a gatherer cancelled after a failure woke it still cancels the rest",
    function()
      -- two failures in one turn, c's first: the outer gather wakes on c
      -- and cancels the inner gather, which a's failure had woken but which
      -- had not run yet
      local c = loom.spawn(function() loom.sleep(0.05); error("c fails", 0) end)
      local b = loom.spawn(function() loom.sleep(0.3); return "b" end)
      local a = loom.spawn(function() loom.sleep(0.05); error("a fails", 0) end)
      local inner = loom.spawn(function() return loom.gather(a, b) end)
      assert.equal("c fails", err_of(loom.gather, c, inner))
      loom.sleep(0)
      assert.equal("cancelled", inner:status())
      assert.equal("cancelled", b:status())
      collectgarbage()
      collectgarbage()
      loom.sleep(0.01)
      assert.equal("a fails", err_of(a.result, a))  -- retrieved here
    end)

  it("the failure of a gathered child counts as retrieved", function()
    -- no unretrieved report: the spec helper would fail this test
    local a = loom.spawn(function() error("gathered", 0) end)
    assert.equal("gathered", err_of(loom.gather, a))
  end)

  it("a task cannot gather itself", function()
    local t
    t = loom.spawn(function()
      return pcall(function() return loom.gather(t) end)
    end)
    local ok, err = t:await()
    assert.is_false(ok)
    assert.matches("gather: a task cannot await itself$", err)
  end)

  it("rejects what is neither a task nor a function", function()
    assert.matches("bad argument #1 to 'gather' %(task or function expected, got number%)$",
      err_of(function() gather(1) end))
    assert.matches("bad argument #2 to 'gather' %(task or function expected, got string%)$",
      err_of(function() gather(function() end, "x") end))
    assert.matches("bad argument #1 to 'gather' %(task or function expected, got nil%)$",
      err_of(function() gather(nil, function() end) end))
    assert.matches("bad argument #1 to 'gather' %(item 2 is a number, expected a task or a function%)$",
      err_of(function() gather({ function() end, 3 }) end))
    assert.matches("bad argument #1 to 'gather' %(item 1 is a table, expected a task or a function%)$",
      err_of(function() gather({ {} }) end))
  end)

  it("a bad item leaves nothing spawned", function()
    local ran = false
    assert.is_false(pcall(loom.gather, function() ran = true end, 42))
    loom.sleep(0)
    assert.is_false(ran)
  end)

  -- as Promise.all and asyncio.gather: the first failure is raised, and
  -- every child's failure counts as seen (this spec fails on any failure
  -- reported as nobody's)
  it("handles every child's failure, not only the first", function()
    local ok, err = pcall(loom.gather,
      function() error("first", 0) end,
      function() error("second", 0) end,
      function() loom.sleep(0) error("later", 0) end)
    assert.same({ false, "first" }, { ok, err })
    loom.sleep(0.01)
  end)

  it("a child failing after the gatherer was cancelled counts as seen",
    function()
      local t = loom.spawn(function()
        loom.gather(function() error("while cancelling", 0) end)
      end)
      loom.sleep(0)   -- t waits in gather; its child is queued to run
      t:cancel()      -- the child runs and fails before t resumes
      assert.is_false(pcall(t.await, t))
      assert.equal("cancelled", t:status())
      loom.sleep(0.01)
    end)
end)
