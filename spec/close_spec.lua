-- Closing the state with tasks unfinished (the end of a loom process, a
-- host's lua_close, lua5.4 exiting with loom.so loaded): each such task is
-- closed as coroutine.close would close it. Its pending <close> variables
-- run once, innermost first, with a nil error (or an inner one's error);
-- they cannot wait there (a loom function raises "loom: the runtime is
-- closed", and the last error is dropped); nothing else of the task runs.
local it = require("spec.support.task").it
local cli = require "spec.support.cli"

local run = cli.script_as_loom

describe("closing the state", function()
  it("runs the <close> variables of a task still waiting, innermost first",
    function()
      local out, err, code = run([[
        local function closer(name)
          return setmetatable({}, {__close = function(_, e)
            print(name .. " closed, error " .. tostring(e))
          end})
        end
        spawn(function()
          local outer <close> = closer("outer")
          local inner <close> = closer("inner")
          loom.future():await()
          print("never")
        end)
        sleep(0.01)
        print("main done")
      ]])
      assert.same({ "main done\ninner closed, error nil\n"
                    .. "outer closed, error nil\n", "", 0 },
                  { out, err, code })
    end)

  it("lets no <close> handler wait there", function()
    local out, err, code = run([[
      spawn(function()
        local c <close> = setmetatable({}, {__close = function()
          local ok, e = pcall(sleep, 0)
          print(ok, e)
          sleep(1)  -- raises: dropped, the others still run
          print("never")
        end})
        local d <close> = setmetatable({}, {__close = function()
          print("d closed")
        end})
        loom.future():await()
      end)
      sleep(0)
    ]])
    assert.same({ "d closed\nfalse\tloom: the runtime is closed\n", "", 0 },
                { out, err, code })
  end)

  it("hands an inner handler's error to the outer ones, as Lua does",
    function()
      local out, err, code = run([[
        spawn(function()
          local outer <close> = setmetatable({}, {__close = function(_, e)
            print("outer got " .. tostring(e))
          end})
          local inner <close> = setmetatable({}, {__close = function()
            error("inner failed", 0)
          end})
          loom.future():await()
        end)
        sleep(0)
      ]])
      assert.same({ "outer got inner failed\n", "", 0 }, { out, err, code })
    end)

  it("closes sleeping tasks and tasks in a gather on os.exit(code, true)",
    function()
      local out, err, code = run([[
        local function closer(name)
          return setmetatable({}, {__close = function() print(name) end})
        end
        spawn(function() local a <close> = closer("sleeper") sleep(100) end)
        spawn(function()
          local g <close> = closer("gatherer")
          gather(function() local c <close> = closer("child") sleep(100) end)
        end)
        sleep(0.01)
        os.exit(3, true)
      ]])
      assert.equal(3, code)
      assert.equal("", err)
      local seen = {}
      for line in out:gmatch("[^\n]+") do seen[#seen + 1] = line end
      table.sort(seen)
      assert.same({ "child", "gatherer", "sleeper" }, seen)
    end)

  it("lets go of worker threads and file jobs still in flight", function()
    -- each task waiting on I/O is detached: a job still queued or running
    -- is let go of (freed when it ends), one finished is freed at once
    local busy = [[
      local function busy()
        local x = 0
        for i = 1, 3e8 do x = x + i end
        return x
      end
    ]]
    local out, err, code = run(busy .. [[
      spawn(loom.to_thread, busy)
      spawn(loom.to_thread, busy)
      for _ = 1, 20 do spawn(loom.fs.read_file, "/etc/passwd") end
      sleep(0.05)
      print("main done")
    ]])
    assert.same({ "main done\n", "", 0 }, { out, err, code })
    out, err, code = run(busy .. [[
      spawn(function() sleep(0.05) os.exit(4, true) end)
      loom.to_thread(busy)
    ]])
    assert.same({ "", "", 4 }, { out, err, code })
  end)

  it("runs nothing for a task that never started", function()
    local out, err, code = run([[
      local f = loom.future()
      spawn(function() f:await() end)
      sleep(0)
      spawn(function() print("never started") end)
      os.exit(0, true)
    ]])
    assert.same({ "", "", 0 }, { out, err, code })
  end)

  it("does the same when lua5.4 exits with loom.so", function()
    if cli.SANITIZE then return end  -- a sanitized loom.so cannot load
    local out, err, code = cli.run{prog = "lua5.4", args = {"-e", [[
      local loom = require "loom"
      loom.run(function()
        loom.spawn(function()
          local c <close> = setmetatable({}, {__close = function()
            print("closed at exit") end})
          loom.future():await()
        end)
        loom.sleep(0.01)
      end)
    ]]}, env = {LUA_CPATH = cli.SO_DIR .. "/?.so"}}
    assert.same({ "closed at exit\n", "", 0 }, { out, err, code })
  end)
end)
