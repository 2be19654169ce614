/*
** tcp.c: the C side of loom.tcp (lib/loom/tcp.lua is the rest):
** connect(host, port [, opts]) giving a loom.Stream, and listen(host,
** port, handler, opts) giving a loom.Server with accept, wait, close,
** port and host. The Lua side runs a task that accepts connections and
** spawns the handler for each, since a libuv callback may not spawn.
**
** A connect is a loom__netop (dns.h): the lookup (none for an IP
** address), then each address in turn until one connects, all under the
** timeout. A server is malloc'd (lserver) like a stream: freed once its
** handle is closed and no userdata refers to it.
*/
#include <stdlib.h>
#include <string.h>

#include "dns.h"

int loom__dns_family(lua_State *L, int opts, const char *fname);

/* ---- connect -------------------------------------------------------- */

static void set_name(char *out, size_t n, const struct sockaddr *a) {
  char ip[64];
  int port;
  if (a->sa_family == AF_INET6) {
    uv_ip6_name((const struct sockaddr_in6 *)a, ip, sizeof ip);
    port = ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
    snprintf(out, n, "tcp [%s]:%d", ip, port);
  } else {
    uv_ip4_name((const struct sockaddr_in *)a, ip, sizeof ip);
    port = ntohs(((const struct sockaddr_in *)a)->sin_port);
    snprintf(out, n, "tcp %s:%d", ip, port);
  }
}

static int connect_next(lua_State *L, loom__netop *op, int last);

static void on_connect(uv_connect_t *req, int status) {
  loom__netop *op = (loom__netop *)((char *)req - offsetof(loom__netop,
                                                           conn));
  if (status != 0 && op->s != NULL) {
    loom__stream_discard(op->s);
    op->s = NULL;
  }
  loom__netop_step_done(op, status);
}

static int connect_k(lua_State *L, int status, lua_KContext ctx) {
  loom__netop *op = (loom__netop *)ctx;
  (void)status;
  loom__resumed(L, loom__up(L));  /* cancelled: the hook let go */
  int st = loom__netop_check(L, op);
  if (st != 0) return connect_next(L, op, st);
  lstream *s = op->s;
  char name[80];
  op->s = NULL;
  set_name(name, sizeof name,
           (const struct sockaddr *)&op->addrs[op->next - 1]);
  if (op->nodelay)
    uv_tcp_nodelay((uv_tcp_t *)loom__stream_handle(s), 1);
  loom__netop_let_go(op);
  loom__stream_push(L, s, 1, 1, name + 4);
  return 1;
}

/* Tries the next address, or raises the last error. */
static int connect_next(lua_State *L, loom__netop *op, int last) {
  while (op->next < op->naddrs) {
    const struct sockaddr *a = (const struct sockaddr *)
                               &op->addrs[op->next++];
    int err;
    lstream *s = loom__stream_alloc(op->io, LOOM_STREAM_TCP, &err);
    if (s == NULL) {
      last = err;
      continue;
    }
    err = uv_tcp_connect(&op->conn, (uv_tcp_t *)loom__stream_handle(s), a,
                         on_connect);
    if (err != 0) {
      loom__stream_discard(s);
      last = err;
      continue;
    }
    op->s = s;
    return loom__netop_suspend(L, op, NETOP_CONNECT, connect_k);
  }
  const char *fname = op->fname;
  lua_pushfstring(L, "%s:%d", op->host, op->port);
  loom__netop_let_go(op);
  return loom__io_error(L, fname, last, "address", lua_tostring(L, -1));
}

static int resolved_k(lua_State *L, int status, lua_KContext ctx) {
  loom__netop *op = (loom__netop *)ctx;
  (void)status;
  loom__resumed(L, loom__up(L));
  int st = loom__netop_check(L, op);
  if (st != 0) return loom__netop_raise(L, op, st);
  op->next = 0;
  return connect_next(L, op, UV_ECONNREFUSED);
}

