/*
 * parser.c — strict HTTP/1.1 request-head parser (RFC 9112, with the field
 * grammar of RFC 9110). The chunked-body decoder declared next to it in
 * parser.h is in chunked.c; the character classes both use, in chars.h.
 *
 * The head parser makes one forward pass over the buffer with a table lookup
 * per byte and keeps no state between calls: the connection re-parses from
 * the start as bytes arrive (a head is small and usually arrives whole, so
 * this is cheaper than carrying a resumable state machine on every request).
 * Each pass checks every byte it reaches, which is what lets a partial head
 * be refused early.
 *
 * Framing is where smuggling lives, so the framing fields (Content-Length,
 * Transfer-Encoding, Host) are checked here rather than left to the app:
 * whenever two readings of a head are possible, the head is refused.
 */
#include "parser.h"

#include <limits.h>
#include <string.h>

#include "chars.h"

/* s[0..n) equals the lowercase literal lit, ignoring ASCII case. */
static bool eq_ci(const uint8_t *s, size_t n, const char *lit, size_t litlen)
{
    if (n != litlen)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower(s[i]) != (uint8_t)lit[i])
            return false;
    return true;
}

/* The first min(n, litlen) bytes of s match lit, ignoring ASCII case: s may
 * still turn into lit as more bytes arrive. */
static bool prefix_ci(const uint8_t *s, size_t n, const char *lit, size_t litlen)
{
    if (n > litlen)
        n = litlen;
    for (size_t i = 0; i < n; i++)
        if (lower(s[i]) != (uint8_t)lit[i])
            return false;
    return true;
}

/* Field values and targets are most of a head's bytes, so they are scanned
 * eight at a time: a word passes when none of its bytes can end the run.
 * The bit tricks below are exact as booleans (a borrow can only spread from
 * a byte that really matches), which is all the fast path needs; anything
 * flagged, a legitimate HTAB included, is settled byte by byte. */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull
#define HAS_LESS(x, n) (((x) - ONES * (n)) & ~(x) & HIGHS) /* a byte < n (n <= 128) */
#define HAS_BYTE(x, b) HAS_LESS((x) ^ (ONES * (b)), 1)   /* a byte == b */

static inline uint64_t load8(const uint8_t *p)
{
    uint64_t x;
    memcpy(&x, p, 8); /* one unaligned load on the targets we care about */
    return x;
}

/* End of the run of C_VALUE bytes starting at p. */
static const uint8_t *scan_value(const uint8_t *p, const uint8_t *end)
{
    for (;;) {
        while (end - p >= 8) {
            uint64_t x = load8(p);
            if (HAS_LESS(x, 0x20) | HAS_BYTE(x, 0x7f))
                break;
            p += 8;
        }
        const uint8_t *lim = end - p > 8 ? p + 8 : end;
        while (p < lim && IS(*p, C_VALUE))
            p++;
        if (p < lim || p == end)
            return p;
    }
}

/* End of the run of C_TARGET bytes starting at p, looking no further than end. */
static const uint8_t *scan_target(const uint8_t *p, const uint8_t *end)
{
    for (;;) {
        while (end - p >= 8) {
            uint64_t x = load8(p);
            if (HAS_LESS(x, 0x21) | (x & HIGHS) | HAS_BYTE(x, 0x7f) | HAS_BYTE(x, '#'))
                break;
            p += 8;
        }
        const uint8_t *lim = end - p > 8 ? p + 8 : end;
        while (p < lim && IS(*p, C_TARGET))
            p++;
        if (p < lim || p == end)
            return p;
    }
}

/* Split a comma-separated list value (RFC 9110 §5.6.1): returns the end of
 * the element starting at p (the ',' or end) and sets *e, *elen to the
 * element with its OWS trimmed. Empty elements are reported, not skipped:
 * the framing fields refuse them. */
