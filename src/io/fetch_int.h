/*
 * fetch_int.h — internals of the HTTP client, shared by its three parts:
 * the public calls (fetch.c: cf_fetch_start and the blocking path of
 * threaded handlers, results, errors and their messages, cancellation,
 * cf_fetch_all), one transfer's easy handle (fetch_req.c: its options, the
 * request's URL, headers and body, the write and header callbacks that
 * keep the body and header limits) and the per-loop multi driver
 * (fetch_loop.c: libcurl's one-time set-up, the multi and share handles,
 * a uv_poll per socket, the timer, finished transfers, the easy-handle
 * pool).
 *
 * A cf_fetch lives in its request's arena; a fetch_svc is the loop's
 * (a scheduler-local slot). Everything here runs on the loop
 * thread, except the blocking path, which runs a private easy handle on a
 * pool thread and touches no fetch_svc.
 */
#ifndef CF_IO_FETCH_INT_H
#define CF_IO_FETCH_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>
#include <uv.h>

#include "app/req.h"
#include "core/sched.h"

/* Response header bytes kept per call (all responses of a redirect chain
 * together): a server sending headers without end must not grow the
 * request's memory without end. */
#define MAX_HEADER_BYTES ((size_t)256 << 10)
#define EASY_POOL_MAX 64

typedef struct fetch_svc fetch_svc;
typedef struct sock_ctx sock_ctx; /* one watched socket (fetch_loop.c) */

typedef struct fetch_hdr {
    const char *name, *value;
} fetch_hdr;

struct cf_fetch {
    cf_waitable w; /* first: a fetch is awaitable */
    cf_req *rq;
    cf_scope *scope; /* referenced while in the multi */
    fetch_svc *svc;
    CURL *easy;
    struct curl_slist *req_headers;
    const char *method;
    const char *url;     /* as called, query included */
    const char *eff_url; /* after redirects */
    cf_fetch *prev, *next; /* svc->active while in the multi */
    bool in_multi;
    bool zombie; /* cancelled inside a libcurl call: removed afterwards */
    bool toobig;
    bool headers_toobig;
    size_t header_bytes;
    bool json_done;
    int status;
    int error;
    const char *errmsg;
    size_t max_body;
    char *body; /* malloc'd, NUL-terminated when done */
    size_t len, cap;
    fetch_hdr *hdrs;
    size_t nhdrs, hdrs_cap;
    json_t *json;
    const char *req_body; /* kept until the transfer ends (POSTFIELDS) */
    char errbuf[CURL_ERROR_SIZE];
};

struct fetch_svc {
    uv_loop_t *loop;
    CURLM *multi;
    CURLSH *share;
    uv_timer_t timer;
    CURL *pool[EASY_POOL_MAX];
    size_t npool;
    cf_fetch *active;   /* fetches in the multi */
    cf_fetch *zombies;  /* cancelled inside libcurl, removed after it returns */
    sock_ctx *socks;    /* watched sockets */
    int in_curl;        /* inside curl_multi_socket_action */
};

/* ---- fetch.c ------------------------------------------------------------- */

/* Record the error and its message ("GET http://x/y: timed out (...)"). */
void cf__fetch_set_error(cf_fetch *f, int code, const char *detail);
/* Results of a transfer libcurl ended (or curl_easy_perform returned). */
void cf__fetch_collect(cf_fetch *f, CURL *e, CURLcode rc);

/* ---- fetch_req.c --------------------------------------------------------- */

/* url + '?'/'&' + encoded query, before any #fragment. NULL: odd list. */
const char *cf__fetch_build_url(cf_req *rq, const char *url, const char *const *query);
bool cf__fetch_is_token(const char *s);
/* Set every option of the transfer (svc NULL: the blocking path). Returns
 * 0 or an error (with the message already set). */
int cf__fetch_setup(cf_fetch *f, CURL *e, const cf_fetch_opts *o, fetch_svc *svc);

/* ---- fetch_loop.c -------------------------------------------------------- */

/* libcurl's one-time initialisation, done on first use; false if it failed. */
bool cf__fetch_global_init(void);
/* The loop's HTTP client, created on first use; NULL if it could not start. */
fetch_svc *cf__fetch_svc_get(void);
CURL *cf__fetch_easy_get(fetch_svc *svc);
void cf__fetch_easy_put(fetch_svc *svc, CURL *e);
void cf__fetch_active_unlink(fetch_svc *svc, cf_fetch *f);
/* Take the transfer out of the multi and give its handle back. */
void cf__fetch_remove(cf_fetch *f);
/* The request's memory may go once every fetch of it left the multi. */
void cf__fetch_release_scope(cf_fetch *f);

#endif
