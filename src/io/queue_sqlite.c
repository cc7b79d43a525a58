/*
 * queue_sqlite.c — the task queue's SQLite store, the default: the
 * connections, the tables, and each operation as statements.
 *
 * The queue is one SQLite file (WAL mode) that every worker of every
 * process sharing it reads and writes on libuv's pool threads, each
 * statement on a connection from a small per-process pool (the app's queue state).
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
 * An operation (cf__queue_op_run) runs on the calling thread: a pool
 * thread (cf__queue_op_await), or the test client's for
 * cf_queue_count_sync. Its writes take the process's writer lock first,
 * and those of more than one statement run in a transaction.
 */
#include "io/queue_int.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void cf__queue_sqlite_close_idle(cf_queue *q)
{
    for (size_t i = 0; i < q->nidle; i++)
        sqlite3_close(q->idle[i]);
    q->nidle = 0;
}

/* ---- set-up ------------------------------------------------------------- */

void cf__queue_sqlite_open(cf_app *app, char *path)
{
    cf_queue *q = cf__queue_of(app);
    cf__queue_sqlite_close_idle(q);
    free(q->path);
    q->path = path;
    q->kind = Q_SQLITE;
    q->ready = false;
}

int cf__queue_sqlite_prepare(cf_queue *q)
{
    char err[256];
    sqlite3 *db = conn_open(q->path, err, sizeof err);
    if (db && sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, sizeof err, "%s", sqlite3_errmsg(db));
        sqlite3_close(db);
        db = NULL;
    }
    if (!db) {
        fprintf(stderr, "carafe: cannot open the task queue %s: %s\n", q->path, err);
        return CF_EDBCONN;
    }
    sqlite3_close(db); /* workers open their own (after fork) */
    return 0;
}

/* ---- statements (pool threads) ------------------------------------------ */

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
    int64_t now = cf__queue_now_ms();
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

int cf__queue_op_run(void *arg)
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
