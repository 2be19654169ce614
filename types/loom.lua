---@meta loom
-- types/loom.lua: lua-language-server annotations for loom's Lua API, so
-- editors complete and type-check loom scripts. Point LuaLS at this
-- directory ("workspace.library": ["<prefix>/share/loom/types"], or this
-- folder of the sources). spec/types_spec.lua checks that every public
-- function, method and field of the real loom table is annotated here.
--
-- How to add to it (the spec parses this file, so keep to the forms):
-- a class is "---@class loom.<Name>" followed by "local <var> = {}";
-- its functions are "function <var>.name(...) end" (or ":" for methods);
-- plain fields are "---@field name type" lines under the class. A new
-- submodule loom.<name> is a class "loom.<name>", a "---@field <name>
-- loom.<name>" in class loom, and an entry in the spec's list.

---The loom module: `require "loom"` from a stock `lua5.4`, and the global
---`loom` in the `loom` command.
---@class loom
---@field version string loom's version, `"0.1.0"`.
---@field Cancelled table The metatable of the errors cancellation raises.
---@field json loom.json JSON through lua-cjson (loaded on first use).
---@field timer loom.timer `require "loom.timer"`: `sleep` and `now`.
loom = {}

---@alias loom.TaskStatus "pending"|"running"|"done"|"failed"|"cancelled"
---@alias loom.FutureStatus "pending"|"done"|"failed"

-- ---- tasks --------------------------------------------------------------

---A task: a Lua function running in its own coroutine, driven by the loop.
---`tostring(task)` is `loom.Task: 0x... (status)`; a task in a `<close>`
---variable is cancelled, and waited for, when the variable goes out of scope.
---@class loom.Task
local Task = {}

---Waits until the task finishes; returns what its function returned or
---raises its error as the same value. Awaiting a cancelled task raises a
---`Cancelled` error.
---@return any ...
function Task:await() end

---Asks the task to stop: a `Cancelled` error is raised where it waits (or
---when it starts). Returns false if the task had already finished.
---@return boolean requested
function Task:cancel() end

---True once the task is done, failed or cancelled.
---@return boolean
function Task:done() end

---@return loom.TaskStatus
function Task:status() end

---The results of a done task; raises the error of a failed or cancelled
---one, and `result: task not finished (status '...')` otherwise.
---@return any ...
function Task:result() end

---Runs `fn(...)` as a new task, which starts on the next turn of the loop.
---@param fn function|table a function or any callable value
---@param ... any its arguments
---@return loom.Task
function loom.create_task(fn, ...) end

---Alias of `loom.create_task`.
---@param fn function|table a function or any callable value
---@param ... any its arguments
---@return loom.Task
function loom.spawn(fn, ...) end

---A Task or a Future: waits for it and returns its results (or raises its
---error). Any other value is returned as it is, with all the arguments.
---@param x loom.Task|loom.Future|any
---@param ... any
---@return any ...
function loom.await(x, ...) end

---Waits for every task (spawning the functions among them) and returns
---each one's first result in order; with one table of tasks or functions,
---returns a table of results. The first failure cancels the others and is
---raised.
---@param ... loom.Task|function|(loom.Task|function)[]
---@return any ...
function loom.gather(...) end

---Returns a function that spawns `fn` with the arguments it is given and
---returns the Task, like an `async function` in JavaScript.
---@generic F: function
---@param fn F
---@return fun(...): loom.Task
function loom.async(fn) end

---Outside a task: runs `fn(...)` as the main task and the loop until no
---work is left, then returns `fn`'s results or raises its error. Inside a
---task: spawns `fn` and awaits it.
---@param fn function|table
---@param ... any
---@return any ...
function loom.run(fn, ...) end

---Suspends the task for `seconds` (rounded up to the millisecond);
---`sleep(0)` lets every other ready task and the loop's I/O run once.
---@param seconds number non-negative
function loom.sleep(seconds) end

---Monotonic time in seconds, with sub-millisecond precision.
---@return number
function loom.now() end

---Reports every failed task whose error nobody retrieved (on stderr, or
---through the embedder's hook); returns how many failures were reported
---since the previous call.
---@return integer
function loom.report_unretrieved() end

-- ---- futures ------------------------------------------------------------

---A value set once and awaited by any number of tasks.
---@class loom.Future
local Future = {}

---Completes the future with any number of values and wakes its waiters.
---Raises `future is already done` (or `failed`) the second time.
---@param ... any
function Future:set(...) end

---Completes the future with an error: awaiting it raises `err`.
---@param err any
function Future:fail(err) end

---Waits until the future is set or failed; returns its values or raises.
---@return any ...
function Future:await() end

---@return boolean
function Future:done() end

---@return loom.FutureStatus
function Future:status() end

---The values of a set future; raises the error of a failed one, and
---`result: future not done` while pending.
---@return any ...
function Future:result() end

---A new, pending future.
---@return loom.Future
function loom.future() end

-- ---- errors -------------------------------------------------------------

---The error cancellation raises: a table with metatable `loom.Cancelled`,
---whose `tostring` is `Cancelled: task cancelled`.
---@class loom.Cancelled
---@field message string `"task cancelled"`
local Cancelled = {}

---True if `err` is a `Cancelled` error.
---@param err any
---@return boolean
function loom.is_cancelled(err) end

-- ---- loom.timer ---------------------------------------------------------

---`require "loom.timer"`: the binding behind `loom.sleep` and `loom.now`.
---@class loom.timer
local timer = {}

---@param seconds number non-negative
function timer.sleep(seconds) end

---@return number
function timer.now() end

-- ---- loom.json ----------------------------------------------------------

---JSON through lua-cjson; integral numbers decode as Lua integers.
---@class loom.json
---@field null lightuserdata What JSON `null` decodes to and encodes from.
local json = {}

---Parses JSON text. Errors: `json.decode: <what cjson says>`.
---@param text string
---@return any
function json.decode(text) end

---Writes a value as JSON (numbers with 14 significant digits).
---Errors: `json.encode: <what cjson says>`.
---@param value any
---@return string
function json.encode(value) end

-- ---- globals of the loom command (not set by require "loom") -------------

sleep = loom.sleep
create_task = loom.create_task
spawn = loom.spawn
gather = loom.gather
async = loom.async
await = loom.await

return loom
