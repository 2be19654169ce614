/*
** alloc.h: the pool allocator the loom command gives Lua (see alloc.c).
*/
#ifndef LOOM_ALLOC_H
#define LOOM_ALLOC_H

#include <stddef.h>

#define LOOM_POOL_MAX 1024  /* larger blocks go to malloc */

typedef struct loom_pool loom_pool;

loom_pool *loom_pool_new(void);                 /* NULL if out of memory */
void loom_pool_free(loom_pool *p);              /* after lua_close */
void *loom_pool_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

#endif
