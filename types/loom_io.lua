---@meta loom.io
-- types/loom_io.lua: lua-language-server annotations for loom's I/O
-- modules (loom.fs, loom.tcp and streams, loom.process, loom.dns,
-- loom.signal, loom.worker and loom.to_thread, loom.io), beside
-- types/loom.lua. The same forms: a class "---@class loom.<Name>" then
-- "local <var> = {}", its functions "function <var>.name(...) end".

---@class loom
---@field fs loom.fs Files and directories on the thread pool.
---@field tcp loom.tcp TCP clients and servers.
---@field process loom.process Child processes.
---@field dns loom.dns Name lookups.
---@field signal loom.signal POSIX signals.
---@field worker loom.worker The worker threads of `to_thread`.
---@field io loom.io The I/O error type and counts of what is open.
loom = {}

---Runs `fn(...)` in a worker thread with a Lua state of its own and
---returns its results. `fn` may have no upvalue but `_ENV`; arguments and
---results are copied (nil, booleans, numbers, strings, plain tables).
---@param fn function a self-contained Lua function
---@param ... nil|boolean|number|string|table
---@return any ...
function loom.to_thread(fn, ...) end

-- ---- loom.io ------------------------------------------------------------

---An I/O failure: raised by every I/O module. `tostring(err)` is
---`op: path: message (CODE)`.
---@class loom.IOError
---@field code string `"ENOENT"`, `"ECONNREFUSED"`, `"ETIMEDOUT"`, `"EAI_NONAME"`, `"ECLOSED"`, `"EBUSY"`, `"EOF"`, `"EXIT"` ...
---@field message string what the code means
---@field op string the function that failed
---@field path? string the file or program
---@field address? string `host:port`
---@field host? string the name looked up
---@field signal? string the signal's name

---@class loom.io
---@field Error table the metatable of I/O errors
local io_ = {}

---Whether `v` is an I/O error value.
---@param v any
---@return boolean
function io_.is_error(v) end

---What the I/O modules hold open, for leak checks.
---@return { handles: integer, requests: integer, files: integer }
function io_.stats() end

-- ---- loom.fs ------------------------------------------------------------

---@class loom.fs
local fs = {}

---@param path string
---@return string data
function fs.read_file(path) end

---@param path string
---@param data string|number
function fs.write_file(path, data) end

---@param path string
---@param data string|number
function fs.append_file(path, data) end

---Opens a file; `mode` as `io.open` (`"r"`, `"w"`, `"a"`, `"r+"`, `"w+"`,
---`"a+"`, `"b"` ignored, `"x"` after `w`).
---@param path string
---@param mode? string
---@return loom.File
function fs.open(path, mode) end

---@param path string
---@param opts? { follow?: boolean }
---@return { type: string, size: integer, mode: integer, mtime: number, atime: number, ctime: number, uid: integer, gid: integer, nlink: integer, ino: integer }
function fs.stat(path, opts) end

---@param path string
---@return boolean
function fs.exists(path) end

---`for name, type in fs.list_dir(path) do ... end`, in name order.
---@param path string
---@return fun(): string?, string?
function fs.list_dir(path) end

---@param path string
---@param opts? { parents?: boolean, mode?: integer }
function fs.mkdir(path, opts) end

---@param path string
---@param opts? { recursive?: boolean }
function fs.remove(path, opts) end

---@param from string
---@param to string
function fs.rename(from, to) end

---Makes a new private directory and returns its path.
---@param prefix? string default `"loom-"`
---@return string path
function fs.tmpdir(prefix) end

---A file of `loom.fs.open`; closed by `<close>` and the collector too.
---@class loom.File
local File = {}

---A count, `"l"` (default), `"L"` or `"a"`, as `io.read`.
---@param fmt? integer|string
---@return string?
function File:read(fmt) end

---@param ... string|number
---@return loom.File self
function File:write(...) end

---@param fmt? integer|string
---@return fun(): string?
function File:lines(fmt) end

---@param whence? "set"|"cur"|"end"
---@param offset? integer
---@return integer position
function File:seek(whence, offset) end

---@return boolean?
function File:close() end

-- ---- streams and loom.tcp -------------------------------------------------

---A byte stream: a TCP connection or a process pipe. Reads return `nil`
---at the end; writes wait while the kernel's buffer is full.
---@class loom.Stream
local Stream = {}

---Up to `n` bytes (all there are without `n`) as soon as there are some;
---or `"l"`, `"L"`, `"a"`.
---@param n? integer|string
---@return string?
function Stream:read(n) end

---@param n integer
---@return string?
function Stream:read_exactly(n) end

---@param keep_newline? boolean
---@return string?
function Stream:read_line(keep_newline) end

---@return string
function Stream:read_all() end

