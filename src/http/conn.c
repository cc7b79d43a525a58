/*
 * conn.c — an HTTP/1.1 connection: reading and framing requests, handing
 * them to the app pipeline, writing responses, keep-alive, pipelining,
 * timeouts and closing.
 *
 * One request per connection is in flight at a time; bytes of pipelined
 * requests wait in the read buffer and are parsed once the previous
 * request has finished (and while much of the earlier responses is still
 * unsent: a client that does not read does not make us buffer), so
 * responses leave in request order by construction. While a handler runs
 * the connection keeps reading, so a client that goes away is noticed at
 * once and the request is cancelled. The idle, header and linger timers
 * do not cut a response the client is still taking.
 *
 * Errors in framing (RFC 9112) are answered with their status and
 * "Connection: close", then the connection is closed gracefully: we shut
 * down our side and drain what the client still sends for a moment, so
 * the client reads the error instead of a reset.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#ifdef __linux__
#include <linux/sockios.h> /* SIOCOUTQ */
#include <sys/ioctl.h>
#endif

#include "app/req.h"
#include "server/worker.h"

enum conn_state {
    S_HEAD,       /* waiting for (the rest of) a request head */
    S_BODY,       /* reading a Content-Length body straight into the request */
    S_CHUNKED,    /* decoding a chunked body */
    S_HANDLING,   /* the request is in the pipeline */
    S_LINGER,     /* our side is shut down; draining until EOF or timeout */
};

enum timer_kind { T_NONE, T_IDLE, T_HEADER, T_BODY, T_LINGER };

struct cf_conn {
    cf_socket s; /* TCP or Unix socket */
    cf_worker *w;
    cf_conn *next, *prev;
    enum conn_state state;
    char *buf;         /* read buffer: request heads and pipelined bytes */
    size_t pos, len, cap;
    cf_req *rq;        /* request being read or handled */
    size_t body_got, body_cap;
    size_t max_body;
    cf_chunked chunked;
    cf_timer timer;
    enum timer_kind timer_kind;
    uint64_t deadline;
    size_t unsent_at_timer; /* response bytes not yet taken when the timer last fired */
    int refs;          /* the handle, the request in flight, pending writes */
    bool closing;      /* uv_close called */
    bool keep_alive;   /* after the current response */
    bool processing;   /* inside process(): do not re-enter */
    bool read_paused;
    bool rq_crashed;   /* its request will never finish: no longer counted */
    struct drain_wait *drain_waiters; /* streaming writers waiting for the client */
    char peer[64];
};

#define BUF_INITIAL 4096
#define BUF_MAX_PIPELINE (64 * 1024) /* beyond head limit, buffered while busy */
#define LINGER_MS 2000
#define STOP_GRACE_MS 1000 /* idle connections on a graceful stop */
/* Unsent response bytes above which the next pipelined request waits: a
 * client that pipelines requests without reading their responses must not
 * make the server buffer them all. */
#define WRITE_HIGH_WATER (64 * 1024)

static size_t queued_bytes(cf_conn *c)
{
    return uv_stream_get_write_queue_size(&c->s.stream);
}

/* Response bytes the client has not taken yet: queued here and, where the
 * kernel says, still in the socket's send buffer. */
static size_t unsent_bytes(cf_conn *c)
{
    size_t n = queued_bytes(c);
#ifdef SIOCOUTQ
    uv_os_fd_t fd;
    int outq = 0;
    if (uv_fileno(&c->s.handle, &fd) == 0 && ioctl(fd, SIOCOUTQ, &outq) == 0 &&
        outq > 0)
        n += (size_t)outq;
#endif
    return n;
}

static void process(cf_conn *c);
static void conn_close(cf_conn *c);
static void consume(cf_conn *c, size_t n);
static void start_reading(cf_conn *c);

/* ---- life cycle ---------------------------------------------------------- */

static void conn_unref(cf_conn *c)
{
    if (--c->refs > 0)
        return;
    cf_worker *w = c->w;
    free(c->buf);
    free(c);
    cf_worker_conn_closed(w);
}

static void on_closed(uv_handle_t *h)
{
    cf_conn *c = h->data;
    conn_unref(c);
}

