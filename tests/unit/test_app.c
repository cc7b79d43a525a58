/*
 * test_app.c — the application layer (src/app/) end to end through the
 * in-process test client:
 *   routing    converters (int, float, path, uuid, string), 404, 405 with
 *              Allow, automatic OPTIONS with Allow, HEAD (headers with the
 *              GET body's Content-Length, empty body), trailing-slash 308
 *              with Location (query kept), method views (cf_route_view),
 *              one rule with methods registered separately, "*" and
 *              methods outside the known list, an OPTIONS route of one's
 *              own, cf_endpoint / cf_route_set_name;
 *   hooks      order app before → group before → middleware → handler →
 *              group after → app after (newest first) → teardowns (inner
 *              first), nested groups, a before hook answering skips the
 *              handler and middleware, after hooks changing status and
 *              headers, an after hook aborting (error handler, then the
 *              remaining after hooks), teardown after a failure
 *              (cf_req_error), hooks and error handlers that await, group
 *              error handlers taking precedence, app 404/500/403 handlers,
 *              an error handler answering nothing (default page);
 *   middleware cf_use on the app and a group, cf_route_use, outermost
 *              first, short-circuit without cf_next, code after cf_next
 *              sees the status;
 *   errors     handler returning without answering → 500, cf_fail's message
 *              hidden unless CF_OPT_DEBUG=1, cf_abort(403) default page;
 *   requests   cf_arg (percent and plus decoding, first value, malformed
 *              pairs dropped), cf_query_string, headers case-insensitive
 *              and iterated, cookies, urlencoded form, cf_get_json (valid,
 *              +json, invalid with position, wrong Content-Type, empty),
 *              cf_body with binary bytes, path percent-decoding, dot
 *              segments → 400, cf_url_for, cf_g_set/get, per-route and app
 *              body limits → 413;
 *   responses  cf_text, cf_textf, cf_html, cf_send, cf_json (pack, bad
 *              format → 500), cf_json_value, cf_redirect (and a bad status),
 *              cf_set_cookie text, cf_set_header / cf_add_header (CR/LF
 *              refused with CF_EINVAL), Content-Type override,
 *              cf_response_header, invalid statuses;
 *   threads    a test client on a short-lived thread gives back its pooled
 *              requests and coroutine stacks when freed (LeakSanitizer
 *              checks the requests at exit).
 */
#include <carafe.h>

#include "check.h"
#include "core/coro.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static const char *body(cf_test_response *r) { return cf_test_body(r, NULL); }
static bool contains(const char *hay, const char *needle)
{
    return hay && needle && strstr(hay, needle) != NULL;
}

static cf_test_response *req(cf_test_client *tc, const char *method, const char *target,
                             const char *const *headers, const char *b)
{
    return cf_test_request(tc, method, target, headers, b, b ? strlen(b) : 0);
}

/* ======================================================================== */
/* App 1: routing, requests, responses, default error pages                  */
/* ======================================================================== */

static void h_user(cf_req *rq) { cf_textf(rq, 200, "user %lld", (long long)cf_param_int(rq, "id")); }
static void h_price(cf_req *rq) { cf_textf(rq, 200, "%.2f", cf_param_float(rq, "p")); }
static void h_files(cf_req *rq)
{
    cf_textf(rq, 200, "%s|%s", cf_param(rq, "rest"), cf_path(rq));
}
static void h_item(cf_req *rq) { cf_textf(rq, 200, "item %s", cf_param(rq, "u")); }
static void h_hello(cf_req *rq)
{
    cf_textf(rq, 200, "hello %s%s", cf_param(rq, "name"),
             cf_param(rq, "missing") == NULL && cf_param_int(rq, "missing") == 0 ? "" : "?");
}
static void h_submit(cf_req *rq) { cf_text(rq, 200, cf_method(rq)); }
static void h_items(cf_req *rq) { cf_text(rq, 200, "items"); }
static void h_endpoint(cf_req *rq) { cf_text(rq, 200, cf_endpoint(rq)); }

static void h_multi_get(cf_req *rq) { cf_text(rq, 200, "multi get"); }
static void h_multi_post(cf_req *rq) { cf_text(rq, 200, "multi post"); }
static void h_any_method(cf_req *rq) { cf_textf(rq, 200, "any %s", cf_method(rq)); }
static void h_own_options(cf_req *rq) { cf_text(rq, 204, ""); cf_set_header(rq, "X-Own", "1"); }

static void v_get(cf_req *rq) { cf_text(rq, 200, "view get"); }
static void v_post(cf_req *rq) { cf_text(rq, 201, "view post"); }

