/*
 * app.c — building an application: the app and its groups, routes and
 * method views, hooks, error handlers, middleware and options.
 *
 * All of this runs at start-up, so it allocates freely and stops the
 * program with a clear message on a mistake (a bad rule, a duplicate
 * route): a web app that silently lacks a route is worse than one that
 * refuses to start.
 */
#include "app/app.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void cf_setup_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "carafe: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        cf_setup_fail("out of memory");
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        cf_setup_fail("out of memory");
    return p;
}

static void list_add(cf_handler_list *l, cf_handler fn)
{
    cf_handler *n = realloc(l->fn, (l->len + 1) * sizeof *n);
    if (!n)
        cf_setup_fail("out of memory");
    n[l->len++] = fn;
    l->fn = n;
}

static const struct {
    const char *name;
    unsigned bit;
} methods[] = {
    {"GET", CF_M_GET},     {"HEAD", CF_M_HEAD},       {"POST", CF_M_POST},
    {"PUT", CF_M_PUT},     {"PATCH", CF_M_PATCH},     {"DELETE", CF_M_DELETE},
    {"OPTIONS", CF_M_OPTIONS}, {"TRACE", CF_M_TRACE}, {"CONNECT", CF_M_CONNECT},
};

unsigned cf_method_bit(const char *m, size_t len)
{
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
        if (strlen(methods[i].name) == len && memcmp(methods[i].name, m, len) == 0)
            return methods[i].bit;
    return CF_M_OTHER;
}

cf_app *cf_app_new(void)
{
    cf_app *app = xcalloc(1, sizeof *app);
    app->root.app = app;
    app->root.prefix = xstrdup("");
    app->router = cf_router_new();
    app->config = json_object();
    if (!app->router || !app->config)
        cf_setup_fail("out of memory");
    app->opt[CF_OPT_STACK_SIZE] = 64 * 1024;
    app->opt[CF_OPT_MAX_BODY] = 1024 * 1024;
    app->opt[CF_OPT_MAX_HEADER] = 8 * 1024;
    app->opt[CF_OPT_MAX_TARGET] = 4 * 1024;
    app->opt[CF_OPT_HEADER_TIMEOUT] = 10 * 1000;
    app->opt[CF_OPT_BODY_TIMEOUT] = 30 * 1000;
    app->opt[CF_OPT_KEEPALIVE_TIMEOUT] = 5 * 1000;
    app->opt[CF_OPT_MAX_CONNECTIONS] = 16384;
    app->opt[CF_OPT_DEBUG] = 0;
    app->opt[CF_OPT_ACCESS_LOG] = 1;
    app->opt[CF_OPT_HANDLER_TIMEOUT] = 0;
    app->opt[CF_OPT_WORKERS] = 0;
    app->opt[CF_OPT_GRACEFUL_TIMEOUT] = 30 * 1000;
    app->opt[CF_OPT_MAX_REQUESTS] = 0;
    app->opt[CF_OPT_SEND_TIMEOUT] = 30 * 1000;
    app->opt[CF_OPT_UPLOAD_MEMORY] = 512 * 1024;
    app->opt[CF_OPT_MAX_PARTS] = 1000;
    app->opt[CF_OPT_MAX_FIELD_SIZE] = 512 * 1024;
    app->opt[CF_OPT_MAX_FILE_SIZE] = 0;
    app->opt[CF_OPT_MAX_PART_HEADER] = 8 * 1024;
    app->opt[CF_OPT_COMPRESS] = 1;
    app->opt[CF_OPT_COMPRESS_MIN_SIZE] = 512;
    app->opt[CF_OPT_GZIP_LEVEL] = 5;
    app->opt[CF_OPT_BROTLI_QUALITY] = 3;
    app->log_level = CF_LOG_INFO;
    return app;
}

static void free_group_parts(cf_group *g)
{
    free(g->prefix);
    free(g->before.fn);
    free(g->after.fn);
    free(g->teardown.fn);
    free(g->middleware.fn);
    free(g->errh);
    cf_cors_free(g->cors);
}

