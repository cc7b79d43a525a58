/*
 * multipart_parse.c — the multipart/form-data push parser (see
 * multipart.h).
 *
 * A body is: a preamble (ignored), then "--boundary", then parts, each
 * "CRLF header-block CRLF CRLF data" and ended by "CRLF--boundary"; the
 * last delimiter is followed by "--" and an epilogue (ignored). Data is
 * reported as it comes, except for a tail that could be the start of a
 * delimiter: that is held back (left unused) until the next bytes settle
 * it. So a part of any size passes through in pieces, and only a header
 * block (bounded by max_header) is ever copied.
 */
#define _GNU_SOURCE /* memmem */
#include "app/multipart.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { S_START, S_PREAMBLE, S_AFTER_DELIM, S_HEAD, S_DATA, S_DONE };

#define MAX_PADDING 256 /* spaces or tabs allowed after a delimiter */

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* A parameter value at p: a token, or a quoted-string unescaped in place.
 * Returns the place after it and any whitespace, with *sep the character
 * found there (';' or 0 when well-formed): the value is NUL-terminated in
 * place, which may overwrite that character. NULL when malformed. */
static char *param_value(char *p, char **out, char *sep)
{
    char *end;
    if (*p == '"') {
        char *o = ++p;
        *out = o;
        for (;; p++) {
            if (!*p)
                return NULL; /* no closing quote */
            if (*p == '"')
                break;
            if (*p == '\\' && p[1])
                p++;
            *o++ = *p;
        }
        end = o;
        p++;
    } else {
        *out = p;
        while (*p && *p != ';' && *p != ' ' && *p != '\t')
            p++;
        if (p == *out)
            return NULL;
        end = p;
    }
    p = (char *)skip_ows(p);
    *sep = *p;
    *end = 0;
    return p;
}

/* One "; key=value" of a parameter list at p (just past the ';'): key and
 * value NUL-terminated in place. Returns as param_value. */
static char *param(char *p, char **key, char **value, char *sep)
{
    p = (char *)skip_ows(p);
    *key = p;
    while (is_tchar((unsigned char)*p))
        p++;
    size_t klen = (size_t)(p - *key);
    p = (char *)skip_ows(p);
    if (!klen || *p != '=')
        return NULL;
    (*key)[klen] = 0; /* the '=' is read already */
    return param_value((char *)skip_ows(p + 1), value, sep);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* RFC 8187's ext-value, charset'language'pct-encoded: only UTF-8 (and the
 * ASCII subset) is taken, decoded in place. */
