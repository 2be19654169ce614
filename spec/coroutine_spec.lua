-- Coroutines stay Lua's: the same snippets give the same output under
-- lua5.4 and under loom (where the code runs inside a task), and
-- generators may wait (sleep, await) inside a task.
local it = require("spec.support.task").it
local cli = require "spec.support.cli"
local loom = require "loom"

-- show(...) prints its arguments with threads as "thread" (addresses differ)
local PRELUDE = [[
local function show(...)
  local t = table.pack(...)
  for i = 1, t.n do
    t[i] = type(t[i]) == "thread" and "thread" or tostring(t[i])
  end
  print(table.concat(t, " "))
end
local function closer(name)
  return setmetatable({}, { __close = function(_, e)
    print("close " .. name, e)
  end })
end
]]

local SNIPPETS = {
  ["running and isyieldable at the top level"] = [[
    show(coroutine.running())
    show(coroutine.isyieldable())
    show(coroutine.status(coroutine.running()))
    show(coroutine.isyieldable(coroutine.running()))
  ]],
  ["yield at the top level"] = [[
    show(pcall(coroutine.yield, 1))
    show(pcall(function() coroutine.yield(1) end))
    show(pcall(function() local x = coroutine.yield(1) return x end))
  ]],
  ["resume and close of the running top level"] = [[
    local main = coroutine.running()
    show(coroutine.resume(main))
    show(pcall(coroutine.close, main))
    show(pcall(function() local ok = coroutine.close(main) return ok end))
  ]],
  ["create, resume, yield, status, passing values both ways"] = [[
    local co = coroutine.create(function(a, b)
      show("in", a, b, coroutine.status(coroutine.running()))
      show("running", select(2, coroutine.running()), coroutine.isyieldable())
      local c, d = coroutine.yield(a + b, "y")
      show("got", c, d)
      local e = table.pack(coroutine.yield())
      show("packed", e.n, e[1], e[2], e[3])
      return "ret", nil
    end)
    show(coroutine.status(co))
    show(coroutine.resume(co, 1, 2))
    show(coroutine.status(co))
    show(coroutine.resume(co, "x", "y"))
    show(coroutine.resume(co, nil, 2, nil))
    show(coroutine.status(co))
    show(coroutine.resume(co))
    show(coroutine.isyieldable(co))
  ]],
  ["the top level seen from inside a coroutine"] = [[
    local main = coroutine.running()
    local co = coroutine.create(function()
      show(coroutine.status(main))
      show(coroutine.resume(main))
      show(pcall(coroutine.close, main))
      show(coroutine.isyieldable(main))
    end)
    show(coroutine.resume(co))
  ]],
  ["a coroutine resuming and closing itself, and its resumer"] = [[
    local outer
    outer = coroutine.create(function()
      show(coroutine.resume(outer))
      show(pcall(coroutine.close, outer))
      local inner = coroutine.create(function()
        show(coroutine.status(outer))
        show(coroutine.resume(outer))
        show(pcall(coroutine.close, outer))
        coroutine.yield("from inner")
      end)
      show(coroutine.resume(inner))
      show(coroutine.status(inner))
    end)
    show(coroutine.resume(outer))
    show(coroutine.status(outer))
  ]],
  ["errors inside a coroutine, and resuming it dead"] = [[
    local co = coroutine.create(function() error("boom") end)
    show(coroutine.resume(co))
    show(coroutine.status(co))
    show(coroutine.resume(co))
    show(coroutine.close(co))
    show(coroutine.close(co))
    local co2 = coroutine.create(function() error({}) end)
    local ok, e = coroutine.resume(co2)
    show(ok, type(e))
    local co3 = coroutine.create(function() local t = nil; return t.x end)
    show(coroutine.resume(co3))
    local done = coroutine.create(function() return 1 end)
    coroutine.resume(done)
    show(coroutine.resume(done))
    show(coroutine.status(done))
  ]],
  ["traceback of a coroutine that failed"] = [[
    local function f() error("deep") end
    local co = coroutine.create(function() local x = f() return x end)
    show(coroutine.resume(co))
    print(debug.traceback(co))
    print(debug.traceback(co, "msg"))
  ]],
  ["close runs pending <close> variables"] = [[
    local co = coroutine.create(function()
      local a <close> = closer("a")
      local b <close> = closer("b")
      coroutine.yield(1)
    end)
    show(coroutine.resume(co))
    show(coroutine.close(co))
    show(coroutine.status(co))
    show(coroutine.resume(co))
    local bad = coroutine.create(function()
      local x <close> = setmetatable({}, { __close = function() error("in close") end })
      coroutine.yield()
    end)
    coroutine.resume(bad)
    show(coroutine.close(bad))
    show(coroutine.close(coroutine.create(print)))
  ]],
  ["wrap: a generator, and calling it dead"] = [[
    local gen = coroutine.wrap(function()
      for i = 1, 3 do coroutine.yield(i, i * 10) end
      return "end"
    end)
    show(gen()) show(gen()) show(gen()) show(gen())
    show(pcall(gen))
    show(pcall(function() local x = gen() return x end))
    local n = 0
    for v in coroutine.wrap(function() for i = 1, 4 do coroutine.yield(i) end end) do
      n = n + v
    end
    show(n)
  ]],
  ["wrap: errors get a position and close pending <close> variables"] = [[
    local w = coroutine.wrap(function()
      local c <close> = closer("w")
      error("werr")
    end)
    show(pcall(w))
    local w2 = coroutine.wrap(function() error("noloc", 0) end)
    show(pcall(function() local x = w2() return x end))
    local w3 = coroutine.wrap(function() error({ code = 7 }) end)
    local ok, e = pcall(w3)
    show(ok, type(e), e.code)
    local w4 = coroutine.wrap(function() error(42) end)
    show(pcall(w4))
    local w5 = coroutine.wrap(function()
      local c <close> = closer("w5")
      coroutine.yield("once")
      error("second call fails")
    end)
    show(w5())
    show(pcall(w5))
    show(pcall(w5))
  ]],
  ["wrap: the wrapped coroutine's own view"] = [[
    local w
    w = coroutine.wrap(function()
      show(select(2, coroutine.running()), coroutine.isyieldable())
      show(pcall(w))
      coroutine.yield()
    end)
    w()
  ]],
  ["yield across a C-call boundary"] = [[
    local co = coroutine.create(function()
      return string.gsub("abc", "%w", function(c) coroutine.yield(c) end)
    end)
    show(coroutine.resume(co))
    local co2 = coroutine.create(function()
      table.sort({ 3, 2, 1 }, function(a, b) coroutine.yield() return a < b end)
    end)
    show(coroutine.resume(co2))
    show(pcall(string.gsub, "abc", "%w", function(c) coroutine.yield(c) end))
  ]],
  ["yield across pcall and xpcall inside a coroutine"] = [[
    local co = coroutine.create(function()
      local ok, v = pcall(function() return coroutine.yield("in pcall") end)
      show("pcall gave", ok, v)
      local ok2, v2 = xpcall(function() coroutine.yield("in xpcall"); error("x", 0) end,
        function(m) return "handled " .. m end)
      show("xpcall gave", ok2, v2)
      return "end"
    end)
    show(coroutine.resume(co))
    show(coroutine.resume(co, "v1"))
    show(coroutine.resume(co))
  ]],
  ["bad arguments"] = [[
    show(pcall(coroutine.resume, 1))
    show(pcall(coroutine.status, nil))
    show(pcall(coroutine.close))
    show(pcall(coroutine.wrap, 1))
    show(pcall(coroutine.create, 1))
    show(pcall(coroutine.isyieldable, "x"))
    show(pcall(function() local s = coroutine.status({}) return s end))
    show(pcall(function() local ok = coroutine.resume() return ok end))
  ]],
  ["many values through resume and yield"] = [[
    local co = coroutine.create(function(...)
      local args = table.pack(...)
      while true do args = table.pack(coroutine.yield(table.unpack(args, 1, args.n))) end
    end)
    local r = table.pack(coroutine.resume(co, table.unpack({}, 1, 100)))
    show(r.n)
    r = table.pack(coroutine.resume(co, 1, nil, 3))
    show(r.n, r[1], r[2], r[3], r[4])
  ]],
}

