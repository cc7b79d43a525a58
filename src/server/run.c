/*
 * run.c — cf_run: the command line (--host, --port, --workers, --debug,
 * --no-access-log, --help; HOST, PORT and WEB_CONCURRENCY from the
 * environment), the listening socket, and the worker processes.
 *
 * With more than one worker, each is a forked process with its own socket
 * bound with SO_REUSEPORT, so the kernel spreads connections across them.
 * The parent only forwards SIGINT/SIGTERM and waits; restarting crashed
 * workers belongs to the production server.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "app/app.h"
#include "server/worker.h"

typedef struct run_opts {
    const char *host;
    int port;
    int workers;
} run_opts;

static void usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [--host HOST] [--port PORT] [--workers N] [--debug] [--no-access-log]\n"
            "  --host HOST       address to listen on (env HOST, default 127.0.0.1)\n"
            "  --port PORT       port to listen on (env PORT, default 8000)\n"
            "  --workers N       worker processes (env WEB_CONCURRENCY, default 1)\n"
            "  --debug           error details in 500 responses and on stderr\n"
            "  --no-access-log   do not log one line per request\n",
            prog);
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* 0, 1 (exit 0 after --help) or -1 (bad usage). */
static int parse_args(cf_app *app, int argc, char **argv, run_opts *o)
{
    const char *env;
    o->host = (env = getenv("HOST")) && *env ? env : "127.0.0.1";
    o->port = 8000;
    o->workers = 1;
    if ((env = getenv("PORT")) && *env && parse_int(env, 0, 65535, &o->port) != 0) {
        fprintf(stderr, "carafe: PORT=%s is not a port number\n", env);
        return -1;
    }
    if ((env = getenv("WEB_CONCURRENCY")) && *env && parse_int(env, 1, 1024, &o->workers) != 0) {
        fprintf(stderr, "carafe: WEB_CONCURRENCY=%s is not a worker count\n", env);
        return -1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char name[64];
        const char *eq = strchr(a, '=');
        if (eq && (size_t)(eq - a) < sizeof name) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = 0;
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
        }
        bool takes = !strcmp(name, "--host") || !strcmp(name, "--port") || !strcmp(name, "--workers");
        if (takes && !val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "carafe: %s needs a value\n", name);
                return -1;
            }
            val = argv[++i];
        }
        if (!strcmp(name, "--host")) {
            o->host = val;
        } else if (!strcmp(name, "--port")) {
            if (parse_int(val, 0, 65535, &o->port) != 0) {
                fprintf(stderr, "carafe: --port %s is not a port number\n", val);
                return -1;
            }
        } else if (!strcmp(name, "--workers")) {
            if (parse_int(val, 1, 1024, &o->workers) != 0) {
                fprintf(stderr, "carafe: --workers %s is not a worker count\n", val);
                return -1;
            }
        } else if (!strcmp(name, "--debug")) {
            cf_app_set(app, CF_OPT_DEBUG, 1);
        } else if (!strcmp(name, "--no-access-log")) {
            cf_app_set(app, CF_OPT_ACCESS_LOG, 0);
        } else if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
            usage(stdout, argv[0]);
            return 1;
        } else {
            fprintf(stderr, "carafe: unknown option %s\n", a);
            usage(stderr, argv[0]);
            return -1;
        }
    }
    return 0;
}

static int open_listener(const char *host, int port)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "carafe: cannot resolve %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        fprintf(stderr, "carafe: cannot listen on %s:%d: %s\n", host, port, strerror(err));
    return fd;
}

static volatile sig_atomic_t parent_signal;
static void remember_signal(int sig) { parent_signal = sig; }

int cf_run(cf_app *app, int argc, char **argv)
{
    run_opts o;
    int pr = parse_args(app, argc, argv, &o);
    if (pr != 0)
        return pr > 0 ? 0 : 2;
    signal(SIGPIPE, SIG_IGN);
    int fd = open_listener(o.host, o.port);
    if (fd < 0)
        return 1;
    if (o.port == 0) { /* report the port the kernel chose */
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        getsockname(fd, (struct sockaddr *)&ss, &sl);
        o.port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    }
    fprintf(stderr, "carafe: serving on http://%s:%d (%d worker%s, pid %d)%s\n", o.host, o.port,
            o.workers, o.workers == 1 ? "" : "s", (int)getpid(),
            app->opt[CF_OPT_DEBUG] ? " in debug mode" : "");
    if (o.workers == 1)
        return cf_worker_serve(app, fd);

    pid_t *pids = calloc((size_t)o.workers, sizeof *pids);
    if (!pids)
        return 1;
    struct sigaction sa = {0};
    sa.sa_handler = remember_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    for (int i = 0; i < o.workers; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            signal(SIGINT, SIG_DFL);
            signal(SIGTERM, SIG_DFL);
            /* Worker 0 keeps the inherited socket, the others bind their own
             * so SO_REUSEPORT balances between them. */
            int wfd = i == 0 ? fd : open_listener(o.host, o.port);
            if (i != 0)
                close(fd);
            _exit(wfd < 0 ? 1 : cf_worker_serve(app, wfd));
        }
        pids[i] = pid;
    }
    close(fd);
    int status = 0, alive = o.workers;
    while (alive > 0) {
        int st;
        pid_t pid = waitpid(-1, &st, 0);
        if (pid < 0) {
            if (errno == EINTR && parent_signal) {
                for (int i = 0; i < o.workers; i++)
                    if (pids[i] > 0)
                        kill(pids[i], (int)parent_signal);
                parent_signal = 0;
                continue;
            }
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < o.workers; i++)
            if (pids[i] == pid)
                pids[i] = 0;
        alive--;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            status = 1;
    }
    free(pids);
    return status;
}
