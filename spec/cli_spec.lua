-- The loom command: arguments, options and environment as lua(1), exit
-- codes, and error output compared with lua5.4's.
local it = require("spec.support.task").it
local cli = require "spec.support.cli"

-- Runs the same command line with lua5.4 and with loom, both started as
-- "lua" (messages start with the program name), and checks that stdout,
-- stderr and the exit code are the same. Returns loom's.
local function same_as_lua(args, opts)
  opts = opts or {}
  opts.argv0 = opts.argv0 or "lua"
  local lo, le, lc = cli.lua(args, opts)
  local mo, me, mc = cli.loom(args, opts)
  assert.equal(lo, mo)
  assert.equal(le, me)
  assert.equal(lc, mc)
  return mo, me, mc
end

local function tmpdir()
  local name = os.tmpname()
  os.remove(name)
  assert(os.execute("mkdir " .. cli.quote(name)))
  return name
end

local function write(name, content)
  local f = assert(io.open(name, "w"))
  f:write(content)
  f:close()
  return name
end

local ARGS_SCRIPT = [[
print("...", select("#", ...), ...)
for i = -3, #arg do print(i, arg[i]) end
]]

describe("loom script", function()
  after_each(cli.cleanup)

  it("runs the script with arg and ... as lua does", function()
    local file = cli.tmpfile(ARGS_SCRIPT, ".lua")
    local out = same_as_lua({ file, "a", "b c", "" })
    assert.equal("...\t3\ta\tb c\t\n-3\tnil\n-2\tnil\n-1\tlua\n0\t" .. file
      .. "\n1\ta\n2\tb c\n3\t\n", out)
  end)

  it("puts the options before the script at negative indices", function()
    local file = cli.tmpfile(ARGS_SCRIPT, ".lua")
    same_as_lua({ "-e", "x=1", file, "a" })
    same_as_lua({ "-W", "--", file, "-e" })
  end)

  it("exits 0 after a script that returns", function()
    local out, err, code = cli.script("print('hi')")
    assert.same({ "hi\n", "", 0 }, { out, err, code })
  end)

  it("skips a #! first line", function()
    local file = cli.tmpfile("#!/usr/bin/env loom\nprint('shebang ok', ...)\n",
      ".lua")
    local out = same_as_lua({ file, "z" })
    assert.equal("shebang ok\tz\n", out)
  end)

  it("runs the main chunk as a task: it can sleep and spawn", function()
    local out, err, code = cli.script([[
      local t = spawn(function(x) sleep(0.01) return x * 2 end, 21)
      sleep(0.01)
      print(await(t))
    ]])
    assert.same({ "42\n", "", 0 }, { out, err, code })
  end)

  it("has the globals sleep, create_task, spawn, gather, async, await, loom",
    function()
      local out, err, code = cli.loom({ "-e", [[
        for _, n in ipairs({"sleep", "create_task", "spawn", "gather",
            "async", "await"}) do
          io.write(n, "=", tostring(_G[n] == loom[n]), " ")
        end
        print(type(loom), package.loaded.loom == loom, require("loom") == loom)
      ]] })
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal("sleep=true create_task=true spawn=true gather=true "
        .. "async=true await=true table\ttrue\ttrue\n", out)
    end)

  it("a missing script file is an error, as in lua", function()
    local _, err, code = same_as_lua({ "/nonexistent/x.lua" })
    assert.equal("lua: cannot open /nonexistent/x.lua\n", err:gsub(":[^:]*\n$", "\n"))
    assert.equal(1, code)
  end)
end)

describe("loom -e", function()
  it("runs the chunks in order, then the script", function()
    local file = cli.tmpfile("print('script', x)\n", ".lua")
    local out = same_as_lua({ "-e", "x = 1 print('e1')", "-e", "x = x + 1", file })
    assert.equal("e1\nscript\t2\n", out)
    cli.cleanup()
  end)

  it("accepts the chunk glued to the option", function()
    local out = same_as_lua({ "-eprint('glued')" })
    assert.equal("glued\n", out)
  end)

  it("does not read stdin when there is no script", function()
    local out = same_as_lua({ "-e", "print('only e')" }, { stdin = "print('stdin')" })
    assert.equal("only e\n", out)
  end)

  it("runs inside a task: await and sleep work", function()
    local out, err, code = cli.loom({ "-e",
      "print(gather(function() sleep(0.01) return 1 end, function() return 2 end))" })
    assert.same({ "1\t2\n", "", 0 }, { out, err, code })
  end)

  it("a syntax error is reported as lua does", function()
    local _, err, code = same_as_lua({ "-e", "x = = 1" })
    assert.equal("lua: (command line):1: unexpected symbol near '='\n", err)
    assert.equal(1, code)
  end)

  it("a runtime error is reported with a traceback, as lua does", function()
    local _, err, code = same_as_lua({ "-e", "error('boom')" })
    assert.equal("lua: (command line):1: boom\nstack traceback:\n"
      .. "\t[C]: in function 'error'\n\t(command line):1: in main chunk\n"
      .. "\t[C]: in ?\n", err)
    assert.equal(1, code)
  end)
end)