static void conn_close(cf_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    cf_timer_stop(&c->timer);
    if (c->next)
        c->next->prev = c->prev;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->w->conns = c->next;
    c->w->nconns--;
    if (c->rq && c->state == S_HANDLING)
        cf_req_cancel(c->rq); /* the client is gone: stop its work */
    else if (c->rq) {
        cf_req_free(c->rq); /* read but never dispatched */
        c->rq = NULL;
    }
    uv_close(&c->s.handle, on_closed);
    /* A crashed request never releases its connection: count the close now. */
    cf_worker_conn_closed(c->w);
}

/* ---- timers ----------------------------------------------------------------- */

static int64_t timer_ms(cf_conn *c, enum timer_kind kind)
{
    const int64_t *opt = c->w->app->opt;
    switch (kind) {
    case T_IDLE: return opt[CF_OPT_KEEPALIVE_TIMEOUT];
    case T_HEADER: return opt[CF_OPT_HEADER_TIMEOUT];
    case T_BODY: return opt[CF_OPT_BODY_TIMEOUT];
    case T_LINGER: return LINGER_MS;
    default: return 0;
    }
}

static void log_event(cf_conn *c, int status, size_t bytes, const char *what);

/* A short text/plain answer of the server's own (a parse error, a limit, a
 * timeout), logged like a request; the caller sends bufs and closes. */
typedef struct canned {
    char head[256], body[256];
    uv_buf_t bufs[2];
} canned;

static void canned_build(cf_conn *c, canned *k, int status, const char *reason)
{
    int bl = snprintf(k->body, sizeof k->body, "%d %s: %s\n", status, cf_reason_phrase(status),
                      reason);
    if (bl >= (int)sizeof k->body)
        bl = (int)sizeof k->body - 1;
    int hl = snprintf(k->head, sizeof k->head,
                      "HTTP/1.1 %d %s\r\n%sContent-Type: text/plain; charset=utf-8\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n",
                      status, cf_reason_phrase(status), cf_worker_date(c->w), bl);
    k->bufs[0] = uv_buf_init(k->head, (unsigned)hl);
    k->bufs[1] = uv_buf_init(k->body, (unsigned)bl);
    log_event(c, status, (size_t)bl, reason);
}

/* The client is too slow: one try to tell it, then the connection goes. */
static void timeout_response(cf_conn *c, const char *what)
{
    canned k;
    canned_build(c, &k, 408, what);
    uv_try_write(&c->s.stream, k.bufs, 2);
}

static void on_timer(cf_timer *t)
{
    cf_conn *c = (cf_conn *)((char *)t - offsetof(cf_conn, timer));
    if (c->timer_kind == T_NONE)
        return;
    uint64_t now = uv_now(c->w->loop);
    if (now < c->deadline) { /* the deadline moved since the timer was set */
        cf_timer_start(&c->timer, c->deadline - now);
        return;
    }
    enum timer_kind kind = c->timer_kind;
    size_t unsent = unsent_bytes(c);
    if (unsent && kind != T_BODY && unsent != c->unsent_at_timer) {
        /* A response is still going out and the client is taking it: the
         * idle, header and linger clocks only run out once it is out, or
         * once it stops moving for a whole period. */
        c->unsent_at_timer = unsent;
        c->deadline = now + (uint64_t)timer_ms(c, kind);
        cf_timer_start(&c->timer, c->deadline - now);
        return;
    }
    c->timer_kind = T_NONE;
    if (kind == T_HEADER && c->len > c->pos)
        timeout_response(c, "header timeout");
    else if (kind == T_BODY)
        timeout_response(c, "body timeout");
    conn_close(c);
}

/* Timers are set and cleared on every request, so they are lazy: moving a
 * deadline later only records it, and the heap timer re-arms itself when
 * it fires early. That keeps heap operations off the hot path. */
static void set_timer(cf_conn *c, enum timer_kind kind)
{
    c->timer_kind = kind;
    c->unsent_at_timer = 0;
    if (kind == T_NONE)
        return;
    uint64_t deadline = uv_now(c->w->loop) + (uint64_t)timer_ms(c, kind);
    c->deadline = deadline;
    if (!cf_timer_active(&c->timer) || c->timer.due > deadline)
        cf_timer_start(&c->timer, deadline - uv_now(c->w->loop));
}

