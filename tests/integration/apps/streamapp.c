/*
 * streamapp — the app tests/integration/test_stream.py starts: streaming
 * bodies and Server-Sent Events over real sockets.
 *
 *   GET /count?n=N&ms=M     N pieces "piece i\n", M ms before each
 *   GET /events?n=N&ms=M    SSE: events id i, data "tick i" (n=0: no end),
 *                           after the client's Last-Event-ID if it sent one
 *   GET /flood?mb=N         N MiB in 64 KiB pieces of byte (i & 0xff); what
 *                           it has written so far and how it ended are in
 *                           /stats (backpressure and send timeout tests)
 *   GET /fail               "partial", then the producer fails: cut body
 *   GET /stats              the counters below as JSON
 *   GET /files/<path>       cf_static over $STATIC_DIR (tests/integration/test_files.py)
 *   GET /ws                 WebSocket echo: each message back as it came
 *                           ("close" closes with 4000 "bye", "fail" fails
 *                           the session, "hold" stops reading for 2 s);
 *                           /stats has ws_sessions, ws_last_result and
 *                           ws_last_close (tests/integration/test_websocket.py)
 *
 * Counters are plain globals: the tests run it with one worker.
 */
#include <carafe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
    long events_done, events_cancelled, count_done;
    long long flood_written;
    long flood_result, flood_running;
    long ws_sessions, ws_last_result, ws_last_close;
} stats;

static long arg_long(cf_req *rq, const char *name, long dflt)
{
    const char *v = cf_arg(rq, name);
    return v ? strtol(v, NULL, 10) : dflt;
}

typedef struct {
    long n, ms, first;
} counting;

static counting *counting_args(cf_req *rq, long n_default)
{
    counting *c = cf_alloc(rq, sizeof *c);
    c->n = arg_long(rq, "n", n_default);
    c->ms = arg_long(rq, "ms", 0);
    c->first = 1;
    return c;
}

static int count_pieces(cf_req *rq, void *arg)
{
    counting *c = arg;
    for (long i = 1; i <= c->n; i++) {
        if (c->ms && cf_sleep(rq, (uint64_t)c->ms) != 0)
            return CF_ECANCELED;
        int rc = cf_writef(rq, "piece %ld\n", i);
        if (rc != 0)
            return rc;
    }
    stats.count_done++;
    return 0;
}

static void count(cf_req *rq) { cf_stream(rq, 200, "text/plain", count_pieces, counting_args(rq, 3)); }

static int tick(cf_req *rq, void *arg)
{
    counting *c = arg;
    int rc = 0;
    for (long i = c->first; c->n == 0 || i < c->first + c->n; i++) {
        char id[24], data[32];
        snprintf(id, sizeof id, "%ld", i);
        snprintf(data, sizeof data, "tick %ld", i);
        if ((rc = cf_sse_send(rq, NULL, id, data)) != 0)
            break;
        if (c->ms && (rc = cf_sleep(rq, (uint64_t)c->ms)) != 0)
            break;
    }
    if (rc == CF_ECANCELED)
        stats.events_cancelled++;
    else
        stats.events_done++;
    return rc;
}

static void events(cf_req *rq)
{
    counting *c = counting_args(rq, 3);
    const char *last = cf_header(rq, "Last-Event-ID");
    if (last)
        c->first = strtol(last, NULL, 10) + 1;
    cf_sse(rq, tick, c);
}

static int flood_pieces(cf_req *rq, void *arg)
{
    long mb = *(long *)arg;
    static char piece[64 * 1024];
    for (size_t i = 0; i < sizeof piece; i++)
        piece[i] = (char)(i & 0xff);
    stats.flood_written = 0;
    stats.flood_running = 1;
    int rc = 0;
    for (long i = 0; i < mb * 16 && rc == 0; i++) {
        rc = cf_write(rq, piece, sizeof piece);
        if (rc == 0)
            stats.flood_written += (long long)sizeof piece;
    }
    stats.flood_result = rc;
    stats.flood_running = 0;
    return rc;
}

static void flood(cf_req *rq)
{
    long *mb = cf_alloc(rq, sizeof *mb);
    *mb = arg_long(rq, "mb", 1);
    cf_stream(rq, 200, "application/octet-stream", flood_pieces, mb);
}

static int fail_midway(cf_req *rq, void *arg)
{
    (void)arg;
    cf_write(rq, "partial", 7);
    return CF_EFAIL;
}

static void fail(cf_req *rq) { cf_stream(rq, 200, "text/plain", fail_midway, NULL); }

static void stats_view(cf_req *rq)
{
    cf_json(rq, 200, "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "ws_sessions",
            (json_int_t)stats.ws_sessions, "ws_last_result", (json_int_t)stats.ws_last_result,
            "ws_last_close", (json_int_t)stats.ws_last_close, "events_done", (json_int_t)stats.events_done,
            "events_cancelled", (json_int_t)stats.events_cancelled, "count_done",
            (json_int_t)stats.count_done, "flood_written", (json_int_t)stats.flood_written,
            "flood_result", (json_int_t)stats.flood_result, "flood_running",
            (json_int_t)stats.flood_running);
}

static int echo_session(cf_req *rq, void *arg)
{
    (void)arg;
    stats.ws_sessions++;
    cf_ws_message m;
    int rc;
    while ((rc = cf_ws_recv(rq, &m, -1)) == 0) {
        if (!m.binary && strcmp(m.data, "close") == 0) {
            cf_ws_close(rq, 4000, "bye");
            continue; /* cf_ws_recv returns CF_ECLOSED once the client answered */
        }
        if (!m.binary && strcmp(m.data, "fail") == 0) {
            rc = CF_EFAIL;
            break;
        }
        if (!m.binary && strcmp(m.data, "hold") == 0) {
            cf_sleep(rq, 2000);
            continue;
        }
        if ((rc = cf_ws_send(rq, m.data, m.len, m.binary)) != 0)
            break;
    }
    stats.ws_last_result = rc;
    stats.ws_last_close = cf_ws_close_code(rq);
    return rc == CF_ECLOSED ? 0 : rc;
}

static void ws(cf_req *rq) { cf_websocket(rq, echo_session, NULL); }

static void hello(cf_req *rq) { cf_text(rq, 200, "Hello, World!"); }

int main(int argc, char **argv)
{
    cf_app *app = cf_app_new();
    cf_route(app, "GET", "/count", count);
    cf_route(app, "GET", "/events", events);
    cf_route(app, "GET", "/flood", flood);
    cf_route(app, "GET", "/fail", fail);
    cf_route(app, "GET", "/stats", stats_view);
    cf_route(app, "GET", "/hello", hello);
    cf_route_set_max_body(cf_route(app, "GET", "/ws", ws), 1024 * 1024);
    const char *static_dir = getenv("STATIC_DIR");
    cf_static(app, "/files", static_dir ? static_dir : ".");
    int rc = cf_run(app, argc, argv);
    cf_app_free(app);
    return rc;
}
