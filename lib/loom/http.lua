-- loom.http: the HTTP client. Requests run on libcurl's multi-socket API
-- driven by the loop (bindings/http.c, "loom.http.core", which loads
-- libcurl on first use); this file gives it its shape: options, defaults,
-- sessions, redirects (followed here, with fetch's method rules and
-- sensitive headers dropped across origins), responses and errors.
local core = require "loom.http.core"
local loom = require "loom"

local perform, origin = core.perform, core.origin
local type, next, rawget, tostring = type, next, rawget, tostring
local concat, sort = table.concat, table.sort
local fmt = string.format

local M = {}

local MiB = 1024 * 1024

-- The defaults, each documented in docs/http.md with its opt-out.
local DEFAULTS = {
  connect_timeout = 10,     -- seconds, DNS and TLS included
  read_timeout = 60,        -- seconds without a byte
  timeout = 300,            -- the whole request, redirects included
  stream_timeout = false,   -- a stream's total: none
  max_redirects = 10,
  max_body = 64 * MiB,      -- bytes after decompression
  stream_max_body = false,  -- a stream's: none (memory stays bounded)
}
local USER_AGENT = "loom/" .. loom.version
local CURL_VERSION, ENCODINGS = core.version()
local SENSITIVE = { authorization = true, cookie = true,
                    ["proxy-authorization"] = true }
-- request-body headers, dropped when a redirect turns the method into GET
local BODY_HEADERS = { ["content-type"] = true, ["content-encoding"] = true,
                       ["content-language"] = true,
                       ["content-location"] = true,
                       ["content-length"] = true }
local REDIRECT = { [301] = true, [302] = true, [303] = true, [307] = true,
                   [308] = true }
local STANDARD_METHODS = { GET = true, HEAD = true, POST = true, PUT = true,
                           PATCH = true, DELETE = true, OPTIONS = true }

-- ---- errors ---------------------------------------------------------------

local THIS = debug.getinfo(1, "S").source

-- "file:line: " of the first caller outside this file, as luaL_argerror
-- would show for a C function.
local function where()
  for level = 3, 30 do
    local info = debug.getinfo(level, "Sl")
    if info == nil then break end
    if info.source ~= THIS and info.currentline > 0 then
      return info.short_src .. ":" .. info.currentline .. ": "
    end
  end
  return ""
end

local function argerr(fname, n, msg)
  error(fmt("%sbad argument #%d to '%s' (%s)", where(), n, fname, msg), 0)
end

local function opterr(fname, n, name, msg)
  argerr(fname, n, fmt("option '%s' %s", name, msg))
end

local Error = { __name = "loom.http.Error" }
Error.__index = Error

function Error.__tostring(e)
  local s = fmt("loom.http.Error: %s: %s", tostring(rawget(e, "kind")),
                tostring(rawget(e, "message")))
  local url = rawget(e, "url")
  if url then
    s = s .. fmt(" (%s %s)", tostring(rawget(e, "method") or "GET"),
                 tostring(url))
  end
  return s
end

local function new_error(kind, message, method, url, extra)
  local e = { kind = kind, message = message, method = method, url = url }
  if extra then for k, v in next, extra do e[k] = v end end
  return setmetatable(e, Error)
end

local function raise(...)
  error(new_error(...), 0)
end

-- what core returns after nil: kind, message, code, code name, timeout
local function failure(method, url, kind, message, code, curl_code, which)
  raise(kind, message, method, url,
        { code = code, curl_code = curl_code, timeout = which })
end

M.Error = Error

function M.is_error(e)
  return getmetatable(e) == Error
end

-- ---- options --------------------------------------------------------------

local TOKEN = "^[!#$%%&'*+%-.^_`|~%w]+$"

local function check_time(fname, n, name, v)
  if v == false then return false end
  if type(v) ~= "number" or v ~= v then
    opterr(fname, n, name, "must be a number of seconds or false, got "
           .. type(v))
  end
  if v <= 0 then
    opterr(fname, n, name, "must be positive (false: no limit)")
  end
  if v == math.huge then return false end
  return v
end

local function check_count(fname, n, name, v, min, allow_false)
  if allow_false and v == false then return false end
  if math.type(v) ~= "integer" and not (type(v) == "number" and v == v
     and v == math.floor(v) and v > -2^53 and v < 2^53) then
    opterr(fname, n, name, "must be an integer" ..
           (allow_false and " or false" or ""))
  end
  if v < min then opterr(fname, n, name, "must be at least " .. min) end
  return math.tointeger(v)
