-- loom.tcp: TCP clients and servers on loom's streams.
--
--   local stream = loom.tcp.connect("example.com", 80, { timeout = 5 })
--   local server = loom.tcp.listen("127.0.0.1", 0, function(stream) ... end)
--   print(server.port); ...; server:close()
--   loom.tcp.serve("127.0.0.1", 8000, handler)   -- listen, wait until closed
--
-- connect and the server's accept are C (bindings/tcp.c); here is the task
-- that accepts connections and runs the handler as a task per connection
-- (a libuv callback may not spawn one), the stream closed once it returns.
local core = require "loom.tcp.core"
local loom = require "loom"

local spawn, sleep, is_cancelled = loom.spawn, loom.sleep, loom.is_cancelled

local tcp = { connect = core.connect }

-- core.listen under the name serve, so that its bad argument errors, which
-- Lua names after the call site, say 'serve' when serve calls it
core.serve = core.listen

-- One connection: the handler's task. The stream is closed when the
-- handler returns or fails (its failure is reported like any task's).
local function serve_connection(handler, stream)
  local s <close> = stream
  return handler(s)
end

-- The acceptor: runs until the server is closed. An accept that fails (out
-- of descriptors: EMFILE) is tried again a moment later, as the peer may
-- only have to wait for a connection to end.
local function accept_loop(server, handler)
  while true do
    local ok, stream = pcall(server.accept, server)
    if ok then
      if stream == nil then return end
      spawn(serve_connection, handler, stream)
    elseif is_cancelled(stream) then
      server:close()
      error(stream, 0)
    else
      sleep(0.05)
    end
  end
end

--- listen(host, port [, handler [, opts]]) -> Server. With a handler, each
--- connection runs handler(stream) as its own task; without one, call
--- server:accept(). opts: backlog, family, timeout (for the lookup).
function tcp.listen(host, port, handler, opts)
  local server = core.listen(host, port, handler, opts)
  if handler ~= nil then spawn(accept_loop, server, handler) end
  return server
end

--- serve(host, port, handler [, opts]): listen, then wait until the server
--- is closed (server:close() from a handler, or this task cancelled).
function tcp.serve(host, port, handler, opts)
  if handler == nil then
    error("bad argument #3 to 'serve' (function expected, got nil)", 2)
  end
  local server <close> = core.serve(host, port, handler, opts)
  spawn(accept_loop, server, handler)
  server:wait()
end

return tcp
