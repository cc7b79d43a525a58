/*
 * request.c — the request object: creation and recycling, taking over a
 * parsed head (with path decoding and its safety checks), routing, and the
 * public accessors (args, headers, cookies, form, JSON, parameters, g,
 * url_for, arena allocation).
 */
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "app/req.h"

#define FIRST_BLOCK 8192 /* most requests never need more arena than this */
#define POOL_MAX 1024

static __thread cf_req *req_pool[POOL_MAX];
static __thread size_t req_pool_len;

static void scope_released(cf_scope *s);
static void scope_crashed(cf_scope *s, cf_task *t);
static void on_deadline(cf_timer *t);

cf_req *cf_req_new(cf_app *app, const cf_exchange_ops *ops, void *proto)
{
    cf_req *rq = req_pool_len ? req_pool[--req_pool_len] : malloc(sizeof *rq + FIRST_BLOCK);
    if (!rq)
        return NULL;
    memset(rq, 0, sizeof *rq);
    cf_arena_init(&rq->arena, (char *)(rq + 1), FIRST_BLOCK);
    rq->app = app;
    rq->x.ops = ops;
    rq->x.proto = proto;
    rq->x.arena = &rq->arena;
    rq->scope.arena = &rq->arena;
    rq->scope.release = scope_released;
    rq->scope.crashed = scope_crashed;
    cf_timer_init(&rq->deadline, on_deadline);
    rq->x.start_ns = cf_now_ns();
    return rq;
}

void cf_req_free(cf_req *rq)
{
    if (!rq)
        return;
    cf_arena_reset(&rq->arena);
    if (req_pool_len < POOL_MAX)
        req_pool[req_pool_len++] = rq;
    else
        free(rq);
}

void cf_req_pool_drain(void)
{
    while (req_pool_len)
        free(req_pool[--req_pool_len]);
}

static void on_deadline(cf_timer *t)
{
    cf_req *rq = (cf_req *)((char *)t - offsetof(cf_req, deadline));
    rq->timed_out = true; /* the pipeline answers 503 (pipeline.c) */
    cf_task_cancel(&rq->main);
}

static void scope_crashed(cf_scope *s, cf_task *t)
{
    (void)t;
    cf_req *rq = (cf_req *)((char *)s - offsetof(cf_req, scope));
    cf_timer_stop(&rq->deadline);
    cf_app_services_crashed(rq); /* e.g. database connections go back, rolled back */
    cf_multipart_crashed(rq);    /* its deferred unlinks never run */
    if (rq->x.ops->crashed)
        rq->x.ops->crashed(&rq->x);
}

static void scope_released(cf_scope *s)
{
    cf_req *rq = (cf_req *)((char *)s - offsetof(cf_req, scope));
    cf_timer_stop(&rq->deadline);
    if (rq->x.ops->finished)
        rq->x.ops->finished(&rq->x);
    cf_req_free(rq);
}

cf_scope *cf__req_scope(cf_req *rq) { return &rq->scope; }

void cf_req_cancel(cf_req *rq)
{
    if (rq->main.co || rq->main.state == CF_TASK_READY)
        cf_task_cancel(&rq->main);
}

/* ---- memory --------------------------------------------------------------- */

static void *arena_alloc_or_die(cf_req *rq, size_t size)
{
    void *p = cf_arena_alloc(&rq->arena, size);
    if (!p) {
        fprintf(stderr, "carafe: out of memory for a request\n");
        abort();
    }
    return p;
}

void *cf_alloc(cf_req *rq, size_t size) { return arena_alloc_or_die(rq, size); }

