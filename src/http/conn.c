/*
 * conn.c — an HTTP/1.1 connection: reading and framing requests into
 * exchanges, handing them to the app through the host (http/host.h),
 * request bodies (whole before dispatch, or streamed to a reader with
 * backpressure), keep-alive, pipelining, timeouts and closing. The
 * response side is h1_send.c.
 *
 * One exchange per connection is in flight at a time; bytes of pipelined
 * requests wait in the read buffer and are parsed once the previous
 * exchange has finished (and while much of the earlier responses is still
 * unsent: a client that does not read does not make us buffer), so
 * responses leave in request order by construction. While a handler runs
 * the connection keeps reading, so a client that goes away is noticed at
 * once and the exchange is cancelled. The idle, header and linger timers
 * do not cut a response the client is still taking.
 *
 * Errors in framing (RFC 9112) are answered with their status and
 * "Connection: close", then the connection is closed gracefully: we shut
 * down our side and drain what the client still sends for a moment, so
 * the client reads the error instead of a reset.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <linux/sockios.h> /* SIOCOUTQ */
#include <sys/ioctl.h>
#endif

#include "http/h1.h"

#define BUF_INITIAL 4096
#define BUF_MAX_PIPELINE (64 * 1024) /* beyond head limit, buffered while busy */
#define LINGER_MS 2000
#define STOP_GRACE_MS 1000 /* idle connections on a graceful stop */

/* Response bytes the client has not taken yet: queued here and, where the
 * kernel says, still in the socket's send buffer. */
static size_t unsent_bytes(cf_conn *c)
{
    size_t n = h1_queued(c);
#ifdef SIOCOUTQ
    uv_os_fd_t fd;
    int outq = 0;
    if (uv_fileno(&c->s.handle, &fd) == 0 && ioctl(fd, SIOCOUTQ, &outq) == 0 && outq > 0)
        n += (size_t)outq;
#endif
    return n;
}

static void set_timer(cf_conn *c, enum timer_kind kind);
static void wake_body_reader(cf_conn *c);

/* ---- life cycle ---------------------------------------------------------- */

void h1_unref(cf_conn *c)
{
    if (--c->refs > 0)
        return;
    cf_http_server *s = c->srv;
    free(c->buf);
    free(c);
    s->host->conn_closed(s->ctx);
}

static void on_closed(uv_handle_t *h) { h1_unref(h->data); }

void h1_close(cf_conn *c)
{
    if (c->closing)
        return;
    cf_http_server *s = c->srv;
    c->closing = true;
    cf_timer_stop(&c->timer);
    if (c->next)
        c->next->prev = c->prev;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    s->nconns--;
    if (c->x && c->state == S_HANDLING) {
        /* The reader sees CF_ECANCELED and runs at once: it may finish
         * the exchange before there is anything left to cancel. */
        wake_body_reader(c);
        if (c->x)
            s->host->cancel(c->x); /* the client is gone: stop its work */
    } else if (c->x) {
        s->host->exchange_free(c->x); /* read but never dispatched */
        c->x = NULL;
    }
    uv_close(&c->s.handle, on_closed);
    /* A crashed exchange never releases its connection: count the close now. */
    s->host->conn_closed(s->ctx);
}

/* ---- timers ----------------------------------------------------------------- */

static uint64_t timer_ms(cf_conn *c, enum timer_kind kind)
{
    switch (kind) {
    case T_IDLE: return c->srv->keepalive_ms;
    case T_HEADER: return c->srv->header_ms;
    case T_BODY: return c->srv->body_ms;
    case T_LINGER: return LINGER_MS;
    default: return 0;
    }
}

static void on_timer(cf_timer *t)
{
    cf_conn *c = (cf_conn *)((char *)t - offsetof(cf_conn, timer));
    if (c->timer_kind == T_NONE)
        return;
    uint64_t now = uv_now(c->srv->loop);
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
        c->deadline = now + timer_ms(c, kind);
        cf_timer_start(&c->timer, c->deadline - now);
        return;
    }
    c->timer_kind = T_NONE;
    if (kind == T_HEADER && c->len > c->pos)
        h1_timeout_response(c, "header timeout");
    else if (kind == T_BODY)
        h1_timeout_response(c, "body timeout");
    h1_close(c);
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
    uint64_t now = uv_now(c->srv->loop);
    uint64_t deadline = now + timer_ms(c, kind);
    c->deadline = deadline;
    if (!cf_timer_active(&c->timer) || c->timer.due > deadline)
        cf_timer_start(&c->timer, deadline - now);
}