static const char *checkhost(lua_State *L, int idx) {
  size_t len;
  if (lua_type(L, idx) != LUA_TSTRING) luaL_typeerror(L, idx, "string");
  const char *host = lua_tolstring(L, idx, &len);
  if (len == 0 || strlen(host) != len)
    luaL_argerror(L, idx, "host must be a non-empty name or address");
  return host;
}

static int checkport(lua_State *L, int idx) {
  lua_Integer port = luaL_checkinteger(L, idx);
  luaL_argcheck(L, port >= 0 && port <= 65535, idx,
                "port must be from 0 to 65535");
  return (int)port;
}

static int l_connect(lua_State *L) {
  const char *host = checkhost(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  luaL_argcheck(L, port >= 1 && port <= 65535, 2,
                "port must be from 1 to 65535");
  double ms = loom__io_opttimeout_field(L, 3, "connect");
  int family = loom__dns_family(L, 3, "connect"), nodelay = 1;
  if (loom__io_optfield(L, 3, "nodelay", "connect") != LUA_TNIL)
    nodelay = lua_toboolean(L, -1);
  lua_pop(L, 1);
  loom__stream_open_type(L, loom__io_get(L));
  loom__netop *op = loom__netop_new(L, "connect", host, (int)port, ms);
  op->family = family;
  op->nodelay = (uint8_t)nodelay;
  return loom__netop_resolve(L, op, resolved_k);
}

/* ---- servers -------------------------------------------------------- */

typedef struct lserver {
  uv_tcp_t tcp;           /* first: the handle is the server */
  loom_t *lm;
  loom__io *io;
  loom__closer closer;
  uint8_t closing, closed, wrapped, awaiting;
  int pending;            /* connections libuv has ready to accept */
  int err;                /* an accept error, raised by the next accept */
  loom_task_t *acceptor;  /* the task inside accept() */
  loom__link waiters;     /* tasks in wait() */
  char name[80];
  int port;
} lserver;

typedef struct server_ud {
  uint32_t tag;           /* LOOM_SERVER_TAG */
  lserver *s;
} server_ud;

static void on_server_closed(uv_handle_t *h) {
  lserver *s = (lserver *)h;
  s->closed = 1;
  loom__io_count(s->lm, &s->io->handles, -1);
  if (!s->wrapped) free(s);
}

static void server_close(lserver *s, int wake) {
  if (s->closing) return;
  s->closing = 1;
  loom__remove_closer(&s->closer);
  if (wake) {
    if (s->acceptor != NULL && s->awaiting) {
      s->awaiting = 0;
      loom__wake(s->acceptor);
    }
    loom__list_fire(&s->waiters, 0);
  }
  loom__close_handle(s->lm, (uv_handle_t *)&s->tcp, on_server_closed);
}

static void server_close_with_runtime(loom_t *lm, loom__closer *c) {
  (void)lm;
  server_close((lserver *)((char *)c - offsetof(lserver, closer)), 0);
}

static void on_connection(uv_stream_t *h, int status) {
  lserver *s = (lserver *)h;
  if (status < 0) s->err = status;
  else s->pending++;
  if (s->acceptor != NULL && s->awaiting) {
    s->awaiting = 0;
    loom__wake(s->acceptor);
  }
}

static lserver *checkserver(lua_State *L) {
  server_ud *u = loom__type_check(L, &loom__io_get(L)->server_type,
                                  LOOM_SERVER_TAG);
  return u->s;
}

/* Accepts the connection libuv has ready and pushes its stream. */
static int do_accept(lua_State *L, lserver *s) {
  int err;
  s->pending--;
  lstream *c = loom__stream_alloc(s->io, LOOM_STREAM_TCP, &err);
  if (c == NULL) return loom__io_error(L, "accept", err, NULL, NULL);
  uv_stream_t *h = loom__stream_handle(c);
  err = uv_accept((uv_stream_t *)&s->tcp, h);
  if (err != 0) {
    loom__stream_discard(c);
    return loom__io_error(L, "accept", err, NULL, NULL);
  }
  uv_tcp_nodelay((uv_tcp_t *)h, 1);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  char name[80] = "tcp ?";
  if (uv_tcp_getpeername((uv_tcp_t *)h, (struct sockaddr *)&ss, &len) == 0)
    set_name(name, sizeof name, (struct sockaddr *)&ss);
  loom__stream_push(L, c, 1, 1, name + 4);
  return 1;
}

static int accept_ready(lua_State *L, lserver *s) {
  if (s->closing) {
    lua_pushnil(L);
    return 1;
  }
  if (s->err != 0) {
    int e = s->err;
    s->err = 0;
    return loom__io_error(L, "accept", e, NULL, NULL);
  }
  if (s->pending > 0) return do_accept(L, s);
  return 0;
}

static void accept_cancel(loom_task_t *t, void *data, int woken) {
  lserver *s = data;
  (void)t; (void)woken;
  s->acceptor = NULL;
  s->awaiting = 0;
}

static const loom__wait accept_wait = { "accept", accept_cancel, NULL };

static int accept_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  loom__resumed(L, loom__up(L));
  server_ud *u = lua_touserdata(L, 1);
  lserver *s = u->s;
  s->acceptor = NULL;
  if (accept_ready(L, s)) return 1;
  lua_pushnil(L);  /* woken for nothing: cannot happen */
  return 1;
}

