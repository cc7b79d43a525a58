/*
 * session_codec.c — the bytes of a Flask session cookie, so that Flask and
 * Carafe read each other's cookies (written from the formats, not from
 * their code):
 *
 *   value   = payload "." timestamp "." signature
 *   payload = base64url(json), or "." base64url(zlib(json)) when the
 *             compressed form is shorter by at least 2 bytes
 *   timestamp = base64url of the Unix seconds as big-endian bytes without
 *             leading zero bytes (itsdangerous 2.x)
 *   signature = base64url(HMAC-SHA1(k, payload "." timestamp)), with
 *             k = HMAC-SHA1(secret, "cookie-session")
 *
 * base64url is without '=' padding. The JSON is Flask's: its provider
 * dumps with sort_keys and ensure_ascii, separators (",", ":"); we write
 * it ourselves (not with jansson's dumper) because the session is
 * "modified" when this text changes, and because Python's escapes
 * (lower-case \u00e9, surrogate pairs, \u007f) and float reprs differ from
 * jansson's.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <zlib.h>

#include "app/req.h"
#include "app/session.h"

/* A zlib payload inflating beyond this is refused: a 4 KiB cookie could
 * otherwise expand to megabytes (itsdangerous has no limit). */
#define MAX_JSON (1u << 20)

/* ---------------------------------------------------------------- */
/* A growable buffer (malloc; copied into the request at the end)     */
/* ---------------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
    bool oom;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}
static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

/* ---------------------------------------------------------------- */
/* Python's json.dumps                                                 */
/* ---------------------------------------------------------------- */

/* One UTF-8 sequence at s[0..n): its code point and length; an invalid
 * byte counts as U+FFFD of length 1 (jansson strings are valid UTF-8, so
 * this is only a guard). */
static unsigned utf8_next(const unsigned char *s, size_t n, size_t *used)
{
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!len || len > n) {
        *used = 1;
        return 0xfffd;
    }
    unsigned cp = len == 1 ? c : c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *used = 1;
            return 0xfffd;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    *used = len;
    return cp;
}

static void dump_string(buf *b, const char *s, size_t n)
{
    char esc[16];
    put(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x7f && p[run] != '"' && p[run] != '\\')
            run++;
        put(b, s + i, run - i);
        if (run >= n)
            break;
        i = run;
        unsigned c = p[i];
        const char *simple = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n"
                           : c == '\r' ? "\\r" : c == '\t' ? "\\t" : c == '\b' ? "\\b"
                           : c == '\f' ? "\\f" : NULL;
        if (simple) {
            puts_(b, simple);
            i++;
            continue;
        }
        size_t used;
        unsigned cp = utf8_next(p + i, n - i, &used);
        i += used;
        if (cp >= 0x10000) { /* Python writes astral characters as a surrogate pair */
            cp -= 0x10000;
            snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
        } else {
            snprintf(esc, sizeof esc, "\\u%04x", cp);
        }
        puts_(b, esc);
    }
    put(b, "\"", 1);
}

/* repr(float): the shortest digits that read back as the same double, in
 * fixed notation when the decimal exponent is in [-4, 16), else in Python's
 * exponent form (1e+16, 1.5e-07). */
static void dump_real(buf *b, double d)
{
    char tmp[40], digits[24], out[48];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    const char *m = tmp;
    bool neg = *m == '-';
    if (neg)
        m++;
    size_t nd = 0;
    for (; *m && *m != 'e'; m++)
        if (*m >= '0' && *m <= '9')
            digits[nd++] = *m;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = 0;
    int exp10 = *m == 'e' ? atoi(m + 1) : 0;
    int decpt = exp10 + 1; /* value = 0.digits * 10^decpt */
    size_t o = 0;
    if (neg)
        out[o++] = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            out[o++] = '0';
            out[o++] = '.';
            for (int k = 0; k < -decpt; k++)
                out[o++] = '0';
            memcpy(out + o, digits, nd);
            o += nd;
        } else if ((size_t)decpt >= nd) {
            memcpy(out + o, digits, nd);
            o += nd;
            for (size_t k = nd; k < (size_t)decpt; k++)
                out[o++] = '0';
            out[o++] = '.';
            out[o++] = '0';
        } else {
            memcpy(out + o, digits, (size_t)decpt);
            o += (size_t)decpt;
            out[o++] = '.';
            memcpy(out + o, digits + decpt, nd - (size_t)decpt);
            o += nd - (size_t)decpt;
        }
        out[o] = 0;
    } else {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            memcpy(out + o, digits + 1, nd - 1);
            o += nd - 1;
        }
        snprintf(out + o, sizeof out - o, "e%c%02d", decpt - 1 < 0 ? '-' : '+', abs(decpt - 1));
    }
    puts_(b, out);
}

