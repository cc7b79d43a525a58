/*
 * db_sqlite.c — the SQLite backend. Statements cf__sq_run on libuv's thread pool;
 * the loop queues them and collects results. The exception is a read outside
 * a transaction: it is tried on the loop thread first, within a budget of
 * VM steps (CF_DB_LOOP_READ_STEPS), and goes to the pool when it is not a
 * read, outruns the budget or meets a lock (cf__sq_try_on_loop).
 *
 * Connections. A file database has one connection per pool thread for
 * statements outside transactions, kept in thread-local storage and opened
 * in that thread on first use. A transaction needs one connection for its
 * whole length, while its statements may land on any pool thread, so it
 * takes a connection of its own from a shared free list (a mutex guards
 * the list, never a statement). An in-memory database is a single
 * connection: each SQLite connection to ":memory:" is a database of its
 * own, so one connection is the only way every statement sees the same
 * data; statements then take turns (and each worker process has its own).
 *
 * Lanes. Statements that must cf__sq_run on one connection, one at a time and in
 * order — a transaction's, and every statement of an in-memory database —
 * queue in a lane on the loop thread, which has at most one of them on the
 * pool at once. A lane held by a transaction (its owner) runs only that
 * request's statements; others wait in FIFO order, on the loop, without
 * tying up pool threads.
 *
 * Locks. A statement that finds the database locked (another writer) waits
 * at most BUSY_SPIN_MS in its pool thread; then it goes back to the loop,
 * which runs it again after a growing pause (1 to 16 ms) until
 * CF_DB_BUSY_TIMEOUT has passed (then CF_ETIMEDOUT). Waiting writers thus
 * never occupy the pool's few threads, which the lock holder's next
 * statement (its COMMIT) and every reader need. A COMMIT that finds the
 * database locked is retried the same way, its transaction kept open.
 *
 * Every connection: extended result codes, that short busy timeout,
 * foreign keys on, synchronous=NORMAL (safe with WAL: a power cut may lose
 * the last commits, never the file), a watch on the log's length that
 * keeps it under CF_DB_WAL_LIMIT (db_sqlite_wal.c), and a cache of prepared statements
 * keyed by SQL text (least recently used goes first) that also keeps the
 * map from each parameter slot to its $N. WAL mode is set once when the
 * app is about to be served (sq_connect: it is a property of the file);
 * cf_db_open only checks the URL.
 *
 * Results are built on the pool thread into a per-statement arena whose
 * first block comes from the request and whose further blocks are freed
 * with the request (cf_defer); nothing is copied again on the loop.
 */
#include "io/db.h"
#include "io/db_sqlite_int.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One connection per database per pool thread. Entries of databases freed
 * since are never matched again (uids are not reused); their connections
 * were closed with their database. */
static __thread struct {
    uint64_t uid;
    sq_conn *c;
} tl_conn[TL_SLOTS];
static __thread unsigned tl_next;

/* ---- errors ---------------------------------------------------------------- */

int cf__sq_map_rc(int xrc, bool preparing)
{
    switch (xrc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_ROWID:
        return CF_EUNIQUE;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return CF_EFOREIGNKEY;
    case SQLITE_CONSTRAINT_NOTNULL:
        return CF_ENOTNULL;
    default:
        break;
    }
    switch (xrc & 0xff) {
    case SQLITE_CONSTRAINT:
        return CF_ECONSTRAINT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return CF_ETIMEDOUT; /* the busy timeout expired */
    case SQLITE_INTERRUPT:
        return CF_ECANCELED;
    case SQLITE_NOMEM:
        return CF_ENOMEM;
    case SQLITE_CANTOPEN:
    case SQLITE_NOTADB:
        return CF_EDBCONN;
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
    case SQLITE_TOOBIG:
        return CF_EINVAL;
    case SQLITE_ERROR: /* at prepare time: syntax, no such table/column */
        return preparing ? CF_EDBSYNTAX : CF_EDB;
    default:
        return CF_EDB;
    }
}

