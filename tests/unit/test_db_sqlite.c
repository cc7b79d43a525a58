/*
 * test_db_sqlite.c — the database API on SQLite, through the in-process
 * test client (real thread-pool jobs on a real loop), with database files
 * in a temporary directory:
 *   - DATABASE_URL parsing: missing, unknown scheme, malformed sqlite and
 *     postgresql URLs, a file that cannot be opened, relative paths,
 *     :memory:, the environment variable; nothing is opened at set-up:
 *     an unset DATABASE_URL, a file that cannot be opened and a failing
 *     schema script stop the start (cf_app_services_prepare, the test
 *     client), not cf_db_open; WAL mode is set on the file;
 *   - CRUD over JSON: INSERT ... RETURNING and cf_rows_last_id, SELECT one
 *     row (cf_row_object) and all (cf_rows_json), UPDATE/DELETE with
 *     cf_rows_affected, 404 when nothing matched, 409 on a duplicate;
 *   - NULL handling in every getter and in JSON; ints, reals, text, blobs
 *     (base64 in JSON); unicode text byte for byte; a 1 MiB text value
 *     (text that is not UTF-8: test_db_text.c);
 *   - error codes: unique, foreign key, NOT NULL, CHECK, syntax, unknown
 *     table/column, wrong parameter count, named parameters, two
 *     statements in one query, busy timeout (a lock held elsewhere);
 *   - transactions: commit, rollback, invisible to other connections until
 *     commit (a child task of the request shares it), rollback at the end
 *     of a handler that failed or forgot to commit, no nesting, commit
 *     outside one;
 *   - cancellation: a request cancelled inside a transaction during a slow
 *     statement: the statement is interrupted (the request ends fast) and
 *     the transaction is rolled back;
 *   - the loop is never blocked: a child task's 10 ms sleeps keep their
 *     time while a slow statement runs on the pool;
 *   - lock contention: 8 writers waiting for a write lock held elsewhere
 *     wait on the loop, not in pool threads: a read meanwhile is answered
 *     at once, and all 8 succeed once the lock is free;
 *   - cf_db_start + cf_await_all: statements side by side;
 *   - :memory: through one connection: schema, CRUD, transaction rollback;
 *   - a threaded route gets CF_EPERM; no statement cache (CF_DB_STMT_CACHE 0);
 *   - cf_db_request_crashed (the worker's crash recovery): the transaction
 *     is rolled back and its lock / the in-memory connection freed at once.
 */
#include <carafe.h>

#include "app/req.h" /* cf_req_cancel: what a transport calls when the client is gone */
#include "app/service.h" /* cf_app_services_prepare: what cf_run does before serving */
#include "check.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char dir[64];

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static const char *schema =
    "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE,"
    "                   age INTEGER CHECK (age IS NULL OR age >= 0), score REAL, avatar BLOB);"
    "CREATE TABLE posts(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),"
    "                   body TEXT);";

/* A slow statement: counting to N in a recursive CTE (~1 s for 20M). */
#define SLOW_SQL \
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $1) " \
    "SELECT count(*) FROM c"

/* ---- the app ------------------------------------------------------------------- */

static int status_for(int err)
{
    switch (err) {
    case CF_EUNIQUE: return 409;
    case CF_EFOREIGNKEY: case CF_ENOTNULL: case CF_ECONSTRAINT: case CF_EINVAL: return 400;
    default: return 500;
    }
}

static void db_error(cf_req *rq)
{
    int err = cf_db_error(rq);
    cf_json(rq, status_for(err), "{s:i,s:s}", "code", err, "error", cf_errmsg(rq));
}

static void create_user(cf_req *rq)
{
    json_t *b = cf_get_json(rq);
    if (!b)
        return cf_json(rq, 400, "{s:s}", "error", cf_errmsg(rq));
    json_t *age = json_object_get(b, "age");
    cf_rows *r = cf_db_query(rq, "INSERT INTO users(name, email, age) VALUES ($1, $2, $3) RETURNING id",
                             cf_v_text(json_string_value(json_object_get(b, "name"))),
                             cf_v_text(json_string_value(json_object_get(b, "email"))),
                             json_is_integer(age) ? cf_v_int(json_integer_value(age)) : cf_v_null());
    if (!r)
        return db_error(rq);
    cf_json(rq, 201, "{s:I,s:I,s:I}", "id", (json_int_t)cf_row_int(r, 0), "last_id",
            (json_int_t)cf_rows_last_id(r), "affected", (json_int_t)cf_rows_affected(r));
}

static void get_user(cf_req *rq)
{
    cf_rows *r = cf_db_query(rq, "SELECT id, name, email, age FROM users WHERE id = $1",
                             cf_v_int(cf_param_int(rq, "id")));
    if (!r)
        return db_error(rq);
    if (!cf_rows_next(r))
        return cf_json(rq, 404, "{s:s}", "error", "User not found");
    cf_json_value(rq, 200, cf_row_object(r));
}

static void list_users(cf_req *rq)
{
    cf_rows *r = cf_db_query(rq, "SELECT id, name, email FROM users ORDER BY id");
    if (!r)
        return db_error(rq);
    cf_json_value(rq, 200, cf_rows_json(r));
}

