-- loom.http and cancellation: a task cancelled while it waits on a
-- request (or its timeout firing) removes the transfer at once and frees
-- it once; whatever follows gets its own response; the runtime closing
-- with requests in flight leaves nothing behind.
local it = require("spec.support.task").it
local error_of = require("spec.support.task").error_of
local cli = require "spec.support.cli"
local server = require "spec.support.http"
local loom = require "loom"

local http = loom.http
local srv

local function url(path) return srv:url(path) end

-- Spawns fn; returns the task and a table counting its cleanups.
local function with_cleanup(fn)
  local log = { cleanups = 0 }
  local t = loom.spawn(function()
    local _ <close> = setmetatable({}, { __close = function()
      log.cleanups = log.cleanups + 1 end })
    return fn()
  end)
  return t, log
end

local function cancelled(t)
  local ok, e = pcall(t.await, t)
  assert.is_false(ok)
  assert.is_true(loom.is_cancelled(e), tostring(e))
  assert.equal("cancelled", t:status())
end

describe("loom.http cancellation", function()
  setup(function() srv = server.start() end)
  teardown(function() srv:stop() cli.cleanup() end)

  it("mid-transfer: at once, cleanup once, status cancelled", function()
    local t, log = with_cleanup(function() return http.get(url("/delay/5")) end)
    loom.sleep(0.1)
    local t0 = loom.now()
    assert.is_true(t:cancel())
    cancelled(t)
    assert.is_true(loom.now() - t0 < 0.05)
    assert.equal(1, log.cleanups)
  end)

  it("as soon as it started, and twice", function()
    local t, log = with_cleanup(function() return http.get(url("/hello")) end)
    loom.sleep(0)  -- it starts, sends and waits
    t:cancel()
    t:cancel()
    cancelled(t)
    assert.equal(1, log.cleanups)
  end)

  it("mid-body of a slow response", function()
    local t, log = with_cleanup(function()
      return http.get(url("/drip?n=40&every=0.05"))
    end)
    loom.sleep(0.3)
    t:cancel()
    cancelled(t)
    assert.equal(1, log.cleanups)
  end)

  it("while queued for a connection of the pool", function()
    local s <close> = http.session{ max_connections = 1 }
    local first = loom.spawn(function() return s:get(url("/delay/0.5")).body end)
    local queued, log = with_cleanup(function() return s:get(url("/hello")) end)
    loom.sleep(0.1)
    queued:cancel()
    cancelled(queued)
    assert.equal(1, log.cleanups)
    assert.equal("slept", first:await())
    assert.equal("hello", s:get(url("/hello")).body)
  end)

  it("while a body function waits", function()
    local t, log = with_cleanup(function()
      return http.post(url("/echo"), { body = function() loom.sleep(10) end })
    end)
    loom.sleep(0.1)
    t:cancel()
    cancelled(t)
    assert.equal(1, log.cleanups)
  end)

  it("the next request gets its own response, after a cancel or a timeout",
    function()
      local s <close> = http.session{ max_per_host = 1 }
      for i = 1, 3 do
        local t = loom.spawn(function() return s:get(url("/drip?n=20&every=0.05")) end)
        loom.sleep(0.15)
        t:cancel()
        cancelled(t)
        local v = s:get(url("/echo?after=cancel" .. i)):json()
        assert.equal("cancel" .. i, v.query.after)
        local e = error_of(s.get, s, url("/drip?n=20&every=0.05"), { timeout = 0.15 })
        assert.equal("timeout", e.kind)
        v = s:get(url("/echo?after=timeout" .. i)):json()
        assert.equal("timeout" .. i, v.query.after)
      end
    end)

  it("many at once, each freed once", function()
    local s <close> = http.session()
    local tasks = {}
    for i = 1, 40 do
      tasks[i] = loom.spawn(function() return s:get(url("/delay/3")) end)
    end
    loom.sleep(0.2)
    for _, t in ipairs(tasks) do t:cancel() end
    for _, t in ipairs(tasks) do cancelled(t) end
    local jobs = {}
    for i = 1, 20 do
      jobs[i] = function() return s:get(url("/echo?i=" .. i)):json().query.i end
    end
    local got = loom.gather(jobs)
    for i = 1, 20 do assert.equal(tostring(i), got[i]) end
  end)

  it("a gather failing cancels the others' requests", function()
    local t0 = loom.now()
    local ok, e = pcall(loom.gather,
      function() return http.get(url("/delay/5")) end,
      function() return http.get("http://127.0.0.1:1/") end)
    assert.is_false(ok)
    assert.equal("connect", e.kind)
    assert.is_true(loom.now() - t0 < 1)
  end)

  it("the total timeout is the whole redirect chain", function()
    local t0 = loom.now()
    local e = error_of(http.get, url("/redirect/302?to=/delay/2"), { timeout = 0.3 })
    assert.equal("timeout", e.kind)
    assert.equal("total", e.timeout)
    assert.is_true(loom.now() - t0 < 1)
  end)

  it("a connect timeout on a lookup that never answers (fake resolver)",
    function()
      local lib, why = server.resolver()
      if not lib then return pending(why) end
      local out, err, code = cli.script([[
        local t0 = loom.now()
        local ok, e = pcall(loom.http.get, "http://dead.never/",
                            { connect_timeout = 0.2 })
        print(e.kind, e.timeout, loom.now() - t0 < 1)
      ]], { env = server.resolver_env(lib) })
      assert.equal(0, code, err)
      assert.equal("timeout\tconnect\ttrue\n", out)
    end)

  it("closing the runtime with requests in flight leaves nothing", function()
    -- os.exit(0, true) closes the state while a request waits, a stream
    -- is open mid-body and an idle connection sits in the pool
    local t0 = loom.now()
    local out, err, code = cli.script(([[
      local http = loom.http
      assert(http.get(%q).status == 200)
      local res = http.get(%q, { stream = true })
      res:chunks()()
      spawn(function() http.get(%q) end)
      spawn(function() sleep(0.2) os.exit(0, true) end)
      http.get(%q)
    ]]):format(url("/hello"), url("/stream/100000000"), url("/delay/5"),
               url("/delay/5")), { env = server.NO_PROXY_ENV })
    assert.equal(0, code, err)
    assert.equal("", err)
    assert.is_true(loom.now() - t0 < 3)
  end)

  it("a script that forgets a stream still ends", function()
    local out, err, code = cli.script(([[
      local res = loom.http.get(%q, { stream = true })
      print(#res:chunks()() > 0)
    ]]):format(url("/stream/100000000")), { env = server.NO_PROXY_ENV })
    assert.equal(0, code, err)
    assert.equal("true\n", out)
  end)
end)