/* ---- writing ------------------------------------------------------------------ */

typedef struct write_req {
    uv_write_t uv;
    cf_conn *c;
    size_t len;
    char data[];
} write_req;

static void wake_drain_waiters(cf_conn *c);

static void on_written(uv_write_t *u, int status)
{
    write_req *wr = (write_req *)u;
    cf_conn *c = wr->c;
    free(wr);
    if (status < 0)
        conn_close(c);
    else if (c->drain_waiters && queued_bytes(c) <= WRITE_HIGH_WATER)
        wake_drain_waiters(c);
    else if (!c->closing && c->state == S_HEAD && !c->processing && c->len > c->pos &&
             queued_bytes(c) <= WRITE_HIGH_WATER)
        process(c); /* pipelined requests held back by the write backlog */
    conn_unref(c);
}

/* Write bufs: as much as the socket takes now, the rest copied and queued
 * (so the caller's memory may go right away). */
static void write_bufs(cf_conn *c, uv_buf_t *bufs, unsigned n)
{
    if (c->closing)
        return;
    int done = uv_try_write(&c->s.stream, bufs, n);
    size_t skip = done > 0 ? (size_t)done : 0, rest = 0;
    if (done < 0 && done != UV_EAGAIN) {
        conn_close(c);
        return;
    }
    for (unsigned i = 0; i < n; i++)
        rest += bufs[i].len;
    rest -= skip;
    if (!rest)
        return;
    write_req *wr = malloc(sizeof *wr + rest);
    if (!wr) {
        conn_close(c);
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
        conn_close(c);
        return;
    }
    c->refs++;
}

static void on_shutdown(uv_shutdown_t *s, int status)
{
    cf_conn *c = s->data;
    free(s);
    if (status < 0)
        conn_close(c);
    conn_unref(c);
}

/* Stop sending, drain input for a while, then close (see the top). */
static void linger_close(cf_conn *c)
{
    if (c->closing || c->state == S_LINGER)
        return;
    c->state = S_LINGER;
    if (c->rq && !c->rq->sent) {
        cf_req_free(c->rq);
        c->rq = NULL;
    }
    uv_shutdown_t *s = malloc(sizeof *s);
    if (!s || uv_shutdown(s, &c->s.stream, on_shutdown) != 0) {
        free(s);
        conn_close(c);
        return;
    }
    s->data = c;
    c->refs++;
    set_timer(c, T_LINGER);
    if (c->read_paused)
        start_reading(c);
}

static void error_response(cf_conn *c, int status, const char *reason)
{
    canned k;
    canned_build(c, &k, status, reason);
    write_bufs(c, k.bufs, 2);
    linger_close(c);
}

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

/* X-Request-Id: the client's (or proxy's) when it is a sane token, else a
 * new one; sent back and logged so a line in the log finds its request. */
static const char *request_id(cf_conn *c, cf_req *rq)
{
    const char *id = cf_header(rq, "X-Request-Id");
    if (id) {
        size_t n = 0;
        while (id[n] && n <= 128 && (isalnum((unsigned char)id[n]) || strchr("-_.:", id[n])))
            n++;
        if (n && !id[n])
            return id;
    }
    /* splitmix64 over a per-worker counter: unique per worker, hard to guess. */
    uint64_t z = (c->w->id_seed += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return cf_sprintf(rq, "%016llx", (unsigned long long)z);
}

static size_t json_escape(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o] = 0;
    return o;
}

