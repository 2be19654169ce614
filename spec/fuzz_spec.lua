-- Fuzz: every public function of loom, called at least CALLS times with
-- hostile arguments (nil, wrong types, NaN, infinities, huge and negative
-- numbers, tables whose metamethods raise or yield, non-string errors,
-- coroutines, tasks and futures in every state), from a task's top level,
-- from inside user coroutines, __gc and __close handlers, and after the
-- calling task caught a cancellation. Each call must succeed or raise an
-- error that names the function (or pass on, unchanged, an error that
-- hostile code raised). Deterministic: one seed, fixed counts.
local it = require("spec.support.task").it
local loom = require "loom"

local SEED = 20261203
local CALLS = tonumber(os.getenv("LOOM_FUZZ_CALLS")) or 10000  -- per function
local BATCH = 400          -- calls in flight before they are cancelled

-- Submodules whose functions are fuzzed too, when this loom has them.
-- Only those that touch nothing outside the process: random strings given
-- to loom.fs would make files here, to loom.tcp, loom.dns or loom.http DNS
-- lookups, to loom.process commands. Those have hostile-argument specs of
-- their own, with values chosen not to (io_hostile_spec, http_spec).
local SUBMODULES = { "json", "timer", "sync" }

local rng = math.random
math.randomseed(SEED)

-- ---- hostile values ------------------------------------------------------

local HOSTILE = setmetatable({}, { __tostring = function() return "HOSTILE" end })
local function raise() error(HOSTILE) end

local function meta_table(event, how)
  local mt = {}
  mt[event] = how == "raise" and raise
    or how == "yield" and function() coroutine.yield() end
    or how == "sleep" and function() loom.sleep(0) end
    or function() return nil end
  return setmetatable({}, mt)
end

local events = { "__index", "__newindex", "__tostring", "__close", "__gc",
                 "__len", "__call", "__eq", "__lt", "__le", "__concat",
                 "__name", "__pairs", "__unm", "__add" }

-- functions passed where callables go: each does something different
local bodies = {
  function() end,
  function(...) return ... end,
  function() return 1, 2, 3 end,
  function() error("plain failure", 0) end,  -- a failure of its own
  function() raise() end,
  function() error() end,
  function() error(setmetatable({}, { __tostring = raise })) end,
  function() loom.sleep(0) return "slept" end,
  function() loom.sleep(1e9) end,
  function() coroutine.yield() end,
  function() return loom.future():await() end,
  function() local t <close> = meta_table("__close", "raise") end,
  function() local t <close> = meta_table("__close", "sleep") return 1 end,
}

-- own errors of bodies: passed on through await/run/gather unchanged
local function hostile_error(e)
  return e == HOSTILE or e == "plain failure" or e == nil or loom.is_cancelled(e)
    or loom.is_timeout(e)  -- task:await(seconds) with too few seconds
    or (type(e) == "table" and getmetatable(e)
        and getmetatable(e).__tostring == raise)
end

local spawned = {}  -- every task the fuzz made, retrieved at each batch end

