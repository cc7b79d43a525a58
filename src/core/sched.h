/*
 * sched.h — the per-thread scheduler: tasks, awaitables, timers and the run
 * queue that resumes coroutines from the loop's stack.
 *
 * A task is a coroutine plus what it waits on. Anything a task can await
 * starts with a cf_waitable header; completing it wakes the waiting task by
 * putting it on the run queue, which is drained on the loop stack. Timers
 * live in one binary heap driven by a single libuv timer, so sleeping or a
 * timeout costs no libuv handle (and no asynchronous close) per task.
 *
 * Memory for tasks comes from their scope (whatever owns them: the app
 * layer's request, a background job): a scope counts the tasks and
 * thread-pool jobs still using it and is released when the last one ends.
 * Core knows nothing of requests: a task runs fn(ctx, arg), and what ctx
 * is belongs to whoever started it.
 */
#ifndef CF_CORE_SCHED_H
#define CF_CORE_SCHED_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "carafe.h"
#include "core/arena.h"
#include "core/coro.h"

typedef struct cf_scope {
    cf_arena *arena;
    int refs;
    void (*release)(struct cf_scope *); /* refs reached 0 */
    /* A task of this scope died of a crash (server workers only). */
    void (*crashed)(struct cf_scope *, struct cf_task *);
} cf_scope;
void cf_scope_ref(cf_scope *s);
void cf_scope_unref(cf_scope *s);

typedef struct cf_timer {
    uint64_t due;
    size_t idx; /* position in the heap, SIZE_MAX when stopped */
    void (*cb)(struct cf_timer *);
} cf_timer;
void cf_timer_init(cf_timer *t, void (*cb)(cf_timer *));
void cf_timer_start(cf_timer *t, uint64_t ms);
void cf_timer_stop(cf_timer *t);
static inline bool cf_timer_active(const cf_timer *t) { return t->idx != SIZE_MAX; }

#define CF_WAITABLE_MAGIC 0x43664177u /* "CfAw" */

typedef struct cf_waitable cf_waitable;
struct cf_waitable {
    uint32_t magic;
    bool done;
    int result;
    cf_task *waiter;                   /* task suspended on it, if any */
    cf_task *owner;                    /* cancelled with its owner */
    cf_waitable *owned_next, *owned_prev;
    void (*cancel)(cf_waitable *);     /* ask it to stop early */
};
/* Initialise and attach to the current task (if any) as its owner. */
void cf_waitable_init(cf_waitable *w, void (*cancel)(cf_waitable *));
/* Take it out of its owner's list: cancelling the owner leaves it alone. */
void cf_waitable_detach(cf_waitable *w);
/* Record the result, detach from the owner and wake a waiting task. */
void cf_waitable_complete(cf_waitable *w, int result);

typedef enum { CF_TASK_READY, CF_TASK_RUNNING, CF_TASK_WAITING, CF_TASK_DONE } cf_task_state;

/* A task's body: runs on its coroutine, returns its result. */
typedef int (*cf_task_body)(void *ctx, void *arg);

struct cf_task {
    cf_waitable w;             /* a task is awaitable */
    cf_coro *co;
    void *ctx;                 /* the owner's context (the app: its request) */
    cf_scope *scope;
    cf_task_body fn;
    void *arg;
    cf_task_state state;
    bool cancelled;
    bool shielded;             /* cancellation does not interrupt this wait */
    int wake_result;
    int wait_mode;             /* while waiting: ALL or ANY */
    size_t wait_left;
    cf_timer timer;
    cf_task *runq_next;
    cf_waitable *owned;        /* children and jobs, cancelled with us */
    void (*on_exit)(cf_task *);/* called on the loop stack when done */
};

/* Per-loop state of a module of a later layer (the HTTP client's multi
 * handle, database pools, ...), created on first use and closed with the
 * scheduler. A module names its slot by the address of a static of its
 * own, so core needs to know none of them. */
#define CF_SCHED_LOCALS 8
typedef struct cf_sched_local {
    const void *key;
    void *state;
    void (*close)(void *state); /* uv_close its handles; the loop runs after */
} cf_sched_local;

typedef struct cf_sched {
    uv_loop_t *loop;
    cf_sched_local locals[CF_SCHED_LOCALS];
    uv_timer_t uv_timer;
    cf_timer **heap;
    size_t heap_len, heap_cap;
    cf_task *runq_head, *runq_tail;
    cf_task *current;
    bool draining;
    /* Background tasks (src/app/background.c) outlive requests: the loop's
     * owner waits for them when stopping, and is told when none is left. */
    size_t nbackground;
    void *background;              /* list head, owned by background.c */
    void (*background_idle)(void *arg);
    void *background_idle_arg;
} cf_sched;

/* Bind a scheduler to `loop` on this thread (the loop thread). */
int cf_sched_init(cf_sched *s, uv_loop_t *loop);
void cf_sched_close(cf_sched *s);
cf_sched *cf_sched_get(void);
/* This loop's state under `key`, or NULL before cf_sched_set_local. */
void *cf_sched_local_get(const void *key);
/* Returns 0, or CF_ENOMEM when every slot is taken. */
int cf_sched_set_local(const void *key, void *state, void (*close)(void *state));
bool cf_on_loop_thread(void);
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t cf_now_ns(void);

/* Start a task in `scope` running fn(ctx, arg); it is queued and runs when
 * the run queue is next drained. `t` may be caller-provided memory (NULL:
 * allocated in the scope). Returns NULL when no stack could be had. */
cf_task *cf_task_start(cf_task *t, cf_scope *scope, void *ctx, cf_task_body fn, void *arg,
                       const char *label);
void cf_task_cancel(cf_task *t);
/* Resume ready tasks until none is left (no-op inside a coroutine). */
void cf_sched_run(void);
/* The running task, or NULL on the loop stack. */
cf_task *cf_task_current(void);
/* Suspend the running task until woken; returns the wake reason. */
int cf_task_suspend(cf_task *t);
void cf_task_wake(cf_task *t, int result);

/* The awaits (task.c), on the running task. Each returns what the public
 * call of the same name documents in carafe.h. */
int cf_task_await(void *awaitable, int64_t timeout_ms);
int cf_task_await_all(void *const *aws, size_t n, int64_t timeout_ms);
int cf_task_await_any(void *const *aws, size_t n, int64_t timeout_ms);
/* cf_task_await that cancellation of the caller does not interrupt. */
int cf_task_await_shielded(void *awaitable);
int cf_task_sleep(uint64_t ms);
/* Run fn(arg) on the thread pool; its scope is kept until fn returned. */
cf_task *cf_task_to_thread(cf_scope *scope, cf_work_fn fn, void *arg);

#endif
