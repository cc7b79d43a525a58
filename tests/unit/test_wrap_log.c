/*
 * test_wrap_log.c — app-wide wrappers (cf_wrap) and the app logger
 * (cf_log, cf_app_log) through the in-process test client:
 *   wrappers  see every response: a handler's 200, a 404, a 405, an
 *             automatic OPTIONS answer, a 308, a before hook's 401, an
 *             error handler's page, a refused path (400); they can change
 *             status and headers after cf_next; the first registered is
 *             the outermost; one may await before and after cf_next;
 *             route middleware still works inside; not calling cf_next
 *             answers without running the app (hooks and handler skipped,
 *             teardown still runs); cf_abort in a wrapper goes to the
 *             app's error handler; cf_next twice runs the app once; a
 *             wrapper that answers nothing is a 500; the handler timeout
 *             still gives 503;
 *   logging   the threshold (debug dropped at info, shown at debug;
 *             cf_log_enabled); one line per call with time, level, pid and
 *             the request id, which is the response's X-Request-Id (the
 *             client's own when it sent a sane one); "-" for cf_app_log;
 *             line breaks escaped; messages longer than the stack buffer
 *             whole; JSON lines parse, with method and path.
 */
#include <carafe.h>

#include "app/app.h"
#include "check.h"
#include "stderr_capture.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char trail[512];
static void mark(const char *s) { strncat(trail, s, sizeof trail - strlen(trail) - 1); }

static void outer(cf_req *rq)
{
    mark("<outer");
    if (strcmp(cf_path(rq), "/blocked") == 0) {
        cf_text(rq, 429, "slow down");
        return; /* the app does not run */
    }
    if (strcmp(cf_path(rq), "/teapot") == 0) {
        cf_abort(rq, 418);
        return;
    }
    if (strcmp(cf_path(rq), "/silent") == 0)
        return; /* neither answers nor runs the app: 500 */
    cf_next(rq);
    if (strcmp(cf_path(rq), "/twice") == 0)
        cf_next(rq); /* does nothing */
    char st[16];
    snprintf(st, sizeof st, "%d", cf_req_status(rq));
    cf_set_header(rq, "X-Seen-Status", st);
    mark("outer>");
}

static void inner(cf_req *rq)
{
    mark("<inner");
    if (cf_sleep(rq, 1) != 0)
        return;
    cf_next(rq);
    if (cf_sleep(rq, 1) != 0)
        return;
    if (cf_req_status(rq) == 404)
        cf_set_status(rq, 410); /* a wrapper changing what routing said */
    mark("inner>");
}

static void route_mw(cf_req *rq)
{
    mark("<mw");
    cf_next(rq);
    mark("mw>");
}

static void h_ok(cf_req *rq)
{
    mark("handler");
    cf_text(rq, 200, "ok");
}
static void h_slow(cf_req *rq)
{
    cf_sleep(rq, 2000);
    cf_text(rq, 200, "late");
}
static void h_logs(cf_req *rq)
{
    cf_log(rq, CF_LOG_DEBUG, "debug line %d", 1);
    cf_log(rq, CF_LOG_INFO, "info line %s", "two\nlines");
    cf_log(rq, CF_LOG_WARNING, "warning line");
    cf_log(rq, CF_LOG_ERROR, "error line");
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    cf_log(rq, CF_LOG_INFO, "big %s end", big);
    cf_text(rq, 200, "logged");
}

static void before(cf_req *rq)
{
    mark("<before");
    if (strcmp(cf_path(rq), "/locked") == 0)
        cf_abort(rq, 401);
}
static void teardown(cf_req *rq)
{
    (void)rq;
    mark("teardown");
}
static void on_teapot(cf_req *rq) { cf_text(rq, 418, "a teapot"); }

static void reset(void) { trail[0] = 0; }

