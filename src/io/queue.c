/*
 * queue.c — the durable task queue's front end (docs/tasks.md): which
 * store holds the queue (QUEUE_URL: a SQLite file, by default next to a
 * SQLite DATABASE_URL, or Redis Streams), the handlers and their options,
 * periodic and cron jobs, the operations both stores run, and the public
 * calls (cf_enqueue, cf_queue_dead, cf_queue_requeue, cf_queue_pending).
 * The stores are queue_sqlite.c and queue_redis.c; the consumer that
 * claims and runs the jobs on each loop is queue_consumer.c; see
 * queue_int.h for how the pieces fit.
 *
 * A task's view: each call makes an operation in the request's arena and
 * awaits it on the store; errors are CF_E* values.
 */
#include "io/queue_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/db.h"

#define MAX_BATCH 256

int64_t cf__queue_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- set-up ------------------------------------------------------------- */

char *cf__queue_xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        cf_setup_fail("out of memory");
    return p;
}

/* sqlite:///rel.db -> "rel.db", sqlite:////abs.db -> "/abs.db"; NULL if not
 * a SQLite file URL. The query (?...) is dropped. */
static char *sqlite_path(const char *url)
{
    if (!url || strncmp(url, "sqlite://", 9) != 0)
        return NULL;
    const char *p = url + 9;
    if (*p != '/')
        return NULL; /* sqlite://:memory: */
    p++;
    size_t n = strcspn(p, "?");
    if (n == 0)
        return NULL;
    char *s = cf__queue_xstrdup(p);
    s[n] = 0;
    return s;
}

static char *default_path(cf_app *app)
{
    cf_db *db = cf__db_of(app);
    char *base = NULL;
    if (db && db->kind == DB_SQLITE && db->display)
        base = sqlite_path(db->display);
    else if (!db || db->kind == DB_NONE)
        base = sqlite_path(getenv("DATABASE_URL"));
    if (!base)
        return cf__queue_xstrdup("queue.db");
    size_t n = strlen(base);
    if (n > 3 && strcmp(base + n - 3, ".db") == 0)
        base[n - 3] = 0;
    size_t len = strlen(base) + sizeof "-queue.db";
    char *out = malloc(len);
    if (!out)
        cf_setup_fail("out of memory");
    snprintf(out, len, "%s-queue.db", base);
    free(base);
    return out;
}

/* The app's queue state, created on first use (the backends fill it in). */
cf_queue *cf__queue_of(cf_app *app)
{
    cf_queue *q = cf__queue_state(app);
    if (!q) {
        q = calloc(1, sizeof *q);
        if (!q)
            cf_setup_fail("out of memory");
        pthread_mutex_init(&q->mu, NULL);
        pthread_mutex_init(&q->wmu, NULL);
        if (cf_app_attach_service(app, &cf__queue_service, q) != 0)
            cf_setup_fail("too many I/O modules attached to the app");
    }
    return q;
}

int cf_queue_open(cf_app *app, const char *url)
{
    if (!app)
        return CF_EINVAL;
    const char *from = url ? "the queue URL" : "QUEUE_URL";
    if (!url)
        url = getenv("QUEUE_URL");
    char *path;
    if (url && *url) {
        if (strncmp(url, "redis://", 8) == 0)
            return cf__queue_redis_open(app, url, from);
        path = sqlite_path(url);
        if (!path) {
            fprintf(stderr, "carafe: %s %s is not sqlite:///path.db\n", from, url);
            return CF_EDBURL;
        }
    } else {
        path = default_path(app);
    }
    cf__queue_sqlite_open(app, path);
    return 0;
}

static q_handler *find_handler(cf_queue *q, const char *name, size_t *idx)
{
    for (size_t i = 0; q && i < q->nh; i++)
        if (strcmp(q->h[i].name, name) == 0) {
            if (idx)
                *idx = i;
            return &q->h[i];
        }
    return NULL;
}

