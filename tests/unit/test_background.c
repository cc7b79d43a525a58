/*
 * test_background.c — background tasks through the test client: the
 * response returns before the task ends, the task's effect shows after
 * cf_test_wait_background, its arguments are copied, it survives the
 * request (and the request's cancellation), it may start further background
 * tasks, failures do not disturb the worker, and the wait times out.
 */
#include <carafe.h>
#include <stdint.h>
#include <time.h>

#include "check.h"

static int done_count;
static int seen_value;
static int saw_cancel;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int slow_job(cf_req *ctx, void *arg)
{
    int v = *(int *)arg;
    if (cf_sleep(ctx, 200) != 0)
        saw_cancel++;
    seen_value = v;
    done_count++;
    return 0;
}

static int failing_job(cf_req *ctx, void *arg)
{
    (void)arg;
    cf_sleep(ctx, 10);
    done_count++;
    return CF_EFAIL;
}

static int chained_job(cf_req *ctx, void *arg)
{
    (void)arg;
    int v = 99;
    done_count++;
    return cf_background(ctx, "second", slow_job, &v, sizeof v);
}

static void start(cf_req *rq)
{
    int v = 42; /* on the handler's stack: must be copied */
    if (cf_background(rq, "slow", slow_job, &v, sizeof v) != 0)
        return cf_abort(rq, 500);
    cf_json(rq, 200, "{s:s}", "message", "Task started");
}

static void start_failing(cf_req *rq)
{
    cf_background(rq, "failing", failing_job, NULL, 0);
    cf_text(rq, 202, "ok");
}

static void start_chained(cf_req *rq)
{
    cf_background(rq, "chained", chained_job, NULL, 0);
    cf_text(rq, 202, "ok");
}

int main(void)
{
    cf_app *app = cf_app_new();
    cf_route(app, "GET", "/start-task", start);
    cf_route(app, "GET", "/failing", start_failing);
    cf_route(app, "GET", "/chained", start_chained);
    cf_test_client *tc = cf_test_client_new(app);

    uint64_t t0 = now_ms();
    cf_test_response *r = cf_test_get(tc, "/start-task");
    uint64_t answered = now_ms() - t0;
    CHECK_INT(cf_test_status(r), 200);
    CHECK(answered < 150); /* the response did not wait for the task */
    CHECK_INT(done_count, 0);
    CHECK_INT(cf_background_count(), 1);
    CHECK_INT(cf_test_wait_background(tc, 2000), 0);
    CHECK(now_ms() - t0 >= 190);
    CHECK_INT(done_count, 1);
    CHECK_INT(seen_value, 42);
    CHECK_INT(saw_cancel, 0); /* the request's end did not cancel it */
    CHECK_INT(cf_background_count(), 0);

    r = cf_test_get(tc, "/failing");
    CHECK_INT(cf_test_status(r), 202);
    CHECK_INT(cf_test_wait_background(tc, 2000), 0);
    CHECK_INT(done_count, 2);

    r = cf_test_get(tc, "/chained");
    CHECK_INT(cf_test_wait_background(tc, 2000), 0);
    CHECK_INT(done_count, 4); /* chained, then the task it started */
    CHECK_INT(seen_value, 99);

    r = cf_test_get(tc, "/start-task");
    CHECK_INT(cf_test_wait_background(tc, 50), CF_ETIMEDOUT);
    CHECK_INT(cf_test_wait_background(tc, 2000), 0);
    CHECK_INT(done_count, 5);

    r = cf_test_get(tc, "/hello-missing");
    CHECK_INT(cf_test_status(r), 404); /* the worker is fine */
    cf_test_client_free(tc);
    cf_app_free(app);
    return CHECK_DONE();
}
