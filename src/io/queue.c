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
 *                run_at = now + backoff * 2^(attempt-1). While the handler
 *                runs, a child task renews the lease every third of the
 *                visibility timeout; a worker that died stops renewing, the
 *                lease runs out, and the job is claimed again.
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
#include "io/cron.h"
#include "io/queue.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io/db.h"

#define POLL_MS 100
#define MAX_BATCH 256
#define MAX_BACKOFF_MS 3600000

typedef struct q_handler {
    char *name;
    cf_job_fn fn;
    cf_queue_opts o;
    int64_t period_s; /* > 0: periodic */
    bool has_cron;    /* periodic on a cron schedule */
    cf_cron cron;
} q_handler;

enum { Q_SQLITE, Q_REDIS };

typedef struct cf_queue {
    int kind;
    char *path;       /* SQLite file */
    char *rhost;      /* Redis */
    int rport, rdb;
    char *ruser, *rpass; /* AUTH, when the URL has them (ruser may be NULL) */
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
    char sid[48];     /* Redis: the stream entry */
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
    bool polling;          /* consumer started */
    redisAsyncContext *rc; /* Redis: this loop's connection, NULL until used */
    bool groups_ok;
    size_t inflight;       /* replies awaited: the connection keeps the loop alive */
    char consumer[64];
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
    free(q->rhost);
    free(q->ruser);
    free(q->rpass);
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

static int redis_open(cf_app *app, const char *url, const char *from);
static int64_t redis_count_sync(cf_queue *q);

/* The app's queue state, created on first use (the backends fill it in). */
static cf_queue *queue_of(cf_app *app)
{
    cf_queue *q = app->queue;
    if (!q) {
        q = calloc(1, sizeof *q);
        if (!q)
            cf_setup_fail("out of memory");
        pthread_mutex_init(&q->mu, NULL);
        pthread_mutex_init(&q->wmu, NULL);
        app->queue = q;
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
            return redis_open(app, url, from);
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
    cf_queue *q = queue_of(app);
    for (size_t i = 0; i < q->nidle; i++)
        sqlite3_close(q->idle[i]);
    q->nidle = 0;
    free(q->path);
    q->path = path;
    q->kind = Q_SQLITE;
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

int cf_queue_cron(cf_app *app, const char *name, const char *schedule)
{
    if (!app || !name || !schedule)
        return CF_EINVAL;
    q_handler *h = find_handler(app->queue, name, NULL);
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

/* ---- statements (pool threads) ------------------------------------------ */

enum {
    OP_ENQUEUE, OP_CLAIM, OP_ACK, OP_RETRY, OP_DEAD, OP_RELEASE, OP_LIST, OP_REQUEUE, OP_COUNT,
    OP_EXTEND,
};

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
    const char *sid; /* Redis: the job's stream entry (ack, retry, dead) */
    int attempts;    /* Redis: the job's attempt (retry, dead) */
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
    case OP_EXTEND:
        /* The attempt count fences the lease: a job claimed again by
         * another worker meanwhile (its lease ran out) is not extended. */
        rc = run_stmt(db, NULL,
                      "UPDATE cf_jobs SET claimed_until = $1 WHERE id = $2 AND attempts = $3",
                      "iii", now + op->at, op->id, (int64_t)op->attempts);
        op->result = sqlite3_changes(db);
        return rc;
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
    bool txn = writes && op->kind != OP_ENQUEUE && op->kind != OP_ACK && op->kind != OP_RETRY &&
               op->kind != OP_EXTEND;
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
static int redis_op(cf_req *rq, q_op *op);

static int op_await(cf_req *rq, q_op *op)
{
    if (op->q->kind == Q_REDIS)
        return redis_op(rq, op);
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
        q_op *op = op_new(rq, OP_EXTEND);
        op->id = l->id;
        op->sid = l->sid;
        op->name = l->h->name;
        op->attempts = l->attempts;
        op->at = l->h->o.visibility_ms;
        int rc = op_await(rq, op);
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
    q_loop *L = cf_sched_service(CF_SVC_QUEUE);
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
    q_op *op = op_new(rq, OP_ACK);
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
    int frc = op_await(rq, op);
    if (frc != 0)
        fprintf(stderr, "carafe: job %s #%" PRId64 ": cannot record its outcome: %s %s\n", h->name,
                id, cf_strerror(frc), op->err);
    L->running[hidx]--;
    q_wake(L);
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
    if (L->stopping || L->claiming || !L->polling)
        return;
    L->claiming = true;
    if (cf_background(L->ctx, "task queue claim", claim_main, &L, sizeof L) != 0) {
        L->claiming = false;
        cf_timer_start(&L->poll, POLL_MS);
    }
}

static void bg_nop(cf_req *rq) { (void)rq; }
static const cf_transport ctx_transport = {bg_nop, bg_nop, NULL, NULL, NULL, NULL, NULL, false};

static void loop_close(void *state)
{
    q_loop *L = state;
    cf_timer_stop(&L->poll);
    if (L->rc) {
        redisAsyncContext *rc = L->rc;
        L->rc = NULL;
        rc->data = NULL;
        redisAsyncFree(rc);
    }
    cf_req_free(L->ctx);
    free(L->running);
    free(L->last_period);
    free(L);
}

/* This loop's queue state, created on first use. */
static q_loop *loop_get(cf_app *app)
{
    q_loop *L = cf_sched_service(CF_SVC_QUEUE);
    cf_queue *q = app ? app->queue : NULL;
    if (L || !q || !cf_sched_get())
        return L;
    L = calloc(1, sizeof *L);
    if (!L)
        return NULL;
    L->app = app;
    L->q = q;
    L->running = calloc(q->nh + 1, sizeof *L->running);
    L->last_period = calloc(q->nh + 1, sizeof *L->last_period);
    L->ctx = cf_req_new(app, &ctx_transport, NULL);
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
    cf_sched_set_service(CF_SVC_QUEUE, L, loop_close);
    return L;
}

void cf_queue_loop_start(cf_app *app)
{
    cf_queue *q = app ? app->queue : NULL;
    if (!q || !q->nh)
        return;
    q_loop *L = loop_get(app);
    if (!L || L->polling)
        return;
    L->polling = true;
    cf_timer_start(&L->poll, 0);
}

void cf_queue_loop_stop(void)
{
    q_loop *L = cf_sched_service(CF_SVC_QUEUE);
    if (!L || !L->polling)
        return;
    L->stopping = true;
    cf_timer_stop(&L->poll);
}

int64_t cf_queue_count_sync(cf_app *app)
{
    cf_queue *q = app ? app->queue : NULL;
    if (!q)
        return -1;
    if (q->kind == Q_REDIS)
        return redis_count_sync(q);
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

/* ---- Redis Streams ------------------------------------------------------ */
/*
 * Keys (in the URL's database):
 *   cf:q:s:<name>   a stream per job name, consumer group "cf"; an entry has
 *                   id (the job id), name, payload, attempts (failures so far)
 *   cf:q:delayed    sorted set of delayed jobs and retries (score: due time,
 *                   member: JSON {name,id,payload,attempts}); moved into the
 *                   streams by a Lua script, atomically
 *   cf:q:dead       list of dead letters (JSON)
 *   cf:q:names      set of the job names (for counting)
 *   cf:q:seq, cf:q:deadseq   id counters
 *   cf:q:p:<name>:<period_start>   SET NX: who enqueues that period's job
 * Stuck jobs (consumer died) are taken back with XAUTOCLAIM after the
 * visibility timeout.
 */

/* AUTH's arguments: ("AUTH", password) or ("AUTH", user, password). */
static int redis_auth_argv(const char *user, const char *pass, const char **argv)
{
    argv[0] = "AUTH";
    argv[1] = user ? user : pass;
    argv[2] = pass;
    return user ? 3 : 2;
}

/* A command on a blocking connection that must answer +OK: NULL, or why not. */
static const char *redis_sync_ok(redisContext *c, redisReply *r, char *err, size_t cap)
{
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    snprintf(err, cap, "%s", r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
    if (r)
        freeReplyObject(r);
    return ok ? NULL : err;
}

/* AUTH, SELECT and PING on a new blocking connection: NULL, or why not. */
static const char *redis_sync_setup(redisContext *c, const char *user, const char *pass, int db,
                                    char *err, size_t cap)
{
    const char *why = NULL;
    if (pass) {
        const char *argv[3];
        int argc = redis_auth_argv(user, pass, argv);
        why = redis_sync_ok(c, redisCommandArgv(c, argc, argv, NULL), err, cap);
    }
    if (!why && db)
        why = redis_sync_ok(c, redisCommand(c, "SELECT %d", db), err, cap);
    if (!why) /* a server wanting a password we do not have says so here */
        why = redis_sync_ok(c, redisCommand(c, "PING"), err, cap);
    return why;
}

/* One piece of the URL's user information, percent-decoded (NULL: empty
 * or badly encoded). */
static char *userinfo_part(const char *s, size_t len)
{
    if (!len)
        return NULL;
    char *out = malloc(len + 1);
    if (!out)
        abort();
    memcpy(out, s, len);
    out[len] = 0;
    if (cf_url_decode(out, len, false) < 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* redis://[[user]:password@]host[:port][/db] */
static int redis_open(cf_app *app, const char *url, const char *from)
{
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    char *user = NULL, *pass = NULL;
    bool bad = false;
    if (at) {
        const char *sep = memchr(p, ':', (size_t)(at - p));
        if (sep) {
            user = userinfo_part(p, (size_t)(sep - p));
            pass = userinfo_part(sep + 1, (size_t)(at - sep - 1));
        }
        bad = !pass; /* a user name alone: AUTH needs a password */
        p = at + 1;
    }
    const char *colon = strchr(p, ':'), *slash = strchr(p, '/');
    size_t hlen = colon && (!slash || colon < slash) ? (size_t)(colon - p)
                  : slash                          ? (size_t)(slash - p)
                                                   : strlen(p);
    int port = 6379, db = 0;
    if (colon && (!slash || colon < slash))
        port = atoi(colon + 1);
    if (slash && slash[1])
        db = atoi(slash + 1);
    if (bad || hlen == 0 || hlen > 255 || port <= 0 || port > 65535 || db < 0) {
        /* not the URL itself: it may hold a password */
        fprintf(stderr, "carafe: %s is not redis://[[user]:password@]host[:port][/db]\n", from);
        free(user);
        free(pass);
        return CF_EDBURL;
    }
    char host[256];
    memcpy(host, p, hlen);
    host[hlen] = 0;
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    char err[256];
    const char *why = !c     ? "out of memory"
                      : c->err ? c->errstr
                               : redis_sync_setup(c, user, pass, db, err, sizeof err);
    if (why)
        fprintf(stderr, "carafe: cannot use the task queue redis://%s%s%s:%d/%d: %s\n",
                user ? user : "", pass ? ":***@" : "", host, port, db, why);
    if (c)
        redisFree(c);
    if (why) {
        free(user);
        free(pass);
        return CF_EDBCONN;
    }
    cf_queue *q = queue_of(app);
    free(q->rhost);
    free(q->ruser);
    free(q->rpass);
    q->rhost = xstrdup(host);
    q->rport = port;
    q->rdb = db;
    q->ruser = user;
    q->rpass = pass;
    q->kind = Q_REDIS;
    return 0;
}

/* A reply copied into the request (hiredis frees its own after the callback). */
typedef struct q_rep {
    int type;
    long long integer;
    char *str;
    size_t len, n;
    struct q_rep **el;
} q_rep;

static q_rep *rep_copy(cf_req *rq, const redisReply *r)
{
    q_rep *o = cf_alloc(rq, sizeof *o);
    memset(o, 0, sizeof *o);
    o->type = r->type;
    o->integer = r->integer;
    if (r->str) {
        o->str = cf_alloc(rq, r->len + 1);
        memcpy(o->str, r->str, r->len);
        o->str[r->len] = 0;
        o->len = r->len;
    }
    if (r->type == REDIS_REPLY_ARRAY) {
        o->n = r->elements;
        o->el = cf_alloc(rq, (r->elements + 1) * sizeof *o->el);
        for (size_t i = 0; i < r->elements; i++)
            o->el[i] = rep_copy(rq, r->element[i]);
    }
    return o;
}

typedef struct r_wait {
    cf_waitable w;
    cf_req *rq;
    cf_scope *scope;
    q_rep *rep;
    char err[128];
} r_wait;

static void r_cancel(cf_waitable *w) { cf_waitable_complete(w, CF_ECANCELED); }

static uv_handle_t *r_handle(const redisAsyncContext *c)
{
    redisLibuvEvents *ev = c ? c->ev.data : NULL;
    return ev ? (uv_handle_t *)&ev->handle : NULL;
}

static void r_reply(redisAsyncContext *c, void *reply, void *priv)
{
    r_wait *w = priv;
    q_loop *L = c->data;
    if (L && L->inflight && --L->inflight == 0 && L->rc == c && r_handle(c))
        uv_unref(r_handle(c));
    int rc = 0;
    if (!reply) {
        rc = CF_EDBCONN;
        snprintf(w->err, sizeof w->err, "task queue: Redis connection lost");
    } else if (!w->w.done) {
        w->rep = rep_copy(w->rq, reply);
        if (w->rep->type == REDIS_REPLY_ERROR) {
            rc = CF_EDB;
            snprintf(w->err, sizeof w->err, "task queue: Redis: %s", w->rep->str);
        }
    }
    if (!w->w.done)
        cf_waitable_complete(&w->w, rc);
    cf_scope_unref(w->scope); /* may release the request: last */
}

static void r_disconnected(const redisAsyncContext *c, int status)
{
    q_loop *L = c->data;
    (void)status;
    if (L && L->rc == c) {
        L->rc = NULL;
        L->groups_ok = false;
    }
}

static void r_connected(const redisAsyncContext *c, int status)
{
    if (status != REDIS_OK) {
        q_loop *L = c->data;
        fprintf(stderr, "carafe: task queue: cannot connect to Redis: %s\n", c->errstr);
        if (L && L->rc == c) {
            L->rc = NULL;
            L->groups_ok = false;
        }
    }
}

static void r_setup_reply(redisAsyncContext *c, void *reply, void *what)
{
    redisReply *r = reply;
    (void)c;
    if (r && r->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "carafe: task queue: Redis refused %s: %s\n", (const char *)what, r->str);
}

static redisAsyncContext *r_conn(q_loop *L)
{
    if (L->rc)
        return L->rc;
    redisAsyncContext *c = redisAsyncConnect(L->q->rhost, L->q->rport);
    if (!c)
        return NULL;
    if (c->err) {
        redisAsyncFree(c);
        return NULL;
    }
    c->data = L;
    redisLibuvAttach(c, cf_sched_get()->loop);
    L->inflight = 0;
    uv_unref(r_handle(c)); /* only while replies are awaited (redis_cmd) */
    redisAsyncSetConnectCallback(c, r_connected);
    redisAsyncSetDisconnectCallback(c, r_disconnected);
    /* Sent ahead of any command (hiredis keeps the order); a refusal is
     * logged, and the commands after it fail with Redis's NOAUTH. */
    if (L->q->rpass) {
        const char *argv[3];
        int argc = redis_auth_argv(L->q->ruser, L->q->rpass, argv);
        redisAsyncCommandArgv(c, r_setup_reply, "AUTH", argc, argv, NULL);
    }
    if (L->q->rdb)
        redisAsyncCommand(c, r_setup_reply, "SELECT", "SELECT %d", L->q->rdb);
    L->rc = c;
    return c;
}

/* Send one command (argv form) and wait for its reply. */
static q_rep *redis_cmd(cf_req *rq, q_op *op, int argc, const char **argv, const size_t *lens)
{
    q_loop *L = cf_sched_service(CF_SVC_QUEUE);
    redisAsyncContext *c = L ? r_conn(L) : NULL;
    if (!c) {
        snprintf(op->err, sizeof op->err, "task queue: cannot connect to Redis");
        op->result = CF_EDBCONN;
        return NULL;
    }
    r_wait *w = cf_alloc(rq, sizeof *w);
    memset(w, 0, sizeof *w);
    w->rq = rq;
    w->scope = cf__req_scope(rq);
    cf_waitable_init(&w->w, r_cancel);
    if (redisAsyncCommandArgv(c, r_reply, w, argc, argv, lens) != REDIS_OK) {
        cf_waitable_detach(&w->w);
        snprintf(op->err, sizeof op->err, "task queue: Redis: cannot send");
        op->result = CF_EDBCONN;
        return NULL;
    }
    cf_scope_ref(w->scope);
    if (L->inflight++ == 0 && r_handle(c))
        uv_ref(r_handle(c));
    int rc = cf_await(rq, &w->w, -1);
    if (rc != 0) {
        if (w->err[0])
            snprintf(op->err, sizeof op->err, "%s", w->err);
        op->result = rc;
        return NULL;
    }
    return w->rep;
}

/* rcmd with NUL-terminated arguments. */
#define RCMD(rq, op, ...)                                                            \
    redis_cmd((rq), (op), (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(char *)), \
         (const char *[]){__VA_ARGS__}, NULL)

static const char lua_move[] =
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1000)\n"
    "for _, m in ipairs(due) do\n"
    "  redis.call('ZREM', KEYS[1], m)\n"
    "  local j = cjson.decode(m)\n"
    "  redis.call('XADD', 'cf:q:s:' .. j.name, '*', 'id', j.id, 'name', j.name,"
    "             'payload', j.payload, 'attempts', j.attempts)\n"
    "end\n"
    "return #due\n";

static const char lua_periodic[] =
    "if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then\n"
    "  local id = redis.call('INCR', 'cf:q:seq')\n"
    "  redis.call('SADD', 'cf:q:names', ARGV[2])\n"
    "  redis.call('XADD', 'cf:q:s:' .. ARGV[2], '*', 'id', id, 'name', ARGV[2],"
    "             'payload', ARGV[3], 'attempts', 0)\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

static const char lua_count[] =
    "local n = redis.call('ZCARD', 'cf:q:delayed')\n"
    "for _, nm in ipairs(redis.call('SMEMBERS', 'cf:q:names')) do\n"
    "  if ARGV[1] == '' or ARGV[1] == nm then\n"
    "    n = n + redis.call('XLEN', 'cf:q:s:' .. nm)\n"
    "  end\n"
    "end\n"
    "return n\n";

static const char lua_requeue[] =
    "local all = redis.call('LRANGE', 'cf:q:dead', 0, -1)\n"
    "local n = 0\n"
    "for _, m in ipairs(all) do\n"
    "  local j = cjson.decode(m)\n"
    "  if ARGV[1] == '0' or tostring(j.id) == ARGV[1] then\n"
    "    redis.call('LREM', 'cf:q:dead', 1, m)\n"
    "    redis.call('XADD', 'cf:q:s:' .. j.name, '*', 'id', j.job_id, 'name', j.name,"
    "               'payload', j.payload, 'attempts', 0)\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

/* Reset the idle time of a pending entry, if this consumer still owns it
 * (XAUTOCLAIM may have given it to another after the lease ran out). */
static const char lua_extend[] =
    "local p = redis.call('XPENDING', KEYS[1], 'cf', ARGV[2], ARGV[2], 1, ARGV[1])\n"
    "if #p == 0 then return 0 end\n"
    "redis.call('XCLAIM', KEYS[1], 'cf', ARGV[1], 0, ARGV[2], 'JUSTID')\n"
    "return 1\n";

static const char *stream_key(cf_req *rq, const char *name) { return cf_sprintf(rq, "cf:q:s:%s", name); }
static const char *i2s(cf_req *rq, int64_t v) { return cf_sprintf(rq, "%" PRId64, v); }

static bool r_fail(q_op *op, q_rep *r)
{
    if (r)
        return false;
    if (!op->result)
        op->result = CF_EDB;
    return true;
}

/* Stream entries [[id, [f, v, ...]], ...] into jobs. */
static void r_take_entries(q_op *op, q_claim *c, q_rep *arr, q_jobblk ***tail)
{
    for (size_t k = 0; arr && arr->type == REDIS_REPLY_ARRAY && k < arr->n; k++) {
        q_rep *e = arr->el[k];
        if (!e || e->type != REDIS_REPLY_ARRAY || e->n < 2 || e->el[1]->type != REDIS_REPLY_ARRAY)
            continue; /* deleted meanwhile */
        q_rep *f = e->el[1];
        const char *payload = "{}";
        int64_t id = 0;
        int attempts = 0;
        for (size_t i = 0; i + 1 < f->n; i += 2) {
            const char *k2 = f->el[i]->str, *v = f->el[i + 1]->str;
            if (!k2 || !v)
                continue;
            if (!strcmp(k2, "payload"))
                payload = v;
            else if (!strcmp(k2, "id"))
                id = atoll(v);
            else if (!strcmp(k2, "attempts"))
                attempts = atoi(v);
        }
        size_t len = strlen(payload);
        q_jobblk *b = malloc(sizeof *b + len + 1);
        if (!b)
            return;
        b->next = NULL;
        b->hidx = c->hidx;
        b->id = id;
        b->attempts = attempts + 1;
        snprintf(b->sid, sizeof b->sid, "%s", e->el[0]->str ? e->el[0]->str : "0-0");
        memcpy(b->payload, payload, len + 1);
        **tail = b;
        *tail = &b->next;
        c->got++;
    }
}

static int redis_claim(cf_req *rq, q_op *op, q_loop *L)
{
    const char *now = i2s(rq, now_ms());
    if (!L->groups_ok) {
        for (size_t i = 0; i < L->q->nh; i++) {
            q_rep *r = RCMD(rq, op, "XGROUP", "CREATE", stream_key(rq, L->q->h[i].name), "cf",
                            "0", "MKSTREAM");
            if (!r && op->result != CF_EDB)
                return op->result;
            op->result = 0;
            op->err[0] = 0;
        }
        L->groups_ok = true;
    }
    if (r_fail(op, RCMD(rq, op, "EVAL", lua_move, "1", "cf:q:delayed", now)))
        return (int)op->result;
    q_jobblk **tail = &op->jobs;
    for (size_t i = 0; i < op->nclaims; i++) {
        q_claim *c = &op->claims[i];
        if (c->period_start > 0) {
            q_handler *h = &L->q->h[c->hidx];
            const char *key = cf_sprintf(rq, "cf:q:p:%s:%" PRId64, c->name, c->period_start);
            const char *payload = cf_sprintf(rq, "{\"period_start\": %" PRId64 "}", c->period_start);
            if (r_fail(op, RCMD(rq, op, "EVAL", lua_periodic, "1", key, i2s(rq, (h->period_s > 0 ? h->period_s * 10 : 3600) + 60),
                                c->name, payload)))
                return (int)op->result;
            c->period_done = true;
        }
        if (c->want <= 0)
            continue;
        const char *key = stream_key(rq, c->name);
        q_rep *r = RCMD(rq, op, "XAUTOCLAIM", key, "cf", L->consumer, i2s(rq, c->visibility_ms),
                        "0-0", "COUNT", i2s(rq, c->want));
        if (r_fail(op, r))
            return (int)op->result;
        q_jobblk **stolen = tail;
        if (r->type == REDIS_REPLY_ARRAY && r->n >= 2)
            r_take_entries(op, c, r->el[1], &tail);
        /* Taken over from a consumer that died with them: each delivery
         * counts as an attempt, as on SQLite, so a job that kills its
         * worker every time ends in the dead letters instead of looping. */
        for (q_jobblk *b = *stolen; b; b = b->next) {
            q_rep *p = RCMD(rq, op, "XPENDING", key, "cf", b->sid, b->sid, "1");
            if (r_fail(op, p))
                return (int)op->result;
            if (p->type == REDIS_REPLY_ARRAY && p->n == 1 && p->el[0]->type == REDIS_REPLY_ARRAY &&
                p->el[0]->n >= 4 && p->el[0]->el[3]->type == REDIS_REPLY_INTEGER)
                b->attempts += (int)p->el[0]->el[3]->integer - 1;
        }
        if (c->got < c->want) {
            r = RCMD(rq, op, "XREADGROUP", "GROUP", "cf", L->consumer, "COUNT",
                     i2s(rq, c->want - c->got), "STREAMS", key, ">");
            if (r_fail(op, r))
                return (int)op->result;
            if (r->type == REDIS_REPLY_ARRAY && r->n >= 1 && r->el[0]->type == REDIS_REPLY_ARRAY &&
                r->el[0]->n >= 2)
                r_take_entries(op, c, r->el[0]->el[1], &tail);
        }
    }
    return 0;
}

static const char *job_json(cf_req *rq, q_op *op, int attempts)
{
    json_t *j = json_pack("{s:s,s:I,s:s,s:i}", "name", op->name, "id", (json_int_t)op->id,
                          "payload", op->payload ? op->payload : "{}", "attempts", attempts);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    const char *out = cf_strdup(rq, s ? s : "{}");
    free(s);
    return out;
}

static int r_ackdel(cf_req *rq, q_op *op)
{
    const char *key = stream_key(rq, op->name);
    if (r_fail(op, RCMD(rq, op, "XACK", key, "cf", op->sid)))
        return (int)op->result;
    if (r_fail(op, RCMD(rq, op, "XDEL", key, op->sid)))
        return (int)op->result;
    return 0;
}

static int redis_op(cf_req *rq, q_op *op)
{
    q_loop *L = loop_get(rq->app);
    if (!L)
        return CF_ENOMEM;
    op->result = 0;
    q_rep *r;
    int64_t now = now_ms();
    switch (op->kind) {
    case OP_ENQUEUE: {
        r = RCMD(rq, op, "INCR", "cf:q:seq");
        if (r_fail(op, r))
            return (int)op->result;
        op->id = r->integer;
        if (r_fail(op, RCMD(rq, op, "SADD", "cf:q:names", op->name)))
            return (int)op->result;
        if (op->at > now)
            r = RCMD(rq, op, "ZADD", "cf:q:delayed", i2s(rq, op->at), job_json(rq, op, 0));
        else
            r = RCMD(rq, op, "XADD", stream_key(rq, op->name), "*", "id", i2s(rq, op->id), "name",
                     op->name, "payload", op->payload, "attempts", "0");
        if (r_fail(op, r))
            return (int)op->result;
        op->result = op->id;
        return 0;
    }
    case OP_CLAIM:
        return redis_claim(rq, op, L);
    case OP_ACK:
        return r_ackdel(rq, op);
    case OP_RETRY:
        if (r_fail(op, RCMD(rq, op, "ZADD", "cf:q:delayed", i2s(rq, now + op->at),
                            job_json(rq, op, op->attempts))))
            return (int)op->result;
        return r_ackdel(rq, op);
    case OP_DEAD: {
        r = RCMD(rq, op, "INCR", "cf:q:deadseq");
        if (r_fail(op, r))
            return (int)op->result;
        json_t *j = json_pack("{s:I,s:I,s:s,s:s,s:i,s:s?,s:I}", "id", (json_int_t)r->integer,
                              "job_id", (json_int_t)op->id, "name", op->name, "payload",
                              op->payload ? op->payload : "{}", "attempts", op->attempts, "error",
                              op->error, "failed_at", (json_int_t)now);
        char *s = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        const char *txt = cf_strdup(rq, s ? s : "{}");
        free(s);
        if (r_fail(op, RCMD(rq, op, "RPUSH", "cf:q:dead", txt)))
            return (int)op->result;
        return r_ackdel(rq, op);
    }
    case OP_RELEASE:
        return 0; /* left pending: XAUTOCLAIM takes them after the lease */
    case OP_EXTEND:
        r = RCMD(rq, op, "EVAL", lua_extend, "1", stream_key(rq, op->name), L->consumer, op->sid);
        if (r_fail(op, r))
            return (int)op->result;
        op->result = r->integer;
        return 0;
    case OP_LIST:
        r = RCMD(rq, op, "LRANGE", "cf:q:dead", "0", "-1");
        if (r_fail(op, r))
            return (int)op->result;
        op->json = json_array();
        for (size_t i = 0; i < r->n && (int64_t)json_array_size(op->json) < op->n; i++) {
            json_t *j = r->el[i]->str ? json_loads(r->el[i]->str, 0, NULL) : NULL;
            const char *nm = json_string_value(json_object_get(j, "name"));
            if (j && (!op->name || (nm && !strcmp(nm, op->name))))
                json_array_append(op->json, j);
            json_decref(j);
        }
        return 0;
    case OP_REQUEUE:
        r = RCMD(rq, op, "EVAL", lua_requeue, "0", i2s(rq, op->id));
        if (r_fail(op, r))
            return (int)op->result;
        op->result = r->integer;
        return 0;
    case OP_COUNT:
        r = RCMD(rq, op, "EVAL", lua_count, "0", op->name ? op->name : "");
        if (r_fail(op, r))
            return (int)op->result;
        op->result = r->integer;
        return 0;
    }
    return CF_EINVAL;
}

static int64_t redis_count_sync(cf_queue *q)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout(q->rhost, q->rport, tv);
    int64_t n = -1;
    char err[256];
    if (c && !c->err && !redis_sync_setup(c, q->ruser, q->rpass, q->rdb, err, sizeof err)) {
        redisReply *r = redisCommand(c, "EVAL %s 0 %s", lua_count, "");
        if (r && r->type == REDIS_REPLY_INTEGER)
            n = r->integer;
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return n;
}
