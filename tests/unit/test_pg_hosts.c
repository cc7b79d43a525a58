/*
 * test_pg_hosts.c — which PostgreSQL connection strings need their host
 * names looked up before libpq connects, and the host/hostaddr/port lists
 * handed to libpq afterwards (real lookups on a real loop: "localhost", and
 * the names tests/integration/shim/slow_dns.c answers, preloaded by CTest):
 * lists stay aligned entry by entry, a name with two addresses gives two
 * entries, Unix socket directories and numeric addresses pass through, a
 * name that does not resolve is an error naming it, and an abandoned lookup
 * never calls back.
 */
#include <stdlib.h>
#include <uv.h>

#include "check.h"
#include "io/pg_hosts.h"

typedef struct answer {
    int calls;
    char *keys[5], *values[5];
    char *error;
} answer;

static void on_resolved(void *ud, const char *const *keys, const char *const *values,
                        const char *error)
{
    answer *a = ud;
    a->calls++;
    if (error) {
        a->error = strdup(error);
        return;
    }
    for (int i = 0; keys[i] && i < 4; i++) {
        a->keys[i] = strdup(keys[i]);
        a->values[i] = strdup(values[i]);
    }
}

static const char *value_of(const answer *a, const char *key)
{
    for (int i = 0; a->keys[i]; i++)
        if (!strcmp(a->keys[i], key))
            return a->values[i];
    return NULL;
}

static size_t items(const char *list)
{
    size_t n = 1;
    for (; *list; list++)
        n += *list == ',';
    return n;
}

static void answer_free(answer *a)
{
    for (int i = 0; i < 5; i++) {
        free(a->keys[i]);
        free(a->values[i]);
    }
    free(a->error);
}

/* Resolve conninfo on a fresh loop; a->calls says whether it called back. */
static void resolve(const char *conninfo, answer *a)
{
    memset(a, 0, sizeof *a);
    pg_hosts *h = pg_hosts_parse(conninfo);
    CHECK(h != NULL);
    if (!h)
        return;
    uv_loop_t loop;
    uv_loop_init(&loop);
    CHECK(pg_resolve_start(&loop, h, on_resolved, a) != NULL);
    CHECK_INT(a->calls, 0); /* never from inside the start */
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    pg_hosts_free(h);
    CHECK_INT(a->calls, 1);
}

int main(void)
{
    unsetenv("PGHOST");
    unsetenv("PGHOSTADDR");
    unsetenv("PGPORT");

    /* Nothing to look up: numeric addresses, hostaddr given, sockets, defaults. */
    const char *direct[] = {
        "postgresql://u@127.0.0.1:5432/db",
        "postgresql://u@[::1]:5432/db",
        "postgresql://u@localhost/db?hostaddr=127.0.0.1",
        "postgresql:///db",
        "postgresql://%2Fvar%2Frun%2Fpostgresql/db",
        "host=/tmp dbname=db",
        "host=localhost,otherhost port=1,2,3", /* libpq's error to report */
        "not a connection string",
    };
    for (size_t i = 0; i < sizeof direct / sizeof *direct; i++) {
        pg_hosts *h = pg_hosts_parse(direct[i]);
        if (h)
            fprintf(stderr, "needs a lookup: %s\n", direct[i]);
        CHECK(h == NULL);
        pg_hosts_free(h);
    }
    setenv("PGHOSTADDR", "127.0.0.1", 1);
    CHECK(pg_hosts_parse("postgresql://u@localhost/db") == NULL);
    unsetenv("PGHOSTADDR");
    setenv("PGHOST", "localhost", 1); /* as libpq would, when the URL names no host */
    pg_hosts *env_host = pg_hosts_parse("postgresql:///db");
    CHECK(env_host != NULL);
    pg_hosts_free(env_host);
    unsetenv("PGHOST");

    /* A socket directory, then a name: aligned lists, the name's addresses
     * each with the name and its own port. */
    answer a;
    resolve("postgresql://u@%2Ftmp:5432,localhost:5433/db", &a);
    CHECK(a.error == NULL);
    const char *host = value_of(&a, "host"), *addr = value_of(&a, "hostaddr"),
               *port = value_of(&a, "port"), *dbname = value_of(&a, "dbname");
    CHECK(host && addr && port && dbname);
    if (host && addr && port && dbname) {
        CHECK_STR(dbname, "postgresql://u@%2Ftmp:5432,localhost:5433/db");
        CHECK(items(host) >= 2);
        CHECK_INT(items(addr), items(host));
        CHECK_INT(items(port), items(host));
        CHECK(!strncmp(host, "/tmp,localhost", 14));
        CHECK(addr[0] == ','); /* the directory's entry is empty: use the host */
        CHECK(!strncmp(port, "5432,5433", 9));
        CHECK(strstr(addr, "127.0.0.1") || strstr(addr, "::1"));
    }
    answer_free(&a);

    /* One port for every host, and no port at all. */
    resolve("host=localhost port=6000 dbname=x", &a);
    CHECK(value_of(&a, "port") && !strncmp(value_of(&a, "port"), "6000", 4));
    answer_free(&a);
    resolve("host=localhost dbname=x", &a);
    CHECK(value_of(&a, "hostaddr") != NULL);
    CHECK(value_of(&a, "port") == NULL);
    answer_free(&a);

    /* Two addresses for one name: two entries, in the resolver's order. */
    resolve("postgresql://u@dual.cf-test:7000/db", &a);
    CHECK_STR(value_of(&a, "host"), "dual.cf-test,dual.cf-test");
    CHECK_STR(value_of(&a, "hostaddr"), "127.0.0.3,127.0.0.1");
    CHECK_STR(value_of(&a, "port"), "7000,7000");
    answer_free(&a);

    /* A name that does not exist. */
    resolve("postgresql://u@fail.cf-test/db", &a);
    CHECK(a.error && strstr(a.error, "\"fail.cf-test\""));
    answer_free(&a);

    /* Abandoned: no call back, and the lookup cleans up after itself (ASan). */
    pg_hosts *h = pg_hosts_parse("postgresql://u@localhost/db");
    uv_loop_t loop;
    uv_loop_init(&loop);
    memset(&a, 0, sizeof a);
    pg_resolve *r = pg_resolve_start(&loop, h, on_resolved, &a);
    CHECK(r != NULL);
    if (r)
        pg_resolve_abandon(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(a.calls, 0);
    CHECK_INT(uv_loop_close(&loop), 0);
    pg_hosts_free(h);
    return CHECK_DONE();
}
