/*
** dns.c: loom.dns.resolve(host [, opts]), getaddrinfo on libuv's thread
** pool, giving a list of addresses; and the network operation it shares
** with loom.tcp (see dns.h): a lookup, then maybe a connect, under one
** deadline, that outlives a cancelled task.
*/
#include <stdlib.h>
#include <string.h>

#include "dns.h"

/* ---- the operation -------------------------------------------------- */

static void op_free(loom__netop *op) {
  loom__remove_closer(&op->closer);
  if (op->s != NULL) loom__stream_discard(op->s);
  free(op->addrs);
  free(op);
}

/* Stops the step in flight (once); its callback comes, and then only
** frees. */
static void op_abort(loom__netop *op) {
  int stage = op->pending ? op->stage : NETOP_IDLE;
  op->stage = NETOP_IDLE;
  if (stage == NETOP_CONNECT && op->s != NULL) {
    loom__stream_discard(op->s);  /* closing the socket cancels it */
    op->s = NULL;
  } else if (stage == NETOP_LOOKUP) {
    uv_cancel((uv_req_t *)&op->gai);  /* if it has not started */
  }
}

void loom__netop_let_go(loom__netop *op) {
  op->owned = 0;
  if (op->timer_h != NULL) {
    loom__deadline_cancel(op->lm, &op->timer, op->timer_h);
    op->timer_h = NULL;
  }
  if (op->pending) op_abort(op);
  else op_free(op);
}

static void op_cancel(loom_task_t *t, void *data, int woken) {
  (void)t; (void)woken;
  loom__netop_let_go(data);
}

static void describe(lua_State *L, loom_task_t *t, void *data) {
  loom__netop *op = data;
  (void)t;
  lua_pushfstring(L, " (%s %s)", op->fname, op->host);
}

static const loom__wait net_wait = { "the network", op_cancel, describe };

static void on_timeout(loom__waiter *w, int failed) {
  loom__netop *op = (loom__netop *)((char *)w - offsetof(loom__netop,
                                                         timer));
  (void)failed;
  op->timer_h = NULL;
  op->timedout = 1;
  if (op->owned && op->pending && !op->woken) {
    op->woken = 1;
    op_abort(op);
    loom__wake(op->task);
  }
}

/* The runtime closes first: a step in flight frees op in its callback. */
static void op_close(loom_t *lm, loom__closer *c) {
  loom__netop *op = (loom__netop *)((char *)c - offsetof(loom__netop,
                                                         closer));
  (void)lm;
  op->owned = 0;
  if (op->timer_h != NULL) {
    loom__deadline_cancel(op->lm, &op->timer, op->timer_h);
    op->timer_h = NULL;
  }
  if (!op->pending) op_free(op);
}

loom__netop *loom__netop_new(lua_State *L, const char *fname,
                             const char *host, int port, double timeout_ms) {
  loom__io *io = loom__io_get(L);
  size_t len = strlen(host);
  if (len >= sizeof ((loom__netop *)0)->host)
    luaL_error(L, "%s: host name too long", fname);
  loom_task_t *t = loom__prepare_suspend(L, io->lm, fname);
  loom__netop *op = calloc(1, sizeof *op);
  if (op == NULL) luaL_error(L, "%s: not enough memory", fname);
  op->lm = io->lm;
  op->io = io;
  op->task = t;
  op->fname = fname;
  op->owned = 1;
  op->port = port;
  op->family = AF_UNSPEC;
  memcpy(op->host, host, len + 1);
  op->closer.close = op_close;
  loom__add_closer(io->lm, &op->closer);
  if (timeout_ms >= 0) {
    op->timer.fire = on_timeout;
    op->timer_h = loom__deadline_start(io->lm, &op->timer, timeout_ms);
  }
  return op;
}

int loom__netop_step_done(loom__netop *op, int status) {
  loom_t *lm = op->lm;
  op->pending = 0;
  op->stage = NETOP_IDLE;
  loom__io_count(lm, &op->io->requests, -1);
  if (!op->owned || loom__closed(lm)) {
    op_free(op);
    loom__release(lm);
    return 1;
  }
  op->status = status;
  if (!op->woken) {
    op->woken = 1;
    loom__wake(op->task);
  }
  loom__release(lm);
  return 0;
}

int loom__netop_suspend(lua_State *L, loom__netop *op, int stage,
                        lua_KFunction k) {
  op->pending = 1;
  op->stage = (uint8_t)stage;
  op->woken = 0;
  loom__hold(op->lm);
  op->io->requests++;
  return loom__suspend(L, op->lm, &net_wait, op, (lua_KContext)op, k);
}

int loom__netop_check(lua_State *L, loom__netop *op) {
  if (op->timedout) {
    const char *fname = op->fname;
    lua_pushfstring(L, "%s:%d", op->host, op->port);
    loom__netop_let_go(op);
    return loom__io_error2(L, fname, "ETIMEDOUT", "timed out", "address",
                           lua_tostring(L, -1));
  }
  return op->status;
}

int loom__netop_raise(lua_State *L, loom__netop *op, int status) {
  const char *fname = op->fname;
  lua_pushstring(L, op->host);
  loom__netop_let_go(op);
  return loom__io_error(L, fname, status, "host", lua_tostring(L, -1));
}

/* ---- resolving ------------------------------------------------------ */

