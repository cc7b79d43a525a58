/*
 * examples/tasks — e-mail-like jobs enqueued from a view, run by the task
 * queue (see README.md and docs/tasks.md).
 *
 *   POST /signup {"email": "..."}   enqueues "send_welcome", answers 202 at once
 *   GET  /outbox                    the mails "sent" so far (this worker)
 *   GET  /dead                      dead letters; POST /dead/<int:id>/retry re-queues
 *
 *   ./tasks --bench [N]             in-process benchmark: N jobs (default
 *                                   20000) enqueued by 8 tasks, then run;
 *                                   prints jobs/s enqueued and completed
 *                                   (QUEUE_URL=redis://... : on Redis; flush it first)
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime: POSIX, beyond ISO C */
#include <carafe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

static json_t *outbox; /* per worker process: the example's "mail server" */

/* The job: pretend to talk to an SMTP server. Addresses at fail.example
 * always fail, so they end up in the dead letters after 3 attempts. */
static int send_welcome(cf_req *rq, const cf_job *job)
{
    const char *to = json_string_value(json_object_get(job->data, "email"));
    if (!to) {
        cf_fail(rq, "no email in the payload");
        return CF_EINVAL;
    }
    cf_sleep(rq, 50); /* the SMTP round trip */
    if (strstr(to, "@fail.example")) {
        cf_fail(rq, "550 mailbox unavailable: %s", to);
        return CF_EFAIL;
    }
    json_array_append_new(outbox, json_pack("{s:s,s:s,s:i}", "to", to, "subject", "Welcome!",
                                            "attempt", job->attempt));
    return 0;
}

static void signup(cf_req *rq)
{
    json_t *body = cf_get_json(rq);
    const char *email = json_string_value(json_object_get(body, "email"));
    if (!email || !strchr(email, '@')) {
        cf_json(rq, 400, "{s:s}", "error", "an email is required");
        return;
    }
    char *payload = json_dumps(json_pack("{s:s}", "email", email), JSON_COMPACT);
    int64_t id = cf_enqueue(rq, "send_welcome", payload, 0);
    free(payload);
    if (id < 0)
        cf_json(rq, 503, "{s:s}", "error", cf_strerror((int)id));
    else
        cf_json(rq, 202, "{s:s,s:I}", "status", "queued", "job", (json_int_t)id);
}

static void show_outbox(cf_req *rq) { cf_json_value(rq, 200, json_incref(outbox)); }

static void show_dead(cf_req *rq)
{
    json_t *dead = cf_queue_dead(rq, NULL, 0);
    if (dead)
        cf_json_value(rq, 200, dead);
    else
        cf_abort(rq, 500);
}

static void retry_dead(cf_req *rq)
{
    int64_t n = cf_queue_requeue(rq, cf_param_int(rq, "id"));
    cf_json(rq, n < 0 ? 500 : 200, "{s:I}", "requeued", (json_int_t)n);
}

/* ---- --bench ------------------------------------------------------------ */

static long bench_n, bench_done;

static int bench_job(cf_req *rq, const cf_job *job)
{
    (void)rq;
    (void)job;
    bench_done++;
    return 0;
}

static int bench_producer(cf_req *rq, void *arg)
{
    long n = *(long *)arg;
    for (long i = 0; i < n; i++)
        if (cf_enqueue(rq, "bench", "{\"to\":\"x@example.com\"}", 0) < 0)
            return CF_EFAIL;
    return 0;
}

static void bench_start(cf_req *rq)
{
    long per = bench_n / 8;
    for (int i = 0; i < 8; i++)
        cf_background(rq, "producer", bench_producer, &per, sizeof per);
    cf_text(rq, 202, "started");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench(long n)
{
    char path[64], url[80];
    snprintf(path, sizeof path, "/tmp/cf-tasks-bench-%d.db", (int)getpid());
    snprintf(url, sizeof url, "sqlite:///%s", path);
    const char *env = getenv("QUEUE_URL"); /* redis://... benchmarks Redis */
    if (env && !strncmp(env, "redis://", 8))
        snprintf(url, sizeof url, "%s", env);
    bench_n = n / 8 * 8;
    int rc = 1;
    /* Phase 0 (enqueue only, no consumer) runs in a child process, phase 1
     * (consume what is there) here: each with a fresh process and loop. */
    pid_t child = fork();
    if (child < 0)
        return 1;
    for (int phase = child == 0 ? 0 : 1; phase < (child == 0 ? 1 : 2); phase++) {
        if (phase == 1) {
            int st;
            if (waitpid(child, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
                return 1;
        }
        cf_app *app = cf_app_new();
        if (cf_queue_open(app, url) != 0)
            return 1;
        if (phase == 1)
            cf_queue_handler(app, "bench", bench_job, &(cf_queue_opts){.concurrency = 256});
        cf_route(app, "POST", "/start", bench_start);
        cf_test_client *tc = cf_test_client_new(app);
        if (!tc)
            return 1;
        double t0 = now_s();
        if (phase == 0) {
            cf_test_request(tc, "POST", "/start", NULL, NULL, 0);
            cf_test_wait_background(tc, -1);
            double dt = now_s() - t0;
            printf("enqueued  %ld jobs in %.2f s: %.0f jobs/s (8 producers)\n", bench_n, dt,
                   (double)bench_n / dt);
            fflush(stdout);
            rc = 0;
        } else {
            cf_test_run_queue(tc, -1);
            double dt = now_s() - t0;
            printf("completed %ld jobs in %.2f s: %.0f jobs/s (claim, run, acknowledge)\n",
                   bench_done, dt, (double)bench_done / dt);
            rc = bench_done == bench_n ? 0 : 1;
        }
        cf_test_client_free(tc);
        cf_app_free(app);
    }
    if (child == 0)
        return rc;
    unlink(path);
    char side[96];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--bench") == 0)
        return bench(argc > 2 ? atol(argv[2]) : 20000);
    outbox = json_array();
    cf_app *app = cf_app_new();
    /* QUEUE_URL, or the file beside DATABASE_URL's, or ./queue.db */
    if (cf_queue_handler(app, "send_welcome", send_welcome,
                         &(cf_queue_opts){.concurrency = 32, .max_attempts = 3, .backoff_ms = 500}) !=
        0)
        return 1;
    cf_route(app, "POST", "/signup", signup);
    cf_route(app, "GET", "/outbox", show_outbox);
    cf_route(app, "GET", "/dead", show_dead);
    cf_route(app, "POST", "/dead/<int:id>/retry", retry_dead);
    int rc = cf_run(app, argc, argv);
    cf_app_free(app);
    json_decref(outbox);
    return rc;
}
