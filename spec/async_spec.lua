-- loom.async and loom.await.
local it = require("spec.support.task").it
local loom = require "loom"

local err_of = require("spec.support.task").error_of

describe("loom.async", function()
  it("is the global async", function()
    assert.equal(loom.async, async)
  end)

  it("returns a function that spawns the task and returns it", function()
    local started = 0
    local add = loom.async(function(a, b)
      started = started + 1
      loom.sleep(0.01)
      return a + b
    end)
    assert.equal("function", type(add))
    local t = add(1, 2)
    assert.equal("loom.Task", getmetatable(t).__name)
    assert.equal("pending", t:status())
    assert.equal(0, started) -- spawned, not called: starts next turn
    assert.equal(3, t:await())
    assert.equal(1, started)
  end)

  it("each call is a new task; they run concurrently", function()
    local f = loom.async(function(x) loom.sleep(0.02); return x * 2 end)
    local a, b = f(1), f(2)
    assert.are_not.equal(a, b)
    assert.same({ 2, 4 }, { loom.gather(a, b) })
  end)

  it("passes every argument, nils included, and returns every result",
    function()
      local f = loom.async(function(...) return select("#", ...), ... end)
      assert.same({ 3, nil, "b", nil }, { f(nil, "b", nil):await() })
    end)

  it("accepts a callable table", function()
    local obj = setmetatable({}, { __call = function(_, x) return x + 1 end })
    assert.equal(5, loom.async(obj)(4):await())
  end)

  it("errors of the function come back from await, unchanged", function()
    local e = {}
    local f = loom.async(function() error(e) end)
    assert.is_true(rawequal(e, err_of(loom.await, f())))
  end)

  it("rejects what cannot be called", function()
    assert.matches("bad argument #1 to 'async' %(function expected, got number%)$",
      err_of(function() async(1) end))
    assert.matches("bad argument #1 to 'async' %(function expected, got no value%)$",
      err_of(function() async() end))
  end)
end)

describe("loom.await", function()
  it("is the global await", function()
    assert.equal(loom.await, await)
  end)

  it("waits for a task and returns its results", function()
    local t = loom.spawn(function() loom.sleep(0.01); return "r1", "r2" end)
    assert.same({ "r1", "r2" }, { loom.await(t) })
  end)

  it("waits for a future and returns its values", function()
    local f = loom.future()
    loom.spawn(function() loom.sleep(0.01); f:set("v1", "v2") end)
    assert.same({ "v1", "v2" }, { loom.await(f) })
  end)

  it("returns anything else as it is, all of it", function()
    local tbl = {}
    assert.is_true(rawequal(tbl, loom.await(tbl)))
    assert.same({ 1, 2, 3 }, { loom.await(1, 2, 3) })
    assert.equal("s", loom.await("s"))
    assert.is_nil(loom.await(nil))
    assert.equal(2, select("#", loom.await(nil, nil)))
    assert.equal(print, loom.await(print))
    local co = coroutine.create(function() end)
    assert.equal(co, loom.await(co))
  end)

  it("does not yield for a value that is not awaitable", function()
    local other_ran = false
    loom.spawn(function() other_ran = true end)
    loom.await(42)
    assert.is_false(other_ran)
    loom.sleep(0)
    assert.is_true(other_ran)
  end)

  it("needs an argument", function()
    assert.matches("bad argument #1 to 'await' %(value expected%)$",
      err_of(function() await() end))
  end)

  it("of the task itself is an error", function()
    local t
    t = loom.spawn(function() return pcall(function() return await(t) end) end)
    local ok, err = t:await()
    assert.is_false(ok)
    assert.matches("await: a task cannot await itself$", err)
  end)

  it("chains: a task awaiting a task awaiting a task", function()
    local a = loom.spawn(function() loom.sleep(0.01); return 1 end)
    local b = loom.spawn(function() return loom.await(a) + 1 end)
    local c = loom.spawn(function() return loom.await(b) + 1 end)
    assert.equal(3, loom.await(c))
  end)
end)
