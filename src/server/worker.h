/*
 * worker.h — one worker process: its loop, scheduler, listening socket,
 * the HTTP server state its connections share, and the services it gives
 * them as their host (cached Date header, buffered access log, metrics,
 * graceful stop).
 */
#ifndef CF_SERVER_WORKER_H
#define CF_SERVER_WORKER_H

#include <stdbool.h>
#include <uv.h>

#include "app/app.h"
#include "app/lifecycle.h"
#include "core/sched.h"
#include "http/host.h"
#include "server/server.h"

typedef struct cf_worker {
    cf_app *app;
    uv_loop_t *loop;
    cf_sched sched;
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } listener;
    cf_http_server http; /* connections, limits, counts, the stop flag */
    uv_signal_t sig_term;
    uv_prepare_t flush;
    uv_timer_t stop_deadline, lag_timer;
    uint64_t lag_expected;
    uint64_t requests, max_requests;
    int exit_status;
    pid_t master_pid;
    bool access_log, log_json;
    int log_fd;
    char date[48];     /* "Date: ...\r\n" */
    char log_date[32]; /* "21/Nov/2026:23:50:01 +0000" */
    uint64_t date_sec;
    char *log;
    size_t log_len, log_cap;
    cf_metrics *metrics;
    /* The serving hooks: before_serving runs before the first accept,
     * after_serving once drained (worker.c). */
    cf_lifecycle life;
    bool serving;        /* before_serving succeeded */
    bool stop_hooks_run; /* after_serving started (or is not to run) */
    bool queue_only;
} cf_worker;

/* Refresh and return "Date: Sat, 21 Nov 2026 23:50:01 GMT\r\n" (also
 * updates log_date), once a second. */
const char *cf_worker_date(cf_worker *w);
/* Append to the access log (flushed before the loop next waits). */
void cf_worker_log(cf_worker *w, const char *line, size_t len);
/* Stop accepting and drain; the process exits with the highest status
 * asked for (0 for a plain stop, 70 after a crash). */
void cf_worker_begin_stop(cf_worker *w, int exit_status, const char *why);
/* Route GET path to the Prometheus text (before the metrics are made). */
void cf_worker_add_metrics_route(cf_app *app, const char *path);

/* access_log.c: one record for an exchange that ended, and one for what
 * the server did on its own (status 0: none). */
void cf_access_log_exchange(cf_worker *w, cf_exchange *x);
void cf_access_log_event(cf_worker *w, const char *peer, int status, size_t bytes,
                         const char *what);

#endif