void cf_app_free(cf_app *app)
{
    if (!app)
        return;
    for (cf_route *r = app->routes, *next; r; r = next) {
        next = r->next_all;
        free(r->name);
        free(r->static_dir);
        for (size_t i = 0; i < r->nother; i++)
            free(r->other_methods[i]);
        free(r->other_methods);
        free(r->middleware.fn);
        cf_cors_free(r->cors);
        free(r->chain);
        free(r);
    }
    for (cf_group *g = app->groups, *next; g; g = next) {
        next = g->next_all;
        free_group_parts(g);
        free(g);
    }
    free_group_parts(&app->root);
    free(app->wraps.fn);
    cf_serving_free(app);
    cf_router_free(app->router);
    cf_app_services_free(app);
    free(app->upload_dir);
    json_decref(app->config);
    cf_templates_free(app->templates);
    free(app);
}

cf_group *cf_app_group(cf_app *app) { return &app->root; }

int cf_app_set(cf_app *app, cf_option option, int64_t value)
{
    if ((unsigned)option >= CF_OPT_COUNT || value < 0)
        return CF_EINVAL;
    if (option == CF_OPT_STACK_SIZE && (value < 16 * 1024 || value > 64 * 1024 * 1024))
        return CF_EINVAL;
    if ((option == CF_OPT_COMPRESS && value > 1) || (option == CF_OPT_GZIP_LEVEL && (value < 1 || value > 9)) ||
        (option == CF_OPT_BROTLI_QUALITY && value > 11))
        return CF_EINVAL;
    app->opt[option] = value;
    return 0;
}

void cf_app_set_upload_dir(cf_app *app, const char *dir)
{
    free(app->upload_dir);
    app->upload_dir = dir ? xstrdup(dir) : NULL;
}

/* The options a route may have of its own: the body's limits, compression. */
static bool route_option(cf_option option)
{
    return option == CF_OPT_MAX_BODY || option == CF_OPT_MAX_PARTS || option == CF_OPT_MAX_FIELD_SIZE ||
           option == CF_OPT_MAX_FILE_SIZE || option == CF_OPT_MAX_PART_HEADER || option == CF_OPT_COMPRESS;
}

int cf_route_set(cf_route *route, cf_option option, int64_t value)
{
    if ((unsigned)option >= CF_OPT_COUNT || !route_option(option) || value < 0 ||
        (option == CF_OPT_COMPRESS && value > 1))
        return CF_EINVAL;
    if (option == CF_OPT_MAX_BODY)
        cf_route_set_max_body(route, (size_t)value);
    route->opt[option] = value;
    return 0;
}

int64_t cf_route_get(const cf_route *route, cf_option option)
{
    return (unsigned)option < CF_OPT_COUNT ? route->opt[option] : CF_EINVAL;
}

int64_t cf_app_get(const cf_app *app, cf_option option)
{
    if ((unsigned)option >= CF_OPT_COUNT)
        return CF_EINVAL;
    return app->opt[option];
}

cf_group *cf_group_add(cf_group *parent, const char *prefix)
{
    if (!parent || !prefix || prefix[0] != '/')
        cf_setup_fail("group prefix \"%s\" must start with '/'", prefix ? prefix : "(null)");
    cf_app *app = parent->app;
    cf_group *g = xcalloc(1, sizeof *g);
    g->app = app;
    g->parent = parent;
    g->depth = parent->depth + 1;
    /* Keep the joined prefix free of a trailing slash so rules join cleanly. */
    size_t plen = strlen(prefix);
    while (plen > 1 && prefix[plen - 1] == '/')
        plen--;
    if (plen == 1)
        plen = 0;
    size_t len = strlen(parent->prefix) + plen;
    g->prefix = xcalloc(1, len + 1);
    memcpy(g->prefix, parent->prefix, strlen(parent->prefix));
    memcpy(g->prefix + strlen(parent->prefix), prefix, plen);
    g->next_all = app->groups;
    app->groups = g;
    app->version++;
    return g;
}

