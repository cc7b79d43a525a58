/*
 * fetchapp — the app tests/integration/test_fetch.py starts: handlers that
 * make outgoing calls (cf_fetch_*) to the test's upstream server and report
 * what happened as JSON. UPSTREAM (environment) is the upstream's base URL;
 * a call spec may also give an absolute "url".
 *
 *   POST /fetch      one call described by a JSON spec (below); the result
 *   POST /many       {"calls": [spec, ...], "mode": "all"|"any",
 *                    "timeout_ms": T}: starts them all, then cf_await_all /
 *                    cf_await_any; {"rc", "index", "ms", "errmsg",
 *                    "results": [...]} (for "any", the others are awaited
 *                    afterwards so their results show too)
 *   POST /fetch_all  {"urls": [...], "concurrency": K}: cf_fetch_all;
 *                    {"rc", "ms", "errmsg", "results"}
 *   GET  /proxy?path=P   GET UPSTREAM+P; the upstream's status and body
 *   GET  /threaded?path=P   the same from a threaded handler (blocking call)
 *   GET  /await_timeout?path=P&ms=T[&base=URL&ca=FILE]   cf_await with a
 *                    timeout T on a call to P (the cancel then runs on the
 *                    handler's coroutine stack): {"rc", "error"}
 *   GET  /orphan?path=P   a child task starts a call, sleeps 150 ms and ends
 *                    without awaiting it: the call is cancelled with the child
 *   GET  /slowfetch?path=P   awaits a call to P; the teardown hook records
 *                    how the call ended (for client-disconnect tests)
 *   GET  /stats      those counters
 *
 * Spec: {"method", "url" | "path", "headers": [..], "query": [n, v, ..],
 * "body": "raw", "json": any, "form": [n, v, ..], "timeout_ms",
 * "connect_timeout_ms", "max_body", "follow": bool, "ca_file", "raise": bool,
 * "pattern": bool (check the body against the harness's big pattern)}.
 * Result: {"error", "errname", "errmsg", "status", "len", "body" (if text
 * and small), "json", "headers": [[n, v], ..], "ctype", "url", "ms",
 * "pattern_ok", "raise"}.
 */
#include <carafe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *upstream = "";

static struct {
    long slow_started, slow_teardown, slow_cancelled, slow_other;
    long orphan_cancelled;
} stats;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A JSON array of strings as a NULL-terminated array in the request. */
static const char *const *str_list(cf_req *rq, json_t *a)
{
    if (!json_is_array(a))
        return NULL;
    size_t n = json_array_size(a);
    const char **out = cf_alloc(rq, (n + 1) * sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = json_string_value(json_array_get(a, i));
    out[n] = NULL;
    return out;
}

static const char *spec_url(cf_req *rq, json_t *spec)
{
    const char *url = json_string_value(json_object_get(spec, "url"));
    if (url)
        return url;
    const char *path = json_string_value(json_object_get(spec, "path"));
    return cf_sprintf(rq, "%s%s", upstream, path ? path : "/");
}

static cf_fetch *start_spec(cf_req *rq, json_t *spec)
{
    cf_fetch_opts *o = cf_alloc(rq, sizeof *o);
    memset(o, 0, sizeof *o);
    o->headers = str_list(rq, json_object_get(spec, "headers"));
    o->query = str_list(rq, json_object_get(spec, "query"));
    o->form = str_list(rq, json_object_get(spec, "form"));
    const char *body = json_string_value(json_object_get(spec, "body"));
    if (body) {
        o->body = body;
        o->body_len = strlen(body);
    }
    o->json = json_object_get(spec, "json");
    o->timeout_ms = json_integer_value(json_object_get(spec, "timeout_ms"));
    o->connect_timeout_ms = json_integer_value(json_object_get(spec, "connect_timeout_ms"));
    o->max_body = (size_t)json_integer_value(json_object_get(spec, "max_body"));
    o->follow_redirects = json_is_true(json_object_get(spec, "follow"));
    o->ca_file = json_string_value(json_object_get(spec, "ca_file"));
    const char *method = json_string_value(json_object_get(spec, "method"));
    return cf_fetch_start(rq, method ? method : "GET", spec_url(rq, spec), o);
}

static bool pattern_ok(const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)b[i] != ((i * 31 + (i >> 10)) & 0xff))
            return false;
    return true;
}

