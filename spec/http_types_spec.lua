-- types/loom_http.lua annotates every public function of loom.http, and
-- the methods of its sessions and responses (lua-language-server is not
-- here: this reads the file for "function <table>.<name>(" lines).
local it = require("spec.support.task").it
local loom = require "loom"

local function annotated()
  local here = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."
  local found = {}
  for line in io.lines(here .. "/types/loom_http.lua") do
    local owner, name = line:match("^function%s+([%w_]+)[.:]([%w_]+)%s*%(")
    if owner then found[owner .. "." .. name] = true end
  end
  return found
end

describe("types/loom_http.lua", function()
  it("annotates every function, session method and response method",
    function()
      local found, missing = annotated(), {}
      local http = loom.http
      for k, v in pairs(http) do
        if type(v) == "function" and not found["http." .. k] then
          missing[#missing + 1] = "http." .. k
        end
      end
      for _, m in ipairs{ "get", "post", "put", "patch", "delete", "head",
                          "request", "close" } do
        assert.is_function(http.Session[m])
        if not found["Session." .. m] then missing[#missing + 1] = "Session." .. m end
      end
      local res = setmetatable({}, http.Response)
      for _, m in ipairs{ "json", "raise_for_status", "chunks", "read", "save",
                          "close" } do
        assert.is_function(res[m])
        if not found["Response." .. m] then missing[#missing + 1] = "Response." .. m end
      end
      table.sort(missing)
      assert.same({}, missing)
      -- and nothing annotated is gone
      for name in pairs(found) do
        local owner, m = name:match("^(%w+)%.(.+)$")
        local t = owner == "http" and http or owner == "Session" and http.Session
          or res
        assert.is_function(t[m], name)
      end
    end)
end)
