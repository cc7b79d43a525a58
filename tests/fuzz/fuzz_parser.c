/*
 * fuzz_parser.c — libFuzzer target for the HTTP/1.1 head parser and the
 * chunked decoder (src/http/parser.c).
 *
 * Crashes are only half of what it looks for; the other half is the
 * contract the connection code relies on, checked with abort():
 *   - results stay inside the buffer and the limits;
 *   - re-parsing a growing buffer is consistent: a prefix of an accepted
 *     head is incomplete, a prefix that fails makes the whole fail, and the
 *     head parses the same with or without the bytes after it;
 *   - the chunked decoder never produces more than it consumes, consumes
 *     everything when it asks for more, and gives the same body, end and
 *     verdict whether the input comes at once or split at arbitrary points.
 * Inputs that are no valid head go to the chunked decoder directly, so both
 * halves get the whole of the fuzzer's attention.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc
 *        tests/fuzz/fuzz_parser.c src/http/parser.c
 * Seeds: tests/fuzz/corpus_parser/
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parser.h"

#define CHECK(cond)      \
    do {                 \
        if (!(cond))     \
            abort();     \
    } while (0)

#define MAX_FIELDS 64

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
    return p >= buf && n <= len && p - buf <= (ptrdiff_t)(len - n);
}

/* A string of the head must be inside the head, or be one of the parser's
 * static strings ("/" or "*" for the path). */
static void check_str(const char *p, size_t n, const char *buf, size_t len, bool may_be_null)
{
    if (!p) {
        CHECK(may_be_null && n == 0);
        return;
    }
    CHECK(inside(p, n, buf, len) || (n == 1 && (*p == '/' || *p == '*')));
}

static int parse(const char *buf, size_t len, const cf_http_limits *lim, cf_http_head *h,
                 cf_hfield *fields, int *status)
{
    const char *reason = NULL;
    *status = 0;
    int r = cf_http_parse_head(buf, len, lim, h, fields, MAX_FIELDS, status, &reason);
    CHECK(r >= -1);
    if (r == -1) {
        CHECK(reason && *reason);
        CHECK(*status == 400 || *status == 414 || *status == 431 || *status == 501 ||
              *status == 505);
        return r;
    }
    if (r == 0)
        return r;

    size_t n = (size_t)r;
    size_t max_header = lim ? lim->max_header : CF_HTTP_DEFAULT_MAX_HEADER;
    size_t max_target = lim ? lim->max_target : CF_HTTP_DEFAULT_MAX_TARGET;
    size_t max_fields = lim ? lim->max_fields : CF_HTTP_DEFAULT_MAX_FIELDS;
    CHECK(n <= len && n <= max_header && n >= 4);
    CHECK(memcmp(buf + n - 4, "\r\n\r\n", 4) == 0);
    check_str(h->method, h->method_len, buf, n, false);
    CHECK(h->method_len > 0);
    check_str(h->target, h->target_len, buf, n, false);
    CHECK(h->target_len > 0 && h->target_len <= max_target);
    check_str(h->path, h->path_len, buf, n, false);
    CHECK(h->path_len > 0 && (h->path[0] == '/' || h->path[0] == '*'));
    check_str(h->query, h->query_len, buf, n, true);
    if (h->query)
        CHECK(h->query > h->target && h->query[-1] == '?');
    check_str(h->host, h->host_len, buf, n, true);
    check_str(h->authority, h->authority_len, buf, n, true);
    CHECK(h->minor == 0 || h->minor == 1);
    CHECK(h->minor == 0 || h->host);
    CHECK(h->fields == fields && h->nfields <= MAX_FIELDS && h->nfields <= max_fields);
    for (size_t i = 0; i < h->nfields; i++) {
        check_str(h->fields[i].name, h->fields[i].name_len, buf, n, false);
        check_str(h->fields[i].value, h->fields[i].value_len, buf, n, false);
        CHECK(h->fields[i].name_len > 0 && h->fields[i].name[h->fields[i].name_len] == ':');
        const char *v = h->fields[i].value;
        size_t vl = h->fields[i].value_len;
        if (vl)
            CHECK(v[0] != ' ' && v[0] != '\t' && v[vl - 1] != ' ' && v[vl - 1] != '\t');
        for (size_t k = 0; k < vl; k++)
            CHECK(v[k] != '\r' && v[k] != '\n' && v[k] != 0);
    }
    CHECK(h->content_length >= -1 && h->content_length <= CF_HTTP_MAX_CONTENT_LENGTH);
    CHECK(!(h->chunked && h->content_length >= 0)); /* never two framings */
    CHECK(!(h->chunked && h->minor == 0));
    return r;
}