describe("loom: the script's ... from the global arg", function()
  after_each(cli.cleanup)

  it("is built from arg as -e chunks left it, for stdin", function()
    local out = same_as_lua({ "-e", "arg[1] = 100", "-" },
      { stdin = "print(...)" })
    assert.equal("100\n", out)
  end)

  it("is built from arg as -e chunks left it, for a file", function()
    local file = cli.tmpfile("print(select('#', ...), ...)\n", ".lua")
    local out = same_as_lua({ "-e", "arg[2] = 'z' arg[3] = nil", file, "x", "y", "w" })
    assert.equal("2\tx\tz\n", out)
  end)

  it("'arg' that is not a table: lua's message, exit 1", function()
    local file = cli.tmpfile("print('not reached')\n", ".lua")
    local out, err, code = same_as_lua({ "-e", "arg = 1", file })
    assert.same({ "", "lua: 'arg' is not a table\n", 1 }, { out, err, code })
  end)

  it("an arg whose __len fails: lua's message, no traceback", function()
    local file = cli.tmpfile("print('not reached')\n", ".lua")
    local _, err, code = same_as_lua({ "-e",
      "arg = setmetatable({}, {__len = function() return 'x' end})", file })
    assert.same({ "lua: object length is not an integer\n", 1 }, { err, code })
  end)
end)

describe("loom -l", function()
  local dir
  before_each(function()
    dir = tmpdir()
    write(dir .. "/mymod.lua", "print('loading', ...) return { name = 'mymod' }\n")
  end)
  after_each(function()
    os.execute("rm -rf " .. cli.quote(dir))
  end)

  it("requires the module into a global of its name", function()
    local out = same_as_lua({ "-l", "mymod", "-e", "print(mymod.name)" },
      { env = { LUA_PATH = dir .. "/?.lua" } })
    assert.matches("^loading\tmymod\t.*mymod%.lua\nmymod\n$", out)
  end)

  it("accepts the module name glued to the option", function()
    local out = same_as_lua({ "-lmymod", "-e", "print(mymod.name)" },
      { env = { LUA_PATH = dir .. "/?.lua" } })
    assert.matches("mymod\n$", out)
  end)

  it("-l g=mod requires mod into global g", function()
    local out = same_as_lua({ "-l", "m=mymod", "-e", "print(m.name, mymod)" },
      { env = { LUA_PATH = dir .. "/?.lua" } })
    assert.matches("mymod\tnil\n$", out)
  end)

  it("runs -l and -e in the order given", function()
    local out = same_as_lua({ "-e", "print(mymod)", "-l", "mymod",
      "-e", "print(mymod.name)" }, { env = { LUA_PATH = dir .. "/?.lua" } })
    assert.matches("^nil\nloading", out)
  end)

  it("a missing module is an error, as in lua", function()
    local _, err, code = same_as_lua({ "-l", "no_such_module_xyz" },
      { env = { LUA_PATH = dir .. "/?.lua", LUA_CPATH = dir .. "/?.so" } })
    assert.matches("^lua: module 'no_such_module_xyz' not found:", err)
    assert.equal(1, code)
  end)

  it("a module that sleeps while it loads works (top-level await)",
    function()
      -- loom's require runs the module's chunk where it can suspend
      write(dir .. "/slow.lua", "sleep(0.01) return 'slow loaded'\n")
      local out, err, code = cli.loom({ "-l", "slow", "-e", "print(slow)" },
        { env = { LUA_PATH = dir .. "/?.lua" }, argv0 = "loom" })
      assert.equal("slow loaded\n", out)
      assert.equal("", err)
      assert.equal(0, code)
    end)
end)

