/*
 * client_ws.c — WebSocket sessions in the test client. The client's end is
 * a real WebSocket client (src/http/websocket.c in client mode: masked
 * frames, fragments, the close handshake), joined to the app's upgraded
 * exchange by two byte queues. Bytes are carried between the ends from the
 * loop (an idle handle), never from inside the other end's framing code,
 * so neither end re-enters the other.
 */
#include <stdio.h>
#include <string.h>

#include "testing/client.h"

static int to_server(void *ctx, const void *data, size_t len)
{
    cf_test_response *r = ctx;
    tbuf_put(&r->to_server, data, len);
    cf__test_want_pump(r->tc);
    return 0;
}

static void client_resume(void *ctx) { cf__test_want_pump(((cf_test_response *)ctx)->tc); }

static const cf_ws_io client_io = {to_server, NULL, client_resume};

void cf__test_pump(cf_test_response *r)
{
    if (!r->ws)
        return;
    if (r->to_server.len) {
        if (!r->rq) {
            r->to_server.len = 0; /* the session has ended: nobody reads */
        } else if (r->rq->x.input) {
            size_t n = r->rq->x.input(r->rq->x.input_ctx, r->to_server.data, r->to_server.len);
            if (r->ws) /* the exchange may have finished meanwhile */
                tbuf_take(&r->to_server, n);
        }
    }
    if (r->ws && r->to_client.len) {
        size_t n = cf_ws_input(r->ws, r->to_client.data, r->to_client.len);
        tbuf_take(&r->to_client, n);
    }
}

static bool handshake_settled(cf_test_response *r) { return r->head_done || r->finished; }

cf_test_response *cf_test_websocket(cf_test_client *tc, const char *target,
                                    const char *const *headers)
{
    char key[25], key_header[64];
    cf_ws_new_key(key);
    snprintf(key_header, sizeof key_header, "Sec-WebSocket-Key: %s", key);
    const char *h[64];
    size_t n = 0;
    h[n++] = "Upgrade: websocket";
    h[n++] = "Connection: Upgrade";
    h[n++] = "Sec-WebSocket-Version: 13";
    h[n++] = key_header;
    for (size_t i = 0; headers && headers[i] && n < 63; i++)
        h[n++] = headers[i];
    h[n] = NULL;
    cf_test_response *r = cf_test_open(tc, "GET", target, h, NULL, 0);
    uint64_t deadline = cf__test_deadline(tc, -1);
    cf__test_run_until(r, handshake_settled, deadline, "WebSocket handshake");
    if (r->status != 101)
        return r;
    char accept[29];
    const char *got = cf_test_header(r, "Sec-WebSocket-Accept");
    if (cf_ws_accept_key(key, accept) != 0 || !got || strcmp(got, accept) != 0) {
        fprintf(stderr, "carafe: test WebSocket handshake: wrong Sec-WebSocket-Accept\n");
        cf_test_close(r);
        return r;
    }
    r->ws = cf_ws_new(true, (uint64_t)tc->app->opt[CF_OPT_MAX_BODY], &client_io, r);
    if (r->ws)
        cf__test_want_pump(tc); /* frames the session sent before this */
    return r;
}

int cf_test_ws_send(cf_test_response *r, const void *data, size_t len, bool binary)
{
    if (!r || !r->ws)
        return CF_EPERM;
    return cf_ws_send_msg(r->ws, data, len, binary);
}

int cf_test_ws_send_text(cf_test_response *r, const char *text)
{
    return cf_test_ws_send(r, text, text ? strlen(text) : 0, false);
}

/* Nothing more can come: the exchange ended and its last bytes are in. */
static bool ended(cf_test_response *r) { return r->finished && !r->to_client.len; }
static bool ws_news(cf_test_response *r) { return r->ws_wait.done || ended(r); }

int cf_test_ws_recv(cf_test_response *r, cf_ws_message *msg, int64_t timeout_ms)
{
    if (!r || !r->ws)
        return CF_EPERM;
    uint64_t deadline = cf__test_deadline(r->tc, timeout_ms);
    for (;;) {
        int rc = cf_ws_take(r->ws, msg);
        if (rc <= 0)
            return rc;
        if (ended(r))
            return CF_ECLOSED; /* the session ended without a close frame */
        cf_waitable_init(&r->ws_wait, NULL);
        cf_ws_set_waiter(r->ws, &r->ws_wait);
        rc = cf__test_run_until(r, ws_news, deadline, "WebSocket receive");
        cf_ws_set_waiter(r->ws, NULL);
        if (rc == CF_ETIMEDOUT)
            return rc;
    }
}

int cf_test_ws_close(cf_test_response *r, int code, const char *reason)
{
    if (!r || !r->ws)
        return CF_EPERM;
    int rc = cf_ws_send_close(r->ws, code, reason);
    if (rc == CF_EINVAL)
        return rc;
    uint64_t deadline = cf__test_deadline(r->tc, -1);
    if (cf__test_run_until(r, ended, deadline, "WebSocket close") == CF_ETIMEDOUT) {
        cf_test_close(r);
        return CF_ETIMEDOUT;
    }
    return 0;
}

int cf_test_ws_close_code(const cf_test_response *r)
{
    return r && r->ws ? cf_ws_peer_close_code(r->ws) : 0;
}
