local it = require("spec.support.task").it

describe("loom inside busted", function()
  it("runs spec bodies inside a task", function()
    local t0 = loom.now()
    loom.sleep(0.01)
    assert.is_true(loom.now() - t0 >= 0.009)
  end)

  it("runs each spec body as its own task", function()
    local me, ismain = coroutine.running()
    assert.is_true(ismain)
    local t = loom.spawn(function() return coroutine.running() end)
    assert.are_not.equal(me, t:await())
  end)
end)
