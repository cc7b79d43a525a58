/*
 * db.h — internals of the database layer, shared by the front end (db.c:
 * URLs and options, the public calls, transactions, rows and JSON, the
 * per-request state) and its two backends (db_sqlite.c, db_pg.c).
 *
 * A statement in flight is a cf_dbq: an awaitable in the request's arena
 * that holds a reference on the request's scope from start until its
 * backend is done with it, so a cancelled request's memory (its SQL,
 * parameters, result) stays valid until then. Cancelling one wakes its
 * waiter at once and marks it abandoned; the backend still finishes it
 * (and interrupts it where it can).
 *
 * Everything here runs on the loop thread, except the SQLite backend's
 * statement execution on libuv's pool threads (see db_sqlite.c).
 */
#ifndef CF_IO_DB_H
#define CF_IO_DB_H

#include <stdbool.h>
#include <stdint.h>

#include "app/req.h"

typedef enum { DB_NONE = 0, DB_SQLITE, DB_PG } db_kind;

/* The app's database (the state of cf__db_service, attached to the app):
 * recorded at set-up (cf_db_open checks only the URL's syntax), connected
 * by the service's prepare hook when the app is about to be served, and
 * read-only afterwards except for the backend's own synchronised state. */
typedef struct cf_db {
    db_kind kind;
    uint64_t uid;        /* unique in the process; keys per-thread and per-loop state */
    char *display;       /* the URL with any password masked, for messages */
    int64_t pool_size, connect_timeout_ms, busy_timeout_ms, stmt_cache, wal_limit;
    int64_t loop_read_steps; /* CF_DB_LOOP_READ_STEPS (SQLite reads on the loop) */
    void *be;            /* backend state */
    bool url_unset;      /* cf_db_open(app, NULL) without DATABASE_URL: fails at start */
    bool ready;          /* prepared: connected, scripts run */
    char **scripts;      /* cf_db_exec_script before that, in order */
    size_t nscripts;
} cf_db;

/* The database's service (db.c) and the app's database, NULL before set-up. */
extern const cf_service cf__db_service;
cf_db *cf__db_of(const cf_app *app);

/* A result cell. Text, blobs and JSON are NUL-terminated as well. */
enum { CELL_NULL, CELL_INT, CELL_REAL, CELL_TEXT, CELL_BLOB, CELL_BOOL, CELL_JSON };
typedef struct db_cell {
    int type;
    size_t len;
    union {
        int64_t i; /* INT, BOOL */
        double d;
        const char *s;
    } v;
} db_cell;

struct cf_rows {
    cf_req *rq;
    size_t ncols, nrows;
    size_t cur; /* 1-based current row; 0 before the first cf_rows_next */
    const char **names;
    db_cell *cells; /* nrows * ncols, row-major */
    int64_t affected, last_id;
};

enum { OP_QUERY, OP_BEGIN, OP_COMMIT, OP_ROLLBACK };
enum { TXN_NONE, TXN_BEGINNING, TXN_OPEN, TXN_ENDING };

typedef struct db_ctx db_ctx;
typedef struct sq_conn sq_conn;
typedef struct pg_conn pg_conn;

/* One statement. Backends allocate a larger struct starting with it. */
struct cf_dbq {
    cf_waitable w;
    db_ctx *ctx;
    int kind;          /* OP_* */
    const char *sql;   /* copies in the request arena */
    cf_value *params;
    size_t n;
    cf_rows *rows;     /* set on success */
    int err;           /* valid once finished */
    const char *errmsg;
    bool started;      /* holds a scope reference */
    bool finished;     /* the backend is done with it */
    bool abandoned;    /* cancelled: nobody wants the result any more */
    int retries;       /* PostgreSQL: re-sent after finding a dead connection */
    cf_dbq *next;      /* backend queues */
};

/* SQLite: statements that must run one at a time, in order, on one
 * connection (a transaction's, or the single in-memory connection). */
typedef struct sq_lane {
    cf_dbq *head, *tail;
    bool running;
    db_ctx *owner; /* the request whose transaction holds it, or NULL */
} sq_lane;

/* A request's database state, created on its first database call (in the
 * arena, found through cf_g) and ended by a cf_defer when the request's
 * memory goes: a transaction still open then is rolled back. */
struct db_ctx {
    cf_req *rq;
    cf_db *db;
    int last_err;
    int txn;            /* TXN_* */
    bool txn_lost;      /* PostgreSQL: the connection died inside the transaction */
    bool abandoned;     /* a task of the request crashed: give everything back */
    size_t inflight;    /* statements started and not finished by the backend */
    /* SQLite */
    sq_conn *txconn;    /* the transaction's connection (file databases) */
    sq_lane lane;
    /* PostgreSQL */
    pg_conn *conn;      /* held while statements are in flight or in a transaction */
    cf_dbq *pend_head, *pend_tail; /* waiting for a connection */
    size_t sent;        /* statements sent on conn, results pending */
    bool waiting;       /* in the pool's FIFO */
    db_ctx *wnext, *wprev;
};

typedef struct db_backend {
    const char *name;
    size_t op_size;
    /* Set-up: check the URL and record it, touching nothing (--help must
     * work without a database). Prints its errors. */
    int (*open)(cf_db *db, const char *target);
    /* Start (the prepare hook), blocking; they print their errors. connect
     * may be NULL: there is nothing to check before the first statement. */
    int (*connect)(cf_db *db);
    int (*exec_script)(cf_db *db, const char *sql);
    void (*free)(cf_db *db);
    /* Loop thread. start runs q and calls cf_db_finish when done. cancel:
     * the waiter is gone (q->abandoned is set); it may finish q at once. */
    void (*start)(cf_dbq *q);
    void (*cancel)(cf_dbq *q);
    /* The request's memory is about to go; nothing of it is in flight. */
    void (*request_end)(db_ctx *ctx);
    /* A task of the request crashed: its memory is never released (no
     * request_end), so give back its connections once nothing of it is in
     * flight any more, rolling back what it left open. */
    void (*abandon)(db_ctx *ctx);
} db_backend;

extern const db_backend cf_db_sqlite_backend, cf_db_pg_backend;

/* For the backends (loop thread). */
/* The transaction state after `q` ended with `err`. */
void cf_db_txn_update(cf_dbq *q, int err);
/* The backend is done with q: record the outcome, wake the waiter, drop
 * q's scope reference (which may end the request: call it last). */
void cf_db_finish(cf_dbq *q, int err, const char *errmsg);
/* prefix + msg copied into the request, trailing newlines trimmed. */
const char *cf_db_copy_msg(cf_req *rq, const char *prefix, const char *msg);

#endif