static void on_shutdown(uv_shutdown_t *s, int status)
{
    cf_conn *c = s->data;
    free(s);
    if (status < 0)
        h1_close(c);
    h1_unref(c);
}

/* Stop sending, drain input for a while, then close (see the top). */
void h1_linger_close(cf_conn *c)
{
    if (c->closing || c->state == S_LINGER)
        return;
    c->state = S_LINGER;
    if (c->x && !c->x->sent) {
        c->srv->host->exchange_free(c->x);
        c->x = NULL;
    }
    uv_shutdown_t *s = malloc(sizeof *s);
    if (!s || uv_shutdown(s, &c->s.stream, on_shutdown) != 0) {
        free(s);
        h1_close(c);
        return;
    }
    s->data = c;
    c->refs++;
    set_timer(c, T_LINGER);
    if (c->read_paused)
        h1_start_reading(c);
}

/* ---- the exchange's operations on the input side ------------------------------ */

/* An upgraded connection's session wants more input: what is buffered,
 * then the socket. */
static void resume_input(cf_exchange *x)
{
    cf_conn *c = x->proto;
    if (c->closing)
        return;
    if (c->len > c->pos && x->input)
        h1_consume(c, x->input(x->input_ctx, c->buf + c->pos, c->len - c->pos));
    if (c->read_paused && c->len - c->pos < c->cap - 1024)
        h1_start_reading(c);
}

static void body_wait_cancel(cf_waitable *w) { cf_waitable_complete(w, CF_ECANCELED); }

static void wake_body_reader(cf_conn *c)
{
    cf_waitable *w = c->body_waiter;
    if (!w)
        return;
    c->body_waiter = NULL;
    cf_waitable_complete(w, 0);
}

static long body_fail(cf_conn *c, int code, const char *why)
{
    c->body_error = code;
    c->x->errmsg = why;
    c->keep_alive = false; /* the rest of the input cannot be framed */
    return code;
}

/* Body bytes already buffered, up to cap: decoded chunks or a slice of a
 * Content-Length body. Returns 0 when none is buffered. */
static long take_body(cf_conn *c, char *buf, size_t cap)
{
    size_t avail = c->len - c->pos;
    if (c->body_mode == BODY_LENGTH) {
        size_t n = avail < cap ? avail : cap;
        if (n > c->body_left)
            n = (size_t)c->body_left;
        memcpy(buf, c->buf + c->pos, n);
        h1_consume(c, n);
        c->body_left -= n;
        if (!c->body_left)
            c->body_mode = BODY_NONE;
        return (long)n;
    }
    /* Decoding moves the data of at most `cap` input bytes to the front,
     * so what comes out always fits. */
    size_t in = avail < cap ? avail : cap, used = 0, out = 0;
    const char *reason = NULL;
    int r = cf_chunked_decode(&c->chunked, c->buf + c->pos, in, &used, &out, &reason);
    if (r < 0)
        return body_fail(c, CF_EINVAL, reason ? reason : "bad chunked body");
    if (c->body_got + out > c->max_body)
        return body_fail(c, CF_ETOOBIG, "the request body is larger than the limit");
    memcpy(buf, c->buf + c->pos, out);
    c->body_got += out;
    h1_consume(c, used);
    if (r == 1)
        c->body_mode = BODY_NONE;
    return (long)out;
}

/* ops->body_read: a route that streams its body reads it as it comes. */
static long body_read(cf_exchange *x, void *buf, size_t cap)
{
    cf_conn *c = x->proto;
    for (;;) {
        if (c->body_error)
            return c->body_error;
        if (c->closing)
            return CF_ECANCELED;
        while (c->body_mode != BODY_NONE && c->len > c->pos) {
            size_t before = c->len - c->pos;
            long n = take_body(c, buf, cap);
            if (n != 0) {
                if (n > 0 && c->read_paused)
                    h1_start_reading(c);
                return n;
            }
            if (c->len - c->pos == before)
                break; /* nothing decodable yet */
        }
        if (c->body_mode == BODY_NONE) {
            x->body_done = true;
            if (c->read_paused)
                h1_start_reading(c);
            return 0;
        }
        if (c->continue_pending) {
            c->continue_pending = false;
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            uv_buf_t b = uv_buf_init((char *)cont, sizeof cont - 1);
            h1_write(c, &b, 1);
        }
        if (c->read_paused)
            h1_start_reading(c);
        cf_waitable w;
        cf_waitable_init(&w, body_wait_cancel);
        c->body_waiter = &w;
        int rc = cf_task_await(&w, (int64_t)c->srv->body_ms);
        if (c->body_waiter == &w)
            c->body_waiter = NULL;
        if (!w.done)
            cf_waitable_detach(&w);
        if (rc == CF_ETIMEDOUT)
            return body_fail(c, CF_ETIMEDOUT, "body timeout: the client sent nothing");
        if (rc < 0)
            return rc;
    }
}