/* Parse "GET,POST" / "get post" / "*" into bits and extra method names. */
static void parse_methods(cf_route *r, const char *spec)
{
    if (!spec || !*spec)
        cf_setup_fail("route needs methods (\"GET\", \"GET,POST\" or \"*\")");
    const char *p = spec;
    while (*p) {
        while (*p == ',' || *p == ' ')
            p++;
        const char *s = p;
        while (*p && *p != ',' && *p != ' ')
            p++;
        size_t n = (size_t)(p - s);
        if (!n)
            continue;
        if (n == 1 && *s == '*') {
            r->methods = CF_M_ANY;
            continue;
        }
        char name[32];
        if (n >= sizeof name)
            cf_setup_fail("method name too long in \"%s\"", spec);
        for (size_t i = 0; i < n; i++) {
            char c = s[i];
            name[i] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
        }
        name[n] = 0;
        unsigned bit = cf_method_bit(name, n);
        if (bit == CF_M_OTHER) {
            r->other_methods = realloc(r->other_methods, (r->nother + 1) * sizeof(char *));
            if (!r->other_methods)
                cf_setup_fail("out of memory");
            r->other_methods[r->nother++] = xstrdup(name);
        } else {
            r->methods |= bit;
        }
    }
    if (r->methods & CF_M_GET)
        r->methods |= CF_M_HEAD; /* HEAD is answered by GET, as in Flask */
}

static bool routes_overlap(const cf_route *a, const cf_route *b)
{
    if ((a->methods & b->methods & ~CF_M_HEAD) != 0)
        return true;
    for (size_t i = 0; i < a->nother; i++)
        for (size_t j = 0; j < b->nother; j++)
            if (strcmp(a->other_methods[i], b->other_methods[j]) == 0)
                return true;
    return false;
}

cf_route *cf_route_add(cf_group *group, const char *methods, const char *rule,
                       cf_handler handler, const char *name)
{
    if (!group || !rule || !handler)
        cf_setup_fail("cf_route: group, rule and handler are required");
    cf_app *app = group->app;
    size_t len = strlen(group->prefix) + strlen(rule);
    char *full = xcalloc(1, len + 2);
    snprintf(full, len + 2, "%s%s", group->prefix, rule);
    if (full[0] == '\0')
        strcpy(full, "/");
    const char *err = NULL;
    cf_rule *cr = cf_router_add(app->router, full, &err);
    if (!cr)
        cf_setup_fail("invalid route rule \"%s\": %s", full, err ? err : "?");
    cf_route *r = xcalloc(1, sizeof *r);
    for (size_t i = 0; i < CF_OPT_COUNT; i++)
        r->opt[i] = -1;
    r->group = group;
    r->rule = cr;
    r->handler = handler;
    r->name = xstrdup(name ? name : full);
    parse_methods(r, methods);
    for (cf_route *o = cf_rule_data(cr); o; o = o->next_on_rule)
        if (routes_overlap(o, r))
            cf_setup_fail("route \"%s\" %s is registered twice", full, methods);
    r->next_on_rule = cf_rule_data(cr);
    cf_rule_set_data(cr, r);
    r->next_all = app->routes;
    app->routes = r;
    app->version++;
    free(full);
    return r;
}

cf_route *cf_view_add(cf_group *group, const char *rule, const cf_view *view, const char *name)
{
    if (!view)
        cf_setup_fail("cf_route_view: view is NULL");
    struct {
        const char *method;
        cf_handler fn;
    } parts[] = {{"GET", view->get},     {"POST", view->post},      {"PUT", view->put},
                 {"PATCH", view->patch}, {"DELETE", view->delete_}};
    cf_route *first = NULL;
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        if (!parts[i].fn)
            continue;
        cf_route *r = cf_route_add(group, parts[i].method, rule, parts[i].fn, name);
        if (!first)
            first = r;
    }
    if (!first)
        cf_setup_fail("method view for \"%s\" has no handlers", rule);
    return first;
}

void cf_route_set_name(cf_route *route, const char *name)
{
    free(route->name);
    route->name = xstrdup(name);
}
void cf_route_set_max_body(cf_route *route, size_t bytes) { route->max_body = bytes ? bytes : 1; }
void cf_route_set_threaded(cf_route *route, bool threaded) { route->threaded = threaded; }

