/*
 * test_async.c — the async primitives of include/carafe.h, driven through
 * the in-process test client (real timers on a real libuv loop):
 *   - cf_sleep timing, also when the loop's cached time is stale, and
 *     cf_sleep(0);
 *   - cf_spawn + cf_await: results passed through, cf_done/cf_result,
 *     awaiting a finished task, children start only when the parent
 *     suspends;
 *   - cf_await_all_n: concurrency (3 x 200 ms in ~200 ms), the first error
 *     in argument order (not in time order), a timeout cancelling the
 *     unfinished ones, 1000 children at once;
 *   - cf_await_any_n: the index of the fastest, an already finished one,
 *     a timeout;
 *   - cf_await with a timeout: CF_ETIMEDOUT, and the child sees
 *     CF_ECANCELED at its pending await; awaiting it again gives its result;
 *   - a sleep of UINT64_MAX ms ("until cancelled") does not wrap around
 *     into an immediate wake-up or stall the timer heap, and an await with
 *     a timeout of INT64_MAX works;
 *   - cf_cancel on a sleeping child and on one that has not started yet;
 *     cf_cancelled inside the cancelled child;
 *   - children (and grandchildren) still running when the handler returns
 *     are cancelled and waited for before the request finishes, after
 *     teardown has run;
 *   - a task awaiting itself, or a second task awaiting one that already
 *     has a waiter, gets CF_EINVAL; the same task listed twice in a gather
 *     counts once;
 *   - the timer heap under load: many sleeps of different lengths with
 *     some cancelled, none early, none very late;
 *   - cf_to_thread: runs on another thread and returns its value; several
 *     at once run concurrently; with a timeout, CF_ETIMEDOUT at once while
 *     the request's memory stays valid until the job ends;
 *   - a threaded route (cf_route_set_threaded) runs off the loop thread,
 *     its hooks on the loop; cf_sleep blocks there, cf_spawn/cf_to_thread
 *     return NULL and awaits return CF_EPERM;
 *   - awaits and cf_sleep outside any task return CF_EPERM;
 *   - the client going away (the transport's cf_req_cancel, called here
 *     from a child task): the handler's pending await returns CF_ECANCELED
 *     (also cf_await_any over thread jobs), cf_cancelled turns true, no
 *     response is sent, teardown runs with cf_req_error() == CF_ECANCELED
 *     and may await again;
 *   - a stale libuv timer left by a finished await with a long timeout
 *     does not keep the loop alive (client shutdown is prompt).
 */
#include <carafe.h>

#include "app/req.h" /* cf_req_cancel: what a transport calls when the client is gone */
#include "check.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static pthread_t loop_thread;

/* Run a request and return its JSON body (borrowed), checking the status. */
static json_t *get_json(cf_test_client *tc, const char *target, int status)
{
    cf_test_response *r = cf_test_get(tc, target);
    CHECK_INT(cf_test_status(r), status);
    json_t *j = cf_test_json(r);
    if (!j)
        fprintf(stderr, "%s: body is not JSON: %s\n", target, cf_test_body(r, NULL));
    CHECK(j != NULL);
    return j;
}

static double jnum(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    if (!v) {
        fprintf(stderr, "no key \"%s\" in the response\n", key);
        CHECK(v != NULL);
        return -99999;
    }
    return json_number_value(v);
}

/* ---- sleep --------------------------------------------------------------- */

static void h_sleep(cf_req *rq)
{
    int64_t ms = cf_arg(rq, "ms") ? atoll(cf_arg(rq, "ms")) : 200;
    double t0 = now_ms();
    int rc = cf_sleep(rq, (uint64_t)ms);
    cf_json(rq, 200, "{s:i, s:f}", "rc", rc, "ms", now_ms() - t0);
}

static void test_sleep(cf_test_client *tc)
{
    json_t *j = get_json(tc, "/sleep?ms=200", 200);
    CHECK_INT(jnum(j, "rc"), 0);
    CHECK(jnum(j, "ms") >= 195 && jnum(j, "ms") < 450);

    /* The loop has not run for a while (the test program was busy): the
     * sleep must still last its full time, not be measured from the loop's
     * stale idea of "now". */
    usleep(300 * 1000);
    j = get_json(tc, "/sleep?ms=200", 200);
    CHECK_INT(jnum(j, "rc"), 0);
    if (jnum(j, "ms") < 195)
        fprintf(stderr, "sleep(200) after an idle loop lasted %.1f ms\n", jnum(j, "ms"));
    CHECK(jnum(j, "ms") >= 195 && jnum(j, "ms") < 450);

    j = get_json(tc, "/sleep?ms=0", 200);
    CHECK_INT(jnum(j, "rc"), 0);
    CHECK(jnum(j, "ms") < 150);
}

