-- Fuzz of the toolkit: every function and method of timeouts, groups,
-- wait/race/as_completed/settle, loom.sync and loom.debug called with
-- hostile arguments (nil, wrong types, NaN, infinities, huge and negative
-- numbers, tables whose metamethods raise or yield, tasks and futures in
-- every state) from a task, a coroutine, a __close and a __gc handler.
-- Each call must return or raise an error that names the function, or
-- pass on unchanged an error hostile code raised (or a Cancelled,
-- Timeout or GroupError). Deterministic: one seed, fixed counts.
local it = require("spec.support.task").it
local loom = require "loom"

local CALLS = tonumber(os.getenv("LOOM_FUZZ_CALLS")) or 600
local BATCH = 200
math.randomseed(20261204)
local rng = math.random

local HOSTILE = setmetatable({}, { __tostring = function() return "HOSTILE" end })
local function raise() error(HOSTILE) end

local function meta(event, how)
  return setmetatable({}, { [event] = how == "raise" and raise
    or how == "yield" and function() coroutine.yield() end
    or how == "sleep" and function() loom.sleep(0) end
    or function() end })
end
local events = { "__index", "__newindex", "__tostring", "__close", "__len",
                 "__call", "__eq", "__lt", "__concat", "__name" }

local bodies = {
  function() end,
  function(...) return ... end,
  function() error("plain failure", 0) end,
  function() raise() end,
  function() loom.sleep(0) return "slept" end,
  function() loom.sleep(1e9) end,
  function() return loom.future():await() end,
}

-- bodies that never fail, for callables a call may spawn and drop
local quiet = { bodies[1], bodies[2], bodies[5], bodies[6], bodies[7] }

