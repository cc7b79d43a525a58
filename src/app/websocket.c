/*
 * websocket.c — WebSocket routes: the handshake (cf_websocket answers 101
 * and makes the session function the response's producer) and the public
 * session calls. The framing is src/http/websocket.c's, over the upgraded
 * exchange's byte stream, so it works over any protocol that can upgrade
 * (HTTP/1.1 connections, the test client).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "app/req.h"
#include "http/websocket.h"

/* Does a comma-separated header hold this token (case-insensitive)? */
static bool has_token(const char *h, const char *token)
{
    size_t n = strlen(token);
    for (const char *p = h; p && *p;) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, ",");
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == n && strncasecmp(p, token, n) == 0)
            return true;
        p += strcspn(p, ",");
    }
    return false;
}

typedef struct ws_route {
    cf_task_fn fn;
    void *arg;
} ws_route;

static void free_session(void *p)
{
    cf_req *rq = p;
    cf_ws_free(rq->ws);
    rq->ws = NULL;
}

static int run_session(cf_req *rq, void *arg)
{
    ws_route *r = arg;
    rq->ws = cf_ws_on_exchange(&rq->x, (uint64_t)cf_req_max_body(rq));
    if (!rq->ws)
        return CF_ENOMEM;
    cf_defer(rq, free_session, rq);
    rq->x.ops->resume_input(&rq->x); /* frames the client sent with its request */
    int rc = r->fn(rq, r->arg);
    /* the session ended first: 1000, 1011 when it failed, 1001 when the
     * server stops */
    bool peer_closed = cf_ws_peer_closed(rq->ws);
    cf_ws_finish(rq->ws, cf_cancelled(rq) && !peer_closed         ? 1001
                         : rc < 0 && rc != CF_ECANCELED ? 1011
                                                        : 1000);
    return rc;
}

void cf_websocket(cf_req *rq, cf_task_fn fn, void *arg)
{
    const char *upgrade = cf_header(rq, "Upgrade"), *connection = cf_header(rq, "Connection");
    const char *version = cf_header(rq, "Sec-WebSocket-Version");
    const char *key = cf_header(rq, "Sec-WebSocket-Key");
    if (!rq->x.ops->upgrades) {
        rq->errmsg = "WebSocket needs a connection that can be upgraded";
        cf_abort(rq, 501);
        return;
    }
    if (strcmp(cf_method(rq), "GET") != 0 || rq->x.minor != 1 || !upgrade ||
        !has_token(upgrade, "websocket") || !connection || !has_token(connection, "upgrade")) {
        rq->errmsg = "this URL is a WebSocket: a GET with Upgrade: websocket";
        cf_set_header(rq, "Upgrade", "websocket");
        cf_abort(rq, 426);
        return;
    }
    if (!version || strcmp(version, "13") != 0) {
        rq->errmsg = "only WebSocket version 13 is spoken";
        cf_set_header(rq, "Sec-WebSocket-Version", "13");
        cf_abort(rq, 426);
        return;
    }
    char accept[29];
    if (cf_ws_accept_key(key, accept) != 0) {
        rq->errmsg = "Sec-WebSocket-Key is not 16 bytes in base64";
        cf_abort(rq, 400);
        return;
    }
    ws_route *r = cf_alloc(rq, sizeof *r);
    r->fn = fn;
    r->arg = arg;
    cf_stream_sized(rq, 101, NULL, UINT64_MAX, run_session, r);
    if (!rq->stream_fn)
        return;
    rq->wants_ws = true;
    rq->x.stream_events = true; /* a stopping server closes it (1001) */
    cf_set_header(rq, "Upgrade", "websocket");
    cf_set_header(rq, "Sec-WebSocket-Accept", accept);
}

/* The running session of rq, if any. */
static cf_ws *session(cf_req *rq) { return rq->x.streaming ? rq->ws : NULL; }

int cf_ws_recv(cf_req *rq, cf_ws_message *out, int64_t timeout_ms)
{
    cf_ws *ws = session(rq);
    if (!ws || !cf_on_loop_thread())
        return CF_EPERM;
    return cf_ws_recv_wait(ws, out, timeout_ms);
}

int cf_ws_send(cf_req *rq, const void *data, size_t len, bool binary)
{
    cf_ws *ws = session(rq);
    if (!ws || !cf_on_loop_thread())
        return CF_EPERM;
    return cf_ws_send_msg(ws, data, len, binary);
}

int cf_ws_send_text(cf_req *rq, const char *text)
{
    return cf_ws_send(rq, text, text ? strlen(text) : 0, false);
}

int cf_ws_close(cf_req *rq, int code, const char *reason)
{
    cf_ws *ws = session(rq);
    if (!ws)
        return CF_EPERM;
    return cf_ws_send_close(ws, code, reason);
}

int cf_ws_close_code(cf_req *rq) { return rq->ws ? cf_ws_peer_close_code(rq->ws) : 0; }
