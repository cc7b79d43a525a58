/*
 * test_queue.c — the SQLite task queue through the test client: enqueue
 * from a view and the handler runs with the payload; failures retry with
 * exponential back-off; jobs failing max_attempts times become dead
 * letters, which can be listed and re-queued; a delayed job does not run
 * early; 10,000 jobs run exactly once each; a periodic job is enqueued once
 * per period.
 */
#include <carafe.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define NBULK 10000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int seen[NBULK];
static int bulk_running, bulk_max_running;
static int echo_value, echo_runs;
static int64_t flaky_times[8];
static int flaky_runs;
static int doomed_runs;
static bool doomed_ok;
static int64_t delayed_ran_at;
static int periodic_runs, cron_runs;

static int count_job(cf_req *rq, const cf_job *job)
{
    json_int_t i = json_integer_value(json_object_get(job->data, "i"));
    if (i >= 0 && i < NBULK)
        seen[i]++;
    bulk_running++;
    if (bulk_running > bulk_max_running)
        bulk_max_running = bulk_running;
    if (i % 7 == 0)
        cf_sleep(rq, 1); /* some of them suspend */
    bulk_running--;
    return 0;
}

static int echo_job(cf_req *rq, const cf_job *job)
{
    cf_sleep(rq, 5);
    echo_value = (int)json_integer_value(json_object_get(job->data, "v"));
    echo_runs++;
    CHECK_INT(job->attempt, 1);
    CHECK_STR(job->name, "echo");
    return 0;
}

static int flaky_job(cf_req *rq, const cf_job *job)
{
    if (flaky_runs < 8)
        flaky_times[flaky_runs] = now_ms();
    flaky_runs++;
    CHECK_INT(job->attempt, flaky_runs);
    if (job->attempt < 3) {
        cf_fail(rq, "not yet");
        return CF_EFAIL;
    }
    return 0;
}

static int doomed_job(cf_req *rq, const cf_job *job)
{
    (void)rq;
    (void)job;
    doomed_runs++;
    return doomed_ok ? 0 : CF_EFAIL;
}

static int delayed_job(cf_req *rq, const cf_job *job)
{
    (void)rq;
    (void)job;
    delayed_ran_at = now_ms();
    return 0;
}

static int periodic_job(cf_req *rq, const cf_job *job)
{
    (void)rq;
    CHECK(json_integer_value(json_object_get(job->data, "period_start")) > 0);
    periodic_runs++;
    return 0;
}

static int cron_job(cf_req *rq, const cf_job *job)
{
    (void)rq;
    /* The payload names the matching minute. */
    CHECK(json_integer_value(json_object_get(job->data, "period_start")) % 60 == 0);
    cron_runs++;
    return 0;
}

/* POST /enqueue/<name>?delay=ms&n=count  body: payload; n > 1 sends {"i": k} */
static void enqueue_view(cf_req *rq)
{
    const char *name = cf_param(rq, "name");
    const char *d = cf_arg(rq, "delay"), *n = cf_arg(rq, "n");
    long count = n ? atol(n) : 1;
    size_t len;
    const char *body = cf_body(rq, &len);
    int64_t id = 0;
    for (long k = 0; k < count; k++) {
        const char *payload = count > 1 ? cf_sprintf(rq, "{\"i\": %ld}", k) : (len ? body : NULL);
        id = cf_enqueue(rq, name, payload, d ? atol(d) : 0);
        if (id <= 0)
            return cf_json(rq, 500, "{s:s}", "error", cf_strerror((int)id));
    }
    cf_json(rq, 201, "{s:I}", "id", (json_int_t)id);
}

static void dead_view(cf_req *rq)
{
    json_t *dead = cf_queue_dead(rq, cf_arg(rq, "name"), 0);
    if (!dead)
        return cf_abort(rq, 500);
    cf_json_value(rq, 200, dead);
}

static void requeue_view(cf_req *rq)
{
    int64_t n = cf_queue_requeue(rq, cf_param_int(rq, "id"));
    cf_json(rq, n < 0 ? 500 : 200, "{s:I}", "requeued", (json_int_t)n);
}

static void pending_view(cf_req *rq)
{
    cf_json(rq, 200, "{s:I}", "pending", (json_int_t)cf_queue_pending(rq, cf_arg(rq, "name")));
}

