-- Errors: values stay values across every boundary, unretrieved failures
-- are reported with traceback and spawn site, deadlocks, tracebacks.
local it = require("spec.support.task").it
local cli = require "spec.support.cli"
local loom = require "loom"

local err_of = require("spec.support.task").error_of

local run = cli.script_as_loom  -- stderr with the script's name as FILE

describe("error values stay values", function()
  local values = {
    table = {},
    ["table with metatable"] = setmetatable({}, { __tostring = function() return "E" end }),
    ["function"] = function() end,
    userdata = io.stdout,
    number = 42,
    float = 1.5,
    boolean = false,
    string = "no position",
  }

  for kind, e in pairs(values) do
    it("through await, result, gather, loom.run and a future: " .. kind,
      function()
        local t = loom.spawn(function() loom.sleep(0.01); error(e, 0) end)
        assert.is_true(rawequal(e, err_of(t.await, t)))
        assert.is_true(rawequal(e, err_of(t.result, t)))
        assert.is_true(rawequal(e, err_of(loom.await, t)))
        local g = loom.spawn(function() error(e, 0) end)
        assert.is_true(rawequal(e, err_of(loom.gather, g)))
        assert.is_true(rawequal(e, err_of(loom.gather, { function() error(e, 0) end })))
        assert.is_true(rawequal(e, err_of(loom.run, function() error(e, 0) end)))
        local f = loom.future()
        f:fail(e)
        assert.is_true(rawequal(e, err_of(f.await, f)))
      end)
  end

  it("through nested awaits, many levels deep", function()
    local e = {}
    local t = loom.spawn(function() error(e) end)
    for _ = 1, 10 do
      local inner = t
      t = loom.spawn(function() return inner:await() end)
    end
    assert.is_true(rawequal(e, err_of(t.await, t)))
  end)

  it("through a coroutine.wrap generator that slept", function()
    local e = {}
    local gen = coroutine.wrap(function() loom.sleep(0.01); error(e) end)
    local t = loom.spawn(function() return gen() end)
    assert.is_true(rawequal(e, err_of(t.await, t)))
  end)

  it("string errors keep the position where they were raised", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local t = loom.spawn(function() error("positioned") end)
    assert.equal("spec/errors_spec.lua:" .. line .. ": positioned", err_of(t.await, t))
  end)

  it("runtime errors keep Lua's message", function()
    local t = loom.spawn(function() local x = nil; return x.field end)
    assert.matches("^spec/errors_spec%.lua:%d+: attempt to index a nil value %(local 'x'%)$",
      err_of(t.await, t))
  end)

  it("the traceback is kept beside the error, never inside it", function()
    local t = loom.spawn(function() error("plain", 0) end)
    assert.equal("plain", err_of(t.await, t))
  end)
end)

