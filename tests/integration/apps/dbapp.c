/*
 * dbapp — the app tests/integration/test_db_pg.py starts, on SQLite or
 * PostgreSQL (DATABASE_URL; CF_DB_POOL_SIZE and CF_DB_CONNECT_TIMEOUT from the
 * environment too; with
 * DBAPP_NO_SCHEMA set it starts without creating its tables).
 *
 *   GET    /health                 200 "ok" (no database)
 *   POST   /items                  {"name", "email"?} -> 201 {"id"}; 409 on a duplicate email
 *   GET    /items/<int:id>         the row, or 404
 *   GET    /count?name=            {"count": rows with that name}
 *   GET    /types                  NULL, unicode, real, blob (and on PostgreSQL
 *                                  bool, json, numeric) as one JSON row
 *   GET    /big                    1 MiB of text in and out: {"len", "same"}
 *   GET    /err/<what>             {"code", "error"} of a statement that fails that way
 *   GET    /dbsleep?ms=            a statement that runs ms on the server (pg_sleep),
 *                                  or counts to n on SQLite (/dbsleep?n=)
 *   GET    /dbtimeout?ms=&t=       a ms-long statement awaited for t ms, then
 *                                  another on the same request: {"rc", "after", "ms"}
 *   GET    /sleeping               PostgreSQL: {"count"} of other sessions running pg_sleep
 *   GET    /hold?ms=               holds a connection for ms: BEGIN, SELECT 1,
 *                                  cf_sleep(ms), COMMIT -> {"waited_ms"}
 *   GET    /txnsleep?name=&ms=&db= BEGIN, INSERT name, sleep ms (db=1: in the server),
 *                                  COMMIT; a cancelled one is counted in /stats
 *   GET    /pipeline               three statements started together: their
 *                                  backend pids (PostgreSQL) and values
 *   GET    /stats                  {"cancelled": requests whose teardown saw CF_ECANCELED}
 *   GET    /manualbegin            "BEGIN" sent as a plain query, never ended by the handler
 *   GET    /idleintxn              PostgreSQL: {"count"} of other sessions idle in a transaction
 *   GET    /crashtxn?name=&ms=     BEGIN, INSERT name, sleep ms, then abort(): the worker's
 *                                  crash recovery must give the connection back
 *
 * Errors map to statuses: CF_EUNIQUE 409, constraint/EINVAL 400, CF_EDBCONN
 * 503, CF_ETIMEDOUT 504, others 500; bodies {"code", "error"}.
 */
#include <carafe.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool pg;
static long cancelled;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int status_for(int err)
{
    switch (err) {
    case CF_EUNIQUE: return 409;
    case CF_EFOREIGNKEY: case CF_ENOTNULL: case CF_ECONSTRAINT: case CF_EINVAL: return 400;
    case CF_EDBCONN: return 503;
    case CF_ETIMEDOUT: return 504;
    default: return 500;
    }
}

static void db_error(cf_req *rq)
{
    int err = cf_db_error(rq);
    cf_json(rq, status_for(err), "{s:i,s:s}", "code", err, "error", cf_errmsg(rq));
}

static long arg_long(cf_req *rq, const char *name, long dflt)
{
    const char *v = cf_arg(rq, name);
    return v ? strtol(v, NULL, 10) : dflt;
}

static void health(cf_req *rq) { cf_text(rq, 200, "ok"); }

static void create_item(cf_req *rq)
{
    json_t *b = cf_get_json(rq);
    if (!b)
        return cf_json(rq, 400, "{s:s}", "error", cf_errmsg(rq));
    cf_rows *r = cf_db_query(rq, "INSERT INTO items(name, email) VALUES ($1, $2) RETURNING id",
                             cf_v_text(json_string_value(json_object_get(b, "name"))),
                             cf_v_text(json_string_value(json_object_get(b, "email"))));
    if (!r)
        return db_error(rq);
    cf_json(rq, 201, "{s:I}", "id", (json_int_t)cf_row_int(r, 0));
}

static void get_item(cf_req *rq)
{
    cf_rows *r = cf_db_query(rq, "SELECT id, name, email FROM items WHERE id = $1",
                             cf_v_int(cf_param_int(rq, "id")));
    if (!r)
        return db_error(rq);
    if (!cf_rows_next(r))
        return cf_json(rq, 404, "{s:s}", "error", "not found");
    cf_json_value(rq, 200, cf_row_object(r));
}