static const uint8_t *list_elem(const uint8_t *p, const uint8_t *end,
                                const uint8_t **e, size_t *elen)
{
    const uint8_t *c = memchr(p, ',', (size_t)(end - p));
    if (!c)
        c = end;
    const uint8_t *a = p, *b = c;
    while (a < b && ows(*a))
        a++;
    while (b > a && ows(b[-1]))
        b--;
    *e = a;
    *elen = (size_t)(b - a);
    return c;
}

/* Host (RFC 9110 §7.2) or an absolute-form authority: reg-name or IPv4
 * (the same bytes), or an IP literal in brackets, then an optional ":port".
 * Userinfo ('@') is refused: RFC 9110 §4.2.4 says to treat it as an error,
 * and it is a classic way to make two parsers see two hosts. With partial
 * set, h is a prefix and only what is already there is judged. */
static bool valid_host(const uint8_t *h, size_t n, bool partial)
{
    size_t i = 0;
    if (n == 0)
        return true;
    if (h[0] == '[') {
        for (i = 1; i < n && (IS(h[i], C_HEX) || h[i] == ':' || h[i] == '.'); i++)
            ;
        if (i == n)
            return partial;
        if (h[i] != ']' || i == 1)
            return false;
        i++;
    } else {
        while (i < n && IS(h[i], C_HOST)) {
            if (h[i] == '%') {
                if (i + 1 >= n)
                    return partial;
                if (!IS(h[i + 1], C_HEX))
                    return false;
                if (i + 2 >= n)
                    return partial;
                if (!IS(h[i + 2], C_HEX))
                    return false;
                i += 2;
            }
            i++;
        }
        if (i == 0)
            return false; /* ":80" names no host */
    }
    if (i == n)
        return true;
    if (h[i] != ':')
        return false;
    for (i++; i < n; i++)
        if (!IS(h[i], C_DIGIT))
            return false;
    return true;
}

static void set_path_query(cf_http_head *out, const uint8_t *p, size_t n)
{
    const uint8_t *q = memchr(p, '?', n);
    out->path = (const char *)p;
    out->path_len = q ? (size_t)(q - p) : n;
    if (q) {
        out->query = (const char *)q + 1;
        out->query_len = n - out->path_len - 1;
    }
}

/* Check the form of the request target t[0..n) (RFC 9112 §3.2); its bytes
 * are already known to be C_TARGET. partial: t is what has arrived so far.
 * When complete, fills path, query and authority. Returns NULL or why not. */
static const char *check_target(const uint8_t *t, size_t n, bool partial,
                                bool options, cf_http_head *out)
{
    if (t[0] == '/') { /* origin-form */
        if (!partial)
            set_path_query(out, t, n);
        return NULL;
    }
    if (t[0] == '*') { /* asterisk-form */
        if (!options)
            return "asterisk-form request target is only allowed with OPTIONS";
        if (n > 1)
            return "invalid request target";
        out->path = "*";
        out->path_len = 1;
        return NULL;
    }
    /* absolute-form; authority-form is CONNECT's, which a server of
     * applications does not proxy. */
    bool http = prefix_ci(t, n, "http://", 7), https = prefix_ci(t, n, "https://", 8);
    size_t slen = http && n >= 7 ? 7 : https && n >= 8 ? 8 : 0;
    if (!slen)
        return partial && (http || https) ? NULL : "invalid request target";
    const uint8_t *a = t + slen, *end = t + n, *q = a;
    while (q < end && *q != '/' && *q != '?')
        q++;
    bool auth_done = partial ? q < end : true;
    if (auth_done && q == a)
        return "empty authority in request target";
    if (!valid_host(a, (size_t)(q - a), !auth_done))
        return "invalid authority in request target";
    if (partial)
        return NULL;
    out->authority = (const char *)a;
    out->authority_len = (size_t)(q - a);
    if (q < end && *q == '/') {
        set_path_query(out, q, (size_t)(end - q));
    } else {
        out->path = "/";
        out->path_len = 1;
        if (q < end) {
            out->query = (const char *)q + 1;
            out->query_len = (size_t)(end - q) - 1;
        }
    }
    return NULL;
}