---@return fun(): string?
function Stream:lines() end

---@param ... string|number
---@return loom.Stream self
function Stream:write(...) end

---Half-close: the peer reads the end and can still answer.
---@return loom.Stream self
function Stream:close_write() end

---The same as `close_write`.
---@return loom.Stream self
function Stream:shutdown() end

function Stream:close() end

---A limit for each wait of each read and write (`nil`: none).
---@param seconds? number
---@return loom.Stream self
function Stream:set_timeout(seconds) end

---@return string? ip
---@return integer? port
function Stream:remote_address() end

---@return string? ip
---@return integer? port
function Stream:local_address() end

---@class loom.Server
---@field port integer
---@field host string
local Server = {}

---The next connection, or `nil` once closed.
---@return loom.Stream?
function Server:accept() end

function Server:close() end

---Waits until the server is closed.
function Server:wait() end

---@class loom.tcp
local tcp = {}

---@param host string
---@param port integer
---@param opts? { timeout?: number, family?: "inet"|"inet6"|4|6, nodelay?: boolean }
---@return loom.Stream
function tcp.connect(host, port, opts) end

---With a handler, each connection runs `handler(stream)` as a task.
---@param host string
---@param port integer 0 picks a free one
---@param handler? fun(stream: loom.Stream)
---@param opts? { backlog?: integer, family?: "inet"|"inet6"|4|6, timeout?: number }
---@return loom.Server
function tcp.listen(host, port, handler, opts) end

---`listen`, then wait until the server is closed.
---@param host string
---@param port integer
---@param handler fun(stream: loom.Stream)
---@param opts? { backlog?: integer, family?: "inet"|"inet6"|4|6, timeout?: number }
function tcp.serve(host, port, handler, opts) end

-- ---- loom.process -------------------------------------------------------

---@class loom.ProcessResult
---@field code integer the exit status, or 128 + n if signal n ended it
---@field signal? string
---@field ok boolean code == 0
---@field stdout? string
---@field stderr? string

---@class loom.Process
---@field pid integer
---@field stdin? loom.Stream
---@field stdout? loom.Stream
---@field stderr? loom.Stream
---@field code? integer once it exited
---@field signal? string once a signal ended it
local Process = {}

---@return integer code
---@return string? signal
function Process:wait() end

---@param sig? string|integer default `"SIGTERM"`
---@return boolean sent false if it already exited
function Process:kill(sig) end

---@return boolean
function Process:done() end

---Kills it if it still runs (SIGKILL), waits, closes its pipes.
function Process:close() end

---@class loom.process
local process = {}

---@param cmd string|string[] an argv table, or a command (a line for /bin/sh with `shell = true`)
---@param opts? { cwd?: string, env?: table<string, string|false>, clear_env?: boolean, input?: string, timeout?: number, check?: boolean, shell?: boolean, stdin?: "pipe"|"inherit"|"null", stdout?: "pipe"|"inherit"|"null", stderr?: "pipe"|"inherit"|"null" }
---@return loom.ProcessResult
function process.run(cmd, opts) end

---@param argv string[]
---@param opts? { cwd?: string, env?: table<string, string|false>, clear_env?: boolean, stdin?: "pipe"|"inherit"|"null", stdout?: "pipe"|"inherit"|"null", stderr?: "pipe"|"inherit"|"null", detached?: boolean, kill_at_close?: boolean }
---@return loom.Process
function process.spawn(argv, opts) end

-- ---- loom.dns -----------------------------------------------------------

---@class loom.dns
local dns = {}

---@param host string
---@param opts? { family?: "inet"|"inet6"|4|6, timeout?: number }
---@return string[] addresses
function dns.resolve(host, opts) end

-- ---- loom.signal ----------------------------------------------------------

---@class loom.Subscription
local Subscription = {}

---The next delivery (its name), or `nil` once closed.
---@return string?
function Subscription:wait() end

function Subscription:close() end

---@class loom.signal
local signal = {}

---@param name string|integer `"SIGTERM"`, `"TERM"`, or a number
---@return string name
function signal.wait(name) end

---Runs `fn(name)` as a task each time, until the subscription is closed.
---@param name string|integer
---@param fn fun(name: string)
---@return loom.Subscription
function signal.on(name, fn) end

---@param name string|integer
---@param keepalive? boolean default true: a waiting task keeps the program running
---@return loom.Subscription
function signal.subscribe(name, keepalive) end

-- ---- loom.worker ----------------------------------------------------------

---@class loom.worker
local worker = {}

---The same as `loom.to_thread`.
---@param fn function
---@param ... nil|boolean|number|string|table
---@return any ...
function worker.to_thread(fn, ...) end

---The number of worker threads (the cores, or `LOOM_WORKERS`).
---@return integer
function worker.size() end