/* ---- spawn / await -------------------------------------------------------- */

typedef struct child_arg {
    int64_t sleep_ms;
    int ret;      /* what the child returns */
    int sleep_rc; /* what its cf_sleep returned */
    bool ran, cancelled_seen;
    double end_ms;
    int *order;   /* optional: append an id when finishing */
    size_t *order_len;
    int id;
} child_arg;

static int child(cf_req *rq, void *arg)
{
    child_arg *c = arg;
    c->ran = true;
    c->sleep_rc = cf_sleep(rq, (uint64_t)c->sleep_ms);
    c->cancelled_seen = cf_cancelled(rq);
    c->end_ms = now_ms();
    if (c->order)
        c->order[(*c->order_len)++] = c->id;
    return c->sleep_rc < 0 ? c->sleep_rc : c->ret;
}

static child_arg *new_child(cf_req *rq, int64_t ms, int ret)
{
    child_arg *c = cf_alloc(rq, sizeof *c);
    memset(c, 0, sizeof *c);
    c->sleep_ms = ms;
    c->ret = ret;
    return c;
}

static void h_spawn(cf_req *rq)
{
    child_arg *a = new_child(rq, 10, 0), *b = new_child(rq, 5, CF_ENOTFOUND),
              *c = new_child(rq, 0, 5);
    cf_task *ta = cf_spawn(rq, child, a), *tb = cf_spawn(rq, child, b),
            *tc = cf_spawn(rq, child, c);
    /* Children run only once the parent suspends. */
    bool ran_early = a->ran || b->ran || c->ran;
    bool done_early = cf_done(ta);
    int ra = cf_await(rq, ta, -1);
    int rb = cf_await(rq, tb, -1);
    int rc = cf_await(rq, tc, -1);
    /* Awaiting a finished task again returns its result at once. */
    double t0 = now_ms();
    int rb2 = cf_await(rq, tb, 1000);
    double again_ms = now_ms() - t0;
    cf_json(rq, 200, "{s:b, s:b, s:i, s:i, s:i, s:i, s:f, s:b, s:i, s:b}", "ran_early",
            ran_early, "done_early", done_early, "ra", ra, "rb", rb, "rc", rc, "rb2", rb2,
            "again_ms", again_ms, "done_b", cf_done(tb), "result_b", cf_result(tb), "null_fn",
            cf_spawn(rq, NULL, NULL) == NULL);
}

static void test_spawn(cf_test_client *tc)
{
    json_t *j = get_json(tc, "/spawn", 200);
    CHECK(json_is_false(json_object_get(j, "ran_early")));
    CHECK(json_is_false(json_object_get(j, "done_early")));
    CHECK_INT(jnum(j, "ra"), 0);
    CHECK_INT(jnum(j, "rb"), CF_ENOTFOUND);
    CHECK_INT(jnum(j, "rc"), 5);
    CHECK_INT(jnum(j, "rb2"), CF_ENOTFOUND);
    CHECK(jnum(j, "again_ms") < 150);
    CHECK(json_is_true(json_object_get(j, "done_b")));
    CHECK_INT(jnum(j, "result_b"), CF_ENOTFOUND);
    CHECK(json_is_true(json_object_get(j, "null_fn")));
}

/* ---- gather ---------------------------------------------------------------- */

static void h_gather(cf_req *rq)
{
    child_arg *c[3];
    cf_task *t[3];
    for (int i = 0; i < 3; i++) {
        c[i] = new_child(rq, 200, 0);
        t[i] = cf_spawn(rq, child, c[i]);
    }
    double t0 = now_ms();
    int rc = cf_await_all(rq, t[0], t[1], t[2]);
    double ms = now_ms() - t0;
    cf_json(rq, 200, "{s:i, s:f, s:b}", "rc", rc, "ms", ms, "all_done",
            cf_done(t[0]) && cf_done(t[1]) && cf_done(t[2]));
}

/* Errors: index 1 fails (late) and index 2 fails (early): the answer is
 * index 1's error, the first in argument order. */
static void h_gather_error(cf_req *rq)
{
    cf_task *a = cf_spawn(rq, child, new_child(rq, 100, 0));
    cf_task *b = cf_spawn(rq, child, new_child(rq, 150, CF_EJSON));
    cf_task *c = cf_spawn(rq, child, new_child(rq, 20, CF_ENOTFOUND));
    double t0 = now_ms();
    int rc = cf_await_all(rq, a, b, c);
    cf_json(rq, 200, "{s:i, s:f}", "rc", rc, "ms", now_ms() - t0);
}

static child_arg gather_to_fast, gather_to_slow;