describe("loom - (stdin)", function()
  it("runs stdin with the arguments after -", function()
    local out = same_as_lua({ "-", "x", "y" },
      { stdin = "print('stdin', arg[0], arg[1], arg[2], select('#', ...), ...)" })
    assert.equal("stdin\t-\tx\ty\t2\tx\ty\n", out)
  end)

  it("with no arguments and stdin not a terminal, runs stdin", function()
    local out = same_as_lua({}, { stdin = "print('from stdin')" })
    assert.equal("from stdin\n", out)
  end)

  it("-- - runs a file named '-'", function()
    local dir = tmpdir()
    write(dir .. "/-", "print('file named dash')\n")
    local out = same_as_lua({ "--", "-" }, { cwd = dir, stdin = "print('stdin')" })
    os.execute("rm -rf " .. cli.quote(dir))
    assert.equal("file named dash\n", out)
  end)

  it("stdin may sleep and spawn", function()
    local out, err, code = cli.loom({ "-" }, { stdin =
      "local t = spawn(function() sleep(0.01) return 'awaited' end) print(t:await())" })
    assert.same({ "awaited\n", "", 0 }, { out, err, code })
  end)

  it("a syntax error on stdin is reported as lua does", function()
    local _, err, code = same_as_lua({ "-" }, { stdin = "x = = 1" })
    assert.equal("lua: stdin:1: unexpected symbol near '='\n", err)
    assert.equal(1, code)
  end)
end)

describe("loom options", function()
  it("-- stops handling options", function()
    local file = cli.tmpfile("print('after --', ...)\n", ".lua")
    local out = same_as_lua({ "--", file, "-e", "x" })
    assert.equal("after --\t-e\tx\n", out)
    cli.cleanup()
  end)

  it("-v prints the version and exits 0", function()
    local out, err, code = cli.loom({ "-v" })
    assert.matches("^loom 0%.1%.0 %(Lua 5%.4%.%d+, libuv %d+%.%d+%.%d+%)\n$", out)
    assert.equal("", err)
    assert.equal(0, code)
  end)

  it("-v with a script prints the version, then runs the script", function()
    local file = cli.tmpfile("print('ran')\n", ".lua")
    local out, err, code = cli.loom({ "-v", file })
    cli.cleanup()
    assert.matches("^loom 0%.1%.0 [^\n]*\nran\n$", out)
    assert.same({ "", 0 }, { err, code })
  end)

  it("-v with -e runs the chunk too", function()
    local out, err, code = cli.loom({ "-v", "-e", "print('e ran')" })
    assert.matches("^loom 0%.1%.0 [^\n]*\ne ran\n$", out)
    assert.same({ "", 0 }, { err, code })
  end)

  it("-h prints the usage on stdout and exits 0", function()
    local out, err, code = cli.loom({ "-h" }, { argv0 = "loom" })
    assert.equal("", err)
    assert.equal(0, code)
    assert.matches("usage: loom %[options%] %[script %[args%]%]", out)
    for _, opt in ipairs({ "-e stat", "-l mod", "-v", "-E", "-W", "-h", "--", "-" }) do
      assert.is_truthy(out:find("\n  " .. opt, 1, true), "usage lacks " .. opt)
    end
  end)

  it("a bad option prints the usage on stderr and exits 1", function()
    local out, err, code = cli.loom({ "-x" }, { argv0 = "loom" })
    assert.equal("", out)
    assert.equal(1, code)
    assert.matches("^loom: unrecognized option '%-x'\nusage: loom %[options%] %[script %[args%]%]\n", err)
    -- the first line is lua's
    local _, lerr = cli.lua({ "-x" }, { argv0 = "loom" })
    assert.equal(lerr:match("^[^\n]*"), err:match("^[^\n]*"))
  end)

  it("an option with extra letters is a bad option", function()
    local _, err, code = cli.loom({ "-vx" }, { argv0 = "loom" })
    assert.matches("^loom: unrecognized option '%-vx'\n", err)
    assert.equal(1, code)
    _, err, code = cli.loom({ "--x" }, { argv0 = "loom" })
    assert.matches("^loom: unrecognized option '%-%-x'\n", err)
    assert.equal(1, code)
  end)

  it("a missing option argument is reported as lua does", function()
    for _, opt in ipairs({ "-e", "-l" }) do
      local out, err, code = cli.loom({ opt }, { argv0 = "loom" })
      local _, lerr, lcode = cli.lua({ opt }, { argv0 = "loom" })
      assert.equal("", out)
      assert.equal(1, code)
      assert.equal(lcode, code)
      assert.equal("loom: '" .. opt .. "' needs argument", err:match("^[^\n]*"))
      assert.equal(lerr:match("^[^\n]*"), err:match("^[^\n]*"))
      assert.matches("\nusage: loom ", err)
    end
    -- an option where the argument should be counts as missing, as in lua
    local _, err = cli.loom({ "-e", "-v" }, { argv0 = "loom" })
    assert.equal("loom: '-e' needs argument", err:match("^[^\n]*"))
  end)

  it("-W turns warnings on for the script", function()
    local file = cli.tmpfile("warn('from file')\n", ".lua")
    local _, err = same_as_lua({ "-W", file })
    cli.cleanup()
    assert.equal("Lua warning: from file\n", err)
  end)

  it("-W turns warnings on, and -e after it still runs", function()
    local out, err = same_as_lua({ "-W", "-e", "warn('hello') print('after')" })
    assert.equal("after\n", out)
    assert.equal("Lua warning: hello\n", err)
  end)

  it("warnings are off without -W", function()
    local _, err = same_as_lua({ "-e", "warn('hidden') warn('@on') warn('shown')" })
    assert.equal("Lua warning: shown\n", err)
  end)

  it("the program name starts every message", function()
    local _, err = cli.loom({ "-e", "error('x', 0)" }, { argv0 = "my-loom" })
    assert.matches("^my%-loom: x\n", err)
    _, err = cli.loom({ "-e", "spawn(function() error('y', 0) end)" },
      { argv0 = "my-loom" })
    assert.matches("^my%-loom: error in a task nobody awaited: y\n", err)
    _, err = cli.loom({ "-e", "loom.future():await()" }, { argv0 = "my-loom" })
    assert.matches("^my%-loom: deadlock: ", err)
  end)
end)