static json_t *result(cf_req *rq, cf_fetch *f, json_t *spec, double t0)
{
    size_t len;
    const char *body = cf_fetch_body(f, &len);
    int err = cf_fetch_error(f);
    json_t *hdrs = json_array();
    const char *n, *v;
    for (size_t i = 0; cf_fetch_header_at(f, i, &n, &v); i++)
        json_array_append_new(hdrs, json_pack("[s,s]", n, v));
    json_t *r = json_pack("{s:i,s:s,s:s,s:i,s:I,s:o,s:s?,s:f}", "error", err, "errname",
                          cf_strerror(err), "errmsg", cf_fetch_errmsg(f), "status",
                          cf_fetch_status(f), "len", (json_int_t)len, "headers", hdrs, "url",
                          cf_fetch_url(f), "ms", now_ms() - t0);
    json_t *text = len <= 65536 ? json_stringn(body, len) : NULL; /* NULL unless UTF-8 */
    json_object_set_new(r, "body", text ? text : json_null());
    json_t *j = cf_fetch_json(f);
    json_object_set(r, "json", j ? j : json_null());
    const char *ct = cf_fetch_header(f, "content-type");
    json_object_set_new(r, "ctype", ct ? json_string(ct) : json_null());
    if (spec && json_is_true(json_object_get(spec, "pattern")))
        json_object_set_new(r, "pattern_ok", json_boolean(pattern_ok(body, len)));
    if (spec && json_is_true(json_object_get(spec, "raise"))) {
        int rr = cf_fetch_raise_for_status(f);
        json_object_set_new(r, "raise", json_integer(rr));
        json_object_set_new(r, "raise_msg", json_string(cf_fetch_errmsg(f)));
        json_object_set_new(r, "req_errmsg", json_string(cf_errmsg(rq)));
    }
    return r;
}

static json_t *body_json(cf_req *rq)
{
    json_t *spec = cf_get_json(rq);
    if (!spec)
        cf_json(rq, 400, "{s:s}", "error", cf_errmsg(rq));
    return spec;
}

static void fetch_one(cf_req *rq)
{
    json_t *spec = body_json(rq);
    if (!spec)
        return;
    double t0 = now_ms();
    cf_fetch *f = start_spec(rq, spec);
    int rc = cf_await(rq, f, -1);
    json_t *r = result(rq, f, spec, t0);
    json_object_set_new(r, "await_rc", json_integer(rc));
    cf_json_value(rq, 200, r);
}

static void many(cf_req *rq)
{
    json_t *spec = body_json(rq);
    if (!spec)
        return;
    json_t *calls = json_object_get(spec, "calls");
    size_t n = json_array_size(calls);
    if (!n)
        return cf_json(rq, 400, "{s:s}", "error", "no calls");
    const char *mode = json_string_value(json_object_get(spec, "mode"));
    json_t *tm = json_object_get(spec, "timeout_ms");
    int64_t timeout = tm ? json_integer_value(tm) : -1;
    double t0 = now_ms();
    cf_fetch **fs = cf_alloc(rq, n * sizeof *fs);
    for (size_t i = 0; i < n; i++)
        fs[i] = start_spec(rq, json_array_get(calls, i));
    int rc, index = -1;
    double first_ms = 0;
    if (mode && strcmp(mode, "any") == 0) {
        rc = cf_await_any_n(rq, (void *const *)fs, n, timeout);
        first_ms = now_ms() - t0;
        index = rc;
        /* The others keep running; collect them for the report. */
        cf_await_all_n(rq, (void *const *)fs, n, -1);
    } else {
        rc = cf_await_all_n(rq, (void *const *)fs, n, timeout);
        first_ms = now_ms() - t0;
    }
    json_t *results = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(results, result(rq, fs[i], json_array_get(calls, i), t0));
    cf_json(rq, 200, "{s:i,s:i,s:f,s:s,s:o}", "rc", rc, "index", index, "ms", first_ms,
            "errmsg", cf_errmsg(rq), "results", results);
}

static void fetch_all(cf_req *rq)
{
    json_t *spec = body_json(rq);
    if (!spec)
        return;
    json_t *urls = json_object_get(spec, "urls");
    size_t n = json_array_size(urls);
    const char *const *list = str_list(rq, urls);
    size_t conc = (size_t)json_integer_value(json_object_get(spec, "concurrency"));
    cf_fetch **out = cf_alloc(rq, (n ? n : 1) * sizeof *out);
    double t0 = now_ms();
    int rc = cf_fetch_all(rq, list, n, conc, NULL, out);
    double ms = now_ms() - t0;
    json_t *results = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(results, result(rq, out[i], NULL, t0));
    cf_json(rq, 200, "{s:i,s:f,s:s,s:o}", "rc", rc, "ms", ms, "errmsg", cf_errmsg(rq),
            "results", results);
}

