/*
 * arena.h — per-request memory: bump allocation, freed in one step.
 *
 * A request allocates many small things (decoded path, parameters, response
 * headers and body) whose lifetimes all end with the request, so one arena
 * with an inline first block makes the common request malloc-free. Deferred
 * callbacks let other owners (jansson values, files) end with it too.
 */
#ifndef CF_CORE_ARENA_H
#define CF_CORE_ARENA_H

#include <stddef.h>

typedef struct cf_arena_block cf_arena_block;
typedef struct cf_arena_defer cf_arena_defer;

typedef struct cf_arena {
    char *ptr, *end;         /* free space in the current block */
    cf_arena_block *blocks;  /* malloc'd blocks beyond the first */
    cf_arena_defer *defers;  /* run in reverse order at reset */
    char *first;             /* caller-provided first block */
    size_t first_size;
    size_t next_block;       /* size of the next block to allocate */
} cf_arena;

void cf_arena_init(cf_arena *a, void *first, size_t first_size);
/* 16-byte aligned; NULL only when malloc fails. */
void *cf_arena_alloc(cf_arena *a, size_t size);
/* Grow the most recent allocation `p` of `old` bytes to `size`, in place
 * when it is the last one, else by copying. */
void *cf_arena_realloc(cf_arena *a, void *p, size_t old, size_t size);
int cf_arena_defer_add(cf_arena *a, void (*fn)(void *), void *ptr);
/* Run deferred callbacks, free extra blocks, start over in the first one. */
void cf_arena_reset(cf_arena *a);

#endif
