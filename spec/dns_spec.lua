-- loom.dns.resolve: getaddrinfo on the thread pool, a list of addresses;
-- errors, options, and a cancelled lookup letting go of its request.
local it = require("spec.support.task").it
local error_of = require("spec.support.task").error_of
local loom = require "loom"
local dns = loom.dns
local io_ = require "loom.io"

local function has(list, x)
  for _, v in ipairs(list) do if v == x then return true end end
  return false
end

describe("loom.dns.resolve", function()
  it("resolves localhost from /etc/hosts", function()
    local addrs = dns.resolve("localhost")
    assert.is_true(#addrs >= 1)
    assert.is_true(has(addrs, "127.0.0.1") or has(addrs, "::1"))
  end)

  it("gives each address once", function()
    local addrs, seen = dns.resolve("localhost"), {}
    for _, a in ipairs(addrs) do
      assert.is_nil(seen[a])
      seen[a] = true
    end
  end)

  it("an IP address is itself, with no lookup", function()
    assert.same({ "127.0.0.1" }, dns.resolve("127.0.0.1"))
    assert.same({ "::1" }, dns.resolve("::1"))
    assert.same({ "::1" }, dns.resolve("[::1]"))
  end)

  it("family = 'inet' asks for IPv4 only", function()
    for _, a in ipairs(dns.resolve("localhost", { family = "inet" })) do
      assert.matches("^%d+%.%d+%.%d+%.%d+$", a)
    end
    assert.same({ "127.0.0.1" }, dns.resolve("127.0.0.1", { family = 4 }))
  end)

  it("an unknown host is an EAI error naming it", function()
    local err = error_of(dns.resolve, "no-such-host.invalid")
    assert.is_true(io_.is_error(err))
    assert.matches("^EAI_", err.code)
    assert.equal("resolve", err.op)
    assert.equal("no-such-host.invalid", err.host)
    assert.equal(("resolve: no-such-host.invalid: %s (%s)"):format(
      err.message, err.code), tostring(err))
  end)

  it("names itself in bad arguments", function()
    assert.matches("bad argument #1 to '.*resolve' %(string expected, got "
      .. "no value%)", error_of(dns.resolve))
    assert.matches("bad argument #1 to '.*resolve' %(host must be a "
      .. "non%-empty name%)", error_of(dns.resolve, ""))
    assert.matches("bad argument #2 to '.*resolve' %(family must be",
      error_of(dns.resolve, "localhost", { family = "ipx" }))
    assert.matches("bad argument #2 to '.*resolve' %(timeout must be",
      error_of(dns.resolve, "localhost", { timeout = "soon" }))
    assert.matches("bad argument #2 to '.*resolve' %(table expected",
      error_of(dns.resolve, "localhost", 5))
  end)

  it("many lookups at once", function()
    local jobs = {}
    for i = 1, 50 do
      jobs[i] = function() return dns.resolve("localhost") end
    end
    for _, addrs in ipairs(gather(jobs)) do assert.is_true(#addrs >= 1) end
  end)

  it("a cancelled lookup lets go of its request", function()
    local cleaned = 0
    local t = spawn(function()
      local g <close> = setmetatable({}, { __close = function()
        cleaned = cleaned + 1 end })
      return dns.resolve("cancelled-lookup.invalid")
    end)
    sleep(0)
    t:cancel()
    assert.is_true(loom.is_cancelled(select(2, pcall(t.await, t))))
    assert.equal(1, cleaned)
    for _ = 1, 500 do
      if io_.stats().requests == 0 then break end
      sleep(0.01)
    end
    assert.equal(0, io_.stats().requests)
  end)
end)
