/*
 * fetch_req.c — one HTTP client transfer's easy handle: what it sends and
 * how it takes in the response.
 *
 * cf__fetch_setup sets every option of a transfer from cf_fetch_opts: the
 * URL, the request headers (checked for CR/LF, with Expect: 100-continue
 * turned off), the body (raw, JSON or a percent-encoded form), timeouts,
 * redirects, allowed protocols; the same whether the transfer then runs in
 * the loop's multi (fetch_loop.c) or blocking in a threaded handler. The
 * write and header callbacks grow the body in malloc'd memory and keep the
 * response headers in the request's arena, both within their limits
 * (max_body, MAX_HEADER_BYTES): going past one aborts the transfer, which
 * is then reported as CF_ETOOBIG.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fetch_int.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_MAX_BODY ((size_t)16 << 20)
#define MAX_REDIRECTS 10

/* ---- libcurl callbacks for one transfer ---------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    cf_fetch *f = ud;
    size_t n = size * nmemb;
    if (f->zombie)
        return 0; /* abort: nobody wants it any more */
    if (n > f->max_body - f->len) {
        f->toobig = true;
        return 0; /* CURLE_WRITE_ERROR, reported as CF_ETOOBIG */
    }
    if (f->len + n + 1 > f->cap) {
        size_t want = f->cap ? f->cap * 2 : 4096;
        if (!f->cap) {
            /* Size the first buffer from Content-Length when there is one. */
            curl_off_t cl = -1;
            if (curl_easy_getinfo(f->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK &&
                cl > 0 && (uint64_t)cl < f->max_body && (uint64_t)cl < ((size_t)1 << 40))
                want = (size_t)cl + 1;
        }
        if (want < f->len + n + 1)
            want = f->len + n + 1;
        char *p = realloc(f->body, want);
        if (!p)
            return 0;
        f->body = p;
        f->cap = want;
    }
    memcpy(f->body + f->len, data, n);
    f->len += n;
    return n;
}

static char *arena_strndup(cf_req *rq, const char *s, size_t n)
{
    char *p = cf_alloc(rq, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    cf_fetch *f = ud;
    size_t n = size * nmemb;
    if (f->zombie)
        return 0;
    if (n > MAX_HEADER_BYTES - f->header_bytes) {
        f->toobig = f->headers_toobig = true;
        return 0; /* CURLE_WRITE_ERROR, reported as CF_ETOOBIG */
    }
    f->header_bytes += n;
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* A new response (an interim 1xx, or the next after a redirect):
         * only the last one's headers are kept. */
        f->nhdrs = 0;
        return n;
    }
    size_t len = n;
    while (len && (data[len - 1] == '\r' || data[len - 1] == '\n'))
        len--;
    if (!len || data[0] == ' ' || data[0] == '\t')
        return n; /* the blank line, or obsolete line folding */
    const char *colon = memchr(data, ':', len);
    if (!colon || colon == data)
        return n;
    const char *v = colon + 1, *end = data + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (f->nhdrs == f->hdrs_cap) {
        size_t cap = f->hdrs_cap ? f->hdrs_cap * 2 : 16;
        fetch_hdr *h = cf_alloc(f->rq, cap * sizeof *h);
        if (f->nhdrs)
            memcpy(h, f->hdrs, f->nhdrs * sizeof *h);
        f->hdrs = h;
        f->hdrs_cap = cap;
    }
    f->hdrs[f->nhdrs].name = arena_strndup(f->rq, data, (size_t)(colon - data));
    f->hdrs[f->nhdrs].value = arena_strndup(f->rq, v, (size_t)(end - v));
    f->nhdrs++;
    return n;
}

/* ---- building the request ------------------------------------------------ */

static bool is_unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Write name=value&... percent-encoded (form: space as '+') at `out`, which
 * must hold pairs_size(pairs) bytes. Returns the new end; *odd is set when
 * a name has no value. */
static char *encode_pairs(char *out, const char *const *pairs, bool form, bool *odd)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i = 0;
    for (; pairs[i]; i++) {
        if (i % 2 == 0 && i > 0)
            *out++ = '&';
        else if (i % 2 == 1)
            *out++ = '=';
        for (const unsigned char *s = (const unsigned char *)pairs[i]; *s; s++) {
            if (is_unreserved(*s)) {
                *out++ = (char)*s;
            } else if (*s == ' ' && form) {
                *out++ = '+';
            } else {
                *out++ = '%';
                *out++ = hex[*s >> 4];
                *out++ = hex[*s & 15];
            }
        }
    }
    *odd = i % 2 != 0;
    return out;
}

static size_t pairs_size(const char *const *pairs)
{
    size_t n = 0;
    for (size_t i = 0; pairs[i]; i++)
        n += 3 * strlen(pairs[i]) + 1;
    return n;
}

