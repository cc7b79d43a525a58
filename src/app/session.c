/*
 * session.c — Flask's `session` for a request: a JSON object loaded from
 * the signed session cookie on first use, and saved as Flask's
 * SecureCookieSessionInterface.save_session does when the response goes
 * out (the pipeline calls cf_session_save just before the head is sent,
 * after the wrappers and after_request hooks, so error pages, redirects
 * and streams are covered too). The bytes of the cookie are in
 * session_codec.c; flashes and CSRF tokens, which live in the session, in
 * session_extras.c.
 *
 * The in-memory object is the session as Flask's TaggedJSONSerializer
 * writes it: a tuple stays {" t": [...]}, bytes {" b": "..."}, and so on,
 * so that a value set by Flask survives a Carafe request unchanged.
 *
 * Settings come from the app's config with Flask's names and defaults,
 * read when needed (set-up fills the config before serving).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "app/req.h"
#include "app/session.h"

#define NO_KEY_MSG                                                                      \
    "The session is unavailable because no secret key was set. Set SECRET_KEY in the " \
    "app's config (cf_config) to something unique and secret."

struct cf_session {
    json_t *data;      /* the session (an object), owned */
    char *loaded;      /* its JSON as loaded: "modified" means the JSON differs */
    bool accessed;     /* read or written by the app: Vary: Cookie */
    bool had_cookie;   /* the request carried a session cookie (valid or not) */
    bool cleared;      /* cf_session_clear: delete even a cookie we could not read */
    bool nokey_write;  /* a write without SECRET_KEY: the request fails (500) */
};

/* ---------------------------------------------------------------- */
/* Config, with Flask's defaults                                      */
/* ---------------------------------------------------------------- */

static json_t *cfg(cf_req *rq, const char *key) { return json_object_get(rq->app->config, key); }

/* Booleans may come from JSON or from the environment (cf_config_from_env). */
static bool cfg_bool(cf_req *rq, const char *key, bool dflt)
{
    json_t *v = cfg(rq, key);
    if (json_is_boolean(v))
        return json_is_true(v);
    if (json_is_integer(v))
        return json_integer_value(v) != 0;
    const char *s = json_string_value(v);
    if (s) {
        if (!strcasecmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "yes") ||
            !strcasecmp(s, "on"))
            return true;
        if (!*s || !strcasecmp(s, "0") || !strcasecmp(s, "false") || !strcasecmp(s, "no") ||
            !strcasecmp(s, "off"))
            return false;
    }
    return dflt;
}

static int64_t cfg_int(cf_req *rq, const char *key, int64_t dflt)
{
    json_t *v = cfg(rq, key);
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v))
        return (int64_t)json_real_value(v);
    const char *s = json_string_value(v);
    if (s && *s) {
        char *end;
        long long n = strtoll(s, &end, 10);
        if (!*end)
            return n;
    }
    return dflt;
}

static const char *cfg_str(cf_req *rq, const char *key, const char *dflt)
{
    const char *s = json_string_value(cfg(rq, key));
    return s && *s ? s : dflt;
}

/* SECRET_KEY, or NULL: Flask treats an empty key as none. */
static const char *secret_key(cf_req *rq) { return cfg_str(rq, "SECRET_KEY", NULL); }

static const char *cookie_name(cf_req *rq) { return cfg_str(rq, "SESSION_COOKIE_NAME", "session"); }

static int64_t lifetime(cf_req *rq)
{
    return cfg_int(rq, "PERMANENT_SESSION_LIFETIME", 31 * 24 * 3600);
}

/* ---------------------------------------------------------------- */
/* Loading                                                            */
/* ---------------------------------------------------------------- */

static void decref(void *p) { json_decref(p); }

static struct cf_session *load(cf_req *rq)
{
    if (rq->session)
        return rq->session;
    struct cf_session *s = cf_alloc(rq, sizeof *s);
    memset(s, 0, sizeof *s);
    const char *cookie = cf_cookie(rq, cookie_name(rq));
    s->had_cookie = cookie && *cookie;
    const char *key = secret_key(rq);
    int64_t max_age = lifetime(rq);
    if (s->had_cookie && key && max_age >= 0) { /* (a negative lifetime: all expired) */
        /* The current key and the fallbacks (Flask 3.1's key rotation). */
        json_t *fb = cfg(rq, "SECRET_KEY_FALLBACKS");
        size_t n = json_is_array(fb) ? json_array_size(fb) : 0;
        const char **keys = cf_alloc(rq, (n + 1) * sizeof *keys);
        size_t nk = 0;
        keys[nk++] = key;
        for (size_t i = 0; i < n; i++)
            if (json_string_value(json_array_get(fb, i)))
                keys[nk++] = json_string_value(json_array_get(fb, i));
        s->data = cf_sess_unsign(keys, nk, cookie, max_age, (int64_t)time(NULL));
    }
    if (s->data)
        s->loaded = cf_sess_dumps(rq, s->data);
    if (!s->loaded) { /* no cookie, a bad one, or one we could not write back */
        json_decref(s->data);
        s->data = json_object();
        s->loaded = "{}";
    }
    if (!s->data || cf_arena_defer_add(&rq->arena, decref, s->data) < 0)
        abort(); /* request memory exhausted: as cf_alloc */
    rq->session = s;
    return s;
}

