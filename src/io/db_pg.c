/*
 * db_pg.c — the PostgreSQL backend: libpq in non-blocking pipeline mode,
 * driven by the worker's loop. Each connection's socket is watched with a
 * uv_poll handle and nothing here ever blocks: host names are looked up on
 * libuv's thread pool before libpq starts (pg_hosts.c).
 *
 * Pool. Each worker (each loop) has a pool per database, of at most
 * CF_DB_POOL_SIZE connections, opened on demand (PQconnectStart +
 * PQconnectPoll, with a connect timeout) and kept open. A request holds a
 * connection while it has statements in flight, and for the whole of a
 * transaction; then the connection goes to the first request waiting for
 * one (FIFO) or back to the idle stack. A request that starts several
 * statements at once (cf_db_start) sends them all down its connection
 * before reading any result: with each statement followed by a pipeline
 * sync, they are independent (one failing does not abort the others) yet
 * cost one round trip together.
 *
 * Reading. For the statement at the head of a connection's queue, results
 * arrive as: its result (tuples, command, or error), a NULL, then the
 * PIPELINE_SYNC marker. Results are consumed only when PQisBusy says they
 * are complete, so PQgetResult never waits. A successful PGresult is kept
 * until the request ends (cf_defer) and the rows point into it; numbers
 * are parsed once.
 *
 * Cancelling. A statement whose waiter is cancelled (client gone, await
 * timeout) while the server runs it, outside a transaction, is stopped
 * with a cancel request (PQcancel, on the thread pool); the connection
 * takes no new statement until the request is through, so it cannot hit
 * the next one. Elsewhere a cancelled statement runs to its end.
 *
 * Failures. An idle connection is watched too: when the server goes away
 * (restart, crash, idle timeout) the connection is dropped at once, so the
 * next request opens a fresh one. A statement found on a dead connection
 * before it was sent is retried once on a fresh connection (outside a
 * transaction); a connection lost with statements in flight fails those
 * with CF_EDBCONN (they may or may not have run), and a transaction on it
 * is lost (its later statements fail until cf_db_rollback).
 *
 * Re-entrancy. Completing a statement wakes its task at once, and the task
 * may start statements, end its request or break a connection before the
 * completing code continues. So state is updated before each completion,
 * connections are freed only when no caller on the stack holds them
 * (holds), and requests are kept alive by a scope reference while a
 * function still needs them.
 */
#include "io/db.h"
#include "io/pg_hosts.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Names this module's per-loop state among the scheduler's slots. */
static const char pg_loop_key;

/* Type OIDs from pg_type.h (stable across versions). */
enum {
    OID_BOOL = 16, OID_BYTEA = 17, OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23,
    OID_OID = 26, OID_JSON = 114, OID_FLOAT4 = 700, OID_FLOAT8 = 701,
    OID_NUMERIC = 1700, OID_JSONB = 3802,
};

enum { PC_CONNECTING, PC_READY, PC_DEAD };

typedef struct pg_db {
    char *conninfo;
    pg_hosts *hosts; /* names to resolve before connecting; NULL: none */
} pg_db;

typedef struct pg_op {
    cf_dbq q;
    bool pending; /* in its request's list, waiting for a connection */
} pg_op;

typedef struct pg_pool pg_pool;

struct pg_conn {
    pg_pool *pool;
    PGconn *pg;
    uv_poll_t *poll;
    int fd, events;
    int state;
    bool reffed, idle, closed;
    int holds;         /* callers on the stack using it */
    db_ctx *owner;     /* the request holding it */
    cf_dbq *head, *tail; /* sent, results pending; ctx NULL: an internal ROLLBACK */
    bool in_sync;      /* the head's result is read; its sync marker is next */
    PGresult *res;
    pg_resolve *resolving; /* looking the host names up, before c->pg exists */
    struct pg_cancel_job *cancel; /* asking the server to stop the head statement */
    cf_timer ctimer;   /* connect timeout (name lookup included) */
    pg_conn *next_idle, *next_all, *prev_all;
};

struct pg_pool {
    uint64_t uid;
    cf_db *db;
    size_t count, connecting, nwait;
    bool growing;
    pg_conn *idle, *all;
    db_ctx *whead, *wtail; /* requests waiting for a connection, FIFO */
    pg_pool *next;
};

typedef struct pg_svc {
    uv_loop_t *loop;
    pg_pool *pools;
} pg_svc;

static void conn_broken(pg_conn *c, const char *why);
static void pool_acquire(db_ctx *ctx);
static void pool_grow(pg_pool *p);

/* A cancel request in flight (PQcancel blocks: it runs on the thread pool). */
typedef struct pg_cancel_job {
    uv_work_t work;
    PGcancel *pc;
    pg_conn *c; /* NULL once the connection is gone */
} pg_cancel_job;

/* ---- per-loop state ------------------------------------------------------------ */

static void on_poll_closed(uv_handle_t *h) { free(h); }