static void sleep_view(cf_req *rq)
{
    cf_sleep(rq, (uint64_t)atol(cf_arg(rq, "ms")));
    cf_text(rq, 200, "ok");
}

static void suite(const char *url)
{
    fprintf(stderr, "== %s\n", url);
    memset(seen, 0, sizeof seen);
    bulk_running = bulk_max_running = echo_value = echo_runs = flaky_runs = doomed_runs = 0;
    periodic_runs = 0;
    cron_runs = 0;
    doomed_ok = false;
    delayed_ran_at = 0;
    cf_app *app = cf_app_new();
    CHECK_INT(cf_queue_open(app, "mysql://nope"), CF_EDBURL);
    CHECK_INT(cf_queue_open(app, url), 0);
    CHECK_INT(cf_queue_handler(app, "count", count_job, &(cf_queue_opts){.concurrency = 64}), 0);
    CHECK_INT(cf_queue_handler(app, "echo", echo_job, NULL), 0);
    CHECK_INT(cf_queue_handler(app, "flaky", flaky_job,
                               &(cf_queue_opts){.max_attempts = 5, .backoff_ms = 100}),
              0);
    CHECK_INT(cf_queue_handler(app, "doomed", doomed_job,
                               &(cf_queue_opts){.max_attempts = 3, .backoff_ms = 20}),
              0);
    CHECK_INT(cf_queue_handler(app, "delayed", delayed_job, NULL), 0);
    CHECK_INT(cf_queue_handler(app, "tick", periodic_job, NULL), 0);
    CHECK_INT(cf_queue_periodic(app, "tick", 1), 0);
    CHECK_INT(cf_queue_periodic(app, "nohandler", 1), CF_EINVAL);
    CHECK_INT(cf_queue_handler(app, "minutely", cron_job, NULL), 0);
    CHECK_INT(cf_queue_cron(app, "minutely", "* * * * *"), 0);
    CHECK_INT(cf_queue_cron(app, "minutely", "61 * * * *"), CF_EINVAL);
    cf_route(app, "POST", "/enqueue/<name>", enqueue_view);
    cf_route(app, "GET", "/dead", dead_view);
    cf_route(app, "POST", "/requeue/<int:id>", requeue_view);
    cf_route(app, "GET", "/pending", pending_view);
    cf_route(app, "GET", "/sleep", sleep_view);
    cf_test_client *tc = cf_test_client_new(app);

    /* enqueue and run, with the payload */
    cf_test_response *r = cf_test_post_json(tc, "/enqueue/echo", "{\"v\": 42}");
    CHECK_INT(cf_test_status(r), 201);
    CHECK(json_integer_value(json_object_get(cf_test_json(r), "id")) > 0);
    r = cf_test_post_json(tc, "/enqueue/echo", "{not json");
    CHECK_INT(cf_test_status(r), 500); /* CF_EINVAL: the payload is checked */
    CHECK_INT(cf_test_run_queue(tc, 5000), 0);
    CHECK_INT(echo_runs, 1);
    CHECK_INT(echo_value, 42);

    /* retries with back-off: attempts at 0, +100, +200 ms */
    r = cf_test_post_json(tc, "/enqueue/flaky", "{}");
    CHECK_INT(cf_test_run_queue(tc, 5000), 0);
    CHECK_INT(flaky_runs, 3);
    int64_t gap1 = flaky_times[1] - flaky_times[0], gap2 = flaky_times[2] - flaky_times[1];
    CHECK(gap1 >= 95 && gap1 < 600);
    CHECK(gap2 >= 195 && gap2 < 800);
    if (!(gap1 >= 95 && gap2 >= 195))
        fprintf(stderr, "gaps %lld %lld\n", (long long)gap1, (long long)gap2);

    /* dead letters: three attempts, then listed; requeued, it runs again */
    r = cf_test_post_json(tc, "/enqueue/doomed", "{\"to\": \"a@example.com\"}");
    CHECK_INT(cf_test_run_queue(tc, 5000), 0);
    CHECK_INT(doomed_runs, 3);
    r = cf_test_get(tc, "/dead?name=doomed");
    CHECK_INT(cf_test_status(r), 200);
    json_t *dead = cf_test_json(r);
    CHECK_INT(json_array_size(dead), 1);
    json_t *d0 = json_array_get(dead, 0);
    CHECK_STR(json_string_value(json_object_get(d0, "payload")), "{\"to\": \"a@example.com\"}");
    CHECK_INT(json_integer_value(json_object_get(d0, "attempts")), 3);
    CHECK(json_string_value(json_object_get(d0, "error")) != NULL);
    int64_t dead_id = json_integer_value(json_object_get(d0, "id"));
    r = cf_test_get(tc, "/pending");
    CHECK_INT(json_integer_value(json_object_get(cf_test_json(r), "pending")), 0);
    doomed_ok = true;
    char target[64];
    snprintf(target, sizeof target, "/requeue/%lld", (long long)dead_id);
    r = cf_test_post_json(tc, target, "{}");
    CHECK_INT(json_integer_value(json_object_get(cf_test_json(r), "requeued")), 1);
    CHECK_INT(cf_test_run_queue(tc, 5000), 0);
    CHECK_INT(doomed_runs, 4);
    r = cf_test_get(tc, "/dead");
    CHECK_INT(json_array_size(cf_test_json(r)), 0);

    /* a delayed job does not run early */
    int64_t t0 = now_ms();
    r = cf_test_post_json(tc, "/enqueue/delayed?delay=400", "{}");
    CHECK_INT(cf_test_wait_background(tc, 200), 0);
    CHECK_INT(delayed_ran_at, 0);
    CHECK_INT(cf_test_run_queue(tc, 5000), 0);
    CHECK(delayed_ran_at - t0 >= 400);
    CHECK(delayed_ran_at - t0 < 1500);

    /* 10,000 jobs: none lost, none run twice, concurrency respected */
    t0 = now_ms();
    r = cf_test_request(tc, "POST", "/enqueue/count?n=10000", NULL, NULL, 0);
    CHECK_INT(cf_test_status(r), 201);
    int64_t t1 = now_ms();
    CHECK_INT(cf_test_run_queue(tc, 90000), 0);
    int64_t t2 = now_ms();
    int lost = 0, twice = 0;
    for (int i = 0; i < NBULK; i++) {
        lost += seen[i] == 0;
        twice += seen[i] > 1;
    }
    CHECK_INT(lost, 0);
    CHECK_INT(twice, 0);
    CHECK(bulk_max_running <= 64);
    fprintf(stderr, "10000 jobs: enqueued in %lld ms, run in %lld ms\n", (long long)(t1 - t0),
            (long long)(t2 - t1));

    /* the periodic job ran once for each period seen (at least once) */
    CHECK(periodic_runs >= 1);
    int before = periodic_runs;
    r = cf_test_get(tc, "/sleep?ms=2100"); /* the loop runs meanwhile */
    CHECK_INT(cf_test_run_queue(tc, 2000), 0);
    CHECK(periodic_runs >= before + 1 && periodic_runs <= before + 3);
    /* "* * * * *": once per minute; the test spans one or two minutes. */
    if (!(cron_runs >= 1 && cron_runs <= 2))
        fprintf(stderr, "cron_runs = %d\n", cron_runs);
    CHECK(cron_runs >= 1 && cron_runs <= 2);

    cf_test_client_free(tc);
    cf_app_free(app);
}

