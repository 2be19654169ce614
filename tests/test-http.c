/*
** test-http.c: loom.http on a host's loop. Whatever HTTP left on the
** loop (a request in flight, a stream paused mid-body, an idle kept-alive
** connection in the pool, curl's timer) is closed by lua_close: the host
** runs its loop once more and uv_loop_close succeeds. An idle pool does
** not keep loom_run from returning either. The servers are threads with
** blocking sockets on 127.0.0.1, not handles of the loop under test.
*/
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "test.h"

/* ---- a server thread ------------------------------------------------ */

typedef struct server {
  int fd, port;
  int answer;          /* 0: never answer; else the body size to send */
  uv_thread_t thread;
} server;

typedef struct conn {
  int fd, answer;
} conn;

/* One connection: each read is taken for one request and answered (or,
** with answer 0, never); the connection stays open until the client goes,
** as a kept-alive one does. */
static void serve_conn(void *arg) {
  conn *c = arg;
  static char body[1 << 16];
  char buf[4096], head[128];
  memset(body, 'b', sizeof body);
  while (read(c->fd, buf, sizeof buf) > 0) {
    if (c->answer == 0) continue;
    int n = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\n"
                     "Content-Length: %d\r\n\r\n", c->answer);
    if (write(c->fd, head, (size_t)n) != n) break;
    for (int left = c->answer; left > 0;) {
      int k = left < (int)sizeof body ? left : (int)sizeof body;
      ssize_t w = write(c->fd, body, (size_t)k);
      if (w <= 0) break;
      left -= (int)w;
    }
  }
  close(c->fd);
  free(c);
}

static void serve(void *arg) {
  server *sv = arg;
  for (;;) {
    int fd = accept(sv->fd, NULL, NULL);
    if (fd < 0) return;  /* closed: the test is over */
    conn *c = malloc(sizeof *c);
    ASSERT(c != NULL);
    c->fd = fd;
    c->answer = sv->answer;
    uv_thread_t t;
    ASSERT_INT_EQ(uv_thread_create(&t, serve_conn, c), 0);
  }
}

static void server_start(server *sv, int answer) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sv->fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT(sv->fd >= 0);
  ASSERT_INT_EQ(bind(sv->fd, (struct sockaddr *)&a, sizeof a), 0);
  ASSERT_INT_EQ(listen(sv->fd, 16), 0);
  ASSERT_INT_EQ(getsockname(sv->fd, (struct sockaddr *)&a, &len), 0);
  sv->port = ntohs(a.sin_port);
  sv->answer = answer;
  ASSERT_INT_EQ(uv_thread_create(&sv->thread, serve, sv), 0);
}

static void server_stop(server *sv) {
  shutdown(sv->fd, SHUT_RDWR);  /* wakes accept */
  close(sv->fd);
  /* the thread may be reading a connection the client left open: it
  ** ends with the process, it owns nothing of the loop */
}

/* ---- helpers -------------------------------------------------------- */

static void set_url(lua_State *L, int port, const char *path) {
  lua_pushfstring(L, "http://127.0.0.1:%d%s", port, path);
  lua_setglobal(L, "URL");
}

/* Runs the host's loop until the Lua global 'ready' is true (or 5 s). */
static void run_until_ready(lua_State *L, uv_loop_t *loop) {
  double t0 = test_ms();
  for (;;) {
    lua_getglobal(L, "ready");
    int ready = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (ready) return;
    ASSERT(test_ms() - t0 < 5000);
    uv_run(loop, UV_RUN_ONCE);
  }
}

static void close_all(lua_State *L, uv_loop_t *loop) {
  lua_close(L);
  ASSERT_INT_EQ(uv_run(loop, UV_RUN_DEFAULT), 0);
  ASSERT_INT_EQ(uv_loop_close(loop), 0);
}

/* ---- tests ---------------------------------------------------------- */

