/*
 * config.c — the application's configuration (Flask's app.config) and the
 * JSON side of `g` that templates see.
 *
 * The config is one JSON object owned by the app: set-up code fills it,
 * sessions read their keys from it (SECRET_KEY, SESSION_COOKIE_*), and
 * templates see it as `config`.
 */
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "app/req.h"

json_t *cf_config(cf_app *app) { return app->config; }

const char *cf_config_str(const cf_app *app, const char *key)
{
    return json_string_value(json_object_get(app->config, key));
}

int cf_config_from_env(cf_app *app, const char *const *names)
{
    int n = 0;
    for (; names && *names; names++) {
        const char *v = getenv(*names);
        if (v && json_object_set_new(app->config, *names, json_string(v)) == 0)
            n++;
    }
    return n;
}

cf_app *cf_req_app(cf_req *rq) { return rq->app; }

static void g_json_free(void *p) { json_decref(p); }

json_t *cf_g_json(cf_req *rq)
{
    if (!rq->g_json) {
        rq->g_json = json_object();
        if (!rq->g_json || cf_arena_defer_add(&rq->arena, g_json_free, rq->g_json) < 0)
            abort(); /* request memory exhausted: as cf_alloc */
    }
    return rq->g_json;
}
