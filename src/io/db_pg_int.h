/*
 * db_pg_int.h — what the PostgreSQL backend's files share (db_pg.c,
 * db_pg_conn.c, db_pg_result.c): its state and the functions one file
 * calls in another.
 */
#ifndef CF_IO_DB_PG_INT_H
#define CF_IO_DB_PG_INT_H

#include <libpq-fe.h>
#include <uv.h>

#include "io/db.h"
#include "io/pg_hosts.h"

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


/* A cancel request in flight (PQcancel blocks: it runs on the thread pool). */
typedef struct pg_cancel_job {
    uv_work_t work;
    PGcancel *pc;
    pg_conn *c; /* NULL once the connection is gone */
} pg_cancel_job;


void cf__pg_conn_close(pg_conn *c);
void cf__pg_conn_hold(pg_conn *c);
bool cf__pg_conn_release(pg_conn *c);
pg_pool *cf__pg_pool_get(cf_db *db);
bool cf__pg_poll_set(pg_conn *c, int events);
void cf__pg_op_done(cf_dbq *q, int err, const char *msg);
void cf__pg_wait_remove(pg_pool *p, db_ctx *ctx);
void cf__pg_wait_push(pg_pool *p, db_ctx *ctx);
void cf__pg_fail_pending(db_ctx *ctx, int err, const char *why);
void cf__pg_assign(pg_conn *c, db_ctx *ctx);
void cf__pg_pool_put(pg_conn *c);
void cf__pg_idle_remove(pg_conn *c);
void cf__pg_process(pg_conn *c);
int cf__pg_map_sqlstate(const char *s);
const char *cf__pg_error_text(cf_req *rq, const PGresult *res);
void cf__pg_quiet_notice(void *arg, const char *message);
cf_rows *cf__pg_to_rows(cf_req *rq, PGresult *res);
void cf__pg_on_poll(uv_poll_t *h, int status, int events);
void cf__pg_conn_broken(pg_conn *c, const char *why);
void cf__pg_pool_acquire(db_ctx *ctx);

uv_loop_t *cf__pg_loop_of(void);

#endif
