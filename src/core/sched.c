/*
 * sched.c — run queue, timer heap, task life cycle (see sched.h).
 */
#include "core/sched.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static __thread cf_sched *the_sched;

cf_sched *cf_sched_get(void) { return the_sched; }
bool cf_on_loop_thread(void) { return the_sched != NULL; }

void cf_scope_ref(cf_scope *s) { s->refs++; }
void cf_scope_unref(cf_scope *s)
{
    if (--s->refs == 0 && s->release)
        s->release(s);
}

/* ---- timers ----------------------------------------------------------- */

static void heap_swap(cf_timer **h, size_t a, size_t b)
{
    cf_timer *t = h[a];
    h[a] = h[b];
    h[b] = t;
    h[a]->idx = a;
    h[b]->idx = b;
}

static void heap_up(cf_timer **h, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p]->due <= h[i]->due)
            break;
        heap_swap(h, p, i);
        i = p;
    }
}

static void heap_down(cf_timer **h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && h[l]->due < h[m]->due)
            m = l;
        if (r < n && h[r]->due < h[m]->due)
            m = r;
        if (m == i)
            break;
        heap_swap(h, i, m);
        i = m;
    }
}

static void on_uv_timer(uv_timer_t *h)
{
    cf_sched *s = h->data;
    uint64_t now = uv_now(s->loop);
    while (s->heap_len && s->heap[0]->due <= now) {
        cf_timer *t = s->heap[0];
        cf_timer_stop(t);
        t->cb(t);
    }
    if (s->heap_len)
        uv_timer_start(&s->uv_timer, on_uv_timer, s->heap[0]->due - now, 0);
    cf_sched_run();
}

void cf_timer_init(cf_timer *t, void (*cb)(cf_timer *))
{
    t->idx = SIZE_MAX;
    t->due = 0;
    t->cb = cb;
}

#define STALE_MS 2

void cf_timer_start(cf_timer *t, uint64_t ms)
{
    cf_sched *s = the_sched;
    if (cf_timer_active(t))
        cf_timer_stop(t);
    if (s->heap_len == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 256;
        cf_timer **h = realloc(s->heap, cap * sizeof *h);
        if (!h)
            abort();
        s->heap = h;
        s->heap_cap = cap;
    }
    /* Timers count from the loop's cached time (the start of its
     * iteration), as libuv's do: timers started in one busy iteration then
     * share a due time and fire in one wake-up. Only when the cache is
     * stale by more than STALE_MS (a handler that ran long, a test client
     * that left the loop idle) does it count from the real time, so a
     * timer never fires early by more than that (plus the truncation of
     * the millisecond clock). */
    uint64_t cached = uv_now(s->loop);
    uv_update_time(s->loop);
    uint64_t fresh = uv_now(s->loop);
    uint64_t now = fresh - cached > STALE_MS ? fresh : cached;
    /* "Forever" (UINT64_MAX) must not wrap around into the past. */
    t->due = ms > UINT64_MAX - now ? UINT64_MAX : now + ms;
    t->idx = s->heap_len;
    s->heap[s->heap_len++] = t;
    heap_up(s->heap, t->idx);
    if (t->idx == 0)
        uv_timer_start(&s->uv_timer, on_uv_timer, t->due > fresh ? t->due - fresh : 0, 0);
}

void cf_timer_stop(cf_timer *t)
{
    cf_sched *s = the_sched;
    if (!cf_timer_active(t))
        return;
    size_t i = t->idx, last = --s->heap_len;
    t->idx = SIZE_MAX;
    if (i != last) {
        s->heap[i] = s->heap[last];
        s->heap[i]->idx = i;
        heap_down(s->heap, s->heap_len, i);
        heap_up(s->heap, i);
    }
    /* The libuv timer may now fire early; on_uv_timer then just re-arms.
     * With no timer left it must stop: an armed libuv timer keeps the loop
     * alive (a shutdown would wait for a timeout nobody awaits any more). */
    if (s->heap_len == 0)
        uv_timer_stop(&s->uv_timer);
}

