/*
 * cors.c — Cross-Origin Resource Sharing, as the Fetch standard's CORS
 * protocol has a server answer: per app, group or route, allowed origins
 * (a list, "*", or a predicate), methods, request headers, exposed
 * headers, credentials and a preflight max age.
 *
 * The pipeline calls cf_cors_apply once the response is final (error pages
 * included), before the after_request hooks, and lets an automatic
 * OPTIONS answer a preflight with 204. Refusing is leaving the CORS
 * headers out: the browser then keeps the response from the page, which
 * is all a server can do (and more useful to the page's author than an
 * error page would be, since the browser reports why).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app/req.h"

struct cf_cors {
    char **origins;
    size_t norigins;
    bool any_origin;
    cf_cors_origin_fn allow_origin;
    void *allow_origin_arg;
    char *methods; /* NULL: those the URL routes */
    bool any_method;
    char *allow_headers; /* NULL: any asked for */
    char *expose_headers;
    bool credentials;
    int64_t max_age;
};

void cf_cors_free(struct cf_cors *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->norigins; i++)
        free(c->origins[i]);
    free(c->origins);
    free(c->methods);
    free(c->allow_headers);
    free(c->expose_headers);
    free(c);
}

static bool bad_value(const char *s) { return s && strpbrk(s, "\r\n") != NULL; }

static char *dup_or_null(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    *oom |= !d;
    return d;
}

/* A copy of opts, or NULL with *rc set. */
static struct cf_cors *config_new(const cf_cors_opts *o, int *rc)
{
    *rc = CF_EINVAL;
    bool any_origin_given = o->allow_origin || (o->origins && o->origins[0]);
    if (!any_origin_given || o->max_age < 0 || bad_value(o->methods) ||
        bad_value(o->allow_headers) || bad_value(o->expose_headers))
        return NULL;
    size_t n = 0;
    while (o->origins && o->origins[n])
        if (bad_value(o->origins[n++]))
            return NULL;
    *rc = CF_ENOMEM;
    struct cf_cors *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    bool oom = false;
    c->origins = calloc(n ? n : 1, sizeof *c->origins);
    oom |= !c->origins;
    for (size_t i = 0; i < n && !oom; i++) {
        c->any_origin |= strcmp(o->origins[i], "*") == 0;
        c->origins[c->norigins] = strdup(o->origins[i]);
        oom |= !c->origins[c->norigins++];
    }
    c->allow_origin = o->allow_origin;
    c->allow_origin_arg = o->allow_origin_arg;
    c->any_method = o->methods && strcmp(o->methods, "*") == 0;
    c->methods = c->any_method ? NULL : dup_or_null(o->methods, &oom);
    bool any_header = !o->allow_headers || strcmp(o->allow_headers, "*") == 0;
    c->allow_headers = any_header ? NULL : dup_or_null(o->allow_headers, &oom);
    c->expose_headers = dup_or_null(o->expose_headers, &oom);
    c->credentials = o->credentials;
    c->max_age = o->max_age;
    if (oom) {
        cf_cors_free(c);
        return NULL;
    }
    *rc = 0;
    return c;
}

static int set_config(struct cf_cors **slot, const cf_cors_opts *opts)
{
    struct cf_cors *c = NULL;
    if (opts) {
        int rc;
        if (!(c = config_new(opts, &rc)))
            return rc;
    }
    cf_cors_free(*slot);
    *slot = c;
    return 0;
}

int cf_cors_add(cf_group *group, const cf_cors_opts *opts)
{
    return group ? set_config(&group->cors, opts) : CF_EINVAL;
}

int cf_route_set_cors(cf_route *route, const cf_cors_opts *opts)
{
    return route ? set_config(&route->cors, opts) : CF_EINVAL;
}

bool cf_cors_preflight(cf_req *rq)
{
    return strcmp(rq->x.method, "OPTIONS") == 0 && cf_header(rq, "Origin") &&
           cf_header(rq, "Access-Control-Request-Method");
}

static struct cf_cors *config_of_route(const cf_route *r)
{
    if (r->cors)
        return r->cors;
    for (cf_group *g = r->group; g; g = g->parent)
        if (g->cors)
            return g->cors;
    return NULL;
}

/* The config covering rq: its route's, or for a preflight the route of
 * the method it asks about, or (nothing routed) the app's. */
static struct cf_cors *config_for(cf_req *rq)
{
    if (rq->route)
        return config_of_route(rq->route);
    if (!rq->rule)
        return rq->app->root.cors;
    cf_route *r = NULL;
    const char *m = cf_header(rq, "Access-Control-Request-Method");
    unsigned allowed;
    if (m && strcmp(rq->x.method, "OPTIONS") == 0)
        r = cf_app_find_route(rq->rule, m, strlen(m), &allowed);
    if (!r)
        r = cf_rule_data(rq->rule); /* a 405: any route of the URL says */
    return r ? config_of_route(r) : rq->app->root.cors;
}

