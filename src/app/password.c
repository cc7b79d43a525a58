/*
 * password.c — password hashes in Werkzeug 3.1's formats, so that hashes
 * move between a Flask app and a Carafe app sharing a user table:
 *
 *   scrypt:N:r:p$salt$hex      hashlib.scrypt(password, salt, N, r, p),
 *                              64 bytes, maxmem 132*N*r*p as Werkzeug passes
 *   pbkdf2:digest:iters$salt$hex   PBKDF2-HMAC, the digest's size
 *
 * The salt is 16 characters of [a-zA-Z0-9] used as text (its UTF-8 bytes
 * are the salt). Defaults for missing parts are Werkzeug's: scrypt
 * 32768:8:1, pbkdf2 sha256 with 1,000,000 iterations.
 *
 * Hashing is slow on purpose (tens of milliseconds), so the request calls
 * run it on the thread pool and suspend: the job holds copies of what it
 * needs (in request memory the loop does not touch until the await
 * returns, and which is kept until the job has finished even when the
 * request is cancelled), and the result is copied out after the await.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "app/req.h"

#define SALT_LEN 16
#define DEFAULT_PBKDF2_ITERATIONS 1000000
/* Bounds on what a stored hash may ask for, so a corrupt row cannot make
 * one check take minutes or gigabytes (Werkzeug has none). */
#define MAX_SCRYPT_MEM (1ull << 30)
#define MAX_PBKDF2_ITERATIONS 100000000ull

typedef struct pw_job {
    /* in */
    bool scrypt;
    uint64_t n, r, p, iterations;
    const EVP_MD *md;
    char method[64]; /* normalised, as it goes in front of the hash */
    char salt[256];
    char *password;  /* a copy, wiped when the request's memory goes */
    size_t password_len;
    /* out */
    unsigned char out[EVP_MAX_MD_SIZE > 64 ? EVP_MAX_MD_SIZE : 64];
    size_t out_len;
    int rc;
} pw_job;

/* A decimal number without sign, spaces or underscores (stricter than
 * Python's int()); false if it is not one or is too big. */
static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (!len || len > 19)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* Fill the job's parameters from a method ("scrypt", "scrypt:N:r:p",
 * "pbkdf2", "pbkdf2:digest", "pbkdf2:digest:iterations") of mlen bytes;
 * false for anything else or values out of bounds. */
static bool parse_method(pw_job *j, const char *m, size_t mlen)
{
    const char *parts[4];
    size_t lens[4], np = 0;
    const char *p = m, *end = m + mlen;
    while (np < 4) {
        const char *c = memchr(p, ':', (size_t)(end - p));
        parts[np] = p;
        lens[np++] = (size_t)((c ? c : end) - p);
        if (!c)
            break;
        p = c + 1;
        if (np == 4)
            return false; /* more parts than any method takes */
    }
    if (lens[0] == 6 && !memcmp(parts[0], "scrypt", 6)) {
        j->scrypt = true;
        if (np == 1) {
            j->n = 32768, j->r = 8, j->p = 1;
        } else if (np != 4 || !parse_u64(parts[1], lens[1], &j->n) ||
                   !parse_u64(parts[2], lens[2], &j->r) || !parse_u64(parts[3], lens[3], &j->p)) {
            return false;
        }
        /* N a power of two above 1; r, p at least 1; memory within bounds. */
        if (j->n < 2 || (j->n & (j->n - 1)) || !j->r || !j->p || j->r > (1u << 20) ||
            j->p > (1u << 20) || j->n > MAX_SCRYPT_MEM / 128 / j->r ||
            128 * j->n * j->r > MAX_SCRYPT_MEM / j->p)
            return false;
        snprintf(j->method, sizeof j->method, "scrypt:%llu:%llu:%llu", (unsigned long long)j->n,
                 (unsigned long long)j->r, (unsigned long long)j->p);
        j->out_len = 64;
        return true;
    }
    if (lens[0] == 6 && !memcmp(parts[0], "pbkdf2", 6) && np <= 3) {
        char name[32] = "sha256";
        j->iterations = DEFAULT_PBKDF2_ITERATIONS;
        if (np >= 2) {
            if (!lens[1] || lens[1] >= sizeof name)
                return false;
            memcpy(name, parts[1], lens[1]);
            name[lens[1]] = 0;
        }
        if (np == 3 && !parse_u64(parts[2], lens[2], &j->iterations))
            return false;
        j->md = EVP_get_digestbyname(name);
        if (!j->md) { /* hashlib's "sha3_256" is OpenSSL's "sha3-256" */
            char alt[sizeof name];
            memcpy(alt, name, sizeof name);
            for (char *c = alt; *c; c++)
                if (*c == '_')
                    *c = '-';
            j->md = EVP_get_digestbyname(alt);
        }
        if (!j->md || j->iterations < 1 || j->iterations > MAX_PBKDF2_ITERATIONS)
            return false;
        snprintf(j->method, sizeof j->method, "pbkdf2:%s:%llu", name,
                 (unsigned long long)j->iterations);
        j->out_len = (size_t)EVP_MD_get_size(j->md);
        return true;
    }
    return false;
}