/* ---- scheduler -------------------------------------------------------- */

int cf_sched_init(cf_sched *s, uv_loop_t *loop)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    int rc = uv_timer_init(loop, &s->uv_timer);
    if (rc)
        return rc;
    s->uv_timer.data = s;
    the_sched = s;
    cf_coro_install_overflow_handler();
    return 0;
}

void *cf_sched_local_get(const void *key)
{
    if (!the_sched)
        return NULL;
    for (int i = 0; i < CF_SCHED_LOCALS; i++)
        if (the_sched->locals[i].key == key)
            return the_sched->locals[i].state;
    return NULL;
}

int cf_sched_set_local(const void *key, void *state, void (*close)(void *state))
{
    cf_sched_local *free_slot = NULL;
    for (int i = 0; i < CF_SCHED_LOCALS; i++) {
        cf_sched_local *l = &the_sched->locals[i];
        if (l->key == key) {
            free_slot = l;
            break;
        }
        if (!l->key && !free_slot)
            free_slot = l;
    }
    if (!free_slot)
        return CF_ENOMEM;
    *free_slot = (cf_sched_local){key, state, close};
    return 0;
}

void cf_sched_close(cf_sched *s)
{
    for (int i = 0; i < CF_SCHED_LOCALS; i++) {
        if (s->locals[i].close)
            s->locals[i].close(s->locals[i].state);
        s->locals[i] = (cf_sched_local){NULL, NULL, NULL};
    }
    uv_close((uv_handle_t *)&s->uv_timer, NULL);
    free(s->heap);
    s->heap = NULL;
    s->heap_len = s->heap_cap = 0;
    if (the_sched == s)
        the_sched = NULL;
}

cf_task *cf_task_current(void) { return the_sched ? the_sched->current : NULL; }

static void runq_push(cf_sched *s, cf_task *t)
{
    t->runq_next = NULL;
    if (s->runq_tail)
        s->runq_tail->runq_next = t;
    else
        s->runq_head = t;
    s->runq_tail = t;
}

static void task_exited(cf_task *t);
static void task_crashed(cf_task *t);

void cf_sched_run(void)
{
    cf_sched *s = the_sched;
    if (!s || s->current || s->draining)
        return;
    s->draining = true;
    while (s->runq_head) {
        cf_task *t = s->runq_head;
        s->runq_head = t->runq_next;
        if (!s->runq_head)
            s->runq_tail = NULL;
        s->current = t;
        t->state = CF_TASK_RUNNING;
        bool finished = cf_coro_resume(t->co);
        s->current = NULL;
        if (finished) {
            t->co = NULL;
            task_exited(t);
        } else if (cf_coro_crashed(t->co)) {
            task_crashed(t);
        }
    }
    s->draining = false;
}

int cf_task_suspend(cf_task *t)
{
    t->state = CF_TASK_WAITING;
    cf_coro_yield();
    return t->wake_result;
}

void cf_task_wake(cf_task *t, int result)
{
    if (t->state != CF_TASK_WAITING)
        return;
    t->wake_result = result;
    t->state = CF_TASK_READY;
    runq_push(the_sched, t);
    cf_sched_run();
}

/* ---- waitables -------------------------------------------------------- */

void cf_waitable_init(cf_waitable *w, void (*cancel)(cf_waitable *))
{
    memset(w, 0, sizeof *w);
    w->magic = CF_WAITABLE_MAGIC;
    w->cancel = cancel;
    cf_task *owner = cf_task_current();
    if (owner) {
        w->owner = owner;
        w->owned_next = owner->owned;
        if (owner->owned)
            owner->owned->owned_prev = w;
        owner->owned = w;
    }
}

