-- types/loom.lua: every public function, method and field of the real
-- loom API has a LuaLS annotation there, and nothing annotated is gone.
-- lua-language-server is not available here, so this reads the file for
-- the forms it uses ("---@class", "---@field", "local X = {}",
-- "function X.f(" / "function X:f(", "g = loom.f").
--
-- Submodules loom.<name> to check. Add a name here when its submodule lands
-- (and its class "loom.<name>" in types/loom.lua); a listed name that loom
-- does not have fails.
local SUBMODULES = { "json", "timer", "sync", "debug", "http", "fs", "tcp",
                     "process", "dns", "signal", "worker", "io" }

local it = require("spec.support.task").it
local loom = require "loom"

local function types_path(name)
  local here = debug.getinfo(1, "S").source:match("^@(.*)$")
  local dir = here and here:match("^(.*)/spec/[^/]*$") or "."
  return dir .. "/types/" .. (name or "loom.lua")
end

-- types/loom.lua first, then the other types/loom_*.lua files
local function types_files()
  local files = { types_path() }
  local p = io.popen("ls " .. types_path(""):gsub("'", "") .. " 2>/dev/null")
  for name in p:lines() do
    if name:match("^loom_[%w_]+%.lua$") then
      files[#files + 1] = types_path(name)
    end
  end
  p:close()
  return files
end

-- Reads the annotations: classes[name] = { [member] = "function"|"field" },
-- and globals[name] = "loom.<member>" for "name = loom.member" lines.
local function parse(paths)
  local classes, vars, globals = {}, {}, {}
  for _, path in ipairs(paths) do
  local f = assert(io.open(path, "r"))
  local class   -- the class whose ---@class block we are in, or nil
  local bind    -- a class waiting for its "local X = {}" line
  local n = 0
  for line in f:lines() do
    n = n + 1
    local name = line:match("^%-%-%-@class%s+([%w_.]+)")
    if name then
      classes[name] = classes[name] or {}
      class, bind = name, name
    elseif line:match("^%-%-%-") then
      local field = class and line:match("^%-%-%-@field%s+([%w_]+)")
      if field then classes[class][field] = "field" end
    else
      class = nil
      local var = line:match("^local%s+([%w_]+)%s*=") or
                  line:match("^([%w_]+)%s*=%s*{")
      if bind and var then vars[var] = bind end
      bind = nil
      local owner, member = line:match("^function%s+([%w_]+)[.:]([%w_]+)%s*%(")
      if owner then
        assert(vars[owner], ("%s:%d: function %s.%s: '%s' is no "
          .. "annotated class's table"):format(path, n, owner, member, owner))
        classes[vars[owner]][member] = "function"
      end
      local g, m = line:match("^([%w_]+)%s*=%s*loom%.([%w_]+)%s*$")
      if g then globals[g] = m end
    end
  end
  f:close()
  end
  return classes, globals
end

local classes, globals = parse(types_files())

local function public(key)
  return type(key) == "string" and not key:match("^_")
end

local function sorted(set)
  local list = {}
  for k in pairs(set) do list[#list + 1] = k end
  table.sort(list)
  return list
end

-- Fails unless every public key of 'real' is annotated in class 'name'
-- (keys in 'skip' aside), and every annotated member of it exists.
local function check(name, real, skip)
  local annotated = classes[name]
  assert(annotated, ("types/loom.lua has no ---@class %s"):format(name))
  local missing, gone = {}, {}
  for k in pairs(real) do
    if public(k) and not (skip and skip[k]) and not annotated[k] then
      missing[name .. "." .. k] = true
    end
  end
  for k in pairs(annotated) do
    if real[k] == nil then gone[name .. "." .. k] = true end
  end
  local problems = {}
  if next(missing) then
    problems[#problems + 1] = "not annotated in types/loom.lua: "
      .. table.concat(sorted(missing), ", ")
  end
  if next(gone) then
    problems[#problems + 1] = "annotated in types/loom.lua but not in loom: "
      .. table.concat(sorted(gone), ", ")
  end
  assert(#problems == 0, table.concat(problems, "; "))
end

-- The methods a value gets from its metatable's __index table.
local function methods(value)
  local index = getmetatable(value).__index
  assert.equal("table", type(index))
  return index
end

describe("types/loom.lua", function()
  it("is valid Lua", function()
    for _, path in ipairs(types_files()) do assert(loadfile(path)) end
  end)

  it("annotates the methods of the toolkit's objects", function()
    check("loom.Queue", loom.Queue())
    check("loom.Event", loom.Event())
    check("loom.Semaphore", loom.Semaphore())
    check("loom.Lock", loom.Lock())
    local g = loom.Lock():acquire()
    check("loom.Guard", methods(g))
    check("loom.Group", methods(loom.group()))
    local ok, e = pcall(loom.timeout, 0, function() sleep(1) end)
    assert.is_false(ok)
    check("loom.Timeout", e)
    ok, e = pcall(loom.scope, function(s) s:spawn(error, "x") end)
    assert.is_false(ok)
    check("loom.GroupError", e)
  end)

  it("annotates every function and field of the loom table", function()
    local skip = {}
    for _, name in ipairs(SUBMODULES) do skip[name] = true end
    check("loom", loom, skip)  -- loom[k] loads a submodule on first use
  end)

  it("annotates each listed submodule as a class and a field of loom",
     function()
    for _, name in ipairs(SUBMODULES) do
      local module = loom[name]
      assert(type(module) == "table", ("loom.%s is listed in "
        .. "spec/types_spec.lua but loom has no such submodule (got %s)")
        :format(name, type(module)))
      assert(classes.loom[name], ("types/loom.lua: class loom has no "
        .. "---@field %s loom.%s"):format(name, name))
      check("loom." .. name, module)
    end
  end)

  it("annotates the methods of Task", function()
    local t = loom.spawn(function() return 1 end)
    check("loom.Task", methods(t))
    assert.equal(1, t:await())
  end)

  it("annotates the methods of Future", function()
    check("loom.Future", methods(loom.future()))
  end)

  it("annotates the fields of a Cancelled error", function()
    local t = loom.spawn(function() loom.sleep(10) end)
    loom.sleep(0)
    t:cancel()
    local ok, err = pcall(t.await, t)
    assert.is_false(ok)
    assert.is_true(loom.is_cancelled(err))
    check("loom.Cancelled", err)
  end)

  it("declares the command's globals that are loom functions", function()
    local names = {}  -- function -> the loom keys that hold it
    for k, v in pairs(loom) do
      if type(v) == "function" then
        names[v] = names[v] or {}
        names[v][k] = true
      end
    end
    local missing = {}
    for g, v in pairs(_G) do
      if names[v] and not names[v][globals[g]] then
        missing[("%s = loom.%s"):format(g, sorted(names[v])[1])] = true
      end
    end
    assert(next(missing) == nil, "not declared in types/loom.lua: "
      .. table.concat(sorted(missing), ", "))
    assert.equal(loom, _G.loom)
    assert.is_table(classes.loom, "the loom class")
    for g, m in pairs(globals) do
      assert(loom[m] ~= nil, ("types/loom.lua: %s = loom.%s, which loom "
        .. "does not have"):format(g, m))
    end
  end)
end)
