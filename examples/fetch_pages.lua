-- examples/fetch_pages.lua: fetch many web pages at once. Every URL is
-- fetched concurrently (gather), each page's status and length printed,
-- then the time it all took beside what fetching the pages one after
-- another took (a second pass, each pass with a fresh session).
--
--   loom examples/fetch_pages.lua https://www.lua.org/ https://example.com/
local http = loom.http

local urls = { ... }
if #urls == 0 then
  io.stderr:write("usage: loom fetch_pages.lua URL...\n")
  os.exit(2)
end

-- One page: its status and length, or what went wrong.
local function fetch(session, url)
  local ok, res = pcall(session.get, session, url)
  if not ok then return { url = url, error = tostring(res) } end
  return { url = url, status = res.status, length = #res.body }
end

-- All at once: one task per page, gathered in order.
local at_once <close> = http.session()
local t0 = loom.now()
local jobs = {}
for i, url in ipairs(urls) do
  jobs[i] = function() return fetch(at_once, url) end
end
local pages = gather(jobs)
local concurrent = loom.now() - t0

for _, page in ipairs(pages) do
  if page.error then
    print(("%-45s  failed: %s"):format(page.url, page.error))
  else
    print(("%-45s  %3d  %9d bytes"):format(page.url, page.status,
                                           page.length))
  end
end

-- The same pages one after another, for comparison.
local in_turn <close> = http.session()
t0 = loom.now()
for _, url in ipairs(urls) do fetch(in_turn, url) end
local sequential = loom.now() - t0

print(("%d pages: %.3f s at once, %.3f s one after another")
  :format(#urls, concurrent, sequential))
