-- loom.to_thread(fn, ...): runs fn(...) in a worker thread with a Lua state
-- of its own and returns its results (loom.worker.to_thread, in
-- bindings/worker.c).
-- Served as loom.to_thread by the loom table's lazy loading.
return require("loom.worker").to_thread
