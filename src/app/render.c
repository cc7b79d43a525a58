/*
 * render.c — templates in an app: cf_templates compiles a folder at set-up,
 * cf_render renders one with the request-aware globals Flask gives every
 * template (url_for, request, g, session, get_flashed_messages, csrf_token,
 * config).
 *
 * The engine (tpl_*.c) knows no request: this file is its host. Globals
 * that are plain values (request, g, session, config) come through the
 * host's lookup, asked only when a template uses the name, so a template
 * that never looks at `request` never pays for building it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "app/req.h"
#include "app/tpl.h"

/* A C function registered with cf_template_global / cf_template_filter. */
typedef struct user_fn {
    cf_template_fn fn;
    void *arg;
    char *name;
    bool filter;
} user_fn;

struct cf_templates {
    tpl_env *env;
    user_fn *fns;
    size_t nfns;
};

/* What the engine's callbacks get as host data during one render. */
typedef struct render_host {
    cf_req *rq;
    json_t *request; /* built on first use */
} render_host;


static void *xmalloc_or_die(size_t n)
{
    void *p = calloc(1, n);
    if (!p)
        cf_setup_fail("out of memory");
    return p;
}

static struct cf_templates *templates_of(cf_app *app)
{
    if (!app->templates)
        app->templates = xmalloc_or_die(sizeof *app->templates);
    return app->templates;
}

void cf_templates_free(struct cf_templates *t)
{
    if (!t)
        return;
    tpl_env_free(t->env);
    for (size_t i = 0; i < t->nfns; i++)
        free(t->fns[i].name);
    free(t->fns);
    free(t);
}

/* ---- globals every template sees ------------------------------------------- */

static cf_req *host_req(void *host) { return host ? ((render_host *)host)->rq : NULL; }

/* str() of a url_for argument, as Flask formats values into URLs. */
static const char *url_value(cf_req *rq, json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING: return json_string_value(v);
    case JSON_INTEGER: return cf_sprintf(rq, "%" PRId64, (int64_t)json_integer_value(v));
    case JSON_REAL: return cf_sprintf(rq, "%.17g", json_real_value(v));
    case JSON_TRUE: return "True";
    case JSON_FALSE: return "False";
    default: return NULL;
    }
}

/* url_for('endpoint', name=value, ..., _anchor='x') */
static json_t *g_url_for(void *host, json_t *args, json_t *kwargs, void *unused)
{
    cf_req *rq = host_req(host);
    const char *endpoint = json_string_value(json_array_get(args, 0));
    if (!rq || !endpoint || json_array_size(args) != 1)
        return NULL;
    size_t n = json_object_size(kwargs), np = 0;
    const char **pairs = cf_alloc(rq, (2 * n + 1) * sizeof *pairs);
    const char *anchor = NULL, *key;
    json_t *v;
    json_object_foreach(kwargs, key, v) {
        if (strcmp(key, "_anchor") == 0) {
            anchor = url_value(rq, v);
            continue;
        }
        const char *s = url_value(rq, v);
        if (!s)
            continue; /* None: Flask leaves the parameter out */
        pairs[2 * np] = key;
        pairs[2 * np + 1] = s;
        np++;
    }
    char *url = cf_url_for_pairs(rq, endpoint, pairs, np);
    if (!url)
        return NULL;
    if (anchor)
        url = cf_sprintf(rq, "%s#%s", url, anchor);
    return json_string(url);
}

/* The `request` object: what Flask templates read from it. */
static json_t *request_object(cf_req *rq)
{
    json_t *args = json_object(), *form = json_object();
    const char *k, *v;
    for (size_t i = 0; cf_arg_at(rq, i, &k, &v); i++)
        if (!json_object_get(args, k)) /* request.args.x is the first value */
            json_object_set_new(args, k, json_string(v));
    for (size_t i = 0; cf_form_at(rq, i, &k, &v); i++)
        if (!json_object_get(form, k))
            json_object_set_new(form, k, json_string(v));
    const char *host = cf_header(rq, "Host");
    const char *qs = cf_query_string(rq);
    const char *endpoint = cf_endpoint(rq);
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:s?}", "method", cf_method(rq), "path",
                     cf_path(rq), "full_path", cf_sprintf(rq, "%s?%s", cf_path(rq), qs),
                     "url", cf_sprintf(rq, "http://%s%s%s%s", host ? host : "", cf_path(rq),
                                       *qs ? "?" : "", qs),
                     "args", args, "form", form, "endpoint", endpoint);
}

/* get_flashed_messages(with_categories=false, category_filter=()) */
static json_t *g_flashed_messages(void *host, json_t *args, json_t *kwargs, void *unused)
{
    cf_req *rq = host_req(host);
    if (!rq)
        return json_array();
    json_t *with = json_object_get(kwargs, "with_categories");
    json_t *filter = json_object_get(kwargs, "category_filter");
    if (!with)
        with = json_array_get(args, 0);
    if (!filter)
        filter = json_array_get(args, 1);
    size_t nf = json_array_size(filter);
    const char **names = cf_alloc(rq, (nf + 1) * sizeof *names);
    size_t k = 0;
    for (size_t i = 0; i < nf; i++)
        if (json_is_string(json_array_get(filter, i)))
            names[k++] = json_string_value(json_array_get(filter, i));
    names[k] = NULL;
    json_t *list = cf_flashed_messages(rq, json_is_true(with) ||
                                               (json_is_integer(with) && json_integer_value(with)),
                                       k ? names : NULL);
    return list ? json_incref(list) : json_array(); /* borrowed from the request */
}

