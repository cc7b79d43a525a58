/*
 * test_exchange.c — the test client as a full exchange implementation:
 * a WebSocket session (echo, binary, server-initiated messages, the close
 * handshake both ways, 1009 for a message over the route's limit, UTF-8
 * refused), a request body streamed to a route piece by piece (the
 * handler reads each piece before the next is sent; the route's limit;
 * cf_body on a streaming route; a route taking its body whole from a
 * piecewise upload), a response read piece by piece from an endless event
 * stream and then left, the per-request timeout, and the form helpers.
 * The same paths over real sockets: tests/integration/test_stream.py,
 * test_websocket.py, test_upload_stream.py.
 */
#include <carafe.h>

#include "check.h"

#include <stdlib.h>
#include <string.h>

static int teardowns;
static void count_teardown(cf_req *rq)
{
    (void)rq;
    teardowns++;
}

/* ---- WebSocket ---------------------------------------------------------- */

static int session_recv_rc;

static int echo_session(cf_req *rq, void *arg)
{
    (void)arg;
    cf_ws_send_text(rq, "welcome");
    for (;;) {
        cf_ws_message m;
        int rc = cf_ws_recv(rq, &m, -1);
        if (rc != 0) {
            session_recv_rc = rc;
            return 0;
        }
        if (!m.binary && strcmp(m.data, "bye") == 0)
            return cf_ws_close(rq, 4000, "done");
        cf_ws_send(rq, m.data, m.len, m.binary);
    }
}

static void ws_echo(cf_req *rq) { cf_websocket(rq, echo_session, NULL); }

static void test_websocket(cf_test_client *tc)
{
    cf_test_response *r = cf_test_websocket(tc, "/ws", NULL);
    CHECK_INT(cf_test_status(r), 101);
    CHECK_STR(cf_test_header(r, "Upgrade"), "websocket");
    cf_ws_message m;
    CHECK_INT(cf_test_ws_recv(r, &m, 1000), 0);
    CHECK_STR(m.data, "welcome");

    CHECK_INT(cf_test_ws_send_text(r, "hello"), 0);
    CHECK_INT(cf_test_ws_recv(r, &m, 1000), 0);
    CHECK_STR(m.data, "hello");
    CHECK(!m.binary);

    const unsigned char bin[] = {0, 1, 2, 255, 0};
    CHECK_INT(cf_test_ws_send(r, bin, sizeof bin, true), 0);
    CHECK_INT(cf_test_ws_recv(r, &m, 1000), 0);
    CHECK(m.binary);
    CHECK_INT(m.len, sizeof bin);
    CHECK(memcmp(m.data, bin, sizeof bin) == 0);

    /* 200 KiB in one message: several frames' worth, joined */
    size_t big = 200 * 1024;
    char *payload = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        payload[i] = (char)('a' + i % 26);
    payload[big] = 0;
    CHECK_INT(cf_test_ws_send_text(r, payload), 0);
    CHECK_INT(cf_test_ws_recv(r, &m, 2000), 0);
    CHECK_INT(m.len, big);
    CHECK(m.len == big && memcmp(m.data, payload, big) == 0);
    free(payload);

    /* The client end checks text as the server end does. */
    CHECK_INT(cf_test_ws_send(r, "\xff", 1, false), CF_EINVAL);
    CHECK_INT(cf_test_ws_recv(r, &m, 50), CF_ETIMEDOUT);

    /* The server closes: 4000 arrives, and the session has ended. */
    int before = teardowns;
    CHECK_INT(cf_test_ws_send_text(r, "bye"), 0);
    CHECK_INT(cf_test_ws_recv(r, &m, 1000), CF_ECLOSED);
    CHECK_INT(cf_test_ws_close_code(r), 4000);
    CHECK_INT(cf_test_ws_close(r, 1000, NULL), 0);
    CHECK_INT(teardowns, before + 1);

    /* The client closes: the server's cf_ws_recv sees CF_ECLOSED. */
    r = cf_test_websocket(tc, "/ws", NULL);
    CHECK_INT(cf_test_ws_recv(r, &m, 1000), 0);
    session_recv_rc = 0;
    before = teardowns;
    CHECK_INT(cf_test_ws_close(r, 1000, "leaving"), 0);
    CHECK_INT(session_recv_rc, CF_ECLOSED);
    CHECK_INT(teardowns, before + 1);
    CHECK_INT(cf_test_ws_close(r, 6000, NULL), CF_EINVAL);

    /* Over the route's limit (1 KiB): the server closes with 1009. */
    r = cf_test_websocket(tc, "/ws-small", NULL);
    CHECK_INT(cf_test_ws_recv(r, &m, 1000), 0);
    char over[2048];
    memset(over, 'x', sizeof over);
    CHECK_INT(cf_test_ws_send(r, over, sizeof over, false), 0);
    CHECK_INT(cf_test_ws_recv(r, &m, 1000), CF_ECLOSED);
    CHECK_INT(cf_test_ws_close_code(r), 1009);

    /* Not a handshake: the route says so. */
    r = cf_test_get(tc, "/ws");
    CHECK_INT(cf_test_status(r), 426);
    CHECK_INT(cf_test_ws_send_text(r, "x"), CF_EPERM);
}

