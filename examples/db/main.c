/*
 * examples/db — a small JSON API over a database: users with credits.
 *
 *   GET    /users               all users (jsonify(rows))
 *   POST   /users               {"name", "email", "credits"?} -> 201 the new user,
 *                               400 on missing fields, 409 if the email is taken
 *   GET    /users/<int:id>      one user, or 404
 *   PATCH  /users/<int:id>      {"name"?, "email"?} -> the updated user, 404, 409
 *   DELETE /users/<int:id>      204, or 404
 *   POST   /transfer            {"from", "to", "amount"}: moves credits in one
 *                               transaction; 409 if "from" has too few
 *
 * The database is DATABASE_URL, by default the SQLite file example.db in the
 * current directory; the schema is created at start-up. Parameters are always
 * bound ($1, $2, ...): no SQL is built from strings.
 *
 *   ./db --port 8000
 *   curl -d '{"name":"Ada","email":"ada@example.com","credits":10}' \
 *        -H 'Content-Type: application/json' localhost:8000/users
 */
#include <carafe.h>
#include <stdlib.h>
#include <string.h>

/* A failed query as an HTTP answer: constraint violations are the client's
 * business (409/400), the rest is ours (500/503). Never the database's own
 * message: it can quote the row, other users' data included ("Failing row
 * contains ..."). cf_abort's page shows it only with --debug, which also
 * logs it. */
static void db_failed(cf_req *rq)
{
    switch (cf_db_error(rq)) {
    case CF_EUNIQUE:
        cf_json(rq, 409, "{s:s}", "error", "the email is already taken");
        break;
    case CF_EFOREIGNKEY: case CF_ENOTNULL: case CF_ECONSTRAINT: case CF_EINVAL:
        cf_json(rq, 400, "{s:s}", "error", "a value is missing or out of range");
        break;
    case CF_EDBCONN: case CF_ETIMEDOUT:
        cf_abort(rq, 503);
        break;
    default:
        cf_abort(rq, 500);
        break;
    }
}

static const char *str_field(json_t *body, const char *name)
{
    return json_string_value(json_object_get(body, name));
}

static void list_users(cf_req *rq)
{
    cf_rows *rows = cf_db_query(rq, "SELECT id, name, email, credits FROM users ORDER BY id");
    if (rows)
        cf_json_value(rq, 200, cf_rows_json(rows));
    else
        db_failed(rq);
}

static void create_user(cf_req *rq)
{
    json_t *body = cf_get_json(rq);
    if (!body) {
        cf_json(rq, 400, "{s:s}", "error", cf_errmsg(rq));
        return;
    }
    const char *name = str_field(body, "name"), *email = str_field(body, "email");
    if (!name || !email) {
        cf_json(rq, 400, "{s:s}", "error", "name and email are required");
        return;
    }
    json_t *credits = json_object_get(body, "credits");
    cf_rows *row = cf_db_query(rq, "INSERT INTO users(name, email, credits) VALUES ($1, $2, $3) "
                                   "RETURNING id, name, email, credits",
                               cf_v_text(name), cf_v_text(email),
                               cf_v_int(json_is_integer(credits) ? json_integer_value(credits) : 0));
    if (!row) {
        db_failed(rq); /* a taken email is CF_EUNIQUE: 409 */
        return;
    }
    cf_set_header(rq, "Location", cf_sprintf(rq, "/users/%lld", (long long)cf_row_int(row, 0)));
    cf_json_value(rq, 201, cf_row_object(row));
}

static void get_user(cf_req *rq)
{
    cf_rows *row = cf_db_query(rq, "SELECT id, name, email, credits FROM users WHERE id = $1",
                               cf_v_int(cf_param_int(rq, "id")));
    if (!row)
        db_failed(rq);
    else if (!cf_rows_next(row))
        cf_json(rq, 404, "{s:s}", "error", "User not found");
    else
        cf_json_value(rq, 200, cf_row_object(row));
}