describe("unretrieved failure reports", function()
  it("show message, traceback through nested calls, and spawn site", function()
    local _, err, code = run([[
local function inner()
  error("deep")
end
local function middle()
  sleep(0.01)
  inner()
end
local function spawner()
  spawn(middle)
end
spawner()
]])
    assert.equal(1, code)
    assert.equal("loom: error in a task nobody awaited: FILE:2: deep\n"
      .. "stack traceback:\n\t[C]: in function 'error'\n"
      .. "\tFILE:2: in upvalue 'inner'\n"
      .. "\tFILE:6: in function <FILE:4>\n"
      .. "(task spawned at FILE:9)\n", err)
  end)

  it("show a runtime error without a [C] error frame", function()
    local _, err, code = run([[
spawn(function()
  local x = nil
  return x.y
end)
]])
    assert.equal(1, code)
    assert.equal("loom: error in a task nobody awaited: FILE:3: attempt to "
      .. "index a nil value (local 'x')\nstack traceback:\n"
      .. "\tFILE:3: in function <FILE:1>\n(task spawned at FILE:1)\n", err)
  end)

  it("describe non-string error values as lua does", function()
    local _, err = run([[
spawn(function() error({}) end)
sleep(0)
spawn(function() error(setmetatable({}, {__tostring = function() return "OBJ" end})) end)
sleep(0)
spawn(function() error(nil) end)
sleep(0)
spawn(function() error(12) end)
]])
    local msgs = {}
    for m in err:gmatch("error in a task nobody awaited: ([^\n]*)") do
      msgs[#msgs + 1] = m
    end
    assert.same({ "(error object is a table value)", "OBJ",
      "(error object is a nil value)", "12" }, msgs)
  end)

  it("give the line of the call for tasks made by async and gather", function()
    local _, err = run([[
local f = async(function()
  error("via async", 0)
end)
f()
sleep(0.01)
local slow = spawn(function() sleep(0.02) end)
pcall(gather, slow, function() error("via gather", 0) end)
]])
    assert.matches("via async\n.-%(task spawned at FILE:4%)\n", err)
    -- the gathered failure was retrieved by gather: not reported
    assert.is_nil(err:find("via gather", 1, true))
  end)

  it("give the nearest Lua line when spawn is called through a C function",
    function()
      local _, err = run([[
local f = function() error("through pcall", 0) end
pcall(spawn, f)
]])
      assert.matches("through pcall\n", err)
      assert.is_nil(err:find("[C]:-1", 1, true))
      assert.matches("%(task spawned at FILE:2%)\n$", err)
    end)

  it("loom.report_unretrieved reports now and counts what it reported",
    function()
      local out, err = run([[
spawn(function() error("early", 0) end)
sleep(0.01)
print(loom.report_unretrieved())
io.stderr:write("-- marker --\n")
print(loom.report_unretrieved())
]])
      assert.equal("1\n0\n", out)
      assert.matches("^loom: error in a task nobody awaited: early\n.*%-%- marker %-%-\n$", err)
    end)

  it("loom.report_unretrieved counts failures reported by the collector",
    function()
      local out = run([[
local t = spawn(function() error("collected", 0) end)
sleep(0.01)
t = nil
collectgarbage()
collectgarbage()
print(loom.report_unretrieved())
]])
      assert.equal("1\n", out)
    end)

  it("report_unretrieved in this process finds nothing when all was retrieved",
    function()
      local t = loom.spawn(function() error("x", 0) end)
      pcall(t.await, t)
      collectgarbage()
      assert.equal(0, loom.report_unretrieved())
    end)
end)

describe("tracebacks", function()
  it("the main chunk's traceback goes through the functions it called", function()
    local _, err, code = run([[
local function a()
  sleep(0.01)
  error("in a")
end
local function b() a() end
b()
]])
    assert.equal(1, code)
    assert.equal("loom: FILE:3: in a\nstack traceback:\n\t[C]: in function 'error'\n"
      .. "\tFILE:3: in upvalue 'a'\n\tFILE:5: in local 'b'\n"
      .. "\tFILE:6: in main chunk\n\t[C]: in ?\n", err)
  end)

  it("an error awaited by the main task shows where it was raised in the task",
    function()
      -- errors carry the traceback of where they were raised and where the
      -- task was spawned, also when they reach the top through await
      local _, err, code = run([[
local function inner()
  error("deep")
end
local t = spawn(function()
  sleep(0.01)
  inner()
end)
t:await()
]])
      assert.equal(1, code)
      assert.matches("^loom: FILE:2: deep\n", err)
      assert.matches("\n\tFILE:8: in main chunk\n", err) -- the await
      assert.matches("\n\tFILE:6: in ", err)              -- the raise, in the task
      assert.matches("FILE:4", err)                      -- the spawn site
    end)

  it("a gathered failure that reaches the top shows the gather line", function()
    local _, err, code = run([[
gather(function()
  sleep(0.01)
  error("in gather")
end, function() sleep(1) end)
]])
    assert.equal(1, code)
    assert.matches("^loom: FILE:3: in gather\nstack traceback:\n", err)
    assert.matches("\n\tFILE:1: in main chunk\n", err)
  end)
end)
