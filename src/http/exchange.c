/*
 * exchange.c — what every protocol does the same way with an exchange:
 * taking over a parsed request head (path decoding and its safety
 * checks), header lookup, request ids, name/value lists, reason phrases.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/exchange.h"

static void *must_alloc(cf_arena *a, size_t size)
{
    void *p = cf_arena_alloc(a, size);
    if (!p) {
        fprintf(stderr, "carafe: out of memory for a request\n");
        abort();
    }
    return p;
}

static char *must_strndup(cf_arena *a, const char *s, size_t n)
{
    char *p = must_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* A path refused here still reaches the app (its 400 handler), with the
 * path as sent, and is never routed. */
static void refuse_path(cf_exchange *x, const cf_http_head *h, const char *why)
{
    x->path = must_strndup(x->arena, h->path, h->path_len);
    cf_exchange_refuse(x, 400, why);
}

void cf_exchange_set_head(cf_exchange *x, const cf_http_head *h, const char *raw, size_t raw_len)
{
    char *copy = must_alloc(x->arena, raw_len + 1);
    memcpy(copy, raw, raw_len);
    copy[raw_len] = 0;
#define REBASE(p) (copy + ((const char *)(p)-raw))
    x->method = REBASE(h->method);
    x->method[h->method_len] = 0;
    x->minor = h->minor;
    x->keep_alive = h->keep_alive;
    x->is_head = h->method_len == 4 && memcmp(h->method, "HEAD", 4) == 0;
    x->target = must_strndup(x->arena, h->target, h->target_len);
    x->query = h->query ? must_strndup(x->arena, h->query, h->query_len) : must_strndup(x->arena, "", 0);
    x->nfields = h->nfields;
    x->fields = must_alloc(x->arena, (h->nfields ? h->nfields : 1) * sizeof(cf_hfield));
    for (size_t i = 0; i < h->nfields; i++) {
        cf_hfield f = h->fields[i];
        char *name = REBASE(f.name), *value = REBASE(f.value);
        name[f.name_len] = 0;
        value[f.value_len] = 0;
        x->fields[i] = (cf_hfield){name, f.name_len, value, f.value_len};
    }
#undef REBASE

    char *path = must_strndup(x->arena, h->path, h->path_len);
    long n = cf_url_decode(path, h->path_len, CF_URL_STRICT);
    if (n < 0) {
        refuse_path(x, h, "invalid percent-encoding in the path");
        return;
    }
    if (memchr(path, 0, (size_t)n)) {
        refuse_path(x, h, "NUL byte in the path");
        return;
    }
    /* After decoding, a "." or ".." segment could climb out of the route
     * the client appears to address (/static/%2e%2e/secret); browsers never
     * send them, so refusing is safe and simple. */
    for (char *seg = path; seg && *seg;) {
        char *slash = strchr(seg + 1, '/');
        size_t len = slash ? (size_t)(slash - seg - 1) : strlen(seg + 1);
        if (seg[0] == '/' && ((len == 1 && seg[1] == '.') || (len == 2 && seg[1] == '.' && seg[2] == '.'))) {
            refuse_path(x, h, "dot segments are not allowed in the path");
            return;
        }
        seg = slash;
    }
    x->path = path;
}

void cf_exchange_refuse(cf_exchange *x, int status, const char *reason)
{
    if (x->refused)
        return;
    x->refused = status;
    x->refused_reason = reason;
    x->keep_alive = false;
}

const char *cf_exchange_header(const cf_exchange *x, const char *name)
{
    for (size_t i = 0; i < x->nfields; i++)
        if (strcasecmp(x->fields[i].name, name) == 0)
            return x->fields[i].value;
    return NULL;
}

const char *cf_exchange_request_id(cf_exchange *x, uint64_t *seed)
{
    const char *id = cf_exchange_header(x, "X-Request-Id");
    if (id) {
        size_t n = 0;
        while (id[n] && n <= 128 && (isalnum((unsigned char)id[n]) || strchr("-_.:", id[n])))
            n++;
        if (n && !id[n])
            return id;
    }
    /* splitmix64 over a per-worker counter: unique per worker, hard to guess. */
    uint64_t z = (*seed += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    char *fresh = must_alloc(x->arena, 17);
    snprintf(fresh, 17, "%016llx", (unsigned long long)z);
    return fresh;
}

void cf_kv_push(cf_arena *a, cf_kv_list *l, char *name, char *value)
{
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        l->items = cf_arena_realloc(a, l->items, l->cap * sizeof(cf_kv), cap * sizeof(cf_kv));
        if (!l->items)
            abort();
        l->cap = cap;
    }
    l->items[l->len++] = (cf_kv){name, value};
}

void cf_kv_set(cf_arena *a, cf_kv_list *l, char *name, char *value)
{
    size_t o = 0;
    for (size_t i = 0; i < l->len; i++)
        if (strcasecmp(l->items[i].name, name) != 0)
            l->items[o++] = l->items[i];
    l->len = o;
    cf_kv_push(a, l, name, value);
}

const char *cf_kv_get(const cf_kv_list *l, const char *name, bool nocase)
{
    for (size_t i = 0; i < l->len; i++)
        if ((nocase ? strcasecmp : strcmp)(l->items[i].name, name) == 0)
            return l->items[i].value;
    return NULL;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

long cf_url_decode(char *s, size_t len, int mode)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            int h = i + 2 < len ? hexval((unsigned char)s[i + 1]) : -1;
            int l = h >= 0 ? hexval((unsigned char)s[i + 2]) : -1;
            if (l >= 0) {
                c = (char)(h * 16 + l);
                i += 2;
            } else if (mode != CF_URL_FORM) {
                return -1;
            }
        } else if (mode == CF_URL_FORM && c == '+') {
            c = ' ';
        }
        s[o++] = c;
    }
    s[o] = 0;
    return (long)o;
}

const char *cf_reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return status < 200 ? "Informational" : status < 300 ? "Success"
                    : status < 400 ? "Redirection" : status < 500 ? "Client Error" : "Server Error";
    }
}
