-- loom's require: module top-level await, package.loaded semantics kept,
-- a module another task is loading waited for, not loaded twice.
local T = require "spec.support.task"
local it, err_of = T.it, T.error_of
local cli = require "spec.support.cli"
local loom = require "loom"

local dir

local function module(name, src)
  local f = assert(io.open(dir .. "/" .. name .. ".lua", "w"))
  f:write(src)
  f:close()
end

describe("require", function()
  local saved_path
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. cli.quote(dir)))
    saved_path = package.path
    package.path = dir .. "/?.lua;" .. package.path
  end)
  after_each(function()
    package.path = saved_path
    os.execute("rm -rf " .. cli.quote(dir))
  end)

  it("loads a module whose top level waits", function()
    module("m_sleeps", "loom.sleep(0.01) return { answer = 42 }")
    local m = require "m_sleeps"
    assert.equal(42, m.answer)
    assert.equal(m, package.loaded.m_sleeps)
    package.loaded.m_sleeps = nil
  end)

  it("returns the loader data second, as Lua does, and only the module "
    .. "once loaded", function()
      module("m_data", "return ...")
      local a, b = require "m_data"
      assert.equal("m_data", a)
      assert.matches("/m_data%.lua$", b)
      assert.equal(1, select("#", require "m_data"))
      package.loaded.m_data = nil
    end)

  it("a module that returns nothing is true in package.loaded", function()
    module("m_nothing", "loaded_nothing = (loaded_nothing or 0) + 1")
    assert.is_true(require "m_nothing")
    assert.is_true(require "m_nothing")
    assert.equal(1, loaded_nothing)
    package.loaded.m_nothing = nil
    loaded_nothing = nil
  end)

  it("a second task requiring a module still loading waits for it",
    function()
      module("m_once", [[
        m_once_loads = (m_once_loads or 0) + 1
        loom.sleep(0.02)
        return { n = m_once_loads }
      ]])
      local tasks = {}
      for i = 1, 3 do tasks[i] = loom.spawn(require, "m_once") end
      local r = loom.gather(tasks)
      assert.equal(1, m_once_loads)
      assert.equal(r[1], r[2])
      assert.equal(r[1], r[3])
      package.loaded.m_once = nil
      m_once_loads = nil
    end)

  it("when the load fails, a task that waited tries itself", function()
    module("m_flaky", [[
      m_flaky_tries = (m_flaky_tries or 0) + 1
      loom.sleep(0.01)
      if m_flaky_tries == 1 then error("first try fails", 0) end
      return "second try"
    ]])
    local a = loom.spawn(require, "m_flaky")
    local b = loom.spawn(require, "m_flaky")
    assert.equal("first try fails", err_of(a.await, a))
    assert.equal("second try", b:await())
    assert.equal(2, m_flaky_tries)
    package.loaded.m_flaky = nil
    m_flaky_tries = nil
  end)

  it("a waiting requirer can be cancelled", function()
    module("m_slow", "loom.sleep(0.05) return 'slow'")
    local a = loom.spawn(require, "m_slow")
    local b = loom.spawn(require, "m_slow")
    loom.sleep(0.01)
    b:cancel()
    assert.is_true(loom.is_cancelled(err_of(b.await, b)))
    assert.equal("slow", a:await())
    package.loaded.m_slow = nil
  end)

  it("a module requiring itself while it loads is loaded again, as Lua "
    .. "does", function()
      module("m_self", [[
        m_self_depth = (m_self_depth or 0) + 1
        if m_self_depth < 3 then require "m_self" end
        return m_self_depth
      ]])
      assert.equal(3, require "m_self")
      package.loaded.m_self = nil
      m_self_depth = nil
    end)

  it("a module missing gives Lua's message", function()
    assert.matches("^module 'no_such_mod_zz' not found:\n\tno field "
      .. "package%.preload%['no_such_mod_zz'%]\n\tno file '",
      err_of(require, "no_such_mod_zz"))
    assert.matches("bad argument #1 to 'require' %(string expected, got "
      .. "no value%)", err_of(function() require() end))
  end)

  it("package.preload and package.searchers are used as Lua uses them",
    function()
      package.preload.m_pre = function(name, extra)
        return { name = name, extra = extra }
      end
      local m = require "m_pre"
      assert.equal("m_pre", m.name)
      assert.equal(":preload:", m.extra)
      package.preload.m_pre = nil
      package.loaded.m_pre = nil
      local saved = package.searchers
      package.searchers = nil
      assert.matches("'package%.searchers' must be a table",
        err_of(require, "m_none"))
      package.searchers = saved
    end)

  it("from a sort comparator (no waiting possible), a module that waits "
    .. "says why", function()
      module("m_waits", "loom.sleep(0) return 1")
      local e = err_of(table.sort, { 1, 2 }, function()
        require "m_waits"
        return false
      end)
      assert.matches("sleep: cannot wait here: inside a table%.sort "
        .. "comparator", e)
    end)

  it("works outside a task, as Lua's (module mode)", function()
    if cli.SANITIZE then pending("loom.so is sanitized: lua5.4 cannot load it") end
    module("m_plain", "return 'plain'")
    local out = cli.module(([[
      local loom = require "loom"
      package.path = %q .. package.path
      print((require "m_plain"))
      print(loom.run(function() return require "m_plain" end))
    ]]):format(dir .. "/?.lua;"))
    assert.equal("plain\nplain\n", out)
  end)
end)
