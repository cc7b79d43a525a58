/*
 * client.c — the in-process test client (Flask's app.test_client()): one
 * more producer of exchanges, in memory.
 *
 * A request is written out as HTTP/1.1 text and goes through the same
 * parser, routing, body limits and pipeline as one from a socket; only the
 * protocol underneath differs: the response is captured instead of
 * serialized, a body can be sent piece by piece to a route that streams
 * it, a streamed response can be read as it comes, and an upgraded
 * exchange carries a WebSocket session to a client end (client_ws.c). The
 * client owns a private loop and scheduler, so handlers that sleep or
 * await real timers run for real; each call runs the loop until what it
 * waits for happened (or the client's timeout ran out).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/coro.h"
#include "io/queue.h"
#include "testing/client.h"

/* Unread bytes of a response read piece by piece above which its writer
 * waits, as a socket's would. */
#define READ_HIGH_WATER (64 * 1024)

static char *xstrndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        abort();
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void tbuf_put(tbuf *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len + 1)
            cap *= 2;
        b->data = realloc(b->data, cap);
        if (!b->data)
            abort();
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = 0;
}

void tbuf_take(tbuf *b, size_t n)
{
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

static void on_pump(uv_idle_t *h)
{
    cf_test_client *tc = h->data;
    bool pending = false;
    for (cf_test_response *r = tc->responses; r; r = r->next) {
        cf__test_pump(r);
        pending |= r->ws && (r->to_client.len || (r->rq && r->to_server.len));
    }
    if (!pending) {
        uv_idle_stop(h);
        tc->pumping = false;
    }
}

void cf__test_want_pump(cf_test_client *tc)
{
    if (!tc->pumping) {
        tc->pumping = true;
        uv_idle_start(&tc->pump, on_pump);
    }
}

static void on_serving_hooks(void *ctx, int rc)
{
    cf_test_client *tc = ctx;
    tc->life_done = true;
    tc->life_rc = rc;
}

/* Run the app's serving hooks on the client's loop until they ended. */
static int run_serving_hooks(cf_test_client *tc, bool after)
{
    tc->life_done = false;
    cf_lifecycle_run(&tc->life, tc->app, after, on_serving_hooks, tc);
    while (!tc->life_done) {
        if (uv_run(&tc->loop, UV_RUN_ONCE) == 0 && !tc->life_done) {
            fprintf(stderr, "carafe: test client: %s hooks wait on nothing that can finish\n",
                    after ? "after_serving" : "before_serving");
            abort();
        }
    }
    return tc->life_rc;
}

static void close_loop(cf_test_client *tc)
{
    cf_sched_close(&tc->sched);
    uv_run(&tc->loop, UV_RUN_DEFAULT);
    uv_loop_close(&tc->loop);
    /* The thread may end next: give back what its pools hold. */
    cf_req_pool_drain();
    cf_coro_pool_drain();
}

cf_test_client *cf_test_client_new(cf_app *app)
{
    if (cf_sched_get()) {
        fprintf(stderr, "carafe: one test client (or server) per thread at a time\n");
        return NULL;
    }
    if (cf_app_services_prepare(app) != 0) /* connect the database, ...: the reason is on stderr */
        return NULL;
    cf_test_client *tc = calloc(1, sizeof *tc);
    if (!tc)
        return NULL;
    tc->app = app;
    tc->timeout_ms = -1;
    if (uv_loop_init(&tc->loop) != 0 || cf_sched_init(&tc->sched, &tc->loop) != 0) {
        free(tc);
        return NULL;
    }
    uv_idle_init(&tc->loop, &tc->pump);
    tc->pump.data = tc;
    cf_coro_set_stack_size((size_t)app->opt[CF_OPT_STACK_SIZE]);
    tc->id_seed = (uint64_t)(uintptr_t)tc;
    if (run_serving_hooks(tc, false) < 0) { /* the hook's failure is logged */
        fprintf(stderr, "carafe: test client: before_serving failed; no client\n");
        uv_close((uv_handle_t *)&tc->pump, NULL);
        close_loop(tc);
        free(tc);
        return NULL;
    }
    cf_app_services_loop_start(app); /* e.g. consume the app's task queue, like a worker */
    return tc;
}

static void free_response(cf_test_response *r)
{
    for (size_t i = 0; i < 2 * r->nheaders; i++)
        free(r->headers[i]);
    free(r->headers);
    free(r->body);
    json_decref(r->json);
    free(r->upload.data);
    free(r->to_server.data);
    free(r->to_client.data);
    cf_ws_free(r->ws);
    free(r);
}

void cf_test_client_free(cf_test_client *tc)
{
    if (!tc)
        return;
    while (tc->open)
        cf_test_close(tc->open);
    /* Let background work end before the loop goes away. */
    cf_app_services_loop_stop(tc->app);
    uv_close((uv_handle_t *)&tc->pump, NULL);
    while (uv_run(&tc->loop, UV_RUN_ONCE) != 0)
        ;
    run_serving_hooks(tc, true); /* as a worker does once drained */
    close_loop(tc);
    for (cf_test_response *r = tc->responses, *next; r; r = next) {
        next = r->next;
        free_response(r);
    }
    free(tc);
}

void cf_test_set_timeout(cf_test_client *tc, int64_t ms) { tc->timeout_ms = ms < 0 ? -1 : ms; }

uint64_t cf__test_deadline(cf_test_client *tc, int64_t timeout_ms)
{
    if (timeout_ms < 0)
        timeout_ms = tc->timeout_ms;
    uv_update_time(&tc->loop);
    return timeout_ms < 0 ? UINT64_MAX : uv_now(&tc->loop) + (uint64_t)timeout_ms;
}

static void on_deadline(uv_timer_t *t) { (void)t; /* only wakes the loop */ }

int cf__test_run_until(cf_test_response *r, bool (*done)(cf_test_response *r), uint64_t deadline,
                       const char *what)
{
    cf_test_client *tc = r->tc;
    uv_timer_t timer;
    bool timed = deadline != UINT64_MAX;
    if (timed) {
        uv_timer_init(&tc->loop, &timer);
        uv_update_time(&tc->loop);
        uint64_t now = uv_now(&tc->loop);
        uv_timer_start(&timer, on_deadline, deadline > now ? deadline - now : 0, 0);
    }
    int rc = 0;
    while (!done(r)) {
        if (timed) {
            uv_update_time(&tc->loop);
            if (uv_now(&tc->loop) >= deadline) {
                rc = CF_ETIMEDOUT;
                break;
            }
        }
        /* Only the deadline's timer was left, and it fired: checked above. */
        if (uv_run(&tc->loop, UV_RUN_ONCE) == 0 && !done(r) && !timed) {
            fprintf(stderr, "carafe: test %s is waiting on nothing that can finish\n", what);
            abort();
        }
    }
    if (timed) {
        uv_close((uv_handle_t *)&timer, NULL);
        uv_run(&tc->loop, UV_RUN_NOWAIT); /* its close callback, before it goes */
    }
    return rc;
}

/* ---- the exchange's operations ---------------------------------------------- */

static void add_header(cf_test_response *r, const char *name, const char *value)
{
    r->headers = realloc(r->headers, (r->nheaders + 1) * 2 * sizeof(char *));
    if (!r->headers)
        abort();
    r->headers[2 * r->nheaders] = xstrndup(name, strlen(name));
    r->headers[2 * r->nheaders + 1] = xstrndup(value, strlen(value));
    r->nheaders++;
}

static void capture(cf_exchange *x)
{
    cf_test_response *r = x->proto;
    r->status = x->status;
    if (x->content_type && !cf_kv_get(&x->resp_headers, "Content-Type", true))
        add_header(r, "Content-Type", x->content_type);
    for (size_t i = 0; i < x->resp_headers.len; i++)
        add_header(r, x->resp_headers.items[i].name, x->resp_headers.items[i].value);
    if (x->upgrade) {
        add_header(r, "Connection", "Upgrade");
    } else if (x->stream && !x->stream_sized && cf_status_has_body(x->status)) {
        add_header(r, "Transfer-Encoding", "chunked");
    } else {
        char num[32];
        snprintf(num, sizeof num, "%llu",
                 (unsigned long long)(x->stream ? x->stream_len : x->resp_len));
        add_header(r, "Content-Length", num);
    }
    if (x->request_id && !cf_kv_get(&x->resp_headers, "X-Request-Id", true))
        add_header(r, "X-Request-Id", x->request_id); /* cf_log named it, as a server sends it */
    if (x->refused) /* its body unread: a server closes the connection */
        add_header(r, "Connection", "close");
    size_t len = x->is_head ? 0 : x->resp_len;
    free(r->body);
    r->body = xstrndup(x->resp_body ? x->resp_body : "", len);
    r->len = len;
    r->head_done = true;
    r->body_ended = !x->streaming;
}

/* A streamed piece: appended to the captured body at once; after a 101,
 * bytes for the client's WebSocket end. */
static int capture_piece(cf_exchange *x, const void *data, size_t len)
{
    cf_test_response *r = x->proto;
    if (x->upgrade) {
        tbuf_put(&r->to_client, data, len);
        cf__test_want_pump(r->tc);
        return 0;
    }
    char *body = realloc(r->body, r->len + len + 1);
    if (!body)
        abort();
    memcpy(body + r->len, data, len);
    r->len += len;
    body[r->len] = 0;
    r->body = body;
    return 0;
}

static void drain_cancel(cf_waitable *w) { cf_waitable_complete(w, CF_ECANCELED); }

/* Only a response read piece by piece (cf_test_read) pushes back. */
static int capture_drain(cf_exchange *x)
{
    cf_test_response *r = x->proto;
    if (x->upgrade || r->len - r->read_pos <= READ_HIGH_WATER || r->read_pos == 0)
        return 0;
    cf_waitable w;
    cf_waitable_init(&w, drain_cancel);
    r->drain_waiter = &w;
    int rc = cf_task_await(&w, -1);
    r->drain_waiter = NULL;
    if (!w.done)
        cf_waitable_detach(&w);
    return rc;
}

static void capture_end(cf_exchange *x, int result)
{
    cf_test_response *r = x->proto;
    r->stream_result = result;
    r->body_ended = true;
}

static void body_wait_cancel(cf_waitable *w) { cf_waitable_complete(w, CF_ECANCELED); }

static long upload_read(cf_exchange *x, void *buf, size_t cap)
{
    cf_test_response *r = x->proto;
    for (;;) {
        if (r->upload_total > cf_req_max_body(r->rq)) {
            x->errmsg = "the request body is larger than the limit";
            return CF_ETOOBIG;
        }
        if (r->upload.len) {
            size_t n = r->upload.len < cap ? r->upload.len : cap;
            memcpy(buf, r->upload.data, n);
            tbuf_take(&r->upload, n);
            return (long)n;
        }
        if (!r->uploading) {
            x->body_done = true;
            return 0;
        }
        cf_waitable w;
        cf_waitable_init(&w, body_wait_cancel);
        r->body_waiter = &w;
        int rc = cf_task_await(&w, r->rq->app->opt[CF_OPT_BODY_TIMEOUT]);
        r->body_waiter = NULL;
        if (!w.done)
            cf_waitable_detach(&w);
        if (rc == CF_ETIMEDOUT)
            x->errmsg = "body timeout: the client sent nothing";
        if (rc < 0)
            return rc;
    }
}

static void ws_resume(cf_exchange *x) { cf__test_want_pump(((cf_test_response *)x->proto)->tc); }

static void unlink_open(cf_test_response *r)
{
    for (cf_test_response **p = &r->tc->open; *p; p = &(*p)->next_open)
        if (*p == r) {
            *p = r->next_open;
            break;
        }
}

static void finished(cf_exchange *x)
{
    cf_test_response *r = x->proto;
    r->finished = true;
    r->body_ended = true;
    r->rq = NULL;
    unlink_open(r);
}

static const cf_exchange_ops test_ops = {
    .send = capture,
    .write = capture_piece,
    .drain = capture_drain,
    .end = capture_end,
    .body_read = upload_read,
    .resume_input = ws_resume,
    .finished = finished,
    .upgrades = true,
};

/* ---- requests ------------------------------------------------------------------ */

static cf_test_response *new_response(cf_test_client *tc)
{
    cf_test_response *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->tc = tc;
    r->next = tc->responses;
    tc->responses = r;
    return r;
}

/* An answer of the client's own side (the server's parse errors): the
 * exchange never reaches the app. */
static void refuse(cf_test_response *r, int status, const char *reason)
{
    r->status = status;
    char body[256];
    int n = snprintf(body, sizeof body, "%d %s: %s\n", status, cf_reason_phrase(status), reason);
    free(r->body);
    r->body = xstrndup(body, (size_t)n);
    r->len = (size_t)n;
    add_header(r, "Content-Type", "text/plain; charset=utf-8");
    add_header(r, "Connection", "close");
    r->head_done = r->body_ended = r->finished = true;
}

static void dispatch(cf_test_response *r)
{
    r->dispatched = true;
    cf_req_dispatch(r->rq); /* may finish at once */
}

/* As a server does (src/http/conn.c): the app answers without the body. */
static void dispatch_refused(cf_test_response *r)
{
    cf_req *rq = r->rq;
    rq->x.body = cf_alloc(rq, 1);
    rq->x.body[0] = 0;
    rq->x.body_len = 0;
    rq->x.body_streamed = false;
    r->uploading = false;
    r->upload.len = 0;
    dispatch(r);
}

/* Write the request out as it would arrive on a socket, parse it, route
 * it; dispatch it unless its body is still to come. */
static cf_test_response *start(cf_test_client *tc, const char *method, const char *target,
                               const char *const *headers, const void *body, size_t len,
                               bool piecewise)
{
    cf_test_response *r = new_response(tc);
    size_t cap = strlen(method) + strlen(target) + 128;
    bool has_host = false, chunked = false;
    for (size_t i = 0; headers && headers[i]; i++) {
        cap += strlen(headers[i]) + 2;
        has_host |= strncasecmp(headers[i], "Host:", 5) == 0;
        chunked |= strncasecmp(headers[i], "Transfer-Encoding:", 18) == 0;
    }
    char *raw = malloc(cap);
    if (!raw)
        abort();
    size_t n = (size_t)snprintf(raw, cap, "%s %s HTTP/1.1\r\n%s", method, target,
                                has_host ? "" : "Host: localhost\r\n");
    for (size_t i = 0; headers && headers[i]; i++)
        n += (size_t)snprintf(raw + n, cap - n, "%s\r\n", headers[i]);
    /* cf_test_open with a chunked body to come: cf_test_send_body brings it */
    bool later = piecewise && chunked && !body && !len;
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
        refuse(r, used < 0 ? status : 400, used < 0 ? reason : "incomplete request");
        return r;
    }
    cf_req *rq = cf_req_new(app, &test_ops, r);
    if (rq)
        rq->x.id_seed = &tc->id_seed;
    if (!rq)
        abort();
    rq->x.peer = "test";
    cf_exchange_set_head(&rq->x, &head, raw, (size_t)used);
    free(raw);
    cf_req_route(rq);
    if (len > cf_req_max_body(rq))
        cf_exchange_refuse(&rq->x, 413, "the request body is larger than the limit");
    r->rq = rq;
    r->next_open = tc->open;
    tc->open = r;
    if (rq->x.refused) {
        dispatch_refused(r);
        return r;
    }
    r->uploading = later;
    if (rq->x.body_streamed || later) {
        tbuf_put(&r->upload, body ? body : "", len);
        r->upload_total = len;
    } else if (body || len) {
        rq->x.body = cf_alloc(rq, len + 1);
        if (len)
            memcpy(rq->x.body, body, len);
        rq->x.body[len] = 0;
        rq->x.body_len = len;
    }
    if (!later || rq->x.body_streamed)
        dispatch(r);
    return r;
}