static void update_user(cf_req *rq)
{
    json_t *b = cf_get_json(rq);
    if (!b)
        return cf_json(rq, 400, "{s:s}", "error", cf_errmsg(rq));
    cf_rows *r = cf_db_query(rq, "UPDATE users SET name = $1 WHERE id = $2",
                             cf_v_text(json_string_value(json_object_get(b, "name"))),
                             cf_v_int(cf_param_int(rq, "id")));
    if (!r)
        return db_error(rq);
    if (cf_rows_affected(r) == 0)
        return cf_json(rq, 404, "{s:s}", "error", "User not found");
    cf_json(rq, 200, "{s:I,s:I}", "affected", (json_int_t)cf_rows_affected(r), "last_id",
            (json_int_t)cf_rows_last_id(r));
}

static void delete_user(cf_req *rq)
{
    cf_rows *r = cf_db_query(rq, "DELETE FROM users WHERE id = $1", cf_v_int(cf_param_int(rq, "id")));
    if (!r)
        return db_error(rq);
    cf_json(rq, cf_rows_affected(r) ? 200 : 404, "{s:I}", "affected",
            (json_int_t)cf_rows_affected(r));
}

/* NULLs, types, unicode and blobs through every getter. */
static void types(cf_req *rq)
{
    static const unsigned char blob[] = {0, 1, 2, 250, 255, 'x'};
    const char *uni = "Zo\xc3\xab \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x8e\x89";
    cf_rows *r = cf_db_query(rq, "SELECT $1 AS i, $2 AS r, $3 AS t, $4 AS b, $5 AS n",
                             cf_v_int(-9007199254740993LL), cf_v_real(2.5), cf_v_text(uni),
                             cf_v_blob(blob, sizeof blob), cf_v_null());
    if (!r)
        return db_error(rq);
    size_t blen = 0;
    const void *b = cf_row_blob(r, 3, &blen);
    bool ok = cf_rows_count(r) == 1 && cf_rows_columns(r) == 5 &&
              strcmp(cf_rows_name(r, 2), "t") == 0 && cf_rows_index(r, "n") == 4 &&
              cf_rows_index(r, "zz") == -1 && cf_row_int(r, 0) == -9007199254740993LL &&
              strcmp(cf_row_text(r, 0), "-9007199254740993") == 0 && cf_row_real(r, 1) == 2.5 &&
              strcmp(cf_row_text(r, 2), uni) == 0 && blen == sizeof blob &&
              memcmp(b, blob, blen) == 0 && cf_row_is_null(r, 4) && cf_row_int(r, 4) == 0 &&
              cf_row_real(r, 4) == 0.0 && cf_row_text(r, 4) == NULL &&
              cf_row_blob(r, 4, &blen) == NULL && blen == 0 && !cf_row_is_null(r, 0) &&
              cf_row_is_null(r, 99) && cf_rows_name(r, 99) == NULL;
    json_t *obj = cf_row_object(r); /* before cf_rows_next: the first row */
    bool next1 = cf_rows_next(r), next2 = cf_rows_next(r);
    ok = ok && next1 && !next2 && cf_row_text(r, 2) == NULL; /* past the end */
    cf_json(rq, ok ? 200 : 500, "{s:o,s:b}", "row", obj, "getters", ok);
}

static void big(cf_req *rq)
{
    size_t n = 1024 * 1024;
    char *s = cf_alloc(rq, n + 1);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('a' + (i * 7 + i / 1000) % 26);
    s[n] = 0;
    cf_rows *r = cf_db_query(rq, "INSERT INTO posts(user_id, body) VALUES ($1, $2) RETURNING id",
                             cf_v_int(cf_param_int(rq, "uid")), cf_v_text(s));
    if (!r)
        return db_error(rq);
    r = cf_db_query(rq, "SELECT body, length(body) FROM posts WHERE id = $1", cf_v_int(cf_row_int(r, 0)));
    if (!r || !cf_rows_next(r))
        return db_error(rq);
    size_t len = 0;
    const char *back = cf_row_blob(r, 0, &len);
    cf_json(rq, 200, "{s:I,s:I,s:b}", "len", (json_int_t)len, "sql_len",
            (json_int_t)cf_row_int(r, 1), "same", len == n && memcmp(back, s, n) == 0);
}