/* A request never answered is in flight when the state closes. */
static void test_close_with_request_in_flight(void) {
  uv_loop_t loop;
  server sv;
  ASSERT_INT_EQ(uv_loop_init(&loop), 0);
  server_start(&sv, 0);
  lua_State *L = test_newloom(&loop, NULL);
  set_url(L, sv.port, "/never");
  TEST_DO(L,
    "function main()\n"
    "  spawn(function() ready = true; return loom.http.get(URL) end)\n"
    "  spawn(function() ready = true; return loom.http.get(URL) end)\n"
    "  sleep(0.05)\n"
    "end\n");
  TEST_SPAWN(L, "main");
  lua_pop(L, 1);
  run_until_ready(L, &loop);
  for (int i = 0; i < 20; i++) uv_run(&loop, UV_RUN_NOWAIT);
  close_all(L, &loop);
  server_stop(&sv);
}

/* After a request, its connection waits in the pool: loom_run returns
** (an idle pool is no work), and lua_close closes it. */
static void test_idle_pool_is_no_work(void) {
  uv_loop_t loop;
  server sv;
  int n;
  ASSERT_INT_EQ(uv_loop_init(&loop), 0);
  server_start(&sv, 2);
  lua_State *L = test_newloom(&loop, NULL);
  set_url(L, sv.port, "/ok");
  TEST_DO(L,
    "function main()\n"
    "  local a = loom.http.get(URL)\n"
    "  local b = loom.http.get(URL)\n"
    "  local s = loom.http.session()\n"
    "  local c = s:get(URL)\n"
    "  return a.status + b.status + c.status, #a.body\n"
    "end\n");
  TEST_SPAWN(L, "main");
  double t0 = test_ms();
  ASSERT_INT_EQ(loom_run(L, &n), 0);
  ASSERT(test_ms() - t0 < 5000);
  ASSERT_INT_EQ(n, 2);
  ASSERT_INT_EQ(lua_tointeger(L, -2), 600);
  ASSERT_INT_EQ(lua_tointeger(L, -1), 2);
  lua_settop(L, 0);
  close_all(L, &loop);
  server_stop(&sv);
}

/* A stream paused mid-body (its reader stopped reading) at close. */
static void test_close_with_paused_stream(void) {
  uv_loop_t loop;
  server sv;
  ASSERT_INT_EQ(uv_loop_init(&loop), 0);
  server_start(&sv, 64 << 20);
  lua_State *L = test_newloom(&loop, NULL);
  set_url(L, sv.port, "/big");
  TEST_DO(L,
    "function main()\n"
    "  res = loom.http.get(URL, { stream = true })\n"
    "  assert(#res:chunks()() > 0)\n"
    "  sleep(0.1)\n"
    "  ready = true\n"
    "end\n");
  TEST_SPAWN(L, "main");
  lua_pop(L, 1);
  run_until_ready(L, &loop);
  close_all(L, &loop);
  server_stop(&sv);
}

/* A session closed by hand, then collected, with the state closing after:
** each piece is let go of once. */
static void test_session_closed_then_collected(void) {
  uv_loop_t loop;
  server sv;
  int n;
  ASSERT_INT_EQ(uv_loop_init(&loop), 0);
  server_start(&sv, 2);
  lua_State *L = test_newloom(&loop, NULL);
  set_url(L, sv.port, "/ok");
  TEST_DO(L,
    "function main()\n"
    "  local s = loom.http.session()\n"
    "  local st = s:get(URL).status\n"
    "  s:close()\n"
    "  s = nil\n"
    "  collectgarbage() collectgarbage()\n"
    "  return st\n"
    "end\n");
  TEST_SPAWN(L, "main");
  ASSERT_INT_EQ(loom_run(L, &n), 0);
  ASSERT_INT_EQ(lua_tointeger(L, -1), 200);
  lua_settop(L, 0);
  close_all(L, &loop);
  server_stop(&sv);
}

int main(int argc, char **argv) {
  static const test_case cases[] = {
    TEST_CASE(test_close_with_request_in_flight),
    TEST_CASE(test_idle_pool_is_no_work),
    TEST_CASE(test_close_with_paused_stream),
    TEST_CASE(test_session_closed_then_collected),
    { NULL, NULL }
  };
  return test_main(cases, argc, argv);
}
