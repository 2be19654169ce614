-- loom.http over TLS and HTTP/2, against Debian's nginx on 127.0.0.1 with
-- a certificate made for the run (SANs IP:127.0.0.1 and DNS:localhost),
-- in front of the Python test server: verification on by default (the
-- error names the CA file), cafile, verify = false, HTTP/2 by ALPN with
-- one connection for many requests (PIPEWAIT), streams on HTTP/1.1.
local it = require("spec.support.task").it
local error_of = require("spec.support.task").error_of
local cli = require "spec.support.cli"
local server = require "spec.support.http"
local loom = require "loom"

local http = loom.http
local srv, tls, why

describe("loom.http over TLS", function()
  setup(function()
    srv = server.start()
    tls, why = server.nginx(srv)
  end)
  teardown(function()
    if tls then tls:stop() end
    srv:stop()
    cli.cleanup()
  end)

  local function need()
    if not tls then pending(why) return false end
    return true
  end

  it("rejects an unknown certificate, naming the CA file", function()
    if not need() then return end
    local e = error_of(http.get, tls:url("/hello"))
    assert.equal("tls", e.kind)
    assert.equal("CURLE_PEER_FAILED_VERIFICATION", e.curl_code)
    assert.truthy(e.message:find("CA file: /", 1, true), e.message)
    local bad = cli.tmpfile("not a certificate")
    e = error_of(http.get, tls:url("/hello"), { cafile = bad })
    assert.equal("tls", e.kind)
  end)

  it("accepts it with cafile, for 127.0.0.1 and localhost", function()
    if not need() then return end
    local res = http.get(tls:url("/hello"), { cafile = tls.cafile })
    assert.equal("hello over tls", res.body)
    res = http.get("https://localhost:" .. tls.port .. "/hello",
                   { cafile = tls.cafile })
    assert.equal(200, res.status)
    local s <close> = http.session{ cafile = tls.cafile }
    assert.equal("hello over tls", s:get(tls:url("/hello")).body)
  end)

  it("a name the certificate does not hold fails", function()
    if not need() then return end
    local e = error_of(http.get, "https://other.localhost:" .. tls.port .. "/hello",
                       { cafile = tls.cafile })
    assert.equal("tls", e.kind)
  end)

  it("accepts anything with verify = false", function()
    if not need() then return end
    assert.equal(200, http.get(tls:url("/hello"), { verify = false }).status)
    local s <close> = http.session{ verify = false }
    assert.equal(200, s:get(tls:url("/hello")).status)
  end)

  it("speaks HTTP/2 by default, HTTP/1.1 when asked", function()
    if not need() then return end
    local s <close> = http.session{ cafile = tls.cafile }
    local res = s:get(tls:url("/echo"))
    assert.equal("2", res.http_version)
    assert.equal("GET", res:json().method)
    assert.equal("1.1", s:get(tls:url("/hello"), { http_version = "1.1" }).http_version)
    local h11 <close> = http.session{ cafile = tls.cafile, http_version = "1.1" }
    assert.equal("1.1", h11:get(tls:url("/hello")).http_version)
  end)

  it("64 requests at once share one HTTP/2 connection", function()
    if not need() then return end
    local s <close> = http.session{ cafile = tls.cafile }
    local jobs = {}
    for i = 1, 64 do
      jobs[i] = function() return s:get(tls:url("/connection")).body end
    end
    local seen, n = {}, 0
    for _, c in ipairs(loom.gather(jobs)) do
      if not seen[c] then seen[c] = true n = n + 1 end
    end
    assert.equal(1, n)
  end)

  it("POST bodies and redirects work over HTTP/2", function()
    if not need() then return end
    local s <close> = http.session{ cafile = tls.cafile }
    local v = s:post(tls:url("/echo"), { json = { h2 = true } }):json()
    assert.equal("POST", v.method)
    assert.equal('{"h2":true}', v.body)
    local res = s:get(tls:url("/redirect/302?to=/hello"))
    assert.equal("hello over tls", res.body)
  end)

  it("https to http drops the credentials", function()
    if not need() then return end
    local to = srv:url("/echo")
    local res = http.get(tls:url("/redirect/302?to=" .. to:gsub(":", "%%3A")
      :gsub("/", "%%2F")), { cafile = tls.cafile,
      headers = { Authorization = "Bearer t", ["X-Kept"] = "k" } })
    local v = res:json()
    assert.equal(to, res.url)
    assert.is_nil(v.headers.authorization)
    assert.equal("k", v.headers["x-kept"])
  end)

  it("a paused stream uses HTTP/1.1 and does not stall the others",
    function()
      if not need() then return end
      local s <close> = http.session{ cafile = tls.cafile }
      local res <close> = s:get(tls:url("/stream/" .. 64 * 1024 * 1024),
                                { stream = true })
      assert.equal("1.1", res.http_version)
      assert.truthy(res:chunks()())  -- then left paused
      loom.sleep(0.2)
      local t0 = loom.now()
      local jobs = {}
      for i = 1, 10 do jobs[i] = function() return s:get(tls:url("/hello")).body end end
      for _, b in ipairs(loom.gather(jobs)) do assert.equal("hello over tls", b) end
      assert.is_true(loom.now() - t0 < 2)
    end)
end)