/* A private redis-server on a free port; its pid, or -1 if there is none. */
static pid_t start_redis(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0)
        return -1;
    *port = ntohs(a.sin_port);
    close(fd);
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%d", *port);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        execlp("redis-server", "redis-server", "--port", portbuf, "--bind", "127.0.0.1", "--save",
               "", "--appendonly", "no", "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) { /* up to 2 s */
        usleep(10000);
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return -1;
        int c = socket(AF_INET, SOCK_STREAM, 0);
        a.sin_port = htons((uint16_t)*port);
        int ok = connect(c, (struct sockaddr *)&a, sizeof a) == 0;
        close(c);
        if (ok)
            return pid;
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

int main(void)
{
    char path[128], url[160];
    snprintf(path, sizeof path, "/tmp/cf-test-queue-%d.db", (int)getpid());
    snprintf(url, sizeof url, "sqlite:///%s", path);
    suite(url);
    unlink(path);
    char side[160];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);

    int port;
    pid_t redis = start_redis(&port);
    if (redis < 0) {
        fprintf(stderr, "SKIP the Redis backend: no redis-server on PATH (scripts/install-deps)\n");
    } else {
        snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
        suite(url);
        kill(redis, SIGTERM);
        waitpid(redis, NULL, 0);
    }
    return CHECK_DONE();
}