void cf_waitable_detach(cf_waitable *w)
{
    if (!w->owner)
        return;
    if (w->owned_prev)
        w->owned_prev->owned_next = w->owned_next;
    else
        w->owner->owned = w->owned_next;
    if (w->owned_next)
        w->owned_next->owned_prev = w->owned_prev;
    w->owner = NULL;
    w->owned_next = w->owned_prev = NULL;
}

enum { WAIT_ALL = 1, WAIT_ANY = 2 };

void cf_waitable_complete(cf_waitable *w, int result)
{
    if (w->done)
        return;
    w->done = true;
    w->result = result;
    cf_waitable_detach(w);
    cf_task *t = w->waiter;
    w->waiter = NULL;
    if (t && t->state == CF_TASK_WAITING) {
        if (t->wait_mode == WAIT_ANY || (t->wait_mode == WAIT_ALL && --t->wait_left == 0))
            cf_task_wake(t, 0);
    }
}

/* ---- tasks ------------------------------------------------------------ */

static void task_body(void *arg)
{
    cf_task *t = arg;
    t->w.result = t->fn(t->ctx, t->arg);
}

static void cancel_task_waitable(cf_waitable *w) { cf_task_cancel((cf_task *)w); }

cf_task *cf_task_start(cf_task *t, cf_scope *scope, void *ctx, cf_task_body fn, void *arg,
                       const char *label)
{
    if (!t) {
        t = cf_arena_alloc(scope->arena, sizeof *t);
        if (!t)
            return NULL;
    }
    memset(t, 0, sizeof *t);
    t->co = cf_coro_new(task_body, t);
    if (!t->co)
        return NULL;
    cf_coro_set_label(t->co, label);
    cf_waitable_init(&t->w, cancel_task_waitable);
    t->ctx = ctx;
    t->scope = scope;
    t->fn = fn;
    t->arg = arg;
    cf_timer_init(&t->timer, NULL);
    cf_scope_ref(scope);
    /* A child of a cancelled task starts cancelled. */
    if (t->w.owner && t->w.owner->cancelled && !t->w.owner->shielded)
        t->cancelled = true;
    t->state = CF_TASK_READY;
    runq_push(the_sched, t);
    return t;
}

static void task_exited(cf_task *t)
{
    cf_timer_stop(&t->timer);
    t->state = CF_TASK_DONE;
    /* Whatever it still owns is orphaned: cancel it, it finishes on its own. */
    while (t->owned) {
        cf_waitable *w = t->owned;
        cf_waitable_detach(w);
        if (w->cancel)
            w->cancel(w);
    }
    int result = t->w.result;
    cf_waitable_complete(&t->w, result);
    cf_scope *scope = t->scope;
    if (t->on_exit)
        t->on_exit(t);
    cf_scope_unref(scope);
}

/* The task's code died of a fatal signal (see cf_coro_enable_crash_recovery).
 * Its stack is abandoned, not reused, and its scope is never released: what
 * it held may be inconsistent. Whoever awaits it sees CF_EFAIL, and its
 * scope's owner decides what else to drop. */
static void task_crashed(cf_task *t)
{
    cf_timer_stop(&t->timer);
    t->state = CF_TASK_DONE;
    t->co = NULL;
    while (t->owned) {
        cf_waitable *w = t->owned;
        cf_waitable_detach(w);
        if (w->cancel)
            w->cancel(w);
    }
    cf_waitable_complete(&t->w, CF_EFAIL);
    if (t->scope->crashed)
        t->scope->crashed(t->scope, t);
}

void cf_task_cancel(cf_task *t)
{
    if (t->state == CF_TASK_DONE || t->cancelled)
        return;
    t->cancelled = true;
    for (cf_waitable *w = t->owned, *next; w; w = next) {
        next = w->owned_next;
        if (w->cancel)
            w->cancel(w);
    }
    if (t->state == CF_TASK_WAITING && !t->shielded)
        cf_task_wake(t, CF_ECANCELED);
}

uint64_t cf_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
