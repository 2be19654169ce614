-- echo_server.lua: a TCP echo server, one task per connection: whatever a
-- client sends comes back to it. Clients are served at once, each by its
-- own task, and a slow one never holds up the others.
--   run:  build/loom examples/echo_server.lua [port]     (Ctrl-C to stop)
--   try:  nc 127.0.0.1 7000
--   demo: build/loom examples/echo_server.lua --demo     (a server and three
--         clients in one process, then it stops by itself)
local tcp = loom.tcp

-- One connection: read what comes, write it back, until the client ends.
-- The stream is closed for us when this returns.
local function echo(stream)
  local ip, port = stream:remote_address()
  print(("client %s:%d connected"):format(ip, port))
  for line in stream:lines() do
    stream:write(line, "\n")
  end
  print(("client %s:%d left"):format(ip, port))
end

if arg[1] ~= "--demo" then
  local port = tonumber(arg[1]) or 7000
  local server = tcp.listen("127.0.0.1", port, echo)
  print(("listening on 127.0.0.1:%d"):format(server.port))
  return  -- the server keeps the program running; Ctrl-C ends it
end

-- --demo: a server on a free port, three clients talking to it at once
local server <close> = tcp.listen("127.0.0.1", 0, echo)
print(("listening on 127.0.0.1:%d"):format(server.port))

local function client(name, lines)
  local c <close> = tcp.connect("127.0.0.1", server.port)
  local replies = {}
  for _, line in ipairs(lines) do
    c:write(line, "\n")
    replies[#replies + 1] = c:read_line()
    sleep(0.05)  -- think a little: the others go on meanwhile
  end
  return name .. ": " .. table.concat(replies, " ")
end

local results = gather({
  function() return client("a", { "one", "two", "three" }) end,
  function() return client("b", { "red", "green" }) end,
  function() return client("c", { "hello" }) end,
})
for _, r in ipairs(results) do print(r) end
