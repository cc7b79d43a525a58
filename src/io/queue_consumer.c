/*
 * queue_consumer.c — the task queue's consumer, the same on both stores:
 * on each loop it claims due jobs, runs every job as a background task
 * while renewing its lease, records the outcome (done, retry after a
 * backoff, or dead letter), and has the periodic and cron jobs enqueued
 * when their time comes. Everything runs on the loop thread.
 *
 * Per loop (a scheduler-local slot) a consumer: a cf_timer polls (every POLL_MS, at
 * once after a local enqueue, a finished job or a full batch) by starting a
 * short "claim" background task, which claims up to each handler's free
 * concurrency and starts every job as a background task of its own. Being
 * background tasks, the worker's graceful stop and the test client wait for
 * them.
 *
 * A periodic job's period starts every period_s seconds, a cron job's at
 * each minute its schedule matches (io/cron.h). Until a period is handled,
 * each claim on this loop asks the store to enqueue that period's job; the
 * store sees to it that only one consumer, of any process, does.
 */
#include "io/queue_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POLL_MS 100
#define MAX_BACKOFF_MS 3600000

void cf__queue_wake(q_loop *L)
{
    if (!L || L->stopping || !L->polling)
        return;
    if (L->claiming)
        L->again = true;
    else
        cf_timer_start(&L->poll, 0);
}

/* A running job's lease, renewed every third of the visibility timeout,
 * so the timeout only has to cover a dead worker, not a long job. */
typedef struct q_lease {
    q_handler *h;
    int64_t id;
    int attempts;
    const char *sid;
} q_lease;

static int lease_main(cf_req *rq, void *arg)
{
    q_lease *l = arg;
    int64_t every = l->h->o.visibility_ms / 3 > 0 ? l->h->o.visibility_ms / 3 : 1;
    while (cf_sleep(rq, (uint64_t)every) == 0) {
        q_op *op = cf__queue_op_new(rq, OP_EXTEND);
        op->id = l->id;
        op->sid = l->sid;
        op->name = l->h->name;
        op->attempts = l->attempts;
        op->at = l->h->o.visibility_ms;
        int rc = cf__queue_op_await(rq, op);
        if (rc == CF_ECANCELED)
            break;
        if (rc != 0) {
            fprintf(stderr, "carafe: job %s #%" PRId64 ": cannot renew its lease: %s %s\n",
                    l->h->name, l->id, cf_strerror(rc), op->err);
        } else if (op->result == 0) {
            fprintf(stderr,
                    "carafe: job %s #%" PRId64 " lost its lease (its visibility timeout ran out"
                    " and it was claimed again): it may run twice\n",
                    l->h->name, l->id);
            break;
        }
    }
    return 0;
}

