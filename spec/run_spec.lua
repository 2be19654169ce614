-- loom.run: module mode (stock lua5.4 + loom.so) and nested inside loom.
local it = require("spec.support.task").it
local cli = require "spec.support.cli"
local loom = require "loom"

local function module_mode()
  if cli.SANITIZE then pending("loom.so is sanitized: lua5.4 cannot load it") end
end

-- Runs src under lua5.4 with loom.so; checks stderr is empty and exit 0
-- unless told otherwise; returns stdout.
local function lua(src)
  local out, err, code = cli.module(src)
  assert.equal("", err)
  assert.equal(0, code)
  return out
end

describe("module mode (lua5.4 + require 'loom')", function()
  it("require returns the module, once, and sets no globals", function()
    module_mode()
    assert.equal("true\ttrue\tnil\tnil\tnil\tnil\n", lua([[
      local loom = require "loom"
      print(require("loom") == loom, package.loaded.loom == loom,
        rawget(_G, "loom"), rawget(_G, "sleep"), rawget(_G, "spawn"),
        rawget(_G, "gather"))
    ]]))
  end)

  it("has the whole API", function()
    module_mode()
    assert.equal("ok\n", lua([[
      local loom = require "loom"
      for _, name in ipairs({"sleep", "create_task", "spawn", "await",
          "async", "gather", "future", "run", "now", "is_cancelled",
          "report_unretrieved"}) do
        assert(type(loom[name]) == "function", name)
      end
      assert(type(loom.Cancelled) == "table")
      assert(loom.version == "0.1.0")
      assert(loom.json.encode({1}) == "[1]")
      print("ok")
    ]]))
  end)

  it("loom.run runs fn with its arguments and returns its results", function()
    module_mode()
    assert.equal("3\tr\tnil\t3\n", lua([[
      local loom = require "loom"
      local r = table.pack(loom.run(function(a, b)
        loom.sleep(0.01)
        return a + b, "r", nil
      end, 1, 2))
      print(r[1], r[2], r[3], r.n)
    ]]))
  end)

  it("loom.run raises the function's error unchanged", function()
    module_mode()
    local out, err, code, file = cli.module([[
      local loom = require "loom"
      local e = {}
      local ok, got = pcall(loom.run, function() loom.sleep(0.01) error(e) end)
      print(ok, rawequal(got, e))
      print(pcall(loom.run, function() error("str") end))
    ]])
    assert.equal("", err)
    assert.equal(0, code)
    assert.equal("false\ttrue\nfalse\t" .. file .. ":5: str\n", out)
  end)

  it("loom.run waits for spawned tasks nobody awaits", function()
    module_mode()
    assert.equal("main returned\nlate task\nrun returned x\n", lua([[
      local loom = require "loom"
      local r = loom.run(function()
        loom.spawn(function() loom.sleep(0.05) print("late task") end)
        print("main returned")
        return "x"
      end)
      print("run returned " .. r)
    ]]))
  end)

  it("gather runs concurrently under lua5.4 too", function()
    module_mode()
    local out = lua([[
      local loom = require "loom"
      local t0 = loom.now()
      print(loom.run(function()
        return loom.gather(function() loom.sleep(0.2) return 1 end,
                           function() loom.sleep(0.2) return 2 end,
                           function() loom.sleep(0.2) return 3 end)
      end))
      print(loom.now() - t0 < 0.5)
    ]])
    assert.equal("1\t2\t3\ntrue\n", out)
  end)

  it("tasks spawned before run start when run drives the loop", function()
    module_mode()
    assert.equal("pending\tpending\nearly\t2\tdone\n", lua([[
      local loom = require "loom"
      local t = loom.spawn(function(x) return "early", x end, 2)
      print(t:status(), (tostring(t):match("%((%a+)%)")))
      local a, b = loom.run(function() return t:await() end)
      print(a, b, t:status())
    ]]))
  end)

  it("run can be called again after it returned or failed", function()
    module_mode()
    assert.equal("1\tfalse\t2\n", lua([[
      local loom = require "loom"
      local a = loom.run(function() loom.sleep(0.01) return 1 end)
      local ok = pcall(loom.run, function() error("x") end)
      local b = loom.run(function() loom.sleep(0.01) return 2 end)
      print(a, ok, b)
    ]]))
  end)

  it("a deadlock is an error naming what the main task waits on", function()
    module_mode()
    assert.matches(
      "^false\trun: deadlock: the main task waits on a future at [^\n]+:2, "
      .. "and nothing left to run can wake it\n$", lua([[
      local loom = require "loom"
      print(pcall(loom.run, function() loom.future():await() end))
    ]]))
  end)

  it("a deadlock on a task is reported as such", function()
    module_mode()
    assert.matches(
      "^false\trun: deadlock: the main task waits on a task %(spawned at "
      .. "[^\n]+:4%) at [^\n]+:5, and nothing left to run can wake it\n"
      .. "  also waiting: task %(spawned at [^\n]+:4%) waits on a future at "
      .. "[^\n]+:4\n$",
      lua([[
      local loom = require "loom"
      print(pcall(loom.run, function()
        local f = loom.future()
        local t = loom.spawn(function() return f:await() end)
        return t:await()
      end))
    ]]))
  end)

  it("unretrieved failures are reported on stderr and make run fail",
    function()
      module_mode()
      local out, err, code, file = cli.module([[
        local loom = require "loom"
        print(pcall(loom.run, function()
          loom.spawn(function() error("lost") end)
          loom.sleep(0.01)
          return "ignored"
        end))
      ]])
      assert.equal(0, code)
      assert.equal("false\trun: 1 task(s) failed and nobody retrieved the "
        .. "error (reported above)\n", out)
      assert.equal("loom: error in a task nobody awaited: " .. file
        .. ":3: lost\nstack traceback:\n\t[C]: in function 'error'\n\t"
        .. file .. ":3: in function <" .. file .. ":3>\n(task spawned at "
        .. file .. ":3)\n", err)
    end)

  it("suspending outside loom.run says to use loom.run", function()
    module_mode()
    assert.equal(
      "false\tsleep: not inside a task (wrap the code in loom.run(fn))\n"
      .. "false\tawait: not inside a task (wrap the code in loom.run(fn))\n"
      .. "false\tawait: not inside a task (wrap the code in loom.run(fn))\n"
      .. "false\tgather: not inside a task (wrap the code in loom.run(fn))\n",
      lua([[
      local loom = require "loom"
      local f = loom.future()
      local t = loom.spawn(function() end)
      print(pcall(loom.sleep, 1))
      print(pcall(f.await, f))
      print(pcall(t.await, t))
      print(pcall(loom.gather, function() end))
    ]]))
  end)

  it("await of finished things works outside a task", function()
    module_mode()
    assert.equal("v\t7\t1\n", lua([[
      local loom = require "loom"
      local f = loom.future()
      f:set("v")
      local t = loom.spawn(function() return 7 end)
      loom.run(function() end)
      print(loom.await(f), t:await(), loom.await(1))
    ]]))
  end)

  it("loom.run checks its argument", function()
    module_mode()
    assert.equal(
      "false\tbad argument #1 to 'run' (function expected, got number)\n",
      lua([[
      local loom = require "loom"
      print(pcall(function() local x = loom.run(5) return x end))
    ]]):gsub("\t[^\t]-:%d+: ", "\t"))
  end)

  it("os.exit inside loom.run exits with that code", function()
    module_mode()
    local out, err, code = cli.module([[
      local loom = require "loom"
      loom.run(function()
        loom.spawn(function() loom.sleep(0.01) os.exit(4) end)
        loom.sleep(1)
        print("not reached")
      end)
      print("not reached either")
    ]])
    assert.equal("", out)
    assert.equal("", err)
    assert.equal(4, code)
  end)

  it("coroutines behave as Lua's outside run and at a task's top level",
    function()
      module_mode()
      assert.equal("true\tfalse\ntrue\tfalse\nfalse\tattempt to yield from outside a coroutine\n", lua([[
        local loom = require "loom"
        print(select(2, coroutine.running()), coroutine.isyieldable())
        loom.run(function()
          print(select(2, coroutine.running()), coroutine.isyieldable())
          print(pcall(coroutine.yield))
        end)
      ]]))
    end)

  it("a generator that sleeps works under lua5.4", function()
    module_mode()
    assert.equal("1\t2\t3\n", lua([[
      local loom = require "loom"
      loom.run(function()
        local gen = coroutine.wrap(function()
          for i = 1, 3 do loom.sleep(0.01) coroutine.yield(i) end
        end)
        print(gen(), gen(), gen())
      end)
    ]]))
  end)
end)

