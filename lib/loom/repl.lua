-- loom.repl: the Lua half of the loom REPL (cli/repl.c is the other):
-- how results are shown (tables pretty-printed, the last value kept in
-- `_`) and what Tab completes. Completion never runs user code: it walks
-- tables with rawget and next, and follows __index only to a table.
local M = {}

local type, next, rawget, rawset, tostring, select, ipairs = type, next,
  rawget, rawset, tostring, select, ipairs
local G = _G
local getmetatable = debug.getmetatable  -- raw: ignores __metatable
local concat, sort, unpack = table.concat, table.sort, table.unpack
local format = string.format
local mtype = math.type

M.MAX_DEPTH = 4      -- deeper tables show as {...}
M.MAX_ITEMS = 100    -- entries shown per table
M.WIDTH = 72         -- a table that fits on one line this wide stays there

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in
  local nil not or repeat return then true until while]]):gmatch("%a+") do
  KEYWORDS[w] = true
end

local function is_name(s)
  return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil
    and not KEYWORDS[s]
end

-- A string as Lua source, on one line: "a\nb" rather than %q's "a\
-- b".
local function quote(s)
  return (format("%q", s):gsub("\\\n", "\\n"):gsub("\r", "\\r"))
end

-- Keys in a stable order: numbers, then strings, then the rest by type
-- and text.
local RANK = { number = 1, string = 2 }
local function before(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then
    local ra, rb = RANK[ta] or 3, RANK[tb] or 3
    if ra ~= rb then return ra < rb end
    return ta < tb
  end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local pretty

local function scalar(v)
  if type(v) == "string" then return quote(v) end
  return tostring(v)
end

-- Has its own text: a __tostring or a __name in its metatable.
local function has_own_text(v)
  local mt = getmetatable(v)
  return mt ~= nil and (rawget(mt, "__tostring") ~= nil
    or rawget(mt, "__name") ~= nil)
end

local function key_text(k, path, depth, indent)
  if is_name(k) then return k end
  if type(k) == "table" and not has_own_text(k) then
    return "[" .. pretty(k, path, depth + 1, indent) .. "]"
  end
  return "[" .. scalar(k) .. "]"
end

-- path: the tables being printed around this one (a cycle points back to
-- one of them).
function pretty(t, path, depth, indent)
  if type(t) ~= "table" or has_own_text(t) then return scalar(t) end
  if path[t] then return "<cycle>" end
  if next(t) == nil then return "{}" end
  if depth >= M.MAX_DEPTH then return "{...}" end
  path[t] = true
  local items, n = {}, 0
  local inner = indent .. "  "
  -- the sequence 1..n first, without keys
  local seq = 0
  while rawget(t, seq + 1) ~= nil and n < M.MAX_ITEMS do
    seq = seq + 1
    n = n + 1
    items[n] = pretty(rawget(t, seq), path, depth + 1, inner)
  end
  local keys, total = {}, seq
  for k in next, t do
    if not (mtype(k) == "integer" and k >= 1 and k <= seq) then
      keys[#keys + 1] = k
    end
  end
  total = total + #keys
  sort(keys, before)
  for _, k in ipairs(keys) do
    if n >= M.MAX_ITEMS then break end
    n = n + 1
    items[n] = key_text(k, path, depth, inner) .. " = "
      .. pretty(rawget(t, k), path, depth + 1, inner)
  end
  if total > n then
    items[n + 1] = format("... (%d more)", total - n)
  end
  path[t] = nil
  local line = "{ " .. concat(items, ", ") .. " }"
  if #line <= M.WIDTH - #indent and not line:find("\n", 1, true) then
    return line
  end
  return "{\n" .. inner .. concat(items, ",\n" .. inner) .. "\n" .. indent
    .. "}"
end

-- The text the REPL shows for v: tables (without a __tostring or __name
-- of their own) pretty-printed, anything else as print shows it.
function M.pretty(v)
  return pretty(v, {}, 0, "")
end

-- ---- results -----------------------------------------------------------

-- What the REPL put in _ last; once _ holds anything else, the user took
-- it over and the REPL leaves it alone (Node's rule).
local last, owned = nil, true

-- Called with an input's results: keeps the first in _ and returns what
-- to hand to print (tables made into their pretty text).
function M.results(...)
  local n = select("#", ...)
  if n == 0 then return end
  if owned then
    if rawget(G, "_") == last then
      last = (...)
      rawset(G, "_", last)
    else
      owned = false
    end
  end
  local out = { ... }
  for i = 1, n do
    local v = out[i]
    if type(v) == "table" and not has_own_text(v) then out[i] = M.pretty(v) end
  end
  return unpack(out, 1, n)
end

-- ---- completion --------------------------------------------------------

-- Where the names of v come from: v itself if a table, then __index
-- tables up the chain (a Task's and a future's methods, string methods).
local function sources(v)
  local list, seen = {}, {}
  while v ~= nil and not seen[v] and #list < 8 do
    seen[v] = true
    if type(v) == "table" then list[#list + 1] = v end
    local mt = getmetatable(v)
    local index = mt and rawget(mt, "__index")
    if type(index) ~= "table" then break end
    v = index
  end
  return list
end

-- A field of v found without running code, or nil.
local function field(v, name)
  for _, t in ipairs(sources(v)) do
    local x = rawget(t, name)
    if x ~= nil then return x end
  end
  return nil
end

-- Candidates for word, the text before the cursor up to a space or an
-- operator: "pri" (globals and keywords), "string.fo", "t:aw" (methods).
function M.complete(word)
  local base, sep, part = word:match("^(.-)([.:])([%w_]*)$")
  local v
  if base then
    v = G
    for name in (base .. "."):gmatch("([^.:]*)[.:]") do
      if not is_name(name) then return {} end
      v = field(v, name)
      if v == nil then return {} end
    end
  else
    part = word
    if not (part == "" or part:match("^[%a_][%w_]*$")) then return {} end
    v = G
  end
  local found, out = {}, {}
  for _, t in ipairs(sources(v)) do
    for k, x in next, t do
      if type(k) == "string" and not found[k] and is_name(k)
          and k:sub(1, #part) == part
          and (sep ~= ":" or type(x) == "function") then
        found[k] = true
        out[#out + 1] = (base and base .. sep or "") .. k
      end
    end
  end
  if not base then
    for k in next, KEYWORDS do
      if not found[k] and k:sub(1, #part) == part then out[#out + 1] = k end
    end
  end
  sort(out)
  return out
end

return M