static void count(cf_req *rq)
{
    cf_rows *r = cf_db_query(rq, "SELECT count(*) FROM items WHERE name = $1",
                             cf_v_text(cf_arg(rq, "name")));
    if (!r)
        return db_error(rq);
    cf_json(rq, 200, "{s:I}", "count", (json_int_t)cf_row_int(r, 0));
}

static void types(cf_req *rq)
{
    static const unsigned char blob[] = {0, 1, 2, 250, 255, 'x'};
    const char *uni = "Zo\xc3\xab \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x8e\x89";
    cf_rows *r = pg ? cf_db_query(rq, "SELECT $1::int8 AS i, $2::float8 AS r, $3::text AS t, "
                                      "$4::bytea AS b, $5::text AS n, true AS yes, "
                                      "'{\"a\":[1,2]}'::jsonb AS j, 1.25::numeric AS num",
                                  cf_v_int(-9007199254740993LL), cf_v_real(2.5), cf_v_text(uni),
                                  cf_v_blob(blob, sizeof blob), cf_v_null())
                    : cf_db_query(rq, "SELECT $1 AS i, $2 AS r, $3 AS t, $4 AS b, $5 AS n",
                                  cf_v_int(-9007199254740993LL), cf_v_real(2.5), cf_v_text(uni),
                                  cf_v_blob(blob, sizeof blob), cf_v_null());
    if (!r)
        return db_error(rq);
    size_t blen = 0;
    const void *b = cf_row_blob(r, 3, &blen);
    bool ok = cf_row_int(r, 0) == -9007199254740993LL && cf_row_real(r, 1) == 2.5 &&
              strcmp(cf_row_text(r, 2), uni) == 0 && blen == sizeof blob &&
              memcmp(b, blob, blen) == 0 && cf_row_is_null(r, 4) && !cf_row_text(r, 4);
    cf_json(rq, 200, "{s:o,s:b}", "row", cf_row_object(r), "getters", ok);
}

static void big(cf_req *rq)
{
    size_t n = 1024 * 1024;
    char *s = cf_alloc(rq, n + 1);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('a' + (i * 7 + i / 1000) % 26);
    s[n] = 0;
    cf_rows *r = cf_db_query(rq, "INSERT INTO items(name, body) VALUES ('big', $1) RETURNING id",
                             cf_v_text(s));
    if (!r)
        return db_error(rq);
    r = cf_db_query(rq, "SELECT body FROM items WHERE id = $1", cf_v_int(cf_row_int(r, 0)));
    if (!r)
        return db_error(rq);
    size_t len = 0;
    const char *back = cf_row_blob(r, 0, &len);
    cf_json(rq, 200, "{s:I,s:b}", "len", (json_int_t)len, "same", len == n && !memcmp(back, s, n));
}

static void err_case(cf_req *rq)
{
    const char *w = cf_param(rq, "what");
    cf_rows *r = NULL;
    if (!strcmp(w, "unique")) {
        cf_db_query(rq, "INSERT INTO items(name, email) VALUES ('u', 'dup@example.com')");
        r = cf_db_query(rq, "INSERT INTO items(name, email) VALUES ('u', $1)", cf_v_text("dup@example.com"));
    } else if (!strcmp(w, "fk")) {
        r = cf_db_query(rq, "INSERT INTO notes(item_id) VALUES ($1)", cf_v_int(987654));
    } else if (!strcmp(w, "notnull")) {
        r = cf_db_query(rq, "INSERT INTO items(name) VALUES ($1)", cf_v_null());
    } else if (!strcmp(w, "check")) {
        r = cf_db_query(rq, "INSERT INTO items(name, qty) VALUES ('c', $1)", cf_v_int(-1));
    } else if (!strcmp(w, "syntax")) {
        r = cf_db_query(rq, "SELEKT 1");
    } else if (!strcmp(w, "table")) {
        r = cf_db_query(rq, "SELECT * FROM nope");
    } else if (!strcmp(w, "column")) {
        r = cf_db_query(rq, "SELECT nope FROM items");
    } else if (!strcmp(w, "params")) {
        r = cf_db_query(rq, "SELECT $1::int + $2::int", cf_v_int(1));
    } else if (!strcmp(w, "copy") && pg) { /* not in pipeline mode: fails, connection dropped */
        r = cf_db_query(rq, "COPY items TO STDOUT");
    } else if (!strcmp(w, "timeout") && pg) {
        if (cf_db_begin(rq))
            return db_error(rq);
        cf_db_query(rq, "SET LOCAL statement_timeout = 100");
        r = cf_db_query(rq, "SELECT pg_sleep(2)");
        int err = cf_db_error(rq);
        const char *msg = cf_errmsg(rq);
        int rb = cf_db_rollback(rq);
        return cf_json(rq, 200, "{s:i,s:s,s:i}", "code", err, "error", msg, "rollback", rb);
    }
    if (r)
        return cf_json(rq, 200, "{s:i}", "code", 0);
    cf_json(rq, 200, "{s:i,s:s}", "code", cf_db_error(rq), "error", cf_errmsg(rq));
}

