/*
 * host.h — the HTTP/1.1 server side of the protocol layer, and what it
 * needs from the layers above, as an interface they fill in.
 *
 * The protocol layer knows neither the app nor the worker process. A
 * cf_http_server holds what the connections of one loop share (limits,
 * timeouts, the connection list and counts, the stop flag); its host (the
 * server layer's worker) supplies, through cf_http_host, the app's side of
 * an exchange (make one, route it, dispatch it, cancel it) and its own
 * services (the cached Date header, the access log and metrics, being told
 * of closed connections, finished and crashed requests).
 */
#ifndef CF_HTTP_HOST_H
#define CF_HTTP_HOST_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "http/exchange.h"

typedef struct cf_conn cf_conn;

typedef struct cf_http_host {
    /* A new exchange for a request arriving on a connection (the app's
     * request object, in which the exchange lives); NULL when out of memory. */
    cf_exchange *(*exchange_new)(void *ctx, const cf_exchange_ops *ops, void *proto);
    /* An exchange that was never dispatched (a framing error, a 413). */
    void (*exchange_free)(cf_exchange *x);
    /* The head is in: route it. Returns the body limit, and sets
     * x->body_streamed when the route reads its body as it arrives. */
    size_t (*route)(cf_exchange *x);
    /* Run the app on it; it reports back through x->ops. */
    void (*dispatch)(cf_exchange *x);
    /* The peer went away, or the server stops an event stream. */
    void (*cancel)(cf_exchange *x);

    /* "Date: Sat, 21 Nov 2026 23:50:01 GMT\r\n", refreshed once a second. */
    const char *(*date)(void *ctx);
    /* A response went out whole (or, streamed, ended): log and count it. */
    void (*sent)(void *ctx, cf_exchange *x);
    /* The server answered on its own (a framing error, a timeout) or
     * dropped a client: a log record without a request (status 0: none). */
    void (*event)(void *ctx, const char *peer, int status, size_t bytes, const char *what);
    /* A connection's memory is gone (the host may be waiting to stop). */
    void (*conn_closed)(void *ctx);
    /* An exchange finished (for --max-requests). */
    void (*request_done)(void *ctx);
    /* A task of an exchange crashed: the process should be replaced. */
    void (*crashed)(void *ctx);
} cf_http_host;

typedef struct cf_http_server {
    const cf_http_host *host;
    void *ctx;              /* the host's own, passed back to it */
    uv_loop_t *loop;
    uv_stream_t *listener;
    bool is_unix;
    cf_http_limits limits;
    uint64_t header_ms, body_ms, keepalive_ms;
    uint64_t send_timeout_ms; /* 0: none */
    size_t nconns, max_conns;
    size_t inflight;        /* exchanges in the app, counted until finished */
    cf_conn *conns;         /* every open connection, for the graceful stop */
    bool stopping;          /* answer with Connection: close, accept nothing */
    bool request_ids;       /* give every response an X-Request-Id */
    uint64_t id_seed;
} cf_http_server;

/* Accept one connection from s->listener. */
void cf_http_accept(cf_http_server *s);
/* Graceful stop (s->stopping is set): end event streams, close idle
 * connections after a short grace. */
void cf_http_stop_idle(cf_http_server *s);

#endif