int cf_cors_options_status(cf_req *rq)
{
    return cf_cors_preflight(rq) && config_for(rq) ? 204 : 200;
}

/* Is tok (len bytes) an item of the comma-separated list? */
static bool list_has(const char *list, const char *tok, size_t len, bool icase)
{
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *s = p;
        while (*p && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - s) == len && (icase ? strncasecmp(s, tok, len) : strncmp(s, tok, len)) == 0)
            return true;
    }
    return false;
}

static bool origin_allowed(struct cf_cors *c, cf_req *rq, const char *origin)
{
    if (c->any_origin)
        return true;
    for (size_t i = 0; i < c->norigins; i++)
        if (strcmp(c->origins[i], origin) == 0)
            return true;
    return c->allow_origin && c->allow_origin(rq, origin, c->allow_origin_arg);
}

/* Every header the preflight asks for is allowed? */
static bool headers_allowed(struct cf_cors *c, const char *asked, const char **which, size_t *wlen)
{
    if (!c->allow_headers || !asked)
        return true;
    const char *p = asked;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *s = p;
        while (*p && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        if (p > s && !list_has(c->allow_headers, s, (size_t)(p - s), true)) {
            *which = s;
            *wlen = (size_t)(p - s);
            return false;
        }
        while (*p && *p != ',')
            p++;
    }
    return true;
}

static void add_vary_origin(cf_req *rq)
{
    const char *vary = cf_response_header(rq, "Vary");
    if (!vary)
        cf_set_header(rq, "Vary", "Origin");
    else if (!list_has(vary, "*", 1, false) && !list_has(vary, "Origin", 6, true))
        cf_set_header(rq, "Vary", cf_sprintf(rq, "%s, Origin", vary));
}

/* The preflight's own checks: the method (routed on this URL, and
 * allowed) and the request headers. Answers the Allow-* headers, or logs
 * why not and adds nothing. */
static bool preflight(struct cf_cors *c, cf_req *rq)
{
    const char *m = cf_header(rq, "Access-Control-Request-Method");
    unsigned allowed = 0;
    bool routed = rq->rule && cf_app_find_route(rq->rule, m, strlen(m), &allowed);
    if (!routed || (c->methods && !list_has(c->methods, m, strlen(m), false))) {
        cf_log(rq, CF_LOG_DEBUG, "CORS preflight refused: method %s is not %s", m,
               routed ? "allowed" : "routed on this URL");
        return false;
    }
    const char *asked = cf_header(rq, "Access-Control-Request-Headers"), *bad = NULL;
    size_t blen = 0;
    if (!headers_allowed(c, asked, &bad, &blen)) {
        cf_log(rq, CF_LOG_DEBUG, "CORS preflight refused: request header %.*s is not allowed",
               (int)blen, bad);
        return false;
    }
    if (c->methods) {
        cf_set_header(rq, "Access-Control-Allow-Methods", c->methods);
    } else if (c->any_method) {
        cf_set_header(rq, "Access-Control-Allow-Methods", m);
    } else {
        char list[160];
        cf_allow_header(rq->allowed, cf_rule_data(rq->rule), list, sizeof list);
        cf_set_header(rq, "Access-Control-Allow-Methods", list);
    }
    if (asked && *asked)
        cf_set_header(rq, "Access-Control-Allow-Headers", c->allow_headers ? c->allow_headers : asked);
    if (c->max_age > 0)
        cf_set_header(rq, "Access-Control-Max-Age", cf_sprintf(rq, "%lld", (long long)c->max_age));
    return true;
}

void cf_cors_apply(cf_req *rq)
{
    struct cf_cors *c = config_for(rq);
    if (!c)
        return;
    add_vary_origin(rq);
    const char *origin = cf_header(rq, "Origin");
    if (!origin)
        return; /* not a CORS request (same origin, or not a browser) */
    if (!origin_allowed(c, rq, origin)) {
        cf_log(rq, CF_LOG_DEBUG, "CORS: origin %s is not allowed", origin);
        return;
    }
    /* A preflight refused by a hook (401, say) is answered as any response:
     * the page may read why, the browser fails the request all the same. */
    int st = cf_req_status(rq);
    bool is_preflight = cf_cors_preflight(rq) && st >= 200 && st < 300;
    if (is_preflight && !preflight(c, rq))
        return;
    /* "*" cannot carry credentials: browsers then need the origin itself. */
    cf_set_header(rq, "Access-Control-Allow-Origin", c->any_origin && !c->credentials ? "*" : origin);
    if (c->credentials)
        cf_set_header(rq, "Access-Control-Allow-Credentials", "true");
    if (c->expose_headers && !is_preflight)
        cf_set_header(rq, "Access-Control-Expose-Headers", c->expose_headers);
}