static void set_port(struct sockaddr_storage *ss, int port) {
  if (ss->ss_family == AF_INET)
    ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
  else
    ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

static void on_gai(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  loom__netop *op = (loom__netop *)((char *)req - offsetof(loom__netop,
                                                           gai));
  if (status == 0 && op->owned && !loom__closed(op->lm)) {
    int n = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) n++;
    op->addrs = calloc(n ? (size_t)n : 1, sizeof *op->addrs);
    if (op->addrs == NULL) status = UV_ENOMEM;
    for (struct addrinfo *a = res; a && op->addrs; a = a->ai_next) {
      if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
          a->ai_addrlen > sizeof *op->addrs)
        continue;
      memcpy(&op->addrs[op->naddrs], a->ai_addr, a->ai_addrlen);
      set_port(&op->addrs[op->naddrs], op->port);
      op->naddrs++;
    }
    if (status == 0 && op->naddrs == 0) status = UV_EAI_NODATA;
  }
  if (res != NULL) uv_freeaddrinfo(res);
  loom__netop_step_done(op, status);
}

/* An IP address needs no lookup: one address, at once. */
static int numeric(loom__netop *op) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  char buf[sizeof op->host];
  const char *h = op->host;
  size_t len = strlen(h);
  if (len > 2 && h[0] == '[' && h[len - 1] == ']') {  /* "[::1]" */
    memcpy(buf, h + 1, len - 2);
    buf[len - 2] = '\0';
    h = buf;
  }
  if (op->family != AF_INET6 &&
      uv_inet_pton(AF_INET, h, &((struct sockaddr_in *)&ss)->sin_addr) == 0)
    ss.ss_family = AF_INET;
  else if (op->family != AF_INET &&
           uv_inet_pton(AF_INET6, h,
                        &((struct sockaddr_in6 *)&ss)->sin6_addr) == 0)
    ss.ss_family = AF_INET6;
  else
    return 0;
  op->addrs = malloc(sizeof *op->addrs);
  if (op->addrs == NULL) return 0;  /* the lookup will say it */
  set_port(&ss, op->port);
  op->addrs[0] = ss;
  op->naddrs = 1;
  return 1;
}

int loom__netop_resolve(lua_State *L, loom__netop *op, lua_KFunction k) {
  if (numeric(op)) {
    op->status = 0;
    return k(L, LUA_OK, (lua_KContext)op);
  }
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = op->family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  int r = uv_getaddrinfo(loom_loop(op->lm), &op->gai, on_gai, op->host,
                         NULL, &hints);
  if (r != 0) return loom__netop_raise(L, op, r);
  return loom__netop_suspend(L, op, NETOP_LOOKUP, k);
}

/* ---- loom.dns.resolve ----------------------------------------------- */

static int resolve_k(lua_State *L, int status, lua_KContext ctx) {
  loom__netop *op = (loom__netop *)ctx;
  (void)status;
  loom__resumed(L, loom__up(L));  /* cancelled: the hook let go */
  int st = loom__netop_check(L, op);
  if (st != 0) return loom__netop_raise(L, op, st);
  lua_createtable(L, op->naddrs, 0);
  int n = 0;
  for (int i = 0; i < op->naddrs; i++) {
    char ip[64];
    struct sockaddr_storage *ss = &op->addrs[i];
    if (ss->ss_family == AF_INET)
      uv_ip4_name((struct sockaddr_in *)ss, ip, sizeof ip);
    else
      uv_ip6_name((struct sockaddr_in6 *)ss, ip, sizeof ip);
    int dup = 0;  /* one entry per address, in the resolver's order */
    for (int j = 1; j <= n && !dup; j++) {
      lua_rawgeti(L, -1, j);
      dup = strcmp(lua_tostring(L, -1), ip) == 0;
      lua_pop(L, 1);
    }
    if (dup) continue;
    lua_pushstring(L, ip);
    lua_rawseti(L, -2, ++n);
  }
  loom__netop_let_go(op);
  return 1;
}

/* The family option: "inet" (or 4), "inet6" (or 6), or nil. */
int loom__dns_family(lua_State *L, int opts, const char *fname);
int loom__dns_family(lua_State *L, int opts, const char *fname) {
  int t = loom__io_optfield(L, opts, "family", fname), family = AF_UNSPEC;
  if (t == LUA_TNUMBER && lua_tointeger(L, -1) == 4) family = AF_INET;
  else if (t == LUA_TNUMBER && lua_tointeger(L, -1) == 6) family = AF_INET6;
  else if (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "inet") == 0)
    family = AF_INET;
  else if (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "inet6") == 0)
    family = AF_INET6;
  else if (t != LUA_TNIL)
    luaL_argerror(L, opts, "family must be \"inet\" or \"inet6\"");
  lua_pop(L, 1);
  return family;
}

static int l_resolve(lua_State *L) {
  size_t len;
  if (lua_type(L, 1) != LUA_TSTRING) luaL_typeerror(L, 1, "string");
  const char *host = lua_tolstring(L, 1, &len);
  if (len == 0 || strlen(host) != len)
    return luaL_argerror(L, 1, "host must be a non-empty name");
  int family = loom__dns_family(L, 2, "resolve");
  double ms = loom__io_opttimeout_field(L, 2, "resolve");
  loom__netop *op = loom__netop_new(L, "resolve", host, 0, ms);
  op->family = family;
  return loom__netop_resolve(L, op, resolve_k);
}

int luaopen_loom_dns(lua_State *L) {
  static const luaL_Reg fns[] = { {"resolve", l_resolve}, {NULL, NULL} };
  if (loom_get(L) == NULL)
    return luaL_error(L, "loom.dns: require \"loom\" first");
  lua_createtable(L, 0, 1);
  loom__setfuncs(L, fns);
  return 1;
}