static void log_request(cf_conn *c, cf_req *rq, int status)
{
    cf_worker *w = c->w;
    char line[2048];
    double ms = (double)(cf_now_ns() - rq->start_ns) / 1e6;
    const char *id = rq->request_id ? rq->request_id : "-";
    int n;
    if (w->log_json) {
        char target[1024], ua[256];
        json_escape(target, sizeof target, rq->target);
        const char *agent = cf_header(rq, "User-Agent");
        json_escape(ua, sizeof ua, agent ? agent : "");
        n = snprintf(line, sizeof line,
                     "{\"time\":\"%s\",\"remote\":\"%s\",\"request_id\":\"%s\",\"method\":\"%s\","
                     "\"target\":\"%s\",\"protocol\":\"HTTP/1.%d\",\"status\":%d,\"bytes\":%zu,"
                     "\"duration_ms\":%.3f,\"route\":\"%s\",\"user_agent\":\"%s\"}\n",
                     w->log_date, c->peer, id, rq->method, target, rq->minor, status, rq->bytes_sent,
                     ms, rq->route ? rq->route->name : "", ua);
    } else {
        n = snprintf(line, sizeof line, "%s - - [%s] \"%s %.900s HTTP/1.%d\" %d %zu %.3fms %s\n",
                     c->peer, w->log_date, rq->method, rq->target, rq->minor, status,
                     rq->bytes_sent, ms, id);
    }
    if (n < 0)
        return;
    if (n > (int)sizeof line - 1)
        n = (int)sizeof line - 1, line[n - 1] = '\n';
    cf_worker_log(w, line, (size_t)n);
}

/* An access log line for what the server did on its own (a framing error,
 * a timeout), with no request to name; status 0 is logged as "-". */
static void log_event(cf_conn *c, int status, size_t bytes, const char *what)
{
    cf_worker *w = c->w;
    if (!w->access_log)
        return;
    char line[640], st[8] = "-", esc[256];
    if (status)
        snprintf(st, sizeof st, "%d", status);
    int n;
    if (w->log_json) {
        json_escape(esc, sizeof esc, what);
        n = snprintf(line, sizeof line,
                     "{\"time\":\"%s\",\"remote\":\"%s\",\"status\":%s,\"bytes\":%zu,"
                     "\"error\":\"%s\"}\n", w->log_date, c->peer, status ? st : "null", bytes, esc);
    } else {
        n = snprintf(line, sizeof line, "%s - - [%s] \"-\" %s %zu 0.000ms - (%s)\n", c->peer,
                     w->log_date, st, bytes, what);
    }
    if (n > 0)
        cf_worker_log(w, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* The response has gone out (or, streamed, ended): count and log it. */
static void request_sent(cf_conn *c, cf_req *rq)
{
    cf_metrics_request(c->w->metrics, rq->route, rq->status, cf_now_ns() - rq->start_ns);
    if (c->w->access_log)
        log_request(c, rq, rq->status);
}

/* The pipeline's transport hook: serialize and write the response. This
 * runs for every request, hence the hand-rolled formatting. */
static void send_response(cf_req *rq)
{
    cf_conn *c = rq->tp_ctx;
    if (c->closing)
        return;
    cf_worker *w = c->w;
    bool close = !rq->keep_alive || w->stopping;
    int status = rq->status;
    if (w->access_log || cf_header(rq, "X-Request-Id")) {
        rq->request_id = request_id(c, rq);
        cf_set_header(rq, "X-Request-Id", rq->request_id);
    }
    bool has_entity = cf_status_has_body(status);
    /* A streamed body has no length: chunked, or ended by closing (1.0). */
    bool upgrade = rq->ws && status == 101;
    bool stream = rq->stream_fn && has_entity;
    bool chunked = stream && !rq->stream_sized && rq->minor == 1;
    if (stream && !rq->stream_sized && rq->minor == 0)
        close = true;
    size_t need = 256 + (rq->content_type ? strlen(rq->content_type) : 0);
    for (size_t i = 0; i < rq->resp_headers.len; i++)
        need += strlen(rq->resp_headers.items[i].name) + strlen(rq->resp_headers.items[i].value) + 4;
    char stackbuf[1024];
    char *head = need <= sizeof stackbuf ? stackbuf : cf_alloc(rq, need);
    char *p = PUT_LIT(head, "HTTP/1.1 ");
    p = put_uint(p, (size_t)status);
    *p++ = ' ';
    p = put_str(p, cf_reason_phrase(status));
    p = PUT_LIT(p, "\r\nServer: carafe\r\n");
    p = put_str(p, cf_worker_date(w));
    bool user_ct = false;
    for (size_t i = 0; i < rq->resp_headers.len; i++) {
        cf_kv *h = &rq->resp_headers.items[i];
        if (framing_header(h->name))
            continue; /* framing is ours to decide */
        user_ct |= strcasecmp(h->name, "Content-Type") == 0;
        p = put_str(p, h->name);
        p = PUT_LIT(p, ": ");
        p = put_str(p, h->value);
        p = PUT_LIT(p, "\r\n");
    }
    if (rq->content_type && !user_ct && has_entity) {
        p = PUT_LIT(p, "Content-Type: ");
        p = put_str(p, rq->content_type);
        p = PUT_LIT(p, "\r\n");
    }
    if (chunked) {
        p = PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
    } else if (has_entity && (!stream || rq->stream_sized)) {
        p = PUT_LIT(p, "Content-Length: ");
        p = put_uint(p, stream ? (size_t)rq->stream_len : rq->resp_len);
        p = PUT_LIT(p, "\r\n");
    }
    if (upgrade)
        p = PUT_LIT(p, "Connection: Upgrade\r\n"); /* the HTTP exchange ends here */
    else if (close)
        p = PUT_LIT(p, "Connection: close\r\n");
    else if (rq->minor == 0)
        p = PUT_LIT(p, "Connection: keep-alive\r\n");
    p = PUT_LIT(p, "\r\n");
    uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)(p - head)),
                        uv_buf_init(rq->resp_body, (unsigned)rq->resp_len)};
    bool body = has_entity && !rq->is_head && rq->resp_len;
    write_bufs(c, bufs, body ? 2 : 1);
    rq->bytes_sent = body ? rq->resp_len : 0;
    c->keep_alive = !close && !upgrade;
    if (!rq->streaming) /* else once the body has ended (stream_end) */
        request_sent(c, rq);
}