static void h_gather_timeout(cf_req *rq)
{
    memset(&gather_to_fast, 0, sizeof gather_to_fast);
    memset(&gather_to_slow, 0, sizeof gather_to_slow);
    gather_to_fast.sleep_ms = 20;
    gather_to_slow.sleep_ms = 5000;
    cf_task *f = cf_spawn(rq, child, &gather_to_fast);
    cf_task *s = cf_spawn(rq, child, &gather_to_slow);
    void *aws[] = {f, s};
    double t0 = now_ms();
    int rc = cf_await_all_n(rq, aws, 2, 100);
    double ms = now_ms() - t0;
    /* Let the cancelled one run to its end. */
    int rs = cf_await(rq, s, 1000);
    cf_json(rq, 200, "{s:i, s:f, s:i, s:i}", "rc", rc, "ms", ms, "rf", cf_result(f), "rs", rs);
}

enum { WIDE = 1000 };

static void h_gather_wide(cf_req *rq)
{
    void **aws = cf_alloc(rq, WIDE * sizeof *aws);
    for (int i = 0; i < WIDE; i++)
        aws[i] = cf_spawn(rq, child, new_child(rq, 100, 0));
    double t0 = now_ms();
    int rc = cf_await_all_n(rq, aws, WIDE, -1);
    cf_json(rq, 200, "{s:i, s:f}", "rc", rc, "ms", now_ms() - t0);
}

static void test_gather(cf_test_client *tc)
{
    json_t *j = get_json(tc, "/gather", 200);
    CHECK_INT(jnum(j, "rc"), 0);
    CHECK(jnum(j, "ms") >= 190 && jnum(j, "ms") < 500); /* concurrent, not 600 */
    CHECK(json_is_true(json_object_get(j, "all_done")));

    j = get_json(tc, "/gather-error", 200);
    CHECK_INT(jnum(j, "rc"), CF_EJSON);
    CHECK(jnum(j, "ms") >= 140 && jnum(j, "ms") < 450); /* waited for all */

    j = get_json(tc, "/gather-timeout", 200);
    CHECK_INT(jnum(j, "rc"), CF_ETIMEDOUT);
    CHECK(jnum(j, "ms") >= 95 && jnum(j, "ms") < 400);
    CHECK_INT(jnum(j, "rf"), 0);
    CHECK_INT(jnum(j, "rs"), CF_ECANCELED);
    CHECK_INT(gather_to_fast.sleep_rc, 0);
    CHECK_INT(gather_to_slow.sleep_rc, CF_ECANCELED);
    CHECK(gather_to_slow.cancelled_seen);

    j = get_json(tc, "/gather-wide", 200);
    CHECK_INT(jnum(j, "rc"), 0);
    CHECK(jnum(j, "ms") >= 95 && jnum(j, "ms") < 1000);
}

/* ---- any ------------------------------------------------------------------ */

static void h_any(cf_req *rq)
{
    child_arg *c0 = new_child(rq, 300, 0), *c1 = new_child(rq, 50, 7), *c2 = new_child(rq, 150, 0);
    cf_task *t0 = cf_spawn(rq, child, c0), *t1 = cf_spawn(rq, child, c1),
            *t2 = cf_spawn(rq, child, c2);
    double s = now_ms();
    int idx = cf_await_any(rq, t0, t1, t2);
    double ms = now_ms() - s;
    /* The others keep running. */
    bool others_running = !cf_done(t0) && !cf_done(t2);
    /* One already finished: returned at once. */
    s = now_ms();
    int idx2 = cf_await_any(rq, t0, t1);
    double ms2 = now_ms() - s;
    /* A timeout. */
    s = now_ms();
    void *aws[] = {t0, t2};
    int idx3 = cf_await_any_n(rq, aws, 2, 30);
    double ms3 = now_ms() - s;
    /* Then the next fastest of the rest. */
    int idx4 = cf_await_any_n(rq, aws, 2, -1);
    cf_json(rq, 200, "{s:i, s:f, s:b, s:i, s:f, s:i, s:f, s:i, s:i, s:i}", "idx", idx, "ms", ms,
            "others_running", others_running, "idx2", idx2, "ms2", ms2, "idx3", idx3, "ms3",
            ms3, "idx4", idx4, "r1", cf_result(t1), "empty", cf_await_any_n(rq, aws, 0, -1));
}

static void test_any(cf_test_client *tc)
{
    json_t *j = get_json(tc, "/any", 200);
    CHECK_INT(jnum(j, "idx"), 1);
    CHECK(jnum(j, "ms") >= 45 && jnum(j, "ms") < 250);
    CHECK(json_is_true(json_object_get(j, "others_running")));
    CHECK_INT(jnum(j, "idx2"), 1);
    CHECK(jnum(j, "ms2") < 100);
    CHECK_INT(jnum(j, "idx3"), CF_ETIMEDOUT);
    CHECK(jnum(j, "ms3") >= 25 && jnum(j, "ms3") < 200);
    CHECK_INT(jnum(j, "idx4"), 1); /* index 1 of {t0, t2}: t2 (150 ms) */
    CHECK_INT(jnum(j, "r1"), 7);
    CHECK_INT(jnum(j, "empty"), CF_EINVAL);
}

