/*
 * test_cors.c — CORS through the in-process test client (src/app/cors.c):
 *   simple requests   allowed origin echoed (list), "*" sent as "*" without
 *                     credentials and as the origin with them, exposed
 *                     headers, credentials; a disallowed origin gets no CORS
 *                     header but the normal response; no Origin: none;
 *                     Vary: Origin on every covered response, merged with a
 *                     Vary the handler set; error pages (404, 500, abort)
 *                     carry the headers;
 *   preflights        204 with Allow-Methods (configured, or the URL's
 *                     methods), Allow-Headers (echoed, or the configured
 *                     list), Max-Age, Allow-Credentials; refused (no CORS
 *                     header, still not an error) for a method not routed or
 *                     not allowed, a header not allowed, a disallowed origin;
 *                     a before hook refusing it (401) except via
 *                     cf_cors_preflight; a plain OPTIONS keeps 200 + Allow;
 *                     an OPTIONS route of one's own gets the headers too;
 *   levels            route config beats group beats app; a preflight takes
 *                     the config of the route of the method it asks about;
 *                     unmatched paths take the app's;
 *   predicate         an origin predicate with its argument;
 *   set-up            CF_EINVAL for no origin, CR/LF, negative max age;
 *                     removing a config with NULL (the enclosing one applies).
 */
#include <carafe.h>

#include "check.h"

#include <string.h>

static const char *hdr(cf_test_response *r, const char *n) { return cf_test_header(r, n); }

static cf_test_response *req(cf_test_client *tc, const char *method, const char *target,
                             const char *const *headers)
{
    return cf_test_request(tc, method, target, headers, NULL, 0);
}

static void h_data(cf_req *rq)
{
    cf_set_header(rq, "X-Total", "3");
    cf_text(rq, 200, "data");
}
static void h_put(cf_req *rq) { cf_text(rq, 200, "put"); }
static void h_vary(cf_req *rq)
{
    cf_set_header(rq, "Vary", "Accept-Encoding");
    cf_text(rq, 200, "vary");
}
static void h_boom(cf_req *rq) { (void)rq; /* no response: 500 */ }
static void h_forbidden(cf_req *rq) { cf_abort(rq, 403); }
static void h_open(cf_req *rq) { cf_text(rq, 200, "open"); }
static void h_cred(cf_req *rq) { cf_text(rq, 200, "cred"); }
static void h_pred(cf_req *rq) { cf_text(rq, 200, "pred"); }
static void h_own_options(cf_req *rq) { cf_text(rq, 200, "own options"); }
static void h_private(cf_req *rq) { cf_text(rq, 200, "private"); }
static void h_admin(cf_req *rq) { cf_text(rq, 200, "admin"); }

/* A before hook requiring a token, letting preflights through. */
static void need_token(cf_req *rq)
{
    if (strncmp(cf_path(rq), "/auth/", 6) != 0)
        return;
    if (strcmp(cf_path(rq), "/auth/strict") != 0 && cf_cors_preflight(rq))
        return;
    if (!cf_header(rq, "X-Token"))
        cf_abort(rq, 401);
}
static void h_auth(cf_req *rq) { cf_text(rq, 200, "authed"); }

static int pred_calls;
static bool ends_with_trusted(cf_req *rq, const char *origin, void *arg)
{
    (void)rq;
    pred_calls++;
    size_t n = strlen(origin), k = strlen(arg);
    return n >= k && strcmp(origin + n - k, arg) == 0;
}

