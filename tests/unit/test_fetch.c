/*
 * test_fetch.c — the HTTP client through the in-process test client, against
 * a tiny HTTP/1.1 server on a thread of this program (127.0.0.1, keep-alive,
 * a thread per connection). The full matrix (timeouts, resets, redirects,
 * TLS, bodies, disconnects) is in tests/integration/test_fetch.py; this
 * checks what the test client's private loop adds:
 *   - a call works from a handler run by cf_test_request, and three calls
 *     overlap (3 x 200 ms in ~200 ms);
 *   - status, header, body and JSON accessors; connection reuse (one
 *     connection for several sequential calls);
 *   - errors without a network: refused port, invalid arguments, an
 *     unsupported scheme;
 *   - cf_cancel and an await timeout stop a pending call at once;
 *   - the client going away (cf_req_cancel) cancels the pending call, and
 *     teardown sees it finished with CF_ECANCELED;
 *   - a threaded route makes its call blocking, on its own thread;
 *   - cf_test_client_free returns promptly with idle connections cached
 *     (the fetch module's handles are closed with the scheduler).
 */
#define _GNU_SOURCE /* memmem */
#include <carafe.h>

#include "app/req.h" /* cf_req_cancel: what a transport calls when the client is gone */
#include "check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ---- the mini server -------------------------------------------------- */

static int mini_port;
static atomic_int mini_conns;

static void *mini_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[8192];
    size_t have = 0;
    for (;;) {
        char *end = NULL;
        while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
            if (have == sizeof buf)
                goto out;
            ssize_t n = read(fd, buf + have, sizeof buf - have);
            if (n <= 0)
                goto out;
            have += (size_t)n;
        }
        size_t head = (size_t)(end + 4 - buf);
        char target[256] = "";
        sscanf(buf, "%*s %255s", target);
        /* No request bodies here: the head is the whole request. */
        memmove(buf, buf + head, have - head);
        have -= head;
        const char *body = "hi", *ctype = "text/plain";
        if (strncmp(target, "/delay", 6) == 0) {
            const char *ms = strstr(target, "ms=");
            usleep((useconds_t)(ms ? atoi(ms + 3) : 0) * 1000);
            body = "slept";
        } else if (strcmp(target, "/json") == 0) {
            body = "{\"a\":[1,2,3]}";
            ctype = "application/json";
        }
        char out[512];
        int n = snprintf(out, sizeof out,
                         "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nX-Mini: yes\r\n"
                         "Content-Length: %zu\r\n\r\n%s", ctype, strlen(body), body);
        /* The client may be gone (a cancelled call): no SIGPIPE. */
        if (send(fd, out, (size_t)n, MSG_NOSIGNAL) != n)
            goto out;
    }
out:
    close(fd);
    return NULL;
}

static void *mini_accept(void *arg)
{
    int ls = (int)(intptr_t)arg;
    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0)
            return NULL;
        atomic_fetch_add(&mini_conns, 1);
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_create(&t, &at, mini_conn, (void *)(intptr_t)fd);
        pthread_attr_destroy(&at);
    }
}

static int mini_start(pthread_t *thr)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 64) != 0 ||
        getsockname(ls, (struct sockaddr *)&a, &len) != 0)
        return -1;
    mini_port = ntohs(a.sin_port);
    pthread_create(thr, NULL, mini_accept, (void *)(intptr_t)ls);
    return ls;
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    bind(s, (struct sockaddr *)&a, sizeof a);
    getsockname(s, (struct sockaddr *)&a, &len);
    close(s);
    return ntohs(a.sin_port);
}

static const char *mini(cf_req *rq, const char *path)
{
    return cf_sprintf(rq, "http://127.0.0.1:%d%s", mini_port, path);
}

/* ---- handlers ------------------------------------------------------------ */

static void h_get(cf_req *rq)
{
    cf_fetch *f = cf_fetch_do(rq, "GET", mini(rq, cf_arg(rq, "path")), NULL);
    size_t len;
    const char *body = cf_fetch_body(f, &len);
    json_t *j = cf_fetch_json(f);
    cf_json(rq, 200, "{s:i,s:i,s:s,s:I,s:s?,s:s?,s:O?,s:i}", "error", cf_fetch_error(f),
            "status", cf_fetch_status(f), "body", body, "len", (json_int_t)len, "mini",
            cf_fetch_header(f, "x-mini"), "url", cf_fetch_url(f), "json", j, "raise",
            cf_fetch_raise_for_status(f));
}

