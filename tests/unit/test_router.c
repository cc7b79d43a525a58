/*
 * test_router.c — unit tests for the URL router (src/app/router.c): the
 * converters, priority and backtracking, the trailing-slash redirect,
 * parameter extraction, rule validation and cf_rule_build round trips.
 */
#include "app/router.h"

#include "check.h"

#include <stdio.h>
#include <string.h>

static cf_match m;

/* Match a NUL-terminated path; returns cf_router_match's result. */
static int match(cf_router *r, const char *path)
{
    memset(&m, 0, sizeof m);
    return cf_router_match(r, path, strlen(path), &m);
}

/* Value of the matched parameter `name` as a C string ("" if absent, so
 * CHECK_STR shows the difference). */
static const char *param(const char *name)
{
    static char buf[4][256];
    static int which;
    char *b = buf[which++ & 3];
    for (size_t i = 0; i < m.nparams; i++) {
        if (strcmp(m.params[i].name, name) == 0) {
            snprintf(b, 256, "%.*s", (int)m.params[i].len, m.params[i].value);
            return b;
        }
    }
    return "<absent>";
}

static const char *rule_of_match(void) { return m.rule ? cf_rule_text(m.rule) : "(none)"; }

static cf_rule *add(cf_router *r, const char *text)
{
    const char *err = NULL;
    cf_rule *rule = cf_router_add(r, text, &err);
    if (!rule)
        fprintf(stderr, "add(%s) failed: %s\n", text, err ? err : "?");
    CHECK(rule != NULL);
    return rule;
}

