/*
 * sessionapp — the app tests/integration/test_session_flask.py starts:
 * sessions, flashes, CSRF and password hashes over real sockets, compared
 * with Flask, itsdangerous and Werkzeug.
 *
 *   GET  /session          the session as JSON (as stored: Flask's tags kept)
 *   GET  /get?k=K          {"value": the string at K, or null}
 *   POST /set              a JSON object: each key set in the session
 *   GET  /set?k=K&v=V      one string
 *   GET  /flash?m=M[&c=C]  flash M (category C)
 *   GET  /flashes          {"plain": [...], "cats": [[c, m], ...]}
 *   GET  /clear            empty the session
 *   GET  /permanent?on=0|1 session.permanent
 *   GET  /noop             "noop", not touching the session
 *   GET  /token            the CSRF token
 *   POST /form             "posted" behind cf_csrf_protect
 *   POST /hash             {"password", "method"?} -> {"hash"} (null if refused)
 *   POST /verify           {"hash", "password"} -> {"ok": true|false}
 *   GET  /ping             "pong"
 *
 * Config from the environment (as strings, the way cf_config_from_env
 * gives them): SECRET_KEY, SESSION_COOKIE_NAME, _DOMAIN, _PATH, _SECURE,
 * _HTTPONLY, _SAMESITE, PERMANENT_SESSION_LIFETIME,
 * SESSION_REFRESH_EACH_REQUEST; SECRET_KEY_FALLBACKS is a comma-separated
 * list made into the array Flask expects.
 */
#include <carafe.h>
#include <stdlib.h>
#include <string.h>

static void show(cf_req *rq) { cf_json_value(rq, 200, json_deep_copy(cf_session(rq))); }

static void get(cf_req *rq)
{
    const char *v = cf_session_get(rq, cf_arg(rq, "k"));
    cf_json(rq, 200, "{s:s?}", "value", v);
}

static void set_json(cf_req *rq)
{
    json_t *body = cf_get_json(rq);
    if (!json_is_object(body)) {
        cf_text(rq, 400, "a JSON object, please");
        return;
    }
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        if (cf_session_set(rq, k, json_incref(v)) < 0) {
            cf_text(rq, 500, "not set");
            return;
        }
    }
    cf_text(rq, 200, "ok");
}

static void set_str(cf_req *rq)
{
    int rc = cf_session_set_str(rq, cf_arg(rq, "k"), cf_arg(rq, "v"));
    cf_text(rq, rc ? 500 : 200, rc ? "not set" : "ok");
}

static void flash(cf_req *rq)
{
    cf_flash(rq, cf_arg(rq, "c"), cf_arg(rq, "m"));
    cf_text(rq, 200, "flashed");
}

static void flashes(cf_req *rq)
{
    json_t *plain = cf_flashed_messages(rq, false, NULL);
    json_t *cats = cf_flashed_messages(rq, true, NULL);
    cf_json(rq, 200, "{s:O,s:O}", "plain", plain, "cats", cats);
}

static void clear(cf_req *rq)
{
    cf_session_clear(rq);
    cf_text(rq, 200, "cleared");
}

static void permanent(cf_req *rq)
{
    const char *on = cf_arg(rq, "on");
    cf_session_set_permanent(rq, !on || strcmp(on, "0") != 0);
    cf_text(rq, 200, "ok");
}

static void noop(cf_req *rq) { cf_text(rq, 200, "noop"); }
static void ping(cf_req *rq) { cf_text(rq, 200, "pong"); }
static void token(cf_req *rq) { cf_text(rq, 200, cf_csrf_token(rq)); }
static void form(cf_req *rq) { cf_text(rq, 200, "posted"); }

static void hash(cf_req *rq)
{
    json_t *b = cf_get_json(rq);
    const char *pw = json_string_value(json_object_get(b, "password"));
    const char *method = json_string_value(json_object_get(b, "method"));
    if (!pw) {
        cf_text(rq, 400, "password?");
        return;
    }
    char *h = method ? cf_password_hash_method(rq, pw, method) : cf_password_hash(rq, pw);
    cf_json(rq, 200, "{s:s?}", "hash", h);
}

static void verify(cf_req *rq)
{
    json_t *b = cf_get_json(rq);
    const char *pw = json_string_value(json_object_get(b, "password"));
    const char *h = json_string_value(json_object_get(b, "hash"));
    cf_json(rq, 200, "{s:b}", "ok", cf_password_verify(rq, h, pw) == 1);
}

int main(int argc, char **argv)
{
    cf_app *app = cf_app_new();
    static const char *const names[] = {
        "SECRET_KEY", "SESSION_COOKIE_NAME", "SESSION_COOKIE_DOMAIN", "SESSION_COOKIE_PATH",
        "SESSION_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_SAMESITE",
        "PERMANENT_SESSION_LIFETIME", "SESSION_REFRESH_EACH_REQUEST", NULL};
    cf_config_from_env(app, names);
    const char *fb = getenv("SECRET_KEY_FALLBACKS");
    if (fb && *fb) {
        json_t *list = json_array();
        char *copy = strdup(fb);
        for (char *save = NULL, *k = strtok_r(copy, ",", &save); k; k = strtok_r(NULL, ",", &save))
            json_array_append_new(list, json_string(k));
        free(copy);
        json_object_set_new(cf_config(app), "SECRET_KEY_FALLBACKS", list);
    }
    cf_route(app, "GET", "/session", show);
    cf_route(app, "GET", "/get", get);
    cf_route(app, "POST", "/set", set_json);
    cf_route(app, "GET", "/set", set_str);
    cf_route(app, "GET", "/flash", flash);
    cf_route(app, "GET", "/flashes", flashes);
    cf_route(app, "GET", "/clear", clear);
    cf_route(app, "GET", "/permanent", permanent);
    cf_route(app, "GET", "/noop", noop);
    cf_route(app, "GET", "/ping", ping);
    cf_route(app, "GET", "/token", token);
    cf_route_use(cf_route(app, "POST", "/form", form), cf_csrf_protect);
    cf_route(app, "POST", "/hash", hash);
    cf_route(app, "POST", "/verify", verify);
    int rc = cf_run(app, argc, argv);
    cf_app_free(app);
    return rc;
}