static bool is_finished(cf_test_response *r) { return r->finished; }

/* The client gives up on the exchange (its timeout, cf_test_close): it is
 * cancelled as when a client leaves, and runs until its teardown. */
static void cut(cf_test_response *r, int why)
{
    if (!r->error)
        r->error = why;
    if (!r->rq)
        return;
    if (!r->dispatched) {
        cf_req_free(r->rq);
        r->rq = NULL;
        r->finished = r->body_ended = true;
        unlink_open(r);
        return;
    }
    r->uploading = false;
    cf_req_cancel(r->rq);
    cf_sched_run();
    cf__test_run_until(r, is_finished, UINT64_MAX, "request, cancelled,");
}

cf_test_response *cf_test_request(cf_test_client *tc, const char *method, const char *target,
                                  const char *const *headers, const void *body, size_t len)
{
    uint64_t deadline = cf__test_deadline(tc, -1);
    cf_test_response *r = start(tc, method, target, headers, body, len, false);
    if (cf__test_run_until(r, is_finished, deadline, "request") == CF_ETIMEDOUT)
        cut(r, CF_ETIMEDOUT);
    return r;
}

/* cf_test_open and cf_test_send_body wait until the app has answered, is
 * waiting for more body, or has ended. */
static bool settled(cf_test_response *r)
{
    return r->head_done || r->finished || r->body_waiter || (r->uploading && !r->dispatched);
}

