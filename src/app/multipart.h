/*
 * multipart.h — the multipart/form-data parser (RFC 7578, RFC 2046's
 * framing): a push parser that takes the body in pieces of any size and
 * reports parts, their data and their ends, never holding more than one
 * part's header block. It knows no request, so the fuzzer drives it alone
 * (tests/fuzz/fuzz_multipart.c); src/app/multipart.c reads a request's
 * body through it.
 */
#ifndef CF_APP_MULTIPART_H
#define CF_APP_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>

enum {
    CF_MP_MORE = 0,     /* everything given was used: give more (or the end) */
    CF_MP_PART = 1,     /* a part's head: name, filename, content_type */
    CF_MP_DATA = 2,     /* data of the current part: data, len */
    CF_MP_PART_END = 3, /* the current part ended */
    CF_MP_END = 4,      /* the closing delimiter: nothing follows */
};

/* RFC 2046 allows 1 to 70 characters; clients in the wild go further, and
 * Werkzeug takes up to 200 printable ones. */
#define CF_MP_MAX_BOUNDARY 200

typedef struct cf_mp {
    int state;
    char delim[CF_MP_MAX_BOUNDARY + 4]; /* "\r\n--" boundary */
    size_t dlen;
    size_t max_header;  /* one part's header block, bytes */
    char *hdr;          /* the header block being collected (malloc'd) */
    size_t hdr_len, hdr_cap;
    size_t pad;         /* transport padding seen after a delimiter */
    /* The part just reported (CF_MP_PART): point into hdr until the next
     * call. filename is NULL for a plain field; content_type NULL when the
     * part names none. */
    const char *name, *filename, *content_type;
    const char *data; /* CF_MP_DATA: points into the caller's input */
    size_t len;
} cf_mp;

/* The boundary of a Content-Type "multipart/form-data; boundary=...", in
 * out[0..CF_MP_MAX_BOUNDARY]. Returns its length, or 0 when the type is
 * not multipart/form-data (-1: it is, but the boundary is missing or
 * malformed; *reason says how). */
int cf_mp_boundary(const char *content_type, char *out, const char **reason);
void cf_mp_init(cf_mp *m, const char *boundary, size_t max_header);
void cf_mp_free(cf_mp *m);
/* Parse in[0..len): sets *used to the bytes consumed and returns an event
 * (CF_MP_*), or -1 with *reason when the body is malformed, -2 when a
 * part's header block passes max_header. `at_end`: no byte follows in[]
 * (then CF_MP_MORE means the body ended too early: report it). Bytes not
 * used must be given again, followed by more. */
int cf_mp_step(cf_mp *m, const char *in, size_t len, bool at_end, size_t *used,
               const char **reason);

#endif
