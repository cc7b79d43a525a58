/*
 * req.h — internal shape of a request: the app's side of an exchange
 * (src/http/exchange.h), and the calls by which a protocol hands one to
 * the app.
 *
 * A protocol asks for a request (cf_req_new: the exchange lives in it),
 * fills the head, asks for the route (to know the body limit, and whether
 * the route reads its body as a stream, before reading the body), supplies
 * the body, then dispatches it. The pipeline runs the hooks and handler in
 * the request's main task and calls x.ops->send once the response is
 * final; when the request's scope is released (main task, children and
 * pool jobs all finished) x.ops->finished is called and the request's
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
#include "http/exchange.h"

/* A request's temporary file of an upload (multipart.c); path is NULL
 * once it is gone or was moved by cf_file_save. */
typedef struct cf_spool {
    char *path;
    int fd;
    struct cf_spool *next;
} cf_spool;

typedef struct cf_gslot {
    const char *key;
    void *value;
    struct cf_gslot *next;
} cf_gslot;

struct cf_req {
    cf_exchange x; /* head, body, response: what the protocol sees */
    cf_app *app;
    cf_scope scope;
    cf_arena arena;
    cf_task main;

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
    size_t body_pos; /* cf_body_read's place in a body received whole */
    int form_error;  /* cf_form_parse's result, once parsed */

    /* multipart/form-data (multipart.c) */
    struct cf_mp_reader *mp;
    struct cf_spool *spools; /* temporary files: gone at the end, or a crash */
    cf_file **files;         /* NULL-terminated */
    size_t nfiles, files_cap;
    size_t form_memory;      /* bytes of fields and files kept in memory */
    char **param_values;

    /* response (the rest is in x) */
    bool responded;
    int abort_status;
    int error;
    const char *errmsg;
    cf_task_fn stream_fn; /* cf_stream's producer, or NULL */
    void *stream_arg;
    bool wants_ws;        /* cf_websocket answered 101 */
    struct cf_ws *ws;     /* its session, while it runs (src/http/websocket.c) */
    struct cf_encoder *encoder; /* a compressed stream's (compress.c), or NULL */

    /* pipeline */
    size_t chain_pos;
    size_t wrap_pos;     /* next cf_wrap wrapper */
    bool wrapping;       /* cf_next goes to the wrappers, not the route's chain */
    cf_group **gpath;    /* the route's groups, root first, while the pipeline runs */
    size_t gdepth;
    cf_gslot *g;
    json_t *g_json;      /* cf_g_json: what templates see as `g` */
    struct cf_session *session; /* cf_session's state, once used (session.c) */
    char *label;
    cf_timer deadline; /* CF_OPT_HANDLER_TIMEOUT */
    bool timed_out;
};

/* multipart.c: read every part (fields into rq->form, files into
 * rq->files); 0 or a CF_E* code with rq->errmsg. */
int cf_multipart_parse_all(cf_req *rq);
/* A handler of rq crashed: remove its temporary files now. */
void cf_multipart_crashed(cf_req *rq);

/* A request for an exchange of `ops`; its x.proto is set by the caller. */
cf_req *cf_req_new(cf_app *app, const cf_exchange_ops *ops, void *proto);
/* Release a request whose scope was never started (parse errors). */
void cf_req_free(cf_req *rq);
/* Free this thread's pool of recycled requests (its loop is done). */
void cf_req_pool_drain(void);
/* The head is in (cf_exchange_set_head): match the route; sets
 * route/route_status, and x.body_streamed when the route reads its body
 * as a stream. */
void cf_req_route(cf_req *rq);
/* Body limit for this request. */
size_t cf_req_max_body(cf_req *rq);
/* Start the pipeline (the main task); the protocol keeps the exchange
 * until x.ops->finished. */
void cf_req_dispatch(cf_req *rq);
/* The peer went away: cancel the request's tasks. */
void cf_req_cancel(cf_req *rq);
static inline cf_req *cf_req_of(cf_exchange *x) { return (cf_req *)x; }

/* A request-less context (a background task, the serving hooks): a
 * request on an exchange of `ops` that answers nobody, its head saying
 * `method` and `path` (copied). NULL when out of memory. */
cf_req *cf_context_new(cf_app *app, const cf_exchange_ops *ops, void *proto, const char *method,
                       const char *path);
/* Start fn(rq, arg) as its main task, owned by no other task (a caller's
 * cancellation does not reach it). Returns 0, or CF_ENOMEM (rq is freed). */
int cf_context_start(cf_req *rq, cf_task_body fn, void *arg);

/* Cancel every background task of this loop, naming each on stderr. */
void cf_background_cancel_all(void);

/* For the I/O modules: the request's scope (what keeps its memory). */
cf_scope *cf__req_scope(cf_req *rq);

/* Shared helpers */
/* cf_sprintf with a va_list (request memory); *len (if given) gets the
 * formatted length. */
char *cf_vsprintf(cf_req *rq, size_t *len, const char *fmt, va_list ap);
static inline void cf_kv_add(cf_req *rq, cf_kv_list *l, char *name, char *value)
{
    cf_kv_push(&rq->arena, l, name, value);
}
void cf_parse_urlencoded(cf_req *rq, const char *s, size_t len, cf_kv_list *out);
/* Run a streaming response's producer and end its body (stream.c). */
void cf_stream_run(cf_req *rq);
/* cf_stream with a known length: sent with Content-Length, unframed. */
void cf_stream_sized(cf_req *rq, int status, const char *content_type, uint64_t len,
                     cf_task_fn fn, void *arg);

#endif
