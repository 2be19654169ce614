-- The spec helpers themselves: spec.support.task's `it` must fail a test
-- that leaves a failed task unretrieved, and pass everything else through.
local it = require("spec.support.task").it
local cli = require "spec.support.cli"

-- Runs busted under loom on a spec file made of src; returns its output
-- (stdout and stderr together) and exit code.
local function busted(src)
  local file = cli.tmpfile(src, "_spec.lua")
  local out, err, code = cli.run({ prog = "busted",
    args = { "--lua=" .. cli.LOOM, "-o", "plainTerminal", file } })
  os.remove(file)
  return out .. err, code
end

describe("spec.support.task.it", function()
  it("passes a body that passes, and runs it in its own task", function()
    local out, code = busted([[
      local it = require("spec.support.task").it
      local outer = coroutine.running()
      it("passes", function()
        assert.are_not.equal(outer, coroutine.running())
        loom.sleep(0.01)
      end)
    ]])
    assert.equal(0, code, out)
    assert.matches("1 success / 0 failures / 0 errors / 0 pending", out)
  end)

  it("fails a test that leaves a failed task nobody retrieved", function()
    local out, code = busted([[
      local it = require("spec.support.task").it
      it("leaks a failure", function()
        loom.spawn(function() error("leaked failure", 0) end)
        loom.sleep(0.01)
      end)
      it("is fine afterwards", function() end)
    ]])
    assert.equal(1, code)
    assert.matches("1 success / 0 failures / 1 error / 0 pending", out)
    assert.matches("1 task%(s%) failed during this test and nobody retrieved the error", out)
    assert.matches("error in a task nobody awaited: leaked failure", out)
  end)

  it("passes assertion failures, errors and pending through", function()
    local out, code = busted([[
      local it = require("spec.support.task").it
      it("fails", function() assert.equal(1, 2) end)
      it("errors", function() error("plain error") end)
      it("is pending", function() pending("not yet") end)
    ]])
    assert.equal(1, code)
    assert.matches("0 successes / 1 failure / 1 error / 1 pending", out)
    assert.matches("_spec%.lua:%d+: plain error", out)
  end)

  it("keeps error values as they are", function()
    local out, code = busted([[
      local it = require("spec.support.task").it
      local e = setmetatable({}, { __tostring = function() return "custom object" end })
      it("raises an object", function() error(e) end)
    ]])
    assert.equal(1, code)
    assert.matches("custom object", out)
  end)
end)

describe("spec.support.cli", function()
  it("returns stdout, stderr and the exit code", function()
    local out, err, code = cli.loom({ "-e", "io.write('o') io.stderr:write('e') os.exit(3)" })
    assert.same({ "o", "e", 3 }, { out, err, code })
  end)

  it("feeds stdin, sets and unsets environment variables", function()
    local out = cli.loom({ "-" }, {
      stdin = "print(io.read('a'), os.getenv('A_VAR'), os.getenv('HOME'))",
      env = { A_VAR = "set", HOME = false } })
    assert.equal("\tset\tnil\n", out)
  end)

  it("quotes arguments with spaces and quotes", function()
    local out = cli.loom({ "-", "it's", "a b" },
      { stdin = "print(...)" })
    assert.equal("it's\ta b\n", out)
  end)

  it("sets the program name with argv0", function()
    local _, err = cli.loom({ "-e", "error('x', 0)" }, { argv0 = "custom-name" })
    assert.matches("^custom%-name: x\n", err)
  end)
end)