static void proxy(cf_req *rq)
{
    const char *path = cf_arg(rq, "path");
    cf_fetch *f = cf_fetch_do(rq, "GET", cf_sprintf(rq, "%s%s", upstream, path ? path : "/"), NULL);
    if (cf_fetch_error(f))
        return cf_json(rq, 502, "{s:s,s:i}", "error", cf_fetch_errmsg(f), "code",
                       cf_fetch_error(f));
    size_t len;
    const char *body = cf_fetch_body(f, &len);
    const char *ct = cf_fetch_header(f, "Content-Type");
    cf_send(rq, cf_fetch_status(f), ct ? ct : "application/octet-stream", body, len);
}

static void await_timeout(cf_req *rq)
{
    const char *path = cf_arg(rq, "path");
    const char *ms = cf_arg(rq, "ms");
    const char *base = cf_arg(rq, "base"); /* another upstream (the HTTPS one) */
    cf_fetch_opts o = {.ca_file = cf_arg(rq, "ca")};
    cf_fetch *f = cf_fetch_start(
        rq, "GET", cf_sprintf(rq, "%s%s", base ? base : upstream, path ? path : "/"), &o);
    double t0 = now_ms();
    int rc = cf_await(rq, f, ms ? atol(ms) : 100);
    cf_json(rq, 200, "{s:i,s:i,s:b,s:f,s:s}", "rc", rc, "error", cf_fetch_error(f), "done",
            cf_done(f), "ms", now_ms() - t0, "errmsg", cf_fetch_errmsg(f));
}

static int orphan_child(cf_req *rq, void *arg)
{
    cf_fetch **slot = arg;
    *slot = cf_fetch_start(rq, "GET", cf_sprintf(rq, "%s%s", upstream, cf_arg(rq, "path")), NULL);
    cf_sleep(rq, 150); /* long enough for the call to reach the upstream */
    return 0;          /* ends without awaiting it */
}

static void orphan(cf_req *rq)
{
    if (!cf_arg(rq, "path"))
        return cf_abort(rq, 400);
    cf_fetch **slot = cf_alloc(rq, sizeof *slot);
    *slot = NULL;
    cf_task *t = cf_spawn(rq, orphan_child, slot);
    cf_await(rq, t, -1);
    int rc = cf_await(rq, *slot, 1000); /* already finished: cancelled */
    if (cf_fetch_error(*slot) == CF_ECANCELED)
        stats.orphan_cancelled++;
    cf_json(rq, 200, "{s:i,s:i}", "rc", rc, "error", cf_fetch_error(*slot));
}

static void slowfetch(cf_req *rq)
{
    const char *path = cf_arg(rq, "path");
    stats.slow_started++;
    cf_fetch *f = cf_fetch_start(rq, "GET", cf_sprintf(rq, "%s%s", upstream, path ? path : "/"),
                                 NULL);
    cf_g_set(rq, "slowfetch", f);
    cf_await(rq, f, -1);
    cf_json(rq, 200, "{s:i}", "error", cf_fetch_error(f));
}

static void teardown(cf_req *rq)
{
    cf_fetch *f = cf_g_get(rq, "slowfetch");
    if (!f)
        return;
    stats.slow_teardown++;
    if (cf_done(f) && cf_fetch_error(f) == CF_ECANCELED)
        stats.slow_cancelled++;
    else
        stats.slow_other++;
}

static void stats_view(cf_req *rq)
{
    cf_json(rq, 200, "{s:I,s:I,s:I,s:I,s:I}", "slow_started", (json_int_t)stats.slow_started,
            "slow_teardown", (json_int_t)stats.slow_teardown, "slow_cancelled",
            (json_int_t)stats.slow_cancelled, "slow_other", (json_int_t)stats.slow_other,
            "orphan_cancelled", (json_int_t)stats.orphan_cancelled);
}

int main(int argc, char **argv)
{
    const char *u = getenv("UPSTREAM");
    if (u)
        upstream = u;
    cf_app *app = cf_app_new();
    cf_app_set(app, CF_OPT_ACCESS_LOG, 0);
    cf_teardown_request(app, teardown);
    cf_route(app, "POST", "/fetch", fetch_one);
    cf_route(app, "POST", "/many", many);
    cf_route(app, "POST", "/fetch_all", fetch_all);
    cf_route(app, "GET", "/proxy", proxy);
    cf_route_set_threaded(cf_route_add(cf_app_group(app), "GET", "/threaded", proxy, "threaded"),
                          true);
    cf_route(app, "GET", "/await_timeout", await_timeout);
    cf_route(app, "GET", "/orphan", orphan);
    cf_route(app, "GET", "/slowfetch", slowfetch);
    cf_route(app, "GET", "/stats", stats_view);
    int rc = cf_run(app, argc, argv);
    cf_app_free(app);
    return rc;
}
