/*
 * test_parser.c — unit tests for the HTTP/1.1 request-head parser and the
 * chunked decoder (src/http/parser.c).
 *
 * Most cases live in tables: valid heads, malformed heads and the
 * request-smuggling shapes (each must be refused with the right status), and
 * chunked bodies. Around the tables, properties that make the parser safe to
 * re-run on a growing buffer: every strict prefix of a valid head asks for
 * more, a prefix of a bad head is never accepted, errors show up before the
 * head is complete, and a chunked body decodes the same however it is split.
 * The character classes are checked exhaustively, byte by byte.
 */
#include "http/parser.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

#define S(lit) lit, sizeof(lit) - 1 /* a literal with its length; NULs kept */
#define OK 0                        /* want: the whole input is one valid head */

static const cf_http_limits lim_test = {.max_header = 8192, .max_target = 1024, .max_fields = 32};
static cf_hfield fbuf[64];

static int parse(const char *s, size_t n, const cf_http_limits *lim, cf_http_head *h,
                 int *status, const char **reason)
{
    *status = 0;
    *reason = NULL;
    return cf_http_parse_head(s, n, lim, h, fbuf, 64, status, reason);
}

/* ------------------------------------------------------------------ */
/* The head table                                                     */
/* ------------------------------------------------------------------ */

struct head_case {
    const char *name;
    const char *req;
    size_t len;
    int want; /* OK or the error status */
};