const char *cf__sq_priv_strdup(sq_op *op, const char *s)
{
    size_t n = strlen(s);
    char *p = cf_arena_alloc(&op->priv, n + 1);
    if (!p)
        return "out of memory";
    memcpy(p, s, n + 1);
    return p;
}

void cf__sq_op_fail(sq_op *op, int err, const char *msg)
{
    op->err = err;
    op->msg = cf__sq_priv_strdup(op, msg);
}

/* ---- connections ------------------------------------------------------------- */

static void conn_close(sq_conn *c)
{
    for (size_t i = 0; i < c->ncache; i++) {
        sqlite3_finalize(c->cache[i].st);
        free(c->cache[i].sql);
        free(c->cache[i].map);
    }
    free(c->cache);
    c->cache = NULL;
    c->ncache = 0;
    sqlite3_close(c->h);
    c->h = NULL;
}

int cf__sq_conn_open(sq_db *s, sq_conn *c, char *msg, size_t cap)
{
    sqlite3 *h = NULL;
    int rc = sqlite3_open_v2(s->path, &h, s->flags, NULL);
    if (rc != SQLITE_OK) {
        snprintf(msg, cap, "cannot open SQLite database %s: %s", s->shown,
                 h ? sqlite3_errmsg(h) : sqlite3_errstr(rc));
        sqlite3_close(h);
        return CF_EDBCONN;
    }
    sqlite3_extended_result_codes(h, 1);
    /* A pool thread waits only briefly for a lock; longer waits happen on
     * the loop (see sq_after), so lock waiters never occupy every pool
     * thread while the lock holder's next statement waits for one. */
    sqlite3_busy_timeout(h, cf__sq_spin_ms(s));
    const char *setup = s->memory ? "PRAGMA foreign_keys=ON"
                                  : "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL";
    char *e = NULL;
    if (sqlite3_exec(h, setup, NULL, NULL, &e) != SQLITE_OK) {
        snprintf(msg, cap, "cannot set up SQLite database %s: %s", s->shown, e ? e : "?");
        sqlite3_free(e);
        sqlite3_close(h);
        return CF_EDBCONN;
    }
    c->h = h;
    rc = cf__sq_wal_setup(s, c, msg, cap);
    if (rc != 0) {
        sqlite3_close(h);
        c->h = NULL;
    }
    return rc;
}

static sq_conn *register_conn(sq_db *s)
{
    sq_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_mutex_lock(&s->mu);
    c->next_all = s->all;
    s->all = c;
    pthread_mutex_unlock(&s->mu);
    return c;
}

sq_conn *cf__sq_tls_conn(sq_db *s, uint64_t uid)
{
    for (int i = 0; i < TL_SLOTS; i++)
        if (tl_conn[i].uid == uid)
            return tl_conn[i].c;
    sq_conn *c = register_conn(s);
    if (c) {
        unsigned slot = tl_next++ % TL_SLOTS;
        tl_conn[slot].uid = uid;
        tl_conn[slot].c = c;
    }
    return c;
}

/* A connection for a transaction (opened by its first statement if new). */
static sq_conn *take_conn(sq_db *s)
{
    pthread_mutex_lock(&s->mu);
    sq_conn *c = s->free;
    if (c)
        s->free = c->next_free;
    pthread_mutex_unlock(&s->mu);
    return c ? c : register_conn(s);
}

static void give_conn(sq_db *s, sq_conn *c)
{
    pthread_mutex_lock(&s->mu);
    c->next_free = s->free;
    s->free = c;
    pthread_mutex_unlock(&s->mu);
}

/* ---- lanes and completion (loop thread) ---------------------------------------------- */

static void sq_after(uv_work_t *w, int status);
static void op_done(sq_op *op, int err, const char *msg);
static void sq_request_end(db_ctx *ctx);

static uint64_t now_ms(void) { return cf_now_ns() / 1000000u; }

/* The pause before the next attempt: doubling up to 16 ms, and the last
 * attempt lands on the deadline. */