/* ---- streaming bodies ------------------------------------------------------ */

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

static void wake_drain_waiters(cf_conn *c)
{
    while (c->drain_waiters) {
        drain_wait *d = c->drain_waiters;
        drain_unlink(d);
        cf_waitable_complete(&d->w, 0);
    }
    cf_sched_run();
}

static int stream_write(cf_req *rq, const void *data, size_t len)
{
    cf_conn *c = rq->tp_ctx;
    /* An event stream stops at once; a WebSocket still sends its close. */
    if (c->closing || (c->w->stopping && rq->stream_events && !rq->ws))
        return CF_ECANCELED;
    if (rq->stream_sized && len > rq->stream_len - rq->bytes_sent)
        return CF_EINVAL; /* more than the Content-Length said */
    char size[24];
    uv_buf_t bufs[3];
    unsigned n = 0;
    if (rq->minor == 1 && !rq->stream_sized) {
        bufs[n++] = uv_buf_init(size, (unsigned)snprintf(size, sizeof size, "%zx\r\n", len));
        bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
        bufs[n++] = uv_buf_init("\r\n", 2);
    } else {
        bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
    }
    write_bufs(c, bufs, n);
    if (c->closing)
        return CF_ECANCELED;
    rq->bytes_sent += len;
    return 0;
}

/* Suspend while more than WRITE_HIGH_WATER bytes wait for the client. */
static int stream_drain(cf_req *rq)
{
    cf_conn *c = rq->tp_ctx;
    if (c->closing)
        return CF_ECANCELED;
    if (queued_bytes(c) <= WRITE_HIGH_WATER)
        return 0;
    drain_wait d = {.next = c->drain_waiters, .pprev = &c->drain_waiters};
    cf_waitable_init(&d.w, drain_cancel);
    if (d.next)
        d.next->pprev = &d.next;
    c->drain_waiters = &d;
    int64_t limit = c->w->app->opt[CF_OPT_SEND_TIMEOUT];
    int rc = cf_await(rq, &d.w, limit > 0 ? limit : -1);
    drain_unlink(&d);
    if (!d.w.done)
        cf_waitable_detach(&d.w); /* it dies with this frame */
    if (rc == CF_ETIMEDOUT && !c->closing) {
        log_event(c, 0, 0, "send timeout: the client took nothing");
        conn_close(c); /* cancels the request: its producer ends */
    }
    return rc;
}

