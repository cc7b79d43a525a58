/*
 * queueapp — the app tests/integration/test_queue.py starts (QUEUE_URL
 * from the environment). Handlers append lines to the file JOBLOG
 * (O_APPEND, one write per line, so processes do not interleave):
 *
 *   "done <id> <pid> <payload>"    job "note": records and succeeds
 *   "start <id> <pid>" ... sleep SLOW_MS ... "done <id> <pid>"
 *                                  job "slow" (visibility timeout VIS_MS)
 *   "tick <period_start> <pid>"    periodic job "tick" every TICK_S seconds
 *                                  (0 or unset: no periodic job)
 *   "poison <id> <pid> <attempt>"  job "poison" then SIGKILLs its own worker
 *                                  (visibility timeout VIS_MS, 2 attempts)
 *
 *   POST /enqueue/<name>?delay=ms  body: JSON payload -> 201 {"id"}
 *   GET  /pending                  {"pending": jobs not finished}
 *   GET  /dead                     the dead letters (cf_queue_dead)
 */
#include <carafe.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *joblog;

static void log_line(const char *fmt, long long a, const char *extra)
{
    char line[512];
    int n = snprintf(line, sizeof line, fmt, a, (int)getpid(), extra ? extra : "");
    int fd = open(joblog, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        if (write(fd, line, (size_t)n) < 0) {
            /* nothing to do: the test sees the line missing */
        }
        close(fd);
    }
}

static int note_job(cf_req *rq, const cf_job *job)
{
    (void)rq;
    log_line("done %lld %d %s\n", (long long)job->id, job->payload);
    return 0;
}

static int slow_job(cf_req *rq, const cf_job *job)
{
    log_line("start %lld %d%s\n", (long long)job->id, NULL);
    const char *ms = getenv("SLOW_MS");
    int rc = cf_sleep(rq, ms ? (uint64_t)atol(ms) : 1500);
    if (rc)
        return rc;
    log_line("done %lld %d%s\n", (long long)job->id, NULL);
    return 0;
}

static int poison_job(cf_req *rq, const cf_job *job)
{
    (void)rq;
    char attempt[16];
    snprintf(attempt, sizeof attempt, " %d", job->attempt);
    log_line("poison %lld %d%s\n", (long long)job->id, attempt);
    kill(getpid(), SIGKILL);
    return 0;
}

static int tick_job(cf_req *rq, const cf_job *job)
{
    (void)rq;
    log_line("tick %lld %d%s\n",
             (long long)json_integer_value(json_object_get(job->data, "period_start")), NULL);
    return 0;
}

static void enqueue_view(cf_req *rq)
{
    size_t len;
    const char *body = cf_body(rq, &len);
    const char *d = cf_arg(rq, "delay");
    int64_t id = cf_enqueue(rq, cf_param(rq, "name"), len ? body : NULL, d ? atol(d) : 0);
    if (id <= 0)
        return cf_json(rq, 500, "{s:s}", "error", cf_strerror((int)id));
    cf_json(rq, 201, "{s:I}", "id", (json_int_t)id);
}

static void pending_view(cf_req *rq)
{
    cf_json(rq, 200, "{s:I}", "pending", (json_int_t)cf_queue_pending(rq, NULL));
}

static void dead_view(cf_req *rq)
{
    json_t *dead = cf_queue_dead(rq, NULL, 100);
    if (!dead)
        return cf_json(rq, 500, "{s:s}", "error", "cannot list the dead letters");
    cf_json_value(rq, 200, dead);
}

int main(int argc, char **argv)
{
    joblog = getenv("JOBLOG");
    if (!joblog)
        joblog = "/dev/null";
    cf_app *app = cf_app_new();
    const char *vis = getenv("VIS_MS");
    if (cf_queue_open(app, NULL) != 0 ||
        cf_queue_handler(app, "note", note_job, &(cf_queue_opts){.concurrency = 8}) != 0 ||
        cf_queue_handler(app, "slow", slow_job,
                         &(cf_queue_opts){.visibility_ms = vis ? atol(vis) : 2000,
                                          .max_attempts = 3}) != 0 ||
        cf_queue_handler(app, "poison", poison_job,
                         &(cf_queue_opts){.visibility_ms = vis ? atol(vis) : 2000,
                                          .max_attempts = 2}) != 0 ||
        cf_queue_handler(app, "tick", tick_job, NULL) != 0)
        return 1;
    const char *tick = getenv("TICK_S");
    if (tick && atol(tick) > 0)
        cf_queue_periodic(app, "tick", atol(tick));
    cf_route(app, "POST", "/enqueue/<name>", enqueue_view);
    cf_route(app, "GET", "/pending", pending_view);
    cf_route(app, "GET", "/dead", dead_view);
    int rc = cf_run(app, argc, argv);
    cf_app_free(app);
    return rc;
}
