/*
 * coro.c — coroutine stacks and switching (see coro.h).
 *
 * Stacks are mmap'd with a PROT_NONE guard region below them, so running off
 * the end faults instead of silently overwriting a neighbour; the SIGSEGV
 * handler recognises a fault in the running coroutine's guard region (or a
 * stack pointer below its stack) and says "stack overflow" before the
 * process dies. The region is GUARD_SIZE, not one page: a frame larger than
 * the guard would jump over it into the next mapping unless the code was
 * built with -fstack-clash-protection (which the library and carafe.pc use:
 * such frames touch every page on the way down). Address space is cheap; a
 * PROT_NONE mapping costs no memory. Finished stacks are kept in a
 * per-thread pool because mmap+mprotect+munmap per request would cost more
 * than the request itself.
 *
 * The sanitizers and Valgrind must be told about every stack switch or they
 * report false errors: AddressSanitizer through the fiber-switch API,
 * Valgrind by registering each stack.
 *
 * The scheduler state here (current coroutine, the loop's saved context) is
 * thread-local: one loop thread runs coroutines, and that thread's worker is
 * the owner of this state.
 */
#define _GNU_SOURCE /* REG_RIP & co. in ucontext.h */
#include "core/coro.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ucontext.h>

#if defined(__SANITIZE_ADDRESS__)
#define CF_HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CF_HAVE_ASAN 1
#endif
#endif
#ifdef CF_HAVE_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
                                     size_t *size_old);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define CF_HAVE_VALGRIND 1
#endif
#endif

struct cf_coro {
#ifdef CF_CORO_UCONTEXT
    ucontext_t ctx;
#else
    void *sp;
#endif
    char *map;          /* mmap base: guard region, then the stack */
    size_t map_size;
    cf_coro_fn fn;
    void *arg;
    const char *label;
    bool finished;
    volatile sig_atomic_t crash_signal; /* set when recovered from a crash */
    cf_coro *next_free;
#ifdef CF_HAVE_ASAN
    void *fake_stack;
#endif
#ifdef CF_HAVE_VALGRIND
    unsigned vg_id;
#endif
};

#define POOL_MAX 4096 /* stacks kept for reuse; beyond that they are unmapped */
#define GUARD_SIZE (256 * 1024) /* a multiple of any page size we run on */

static __thread cf_coro *current;
static __thread cf_coro *pool;
static __thread size_t pool_len, alive;
static __thread size_t stack_size = 64 * 1024;
#ifdef CF_CORO_UCONTEXT
static __thread ucontext_t loop_ctx;
#else
static __thread void *loop_sp;
#endif
#ifdef CF_HAVE_ASAN
static __thread void *loop_fake_stack;
static __thread const void *loop_stack_bottom;
static __thread size_t loop_stack_size;
#endif

static size_t page_size(void)
{
    static size_t ps;
    if (!ps)
        ps = (size_t)sysconf(_SC_PAGESIZE);
    return ps;
}

/* ASan keeps its poison marks (redzones of frames that never returned) on
 * memory we unmap; a later mapping at the same address would inherit them
 * and report false errors. */
static void unmap_stack(char *map, size_t size)
{
#ifdef CF_HAVE_ASAN
    __asan_unpoison_memory_region(map, size);
#endif
    munmap(map, size);
}

void cf_coro_set_stack_size(size_t bytes)
{
    size_t ps = page_size();
    if (bytes < 4 * ps)
        bytes = 4 * ps;
    bytes = (bytes + ps - 1) & ~(ps - 1);
    if (bytes != stack_size) {
        cf_coro_pool_drain(); /* pooled stacks have the old size */
        stack_size = bytes;
    }
}

void cf_coro_pool_drain(void)
{
    while (pool) {
        cf_coro *c = pool;
        pool = c->next_free;
#ifdef CF_HAVE_VALGRIND
        VALGRIND_STACK_DEREGISTER(c->vg_id);
#endif
        unmap_stack(c->map, c->map_size);
    }
    pool_len = 0;
}

size_t cf_coro_stack_size(void) { return stack_size; }
size_t cf_coro_alive(void) { return alive; }
size_t cf_coro_pooled(void) { return pool_len; }
cf_coro *cf_coro_current(void) { return current; }
void cf_coro_set_label(cf_coro *co, const char *label) { co->label = label; }

/* Layout of a mapping: [guard region][stack ... top][struct cf_coro]. The
 * struct sits above the stack top so one mapping holds everything. */
