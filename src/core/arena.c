/*
 * arena.c — the per-request bump allocator (see arena.h).
 */
#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct cf_arena_block {
    cf_arena_block *next;
    size_t size;
    _Alignas(16) char data[];
};

struct cf_arena_defer {
    cf_arena_defer *next;
    void (*fn)(void *);
    void *ptr;
};

#define ALIGN 16
#define MIN_BLOCK 8192
#define MAX_BLOCK (256 * 1024)

void cf_arena_init(cf_arena *a, void *first, size_t first_size)
{
    memset(a, 0, sizeof *a);
    a->first = first;
    a->first_size = first_size;
    a->next_block = MIN_BLOCK;
    cf_arena_reset(a);
}

static inline char *align_up(char *p)
{
    return (char *)(((uintptr_t)p + (ALIGN - 1)) & ~(uintptr_t)(ALIGN - 1));
}

void *cf_arena_alloc(cf_arena *a, size_t size)
{
    if (size == 0)
        size = 1;
    char *p = align_up(a->ptr);
    /* Aligning may step past the end of a first block of odd size. */
    if (p && p <= a->end && size <= (size_t)(a->end - p)) {
        a->ptr = p + size;
        return p;
    }
    /* Large requests get a block of their own so the current one keeps
     * serving small ones; otherwise blocks double up to MAX_BLOCK. */
    size_t bsize = a->next_block;
    if (size > bsize / 2)
        bsize = size;
    else if (a->next_block < MAX_BLOCK)
        a->next_block *= 2;
    if (size > SIZE_MAX - sizeof(cf_arena_block))
        return NULL;
    cf_arena_block *b = malloc(sizeof *b + bsize);
    if (!b)
        return NULL;
    b->size = bsize;
    b->next = a->blocks;
    a->blocks = b;
    if (bsize == size) {
        /* A dedicated block: keep bumping in the previous one. */
        return b->data;
    }
    a->ptr = b->data + size;
    a->end = b->data + bsize;
    return b->data;
}

void *cf_arena_realloc(cf_arena *a, void *p, size_t old, size_t size)
{
    if (p && (char *)p + old == a->ptr && size <= (size_t)(a->end - (char *)p)) {
        a->ptr = (char *)p + size;
        return p;
    }
    void *n = cf_arena_alloc(a, size);
    if (n && p)
        memcpy(n, p, old < size ? old : size);
    return n;
}

int cf_arena_defer_add(cf_arena *a, void (*fn)(void *), void *ptr)
{
    cf_arena_defer *d = cf_arena_alloc(a, sizeof *d);
    if (!d)
        return -1;
    d->fn = fn;
    d->ptr = ptr;
    d->next = a->defers;
    a->defers = d;
    return 0;
}

void cf_arena_reset(cf_arena *a)
{
    /* Deferred callbacks may allocate nothing but can free: run them first,
     * while the memory they point into is still there. */
    while (a->defers) {
        cf_arena_defer *d = a->defers;
        a->defers = d->next;
        d->fn(d->ptr);
    }
    while (a->blocks) {
        cf_arena_block *b = a->blocks;
        a->blocks = b->next;
        free(b);
    }
    a->ptr = a->first;
    a->end = a->first ? a->first + a->first_size : NULL;
    a->next_block = MIN_BLOCK;
}
