/*
 * req.h — internal shape of a request, and the interface between the
 * transports (HTTP connection, test client) and the app pipeline.
 *
 * A transport creates a request, gives it the parsed head, asks for the
 * route (to know the body limit before reading the body), supplies the
 * body, then dispatches it. The pipeline runs the hooks and handler in the
 * request's main task and calls transport->send once the response is
 * final; when the request's scope is released (main task, children and
 * pool jobs all finished) transport->finished is called and the request's
 * memory is reset.
 */
#ifndef CF_APP_REQ_H
#define CF_APP_REQ_H

#include <stdarg.h>
#include <stdint.h>

#include "app/app.h"
#include "carafe.h"
#include "core/arena.h"
#include "core/sched.h"
#include "http/parser.h"

typedef struct cf_transport {
    void (*send)(cf_req *rq);
    void (*finished)(cf_req *rq);
    /* A task of the request crashed (server workers): may be NULL. */
    void (*crashed)(cf_req *rq, bool main_task);
    /* Streaming bodies (rq->streaming, after send): a piece, queued at
     * once; a wait (may be NULL) while the client is behind; then the end,
     * with the producer's result (negative: the body is cut). */
    int (*write)(cf_req *rq, const void *data, size_t len);
    int (*drain)(cf_req *rq);
    void (*stream_end)(cf_req *rq, int result);
    /* Upgraded connections (WebSocket): input the session did not take
     * (cf_ws_input) is offered again when it wants more. */
    void (*resume_input)(cf_req *rq);
    bool upgrades; /* can switch the connection to WebSocket */
} cf_transport;

typedef struct cf_kv {
    char *name, *value;
} cf_kv;

typedef struct cf_kv_list {
    cf_kv *items;
    size_t len, cap;
} cf_kv_list;

typedef struct cf_gslot {
    const char *key;
    void *value;
    struct cf_gslot *next;
} cf_gslot;

struct cf_req {
    cf_app *app;
    cf_scope scope;
    cf_arena arena;
    cf_task main;
    const cf_transport *tp;
    void *tp_ctx;

    /* request, NUL-terminated copies in the arena */
    char *method;
    char *target;
    char *path; /* percent-decoded */
    char *query;
    int minor;
    bool keep_alive;
    bool is_head;
    cf_hfield *fields;
    size_t nfields;
    char *body;
    size_t body_len;

    /* routing */
    cf_route *route;
    cf_rule *rule;
    cf_match match;
    unsigned allowed;  /* methods of the matched rule */
    int route_status;  /* 0, 404, 405 or 308 */

    /* parsed on first use */
    bool args_parsed, cookies_parsed, form_parsed, json_parsed;
    cf_kv_list args, cookies, form;
    json_t *json;
    char **param_values;

    /* response */
    int status;
    const char *content_type;
    char *resp_body;
    size_t resp_len;
    cf_kv_list resp_headers;
    bool responded;
    int abort_status;
    int error;
    const char *errmsg;
    bool sent;
    cf_task_fn stream_fn; /* cf_stream's producer, or NULL */
    void *stream_arg;
    bool streaming;       /* its head went out and the producer runs */
    bool stream_sized;    /* Content-Length stream_len instead of chunks */
    bool stream_events;   /* cf_sse, WebSocket: cancelled when the server stops */
    uint64_t stream_len;
    struct cf_ws *ws;     /* a WebSocket session (src/http/websocket.c) */

    /* pipeline */
    size_t chain_pos;
    cf_gslot *g;
    char *label;
    uint64_t start_ns;
    size_t bytes_sent;
    const char *request_id;
    cf_timer deadline; /* CF_OPT_HANDLER_TIMEOUT */
    bool timed_out;
};

cf_req *cf_req_new(cf_app *app, const cf_transport *tp, void *tp_ctx);
/* Release a request whose scope was never started (parse errors). */
void cf_req_free(cf_req *rq);
/* Free this thread's pool of recycled requests (its loop is done). */
void cf_req_pool_drain(void);
/* Copy the parsed head (pointers into `raw`) into the request. Returns 0,
 * or an HTTP status (400) with *reason on a bad path. */
int cf_req_set_head(cf_req *rq, const cf_http_head *h, const char *raw, size_t raw_len,
                    const char **reason);
/* Match the route; sets route/route_status. */
void cf_req_route(cf_req *rq);
/* Body limit for this request. */
size_t cf_req_max_body(cf_req *rq);
/* Start the pipeline (the main task); the transport keeps the request
 * until ->finished. */
void cf_req_dispatch(cf_req *rq);
void cf_req_cancel(cf_req *rq);

/* Cancel every background task of this loop, naming each on stderr. */
void cf_background_cancel_all(void);

/* For core/task.c */
cf_scope *cf__req_scope(cf_req *rq);
bool cf__req_cancelled(cf_req *rq);
int cf__await_shielded(cf_req *rq, void *awaitable);

/* Shared helpers */
/* cf_sprintf with a va_list (request memory); *len (if given) gets the
 * formatted length. */
char *cf_vsprintf(cf_req *rq, size_t *len, const char *fmt, va_list ap);
void cf_kv_add(cf_req *rq, cf_kv_list *l, char *name, char *value);
const char *cf_kv_get(const cf_kv_list *l, const char *name, bool nocase);
/* Decode %XX and (if plus) '+' in place; returns new length or -1. */
long cf_url_decode(char *s, size_t len, bool plus);
void cf_parse_urlencoded(cf_req *rq, const char *s, size_t len, cf_kv_list *out);
const char *cf_reason_phrase(int status);
/* A response with this status carries a body (not 1xx, 204 or 304). */
static inline bool cf_status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}
/* Run a streaming response's producer and end its body (stream.c). */
void cf_stream_run(cf_req *rq);
/* Bytes from the client of an upgraded connection: returns how many were
 * taken (the rest stays buffered until the session wants more). */
size_t cf_ws_input(cf_req *rq, const char *data, size_t len);
/* cf_stream with a known length: sent with Content-Length, unframed. */
void cf_stream_sized(cf_req *rq, int status, const char *content_type, uint64_t len,
                     cf_task_fn fn, void *arg);
uint64_t cf_now_ns(void);

#endif
