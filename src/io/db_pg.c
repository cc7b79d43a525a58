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
 *
 * Files: this one has the per-loop state, polling, statements and the
 * backend interface; db_pg_conn.c the connections, db_pg_result.c the
 * results and errors; db_pg_int.h what they share.
 */
#include "io/db.h"
#include "io/db_pg_int.h"
#include "io/pg_hosts.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Names this module's per-loop state among the scheduler's slots. */
static const char pg_loop_key;

/* ---- per-loop state ------------------------------------------------------------ */

static void on_poll_closed(uv_handle_t *h) { free(h); }

void cf__pg_conn_close(pg_conn *c)
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

void cf__pg_conn_hold(pg_conn *c) { c->holds++; }

/* Drop a hold; false if the connection died meanwhile (then it must not be
 * touched again). */
bool cf__pg_conn_release(pg_conn *c)
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
            cf__pg_conn_close(c);
        }
        free(p);
    }
    free(v);
}

pg_pool *cf__pg_pool_get(cf_db *db)
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

uv_loop_t *cf__pg_loop_of(void) { return ((pg_svc *)cf_sched_local_get(&pg_loop_key))->loop; }

/* ---- polling ------------------------------------------------------------------- */


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
bool cf__pg_poll_set(pg_conn *c, int events)
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
        if (!c->poll || uv_poll_init(cf__pg_loop_of(), c->poll, fd) != 0) {
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
        if (uv_poll_start(c->poll, events, cf__pg_on_poll) != 0)
            return false;
        c->events = events;
    }
    return true;
}

/* ---- statements ------------------------------------------------------------------ */

/* The end of a request's statement: transaction state, then completion
 * (which may wake the task and even end the request). */
void cf__pg_op_done(cf_dbq *q, int err, const char *msg)
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

void cf__pg_wait_remove(pg_pool *p, db_ctx *ctx)
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

void cf__pg_wait_push(pg_pool *p, db_ctx *ctx)
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
void cf__pg_fail_pending(db_ctx *ctx, int err, const char *why)
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
        cf__pg_op_done(q, err, msg);
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
            cf__pg_op_done(q, CF_EINVAL, cf_db_copy_msg(ctx->rq, NULL, PQerrorMessage(c->pg)));
            return true;
        }
        /* Nothing of q went out: retry it on a fresh connection once. */
        bool outside = ctx && (ctx->txn == TXN_NONE ||
                               (ctx->txn == TXN_BEGINNING && q->kind == OP_BEGIN));
        if (outside && q->retries++ == 0) {
            pending_push(ctx, q, true);
        } else if (ctx) {
            cf__pg_op_done(q, CF_EDBCONN, cf_db_copy_msg(ctx->rq, "connection to the database lost: ",
                                                  PQerrorMessage(c->pg)));
        } else {
            free(q);
        }
        cf__pg_conn_broken(c, PQerrorMessage(c->pg));
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
        cf__pg_conn_broken(c, PQerrorMessage(c->pg));
        return false;
    }
    if (fl == 1 && !cf__pg_poll_set(c, UV_READABLE | UV_WRITABLE)) {
        cf__pg_conn_broken(c, "cannot watch the connection's socket");
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
void cf__pg_assign(pg_conn *c, db_ctx *ctx)
{
    c->owner = ctx;
    ctx->conn = c;
    conn_ref(c, true);
    cf_scope *scope = cf__req_scope(ctx->rq);
    cf_scope_ref(scope);
    cf__pg_conn_hold(c);
    send_pending(c, ctx);
    cf__pg_conn_release(c);
    cf_scope_unref(scope);
}

/* c has no owner any more: to the first waiting request, or idle. */
void cf__pg_pool_put(pg_conn *c)
{
    pg_pool *p = c->pool;
    c->owner = NULL;
    if (c->state != PC_READY || c->head || c->cancel)
        return;
    if (p->whead) {
        db_ctx *ctx = p->whead;
        cf__pg_wait_remove(p, ctx);
        cf__pg_assign(c, ctx);
        return;
    }
    c->idle = true;
    c->next_idle = p->idle;
    p->idle = c;
    conn_ref(c, false);
}

void cf__pg_idle_remove(pg_conn *c)
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
        cf__pg_pool_put(c);
        return;
    }
    cf_dbq *q = calloc(1, sizeof *q);
    if (!q) {
        cf__pg_conn_broken(c, "out of memory");
        return;
    }
    q->kind = OP_ROLLBACK;
    cf__pg_conn_hold(c);
    send_op(c, q);
    cf__pg_conn_release(c);
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
            cf__pg_conn_broken(c, "could not roll back a transaction left open");
        else if (!c->owner && !c->head)
            cf__pg_pool_put(c);
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
            q->rows = cf__pg_to_rows(rq, res); /* the request keeps res */
            res = NULL;
        }
    } else if (st == PGRES_EMPTY_QUERY) {
        err = CF_EINVAL;
        msg = "empty SQL statement";
    } else if (!res) {
        err = CF_EDB;
        msg = "no result from the server";
    } else {
        err = cf__pg_map_sqlstate(PQresultErrorField(res, PG_DIAG_SQLSTATE));
        msg = cf__pg_error_text(rq, res);
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

void cf__pg_process(pg_conn *c)
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
                cf__pg_conn_broken(c, "COPY is not supported through cf_db_query");
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
        cf__pg_conn_broken(c, PQerrorMessage(c->pg));
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
        cf__pg_pool_acquire(ctx);
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
    cf__pg_conn_hold(c);
    if (c->owner)
        send_pending(c, c->owner);
    else if (!c->head)
        give_back(c);
    cf__pg_conn_release(c);
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
    if (uv_queue_work(cf__pg_loop_of(), &job->work, cancel_work, cancel_done) != 0) {
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
        cf__pg_wait_remove(cf__pg_pool_get(ctx->db), ctx);
    cf__pg_op_done(q, CF_ECANCELED, NULL);
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
        cf__pg_wait_remove(cf__pg_pool_get(ctx->db), ctx);
    if (ctx->pend_head)
        cf__pg_fail_pending(ctx, CF_EFAIL, "a task of this request crashed");
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
    PQsetNoticeProcessor(c, cf__pg_quiet_notice, NULL);
    PGresult *r = PQexec(c, sql);
    int code = 0;
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        code = cf__pg_map_sqlstate(PQresultErrorField(r, PG_DIAG_SQLSTATE));
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
