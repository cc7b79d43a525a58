/*
 * blog.c — the tutorial's blog blueprint: the index of posts, and create,
 * update and delete for their author (403 for another user's post, 404 for
 * a missing one).
 */
#include <string.h>

#include "flaskr.h"

#define POST_COLUMNS \
    "SELECT p.id, title, body, created, author_id, username" \
    " FROM post p JOIN user u ON p.author_id = u.id"

static void index_view(cf_req *rq)
{
    cf_rows *posts = cf_db_query(rq, POST_COLUMNS " ORDER BY created DESC");
    if (!posts) {
        cf_abort(rq, 500);
        return;
    }
    cf_render(rq, 200, "blog/index.html", json_pack("{s:o}", "posts", cf_rows_json(posts)));
}

/* The post of the URL's id as a JSON object, after the tutorial's checks:
 * NULL when the request was answered (404, 403, 500). */
static json_t *get_post(cf_req *rq, bool check_author)
{
    int64_t id = cf_param_int(rq, "id");
    cf_rows *row = cf_db_query(rq, POST_COLUMNS " WHERE p.id = $1", cf_v_int(id));
    if (!row) {
        cf_abort(rq, 500);
        return NULL;
    }
    if (!cf_rows_next(row)) {
        cf_abort(rq, 404);
        return NULL;
    }
    json_t *post = cf_row_object(row);
    if (check_author &&
        json_integer_value(json_object_get(post, "author_id")) != flaskr_user_id(rq)) {
        json_decref(post);
        cf_abort(rq, 403);
        return NULL;
    }
    return post;
}

/* The submitted title and body; flashes and returns false when the title
 * is missing. */
static bool read_post_form(cf_req *rq, const char **title, const char **body)
{
    *title = cf_form(rq, "title");
    *body = cf_form(rq, "body");
    if (!*body)
        *body = "";
    if (!*title || !**title) {
        cf_flash(rq, NULL, "Title is required.");
        return false;
    }
    return true;
}

static void create_view(cf_req *rq)
{
    const char *title, *body;
    if (strcmp(cf_method(rq), "POST") == 0 && read_post_form(rq, &title, &body)) {
        if (!cf_db_query(rq, "INSERT INTO post (title, body, author_id) VALUES ($1, $2, $3)",
                         cf_v_text(title), cf_v_text(body), cf_v_int(flaskr_user_id(rq)))) {
            cf_abort(rq, 500);
            return;
        }
        cf_redirect(rq, 302, cf_url_for(rq, "blog.index", NULL));
        return;
    }
    cf_render(rq, 200, "blog/create.html", NULL);
}

static void update_view(cf_req *rq)
{
    json_t *post = get_post(rq, true);
    if (!post)
        return;
    const char *title, *body;
    if (strcmp(cf_method(rq), "POST") == 0 && read_post_form(rq, &title, &body)) {
        json_decref(post);
        if (!cf_db_query(rq, "UPDATE post SET title = $1, body = $2 WHERE id = $3",
                         cf_v_text(title), cf_v_text(body), cf_v_int(cf_param_int(rq, "id")))) {
            cf_abort(rq, 500);
            return;
        }
        cf_redirect(rq, 302, cf_url_for(rq, "blog.index", NULL));
        return;
    }
    cf_render(rq, 200, "blog/update.html", json_pack("{s:o}", "post", post));
}

static void delete_view(cf_req *rq)
{
    json_t *post = get_post(rq, true);
    if (!post)
        return;
    json_decref(post);
    if (!cf_db_query(rq, "DELETE FROM post WHERE id = $1", cf_v_int(cf_param_int(rq, "id")))) {
        cf_abort(rq, 500);
        return;
    }
    cf_redirect(rq, 302, cf_url_for(rq, "blog.index", NULL));
}

void flaskr_blog_init(cf_app *app)
{
    cf_route_set_name(cf_route(app, "GET", "/", index_view), "blog.index");
    cf_route *r = cf_route(app, "GET,POST", "/create", create_view);
    cf_route_set_name(r, "blog.create");
    cf_route_use(r, login_required);
    r = cf_route(app, "GET,POST", "/<int:id>/update", update_view);
    cf_route_set_name(r, "blog.update");
    cf_route_use(r, login_required);
    r = cf_route(app, "POST", "/<int:id>/delete", delete_view);
    cf_route_set_name(r, "blog.delete");
    cf_route_use(r, login_required);
}
