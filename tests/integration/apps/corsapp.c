/*
 * corsapp — the app tests/integration/test_cors.py, test_cors_browser.py
 * and test_serving.py start: CORS, an app-wide wrapper, the logger and
 * serving hooks over real sockets.
 *
 *   GET  /                 a blank HTML page (the browser test's page origin)
 *   GET  /api/data         "data" with X-Total (exposed) and X-Hidden (not)
 *   PUT|DELETE /api/data   "put" / "deleted"
 *   POST /api/login        sets the cookie session=s3cret (credentials group)
 *   GET  /api/me           the session cookie's value (credentials group)
 *   PUT  /api/strict       a before hook refuses even its preflight (401)
 *   GET  /api/stats        {"preflights": N} seen by this worker
 *   GET  /log              one cf_log line per level, then "logged"
 *   GET  /slow?ms=N        "slept" after N ms
 *   GET  /pub/any          any origin ("*")
 *
 * CORS: the app allows the origins in $CORS_ORIGINS (comma-separated;
 * default none), request headers Content-Type and X-Token, exposes
 * X-Total, max age 600 s; /api/login and /api/me (a group) allow the same
 * origins with credentials. Every response gets X-Wrapped from a cf_wrap
 * wrapper, which also logs each request at debug level.
 *
 * Serving hooks: before_serving counts its attempts in $SERVE_COUNT_FILE
 * (if set) and fails while the count is at most $SERVE_FAIL_TIMES (-1:
 * always); it sleeps 50 ms first and logs "before_serving: ready".
 * after_serving sleeps 50 ms and logs "after_serving: served N requests".
 * Counters are plain globals: the tests run it with one worker.
 */
#include <carafe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long preflights, served;

static void wrapper(cf_req *rq)
{
    if (cf_cors_preflight(rq))
        preflights++;
    cf_next(rq);
    served++;
    cf_set_header(rq, "X-Wrapped", "1");
    cf_log(rq, CF_LOG_DEBUG, "wrapped %s %s -> %d", cf_method(rq), cf_path(rq), cf_req_status(rq));
}

static void page(cf_req *rq) { cf_html(rq, 200, "<!doctype html><title>page</title><p>page</p>"); }
static void data(cf_req *rq)
{
    cf_set_header(rq, "X-Total", "3");
    cf_set_header(rq, "X-Hidden", "h");
    cf_text(rq, 200, "data");
}
static void data_put(cf_req *rq) { cf_text(rq, 200, strcmp(cf_method(rq), "PUT") ? "deleted" : "put"); }
static void login(cf_req *rq)
{
    cf_set_cookie(rq, "session", "s3cret", &(cf_cookie_opts){.http_only = true, .same_site = "Lax"});
    cf_text(rq, 200, "logged in");
}
static void me(cf_req *rq)
{
    const char *s = cf_cookie(rq, "session");
    cf_text(rq, 200, s ? s : "nobody");
}
static void strict(cf_req *rq) { cf_text(rq, 200, "strict"); }
static void stats(cf_req *rq) { cf_json(rq, 200, "{s:i}", "preflights", (json_int_t)preflights); }
static void pub(cf_req *rq) { cf_text(rq, 200, "public"); }
static void slow(cf_req *rq)
{
    const char *ms = cf_arg(rq, "ms");
    if (cf_sleep(rq, ms ? strtoull(ms, NULL, 10) : 100) != 0)
        return;
    cf_text(rq, 200, "slept");
}
static void log_levels(cf_req *rq)
{
    cf_log(rq, CF_LOG_DEBUG, "debug from /log");
    cf_log(rq, CF_LOG_INFO, "info from /log");
    cf_log(rq, CF_LOG_WARNING, "warning from /log");
    cf_log(rq, CF_LOG_ERROR, "error from /log");
    cf_text(rq, 200, "logged");
}

static void refuse_strict(cf_req *rq)
{
    if (strcmp(cf_path(rq), "/api/strict") == 0)
        cf_abort(rq, 401); /* preflight or not */
}

static int before_serving(cf_req *rq)
{
    cf_sleep(rq, 50);
    const char *file = getenv("SERVE_COUNT_FILE");
    if (file) {
        long n = 0;
        FILE *f = fopen(file, "r");
        if (f) {
            if (fscanf(f, "%ld", &n) != 1)
                n = 0;
            fclose(f);
        }
        n++;
        f = fopen(file, "w");
        if (f) {
            fprintf(f, "%ld\n", n);
            fclose(f);
        }
        const char *ft = getenv("SERVE_FAIL_TIMES");
        long fail = ft ? strtol(ft, NULL, 10) : 0;
        if (fail < 0 || n <= fail) {
            cf_fail(rq, "attempt %ld: the cache is not reachable", n);
            return CF_EFAIL;
        }
    }
    cf_log(rq, CF_LOG_INFO, "before_serving: ready");
    return 0;
}

static int after_serving(cf_req *rq)
{
    if (cf_sleep(rq, 50) != 0)
        return CF_ECANCELED;
    cf_log(rq, CF_LOG_INFO, "after_serving: served %ld requests", served);
    return 0;
}

/* "a,b,c" as a NULL-terminated array (lives as long as the program). */
static const char **split_origins(const char *s)
{
    size_t n = 1;
    for (const char *p = s; *p; p++)
        n += *p == ',';
    const char **out = calloc(n + 1, sizeof *out);
    char *copy = strdup(s);
    size_t k = 0;
    for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ","))
        out[k++] = tok;
    out[k] = NULL;
    return out;
}

int main(int argc, char **argv)
{
    cf_app *app = cf_app_new();
    const char *env = getenv("CORS_ORIGINS");
    const char **origins = split_origins(env && *env ? env : "http://nobody.invalid");
    cf_cors(app, &(cf_cors_opts){.origins = origins, .allow_headers = "Content-Type, X-Token",
                                 .expose_headers = "X-Total", .max_age = 600});
    cf_wrap(app, wrapper);
    cf_before_request(app, refuse_strict);
    cf_before_serving(app, before_serving);
    cf_after_serving(app, after_serving);
    cf_route(app, "GET", "/", page);
    cf_route(app, "GET", "/api/data", data);
    cf_route(app, "PUT,DELETE", "/api/data", data_put);
    cf_route(app, "PUT", "/api/strict", strict);
    cf_route(app, "GET", "/api/stats", stats);
    cf_route(app, "GET", "/log", log_levels);
    cf_route(app, "GET", "/slow", slow);
    cf_group *auth = cf_group_new(app, "/api");
    cf_cors(auth, &(cf_cors_opts){.origins = origins, .credentials = true,
                                  .allow_headers = "Content-Type"});
    cf_route(auth, "POST", "/login", login);
    cf_route(auth, "GET", "/me", me);
    cf_group *p = cf_group_new(app, "/pub");
    static const char *const any[] = {"*", NULL};
    cf_cors(p, &(cf_cors_opts){.origins = any});
    cf_route(p, "GET", "/any", pub);
    int rc = cf_run(app, argc, argv);
    cf_app_free(app);
    free((void *)origins[0]);
    free(origins);
    return rc;
}