cf_test_response *cf_test_open(cf_test_client *tc, const char *method, const char *target,
                               const char *const *headers, const void *body, size_t len)
{
    uint64_t deadline = cf__test_deadline(tc, -1);
    cf_test_response *r = start(tc, method, target, headers, body, len, true);
    if (cf__test_run_until(r, settled, deadline, "request") == CF_ETIMEDOUT)
        cut(r, CF_ETIMEDOUT);
    return r;
}

int cf_test_send_body(cf_test_response *r, const void *data, size_t len)
{
    if (!r || !r->rq || !r->uploading)
        return CF_ECLOSED;
    cf_req *rq = r->rq;
    if (len) {
        tbuf_put(&r->upload, data, len);
        r->upload_total += len;
    } else {
        r->uploading = false;
    }
    if (!r->dispatched) {
        if (r->uploading)
            return 0; /* a route that takes its body whole gets it at the end */
        if (r->upload_total > cf_req_max_body(rq)) {
            cf_exchange_refuse(&rq->x, 413, "the request body is larger than the limit");
            dispatch_refused(r);
        } else {
            rq->x.body = cf_alloc(rq, r->upload.len + 1);
            memcpy(rq->x.body, r->upload.data ? r->upload.data : "", r->upload.len);
            rq->x.body[r->upload.len] = 0;
            rq->x.body_len = r->upload.len;
            r->upload.len = 0;
            dispatch(r);
        }
    } else if (r->body_waiter) {
        cf_waitable *w = r->body_waiter;
        r->body_waiter = NULL;
        cf_waitable_complete(w, 0);
        cf_sched_run();
    }
    uint64_t deadline = cf__test_deadline(r->tc, -1);
    if (cf__test_run_until(r, settled, deadline, "request") == CF_ETIMEDOUT)
        cut(r, CF_ETIMEDOUT);
    return 0;
}