int cf_queue_handler(cf_app *app, const char *name, cf_job_fn fn, const cf_queue_opts *opts)
{
    if (!app || !name || !*name || !fn)
        return CF_EINVAL;
    if (!cf__queue_state(app)) {
        int rc = cf_queue_open(app, NULL);
        if (rc)
            return rc;
    }
    cf_queue *q = cf__queue_state(app);
    q_handler *h = find_handler(q, name, NULL);
    if (!h) {
        q_handler *n = realloc(q->h, (q->nh + 1) * sizeof *n);
        if (!n)
            cf_setup_fail("out of memory");
        q->h = n;
        h = &q->h[q->nh++];
        memset(h, 0, sizeof *h);
        h->name = cf__queue_xstrdup(name);
    }
    h->fn = fn;
    cf_queue_opts o = opts ? *opts : (cf_queue_opts){0};
    if (o.concurrency <= 0)
        o.concurrency = 16;
    if (o.concurrency > MAX_BATCH)
        o.concurrency = MAX_BATCH;
    if (o.max_attempts <= 0)
        o.max_attempts = 5;
    if (o.backoff_ms <= 0)
        o.backoff_ms = 1000;
    if (o.visibility_ms <= 0)
        o.visibility_ms = 30000;
    h->o = o;
    return 0;
}

int cf_queue_periodic(cf_app *app, const char *name, int64_t period_s)
{
    if (!app || !name || period_s <= 0)
        return CF_EINVAL;
    q_handler *h = find_handler(cf__queue_state(app), name, NULL);
    if (!h) {
        fprintf(stderr, "carafe: periodic job %s has no handler (cf_queue_handler first)\n", name);
        return CF_EINVAL;
    }
    h->period_s = period_s;
    return 0;
}

int cf_queue_cron(cf_app *app, const char *name, const char *schedule)
{
    if (!app || !name || !schedule)
        return CF_EINVAL;
    q_handler *h = find_handler(cf__queue_state(app), name, NULL);
    const char *err = NULL;
    cf_cron cron;
    if (!h || cf_cron_parse(schedule, &cron, &err) != 0) {
        fprintf(stderr, "carafe: periodic job %s: %s\n", name,
                h ? err : "has no handler (cf_queue_handler first)");
        return CF_EINVAL;
    }
    h->cron = cron;
    h->has_cron = true;
    return 0;
}

static void queue_free(void *p)
{
    cf_queue *q = p;
    if (!q)
        return;
    cf__queue_sqlite_close_idle(q);
    free(q->idle);
    for (size_t i = 0; i < q->nh; i++)
        free(q->h[i].name);
    free(q->h);
    free(q->path);
    free(q->rhost);
    free(q->ruser);
    free(q->rpass);
    pthread_mutex_destroy(&q->mu);
    pthread_mutex_destroy(&q->wmu);
    free(q);
}

/* The app is about to be served: reach the store (cf_queue_open only
 * recorded it, so --help works without one). */
static int svc_prepare(cf_app *app, void *state)
{
    (void)app;
    cf_queue *q = state;
    if (q->ready)
        return 0;
    int rc = q->kind == Q_REDIS ? cf__queue_redis_prepare(q) : cf__queue_sqlite_prepare(q);
    q->ready = rc == 0;
    return rc;
}

static void svc_loop_start(cf_app *app, void *state)
{
    (void)state;
    cf_queue_loop_start(app);
}

static void svc_loop_stop(cf_app *app, void *state)
{
    (void)app;
    (void)state;
    cf_queue_loop_stop();
}

/* How the queue plugs into the app: its store is reached when the app is
 * about to be served, its consumer runs on every loop that serves the
 * app, and it goes with the app. */
const cf_service cf__queue_service = {
    .name = "task queue",
    .prepare = svc_prepare,
    .loop_start = svc_loop_start,
    .loop_stop = svc_loop_stop,
    .free = queue_free,
};
const char cf__queue_loop_key = 0;

cf_queue *cf__queue_state(const cf_app *app)
{
    return cf_app_service_state(app, &cf__queue_service);
}

