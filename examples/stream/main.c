/*
 * examples/stream — responses that go out while they are produced: a live
 * clock over Server-Sent Events, a progress log, and a CSV export written
 * row by row. Each producer suspends between pieces (a sleep here; a
 * database row or an outgoing call in a real app) and the worker serves
 * everybody else meanwhile.
 *
 *   GET /                    a page that shows the clock (EventSource)
 *   GET /clock               SSE: the time every second, resumable with
 *                            Last-Event-ID (the browser sends it itself)
 *   GET /progress?steps=5    a plain-text log, one line every 300 ms
 *                            (curl -N shows the lines as they come)
 *   GET /export.csv?rows=N   N rows of CSV, never held whole in memory
 *   GET /shout               a WebSocket: each text message comes back in
 *                            capitals, with the session's message count
 */
#define _POSIX_C_SOURCE 200809L /* gmtime_r: POSIX, beyond ISO C */
#include <carafe.h>
#include <stdio.h>
#include <ctype.h>
#include <stdlib.h>
#include <time.h>

static long arg_long(cf_req *rq, const char *name, long dflt, long max)
{
    const char *v = cf_arg(rq, name);
    long n = v ? strtol(v, NULL, 10) : dflt;
    return n < 0 ? 0 : n > max ? max : n;
}

static void index_page(cf_req *rq)
{
    cf_html(rq, 200,
            "<!doctype html><title>Carafe clock</title>\n"
            "<p>Server time: <b id=t>...</b> (event <span id=n>-</span>)</p>\n"
            "<script>\n"
            "const es = new EventSource('/clock');\n"
            "es.addEventListener('tick', e => {\n"
            "  document.getElementById('t').textContent = e.data;\n"
            "  document.getElementById('n').textContent = e.lastEventId;\n"
            "});\n"
            "</script>\n");
}

/* The producer of /clock: runs until the client leaves (cf_sleep and
 * cf_sse_send then return CF_ECANCELED) or the server stops. */
static int clock_events(cf_req *rq, void *arg)
{
    long n = *(long *)arg;
    for (;; n++) {
        char id[24], now[64];
        time_t t = time(NULL);
        struct tm tm;
        strftime(now, sizeof now, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&t, &tm));
        snprintf(id, sizeof id, "%ld", n);
        int rc = cf_sse_send(rq, "tick", id, now);
        if (rc == 0)
            rc = cf_sleep(rq, 1000);
        if (rc != 0)
            return rc == CF_ECANCELED ? 0 : rc; /* a client leaving is no failure */
    }
}

static void clock_stream(cf_req *rq)
{
    long *next = cf_alloc(rq, sizeof *next);
    const char *last = cf_header(rq, "Last-Event-ID");
    *next = last ? strtol(last, NULL, 10) + 1 : 1;
    cf_sse(rq, clock_events, next);
}

static int progress_lines(cf_req *rq, void *arg)
{
    long steps = *(long *)arg;
    for (long i = 1; i <= steps; i++) {
        if (cf_sleep(rq, 300) != 0)
            return CF_ECANCELED;
        int rc = cf_writef(rq, "step %ld/%ld done\n", i, steps);
        if (rc != 0)
            return rc;
    }
    return cf_writef(rq, "finished\n");
}

static void progress(cf_req *rq)
{
    long *steps = cf_alloc(rq, sizeof *steps);
    *steps = arg_long(rq, "steps", 5, 100);
    cf_stream(rq, 200, "text/plain; charset=utf-8", progress_lines, steps);
}

/* Rows are written as they are made, a few hundred per piece (each
 * cf_write is sent at once, so one per row would cost a system call per
 * row). cf_write suspends while the client is behind: a slow download
 * holds a few pieces in memory, not the whole file. */
static int csv_rows(cf_req *rq, void *arg)
{
    long rows = *(long *)arg;
    char piece[16 * 1024];
    size_t len = (size_t)snprintf(piece, sizeof piece, "id,square,label\n");
    for (long i = 1; i <= rows; i++) {
        len += (size_t)snprintf(piece + len, sizeof piece - len, "%ld,%ld,row-%ld\n", i, i * i, i);
        if (len > sizeof piece - 128 || i == rows) {
            int rc = cf_write(rq, piece, len);
            if (rc != 0)
                return rc;
            len = 0;
        }
    }
    return len ? cf_write(rq, piece, len) : 0;
}

static void export_csv(cf_req *rq)
{
    long *rows = cf_alloc(rq, sizeof *rows);
    *rows = arg_long(rq, "rows", 1000, 10 * 1000 * 1000);
    cf_set_header(rq, "Content-Disposition", "attachment; filename=\"export.csv\"");
    cf_stream(rq, 200, "text/csv; charset=utf-8", csv_rows, rows);
}

/* A WebSocket session: receive, answer, until the client closes. */
static int shout_session(cf_req *rq, void *arg)
{
    (void)arg;
    cf_ws_message m;
    int rc, n = 0;
    while ((rc = cf_ws_recv(rq, &m, -1)) == 0) {
        if (m.binary)
            continue;
        /* on the stack: request memory would grow with every message of
         * a long session */
        char up[1100];
        snprintf(up, sizeof up, "%d: %.1000s", ++n, m.data);
        for (char *p = up; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        if ((rc = cf_ws_send_text(rq, up)) != 0)
            break;
    }
    return rc == CF_ECLOSED ? 0 : rc; /* the client closing is the normal end */
}

static void shout(cf_req *rq) { cf_websocket(rq, shout_session, NULL); }

int main(int argc, char **argv)
{
    cf_app *app = cf_app_new();
    cf_route(app, "GET", "/", index_page);
    cf_route(app, "GET", "/clock", clock_stream);
    cf_route(app, "GET", "/progress", progress);
    cf_route(app, "GET", "/export.csv", export_csv);
    cf_route(app, "GET", "/shout", shout);
    int rc = cf_run(app, argc, argv);
    cf_app_free(app);
    return rc;
}
