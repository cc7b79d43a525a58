/*
 * log.c — the app's logger (cf_log, cf_app_log): levels with a threshold,
 * one line per call on stderr, as text or JSON (--log-format json), each
 * naming the worker and the request it belongs to.
 *
 * A line is formatted whole and written with one write(2), so the lines of
 * several workers sharing stderr never interleave mid-line (pipes keep
 * writes up to PIPE_BUF whole; files opened O_APPEND any size). The
 * request id is the exchange's X-Request-Id, made here on first use when
 * the protocol gives a seed, so a logged request's response and access log
 * record carry the same id.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/req.h"

static const char *const level_text[] = {"DEBUG", "INFO", "WARNING", "ERROR"};
static const char *const level_json[] = {"debug", "info", "warning", "error"};

int cf_log_set_level(cf_app *app, cf_log_level level)
{
    if (!app || (unsigned)level > CF_LOG_ERROR)
        return CF_EINVAL;
    app->log_level = (int)level;
    return 0;
}

bool cf_log_enabled(const cf_app *app, cf_log_level level)
{
    return app && (unsigned)level <= CF_LOG_ERROR && (int)level >= app->log_level;
}

size_t cf_json_escape(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o] = 0;
    return o;
}

/* Text lines stay one line: control characters are written escaped. */
static size_t text_escape(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 5 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '\n')
            out[o++] = '\\', out[o++] = 'n';
        else if (ch < 0x20 && ch != '\t')
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
        else
            out[o++] = (char)ch;
    }
    out[o] = 0;
    return o;
}

static void write_all(const char *p, size_t len)
{
    while (len) {
        ssize_t n = write(2, p, len);
        if (n <= 0)
            return; /* a closed or full stderr must not stop the server */
        p += n;
        len -= (size_t)n;
    }
}

static void emit(cf_app *app, cf_req *rq, cf_log_level level, const char *fmt, va_list ap)
{
    char small[512];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    char *msg = small;
    if (n < 0) {
        va_end(ap2);
        return;
    }
    if ((size_t)n >= sizeof small && (msg = malloc((size_t)n + 1)))
        vsnprintf(msg, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    if (!msg)
        msg = small; /* out of memory: the truncated text */

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    size_t wl = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + wl, sizeof when - wl, ".%03dZ", (int)(ts.tv_nsec / 1000000));

    const char *id = NULL;
    if (rq) {
        cf_exchange *x = &rq->x;
        if (!x->request_id && x->id_seed)
            x->request_id = cf_exchange_request_id(x, x->id_seed);
        id = x->request_id;
    }
    size_t mlen = strlen(msg);
    size_t cap = 6 * mlen + 1024;
    char *line = malloc(cap), *esc = malloc(6 * mlen + 8);
    if (line && esc) {
        size_t len;
        if (app->log_json) {
            char e_id[300] = "", e_method[64] = "", e_path[1024] = "";
            cf_json_escape(esc, 6 * mlen + 8, msg);
            if (id)
                cf_json_escape(e_id, sizeof e_id, id);
            if (rq && rq->x.method)
                cf_json_escape(e_method, sizeof e_method, rq->x.method);
            if (rq && rq->x.path)
                cf_json_escape(e_path, sizeof e_path, rq->x.path);
            len = (size_t)snprintf(line, cap,
                                   "{\"time\":\"%s\",\"level\":\"%s\",\"pid\":%d,\"request_id\":%s%s%s,"
                                   "\"method\":%s%s%s,\"path\":%s%s%s,\"message\":\"%s\"}\n",
                                   when, level_json[level], (int)getpid(), id ? "\"" : "",
                                   id ? e_id : "null", id ? "\"" : "", rq ? "\"" : "",
                                   rq ? e_method : "null", rq ? "\"" : "", rq ? "\"" : "",
                                   rq ? e_path : "null", rq ? "\"" : "", esc);
        } else {
            text_escape(esc, 6 * mlen + 8, msg);
            len = (size_t)snprintf(line, cap, "%s %s %d %s %s\n", when, level_text[level],
                                   (int)getpid(), id ? id : "-", esc);
        }
        write_all(line, len < cap ? len : cap - 1);
    }
    free(line);
    free(esc);
    if (msg != small)
        free(msg);
}

void cf_log(cf_req *rq, cf_log_level level, const char *fmt, ...)
{
    if (!rq || !cf_log_enabled(rq->app, level))
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(rq->app, rq, level, fmt, ap);
    va_end(ap);
}

void cf_app_log(cf_app *app, cf_log_level level, const char *fmt, ...)
{
    if (!cf_log_enabled(app, level))
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(app, NULL, level, fmt, ap);
    va_end(ap);
}
