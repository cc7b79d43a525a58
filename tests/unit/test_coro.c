/*
 * test_coro.c — unit tests for the raw coroutine API (src/core/coro.h),
 * without a scheduler or event loop:
 *   - resume/yield ping-pong: the order of steps, the resume return value
 *     (false while suspended, true once finished), cf_coro_current();
 *   - 10,000 coroutines alive at once, each yielding, then finishing, with
 *     the alive counter following along and the stack pool capped;
 *   - stacks come back from the pool (cf_coro_pooled, same mapping reused);
 *     changing the stack size drops pooled stacks of the old size;
 *   - locals (also in callee-saved registers, in an optimised function)
 *     survive switches while another coroutine runs;
 *   - floating-point values (double, long double) survive switches, and a
 *     coroutine's FP rounding mode does not leak into the loop or into
 *     other coroutines (the control bits are callee-saved in the ABI);
 *   - recursion a good way down a 64 KiB stack works, also with a stack
 *     that was used (and left dirty) by an earlier coroutine.
 */
#include "core/coro.h"

#include "check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- ping-pong ---------------------------------------------------------- */

static char trace[64];
static size_t trace_len;
static void mark(char c) { trace[trace_len++] = c; trace[trace_len] = 0; }

static cf_coro *pp_self;
static int pp_current_ok;

static void pingpong_fn(void *arg)
{
    int *n = arg;
    pp_current_ok = cf_coro_current() == pp_self;
    for (int i = 0; i < 3; i++) {
        mark((char)('a' + i));
        (*n)++;
        cf_coro_yield();
        pp_current_ok &= cf_coro_current() == pp_self;
    }
    mark('z');
}

static void test_pingpong(void)
{
    int n = 0;
    size_t alive0 = cf_coro_alive();
    cf_coro *co = cf_coro_new(pingpong_fn, &n);
    CHECK(co != NULL);
    pp_self = co;
    CHECK_INT(cf_coro_alive(), alive0 + 1);
    CHECK(cf_coro_current() == NULL);
    /* Nothing runs before the first resume. */
    CHECK_INT(n, 0);
    CHECK_STR(trace, "");
    for (int i = 1; i <= 3; i++) {
        mark('L');
        CHECK(!cf_coro_resume(co));
        CHECK_INT(n, i);
        CHECK(cf_coro_current() == NULL);
    }
    mark('L');
    CHECK(cf_coro_resume(co)); /* finished */
    CHECK_STR(trace, "LaLbLcLz");
    CHECK(pp_current_ok);
    CHECK_INT(cf_coro_alive(), alive0);
}

/* ---- many at once -------------------------------------------------------- */

enum { MANY = 10000 };
static int many_state[MANY];

static void many_fn(void *arg)
{
    size_t i = (size_t)(uintptr_t)arg;
    volatile size_t local = i * 7919u; /* on this coroutine's stack */
    many_state[i] = 1;
    cf_coro_yield();
    many_state[i] = local == i * 7919u ? 2 : -1;
}

static void test_many(void)
{
    static cf_coro *cos[MANY];
    size_t alive0 = cf_coro_alive();
    for (size_t i = 0; i < MANY; i++) {
        cos[i] = cf_coro_new(many_fn, (void *)(uintptr_t)i);
        CHECK(cos[i] != NULL);
        if (!cos[i])
            return;
    }
    CHECK_INT(cf_coro_alive(), alive0 + MANY);
    size_t yielded = 0;
    for (size_t i = 0; i < MANY; i++)
        yielded += !cf_coro_resume(cos[i]);
    CHECK_INT(yielded, MANY);
    size_t ones = 0;
    for (size_t i = 0; i < MANY; i++)
        ones += many_state[i] == 1;
    CHECK_INT(ones, MANY);
    CHECK_INT(cf_coro_alive(), alive0 + MANY);
    /* Finish them in reverse order. */
    size_t finished = 0;
    for (size_t i = MANY; i-- > 0;)
        finished += cf_coro_resume(cos[i]);
    CHECK_INT(finished, MANY);
    size_t twos = 0;
    for (size_t i = 0; i < MANY; i++)
        twos += many_state[i] == 2;
    CHECK_INT(twos, MANY);
    CHECK_INT(cf_coro_alive(), alive0);
    /* The pool keeps a bounded number of stacks for reuse. */
    CHECK(cf_coro_pooled() > 0);
    CHECK(cf_coro_pooled() <= 4096);
}

/* ---- pool reuse ------------------------------------------------------------ */

static void nothing_fn(void *arg) { (void)arg; }

