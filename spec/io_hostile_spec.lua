-- Every public function of the I/O modules called with hostile arguments
-- (nil, wrong types, NaN, infinities, huge and negative numbers, tables
-- whose metamethods raise or yield, a coroutine, a C function): each call
-- succeeds or raises an error naming the function, and none hangs.
local it = require("spec.support.task").it
local loom = require "loom"

local function raising() error("metamethod ran", 0) end
local function yielding() coroutine.yield() end
local hostile = {
  { "nil", nil }, { "true", true }, { "NaN", 0 / 0 }, { "inf", math.huge },
  { "-inf", -math.huge }, { "maxinteger", math.maxinteger },
  { "mininteger", math.mininteger }, { "1e308", 1e308 }, { "-1", -1 },
  { "2^53", 2 ^ 53 }, { "0.5", 0.5 }, { "empty table", {} },
  { "raising table", setmetatable({}, { __index = raising,
    __newindex = raising, __len = raising, __pairs = raising,
    __tostring = raising, __call = raising, __eq = raising,
    __close = raising, __name = "hostile" }) },
  { "yielding table", setmetatable({}, { __index = yielding,
    __len = yielding, __pairs = yielding, __call = yielding,
    __tostring = yielding }) },
  { "coroutine", coroutine.create(print) }, { "C function", print },
}

-- the modules and the functions to call (all of them)
local modules = {
  fs = loom.fs, tcp = loom.tcp, dns = loom.dns, process = loom.process,
  signal = loom.signal, worker = loom.worker, io = require "loom.io",
}

local function names_it(err, fname)
  local text = type(err) == "string" and err
    or (type(err) == "table" and rawget(err, "message") ~= nil
        and tostring(err)) or nil
  return text ~= nil and (text:find("'" .. fname .. "'", 1, true)
    or text:find("'[%w_.]*%." .. fname .. "'")
    or text:find(fname .. ":", 1, true)) ~= nil, text
end

-- Calls fn(args) in a task with a deadline (2 s, or limit); returns ok,
-- err, or nil, "hung".
local function call(fn, args, n, limit)
  -- spawned directly, so a message names it as Lua finds it
  -- ("loom.fs.read_file"), not as a local of this file
  local t = spawn(fn, table.unpack(args, 1, n))
  local watchdog = spawn(function() sleep(limit or 2) t:cancel() end)
  local ok, err = pcall(t.await, t)
  watchdog:cancel()
  if not ok and loom.is_cancelled(err) then return nil, "hung" end
  return ok, err
end

describe("I/O functions given hostile arguments", function()
  local dirs = {}
  after_each(function()
    for _, d in ipairs(dirs) do loom.run(loom.fs.remove, d,
      { recursive = true }) end
    dirs = {}
  end)

  for mname, mod in pairs(modules) do
    local fnames = {}
    for k, v in pairs(mod) do
      if type(v) == "function" then fnames[#fnames + 1] = k end
    end
    table.sort(fnames)
    for _, fname in ipairs(fnames) do
      it(("loom.%s.%s succeeds or names itself"):format(mname, fname),
        function()
          local fn = mod[fname]
          for _, h in ipairs(hostile) do
            for pos = 1, 3 do
              local args = {}
              args[pos] = h[2]
              local ok, err = call(fn, args, pos)
              local where = ("%s(%s at #%d)"):format(fname, h[1], pos)
              assert.is_not_nil(ok, where .. " hung")
              if ok then
                if fname == "tmpdir" then dirs[#dirs + 1] = err end
              else
                local named, text = names_it(err, fname)
                assert.is_true(named, where .. " raised: " .. tostring(text
                  or type(err)))
              end
            end
          end
        end)
    end
  end

  -- methods: self is right, the other arguments hostile; a call may wait
  -- (read(2^53) is a read), which the watchdog ends
  local function objects()
    local dir = loom.fs.tmpdir()
    dirs[#dirs + 1] = dir
    loom.fs.write_file(dir .. "/f", ("line\n"):rep(100))
    local server = loom.tcp.listen("127.0.0.1", 0, function(s)
      pcall(function()  -- the client may go away: fine
        s:write(("data\n"):rep(1000))
        s:read_all()
      end)
    end)
    local stream = loom.tcp.connect("127.0.0.1", server.port)
    local p = loom.process.spawn({ "sleep", "30" }, { stdin = "pipe" })
    return {
      File = { loom.fs.open(dir .. "/f", "r+"), close = true },
      Stream = { stream }, Server = { server },
      Process = { p }, Pipe = { p.stdin },
      Subscription = { loom.signal.subscribe("SIGUSR2") },
    }
  end

  it("methods of I/O objects succeed or name themselves", function()
    local objs = objects()
    for kind, o in pairs(objs) do
      local obj = o[1]
      local mt = getmetatable(obj)
      local index = mt.__index
      local methods = {}
      if type(index) == "table" then
        for k, v in pairs(index) do
          if type(v) == "function" then methods[#methods + 1] = k end
        end
      else  -- a function: ask it for the documented methods
        for _, k in ipairs{ "accept", "wait", "kill", "done", "close" } do
          if type(obj[k]) == "function" then methods[#methods + 1] = k end
        end
      end
      table.sort(methods)
      for _, m in ipairs(methods) do
        if m ~= "close" and m ~= "shutdown" and m ~= "close_write" then
          for _, h in ipairs(hostile) do
            if h[2] ~= nil then
              -- o:m(x) in Lua, so that Lua can name the method
              local f = load(("local o, x = ... return o:%s(x)"):format(m))
              local ok, err = call(f, { obj, h[2] }, 2, 0.02)
              if ok == false then
                assert.is_true(names_it(err, m), ("%s:%s(%s) raised: %s")
                  :format(kind, m, h[1], tostring(err)))
              end
            end
          end
        end
      end
    end
    for _, o in pairs(objs) do pcall(o[1].close, o[1]) end
  end)

  it("loom.to_thread succeeds or names itself", function()
    for _, h in ipairs(hostile) do
      for pos = 1, 3 do
        local args = {}
        args[pos] = h[2]
        local ok, err = call(loom.to_thread, args, pos)
        assert.is_not_nil(ok, h[1] .. " hung")
        if not ok then
          assert.is_true(names_it(err, "to_thread"), tostring(err))
        end
      end
    end
  end)
end)
