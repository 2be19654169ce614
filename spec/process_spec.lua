-- loom.process: run (Python's subprocess.run) and spawn (a Process with
-- pipes as streams): options, every error (a program that does not exist,
-- one that cannot be run, a non-zero exit with check, a timeout), and a
-- cancelled run leaving no child (nor grandchild) behind.
local it = require("spec.support.task").it
local error_of = require("spec.support.task").error_of
local cli = require "spec.support.cli"
local loom = require "loom"
local process = loom.process
local fs = loom.fs
local io_ = require "loom.io"

-- Whether pid is gone (or a zombie nobody here can reap).
local function gone(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if f == nil then return true end
  local stat = f:read("a")
  f:close()
  return stat:match("^%d+ %b() (%a)") == "Z"
end

local function wait_gone(pid)
  for _ = 1, 200 do
    if gone(pid) then return true end
    sleep(0.01)
  end
  return false
end

describe("loom.process", function()
  after_each(cli.cleanup)

  describe("run", function()
    it("runs an argv, no shell, and captures its output", function()
      local r = process.run({ "printf", "%s|", "a b", "$HOME", "*" })
      assert.same({ code = 0, ok = true, stdout = "a b|$HOME|*|",
        stderr = "" }, r)
      assert.is_nil(r.signal)
    end)

    it("a single word is a program", function()
      assert.equal(0, process.run("true").code)
    end)

    it("with shell = true, a command line for /bin/sh", function()
      local r = process.run("echo out; echo err >&2; exit 3",
        { shell = true })
      assert.same({ 3, false, "out\n", "err\n" },
        { r.code, r.ok, r.stdout, r.stderr })
    end)

    it("feeds input, sets cwd and the environment", function()
      assert.equal("fed\n", process.run({ "cat" }, { input = "fed\n" })
        .stdout)
      local big = ("i"):rep(1 << 20)
      assert.equal(#big, #process.run({ "cat" }, { input = big }).stdout)
      assert.equal("/tmp\n", process.run({ "pwd" }, { cwd = "/tmp" }).stdout)
      local r = process.run({ "sh", "-c", 'echo "$A|${HOME-unset}|$PATH"' },
        { env = { A = "1", HOME = false } })
      assert.matches("^1|unset|/", r.stdout)
      r = process.run({ "/usr/bin/env" }, { clear_env = true,
        env = { ONLY = "me" } })
      assert.equal("ONLY=me\n", r.stdout)
    end)

    it("a child that exits without reading its input is fine", function()
      local r = process.run({ "true" }, { input = ("x"):rep(1 << 22) })
      assert.equal(0, r.code)
    end)

    it("stdout and stderr can be inherited or dropped", function()
      local r = process.run("echo hidden; echo gone >&2", { shell = true,
        stdout = "null", stderr = "null" })
      assert.same({ 0 }, { r.code, r.stdout, r.stderr })
    end)

    it("a signal ending the child gives code 128 + n and its name", function()
      local r = process.run("kill -TERM $$", { shell = true })
      assert.same({ 143, "SIGTERM", false }, { r.code, r.signal, r.ok })
    end)

    it("a program that does not exist is ENOENT with its path", function()
      local err = error_of(process.run, { "no-such-program-xyz", "arg" })
      assert.is_true(io_.is_error(err))
      assert.same({ "ENOENT", "run", "no-such-program-xyz" },
        { err.code, err.op, err.path })
      assert.equal("run: no-such-program-xyz: no such file or directory "
        .. "(ENOENT)", tostring(err))
    end)

    it("a file that is not executable is EACCES", function()
      local f = cli.tmpfile("echo hi\n", ".sh")
      local err = error_of(process.run, { f })
      assert.equal("EACCES", err.code)
      assert.equal(("run: %s: permission denied (EACCES)"):format(f),
        tostring(err))
    end)

    it("a missing cwd is ENOENT", function()
      assert.equal("ENOENT", error_of(process.run, { "true" },
        { cwd = "/no/such/dir" }).code)
    end)

    it("check = true raises on a non-zero exit, with the output", function()
      local err = error_of(process.run, "echo why >&2; exit 2",
        { shell = true, check = true })
      assert.is_true(io_.is_error(err))
      assert.same({ "EXIT", 2, "why\n", "/bin/sh" },
        { err.code, err.exit_code, err.stderr, err.path })
      assert.equal("run: /bin/sh: '/bin/sh' exited with code 2 (EXIT)",
        tostring(err))
      local killed = error_of(process.run, "kill -KILL $$",
        { shell = true, check = true })
      assert.matches("was killed by SIGKILL %(EXIT%)$", tostring(killed))
      assert.equal(0, process.run({ "true" }, { check = true }).code)
    end)

    it("timeout kills the child and its children, and says so", function()
      local pidfile = os.tmpname()
      local t0 = loom.now()
      local err = error_of(process.run, ("echo started; sleep 30 & echo $! "
        .. "> %s; wait"):format(pidfile), { shell = true, timeout = 0.2 })
      assert.is_true(loom.now() - t0 < 5)
      assert.is_true(io_.is_error(err))
      assert.equal("ETIMEDOUT", err.code)
      assert.equal("started\n", err.stdout)
      assert.equal("run: /bin/sh: timed out after 0.2 s (ETIMEDOUT)",
        tostring(err))
      local grandchild = fs.read_file(pidfile):match("%d+")
      os.remove(pidfile)
      assert.is_true(wait_gone(grandchild), "the shell's child still runs")
    end)

    it("a cancelled run kills the child and its group, and reaps them",
      function()
        local pidfile = os.tmpname()
        local cleaned = 0
        local t = spawn(function()
          local g <close> = setmetatable({}, { __close = function()
            cleaned = cleaned + 1 end })
          return process.run(("echo $$ > %s; sleep 30 & echo $! >> %s; "
            .. "wait"):format(pidfile, pidfile), { shell = true })
        end)
        local pids
        for _ = 1, 200 do
          sleep(0.01)
          local text = fs.exists(pidfile) and fs.read_file(pidfile) or ""
          pids = {}
          for p in text:gmatch("%d+") do pids[#pids + 1] = p end
          if #pids == 2 then break end
        end
        assert.equal(2, #pids)
        local before = io_.stats()
        t:cancel()
        assert.is_true(loom.is_cancelled(select(2, pcall(t.await, t))))
        assert.equal("cancelled", t:status())
        assert.equal(1, cleaned)
        assert.is_true(gone(pids[1]), "the child was not reaped")
        assert.is_true(wait_gone(pids[2]), "the grandchild still runs")
        os.remove(pidfile)
        sleep(0.02)
        assert.is_true(io_.stats().handles < before.handles)
      end)

    it("names itself in bad arguments", function()
      assert.matches("bad argument #1 to 'run' %(string or table expected, "
        .. "got no value%)", error_of(process.run))
      assert.matches("bad argument #1 to 'run' %(command 'ls %-l' has "
        .. "spaces: pass an argv table, or shell = true%)",
        error_of(process.run, "ls -l"))
      assert.matches("bad argument #1 to 'run' %(argv is empty%)",
        error_of(process.run, {}))
      assert.matches("bad argument #1 to 'run' %(argv%[2%] is a table, "
        .. "expected a string%)", error_of(process.run, { "a", {} }))
      assert.matches("bad argument #2 to 'run' %(table expected, got "
        .. "number%)", error_of(process.run, "true", 1))
      assert.matches("bad argument #2 to 'run' %(input must be a string%)",
        error_of(process.run, "true", { input = 1 }))
      assert.matches("bad argument #2 to 'run' %(timeout must be",
        error_of(process.run, "true", { timeout = -1 }))
      assert.matches("bad argument #2 to 'run' %(cwd must be a string%)",
        error_of(process.run, "true", { cwd = 1 }))
      assert.matches("bad argument #2 to 'run' %(env must be a table%)",
        error_of(process.run, "true", { env = "x" }))
      assert.matches("bad argument #2 to 'run' %(env.A must be a string or "
        .. "false%)", error_of(process.run, "true", { env = { A = {} } }))
      assert.matches("bad argument #2 to 'run' %(stdout must be \"inherit\"",
        error_of(process.run, "true", { stdout = "x" }))
      assert.matches("bad argument #1 to 'run' %(shell = true takes a "
        .. "command string%)",
        error_of(process.run, { "a" }, { shell = true }))
    end)
  end)

  describe("spawn", function()
    it("gives a Process with pid, pipes as streams, and wait()", function()
      local p = process.spawn({ "sh", "-c", "read x; echo got $x; exit 7" },
        { stdin = "pipe", stdout = "pipe" })
      assert.equal("integer", math.type(p.pid))
      assert.matches("^loom.Process: %d+ %(running%)$", tostring(p))
      assert.matches("pipe stdin of %d+", tostring(p.stdin))
      assert.is_nil(p.stderr)
      assert.is_nil(p.code)
      assert.is_false(p:done())
      p.stdin:write("yo\n")
      assert.equal("got yo", p.stdout:read_line())
      assert.same({ 7 }, { p:wait() })
      assert.same({ 7 }, { p:wait() })
      assert.is_true(p:done())
      assert.equal(7, p.code)
      assert.matches("exited, code 7", tostring(p))
      assert.is_nil(p.stdout:read())
    end)

    it("close_write on stdin is the child's end of input", function()
      local p = process.spawn({ "wc", "-c" }, { stdin = "pipe",
        stdout = "pipe" })
      p.stdin:write("12345")
      p.stdin:close_write()
      assert.equal("5", p.stdout:read_all():match("%d+"))
      assert.equal(0, p:wait())
    end)

    it("pipes know their direction", function()
      local p <close> = process.spawn({ "cat" }, { stdin = "pipe",
        stdout = "pipe" })
      assert.equal("read: the stream is not readable (EBADF)",
        tostring(error_of(p.stdin.read, p.stdin)))
      assert.equal("write: the stream is not writable (EBADF)",
        tostring(error_of(p.stdout.write, p.stdout, "x")))
    end)

    it("kill sends a signal; false once it has exited", function()
      local p = process.spawn({ "sleep", "30" })
      assert.is_true(p:kill())
      assert.same({ 143, "SIGTERM" }, { p:wait() })
      assert.equal("SIGTERM", p.signal)
      assert.is_false(p:kill("SIGKILL"))
      local q = process.spawn({ "sleep", "30" })
      assert.is_true(q:kill(9))
      assert.same({ 137, "SIGKILL" }, { q:wait() })
      local r = process.spawn({ "sleep", "30" })
      assert.matches("bad argument #1 to 'kill' %(unknown signal 'SIGNOPE'%)",
        error_of(function() return r:kill("SIGNOPE") end))
      assert.is_true(r:kill("INT"))
      assert.equal("SIGINT", select(2, r:wait()))
    end)

    it("many tasks can wait for one process", function()
      local p = process.spawn({ "sleep", "0.05" })
      local a = spawn(p.wait, p)
      local b = spawn(p.wait, p)
      assert.same({ 0, 0 }, { a:await(), b:await() })
    end)

    it("<close> kills a child still running, and waits for it", function()
      local pid
      do
        local p <close> = process.spawn({ "sleep", "30" })
        pid = p.pid
      end
      assert.is_true(gone(pid))
    end)

    it("a spawn that fails leaves no handle", function()
      local before = io_.stats()
      error_of(process.spawn, { "no-such-program-xyz" }, { stdout = "pipe" })
      sleep(0.01)
      assert.equal(before.handles, io_.stats().handles)
    end)

    it("a cancelled wait lets go; the process goes on", function()
      local p <close> = process.spawn({ "sleep", "0.1" })
      local t = spawn(p.wait, p)
      sleep(0.01)
      t:cancel()
      assert.is_true(loom.is_cancelled(select(2, pcall(t.await, t))))
      assert.equal(0, p:wait())
    end)

    it("names itself in bad arguments", function()
      assert.matches("bad argument #1 to 'spawn' %(table expected, got "
        .. "string%)", error_of(process.spawn, "ls"))
      assert.matches("bad argument #2 to 'spawn' %(table expected, got "
        .. "string%)", error_of(process.spawn, { "ls" }, "x"))
      assert.matches("bad argument #1 to 'spawn' %(argv%[1%] contains a "
        .. "zero byte%)", error_of(process.spawn, { "a\0b" }))
      assert.matches("bad argument #2 to 'spawn' %(bad env name 'A=B'%)",
        error_of(process.spawn, { "true" }, { env = { ["A=B"] = "x" } }))
    end)
  end)

  describe("outside the runtime", function()
    it("a child of run still running at exit is killed", function()
      local pidfile = os.tmpname()
      local out, err, code = cli.script(([[
spawn(function()
  loom.process.run({"sh", "-c", "echo $$ > %s; exec sleep 30"})
end)
sleep(0.2)
os.exit(0, true)
]]):format(pidfile))
      assert.same({ "", "", 0 }, { out, err, code })
      local pid = fs.read_file(pidfile):match("%d+")
      os.remove(pidfile)
      assert.is_true(wait_gone(pid))
    end)
  end)
end)
