/*
 * worker.c — one worker process: a libuv loop serving the app on the
 * inherited listening socket, with the services connections share (cached
 * Date header, buffered access log, metrics slot) and its way out:
 *
 *   - SIGTERM (from the master): stop accepting, let in-flight requests and
 *     their tasks finish (connections get "Connection: close" on their next
 *     response; idle ones are closed after a short grace), exit 0, or exit
 *     anyway after the graceful timeout. Further SIGTERMs change nothing
 *     (the master stops a worker at once with SIGKILL).
 *   - --max-requests reached: the same drain, exit 0; the master replaces it.
 *   - a crash in a handler: the crashed request's connection is closed, the
 *     others drain, exit 70; its memory may be damaged, so no new work.
 *
 * Around serving, the app's serving hooks: before_serving runs before the
 * worker listens (a failure: exit CF_EXIT_BOOT, having served nothing; the
 * master retries with a growing delay), after_serving once it has drained,
 * within a graceful timeout of its own.
 */
#include "server/worker.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "app/req.h"
#include "core/coro.h"

#define LAG_TICK_MS 100

const char *cf_worker_date(cf_worker *w)
{
    time_t now = time(NULL);
    if ((uint64_t)now != w->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(w->date, sizeof w->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        strftime(w->log_date, sizeof w->log_date, "%d/%b/%Y:%H:%M:%S +0000", &tm);
        w->date_sec = (uint64_t)now;
    }
    return w->date;
}

static void flush_log(cf_worker *w)
{
    size_t off = 0;
    while (off < w->log_len) {
        ssize_t n = write(w->log_fd, w->log + off, w->log_len - off);
        if (n <= 0)
            break; /* a full or closed log must not stop the server */
        off += (size_t)n;
    }
    w->log_len = 0;
}

void cf_worker_log(cf_worker *w, const char *line, size_t len)
{
    if (w->log_len + len > w->log_cap) {
        flush_log(w);
        if (len > w->log_cap)
            len = w->log_cap;
    }
    memcpy(w->log + w->log_len, line, len);
    w->log_len += len;
}

static void on_prepare(uv_prepare_t *p)
{
    cf_worker *w = p->data;
    if (w->log_len)
        flush_log(w);
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    close_handle(h);
}

static void finish_stop(cf_worker *w)
{
    close_handle((uv_handle_t *)&w->sig_term);
    close_handle((uv_handle_t *)&w->flush);
    close_handle((uv_handle_t *)&w->stop_deadline);
    close_handle((uv_handle_t *)&w->lag_timer);
    close_handle(&w->listener.handle);
    uv_stop(w->loop);
}

static void on_deadline(uv_timer_t *t);

static void on_stopped_serving(void *ctx, int rc)
{
    (void)rc; /* each failure is logged; the worker stops all the same */
    finish_stop(ctx);
}

/* The after_serving hooks, once drained, or after the graceful timeout. */
static void finish_or_run_stop_hooks(cf_worker *w)
{
    if (!w->serving || w->stop_hooks_run) {
        finish_stop(w);
        return;
    }
    w->stop_hooks_run = true;
    uv_timer_start(&w->stop_deadline, on_deadline, (uint64_t)w->app->opt[CF_OPT_GRACEFUL_TIMEOUT], 0);
    cf_lifecycle_run(&w->life, w->app, true, on_stopped_serving, w);
}

/* Stopping ends when no connection, no request and no background task is
 * left. A request can outlive its connection: its client left, and a pool
 * job or a database statement it started still has to end before its
 * memory (and the connection's) can go. Then the after_serving hooks run;
 * serving hooks that run decide the end when they end. */
static void maybe_finish(cf_worker *w)
{
    if (w->http.stopping && w->http.nconns == 0 && w->http.inflight == 0 &&
        w->sched.nbackground == 0 && !w->life.running)
        finish_or_run_stop_hooks(w);
}

static void on_background_idle(void *arg) { maybe_finish(arg); }

static void on_deadline(uv_timer_t *t)
{
    cf_worker *w = t->data;
    if (w->life.running) {
        fprintf(stderr, "carafe: worker %d: serving hooks still running after the graceful timeout; "
                        "cancelling them\n", (int)getpid());
        cf_lifecycle_cancel(&w->life); /* their end finishes the stop */
        return;
    }
    if (w->http.nconns)
        fprintf(stderr, "carafe: worker %d: %zu connection(s) still busy after the graceful timeout\n",
                (int)getpid(), w->http.nconns);
    cf_background_cancel_all(); /* they see CF_ECANCELED and end right here */
    finish_or_run_stop_hooks(w);
}

void cf_worker_begin_stop(cf_worker *w, int exit_status, const char *why)
{
    if (exit_status > w->exit_status)
        w->exit_status = exit_status;
    if (w->http.stopping)
        return;
    w->http.stopping = true;
    if (w->serving)
        cf_app_services_loop_stop(w->app); /* e.g. claim no more jobs; running ones finish */
    else
        cf_lifecycle_cancel(&w->life); /* stopped while starting: no need to wait */
    if (why)
        fprintf(stderr, "carafe: worker %d %s; finishing %zu connection(s)\n", (int)getpid(), why,
                w->http.nconns);
    /* Stopping on its own: the master starts the replacement now, so new
     * connections do not wait for this drain (with one worker they would). */
    if (why && w->master_pid > 1 && getppid() == w->master_pid)
        sigqueue(w->master_pid, CF_SIG_LEAVING, (union sigval){.sival_int = exit_status});
    close_handle(&w->listener.handle);
    cf_http_stop_idle(&w->http);
    uv_timer_start(&w->stop_deadline, on_deadline, (uint64_t)w->app->opt[CF_OPT_GRACEFUL_TIMEOUT], 0);
    if (w->sched.nbackground)
        fprintf(stderr, "carafe: worker %d waits for %zu background task(s)\n", (int)getpid(),
                w->sched.nbackground);
    maybe_finish(w);
}

static void on_sigterm(uv_signal_t *s, int signum)
{
    cf_worker *w = s->data;
    (void)signum;
    /* Once is enough: a second SIGTERM is the norm, not a hurry (systemd's
     * default KillMode and `kill -TERM -PGID` signal every process, then
     * the master forwards its own). Stopping now is the master's SIGKILL. */
    cf_worker_begin_stop(w, 0, NULL);
}

/* ---- the HTTP layer's host ---------------------------------------------- */

static cf_exchange *host_exchange_new(void *ctx, const cf_exchange_ops *ops, void *proto)
{
    cf_worker *w = ctx;
    cf_req *rq = cf_req_new(w->app, ops, proto);
    return rq ? &rq->x : NULL;
}

static void host_exchange_free(cf_exchange *x) { cf_req_free(cf_req_of(x)); }

static size_t host_route(cf_exchange *x)
{
    cf_req *rq = cf_req_of(x);
    cf_req_route(rq);
    return cf_req_max_body(rq);
}

static void host_dispatch(cf_exchange *x) { cf_req_dispatch(cf_req_of(x)); }
static void host_cancel(cf_exchange *x) { cf_req_cancel(cf_req_of(x)); }
static const char *host_date(void *ctx) { return cf_worker_date(ctx); }

static void host_sent(void *ctx, cf_exchange *x)
{
    cf_worker *w = ctx;
    cf_metrics_request(w->metrics, cf_req_of(x)->route, x->status, cf_now_ns() - x->start_ns);
    if (w->access_log)
        cf_access_log_exchange(w, x);
}

static void host_event(void *ctx, const char *peer, int status, size_t bytes, const char *what)
{
    cf_worker *w = ctx;
    if (w->access_log)
        cf_access_log_event(w, peer, status, bytes, what);
}

static void host_conn_closed(void *ctx) { maybe_finish(ctx); }

static void host_crashed(void *ctx) { cf_worker_begin_stop(ctx, 70, "crashed in a handler"); }

static void host_request_done(void *ctx)
{
    cf_worker *w = ctx;
    w->requests++;
    if (w->max_requests && w->requests == w->max_requests)
        cf_worker_begin_stop(w, 0, "reached --max-requests");
}

static const cf_http_host worker_host = {
    .exchange_new = host_exchange_new,
    .exchange_free = host_exchange_free,
    .route = host_route,
    .dispatch = host_dispatch,
    .cancel = host_cancel,
    .date = host_date,
    .sent = host_sent,
    .event = host_event,
    .conn_closed = host_conn_closed,
    .request_done = host_request_done,
    .crashed = host_crashed,
};

static void on_lag_tick(uv_timer_t *t)
{
    cf_worker *w = t->data;
    uint64_t now = uv_hrtime();
    uint64_t late = w->lag_expected && now > w->lag_expected ? now - w->lag_expected : 0;
    w->lag_expected = now + LAG_TICK_MS * 1000000ull;
    cf_metrics_gauges(w->metrics, (int64_t)w->http.inflight, (int64_t)cf_coro_alive(),
                      (int64_t)w->http.nconns, late / 1000);
}

static void on_connection(uv_stream_t *server, int status)
{
    cf_worker *w = server->data;
    if (status < 0)
        return;
    cf_http_accept(&w->http);
}

/* before_serving ended: serve, or leave without having served. */
static void on_started_serving(void *ctx, int rc)
{
    cf_worker *w = ctx;
    if (rc < 0) {
        if (!w->http.stopping) {
            fprintf(stderr, "carafe: worker %d: a before_serving hook failed (%s); exiting with status %d "
                            "without serving\n", (int)getpid(), cf_strerror(rc), CF_EXIT_BOOT);
            w->exit_status = CF_EXIT_BOOT;
            w->http.stopping = true;
        }
        finish_stop(w);
        return;
    }
    w->serving = true;
    if (w->http.stopping) { /* asked to stop while starting */
        maybe_finish(w);
        return;
    }
    cf_app_services_loop_start(w->app);
    int lr = w->queue_only ? 0 : uv_listen(&w->listener.stream, 4096, on_connection);
    if (lr != 0) {
        fprintf(stderr, "carafe: worker %d cannot listen: %s\n", (int)getpid(), uv_strerror(lr));
        cf_worker_begin_stop(w, 1, NULL);
        return;
    }
    if (w->master_pid > 1 && getppid() == w->master_pid)
        sigqueue(w->master_pid, CF_SIG_READY, (union sigval){.sival_int = 0});
}

static void raise_nofile_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static cf_worker *the_worker; /* for the metrics handler */

static void metrics_handler(cf_req *rq)
{
    size_t len = 0;
    char *text = the_worker && the_worker->metrics ? cf_metrics_render(the_worker->metrics, &len) : NULL;
    if (!text)
        return cf_fail(rq, "metrics are not available");
    cf_send(rq, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

void cf_worker_add_metrics_route(cf_app *app, const char *path)
{
    cf_route_set_name(cf_route_add(&app->root, "GET", path, metrics_handler, "metrics"),
                      "carafe_metrics");
}

int cf_worker_run(cf_app *app, const cf_server_opts *o, int listen_fd, bool is_unix,
                  cf_metrics *metrics, int slot)
{
    signal(SIGINT, SIG_IGN); /* Ctrl-C reaches the master, which drains us */
    raise_nofile_limit();
    cf_worker *w = calloc(1, sizeof *w);
    uv_loop_t *loop = malloc(sizeof *loop);
    if (!w || !loop || uv_loop_init(loop) != 0)
        return 1;
    the_worker = w;
    w->master_pid = getppid();
    w->app = app;
    w->loop = loop;
    if (cf_sched_init(&w->sched, w->loop) != 0)
        return 1;
    w->sched.background_idle = on_background_idle;
    w->sched.background_idle_arg = w;
    cf_coro_enable_crash_recovery(true);
    cf_coro_set_stack_size((size_t)app->opt[CF_OPT_STACK_SIZE]);
    cf_http_server *http = &w->http;
    http->host = &worker_host;
    http->ctx = w;
    http->loop = loop;
    http->listener = &w->listener.stream;
    http->is_unix = is_unix;
    http->limits.max_header = (size_t)app->opt[CF_OPT_MAX_HEADER];
    http->limits.max_target = (size_t)app->opt[CF_OPT_MAX_TARGET];
    http->limits.max_fields = 100;
    http->header_ms = (uint64_t)app->opt[CF_OPT_HEADER_TIMEOUT];
    http->body_ms = (uint64_t)app->opt[CF_OPT_BODY_TIMEOUT];
    http->keepalive_ms = (uint64_t)app->opt[CF_OPT_KEEPALIVE_TIMEOUT];
    http->send_timeout_ms = (uint64_t)app->opt[CF_OPT_SEND_TIMEOUT];
    w->log_json = o->log_json;
    w->metrics = metrics;
    cf_metrics_bind(metrics, slot);
    if (app->opt[CF_OPT_MAX_REQUESTS] > 0) {
        uint64_t jitter = 0;
        if (o->max_requests_jitter > 0) {
            srand((unsigned)getpid() ^ (unsigned)time(NULL));
            jitter = (uint64_t)rand() % (uint64_t)(o->max_requests_jitter + 1);
        }
        w->max_requests = (uint64_t)app->opt[CF_OPT_MAX_REQUESTS] + jitter;
    }
    http->max_conns = (size_t)app->opt[CF_OPT_MAX_CONNECTIONS];
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        http->max_conns + 32 > rl.rlim_cur)
        http->max_conns = rl.rlim_cur > 64 ? (size_t)rl.rlim_cur - 32 : 16;
    w->log_fd = -1;
    if (o->access_log) {
        w->log_fd = strcmp(o->access_log, "-") == 0
                        ? 1
                        : open(o->access_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (w->log_fd < 0)
            fprintf(stderr, "carafe: cannot open the access log %s; logging nothing\n", o->access_log);
    }
    w->access_log = w->log_fd >= 0;
    http->request_ids = w->access_log;
    w->log_cap = 64 * 1024;
    w->log = malloc(w->log_cap);
    http->id_seed = ((uint64_t)getpid() << 32) ^ uv_hrtime();

    int rc;
    if (is_unix) {
        uv_pipe_init(loop, &w->listener.pipe, 0);
        rc = uv_pipe_open(&w->listener.pipe, listen_fd);
    } else {
        uv_tcp_init(loop, &w->listener.tcp);
        rc = uv_tcp_open(&w->listener.tcp, listen_fd);
    }
    w->listener.handle.data = w;
    w->queue_only = o->queue_only;
    if (rc != 0) {
        fprintf(stderr, "carafe: worker %d cannot listen: %s\n", (int)getpid(), uv_strerror(rc));
        return 1;
    }
    uv_prepare_init(loop, &w->flush);
    w->flush.data = w;
    uv_prepare_start(&w->flush, on_prepare);
    uv_unref((uv_handle_t *)&w->flush);
    uv_timer_init(loop, &w->stop_deadline);
    w->stop_deadline.data = w;
    uv_unref((uv_handle_t *)&w->stop_deadline);
    uv_timer_init(loop, &w->lag_timer);
    w->lag_timer.data = w;
    if (metrics) {
        uv_timer_start(&w->lag_timer, on_lag_tick, LAG_TICK_MS, LAG_TICK_MS);
        uv_unref((uv_handle_t *)&w->lag_timer);
    }
    uv_signal_init(loop, &w->sig_term);
    w->sig_term.data = w;
    uv_signal_start(&w->sig_term, on_sigterm, SIGTERM);

    /* Listens once the before_serving hooks passed (on_started_serving). */
    cf_lifecycle_run(&w->life, app, false, on_started_serving, w);
    uv_run(loop, UV_RUN_DEFAULT);
    flush_log(w);
    /* Close whatever is left (connections cut by the deadline) and let the
     * close callbacks run before the loop goes away. */
    cf_sched_close(&w->sched);
    uv_walk(loop, close_any, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    int status = w->exit_status;
    if (status == 70) {
        /* After a crash the crashed request's memory is abandoned on
         * purpose (it may be damaged): leave without the exit handlers,
         * whose leak check would report it and replace the status. */
        fflush(NULL);
        _exit(status);
    }
    return status;
}
