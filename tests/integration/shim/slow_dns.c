/*
 * slow_dns.c — an LD_PRELOAD library that gives a few test host names a
 * resolver with known behaviour, so tests can show that looking a name up
 * never stalls a worker's loop (test_db_pg.py). Every other name goes to
 * the real getaddrinfo.
 *
 *   slow.cf-test   answers 127.0.0.1 after 1.5 s
 *   dual.cf-test   answers 127.0.0.3 (nothing listens there) then 127.0.0.1
 *   fail.cf-test   does not exist (EAI_NONAME) at once
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <string.h>
#include <time.h>

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

static gai_fn real_getaddrinfo(void)
{
    static gai_fn fn;
    if (!fn)
        fn = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    return fn;
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    gai_fn real = real_getaddrinfo();
    if (!node)
        return real(node, service, hints, res);
    if (strcmp(node, "slow.cf-test") == 0) {
        struct timespec ts = {1, 500000000};
        while (nanosleep(&ts, &ts) != 0)
            ;
        return real("127.0.0.1", service, hints, res);
    }
    if (strcmp(node, "fail.cf-test") == 0)
        return EAI_NONAME;
    if (strcmp(node, "dual.cf-test") == 0) {
        struct addrinfo *first = NULL, *second = NULL;
        int rc = real("127.0.0.3", service, hints, &first);
        if (rc != 0)
            return rc;
        if ((rc = real("127.0.0.1", service, hints, &second)) != 0) {
            freeaddrinfo(first);
            return rc;
        }
        struct addrinfo *last = first;
        while (last->ai_next)
            last = last->ai_next;
        last->ai_next = second; /* freeaddrinfo walks the whole chain */
        *res = first;
        return 0;
    }
    return real(node, service, hints, res);
}
