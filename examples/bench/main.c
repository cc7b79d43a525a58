/*
 * examples/bench — the endpoints of ../shared/bench's contract, for
 * measuring Carafe against its peers (see README.md here):
 *   GET /plaintext      200 text "Hello, World!"
 *   GET /json           200 {"message":"Hello, World!"}, serialized per request
 *   GET /sleep?ms=N     waits N ms without blocking the worker, 200 "slept N"
 *   GET /fanout?n=K&ms=M K concurrent GETs to $UPSTREAM/delay?ms=M (defaults
 *                       3 and 50), 200 JSON list of the upstream bodies
 *   GET /db/user/<id>   the row of users(id, name, email) as JSON, or 404
 *                       {"error":"User not found"}; DATABASE_URL picks the
 *                       database, else the SQLite file $DB_PATH (read-only)
 *   GET /fortunes       TechEmpower's fortunes: every row of fortune(id,
 *                       message) plus one made per request, sorted by
 *                       message, rendered by templates/fortunes.html
 * One worker, no access log, PORT and UPSTREAM from the environment.
 */
#include <carafe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The example's source folder (CMake defines it), where its templates are;
 * built elsewhere (e.g. against an installed Carafe), the working directory. */
#ifndef CF_EXAMPLE_DIR
#define CF_EXAMPLE_DIR "."
#endif

static void plaintext(cf_req *rq) { cf_text(rq, 200, "Hello, World!"); }

static void json(cf_req *rq) { cf_json(rq, 200, "{s:s}", "message", "Hello, World!"); }

static void sleep_ms(cf_req *rq)
{
    const char *arg = cf_arg(rq, "ms");
    char *end = NULL;
    long ms = arg ? strtol(arg, &end, 10) : 0;
    if (!arg || *end || ms < 0 || ms > 60000)
        cf_json(rq, 400, "{s:s}", "error", "ms must be an integer from 0 to 60000");
    else if (cf_sleep(rq, (uint64_t)ms) != 0)
        cf_abort(rq, 503);
    else
        cf_textf(rq, 200, "slept %ld", ms);
}

/* $UPSTREAM + "/delay", read once at start-up. */
static const char *delay_url;

static long int_arg(cf_req *rq, const char *name, long def, long max)
{
    const char *arg = cf_arg(rq, name);
    if (!arg)
        return def;
    char *end = NULL;
    long v = strtol(arg, &end, 10);
    return *arg && !*end && v >= 0 && v <= max ? v : -1;
}

/* The seeds' favourite async view: K upstream calls at once, so the
 * request costs the slowest call, not the sum. */
static void fanout(cf_req *rq)
{
    long n = int_arg(rq, "n", 3, 100), ms = int_arg(rq, "ms", 50, 60000);
    if (n < 0 || ms < 0) {
        cf_json(rq, 400, "{s:s}", "error", "n must be 0..100 and ms 0..60000");
        return;
    }
    if (!delay_url) {
        cf_json(rq, 503, "{s:s}", "error", "UPSTREAM is not set");
        return;
    }
    cf_fetch_opts opts = {.query = (const char *const[]){"ms", cf_sprintf(rq, "%ld", ms), NULL}};
    cf_fetch **calls = cf_alloc(rq, (size_t)(n ? n : 1) * sizeof *calls);
    for (long i = 0; i < n; i++)
        calls[i] = cf_fetch_start(rq, "GET", delay_url, &opts);
    if (cf_await_all_n(rq, (void *const *)calls, (size_t)n, -1) != 0) {
        cf_json(rq, 502, "{s:s}", "error", cf_errmsg(rq));
        return;
    }
    json_t *bodies = json_array();
    for (long i = 0; i < n; i++) {
        json_t *body = cf_fetch_json(calls[i]);
        if (cf_fetch_raise_for_status(calls[i]) != 0 || !body) {
            json_decref(bodies);
            cf_json(rq, 502, "{s:s}", "error",
                    body ? cf_fetch_errmsg(calls[i]) : "the upstream did not answer JSON");
            return;
        }
        json_array_append(bodies, body);
    }
    cf_json_value(rq, 200, bodies);
}

/* One row by primary key: a pool-thread hop on SQLite, one round trip on
 * PostgreSQL. */
