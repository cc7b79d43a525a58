/*
 * run.c — cf_run: command line, listening socket, privileges, shared
 * metrics, then the prefork master (master.c) and its workers (worker.c).
 */
#include <signal.h>
#include <sys/socket.h>
#include <stdio.h>
#include <unistd.h>

#include "server/server.h"
#include "server/worker.h"

int cf_run(cf_app *app, int argc, char **argv)
{
    cf_server_opts o;
    int pr = cf_cli_parse(app, argc, argv, &o);
    if (pr != 0)
        return pr > 0 ? 0 : 2;
    signal(SIGPIPE, SIG_IGN);
    if (o.metrics_path)
        cf_worker_add_metrics_route(app, o.metrics_path);
    bool is_unix = false;
    char where[160];
    /* --queue-only: an unbound socket stands in for the listener, so
     * nothing can connect (the workers never listen on it). */
    int fd = o.queue_only ? socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)
                          : cf_listen_open(&o, &is_unix, where, sizeof where);
    if (fd < 0)
        return 1;
    if (o.queue_only)
        snprintf(where, sizeof where, "the task queue only (--queue-only, no HTTP)");
    if (cf_drop_privileges(&o) != 0)
        return 1;
    /* The database and queue connect now, not at set-up (so --help works
     * without them), once, before the workers exist: schema scripts run a
     * single time and a failure stops the server instead of a restart loop. */
    if (cf_app_services_prepare(app) != 0)
        return 1;
    cf_metrics *metrics = o.metrics_path ? cf_metrics_new(app, 2 * o.workers) : NULL;
    fprintf(stderr, "carafe: serving on %s (%d worker%s, master pid %d)%s\n", where, o.workers,
            o.workers == 1 ? "" : "s", (int)getpid(),
            app->opt[CF_OPT_DEBUG] ? " in debug mode" : "");
    int rc = cf_master_run(app, &o, fd, is_unix, metrics);
    cf_metrics_free(metrics);
    return rc;
}
