-- loom.group and loom.scope: structured concurrency.
local T = require "spec.support.task"
local it, err_of = T.it, T.error_of
local cli = require "spec.support.cli"
local loom = require "loom"

local function closer(fn)
  return setmetatable({}, { __close = fn })
end

describe("loom.group", function()
  it("leaving the scope waits for every child", function()
    local done = {}
    do
      local g <close> = loom.group()
      for i = 1, 3 do
        g:spawn(function() loom.sleep(0.005 * i) done[#done + 1] = i end)
      end
      assert.same({}, done)
    end
    assert.same({ 1, 2, 3 }, done)
  end)

  it("spawn returns the child's Task, with its arguments", function()
    local t
    do
      local g <close> = loom.group()
      t = g:spawn(function(a, b) return a * b end, 6, 7)
      assert.equal(getmetatable(loom.spawn(function() end)), getmetatable(t))
    end
    assert.equal(42, t:result())
  end)

  it("the first failure cancels the siblings and the body, then raises a "
    .. "GroupError", function()
      local log = {}
      local e = err_of(function()
        local g <close> = loom.group()
        g:spawn(function() loom.sleep(0.01) error("boom", 0) end)
        g:spawn(function()
          local _ <close> = closer(function() log[#log + 1] = "sibling" end)
          loom.sleep(5)
        end)
        local ok, err = pcall(loom.sleep, 5)
        log[#log + 1] = loom.is_cancelled(err) and "body" or "?"
        error(err, 0)
      end)
      assert.equal(loom.GroupError, getmetatable(e))
      assert.same({ "body", "sibling" }, log)
      assert.equal(1, #e.errors)
      assert.equal("boom", e.errors[1])
      assert.equal("failed", e.tasks[1]:status())
      assert.matches("group_spec%.lua:%d+$", e.spawned_at[1])
      assert.matches("^stack traceback:", e.tracebacks[1])
      assert.is_false(e.error)
      assert.matches("^GroupError: 1 of 2 tasks in the group failed\n  1%. "
        .. "boom %(task spawned at [^)]*group_spec%.lua:%d+%)$", tostring(e))
    end)

  it("carries every failure, in the order they came", function()
    local e = err_of(loom.scope, function(g)
      g:spawn(function() loom.sleep(0.01) error("second", 0) end)
      g:spawn(function() error("first", 0) end)
      g:spawn(function() loom.sleep(0.02) error("never: cancelled") end)
    end)
    assert.same({ "first" }, { e.errors[1] })
    -- the second was cancelled by the first failure before it failed
    assert.equal(1, #e.errors)
    local e2 = err_of(loom.scope, function(g)
      g:spawn(function() error("one", 0) end)
      g:spawn(function() error("two", 0) end)
    end)
    assert.same({ "one", "two" }, e2.errors)
    assert.matches("2 of 2 tasks in the group failed\n  1%. one %(task "
      .. "spawned at [^)]+%)\n  2%. two %(task spawned at [^)]+%)$",
      tostring(e2))
  end)

  it("the failures count as retrieved (nothing is reported)", function()
    local e = err_of(loom.scope, function(g)
      g:spawn(error, "x")
    end)
    assert.equal(loom.GroupError, getmetatable(e))
    collectgarbage()
    collectgarbage()
    assert.equal(0, loom.report_unretrieved())
  end)

  it("a child cancelled by someone else is not a failure", function()
    local r = loom.scope(function(g)
      local t = g:spawn(loom.sleep, 5)
      g:spawn(function() loom.sleep(0.01) t:cancel() end)
      return "fine"
    end)
    assert.equal("fine", r)
  end)

  it("the scope's own error goes on unchanged when no child failed",
    function()
      local obj = {}
      local child
      assert.equal(obj, err_of(loom.scope, function(g)
        child = g:spawn(loom.sleep, 5)
        error(obj)
      end))
      assert.equal("cancelled", child:status())  -- cancelled, waited for
    end)

  it("the scope's own error joins the children's failures", function()
    local e = err_of(loom.scope, function(g)
      g:spawn(error, "child", 0)
      loom.sleep(0)
      loom.sleep(0)
      error("body", 0)
    end)
    -- the child failed first: the body is cancelled at its wait; or the
    -- body failed on its own: both appear either way
    assert.equal(loom.GroupError, getmetatable(e))
    assert.equal("child", e.errors[1])
    local e2 = err_of(loom.scope, function(g)
      g:spawn(function() loom.sleep(0.01) error("late child", 0) end)
      g:spawn(function()
        local _ <close> = closer(function() error("cleanup fails", 0) end)
        loom.sleep(5)
      end)
      loom.sleep(0)  -- they start
      error("body first", 0)
    end)
    assert.equal("body first", e2.error)
    assert.same({ "cleanup fails" }, e2.errors)
    assert.matches("the scope itself: body first", tostring(e2))
  end)

  it("an owner cancelled in the body cancels the children and waits for "
    .. "them", function()
      local unwound = false
      local t = loom.spawn(function()
        local g <close> = loom.group()
        g:spawn(function()
          local _ <close> = closer(function()
            loom.sleep(0.01)
            unwound = true
          end)
          loom.sleep(5)
        end)
        loom.sleep(5)
      end)
      loom.sleep(0.01)
      t:cancel()
      assert.is_true(loom.is_cancelled(err_of(t.await, t)))
      assert.is_true(unwound)
      assert.equal("cancelled", t:status())
    end)

  it("an owner cancelled while it waits at the end still waits for the "
    .. "children, then raises Cancelled", function()
      local unwound = false
      local t = loom.spawn(function()
        local g <close> = loom.group()
        g:spawn(function()
          local _ <close> = closer(function()
            loom.sleep(0.01)
            unwound = true
          end)
          loom.sleep(5)
        end)
      end)
      loom.sleep(0.01)  -- now in the group's close
      t:cancel()
      t:cancel()
      assert.is_true(loom.is_cancelled(err_of(t.await, t)))
      assert.is_true(unwound)
    end)

  it("a timeout around a group cancels its children and raises Timeout",
    function()
      local cleaned = 0
      local e = err_of(loom.timeout, 0.02, function()
        loom.scope(function(g)
          for _ = 1, 3 do
            g:spawn(function()
              local _ <close> = closer(function() cleaned = cleaned + 1 end)
              loom.sleep(5)
            end)
          end
        end)
      end)
      assert.is_true(loom.is_timeout(e))
      assert.equal(3, cleaned)
    end)

  it("nested groups: a failure deep inside reaches the outer scope",
    function()
      local e = err_of(loom.scope, function(outer)
        outer:spawn(function()
          loom.scope(function(inner)
            inner:spawn(function() error("deep", 0) end)
            loom.sleep(5)
          end)
        end)
        outer:spawn(loom.sleep, 5)
      end)
      assert.equal(loom.GroupError, getmetatable(e))
      local inner = e.errors[1]
      assert.equal(loom.GroupError, getmetatable(inner))
      assert.equal("deep", inner.errors[1])
    end)

  it("deep nesting unwinds one task at a time (no C stack overflow)",
    function()
      local depth = 300
      local function nest(n)
        if n == 0 then loom.sleep(0.01) error("bottom", 0) end
        loom.scope(function(g) g:spawn(nest, n - 1) loom.sleep(5) end)
      end
      local e = err_of(loom.scope, function(g) g:spawn(nest, depth) end)
      local levels = 0
      while getmetatable(e) == loom.GroupError do
        e = e.errors[1]
        levels = levels + 1
      end
      assert.equal("bottom", e)
      assert.equal(depth + 1, levels)
    end)

  it("children may spawn into the group while it closes", function()
    local ran = {}
    loom.scope(function(g)
      g:spawn(function()
        loom.sleep(0.01)
        g:spawn(function() ran[#ran + 1] = "late" end)
      end)
    end)
    assert.same({ "late" }, ran)
  end)

  it("g:cancel() cancels every child; the scope still waits", function()
    local unwound = 0
    local r = loom.scope(function(g)
      for _ = 1, 3 do
        g:spawn(function()
          local _ <close> = closer(function() unwound = unwound + 1 end)
          loom.sleep(5)
        end)
      end
      loom.sleep(0)
      g:cancel()
      return "cancelled them"
    end)
    assert.equal("cancelled them", r)
    assert.equal(3, unwound)
  end)

  it("a child spawned into a failed group starts cancelled", function()
    local late
    local e = err_of(loom.scope, function(g)
      g:spawn(error, "early", 0)
      pcall(loom.sleep, 5)  -- cancelled by the failure; goes on
      late = g:spawn(loom.sleep, 5)
    end)
    assert.equal(loom.GroupError, getmetatable(e))
    assert.equal("cancelled", late:status())
  end)

  it("spawn after the scope ended is an error; closing twice is nothing",
    function()
      local g
      do
        local s <close> = loom.group()
        g = s
      end
      assert.matches("spawn: the group is closed$",
        err_of(g.spawn, g, print))
      getmetatable(g).__close(g)
      assert.matches("^loom%.Group: 0x%x+ %(0 tasks, 0 running, closed%)$",
        tostring(g))
    end)

  it("checks its arguments", function()
    local g = loom.group()
    assert.matches("bad argument #1 to 'spawn' %(function expected, got "
      .. "number%)", err_of(function() g:spawn(1) end))
    assert.matches("bad argument #1 to 'scope' %(function expected, got "
      .. "nil%)", err_of(function() loom.scope(nil) end))
    assert.matches("bad argument #1 to 'spawn' %(loom%.Group expected, got "
      .. "table%)", err_of(function() g.spawn({}, print) end))
    getmetatable(g).__close(g)
  end)

  it("needs a task (module mode)", function()
    if cli.SANITIZE then pending("loom.so is sanitized: lua5.4 cannot load it") end
    local out = cli.module([[
      local loom = require "loom"
      print(pcall(loom.group))
      print(pcall(loom.scope, print))
    ]])
    assert.equal("false\tgroup: not inside a task (wrap the code in "
      .. "loom.run(fn))\nfalse\tscope: not inside a task (wrap the code in "
      .. "loom.run(fn))\n", out)
  end)

  it("a group nobody closes lets its children run; a failure among them "
    .. "is reported as any task's", function()
      local _, err, code = cli.script_as_loom([[
local g = loom.group()
g:spawn(function() sleep(0.01) print("child ran") end)
g:spawn(function() error("orphan fails", 0) end)
g = nil
collectgarbage()
collectgarbage()
]])
      assert.matches("error in a task nobody awaited: orphan fails", err)
      assert.equal(1, code)
    end)

  it("a GroupError at the command line prints as its message", function()
    local out, err, code = cli.script_as_loom([[
loom.scope(function(g)
  g:spawn(function() error("x", 0) end)
end)
]])
    assert.equal("", out)
    assert.equal("loom: GroupError: 1 of 1 task in the group failed\n  1. x "
      .. "(task spawned at FILE:2)\n", err)
    assert.equal(1, code)
  end)
end)