/* ---------------------------------------------------------------- */
/* The API                                                            */
/* ---------------------------------------------------------------- */

json_t *cf_session(cf_req *rq)
{
    struct cf_session *s = load(rq);
    s->accessed = true;
    return s->data;
}

/* A string, also when Flask stored it as Markup ({" m": "..."}). */
static const char *str_value(json_t *v)
{
    if (json_is_object(v) && json_object_size(v) == 1 && json_is_string(json_object_get(v, " m")))
        return json_string_value(json_object_get(v, " m"));
    return json_string_value(v);
}

const char *cf_session_get(cf_req *rq, const char *key)
{
    return key ? str_value(json_object_get(cf_session(rq), key)) : NULL;
}

int cf_session_set(cf_req *rq, const char *key, json_t *value)
{
    json_t *data = cf_session(rq);
    if (!key || !value) {
        json_decref(value);
        return CF_EINVAL;
    }
    if (!secret_key(rq)) {
        json_decref(value);
        if (!rq->session->nokey_write)
            cf_log(rq, CF_LOG_ERROR, "%s", NO_KEY_MSG);
        rq->session->nokey_write = true;
        return CF_EPERM;
    }
    return json_object_set_new(data, key, value) == 0 ? 0 : CF_EINVAL;
}

int cf_session_set_str(cf_req *rq, const char *key, const char *value)
{
    json_t *v = value ? json_string(value) : NULL; /* NULL for invalid UTF-8 */
    if (!v && value) {
        cf_session(rq);
        return CF_EINVAL;
    }
    return cf_session_set(rq, key, v);
}

int cf_session_remove(cf_req *rq, const char *key)
{
    json_t *data = cf_session(rq);
    return key && json_object_del(data, key) == 0 ? 0 : CF_ENOTFOUND;
}

void cf_session_clear(cf_req *rq)
{
    json_object_clear(cf_session(rq));
    rq->session->cleared = true;
}

int cf_session_set_permanent(cf_req *rq, bool permanent)
{
    /* Flask keeps the flag in the session: "_permanent": true / false. */
    return cf_session_set(rq, "_permanent", json_boolean(permanent));
}

bool cf_session_permanent(cf_req *rq)
{
    return json_is_true(json_object_get(cf_session(rq), "_permanent"));
}

/* ---------------------------------------------------------------- */
/* Saving                                                             */
/* ---------------------------------------------------------------- */

bool cf_session_failed(cf_req *rq)
{
    struct cf_session *s = rq->session;
    /* Also a session changed through cf_session()'s object directly. */
    if (!s || (!s->nokey_write && (secret_key(rq) || !json_object_size(s->data))))
        return false;
    if (!s->nokey_write)
        cf_log(rq, CF_LOG_ERROR, "%s", NO_KEY_MSG);
    s->nokey_write = false; /* reported once */
    json_object_clear(s->data);
    rq->errmsg = NO_KEY_MSG;
    rq->error = CF_EFAIL;
    return true;
}

static bool has_token(const char *list, const char *tok)
{
    size_t n = strlen(tok);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if (((size_t)(t - p) == n && !strncasecmp(p, tok, n)) || (t - p == 1 && *p == '*'))
            return true;
        p = e;
    }
    return false;
}

static void add_vary_cookie(cf_req *rq)
{
    const char *vary = cf_response_header(rq, "Vary");
    if (!vary)
        cf_set_header(rq, "Vary", "Cookie");
    else if (!has_token(vary, "Cookie"))
        cf_set_header(rq, "Vary", cf_sprintf(rq, "%s, Cookie", vary));
}

/* Werkzeug's quote(path, safe="%!$&'()*+,/:=@"). */
static const char *quote_path(cf_req *rq, const char *path)
{
    char *out = cf_alloc(rq, strlen(path) * 3 + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if (isalnum(*p) || strchr("_.-~%!$&'()*+,/:=@", *p))
            *o++ = (char)*p;
        else
            o += sprintf(o, "%%%02X", *p);
    }
    *o = 0;
    return out;
}

