/*
 * flaskr.h — the parts of examples/flaskr (Flask's tutorial blog, ported):
 * the app factory (main.c), the auth blueprint (auth.c), the blog
 * blueprint (blog.c).
 */
#ifndef FLASKR_H
#define FLASKR_H

#include <carafe.h>

/* The example's source folder (CMake defines it), where its templates are;
 * built elsewhere (e.g. against an installed Carafe), the working directory. */
#ifndef CF_EXAMPLE_DIR
#define CF_EXAMPLE_DIR "."
#endif

/* auth.c: the /auth group and the before-request hook that loads g.user. */
void flaskr_auth_init(cf_app *app);
/* Middleware for views that need a logged-in user: a redirect to the login
 * page otherwise. */
void login_required(cf_req *rq);
/* g.user's id, or 0 when nobody is logged in. */
int64_t flaskr_user_id(cf_req *rq);

/* blog.c: the index, create, update and delete views. */
void flaskr_blog_init(cf_app *app);

#endif
