/*
 * test_session.c — sessions, flashes, CSRF and password hashes
 * (src/app/session*.c, password.c) through the in-process test client,
 * which keeps no cookie jar: each test passes the Cookie header itself.
 *
 *   codec        known answers made by Flask 3.1 / itsdangerous 2.2 with a
 *                fixed timestamp: JSON text (sorted keys, \u escapes,
 *                surrogate pairs, floats as repr, tags), signed values byte
 *                for byte (plain and zlib-compressed), reading them back,
 *                max age, wrong key, fallback key, tampering, a zip bomb
 *   round trip   set then read across requests with the returned cookie;
 *                Set-Cookie only when the session changed; Vary: Cookie
 *                when it was used (not for a request that never touched
 *                it); clear deletes the cookie (Expires 1970, Max-Age=0),
 *                clearing an empty session without a cookie sends nothing;
 *                permanent: Expires about now + lifetime, re-sent unchanged;
 *                error pages, redirects and a stream's head carry the cookie
 *   bad cookies  tampered, garbage, wrongly signed → empty, 200
 *   no key       reading is empty, writing is a 500 with Flask's message
 *   flashes      pop once per request (cached within it), categories,
 *                filter, gone on the next request
 *   CSRF         the middleware's 400s (missing, session missing, mismatch)
 *                and a pass by form field and by header; GET passes
 *   passwords    hash/verify round trip (scrypt, pbkdf2), wrong password,
 *                malformed and unknown hashes, Werkzeug-made known hashes
 */
#include <carafe.h>

#include "app/session.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY "k1"
#define TS 1700000000

/* Made by Flask 3.1.3 / itsdangerous 2.2 with get_timestamp = 1700000000. */
#define V1 ".eJwNy8EKgCAQhOF3mfMiagi1r5IdDI0O4sHaS-K7t5eBn48ZuMDOBEIF74688YGa1Epvl3IQmjJBwLijWFu2KHldsm6xFipP6YqpNY0PPJDAnnDqb84f5BEaaw.ZVPxAA.5TLRZd9Ad2o1oOWvuqHdaBDcs5k"
#define J1 "{\"f\":1.5,\"l\":[1,2.25,null,true],\"n\":1,\"u\":\"h\\u00e9\\ud83d\\ude00\",\"user\":\"ann\",\"z\":{\"a\":2,\"b\":1}}"
#define V3 ".eJyrVopPy0kszkgtVrKKrlZSKAFSSrmpxcWJ6alKOkoZmUqxtTow8dSiovwioGhSYgpQOBbIULICygFJJccAC1ulWh2llEywEJQqiY9XsjKtBYqXQPhAUwx1jGJrawGa5CMn.ZVPxAA.L6YnsLFkU_Jxv0kptuDhbU7ncTU"
#define J3 "{\"_flashes\":[{\" t\":[\"message\",\"hi\"]},{\" t\":[\"error\",\"bad\"]}],\"b\":{\" b\":\"AP8=\"},\"di\":{\" di\":{\" t__\":5}},\"t\":{\" t\":[1,2]}}"