local function some_task()
  local t = loom.spawn(bodies[rng(#bodies)])
  spawned[#spawned + 1] = t
  local r = rng(4)
  if r == 1 then t:cancel() end
  return t
end

local futures = {}  -- every future the fuzz made, retrieved at batch end
local function some_future()
  local f = loom.future()
  futures[#futures + 1] = f
  local r = rng(3)
  if r == 1 then f:set(rng(100)) elseif r == 2 then f:fail(HOSTILE) end
  return f
end

local quick = { 1, 2, 3, 4, 5, 6, 7, 10, 12 }  -- bodies that never wait

local function some_coroutine()
  local co = coroutine.create(bodies[quick[rng(#quick)]])
  if rng(2) == 1 then pcall(coroutine.resume, co) end
  return co
end

local generators = {
  function() return nil end,
  function() return true end,
  function() return false end,
  function() return 0 end,
  function() return -1 end,
  function() return 1 end,
  function() return 0.5 end,
  function() return -0.0 end,
  function() return 0 / 0 end,
  function() return math.huge end,
  function() return -math.huge end,
  function() return math.maxinteger end,
  function() return math.mininteger end,
  function() return 1e308 end,
  function() return 2 ^ 53 end,
  function() return rng(-1000, 1000) end,
  function() return "" end,
  function() return "x" end,
  function() return "1" end,
  function() return ("\0\r\n"):rep(rng(10)) end,
  function() return ("a"):rep(rng(4000)) end,
  function() return {} end,
  function() return { 1, 2, 3 } end,
  function() return { bodies[1], bodies[2] } end,
  function() return { a = { b = { c = {} } } } end,
  function() return meta_table(events[rng(#events)], "raise") end,
  function() return meta_table(events[rng(#events)], "yield") end,
  function() return meta_table(events[rng(#events)], "sleep") end,
  function() return meta_table(events[rng(#events)], "nil") end,
  function() return bodies[rng(#bodies)] end,
  function() return tostring end,
  function() return some_coroutine() end,
  function() return coroutine.running() end,
  function() return io.stdout end,
  function() return some_task() end,
  function() return some_future() end,
  function() return loom.Cancelled end,
  function() return setmetatable({}, loom.Cancelled) end,
  function() return HOSTILE end,
}

local function hostile()
  return generators[rng(#generators)]()
end

local function hostile_args()
  local n = rng(0, 4)
  if rng(50) == 1 then n = rng(50, 300) end  -- many arguments
  local args = { n = n }
  for i = 1, n do args[i] = hostile() end
  return args
end

-- ---- the targets ------------------------------------------------------------

-- name -> function; the name is what its errors must mention
local targets = {}
local function add(name, fn, self_factory)
  if type(fn) == "function" then
    targets[#targets + 1] = { name = name, fn = fn, self = self_factory }
  end
end

for _, name in ipairs{ "sleep", "spawn", "create_task", "gather", "async",
                       "await", "run", "now", "future", "is_cancelled" } do
  add(name, loom[name])
end
local task_methods = getmetatable(loom.spawn(function() end)).__index
local future_methods = getmetatable(loom.future()).__index
for _, m in ipairs{ "await", "cancel", "done", "status", "result" } do
  add(m, task_methods[m], some_task)
end
for _, m in ipairs{ "set", "fail", "done", "status", "result", "await" } do
  add(m, future_methods[m], some_future)
end
add("tostring", tostring, some_task)
add("tostring", tostring, some_future)
for _, m in ipairs{ "resume", "yield", "running", "isyieldable", "status",
                    "close", "wrap" } do
  add(m, coroutine[m])
end
-- calling what async and wrap made: what the body raises comes through
-- (wrap adds a position to a string, as Lua's does)
add("async", function(...) return loom.async(bodies[rng(#bodies)])(...) end)
add("wrap", function(...) return coroutine.wrap(bodies[rng(#bodies)])(...) end)
targets[#targets].body_errors = true
for _, sub in ipairs(SUBMODULES) do
  local ok, m = pcall(function() return loom[sub] end)
  if ok and type(m) == "table" then
    local names = {}
    for k, v in pairs(m) do
      if type(v) == "function" then names[#names + 1] = k end
    end
    table.sort(names)
    for _, k in ipairs(names) do add(k, m[k]) end
  end
end

-- Lua's own messages, which loom's coroutine library keeps as they are
local lua_messages = {
  "attempt to yield from outside a coroutine",
  "cannot resume dead coroutine", "cannot resume non-suspended coroutine",
  "attempt to yield across a C%-call boundary", "C stack overflow",
}

-- A caller whose local is named as the function, so errors raised with
-- luaL_argerror name it (as they do when called by name in a script).
local callers = {}
local function caller(target)
  local c = callers[target]
  if not c then
    c = assert(load(("local %s = ... return function(...) return %s(...) end")
      :format(target.name, target.name)))(target.fn)
    callers[target] = c
  end
  return c
end

local stats = { calls = 0, ok = 0, named = 0, passed_on = 0, lua = 0,
                reported = 0 }
local bad = {}

local function check(target, ok, err)
  stats.calls = stats.calls + 1
  if ok then stats.ok = stats.ok + 1 return end
  if hostile_error(err) then stats.passed_on = stats.passed_on + 1 return end
  if type(err) == "string" and err:find("spec/fuzz_spec.lua:", 1, true) then
    stats.passed_on = stats.passed_on + 1  -- raised by the fuzz's own code
    return
  end
  if type(err) == "table" and getmetatable(err) then  -- an error value
    local ok, text = pcall(tostring, err)
    if ok and type(text) == "string" and text:find(target.name, 1, true) then
      stats.named = stats.named + 1
      return
    end
  end
  if type(err) == "string" then
    if target.body_errors and err:find("^[^:]+:%d+: ") then
      stats.passed_on = stats.passed_on + 1
      return
    end
    if err:find(target.name, 1, true) then
      stats.named = stats.named + 1
      return
    end
    for _, m in ipairs(lua_messages) do
      if err:find(m) then stats.lua = stats.lua + 1 return end
    end
  end
  if #bad < 20 then
    bad[#bad + 1] = ("%s: %s"):format(target.name, tostring(err))
  end
end

local finalized = {}  -- results of calls made from __gc handlers

-- Where the call is made from, inside its own task.
local contexts = {
  function(call) return call() end,
  function(call)  -- in a user coroutine (which the call may yield)
    local co = coroutine.create(call)
    local r = table.pack(coroutine.resume(co))
    if coroutine.status(co) == "suspended" then return true end
    return table.unpack(r, 2, r.n)
  end,
  function(call, target)  -- in a __gc handler (where no wait is possible),
    -- run when the batch ends and collects
    setmetatable({}, { __gc = function()
      finalized[#finalized + 1] = { target, table.pack(call()) }
    end })
    return true
  end,
  function(call)  -- in a __close handler
    local out
    do
      local _ <close> = setmetatable({}, { __close = function()
        out = table.pack(call()) end })
    end
    return table.unpack(out, 1, out.n)
  end,
  function(call)  -- after the task caught a cancellation
    pcall(loom.sleep, 1e9)  -- the batch's first cancel lands here
    return call()
  end,
}

local function one_call(target, context)
  local args = hostile_args()
  if target.self and rng(4) > 1 then
    table.insert(args, 1, target.self())
    args.n = args.n + 1
  end
  local call = function()
    return pcall(caller(target), table.unpack(args, 1, args.n))
  end
  local r = table.pack(context(call, target))
  return r
end

local function run_batch(target, n)
  local tasks = {}
  for i = 1, n do
    local context = contexts[rng(#contexts)]
    tasks[i] = loom.spawn(one_call, target, context)
  end
  loom.sleep(0)
  loom.sleep(0)
  -- cancel what still waits, again while some catch it and wait again
  for _ = 1, 10 do
    local waiting = 0
    for _, t in ipairs(tasks) do
      if not t:done() then
        t:cancel()
        waiting = waiting + 1
      end
    end
    if waiting == 0 then break end
    loom.sleep(0)
  end
  for _, t in ipairs(tasks) do
    if not t:done() then
      bad[#bad + 1] = target.name .. ": a call still waits after 10 cancels"
      t:cancel()
    end
  end
  for _, t in ipairs(tasks) do
    local ok, r = pcall(t.await, t)
    if ok and type(r) == "table" then
      check(target, r[1], r[2])
      for i = 2, r.n or 0 do
        if getmetatable(r[i]) == getmetatable(tasks[1]) then
          spawned[#spawned + 1] = r[i]
        end
      end
    elseif ok then
      check(target, true)
    else
      -- the call task itself ended by a cancel before or after its call
      check(target, loom.is_cancelled(r) or hostile_error(r), r)
    end
  end
  for _, t in ipairs(spawned) do t:cancel() end
  for _, t in ipairs(spawned) do pcall(t.await, t) end
  spawned = {}
  -- a task a call made and nobody can reach (loom.run's, gather's) may
  -- fail in its cleanup after its owner was cancelled: that is reported
  collectgarbage()
  collectgarbage()
  local made = {}
  for _, f in ipairs(finalized) do
    local r = f[2]
    check(f[1], r[1], r[2])
    for i = 2, r.n do
      if getmetatable(r[i]) == getmetatable(tasks[1]) then
        made[#made + 1] = r[i]
      end
    end
  end
  finalized = {}
  for _, t in ipairs(made) do t:cancel() end
  for _, t in ipairs(made) do pcall(t.await, t) end
  -- a failed future nobody retrieves is reported as a task is
  for _, f in ipairs(futures) do pcall(f.result, f) end
  futures = {}
  stats.reported = stats.reported + loom.report_unretrieved()
end

describe("fuzz", function()
  it(("calls every public function %d times with hostile arguments")
    :format(CALLS), function()
      local t0 = loom.now()
      local per = {}
      for _, target in ipairs(targets) do
        if os.getenv("LOOM_FUZZ_VERBOSE") then
          io.stderr:write(target.name, "\n")
        end
        local done = 0
        while done < CALLS do
          local n = math.min(BATCH, CALLS - done)
          run_batch(target, n)
          done = done + n
        end
        per[target.name] = (per[target.name] or 0) + done
      end
      collectgarbage()
      collectgarbage()
      print(("\nfuzz: %d calls of %d functions in %.1f s: %d returned, "
        .. "%d raised an error naming the function, %d passed on hostile "
        .. "code's error, %d gave Lua's own coroutine message; %d late "
        .. "failures of tasks the calls made were reported")
        :format(stats.calls, #targets, loom.now() - t0, stats.ok,
          stats.named, stats.passed_on, stats.lua, stats.reported))
      assert.same({}, bad)
      assert.is_true(#targets >= 30)
      for _, target in ipairs(targets) do
        assert.is_true(per[target.name] >= CALLS)
      end
      assert.is_true(stats.calls >= CALLS * #targets)
    end)
end)
