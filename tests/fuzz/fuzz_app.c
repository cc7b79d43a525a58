/*
 * fuzz_app.c — libFuzzer target for everything after the HTTP parser: a
 * request with a fuzzed method, target, headers and body goes through the
 * whole pipeline in-process (the test client: parser, percent-decoding,
 * router with every converter, query, cookie, form and JSON parsing,
 * url_for, hooks, JSON responses, a Server-Sent Event, a static file with
 * conditional and range headers, responses compressed as Accept-Encoding
 * asks) of an app whose handlers read all of it.
 *
 * Besides crashes, sanitizer reports and leaks (libFuzzer checks each
 * input), it aborts when a response is not one a client could use: a
 * status outside 100..599, a body its Content-Length does not describe,
 * or a compressed body that does not decode (whole; the checks on the
 * body then apply to what it decodes to).
 *
 * Input: byte 0 picks the method; then the target up to '\n'; then header
 * lines up to an empty line; the rest is the body.
 * Build: the CF_FUZZ build (tests/CMakeLists.txt) compiles the library's
 * sources into it, instrumented. Seeds: tests/fuzz/corpus_app/
 */
#include <brotli/decode.h>
#include <carafe.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define CHECK(cond)      \
    do {                 \
        if (!(cond))     \
            abort();     \
    } while (0)

#define MAX_HEADERS 32

static cf_app *app;
static cf_test_client *tc;

static void typed(cf_req *rq)
{
    cf_json(rq, 200, "{s:I,s:f,s:s?,s:s?}", "n", (json_int_t)cf_param_int(rq, "n"), "x",
            cf_param_float(rq, "x"), "id", cf_param(rq, "id"), "rest", cf_param(rq, "rest"));
}

static void echo(cf_req *rq)
{
    size_t len;
    const char *body = cf_body(rq, &len);
    json_t *j = cf_get_json(rq);
    const char *url = cf_url_for(rq, "typed_int", "n", cf_arg(rq, "n") ? cf_arg(rq, "n") : "1",
                                 "q", cf_arg(rq, "q"), NULL);
    /* Strings from the network may not be UTF-8: jansson refuses those,
     * and the answer is then a 500 naming the reason, still a response. */
    cf_json(rq, 200, "{s:s?,s:s?,s:s?,s:s?,s:s?,s:s?,s:I,s:O?,s:s?}", "path", cf_path(rq), "arg",
            cf_arg(rq, "q"), "cookie", cf_cookie(rq, "a"), "form", cf_form(rq, "f"), "ctype",
            cf_header(rq, "Content-Type"), "query", cf_query_string(rq), "len", (json_int_t)len,
            "json", j, "url", url);
    (void)body;
}

static void headers(cf_req *rq)
{
    json_t *all = json_array();
    const char *name, *value;
    for (size_t i = 0; cf_header_at(rq, i, &name, &value); i++)
        json_array_append_new(all, json_pack("[s?s?]", name, value));
    cf_json_value(rq, 200, all);
}

static void before(cf_req *rq)
{
    cf_g_set(rq, "seen", (void *)cf_path(rq));
}

/* A Server-Sent Event built from fuzzed arguments: line breaks in the data
 * split it into data: lines; in the event or id they are refused. */
static int one_event(cf_req *rq, void *arg)
{
    (void)arg;
    int rc = cf_sse_send(rq, cf_arg(rq, "e"), cf_arg(rq, "id"), cf_arg(rq, "d"));
    if (rc == CF_EINVAL)
        rc = cf_writef(rq, ": refused %s\n\n", cf_header(rq, "Last-Event-ID") ? "resume" : "new");
    return rc;
}

static void events(cf_req *rq) { cf_sse(rq, one_event, NULL); }

static void not_found(cf_req *rq) { cf_json(rq, 404, "{s:s?}", "missing", cf_path(rq)); }

static char static_dir[64], static_file[96];