/* url + '?'/'&' + encoded query, before any #fragment. NULL: odd list. */
const char *cf__fetch_build_url(cf_req *rq, const char *url, const char *const *query)
{
    if (!query || !query[0])
        return url;
    size_t frag = strcspn(url, "#");
    char *out = cf_alloc(rq, strlen(url) + pairs_size(query) + 2);
    memcpy(out, url, frag);
    char *p = out + frag;
    const char *q = memchr(url, '?', frag);
    if (!q)
        *p++ = '?';
    else if (p[-1] != '?' && p[-1] != '&')
        *p++ = '&';
    bool odd;
    p = encode_pairs(p, query, false, &odd);
    strcpy(p, url + frag);
    return odd ? NULL : out;
}

bool cf__fetch_is_token(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return false;
    return true;
}

static bool has_header(const char *const *headers, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; headers && headers[i]; i++)
        if (strncasecmp(headers[i], name, n) == 0 && (headers[i][n] == ':' || headers[i][n] == ';'))
            return true;
    return false;
}

static void free_json_dump(void *p) { free(p); }

/* Set every option of the transfer. Returns 0 or an error (with the
 * message already set). */
int cf__fetch_setup(cf_fetch *f, CURL *e, const cf_fetch_opts *o, fetch_svc *svc)
{
    static const cf_fetch_opts none;
    if (!o)
        o = &none;
    cf_req *rq = f->rq;
    const char *const *h = o->headers;
    struct curl_slist *sl = NULL;
#define ADD(s) do { struct curl_slist *n_ = curl_slist_append(sl, (s)); \
                    if (!n_) { curl_slist_free_all(sl); return CF_ENOMEM; } sl = n_; } while (0)
    for (size_t i = 0; h && h[i]; i++) {
        const char *c = strpbrk(h[i], ":;");
        if (strpbrk(h[i], "\r\n") || !c || c == h[i]) {
            curl_slist_free_all(sl);
            cf__fetch_set_error(f, CF_EINVAL, cf_sprintf(rq, "bad header \"%s\"", h[i]));
            return CF_EINVAL;
        }
        ADD(h[i]);
    }
    /* curl would send Expect: 100-continue for big bodies and wait up to a
     * second for servers that ignore it. */
    if (!has_header(h, "Expect"))
        ADD("Expect:");

    const char *body = o->body;
    size_t body_len = o->body_len;
    const char *ctype = NULL;
    if (o->json) {
        char *dump = json_dumps(o->json, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!dump) {
            curl_slist_free_all(sl);
            cf__fetch_set_error(f, CF_EINVAL, "the JSON body could not be serialized");
            return CF_EINVAL;
        }
        cf_defer(rq, free_json_dump, dump);
        body = dump;
        body_len = strlen(dump);
        ctype = "Content-Type: application/json";
    } else if (o->form) {
        char *fb = cf_alloc(rq, pairs_size(o->form) + 1);
        bool odd;
        char *end = encode_pairs(fb, o->form, true, &odd);
        *end = 0;
        if (odd) {
            curl_slist_free_all(sl);
            cf__fetch_set_error(f, CF_EINVAL, "the form list has a name without a value");
            return CF_EINVAL;
        }
        body = fb;
        body_len = (size_t)(end - fb);
        ctype = "Content-Type: application/x-www-form-urlencoded";
    }
    if (ctype && !has_header(h, "Content-Type"))
        ADD(ctype);
#undef ADD
    f->req_headers = sl;
    f->req_body = body;

    int64_t cto = o->connect_timeout_ms ? o->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    int64_t to = o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    f->max_body = o->max_body ? o->max_body : DEFAULT_MAX_BODY;

    curl_easy_setopt(e, CURLOPT_PRIVATE, f);
    curl_easy_setopt(e, CURLOPT_URL, f->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075700
    /* Removing a transfer (cancel, connect timeout) while its host name is
     * being resolved would otherwise join the resolver thread, blocking
     * the loop until getaddrinfo returns; this detaches it instead (the
     * thread frees its own state when the lookup ends). */
    curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
#endif
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, f->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, sl);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "carafe/" CF_VERSION);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* all it can decode */
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, cto > 0 ? (long)cto : 0L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, to > 0 ? (long)to : 0L);
    if (f->max_body != SIZE_MAX)
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)f->max_body);
    if (o->follow_redirects) {
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)MAX_REDIRECTS);
    }
    if (o->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
    if (svc) {
        curl_easy_setopt(e, CURLOPT_SHARE, svc->share);
        /* Over TLS, wait for the first connection to a host to learn
         * whether it multiplexes (HTTP/2) instead of opening one per call. */
        if (strncasecmp(f->url, "https:", 6) == 0)
            curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    }

    const char *m = f->method;
    bool with_body = body || o->json || o->form;
    if (strcmp(m, "HEAD") == 0 && !with_body) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(m, "GET") == 0 && !with_body) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        /* POST, PUT and PATCH always send a body (maybe empty: Content-Length: 0). */
        if (with_body || !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH")) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
        }
        if (strcmp(m, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
    }
    return 0;
}
