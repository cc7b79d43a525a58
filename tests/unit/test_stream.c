/*
 * test_stream.c — streaming bodies and Server-Sent Events through the
 * in-process test client: pieces in order (with awaits between them), the
 * head (Transfer-Encoding, no Content-Length), after_request hooks seeing
 * and changing a streamed response before its body, HEAD and 204 not
 * running the producer, a later response replacing the stream, a failing
 * producer cutting the body, cf_write outside a stream (CF_EPERM), big
 * pieces through cf_writef, and the event-stream format of cf_sse_send
 * (event, id, multi-line data with LF, CR and CRLF, line breaks refused in
 * event and id), and cf_websocket's handshake in the test client. The framing on
 * a socket is tested in tests/integration/test_stream.py and
 * test_websocket.py.
 */
#include <carafe.h>

#include "check.h"

#include <stdlib.h>
#include <string.h>

static int producer_runs;
static int write_outside_rc;

static int count_to_three(cf_req *rq, void *arg)
{
    (void)arg;
    producer_runs++;
    for (int i = 1; i <= 3; i++) {
        if (cf_sleep(rq, 5) != 0)
            return CF_ECANCELED;
        int rc = cf_writef(rq, "piece %d\n", i);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void counting(cf_req *rq) { cf_stream(rq, 200, "text/plain", count_to_three, NULL); }

static void counting_no_content(cf_req *rq)
{
    cf_stream(rq, 204, "text/plain", count_to_three, NULL);
}

static void replaced(cf_req *rq)
{
    cf_stream(rq, 200, "text/plain", count_to_three, NULL);
    cf_text(rq, 200, "plain after all");
}

static void aborted(cf_req *rq)
{
    cf_stream(rq, 200, "text/plain", count_to_three, NULL);
    cf_abort(rq, 403);
}

static int fails_midway(cf_req *rq, void *arg)
{
    (void)arg;
    cf_write(rq, "half", 4);
    return CF_EFAIL;
}

static void failing(cf_req *rq) { cf_stream(rq, 200, "text/plain", fails_midway, NULL); }

static void writes_without_stream(cf_req *rq)
{
    write_outside_rc = cf_write(rq, "x", 1);
    cf_text(rq, 200, "ok");
}

static int big_pieces(cf_req *rq, void *arg)
{
    (void)arg;
    char *s = malloc(5000);
    memset(s, 'a', 4999);
    s[4999] = 0;
    int rc = cf_writef(rq, "%s|%s", s, s); /* over cf_writef's stack buffer */
    free(s);
    return rc;
}

static void big(cf_req *rq) { cf_stream(rq, 200, NULL, big_pieces, NULL); }

static int sse_rc_bad_event, sse_rc_bad_id;

static int events(cf_req *rq, void *arg)
{
    (void)arg;
    int rc = cf_sse_send(rq, NULL, NULL, "hello");
    rc |= cf_sse_send(rq, "update", "7", "line one\nline two\r\nline three\rend\n");
    rc |= cf_sse_send(rq, "empty", NULL, NULL);
    sse_rc_bad_event = cf_sse_send(rq, "bad\nevent", NULL, "x");
    sse_rc_bad_id = cf_sse_send(rq, NULL, "bad\rid", "x");
    return rc;
}

static void sse(cf_req *rq) { cf_sse(rq, events, NULL); }

static int never_runs(cf_req *rq, void *arg)
{
    (void)rq;
    (void)arg;
    producer_runs += 100;
    return 0;
}

static void ws(cf_req *rq) { cf_websocket(rq, never_runs, NULL); }

static void after_hook(cf_req *rq)
{
    if (strcmp(cf_path(rq), "/count") == 0)
        cf_set_header(rq, "X-After", cf_response_header(rq, "Content-Type"));
}

int main(void)
{
    cf_app *app = cf_app_new();
    cf_route(app, "GET", "/count", counting);
    cf_route(app, "GET", "/nocontent", counting_no_content);
    cf_route(app, "GET", "/replaced", replaced);
    cf_route(app, "GET", "/aborted", aborted);
    cf_route(app, "GET", "/failing", failing);
    cf_route(app, "GET", "/outside", writes_without_stream);
    cf_route(app, "GET", "/big", big);
    cf_route(app, "GET", "/events", sse);
    cf_route(app, "GET", "/ws", ws);
    cf_after_request(app, after_hook);
    cf_test_client *tc = cf_test_client_new(app);

    cf_test_response *r = cf_test_get(tc, "/count");
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(cf_test_body(r, NULL), "piece 1\npiece 2\npiece 3\n");
    CHECK_STR(cf_test_header(r, "Transfer-Encoding"), "chunked");
    CHECK(cf_test_header(r, "Content-Length") == NULL);
    CHECK_STR(cf_test_header(r, "X-After"), "text/plain"); /* the hook ran before the body */
    CHECK_INT(cf_test_stream_result(r), 0);
    CHECK_INT(producer_runs, 1);

    r = cf_test_request(tc, "HEAD", "/count", NULL, NULL, 0);
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(cf_test_body(r, NULL), "");
    CHECK_INT(producer_runs, 1); /* HEAD: no body, no producer */

    r = cf_test_get(tc, "/nocontent");
    CHECK_INT(cf_test_status(r), 204);
    CHECK_STR(cf_test_body(r, NULL), "");
    CHECK_INT(producer_runs, 1);

    r = cf_test_get(tc, "/replaced");
    CHECK_STR(cf_test_body(r, NULL), "plain after all");
    CHECK(cf_test_header(r, "Transfer-Encoding") == NULL);
    CHECK_INT(producer_runs, 1);

    r = cf_test_get(tc, "/aborted");
    CHECK_INT(cf_test_status(r), 403);
    CHECK_INT(producer_runs, 1);

    r = cf_test_get(tc, "/failing");
    CHECK_STR(cf_test_body(r, NULL), "half");
    CHECK_INT(cf_test_stream_result(r), CF_EFAIL);

    r = cf_test_get(tc, "/outside");
    CHECK_STR(cf_test_body(r, NULL), "ok");
    CHECK_INT(write_outside_rc, CF_EPERM);

    size_t len = 0;
    r = cf_test_get(tc, "/big");
    const char *b = cf_test_body(r, &len);
    CHECK_INT(len, 9999);
    CHECK(len == 9999 && b[0] == 'a' && b[4999] == '|' && b[9998] == 'a');

    r = cf_test_get(tc, "/events");
    CHECK_STR(cf_test_header(r, "Content-Type"), "text/event-stream");
    CHECK_STR(cf_test_header(r, "Cache-Control"), "no-cache");
    CHECK_STR(cf_test_body(r, NULL), "data: hello\n\n"
                                     "event: update\nid: 7\ndata: line one\ndata: line two\n"
                                     "data: line three\ndata: end\ndata: \n\n"
                                     "event: empty\ndata: \n\n");
    CHECK_INT(sse_rc_bad_event, CF_EINVAL);
    CHECK_INT(sse_rc_bad_id, CF_EINVAL);
    CHECK_INT(cf_test_stream_result(r), 0);

    /* The test client upgrades too (RFC 6455's sample key and answer); the
     * session itself is tested in test_exchange.c */
    const char *const upgrade[] = {"Upgrade: websocket", "Connection: Upgrade",
                                   "Sec-WebSocket-Version: 13",
                                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", NULL};
    r = cf_test_request(tc, "GET", "/ws", upgrade, NULL, 0);
    CHECK_INT(cf_test_status(r), 101);
    CHECK_STR(cf_test_header(r, "Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CHECK_INT(producer_runs, 101);

    cf_test_client_free(tc);
    cf_app_free(app);
    return CHECK_DONE();
}
