/*
 * db_pg_conn.c — the PostgreSQL backend's connections: set-up
 * (PQconnectStart/Poll after the host names were looked up on the pool,
 * bounded by a timer), the uv_poll callback that drives reading and
 * writing, growing the pool, handing connections to waiting requests, and
 * what happens when one breaks (see db_pg.c for the whole design).
 */
#include "io/db.h"
#include "io/db_pg_int.h"
#include "io/pg_hosts.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- connections ------------------------------------------------------------------ */

static void connected(pg_conn *c)
{
    cf_timer_stop(&c->ctimer);
    if (PQsetnonblocking(c->pg, 1) != 0 || !PQenterPipelineMode(c->pg)) {
        cf__pg_conn_broken(c, PQerrorMessage(c->pg));
        return;
    }
    c->pool->connecting--;
    c->state = PC_READY;
    if (!cf__pg_poll_set(c, UV_READABLE)) {
        cf__pg_conn_broken(c, "cannot watch the connection's socket");
        return;
    }
    cf__pg_pool_put(c);
}

static void connect_step(pg_conn *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        if (!cf__pg_poll_set(c, UV_READABLE))
            cf__pg_conn_broken(c, "cannot watch the connection's socket");
        break;
    case PGRES_POLLING_WRITING:
        if (!cf__pg_poll_set(c, UV_WRITABLE))
            cf__pg_conn_broken(c, "cannot watch the connection's socket");
        break;
    case PGRES_POLLING_OK:
        connected(c);
        break;
    default:
        cf__pg_conn_broken(c, PQerrorMessage(c->pg));
        break;
    }
}

void cf__pg_on_poll(uv_poll_t *h, int status, int events)
{
    pg_conn *c = h->data;
    if (c->state == PC_DEAD)
        return;
    cf__pg_conn_hold(c);
    if (status < 0) {
        /* libuv reports a socket error (POLLERR: a refused connect, a
         * reset) as UV_EBADF and stops watching; libpq reads the real
         * reason from the socket. */
        c->events = 0;
        if (c->state == PC_CONNECTING)
            connect_step(c);
        else if (!PQconsumeInput(c->pg) || PQstatus(c->pg) != CONNECTION_OK)
            cf__pg_conn_broken(c, PQerrorMessage(c->pg));
        else if (!cf__pg_poll_set(c, UV_READABLE))
            cf__pg_conn_broken(c, "cannot watch the connection's socket");
        else
            cf__pg_process(c);
    } else if (c->state == PC_CONNECTING) {
        connect_step(c);
    } else {
        if (events & UV_WRITABLE) {
            int fl = PQflush(c->pg);
            if (fl < 0)
                cf__pg_conn_broken(c, PQerrorMessage(c->pg));
            else if (fl == 0 && !cf__pg_poll_set(c, UV_READABLE))
                cf__pg_conn_broken(c, "cannot watch the connection's socket");
        }
        if (c->state == PC_READY && (events & UV_READABLE)) {
            if (!PQconsumeInput(c->pg)) {
                cf__pg_conn_broken(c, PQerrorMessage(c->pg));
            } else if (c->events & UV_WRITABLE) {
                /* libpq: after reading, a pending flush may go on (TLS) */
                int fl = PQflush(c->pg);
                if (fl < 0)
                    cf__pg_conn_broken(c, PQerrorMessage(c->pg));
                else if (fl == 0 && !cf__pg_poll_set(c, UV_READABLE))
                    cf__pg_conn_broken(c, "cannot watch the connection's socket");
            }
            if (c->state == PC_READY)
                cf__pg_process(c);
        }
        /* An idle connection that hears anything is checked: a server
         * going away says goodbye (or just closes). */
        if (c->state == PC_READY && !c->head && PQstatus(c->pg) != CONNECTION_OK)
            cf__pg_conn_broken(c, PQerrorMessage(c->pg));
    }
    cf__pg_conn_release(c);
    cf_sched_run();
}