static void test_routing(cf_test_client *tc)
{
    cf_test_response *r = cf_test_get(tc, "/user/42");
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(body(r), "user 42");
    CHECK_STR(cf_test_header(r, "Content-Type"), "text/plain; charset=utf-8");
    CHECK_STR(cf_test_header(r, "Content-Length"), "7");
    CHECK_INT(cf_test_status(cf_test_get(tc, "/user/abc")), 404);
    CHECK_INT(cf_test_status(cf_test_get(tc, "/user/-1")), 404);
    CHECK_STR(body(cf_test_get(tc, "/price/3.5")), "3.50");
    CHECK_INT(cf_test_status(cf_test_get(tc, "/price/3")), 404);
    CHECK_STR(body(cf_test_get(tc, "/files/a/b/c.txt")), "a/b/c.txt|/files/a/b/c.txt");
    CHECK_STR(body(cf_test_get(tc, "/item/123e4567-e89b-12d3-a456-426614174000")),
              "item 123e4567-e89b-12d3-a456-426614174000");
    CHECK_INT(cf_test_status(cf_test_get(tc, "/item/123e4567")), 404);
    CHECK_STR(body(cf_test_get(tc, "/hello/world")), "hello world");

    /* 404: default page. */
    r = cf_test_get(tc, "/no/such/page");
    CHECK_INT(cf_test_status(r), 404);
    CHECK(contains(body(r), "404 Not Found"));

    /* 405 with Allow. */
    r = cf_test_get(tc, "/submit");
    CHECK_INT(cf_test_status(r), 405);
    CHECK_STR(cf_test_header(r, "Allow"), "POST, PUT, OPTIONS");
    CHECK(contains(body(r), "405 Method Not Allowed"));
    CHECK_STR(body(req(tc, "PUT", "/submit", NULL, NULL)), "PUT");
    r = req(tc, "DELETE", "/user/1", NULL, NULL);
    CHECK_INT(cf_test_status(r), 405);
    CHECK_STR(cf_test_header(r, "Allow"), "GET, HEAD, OPTIONS");

    /* Automatic OPTIONS. */
    r = req(tc, "OPTIONS", "/user/1", NULL, NULL);
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(cf_test_header(r, "Allow"), "GET, HEAD, OPTIONS");
    CHECK_STR(body(r), "");
    r = req(tc, "OPTIONS", "/submit", NULL, NULL);
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(cf_test_header(r, "Allow"), "POST, PUT, OPTIONS");
    CHECK_INT(cf_test_status(req(tc, "OPTIONS", "/nothing-here", NULL, NULL)), 404);

    /* HEAD: the GET handler's headers, no body. */
    r = req(tc, "HEAD", "/user/7", NULL, NULL);
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(cf_test_header(r, "Content-Length"), "6");
    CHECK_STR(cf_test_header(r, "Content-Type"), "text/plain; charset=utf-8");
    size_t len = 99;
    cf_test_body(r, &len);
    CHECK_INT(len, 0);

    /* Trailing slash: 308 to the canonical URL, query kept. */
    r = cf_test_get(tc, "/items");
    CHECK_INT(cf_test_status(r), 308);
    CHECK_STR(cf_test_header(r, "Location"), "/items/");
    r = cf_test_get(tc, "/items?page=2&q=a%20b");
    CHECK_INT(cf_test_status(r), 308);
    CHECK_STR(cf_test_header(r, "Location"), "/items/?page=2&q=a%20b");
    CHECK_STR(body(cf_test_get(tc, "/items/")), "items");

    /* Method view. */
    r = cf_test_get(tc, "/thing");
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(body(r), "view get");
    r = req(tc, "POST", "/thing", NULL, "");
    CHECK_INT(cf_test_status(r), 201);
    CHECK_STR(body(r), "view post");
    r = req(tc, "DELETE", "/thing", NULL, NULL);
    CHECK_INT(cf_test_status(r), 405);
    CHECK_STR(cf_test_header(r, "Allow"), "GET, HEAD, POST, OPTIONS");
    r = req(tc, "HEAD", "/thing", NULL, NULL);
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(cf_test_header(r, "Content-Length"), "8");

    /* One rule, methods registered separately. */
    CHECK_STR(body(cf_test_get(tc, "/multi")), "multi get");
    CHECK_STR(body(req(tc, "POST", "/multi", NULL, "")), "multi post");
    r = req(tc, "DELETE", "/multi", NULL, NULL);
    CHECK_INT(cf_test_status(r), 405);
    CHECK_STR(cf_test_header(r, "Allow"), "GET, HEAD, POST, OPTIONS");
    /* "*" takes any method, also unknown ones; a method outside the known
     * list is routed by its exact name. */
    CHECK_STR(body(req(tc, "PATCH", "/anything", NULL, NULL)), "any PATCH");
    CHECK_STR(body(req(tc, "PURGE", "/anything", NULL, NULL)), "any PURGE");
    CHECK_STR(body(req(tc, "PURGE", "/cache", NULL, NULL)), "any PURGE");
    r = cf_test_get(tc, "/cache");
    CHECK_INT(cf_test_status(r), 405);
    CHECK_STR(cf_test_header(r, "Allow"), "OPTIONS, PURGE");
    /* An OPTIONS route of one's own replaces the automatic answer. */
    r = req(tc, "OPTIONS", "/own-options", NULL, NULL);
    CHECK_INT(cf_test_status(r), 204);
    CHECK_STR(cf_test_header(r, "X-Own"), "1");
    CHECK(cf_test_header(r, "Allow") == NULL);

    /* Endpoint names: the handler's identifier, or the name set. */
    CHECK_STR(body(cf_test_get(tc, "/endpoint")), "h_endpoint");
    CHECK_STR(body(cf_test_get(tc, "/endpoint2")), "renamed");
}

/* ---- requests ------------------------------------------------------------ */

static void h_args(cf_req *rq)
{
    const char *names[] = {"a", "b", "c", "d", "e", "x", "bad", "ok", "missing", "sp ace"};
    char *out = cf_strdup(rq, "");
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *v = cf_arg(rq, names[i]);
        out = cf_sprintf(rq, "%s%s=%s;", out, names[i], v ? v : "(null)");
    }
    cf_textf(rq, 200, "%s|%s", out, cf_query_string(rq));
}

/* Every field in order, then each repeated one's values: query or form. */
static void h_fields(cf_req *rq)
{
    bool get = strcmp(cf_method(rq), "GET") == 0;
    char *out = cf_strdup(rq, "");
    const char *name, *value;
    for (size_t i = 0; get ? cf_arg_at(rq, i, &name, &value) : cf_form_at(rq, i, &name, &value); i++)
        out = cf_sprintf(rq, "%s%s=%s;", out, name, value);
    size_t n = 99;
    const char **tags = get ? cf_arg_list(rq, "tag", &n) : cf_form_list(rq, "tag", &n);
    out = cf_sprintf(rq, "%s|%zu:", out, n);
    for (size_t i = 0; tags[i]; i++)
        out = cf_sprintf(rq, "%s%s,", out, tags[i]);
    const char **none = get ? cf_arg_list(rq, "none", NULL) : cf_form_list(rq, "none", NULL);
    cf_textf(rq, 200, "%s|%s", out, none[0] ? "?" : "empty");
}

