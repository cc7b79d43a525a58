/*
 * server.h — the production server's parts: command line (cli.c),
 * listening sockets and privileges (listen.c), the prefork master
 * (master.c), shared metrics (metrics.c) and the worker (worker.c).
 */
#ifndef CF_SERVER_SERVER_H
#define CF_SERVER_SERVER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "app/app.h"

typedef struct cf_server_opts {
    const char *host;
    int port;
    const char *unix_path;   /* listen on a Unix socket instead */
    int workers;
    const char *user, *group;
    int64_t max_requests_jitter;
    const char *access_log;  /* "-" (stdout), a file path, or NULL (off) */
    bool log_json;
    const char *metrics_path;
    const char *prog;
    bool queue_only;         /* --queue-only: consume the task queue, serve no HTTP */
} cf_server_opts;

/* cli.c: fill opts and app options from argv and the environment.
 * Returns 0, 1 (--help: exit 0) or -1 (bad usage: exit 2). */
int cf_cli_parse(cf_app *app, int argc, char **argv, cf_server_opts *o);

/* listen.c */
/* The listening socket: inherited from systemd (LISTEN_FDS), a Unix socket
 * or TCP. -1 with the reason on stderr. *is_unix says which kind. */
int cf_listen_open(const cf_server_opts *o, bool *is_unix, char *desc, size_t desc_cap);
/* Drop root for --user/--group; 0 or -1 with the reason on stderr. */
int cf_drop_privileges(const cf_server_opts *o);

/* metrics.c: counters in memory shared by the master and its workers. */
typedef struct cf_metrics cf_metrics;
cf_metrics *cf_metrics_new(cf_app *app, int slots);
void cf_metrics_free(cf_metrics *m);
void cf_metrics_count_restart(cf_metrics *m);
/* In a worker: the slot it writes to (slots outlive workers, so counts of a
 * replaced worker stay in the totals). */
void cf_metrics_bind(cf_metrics *m, int slot);
void cf_metrics_request(cf_metrics *m, cf_route *route, int status, uint64_t ns);
void cf_metrics_gauges(cf_metrics *m, int64_t inflight, int64_t coroutines, int64_t conns,
                       uint64_t loop_lag_us);
/* The Prometheus text of all slots, malloc'd. */
char *cf_metrics_render(cf_metrics *m, size_t *len);

/* master.c */
/* A worker that stops on its own (a crash in a handler, --max-requests)
 * sends this to the master, with its exit status as the value, before it
 * drains: the master starts its replacement at once. */
#define CF_SIG_LEAVING (SIGRTMIN + 2)
/* A worker tells the master it serves (its before_serving hooks passed):
 * the master's start-up back-off starts over. */
#define CF_SIG_READY (SIGRTMIN + 3)
/* The exit status of a worker whose before_serving hook failed. */
#define CF_EXIT_BOOT 3
int cf_master_run(cf_app *app, const cf_server_opts *o, int listen_fd, bool is_unix,
                  cf_metrics *metrics);

/* worker.c: serve until stopped; returns the worker's exit status. */
int cf_worker_run(cf_app *app, const cf_server_opts *o, int listen_fd, bool is_unix,
                  cf_metrics *metrics, int slot);

#endif
