/*
** bench/post.c: loom_post throughput. T threads each post N no-op
** functions to one runtime on its own loop (each thread holds the runtime
** while it posts); the loop thread runs them in batches. Prints posts per
** second, from the first post to the last one run.
**   build: cmake --build build --target bench_post
**   usage: build/bench_post [threads [posts per thread]]
*/
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lualib.h>

#include "loom.h"

static long ran;
static loom_t *lm;
static int per_thread;

static void count(loom_t *l, void *ud) {
  (void)l; (void)ud;
  ran++;
}

static void poster(void *arg) {
  (void)arg;
  for (int i = 0; i < per_thread; i++)
    if (loom_post(lm, count, NULL) != 0) abort();
  loom_release(lm);
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 4;
  per_thread = argc > 2 ? atoi(argv[2]) : 250000;
  if (threads < 1 || threads > 64 || per_thread < 1) return EXIT_FAILURE;
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  lm = loom_open(L, NULL);
  if (lm == NULL) return EXIT_FAILURE;
  uv_thread_t tid[64];
  uint64_t t0 = uv_hrtime();
  for (int i = 0; i < threads; i++) {
    loom_acquire(lm);
    uv_thread_create(&tid[i], poster, NULL);
  }
  if (loom_run(L, NULL) != 0) return EXIT_FAILURE;
  double s = (double)(uv_hrtime() - t0) / 1e9;
  for (int i = 0; i < threads; i++) uv_thread_join(&tid[i]);
  printf("post: %ld posts from %d threads in %.3f s: %.1f M posts/s\n", ran,
         threads, s, (double)ran / s / 1e6);
  lua_close(L);
  return ran == (long)threads * per_thread ? EXIT_SUCCESS : EXIT_FAILURE;
}
