/*
 * client.c — the in-process test client (Flask's app.test_client()).
 *
 * A request is written out as HTTP/1.1 text and goes through the same
 * parser, routing, body limits and pipeline as one from a socket; only the
 * transport differs: the response is captured instead of serialized. The
 * client owns a private loop and scheduler, so handlers that sleep or
 * await real timers run for real, and cf_test_request returns once the
 * response is complete and teardown has run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app/req.h"
#include "core/coro.h"
#include "io/queue.h"

struct cf_test_response {
    int status;
    char **headers; /* name, value, name, value, ... */
    size_t nheaders;
    char *body;
    size_t len;
    json_t *json;
    bool json_done;
    int stream_result; /* a streamed body's producer result (negative: cut) */
    cf_test_response *next;
};

struct cf_test_client {
    cf_app *app;
    uv_loop_t loop;
    cf_sched sched;
    cf_test_response *responses;
    cf_test_response *current;
    bool finished;
};

static char *xstrndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        abort();
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

cf_test_client *cf_test_client_new(cf_app *app)
{
    if (cf_sched_get()) {
        fprintf(stderr, "carafe: one test client (or server) per thread at a time\n");
        return NULL;
    }
    cf_test_client *tc = calloc(1, sizeof *tc);
    if (!tc)
        return NULL;
    tc->app = app;
    if (uv_loop_init(&tc->loop) != 0 || cf_sched_init(&tc->sched, &tc->loop) != 0) {
        free(tc);
        return NULL;
    }
    cf_coro_set_stack_size((size_t)app->opt[CF_OPT_STACK_SIZE]);
    cf_queue_loop_start(app); /* consume the app's task queue, like a worker */
    return tc;
}

static void free_response(cf_test_response *r)
{
    for (size_t i = 0; i < 2 * r->nheaders; i++)
        free(r->headers[i]);
    free(r->headers);
    free(r->body);
    json_decref(r->json);
    free(r);
}

void cf_test_client_free(cf_test_client *tc)
{
    if (!tc)
        return;
    /* Let background work end before the loop goes away. */
    cf_queue_loop_stop();
    while (uv_run(&tc->loop, UV_RUN_ONCE) != 0)
        ;
    cf_sched_close(&tc->sched);
    uv_run(&tc->loop, UV_RUN_DEFAULT);
    uv_loop_close(&tc->loop);
    /* The thread may end next: give back what its pools hold. */
    cf_req_pool_drain();
    cf_coro_pool_drain();
    for (cf_test_response *r = tc->responses, *next; r; r = next) {
        next = r->next;
        free_response(r);
    }
    free(tc);
}

static void add_header(cf_test_response *r, const char *name, const char *value)
{
    r->headers = realloc(r->headers, (r->nheaders + 1) * 2 * sizeof(char *));
    if (!r->headers)
        abort();
    r->headers[2 * r->nheaders] = xstrndup(name, strlen(name));
    r->headers[2 * r->nheaders + 1] = xstrndup(value, strlen(value));
    r->nheaders++;
}

static void capture(cf_req *rq)
{
    cf_test_client *tc = rq->tp_ctx;
    cf_test_response *r = tc->current;
    r->status = rq->status;
    if (rq->content_type && !cf_kv_get(&rq->resp_headers, "Content-Type", true))
        add_header(r, "Content-Type", rq->content_type);
    for (size_t i = 0; i < rq->resp_headers.len; i++)
        add_header(r, rq->resp_headers.items[i].name, rq->resp_headers.items[i].value);
    if (rq->stream_fn && !rq->stream_sized && cf_status_has_body(rq->status)) {
        add_header(r, "Transfer-Encoding", "chunked");
    } else {
        char num[32];
        snprintf(num, sizeof num, "%llu",
                 (unsigned long long)(rq->stream_fn ? rq->stream_len : rq->resp_len));
        add_header(r, "Content-Length", num);
    }
    size_t len = rq->is_head ? 0 : rq->resp_len;
    r->body = xstrndup(rq->resp_body ? rq->resp_body : "", len);
    r->len = len;
}

static void finished(cf_req *rq)
{
    cf_test_client *tc = rq->tp_ctx;
    tc->finished = true;
}

/* A streamed piece: appended to the captured body at once. */
static int capture_piece(cf_req *rq, const void *data, size_t len)
{
    cf_test_client *tc = rq->tp_ctx;
    cf_test_response *r = tc->current;
    char *body = realloc(r->body, r->len + len + 1);
    if (!body)
        abort();
    memcpy(body + r->len, data, len);
    r->len += len;
    body[r->len] = 0;
    r->body = body;
    return 0;
}

static void capture_end(cf_req *rq, int result)
{
    cf_test_client *tc = rq->tp_ctx;
    tc->current->stream_result = result;
}

static const cf_transport test_transport = {capture, finished, NULL, capture_piece, NULL,
                                            capture_end, NULL, false};

static cf_test_response *new_response(cf_test_client *tc)
{
    cf_test_response *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->next = tc->responses;
    tc->responses = r;
    return r;
}

static cf_test_response *error_response(cf_test_client *tc, int status, const char *reason)
{
    cf_test_response *r = new_response(tc);
    r->status = status;
    char body[256];
    int n = snprintf(body, sizeof body, "%d %s: %s\n", status, cf_reason_phrase(status), reason);
    r->body = xstrndup(body, (size_t)n);
    r->len = (size_t)n;
    add_header(r, "Content-Type", "text/plain; charset=utf-8");
    return r;
}