/* GET /err/<name>: one statement that fails a known way. */
static void err_case(cf_req *rq)
{
    const char *w = cf_param(rq, "what");
    cf_rows *r = NULL;
    if (!strcmp(w, "unique"))
        r = cf_db_query(rq, "INSERT INTO users(name, email) VALUES ('x', $1)", cf_v_text("dup@example.com"));
    else if (!strcmp(w, "pk"))
        r = cf_db_query(rq, "INSERT INTO users(id, name) VALUES ($1, 'again')", cf_v_int(1));
    else if (!strcmp(w, "fk"))
        r = cf_db_query(rq, "INSERT INTO posts(user_id, body) VALUES ($1, 'x')", cf_v_int(987654));
    else if (!strcmp(w, "notnull"))
        r = cf_db_query(rq, "INSERT INTO users(name) VALUES ($1)", cf_v_null());
    else if (!strcmp(w, "check"))
        r = cf_db_query(rq, "INSERT INTO users(name, age) VALUES ('x', $1)", cf_v_int(-5));
    else if (!strcmp(w, "syntax"))
        r = cf_db_query(rq, "SELEKT 1");
    else if (!strcmp(w, "table"))
        r = cf_db_query(rq, "SELECT * FROM nope");
    else if (!strcmp(w, "column"))
        r = cf_db_query(rq, "SELECT nope FROM users");
    else if (!strcmp(w, "fewparams"))
        r = cf_db_query(rq, "SELECT $1, $2", cf_v_int(1));
    else if (!strcmp(w, "manyparams"))
        r = cf_db_query(rq, "SELECT $1", cf_v_int(1), cf_v_int(2));
    else if (!strcmp(w, "named"))
        r = cf_db_query(rq, "SELECT :name", cf_v_int(1));
    else if (!strcmp(w, "two"))
        r = cf_db_query(rq, "SELECT 1; SELECT 2");
    else if (!strcmp(w, "empty"))
        r = cf_db_query(rq, "  ");
    else if (!strcmp(w, "busy"))
        r = cf_db_query(rq, "INSERT INTO users(name) VALUES ('busy')");
    else if (!strcmp(w, "manualbegin")) /* must not leave a pool thread's connection in one */
        r = cf_db_query(rq, "BEGIN");
    else if (!strcmp(w, "comment")) /* a trailing comment is not a second statement */
        r = cf_db_query(rq, "SELECT 7; -- done");
    if (r)
        return cf_json(rq, 200, "{s:I}", "value", (json_int_t)cf_row_int(r, 0));
    cf_json(rq, 200, "{s:i,s:s}", "code", cf_db_error(rq), "error", cf_errmsg(rq));
}

static int count_users(cf_req *rq, const char *name)
{
    cf_rows *r = cf_db_query(rq, "SELECT count(*) FROM users WHERE name = $1", cf_v_text(name));
    return r ? (int)cf_row_int(r, 0) : -1;
}

static char db_path[256];

/* What another connection (outside the request, blocking: a test only)
 * sees of the users called `name`. */
