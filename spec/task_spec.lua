-- Tasks: create_task/spawn, the Task methods and its status transitions.
local it = require("spec.support.task").it
local loom = require "loom"

local err_of = require("spec.support.task").error_of

describe("loom.create_task / loom.spawn", function()
  it("are also globals", function()
    assert.equal(loom.spawn, spawn)
    assert.equal(loom.create_task, create_task)
  end)

  it("pass the extra arguments to the function", function()
    local t = loom.create_task(function(a, b, c) return a + b, c end, 1, 2, "x")
    assert.same({ 3, "x" }, { t:await() })
  end)

  it("pass nil arguments through, holes included", function()
    local t = loom.spawn(function(...) return select("#", ...), ... end,
      nil, 2, nil)
    assert.same({ 3, nil, 2, nil }, { t:await() })
  end)

  it("accept a callable table", function()
    local obj = setmetatable({ k = 10 }, {
      __call = function(self, x) return self.k + x end
    })
    assert.equal(15, loom.spawn(obj, 5):await())
  end)

  it("accept a C function", function()
    assert.equal("3", loom.spawn(tostring, 3):await())
  end)

  it("return a Task with the loom.Task metatable", function()
    local t = loom.spawn(function() end)
    assert.equal("userdata", type(t))
    assert.equal("loom.Task", getmetatable(t).__name)
    t:await()
  end)

  it("reject what cannot be called", function()
    assert.matches("bad argument #1 to 'create_task' %(function expected, got number%)$",
      err_of(function() create_task(42) end))
    assert.matches("bad argument #1 to 'spawn' %(function expected, got nil%)$",
      err_of(function() spawn(nil) end))
    assert.matches("bad argument #1 to 'spawn' %(function expected, got no value%)$",
      err_of(function() spawn() end))
    assert.matches("bad argument #1 to 'spawn' %(function expected, got table%)$",
      err_of(function() spawn({}) end))
  end)
end)

