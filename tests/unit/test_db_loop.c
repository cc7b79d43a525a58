/*
 * test_db_loop.c — SQLite reads outside a transaction run on the worker's
 * loop thread (CF_DB_LOOP_READ_STEPS), everything else on the pool; through
 * the in-process test client, on a database file in a temporary directory:
 *   - a short read is answered while every pool thread is busy with slow
 *     statements (it does not queue behind them); with the option at 0 it
 *     does queue, so the test can tell the two paths apart;
 *   - a read longer than its step budget starts over on the pool and its
 *     result is whole: every row once, in order (budgets 1, default, 0);
 *   - read-your-writes: a write (pool) and the next read (loop) agree, 200
 *     times in a row; a read inside a transaction sees its own changes;
 *   - errors found on the loop are the same codes and messages: unknown
 *     table, wrong parameter count; BEGIN sent as a query is still refused;
 *   - cf_db_set refuses a budget over INT32_MAX or below 0.
 */
#include <carafe.h>

#include "check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

/* Counting to N in a recursive CTE: about 2 VM steps per row. */
#define COUNT_SQL \
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $1) "
#define SLOW_N 1000000 /* some 160 ms per statement on this kind of machine */
#define SLOW_TASKS 8   /* twice libuv's default pool of 4 threads */

struct race {
    int finished; /* statements done so far */
    int quick_at; /* how many slow ones had finished when the quick read did */
};

static int slow_task(cf_req *rq, void *arg)
{
    struct race *rc = arg;
    cf_rows *r = cf_db_query(rq, COUNT_SQL "SELECT count(*) FROM c", cf_v_int(SLOW_N));
    rc->finished++;
    return r ? 0 : cf_db_error(rq);
}

static int quick_task(cf_req *rq, void *arg)
{
    struct race *rc = arg;
    cf_sleep(rq, 20); /* the slow statements hold every pool thread by now */
    cf_rows *r = cf_db_query(rq, "SELECT count(*) FROM items");
    rc->quick_at = rc->finished;
    return r && cf_rows_next(r) ? 0 : cf_db_error(rq);
}

static void race(cf_req *rq)
{
    struct race rc = {0, -1};
    cf_task *t[SLOW_TASKS + 1];
    for (int i = 0; i < SLOW_TASKS; i++)
        t[i] = cf_spawn(rq, slow_task, &rc);
    t[SLOW_TASKS] = cf_spawn(rq, quick_task, &rc);
    int err = cf_await_all_n(rq, (void *const *)t, SLOW_TASKS + 1, -1);
    cf_json(rq, 200, "{s:i,s:i,s:i}", "err", err, "quick_at", rc.quick_at, "finished",
            rc.finished);
}

/* Every row of a long read, checked in order here. */
static void long_read(cf_req *rq)
{
    int64_t n = cf_param_int(rq, "n");
    cf_rows *r = cf_db_query(rq, COUNT_SQL "SELECT x FROM c", cf_v_int(n));
    if (!r)
        return cf_json(rq, 500, "{s:s}", "error", cf_errmsg(rq));
    int64_t rows = 0, out_of_order = 0;
    while (cf_rows_next(r)) {
        rows++;
        if (cf_row_int(r, 0) != rows)
            out_of_order++;
    }
    cf_json(rq, 200, "{s:I,s:I}", "rows", (json_int_t)rows, "out_of_order",
            (json_int_t)out_of_order);
}

/* Write then read, many times: each read sees the write before it. */
static void write_read(cf_req *rq)
{
    int stale = 0;
    for (int i = 1; i <= 200; i++) {
        if (!cf_db_query(rq, "UPDATE counter SET n = $1", cf_v_int(i)))
            return cf_json(rq, 500, "{s:s}", "error", cf_errmsg(rq));
        cf_rows *r = cf_db_query(rq, "SELECT n FROM counter");
        if (!r || !cf_rows_next(r))
            return cf_json(rq, 500, "{s:s}", "error", cf_errmsg(rq));
        if (cf_row_int(r, 0) != i)
            stale++;
    }
    /* Inside a transaction a read goes to the transaction's connection. */
    cf_db_begin(rq);
    cf_db_query(rq, "INSERT INTO items(name) VALUES ('in-txn')");
    cf_rows *in = cf_db_query(rq, "SELECT count(*) FROM items WHERE name = 'in-txn'");
    int64_t seen = in && cf_rows_next(in) ? cf_row_int(in, 0) : -1;
    cf_db_rollback(rq);
    cf_rows *after = cf_db_query(rq, "SELECT count(*) FROM items WHERE name = 'in-txn'");
    int64_t left = after && cf_rows_next(after) ? cf_row_int(after, 0) : -1;
    cf_json(rq, 200, "{s:i,s:I,s:I}", "stale", stale, "seen_in_txn", (json_int_t)seen,
            "left_after_rollback", (json_int_t)left);
}

static void errors(cf_req *rq)
{
    cf_rows *a = cf_db_query(rq, "SELECT * FROM missing_table");
    int a_err = cf_db_error(rq);
    const char *a_msg = cf_errmsg(rq);
    cf_rows *b = cf_db_query(rq, "SELECT name FROM items WHERE id = $1");
    int b_err = cf_db_error(rq);
    const char *b_msg = cf_errmsg(rq);
    cf_rows *c = cf_db_query(rq, "BEGIN");
    int c_err = cf_db_error(rq);
    const char *c_msg = cf_errmsg(rq);
    cf_rows *d = cf_db_query(rq, "SELECT count(*) FROM items");
    cf_json(rq, 200, "{s:b,s:i,s:s,s:b,s:i,s:s,s:b,s:i,s:s,s:b}", "a", a != NULL, "a_err", a_err,
            "a_msg", a_msg, "b", b != NULL, "b_err", b_err, "b_msg", b_msg, "c", c != NULL,
            "c_err", c_err, "c_msg", c_msg, "d", d && cf_rows_next(d));
}