static void stream_end(cf_req *rq, int result)
{
    cf_conn *c = rq->tp_ctx;
    if (!c->closing) {
        /* A body whose producer failed, or that is shorter than its
         * Content-Length, is cut, so the client sees it incomplete. An
         * event stream the server ends (stopping) is ended properly: its
         * events are whole. */
        bool whole = rq->ws                ? false /* the session's close is its end */
                     : rq->stream_sized ? rq->bytes_sent == rq->stream_len
                                        : result >= 0 || (c->w->stopping && rq->stream_events);
        if (!whole)
            c->keep_alive = false;
        else if (!rq->stream_sized && rq->minor == 1) {
            uv_buf_t last = uv_buf_init("0\r\n\r\n", 5);
            write_bufs(c, &last, 1);
        }
    }
    request_sent(c, rq);
}

/* A WebSocket session wants more input: what is buffered, then the socket. */
static void ws_resume(cf_req *rq)
{
    cf_conn *c = rq->tp_ctx;
    if (c->closing)
        return;
    if (c->len > c->pos)
        consume(c, cf_ws_input(rq, c->buf + c->pos, c->len - c->pos));
    if (c->read_paused && c->len - c->pos < c->cap - 1024)
        start_reading(c);
}

/* The request has ended (teardown done, its tasks finished). */
static void request_finished(cf_req *rq)
{
    cf_conn *c = rq->tp_ctx;
    c->rq = NULL;
    c->w->inflight--;
    cf_worker_request_done(c->w);
    if (!c->closing) {
        if (c->keep_alive && !c->w->stopping) {
            c->state = S_HEAD;
            set_timer(c, c->len > c->pos ? T_HEADER : T_IDLE);
            if (c->read_paused)
                start_reading(c);
            if (!c->processing)
                process(c);
        } else {
            linger_close(c);
        }
    }
    conn_unref(c);
}

/* A task of the request died of a crash (see cf_coro_enable_crash_recovery):
 * its client gets a closed connection, and the worker, whose memory may be
 * damaged, finishes its other requests and is replaced. */
static void request_crashed(cf_req *rq, bool main_task)
{
    cf_conn *c = rq->tp_ctx;
    (void)main_task;
    if (!c->rq_crashed) { /* a request may crash in more than one task */
        c->rq_crashed = true;
        c->w->inflight--; /* so the drain does not wait for it */
    }
    cf_worker_begin_stop(c->w, 70, "crashed in a handler");
    conn_close(c);
}

static const cf_transport http_transport = {send_response, request_finished, request_crashed,
                                             stream_write, stream_drain, stream_end, ws_resume,
                                             true};

/* ---- reading ------------------------------------------------------------------ */

static void dispatch(cf_conn *c)
{
    c->state = S_HANDLING;
    set_timer(c, T_NONE);
    c->refs++; /* released in request_finished */
    c->w->inflight++;
    cf_req_dispatch(c->rq);
}

static void consume(cf_conn *c, size_t n)
{
    c->pos += n;
    if (c->pos == c->len)
        c->pos = c->len = 0;
}

/* Start reading a body: returns false if the connection is done with. */
static void begin_request(cf_conn *c, const cf_http_head *h, size_t head_len)
{
    cf_req *rq = cf_req_new(c->w->app, &http_transport, c);
    if (!rq) {
        error_response(c, 503, "out of memory");
        return;
    }
    const char *reason = NULL;
    int status = cf_req_set_head(rq, h, c->buf + c->pos, head_len, &reason);
    consume(c, head_len);
    if (status) {
        cf_req_free(rq);
        error_response(c, status, reason);
        return;
    }
    c->rq = rq;
    cf_req_route(rq);
    c->max_body = cf_req_max_body(rq);
    c->body_got = 0;
    if (h->chunked) {
        cf_chunked_init(&c->chunked);
        c->body_cap = 0;
        rq->body = NULL;
        c->state = S_CHUNKED;
    } else if (h->content_length > 0) {
        if ((uint64_t)h->content_length > c->max_body) {
            error_response(c, 413, "the request body is larger than the limit");
            return;
        }
        rq->body_len = (size_t)h->content_length;
        rq->body = cf_alloc(rq, rq->body_len + 1);
        size_t avail = c->len - c->pos;
        size_t take = avail < rq->body_len ? avail : rq->body_len;
        memcpy(rq->body, c->buf + c->pos, take);
        consume(c, take);
        c->body_got = take;
        rq->body[rq->body_len] = 0;
        c->state = S_BODY;
    } else {
        dispatch(c);
        return;
    }
    if (h->expect_continue && h->minor == 1 && c->len == c->pos) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init((char *)cont, sizeof cont - 1);
        write_bufs(c, &b, 1);
    }
    if (c->state == S_BODY && c->body_got == rq->body_len)
        dispatch(c);
    else
        set_timer(c, T_BODY);
}

