---@meta loom_toolkit
-- types/loom_toolkit.lua: lua-language-server annotations for loom's
-- concurrency toolkit (timeouts, groups, wait/race/as_completed/settle,
-- loom.sync, loom.debug), beside types/loom.lua (the same forms, which
-- spec/types_spec.lua reads from every types/loom*.lua file).

---@class loom
---@field Timeout table The metatable of the Timeout errors deadlines raise.
---@field GroupError table The metatable of the errors a failed group raises.
---@field sync loom.sync Queue, Event, Semaphore and Lock (also in loom).
---@field debug loom.debug The blocking detector and the task listings.
loom = {}

---@alias loom.ReturnWhen "all"|"first"|"first_error"

-- ---- deadlines ----------------------------------------------------------

---The error a deadline raises: a table with metatable `loom.Timeout`,
---whose `tostring` is `Timeout: timed out after 0.5 s (...)`.
---@class loom.Timeout
---@field message string what timed out, and where the work was waiting
---@field seconds number the time it was given
local Timeout = {}

---Runs `fn(...)` in this task with a deadline and returns its results. At
---the deadline the work is cancelled where it waits (its `<close>`
---variables and `pcall`s see a Cancelled error) and `loom.timeout` raises a
---Timeout error. An inner timeout never outlives an outer one; after its
---deadline a scope stays cancelled until it ends, so every later wait in
---it raises again. A plain `task:cancel()` wins over a deadline.
---@param seconds number non-negative; `math.huge`: no deadline
---@param fn function|table
---@param ... any
---@return any ...
function loom.timeout(seconds, fn, ...) end

---Waits for a Task (or a function, spawned; or a Future) for at most
---`seconds` (nil: no limit). When the time runs out a task is cancelled
---and waited for; if it ends cancelled, a Timeout error is raised.
---@param x loom.Task|loom.Future|function
---@param seconds? number
---@return any ...
function loom.wait_for(x, seconds) end

---True if `err` is a Timeout error.
---@param err any
---@return boolean
function loom.is_timeout(err) end

---@class loom.Task
local Task = {}

---With `seconds`: as `loom.wait_for(task, seconds)`.
---@param seconds? number
---@return any ...
function Task:await(seconds) end

---@class loom.Future
local Future = {}

---With `seconds`: gives up with a Timeout error when the time runs out.
---@param seconds? number
---@return any ...
function Future:await(seconds) end

-- ---- structured concurrency ---------------------------------------------

---A task group (Trio's nursery): `local g <close> = loom.group()`.
---Leaving the scope waits for every child. The first child that fails
---cancels the task that made the group and, at the end of the scope, the
---other children; the scope then raises a GroupError with every failure.
---@class loom.Group
local Group = {}

---Starts `fn(...)` as a child of the group; returns its Task.
---Errors: `spawn: the group is closed`.
---@param fn function|table
---@param ... any
---@return loom.Task
function Group:spawn(fn, ...) end

---Cancels every child; the scope still waits for them to finish.
function Group:cancel() end

---The error of a group whose children failed. `tostring` lists each
---child's message and spawn site.
---@class loom.GroupError
---@field message string "2 of 5 tasks in the group failed" and a line each
---@field errors any[] each failed child's error, in the order they failed
---@field tasks loom.Task[] the failed children, in the same order
---@field tracebacks (string|nil)[] their tracebacks
---@field spawned_at (string|nil)[] "file:line" where each was spawned
---@field error any the scope's own error if it raised one too, else false
local GroupError = {}

---A new group owned by the running task; use it with `<close>`.
---@return loom.Group
function loom.group() end

---Calls `fn(g, ...)` with a new group `g` and waits for every child of it
---before returning `fn`'s results (or raising, as a group's scope does).
---@param fn fun(g: loom.Group, ...): ...
---@param ... any
---@return any ...
function loom.scope(fn, ...) end

-- ---- waiting on many ----------------------------------------------------

---Options of `loom.wait`.
---@class loom.WaitOptions
---@field return_when? loom.ReturnWhen default "all"
---@field timeout? number seconds; then returns what is done so far

---Waits for the tasks (functions are spawned) as asyncio.wait does and
---returns two lists, in the order given: the tasks done and those still
---pending. Nothing is cancelled.
---@param tasks (loom.Task|function)[]
---@param opts? loom.WaitOptions
---@return loom.Task[] done
---@return loom.Task[] pending
function loom.wait(tasks, opts) end

