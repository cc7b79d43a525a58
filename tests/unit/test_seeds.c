/*
 * test_seeds.c — examples/seeds through the in-process test client: async
 * hooks and storage, the async 500 handler, the timing middleware, the
 * database endpoints (SQLite in a temp dir), the method view's 405, and the
 * background task that outlives its response. The fetching endpoints need
 * sockets; tests/integration/test_seeds.py covers them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../examples/seeds/seeds.h"
#include "check.h"

int main(void)
{
    char dir[] = "/tmp/cf-seeds-unit-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char url[256];
    snprintf(url, sizeof url, "sqlite:///%s/seeds.db", dir);
    seeds_config cfg = {.database_url = url, .upstream_urls = "http://127.0.0.1:1/x", .port = 0};
    cf_app *app = seeds_app_new(&cfg);
    CHECK(app != NULL);
    if (!app)
        return CHECK_DONE();
    cf_test_client *tc = cf_test_client_new(app);

    cf_test_response *r = cf_test_get(tc, "/hooked/whoami");
    CHECK_INT(cf_test_status(r), 200);
    CHECK_STR(cf_test_body(r, NULL), "{\"user\":\"demo\"}");
    CHECK_STR(cf_test_header(r, "X-Request-Status"), "logged");

    r = cf_test_get(tc, "/boom");
    CHECK_INT(cf_test_status(r), 500);
    CHECK_STR(cf_test_body(r, NULL), "500 error");

    r = cf_test_get(tc, "/timed");
    const char *timing = cf_test_header(r, "Server-Timing");
    /* The handler sleeps 50 ms of the loop's clock: at least 47 real ms. */
    CHECK(timing && strncmp(timing, "app;dur=", 8) == 0 && atof(timing + 8) >= 47);

    r = cf_test_get(tc, "/async-db");
    json_t *rows = json_object_get(cf_test_json(r), "data");
    CHECK_INT(json_array_size(rows), 3);
    CHECK_STR(json_string_value(json_object_get(json_array_get(rows, 2), "name")), "gamma");

    r = cf_test_post_json(tc, "/add-user", "{\"name\":\"Ada\",\"email\":\"ada@example.com\"}");
    CHECK_INT(cf_test_status(r), 201);
    json_int_t id = json_integer_value(json_object_get(json_object_get(cf_test_json(r), "user"), "id"));
    CHECK(id > 0);
    r = cf_test_post_json(tc, "/add-user", "{\"name\":\"Eve\",\"email\":\"ada@example.com\"}");
    CHECK_INT(cf_test_status(r), 409);
    r = cf_test_post_json(tc, "/add-user", "{\"email\":\"bob@example.com\"}");
    CHECK_INT(cf_test_status(r), 400);
    CHECK(strstr(cf_test_body(r, NULL), "name") != NULL);
    char path[64];
    snprintf(path, sizeof path, "/user/%lld", (long long)id);
    r = cf_test_get(tc, path);
    CHECK_STR(json_string_value(json_object_get(cf_test_json(r), "email")), "ada@example.com");
    CHECK_INT(cf_test_status(cf_test_get(tc, "/user/424242")), 404);

    r = cf_test_post_json(tc, "/items", "{\"name\":\"kettle\"}");
    CHECK_INT(cf_test_status(r), 201);
    r = cf_test_request(tc, "PATCH", "/items", NULL, NULL, 0);
    CHECK_INT(cf_test_status(r), 405);
    CHECK(cf_test_header(r, "Allow") && strstr(cf_test_header(r, "Allow"), "POST"));

    /* The upstream is refused: 502 naming it. */
    r = cf_test_get(tc, "/api/concurrent_data");
    CHECK_INT(cf_test_status(r), 502);
    CHECK(strstr(cf_test_body(r, NULL), "127.0.0.1:1") != NULL);

    r = cf_test_get(tc, "/start-task");
    CHECK_INT(cf_test_status(r), 200);
    CHECK_INT(cf_background_count(), 1);
    CHECK_INT(cf_test_wait_background(tc, 8000), 0);

    cf_test_client_free(tc);
    cf_app_free(app);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)!system(cmd);
    return CHECK_DONE();
}
