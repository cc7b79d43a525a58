/*
 * parser.h — the HTTP/1.1 request-head parser (parser.c) and chunked-body
 * decoder (chunked.c) (RFC 9112), internal to Carafe.
 *
 * Both are pure functions over caller-owned bytes: no libuv, no allocation,
 * no global state. The head parser is strict on purpose: anything a lenient
 * parser elsewhere in the chain (a proxy, a load balancer) might read
 * differently — bare LF, obs-fold, whitespace before a colon, conflicting
 * framing headers — is refused, because such disagreements are what request
 * smuggling is made of.
 *
 * The head parser keeps no state between calls: the connection calls it again
 * from the start of its buffer whenever bytes arrive, and every call checks
 * all the bytes seen so far, so a malformed request is refused as soon as its
 * first bad byte is in, not when its head is complete.
 */
#ifndef CF_HTTP_PARSER_H
#define CF_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Used for any limit when cf_http_parse_head gets lim == NULL. */
#define CF_HTTP_DEFAULT_MAX_HEADER 8192
#define CF_HTTP_DEFAULT_MAX_TARGET 8192
#define CF_HTTP_DEFAULT_MAX_FIELDS 100

/* Empty lines (CRLF) tolerated before a request line (RFC 9112 §2.2: some
 * old clients send one after a POST body); more is not a client, it is noise. */
#define CF_HTTP_MAX_LEADING_CRLF 4

/* Content-Length values above this are refused: keeps every later sum of
 * lengths far from int64 overflow. */
#define CF_HTTP_MAX_CONTENT_LENGTH ((int64_t)1 << 62)

/* One header field; both strings point into the parsed buffer and are not
 * NUL-terminated. The value has its surrounding OWS trimmed. */
typedef struct cf_hfield {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} cf_hfield;

typedef struct cf_http_limits {
    size_t max_header; /* whole head incl. request line and leading CRLFs, bytes (431) */
    size_t max_target; /* request target, bytes (414) */
    size_t max_fields; /* header fields (431); the caller's fields_cap also caps it */
} cf_http_limits;

/* A parsed request head. Every pointer points into the parsed buffer (or to
 * a static string), so it lives as long as those bytes stay where they are.
 * Only meaningful after cf_http_parse_head returned > 0. */
typedef struct cf_http_head {
    const char *method;
    size_t method_len;
    const char *target; /* as sent: origin-form, absolute-form or "*" */
    size_t target_len;
    const char *path;   /* origin-form: the path without the query; absolute-form:
                           the path after the authority ("/" if empty);
                           asterisk-form: "*" */
    size_t path_len;
    const char *query;  /* after '?', without it; NULL if none */
    size_t query_len;
    int minor;          /* 0 or 1: HTTP/1.0 or HTTP/1.1 */
    cf_hfield *fields;  /* the caller's array */
    size_t nfields;
    int64_t content_length; /* -1 when absent */
    bool chunked;           /* Transfer-Encoding: chunked */
    bool keep_alive;        /* per version and Connection (close / keep-alive) */
    bool expect_continue;   /* Expect: 100-continue, HTTP/1.1 only */
    bool upgrade;           /* Connection lists "upgrade" (WebSocket, h2c) */
    const char *host;       /* Host field value, NULL if none (may be empty) */
    size_t host_len;
    /* Absolute-form only: the target's authority, which RFC 9112 §3.2.2
     * says wins over Host for routing; NULL otherwise. */
    const char *authority;
    size_t authority_len;
} cf_http_head;

/* Parse a request head from buf[0..len). Returns the number of bytes of the
 * head (up to and including the empty line) when complete, 0 when more bytes
 * are needed, or -1 on error with *status set to the HTTP status to answer
 * (400, 414, 431, 501, 505) and *reason to a short static English message.
 * Fields are stored in fields[0..fields_cap); more than
 * min(lim->max_fields, fields_cap) fields is a 431. lim may be NULL for the
 * CF_HTTP_DEFAULT_* limits. Costs one pass over the bytes seen; a caller that
 * re-parses as bytes trickle in pays at most max_header bytes per call. */
int cf_http_parse_head(const char *buf, size_t len, const cf_http_limits *lim,
                       cf_http_head *out, cf_hfield *fields, size_t fields_cap,
                       int *status, const char **reason);

/* Longest chunk-size line (size plus extensions) and trailer section the
 * decoder accepts; beyond them it fails rather than reading on forever. */
#define CF_CHUNK_MAX_LINE 4096
#define CF_CHUNK_MAX_TRAILER 8192

/* Incremental chunked-body decoder. Plain data: copy it, zero it, or reset it
 * with cf_chunked_init; it holds no pointers. */
typedef struct cf_chunked {
    int state;
    uint64_t remaining;   /* data bytes left in the current chunk */
    size_t line_len;      /* bytes of the current size line so far */
    size_t trailer_len;   /* bytes of the trailer section so far */
    unsigned digits;      /* significant hex digits of the chunk size so far */
} cf_chunked;

void cf_chunked_init(cf_chunked *c);

/* Decode buf[0..len) in place: decoded body bytes are moved to the front of
 * buf. *consumed = input bytes used, *out_len = decoded bytes produced at
 * buf[0..*out_len). Returns 1 when the final chunk and trailers are complete
 * (bytes after *consumed belong to the next request), 0 when more input is
 * needed (all input consumed), -1 on malformed input (*reason set; the
 * decoder stays failed). Trailer fields are validated like header fields and
 * discarded. Input may be split anywhere between calls. */
int cf_chunked_decode(cf_chunked *c, char *buf, size_t len, size_t *consumed,
                      size_t *out_len, const char **reason);

#endif
