/*
 * cli.c — cf_run's command line. Every limit and timeout of the server is
 * an app option (cf_app_set) and a flag here; the precedence is command
 * line, then environment (HOST, PORT, WEB_CONCURRENCY), then the app's own
 * settings, then the defaults.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/server.h"

enum kind { K_SIZE, K_TIME, K_COUNT };

/* Flags that set an app option. */
static const struct {
    const char *flag;
    cf_option opt;
    enum kind kind;
    const char *help;
} option_flags[] = {
    {"--workers", CF_OPT_WORKERS, K_COUNT, "worker processes (default: one per core)"},
    {"--max-requests", CF_OPT_MAX_REQUESTS, K_COUNT, "recycle a worker after N requests (0: never)"},
    {"--graceful-timeout", CF_OPT_GRACEFUL_TIMEOUT, K_TIME, "seconds to drain on stop/reload (30)"},
    {"--max-header-size", CF_OPT_MAX_HEADER, K_SIZE, "request head limit, 431 above (8K)"},
    {"--max-target-size", CF_OPT_MAX_TARGET, K_SIZE, "request target limit, 414 above (4K)"},
    {"--max-body-size", CF_OPT_MAX_BODY, K_SIZE, "request body limit, 413 above (1M)"},
    {"--header-timeout", CF_OPT_HEADER_TIMEOUT, K_TIME, "seconds for the request head, 408 after (10)"},
    {"--body-timeout", CF_OPT_BODY_TIMEOUT, K_TIME, "seconds between body bytes, 408 after (30)"},
    {"--keepalive-timeout", CF_OPT_KEEPALIVE_TIMEOUT, K_TIME, "idle keep-alive seconds (5)"},
    {"--send-timeout", CF_OPT_SEND_TIMEOUT, K_TIME, "seconds a streaming response waits for a reader (30)"},
    {"--handler-timeout", CF_OPT_HANDLER_TIMEOUT, K_TIME, "seconds per request, 503 after (0: none)"},
    {"--max-connections", CF_OPT_MAX_CONNECTIONS, K_COUNT, "connections per worker, 503 above (16384)"},
    {"--stack-size", CF_OPT_STACK_SIZE, K_SIZE, "coroutine stack size (64K)"},
};
#define NFLAGS (sizeof option_flags / sizeof *option_flags)

static void usage(FILE *f, const char *prog)
{
    fprintf(f, "usage: %s [options]\n"
               "  --host HOST            address to listen on (env HOST, default 127.0.0.1)\n"
               "  --port PORT            port (env PORT, default 8000; 0: any free port)\n"
               "  --unix PATH            listen on a Unix socket instead (e.g. behind nginx)\n"
               "  --user USER, --group GROUP   drop root after binding\n"
               "  --max-requests-jitter N      add up to N to --max-requests per worker\n"
               "  --access-log PATH|-|off      one line per request (default -: stdout)\n"
               "  --log-format common|json     access log and app log format (default common)\n"
               "  --log-level LEVEL      app log threshold: debug, info, warning, error (info)\n"
               "  --metrics PATH         serve Prometheus metrics at PATH (e.g. /metrics)\n"
               "  --debug                error details in 500 responses and on stderr\n"
               "  --no-access-log        same as --access-log off\n"
               "  --queue-only           consume the task queue only, serve no HTTP\n",
            prog);
    for (size_t i = 0; i < NFLAGS; i++)
        fprintf(f, "  %-22s %s\n", option_flags[i].flag, option_flags[i].help);
    fprintf(f, "Sizes take K, M or G suffixes; times are seconds (decimals allowed).\n"
               "Env: HOST, PORT, WEB_CONCURRENCY; systemd socket activation via LISTEN_FDS.\n"
               "Signals: TERM/INT drain and stop, HUP replaces the workers, QUIT stops at once.\n");
}

