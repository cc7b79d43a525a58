/*
 * auth.c — the tutorial's auth blueprint: register, log in, log out, and
 * the hook that loads the logged-in user into g.user for every request.
 */
#include <string.h>

#include "flaskr.h"

/* Flask's before_app_request load_logged_in_user: g.user is the user's row,
 * or None. */
static void load_logged_in_user(cf_req *rq)
{
    json_t *id = json_object_get(cf_session(rq), "user_id");
    json_t *user = json_null();
    if (json_is_integer(id)) {
        cf_rows *row = cf_db_query(rq, "SELECT * FROM user WHERE id = $1",
                                   cf_v_int(json_integer_value(id)));
        if (!row) {
            cf_abort(rq, 500);
            return;
        }
        if (cf_rows_next(row)) {
            json_decref(user);
            user = cf_row_object(row);
        }
    }
    json_object_set_new(cf_g_json(rq), "user", user);
}

int64_t flaskr_user_id(cf_req *rq)
{
    return json_integer_value(json_object_get(json_object_get(cf_g_json(rq), "user"), "id"));
}

void login_required(cf_req *rq)
{
    if (flaskr_user_id(rq) == 0) {
        cf_redirect(rq, 302, cf_url_for(rq, "auth.login", NULL));
        return;
    }
    cf_next(rq);
}

static void register_view(cf_req *rq)
{
    if (strcmp(cf_method(rq), "POST") == 0) {
        const char *username = cf_form(rq, "username");
        const char *password = cf_form(rq, "password");
        const char *error = NULL;
        if (!username || !*username)
            error = "Username is required.";
        else if (!password || !*password)
            error = "Password is required.";
        if (!error) {
            char *hash = cf_password_hash(rq, password);
            if (!hash) {
                cf_abort(rq, 500);
                return;
            }
            /* The unique username decides, as the tutorial's IntegrityError. */
            cf_rows *r = cf_db_query(rq,
                                     "INSERT INTO user (username, password) VALUES ($1, $2)"
                                     " ON CONFLICT (username) DO NOTHING",
                                     cf_v_text(username), cf_v_text(hash));
            if (!r) {
                cf_abort(rq, 500);
                return;
            }
            if (cf_rows_affected(r) == 1) {
                cf_redirect(rq, 302, cf_url_for(rq, "auth.login", NULL));
                return;
            }
            error = cf_sprintf(rq, "User %s is already registered.", username);
        }
        cf_flash(rq, NULL, error);
    }
    cf_render(rq, 200, "auth/register.html", NULL);
}

static void login_view(cf_req *rq)
{
    if (strcmp(cf_method(rq), "POST") == 0) {
        const char *username = cf_form(rq, "username");
        const char *password = cf_form(rq, "password");
        cf_rows *user = cf_db_query(rq, "SELECT * FROM user WHERE username = $1",
                                    cf_v_text(username ? username : ""));
        if (!user) {
            cf_abort(rq, 500);
            return;
        }
        const char *error = NULL;
        if (!cf_rows_next(user))
            error = "Incorrect username.";
        else if (cf_password_verify(rq, cf_row_text(user, (size_t)cf_rows_index(user, "password")),
                                    password ? password : "") != 1)
            error = "Incorrect password.";
        if (!error) {
            /* a new session holding only the user id */
            cf_session_clear(rq);
            cf_session_set(rq, "user_id", json_integer(cf_row_int(user, (size_t)cf_rows_index(user, "id"))));
            cf_redirect(rq, 302, cf_url_for(rq, "blog.index", NULL));
            return;
        }
        cf_flash(rq, NULL, error);
    }
    cf_render(rq, 200, "auth/login.html", NULL);
}

static void logout_view(cf_req *rq)
{
    cf_session_clear(rq);
    cf_redirect(rq, 302, cf_url_for(rq, "blog.index", NULL));
}

void flaskr_auth_init(cf_app *app)
{
    cf_before_request(app, load_logged_in_user);
    cf_group *auth = cf_group_new(app, "/auth");
    cf_route_set_name(cf_route(auth, "GET,POST", "/register", register_view), "auth.register");
    cf_route_set_name(cf_route(auth, "GET,POST", "/login", login_view), "auth.login");
    cf_route_set_name(cf_route(auth, "GET", "/logout", logout_view), "auth.logout");
}