---Returns the results of the first task to finish (or raises its error)
---and cancels the others. Several tasks or functions, or one table.
---@param ... loom.Task|function|(loom.Task|function)[]
---@return any ...
function loom.race(...) end

---A `for` iterator over the tasks in the order they finish:
---`for t in loom.as_completed(tasks) do print(t:result()) end`. With
---`{timeout = s}`, raises a Timeout error when the time runs out.
---@param tasks (loom.Task|function)[]
---@param opts? {timeout?: number}
---@return fun(): loom.Task?
function loom.as_completed(tasks, opts) end

---One outcome of `loom.settle`.
---@class loom.Outcome
---@field ok boolean
---@field value any the first result, if ok
---@field error any the error, if not (a Cancelled one for a cancellation)

---Waits for every task and gives each outcome, as Promise.allSettled;
---nothing is cancelled because one fails. Several tasks or functions give
---several outcomes; one table gives a table of them.
---@param ... loom.Task|function|(loom.Task|function)[]
---@return loom.Outcome ...
function loom.settle(...) end

-- ---- loom.sync ----------------------------------------------------------

---A FIFO queue between tasks. Methods are the object's own functions.
---`#q` is the number of items in it.
---@class loom.Queue
local Queue = {}

---Adds an item (not nil); waits while the queue is full.
---Errors: `put: the queue is closed`.
---@param item any
function Queue:put(item) end

---Takes the oldest item; waits while the queue is empty.
---Errors: `get: the queue is closed` once it is closed and empty.
---@return any
function Queue:get() end

---Adds the item if there is room (true), else returns false.
---@param item any
---@return boolean
function Queue:try_put(item) end

---The oldest item, or nil if the queue is empty.
---@return any
function Queue:try_get() end

---No more items: waiting getters and putters raise, the iterator ends
---once the queue is drained.
function Queue:close() end

---@return boolean
function Queue:is_closed() end

---`for item in q:iter() do ... end`: each item until closed and drained.
---@return fun(): any
function Queue:iter() end

---A flag tasks can wait for.
---@class loom.Event
local Event = {}

---Sets the flag and wakes every waiter.
function Event:set() end

---Clears the flag.
function Event:clear() end

---Waits until the flag is set (returns at once if it is).
function Event:wait() end

---@return boolean
function Event:is_set() end

---What `acquire` returns: gives the permit back once, on `<close>` or
---`guard:release()`.
---@class loom.Guard
local Guard = {}

function Guard:release() end

---A counting semaphore: `local _ <close> = sem:acquire()`.
---@class loom.Semaphore
local Semaphore = {}

---Takes a permit, waiting FIFO while there is none.
---@return loom.Guard
function Semaphore:acquire() end

---Gives a permit back (to the first waiter, if any).
function Semaphore:release() end

---True when no permit is free.
---@return boolean
function Semaphore:locked() end

---A lock (one holder): `local _ <close> = lock:acquire()`.
---@class loom.Lock
local Lock = {}

---@return loom.Guard
function Lock:acquire() end

---Errors: `release: the lock is not locked`.
function Lock:release() end

---@return boolean
function Lock:locked() end

---`require "loom.sync"` (or `loom.sync`): the synchronization primitives.
---@class loom.sync
local sync = {}

---A queue of at most `maxsize` items (nil, 0 or math.huge: no bound).
---@param maxsize? integer
---@return loom.Queue
function sync.Queue(maxsize) end

---@return loom.Event
function sync.Event() end

---@param n? integer permits, default 1
---@return loom.Semaphore
function sync.Semaphore(n) end

---@return loom.Lock
function sync.Lock() end

---@param maxsize? integer
---@return loom.Queue
function loom.Queue(maxsize) end

---@return loom.Event
function loom.Event() end

---@param n? integer
---@return loom.Semaphore
function loom.Semaphore(n) end

---@return loom.Lock
function loom.Lock() end

-- ---- loom.debug ---------------------------------------------------------

---`loom.debug`: what `loom --debug` turns on, for any host.
---@class loom.debug
local debug = {}

---Turns the blocking detector on: when a task runs longer than `block_ms`
---(default 100) without waiting, a warning with the traceback of the
---blocking line is reported while it still blocks.
---@param block_ms? number
function debug.enable(block_ms) end

---Turns the blocking detector off.
function debug.disable() end

---@return boolean
function debug.enabled() end

---A text listing every unfinished task (but the calling one): spawn site,
---what it waits on and where; nil if there is none.
---@return string|nil
function debug.pending() end

---The unfinished tasks.
---@return loom.Task[]
function debug.tasks() end

return loom