static void h_codec(cf_req *rq)
{
    /* JSON text: the same object written in another key order. */
    json_t *o = json_loads("{\"z\":{\"b\":1,\"a\":2},\"user\":\"ann\",\"u\":\"h\\u00e9\\ud83d\\ude00\","
                           "\"n\":1,\"l\":[1,2.25,null,true],\"f\":1.5}", 0, NULL);
    CHECK_STR(cf_sess_dumps(rq, o), J1);
    CHECK_STR(cf_sess_sign(rq, KEY, J1, TS), V1);
    json_decref(o);
    CHECK_STR(cf_sess_sign(rq, KEY, J3, TS), V3);

    static const struct { double d; const char *py; } reals[] = {
        {1e16, "1e+16"}, {1e15, "1000000000000000.0"}, {0.0001, "0.0001"}, {1e-05, "1e-05"},
        {1.5e-07, "1.5e-07"}, {-0.0, "-0.0"}, {123456789.123, "123456789.123"},
        {1.0 / 3, "0.3333333333333333"}, {2.5e300, "2.5e+300"}, {100.0, "100.0"}};
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
        json_t *a = json_pack("[f]", reals[i].d);
        CHECK_STR(cf_sess_dumps(rq, a), cf_sprintf(rq, "[%s]", reals[i].py));
        json_decref(a);
    }
    json_t *ctl = json_pack("{s:s}", "k", "a\"b\\c\n\t\x01\x7f/");
    CHECK_STR(cf_sess_dumps(rq, ctl), "{\"k\":\"a\\\"b\\\\c\\n\\t\\u0001\\u007f/\"}");
    json_decref(ctl);

    /* Reading: Flask's cookies, the age limit, keys. */
    const char *k1[] = {KEY}, *wrong[] = {"nope"}, *rotated[] = {"new", KEY};
    json_t *s = cf_sess_unsign(k1, 1, V1, 100, TS + 50);
    CHECK(s && !strcmp(json_string_value(json_object_get(s, "u")), "h\xc3\xa9\xf0\x9f\x98\x80"));
    CHECK_STR(cf_sess_dumps(rq, s), J1);
    json_decref(s);
    s = cf_sess_unsign(k1, 1, V3, -1, 0);
    CHECK_STR(s ? cf_sess_dumps(rq, s) : NULL, J3);
    json_decref(s);
    CHECK(!cf_sess_unsign(k1, 1, V1, 100, TS + 101));  /* expired */
    CHECK(!cf_sess_unsign(k1, 1, V1, 100, TS - 1));    /* from the future */
    CHECK(!cf_sess_unsign(wrong, 1, V1, -1, 0));
    s = cf_sess_unsign(rotated, 2, V1, -1, 0);
    CHECK(s != NULL);
    json_decref(s);
    char *t = cf_strdup(rq, V1);
    t[5] ^= 1; /* one bit of the payload */
    CHECK(!cf_sess_unsign(k1, 1, t, -1, 0));
    static const char *const junk[] = {"", ".", "..", "a.b.c", "!!!.ZVPxAA.5TLRZd9Ad2o1oOWvuqHdaBDcs5k",
                                       "abc", ".eJw.ZVPxAA.", "e30.ZVPxAA"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        CHECK(!cf_sess_unsign(k1, 1, junk[i], -1, 0));
    /* A signed payload that is not an object, and bad zlib: still NULL. */
    const char *arr = cf_sess_sign(rq, KEY, "[1]", TS), *bad = cf_sess_sign(rq, KEY, "{", TS);
    CHECK(!cf_sess_unsign(k1, 1, arr, -1, 0));
    CHECK(!cf_sess_unsign(k1, 1, bad, -1, 0));
    /* Inflating: a 200 KiB session reads (the buffer grows), a 2 MiB one
     * (a zip bomb in a 3 KiB cookie) is refused. */
    for (size_t size = 200 << 10; size <= 2u << 20; size *= 10) {
        char *big = cf_alloc(rq, size + 16);
        memset(big, 'a', size + 16);
        memcpy(big, "{\"a\":\"", 6);
        memcpy(big + size + 6, "\"}", 3);
        const char *c = cf_sess_sign(rq, KEY, big, TS);
        CHECK(c[0] == '.' && strlen(c) < 4096);
        json_t *o2 = cf_sess_unsign(k1, 1, c, -1, 0);
        CHECK(size < (1u << 20) ? o2 && json_string_length(json_object_get(o2, "a")) == size : !o2);
        json_decref(o2);
    }
    cf_text(rq, 200, "codec");
}

static void h_set(cf_req *rq)
{
    cf_session_set_str(rq, cf_arg(rq, "k"), cf_arg(rq, "v"));
    cf_text(rq, 200, "set");
}
static void h_get(cf_req *rq)
{
    const char *v = cf_session_get(rq, cf_arg(rq, "k"));
    cf_text(rq, 200, v ? v : "(none)");
}
static void h_dump(cf_req *rq) { cf_json_value(rq, 200, json_deep_copy(cf_session(rq))); }
static void h_noop(cf_req *rq) { cf_text(rq, 200, "noop"); }
static void h_clear(cf_req *rq)
{
    cf_session_clear(rq);
    cf_text(rq, 200, "cleared");
}
static void h_perm(cf_req *rq)
{
    cf_session_set_permanent(rq, true);
    cf_session_set_str(rq, "p", "1");
    cf_text(rq, 200, "perm");
}
static void h_redirect(cf_req *rq)
{
    cf_session_set_str(rq, "r", "1");
    cf_redirect(rq, 302, "/get?k=r");
}
static void h_abort(cf_req *rq)
{
    cf_session_set_str(rq, "a", "1");
    cf_abort(rq, 404);
}
static int produce(cf_req *rq, void *arg)
{
    (void)arg;
    return cf_write(rq, "streamed", 8);
}
static void h_stream(cf_req *rq)
{
    cf_session_set_str(rq, "s", "1");
    cf_stream(rq, 200, "text/plain", produce, NULL);
}
static void h_flash(cf_req *rq)
{
    cf_flash(rq, cf_arg(rq, "c"), cf_arg(rq, "m"));
    cf_text(rq, 200, "flashed");
}
static void h_flashes(cf_req *rq)
{
    static const char *const only_err[] = {"error", NULL};
    json_t *a = cf_flashed_messages(rq, false, NULL);
    json_t *b = cf_flashed_messages(rq, true, NULL); /* same ones: cached */
    json_t *c = cf_flashed_messages(rq, false, only_err);
    cf_json(rq, 200, "{s:O,s:O,s:O}", "plain", a, "cats", b, "errors", c);
}
static void h_token(cf_req *rq) { cf_text(rq, 200, cf_csrf_token(rq)); }
static void h_form(cf_req *rq) { cf_text(rq, 200, "posted"); }