static unsigned backoff_ms(const sq_op *op)
{
    unsigned ms = 1u << (op->attempts < 5 ? op->attempts : 5);
    if (ms > BUSY_BACKOFF_MAX_MS)
        ms = BUSY_BACKOFF_MAX_MS;
    uint64_t now = now_ms();
    uint64_t left = op->deadline_ms > now ? op->deadline_ms - now : 1;
    return left < ms ? (unsigned)left : ms;
}

static bool queue_work(sq_op *op)
{
    op->may_retry = now_ms() < op->deadline_ms;
    return uv_queue_work(cf_sched_get()->loop, &op->work, cf__sq_sq_work, sq_after) == 0;
}

static void on_retry(cf_timer *t)
{
    sq_op *op = (sq_op *)((char *)t - offsetof(sq_op, retry));
    op->backing_off = false;
    op->attempts++;
    if (!queue_work(op)) {
        if (op->lane)
            op->lane->running = false;
        op_done(op, CF_ENOMEM, "cannot queue work on the thread pool");
    }
}

static void lane_remove(sq_lane *l, cf_dbq *q)
{
    cf_dbq *prev = NULL;
    for (cf_dbq *x = l->head; x; prev = x, x = x->next) {
        if (x != q)
            continue;
        if (prev)
            prev->next = x->next;
        else
            l->head = x->next;
        if (l->tail == x)
            l->tail = prev;
        x->next = NULL;
        return;
    }
}

static void lane_pump(sq_lane *l)
{
    while (!l->running) {
        cf_dbq *q = l->head;
        while (q && l->owner && q->ctx != l->owner)
            q = q->next;
        if (!q)
            return;
        lane_remove(l, q);
        sq_op *op = (sq_op *)q;
        op->queued = false;
        if (q->kind == OP_BEGIN && op->s->memory)
            l->owner = q->ctx;
        l->running = true;
        if (!queue_work(op)) {
            l->running = false;
            op_done(op, CF_ENOMEM, "cannot queue work on the thread pool");
        }
    }
}

/* Bookkeeping after a statement, then its completion (last: it may end
 * the request). */
static void op_done(sq_op *op, int err, const char *msg)
{
    cf_dbq *q = &op->q;
    db_ctx *ctx = q->ctx;
    sq_db *s = op->s;
    cf_db_txn_update(q, err);
    bool ends = q->kind == OP_COMMIT || q->kind == OP_ROLLBACK || (q->kind == OP_BEGIN && err);
    if (s->memory && ends && s->mem_lane.owner == ctx)
        s->mem_lane.owner = NULL;
    if (!s->memory && ctx->txconn && ctx->txn == TXN_NONE && !ctx->lane.running &&
        !ctx->lane.head) {
        give_conn(s, ctx->txconn);
        ctx->txconn = NULL;
        ctx->lane.owner = NULL;
    }
    if (op->lane)
        lane_pump(op->lane);
    /* A crashed request's memory is never released, so ctx outlives the
     * completion: give back what it holds once its last statement is done. */
    bool last_of_abandoned = ctx->abandoned && ctx->inflight == 1;
    cf_db_finish(q, err, msg);
    if (last_of_abandoned)
        sq_request_end(ctx);
}

static void sq_after(uv_work_t *w, int status)
{
    sq_op *op = w->data;
    if (status != UV_ECANCELED && op->busy && op->may_retry && !atomic_load(&op->stop)) {
        /* Locked: wait on the loop, not in a pool thread, then try again
         * (a lane stays blocked meanwhile, keeping its order). */
        op->backing_off = true;
        cf_timer_start(&op->retry, backoff_ms(op));
        return;
    }
    if (op->lane)
        op->lane->running = false;
    if (status == UV_ECANCELED)
        op_done(op, CF_ECANCELED, "cancelled");
    else
        op_done(op, op->err, op->msg);
    cf_sched_run();
}

static void release_priv(void *p)
{
    sq_op *op = p;
    cf_arena_reset(&op->priv);
}