/* ---- timeout and cancel ------------------------------------------------------- */

static child_arg to_child;

static void h_await_timeout(cf_req *rq)
{
    memset(&to_child, 0, sizeof to_child);
    to_child.sleep_ms = 2000;
    cf_task *t = cf_spawn(rq, child, &to_child);
    double s = now_ms();
    int rc = cf_await(rq, t, 50);
    double ms = now_ms() - s;
    /* The child was cancelled: awaiting it again gives its own result. */
    s = now_ms();
    int rc2 = cf_await(rq, t, 1000);
    double ms2 = now_ms() - s;
    cf_json(rq, 200, "{s:i, s:f, s:i, s:f}", "rc", rc, "ms", ms, "rc2", rc2, "ms2", ms2);
}

static child_arg cancel_child, cancel_early;

static void h_cancel(cf_req *rq)
{
    memset(&cancel_child, 0, sizeof cancel_child);
    memset(&cancel_early, 0, sizeof cancel_early);
    cancel_child.sleep_ms = 2000;
    cancel_early.sleep_ms = 2000;
    cf_task *t = cf_spawn(rq, child, &cancel_child);
    /* Cancelled before it ever ran: its first await fails at once. */
    cf_task *e = cf_spawn(rq, child, &cancel_early);
    cf_cancel(e);
    double s = now_ms();
    cf_sleep(rq, 20);
    bool running = !cf_done(t);
    cf_cancel(t);
    int rc = cf_await(rq, t, -1);
    int re = cf_await(rq, e, -1);
    double ms = now_ms() - s;
    /* Cancelling a finished task changes nothing. */
    cf_cancel(t);
    cf_json(rq, 200, "{s:b, s:i, s:i, s:f, s:b, s:i}", "running", running, "rc", rc, "re", re,
            "ms", ms, "me_cancelled", cf_cancelled(rq), "result", cf_result(t));
}

/* "Sleep until cancelled": the longest sleep must not wrap around into an
 * immediate wake-up. */
static child_arg forever_child;

static void h_forever(cf_req *rq)
{
    memset(&forever_child, 0, sizeof forever_child);
    forever_child.sleep_ms = (int64_t)-1; /* becomes UINT64_MAX in cf_sleep */
    cf_task *t = cf_spawn(rq, child, &forever_child);
    double s = now_ms();
    int rc = cf_await(rq, t, 30);
    double ms = now_ms() - s;
    int rc2 = cf_await(rq, t, INT64_MAX);
    cf_json(rq, 200, "{s:i, s:f, s:i, s:b}", "rc", rc, "ms", ms, "rc2", rc2, "done",
            cf_done(t));
}

static void test_timeout_cancel(cf_test_client *tc)
{
    json_t *jf = get_json(tc, "/forever", 200);
    CHECK_INT(jnum(jf, "rc"), CF_ETIMEDOUT);
    CHECK(jnum(jf, "ms") >= 25 && jnum(jf, "ms") < 350);
    CHECK_INT(jnum(jf, "rc2"), CF_ECANCELED);
    CHECK_INT(forever_child.sleep_rc, CF_ECANCELED);

    json_t *j = get_json(tc, "/await-timeout", 200);
    CHECK_INT(jnum(j, "rc"), CF_ETIMEDOUT);
    CHECK(jnum(j, "ms") >= 45 && jnum(j, "ms") < 350);
    CHECK_INT(jnum(j, "rc2"), CF_ECANCELED);
    CHECK(jnum(j, "ms2") < 200);
    CHECK_INT(to_child.sleep_rc, CF_ECANCELED);
    CHECK(to_child.cancelled_seen);

    j = get_json(tc, "/cancel", 200);
    CHECK(json_is_true(json_object_get(j, "running")));
    CHECK_INT(jnum(j, "rc"), CF_ECANCELED);
    CHECK_INT(jnum(j, "re"), CF_ECANCELED);
    CHECK(jnum(j, "ms") < 500);
    CHECK(json_is_false(json_object_get(j, "me_cancelled")));
    CHECK_INT(jnum(j, "result"), CF_ECANCELED);
    CHECK_INT(cancel_child.sleep_rc, CF_ECANCELED);
    CHECK(cancel_child.cancelled_seen);
    CHECK(cancel_early.ran);
    CHECK_INT(cancel_early.sleep_rc, CF_ECANCELED);
}