static int hash_with(cf_req *rq, const char *method)
{
    char *h = cf_password_hash_method(rq, "s3cret", method);
    CHECK(h != NULL);
    if (!h)
        return 0;
    CHECK_INT(cf_password_verify(rq, h, "s3cret"), 1);
    CHECK_INT(cf_password_verify(rq, h, "s3cret!"), 0);
    return 1;
}

static void h_pw(cf_req *rq)
{
    char *h = cf_password_hash(rq, "correct horse");
    CHECK(h && !strncmp(h, "scrypt:32768:8:1$", 17) && strlen(h) == 17 + 16 + 1 + 128);
    CHECK_INT(cf_password_verify(rq, h, "correct horse"), 1);
    CHECK_INT(cf_password_verify(rq, h, "correct horsE"), 0);
    char *h2 = cf_password_hash(rq, "correct horse");
    CHECK(h2 && strcmp(h, h2) != 0); /* a new salt each time */
    hash_with(rq, "pbkdf2:sha256:1000");
    hash_with(rq, "pbkdf2:sha512:1000");
    hash_with(rq, "scrypt:1024:8:1");
    char *p = cf_password_hash_method(rq, "x", "pbkdf2:sha1:10");
    CHECK(p && !strncmp(p, "pbkdf2:sha1:10$", 15) && strlen(p) == 15 + 16 + 1 + 40);
    static const char *const bad[] = {
        "", "$", "$$", "nosuch$salt$00", "scrypt$salt", "scrypt:1:8:1$s$00", "scrypt:3:8:1$s$00",
        "scrypt:16384:0:1$s$00", "scrypt:1024:8$s$00", "scrypt:x:8:1$s$00",
        "scrypt:1099511627776:8:1$s$00", "pbkdf2:nosuchhash:10$s$00", "pbkdf2:sha256:0$s$00",
        "pbkdf2:sha256:-5$s$00", "pbkdf2:sha256:10:1$s$00", "pbkdf2:sha256:999999999999$s$00",
        "pbkdf2:sha256:10$s$", "pbkdf2:sha256:10$s$zz", "plain"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_INT(cf_password_verify(rq, bad[i], "pw"), 0);
    CHECK_INT(cf_password_verify(rq, NULL, "pw"), 0);
    CHECK(!cf_password_hash_method(rq, "pw", "md5crypt"));
    CHECK(!cf_password_hash_method(rq, "pw", "scrypt:3:1:1"));
    char *now = cf_password_hash_now("pw", "pbkdf2:sha256:100");
    CHECK(now && cf_password_verify_now(now, "pw") == 1 && cf_password_verify_now(now, "pW") == 0);
    /* Werkzeug compares hex text: an upper-case copy does not match. */
    if (now) {
        char *up = cf_strdup(rq, now);
        for (char *q = strrchr(up, '$'); q && *q; q++)
            if (*q >= 'a' && *q <= 'f')
                *q = (char)(*q - 32);
        CHECK_INT(cf_password_verify_now(up, "pw"), 0);
    }
    free(now);
    cf_text(rq, 200, "pw");
}

/* Made by Werkzeug 3.1.3's generate_password_hash("pw", method). */
#define W_PBKDF2 "pbkdf2:sha256:1000$FgnE9RLauMgwbH1r$15a10ea50e494bc16389c3c1817311b7fdd012e16b292bf6084c033f455361f5"
#define W_SCRYPT "scrypt:1024:8:1$zEeutyfshbUm03BF$b1610b6dd35ce425b282b1ced814b271c46461873c0b2e0467ea6eda7800c6efa980989123b2e7eae3e2294194606eb91282dca27e51e6660ab5833fe569d528"
#define W_DEFAULT "scrypt:32768:8:1$YQXjtnL3TZoa43Ld$ca1c12a5f8277c9dc975baf1b8b89df75a526d6b839c6ed8831b5d83ebca55552c70e0ac9449c98f2abf272ea52e025b1bdade0bd92abcce09992f646a83327a"
static void h_werkzeug(cf_req *rq)
{
    CHECK_INT(cf_password_verify(rq, W_DEFAULT, "pw"), 1);
    CHECK_INT(cf_password_verify(rq, W_PBKDF2, "pw"), 1);
    CHECK_INT(cf_password_verify(rq, W_PBKDF2, "px"), 0);
    CHECK_INT(cf_password_verify(rq, W_SCRYPT, "pw"), 1);
    CHECK_INT(cf_password_verify(rq, W_SCRYPT, "px"), 0);
    /* hashlib's digest names with '_' (OpenSSL's have '-'). */
    CHECK_INT(cf_password_verify(rq, "pbkdf2:sha3_256:100$iQI72O0yBcvR48KJ$f47837412d71f011341b45e9"
                                     "40cbba2bffc384b05a1ce5ed1042b861cf50acd5", "pw"), 1);
    CHECK_INT(cf_password_verify(rq, "pbkdf2:sha512_256:100$Fi0eEGpnqzUd0dhv$966d364d41251991b37ff6"
                                     "71bbfd2f209178e3a88f157b68c386502e82c71f25", "pw"), 1);
    cf_text(rq, 200, "werkzeug");
}

/* "session=<value>" from a response's Set-Cookie, in a static buffer. */
static const char *cookie_of(cf_test_response *r)
{
    static char buf[8192];
    const char *sc = cf_test_header(r, "Set-Cookie");
    if (!sc || strncmp(sc, "session=", 8) != 0)
        return NULL;
    size_t n = strcspn(sc, ";");
    snprintf(buf, sizeof buf, "Cookie: %.*s", (int)n, sc);
    return buf;
}

static bool has_cookie_vary(cf_test_response *r)
{
    const char *v = cf_test_header(r, "Vary");
    return v && strstr(v, "Cookie");
}

static cf_test_response *get_with(cf_test_client *tc, const char *target, const char *cookie_hdr)
{
    const char *h[] = {cookie_hdr, NULL};
    return cf_test_request(tc, "GET", target, cookie_hdr ? h : NULL, NULL, 0);
}

static void round_trips(cf_test_client *tc)
{
    cf_test_response *r = cf_test_get(tc, "/noop");
    CHECK(!cf_test_header(r, "Set-Cookie"));
    CHECK(!has_cookie_vary(r)); /* never touched the session */
    r = cf_test_get(tc, "/get?k=a");
    CHECK_STR(cf_test_body(r, NULL), "(none)");
    CHECK(!cf_test_header(r, "Set-Cookie"));
    CHECK(has_cookie_vary(r));

    r = cf_test_get(tc, "/set?k=a&v=h%C3%A9llo");
    const char *sc = cf_test_header(r, "Set-Cookie");
    CHECK(sc && strstr(sc, "; HttpOnly; Path=/") && !strstr(sc, "Expires") && !strstr(sc, "Secure"));
    CHECK(has_cookie_vary(r));
    char c1[8192];
    snprintf(c1, sizeof c1, "%s", cookie_of(r) ? cookie_of(r) : "Cookie: none");
    r = get_with(tc, "/get?k=a", c1);
    CHECK_STR(cf_test_body(r, NULL), "h\xc3\xa9llo");
    CHECK(!cf_test_header(r, "Set-Cookie")); /* read only: unchanged */
    r = get_with(tc, "/set?k=a&v=h%C3%A9llo", c1);
    CHECK(!cf_test_header(r, "Set-Cookie")); /* the same value again: unchanged JSON */
    r = get_with(tc, "/set?k=b&v=2", c1);
    char c2[8192];
    snprintf(c2, sizeof c2, "%s", cookie_of(r) ? cookie_of(r) : "Cookie: none");
    r = get_with(tc, "/dump", c2);
    CHECK_STR(cf_test_body(r, NULL), "{\"a\":\"h\xc3\xa9llo\",\"b\":\"2\"}");

    /* Bad cookies: an empty session, never an error. */
    char tampered[8192];
    snprintf(tampered, sizeof tampered, "%s", c2);
    tampered[20] = tampered[20] == 'A' ? 'B' : 'A';
    static const char *const bads[] = {"Cookie: session=garbage", "Cookie: session=a.b.c",
                                       "Cookie: session=..", "Cookie: session=%00%ff"};
    r = get_with(tc, "/dump", tampered);
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(cf_test_body(r, NULL), "{}");
    CHECK(!cf_test_header(r, "Set-Cookie"));
    for (size_t i = 0; i < 4; i++) {
        r = get_with(tc, "/dump", bads[i]);
        CHECK_INT(cf_test_status(r), 200);
        CHECK_STR(cf_test_body(r, NULL), "{}");
    }

    /* Clearing deletes the cookie; without a cookie there is nothing to delete. */
    r = get_with(tc, "/clear", c2);
    sc = cf_test_header(r, "Set-Cookie");
    CHECK_STR(sc, "session=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; HttpOnly; Path=/; SameSite=Lax");
    r = cf_test_get(tc, "/clear");
    CHECK(!cf_test_header(r, "Set-Cookie"));
    r = get_with(tc, "/clear", "Cookie: session=garbage"); /* a bad one is deleted too */
    CHECK(cf_test_header(r, "Set-Cookie") != NULL);

    /* Permanent: Expires ~ now + lifetime (here 3600 s), re-sent unchanged. */
    r = cf_test_get(tc, "/perm");
    sc = cf_test_header(r, "Set-Cookie");
    CHECK(sc && strstr(sc, "; Expires=") && strstr(sc, " GMT; HttpOnly; Path=/; SameSite=Lax"));
    char want[48];
    cf_http_date(want, (int64_t)time(NULL) + 3600);
    CHECK(sc && strstr(sc, want) != NULL); /* (a second may tick over: rare) */
    char cp[8192];
    snprintf(cp, sizeof cp, "%s", cookie_of(r) ? cookie_of(r) : "Cookie: none");
    r = get_with(tc, "/noop", cp);
    CHECK(cf_test_header(r, "Set-Cookie") != NULL); /* refreshed though untouched */
    r = get_with(tc, "/get?k=p", cp);
    CHECK_STR(cf_test_body(r, NULL), "1");

    /* Redirects and error pages carry the cookie. */
    r = cf_test_get(tc, "/redirect");
    CHECK_INT(cf_test_status(r), 302);
    CHECK(cookie_of(r) != NULL);
    r = cf_test_get(tc, "/abort");
    CHECK_INT(cf_test_status(r), 404);
    CHECK(cookie_of(r) != NULL);
    r = cf_test_get(tc, "/stream"); /* a stream's head */
    CHECK_STR(cf_test_body(r, NULL), "streamed");
    CHECK(cookie_of(r) != NULL);
}

static void flashes(cf_test_client *tc)
{
    cf_test_response *r = cf_test_get(tc, "/flash?m=one");
    char c[8192];
    snprintf(c, sizeof c, "%s", cookie_of(r) ? cookie_of(r) : "Cookie: none");
    r = get_with(tc, "/flash?m=two&c=error", c);
    snprintf(c, sizeof c, "%s", cookie_of(r) ? cookie_of(r) : "Cookie: none");
    r = get_with(tc, "/dump", c);
    CHECK_STR(cf_test_body(r, NULL),
              "{\"_flashes\":[{\" t\":[\"message\",\"one\"]},{\" t\":[\"error\",\"two\"]}]}");
    r = get_with(tc, "/flashes", c);
    CHECK_STR(cf_test_body(r, NULL), "{\"plain\":[\"one\",\"two\"],\"cats\":[[\"message\","
                                     "\"one\"],[\"error\",\"two\"]],\"errors\":[\"two\"]}");
    /* Popped: the session is now empty, its cookie deleted. */
    CHECK(cf_test_header(r, "Set-Cookie") && strstr(cf_test_header(r, "Set-Cookie"), "Max-Age=0"));
}

static void csrf(cf_test_client *tc)
{
    cf_test_response *r = cf_test_request(tc, "POST", "/form", NULL, "a=1", 3);
    CHECK_INT(cf_test_status(r), 400);
    CHECK(strstr(cf_test_body(r, NULL), "The CSRF token is missing.") != NULL);
    r = cf_test_get(tc, "/form");
    CHECK_INT(cf_test_status(r), 200);
    r = cf_test_get(tc, "/token");
    char token[128], c[8192];
    snprintf(token, sizeof token, "%s", cf_test_body(r, NULL));
    CHECK_INT(strlen(token), 64);
    snprintf(c, sizeof c, "%s", cookie_of(r) ? cookie_of(r) : "Cookie: none");
    r = get_with(tc, "/token", c);
    CHECK_STR(cf_test_body(r, NULL), token); /* the same token while the session keeps it */
    const char *form_ct = "Content-Type: application/x-www-form-urlencoded";
    const char *h1[] = {c, form_ct, NULL};
    char body[200];
    snprintf(body, sizeof body, "csrf_token=%s&x=1", token);
    r = cf_test_request(tc, "POST", "/form", h1, body, strlen(body));
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(cf_test_body(r, NULL), "posted");
    snprintf(body, sizeof body, "csrf_token=%.63sX", token);
    r = cf_test_request(tc, "POST", "/form", h1, body, strlen(body));
    CHECK_INT(cf_test_status(r), 400);
    CHECK(strstr(cf_test_body(r, NULL), "The CSRF tokens do not match.") != NULL);
    char hdr[200];
    snprintf(hdr, sizeof hdr, "X-CSRFToken: %s", token);
    const char *h2[] = {c, hdr, NULL};
    r = cf_test_request(tc, "DELETE", "/form", h2, NULL, 0);
    CHECK_INT(cf_test_status(r), 200);
    const char *h3[] = {hdr, NULL}; /* no session: its token is missing */
    r = cf_test_request(tc, "PUT", "/form", h3, NULL, 0);
    CHECK_INT(cf_test_status(r), 400);
    CHECK(strstr(cf_test_body(r, NULL), "The CSRF session token is missing.") != NULL);
}

static void no_key(void)
{
    cf_app *app = cf_app_new();
    cf_route(app, "GET", "/set", h_set);
    cf_route(app, "GET", "/dump", h_dump);
    cf_test_client *tc = cf_test_client_new(app);
    cf_test_response *r = cf_test_get(tc, "/set?k=a&v=1");
    CHECK_INT(cf_test_status(r), 500);
    CHECK(!cf_test_header(r, "Set-Cookie"));
    const char *h[] = {"Cookie: session=" V1, NULL};
    r = cf_test_request(tc, "GET", "/dump", h, NULL, 0);
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(cf_test_body(r, NULL), "{}");
    cf_test_client_free(tc);
    cf_app_free(app);
}

int main(void)
{
    cf_app *app = cf_app_new();
    json_t *cfg = cf_config(app);
    json_object_set_new(cfg, "SECRET_KEY", json_string(KEY));
    json_object_set_new(cfg, "PERMANENT_SESSION_LIFETIME", json_integer(3600));
    json_object_set_new(cfg, "SESSION_COOKIE_SAMESITE", json_string("lax"));
    cf_route(app, "GET", "/codec", h_codec);
    cf_route(app, "GET", "/set", h_set);
    cf_route(app, "GET", "/get", h_get);
    cf_route(app, "GET", "/dump", h_dump);
    cf_route(app, "GET", "/noop", h_noop);
    cf_route(app, "GET", "/clear", h_clear);
    cf_route(app, "GET", "/redirect", h_redirect);
    cf_route(app, "GET", "/abort", h_abort);
    cf_route(app, "GET", "/stream", h_stream);
    cf_route(app, "GET", "/flash", h_flash);
    cf_route(app, "GET", "/flashes", h_flashes);
    cf_route(app, "GET", "/token", h_token);
    cf_route(app, "GET", "/pw", h_pw);
    cf_route(app, "GET", "/werkzeug", h_werkzeug);
    cf_route(app, "GET", "/perm", h_perm);
    cf_route_use(cf_route(app, "*", "/form", h_form), cf_csrf_protect);
    cf_test_client *tc = cf_test_client_new(app);

    CHECK_STR(cf_test_body(cf_test_get(tc, "/codec"), NULL), "codec");
    round_trips(tc);
    CHECK_STR(cf_test_body(cf_test_get(tc, "/werkzeug"), NULL), "werkzeug");
    flashes(tc);
    csrf(tc);
    CHECK_STR(cf_test_body(cf_test_get(tc, "/pw"), NULL), "pw");
    cf_test_client_free(tc);
    cf_app_free(app);
    no_key();
    return CHECK_DONE();
}