static void sq_start(cf_dbq *q)
{
    sq_op *op = (sq_op *)q;
    db_ctx *ctx = q->ctx;
    cf_req *rq = ctx->rq;
    sq_db *s = ctx->db->be;
    op->s = s;
    op->uid = ctx->db->uid;
    atomic_init(&op->stop, 0);
    cf_arena_init(&op->priv, cf_alloc(rq, PRIV_FIRST), PRIV_FIRST);
    cf_defer(rq, release_priv, op);
    op->work.data = op;
    op->solo = q->kind == OP_QUERY && ctx->txn == TXN_NONE;
    op->deadline_ms = now_ms() + (uint64_t)ctx->db->busy_timeout_ms;
    cf_timer_init(&op->retry, on_retry);
    if (s->memory) {
        op->lane = &s->mem_lane;
        op->conn = s->mem;
    } else if (q->kind == OP_BEGIN) {
        if (!ctx->txconn)
            ctx->txconn = take_conn(s);
        if (!ctx->txconn) {
            op_done(op, CF_ENOMEM, "out of memory");
            return;
        }
        ctx->lane.owner = ctx;
        op->lane = &ctx->lane;
        op->conn = ctx->txconn;
    } else if (ctx->txn != TXN_NONE || ctx->txconn) {
        op->lane = &ctx->lane;
        op->conn = ctx->txconn;
    }
    if (!op->lane) {
        if (op->solo && ctx->db->loop_read_steps > 0 && cf__sq_try_on_loop(op)) {
            op_done(op, op->err, op->msg);
            return;
        }
        if (!queue_work(op))
            op_done(op, CF_ENOMEM, "cannot queue work on the thread pool");
        return;
    }
    q->next = NULL;
    if (op->lane->tail)
        op->lane->tail->next = q;
    else
        op->lane->head = q;
    op->lane->tail = q;
    op->queued = true;
    lane_pump(op->lane);
}

static void sq_cancel(cf_dbq *q)
{
    sq_op *op = (sq_op *)q;
    atomic_store(&op->stop, 1); /* a running statement stops at its next progress check */
    if (op->backing_off) {
        cf_timer_stop(&op->retry);
        op->backing_off = false;
        if (op->lane)
            op->lane->running = false;
        op_done(op, CF_ECANCELED, "cancelled");
    } else if (op->queued) {
        lane_remove(op->lane, q);
        op->queued = false;
        op_done(op, CF_ECANCELED, "cancelled");
    }
}

/* ---- the end of a request: roll back what it left open ------------------------------ */

typedef struct sq_rollback {
    uv_work_t work;
    sq_db *s;
    sq_conn *c;
} sq_rollback;

static void rollback_work(uv_work_t *w)
{
    sq_rollback *j = w->data;
    if (j->c->h && !sqlite3_get_autocommit(j->c->h))
        sqlite3_exec(j->c->h, "ROLLBACK", NULL, NULL, NULL);
}

static void rollback_after(uv_work_t *w, int status)
{
    (void)status;
    sq_rollback *j = w->data;
    sq_db *s = j->s;
    if (s->memory) {
        s->mem_lane.running = false;
        lane_pump(&s->mem_lane);
    } else {
        give_conn(s, j->c);
    }
    free(j);
    cf_sched_run();
}

