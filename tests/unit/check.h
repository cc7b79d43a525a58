/*
 * check.h — the few assertion macros the unit tests share. A failed CHECK
 * prints where and what, and the test's exit status becomes 1 (CTest then
 * reports it failed); a test keeps going so one run shows every failure.
 */
#ifndef CF_TEST_CHECK_H
#define CF_TEST_CHECK_H
#include <stdio.h>
#include <string.h>

static int check_failures;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            check_failures++;                                              \
        }                                                                  \
    } while (0)

#define CHECK_INT(a, b)                                                    \
    do {                                                                   \
        long long va_ = (long long)(a), vb_ = (long long)(b);              \
        if (va_ != vb_) {                                                  \
            fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n",   \
                    __FILE__, __LINE__, #a, va_, #b, vb_);                 \
            check_failures++;                                              \
        }                                                                  \
    } while (0)

#define CHECK_STR(a, b)                                                    \
    do {                                                                   \
        const char *sa_ = (a), *sb_ = (b);                                 \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                       \
            fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n",     \
                    __FILE__, __LINE__, #a, sa_ ? sa_ : "(null)",          \
                    sb_ ? sb_ : "(null)");                                 \
            check_failures++;                                              \
        }                                                                  \
    } while (0)

/* Return this from main. */
#define CHECK_DONE()                                                       \
    (check_failures ? (fprintf(stderr, "%d check(s) failed\n", check_failures), 1) : 0)

#endif
