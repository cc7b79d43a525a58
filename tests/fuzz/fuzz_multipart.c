/*
 * fuzz_multipart.c — libFuzzer target for the multipart/form-data parser
 * (src/app/multipart_parse.c). The first byte picks where the input is cut
 * into two pieces and the header limit; the rest is a body with boundary
 * "XyZ". The parser must never read out of bounds, never report more data
 * than it was given, and give the same result whole and in pieces.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/multipart.h"

/* Parts, data and the outcome as text, the input given in two pieces. */
static size_t run(const uint8_t *body, size_t len, size_t cut, size_t max_header, char *out,
                  size_t cap)
{
    cf_mp m;
    cf_mp_init(&m, "XyZ", max_header);
    uint8_t *held = malloc(len + 1);
    size_t hlen = 0, fed = 0, o = 0, data_total = 0;
    int ev = CF_MP_MORE;
    for (int round = 0; round < 2 && ev >= 0 && ev != CF_MP_END; round++) {
        size_t add = round == 0 ? cut : len - cut;
        memcpy(held + hlen, body + fed, add);
        hlen += add;
        fed += add;
        size_t at = 0;
        do {
            size_t used = 0;
            const char *why = NULL;
            ev = cf_mp_step(&m, (const char *)held + at, hlen - at, fed == len, &used, &why);
            if (used > hlen - at)
                abort();
            at += used;
            if (ev == CF_MP_DATA) {
                data_total += m.len;
                if (m.len && (m.data < (const char *)held || m.data + m.len > (const char *)held + hlen))
                    abort();
                o += (size_t)snprintf(out + o, cap - o, "d%zu,", m.len > 0 ? (size_t)(unsigned char)m.data[0] : 0);
            } else if (ev == CF_MP_PART) {
                o += (size_t)snprintf(out + o, cap - o, "p%s|%s,", m.name, m.filename ? m.filename : "");
            } else if (ev != CF_MP_MORE) {
                o += (size_t)snprintf(out + o, cap - o, "e%d,", ev);
            }
            if (o >= cap)
                o = cap - 1;
        } while (ev > CF_MP_MORE && ev != CF_MP_END);
        memmove(held, held + at, hlen - at);
        hlen -= at;
    }
    if (data_total > len)
        abort();
    cf_mp_free(&m);
    free(held);
    return data_total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t cut = (size_t)data[0] % (size);
    size_t max_header = 16 + (size_t)(data[0] & 0x3f) * 8;
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    if (cut > len)
        cut = len;
    static char a[1 << 16], b[1 << 16];
    size_t da = run(body, len, len, max_header, a, sizeof a);
    size_t db = run(body, len, cut, max_header, b, sizeof b);
    /* Pieces may split data events differently, but not parts or outcome. */
    if (da != db)
        abort();
    return 0;
}
