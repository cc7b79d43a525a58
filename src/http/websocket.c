/*
 * websocket.c — WebSocket sessions (RFC 6455) on an upgraded connection.
 *
 * cf_websocket checks the handshake and answers 101; the session function
 * then runs as the response's producer on the request's coroutine. Frames
 * are wslay's business (parsing, masking, fragments, ping/pong, the close
 * handshake, the message size limit): bytes from the connection go into
 * wslay's event context (cf_ws_input), whole messages are queued for
 * cf_ws_recv, and what wslay sends is queued on the connection without
 * waiting; a sender then waits like a streaming writer while the client is
 * behind. Text messages are checked to be UTF-8 (1007 otherwise). Input is
 * taken only while fewer than WS_QUEUE_MAX bytes of messages wait to be
 * received, so a client cannot grow the worker faster than the app reads.
 */
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

#include "app/req.h"

#define WS_QUEUE_MAX (4u * 1024 * 1024)

typedef struct ws_msg {
    struct ws_msg *next;
    bool binary;
    size_t len;
    char data[];
} ws_msg;

typedef struct cf_ws {
    cf_req *rq;
    wslay_event_context_ptr ctx;
    const char *in; /* the bytes cf_ws_input offers to wslay */
    size_t in_len;
    ws_msg *head, *tail;
    size_t queued;
    ws_msg *taken;  /* the message cf_ws_recv returned last (freed on the next) */
    cf_waitable *waiter;
    bool closed;    /* the client's close frame arrived, or the connection failed */
    bool wake_pending;
    int close_code;
    cf_task_fn fn;
    void *arg;
} cf_ws;

static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        /* overlong forms, surrogates, beyond U+10FFFF */
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return false;
        i += len;
    }
    return true;
}

/* Waking a task on the loop stack runs it at once, and it may end the
 * session and free wslay's context: so callbacks inside wslay only note
 * the wake (wake_later), and it happens once wslay has returned. */
static void wake_now(cf_ws *ws)
{
    ws->wake_pending = false;
    if (ws->waiter && !ws->waiter->done)
        cf_waitable_complete(ws->waiter, 0);
}