static char *arena_strndup(cf_req *rq, const char *s, size_t n)
{
    char *p = arena_alloc_or_die(rq, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *cf_strdup(cf_req *rq, const char *s) { return s ? arena_strndup(rq, s, strlen(s)) : NULL; }

char *cf_vsprintf(cf_req *rq, size_t *len, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    size_t size = n > 0 ? (size_t)n + 1 : 1;
    char *p = arena_alloc_or_die(rq, size);
    vsnprintf(p, size, fmt, again);
    va_end(again);
    if (len)
        *len = size - 1;
    return p;
}

char *cf_sprintf(cf_req *rq, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = cf_vsprintf(rq, NULL, fmt, ap);
    va_end(ap);
    return p;
}

void cf_defer(cf_req *rq, void (*fn)(void *), void *ptr)
{
    if (cf_arena_defer_add(&rq->arena, fn, ptr) != 0)
        abort();
}

/* ---- decoding ------------------------------------------------------------- */

void cf_parse_urlencoded(cf_req *rq, const char *s, size_t len, cf_kv_list *out)
{
    const char *end = s + len;
    while (s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *stop = amp ? amp : end;
        if (stop > s) {
            const char *eq = memchr(s, '=', (size_t)(stop - s));
            const char *kend = eq ? eq : stop;
            char *k = arena_strndup(rq, s, (size_t)(kend - s));
            char *v = eq ? arena_strndup(rq, eq + 1, (size_t)(stop - eq - 1)) : arena_strndup(rq, "", 0);
            /* Malformed escapes stay literal (as in Werkzeug): never fails. */
            cf_url_decode(k, strlen(k), CF_URL_FORM);
            cf_url_decode(v, strlen(v), CF_URL_FORM);
            cf_kv_add(rq, out, k, v);
        }
        if (!amp)
            break; /* stop + 1 would point past the end: undefined in C */
        s = amp + 1;
    }
}

/* ---- taking over the head ------------------------------------------------ */

static bool content_type_is(cf_req *rq, const char *type, bool json_suffix);

void cf_req_route(cf_req *rq)
{
    /* "GET /path" for crash reports; built by hand, it is made per request. */
    size_t mlen = strlen(rq->x.method), plen = strlen(rq->x.path);
    char *label = arena_alloc_or_die(rq, mlen + plen + 2);
    memcpy(label, rq->x.method, mlen);
    label[mlen] = ' ';
    memcpy(label + mlen + 1, rq->x.path, plen + 1);
    rq->label = label;

    if (rq->x.refused) { /* a path refused by the protocol is never matched */
        rq->route = NULL;
        rq->rule = NULL;
        rq->route_status = rq->x.refused;
        return;
    }
    int m = cf_router_match(rq->app->router, rq->x.path, strlen(rq->x.path), &rq->match);
    rq->route = NULL;
    rq->rule = NULL;
    if (m == 1) {
        rq->rule = rq->match.rule;
        rq->route = cf_app_find_route(rq->rule, rq->x.method, strlen(rq->x.method), &rq->allowed);
        if (!rq->route && strcmp(rq->x.method, "OPTIONS") != 0)
            rq->route_status = 405;
    } else if (m == 2) {
        rq->route_status = 308;
    } else {
        rq->route_status = 404;
    }
    /* Multipart bodies are parsed as they arrive (multipart.c); a threaded
     * handler cannot suspend to read, so it gets its body whole. */
    rq->x.body_streamed = rq->route && (rq->route->stream_body ||
                                        (!rq->route->threaded && content_type_is(rq, "multipart/form-data", false)));
}

size_t cf_req_max_body(cf_req *rq)
{
    if (rq->route && rq->route->max_body)
        return rq->route->max_body;
    return (size_t)rq->app->opt[CF_OPT_MAX_BODY];
}

/* ---- accessors ---------------------------------------------------------- */

const char *cf_method(cf_req *rq) { return rq->x.method; }
const char *cf_path(cf_req *rq) { return rq->x.path; }
const char *cf_query_string(cf_req *rq) { return rq->x.query ? rq->x.query : ""; }

static const cf_kv_list *args_of(cf_req *rq)
{
    if (!rq->args_parsed) {
        rq->args_parsed = true;
        if (rq->x.query)
            cf_parse_urlencoded(rq, rq->x.query, strlen(rq->x.query), &rq->args);
    }
    return &rq->args;
}

/* Every value of a (possibly repeated) field, in order: Werkzeug's getlist. */
static const char **values_of(cf_req *rq, const cf_kv_list *l, const char *name, size_t *n)
{
    size_t count = 0;
    for (size_t i = 0; i < l->len; i++)
        count += strcmp(l->items[i].name, name) == 0;
    const char **out = arena_alloc_or_die(rq, (count + 1) * sizeof *out);
    size_t o = 0;
    for (size_t i = 0; i < l->len; i++)
        if (strcmp(l->items[i].name, name) == 0)
            out[o++] = l->items[i].value;
    out[o] = NULL;
    if (n)
        *n = count;
    return out;
}

static bool field_at(const cf_kv_list *l, size_t i, const char **name, const char **value)
{
    if (i >= l->len)
        return false;
    *name = l->items[i].name;
    *value = l->items[i].value;
    return true;
}

const char *cf_arg(cf_req *rq, const char *name) { return cf_kv_get(args_of(rq), name, false); }

const char **cf_arg_list(cf_req *rq, const char *name, size_t *n)
{
    return values_of(rq, args_of(rq), name, n);
}

bool cf_arg_at(cf_req *rq, size_t i, const char **name, const char **value)
{
    return field_at(args_of(rq), i, name, value);
}

const char *cf_header(cf_req *rq, const char *name)
{
    for (size_t i = 0; i < rq->x.nfields; i++)
        if (strcasecmp(rq->x.fields[i].name, name) == 0)
            return rq->x.fields[i].value;
    return NULL;
}

bool cf_header_at(cf_req *rq, size_t i, const char **name, const char **value)
{
    if (i >= rq->x.nfields)
        return false;
    *name = rq->x.fields[i].name;
    *value = rq->x.fields[i].value;
    return true;
}

const char *cf_cookie(cf_req *rq, const char *name)
{
    if (!rq->cookies_parsed) {
        rq->cookies_parsed = true;
        for (size_t i = 0; i < rq->x.nfields; i++) {
            if (strcasecmp(rq->x.fields[i].name, "Cookie") != 0)
                continue;
            const char *p = rq->x.fields[i].value;
            while (*p) {
                while (*p == ' ' || *p == ';')
                    p++;
                const char *eq = strchr(p, '='), *semi = strchr(p, ';');
                if (!semi)
                    semi = p + strlen(p);
                if (!eq || eq > semi) {
                    p = semi;
                    continue;
                }
                const char *v = eq + 1, *vend = semi;
                if (vend - v >= 2 && *v == '"' && vend[-1] == '"')
                    v++, vend--;
                cf_kv_add(rq, &rq->cookies, arena_strndup(rq, p, (size_t)(eq - p)),
                          arena_strndup(rq, v, (size_t)(vend - v)));
                p = semi;
            }
        }
    }
    return cf_kv_get(&rq->cookies, name, false);
}

static bool content_type_is(cf_req *rq, const char *type, bool json_suffix)
{
    const char *ct = cf_header(rq, "Content-Type");
    if (!ct)
        return false;
    size_t n = strcspn(ct, "; \t");
    if (strlen(type) == n && strncasecmp(ct, type, n) == 0)
        return true;
    return json_suffix && n >= 5 && strncasecmp(ct + n - 5, "+json", 5) == 0;
}

int cf_form_parse(cf_req *rq)
{
    if (rq->form_parsed)
        return rq->form_error;
    rq->form_parsed = true;
    if (content_type_is(rq, "application/x-www-form-urlencoded", false)) {
        size_t len;
        const char *body = cf_body(rq, &len);
        cf_parse_urlencoded(rq, body, len, &rq->form);
    } else if (content_type_is(rq, "multipart/form-data", false)) {
        int rc = cf_multipart_parse_all(rq);
        if (rc < 0) {
            rq->form_error = rc;
            rq->form.len = 0; /* what came before the error is not the form */
            rq->nfiles = 0;
            if (rq->files)
                rq->files[0] = NULL;
            cf_abort(rq, rc == CF_ETOOBIG ? 413 : rc == CF_EINVAL ? 400 : rc == CF_ETIMEDOUT ? 408 : 500);
        }
    }
    return rq->form_error;
}

static const cf_kv_list *form_of(cf_req *rq)
{
    cf_form_parse(rq);
    return &rq->form;
}

const char *cf_form(cf_req *rq, const char *name) { return cf_kv_get(form_of(rq), name, false); }

const char **cf_form_list(cf_req *rq, const char *name, size_t *n)
{
    return values_of(rq, form_of(rq), name, n);
}

bool cf_form_at(cf_req *rq, size_t i, const char **name, const char **value)
{
    return field_at(form_of(rq), i, name, value);
}

long cf_body_read(cf_req *rq, void *buf, size_t cap)
{
    if (!rq->x.body_streamed) {
        size_t left = rq->x.body_len - rq->body_pos;
        size_t n = left < cap ? left : cap;
        if (n)
            memcpy(buf, rq->x.body + rq->body_pos, n);
        rq->body_pos += n;
        return (long)n;
    }
    if (!cf_on_loop_thread() || !cf_task_current())
        return CF_EPERM;
    if (rq->x.body_done || cap == 0)
        return 0;
    long n = rq->x.ops->body_read(&rq->x, buf, cap > LONG_MAX ? LONG_MAX : cap);
    if (n < 0) {
        rq->error = (int)n;
        rq->errmsg = rq->x.errmsg ? rq->x.errmsg : cf_strerror((int)n);
    }
    return n;
}

/* A streamed body taken whole after all: the rest goes to the arena (the
 * protocol enforces the route's limit). */
static void read_rest(cf_req *rq)
{
    size_t cap = 0, len = 0;
    char *buf = NULL;
    for (;;) {
        if (len + 1024 > cap) {
            size_t ncap = cap ? cap * 2 : 16384;
            buf = cf_arena_realloc(&rq->arena, buf, cap, ncap);
            if (!buf)
                abort();
            cap = ncap;
        }
        long n = cf_body_read(rq, buf + len, cap - len - 1);
        if (n <= 0) {
            if (n < 0)
                len = 0;
            break;
        }
        len += (size_t)n;
    }
    buf[len] = 0;
    rq->x.body = buf;
    rq->x.body_len = len;
}

const char *cf_body(cf_req *rq, size_t *len)
{
    if (rq->x.body_streamed && !rq->x.body_done && !rq->x.body)
        read_rest(rq);
    if (len)
        *len = rq->x.body_len;
    return rq->x.body ? rq->x.body : "";
}

static void decref_json(void *p) { json_decref(p); }

json_t *cf_get_json(cf_req *rq)
{
    if (rq->json_parsed)
        return rq->json;
    rq->json_parsed = true;
    if (!content_type_is(rq, "application/json", true)) {
        rq->errmsg = "expected a JSON body (Content-Type: application/json)";
        return NULL;
    }
    size_t body_len;
    cf_body(rq, &body_len);
    if (body_len == 0) {
        rq->errmsg = "the JSON body is empty";
        return NULL;
    }
    json_error_t err;
    rq->json = json_loadb(rq->x.body, body_len, JSON_DECODE_ANY, &err);
    if (!rq->json) {
        rq->errmsg = cf_sprintf(rq, "invalid JSON at line %d, column %d: %s", err.line,
                                err.column, err.text);
        return NULL;
    }
    cf_defer(rq, decref_json, rq->json);
    return rq->json;
}

const char *cf_param(cf_req *rq, const char *name)
{
    for (size_t i = 0; i < rq->match.nparams; i++) {
        if (strcmp(rq->match.params[i].name, name) != 0)
            continue;
        if (!rq->param_values)
            rq->param_values = memset(arena_alloc_or_die(rq, CF_MAX_PARAMS * sizeof(char *)), 0,
                                      CF_MAX_PARAMS * sizeof(char *));
        if (!rq->param_values[i])
            rq->param_values[i] =
                arena_strndup(rq, rq->match.params[i].value, rq->match.params[i].len);
        return rq->param_values[i];
    }
    return NULL;
}

int64_t cf_param_int(cf_req *rq, const char *name)
{
    const char *v = cf_param(rq, name);
    return v ? strtoll(v, NULL, 10) : 0;
}

double cf_param_float(cf_req *rq, const char *name)
{
    const char *v = cf_param(rq, name);
    return v ? strtod(v, NULL) : 0.0;
}

const char *cf_endpoint(cf_req *rq) { return rq->route ? rq->route->name : NULL; }

void cf_g_set(cf_req *rq, const char *key, void *value)
{
    for (cf_gslot *s = rq->g; s; s = s->next)
        if (strcmp(s->key, key) == 0) {
            s->value = value;
            return;
        }
    cf_gslot *s = arena_alloc_or_die(rq, sizeof *s);
    s->key = cf_strdup(rq, key);
    s->value = value;
    s->next = rq->g;
    rq->g = s;
}

void *cf_g_get(cf_req *rq, const char *key)
{
    for (cf_gslot *s = rq->g; s; s = s->next)
        if (strcmp(s->key, key) == 0)
            return s->value;
    return NULL;
}

/* ---- url_for ---------------------------------------------------------------- */

typedef struct url_args {
    const char **pairs;
    size_t n;
    bool *used;
} url_args;

static const char *url_arg(void *ctx, const char *name)
{
    url_args *a = ctx;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->pairs[2 * i], name) == 0) {
            a->used[i] = true;
            return a->pairs[2 * i + 1];
        }
    return NULL;
}

