---@meta loom.http
-- types/loom_http.lua: lua-language-server annotations for loom.http
-- (docs/http.md), so editors complete and type-check requests. Point
-- LuaLS at this directory, as for types/loom.lua.

---@class loom
---@field http loom.http HTTP client on libcurl, loaded on first use.
loom = {}

---@alias loom.http.Kind "connect"|"dns"|"tls"|"timeout"|"protocol"|"redirects"|"url"|"too_large"|"status"
---@alias loom.http.Version "1.0"|"1.1"|"2"

---Options of a request (and, but for the body ones, defaults of a
---session). Times are seconds; `false` means no limit.
---@class loom.http.Options
---@field headers? table<string, string|number|false> `false` leaves a header out
---@field query? table encoded in key order, or an array of `{ key, value }`
---@field body? string|fun(): string?|{ file: string } a string, a function giving chunks then nil, or a file
---@field json? any encoded with loom.json (sets the content type)
---@field form? table urlencoded (sets the content type)
---@field multipart? table name = string or { file=, data=, filename=, type= }
---@field timeout? number|false the whole request (default 300; none for a stream)
---@field connect_timeout? number|false DNS, TCP and TLS (default 10)
---@field read_timeout? number|false idle between bytes (default 60)
---@field follow_redirects? boolean default true
---@field max_redirects? integer default 10
---@field verify? boolean check certificates (default true)
---@field cafile? string|false the certificates to trust
---@field proxy? string|false default: the environment; false: none
---@field http_version? loom.http.Version
---@field decompress? boolean default true
---@field max_body? integer|false bytes after decompression (default 64 MiB; none for a stream)
---@field stream? boolean return at the headers; read with res:chunks()
---@field on_progress? fun(done: integer, total: integer?)
---@field sensitive_headers? string[] dropped across origins, with Authorization, Cookie, Proxy-Authorization

---`loom.http.request{}`'s table: the options plus method and url.
---@class loom.http.RequestSpec: loom.http.Options
---@field url string
---@field method? string default "GET"

---Options of `loom.http.session{}`: the request options as defaults, and:
---@class loom.http.SessionOptions: loom.http.Options
---@field base_url? string what relative URLs resolve against
---@field max_connections? integer connections at once (more requests wait)
---@field max_per_host? integer connections at once to one host
---@field cookies? boolean keep a cookie jar (default false)

---A response. A 4xx or 5xx is a response too (see raise_for_status).
---@class loom.http.Response
---@field status integer
---@field ok boolean true for 2xx
---@field reason string "OK"
---@field headers table<string, string|string[]> lower-case names; set-cookie is a list
---@field header_list string[] every header line, in order
---@field body string? the whole body (nil for a stream)
---@field url string after redirects
---@field redirect_url string? for a 3xx: where it points
---@field http_version string "1.1", "2"
---@field elapsed number seconds
local Response = {}

---The body decoded as JSON.
---@return any
function Response:json() end

---Returns the response for a status below 400, raises a loom.http.Error
---of kind "status" otherwise.
---@return loom.http.Response
function Response:raise_for_status() end

---The body as it comes: an iterator of strings (a whole body: once).
---@return fun(): string?
function Response:chunks() end

---The rest of the body as one string.
---@return string
function Response:read() end

---Writes the rest of the body to a file; returns its size.
---@param path string
---@return integer
function Response:save(path) end

---Lets go of a stream's transfer now (also on <close>).
function Response:close() end

---A failure with no response.
---@class loom.http.Error
---@field kind loom.http.Kind
---@field message string curl's words, or loom's
---@field url string?
---@field method string?
---@field code integer? curl's CURLcode
---@field curl_code string? its name, "CURLE_COULDNT_CONNECT"
---@field timeout ("connect"|"total"|"read")? for kind "timeout"
---@field status integer? for kind "status" and redirect errors
---@field location string? for redirect errors
---@field response loom.http.Response? for kind "status"

---A session: its own connection pool, DNS cache and cookie jar.
---@class loom.http.Session
local Session = {}

---@param url string
---@param opts? loom.http.Options
---@return loom.http.Response
function Session:get(url, opts) end
---@param url string
---@param opts? loom.http.Options
---@return loom.http.Response
function Session:post(url, opts) end
---@param url string
---@param opts? loom.http.Options
---@return loom.http.Response
function Session:put(url, opts) end
---@param url string
---@param opts? loom.http.Options
---@return loom.http.Response
function Session:patch(url, opts) end
---@param url string
---@param opts? loom.http.Options
---@return loom.http.Response
function Session:delete(url, opts) end
---@param url string
---@param opts? loom.http.Options
---@return loom.http.Response
function Session:head(url, opts) end
---@param spec loom.http.RequestSpec
---@return loom.http.Response
function Session:request(spec) end
---Closes its connections; its requests fail.
function Session:close() end

---The HTTP client (docs/http.md): `loom.http`, loaded on first use.
---@class loom.http
---@field Error table the metatable of loom.http.Error
---@field Response table the metatable of responses
---@field Session table the metatable of sessions
---@field curl_version string the libcurl loaded
---@field defaults table the defaults, read-only
local http = {}

---@param url string
---@param opts? loom.http.Options
---@return loom.http.Response
function http.get(url, opts) end
---@param url string
---@param opts? loom.http.Options
---@return loom.http.Response
function http.post(url, opts) end
---@param url string
---@param opts? loom.http.Options
---@return loom.http.Response
function http.put(url, opts) end
---@param url string
---@param opts? loom.http.Options
---@return loom.http.Response
function http.patch(url, opts) end
---@param url string
---@param opts? loom.http.Options
---@return loom.http.Response
function http.delete(url, opts) end
---@param url string
---@param opts? loom.http.Options
---@return loom.http.Response
function http.head(url, opts) end
---@param spec loom.http.RequestSpec
---@return loom.http.Response
function http.request(spec) end
---@param opts? loom.http.SessionOptions
---@return loom.http.Session
function http.session(opts) end
---Whether e is a loom.http.Error.
---@param e any
---@return boolean
function http.is_error(e) end

return http