end

local function check_bool(fname, n, name, v)
  if type(v) ~= "boolean" then
    opterr(fname, n, name, "must be a boolean, got " .. type(v))
  end
  return v
end

local function check_str_or_false(fname, n, name, v)
  if v == false then return false end
  if type(v) ~= "string" then
    opterr(fname, n, name, "must be a string or false, got " .. type(v))
  end
  if v:find("[%z\r\n]") then
    opterr(fname, n, name, "contains CR, LF or NUL")
  end
  return v
end

local function check_version(fname, n, name, v)
  if v ~= "1.0" and v ~= "1.1" and v ~= "2" then
    opterr(fname, n, name, 'must be "1.0", "1.1" or "2"')
  end
  return v
end

local function check_fn(fname, n, name, v)
  if type(v) ~= "function" then
    opterr(fname, n, name, "must be a function, got " .. type(v))
  end
  return v
end

-- headers: name -> string, number or false (false: not sent at all).
-- Returns an ordered list of { lower, name, value }.
local function check_headers(fname, n, v, name)
  name = name or "headers"
  if type(v) ~= "table" then
    opterr(fname, n, name, "must be a table, got " .. type(v))
  end
  local list = {}
  for k, val in next, v do
    if type(k) ~= "string" or not k:find(TOKEN) then
      opterr(fname, n, name, fmt("has a bad header name (%s)",
             type(k) == "string" and fmt("%q", k) or "a " .. type(k)))
    end
    if type(val) == "number" then
      val = tostring(val)
    elseif val ~= false and type(val) ~= "string" then
      opterr(fname, n, name, fmt("has a %s value for '%s' (string, number "
             .. "or false expected)", type(val), k))
    end
    if val and val:find("[%z\r\n]") then
      opterr(fname, n, name, fmt("value of '%s' contains CR, LF or NUL", k))
    end
    list[#list + 1] = { k:lower(), k, val }
  end
  sort(list, function(a, b) return a[1] < b[1] end)
  return list
end

local function check_names(fname, n, name, v)
  if type(v) ~= "table" then
    opterr(fname, n, name, "must be a table of header names")
  end
  local set = {}
  for i = 1, #v do
    local h = rawget(v, i)
    if type(h) ~= "string" or not h:find(TOKEN) then
      opterr(fname, n, name, "must hold header names")
    end
    set[h:lower()] = true
  end
  return set
end

local function encode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c)
    return fmt("%%%02X", c:byte())
  end))
end

local function scalar(fname, n, name, v)
  local t = type(v)
  if t == "string" or t == "number" or t == "boolean" then
    return tostring(v)
  end
  opterr(fname, n, name, "values must be strings, numbers or booleans, got "
         .. t)
end