/* ---- children outliving the handler ----------------------------------------- */

static struct {
    child_arg child, grandchild;
    bool teardown_ran, child_done_at_teardown;
    int handler_rc_on_exit;
} orphan;

static int spawning_child(cf_req *rq, void *arg)
{
    (void)arg;
    /* A grandchild, left running when this child returns at once. */
    cf_spawn(rq, child, &orphan.grandchild);
    return child(rq, &orphan.child);
}

static void h_orphans(cf_req *rq)
{
    memset(&orphan, 0, sizeof orphan);
    orphan.child.sleep_ms = 5000;
    orphan.grandchild.sleep_ms = 5000;
    cf_spawn(rq, spawning_child, NULL);
    cf_sleep(rq, 10); /* let them start */
    cf_text(rq, 200, "bye");
}

static void orphan_teardown(cf_req *rq)
{
    if (strcmp(cf_path(rq), "/orphans") != 0)
        return;
    orphan.teardown_ran = true;
    orphan.child_done_at_teardown = orphan.child.end_ms != 0;
}

static void test_orphans(cf_test_client *tc)
{
    double s = now_ms();
    cf_test_response *r = cf_test_get(tc, "/orphans");
    double ms = now_ms() - s;
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(cf_test_body(r, NULL), "bye");
    CHECK(ms < 1000); /* not the children's 5 s */
    CHECK(orphan.teardown_ran);
    CHECK(orphan.child.ran && orphan.grandchild.ran);
    /* Both saw the cancellation before the request finished. */
    CHECK_INT(orphan.child.sleep_rc, CF_ECANCELED);
    CHECK_INT(orphan.grandchild.sleep_rc, CF_ECANCELED);
    CHECK(orphan.child.end_ms > 0 && orphan.child.end_ms <= s + ms);
    CHECK(orphan.grandchild.end_ms > 0 && orphan.grandchild.end_ms <= s + ms);
}

/* ---- misuse ------------------------------------------------------------------ */

static int await_self(cf_req *rq, void *arg)
{
    cf_task **self = arg;
    return cf_await(rq, *self, 100);
}

static int await_other(cf_req *rq, void *arg)
{
    return cf_await(rq, arg, -1);
}

static void h_misuse(cf_req *rq)
{
    cf_task **slot = cf_alloc(rq, sizeof *slot);
    *slot = cf_spawn(rq, await_self, slot);
    int self_rc = cf_await(rq, *slot, 1000);
    /* Two tasks awaiting the same one: the second is refused. */
    cf_task *target = cf_spawn(rq, child, new_child(rq, 50, 3));
    cf_task *w1 = cf_spawn(rq, await_other, target);
    cf_sleep(rq, 5); /* w1 now waits on target */
    int second = cf_await(rq, target, -1);
    int first = cf_await(rq, w1, -1);
    /* The same handle twice in one gather. */
    cf_task *d = cf_spawn(rq, child, new_child(rq, 20, 4));
    int dup = cf_await_all(rq, d, d);
    cf_json(rq, 200, "{s:i, s:i, s:i, s:i, s:i}", "self", self_rc, "second", second, "first",
            first, "dup", dup, "dup_result", cf_result(d));
}

static void test_misuse(cf_test_client *tc)
{
    json_t *j = get_json(tc, "/misuse", 200);
    CHECK_INT(jnum(j, "self"), CF_EINVAL);
    CHECK_INT(jnum(j, "second"), CF_EINVAL);
    CHECK_INT(jnum(j, "first"), 3);
    CHECK_INT(jnum(j, "dup"), 0); /* 4 is not an error */
    CHECK_INT(jnum(j, "dup_result"), 4);

    /* Outside any task (here: the test program, with a loop bound to this
     * thread) nothing can suspend. */
    int dummy = 0;
    CHECK_INT(cf_await(NULL, &dummy, -1), CF_EPERM);
    void *aws[] = {&dummy};
    CHECK_INT(cf_await_all_n(NULL, aws, 1, -1), CF_EPERM);
    CHECK_INT(cf_await_any_n(NULL, aws, 1, 10), CF_EPERM);
    CHECK_INT(cf_sleep(NULL, 10), CF_EPERM);
}

/* ---- timer heap -------------------------------------------------------------- */

enum { HEAP_N = 300 };

