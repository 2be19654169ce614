-- Crashes and divergences a hostile review found in the core, each with
-- the case that showed it: deep cancellation, huge gather lengths, the
-- runtime re-entered while os.exit closes it, os.exit where the task
-- cannot yield, the debug library aimed at loom's objects, and failures
-- in bulk.
local it = require("spec.support.task").it
local error_of = require("spec.support.task").error_of
local cli = require "spec.support.cli"

-- Runs src as a script with a 1 MiB C stack, so a recursion one C frame
-- per level would overflow at a depth of 100,000 (it did, before).
local function small_stack(src)
  local file = cli.tmpfile(src, ".lua")
  return cli.run{ prog = "bash", args = { "-c",
    'ulimit -s 1024 && exec "$@"', "sh", cli.LOOM, file }, timeout = 60 }
end

describe("deep nesting", function()
  after_each(cli.cleanup)

  it("cancelling a chain of 100,000 nested gathers unwinds it, one task at "
    .. "a time", function()
    local out, err, code = small_stack([[
local cleaned = 0
local function chain(n)
  local guard <close> = setmetatable({}, {__close = function()
    cleaned = cleaned + 1 end})
  if n == 0 then sleep(1000) return end
  gather(function() chain(n - 1) end)
end
local root = spawn(chain, 100000)
for _ = 1, 100010 do sleep(0) end   -- one level starts per turn
root:cancel()
local ok, err = pcall(root.await, root)
print(ok, loom.is_cancelled(err))
local t0 = loom.now()   -- the rest unwinds a few thousand tasks a turn
while cleaned < 100001 and loom.now() - t0 < 30 do sleep(0.01) end
print(cleaned)
]])
    assert.same({ "false\ttrue\n100001\n", "", 0 }, { out, err, code })
  end)

  it("a failure at the bottom of 100,000 nested gathers reaches the top",
    function()
      local out, err, code = small_stack([[
local function chain(n)
  if n == 0 then sleep(0.01) error("deep", 0) end
  return gather(function() return chain(n - 1) end)
end
print(pcall(chain, 100000))
]])
      assert.same({ "false\tdeep\n", "", 0 }, { out, err, code })
    end)

  it("a future fired to 100,000 waiters wakes them all", function()
    local f = loom.future()
    local n = 0
    for _ = 1, 100000 do spawn(function() f:await() n = n + 1 end) end
    sleep(0)
    f:set()
    local t0 = loom.now()
    while n < 100000 and loom.now() - t0 < 30 do sleep(0.01) end
    assert.equal(100000, n)
  end)
end)