local made = {}  -- tasks the fuzz made, cancelled and awaited per batch
local function some_task()
  local t = loom.spawn(bodies[rng(#bodies)])
  made[#made + 1] = t
  if rng(3) == 1 then t:cancel() end
  return t
end
local function some_future()
  local f = loom.future()
  if rng(3) == 1 then f:set(1) end
  return f
end

local gens = {
  function() return nil end, function() return true end,
  function() return 0 end, function() return -1 end, function() return 1 end,
  function() return 0.001 end, function() return 0 / 0 end,
  function() return math.huge end, function() return -math.huge end,
  function() return math.maxinteger end, function() return math.mininteger end,
  function() return 2 ^ 40 end, function() return "" end,
  function() return "first" end, function() return "all" end,
  function() return {} end,
  function() return { return_when = "first", timeout = rng(0, 2) / 100 } end,
  function() return { timeout = -1 } end,
  function() return { return_when = meta("__tostring", "raise") } end,
  function() return { quiet[1], quiet[2] } end,
  function() return { some_task(), some_task() } end,
  function() return meta(events[rng(#events)], "raise") end,
  function() return meta(events[rng(#events)], "yield") end,
  function() return meta(events[rng(#events)], "sleep") end,
  function() return quiet[rng(#quiet)] end,
  function() return some_task() end,
  function() return some_future() end,
  function() return coroutine.create(bodies[1]) end,
  function() return loom.Queue() end,
  function() return HOSTILE end,
  function() return setmetatable({}, loom.Cancelled) end,
}
local function hostile_args()
  local args = { n = rng(0, 4) }
  for i = 1, args.n do args[i] = gens[rng(#gens)]() end
  return args
end

local targets = {}
local ONLY = os.getenv("LOOM_FUZZ_ONLY")  -- one name, to chase a problem
local function add(name, fn)
  if ONLY == nil or ONLY == name then
    targets[#targets + 1] = { name = name, fn = fn }
  end
end
for _, k in ipairs { "timeout", "wait_for", "is_timeout", "group", "scope",
                     "wait", "race", "as_completed", "settle", "Queue",
                     "Event", "Semaphore", "Lock" } do
  add(k, loom[k])
end
for _, k in ipairs { "enable", "pending", "tasks", "enabled" } do
  add(k, loom.debug[k])
end
-- methods: each bound to a fresh object
local function bound(make, m) return function(...) return make()[m](...) end end
for _, m in ipairs { "get", "put", "try_get", "try_put", "close",
                     "is_closed", "iter" } do
  add(m, bound(function() local q = loom.Queue(rng(0, 2))
    if rng(2) == 1 then q:put(1) end return q end, m))
end
for _, m in ipairs { "wait", "set", "clear", "is_set" } do
  add(m, bound(loom.Event, m))
end
for _, m in ipairs { "acquire", "release", "locked" } do
  add(m, bound(function() return rng(2) == 1 and loom.Lock()
    or loom.Semaphore(rng(0, 2)) end, m))
end
add("spawn", function(...)
  local g <close> = loom.group()  -- closed: a child's failure is raised
  return g.spawn(g, ...)
end)
add("spawn", function(...) return loom.group().spawn(...) end)
add("cancel", function(...) return loom.group().cancel(...) end)
add("await", function(...) local t = some_task() return t.await(t, ...) end)
add("await", function(...) local f = some_future() return f.await(f, ...) end)
add("as_completed", function(...)
  for _ in loom.as_completed({ some_task() }, ...) do end
end)

local lua_messages = {
  "attempt to yield from outside a coroutine",
  "attempt to yield across a C%-call boundary",
}

local function passed_on(e)
  return e == HOSTILE or e == "plain failure" or e == nil
    or loom.is_cancelled(e) or loom.is_timeout(e)
    or getmetatable(e) == loom.GroupError
    or (type(e) == "table" and getmetatable(e)
        and getmetatable(e).__tostring == raise)
end

local bad, stats = {}, { calls = 0 }
local function check(target, ok, e)
  stats.calls = stats.calls + 1
  if ok or passed_on(e) then return end
  if type(e) == "string" then
    if e:find(target.name, 1, true) then return end
    if e:find("toolkit_fuzz_spec.lua:", 1, true) then return end
    for _, m in ipairs(lua_messages) do if e:find(m) then return end end
  end
  if #bad < 20 then bad[#bad + 1] = target.name .. ": " .. tostring(e) end
end

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

local finalized = {}
local contexts = {
  function(call) return call() end,
  function(call)
    local co = coroutine.create(call)
    local r = table.pack(coroutine.resume(co))
    if coroutine.status(co) == "suspended" then return true end
    return table.unpack(r, 2, r.n)
  end,
  function(call)
    local out
    do
      local _ <close> = setmetatable({}, { __close = function()
        out = table.pack(call()) end })
    end
    return table.unpack(out, 1, out.n)
  end,
  function(call, target)
    setmetatable({}, { __gc = function()
      finalized[#finalized + 1] = { target, table.pack(call()) }
    end })
    return true
  end,
}

local keep = {}  -- the tasks there were before (busted's, this spec's)

local function batch(target, n)
  local tasks = {}
  for i = 1, n do
    local args = hostile_args()
    local context = contexts[rng(#contexts)]
    tasks[i] = loom.spawn(function()
      return table.pack(context(function()
        return pcall(caller(target), table.unpack(args, 1, args.n))
      end, target))
    end)
  end
  loom.sleep(0)
  for _ = 1, 10 do
    local waiting = 0
    for _, t in ipairs(tasks) do
      if not t:done() then t:cancel() waiting = waiting + 1 end
    end
    if waiting == 0 then break end
    loom.sleep(0.001)
  end
  for _, t in ipairs(tasks) do
    local ok, r = pcall(t.await, t)
    if ok and type(r) == "table" then check(target, r[1], r[2])
    elseif not ok then check(target, passed_on(r), r) end
  end
  collectgarbage()
  collectgarbage()
  for _, f in ipairs(finalized) do check(f[1], f[2][1], f[2][2]) end
  finalized = {}
  for _, t in ipairs(made) do t:cancel() end
  for _, t in ipairs(made) do pcall(t.await, t) end
  made = {}
  -- tasks the calls spawned and nobody holds (wait_for's, a group's ...):
  -- cancel them too, and retrieve how they ended
  for _ = 1, 10 do
    local left = {}
    for _, t in ipairs(loom.debug.tasks()) do
      if not keep[t] then left[#left + 1] = t end
    end
    if #left == 0 then break end
    for _, t in ipairs(left) do t:cancel() end
    for _, t in ipairs(left) do pcall(t.await, t) end
  end
  loom.debug.disable()
  loom.report_unretrieved()
end

describe("toolkit fuzz", function()
  it(("calls each toolkit function %d times with hostile arguments")
    :format(CALLS), function()
      for _, t in ipairs(loom.debug.tasks()) do keep[t] = true end
      for _, target in ipairs(targets) do
        if os.getenv("LOOM_FUZZ_VERBOSE") then
          io.stderr:write("fuzz: ", target.name, "\n")
        end
        local done = 0
        while done < CALLS do
          local n = math.min(BATCH, CALLS - done)
          batch(target, n)
          done = done + n
        end
      end
      collectgarbage()
      collectgarbage()
      loom.report_unretrieved()
      assert.same({}, bad)
      assert.is_true(stats.calls >= CALLS * #targets)
    end)
end)