static void remove_static(void)
{
    unlink(static_file);
    rmdir(static_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    app = cf_app_new();
    cf_app_set(app, CF_OPT_COMPRESS_MIN_SIZE, 0); /* the small answers here go through it too */
    cf_app_set(app, CF_OPT_ACCESS_LOG, 0);
    cf_route_set_name(cf_route(app, "GET", "/i/<int:n>", typed), "typed_int");
    cf_route(app, "GET", "/f/<float:x>", typed);
    cf_route(app, "GET", "/u/<uuid:id>", typed);
    cf_route(app, "GET", "/p/<path:rest>", typed);
    cf_route(app, "GET,POST,PUT", "/echo/<name>/", echo);
    cf_route(app, "GET,POST,PATCH,DELETE", "/echo", echo);
    cf_route(app, "GET", "/headers", headers);
    cf_route(app, "GET", "/events", events);
    /* A static folder with one file: fuzzed names, Range, If-None-Match,
     * If-Modified-Since and If-Range headers reach the file code. */
    snprintf(static_dir, sizeof static_dir, "/tmp/cf-fuzz-static-%d", (int)getpid());
    snprintf(static_file, sizeof static_file, "%s/a.txt", static_dir);
    mkdir(static_dir, 0700);
    atexit(remove_static);
    FILE *f = fopen(static_file, "w");
    if (f) {
        fputs("0123456789abcdefghijklmnopqrstuvwxyz\n", f);
        fclose(f);
    }
    cf_static(app, "/files", static_dir);
    cf_before_request(app, before);
    cf_errorhandler(app, 404, not_found);
    tc = cf_test_client_new(app);
    return 0;
}

static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS",
                                      "TRACE", "get", "BREW"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const char *method = methods[data[0] % (sizeof methods / sizeof *methods)];
    /* A copy with a NUL after the last byte, so every piece is a string. */
    char *buf = malloc(size);
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = 0;
    char *end = buf + size - 1;

    /* target \n header \n ... \n \n body (NUL bytes end a piece early) */
    char *target = buf;
    char *p = memchr(buf, '\n', (size_t)(end - buf));
    char *hdrs[MAX_HEADERS + 1];
    size_t nh = 0;
    char *body = NULL;
    size_t blen = 0;
    if (p) {
        *p++ = 0;
        while (p < end && *p != '\n' && nh < MAX_HEADERS) {
            char *e = memchr(p, '\n', (size_t)(end - p));
            if (!e)
                break;
            *e = 0;
            hdrs[nh++] = p;
            p = e + 1;
        }
        if (p < end && *p == '\n')
            p++;
        if (p < end) {
            body = p;
            blen = (size_t)(end - p);
        }
    }
    hdrs[nh] = NULL;

    cf_test_response *r = cf_test_request(tc, method, target, (const char *const *)hdrs, body, blen);
    CHECK(r != NULL);
    int status = cf_test_status(r);
    CHECK(status >= 100 && status <= 599);
    size_t len;
    const char *rb = cf_test_body(r, &len);
    const char *cl = cf_test_header(r, "Content-Length");
    if (cl && strcmp(method, "HEAD") != 0)
        CHECK(strtoull(cl, NULL, 10) == len);
    CHECK(len == 0 || rb != NULL);
    const char *coding = cf_test_header(r, "Content-Encoding");
    static char decoded[1 << 20];
    if (coding && strcmp(method, "HEAD") != 0 && len) {
        size_t n = sizeof decoded;
        if (strcmp(coding, "br") == 0) {
            CHECK(BrotliDecoderDecompress(len, (const uint8_t *)rb, &n, (uint8_t *)decoded) ==
                  BROTLI_DECODER_RESULT_SUCCESS);
        } else {
            CHECK(strcmp(coding, "gzip") == 0);
            z_stream z;
            memset(&z, 0, sizeof z);
            CHECK(inflateInit2(&z, 16 + 15) == Z_OK);
            z.next_in = (unsigned char *)rb;
            z.avail_in = (uInt)len;
            z.next_out = (unsigned char *)decoded;
            z.avail_out = sizeof decoded;
            int zrc = inflate(&z, Z_FINISH);
            n = z.total_out;
            inflateEnd(&z);
            /* A stream cut on purpose (the producer failed) need not end. */
            CHECK(zrc == Z_STREAM_END || (zrc == Z_BUF_ERROR && cf_test_stream_result(r) != 0));
        }
        rb = decoded;
        len = n;
    }
    /* A streamed event ended well is whole: it ends with a blank line. */
    const char *te = cf_test_header(r, "Transfer-Encoding");
    const char *type = cf_test_header(r, "Content-Type");
    if (te && type && strcmp(type, "text/event-stream") == 0 && strcmp(method, "HEAD") != 0 &&
        status == 200) {
        CHECK(cf_test_stream_result(r) == 0);
        CHECK(len >= 2 && rb[len - 1] == '\n' && rb[len - 2] == '\n');
    }
    free(buf);
    /* Responses are kept by the client until it is freed: start afresh
     * now and then so memory stays flat over a long run. */
    static unsigned runs;
    if (++runs % 256 == 0) {
        cf_test_client_free(tc);
        tc = cf_test_client_new(app);
    }
    return 0;
}