/* ---- operations --------------------------------------------------------- */

/* Run op on a pool thread (SQLite) or on this loop's connection (Redis)
 * and wait; its memory is in rq. */
int cf__queue_op_await(cf_req *rq, q_op *op)
{
    if (op->q->kind == Q_REDIS)
        return cf__queue_redis_op(rq, op);
    cf_task *t = cf_to_thread(rq, cf__queue_op_run, op);
    if (!t)
        return CF_EPERM;
    return cf_await(rq, t, -1);
}

q_op *cf__queue_op_new(cf_req *rq, int kind)
{
    cf_queue *q = rq && rq->app ? cf__queue_state(rq->app) : NULL;
    if (!q)
        return NULL;
    q_op *op = cf_alloc(rq, sizeof *op);
    memset(op, 0, sizeof *op);
    op->q = q;
    op->kind = kind;
    return op;
}

int64_t cf_queue_count_sync(cf_app *app)
{
    cf_queue *q = cf__queue_state(app);
    if (!q)
        return -1;
    if (q->kind == Q_REDIS)
        return cf__queue_redis_count_sync(q);
    q_op op;
    memset(&op, 0, sizeof op);
    op.q = q;
    op.kind = OP_COUNT;
    return cf__queue_op_run(&op) == 0 ? op.result : -1;
}

/* ---- the public calls (any task) ---------------------------------------- */

int64_t cf_enqueue_at(cf_req *rq, const char *name, const char *payload_json, int64_t at_ms)
{
    if (!rq || !name || !*name)
        return CF_EINVAL;
    if (!payload_json)
        payload_json = "{}";
    json_t *j = json_loads(payload_json, JSON_DECODE_ANY, NULL);
    if (!j)
        return CF_EINVAL;
    json_decref(j);
    q_op *op = cf__queue_op_new(rq, OP_ENQUEUE);
    if (!op)
        return CF_EPERM;
    op->name = cf_strdup(rq, name);
    op->payload = cf_strdup(rq, payload_json);
    op->at = at_ms;
    int rc = cf__queue_op_await(rq, op);
    if (rc != 0)
        return rc;
    if (at_ms <= cf__queue_now_ms()) {
        q_loop *L = cf_sched_local_get(&cf__queue_loop_key);
        if (L && find_handler(L->q, name, NULL))
            cf__queue_wake(L);
    }
    return op->result;
}

int64_t cf_enqueue(cf_req *rq, const char *name, const char *payload_json, int64_t delay_ms)
{
    return cf_enqueue_at(rq, name, payload_json, cf__queue_now_ms() + (delay_ms > 0 ? delay_ms : 0));
}

json_t *cf_queue_dead(cf_req *rq, const char *name, size_t limit)
{
    q_op *op = cf__queue_op_new(rq, OP_LIST);
    if (!op)
        return NULL;
    op->name = name ? cf_strdup(rq, name) : NULL;
    op->n = limit ? (int64_t)limit : 100;
    int rc = cf__queue_op_await(rq, op);
    if (rc != 0) {
        json_decref(op->json);
        return NULL;
    }
    return op->json;
}

int64_t cf_queue_requeue(cf_req *rq, int64_t dead_id)
{
    if (dead_id < 0)
        return CF_EINVAL;
    q_op *op = cf__queue_op_new(rq, OP_REQUEUE);
    if (!op)
        return CF_EPERM;
    op->id = dead_id;
    int rc = cf__queue_op_await(rq, op);
    if (rc != 0)
        return rc;
    if (op->result > 0)
        cf__queue_wake(cf_sched_local_get(&cf__queue_loop_key));
    return op->result;
}

int64_t cf_queue_pending(cf_req *rq, const char *name)
{
    q_op *op = cf__queue_op_new(rq, OP_COUNT);
    if (!op)
        return CF_EPERM;
    op->name = name ? cf_strdup(rq, name) : NULL;
    int rc = cf__queue_op_await(rq, op);
    return rc != 0 ? rc : op->result;
}
