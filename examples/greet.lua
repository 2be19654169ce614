-- greet.lua: the smallest loom program. Two tasks greet at once: both say
-- "Hello", both sleep one second side by side, then both say "World". The
-- run takes about 1 s, not 2, because a sleeping task lets others run.
--   run: build/loom examples/greet.lua

local function greet()
  print("Hello")
  sleep(1)  -- suspends this task only; the loop runs the other meanwhile
  print("World")
end

-- The main chunk is itself a task: it can spawn others and await them.
local first, second = spawn(greet), spawn(greet)
first:await()
second:await()
