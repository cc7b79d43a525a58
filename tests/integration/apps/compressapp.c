/*
 * compressapp — the app tests/integration/test_compress.py starts:
 * responses of each kind for response compression (src/app/compress.c).
 *
 *   GET /json?n=N           a JSON array of N objects (cf_json_value)
 *   GET /html               an HTML page of about 6 KiB
 *   GET /small              60 bytes of text: under the minimum size
 *   GET /png                4 KiB of image/png: not a compressible type
 *   GET /lines?n=N&ms=M     a stream of N lines, M ms apart
 *   GET /events?n=N&ms=M    SSE: N events, M ms apart
 *   GET /fail               a stream whose producer fails after a line
 *   GET /notransform        text with Cache-Control: no-transform
 *   GET /encoded            text the handler says is encoded already
 *   GET /etag               text with ETag "v1"
 *   GET /static/<path>      cf_static over $STATIC_DIR
 *   GET /plain/json         compression off for the group /plain...
 *   GET /plain/on           ...on again for this route
 */
#include <carafe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long arg_long(cf_req *rq, const char *name, long dflt)
{
    const char *v = cf_arg(rq, name);
    return v ? strtol(v, NULL, 10) : dflt;
}

static void json_list(cf_req *rq)
{
    long n = arg_long(rq, "n", 100);
    json_t *list = json_array();
    for (long i = 0; i < n; i++)
        json_array_append_new(list, json_pack("{s:I,s:s,s:b}", "id", (json_int_t)i, "name",
                                              i % 2 ? "odd item" : "even item", "done", i % 3 == 0));
    cf_json_value(rq, 200, list);
}

static void html(cf_req *rq)
{
    char *page = cf_alloc(rq, 8192);
    size_t n = (size_t)snprintf(page, 8192, "<!doctype html><title>list</title><ul>");
    for (int i = 0; i < 150 && n < 8000; i++)
        n += (size_t)snprintf(page + n, 8192 - n, "<li>item %d</li>", i);
    snprintf(page + n, 8192 - n, "</ul>");
    cf_html(rq, 200, page);
}

static void small(cf_req *rq) { cf_text(rq, 200, "a short answer, well under the minimum size to compress\n"); }

static void png(cf_req *rq)
{
    char body[4096];
    memset(body, 'A', sizeof body);
    cf_send(rq, 200, "image/png", body, sizeof body);
}

typedef struct {
    long n, ms;
} counting;

static counting *counting_args(cf_req *rq)
{
    counting *c = cf_alloc(rq, sizeof *c);
    c->n = arg_long(rq, "n", 3);
    c->ms = arg_long(rq, "ms", 0);
    return c;
}

static int write_lines(cf_req *rq, void *arg)
{
    counting *c = arg;
    for (long i = 0; i < c->n; i++) {
        if (i && c->ms && cf_sleep(rq, (uint64_t)c->ms) != 0)
            return CF_ECANCELED;
        int rc = cf_writef(rq, "line %ld of a streamed body that compresses well\n", i);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void lines(cf_req *rq) { cf_stream(rq, 200, "text/plain", write_lines, counting_args(rq)); }

static int send_events(cf_req *rq, void *arg)
{
    counting *c = arg;
    for (long i = 0; i < c->n; i++) {
        if (i && c->ms && cf_sleep(rq, (uint64_t)c->ms) != 0)
            return CF_ECANCELED;
        char data[32];
        snprintf(data, sizeof data, "event %ld", i);
        int rc = cf_sse_send(rq, "tick", NULL, data);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void events(cf_req *rq) { cf_sse(rq, send_events, counting_args(rq)); }

static int fail_midway(cf_req *rq, void *arg)
{
    (void)arg;
    cf_writef(rq, "a first line, and then the producer fails\n");
    return CF_EFAIL;
}

static void fail(cf_req *rq) { cf_stream(rq, 200, "text/plain", fail_midway, NULL); }

static const char *long_text(cf_req *rq)
{
    char *t = cf_alloc(rq, 4096);
    size_t n = 0;
    while (n < 4000)
        n += (size_t)snprintf(t + n, 4096 - n, "the same words again and again ");
    return t;
}

static void notransform(cf_req *rq)
{
    cf_set_header(rq, "Cache-Control", "public, no-transform");
    cf_text(rq, 200, long_text(rq));
}

static void encoded(cf_req *rq)
{
    cf_set_header(rq, "Content-Encoding", "x-custom");
    cf_text(rq, 200, long_text(rq));
}

static void etag(cf_req *rq)
{
    cf_set_header(rq, "ETag", "\"v1\"");
    cf_text(rq, 200, long_text(rq));
}

int main(int argc, char **argv)
{
    cf_app *app = cf_app_new();
    cf_route(app, "GET", "/json", json_list);
    cf_route(app, "GET", "/html", html);
    cf_route(app, "GET", "/small", small);
    cf_route(app, "GET", "/png", png);
    cf_route(app, "GET", "/lines", lines);
    cf_route(app, "GET", "/events", events);
    cf_route(app, "GET", "/fail", fail);
    cf_route(app, "GET", "/notransform", notransform);
    cf_route(app, "GET", "/encoded", encoded);
    cf_route(app, "GET", "/etag", etag);
    const char *dir = getenv("STATIC_DIR");
    cf_static(app, "/static", dir ? dir : ".");
    cf_group *plain = cf_group_add(cf_app_group(app), "/plain");
    cf_compress(plain, false);
    cf_route(plain, "GET", "/json", json_list);
    cf_route_set(cf_route(plain, "GET", "/on", json_list), CF_OPT_COMPRESS, 1);
    int rc = cf_run(app, argc, argv);
    cf_app_free(app);
    return rc;
}