static void on_connect_timeout(cf_timer *t)
{
    pg_conn *c = (pg_conn *)((char *)t - offsetof(pg_conn, ctimer));
    char m[64];
    snprintf(m, sizeof m, "timed out after %" PRId64 " ms", c->pool->db->connect_timeout_ms);
    cf__pg_conn_hold(c);
    cf__pg_conn_broken(c, m);
    cf__pg_conn_release(c);
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
        PQsetNoticeProcessor(pg, cf__pg_quiet_notice, NULL);
    if (!pg)
        cf__pg_conn_broken(c, "out of memory");
    else if (PQstatus(pg) == CONNECTION_BAD)
        cf__pg_conn_broken(c, PQerrorMessage(pg));
    else if (!cf__pg_poll_set(c, UV_WRITABLE))
        cf__pg_conn_broken(c, "cannot watch the connection's socket");
}

static void on_hosts_resolved(void *ud, const char *const *keys, const char *const *values,
                              const char *error)
{
    pg_conn *c = ud;
    c->resolving = NULL;
    cf__pg_conn_hold(c);
    if (error)
        cf__pg_conn_broken(c, error);
    else
        conn_begin(c, PQconnectStartParams(keys, values, 1));
    cf__pg_conn_release(c);
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
            cf__pg_wait_remove(p, ctx);
            cf__pg_fail_pending(ctx, CF_ENOMEM, "out of memory");
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
    cf__pg_conn_hold(c);
    cf_timer_start(&c->ctimer, (uint64_t)p->db->connect_timeout_ms);
    if (!pd->hosts)
        conn_begin(c, PQconnectStart(pd->conninfo));
    else if (!(c->resolving = pg_resolve_start(cf__pg_loop_of(), pd->hosts, on_hosts_resolved, c)))
        cf__pg_conn_broken(c, "cannot start looking the host name up");
    cf__pg_conn_release(c);
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
void cf__pg_conn_broken(pg_conn *c, const char *why)
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
    cf__pg_idle_remove(c);
    conn_unlink(c);
    p->count--;
    if (was_connecting)
        p->connecting--;
    cf_dbq *list = c->head;
    c->head = c->tail = NULL;
    db_ctx *owner = c->owner;
    c->owner = NULL;
    cf__pg_conn_close(c); /* c->state is PC_DEAD from here */
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
        cf__pg_op_done(q, CF_EDBCONN, cf_db_copy_msg(q->ctx->rq, NULL, msg));
    }
    if (owner && owner->pend_head && !owner->conn && !owner->waiting) {
        if (owner->txn_lost)
            cf__pg_fail_pending(owner, CF_EDBCONN, msg);
        else
            cf__pg_pool_acquire(owner);
    }
    if (keep)
        cf_scope_unref(keep);
    if (was_connecting && p->whead) {
        /* The oldest waiter hears why; the others get fresh attempts. */
        db_ctx *ctx = p->whead;
        cf__pg_wait_remove(p, ctx);
        cf__pg_fail_pending(ctx, CF_EDBCONN, msg);
    }
    pool_grow(p);
}

/* ctx has statements waiting and no connection. */
void cf__pg_pool_acquire(db_ctx *ctx)
{
    pg_pool *p = cf__pg_pool_get(ctx->db);
    if (!p) {
        cf__pg_fail_pending(ctx, CF_ENOMEM, "out of memory");
        return;
    }
    while (p->idle && !p->whead) {
        pg_conn *c = p->idle;
        cf__pg_idle_remove(c);
        if (c->state == PC_READY && PQstatus(c->pg) == CONNECTION_OK) {
            cf__pg_assign(c, ctx);
            return;
        }
        cf__pg_conn_broken(c, PQerrorMessage(c->pg));
    }
    if (!ctx->waiting)
        cf__pg_wait_push(p, ctx);
    pool_grow(p);
}
