/*
 * test_cron.c — cron schedules for periodic jobs: parsing (valid forms and
 * refusals) and matching at known UTC times, including the day-of-month /
 * day-of-week OR rule and Sunday as 0 or 7.
 */
#include "check.h"
#include "io/cron.h"

/* 2026-11-22 is a Sunday. */
#define SUN_2026_11_22_0000 1795305600LL

static bool at(const char *spec, int64_t t)
{
    cf_cron c;
    const char *err;
    if (cf_cron_parse(spec, &c, &err) != 0)
        return false;
    return cf_cron_matches(&c, t);
}

int main(void)
{
    cf_cron c;
    const char *err = NULL;
    const char *bad[] = {"", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *",
                         "* * * 13 *", "* * * * 8", "*/0 * * * *", "5-1 * * * *", "a * * * *",
                         "1, * * * *", "1-* * * * *"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_INT(cf_cron_parse(bad[i], &c, &err), -1);
        CHECK(err != NULL);
    }
    const int64_t t = SUN_2026_11_22_0000;
    CHECK(at("* * * * *", t));
    CHECK(at("0 0 * * *", t));
    CHECK(!at("1 0 * * *", t));
    CHECK(at("*/5 * * * *", t + 10 * 60 + 30));  /* 00:10:30 */
    CHECK(!at("*/5 * * * *", t + 11 * 60));
    CHECK(at("5/15 * * * *", t + 20 * 60));      /* 5, 20, 35, 50 */
    CHECK(!at("5/15 * * * *", t + 15 * 60));
    CHECK(at("0-10/5,30 1 * * *", t + 3600 + 30 * 60));
    CHECK(at("0 0 * * 0", t));                   /* Sunday as 0 */
    CHECK(at("0 0 * * 7", t));                   /* and as 7 */
    CHECK(!at("0 0 * * 1-5", t));
    CHECK(at("0 0 22 11 *", t));
    CHECK(!at("0 0 22 12 *", t));
    CHECK(at("0 0 1 * 0", t));                   /* day 1 OR Sunday: Sunday matches */
    CHECK(!at("0 0 1 * 1", t));                  /* neither the 1st nor a Monday */
    CHECK(at("0 0 1 * 1", t + 86400));           /* Monday the 23rd */
    CHECK(at("0 0 * * 1", t + 86400));
    CHECK(!at("0 0 23 * *", t));
    return CHECK_DONE();
}