static void conn_close(pg_conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    c->state = PC_DEAD;
    cf_timer_stop(&c->ctimer);
    if (c->resolving) {
        pg_resolve_abandon(c->resolving);
        c->resolving = NULL;
    }
    if (c->cancel) {
        c->cancel->c = NULL; /* it ends on its own */
        c->cancel = NULL;
    }
    if (c->poll) {
        uv_close((uv_handle_t *)c->poll, on_poll_closed); /* stops polling now */
        c->poll = NULL;
    }
    PQclear(c->res);
    c->res = NULL;
    PQfinish(c->pg);
    c->pg = NULL;
    if (c->holds == 0)
        free(c);
}

static void conn_hold(pg_conn *c) { c->holds++; }

/* Drop a hold; false if the connection died meanwhile (then it must not be
 * touched again). */
static bool conn_release(pg_conn *c)
{
    bool alive = c->state != PC_DEAD;
    if (--c->holds == 0 && c->closed)
        free(c);
    return alive;
}

static void svc_close(void *state)
{
    pg_svc *v = state;
    for (pg_pool *p = v->pools, *pn; p; p = pn) {
        pn = p->next;
        for (pg_conn *c = p->all, *cn; c; c = cn) {
            cn = c->next_all;
            /* Statements still queued belong to requests that will never
             * resume (the loop is ending); internal ones are ours. */
            for (cf_dbq *q = c->head, *qn; q; q = qn) {
                qn = q->next;
                if (!q->ctx)
                    free(q);
            }
            c->holds = 0;
            conn_close(c);
        }
        free(p);
    }
    free(v);
}

static pg_pool *pool_get(cf_db *db)
{
    pg_svc *v = cf_sched_local_get(&pg_loop_key);
    if (!v) {
        v = calloc(1, sizeof *v);
        if (!v)
            return NULL;
        v->loop = cf_sched_get()->loop;
        cf_sched_set_local(&pg_loop_key, v, svc_close);
    }
    for (pg_pool *p = v->pools; p; p = p->next)
        if (p->uid == db->uid)
            return p;
    pg_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->uid = db->uid;
    p->db = db;
    p->next = v->pools;
    v->pools = p;
    return p;
}

static uv_loop_t *loop_of(void) { return ((pg_svc *)cf_sched_local_get(&pg_loop_key))->loop; }

/* ---- polling ------------------------------------------------------------------- */

static void on_poll(uv_poll_t *h, int status, int events);

static void conn_ref(pg_conn *c, bool on)
{
    c->reffed = on;
    if (c->poll) {
        if (on)
            uv_ref((uv_handle_t *)c->poll);
        else
            uv_unref((uv_handle_t *)c->poll); /* an idle connection keeps no loop alive */
    }
}

/* Watch the connection's socket for `events` (libpq may change sockets
 * while connecting: then the watcher is replaced). */
static bool poll_set(pg_conn *c, int events)
{
    int fd = PQsocket(c->pg);
    if (fd < 0)
        return false;
    if (c->poll && fd != c->fd) {
        uv_close((uv_handle_t *)c->poll, on_poll_closed);
        c->poll = NULL;
    }
    if (!c->poll) {
        c->poll = malloc(sizeof *c->poll);
        if (!c->poll || uv_poll_init(loop_of(), c->poll, fd) != 0) {
            free(c->poll);
            c->poll = NULL;
            return false;
        }
        c->poll->data = c;
        c->fd = fd;
        c->events = 0;
        conn_ref(c, c->reffed);
    }
    if (events != c->events) {
        if (uv_poll_start(c->poll, events, on_poll) != 0)
            return false;
        c->events = events;
    }
    return true;
}

/* ---- errors and results ---------------------------------------------------------- */

static int map_sqlstate(const char *s)
{
    if (!s || strlen(s) != 5)
        return CF_EDB;
    if (strcmp(s, "23505") == 0)
        return CF_EUNIQUE;
    if (strcmp(s, "23503") == 0)
        return CF_EFOREIGNKEY;
    if (strcmp(s, "23502") == 0)
        return CF_ENOTNULL;
    if (strncmp(s, "23", 2) == 0)
        return CF_ECONSTRAINT;
    if (strcmp(s, "57014") == 0) /* query_canceled: statement_timeout */
        return CF_ETIMEDOUT;
    if (strcmp(s, "42P18") == 0 || strcmp(s, "08P01") == 0) /* parameter count/types */
        return CF_EINVAL;
    if (strncmp(s, "42", 2) == 0 && strcmp(s, "42501") != 0)
        return CF_EDBSYNTAX;
    if (strncmp(s, "08", 2) == 0 || strncmp(s, "57P", 3) == 0)
        return CF_EDBCONN;
    if (strncmp(s, "22", 2) == 0) /* a value that does not fit its type */
        return CF_EINVAL;
    return CF_EDB;
}

static const char *error_text(cf_req *rq, const PGresult *res)
{
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    if (!primary)
        return cf_db_copy_msg(rq, NULL, PQresultErrorMessage(res));
    if (detail)
        return cf_sprintf(rq, "%s (%s)", primary, detail);
    return cf_strdup(rq, primary);
}

