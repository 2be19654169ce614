-- loom.signal: wait, on, subscriptions, errors; and Ctrl-C in the loom
-- command: the first cancels the main task (its cleanup runs), the second
-- ends the process at once, a script waiting for SIGINT takes it instead.
local it = require("spec.support.task").it
local error_of = require("spec.support.task").error_of
local cli = require "spec.support.cli"
local loom = require "loom"
local signal = loom.signal
local raise = require("loom.signal.core").raise
local io_ = require "loom.io"

describe("loom.signal", function()
  after_each(cli.cleanup)

  it("wait() suspends until the signal comes, and gives its name", function()
    spawn(function() sleep(0.02) raise("SIGUSR1") end)
    assert.equal("SIGUSR1", signal.wait("SIGUSR1"))
    spawn(function() sleep(0.02) raise("USR2") end)
    assert.equal("SIGUSR2", signal.wait("USR2"))
  end)

  it("on() runs the handler as a task each time, until closed", function()
    local got = {}
    local sub = signal.on("SIGUSR1", function(name) got[#got + 1] = name end)
    assert.matches("^loom.Subscription: SIGUSR1$", tostring(sub))
    raise("SIGUSR1")
    sleep(0.02)
    raise("SIGUSR1")
    sleep(0.02)
    assert.same({ "SIGUSR1", "SIGUSR1" }, got)
    sub:close()
    sub:close()
    assert.matches("%(closed%)$", tostring(sub))
    local other = signal.on("SIGUSR1", function() end)  -- keeps it caught
    raise("SIGUSR1")
    sleep(0.02)
    assert.equal(2, #got)
    other:close()
  end)

  it("a subscription counts what came while nobody waited", function()
    local sub <close> = signal.subscribe("SIGUSR2")
    raise("SIGUSR2")
    raise("SIGUSR2")
    sleep(0.02)
    assert.equal("SIGUSR2", sub:wait())
    assert.equal("SIGUSR2", sub:wait())
    local t = spawn(sub.wait, sub)
    sleep(0.01)
    assert.equal("wait: another task waits on this subscription (EBUSY)",
      tostring(error_of(sub.wait, sub)))
    sub:close()
    assert.is_nil(t:await())
    assert.is_nil(sub:wait())
  end)

  it("a cancelled wait lets go; the handle closes with the last", function()
    local before = io_.stats().handles
    local t = spawn(signal.wait, "SIGHUP")
    sleep(0.01)
    assert.equal(before + 1, io_.stats().handles)
    t:cancel()
    assert.is_true(loom.is_cancelled(select(2, pcall(t.await, t))))
    sleep(0.01)
    assert.equal(before, io_.stats().handles)
  end)

  it("SIGKILL cannot be caught, nor a fault waited for", function()
    local err = error_of(signal.wait, "SIGKILL")
    assert.is_true(io_.is_error(err))
    assert.equal("subscribe: SIGKILL: this signal cannot be caught (EINVAL)",
      tostring(err))
    assert.equal("subscribe: SIGSEGV: a fault signal cannot be waited for "
      .. "(EINVAL)", tostring(error_of(signal.subscribe, "SIGSEGV")))
  end)

  it("names itself in bad arguments", function()
    assert.equal("bad argument #1 to 'wait' (signal name expected, got no "
      .. "value)", error_of(signal.wait):gsub("^.-: ", "", 1))
    assert.matches("bad argument #1 to 'wait' %(unknown signal 'SIGNOPE'%)",
      error_of(signal.wait, "SIGNOPE"))
    assert.matches("bad argument #1 to 'on' %(unknown signal 'x'%)",
      error_of(signal.on, "x", print))
    assert.matches("bad argument #2 to 'on' %(function expected, got nil%)",
      error_of(signal.on, "SIGUSR1", nil))
    assert.matches("bad argument #1 to '.*subscribe' %(unknown signal",
      error_of(signal.subscribe, "SIGFOO"))
    assert.matches("bad argument #1 to '.*subscribe' %(not a signal number%)",
      error_of(signal.subscribe, 0.5))
    assert.matches("bad argument #1 to '.*subscribe' %(not a signal number%)",
      error_of(signal.subscribe, 1e300))
  end)

  describe("in the loom command", function()
    -- Starts a loom script; returns its process, once it printed "ready".
    local function start(src)
      local file = cli.tmpfile(src, ".lua")
      local p = loom.process.spawn({ cli.LOOM, file }, { stdout = "pipe",
        stderr = "pipe" })
      assert.equal("ready", p.stdout:read_line())
      return p
    end

    local function finish(p)
      local out, err = p.stdout:read_all(), p.stderr:read_all()
      local code, sig = p:wait()
      return out, err, code, sig
    end

    it("a script waiting for a signal stays alive until it comes", function()
      local p = start([[
local sub = loom.signal.subscribe("SIGTERM")
print("ready") io.stdout:flush()
print(sub:wait())
]])
      sleep(0.05)
      assert.is_false(p:done())
      p:kill("SIGTERM")
      assert.same({ "SIGTERM\n", "", 0 }, { finish(p) })
    end)

    it("a listener does not keep the program alive", function()
      local out, err, code = cli.script([[
loom.signal.on("SIGUSR1", function() end)
print("ends")
]])
      assert.same({ "ends\n", "", 0 }, { out, err, code })
    end)

    it("Ctrl-C cancels the main task: its cleanup runs, exit 130", function()
      local p = start([[
local x <close> = setmetatable({}, { __close = function(_, e)
  print("cleanup", loom.is_cancelled(e))
end })
print("ready") io.stdout:flush()
sleep(30)
]])
      p:kill("SIGINT")
      local out, err, code = finish(p)
      assert.equal("cleanup\ttrue\n", out)
      assert.matches("interrupted\n$", err)
      assert.equal(130, code)
    end)

    it("Ctrl-C in a busy main task cancels it once: its cleanup may wait",
       function()
      -- the handler's hook interrupts the loop where it runs; the loop's
      -- own cancellation of the main task must not cut the cleanup short
      local p = start([[
local x <close> = setmetatable({}, { __close = function(_, e)
  print("cleanup", loom.is_cancelled(e)) io.stdout:flush()
  sleep(0.1)
  print("cleanup done")
end })
print("ready") io.stdout:flush()
while true do end
]])
      p:kill("SIGINT")
      local out, err, code = finish(p)
      assert.equal("cleanup\ttrue\ncleanup done\n", out)
      assert.matches("interrupted\n$", err)
      assert.equal(130, code)
    end)

    it("a second Ctrl-C ends it at once, even in a busy loop", function()
      local p = start([[
local x <close> = setmetatable({}, { __close = function()
  print("cleanup starts") io.stdout:flush()
  sleep(30)
end })
print("ready") io.stdout:flush()
sleep(30)
]])
      p:kill("SIGINT")
      assert.equal("cleanup starts", p.stdout:read_line())
      p:kill("SIGINT")
      local _, _, code, sig = finish(p)
      assert.same({ 130, "SIGINT" }, { code, sig })
      -- the first cancels the busy loop where it runs; its cleanup is busy
      local busy = start([[
local x <close> = setmetatable({}, { __close = function()
  print("cleanup starts") io.stdout:flush()
  while true do end
end })
print("ready") io.stdout:flush()
while true do end
]])
      busy:kill("SIGINT")
      assert.equal("cleanup starts", busy.stdout:read_line())
      busy:kill("SIGINT")
      assert.same({ 130, "SIGINT" }, { select(3, finish(busy)) })
    end)

    it("the first Ctrl-C cancels Lua code that never waits, where it runs",
      function()
        local p = start([[
local x <close> = setmetatable({}, { __close = function(_, e)
  print("cleanup", tostring(e))
end })
print("ready") io.stdout:flush()
while true do end
]])
        p:kill("SIGINT")
        local out, err, code = finish(p)
        assert.equal("cleanup\tCancelled: interrupted\n", out)
        assert.matches("interrupted\n$", err)
        assert.equal(130, code)
    end)

    it("once the main task is done, Ctrl-C ends the program", function()
      local p = start([[
spawn(function() sleep(30) end)
print("ready") io.stdout:flush()
]])
      sleep(0.05)
      p:kill("SIGINT")
      assert.same({ 130, "SIGINT" }, { select(3, finish(p)) })
    end)

    it("a script waiting for SIGINT gets it instead", function()
      local p = start([[
local sub = loom.signal.subscribe("SIGINT")
print("ready") io.stdout:flush()
local got = sub:wait()
sub:close()
print("got", got)
io.stdout:flush()
sleep(30)
]])
      p:kill("SIGINT")
      assert.equal("got\tSIGINT", p.stdout:read_line())
      -- its subscription is over: Ctrl-C cancels the main task again
      p:kill("SIGINT")
      local out, err, code = finish(p)
      assert.same({ "", 130 }, { out, code })
      assert.matches("interrupted\n$", err)
    end)
  end)
end)