static void test_pool_reuse(void)
{
    size_t pooled0 = cf_coro_pooled();
    cf_coro *a = cf_coro_new(nothing_fn, NULL);
    CHECK(a != NULL);
    if (pooled0)
        CHECK_INT(cf_coro_pooled(), pooled0 - 1); /* taken from the pool */
    size_t p1 = cf_coro_pooled();
    CHECK(cf_coro_resume(a));
    CHECK_INT(cf_coro_pooled(), p1 + 1); /* back in the pool */
    cf_coro *b = cf_coro_new(nothing_fn, NULL);
    CHECK(b == a); /* the same stack (and handle), most recently freed first */
    CHECK_INT(cf_coro_pooled(), p1);
    CHECK(cf_coro_resume(b));

    /* Setting the same size keeps the pool, a new size drops it. */
    size_t ss = cf_coro_stack_size();
    cf_coro_set_stack_size(ss);
    CHECK(cf_coro_pooled() > 0);
    cf_coro_set_stack_size(ss * 2);
    CHECK_INT(cf_coro_pooled(), 0);
    CHECK_INT(cf_coro_stack_size(), ss * 2);
    /* Rounded up to whole pages, with a small minimum. */
    cf_coro_set_stack_size(70000);
    CHECK(cf_coro_stack_size() >= 70000 && cf_coro_stack_size() % 4096 == 0);
    cf_coro_set_stack_size(1);
    CHECK(cf_coro_stack_size() >= 16 * 1024);
    cf_coro *c = cf_coro_new(nothing_fn, NULL);
    CHECK(c != NULL && cf_coro_resume(c));
    cf_coro_set_stack_size(ss);
    CHECK_INT(cf_coro_pooled(), 0);
}

/* ---- locals across switches ------------------------------------------------ */

/* Optimised so that values live in callee-saved registers across the yield
 * call: a switch that failed to restore rbx/r12-r15 (x19-x28) breaks it. */
__attribute__((optimize("O2"), noinline)) static void regs_fn(void *arg)
{
    uint64_t *out = arg;
    uint64_t seed = out[0];
    uint64_t a = seed * 3, b = seed * 5, c = seed * 7, d = seed * 11, e = seed * 13;
    char buf[256];
    for (int i = 0; i < 256; i++)
        buf[i] = (char)(seed + (uint64_t)i);
    for (int round = 0; round < 10; round++) {
        cf_coro_yield();
        a += 1, b += 2, c += 3, d += 4, e += 5;
    }
    uint64_t sum = 0;
    for (int i = 0; i < 256; i++)
        sum += (unsigned char)buf[i];
    out[1] = a + b + c + d + e;
    out[2] = sum;
}

static void test_locals(void)
{
    uint64_t s1[3] = {1000, 0, 0}, s2[3] = {77777, 0, 0};
    cf_coro *c1 = cf_coro_new(regs_fn, s1), *c2 = cf_coro_new(regs_fn, s2);
    /* Keep values in this frame's registers too: the loop side must be
     * restored as well. */
    volatile uint64_t guard = 0xdeadbeefcafef00dull;
    bool d1 = false, d2 = false;
    while (!d1 || !d2) {
        if (!d1)
            d1 = cf_coro_resume(c1);
        if (!d2)
            d2 = cf_coro_resume(c2);
    }
    CHECK(guard == 0xdeadbeefcafef00dull);
    for (int k = 0; k < 2; k++) {
        uint64_t *s = k ? s2 : s1, seed = s[0];
        uint64_t expect = seed * (3 + 5 + 7 + 11 + 13) + 10 * (1 + 2 + 3 + 4 + 5);
        uint64_t sum = 0;
        for (int i = 0; i < 256; i++)
            sum += (unsigned char)(char)(seed + (uint64_t)i);
        CHECK_INT(s[1], expect);
        CHECK_INT(s[2], sum);
    }
}

/* ---- floating point ---------------------------------------------------------- */

typedef struct fp_job {
    double start;
    double d_result;
    long double ld_result;
} fp_job;

__attribute__((optimize("O2"), noinline)) static void fp_fn(void *arg)
{
    fp_job *j = arg;
    double x = j->start, y = j->start / 3.0;
    long double z = (long double)j->start / 7.0L;
    for (int i = 0; i < 20; i++) {
        x = x * 1.0001 + 0.5;
        y = y * 0.999 + x / 1000.0;
        z = z * 1.00001L + (long double)y;
        cf_coro_yield();
    }
    j->d_result = x + y;
    j->ld_result = z;
}

static void fp_expect(fp_job *j)
{
    double x = j->start, y = j->start / 3.0;
    long double z = (long double)j->start / 7.0L;
    for (int i = 0; i < 20; i++) {
        x = x * 1.0001 + 0.5;
        y = y * 0.999 + x / 1000.0;
        z = z * 1.00001L + (long double)y;
    }
    j->d_result = x + y;
    j->ld_result = z;
}

static void test_floating_point(void)
{
    fp_job a = {1.5, 0, 0}, b = {-12345.678, 0, 0};
    cf_coro *ca = cf_coro_new(fp_fn, &a), *cb = cf_coro_new(fp_fn, &b);
    double mine = 3.25;
    bool da = false, db = false;
    while (!da || !db) {
        if (!da)
            da = cf_coro_resume(ca);
        mine *= 1.5;
        if (!db)
            db = cf_coro_resume(cb);
        mine /= 1.5;
    }
    CHECK(mine == 3.25);
    fp_job ea = {1.5, 0, 0}, eb = {-12345.678, 0, 0};
    fp_expect(&ea);
    fp_expect(&eb);
    /* Same operations in the same order: bit-identical results. */
    CHECK(a.d_result == ea.d_result);
    CHECK(b.d_result == eb.d_result);
    CHECK(a.ld_result == ea.ld_result);
    CHECK(b.ld_result == eb.ld_result);
}

