/*
 * worker.c — one worker: a libuv loop serving the app on a listening
 * socket, with the services connections share (Date header cache,
 * buffered access log) and a graceful stop on SIGINT/SIGTERM: stop
 * accepting, close idle connections, let in-flight requests finish
 * (30 s at most), then return.
 */
#include "server/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/coro.h"

#define STOP_DEADLINE_MS 30000

const char *cf_worker_date(cf_worker *w)
{
    time_t now = time(NULL);
    if ((uint64_t)now != w->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(w->date, sizeof w->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        w->date_sec = (uint64_t)now;
    }
    return w->date;
}

static void flush_log(cf_worker *w)
{
    size_t off = 0;
    while (off < w->log_len) {
        ssize_t n = write(1, w->log + off, w->log_len - off);
        if (n <= 0)
            break; /* a full or closed stdout must not stop the server */
        off += (size_t)n;
    }
    w->log_len = 0;
}

void cf_worker_log(cf_worker *w, const char *line, size_t len)
{
    if (w->log_len + len > w->log_cap) {
        flush_log(w);
        if (len > w->log_cap) {
            char *n = realloc(w->log, len);
            if (!n)
                return;
            w->log = n;
            w->log_cap = len;
        }
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
    close_handle((uv_handle_t *)&w->sig_int);
    close_handle((uv_handle_t *)&w->sig_term);
    close_handle((uv_handle_t *)&w->flush);
    close_handle((uv_handle_t *)&w->stop_deadline);
    close_handle((uv_handle_t *)&w->listener);
    uv_stop(w->loop);
}

void cf_worker_conn_closed(cf_worker *w)
{
    if (w->stopping && w->nconns == 0)
        finish_stop(w);
}

static void on_deadline(uv_timer_t *t)
{
    cf_worker *w = t->data;
    fprintf(stderr, "carafe: %zu connection(s) still busy after the graceful timeout; exiting\n",
            w->nconns);
    finish_stop(w);
}

static void on_stop_signal(uv_signal_t *s, int signum)
{
    cf_worker *w = s->data;
    if (w->stopping) {
        finish_stop(w); /* a second signal: stop now */
        return;
    }
    w->stopping = true;
    fprintf(stderr, "carafe: %s received, finishing %zu connection(s)\n",
            signum == SIGINT ? "SIGINT" : "SIGTERM", w->nconns);
    uv_close((uv_handle_t *)&w->listener, NULL);
    cf_conn_close_idle(w);
    uv_timer_start(&w->stop_deadline, on_deadline, STOP_DEADLINE_MS, 0);
    uv_unref((uv_handle_t *)&w->stop_deadline);
    if (w->nconns == 0)
        finish_stop(w);
}

static void on_connection(uv_stream_t *server, int status)
{
    cf_worker *w = server->data;
    if (status < 0)
        return;
    cf_conn_accept(w);
}

static void raise_nofile_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int cf_worker_serve(cf_app *app, int listen_fd)
{
    raise_nofile_limit();
    cf_worker *w = calloc(1, sizeof *w);
    if (!w)
        return 1;
    w->app = app;
    w->loop = uv_default_loop();
    if (cf_sched_init(&w->sched, w->loop) != 0) {
        free(w);
        return 1;
    }
    cf_coro_set_stack_size((size_t)app->opt[CF_OPT_STACK_SIZE]);
    w->limits.max_header = (size_t)app->opt[CF_OPT_MAX_HEADER];
    w->limits.max_target = (size_t)app->opt[CF_OPT_MAX_TARGET];
    w->limits.max_fields = 100;
    w->access_log = app->opt[CF_OPT_ACCESS_LOG] != 0;
    w->max_conns = (size_t)app->opt[CF_OPT_MAX_CONNECTIONS];
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        w->max_conns + 32 > rl.rlim_cur)
        w->max_conns = rl.rlim_cur > 64 ? (size_t)rl.rlim_cur - 32 : 16;
    w->log_cap = 64 * 1024;
    w->log = malloc(w->log_cap);

    uv_tcp_init(w->loop, &w->listener);
    w->listener.data = w;
    int rc = uv_tcp_open(&w->listener, listen_fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&w->listener, 1024, on_connection);
    if (rc != 0) {
        fprintf(stderr, "carafe: cannot listen: %s\n", uv_strerror(rc));
        return 1;
    }
    uv_prepare_init(w->loop, &w->flush);
    w->flush.data = w;
    uv_prepare_start(&w->flush, on_prepare);
    uv_unref((uv_handle_t *)&w->flush);
    uv_timer_init(w->loop, &w->stop_deadline);
    w->stop_deadline.data = w;
    uv_signal_init(w->loop, &w->sig_int);
    uv_signal_init(w->loop, &w->sig_term);
    w->sig_int.data = w->sig_term.data = w;
    uv_signal_start(&w->sig_int, on_stop_signal, SIGINT);
    uv_signal_start(&w->sig_term, on_stop_signal, SIGTERM);

    uv_run(w->loop, UV_RUN_DEFAULT);
    /* Close whatever is left (connections cut by the deadline) and let the
     * close callbacks run before the loop goes away. */
    flush_log(w);
    cf_sched_close(&w->sched);
    uv_walk(w->loop, close_any, NULL);
    uv_run(w->loop, UV_RUN_DEFAULT);
    uv_loop_close(w->loop);
    free(w->log);
    free(w);
    return 0;
}
