/*
 * test_multipart.c — multipart/form-data: the push parser alone (a table of
 * well-formed and malformed bodies, each fed whole and a byte at a time,
 * which must give the same parts and data), and through the test client:
 * fields in cf_form, files in memory and spooled past the threshold, the
 * limits (413) and malformed bodies (400) as statuses, temporary files
 * gone after the request, cf_file_save, and the streaming part reader.
 */
#include <carafe.h>

#include "app/multipart.h"
#include "check.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the parser ---------------------------------------------------------------- */

/* What the parser made of a body: "name|filename|type=data;" per part,
 * "!reason" on an error. */
static void parse(const char *boundary, const char *body, size_t len, size_t piece, char *out,
                  size_t cap)
{
    cf_mp m;
    cf_mp_init(&m, boundary, 256);
    size_t o = 0, fed = 0;
    char held[8192];
    size_t hlen = 0; /* given but unused bytes, given again with more */
    out[0] = 0;
    for (;;) {
        size_t add = len - fed < piece ? len - fed : piece;
        memcpy(held + hlen, body + fed, add);
        hlen += add;
        fed += add;
        bool end = fed == len;
        size_t used = 0;
        const char *why = NULL;
        int ev;
        size_t at = 0;
        do {
            ev = cf_mp_step(&m, held + at, hlen - at, end, &used, &why);
            at += used;
            if (ev < 0) {
                o += (size_t)snprintf(out + o, cap - o, "!%s", why);
                cf_mp_free(&m);
                return;
            }
            if (ev == CF_MP_PART)
                o += (size_t)snprintf(out + o, cap - o, "%s|%s|%s=", m.name,
                                      m.filename ? m.filename : "-",
                                      m.content_type ? m.content_type : "-");
            else if (ev == CF_MP_DATA)
                o += (size_t)snprintf(out + o, cap - o, "%.*s", (int)m.len, m.data);
            else if (ev == CF_MP_PART_END)
                o += (size_t)snprintf(out + o, cap - o, ";");
            else if (ev == CF_MP_END) {
                o += (size_t)snprintf(out + o, cap - o, ".");
                cf_mp_free(&m);
                return;
            }
        } while (ev != CF_MP_MORE);
        memmove(held, held + at, hlen - at);
        hlen -= at;
    }
}

static const struct {
    const char *what, *body, *want;
} cases[] = {
    {"two fields", "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nhello\r\n"
                   "--XyZ\r\nContent-Disposition: form-data; name=b\r\n\r\n\r\n--XyZ--\r\n",
     "a|-|-=hello;b|-|-=;."},
    {"a file with a type", "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a b.txt\"\r\n"
                           "Content-Type: text/plain\r\n\r\nline1\r\nline2\r\n--XyZ--",
     "f|a b.txt|text/plain=line1\r\nline2;."},
    {"preamble and epilogue", "junk\r\n--XyZ\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--XyZ--\r\nafter",
     "x|-|-=1;."},
    {"boundary-like data", "--XyZ\r\nContent-Disposition: form-data; name=x\r\n\r\n--XyZ \r\n-XyZ\r\r\n--Xy\r\n--XyZ--",
     "x|-|-=--XyZ \r\n-XyZ\r\r\n--Xy;."},
    {"quoted escapes and case", "--XyZ\r\ncontent-disposition: FORM-DATA; NAME=\"q\\\"x\"; FileName=\"c:\\\\x\"\r\n\r\nv\r\n--XyZ--",
     "q\"x|c:\\x|-=v;."},
    {"filename*", "--XyZ\r\nContent-Disposition: form-data; name=f; filename=\"fallback\"; "
                  "filename*=UTF-8''%E2%82%AC%20rates.txt\r\n\r\nv\r\n--XyZ--",
     "f|\xE2\x82\xAC rates.txt|-=v;."},
    {"padding after a delimiter", "--XyZ  \t\r\nContent-Disposition: form-data; name=x\r\n\r\nv\r\n--XyZ--",
     "x|-|-=v;."},
    {"no parts at all", "--XyZ--\r\n", "."},
    {"no boundary", "hello world", "!no multipart boundary in the body"},
    {"truncated in data", "--XyZ\r\nContent-Disposition: form-data; name=x\r\n\r\nabc",
     "x|-|-=abc!the body ended before the closing multipart boundary"},
    {"truncated in the head", "--XyZ\r\nContent-Disposition: form-da",
     "!the body ended before the closing multipart boundary"},
    {"no closing delimiter", "--XyZ\r\nContent-Disposition: form-data; name=x\r\n\r\nv\r\n--XyZ",
     "x|-|-=v;!the body ended before the closing multipart boundary"},
    {"a part without a name", "--XyZ\r\nContent-Disposition: form-data; filename=a\r\n\r\nv\r\n--XyZ--",
     "!a part without a name"},
    {"no headers", "--XyZ\r\n\r\nv\r\n--XyZ--", "!a part without a name"},
    {"not form-data", "--XyZ\r\nContent-Disposition: attachment; name=x\r\n\r\nv\r\n--XyZ--",
     "!a part's Content-Disposition is not form-data"},
    {"unclosed quote", "--XyZ\r\nContent-Disposition: form-data; name=\"x\r\n\r\nv\r\n--XyZ--",
     "!a malformed parameter in a part's Content-Disposition"},
    {"folded header", "--XyZ\r\nContent-Disposition: form-data;\r\n name=x\r\n\r\nv\r\n--XyZ--",
     "!a folded header line in a part"},
    {"header without colon", "--XyZ\r\nContent-Disposition form-data\r\n\r\nv\r\n--XyZ--",
     "!a malformed header line in a part"},
    {"garbage after a delimiter", "--XyZ\r\nContent-Disposition: form-data; name=x\r\n\r\nv\r\n--XyZabc\r\n",
     "x|-|-=v;!a malformed multipart delimiter line"},
    {"a header block over the limit", NULL, "!a part's header block is larger than the limit"},
};