static void h_three(cf_req *rq)
{
    double t0 = now_ms();
    cf_fetch *a = cf_fetch_start(rq, "GET", mini(rq, "/delay?ms=200"), NULL);
    cf_fetch *b = cf_fetch_start(rq, "GET", mini(rq, "/delay?ms=200"), NULL);
    cf_fetch *c = cf_fetch_start(rq, "GET", mini(rq, "/delay?ms=200"), NULL);
    int rc = cf_await_all(rq, a, b, c);
    cf_json(rq, 200, "{s:i,s:f,s:s}", "rc", rc, "ms", now_ms() - t0, "body",
            cf_fetch_body(c, NULL));
}

static void h_errors(cf_req *rq)
{
    cf_fetch *refused = cf_fetch_do(
        rq, "GET", cf_sprintf(rq, "http://127.0.0.1:%d/", free_port()), NULL);
    cf_fetch *scheme = cf_fetch_do(rq, "GET", "gopher://127.0.0.1/", NULL);
    cf_fetch *method = cf_fetch_start(rq, "GE T", mini(rq, "/"), NULL);
    static const char *const bad_hdr[] = {"X-A: 1\nX-B: 2", NULL};
    cf_fetch_opts o = {.headers = bad_hdr};
    cf_fetch *hdr = cf_fetch_start(rq, "GET", mini(rq, "/"), &o);
    cf_fetch *nourl = cf_fetch_start(rq, "GET", NULL, NULL);
    cf_json(rq, 200, "{s:i,s:s,s:i,s:i,s:i,s:i,s:b}", "refused", cf_fetch_error(refused),
            "refused_msg", cf_fetch_errmsg(refused), "scheme", cf_fetch_error(scheme), "method",
            cf_fetch_error(method), "hdr", cf_fetch_error(hdr), "nourl", cf_fetch_error(nourl),
            "done", cf_done(method) && cf_done(hdr) && cf_done(nourl));
}

static void h_cancel(cf_req *rq)
{
    double t0 = now_ms();
    cf_fetch *f = cf_fetch_start(rq, "GET", mini(rq, "/delay?ms=1500"), NULL);
    cf_sleep(rq, 50);
    cf_cancel(f);
    int rc = cf_await(rq, f, -1);
    double cancel_ms = now_ms() - t0;
    t0 = now_ms();
    cf_fetch *g = cf_fetch_start(rq, "GET", mini(rq, "/delay?ms=1500"), NULL);
    int trc = cf_await(rq, g, 100);
    cf_json(rq, 200, "{s:i,s:i,s:f,s:i,s:i,s:f}", "rc", rc, "error", cf_fetch_error(f), "ms",
            cancel_ms, "trc", trc, "terror", cf_fetch_error(g), "tms", now_ms() - t0);
}

static struct {
    int await_rc, teardown_error;
    double ms;
    bool teardown_ran;
} gone;

static int canceller(cf_req *rq, void *arg)
{
    (void)arg;
    cf_sleep(rq, 100);
    cf_req_cancel(rq); /* as the connection does when the client hangs up */
    return 0;
}

static void h_gone(cf_req *rq)
{
    cf_fetch *f = cf_fetch_start(rq, "GET", mini(rq, "/delay?ms=1500"), NULL);
    cf_g_set(rq, "fetch", f);
    cf_spawn(rq, canceller, NULL);
    double t0 = now_ms();
    gone.await_rc = cf_await(rq, f, -1);
    gone.ms = now_ms() - t0;
}

static void teardown(cf_req *rq)
{
    cf_fetch *f = cf_g_get(rq, "fetch");
    if (!f)
        return;
    gone.teardown_ran = true;
    gone.teardown_error = cf_done(f) ? cf_fetch_error(f) : 12345;
}

static void h_threaded(cf_req *rq)
{
    cf_fetch *f = cf_fetch_start(rq, "GET", mini(rq, "/json"), NULL); /* blocking here */
    bool done = cf_done(f);
    cf_json(rq, 200, "{s:b,s:i,s:O?}", "done", done, "status", cf_fetch_status(f), "json",
            cf_fetch_json(f));
}

/* ---- tests ----------------------------------------------------------------- */

static json_t *get_json(cf_test_client *tc, const char *target)
{
    cf_test_response *r = cf_test_get(tc, target);
    CHECK_INT(cf_test_status(r), 200);
    json_t *j = cf_test_json(r);
    if (!j)
        fprintf(stderr, "%s: not JSON: %s\n", target, cf_test_body(r, NULL));
    CHECK(j != NULL);
    return j ? j : json_object();
}

#define JINT(j, k) json_integer_value(json_object_get((j), (k)))
#define JNUM(j, k) json_number_value(json_object_get((j), (k)))
#define JSTR(j, k) json_string_value(json_object_get((j), (k)))