/* ---- streamed request bodies ------------------------------------------------ */

static size_t upload_seen;  /* bytes the handler has read so far */
static long upload_error;

static void upload(cf_req *rq)
{
    char buf[1000];
    unsigned long sum = 0;
    long n;
    size_t largest = 0;
    while ((n = cf_body_read(rq, buf, sizeof buf)) > 0) {
        for (long i = 0; i < n; i++)
            sum += (unsigned char)buf[i];
        upload_seen += (size_t)n;
        if ((size_t)n > largest)
            largest = (size_t)n;
    }
    upload_error = n;
    if (n == CF_ETOOBIG)
        return cf_abort(rq, 413);
    if (n < 0)
        return cf_abort(rq, 400);
    cf_json(rq, 200, "{sI sI sI}", "bytes", (json_int_t)upload_seen, "sum", (json_int_t)sum,
            "largest", (json_int_t)largest);
}

static void whole(cf_req *rq)
{
    size_t len;
    const char *body = cf_body(rq, &len);
    cf_json(rq, 200, "{sI ss#}", "bytes", (json_int_t)len, "start", body, len < 8 ? (int)len : 8);
}

static void test_upload(cf_test_client *tc)
{
    static const char *const chunked[] = {"Transfer-Encoding: chunked", NULL};
    char piece[100 * 1000];
    for (size_t i = 0; i < sizeof piece; i++)
        piece[i] = (char)(i % 251);
    unsigned long piece_sum = 0;
    for (size_t i = 0; i < sizeof piece; i++)
        piece_sum += (unsigned char)piece[i];

    upload_seen = 0;
    cf_test_response *r = cf_test_open(tc, "POST", "/upload", chunked, NULL, 0);
    CHECK_INT(cf_test_status(r), 0); /* no answer yet: the handler waits for body */
    for (int i = 0; i < 10; i++) {
        CHECK_INT(cf_test_send_body(r, piece, sizeof piece), 0);
        /* each piece was read before the next one was sent */
        CHECK_INT(upload_seen, (size_t)(i + 1) * sizeof piece);
    }
    CHECK_INT(cf_test_send_body(r, NULL, 0), 0);
    CHECK_INT(cf_test_status(r), 200);
    json_t *j = cf_test_json(r);
    CHECK_INT(json_integer_value(json_object_get(j, "bytes")), 10 * sizeof piece);
    CHECK_INT(json_integer_value(json_object_get(j, "sum")), 10 * piece_sum);
    CHECK_INT(json_integer_value(json_object_get(j, "largest")), 1000);
    CHECK_INT(cf_test_send_body(r, "late", 4), CF_ECLOSED);

    /* A whole body given at once reaches a streaming route too. */
    upload_seen = 0;
    r = cf_test_request(tc, "POST", "/upload", NULL, piece, 2500);
    CHECK_INT(cf_test_status(r), 200);
    CHECK_INT(json_integer_value(json_object_get(cf_test_json(r), "bytes")), 2500);

    /* Past the route's limit (300 kB): the handler hears CF_ETOOBIG. */
    upload_seen = 0;
    r = cf_test_open(tc, "POST", "/upload-small", chunked, NULL, 0);
    for (int i = 0; i < 4 && cf_test_status(r) == 0; i++)
        cf_test_send_body(r, piece, sizeof piece);
    CHECK_INT(upload_error, CF_ETOOBIG);
    CHECK_INT(cf_test_status(r), 413);
    CHECK(upload_seen <= 300 * 1000);

    /* cf_body on a streaming route reads the rest whole. */
    r = cf_test_open(tc, "POST", "/whole-streamed", chunked, NULL, 0);
    cf_test_send_body(r, "abcd", 4);
    cf_test_send_body(r, "efghij", 6);
    cf_test_send_body(r, NULL, 0);
    CHECK_INT(cf_test_status(r), 200);
    CHECK_INT(json_integer_value(json_object_get(cf_test_json(r), "bytes")), 10);
    CHECK_STR(json_string_value(json_object_get(cf_test_json(r), "start")), "abcdefgh");

    /* A route that takes its body whole gets a piecewise upload at its end. */
    r = cf_test_open(tc, "POST", "/whole", chunked, NULL, 0);
    cf_test_send_body(r, "1234", 4);
    CHECK_INT(cf_test_status(r), 0);
    cf_test_send_body(r, "5678", 4);
    cf_test_send_body(r, NULL, 0);
    CHECK_INT(cf_test_status(r), 200);
    CHECK_INT(json_integer_value(json_object_get(cf_test_json(r), "bytes")), 8);
}

