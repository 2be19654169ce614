-- loom.sync: Queue, Event, Semaphore, Lock. FIFO service, cancellation of
-- every kind of waiter (before and after it was handed something), and a
-- cancelled waiter never swallowing a wake-up meant for another.
local T = require "spec.support.task"
local it, err_of = T.it, T.error_of
local loom = require "loom"

local Queue, Event, Semaphore, Lock =
  loom.Queue, loom.Event, loom.Semaphore, loom.Lock

-- spawns fn and lets it run until it waits
local function started(fn, ...)
  local t = loom.spawn(fn, ...)
  loom.sleep(0)
  return t
end

local function cancelled(t)
  local ok, e = pcall(t.await, t)
  return not ok and loom.is_cancelled(e)
end

describe("loom.sync", function()
  it("is loom.sync, and its names are in loom too", function()
    assert.equal(require("loom.sync"), loom.sync)
    for _, k in ipairs { "Queue", "Event", "Semaphore", "Lock" } do
      assert.equal(loom.sync[k], loom[k])
    end
  end)
end)

describe("Queue", function()
  it("passes items in order; try_get and # see them", function()
    local q = Queue()
    q:put(1)
    q:put("two")
    q:put({ 3 })
    assert.equal(3, #q)
    assert.equal(1, q:get())
    assert.equal("two", q:try_get())
    assert.same({ 3 }, q:get())
    assert.is_nil(q:try_get())
    assert.equal(1, select("#", q:try_get()))  -- a nil, not nothing
    assert.equal(0, #q)
  end)

  it("keeps its order across many items (the ring grows)", function()
    local q = Queue()
    for i = 1, 1000 do q:put(i) end
    for i = 1, 500 do assert.equal(i, q:get()) end
    for i = 1001, 1700 do q:put(i) end
    for i = 501, 1700 do assert.equal(i, q:get()) end
    assert.equal(0, #q)
  end)

  it("get waits until an item comes; waiters are served first come first "
    .. "served", function()
    local q, got = Queue(), {}
    for i = 1, 3 do
      started(function()
        local v = q:get()
        got[#got + 1] = i .. ":" .. v
      end)
    end
    q:put("a")
    q:put("b")
    q:put("c")
    loom.sleep(0)
    assert.same({ "1:a", "2:b", "3:c" }, got)
  end)

  it("a bounded queue makes put wait, putters first come first served",
    function()
      local q, order = Queue(2), {}
      q:put(1)
      q:put(2)
      assert.is_false(q:try_put(3))
      for i = 3, 5 do
        started(function() q:put(i) order[#order + 1] = i end)
      end
      assert.equal(2, #q)
      assert.same({}, order)
      for i = 1, 5 do assert.equal(i, q:get()) end
      loom.sleep(0)
      assert.same({ 3, 4, 5 }, order)
    end)

  it("try_put on an unbounded or a roomy queue succeeds", function()
    local q = Queue(1)
    assert.is_true(q:try_put("x"))
    assert.is_false(q:try_put("y"))
    assert.is_true(Queue():try_put(1))
  end)

  it("a queue with 0 or math.huge as maxsize is unbounded", function()
    for _, max in ipairs { 0, math.huge } do
      local q = Queue(max)
      for i = 1, 100 do assert.is_true(q:try_put(i)) end
    end
  end)

  it("a getter cancelled while it waits leaves no trace", function()
    local q = Queue()
    local a = started(function() return q:get() end)
    local b = started(function() return q:get() end)
    a:cancel()
    assert.is_true(cancelled(a))
    q:put("x")
    assert.equal("x", b:await())
    assert.equal(0, #q)
  end)

  it("a getter cancelled after it was handed an item gives it to the next "
    .. "getter", function()
    local q = Queue()
    local a = started(function() return q:get() end)
    local b = started(function() return q:get() end)
    q:put("first")   -- handed to a, which has not run yet
    a:cancel()
    assert.is_true(cancelled(a))
    assert.equal("first", b:await())
  end)

  it("... or back to the front of the queue, keeping the order", function()
    local q = Queue()
    local a = started(function() return q:get() end)
    q:put("first")   -- handed to a
    q:put("second")  -- no getter: queued
    a:cancel()
    assert.is_true(cancelled(a))
    assert.equal(2, #q)
    assert.equal("first", q:get())
    assert.equal("second", q:get())
  end)

  it("... even when a bounded queue is full again meanwhile", function()
    local q = Queue(1)
    local a = started(function() return q:get() end)
    q:put("handed")
    q:put("fills it")
    a:cancel()
    assert.is_true(cancelled(a))
    assert.equal(2, #q)
    assert.equal("handed", q:get())
    assert.equal("fills it", q:get())
  end)

  it("a putter cancelled while it waits leaves no trace", function()
    local q = Queue(1)
    q:put(1)
    local a = started(function() q:put("a") end)
    local b = started(function() q:put("b") end)
    a:cancel()
    assert.is_true(cancelled(a))
    assert.equal(1, q:get())
    b:await()
    assert.equal("b", q:get())
    assert.equal(0, #q)
  end)

  it("a putter cancelled after a slot was promised to it passes the slot "
    .. "on", function()
    local q = Queue(1)
    q:put(1)
    local a = started(function() q:put("a") end)
    local b = started(function() q:put("b") end)
    assert.equal(1, q:get())  -- promises the slot to a, which has not run
    a:cancel()
    assert.is_true(cancelled(a))
    b:await()  -- the slot went to b
    assert.equal("b", q:get())
    -- and with no other putter, the slot is free again
    q:put(2)
    local c = started(function() q:put("c") end)
    assert.equal(2, q:get())
    c:cancel()
    assert.is_true(cancelled(c))
    assert.is_true(q:try_put("d"))
  end)

  it("close: getters and putters waiting raise, items left can be "
    .. "drained, then get raises", function()
    local q = Queue(1)
    local g = started(function() return q:get() end)
    q:close()
    assert.matches("get: the queue is closed$", err_of(g.await, g))
    q = Queue(1)
    q:put("left")
    local p = started(function() q:put("more") end)
    q:close()
    assert.matches("put: the queue is closed$", err_of(p.await, p))
    assert.is_true(q:is_closed())
    assert.equal("left", q:get())
    assert.matches("get: the queue is closed$", err_of(q.get, q))
    assert.matches("put: the queue is closed$", err_of(q.put, q, 1))
    assert.matches("try_put: the queue is closed$", err_of(q.try_put, q, 1))
    assert.is_nil(q:try_get())
    q:close()  -- again: nothing happens
  end)

  it("iter gives every item until the queue is closed and drained",
    function()
      local q, got = Queue(2), {}
      local consumer = loom.spawn(function()
        for item in q:iter() do got[#got + 1] = item end
        return "ended"
      end)
      for i = 1, 5 do q:put(i) end
      q:close()
      assert.equal("ended", consumer:await())
      assert.same({ 1, 2, 3, 4, 5 }, got)
    end)

  it("a task waiting in iter can be cancelled", function()
    local q = Queue()
    local t = started(function() for _ in q:iter() do end end)
    t:cancel()
    assert.is_true(cancelled(t))
    q:put(1)
    assert.equal(1, q:get())
  end)

  it("a getter in a user coroutine is handed its item", function()
    local q = Queue()
    local t = started(function()
      local gen = coroutine.wrap(function() coroutine.yield(q:get()) end)
      return gen()
    end)
    q:put("through")
    assert.equal("through", t:await())
  end)

  it("refuses nil items and bad sizes, naming the function", function()
    local q = Queue()
    assert.matches("bad argument #1 to 'put' %(value expected %(nil cannot "
      .. "be queued", err_of(function() q:put(nil) end))
    assert.matches("bad argument #1 to 'try_put' %(value expected",
      err_of(function() q:try_put() end))
    assert.matches("bad argument #1 to '[%w.]*Queue' %(non%-negative integer "
      .. "expected%)", err_of(Queue, -1))
    assert.matches("bad argument #1 to '[%w.]*Queue' %(number has no integer "
      .. "representation%)", err_of(Queue, 1.5))
    assert.matches("bad argument #1 to '[%w.]*Queue' %(number expected, got "
      .. "string%)", err_of(Queue, "x"))
    assert.matches("bad argument #1 to '[%w.]*Queue' %(too large%)",
      err_of(Queue, 2 ^ 40))
  end)

  it("get where the task cannot wait says so", function()
    local q = Queue()
    assert.matches("get: cannot wait here: inside a table%.sort comparator",
      err_of(table.sort, { 1, 2 }, function() q:get() return false end))
  end)

  it("tostring tells its items and bound", function()
    local q = Queue(3)
    q:put(1)
    assert.matches("^loom%.Queue: 0x%x+ %(1 item of 3%)$", tostring(q))
    q:close()
    assert.matches("^loom%.Queue: 0x%x+ %(1 item of 3, closed%)$",
      tostring(q))
    assert.matches("^loom%.Queue: 0x%x+ %(0 items%)$", tostring(Queue()))
    assert.matches("bad argument #1 to '.-' %(loom%.Queue expected",
      err_of(getmetatable(q).__len, {}))
  end)

  it("a method whose state the debug library replaced raises", function()
    local q = Queue()
    debug.setupvalue(q.put, 1, {})
    assert.matches("loom%.sync: the object was tampered with",
      err_of(q.put, q, 1))
  end)
end)

describe("Event", function()
  it("wait returns at once when set; set wakes every waiter; clear",
    function()
      local e, woke = Event(), 0
      assert.is_false(e:is_set())
      for _ = 1, 3 do started(function() e:wait() woke = woke + 1 end) end
      assert.equal(0, woke)
      e:set()
      loom.sleep(0)
      assert.equal(3, woke)
      assert.is_true(e:is_set())
      e:wait()  -- set: no wait
      e:clear()
      assert.is_false(e:is_set())
      assert.matches("^loom%.Event: 0x%x+ %(clear%)$", tostring(e))
    end)

  it("a cancelled waiter leaves no trace", function()
    local e = Event()
    local a = started(function() e:wait() end)
    local b = started(function() e:wait() return "b" end)
    a:cancel()
    assert.is_true(cancelled(a))
    e:set()
    assert.equal("b", b:await())
  end)

  it("a waiter woken by set, then cancelled, raises Cancelled", function()
    local e = Event()
    local a = started(function() e:wait() end)
    e:set()
    a:cancel()
    assert.is_true(cancelled(a))
  end)
end)

describe("Semaphore and Lock", function()
  it("acquire takes a permit; release gives it back; <close> guards",
    function()
      local s = Semaphore(2)
      local g1 = s:acquire()
      local g2 = s:acquire()
      assert.is_true(s:locked())
      assert.matches("^loom%.Guard: 0x%x+ %(held%)$", tostring(g1))
      g1:release()
      g1:release()  -- once only
      assert.matches("^loom%.Guard: 0x%x+ %(released%)$", tostring(g1))
      assert.is_false(s:locked())
      do
        local _ <close> = s:acquire()
        assert.is_true(s:locked())
      end
      assert.is_false(s:locked())
      g2:release()
      assert.matches("^loom%.Semaphore: 0x%x+ %(2 free%)$", tostring(s))
    end)

  it("waiters are served first come first served", function()
    local s, order = Semaphore(1), {}
    local held = s:acquire()
    for i = 1, 4 do
      started(function()
        local _ <close> = s:acquire()
        order[#order + 1] = i
        loom.sleep(0)
      end)
    end
    held:release()
    for _ = 1, 10 do loom.sleep(0) end
    assert.same({ 1, 2, 3, 4 }, order)
  end)

  it("a release goes to the waiter, not to a task that comes later",
    function()
      local s = Semaphore(1)
      local held = s:acquire()
      local got = {}
      local waiter = started(function()
        local _ <close> = s:acquire()
        got[#got + 1] = "waiter"
      end)
      held:release()  -- handed to the waiter
      -- a newcomer finds no permit: it waits behind
      local late = loom.spawn(function()
        local _ <close> = s:acquire()
        got[#got + 1] = "late"
      end)
      waiter:await()
      late:await()
      assert.same({ "waiter", "late" }, got)
    end)

  it("an acquirer cancelled while it waits leaves no trace", function()
    local s = Semaphore(0)
    local a = started(function() return s:acquire() end)
    local b = started(function() s:acquire() return "b" end)
    a:cancel()
    assert.is_true(cancelled(a))
    s:release()
    assert.equal("b", b:await())
  end)

  it("an acquirer cancelled after it was handed the permit passes it on",
    function()
      local s = Semaphore(0)
      local a = started(function() return s:acquire() end)
      local b = started(function() s:acquire() return "b" end)
      s:release()  -- handed to a, which has not run
      a:cancel()
      assert.is_true(cancelled(a))
      assert.equal("b", b:await())
      -- with nobody waiting, the permit goes back to the semaphore
      local c = started(function() return s:acquire() end)
      s:release()
      c:cancel()
      assert.is_true(cancelled(c))
      assert.is_false(s:locked())
    end)

  it("Lock: one holder; releasing an unlocked lock is an error", function()
    local l = Lock()
    assert.is_false(l:locked())
    local g = l:acquire()
    assert.is_true(l:locked())
    assert.matches("^loom%.Lock: 0x%x+ %(locked%)$", tostring(l))
    local t = started(function() local _ <close> = l:acquire() return 1 end)
    assert.equal("running", t:status())
    g:release()
    assert.equal(1, t:await())
    assert.matches("release: the lock is not locked$", err_of(l.release, l))
    local g2 = l:acquire()
    l:release()
    assert.matches("release: the lock is not locked$",
      err_of(g2.release, g2))
  end)

  it("a lock guards a critical section across waits", function()
    local l, inside, max = Lock(), 0, 0
    local tasks = {}
    for i = 1, 5 do
      tasks[i] = loom.spawn(function()
        local _ <close> = l:acquire()
        inside = inside + 1
        max = math.max(max, inside)
        loom.sleep(0.001)
        inside = inside - 1
      end)
    end
    loom.gather(tasks)
    assert.equal(1, max)
  end)

  it("checks its arguments", function()
    assert.matches("bad argument #1 to '[%w.]*Semaphore' %(non%-negative integer "
      .. "expected%)", err_of(Semaphore, -1))
    assert.matches("bad argument #1 to '[%w.]*Semaphore' %(number expected, got "
      .. "table%)", err_of(Semaphore, {}))
    assert.matches("bad argument #1 to '.-' %(loom%.Guard expected",
      err_of(getmetatable(Lock():acquire()).__index.release, {}))
  end)
end)
