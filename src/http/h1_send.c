/*
 * h1_send.c — the response side of an HTTP/1.1 exchange: serializing the
 * head by hand (it runs for every request), writing head and body with one
 * writev when the socket takes it, streamed bodies (chunked, unframed with
 * a Content-Length, close-delimited for HTTP/1.0, or raw bytes after a 101)
 * with backpressure, and the server's own short answers (parse errors,
 * limits, timeouts).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/h1.h"

/* ---- writing ------------------------------------------------------------------ */

typedef struct write_req {
    uv_write_t uv;
    cf_conn *c;
    size_t len;
    char data[];
} write_req;

static void on_written(uv_write_t *u, int status)
{
    write_req *wr = (write_req *)u;
    cf_conn *c = wr->c;
    free(wr);
    if (status < 0)
        h1_close(c);
    else if (c->drain_waiters && h1_queued(c) <= WRITE_HIGH_WATER)
        h1_wake_drain_waiters(c);
    else if (!c->closing && c->state == S_HEAD && !c->processing && c->len > c->pos &&
             h1_queued(c) <= WRITE_HIGH_WATER)
        h1_process(c); /* pipelined requests held back by the write backlog */
    h1_unref(c);
}

void h1_write(cf_conn *c, uv_buf_t *bufs, unsigned n)
{
    if (c->closing)
        return;
    int done = uv_try_write(&c->s.stream, bufs, n);
    size_t skip = done > 0 ? (size_t)done : 0, rest = 0;
    if (done < 0 && done != UV_EAGAIN) {
        h1_close(c);
        return;
    }
    for (unsigned i = 0; i < n; i++)
        rest += bufs[i].len;
    rest -= skip;
    if (!rest)
        return;
    write_req *wr = malloc(sizeof *wr + rest);
    if (!wr) {
        h1_close(c);
        return;
    }
    size_t o = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t l = bufs[i].len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        memcpy(wr->data + o, bufs[i].base + skip, l - skip);
        o += l - skip;
        skip = 0;
    }
    wr->c = c;
    wr->len = rest;
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)rest);
    if (uv_write(&wr->uv, &c->s.stream, &b, 1, on_written) != 0) {
        free(wr);
        h1_close(c);
        return;
    }
    c->refs++;
}

/* ---- the server's own answers ------------------------------------------------- */

/* A short text/plain answer (a parse error, a limit, a timeout), logged. */
typedef struct canned {
    char head[256], body[256];
    uv_buf_t bufs[2];
} canned;

static void canned_build(cf_conn *c, canned *k, int status, const char *reason)
{
    cf_http_server *s = c->srv;
    int bl = snprintf(k->body, sizeof k->body, "%d %s: %s\n", status, cf_reason_phrase(status),
                      reason);
    if (bl >= (int)sizeof k->body)
        bl = (int)sizeof k->body - 1;
    int hl = snprintf(k->head, sizeof k->head,
                      "HTTP/1.1 %d %s\r\n%sContent-Type: text/plain; charset=utf-8\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n",
                      status, cf_reason_phrase(status), s->host->date(s->ctx), bl);
    k->bufs[0] = uv_buf_init(k->head, (unsigned)hl);
    k->bufs[1] = uv_buf_init(k->body, (unsigned)bl);
    s->host->event(s->ctx, c->peer, status, (size_t)bl, reason);
}

void h1_timeout_response(cf_conn *c, const char *what)
{
    /* The client is too slow: one try to tell it, then the connection goes. */
    canned k;
    canned_build(c, &k, 408, what);
    uv_try_write(&c->s.stream, k.bufs, 2);
}

void h1_error_response(cf_conn *c, int status, const char *reason)
{
    canned k;
    canned_build(c, &k, status, reason);
    h1_write(c, k.bufs, 2);
    h1_linger_close(c);
}

void h1_busy_response(cf_conn *c)
{
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 33\r\nConnection: close\r\n\r\n"
                               "503 Service Unavailable: too busy\n";
    uv_buf_t b = uv_buf_init((char *)busy, sizeof busy - 1);
    uv_try_write(&c->s.stream, &b, 1);
}