/* ---- streamed responses, timeouts ------------------------------------------- */

static int endless(cf_req *rq, void *arg)
{
    (void)arg;
    for (int i = 0;; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        int rc = cf_sse_send(rq, "tick", id, "x");
        if (rc == 0)
            rc = cf_sleep(rq, 5);
        if (rc != 0)
            return rc;
    }
}

static void ticks(cf_req *rq) { cf_sse(rq, endless, NULL); }

static void slow(cf_req *rq)
{
    if (cf_sleep(rq, 10000) != 0)
        return;
    cf_text(rq, 200, "late");
}

static void test_streams(cf_test_client *tc)
{
    int before = teardowns;
    cf_test_response *r = cf_test_open(tc, "GET", "/ticks", NULL, NULL, 0);
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(cf_test_header(r, "Content-Type"), "text/event-stream");
    const char *piece;
    long n = cf_test_read(r, &piece, 1000);
    CHECK(n > 0 && strncmp(piece, "event: tick\nid: 0\ndata: x\n\n", (size_t)n) == 0);
    for (int i = 0; i < 3; i++)
        CHECK(cf_test_read(r, &piece, 1000) > 0);
    size_t len;
    CHECK(strstr(cf_test_body(r, &len), "id: 3\n") != NULL);
    CHECK_INT(teardowns, before);
    cf_test_close(r);
    CHECK_INT(teardowns, before + 1);
    CHECK_INT(cf_test_error(r), CF_ECANCELED);

    /* The client's timeout: the request is cancelled, its teardown runs. */
    cf_test_set_timeout(tc, 100);
    before = teardowns;
    r = cf_test_get(tc, "/slow");
    CHECK_INT(cf_test_error(r), CF_ETIMEDOUT);
    CHECK_INT(cf_test_status(r), 0);
    CHECK_INT(teardowns, before + 1);
    r = cf_test_get(tc, "/ticks"); /* an endless stream returns too */
    CHECK_INT(cf_test_error(r), CF_ETIMEDOUT);
    CHECK_INT(cf_test_status(r), 200);
    CHECK(strstr(cf_test_body(r, &len), "id: 1\n") != NULL);
    cf_test_set_timeout(tc, -1);
}

/* ---- forms -------------------------------------------------------------------- */

static void form(cf_req *rq)
{
    cf_json(rq, 200, "{ss ss}", "a", cf_form(rq, "a") ? cf_form(rq, "a") : "(none)", "b",
            cf_form(rq, "b") ? cf_form(rq, "b") : "(none)");
}

static void raw(cf_req *rq)
{
    size_t len;
    const char *body = cf_body(rq, &len);
    cf_send(rq, 200, cf_header(rq, "Content-Type"), body, len);
}

static void test_forms(cf_test_client *tc)
{
    const char *const fields[] = {"a", "x y&z=1", "b", "caf\xc3\xa9 100%", NULL};
    cf_test_response *r = cf_test_post_form(tc, "/form", fields);
    CHECK_STR(json_string_value(json_object_get(cf_test_json(r), "a")), "x y&z=1");
    CHECK_STR(json_string_value(json_object_get(cf_test_json(r), "b")), "caf\xc3\xa9 100%");

    cf_test_part parts[] = {{"title", NULL, NULL, "hi", 2},
                            {"file", "a \"q\".txt", "text/plain", "line1\r\nline2", 12}};
    r = cf_test_post_multipart(tc, "/raw", parts, 2);
    const char *ct = cf_test_header(r, "Content-Type");
    CHECK(ct && strncmp(ct, "multipart/form-data; boundary=", 30) == 0);
    if (ct) {
        const char *boundary = ct + 30;
        char expect[1024];
        snprintf(expect, sizeof expect,
                 "--%s\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhi\r\n"
                 "--%s\r\nContent-Disposition: form-data; name=\"file\"; "
                 "filename=\"a %%22q%%22.txt\"\r\nContent-Type: text/plain\r\n\r\n"
                 "line1\r\nline2\r\n--%s--\r\n",
                 boundary, boundary, boundary);
        size_t len;
        CHECK_STR(cf_test_body(r, &len), expect);
    }
}

