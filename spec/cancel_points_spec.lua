-- Cancellation at every wait point, as one table: each way a task can
-- wait, each way it can be cancelled there. In every case the task's
-- cleanup runs exactly once, the task ends "cancelled", whoever awaits it
-- gets a Cancelled error, and whatever it waited on is let go of.
local it = require("spec.support.task").it
local cli = require "spec.support.cli"

-- Each wait gets 'env' (a table shared with the checks) and waits.
local waits = {
  sleep = function() sleep(10) end,
  ["await a task"] = function(env)
    env.other = spawn(function() sleep(10) return "other" end)
    env.other:await()
  end,
  ["await a future"] = function(env)
    env.future = loom.future()
    env.future:await()
  end,
  gather = function(env)
    env.children = { spawn(function() sleep(10) end),
                     spawn(function() sleep(10) end) }
    gather(env.children[1], env.children[2], function() sleep(10) end)
  end,
  ["gather of a table"] = function()
    gather({ function() sleep(10) end, function() sleep(10) end })
  end,
  ["inside a user coroutine"] = function()
    local gen = coroutine.wrap(function() sleep(10) coroutine.yield(1) end)
    gen()
  end,
  ["inside nested coroutines"] = function()
    local outer = coroutine.wrap(function()
      local inner = coroutine.wrap(function() loom.future():await() end)
      inner()
    end)
    outer()
  end,
  ["sleep(0)"] = function() while true do sleep(0) end end,
  ["run inside a task"] = function(env)
    env.run_unwound = false
    loom.run(function()
      local g <close> = setmetatable({}, { __close = function()
        env.run_unwound = true end })
      sleep(10)
    end)
  end,
  ["<close> of a task"] = function()
    local t <close> = spawn(function() sleep(10) end)
    sleep(10)
  end,
  -- the toolkit's wait points
  ["Queue get"] = function() loom.Queue():get() end,
  ["Queue put, full"] = function()
    local q = loom.Queue(1)
    q:put(1)
    q:put(2)
  end,
  ["Queue iter"] = function() for _ in loom.Queue():iter() do end end,
  ["Event wait"] = function() loom.Event():wait() end,
  ["Lock acquire"] = function()
    local l = loom.Lock()
    local _ = l:acquire()
    l:acquire()
  end,
  ["Semaphore acquire"] = function() loom.Semaphore(0):acquire() end,
  ["inside loom.timeout"] = function() loom.timeout(10, sleep, 10) end,
  ["wait_for"] = function(env)
    env.other = spawn(function() sleep(10) end)
    loom.wait_for(env.other, 10)
  end,
  ["await(seconds) of a future"] = function()
    loom.future():await(10)
  end,
  ["a group's body"] = function(env)
    loom.scope(function(g)
      env.children = { g:spawn(sleep, 10) }
      sleep(10)
    end)
  end,
  ["a group's close"] = function(env)
    local g <close> = loom.group()
    env.children = { g:spawn(sleep, 10), g:spawn(sleep, 10) }
  end,
  ["loom.wait"] = function(env)
    env.other = spawn(function() sleep(10) end)
    loom.wait({ env.other })
  end,
  race = function(env)
    env.children = { spawn(sleep, 10), spawn(sleep, 10) }
    loom.race(env.children)
  end,
  settle = function(env)
    env.children = { spawn(sleep, 10) }
    loom.settle(env.children[1])
  end,
  as_completed = function(env)
    env.other = spawn(function() sleep(10) end)
    for _ in loom.as_completed({ env.other }) do end
  end,
}

-- Each way to cancel gets the task and the env; it returns once the
-- cancellation is requested.
local cancels = {
  ["cancel()"] = function(t) t:cancel() end,
  ["cancel() twice"] = function(t)
    assert.is_true(t:cancel())
    assert.is_true(t:cancel())
  end,
  ["cancel() from a __gc"] = function(t)
    setmetatable({}, { __gc = function() t:cancel() end })
    collectgarbage()
    collectgarbage()
  end,
  ["cancel() from a <close> handler"] = function(t)
    local c <close> = setmetatable({}, { __close = function() t:cancel() end })
  end,
  ["<close> of the Task"] = function(t)
    local _ <close> = t  -- cancels and waits for it to unwind
  end,
}

