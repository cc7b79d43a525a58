/*
 * examples/fetch — the seed articles' favourite async view: a page that
 * needs several calls to an external API. Done one after another it costs
 * the sum of their latencies; started together and awaited together it
 * costs the slowest one, and the worker serves other requests meanwhile.
 *
 *   GET /comics?n=5                 n random xkcd comics, fetched concurrently
 *   GET /comics/sequential?n=5      the same, one call after another
 *   GET /comics/capped?n=20&at_once=4   cf_fetch_all: at most 4 calls at once
 *   GET /api/comics?n=5             the concurrent version as JSON
 *
 * XKCD_URL is the API's base (default https://xkcd.com); without network,
 * point it at the stand-in of tests/integration/upstream.py (see README.md).
 */
#define _XOPEN_SOURCE 700 /* clock_gettime, open_memstream, random: POSIX (XSI), beyond ISO C */
#include <carafe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_COMICS 50

static const char *xkcd_url = "https://xkcd.com";

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int comic_count(cf_req *rq, const char *name, int def)
{
    const char *arg = cf_arg(rq, name);
    int n = arg ? atoi(arg) : def;
    return n < 1 ? 1 : n > MAX_COMICS ? MAX_COMICS : n;
}

/* A random comic's JSON URL, as the seed does (randint(0, 300)). */
static const char *random_comic(cf_req *rq)
{
    return cf_sprintf(rq, "%s/%ld/info.0.json", xkcd_url, 1 + random() % 300);
}

/* Calls to a third-party API get short limits of their own. */
static const cf_fetch_opts api_opts = {
    .connect_timeout_ms = 3000,
    .timeout_ms = 10000,
    .max_body = 64 * 1024,
    .follow_redirects = true,
};

/* A finished call as {"num", "title", "img"}, or NULL with *why set. */
static json_t *comic_of(cf_req *rq, cf_fetch *f, const char **why)
{
    if (cf_fetch_raise_for_status(f) != 0) {
        *why = cf_fetch_errmsg(f); /* names the URL and what failed */
        return NULL;
    }
    json_t *j = cf_fetch_json(f);
    json_t *num = json_object_get(j, "num"), *title = json_object_get(j, "title"),
           *img = json_object_get(j, "img");
    if (!json_is_integer(num) || !json_is_string(title) || !json_is_string(img)) {
        *why = cf_sprintf(rq, "%s did not answer a comic", cf_fetch_url(f));
        return NULL;
    }
    return json_pack("{s:O,s:O,s:O}", "num", num, "title", title, "img", img);
}

/* n comics as a JSON array; NULL (and *why) on the first failure. */
static json_t *collect(cf_req *rq, cf_fetch **calls, int n, const char **why)
{
    json_t *list = json_array();
    for (int i = 0; i < n; i++) {
        json_t *c = comic_of(rq, calls[i], why);
        if (!c) {
            json_decref(list);
            return NULL;
        }
        json_array_append_new(list, c);
    }
    return list;
}

/* Start them all, then await them all: the cost of the slowest call. */
static json_t *fetch_concurrently(cf_req *rq, int n, const char **why)
{
    cf_fetch *calls[MAX_COMICS];
    for (int i = 0; i < n; i++)
        calls[i] = cf_fetch_start(rq, "GET", random_comic(rq), &api_opts);
    if (cf_await_all_n(rq, (void *const *)calls, (size_t)n, -1) != 0) {
        *why = cf_errmsg(rq); /* the first failure in argument order */
        return NULL;
    }
    return collect(rq, calls, n, why);
}

/* One after another, as a sync view would: the sum of the latencies. */
static json_t *fetch_sequentially(cf_req *rq, int n, const char **why)
{
    cf_fetch *calls[MAX_COMICS];
    for (int i = 0; i < n; i++)
        calls[i] = cf_fetch_do(rq, "GET", random_comic(rq), &api_opts);
    return collect(rq, calls, n, why);
}

