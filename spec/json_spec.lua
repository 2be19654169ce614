-- loom.json: lua-cjson with integers and named errors.
local it = require("spec.support.task").it
local loom = require "loom"
local json = loom.json

local err_of = require("spec.support.task").error_of

describe("loom.json", function()
  it("is loaded on first use and is require('loom.json')", function()
    assert.equal("table", type(json))
    assert.equal(json, require("loom.json"))
    assert.equal(json, rawget(loom, "json"))
    assert.is_nil(loom.no_such_submodule)
  end)

  it("decodes objects, arrays, strings, booleans and null", function()
    local v = json.decode('{"a":[1,"two",true,false,null],"b":{"c":"d"},"e":""}')
    assert.same({ 1, "two", true, false, json.null }, v.a)
    assert.same({ c = "d" }, v.b)
    assert.equal("", v.e)
  end)

  it("decodes integral numbers as Lua integers", function()
    local v = json.decode('[1, -4, 0, 3.0, 1e3, 12345678901, 9007199254740992]')
    for i, want in ipairs({ 1, -4, 0, 3, 1000, 12345678901, 9007199254740992 }) do
      assert.equal("integer", math.type(v[i]), "item " .. i)
      assert.equal(want, v[i])
    end
    local nested = json.decode('{"a":{"b":[{"c":7}]}}')
    assert.equal("integer", math.type(nested.a.b[1].c))
    assert.equal("integer", math.type(json.decode("3")))
    assert.equal(3, json.decode("3"))
  end)

  it("keeps fractional numbers as floats", function()
    local v = json.decode("[2.5, -0.125, 1e-3]")
    assert.equal("float", math.type(v[1]))
    assert.equal(2.5, v[1])
    assert.equal(-0.125, v[2])
    assert.equal(0.001, v[3])
    assert.equal(3.5, json.decode("3.5"))
  end)

  it("decodes integers beyond 2^53 exactly", function()
    pending("lua-cjson parses numbers as doubles: 9007199254740993 comes back as ...992")
    assert.equal(9007199254740993, json.decode("9007199254740993"))
  end)

  it("decodes scalars at the top level", function()
    assert.equal("x", json.decode('"x"'))
    assert.is_true(json.decode("true"))
    assert.equal(json.null, json.decode("null"))
  end)

  it("decodes escapes and UTF-8", function()
    assert.equal("é\n\"\\/", json.decode('"\\u00e9\\n\\"\\\\\\/"'))
    assert.equal("日本", json.decode('"日本"'))
  end)

  it("json.null is a unique value that encodes as null", function()
    assert.is_not_nil(json.null)
    assert.equal("null", json.encode(json.null))
    assert.equal('[1,null,3]', json.encode({ 1, json.null, 3 }))
  end)

  it("encodes values", function()
    assert.equal("[1,2,3]", json.encode({ 1, 2, 3 }))
    assert.equal('{"a":1}', json.encode({ a = 1 }))
    assert.equal('"x\\n"', json.encode("x\n"))
    assert.equal("1.5", json.encode(1.5))
    assert.equal("3", json.encode(3))
    assert.equal("true", json.encode(true))
    assert.equal("{}", json.encode({}))
  end)

  it("round-trips", function()
    local v = { name = "loom", list = { 1, 2.5, "x", false }, nested = { deep = { n = 10 } } }
    assert.same(v, json.decode(json.encode(v)))
  end)

  it("reports decode errors as json.decode: ...", function()
    assert.equal("json.decode: Expected object key string but found invalid "
      .. "token at character 2", err_of(json.decode, "{bad"))
    assert.equal("json.decode: Expected value but found T_END at character 1",
      err_of(json.decode, ""))
    assert.equal("json.decode: Expected comma or array end but found T_END at "
      .. "character 5", err_of(json.decode, "[1,2"))
  end)

  it("decode errors point at the caller's line", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local err = err_of(function() local v = json.decode("[") return v end)
    assert.equal("spec/json_spec.lua:" .. line
      .. ": json.decode: Expected value but found T_END at character 2", err)
  end)

  it("decode wants a string", function()
    assert.matches("bad argument #1 to 'decode' %(string expected, got number%)$",
      err_of(json.decode, 1))
    assert.matches("bad argument #1 to 'decode' %(string expected, got nil%)$",
      err_of(json.decode))
    assert.matches("bad argument #1 to 'decode' %(string expected, got table%)$",
      err_of(json.decode, {}))
  end)

  it("reports encode errors as json.encode: ...", function()
    assert.equal("json.encode: Cannot serialise function: type not supported",
      err_of(json.encode, function() end))
    assert.equal("json.encode: Cannot serialise number: must not be NaN or Inf",
      err_of(json.encode, 0 / 0))
    assert.equal("json.encode: Cannot serialise number: must not be NaN or Inf",
      err_of(json.encode, math.huge))
    local t = {}
    t.t = t
    assert.equal("json.encode: Cannot serialise, excessive nesting (1001)",
      err_of(json.encode, t))
  end)

  it("works inside tasks running at the same time", function()
    local r = loom.gather(
      function() loom.sleep(0.01); return json.decode('{"n":1}').n end,
      function() return json.encode({ 2 }) end)
    assert.equal(1, r)
  end)
end)
