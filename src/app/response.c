/*
 * response.c — building the response: bodies (text, HTML, JSON, redirect),
 * status, headers, cookies, abort/fail, and the state hooks read.
 *
 * The response stays in the request (arena) until the pipeline hands it
 * to the transport, so after_request hooks can still change anything.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app/req.h"

const char *cf_strerror(int code)
{
    switch (code) {
    case CF_OK: return "success";
    case CF_EINVAL: return "invalid argument";
    case CF_ENOMEM: return "out of memory";
    case CF_ECANCELED: return "cancelled";
    case CF_ETIMEDOUT: return "timed out";
    case CF_EPERM: return "not allowed here (not in a task, or on a pool thread)";
    case CF_EFAIL: return "failed";
    case CF_ENOTFOUND: return "not found";
    case CF_EJSON: return "invalid JSON";
    case CF_ECLOSED: return "the WebSocket is closed";
    case CF_EDNS: return "could not resolve the host name";
    case CF_ECONNREFUSED: return "connection refused";
    case CF_ETLS: return "TLS failure";
    case CF_ETOOBIG: return "response too large";
    case CF_EHTTPSTATUS: return "HTTP error status";
    case CF_ENETWORK: return "network error";
    case CF_EDB: return "database error";
    case CF_EDBSYNTAX: return "SQL syntax error or unknown table/column";
    case CF_EUNIQUE: return "unique constraint violated";
    case CF_EFOREIGNKEY: return "foreign key constraint violated";
    case CF_ENOTNULL: return "NOT NULL constraint violated";
    case CF_ECONSTRAINT: return "constraint violated";
    case CF_EDBCONN: return "database connection lost or refused";
    case CF_EDBURL: return "DATABASE_URL missing or malformed";
    default: return "unknown error";
    }
}

static int valid_status(int status) { return status >= 100 && status <= 999; }

/* The whole response at once; body is already request memory. */
static void set_response(cf_req *rq, int status, const char *content_type, char *body, size_t len)
{
    rq->x.status = status;
    rq->x.content_type = content_type;
    rq->x.resp_body = body;
    rq->x.resp_len = len;
    rq->responded = true;
    rq->abort_status = 0;
    rq->stream_fn = NULL;
    rq->x.stream = rq->x.stream_sized = rq->x.stream_events = false;
}

void cf_send(cf_req *rq, int status, const char *content_type, const void *body, size_t len)
{
    if (!valid_status(status)) {
        cf_fail(rq, "invalid status code %d", status);
        return;
    }
    char *copy = cf_alloc(rq, len + 1);
    if (len)
        memcpy(copy, body, len);
    copy[len] = 0;
    set_response(rq, status, content_type ? cf_strdup(rq, content_type) : NULL, copy, len);
}

void cf_text(cf_req *rq, int status, const char *text)
{
    cf_send(rq, status, "text/plain; charset=utf-8", text, text ? strlen(text) : 0);
}

void cf_textf(cf_req *rq, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t len;
    char *buf = cf_vsprintf(rq, &len, fmt, ap);
    va_end(ap);
    /* Built in place rather than copied again through cf_send. */
    set_response(rq, valid_status(status) ? status : 500, "text/plain; charset=utf-8", buf, len);
}

void cf_html(cf_req *rq, int status, const char *html)
{
    cf_send(rq, status, "text/html; charset=utf-8", html, html ? strlen(html) : 0);
}

void cf_json_value(cf_req *rq, int status, json_t *value)
{
    if (!value) {
        cf_fail(rq, "cf_json_value: no JSON value");
        return;
    }
    /* Small documents (the common case) are dumped once into a stack
     * buffer; larger ones are dumped again straight into their final place. */
    const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
    char probe[1024];
    size_t len = json_dumpb(value, probe, sizeof probe, flags);
    char *body = NULL;
    if (len && len <= sizeof probe) {
        body = cf_alloc(rq, len + 1);
        memcpy(body, probe, len);
    } else if (len) {
        body = cf_alloc(rq, len + 1);
        len = json_dumpb(value, body, len, flags);
    }
    json_decref(value);
    if (!body || !len) {
        cf_fail(rq, "cannot serialize the JSON response");
        return;
    }
    body[len] = 0;
    set_response(rq, valid_status(status) ? status : 500, "application/json", body, len);
}

void cf_json(cf_req *rq, int status, const char *fmt, ...)
{
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    /* Without an error record jansson skips formatting one (a snprintf per
     * call); only a failed pack is repeated to learn why. */
    json_t *v = json_vpack_ex(NULL, 0, fmt, ap);
    va_end(ap);
    if (!v) {
        json_error_t err;
        json_decref(json_vpack_ex(&err, 0, fmt, again)); /* NULL again */
        va_end(again);
        cf_fail(rq, "cf_json: bad pack format or value: %s", err.text);
        return;
    }
    va_end(again);
    cf_json_value(rq, status, v);
}