/* What the fields seen so far say about framing and the connection. */
struct framing {
    unsigned hosts;
    bool cl;             /* Content-Length seen */
    bool te;             /* Transfer-Encoding seen */
    bool te_last_chunked;
    bool te_other;       /* a coding other than chunked */
    unsigned te_chunked; /* how often chunked was listed */
    bool conn_close, conn_keep_alive;
};

/* Content-Length (RFC 9112 §6.3, RFC 9110 §8.6): 1*DIGIT, or a list of the
 * same number repeated, which some intermediaries produce when merging. */
static const char *field_content_length(cf_http_head *out, struct framing *f,
                                        const uint8_t *v, size_t vlen)
{
    const uint8_t *p = v, *end = v + vlen, *e;
    size_t elen;
    for (;;) {
        const uint8_t *c = list_elem(p, end, &e, &elen);
        if (elen == 0)
            return "invalid Content-Length";
        int64_t n = 0;
        for (size_t i = 0; i < elen; i++) {
            if (!IS(e[i], C_DIGIT))
                return "invalid Content-Length";
            int d = e[i] - '0';
            if (n > (CF_HTTP_MAX_CONTENT_LENGTH - d) / 10)
                return "Content-Length too large";
            n = n * 10 + d;
        }
        if (f->cl && n != out->content_length)
            return "conflicting Content-Length values";
        f->cl = true;
        out->content_length = n;
        if (c == end)
            return NULL;
        p = c + 1;
    }
}

/* Transfer-Encoding (RFC 9112 §6.1): only the order and count of codings is
 * recorded here; whether they make a valid framing is decided once all
 * fields are in, since several Transfer-Encoding fields form one list. */
static const char *field_transfer_encoding(struct framing *f, const uint8_t *v, size_t vlen)
{
    const uint8_t *p = v, *end = v + vlen, *e;
    size_t elen;
    f->te = true;
    for (;;) {
        const uint8_t *c = list_elem(p, end, &e, &elen);
        size_t tlen = 0;
        while (tlen < elen && IS(e[tlen], C_TCHAR))
            tlen++;
        if (tlen == 0)
            return "invalid Transfer-Encoding";
        bool chunked = eq_ci(e, tlen, "chunked", 7);
        if (tlen < elen) {
            /* parameters: chunked takes none, any other coding is refused
             * anyway, so they need no closer reading */
            size_t i = tlen;
            while (i < elen && ows(e[i]))
                i++;
            if (chunked || e[i] != ';')
                return "invalid Transfer-Encoding";
        }
        if (chunked)
            f->te_chunked++;
        else
            f->te_other = true;
        f->te_last_chunked = chunked;
        if (c == end)
            return NULL;
        p = c + 1;
    }
}

/* Connection (RFC 9110 §7.6.1): only the options we act on; anything else,
 * malformed included, names hop-by-hop fields we do not forward anyway. */
static void field_connection(cf_http_head *out, struct framing *f, const uint8_t *v, size_t vlen)
{
    const uint8_t *p = v, *end = v + vlen, *e;
    size_t elen;
    for (;;) {
        const uint8_t *c = list_elem(p, end, &e, &elen);
        if (eq_ci(e, elen, "close", 5))
            f->conn_close = true;
        else if (eq_ci(e, elen, "keep-alive", 10))
            f->conn_keep_alive = true;
        else if (eq_ci(e, elen, "upgrade", 7))
            out->upgrade = true;
        if (c == end)
            return;
        p = c + 1;
    }
}

/* Act on the fields that matter to the parser; names are tokens, so a
 * length switch discards almost every other field in one compare. */