static void test_parser_table(void)
{
    char big[2048];
    snprintf(big, sizeof big, "--XyZ\r\nContent-Disposition: form-data; name=x\r\nX-Pad: %0300d\r\n\r\nv\r\n--XyZ--", 0);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *body = cases[i].body ? cases[i].body : big;
        char whole[4096], bytewise[4096];
        parse("XyZ", body, strlen(body), strlen(body), whole, sizeof whole);
        parse("XyZ", body, strlen(body), 1, bytewise, sizeof bytewise);
        if (strcmp(whole, cases[i].want) != 0)
            fprintf(stderr, "case \"%s\": got \"%s\"\n", cases[i].what, whole);
        CHECK_STR(whole, cases[i].want);
        if (strcmp(bytewise, whole) != 0)
            fprintf(stderr, "case \"%s\" a byte at a time: \"%s\"\n", cases[i].what, bytewise);
        CHECK_STR(bytewise, whole);
    }
}

static void test_boundary(void)
{
    char b[CF_MP_MAX_BOUNDARY + 1];
    const char *why = NULL;
    CHECK_INT(cf_mp_boundary("multipart/form-data; boundary=abc", b, &why), 3);
    CHECK_STR(b, "abc");
    CHECK_INT(cf_mp_boundary("Multipart/Form-Data;charset=utf-8;BOUNDARY=\"a b;c\"", b, &why), 5);
    CHECK_STR(b, "a b;c");
    CHECK_INT(cf_mp_boundary("application/json", b, &why), 0);
    CHECK_INT(cf_mp_boundary(NULL, b, &why), 0);
    CHECK_INT(cf_mp_boundary("multipart/form-data", b, &why), -1);
    CHECK_STR(why, "multipart/form-data without a boundary");
    CHECK_INT(cf_mp_boundary("multipart/form-data; boundary=", b, &why), -1);
    CHECK_INT(cf_mp_boundary("multipart/form-data; boundary=\"ends \"", b, &why), -1);
    CHECK_STR(why, "a malformed multipart boundary");
    char longb[300];
    snprintf(longb, sizeof longb, "multipart/form-data; boundary=%0201d", 7);
    CHECK_INT(cf_mp_boundary(longb, b, &why), -1);
}

/* ---- through the app --------------------------------------------------------------- */

static char spool_dir[] = "/tmp/cf-test-multipart-XXXXXX";

