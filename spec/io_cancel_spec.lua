-- Cancellation at every I/O wait point, as one table: each way an I/O
-- call can wait, each way it can be cancelled there. In every case the
-- task's cleanup runs exactly once, the task ends "cancelled", whoever
-- awaits it gets a Cancelled error, and what the call held is let go of:
-- loom.io.stats() comes back to where it was (handles closed once,
-- requests freed), and what it waited on still works afterwards.
local it = require("spec.support.task").it
local cli = require "spec.support.cli"
local loom = require "loom"
local io_ = require "loom.io"
local tcp, fs = loom.tcp, loom.fs

local function echo(s)
  while true do
    local d = s:read()
    if not d then return end
    s:write(d)
  end
end

-- Each wait: setup(env) makes what it needs (outside the task), wait(env)
-- waits in the task, after(env) checks it still works and closes it all.
local waits = {
  ["fs.read_file in the pool"] = {
    setup = function(env)
      env.dir = fs.tmpdir()
      env.fifo = env.dir .. "/fifo"
      os.execute("mkfifo " .. cli.quote(env.fifo))
    end,
    wait = function(env) fs.read_file(env.fifo) end,
    after = function(env)
      fs.open(env.fifo, "w"):close()  -- unblocks the orphaned job
    end,
  },
  ["File:read"] = {
    setup = function(env)
      env.dir = fs.tmpdir()
      env.fifo = env.dir .. "/fifo"
      os.execute("mkfifo " .. cli.quote(env.fifo))
      env.writer = spawn(function()
        local w <close> = fs.open(env.fifo, "w")
        env.release = loom.future()
        env.release:await()
        w:write("late\n")
      end)
      env.file = fs.open(env.fifo)
    end,
    wait = function(env) env.file:read("l") end,
    after = function(env)
      env.release:set()
      env.writer:await()
      assert.equal("late", env.file:read("l"))
      env.file:close()
    end,
  },
  ["stream:read"] = {
    setup = function(env)
      env.server = tcp.listen("127.0.0.1", 0, echo)
      env.c = tcp.connect("127.0.0.1", env.server.port)
    end,
    wait = function(env) env.c:read() end,
    after = function(env)
      env.c:write("still")
      assert.equal("still", env.c:read())
    end,
  },
  ["stream:read_line"] = {
    setup = function(env)
      env.server = tcp.listen("127.0.0.1", 0, echo)
      env.c = tcp.connect("127.0.0.1", env.server.port)
      env.c:write("no newline yet")
    end,
    wait = function(env) env.c:read_line() end,
    after = function(env)
      env.c:write("\n")
      assert.equal("no newline yet", env.c:read_line())
    end,
  },
  ["stream:read_all"] = {
    setup = function(env)
      env.server = tcp.listen("127.0.0.1", 0, echo)
      env.c = tcp.connect("127.0.0.1", env.server.port)
    end,
    wait = function(env) env.c:read_all() end,
    after = function(env)
      env.c:close_write()
      assert.equal("", env.c:read_all())
    end,
  },
  ["stream:write (backpressure)"] = {
    setup = function(env)
      env.release = loom.future()
      env.server = tcp.listen("127.0.0.1", 0, function(s)
        env.release:await()
        s:read_all()
      end)
      env.c = tcp.connect("127.0.0.1", env.server.port)
    end,
    wait = function(env)
      local chunk = ("w"):rep(1 << 20)
      while true do env.c:write(chunk) end
    end,
    after = function(env)
      env.release:set()
      env.c:close()
    end,
  },
  ["tcp.connect (no answer)"] = {
    setup = function(env)
      env.server = tcp.listen("127.0.0.1", 0, nil, { backlog = 0 })
      env.held = {}
      for _ = 1, 8 do
        local ok, c = pcall(tcp.connect, "127.0.0.1", env.server.port,
          { timeout = 0.1 })
        if not ok then break end
        env.held[#env.held + 1] = c
      end
    end,
    wait = function(env) tcp.connect("127.0.0.1", env.server.port) end,
    after = function(env)
      for _, c in ipairs(env.held) do c:close() end
    end,
  },
  ["server:accept"] = {
    setup = function(env) env.server = tcp.listen("127.0.0.1", 0) end,
    wait = function(env) env.server:accept() end,
    after = function(env)
      local c <close> = tcp.connect("127.0.0.1", env.server.port)
      local s <close> = env.server:accept()
      assert.is_not_nil(s)
    end,
  },
  ["server:wait"] = {
    setup = function(env) env.server = tcp.listen("127.0.0.1", 0) end,
    wait = function(env) env.server:wait() end,
  },
  ["tcp.serve"] = {
    setup = function(env)
      local probe = tcp.listen("127.0.0.1", 0)
      env.port = probe.port
      probe:close()
    end,
    wait = function(env) tcp.serve("127.0.0.1", env.port, echo) end,
  },
  ["dns.resolve (queued in the pool)"] = {
    -- every thread of libuv's pool blocked on a FIFO: the lookup queues
    setup = function(env)
      env.dir = fs.tmpdir()
      env.blockers = {}
      for i = 1, tonumber(os.getenv("UV_THREADPOOL_SIZE") or 4) do
        local fifo = ("%s/fifo%d"):format(env.dir, i)
        os.execute("mkfifo " .. cli.quote(fifo))
        env.blockers[i] = { fifo = fifo, task = spawn(fs.read_file, fifo) }
      end
      sleep(0.02)
    end,
    wait = function() loom.dns.resolve("localhost") end,
    after = function(env)
      for _, b in ipairs(env.blockers) do
        local w = io.open(b.fifo, "w")  -- the reader is there: no wait
        w:close()
      end
      for _, b in ipairs(env.blockers) do assert.equal("", b.task:await()) end
      assert.is_true(#loom.dns.resolve("localhost") >= 1)
    end,
  },
  ["process.run"] = {
    wait = function() loom.process.run({ "sleep", "30" }) end,
  },
  ["process:wait"] = {
    setup = function(env)
      env.p = loom.process.spawn({ "sleep", "0.2" })
    end,
    wait = function(env) env.p:wait() end,
    after = function(env) assert.equal(0, env.p:wait()) end,
  },
  ["signal.wait"] = {
    wait = function() loom.signal.wait("SIGUSR2") end,
  },
  ["subscription:wait"] = {
    setup = function(env) env.sub = loom.signal.subscribe("SIGUSR2") end,
    wait = function(env) env.sub:wait() end,
    after = function(env)
      require("loom.signal.core").raise("SIGUSR2")
      assert.equal("SIGUSR2", env.sub:wait())
      env.sub:close()
    end,
  },
  ["to_thread (running)"] = {
    wait = function() loom.to_thread(function() while true do end end) end,
  },
}

local cancels = {
  ["cancel()"] = function(t) t:cancel() end,
  ["cancel() twice"] = function(t)
    assert.is_true(t:cancel())
    assert.is_true(t:cancel())
  end,
  ["<close> of the Task"] = function(t)
    local _ <close> = t  -- cancels and waits for it to unwind
  end,
}

local function settle(base)
  for _ = 1, 300 do
    local s = io_.stats()
    if s.handles <= base.handles and s.requests <= base.requests then
      return s
    end
    collectgarbage()
    sleep(0.01)
  end
  return io_.stats()
end

local function names(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

describe("cancelling an I/O wait", function()
  for _, wname in ipairs(names(waits)) do
    for _, cname in ipairs(names(cancels)) do
      it(("%s, with %s"):format(wname, cname), function()
        local w, env, cleaned = waits[wname], {}, 0
        local base = io_.stats()
        if w.setup then w.setup(env) end
        local t = spawn(function()
          local guard <close> = setmetatable({}, { __close = function(_, e)
            cleaned = cleaned + 1
            env.close_err = e
          end })
          w.wait(env)
        end)
        sleep(0.05)  -- it is waiting now
        assert.equal("running", t:status())
        cancels[cname](t)
        local ok, err = pcall(t.await, t)
        assert.is_false(ok)
        assert.is_true(loom.is_cancelled(err), tostring(err))
        assert.equal("cancelled", t:status())
        assert.equal(1, cleaned)
        assert.is_true(loom.is_cancelled(env.close_err))
        if w.after then w.after(env) end
        if env.server then env.server:close() end
        if env.c then env.c:close() end
        if env.dir then fs.remove(env.dir, { recursive = true }) end
        local s = settle(base)
        assert.equal(base.handles, s.handles, "handles")
        assert.equal(base.requests, s.requests, "requests")
        assert.equal(1, cleaned)
      end)
    end
  end
end)