local function snippet_file(body)
  return cli.tmpfile(PRELUDE .. body, ".lua")
end

describe("coroutines, compared with lua5.4", function()
  local names = {}
  for name in pairs(SNIPPETS) do names[#names + 1] = name end
  table.sort(names)

  for _, name in ipairs(names) do
    it(name .. " (main chunk: stdout, stderr, exit code)", function()
      local file = snippet_file(SNIPPETS[name])
      local lo, le, lc = cli.lua({ file }, { argv0 = "lua" })
      local mo, me, mc = cli.loom({ file }, { argv0 = "lua" })
      os.remove(file)
      assert.equal(lo, mo)
      assert.equal(le, me)
      assert.equal(lc, mc)
    end)

    it(name .. " (inside a spawned task: stdout)", function()
      local file = snippet_file(SNIPPETS[name])
      local runner = cli.tmpfile(([[
        local f = assert(loadfile(%q))
        spawn(f):await()
      ]]):format(file), ".lua")
      local lo = cli.lua({ file })
      local mo, me, mc = cli.loom({ runner })
      os.remove(file)
      os.remove(runner)
      assert.equal("", me)
      assert.equal(0, mc)
      assert.equal(lo, mo)
    end)
  end

  it("-e chunks see the same as lua -e", function()
    local src = "print(select(2, coroutine.running()), coroutine.isyieldable());"
      .. "print(pcall(coroutine.yield));"
      .. "print(coroutine.status(coroutine.running()))"
    local lo, le, lc = cli.lua({ "-e", src })
    local mo, me, mc = cli.loom({ "-e", src })
    assert.same({ lo, le, lc }, { mo, me, mc })
  end)

  it("an uncaught yield at the top level fails as in lua5.4", function()
    local file = cli.tmpfile("coroutine.yield(1)\n", ".lua")
    local lo, le, lc = cli.lua({ file }, { argv0 = "lua" })
    local mo, me, mc = cli.loom({ file }, { argv0 = "lua" })
    os.remove(file)
    assert.equal(lo, mo)
    assert.equal(le, me)
    assert.equal(lc, mc)
    assert.equal(1, mc)
  end)
end)

describe("coroutines inside tasks", function()
  it("a coroutine.wrap generator may sleep between yields", function()
    local gen = coroutine.wrap(function()
      for i = 1, 3 do
        loom.sleep(0.01)
        coroutine.yield(i)
      end
      return "end"
    end)
    assert.same({ 1, 2, 3, "end" }, { gen(), gen(), gen(), gen() })
  end)

  it("a generator may await tasks and futures", function()
    local f = loom.future()
    local gen = coroutine.wrap(function()
      local t = loom.spawn(function() loom.sleep(0.01); return "task" end)
      coroutine.yield(t:await())
      loom.spawn(function() f:set("future") end)
      coroutine.yield(f:await())
      coroutine.yield(loom.gather(function() return "gathered" end))
    end)
    assert.same({ "task", "future", "gathered" }, { gen(), gen(), gen() })
  end)

  it("coroutine.resume passes the waits through, values intact", function()
    local co = coroutine.create(function(a)
      local b = coroutine.yield(a * 2)
      loom.sleep(0.01)
      local c = coroutine.yield(b .. "!")
      loom.sleep(0)
      return c, "done"
    end)
    assert.same({ true, 10 }, { coroutine.resume(co, 5) })
    assert.equal("suspended", coroutine.status(co))
    assert.same({ true, "b!" }, { coroutine.resume(co, "b") })
    assert.same({ true, "c", "done" }, { coroutine.resume(co, "c") })
    assert.equal("dead", coroutine.status(co))
  end)

  it("generators in several tasks interleave correctly", function()
    local log = {}
    local function worker(name, d)
      local gen = coroutine.wrap(function()
        for i = 1, 3 do
          loom.sleep(d)
          coroutine.yield(name .. i)
        end
      end)
      for _ = 1, 3 do
        local v = gen()
        log[#log + 1] = v
      end
    end
    loom.gather(function() worker("a", 0.03) end,
                function() worker("b", 0.075) end)
    assert.same({ "a1", "a2", "b1", "a3", "b2", "b3" }, log)
  end)

  it("nested generators that sleep", function()
    local outer = coroutine.wrap(function()
      local inner = coroutine.wrap(function()
        loom.sleep(0.01)
        coroutine.yield("inner")
      end)
      coroutine.yield(inner() .. "+outer")
    end)
    assert.equal("inner+outer", outer())
  end)

  it("an error after a sleep inside a generator propagates with position",
    function()
      local gen = coroutine.wrap(function()
        loom.sleep(0.01)
        error("gen failed")
      end)
      local ok, err = pcall(gen)
      assert.is_false(ok)
      assert.matches("^spec/coroutine_spec%.lua:%d+: gen failed$", err)
    end)

  it("a coroutine waiting inside a task cannot be resumed by someone else",
    function()
      -- co is in the middle of a call (sleep) made for its owner task: it is
      -- not suspended at a yield, so nobody else may resume it; its owner
      -- gets the real outcome of the sleep (in a subprocess: resuming it
      -- anyway leaves a stale wait behind)
      local out, err, code = cli.loom({ "-e", [[
        local co = coroutine.create(function()
          sleep(0.05)
          return "slept"
        end)
        local owner = spawn(function() return coroutine.resume(co) end)
        sleep(0.01)
        print(coroutine.status(co))
        print(coroutine.resume(co))
        print(owner:await())
      ]] }, { timeout = 5 })
      assert.equal("normal\nfalse\tcannot resume non-suspended coroutine\n"
        .. "true\tslept\n", out)
      assert.equal("", err)
      assert.equal(0, code)
    end)

  it("a generator that waits where the task cannot yield gets a clear error",
    function()
      -- resumed from a table.sort comparator: the task cannot suspend, so
      -- the wait inside the coroutine must fail there, cleanly, and leave
      -- nothing behind (run in a subprocess: a stale wait can hang loom)
      local out, err, code = cli.loom({ "-e", [[
        local t = spawn(function()
          local co = coroutine.create(function()
            sleep(0.01)
            return "slept"
          end)
          local r
          table.sort({ 1, 2 }, function(a, b)
            r = table.pack(coroutine.resume(co))
            return a < b
          end)
          print(r[1], (tostring(r[2]):gsub("^.-:%d+: ", "")))
          print(coroutine.status(co))
          local t0 = loom.now()
          sleep(0.1)
          print(loom.now() - t0 >= 0.099)
        end)
        sleep(0.05) -- another sleeper, which must still be woken
        t:await()
        print("end")
      ]] }, { timeout = 5 })
      assert.equal("false\tsleep: cannot wait here: in a coroutine resumed "
        .. "from a C call that cannot yield (a callback or metamethod called "
        .. "from C); wait outside that call, or spawn a task for the waiting "
        .. "part\ndead\ntrue\nend\n", out)
      assert.equal("", err)
      assert.equal(0, code)
    end)

  it("the task's thread is what coroutine.running gives, and is not resumable",
    function()
      local t = loom.spawn(function()
        local me, ismain = coroutine.running()
        return me, ismain
      end)
      local th, ismain = t:await()
      assert.equal("thread", type(th))
      assert.is_true(ismain)
      local co, main = coroutine.running()
      assert.is_true(main)
      assert.equal("running", coroutine.status(co))
      local ok, err = coroutine.resume(co)
      assert.is_false(ok)
      assert.equal("cannot resume non-suspended coroutine", err)
    end)

  it("a task waiting in a generator, from another task, is not resumable",
    function()
      local th
      local t = loom.spawn(function()
        th = coroutine.running()
        loom.sleep(0.03)
        return "ok"
      end)
      loom.sleep(0.01)
      local ok, err = coroutine.resume(th)
      assert.is_false(ok)
      assert.equal("cannot resume non-suspended coroutine", err)
      assert.is_false(pcall(coroutine.close, th))
      assert.equal("ok", t:await())
    end)
end)