static void h_timers(cf_req *rq)
{
    child_arg *c = cf_alloc(rq, HEAP_N * sizeof *c);
    void **aws = cf_alloc(rq, HEAP_N * sizeof *aws);
    double *start = cf_alloc(rq, HEAP_N * sizeof *start);
    memset(c, 0, HEAP_N * sizeof *c);
    unsigned seed = 12345;
    for (int i = 0; i < HEAP_N; i++) {
        seed = seed * 1103515245u + 12345u;
        c[i].sleep_ms = 1 + (seed >> 16) % 150;
        start[i] = now_ms();
        aws[i] = cf_spawn(rq, child, &c[i]);
    }
    cf_sleep(rq, 0); /* all started: their timers are in the heap */
    for (int i = 0; i < HEAP_N; i += 3)
        cf_cancel(aws[i]); /* removes timers from the middle of the heap */
    int rc = cf_await_all_n(rq, aws, HEAP_N, 5000);
    int early = 0, late = 0, wrong = 0;
    for (int i = 0; i < HEAP_N; i++) {
        double took = c[i].end_ms - start[i];
        if (i % 3 == 0) {
            wrong += c[i].sleep_rc != CF_ECANCELED;
            continue;
        }
        wrong += c[i].sleep_rc != 0;
        early += took < (double)c[i].sleep_ms - 1.0;
        late += took > (double)c[i].sleep_ms + 150.0;
    }
    cf_json(rq, 200, "{s:i, s:i, s:i, s:i}", "rc", rc, "early", early, "late", late, "wrong",
            wrong);
}

static void test_timers(cf_test_client *tc)
{
    json_t *j = get_json(tc, "/timers", 200);
    CHECK_INT(jnum(j, "rc"), CF_ECANCELED); /* the first error: index 0 was cancelled */
    CHECK_INT(jnum(j, "early"), 0);
    CHECK_INT(jnum(j, "late"), 0);
    CHECK_INT(jnum(j, "wrong"), 0);
}

/* ---- thread pool ------------------------------------------------------------ */

typedef struct job {
    pthread_t thread;
    int64_t sleep_ms;
    int ret;
    unsigned char *scratch; /* request memory the job writes after sleeping */
    bool finished;
} job;

static int job_fn(void *arg)
{
    job *j = arg;
    j->thread = pthread_self();
    if (j->sleep_ms)
        usleep((useconds_t)j->sleep_ms * 1000);
    if (j->scratch)
        memset(j->scratch, 0x77, 256);
    j->finished = true;
    return j->ret;
}

static job *new_job(cf_req *rq, int64_t ms, int ret)
{
    job *j = cf_alloc(rq, sizeof *j);
    memset(j, 0, sizeof *j);
    j->sleep_ms = ms;
    j->ret = ret;
    return j;
}

static void h_thread(cf_req *rq)
{
    job *j = new_job(rq, 0, 42);
    cf_task *t = cf_to_thread(rq, job_fn, j);
    int rc = cf_await(rq, t, -1);
    cf_json(rq, 200, "{s:i, s:b, s:b, s:b}", "rc", rc, "other_thread",
            !pthread_equal(j->thread, pthread_self()), "handler_on_loop",
            pthread_equal(pthread_self(), loop_thread) != 0, "null_fn",
            cf_to_thread(rq, NULL, NULL) == NULL);
}

static void h_thread_gather(cf_req *rq)
{
    /* libuv's pool has 4 threads by default: 3 jobs run side by side. */
    cf_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = cf_to_thread(rq, job_fn, new_job(rq, 200, 0));
    double s = now_ms();
    int rc = cf_await_all(rq, t[0], t[1], t[2]);
    cf_json(rq, 200, "{s:i, s:f}", "rc", rc, "ms", now_ms() - s);
}

static job *timeout_job;

static void h_thread_timeout(cf_req *rq)
{
    job *j = new_job(rq, 300, 0);
    j->scratch = cf_alloc(rq, 256);
    timeout_job = j;
    cf_task *t = cf_to_thread(rq, job_fn, j);
    double s = now_ms();
    int rc = cf_await(rq, t, 50);
    double ms = now_ms() - s;
    cf_json(rq, 200, "{s:i, s:f, s:b}", "rc", rc, "ms", ms, "finished", j->finished);
}

static void test_threads(cf_test_client *tc)
{
    json_t *j = get_json(tc, "/thread", 200);
    CHECK_INT(jnum(j, "rc"), 42);
    CHECK(json_is_true(json_object_get(j, "other_thread")));
    CHECK(json_is_true(json_object_get(j, "handler_on_loop")));
    CHECK(json_is_true(json_object_get(j, "null_fn")));

    j = get_json(tc, "/thread-gather", 200);
    CHECK_INT(jnum(j, "rc"), 0);
    CHECK(jnum(j, "ms") >= 190 && jnum(j, "ms") < 500);

    double s = now_ms();
    j = get_json(tc, "/thread-timeout", 200);
    double total = now_ms() - s;
    CHECK_INT(jnum(j, "rc"), CF_ETIMEDOUT);
    CHECK(jnum(j, "ms") >= 45 && jnum(j, "ms") < 350);
    CHECK(json_is_false(json_object_get(j, "finished")));
    /* The request (and its memory, which the job writes into at the end;
     * ASan would catch a use after free) lasted until the job finished. */
    CHECK(total >= 290);
}

