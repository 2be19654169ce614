-- The REPL: driven through a pseudo-terminal as a person would use it
-- (spec/support/pty.lua), and loom -i on a pipe beside lua5.4 -i.
local it = require("spec.support.task").it
local cli = require "spec.support.cli"
local pty = require "spec.support.pty"

local ENTER, CTRL_C, CTRL_D, TAB, UP = "\r", "\3", "\4", "\t", "\27[A"

local function tmpdir()
  local name = os.tmpname()
  os.remove(name)
  assert(os.execute("mkdir " .. cli.quote(name)))
  return name
end

local function rmdir(name)
  os.execute("rm -rf " .. cli.quote(name))
end

local function slurp(name)
  local f = io.open(name, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Types each line (a string), waits for its echo and the prompt after it;
-- { enter = text } types text and Enter and waits for the echo only; any
-- other table is a step of pty.run. Then Ctrl-D and the exit. Returns the
-- result (asserted ok, status 0).
local function session(lines, opts)
  local steps = { { expect = "> " } }
  local function add(s) steps[#steps + 1] = s end
  for _, l in ipairs(lines) do
    if type(l) == "string" then
      add(l .. ENTER)
      add({ expect = l .. "\r\n" })
      add({ line = "> " })
    else
      add(l)
    end
  end
  add(CTRL_D)
  add({ wait = true })
  local r = pty.run(steps, opts)
  assert(r.ok, r.error)
  assert.equal(0, r.status, r.error)
  return r
end

-- The output without the terminal's carriage returns.
local function text(r)
  return (r.output:gsub("\r\n", "\n"))
end

describe("the REPL on a terminal", function()
  after_each(cli.cleanup)

  it("starts with a banner and a hint, and prints expressions as lua does",
    function()
      local r = session({ "1 + 1", "'a', 2, nil", "=3 * 4", "x = 5",
        "x", "print('hi')" })
      local out = text(r)
      assert.matches("^loom 0%.1%.0 %(Lua 5%.4%.%d+, libuv [%d.]+%)\n"
        .. "[^\n]*await[^\n]*spawn[^\n]*Ctrl%-D[^\n]*\n> ", out)
      assert.matches("\n> 1 %+ 1\n2\n", out)
      assert.matches("\n> 'a', 2, nil\na\t2\tnil\n", out)
      assert.matches("\n> =3 %* 4\n12\n", out)
      assert.matches("\n> x = 5\n> x\n5\n", out)
      assert.matches("\n> print%('hi'%)\nhi\n", out)
    end)

  it("keeps the last value in _ until the user assigns _", function()
    local out = text(session({ "10", "_ * 2", "_ = 'mine'", "7", "_" }))
    assert.matches("\n> _ %* 2\n20\n", out)
    assert.matches("\n> 7\n7\n> _\nmine\n", out)
  end)

  it("pretty-prints tables: nested, keys sorted, strings quoted, cycles, "
    .. "limits", function()
    local out = text(session({
      "{ 1, 2, x = { y = 'z' }, [10] = true, b = 'q\\n' }",
      "t = { name = 't' } t.self = t",
      "t",
      "deep = {{{{{{1}}}}}}",
      "deep",
      "big = {} for i = 1, 150 do big[i] = i end",
      "big",
      "{}",
      "'top-level strings stay bare'",
    }))
    assert.matches('\n{ 1, 2, %[10%] = true, b = "q\\n", x = { y = "z" } }\n',
      out)
    assert.matches('\n{ name = "t", self = <cycle> }\n', out)
    assert.matches("\n{ { { { {...} } } } }\n", out)
    assert.matches("\n  100,\n  %.%.%. %(50 more%)\n}\n", out)
    assert.matches("\n> {}\n{}\n", out)
    assert.matches("\ntop%-level strings stay bare\n", out)
  end)

  it("awaits at the top level", function()
    local out = text(session({
      "t = spawn(function() sleep(0.05) return 42 end)",
      "await(t)",
      "gather(function() sleep(0.02) return 1 end, function() return 2 end)",
      "sleep(0.01)",
      "t:status()",
    }))
    assert.matches("\n> await%(t%)\n42\n", out)
    assert.matches("\n1\t2\n> sleep%(0%.01%)\n> t:status%(%)\ndone\n", out)
  end)

  it("lets a background task print while the prompt waits, and redraws "
    .. "the half-typed line after it", function()
    local r = session({
      "spawn(function() for i = 1, 3 do sleep(0.2) print('tick' .. i) end "
        .. "end)",
      { send = "abc" },  -- half a line, typed while the ticks come
      { screen = "tick3" },
      { line = "> abc" },
      { enter = " = 6" },  -- the typed text is still in the editor
      { line = "> " },
      { enter = "abc" },
      { expect = "6\r\n" },
      { line = "> " },
    })
    local lines = pty.lines(r)
    local ticks = 0
    for _, l in ipairs(lines) do
      if l:match("^tick%d$") then ticks = ticks + 1 end
    end
    assert.equal(3, ticks, r.screen)  -- each on a line of its own
    assert.matches("\ntick3\n> abc = 6\n", r.screen)
  end)

  it("continues an incomplete chunk with >>", function()
    local r = session({
      { enter = "function f(x)" }, { line = ">> " },
      { enter = "local y = x * 2" }, { line = ">> " },
      { enter = "return y" }, { line = ">> " },
      { enter = "end" }, { line = "> " },
      "f(21)",
      { enter = "x = [[a" }, { line = ">> " },
      { enter = "b]]" }, { line = "> " },
      "x",
    })
    local out = text(r)
    assert.matches("\n> function f%(x%)\n>> local y = x %* 2\n>> return y\n"
      .. ">> end\n> f%(21%)\n42\n", out)
    assert.matches("\n> x\na\nb\n", out)
  end)

  it("an error prints its message and traceback, and the next line works",
    function()
      local out = text(session({
        "error('boom')",
        "1 + 1",
        "x = = 1",
        "await(spawn(function() error('deep') end))",
        "error(setmetatable({}, { __tostring = function() return 'own' "
          .. "end }))",
        "2 + 2",
      }))
      assert.matches("\n> error%('boom'%)\nstdin:1: boom\nstack traceback:\n"
        .. "\t%[C%]: in function 'error'\n\tstdin:1: in main chunk\n"
        .. "\t%[C%]: in %?\n> 1 %+ 1\n2\n", out)
      assert.matches("\n> x = = 1\nstdin:1: unexpected symbol near '='\n> ",
        out)
      assert.matches("\nstdin:1: deep\nstack traceback:\n"
        .. "\t%[C%]: in function 'error'\n\tstdin:1: in function <stdin:1>\n"
        .. "%(task spawned at stdin:1, awaited here:%)\n"
        .. "\t%[C%]: in function '[%w.]*await'\n"
        .. "\tstdin:1: in main chunk\n", out)
      assert.matches("\nown\n> 2 %+ 2\n4\n", out)
    end)

  it("reports at the prompt a background failure nobody retrieved",
    function()
      local out = text(session({
        "spawn(function() sleep(0.05) error('bgfail') end)",
        { expect = "error in a task nobody awaited: stdin:1: bgfail" },
        { line = "> " },
        "1 + 1",
      }))
      assert.matches("error in a task nobody awaited: stdin:1: bgfail\n"
        .. "stack traceback:\n", out)
    end)

  it("Ctrl-C cancels a running sleep(10) within 0.5 s, and its cleanup runs",
    function()
      local r = session({
        { enter = "do local c <close> = setmetatable({}, { __close = "
          .. "function() "
          .. "print('cleanup ran') end }) sleep(10) end" },
        { sleep = 0.3 },
        { send = CTRL_C },
        { expect = "cleanup ran" },
        { expect = "interrupted" },
        { line = "> " },
        "1 + 1",
      })
      -- steps: 1 prompt, 2 the line, 3 sleep, 4 Ctrl-C, 5-6 output, 7 prompt
      local took = r.times[7] - r.times[4]
      assert.is_true(took < 0.5, ("took %.3f s"):format(took))
      assert.matches("\n%^?C?\ncleanup ran\ninterrupted\n", text(r))
    end)

  it("Ctrl-C stops a busy loop that never yields", function()
    local r = session({
      { enter = "n = 0 while true do n = n + 1 end" },
      { sleep = 0.3 },
      { send = CTRL_C },
      { expect = "interrupted" },
      { line = "> " },
      "n > 0",
      { enter = "pcall(function() while true do end end)" },
      { sleep = 0.3 },
      { send = CTRL_C },
      { expect = "\n" },
      { line = "> " },
    })
    local out = text(r)
    assert.matches("\n> n > 0\ntrue\n", out)
    -- the hook raises a cancellation, which pcall sees as any error
    assert.matches("\n%^?C?\nfalse\tCancelled: interrupted\n", out)
  end)

  it("Ctrl-C at the prompt interrupts a background task that never yields",
    function()
      local out = text(session({
        "t = spawn(function() while true do end end)",
        { sleep = 0.3 }, { send = CTRL_C }, { sleep = 0.3 },
        "t:status()",
      }))
      assert.matches("\n> t:status%(%)\ncancelled\n", out)
    end)

  it("Ctrl-C at the prompt clears the line and a pending >> chunk",
    function()
      local r = session({
        { send = "half typed" }, { line = "> half typed" },
        { send = CTRL_C }, { line = "> " },
        { enter = "x = {" }, { line = ">> " },
        { enter = "1," }, { line = ">> " },
        { send = CTRL_C }, { line = "> " },
        "x",
        "'after'",
      })
      local out = text(r)
      assert.matches("\n> x\nnil\n> 'after'\nafter\n", out)
    end)

  it("a second Ctrl-C while a cancelled input still cleans up exits",
    function()
      local r = pty.run({
        { line = "> " },
        { enter = "do local c <close> = setmetatable({}, { __close = "
          .. "function() "
          .. "print('slow cleanup') sleep(10) end }) sleep(10) end" },
        { sleep = 0.3 }, { send = CTRL_C }, { expect = "slow cleanup" },
        { sleep = 0.1 }, { send = CTRL_C },
        { wait = true },
      })
      assert(r.ok, r.error)
      assert.equal(-2, r.status)  -- SIGINT, as lua's second Ctrl-C
    end)

  it("Ctrl-D exits 0, saying how many background tasks it cancels",
    function()
      local r = pty.run({
        { line = "> " },
        { enter = "for i = 1, 2 do spawn(function() local c <close> = "
          .. "setmetatable({},"
          .. " { __close = function() print('bg cleanup') end }) sleep(100)"
          .. " end) end" },
        { line = "> " },
        { enter = "error('an error does not change the exit status')" },
        { line = "> " },
        CTRL_D,
        { expect = "cancelling 2 background tasks" },
        { wait = true },
      })
      assert(r.ok, r.error)
      assert.equal(0, r.status)
      local _, cleanups = text(r):gsub("bg cleanup\n", "")
      assert.equal(2, cleanups)
    end)

  it("os.exit ends the REPL with its status", function()
    local r = pty.run({ { line = "> " }, { enter = "os.exit(3)" },
      { wait = true } })
    assert(r.ok, r.error)
    assert.equal(3, r.status)
  end)

  it("keeps history in ~/.local/state/loom/history, 0600, appended, with "
    .. "multi-line entries", function()
    local home = tmpdir()
    local opts = { env = { HOME = home } }
    session({ "x = 1", { enter = "function g()" }, { line = ">> " },
      { enter = "return 7 end" }, { line = "> " } }, opts)
    local file = home .. "/.local/state/loom/history"
    assert.equal("_HiStOrY_V2_\nx\\040=\\0401\n"
      .. "function\\040g()\\012return\\0407\\040end\n", slurp(file))
    local p = io.popen("stat -c %a " .. cli.quote(file))
    assert.equal("600", p:read("l"))
    p:close()
    -- a second session recalls the multi-line entry and appends its own
    local r = session({ { send = UP }, { sleep = 0.3 }, { send = ENTER },
      { sleep = 0.3 }, { line = "> " }, "g()" }, opts)
    assert.matches("\n7\n", text(r))
    assert.matches("\ng%(%)\n$", slurp(file))
    rmdir(home)
  end)

  it("keeps history in $XDG_STATE_HOME/loom/history when set", function()
    local state = tmpdir()
    session({ "y = 2" }, { env = { XDG_STATE_HOME = state } })
    assert.equal("_HiStOrY_V2_\ny\\040=\\0402\n",
      slurp(state .. "/loom/history"))
    rmdir(state)
  end)

  it("keeps the history file from growing without end", function()
    local state = tmpdir()
    assert(os.execute("mkdir " .. cli.quote(state .. "/loom")))
    local lines = { "_HiStOrY_V2_" }
    for i = 1, 2500 do lines[#lines + 1] = "v\\040=\\040" .. i end
    local f = assert(io.open(state .. "/loom/history", "w"))
    f:write(table.concat(lines, "\n"), "\n")
    f:close()
    -- Up recalls the newest entry: the file was read
    local out = text(session({ { send = UP }, { sleep = 0.3 },
      { send = ENTER }, { line = "> " }, "v" },
      { env = { XDG_STATE_HOME = state } }))
    assert.matches("\n> v\n2500\n", out)
    local kept = slurp(state .. "/loom/history")
    local _, n = kept:gsub("\n", "")
    assert.equal(1 + 1000 + 1, n)  -- header, the newest 1000, then "v"
    assert.matches("^_HiStOrY_V2_\nv\\040=\\0401501\n", kept)
    rmdir(state)
  end)

  it("completes globals, fields and methods (a Task's, a future's) with "
    .. "Tab, running no user code", function()
    local r = session({
      "t = spawn(function() end)",
      "f = loom.future()",
      "p = setmetatable({}, { __index = function() print('RAN') end })",
      { send = "stri" .. TAB }, { line = "> string" },
      { send = CTRL_C }, { line = "> " },
      { send = "string.for" .. TAB }, { line = "> string.format" },
      { send = CTRL_C }, { line = "> " },
      { send = "t:can" .. TAB }, { line = "> t:cancel" },
      { send = CTRL_C }, { line = "> " },
      { send = "f:se" .. TAB }, { line = "> f:set" },
      { send = CTRL_C }, { line = "> " },
      { send = "('x'):up" .. TAB }, { sleep = 0.1 },
      { send = CTRL_C }, { line = "> " },
      { send = "p.zz" .. TAB }, { sleep = 0.1 },
      { send = CTRL_C }, { line = "> " },
    })
    assert.is_nil(r.output:find("RAN\r\n", 1, true))
  end)

  it("runs a pasted block line by line", function()
    local out = text(session({
      { send = "a = 1" .. ENTER .. "b = a + 1" .. ENTER
        .. "print('sum', a + b)" .. ENTER },
      { expect = "sum\t3" }, { line = "> " },
    }))
    assert.matches("\nsum\t3\n", out)
  end)

  it("reads non-ASCII input", function()
    local out = text(session({ "print('été ✓')" },
      { env = { LANG = "C.UTF-8", LC_ALL = false } }))
    assert.matches("\nété ✓\n", out)
  end)

  it("loom -i script enters the REPL with the script's globals", function()
    local file = cli.tmpfile("G = 'from the script'\n", ".lua")
    local out = text(session({ "G" }, { args = { "-i", file } }))
    assert.matches("\n> G\nfrom the script\n", out)
  end)

  it("leaves the terminal blocking and cooked for the next program",
    function()
      -- after loom, a shell reads from the same terminal: it must work
      local r = pty.run({
        { line = "> " }, CTRL_D, { expect = "$ " },
        { enter = "echo still-here" }, { expect = "still-here\r\n" },
        { enter = "exit" }, { wait = true },
      }, { prog = "sh", args = { "-c", cli.quote(cli.LOOM)
        .. "; PS1='$ ' exec sh -i" }, env = { ENV = false } })
      assert(r.ok, r.error)
      assert.equal(0, r.status)
    end)
end)

-- lua5.4 on Debian is built with GNU readline, which echoes each line
-- after its prompt even on a pipe; lua.c without readline (what loom
-- follows) prints only the prompt. Takes the echoes out of lua's output.
local function without_echo(out, lines)
  local pos = 1
  for _, line in ipairs(lines) do
    local s, e = out:find(line .. "\n", pos, true)
    if s then
      out = out:sub(1, s - 1) .. out:sub(e + 1)
      pos = s
    end
  end
  return out
end

-- Runs input through "prog -i" for loom and lua5.4; returns both outputs
-- (the version line taken off) for comparison.
local function both(input, args)
  local lines = {}
  for l in input:gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  local a = { "-i" }
  for _, x in ipairs(args or {}) do table.insert(a, #a, x) end
  local lo, le, lc = cli.lua(a, { stdin = input })
  local mo, me, mc = cli.loom(a, { stdin = input })
  lo = without_echo(lo:gsub("^[^\n]*\n", "", 1), lines)
  mo = mo:gsub("^[^\n]*\n", "", 1)
  return { lo, le, lc }, { mo, me, mc }
end

describe("loom -i on a pipe", function()
  local cases = {
    ["expressions and statements"] =
      "1 + 1\n'a', nil, 3\nx = 10\nx\n=x * 2\nprint('p', x)\n",
    ["incomplete chunks"] =
      "function f(a)\nreturn a + 1\nend\nf(1)\nt = {\n1,\n2}\n#t\n",
    ["long strings over lines"] = "s = [[b\nc\nd]]\n=s\n",
    ["errors"] = "error('x')\nerror({})\nx = = 2\nlocal\n1\n",
    ["prompts from _PROMPT and _PROMPT2"] =
      "_PROMPT = 'P1:'\n_PROMPT2 = 'P2:'\nfunction g()\nend\n"
      .. "_PROMPT = setmetatable({}, {__tostring = function() return 'T>' "
      .. "end})\n"
      .. "1\n",
    ["print replaced or removed"] =
      "print = function(...) io.write('[', select('#', ...), ']\\n') end\n"
      .. "1, 2\nprint = nil\n3\n",
    ["a local does not survive the line"] = "local l = 5\nl\n",
  }
  for name, input in pairs(cases) do
    it(name .. ": as lua5.4 -i", function()
      local lua, loom = both(input)
      assert.same(lua, loom)
    end)
  end

  it("with -e before -i, as lua5.4", function()
    local lua, loom = both("y\n", { "-e", "y = 'set by -e'" })
    assert.same(lua, loom)
  end)

  it("awaits at the top level and runs background tasks", function()
    local out, err, code = cli.loom({ "-i" }, { stdin =
      "t = spawn(function() sleep(0.02) print('bg') return 5 end)\n"
      .. "sleep(0.05)\nawait(t)\n" })
    assert.same({ "> > bg\n> 5\n> \n", "", 0 }, { out:gsub("^[^\n]*\n", ""),
      err, code })
  end)

  it("cancels the background tasks at the end of input", function()
    local out, err, code = cli.loom({ "-i" }, { stdin =
      "spawn(function() local c <close> = setmetatable({}, { __close = "
      .. "function() print('closed') end }) sleep(100) end)\nsleep(0.05)\n" })
    assert.matches("closed\n$", out)
    assert.same({ "cancelling 1 background task\n", 0 }, { err, code })
  end)

  it("loom with no arguments and stdin a pipe runs it as a script",
    function()
      local out, err, code = cli.loom({}, { stdin = "x = 1\nprint(x + 1)\n" })
      assert.same({ "2\n", "", 0 }, { out, err, code })
    end)
end)

describe("Ctrl-C in a script, as lua.c", function()
  -- runs code in the background, sends SIGINT once it printed "ready"
  local function interrupt(code)
    local sh = ("%s -e %s & pid=$!; for i in 1 2 3 4 5 6 7 8 9 10; do "
      .. "sleep 0.2; kill -INT $pid 2>/dev/null || break; done; wait $pid; "
      .. "echo status=$?"):format(cli.quote(cli.LOOM), cli.quote(code))
    local p = io.popen("timeout 20 sh -c " .. cli.quote(sh) .. " 2>&1")
    local out = p:read("a")
    p:close()
    return out
  end

  it("cancels a loop that never yields where it runs; pcall sees it",
    function()
      local out = interrupt("print(pcall(function() while true do end end))")
      -- the script caught it and ended: nothing more to cancel
      assert.equal("false\tCancelled: interrupted\nstatus=0\n", out)
    end)

  it("ends a script that waits", function()
    local out = interrupt("sleep(10) print('not reached')")
    assert.matches("^[^\n]*: interrupted\nstatus=130\n$", out)
  end)
end)
