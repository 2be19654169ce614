/*
** host.c: a C program that embeds loom in its own libuv loop. It shows
** the whole embedding API at work (docs/embedding.md walks through it):
**
**  - the host owns the loop and has a timer of its own ticking on it;
**  - a Lua script runs concurrently on that loop, as a task;
**  - host.read_sensor(name [, seconds]) is an async C function: it
**    suspends the calling task and a libuv timer completes it later
**    (loom_call_*), or lets go if the task is cancelled;
**  - host.start_worker(n) starts a thread (uv_thread) that produces n
**    values and hands each to the loop with loom_post; the script reads
**    them from a little queue built on loom.future;
**  - the host follows the script's task from C (loom_task_ref/status)
**    and stops its timer when the script is done, so the loop ends;
**  - closing: lua_close, then the host runs its loop once more so loom's
**    handles finish closing, and uv_loop_close succeeds.
**
** Usage: embed_host [script.lua] (default: the script below).
** Build against an installed loom (docs/install.md):
**   cc host.c $(pkg-config --cflags --libs loom)
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "loom.h"

static const char script[] =
  "-- a queue the worker thread fills through host.deliver\n"
  "local inbox = { items = {} }\n"
  "function inbox.push(v)\n"
  "  table.insert(inbox.items, v)\n"
  "  local f = inbox.waiting\n"
  "  inbox.waiting = nil\n"
  "  if f then f:set() end\n"
  "end\n"
  "function inbox.pop()\n"
  "  while #inbox.items == 0 do\n"
  "    inbox.waiting = loom.future()\n"
  "    inbox.waiting:await()\n"
  "  end\n"
  "  return table.remove(inbox.items, 1)\n"
  "end\n"
  "host.deliver = inbox.push\n"
  "\n"
  "-- two sensors read at once: both requests are in flight together\n"
  "local t0 = loom.now()\n"
  "local temp, pressure = loom.gather(\n"
  "  function() return host.read_sensor('temperature') end,\n"
  "  function() return host.read_sensor('pressure') end)\n"
  "print(('sensors: temperature %.1f, pressure %.1f (%s)'):format(\n"
  "  temp, pressure, loom.now() - t0 < 0.055 and 'together' or 'in turn'))\n"
  "\n"
  "-- values made by another thread\n"
  "host.start_worker(5)\n"
  "local sum = 0\n"
  "for _ = 1, 5 do sum = sum + inbox.pop() end\n"
  "print(('worker: 5 values, sum %d'):format(sum))\n"
  "\n"
  "-- a sensor that never answers, cancelled: the host lets go of it\n"
  "local slow = loom.spawn(host.read_sensor, 'slow', 60)\n"
  "loom.sleep(0.02)\n"
  "slow:cancel()\n"
  "print('slow sensor: ' .. select(2, pcall(slow.await, slow)).message)\n"
  "return 'script done'\n";

/* ---- the host's own timer -------------------------------------------- */

typedef struct host {
  uv_loop_t loop;
  uv_timer_t heartbeat;
  int ticks;
  lua_State *L;
  loom_task_t *script;   /* the script's task, referenced */
  uv_thread_t worker;
  int worker_started;
  int worker_count;
  loom_t *lm;
} host_t;

static host_t host;

static void on_heartbeat(uv_timer_t *t) {
  host.ticks++;
  /* the script finished: nothing of the host's keeps the loop up now */
  if (loom_task_status(host.script) >= LOOM_TASK_DONE) uv_timer_stop(t);
}

/* ---- host.read_sensor: an async C function ---------------------------- */

typedef struct sensor_req {
  uv_timer_t timer;
  loom_call_t *call;
  double value;
} sensor_req;

static void free_req(uv_handle_t *h) {
  free(h->data);
}

/* The reading is ready: hand it to the task. */
static void on_reading(uv_timer_t *t) {
  sensor_req *r = t->data;
  lua_pushnumber(loom_call_thread(r->call), r->value);
  loom_call_resolve(r->call, 1);
  uv_close((uv_handle_t *)&r->timer, free_req);
}

/* The task was cancelled (or the state closed) while it waited: stop the
** request; the call is gone once this returns. */
static void on_sensor_cancel(loom_call_t *call, void *ud) {
  sensor_req *r = ud;
  (void)call;
  uv_timer_stop(&r->timer);
  uv_close((uv_handle_t *)&r->timer, free_req);
}

static int read_sensor(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  double seconds = luaL_optnumber(L, 2, 0.05);
  luaL_argcheck(L, seconds >= 0 && seconds < 3600, 2, "0 to 3600 expected");
  /* begin first: it raises outside a task (or in a task being cancelled),
  ** and nothing of ours is allocated yet */
  loom_call_t *call = loom_call_begin(L, on_sensor_cancel, NULL);
  sensor_req *r = malloc(sizeof *r);
  if (r == NULL)  /* raising now drops the call */
    return luaL_error(L, "read_sensor: not enough memory");
  r->call = call;
  r->value = strcmp(name, "temperature") == 0 ? 21.5
           : strcmp(name, "pressure") == 0 ? 1013.2 : 0;
  loom_call_set_ud(call, r);
  uv_timer_init(&host.loop, &r->timer);
  r->timer.data = r;
  uv_timer_start(&r->timer, on_reading, (uint64_t)(seconds * 1000), 0);
  return loom_call_suspend(L, call);
}