/* The exchange has ended (teardown done, its tasks finished). */
static void exchange_finished(cf_exchange *x)
{
    cf_conn *c = x->proto;
    cf_http_server *s = c->srv;
    c->x = NULL;
    s->inflight--;
    s->host->request_done(s->ctx);
    if (!c->closing) {
        if (c->keep_alive && !s->stopping) {
            c->state = S_HEAD;
            set_timer(c, c->len > c->pos ? T_HEADER : T_IDLE);
            if (c->read_paused)
                h1_start_reading(c);
            if (!c->processing)
                h1_process(c);
        } else {
            h1_linger_close(c);
        }
    }
    h1_unref(c);
}

/* A task of the exchange died of a crash (see cf_coro_enable_crash_recovery):
 * its client gets a closed connection, and the host, whose memory may be
 * damaged, finishes its other exchanges and is replaced. */
static void exchange_crashed(cf_exchange *x)
{
    cf_conn *c = x->proto;
    if (!c->x_crashed) { /* an exchange may crash in more than one task */
        c->x_crashed = true;
        c->srv->inflight--; /* so the drain does not wait for it */
    }
    c->srv->host->crashed(c->srv->ctx);
    h1_close(c);
}

static const cf_exchange_ops h1_ops = {
    .send = h1_send,
    .write = h1_stream_write,
    .drain = h1_stream_drain,
    .end = h1_stream_end,
    .body_read = body_read,
    .resume_input = resume_input,
    .finished = exchange_finished,
    .crashed = exchange_crashed,
    .upgrades = true,
};

/* ---- reading ------------------------------------------------------------------ */

static void dispatch(cf_conn *c)
{
    c->state = S_HANDLING;
    set_timer(c, T_NONE);
    c->refs++; /* released in exchange_finished */
    c->srv->inflight++;
    c->srv->host->dispatch(c->x);
}

/* The app answers a refused exchange (cf_exchange_refuse) without its body;
 * what the client still sends is discarded by the lingering close after. */
static void dispatch_refused(cf_conn *c)
{
    cf_exchange *x = c->x;
    x->body = cf_arena_alloc(x->arena, 1);
    if (!x->body) {
        h1_error_response(c, 503, "out of memory");
        return;
    }
    x->body[0] = 0;
    x->body_len = 0;
    x->body_streamed = false;
    dispatch(c);
}

void h1_consume(cf_conn *c, size_t n)
{
    c->pos += n;
    if (c->pos == c->len)
        c->pos = c->len = 0;
}