static cf_app *make_app(void)
{
    cf_app *app = cf_app_new();
    cf_app_set(app, CF_OPT_COMPRESS, 0); /* its Vary: Accept-Encoding is test_compress's */
    static const char *const app_origins[] = {"http://page.test", "http://other.test", NULL};
    CHECK_INT(cf_cors(app, &(cf_cors_opts){.origins = app_origins,
                                           .allow_headers = "Content-Type, X-Token",
                                           .expose_headers = "X-Total",
                                           .max_age = 600}),
              0);
    cf_route(app, "GET", "/data", h_data);
    cf_route(app, "PUT,DELETE", "/data", h_put);
    cf_route(app, "GET", "/vary", h_vary);
    cf_route(app, "GET", "/boom", h_boom);
    cf_route(app, "GET", "/forbidden", h_forbidden);
    cf_route(app, "GET,OPTIONS", "/own", h_own_options);
    cf_route(app, "GET", "/auth/x", h_auth);
    cf_route(app, "PUT", "/auth/x", h_auth);
    cf_route(app, "PUT", "/auth/strict", h_auth);
    cf_before_request(app, need_token);

    /* A group open to any origin, with a route that takes credentials. */
    cf_group *pub = cf_group_new(app, "/pub");
    static const char *const any[] = {"*", NULL};
    CHECK_INT(cf_cors(pub, &(cf_cors_opts){.origins = any, .methods = "GET, POST"}), 0);
    cf_route(pub, "GET,POST,PATCH", "/open", h_open);
    cf_route *cred = cf_route(pub, "GET,PUT", "/cred", h_cred);
    CHECK_INT(cf_route_set_cors(cred, &(cf_cors_opts){.origins = any, .credentials = true,
                                                      .methods = "*", .allow_headers = "*"}),
              0);
    /* Origins by predicate. */
    cf_route *pr = cf_route(pub, "GET", "/pred", h_pred);
    CHECK_INT(cf_route_set_cors(pr, &(cf_cors_opts){.allow_origin = ends_with_trusted,
                                                    .allow_origin_arg = ".trusted.test"}),
              0);

    /* A group with its config removed again: the app's applies. */
    cf_group *priv = cf_group_new(app, "/private");
    CHECK_INT(cf_cors(priv, &(cf_cors_opts){.origins = any}), 0);
    CHECK_INT(cf_cors(priv, NULL), 0);
    cf_route(priv, "GET", "/x", h_private);
    /* ... and a route of it that allows one origin of its own. */
    cf_route *adm = cf_route(priv, "GET,PUT", "/admin", h_admin);
    static const char *const admin_origins[] = {"http://admin.test", NULL};
    CHECK_INT(cf_route_set_cors(adm, &(cf_cors_opts){.origins = admin_origins}), 0);
    return app;
}

static void test_simple(cf_test_client *tc)
{
    const char *page[] = {"Origin: http://page.test", NULL};
    cf_test_response *r = req(tc, "GET", "/data", page);
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(cf_test_body(r, NULL), "data");
    CHECK_STR(hdr(r, "Access-Control-Allow-Origin"), "http://page.test");
    CHECK_STR(hdr(r, "Access-Control-Expose-Headers"), "X-Total");
    CHECK_STR(hdr(r, "Vary"), "Origin");
    CHECK(hdr(r, "Access-Control-Allow-Credentials") == NULL);
    CHECK(hdr(r, "Access-Control-Max-Age") == NULL); /* preflights only */

    /* A disallowed origin: the response as usual, without CORS headers. */
    const char *evil[] = {"Origin: http://evil.test", NULL};
    r = req(tc, "GET", "/data", evil);
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(cf_test_body(r, NULL), "data");
    CHECK(hdr(r, "Access-Control-Allow-Origin") == NULL);
    CHECK(hdr(r, "Access-Control-Expose-Headers") == NULL);
    CHECK_STR(hdr(r, "Vary"), "Origin");
    /* Origins compare byte for byte: scheme, host, port. */
    const char *near[] = {"Origin: http://page.test:8080", NULL};
    CHECK(hdr(req(tc, "GET", "/data", near), "Access-Control-Allow-Origin") == NULL);
    const char *upper[] = {"Origin: http://PAGE.test", NULL};
    CHECK(hdr(req(tc, "GET", "/data", upper), "Access-Control-Allow-Origin") == NULL);
    const char *null_origin[] = {"Origin: null", NULL};
    CHECK(hdr(req(tc, "GET", "/data", null_origin), "Access-Control-Allow-Origin") == NULL);

    /* No Origin: not a CORS request, but the response still varies. */
    r = cf_test_get(tc, "/data");
    CHECK(hdr(r, "Access-Control-Allow-Origin") == NULL);
    CHECK_STR(hdr(r, "Vary"), "Origin");

    /* A Vary of the handler's is kept. */
    CHECK_STR(hdr(req(tc, "GET", "/vary", page), "Vary"), "Accept-Encoding, Origin");

    /* Error pages carry the headers, so the page can read them. */
    r = req(tc, "GET", "/nowhere", page);
    CHECK_INT(cf_test_status(r), 404);
    CHECK_STR(hdr(r, "Access-Control-Allow-Origin"), "http://page.test");
    r = req(tc, "GET", "/boom", page);
    CHECK_INT(cf_test_status(r), 500);
    CHECK_STR(hdr(r, "Access-Control-Allow-Origin"), "http://page.test");
    r = req(tc, "GET", "/forbidden", page);
    CHECK_INT(cf_test_status(r), 403);
    CHECK_STR(hdr(r, "Access-Control-Allow-Origin"), "http://page.test");
    r = req(tc, "POST", "/data", page); /* 405 */
    CHECK_INT(cf_test_status(r), 405);
    CHECK_STR(hdr(r, "Access-Control-Allow-Origin"), "http://page.test");
    /* A before hook's refusal too. */
    r = req(tc, "GET", "/auth/x", page);
    CHECK_INT(cf_test_status(r), 401);
    CHECK_STR(hdr(r, "Access-Control-Allow-Origin"), "http://page.test");

    /* "*": sent as "*" without credentials... */
    const char *any[] = {"Origin: http://anyone.test", NULL};
    r = req(tc, "GET", "/pub/open", any);
    CHECK_STR(hdr(r, "Access-Control-Allow-Origin"), "*");
    CHECK(hdr(r, "Access-Control-Expose-Headers") == NULL);
    /* ... and as the origin itself with them. */
    r = req(tc, "GET", "/pub/cred", any);
    CHECK_STR(hdr(r, "Access-Control-Allow-Origin"), "http://anyone.test");
    CHECK_STR(hdr(r, "Access-Control-Allow-Credentials"), "true");
    CHECK_STR(hdr(r, "Vary"), "Origin");
}