static void dbsleep(cf_req *rq)
{
    double t0 = now_ms();
    cf_rows *r = pg ? cf_db_query(rq, "SELECT pg_sleep($1::float8 / 1000), 1",
                                  cf_v_int(arg_long(rq, "ms", 1000)))
                    : cf_db_query(rq, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                                      "FROM c WHERE x < $1) SELECT count(*) FROM c",
                                  cf_v_int(arg_long(rq, "n", 20000000)));
    if (!r)
        return db_error(rq);
    cf_json(rq, 200, "{s:f}", "ms", now_ms() - t0);
}

static void hold(cf_req *rq)
{
    double t0 = now_ms();
    if (cf_db_begin(rq))
        return db_error(rq);
    double waited = now_ms() - t0;
    if (!cf_db_query(rq, "SELECT 1"))
        return db_error(rq);
    cf_sleep(rq, (uint64_t)arg_long(rq, "ms", 200));
    if (cf_db_commit(rq))
        return db_error(rq);
    cf_json(rq, 200, "{s:f}", "waited_ms", waited);
}

static void txnsleep(cf_req *rq)
{
    if (cf_db_begin(rq))
        return db_error(rq);
    if (!cf_db_query(rq, "INSERT INTO items(name) VALUES ($1)", cf_v_text(cf_arg(rq, "name"))))
        return db_error(rq);
    long ms = arg_long(rq, "ms", 2000);
    if (arg_long(rq, "db", 0)) {
        if (!(pg ? cf_db_query(rq, "SELECT pg_sleep($1::float8 / 1000)", cf_v_int(ms))
                 : cf_db_query(rq, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                                   "FROM c WHERE x < $1) SELECT count(*) FROM c",
                               cf_v_int(ms * 20000))))
            return db_error(rq);
    } else if (cf_sleep(rq, (uint64_t)ms)) {
        return;
    }
    if (cf_db_commit(rq))
        return db_error(rq);
    cf_json(rq, 200, "{s:b}", "committed", true);
}

static void pipeline(cf_req *rq)
{
    const char *sql = pg ? "SELECT pg_backend_pid(), $1::int * 10" : "SELECT 0, $1 * 10";
    cf_dbq *a = cf_db_start(rq, sql, cf_v_int(1));
    cf_dbq *b = cf_db_start(rq, sql, cf_v_int(2));
    cf_dbq *c = cf_db_start(rq, sql, cf_v_int(3));
    int rc = cf_await_all(rq, a, b, c);
    if (rc)
        return cf_json(rq, 500, "{s:i,s:s}", "code", rc, "error", cf_dbq_errmsg(a));
    cf_rows *ra = cf_dbq_rows(a), *rb = cf_dbq_rows(b), *rc3 = cf_dbq_rows(c);
    cf_json(rq, 200, "{s:[I,I,I],s:[I,I,I]}", "pids", (json_int_t)cf_row_int(ra, 0),
            (json_int_t)cf_row_int(rb, 0), (json_int_t)cf_row_int(rc3, 0), "values",
            (json_int_t)cf_row_int(ra, 1), (json_int_t)cf_row_int(rb, 1),
            (json_int_t)cf_row_int(rc3, 1));
}

static void dbtimeout(cf_req *rq)
{
    double t0 = now_ms();
    const char *sql = pg ? "SELECT pg_sleep($1::float8 / 1000)"
                         : "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                           "WHERE x < $1 * 10000) SELECT count(*) FROM c";
    cf_dbq *slow = cf_db_start(rq, sql, cf_v_int(arg_long(rq, "ms", 3000)));
    int rc = cf_await(rq, slow, arg_long(rq, "t", 200));
    cf_rows *r = cf_db_query(rq, "SELECT 41 + 1");
    if (!r)
        return db_error(rq);
    cf_json(rq, 200, "{s:i,s:I,s:f}", "rc", rc, "after", (json_int_t)cf_row_int(r, 0), "ms",
            now_ms() - t0);
}