/* Many URLs, a few at a time: kind to the API, still concurrent. */
static json_t *fetch_capped(cf_req *rq, int n, int at_once, const char **why)
{
    const char *urls[MAX_COMICS];
    cf_fetch *calls[MAX_COMICS];
    for (int i = 0; i < n; i++)
        urls[i] = random_comic(rq);
    if (cf_fetch_all(rq, urls, (size_t)n, (size_t)at_once, &api_opts, calls) != 0) {
        *why = cf_errmsg(rq); /* the first failure in URL order */
        return NULL;
    }
    return collect(rq, calls, n, why);
}

static void put_escaped(FILE *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '&': fputs("&amp;", out); break;
        case '"': fputs("&quot;", out); break;
        default: fputc(*s, out);
        }
    }
}

static void render(cf_req *rq, json_t *comics, const char *why, const char *how, double ms)
{
    if (!comics) {
        cf_json(rq, 502, "{s:s}", "error", why);
        return;
    }
    char *page = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&page, &len);
    if (!out) {
        json_decref(comics);
        cf_abort(rq, 500);
        return;
    }
    fprintf(out, "<!doctype html><title>xkcd</title>\n<h1>%zu comics, %s, in %.0f ms</h1>\n<ul>\n",
            json_array_size(comics), how, ms);
    size_t i;
    json_t *c;
    json_array_foreach(comics, i, c) {
        fputs("<li><img src=\"", out);
        put_escaped(out, json_string_value(json_object_get(c, "img")));
        fprintf(out, "\" alt=\"\"><p>#%lld ", (long long)json_integer_value(json_object_get(c, "num")));
        put_escaped(out, json_string_value(json_object_get(c, "title")));
        fputs("</p></li>\n", out);
    }
    fputs("</ul>\n", out);
    fclose(out);
    json_decref(comics);
    cf_send(rq, 200, "text/html; charset=utf-8", page, len); /* copies it */
    free(page);
}

static void comics(cf_req *rq)
{
    const char *why = NULL;
    double t0 = now_ms();
    json_t *list = fetch_concurrently(rq, comic_count(rq, "n", 5), &why);
    render(rq, list, why, "fetched concurrently", now_ms() - t0);
}

static void comics_sequential(cf_req *rq)
{
    const char *why = NULL;
    double t0 = now_ms();
    json_t *list = fetch_sequentially(rq, comic_count(rq, "n", 5), &why);
    render(rq, list, why, "fetched one after another", now_ms() - t0);
}

static void comics_capped(cf_req *rq)
{
    const char *why = NULL;
    int at_once = comic_count(rq, "at_once", 4);
    double t0 = now_ms();
    json_t *list = fetch_capped(rq, comic_count(rq, "n", 20), at_once, &why);
    render(rq, list, why, cf_sprintf(rq, "at most %d at once", at_once), now_ms() - t0);
}

static void api_comics(cf_req *rq)
{
    const char *why = NULL;
    double t0 = now_ms();
    json_t *list = fetch_concurrently(rq, comic_count(rq, "n", 5), &why);
    if (list)
        cf_json(rq, 200, "{s:f,s:o}", "ms", now_ms() - t0, "comics", list);
    else
        cf_json(rq, 502, "{s:s}", "error", why);
}

int main(int argc, char **argv)
{
    const char *base = getenv("XKCD_URL");
    if (base && *base)
        xkcd_url = base;
    srandom((unsigned)time(NULL) ^ (unsigned)getpid());
    cf_app *app = cf_app_new();
    cf_route(app, "GET", "/comics", comics);
    cf_route(app, "GET", "/comics/sequential", comics_sequential);
    cf_route(app, "GET", "/comics/capped", comics_capped);
    cf_route(app, "GET", "/api/comics", api_comics);
    int rc = cf_run(app, argc, argv);
    cf_app_free(app);
    return rc;
}