/* get() for cf_rule_build over a NULL-terminated name/value array */
static const char *kv_get(void *ctx, const char *name)
{
    const char **kv = ctx;
    for (; kv[0]; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

static void test_converters(void)
{
    cf_router *r = cf_router_new();
    add(r, "/i/<int:v>");
    add(r, "/f/<float:v>");
    add(r, "/u/<uuid:v>");
    add(r, "/s/<v>");
    add(r, "/s2/<string:v>");
    add(r, "/p/<path:v>");

    /* int */
    CHECK_INT(match(r, "/i/0"), 1);
    CHECK_STR(param("v"), "0");
    CHECK_INT(match(r, "/i/42"), 1);
    CHECK_STR(param("v"), "42");
    CHECK_INT(match(r, "/i/007"), 1);
    CHECK_INT(match(r, "/i/9223372036854775807"), 1); /* INT64_MAX */
    CHECK_INT(match(r, "/i/9223372036854775808"), 0);
    CHECK_INT(match(r, "/i/99999999999999999999"), 0);
    CHECK_INT(match(r, "/i/-1"), 0);
    CHECK_INT(match(r, "/i/+1"), 0);
    CHECK_INT(match(r, "/i/1a"), 0);
    CHECK_INT(match(r, "/i/1.5"), 0);
    CHECK_INT(match(r, "/i/"), 0);
    CHECK_INT(match(r, "/i/1/"), 0);

    /* float */
    CHECK_INT(match(r, "/f/1.5"), 1);
    CHECK_STR(param("v"), "1.5");
    CHECK_INT(match(r, "/f/0.0"), 1);
    CHECK_INT(match(r, "/f/1."), 0);
    CHECK_INT(match(r, "/f/.5"), 0);
    CHECK_INT(match(r, "/f/1"), 0);
    CHECK_INT(match(r, "/f/-1.5"), 0);
    CHECK_INT(match(r, "/f/1e5"), 0);
    CHECK_INT(match(r, "/f/1.5e3"), 0);
    CHECK_INT(match(r, "/f/1.2.3"), 0);

    /* uuid */
    CHECK_INT(match(r, "/u/123e4567-e89b-12d3-a456-426614174000"), 1);
    CHECK_STR(param("v"), "123e4567-e89b-12d3-a456-426614174000");
    CHECK_INT(match(r, "/u/123E4567-E89B-12D3-A456-426614174ABC"), 1);
    CHECK_INT(match(r, "/u/123e4567e89b12d3a456426614174000"), 0);
    CHECK_INT(match(r, "/u/123e4567-e89b-12d3-a456-42661417400"), 0);
    CHECK_INT(match(r, "/u/123e4567-e89b-12d3-a456-4266141740000"), 0);
    CHECK_INT(match(r, "/u/123g4567-e89b-12d3-a456-426614174000"), 0);
    CHECK_INT(match(r, "/u/123e4567-e89b-12d3-a456_426614174000"), 0);

    /* string */
    CHECK_INT(match(r, "/s/hello world"), 1);
    CHECK_STR(param("v"), "hello world");
    CHECK_INT(match(r, "/s2/x"), 1);
    CHECK_STR(param("v"), "x");
    CHECK_INT(match(r, "/s/a/b"), 0);
    CHECK_INT(match(r, "/s/"), 0);
    CHECK_INT(match(r, "/s//"), 0);

    /* path */
    CHECK_INT(match(r, "/p/a"), 1);
    CHECK_STR(param("v"), "a");
    CHECK_INT(match(r, "/p/a/b/c.txt"), 1);
    CHECK_STR(param("v"), "a/b/c.txt");
    CHECK_INT(match(r, "/p/a/"), 1);
    CHECK_STR(param("v"), "a/");
    CHECK_INT(match(r, "/p/"), 0);
    CHECK_INT(match(r, "/p"), 0);
    CHECK_INT(match(r, "/p//etc/passwd"), 0); /* never starts with '/' */

    /* the path need not be NUL-terminated: only len bytes count */
    memset(&m, 0, sizeof m);
    CHECK_INT(cf_router_match(r, "/i/12345/extra", 6, &m), 1);
    CHECK_INT(m.nparams, 1);
    CHECK_INT(m.params[0].len, 3);
    CHECK(memcmp(m.params[0].value, "123", 3) == 0);

    /* not a path at all */
    CHECK_INT(match(r, ""), 0);
    CHECK_INT(match(r, "i/1"), 0);
    cf_router_free(r);
}

static void test_static_and_root(void)
{
    cf_router *r = cf_router_new();
    add(r, "/");
    add(r, "/a");
    add(r, "/a/b/c");
    add(r, "/hello world");
    CHECK_INT(match(r, "/"), 1);
    CHECK_STR(rule_of_match(), "/");
    CHECK_INT(m.nparams, 0);
    CHECK_INT(match(r, "/a"), 1);
    CHECK_STR(rule_of_match(), "/a");
    CHECK_INT(match(r, "/a/b/c"), 1);
    CHECK_INT(match(r, "/a/b"), 0);
    CHECK_INT(match(r, "/a/b/c/d"), 0);
    CHECK_INT(match(r, "/ab"), 0);
    CHECK_INT(match(r, "//a"), 0); /* empty segment never matches "a" */
    CHECK_INT(match(r, "/a//b/c"), 0);
    CHECK_INT(match(r, "/hello world"), 1);
    cf_router_free(r);

    /* many static children: exercises the hashed lookup */
    r = cf_router_new();
    char buf[64];
    for (int i = 0; i < 100; i++) {
        snprintf(buf, sizeof buf, "/s%d", i);
        add(r, buf);
        snprintf(buf, sizeof buf, "/x/s%d/end", i);
        add(r, buf);
    }
    add(r, "/x/<name>/end");
    for (int i = 0; i < 100; i++) {
        snprintf(buf, sizeof buf, "/s%d", i);
        CHECK_INT(match(r, buf), 1);
        CHECK_STR(rule_of_match(), buf);
        snprintf(buf, sizeof buf, "/x/s%d/end", i);
        CHECK_INT(match(r, buf), 1);
        CHECK_STR(rule_of_match(), buf);
        CHECK_INT(m.nparams, 0);
    }
    CHECK_INT(match(r, "/s100"), 0);
    CHECK_INT(match(r, "/x/s100/end"), 1);
    CHECK_STR(rule_of_match(), "/x/<name>/end");
    CHECK_STR(param("name"), "s100");
    cf_router_free(r);
}

static void test_priorities(void)
{
    cf_router *r = cf_router_new();
    /* registered weakest first: order must not matter */
    add(r, "/x/<path:p>");
    add(r, "/x/<s>");
    add(r, "/x/<int:i>");
    add(r, "/x/<float:f>");
    add(r, "/x/<uuid:u>");
    add(r, "/x/new");

    CHECK_INT(match(r, "/x/new"), 1);
    CHECK_STR(rule_of_match(), "/x/new");
    CHECK_INT(match(r, "/x/12"), 1);
    CHECK_STR(rule_of_match(), "/x/<int:i>");
    CHECK_STR(param("i"), "12");
    CHECK_INT(match(r, "/x/1.25"), 1);
    CHECK_STR(rule_of_match(), "/x/<float:f>");
    CHECK_INT(match(r, "/x/123e4567-e89b-12d3-a456-426614174000"), 1);
    CHECK_STR(rule_of_match(), "/x/<uuid:u>");
    CHECK_INT(match(r, "/x/newer"), 1);
    CHECK_STR(rule_of_match(), "/x/<s>");
    CHECK_INT(match(r, "/x/-5"), 1);
    CHECK_STR(rule_of_match(), "/x/<s>");
    CHECK_INT(match(r, "/x/new/more"), 1);
    CHECK_STR(rule_of_match(), "/x/<path:p>");
    CHECK_STR(param("p"), "new/more");
    cf_router_free(r);

    /* backtracking */
    r = cf_router_new();
    add(r, "/a/<x>/c");
    add(r, "/a/b/<y>");
    CHECK_INT(match(r, "/a/b/c"), 1);
    CHECK_STR(rule_of_match(), "/a/b/<y>");
    CHECK_STR(param("y"), "c");
    CHECK_INT(match(r, "/a/b/d"), 1);
    CHECK_STR(rule_of_match(), "/a/b/<y>");
    CHECK_STR(param("y"), "d");
    CHECK_INT(match(r, "/a/z/c"), 1);
    CHECK_STR(rule_of_match(), "/a/<x>/c");
    CHECK_STR(param("x"), "z");
    CHECK_INT(m.nparams, 1);
    CHECK_INT(match(r, "/a/z/d"), 0);
    cf_router_free(r);

    /* deeper backtracking: static branch dead-ends two levels down, the
     * int branch then fails on its value, string wins; then path */
    r = cf_router_new();
    add(r, "/u/me/settings/<int:n>");
    add(r, "/u/<int:id>/settings/<name>");
    add(r, "/u/<user>/settings/<key>");
    add(r, "/u/<path:rest>");
    CHECK_INT(match(r, "/u/me/settings/3"), 1);
    CHECK_STR(rule_of_match(), "/u/me/settings/<int:n>");
    CHECK_INT(match(r, "/u/me/settings/theme"), 1);
    CHECK_STR(rule_of_match(), "/u/<user>/settings/<key>");
    CHECK_STR(param("user"), "me");
    CHECK_STR(param("key"), "theme");
    CHECK_INT(match(r, "/u/7/settings/theme"), 1);
    CHECK_STR(rule_of_match(), "/u/<int:id>/settings/<name>");
    CHECK_STR(param("id"), "7");
    CHECK_STR(param("name"), "theme");
    CHECK_INT(m.nparams, 2);
    CHECK_INT(match(r, "/u/7/other/theme"), 1);
    CHECK_STR(rule_of_match(), "/u/<path:rest>");
    CHECK_STR(param("rest"), "7/other/theme");
    CHECK_INT(m.nparams, 1);
    cf_router_free(r);
}

static void test_trailing_slash(void)
{
    cf_router *r = cf_router_new();
    add(r, "/items/");
    add(r, "/users/<int:id>/");
    add(r, "/both");
    add(r, "/both/");
    CHECK_INT(match(r, "/items/"), 1);
    CHECK_STR(rule_of_match(), "/items/");
    CHECK_INT(match(r, "/items"), 2);
    CHECK_STR(rule_of_match(), "/items/");
    CHECK_INT(match(r, "/items//"), 0);
    CHECK_INT(match(r, "/users/5"), 2);
    CHECK_STR(rule_of_match(), "/users/<int:id>/");
    CHECK_STR(param("id"), "5");
    CHECK_INT(match(r, "/users/5/"), 1);
    CHECK_INT(match(r, "/users/x"), 0);
    CHECK_INT(match(r, "/both"), 1);
    CHECK_STR(rule_of_match(), "/both");
    CHECK_INT(match(r, "/both/"), 1);
    CHECK_STR(rule_of_match(), "/both/");
    CHECK_INT(match(r, "/nothing"), 0);
    /* an exact match elsewhere wins over the redirect */
    add(r, "/<page>");
    CHECK_INT(match(r, "/items"), 1);
    CHECK_STR(rule_of_match(), "/<page>");
    cf_router_free(r);

    /* a path rule never asks for a redirect */
    r = cf_router_new();
    add(r, "/f/<path:p>");
    CHECK_INT(match(r, "/f"), 0);
    cf_router_free(r);
}

static void test_params(void)
{
    cf_router *r = cf_router_new();
    add(r, "/org/<org>/repo/<int:id>/file/<path:file>");
    CHECK_INT(match(r, "/org/acme/repo/17/file/src/main.c"), 1);
    CHECK_INT(m.nparams, 3);
    CHECK_STR(m.params[0].name, "org");
    CHECK_STR(m.params[1].name, "id");
    CHECK_STR(m.params[2].name, "file");
    CHECK_STR(param("org"), "acme");
    CHECK_STR(param("id"), "17");
    CHECK_STR(param("file"), "src/main.c");

    /* rules sharing trie nodes keep their own names */
    add(r, "/org/<name>/members");
    CHECK_INT(match(r, "/org/acme/members"), 1);
    CHECK_INT(m.nparams, 1);
    CHECK_STR(param("name"), "acme");

    /* 16 parameters is the maximum and works */
    char rule[512] = "", path[256] = "";
    for (int i = 0; i < CF_MAX_PARAMS; i++) {
        snprintf(rule + strlen(rule), sizeof rule - strlen(rule), "/<p%d>", i);
        snprintf(path + strlen(path), sizeof path - strlen(path), "/v%d", i);
    }
    add(r, rule);
    CHECK_INT(match(r, path), 1);
    CHECK_INT(m.nparams, CF_MAX_PARAMS);
    CHECK_STR(param("p15"), "v15");
    CHECK(cf_rule_has_param(m.rule, "p0"));
    CHECK(!cf_rule_has_param(m.rule, "p16"));
    cf_router_free(r);
}

static void test_add(void)
{
    cf_router *r = cf_router_new();
    cf_rule *a = add(r, "/x/<int:id>");
    CHECK(cf_router_add(r, "/x/<int:id>", NULL) == a);
    CHECK(add(r, "/x/<int:id>/") != a);
    CHECK_STR(cf_rule_text(a), "/x/<int:id>");
    int data;
    cf_rule_set_data(a, &data);
    CHECK(cf_rule_data(a) == &data);
    CHECK(cf_rule_has_param(a, "id"));
    CHECK(!cf_rule_has_param(a, "i"));
    CHECK_INT(cf_rule_nparams(a), 1);
    CHECK_STR(cf_rule_param_name(a, 0), "id");
    CHECK(cf_rule_param_name(a, 1) == NULL);

    /* same paths, different text: the first one added wins */
    CHECK(cf_rule_shadowed_by(a) == NULL);
    cf_rule *b = add(r, "/x/<int:num>");
    CHECK(b != a);
    CHECK(cf_rule_shadowed_by(b) == a);
    CHECK_INT(match(r, "/x/3"), 1);
    CHECK(m.rule == a);
    CHECK_STR(param("id"), "3");

    static const char *const bad[] = {
        "",
        "x/y",
        "/<foo:x>",
        "/<:x>",
        "/<int(min=1):x>",
        "/<x>/<int:x>",
        "/<int:1x>",
        "/<int:x-y>",
        "/<>",
        "/<int:>",
        "/<int: x>",
        "/<int:x",
        "/<int:x/y>",
        "/a>",
        "/<<x>>",
        "/a<int:x>",
        "/<int:x>b",
        "/<a><b>",
        "/<path:p>/x",
        "/<path:p>/",
        "/<a>/<b>/<c>/<d>/<e>/<f>/<g>/<h>/<i>/<j>/<k>/<l>/<m>/<n>/<o>/<p>/<q>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *err = NULL;
        cf_rule *rule = cf_router_add(r, bad[i], &err);
        if (rule || !err || !*err)
            fprintf(stderr, "bad rule accepted or no message: \"%s\"\n", bad[i]);
        CHECK(rule == NULL);
        CHECK(err != NULL && *err);
    }
    /* the messages say what is wrong */
    const char *err = NULL;
    CHECK(!cf_router_add(r, "/<foo:x>", &err) && strstr(err, "converter"));
    CHECK(!cf_router_add(r, "/<x>/<y>/<x>", &err) && strstr(err, "duplicate"));
    CHECK(!cf_router_add(r, "/<x", &err) && strstr(err, "unbalanced"));
    CHECK(!cf_router_add(r, "/a<x>", &err) && strstr(err, "whole segment"));
    CHECK(!cf_router_add(r, "/<path:x>/y", &err) && strstr(err, "last"));
    CHECK(!cf_router_add(r, "/<2x>", &err) && strstr(err, "name"));
    CHECK(!cf_router_add(r, "nope", &err) && strstr(err, "start with"));
    /* a failed add leaves the router as it was */
    CHECK_INT(match(r, "/anything/here"), 0);
    cf_router_free(r);
    cf_router_free(NULL);
}

/* Build then match gives back the same parameter values. */
static void roundtrip(cf_router *r, cf_rule *rule, const char **kv, const char *want)
{
    char out[256];
    int n = cf_rule_build(rule, kv_get, kv, out, sizeof out);
    CHECK_STR(out, want);
    CHECK_INT(n, (long long)strlen(want));
    /* the server percent-decodes before routing; do the same here */
    char dec[256];
    size_t d = 0;
    for (int i = 0; i < n; i++) {
        if (out[i] == '%') {
            unsigned v;
            sscanf(out + i + 1, "%2x", &v);
            dec[d++] = (char)v;
            i += 2;
        } else {
            dec[d++] = out[i];
        }
    }
    memset(&m, 0, sizeof m);
    CHECK_INT(cf_router_match(r, dec, d, &m), 1);
    CHECK(m.rule == rule);
    for (const char **p = kv; p[0]; p += 2)
        if (cf_rule_has_param(rule, p[0]))
            CHECK_STR(param(p[0]), p[1]);
}

static void test_build(void)
{
    cf_router *r = cf_router_new();
    cf_rule *user = add(r, "/user/<int:id>");
    cf_rule *file = add(r, "/files/<path:name>");
    cf_rule *mix = add(r, "/t/<tag>/<float:x>/<uuid:u>/end/");
    cf_rule *root = add(r, "/");
    cf_rule *space = add(r, "/a b/<s>");

    roundtrip(r, user, (const char *[]){"id", "42", NULL}, "/user/42");
    roundtrip(r, file, (const char *[]){"name", "dir/sub/a b.txt", NULL},
              "/files/dir/sub/a%20b.txt");
    roundtrip(r, mix,
              (const char *[]){"tag", "a b?c%d#e", "x", "2.5", "u",
                               "123E4567-e89b-12d3-a456-426614174000", NULL},
              "/t/a%20b%3Fc%25d%23e/2.5/123E4567-e89b-12d3-a456-426614174000/end/");
    roundtrip(r, root, (const char *[]){NULL}, "/");
    roundtrip(r, space, (const char *[]){"s", "x", NULL}, "/a%20b/x");
    /* characters a path segment allows are kept; non-ASCII bytes encoded */
    roundtrip(r, mix,
              (const char *[]){"tag", "a:b@c+d=e~f,g;h", "x", "0.0", "u",
                               "00000000-0000-0000-0000-000000000000", NULL},
              "/t/a:b@c+d=e~f,g;h/0.0/00000000-0000-0000-0000-000000000000/end/");
    roundtrip(r, user, (const char *[]){"id", "7", "extra", "ignored", NULL}, "/user/7");
    roundtrip(r, file, (const char *[]){"name", "caf\xc3\xa9", NULL}, "/files/caf%C3%A9");

    char out[64];
    /* missing or invalid values */
    CHECK_INT(cf_rule_build(user, kv_get, (const char *[]){NULL}, out, sizeof out), -1);
    CHECK_INT(cf_rule_build(user, kv_get, (const char *[]){"id", "abc", NULL}, out, sizeof out),
              -1);
    CHECK_INT(cf_rule_build(user, kv_get, (const char *[]){"id", "-1", NULL}, out, sizeof out),
              -1);
    CHECK_INT(cf_rule_build(user, kv_get,
                            (const char *[]){"id", "99999999999999999999", NULL}, out,
                            sizeof out),
              -1);
    CHECK_INT(cf_rule_build(user, kv_get, (const char *[]){"id", "", NULL}, out, sizeof out),
              -1);
    CHECK_INT(cf_rule_build(space, kv_get, (const char *[]){"s", "", NULL}, out, sizeof out), -1);
    CHECK_INT(cf_rule_build(space, kv_get, (const char *[]){"s", "a/b", NULL}, out, sizeof out),
              -1);
    CHECK_INT(cf_rule_build(file, kv_get, (const char *[]){"name", "", NULL}, out, sizeof out),
              -1);
    CHECK_INT(cf_rule_build(file, kv_get, (const char *[]){"name", "/etc", NULL}, out,
                            sizeof out),
              -1);
    const char *badmix[] = {"tag", "t", "x", "1.", "u", "123e4567-e89b-12d3-a456-426614174000",
                            NULL};
    CHECK_INT(cf_rule_build(mix, kv_get, badmix, out, sizeof out), -1);
    badmix[3] = "1.5";
    badmix[5] = "123e4567-e89b-12d3-a456-42661417400z";
    CHECK_INT(cf_rule_build(mix, kv_get, badmix, out, sizeof out), -1);

    /* small buffer: needed length, truncated but terminated output */
    const char **kv = (const char *[]){"id", "12345", NULL};
    CHECK_INT(cf_rule_build(user, kv_get, kv, out, 5), 11);
    CHECK_STR(out, "/use");
    CHECK_INT(cf_rule_build(user, kv_get, kv, out, 11), 11); /* no room for NUL */
    CHECK_STR(out, "/user/1234");
    CHECK_INT(cf_rule_build(user, kv_get, kv, NULL, 0), 11);
    CHECK_INT(cf_rule_build(user, kv_get, kv, out, 12), 11);
    CHECK_STR(out, "/user/12345");
    cf_router_free(r);
}

int main(void)
{
    test_converters();
    test_static_and_root();
    test_priorities();
    test_trailing_slash();
    test_params();
    test_add();
    test_build();
    return CHECK_DONE();
}
