/*
 * cron.h — five-field cron schedules ("0 3 * * 1-5") for periodic jobs:
 * parsing, and whether a minute matches. Times are UTC.
 */
#ifndef CF_IO_CRON_H
#define CF_IO_CRON_H

#include <stdbool.h>
#include <stdint.h>

typedef struct cf_cron {
    uint64_t minute;  /* bit m: minute m matches (0-59) */
    uint32_t hour;    /* 0-23 */
    uint32_t dom;     /* 1-31 */
    uint16_t month;   /* 1-12 */
    uint8_t dow;      /* 0-6, Sunday 0 (7 accepted as Sunday) */
    bool dom_any, dow_any;
} cf_cron;

/* Parse "min hour day-of-month month day-of-week": each field is "*", a
 * number, a range "a-b", a step "*\/n" or "a-b/n", or a comma list of
 * those. Returns 0, or -1 with *err set to a static message. */
int cf_cron_parse(const char *spec, cf_cron *out, const char **err);
/* Whether the minute containing Unix time t (seconds) matches. As in cron,
 * when both day fields are restricted a day matches if either does. */
bool cf_cron_matches(const cf_cron *c, int64_t t);

#endif
