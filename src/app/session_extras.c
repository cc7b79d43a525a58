/*
 * session_extras.c — what lives in the session besides the app's own keys:
 * flashed messages (Flask's flash / get_flashed_messages, stored the way
 * Flask stores them so either side reads the other's) and a CSRF token
 * with its check and middleware (Flask-WTF's CSRFProtect, with the token
 * kept unsigned in the session).
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "app/req.h"

/* ---------------------------------------------------------------- */
/* Flash messages                                                     */
/* ---------------------------------------------------------------- */

int cf_flash(cf_req *rq, const char *category, const char *message)
{
    json_t *cat = json_string(category ? category : "message");
    json_t *msg = message ? json_string(message) : NULL;
    if (!cat || !msg) {
        json_decref(cat);
        json_decref(msg);
        return CF_EINVAL;
    }
    json_t *old = json_object_get(cf_session(rq), "_flashes");
    json_t *list = json_is_array(old) ? json_copy(old) : json_array();
    /* Flask appends the tuple (category, message): tagged " t". */
    json_array_append_new(list, json_pack("{s:[oo]}", " t", cat, msg));
    return cf_session_set(rq, "_flashes", list);
}

/* A flash as [category, message], whether Flask's tuple or a plain list. */
static json_t *flash_pair(json_t *item)
{
    if (json_is_object(item) && json_object_size(item) == 1)
        item = json_object_get(item, " t");
    return json_is_array(item) && json_array_size(item) == 2 ? item : NULL;
}

/* Markup is tagged " m": the text is what templates show. */
static json_t *untag_markup(json_t *v)
{
    json_t *m = json_is_object(v) && json_object_size(v) == 1 ? json_object_get(v, " m") : NULL;
    return json_is_string(m) ? m : v;
}

static const char *popped_key = "cf.flashes"; /* cf_g_set slot: popped once per request */
static void decref(void *p) { json_decref(p); }

json_t *cf_flashed_messages(cf_req *rq, bool with_categories, const char *const *category_filter)
{
    json_t *flashes = cf_g_get(rq, popped_key);
    if (!flashes) {
        /* Flask pops them from the session on the first call of the
         * request and keeps them for the later ones. */
        json_t *data = cf_session(rq);
        flashes = json_object_get(data, "_flashes");
        flashes = json_is_array(flashes) ? json_incref(flashes) : json_array();
        if (json_object_get(data, "_flashes"))
            json_object_del(data, "_flashes");
        cf_defer(rq, decref, flashes);
        cf_g_set(rq, popped_key, flashes);
    }
    json_t *out = json_array();
    cf_defer(rq, decref, out);
    bool filter = category_filter && category_filter[0];
    size_t i;
    json_t *item;
    json_array_foreach(flashes, i, item) {
        json_t *pair = flash_pair(item);
        if (!pair)
            continue;
        json_t *cat = untag_markup(json_array_get(pair, 0));
        json_t *msg = untag_markup(json_array_get(pair, 1));
        if (filter) {
            bool keep = false;
            for (const char *const *c = category_filter; *c && !keep; c++)
                keep = json_is_string(cat) && strcmp(json_string_value(cat), *c) == 0;
            if (!keep)
                continue;
        }
        json_array_append_new(out, with_categories ? json_pack("[OO]", cat, msg) : json_incref(msg));
    }
    return out;
}

/* ---------------------------------------------------------------- */
/* CSRF                                                               */
/* ---------------------------------------------------------------- */

#define CSRF_KEY "_csrf_token"

const char *cf_csrf_token(cf_req *rq)
{
    const char *t = cf_session_get(rq, CSRF_KEY);
    if (t && *t)
        return cf_strdup(rq, t);
    unsigned char raw[32];
    char hex[65];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return NULL;
    for (size_t i = 0; i < sizeof raw; i++) {
        hex[2 * i] = "0123456789abcdef"[raw[i] >> 4];
        hex[2 * i + 1] = "0123456789abcdef"[raw[i] & 15];
    }
    hex[64] = 0;
    if (cf_session_set_str(rq, CSRF_KEY, hex) < 0)
        return NULL; /* no SECRET_KEY: a token could not be kept */
    return cf_strdup(rq, hex);
}

/* Flask-WTF's checks and messages; NULL when the token is good. */
static const char *csrf_problem(cf_req *rq)
{
    const char *sent = cf_form(rq, "csrf_token");
    if (!sent || !*sent)
        sent = cf_header(rq, "X-CSRFToken");
    if (!sent || !*sent)
        sent = cf_header(rq, "X-CSRF-Token");
    if (!sent || !*sent)
        return "The CSRF token is missing.";
    const char *mine = cf_session_get(rq, CSRF_KEY);
    if (!mine || !*mine)
        return "The CSRF session token is missing.";
    size_t n = strlen(mine);
    if (strlen(sent) != n || CRYPTO_memcmp(sent, mine, n) != 0)
        return "The CSRF tokens do not match.";
    return NULL;
}

bool cf_csrf_valid(cf_req *rq) { return csrf_problem(rq) == NULL; }

void cf_csrf_protect(cf_req *rq)
{
    const char *m = cf_method(rq);
    if (!strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH") || !strcmp(m, "DELETE")) {
        const char *why = csrf_problem(rq);
        if (why) {
            if (cf_responded(rq)) /* the form body itself was refused (400, 413) */
                return;
            rq->errmsg = why;
            cf_abort(rq, 400);
            return;
        }
    }
    cf_next(rq);
}
