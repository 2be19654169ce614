-- spec/support/http.lua: local servers for the HTTP specs, on 127.0.0.1
-- only, started and stopped by the specs (each also stops by itself when
-- the spec process goes away, see http_server.py).
--
--   local server = require "spec.support.http"
--   local srv = server.start()           -- Python: srv.base, srv:url(p),
--                                        -- srv.silent_port (never answers)
--   local tls = server.nginx(srv)        -- HTTPS + HTTP/2 in front of srv:
--                                        -- tls.base, tls.cafile
--   srv:stop(); tls:stop()
--   server.resolver()                    -- path of an LD_PRELOAD fake
--                                        -- resolver (see fake_resolver.c)
--
-- libcurl honours http_proxy, https_proxy, all_proxy and no_proxy: a
-- proxy variable would reroute 127.0.0.1 traffic, so the HTTP specs
-- refuse to run with one set (ctest runs them with all unset, and the
-- subprocesses they start get them unset: M.NO_PROXY_ENV).
local cli = require "spec.support.cli"

local M = {}

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or
  "spec/support"
M.DIR = here

M.PROXY_VARS = { "http_proxy", "https_proxy", "all_proxy", "no_proxy",
                 "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY" }
M.NO_PROXY_ENV = {}
for _, k in ipairs(M.PROXY_VARS) do M.NO_PROXY_ENV[k] = false end

-- Raises if a proxy variable is set (the specs must not go elsewhere).
function M.check_env()
  for _, k in ipairs(M.PROXY_VARS) do
    if os.getenv(k) then
      error(("%s is set: unset the proxy variables to run the HTTP specs "
        .. "(ctest does; libcurl would send 127.0.0.1 traffic through it)")
        :format(k), 2)
    end
  end
end

local function python()
  local f = io.open("/usr/bin/python3", "r")
  if f then f:close() return "/usr/bin/python3" end
  return "python3"
end

local Server = {}
Server.__index = Server

function Server:url(path)
  return self.base .. (path or "/")
end

function Server:stop()
  if self.pid then
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    self.pid = nil
  end
  if self.pipe then
    self.pipe:close()  -- waits for it to go
    self.pipe = nil
  end
end

-- Starts the Python test server; returns it once it listens.
function M.start()
  M.check_env()
  local cmd = ("exec %s %s --lifetime 600"):format(python(),
    cli.quote(here .. "/http_server.py"))
  local pipe = assert(io.popen(cmd, "r"))
  local line = pipe:read("l")
  local port, pid, quiet = (line or ""):match(
    "^PORT (%d+) PID (%d+) SILENT (%d+)")
  if not port then
    pipe:close()
    error("the test server did not start: " .. tostring(line), 2)
  end
  return setmetatable({ port = tonumber(port), pid = pid, pipe = pipe,
    base = "http://127.0.0.1:" .. port, silent_port = tonumber(quiet) },
    Server)
end

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local function free_port()
  local p = assert(io.popen(python() .. " -c 'import socket; s = "
    .. "socket.socket(); s.bind((\"127.0.0.1\", 0)); "
    .. "print(s.getsockname()[1])'"))
  local port = tonumber(p:read("l"))
  p:close()
  return assert(port, "no free port")
end

local function tmpdir()
  local name = os.tmpname()
  os.remove(name)
  assert(sh("mkdir -p " .. cli.quote(name .. "/tmp")))
  return name
end

local Nginx = {}
Nginx.__index = Nginx
Nginx.url = Server.url

function Nginx:stop()
  if self.pid then
    sh("kill " .. self.pid .. " 2>/dev/null")
    for _ = 1, 50 do  -- 5 s at most
      if not sh("kill -0 " .. self.pid .. " 2>/dev/null") then break end
      sh("sleep 0.1")
    end
    self.pid = nil
  end
  if self.dir then
    sh("rm -rf " .. cli.quote(self.dir))
    self.dir = nil
  end
end