static const struct head_case head_cases[] = {
    /* valid */
    {"simple GET", S("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), OK},
    {"HTTP/1.0 without Host", S("GET / HTTP/1.0\r\n\r\n"), OK},
    {"HTTP/1.0 with Host", S("GET / HTTP/1.0\r\nHost: a\r\n\r\n"), OK},
    {"lowercase method is a token", S("get / HTTP/1.1\r\nHost: a\r\n\r\n"), OK},
    {"extension method", S("M-SEARCH!#$%&'*+.^_`|~ / HTTP/1.1\r\nHost: a\r\n\r\n"), OK},
    {"one leading empty line", S("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), OK},
    {"four leading empty lines", S("\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), OK},
    {"absolute-form", S("GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n"), OK},
    {"absolute-form https, any case", S("GET HTTPS://Example.COM:8443 HTTP/1.1\r\nHost: e\r\n\r\n"), OK},
    {"absolute-form query only", S("GET http://e?q=1 HTTP/1.1\r\nHost: e\r\n\r\n"), OK},
    {"absolute-form IPv6", S("GET http://[::1]:80/ HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"), OK},
    {"OPTIONS *", S("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), OK},
    {"target with every allowed byte",
     S("GET /!$&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~\"% HTTP/1.1\r\nHost: a\r\n\r\n"), OK},
    {"TE chunked", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), OK},
    {"TE tab OWS", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n"), OK},
    {"TE any case", S("POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: ChUnKeD \r\n\r\n"), OK},
    {"CL", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"), OK},
    {"CL leading zeros", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 005\r\n\r\n"), OK},
    {"CL repeated, same", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n"), OK},
    {"CL list, same", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 05 ,5\r\n\r\n"), OK},
    {"CL 2^62", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4611686018427387904\r\n\r\n"), OK},
    {"CL zero", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), OK},
    {"empty Host", S("GET / HTTP/1.1\r\nHost:\r\n\r\n"), OK},
    {"Host with port", S("GET / HTTP/1.1\r\nHost: a.b-c_d~e:8080\r\n\r\n"), OK},
    {"Host IPv4", S("GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n"), OK},
    {"Host IPv6", S("GET / HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n"), OK},
    {"Host pct-encoded, sub-delims", S("GET / HTTP/1.1\r\nHost: a%2Db!$&'()*+,;=\r\n\r\n"), OK},
    {"Host empty port", S("GET / HTTP/1.1\r\nHost: a:\r\n\r\n"), OK},
    {"empty field value", S("GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Blank: \t \r\n\r\n"), OK},
    {"obs-text in value", S("GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9 \xff\r\n\r\n"), OK},
    {"inner whitespace in value", S("GET / HTTP/1.1\r\nHost: a\r\nX: a \t b\r\n\r\n"), OK},
    {"unknown Expect is ignored", S("GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n"), OK},
    {"malformed Connection is ignored", S("GET / HTTP/1.1\r\nHost: a\r\nConnection: ,a b,\"x\"\r\n\r\n"), OK},

    /* line endings */
    {"bare LF after version", S("GET / HTTP/1.1\nHost: a\r\n\r\n"), 400},
    {"bare LF after field", S("GET / HTTP/1.1\r\nHost: a\n\r\n"), 400},
    {"bare LF ends head", S("GET / HTTP/1.1\r\nHost: a\r\n\n"), 400},
    {"bare LF leading", S("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"bare LF in name line", S("GET / HTTP/1.1\r\nHost: a\r\nFoo\n\r\n"), 400},
    {"bare CR after version", S("GET / HTTP/1.1\rHost: a\r\n\r\n"), 400},
    {"bare CR in value", S("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"), 400},
    {"bare CR ends head", S("GET / HTTP/1.1\r\nHost: a\r\n\rX"), 400},
    {"bare CR leading", S("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"five leading empty lines", S("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},

    /* request line */
    {"invalid method char", S("G@T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"empty method", S(" / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"double space after method", S("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"double space after target", S("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"tab separator", S("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"space after version", S("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 400},
    {"HTTP/0.9 request line", S("GET /\r\n\r\n"), 400},
    {"relative target", S("GET x HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"other scheme", S("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"scheme without //", S("GET http:a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"authority-form", S("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"asterisk without OPTIONS", S("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"asterisk with more", S("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"empty authority", S("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"userinfo in authority", S("GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"bad port in authority", S("GET http://a:8x/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"fragment in target", S("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"NUL in target", S("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"DEL in target", S("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"obs-text in target", S("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"version lowercase", S("GET / http/1.1\r\nHost: a\r\n\r\n"), 400},
    {"version trailing junk", S("GET / HTTP/1.1x\r\nHost: a\r\n\r\n"), 400},
    {"version two digits", S("GET / HTTP/11\r\nHost: a\r\n\r\n"), 400},
    {"version long minor", S("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 400},
    {"version letters", S("GET / HTTP/a.b\r\nHost: a\r\n\r\n"), 400},
    {"HTTP/2.0", S("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505},
    {"HTTP/1.2", S("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505},
    {"HTTP/0.9", S("GET / HTTP/0.9\r\n\r\n"), 505},
    {"HTTP/3.0 before any field", S("GET / HTTP/3.0\r\n"), 505},

    /* field lines */
    {"non-token name", S("GET / HTTP/1.1\r\nHost: a\r\nFoo[]: x\r\n\r\n"), 400},
    {"space in name", S("GET / HTTP/1.1\r\nHost: a\r\nFoo Bar: x\r\n\r\n"), 400},
    {"space before colon", S("GET / HTTP/1.1\r\nHost: a\r\nFoo : x\r\n\r\n"), 400},
    {"tab before colon", S("GET / HTTP/1.1\r\nHost: a\r\nFoo\t: x\r\n\r\n"), 400},
    {"empty name", S("GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n"), 400},
    {"no colon", S("GET / HTTP/1.1\r\nHost: a\r\nFoo\r\n\r\n"), 400},
    {"obs-fold", S("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"), 400},
    {"obs-fold with tab", S("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n"), 400},
    {"whitespace before first field", S("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), 400},
    {"NUL in value", S("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"), 400},
    {"CTL in value", S("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\r\n\r\n"), 400},
    {"DEL in value", S("GET / HTTP/1.1\r\nHost: a\r\nX: \x7f\r\n\r\n"), 400},
    {"obs-text in name", S("GET / HTTP/1.1\r\nHost: a\r\nX\xe9: a\r\n\r\n"), 400},

    /* Host */
    {"missing Host in 1.1", S("GET / HTTP/1.1\r\nX: a\r\n\r\n"), 400},
    {"missing Host, absolute-form", S("GET http://a/ HTTP/1.1\r\n\r\n"), 400},
    {"two Hosts", S("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400},
    {"two Hosts, one empty", S("GET / HTTP/1.1\r\nHost:\r\nhost: a\r\n\r\n"), 400},
    {"two Hosts in 1.0", S("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), 400},
    {"Host with space", S("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400},
    {"Host with slash", S("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400},
    {"Host with userinfo", S("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), 400},
    {"Host bad port", S("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n"), 400},
    {"Host only port", S("GET / HTTP/1.1\r\nHost: :80\r\n\r\n"), 400},
    {"Host open bracket", S("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), 400},
    {"Host empty brackets", S("GET / HTTP/1.1\r\nHost: []\r\n\r\n"), 400},
    {"Host junk after bracket", S("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n"), 400},
    {"Host bad pct", S("GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n"), 400},
    {"Host short pct", S("GET / HTTP/1.1\r\nHost: a%2\r\n\r\n"), 400},

    /* request smuggling: framing fields */
    {"CL + TE", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400},
    {"TE + CL", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"), 400},
    {"TE chunked, identity", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n"), 400},
    {"TE chunked twice", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), 400},
    {"TE chunked in two fields", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), 400},
    {"TE chunked then gzip field", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"), 400},
    {"TE xchunked", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"), 501},
    {"TE chunkedx", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n"), 501},
    {"TE identity", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"), 501},
    {"TE gzip, chunked", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 501},
    {"TE gzip then chunked field", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"), 501},
    {"TE coding with parameter", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo;a=b, chunked\r\n\r\n"), 501},
    {"TE chunked with parameter", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;a=b\r\n\r\n"), 400},
    {"TE space before colon", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"), 400},
    {"TE obs-fold", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"), 400},
    {"TE obs-fold continuation", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip,\r\n chunked\r\n\r\n"), 400},
    {"TE in HTTP/1.0", S("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400},
    {"TE empty", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n"), 400},
    {"TE empty element", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n"), 400},
    {"TE trailing comma", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n"), 400},
    {"TE two words", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked x\r\n\r\n"), 400},
    {"TE quoted", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n"), 400},
    {"TE with NUL", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\0\r\n\r\n"), 400},
    {"TE with vertical tab", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0b" "chunked\r\n\r\n"), 400},
    {"CL differing", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), 400},
    {"CL list differing", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n"), 400},
    {"CL plus sign", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n"), 400},
    {"CL negative", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"), 400},
    {"CL hex", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n"), 400},
    {"CL space inside", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n"), 400},
    {"CL empty", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"), 400},
    {"CL trailing comma", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n"), 400},
    {"CL decimal point", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5.0\r\n\r\n"), 400},
    {"CL over 2^62", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4611686018427387905\r\n\r\n"), 400},
    {"CL overflow", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n"), 400},
    {"CL space before colon", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n"), 400},
};

static void test_head_table(void)
{
    for (size_t k = 0; k < sizeof head_cases / sizeof head_cases[0]; k++) {
        const struct head_case *tc = &head_cases[k];
        cf_http_head h;
        int st;
        const char *why;
        int r = parse(tc->req, tc->len, &lim_test, &h, &st, &why);
        if (tc->want == OK) {
            if (r != (int)tc->len)
                fprintf(stderr, "case \"%s\": got %d (%d %s)\n", tc->name, r, st, why ? why : "");
            CHECK_INT(r, tc->len);
        } else {
            if (r != -1 || st != tc->want)
                fprintf(stderr, "case \"%s\": got %d status %d\n", tc->name, r, st);
            CHECK_INT(r, -1);
            CHECK_INT(st, tc->want);
            CHECK(why != NULL && *why);
        }

        /* Re-parsing a growing buffer must never accept early, and a prefix
         * may only fail the way the whole fails. */
        for (size_t n = 0; n < tc->len; n++) {
            int r2 = parse(tc->req, n, &lim_test, &h, &st, &why);
            if (tc->want == OK) {
                if (r2 != 0)
                    fprintf(stderr, "case \"%s\": prefix %zu gave %d\n", tc->name, n, r2);
                CHECK_INT(r2, 0);
            } else {
                CHECK(r2 == 0 || (r2 == -1 && st == tc->want));
            }
        }
    }
}

/* ------------------------------------------------------------------ */
/* Parsed values                                                      */
/* ------------------------------------------------------------------ */

/* A NUL-terminated copy for CHECK_STR, from a small ring of buffers (a
 * CHECK_STR holds at most one at a time). */
static const char *dup(const char *s, size_t n)
{
    static char ring[4][256];
    static int next;
    if (!s || n >= sizeof ring[0])
        return NULL;
    char *d = ring[next++ % 4];
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}
#define STR(h, f) dup((h).f, (h).f##_len)

static void test_head_values(void)
{
    cf_http_head h;
    int st;
    const char *why;

    static const char get[] =
        "GET /plaintext/a%20b?x=1&y HTTP/1.1\r\n"
        "Host: localhost:8080\r\n"
        "User-Agent:   wrk  \t\r\n"
        "Accept: text/plain\r\n"
        "X-Empty:\r\n"
        "\r\n";
    CHECK_INT(parse(get, strlen(get), &lim_test, &h, &st, &why), strlen(get));
    CHECK_STR(STR(h, method), "GET");
    CHECK_STR(STR(h, target), "/plaintext/a%20b?x=1&y");
    CHECK_STR(STR(h, path), "/plaintext/a%20b");
    CHECK_STR(STR(h, query), "x=1&y");
    CHECK_INT(h.minor, 1);
    CHECK_STR(STR(h, host), "localhost:8080");
    CHECK(h.authority == NULL);
    CHECK_INT(h.nfields, 4);
    CHECK(h.fields == fbuf);
    CHECK_STR(dup(h.fields[1].name, h.fields[1].name_len), "User-Agent");
    CHECK_STR(dup(h.fields[1].value, h.fields[1].value_len), "wrk");
    CHECK_INT(h.fields[3].value_len, 0);
    CHECK_INT(h.content_length, -1);
    CHECK(!h.chunked);
    CHECK(h.keep_alive);
    CHECK(!h.expect_continue);
    CHECK(!h.upgrade);

    /* empty query is not an absent one */
    static const char q0[] = "GET /a? HTTP/1.1\r\nHost: a\r\n\r\n";
    CHECK_INT(parse(q0, strlen(q0), &lim_test, &h, &st, &why), strlen(q0));
    CHECK_STR(STR(h, path), "/a");
    CHECK(h.query != NULL && h.query_len == 0);
    static const char nq[] = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
    CHECK_INT(parse(nq, strlen(nq), &lim_test, &h, &st, &why), strlen(nq));
    CHECK(h.query == NULL);

    static const char abs1[] = "GET http://Example.com:80/p/q?z HTTP/1.1\r\nHost: other\r\n\r\n";
    CHECK_INT(parse(abs1, strlen(abs1), &lim_test, &h, &st, &why), strlen(abs1));
    CHECK_STR(STR(h, target), "http://Example.com:80/p/q?z");
    CHECK_STR(STR(h, path), "/p/q");
    CHECK_STR(STR(h, query), "z");
    CHECK_STR(STR(h, authority), "Example.com:80");
    CHECK_STR(STR(h, host), "other");

    static const char abs2[] = "GET https://e HTTP/1.1\r\nHost: e\r\n\r\n";
    CHECK_INT(parse(abs2, strlen(abs2), &lim_test, &h, &st, &why), strlen(abs2));
    CHECK_STR(STR(h, path), "/");
    CHECK(h.query == NULL);
    CHECK_STR(STR(h, authority), "e");

    static const char abs3[] = "GET http://e?k HTTP/1.1\r\nHost: e\r\n\r\n";
    CHECK_INT(parse(abs3, strlen(abs3), &lim_test, &h, &st, &why), strlen(abs3));
    CHECK_STR(STR(h, path), "/");
    CHECK_STR(STR(h, query), "k");

    static const char star[] = "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n";
    CHECK_INT(parse(star, strlen(star), &lim_test, &h, &st, &why), strlen(star));
    CHECK_STR(STR(h, path), "*");
    CHECK_STR(STR(h, target), "*");

    static const char post[] =
        "POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 005\r\nExpect: 100-Continue\r\n\r\nhello";
    int r = parse(post, strlen(post), &lim_test, &h, &st, &why);
    CHECK_INT(r, strlen(post) - 5); /* the body is not the head's */
    CHECK_INT(h.content_length, 5);
    CHECK(h.expect_continue);
    CHECK(!h.chunked);

    static const char big[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4611686018427387904\r\n\r\n";
    CHECK_INT(parse(big, strlen(big), &lim_test, &h, &st, &why), strlen(big));
    CHECK_INT(h.content_length, CF_HTTP_MAX_CONTENT_LENGTH);

    static const char ch[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n";
    CHECK_INT(parse(ch, strlen(ch), &lim_test, &h, &st, &why), strlen(ch));
    CHECK(h.chunked);
    CHECK_INT(h.content_length, -1);

    /* Expect means nothing from a 1.0 client (RFC 9110 §10.1.1) */
    static const char e10[] = "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
    CHECK_INT(parse(e10, strlen(e10), &lim_test, &h, &st, &why), strlen(e10));
    CHECK(!h.expect_continue);
    CHECK_INT(h.minor, 0);
    CHECK(h.host == NULL);

    static const char empty_host[] = "GET / HTTP/1.1\r\nHost: \r\n\r\n";
    CHECK_INT(parse(empty_host, strlen(empty_host), &lim_test, &h, &st, &why), strlen(empty_host));
    CHECK(h.host != NULL && h.host_len == 0);

    static const char lead[] = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    CHECK_INT(parse(lead, strlen(lead), &lim_test, &h, &st, &why), strlen(lead));
    CHECK_STR(STR(h, method), "GET");

    static const char obs[] = "GET / HTTP/1.1\r\nHost: a\r\nX: \xff\xfe \r\n\r\n";
    CHECK_INT(parse(obs, strlen(obs), &lim_test, &h, &st, &why), strlen(obs));
    CHECK_INT(h.fields[1].value_len, 2);
}

struct ka_case {
    const char *req;
    bool keep_alive, upgrade;
};

static void test_keep_alive(void)
{
    static const struct ka_case cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n", false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n", false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", true, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", true, true},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, upgrade\r\n\r\n", true, true},
        {"GET / HTTP/1.0\r\n\r\n", false, false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, false},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true, false},
        {"GET / HTTP/1.0\r\nConnection: x,,keep-alive ,\r\n\r\n", true, false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false, false},
        {"GET / HTTP/1.0\r\nConnection: keep-alives\r\n\r\n", false, false},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cf_http_head h;
        int st;
        const char *why;
        size_t n = strlen(cases[k].req);
        CHECK_INT(parse(cases[k].req, n, &lim_test, &h, &st, &why), n);
        if (h.keep_alive != cases[k].keep_alive || h.upgrade != cases[k].upgrade)
            fprintf(stderr, "keep-alive case %zu\n", k);
        CHECK(h.keep_alive == cases[k].keep_alive);
        CHECK(h.upgrade == cases[k].upgrade);
    }
}

/* ------------------------------------------------------------------ */
/* Incremental behaviour                                              */
/* ------------------------------------------------------------------ */

static void expect_fail_partial(const char *s, size_t n, int status, int line)
{
    cf_http_head h;
    int st;
    const char *why;
    int r = parse(s, n, &lim_test, &h, &st, &why);
    if (r != -1 || st != status)
        fprintf(stderr, "line %d: partial \"%.*s\" gave %d/%d\n", line, (int)n, s, r, st);
    CHECK_INT(r, -1);
    CHECK_INT(st, status);
}
#define FAIL_PARTIAL(lit, status) expect_fail_partial(S(lit), status, __LINE__)

static void test_early_errors(void)
{
    /* nothing here is a complete head, yet each is already hopeless */
    FAIL_PARTIAL("G@", 400);
    FAIL_PARTIAL("\n", 400);
    FAIL_PARTIAL("\r\r", 400);
    FAIL_PARTIAL(" ", 400);
    FAIL_PARTIAL("GET x", 400);
    FAIL_PARTIAL("GET *", 400);
    FAIL_PARTIAL("OPTIONS **", 400);
    FAIL_PARTIAL("GET ftp:", 400);
    FAIL_PARTIAL("GET http://a@", 400);
    FAIL_PARTIAL("GET http:///", 400);
    FAIL_PARTIAL("GET /\x01", 400);
    FAIL_PARTIAL("GET / HTTP/1.1x", 400);
    FAIL_PARTIAL("GET / HTTPS", 400);
    FAIL_PARTIAL("GET / HTTP/1.1\n", 400);
    FAIL_PARTIAL("GET / HTTP/2.0\r\n", 505);
    FAIL_PARTIAL("GET / HTTP/1.1\r\nHost: a\n", 400);
    FAIL_PARTIAL("GET / HTTP/1.1\r\nHost: a\r\nFoo ", 400);
    FAIL_PARTIAL("GET / HTTP/1.1\r\nHost: a\r\nX: a\0", 400);
    FAIL_PARTIAL("GET / HTTP/1.1\r\nHost: a\r\n ", 400);
    FAIL_PARTIAL("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n", 400);
    FAIL_PARTIAL("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n", 400);
    FAIL_PARTIAL("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n", 400);

    /* and these are fine so far */
    static const char *more[] = {
        "", "\r", "\r\n", "G", "GET", "GET ", "GET h", "GET HTTP", "GET http:/", "GET https:",
        "GET http://a", "GET http://[::1", "GET http://a%2", "OPTIONS *", "GET /",
        "GET / H", "GET / HTTP/9.9", "GET / HTTP/1.1\r", "GET / HTTP/1.1\r\nHost: a b",
        "GET / HTTP/1.1\r\nX:", "GET / HTTP/1.1\r\nHost: a\r\n\r",
    };
    for (size_t k = 0; k < sizeof more / sizeof more[0]; k++) {
        cf_http_head h;
        int st;
        const char *why;
        int r = parse(more[k], strlen(more[k]), &lim_test, &h, &st, &why);
        if (r != 0)
            fprintf(stderr, "partial \"%s\" gave %d/%d\n", more[k], r, st);
        CHECK_INT(r, 0);
    }
}

static void test_pipelined(void)
{
    static const char two[] =
        "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
        "GET /b HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n";
    cf_http_head h;
    int st;
    const char *why;
    int r = parse(two, strlen(two), &lim_test, &h, &st, &why);
    CHECK_INT(r, strlen("GET /a HTTP/1.1\r\nHost: a\r\n\r\n"));
    CHECK_STR(STR(h, path), "/a");
    CHECK(h.keep_alive);
    int r2 = parse(two + r, strlen(two) - (size_t)r, &lim_test, &h, &st, &why);
    CHECK_INT(r2, strlen(two) - (size_t)r);
    CHECK_STR(STR(h, path), "/b");
    CHECK(!h.keep_alive);
}

/* ------------------------------------------------------------------ */
/* Limits                                                             */
/* ------------------------------------------------------------------ */

static void test_limits(void)
{
    static char buf[20000];
    cf_http_head h;
    int st;
    const char *why;
    size_t n;

    /* target of exactly max_target passes, one more is a 414, space or not */
    const cf_http_limits lim = {.max_header = 4096, .max_target = 100, .max_fields = 3};
    n = (size_t)sprintf(buf, "GET /%099d HTTP/1.1\r\nHost: a\r\n\r\n", 0);
    CHECK_INT(parse(buf, n, &lim, &h, &st, &why), n);
    CHECK_INT(h.target_len, 100);
    n = (size_t)sprintf(buf, "GET /%0100d HTTP/1.1\r\nHost: a\r\n\r\n", 0);
    CHECK_INT(parse(buf, n, &lim, &h, &st, &why), -1);
    CHECK_INT(st, 414);
    CHECK_INT(parse(buf, 4 + 101, &lim, &h, &st, &why), -1); /* no space yet */
    CHECK_INT(st, 414);
    CHECK_INT(parse(buf, 4 + 100, &lim, &h, &st, &why), 0);

    /* a target running into max_header before max_target is still a 414 */
    const cf_http_limits lim2 = {.max_header = 64, .max_target = 1000, .max_fields = 3};
    n = (size_t)sprintf(buf, "GET /%0200d HTTP/1.1\r\nHost: a\r\n\r\n", 0);
    CHECK_INT(parse(buf, n, &lim2, &h, &st, &why), -1);
    CHECK_INT(st, 414);

    /* max_fields fields pass, one more is a 431 */
    n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n");
    CHECK_INT(parse(buf, n, &lim, &h, &st, &why), n);
    n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n");
    CHECK_INT(parse(buf, n, &lim, &h, &st, &why), -1);
    CHECK_INT(st, 431);
    CHECK_INT(parse(buf, n - 6, &lim, &h, &st, &why), -1); /* as soon as "C:" is in */
    CHECK_INT(st, 431);

    /* the caller's array caps the count too */
    cf_hfield two[2];
    n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n");
    CHECK_INT(cf_http_parse_head(buf, n, &lim_test, &h, two, 2, &st, &why), -1);
    CHECK_INT(st, 431);
    CHECK_INT(cf_http_parse_head(buf, n - 7, &lim_test, &h, two, 2, &st, &why), 0);

    /* many fields against the default limits */
    n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 200; i++)
        n += (size_t)sprintf(buf + n, "X-%d: %d\r\n", i, i);
    n += (size_t)sprintf(buf + n, "\r\n");
    cf_hfield many[300];
    CHECK_INT(cf_http_parse_head(buf, n, NULL, &h, many, 300, &st, &why), -1);
    CHECK_INT(st, 431);

    /* a head of exactly max_header bytes passes; one byte more is a 431,
     * whether or not the rest has arrived */
    n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    size_t vstart = n;
    while (n < 4096 - 4)
        buf[n++] = 'x';
    memcpy(buf + n, "\r\n\r\n", 4);
    n += 4;
    CHECK_INT(n, 4096);
    CHECK_INT(parse(buf, n, &lim, &h, &st, &why), 4096);
    CHECK_INT(h.fields[1].value_len, 4096 - 4 - vstart);
    memmove(buf + vstart + 1, buf + vstart, n - vstart);
    buf[vstart] = 'x';
    n++;
    CHECK_INT(parse(buf, n, &lim, &h, &st, &why), -1);
    CHECK_INT(st, 431);
    CHECK_INT(parse(buf, 4096, &lim, &h, &st, &why), -1); /* end not in sight */
    CHECK_INT(st, 431);
    CHECK_INT(parse(buf, 4095, &lim, &h, &st, &why), 0);
    /* the bound keeps the pass short: bytes beyond it are not looked at */
    buf[5000] = '\n';
    CHECK_INT(parse(buf, 6000, &lim, &h, &st, &why), -1);
    CHECK_INT(st, 431);

    /* head > default max_header */
    n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    while (n < 9000)
        buf[n++] = 'y';
    memcpy(buf + n, "\r\n\r\n", 4);
    n += 4;
    CHECK_INT(cf_http_parse_head(buf, n, NULL, &h, fbuf, 64, &st, &why), -1);
    CHECK_INT(st, 431);

    /* leading empty lines count towards max_header */
    const cf_http_limits lim3 = {.max_header = 29, .max_target = 100, .max_fields = 3};
    static const char g[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"; /* 27 bytes */
    CHECK_INT(parse(g, strlen(g), &lim3, &h, &st, &why), 27);
    static const char lg[] = "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    CHECK_INT(parse(lg, strlen(lg), &lim3, &h, &st, &why), 29);
    static const char llg[] = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    CHECK_INT(parse(llg, strlen(llg), &lim3, &h, &st, &why), -1);
    CHECK_INT(st, 431);
}

/* ------------------------------------------------------------------ */
/* Character classes, every byte                                      */
/* ------------------------------------------------------------------ */

static bool is_tchar(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Parse fmt with its '^' replaced by the byte c. */
static int parse_with_byte(const char *fmt, int c, cf_http_head *h, int *st)
{
    static char buf[256];
    const char *why;
    size_t n = strlen(fmt);
    memcpy(buf, fmt, n);
    buf[strchr(fmt, '^') - fmt] = (char)c;
    return parse(buf, n, &lim_test, h, st, &why);
}

static void test_bytes(void)
{
    cf_http_head h;
    int st;
    for (int c = 0; c < 256; c++) {
        /* method */
        int r = parse_with_byte("G^T / HTTP/1.1\r\nHost: a\r\n\r\n", c, &h, &st);
        CHECK(is_tchar(c) ? r > 0 : r == -1 && st == 400);

        /* field name */
        r = parse_with_byte("GET / HTTP/1.1\r\nHost: a\r\nX^y: v\r\n\r\n", c, &h, &st);
        CHECK(is_tchar(c) || c == ':' ? r > 0 : r == -1 && st == 400);

        /* field value: HTAB SP VCHAR obs-text */
        r = parse_with_byte("GET / HTTP/1.1\r\nHost: a\r\nX: a^b\r\n\r\n", c, &h, &st);
        bool vok = c == '\t' || c == ' ' || (c >= 0x21 && c <= 0x7e) || c >= 0x80;
        if (vok != (r > 0))
            fprintf(stderr, "value byte 0x%02x gave %d\n", c, r);
        CHECK(vok ? r > 0 : r == -1 && st == 400);

        /* target: VCHAR but '#' */
        r = parse_with_byte("GET /a^b HTTP/1.1\r\nHost: a\r\n\r\n", c, &h, &st);
        bool tok = c >= 0x21 && c <= 0x7e && c != '#';
        if (c != ' ') /* a space ends the target: a different test */
            CHECK(tok ? r > 0 : r == -1 && st == 400);

        /* Host: unreserved and sub-delims */
        r = parse_with_byte("GET / HTTP/1.1\r\nHost: a^b\r\n\r\n", c, &h, &st);
        bool hok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                   (c && strchr("-._~!$&'()*+,;=", c));
        CHECK(hok ? r > 0 : r == -1 && st == 400);
    }
}

/* Long values and targets go through the word-at-a-time scan: put every
 * byte at every position of a 24-byte run. */
static void test_bytes_long(void)
{
    static char buf[256];
    cf_http_head h;
    int st;
    const char *why;
    for (int c = 0; c < 256; c++) {
        bool vok = c == '\t' || c == ' ' || (c >= 0x21 && c <= 0x7e) || c >= 0x80;
        bool tok = c >= 0x21 && c <= 0x7e && c != '#';
        for (int k = 0; k < 24; k++) {
            int n = sprintf(buf, "GET / HTTP/1.1\r\nHost: a\r\nX: v%.24s\r\nY: 1\r\n\r\n",
                            "abcdefghijklmnopqrstuvwx");
            buf[28 + k] = (char)c;
            int r = parse(buf, (size_t)n, &lim_test, &h, &st, &why);
            if (vok != (r == n))
                fprintf(stderr, "value byte 0x%02x at %d gave %d\n", c, k, r);
            CHECK(vok ? r == n : r == -1 && st == 400);

            n = sprintf(buf, "GET /%.24s HTTP/1.1\r\nHost: a\r\n\r\n", "abcdefghijklmnopqrstuvwx");
            buf[5 + k] = (char)c;
            r = parse(buf, (size_t)n, &lim_test, &h, &st, &why);
            if (c != ' ') {
                if (tok != (r == n))
                    fprintf(stderr, "target byte 0x%02x at %d gave %d\n", c, k, r);
                CHECK(tok ? r == n : r == -1 && st == 400);
            }
        }
    }
    /* tabs inside a long value are kept, and the value still ends at CR */
    static const char tabs[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\tb\tc\td\te\tf\tg\th\ti\tj\tk \t\r\n\r\n";
    CHECK_INT(parse(tabs, strlen(tabs), &lim_test, &h, &st, &why), strlen(tabs));
    CHECK_STR(dup(h.fields[1].value, h.fields[1].value_len), "a\tb\tc\td\te\tf\tg\th\ti\tj\tk");
}

/* ------------------------------------------------------------------ */
/* Chunked decoder                                                    */
/* ------------------------------------------------------------------ */

struct chunk_case {
    const char *name;
    const char *in;
    size_t len;
    int want;          /* 1 done, 0 needs more, -1 error */
    const char *out;   /* decoded body, for want >= 0 */
    size_t out_len;
    size_t consumed;   /* for want == 1: where the next request starts */
};

#define C_OK(name, in, out, consumed) {name, S(in), 1, S(out), consumed}
#define C_MORE(name, in, out) {name, S(in), 0, S(out), 0}
#define C_BAD(name, in) {name, S(in), -1, NULL, 0, 0}

static const struct chunk_case chunk_cases[] = {
    C_OK("one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello", 15),
    C_OK("two chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", 26),
    C_OK("empty body", "0\r\n\r\n", "", 5),
    C_OK("next request follows", "1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "x", 11),
    C_OK("hex sizes", "a\r\n0123456789\r\nB\r\n0123456789A\r\n0\r\n\r\n", "01234567890123456789A", 36),
    C_OK("leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello", 20),
    C_OK("leading zeros beyond 15 digits", "00000000000000000001\r\nx\r\n0\r\n\r\n", "x", 30),
    C_OK("data with CRLF inside", "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n", 14),
    C_OK("data with NUL", "3\r\na\0b\r\n0\r\n\r\n", "a\0b", 13),
    C_OK("extension name", "5;foo\r\nhello\r\n0\r\n\r\n", "hello", 19),
    C_OK("extension token value", "5;foo=bar\r\nhello\r\n0;x=y\r\n\r\n", "hello", 27),
    C_OK("extension quoted value", "5;a=\"b \\\"c;d\\\\\"\r\nhello\r\n0\r\n\r\n", "hello", 29),
    C_OK("several extensions", "5;a;b=1;c=\"\"\r\nhello\r\n0\r\n\r\n", "hello", 26),
    C_OK("BWS around extension", "5 ;\ta = b\t; c\r\nhello\r\n0\r\n\r\n", "hello", 27),
    C_OK("trailer", "5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:\r\n\r\n", "hello", 31),
    C_OK("trailer with obs-text", "0\r\nX: \xff\r\n\r\n", "", 11),
    C_MORE("needs more data", "5\r\nhel", "hel"),
    C_MORE("needs data CRLF", "5\r\nhello", "hello"),
    C_MORE("needs trailer end", "0\r\nX: y\r\n", ""),
    C_MORE("15 digits accepted", "fffffffffffffff\r\nab", "ab"),
    C_MORE("size line so far", "5;a=\"x", ""),
    C_BAD("empty size line", "\r\nhello\r\n0\r\n\r\n"),
    C_BAD("0x prefix", "0x10\r\n0123456789abcdef\r\n0\r\n\r\n"),
    C_BAD("negative", "-1\r\nx\r\n0\r\n\r\n"),
    C_BAD("leading space", " 5\r\nhello\r\n0\r\n\r\n"),
    C_BAD("trailing space", "5 \r\nhello\r\n0\r\n\r\n"),
    C_BAD("trailing tab", "5\t\r\nhello\r\n0\r\n\r\n"),
    C_BAD("bare LF after size", "5\nhello\r\n0\r\n\r\n"),
    C_BAD("bare CR after size", "5\rhello\r\n0\r\n\r\n"),
    C_BAD("XX instead of CRLF", "5\r\nhelloXX0\r\n\r\n"),
    C_BAD("LF only after data", "5\r\nhello\n0\r\n\r\n"),
    C_BAD("CR only after data", "5\r\nhello\r0\r\n\r\n"),
    C_BAD("data longer than size", "5\r\nhello!\r\n0\r\n\r\n"),
    C_BAD("overflow", "ffffffffffffffffff\r\n"),
    C_BAD("16 significant digits", "1000000000000000\r\n"),
    C_BAD("size with junk", "5g\r\nhello\r\n0\r\n\r\n"),
    C_BAD("empty extension", "5;\r\nhello\r\n0\r\n\r\n"),
    C_BAD("extension without name", "5;=x\r\nhello\r\n0\r\n\r\n"),
    C_BAD("extension empty value", "5;a=\r\nhello\r\n0\r\n\r\n"),
    C_BAD("extension CTL", "5;a\x01\r\nhello\r\n0\r\n\r\n"),
    C_BAD("extension NUL in quoted", "5;a=\"\0\"\r\nhello\r\n0\r\n\r\n"),
    C_BAD("extension unterminated quote", "5;a=\"x\r\nhello\r\n0\r\n\r\n"),
    C_BAD("extension junk after quote", "5;a=\"x\"y\r\nhello\r\n0\r\n\r\n"),
    C_BAD("extension trailing space", "5;a \r\nhello\r\n0\r\n\r\n"),
    C_BAD("extension bare LF", "5;a\nhello\r\n0\r\n\r\n"),
    C_BAD("trailer obs-fold", "0\r\nX: a\r\n b\r\n\r\n"),
    C_BAD("trailer space before colon", "0\r\nX : a\r\n\r\n"),
    C_BAD("trailer no colon", "0\r\nX\r\n\r\n"),
    C_BAD("trailer NUL", "0\r\nX: a\0\r\n\r\n"),
    C_BAD("trailer bare LF", "0\r\nX: a\n\r\n"),
    C_BAD("final bare LF", "0\r\n\n"),
    C_BAD("final bare CR", "0\r\n\rX"),
};

/* Run the decoder over in[0..len) fed in pieces of `step` bytes (0: all at
 * once), the way a connection would: each piece is appended to a buffer
 * and decoded in place. Collects the decoded bytes in *out. */
static int decode_pieces(const char *in, size_t len, size_t step, char *out, size_t *out_total,
                         size_t *consumed_total)
{
    cf_chunked c;
    cf_chunked_init(&c);
    char *piece = malloc(len + 1);
    size_t pos = 0, o = 0;
    int r = 0;
    *consumed_total = 0;
    do {
        size_t n = step && len - pos > step ? step : len - pos;
        memcpy(piece, in + pos, n);
        size_t used = 0, got = 0;
        const char *why = NULL;
        r = cf_chunked_decode(&c, piece, n, &used, &got, &why);
        CHECK(used <= n && got <= used);
        if (r == -1)
            CHECK(why != NULL);
        if (r == 0)
            CHECK_INT(used, n);
        memcpy(out + o, piece, got);
        o += got;
        pos += used;
        *consumed_total = pos;
        if (r != 0)
            break;
    } while (pos < len);
    free(piece);
    *out_total = o;
    return r;
}

static void test_chunked_table(void)
{
    char out[256], out2[256];
    for (size_t k = 0; k < sizeof chunk_cases / sizeof chunk_cases[0]; k++) {
        const struct chunk_case *tc = &chunk_cases[k];
        size_t olen, used;
        int r = decode_pieces(tc->in, tc->len, 0, out, &olen, &used);
        if (r != tc->want)
            fprintf(stderr, "chunk case \"%s\": got %d\n", tc->name, r);
        CHECK_INT(r, tc->want);
        if (tc->want >= 0) {
            CHECK_INT(olen, tc->out_len);
            CHECK(olen == tc->out_len && memcmp(out, tc->out, olen) == 0);
        }
        if (tc->want == 1)
            CHECK_INT(used, tc->consumed);
        if (tc->want == 0)
            CHECK_INT(used, tc->len);

        /* every split gives the same answer: one byte at a time, and every
         * cut into two pieces */
        for (size_t step = 1; step <= tc->len; step++) {
            size_t olen2, used2;
            int r2 = decode_pieces(tc->in, tc->len, step, out2, &olen2, &used2);
            if (r2 != r || olen2 != olen || memcmp(out, out2, olen) != 0 ||
                (r == 1 && used2 != used))
                fprintf(stderr, "chunk case \"%s\": step %zu differs\n", tc->name, step);
            CHECK_INT(r2, r);
            CHECK_INT(olen2, olen);
            CHECK(memcmp(out, out2, olen) == 0);
            if (r == 1)
                CHECK_INT(used2, used);
        }
    }
}

static void test_chunked_misc(void)
{
    cf_chunked c;
    size_t used, got;
    const char *why;
    char buf[16384];

    /* after the end, nothing more is taken */
    cf_chunked_init(&c);
    memcpy(buf, "0\r\n\r\nabc", 8);
    CHECK_INT(cf_chunked_decode(&c, buf, 8, &used, &got, &why), 1);
    CHECK_INT(used, 5);
    CHECK_INT(cf_chunked_decode(&c, buf + 5, 3, &used, &got, &why), 1);
    CHECK_INT(used, 0);
    CHECK_INT(got, 0);

    /* after an error, it stays failed */
    cf_chunked_init(&c);
    memcpy(buf, "z\r\n", 3);
    CHECK_INT(cf_chunked_decode(&c, buf, 3, &used, &got, &why), -1);
    memcpy(buf, "0\r\n\r\n", 5);
    CHECK_INT(cf_chunked_decode(&c, buf, 5, &used, &got, &why), -1);

    /* a zero-length call changes nothing */
    cf_chunked_init(&c);
    CHECK_INT(cf_chunked_decode(&c, buf, 0, &used, &got, &why), 0);
    CHECK_INT(used, 0);

    /* a size line without end */
    cf_chunked_init(&c);
    buf[0] = '1';
    buf[1] = ';';
    memset(buf + 2, 'a', CF_CHUNK_MAX_LINE);
    CHECK_INT(cf_chunked_decode(&c, buf, CF_CHUNK_MAX_LINE + 2, &used, &got, &why), -1);
    /* a long but bounded one is fine */
    cf_chunked_init(&c);
    memcpy(buf + CF_CHUNK_MAX_LINE - 2, "\r\n", 2);
    CHECK_INT(cf_chunked_decode(&c, buf, CF_CHUNK_MAX_LINE, &used, &got, &why), 0);

    /* a trailer section without end */
    cf_chunked_init(&c);
    memcpy(buf, "0\r\n", 3);
    size_t n = 3;
    while (n < CF_CHUNK_MAX_TRAILER + 100)
        n += (size_t)sprintf(buf + n, "X-Pad: %s\r\n", "0123456789");
    CHECK_INT(cf_chunked_decode(&c, buf, n, &used, &got, &why), -1);

    /* a big chunk goes through in bulk, in place */
    cf_chunked_init(&c);
    n = (size_t)sprintf(buf, "2000\r\n");
    for (int i = 0; i < 0x2000; i++)
        buf[n++] = (char)('a' + i % 26);
    n += (size_t)sprintf(buf + n, "\r\n0\r\n\r\n");
    CHECK_INT(cf_chunked_decode(&c, buf, n, &used, &got, &why), 1);
    CHECK_INT(used, n);
    CHECK_INT(got, 0x2000);
    CHECK(buf[0] == 'a' && buf[0x1fff] == (char)('a' + 0x1fff % 26));
}

int main(void)
{
    test_head_table();
    test_head_values();
    test_keep_alive();
    test_early_errors();
    test_pipelined();
    test_limits();
    test_bytes();
    test_bytes_long();
    test_chunked_table();
    test_chunked_misc();
    return CHECK_DONE();
}