static const char *schema = "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT);"
                            "INSERT INTO items(name) VALUES ('a'), ('b'), ('c');"
                            "CREATE TABLE counter(n INTEGER);"
                            "INSERT INTO counter VALUES (0);";

static cf_app *app;

static cf_test_client *start(int64_t steps, const char *file)
{
    char url[256];
    snprintf(url, sizeof url, "sqlite:///%s/%s", dir, file);
    app = cf_app_new();
    cf_route(app, "GET", "/race", race);
    cf_route(app, "GET", "/long/<int:n>", long_read);
    cf_route(app, "GET", "/write-read", write_read);
    cf_route(app, "GET", "/errors", errors);
    CHECK_INT(cf_db_open(app, url), 0);
    CHECK_INT(cf_db_exec_script(app, schema), 0);
    if (steps >= 0)
        CHECK_INT(cf_db_set(app, CF_DB_LOOP_READ_STEPS, steps), 0);
    return cf_test_client_new(app);
}

static void stop(cf_test_client *tc)
{
    cf_test_client_free(tc);
    cf_app_free(app);
}

static json_t *get(cf_test_client *tc, const char *target)
{
    cf_test_response *r = cf_test_get(tc, target);
    CHECK_INT(cf_test_status(r), 200);
    return cf_test_json(r);
}

static long long jint(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static void check_long_reads(cf_test_client *tc)
{
    static const char *sizes[] = {"/long/1", "/long/9999", "/long/10000", "/long/10001",
                                  "/long/100000"};
    static const long long rows[] = {1, 9999, 10000, 10001, 100000};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        json_t *o = get(tc, sizes[i]);
        CHECK_INT(jint(o, "rows"), rows[i]);
        CHECK_INT(jint(o, "out_of_order"), 0);
    }
}

static void test_default(void)
{
    cf_test_client *tc = start(-1, "default.db");
    json_t *o = get(tc, "/race");
    CHECK_INT(jint(o, "err"), 0);
    CHECK_INT(jint(o, "finished"), SLOW_TASKS);
    CHECK_INT(jint(o, "quick_at"), 0); /* answered before any slow statement ended */
    check_long_reads(tc);
    o = get(tc, "/write-read");
    CHECK_INT(jint(o, "stale"), 0);
    CHECK_INT(jint(o, "seen_in_txn"), 1);
    CHECK_INT(jint(o, "left_after_rollback"), 0);
    o = get(tc, "/errors");
    CHECK(json_is_false(json_object_get(o, "a")));
    CHECK_INT(jint(o, "a_err"), CF_EDBSYNTAX);
    CHECK(strstr(json_string_value(json_object_get(o, "a_msg")), "no such table: missing_table"));
    CHECK(json_is_false(json_object_get(o, "b")));
    CHECK_INT(jint(o, "b_err"), CF_EINVAL);
    CHECK(strstr(json_string_value(json_object_get(o, "b_msg")), "uses 1 parameter(s)"));
    CHECK(json_is_false(json_object_get(o, "c")));
    CHECK_INT(jint(o, "c_err"), CF_EINVAL);
    CHECK(strstr(json_string_value(json_object_get(o, "c_msg")), "use cf_db_begin"));
    CHECK(json_is_true(json_object_get(o, "d")));
    stop(tc);
}

/* Budget 1: every read is over budget at once and runs on the pool. */
static void test_tiny_budget(void)
{
    cf_test_client *tc = start(1, "tiny.db");
    check_long_reads(tc);
    json_t *o = get(tc, "/write-read");
    CHECK_INT(jint(o, "stale"), 0);
    stop(tc);
}

/* Budget 0: nothing on the loop, so the quick read queues behind at least
 * the statements the pool was already running. */
static void test_pool_only(void)
{
    cf_test_client *tc = start(0, "pool.db");
    json_t *o = get(tc, "/race");
    CHECK_INT(jint(o, "err"), 0);
    CHECK(jint(o, "quick_at") >= 1);
    check_long_reads(tc);
    stop(tc);
}

static void test_option(void)
{
    app = cf_app_new();
    CHECK_INT(cf_db_set(app, CF_DB_LOOP_READ_STEPS, -1), CF_EINVAL);
    CHECK_INT(cf_db_set(app, CF_DB_LOOP_READ_STEPS, (int64_t)INT32_MAX + 1), CF_EINVAL);
    CHECK_INT(cf_db_set(app, CF_DB_LOOP_READ_STEPS, INT32_MAX), 0);
    CHECK_INT(cf_db_set(app, CF_DB_LOOP_READ_STEPS, 0), 0);
    cf_app_free(app);
}

static void rm_dir(void)
{
    static const char *names[] = {"default.db", "tiny.db", "pool.db"};
    static const char *suffixes[] = {"", "-wal", "-shm"};
    char p[256];
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 3; j++) {
            snprintf(p, sizeof p, "%s/%s%s", dir, names[i], suffixes[j]);
            unlink(p);
        }
    rmdir(dir);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/cf-dbloop-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_option();
    test_default();
    test_tiny_budget();
    test_pool_only();
    rm_dir();
    return CHECK_DONE();
}