static void db_user(cf_req *rq)
{
    cf_rows *row = cf_db_query(rq, "SELECT id, name, email FROM users WHERE id = $1",
                               cf_v_int(cf_param_int(rq, "id")));
    if (!row) /* the database's message may quote a row: shown only with --debug */
        cf_abort(rq, 500);
    else if (!cf_rows_next(row))
        cf_json(rq, 404, "{s:s}", "error", "User not found");
    else
        cf_json_value(rq, 200, cf_row_object(row));
}

/* DATABASE_URL, else sqlite:///$DB_PATH?mode=ro (the peers open it
 * read-only too); NULL if neither is set. */
static const char *db_url(char *buf, size_t cap)
{
    const char *url = getenv("DATABASE_URL");
    if (url && *url)
        return url;
    const char *path = getenv("DB_PATH");
    if (!path || !*path)
        return NULL;
    size_t o = (size_t)snprintf(buf, cap, "sqlite:///");
    for (; *path && o + 4 < cap; path++) { /* '%' and '?' would read as URL syntax */
        if (*path == '%' || *path == '?')
            o += (size_t)snprintf(buf + o, cap - o, "%%%02X", (unsigned char)*path);
        else
            buf[o++] = *path;
    }
    snprintf(buf + o, cap - o, "?mode=ro");
    return buf;
}

/* Fortunes are [id, message] pairs (the peers' templates get tuples too). */
static int by_message(const void *a, const void *b)
{
    const char *ma = json_string_value(json_array_get(*(json_t *const *)a, 1));
    const char *mb = json_string_value(json_array_get(*(json_t *const *)b, 1));
    return strcmp(ma ? ma : "", mb ? mb : "");
}

static json_t *fortune(int64_t id, const char *message)
{
    json_t *pair = json_array();
    json_array_append_new(pair, json_integer(id));
    json_array_append_new(pair, json_string(message ? message : ""));
    return pair;
}

static void fortunes(cf_req *rq)
{
    cf_rows *rows = cf_db_query(rq, "SELECT id, message FROM fortune");
    if (!rows) {
        cf_abort(rq, 500);
        return;
    }
    size_t n = cf_rows_count(rows) + 1, i = 0;
    json_t **list = cf_alloc(rq, n * sizeof *list);
    /* json_pack would cost more than the render (it parses its format) */
    while (cf_rows_next(rows))
        list[i++] = fortune(cf_row_int(rows, 0), cf_row_text(rows, 1));
    list[i++] = fortune(0, "Additional fortune added at request time.");
    qsort(list, i, sizeof *list, by_message); /* byte order = code point order */
    json_t *sorted = json_array();
    for (size_t k = 0; k < i; k++)
        json_array_append_new(sorted, list[k]);
    json_t *context = json_object();
    json_object_set_new(context, "fortunes", sorted);
    cf_render(rq, 200, "fortunes.html", context);
}

static void no_db(cf_req *rq)
{
    cf_json(rq, 501, "{s:s}", "error", "no database: set DB_PATH (SQLite) or DATABASE_URL");
}

int main(int argc, char **argv)
{
    cf_app *app = cf_app_new();
    cf_app_set(app, CF_OPT_ACCESS_LOG, 0);
    cf_app_set(app, CF_OPT_WORKERS, 1); /* the bench contract: one worker */
    cf_route(app, "GET", "/plaintext", plaintext);
    cf_route(app, "GET", "/json", json);
    cf_route(app, "GET", "/sleep", sleep_ms);
    const char *upstream = getenv("UPSTREAM");
    if (upstream && *upstream) {
        static char url[1024];
        size_t len = strlen(upstream);
        while (len && upstream[len - 1] == '/')
            len--;
        snprintf(url, sizeof url, "%.*s/delay", (int)len, upstream);
        delay_url = url;
    }
    cf_route(app, "GET", "/fanout", fanout);
    char buf[4200];
    const char *url = db_url(buf, sizeof buf);
    if (url && cf_db_open(app, url) != 0)
        return 2;
    cf_route(app, "GET", "/db/user/<int:id>", url ? db_user : no_db);
    cf_route(app, "GET", "/fortunes", url ? fortunes : no_db);
    cf_templates(app, CF_EXAMPLE_DIR "/templates");
    int rc = cf_run(app, argc, argv);
    cf_app_free(app);
    return rc;
}
