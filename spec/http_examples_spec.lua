-- The HTTP examples run against the local test server: fetch_pages.lua
-- (pages at once, then one after another) and download.lua (a stream to
-- a file, with plain progress lines when stderr is not a terminal).
local it = require("spec.support.task").it
local cli = require "spec.support.cli"
local server = require "spec.support.http"

local srv

describe("HTTP examples", function()
  setup(function() srv = server.start() end)
  teardown(function() srv:stop() cli.cleanup() end)

  it("fetch_pages.lua fetches every page at once", function()
    local urls = {}
    for i = 1, 5 do urls[i] = srv:url("/delay/0.3?page=" .. i) end
    urls[6] = srv:url("/status/404")
    urls[7] = "http://127.0.0.1:1/refused"
    local out, err, code = cli.run{ args = { "examples/fetch_pages.lua",
      table.unpack(urls) }, env = server.NO_PROXY_ENV, timeout = 30 }
    assert.equal("", err)
    assert.equal(0, code)
    for i = 1, 5 do
      assert.truthy(out:find("page=" .. i .. "%s+200%s+5 bytes"), out)
    end
    assert.truthy(out:find("/status/404%s+404%s+10 bytes"), out)
    assert.truthy(out:find("refused%s+failed: loom.http.Error: connect"), out)
    local at_once, in_turn = out:match(
      "7 pages: ([%d.]+) s at once, ([%d.]+) s one after another")
    assert.truthy(at_once, out)
    assert.is_true(tonumber(at_once) < 1.2, out)
    assert.is_true(tonumber(in_turn) >= 1.5, out)
  end)

  it("fetch_pages.lua without URLs says how to use it", function()
    local _, err, code = cli.run{ args = { "examples/fetch_pages.lua" } }
    assert.equal(2, code)
    assert.truthy(err:find("usage: loom fetch_pages.lua URL...", 1, true))
  end)

  it("download.lua streams to a file with progress lines", function()
    local file = cli.tmpfile("")
    local out, err, code = cli.run{ args = { "examples/download.lua",
      srv:url("/stream/" .. 8 * 1024 * 1024), file },
      env = server.NO_PROXY_ENV, timeout = 30 }
    assert.equal(0, code, err)
    assert.truthy(out:find("^saved 8.0 MB to " .. file:gsub("%p", "%%%0")), out)
    assert.truthy(err:find("8.0 MB %(100%%%) at"), err)
    local f = assert(io.open(file, "rb"))
    assert.equal(8 * 1024 * 1024, #f:read("a"))
    f:close()
  end)

  it("download.lua reports an HTTP error status", function()
    local file = cli.tmpfile("")
    local _, err, code = cli.run{ args = { "examples/download.lua",
      srv:url("/status/404"), file }, env = server.NO_PROXY_ENV }
    assert.equal(1, code)
    assert.truthy(err:find("404 Not Found", 1, true), err)
  end)
end)