/* ---- threaded route ----------------------------------------------------------- */

static struct {
    bool before_on_loop, after_on_loop;
} threaded_hooks;

static void h_threaded(cf_req *rq)
{
    bool off_loop = !pthread_equal(pthread_self(), loop_thread);
    double s = now_ms();
    int sleep_rc = cf_sleep(rq, 50);
    double slept = now_ms() - s;
    int dummy = 0;
    bool spawn_null = cf_spawn(rq, child, new_child(rq, 1, 0)) == NULL;
    bool thread_null = cf_to_thread(rq, job_fn, new_job(rq, 0, 0)) == NULL;
    void *aws[] = {&dummy};
    cf_json(rq, 200, "{s:b, s:i, s:f, s:b, s:b, s:i, s:i, s:i, s:b, s:s}", "off_loop",
            off_loop, "sleep_rc", sleep_rc, "slept", slept, "spawn_null", spawn_null,
            "thread_null", thread_null, "await", cf_await(rq, &dummy, -1), "all",
            cf_await_all_n(rq, aws, 1, -1), "any", cf_await_any_n(rq, aws, 1, -1),
            "cancelled", cf_cancelled(rq), "q", cf_arg(rq, "q") ? cf_arg(rq, "q") : "");
}

static void threaded_before(cf_req *rq)
{
    if (strcmp(cf_path(rq), "/threaded") == 0)
        threaded_hooks.before_on_loop = pthread_equal(pthread_self(), loop_thread);
}

static void threaded_after(cf_req *rq)
{
    if (strcmp(cf_path(rq), "/threaded") == 0)
        threaded_hooks.after_on_loop = pthread_equal(pthread_self(), loop_thread);
}

static void test_threaded_route(cf_test_client *tc)
{
    json_t *j = get_json(tc, "/threaded?q=x", 200);
    CHECK(json_is_true(json_object_get(j, "off_loop")));
    CHECK_INT(jnum(j, "sleep_rc"), 0);
    CHECK(jnum(j, "slept") >= 48);
    CHECK(json_is_true(json_object_get(j, "spawn_null")));
    CHECK(json_is_true(json_object_get(j, "thread_null")));
    CHECK_INT(jnum(j, "await"), CF_EPERM);
    CHECK_INT(jnum(j, "all"), CF_EPERM);
    CHECK_INT(jnum(j, "any"), CF_EPERM);
    CHECK(json_is_false(json_object_get(j, "cancelled")));
    CHECK_STR(json_string_value(json_object_get(j, "q")), "x");
    CHECK(threaded_hooks.before_on_loop);
    CHECK(threaded_hooks.after_on_loop);
}

/* ---- client gone ------------------------------------------------------------- */

static struct {
    int any_rc, sleep_rc, teardown_error, teardown_sleep_rc;
    bool cancelled_seen, teardown_ran, responded;
    double any_ms;
} gone;

static int canceller(cf_req *rq, void *arg)
{
    (void)arg;
    cf_sleep(rq, 20);
    cf_req_cancel(rq); /* as the connection does when the client hangs up */
    return 0;
}

static void h_gone_any(cf_req *rq)
{
    cf_task *j1 = cf_to_thread(rq, job_fn, new_job(rq, 300, 0));
    cf_task *j2 = cf_to_thread(rq, job_fn, new_job(rq, 300, 0));
    cf_spawn(rq, canceller, NULL);
    double s = now_ms();
    gone.any_rc = cf_await_any(rq, j1, j2);
    gone.any_ms = now_ms() - s;
    gone.cancelled_seen = cf_cancelled(rq);
    gone.sleep_rc = cf_sleep(rq, 10); /* still cancelled: fails at once */
    cf_text(rq, 200, "nobody will read this");
}

static void h_gone_sleep(cf_req *rq)
{
    cf_spawn(rq, canceller, NULL);
    double s = now_ms();
    gone.any_rc = cf_sleep(rq, 2000);
    gone.any_ms = now_ms() - s;
    gone.cancelled_seen = cf_cancelled(rq);
}

static void gone_teardown(cf_req *rq)
{
    if (strncmp(cf_path(rq), "/gone", 5) != 0)
        return;
    gone.teardown_ran = true;
    gone.teardown_error = cf_req_error(rq);
    gone.teardown_sleep_rc = cf_sleep(rq, 10); /* awaits work again in teardown */
}

