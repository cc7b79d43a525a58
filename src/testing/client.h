/*
 * client.h — internal to the test client: its state, and the pieces its
 * files share (client.c: requests, responses and the loop; client_ws.c:
 * WebSocket sessions; forms.c: urlencoded and multipart bodies).
 */
#ifndef CF_TESTING_CLIENT_H
#define CF_TESTING_CLIENT_H

#include "app/lifecycle.h"
#include "app/req.h"
#include "http/websocket.h"

/* A byte queue between the two ends of an in-memory exchange. */
typedef struct tbuf {
    char *data;
    size_t len, cap;
} tbuf;

struct cf_test_response {
    cf_test_client *tc;
    int status;
    char **headers; /* name, value, name, value, ... */
    size_t nheaders;
    char *body;
    size_t len;
    json_t *json;
    bool json_done;
    int stream_result; /* a streamed body's producer result (negative: cut) */
    int error;         /* CF_ETIMEDOUT, CF_ECANCELED: the client cut it short */
    cf_test_response *next, *next_open;

    /* While the exchange runs (NULL once it finished). */
    cf_req *rq;
    bool head_done;    /* the response head is in */
    bool body_ended;   /* ... and its body ended */
    bool finished;     /* the exchange ended: teardown ran */
    size_t read_pos;   /* cf_test_read's place in body */

    /* A body sent piece by piece (cf_test_send_body). */
    bool uploading;    /* the body is still being sent */
    bool dispatched;
    tbuf upload;       /* sent, not yet read by the handler */
    size_t upload_total;
    cf_waitable *body_waiter;
    cf_waitable *drain_waiter; /* the app's writer, while cf_test_read is behind */

    /* A WebSocket session: the client's end, and bytes each way. */
    cf_ws *ws;
    tbuf to_server, to_client;
    cf_waitable ws_wait; /* completed by the client end: a message, or the close */
};

struct cf_test_client {
    cf_app *app;
    uv_loop_t loop;
    cf_sched sched;
    uv_idle_t pump;         /* carries WebSocket bytes between the ends */
    bool pumping;
    int64_t timeout_ms;
    cf_test_response *responses;
    cf_test_response *open; /* exchanges still running */
    uint64_t id_seed;       /* request ids for cf_log */
    cf_lifecycle life;      /* the serving hooks */
    bool life_done;
    int life_rc;
};

void tbuf_put(tbuf *b, const void *data, size_t len);
void tbuf_take(tbuf *b, size_t n);
/* Run the loop until done(r), or until deadline (UINT64_MAX: none).
 * Returns 0, or CF_ETIMEDOUT. `what` names the wait when nothing can end it. */
int cf__test_run_until(cf_test_response *r, bool (*done)(cf_test_response *r), uint64_t deadline,
                       const char *what);
uint64_t cf__test_deadline(cf_test_client *tc, int64_t timeout_ms);
/* Carry pending WebSocket bytes (client_ws.c), from the loop stack. */
void cf__test_pump(cf_test_response *r);
void cf__test_want_pump(cf_test_client *tc);

#endif