/* ---- the head ------------------------------------------------------------------ */

static inline char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}
#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static inline char *put_str(char *p, const char *s) { return put(p, s, strlen(s)); }

static char *put_uint(char *p, size_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static bool framing_header(const char *name)
{
    return strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Connection") == 0 ||
           strcasecmp(name, "Transfer-Encoding") == 0;
}

/* The response is complete, or its streamed body ended: count and log it. */
static void exchange_sent(cf_conn *c, cf_exchange *x) { c->srv->host->sent(c->srv->ctx, x); }

void h1_send(cf_exchange *x)
{
    cf_conn *c = x->proto;
    if (c->closing)
        return;
    cf_http_server *s = c->srv;
    /* A streamed body not read to its end leaves the connection unusable. */
    bool close = !x->keep_alive || s->stopping || (x->body_streamed && c->body_mode != BODY_NONE) ||
                 c->body_error;
    int status = x->status;
    /* An id the app's logger already used is kept, and sent. */
    if (x->request_id || s->request_ids || cf_exchange_header(x, "X-Request-Id")) {
        if (!x->request_id)
            x->request_id = cf_exchange_request_id(x, &s->id_seed);
        cf_kv_set(x->arena, &x->resp_headers, "X-Request-Id", (char *)x->request_id);
    }
    bool has_entity = cf_status_has_body(status);
    /* A streamed body has no length: chunked, or ended by closing (1.0). */
    bool upgrade = x->upgrade && status == 101;
    bool stream = x->stream && has_entity;
    bool chunked = stream && !x->stream_sized && x->minor == 1;
    if (stream && !x->stream_sized && x->minor == 0)
        close = true;
    size_t need = 256 + (x->content_type ? strlen(x->content_type) : 0);
    for (size_t i = 0; i < x->resp_headers.len; i++)
        need += strlen(x->resp_headers.items[i].name) + strlen(x->resp_headers.items[i].value) + 4;
    char stackbuf[1024];
    char *head = need <= sizeof stackbuf ? stackbuf : cf_arena_alloc(x->arena, need);
    if (!head) {
        h1_close(c);
        return;
    }
    char *p = PUT_LIT(head, "HTTP/1.1 ");
    p = put_uint(p, (size_t)status);
    *p++ = ' ';
    p = put_str(p, cf_reason_phrase(status));
    p = PUT_LIT(p, "\r\nServer: carafe\r\n");
    p = put_str(p, s->host->date(s->ctx));
    bool user_ct = false;
    for (size_t i = 0; i < x->resp_headers.len; i++) {
        cf_kv *h = &x->resp_headers.items[i];
        if (framing_header(h->name))
            continue; /* framing is ours to decide */
        user_ct |= strcasecmp(h->name, "Content-Type") == 0;
        p = put_str(p, h->name);
        p = PUT_LIT(p, ": ");
        p = put_str(p, h->value);
        p = PUT_LIT(p, "\r\n");
    }
    if (x->content_type && !user_ct && has_entity) {
        p = PUT_LIT(p, "Content-Type: ");
        p = put_str(p, x->content_type);
        p = PUT_LIT(p, "\r\n");
    }
    if (chunked) {
        p = PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
    } else if (has_entity && (!stream || x->stream_sized)) {
        p = PUT_LIT(p, "Content-Length: ");
        p = put_uint(p, stream ? (size_t)x->stream_len : x->resp_len);
        p = PUT_LIT(p, "\r\n");
    }
    if (upgrade)
        p = PUT_LIT(p, "Connection: Upgrade\r\n"); /* the HTTP exchange ends here */
    else if (close)
        p = PUT_LIT(p, "Connection: close\r\n");
    else if (x->minor == 0)
        p = PUT_LIT(p, "Connection: keep-alive\r\n");
    p = PUT_LIT(p, "\r\n");
    uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)(p - head)),
                        uv_buf_init(x->resp_body, (unsigned)x->resp_len)};
    bool body = has_entity && !x->is_head && x->resp_len;
    h1_write(c, bufs, body ? 2 : 1);
    x->bytes_sent = body ? x->resp_len : 0;
    c->keep_alive = !close && !upgrade;
    if (!x->streaming) /* else once the body has ended (h1_stream_end) */
        exchange_sent(c, x);
}