/* Decode in[0..len) fed in pieces whose sizes come from `cuts` (cycled;
 * ncuts == 0: all at once). Each piece sits in its own exact-size heap
 * block so ASan sees any read or write past it. */
static int decode(const uint8_t *in, size_t len, const uint8_t *cuts, size_t ncuts,
                  uint8_t *out, size_t *out_len, size_t *used_total)
{
    cf_chunked c;
    cf_chunked_init(&c);
    size_t pos = 0, o = 0, k = 0;
    int r = 0;
    do {
        size_t n = len - pos;
        if (ncuts) {
            size_t want = cuts[k++ % ncuts] % 17u; /* 0 too: empty calls are legal */
            if (want < n)
                n = want;
        }
        char *piece = malloc(n ? n : 1);
        memcpy(piece, in + pos, n);
        size_t used = (size_t)-1, got = (size_t)-1;
        const char *reason = NULL;
        r = cf_chunked_decode(&c, piece, n, &used, &got, &reason);
        CHECK(r >= -1 && r <= 1);
        CHECK(used <= n && got <= used);
        if (r == 0)
            CHECK(used == n);
        if (r == -1)
            CHECK(reason && *reason);
        memcpy(out + o, piece, got);
        free(piece);
        o += got;
        pos += used;
        if (r != 0)
            break;
        if (ncuts && k > 4 * len + 64)
            ncuts = 0; /* all-zero cuts: finish in one piece */
    } while (pos < len);
    *out_len = o;
    *used_total = pos;
    return r;
}

static void check_chunked(const uint8_t *in, size_t len, const uint8_t *cuts, size_t ncuts)
{
    uint8_t *out1 = malloc(len + 1), *out2 = malloc(len + 1);
    size_t o1, o2, u1, u2;
    int r1 = decode(in, len, NULL, 0, out1, &o1, &u1);
    CHECK(o1 <= u1 && u1 <= len);
    if (r1 == 0)
        CHECK(u1 == len);
    int r2 = decode(in, len, cuts, ncuts, out2, &o2, &u2);
    CHECK(r1 == r2);
    CHECK(o1 == o2 && memcmp(out1, out2, o1) == 0);
    if (r1 >= 0)
        CHECK(u1 == u2);
    free(out1);
    free(out2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy, so reading one byte too far is an ASan report */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    cf_hfield fields[MAX_FIELDS];
    cf_http_head h;
    int st;

    int r = parse(buf, size, NULL, &h, fields, &st);
    if (r > 0) {
        /* the head does not depend on what follows it */
        cf_http_head h2;
        int st2;
        CHECK(parse(buf, (size_t)r, NULL, &h2, fields, &st2) == r);
        CHECK(h2.nfields == h.nfields && h2.content_length == h.content_length &&
              h2.chunked == h.chunked && h2.keep_alive == h.keep_alive);
        /* and one byte less is never enough */
        CHECK(parse(buf, (size_t)r - 1, NULL, &h2, fields, &st2) == 0);
    }
    /* a prefix: fails only if the whole fails, completes only as the whole */
    if (size) {
        size_t cut = data[0] * size / 256;
        int rp = parse(buf, cut, NULL, &h, fields, &st);
        int st_full;
        int rf = parse(buf, size, NULL, &h, fields, &st_full);
        if (rp == -1)
            CHECK(rf == -1 && st_full == st);
        if (rp > 0)
            CHECK(rf == rp);
    }
    /* tight limits derived from the input reach 414 and 431 */
    if (size >= 2) {
        cf_http_limits lim = {.max_header = 16 + data[size - 1] * 2u,
                              .max_target = 1 + data[size - 2] / 4u,
                              .max_fields = data[size - 1] % 8u};
        parse(buf, size, &lim, &h, fields, &st);
    }

    /* the body: after a valid head, or the whole input when there is none */
    r = parse(buf, size, NULL, &h, fields, &st);
    size_t off = r > 0 ? (size_t)r : 0;
    const uint8_t *body = data + off;
    size_t blen = size - off;
    /* the split points come from the input itself, read backwards so they
     * do not simply mirror the body's first bytes */
    uint8_t cuts[32];
    size_t ncuts = blen < sizeof cuts ? blen : sizeof cuts;
    for (size_t i = 0; i < ncuts; i++)
        cuts[i] = body[blen - 1 - i] ^ (uint8_t)(i * 7);
    if (ncuts == 0) {
        cuts[0] = 1;
        ncuts = 1;
    }
    check_chunked(body, blen, cuts, ncuts);
    /* and one byte at a time, the hardest split */
    static const uint8_t one = 1;
    check_chunked(body, blen, &one, 1);

    free(buf);
    return 0;
}