static void sq_request_end(db_ctx *ctx)
{
    sq_db *s = ctx->db->be;
    sq_conn *c = NULL;
    if (s->memory) {
        if (s->mem_lane.owner != ctx)
            return;
        s->mem_lane.owner = NULL;
        c = s->mem;
    } else {
        c = ctx->txconn;
        ctx->txconn = NULL;
        if (!c)
            return;
    }
    if (ctx->txn == TXN_NONE) { /* only a connection to give back */
        if (s->memory)
            lane_pump(&s->mem_lane);
        else
            give_conn(s, c);
        return;
    }
    ctx->txn = TXN_NONE;
    sq_rollback *j = calloc(1, sizeof *j);
    if (j) {
        j->s = s;
        j->c = c;
        j->work.data = j;
        if (s->memory)
            s->mem_lane.running = true; /* nothing else may cf__sq_run on it meanwhile */
        if (uv_queue_work(cf_sched_get()->loop, &j->work, rollback_work, rollback_after) == 0)
            return;
        free(j);
        if (s->memory)
            s->mem_lane.running = false;
    }
    /* No way to roll back off the loop: do it here rather than leak the lock. */
    if (c->h && !sqlite3_get_autocommit(c->h))
        sqlite3_exec(c->h, "ROLLBACK", NULL, NULL, NULL);
    if (s->memory)
        lane_pump(&s->mem_lane);
    else
        give_conn(s, c);
}

/* ---- set-up ------------------------------------------------------------------- */

static bool hexval(char c, int *v)
{
    if (c >= '0' && c <= '9')
        *v = c - '0';
    else if (c >= 'a' && c <= 'f')
        *v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
        *v = c - 'A' + 10;
    else
        return false;
    return true;
}

/* Decode %XX in place; false on a bad escape or an encoded NUL. */
static bool pct_decode(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        int hi, lo;
        if (*p == '%') {
            if (!hexval(p[1], &hi) || !hexval(p[2], &lo) || (hi == 0 && lo == 0))
                return false;
            *o++ = (char)(hi * 16 + lo);
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = 0;
    return true;
}

static void sq_free(cf_db *db)
{
    sq_db *s = db->be;
    if (!s)
        return;
    for (sq_conn *c = s->all, *next; c; c = next) {
        next = c->next_all;
        conn_close(c);
        free(c);
    }
    if (s->mem) {
        conn_close(s->mem);
        free(s->mem);
    }
    pthread_mutex_destroy(&s->mu);
    free(s->path);
    free(s->shown);
    free(s);
    db->be = NULL;
}

static int open_fail(cf_db *db, sq_db *s, int code, const char *fmt, const char *arg)
{
    fprintf(stderr, "carafe: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    db->be = s;
    sq_free(db);
    return code;
}

static int sq_open(cf_db *db, const char *target)
{
    sq_db *s = calloc(1, sizeof *s);
    if (!s)
        return CF_ENOMEM;
    pthread_mutex_init(&s->mu, NULL);
    s->db = db;
    s->flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (!*target || strcmp(target, ":memory:") == 0 || strcmp(target, "/:memory:") == 0) {
        s->memory = true;
        s->path = strdup(":memory:");
        s->shown = strdup(":memory:");
        s->mem = calloc(1, sizeof *s->mem);
        if (!s->path || !s->shown || !s->mem)
            return open_fail(db, s, CF_ENOMEM, "%s", "out of memory");
        db->be = s;
        return 0;
    }
    if (target[0] != '/')
        return open_fail(db, s, CF_EDBURL,
                         "the database URL \"sqlite://%s\" is malformed: use sqlite:///relative.db, "
                         "sqlite:////absolute/path.db or sqlite://:memory:", target);
    const char *p = target + 1;
    const char *qm = strchr(p, '?');
    size_t plen = qm ? (size_t)(qm - p) : strlen(p);
    char *name = strndup(p, plen);
    if (!name)
        return open_fail(db, s, CF_ENOMEM, "%s", "out of memory");
    if (plen == 0 || !pct_decode(name)) {
        free(name);
        return open_fail(db, s, CF_EDBURL,
                         "the database URL \"sqlite://%s\" has no usable file name: use "
                         "sqlite:///relative.db or sqlite:////absolute/path.db", target);
    }
    char *abs = name;
    if (name[0] != '/') {
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd)) {
            free(name);
            return open_fail(db, s, CF_EDBURL, "%s", "cannot resolve a relative SQLite path: "
                                                     "no current directory");
        }
        abs = malloc(strlen(cwd) + strlen(name) + 2);
        if (abs)
            sprintf(abs, "%s/%s", cwd, name);
        free(name);
        if (!abs)
            return open_fail(db, s, CF_ENOMEM, "%s", "out of memory");
    }
    s->shown = abs;
    if (qm && qm[1]) {
        /* URI parameters (mode=ro, ...): SQLite's file: URI, path escaped. */
        size_t cap = 5 + 3 * strlen(abs) + 1 + strlen(qm + 1) + 1;
        char *uri = malloc(cap);
        if (!uri)
            return open_fail(db, s, CF_ENOMEM, "%s", "out of memory");
        size_t o = (size_t)sprintf(uri, "file:");
        for (const char *c = abs; *c; c++) {
            if (*c == '%' || *c == '?' || *c == '#')
                o += (size_t)sprintf(uri + o, "%%%02X", (unsigned char)*c);
            else
                uri[o++] = *c;
        }
        sprintf(uri + o, "?%s", qm + 1);
        s->path = uri;
        s->flags |= SQLITE_OPEN_URI;
    } else {
        s->path = strdup(abs);
        if (!s->path)
            return open_fail(db, s, CF_ENOMEM, "%s", "out of memory");
    }
    db->be = s;
    return 0;
}