static void test_wrappers(void)
{
    cf_app *app = cf_app_new();
    cf_wrap(app, outer);
    cf_wrap(app, inner);
    cf_before_request(app, before);
    cf_teardown_request(app, teardown);
    cf_errorhandler(app, 418, on_teapot);
    cf_route_use(cf_route(app, "GET", "/ok", h_ok), route_mw);
    cf_route(app, "GET", "/twice", h_ok);
    cf_route(app, "GET", "/locked", h_ok);
    cf_route(app, "GET", "/dir/", h_ok);
    cf_route(app, "GET", "/slow", h_slow);
    cf_app_set(app, CF_OPT_HANDLER_TIMEOUT, 100);
    cf_test_client *tc = cf_test_client_new(app);

    reset();
    cf_test_response *r = cf_test_get(tc, "/ok");
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(cf_test_header(r, "X-Seen-Status"), "200");
    CHECK_STR(trail, "<outer<inner<before<mwhandlermw>inner>outer>teardown");

    /* Routing's own answers pass through the wrappers. */
    reset();
    r = cf_test_get(tc, "/missing");
    CHECK_INT(cf_test_status(r), 410);
    CHECK_STR(cf_test_header(r, "X-Seen-Status"), "410"); /* the outer sees the inner's change */
    CHECK_STR(trail, "<outer<inner<beforeinner>outer>teardown");
    r = cf_test_request(tc, "POST", "/ok", NULL, NULL, 0);
    CHECK_INT(cf_test_status(r), 405);
    CHECK_STR(cf_test_header(r, "X-Seen-Status"), "405");
    CHECK_STR(cf_test_header(r, "Allow"), "GET, HEAD, OPTIONS");
    r = cf_test_request(tc, "OPTIONS", "/ok", NULL, NULL, 0);
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(cf_test_header(r, "X-Seen-Status"), "200");
    r = cf_test_get(tc, "/dir");
    CHECK_INT(cf_test_status(r), 308);
    CHECK_STR(cf_test_header(r, "X-Seen-Status"), "308");
    /* A before hook's refusal, and a refused path. */
    r = cf_test_get(tc, "/locked");
    CHECK_INT(cf_test_status(r), 401);
    CHECK_STR(cf_test_header(r, "X-Seen-Status"), "401");
    r = cf_test_get(tc, "/a/../ok");
    CHECK_INT(cf_test_status(r), 400);
    CHECK_STR(cf_test_header(r, "X-Seen-Status"), "400");

    /* Short-circuits. */
    reset();
    r = cf_test_get(tc, "/blocked");
    CHECK_INT(cf_test_status(r), 429);
    CHECK_STR(cf_test_body(r, NULL), "slow down");
    CHECK_STR(trail, "<outerteardown");
    r = cf_test_get(tc, "/teapot");
    CHECK_INT(cf_test_status(r), 418);
    CHECK_STR(cf_test_body(r, NULL), "a teapot");
    r = cf_test_get(tc, "/silent");
    CHECK_INT(cf_test_status(r), 500);
    reset();
    r = cf_test_get(tc, "/twice");
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(trail, "<outer<inner<beforehandlerinner>outer>teardown");

    /* The handler timeout, through the wrappers. */
    r = cf_test_get(tc, "/slow");
    CHECK_INT(cf_test_status(r), 503);
    CHECK_STR(cf_test_header(r, "X-Seen-Status"), "503");

    cf_test_client_free(tc);
    cf_app_free(app);
}

/* The line of `text` containing `needle`, copied (or NULL). */
static char *line_with(const char *text, const char *needle)
{
    const char *p = strstr(text, needle);
    if (!p)
        return NULL;
    const char *s = p;
    while (s > text && s[-1] != '\n')
        s--;
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    char *out = malloc(n + 1);
    memcpy(out, s, n);
    out[n] = 0;
    return out;
}