static int hexdig(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* bytea in text form: "\x" and hex (the server's default output). */
static void bytea_cell(cf_req *rq, db_cell *cell, const char *v, size_t len)
{
    cell->type = CELL_BLOB;
    if (len >= 2 && v[0] == '\\' && v[1] == 'x') {
        size_t n = (len - 2) / 2;
        char *out = cf_alloc(rq, n + 1);
        for (size_t i = 0; i < n; i++) {
            int hi = hexdig(v[2 + 2 * i]), lo = hexdig(v[3 + 2 * i]);
            out[i] = (char)((hi < 0 ? 0 : hi) << 4 | (lo < 0 ? 0 : lo));
        }
        out[n] = 0;
        cell->v.s = out;
        cell->len = n;
        return;
    }
    size_t n = 0; /* the old "escape" format: \\ and \ooo */
    char *out = cf_alloc(rq, len + 1);
    for (size_t i = 0; i < len; i++) {
        if (v[i] == '\\' && i + 1 < len && v[i + 1] == '\\') {
            out[n++] = '\\';
            i++;
        } else if (v[i] == '\\' && i + 3 < len) {
            out[n++] = (char)((v[i + 1] - '0') * 64 + (v[i + 2] - '0') * 8 + (v[i + 3] - '0'));
            i += 3;
        } else {
            out[n++] = v[i];
        }
    }
    out[n] = 0;
    cell->v.s = out;
    cell->len = n;
}

static void clear_result(void *res) { PQclear(res); }

/* NOTICEs ("table does not exist, skipping") are not errors: not logged. */
static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* The rows of `res`, which the request keeps (strings point into it). */
static cf_rows *to_rows(cf_req *rq, PGresult *res)
{
    cf_rows *r = cf_alloc(rq, sizeof *r);
    memset(r, 0, sizeof *r);
    r->rq = rq;
    cf_defer(rq, clear_result, res);
    r->ncols = (size_t)PQnfields(res);
    r->nrows = (size_t)PQntuples(res);
    if (r->ncols) {
        r->names = cf_alloc(rq, r->ncols * sizeof *r->names);
        for (size_t i = 0; i < r->ncols; i++)
            r->names[i] = PQfname(res, (int)i);
    }
    if (r->ncols && r->nrows) {
        Oid *types = cf_alloc(rq, r->ncols * sizeof *types);
        for (size_t i = 0; i < r->ncols; i++)
            types[i] = PQftype(res, (int)i);
        r->cells = cf_alloc(rq, r->nrows * r->ncols * sizeof *r->cells);
        for (size_t row = 0; row < r->nrows; row++) {
            for (size_t col = 0; col < r->ncols; col++) {
                db_cell *cell = &r->cells[row * r->ncols + col];
                cell->len = 0;
                if (PQgetisnull(res, (int)row, (int)col)) {
                    cell->type = CELL_NULL;
                    continue;
                }
                const char *v = PQgetvalue(res, (int)row, (int)col);
                size_t len = (size_t)PQgetlength(res, (int)row, (int)col);
                switch (types[col]) {
                case OID_BOOL:
                    cell->type = CELL_BOOL;
                    cell->v.i = v[0] == 't';
                    break;
                case OID_INT2:
                case OID_INT4:
                case OID_INT8:
                case OID_OID:
                    cell->type = CELL_INT;
                    cell->v.i = strtoll(v, NULL, 10);
                    break;
                case OID_FLOAT4:
                case OID_FLOAT8:
                case OID_NUMERIC:
                    cell->type = CELL_REAL;
                    cell->v.d = strtod(v, NULL);
                    break;
                case OID_BYTEA:
                    bytea_cell(rq, cell, v, len);
                    break;
                case OID_JSON:
                case OID_JSONB:
                    cell->type = CELL_JSON;
                    cell->v.s = v;
                    cell->len = len;
                    break;
                default:
                    cell->type = CELL_TEXT;
                    cell->v.s = v;
                    cell->len = len;
                    break;
                }
            }
        }
    }
    const char *cmd = PQcmdStatus(res);
    if (strncmp(cmd, "INSERT", 6) == 0 || strncmp(cmd, "UPDATE", 6) == 0 ||
        strncmp(cmd, "DELETE", 6) == 0 || strncmp(cmd, "MERGE", 5) == 0)
        r->affected = strtoll(PQcmdTuples(res), NULL, 10);
    return r;
}

/* ---- statements ------------------------------------------------------------------ */

/* The end of a request's statement: transaction state, then completion
 * (which may wake the task and even end the request). */
static void op_done(cf_dbq *q, int err, const char *msg)
{
    cf_db_txn_update(q, err);
    cf_db_finish(q, err, msg);
}

static void pending_push(db_ctx *ctx, cf_dbq *q, bool front)
{
    ((pg_op *)q)->pending = true;
    if (front) {
        q->next = ctx->pend_head;
        ctx->pend_head = q;
        if (!ctx->pend_tail)
            ctx->pend_tail = q;
    } else {
        q->next = NULL;
        if (ctx->pend_tail)
            ctx->pend_tail->next = q;
        else
            ctx->pend_head = q;
        ctx->pend_tail = q;
    }
}

static void wait_remove(pg_pool *p, db_ctx *ctx)
{
    if (!ctx->waiting)
        return;
    if (ctx->wprev)
        ctx->wprev->wnext = ctx->wnext;
    else
        p->whead = ctx->wnext;
    if (ctx->wnext)
        ctx->wnext->wprev = ctx->wprev;
    else
        p->wtail = ctx->wprev;
    ctx->wnext = ctx->wprev = NULL;
    ctx->waiting = false;
    p->nwait--;
}

static void wait_push(pg_pool *p, db_ctx *ctx)
{
    ctx->waiting = true;
    ctx->wnext = NULL;
    ctx->wprev = p->wtail;
    if (p->wtail)
        p->wtail->wnext = ctx;
    else
        p->whead = ctx;
    p->wtail = ctx;
    p->nwait++;
}

/* Fail every statement a request has waiting for a connection. */
static void fail_pending(db_ctx *ctx, int err, const char *why)
{
    cf_req *rq = ctx->rq;
    cf_scope *scope = cf__req_scope(rq);
    cf_scope_ref(scope);
    cf_dbq *list = ctx->pend_head;
    ctx->pend_head = ctx->pend_tail = NULL;
    const char *msg = cf_db_copy_msg(rq, NULL, why);
    for (cf_dbq *q = list, *next; q; q = next) {
        next = q->next;
        q->next = NULL;
        ((pg_op *)q)->pending = false;
        op_done(q, err, msg);
    }
    cf_scope_unref(scope);
}

static const char *txn_sql(const cf_dbq *q)
{
    switch (q->kind) {
    case OP_BEGIN: return "BEGIN";
    case OP_COMMIT: return "COMMIT";
    case OP_ROLLBACK: return "ROLLBACK";
    default: return q->sql;
    }
}

/* Send q down c. Returns false if c died (then c must not be touched);
 * q has then been failed, or put back to be retried. */
static bool send_op(pg_conn *c, cf_dbq *q)
{
    db_ctx *ctx = q->ctx;
    int n = (int)q->n;
    const char **values = NULL;
    int *lengths = NULL, *formats = NULL;
    if (n) {
        cf_req *rq = ctx->rq;
        values = cf_alloc(rq, (size_t)n * sizeof *values);
        lengths = cf_alloc(rq, (size_t)n * sizeof *lengths);
        formats = cf_alloc(rq, (size_t)n * sizeof *formats);
        for (int i = 0; i < n; i++) {
            const cf_value *v = &q->params[i];
            lengths[i] = 0;
            formats[i] = 0;
            switch (v->type) {
            case CF_V_INT:
                values[i] = cf_sprintf(rq, "%" PRId64, v->i);
                break;
            case CF_V_REAL:
                values[i] = cf_sprintf(rq, "%.17g", v->d);
                break;
            case CF_V_TEXT:
                values[i] = v->s;
                break;
            case CF_V_BLOB:
                values[i] = v->s;
                lengths[i] = (int)v->len;
                formats[i] = 1; /* binary: no escaping */
                break;
            default:
                values[i] = NULL;
                break;
            }
        }
    }
    const char *sql = ctx ? txn_sql(q) : "ROLLBACK";
    if (!PQsendQueryParams(c->pg, sql, n, NULL, values, lengths, formats, 0)) {
        if (PQstatus(c->pg) == CONNECTION_OK && ctx) {
            /* Refused by libpq itself (e.g. too many parameters). */
            op_done(q, CF_EINVAL, cf_db_copy_msg(ctx->rq, NULL, PQerrorMessage(c->pg)));
            return true;
        }
        /* Nothing of q went out: retry it on a fresh connection once. */
        bool outside = ctx && (ctx->txn == TXN_NONE ||
                               (ctx->txn == TXN_BEGINNING && q->kind == OP_BEGIN));
        if (outside && q->retries++ == 0) {
            pending_push(ctx, q, true);
        } else if (ctx) {
            op_done(q, CF_EDBCONN, cf_db_copy_msg(ctx->rq, "connection to the database lost: ",
                                                  PQerrorMessage(c->pg)));
        } else {
            free(q);
        }
        conn_broken(c, PQerrorMessage(c->pg));
        return false;
    }
    /* Queued on c from here on: a failure now fails it with the rest. */
    q->next = NULL;
    if (c->tail)
        c->tail->next = q;
    else
        c->head = q;
    c->tail = q;
    if (ctx)
        ctx->sent++;
    int fl = PQpipelineSync(c->pg) ? PQflush(c->pg) : -1;
    if (fl < 0) {
        conn_broken(c, PQerrorMessage(c->pg));
        return false;
    }
    if (fl == 1 && !poll_set(c, UV_READABLE | UV_WRITABLE)) {
        conn_broken(c, "cannot watch the connection's socket");
        return false;
    }
    return true;
}

/* Send the statements ctx has waiting down c, its connection. */
static void send_pending(pg_conn *c, db_ctx *ctx)
{
    while (ctx->pend_head && ctx->conn == c && c->state == PC_READY) {
        cf_dbq *q = ctx->pend_head;
        ctx->pend_head = q->next;
        if (!ctx->pend_head)
            ctx->pend_tail = NULL;
        ((pg_op *)q)->pending = false;
        if (!send_op(c, q))
            break;
    }
}

/* c now serves ctx: send what it has waiting. */
static void assign(pg_conn *c, db_ctx *ctx)
{
    c->owner = ctx;
    ctx->conn = c;
    conn_ref(c, true);
    cf_scope *scope = cf__req_scope(ctx->rq);
    cf_scope_ref(scope);
    conn_hold(c);
    send_pending(c, ctx);
    conn_release(c);
    cf_scope_unref(scope);
}

/* c has no owner any more: to the first waiting request, or idle. */
static void pool_put(pg_conn *c)
{
    pg_pool *p = c->pool;
    c->owner = NULL;
    if (c->state != PC_READY || c->head || c->cancel)
        return;
    if (p->whead) {
        db_ctx *ctx = p->whead;
        wait_remove(p, ctx);
        assign(c, ctx);
        return;
    }
    c->idle = true;
    c->next_idle = p->idle;
    p->idle = c;
    conn_ref(c, false);
}

static void idle_remove(pg_conn *c)
{
    if (!c->idle)
        return;
    pg_pool *p = c->pool;
    for (pg_conn **pp = &p->idle; *pp; pp = &(*pp)->next_idle)
        if (*pp == c) {
            *pp = c->next_idle;
            break;
        }
    c->idle = false;
    c->next_idle = NULL;
}

/* A request is done with c. A transaction still open on it (cf_db_begin's,
 * or a "BEGIN" sent by hand) is rolled back before anyone else gets it. */
static void give_back(pg_conn *c)
{
    c->owner = NULL;
    if (c->state != PC_READY || c->cancel)
        return; /* a cancel in flight gives it back when it ends */
    if (PQtransactionStatus(c->pg) == PQTRANS_IDLE) {
        pool_put(c);
        return;
    }
    cf_dbq *q = calloc(1, sizeof *q);
    if (!q) {
        conn_broken(c, "out of memory");
        return;
    }
    q->kind = OP_ROLLBACK;
    conn_hold(c);
    send_op(c, q);
    conn_release(c);
}

/* The head statement's results are all in. */
static void op_complete(pg_conn *c)
{
    cf_dbq *q = c->head;
    c->head = q->next;
    if (!c->head)
        c->tail = NULL;
    q->next = NULL;
    c->in_sync = false;
    PGresult *res = c->res;
    c->res = NULL;
    db_ctx *ctx = q->ctx;
    if (!ctx) { /* the ROLLBACK of a connection given back inside a transaction */
        bool ok = res && PQresultStatus(res) == PGRES_COMMAND_OK &&
                  PQtransactionStatus(c->pg) == PQTRANS_IDLE;
        PQclear(res);
        free(q);
        if (!ok)
            conn_broken(c, "could not roll back a transaction left open");
        else if (!c->owner && !c->head)
            pool_put(c);
        return;
    }
    ctx->sent--;
    cf_req *rq = ctx->rq;
    int err = 0;
    const char *msg = NULL;
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        if (q->kind == OP_COMMIT && strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
            err = CF_EDB;
            msg = "the transaction was rolled back: a statement in it had failed";
        } else if (!q->abandoned) {
            q->rows = to_rows(rq, res); /* the request keeps res */
            res = NULL;
        }
    } else if (st == PGRES_EMPTY_QUERY) {
        err = CF_EINVAL;
        msg = "empty SQL statement";
    } else if (!res) {
        err = CF_EDB;
        msg = "no result from the server";
    } else {
        err = map_sqlstate(PQresultErrorField(res, PG_DIAG_SQLSTATE));
        msg = error_text(rq, res);
    }
    PQclear(res);
    cf_db_txn_update(q, err);
    if (ctx->conn == c && ctx->sent == 0 && !ctx->pend_head &&
        (ctx->txn == TXN_NONE || ctx->abandoned)) {
        ctx->conn = NULL;
        give_back(c);
    }
    cf_db_finish(q, err, msg);
}

static void process(pg_conn *c)
{
    while (c->head && c->state == PC_READY) {
        if (PQisBusy(c->pg))
            break;
        PGresult *r = PQgetResult(c->pg);
        if (!c->in_sync) {
            if (!r) {
                c->in_sync = true;
                continue;
            }
            ExecStatusType st = PQresultStatus(r);
            if (st == PGRES_PIPELINE_SYNC) {
                PQclear(r);
                op_complete(c);
                continue;
            }
            if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
                PQclear(r); /* the protocol state cannot be recovered here */
                conn_broken(c, "COPY is not supported through cf_db_query");
                break;
            }
            /* Keep the first error, else the last result. */
            if (c->res && PQresultStatus(c->res) == PGRES_FATAL_ERROR) {
                PQclear(r);
            } else {
                PQclear(c->res);
                c->res = r;
            }
        } else {
            if (!r)
                break; /* not expected: wait for more input */
            bool sync = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
            PQclear(r);
            if (sync)
                op_complete(c);
        }
    }
    if (c->state == PC_READY && PQstatus(c->pg) != CONNECTION_OK)
        conn_broken(c, PQerrorMessage(c->pg));
}

