/*
 * app.c — every example of the seed articles on async views in Flask,
 * ported to Carafe (see README.md for each endpoint with curl).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, strndup: POSIX, beyond ISO C */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "seeds.h"

#define MAX_URLS 16

static const char *schema =
    "CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
    " email TEXT NOT NULL UNIQUE);"
    "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS my_table (id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
    " value INTEGER NOT NULL);"
    "INSERT INTO my_table (id, name, value) SELECT 1, 'alpha', 10"
    " WHERE NOT EXISTS (SELECT 1 FROM my_table);"
    "INSERT INTO my_table (id, name, value) SELECT 2, 'beta', 20"
    " WHERE NOT EXISTS (SELECT 1 FROM my_table WHERE id = 2);"
    "INSERT INTO my_table (id, name, value) SELECT 3, 'gamma', 30"
    " WHERE NOT EXISTS (SELECT 1 FROM my_table WHERE id = 3);";

/* UPSTREAM_URLS, split once at start-up. */
static char *urls[MAX_URLS];
static size_t nurls;

/* ---- waiting, the articles' first examples ---------------------------- */

/* GET /api/data: a slow "fetch" that holds no worker while it waits. */
static void api_data(cf_req *rq)
{
    if (cf_sleep(rq, 2000) != 0)
        return;
    cf_json(rq, 200, "{s:s}", "data", "some fetched data");
}

/* GET /data */
static void data(cf_req *rq)
{
    if (cf_sleep(rq, 1000) != 0)
        return;
    cf_text(rq, 200, "Done!");
}

/* GET /async */
static void async_view(cf_req *rq)
{
    if (cf_sleep(rq, 2000) != 0)
        return;
    cf_text(rq, 200, "This is an async response");
}

/* ---- outgoing calls ----------------------------------------------------- */

/* Start a GET to every upstream at once and wait for all: the cost is the
 * slowest call, not the sum. */
static int fetch_every_url(cf_req *rq, cf_fetch **out)
{
    void *aws[MAX_URLS];
    for (size_t i = 0; i < nurls; i++)
        aws[i] = out[i] = cf_fetch_start(rq, "GET", urls[i], NULL);
    return cf_await_all_n(rq, aws, nurls, -1);
}

/* GET /api/concurrent_data */
static void concurrent_data(cf_req *rq)
{
    cf_fetch *f[MAX_URLS];
    fetch_every_url(rq, f);
    if (cf_cancelled(rq))
        return;
    json_t *all = json_array();
    for (size_t i = 0; i < nurls; i++) {
        /* Non-2xx, refused, timed out: the message names the URL. */
        const char *why = cf_fetch_raise_for_status(f[i]) != 0 ? cf_fetch_errmsg(f[i])
                          : !cf_fetch_json(f[i]) ? cf_sprintf(rq, "%s did not return JSON", urls[i])
                                                 : NULL;
        if (why) {
            json_decref(all);
            cf_json(rq, 502, "{s:s}", "error", why);
            return;
        }
        json_array_append(all, cf_fetch_json(f[i]));
    }
    cf_json_value(rq, 200, all);
}

/* GET /async_get_urls_v2: statuses are listed, not errors. */
static void async_get_urls_v2(cf_req *rq)
{
    cf_fetch *f[MAX_URLS];
    fetch_every_url(rq, f);
    if (cf_cancelled(rq))
        return;
    char *html = cf_strdup(rq, "<h1>URLs:</h1>");
    for (size_t i = 0; i < nurls; i++) {
        if (cf_fetch_status(f[i]))
            html = cf_sprintf(rq, "%s<p>URL: %s --- Status Code: %d</p>", html, urls[i],
                              cf_fetch_status(f[i]));
        else
            html = cf_sprintf(rq, "%s<p>URL: %s --- Error: %s</p>", html, urls[i],
                              cf_fetch_errmsg(f[i]));
    }
    cf_html(rq, 200, html);
}

/* GET /async-request */
static void async_request(cf_req *rq)
{
    if (!nurls) {
        cf_json(rq, 502, "{s:s}", "error", "no UPSTREAM_URLS configured");
        return;
    }
    cf_fetch *f = cf_fetch_do(rq, "GET", urls[0], NULL);
    if (cf_cancelled(rq))
        return;
    if (cf_fetch_raise_for_status(f) != 0)
        cf_json(rq, 502, "{s:s}", "error", cf_fetch_errmsg(f));
    else
        cf_textf(rq, 200, "Fetched data: %s", cf_fetch_body(f, NULL));
}

/* The default upstreams, served by the app itself (no internet assumed),
 * shaped like jsonplaceholder's answers. */
static void mock_todo(cf_req *rq)
{
    cf_json(rq, 200, "{s:i,s:i,s:s,s:b}", "userId", 1, "id", 1, "title",
            "delectus aut autem", "completed", 0);
}

