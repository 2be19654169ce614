-- loom.json: JSON through lua-cjson, with two fixes for Lua 5.4: integral
-- numbers decode as integers (cjson alone gives floats), and errors name
-- the function that raised them.
local cjson = require "cjson"

local codec = cjson.new()  -- private settings, shared with no other user
local tointeger, mtype = math.tointeger, math.type

local json = { null = codec.null }

local function integers(v)
  for k, x in pairs(v) do
    if mtype(x) == "float" then
      local i = tointeger(x)
      if i then v[k] = i end
    elseif type(x) == "table" then
      integers(x)
    end
  end
  return v
end

function json.decode(text)
  if type(text) ~= "string" then
    error(("bad argument #1 to 'decode' (string expected, got %s)")
      :format(type(text)), 2)
  end
  local ok, v = pcall(codec.decode, text)
  if not ok then error("json.decode: " .. tostring(v), 2) end
  if type(v) == "table" then return integers(v) end
  return mtype(v) == "float" and tointeger(v) or v
end

function json.encode(value)
  local ok, text = pcall(codec.encode, value)
  if not ok then error("json.encode: " .. tostring(text), 2) end
  return text
end

return json