static size_t mapping_size(void)
{
    size_t ps = page_size();
    return GUARD_SIZE + stack_size + ((sizeof(cf_coro) + ps - 1) & ~(ps - 1));
}

static cf_coro *stack_alloc(void)
{
    if (pool) {
        cf_coro *co = pool;
        pool = co->next_free;
        pool_len--;
        return co;
    }
    size_t size = mapping_size();
    char *map = mmap(NULL, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED)
        return NULL;
    if (mprotect(map, GUARD_SIZE, PROT_NONE) != 0) {
        munmap(map, size);
        return NULL;
    }
    cf_coro *co = (cf_coro *)(map + GUARD_SIZE + stack_size);
    memset(co, 0, sizeof *co);
    co->map = map;
    co->map_size = size;
#ifdef CF_HAVE_VALGRIND
    co->vg_id = VALGRIND_STACK_REGISTER(map + GUARD_SIZE, map + GUARD_SIZE + stack_size);
#endif
    return co;
}

static void stack_release(cf_coro *co)
{
    if (pool_len < POOL_MAX && co->map_size == mapping_size()) {
        co->next_free = pool;
        pool = co;
        pool_len++;
        return;
    }
#ifdef CF_HAVE_VALGRIND
    VALGRIND_STACK_DEREGISTER(co->vg_id);
#endif
    unmap_stack(co->map, co->map_size);
}

static inline char *stack_bottom(cf_coro *co) { return co->map + GUARD_SIZE; }
static inline size_t stack_len(cf_coro *co)
{
    return (size_t)((char *)co - stack_bottom(co));
}

size_t cf_coro_stack_left(void)
{
    if (!current)
        return SIZE_MAX;
    const char *here = __builtin_frame_address(0), *bottom = stack_bottom(current);
    return here > bottom ? (size_t)(here - bottom) : 0;
}

/* Sanitizer bookkeeping around each switch. */
static inline void asan_enter_coro(cf_coro *co)
{
#ifdef CF_HAVE_ASAN
    __sanitizer_start_switch_fiber(&loop_fake_stack, stack_bottom(co), stack_len(co));
#else
    (void)co;
#endif
}
static inline void asan_back_on_loop(void)
{
#ifdef CF_HAVE_ASAN
    __sanitizer_finish_switch_fiber(loop_fake_stack, NULL, NULL);
#endif
}
static inline void asan_arrived_in_coro(cf_coro *co)
{
#ifdef CF_HAVE_ASAN
    __sanitizer_finish_switch_fiber(co->fake_stack, &loop_stack_bottom, &loop_stack_size);
#else
    (void)co;
#endif
}
static inline void asan_leave_coro(cf_coro *co)
{
#ifdef CF_HAVE_ASAN
    /* A finished coroutine passes NULL so ASan frees its fake stack. */
    __sanitizer_start_switch_fiber(co->finished ? NULL : &co->fake_stack, loop_stack_bottom,
                                   loop_stack_size);
#else
    (void)co;
#endif
}

void cf__coro_main(cf_coro *co);

#ifdef CF_CORO_UCONTEXT
static void ucontext_entry(void) { cf__coro_main(current); }

/* getcontext "returns twice" as far as the compiler knows, so in a caller
 * with more live locals an optimising build warns (-Wclobbered, an error
 * with -Werror); nothing ever resumes this context after makecontext, so
 * keeping the call in a small function of its own is enough. */
static __attribute__((noinline)) void ucontext_prepare(cf_coro *co)
{
    ucontext_t *ctx = &co->ctx;
    getcontext(ctx);
    ctx->uc_stack.ss_sp = stack_bottom(co);
    ctx->uc_stack.ss_size = stack_len(co);
    ctx->uc_link = NULL;
    makecontext(ctx, ucontext_entry, 0);
}
#else
void cf__ctx_switch(void **save_sp, void *load_sp);
void cf__coro_start(void);
#endif

/* First code on a new coroutine's stack. */
void cf__coro_main(cf_coro *co)
{
    asan_arrived_in_coro(co);
    co->fn(co->arg);
    co->finished = true;
    asan_leave_coro(co);
#ifdef CF_CORO_UCONTEXT
    setcontext(&loop_ctx);
#else
    void *dead_sp;
    cf__ctx_switch(&dead_sp, loop_sp);
#endif
    abort(); /* unreachable: a finished coroutine is never resumed */
}

