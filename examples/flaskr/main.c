/*
 * examples/flaskr — Flask's tutorial application (a blog with users),
 * ported to Carafe: the same URLs, forms, redirects, flash messages, pages
 * and SQLite tables, so Flask's tutorial tests pass against it.
 *
 *   build/examples/flaskr --init-db      drop and create the tables
 *   build/examples/flaskr --port 5000    serve it
 *
 * Environment: SECRET_KEY (default "dev", as the tutorial's), DATABASE_URL
 * (default sqlite:///flaskr.sqlite in the working directory), PORT. The
 * templates and static files are found beside this source file, so it runs
 * from any directory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flaskr.h"

/* The tutorial's schema: user(id, username unique, password) and
 * post(id, author_id, created, title, body). */
static const char *const schema =
    "DROP TABLE IF EXISTS user;"
    "DROP TABLE IF EXISTS post;"
    "CREATE TABLE user ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  username TEXT UNIQUE NOT NULL,"
    "  password TEXT NOT NULL);"
    "CREATE TABLE post ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  author_id INTEGER NOT NULL,"
    "  created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,"
    "  title TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  FOREIGN KEY (author_id) REFERENCES user (id));";

static void hello(cf_req *rq) { cf_text(rq, 200, "Hello, World!"); }

static bool has_flag(int argc, char **argv, const char *flag)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], flag) == 0)
            return true;
    return false;
}

int main(int argc, char **argv)
{
    cf_app *app = cf_app_new();
    const char *key = getenv("SECRET_KEY");
    json_object_set_new(cf_config(app), "SECRET_KEY", json_string(key && *key ? key : "dev"));
    const char *db = getenv("DATABASE_URL");
    if (cf_db_open(app, db && *db ? db : "sqlite:///flaskr.sqlite") != 0)
        return 1;

    if (has_flag(argc, argv, "--init-db")) { /* `flask init-db` */
        cf_db_exec_script(app, schema);
        int rc = cf_app_open(app);
        if (rc == 0)
            puts("Initialized the database.");
        cf_app_free(app);
        return rc == 0 ? 0 : 1;
    }

    cf_route(app, "GET", "/hello", hello);
    flaskr_auth_init(app);
    flaskr_blog_init(app);
    cf_static(app, "/static", CF_EXAMPLE_DIR "/static");
    cf_templates(app, CF_EXAMPLE_DIR "/templates");
    int rc = cf_run(app, argc, argv);
    cf_app_free(app);
    return rc;
}