/* server:accept(): the next connection's stream, or nil once closed. */
static int srv_accept(lua_State *L) {
  lserver *s = checkserver(L);
  lua_settop(L, 1);
  if (s->acceptor != NULL)
    return loom__io_error2(L, "accept", "EBUSY", "another task is "
                           "accepting on this server", NULL, NULL);
  if (accept_ready(L, s)) return 1;
  loom_t *lm = loom__up(L);
  s->acceptor = loom__prepare_suspend(L, lm, "accept");
  s->awaiting = 1;
  return loom__suspend(L, lm, &accept_wait, s, 0, accept_k);
}

static int srv_close(lua_State *L) {
  server_close(checkserver(L), 1);
  return 0;
}

static const loom__wait closed_wait = { "a server to close",
                                        loom__list_cancel, NULL };

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  loom__resumed(L, loom__up(L));
  return 0;
}

/* server:wait(): until the server is closed. */
static int srv_wait(lua_State *L) {
  lserver *s = checkserver(L);
  if (s->closing) return 0;
  loom_t *lm = loom__up(L);
  loom__prepare_suspend(L, lm, "wait");
  return loom__wait_in_list(L, lm, &s->waiters, &closed_wait, s, 0,
                            wait_k);
}

static int srv_gc(lua_State *L) {
  server_ud *u = lua_touserdata(L, 1);
  lserver *s = u->s;
  if (s == NULL) return 0;
  u->s = NULL;
  s->wrapped = 0;
  if (!s->closing) server_close(s, 0);
  else if (s->closed) free(s);
  return 0;
}

static int srv_tostring(lua_State *L) {
  lserver *s = checkserver(L);
  lua_pushfstring(L, "loom.Server: %p (%s%s)", (void *)s, s->name,
                  s->closing ? ", closed" : "");
  return 1;
}

static int srv_index(lua_State *L) {
  lserver *s = checkserver(L);
  const char *k = lua_tostring(L, 2);
  if (k != NULL && lua_type(L, 2) == LUA_TSTRING) {
    if (strcmp(k, "port") == 0) {
      lua_pushinteger(L, s->port);
      return 1;
    }
    if (strcmp(k, "host") == 0) {
      const char *h = s->name + 4;  /* "tcp host:port" */
      const char *colon = strrchr(h, ':');
      if (*h == '[') h++, colon--;
      lua_pushlstring(L, h, (size_t)(colon - h));
      return 1;
    }
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(2));  /* the methods */
  return 1;
}