describe("loom environment variables", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() os.execute("rm -rf " .. cli.quote(dir)) end)

  it("LUA_PATH is the module path", function()
    write(dir .. "/pathmod.lua", "return 'found via LUA_PATH'")
    local out = same_as_lua({ "-e", "print((require 'pathmod'))" },
      { env = { LUA_PATH = dir .. "/?.lua;;" } })
    assert.equal("found via LUA_PATH\n", out)
  end)

  it("LUA_CPATH is the C module path", function()
    local out = same_as_lua({ "-e", "print(package.cpath)" },
      { env = { LUA_CPATH = dir .. "/?.so" } })
    assert.equal(dir .. "/?.so\n", out)
  end)

  it("LUA_INIT runs first", function()
    local out = same_as_lua({ "-e", "print('e', x)" },
      { env = { LUA_INIT = "x = 'init' print('init ran')" } })
    assert.equal("init ran\ne\tinit\n", out)
  end)

  it("LUA_INIT_5_4 wins over LUA_INIT", function()
    local out = same_as_lua({ "-e", "print(x)" },
      { env = { LUA_INIT = "x = 'plain'", LUA_INIT_5_4 = "x = 'versioned'" } })
    assert.equal("versioned\n", out)
  end)

  it("LUA_INIT=@file runs the file", function()
    local init = write(dir .. "/init.lua", "y = 'from file'\n")
    local out = same_as_lua({ "-e", "print(y)" }, { env = { LUA_INIT = "@" .. init } })
    assert.equal("from file\n", out)
    out = same_as_lua({ "-e", "print(y)" }, { env = { LUA_INIT_5_4 = "@" .. init } })
    assert.equal("from file\n", out)
  end)

  it("LUA_INIT runs inside the main task: it can sleep", function()
    local out, err, code = cli.loom({ "-e", "print(z)" },
      { env = { LUA_INIT = "sleep(0.01) z = 'slept'" } })
    assert.same({ "slept\n", "", 0 }, { out, err, code })
  end)

  it("an error in LUA_INIT is reported as lua does", function()
    local _, err, code = same_as_lua({ "-e", "print('not reached')" },
      { env = { LUA_INIT = "error('init failed')" } })
    assert.matches("^lua: LUA_INIT:1: init failed\n", err)
    assert.equal(1, code)
    _, err, code = same_as_lua({ "-e", "print('not reached')" },
      { env = { LUA_INIT_5_4 = "x = = 1" } })
    assert.equal("lua: LUA_INIT_5_4:1: unexpected symbol near '='\n", err)
    assert.equal(1, code)
    _, err, code = same_as_lua({ "-e", "print('not reached')" },
      { env = { LUA_INIT = "@" .. dir .. "/missing.lua" } })
    assert.matches("^lua: cannot open " .. dir:gsub("%p", "%%%0") .. "/missing%.lua", err)
    assert.equal(1, code)
  end)

  local function ignored_env()
    return { LUA_INIT = "print('init ran')", LUA_INIT_5_4 = "print('init54 ran')",
      LUA_PATH = dir .. "/?.lua", LUA_CPATH = dir .. "/?.so" }
  end
  local PATHS = "print(package.path:find('%s', 1, true), "
    .. "package.cpath:find('%s', 1, true))\n"

  it("-E ignores LUA_INIT, LUA_PATH and LUA_CPATH (script)", function()
    local file = write(dir .. "/s.lua", PATHS:format(dir, dir))
    local out, err, code = same_as_lua({ "-E", file }, { env = ignored_env() })
    assert.same({ "nil\tnil\n", "", 0 }, { out, err, code })
  end)

  it("-E ignores LUA_INIT, LUA_PATH and LUA_CPATH (-e)", function()
    local out, err, code = same_as_lua({ "-E", "-e", PATHS:format(dir, dir) },
      { env = ignored_env() })
    assert.same({ "nil\tnil\n", "", 0 }, { out, err, code })
  end)