static json_t *g_csrf_token(void *host, json_t *args, json_t *kwargs, void *unused)
{
    cf_req *rq = host_req(host);
    const char *token = rq ? cf_csrf_token(rq) : NULL;
    return token ? json_string(token) : NULL;
}

static void json_release(void *p) { json_decref(p); }

static json_t *host_lookup(void *data, const char *name)
{
    render_host *h = data;
    cf_req *rq = h->rq;
    if (strcmp(name, "request") == 0) {
        if (!h->request) {
            h->request = request_object(rq);
            cf_defer(rq, json_release, h->request);
        }
        return h->request;
    }
    if (strcmp(name, "g") == 0)
        return cf_g_json(rq);
    if (strcmp(name, "config") == 0)
        return cf_config(rq->app);
    if (strcmp(name, "session") == 0)
        return cf_session(rq);
    return NULL;
}

/* ---- set-up ---------------------------------------------------------------- */

static json_t *call_user_fn(void *host, json_t *args, json_t *kwargs, void *arg)
{
    const user_fn *f = arg;
    return f->fn(host_req(host), args, kwargs, f->arg);
}

static void add_user_fn(cf_app *app, bool filter, const char *name, cf_template_fn fn, void *arg)
{
    struct cf_templates *t = templates_of(app);
    if (t->env)
        cf_setup_fail("template %s '%s': register it before cf_templates", filter ? "filter" : "global",
                      name);
    user_fn *fns = realloc(t->fns, (t->nfns + 1) * sizeof *fns);
    if (!fns)
        cf_setup_fail("out of memory");
    t->fns = fns;
    fns[t->nfns++] = (user_fn){fn, arg, strdup(name), filter};
    if (!fns[t->nfns - 1].name)
        cf_setup_fail("out of memory");
}

void cf_template_global(cf_app *app, const char *name, cf_template_fn fn, void *arg)
{
    add_user_fn(app, false, name, fn, arg);
}

void cf_template_filter(cf_app *app, const char *name, cf_template_fn fn, void *arg)
{
    add_user_fn(app, true, name, fn, arg);
}

void cf_templates(cf_app *app, const char *dir)
{
    struct cf_templates *t = templates_of(app);
    tpl_env_free(t->env);
    t->env = tpl_env_new();
    if (!t->env)
        cf_setup_fail("out of memory");
    tpl_env_register(t->env, false, "url_for", g_url_for, NULL);
    tpl_env_register(t->env, false, "get_flashed_messages", g_flashed_messages, NULL);
    tpl_env_register(t->env, false, "csrf_token", g_csrf_token, NULL);
    for (size_t i = 0; i < t->nfns; i++)
        tpl_env_register(t->env, t->fns[i].filter, t->fns[i].name, call_user_fn, &t->fns[i]);
    char err[1024];
    if (tpl_env_load_dir(t->env, dir ? dir : "templates", err, sizeof err) < 0)
        cf_setup_fail("%s", err);
    app->version++;
}

json_t *cf_markup(const char *html) { return json_pack("{s:s}", "__html__", html ? html : ""); }

/* ---- rendering ------------------------------------------------------------- */

static bool autoescaped_name(const char *name)
{
    static const char *const exts[] = {".html", ".htm", ".xml", ".xhtml", ".svg"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof exts / sizeof *exts; i++) {
        size_t e = strlen(exts[i]);
        if (n >= e && strcmp(name + n - e, exts[i]) == 0)
            return true;
    }
    return false;
}

static const char *render(cf_req *rq, const char *name, json_t *context, size_t *len)
{
    const struct cf_templates *t = rq->app->templates;
    const char *out = NULL;
    if (!t || !t->env) {
        cf_fail(rq, "cannot render %s: no templates loaded (call cf_templates at set-up)", name);
    } else {
        render_host h = {rq, NULL};
        tpl_host host = {&h, host_lookup};
        char err[1024];
        if (tpl_render(t->env, name, context, &host, &rq->arena, &out, len, err, sizeof err) < 0) {
            cf_fail(rq, "%s", err);
            out = NULL;
        }
    }
    json_decref(context);
    return out;
}

void cf_render(cf_req *rq, int status, const char *name, json_t *context)
{
    size_t len;
    const char *body = render(rq, name, context, &len);
    if (body)
        cf_send(rq, status,
                autoescaped_name(name) ? "text/html; charset=utf-8" : "text/plain; charset=utf-8",
                body, len);
}

char *cf_render_string(cf_req *rq, const char *name, json_t *context)
{
    size_t len;
    return (char *)render(rq, name, context, &len);
}
