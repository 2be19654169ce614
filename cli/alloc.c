/*
** alloc.c: the Lua allocator of the loom command.
**
** Every object a task is made of (its thread, stack, call frames, the
** Task userdata) is a small block, and a busy script makes and drops
** hundreds of thousands of them. Blocks up to LOOM_POOL_MAX bytes come from
** free lists, one per 8-byte size class, refilled from 64 KiB chunks; a
** block has no header, since Lua gives the old size on every free and
** realloc. That saves malloc's 8 to 16 bytes per block, and keeps freed
** blocks for reuse instead of trimming the heap and faulting the pages
** back in. Larger blocks go to malloc. Memory in the pool is returned to
** the system when the state closes.
**
** Once the pool holds BIG_AFTER bytes, a script is making many objects,
** and later chunks are BIG bytes mapped with MAP_POPULATE: the kernel
** hands over all their pages in one call instead of one page fault per
** 4 KiB on first touch, which was a fifth of a burst's time.
*/
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "alloc.h"

#define GRAIN 8
#define NCLASSES (LOOM_POOL_MAX / GRAIN)
#define CHUNK (64 * 1024)
#define BIG (1024 * 1024)
#define BIG_AFTER (4 * 1024 * 1024)

typedef struct block { struct block *next; } block;
typedef struct chunk {
  struct chunk *next;
  size_t size;                /* BIG if mapped, else CHUNK from malloc */
} chunk;

struct loom_pool {
  block *free[NCLASSES + 1];  /* by class: (size + 7) / 8 */
  chunk *chunks;
  size_t total;               /* bytes in chunks */
  char *bump, *end;           /* the unused rest of the newest chunk */
};

static chunk *new_chunk(loom_pool *p) {
  chunk *ch = NULL;
  size_t size = CHUNK;
  if (p->total >= BIG_AFTER) {
    void *m = mmap(NULL, BIG, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (m != MAP_FAILED) {
      ch = m;
      size = BIG;
    }
  }
  if (ch == NULL && (ch = malloc(CHUNK)) == NULL) return NULL;
  ch->next = p->chunks;
  ch->size = size;
  p->chunks = ch;
  p->total += size;
  return ch;
}

static void free_chunk(chunk *ch) {
  if (ch->size == BIG) munmap(ch, BIG);
  else free(ch);
}

static size_t class_of(size_t size) {
  return (size + GRAIN - 1) / GRAIN;
}

static void *pool_alloc(loom_pool *p, size_t size) {
  size_t c = class_of(size), bytes = c * GRAIN;
  block *b = p->free[c];
  if (b != NULL) {
    p->free[c] = b->next;
    return b;
  }
  if ((size_t)(p->end - p->bump) < bytes) {
    /* the rest of the old chunk goes to the free lists, largest first */
    while ((size_t)(p->end - p->bump) >= GRAIN) {
      size_t left = (size_t)(p->end - p->bump) / GRAIN;
      size_t k = left > NCLASSES ? NCLASSES : left;
      block *rest = (block *)p->bump;
      rest->next = p->free[k];
      p->free[k] = rest;
      p->bump += k * GRAIN;
    }
    chunk *ch = new_chunk(p);
    if (ch == NULL) return NULL;
    p->bump = (char *)ch + sizeof(chunk) + (GRAIN - sizeof(chunk) % GRAIN)
              % GRAIN;
    p->end = (char *)ch + ch->size;
  }
  void *r = p->bump;
  p->bump += bytes;
  return r;
}

static void pool_free(loom_pool *p, void *ptr, size_t size) {
  size_t c = class_of(size);
  block *b = ptr;
  b->next = p->free[c];
  p->free[c] = b;
}

void *loom_pool_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  loom_pool *p = ud;
  if (ptr == NULL) osize = 0;  /* then osize only tells the object type */
  if (nsize == 0) {
    if (ptr == NULL) return NULL;
    if (osize <= LOOM_POOL_MAX) pool_free(p, ptr, osize);
    else free(ptr);
    return NULL;
  }
  if (osize > LOOM_POOL_MAX && nsize > LOOM_POOL_MAX)
    return realloc(ptr, nsize);
  if (ptr != NULL && osize <= LOOM_POOL_MAX && nsize <= LOOM_POOL_MAX &&
      class_of(osize) == class_of(nsize))
    return ptr;
  void *r = nsize <= LOOM_POOL_MAX ? pool_alloc(p, nsize) : malloc(nsize);
  if (r == NULL || ptr == NULL) return r;
  memcpy(r, ptr, osize < nsize ? osize : nsize);
  if (osize <= LOOM_POOL_MAX) pool_free(p, ptr, osize);
  else free(ptr);
  return r;
}

loom_pool *loom_pool_new(void) {
  return calloc(1, sizeof(loom_pool));
}

void loom_pool_free(loom_pool *p) {
  if (p == NULL) return;
  while (p->chunks != NULL) {
    chunk *next = p->chunks->next;
    free_chunk(p->chunks);
    p->chunks = next;
  }
  free(p);
}