/* The Set-Cookie header Werkzeug's dump_cookie writes for Flask: value
 * NULL deletes the cookie. Attributes in Werkzeug's order. */
static void set_cookie(cf_req *rq, const char *value, int64_t expires)
{
    const char *name = cookie_name(rq);
    const char *domain = cfg_str(rq, "SESSION_COOKIE_DOMAIN", NULL);
    if (domain) { /* Werkzeug drops a port and leading dots */
        size_t n = strcspn(domain, ":");
        while (*domain == '.' && n) {
            domain++;
            n--;
        }
        domain = n ? cf_sprintf(rq, "%.*s", (int)n, domain) : NULL;
    }
    /* Flask: SESSION_COOKIE_PATH, else APPLICATION_ROOT, else "/". */
    const char *path = quote_path(rq, cfg_str(rq, "SESSION_COOKIE_PATH",
                                              cfg_str(rq, "APPLICATION_ROOT", "/")));
    const char *ss = cfg_str(rq, "SESSION_COOKIE_SAMESITE", NULL), *samesite = NULL;
    if (ss) {
        static const char *const known[] = {"Strict", "Lax", "None"};
        for (size_t i = 0; i < 3; i++)
            if (!strcasecmp(ss, known[i]))
                samesite = known[i];
        if (!samesite)
            cf_log(rq, CF_LOG_ERROR, "SESSION_COOKIE_SAMESITE must be 'Strict', 'Lax' or 'None', "
                                     "not '%s': left out of the session cookie", ss);
    }
    bool partitioned = cfg_bool(rq, "SESSION_COOKIE_PARTITIONED", false);
    bool secure = cfg_bool(rq, "SESSION_COOKIE_SECURE", false) || partitioned;
    bool httponly = cfg_bool(rq, "SESSION_COOKIE_HTTPONLY", true);
    char date[48] = "";
    if (!value)
        cf_http_date(date, 0);
    else if (expires)
        cf_http_date(date, expires);
    char *h = cf_sprintf(rq, "%s=%s%s%s%s%s%s%s%s; Path=%s%s%s%s", name, value ? value : "",
                         domain ? "; Domain=" : "", domain ? domain : "", *date ? "; Expires=" : "",
                         date, value ? "" : "; Max-Age=0", secure ? "; Secure" : "",
                         httponly ? "; HttpOnly" : "", path, samesite ? "; SameSite=" : "",
                         samesite ? samesite : "", partitioned ? "; Partitioned" : "");
    if (strlen(h) > 4093) /* what browsers keep; Werkzeug warns about it too */
        cf_log(rq, CF_LOG_WARNING, "the session cookie is %zu bytes, more than browsers keep (4093)",
               strlen(h));
    if (cf_add_header(rq, "Set-Cookie", h) < 0)
        cf_log(rq, CF_LOG_ERROR, "the session cookie's settings make an invalid header: not sent");
}

void cf_session_save(cf_req *rq)
{
    const char *key = secret_key(rq);
    if (!key)
        return; /* Flask's null session: nothing to save */
    bool refresh = cfg_bool(rq, "SESSION_REFRESH_EACH_REQUEST", true);
    struct cf_session *s = rq->session;
    if (!s) {
        /* Untouched: only a permanent session is re-sent (refreshed), so
         * read the cookie only when that can happen. */
        const char *c = refresh ? cf_cookie(rq, cookie_name(rq)) : NULL;
        if (!c || !*c)
            return;
        s = load(rq);
    }
    if (s->accessed)
        add_vary_cookie(rq);
    if (!json_object_size(s->data)) {
        if (s->had_cookie && (s->cleared || strcmp(s->loaded, "{}") != 0)) {
            set_cookie(rq, NULL, 0);
            add_vary_cookie(rq);
        }
        return;
    }
    char *now_json = cf_sess_dumps(rq, s->data);
    if (!now_json) {
        cf_log(rq, CF_LOG_ERROR, "the session holds a value JSON cannot write: not saved");
        return;
    }
    bool modified = strcmp(now_json, s->loaded) != 0;
    bool permanent = json_is_true(json_object_get(s->data, "_permanent"));
    if (!modified && !(permanent && refresh))
        return;
    int64_t now = (int64_t)time(NULL);
    set_cookie(rq, cf_sess_sign(rq, key, now_json, now), permanent ? now + lifetime(rq) : 0);
    add_vary_cookie(rq);
}