static void h_headers(cf_req *rq)
{
    size_t n = 0;
    const char *name, *value;
    bool saw_custom = false;
    while (cf_header_at(rq, n, &name, &value)) {
        saw_custom |= strcmp(name, "X-Custom") == 0 && strcmp(value, "Some Value") == 0;
        n++;
    }
    cf_json(rq, 200, "{s:s?, s:s?, s:s?, s:s?, s:b, s:b}", "lower", cf_header(rq, "x-custom"),
            "upper", cf_header(rq, "X-CUSTOM"), "trimmed", cf_header(rq, "x-padded"), "none",
            cf_header(rq, "x-none"), "iterated", saw_custom, "past_end",
            cf_header_at(rq, n + 5, &name, &value));
}

static void h_cookies(cf_req *rq)
{
    cf_json(rq, 200, "{s:s?, s:s?, s:s?, s:s?, s:s?}", "a", cf_cookie(rq, "a"), "b",
            cf_cookie(rq, "b"), "c", cf_cookie(rq, "c"), "d", cf_cookie(rq, "d"), "none",
            cf_cookie(rq, "none"));
}

static void h_form(cf_req *rq)
{
    cf_json(rq, 200, "{s:s?, s:s?, s:s?}", "name", cf_form(rq, "name"), "age",
            cf_form(rq, "age"), "none", cf_form(rq, "none"));
}

static void h_json(cf_req *rq)
{
    json_t *j = cf_get_json(rq);
    if (!j)
        return cf_json(rq, 400, "{s:s}", "error", cf_errmsg(rq));
    /* Parsed once: a second call gives the same value. */
    if (cf_get_json(rq) != j)
        return cf_text(rq, 500, "parsed twice");
    cf_json(rq, 200, "{s:O}", "got", j);
}

static void h_binary(cf_req *rq)
{
    size_t len = 0;
    const char *b = cf_body(rq, &len);
    cf_send(rq, 200, "application/octet-stream", b, len);
}

static void h_nobody(cf_req *rq)
{
    size_t len = 99;
    const char *b = cf_body(rq, &len);
    cf_textf(rq, 200, "[%s] %zu", b, len);
}

static void h_url_for(cf_req *rq)
{
    const char *a = cf_url_for(rq, "h_user", "id", "42", NULL);
    const char *b = cf_url_for(rq, "h_user", "id", "7", "q", "a b&c", "page", "2", NULL);
    const char *c = cf_url_for(rq, "h_user", NULL);           /* missing parameter */
    const char *d = cf_url_for(rq, "no_such_route", NULL);    /* unknown route */
    const char *e = cf_url_for(rq, "h_user", "id", "abc", NULL); /* not an int */
    const char *f = cf_url_for(rq, "h_files", "rest", "x y/z.txt", NULL);
    const char *g = cf_url_for(rq, "renamed", NULL);
    cf_json(rq, 200, "{s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?}", "a", a, "b", b, "c", c, "d", d,
            "e", e, "f", f, "g", g);
}

static void h_g(cf_req *rq)
{
    static int value = 5;
    bool absent = cf_g_get(rq, "k") == NULL;
    cf_g_set(rq, "k", &value);
    cf_g_set(rq, "other", "x");
    int *got = cf_g_get(rq, "k");
    cf_g_set(rq, "k", "replaced");
    cf_json(rq, 200, "{s:b, s:i, s:s, s:s}", "absent", absent, "got", got ? *got : -1,
            "replaced", (char *)cf_g_get(rq, "k"), "other", (char *)cf_g_get(rq, "other"));
}

static void h_upload(cf_req *rq)
{
    size_t len;
    cf_body(rq, &len);
    cf_textf(rq, 200, "got %zu", len);
}