/* ---- host.start_worker: a thread that posts values ------------------- */

typedef struct value_msg {
  int value;
} value_msg;

/* On the loop thread: host.deliver(value). lm is NULL if the runtime
** closed before this ran: then only the message is freed. */
static void deliver(loom_t *lm, void *ud) {
  value_msg *m = ud;
  if (lm != NULL) {
    lua_State *L = loom_lua(lm);
    int top = lua_gettop(L);
    lua_getglobal(L, "host");
    if (lua_getfield(L, -1, "deliver") == LUA_TFUNCTION) {
      lua_pushinteger(L, m->value);
      if (lua_pcall(L, 1, 0, 0) != LUA_OK)
        fprintf(stderr, "host: deliver: %s\n", lua_tostring(L, -1));
    }
    lua_settop(L, top);
  }
  free(m);
}

static void worker(void *arg) {
  loom_t *lm = arg;
  for (int i = 1; i <= host.worker_count; i++) {
    uv_sleep(10);  /* "work" */
    value_msg *m = malloc(sizeof *m);
    if (m == NULL) break;
    m->value = i;
    if (loom_post(lm, deliver, m) != 0) {  /* refused: still ours */
      free(m);
      break;
    }
  }
  loom_release(lm);  /* done posting: the loop need not wait for us */
}

static int start_worker(lua_State *L) {
  int n = (int)luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 0 && n <= 1000, 1, "0 to 1000 expected");
  if (host.worker_started)
    return luaL_error(L, "start_worker: the worker is already running");
  /* the hold is taken here, on the loop thread, before the thread starts:
  ** the loop keeps running for it even if nothing else is left */
  if (loom_acquire(host.lm) != 0)
    return luaL_error(L, "start_worker: the runtime is closing");
  host.worker_count = n;
  if (uv_thread_create(&host.worker, worker, host.lm) != 0) {
    loom_release(host.lm);
    return luaL_error(L, "start_worker: cannot start a thread");
  }
  host.worker_started = 1;
  return 0;
}

/* ---- main ------------------------------------------------------------ */

static int report_failure(lua_State *L, int r) {
  if (r == LOOM_EFAILED) {  /* error, then traceback (or nil) */
    loom_push_errmsg(L, -2);
    fprintf(stderr, "host: the script failed: %s\n", lua_tostring(L, -1));
    if (lua_isstring(L, -2)) fprintf(stderr, "%s\n", lua_tostring(L, -2));
  } else {
    fprintf(stderr, "host: %s\n", r == UV_EAGAIN ? "the script never ended"
                                                 : uv_strerror(r));
  }
  return EXIT_FAILURE;
}

int main(int argc, char **argv) {
  static const luaL_Reg host_fns[] = {
    {"read_sensor", read_sensor}, {"start_worker", start_worker},
    {NULL, NULL}
  };
  int status = EXIT_SUCCESS, n, r;

  if (uv_loop_init(&host.loop) != 0) return EXIT_FAILURE;
  uv_timer_init(&host.loop, &host.heartbeat);

  lua_State *L = host.L = luaL_newstate();
  if (L == NULL) return EXIT_FAILURE;
  luaL_openlibs(L);
  host.lm = loom_open(L, &host.loop);  /* loom runs on the host's loop */
  if (host.lm == NULL || loom_openglobals(L) != 0) {
    fprintf(stderr, "host: cannot start loom\n");
    lua_close(L);
    return EXIT_FAILURE;
  }
  lua_pop(L, 1);  /* the module table loom_open pushed */
  luaL_newlib(L, host_fns);
  lua_setglobal(L, "host");

  r = argc > 1 ? loom_spawn_file(L, argv[1])
               : loom_spawn_string(L, script, "=host-script");
  if (r != 0) {  /* missing file, syntax error: the message is pushed */
    fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
    lua_close(L);
    uv_run(&host.loop, UV_RUN_DEFAULT);
    uv_loop_close(&host.loop);
    return EXIT_FAILURE;
  }
  host.script = loom_task_ref(L, -1);  /* follow it from C */
  lua_pop(L, 1);

  /* the host's own work and the script share the loop */
  uv_timer_start(&host.heartbeat, on_heartbeat, 5, 5);
  uv_run(&host.loop, UV_RUN_DEFAULT);

  r = loom_task_results(L, host.script, &n);
  if (r == 0) {
    printf("script: %s\n", lua_tostring(L, -n));
    lua_pop(L, n);
  } else {
    status = report_failure(L, r);
    lua_settop(L, 0);
  }
  printf("host: the heartbeat ticked %s while the script ran\n",
         host.ticks > 10 ? "all along" : "too little");
  if (host.ticks <= 10) status = EXIT_FAILURE;
  if (loom_report_unretrieved(host.lm) > 0) status = EXIT_FAILURE;
  if (host.worker_started) uv_thread_join(&host.worker);
  loom_task_unref(L, host.script);

  /* closing: loom's handles close on our loop, so run it once more */
  lua_close(L);
  uv_close((uv_handle_t *)&host.heartbeat, NULL);
  uv_run(&host.loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&host.loop) == 0) {
    printf("host: the loop closed cleanly\n");
  } else {
    fprintf(stderr, "host: handles left on the loop\n");
    status = EXIT_FAILURE;
  }
  return status;
}