/* Rounding mode: one coroutine switches to "round up" and yields. The loop
 * and another coroutine must still round to nearest, and the first must
 * find its own mode again when resumed. Read and set through the control
 * registers directly (fenv.h would need libm): on x86_64 both MXCSR (SSE
 * arithmetic) and the x87 control word (long double) carry a mode. Only
 * checked on x86_64 so far: the aarch64 switch does not save FPCR yet. */
#if defined(__x86_64__)
#define HAVE_FPMODE 1
static unsigned fpmode_get(void)
{
    unsigned mxcsr;
    unsigned short cw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    return ((mxcsr >> 13) & 3) | (((cw >> 10) & 3u) << 2);
}
static void fpmode_set(unsigned rc) /* 0 nearest, 2 up */
{
    unsigned mxcsr;
    unsigned short cw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    mxcsr = (mxcsr & ~(3u << 13)) | (rc << 13);
    __asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    cw = (unsigned short)((cw & ~(3u << 10)) | (rc << 10));
    __asm__ volatile("fldcw %0" : : "m"(cw));
}
#define MODE_NEAREST 0u
#define MODE_UP (2u | (2u << 2))
#endif

#ifdef HAVE_FPMODE
static unsigned rm_seen_by_other, rm_seen_again;

static void rm_setter(void *arg)
{
    (void)arg;
    fpmode_set(2);
    cf_coro_yield();
    rm_seen_again = fpmode_get();
    fpmode_set(0);
}

static void rm_reader(void *arg)
{
    (void)arg;
    rm_seen_by_other = fpmode_get();
}

static void test_rounding_mode(void)
{
    CHECK_INT(fpmode_get(), MODE_NEAREST);
    cf_coro *s = cf_coro_new(rm_setter, NULL), *r = cf_coro_new(rm_reader, NULL);
    CHECK(!cf_coro_resume(s));
    unsigned loop_mode = fpmode_get();
    CHECK(cf_coro_resume(r));
    CHECK(cf_coro_resume(s));
    CHECK_INT(loop_mode, MODE_NEAREST);
    CHECK_INT(rm_seen_by_other, MODE_NEAREST);
    CHECK_INT(rm_seen_again, MODE_UP);
    fpmode_set(0);
}
#else
static void test_rounding_mode(void) {}
#endif

/* ---- recursion ------------------------------------------------------------------ */

/* About 200 bytes of frame per level (more under ASan): 120 levels is a
 * good part of 64 KiB without reaching the guard page. */
static unsigned recurse(unsigned depth)
{
    volatile unsigned char pad[128];
    for (unsigned i = 0; i < sizeof pad; i++)
        pad[i] = (unsigned char)(depth + i);
    unsigned below = depth ? recurse(depth - 1) : 0;
    unsigned sum = 0;
    for (unsigned i = 0; i < sizeof pad; i++)
        sum += pad[i];
    return below + sum;
}

static unsigned recurse_result;
static void recurse_fn(void *arg)
{
    unsigned depth = *(unsigned *)arg;
    recurse_result = recurse(depth);
    cf_coro_yield();
    recurse_result += recurse(depth); /* again after a switch */
}

static void test_recursion(void)
{
    size_t ss = cf_coro_stack_size();
    cf_coro_set_stack_size(64 * 1024);
    unsigned depth = 120;
    unsigned expect = recurse(depth) * 2;
    /* Twice: the second run gets the first one's (dirty) stack back. */
    for (int round = 0; round < 2; round++) {
        recurse_result = 0;
        cf_coro *co = cf_coro_new(recurse_fn, &depth);
        CHECK(co != NULL);
        CHECK(!cf_coro_resume(co));
        CHECK(cf_coro_resume(co));
        CHECK_INT(recurse_result, expect);
    }
    cf_coro_set_stack_size(ss);
}

/* A coroutine that is created and finished on its first resume without
 * ever yielding, many times over: the pool cycles one stack. */
static int quick_runs;
static void quick_fn(void *arg) { (void)arg; quick_runs++; }

static void test_quick_cycle(void)
{
    for (int i = 0; i < 20000; i++) {
        cf_coro *co = cf_coro_new(quick_fn, NULL);
        if (!co || !cf_coro_resume(co)) {
            CHECK(!"quick coroutine did not finish");
            break;
        }
    }
    CHECK_INT(quick_runs, 20000);
}

int main(void)
{
    test_pingpong();
    test_many();
    test_pool_reuse();
    test_locals();
    test_floating_point();
    test_rounding_mode();
    test_recursion();
    test_quick_cycle();
    return CHECK_DONE();
}