void cf_route_set_stream_body(cf_route *route, bool stream) { route->stream_body = stream; }
void cf_route_use(cf_route *route, cf_middleware mw)
{
    list_add(&route->middleware, mw);
    route->group->app->version++;
}

void cf_hook_add(cf_group *group, cf_hook_kind kind, cf_handler hook)
{
    cf_handler_list *l = kind == CF_HOOK_BEFORE  ? &group->before
                         : kind == CF_HOOK_AFTER ? &group->after
                                                 : &group->teardown;
    list_add(l, hook);
}

void cf_errorhandler_add(cf_group *group, int status, cf_handler handler)
{
    if (status < 400 || status > 599)
        cf_setup_fail("error handlers are for statuses 400-599, not %d", status);
    for (size_t i = 0; i < group->nerrh; i++)
        if (group->errh[i].status == status) {
            group->errh[i].fn = handler;
            return;
        }
    cf_errh *n = realloc(group->errh, (group->nerrh + 1) * sizeof *n);
    if (!n)
        cf_setup_fail("out of memory");
    n[group->nerrh++] = (cf_errh){status, handler};
    group->errh = n;
}

void cf_use_add(cf_group *group, cf_middleware mw)
{
    list_add(&group->middleware, mw);
    group->app->version++;
}

void cf_wrap(cf_app *app, cf_middleware fn)
{
    if (!app || !fn)
        cf_setup_fail("cf_wrap: app and function are required");
    list_add(&app->wraps, fn);
}

void cf_route_build_chain(cf_route *r)
{
    cf_app *app = r->group->app;
    if (r->chain_built && r->chain_version == app->version)
        return;
    cf_group *path[64];
    size_t depth = 0, n = r->middleware.len;
    for (cf_group *g = r->group; g && depth < 64; g = g->parent) {
        path[depth++] = g;
        n += g->middleware.len;
    }
    free(r->chain);
    r->chain = n ? xcalloc(n, sizeof *r->chain) : NULL;
    size_t k = 0;
    while (depth--)
        for (size_t i = 0; i < path[depth]->middleware.len; i++)
            r->chain[k++] = path[depth]->middleware.fn[i];
    for (size_t i = 0; i < r->middleware.len; i++)
        r->chain[k++] = r->middleware.fn[i];
    r->nchain = n;
    r->chain_version = app->version;
    r->chain_built = true;
}

static bool route_allows(const cf_route *r, const char *m, size_t len, unsigned bit)
{
    if (bit != CF_M_OTHER)
        return (r->methods & bit) != 0;
    if (r->methods == CF_M_ANY)
        return true;
    for (size_t i = 0; i < r->nother; i++)
        if (strlen(r->other_methods[i]) == len && memcmp(r->other_methods[i], m, len) == 0)
            return true;
    return false;
}

cf_route *cf_app_find_route(cf_rule *rule, const char *method, size_t mlen, unsigned *allowed)
{
    unsigned bit = cf_method_bit(method, mlen);
    cf_route *found = NULL;
    *allowed = 0;
    for (cf_route *r = cf_rule_data(rule); r; r = r->next_on_rule) {
        *allowed |= r->methods;
        if (!found && route_allows(r, method, mlen, bit))
            found = r;
    }
    return found;
}

cf_route *cf_app_route_by_name(cf_app *app, const char *name)
{
    for (cf_route *r = app->routes; r; r = r->next_all)
        if (strcmp(r->name, name) == 0)
            return r;
    return NULL;
}

void cf_allow_header(unsigned allowed, cf_route *routes, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = 0;
    allowed |= CF_M_OPTIONS;
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
        if (!(allowed & methods[i].bit))
            continue;
        int n = snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", methods[i].name);
        if (n < 0 || (size_t)n >= cap - len)
            return;
        len += (size_t)n;
    }
    for (cf_route *r = routes; r; r = r->next_on_rule)
        for (size_t i = 0; i < r->nother; i++) {
            int n = snprintf(buf + len, cap - len, ", %s", r->other_methods[i]);
            if (n < 0 || (size_t)n >= cap - len)
                return;
            len += (size_t)n;
        }
}