static void test_requests(cf_test_client *tc)
{
    cf_test_response *r =
        cf_test_get(tc, "/args?a=1&b=hello+world&c=%41%42%2b&d=&e&x=first&x=second&bad=%zz&ok=y"
                        "&sp%20ace=%E2%9C%93");
    CHECK_INT(cf_test_status(r), 200);
    /* A malformed escape stays as written (Werkzeug's rule). */
    CHECK_STR(body(r), "a=1;b=hello world;c=AB+;d=;e=;x=first;bad=%zz;ok=y;missing=(null);"
                       "sp ace=\xE2\x9C\x93;|a=1&b=hello+world&c=%41%42%2b&d=&e&x=first&x=second"
                       "&bad=%zz&ok=y&sp%20ace=%E2%9C%93");
    CHECK_STR(body(cf_test_get(tc, "/args")),
              "a=(null);b=(null);c=(null);d=(null);e=(null);x=(null);bad=(null);ok=(null);"
              "missing=(null);sp ace=(null);|");

    /* Repeated fields: all values in order, every field in wire order. */
    CHECK_STR(body(cf_test_get(tc, "/fields?tag=a&x=1&tag=b+c&tag=%ZZ&tag=")),
              "tag=a;x=1;tag=b c;tag=%ZZ;tag=;|4:a,b c,%ZZ,,|empty");
    CHECK_STR(body(cf_test_get(tc, "/fields")), "|0:|empty");
    const char *const form_fields[] = {"tag", "x y", "tag", "2", NULL};
    CHECK_STR(body(cf_test_post_form(tc, "/fields", form_fields)),
              "tag=x y;tag=2;|2:x y,2,|empty");

    /* Headers, case-insensitive. */
    const char *hh[] = {"X-Custom: Some Value", "x-padded:   trimmed  ", NULL};
    r = req(tc, "GET", "/headers", hh, NULL);
    json_t *j = cf_test_json(r);
    CHECK(j != NULL);
    CHECK_STR(json_string_value(json_object_get(j, "lower")), "Some Value");
    CHECK_STR(json_string_value(json_object_get(j, "upper")), "Some Value");
    CHECK_STR(json_string_value(json_object_get(j, "trimmed")), "trimmed");
    CHECK(json_is_null(json_object_get(j, "none")));
    CHECK(json_is_true(json_object_get(j, "iterated")));
    CHECK(json_is_false(json_object_get(j, "past_end")));

    /* Cookies. */
    const char *ch[] = {"Cookie: a=1; b=\"two\";c=x=y", "Cookie: d=4", NULL};
    j = cf_test_json(req(tc, "GET", "/cookies", ch, NULL));
    CHECK(j != NULL);
    CHECK_STR(json_string_value(json_object_get(j, "a")), "1");
    CHECK_STR(json_string_value(json_object_get(j, "b")), "two");
    CHECK_STR(json_string_value(json_object_get(j, "c")), "x=y");
    CHECK_STR(json_string_value(json_object_get(j, "d")), "4");
    CHECK(json_is_null(json_object_get(j, "none")));

    /* Form. */
    const char *fh[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    j = cf_test_json(req(tc, "POST", "/form", fh, "name=J%C3%B6rg+M%C3%BCller&age=41"));
    CHECK(j != NULL);
    CHECK_STR(json_string_value(json_object_get(j, "name")), "J\xC3\xB6rg M\xC3\xBCller");
    CHECK_STR(json_string_value(json_object_get(j, "age")), "41");
    CHECK(json_is_null(json_object_get(j, "none")));
    const char *fh2[] = {"Content-Type: application/x-www-form-urlencoded; charset=utf-8", NULL};
    j = cf_test_json(req(tc, "POST", "/form", fh2, "name=x"));
    CHECK_STR(json_string_value(json_object_get(j, "name")), "x");
    /* Not a form: nothing. */
    const char *th[] = {"Content-Type: text/plain", NULL};
    j = cf_test_json(req(tc, "POST", "/form", th, "name=x"));
    CHECK(json_is_null(json_object_get(j, "name")));

    /* JSON. */
    r = cf_test_post_json(tc, "/json", "{\"x\": [1, 2, {\"y\": null}], \"s\": \"\\u00e9\"}");
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(body(r), "{\"got\":{\"x\":[1,2,{\"y\":null}],\"s\":\"\xC3\xA9\"}}");
    const char *vh[] = {"Content-Type: application/vnd.api+json; charset=utf-8", NULL};
    r = req(tc, "POST", "/json", vh, "[true]");
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(body(r), "{\"got\":[true]}");
    r = cf_test_post_json(tc, "/json", "{\"x\": }");
    CHECK_INT(cf_test_status(r), 400);
    j = cf_test_json(r);
    const char *err = json_string_value(json_object_get(j, "error"));
    CHECK(contains(err, "line 1"));
    CHECK(contains(err, "column"));
    r = req(tc, "POST", "/json", th, "{\"x\": 1}");
    CHECK_INT(cf_test_status(r), 400);
    CHECK(contains(json_string_value(json_object_get(cf_test_json(r), "error")), "Content-Type"));
    r = cf_test_post_json(tc, "/json", "");
    CHECK_INT(cf_test_status(r), 400);
    CHECK(contains(json_string_value(json_object_get(cf_test_json(r), "error")), "empty"));
    /* A scalar is valid JSON too. */
    r = cf_test_post_json(tc, "/json", "12");
    CHECK_STR(body(r), "{\"got\":12}");

    /* Binary body, NULs and all. */
    unsigned char bin[256];
    for (int i = 0; i < 256; i++)
        bin[i] = (unsigned char)(255 - i);
    const char *bh[] = {"Content-Type: application/octet-stream", NULL};
    r = cf_test_request(tc, "POST", "/binary", bh, bin, sizeof bin);
    CHECK_INT(cf_test_status(r), 200);
    size_t len = 0;
    const char *b = cf_test_body(r, &len);
    CHECK_INT(len, 256);
    CHECK(len == 256 && memcmp(b, bin, 256) == 0);
    CHECK_STR(cf_test_header(r, "Content-Type"), "application/octet-stream");
    CHECK_STR(body(cf_test_get(tc, "/nobody")), "[] 0");

    /* Path decoding and dot segments. */
    CHECK_STR(body(cf_test_get(tc, "/files/a%20b/c%2Bd.txt")), "a b/c+d.txt|/files/a b/c+d.txt");
    CHECK_STR(body(cf_test_get(tc, "/hello/J%C3%B6rg")), "hello J\xC3\xB6rg");
    r = cf_test_get(tc, "/a/%2e%2e/b");
    CHECK_INT(cf_test_status(r), 400);
    CHECK_INT(cf_test_status(cf_test_get(tc, "/files/%2E%2E/secret")), 400);
    CHECK_INT(cf_test_status(cf_test_get(tc, "/files/a/%2e/b")), 400);
    CHECK_INT(cf_test_status(cf_test_get(tc, "/files/a%2")), 400);
    CHECK_INT(cf_test_status(cf_test_get(tc, "/files/a%00b")), 400);
    /* Dots inside a segment are fine. */
    CHECK_STR(body(cf_test_get(tc, "/files/..a/b..")), "..a/b..|/files/..a/b..");

    /* url_for. */
    j = cf_test_json(cf_test_get(tc, "/url-for"));
    CHECK(j != NULL);
    CHECK_STR(json_string_value(json_object_get(j, "a")), "/user/42");
    CHECK_STR(json_string_value(json_object_get(j, "b")), "/user/7?q=a%20b%26c&page=2");
    CHECK(json_is_null(json_object_get(j, "c")));
    CHECK(json_is_null(json_object_get(j, "d")));
    CHECK(json_is_null(json_object_get(j, "e")));
    CHECK_STR(json_string_value(json_object_get(j, "f")), "/files/x%20y/z.txt");
    CHECK_STR(json_string_value(json_object_get(j, "g")), "/endpoint2");

    /* g. */
    j = cf_test_json(cf_test_get(tc, "/g"));
    CHECK(json_is_true(json_object_get(j, "absent")));
    CHECK_INT(json_integer_value(json_object_get(j, "got")), 5);
    CHECK_STR(json_string_value(json_object_get(j, "replaced")), "replaced");
    CHECK_STR(json_string_value(json_object_get(j, "other")), "x");
    /* ... and it does not carry over into the next request. */
    j = cf_test_json(cf_test_get(tc, "/g"));
    CHECK(json_is_true(json_object_get(j, "absent")));

    /* Body limits: per route, and the app's. */
    r = req(tc, "POST", "/upload-small", NULL, "0123456789");
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(body(r), "got 10");
    r = req(tc, "POST", "/upload-small", NULL, "0123456789A");
    CHECK_INT(cf_test_status(r), 413);
    char *big = malloc(3000);
    memset(big, 'x', 2999);
    big[2999] = 0;
    r = req(tc, "POST", "/upload", NULL, big);
    CHECK_INT(cf_test_status(r), 200); /* app limit is 4000 */
    big = realloc(big, 5001);
    memset(big, 'x', 5000);
    big[5000] = 0;
    r = req(tc, "POST", "/upload", NULL, big);
    CHECK_INT(cf_test_status(r), 413);
    free(big);
}

/* ---- responses ------------------------------------------------------------ */

static void h_resp(cf_req *rq)
{
    const char *k = cf_arg(rq, "k");
    if (!strcmp(k, "text"))
        cf_text(rq, 201, "plain");
    else if (!strcmp(k, "html"))
        cf_html(rq, 200, "<b>hi</b>");
    else if (!strcmp(k, "send"))
        cf_send(rq, 202, "image/png", "\x89PNG", 4);
    else if (!strcmp(k, "json"))
        cf_json(rq, 200, "{s:i, s:[i, s], s:b, s:n}", "id", 7, "list", 1, "two", "ok", 1, "z");
    else if (!strcmp(k, "badjson"))
        cf_json(rq, 200, "{s:i", "id", 7);
    else if (!strcmp(k, "jsonvalue")) {
        json_t *v = json_array();
        for (int i = 0; i < 2000; i++) /* larger than one arena block, grown in pieces */
            json_array_append_new(v, json_string("abcdefghij"));
        cf_json_value(rq, 200, v);
    } else if (!strcmp(k, "jsonnull"))
        cf_json_value(rq, 200, NULL);
    else if (!strcmp(k, "replace")) {
        cf_text(rq, 200, "first");
        cf_json(rq, 202, "[i]", 1); /* a later response replaces the earlier one */
    } else if (!strcmp(k, "redirect"))
        cf_redirect(rq, 302, "/somewhere?x=1");
    else if (!strcmp(k, "badredirect"))
        cf_redirect(rq, 200, "/x");
    else if (!strcmp(k, "badstatus"))
        cf_send(rq, 42, NULL, "", 0);
    else if (!strcmp(k, "abort"))
        cf_abort(rq, 403);
    else if (!strcmp(k, "abort200"))
        cf_abort(rq, 200); /* not an error status: becomes 500 */
    else if (!strcmp(k, "fail"))
        cf_fail(rq, "secret detail %d", 42);
    else if (!strcmp(k, "none"))
        ; /* no response */
    else if (!strcmp(k, "ctype")) {
        cf_text(rq, 200, "a,b");
        cf_set_header(rq, "content-type", "text/csv");
    }
}

static void h_headers_out(cf_req *rq)
{
    int bad1 = cf_set_header(rq, "X-Bad", "a\r\nSet-Cookie: evil=1");
    int bad2 = cf_set_header(rq, "X-Bad", "line\nbreak");
    int bad3 = cf_add_header(rq, "X-Bad\r\nInjected", "v");
    int bad4 = cf_set_header(rq, "Bad Name", "v");
    int bad5 = cf_set_header(rq, "Bad:Name", "v");
    int bad6 = cf_set_header(rq, "", "v");
    int ok1 = cf_set_header(rq, "X-One", "1");
    int ok2 = cf_add_header(rq, "X-Multi", "a");
    int ok3 = cf_add_header(rq, "X-Multi", "b");
    cf_set_header(rq, "x-one", "replaced");
    const char *one = cf_response_header(rq, "X-ONE");
    cf_cookie_opts o = {.max_age = 3600, .path = "/app", .domain = "example.com",
                        .secure = true, .http_only = true, .same_site = "Lax"};
    int c1 = cf_set_cookie(rq, "sid", "abc123", &o);
    int c2 = cf_set_cookie(rq, "bad name", "v", NULL);
    int c3 = cf_set_cookie(rq, "n", "v;x", NULL);
    cf_cookie_opts evil = {.path = "/\r\nX: y"};
    int c4 = cf_set_cookie(rq, "n", "v", &evil);
    cf_textf(rq, 200, "%d %d %d %d %d %d|%d %d %d|%s|%d %d %d %d", bad1, bad2, bad3, bad4, bad5,
             bad6, ok1, ok2, ok3, one, c1, c2, c3, c4);
    /* After the body was set, headers can still change. */
    cf_set_header(rq, "X-Late", "yes");
}

static void h_cookie_plain(cf_req *rq)
{
    cf_set_cookie(rq, "k", "v", NULL);
    cf_text(rq, 200, "ok");
}

static void test_responses(cf_test_client *tc)
{
    cf_test_response *r = cf_test_get(tc, "/resp?k=text");
    CHECK_INT(cf_test_status(r), 201);
    CHECK_STR(body(r), "plain");
    CHECK_STR(cf_test_header(r, "Content-Type"), "text/plain; charset=utf-8");
    r = cf_test_get(tc, "/resp?k=html");
    CHECK_STR(cf_test_header(r, "Content-Type"), "text/html; charset=utf-8");
    CHECK_STR(body(r), "<b>hi</b>");
    r = cf_test_get(tc, "/resp?k=send");
    CHECK_INT(cf_test_status(r), 202);
    CHECK_STR(cf_test_header(r, "Content-Type"), "image/png");
    CHECK_STR(cf_test_header(r, "Content-Length"), "4");
    r = cf_test_get(tc, "/resp?k=json");
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(cf_test_header(r, "Content-Type"), "application/json");
    CHECK_STR(body(r), "{\"id\":7,\"list\":[1,\"two\"],\"ok\":true,\"z\":null}");
    r = cf_test_get(tc, "/resp?k=badjson");
    CHECK_INT(cf_test_status(r), 500);
    r = cf_test_get(tc, "/resp?k=jsonvalue");
    CHECK_INT(cf_test_status(r), 200);
    json_t *j = cf_test_json(r);
    CHECK(json_is_array(j) && json_array_size(j) == 2000);
    CHECK_STR(json_string_value(json_array_get(j, 1999)), "abcdefghij");
    CHECK_INT(cf_test_status(cf_test_get(tc, "/resp?k=jsonnull")), 500);
    r = cf_test_get(tc, "/resp?k=replace");
    CHECK_INT(cf_test_status(r), 202);
    CHECK_STR(body(r), "[1]");
    CHECK_STR(cf_test_header(r, "Content-Type"), "application/json");

    r = cf_test_get(tc, "/resp?k=redirect");
    CHECK_INT(cf_test_status(r), 302);
    CHECK_STR(cf_test_header(r, "Location"), "/somewhere?x=1");
    CHECK(contains(body(r), "/somewhere?x=1"));
    CHECK_INT(cf_test_status(cf_test_get(tc, "/resp?k=badredirect")), 500);
    CHECK_INT(cf_test_status(cf_test_get(tc, "/resp?k=badstatus")), 500);

    r = cf_test_get(tc, "/resp?k=abort");
    CHECK_INT(cf_test_status(r), 403);
    CHECK_STR(body(r), "403 Forbidden\n");
    CHECK_INT(cf_test_status(cf_test_get(tc, "/resp?k=abort200")), 500);

    /* Failures: the details stay private without debug. */
    r = cf_test_get(tc, "/resp?k=fail");
    CHECK_INT(cf_test_status(r), 500);
    CHECK_STR(body(r), "500 Internal Server Error\n");
    CHECK(!contains(body(r), "secret"));
    r = cf_test_get(tc, "/resp?k=none");
    CHECK_INT(cf_test_status(r), 500);
    CHECK_STR(body(r), "500 Internal Server Error\n");

    r = cf_test_get(tc, "/resp?k=ctype");
    CHECK_STR(cf_test_header(r, "Content-Type"), "text/csv");
    CHECK_STR(body(r), "a,b");

    r = cf_test_get(tc, "/headers-out");
    CHECK_INT(cf_test_status(r), 200);
    /* CF_EINVAL is -22. */
    CHECK_STR(body(r), "-22 -22 -22 -22 -22 -22|0 0 0|replaced|0 -22 -22 -22");
    CHECK_STR(cf_test_header(r, "X-One"), "replaced");
    CHECK_STR(cf_test_header(r, "X-Multi"), "a");
    CHECK_STR(cf_test_header(r, "X-Late"), "yes");
    CHECK(cf_test_header(r, "X-Bad") == NULL);
    CHECK(cf_test_header(r, "X") == NULL);
    CHECK_STR(cf_test_header(r, "Set-Cookie"),
              "sid=abc123; Path=/app; Max-Age=3600; Domain=example.com; Secure; HttpOnly; "
              "SameSite=Lax");
    CHECK_STR(cf_test_header(cf_test_get(tc, "/cookie-plain"), "Set-Cookie"), "k=v; Path=/");
}

/* ======================================================================== */
/* App 2: hooks, groups, middleware, error handlers                          */
/* ======================================================================== */

static char order[256];
static void rec(const char *s)
{
    if (strlen(order) + strlen(s) < sizeof order)
        strcat(order, s);
}

static int mw_seen_status;
static int teardown_error;
static double before_slept;

static void app_before(cf_req *rq)
{
    rec("A");
    if (cf_arg(rq, "deny"))
        cf_text(rq, 403, "denied");
    if (cf_arg(rq, "slow")) {
        double s = now_ms();
        int rc = cf_sleep(rq, 30);
        before_slept = rc == 0 ? now_ms() - s : -1;
        cf_g_set(rq, "who", "slow-before");
    }
    if (cf_arg(rq, "abortbefore"))
        cf_abort(rq, 403);
}
static void app_after_a(cf_req *rq)
{
    rec("a");
    if (cf_arg(rq, "teapot")) {
        cf_set_status(rq, 418);
        cf_set_header(rq, "X-After", "changed");
    }
}
static void app_after_b(cf_req *rq)
{
    rec("b");
    if (cf_arg(rq, "afterabort"))
        cf_abort(rq, 403);
}
static void app_teardown(cf_req *rq)
{
    rec("T");
    teardown_error = cf_req_error(rq);
}
static void app_teardown2(cf_req *rq) { (void)rq; rec("U"); }
static void grp_before(cf_req *rq) { (void)rq; rec("G"); }
static void grp_after(cf_req *rq) { (void)rq; rec("g"); }
static void grp_teardown(cf_req *rq) { (void)rq; rec("t"); }
static void sub_before(cf_req *rq) { (void)rq; rec("S"); }
static void sub_after(cf_req *rq) { (void)rq; rec("s"); }

static void mw_app(cf_req *rq)
{
    rec("[");
    cf_next(rq);
    mw_seen_status = cf_req_status(rq);
    rec("]");
}
static void mw_group(cf_req *rq)
{
    rec("(");
    cf_next(rq);
    rec(")");
}
static void mw_route1(cf_req *rq)
{
    rec("{");
    cf_next(rq);
    rec("}");
}
static void mw_route2(cf_req *rq)
{
    rec("<");
    cf_next(rq);
    cf_next(rq); /* a second call does nothing */
    rec(">");
}
static void mw_block(cf_req *rq)
{
    rec("x");
    cf_text(rq, 401, "blocked");
}

static void h_ping(cf_req *rq)
{
    rec("H");
    const char *who = cf_g_get(rq, "who");
    cf_textf(rq, 201, "pong %s", who ? who : "-");
}
static void h_never(cf_req *rq)
{
    rec("N");
    cf_text(rq, 200, "should not run");
}
static void h_fail(cf_req *rq) { rec("F"); (void)rq; }
static void h_notfound(cf_req *rq) { rec("H"); cf_abort(rq, 404); }
static void h_forbid(cf_req *rq) { rec("H"); cf_abort(rq, 403); }
static void h_teapot(cf_req *rq) { rec("H"); cf_abort(rq, 418); }
static void h_sub(cf_req *rq) { rec("H"); cf_text(rq, 200, "sub"); }

static void app_err404(cf_req *rq)
{
    rec("E");
    cf_json(rq, 404, "{s:s, s:s}", "error", "not here", "path", cf_path(rq));
}
static void app_err500(cf_req *rq)
{
    rec("E");
    /* Error handlers may await too. */
    int rc = cf_sleep(rq, 5);
    cf_textf(rq, 500, "custom 500: %s%s", cf_errmsg(rq), rc ? " (sleep failed)" : "");
}
static void app_err403(cf_req *rq)
{
    rec("E");
    cf_textf(rq, 403, "custom forbidden (%d)", cf_req_status(rq));
}
static void app_err418(cf_req *rq) { rec("E"); (void)rq; /* answers nothing */ }
static void grp_err404(cf_req *rq)
{
    rec("e");
    cf_text(rq, 404, "api: no such thing");
}

static cf_test_response *run(cf_test_client *tc, const char *target)
{
    order[0] = 0;
    return cf_test_get(tc, target);
}

static void test_hooks(cf_test_client *tc)
{
    cf_test_response *r = run(tc, "/api/ping");
    CHECK_INT(cf_test_status(r), 201);
    CHECK_STR(body(r), "pong -");
    /* after: inner first, newest first; teardown: inner first, newest first */
    CHECK_STR(order, "AG[({<H>})]gbatUT");
    CHECK_INT(mw_seen_status, 201);
    CHECK_INT(teardown_error, 0);

    /* Nested groups: their hooks nest too; no route middleware here. */
    r = run(tc, "/api/v1/sub");
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(order, "AGS[(H)]sgbatUT");

    /* Route middleware that answers: the handler never runs. */
    r = run(tc, "/api/blocked");
    CHECK_INT(cf_test_status(r), 401);
    CHECK_STR(body(r), "blocked");
    CHECK_STR(order, "AG[(x)]gbatUT");
    CHECK_INT(mw_seen_status, 401);

    /* A before hook answering: no group hooks before, no middleware, no
     * handler; after and teardown hooks still run. */
    r = run(tc, "/api/ping?deny=1");
    CHECK_INT(cf_test_status(r), 403);
    CHECK_STR(body(r), "denied");
    CHECK_STR(order, "AgbatUT");
    /* ... and one aborting goes to the error handler. */
    r = run(tc, "/api/ping?abortbefore=1");
    CHECK_INT(cf_test_status(r), 403);
    CHECK_STR(body(r), "custom forbidden (403)");
    CHECK_STR(order, "AEgbatUT");

    /* An after hook aborting: the error handler makes the response, and
     * the remaining after hooks still run. */
    r = run(tc, "/api/ping?afterabort=1");
    CHECK_INT(cf_test_status(r), 403);
    CHECK_STR(body(r), "custom forbidden (403)");
    CHECK_STR(order, "AG[({<H>})]gbEatUT");

    /* A before hook that awaits, and passes a value through g. */
    r = run(tc, "/api/ping?slow=1");
    CHECK_INT(cf_test_status(r), 201);
    CHECK_STR(body(r), "pong slow-before");
    CHECK(before_slept >= 27); /* 30 ms of the loop clock: at least 27 real ms */

    /* An after hook changing status and headers. */
    r = run(tc, "/api/ping?teapot=1");
    CHECK_INT(cf_test_status(r), 418);
    CHECK_STR(cf_test_header(r, "X-After"), "changed");
    CHECK_STR(body(r), "pong -");

    /* A handler that answers nothing: 500 through the app's handler, the
     * teardown sees the failure. */
    r = run(tc, "/api/fail");
    CHECK_INT(cf_test_status(r), 500);
    CHECK_STR(body(r), "custom 500: the handler returned without a response");
    CHECK_STR(order, "AG[(F)]EgbatUT");
    CHECK_INT(teardown_error, CF_EFAIL);
    CHECK_INT(mw_seen_status, 0); /* nothing set yet when the chain returned */

    /* Group error handler first for its routes... */
    r = run(tc, "/api/missing");
    CHECK_INT(cf_test_status(r), 404);
    CHECK_STR(body(r), "api: no such thing");
    CHECK_STR(order, "AG[(H)]egbatUT");
    /* ...the app's for unmatched URLs, even under the group's prefix. */
    r = run(tc, "/api/zzz");
    CHECK_INT(cf_test_status(r), 404);
    json_t *j = cf_test_json(r);
    CHECK_STR(json_string_value(json_object_get(j, "error")), "not here");
    CHECK_STR(json_string_value(json_object_get(j, "path")), "/api/zzz");
    CHECK_STR(order, "AEbaUT");
    /* ...and for a group route whose status the group has no handler for. */
    r = run(tc, "/api/forbid");
    CHECK_INT(cf_test_status(r), 403);
    CHECK_STR(body(r), "custom forbidden (403)");
    /* An error handler that answers nothing: the default page. */
    r = run(tc, "/teapot");
    CHECK_INT(cf_test_status(r), 418);
    CHECK(contains(body(r), "418"));
    /* 405 has no handler here: default page, with Allow. */
    order[0] = 0;
    r = cf_test_request(tc, "POST", "/api/ping", NULL, "", 0);
    CHECK_INT(cf_test_status(r), 405);
    CHECK_STR(cf_test_header(r, "Allow"), "GET, HEAD, OPTIONS");
    CHECK_STR(order, "AbaUT"); /* app hooks only: no route, no group */
    CHECK_INT(teardown_error, 0);
}

/* ---- a client on its own thread ------------------------------------------ */

static struct {
    int status;
    size_t pooled_before_free, pooled_after_free;
} on_thread;

static void *thread_client(void *arg)
{
    cf_test_client *tc = cf_test_client_new(arg);
    if (!tc)
        return NULL;
    for (int i = 0; i < 3; i++)
        on_thread.status = cf_test_status(cf_test_get(tc, "/user/5"));
    on_thread.pooled_before_free = cf_coro_pooled();
    cf_test_client_free(tc);
    on_thread.pooled_after_free = cf_coro_pooled();
    return NULL;
}

static void test_thread_client(cf_app *app)
{
    pthread_t th;
    CHECK(pthread_create(&th, NULL, thread_client, app) == 0);
    pthread_join(th, NULL);
    CHECK_INT(on_thread.status, 200);
    CHECK(on_thread.pooled_before_free > 0);
    CHECK_INT(on_thread.pooled_after_free, 0);
}

/* ======================================================================== */
/* App 3: debug on                                                            */
/* ======================================================================== */

static void h_dfail(cf_req *rq) { cf_fail(rq, "secret detail %d", 42); }
static void h_dnone(cf_req *rq) { (void)rq; }

static void test_debug(void)
{
    cf_app *app = cf_app_new();
    cf_app_set(app, CF_OPT_ACCESS_LOG, 0);
    CHECK_INT(cf_app_set(app, CF_OPT_DEBUG, 1), 0);
    CHECK_INT(cf_app_get(app, CF_OPT_DEBUG), 1);
    CHECK_INT(cf_app_set(app, CF_OPT_STACK_SIZE, 100), CF_EINVAL);
    CHECK_INT(cf_app_set(app, CF_OPT_MAX_BODY, -1), CF_EINVAL);
    cf_route(app, "GET", "/fail", h_dfail);
    cf_route(app, "GET", "/none", h_dnone);
    cf_test_client *tc = cf_test_client_new(app);
    cf_test_response *r = cf_test_get(tc, "/fail");
    CHECK_INT(cf_test_status(r), 500);
    CHECK(contains(body(r), "secret detail 42"));
    r = cf_test_get(tc, "/none");
    CHECK_INT(cf_test_status(r), 500);
    CHECK(contains(body(r), "without a response"));
    cf_test_client_free(tc);
    cf_app_free(app);
}

int main(void)
{
    /* App 1 */
    cf_app *app = cf_app_new();
    cf_app_set(app, CF_OPT_ACCESS_LOG, 0);
    cf_app_set(app, CF_OPT_MAX_BODY, 4000);
    cf_route(app, "GET", "/user/<int:id>", h_user);
    cf_route(app, "GET", "/price/<float:p>", h_price);
    cf_route(app, "GET", "/files/<path:rest>", h_files);
    cf_route(app, "GET", "/item/<uuid:u>", h_item);
    cf_route(app, "GET", "/hello/<name>", h_hello);
    cf_route(app, "POST,PUT", "/submit", h_submit);
    cf_route(app, "GET", "/items/", h_items);
    cf_route(app, "GET", "/endpoint", h_endpoint);
    cf_route_set_name(cf_route(app, "GET", "/endpoint2", h_endpoint), "renamed");
    static const cf_view view = {.get = v_get, .post = v_post};
    cf_route_view(app, "/thing", &view, "thing");
    cf_route(app, "GET", "/multi", h_multi_get);
    cf_route(app, "POST", "/multi", h_multi_post);
    cf_route(app, "*", "/anything", h_any_method);
    cf_route(app, "purge", "/cache", h_any_method);
    cf_route(app, "OPTIONS", "/own-options", h_own_options);
    cf_route(app, "GET", "/args", h_args);
    cf_route(app, "GET", "/fields", h_fields);
    cf_route(app, "POST", "/fields", h_fields);
    cf_route(app, "GET", "/headers", h_headers);
    cf_route(app, "GET", "/cookies", h_cookies);
    cf_route(app, "POST", "/form", h_form);
    cf_route(app, "POST", "/json", h_json);
    cf_route(app, "POST", "/binary", h_binary);
    cf_route(app, "GET", "/nobody", h_nobody);
    cf_route(app, "GET", "/url-for", h_url_for);
    cf_route(app, "GET", "/g", h_g);
    cf_route_set_max_body(cf_route(app, "POST", "/upload-small", h_upload), 10);
    cf_route(app, "POST", "/upload", h_upload);
    cf_route(app, "GET", "/resp", h_resp);
    cf_route(app, "GET", "/headers-out", h_headers_out);
    cf_route(app, "GET", "/cookie-plain", h_cookie_plain);
    cf_test_client *tc = cf_test_client_new(app);
    CHECK(tc != NULL);
    test_routing(tc);
    test_requests(tc);
    test_responses(tc);
    cf_test_client_free(tc);
    test_thread_client(app);
    cf_app_free(app);

    /* App 2 */
    app = cf_app_new();
    cf_app_set(app, CF_OPT_ACCESS_LOG, 0);
    cf_before_request(app, app_before);
    cf_after_request(app, app_after_a);
    cf_after_request(app, app_after_b);
    cf_teardown_request(app, app_teardown);
    cf_teardown_request(app, app_teardown2);
    cf_errorhandler(app, 404, app_err404);
    cf_errorhandler(app, 500, app_err500);
    cf_errorhandler(app, 403, app_err403);
    cf_errorhandler(app, 418, app_err418);
    cf_use(app, mw_app);
    cf_group *api = cf_group_new(app, "/api/");
    cf_before_request(api, grp_before);
    cf_after_request(api, grp_after);
    cf_teardown_request(api, grp_teardown);
    cf_errorhandler(api, 404, grp_err404);
    cf_use(api, mw_group);
    cf_route *ping = cf_route(api, "GET", "/ping", h_ping);
    cf_route_use(ping, mw_route1);
    cf_route_use(ping, mw_route2);
    cf_route_use(cf_route(api, "GET", "/blocked", h_never), mw_block);
    cf_route(api, "GET", "/fail", h_fail);
    cf_route(api, "GET", "/missing", h_notfound);
    cf_route(api, "GET", "/forbid", h_forbid);
    cf_group *sub = cf_group_new(api, "/v1");
    cf_before_request(sub, sub_before);
    cf_after_request(sub, sub_after);
    cf_route(sub, "GET", "/sub", h_sub);
    cf_route(app, "GET", "/teapot", h_teapot);
    tc = cf_test_client_new(app);
    CHECK(tc != NULL);
    test_hooks(tc);
    cf_test_client_free(tc);
    cf_app_free(app);

    test_debug();
    return CHECK_DONE();
}