/* ---- connections ------------------------------------------------------------------ */

static void connected(pg_conn *c)
{
    cf_timer_stop(&c->ctimer);
    if (PQsetnonblocking(c->pg, 1) != 0 || !PQenterPipelineMode(c->pg)) {
        conn_broken(c, PQerrorMessage(c->pg));
        return;
    }
    c->pool->connecting--;
    c->state = PC_READY;
    if (!poll_set(c, UV_READABLE)) {
        conn_broken(c, "cannot watch the connection's socket");
        return;
    }
    pool_put(c);
}

static void connect_step(pg_conn *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        if (!poll_set(c, UV_READABLE))
            conn_broken(c, "cannot watch the connection's socket");
        break;
    case PGRES_POLLING_WRITING:
        if (!poll_set(c, UV_WRITABLE))
            conn_broken(c, "cannot watch the connection's socket");
        break;
    case PGRES_POLLING_OK:
        connected(c);
        break;
    default:
        conn_broken(c, PQerrorMessage(c->pg));
        break;
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    pg_conn *c = h->data;
    if (c->state == PC_DEAD)
        return;
    conn_hold(c);
    if (status < 0) {
        /* libuv reports a socket error (POLLERR: a refused connect, a
         * reset) as UV_EBADF and stops watching; libpq reads the real
         * reason from the socket. */
        c->events = 0;
        if (c->state == PC_CONNECTING)
            connect_step(c);
        else if (!PQconsumeInput(c->pg) || PQstatus(c->pg) != CONNECTION_OK)
            conn_broken(c, PQerrorMessage(c->pg));
        else if (!poll_set(c, UV_READABLE))
            conn_broken(c, "cannot watch the connection's socket");
        else
            process(c);
    } else if (c->state == PC_CONNECTING) {
        connect_step(c);
    } else {
        if (events & UV_WRITABLE) {
            int fl = PQflush(c->pg);
            if (fl < 0)
                conn_broken(c, PQerrorMessage(c->pg));
            else if (fl == 0 && !poll_set(c, UV_READABLE))
                conn_broken(c, "cannot watch the connection's socket");
        }
        if (c->state == PC_READY && (events & UV_READABLE)) {
            if (!PQconsumeInput(c->pg)) {
                conn_broken(c, PQerrorMessage(c->pg));
            } else if (c->events & UV_WRITABLE) {
                /* libpq: after reading, a pending flush may go on (TLS) */
                int fl = PQflush(c->pg);
                if (fl < 0)
                    conn_broken(c, PQerrorMessage(c->pg));
                else if (fl == 0 && !poll_set(c, UV_READABLE))
                    conn_broken(c, "cannot watch the connection's socket");
            }
            if (c->state == PC_READY)
                process(c);
        }
        /* An idle connection that hears anything is checked: a server
         * going away says goodbye (or just closes). */
        if (c->state == PC_READY && !c->head && PQstatus(c->pg) != CONNECTION_OK)
            conn_broken(c, PQerrorMessage(c->pg));
    }
    conn_release(c);
    cf_sched_run();
}