static size_t query_escape(char *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            if (out)
                out[o] = (char)c;
            o++;
        } else {
            if (out) {
                out[o] = '%';
                out[o + 1] = hex[c >> 4];
                out[o + 2] = hex[c & 15];
            }
            o += 3;
        }
    }
    return o;
}

char *cf_url_for(cf_req *rq, const char *name, ...)
{
    const char *pairs[2 * 32];
    size_t n = 0;
    va_list ap;
    va_start(ap, name);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        if (n < 32 && v) {
            pairs[2 * n] = k;
            pairs[2 * n + 1] = v;
            n++;
        }
    }
    va_end(ap);
    return cf_url_for_pairs(rq, name, pairs, n);
}

char *cf_url_for_pairs(cf_req *rq, const char *name, const char **pairs, size_t n)
{
    cf_route *r = name ? cf_app_route_by_name(rq->app, name) : NULL;
    if (!r)
        return NULL;
    bool stack_used[32] = {0};
    bool *used = n <= 32 ? stack_used : arena_alloc_or_die(rq, n * sizeof *used);
    for (size_t i = 0; i < n; i++)
        used[i] = false;
    url_args a = {pairs, n, used};
    int len = cf_rule_build(r->rule, url_arg, &a, NULL, 0);
    if (len < 0)
        return NULL;
    size_t qlen = 0;
    for (size_t i = 0; i < n; i++)
        if (!used[i])
            qlen += 2 + query_escape(NULL, pairs[2 * i]) + query_escape(NULL, pairs[2 * i + 1]);
    char *out = arena_alloc_or_die(rq, (size_t)len + qlen + 1);
    for (size_t i = 0; i < n; i++)
        used[i] = false;
    cf_rule_build(r->rule, url_arg, &a, out, (size_t)len + 1);
    size_t o = (size_t)len;
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (used[i])
            continue;
        out[o++] = first ? '?' : '&';
        first = false;
        o += query_escape(out + o, pairs[2 * i]);
        out[o++] = '=';
        o += query_escape(out + o, pairs[2 * i + 1]);
    }
    out[o] = 0;
    return out;
}
