/*
 * worker.h — one worker process: its loop, scheduler, listening socket,
 * connections, and the small shared services the connections use (cached
 * Date header, buffered access log, graceful stop).
 */
#ifndef CF_SERVER_WORKER_H
#define CF_SERVER_WORKER_H

#include <stdbool.h>
#include <uv.h>

#include "app/app.h"
#include "core/sched.h"
#include "http/parser.h"

typedef struct cf_conn cf_conn;

typedef struct cf_worker {
    cf_app *app;
    uv_loop_t *loop;
    cf_sched sched;
    uv_tcp_t listener;
    uv_signal_t sig_int, sig_term;
    uv_prepare_t flush;
    uv_timer_t stop_deadline;
    cf_http_limits limits;
    size_t nconns, max_conns;
    cf_conn *conns; /* every open connection, for the graceful stop */
    bool stopping;
    bool access_log;
    char date[48]; /* "Date: ...\r\n" */
    uint64_t date_sec;
    char *log;
    size_t log_len, log_cap;
} cf_worker;

/* Serve on an already listening socket until stopped; returns exit status. */
int cf_worker_serve(cf_app *app, int listen_fd);
/* "Date: Sat, 21 Nov 2026 23:50:01 GMT\r\n", refreshed once a second. */
const char *cf_worker_date(cf_worker *w);
/* Append one line to the access log (flushed before the loop next waits). */
void cf_worker_log(cf_worker *w, const char *line, size_t len);
/* A connection ended: closes the loop when stopping and none is left. */
void cf_worker_conn_closed(cf_worker *w);

/* http/conn.c */
void cf_conn_accept(cf_worker *w);
/* Close connections that are idle between requests (graceful stop). */
void cf_conn_close_idle(cf_worker *w);

#endif
