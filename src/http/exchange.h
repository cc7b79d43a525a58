/*
 * exchange.h — the unit between a protocol and the app: one request and
 * its response, whatever carried them.
 *
 * A protocol (HTTP/1.1 in conn.c, later HTTP/2, the in-process test
 * client) produces exchanges: it fills the request head, supplies the body
 * (whole before dispatch, or on demand through ops->body_read for routes
 * that stream it), and implements the response sink in ops (the head, body
 * pieces with backpressure, the end or an abort). It tells the app that
 * the peer went away through its host's cancel. The app only ever sees
 * the exchange and these operations, never a connection.
 *
 * An upgraded exchange (a WebSocket after its 101) is a byte stream both
 * ways: ops->write sends bytes as they are, and the protocol hands bytes
 * from the peer to x->input. So framing above it (src/http/websocket.c)
 * does not depend on the protocol underneath.
 *
 * Everything the exchange points to lives in its arena, which belongs to
 * whoever created the exchange (the app's request) and goes when it
 * reports ops->finished.
 */
#ifndef CF_HTTP_EXCHANGE_H
#define CF_HTTP_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "http/parser.h"

typedef struct cf_kv {
    char *name, *value;
} cf_kv;

typedef struct cf_kv_list {
    cf_kv *items;
    size_t len, cap;
} cf_kv_list;

typedef struct cf_exchange cf_exchange;

/* What the protocol does for the app. Called on the loop thread, in the
 * exchange's task where they suspend (drain, body_read). */
typedef struct cf_exchange_ops {
    /* The response is final: send the head, and the whole body unless
     * x->streaming (then pieces follow through write, and end). */
    void (*send)(cf_exchange *x);
    /* A body piece, or raw bytes of an upgraded exchange: queued at once
     * (the caller's memory may go). Returns 0 or CF_ECANCELED. */
    int (*write)(cf_exchange *x, const void *data, size_t len);
    /* Suspend while the peer is behind (NULL: never behind). Returns 0,
     * CF_ECANCELED or CF_ETIMEDOUT (the send timeout; the peer is dropped). */
    int (*drain)(cf_exchange *x);
    /* The streamed body ended: result < 0 aborts it (the peer sees it cut). */
    void (*end)(cf_exchange *x, int result);
    /* A streamed request body (x->body_streamed): suspend until some of it
     * is in, copy up to cap bytes. Returns the count, 0 at its end, or a
     * negative CF_E* code (CF_ETOOBIG over the limit, CF_EINVAL when
     * malformed, CF_ETIMEDOUT, CF_ECANCELED); x->errmsg says why. */
    long (*body_read)(cf_exchange *x, void *buf, size_t cap);
    /* Upgraded: the session wants input again (x->input took less than
     * offered, or had no session yet). */
    void (*resume_input)(cf_exchange *x);
    /* The app is done with the exchange (handler, tasks and teardown all
     * ended): the protocol may go on, and must not touch it again. */
    void (*finished)(cf_exchange *x);
    /* A task of the exchange crashed (server workers): it will never
     * finish; may be NULL. */
    void (*crashed)(cf_exchange *x);
    bool upgrades; /* can switch to a byte stream after a 101 */
} cf_exchange_ops;

struct cf_exchange {
    const cf_exchange_ops *ops;
    void *proto;       /* the protocol's own state (its connection, stream) */
    cf_arena *arena;   /* the owner's memory for everything below */

    /* The request head, NUL-terminated copies in the arena. */
    char *method;
    char *target;      /* as sent */
    char *path;        /* percent-decoded */
    char *query;       /* "" when none */
    int minor;         /* HTTP/1.x: 0 or 1 */
    bool keep_alive;   /* the client would keep the connection */
    bool is_head;
    cf_hfield *fields;
    size_t nfields;
    const char *peer;  /* the client's address, for logs */
    uint64_t start_ns;
    /* The protocol refuses the request, though its head is well-formed
     * enough to route: a body over the limit (413), a path it will not
     * decode or route (400). The app answers with this status through its
     * error handlers instead of running the route; the body is not read
     * and the connection closes after the answer. Raw framing errors
     * (400, 414, 431 from the parser) never become exchanges. */
    int refused;
    const char *refused_reason;

    /* The request body: whole in body/body_len before dispatch, or, when
     * body_streamed (set by the app at routing), read through
     * ops->body_read, which sets body_done at its end. */
    char *body;
    size_t body_len;
    bool body_streamed;
    bool body_done;    /* body_read returned its end */
    const char *errmsg; /* why body_read failed */

    /* The response, set by the app before ops->send. */
    int status;
    const char *content_type;
    cf_kv_list resp_headers;
    char *resp_body;
    size_t resp_len;
    bool stream;       /* the body comes in pieces (write, end) */
    bool stream_sized; /* ... with Content-Length stream_len, unframed */
    uint64_t stream_len;
    bool stream_events; /* an event stream: a stopping server ends it */
    bool upgrade;      /* 101: a byte stream after the head */
    bool sent;         /* ops->send was called */
    bool streaming;    /* the head went out and pieces may follow */
    size_t bytes_sent; /* body bytes handed to the protocol */
    const char *request_id;
    /* The protocol's seed for a request id made before the response (the
     * app's logger names the request); NULL: the protocol makes none. */
    uint64_t *id_seed;

    /* Upgraded: bytes from the peer go here; returns how many it took
     * (the protocol keeps the rest until resume_input). */
    size_t (*input)(void *input_ctx, const char *data, size_t len);
    void *input_ctx;
};

/* Copy the parsed head (pointers into `raw`) into the exchange's arena and
 * percent-decode the path. A path with bad escapes, a NUL byte, or a "." /
 * ".." segment after decoding (which could climb out of the route the
 * client appears to address) refuses the exchange with 400. */
void cf_exchange_set_head(cf_exchange *x, const cf_http_head *h, const char *raw, size_t raw_len);
/* A request header's value (case-insensitive name), or NULL. */
const char *cf_exchange_header(const cf_exchange *x, const char *name);
/* Mark x refused (see `refused`): the first refusal stands. */
void cf_exchange_refuse(cf_exchange *x, int status, const char *reason);
/* X-Request-Id: the client's (or proxy's) when it is a sane token, else a
 * new one made from *seed; set on the response too. */
const char *cf_exchange_request_id(cf_exchange *x, uint64_t *seed);

/* Name/value lists in an arena (headers, query args, cookies, forms). */
void cf_kv_push(cf_arena *a, cf_kv_list *l, char *name, char *value);
/* Replace every entry of that name (case-insensitive) by one. */
void cf_kv_set(cf_arena *a, cf_kv_list *l, char *name, char *value);
const char *cf_kv_get(const cf_kv_list *l, const char *name, bool nocase);
/* Decode %XX in place; returns the new length, or -1 on a malformed escape.
 * CF_URL_FORM decodes as HTML forms and query strings are (Werkzeug's
 * rules): '+' is a space, and a malformed escape ("%ZZ", a '%' near the
 * end) stays as it is, never an error. Paths are decoded strictly. */
enum { CF_URL_STRICT = 0, CF_URL_FORM = 1 };
long cf_url_decode(char *s, size_t len, int mode);
const char *cf_reason_phrase(int status);
/* A response with this status carries a body (not 1xx, 204 or 304). */
static inline bool cf_status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

#endif
