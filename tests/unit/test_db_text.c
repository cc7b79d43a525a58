/*
 * test_db_text.c — TEXT values that are not UTF-8 in cf_rows_json (SQLite
 * stores whatever bytes it is given as TEXT): each must come back as a
 * JSON string equal, byte for byte, to what Python's
 * bytes.decode("utf-8", errors="replace") makes of the same bytes. The
 * cases are a table of the classic invalid sequences (lone continuation
 * bytes, truncated sequences, overlong forms, surrogates, code points past
 * U+10FFFF, bytes F5..FF, C0/C1) and a few thousand random strings drawn
 * from the bytes where decoders differ; python3 computes the expected
 * answers. Valid text comes back unchanged, a NUL inside included; a BLOB
 * of the same bytes is still base64, and cf_row_text still gives the raw
 * bytes.
 */
#include <carafe.h>

#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CASES 4096
#define MAX_LEN 24

typedef struct tcase {
    unsigned char b[MAX_LEN];
    size_t n;
} tcase;

static tcase cases[MAX_CASES];
static size_t ncases;

/* POST /text: the body as a blob, read back as TEXT and as a BLOB. */
static void text_view(cf_req *rq)
{
    size_t n = 0;
    const char *body = cf_body(rq, &n);
    cf_rows *r = cf_db_query(rq, "SELECT CAST($1 AS TEXT) AS t, $1 AS b", cf_v_blob(body, n));
    if (!r) {
        cf_json(rq, 500, "{s:s}", "error", cf_errmsg(rq));
        return;
    }
    size_t tl = 0;
    const char *t = cf_row_blob(r, 0, &tl);
    bool raw = tl == n && memcmp(t, body, n) == 0 && strlen(cf_row_text(r, 0)) == strnlen(body, n);
    json_t *out = cf_rows_json(r);
    json_object_set_new(json_array_get(out, 0), "raw_getter", json_boolean(raw));
    cf_json_value(rq, 200, out);
}

static void add(const char *bytes, size_t n)
{
    if (ncases < MAX_CASES && n <= MAX_LEN) {
        memcpy(cases[ncases].b, bytes, n);
        cases[ncases++].n = n;
    }
}
#define ADD(lit) add(lit, sizeof lit - 1)

static void make_cases(void)
{
    ADD("http://x/\xff\xfe");             /* the report: url=http://x/%ff%fe */
    ADD("plain ascii");
    ADD("Zo\xc3\xab \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89"); /* valid */
    ADD("a\0b");                           /* NUL inside valid text */
    ADD("\x80");                           /* lone continuation bytes */
    ADD("\xbf");
    ADD("a\x80\x80\x80z");
    ADD("\xc3");                           /* truncated sequences */
    ADD("\xe6\x97");
    ADD("\xf0\x9f\x8e");
    ADD("\xf0\x9f\x8e" "a");
    ADD("\xe6\x97" "\xe6\x97\xa5");
    ADD("\xc0\x80");                       /* overlong forms */
    ADD("\xc1\xbf");
    ADD("\xe0\x80\xaf");
    ADD("\xe0\x9f\xbf");
    ADD("\xf0\x80\x80\xaf");
    ADD("\xf0\x8f\xbf\xbf");
    ADD("\xed\xa0\x80");                   /* surrogates */
    ADD("\xed\xbf\xbf");
    ADD("\xed\xa0\x80\xed\xb0\x80");
    ADD("\xed\x9f\xbf");                   /* U+D7FF: valid */
    ADD("\xf4\x90\x80\x80");               /* past U+10FFFF */
    ADD("\xf4\x8f\xbf\xbf");               /* U+10FFFF: valid */
    ADD("\xf5\x80\x80\x80");               /* bytes that never start a sequence */
    ADD("\xf8\x88\x80\x80\x80");
    ADD("\xfc\x84\x80\x80\x80\x80");
    ADD("\xfe\xff");
    ADD("\xf1\x80\x80");                   /* maximal subparts, then a new start */
    ADD("\xf1\x80\x80\xe1\x80\xc2");
    ADD("\x61\xf1\x80\x80\xe1\x80\xc2\x62\x80\x63\x80\xbf\x64");
    ADD("\xef\xbf\xbd");                   /* U+FFFD itself */
    ADD("");
    /* Random strings over the bytes where decoders disagree. */
    static const unsigned char pick[] = {
        0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0,
        0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xf7, 0xf8, 0xfb, 0xfc,
        0xfd, 0xfe, 0xff};
    unsigned seed = 12;
    while (ncases < MAX_CASES) {
        char b[MAX_LEN];
        size_t n = 1 + (seed = seed * 1103515245u + 12345u) % 16;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            b[i] = (char)pick[(seed >> 16) % sizeof pick];
        }
        add(b, n);
    }
}

