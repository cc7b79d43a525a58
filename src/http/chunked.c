/*
 * chunked.c — the chunked transfer coding's decoder (RFC 9112 §7.1), for
 * request bodies.
 *
 * The opposite shape of the head parser (parser.c): a byte-level state
 * machine that resumes anywhere, because bodies are large and arrive in
 * arbitrary pieces; only chunk data moves in bulk. Chunk extensions and
 * trailer fields are checked against the same grammar as header fields
 * (chars.h) and then dropped; the size line and the trailer section are
 * capped (CF_CHUNK_MAX_LINE, CF_CHUNK_MAX_TRAILER), the size to 15
 * significant hex digits.
 */
#include "parser.h"

#include <string.h>

#include "chars.h"

enum {
    /* the chunk-size line; every state up to CH_SIZE_LF counts in line_len */
    CH_SIZE,          /* hex digits */
    CH_SIZE_BWS,      /* whitespace, which must lead to ';' */
    CH_EXT_PRE_NAME,  /* after ';' */
    CH_EXT_NAME,
    CH_EXT_POST_NAME, /* whitespace after a name: '=' or ';' next */
    CH_EXT_PRE_VAL,   /* after '=' */
    CH_EXT_TOKEN,
    CH_EXT_QUOTED,
    CH_EXT_QESC,      /* after '\' in a quoted-string */
    CH_EXT_POST_VAL,  /* after the closing '"' */
    CH_SIZE_LF,
    /* chunk data */
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    /* the trailer section; these count in trailer_len */
    CH_TRAILER_START,
    CH_TRAILER_NAME,
    CH_TRAILER_VALUE,
    CH_TRAILER_LF,
    CH_END_LF,
    /* final */
    CH_DONE,
    CH_ERROR,
};

void cf_chunked_init(cf_chunked *c)
{
    *c = (cf_chunked){.state = CH_SIZE};
}

static inline int hexval(uint8_t c)
{
    return c <= '9' ? c - '0' : lower(c) - 'a' + 10;
}

