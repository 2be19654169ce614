-- examples/download.lua: a streamed download. The body goes to FILE chunk
-- by chunk as it arrives (memory stays small whatever the size), with a
-- progress bar on stderr when it is a terminal (bytes, percent, rate),
-- plain lines when it is not.
--
--   loom examples/download.lua https://www.lua.org/ftp/lua-5.4.6.tar.gz lua.tgz
local http = loom.http

local url, path = ...
if not url or not path then
  io.stderr:write("usage: loom download.lua URL FILE\n")
  os.exit(2)
end

-- Is stderr a terminal? (the shell's test -t sees the same descriptor)
local tty = os.execute("test -t 2") == true

local function size(n)
  if n >= 1024 * 1024 then return ("%.1f MB"):format(n / 1048576) end
  if n >= 1024 then return ("%.1f kB"):format(n / 1024) end
  return ("%d B"):format(n)
end

local t0 = loom.now()
local res <close> = http.get(url, { stream = true })
if not res.ok then
  io.stderr:write(("%s: %d %s\n"):format(url, res.status, res.reason))
  os.exit(1)
end
local total = tonumber(res.headers["content-length"])

local shown, step = 0, 0
local function progress(done, last)
  local now = loom.now()
  if not last and now - shown < (tty and 0.1 or 1) then return end
  shown = now
  local rate = done / math.max(now - t0, 1e-3)
  local pct = total and total > 0 and done * 100 // total or nil
  if tty then
    local bar = ""
    if pct then
      local filled = pct * 30 // 100
      bar = "[" .. ("#"):rep(filled) .. (" "):rep(30 - filled) .. "] "
        .. ("%3d%%  "):format(pct)
    end
    io.stderr:write(("\r%s%s  %s/s \27[K"):format(bar, size(done),
                                                   size(rate)))
    if last then io.stderr:write("\n") end
  elseif last or not pct or pct >= step then
    step = pct and (pct // 10 + 1) * 10 or step
    io.stderr:write(("%s%s at %s/s\n"):format(size(done),
      pct and (" (%d%%)"):format(pct) or "", size(rate)))
  end
end

local f <close> = assert(io.open(path, "wb"))
local done = 0
for chunk in res:chunks() do
  assert(f:write(chunk))
  done = done + #chunk
  progress(done)
end
progress(done, true)
print(("saved %s to %s in %.2f s"):format(size(done), path, loom.now() - t0))