/* ---- refusals the app answers ---------------------------------------------- */

static int befores, handled;
static void count_before(cf_req *rq) { befores++; }
static void small(cf_req *rq)
{
    handled++;
    cf_text(rq, 200, "handled");
}
static void json_error(cf_req *rq)
{
    cf_json(rq, cf_req_status(rq), "{s:i,s:s}", "status", cf_req_status(rq), "error", cf_errmsg(rq));
}

/* A body over the limit and a refused path reach the app's error handlers
 * (as over a socket), without its hooks or the route's handler. */
static void test_refusals(void)
{
    cf_app *app = cf_app_new();
    cf_route_set_max_body(cf_route(app, "POST", "/small", small), 100);
    cf_route(app, "GET", "/a/<path:p>", small);
    cf_before_request(app, count_before);
    cf_teardown_request(app, count_teardown);
    cf_errorhandler(app, 413, json_error);
    cf_errorhandler(app, 400, json_error);
    cf_test_client *tc = cf_test_client_new(app);
    static const char *const chunked[] = {"Transfer-Encoding: chunked", NULL};
    char body[500];
    memset(body, 'b', sizeof body);
    befores = handled = teardowns = 0;

    cf_test_response *r = cf_test_request(tc, "POST", "/small", NULL, body, sizeof body);
    CHECK_INT(cf_test_status(r), 413);
    CHECK_INT(json_integer_value(json_object_get(cf_test_json(r), "status")), 413);
    CHECK_STR(json_string_value(json_object_get(cf_test_json(r), "error")),
              "the request body is larger than the limit");
    CHECK_STR(cf_test_header(r, "Connection"), "close");

    r = cf_test_open(tc, "POST", "/small", chunked, NULL, 0);
    CHECK_INT(cf_test_send_body(r, body, 60), 0);
    CHECK_INT(cf_test_send_body(r, body, 60), 0);
    CHECK_INT(cf_test_send_body(r, NULL, 0), 0);
    CHECK_INT(cf_test_status(r), 413);
    CHECK_INT(json_integer_value(json_object_get(cf_test_json(r), "status")), 413);

    r = cf_test_get(tc, "/a/%2e%2e/secret");
    CHECK_INT(cf_test_status(r), 400);
    CHECK_STR(json_string_value(json_object_get(cf_test_json(r), "error")),
              "dot segments are not allowed in the path");
    CHECK_INT(befores, 0);
    CHECK_INT(handled, 0);
    CHECK_INT(teardowns, 3);

    /* Within the limit, all of it runs. */
    r = cf_test_request(tc, "POST", "/small", NULL, body, 100);
    CHECK_STR(cf_test_body(r, NULL), "handled");
    CHECK_INT(befores, 1);
    cf_test_client_free(tc);
    cf_app_free(app);
}

int main(void)
{
    cf_app *app = cf_app_new();
    cf_route_set_max_body(cf_route(app, "GET", "/ws", ws_echo), 1024 * 1024);
    cf_route_set_max_body(cf_route(app, "GET", "/ws-small", ws_echo), 1024);
    cf_route *up = cf_route(app, "POST", "/upload", upload);
    cf_route_set_stream_body(up, true);
    cf_route_set_max_body(up, 2 * 1000 * 1000);
    up = cf_route(app, "POST", "/upload-small", upload);
    cf_route_set_stream_body(up, true);
    cf_route_set_max_body(up, 300 * 1000);
    cf_route_set_stream_body(cf_route(app, "POST", "/whole-streamed", whole), true);
    cf_route(app, "POST", "/whole", whole);
    cf_route(app, "GET", "/ticks", ticks);
    cf_route(app, "GET", "/slow", slow);
    cf_route(app, "POST", "/form", form);
    cf_route(app, "POST", "/raw", raw);
    cf_teardown_request(app, count_teardown);
    cf_test_client *tc = cf_test_client_new(app);

    test_websocket(tc);
    test_upload(tc);
    test_streams(tc);
    test_forms(tc);

    cf_test_client_free(tc);
    cf_app_free(app);
    test_refusals(); /* its own app: one test client per thread at a time */
    return CHECK_DONE();
}