end)

describe("loom exit codes", function()
  it("os.exit(n) exits with n", function()
    for _, n in ipairs({ 0, 3, 42 }) do
      local out, err, code = cli.loom({ "-e", "print('before') os.exit(" .. n .. ") print('after')" })
      assert.same({ "before\n", "", n }, { out, err, code })
    end
  end)

  it("os.exit(true) exits 0, os.exit(false) exits 1, os.exit() exits 0", function()
    same_as_lua({ "-e", "os.exit(true)" })
    local _, _, code = same_as_lua({ "-e", "os.exit(false)" })
    assert.equal(1, code)
    _, _, code = same_as_lua({ "-e", "os.exit()" })
    assert.equal(0, code)
  end)

  it("os.exit(n, true) closes the state: pending <close> of the main chunk run",
    function()
      local out, _, code = same_as_lua({ "-e",
        "local x <close> = setmetatable({}, {__close = function() print('closed') end}) os.exit(5, true)" })
      assert.equal("closed\n", out)
      assert.equal(5, code)
    end)

  it("os.exit in a coroutine resumed inside a C call exits at once", function()
    local out, err, code = cli.loom({ "-e", "table.sort({1, 2, 3}, function(a, b) "
      .. "coroutine.wrap(function() os.exit(3) end)() return a < b end)" })
    assert.equal("", out)
    assert.equal("", err)
    assert.equal(3, code)
  end)

  it("an error object whose __tostring raises prints what it raised, as lua.c",
    function()
      local _, err, code = cli.loom({ "-e",
        "error(setmetatable({}, {__tostring = function() error('tostring boom') end}))" },
        { argv0 = "lua5.4" })
      local _, lerr, lcode = cli.lua({ "-e",
        "error(setmetatable({}, {__tostring = function() error('tostring boom') end}))" },
        { argv0 = "lua5.4" })
      assert.equal(1, code)
      assert.equal(lcode, code)
      local first = "^lua5.4: %(command line%):1: tostring boom\nstack traceback:\n"
      assert.matches(first, lerr)
      assert.matches(first, err)
      -- what __tostring raised is not a string either: lua.c names its type
      _, err, code = cli.loom({ "-e",
        "error(setmetatable({}, {__tostring = function() error({}) end}))" },
        { argv0 = "loom" })
      assert.equal(1, code)
      assert.matches("^loom: %(error object is a table value%)\n", err)
      -- a __tostring that gives no string: lua.c's fallback
      _, err, code = cli.loom({ "-e", "spawn(function() error(setmetatable({}, "
        .. "{__tostring = function() return nil end})) end)" }, { argv0 = "loom" })
      assert.equal(1, code)
      assert.matches("^loom: error in a task nobody awaited: %(error object is a "
        .. "table value%)\nstack traceback:", err)
      -- and in failure reports, the error __tostring raised
      _, err, code = cli.loom({ "-e", "spawn(function() error(setmetatable({}, "
        .. "{__tostring = function() error('report boom', 0) end})) end)" },
        { argv0 = "loom" })
      assert.equal(1, code)
      assert.matches("^loom: error in a task nobody awaited: report boom\n", err)
    end)

  it("os.exit inside a spawned task exits at once with its code", function()
    local out, err, code = cli.loom({ "-e", [[
      spawn(function() sleep(0.01) print('exiting') os.exit(7) end)
      sleep(5)
      print('not reached')
    ]] })
    assert.same({ "exiting\n", "", 7 }, { out, err, code })
  end)

  it("os.exit inside a generator inside a task", function()
    local out, err, code = cli.loom({ "-e", [[
      local g = coroutine.wrap(function() sleep(0.01) os.exit(5, true) end)
      g()
      print('not reached')
    ]] })
    assert.same({ "", "", 5 }, { out, err, code })
  end)

  it("os.exit where the task cannot yield still exits", function()
    local out, err, code = cli.loom({ "-e",
      "table.sort({1, 2, 3}, function() os.exit(8) end) print('not reached')" })
    assert.same({ "", "", 8 }, { out, err, code })
  end)

  it("output written before os.exit is flushed", function()
    local out, _, code = cli.loom({ "-e",
      "io.write('partial') spawn(function() io.write(' line') os.exit(2) end) sleep(1)" })
    assert.equal("partial line", out)
    assert.equal(2, code)
  end)
end)

