/*
 * task.c — the async primitives on the running task: sleep, await (one,
 * all, any, with timeouts), cancel, and running blocking code on libuv's
 * thread pool. Everything suspends only the calling task (see
 * core/sched.h). The public calls that take a request (cf_await, cf_spawn,
 * ...) are thin wrappers in src/app/async.c.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/sched.h"

#define TASK_OF_TIMER(tm) ((cf_task *)((char *)(tm) - offsetof(cf_task, timer)))

enum { WAIT_ALL = 1, WAIT_ANY = 2 };

static cf_waitable *as_waitable(void *aw)
{
    cf_waitable *w = aw;
    if (!w || w->magic != CF_WAITABLE_MAGIC) {
        fprintf(stderr, "carafe: an await was given something that is not awaitable\n");
        abort();
    }
    return w;
}

static void on_wait_timeout(cf_timer *tm) { cf_task_wake(TASK_OF_TIMER(tm), CF_ETIMEDOUT); }
static void on_sleep_done(cf_timer *tm) { cf_task_wake(TASK_OF_TIMER(tm), 0); }

/* Suspend until the wait condition holds over aws[0..n). Returns 0 (the
 * condition holds), CF_ETIMEDOUT, CF_ECANCELED, CF_EPERM or CF_EINVAL. */
static void clear_waiter(void *const *aws, size_t n, cf_task *t)
{
    for (size_t i = 0; i < n; i++) {
        cf_waitable *w = aws[i];
        if (w->waiter == t)
            w->waiter = NULL;
    }
}

static int wait_on(void *const *aws, size_t n, int64_t timeout_ms, int mode)
{
    cf_task *t = cf_task_current();
    if (!t)
        return CF_EPERM; /* a pool thread, or plain code outside any task */
    if (t->cancelled && !t->shielded)
        return CF_ECANCELED;
    size_t pending = 0;
    bool any_done = false;
    for (size_t i = 0; i < n; i++) {
        cf_waitable *w = as_waitable(aws[i]);
        if (w->done) {
            any_done = true;
            continue;
        }
        if (w == &t->w || (w->waiter && w->waiter != t)) {
            /* Awaiting itself would never wake; two waiters are not supported. */
            clear_waiter(aws, i, t);
            return CF_EINVAL;
        }
        if (!w->waiter) { /* the same handle listed twice counts once */
            w->waiter = t;
            pending++;
        }
    }
    int rc = 0;
    if (mode == WAIT_ANY ? !any_done : pending > 0) {
        t->wait_mode = mode;
        t->wait_left = pending;
        if (timeout_ms >= 0) {
            t->timer.cb = on_wait_timeout;
            cf_timer_start(&t->timer, (uint64_t)timeout_ms);
        }
        rc = cf_task_suspend(t);
        cf_timer_stop(&t->timer);
        t->wait_mode = 0;
        /* Cancelling a task cancels what it owns first, and an awaited job
         * that completes on cancel wakes the task as if the condition held:
         * the caller was cancelled all the same, and must hear so (an
         * await_any must not return an index then). */
        if (t->cancelled && !t->shielded)
            rc = CF_ECANCELED;
    }
    clear_waiter(aws, n, t);
    return rc;
}

int cf_task_await(void *awaitable, int64_t timeout_ms)
{
    void *aws[1] = {awaitable};
    int rc = wait_on(aws, 1, timeout_ms, WAIT_ALL);
    cf_waitable *w = awaitable;
    if (rc == CF_ETIMEDOUT)
        cf_cancel(w);
    return rc < 0 ? rc : w->result;
}

int cf_task_await_all(void *const *aws, size_t n, int64_t timeout_ms)
{
    int rc = wait_on(aws, n, timeout_ms, WAIT_ALL);
    if (rc == CF_ETIMEDOUT)
        for (size_t i = 0; i < n; i++)
            if (!((cf_waitable *)aws[i])->done)
                cf_cancel(aws[i]);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (((cf_waitable *)aws[i])->result < 0)
            return ((cf_waitable *)aws[i])->result;
    return 0;
}

int cf_task_await_any(void *const *aws, size_t n, int64_t timeout_ms)
{
    if (n == 0)
        return CF_EINVAL;
    int rc = wait_on(aws, n, timeout_ms, WAIT_ANY);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (((cf_waitable *)aws[i])->done)
            return (int)i;
    return CF_EINVAL; /* not reached: woken means one is done */
}

int cf_task_sleep(uint64_t ms)
{
    if (!cf_on_loop_thread()) {
        /* A threaded handler: blocking its own pool thread is the point. */
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0)
            ;
        return 0;
    }
    cf_task *t = cf_task_current();
    if (!t)
        return CF_EPERM;
    if (t->cancelled && !t->shielded)
        return CF_ECANCELED;
    t->timer.cb = on_sleep_done;
    cf_timer_start(&t->timer, ms);
    int rc = cf_task_suspend(t);
    cf_timer_stop(&t->timer);
    return rc;
}

void cf_cancel(void *awaitable)
{
    cf_waitable *w = as_waitable(awaitable);
    if (!w->done && w->cancel)
        w->cancel(w);
}

bool cf_done(void *awaitable) { return as_waitable(awaitable)->done; }
int cf_result(void *awaitable) { return as_waitable(awaitable)->result; }

/* ---- thread pool ---------------------------------------------------------- */

typedef struct cf_work {
    cf_waitable w;
    uv_work_t uv;
    cf_work_fn fn;
    void *arg;
    int rc;
    cf_scope *scope;
} cf_work;

static void work_run(uv_work_t *u)
{
    cf_work *wk = u->data;
    wk->rc = wk->fn(wk->arg);
}

static void work_after(uv_work_t *u, int status)
{
    cf_work *wk = u->data;
    cf_scope *scope = wk->scope;
    cf_waitable_complete(&wk->w, status == UV_ECANCELED ? CF_ECANCELED : wk->rc);
    cf_scope_unref(scope); /* only now may the request's memory go */
    cf_sched_run();
}

static void work_cancel(cf_waitable *w)
{
    cf_work *wk = (cf_work *)w;
    /* Succeeds only if the job has not started; a running one finishes in
     * the background while its scope stays referenced. */
    uv_cancel((uv_req_t *)&wk->uv);
    cf_waitable_complete(w, CF_ECANCELED);
}

cf_task *cf_task_to_thread(cf_scope *scope, cf_work_fn fn, void *arg)
{
    if (!cf_on_loop_thread() || !fn)
        return NULL;
    cf_work *wk = cf_arena_alloc(scope->arena, sizeof *wk);
    if (!wk)
        return NULL;
    cf_waitable_init(&wk->w, work_cancel);
    wk->fn = fn;
    wk->arg = arg;
    wk->rc = 0;
    wk->scope = scope;
    wk->uv.data = wk;
    if (uv_queue_work(cf_sched_get()->loop, &wk->uv, work_run, work_after) != 0) {
        cf_waitable_complete(&wk->w, CF_ENOMEM);
        return (cf_task *)wk;
    }
    cf_scope_ref(scope);
    /* cf_task is the public name for any awaitable handle. */
    return (cf_task *)wk;
}

int cf_task_await_shielded(void *awaitable)
{
    cf_task *t = cf_task_current();
    bool was = t ? t->shielded : false;
    if (t)
        t->shielded = true;
    int rc = cf_task_await(awaitable, -1);
    if (t)
        t->shielded = was;
    return rc;
}
