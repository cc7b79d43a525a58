/*
 * websocket.c — WebSocket sessions (RFC 6455) over a byte stream (see
 * websocket.h): the server end of an upgraded exchange, or the test
 * client's end.
 *
 * Frames are wslay's business (parsing, masking, fragments, ping/pong, the
 * close handshake, the message size limit): bytes from the peer go into
 * wslay's event context (cf_ws_input), whole messages are queued for the
 * receiver, and what wslay sends is queued on the stream without waiting;
 * a sender then waits (io->drain) while the peer is behind. Text messages
 * are checked to be UTF-8 (1007 otherwise). Input is taken only while
 * fewer than WS_QUEUE_MAX bytes of messages wait to be received, so a peer
 * cannot grow the process faster than the session reads.
 */
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#include "http/websocket.h"

#define WS_QUEUE_MAX (4u * 1024 * 1024)

typedef struct ws_msg {
    struct ws_msg *next;
    bool binary;
    size_t len;
    char data[];
} ws_msg;

struct cf_ws {
    wslay_event_context_ptr ctx;
    const cf_ws_io *io;
    void *io_ctx;
    const char *in; /* the bytes cf_ws_input offers to wslay */
    size_t in_len;
    ws_msg *head, *tail;
    size_t queued;
    ws_msg *taken;  /* the message taken last (freed on the next take) */
    cf_waitable *waiter;
    bool closed;    /* the peer's close frame arrived, or the stream failed */
    bool wake_pending;
    int close_code;
};

bool cf_utf8_valid(const unsigned char *s, size_t n)
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
    /* Queued at once (never suspends inside wslay). */
    if (ws->io->write(ws->io_ctx, data, len) != 0) {
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
    if (a->opcode == WSLAY_TEXT_FRAME && !cf_utf8_valid(a->msg, a->msg_length)) {
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

size_t cf_ws_input(void *session, const char *data, size_t len)
{
    cf_ws *ws = session;
    if (!wslay_event_get_read_enabled(ws->ctx))
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

static int genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
    (void)ctx;
    (void)user;
    return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

cf_ws *cf_ws_new(bool client, uint64_t max_msg, const cf_ws_io *io, void *io_ctx)
{
    cf_ws *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    ws->io = io;
    ws->io_ctx = io_ctx;
    struct wslay_event_callbacks cb = {.recv_callback = on_recv, .send_callback = on_send,
                                       .on_msg_recv_callback = on_message};
    if (client)
        cb.genmask_callback = genmask;
    int rc = client ? wslay_event_context_client_init(&ws->ctx, &cb, ws)
                    : wslay_event_context_server_init(&ws->ctx, &cb, ws);
    if (rc != 0) {
        free(ws);
        return NULL;
    }
    wslay_event_config_set_max_recv_msg_length(ws->ctx, max_msg);
    return ws;
}

static int exchange_write(void *ctx, const void *data, size_t len)
{
    cf_exchange *x = ctx;
    return x->ops->write(x, data, len);
}

static int exchange_drain(void *ctx)
{
    cf_exchange *x = ctx;
    return x->ops->drain ? x->ops->drain(x) : 0;
}

static void exchange_resume(void *ctx)
{
    cf_exchange *x = ctx;
    x->ops->resume_input(x);
}

static const cf_ws_io exchange_io = {exchange_write, exchange_drain, exchange_resume};

cf_ws *cf_ws_on_exchange(cf_exchange *x, uint64_t max_msg)
{
    cf_ws *ws = cf_ws_new(false, max_msg, &exchange_io, x);
    if (ws) {
        x->input = cf_ws_input;
        x->input_ctx = ws;
    }
    return ws;
}

void cf_ws_free(cf_ws *ws)
{
    if (!ws)
        return;
    wslay_event_context_free(ws->ctx);
    for (ws_msg *m = ws->head, *next; m; m = next) {
        next = m->next;
        free(m);
    }
    free(ws->taken);
    free(ws);
}

void cf_ws_set_waiter(cf_ws *ws, cf_waitable *w) { ws->waiter = w; }

int cf_ws_take(cf_ws *ws, cf_ws_message *out)
{
    free(ws->taken);
    ws->taken = NULL;
    if (!ws->head)
        return ws->closed ? CF_ECLOSED : 1;
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
    if (was_full && ws->queued < WS_QUEUE_MAX && ws->io->resume_input)
        ws->io->resume_input(ws->io_ctx);
    return 0;
}

static void ws_wait_cancel(cf_waitable *w) { cf_waitable_complete(w, CF_ECANCELED); }

int cf_ws_recv_wait(cf_ws *ws, cf_ws_message *out, int64_t timeout_ms)
{
    for (;;) {
        int rc = cf_ws_take(ws, out);
        if (rc <= 0)
            return rc;
        cf_waitable w;
        cf_waitable_init(&w, ws_wait_cancel);
        ws->waiter = &w;
        rc = cf_task_await(&w, timeout_ms);
        ws->waiter = NULL;
        if (!w.done)
            cf_waitable_detach(&w);
        if (rc != 0)
            return rc;
    }
}

static bool caller_cancelled(void)
{
    cf_task *t = cf_task_current();
    return t && t->cancelled && !t->shielded;
}

int cf_ws_send_msg(cf_ws *ws, const void *data, size_t len, bool binary)
{
    if (!binary && !cf_utf8_valid(data, len))
        return CF_EINVAL;
    if (wslay_event_get_close_sent(ws->ctx) || caller_cancelled())
        return ws->closed ? CF_ECLOSED : CF_ECANCELED;
    struct wslay_event_msg m = {binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME, data, len};
    if (wslay_event_queue_msg(ws->ctx, &m) != 0)
        return CF_ECLOSED;
    flush_from_task(ws);
    return ws->io->drain ? ws->io->drain(ws->io_ctx) : 0;
}

int cf_ws_send_close(cf_ws *ws, int code, const char *reason)
{
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > 123 || (code != 1000 && (code < 3000 || code > 4999) &&
                       (code < 1001 || code > 1014 || code == 1004 || code == 1005 || code == 1006)))
        return CF_EINVAL;
    if (wslay_event_queue_close(ws->ctx, (uint16_t)code, (const uint8_t *)reason, rlen) != 0)
        return CF_ECLOSED;
    flush_from_task(ws);
    return 0;
}

void cf_ws_finish(cf_ws *ws, int code)
{
    if (wslay_event_get_close_sent(ws->ctx))
        return;
    wslay_event_queue_close(ws->ctx, (uint16_t)code, NULL, 0);
    flush(ws);
}

bool cf_ws_close_sent(const cf_ws *ws) { return wslay_event_get_close_sent(ws->ctx); }
int cf_ws_peer_close_code(const cf_ws *ws) { return ws->close_code; }
bool cf_ws_peer_closed(const cf_ws *ws) { return ws->closed; }

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

int cf_ws_accept_key(const char *key, char out[29])
{
    unsigned char raw[32];
    if (!key || strlen(key) != 24 || EVP_DecodeBlock(raw, (const unsigned char *)key, 24) != 18)
        return -1;
    char both[80];
    snprintf(both, sizeof both, "%s" WS_GUID, key);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)both, strlen(both), digest);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
    return 0;
}

void cf_ws_new_key(char out[25])
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof raw) != 1)
        for (size_t i = 0; i < sizeof raw; i++)
            raw[i] = (unsigned char)rand();
    EVP_EncodeBlock((unsigned char *)out, raw, sizeof raw);
}