static size_t files_in_spool(void)
{
    DIR *d = opendir(spool_dir);
    size_t n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static size_t spooled_during; /* temporary files seen by the handler */

/* Every field and file: "field=value;" and "file:field:name:type:size:where;". */
static void h_echo(cf_req *rq)
{
    if (cf_form_parse(rq) != 0)
        return; /* aborted with 400/413 by the parse */
    char *out = cf_strdup(rq, "");
    const char *name, *value;
    for (size_t i = 0; cf_form_at(rq, i, &name, &value); i++)
        out = cf_sprintf(rq, "%s%s=%s;", out, name, value);
    size_t n;
    const cf_file *const *files = cf_files(rq, NULL, &n);
    for (size_t i = 0; i < n; i++) {
        const cf_file *f = files[i];
        out = cf_sprintf(rq, "%sfile:%s:%s:%s:%llu:%s;", out, f->field, f->filename, f->content_type,
                         (unsigned long long)f->size, f->data ? "memory" : f->path ? "disk" : "?");
    }
    spooled_during = files_in_spool();
    cf_text(rq, 200, out);
}

static char saved_path[256];

static void h_save(cf_req *rq)
{
    const cf_file *f = cf_file_get(rq, "f");
    if (!f) {
        cf_text(rq, 400, "no file");
        return;
    }
    snprintf(saved_path, sizeof saved_path, "%s-saved-%s", spool_dir, cf_secure_filename(rq, f->filename));
    if (cf_file_save(rq, f, saved_path) != 0) {
        cf_textf(rq, 500, "%s", cf_errmsg(rq));
        return;
    }
    cf_text(rq, 200, saved_path);
}

/* The streaming reader: "name:bytes:sum;" per part. */
static void h_stream(cf_req *rq)
{
    char *out = cf_strdup(rq, "");
    cf_part p;
    int rc;
    while ((rc = cf_part_next(rq, &p)) > 0) {
        char buf[1000];
        unsigned long total = 0, sum = 0;
        long n;
        while ((n = cf_part_read(rq, buf, sizeof buf)) > 0) {
            total += (unsigned long)n;
            for (long i = 0; i < n; i++)
                sum += (unsigned char)buf[i];
        }
        if (n < 0) {
            rc = (int)n;
            break;
        }
        out = cf_sprintf(rq, "%s%s:%lu:%lu;", out, p.name, total, sum);
    }
    if (rc < 0) {
        cf_textf(rq, rc == CF_ETOOBIG ? 413 : 400, "%s", cf_errmsg(rq));
        return;
    }
    cf_text(rq, 200, out);
}

static const char *body_of(cf_test_response *r) { return cf_test_body(r, NULL); }

static cf_test_response *post_raw(cf_test_client *tc, const char *target, const char *body)
{
    static const char *const h[] = {"Content-Type: multipart/form-data; boundary=B", NULL};
    return cf_test_request(tc, "POST", target, h, body, strlen(body));
}

static void test_app(void)
{
    CHECK(mkdtemp(spool_dir) != NULL);
    cf_app *app = cf_app_new();
    cf_app_set(app, CF_OPT_ACCESS_LOG, 0);
    cf_app_set(app, CF_OPT_UPLOAD_MEMORY, 1000);
    cf_app_set_upload_dir(app, spool_dir);
    cf_route *echo = cf_route(app, "POST", "/echo", h_echo);
    cf_route_set_max_body(echo, 10 * 1000 * 1000);
    cf_route *limited = cf_route(app, "POST", "/limited", h_echo);
    CHECK_INT(cf_route_set(limited, CF_OPT_MAX_PARTS, 2), 0);
    CHECK_INT(cf_route_set(limited, CF_OPT_MAX_FILE_SIZE, 500), 0);
    CHECK_INT(cf_route_set(limited, CF_OPT_MAX_FIELD_SIZE, 10), 0);
    CHECK_INT(cf_route_set(limited, CF_OPT_STACK_SIZE, 10), CF_EINVAL);
    CHECK_INT(cf_route_get(limited, CF_OPT_MAX_PARTS), 2);
    CHECK_INT(cf_route_get(echo, CF_OPT_MAX_PARTS), -1);
    cf_route(app, "POST", "/save", h_save);
    cf_route_set_max_body(cf_route(app, "POST", "/stream", h_stream), 10 * 1000 * 1000);
    cf_test_client *tc = cf_test_client_new(app);

    static char big[300 * 1000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 7 + 3);
    cf_test_part parts[] = {
        {"title", NULL, NULL, "Hello", 5},
        {"f", "small.txt", "text/plain", "tiny", 4},
        {"f", "big.bin", NULL, big, sizeof big},
        {"tag", NULL, NULL, "x", 1},
    };
    cf_test_response *r = cf_test_post_multipart(tc, "/echo", parts, 4);
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(body_of(r), "title=Hello;tag=x;file:f:small.txt:text/plain:4:memory;"
                          "file:f:big.bin:application/octet-stream:300000:disk;");
    CHECK_INT(spooled_during, 1);
    CHECK_INT(files_in_spool(), 0); /* gone with the request */

    /* Limits, each a 413 with its reason; nothing left behind. */
    r = cf_test_post_multipart(tc, "/limited", parts, 3);
    CHECK_INT(cf_test_status(r), 413);
    CHECK(strstr(body_of(r), "more parts than the limit") != NULL);
    cf_test_part one_big[] = {{"f", "x.bin", NULL, big, 501}};
    r = cf_test_post_multipart(tc, "/limited", one_big, 1);
    CHECK_INT(cf_test_status(r), 413);
    CHECK(strstr(body_of(r), "a file is larger than the limit") != NULL);
    cf_test_part long_field[] = {{"t", NULL, NULL, "12345678901", 11}};
    r = cf_test_post_multipart(tc, "/limited", long_field, 1);
    CHECK_INT(cf_test_status(r), 413);
    CHECK(strstr(body_of(r), "a form field is larger than the limit") != NULL);
    CHECK_INT(files_in_spool(), 0);

    /* Malformed bodies: 400 with the reason. */
    r = post_raw(tc, "/echo", "--B\r\nContent-Disposition: form-data; filename=a\r\n\r\nv\r\n--B--");
    CHECK_INT(cf_test_status(r), 400);
    CHECK(strstr(body_of(r), "a part without a name") != NULL);
    r = post_raw(tc, "/echo", "--B\r\nContent-Disposition: form-data; name=a\r\n\r\nv");
    CHECK_INT(cf_test_status(r), 400);
    CHECK(strstr(body_of(r), "ended before the closing") != NULL);
    static const char *const no_boundary[] = {"Content-Type: multipart/form-data", NULL};
    r = cf_test_request(tc, "POST", "/echo", no_boundary, "x", 1);
    CHECK_INT(cf_test_status(r), 400);
    CHECK(strstr(body_of(r), "without a boundary") != NULL);

    /* Saving moves the spooled file; the clean-up leaves it there. */
    cf_test_part to_save[] = {{"f", "../../etc/pass wd", NULL, big, sizeof big}};
    r = cf_test_post_multipart(tc, "/save", to_save, 1);
    CHECK_INT(cf_test_status(r), 200);
    struct stat st;
    CHECK(stat(saved_path, &st) == 0 && st.st_size == (off_t)sizeof big);
    CHECK(strstr(saved_path, "-saved-etc_pass_wd") != NULL);
    unlink(saved_path);
    cf_test_part small_save[] = {{"f", "s.txt", NULL, "abc", 3}};
    r = cf_test_post_multipart(tc, "/save", small_save, 1); /* in memory: written out */
    CHECK_INT(cf_test_status(r), 200);
    CHECK(stat(saved_path, &st) == 0 && st.st_size == 3);
    unlink(saved_path);
    CHECK_INT(files_in_spool(), 0);

    /* The streaming reader sees every byte, piece by piece. */
    unsigned long sum = 0;
    for (size_t i = 0; i < sizeof big; i++)
        sum += (unsigned char)big[i];
    r = cf_test_post_multipart(tc, "/stream", parts + 2, 2);
    char want[128];
    snprintf(want, sizeof want, "f:300000:%lu;tag:1:%lu;", sum, (unsigned long)'x');
    CHECK_STR(body_of(r), want);
    r = post_raw(tc, "/stream", "--B\r\nContent-Disposition: form-data; name=a\r\n\r\nv");
    CHECK_INT(cf_test_status(r), 400);

    cf_test_client_free(tc);
    cf_app_free(app);
    rmdir(spool_dir);
}

int main(void)
{
    test_parser_table();
    test_boundary();
    test_app();
    return CHECK_DONE();
}
