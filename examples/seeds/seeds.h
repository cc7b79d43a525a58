/*
 * seeds.h — the seed articles' examples as one Carafe app. main.c serves it;
 * the tests build it with the test client.
 */
#ifndef SEEDS_H
#define SEEDS_H

#include <carafe.h>

typedef struct seeds_config {
    const char *database_url;  /* DATABASE_URL, default sqlite:///seeds.db */
    const char *upstream_urls; /* UPSTREAM_URLS, comma-separated */
    int port;                  /* for the default upstreams (the app's mocks) */
} seeds_config;

/* The app with every route, its database and schema recorded (they are
 * opened and created when the app is served, on SQLite or PostgreSQL);
 * NULL (with the reason on stderr) when the database URL is malformed. */
cf_app *seeds_app_new(const seeds_config *cfg);

#endif