describe("loom error output", function()
  after_each(cli.cleanup)

  local function same_for_script(src)
    local file = cli.tmpfile(src, ".lua")
    local _, err, code = same_as_lua({ file })
    return err:gsub(file:gsub("%p", "%%%0"), "FILE"), code
  end

  it("a runtime error: program name, message, traceback, exit 1", function()
    local err, code = same_for_script("local function f()\n  error('boom')\nend\nf()\n")
    assert.equal("lua: FILE:2: boom\nstack traceback:\n\t[C]: in function 'error'\n"
      .. "\tFILE:2: in local 'f'\n\tFILE:4: in main chunk\n\t[C]: in ?\n", err)
    assert.equal(1, code)
  end)

  it("a runtime error after the main chunk slept", function()
    local file = cli.tmpfile("sleep(0.01)\nlocal t = nil\nprint(t.x)\n", ".lua")
    local _, err, code = cli.loom({ file }, { argv0 = "lua" })
    assert.equal("lua: " .. file .. ":3: attempt to index a nil value (local 't')\n"
      .. "stack traceback:\n\t" .. file .. ":3: in main chunk\n\t[C]: in ?\n", err)
    assert.equal(1, code)
  end)

  it("an error value that is a table", function()
    local err, code = same_for_script("error({})\n")
    assert.matches("^lua: %(error object is a table value%)\n", err)
    assert.equal(1, code)
  end)

  it("an error value with __tostring", function()
    local err, code = same_for_script(
      "error(setmetatable({}, {__tostring = function() return 'custom' end}))\n")
    assert.equal("lua: custom\n", err)
    assert.equal(1, code)
  end)

  it("error(nil) and error with a level 0 message", function()
    local err = same_for_script("error()\n")
    assert.matches("^lua: %(error object is a nil value%)\n", err)
    err = same_for_script("error('noloc', 0)\n")
    assert.matches("^lua: noloc\nstack traceback:\n", err)
  end)

  it("a syntax error in the script", function()
    local err, code = same_for_script("x = = 1\n")
    assert.equal("lua: FILE:1: unexpected symbol near '='\n", err)
    assert.equal(1, code)
  end)

  it("an error with a number value", function()
    local err, code = same_for_script("error(42)\n")
    assert.matches("^lua: 42\nstack traceback:\n", err)
    assert.equal(1, code)
  end)

  it("output before the error is kept", function()
    local file = cli.tmpfile("print('first')\nerror('then')\n", ".lua")
    local out, _, code = same_as_lua({ file })
    assert.equal("first\n", out)
    assert.equal(1, code)
  end)
end)

describe("loom on a terminal with no script", function()
  it("starts the REPL, which exits 0 at Ctrl-D (spec/repl_spec.lua has "
    .. "the rest)", function()
    local r = require("spec.support.pty").run({ { expect = "> " }, "\4",
      { wait = true } })
    assert(r.ok, r.error)
    assert.equal(0, r.status)
    assert.matches("^loom 0%.1%.0 [^\n]*\r\n[^\n]*Ctrl%-D[^\n]*\r\n> ",
      r.output)
  end)
end)
