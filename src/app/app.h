/*
 * app.h — internal shape of an application: groups (the root group is the
 * app itself), routes, hooks, error handlers, middleware and options.
 * Set-up code fills these at start-up; the request path only reads them.
 */
#ifndef CF_APP_APP_H
#define CF_APP_APP_H

#include "app/router.h"
#include "app/service.h"
#include "carafe.h"

/* Known methods as bits, so a route's method check is one AND. */
enum {
    CF_M_GET = 1 << 0,
    CF_M_HEAD = 1 << 1,
    CF_M_POST = 1 << 2,
    CF_M_PUT = 1 << 3,
    CF_M_PATCH = 1 << 4,
    CF_M_DELETE = 1 << 5,
    CF_M_OPTIONS = 1 << 6,
    CF_M_TRACE = 1 << 7,
    CF_M_CONNECT = 1 << 8,
    CF_M_OTHER = 1 << 9, /* a method outside this list */
    CF_M_ANY = (1 << 10) - 1,
};
unsigned cf_method_bit(const char *method, size_t len);

typedef struct cf_errh {
    int status;
    cf_handler fn;
} cf_errh;

typedef struct cf_handler_list {
    cf_handler *fn;
    size_t len;
} cf_handler_list;

struct cf_group {
    cf_app *app;
    cf_group *parent;
    char *prefix; /* full prefix from the root, "" for the app */
    int depth;
    cf_handler_list before, after, teardown, middleware;
    cf_errh *errh;
    size_t nerrh;
    struct cf_cors *cors; /* cf_cors on this group (cors.c), or NULL */
    signed char compress; /* cf_compress: 1 on, -1 off, 0 the parent's */
    cf_group *next_all; /* every group of the app, for freeing */
};

#define CF_OPT_COUNT (CF_OPT_BROTLI_QUALITY + 1)

struct cf_route {
    cf_group *group;
    cf_rule *rule;
    char *name;
    unsigned methods;
    char **other_methods; /* methods outside the known bits, exact text */
    size_t nother;
    cf_handler handler;
    size_t max_body; /* 0: the app's */
    int64_t opt[CF_OPT_COUNT]; /* cf_route_set's; -1: the app's */
    bool threaded;
    bool stream_body; /* the handler reads the body as it arrives */
    char *static_dir; /* cf_static's directory */
    cf_handler_list middleware;
    struct cf_cors *cors; /* cf_route_set_cors, or NULL: the groups' */
    /* Middleware of the groups (root first) then of the route, rebuilt
     * when the app's set-up changes. */
    cf_middleware *chain;
    size_t nchain;
    unsigned chain_version;
    bool chain_built;
    int metrics_index;      /* row in the shared metrics (server/metrics.c) */
    cf_route *next_on_rule; /* routes sharing a rule, differing by method */
    cf_route *next_all;
};


struct cf_app {
    cf_group root;
    cf_router *router;
    cf_route *routes;
    cf_group *groups;
    int64_t opt[CF_OPT_COUNT];
    char *upload_dir;  /* spooled uploads; NULL: $TMPDIR or /tmp */
    unsigned version; /* bumped by every set-up change */
    /* I/O modules attached to the app (the database, the task queue). */
    cf_app_service services[CF_APP_MAX_SERVICES];
    size_t nservices;
    cf_handler_list wraps; /* cf_wrap, outermost first */
    /* cf_before_serving / cf_after_serving (lifecycle.c) */
    struct cf_serving_hook *serving[2];
    size_t nserving[2];
    int log_level;  /* cf_log below it is dropped (log.c) */
    bool log_json;  /* --log-format json */
    json_t *config; /* cf_config: Flask's app.config (config.c) */
    struct cf_templates *templates; /* the compiled template folder (render.c) */
};

/* request.c: cf_url_for with the parameters as n name/value pairs. */
char *cf_url_for_pairs(cf_req *rq, const char *name, const char **pairs, size_t n);
/* render.c: free the compiled templates. */
void cf_templates_free(struct cf_templates *t);
/* cors.c: free a config; the CORS headers of the response, once it is
 * final (before the after_request hooks, so they see them); the status of
 * an automatic OPTIONS answer (204 for a preflight under a config). */
void cf_cors_free(struct cf_cors *c);
void cf_cors_apply(cf_req *rq);
int cf_cors_options_status(cf_req *rq);
/* log.c: JSON string escaping (without quotes) into out[0..cap). */
size_t cf_json_escape(char *out, size_t cap, const char *s);
/* lifecycle.c: free the serving hooks. */
void cf_serving_free(cf_app *app);

/* The route of `rule` answering `method`, or NULL. *allowed gets the bits
 * of every method the rule answers (for 405 and OPTIONS). */
cf_route *cf_app_find_route(cf_rule *rule, const char *method, size_t mlen, unsigned *allowed);
cf_route *cf_app_route_by_name(cf_app *app, const char *name);
/* Make sure route->chain is current. */
void cf_route_build_chain(cf_route *route);
/* "GET, HEAD, OPTIONS" for an Allow header, in `buf`. */
void cf_allow_header(unsigned allowed, cf_route *routes, char *buf, size_t cap);
/* Fatal set-up error: print and exit. */
void cf_setup_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* Free the state of every attached service (service.c). */
void cf_app_services_free(cf_app *app);

#endif