static int peek_outside(const char *name)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    int n = -1;
    if (sqlite3_open_v2(db_path, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(h, "SELECT count(*) FROM users WHERE name = ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    return n;
}

/* A child task shares the request's transaction. */
static int child_count(cf_req *rq, void *arg)
{
    return count_users(rq, arg);
}

/* GET /txn/<what>: transactions. */
static void txn(cf_req *rq)
{
    const char *w = cf_param(rq, "what");
    if (!strcmp(w, "nested")) {
        int a = cf_db_begin(rq), b = cf_db_begin(rq), c = cf_db_rollback(rq), d = cf_db_commit(rq);
        return cf_json(rq, 200, "[i,i,i,i]", a, b, c, d);
    }
    int rc = cf_db_begin(rq);
    if (rc)
        return db_error(rq);
    const char *name = cf_sprintf(rq, "txn-%s", w);
    if (!cf_db_query(rq, "INSERT INTO users(name) VALUES ($1)", cf_v_text(name)))
        return db_error(rq);
    int inside = count_users(rq, name); /* same connection: sees it */
    if (!strcmp(w, "fail"))
        return; /* no response: a 500, and the transaction is rolled back */
    if (!strcmp(w, "forget"))
        return cf_json(rq, 200, "{s:i}", "inside", inside);
    if (!strcmp(w, "isolated")) {
        cf_task *t = cf_spawn(rq, child_count, (void *)name);
        int child = cf_await(rq, t, -1);
        int outside = peek_outside(name);
        rc = cf_db_commit(rq);
        return cf_json(rq, 200, "{s:i,s:i,s:i,s:i,s:i}", "inside", inside, "child", child,
                       "outside", outside, "commit", rc, "outside_after", peek_outside(name));
    }
    rc = !strcmp(w, "commit") ? cf_db_commit(rq) : cf_db_rollback(rq);
    int after = cf_db_commit(rq); /* no transaction any more */
    cf_json(rq, 200, "{s:i,s:i,s:i,s:i}", "inside", inside, "end", rc, "after", after, "count",
            count_users(rq, name));
}

static void count(cf_req *rq)
{
    cf_json(rq, 200, "{s:i}", "count", count_users(rq, cf_param(rq, "name")));
}

static int cancel_later(cf_req *rq, void *arg)
{
    (void)arg;
    cf_sleep(rq, 100);
    cf_req_cancel(rq);
    return 0;
}

static struct {
    int slow_rc;
    double slow_ms;
    int teardown_error;
} cancel_seen;

/* In a transaction, a slow statement; the request is cancelled meanwhile. */
static void cancel_txn(cf_req *rq)
{
    if (cf_db_begin(rq))
        return db_error(rq);
    if (!cf_db_query(rq, "INSERT INTO users(name) VALUES ('cancelled')"))
        return db_error(rq);
    cf_spawn(rq, cancel_later, NULL);
    double t0 = now_ms();
    cf_rows *r = cf_db_query(rq, SLOW_SQL, cf_v_int(2000000000));
    cancel_seen.slow_ms = now_ms() - t0;
    cancel_seen.slow_rc = r ? 0 : cf_db_error(rq);
}

static void cancel_teardown(cf_req *rq)
{
    if (cf_endpoint(rq) && strcmp(cf_endpoint(rq), "cancel_txn") == 0)
        cancel_seen.teardown_error = cf_req_error(rq);
}

struct ticks {
    int n;
    double worst;
    bool stop;
};

static int ticker(cf_req *rq, void *arg)
{
    struct ticks *t = arg;
    while (!t->stop) {
        double t0 = now_ms();
        if (cf_sleep(rq, 10))
            break;
        double late = now_ms() - t0 - 10;
        if (late > t->worst)
            t->worst = late;
        t->n++;
    }
    return 0;
}

/* A slow statement on the pool while a child keeps sleeping 10 ms. */
static void slow(cf_req *rq)
{
    struct ticks t = {0, 0, false};
    cf_task *k = cf_spawn(rq, ticker, &t);
    double t0 = now_ms();
    cf_rows *r = cf_db_query(rq, SLOW_SQL, cf_v_int(cf_param_int(rq, "n")));
    double ms = now_ms() - t0;
    t.stop = true;
    cf_await(rq, k, -1);
    if (!r)
        return db_error(rq);
    cf_json(rq, 200, "{s:I,s:f,s:i,s:f}", "count", (json_int_t)cf_row_int(r, 0), "ms", ms, "ticks",
            t.n, "worst_late_ms", t.worst);
}

/* A write lock held elsewhere for 300 ms (a pool thread with a connection
 * of its own): writers wait for it, but not in pool threads, so a reader
 * gets one at once. */
static int hold_lock(void *arg)
{
    (void)arg;
    sqlite3 *h = NULL;
    if (sqlite3_open(db_path, &h) == SQLITE_OK &&
        sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK) {
        struct timespec ts = {0, 300 * 1000000L};
        nanosleep(&ts, NULL);
        sqlite3_exec(h, "COMMIT", NULL, NULL, NULL);
    }
    sqlite3_close(h);
    return 0;
}

static int writer(cf_req *rq, void *arg)
{
    (void)arg;
    return cf_db_query(rq, "INSERT INTO users(name) VALUES ('contended')") ? 0 : cf_db_error(rq);
}

static int reader(cf_req *rq, void *arg)
{
    double *ms = arg;
    cf_sleep(rq, 50); /* the writers are waiting by now */
    double t0 = now_ms();
    cf_rows *r = cf_db_query(rq, "SELECT count(*) FROM users");
    *ms = now_ms() - t0;
    return r ? 0 : cf_db_error(rq);
}

static void contention(cf_req *rq)
{
    cf_task *holder = cf_to_thread(rq, hold_lock, NULL);
    cf_sleep(rq, 30); /* the lock is taken */
    cf_task *w[8];
    for (int i = 0; i < 8; i++)
        w[i] = cf_spawn(rq, writer, NULL);
    double read_ms = -1;
    cf_task *rd = cf_spawn(rq, reader, &read_ms);
    double t0 = now_ms();
    int rc = cf_await_all_n(rq, (void *const *)w, 8, -1);
    double write_ms = now_ms() - t0;
    cf_await(rq, rd, -1);
    cf_await(rq, holder, -1);
    cf_json(rq, 200, "{s:i,s:f,s:f}", "writers", rc, "read_ms", read_ms, "write_ms", write_ms);
}

/* Several statements side by side. */
static void gather(cf_req *rq)
{
    cf_dbq *a = cf_db_start(rq, "SELECT $1 * 2", cf_v_int(21));
    cf_dbq *b = cf_db_start(rq, "SELECT count(*) FROM users");
    cf_dbq *c = cf_db_start(rq, "SELECT * FROM missing_table");
    int rc = cf_await_all(rq, a, b, c);
    cf_json(rq, 200, "{s:i,s:I,s:b,s:i,s:i,s:s,s:b}", "rc", rc, "a",
            (json_int_t)cf_row_int(cf_dbq_rows(a), 0), "b", cf_dbq_rows(b) != NULL, "a_err",
            cf_dbq_error(a), "c_err", cf_dbq_error(c), "c_msg", cf_dbq_errmsg(c), "c_rows",
            cf_dbq_rows(c) != NULL);
}

/* What the worker's crash recovery calls when a task of the request dies:
 * its transaction is rolled back and its connection (or the in-memory
 * database's only one) given back at once; later calls fail. */
static void crashsim(cf_req *rq)
{
    if (cf_db_begin(rq) || !cf_db_query(rq, "INSERT INTO users(name) VALUES ('crashsim')"))
        return db_error(rq);
    cf_app_services_crashed(rq); /* the app's crash path: every attached service */
    cf_rows *r = cf_db_query(rq, "SELECT 1");
    cf_json(rq, 200, "{s:b,s:i}", "rows", r != NULL, "err", cf_db_error(rq));
}

static void threaded(cf_req *rq)
{
    cf_rows *r = cf_db_query(rq, "SELECT 1");
    cf_json(rq, 200, "{s:b,s:i}", "rows", r != NULL, "err", cf_db_error(rq));
}

static cf_app *make_app(void)
{
    cf_app *app = cf_app_new();
    cf_route(app, "POST", "/users", create_user);
    cf_route(app, "GET", "/users", list_users);
    cf_route(app, "GET", "/users/<int:id>", get_user);
    cf_route(app, "PUT", "/users/<int:id>", update_user);
    cf_route(app, "DELETE", "/users/<int:id>", delete_user);
    cf_route(app, "GET", "/types", types);
    cf_route(app, "GET", "/big/<int:uid>", big);
    cf_route(app, "GET", "/err/<what>", err_case);
    cf_route(app, "GET", "/txn/<what>", txn);
    cf_route(app, "GET", "/count/<name>", count);
    cf_route(app, "GET", "/cancel", cancel_txn);
    cf_route(app, "GET", "/slow/<int:n>", slow);
    cf_route(app, "GET", "/gather", gather);
    cf_route(app, "GET", "/contention", contention);
    cf_route(app, "GET", "/crashsim", crashsim);
    cf_route_set_threaded(cf_route(app, "GET", "/threaded", threaded), true);
    cf_teardown_request(app, cancel_teardown);
    return app;
}

/* ---- helpers ----------------------------------------------------------------------- */

static json_t *jget(cf_test_response *r, const char *key)
{
    json_t *j = cf_test_json(r);
    return j ? json_object_get(j, key) : NULL;
}

static long long jint(cf_test_response *r, const char *key)
{
    return (long long)json_integer_value(jget(r, key));
}

static const char *jstr(cf_test_response *r, const char *key)
{
    const char *s = json_string_value(jget(r, key));
    return s ? s : "(none)";
}

static cf_test_response *send_json(cf_test_client *tc, const char *method, const char *target,
                                   const char *body)
{
    static const char *const h[] = {"Content-Type: application/json", NULL};
    return cf_test_request(tc, method, target, h, body, strlen(body));
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_urls(void)
{
    cf_app *app = cf_app_new();
    unsetenv("DATABASE_URL");
    /* Unset: fine at set-up (--help needs no database), an error once the
     * app is to be served. */
    CHECK_INT(cf_db_open(app, NULL), 0);
    CHECK(cf_db_backend(app) == NULL);
    CHECK_INT(cf_db_exec_script(app, "SELECT 1"), 0);
    CHECK_INT(cf_app_services_prepare(app), CF_EDBURL);
    CHECK(cf_test_client_new(app) == NULL);
    CHECK_INT(cf_db_open(app, ""), CF_EDBURL);
    CHECK_INT(cf_db_open(app, "mysql://u@h/db"), CF_EDBURL);
    CHECK_INT(cf_db_open(app, "app.db"), CF_EDBURL);
    CHECK_INT(cf_db_open(app, "sqlite:/app.db"), CF_EDBURL);
    CHECK_INT(cf_db_open(app, "sqlite://host/app.db"), CF_EDBURL);
    CHECK_INT(cf_db_open(app, "sqlite:///"), CF_EDBURL);
    CHECK_INT(cf_db_open(app, "sqlite:///bad%zzname.db"), CF_EDBURL);
    CHECK_INT(cf_db_open(app, "postgresql://u@h/db?nosuchoption=1"), CF_EDBURL);
    CHECK_INT(cf_db_open(app, "postgresql://u:secret@h:notaport/db"), 0); /* libpq checks ports late */
    CHECK_STR(cf_db_backend(app), "postgresql");
    CHECK_INT(cf_db_open(app, "sqlite:////nonexistent-dir-cf/x.db"), 0); /* the syntax only */
    CHECK_STR(cf_db_backend(app), "sqlite");
    CHECK_INT(cf_app_services_prepare(app), CF_EDBCONN); /* the file: when served */
    CHECK_INT(cf_db_open(app, "app.db"), CF_EDBURL);
    CHECK(cf_db_backend(app) == NULL);
    CHECK_INT(cf_db_exec_script(app, "SELECT 1"), CF_EINVAL);
    CHECK_INT(cf_db_open(app, "sqlite://:memory:"), 0);
    CHECK_STR(cf_db_backend(app), "sqlite");
    CHECK_INT(cf_db_open(app, "sqlite://"), 0);
    CHECK_INT(cf_db_set(app, CF_DB_POOL_SIZE, 0), CF_EINVAL);
    CHECK_INT(cf_db_set(app, CF_DB_POOL_SIZE, 2), 0);
    CHECK_INT(cf_db_set(app, CF_DB_BUSY_TIMEOUT, -1), CF_EINVAL);

    /* Relative to the current directory, from the environment. */
    char cwd[4096];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK_INT(chdir(dir), 0);
    setenv("DATABASE_URL", "sqlite:///rel%20name.db", 1);
    CHECK_INT(cf_db_open(app, NULL), 0);
    CHECK_INT(chdir(cwd), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/rel name.db", dir);
    CHECK_INT(cf_db_exec_script(app, "CREATE TABLE t(x); INSERT INTO t VALUES (1);"), 0);
    CHECK(access(path, F_OK) != 0); /* nothing opened at set-up */
    CHECK_INT(cf_app_services_prepare(app), 0);
    CHECK(access(path, F_OK) == 0);
    CHECK_INT(cf_app_services_prepare(app), 0); /* once: the script does not run again */
    /* Once started, a script runs at once and says how it went. */
    CHECK_INT(cf_db_exec_script(app, "INSERT INTO t VALUES (2); SELEKT"), CF_EDBSYNTAX);
    unsetenv("DATABASE_URL");
    {
        /* A script that fails stops the start. */
        cf_app *app2 = cf_app_new();
        char url2[300];
        snprintf(url2, sizeof url2, "sqlite:///%s", path);
        CHECK_INT(cf_db_open(app2, url2), 0);
        CHECK_INT(cf_db_exec_script(app2, "SELEKT"), 0);
        CHECK(cf_test_client_new(app2) == NULL);
        CHECK_INT(cf_app_services_prepare(app2), CF_EDBSYNTAX);
        cf_app_free(app2);
    }
    /* WAL is a property of the file now. */
    sqlite3 *h = NULL;
    CHECK_INT(sqlite3_open(path, &h), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &st, NULL);
    CHECK_INT(sqlite3_step(st), SQLITE_ROW);
    CHECK_STR((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(h);
    cf_app_free(app);
}

static void test_file_db(void)
{
    char url[256], path[200];
    snprintf(path, sizeof path, "%s/app.db", dir);
    snprintf(db_path, sizeof db_path, "%s", path);
    snprintf(url, sizeof url, "sqlite:///%s", path);
    cf_app *app = make_app();
    CHECK_INT(cf_db_open(app, url), 0);
    CHECK_INT(cf_db_exec_script(app, schema), 0);
    cf_test_client *tc = cf_test_client_new(app);
    cf_test_response *r;

    /* CRUD */
    r = cf_test_post_json(tc, "/users", "{\"name\":\"Ada\",\"email\":\"ada@example.com\",\"age\":36}");
    CHECK_INT(cf_test_status(r), 201);
    CHECK_INT(jint(r, "id"), 1);
    CHECK_INT(jint(r, "last_id"), 1);
    CHECK_INT(jint(r, "affected"), 1);
    r = cf_test_post_json(tc, "/users", "{\"name\":\"Bob\",\"email\":null}");
    CHECK_INT(cf_test_status(r), 201);
    CHECK_INT(jint(r, "id"), 2);
    r = cf_test_post_json(tc, "/users", "{\"name\":\"Eve\",\"email\":\"ada@example.com\"}");
    CHECK_INT(cf_test_status(r), 409);
    CHECK_INT(jint(r, "code"), CF_EUNIQUE);
    CHECK(strstr(jstr(r, "error"), "UNIQUE") != NULL);
    r = cf_test_get(tc, "/users/1");
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(cf_test_body(r, NULL),
              "{\"id\":1,\"name\":\"Ada\",\"email\":\"ada@example.com\",\"age\":36}");
    r = cf_test_get(tc, "/users/2");
    CHECK_STR(cf_test_body(r, NULL), "{\"id\":2,\"name\":\"Bob\",\"email\":null,\"age\":null}");
    r = cf_test_get(tc, "/users/99");
    CHECK_INT(cf_test_status(r), 404);
    CHECK_STR(cf_test_body(r, NULL), "{\"error\":\"User not found\"}");
    r = send_json(tc, "PUT", "/users/2", "{\"name\":\"Robert\"}");
    CHECK_INT(cf_test_status(r), 200);
    CHECK_INT(jint(r, "affected"), 1);
    CHECK_INT(jint(r, "last_id"), 0);
    r = send_json(tc, "PUT", "/users/99", "{\"name\":\"x\"}");
    CHECK_INT(cf_test_status(r), 404);
    r = send_json(tc, "PUT", "/users/1", "{\"name\":null}");
    CHECK_INT(cf_test_status(r), 400);
    CHECK_INT(jint(r, "code"), CF_ENOTNULL);
    r = cf_test_get(tc, "/users");
    CHECK_STR(cf_test_body(r, NULL), "[{\"id\":1,\"name\":\"Ada\",\"email\":\"ada@example.com\"},"
                                     "{\"id\":2,\"name\":\"Robert\",\"email\":null}]");
    r = cf_test_post_json(tc, "/users", "{\"name\":\"Tmp\"}");
    CHECK_INT(jint(r, "id"), 3);
    r = cf_test_request(tc, "DELETE", "/users/3", NULL, NULL, 0);
    CHECK_INT(cf_test_status(r), 200);
    CHECK_INT(jint(r, "affected"), 1);
    r = cf_test_request(tc, "DELETE", "/users/3", NULL, NULL, 0);
    CHECK_INT(cf_test_status(r), 404);
    /* A SELECT changes nothing, whatever the connection did before. */
    r = cf_test_get(tc, "/users");
    CHECK_INT(cf_test_status(r), 200);

    /* Types, NULLs, unicode, blobs */
    r = cf_test_get(tc, "/types");
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(cf_test_body(r, NULL),
              "{\"row\":{\"i\":-9007199254740993,\"r\":2.5,\"t\":\"Zo\xc3\xab \xe6\x97\xa5\xe6\x9c\xac"
              "\xe8\xaa\x9e \xf0\x9f\x8e\x89\",\"b\":\"AAEC+v94\",\"n\":null},\"getters\":true}");

    /* 1 MiB of text in and out */
    r = cf_test_get(tc, "/big/1");
    CHECK_INT(cf_test_status(r), 200);
    CHECK_INT(jint(r, "len"), 1024 * 1024);
    CHECK_INT(jint(r, "sql_len"), 1024 * 1024);
    CHECK(json_is_true(jget(r, "same")));

    /* Error codes */
    cf_test_post_json(tc, "/users", "{\"name\":\"Dup\",\"email\":\"dup@example.com\"}");
    static const struct {
        const char *what;
        int code;
        const char *msg;
    } errs[] = {
        {"unique", CF_EUNIQUE, "UNIQUE constraint failed: users.email"},
        {"pk", CF_EUNIQUE, "UNIQUE constraint failed: users.id"},
        {"fk", CF_EFOREIGNKEY, "FOREIGN KEY constraint failed"},
        {"notnull", CF_ENOTNULL, "NOT NULL constraint failed: users.name"},
        {"check", CF_ECONSTRAINT, "CHECK constraint failed"},
        {"syntax", CF_EDBSYNTAX, "syntax error"},
        {"table", CF_EDBSYNTAX, "no such table: nope"},
        {"column", CF_EDBSYNTAX, "no such column: nope"},
        {"fewparams", CF_EINVAL, "uses 2 parameter(s)"},
        {"manyparams", CF_EINVAL, "uses 1 parameter(s)"},
        {"named", CF_EINVAL, "use $1, $2"},
        {"two", CF_EDBSYNTAX, "one statement per query"},
        {"empty", CF_EINVAL, "empty"},
        {"manualbegin", CF_EINVAL, "use cf_db_begin"},
    };
    for (size_t i = 0; i < sizeof errs / sizeof *errs; i++) {
        char t[64];
        snprintf(t, sizeof t, "/err/%s", errs[i].what);
        r = cf_test_get(tc, t);
        if (jint(r, "code") != errs[i].code || !strstr(jstr(r, "error"), errs[i].msg))
            fprintf(stderr, "  %s: %s\n", t, cf_test_body(r, NULL));
        CHECK_INT(jint(r, "code"), errs[i].code);
        CHECK(strstr(jstr(r, "error"), errs[i].msg) != NULL);
    }
    r = cf_test_get(tc, "/err/comment");
    CHECK_INT(jint(r, "value"), 7);

    /* Busy: a write lock held by another connection, 100 ms busy timeout
     * (the option is read when a connection opens: use a fresh app). */
    {
        cf_app *app2 = make_app();
        CHECK_INT(cf_db_set(app2, CF_DB_BUSY_TIMEOUT, 100), 0);
        CHECK_INT(cf_db_open(app2, url), 0);
        sqlite3 *h = NULL;
        CHECK_INT(sqlite3_open(path, &h), SQLITE_OK);
        CHECK_INT(sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
        cf_test_client_free(tc);
        cf_test_client *tc2 = cf_test_client_new(app2);
        double t0 = now_ms();
        r = cf_test_get(tc2, "/err/busy");
        double ms = now_ms() - t0;
        CHECK_INT(jint(r, "code"), CF_ETIMEDOUT);
        CHECK(ms >= 90 && ms < 2000);
        sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(h);
        r = cf_test_get(tc2, "/err/busy");
        CHECK_INT(jint(r, "value"), 0);
        cf_test_client_free(tc2);
        cf_app_free(app2);
        tc = cf_test_client_new(app);
    }

    /* Transactions */
    r = cf_test_get(tc, "/txn/commit");
    CHECK_STR(cf_test_body(r, NULL), "{\"inside\":1,\"end\":0,\"after\":-22,\"count\":1}");
    r = cf_test_get(tc, "/txn/rollback");
    CHECK_STR(cf_test_body(r, NULL), "{\"inside\":1,\"end\":0,\"after\":-22,\"count\":0}");
    r = cf_test_get(tc, "/txn/isolated");
    CHECK_STR(cf_test_body(r, NULL),
              "{\"inside\":1,\"child\":1,\"outside\":0,\"commit\":0,\"outside_after\":1}");
    r = cf_test_get(tc, "/count/txn-isolated");
    CHECK_INT(jint(r, "count"), 1);
    r = cf_test_get(tc, "/txn/fail");
    CHECK_INT(cf_test_status(r), 500);
    r = cf_test_get(tc, "/count/txn-fail");
    CHECK_INT(jint(r, "count"), 0);
    r = cf_test_get(tc, "/txn/forget");
    CHECK_INT(jint(r, "inside"), 1);
    r = cf_test_get(tc, "/count/txn-forget");
    CHECK_INT(jint(r, "count"), 0);
    r = cf_test_get(tc, "/txn/nested");
    CHECK_STR(cf_test_body(r, NULL), "[0,-22,0,-22]");
    /* The transaction connections went back: writers are not locked out. */
    r = cf_test_post_json(tc, "/users", "{\"name\":\"After\"}");
    CHECK_INT(cf_test_status(r), 201);

    /* Cancellation inside a transaction, during a slow statement */
    memset(&cancel_seen, 0, sizeof cancel_seen);
    double t0 = now_ms();
    cf_test_get(tc, "/cancel");
    double ms = now_ms() - t0;
    CHECK_INT(cancel_seen.slow_rc, CF_ECANCELED);
    CHECK_INT(cancel_seen.teardown_error, CF_ECANCELED);
    CHECK(ms < 1000); /* the statement was interrupted, not run to its end */
    r = cf_test_get(tc, "/count/cancelled");
    CHECK_INT(jint(r, "count"), 0);
    r = cf_test_post_json(tc, "/users", "{\"name\":\"AfterCancel\"}");
    CHECK_INT(cf_test_status(r), 201);

    /* The loop keeps running while a slow statement is on the pool */
    r = cf_test_get(tc, "/slow/5000000");
    CHECK_INT(cf_test_status(r), 200);
    CHECK_INT(jint(r, "count"), 5000000);
    double slow_ms = json_number_value(jget(r, "ms"));
    double late = json_number_value(jget(r, "worst_late_ms"));
    long long ticks = jint(r, "ticks");
    printf("slow statement %.0f ms: %lld ticks of 10 ms, worst %.1f ms late\n", slow_ms, ticks, late);
    CHECK(slow_ms > 100);
    CHECK(ticks >= (long long)(slow_ms / 10 / 3));
    CHECK(late < 200); /* a blocked loop would make one sleep ~1 s late */

    /* Lock contention does not starve readers of pool threads */
    r = cf_test_get(tc, "/contention");
    printf("8 writers waiting for a lock held 300 ms: done after %.0f ms; a read meanwhile %.1f ms\n",
           json_number_value(jget(r, "write_ms")), json_number_value(jget(r, "read_ms")));
    CHECK_INT(jint(r, "writers"), 0);
    CHECK(json_number_value(jget(r, "write_ms")) >= 200);
    CHECK(json_number_value(jget(r, "read_ms")) >= 0 && json_number_value(jget(r, "read_ms")) < 100);
    r = cf_test_get(tc, "/count/contended");
    CHECK_INT(jint(r, "count"), 8);

    /* Side by side */
    r = cf_test_get(tc, "/gather");
    CHECK_INT(jint(r, "rc"), CF_EDBSYNTAX);
    CHECK_INT(jint(r, "a"), 42);
    CHECK(json_is_true(jget(r, "b")));
    CHECK_INT(jint(r, "a_err"), 0);
    CHECK_INT(jint(r, "c_err"), CF_EDBSYNTAX);
    CHECK(strstr(jstr(r, "c_msg"), "no such table") != NULL);
    CHECK(json_is_false(jget(r, "c_rows")));

    r = cf_test_get(tc, "/crashsim");
    CHECK_STR(cf_test_body(r, NULL), "{\"rows\":false,\"err\":-1000}");
    r = cf_test_post_json(tc, "/users", "{\"name\":\"AfterCrash\"}"); /* no lock left */
    CHECK_INT(cf_test_status(r), 201);
    r = cf_test_get(tc, "/count/crashsim");
    CHECK_INT(jint(r, "count"), 0);

    r = cf_test_get(tc, "/threaded");
    CHECK_STR(cf_test_body(r, NULL), "{\"rows\":false,\"err\":-1}");

    cf_test_client_free(tc);
    cf_app_free(app);
}

static void test_memory_db(void)
{
    cf_app *app = make_app();
    CHECK_INT(cf_db_set(app, CF_DB_STMT_CACHE, 0), 0);
    CHECK_INT(cf_db_open(app, "sqlite://:memory:"), 0);
    CHECK_INT(cf_db_exec_script(app, schema), 0);
    cf_test_client *tc = cf_test_client_new(app);
    cf_test_response *r = cf_test_post_json(tc, "/users", "{\"name\":\"Mem\",\"email\":\"m@x\"}");
    CHECK_INT(cf_test_status(r), 201);
    r = cf_test_post_json(tc, "/users", "{\"name\":\"Mem2\",\"email\":\"m@x\"}");
    CHECK_INT(cf_test_status(r), 409);
    r = cf_test_get(tc, "/users/1");
    CHECK_STR(cf_test_body(r, NULL), "{\"id\":1,\"name\":\"Mem\",\"email\":\"m@x\",\"age\":null}");
    r = cf_test_get(tc, "/txn/commit");
    CHECK_STR(cf_test_body(r, NULL), "{\"inside\":1,\"end\":0,\"after\":-22,\"count\":1}");
    r = cf_test_get(tc, "/txn/fail");
    CHECK_INT(cf_test_status(r), 500);
    r = cf_test_get(tc, "/count/txn-fail");
    CHECK_INT(jint(r, "count"), 0);
    r = cf_test_get(tc, "/gather");
    CHECK_INT(jint(r, "a"), 42);
    CHECK_INT(jint(r, "c_err"), CF_EDBSYNTAX);
    memset(&cancel_seen, 0, sizeof cancel_seen);
    cf_test_get(tc, "/cancel");
    CHECK_INT(cancel_seen.slow_rc, CF_ECANCELED);
    r = cf_test_get(tc, "/count/cancelled");
    CHECK_INT(jint(r, "count"), 0);
    r = cf_test_get(tc, "/types");
    CHECK(json_is_true(jget(r, "getters")));
    r = cf_test_get(tc, "/crashsim");
    CHECK_STR(cf_test_body(r, NULL), "{\"rows\":false,\"err\":-1000}");
    r = cf_test_get(tc, "/count/crashsim"); /* the single connection is free again */
    CHECK_INT(jint(r, "count"), 0);
    cf_test_client_free(tc);
    cf_app_free(app);
}

/* No database opened: a clear error, not a crash. */
static void test_no_db(void)
{
    cf_app *app = make_app();
    cf_test_client *tc = cf_test_client_new(app);
    cf_test_response *r = cf_test_get(tc, "/users/1");
    CHECK_INT(cf_test_status(r), 400);
    CHECK_INT(jint(r, "code"), CF_EINVAL);
    CHECK(strstr(jstr(r, "error"), "cf_db_open") != NULL);
    r = cf_test_get(tc, "/txn/commit");
    CHECK_INT(cf_test_status(r), 400);
    cf_test_client_free(tc);
    cf_app_free(app);
}

static void rm_dir(void)
{
    static const char *files[] = {"app.db", "app.db-wal", "app.db-shm", "rel name.db",
                                  "rel name.db-wal", "rel name.db-shm"};
    char p[256];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/cf-dbtest-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_urls();
    test_file_db();
    test_memory_db();
    test_no_db();
    rm_dir();
    return CHECK_DONE();
}