static int parse_value(const char *s, enum kind kind, int64_t *out)
{
    char *end;
    errno = 0;
    if (kind == K_TIME) {
        double v = strtod(s, &end);
        if (errno || end == s || *end || v < 0 || v > 1e7)
            return -1;
        *out = (int64_t)(v * 1000 + 0.5);
        return 0;
    }
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return -1;
    long long mult = 1;
    if (kind == K_SIZE && *end) {
        switch (*end == 0 ? 0 : (*end | 0x20)) {
        case 'k': mult = 1024; break;
        case 'm': mult = 1024 * 1024; break;
        case 'g': mult = 1024LL * 1024 * 1024; break;
        default: return -1;
        }
        end++;
        if ((*end | 0x20) == 'b' || (*end | 0x20) == 'i')
            end++;
    }
    if (*end || v > (1LL << 50) / mult)
        return -1;
    *out = v * mult;
    return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    int64_t v;
    if (parse_value(s, K_COUNT, &v) != 0 || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

int cf_cli_parse(cf_app *app, int argc, char **argv, cf_server_opts *o)
{
    memset(o, 0, sizeof *o);
    o->prog = argc > 0 ? argv[0] : "carafe";
    o->host = "127.0.0.1";
    o->port = 8000;
    o->access_log = app->opt[CF_OPT_ACCESS_LOG] ? "-" : NULL;
    const char *env;
    if ((env = getenv("HOST")) && *env)
        o->host = env;
    if ((env = getenv("PORT")) && *env && parse_int(env, 0, 65535, &o->port) != 0) {
        fprintf(stderr, "carafe: PORT=%s is not a port number\n", env);
        return -1;
    }
    if ((env = getenv("WEB_CONCURRENCY")) && *env) {
        int n;
        if (parse_int(env, 1, 1024, &n) != 0) {
            fprintf(stderr, "carafe: WEB_CONCURRENCY=%s is not a worker count\n", env);
            return -1;
        }
        app->opt[CF_OPT_WORKERS] = n;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        char name[64];
        const char *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) == 0 && eq && (size_t)(eq - a) < sizeof name) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = 0;
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
        }
        if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
            usage(stdout, o->prog);
            return 1;
        }
        if (!strcmp(name, "--debug")) {
            app->opt[CF_OPT_DEBUG] = 1;
            continue;
        }
        if (!strcmp(name, "--no-access-log")) {
            o->access_log = NULL;
            continue;
        }
        if (!strcmp(name, "--queue-only")) {
            o->queue_only = true;
            continue;
        }
        if (!val) {
            if (i + 1 >= argc || strncmp(name, "--", 2) != 0) {
                fprintf(stderr, "carafe: unknown option or missing value: %s (see --help)\n", a);
                return -1;
            }
            val = argv[++i];
        }
        size_t k = 0;
        while (k < NFLAGS && strcmp(option_flags[k].flag, name) != 0)
            k++;
        if (k < NFLAGS) {
            int64_t v;
            if (parse_value(val, option_flags[k].kind, &v) != 0 ||
                cf_app_set(app, option_flags[k].opt, v) != 0 ||
                (option_flags[k].opt == CF_OPT_WORKERS && (v < 1 || v > 1024))) {
                fprintf(stderr, "carafe: invalid value for %s: %s\n", name, val);
                return -1;
            }
        } else if (!strcmp(name, "--host")) {
            o->host = val;
        } else if (!strcmp(name, "--port")) {
            if (parse_int(val, 0, 65535, &o->port) != 0) {
                fprintf(stderr, "carafe: --port %s is not a port number\n", val);
                return -1;
            }
        } else if (!strcmp(name, "--unix")) {
            o->unix_path = val;
        } else if (!strcmp(name, "--user")) {
            o->user = val;
        } else if (!strcmp(name, "--group")) {
            o->group = val;
        } else if (!strcmp(name, "--max-requests-jitter")) {
            if (parse_value(val, K_COUNT, &o->max_requests_jitter) != 0) {
                fprintf(stderr, "carafe: invalid value for %s: %s\n", name, val);
                return -1;
            }
        } else if (!strcmp(name, "--access-log")) {
            o->access_log = !strcmp(val, "off") ? NULL : val;
        } else if (!strcmp(name, "--log-format")) {
            if (strcmp(val, "common") && strcmp(val, "json")) {
                fprintf(stderr, "carafe: --log-format is common or json, not %s\n", val);
                return -1;
            }
            o->log_json = !strcmp(val, "json");
        } else if (!strcmp(name, "--log-level")) {
            static const char *const levels[] = {"debug", "info", "warning", "error"};
            int l = 0;
            while (l < 4 && strcmp(val, levels[l]) != 0)
                l++;
            if (l == 4) {
                fprintf(stderr, "carafe: --log-level is debug, info, warning or error, not %s\n", val);
                return -1;
            }
            cf_log_set_level(app, (cf_log_level)l);
        } else if (!strcmp(name, "--metrics")) {
            if (val[0] != '/') {
                fprintf(stderr, "carafe: --metrics takes a path like /metrics\n");
                return -1;
            }
            o->metrics_path = val;
        } else {
            fprintf(stderr, "carafe: unknown option %s (see --help)\n", a);
            return -1;
        }
    }
    app->log_json = o->log_json; /* cf_log writes the same format */
    o->workers = (int)app->opt[CF_OPT_WORKERS];
    if (o->workers <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o->workers = n > 0 ? (int)n : 1;
    }
    return 0;
}