void cf_redirect(cf_req *rq, int status, const char *location)
{
    if (status != 301 && status != 302 && status != 303 && status != 307 && status != 308) {
        cf_fail(rq, "cf_redirect: %d is not a redirect status", status);
        return;
    }
    if (cf_set_header(rq, "Location", location) != 0) {
        cf_fail(rq, "cf_redirect: invalid location");
        return;
    }
    char *body = cf_sprintf(rq, "Redirecting to %s\n", location);
    cf_send(rq, status, "text/plain; charset=utf-8", body, strlen(body));
}

void cf_abort(cf_req *rq, int status)
{
    if (status < 400 || status > 599)
        status = 500;
    rq->abort_status = status;
    rq->responded = false;
}

void cf_fail(cf_req *rq, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rq->errmsg = cf_vsprintf(rq, NULL, fmt, ap);
    va_end(ap);
    rq->error = CF_EFAIL;
    cf_abort(rq, 500);
}

static bool header_safe(const char *s, bool name)
{
    if (!s || (name && !*s))
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\r' || *p == '\n')
            return false;
        if (name && (*p <= ' ' || *p == ':' || *p >= 0x7f))
            return false;
    }
    return true;
}

int cf_add_header(cf_req *rq, const char *name, const char *value)
{
    if (!header_safe(name, true) || !header_safe(value, false))
        return CF_EINVAL;
    cf_kv_add(rq, &rq->x.resp_headers, cf_strdup(rq, name), cf_strdup(rq, value));
    return 0;
}

int cf_set_header(cf_req *rq, const char *name, const char *value)
{
    if (!header_safe(name, true) || !header_safe(value, false))
        return CF_EINVAL;
    cf_kv_list *l = &rq->x.resp_headers;
    size_t o = 0;
    for (size_t i = 0; i < l->len; i++)
        if (strcasecmp(l->items[i].name, name) != 0)
            l->items[o++] = l->items[i];
    l->len = o;
    return cf_add_header(rq, name, value);
}

const char *cf_response_header(cf_req *rq, const char *name)
{
    if (strcasecmp(name, "Content-Type") == 0 && rq->x.content_type &&
        !cf_kv_get(&rq->x.resp_headers, name, true))
        return rq->x.content_type;
    return cf_kv_get(&rq->x.resp_headers, name, true);
}

void cf_set_status(cf_req *rq, int status)
{
    if (valid_status(status))
        rq->x.status = status;
}

static bool cookie_token_ok(const char *s, bool value)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p <= ' ' || *p >= 0x7f || *p == ';' || *p == ',' || *p == '"' || *p == '\\')
            return false;
        if (!value && (*p == '=' || *p == '(' || *p == ')' || *p == '<' || *p == '>' ||
                       *p == '@' || *p == ':' || *p == '/' || *p == '[' || *p == ']' ||
                       *p == '?' || *p == '{' || *p == '}'))
            return false;
    }
    return true;
}

int cf_set_cookie(cf_req *rq, const char *name, const char *value, const cf_cookie_opts *o)
{
    if (!name || !*name || !value || !cookie_token_ok(name, false) || !cookie_token_ok(value, true))
        return CF_EINVAL;
    cf_cookie_opts d = {0};
    if (!o)
        o = &d;
    if ((o->path && !header_safe(o->path, false)) || (o->domain && !header_safe(o->domain, false)) ||
        (o->same_site && !header_safe(o->same_site, false)))
        return CF_EINVAL;
    char maxage[48] = "";
    if (o->max_age > 0)
        snprintf(maxage, sizeof maxage, "; Max-Age=%lld", (long long)o->max_age);
    else if (o->max_age < 0)
        snprintf(maxage, sizeof maxage, "; Max-Age=0");
    char *v = cf_sprintf(rq, "%s=%s; Path=%s%s%s%s%s%s%s%s", name, value, o->path ? o->path : "/",
                         maxage, o->domain ? "; Domain=" : "", o->domain ? o->domain : "",
                         o->secure ? "; Secure" : "", o->http_only ? "; HttpOnly" : "",
                         o->same_site ? "; SameSite=" : "", o->same_site ? o->same_site : "");
    cf_kv_add(rq, &rq->x.resp_headers, "Set-Cookie", v);
    return 0;
}

bool cf_responded(cf_req *rq) { return rq->responded || rq->abort_status; }
int cf_req_status(cf_req *rq) { return rq->abort_status ? rq->abort_status : rq->x.status; }
const char *cf_response_body(cf_req *rq, size_t *len)
{
    if (len)
        *len = rq->x.resp_len;
    return rq->x.resp_body ? rq->x.resp_body : "";
}
int cf_req_error(cf_req *rq) { return rq->error; }
const char *cf_errmsg(cf_req *rq) { return rq->errmsg ? rq->errmsg : ""; }