static void test_preflight(cf_test_client *tc)
{
    const char *pf[] = {"Origin: http://page.test", "Access-Control-Request-Method: PUT",
                        "Access-Control-Request-Headers: content-type,x-token", NULL};
    cf_test_response *r = req(tc, "OPTIONS", "/data", pf);
    CHECK_INT(cf_test_status(r), 204);
    CHECK_STR(cf_test_body(r, NULL), "");
    CHECK_STR(hdr(r, "Access-Control-Allow-Origin"), "http://page.test");
    /* methods NULL: those the URL routes */
    CHECK_STR(hdr(r, "Access-Control-Allow-Methods"), "GET, HEAD, PUT, DELETE, OPTIONS");
    CHECK_STR(hdr(r, "Access-Control-Allow-Headers"), "Content-Type, X-Token");
    CHECK_STR(hdr(r, "Access-Control-Max-Age"), "600");
    CHECK_STR(hdr(r, "Vary"), "Origin");
    CHECK(hdr(r, "Access-Control-Expose-Headers") == NULL);

    /* A header not in the list: refused, no CORS header, not an error. */
    const char *bad_header[] = {"Origin: http://page.test", "Access-Control-Request-Method: PUT",
                                "Access-Control-Request-Headers: x-token, x-secret", NULL};
    r = req(tc, "OPTIONS", "/data", bad_header);
    CHECK_INT(cf_test_status(r), 204);
    CHECK(hdr(r, "Access-Control-Allow-Origin") == NULL);
    CHECK(hdr(r, "Access-Control-Allow-Methods") == NULL);
    CHECK(hdr(r, "Access-Control-Allow-Headers") == NULL);

    /* A method this URL does not route. */
    const char *patch[] = {"Origin: http://page.test", "Access-Control-Request-Method: PATCH", NULL};
    r = req(tc, "OPTIONS", "/data", patch);
    CHECK(hdr(r, "Access-Control-Allow-Origin") == NULL);
    /* Routed but not in the group's methods ("GET, POST"). */
    r = req(tc, "OPTIONS", "/pub/open", patch);
    CHECK(hdr(r, "Access-Control-Allow-Origin") == NULL);
    const char *post[] = {"Origin: http://x.test", "Access-Control-Request-Method: POST",
                          "Access-Control-Request-Headers: X-Anything", NULL};
    r = req(tc, "OPTIONS", "/pub/open", post);
    CHECK_STR(hdr(r, "Access-Control-Allow-Origin"), "*");
    CHECK_STR(hdr(r, "Access-Control-Allow-Methods"), "GET, POST");
    CHECK_STR(hdr(r, "Access-Control-Allow-Headers"), "X-Anything"); /* any: echoed */
    CHECK(hdr(r, "Access-Control-Max-Age") == NULL);

    /* A disallowed origin. */
    const char *evil[] = {"Origin: http://evil.test", "Access-Control-Request-Method: PUT", NULL};
    r = req(tc, "OPTIONS", "/data", evil);
    CHECK_INT(cf_test_status(r), 204);
    CHECK(hdr(r, "Access-Control-Allow-Origin") == NULL);

    /* Credentials and "*" methods: the method echoed, the origin too. */
    const char *cred[] = {"Origin: http://a.test", "Access-Control-Request-Method: PUT",
                          "Access-Control-Request-Headers: x-one", NULL};
    r = req(tc, "OPTIONS", "/pub/cred", cred);
    CHECK_STR(hdr(r, "Access-Control-Allow-Origin"), "http://a.test");
    CHECK_STR(hdr(r, "Access-Control-Allow-Credentials"), "true");
    CHECK_STR(hdr(r, "Access-Control-Allow-Methods"), "PUT");
    CHECK_STR(hdr(r, "Access-Control-Allow-Headers"), "x-one");

    /* A plain OPTIONS is what it was: 200 with Allow. */
    r = req(tc, "OPTIONS", "/data", NULL);
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(hdr(r, "Allow"), "GET, HEAD, PUT, DELETE, OPTIONS");
    /* An OPTIONS route of one's own answers, and gets the headers. */
    const char *own[] = {"Origin: http://page.test", "Access-Control-Request-Method: GET", NULL};
    r = req(tc, "OPTIONS", "/own", own);
    CHECK_STR(cf_test_body(r, NULL), "own options");
    CHECK_STR(hdr(r, "Access-Control-Allow-Origin"), "http://page.test");
    CHECK_STR(hdr(r, "Access-Control-Allow-Methods"), "GET, HEAD, OPTIONS");

    /* Before hooks run first: one that lets preflights through ... */
    const char *auth[] = {"Origin: http://page.test", "Access-Control-Request-Method: PUT",
                          "Access-Control-Request-Headers: x-token", NULL};
    r = req(tc, "OPTIONS", "/auth/x", auth);
    CHECK_INT(cf_test_status(r), 204);
    CHECK_STR(hdr(r, "Access-Control-Allow-Origin"), "http://page.test");
    /* ... and one that refuses them. */
    r = req(tc, "OPTIONS", "/auth/strict", auth);
    CHECK_INT(cf_test_status(r), 401);
}

