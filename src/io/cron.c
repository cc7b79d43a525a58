/*
 * cron.c — five-field cron schedules for periodic jobs (see cron.h).
 */
#include "io/cron.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One field into a bit set over [lo, hi]. */
static int parse_field(const char *s, size_t len, int lo, int hi, uint64_t *bits, bool *any)
{
    *bits = 0;
    *any = len == 1 && s[0] == '*';
    const char *end = s + len;
    while (s < end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *stop = comma ? comma : end;
        long a = lo, b = hi, step = 1;
        const char *p = s;
        char *q;
        if (p < stop && *p == '*') {
            p++;
        } else {
            a = strtol(p, &q, 10);
            if (q == p)
                return -1;
            p = q;
            b = a;
            if (p < stop && *p == '-') {
                b = strtol(p + 1, &q, 10);
                if (q == p + 1)
                    return -1;
                p = q;
            }
        }
        if (p < stop && *p == '/') {
            step = strtol(p + 1, &q, 10);
            if (q == p + 1 || step <= 0)
                return -1;
            p = q;
            if (b == a && s[0] != '*')
                b = hi; /* "5/15": from 5 to the end */
        }
        if (p != stop || a < lo || b > hi || a > b)
            return -1;
        for (long v = a; v <= b; v += step)
            *bits |= 1ull << v;
        s = comma ? comma + 1 : end;
        if (comma && s == end)
            return -1;
    }
    return *bits ? 0 : -1;
}

int cf_cron_parse(const char *spec, cf_cron *out, const char **err)
{
    static const int lo[] = {0, 0, 1, 1, 0}, hi[] = {59, 23, 31, 12, 7};
    uint64_t bits[5];
    bool any[5];
    const char *p = spec;
    memset(out, 0, sizeof *out);
    for (int f = 0; f < 5; f++) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t n = strcspn(p, " \t");
        if (!n || parse_field(p, n, lo[f], hi[f], &bits[f], &any[f]) != 0) {
            *err = n ? "a cron field is out of range or malformed" : "a cron schedule has 5 fields";
            return -1;
        }
        p += n;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p) {
        *err = "a cron schedule has 5 fields";
        return -1;
    }
    out->minute = bits[0];
    out->hour = (uint32_t)bits[1];
    out->dom = (uint32_t)(bits[2] >> 1);
    out->month = (uint16_t)(bits[3] >> 1);
    out->dow = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f); /* 7 is Sunday too */
    out->dom_any = any[2];
    out->dow_any = any[4];
    return 0;
}

bool cf_cron_matches(const cf_cron *c, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    if (!(c->minute >> tm.tm_min & 1) || !(c->hour >> tm.tm_hour & 1) ||
        !(c->month >> tm.tm_mon & 1))
        return false;
    bool dom = c->dom >> (tm.tm_mday - 1) & 1, dow = c->dow >> tm.tm_wday & 1;
    if (c->dom_any || c->dow_any)
        return dom && dow;
    return dom || dow;
}