static int job_main(cf_req *rq, void *arg)
{
    q_jobblk *b = *(q_jobblk **)arg;
    q_loop *L = cf_sched_local_get(&cf__queue_loop_key);
    cf_queue *q = L->q;
    q_handler *h = &q->h[b->hidx];
    size_t hidx = b->hidx;
    int64_t id = b->id;
    int attempts = b->attempts;
    char *payload = cf_strdup(rq, b->payload);
    char *sid = cf_strdup(rq, b->sid);
    free(b);

    int rc;
    const char *err;
    if (attempts > h->o.max_attempts) {
        rc = CF_EFAIL;
        err = "the worker running its last attempt died (visibility timeout)";
    } else {
        cf_job job = {id, h->name, payload, json_loads(payload, JSON_DECODE_ANY, NULL), attempts,
                      h->o.max_attempts};
        q_lease *lease = cf_alloc(rq, sizeof *lease);
        *lease = (q_lease){h, id, attempts, sid};
        cf_task *renew = cf_spawn(rq, lease_main, lease);
        rc = h->fn(rq, &job);
        json_decref(job.data);
        if (renew) {
            cf_cancel(renew);
            cf_await(rq, renew, -1);
        }
        const char *m = cf_errmsg(rq);
        err = rc ? (*m ? cf_sprintf(rq, "%s: %s", cf_strerror(rc), m) : cf_strerror(rc)) : NULL;
    }
    if (rc == CF_ECANCELED && cf_cancelled(rq)) {
        /* The worker is going: the lease runs out, another worker takes it. */
        L->running[hidx]--;
        return 0;
    }
    q_op *op = cf__queue_op_new(rq, OP_ACK);
    op->id = id;
    op->sid = sid;
    op->name = h->name;
    op->payload = payload;
    op->attempts = attempts;
    if (rc != 0) {
        op->error = err;
        if (attempts >= h->o.max_attempts) {
            op->kind = OP_DEAD;
            fprintf(stderr, "carafe: job %s #%" PRId64 " failed (attempt %d of %d): %s; dead letter\n",
                    h->name, id, attempts, h->o.max_attempts, err);
        } else {
            int64_t delay = h->o.backoff_ms;
            for (int i = 1; i < attempts && delay < MAX_BACKOFF_MS; i++)
                delay *= 2;
            if (delay > MAX_BACKOFF_MS)
                delay = MAX_BACKOFF_MS;
            op->kind = OP_RETRY;
            op->at = delay;
            fprintf(stderr,
                    "carafe: job %s #%" PRId64 " failed (attempt %d of %d): %s; retry in %" PRId64
                    " ms\n",
                    h->name, id, attempts, h->o.max_attempts, err, delay);
        }
    }
    int frc = cf__queue_op_await(rq, op);
    if (frc != 0)
        fprintf(stderr, "carafe: job %s #%" PRId64 ": cannot record its outcome: %s %s\n", h->name,
                id, cf_strerror(frc), op->err);
    L->running[hidx]--;
    cf__queue_wake(L);
    return 0;
}