static void test_levels(cf_test_client *tc)
{
    /* The group's config was removed: the app's applies again. */
    const char *any[] = {"Origin: http://admin.test", NULL};
    cf_test_response *r = req(tc, "GET", "/private/x", any);
    CHECK_INT(cf_test_status(r), 200);
    CHECK(hdr(r, "Access-Control-Allow-Origin") == NULL);
    CHECK_STR(hdr(r, "Vary"), "Origin");
    const char *other[] = {"Origin: http://other.test", NULL};
    CHECK_STR(hdr(req(tc, "GET", "/private/x", other), "Access-Control-Allow-Origin"),
              "http://other.test");
    /* The route's own. */
    r = req(tc, "GET", "/private/admin", any);
    CHECK_STR(hdr(r, "Access-Control-Allow-Origin"), "http://admin.test");
    const char *page[] = {"Origin: http://page.test", NULL};
    CHECK(hdr(req(tc, "GET", "/private/admin", page), "Access-Control-Allow-Origin") == NULL);
    const char *pf[] = {"Origin: http://admin.test", "Access-Control-Request-Method: PUT", NULL};
    r = req(tc, "OPTIONS", "/private/admin", pf);
    CHECK_INT(cf_test_status(r), 204);
    CHECK_STR(hdr(r, "Access-Control-Allow-Methods"), "GET, HEAD, PUT, OPTIONS");
    /* Unmatched paths under a group take the app's config. */
    r = req(tc, "GET", "/private/nothing", page);
    CHECK_INT(cf_test_status(r), 404);
    CHECK_STR(hdr(r, "Access-Control-Allow-Origin"), "http://page.test");

    /* The predicate, with its argument. */
    pred_calls = 0;
    const char *t[] = {"Origin: https://app.trusted.test", NULL};
    CHECK_STR(hdr(req(tc, "GET", "/pub/pred", t), "Access-Control-Allow-Origin"),
              "https://app.trusted.test");
    const char *u[] = {"Origin: https://trusted.test.evil", NULL};
    CHECK(hdr(req(tc, "GET", "/pub/pred", u), "Access-Control-Allow-Origin") == NULL);
    CHECK_INT(pred_calls, 2);
}

static void test_setup(void)
{
    cf_app *app = cf_app_new();
    cf_app_set(app, CF_OPT_COMPRESS, 0); /* its Vary: Accept-Encoding is test_compress's */
    static const char *const none[] = {NULL};
    static const char *const crlf[] = {"http://a\r\nX: y", NULL};
    static const char *const ok[] = {"http://a", NULL};
    CHECK_INT(cf_cors(app, &(cf_cors_opts){0}), CF_EINVAL);
    CHECK_INT(cf_cors(app, &(cf_cors_opts){.origins = none}), CF_EINVAL);
    CHECK_INT(cf_cors(app, &(cf_cors_opts){.origins = crlf}), CF_EINVAL);
    CHECK_INT(cf_cors(app, &(cf_cors_opts){.origins = ok, .methods = "GET\n"}), CF_EINVAL);
    CHECK_INT(cf_cors(app, &(cf_cors_opts){.origins = ok, .max_age = -1}), CF_EINVAL);
    CHECK_INT(cf_cors(app, &(cf_cors_opts){.origins = ok}), 0);
    CHECK_INT(cf_cors(app, &(cf_cors_opts){.origins = ok, .max_age = 5}), 0); /* replaces */
    cf_app_free(app);
}

int main(void)
{
    cf_app *app = make_app();
    cf_test_client *tc = cf_test_client_new(app);
    test_simple(tc);
    test_preflight(tc);
    test_levels(tc);
    cf_test_client_free(tc);
    cf_app_free(app);
    test_setup();
    return CHECK_DONE();
}
