/*
 * websocket.h — a WebSocket session (RFC 6455 framing, by wslay) over any
 * byte stream: an upgraded exchange on the server side, or the test
 * client's end of one. It knows no protocol underneath: bytes go out
 * through io->write, bytes from the peer come in through cf_ws_input.
 */
#ifndef CF_HTTP_WEBSOCKET_H
#define CF_HTTP_WEBSOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "carafe.h"
#include "core/sched.h"
#include "http/exchange.h"

typedef struct cf_ws cf_ws;

/* Where a session's bytes go. */
typedef struct cf_ws_io {
    /* Queue bytes for the peer at once (never suspends). 0 or < 0. */
    int (*write)(void *ctx, const void *data, size_t len);
    /* Suspend while the peer is behind; NULL: never. */
    int (*drain)(void *ctx);
    /* The session takes input again after refusing some (may be NULL). */
    void (*resume_input)(void *ctx);
} cf_ws_io;

/* A session, client (masks its frames) or server; messages over max_msg
 * bytes close it with 1009. malloc'd: cf_ws_free. NULL when out of memory. */
cf_ws *cf_ws_new(bool client, uint64_t max_msg, const cf_ws_io *io, void *io_ctx);
/* The server end of an upgraded exchange: its writes go to x->ops->write,
 * input arrives through x->input, which this sets. */
cf_ws *cf_ws_on_exchange(cf_exchange *x, uint64_t max_msg);
void cf_ws_free(cf_ws *ws);

/* Bytes from the peer: returns how many were taken (the rest is offered
 * again after io->resume_input). May wake the session's waiter. */
size_t cf_ws_input(void *ws, const char *data, size_t len);

/* Take the next whole message without waiting: 0, CF_ECLOSED (closed, or
 * broken, and nothing queued), or 1 when none is there yet. The message
 * stays valid until the next take. */
int cf_ws_take(cf_ws *ws, cf_ws_message *out);
/* Completed (with 0) when a message arrives or the session closes. */
void cf_ws_set_waiter(cf_ws *ws, cf_waitable *w);
/* cf_ws_take, suspending the running task until there is one. */
int cf_ws_recv_wait(cf_ws *ws, cf_ws_message *out, int64_t timeout_ms);
/* Queue a message and flush; text must be UTF-8. Then io->drain. */
int cf_ws_send_msg(cf_ws *ws, const void *data, size_t len, bool binary);
/* Queue a close frame (code and reason checked as RFC 6455 allows). */
int cf_ws_send_close(cf_ws *ws, int code, const char *reason);
/* The session's function ended: close with `code` unless a close went out. */
void cf_ws_finish(cf_ws *ws, int code);
bool cf_ws_close_sent(const cf_ws *ws);
/* The peer's close code (1005 without one, 1006 when it broke), 0 before. */
int cf_ws_peer_close_code(const cf_ws *ws);
bool cf_ws_peer_closed(const cf_ws *ws);

/* Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (24 base64 chars
 * of 16 bytes) into out[29]. Returns 0, or -1 for a bad key. */
int cf_ws_accept_key(const char *key, char out[29]);
/* A new random Sec-WebSocket-Key into out[25]. */
void cf_ws_new_key(char out[25]);
bool cf_utf8_valid(const unsigned char *s, size_t n);

#endif
