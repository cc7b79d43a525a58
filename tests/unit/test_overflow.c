/*
 * test_overflow.c — a coroutine running off the end of its stack dies
 * loudly and clearly instead of corrupting memory (src/core/coro.c's guard
 * page and SIGSEGV handler).
 *
 * Each case runs in a forked child whose stderr comes back through a pipe;
 * the parent checks how the child died and what it said:
 *   - a handler recursing without bound, run through the test client: the
 *     child dies of SIGSEGV (or, under the sanitizers, ASan's report and a
 *     non-zero exit) and stderr says "stack overflow" (ASan: also accepted
 *     as "stack-overflow"), naming the request ("GET /deep") — once;
 *   - the same in a child task spawned by the handler;
 *   - after another thread has run a loop of its own (and so installed the
 *     handler a second time), the report is still printed once and the
 *     process still dies promptly (no handler chaining to itself);
 *   - one large local array instead of deep recursion (80 KiB and 4 MiB in
 *     a 64 KiB stack): this file is built with -fstack-clash-protection like
 *     the library, so the frame probes its pages and lands in the guard;
 *   - the same 80 KiB frame built without that protection (GCC only): it
 *     jumps over a one-page guard but not over the 256 KiB guard region;
 *   - a plain NULL dereference in a handler still kills the process but is
 *     not reported as a stack overflow;
 *   - CF_OPT_STACK_SIZE works: recursion that cannot fit in the default
 *     64 KiB (about 1000 frames of 200+ bytes) completes with 1 MiB.
 */
#include <carafe.h>

#include "check.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the children ------------------------------------------------------- */

/* Never reached; volatile so the compiler cannot prove the recursion
 * endless (and refuse it) or bounded (and shorten it). */
static volatile unsigned long recursion_limit = ~0ul;

static unsigned long recurse_forever(unsigned long n)
{
    volatile char pad[200]; /* well under a page: every frame probes the guard */
    if (n == recursion_limit)
        return 0;
    pad[0] = (char)n;
    pad[sizeof pad - 1] = (char)n;
    return recurse_forever(n + 1) + pad[0] + pad[sizeof pad - 1];
}

static unsigned long recurse_to(unsigned long n, unsigned long limit)
{
    volatile char pad[200];
    pad[0] = (char)n;
    pad[sizeof pad - 1] = (char)n;
    if (n == limit)
        return 1;
    return recurse_to(n + 1, limit) + (pad[0] == (char)n) + (pad[sizeof pad - 1] == (char)n);
}

static void h_bounded(cf_req *rq)
{
    unsigned long r = recurse_to(0, 1000);
    cf_textf(rq, 200, "%lu", r);
}

static void h_deep(cf_req *rq)
{
    volatile unsigned long r = recurse_forever(0);
    cf_textf(rq, 200, "%lu", r);
}

static int deep_task(cf_req *rq, void *arg)
{
    (void)arg;
    return (int)recurse_forever((unsigned long)cf_sleep(rq, 1));
}

static void h_deep_child(cf_req *rq)
{
    cf_task *t = cf_spawn(rq, deep_task, NULL);
    cf_await(rq, t, -1);
    cf_text(rq, 200, "survived");
}

/* A frame of `kib` KiB that the compiler cannot shrink: filled, then read
 * through a library call. */
#define BIG_FRAME_HANDLER(name, kib, attrs)                                    \
    attrs static void name(cf_req *rq)                                         \
    {                                                                          \
        char buf[(kib) * 1024];                                                \
        memset(buf, 'x', sizeof buf);                                          \
        snprintf(buf, sizeof buf, "frame of %d KiB", (kib));                   \
        cf_text(rq, 200, buf);                                                 \
    }
BIG_FRAME_HANDLER(h_frame_80k, 80, )
BIG_FRAME_HANDLER(h_frame_4m, 4096, )
#if defined(__GNUC__) && !defined(__clang__)
#define HAVE_UNPROBED_FRAME 1
BIG_FRAME_HANDLER(h_frame_unprobed, 80, __attribute__((optimize("no-stack-clash-protection"))))
#endif

static void h_null(cf_req *rq)
{
    int *volatile p = NULL;
    cf_textf(rq, 200, "%d", *p);
}

static cf_app *make_app(void)
{
    cf_app *app = cf_app_new();
    cf_app_set(app, CF_OPT_ACCESS_LOG, 0);
    cf_route(app, "GET", "/deep", h_deep);
    cf_route(app, "GET", "/deep-child", h_deep_child);
    cf_route(app, "GET", "/null", h_null);
    cf_route(app, "GET", "/bounded", h_bounded);
    cf_route(app, "GET", "/frame-80k", h_frame_80k);
    cf_route(app, "GET", "/frame-4m", h_frame_4m);
#ifdef HAVE_UNPROBED_FRAME
    cf_route(app, "GET", "/frame-unprobed", h_frame_unprobed);
#endif
    return app;
}

static void child_big_stack(void)
{
    cf_app *app = make_app();
    if (cf_app_set(app, CF_OPT_STACK_SIZE, 1024 * 1024) != 0)
        _exit(94);
    cf_test_client *tc = cf_test_client_new(app);
    if (!tc)
        _exit(90);
    cf_test_response *r = cf_test_get(tc, "/bounded");
    fprintf(stderr, "status=%d body=%s\n", cf_test_status(r), cf_test_body(r, NULL));
    _exit(0);
}

