/*
** dns.h: the network operation that loom.dns and loom.tcp share
** (bindings/dns.c): a request that resolves a host (getaddrinfo on the
** thread pool, or at once for an IP address), then, for tcp.c, connects,
** under one deadline, and outlives its task if the task is cancelled.
**
** Ownership: the task side owns it (owned) until its continuation or its
** cancel hook lets go (loom__netop_let_go); libuv owns it while a callback
** is pending. It is freed when both are done. A cancel or the deadline
** aborts what is in flight (uv_cancel of the lookup; closing the socket
** being connected), whose callbacks then only free.
*/
#ifndef LOOM_DNS_H
#define LOOM_DNS_H

#include <netinet/in.h>
#include <sys/socket.h>

#include "stream.h"

typedef struct loom__netop loom__netop;

enum { NETOP_IDLE, NETOP_LOOKUP, NETOP_CONNECT };
struct loom__netop {
  loom_t *lm;
  loom__io *io;
  loom_task_t *task;
  const char *fname;
  uint8_t owned, pending, woken, timedout;
  uint8_t stage;                /* what is in flight: NETOP_* */
  int status;                   /* the last step's libuv status */
  uv_getaddrinfo_t gai;
  struct sockaddr_storage *addrs;  /* what the lookup found */
  int naddrs;
  int family;                   /* AF_UNSPEC, AF_INET or AF_INET6 */
  int port;
  loom__waiter timer;
  void *timer_h;
  /* tcp.c's connect: the socket being connected, the next address */
  uv_connect_t conn;
  lstream *s;
  int next;
  uint8_t nodelay;
  loom__closer closer;          /* frees it if the runtime closes first */
  char host[256];
};

/* A new operation of function fname for the running task (call it after
** loom__prepare_suspend), with a deadline of timeout_ms from now (< 0:
** none). Raises on a host name too long or out of memory. */
loom__netop *loom__netop_new(lua_State *L, const char *fname,
                             const char *host, int port, double timeout_ms);
/* Looks host up; continues in k(L, status, (lua_KContext)op), at once for
** an IP address. Use as 'return loom__netop_resolve(L, op, k)'. */
int loom__netop_resolve(lua_State *L, loom__netop *op, lua_KFunction k);
/* Suspends the task on op: a step (stage NETOP_LOOKUP or NETOP_CONNECT)
** is in flight and will wake it. */
int loom__netop_suspend(lua_State *L, loom__netop *op, int stage,
                        lua_KFunction k);
/* In a continuation, after loom__resumed: raises ETIMEDOUT if the deadline
** passed (letting go of op), else returns op->status. */
int loom__netop_check(lua_State *L, loom__netop *op);
/* From a libuv callback: the step is over with status; wakes the task,
** or frees op if nobody holds it. Returns 1 if op is gone. */
int loom__netop_step_done(loom__netop *op, int status);
/* The task side lets go (continuation done, or an error raised next). */
void loom__netop_let_go(loom__netop *op);
/* Raises the lookup's error for op (letting go of it). */
int loom__netop_raise(lua_State *L, loom__netop *op, int status);

#endif