/* The hash itself; runs on a pool thread (or inline), touching only j. */
static int pw_compute(void *arg)
{
    pw_job *j = arg;
    size_t slen = strlen(j->salt);
    if (j->scrypt) {
        uint64_t maxmem = 132 * j->n * j->r * j->p; /* Werkzeug's, for the same limits */
        j->rc = EVP_PBE_scrypt(j->password, j->password_len, (const unsigned char *)j->salt, slen,
                               j->n, j->r, j->p, maxmem, j->out, j->out_len) == 1 ? 0 : CF_EFAIL;
    } else {
        j->rc = PKCS5_PBKDF2_HMAC(j->password, (int)j->password_len,
                                  (const unsigned char *)j->salt, (int)slen, (int)j->iterations,
                                  j->md, (int)j->out_len, j->out) == 1 ? 0 : CF_EFAIL;
    }
    return j->rc;
}

static void wipe(void *p)
{
    pw_job *j = p;
    OPENSSL_cleanse(j->password, j->password_len);
    OPENSSL_cleanse(j->out, sizeof j->out);
    free(j->password);
    free(j);
}

static bool gen_salt(char *out)
{
    static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for (size_t i = 0; i < SALT_LEN;) {
        unsigned char b[32];
        if (RAND_bytes(b, sizeof b) != 1)
            return false;
        /* 248 = 4 * 62: rejecting the rest keeps every character equally likely. */
        for (size_t k = 0; k < sizeof b && i < SALT_LEN; k++)
            if (b[k] < 248)
                out[i++] = chars[b[k] % 62];
    }
    out[SALT_LEN] = 0;
    return true;
}

static pw_job *job_new(const char *password)
{
    pw_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->password_len = strlen(password);
    j->password = malloc(j->password_len + 1);
    if (!j->password) {
        free(j);
        return NULL;
    }
    memcpy(j->password, password, j->password_len + 1);
    return j;
}

/* A job for hashing `password` with `method`, or for checking it against
 * `hash` ("method$salt$hex"); NULL for a bad method or hash. */
static pw_job *prepare(const char *password, const char *method, const char *hash,
                       const char **hexval)
{
    if (!password)
        return NULL;
    pw_job *j = job_new(password);
    if (!j)
        return NULL;
    bool ok;
    if (hash) {
        const char *d1 = strchr(hash, '$'), *d2 = d1 ? strchr(d1 + 1, '$') : NULL;
        ok = d2 && (size_t)(d2 - d1 - 1) < sizeof j->salt &&
             parse_method(j, hash, (size_t)(d1 - hash));
        if (ok) {
            memcpy(j->salt, d1 + 1, (size_t)(d2 - d1 - 1));
            j->salt[d2 - d1 - 1] = 0;
            *hexval = d2 + 1;
        }
    } else {
        ok = method && parse_method(j, method, strlen(method)) && gen_salt(j->salt);
    }
    if (!ok) {
        wipe(j);
        return NULL;
    }
    return j;
}

/* "method$salt$hex" into a malloc'd string. */
static char *format_hash(const pw_job *j)
{
    size_t n = strlen(j->method) + strlen(j->salt) + 2 * j->out_len + 3;
    char *s = malloc(n);
    if (!s)
        return NULL;
    char *o = s + sprintf(s, "%s$%s$", j->method, j->salt);
    for (size_t i = 0; i < j->out_len; i++)
        o += sprintf(o, "%02x", j->out[i]);
    return s;
}

static int matches(const pw_job *j, const char *hexval)
{
    char hex[2 * sizeof j->out + 1];
    for (size_t i = 0; i < j->out_len; i++)
        sprintf(hex + 2 * i, "%02x", j->out[i]);
    size_t n = 2 * j->out_len;
    /* Werkzeug compares the hex texts: upper-case hex does not match. */
    return strlen(hexval) == n && CRYPTO_memcmp(hex, hexval, n) == 0;
}

/* Run the job on the thread pool, suspending; inline when already off the
 * loop (a threaded handler). 0, or an error (the job may still run then:
 * it is freed with the request). */
static int run(cf_req *rq, pw_job *j)
{
    cf_defer(rq, wipe, j);
    cf_task *t = cf_to_thread(rq, pw_compute, j);
    if (!t)
        return pw_compute(j);
    int rc = cf_await(rq, t, -1);
    return rc ? rc : j->rc;
}

char *cf_password_hash_method(cf_req *rq, const char *password, const char *method)
{
    pw_job *j = prepare(password, method ? method : "scrypt", NULL, NULL);
    if (!j || run(rq, j) != 0)
        return NULL;
    char *s = format_hash(j);
    char *r = s ? cf_strdup(rq, s) : NULL;
    free(s);
    return r;
}

char *cf_password_hash(cf_req *rq, const char *password)
{
    return cf_password_hash_method(rq, password, "scrypt");
}

int cf_password_verify(cf_req *rq, const char *hash, const char *password)
{
    const char *hexval = NULL;
    pw_job *j = hash ? prepare(password, NULL, hash, &hexval) : NULL;
    if (!j)
        return 0;
    char *want = cf_strdup(rq, hexval); /* the caller's string may be request memory */
    return run(rq, j) == 0 && matches(j, want);
}

char *cf_password_hash_now(const char *password, const char *method)
{
    pw_job *j = prepare(password, method ? method : "scrypt", NULL, NULL);
    if (!j)
        return NULL;
    char *s = pw_compute(j) == 0 ? format_hash(j) : NULL;
    wipe(j);
    return s;
}

int cf_password_verify_now(const char *hash, const char *password)
{
    const char *hexval = NULL;
    pw_job *j = hash ? prepare(password, NULL, hash, &hexval) : NULL;
    if (!j)
        return 0;
    int ok = pw_compute(j) == 0 && matches(j, hexval);
    wipe(j);
    return ok;
}
