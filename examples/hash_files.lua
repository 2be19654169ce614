-- hash_files.lua: hashes every file under a folder on worker threads (so
-- the loop stays free) while a progress line updates, then prints each
-- file's hash. The hashing is plain Lua, CPU-bound: each file is one
-- loom.to_thread job, and the pool runs as many at once as there are cores.
--   run: build/loom examples/hash_files.lua [folder]
local fs = loom.fs

local root = arg[1] or "."

-- Every file under dir (recursively), found with fs.list_dir on the loop.
local function walk(dir, out)
  for name, kind in fs.list_dir(dir) do
    local path = dir .. "/" .. name
    if kind == "directory" then
      walk(path, out)
    elseif kind == "file" then
      out[#out + 1] = path
    end
  end
  return out
end

-- Runs in a worker: its own Lua state, so no upvalues; it gets the path
-- and reads and hashes the file there (64-bit FNV-1a).
local function hash_file(path)
  local f = assert(io.open(path, "rb"))
  local h = 0xcbf29ce484222325
  while true do
    local chunk = f:read(65536)
    if not chunk then break end
    for i = 1, #chunk do
      h = (h ~ chunk:byte(i)) * 0x100000001b3
    end
  end
  f:close()
  return ("%016x"):format(h)
end

local files = walk(root, {})
table.sort(files)
local done = 0

-- the progress line, redrawn while the workers hash
local progress = spawn(function()
  while true do
    io.stderr:write(("\rhashing: %d/%d files"):format(done, #files))
    sleep(0.1)
  end
end)

local jobs = {}
for i, path in ipairs(files) do
  jobs[i] = function()
    local h = loom.to_thread(hash_file, path)
    done = done + 1
    return h
  end
end
local start = loom.now()
local hashes = gather(jobs)
progress:cancel()
io.stderr:write(("\rhashed %d files in %.2fs on %d workers\n"):format(#files,
  loom.now() - start, loom.worker.size()))

for i, path in ipairs(files) do print(hashes[i], path) end
