/*
 * examples/echo — answers every method on every path with 200 and the
 * request body exactly as it arrived (de-chunked), the shape HTTP
 * conformance suites expect of a server under test. The request's
 * Content-Type is echoed back when there is one.
 */
#include <carafe.h>

static void echo(cf_req *rq)
{
    size_t len;
    const char *body = cf_body(rq, &len);
    const char *type = cf_header(rq, "Content-Type");
    cf_send(rq, 200, type ? type : "application/octet-stream", body, len);
}

int main(int argc, char **argv)
{
    cf_app *app = cf_app_new();
    cf_route(app, "*", "/", echo);
    cf_route(app, "*", "/<path:rest>", echo);
    int rc = cf_run(app, argc, argv);
    cf_app_free(app);
    return rc;
}
