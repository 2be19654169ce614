-- loom.future: set once, awaited by any number of tasks.
local it = require("spec.support.task").it
local loom = require "loom"

local err_of = require("spec.support.task").error_of

describe("loom.future", function()
  it("starts pending", function()
    local f = loom.future()
    assert.is_false(f:done())
    assert.equal("pending", f:status())
    assert.equal("loom.Future", getmetatable(f).__name)
  end)

  it(":set() makes it done, with its values", function()
    local f = loom.future()
    f:set(1, nil, "three")
    assert.is_true(f:done())
    assert.equal("done", f:status())
    local r = table.pack(f:result())
    assert.equal(3, r.n)
    assert.same({ 1, nil, "three" }, { r[1], r[2], r[3] })
    r = table.pack(f:await())
    assert.equal(3, r.n)
  end)

  it(":set() with no values gives no values", function()
    local f = loom.future()
    f:set()
    assert.equal(0, select("#", f:result()))
    assert.equal(0, select("#", f:await()))
    assert.equal(0, select("#", loom.await(f)))
  end)

  it(":set() keeps a table value as it is", function()
    local v = {}
    local f = loom.future()
    f:set(v)
    assert.is_true(rawequal(v, f:await()))
  end)

  it(":fail() makes it failed; await and result raise the error unchanged",
    function()
      local e = { why = "no" }
      local f = loom.future()
      f:fail(e)
      assert.is_true(f:done())
      assert.equal("failed", f:status())
      assert.is_true(rawequal(e, err_of(f.result, f)))
      assert.is_true(rawequal(e, err_of(f.await, f)))
      assert.is_true(rawequal(e, err_of(loom.await, f)))
    end)

  it(":fail() with a string error raises it as it is", function()
    local f = loom.future()
    f:fail("plain")
    assert.equal("plain", err_of(f.await, f))
  end)

  it("wakes every task awaiting it, with all the values", function()
    local f = loom.future()
    local waiters = {}
    for i = 1, 4 do
      waiters[i] = loom.spawn(function() return i, f:await() end)
    end
    waiters[5] = loom.spawn(function() return 5, loom.await(f) end)
    loom.sleep(0.01)
    for i = 1, 5 do assert.equal("running", waiters[i]:status()) end
    f:set("a", "b")
    for i = 1, 5 do
      assert.same({ i, "a", "b" }, { waiters[i]:await() })
    end
  end)

  it("wakes waiters in the order they started waiting", function()
    local f = loom.future()
    local log = {}
    local tasks = {}
    for i = 1, 5 do
      tasks[i] = loom.spawn(function() f:await(); log[#log + 1] = i end)
    end
    loom.sleep(0)
    f:set()
    loom.gather(tasks)
    assert.same({ 1, 2, 3, 4, 5 }, log)
  end)

  it("a failure reaches every waiter", function()
    local f = loom.future()
    local e = {}
    local a = loom.spawn(function() return f:await() end)
    local b = loom.spawn(function() return f:await() end)
    loom.sleep(0)
    f:fail(e)
    assert.is_true(rawequal(e, err_of(a.await, a)))
    assert.is_true(rawequal(e, err_of(b.await, b)))
  end)

  it("can be set from another task while the main one waits", function()
    local f = loom.future()
    loom.spawn(function() loom.sleep(0.02); f:set(42) end)
    assert.equal(42, f:await())
  end)

  it("setting twice is an error", function()
    local f = loom.future()
    f:set(1)
    assert.matches("future is already done$", err_of(function() f:set(2) end))
    assert.matches("future is already done$", err_of(function() f:fail("x") end))
    assert.equal(1, f:result()) -- unchanged
    local g = loom.future()
    g:fail("bad")
    assert.matches("future is already failed$", err_of(function() g:set(2) end))
    assert.matches("future is already failed$", err_of(function() g:fail(3) end))
    assert.equal("bad", err_of(g.result, g))
  end)

  it(":result() of a pending future is an error", function()
    local f = loom.future()
    assert.matches("result: future not done$", err_of(function() f:result() end))
  end)

  it(":fail() needs an error value", function()
    local f = loom.future()
    assert.matches("bad argument #1 to 'fail' %(value expected%)$",
      err_of(function() f:fail() end))
    assert.equal("pending", f:status())
  end)

  it("methods check their self argument", function()
    local f = loom.future()
    assert.matches("bad argument #1 to 'set' %(loom%.Future expected, got number%)$",
      err_of(function() f.set(1) end))
    assert.matches("bad argument #1 to 'await' %(loom%.Future expected, got table%)$",
      err_of(function() f.await({}) end))
    assert.matches("bad argument #1 to 'status' %(loom%.Future expected, got no value%)$",
      err_of(function() f.status() end))
  end)

  it("__tostring shows the address and the status", function()
    local f = loom.future()
    assert.matches("^loom%.Future: 0x%x+ %(pending%)$", tostring(f))
    f:set()
    assert.matches("^loom%.Future: 0x%x+ %(done%)$", tostring(f))
    local g = loom.future()
    g:fail(1)
    assert.matches("^loom%.Future: 0x%x+ %(failed%)$", tostring(g))
    assert.is_false(pcall(g.result, g))  -- retrieved: not reported
  end)

  it("a task awaiting a future can be cancelled", function()
    local f = loom.future()
    local t = loom.spawn(function() return f:await() end)
    loom.sleep(0)
    t:cancel()
    local ok, err = pcall(t.await, t)
    assert.is_false(ok)
    assert.is_true(loom.is_cancelled(err))
    f:set(1) -- wakes nobody, breaks nothing
    loom.sleep(0)
    assert.equal("cancelled", t:status())
  end)

  it("awaiting a pending future where the task cannot yield is an error",
    function()
      local f = loom.future()
      local err = err_of(function()
        string.gsub("a", "a", function() f:await() end)
      end)
      assert.matches("await: cannot wait here: inside a string%.gsub "
        .. "replacement function", err)
    end)
end)