static void free_claimed(void *p)
{
    q_op *op = p;
    for (q_jobblk *b = op->jobs, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    op->jobs = NULL;
}

static int claim_main(cf_req *rq, void *arg)
{
    q_loop *L = *(q_loop **)arg;
    cf_queue *q = L->q;
    q_op *op = cf__queue_op_new(rq, OP_CLAIM);
    op->claims = cf_alloc(rq, q->nh * sizeof *op->claims);
    int64_t now_s = cf__queue_now_ms() / 1000;
    for (size_t i = 0; i < q->nh; i++) {
        q_handler *h = &q->h[i];
        q_claim c = {i, h->name, h->o.concurrency - L->running[i], h->o.visibility_ms, 0, false, 0};
        if (h->period_s > 0) {
            int64_t ps = now_s / h->period_s * h->period_s;
            if (ps != L->last_period[i])
                c.period_start = ps;
        } else if (h->has_cron) {
            /* A cron "period" is a matching minute; minutes nobody saw
             * (every worker down) are skipped, as cron does. */
            int64_t minute = now_s / 60 * 60;
            if (minute != L->last_period[i] && cf_cron_matches(&h->cron, minute))
                c.period_start = minute;
        }
        if (c.want > 0 || c.period_start > 0)
            op->claims[op->nclaims++] = c;
    }
    /* Claimed jobs not handed to a task are freed with the claim's memory:
     * after a failure, or a cancel while a pool thread still claims. */
    cf_defer(rq, free_claimed, op);
    int rc = op->nclaims ? cf__queue_op_await(rq, op) : 0;
    bool full = false;
    if (rc != 0 && rc != CF_ECANCELED)
        fprintf(stderr, "carafe: task queue: claiming jobs failed: %s %s\n", cf_strerror(rc),
                op->err);
    if (rc == 0) {
        for (size_t i = 0; i < op->nclaims; i++) {
            q_claim *c = &op->claims[i];
            if (c->period_done)
                L->last_period[c->hidx] = c->period_start;
            if (c->want > 0 && c->got == c->want)
                full = true;
            if (c->period_start > 0 && c->period_done)
                full = true; /* its job may be waiting: look again */
        }
        q_jobblk *release = NULL, *claimed = op->jobs;
        op->jobs = NULL; /* each is handed to its task or released below */
        for (q_jobblk *b = claimed, *n; b; b = n) {
            n = b->next;
            b->next = NULL;
            if (L->stopping) {
                b->next = release;
                release = b;
                continue;
            }
            L->running[b->hidx]++;
            const char *label = cf_sprintf(rq, "job %s #%" PRId64, q->h[b->hidx].name, b->id);
            if (cf_background(rq, label, job_main, &b, sizeof b) != 0) {
                L->running[b->hidx]--;
                b->next = release;
                release = b;
            }
        }
        if (release) {
            q_op *rel = cf__queue_op_new(rq, OP_RELEASE);
            rel->jobs = release;
            cf__queue_op_await(rq, rel);
            for (q_jobblk *b = release, *n; b; b = n) {
                n = b->next;
                free(b);
            }
        }
    }
    L->claiming = false;
    if (!L->stopping)
        cf_timer_start(&L->poll, full || L->again ? 0 : POLL_MS);
    L->again = false;
    return 0;
}

static void on_poll(cf_timer *t)
{
    q_loop *L = (q_loop *)((char *)t - offsetof(q_loop, poll));
    if (L->stopping || L->claiming || !L->polling)
        return;
    L->claiming = true;
    if (cf_background(L->ctx, "task queue claim", claim_main, &L, sizeof L) != 0) {
        L->claiming = false;
        cf_timer_start(&L->poll, POLL_MS);
    }
}

static void bg_nop(cf_exchange *x) { (void)x; }
static const cf_exchange_ops ctx_ops = {.send = bg_nop, .finished = bg_nop};

static void loop_close(void *state)
{
    q_loop *L = state;
    cf_timer_stop(&L->poll);
    cf__queue_redis_disconnect(L);
    cf_req_free(L->ctx);
    free(L->running);
    free(L->last_period);
    free(L);
}

/* This loop's queue state, created on first use. */
q_loop *cf__queue_loop_get(cf_app *app)
{
    q_loop *L = cf_sched_local_get(&cf__queue_loop_key);
    cf_queue *q = cf__queue_state(app);
    if (L || !q || !cf_sched_get())
        return L;
    L = calloc(1, sizeof *L);
    if (!L)
        return NULL;
    L->app = app;
    L->q = q;
    L->running = calloc(q->nh + 1, sizeof *L->running);
    L->last_period = calloc(q->nh + 1, sizeof *L->last_period);
    L->ctx = cf_req_new(app, &ctx_ops, NULL);
    if (!L->running || !L->last_period || !L->ctx) {
        free(L->running);
        free(L->last_period);
        if (L->ctx)
            cf_req_free(L->ctx);
        free(L);
        return NULL;
    }
    char host[32] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    snprintf(L->consumer, sizeof L->consumer, "%s-%d-%p", host, (int)getpid(), (void *)L);
    cf_timer_init(&L->poll, on_poll);
    cf_sched_set_local(&cf__queue_loop_key, L, loop_close);
    return L;
}

void cf_queue_loop_start(cf_app *app)
{
    cf_queue *q = cf__queue_state(app);
    if (!q || !q->nh)
        return;
    q_loop *L = cf__queue_loop_get(app);
    if (!L || L->polling)
        return;
    L->polling = true;
    cf_timer_start(&L->poll, 0);
}

bool cf_queue_loop_active(void) { return cf_sched_local_get(&cf__queue_loop_key) != NULL; }

void cf_queue_loop_stop(void)
{
    q_loop *L = cf_sched_local_get(&cf__queue_loop_key);
    if (!L || !L->polling)
        return;
    L->stopping = true;
    cf_timer_stop(&L->poll);
}