static void sleeping(cf_req *rq)
{
    cf_rows *r = cf_db_query(rq, "SELECT count(*) FROM pg_stat_activity WHERE pid <> "
                                 "pg_backend_pid() AND query LIKE '%pg_sleep%' AND state = 'active'");
    if (!r)
        return db_error(rq);
    cf_json(rq, 200, "{s:I}", "count", (json_int_t)cf_row_int(r, 0));
}

static void manualbegin(cf_req *rq)
{
    if (!cf_db_query(rq, "BEGIN"))
        return db_error(rq);
    cf_json(rq, 200, "{s:b}", "begun", true);
}

static void idleintxn(cf_req *rq)
{
    cf_rows *r = cf_db_query(rq, "SELECT count(*) FROM pg_stat_activity WHERE pid <> "
                                 "pg_backend_pid() AND state LIKE 'idle in transaction%'");
    if (!r)
        return db_error(rq);
    cf_json(rq, 200, "{s:I}", "count", (json_int_t)cf_row_int(r, 0));
}

static void crashtxn(cf_req *rq)
{
    if (cf_db_begin(rq))
        return db_error(rq);
    if (!cf_db_query(rq, "INSERT INTO items(name) VALUES ($1)", cf_v_text(cf_arg(rq, "name"))))
        return db_error(rq);
    cf_sleep(rq, (uint64_t)arg_long(rq, "ms", 300));
    abort();
}

static void stats(cf_req *rq) { cf_json(rq, 200, "{s:i}", "cancelled", (int)cancelled); }

static void teardown(cf_req *rq)
{
    if (cf_req_error(rq) == CF_ECANCELED)
        cancelled++;
}

int main(int argc, char **argv)
{
    cf_app *app = cf_app_new();
    cf_app_set(app, CF_OPT_ACCESS_LOG, 0);
    const char *pool = getenv("CF_DB_POOL_SIZE");
    if (pool)
        cf_db_set(app, CF_DB_POOL_SIZE, atoi(pool));
    const char *cto = getenv("CF_DB_CONNECT_TIMEOUT");
    if (cto)
        cf_db_set(app, CF_DB_CONNECT_TIMEOUT, atoi(cto));
    if (cf_db_open(app, NULL) != 0)
        return 2;
    /* Unset DATABASE_URL: no backend yet, cf_run says so when it starts. */
    pg = cf_db_backend(app) && strcmp(cf_db_backend(app), "postgresql") == 0;
    const char *schema =
        pg ? "DROP TABLE IF EXISTS notes; DROP TABLE IF EXISTS items;"
             "CREATE TABLE items(id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE,"
             "                   qty INTEGER CHECK (qty IS NULL OR qty >= 0), body TEXT);"
             "CREATE TABLE notes(id BIGSERIAL PRIMARY KEY, item_id BIGINT REFERENCES items(id));"
           : "DROP TABLE IF EXISTS notes; DROP TABLE IF EXISTS items;"
             "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE,"
             "                   qty INTEGER CHECK (qty IS NULL OR qty >= 0), body TEXT);"
             "CREATE TABLE notes(id INTEGER PRIMARY KEY, item_id INTEGER REFERENCES items(id));";
    if (!getenv("DBAPP_NO_SCHEMA") && cf_db_exec_script(app, schema) != 0)
        return 2;
    cf_route(app, "GET", "/health", health);
    cf_route(app, "POST", "/items", create_item);
    cf_route(app, "GET", "/items/<int:id>", get_item);
    cf_route(app, "GET", "/count", count);
    cf_route(app, "GET", "/types", types);
    cf_route(app, "GET", "/big", big);
    cf_route(app, "GET", "/err/<what>", err_case);
    cf_route(app, "GET", "/dbsleep", dbsleep);
    cf_route(app, "GET", "/dbtimeout", dbtimeout);
    cf_route(app, "GET", "/sleeping", sleeping);
    cf_route(app, "GET", "/hold", hold);
    cf_route(app, "GET", "/txnsleep", txnsleep);
    cf_route(app, "GET", "/pipeline", pipeline);
    cf_route(app, "GET", "/stats", stats);
    cf_route(app, "GET", "/manualbegin", manualbegin);
    cf_route(app, "GET", "/idleintxn", idleintxn);
    cf_route(app, "GET", "/crashtxn", crashtxn);
    cf_teardown_request(app, teardown);
    int rc = cf_run(app, argc, argv);
    cf_app_free(app);
    return rc;
}