cf_coro *cf_coro_new(cf_coro_fn fn, void *arg)
{
    cf_coro *co = stack_alloc();
    if (!co)
        return NULL;
#ifdef CF_HAVE_ASAN
    /* A pooled stack still carries the poisoned redzones of the frames its
     * last coroutine never returned from (cf__coro_main's, and whatever was
     * suspended there): clear them, or the new frames trip over them. */
    __asan_unpoison_memory_region(stack_bottom(co), stack_len(co));
#endif
    co->fn = fn;
    co->arg = arg;
    co->label = NULL;
    co->finished = false;
    co->crash_signal = 0;
    co->next_free = NULL;
#ifdef CF_HAVE_ASAN
    co->fake_stack = NULL;
#endif
#ifdef CF_CORO_UCONTEXT
    ucontext_prepare(co);
#else
    /* Fake the frame cf__ctx_switch pops: the callee-saved registers (rbx or
     * x19 carrying co) and a return address into cf__coro_start; on x86_64
     * also the FP control words, inherited from the creating thread. */
    uintptr_t top = (uintptr_t)co & ~(uintptr_t)15;
#if defined(__x86_64__)
    void **sp = (void **)(top - 64);
    memset(sp, 0, 64);
    uint32_t mxcsr;
    uint16_t x87cw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(x87cw));
    memcpy((char *)sp, &mxcsr, 4);     /* popped by ldmxcsr (%rsp) */
    memcpy((char *)sp + 4, &x87cw, 2); /* and fldcw 4(%rsp) */
    sp[5] = co;                     /* rbx */
    sp[7] = (void *)cf__coro_start; /* return address */
#elif defined(__aarch64__)
    void **sp = (void **)(top - 160);
    memset(sp, 0, 160);
    sp[0] = co;                     /* x19 */
    sp[11] = (void *)cf__coro_start; /* x30 */
#else
#error "no assembly context switch for this architecture: configure with -DCF_CORO_BACKEND=ucontext"
#endif
    co->sp = sp;
#endif
    alive++;
    return co;
}

bool cf_coro_resume(cf_coro *co)
{
    cf_coro *prev = current;
    current = co;
    asan_enter_coro(co);
#ifdef CF_CORO_UCONTEXT
    swapcontext(&loop_ctx, &co->ctx);
#else
    cf__ctx_switch(&loop_sp, co->sp);
#endif
    asan_back_on_loop();
    current = prev;
    if (co->finished) {
        alive--;
        stack_release(co);
        return true;
    }
    return false;
}

void cf_coro_yield(void)
{
    cf_coro *co = current;
    asan_leave_coro(co);
#ifdef CF_CORO_UCONTEXT
    swapcontext(&co->ctx, &loop_ctx);
#else
    cf__ctx_switch(&co->sp, loop_sp);
#endif
    asan_arrived_in_coro(co);
}

/* ---- crashes: stack overflow and faults in handler code ---------------- */

/* Fatal signals we look at; each chains to whoever handled it before us. */
static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define NFATAL (sizeof fatal_signals / sizeof *fatal_signals)
static struct sigaction previous_action[NFATAL];
static volatile sig_atomic_t recovery_enabled;

void cf_coro_enable_crash_recovery(bool on) { recovery_enabled = on; }
bool cf_coro_crashed(cf_coro *co) { return co->crash_signal != 0; }
int cf_coro_crash_signal(cf_coro *co) { return co->crash_signal; }

static void write_str(const char *s) { (void)!write(2, s, strlen(s)); }

static void write_num(unsigned long v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < sizeof tmp);
    char out[24];
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    (void)!write(2, out, n);
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    default: return "a fatal signal";
    }
}

/* Where a recovered coroutine continues: it never runs user code again,
 * only yields to the scheduler, which sees it crashed and never resumes it. */
static void crashed_coroutine(void)
{
    cf_coro_yield();
    abort();
}

/* Point the interrupted context at crashed_coroutine, on a fresh spot near
 * the top of the coroutine's own stack (its frames are abandoned, and after
 * an overflow the stack pointer sits in the guard page). */
static bool redirect_context(void *uctx, cf_coro *co)
{
    ucontext_t *uc = uctx;
    uintptr_t top = (uintptr_t)co & ~(uintptr_t)15;
#if defined(__x86_64__)
    uc->uc_mcontext.gregs[REG_RSP] = (greg_t)(top - 256 - 8); /* as if called */
    uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)crashed_coroutine;
    return true;
#elif defined(__aarch64__)
    uc->uc_mcontext.sp = top - 256;
    uc->uc_mcontext.pc = (uintptr_t)crashed_coroutine;
    return true;
#else
    (void)uc, (void)top;
    return false;
#endif
}

