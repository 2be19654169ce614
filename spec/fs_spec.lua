-- loom.fs: files and directories on the thread pool, every function and
-- error, File objects, and cancellation of a job in flight.
local it = require("spec.support.task").it
local error_of = require("spec.support.task").error_of
local cli = require "spec.support.cli"
local loom = require "loom"
local fs = loom.fs
local stats = require("loom.io").stats

local dir

local function path(name) return dir .. "/" .. name end

-- An I/O error value: code, op, path, and tostring as documented.
local function assert_ioerror(err, code, op, p)
  assert.is_true(require("loom.io").is_error(err), tostring(err))
  assert.equal(code, err.code)
  assert.equal(op, err.op)
  assert.equal(p, err.path)
  assert.equal(("%s: %s%s (%s)"):format(op, p and (p .. ": ") or "",
    err.message, code), tostring(err))
end

describe("loom.fs", function()
  before_each(function()
    dir = loom.run(fs.tmpdir)
  end)
  after_each(function()
    loom.run(fs.remove, dir, { recursive = true })
  end)

  describe("read_file and write_file", function()
    it("write a file and read it back, bytes as they are", function()
      local data = "line 1\n\0binary\255\n" .. ("x"):rep(100000)
      assert.is_nil(fs.write_file(path("a"), data))
      assert.equal(data, fs.read_file(path("a")))
    end)

    it("read an empty file as an empty string", function()
      fs.write_file(path("empty"), "")
      assert.equal("", fs.read_file(path("empty")))
    end)

    it("write_file replaces, append_file appends", function()
      fs.write_file(path("a"), "one")
      fs.write_file(path("a"), "two")
      fs.append_file(path("a"), "+three")
      fs.append_file(path("new"), "made")
      assert.equal("two+three", fs.read_file(path("a")))
      assert.equal("made", fs.read_file(path("new")))
    end)

    it("read files whose size stat does not know (/proc)", function()
      assert.matches("^Name:", fs.read_file("/proc/self/status"))
    end)

    it("a missing file is an ENOENT error with the path", function()
      local err = error_of(fs.read_file, path("nope"))
      assert_ioerror(err, "ENOENT", "read_file", path("nope"))
      assert.equal("no such file or directory", err.message)
    end)

    it("a directory is EISDIR", function()
      assert_ioerror(error_of(fs.read_file, dir), "EISDIR", "read_file", dir)
      assert_ioerror(error_of(fs.write_file, dir, "x"), "EISDIR",
        "write_file", dir)
    end)

    it("writing into a missing directory is ENOENT", function()
      assert_ioerror(error_of(fs.write_file, path("no/such"), "x"),
        "ENOENT", "write_file", path("no/such"))
      assert_ioerror(error_of(fs.append_file, path("no/such"), "x"),
        "ENOENT", "append_file", path("no/such"))
    end)

    it("permission denied is EACCES", function()
      local f = path("secret")
      fs.write_file(f, "x")
      assert.is_true(os.execute("chmod 000 " .. cli.quote(f)))
      local out, err, code
      if os.execute("test $(id -u) = 0") then
        -- root reads anything: ask as nobody, in a child process
        os.execute("chmod 755 " .. cli.quote(dir))
        out, err, code = cli.run{ prog = "setpriv", args = { "--reuid=nobody",
          "--regid=nogroup", "--clear-groups", cli.LOOM, "-e",
          ("print(select(2, pcall(loom.fs.read_file, %q)))"):format(f) } }
        assert.same({ ("read_file: %s: permission denied (EACCES)\n")
          :format(f), "", 0 }, { out, err, code })
      else
        assert_ioerror(error_of(fs.read_file, f), "EACCES", "read_file", f)
      end
    end)

    it("many at once, all on the thread pool", function()
      local n = 200
      for i = 1, n do fs.write_file(path("f" .. i), ("%d"):format(i)) end
      local jobs = {}
      for i = 1, n do
        jobs[i] = function() return fs.read_file(path("f" .. i)) end
      end
      local got = gather(jobs)
      for i = 1, n do assert.equal(tostring(i), got[i]) end
    end)

    it("name themselves in bad arguments", function()
      assert.matches("bad argument #1 to '.*read_file' %(string expected, "
        .. "got no value%)", error_of(fs.read_file))
      assert.matches("bad argument #1 to '.*read_file' %(string expected, "
        .. "got number%)", error_of(fs.read_file, 42))
      assert.matches("bad argument #1 to '.*read_file' %(path contains a "
        .. "zero byte%)", error_of(fs.read_file, "a\0b"))
      assert.matches("bad argument #1 to '.*read_file' %(path is empty%)",
        error_of(fs.read_file, ""))
      assert.matches("bad argument #2 to '.*write_file' %(string expected, "
        .. "got table%)", error_of(fs.write_file, path("x"), {}))
      assert.matches("bad argument #2 to '.*append_file' %(string expected, "
        .. "got nil%)", error_of(fs.append_file, path("x"), nil))
    end)
  end)

  describe("stat and exists", function()
    it("stat gives type, size, mode and times", function()
      fs.write_file(path("a"), "12345")
      local st = fs.stat(path("a"))
      assert.equal("file", st.type)
      assert.equal(5, st.size)
      assert.equal("number", type(st.mtime))
      assert.is_true(math.abs(st.mtime - os.time()) < 60)
      assert.equal("integer", math.type(st.mode))
      assert.equal("directory", fs.stat(dir).type)
      for _, k in ipairs{ "atime", "ctime", "uid", "gid", "nlink", "ino" } do
        assert.is_not_nil(st[k], k)
      end
    end)

    it("follows links unless follow = false", function()
      fs.write_file(path("target"), "x")
      assert.is_true(os.execute(("ln -s %s %s"):format(
        cli.quote(path("target")), cli.quote(path("link")))))
      assert.equal("file", fs.stat(path("link")).type)
      assert.equal("link", fs.stat(path("link"), { follow = false }).type)
    end)

    it("stat of a missing path is ENOENT", function()
      assert_ioerror(error_of(fs.stat, path("nope")), "ENOENT", "stat",
        path("nope"))
    end)

    it("exists says whether a path is there", function()
      fs.write_file(path("a"), "")
      assert.is_true(fs.exists(path("a")))
      assert.is_true(fs.exists(dir))
      assert.is_false(fs.exists(path("nope")))
      assert.is_false(fs.exists(path("a/below/a/file")))
    end)

    it("name themselves in bad arguments", function()
      assert.matches("bad argument #1 to '.*stat'", error_of(fs.stat, nil))
      assert.matches("bad argument #2 to '.*stat' %(table expected, got "
        .. "string%)", error_of(fs.stat, dir, "x"))
      assert.matches("bad argument #1 to '.*exists'", error_of(fs.exists, {}))
    end)
  end)

  describe("list_dir", function()
    it("iterates over names and types, in name order", function()
      fs.write_file(path("b"), "")
      fs.mkdir(path("a"))
      fs.write_file(path("c"), "")
      local seen = {}
      for name, kind in fs.list_dir(dir) do
        seen[#seen + 1] = name .. ":" .. kind
      end
      assert.same({ "a:directory", "b:file", "c:file" }, seen)
    end)

    it("of an empty directory gives nothing", function()
      for _ in fs.list_dir(dir) do error("not empty") end
    end)

    it("of a missing directory is ENOENT, of a file ENOTDIR", function()
      assert_ioerror(error_of(fs.list_dir, path("nope")), "ENOENT",
        "list_dir", path("nope"))
      fs.write_file(path("f"), "")
      assert_ioerror(error_of(fs.list_dir, path("f")), "ENOTDIR",
        "list_dir", path("f"))
    end)
  end)

  describe("mkdir, remove and rename", function()
    it("mkdir makes a directory; EEXIST if it is there", function()
      fs.mkdir(path("d"))
      assert.equal("directory", fs.stat(path("d")).type)
      assert_ioerror(error_of(fs.mkdir, path("d")), "EEXIST", "mkdir",
        path("d"))
    end)

    it("mkdir with parents makes the whole chain and accepts one there",
      function()
        fs.mkdir(path("a/b/c"), { parents = true })
        fs.mkdir(path("a/b/c"), { parents = true })
        assert.equal("directory", fs.stat(path("a/b/c")).type)
        assert_ioerror(error_of(fs.mkdir, path("x/y")), "ENOENT", "mkdir",
          path("x/y"))
        fs.write_file(path("file"), "")
        assert.equal("EEXIST",
          error_of(fs.mkdir, path("file"), { parents = true }).code)
      end)

    it("mkdir takes a mode", function()
      fs.mkdir(path("m"), { mode = tonumber("700", 8) })
      assert.equal(tonumber("700", 8), fs.stat(path("m")).mode)
      assert.matches("bad argument #2 to '.*mkdir' %(mode must be",
        error_of(fs.mkdir, path("m2"), { mode = -1 }))
    end)

    it("remove removes a file or an empty directory", function()
      fs.write_file(path("f"), "")
      fs.mkdir(path("d"))
      fs.remove(path("f"))
      fs.remove(path("d"))
      assert.is_false(fs.exists(path("f")))
      assert.is_false(fs.exists(path("d")))
      assert_ioerror(error_of(fs.remove, path("f")), "ENOENT", "remove",
        path("f"))
    end)

    it("remove refuses a full directory unless recursive", function()
      fs.mkdir(path("d/e/f"), { parents = true })
      fs.write_file(path("d/e/f/x"), "x")
      assert_ioerror(error_of(fs.remove, path("d")), "ENOTEMPTY", "remove",
        path("d"))
      fs.remove(path("d"), { recursive = true })
      assert.is_false(fs.exists(path("d")))
    end)

    it("rename moves; a missing source is ENOENT", function()
      fs.write_file(path("a"), "content")
      fs.rename(path("a"), path("b"))
      assert.equal("content", fs.read_file(path("b")))
      assert.is_false(fs.exists(path("a")))
      assert_ioerror(error_of(fs.rename, path("a"), path("c")), "ENOENT",
        "rename", path("a"))
      assert.matches("bad argument #2 to '.*rename'",
        error_of(fs.rename, path("b")))
    end)
  end)

  describe("tmpdir", function()
    it("makes a new private directory each time", function()
      local a, b = fs.tmpdir(), fs.tmpdir("spec-")
      assert.are_not.equal(a, b)
      assert.matches("/loom%-......$", a)
      assert.matches("/spec%-......$", b)
      assert.equal(tonumber("700", 8), fs.stat(a).mode)
      fs.remove(a)
      fs.remove(b)
    end)

    it("refuses a prefix with a slash", function()
      assert.matches("bad argument #1 to '.*tmpdir' %(prefix must be a name",
        error_of(fs.tmpdir, "a/b"))
    end)
  end)

  describe("open", function()
    it("reads counts, lines and the rest, as io does", function()
      fs.write_file(path("t"), "first\nsecond\r\nthird")
      local f <close> = fs.open(path("t"))
      assert.equal("fir", f:read(3))
      assert.equal("st", f:read("l"))
      assert.equal("second\r\n", f:read("L"))
      assert.equal("third", f:read("a"))
      assert.equal("", f:read("a"))
      assert.is_nil(f:read("l"))
      assert.is_nil(f:read(1))
      assert.equal("", f:read(0))
    end)

    it("lines() iterates, across reads longer than the buffer", function()
      local long = ("y"):rep(200000)
      fs.write_file(path("t"), "a\n" .. long .. "\nb")
      local f <close> = fs.open(path("t"), "r")
      local got = {}
      for line in f:lines() do got[#got + 1] = line end
      assert.same({ "a", long, "b" }, got)
      local g <close> = fs.open(path("t"))
      local n = 0
      for chunk in g:lines(65536) do n = n + #chunk end
      assert.equal(#long + 4, n)
    end)

    it("writes strings and numbers, and returns the file", function()
      local f = fs.open(path("w"), "w")
      assert.equal(f, f:write("a", 1, "\n"):write(2.5))
      f:close()
      assert.equal("a1\n2.5", fs.read_file(path("w")))
    end)

    it("seeks, and writes where it reads (r+, w+)", function()
      fs.write_file(path("s"), "0123456789")
      local f <close> = fs.open(path("s"), "r+")
      assert.equal("01", f:read(2))
      assert.equal(2, f:seek())
      f:write("ab")
      assert.equal(0, f:seek("set"))
      assert.equal("01ab456789", f:read("a"))
      assert.equal(10, f:seek("end"))
      assert.equal(7, f:seek("set", 7))
      assert.equal("789", f:read("a"))
      local g <close> = fs.open(path("n"), "w+")
      g:write("hello")
      g:seek("set", 1)
      assert.equal("ell", g:read(3))
    end)

    it("appends with a and a+", function()
      fs.write_file(path("a"), "x")
      local f = fs.open(path("a"), "a")
      f:write("y")
      f:close()
      local g <close> = fs.open(path("a"), "a+")
      assert.equal("xy", g:read("a"))
      g:write("z")
      assert.equal("xyz", fs.read_file(path("a")))
    end)

    it("x refuses an existing file", function()
      fs.write_file(path("x"), "")
      assert_ioerror(error_of(fs.open, path("x"), "wx"), "EEXIST", "open",
        path("x"))
    end)

    it("a missing file is ENOENT; a bad mode a bad argument", function()
      assert_ioerror(error_of(fs.open, path("nope")), "ENOENT", "open",
        path("nope"))
      assert.matches("bad argument #2 to '.*open' %(invalid mode 'q'%)",
        error_of(fs.open, path("nope"), "q"))
      assert.matches("bad argument #2 to '.*open' %(invalid mode 'rw'%)",
        error_of(fs.open, path("nope"), "rw"))
    end)

    it("says what a file cannot do", function()
      fs.write_file(path("r"), "x")
      local r <close> = fs.open(path("r"))
      local e = error_of(r.write, r, "y")
      assert.equal("EBADF", e.code)
      assert.equal("write: the file is not open for writing (EBADF)",
        tostring(e))
      local w <close> = fs.open(path("w"), "w")
      assert.equal("read: the file is not open for reading (EBADF)",
        tostring(error_of(w.read, w)))
      assert.matches("bad argument #1 to 'read' %(invalid format%)",
        error_of(function() return r:read("x") end))
      assert.matches("bad argument #1 to 'write' %(string or number "
        .. "expected, got table%)", error_of(function() w:write({}) end))
      assert.matches("bad argument #1 to 'seek' %(invalid option 'up'%)",
        error_of(function() return r:seek("up") end))
      assert.matches("bad argument #1 to 'read' %(count must be "
        .. "non%-negative%)", error_of(function() return r:read(-1) end))
    end)

    it("a closed file says so; closing twice is fine", function()
      fs.write_file(path("c"), "x")
      local f = fs.open(path("c"))
      assert.matches("^loom.File: 0x%x+$", tostring(f))
      assert.is_true(f:close())
      assert.is_nil(f:close())
      assert.matches("%(closed%)$", tostring(f))
      assert.equal("read: the file is closed (ECLOSED)",
        tostring(error_of(f.read, f)))
      assert.equal("ECLOSED", error_of(f.write, f, "x").code)
      assert.equal(0, stats().files)
    end)

    it("<close> and the collector close it", function()
      fs.write_file(path("c"), "x")
      do
        local f <close> = fs.open(path("c"))
        assert.equal(1, stats().files)
      end
      assert.equal(0, stats().files)
      fs.open(path("c"))
      collectgarbage()
      collectgarbage()
      assert.equal(0, stats().files)
    end)

    it("one task uses a file at a time", function()
      local fifo = path("busy")
      os.execute("mkfifo " .. cli.quote(fifo))
      local writer = spawn(function()
        local w <close> = fs.open(fifo, "w")
        sleep(0.05)
        w:write(("z"):rep(1000))
      end)
      local f <close> = fs.open(fifo)
      local t = spawn(function() return f:read("a") end)
      sleep(0.01)
      assert.equal("read: another task is using the file (EBUSY)",
        tostring(error_of(f.read, f, 1)))
      writer:await()
      assert.equal(1000, #t:await())
    end)

    it("closed by another task while it reads: the read says so",
      function()
        local fifo = path("closing")
        os.execute("mkfifo " .. cli.quote(fifo))
        local writer = spawn(function()
          local w <close> = fs.open(fifo, "w")
          sleep(0.05)
        end)
        local f = fs.open(fifo)
        local t = spawn(function() return f:read("a") end)
        sleep(0.01)
        assert.is_true(f:close())
        writer:await()
        assert.equal("read: the file is closed (ECLOSED)",
          tostring(error_of(t.await, t)))
        assert.equal(0, stats().files)
      end)
  end)

  describe("cancellation", function()
    it("a cancelled read_file lets its job go; the job frees itself",
      function()
        -- a FIFO blocks the job in the pool until someone opens it
        local fifo = path("fifo")
        assert.is_true(os.execute("mkfifo " .. cli.quote(fifo)))
        local cleaned = 0
        local t = spawn(function()
          local guard <close> = setmetatable({}, { __close = function()
            cleaned = cleaned + 1 end })
          return fs.read_file(fifo)
        end)
        sleep(0.05)
        assert.equal(1, stats().requests)
        t:cancel()
        assert.is_true(loom.is_cancelled(select(2, pcall(t.await, t))))
        assert.equal("cancelled", t:status())
        assert.equal(1, cleaned)
        -- let the stuck open finish: a writer opens the FIFO and leaves
        local w = fs.open(fifo, "w")
        w:close()
        for _ = 1, 100 do
          if stats().requests == 0 then break end
          sleep(0.01)
        end
        assert.equal(0, stats().requests)
      end)

    it("jobs cancelled before they start are dropped", function()
      fs.write_file(path("a"), "x")
      local tasks = {}
      for i = 1, 50 do
        tasks[i] = spawn(function() return fs.read_file(path("a")) end)
      end
      sleep(0)
      for i = 1, 50 do tasks[i]:cancel() end
      for i = 1, 50 do pcall(tasks[i].await, tasks[i]) end
      for _ = 1, 100 do
        if stats().requests == 0 then break end
        sleep(0.01)
      end
      assert.equal(0, stats().requests)
    end)

    it("a file read cancelled mid-way keeps the file usable", function()
      local fifo = path("fifo2")
      os.execute("mkfifo " .. cli.quote(fifo))
      local writer = spawn(function()
        local w <close> = fs.open(fifo, "w")
        sleep(0.1)
        w:write("late\n")
      end)
      local f <close> = fs.open(fifo)
      local t = spawn(function() return f:read("l") end)
      sleep(0.02)
      t:cancel()
      pcall(t.await, t)
      writer:await()
      sleep(0.02)
      -- what the cancelled read took stays in the file's buffer
      assert.equal("late", f:read("l"))
    end)
  end)

  describe("outside a task", function()
    after_each(cli.cleanup)

    it("says so, from a stock lua5.4", function()
      if cli.SANITIZE then
        pending("loom.so is sanitized: lua5.4 cannot load it")
      end
      local out, err, code = cli.module([[
local loom = require "loom"
print(select(2, pcall(loom.fs.read_file, "/etc/hostname")))
print(loom.run(function() return #loom.fs.read_file("/etc/hostname") > 0 end))
]])
      assert.same({ "read_file: not inside a task (wrap the code in "
        .. "loom.run(fn))\ntrue\n", "", 0 }, { out, err, code })
    end)
  end)
end)
