/*
** fake_resolver.c: a getaddrinfo for the HTTP specs, put in front of
** libc's with LD_PRELOAD (spec/support/http.lua compiles it), so DNS
** behaviour can be tested with no DNS traffic at all:
**   *.never  never answers (the calling thread sleeps 60 s): a resolver
**            that does not respond
**   *.fail   fails at once (EAI_NONAME): a name that does not exist
**   *.slow   answers 127.0.0.1 after 0.3 s
** Every other name goes to libc's getaddrinfo.
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <string.h>
#include <unistd.h>

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *,
                      struct addrinfo **);

static int ends_with(const char *s, const char *tail) {
  size_t n = strlen(s), m = strlen(tail);
  return n >= m && strcmp(s + n - m, tail) == 0;
}

int getaddrinfo(const char *node, const char *service,
                const struct addrinfo *hints, struct addrinfo **res) {
  gai_fn real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
  if (node != NULL) {
    if (ends_with(node, ".never")) {
      sleep(60);
      return EAI_AGAIN;
    }
    if (ends_with(node, ".fail")) return EAI_NONAME;
    if (ends_with(node, ".slow")) {
      usleep(300000);
      node = "127.0.0.1";
    }
  }
  return real(node, service, hints, res);
}