/* The interrupted stack pointer, or 0 where we do not know how to read it. */
static uintptr_t interrupted_sp(void *uctx)
{
    ucontext_t *uc = uctx;
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.sp;
#else
    (void)uc;
    return 0;
#endif
}

/* An overflow faults in the guard region, or (a frame bigger than the guard,
 * built without stack-clash protection) below it with the stack pointer
 * already past the stack's end: within a bound no real frame exceeds, so
 * a wild pointer elsewhere is not mistaken for one. */
static bool is_overflow(cf_coro *co, int sig, const char *addr, void *uctx)
{
    if (!co || (sig != SIGSEGV && sig != SIGBUS))
        return false;
    if (addr >= co->map && addr < stack_bottom(co))
        return true;
    uintptr_t sp = interrupted_sp(uctx), bottom = (uintptr_t)stack_bottom(co);
    return sp && sp < bottom && bottom - sp < 64u * 1024 * 1024;
}

static void on_fatal(int sig, siginfo_t *info, void *uctx)
{
    cf_coro *co = current;
    char *addr = info ? (char *)info->si_addr : NULL;
    bool overflow = is_overflow(co, sig, addr, uctx);
    if (overflow) {
        write_str("carafe: stack overflow in a coroutine (stack ");
        write_num(stack_len(co) / 1024);
        write_str(" KiB)");
    } else if (co) {
        write_str("carafe: ");
        write_str(signal_name(sig));
        write_str(" in a coroutine");
    }
    if (co) {
        if (co->label) {
            write_str(" while handling ");
            write_str(co->label);
        }
        if (overflow)
            write_str("; raise the stack size with CF_OPT_STACK_SIZE");
        write_str("\n");
    }
    /* In a server worker the crashed request is dropped and the worker
     * drains its other requests before it is replaced; its memory may be
     * damaged, so it takes no new work (see sched.c and the worker). */
    if (co && recovery_enabled && !co->crash_signal && redirect_context(uctx, co)) {
        co->crash_signal = sig;
        return;
    }
    size_t i = 0;
    while (i < NFATAL && fatal_signals[i] != sig)
        i++;
    /* Hand over to whoever handled the signal before us (ASan's report),
     * or die of it as the process would have without us. */
    if (i < NFATAL && (previous_action[i].sa_flags & SA_SIGINFO) && previous_action[i].sa_sigaction) {
        previous_action[i].sa_sigaction(sig, info, uctx);
        return;
    }
    if (i < NFATAL && previous_action[i].sa_handler != SIG_DFL &&
        previous_action[i].sa_handler != SIG_IGN && previous_action[i].sa_handler != NULL) {
        previous_action[i].sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL);
    if (sig != SIGSEGV && sig != SIGBUS && sig != SIGILL && sig != SIGFPE)
        raise(sig); /* not a fault that re-executes: deliver it again */
    /* returning re-executes the faulting instruction, now fatal */
}

/* An alternate signal stack we allocated for a thread is released when the
 * thread exits: a loop thread may be short-lived (a test client's). */
static pthread_key_t alt_stack_key;
static pthread_once_t alt_stack_once = PTHREAD_ONCE_INIT;

static void alt_stack_free(void *p)
{
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
    free(p);
}
static void alt_stack_key_init(void) { (void)pthread_key_create(&alt_stack_key, alt_stack_free); }

/* The handler is process-wide: install it once. A second loop thread doing
 * it again would save our own handler as "previous" and chain to itself. */
static pthread_once_t segv_once = PTHREAD_ONCE_INIT;
static void segv_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fatal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < NFATAL; i++)
        sigaction(fatal_signals[i], &sa, &previous_action[i]);
}

void cf_coro_install_overflow_handler(void)
{
    static __thread bool done;
    if (done)
        return;
    done = true;
    /* The handler needs an alternate stack (the faulting one is full). A
     * thread that has one already keeps it: AddressSanitizer gives every
     * thread its own and unmaps it at thread exit, so replacing it makes
     * ASan fail then. */
    stack_t cur;
    if (sigaltstack(NULL, &cur) != 0 || (cur.ss_flags & SS_DISABLE)) {
        size_t alt_size = 64 * 1024;
        void *alt = malloc(alt_size);
        stack_t ss;
        memset(&ss, 0, sizeof ss);
        ss.ss_sp = alt;
        ss.ss_size = alt_size;
        if (!alt || sigaltstack(&ss, NULL) != 0) {
            free(alt);
            return;
        }
        pthread_once(&alt_stack_once, alt_stack_key_init);
        pthread_setspecific(alt_stack_key, alt);
    }
    pthread_once(&segv_once, segv_install);
}