static void update_user(cf_req *rq)
{
    json_t *body = cf_get_json(rq);
    if (!body) {
        cf_json(rq, 400, "{s:s}", "error", cf_errmsg(rq));
        return;
    }
    /* An absent field is a NULL parameter: COALESCE keeps the old value. */
    cf_rows *row = cf_db_query(rq, "UPDATE users SET name = COALESCE($1, name), "
                                   "email = COALESCE($2, email) WHERE id = $3 "
                                   "RETURNING id, name, email, credits",
                               cf_v_text(str_field(body, "name")), cf_v_text(str_field(body, "email")),
                               cf_v_int(cf_param_int(rq, "id")));
    if (!row)
        db_failed(rq);
    else if (!cf_rows_next(row))
        cf_json(rq, 404, "{s:s}", "error", "User not found");
    else
        cf_json_value(rq, 200, cf_row_object(row));
}

static void delete_user(cf_req *rq)
{
    cf_rows *res = cf_db_query(rq, "DELETE FROM users WHERE id = $1", cf_v_int(cf_param_int(rq, "id")));
    if (!res)
        db_failed(rq);
    else if (cf_rows_affected(res) == 0)
        cf_json(rq, 404, "{s:s}", "error", "User not found");
    else
        cf_send(rq, 204, NULL, "", 0);
}

/* Both updates or neither. Returning early without commit is enough to
 * undo: a request that ends inside a transaction is rolled back. */
static void transfer(cf_req *rq)
{
    json_t *body = cf_get_json(rq);
    json_int_t from, to, amount;
    if (!body || json_unpack(body, "{s:I,s:I,s:I}", "from", &from, "to", &to, "amount", &amount) ||
        amount <= 0 || from == to) {
        cf_json(rq, 400, "{s:s}", "error",
                "expected {\"from\": id, \"to\": another id, \"amount\": n > 0}");
        return;
    }
    if (cf_db_begin(rq) != 0) {
        db_failed(rq);
        return;
    }
    cf_rows *res = cf_db_query(rq, "UPDATE users SET credits = credits - $1 "
                                   "WHERE id = $2 AND credits >= $1",
                               cf_v_int(amount), cf_v_int(from));
    if (!res) {
        db_failed(rq);
        return;
    }
    if (cf_rows_affected(res) == 0) {
        cf_json(rq, 409, "{s:s}", "error", "unknown sender or too few credits");
        return;
    }
    res = cf_db_query(rq, "UPDATE users SET credits = credits + $1 WHERE id = $2", cf_v_int(amount),
                      cf_v_int(to));
    if (!res)
        db_failed(rq);
    else if (cf_rows_affected(res) == 0)
        cf_json(rq, 404, "{s:s}", "error", "unknown receiver"); /* rolled back */
    else if (cf_db_commit(rq) != 0)
        db_failed(rq);
    else
        cf_json(rq, 200, "{s:I,s:I,s:I}", "from", from, "to", to, "amount", amount);
}

int main(int argc, char **argv)
{
    cf_app *app = cf_app_new();
    const char *url = getenv("DATABASE_URL");
    if (cf_db_open(app, url && *url ? url : "sqlite:///example.db") != 0)
        return 2;
    /* SQLite fills in an INTEGER PRIMARY KEY (the rowid); PostgreSQL needs
     * an identity column. The schema is created when cf_run starts. */
#define SCHEMA(ID)                                                                   \
    "CREATE TABLE IF NOT EXISTS users("                                              \
    "  id " ID ","                                                                   \
    "  name TEXT NOT NULL,"                                                          \
    "  email TEXT NOT NULL UNIQUE,"                                                  \
    "  credits BIGINT NOT NULL DEFAULT 0 CHECK (credits >= 0))"
    bool pg = strcmp(cf_db_backend(app), "postgresql") == 0;
    if (cf_db_exec_script(app, pg ? SCHEMA("BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
                                  : SCHEMA("INTEGER PRIMARY KEY")) != 0)
        return 2;
    cf_route(app, "GET", "/users", list_users);
    cf_route(app, "POST", "/users", create_user);
    cf_route(app, "GET", "/users/<int:id>", get_user);
    cf_route(app, "PATCH", "/users/<int:id>", update_user);
    cf_route(app, "DELETE", "/users/<int:id>", delete_user);
    cf_route(app, "POST", "/transfer", transfer);
    int rc = cf_run(app, argc, argv);
    cf_app_free(app);
    return rc;
}
