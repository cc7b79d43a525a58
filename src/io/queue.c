/*
 * queue.c — the durable task queue on SQLite (docs/tasks.md).
 *
 * The queue is one SQLite file (WAL mode) that every worker of every
 * process sharing it reads and writes on libuv's pool threads, each
 * statement on a connection from a small per-process pool (app->queue).
 *
 *   cf_jobs      one row per job waiting or running. A consumer claims due
 *                jobs with one UPDATE ... RETURNING that sets a lease
 *                (claimed_until = now + visibility timeout) and counts the
 *                attempt; SQLite's write lock makes the claim atomic across
 *                processes. The row is deleted only after the handler
 *                returned 0 (at least once); a failure puts it back with
 *                run_at = now + backoff * 2^(attempt-1); a worker that died
 *                leaves the lease to run out, and the job is claimed again.
 *   cf_dead      jobs that failed max_attempts times (listed, re-queued).
 *   cf_periodic  (name, period_start) UNIQUE: the consumer whose INSERT OR
 *                IGNORE adds the row enqueues that period's job.
 *
 * Per loop (CF_SVC_QUEUE) a consumer: a cf_timer polls (every POLL_MS, at
 * once after a local enqueue, a finished job or a full batch) by starting a
 * short "claim" background task, which claims up to each handler's free
 * concurrency and starts every job as a background task of its own. Being
 * background tasks, the worker's graceful stop and the test client wait for
 * them.
 */
#include "io/queue.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/db.h"

#define POLL_MS 100
#define MAX_BATCH 256
#define MAX_BACKOFF_MS 3600000

typedef struct q_handler {
    char *name;
    cf_job_fn fn;
    cf_queue_opts o;
    int64_t period_s; /* > 0: periodic */
} q_handler;

typedef struct cf_queue {
    char *path;
    q_handler *h;
    size_t nh;
    pthread_mutex_t mu;
    /* Writers of this process take turns here rather than in SQLite's busy
     * handler, which sleeps (1, 2, 5, 10 ms...) between tries. */
    pthread_mutex_t wmu;
    sqlite3 **idle;
    size_t nidle, cap;
} cf_queue;

/* A claimed job, malloc'd by the pool thread, freed by its task. */
typedef struct q_jobblk {
    struct q_jobblk *next;
    size_t hidx;
    int64_t id;
    int attempts;
    char payload[];
} q_jobblk;

typedef struct q_loop {
    cf_app *app;
    cf_queue *q;
    cf_req *ctx; /* parent of the background tasks (never runs) */
    cf_timer poll;
    bool claiming, again, stopping;
    int *running;          /* per handler */
    int64_t *last_period;  /* per handler: period already handled here */
} q_loop;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- connections (any thread) ------------------------------------------- */

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS cf_jobs("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, payload TEXT NOT NULL,"
    " run_at INTEGER NOT NULL, claimed_until INTEGER NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, created_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS cf_jobs_due ON cf_jobs(name, run_at);"
    "CREATE TABLE IF NOT EXISTS cf_dead("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER NOT NULL, name TEXT NOT NULL,"
    " payload TEXT NOT NULL, attempts INTEGER NOT NULL, error TEXT, failed_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS cf_periodic("
    " name TEXT NOT NULL, period_start INTEGER NOT NULL, UNIQUE(name, period_start));";

static sqlite3 *conn_open(const char *path, char *err, size_t errcap)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                                 SQLITE_OPEN_URI,
                             NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 10000);
        rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL,
                          NULL);
    }
    if (rc != SQLITE_OK) {
        snprintf(err, errcap, "%s", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

static sqlite3 *conn_get(cf_queue *q, char *err, size_t errcap)
{
    sqlite3 *db = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->nidle)
        db = q->idle[--q->nidle];
    pthread_mutex_unlock(&q->mu);
    return db ? db : conn_open(q->path, err, errcap);
}

static void conn_put(cf_queue *q, sqlite3 *db)
{
    pthread_mutex_lock(&q->mu);
    if (q->nidle == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 8;
        sqlite3 **n = realloc(q->idle, cap * sizeof *n);
        if (!n) {
            pthread_mutex_unlock(&q->mu);
            sqlite3_close(db);
            return;
        }
        q->idle = n;
        q->cap = cap;
    }
    q->idle[q->nidle++] = db;
    pthread_mutex_unlock(&q->mu);
}

void cf_queue_free(void *p)
{
    cf_queue *q = p;
    if (!q)
        return;
    for (size_t i = 0; i < q->nidle; i++)
        sqlite3_close(q->idle[i]);
    free(q->idle);
    for (size_t i = 0; i < q->nh; i++)
        free(q->h[i].name);
    free(q->h);
    free(q->path);
    pthread_mutex_destroy(&q->mu);
    pthread_mutex_destroy(&q->wmu);
    free(q);
}

/* ---- set-up ------------------------------------------------------------- */

static char *xstrdup(const char *s)
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
    char *s = xstrdup(p);
    s[n] = 0;
    return s;
}