static void on_connect_timeout(cf_timer *t)
{
    pg_conn *c = (pg_conn *)((char *)t - offsetof(pg_conn, ctimer));
    char m[64];
    snprintf(m, sizeof m, "timed out after %" PRId64 " ms", c->pool->db->connect_timeout_ms);
    conn_hold(c);
    conn_broken(c, m);
    conn_release(c);
}

static void conn_unlink(pg_conn *c)
{
    pg_pool *p = c->pool;
    if (c->prev_all)
        c->prev_all->next_all = c->next_all;
    else
        p->all = c->next_all;
    if (c->next_all)
        c->next_all->prev_all = c->prev_all;
    c->next_all = c->prev_all = NULL;
}

/* libpq has the connection (or failed to start it): watch it. */
static void conn_begin(pg_conn *c, PGconn *pg)
{
    c->pg = pg;
    if (pg)
        PQsetNoticeProcessor(pg, quiet_notice, NULL);
    if (!pg)
        conn_broken(c, "out of memory");
    else if (PQstatus(pg) == CONNECTION_BAD)
        conn_broken(c, PQerrorMessage(pg));
    else if (!poll_set(c, UV_WRITABLE))
        conn_broken(c, "cannot watch the connection's socket");
}

static void on_hosts_resolved(void *ud, const char *const *keys, const char *const *values,
                              const char *error)
{
    pg_conn *c = ud;
    c->resolving = NULL;
    conn_hold(c);
    if (error)
        conn_broken(c, error);
    else
        conn_begin(c, PQconnectStartParams(keys, values, 1));
    conn_release(c);
    cf_sched_run();
}