static int key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool dump_value(buf *b, const json_t *v, int depth)
{
    char num[32];
    if (depth > 64)
        return false;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(v), i = 0;
        const char **keys = malloc((n ? n : 1) * sizeof *keys);
        if (!keys)
            return false;
        const char *k;
        json_t *item;
        json_object_foreach((json_t *)v, k, item) keys[i++] = k;
        /* Python sorts str keys by code point: UTF-8 byte order is the same. */
        qsort(keys, n, sizeof *keys, key_cmp);
        put(b, "{", 1);
        bool ok = true;
        for (i = 0; i < n && ok; i++) {
            if (i)
                put(b, ",", 1);
            dump_string(b, keys[i], strlen(keys[i]));
            put(b, ":", 1);
            ok = dump_value(b, json_object_get(v, keys[i]), depth + 1);
        }
        free(keys);
        put(b, "}", 1);
        return ok;
    }
    case JSON_ARRAY:
        put(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                put(b, ",", 1);
            if (!dump_value(b, json_array_get(v, i), depth + 1))
                return false;
        }
        put(b, "]", 1);
        return true;
    case JSON_STRING:
        dump_string(b, json_string_value(v), json_string_length(v));
        return true;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        puts_(b, num);
        return true;
    case JSON_REAL:
        if (!isfinite(json_real_value(v)))
            return false;
        dump_real(b, json_real_value(v));
        return true;
    case JSON_TRUE:
        puts_(b, "true");
        return true;
    case JSON_FALSE:
        puts_(b, "false");
        return true;
    case JSON_NULL:
        puts_(b, "null");
        return true;
    }
    return false;
}

static char *finish(cf_req *rq, buf *b, bool ok)
{
    char *r = NULL;
    if (ok && !b->oom) {
        r = cf_alloc(rq, b->len + 1);
        memcpy(r, b->p ? b->p : "", b->len + 1);
    }
    free(b->p);
    return r;
}

char *cf_sess_dumps(cf_req *rq, const json_t *v)
{
    buf b = {0};
    bool ok = v && dump_value(&b, v, 0);
    return finish(rq, &b, ok);
}

/* ---------------------------------------------------------------- */
/* base64url, dates                                                   */
/* ---------------------------------------------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void b64_put(buf *b, const unsigned char *p, size_t n)
{
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        size_t k = n - i >= 3 ? 4 : n - i + 1;
        for (size_t j = 0; j < 4; j++)
            q[j] = B64[(v >> (18 - 6 * j)) & 63];
        put(b, q, k);
    }
}

char *cf_b64url(cf_req *rq, const unsigned char *p, size_t n)
{
    buf b = {0};
    put(&b, "", 0);
    b64_put(&b, p, n);
    return finish(rq, &b, true);
}

static int b64_val(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26
         : c >= '0' && c <= '9' ? c - '0' + 52 : c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* Decode s[0..n) (url-safe alphabet, padding optional) into a new malloc'd
 * buffer; NULL for anything else. Stricter than Python, which skips
 * characters outside the alphabet: such a cookie is simply not ours. */