describe("Task", function()
  it(":await() returns all the results", function()
    local t = loom.spawn(function() loom.sleep(0.01); return 1, nil, "three" end)
    local r = table.pack(t:await())
    assert.equal(3, r.n)
    assert.same({ 1, nil, "three" }, { r[1], r[2], r[3] })
  end)

  it(":await() of a task that returned nothing returns nothing", function()
    local t = loom.spawn(function() end)
    assert.equal(0, select("#", t:await()))
    assert.equal(0, select("#", t:result()))
  end)

  it(":await() of a finished task returns at once, again and again", function()
    local t = loom.spawn(function() return "v" end)
    assert.equal("v", t:await())
    assert.equal("v", t:await())
    assert.equal("v", loom.await(t))
  end)

  it("can be awaited by many tasks at once", function()
    local t = loom.spawn(function() loom.sleep(0.02); return "shared", 2 end)
    local waiters = {}
    for i = 1, 5 do
      waiters[i] = loom.spawn(function() return i, t:await() end)
    end
    for i = 1, 5 do
      assert.same({ i, "shared", 2 }, { waiters[i]:await() })
    end
  end)

  it("re-raises the task's error unchanged from :await()", function()
    local e = { code = 42 }
    local t = loom.spawn(function() loom.sleep(0.01); error(e) end)
    local ok, err = pcall(t.await, t)
    assert.is_false(ok)
    assert.is_true(rawequal(e, err))
    -- and again: the same value every time
    ok, err = pcall(t.await, t)
    assert.is_true(rawequal(e, err))
  end)

  it("re-raises a string error with its position, unchanged", function()
    local t = loom.spawn(function() error("boom") end)
    local err = err_of(t.await, t)
    assert.equal("spec/task_spec.lua:" .. debug.getinfo(1, "l").currentline - 2
      .. ": boom", err)
  end)

  it("re-raises non-string, non-table errors as they are", function()
    for _, v in ipairs({ 42, true, 1.5 }) do
      local t = loom.spawn(function() error(v) end)
      assert.equal(v, err_of(t.await, t))
    end
    local t = loom.spawn(function() error(nil) end)
    assert.is_nil(err_of(t.await, t))
    local f = function() end
    t = loom.spawn(function() error(f) end)
    assert.equal(f, err_of(t.await, t))
    local co = coroutine.create(function() end)
    t = loom.spawn(function() error(co) end)
    assert.equal(co, err_of(t.await, t))
  end)

  it("keeps an error object with a metatable as it is", function()
    local mt = { __tostring = function() return "custom error" end }
    local e = setmetatable({}, mt)
    local t = loom.spawn(function() error(e) end)
    local err = err_of(t.await, t)
    assert.is_true(rawequal(e, err))
    assert.equal(mt, getmetatable(err))
  end)

  it(":result() returns the results of a done task", function()
    local t = loom.spawn(function() return 1, 2 end)
    t:await()
    assert.same({ 1, 2 }, { t:result() })
  end)

  it(":result() raises the error of a failed task", function()
    local e = {}
    local t = loom.spawn(function() error(e) end)
    loom.sleep(0)
    assert.equal("failed", t:status())
    assert.is_true(rawequal(e, err_of(t.result, t)))
  end)

  it(":result() raises Cancelled for a cancelled task", function()
    local t = loom.spawn(function() loom.sleep(1) end)
    t:cancel()
    loom.sleep(0)
    assert.equal("cancelled", t:status())
    local err = err_of(t.result, t)
    assert.is_true(loom.is_cancelled(err))
  end)

  it(":result() of an unfinished task says it is not finished", function()
    local f = loom.future()
    local t = loom.spawn(function() f:await() end)
    assert.matches("result: task not finished %(status 'pending'%)$",
      err_of(function() return t:result() end))
    loom.sleep(0)
    assert.matches("result: task not finished %(status 'running'%)$",
      err_of(function() return t:result() end))
    f:set()
    t:await()
  end)

  it("goes pending -> running -> done", function()
    local seen = {}
    local f = loom.future()
    local t
    t = loom.spawn(function()
      seen[#seen + 1] = t:status()
      f:await()
      seen[#seen + 1] = t:status()
      return "ok"
    end)
    assert.equal("pending", t:status())
    assert.is_false(t:done())
    loom.sleep(0)
    assert.equal("running", t:status()) -- suspended counts as running
    assert.is_false(t:done())
    f:set()
    t:await()
    assert.same({ "running", "running" }, seen)
    assert.equal("done", t:status())
    assert.is_true(t:done())
  end)

  it("goes pending -> running -> failed", function()
    local f = loom.future()
    local t = loom.spawn(function() f:await(); error("x") end)
    assert.equal("pending", t:status())
    loom.sleep(0)
    assert.equal("running", t:status())
    f:set()
    pcall(t.await, t)
    assert.equal("failed", t:status())
    assert.is_true(t:done())
  end)

  it("goes pending -> cancelled when cancelled before it starts", function()
    local ran = false
    local t = loom.spawn(function() ran = true end)
    assert.is_true(t:cancel())
    assert.equal("pending", t:status()) -- delivered when it would start
    loom.sleep(0)
    assert.equal("cancelled", t:status())
    assert.is_true(t:done())
    assert.is_false(ran)
  end)

  it("goes running -> cancelled", function()
    local t = loom.spawn(function() loom.sleep(1) end)
    loom.sleep(0)
    assert.equal("running", t:status())
    t:cancel()
    pcall(t.await, t)
    assert.equal("cancelled", t:status())
  end)

  it(":cancel() returns true when requested, false once finished", function()
    local t = loom.spawn(function() loom.sleep(1) end)
    loom.sleep(0)
    assert.is_true(t:cancel())
    assert.is_true(t:cancel()) -- still unwinding: asking again is fine
    pcall(t.await, t)
    assert.is_false(t:cancel())

    local d = loom.spawn(function() return 1 end)
    d:await()
    assert.is_false(d:cancel())
    assert.equal("done", d:status())
    assert.equal(1, d:result())

    local f = loom.spawn(function() error("x") end)
    pcall(f.await, f)
    assert.is_false(f:cancel())
    assert.equal("failed", f:status())
  end)

  it("__tostring shows the address and the status", function()
    local fut = loom.future()
    local t = loom.spawn(function() fut:await() end)
    assert.matches("^loom%.Task: 0x%x+ %(pending%)$", tostring(t))
    loom.sleep(0)
    assert.matches("^loom%.Task: 0x%x+ %(running%)$", tostring(t))
    fut:set()
    t:await()
    assert.matches("^loom%.Task: 0x%x+ %(done%)$", tostring(t))
    local f = loom.spawn(function() error("x") end)
    pcall(f.await, f)
    assert.matches("^loom%.Task: 0x%x+ %(failed%)$", tostring(f))
    local c = loom.spawn(function() end)
    c:cancel()
    loom.sleep(0)
    assert.matches("^loom%.Task: 0x%x+ %(cancelled%)$", tostring(c))
    -- distinct tasks, distinct addresses
    assert.not_equal(tostring(t):match("0x%x+"), tostring(f):match("0x%x+"))
  end)

  it("a task can see itself running through its own handle", function()
    local t
    t = loom.spawn(function() return t:status(), t:done() end)
    assert.same({ "running", false }, { t:await() })
  end)

  it("a task cannot await itself", function()
    local t
    t = loom.spawn(function()
      local ok, err = pcall(function() return t:await() end)
      return ok, err
    end)
    local ok, err = t:await()
    assert.is_false(ok)
    assert.matches("await: a task cannot await itself$", err)
    t = loom.spawn(function()
      return pcall(function() return loom.await(t) end)
    end)
    ok, err = t:await()
    assert.is_false(ok)
    assert.matches("await: a task cannot await itself$", err)
  end)

  it("methods check their self argument", function()
    local t = loom.spawn(function() end)
    assert.matches("bad argument #1 to 'await' %(loom%.Task expected, got number%)$",
      err_of(function() t.await(1) end))
    assert.matches("bad argument #1 to 'status' %(loom%.Task expected, got table%)$",
      err_of(function() t.status({}) end))
    assert.matches("bad argument #1 to 'cancel' %(loom%.Task expected, got no value%)$",
      err_of(function() t.cancel() end))
    assert.matches("bad argument #1 to 'done' %(loom%.Task expected, got string%)$",
      err_of(function() t.done("x") end))
    assert.matches("bad argument #1 to 'result' %(loom%.Task expected, got nil%)$",
      err_of(function() t.result(nil) end))
    t:await()
  end)

  it("a finished task keeps its results after the function is gone", function()
    local t = loom.spawn(function() return { deep = { 1, 2, 3 } } end)
    t:await()
    collectgarbage()
    collectgarbage()
    assert.same({ deep = { 1, 2, 3 } }, t:result())
  end)

  it("a forgotten sleeping task is not collected before it finishes", function()
    local done = false
    loom.spawn(function() loom.sleep(0.03); done = true end)
    for _ = 1, 3 do
      collectgarbage()
      loom.sleep(0.005)
    end
    loom.sleep(0.05)
    assert.is_true(done)
  end)

  it("thousands of tasks run and finish", function()
    local tasks, sum = {}, 0
    for i = 1, 3000 do
      tasks[i] = loom.spawn(function() loom.sleep(0); sum = sum + i end)
    end
    loom.gather(tasks)
    assert.equal(3000 * 3001 // 2, sum)
  end)

  it("many results come back in order", function()
    local t = loom.spawn(function() return table.unpack((function()
      local r = {}
      for i = 1, 200 do r[i] = i end
      return r
    end)()) end)
    local r = { t:await() }
    assert.equal(200, #r)
    for i = 1, 200 do assert.equal(i, r[i]) end
  end)
end)