/* Start one more connection for the waiting requests. */
static void conn_start(pg_pool *p)
{
    pg_db *pd = p->db->be;
    pg_conn *c = calloc(1, sizeof *c);
    if (!c) {
        if (p->whead) {
            db_ctx *ctx = p->whead;
            wait_remove(p, ctx);
            fail_pending(ctx, CF_ENOMEM, "out of memory");
        }
        return;
    }
    c->pool = p;
    c->fd = -1;
    c->state = PC_CONNECTING;
    c->reffed = true;
    cf_timer_init(&c->ctimer, on_connect_timeout);
    c->next_all = p->all;
    if (p->all)
        p->all->prev_all = c;
    p->all = c;
    p->count++;
    p->connecting++;
    conn_hold(c);
    cf_timer_start(&c->ctimer, (uint64_t)p->db->connect_timeout_ms);
    if (!pd->hosts)
        conn_begin(c, PQconnectStart(pd->conninfo));
    else if (!(c->resolving = pg_resolve_start(loop_of(), pd->hosts, on_hosts_resolved, c)))
        conn_broken(c, "cannot start looking the host name up");
    conn_release(c);
}

static void pool_grow(pg_pool *p)
{
    if (p->growing)
        return; /* the loop below picks it up */
    p->growing = true;
    while (p->nwait > p->connecting && p->count < (size_t)p->db->pool_size)
        conn_start(p);
    p->growing = false;
}