static unsigned char *b64_decode(const char *s, size_t n, size_t *out_len)
{
    while (n && s[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return NULL;
    unsigned char *out = malloc(n / 4 * 3 + 3);
    if (!out)
        return NULL;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val((unsigned char)s[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    *out_len = o;
    return out;
}

void cf_http_date(char out[48], int64_t t)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    snprintf(out, 48, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* ---------------------------------------------------------------- */
/* Signing                                                            */
/* ---------------------------------------------------------------- */

/* itsdangerous' "hmac" key derivation with the salt Flask uses, then the
 * signature of value[0..n). */
static void signature(const char *secret, const char *value, size_t n, unsigned char sig[20])
{
    unsigned char key[EVP_MAX_MD_SIZE];
    unsigned klen = 0, slen = 0;
    static const char salt[] = "cookie-session";
    HMAC(EVP_sha1(), secret, (int)strlen(secret), (const unsigned char *)salt, sizeof salt - 1,
         key, &klen);
    HMAC(EVP_sha1(), key, (int)klen, (const unsigned char *)value, n, sig, &slen);
    OPENSSL_cleanse(key, sizeof key);
}

char *cf_sess_sign(cf_req *rq, const char *secret, const char *json, int64_t now)
{
    size_t jlen = strlen(json);
    buf b = {0};
    uLongf clen = compressBound((uLong)jlen);
    unsigned char *z = malloc(clen);
    /* zlib.compress's default level is Z_DEFAULT_COMPRESSION, as here. */
    if (z && compress2(z, &clen, (const unsigned char *)json, (uLong)jlen,
                       Z_DEFAULT_COMPRESSION) == Z_OK && clen + 1 < jlen) {
        put(&b, ".", 1);
        b64_put(&b, z, clen);
    } else {
        b64_put(&b, (const unsigned char *)json, jlen);
    }
    free(z);
    unsigned char ts[8];
    size_t tn = 0;
    uint64_t t = now > 0 ? (uint64_t)now : 0;
    for (int shift = 56; shift >= 0; shift -= 8)
        if (tn || (t >> shift) & 0xff)
            ts[tn++] = (unsigned char)(t >> shift);
    put(&b, ".", 1);
    b64_put(&b, ts, tn);
    unsigned char sig[20];
    if (!b.oom)
        signature(secret, b.p, b.len, sig);
    put(&b, ".", 1);
    b64_put(&b, sig, sizeof sig);
    return finish(rq, &b, true);
}

static json_t *decode_payload(const char *p, size_t n)
{
    bool zipped = n && p[0] == '.';
    if (zipped) {
        p++;
        n--;
    }
    size_t len;
    unsigned char *raw = b64_decode(p, n, &len);
    if (!raw)
        return NULL;
    json_t *obj = NULL;
    if (zipped) {
        /* Grow the output as needed (most cookies inflate to a few KiB). */
        z_stream zs = {0};
        size_t cap = 16384;
        unsigned char *out = malloc(cap);
        if (out && inflateInit(&zs) == Z_OK) {
            zs.next_in = raw;
            zs.avail_in = (uInt)len;
            int rc = Z_OK;
            while (rc == Z_OK) {
                if (zs.total_out == cap) {
                    unsigned char *more = cap < MAX_JSON ? realloc(out, cap * 2) : NULL;
                    if (!more)
                        break;
                    out = more;
                    cap *= 2;
                }
                zs.next_out = out + zs.total_out;
                zs.avail_out = (uInt)(cap - zs.total_out);
                rc = inflate(&zs, Z_NO_FLUSH);
            }
            if (rc == Z_STREAM_END)
                obj = json_loadb((const char *)out, zs.total_out, JSON_ALLOW_NUL, NULL);
            inflateEnd(&zs);
        }
        free(out);
    } else {
        obj = json_loadb((const char *)raw, len, JSON_ALLOW_NUL, NULL);
    }
    free(raw);
    if (obj && !json_is_object(obj)) {
        json_decref(obj);
        obj = NULL;
    }
    return obj;
}

json_t *cf_sess_unsign(const char *const *keys, size_t n, const char *cookie, int64_t max_age,
                       int64_t now)
{
    if (!cookie)
        return NULL;
    const char *dot = strrchr(cookie, '.');
    if (!dot || dot == cookie)
        return NULL;
    size_t vlen = (size_t)(dot - cookie), slen;
    unsigned char *sig = b64_decode(dot + 1, strlen(dot + 1), &slen);
    if (!sig)
        return NULL;
    bool good = false;
    unsigned char want[20];
    for (size_t i = 0; i < n && !good && slen == sizeof want; i++) {
        if (!keys[i] || !*keys[i])
            continue;
        signature(keys[i], cookie, vlen, want);
        good = CRYPTO_memcmp(want, sig, sizeof want) == 0;
    }
    free(sig);
    if (!good)
        return NULL;
    /* Signed by us (or Flask): now the timestamp, after the last '.' of
     * the value. */
    const char *tdot = NULL;
    for (const char *q = cookie; q < dot; q++)
        if (*q == '.')
            tdot = q;
    if (!tdot)
        return NULL;
    size_t tlen;
    unsigned char *ts = b64_decode(tdot + 1, (size_t)(dot - tdot - 1), &tlen);
    if (!ts || tlen > 8) {
        free(ts);
        return NULL;
    }
    uint64_t t = 0;
    for (size_t i = 0; i < tlen; i++)
        t = t << 8 | ts[i];
    free(ts);
    if (max_age >= 0) {
        /* itsdangerous refuses both an age above max_age and a negative one. */
        if (t > (uint64_t)INT64_MAX)
            return NULL;
        int64_t age = now - (int64_t)t;
        if (age > max_age || age < 0)
            return NULL;
    }
    return decode_payload(cookie, (size_t)(tdot - cookie));
}
