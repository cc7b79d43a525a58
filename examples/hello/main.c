/* examples/hello — the smallest Carafe app: one route, one async handler. */
#include <carafe.h>

static void hello(cf_req *rq)
{
    const char *name = cf_arg(rq, "name");
    cf_textf(rq, 200, "Hello, %s!\n", name ? name : "World");
}

int main(int argc, char **argv)
{
    cf_app *app = cf_app_new();
    cf_route(app, "GET", "/", hello);
    int rc = cf_run(app, argc, argv);
    cf_app_free(app);
    return rc;
}