-- query / form: a table (keys in sorted order; an array value repeats the
-- key) or an array of { key, value } pairs. -> "k=v&k2=v2"
local function urlencode(fname, n, name, v)
  if type(v) ~= "table" then
    opterr(fname, n, name, "must be a table, got " .. type(v))
  end
  local out = {}
  if rawget(v, 1) ~= nil then
    for i = 1, #v do
      local pair = rawget(v, i)
      if type(pair) ~= "table" then
        opterr(fname, n, name, "must be an array of { key, value } pairs")
      end
      out[#out + 1] = encode(scalar(fname, n, name, rawget(pair, 1))) .. "="
        .. encode(scalar(fname, n, name, rawget(pair, 2)))
    end
    return concat(out, "&")
  end
  local keys = {}
  for k in next, v do
    if type(k) ~= "string" and type(k) ~= "number" then
      opterr(fname, n, name, "keys must be strings")
    end
    keys[#keys + 1] = tostring(k)
  end
  sort(keys)
  for _, k in ipairs(keys) do
    local val = rawget(v, k)
    if val == nil then val = rawget(v, tonumber(k)) end
    if type(val) == "table" then
      for i = 1, #val do
        out[#out + 1] = encode(k) .. "="
          .. encode(scalar(fname, n, name, rawget(val, i)))
      end
    else
      out[#out + 1] = encode(k) .. "=" .. encode(scalar(fname, n, name, val))
    end
  end
  return concat(out, "&")
end

-- multipart: a table of name -> string or { file=, data=, filename=,
-- type= } (sorted by name), or an array of such tables with name=.
local function multipart(fname, n, v)
  if type(v) ~= "table" then
    opterr(fname, n, "multipart", "must be a table, got " .. type(v))
  end
  local parts = {}
  local function part(name, p)
    if type(name) ~= "string" then
      opterr(fname, n, "multipart", "field names must be strings")
    end
    if type(p) == "string" or type(p) == "number" then
      parts[#parts + 1] = { name = name, data = tostring(p) }
      return
    end
    if type(p) ~= "table" then
      opterr(fname, n, "multipart", fmt("field '%s' must be a string or a "
             .. "table", name))
    end
    local data, file = rawget(p, "data"), rawget(p, "file")
    if (data == nil) == (file == nil) or (data ~= nil and
       type(data) ~= "string") or (file ~= nil and type(file) ~= "string") then
      opterr(fname, n, "multipart", fmt("field '%s' needs data or file (a "
             .. "string)", name))
    end
    local filename, ctype = rawget(p, "filename"), rawget(p, "type")
    for _, s in ipairs{ name, filename or "", ctype or "" } do
      if type(s) ~= "string" or s:find("[%z\r\n]") then
        opterr(fname, n, "multipart", fmt("field '%s' has a bad name, "
               .. "filename or type", name))
      end
    end
    parts[#parts + 1] = { name = name, data = data, file = file,
                          filename = filename, type = ctype }
  end
  if rawget(v, 1) ~= nil then
    for i = 1, #v do
      local p = rawget(v, i)
      if type(p) ~= "table" then
        opterr(fname, n, "multipart", "array items must be tables")
      end
      part(rawget(p, "name"), p)
    end
  else
    local names = {}
    for k in next, v do
      if type(k) ~= "string" then
        opterr(fname, n, "multipart", "field names must be strings")
      end
      names[#names + 1] = k
    end
    sort(names)
    for _, k in ipairs(names) do part(k, rawget(v, k)) end
  end
  return parts
end

local function check_body(fname, n, v)
  local t = type(v)
  if t == "string" or t == "function" then return v end
  if t == "table" and type(rawget(v, "file")) == "string" and
     next(v, next(v)) == nil then
    return v
  end
  opterr(fname, n, "body", "must be a string, a function or { file = path "
         .. "}, got " .. t)
end

-- name -> checker(fname, n, name, v); where = "request", "session" or both
local OPTIONS = {
  headers = { function(f, n, _, v) return check_headers(f, n, v) end, "both" },
  query = { urlencode, "request" },
  body = { function(f, n, _, v) return check_body(f, n, v) end, "request" },
  json = { function(_, _, _, v) return v end, "request" },
  form = { urlencode, "request" },
  multipart = { function(f, n, _, v) return multipart(f, n, v) end,
                "request" },
  timeout = { check_time, "both" },
  connect_timeout = { check_time, "both" },
  read_timeout = { check_time, "both" },
  follow_redirects = { check_bool, "both" },
  max_redirects = { function(f, n, k, v) return check_count(f, n, k, v, 0)
                    end, "both" },
  verify = { check_bool, "both" },
  cafile = { check_str_or_false, "both" },
  proxy = { check_str_or_false, "both" },
  http_version = { check_version, "both" },
  decompress = { check_bool, "both" },
  max_body = { function(f, n, k, v) return check_count(f, n, k, v, 0, true)
               end, "both" },
  on_progress = { check_fn, "request" },
  stream = { check_bool, "request" },
  sensitive_headers = { check_names, "both" },
  base_url = { check_str_or_false, "session" },
  max_connections = { function(f, n, k, v)
                      return check_count(f, n, k, v, 1) end, "session" },
  max_per_host = { function(f, n, k, v) return check_count(f, n, k, v, 1)
                   end, "session" },
  cookies = { check_bool, "session" },
  -- request{}'s own
  method = { function(f, n, _, v)
             if type(v) ~= "string" or not v:find(TOKEN) then
               opterr(f, n, "method", "must be an HTTP method token")
             end
             local up = v:upper()
             return STANDARD_METHODS[up] and up or v
           end, "method" },
  url = { function(_, _, _, v) return v end, "method" },
}

-- Checks the options table at argument n (read raw: metatables are not
-- consulted) and returns them checked, in a new plain table.
local function parse(fname, n, opts, where_ok)
  if type(opts) ~= "table" then
    argerr(fname, n, "table expected, got " .. type(opts))
  end
  local o = {}
  for k, v in next, opts do
    local spec = type(k) == "string" and OPTIONS[k]
    if not spec or (spec[2] ~= "both" and spec[2] ~= where_ok and
                    not (where_ok == "method" and spec[2] == "request")) then
      if type(k) == "string" then
        argerr(fname, n, fmt("unknown option '%s'", k))
      end
      argerr(fname, n, "option names must be strings, got a " .. type(k))
    end
    o[k] = spec[1](fname, n, k, v)
  end
  local bodies = (o.body ~= nil and 1 or 0) + (o.json ~= nil and 1 or 0)
    + (o.form ~= nil and 1 or 0) + (o.multipart ~= nil and 1 or 0)
  if bodies > 1 then
    argerr(fname, n, "give only one of body, json, form and multipart")
  end
  return o
end

-- ---- URLs -----------------------------------------------------------------

local function add_query(url, q)
  if q == "" then return url end
  local base, frag = url:match("^([^#]*)(.*)$")
  local sep = "?"
  if base:find("?", 1, true) then
    sep = base:find("[?&]$") and "" or "&"
  end
  return base .. sep .. q .. frag
end

-- url as given, or joined to the session's base_url; raises a bad
-- argument for what is no URL at all, a kind "url" error for a scheme
-- other than http and https.
local byte = string.byte

-- Whether s starts with http:// or https:// (any case): bytes, as this
-- runs for every request.
local function is_http(s)
  local h, t1, t2, p, c, x, y, z = byte(s, 1, 8)
  if (h ~= 104 and h ~= 72) or (t1 ~= 116 and t1 ~= 84) or
     (t2 ~= 116 and t2 ~= 84) or (p ~= 112 and p ~= 80) then
    return false
  end
  if c == 115 or c == 83 then c, x, y = x, y, z end
  return c == 58 and x == 47 and y == 47
end

local function check_url(sess, fname, n, url, method)
  if type(url) ~= "string" then
    argerr(fname, n, "string expected, got " .. type(url))
  end
  if is_http(url) then return url end  -- CR, LF, NUL: core refuses them
  local scheme = url:match("^(%a[%w+.-]*)://")
  if scheme then
    raise("url", fmt("unsupported scheme '%s' (only http and https)",
          scheme:lower()), method, url)
  end
  local base = sess._base
  if base then
    if url:find("[%z\r\n]") then
      raise("url", "the URL contains CR, LF or NUL", method, url)
    end
    local joined, why = core.join(base, url)
    if not joined then raise("url", why, method, url) end
    return joined
  end
  argerr(fname, n, fmt("absolute http:// or https:// URL expected, got %s",
         #url <= 60 and fmt("%q", url) or "a string"))
end

-- ---- responses ------------------------------------------------------------

local Response = { __name = "loom.http.Response" }
local methods = {}
-- header blocks not parsed yet, by response (core fills it)
local heads = setmetatable({}, { __mode = "k" })
local parse_head = core.parse_head

-- headers, header_list and reason are parsed on first use
function Response.__index(res, k)
  local m = methods[k]
  if m ~= nil then return m end
  if k == "headers" or k == "header_list" or k == "reason" then
    local raw = heads[res]
    if raw ~= nil then
      heads[res] = nil
      local h, list, reason = parse_head(raw, rawget(res, "status"))
      rawset(res, "headers", h)
      rawset(res, "header_list", list)
      rawset(res, "reason", reason)
      return rawget(res, k)
    end
  end
  return nil
end

core.set_response_mt(Response, heads)

-- a stream's handle and what its errors name, by response
local streams = setmetatable({}, { __mode = "k" })

local function checkres(self, fname)
  if getmetatable(self) ~= Response then
    argerr(fname, 1, "loom.http.Response expected, got " .. type(self))
  end
  return self
end

function methods:json()
  checkres(self, "json")
  local json = require "loom.json"
  local body = self.body
  if type(body) ~= "string" then
    local ok, text = pcall(methods.read, self)
    if not ok then error(text, 0) end
    body = text
  end
  local ok, v = pcall(json.decode, body)
  if not ok then
    error(fmt("%sjson: the body is not JSON (%s)", where(), tostring(v)), 0)
  end
  return v
end

function methods:raise_for_status()
  checkres(self, "raise_for_status")
  local status = self.status
  if type(status) == "number" and status >= 400 then
    raise("status", fmt("%d %s", status, tostring(self.reason)),
          self.method, self.url, { status = status, response = self })
  end
  return self
end

local function read_chunk(s)
  local chunk, kind, msg, code, name, which = core.read(s.h)
  if chunk then
    if s.progress then s.progress(core.received(s.h)) end
    return chunk
  end
  if kind then failure(s.method, s.url, kind, msg, code, name, which) end
  if s.progress and not s.ended then
    s.ended = true
    local got = core.received(s.h)
    if got then s.progress(got, got) end
  end
  return nil
end

-- for chunk in res:chunks() do ... end: a stream's body as it comes (the
-- transfer pauses while the loop body runs long); a whole body once.
function methods:chunks()
  checkres(self, "chunks")
  local s = streams[self]
  if s == nil then
    local done = false
    return function()
      if done then return nil end
      done = true
      local b = self.body
      if b ~= nil and b ~= "" then return b end
    end
  end
  return function() return read_chunk(s) end
end

-- The rest of the body as one string.
function methods:read()
  checkres(self, "read")
  local s = streams[self]
  if s == nil then return self.body or "" end
  local parts = {}
  for chunk in function() return read_chunk(s) end do
    parts[#parts + 1] = chunk
  end
  return concat(parts)
end

-- Writes the (rest of the) body to the file at path; returns its size.
function methods:save(path)
  checkres(self, "save")
  if type(path) ~= "string" then
    argerr("save", 1, "string expected, got " .. type(path))
  end
  local f, why = io.open(path, "wb")
  if not f then error(fmt("%ssave: %s", where(), why), 0) end
  local _ <close> = f
  local n = 0
  for chunk in self:chunks() do
    local ok, werr = f:write(chunk)
    if not ok then error(fmt("%ssave: %s", where(), werr), 0) end
    n = n + #chunk
  end
  return n
end

-- Lets go of a stream's transfer now (also on <close> and when
-- collected); nothing for a whole response.
function methods:close()
  checkres(self, "close")
  local s = streams[self]
  if s then core.close(s.h) end  -- reading on raises "closed"
end

Response.__close = methods.close

function Response.__tostring(self)
  return fmt("loom.http.Response: %s %s", tostring(rawget(self, "status")),
             tostring(rawget(self, "url")))
end

-- ---- sessions -------------------------------------------------------------

local Session = { __name = "loom.http.Session" }
Session.__index = Session

local function ms(v)
  if v == nil then return nil end
  return v and v * 1000 or false
end

-- The header lines of a request: the session's and the request's merged
-- (the request's win), minus dropped, with loom's own.
local function header_lines(sess, req_headers, dropped, kind, decompress)
  local merged, order = {}, {}
  local function put(list)
    for _, h in ipairs(list) do
      if not merged[h[1]] then order[#order + 1] = h[1] end
      merged[h[1]] = h
    end
  end
  put(sess._headers)
  if req_headers then put(req_headers) end
  local lines = {}
  for _, lower in ipairs(order) do
    local h = merged[lower]
    if not (dropped and dropped[lower]) then
      lines[#lines + 1] = h[3] and h[2] .. ": " .. h[3] or h[2] .. ":"
    end
  end
  if not merged["user-agent"] then lines[#lines + 1] = "User-Agent: " ..
    USER_AGENT end
  if decompress and ENCODINGS ~= "" and not merged["accept-encoding"] then
    lines[#lines + 1] = "Accept-Encoding: " .. ENCODINGS
  end
  if kind and not merged.expect then
    lines[#lines + 1] = "Expect:"  -- no 1 s wait for a 100 before the body
  end
  if not merged["content-type"] then
    if kind == "json" then
      lines[#lines + 1] = "Content-Type: application/json"
    elseif kind == "form" then
      lines[#lines + 1] = "Content-Type: application/x-www-form-urlencoded"
    elseif kind == "raw" then
      lines[#lines + 1] = "Content-Type:"  -- not curl's form default
    end
  end
  return lines
end

local function new_session(fname, opts)
  local o = opts ~= nil and parse(fname, 1, opts, "session") or {}
  local function pick(k, default)
    local v = o[k]
    if v == nil then return default end
    return v
  end
  local self = setmetatable({}, Session)
  self._base = o.base_url or nil
  if self._base and not is_http(self._base) then
    opterr(fname, 1, "base_url", "must be an http:// or https:// URL")
  end
  self._headers = o.headers or {}
  self._timeout = pick("timeout", DEFAULTS.timeout)
  self._connect = pick("connect_timeout", DEFAULTS.connect_timeout)
  self._read = pick("read_timeout", DEFAULTS.read_timeout)
  self._follow = pick("follow_redirects", true)
  self._max_redirects = pick("max_redirects", DEFAULTS.max_redirects)
  self._max_body = pick("max_body", DEFAULTS.max_body)
  self._decompress = pick("decompress", true)
  self._sensitive = {}
  for k in next, SENSITIVE do self._sensitive[k] = true end
  for k in next, o.sensitive_headers or {} do self._sensitive[k] = true end
  self._c = core.session{
    headers = header_lines(self, nil, nil, nil, o.decompress ~= false),
    timeout = ms(self._timeout),
    connect_timeout = ms(self._connect),
    read_timeout = ms(self._read),
    max_body = self._max_body,
    follow = self._follow,
    verify = o.verify,
    cafile = o.cafile,
    proxy = o.proxy,
    http_version = o.http_version,
    decompress = o.decompress,
    max_connections = o.max_connections,
    max_per_host = o.max_per_host,
    cookies = o.cookies,
  }
  return self
end

local function checksession(self, fname)
  if getmetatable(self) ~= Session or type(rawget(self, "_c")) ~= "userdata"
  then
    argerr(fname, 1, "loom.http.Session expected, got " .. type(self))
  end
  return self
end

-- One request, with its redirects (what changes from hop to hop: the
-- method, the body, the headers dropped).
local function run(sess, fname, method, url, o)
  url = check_url(sess, fname, 1, url, method)
  local c = sess._c
  local first  -- the fast path's response, when it is a redirect to follow
  if o == nil then  -- the fast path: everything is the session's
    local res, h, msg, code, name, which = perform(c, method, url, nil, fname)
    if res == nil then failure(method, url, h, msg, code, name, which) end
    if res.redirect_url == nil or not sess._follow or
       not REDIRECT[res.status] then
      return res
    end
    o, first = {}, res
  end
  if o.query then url = add_query(url, o.query) end
  local follow = o.follow_redirects
  if follow == nil then follow = sess._follow end
  local max_redirects = o.max_redirects or sess._max_redirects
  local stream = o.stream or false
  local total, max_body = o.timeout, o.max_body
  if total == nil then
    if stream then total = DEFAULTS.stream_timeout
    else total = sess._timeout end
  end
  if max_body == nil then
    if stream then max_body = DEFAULTS.stream_max_body
    else max_body = sess._max_body end
  end
  local sensitive = sess._sensitive
  if o.sensitive_headers then
    sensitive = {}
    for k in next, sess._sensitive do sensitive[k] = true end
    for k in next, o.sensitive_headers do sensitive[k] = true end
  end
  -- the body, as core takes it
  local kind, body, body_fn, body_file, parts
  if o.json ~= nil then
    local ok, text = pcall(require("loom.json").encode, o.json)
    if not ok then opterr(fname, 2, "json", "cannot be encoded: " .. text) end
    kind, body = "json", text
  elseif o.form then
    kind, body = "form", o.form
  elseif o.multipart then
    kind, parts = "multipart", o.multipart
  elseif type(o.body) == "string" then
    kind, body = "raw", o.body
  elseif type(o.body) == "function" then
    kind, body_fn = "raw", o.body
  elseif o.body then
    kind, body_file = "raw", o.body.file
  end
  local dropped = nil  -- header names left out from here on
  local decompress = o.decompress
  if decompress == nil then decompress = sess._decompress end
  local hops, elapsed = 0, 0
  local req = {
    timeout = false, connect_timeout = ms(o.connect_timeout),
    read_timeout = ms(o.read_timeout), max_body = max_body, follow = follow,
    verify = o.verify, cafile = o.cafile, proxy = o.proxy,
    http_version = o.http_version, decompress = o.decompress,
    stream = stream, progress = o.on_progress,
  }
  while true do
    local res, h
    if first then
      res, first = first, nil
    else
      req.headers = header_lines(sess, o.headers, dropped, kind, decompress)
      req.body, req.body_fn, req.body_file, req.multipart =
        body, body_fn, body_file, parts
      if total then
        local left = total - elapsed
        if left <= 0 then
          raise("timeout", "the request took longer than its timeout",
                method, url, { timeout = "total" })
        end
        req.timeout = left * 1000
      end
      local msg, code, name, which
      res, h, msg, code, name, which = perform(c, method, url, req, fname)
      if res == nil then failure(method, url, h, msg, code, name, which) end
    end
    elapsed = elapsed + res.elapsed
    local to = res.redirect_url
    if to == nil or not follow or not REDIRECT[res.status] then
      res.elapsed = elapsed
      if h then
        streams[res] = { h = h, method = method, url = res.url,
                         progress = o.on_progress }
      end
      return res
    end
    hops = hops + 1
    if hops > max_redirects then
      raise("redirects", fmt("more than %d redirects", max_redirects),
            method, url, { status = res.status, location = to })
    end
    if not is_http(to) then
      raise("redirects", fmt("refused a redirect to %s: only http and "
            .. "https are followed", to), method, url,
            { status = res.status, location = to })
    end
    local status = res.status
    if (status == 303 and method ~= "HEAD") or
       ((status == 301 or status == 302) and method == "POST") then
      method = "GET"
      body, body_fn, body_file, parts, kind = nil, nil, nil, nil, nil
      dropped = dropped or {}
      for k in next, BODY_HEADERS do dropped[k] = true end
    elseif body_fn then
      raise("redirects", fmt("cannot resend a body function after a %d "
            .. "redirect", status), method, url,
            { status = status, location = to })
    end
    if origin(to) ~= origin(url) then
      -- another host, port or scheme: the credentials stay behind, for
      -- the rest of the chain
      dropped = dropped or {}
      for k in next, sensitive do dropped[k] = true end
    end
    url = to
  end
end

local function method_fn(method, fname)
  return function(self, url, opts)
    checksession(self, fname)
    if opts ~= nil then opts = parse(fname, 2, opts, "request") end
    return run(self, fname, method, url, opts)
  end
end

Session.get = method_fn("GET", "get")
Session.post = method_fn("POST", "post")
Session.put = method_fn("PUT", "put")
Session.patch = method_fn("PATCH", "patch")
Session.delete = method_fn("DELETE", "delete")
Session.head = method_fn("HEAD", "head")

local function request_fn(self, spec)
  local o = parse("request", 1, spec, "method")
  if o.url == nil then
    argerr("request", 1, "field 'url' expected")
  end
  local method = o.method or "GET"
  local url = o.url
  o.method, o.url = nil, nil
  return run(self, "request", method, url, o)
end

function Session:request(spec)
  checksession(self, "request")
  return request_fn(self, spec)
end

-- Closes the session: its requests fail, its connections close.
function Session:close()
  checksession(self, "close")
  core.close_session(self._c)
end

Session.__close = Session.close

function Session.__tostring(self)
  return fmt("loom.http.Session: %s", tostring(rawget(self, "_base") or
             "no base_url"))
end

-- ---- the module's functions: the default session -------------------------

local default

local function default_session()
  if default == nil then default = new_session("session", nil) end
  return default
end

local function module_fn(method, fname)
  return function(url, opts)
    local s = default or default_session()
    if opts ~= nil then opts = parse(fname, 2, opts, "request") end
    return run(s, fname, method, url, opts)
  end
end

M.get = module_fn("GET", "get")
M.post = module_fn("POST", "post")
M.put = module_fn("PUT", "put")
M.patch = module_fn("PATCH", "patch")
M.delete = module_fn("DELETE", "delete")
M.head = module_fn("HEAD", "head")

function M.request(spec)
  return request_fn(default or default_session(), spec)
end

function M.session(opts)
  return new_session("session", opts)
end

M.Response = Response
M.Session = Session
M.curl_version = CURL_VERSION
M.defaults = setmetatable({}, {
  __index = DEFAULTS,
  __newindex = function() error("loom.http.defaults is read-only", 2) end,
})

return M
