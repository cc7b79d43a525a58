/*
 * queue_int.h — internals of the durable task queue (docs/tasks.md),
 * shared by its pieces: the front end (queue.c: the store's URL, the
 * handlers and their options, the public calls, the operations), the two
 * stores (queue_sqlite.c, queue_redis.c) and the consumer that claims and
 * runs the jobs on each loop (queue_consumer.c). Other folders use
 * io/queue.h.
 *
 * Everything the queue does to its store is an operation, a q_op: a task
 * makes one in its request's arena (cf__queue_op_new), fills it in and
 * awaits it (cf__queue_op_await), which hands it to the app's store. The
 * SQLite store runs it on one of libuv's pool threads (cf__queue_op_run),
 * the Redis store as commands on the loop's connection (cf__queue_redis_op).
 * The consumer claims jobs with OP_CLAIM and records each one's outcome
 * with OP_ACK, OP_RETRY or OP_DEAD.
 *
 * The app's queue state (a cf_queue, attached as a service) holds the store's settings, the handlers and
 * the SQLite store's connection pool (under its mutex); each loop that
 * consumes has its own q_loop.
 */
#ifndef CF_IO_QUEUE_INT_H
#define CF_IO_QUEUE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/cron.h"
#include "io/queue.h"

struct sqlite3;           /* <sqlite3.h>, in queue_sqlite.c */
struct redisAsyncContext; /* <hiredis/async.h>, in queue_redis.c */

typedef struct q_handler {
    char *name;
    cf_job_fn fn;
    cf_queue_opts o;
    int64_t period_s; /* > 0: periodic */
    bool has_cron;    /* periodic on a cron schedule */
    cf_cron cron;
} q_handler;

enum { Q_SQLITE, Q_REDIS };

/* The app's queue state (its service's, cf__queue_state). */
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
    struct sqlite3 **idle; /* SQLite: idle connections (under mu) */
    size_t nidle, cap;
    bool ready; /* the store was reached and its tables exist (prepare) */
} cf_queue;

/* The queue's service (queue.c): its state is the app's cf_queue. */
extern const cf_service cf__queue_service;
cf_queue *cf__queue_state(const cf_app *app);
/* Names this loop's consumer among the scheduler's local slots. */
extern const char cf__queue_loop_key;

/* A claimed job, malloc'd by the pool thread, freed by its task. */
typedef struct q_jobblk {
    struct q_jobblk *next;
    size_t hidx;
    int64_t id;
    int attempts;
    char sid[48];     /* Redis: the stream entry */
    char payload[];
} q_jobblk;

/* A loop's consumer (its scheduler-local slot), made by cf__queue_loop_get. */
typedef struct q_loop {
    cf_app *app;
    cf_queue *q;
    cf_req *ctx; /* parent of the background tasks (never runs) */
    cf_timer poll;
    bool claiming, again, stopping;
    int *running;          /* per handler */
    int64_t *last_period;  /* per handler: period already handled here */
    bool polling;          /* consumer started */
    struct redisAsyncContext *rc; /* Redis: this loop's connection, NULL until used */
    bool groups_ok;
    size_t inflight;       /* replies awaited: the connection keeps the loop alive */
    char consumer[64];
} q_loop;

enum {
    OP_ENQUEUE, OP_CLAIM, OP_ACK, OP_RETRY, OP_DEAD, OP_RELEASE, OP_LIST, OP_REQUEUE, OP_COUNT,
    OP_EXTEND,
};

/* OP_CLAIM: what to claim for one handler. */
typedef struct q_claim {
    size_t hidx;
    const char *name;
    int want;
    int64_t visibility_ms;
    int64_t period_start; /* periodic: > 0 to try this period */
    bool period_done;     /* out: the period was handled (by anyone) */
    int got;
} q_claim;

/* One operation on the store, in the arena of the request that awaits it. */
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

/* ---- the front end (queue.c) -------------------------------------------- */

/* Wall-clock time (CLOCK_REALTIME) in milliseconds. */
int64_t cf__queue_now_ms(void);
/* strdup, or a fatal set-up error. */
char *cf__queue_xstrdup(const char *s);
/* The app's queue state, created on first use (the stores fill it in). */
cf_queue *cf__queue_of(cf_app *app);
/* A zeroed operation of this kind in rq's arena; NULL without a queue. */
q_op *cf__queue_op_new(cf_req *rq, int kind);
/* Run op on the app's store and wait; its memory is in rq. */
int cf__queue_op_await(cf_req *rq, q_op *op);

/* ---- the SQLite store (queue_sqlite.c) ---------------------------------- */

/* Use the SQLite file at path (taken) as the app's queue: recorded only,
 * the file is opened by cf__queue_sqlite_prepare. */
void cf__queue_sqlite_open(cf_app *app, char *path);
/* When the app is about to be served: open the file and create the
 * tables, blocking: 0 or CF_EDBCONN (the reason on stderr). */
int cf__queue_sqlite_prepare(cf_queue *q);
/* Close the pool's idle connections. */
void cf__queue_sqlite_close_idle(cf_queue *q);
/* Run a q_op on the calling thread (a pool thread, or blocking): 0 or an
 * error with op->err. */
int cf__queue_op_run(void *arg);

/* ---- the Redis Streams store (queue_redis.c) ---------------------------- */

/* Use redis://... as the app's queue (from: how to name the URL in
 * messages): 0 or CF_EDBURL; the URL is only checked and recorded. */
int cf__queue_redis_open(cf_app *app, const char *url, const char *from);
/* When the app is about to be served: check that Redis answers (AUTH,
 * SELECT, PING) on a blocking connection: 0 or CF_EDBCONN. */
int cf__queue_redis_prepare(cf_queue *q);
/* Run a q_op on this loop's connection and wait. */
int cf__queue_redis_op(cf_req *rq, q_op *op);
/* Jobs in the queue, on a blocking connection of its own; -1 on error. */
int64_t cf__queue_redis_count_sync(cf_queue *q);
/* Close this loop's connection, if it has one. */
void cf__queue_redis_disconnect(q_loop *L);

/* ---- the consumer (queue_consumer.c) ------------------------------------ */

/* Claim again at once (or after the claim under way), if consuming. */
void cf__queue_wake(q_loop *L);
/* This loop's queue state, created on first use; NULL without a queue or
 * outside a loop. */
q_loop *cf__queue_loop_get(cf_app *app);

#endif
