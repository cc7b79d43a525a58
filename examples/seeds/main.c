/*
 * examples/seeds — the flagship example, served by `make run`:
 * PORT, HOST, WEB_CONCURRENCY, DATABASE_URL, UPSTREAM_URLS from the
 * environment (see README.md).
 */
#include <stdlib.h>

#include "seeds.h"

int main(int argc, char **argv)
{
    const char *port = getenv("PORT");
    seeds_config cfg = {
        .database_url = getenv("DATABASE_URL"),
        .upstream_urls = getenv("UPSTREAM_URLS"),
        .port = port && *port ? atoi(port) : 8000,
    };
    cf_app *app = seeds_app_new(&cfg);
    if (!app)
        return 1;
    int rc = cf_run(app, argc, argv);
    cf_app_free(app);
    return rc;
}