int main(void)
{
    pthread_t acceptor;
    int ls = mini_start(&acceptor);
    CHECK(ls >= 0);
    if (ls < 0)
        return CHECK_DONE();

    cf_app *app = cf_app_new();
    cf_app_set(app, CF_OPT_ACCESS_LOG, 0);
    cf_teardown_request(app, teardown);
    cf_route(app, "GET", "/get", h_get);
    cf_route(app, "GET", "/three", h_three);
    cf_route(app, "GET", "/errors", h_errors);
    cf_route(app, "GET", "/cancel", h_cancel);
    cf_route(app, "GET", "/gone", h_gone);
    cf_route_set_threaded(cf_route(app, "GET", "/threaded", h_threaded), true);
    cf_test_client *tc = cf_test_client_new(app);
    CHECK(tc != NULL);
    if (!tc)
        return CHECK_DONE();

    /* Accessors and reuse: several sequential calls, one connection. */
    int conns0 = atomic_load(&mini_conns);
    json_t *j = get_json(tc, "/get?path=/json");
    CHECK_INT(JINT(j, "error"), 0);
    CHECK_INT(JINT(j, "status"), 200);
    CHECK_STR(JSTR(j, "body"), "{\"a\":[1,2,3]}");
    CHECK_INT(JINT(j, "len"), 13);
    CHECK_STR(JSTR(j, "mini"), "yes");
    CHECK_INT(json_array_size(json_object_get(json_object_get(j, "json"), "a")), 3);
    CHECK_INT(JINT(j, "raise"), 0);
    for (int i = 0; i < 4; i++) {
        j = get_json(tc, "/get?path=/hello");
        CHECK_STR(JSTR(j, "body"), "hi");
        CHECK(json_is_null(json_object_get(j, "json")));
    }
    CHECK_INT(atomic_load(&mini_conns) - conns0, 1);

    /* Overlap. */
    j = get_json(tc, "/three");
    CHECK_INT(JINT(j, "rc"), 0);
    CHECK_STR(JSTR(j, "body"), "slept");
    if (JNUM(j, "ms") >= 380)
        fprintf(stderr, "three 200 ms calls took %.0f ms\n", JNUM(j, "ms"));
    CHECK(JNUM(j, "ms") < 380);

    /* Errors. */
    j = get_json(tc, "/errors");
    CHECK_INT(JINT(j, "refused"), CF_ECONNREFUSED);
    CHECK(JSTR(j, "refused_msg") && strstr(JSTR(j, "refused_msg"), "http://127.0.0.1:"));
    CHECK_INT(JINT(j, "scheme"), CF_EINVAL);
    CHECK_INT(JINT(j, "method"), CF_EINVAL);
    CHECK_INT(JINT(j, "hdr"), CF_EINVAL);
    CHECK_INT(JINT(j, "nourl"), CF_EINVAL);
    CHECK(json_is_true(json_object_get(j, "done")));

    /* cf_cancel and an await timeout. */
    j = get_json(tc, "/cancel");
    CHECK_INT(JINT(j, "rc"), CF_ECANCELED);
    CHECK_INT(JINT(j, "error"), CF_ECANCELED);
    CHECK(JNUM(j, "ms") < 400);
    CHECK_INT(JINT(j, "trc"), CF_ETIMEDOUT);
    CHECK_INT(JINT(j, "terror"), CF_ECANCELED);
    CHECK(JNUM(j, "tms") < 400);

    /* The client goes away. */
    cf_test_response *r = cf_test_get(tc, "/gone");
    CHECK_INT(cf_test_status(r), 0); /* nothing was sent */
    CHECK_INT(gone.await_rc, CF_ECANCELED);
    CHECK(gone.ms < 500);
    CHECK(gone.teardown_ran);
    CHECK_INT(gone.teardown_error, CF_ECANCELED);

    /* A threaded handler. */
    j = get_json(tc, "/threaded");
    CHECK(json_is_true(json_object_get(j, "done")));
    CHECK_INT(JINT(j, "status"), 200);
    CHECK(json_is_array(json_object_get(json_object_get(j, "json"), "a")));

    /* Shut down with idle connections in the cache. */
    double t0 = now_ms();
    cf_test_client_free(tc);
    double ms = now_ms() - t0;
    if (ms >= 1000)
        fprintf(stderr, "client shutdown took %.0f ms\n", ms);
    CHECK(ms < 1000);
    cf_app_free(app);

    shutdown(ls, SHUT_RDWR);
    close(ls);
    pthread_join(acceptor, NULL);
    return CHECK_DONE();
}