static void test_logging(void)
{
    cf_app *app = cf_app_new();
    cf_route(app, "GET", "/logs", h_logs);
    cf_test_client *tc = cf_test_client_new(app);
    CHECK(cf_log_enabled(app, CF_LOG_INFO));
    CHECK(!cf_log_enabled(app, CF_LOG_DEBUG));
    CHECK_INT(cf_log_set_level(app, (cf_log_level)7), CF_EINVAL);

    capture c;
    capture_begin(&c);
    cf_test_response *r = cf_test_get(tc, "/logs");
    cf_app_log(app, CF_LOG_WARNING, "no request here");
    char *text = capture_end(&c);
    CHECK_INT(cf_test_status(r), 200);
    const char *id = cf_test_header(r, "X-Request-Id");
    CHECK(id && strlen(id) == 16);
    CHECK(strstr(text, "debug line") == NULL);
    char pid[32], want[128];
    snprintf(pid, sizeof pid, " %d ", (int)getpid());
    char *l = line_with(text, "info line");
    snprintf(want, sizeof want, " INFO %d %s info line two\\nlines", (int)getpid(), id ? id : "?");
    CHECK(l && strstr(l, want) && l[4] == '-' && l[10] == 'T' && strstr(l, "Z "));
    free(l);
    l = line_with(text, "warning line");
    CHECK(l && strstr(l, " WARNING ") && strstr(l, pid));
    free(l);
    l = line_with(text, "error line");
    CHECK(l && strstr(l, " ERROR "));
    free(l);
    l = line_with(text, "big xxx");
    CHECK(l && strstr(l, "xxx end") && strlen(l) > 3000);
    free(l);
    snprintf(want, sizeof want, " WARNING %d - no request here", (int)getpid());
    CHECK(strstr(text, want) != NULL);
    free(text);

    /* The threshold lowered; the client's own request id. */
    CHECK_INT(cf_log_set_level(app, CF_LOG_DEBUG), 0);
    const char *hdrs[] = {"X-Request-Id: trace-42", NULL};
    capture_begin(&c);
    r = cf_test_request(tc, "GET", "/logs", hdrs, NULL, 0);
    text = capture_end(&c);
    CHECK_STR(cf_test_header(r, "X-Request-Id"), "trace-42");
    CHECK(strstr(text, " DEBUG ") && strstr(text, "trace-42 debug line 1"));
    free(text);

    /* JSON lines (--log-format json). */
    CHECK_INT(cf_log_set_level(app, CF_LOG_ERROR), 0);
    app->log_json = true;
    capture_begin(&c);
    r = cf_test_get(tc, "/logs");
    cf_app_log(app, CF_LOG_ERROR, "quote \" and \\ backslash");
    text = capture_end(&c);
    char *first = line_with(text, "error line"), *second = line_with(text, "backslash");
    json_error_t err;
    json_t *j = first ? json_loads(first, 0, &err) : NULL;
    CHECK(j != NULL);
    CHECK_STR(json_string_value(json_object_get(j, "level")), "error");
    CHECK_STR(json_string_value(json_object_get(j, "message")), "error line");
    CHECK_STR(json_string_value(json_object_get(j, "method")), "GET");
    CHECK_STR(json_string_value(json_object_get(j, "path")), "/logs");
    CHECK_STR(json_string_value(json_object_get(j, "request_id")), cf_test_header(r, "X-Request-Id"));
    CHECK_INT(json_integer_value(json_object_get(j, "pid")), getpid());
    CHECK(strstr(text, "info line") == NULL);
    json_decref(j);
    j = second ? json_loads(second, 0, &err) : NULL;
    CHECK(j && json_is_null(json_object_get(j, "request_id")));
    CHECK_STR(json_string_value(json_object_get(j, "message")), "quote \" and \\ backslash");
    json_decref(j);
    free(first);
    free(second);
    free(text);

    cf_test_client_free(tc);
    cf_app_free(app);
}

int main(void)
{
    test_wrappers();
    test_logging();
    return CHECK_DONE();
}
