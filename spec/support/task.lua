-- spec/support/task.lua: busted's `it`, but each test body runs as its own
-- loom task, and a task failure nobody retrieved during the test fails it.
--
--   local it = require("spec.support.task").it
--   it("does things", function() loom.sleep(0.05) end)
--
-- The body is spawned and awaited (its error, an assertion failure or a
-- pending() marker included, comes back unchanged), then the collector runs
-- twice so forgotten failed tasks are finalized, and loom.report_unretrieved()
-- must say that none was left unretrieved (the ones it finds are printed on
-- stderr by the report hook, with their traceback and spawn site).
local busted = require "busted"
local loom = require "loom"

local M = {}

local function unretrieved()
  collectgarbage()
  collectgarbage()
  return loom.report_unretrieved()
end

-- Returns fn wrapped so that it runs as a task and is checked as above.
function M.wrap(fn)
  local info = debug.getinfo(fn, "S")
  local where = info.short_src .. ":" .. info.linedefined .. ": "
  return function(...)
    local t = loom.spawn(fn, ...)
    local ok, err = pcall(t.await, t)
    local n = unretrieved()
    if not ok then error(err, 0) end  -- the body's own error, unchanged
    if n ~= 0 then
      error((where .. "%d task(s) failed during this test and nobody retrieved the "
             .. "error (reported on stderr above)"):format(n), 0)
    end
  end
end

-- it(name, fn): as busted's, with fn wrapped; it(name) stays pending.
function M.it(name, fn)
  if fn == nil then return busted.it(name) end
  return busted.it(name, M.wrap(fn))
end

-- Handy in specs: the error of calling fn(...), which must fail.
function M.error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error, got none")
  return err
end

return M
