/*
 * examples/bench — the endpoints of ../shared/bench's contract, for
 * measuring Carafe against its peers (see README.md here):
 *   GET /plaintext      200 text "Hello, World!"
 *   GET /json           200 {"message":"Hello, World!"}, serialized per request
 *   GET /sleep?ms=N     waits N ms without blocking the worker, 200 "slept N"
 *   GET /fanout, GET /db/user/<id>   501 until the HTTP client and database land
 * One worker, no access log, PORT from the environment.
 */
#include <carafe.h>
#include <stdlib.h>

static void plaintext(cf_req *rq) { cf_text(rq, 200, "Hello, World!"); }

static void json(cf_req *rq) { cf_json(rq, 200, "{s:s}", "message", "Hello, World!"); }

static void sleep_ms(cf_req *rq)
{
    const char *arg = cf_arg(rq, "ms");
    char *end = NULL;
    long ms = arg ? strtol(arg, &end, 10) : 0;
    if (!arg || *end || ms < 0 || ms > 60000)
        return cf_json(rq, 400, "{s:s}", "error", "ms must be an integer from 0 to 60000");
    if (cf_sleep(rq, (uint64_t)ms) != 0)
        return cf_abort(rq, 503);
    cf_textf(rq, 200, "slept %ld", ms);
}

static void not_yet(cf_req *rq)
{
    cf_json(rq, 501, "{s:s}", "error", "not implemented yet in this build");
}

int main(int argc, char **argv)
{
    cf_app *app = cf_app_new();
    cf_app_set(app, CF_OPT_ACCESS_LOG, 0);
    cf_app_set(app, CF_OPT_WORKERS, 1); /* the bench contract: one worker */
    cf_route(app, "GET", "/plaintext", plaintext);
    cf_route(app, "GET", "/json", json);
    cf_route(app, "GET", "/sleep", sleep_ms);
    cf_route(app, "GET", "/fanout", not_yet);
    cf_route(app, "GET", "/db/user/<int:id>", not_yet);
    int rc = cf_run(app, argc, argv);
    cf_app_free(app);
    return rc;
}