static char *ext_value(char *v)
{
    char *q1 = strchr(v, '\'');
    char *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
    if (!q2)
        return NULL;
    size_t cl = (size_t)(q1 - v);
    if (!((cl == 5 && strncasecmp(v, "utf-8", 5) == 0) ||
          (cl == 8 && strncasecmp(v, "us-ascii", 8) == 0)))
        return NULL;
    char *o = v, *p = q2 + 1;
    while (*p) {
        if (*p == '%' && hexval((unsigned char)p[1]) >= 0 && hexval((unsigned char)p[2]) >= 0) {
            *o++ = (char)(hexval((unsigned char)p[1]) * 16 + hexval((unsigned char)p[2]));
            p += 3;
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
    return v;
}

/* "form-data; name=...; filename=...": sets m->name and m->filename. */
static const char *parse_disposition(cf_mp *m, char *v)
{
    char *p = v;
    while (is_tchar((unsigned char)*p))
        p++;
    if ((size_t)(p - v) != 9 || strncasecmp(v, "form-data", 9) != 0)
        return "a part's Content-Disposition is not form-data";
    char *filename_ext = NULL;
    p = (char *)skip_ows(p);
    char sep = *p;
    while (sep == ';') {
        if (!*skip_ows(p + 1)) {
            sep = 0; /* a trailing ';' */
            break;
        }
        char *key, *value;
        p = param(p + 1, &key, &value, &sep);
        if (!p || (sep && sep != ';'))
            return "a malformed parameter in a part's Content-Disposition";
        if (strcasecmp(key, "name") == 0)
            m->name = value;
        else if (strcasecmp(key, "filename") == 0)
            m->filename = value;
        else if (strcasecmp(key, "filename*") == 0)
            filename_ext = ext_value(value);
    }
    if (sep)
        return "a malformed parameter in a part's Content-Disposition";
    if (filename_ext)
        m->filename = filename_ext;
    return NULL;
}

/* The header block hdr[0..len) of a part, NUL-terminated at len. */
static const char *parse_head(cf_mp *m, char *hdr, size_t len)
{
    m->name = m->filename = m->content_type = NULL;
    if (memchr(hdr, 0, len))
        return "a NUL byte in a part's header";
    bool disposition = false;
    for (char *line = hdr; line < hdr + len;) {
        char *eol = strstr(line, "\r\n");
        if (!eol)
            eol = hdr + len;
        *eol = 0;
        if (*line == ' ' || *line == '\t')
            return "a folded header line in a part";
        char *colon = strchr(line, ':');
        if (!colon || colon == line)
            return "a malformed header line in a part";
        for (char *c = line; c < colon; c++)
            if (!is_tchar((unsigned char)*c))
                return "a malformed header name in a part";
        *colon = 0;
        char *value = (char *)skip_ows(colon + 1);
        for (char *e = value + strlen(value); e > value && (e[-1] == ' ' || e[-1] == '\t');)
            *--e = 0;
        if (strcasecmp(line, "Content-Disposition") == 0 && !disposition) {
            disposition = true;
            const char *err = parse_disposition(m, value);
            if (err)
                return err;
        } else if (strcasecmp(line, "Content-Type") == 0 && !m->content_type) {
            m->content_type = value;
        }
        line = eol + 2;
    }
    if (!m->name)
        return "a part without a name";
    return NULL;
}

int cf_mp_boundary(const char *ct, char *out, const char **reason)
{
    if (!ct)
        return 0;
    ct = skip_ows(ct);
    size_t tlen = 0;
    while (ct[tlen] && ct[tlen] != ';' && ct[tlen] != ' ' && ct[tlen] != '\t')
        tlen++;
    if (tlen != 19 || strncasecmp(ct, "multipart/form-data", 19) != 0)
        return 0;
    size_t n = strlen(ct + tlen);
    char *params = malloc(n + 1);
    if (!params) {
        *reason = "out of memory";
        return -1;
    }
    memcpy(params, ct + tlen, n + 1);
    int blen = -1;
    *reason = "multipart/form-data without a boundary";
    char *p = (char *)skip_ows(params);
    char sep = *p;
    while (sep == ';') {
        char *key, *value;
        p = param(p + 1, &key, &value, &sep);
        if (!p)
            break;
        if (strcasecmp(key, "boundary") != 0)
            continue;
        size_t vl = strlen(value);
        bool ok = vl >= 1 && vl <= CF_MP_MAX_BOUNDARY && value[vl - 1] != ' ';
        for (size_t i = 0; ok && i < vl; i++)
            ok = value[i] >= 0x20 && value[i] <= 0x7e;
        if (!ok) {
            *reason = "a malformed multipart boundary";
            break;
        }
        memcpy(out, value, vl + 1);
        blen = (int)vl;
        break;
    }
    free(params);
    return blen;
}

void cf_mp_init(cf_mp *m, const char *boundary, size_t max_header)
{
    memset(m, 0, sizeof *m);
    size_t bl = strlen(boundary);
    if (bl > CF_MP_MAX_BOUNDARY)
        bl = CF_MP_MAX_BOUNDARY;
    memcpy(m->delim, "\r\n--", 4);
    memcpy(m->delim + 4, boundary, bl);
    m->dlen = bl + 4;
    m->max_header = max_header;
    m->state = S_START;
}

void cf_mp_free(cf_mp *m)
{
    free(m->hdr);
    m->hdr = NULL;
    m->hdr_len = m->hdr_cap = 0;
}

/* The longest end of in[0..len) that begins the delimiter: held back. */
static size_t partial_delim(const cf_mp *m, const char *in, size_t len)
{
    size_t from = len >= m->dlen ? len - m->dlen + 1 : 0;
    for (size_t i = from; i < len; i++)
        if (in[i] == '\r' && memcmp(in + i, m->delim, len - i) == 0)
            return len - i;
    return 0;
}

static const char *find(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
    return hlen >= nlen ? memmem(hay, hlen, needle, nlen) : NULL;
}

/* Collect the header block; returns an event, or CF_MP_MORE having used
 * everything, or an error. */
static int step_head(cf_mp *m, const char *in, size_t len, size_t *p, const char **reason)
{
    size_t room = m->max_header + 4 - m->hdr_len;
    size_t take = len - *p < room ? len - *p : room;
    /* Copy no further than an end of block already in sight. */
    const char *seen = find(in + *p, take, "\r\n\r\n", 4);
    if (seen)
        take = (size_t)(seen - (in + *p)) + 4;
    if (m->hdr_len + take + 1 > m->hdr_cap) {
        size_t cap = m->hdr_cap ? m->hdr_cap * 2 : 512;
        while (cap < m->hdr_len + take + 1)
            cap *= 2;
        char *h = realloc(m->hdr, cap);
        if (!h) {
            *reason = "out of memory";
            return -1;
        }
        m->hdr = h;
        m->hdr_cap = cap;
    }
    size_t old = m->hdr_len;
    memcpy(m->hdr + old, in + *p, take);
    m->hdr_len += take;
    m->hdr[m->hdr_len] = 0;
    /* The block ends at the first empty line; an empty block is just one. */
    size_t end, skip;
    const char *t = NULL;
    if (m->hdr_len >= 2 && memcmp(m->hdr, "\r\n", 2) == 0) {
        end = 0;
        skip = 2;
    } else {
        size_t from = old >= 3 ? old - 3 : 0;
        t = find(m->hdr + from, m->hdr_len - from, "\r\n\r\n", 4);
        if (!t) {
            *p += take;
            if (m->hdr_len >= m->max_header + 4) {
                *reason = "a part's header block is larger than the limit";
                return -2;
            }
            return CF_MP_MORE;
        }
        end = (size_t)(t - m->hdr);
        skip = 4;
    }
    if (end > m->max_header) {
        *reason = "a part's header block is larger than the limit";
        return -2;
    }
    *p += end + skip - old; /* what of this input the block and its end took */
    m->hdr[end] = 0;
    const char *err = parse_head(m, m->hdr, end);
    m->hdr_len = 0;
    if (err) {
        *reason = err;
        return -1;
    }
    m->state = S_DATA;
    return CF_MP_PART;
}

int cf_mp_step(cf_mp *m, const char *in, size_t len, bool at_end, size_t *used,
               const char **reason)
{
    size_t p = 0;
    int ev = CF_MP_MORE;
    *reason = NULL;
    for (;;) {
        switch (m->state) {
        case S_START: { /* the first delimiter may open the body, without CRLF */
            size_t d2 = m->dlen - 2;
            if (len - p < d2) {
                if (memcmp(in + p, m->delim + 2, len - p) != 0) {
                    m->state = S_PREAMBLE;
                    continue;
                }
                goto more;
            }
            if (memcmp(in + p, m->delim + 2, d2) == 0) {
                p += d2;
                m->state = S_AFTER_DELIM;
                m->pad = 0;
            } else {
                m->state = S_PREAMBLE;
            }
            continue;
        }
        case S_PREAMBLE: {
            const char *d = find(in + p, len - p, m->delim, m->dlen);
            if (!d) {
                p = len - partial_delim(m, in + p, len - p);
                goto more;
            }
            p = (size_t)(d - in) + m->dlen;
            m->state = S_AFTER_DELIM;
            m->pad = 0;
            continue;
        }
        case S_AFTER_DELIM:
            while (p < len && (in[p] == ' ' || in[p] == '\t') && m->pad <= MAX_PADDING)
                p++, m->pad++;
            if (m->pad > MAX_PADDING) {
                *reason = "a malformed multipart delimiter line";
                return -1;
            }
            if (len - p < 2)
                goto more;
            if (in[p] == '-' && in[p + 1] == '-' && m->pad == 0) {
                m->state = S_DONE;
                continue;
            }
            if (in[p] != '\r' || in[p + 1] != '\n') {
                *reason = "a malformed multipart delimiter line";
                return -1;
            }
            p += 2;
            m->state = S_HEAD;
            m->hdr_len = 0;
            continue;
        case S_HEAD:
            ev = step_head(m, in, len, &p, reason);
            if (ev < 0)
                return ev;
            if (ev == CF_MP_MORE)
                goto more;
            *used = p;
            return ev;
        case S_DATA: {
            const char *d = find(in + p, len - p, m->delim, m->dlen);
            size_t stop = d ? (size_t)(d - in) : len - partial_delim(m, in + p, len - p);
            if (stop > p) {
                m->data = in + p;
                m->len = stop - p;
                *used = stop;
                return CF_MP_DATA;
            }
            if (!d)
                goto more;
            *used = p + m->dlen;
            m->state = S_AFTER_DELIM;
            m->pad = 0;
            return CF_MP_PART_END;
        }
        default: /* S_DONE: the epilogue is ignored */
            *used = len;
            return CF_MP_END;
        }
    }
more:
    *used = p;
    if (at_end) {
        *reason = m->state == S_START || m->state == S_PREAMBLE
                      ? "no multipart boundary in the body"
                      : "the body ended before the closing multipart boundary";
        return -1;
    }
    return CF_MP_MORE;
}