-- nginx from Debian on 127.0.0.1 with HTTPS and HTTP/2, a certificate
-- made now (SANs IP:127.0.0.1 and DNS:localhost) and proxying to the
-- Python server srv; /connection answers nginx's connection number.
-- Returns nil and why if nginx or openssl is missing.
function M.nginx(srv)
  M.check_env()
  if not sh("command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx")
     or not sh("command -v openssl >/dev/null 2>&1") then
    return nil, "nginx or openssl is not installed (scripts/setup)"
  end
  local dir = tmpdir()
  local q = cli.quote
  assert(sh(("openssl req -x509 -newkey ec -pkeyopt "
    .. "ec_paramgen_curve:prime256v1 -nodes -keyout %s -out %s -days 2 "
    .. "-subj /CN=localhost -addext "
    .. "'subjectAltName=IP:127.0.0.1,DNS:localhost' >/dev/null 2>&1")
    :format(q(dir .. "/key.pem"), q(dir .. "/cert.pem"))),
    "openssl could not make a certificate")
  local port = free_port()
  local root = sh("test \"$(id -u)\" = 0")
  local conf = ([[
daemon on;
worker_processes 1;
%s
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 512; }
http {
  access_log off;
  keepalive_requests 100000;
  client_body_temp_path %s/tmp/body;
  proxy_temp_path %s/tmp/proxy;
  fastcgi_temp_path %s/tmp/fastcgi;
  uwsgi_temp_path %s/tmp/uwsgi;
  scgi_temp_path %s/tmp/scgi;
  server {
    listen 127.0.0.1:%d ssl http2;
    ssl_certificate %s/cert.pem;
    ssl_certificate_key %s/key.pem;
    location = /hello { return 200 "hello over tls"; }
    location = /connection { return 200 "$connection"; }
    location / {
      proxy_pass %s;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_redirect off;
    }
  }
}
]]):format(root and "user root;" or "", dir, dir, dir, dir, dir, dir, dir,
           port, dir, dir, srv and srv.base or "http://127.0.0.1:9")
  local f = assert(io.open(dir .. "/nginx.conf", "w"))
  f:write(conf)
  f:close()
  local nginx = sh("command -v nginx >/dev/null 2>&1") and "nginx"
    or "/usr/sbin/nginx"
  if not sh(("%s -p %s -c %s -e %s 2>%s"):format(nginx, q(dir),
       q(dir .. "/nginx.conf"), q(dir .. "/error.log"),
       q(dir .. "/start.log"))) then
    local log = io.open(dir .. "/start.log"):read("a")
    sh("rm -rf " .. q(dir))
    error("nginx did not start: " .. log, 2)
  end
  local pid
  for _ = 1, 50 do
    local pf = io.open(dir .. "/nginx.pid")
    if pf then
      pid = pf:read("n")
      pf:close()
      if pid then break end
    end
    sh("sleep 0.1")
  end
  local self = setmetatable({ port = port, pid = pid, dir = dir,
    cafile = dir .. "/cert.pem",
    base = "https://127.0.0.1:" .. port }, Nginx)
  if not pid then
    self:stop()
    error("nginx wrote no pid file", 2)
  end
  return self
end

-- Compiles fake_resolver.c (once) into an LD_PRELOAD library and returns
-- its path, or nil and why without a C compiler.
local resolver
function M.resolver()
  if resolver then return resolver end
  local out = os.tmpname()
  os.remove(out)
  out = out .. ".so"
  if not sh(("cc -shared -fPIC -O1 -o %s %s -ldl 2>/dev/null"):format(
      cli.quote(out), cli.quote(here .. "/fake_resolver.c"))) then
    return nil, "no C compiler (cc)"
  end
  resolver = out
  return out
end

-- Environment for a subprocess using the fake resolver (LD_PRELOAD; the
-- sanitizer build must not insist on being first).
function M.resolver_env(lib)
  local env = {}
  for k, v in pairs(M.NO_PROXY_ENV) do env[k] = v end
  env.LD_PRELOAD = lib
  env.ASAN_OPTIONS = "verify_asan_link_order=0:detect_leaks=0"
  return env
end

-- The peak RSS of this process, in kB.
function M.peak_rss_kb()
  for l in io.lines("/proc/self/status") do
    local v = l:match("^VmHWM:%s+(%d+)")
    if v then return tonumber(v) end
  end
end

return M