/* When the app is about to be served: open the file once, so a wrong path
 * fails at start, not at the first request, and set WAL mode (a property
 * of the file). The in-memory database's one connection opens here. */
static int sq_connect(cf_db *db)
{
    sq_db *s = db->be;
    char m[600];
    if (s->memory) {
        if (!s->mem->h && cf__sq_conn_open(s, s->mem, m, sizeof m) != 0) {
            fprintf(stderr, "carafe: %s\n", m);
            return CF_EDBCONN;
        }
        return 0;
    }
    sq_conn probe = {0};
    if (cf__sq_conn_open(s, &probe, m, sizeof m) != 0) {
        fprintf(stderr, "carafe: %s\n", m);
        return CF_EDBCONN;
    }
    char *e = NULL;
    if (!sqlite3_db_readonly(probe.h, "main") &&
        sqlite3_exec(probe.h, "PRAGMA journal_mode=WAL", NULL, NULL, &e) != SQLITE_OK) {
        fprintf(stderr, "carafe: cannot use SQLite database %s: %s\n", s->shown, e ? e : "?");
        sqlite3_free(e);
        conn_close(&probe);
        return CF_EDBCONN;
    }
    conn_close(&probe);
    return 0;
}

static int sq_exec_script(cf_db *db, const char *sql)
{
    sq_db *s = db->be;
    sq_conn tmp = {0};
    sq_conn *c = s->memory ? s->mem : &tmp;
    char m[600];
    int code = 0;
    if (!c->h && (code = cf__sq_conn_open(s, c, m, sizeof m)) != 0) {
        fprintf(stderr, "carafe: schema script: %s\n", m);
        return code;
    }
    char *e = NULL;
    int rc = sqlite3_exec(c->h, sql, NULL, NULL, &e);
    if (rc != SQLITE_OK) {
        code = cf__sq_map_rc(sqlite3_extended_errcode(c->h), true);
        fprintf(stderr, "carafe: schema script failed on %s: %s\n", s->shown,
                e ? e : sqlite3_errstr(rc));
        sqlite3_free(e);
        if (!sqlite3_get_autocommit(c->h))
            sqlite3_exec(c->h, "ROLLBACK", NULL, NULL, NULL);
    }
    if (c == &tmp)
        conn_close(&tmp);
    return code;
}

static void sq_abandon(db_ctx *ctx)
{
    if (ctx->inflight == 0)
        sq_request_end(ctx); /* else when its last statement is done (op_done) */
}

const db_backend cf_db_sqlite_backend = {
    .name = "sqlite",
    .op_size = sizeof(sq_op),
    .open = sq_open,
    .connect = sq_connect,
    .exec_script = sq_exec_script,
    .free = sq_free,
    .start = sq_start,
    .cancel = sq_cancel,
    .request_end = sq_request_end,
    .abandon = sq_abandon,
};