static bool has_news(cf_test_response *r) { return r->len > r->read_pos || r->body_ended; }

long cf_test_read(cf_test_response *r, const char **data, int64_t timeout_ms)
{
    uint64_t deadline = cf__test_deadline(r->tc, timeout_ms);
    if (cf__test_run_until(r, has_news, deadline, "read") == CF_ETIMEDOUT)
        return CF_ETIMEDOUT;
    size_t n = r->len - r->read_pos;
    *data = r->body + r->read_pos;
    r->read_pos = r->len;
    if (r->drain_waiter) {
        cf_waitable *w = r->drain_waiter;
        r->drain_waiter = NULL;
        cf_waitable_complete(w, 0);
        cf_sched_run();
    }
    return (long)n;
}

void cf_test_close(cf_test_response *r)
{
    if (r && r->rq)
        cut(r, CF_ECANCELED);
}

/* ---- background work, the queue, responses ---------------------------------- */

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
            !cf_queue_loop_active()) {
            fprintf(stderr, "carafe: jobs are queued but no handler consumes them\n");
            return CF_ETIMEDOUT;
        }
    }
}

int cf_test_status(const cf_test_response *r) { return r ? r->status : 0; }
int cf_test_stream_result(const cf_test_response *r) { return r ? r->stream_result : 0; }
int cf_test_error(const cf_test_response *r) { return r ? r->error : 0; }

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
