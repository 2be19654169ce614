-- loom.tcp and loom.Stream: connect, listen/serve, every read and write,
-- half-close, timeouts, errors (refused, reset, unknown host, a server
-- that never answers), backpressure, 100 concurrent clients, and
-- cancellation of each wait letting go of its handle once. Servers bind
-- 127.0.0.1 only and are closed by the spec that made them.
local it = require("spec.support.task").it
local error_of = require("spec.support.task").error_of
local loom = require "loom"
local tcp = loom.tcp
local io_ = require "loom.io"

local function assert_ioerror(err, code, op)
  assert.is_true(io_.is_error(err), tostring(err))
  assert.equal(code, err.code)
  assert.equal(op, err.op)
end

-- Waits (boundedly) for the I/O counts to come back to what they were.
local function settle(base)
  for _ = 1, 200 do
    local s = io_.stats()
    if s.handles == base.handles and s.requests == base.requests then
      return s
    end
    sleep(0.01)
    collectgarbage()
  end
  return io_.stats()
end

local function echo(stream)
  while true do
    local data = stream:read()
    if data == nil then return end
    stream:write(data)
  end
end

describe("loom.tcp", function()
  local base
  before_each(function() base = io_.stats() end)
  after_each(function()
    loom.run(function()
      local s = settle(base)
      if os.getenv("DEBUG_IO") then
        io.stderr:write(("\n[%d/%d -> %d/%d]\n"):format(base.handles,
          base.requests, s.handles, s.requests))
      end
      assert.equal(base.handles, s.handles)
      assert.equal(base.requests, s.requests)
    end)
  end)

  describe("connect and listen", function()
    it("a client talks to a server, each with a stream", function()
      local server <close> = tcp.listen("127.0.0.1", 0, echo)
      assert.equal("integer", math.type(server.port))
      assert.is_true(server.port > 0)
      assert.equal("127.0.0.1", server.host)
      assert.matches("^loom.Server: 0x%x+ %(tcp 127.0.0.1:%d+%)$",
        tostring(server))
      local c <close> = tcp.connect("127.0.0.1", server.port)
      assert.matches("^loom.Stream: 0x%x+ %(tcp 127.0.0.1:%d+%)$",
        tostring(c))
      c:write("ping")
      assert.equal("ping", c:read())
      local ip, port = c:remote_address()
      assert.same({ "127.0.0.1", server.port }, { ip, port })
      local lip, lport = c:local_address()
      assert.equal("127.0.0.1", lip)
      assert.equal("integer", math.type(lport))
    end)

    it("connects by name (localhost)", function()
      local server <close> = tcp.listen("127.0.0.1", 0, echo)
      local c <close> = tcp.connect("localhost", server.port,
        { family = "inet" })
      c:write("x")
      assert.equal("x", c:read())
    end)

    it("a refused connection is ECONNREFUSED with the address", function()
      local server = tcp.listen("127.0.0.1", 0)
      local port = server.port
      server:close()
      local err = error_of(tcp.connect, "127.0.0.1", port)
      assert_ioerror(err, "ECONNREFUSED", "connect")
      assert.equal("127.0.0.1:" .. port, err.address)
      assert.equal(("connect: 127.0.0.1:%d: connection refused "
        .. "(ECONNREFUSED)"):format(port), tostring(err))
    end)

    it("an unknown host is an EAI error naming it", function()
      local err = error_of(tcp.connect, "no-such-host.invalid", 80)
      assert.is_true(io_.is_error(err))
      assert.matches("^EAI_", err.code)
      assert.equal("no-such-host.invalid", err.host)
      assert.matches("^connect: no%-such%-host.invalid: ", tostring(err))
    end)

    it("a connect that gets no answer times out", function()
      -- a server that never accepts, its backlog full: SYNs are dropped
      local server <close> = tcp.listen("127.0.0.1", 0, nil, { backlog = 0 })
      local held = {}
      local t0 = loom.now()
      local err
      for _ = 1, 8 do
        local ok, c = pcall(tcp.connect, "127.0.0.1", server.port,
          { timeout = 0.2 })
        if not ok then
          err = c
          break
        end
        held[#held + 1] = c
      end
      assert.is_not_nil(err, "the backlog never filled")
      assert_ioerror(err, "ETIMEDOUT", "connect")
      assert.equal(("connect: 127.0.0.1:%d: timed out (ETIMEDOUT)")
        :format(server.port), tostring(err))
      assert.is_true(loom.now() - t0 < 5)
      for _, c in ipairs(held) do c:close() end
    end)

    it("listening on a port in use is EADDRINUSE", function()
      local a <close> = tcp.listen("127.0.0.1", 0)
      local err = error_of(tcp.listen, "127.0.0.1", a.port)
      assert_ioerror(err, "EADDRINUSE", "listen")
    end)

    it("listen by name resolves it", function()
      local s <close> = tcp.listen("localhost", 0, echo, { family = 4 })
      assert.equal("127.0.0.1", s.host)
    end)

    it("name themselves in bad arguments", function()
      assert.matches("bad argument #1 to '.*connect' %(string expected, got "
        .. "no value%)", error_of(tcp.connect))
      assert.matches("bad argument #2 to '.*connect' %(number expected, got "
        .. "no value%)", error_of(tcp.connect, "127.0.0.1"))
      assert.matches("bad argument #2 to '.*connect' %(port must be from 1 "
        .. "to 65535%)", error_of(tcp.connect, "127.0.0.1", 70000))
      assert.matches("bad argument #2 to '.*connect' %(port must be",
        error_of(tcp.connect, "127.0.0.1", 0))
      assert.matches("bad argument #3 to '.*connect' %(timeout must be a "
        .. "non%-negative number%)",
        error_of(tcp.connect, "127.0.0.1", 1, { timeout = -1 }))
      assert.matches("bad argument #3 to '.*connect' %(family must be",
        error_of(tcp.connect, "127.0.0.1", 1, { family = "x" }))
      assert.matches("bad argument #1 to '.*listen' %(host must be",
        error_of(tcp.listen, "", 0))
      assert.matches("bad argument #3 to '.*listen' %(function expected, "
        .. "got number%)", error_of(tcp.listen, "127.0.0.1", 0, 42))
      assert.matches("bad argument #4 to '.*listen' %(backlog must be",
        error_of(tcp.listen, "127.0.0.1", 0, nil, { backlog = -1 }))
      assert.equal("bad argument #3 to 'serve' (function expected, got nil)",
        error_of(tcp.serve, "127.0.0.1", 0))
    end)
  end)

  describe("servers", function()
    it("run the handler as a task per connection, and close the stream "
      .. "after", function()
        local seen = {}
        local server <close> = tcp.listen("127.0.0.1", 0, function(s)
          seen[#seen + 1] = s
          s:write(("hello %d\n"):format(#seen))
        end)
        local a <close> = tcp.connect("127.0.0.1", server.port)
        assert.equal("hello 1", a:read_line())
        assert.is_nil(a:read())  -- the handler returned: closed
        local b <close> = tcp.connect("127.0.0.1", server.port)
        assert.equal("hello 2", b:read_line())
        assert.matches("closed%)$", tostring(seen[1]))
      end)

    it("accept() without a handler, nil once closed", function()
      local server = tcp.listen("127.0.0.1", 0)
      local c <close> = tcp.connect("127.0.0.1", server.port)
      local s <close> = server:accept()
      s:write("from the server")
      assert.equal("from the server", c:read())
      spawn(function() sleep(0.02) server:close() end)
      assert.is_nil(server:accept())
      assert.is_nil(server:accept())
    end)

    it("one task accepts at a time", function()
      local server <close> = tcp.listen("127.0.0.1", 0)
      local t = spawn(function() return server:accept() end)
      sleep(0)
      assert.equal("accept: another task is accepting on this server "
        .. "(EBUSY)", tostring(error_of(server.accept, server)))
      server:close()
      assert.is_nil(t:await())
    end)

    it("close stops listening: new connections are refused", function()
      local server = tcp.listen("127.0.0.1", 0, echo)
      local port = server.port
      local c <close> = tcp.connect("127.0.0.1", port)
      c:write("accepted")
      assert.equal("accepted", c:read())
      server:close()
      server:close()
      assert.matches("closed%)$", tostring(server))
      sleep(0.01)
      assert.equal("ECONNREFUSED", error_of(tcp.connect, "127.0.0.1",
        port).code)
      -- the connection made before goes on
      c:write("still")
      assert.equal("still", c:read())
    end)

    it("wait() returns once the server is closed", function()
      local server = tcp.listen("127.0.0.1", 0, echo)
      spawn(function() sleep(0.02) server:close() end)
      server:wait()
      server:wait()
    end)

    it("serve() serves until its task is cancelled, then closes",
      function()
        local probe = tcp.listen("127.0.0.1", 0)
        local port = probe.port
        probe:close()
        local t = spawn(tcp.serve, "127.0.0.1", port, function(conn)
          conn:write("hi\n")
        end)
        sleep(0.02)
        local c <close> = tcp.connect("127.0.0.1", port)
        assert.equal("hi", c:read_line())
        t:cancel()
        assert.is_true(loom.is_cancelled(select(2, pcall(t.await, t))))
        sleep(0.01)
        assert.equal("ECONNREFUSED", error_of(tcp.connect, "127.0.0.1",
          port).code)
      end)

    it("100 concurrent echo clients", function()
      local server <close> = tcp.listen("127.0.0.1", 0, echo)
      local clients = {}
      for i = 1, 100 do
        clients[i] = function()
          local c <close> = tcp.connect("127.0.0.1", server.port)
          local got = {}
          for round = 1, 10 do
            local msg = ("client %d round %d\n"):format(i, round)
            c:write(msg)
            got[#got + 1] = c:read_line()
          end
          return table.concat(got, ",")
        end
      end
      local t0 = loom.now()
      local results = gather(clients)
      for i = 1, 100 do
        assert.matches(("^client %d round 1,"):format(i), results[i])
        assert.matches(("client %d round 10$"):format(i), results[i])
      end
      assert.is_true(loom.now() - t0 < 10)
    end)
  end)

  describe("streams", function()
    local server, c
    local function open(handler)
      server = tcp.listen("127.0.0.1", 0, handler or echo)
      c = tcp.connect("127.0.0.1", server.port)
      return c
    end
    after_each(function()
      if c then c:close() end
      if server then server:close() end
      c, server = nil, nil
    end)

    it("read(n) gives at most n bytes, as soon as some are there", function()
      open()
      c:write("abcdef")
      sleep(0.02)
      assert.equal("abc", c:read(3))
      assert.equal("def", c:read(100))
      c:write("x")
      assert.equal("x", c:read(100))
    end)

    it("read_exactly(n) waits for all n", function()
      open(function(s)
        for ch in ("hello"):gmatch(".") do s:write(ch) sleep(0.005) end
      end)
      assert.equal("hell", c:read_exactly(4))
      assert.equal("o", c:read())
      assert.is_nil(c:read_exactly(3))  -- the end: nil, as reads say
    end)

    it("read_exactly at a short end is EOF", function()
      open(function(s) s:write("ab") end)
      assert_ioerror(error_of(function() return c:read_exactly(3) end),
        "EOF", "read_exactly")
    end)

    it("read_line, read('L'), lines(), and a last line with no newline",
      function()
        open(function(s) s:write("one\ntwo\r\nthree\nfour\nfive") end)
        assert.equal("one", c:read_line())
        assert.equal("two\r", c:read_line())
        assert.equal("three\n", c:read("L"))
        assert.equal("four", c:read("l"))
        local rest = {}
        for line in c:lines() do rest[#rest + 1] = line end
        assert.same({ "five" }, rest)
        assert.is_nil(c:read_line())
      end)

    it("read_all reads to the end; read('a') too", function()
      local big = ("0123456789"):rep(50000)
      open(function(s) s:write(big) end)
      assert.equal(big, c:read_all())
      assert.equal("", c:read_all())
      assert.equal("", c:read("a"))
      assert.is_nil(c:read())
    end)

    it("write takes several strings and numbers, and returns the stream",
      function()
        open()
        assert.equal(c, c:write("a", 1, "b", 2.5))
        assert.equal("a1b2.5", c:read_exactly(6))
        local many = {}
        for i = 1, 40 do many[i] = tostring(i % 10) end
        c:write(table.unpack(many))
        assert.equal(table.concat(many), c:read_exactly(40))
        assert.equal(c, c:write())
        assert.equal(c, c:write(""))
      end)

    it("close_write half-closes: the peer sees the end and can answer",
      function()
        open(function(s)
          local all = s:read_all()
          s:write("got " .. #all)
        end)
        c:write("12345")
        assert.equal(c, c:close_write())
        assert.equal(c, c:close_write())
        assert.equal("got 5", c:read_all())
        assert.equal("write: write after close_write (EPIPE)",
          tostring(error_of(c.write, c, "x")))
      end)

    it("set_timeout bounds each wait: a server that never answers",
      function()
        open(function(s) s:read_all() end)  -- never answers
        assert.equal(c, c:set_timeout(0.05))
        local t0 = loom.now()
        local err = error_of(c.read, c)
        assert_ioerror(err, "ETIMEDOUT", "read")
        assert.equal(("read: 127.0.0.1:%d: timed out (ETIMEDOUT)")
          :format(server.port), tostring(err))
        assert.is_true(loom.now() - t0 < 2)
        assert.equal("ETIMEDOUT", error_of(c.read_line, c).code)
        c:set_timeout(nil)
        assert.matches("bad argument #1 to 'set_timeout' %(timeout must",
          error_of(function() c:set_timeout(-1) end))
      end)

    it("a reset peer is ECONNRESET", function()
      open(function(s)
        -- closing with unread data makes the kernel send a reset
        sleep(0.05)
      end)
      c:write("unread")
      local err = error_of(function()
        while c:read() do end
        return c:read()
      end)
      assert_ioerror(err, "ECONNRESET", "read")
    end)

    it("writing to a reset peer is an error, not a dead process",
      function()
        open(function(s) sleep(0.02) end)
        c:write("x")
        sleep(0.1)
        local ok, err = pcall(function()
          for _ = 1, 100 do c:write(("y"):rep(65536)) end
        end)
        assert.is_false(ok)
        assert.is_true(err.code == "EPIPE" or err.code == "ECONNRESET",
          tostring(err))
      end)

    it("a closed stream says so; closing twice is fine", function()
      open()
      c:close()
      c:close()
      assert.equal("read: the stream is closed (ECLOSED)",
        tostring(error_of(c.read, c)))
      assert.equal("ECLOSED", error_of(c.write, c, "x").code)
      assert.equal("ECLOSED", error_of(c.read_line, c).code)
      assert.matches("closed%)$", tostring(c))
    end)

    it("closing wakes a task waiting to read, with ECLOSED", function()
      open(function(s) s:read_all() end)  -- never answers
      local t = spawn(function() return c:read() end)
      sleep(0.01)
      c:close()
      assert.equal("read: the stream is closed (ECLOSED)",
        tostring(error_of(t.await, t)))
    end)

    it("one task reads at a time", function()
      open(function(s) s:read_all() end)  -- never answers
      local t = spawn(function() return c:read() end)
      sleep(0.01)
      assert.equal("read: another task is reading this stream (EBUSY)",
        tostring(error_of(c.read, c)))
      t:cancel()
      pcall(t.await, t)
    end)

    it("<close> closes it", function()
      open()
      do
        local s <close> = tcp.connect("127.0.0.1", server.port)
        s:write("x")
        assert.equal("x", s:read())
      end
    end)

    it("write waits while the peer does not read (backpressure)",
      function()
        local release = loom.future()
        open(function(s)
          release:await()
          local n = #s:read_all()
          s:write(tostring(n))
        end)
        local chunk = ("b"):rep(1 << 20)
        local written = 0
        local writer = spawn(function()
          for _ = 1, 32 do
            c:write(chunk)
            written = written + 1
          end
          c:close_write()
        end)
        sleep(0.2)
        assert.is_true(written < 32, "32 MiB went into the kernel")
        assert.equal("running", writer:status())
        release:set()
        writer:await()
        assert.equal(tostring(32 << 20), c:read_all())
      end)

    it("name themselves in bad arguments", function()
      open()
      assert.matches("bad argument #1 to 'read' %(invalid format%)",
        error_of(function() return c:read("x") end))
      assert.matches("bad argument #1 to 'read' %(count must be positive%)",
        error_of(function() return c:read(0) end))
      assert.matches("bad argument #1 to 'read_exactly' %(number expected",
        error_of(function() return c:read_exactly() end))
      assert.matches("bad argument #1 to 'write' %(string or number "
        .. "expected, got table%)", error_of(function() c:write({}) end))
      assert.matches("bad argument #1 to 'read' %(loom.Stream expected, got "
        .. "no value%)", error_of(function() return c.read() end))
    end)
  end)

  describe("cancellation", function()
    it("a cancelled read lets go once; the stream reads on", function()
      local server <close> = tcp.listen("127.0.0.1", 0, echo)
      local c <close> = tcp.connect("127.0.0.1", server.port)
      local cleaned = 0
      local t = spawn(function()
        local g <close> = setmetatable({}, { __close = function()
          cleaned = cleaned + 1 end })
        return c:read()
      end)
      sleep(0.01)
      t:cancel()
      assert.is_true(loom.is_cancelled(select(2, pcall(t.await, t))))
      assert.equal("cancelled", t:status())
      assert.equal(1, cleaned)
      c:write("after")
      assert.equal("after", c:read())
    end)

    it("a cancelled connect closes its socket once", function()
      local server <close> = tcp.listen("127.0.0.1", 0, nil, { backlog = 0 })
      local held = {}
      -- fill the backlog, then connect once more: it hangs
      for _ = 1, 8 do
        local ok, c = pcall(tcp.connect, "127.0.0.1", server.port,
          { timeout = 0.1 })
        if not ok then break end
        held[#held + 1] = c
      end
      local before = settle({ handles = #held + 1, requests = 0 })
      local t = spawn(tcp.connect, "127.0.0.1", server.port)
      sleep(0.05)
      assert.equal(before.requests + 1, io_.stats().requests)
      t:cancel()
      assert.is_true(loom.is_cancelled(select(2, pcall(t.await, t))))
      local s = settle(before)
      assert.equal(before.handles, s.handles)
      assert.equal(before.requests, s.requests)
      for _, c in ipairs(held) do c:close() end
    end)

    it("a cancelled accept lets go; the next accept works", function()
      local server <close> = tcp.listen("127.0.0.1", 0)
      local t = spawn(function() return server:accept() end)
      sleep(0.01)
      t:cancel()
      pcall(t.await, t)
      local c <close> = tcp.connect("127.0.0.1", server.port)
      local s <close> = server:accept()
      assert.is_not_nil(s)
    end)

    it("a cancelled write keeps its request until libuv is done", function()
      local release = loom.future()
      local server <close> = tcp.listen("127.0.0.1", 0, function(s)
        release:await()
        s:read_all()
      end)
      local c = tcp.connect("127.0.0.1", server.port)
      local t = spawn(function()
        while true do c:write(("w"):rep(1 << 20)) end
      end)
      sleep(0.1)
      assert.is_true(io_.stats().requests >= 1)
      t:cancel()
      assert.is_true(loom.is_cancelled(select(2, pcall(t.await, t))))
      c:close()  -- the queued write is dropped by libuv, then freed
      release:set()
    end)

    it("a cancelled lookup lets go of its request", function()
      local t = spawn(tcp.connect, "no-such-host-for-a-cancel.invalid", 80)
      sleep(0)
      t:cancel()
      pcall(t.await, t)
    end)
  end)
end)
