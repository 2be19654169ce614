-- fs_read: reads N small files at once (a task each, loom.fs.read_file on
-- the thread pool) and checks their total size. The files (SIZE bytes
-- each) are made first in DIR (or a fresh temporary folder, removed after),
-- outside the timed part.
--   usage: loom bench/fs_read.lua [N=10000] [SIZE=1024] [DIR]
local loom = loom or require "loom"
local N = tonumber(arg[1]) or 10000
local SIZE = tonumber(arg[2]) or 1024
local fs = loom.fs

local function main()
  local dir, made = arg[3], false
  if dir == nil then
    dir, made = fs.tmpdir("fs-read-"), true
  end
  local data = ("r"):rep(SIZE)
  local names = {}
  for i = 1, N do
    names[i] = ("%s/f%05d"):format(dir, i)
    if made then fs.write_file(names[i], data) end
  end
  local tasks = {}
  local t0 = loom.now()
  for i = 1, N do tasks[i] = loom.spawn(fs.read_file, names[i]) end
  local got = loom.gather(tasks)
  local wall = loom.now() - t0
  local total = 0
  for i = 1, N do total = total + #got[i] end
  assert(total == N * SIZE, "wrong total size")
  if made then fs.remove(dir, { recursive = true }) end
  print(("RESULT workload=fs_read peer=loom n=%d wall_s=%.4f size=%d "
    .. "files_per_s=%.0f"):format(N, wall, SIZE, N / wall))
end

loom.run(main)
