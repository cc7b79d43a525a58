/*
 * async.c — the public async calls that take a request: sleeping,
 * awaiting, spawning children in the request's scope, running blocking
 * code on the thread pool. The machinery is core's (src/core/task.c); what
 * this adds is the request: its scope for memory, its label for crash
 * reports, its cancellation outside a task.
 */
#include <stdlib.h>

#include "app/req.h"

int cf_await(cf_req *rq, void *awaitable, int64_t timeout_ms)
{
    (void)rq;
    return cf_task_await(awaitable, timeout_ms);
}

int cf_await_all_n(cf_req *rq, void *const *aws, size_t n, int64_t timeout_ms)
{
    (void)rq;
    return cf_task_await_all(aws, n, timeout_ms);
}

int cf_await_any_n(cf_req *rq, void *const *aws, size_t n, int64_t timeout_ms)
{
    (void)rq;
    return cf_task_await_any(aws, n, timeout_ms);
}

int cf_sleep(cf_req *rq, uint64_t ms)
{
    (void)rq;
    return cf_task_sleep(ms);
}

/* A child's body as the user wrote it: fn(rq, arg). */
typedef struct spawned {
    cf_task_fn fn;
    void *arg;
} spawned;

static int run_spawned(void *ctx, void *arg)
{
    spawned *sp = arg;
    return sp->fn(ctx, sp->arg);
}

cf_task *cf_spawn(cf_req *rq, cf_task_fn fn, void *arg)
{
    if (!cf_on_loop_thread() || !fn)
        return NULL;
    spawned *sp = cf_arena_alloc(&rq->arena, sizeof *sp);
    if (!sp)
        return NULL;
    sp->fn = fn;
    sp->arg = arg;
    /* Labelled with the request, so a crash report names it. */
    return cf_task_start(NULL, &rq->scope, rq, run_spawned, sp, rq->label);
}

cf_task *cf_to_thread(cf_req *rq, cf_work_fn fn, void *arg)
{
    return cf_task_to_thread(&rq->scope, fn, arg);
}

bool cf_cancelled(cf_req *rq)
{
    cf_task *t = cf_task_current();
    if (t)
        return t->cancelled && !t->shielded;
    return rq->main.cancelled; /* a threaded handler: its request's state */
}
