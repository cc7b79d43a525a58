/*
 * testapp — the one app the integration tests (tests/integration/) start.
 * Each endpoint exists to exercise one behaviour over a real socket:
 *
 *   GET  /hello                 200 "Hello, World!"
 *   *    /echo                  200, the body as received (de-chunked) with the
 *                               request's Content-Type
 *   GET  /sleep?ms=N            cf_sleep(N), then 200 "slept N"
 *   POST /json                  the JSON body echoed back; 400 {"error": ...}
 *                               with cf_errmsg when it is not JSON
 *   POST /form                  the urlencoded fields back as a JSON object
 *   GET  /cookie/set?name=&value=   sets that cookie
 *   GET  /cookie/get?name=      {"name": n, "value": cf_cookie(n) or null}
 *   GET  /headers               every request header as [[name, value], ...]
 *   GET  /args                  the query arguments as a JSON object (cf_arg)
 *   GET  /redirect              302 to /hello (or to ?to=)
 *   GET  /user/<int:id>         {"id": id}
 *   GET  /files/<path:p>        {"param": p, "path": cf_path}
 *   GET  /a/<path:rest>, /secret   routes a dot-segment attack would reach
 *   GET  /slowcancel            sleeps 5 s; the teardown hook counts whether
 *                               the request ended cancelled (CF_ECANCELED)
 *   GET  /stats                 those counters as JSON
 *   GET  /boom                  returns without answering: 500
 *   GET  /big?n=BYTES           n bytes (default 1 MiB) of a fixed pattern:
 *                               byte i = (i * 31 + (i >> 10)) & 0xff
 *   GET|POST /fields            every query (GET) or form (POST) field in
 *                               order and every value of each name
 *   POST /multipart             the parsed multipart form as JSON (fields, and
 *                               per file field, name, type, size, spooled)
 *   GET  /secure-filename?name= cf_secure_filename of name
 *   POST /small-body            route body limit 1024; 200 "got N"
 *   GET  /pid                   the worker's process id (which worker answered)
 *   GET  /segfault              writes through a wild pointer (SIGSEGV): the
 *                               worker drops this request's connection,
 *                               drains its others and exits 70
 *   GET  /abort                 calls abort() (SIGABRT): the same
 *   GET  /bigframe              a 1 MiB local array on a 64 KiB coroutine
 *                               stack: reported as a stack overflow, the same
 *   GET  /ticks?n=N&ms=M        Server-Sent Events "tick i", M ms apart (the
 *                               nginx test: events pass the proxy at once)
 *   GET  /ws                    WebSocket echo (the nginx test: upgrades pass)
 *
 * With CF_TEST_JSON_ERRORS set, 400, 404, 405 and 413 are answered by an
 * error handler as JSON {"status", "error"}.
 *
 * Limits come from the environment so one binary serves every test:
 * CF_TEST_HEADER_TIMEOUT_MS, CF_TEST_BODY_TIMEOUT_MS, CF_TEST_KEEPALIVE_MS,
 * CF_TEST_MAX_CONNECTIONS, CF_TEST_MAX_BODY. Counters are plain globals:
 * this app runs with one worker, where everything is on one thread.
 */
#include <carafe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct {
    long slow_started, slow_teardown, slow_cancelled, slow_other_error;
    long sleep_cancelled;
    long requests;
} stats;

static void hello(cf_req *rq) { cf_text(rq, 200, "Hello, World!"); }

static void echo(cf_req *rq)
{
    size_t len;
    const char *body = cf_body(rq, &len);
    const char *type = cf_header(rq, "Content-Type");
    cf_send(rq, 200, type ? type : "application/octet-stream", body, len);
}

static void sleep_ms(cf_req *rq)
{
    const char *arg = cf_arg(rq, "ms");
    char *end = NULL;
    long ms = arg ? strtol(arg, &end, 10) : 0;
    if (!arg || *end || ms < 0 || ms > 60000)
        return cf_json(rq, 400, "{s:s}", "error", "ms must be an integer from 0 to 60000");
    if (cf_sleep(rq, (uint64_t)ms) != 0)
        return cf_abort(rq, 503);
    cf_textf(rq, 200, "slept %ld", ms);
}

static void json_echo(cf_req *rq)
{
    json_t *j = cf_get_json(rq);
    if (!j)
        return cf_json(rq, 400, "{s:s}", "error", cf_errmsg(rq));
    cf_json_value(rq, 200, json_incref(j));
}