static const char *field_semantics(cf_http_head *out, struct framing *f,
                                   const uint8_t *name, size_t nlen,
                                   const uint8_t *v, size_t vlen)
{
    switch (nlen) {
    case 4:
        if (!eq_ci(name, 4, "host", 4))
            break;
        if (++f->hosts > 1)
            return "more than one Host header field";
        if (!valid_host(v, vlen, false))
            return "invalid Host header field";
        out->host = (const char *)v;
        out->host_len = vlen;
        break;
    case 6:
        /* RFC 9110 §10.1.1: an HTTP/1.0 client cannot mean it */
        if (eq_ci(name, 6, "expect", 6) && eq_ci(v, vlen, "100-continue", 12) && out->minor == 1)
            out->expect_continue = true;
        break;
    case 10:
        if (eq_ci(name, 10, "connection", 10))
            field_connection(out, f, v, vlen);
        break;
    case 14:
        if (eq_ci(name, 14, "content-length", 14))
            return field_content_length(out, f, v, vlen);
        break;
    case 17:
        if (eq_ci(name, 17, "transfer-encoding", 17))
            return field_transfer_encoding(f, v, vlen);
        break;
    }
    return NULL;
}

#define FAIL(code, msg)        \
    do {                       \
        *status = (code);      \
        *reason = (msg);       \
        return -1;             \
    } while (0)