static char *default_path(cf_app *app)
{
    cf_db *db = app->db;
    char *base = NULL;
    if (db && db->kind == DB_SQLITE && db->display)
        base = sqlite_path(db->display);
    else if (!db || db->kind == DB_NONE)
        base = sqlite_path(getenv("DATABASE_URL"));
    if (!base)
        return xstrdup("queue.db");
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

int cf_queue_open(cf_app *app, const char *url)
{
    if (!app)
        return CF_EINVAL;
    const char *from = url ? "the queue URL" : "QUEUE_URL";
    if (!url)
        url = getenv("QUEUE_URL");
    char *path;
    if (url && *url) {
        if (strncmp(url, "redis://", 8) == 0) {
            fprintf(stderr, "carafe: %s %s: the Redis backend is not available in this build\n",
                    from, url);
            return CF_EDBURL;
        }
        path = sqlite_path(url);
        if (!path) {
            fprintf(stderr, "carafe: %s %s is not sqlite:///path.db\n", from, url);
            return CF_EDBURL;
        }
    } else {
        path = default_path(app);
    }
    char err[256];
    sqlite3 *db = conn_open(path, err, sizeof err);
    if (db && sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, sizeof err, "%s", sqlite3_errmsg(db));
        sqlite3_close(db);
        db = NULL;
    }
    if (!db) {
        fprintf(stderr, "carafe: cannot open the task queue %s: %s\n", path, err);
        free(path);
        return CF_EDBCONN;
    }
    sqlite3_close(db); /* workers open their own (after fork) */
    cf_queue *q = app->queue;
    if (!q) {
        q = calloc(1, sizeof *q);
        if (!q)
            cf_setup_fail("out of memory");
        pthread_mutex_init(&q->mu, NULL);
        pthread_mutex_init(&q->wmu, NULL);
        app->queue = q;
    }
    for (size_t i = 0; i < q->nidle; i++)
        sqlite3_close(q->idle[i]);
    q->nidle = 0;
    free(q->path);
    q->path = path;
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
    if (!app->queue) {
        int rc = cf_queue_open(app, NULL);
        if (rc)
            return rc;
    }
    cf_queue *q = app->queue;
    q_handler *h = find_handler(q, name, NULL);
    if (!h) {
        q_handler *n = realloc(q->h, (q->nh + 1) * sizeof *n);
        if (!n)
            cf_setup_fail("out of memory");
        q->h = n;
        h = &q->h[q->nh++];
        memset(h, 0, sizeof *h);
        h->name = xstrdup(name);
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
    q_handler *h = find_handler(app->queue, name, NULL);
    if (!h) {
        fprintf(stderr, "carafe: periodic job %s has no handler (cf_queue_handler first)\n", name);
        return CF_EINVAL;
    }
    h->period_s = period_s;
    return 0;
}

/* ---- statements (pool threads) ------------------------------------------ */

enum { OP_ENQUEUE, OP_CLAIM, OP_ACK, OP_RETRY, OP_DEAD, OP_RELEASE, OP_LIST, OP_REQUEUE, OP_COUNT };

typedef struct q_claim {
    size_t hidx;
    const char *name;
    int want;
    int64_t visibility_ms;
    int64_t period_start; /* periodic: > 0 to try this period */
    bool period_done;     /* out: the period was handled (by anyone) */
    int got;
} q_claim;

typedef struct q_op {
    cf_queue *q;
    int kind;
    const char *name, *payload, *error;
    int64_t id, at, n;
    q_claim *claims;
    size_t nclaims;
    q_jobblk *jobs; /* out (claim) / in (release) */
    int64_t result;
    json_t *json;
    char err[256];
} q_op;

static int op_fail(q_op *op, sqlite3 *db, int rc)
{
    snprintf(op->err, sizeof op->err, "task queue: %s", sqlite3_errmsg(db));
    return rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? CF_ETIMEDOUT : CF_EDB;
}

/* Prepare, bind int64/text by a format ("i", "t"), step once. */
static int run_stmt(sqlite3 *db, sqlite3_stmt **out, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    va_list ap;
    va_start(ap, fmt);
    for (int i = 0; fmt[i]; i++) {
        if (fmt[i] == 'i')
            sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
        else {
            const char *s = va_arg(ap, const char *);
            if (s)
                sqlite3_bind_text(st, i + 1, s, -1, SQLITE_TRANSIENT);
        }
    }
    va_end(ap);
    rc = sqlite3_step(st);
    if (out && (rc == SQLITE_ROW || rc == SQLITE_DONE)) {
        *out = st;
        return rc;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

static int do_claim(q_op *op, sqlite3 *db, int64_t now)
{
    q_jobblk **tail = &op->jobs;
    for (size_t i = 0; i < op->nclaims; i++) {
        q_claim *c = &op->claims[i];
        int rc;
        if (c->period_start > 0) {
            rc = run_stmt(db, NULL,
                          "INSERT OR IGNORE INTO cf_periodic(name, period_start) VALUES($1, $2)", "ti",
                          c->name, c->period_start);
            if (rc != SQLITE_DONE)
                return rc;
            if (sqlite3_changes(db) == 1) {
                char payload[64];
                snprintf(payload, sizeof payload, "{\"period_start\": %" PRId64 "}", c->period_start);
                rc = run_stmt(db, NULL,
                              "INSERT INTO cf_jobs(name, payload, run_at, created_at)"
                              " VALUES($1, $2, $3, $3)",
                              "tti", c->name, payload, now);
                if (rc != SQLITE_DONE)
                    return rc;
                run_stmt(db, NULL, "DELETE FROM cf_periodic WHERE name = $1 AND period_start < $2",
                         "ti", c->name, c->period_start - 1000 * 86400);
            }
            c->period_done = true;
        }
        if (c->want <= 0)
            continue;
        sqlite3_stmt *st = NULL;
        rc = run_stmt(db, &st,
                      "UPDATE cf_jobs SET claimed_until = $1, attempts = attempts + 1"
                      " WHERE id IN (SELECT id FROM cf_jobs WHERE name = $2 AND run_at <= $3"
                      " AND claimed_until < $3 ORDER BY run_at, id LIMIT $4)"
                      " RETURNING id, attempts, payload",
                      "itii", now + c->visibility_ms, c->name, now, (int64_t)c->want);
        while (rc == SQLITE_ROW) {
            const char *p = (const char *)sqlite3_column_text(st, 2);
            size_t len = p ? strlen(p) : 0;
            q_jobblk *b = malloc(sizeof *b + len + 1);
            if (!b)
                break;
            b->next = NULL;
            b->hidx = c->hidx;
            b->id = sqlite3_column_int64(st, 0);
            b->attempts = sqlite3_column_int(st, 1);
            memcpy(b->payload, p ? p : "", len + 1);
            *tail = b;
            tail = &b->next;
            c->got++;
            rc = sqlite3_step(st);
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            return rc;
    }
    return SQLITE_DONE;
}

static int op_body(q_op *op, sqlite3 *db)
{
    int64_t now = now_ms();
    int rc;
    sqlite3_stmt *st = NULL;
    switch (op->kind) {
    case OP_ENQUEUE:
        rc = run_stmt(db, NULL,
                      "INSERT INTO cf_jobs(name, payload, run_at, created_at) VALUES($1, $2, $3, $4)",
                      "ttii", op->name, op->payload, op->at, now);
        op->result = sqlite3_last_insert_rowid(db);
        return rc;
    case OP_CLAIM:
        return do_claim(op, db, now);
    case OP_ACK:
        return run_stmt(db, NULL, "DELETE FROM cf_jobs WHERE id = $1", "i", op->id);
    case OP_RETRY:
        return run_stmt(db, NULL,
                        "UPDATE cf_jobs SET run_at = $1, claimed_until = 0, last_error = $2"
                        " WHERE id = $3",
                        "iti", now + op->at, op->error, op->id);
    case OP_DEAD:
        rc = run_stmt(db, NULL,
                      "INSERT INTO cf_dead(job_id, name, payload, attempts, error, failed_at)"
                      " SELECT id, name, payload, attempts, $1, $2 FROM cf_jobs WHERE id = $3",
                      "tii", op->error, now, op->id);
        if (rc != SQLITE_DONE)
            return rc;
        return run_stmt(db, NULL, "DELETE FROM cf_jobs WHERE id = $1", "i", op->id);
    case OP_RELEASE:
        for (q_jobblk *b = op->jobs; b; b = b->next) {
            rc = run_stmt(db, NULL,
                          "UPDATE cf_jobs SET claimed_until = 0, attempts = attempts - 1"
                          " WHERE id = $1",
                          "i", b->id);
            if (rc != SQLITE_DONE)
                return rc;
        }
        return SQLITE_DONE;
    case OP_LIST:
        rc = run_stmt(db, &st,
                      "SELECT id, job_id, name, payload, attempts, error, failed_at FROM cf_dead"
                      " WHERE $1 IS NULL OR name = $1 ORDER BY id LIMIT $2",
                      "ti", op->name, op->n);
        op->json = json_array();
        while (rc == SQLITE_ROW) {
            const char *err = (const char *)sqlite3_column_text(st, 5);
            json_array_append_new(
                op->json,
                json_pack("{s:I,s:I,s:s,s:s,s:i,s:s?,s:I}", "id",
                          (json_int_t)sqlite3_column_int64(st, 0), "job_id",
                          (json_int_t)sqlite3_column_int64(st, 1), "name",
                          (const char *)sqlite3_column_text(st, 2), "payload",
                          (const char *)sqlite3_column_text(st, 3), "attempts",
                          sqlite3_column_int(st, 4), "error", err, "failed_at",
                          (json_int_t)sqlite3_column_int64(st, 6)));
            rc = sqlite3_step(st);
        }
        sqlite3_finalize(st);
        return rc;
    case OP_REQUEUE:
        rc = run_stmt(db, NULL,
                      "INSERT INTO cf_jobs(name, payload, run_at, created_at)"
                      " SELECT name, payload, $1, $1 FROM cf_dead WHERE $2 = 0 OR id = $2"
                      " ORDER BY id",
                      "ii", now, op->id);
        if (rc != SQLITE_DONE)
            return rc;
        op->result = sqlite3_changes(db);
        return run_stmt(db, NULL, "DELETE FROM cf_dead WHERE $1 = 0 OR id = $1", "i", op->id);
    case OP_COUNT:
        rc = run_stmt(db, &st, "SELECT count(*) FROM cf_jobs WHERE $1 IS NULL OR name = $1", "t",
                      op->name);
        if (rc == SQLITE_ROW)
            op->result = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return rc == SQLITE_ROW ? SQLITE_DONE : rc;
    }
    return SQLITE_MISUSE;
}

static bool op_writes(int kind) { return kind != OP_LIST && kind != OP_COUNT; }

static int op_run(void *arg)
{
    q_op *op = arg;
    sqlite3 *db = conn_get(op->q, op->err, sizeof op->err);
    if (!db)
        return CF_EDBCONN;
    bool writes = op_writes(op->kind);
    bool txn = writes && op->kind != OP_ENQUEUE && op->kind != OP_ACK && op->kind != OP_RETRY;
    if (writes)
        pthread_mutex_lock(&op->q->wmu);
    int rc = txn ? sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) : SQLITE_OK;
    if (rc == SQLITE_OK)
        rc = op_body(op, db);
    else
        rc = op_fail(op, db, rc);
    int out = 0;
    if (rc != SQLITE_DONE && rc != SQLITE_OK) {
        out = rc < 0 ? rc : op_fail(op, db, rc);
        if (txn)
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        for (q_jobblk *b = op->kind == OP_CLAIM ? op->jobs : NULL, *n; b; b = n) {
            n = b->next;
            free(b);
        }
        if (op->kind == OP_CLAIM)
            op->jobs = NULL;
        json_decref(op->json);
        op->json = NULL;
    } else if (txn && (rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK) {
        out = op_fail(op, db, rc);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        for (q_jobblk *b = op->kind == OP_CLAIM ? op->jobs : NULL, *n; b; b = n) {
            n = b->next;
            free(b);
        }
        if (op->kind == OP_CLAIM)
            op->jobs = NULL;
    }
    if (writes)
        pthread_mutex_unlock(&op->q->wmu);
    conn_put(op->q, db);
    return out;
}

/* Run op on a pool thread and wait; its memory is in rq. */
static int op_await(cf_req *rq, q_op *op)
{
    cf_task *t = cf_to_thread(rq, op_run, op);
    if (!t)
        return CF_EPERM;
    return cf_await(rq, t, -1);
}

static q_op *op_new(cf_req *rq, int kind)
{
    cf_queue *q = rq && rq->app ? rq->app->queue : NULL;
    if (!q)
        return NULL;
    q_op *op = cf_alloc(rq, sizeof *op);
    memset(op, 0, sizeof *op);
    op->q = q;
    op->kind = kind;
    return op;
}

/* ---- the consumer (loop thread) ----------------------------------------- */

static void q_wake(q_loop *L)
{
    if (!L || L->stopping)
        return;
    if (L->claiming)
        L->again = true;
    else
        cf_timer_start(&L->poll, 0);
}

static int job_main(cf_req *rq, void *arg)
{
    q_jobblk *b = *(q_jobblk **)arg;
    q_loop *L = cf_sched_service(CF_SVC_QUEUE);
    cf_queue *q = L->q;
    q_handler *h = &q->h[b->hidx];
    size_t hidx = b->hidx;
    int64_t id = b->id;
    int attempts = b->attempts;
    char *payload = cf_strdup(rq, b->payload);
    free(b);

    int rc;
    const char *err;
    if (attempts > h->o.max_attempts) {
        rc = CF_EFAIL;
        err = "the worker running its last attempt died (visibility timeout)";
    } else {
        cf_job job = {id, h->name, payload, json_loads(payload, JSON_DECODE_ANY, NULL), attempts,
                      h->o.max_attempts};
        rc = h->fn(rq, &job);
        json_decref(job.data);
        const char *m = cf_errmsg(rq);
        err = rc ? (*m ? cf_sprintf(rq, "%s: %s", cf_strerror(rc), m) : cf_strerror(rc)) : NULL;
    }
    if (rc == CF_ECANCELED && cf_cancelled(rq)) {
        /* The worker is going: the lease runs out, another worker takes it. */
        L->running[hidx]--;
        return 0;
    }
    q_op *op = op_new(rq, OP_ACK);
    op->id = id;
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
    int frc = op_await(rq, op);
    if (frc != 0)
        fprintf(stderr, "carafe: job %s #%" PRId64 ": cannot record its outcome: %s %s\n", h->name,
                id, cf_strerror(frc), op->err);
    L->running[hidx]--;
    q_wake(L);
    return 0;
}

static int claim_main(cf_req *rq, void *arg)
{
    q_loop *L = *(q_loop **)arg;
    cf_queue *q = L->q;
    q_op *op = op_new(rq, OP_CLAIM);
    op->claims = cf_alloc(rq, q->nh * sizeof *op->claims);
    int64_t now_s = now_ms() / 1000;
    for (size_t i = 0; i < q->nh; i++) {
        q_handler *h = &q->h[i];
        q_claim c = {i, h->name, h->o.concurrency - L->running[i], h->o.visibility_ms, 0, false, 0};
        if (h->period_s > 0) {
            int64_t ps = now_s / h->period_s * h->period_s;
            if (ps != L->last_period[i])
                c.period_start = ps;
        }
        if (c.want > 0 || c.period_start > 0)
            op->claims[op->nclaims++] = c;
    }
    int rc = op->nclaims ? op_await(rq, op) : 0;
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
        q_jobblk *release = NULL;
        for (q_jobblk *b = op->jobs, *n; b; b = n) {
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
            q_op *rel = op_new(rq, OP_RELEASE);
            rel->jobs = release;
            op_await(rq, rel);
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
    if (L->stopping || L->claiming)
        return;
    L->claiming = true;
    if (cf_background(L->ctx, "task queue claim", claim_main, &L, sizeof L) != 0) {
        L->claiming = false;
        cf_timer_start(&L->poll, POLL_MS);
    }
}

static void bg_nop(cf_req *rq) { (void)rq; }
static const cf_transport ctx_transport = {bg_nop, bg_nop, NULL};

static void loop_close(void *state)
{
    q_loop *L = state;
    cf_timer_stop(&L->poll);
    cf_req_free(L->ctx);
    free(L->running);
    free(L->last_period);
    free(L);
}

void cf_queue_loop_start(cf_app *app)
{
    cf_queue *q = app ? app->queue : NULL;
    if (!q || !q->nh || cf_sched_service(CF_SVC_QUEUE))
        return;
    q_loop *L = calloc(1, sizeof *L);
    if (!L)
        return;
    L->app = app;
    L->q = q;
    L->running = calloc(q->nh, sizeof *L->running);
    L->last_period = calloc(q->nh, sizeof *L->last_period);
    L->ctx = cf_req_new(app, &ctx_transport, NULL);
    if (!L->running || !L->last_period || !L->ctx) {
        free(L->running);
        free(L->last_period);
        if (L->ctx)
            cf_req_free(L->ctx);
        free(L);
        return;
    }
    cf_timer_init(&L->poll, on_poll);
    cf_sched_set_service(CF_SVC_QUEUE, L, loop_close);
    cf_timer_start(&L->poll, 0);
}

void cf_queue_loop_stop(void)
{
    q_loop *L = cf_sched_service(CF_SVC_QUEUE);
    if (!L)
        return;
    L->stopping = true;
    cf_timer_stop(&L->poll);
}

int64_t cf_queue_count_sync(cf_app *app)
{
    cf_queue *q = app ? app->queue : NULL;
    if (!q)
        return -1;
    q_op op;
    memset(&op, 0, sizeof op);
    op.q = q;
    op.kind = OP_COUNT;
    return op_run(&op) == 0 ? op.result : -1;
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
    q_op *op = op_new(rq, OP_ENQUEUE);
    if (!op)
        return CF_EPERM;
    op->name = cf_strdup(rq, name);
    op->payload = cf_strdup(rq, payload_json);
    op->at = at_ms;
    int rc = op_await(rq, op);
    if (rc != 0)
        return rc;
    if (at_ms <= now_ms()) {
        q_loop *L = cf_sched_service(CF_SVC_QUEUE);
        if (L && find_handler(L->q, name, NULL))
            q_wake(L);
    }
    return op->result;
}

int64_t cf_enqueue(cf_req *rq, const char *name, const char *payload_json, int64_t delay_ms)
{
    return cf_enqueue_at(rq, name, payload_json, now_ms() + (delay_ms > 0 ? delay_ms : 0));
}

json_t *cf_queue_dead(cf_req *rq, const char *name, size_t limit)
{
    q_op *op = op_new(rq, OP_LIST);
    if (!op)
        return NULL;
    op->name = name ? cf_strdup(rq, name) : NULL;
    op->n = limit ? (int64_t)limit : 100;
    int rc = op_await(rq, op);
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
    q_op *op = op_new(rq, OP_REQUEUE);
    if (!op)
        return CF_EPERM;
    op->id = dead_id;
    int rc = op_await(rq, op);
    if (rc != 0)
        return rc;
    if (op->result > 0)
        q_wake(cf_sched_service(CF_SVC_QUEUE));
    return op->result;
}

int64_t cf_queue_pending(cf_req *rq, const char *name)
{
    q_op *op = op_new(rq, OP_COUNT);
    if (!op)
        return CF_EPERM;
    op->name = name ? cf_strdup(rq, name) : NULL;
    int rc = op_await(rq, op);
    return rc != 0 ? rc : op->result;
}
