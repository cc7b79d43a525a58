/*
 * stream.c — streaming response bodies and Server-Sent Events.
 *
 * A streaming response is an ordinary response (status, headers, hooks)
 * whose body comes from a producer run after the head went out, on the
 * request's main task; each cf_write goes straight to the exchange, whose
 * protocol frames it (chunked, or close-delimited for HTTP/1.0) and may
 * suspend the writer until the client has taken the backlog. Pieces are formatted on
 * the stack or in a temporary heap buffer, never in the request's arena,
 * so an endless event stream runs in constant memory. A compressed stream
 * (compress.c) goes through its encoder instead, flushed at each write.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/compress.h"
#include "app/req.h"

void cf_stream(cf_req *rq, int status, const char *content_type, cf_task_fn fn, void *arg)
{
    if (!fn) {
        cf_fail(rq, "cf_stream: no producer function");
        return;
    }
    cf_send(rq, status, content_type, "", 0);
    if (!rq->responded)
        return; /* a bad status: cf_send failed the request */
    rq->stream_fn = fn;
    rq->stream_arg = arg;
    rq->x.stream = true;
}

void cf_stream_sized(cf_req *rq, int status, const char *content_type, uint64_t len,
                     cf_task_fn fn, void *arg)
{
    cf_stream(rq, status, content_type, fn, arg);
    if (rq->stream_fn) {
        rq->x.stream_sized = true;
        rq->x.stream_len = len;
    }
}

void cf_sse(cf_req *rq, cf_task_fn fn, void *arg)
{
    cf_stream(rq, 200, "text/event-stream", fn, arg);
    cf_set_header(rq, "Cache-Control", "no-cache");
    cf_set_header(rq, "X-Accel-Buffering", "no");
    rq->x.stream_events = rq->stream_fn != NULL;
}

void cf_stream_run(cf_req *rq)
{
    int rc = rq->stream_fn(rq, rq->stream_arg);
    /* The compressed stream's end, also for an event stream a stopping
     * server cancelled (its protocol ends it properly); a failed producer's
     * body is cut instead. */
    if (rq->encoder && (rc >= 0 || rq->x.stream_events)) {
        int end = cf_compress_finish(rq);
        if (rc >= 0)
            rc = end;
    }
    rq->x.streaming = false;
    rq->x.ops->end(&rq->x, rc);
}

/* Larger writes go out as several chunks (libuv's buffers count in 32 bits). */
#define MAX_PIECE ((size_t)1 << 30)

int cf_write(cf_req *rq, const void *data, size_t len)
{
    if (!rq->x.streaming || !cf_on_loop_thread())
        return CF_EPERM;
    if (cf_cancelled(rq))
        return CF_ECANCELED;
    if (rq->encoder)
        return cf_compress_write(rq, data, len);
    const char *p = data;
    int rc = 0;
    while (len && rc == 0) {
        size_t n = len < MAX_PIECE ? len : MAX_PIECE;
        rc = rq->x.ops->write(&rq->x, p, n);
        if (rc == 0 && rq->x.ops->drain)
            rc = rq->x.ops->drain(&rq->x);
        p += n;
        len -= n;
    }
    return rc;
}

int cf_writef(cf_req *rq, const char *fmt, ...)
{
    char small[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return CF_EINVAL;
    if ((size_t)n < sizeof small)
        return cf_write(rq, small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big)
        return CF_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = cf_write(rq, big, (size_t)n); /* the transport copies what it keeps */
    free(big);
    return rc;
}

static bool one_line(const char *s) { return !s || !s[strcspn(s, "\r\n")]; }

int cf_sse_send(cf_req *rq, const char *event, const char *id, const char *data)
{
    if (!one_line(event) || !one_line(id))
        return CF_EINVAL;
    if (!data)
        data = "";
    /* Worst case: every byte of data a line break, each line "data: \n". */
    size_t cap = 32 + (event ? strlen(event) : 0) + (id ? strlen(id) : 0) + 7 * strlen(data) + 8;
    char small[2048];
    char *buf = cap <= sizeof small ? small : malloc(cap);
    if (!buf)
        return CF_ENOMEM;
    size_t n = 0;
    if (event)
        n += (size_t)snprintf(buf + n, cap - n, "event: %s\n", event);
    if (id)
        n += (size_t)snprintf(buf + n, cap - n, "id: %s\n", id);
    /* Lines end at CR, LF or CRLF (the event-stream grammar). */
    const char *p = data;
    for (;;) {
        size_t len = strcspn(p, "\r\n");
        memcpy(buf + n, "data: ", 6);
        memcpy(buf + n + 6, p, len);
        n += 6 + len;
        buf[n++] = '\n';
        p += len;
        if (!*p)
            break;
        p += (p[0] == '\r' && p[1] == '\n') ? 2 : 1;
    }
    buf[n++] = '\n';
    int rc = cf_write(rq, buf, n);
    if (buf != small)
        free(buf);
    return rc;
}