static void chunked_step(cf_conn *c)
{
    size_t used = 0, out = 0;
    const char *reason = NULL;
    char *in = c->buf + c->pos;
    int r = cf_chunked_decode(&c->chunked, in, c->len - c->pos, &used, &out, &reason);
    if (r < 0) {
        error_response(c, 400, reason ? reason : "bad chunked body");
        return;
    }
    cf_req *rq = c->rq;
    if (out) {
        if (c->body_got + out > c->max_body) {
            error_response(c, 413, "the request body is larger than the limit");
            return;
        }
        if (c->body_got + out + 1 > c->body_cap) {
            size_t cap = c->body_cap ? c->body_cap * 2 : 4096;
            while (cap < c->body_got + out + 1)
                cap *= 2;
            if (cap > c->max_body + 1)
                cap = c->max_body + 1;
            rq->body = cf_arena_realloc(&rq->arena, rq->body, c->body_got, cap);
            c->body_cap = cap;
        }
        memcpy(rq->body + c->body_got, in, out);
        c->body_got += out;
    }
    consume(c, used);
    if (r == 1) {
        if (!rq->body)
            rq->body = cf_alloc(rq, 1);
        rq->body[c->body_got] = 0;
        rq->body_len = c->body_got;
        dispatch(c);
    } else {
        set_timer(c, T_BODY);
    }
}

static void process(cf_conn *c)
{
    c->processing = true;
    while (!c->closing) {
        if (c->state == S_HEAD) {
            if (c->len == c->pos || queued_bytes(c) > WRITE_HIGH_WATER)
                break; /* no bytes, or wait until the client reads (on_written) */
            cf_hfield fields[128];
            cf_http_head h;
            int status = 0;
            const char *reason = NULL;
            size_t nf = c->w->limits.max_fields < 128 ? c->w->limits.max_fields : 128;
            int r = cf_http_parse_head(c->buf + c->pos, c->len - c->pos, &c->w->limits, &h, fields,
                                       nf, &status, &reason);
            if (r < 0) {
                error_response(c, status, reason);
                break;
            }
            if (r == 0) {
                if (c->timer_kind != T_HEADER)
                    set_timer(c, T_HEADER); /* the clock starts at the first byte */
                break;
            }
            begin_request(c, &h, (size_t)r);
        } else if (c->state == S_CHUNKED) {
            if (c->len == c->pos)
                break;
            chunked_step(c);
            if (c->state == S_CHUNKED)
                break;
        } else {
            break; /* S_BODY reads straight into the request; others wait */
        }
    }
    c->processing = false;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    cf_conn *c = h->data;
    (void)suggested;
    if (c->state == S_BODY && c->rq) {
        /* Content-Length bodies go straight to their final place. */
        out->base = c->rq->body + c->body_got;
        out->len = c->rq->body_len - c->body_got;
        return;
    }
    if (c->pos > 0 && c->pos == c->len)
        c->pos = c->len = 0;
    if (c->cap - c->len < 1024) {
        if (c->pos > 0) { /* reclaim consumed space first */
            memmove(c->buf, c->buf + c->pos, c->len - c->pos);
            c->len -= c->pos;
            c->pos = 0;
        }
        size_t limit = c->w->limits.max_header + BUF_MAX_PIPELINE;
        if (c->cap - c->len < 1024 && c->cap < limit) {
            size_t cap = c->cap * 2 > limit ? limit : c->cap * 2;
            char *b = realloc(c->buf, cap);
            if (b) {
                c->buf = b;
                c->cap = cap;
            }
        }
    }
    out->base = c->buf + c->len;
    out->len = c->cap - c->len;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    cf_conn *c = s->data;
    (void)b;
    if (n == 0)
        return;
    if (n == UV_ENOBUFS) {
        /* Buffer full while a request is in the pipeline: wait for it. */
        uv_read_stop(s);
        c->read_paused = true;
        return;
    }
    if (n < 0) {
        /* EOF or error. A request in the pipeline is cancelled (client
         * gone); a lingering close is complete. */
        conn_close(c);
        return;
    }
    if (c->state == S_LINGER) {
        c->pos = c->len = 0; /* discard */
        return;
    }
    if (c->state == S_BODY) {
        c->body_got += (size_t)n;
        if (c->body_got == c->rq->body_len)
            dispatch(c);
        else
            set_timer(c, T_BODY);
        return;
    }
    c->len += (size_t)n;
    if (c->state == S_HANDLING && c->rq && c->rq->ws && c->rq->streaming)
        consume(c, cf_ws_input(c->rq, c->buf + c->pos, c->len - c->pos));
    if (c->state == S_HANDLING && c->len - c->pos >= c->cap - 1024 &&
        c->cap >= c->w->limits.max_header + BUF_MAX_PIPELINE) {
        uv_read_stop(s);
        c->read_paused = true;
    }
    if (!c->processing)
        process(c);
}