describe("loom.run inside a running loom", function()
  it("spawns fn with its arguments and awaits it", function()
    local r = table.pack(loom.run(function(a, b)
      loom.sleep(0.01)
      return a * b, "x"
    end, 6, 7))
    assert.equal(2, r.n)
    assert.same({ 42, "x" }, { r[1], r[2] })
  end)

  it("raises fn's error unchanged", function()
    local e = {}
    local ok, err = pcall(loom.run, function() loom.sleep(0.01); error(e) end)
    assert.is_false(ok)
    assert.is_true(rawequal(e, err))
  end)

  it("does not block the other tasks (it never nests the loop)", function()
    local log = {}
    local other = loom.spawn(function()
      for i = 1, 3 do
        log[#log + 1] = "other" .. i
        loom.sleep(0.04)
      end
    end)
    loom.run(function()
      loom.sleep(0.06)
      log[#log + 1] = "run"
    end)
    other:await()
    assert.same({ "other1", "other2", "run", "other3" }, log)
  end)

  it("nests: run inside run inside a task", function()
    local r = loom.spawn(function()
      return loom.run(function()
        return loom.run(function() loom.sleep(0.01); return "deep" end)
      end)
    end):await()
    assert.equal("deep", r)
  end)

  it("in a coroutine of lua5.4's, runs its tasks as anywhere else", function()
    module_mode()
    assert.equal("true\tok\n", lua([[
      local loom = require "loom"
      print(coroutine.resume(coroutine.create(function()
        return loom.run(function() loom.sleep(0.01); return "ok" end)
      end)))
    ]]))
  end)

  it("a wait in a coroutine resumed by another resume fails clearly", function()
    module_mode()
    assert.equal("false\tsleep: cannot wait here: in a coroutine that loom's "
      .. "coroutine.resume did not resume\tfine\n", lua([[
      local resume = coroutine.resume  -- Lua's own, kept before loom
      local loom = require "loom"
      loom.run(function()
        local co = coroutine.create(function() loom.sleep(0.05) end)
        local ok, err = resume(co)
        loom.sleep(0.1)
        print(ok, (err:gsub("^.-:%d+: ", "")), "fine")
      end)
    ]]))
  end)

  it("a finalizer that runs after the runtime closed gets an error", function()
    module_mode()
    assert.equal("false\tloom: the runtime is closed\n", lua([[
      local keep = setmetatable({}, {__gc = function()
        print(pcall(loom.spawn, print))
      end})
      loom = require "loom"
    ]]))
  end)

  it("checks its argument", function()
    local ok, err = pcall(function() loom.run(nil) end)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'run' %(function expected, got nil%)$", err)
  end)
end)
