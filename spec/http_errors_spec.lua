-- loom.http errors: every kind of failure with no response (as a
-- loom.http.Error: kind, url, message, curl's code), every bad argument
-- (the message names the function and the option), calls where no task
-- can wait, and hostile values thrown at every function of the module.
local it = require("spec.support.task").it
local error_of = require("spec.support.task").error_of
local cli = require "spec.support.cli"
local server = require "spec.support.http"
local loom = require "loom"

local http = loom.http
local srv

local function url(path) return srv:url(path) end

local function http_error(kind, fn, ...)
  local e = error_of(fn, ...)
  assert.is_true(http.is_error(e), "not a loom.http.Error: " .. tostring(e))
  assert.equal(kind, e.kind)
  assert.is_string(e.message)
  assert.truthy(tostring(e):find("^loom.http.Error: " .. kind .. ": "))
  return e
end

-- fn(...) raises a string naming fname and holding each of the words
local function bad(fname, words, fn, ...)
  local e = error_of(fn, ...)
  assert.is_string(e)
  assert.truthy(e:find(fname, 1, true), e)
  for _, w in ipairs(words) do assert.truthy(e:find(w, 1, true), e) end
  return e
end

describe("loom.http errors", function()
  setup(function() srv = server.start() end)
  teardown(function() srv:stop() cli.cleanup() end)

  describe("kinds", function()
    it("connect: a refused connection", function()
      local e = http_error("connect", http.get, "http://127.0.0.1:1/x")
      assert.equal("http://127.0.0.1:1/x", e.url)
      assert.equal("GET", e.method)
      assert.equal(7, e.code)
      assert.equal("CURLE_COULDNT_CONNECT", e.curl_code)
      assert.truthy(e.message:find("127.0.0.1 port 1", 1, true))
      assert.truthy(tostring(e):find("(GET http://127.0.0.1:1/x)", 1, true))
    end)

    it("dns: a name that does not resolve (a fake resolver: no DNS traffic)",
      function()
        local lib, why = server.resolver()
        if not lib then return pending(why) end
        local out, err, code = cli.script([[
          local ok, e = pcall(loom.http.get, "http://nothing.fail/")
          print(e.kind, e.code, e.curl_code, e.message)
        ]], { env = server.resolver_env(lib) })
        assert.equal(0, code, err)
        assert.equal("dns\t6\tCURLE_COULDNT_RESOLVE_HOST\tCould not resolve "
          .. "host: nothing.fail\n", out)
      end)

    it("tls: speaking TLS to a plain HTTP server", function()
      local e = http_error("tls", http.get, "https://127.0.0.1:" .. srv.port .. "/")
      assert.equal("CURLE_SSL_CONNECT_ERROR", e.curl_code)
    end)

    it("timeout: total, read and connect, told apart", function()
      local e = http_error("timeout", http.get, url("/delay/3"), { timeout = 0.2 })
      assert.equal("total", e.timeout)
      e = http_error("timeout", http.get, url("/delay/3"), { read_timeout = 0.2 })
      assert.equal("read", e.timeout)
      assert.truthy(e.message:find("read_timeout", 1, true))
      -- a server that accepts and never answers the TLS handshake
      local t0 = loom.now()
      e = http_error("timeout", http.get, "https://127.0.0.1:" .. srv.silent_port
        .. "/", { connect_timeout = 0.2 })
      assert.equal("connect", e.timeout)
      assert.equal("CURLE_OPERATION_TIMEDOUT", e.curl_code)
      assert.is_true(loom.now() - t0 < 1.5)
    end)

    it("protocol: the connection drops mid-body", function()
      local e = http_error("protocol", http.get, url("/drop"))
      assert.equal("CURLE_PARTIAL_FILE", e.curl_code)
    end)

    it("redirects: too many of them", function()
      local e = http_error("redirects", http.get, url("/loop"))
      assert.truthy(e.message:find("more than 10 redirects", 1, true))
      e = http_error("redirects", http.get, url("/loop"), { max_redirects = 2 })
      assert.truthy(e.message:find("more than 2 redirects", 1, true))
    end)

    it("url: a scheme other than http and https, or a malformed URL",
      function()
        local e = http_error("url", http.get, "file:///etc/passwd")
        assert.truthy(e.message:find("unsupported scheme 'file'", 1, true))
        http_error("url", http.get, "FTP://example.invalid/")
        http_error("url", http.get, "gopher://example.invalid/")
        e = http_error("url", http.get, "http://[::1/")
        assert.equal("CURLE_URL_MALFORMAT", e.curl_code)
        http_error("url", http.get, "http://127.0.0.1:" .. srv.port .. "/\r\nX: y")
        http_error("url", http.get, "http://127.0.0.1 /")
      end)

    it("too_large: a body over max_body, headers over their bound", function()
      local e = http_error("too_large", http.get, url("/large/2000"),
                           { max_body = 1000 })
      assert.truthy(e.message:find("max_body", 1, true))
      http_error("too_large", http.get, url("/chunked/5000"), { max_body = 4999 })
      assert.equal(5000, #http.get(url("/chunked/5000"), { max_body = 5000 }).body)
      http_error("too_large", http.get, url("/big-headers"))
    end)

    it("is_error tells them from anything else", function()
      assert.is_true(http.is_error(error_of(http.get, "http://127.0.0.1:1/")))
      assert.is_false(http.is_error("x"))
      assert.is_false(http.is_error({}))
      assert.is_false(http.is_error(nil))
      assert.is_false(http.is_error(setmetatable({}, { __metatable = false })))
    end)
  end)

  describe("bad arguments", function()
    it("the URL", function()
      bad("bad argument #1 to 'get'", { "string expected, got nil" }, http.get)
      bad("bad argument #1 to 'post'", { "string expected, got number" },
          http.post, 42)
      bad("bad argument #1 to 'get'", { "absolute http:// or https:// URL" },
          http.get, "example.com/x")
      bad("bad argument #1 to 'get'", { "absolute http://" }, http.get, "")
      local s <close> = http.session()
      bad("bad argument #1 to 'get'", { "string expected, got table" },
          s.get, s, {})
    end)

    it("the options table and its names", function()
      bad("bad argument #2 to 'get'", { "table expected, got string" },
          http.get, url("/"), "x")
      bad("bad argument #2 to 'get'", { "unknown option 'timout'" },
          http.get, url("/"), { timout = 1 })
      bad("bad argument #2 to 'put'", { "option names must be strings" },
          http.put, url("/"), { 1 })
      bad("bad argument #2 to 'get'", { "unknown option 'base_url'" },
          http.get, url("/"), { base_url = "x" })
      bad("bad argument #1 to 'session'", { "unknown option 'body'" },
          http.session, { body = "x" })
      bad("bad argument #1 to 'session'", { "table expected, got number" },
          http.session, 1)
    end)

    it("headers: a table of clean names and values", function()
      bad("bad argument #2 to 'get'", { "option 'headers' must be a table" },
          http.get, url("/"), { headers = "X: y" })
      bad("bad argument #2 to 'get'", { "bad header name" },
          http.get, url("/"), { headers = { ["X\r\nY"] = "1" } })
      bad("bad argument #2 to 'get'", { "bad header name" },
          http.get, url("/"), { headers = { ["Bad Name"] = "1" } })
      bad("bad argument #2 to 'get'", { "bad header name" },
          http.get, url("/"), { headers = { [1] = "1" } })
      bad("bad argument #2 to 'get'", { "value of 'X' contains CR, LF or NUL" },
          http.get, url("/"), { headers = { X = "a\r\nInjected: yes" } })
      bad("bad argument #2 to 'get'", { "contains CR, LF or NUL" },
          http.get, url("/"), { headers = { X = "a\nb" } })
      bad("bad argument #2 to 'get'", { "contains CR, LF or NUL" },
          http.get, url("/"), { headers = { X = "a\0b" } })
      bad("bad argument #2 to 'get'", { "table value for 'X'" },
          http.get, url("/"), { headers = { X = {} } })
      bad("bad argument #1 to 'session'", { "contains CR, LF or NUL" },
          http.session, { headers = { X = "\r" } })
    end)

    it("the method", function()
      bad("bad argument #1 to 'request'", { "option 'method'", "token" },
          http.request, { url = url("/"), method = "GET /x HTTP/1.1\r\n" })
      bad("bad argument #1 to 'request'", { "option 'method'" },
          http.request, { url = url("/"), method = "" })
      bad("bad argument #1 to 'request'", { "option 'method'" },
          http.request, { url = url("/"), method = 1 })
      bad("bad argument #1 to 'request'", { "field 'url' expected" },
          http.request, { method = "GET" })
      bad("bad argument #1 to 'request'", { "table expected, got string" },
          http.request, url("/"))
    end)

    it("bodies: one kind at most, of the right type", function()
      bad("bad argument #2 to 'post'", { "only one of body, json, form and "
          .. "multipart" }, http.post, url("/"), { body = "x", json = {} })
      bad("bad argument #2 to 'post'", { "only one of" }, http.post, url("/"),
          { form = {}, multipart = {} })
      bad("bad argument #2 to 'post'", { "option 'body' must be a string" },
          http.post, url("/"), { body = 1 })
      bad("bad argument #2 to 'post'", { "option 'body'" },
          http.post, url("/"), { body = { file = "x", other = 1 } })
      bad("bad argument #2 to 'post'", { "option 'json' cannot be encoded" },
          http.post, url("/"), { json = { f = print } })
      bad("bad argument #2 to 'post'", { "option 'form'" },
          http.post, url("/"), { form = "a=1" })
      bad("bad argument #2 to 'post'", { "option 'form'", "values must be" },
          http.post, url("/"), { form = { a = {} , b = print } })
      bad("bad argument #2 to 'post'", { "option 'multipart'", "needs data or "
          .. "file" }, http.post, url("/"), { multipart = { f = {} } })
      bad("bad argument #2 to 'post'", { "option 'multipart'", "bad name" },
          http.post, url("/"), { multipart = { f = { data = "x",
          filename = "a\r\nb" } } })
      bad("bad argument #2 to 'get'", { "option 'query'" },
          http.get, url("/"), { query = { a = print } })
      bad("post: cannot read multipart file '/nonexistent/f'", {},
          http.post, url("/echo"), { multipart = { f = { file = "/nonexistent/f" } } })
      bad("post: cannot open body file '/nonexistent/f'", {},
          http.post, url("/echo"), { body = { file = "/nonexistent/f" } })
      assert.equal(200, http.get(url("/hello")).status)
    end)

    it("times: positive numbers or false", function()
      for _, k in ipairs{ "timeout", "connect_timeout", "read_timeout" } do
        bad("bad argument #2 to 'get'", { "option '" .. k .. "' must be "
            .. "positive" }, http.get, url("/"), { [k] = -1 })
        bad("bad argument #2 to 'get'", { "option '" .. k .. "' must be "
            .. "positive" }, http.get, url("/"), { [k] = 0 })
        bad("bad argument #2 to 'get'", { "option '" .. k .. "' must be a "
            .. "number of seconds or false" }, http.get, url("/"), { [k] = 0 / 0 })
        bad("bad argument #2 to 'get'", { "option '" .. k .. "'" },
            http.get, url("/"), { [k] = "1" })
        bad("bad argument #1 to 'session'", { "option '" .. k .. "'" },
            http.session, { [k] = -5 })
      end
      -- math.huge and false: no limit
      assert.equal(200, http.get(url("/hello"), { timeout = math.huge }).status)
      assert.equal(200, http.get(url("/hello"), { timeout = false }).status)
    end)

    it("the other options", function()
      local cases = {
        { "max_redirects", -1, "at least 0" },
        { "max_redirects", 1.5, "integer" },
        { "max_body", -1, "at least 0" },
        { "max_body", "big", "integer or false" },
        { "follow_redirects", 1, "boolean" },
        { "verify", "no", "boolean" },
        { "decompress", 0, "boolean" },
        { "stream", "yes", "boolean" },
        { "cafile", 1, "string or false" },
        { "proxy", true, "string or false" },
        { "proxy", "http://x\r\n", "CR, LF or NUL" },
        { "http_version", 2, '"1.0", "1.1" or "2"' },
        { "http_version", "3", '"1.0", "1.1" or "2"' },
        { "on_progress", "f", "function" },
        { "sensitive_headers", "Authorization", "table of header names" },
        { "sensitive_headers", { "a b" }, "header names" },
      }
      for _, c in ipairs(cases) do
        bad("bad argument #2 to 'get'", { "option '" .. c[1] .. "'", c[3] },
            http.get, url("/"), { [c[1]] = c[2] })
      end
      bad("bad argument #1 to 'session'", { "option 'max_connections'" },
          http.session, { max_connections = 0 })
      bad("bad argument #1 to 'session'", { "option 'max_per_host'" },
          http.session, { max_per_host = -1 })
      bad("bad argument #1 to 'session'", { "option 'cookies'", "boolean" },
          http.session, { cookies = 1 })
      bad("bad argument #1 to 'session'", { "option 'base_url'" },
          http.session, { base_url = "ftp://x/" })
      bad("bad argument #1 to 'session'", { "option 'base_url'" },
          http.session, { base_url = 5 })
    end)

    it("methods called on something that is no session or response",
      function()
        local s <close> = http.session()
        bad("bad argument #1 to 'get'", { "loom.http.Session expected" },
            s.get, {}, url("/"))
        bad("bad argument #1 to 'close'", { "loom.http.Session expected" },
            s.close, 1)
        local res = http.get(url("/hello"))
        bad("bad argument #1 to 'json'", { "loom.http.Response expected" },
            res.json, {})
        bad("bad argument #1 to 'chunks'", { "loom.http.Response expected" },
            res.chunks, nil)
        bad("bad argument #1 to 'save'", { "string expected" }, res.save, res, 1)
      end)
  end)

  describe("where no task can wait", function()
    it("outside a task (stock lua5.4, before loom.run)", function()
      if cli.SANITIZE then
        return pending("loom.so is sanitized: lua5.4 cannot load it")
      end
      local _, err, code = cli.module([[
        local loom = require "loom"
        local ok, e = pcall(loom.http.get, "http://127.0.0.1:1/")
        io.stderr:write(tostring(e), "\n")
      ]])
      assert.equal(0, code)
      assert.truthy(err:find("get: not inside a task", 1, true), err)
    end)

    it("in a __gc handler, and in a coroutine loom did not resume",
      function()
      local e
      setmetatable({}, { __gc = function()
        local _, x = pcall(http.get, url("/hello"))
        e = x
      end })
      collectgarbage()
      collectgarbage()
      assert.truthy(tostring(e):find("get: cannot wait here", 1, true))
      local resume = coroutine.resume
      local co = coroutine.create(function() return http.get(url("/hello")) end)
      local ok, x = resume(co)
      assert.is_true(ok)  -- loom's resume passes the wait on: it works
      assert.equal("hello", x.body)
    end)
  end)

  describe("hostile values", function()
    local HOSTILE = setmetatable({}, { __tostring = function() return "H" end })
    local function raise() error(HOSTILE) end
    local values = {
      n = 22, nil, true, false, 0, -1, 0 / 0, math.huge, -math.huge,
      math.maxinteger, math.mininteger, "", "x", "1", "\0\r\n", ("a"):rep(5000),
      {}, { 1, 2 }, setmetatable({}, { __index = raise, __pairs = raise,
      __len = raise, __tostring = raise }), print, coroutine.create(print),
      io.stdout,
    }
    local targets = {}
    for k, v in pairs(http) do
      if type(v) == "function" then targets[#targets + 1] = k end
    end
    table.sort(targets)

    it("every function returns or raises an error naming it", function()
      assert.is_true(#targets >= 9)
      local n = 0
      for _, name in ipairs(targets) do
        for i = 1, values.n do
          for j = 1, values.n, 3 do
            local ok, e = pcall(http[name], values[i], values[j])
            n = n + 1
            if not ok and e ~= HOSTILE then
              assert.is_string(e, name .. ": " .. tostring(e))
              assert.truthy(e:find(name, 1, true), name .. ": " .. e)
            end
          end
        end
      end
      assert.is_true(n > 1000)
      collectgarbage()
      assert.equal(200, http.get(url("/hello")).status)
    end)
  end)
end)