static void start_reading(cf_conn *c)
{
    c->read_paused = false;
    if (uv_read_start(&c->s.stream, on_alloc, on_read) != 0)
        conn_close(c);
}

void cf_conn_accept(cf_worker *w)
{
    cf_conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    if (w->is_unix)
        uv_pipe_init(w->loop, &c->s.pipe, 0);
    else
        uv_tcp_init(w->loop, &c->s.tcp);
    c->s.handle.data = c;
    c->w = w;
    c->refs = 1;
    /* Before anything can call conn_close: a zeroed timer looks active
     * (idx 0) and stopping it would take another timer out of the heap. */
    cf_timer_init(&c->timer, on_timer);
    if (uv_accept(&w->listener.stream, &c->s.stream) != 0) {
        c->closing = true;
        uv_close(&c->s.handle, on_closed);
        return;
    }
    w->nconns++;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    if (w->nconns > w->max_conns || w->stopping) {
        static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                                   "Content-Length: 33\r\nConnection: close\r\n\r\n"
                                   "503 Service Unavailable: too busy\n";
        uv_buf_t b = uv_buf_init((char *)busy, sizeof busy - 1);
        uv_try_write(&c->s.stream, &b, 1);
        conn_close(c);
        return;
    }
    c->buf = malloc(BUF_INITIAL);
    c->cap = c->buf ? BUF_INITIAL : 0;
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    strcpy(c->peer, w->is_unix ? "unix" : "-");
    if (!w->is_unix)
        uv_tcp_nodelay(&c->s.tcp, 1);
    if (!w->is_unix && uv_tcp_getpeername(&c->s.tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof c->peer);
        else if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof c->peer);
    }
    c->state = S_HEAD;
    set_timer(c, T_HEADER);
    start_reading(c);
}

void cf_conn_stop_idle(cf_worker *w)
{
    /* Event streams would run until their clients leave: their producers
     * are cancelled, and the streams ended properly (stream_end). Other
     * streamed bodies (a download, an export) finish like any request. */
    for (cf_conn *c = w->conns; c; c = c->next)
        if (c->state == S_HANDLING && c->rq && c->rq->streaming && c->rq->stream_events)
            cf_req_cancel(c->rq);
    cf_sched_run();
    /* Closing an idle keep-alive connection races with a request the
     * client may be sending right now (it would see a reset). Give each a
     * short grace instead: a request arriving meanwhile is answered with
     * "Connection: close"; silence closes it. */
    for (cf_conn *c = w->conns; c; c = c->next) {
        if (c->state == S_HEAD && c->len == c->pos && c->timer_kind == T_IDLE) {
            uint64_t grace = uv_now(w->loop) + STOP_GRACE_MS;
            if (c->deadline > grace) {
                c->deadline = grace;
                cf_timer_start(&c->timer, STOP_GRACE_MS);
            }
        }
    }
}