/* c is unusable: drop it, fail what it carried, serve the waiters anew. */
static void conn_broken(pg_conn *c, const char *why)
{
    if (c->state == PC_DEAD)
        return;
    pg_pool *p = c->pool;
    bool was_connecting = c->state == PC_CONNECTING;
    char msg[400];
    snprintf(msg, sizeof msg, "%s: %s",
             was_connecting ? "cannot connect to the database" : "connection to the database lost",
             why && *why ? why : "unknown error");
    size_t ml = strlen(msg);
    while (ml && (msg[ml - 1] == '\n' || msg[ml - 1] == ' '))
        msg[--ml] = 0;
    idle_remove(c);
    conn_unlink(c);
    p->count--;
    if (was_connecting)
        p->connecting--;
    cf_dbq *list = c->head;
    c->head = c->tail = NULL;
    db_ctx *owner = c->owner;
    c->owner = NULL;
    conn_close(c); /* c->state is PC_DEAD from here */
    cf_scope *keep = NULL;
    if (owner) {
        owner->conn = NULL;
        if (owner->txn == TXN_OPEN) {
            owner->txn = TXN_NONE;
            owner->txn_lost = true;
        }
        keep = cf__req_scope(owner->rq);
        cf_scope_ref(keep);
    }
    for (cf_dbq *q = list, *next; q; q = next) {
        next = q->next;
        q->next = NULL;
        if (!q->ctx) {
            free(q);
            continue;
        }
        q->ctx->sent--;
        op_done(q, CF_EDBCONN, cf_db_copy_msg(q->ctx->rq, NULL, msg));
    }
    if (owner && owner->pend_head && !owner->conn && !owner->waiting) {
        if (owner->txn_lost)
            fail_pending(owner, CF_EDBCONN, msg);
        else
            pool_acquire(owner);
    }
    if (keep)
        cf_scope_unref(keep);
    if (was_connecting && p->whead) {
        /* The oldest waiter hears why; the others get fresh attempts. */
        db_ctx *ctx = p->whead;
        wait_remove(p, ctx);
        fail_pending(ctx, CF_EDBCONN, msg);
    }
    pool_grow(p);
}

/* ctx has statements waiting and no connection. */
static void pool_acquire(db_ctx *ctx)
{
    pg_pool *p = pool_get(ctx->db);
    if (!p) {
        fail_pending(ctx, CF_ENOMEM, "out of memory");
        return;
    }
    while (p->idle && !p->whead) {
        pg_conn *c = p->idle;
        idle_remove(c);
        if (c->state == PC_READY && PQstatus(c->pg) == CONNECTION_OK) {
            assign(c, ctx);
            return;
        }
        conn_broken(c, PQerrorMessage(c->pg));
    }
    if (!ctx->waiting)
        wait_push(p, ctx);
    pool_grow(p);
}

/* ---- the backend interface --------------------------------------------------------- */

static void pg_start(cf_dbq *q)
{
    db_ctx *ctx = q->ctx;
    if (ctx->conn && !ctx->conn->cancel) {
        send_op(ctx->conn, q);
        return;
    }
    /* Without a connection: until one is free. On one with a cancel
     * request in flight: until that is through (cancel_done). */
    pending_push(ctx, q, false);
    if (!ctx->conn && !ctx->waiting)
        pool_acquire(ctx);
}

static void cancel_work(uv_work_t *w)
{
    pg_cancel_job *job = (pg_cancel_job *)w;
    char err[256];
    PQcancel(job->pc, err, sizeof err); /* at worst the statement runs to its end */
}

