-- loom.http: requests and responses, methods and bodies, sessions, the
-- connection pool, concurrency, cookies, proxies and lazy loading, against
-- the local test server (spec/support/http_server.py, 127.0.0.1 only).
local it = require("spec.support.task").it
local error_of = require("spec.support.task").error_of
local cli = require "spec.support.cli"
local server = require "spec.support.http"
local loom = require "loom"

local http = loom.http
local srv

local function url(path) return srv:url(path) end

local function echo(res)
  assert.equal(200, res.status)
  return res:json()
end

describe("loom.http", function()
  setup(function() srv = server.start() end)
  teardown(function() srv:stop() cli.cleanup() end)

  describe("responses", function()
    it("has status, ok, reason, headers, body, url, version, elapsed",
      function()
        local res = http.get(url("/hello"))
        assert.equal(200, res.status)
        assert.is_true(res.ok)
        assert.equal("OK", res.reason)
        assert.equal("hello", res.body)
        assert.equal(url("/hello"), res.url)
        assert.equal("1.1", res.http_version)
        assert.equal("text/plain", res.headers["content-type"])
        assert.equal("5", res.headers["content-length"])
        assert.is_number(res.elapsed)
        assert.is_true(res.elapsed >= 0 and res.elapsed < 5)
        assert.is_nil(res.redirect_url)
        assert.truthy(tostring(res):find("loom.http.Response: 200", 1, true))
        assert.is_true(loom.http.Response == getmetatable(res))
      end)

    it("keeps every header line in order; repeats joined, cookies listed",
      function()
        local res = http.get(url("/multi"))
        assert.equal("one, two", res.headers["x-multi"])
        assert.same({ "a=1, b; Path=/", "c=3" }, res.headers["set-cookie"])
        local lines = {}
        for _, l in ipairs(res.header_list) do
          if l:find("^X%-Multi") or l:find("^Set%-Cookie") then
            lines[#lines + 1] = l
          end
        end
        assert.same({ "Set-Cookie: a=1, b; Path=/", "Set-Cookie: c=3",
                      "X-Multi: one", "X-Multi: two" }, lines)
      end)

    it("gives 404 and 500 as responses, not errors", function()
      for _, code in ipairs{ 404, 500, 503 } do
        local res = http.get(url("/status/" .. code))
        assert.equal(code, res.status)
        assert.is_false(res.ok)
        assert.equal("status " .. code, res.body)
      end
      assert.equal("Not Found", http.get(url("/status/404")).reason)
    end)

    it("raise_for_status raises a kind 'status' error for 4xx and 5xx",
      function()
        local ok = http.get(url("/hello"))
        assert.equal(ok, ok:raise_for_status())
        local res = http.get(url("/status/404"))
        local e = error_of(res.raise_for_status, res)
        assert.is_true(http.is_error(e))
        assert.equal("status", e.kind)
        assert.equal(404, e.status)
        assert.equal(res, e.response)
        assert.truthy(tostring(e):find("404 Not Found", 1, true))
      end)

    it("json() decodes the body; a body that is not JSON is an error",
      function()
        local v = http.get(url("/echo")):json()
        assert.equal("GET", v.method)
        local e = error_of(function() return http.get(url("/hello")):json() end)
        assert.truthy(e:find("json: the body is not JSON", 1, true))
      end)

    it("shows only the last header block after a 1xx", function()
      local res = http.get(url("/early-hints"))
      assert.equal(200, res.status)
      assert.equal("yes", res.headers["x-final"])
      assert.is_nil(res.headers.link)
      assert.equal("after hints", res.body)
    end)

    it("decompresses gzip, or not with decompress = false", function()
      local res = http.get(url("/gzip"))
      assert.equal(("loom "):rep(2000), res.body)
      local raw = http.get(url("/gzip"), { decompress = false })
      assert.equal("gzip", raw.headers["content-encoding"])
      assert.equal("\31\139", raw.body:sub(1, 2))
      local sent = echo(http.get(url("/echo")))
      assert.truthy(sent.headers["accept-encoding"]:find("gzip", 1, true))
      sent = echo(http.get(url("/echo"), { decompress = false }))
      assert.is_nil(sent.headers["accept-encoding"])
    end)

    it("reads chunked bodies and large ones", function()
      assert.equal(("y"):rep(12345), http.get(url("/chunked/12345")).body)
      assert.equal(3 * 1024 * 1024,
                   #http.get(url("/large/" .. 3 * 1024 * 1024)).body)
    end)
  end)

  describe("methods and bodies", function()
    it("get, post, put, patch, delete, head and request{}", function()
      assert.equal("GET", echo(http.get(url("/echo"))).method)
      assert.equal("POST", echo(http.post(url("/echo"))).method)
      assert.equal("PUT", echo(http.put(url("/echo"))).method)
      assert.equal("PATCH", echo(http.patch(url("/echo"))).method)
      assert.equal("DELETE", echo(http.delete(url("/echo"))).method)
      local head = http.head(url("/large/100"))
      assert.equal(200, head.status)
      assert.equal("100", head.headers["content-length"])
      assert.equal("", head.body)
      local r = http.request{ method = "post", url = url("/echo"),
                              body = "x" }
      assert.equal("POST", echo(r).method)
      assert.equal("PROPFIND",
        echo(http.request{ method = "PROPFIND", url = url("/echo") }).method)
      assert.equal("GET", echo(http.request{ url = url("/echo") }).method)
    end)

    it("POST, PUT and PATCH without a body send Content-Length: 0",
      function()
        for _, f in ipairs{ http.post, http.put, http.patch } do
          local v = echo(f(url("/echo")))
          assert.equal("0", v.headers["content-length"])
          assert.equal("", v.body)
        end
      end)

    it("sends a string body as is, with no Content-Type of its own",
      function()
        local v = echo(http.post(url("/echo"), { body = "a=1&b\0c" }))
        assert.equal("a=1&b\0c", v.body)
        assert.is_nil(v.headers["content-type"])
        v = echo(http.put(url("/echo"), { body = "hello",
          headers = { ["Content-Type"] = "text/plain" } }))
        assert.equal("hello", v.body)
        assert.equal("text/plain", v.headers["content-type"])
        assert.equal("PUT", v.method)
      end)

    it("json encodes the value and sets the content type", function()
      local v = echo(http.post(url("/echo"), { json = { a = 1, b = { 2 } } }))
      assert.equal("application/json", v.headers["content-type"])
      assert.same({ a = 1, b = { 2 } }, require("loom.json").decode(v.body))
      v = echo(http.post(url("/echo"), { json = { x = true },
        headers = { ["content-type"] = "application/vnd+json" } }))
      assert.equal("application/vnd+json", v.headers["content-type"])
    end)

    it("form is urlencoded in key order; an array of pairs keeps its order",
      function()
        local v = echo(http.post(url("/echo"), { form = { b = "2 3", a = "&",
                                                          c = { "x", "y" } } }))
        assert.equal("a=%26&b=2%203&c=x&c=y", v.body)
        assert.equal("application/x-www-form-urlencoded",
                     v.headers["content-type"])
        v = echo(http.post(url("/echo"), { form = { { "z", 1 }, { "a", 2 } } }))
        assert.equal("z=1&a=2", v.body)
      end)

    it("multipart sends fields and files", function()
      local file = cli.tmpfile("file content here")
      local v = echo(http.post(url("/echo"), { multipart = {
        name = "loom", upload = { file = file, filename = "f.txt",
                                  type = "text/plain" },
        blob = { data = "bytes\0here", filename = "b.bin" } } }))
      assert.truthy(v.headers["content-type"]:find("^multipart/form%-data"))
      assert.truthy(v.body:find('name="name"\r\n\r\nloom', 1, true))
      assert.truthy(v.body:find('filename="f.txt"', 1, true))
      assert.truthy(v.body:find("file content here", 1, true))
      assert.truthy(v.body:find("bytes\0here", 1, true))
    end)

    it("a body function gives chunks until nil (and may wait)", function()
      local parts = { "one ", "two ", "three" }
      local i = 0
      local v = echo(http.post(url("/echo"), { body = function()
        i = i + 1
        loom.sleep(0.01)
        return parts[i]
      end }))
      assert.equal("one two three", v.body)
      assert.equal("chunked", v.headers["transfer-encoding"])
      assert.equal(4, i)
    end)

    it("a body function's error comes out of the request unchanged",
      function()
        local boom = setmetatable({}, { __tostring = function() return "boom" end })
        local e = error_of(http.post, url("/echo"), { body = function()
          error(boom)
        end })
        assert.equal(boom, e)
        e = error_of(http.post, url("/echo"), { body = function() return 1 end })
        assert.truthy(e:find("body function returned a number", 1, true))
        assert.equal("hello", http.get(url("/hello")).body)  -- still works
      end)

    it("{ file = path } uploads a file", function()
      local data = ("0123456789"):rep(100000)
      local file = cli.tmpfile(data)
      local v = echo(http.put(url("/echo"), { body = { file = file } }))
      assert.equal(#data, #v.body)
      assert.equal(tostring(#data), v.headers["content-length"])
      local e = error_of(http.put, url("/echo"),
                         { body = { file = "/nonexistent/x" } })
      assert.truthy(e:find("put: cannot open body file '/nonexistent/x'", 1,
                           true))
    end)

    it("a large body goes at once (no Expect: 100-continue wait)",
      function()
        local t0 = loom.now()
        local v = echo(http.post(url("/echo"), { body = ("b"):rep(2 * 1024 * 1024) }))
        assert.equal(2 * 1024 * 1024, #v.body)
        assert.is_nil(v.headers.expect)
        assert.is_true(loom.now() - t0 < 0.9)
      end)

    it("query is encoded in key order and appended", function()
      local v = echo(http.get(url("/echo"), { query = { b = "x y", a = 1,
                                                      t = { "p", "q" } } }))
      assert.equal("/echo?a=1&b=x%20y&t=p&t=q", v.path)
      v = echo(http.get(url("/echo?z=0"), { query = { { "b", 2 }, { "a", 1 } } }))
      assert.equal("/echo?z=0&b=2&a=1", v.path)
      v = echo(http.get(url("/echo#frag"), { query = { k = "v" } }))
      assert.equal("/echo?k=v", v.path)
    end)

    it("sends headers; false leaves one out; a User-Agent of loom's",
      function()
        local v = echo(http.get(url("/echo"), { headers = {
          ["X-One"] = "1", ["X-Num"] = 42, Accept = false } }))
        assert.equal("1", v.headers["x-one"])
        assert.equal("42", v.headers["x-num"])
        assert.is_nil(v.headers.accept)
        assert.equal("loom/" .. loom.version, v.headers["user-agent"])
        v = echo(http.get(url("/echo"), { headers = { ["User-Agent"] = "me" } }))
        assert.equal("me", v.headers["user-agent"])
      end)

    it("on_progress sees the bytes so far and, last, the whole size",
      function()
        local calls = {}
        local res = http.get(url("/drip?n=6&every=0.06"), {
          on_progress = function(done, total) calls[#calls + 1] = { done, total } end })
        assert.equal(6, #res.body)
        assert.is_true(#calls >= 2)
        assert.same({ 6, 6 }, calls[#calls])
        for i = 2, #calls do assert.is_true(calls[i][1] >= calls[i - 1][1]) end
      end)
  end)

  describe("concurrency and the pool", function()
    it("runs 20 requests to a 0.5 s route at once (under 2 s)", function()
      local t0 = loom.now()
      local jobs = {}
      for i = 1, 20 do
        jobs[i] = function() return http.get(url("/delay/0.5")).body end
      end
      local bodies = loom.gather(jobs)
      assert.equal(20, #bodies)
      for _, b in ipairs(bodies) do assert.equal("slept", b) end
      assert.is_true(loom.now() - t0 < 2, "took " .. (loom.now() - t0))
    end)

    it("other tasks run while a request waits", function()
      local ticks = 0
      local t = loom.spawn(function() return http.get(url("/delay/0.3")).body end)
      while not t:done() do
        loom.sleep(0.02)
        ticks = ticks + 1
      end
      assert.equal("slept", t:result())
      assert.is_true(ticks >= 5)
    end)

    it("reuses a kept-alive connection", function()
      local s <close> = http.session()
      local port = echo(s:get(url("/echo"))).port
      for _ = 1, 10 do assert.equal(port, echo(s:get(url("/echo"))).port) end
    end)

    it("succeeds after the server closed an idle kept-alive connection",
      function()
        local s <close> = http.session()
        assert.equal("soon", s:get(url("/close-soon")).body)
        loom.sleep(0.3)  -- the server has closed it meanwhile
        assert.equal("hello", s:get(url("/hello")).body)
        assert.equal("hello", s:get(url("/hello")).body)
      end)

    it("each session has its own pool", function()
      local a <close> = http.session()
      local b <close> = http.session()
      local pa, pb = echo(a:get(url("/echo"))).port, echo(b:get(url("/echo"))).port
      assert.are_not.equal(pa, pb)
      assert.equal(pa, echo(a:get(url("/echo"))).port)
      assert.equal(pb, echo(b:get(url("/echo"))).port)
    end)

    it("max_connections queues the rest (and all succeed)", function()
      local s <close> = http.session{ max_connections = 2 }
      local t0 = loom.now()
      local jobs = {}
      for i = 1, 6 do jobs[i] = function() return s:get(url("/delay/0.2")).status end end
      local codes = loom.gather(jobs)
      for _, c in ipairs(codes) do assert.equal(200, c) end
      assert.is_true(loom.now() - t0 >= 0.55, "took " .. (loom.now() - t0))
    end)

    it("max_per_host limits connections to one host", function()
      local s <close> = http.session{ max_per_host = 1 }
      local jobs, ports = {}, {}
      for i = 1, 4 do jobs[i] = function() return echo(s:get(url("/echo"))).port end end
      for _, p in ipairs(loom.gather(jobs)) do ports[p] = true end
      assert.equal(1, #(function() local l = {} for p in pairs(ports) do l[#l + 1] = p end return l end)())
    end)
  end)

  describe("sessions", function()
    it("base_url, headers and timeouts of their own", function()
      local s <close> = http.session{ base_url = url("/"),
        headers = { ["X-Session"] = "s", ["X-Both"] = "session" },
        timeout = 0.3 }
      local v = echo(s:get("echo", { headers = { ["X-Both"] = "request" } }))
      assert.equal("s", v.headers["x-session"])
      assert.equal("request", v.headers["x-both"])
      assert.equal("/echo", v.path)
      assert.equal("/echo", echo(s:get("/echo")).path)
      local e = error_of(s.get, s, "delay/2")
      assert.equal("timeout", e.kind)
      assert.equal("total", e.timeout)
      assert.equal("hello", s:get(url("/hello")).body)  -- absolute wins
      assert.truthy(tostring(s):find("loom.http.Session", 1, true))
    end)

    it("post, put, patch, delete, head and request on a session", function()
      local s <close> = http.session{ base_url = url("/") }
      assert.equal("POST", echo(s:post("echo", { body = "x" })).method)
      assert.equal("PUT", echo(s:put("echo")).method)
      assert.equal("PATCH", echo(s:patch("echo")).method)
      assert.equal("DELETE", echo(s:delete("echo")).method)
      assert.equal(200, s:head("hello").status)
      assert.equal("OPTIONS", echo(s:request{ method = "OPTIONS",
                                              url = "echo" }).method)
    end)

    it("close(): later requests fail, waiting ones too", function()
      local s = http.session()
      local t = loom.spawn(function() return s:get(url("/delay/2")) end)
      loom.sleep(0.1)
      local t0 = loom.now()
      s:close()
      local ok, e = pcall(t.await, t)
      assert.is_false(ok)
      assert.truthy(e:find("get: the session was closed", 1, true))
      assert.is_true(loom.now() - t0 < 0.5)
      e = error_of(s.get, s, url("/hello"))
      assert.truthy(e:find("get: the session is closed", 1, true))
      s:close()  -- again: nothing
    end)

    it("<close> closes it", function()
      local s
      do
        local inner <close> = http.session()
        s = inner
        assert.equal(200, s:get(url("/hello")).status)
      end
      assert.truthy(error_of(s.get, s, url("/hello")):find("closed", 1, true))
    end)

    it("keeps cookies with cookies = true, and only then", function()
      local jar <close> = http.session{ cookies = true }
      jar:get(url("/cookie/set?flavour=oat"))
      assert.equal("flavour=oat", jar:get(url("/cookies")):json().cookie)
      -- a request with options of its own (its handle is reset first)
      assert.equal("flavour=oat", jar:post(url("/echo")):json().headers.cookie)
      jar:get(url("/cookie/set?size=big"), { timeout = 5 })
      assert.equal("flavour=oat; size=big", jar:get(url("/cookies")):json().cookie)
      local plain <close> = http.session()
      plain:get(url("/cookie/set?flavour=oat"))
      assert.equal(require("loom.json").null, plain:get(url("/cookies")):json().cookie)
      http.get(url("/cookie/set?flavour=oat"))
      assert.equal(require("loom.json").null, http.get(url("/cookies")):json().cookie)
    end)

    it("a forgotten session is collected with its connections", function()
      for _ = 1, 5 do
        local s = http.session()
        assert.equal(200, s:get(url("/hello")).status)
      end
      collectgarbage()
      collectgarbage()
      assert.equal(200, http.get(url("/hello")).status)
    end)
  end)

  describe("proxies", function()
    it("goes through the proxy option", function()
      local proxy = server.start()
      local v = echo(http.get(url("/echo"), { proxy = proxy.base }))
      proxy:stop()
      assert.equal("1", v.headers["x-proxied"])
      v = echo(http.get(url("/echo")))
      assert.is_nil(v.headers["x-proxied"])
    end)

    it("honours http_proxy, and proxy = false ignores it", function()
      local proxy = server.start()
      local env = {}
      for k, v in pairs(server.NO_PROXY_ENV) do env[k] = v end
      env.http_proxy = proxy.base
      local out, err, code = cli.script(([[
        local http = loom.http
        print(http.get(%q):json().headers["x-proxied"])
        print(http.get(%q, { proxy = false }):json().headers["x-proxied"])
      ]]):format(url("/echo"), url("/echo")), { env = env })
      proxy:stop()
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal("1\nnil\n", out)
    end)
  end)

  describe("loading", function()
    it("libcurl is loaded on first use of loom.http only", function()
      local out, err, code = cli.script([[
        local function curl()
          for l in io.lines("/proc/self/maps") do
            if l:find("libcurl", 1, true) then return true end
          end
          return false
        end
        sleep(0)
        print(curl())
        local _ = loom.http
        print(curl())
      ]], { env = server.NO_PROXY_ENV })
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal("false\ntrue\n", out)
    end)

    it("says what to install when libcurl is missing", function()
      local env = { LOOM_LIBCURL = "/nonexistent/libcurl.so.4" }
      local _, err, code = cli.script([[local _ = loom.http]], { env = env })
      assert.equal(1, code)
      assert.truthy(err:find("loom.http: libcurl is not installed", 1, true))
      assert.truthy(err:find("install libcurl4", 1, true))
    end)

    it("works from stock lua5.4 through loom.so", function()
      if cli.SANITIZE then
        return pending("loom.so is sanitized: lua5.4 cannot load it")
      end
      local out, err, code = cli.module(([[
        local loom = require "loom"
        loom.run(function() print(loom.http.get(%q).body) end)
      ]]):format(url("/hello")), { env = server.NO_PROXY_ENV })
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal("hello\n", out)
    end)

    it("has a version and read-only defaults", function()
      assert.truthy(http.curl_version:find("^%d+%.%d+"))
      assert.equal(10, http.defaults.connect_timeout)
      assert.equal(60, http.defaults.read_timeout)
      assert.equal(300, http.defaults.timeout)
      assert.equal(10, http.defaults.max_redirects)
      assert.equal(64 * 1024 * 1024, http.defaults.max_body)
      assert.truthy(error_of(function() http.defaults.timeout = 1 end)
        :find("read%-only"))
    end)
  end)
end)