static void begin_exchange(cf_conn *c, const cf_http_head *h, size_t head_len)
{
    cf_http_server *s = c->srv;
    cf_exchange *x = s->host->exchange_new(s->ctx, &h1_ops, c);
    if (!x) {
        h1_consume(c, head_len);
        h1_error_response(c, 503, "out of memory");
        return;
    }
    x->peer = c->peer;
    x->id_seed = &s->id_seed;
    cf_exchange_set_head(x, h, c->buf + c->pos, head_len);
    h1_consume(c, head_len);
    c->x = x;
    c->max_body = s->host->route(x);
    c->body_got = 0;
    c->body_error = 0;
    c->body_mode = BODY_NONE;
    c->continue_pending = false;
    if (h->content_length > 0 && (uint64_t)h->content_length > c->max_body)
        cf_exchange_refuse(x, 413, "the request body is larger than the limit");
    if (x->refused) {
        dispatch_refused(c);
        return;
    }
    bool has_body = h->chunked || h->content_length > 0;
    if (x->body_streamed) {
        /* The handler reads the body as it arrives (body_read). */
        if (h->chunked) {
            cf_chunked_init(&c->chunked);
            c->body_mode = BODY_CHUNKED;
        } else if (h->content_length > 0) {
            c->body_left = (uint64_t)h->content_length;
            c->body_mode = BODY_LENGTH;
        }
        c->continue_pending = has_body && h->expect_continue && h->minor == 1;
        dispatch(c);
        return;
    }
    if (h->chunked) {
        cf_chunked_init(&c->chunked);
        c->body_cap = 0;
        x->body = NULL;
        c->state = S_CHUNKED;
    } else if (h->content_length > 0) {
        x->body_len = (size_t)h->content_length;
        x->body = cf_arena_alloc(x->arena, x->body_len + 1);
        if (!x->body) {
            h1_error_response(c, 503, "out of memory");
            return;
        }
        size_t avail = c->len - c->pos;
        size_t take = avail < x->body_len ? avail : x->body_len;
        memcpy(x->body, c->buf + c->pos, take);
        h1_consume(c, take);
        c->body_got = take;
        x->body[x->body_len] = 0;
        c->state = S_BODY;
    } else {
        dispatch(c);
        return;
    }
    if (h->expect_continue && h->minor == 1 && c->len == c->pos) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init((char *)cont, sizeof cont - 1);
        h1_write(c, &b, 1);
    }
    if (c->state == S_BODY && c->body_got == x->body_len)
        dispatch(c);
    else
        set_timer(c, T_BODY);
}

/* A chunked body taken whole: decode what is buffered into the exchange. */
static void chunked_step(cf_conn *c)
{
    size_t used = 0, out = 0;
    const char *reason = NULL;
    char *in = c->buf + c->pos;
    int r = cf_chunked_decode(&c->chunked, in, c->len - c->pos, &used, &out, &reason);
    if (r < 0) {
        h1_error_response(c, 400, reason ? reason : "bad chunked body");
        return;
    }
    cf_exchange *x = c->x;
    if (out) {
        if (c->body_got + out > c->max_body) {
            cf_exchange_refuse(x, 413, "the request body is larger than the limit");
            dispatch_refused(c);
            return;
        }
        if (c->body_got + out + 1 > c->body_cap) {
            size_t cap = c->body_cap ? c->body_cap * 2 : 4096;
            while (cap < c->body_got + out + 1)
                cap *= 2;
            if (cap > c->max_body + 1)
                cap = c->max_body + 1;
            x->body = cf_arena_realloc(x->arena, x->body, c->body_got, cap);
            if (!x->body) {
                h1_error_response(c, 503, "out of memory");
                return;
            }
            c->body_cap = cap;
        }
        memcpy(x->body + c->body_got, in, out);
        c->body_got += out;
    }
    h1_consume(c, used);
    if (r == 1) {
        if (!x->body)
            x->body = cf_arena_alloc(x->arena, 1);
        if (!x->body) {
            h1_error_response(c, 503, "out of memory");
            return;
        }
        x->body[c->body_got] = 0;
        x->body_len = c->body_got;
        dispatch(c);
    } else {
        set_timer(c, T_BODY);
    }
}