/* ---- streamed bodies ------------------------------------------------------ */

/* A writer suspended until the client has taken the backlog. It lives on
 * the writer's stack for the length of the wait. */
typedef struct drain_wait {
    cf_waitable w;
    struct drain_wait *next, **pprev;
} drain_wait;

static void drain_unlink(drain_wait *d)
{
    if (!d->pprev)
        return;
    *d->pprev = d->next;
    if (d->next)
        d->next->pprev = d->pprev;
    d->pprev = NULL;
}

static void drain_cancel(cf_waitable *w)
{
    drain_wait *d = (drain_wait *)w;
    drain_unlink(d);
    cf_waitable_complete(w, CF_ECANCELED);
}

void h1_wake_drain_waiters(cf_conn *c)
{
    while (c->drain_waiters) {
        drain_wait *d = c->drain_waiters;
        drain_unlink(d);
        cf_waitable_complete(&d->w, 0);
    }
    cf_sched_run();
}

int h1_stream_write(cf_exchange *x, const void *data, size_t len)
{
    cf_conn *c = x->proto;
    /* An event stream stops at once; a WebSocket still sends its close. */
    if (c->closing || (c->srv->stopping && x->stream_events && !x->upgrade))
        return CF_ECANCELED;
    if (x->stream_sized && len > x->stream_len - x->bytes_sent)
        return CF_EINVAL; /* more than the Content-Length said */
    char size[24];
    uv_buf_t bufs[3];
    unsigned n = 0;
    if (x->minor == 1 && !x->stream_sized) {
        bufs[n++] = uv_buf_init(size, (unsigned)snprintf(size, sizeof size, "%zx\r\n", len));
        bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
        bufs[n++] = uv_buf_init("\r\n", 2);
    } else {
        bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
    }
    h1_write(c, bufs, n);
    if (c->closing)
        return CF_ECANCELED;
    x->bytes_sent += len;
    return 0;
}

/* Suspend while more than WRITE_HIGH_WATER bytes wait for the client. */
int h1_stream_drain(cf_exchange *x)
{
    cf_conn *c = x->proto;
    if (c->closing)
        return CF_ECANCELED;
    if (h1_queued(c) <= WRITE_HIGH_WATER)
        return 0;
    drain_wait d = {.next = c->drain_waiters, .pprev = &c->drain_waiters};
    cf_waitable_init(&d.w, drain_cancel);
    if (d.next)
        d.next->pprev = &d.next;
    c->drain_waiters = &d;
    uint64_t limit = c->srv->send_timeout_ms;
    int rc = cf_task_await(&d.w, limit > 0 ? (int64_t)limit : -1);
    drain_unlink(&d);
    if (!d.w.done)
        cf_waitable_detach(&d.w); /* it dies with this frame */
    if (rc == CF_ETIMEDOUT && !c->closing) {
        c->srv->host->event(c->srv->ctx, c->peer, 0, 0, "send timeout: the client took nothing");
        h1_close(c); /* cancels the exchange: its producer ends */
    }
    return rc;
}

void h1_stream_end(cf_exchange *x, int result)
{
    cf_conn *c = x->proto;
    if (!c->closing) {
        /* A body whose producer failed, or that is shorter than its
         * Content-Length, is cut, so the client sees it incomplete. An
         * event stream the server ends (stopping) is ended properly: its
         * events are whole. */
        bool whole = x->upgrade         ? false /* the session's close is its end */
                     : x->stream_sized ? x->bytes_sent == x->stream_len
                                       : result >= 0 || (c->srv->stopping && x->stream_events);
        if (!whole)
            c->keep_alive = false;
        else if (!x->stream_sized && x->minor == 1) {
            uv_buf_t last = uv_buf_init("0\r\n\r\n", 5);
            h1_write(c, &last, 1);
        }
    }
    exchange_sent(c, x);
}