/* Binds and listens on the first address that takes it; pushes the
** server. */
static int bind_listen(lua_State *L, struct sockaddr_storage *addrs, int n,
                       int backlog, const char *what) {
  loom__io *io = loom__io_get(L);
  int err = UV_EADDRNOTAVAIL;
  for (int i = 0; i < n; i++) {
    lserver *s = calloc(1, sizeof *s);
    if (s == NULL) return luaL_error(L, "listen: not enough memory");
    err = uv_tcp_init(loom_loop(io->lm), &s->tcp);
    if (err != 0) {
      free(s);
      continue;
    }
    s->lm = io->lm;
    s->io = io;
    loom__list_init(&s->waiters);
    s->closer.close = server_close_with_runtime;
    loom__add_closer(io->lm, &s->closer);
    io->handles++;
    err = uv_tcp_bind(&s->tcp, (struct sockaddr *)&addrs[i], 0);
    if (err == 0)
      err = uv_listen((uv_stream_t *)&s->tcp, backlog, on_connection);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (err == 0)
      err = uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &len);
    if (err != 0) {
      server_close(s, 0);
      continue;
    }
    set_name(s->name, sizeof s->name, (struct sockaddr *)&ss);
    s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    server_ud *u = loom__type_new(L, &io->server_type, 0, LOOM_SERVER_TAG);
    u->s = s;
    s->wrapped = 1;
    return 1;
  }
  return loom__io_error(L, "listen", err, "address", what);
}

static int backlog_of(lua_State *L, int opts) {
  int backlog = 511;
  if (loom__io_optfield(L, opts, "backlog", "listen") != LUA_TNIL) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 ||
        lua_tointeger(L, -1) > 65535)
      luaL_argerror(L, opts, "backlog must be an integer from 0 to 65535");
    backlog = (int)lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  return backlog;
}

static int listen_k(lua_State *L, int status, lua_KContext ctx) {
  loom__netop *op = (loom__netop *)ctx;
  (void)status;
  loom__resumed(L, loom__up(L));
  int st = loom__netop_check(L, op);
  if (st != 0) return loom__netop_raise(L, op, st);
  lua_pushfstring(L, "%s:%d", op->host, op->port);
  int backlog = backlog_of(L, 4);
  /* the op goes once the server is made, or the error raised */
  struct sockaddr_storage addrs[8];
  int n = op->naddrs < 8 ? op->naddrs : 8;
  memcpy(addrs, op->addrs, (size_t)n * sizeof *addrs);
  loom__netop_let_go(op);
  return bind_listen(L, addrs, n, backlog, lua_tostring(L, -1));
}

/* listen(host, port, handler, opts): the handler is lib/loom/tcp.lua's
** business; here it is only checked. */
static int l_listen(lua_State *L) {
  const char *host = checkhost(L, 1);
  int port = checkport(L, 2);
  if (!lua_isnoneornil(L, 3)) loom__checkcallable(L, 3);
  int backlog = backlog_of(L, 4);
  double ms = loom__io_opttimeout_field(L, 4, "listen");
  int family = loom__dns_family(L, 4, "listen");
  loom__io *io = loom__io_get(L);
  loom__stream_open_type(L, io);
  lua_settop(L, 4);
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  if (family != AF_INET6 &&
      uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0) {
    return bind_listen(L, &ss, 1, backlog, host);
  }
  if (family != AF_INET &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0) {
    return bind_listen(L, &ss, 1, backlog, host);
  }
  loom__netop *op = loom__netop_new(L, "listen", host, port, ms);
  op->family = family;
  return loom__netop_resolve(L, op, listen_k);
}

static void open_server_type(lua_State *L, loom__io *io) {
  static const luaL_Reg methods[] = {
    {"accept", srv_accept}, {"close", srv_close}, {"wait", srv_wait},
    {NULL, NULL}
  };
  static const luaL_Reg metamethods[] = {
    {"__gc", srv_gc}, {"__close", srv_close}, {"__tostring", srv_tostring},
    {NULL, NULL}
  };
  loom__io_type(L, &io->server_type, "loom.Server", sizeof(server_ud),
                metamethods, methods, srv_index);
}

int luaopen_loom_tcp(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"connect", l_connect}, {"listen", l_listen}, {NULL, NULL}
  };
  if (loom_get(L) == NULL)
    return luaL_error(L, "loom.tcp: require \"loom\" first");
  loom__io *io = loom__io_of(L);
  loom__stream_open_type(L, io);
  open_server_type(L, io);
  lua_createtable(L, 0, 2);
  loom__setfuncs(L, fns);
  return 1;
}
