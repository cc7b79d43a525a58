/*
 * test_arena.c — unit tests for the per-request bump allocator
 * (src/core/arena.c), used directly:
 *   - every allocation is 16-byte aligned, allocations never overlap and an
 *     allocation lies wholly inside the caller's first block or wholly
 *     outside it, even when that block is oddly sized or aligned;
 *   - the arena grows into malloc'd blocks when the first one is full;
 *   - large allocations get a dedicated block and small ones keep bumping
 *     in the current block;
 *   - impossible sizes fail with NULL instead of wrapping around;
 *   - cf_arena_realloc extends the last allocation in place and copies
 *     otherwise, keeping the contents;
 *   - deferred callbacks run in reverse order, once, at reset;
 *   - reset starts over at the first block and frees the rest (ASan's leak
 *     checker verifies the "frees" part at exit).
 */
#include "core/arena.h"

#include "check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* True if [p, p+n) lies wholly inside [lo, lo+len). */
static int inside(const void *p, size_t n, const void *lo, size_t len)
{
    const char *a = p, *b = lo;
    return a >= b && a + n <= b + len;
}
/* True if [p, p+n) and [lo, lo+len) do not overlap at all. */
static int disjoint(const void *p, size_t n, const void *lo, size_t len)
{
    const char *a = p, *b = lo;
    return a + n <= b || b + len <= a;
}

static void test_alignment_and_first_block(void)
{
    _Alignas(16) static char first[1024];
    cf_arena a;
    cf_arena_init(&a, first, sizeof first);
    static const size_t sizes[] = {1, 3, 16, 17, 5, 31, 64, 7, 100};
    void *ptrs[sizeof sizes / sizeof *sizes];
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        ptrs[i] = cf_arena_alloc(&a, sizes[i]);
        CHECK(ptrs[i] != NULL);
        CHECK(aligned16(ptrs[i]));
        CHECK(inside(ptrs[i], sizes[i], first, sizeof first));
        memset(ptrs[i], (int)(0x40 + i), sizes[i]);
    }
    /* Nothing overwrote anything else. */
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        for (size_t k = 0; k < sizes[i]; k++)
            if (((unsigned char *)ptrs[i])[k] != 0x40 + i) {
                CHECK(!"allocation overwritten");
                break;
            }
    /* The first allocation is at the start of the block. */
    CHECK(ptrs[0] == (void *)first);
    /* Size 0 still gives a distinct, usable pointer. */
    void *z1 = cf_arena_alloc(&a, 0), *z2 = cf_arena_alloc(&a, 0);
    CHECK(z1 && z2 && z1 != z2 && aligned16(z1) && aligned16(z2));
    cf_arena_reset(&a);
}

/* A first block whose start and end are not 16-aligned: an aligned pointer
 * must never be handed out past the block's end. */
static void test_odd_first_block(void)
{
    _Alignas(16) static char buf[256];
    for (size_t off = 0; off < 16; off++) {
        for (size_t size = 1; size <= 64; size += 3) {
            char *first = buf + off;
            cf_arena a;
            cf_arena_init(&a, first, size);
            for (int i = 0; i < 12; i++) {
                size_t n = (size_t)(i % 5) + 1;
                char *p = cf_arena_alloc(&a, n);
                CHECK(p != NULL);
                CHECK(aligned16(p));
                /* Either wholly inside the first block or not in it at all. */
                if (!inside(p, n, first, size) && !disjoint(p, n, first, size)) {
                    fprintf(stderr, "off %zu size %zu alloc %d: %p straddles [%p, %p)\n", off,
                            size, i, (void *)p, (void *)first, (void *)(first + size));
                    CHECK(!"allocation straddles the end of the first block");
                }
                /* And if not in the block, then from the heap, not next to it. */
                if (!inside(p, n, first, size) && !disjoint(p, n, buf, sizeof buf))
                    CHECK(!"allocation outside the first block but inside its neighbour");
                memset(p, 0xAB, n);
            }
            cf_arena_reset(&a);
        }
    }
}

static void test_growth(void)
{
    _Alignas(16) static char first[512];
    cf_arena a;
    cf_arena_init(&a, first, sizeof first);
    enum { N = 20000, SZ = 40 };
    static unsigned char *ptrs[N];
    size_t outside = 0;
    for (size_t i = 0; i < N; i++) {
        ptrs[i] = cf_arena_alloc(&a, SZ);
        CHECK(ptrs[i] != NULL);
        if (!ptrs[i])
            return;
        CHECK(aligned16(ptrs[i]));
        memset(ptrs[i], (int)(i & 0xff), SZ);
        if (!inside(ptrs[i], SZ, first, sizeof first))
            outside++;
    }
    /* 800 KB went somewhere beyond the 512-byte first block. */
    CHECK(outside >= N - sizeof first / SZ);
    size_t bad = 0;
    for (size_t i = 0; i < N; i++)
        for (size_t k = 0; k < SZ; k++)
            bad += ptrs[i][k] != (unsigned char)(i & 0xff);
    CHECK_INT(bad, 0);
    cf_arena_reset(&a);
}