static void hex(FILE *f, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", p[i]);
    fputc('\n', f);
}

static int unhex(const char *s, unsigned char *out, size_t cap)
{
    size_t n = 0;
    while (s[0] && s[1] && s[0] != '\n' && n < cap) {
        unsigned v;
        if (sscanf(s, "%2x", &v) != 1)
            return -1;
        out[n++] = (unsigned char)v;
        s += 2;
    }
    return (int)n;
}

int main(void)
{
    if (access("/usr/bin/python3", X_OK) != 0) {
        printf("SKIP: no /usr/bin/python3 to compare with\n");
        return 0;
    }
    make_cases();
    char path[] = "/tmp/cf-dbtext-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    for (size_t i = 0; i < ncases; i++)
        hex(f, cases[i].b, cases[i].n);
    fclose(f);
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import sys\n"
             "for l in open(sys.argv[1]):\n"
             " print(bytes.fromhex(l.strip()).decode(\"utf-8\", \"replace\").encode().hex())' %s",
             path);
    FILE *py = popen(cmd, "r");
    CHECK(py != NULL);

    cf_app *app = cf_app_new();
    cf_app_set(app, CF_OPT_ACCESS_LOG, 0);
    CHECK_INT(cf_db_open(app, "sqlite://:memory:"), 0);
    cf_route(app, "POST", "/text", text_view);
    cf_test_client *tc = cf_test_client_new(app);
    static char line[4 * 3 * MAX_LEN + 8];
    size_t mismatches = 0;
    for (size_t i = 0; i < ncases && py; i++) {
        unsigned char want[3 * MAX_LEN];
        CHECK(fgets(line, sizeof line, py) != NULL);
        int wn = unhex(line, want, sizeof want);
        cf_test_response *r = cf_test_request(tc, "POST", "/text", NULL, (const char *)cases[i].b,
                                              cases[i].n);
        size_t blen = 0;
        const char *body = cf_test_body(r, &blen);
        json_t *doc = json_loadb(body, blen, JSON_ALLOW_NUL, NULL); /* "a\u0000b" */
        json_t *row = json_array_get(doc, 0);
        json_t *t = json_object_get(row, "t");
        bool same = json_is_string(t) && (int)json_string_length(t) == wn &&
                    memcmp(json_string_value(t), want, (size_t)wn) == 0;
        if (!same && mismatches++ < 10) {
            fprintf(stderr, "case %zu: bytes ", i);
            hex(stderr, cases[i].b, cases[i].n);
            fprintf(stderr, "  python: %s  carafe: %s\n", line, cf_test_body(r, NULL));
        }
        CHECK(json_is_true(json_object_get(row, "raw_getter")));
        json_decref(doc);
    }
    CHECK_INT(mismatches, 0);
    if (py)
        CHECK_INT(pclose(py), 0);
    unlink(path);

    /* A BLOB keeps its documented form, base64. */
    cf_test_response *r = cf_test_request(tc, "POST", "/text", NULL, "http://x/\xff\xfe", 11);
    CHECK_STR(cf_test_body(r, NULL),
              "[{\"t\":\"http://x/\xef\xbf\xbd\xef\xbf\xbd\",\"b\":\"aHR0cDovL3gv//4=\",\"raw_getter\":true}]");
    cf_test_client_free(tc);
    cf_app_free(app);
    printf("%zu strings compared with python3\n", ncases);
    return CHECK_DONE();
}