void h1_process(cf_conn *c)
{
    c->processing = true;
    while (!c->closing) {
        if (c->state == S_HEAD) {
            if (c->len == c->pos || h1_queued(c) > WRITE_HIGH_WATER)
                break; /* no bytes, or wait until the client reads (on_written) */
            cf_hfield fields[128];
            cf_http_head h;
            int status = 0;
            const char *reason = NULL;
            cf_http_limits *lim = &c->srv->limits;
            size_t nf = lim->max_fields < 128 ? lim->max_fields : 128;
            int r = cf_http_parse_head(c->buf + c->pos, c->len - c->pos, lim, &h, fields, nf,
                                       &status, &reason);
            if (r < 0) {
                h1_error_response(c, status, reason);
                break;
            }
            if (r == 0) {
                if (c->timer_kind != T_HEADER)
                    set_timer(c, T_HEADER); /* the clock starts at the first byte */
                break;
            }
            begin_exchange(c, &h, (size_t)r);
        } else if (c->state == S_CHUNKED) {
            if (c->len == c->pos)
                break;
            chunked_step(c);
            if (c->state == S_CHUNKED)
                break;
        } else {
            break; /* S_BODY reads straight into the exchange; others wait */
        }
    }
    c->processing = false;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    cf_conn *c = h->data;
    (void)suggested;
    if (c->state == S_BODY && c->x) {
        /* Content-Length bodies go straight to their final place. */
        out->base = c->x->body + c->body_got;
        out->len = c->x->body_len - c->body_got;
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
        size_t limit = c->srv->limits.max_header + BUF_MAX_PIPELINE;
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
        /* Buffer full while an exchange is in the app: wait for it. */
        uv_read_stop(s);
        c->read_paused = true;
        return;
    }
    if (n < 0) {
        /* EOF or error. An exchange in the app is cancelled (client
         * gone); a lingering close is complete. */
        h1_close(c);
        return;
    }
    if (c->state == S_LINGER) {
        c->pos = c->len = 0; /* discard */
        return;
    }
    if (c->state == S_BODY) {
        c->body_got += (size_t)n;
        if (c->body_got == c->x->body_len)
            dispatch(c);
        else
            set_timer(c, T_BODY);
        return;
    }
    c->len += (size_t)n;
    if (c->state == S_HANDLING && c->x) {
        cf_exchange *x = c->x;
        if (x->upgrade && x->streaming && x->input)
            h1_consume(c, x->input(x->input_ctx, c->buf + c->pos, c->len - c->pos));
        else if (c->body_waiter) {
            wake_body_reader(c);
            cf_sched_run();
        }
    }
    if (c->closing)
        return;
    if (c->state == S_HANDLING && c->len - c->pos >= c->cap - 1024 &&
        c->cap >= c->srv->limits.max_header + BUF_MAX_PIPELINE) {
        uv_read_stop(s);
        c->read_paused = true;
    }
    if (!c->processing)
        h1_process(c);
}

void h1_start_reading(cf_conn *c)
{
    c->read_paused = false;
    if (uv_read_start(&c->s.stream, on_alloc, on_read) != 0)
        h1_close(c);
}

void cf_http_accept(cf_http_server *s)
{
    cf_conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    if (s->is_unix)
        uv_pipe_init(s->loop, &c->s.pipe, 0);
    else
        uv_tcp_init(s->loop, &c->s.tcp);
    c->s.handle.data = c;
    c->srv = s;
    c->refs = 1;
    /* Before anything can call h1_close: a zeroed timer looks active
     * (idx 0) and stopping it would take another timer out of the heap. */
    cf_timer_init(&c->timer, on_timer);
    if (uv_accept(s->listener, &c->s.stream) != 0) {
        c->closing = true;
        uv_close(&c->s.handle, on_closed);
        return;
    }
    s->nconns++;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    if (s->nconns > s->max_conns || s->stopping) {
        h1_busy_response(c);
        h1_close(c);
        return;
    }
    c->buf = malloc(BUF_INITIAL);
    c->cap = c->buf ? BUF_INITIAL : 0;
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    strcpy(c->peer, s->is_unix ? "unix" : "-");
    if (!s->is_unix)
        uv_tcp_nodelay(&c->s.tcp, 1);
    if (!s->is_unix && uv_tcp_getpeername(&c->s.tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof c->peer);
        else if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof c->peer);
    }
    c->state = S_HEAD;
    set_timer(c, T_HEADER);
    h1_start_reading(c);
}

void cf_http_stop_idle(cf_http_server *s)
{
    /* Event streams would run until their clients leave: their producers
     * are cancelled, and the streams ended properly (h1_stream_end). Other
     * streamed bodies (a download, an export) finish like any exchange. */
    for (cf_conn *c = s->conns; c; c = c->next)
        if (c->state == S_HANDLING && c->x && c->x->streaming && c->x->stream_events)
            s->host->cancel(c->x);
    cf_sched_run();
    /* Closing an idle keep-alive connection races with a request the
     * client may be sending right now (it would see a reset). Give each a
     * short grace instead: a request arriving meanwhile is answered with
     * "Connection: close"; silence closes it. */
    for (cf_conn *c = s->conns; c; c = c->next) {
        if (c->state == S_HEAD && c->len == c->pos && c->timer_kind == T_IDLE) {
            uint64_t grace = uv_now(s->loop) + STOP_GRACE_MS;
            if (c->deadline > grace) {
                c->deadline = grace;
                cf_timer_start(&c->timer, STOP_GRACE_MS);
            }
        }
    }
}