int cf_chunked_decode(cf_chunked *c, char *buf, size_t len, size_t *consumed,
                      size_t *out_len, const char **reason)
{
    uint8_t *b = (uint8_t *)buf;
    size_t i = 0, o = 0;
    const char *err = NULL;
    int st = c->state;

    if (st == CH_ERROR) {
        err = "malformed chunked body";
        goto fail;
    }
    while (i < len && st != CH_DONE) {
        if (st == CH_DATA) {
            size_t n = len - i;
            if (n > c->remaining)
                n = (size_t)c->remaining;
            if (o != i)
                memmove(b + o, b + i, n);
            o += n;
            i += n;
            c->remaining -= n;
            if (c->remaining == 0)
                st = CH_DATA_CR;
            continue;
        }
        uint8_t ch = b[i++];
        if (st <= CH_SIZE_LF && ++c->line_len > CF_CHUNK_MAX_LINE) {
            err = "chunk size line too long";
            goto fail;
        }
        if (st >= CH_TRAILER_START && ++c->trailer_len > CF_CHUNK_MAX_TRAILER) {
            err = "trailer section too large";
            goto fail;
        }
        switch (st) {
        case CH_SIZE:
            if (IS(ch, C_HEX)) {
                int d = hexval(ch);
                if ((c->remaining || d) && ++c->digits > 15) {
                    err = "chunk size too large";
                    goto fail;
                }
                c->remaining = c->remaining << 4 | (uint64_t)d;
                break;
            }
            if (c->line_len == 1) { /* the first byte was no digit */
                err = "invalid chunk size";
                goto fail;
            }
            if (ch == '\r')
                st = CH_SIZE_LF;
            else if (ch == ';')
                st = CH_EXT_PRE_NAME;
            else if (ows(ch))
                st = CH_SIZE_BWS;
            else {
                err = "invalid chunk size";
                goto fail;
            }
            break;
        case CH_SIZE_BWS:
            /* RFC 9112 §7.1.1 allows BWS before ';' only; trailing
             * whitespace is refused like any other stray byte */
            if (ch == ';')
                st = CH_EXT_PRE_NAME;
            else if (!ows(ch)) {
                err = "invalid chunk size line";
                goto fail;
            }
            break;
        case CH_EXT_PRE_NAME:
            if (IS(ch, C_TCHAR))
                st = CH_EXT_NAME;
            else if (!ows(ch)) {
                err = "invalid chunk extension";
                goto fail;
            }
            break;
        case CH_EXT_NAME:
        case CH_EXT_TOKEN:
            if (IS(ch, C_TCHAR))
                break;
            if (ch == '\r')
                st = CH_SIZE_LF;
            else if (ch == ';')
                st = CH_EXT_PRE_NAME;
            else if (ch == '=' && st == CH_EXT_NAME)
                st = CH_EXT_PRE_VAL;
            else if (ows(ch))
                st = st == CH_EXT_NAME ? CH_EXT_POST_NAME : CH_SIZE_BWS;
            else {
                err = "invalid chunk extension";
                goto fail;
            }
            break;
        case CH_EXT_POST_NAME:
            if (ch == '=')
                st = CH_EXT_PRE_VAL;
            else if (ch == ';')
                st = CH_EXT_PRE_NAME;
            else if (!ows(ch)) {
                err = "invalid chunk extension";
                goto fail;
            }
            break;
        case CH_EXT_PRE_VAL:
            if (ch == '"')
                st = CH_EXT_QUOTED;
            else if (IS(ch, C_TCHAR))
                st = CH_EXT_TOKEN;
            else if (!ows(ch)) {
                err = "invalid chunk extension";
                goto fail;
            }
            break;
        case CH_EXT_QUOTED:
            if (ch == '"')
                st = CH_EXT_POST_VAL;
            else if (ch == '\\')
                st = CH_EXT_QESC;
            else if (!IS(ch, C_QDTEXT)) {
                err = "invalid chunk extension";
                goto fail;
            }
            break;
        case CH_EXT_QESC:
            if (!IS(ch, C_VALUE)) {
                err = "invalid chunk extension";
                goto fail;
            }
            st = CH_EXT_QUOTED;
            break;
        case CH_EXT_POST_VAL:
            if (ch == '\r')
                st = CH_SIZE_LF;
            else if (ch == ';')
                st = CH_EXT_PRE_NAME;
            else if (ows(ch))
                st = CH_SIZE_BWS;
            else {
                err = "invalid chunk extension";
                goto fail;
            }
            break;
        case CH_SIZE_LF:
            if (ch != '\n') {
                err = "bare CR in chunk size line";
                goto fail;
            }
            st = c->remaining ? CH_DATA : CH_TRAILER_START;
            break;
        case CH_DATA_CR:
            if (ch != '\r') {
                err = "chunk data not followed by CRLF";
                goto fail;
            }
            st = CH_DATA_LF;
            break;
        case CH_DATA_LF:
            if (ch != '\n') {
                err = "chunk data not followed by CRLF";
                goto fail;
            }
            st = CH_SIZE;
            c->line_len = 0;
            c->digits = 0;
            break;
        case CH_TRAILER_START:
            if (ch == '\r')
                st = CH_END_LF;
            else if (IS(ch, C_TCHAR))
                st = CH_TRAILER_NAME;
            else {
                err = ows(ch) ? "obsolete line folding in trailer" : "invalid trailer field";
                goto fail;
            }
            break;
        case CH_TRAILER_NAME:
            if (ch == ':')
                st = CH_TRAILER_VALUE;
            else if (!IS(ch, C_TCHAR)) {
                err = "invalid trailer field name";
                goto fail;
            }
            break;
        case CH_TRAILER_VALUE:
            if (ch == '\r')
                st = CH_TRAILER_LF;
            else if (!IS(ch, C_VALUE)) {
                err = "invalid trailer field value";
                goto fail;
            }
            break;
        case CH_TRAILER_LF:
        case CH_END_LF:
            if (ch != '\n') {
                err = "bare CR in trailer section";
                goto fail;
            }
            st = st == CH_END_LF ? CH_DONE : CH_TRAILER_START;
            break;
        }
    }
    c->state = st;
    *consumed = i;
    *out_len = o;
    return st == CH_DONE;

fail:
    c->state = CH_ERROR;
    *consumed = i;
    *out_len = o;
    *reason = err;
    return -1;
}
