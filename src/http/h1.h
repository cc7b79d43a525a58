/*
 * h1.h — internal to the HTTP/1.1 connection: its state, shared by the
 * connection's life cycle and reading (conn.c) and the response side
 * (h1_send.c: serializing heads, writing, streamed bodies, drain).
 */
#ifndef CF_HTTP_H1_H
#define CF_HTTP_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "core/sched.h"
#include "http/exchange.h"
#include "http/host.h"
#include "http/parser.h"

/* A TCP or Unix stream. */
typedef union cf_socket {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
} cf_socket;

enum conn_state {
    S_HEAD,       /* waiting for (the rest of) a request head */
    S_BODY,       /* reading a Content-Length body straight into the request */
    S_CHUNKED,    /* decoding a chunked body */
    S_HANDLING,   /* the exchange is in the app */
    S_LINGER,     /* our side is shut down; draining until EOF or timeout */
};

enum timer_kind { T_NONE, T_IDLE, T_HEADER, T_BODY, T_LINGER };

/* How the body of an exchange in the app still arrives (streamed bodies). */
enum body_mode { BODY_NONE, BODY_LENGTH, BODY_CHUNKED };

struct drain_wait;

struct cf_conn {
    cf_socket s;
    cf_http_server *srv;
    cf_conn *next, *prev;
    enum conn_state state;
    char *buf;         /* read buffer: request heads and pipelined bytes */
    size_t pos, len, cap;
    cf_exchange *x;    /* exchange being read or in the app */
    size_t body_got, body_cap;
    size_t max_body;
    cf_chunked chunked;
    /* A streamed body: what is left of it, and a reader waiting for bytes. */
    enum body_mode body_mode;
    uint64_t body_left;     /* BODY_LENGTH */
    int body_error;         /* the stream failed: every later read says so */
    bool continue_pending;  /* Expect: 100-continue not answered yet */
    cf_waitable *body_waiter;
    cf_timer timer;
    enum timer_kind timer_kind;
    uint64_t deadline;
    size_t unsent_at_timer; /* response bytes not yet taken when the timer last fired */
    int refs;          /* the handle, the exchange in flight, pending writes */
    bool closing;      /* uv_close called */
    bool keep_alive;   /* after the current response */
    bool processing;   /* inside process(): do not re-enter */
    bool read_paused;
    bool x_crashed;    /* its exchange will never finish: no longer counted */
    struct drain_wait *drain_waiters; /* streaming writers waiting for the client */
    char peer[64];
};

/* Unsent response bytes above which the next pipelined request waits, and
 * a streaming writer is suspended: a client that does not read must not
 * make the server buffer. */
#define WRITE_HIGH_WATER (64 * 1024)

static inline size_t h1_queued(cf_conn *c) { return uv_stream_get_write_queue_size(&c->s.stream); }

/* conn.c */
void h1_close(cf_conn *c);
void h1_unref(cf_conn *c);
void h1_process(cf_conn *c);
void h1_linger_close(cf_conn *c);
void h1_consume(cf_conn *c, size_t n);
void h1_start_reading(cf_conn *c);

/* h1_send.c: the response side of h1's exchange operations */
void h1_send(cf_exchange *x);
int h1_stream_write(cf_exchange *x, const void *data, size_t len);
int h1_stream_drain(cf_exchange *x);
void h1_stream_end(cf_exchange *x, int result);
/* Write bufs: as much as the socket takes now, the rest copied and queued. */
void h1_write(cf_conn *c, uv_buf_t *bufs, unsigned n);
/* A text/plain answer of the server's own with Connection: close, logged
 * as an event; then a graceful close (error) or a plain one (timeout). */
void h1_error_response(cf_conn *c, int status, const char *reason);
void h1_timeout_response(cf_conn *c, const char *what);
void h1_busy_response(cf_conn *c);
/* Writers waiting for the client to take the backlog. */
void h1_wake_drain_waiters(cf_conn *c);

#endif