static void test_large(void)
{
    _Alignas(16) static char first[1024];
    cf_arena a;
    cf_arena_init(&a, first, sizeof first);
    char *s1 = cf_arena_alloc(&a, 32);
    CHECK(inside(s1, 32, first, sizeof first));
    /* 1 MiB: its own block. */
    size_t big = 1 << 20;
    char *b = cf_arena_alloc(&a, big);
    CHECK(b != NULL && aligned16(b));
    CHECK(disjoint(b, big, first, sizeof first));
    memset(b, 0x5A, big);
    /* The next small allocation keeps using the first block, right after s1. */
    char *s2 = cf_arena_alloc(&a, 32);
    CHECK(s2 == s1 + 32);
    /* A second big one does not disturb the first. */
    char *b2 = cf_arena_alloc(&a, big + 1);
    CHECK(b2 != NULL && aligned16(b2) && disjoint(b2, big + 1, b, big));
    memset(b2, 0xA5, big + 1);
    CHECK(b[0] == 0x5A && b[big - 1] == 0x5A);
    /* Sizes that cannot be satisfied fail cleanly instead of wrapping. */
    CHECK(cf_arena_alloc(&a, SIZE_MAX) == NULL);
    CHECK(cf_arena_alloc(&a, SIZE_MAX - 8) == NULL);
    /* ... and leave the arena usable. */
    char *s3 = cf_arena_alloc(&a, 16);
    CHECK(s3 == s2 + 32);
    cf_arena_reset(&a);
}

static void test_realloc(void)
{
    _Alignas(16) static char first[4096];
    cf_arena a;
    cf_arena_init(&a, first, sizeof first);
    /* From NULL: a plain allocation. */
    char *p = cf_arena_realloc(&a, NULL, 0, 10);
    CHECK(p == first);
    memcpy(p, "123456789", 10);
    /* The last allocation grows in place. */
    char *q = cf_arena_realloc(&a, p, 10, 100);
    CHECK(q == p);
    CHECK_STR(q, "123456789");
    /* The next allocation comes after the grown one. */
    char *r = cf_arena_alloc(&a, 8);
    CHECK(r >= p + 100);
    /* Not the last one any more: copied, contents kept, old data intact. */
    memset(r, 'r', 8);
    char *q2 = cf_arena_realloc(&a, q, 100, 200);
    CHECK(q2 != q && q2 != NULL);
    CHECK_STR(q2, "123456789");
    CHECK(r[0] == 'r' && r[7] == 'r');
    /* Growing past the end of the current block moves it, with the data. */
    char *g = cf_arena_realloc(&a, q2, 200, 8000);
    CHECK(g != NULL && aligned16(g));
    CHECK_STR(g, "123456789");
    memset(g + 10, 'x', 8000 - 10);
    /* Shrinking the last allocation is in place. */
    char *h = cf_arena_alloc(&a, 64);
    strcpy(h, "shrink");
    char *h2 = cf_arena_realloc(&a, h, 64, 8);
    CHECK(h2 == h);
    CHECK_STR(h2, "shrink");
    char *after = cf_arena_alloc(&a, 1);
    CHECK(after == h + 16); /* the space given back is reused (aligned) */
    cf_arena_reset(&a);
}

static char order[16];
static size_t order_len;
static void record(void *p) { order[order_len++] = *(char *)p; }

static void test_defers(void)
{
    _Alignas(16) static char first[256];
    static char tags[] = "abcde";
    cf_arena a;
    cf_arena_init(&a, first, sizeof first);
    for (int i = 0; i < 5; i++)
        CHECK_INT(cf_arena_defer_add(&a, record, &tags[i]), 0);
    /* Defers registered after the arena grew still run. */
    for (int i = 0; i < 50; i++)
        cf_arena_alloc(&a, 100);
    CHECK_INT(order_len, 0);
    cf_arena_reset(&a);
    order[order_len] = 0;
    CHECK_STR(order, "edcba");
    /* Once only. */
    cf_arena_reset(&a);
    CHECK_INT(order_len, 5);
    /* A defer whose target lives in the arena sees it intact at reset. */
    char *s = cf_arena_alloc(&a, 2);
    s[0] = 'Z';
    order_len = 0;
    cf_arena_defer_add(&a, record, s);
    for (int i = 0; i < 10; i++)
        cf_arena_alloc(&a, 1000); /* force extra blocks */
    cf_arena_reset(&a);
    CHECK_INT(order_len, 1);
    CHECK(order[0] == 'Z');
}

/* A defer that frees malloc'd memory: the arena is how a request owns
 * outside resources. Leak-free exit proves it ran. */
static void test_defer_frees(void)
{
    _Alignas(16) static char first[256];
    cf_arena a;
    cf_arena_init(&a, first, sizeof first);
    for (int i = 0; i < 10; i++)
        cf_arena_defer_add(&a, free, malloc(100));
    cf_arena_reset(&a);
}

static void test_reset_reuses_first(void)
{
    _Alignas(16) static char first[2048];
    cf_arena a;
    cf_arena_init(&a, first, sizeof first);
    for (int round = 0; round < 100; round++) {
        char *p = cf_arena_alloc(&a, 24);
        CHECK(p == first);
        /* Grow well past the first block every round: these blocks must be
         * freed by reset, or LeakSanitizer reports them at exit. */
        for (int i = 0; i < 40; i++)
            memset(cf_arena_alloc(&a, 1000), 1, 1000);
        cf_arena_alloc(&a, 300000);
        cf_arena_reset(&a);
    }
    /* Without a first block the arena still works, from the heap. */
    cf_arena b;
    cf_arena_init(&b, NULL, 0);
    char *p = cf_arena_alloc(&b, 10);
    CHECK(p != NULL && aligned16(p));
    char *q = cf_arena_alloc(&b, 10);
    CHECK(q == p + 16);
    cf_arena_reset(&b);
    cf_arena_reset(&b);
}

int main(void)
{
    test_alignment_and_first_block();
    test_odd_first_block();
    test_growth();
    test_large();
    test_realloc();
    test_defers();
    test_defer_frees();
    test_reset_reuses_first();
    return CHECK_DONE();
}
