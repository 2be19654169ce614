-- startup: start the loop, sleep 0, exit. Timed from outside (hyperfine).
local loom = loom or require "loom"
loom.run(function() loom.sleep(0) end)