static void run_request(const char *target)
{
    cf_app *app = make_app();
    cf_test_client *tc = cf_test_client_new(app);
    if (!tc)
        _exit(90);
    cf_test_get(tc, target);
    /* Not reached when the handler crashes. */
    fprintf(stderr, "request returned\n");
    _exit(91);
}

static void child_deep(void) { run_request("/deep"); }
static void child_deep_task(void) { run_request("/deep-child"); }
static void child_null(void) { run_request("/null"); }
static void child_frame_80k(void) { run_request("/frame-80k"); }
static void child_frame_4m(void) { run_request("/frame-4m"); }
#ifdef HAVE_UNPROBED_FRAME
static void child_frame_unprobed(void) { run_request("/frame-unprobed"); }
#endif

/* A second loop on another thread installs the overflow handler there too. */
static void *other_loop(void *arg)
{
    cf_app *app = arg;
    cf_test_client *tc = cf_test_client_new(app);
    if (tc)
        cf_test_client_free(tc);
    return NULL;
}

static void child_deep_after_thread(void)
{
    cf_app *app = make_app();
    pthread_t th;
    if (pthread_create(&th, NULL, other_loop, app) != 0)
        _exit(92);
    pthread_join(th, NULL);
    cf_test_client *tc = cf_test_client_new(app);
    if (!tc)
        _exit(90);
    cf_test_get(tc, "/deep");
    _exit(91);
}

/* ---- the parent ------------------------------------------------------------ */

typedef struct outcome {
    int status;      /* from waitpid */
    bool timed_out;
    char err[65536]; /* the child's stderr */
} outcome;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void run_child(void (*fn)(void), outcome *o)
{
    memset(o, 0, sizeof *o);
    int fds[2];
    if (pipe(fds) != 0) {
        CHECK(!"pipe");
        return;
    }
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        CHECK(!"fork");
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        close(fds[1]);
        fn();
        _exit(93);
    }
    close(fds[1]);
    size_t len = 0;
    double deadline = now_ms() + 60000;
    for (;;) {
        struct pollfd p = {fds[0], POLLIN, 0};
        int left = (int)(deadline - now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0) {
            o->timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        ssize_t n = read(fds[0], o->err + len, sizeof o->err - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof o->err - 1)
            len = 0; /* keep reading so the child never blocks; text is lost */
    }
    o->err[len] = 0;
    close(fds[0]);
    waitpid(pid, &o->status, 0);
}

static bool died_of_crash(const outcome *o)
{
    if (WIFSIGNALED(o->status))
        return WTERMSIG(o->status) == SIGSEGV || WTERMSIG(o->status) == SIGBUS ||
               WTERMSIG(o->status) == SIGABRT;
    /* ASan reports and exits with 1; our own exits 90-93 mean no crash. */
    return WIFEXITED(o->status) && WEXITSTATUS(o->status) != 0 && WEXITSTATUS(o->status) < 90;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void show(const char *what, const outcome *o)
{
    fprintf(stderr, "--- %s: status %#x%s, stderr:\n%.2000s\n---\n", what, o->status,
            o->timed_out ? " (timed out)" : "", o->err);
}

static outcome out;

static void expect_overflow(const char *what, void (*fn)(void), const char *request)
{
    run_child(fn, &out);
    bool ok = !out.timed_out && died_of_crash(&out) &&
              (strstr(out.err, "stack overflow") || strstr(out.err, "stack-overflow"));
    /* Our own report comes first (our handler runs before any earlier one)
     * and names the request; exactly once. */
    if (strstr(out.err, "carafe: stack overflow")) {
        ok &= count(out.err, "carafe: stack overflow") == 1;
        ok &= strstr(out.err, request) != NULL;
    }
#ifndef __SANITIZE_ADDRESS__
    /* Without ASan in the way, it is our handler that reports it. */
    ok &= count(out.err, "carafe: stack overflow") == 1;
    ok &= WIFSIGNALED(out.status) && WTERMSIG(out.status) == SIGSEGV;
#endif
    if (!ok)
        show(what, &out);
    CHECK(ok);
}

int main(void)
{
    expect_overflow("overflow in a handler", child_deep, "GET /deep");
    expect_overflow("overflow in a child task", child_deep_task, "GET /deep-child");
    expect_overflow("overflow after a second loop thread", child_deep_after_thread, "GET /deep");
    expect_overflow("an 80 KiB frame", child_frame_80k, "GET /frame-80k");
    expect_overflow("a 4 MiB frame", child_frame_4m, "GET /frame-4m");
#ifdef HAVE_UNPROBED_FRAME
    expect_overflow("an 80 KiB frame without stack-clash protection", child_frame_unprobed,
                    "GET /frame-unprobed");
#endif

    run_child(child_big_stack, &out);
    bool ok = !out.timed_out && WIFEXITED(out.status) && WEXITSTATUS(out.status) == 0 &&
         strstr(out.err, "status=200 body=2001") != NULL;
    if (!ok)
        show("recursion with a 1 MiB stack", &out);
    CHECK(ok);

    run_child(child_null, &out);
    ok = !out.timed_out && died_of_crash(&out) && !strstr(out.err, "stack overflow") &&
              !strstr(out.err, "stack-overflow");
    if (!ok)
        show("NULL dereference", &out);
    CHECK(ok);
    return CHECK_DONE();
}