cf_test_response *cf_test_request(cf_test_client *tc, const char *method, const char *target,
                                  const char *const *headers, const void *body, size_t len)
{
    /* The request as it would arrive on a socket. */
    size_t cap = strlen(method) + strlen(target) + 128;
    bool has_host = false;
    for (size_t i = 0; headers && headers[i]; i++) {
        cap += strlen(headers[i]) + 2;
        has_host |= strncasecmp(headers[i], "Host:", 5) == 0;
    }
    char *raw = malloc(cap);
    if (!raw)
        abort();
    size_t n = (size_t)snprintf(raw, cap, "%s %s HTTP/1.1\r\n%s", method, target,
                                has_host ? "" : "Host: localhost\r\n");
    for (size_t i = 0; headers && headers[i]; i++)
        n += (size_t)snprintf(raw + n, cap - n, "%s\r\n", headers[i]);
    if (body || len)
        n += (size_t)snprintf(raw + n, cap - n, "Content-Length: %zu\r\n", len);
    n += (size_t)snprintf(raw + n, cap - n, "\r\n");

    cf_app *app = tc->app;
    cf_http_limits lim = {(size_t)app->opt[CF_OPT_MAX_HEADER], (size_t)app->opt[CF_OPT_MAX_TARGET],
                          100};
    cf_hfield fields[100];
    cf_http_head head;
    int status = 0;
    const char *reason = NULL;
    int used = cf_http_parse_head(raw, n, &lim, &head, fields, 100, &status, &reason);
    if (used <= 0) {
        free(raw);
        return error_response(tc, used < 0 ? status : 400, used < 0 ? reason : "incomplete request");
    }
    cf_req *rq = cf_req_new(app, &test_transport, tc);
    if (!rq)
        abort();
    status = cf_req_set_head(rq, &head, raw, (size_t)used, &reason);
    free(raw);
    if (status) {
        cf_req_free(rq);
        return error_response(tc, status, reason);
    }
    cf_req_route(rq);
    if (len > cf_req_max_body(rq)) {
        cf_req_free(rq);
        return error_response(tc, 413, "the request body is larger than the limit");
    }
    if (body || len) {
        rq->body = cf_alloc(rq, len + 1);
        if (len)
            memcpy(rq->body, body, len);
        rq->body[len] = 0;
        rq->body_len = len;
    }
    cf_test_response *r = new_response(tc);
    tc->current = r;
    tc->finished = false;
    cf_req_dispatch(rq);
    while (!tc->finished) {
        if (uv_run(&tc->loop, UV_RUN_ONCE) == 0 && !tc->finished) {
            fprintf(stderr, "carafe: test request %s %s is waiting on nothing that can finish\n",
                    method, target);
            abort();
        }
    }
    tc->current = NULL;
    return r;
}

static void on_wait_timeout(uv_timer_t *t) { *(bool *)t->data = true; }

int cf_test_wait_background(cf_test_client *tc, int64_t timeout_ms)
{
    bool expired = false;
    uv_timer_t timer;
    uv_timer_init(&tc->loop, &timer);
    timer.data = &expired;
    if (timeout_ms >= 0)
        uv_timer_start(&timer, on_wait_timeout, (uint64_t)timeout_ms, 0);
    while (tc->sched.nbackground && !expired)
        if (uv_run(&tc->loop, UV_RUN_ONCE) == 0 && tc->sched.nbackground) {
            fprintf(stderr, "carafe: background tasks wait on nothing that can finish\n");
            abort();
        }
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(&tc->loop, UV_RUN_NOWAIT);
    return tc->sched.nbackground ? CF_ETIMEDOUT : 0;
}

cf_test_response *cf_test_get(cf_test_client *tc, const char *target)
{
    return cf_test_request(tc, "GET", target, NULL, NULL, 0);
}

cf_test_response *cf_test_post_json(cf_test_client *tc, const char *target, const char *json_text)
{
    static const char *const h[] = {"Content-Type: application/json", NULL};
    return cf_test_request(tc, "POST", target, h, json_text, strlen(json_text));
}

int cf_test_run_queue(cf_test_client *tc, int64_t timeout_ms)
{
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : uv_now(&tc->loop) + (uint64_t)timeout_ms;
    for (;;) {
        if (tc->sched.nbackground == 0 && cf_queue_count_sync(tc->app) <= 0)
            return 0;
        uv_update_time(&tc->loop);
        if (uv_now(&tc->loop) >= deadline)
            return CF_ETIMEDOUT;
        if (uv_run(&tc->loop, UV_RUN_ONCE) == 0 && tc->sched.nbackground == 0 &&
            !cf_sched_service(CF_SVC_QUEUE)) {
            fprintf(stderr, "carafe: jobs are queued but no handler consumes them\n");
            return CF_ETIMEDOUT;
        }
    }
}

int cf_test_status(const cf_test_response *r) { return r ? r->status : 0; }
int cf_test_stream_result(const cf_test_response *r) { return r ? r->stream_result : 0; }

const char *cf_test_header(const cf_test_response *r, const char *name)
{
    for (size_t i = 0; r && i < r->nheaders; i++)
        if (strcasecmp(r->headers[2 * i], name) == 0)
            return r->headers[2 * i + 1];
    return NULL;
}

const char *cf_test_body(const cf_test_response *r, size_t *len)
{
    if (len)
        *len = r ? r->len : 0;
    return r && r->body ? r->body : "";
}

json_t *cf_test_json(cf_test_response *r)
{
    if (!r)
        return NULL;
    if (!r->json_done) {
        r->json_done = true;
        r->json = json_loadb(r->body, r->len, JSON_DECODE_ANY, NULL);
    }
    return r->json;
}
