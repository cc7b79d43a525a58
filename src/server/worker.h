/*
 * worker.h — one worker process: its loop, scheduler, listening socket,
 * connections, and the small shared services the connections use (cached
 * Date header, buffered access log, metrics, graceful stop).
 */
#ifndef CF_SERVER_WORKER_H
#define CF_SERVER_WORKER_H

#include <stdbool.h>
#include <uv.h>

#include "app/app.h"
#include "core/sched.h"
#include "http/parser.h"
#include "server/server.h"

typedef struct cf_conn cf_conn;

/* A TCP or Unix stream: connections and the listener are either. */
typedef union cf_socket {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
} cf_socket;

typedef struct cf_worker {
    cf_app *app;
    uv_loop_t *loop;
    cf_sched sched;
    cf_socket listener;
    bool is_unix;
    uv_signal_t sig_term;
    uv_prepare_t flush;
    uv_timer_t stop_deadline, lag_timer;
    uint64_t lag_expected;
    cf_http_limits limits;
    size_t nconns, max_conns, inflight;
    cf_conn *conns; /* every open connection, for the graceful stop */
    uint64_t requests, max_requests;
    bool stopping;
    int exit_status;
    pid_t master_pid;
    bool access_log, log_json;
    int log_fd;
    char date[48];     /* "Date: ...\r\n" */
    char log_date[32]; /* "21/Nov/2026:23:50:01 +0000" */
    uint64_t date_sec;
    char *log;
    size_t log_len, log_cap;
    uint64_t id_seed;  /* generated request ids */
    cf_metrics *metrics;
} cf_worker;

/* Refresh and return "Date: Sat, 21 Nov 2026 23:50:01 GMT\r\n" (also
 * updates log_date), once a second. */
const char *cf_worker_date(cf_worker *w);
/* Append to the access log (flushed before the loop next waits). */
void cf_worker_log(cf_worker *w, const char *line, size_t len);
/* A connection ended: closes the loop when stopping and none is left. */
void cf_worker_conn_closed(cf_worker *w);
/* Stop accepting and drain; the process exits with the highest status
 * asked for (0 for a plain stop, 70 after a crash). */
void cf_worker_begin_stop(cf_worker *w, int exit_status, const char *why);
/* A request was answered (for --max-requests). */
void cf_worker_request_done(cf_worker *w);
/* Route GET path to the Prometheus text (before the metrics are made). */
void cf_worker_add_metrics_route(cf_app *app, const char *path);

/* http/conn.c */
void cf_conn_accept(cf_worker *w);
/* Graceful stop: idle connections close after a short grace. */
void cf_conn_stop_idle(cf_worker *w);

#endif
