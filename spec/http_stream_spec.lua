-- loom.http streams (stream = true): the body as it comes, with
-- backpressure (the transfer pauses while the script does not read, so a
-- pause costs no CPU and memory stays bounded), read/save/close/<close>,
-- errors mid-body, cancellation from inside a chunk loop.
local it = require("spec.support.task").it
local error_of = require("spec.support.task").error_of
local cli = require "spec.support.cli"
local server = require "spec.support.http"
local loom = require "loom"

local http = loom.http
local srv

local function url(path) return srv:url(path) end
local MiB = 1024 * 1024

describe("loom.http streams", function()
  setup(function() srv = server.start() end)
  teardown(function() srv:stop() cli.cleanup() end)

  it("gives the headers first, then the body in chunks", function()
    local res = http.get(url("/stream/" .. 5 * MiB), { stream = true })
    assert.equal(200, res.status)
    assert.equal(tostring(5 * MiB), res.headers["content-length"])
    assert.is_nil(res.body)
    local n, chunks = 0, 0
    for chunk in res:chunks() do
      n = n + #chunk
      chunks = chunks + 1
      assert.is_true(#chunk <= 2 * MiB)
    end
    assert.equal(5 * MiB, n)
    assert.is_true(chunks >= 3)
    assert.is_nil(res:chunks()())  -- over: nil again
  end)

  it("read() gives the rest; save() writes it to a file", function()
    local res = http.get(url("/chunked/30000"), { stream = true })
    local first = res:chunks()()
    local rest = res:read()
    assert.equal(("y"):rep(30000), first .. rest)
    local file = cli.tmpfile("")
    res = http.get(url("/stream/" .. 3 * MiB), { stream = true })
    assert.equal(3 * MiB, res:save(file))
    local f = assert(io.open(file, "rb"))
    assert.equal(3 * MiB, #f:read("a"))
    f:close()
    local e = error_of(res.save, res, "/nonexistent/dir/file")
    assert.truthy(e:find("save: /nonexistent/dir/file", 1, true))
  end)

  it("a whole response answers the same methods", function()
    local res = http.get(url("/hello"))
    assert.equal("hello", res:read())
    local parts = {}
    for c in res:chunks() do parts[#parts + 1] = c end
    assert.same({ "hello" }, parts)
    res:close()
    local file = cli.tmpfile("")
    assert.equal(5, res:save(file))
  end)

  it("close() and <close> let go of the transfer mid-body", function()
    local s <close> = http.session()
    do
      local res <close> = s:get(url("/stream/" .. 100 * MiB), { stream = true })
      assert.truthy(res:chunks()())
    end
    local res = s:get(url("/stream/" .. 100 * MiB), { stream = true })
    assert.truthy(res:chunks()())
    res:close()
    res:close()  -- again: nothing
    assert.truthy(error_of(res.read, res):find("read: the response is closed", 1, true))
    assert.equal("hello", s:get(url("/hello")).body)  -- the session goes on
  end)

  it("a paused stream uses no CPU (< 20 ms over a 1 s pause)", function()
    local res <close> = http.get(url("/stream/" .. 200 * MiB), { stream = true })
    local next_chunk = res:chunks()
    assert.truthy(next_chunk())
    loom.sleep(0.1)  -- the buffer fills and the transfer pauses
    local c0 = os.clock()
    loom.sleep(1)
    local cpu = os.clock() - c0
    assert.is_true(cpu < 0.02, ("%.1f ms of CPU while paused"):format(cpu * 1000))
    local n = 0
    for chunk in next_chunk do n = n + #chunk end
    assert.is_true(n > 190 * MiB)
  end)

  it("a 200 MB stream keeps RSS under 64 MB", function()
    if cli.SANITIZE then
      return pending("ASan's shadow memory and quarantine inflate RSS")
    end
    local out, err, code = cli.script(([[
      local res = loom.http.get(%q, { stream = true })
      local n = 0
      for chunk in res:chunks() do n = n + #chunk end
      for l in io.lines("/proc/self/status") do
        local v = l:match("^VmHWM:%%s+(%%d+)")
        if v then print(n, tonumber(v)) end
      end
    ]]):format(url("/stream/" .. 200 * 1000 * 1000)),
      { env = server.NO_PROXY_ENV, timeout = 60 })
    assert.equal(0, code, err)
    local n, kb = out:match("^(%d+)\t(%d+)")
    assert.equal(200 * 1000 * 1000, tonumber(n))
    assert.is_true(tonumber(kb) < 64 * 1024, "peak RSS " .. kb .. " kB")
  end)

  it("a gzip stream read with pauses stays bounded too", function()
    if cli.SANITIZE then
      return pending("ASan's shadow memory and quarantine inflate RSS")
    end
    -- 256 MiB of zeros, gzip-encoded: what one read decodes to is what
    -- curl keeps while loom holds the transfer paused
    local out, err, code = cli.script(([[
      local res = loom.http.get(%q, { stream = true })
      local n, i = 0, 0
      for chunk in res:chunks() do
        n = n + #chunk
        i = i + 1
        if i %% 20 == 0 then sleep(0.05) end
      end
      for l in io.lines("/proc/self/status") do
        local v = l:match("^VmHWM:%%s+(%%d+)")
        if v then print(n, tonumber(v)) end
      end
    ]]):format(url("/bomb")), { env = server.NO_PROXY_ENV, timeout = 60 })
    assert.equal(0, code, err)
    local n, kb = out:match("^(%d+)\t(%d+)")
    assert.equal(256 * MiB, tonumber(n))
    assert.is_true(tonumber(kb) < 64 * 1024, "peak RSS " .. kb .. " kB")
  end)

  it("max_body applies to a stream when given", function()
    local res = http.get(url("/chunked/50000"), { stream = true, max_body = 10000 })
    local e = error_of(res.read, res)
    assert.equal("too_large", e.kind)
  end)

  it("raises a connection drop from chunks()", function()
    local res = http.get(url("/drop"), { stream = true })
    assert.equal(200, res.status)
    local e = error_of(res.read, res)
    assert.equal("protocol", e.kind)
    assert.equal(url("/drop"), e.url)
  end)

  it("follows redirects, then streams the final body", function()
    local res = http.get(url("/redirect/302?to=/large/70000"), { stream = true })
    assert.equal(200, res.status)
    assert.equal(url("/large/70000"), res.url)
    assert.equal(70000, #res:read())
  end)

  it("read_timeout: the server's silence counts, our pause does not",
    function()
      local res = http.get(url("/drip?n=3&every=0.6"),
                           { stream = true, read_timeout = 0.3 })
      local e = error_of(res.read, res)
      assert.equal("timeout", e.kind)
      assert.equal("read", e.timeout)
      res = http.get(url("/stream/" .. 50 * MiB),
                     { stream = true, read_timeout = 0.3 })
      local next_chunk = res:chunks()
      next_chunk()
      loom.sleep(1)  -- paused by us much longer than read_timeout
      local n = 0
      for chunk in next_chunk do n = n + #chunk end
      assert.is_true(n > 40 * MiB)
    end)

  it("on_progress follows the chunks", function()
    local seen = {}
    local res = http.get(url("/stream/" .. 4 * MiB), { stream = true,
      on_progress = function(done, total) seen[#seen + 1] = { done, total } end })
    res:read()
    assert.is_true(#seen >= 2)
    assert.same({ 4 * MiB, 4 * MiB }, seen[#seen])
  end)

  it("a task can cancel a request and start another from a chunk loop",
    function()
      local s <close> = http.session()
      local slow = loom.spawn(function() return s:get(url("/delay/5")) end)
      local res = s:get(url("/stream/" .. 2 * MiB), { stream = true })
      local n, started = 0, nil
      for chunk in res:chunks() do
        n = n + #chunk
        if not started then
          slow:cancel()
          started = s:get(url("/echo?inner=1")):json()
        end
      end
      assert.equal(2 * MiB, n)
      assert.equal("1", started.query.inner)
      assert.is_true(loom.is_cancelled(select(2, pcall(slow.await, slow))))
      assert.equal("hello", s:get(url("/hello")).body)
    end)

  it("cancelling a reader lets go of the transfer at once", function()
    local s <close> = http.session()
    local res = s:get(url("/drip?n=50&every=0.1"), { stream = true })
    local reader = loom.spawn(function() return res:read() end)
    loom.sleep(0.2)
    local t0 = loom.now()
    reader:cancel()
    assert.is_true(loom.is_cancelled(select(2, pcall(reader.await, reader))))
    assert.is_true(loom.now() - t0 < 0.05)
    assert.truthy(error_of(res.read, res):find("closed", 1, true))
    assert.equal("hello", s:get(url("/hello")).body)
  end)

  it("a forgotten stream is collected with its transfer", function()
    local s <close> = http.session()
    for _ = 1, 5 do
      local res = s:get(url("/stream/" .. 20 * MiB), { stream = true })
      res:chunks()()
    end
    collectgarbage()
    collectgarbage()
    assert.equal("hello", s:get(url("/hello")).body)
  end)

  it("an upload function feeds a streamed request", function()
    local i = 0
    local res = http.post(url("/echo"), { stream = true, body = function()
      i = i + 1
      if i <= 3 then return ("part%d;"):format(i) end
    end })
    assert.equal("part1;part2;part3;", require("loom.json").decode(res:read()).body)
  end)
end)