/* Decode a urlencoded key (for listing the keys; values come from Carafe). */
static char *decode_key(cf_req *rq, const char *s, size_t n)
{
    char *out = cf_alloc(rq, n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            out[o++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = 0;
    return out;
}

/* {key: getter(key)} for every key of the urlencoded string s. */
static json_t *fields_object(cf_req *rq, const char *s, size_t len,
                             const char *(*get)(cf_req *, const char *))
{
    json_t *obj = json_object();
    const char *end = s + len;
    while (s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(s, '=', (size_t)(stop - s));
        const char *kend = eq ? eq : stop;
        if (kend > s) {
            char *key = decode_key(rq, s, (size_t)(kend - s));
            const char *v = get(rq, key);
            json_object_set_new(obj, key, v ? json_string(v) : json_null());
        }
        s = stop + 1;
    }
    return obj;
}

static void form(cf_req *rq)
{
    size_t len;
    const char *body = cf_body(rq, &len);
    cf_json_value(rq, 200, fields_object(rq, body, len, cf_form));
}

static void args(cf_req *rq)
{
    const char *q = cf_query_string(rq);
    cf_json_value(rq, 200, fields_object(rq, q, strlen(q), cf_arg));
}

/* Every query field (GET) or form field (POST) in order, as [name, value]
 * pairs, and for each name all its values: {"items": [...], "lists": {}}. */
static void fields(cf_req *rq)
{
    bool get = strcmp(cf_method(rq), "GET") == 0;
    json_t *items = json_array(), *lists = json_object();
    const char *name, *value;
    for (size_t i = 0; get ? cf_arg_at(rq, i, &name, &value) : cf_form_at(rq, i, &name, &value); i++) {
        json_array_append_new(items, json_pack("[s,s]", name, value));
        size_t n;
        const char **all = get ? cf_arg_list(rq, name, &n) : cf_form_list(rq, name, &n);
        json_t *vals = json_array();
        for (size_t j = 0; j < n; j++)
            json_array_append_new(vals, json_string(all[j]));
        json_object_set_new(lists, name, vals);
    }
    cf_json_value(rq, 200, json_pack("{s:o,s:o}", "items", items, "lists", lists));
}

/* POST /multipart: the parsed form, {"form": [[name, value]...], "files":
 * [[field, filename, content_type, size, first bytes as latin-1]...]}. */
static void multipart(cf_req *rq)
{
    if (cf_form_parse(rq) != 0)
        return; /* answered 400/413 with the reason */
    json_t *form = json_array(), *files = json_array();
    const char *name, *value;
    for (size_t i = 0; cf_form_at(rq, i, &name, &value); i++)
        json_array_append_new(form, json_pack("[s,s]", name, value));
    for (const cf_file *const *f = cf_files(rq, NULL, NULL); *f; f++)
        json_array_append_new(files, json_pack("[s,s,s,I,b]", (*f)->field, (*f)->filename,
                                               (*f)->content_type, (json_int_t)(*f)->size,
                                               (*f)->path != NULL));
    cf_json_value(rq, 200, json_pack("{s:o,s:o}", "form", form, "files", files));
}

static void secure_filename(cf_req *rq)
{
    const char *n = cf_arg(rq, "name");
    cf_text(rq, 200, cf_secure_filename(rq, n ? n : ""));
}

static void cookie_set(cf_req *rq)
{
    const char *name = cf_arg(rq, "name"), *value = cf_arg(rq, "value");
    if (!name || !value)
        return cf_abort(rq, 400);
    cf_cookie_opts o = {.http_only = true, .same_site = "Lax"};
    if (cf_set_cookie(rq, name, value, &o) != 0)
        return cf_abort(rq, 400);
    cf_json(rq, 200, "{s:s,s:s}", "set", name, "value", value);
}

static void cookie_get(cf_req *rq)
{
    const char *name = cf_arg(rq, "name");
    if (!name)
        return cf_abort(rq, 400);
    const char *v = cf_cookie(rq, name);
    cf_json(rq, 200, "{s:s,s:s?}", "name", name, "value", v);
}

static void headers(cf_req *rq)
{
    json_t *arr = json_array();
    const char *name, *value;
    for (size_t i = 0; cf_header_at(rq, i, &name, &value); i++)
        json_array_append_new(arr, json_pack("[s,s]", name, value));
    cf_json_value(rq, 200, arr);
}

static void redirect(cf_req *rq)
{
    const char *to = cf_arg(rq, "to");
    cf_redirect(rq, 302, to ? to : "/hello");
}

static void user(cf_req *rq) { cf_json(rq, 200, "{s:I}", "id", (json_int_t)cf_param_int(rq, "id")); }

static void files(cf_req *rq)
{
    cf_json(rq, 200, "{s:s,s:s}", "param", cf_param(rq, "p"), "path", cf_path(rq));
}

static void a_rest(cf_req *rq) { cf_json(rq, 200, "{s:s}", "a", cf_param(rq, "rest")); }

static void secret(cf_req *rq) { cf_text(rq, 200, "SECRET"); }

static void slowcancel(cf_req *rq)
{
    stats.slow_started++;
    if (cf_sleep(rq, 5000) != 0)
        return; /* cancelled: nobody to answer */
    cf_text(rq, 200, "slept 5000");
}

static void stats_view(cf_req *rq)
{
    cf_json(rq, 200, "{s:I,s:I,s:I,s:I,s:I,s:I}", "slow_started", (json_int_t)stats.slow_started,
            "slow_teardown", (json_int_t)stats.slow_teardown, "slow_cancelled",
            (json_int_t)stats.slow_cancelled, "slow_other_error",
            (json_int_t)stats.slow_other_error, "sleep_cancelled",
            (json_int_t)stats.sleep_cancelled, "requests", (json_int_t)stats.requests);
}

static void boom(cf_req *rq) { (void)rq; /* no response: the framework answers 500 */ }

static void big(cf_req *rq)
{
    const char *arg = cf_arg(rq, "n");
    size_t n = arg ? (size_t)strtoull(arg, NULL, 10) : (size_t)1 << 20;
    if (n > ((size_t)64 << 20))
        return cf_abort(rq, 400);
    unsigned char *buf = cf_alloc(rq, n ? n : 1);
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)((i * 31 + (i >> 10)) & 0xff);
    cf_send(rq, 200, "application/octet-stream", buf, n);
}

static void small_body(cf_req *rq)
{
    size_t len;
    cf_body(rq, &len);
    cf_textf(rq, 200, "got %zu", len);
}

static void pid(cf_req *rq) { cf_textf(rq, 200, "%ld", (long)getpid()); }

/* A wild write (not NULL, which UBSan would report before the fault): a
 * real SIGSEGV in handler code. */
static int *volatile wild_pointer = (int *)16;

static void segfault(cf_req *rq)
{
    *wild_pointer = 1;
    cf_text(rq, 200, "still alive?");
}

static void bigframe(cf_req *rq)
{
    char buf[1024 * 1024];
    memset(buf, 'x', sizeof buf);
    snprintf(buf, sizeof buf, "%d", (int)getpid());
    cf_text(rq, 200, buf);
}

static void abort_view(cf_req *rq)
{
    (void)rq;
    abort();
}

static void count_request(cf_req *rq)
{
    (void)rq;
    stats.requests++;
}

static void teardown(cf_req *rq)
{
    const char *ep = cf_endpoint(rq);
    if (!ep)
        return;
    int err = cf_req_error(rq);
    if (strcmp(ep, "slowcancel") == 0) {
        stats.slow_teardown++;
        if (err == CF_ECANCELED)
            stats.slow_cancelled++;
        else if (err != 0)
            stats.slow_other_error++;
    } else if (strcmp(ep, "sleep_ms") == 0 && err == CF_ECANCELED) {
        stats.sleep_cancelled++;
    }
}

static void opt_from_env(cf_app *app, const char *var, cf_option opt)
{
    const char *v = getenv(var);
    if (!v || !*v)
        return;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (*end || cf_app_set(app, opt, n) != 0) {
        fprintf(stderr, "testapp: bad %s=%s\n", var, v);
        exit(2);
    }
}

static int tick_events(cf_req *rq, void *arg)
{
    long *nm = arg;
    for (long i = 1; i <= nm[0]; i++) {
        char data[32];
        snprintf(data, sizeof data, "tick %ld", i);
        int rc = cf_sse_send(rq, NULL, NULL, data);
        if (rc == 0 && i < nm[0])
            rc = cf_sleep(rq, (uint64_t)nm[1]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void ticks(cf_req *rq)
{
    long *nm = cf_alloc(rq, 2 * sizeof *nm);
    const char *n = cf_arg(rq, "n"), *ms = cf_arg(rq, "ms");
    nm[0] = n ? atol(n) : 3;
    nm[1] = ms ? atol(ms) : 0;
    cf_sse(rq, tick_events, nm);
}

static int echo_session(cf_req *rq, void *arg)
{
    (void)arg;
    cf_ws_message m;
    int rc;
    while ((rc = cf_ws_recv(rq, &m, -1)) == 0 && (rc = cf_ws_send(rq, m.data, m.len, m.binary)) == 0)
        ;
    return rc == CF_ECLOSED ? 0 : rc;
}

static void ws_echo(cf_req *rq) { cf_websocket(rq, echo_session, NULL); }

/* POST /upload: the body read as it arrives in 16 KiB reads, never kept:
 * its length, a checksum (sum of bytes), and the largest read. */
static void upload(cf_req *rq)
{
    char buf[16384];
    unsigned long long sum = 0, total = 0;
    long n, largest = 0;
    while ((n = cf_body_read(rq, buf, sizeof buf)) > 0) {
        for (long i = 0; i < n; i++)
            sum += (unsigned char)buf[i];
        total += (unsigned long long)n;
        if (n > largest)
            largest = n;
    }
    if (n == CF_ETOOBIG)
        return cf_abort(rq, 413);
    if (n == CF_ETIMEDOUT)
        return cf_abort(rq, 408);
    if (n < 0)
        return cf_abort(rq, 400);
    cf_json(rq, 200, "{sI sI sI}", "bytes", (json_int_t)total, "sum", (json_int_t)sum, "largest",
            (json_int_t)largest);
}

/* CF_TEST_JSON_ERRORS=1: a JSON API's error pages, for every refusal the
 * app can see (the server's own 413 and path refusals included). */
static void json_error(cf_req *rq)
{
    int status = cf_req_status(rq);
    cf_json(rq, status, "{s:i,s:s}", "status", status, "error", cf_errmsg(rq) ? cf_errmsg(rq) : "");
}

/* POST /upload/early: answers before reading the body. */
static void upload_early(cf_req *rq) { cf_text(rq, 200, "not reading that"); }

int main(int argc, char **argv)
{
    cf_app *app = cf_app_new();
    if (getenv("CF_TEST_JSON_ERRORS")) {
        static const int statuses[] = {400, 404, 405, 413};
        for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++)
            cf_errorhandler(app, statuses[i], json_error);
    }
    opt_from_env(app, "CF_TEST_HEADER_TIMEOUT_MS", CF_OPT_HEADER_TIMEOUT);
    opt_from_env(app, "CF_TEST_BODY_TIMEOUT_MS", CF_OPT_BODY_TIMEOUT);
    opt_from_env(app, "CF_TEST_KEEPALIVE_MS", CF_OPT_KEEPALIVE_TIMEOUT);
    opt_from_env(app, "CF_TEST_MAX_CONNECTIONS", CF_OPT_MAX_CONNECTIONS);
    opt_from_env(app, "CF_TEST_MAX_BODY", CF_OPT_MAX_BODY);

    cf_before_request(app, count_request);
    cf_teardown_request(app, teardown);

    cf_route(app, "GET", "/hello", hello);
    cf_route(app, "*", "/echo", echo);
    cf_route(app, "GET", "/sleep", sleep_ms);
    cf_route(app, "POST", "/json", json_echo);
    cf_route(app, "POST", "/form", form);
    cf_route(app, "GET", "/args", args);
    cf_route(app, "GET", "/fields", fields);
    cf_route(app, "POST", "/fields", fields);
    cf_route_set_max_body(cf_route(app, "POST", "/multipart", multipart), 64 * 1024 * 1024);
    cf_route(app, "GET", "/secure-filename", secure_filename);
    cf_route(app, "GET", "/cookie/set", cookie_set);
    cf_route(app, "GET", "/cookie/get", cookie_get);
    cf_route(app, "GET", "/headers", headers);
    cf_route(app, "GET", "/redirect", redirect);
    cf_route(app, "GET", "/user/<int:id>", user);
    cf_route(app, "GET", "/files/<path:p>", files);
    cf_route(app, "GET", "/a/<path:rest>", a_rest);
    cf_route(app, "GET", "/secret", secret);
    cf_route(app, "GET", "/slowcancel", slowcancel);
    cf_route(app, "GET", "/stats", stats_view);
    cf_route(app, "GET", "/boom", boom);
    cf_route(app, "GET", "/big", big);
    cf_route(app, "GET", "/pid", pid);
    cf_route(app, "GET", "/segfault", segfault);
    cf_route(app, "GET", "/abort", abort_view);
    cf_route(app, "GET", "/bigframe", bigframe);
    cf_route(app, "GET", "/ticks", ticks);
    cf_route(app, "GET", "/ws", ws_echo);
    cf_route *up = cf_route(app, "POST", "/upload", upload);
    cf_route_set_stream_body(up, true);
    cf_route_set_max_body(up, 64 * 1024 * 1024);
    cf_route_set_stream_body(cf_route(app, "POST", "/upload/early", upload_early), true);
    cf_route_set_max_body(cf_route(app, "POST", "/small-body", small_body), 1024);

    int rc = cf_run(app, argc, argv);
    cf_app_free(app);
    return rc;
}
