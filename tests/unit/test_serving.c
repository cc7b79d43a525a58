/*
 * test_serving.c — serving hooks (cf_before_serving, cf_after_serving)
 * through the in-process test client, which runs them as a worker does:
 *   before_serving  run in order in cf_test_client_new, before any request;
 *                   they may sleep, spawn and await children, allocate,
 *                   log and query the database; what they set up is there
 *                   for the first request;
 *   after_serving   run in reverse order in cf_test_client_free, after the
 *                   background tasks ended; they may await too;
 *   failures        a failing before_serving hook: cf_test_client_new
 *                   returns NULL, the hook's name and message are logged,
 *                   later hooks and every after_serving hook are skipped; a
 *                   failing after_serving hook is logged and the next runs.
 */
#include <carafe.h>

#include "check.h"
#include "stderr_capture.h"

#include <stdlib.h>
#include <string.h>

static char trail[256];
static void mark(const char *s) { strncat(trail, s, sizeof trail - strlen(trail) - 1); }
static int warm;

static int child(cf_req *rq, void *arg)
{
    cf_sleep(rq, 5);
    *(int *)arg = 7;
    return 0;
}

static int warm_cache(cf_req *rq)
{
    if (cf_sleep(rq, 20) != 0)
        return CF_ECANCELED;
    int *v = cf_alloc(rq, sizeof *v);
    *v = 0;
    cf_task *t = cf_spawn(rq, child, v);
    if (!t || cf_await(rq, t, 1000) != 0)
        return CF_EFAIL;
    warm = *v;
    cf_log(rq, CF_LOG_INFO, "cache warmed");
    mark("warm ");
    return 0;
}

static int open_db(cf_req *rq)
{
    if (!cf_db_query(rq, "CREATE TABLE seen (x INTEGER)") ||
        !cf_db_query(rq, "INSERT INTO seen VALUES ($1)", cf_v_int(5)))
        return cf_db_error(rq);
    mark("db ");
    return 0;
}

static int flush_buffer(cf_req *rq)
{
    if (cf_sleep(rq, 10) != 0)
        return CF_ECANCELED;
    mark("flush ");
    return 0;
}

static int close_db(cf_req *rq)
{
    cf_rows *rows = cf_db_query(rq, "SELECT count(*) FROM seen");
    mark(rows && cf_row_int(rows, 0) == 1 ? "close " : "close? ");
    return 0;
}

static void h_state(cf_req *rq)
{
    cf_rows *rows = cf_db_query(rq, "SELECT x FROM seen");
    cf_textf(rq, 200, "warm=%d x=%lld", warm, rows ? (long long)cf_row_int(rows, 0) : -1LL);
}

static int bg(cf_req *rq, void *arg)
{
    (void)arg;
    cf_sleep(rq, 30);
    mark("bg ");
    return 0;
}
static void h_bg(cf_req *rq)
{
    cf_background(rq, "bg", bg, NULL, 0);
    cf_text(rq, 202, "started");
}

static void test_hooks(void)
{
    cf_app *app = cf_app_new();
    CHECK_INT(cf_db_open(app, "sqlite://:memory:"), 0);
    cf_before_serving(app, warm_cache);
    cf_before_serving(app, open_db);
    cf_after_serving(app, close_db);
    cf_after_serving(app, flush_buffer);
    cf_route(app, "GET", "/state", h_state);
    cf_route(app, "POST", "/bg", h_bg);
    trail[0] = 0;
    warm = 0;
    capture c;
    capture_begin(&c);
    cf_test_client *tc = cf_test_client_new(app);
    char *text = capture_end(&c);
    CHECK(tc != NULL);
    CHECK_STR(trail, "warm db ");
    CHECK(strstr(text, " INFO ") && strstr(text, " - cache warmed"));
    free(text);
    CHECK_STR(cf_test_body(cf_test_get(tc, "/state"), NULL), "warm=7 x=5");
    CHECK_INT(cf_test_status(cf_test_request(tc, "POST", "/bg", NULL, NULL, 0)), 202);
    cf_test_client_free(tc);
    /* The background task first, then after_serving, newest first. */
    CHECK_STR(trail, "warm db bg flush close ");
    cf_app_free(app);
}

static int ok_hook(cf_req *rq)
{
    (void)rq;
    mark("ok ");
    return 0;
}
static int failing_hook(cf_req *rq)
{
    mark("fail ");
    cf_fail(rq, "the database is down");
    return CF_EFAIL;
}
static int never_hook(cf_req *rq)
{
    (void)rq;
    mark("never ");
    return 0;
}
static int failing_stop(cf_req *rq)
{
    (void)rq;
    mark("stopfail ");
    return CF_ETIMEDOUT;
}

static void test_failures(void)
{
    cf_app *app = cf_app_new();
    cf_before_serving(app, ok_hook);
    cf_before_serving(app, failing_hook);
    cf_before_serving(app, never_hook);
    cf_after_serving(app, never_hook);
    trail[0] = 0;
    capture c;
    capture_begin(&c);
    cf_test_client *tc = cf_test_client_new(app);
    char *text = capture_end(&c);
    CHECK(tc == NULL);
    CHECK_STR(trail, "ok fail ");
    CHECK(strstr(text, " ERROR ") &&
          strstr(text, "before_serving hook failing_hook failed: failed: the database is down"));
    free(text);
    /* The thread can have a client again. */
    cf_app *ok = cf_app_new();
    tc = cf_test_client_new(ok);
    CHECK(tc != NULL);
    cf_test_client_free(tc);
    cf_app_free(ok);
    cf_app_free(app);

    app = cf_app_new();
    cf_after_serving(app, ok_hook);
    cf_after_serving(app, failing_stop);
    trail[0] = 0;
    tc = cf_test_client_new(app);
    capture_begin(&c);
    cf_test_client_free(tc);
    text = capture_end(&c);
    CHECK_STR(trail, "stopfail ok ");
    CHECK(strstr(text, "after_serving hook failing_stop failed: timed out"));
    free(text);
    cf_app_free(app);
}

int main(void)
{
    test_hooks();
    test_failures();
    return CHECK_DONE();
}