local function run_case(wait, cancel)
  local env, cleaned = {}, 0
  local t = spawn(function()
    local guard <close> = setmetatable({}, { __close = function(_, err)
      cleaned = cleaned + 1
      env.close_err = err
    end })
    wait(env)
  end)
  while t:status() == "pending" do sleep(0) end  -- it starts,
  sleep(0.01)                                    -- runs and waits
  assert.equal("running", t:status())
  cancel(t, env)
  local ok, err = pcall(t.await, t)
  assert.is_false(ok)
  assert.is_true(loom.is_cancelled(err))
  assert.equal("cancelled", t:status())
  assert.equal(1, cleaned)
  assert.is_true(loom.is_cancelled(env.close_err))
  sleep(0.01)
  assert.equal(1, cleaned)  -- not again, ever
  return env
end

describe("cancellation at every wait point", function()
  for wname, wait in pairs(waits) do
    for cname, cancel in pairs(cancels) do
      it(wname .. ", by " .. cname, function()
        local env = run_case(wait, cancel)
        if env.other then  -- the awaited task goes on, unharmed
          assert.equal("running", env.other:status())
          env.other:cancel()
        end
        if env.future then  -- the future can be set and awaited still
          env.future:set(1)
          assert.equal(1, env.future:await())
        end
        if env.run_unwound ~= nil then  -- so is the task loom.run made
          sleep(0.01)
          assert.is_true(env.run_unwound)
        end
        if env.children then  -- gather's children are cancelled too
          sleep(0)
          for _, c in ipairs(env.children) do
            assert.equal("cancelled", c:status())
          end
        end
      end)
    end
  end

  it("a task woken but not yet run, then cancelled, raises Cancelled",
    function()
      local f, cleaned = loom.future(), 0
      local t = spawn(function()
        local g <close> = setmetatable({}, { __close = function()
          cleaned = cleaned + 1 end })
        return f:await()
      end)
      sleep(0.01)
      f:set("value")   -- t is queued to run
      t:cancel()       -- before it ran
      assert.is_false(pcall(t.await, t))
      assert.equal("cancelled", t:status())
      assert.equal(1, cleaned)
    end)

  it("self-cancel: Cancelled at the next wait, or as the task ends",
    function()
      for _, goes_on_waiting in ipairs{ true, false } do
        local cleaned, t = 0, nil
        t = spawn(function()
          local g <close> = setmetatable({}, { __close = function()
            cleaned = cleaned + 1 end })
          t:cancel()
          if goes_on_waiting then sleep(10) end
          return "returned"
        end)
        assert.is_false(pcall(t.await, t))
        assert.equal("cancelled", t:status())
        assert.equal(1, cleaned)
      end
    end)

  it("a task cancelled before it starts never runs its body", function()
    local ran = false
    local t = spawn(function() ran = true end)
    t:cancel()
    assert.is_false(pcall(t.await, t))
    assert.is_false(ran)
    assert.equal("cancelled", t:status())
  end)

  it("a cleanup that awaits runs to its end while the task unwinds",
    function()
      local log = {}
      local t = spawn(function()
        local g <close> = setmetatable({}, { __close = function()
          sleep(0.01)
          log[#log + 1] = "cleaned after a sleep"
        end })
        sleep(10)
      end)
      sleep(0.01)
      t:cancel()
      assert.is_false(pcall(t.await, t))
      assert.same({ "cleaned after a sleep" }, log)
    end)
end)

describe("a script that cancels at every wait point", function()
  after_each(cli.cleanup)

  it("exits 0 with nothing on stderr", function()
    local out, err, code = cli.script([[
local ts = {
  spawn(function() sleep(10) end),
  spawn(function() loom.future():await() end),
  spawn(function() gather(function() sleep(10) end) end),
  spawn(function() coroutine.wrap(function() sleep(10) end)() end),
}
local inner = spawn(function() sleep(10) end)
ts[#ts + 1] = spawn(function() inner:await() end)
ts[#ts + 1] = spawn(function() loom.run(function() sleep(10) end) end)
sleep(0.01)
for _, t in ipairs(ts) do t:cancel() end
for _, t in ipairs(ts) do assert(not pcall(t.await, t)) end
print("all cancelled", inner:status())
inner:cancel()
]])
    assert.same({ "all cancelled\trunning\n", "", 0 }, { out, err, code })
  end)
end)