int cf_http_parse_head(const char *buf, size_t len, const cf_http_limits *lim,
                       cf_http_head *out, cf_hfield *fields, size_t fields_cap,
                       int *status, const char **reason)
{
    size_t max_header = lim ? lim->max_header : CF_HTTP_DEFAULT_MAX_HEADER;
    size_t max_target = lim ? lim->max_target : CF_HTTP_DEFAULT_MAX_TARGET;
    size_t max_fields = lim ? lim->max_fields : CF_HTTP_DEFAULT_MAX_FIELDS;
    if (max_fields > fields_cap)
        max_fields = fields_cap;
    if (max_header > INT_MAX)
        max_header = INT_MAX; /* the length is returned as an int */

    /* Scan at most max_header bytes: running out there means the head is
     * too large, running out at len means wait for more. */
    const uint8_t *start = (const uint8_t *)buf, *p = start;
    bool capped = len >= max_header;
    const uint8_t *end = start + (capped ? max_header : len);
    bool in_target = false;
    struct framing f = {0};
    const char *r;
    size_t nf = 0;

    *out = (cf_http_head){.content_length = -1};

    for (int n = 0;; n++) { /* empty lines before the request line */
        if (p == end)
            goto incomplete;
        if (*p != '\r')
            break;
        if (n == CF_HTTP_MAX_LEADING_CRLF)
            FAIL(400, "too many empty lines before the request line");
        if (p + 1 == end)
            goto incomplete;
        if (p[1] != '\n')
            FAIL(400, "bare CR in request head");
        p += 2;
    }

    /* method SP */
    const uint8_t *m = p;
    while (p < end && IS(*p, C_TCHAR))
        p++;
    if (p == end)
        goto incomplete;
    if (*p != ' ' || p == m)
        FAIL(400, *p == '\n' ? "bare LF in request head" : "invalid method");
    out->method = (const char *)m;
    out->method_len = (size_t)(p - m);
    bool options = out->method_len == 7 && memcmp(m, "OPTIONS", 7) == 0;
    p++;

    /* request-target SP; looking one byte past max_target is enough to
     * answer 414 before the space arrives */
    const uint8_t *t = p;
    size_t avail = (size_t)(end - t);
    const uint8_t *tl = t + (avail > max_target ? max_target + 1 : avail);
    p = scan_target(p, tl);
    if ((size_t)(p - t) > max_target)
        FAIL(414, "request target too long");
    if (p == end) {
        if (p > t && (r = check_target(t, (size_t)(p - t), true, options, out)))
            FAIL(400, r);
        in_target = true;
        goto incomplete;
    }
    if (*p != ' ')
        FAIL(400, *p == '\n' ? "bare LF in request head" : "invalid character in request target");
    if (p == t)
        FAIL(400, "empty request target");
    if ((r = check_target(t, (size_t)(p - t), false, options, out)))
        FAIL(400, r);
    out->target = (const char *)t;
    out->target_len = (size_t)(p - t);
    p++;

    /* HTTP-version CRLF: exactly "HTTP/" DIGIT "." DIGIT, checked byte by
     * byte so a wrong byte fails before the line is complete */
    static const char shape[] = "HTTP/9.9\r\n"; /* '9': any digit */
    avail = (size_t)(end - p);
    for (size_t i = 0; i < 10 && i < avail; i++) {
        uint8_t c = p[i];
        if (shape[i] == '9' ? !IS(c, C_DIGIT) : c != (uint8_t)shape[i])
            FAIL(400, c == '\n' ? "bare LF in request head"
                      : i == 9  ? "bare CR in request head"
                                : "invalid HTTP version");
    }
    if (avail < 10)
        goto incomplete;
    if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
        FAIL(505, "HTTP version not supported");
    out->minor = p[7] - '0';
    p += 10;

    /* field lines, up to the empty line */
    for (;;) {
        if (p == end)
            goto incomplete;
        if (*p == '\r') {
            if (p + 1 == end)
                goto incomplete;
            if (p[1] != '\n')
                FAIL(400, "bare CR in request head");
            p += 2;
            break;
        }
        const uint8_t *name = p;
        while (p < end && IS(*p, C_TCHAR))
            p++;
        if (p == end)
            goto incomplete;
        if (*p != ':' || p == name) {
            if (*p == '\n')
                FAIL(400, "bare LF in request head");
            if (p == name && ows(*p))
                /* obs-fold, or whitespace before the first field
                 * (RFC 9112 §5.2, §2.2): reject, never unfold */
                FAIL(400, "obsolete line folding");
            FAIL(400, "invalid header field name");
        }
        if (nf == max_fields)
            FAIL(431, "too many header fields");
        size_t nlen = (size_t)(p - name);
        p++;
        while (p < end && ows(*p))
            p++;
        const uint8_t *v = p;
        p = scan_value(p, end);
        if (p == end)
            goto incomplete;
        if (*p != '\r')
            FAIL(400, *p == '\n' ? "bare LF in request head"
                                 : "invalid character in header field value");
        if (p + 1 == end)
            goto incomplete;
        if (p[1] != '\n')
            FAIL(400, "bare CR in request head");
        const uint8_t *ve = p;
        while (ve > v && ows(ve[-1]))
            ve--;
        p += 2;
        fields[nf].name = (const char *)name;
        fields[nf].name_len = nlen;
        fields[nf].value = (const char *)v;
        fields[nf].value_len = (size_t)(ve - v);
        nf++;
        if ((r = field_semantics(out, &f, name, nlen, v, (size_t)(ve - v))))
            FAIL(400, r);
    }

    /* the whole head is in: decide what the framing fields add up to */
    if (out->minor == 1 && !out->host)
        FAIL(400, "missing Host header field");
    if (f.te) {
        /* RFC 9112 §6.1: a 1.0 peer cannot have sent chunked framing, and
         * with Content-Length as well two parsers may frame differently */
        if (out->minor == 0)
            FAIL(400, "Transfer-Encoding in an HTTP/1.0 request");
        if (f.cl)
            FAIL(400, "both Transfer-Encoding and Content-Length");
        if (f.te_chunked > 1 || (f.te_chunked == 1 && !f.te_last_chunked))
            FAIL(400, "chunked must be the final transfer coding, once");
        if (f.te_other)
            FAIL(501, "unsupported transfer coding");
        out->chunked = true;
    }
    out->keep_alive = !f.conn_close && (out->minor == 1 || f.conn_keep_alive);
    out->fields = fields;
    out->nfields = nf;
    return (int)(p - start);

incomplete:
    if (!capped)
        return 0;
    if (in_target)
        FAIL(414, "request target too long");
    FAIL(431, "request header section too large");
}
