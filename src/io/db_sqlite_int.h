/*
 * db_sqlite_int.h — what the SQLite backend's files share (db_sqlite.c,
 * db_sqlite_stmt.c, db_sqlite_wal.c): its state and the functions one
 * calls in the other.
 */
#ifndef CF_IO_DB_SQLITE_INT_H
#define CF_IO_DB_SQLITE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <uv.h>

#include "io/db.h"

#define PRIV_FIRST 1024 /* result memory taken from the request up front */
#define BUSY_SPIN_MS 2  /* in-thread wait for a lock before retrying from the loop */
#define BUSY_BACKOFF_MAX_MS 16
#define TL_SLOTS 4      /* databases per pool thread with a connection at hand */

typedef struct sq_stmt {
    uint64_t hash;
    char *sql;
    sqlite3_stmt *st;
    int *map;   /* map[slot]: the $N (1-based) bound to that slot */
    int nslots; /* sqlite3_bind_parameter_count */
    int maxp;   /* highest $N used: the parameters the statement needs */
    uint64_t used;
} sq_stmt;

struct sq_conn {
    sqlite3 *h; /* NULL until opened in a pool thread */
    sq_stmt *cache;
    size_t ncache;
    uint64_t tick;
    int wal_frames;     /* pages in the log after this connection's last commit */
    int64_t wal_max_frames; /* CF_DB_WAL_LIMIT in pages: past it, checkpoint */
    sq_conn *next_all, *next_free;
};

typedef struct sq_db {
    cf_db *db;
    char *path;  /* what sqlite3_open_v2 gets */
    char *shown; /* for messages */
    int flags;
    bool memory;
    pthread_mutex_t mu; /* guards all and free */
    sq_conn *all, *free;
    sq_conn *mem;       /* in-memory: the only connection */
    sq_lane mem_lane;
    /* The log's bound (db_sqlite_wal.c), shared by the pool threads. */
    atomic_bool ckpt_running;          /* a thread of this process checkpoints */
    _Atomic uint64_t ckpt_not_before;  /* ms: pause after a failed one */
    unsigned ckpt_pause_ms;            /* that pause (under ckpt_running) */
} sq_db;

typedef struct sq_op {
    cf_dbq q;
    uv_work_t work;
    sq_db *s;
    uint64_t uid;
    sq_conn *conn;    /* NULL: the pool thread's own */
    sq_lane *lane;
    bool queued;      /* waiting in the lane */
    bool solo;        /* a statement outside any transaction of the request */
    atomic_int stop;  /* cancelled: interrupt it */
    bool busy;        /* the last attempt found the database locked */
    bool may_retry;   /* this attempt may be retried if it finds it locked */
    bool backing_off; /* waiting on `retry` to cf__sq_run again */
    bool on_loop;     /* running on the loop thread (cf__sq_try_on_loop) */
    bool not_read;    /* on the loop: not a read, so it goes to the pool */
    bool over_budget; /* on the loop: it ran past CF_DB_LOOP_READ_STEPS */
    unsigned attempts;
    uint64_t deadline_ms; /* give up on a lock then (CF_DB_BUSY_TIMEOUT) */
    cf_timer retry;
    cf_arena priv;    /* the result (pool thread), freed with the request */
    size_t cells_cap;
    int err;
    const char *msg;
} sq_op;


int cf__sq_map_rc(int xrc, bool preparing);
const char *cf__sq_priv_strdup(sq_op *op, const char *s);
void cf__sq_op_fail(sq_op *op, int err, const char *msg);
int cf__sq_conn_open(sq_db *s, sq_conn *c, char *msg, size_t cap);
sq_conn *cf__sq_tls_conn(sq_db *s, uint64_t uid);
void cf__sq_run(sq_op *op, sq_conn *c, const char *sql, const cf_value *params, size_t n);
void cf__sq_sq_work(uv_work_t *w);
/* Run a read outside any transaction on the loop thread's own connection:
 * true if it ran there (done, with its outcome in op), false if it must go
 * to the pool (not a read, over its step budget, locked, no connection). */
bool cf__sq_try_on_loop(sq_op *op);
/* How long a pool thread waits for a lock itself (sqlite3_busy_timeout). */
int cf__sq_spin_ms(const sq_db *s);
/* A new connection: watch the log's length (its WAL hook) and limit it
 * (journal_size_limit). 0, or CF_EDBCONN with the reason in msg. */
int cf__sq_wal_setup(sq_db *s, sq_conn *c, char *msg, size_t cap);
/* After a statement on c (pool thread): checkpoint and truncate the log
 * when c's last commit found it past CF_DB_WAL_LIMIT. */
void cf__sq_wal_bound(sq_db *s, sq_conn *c);

#endif