static void wake_later(cf_ws *ws) { ws->wake_pending = true; }

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    cf_ws *ws = user;
    (void)flags;
    if (!ws->in_len || ws->queued >= WS_QUEUE_MAX) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < ws->in_len ? len : ws->in_len;
    memcpy(buf, ws->in, n);
    ws->in += n;
    ws->in_len -= n;
    return (ssize_t)n;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    cf_ws *ws = user;
    (void)flags;
    /* Queued on the connection at once (never suspends inside wslay). */
    if (ws->rq->tp->write(ws->rq, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static void on_message(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
                       void *user)
{
    cf_ws *ws = user;
    if (a->opcode == WSLAY_CONNECTION_CLOSE) {
        ws->closed = true;
        ws->close_code = a->status_code ? a->status_code : 1005;
        wake_later(ws);
        return;
    }
    if (a->opcode != WSLAY_TEXT_FRAME && a->opcode != WSLAY_BINARY_FRAME)
        return; /* ping and pong: wslay answers pings itself */
    if (a->opcode == WSLAY_TEXT_FRAME && !utf8_valid(a->msg, a->msg_length)) {
        static const char why[] = "text message is not UTF-8";
        wslay_event_queue_close(ctx, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA, (const uint8_t *)why,
                                sizeof why - 1);
        wslay_event_shutdown_read(ctx);
        return;
    }
    ws_msg *m = malloc(sizeof *m + a->msg_length + 1);
    if (!m) {
        wslay_event_set_error(ctx, WSLAY_ERR_NOMEM);
        return;
    }
    m->next = NULL;
    m->binary = a->opcode == WSLAY_BINARY_FRAME;
    m->len = a->msg_length;
    memcpy(m->data, a->msg, a->msg_length);
    m->data[a->msg_length] = 0;
    if (ws->tail)
        ws->tail->next = m;
    else
        ws->head = m;
    ws->tail = m;
    ws->queued += m->len;
    wake_later(ws);
}

/* Send what wslay has queued (replies to pings and closes included). */
static void flush(cf_ws *ws)
{
    if (wslay_event_send(ws->ctx) != 0) {
        ws->closed = true;
        wake_later(ws);
    }
}

/* flush, from a session's task (not inside wslay, not on the loop stack). */
static void flush_from_task(cf_ws *ws)
{
    flush(ws);
    if (ws->wake_pending)
        wake_now(ws);
}

size_t cf_ws_input(cf_req *rq, const char *data, size_t len)
{
    cf_ws *ws = rq->ws;
    if (ws && !ws->ctx)
        return 0; /* the session has not started: keep them */
    if (!ws || !wslay_event_get_read_enabled(ws->ctx))
        return len; /* nothing more is read: discard */
    ws->in = data;
    ws->in_len = len;
    int rc = wslay_event_recv(ws->ctx);
    size_t used = len - ws->in_len;
    ws->in_len = 0;
    if (rc != 0 || !wslay_event_get_read_enabled(ws->ctx)) {
        /* a protocol error, a message over the limit, bad UTF-8, or the
         * client's close: wslay queued the close frame to send */
        if (!ws->closed) {
            ws->closed = true;
            ws->close_code = 1006;
        }
        wake_later(ws);
    }
    flush(ws);
    if (ws->wake_pending)
        wake_now(ws); /* the last use of ws here: the session may end in it */
    return used;
}

/* ---- the handshake and the session ----------------------------------- */

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

static void free_session(void *p)
{
    cf_ws *ws = p;
    if (ws->ctx)
        wslay_event_context_free(ws->ctx);
    for (ws_msg *m = ws->head, *next; m; m = next) {
        next = m->next;
        free(m);
    }
    free(ws->taken);
}

static int run_session(cf_req *rq, void *arg)
{
    cf_ws *ws = arg;
    struct wslay_event_callbacks cb = {.recv_callback = on_recv, .send_callback = on_send,
                                       .on_msg_recv_callback = on_message};
    if (wslay_event_context_server_init(&ws->ctx, &cb, ws) != 0)
        return CF_ENOMEM;
    wslay_event_config_set_max_recv_msg_length(ws->ctx, (uint64_t)cf_req_max_body(rq));
    rq->tp->resume_input(rq); /* frames the client sent with its request */
    int rc = ws->fn(rq, ws->arg);
    if (!wslay_event_get_close_sent(ws->ctx)) {
        /* the session ended first: 1000, 1011 when it failed, 1001 when
         * the server stops */
        uint16_t code = cf_cancelled(rq) && !ws->closed ? 1001 : rc < 0 && rc != CF_ECANCELED ? 1011 : 1000;
        wslay_event_queue_close(ws->ctx, code, NULL, 0);
        flush(ws);
    }
    return rc;
}

void cf_websocket(cf_req *rq, cf_task_fn fn, void *arg)
{
    const char *upgrade = cf_header(rq, "Upgrade"), *connection = cf_header(rq, "Connection");
    const char *version = cf_header(rq, "Sec-WebSocket-Version");
    const char *key = cf_header(rq, "Sec-WebSocket-Key");
    if (!rq->tp->upgrades) {
        rq->errmsg = "WebSocket needs a server connection (not the test client)";
        cf_abort(rq, 501);
        return;
    }
    if (strcmp(cf_method(rq), "GET") != 0 || rq->minor != 1 || !upgrade ||
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
    unsigned char raw[32];
    if (!key || strlen(key) != 24 || EVP_DecodeBlock(raw, (const unsigned char *)key, 24) != 18) {
        rq->errmsg = "Sec-WebSocket-Key is not 16 bytes in base64";
        cf_abort(rq, 400);
        return;
    }
    char both[80];
    snprintf(both, sizeof both, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)both, strlen(both), digest);
    char accept[32];
    EVP_EncodeBlock((unsigned char *)accept, digest, SHA_DIGEST_LENGTH);

    cf_ws *ws = cf_alloc(rq, sizeof *ws);
    memset(ws, 0, sizeof *ws);
    ws->rq = rq;
    ws->fn = fn;
    ws->arg = arg;
    cf_defer(rq, free_session, ws);
    cf_stream_sized(rq, 101, NULL, UINT64_MAX, run_session, ws);
    if (!rq->stream_fn)
        return;
    rq->ws = ws;
    rq->stream_events = true; /* a stopping server closes it (1001) */
    cf_set_header(rq, "Upgrade", "websocket");
    cf_set_header(rq, "Sec-WebSocket-Accept", accept);
}

static cf_ws *session(cf_req *rq)
{
    return rq->ws && rq->streaming && rq->ws->ctx ? rq->ws : NULL;
}

static void ws_wait_cancel(cf_waitable *w) { cf_waitable_complete(w, CF_ECANCELED); }

int cf_ws_recv(cf_req *rq, cf_ws_message *out, int64_t timeout_ms)
{
    cf_ws *ws = session(rq);
    if (!ws || !cf_on_loop_thread())
        return CF_EPERM;
    free(ws->taken);
    ws->taken = NULL;
    while (!ws->head) {
        if (ws->closed)
            return CF_ECLOSED;
        cf_waitable w;
        cf_waitable_init(&w, ws_wait_cancel);
        ws->waiter = &w;
        int rc = cf_await(rq, &w, timeout_ms);
        ws->waiter = NULL;
        if (!w.done)
            cf_waitable_detach(&w);
        if (rc != 0)
            return rc;
    }
    ws_msg *m = ws->head;
    ws->head = m->next;
    if (!ws->head)
        ws->tail = NULL;
    bool was_full = ws->queued >= WS_QUEUE_MAX;
    ws->queued -= m->len;
    ws->taken = m;
    out->data = m->data;
    out->len = m->len;
    out->binary = m->binary;
    if (was_full && ws->queued < WS_QUEUE_MAX)
        rq->tp->resume_input(rq);
    return 0;
}

int cf_ws_send(cf_req *rq, const void *data, size_t len, bool binary)
{
    cf_ws *ws = session(rq);
    if (!ws || !cf_on_loop_thread())
        return CF_EPERM;
    if (!binary && !utf8_valid(data, len))
        return CF_EINVAL;
    if (wslay_event_get_close_sent(ws->ctx) || cf_cancelled(rq))
        return ws->closed ? CF_ECLOSED : CF_ECANCELED;
    struct wslay_event_msg m = {binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME, data, len};
    if (wslay_event_queue_msg(ws->ctx, &m) != 0)
        return CF_ECLOSED;
    flush_from_task(ws);
    return rq->tp->drain(rq);
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
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > 123 || (code != 1000 && (code < 3000 || code > 4999) &&
                       (code < 1001 || code > 1014 || code == 1004 || code == 1005 || code == 1006)))
        return CF_EINVAL;
    if (wslay_event_queue_close(ws->ctx, (uint16_t)code, (const uint8_t *)reason, rlen) != 0)
        return CF_ECLOSED;
    flush_from_task(ws);
    return 0;
}

int cf_ws_close_code(cf_req *rq) { return rq->ws ? rq->ws->close_code : 0; }