static void mock_post(cf_req *rq)
{
    cf_json(rq, 200, "{s:i,s:i,s:s,s:s}", "userId", 1, "id", 1, "title",
            "sunt aut facere repellat provident occaecati excepturi optio reprehenderit", "body",
            "quia et suscipit\nsuscipit recusandae consequuntur expedita et cum");
}

/* ---- hooks, errors, middleware ------------------------------------------ */

static void load_user(cf_req *rq)
{
    cf_sleep(rq, 100); /* "loading the user" */
    cf_g_set(rq, "user", "demo");
}

static void log_status(cf_req *rq)
{
    cf_sleep(rq, 100); /* "logging the status" */
    cf_set_header(rq, "X-Request-Status", "logged");
}

/* GET /hooked/whoami */
static void whoami(cf_req *rq)
{
    const char *user = cf_g_get(rq, "user");
    cf_json(rq, 200, "{s:s?}", "user", user);
}

/* GET /boom: fails without answering. */
static void boom(cf_req *rq) { cf_fail(rq, "boom: this handler always fails"); }

static void server_error(cf_req *rq)
{
    cf_sleep(rq, 10); /* error handlers may await too */
    cf_text(rq, 500, "500 error");
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The articles' ensure_sync-style decorator: time the wrapped handler. */
static void server_timing(cf_req *rq)
{
    double t0 = now_ms();
    cf_next(rq);
    cf_set_header(rq, "Server-Timing", cf_sprintf(rq, "app;dur=%.3f", now_ms() - t0));
}

/* GET /timed */
static void timed(cf_req *rq)
{
    cf_sleep(rq, 50);
    cf_json(rq, 200, "{s:s}", "message", "timed");
}

/* ---- database ----------------------------------------------------------- */

static void db_failed(cf_req *rq)
{
    cf_json(rq, 500, "{s:s}", "error", cf_errmsg(rq));
}

/* GET /async-db */
static void async_db(cf_req *rq)
{
    cf_rows *rows = cf_db_query(rq, "SELECT id, name, value FROM my_table ORDER BY id");
    if (rows)
        cf_json(rq, 200, "{s:o}", "data", cf_rows_json(rows));
    else
        db_failed(rq);
}

/* Method view /items and /items/<int:id>. */
static void items_list(cf_req *rq)
{
    cf_rows *rows = cf_db_query(rq, "SELECT id, name FROM items ORDER BY id");
    if (rows)
        cf_json_value(rq, 200, cf_rows_json(rows));
    else
        db_failed(rq);
}

static void items_create(cf_req *rq)
{
    json_t *in = cf_get_json(rq);
    if (!in) {
        cf_json(rq, 400, "{s:s}", "error", cf_errmsg(rq));
        return;
    }
    const char *name = json_string_value(json_object_get(in, "name"));
    if (!name || !*name) {
        cf_json(rq, 400, "{s:s}", "error", "field 'name' is required");
        return;
    }
    cf_rows *rows = cf_db_query(rq, "INSERT INTO items (name) VALUES ($1) RETURNING id, name",
                                cf_v_text(name));
    if (rows && cf_rows_next(rows))
        cf_json_value(rq, 201, cf_row_object(rows));
    else
        db_failed(rq);
}

static void item_get(cf_req *rq)
{
    cf_rows *rows = cf_db_query(rq, "SELECT id, name FROM items WHERE id = $1",
                                cf_v_int(cf_param_int(rq, "id")));
    if (!rows)
        db_failed(rq);
    else if (!cf_rows_next(rows))
        cf_json(rq, 404, "{s:s}", "error", "Item not found");
    else
        cf_json_value(rq, 200, cf_row_object(rows));
}

static void item_delete(cf_req *rq)
{
    cf_rows *rows = cf_db_query(rq, "DELETE FROM items WHERE id = $1",
                                cf_v_int(cf_param_int(rq, "id")));
    if (!rows)
        db_failed(rq);
    else if (cf_rows_affected(rows) == 0)
        cf_json(rq, 404, "{s:s}", "error", "Item not found");
    else
        cf_send(rq, 204, NULL, "", 0);
}

/* POST /add-user */
static void add_user(cf_req *rq)
{
    json_t *in = cf_get_json(rq);
    if (!in || !json_is_object(in)) {
        cf_json(rq, 400, "{s:s}", "error", in ? "the body must be a JSON object" : cf_errmsg(rq));
        return;
    }
    const char *fields[] = {"name", "email"}, *values[2];
    for (int i = 0; i < 2; i++) {
        values[i] = json_string_value(json_object_get(in, fields[i]));
        if (!values[i] || !*values[i]) {
            cf_json(rq, 400, "{s:s}", "error", cf_sprintf(rq, "field '%s' is required", fields[i]));
            return;
        }
    }
    cf_rows *rows = cf_db_query(rq,
                                "INSERT INTO users (name, email) VALUES ($1, $2)"
                                " RETURNING id, name, email",
                                cf_v_text(values[0]), cf_v_text(values[1]));
    if (!rows && cf_db_error(rq) == CF_EUNIQUE)
        cf_json(rq, 409, "{s:s}", "error",
                cf_sprintf(rq, "a user with email '%s' already exists", values[1]));
    else if (!rows || !cf_rows_next(rows))
        db_failed(rq);
    else
        cf_json(rq, 201, "{s:s,s:o}", "message", "User created", "user", cf_row_object(rows));
}

/* GET /user/<int:user_id> */
static void get_user(cf_req *rq)
{
    cf_rows *row = cf_db_query(rq, "SELECT id, name, email FROM users WHERE id = $1",
                               cf_v_int(cf_param_int(rq, "user_id")));
    if (!row)
        db_failed(rq);
    else if (!cf_rows_next(row))
        cf_json(rq, 404, "{s:s}", "error", "User not found");
    else
        cf_json_value(rq, 200, cf_row_object(row));
}

/* GET /users */
static void list_users(cf_req *rq)
{
    cf_rows *rows = cf_db_query(rq, "SELECT id, name, email FROM users ORDER BY id");
    if (rows)
        cf_json_value(rq, 200, cf_rows_json(rows));
    else
        db_failed(rq);
}

/* ---- background work ----------------------------------------------------- */

static int long_task(cf_req *ctx, void *arg)
{
    (void)arg;
    int rc = cf_sleep(ctx, 5000);
    if (rc != 0)
        return rc;
    fprintf(stderr, "Background task completed\n");
    return 0;
}

/* GET /start-task: answers at once; the task goes on after the response. */
static void start_task(cf_req *rq)
{
    if (cf_background(rq, "long_task", long_task, NULL, 0) != 0)
        cf_json(rq, 500, "{s:s}", "error", "could not start the task");
    else
        cf_json(rq, 200, "{s:s}", "message", "Task started");
}

/* ---- the app -------------------------------------------------------------- */

static void split_urls(const char *list, int port)
{
    char defaults[256];
    if (!list || !*list) {
        snprintf(defaults, sizeof defaults,
                 "http://127.0.0.1:%d/mock/todos/1,http://127.0.0.1:%d/mock/posts/1", port, port);
        list = defaults;
    }
    nurls = 0;
    const char *p = list;
    while (*p && nurls < MAX_URLS) {
        size_t n = strcspn(p, ",");
        while (n && (*p == ' '))
            p++, n--;
        if (n) {
            urls[nurls] = strndup(p, n);
            nurls++;
        }
        p += n;
        if (*p == ',')
            p++;
    }
}

cf_app *seeds_app_new(const seeds_config *cfg)
{
    cf_app *app = cf_app_new();
    const char *db = cfg->database_url && *cfg->database_url ? cfg->database_url : "sqlite:///seeds.db";
    if (cf_db_open(app, db) != 0 || cf_db_exec_script(app, schema) != 0) {
        cf_app_free(app);
        return NULL;
    }
    split_urls(cfg->upstream_urls, cfg->port);

    cf_route(app, "GET", "/api/data", api_data);
    cf_route(app, "GET", "/api/concurrent_data", concurrent_data);
    cf_route(app, "GET", "/data", data);
    cf_route(app, "GET", "/async_get_urls_v2", async_get_urls_v2);
    cf_route(app, "GET", "/async", async_view);
    cf_route(app, "GET", "/async-request", async_request);
    cf_route(app, "GET", "/async-db", async_db);
    cf_route(app, "GET", "/mock/todos/1", mock_todo);
    cf_route(app, "GET", "/mock/posts/1", mock_post);

    cf_group *hooked = cf_group_new(app, "/hooked");
    cf_before_request(hooked, load_user);
    cf_after_request(hooked, log_status);
    cf_route(hooked, "GET", "/whoami", whoami);

    cf_route(app, "GET", "/boom", boom);
    cf_errorhandler(app, 500, server_error);

    cf_route_use(cf_route(app, "GET", "/timed", timed), server_timing);

    static const cf_view items = {.get = items_list, .post = items_create};
    static const cf_view item = {.get = item_get, .delete_ = item_delete};
    cf_route_view(app, "/items", &items, "items");
    cf_route_view(app, "/items/<int:id>", &item, "item");

    cf_route(app, "POST", "/add-user", add_user);
    cf_route(app, "GET", "/user/<int:user_id>", get_user);
    cf_route(app, "GET", "/users", list_users);
    cf_route(app, "GET", "/start-task", start_task);
    return app;
}