-- A table constructor of [k] = v entries keeps integer keys in the hash
-- part, so # finds whichever border its search lands on: 2^31 and more.
local function sparse(keys)
  local src = { "local f = ... return {" }
  for _, k in ipairs(keys) do src[#src + 1] = ("[%d] = f,"):format(k) end
  src[#src + 1] = "}"
  return load(table.concat(src))(function() end)
end

local function powers(top, extra)
  local keys = {}
  for k = 0, top do keys[#keys + 1] = 1 << k end
  for _, e in ipairs(extra or {}) do keys[#keys + 1] = e end
  return keys
end

describe("gather of a table with a huge border", function()
  for _, case in ipairs{
    { "2^31", powers(31) }, { "2^32", powers(32) },
    { "2^32 + 2", powers(32, { (1 << 32) + 1, (1 << 32) + 2 }) } } do
    it("whose border is " .. case[1] .. " names the first missing item",
      function()
        local t = sparse(case[2])
        assert.is_true(#t >= 1 << 31)
        assert.equal("bad argument #1 to 'gather' (item 3 is a nil, expected "
          .. "a task or a function)", error_of(gather, t))
      end)
  end
end)

describe("os.exit(code, true)", function()
  after_each(cli.cleanup)

  it("refuses loom.run from a <close> handler while the runtime exits",
    function()
      local out, err, code = cli.script([[
local x <close> = setmetatable({}, {__close = function()
  print(pcall(loom.run, function() return 1 end))
end})
spawn(function() sleep(0.01) os.exit(0, true) end)
loom.future():await()
]])
      assert.same({ "false\trun: the runtime is exiting\n", "", 0 },
        { out, err, code })
    end)

  it("refuses spawn from a <close> handler while the runtime exits",
    function()
      local out, err, code = cli.script([[
local x <close> = setmetatable({}, {__close = function()
  print(pcall(spawn, function() end))
end})
os.exit(3, true)
]])
      assert.same({ "false\tspawn: the runtime is exiting\n", "", 3 },
        { out, err, code })
    end)

  it("also while the main task waits in gather, or on a task", function()
    for _, wait in ipairs{ "gather(function() sleep(10) end)",
                           "spawn(function() sleep(10) end):await()" } do
      local out, err, code = cli.script([[
local x <close> = setmetatable({}, {__close = function()
  print("closing", pcall(loom.run, function() end))
end})
spawn(function() sleep(0.01) os.exit(3, true) end)
]] .. wait)
      assert.same({ "closing\tfalse\trun: the runtime is exiting\n", "", 3 },
        { out, err, code })
    end
  end)

  local unyieldable = {
    sort = "table.sort({3, 2, 1}, function(a, b) os.exit(7, true) end)",
    gsub = "string.gsub('x', 'x', function() os.exit(7, true) end)",
    gc = "setmetatable({}, {__gc = function() os.exit(7, true) end}) "
      .. "collectgarbage() collectgarbage()",
  }
  for name, call in pairs(unyieldable) do
    it("where the task cannot yield (" .. name .. ") closes the main chunk's "
      .. "variables and runs the finalizers, as lua does", function()
        local src = [[
local x <close> = setmetatable({}, {__close = function() print("closed") end})
local g = setmetatable({}, {__gc = function() print("finalized") end})
]] .. call .. "\nprint('not reached')\n"
        local out, err, code = cli.script(src)
        local lout, lerr, lcode = cli.script(src, { prog = "lua5.4" })
        assert.same({ lout, lerr, lcode }, { out, err, code })
        assert.matches("closed\n", out)
        assert.matches("finalized\n", out)
        assert.equal(7, code)
      end)
  end
end)

describe("spawning from finalizers", function()
  after_each(cli.cleanup)

  it("finalizers that spawn while a spawn allocates, with no task running "
     .. "(loom.so), leave the run queue room for every task", function()
    if cli.SANITIZE then pending("loom.so is sanitized: lua5.4 cannot load it") end
    local out, err, code = cli.module([[
local loom = require "loom"
local ran = 0
local function f() ran = ran + 1 end
collectgarbage("incremental")
collectgarbage("setpause", 0)      -- a collector step at every allocation
collectgarbage("setstepmul", 1000)
local made = 0
local mt = { __gc = function() loom.spawn(f) loom.spawn(f) made = made + 2 end }
for _ = 1, 3000 do
  setmetatable({}, mt)
  loom.spawn(f)
end
loom.run(function() end)
collectgarbage("stop")
print(ran == 3000 + made, made > 0)
]])
    assert.same({ "true\ttrue\n", "", 0 }, { out, err, code })
  end)

  it("a spawn burst inside a finalizer leaves the collector's pause as it "
     .. "was", function()
    local out, err, code = cli.script([[
collectgarbage("setpause", 200)
setmetatable({}, { __gc = function()
  for _ = 1, 1100 do spawn(function() end) end
end })
collectgarbage()
sleep(0) sleep(0) sleep(0)
print(collectgarbage("setpause", 200))
]])
    assert.same({ "200\n", "", 0 }, { out, err, code })
  end)
end)

describe("the debug library aimed at loom's objects", function()
  it("cannot unhook a sleeping task's thread with setuservalue", function()
    local t = spawn(function() sleep(0.02) return "woke" end)
    sleep(0)
    debug.setuservalue(t, nil, 1)
    collectgarbage()
    collectgarbage()
    assert.equal("woke", t:await())
  end)

  it("cannot make a future, or any userdata, pass for a Task", function()
    local task_mt = getmetatable(spawn(function() end))
    for _, u in ipairs{ loom.future(), io.stdout } do
      local mt = getmetatable(u)
      debug.setmetatable(u, task_mt)
      local err = error_of(task_mt.__index.status, u)
      assert.matches("^bad argument #1 to '%?' %(loom.Task expected", err)
      assert.matches("loom.Task expected", error_of(loom.await, spawn(
        function() return task_mt.__index.await(u) end)))
      debug.setmetatable(u, mt)
    end
  end)

  it("cannot let another task resume a parked coroutine with setlocal",
    function()
      local co = coroutine.create(function()
        sleep(0.02)
        return "generator done"
      end)
      local owner = spawn(function() return coroutine.resume(co) end)
      sleep(0.005)
      -- clobber everything the coroutine's frames hold
      for level = 1, 10 do
        for i = 1, 20 do pcall(debug.setlocal, co, level, i, nil) end
      end
      assert.same({ false, "cannot resume non-suspended coroutine" },
        { coroutine.resume(co) })
      assert.same({ true, "generator done" }, { owner:await() })
    end)

  it("cannot break a task by clobbering its body's locals", function()
    local t = spawn(function()
      local co = coroutine.running()
      for level = 1, 10 do
        for i = 1, 10 do pcall(debug.setlocal, co, level, i, 42) end
      end
      sleep(0.001)
      return "still fine"
    end)
    local ok, res = pcall(t.await, t)
    -- the task may fail (its own frames were clobbered), never crash
    assert.is_true(ok == true or type(res) ~= "nil")
  end)
end)

describe("failures in bulk", function()
  local function fail_many(n)
    local t0 = loom.now()
    local ts = {}
    for i = 1, n do
      ts[i] = spawn(function() sleep(0.001) error("boom " .. i) end)
    end
    local failed = 0
    for i = 1, #ts do
      if not pcall(ts[i].await, ts[i]) then failed = failed + 1 end
    end
    assert.equal(n, failed)
    return loom.now() - t0
  end

  it("cost linear time: 8 times the failing tasks, not 64 times the time",
    function()
      local small = fail_many(5000)
      local large = fail_many(40000)  -- 230 s before, ~0.7 s now
      -- linear is 8x, the old quadratic cost 64x: a ratio, so a slow
      -- machine (valgrind, sanitizers) does not matter
      assert.is_true(large / small < 24,
        ("5,000 failures took %.2f s, 40,000 took %.2f s"):format(small, large))
    end)
end)
