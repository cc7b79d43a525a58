/*
 * session.h — internals of the signed-cookie sessions (session.c, the
 * request side; session_codec.c, the bytes): Flask 3.1's
 * SecureCookieSessionInterface, i.e. itsdangerous' URLSafeTimedSerializer
 * (salt "cookie-session", HMAC key derivation, SHA-1) over Flask's
 * TaggedJSONSerializer with its JSON provider (sorted keys, ASCII only).
 */
#ifndef CF_APP_SESSION_H
#define CF_APP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "carafe.h"

/* JSON text of v exactly as Python's json.dumps(v, sort_keys=True,
 * ensure_ascii=True, separators=(",", ":")) writes it (floats as repr).
 * Request memory; NULL only for a value JSON cannot hold. */
char *cf_sess_dumps(cf_req *rq, const json_t *v);

/* The cookie value for `json` signed with `secret` at Unix time `now`
 * (zlib-compressed when that is shorter, as itsdangerous does). Request
 * memory. */
char *cf_sess_sign(cf_req *rq, const char *secret, const char *json, int64_t now);

/* The session object in `cookie` if it is signed by one of keys[0..n),
 * is at most max_age seconds old (max_age < 0: no check) and decodes to a
 * JSON object; else NULL. A new reference. Never fails otherwise: every
 * malformed input is just NULL. */
json_t *cf_sess_unsign(const char *const *keys, size_t n, const char *cookie,
                       int64_t max_age, int64_t now);

/* base64url without padding (itsdangerous' base64_encode), request memory. */
char *cf_b64url(cf_req *rq, const unsigned char *p, size_t n);

/* "Thu, 01 Jan 1970 00:00:00 GMT" (Werkzeug's http_date) into out[48]. */
void cf_http_date(char out[48], int64_t t);

/* session.c, called by the pipeline: */
/* After the app's response is settled: true when the handler changed the
 * session while no SECRET_KEY is set (Flask's RuntimeError; the pipeline
 * turns it into a 500 with the message in rq->errmsg). */
bool cf_session_failed(cf_req *rq);
/* Once the response is final, before its head goes out: Set-Cookie (or
 * its deletion) and Vary: Cookie as Flask's save_session writes them. */
void cf_session_save(cf_req *rq);

#endif