static void test_client_gone(cf_test_client *tc)
{
    memset(&gone, 0, sizeof gone);
    cf_test_response *r = cf_test_get(tc, "/gone-sleep");
    CHECK_INT(cf_test_status(r), 0); /* nothing was sent */
    CHECK_INT(gone.any_rc, CF_ECANCELED);
    CHECK(gone.any_ms < 500);
    CHECK(gone.cancelled_seen);
    CHECK(gone.teardown_ran);
    CHECK_INT(gone.teardown_error, CF_ECANCELED);
    CHECK_INT(gone.teardown_sleep_rc, 0);

    memset(&gone, 0, sizeof gone);
    r = cf_test_get(tc, "/gone-any");
    CHECK_INT(cf_test_status(r), 0);
    /* Not an index: the caller itself was cancelled. */
    CHECK_INT(gone.any_rc, CF_ECANCELED);
    CHECK(gone.any_ms < 400);
    CHECK(gone.cancelled_seen);
    CHECK_INT(gone.sleep_rc, CF_ECANCELED);
    CHECK(gone.teardown_ran);
    CHECK_INT(gone.teardown_error, CF_ECANCELED);
    CHECK_INT(gone.teardown_sleep_rc, 0);
}

/* ---- a stale libuv timer must not keep the loop alive ------------------------ */

static void h_quick_await(cf_req *rq)
{
    /* The job finishes at once (completed from libuv's after-work callback,
     * not from a timer), so the 3 s timeout timer is stopped unused. */
    cf_task *t = cf_to_thread(rq, job_fn, new_job(rq, 0, 0));
    int rc = cf_await(rq, t, 3000);
    cf_json(rq, 200, "{s:i}", "rc", rc);
}

static void test_stale_timer(cf_app *app)
{
    cf_test_client *tc = cf_test_client_new(app);
    CHECK(tc != NULL);
    double s = now_ms();
    json_t *j = get_json(tc, "/quick-await", 200);
    CHECK_INT(jnum(j, "rc"), 0);
    cf_test_client_free(tc);
    double ms = now_ms() - s;
    if (ms >= 1000)
        fprintf(stderr, "request + client shutdown took %.0f ms\n", ms);
    CHECK(ms < 1000);
}

int main(void)
{
    loop_thread = pthread_self();
    cf_app *app = cf_app_new();
    cf_app_set(app, CF_OPT_ACCESS_LOG, 0);
    cf_route(app, "GET", "/sleep", h_sleep);
    cf_route(app, "GET", "/spawn", h_spawn);
    cf_route(app, "GET", "/gather", h_gather);
    cf_route(app, "GET", "/gather-error", h_gather_error);
    cf_route(app, "GET", "/gather-timeout", h_gather_timeout);
    cf_route(app, "GET", "/gather-wide", h_gather_wide);
    cf_route(app, "GET", "/any", h_any);
    cf_route(app, "GET", "/await-timeout", h_await_timeout);
    cf_route(app, "GET", "/cancel", h_cancel);
    cf_route(app, "GET", "/forever", h_forever);
    cf_route(app, "GET", "/orphans", h_orphans);
    cf_route(app, "GET", "/misuse", h_misuse);
    cf_route(app, "GET", "/timers", h_timers);
    cf_route(app, "GET", "/thread", h_thread);
    cf_route(app, "GET", "/thread-gather", h_thread_gather);
    cf_route(app, "GET", "/thread-timeout", h_thread_timeout);
    cf_route_set_threaded(cf_route(app, "GET", "/threaded", h_threaded), true);
    cf_route(app, "GET", "/quick-await", h_quick_await);
    cf_route(app, "GET", "/gone-any", h_gone_any);
    cf_route(app, "GET", "/gone-sleep", h_gone_sleep);
    cf_teardown_request(app, gone_teardown);
    cf_teardown_request(app, orphan_teardown);
    cf_before_request(app, threaded_before);
    cf_after_request(app, threaded_after);

    /* Outside any task and without a loop on this thread, awaits fail. */
    int dummy = 0;
    CHECK_INT(cf_await(NULL, &dummy, -1), CF_EPERM);

    cf_test_client *tc = cf_test_client_new(app);
    CHECK(tc != NULL);
    if (!tc)
        return CHECK_DONE();
    /* One client per thread at a time. */
    CHECK(cf_test_client_new(app) == NULL);
    test_sleep(tc);
    test_spawn(tc);
    test_gather(tc);
    test_any(tc);
    test_timeout_cancel(tc);
    test_orphans(tc);
    test_misuse(tc);
    test_timers(tc);
    test_threads(tc);
    test_threaded_route(tc);
    test_client_gone(tc);
    cf_test_client_free(tc);
    test_stale_timer(app);
    cf_app_free(app);
    return CHECK_DONE();
}
