/*
 * carafe/testing.h — the in-process test client (Flask's app.test_client()),
 * part of the public API; <carafe.h> includes it.
 */
#ifndef CARAFE_TESTING_H
#define CARAFE_TESTING_H

#include <carafe.h>

#pragma GCC visibility push(default)

/* ------------------------------------------------------------------ */
/* In-process test client                                             */
/* ------------------------------------------------------------------ */

/* Runs requests through the whole pipeline (hooks, middleware, async
 * handlers awaiting real timers) on a private loop, without sockets. */
typedef struct cf_test_client cf_test_client;
typedef struct cf_test_response cf_test_response;

/* Starts the app like cf_run does: its database and queue connect and
 * the schema scripts run (once per app); NULL, with the reason on stderr,
 * when that fails. */
cf_test_client *cf_test_client_new(cf_app *app);
void cf_test_client_free(cf_test_client *tc); /* frees its responses too */
/* headers: NULL-terminated array of "Name: value" strings, or NULL. Returns
 * after the response is complete and teardown has run (or the client's
 * timeout, cf_test_set_timeout, ran out). */
cf_test_response *cf_test_request(cf_test_client *tc, const char *method,
                                  const char *target,
                                  const char *const *headers,
                                  const void *body, size_t len);
cf_test_response *cf_test_get(cf_test_client *tc, const char *target);
cf_test_response *cf_test_post_json(cf_test_client *tc, const char *target,
                                    const char *json_text);
/* Run the loop until every background task started so far has finished,
 * or timeout_ms passed (-1: no limit). Returns 0, or CF_ETIMEDOUT. */
int cf_test_wait_background(cf_test_client *tc, int64_t timeout_ms);
/* Run the loop (the client consumes the app's queue like a worker) until
 * no job is left in the queue (delayed ones included, dead letters
 * excluded) and no background task runs, or timeout_ms passed. Returns 0,
 * or CF_ETIMEDOUT. */
int cf_test_run_queue(cf_test_client *tc, int64_t timeout_ms);
int cf_test_status(const cf_test_response *r);
const char *cf_test_header(const cf_test_response *r, const char *name);
const char *cf_test_body(const cf_test_response *r, size_t *len);
/* Parsed body; borrowed, NULL if not JSON. */
json_t *cf_test_json(cf_test_response *r);
/* A streamed body's producer result: 0, or negative when the body was cut
 * (also 0 for a response that was not streamed). */
int cf_test_stream_result(const cf_test_response *r);
/* 0, or why the client cut the exchange short: CF_ETIMEDOUT (the client's
 * timeout), CF_ECANCELED (cf_test_close). */
int cf_test_error(const cf_test_response *r);

/* Give every later request (and each cf_test_read, cf_test_ws_recv
 * without a timeout of its own) at most `ms` milliseconds (-1, the
 * default: no limit). A request that takes longer is cancelled as if its
 * client had gone away; the call returns what had arrived, and
 * cf_test_error says CF_ETIMEDOUT. */
void cf_test_set_timeout(cf_test_client *tc, int64_t ms);

/* Forms: `fields` is a NULL-terminated array of name, value, name, value,
 * ... sent as application/x-www-form-urlencoded (percent-encoded here). */
cf_test_response *cf_test_post_form(cf_test_client *tc, const char *target,
                                    const char *const *fields);
/* One part of a multipart/form-data body: a file when filename is set. */
typedef struct cf_test_part {
    const char *name;
    const char *filename;     /* NULL: a plain field */
    const char *content_type; /* NULL: none (a field) or application/octet-stream */
    const void *data;
    size_t len;
} cf_test_part;
cf_test_response *cf_test_post_multipart(cf_test_client *tc, const char *target,
                                         const cf_test_part *parts, size_t nparts);

/* Streaming. cf_test_open starts a request and returns as soon as its
 * response head is in, the handler waits for body the client has not
 * sent, or the exchange ended. With body NULL, len 0 and a
 * "Transfer-Encoding: chunked" header, the body is sent afterwards with
 * cf_test_send_body, piece by piece (a route that streams its body reads
 * each as it comes; others get it whole at its end). */
cf_test_response *cf_test_open(cf_test_client *tc, const char *method, const char *target,
                               const char *const *headers, const void *body, size_t len);
/* Send a piece of an open request's body (len 0: its end), then run the
 * loop until the handler waits again or the exchange ended. Returns 0, or
 * CF_ECLOSED when the exchange no longer takes body. */
int cf_test_send_body(cf_test_response *r, const void *data, size_t len);
/* Wait for more of an open response's body: returns the length of what
 * arrived since the last read (pointed to by *data, valid until the next
 * call), 0 once the body has ended, or CF_ETIMEDOUT after timeout_ms
 * (-1: the client's timeout). cf_test_body has the whole body so far. */
long cf_test_read(cf_test_response *r, const char **data, int64_t timeout_ms);
/* Leave an open exchange as a client would (its tasks are cancelled) and
 * run the loop until its teardown has run. */
void cf_test_close(cf_test_response *r);

/* WebSocket sessions, framed by a real WebSocket client end (masking,
 * fragments, close handshake). cf_test_websocket sends the handshake and
 * returns the response: status 101 means the session runs. */
cf_test_response *cf_test_websocket(cf_test_client *tc, const char *target,
                                    const char *const *headers);
int cf_test_ws_send(cf_test_response *r, const void *data, size_t len, bool binary);
int cf_test_ws_send_text(cf_test_response *r, const char *text);
/* The next message from the server: 0 (valid until the next call),
 * CF_ECLOSED once the server closed, CF_ETIMEDOUT, CF_EPERM (no session). */
int cf_test_ws_recv(cf_test_response *r, cf_ws_message *msg, int64_t timeout_ms);
/* Send a close frame and run until the session has ended (its teardown
 * ran). Returns 0, CF_ETIMEDOUT, CF_EINVAL (bad code), CF_EPERM. */
int cf_test_ws_close(cf_test_response *r, int code, const char *reason);
/* The server's close code (1005: none given), 0 while it has not closed. */
int cf_test_ws_close_code(const cf_test_response *r);

#pragma GCC visibility pop

#endif