/* The server has the cancel request (PQcancel returns once the postmaster
 * passed it on): from here nothing sent on c can be hit by it (a backend
 * that was already idle drops it when it reads its next command), so
 * what waited for this may go. */
static void cancel_done(uv_work_t *w, int status)
{
    (void)status;
    pg_cancel_job *job = (pg_cancel_job *)w;
    pg_conn *c = job->c;
    PQfreeCancel(job->pc);
    free(job);
    if (!c)
        return;
    c->cancel = NULL;
    conn_hold(c);
    if (c->owner)
        send_pending(c, c->owner);
    else if (!c->head)
        give_back(c);
    conn_release(c);
    cf_sched_run();
}

/* Ask the server to stop the statement c is running. Until the request is
 * through, c takes no new statement, so the cancel cannot hit another. */
static void cancel_start(pg_conn *c)
{
    pg_cancel_job *job = calloc(1, sizeof *job);
    if (!job || !(job->pc = PQgetCancel(c->pg))) {
        free(job);
        return;
    }
    job->c = c;
    if (uv_queue_work(loop_of(), &job->work, cancel_work, cancel_done) != 0) {
        PQfreeCancel(job->pc);
        free(job);
        return;
    }
    c->cancel = job;
}

static void pg_cancel(cf_dbq *q)
{
    pg_op *op = (pg_op *)q;
    if (!op->pending) {
        /* Sent. If it is running now, outside a transaction (cancelling
         * would abort that), the server stops it; its result (an error) is
         * read and dropped when it comes, like any abandoned statement's. */
        pg_conn *c = q->ctx->conn;
        if (c && c->head == q && c->state == PC_READY && !c->cancel && q->ctx->txn == TXN_NONE)
            cancel_start(c);
        return;
    }
    db_ctx *ctx = q->ctx;
    cf_dbq *prev = NULL;
    for (cf_dbq *x = ctx->pend_head; x; prev = x, x = x->next) {
        if (x != q)
            continue;
        if (prev)
            prev->next = x->next;
        else
            ctx->pend_head = x->next;
        if (ctx->pend_tail == x)
            ctx->pend_tail = prev;
        break;
    }
    q->next = NULL;
    op->pending = false;
    if (!ctx->pend_head && ctx->waiting)
        wait_remove(pool_get(ctx->db), ctx);
    op_done(q, CF_ECANCELED, NULL);
}

static void pg_request_end(db_ctx *ctx)
{
    pg_conn *c = ctx->conn;
    if (!c)
        return;
    ctx->conn = NULL;
    ctx->txn = TXN_NONE;
    give_back(c); /* rolls back a transaction left open */
}

static void pg_abandon(db_ctx *ctx)
{
    if (ctx->waiting)
        wait_remove(pool_get(ctx->db), ctx);
    if (ctx->pend_head)
        fail_pending(ctx, CF_EFAIL, "a task of this request crashed");
    /* Statements in flight finish normally; then the connection goes back
     * (rolled back if a transaction is open) instead of staying held. */
    if (ctx->txn == TXN_OPEN)
        ctx->txn = TXN_NONE;
    pg_conn *c = ctx->conn;
    if (c && ctx->sent == 0) {
        ctx->conn = NULL;
        give_back(c);
    }
}

static int pg_open(cf_db *db, const char *url)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &err);
    if (!opts) {
        fprintf(stderr, "carafe: the database URL \"%s\" is malformed: %s", db->display,
                err ? err : "out of memory\n");
        PQfreemem(err);
        return CF_EDBURL;
    }
    PQconninfoFree(opts);
    pg_db *pd = calloc(1, sizeof *pd);
    if (!pd || !(pd->conninfo = strdup(url))) {
        free(pd);
        return CF_ENOMEM;
    }
    pd->hosts = pg_hosts_parse(url);
    db->be = pd;
    return 0;
}

static void pg_free(cf_db *db)
{
    pg_db *pd = db->be;
    if (pd) {
        free(pd->conninfo);
        pg_hosts_free(pd->hosts);
    }
    free(pd);
    db->be = NULL;
}

static int pg_exec_script(cf_db *db, const char *sql)
{
    pg_db *pd = db->be;
    PGconn *c = PQconnectdb(pd->conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "carafe: schema script: cannot connect to %s: %s", db->display,
                PQerrorMessage(c));
        PQfinish(c);
        return CF_EDBCONN;
    }
    PQsetNoticeProcessor(c, quiet_notice, NULL);
    PGresult *r = PQexec(c, sql);
    int code = 0;
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        code = map_sqlstate(PQresultErrorField(r, PG_DIAG_SQLSTATE));
        fprintf(stderr, "carafe: schema script failed on %s: %s", db->display,
                PQresultErrorMessage(r));
    }
    PQclear(r);
    PQfinish(c);
    return code;
}

const db_backend cf_db_pg_backend = {
    .name = "postgresql",
    .op_size = sizeof(pg_op),
    .open = pg_open,
    .exec_script = pg_exec_script,
    .free = pg_free,
    .start = pg_start,
    .cancel = pg_cancel,
    .request_end = pg_request_end,
    .abandon = pg_abandon,
};
