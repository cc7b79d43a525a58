/*
 * coro.h — stackful coroutines: stacks from a per-thread pool, and the
 * switch between the loop's own stack and a coroutine's.
 *
 * The model is asymmetric on purpose: only the scheduler (running on the
 * loop's stack) resumes a coroutine, and a coroutine only yields back to it.
 * Libuv callbacks therefore never run on a coroutine stack, and a finished
 * coroutine's stack is released from the loop stack, never from itself.
 */
#ifndef CF_CORE_CORO_H
#define CF_CORE_CORO_H

#include <stdbool.h>
#include <stddef.h>

typedef struct cf_coro cf_coro;
typedef void (*cf_coro_fn)(void *arg);

/* Set the stack size used for new coroutines (rounded up to pages). */
void cf_coro_set_stack_size(size_t bytes);
size_t cf_coro_stack_size(void);

/* A coroutine that will run fn(arg) when first resumed. NULL when out of
 * memory. */
cf_coro *cf_coro_new(cf_coro_fn fn, void *arg);
/* Switch from the loop stack into `co` until it yields or finishes. When
 * it has finished, its stack goes back to the pool and co is invalid;
 * returns true in that case. */
bool cf_coro_resume(cf_coro *co);
/* From inside a coroutine: switch back to whoever resumed it. */
void cf_coro_yield(void);
/* The running coroutine, or NULL on the loop stack. */
cf_coro *cf_coro_current(void);
/* Bytes of stack left below the caller's frame on the running coroutine;
 * SIZE_MAX on a thread's own stack. For code that recurses on input (the
 * template renderer) to stop before the guard region. */
size_t cf_coro_stack_left(void);
/* A short label shown in crash reports ("GET /path"); not copied. */
void cf_coro_set_label(cf_coro *co, const char *label);

/* Install the SIGSEGV handler (on an alternate stack) that reports a hit on
 * a coroutine's guard page as a stack overflow. Once per thread that runs
 * coroutines. */
void cf_coro_install_overflow_handler(void);

/* With recovery on (server workers), a fatal signal (SIGSEGV, SIGABRT, ...)
 * raised by code running in a coroutine is reported with the coroutine's
 * label and ends only that coroutine: it yields and is marked crashed
 * (cf_coro_crashed), and is never to be resumed. Off (the default), the
 * report is printed and the process dies of the signal. */
void cf_coro_enable_crash_recovery(bool on);
bool cf_coro_crashed(cf_coro *co);
int cf_coro_crash_signal(cf_coro *co);

/* Unmap this thread's pooled stacks (a loop thread that is done with
 * coroutines: they would outlive it otherwise). */
void cf_coro_pool_drain(void);

/* Counters for tests and metrics. */
size_t cf_coro_alive(void);
size_t cf_coro_pooled(void);

#endif
