/*
 * test_files.c — file responses through the in-process test client:
 * cf_send_file (body, Content-Type from the extension, Content-Length,
 * ETag / Last-Modified, 304 for If-None-Match and If-Modified-Since, single
 * ranges 206 and 416, several ranges and a stale If-Range give the whole
 * file, HEAD, a file bigger than one 64 KiB piece, a threaded handler),
 * 404 for missing files and directories without naming the path,
 * cf_send_from_directory refusing names that leave the directory, and
 * cf_static with cf_url_for. Over sockets: tests/integration/test_files.py.
 */
#include <carafe.h>

#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static void write_file(const char *name, const char *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, len, f);
    fclose(f);
}

static void by_name(cf_req *rq)
{
    cf_send_from_directory(rq, dir, cf_arg(rq, "name"));
}

static void typed(cf_req *rq)
{
    cf_send_file(rq, cf_sprintf(rq, "%s/hello.txt", dir), "application/x-custom");
}

static void url(cf_req *rq) { cf_text(rq, 200, cf_url_for(rq, "static", "filename", "a b.txt", NULL)); }

static cf_test_response *get_with(cf_test_client *tc, const char *target, const char *header)
{
    const char *const headers[] = {header, NULL};
    return cf_test_request(tc, "GET", target, header ? headers : NULL, NULL, 0);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/cf-test-files-%d", (int)getpid());
    mkdir(dir, 0755);
    char sub[300];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    mkdir(sub, 0755);
    write_file("hello.txt", "Hello, file!", 12);
    write_file("sub/page.html", "<p>x</p>", 8);
    write_file("a b.txt", "spaced", 6);
    size_t big_len = 200 * 1024 + 123;
    char *big = malloc(big_len);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)(i * 7 + (i >> 12));
    write_file("big.bin", big, big_len);

    cf_app *app = cf_app_new();
    cf_route(app, "GET", "/by-name", by_name);
    cf_route_set_threaded(cf_route(app, "GET", "/threaded", by_name), true);
    cf_route(app, "GET", "/typed", typed);
    cf_route(app, "GET", "/url", url);
    cf_static(app, "/static", dir);
    cf_test_client *tc = cf_test_client_new(app);

    cf_test_response *r = cf_test_get(tc, "/static/hello.txt");
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(cf_test_body(r, NULL), "Hello, file!");
    CHECK_STR(cf_test_header(r, "Content-Type"), "text/plain; charset=utf-8");
    CHECK_STR(cf_test_header(r, "Content-Length"), "12");
    CHECK_STR(cf_test_header(r, "Accept-Ranges"), "bytes");
    CHECK(cf_test_header(r, "Transfer-Encoding") == NULL);
    const char *etag0 = cf_test_header(r, "ETag");
    const char *modified0 = cf_test_header(r, "Last-Modified");
    CHECK(etag0 && etag0[0] == '"');
    CHECK(modified0 && strstr(modified0, " GMT"));
    char etag[64], modified[64], h[128];
    snprintf(etag, sizeof etag, "%s", etag0 ? etag0 : "");
    snprintf(modified, sizeof modified, "%s", modified0 ? modified0 : "");

    r = cf_test_get(tc, "/static/sub/page.html");
    CHECK_STR(cf_test_body(r, NULL), "<p>x</p>");
    CHECK_STR(cf_test_header(r, "Content-Type"), "text/html; charset=utf-8");
    r = cf_test_get(tc, "/typed");
    CHECK_STR(cf_test_header(r, "Content-Type"), "application/x-custom");

    /* conditional requests */
    snprintf(h, sizeof h, "If-None-Match: \"other\", %s", etag);
    r = get_with(tc, "/static/hello.txt", h);
    CHECK_INT(cf_test_status(r), 304);
    CHECK_STR(cf_test_body(r, NULL), "");
    CHECK_STR(cf_test_header(r, "ETag"), etag);
    r = get_with(tc, "/static/hello.txt", "If-None-Match: \"other\"");
    CHECK_INT(cf_test_status(r), 200);
    snprintf(h, sizeof h, "If-Modified-Since: %s", modified);
    CHECK_INT(cf_test_status(get_with(tc, "/static/hello.txt", h)), 304);
    r = get_with(tc, "/static/hello.txt", "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT");
    CHECK_INT(cf_test_status(r), 200);
    r = get_with(tc, "/static/hello.txt", "If-Modified-Since: not a date");
    CHECK_INT(cf_test_status(r), 200);

    /* ranges */
    r = get_with(tc, "/static/hello.txt", "Range: bytes=0-4");
    CHECK_INT(cf_test_status(r), 206);
    CHECK_STR(cf_test_body(r, NULL), "Hello");
    CHECK_STR(cf_test_header(r, "Content-Range"), "bytes 0-4/12");
    CHECK_STR(cf_test_header(r, "Content-Length"), "5");
    r = get_with(tc, "/static/hello.txt", "Range: bytes=-5");
    CHECK_STR(cf_test_body(r, NULL), "file!");
    r = get_with(tc, "/static/hello.txt", "Range: bytes=7-");
    CHECK_STR(cf_test_body(r, NULL), "file!");
    r = get_with(tc, "/static/hello.txt", "Range: bytes=7-1000");
    CHECK_STR(cf_test_header(r, "Content-Range"), "bytes 7-11/12");
    r = get_with(tc, "/static/hello.txt", "Range: bytes=12-");
    CHECK_INT(cf_test_status(r), 416);
    CHECK_STR(cf_test_header(r, "Content-Range"), "bytes */12");
    r = get_with(tc, "/static/hello.txt", "Range: bytes=0-1,3-4");
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(cf_test_body(r, NULL), "Hello, file!");
    r = get_with(tc, "/static/hello.txt", "Range: lines=1-2");
    CHECK_INT(cf_test_status(r), 200);
    const char *const stale[] = {"Range: bytes=0-4", "If-Range: \"stale\"", NULL};
    r = cf_test_request(tc, "GET", "/static/hello.txt", stale, NULL, 0);
    CHECK_INT(cf_test_status(r), 200);

    /* HEAD: the length, no body */
    r = cf_test_request(tc, "HEAD", "/static/big.bin", NULL, NULL, 0);
    CHECK_INT(cf_test_status(r), 200);
    CHECK_INT(atol(cf_test_header(r, "Content-Length")), (long)big_len);
    CHECK_STR(cf_test_body(r, NULL), "");

    /* several pieces */
    size_t len = 0;
    r = cf_test_get(tc, "/static/big.bin");
    const char *b = cf_test_body(r, &len);
    CHECK_INT(len, big_len);
    CHECK(len == big_len && memcmp(b, big, big_len) == 0);
    CHECK_STR(cf_test_header(r, "Content-Type"), "application/octet-stream");
    r = get_with(tc, "/static/big.bin", "Range: bytes=65530-131080");
    b = cf_test_body(r, &len);
    CHECK_INT(len, 131080 - 65530 + 1);
    CHECK(len == 131080 - 65530 + 1 && memcmp(b, big + 65530, len) == 0);

    /* missing, directories, names leaving the directory */
    r = cf_test_get(tc, "/static/nope.txt");
    CHECK_INT(cf_test_status(r), 404);
    CHECK(strstr(cf_test_body(r, NULL), "/tmp") == NULL);
    CHECK_INT(cf_test_status(cf_test_get(tc, "/static/sub")), 404);
    const char *bad[] = {"../hello.txt", "sub/../hello.txt", "/etc/passwd", "sub//page.html",
                         "./hello.txt", "sub/", "", "..", NULL};
    for (int i = 0; bad[i]; i++) {
        char target[128];
        snprintf(target, sizeof target, "/by-name?name=%s", bad[i]);
        r = cf_test_get(tc, target);
        if (cf_test_status(r) != 404)
            fprintf(stderr, "name %s\n", bad[i]);
        CHECK_INT(cf_test_status(r), 404);
    }
    CHECK_STR(cf_test_body(cf_test_get(tc, "/by-name?name=sub/page.html"), NULL), "<p>x</p>");
    CHECK_STR(cf_test_body(cf_test_get(tc, "/threaded?name=hello.txt"), NULL), "Hello, file!");

    r = cf_test_get(tc, "/url");
    CHECK_STR(cf_test_body(r, NULL), "/static/a%20b.txt");
    CHECK_STR(cf_test_body(cf_test_get(tc, "/static/a%20b.txt"), NULL), "spaced");

    cf_test_client_free(tc);
    cf_app_free(app);
    free(big);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return CHECK_DONE();
}
