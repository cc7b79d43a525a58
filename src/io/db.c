/*
 * db.c — the database front end: DATABASE_URL parsing and options, the
 * public query and transaction calls, the per-request state, and reading
 * results (cursor, typed getters, JSON). The backends (db_sqlite.c,
 * db_pg.c) run the statements; see db.h for how the pieces fit.
 *
 * A handler's view: cf_db_query starts a statement and awaits it; the
 * rows it returns live in the request. Errors are values: NULL with the
 * code in cf_db_error(rq) and the message in cf_errmsg(rq).
 */
#include "io/db.h"

#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTX_KEY "cf.db"

static const db_backend *backend_of(const cf_db *db)
{
    if (!db)
        return NULL;
    return db->kind == DB_SQLITE ? &cf_db_sqlite_backend
           : db->kind == DB_PG   ? &cf_db_pg_backend
                                 : NULL;
}

/* ---- set-up ------------------------------------------------------------- */

static void db_free(void *p);
static void db_request_crashed(cf_req *rq, void *state);

/* How the database plugs into the app: its state goes with the app, and a
 * request that crashed gives its connections back. */
const cf_service cf__db_service = {
    .name = "database",
    .request_crashed = db_request_crashed,
    .free = db_free,
};

cf_db *cf__db_of(const cf_app *app) { return cf_app_service_state(app, &cf__db_service); }

static cf_db *db_config(cf_app *app)
{
    if (!cf__db_of(app)) {
        static _Atomic uint64_t next_uid = 1; /* identity only, never reused */
        cf_db *db = calloc(1, sizeof *db);
        if (!db)
            cf_setup_fail("out of memory");
        db->uid = atomic_fetch_add(&next_uid, 1);
        db->pool_size = 10;
        db->connect_timeout_ms = 10000;
        db->busy_timeout_ms = 5000;
        db->stmt_cache = 64;
        if (cf_app_attach_service(app, &cf__db_service, db) != 0)
            cf_setup_fail("too many I/O modules attached to the app");
    }
    return cf__db_of(app);
}

static void db_free(void *p)
{
    cf_db *db = p;
    if (!db)
        return;
    const db_backend *be = backend_of(db);
    if (be)
        be->free(db);
    free(db->display);
    free(db);
}

int cf_db_set(cf_app *app, cf_db_option option, int64_t value)
{
    if (!app || value < 0)
        return CF_EINVAL;
    cf_db *db = db_config(app);
    switch (option) {
    case CF_DB_POOL_SIZE:
        if (value < 1 || value > 10000)
            return CF_EINVAL;
        db->pool_size = value;
        return 0;
    case CF_DB_CONNECT_TIMEOUT:
        db->connect_timeout_ms = value ? value : 1;
        return 0;
    case CF_DB_BUSY_TIMEOUT:
        if (value > INT32_MAX)
            return CF_EINVAL;
        db->busy_timeout_ms = value;
        return 0;
    case CF_DB_STMT_CACHE:
        if (value > 100000)
            return CF_EINVAL;
        db->stmt_cache = value;
        return 0;
    }
    return CF_EINVAL;
}

/* The URL for messages: scheme://user:***@host/... */
static char *mask_url(const char *url)
{
    char *out = strdup(url);
    if (!out)
        cf_setup_fail("out of memory");
    char *p = strstr(out, "://");
    if (!p)
        return out;
    p += 3;
    char *at = strchr(p, '@');
    char *slash = strchr(p, '/');
    if (!at || (slash && slash < at))
        return out;
    char *colon = memchr(p, ':', (size_t)(at - p));
    if (!colon)
        return out;
    size_t tail = strlen(at);
    memcpy(colon + 1, "***", 3);
    memmove(colon + 4, at, tail + 1);
    return out;
}

int cf_db_open(cf_app *app, const char *url)
{
    if (!app)
        return CF_EINVAL;
    const char *from = url ? "the database URL" : "DATABASE_URL";
    if (!url)
        url = getenv("DATABASE_URL");
    if (!url || !*url) {
        fprintf(stderr, "carafe: %s is not set; examples: sqlite:///app.db, "
                        "sqlite:////var/lib/app/app.db, sqlite://:memory:, "
                        "postgresql://user:password@localhost:5432/app\n", from);
        return CF_EDBURL;
    }
    cf_db *db = db_config(app);
    const db_backend *old = backend_of(db);
    if (old) {
        old->free(db);
        db->be = NULL;
        db->kind = DB_NONE;
    }
    free(db->display);
    db->display = mask_url(url);

    const db_backend *be;
    const char *target;
    db_kind kind;
    if (strncmp(url, "sqlite:", 7) == 0) {
        if (strncmp(url, "sqlite://", 9) != 0) {
            fprintf(stderr, "carafe: %s \"%s\" is malformed: use sqlite:///relative.db, "
                            "sqlite:////absolute/path.db or sqlite://:memory:\n", from, db->display);
            return CF_EDBURL;
        }
        be = &cf_db_sqlite_backend;
        kind = DB_SQLITE;
        target = url + 9;
    } else if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0) {
        be = &cf_db_pg_backend;
        kind = DB_PG;
        target = url;
    } else {
        const char *colon = strstr(url, "://");
        fprintf(stderr, "carafe: %s \"%s\" is not supported: %s (use sqlite:///file.db or "
                        "postgresql://...)\n", from, db->display,
                colon ? "unknown scheme" : "not a URL");
        return CF_EDBURL;
    }
    int rc = be->open(db, target);
    if (rc != 0)
        return rc;
    db->kind = kind;
    return 0;
}

int cf_db_exec_script(cf_app *app, const char *sql)
{
    if (!app || !sql)
        return CF_EINVAL;
    const db_backend *be = backend_of(cf__db_of(app));
    if (!be) {
        fprintf(stderr, "carafe: cf_db_exec_script before cf_db_open\n");
        return CF_EINVAL;
    }
    if (cf_task_current()) {
        fprintf(stderr, "carafe: cf_db_exec_script blocks: call it at start-up, not in a handler\n");
        return CF_EPERM;
    }
    return be->exec_script(cf__db_of(app), sql);
}

const char *cf_db_backend(const cf_app *app)
{
    const db_backend *be = app ? backend_of(cf__db_of(app)) : NULL;
    return be ? be->name : NULL;
}

/* ---- per-request state ------------------------------------------------------ */

static void ctx_end(void *p)
{
    db_ctx *ctx = p;
    const db_backend *be = backend_of(ctx->db);
    if (be)
        be->request_end(ctx);
}

static void db_request_crashed(cf_req *rq, void *state)
{
    (void)state;
    db_ctx *ctx = cf_g_get(rq, CTX_KEY);
    const db_backend *be = ctx ? backend_of(ctx->db) : NULL;
    if (!be || ctx->abandoned)
        return;
    ctx->abandoned = true;
    be->abandon(ctx);
}

static db_ctx *ctx_get(cf_req *rq, bool create)
{
    db_ctx *ctx = cf_g_get(rq, CTX_KEY);
    if (ctx || !create)
        return ctx;
    ctx = cf_alloc(rq, sizeof *ctx);
    memset(ctx, 0, sizeof *ctx);
    ctx->rq = rq;
    cf_db *db = cf__db_of(rq->app);
    ctx->db = db && db->kind ? db : NULL;
    cf_g_set(rq, CTX_KEY, ctx);
    cf_defer(rq, ctx_end, ctx);
    return ctx;
}

const char *cf_db_copy_msg(cf_req *rq, const char *prefix, const char *msg)
{
    if (!msg)
        msg = "";
    size_t pl = prefix ? strlen(prefix) : 0, ml = strlen(msg);
    while (ml && (msg[ml - 1] == '\n' || msg[ml - 1] == ' '))
        ml--; /* libpq ends its messages with a newline */
    char *s = cf_alloc(rq, pl + ml + 1);
    if (pl)
        memcpy(s, prefix, pl);
    memcpy(s + pl, msg, ml);
    s[pl + ml] = 0;
    return s;
}

/* ---- statements ------------------------------------------------------------- */

static void q_cancel(cf_waitable *w)
{
    cf_dbq *q = (cf_dbq *)w;
    if (q->finished)
        return;
    q->abandoned = true;
    if (q->started) {
        const db_backend *be = backend_of(q->ctx->db);
        be->cancel(q); /* may finish q right here */
    }
    cf_waitable_complete(w, CF_ECANCELED);
}

void cf_db_txn_update(cf_dbq *q, int err)
{
    db_ctx *ctx = q->ctx;
    switch (q->kind) {
    case OP_BEGIN:
        ctx->txn = err ? TXN_NONE : TXN_OPEN;
        break;
    case OP_COMMIT:
    case OP_ROLLBACK:
        ctx->txn = TXN_NONE;
        break;
    default:
        break;
    }
}

void cf_db_finish(cf_dbq *q, int err, const char *errmsg)
{
    if (q->finished)
        return;
    q->finished = true;
    q->err = err;
    q->errmsg = err ? (errmsg ? errmsg : cf_strerror(err)) : NULL;
    if (err)
        q->rows = NULL;
    cf_waitable_complete(&q->w, err);
    if (q->started) {
        q->started = false;
        q->ctx->inflight--;
        cf_scope_unref(cf__req_scope(q->ctx->rq));
    }
}

/* A statement that fails before reaching a backend. */
static cf_dbq *fail_now(cf_dbq *q, int err, const char *msg)
{
    q->finished = true;
    q->err = err;
    q->errmsg = err ? (msg ? msg : cf_strerror(err)) : NULL;
    cf_waitable_complete(&q->w, err);
    return q;
}

static cf_dbq *new_op(cf_req *rq, int kind)
{
    const db_backend *be = backend_of(cf__db_of(rq->app));
    size_t size = be ? be->op_size : sizeof(cf_dbq);
    cf_dbq *q = cf_alloc(rq, size);
    memset(q, 0, size);
    cf_waitable_init(&q->w, q_cancel);
    q->kind = kind;
    return q;
}

static cf_dbq *submit(cf_dbq *q)
{
    q->started = true;
    q->ctx->inflight++;
    cf_scope_ref(cf__req_scope(q->ctx->rq));
    backend_of(q->ctx->db)->start(q);
    return q;
}

/* Checks shared by every call; NULL when the call may go on. */
static const char *refusal(cf_req *rq, int *err)
{
    if (!cf_on_loop_thread()) {
        *err = CF_EPERM;
        return "database calls are not available in threaded routes";
    }
    if (!backend_of(cf__db_of(rq->app))) {
        *err = CF_EINVAL;
        return "no database: call cf_db_open at start-up";
    }
    return NULL;
}

cf_dbq *cf_db_start_n(cf_req *rq, const char *sql, const cf_value *params, size_t n)
{
    cf_dbq *q = new_op(rq, OP_QUERY);
    int err = 0;
    const char *why = refusal(rq, &err);
    if (why)
        return fail_now(q, err, why);
    if (!sql || (n && !params))
        return fail_now(q, CF_EINVAL, "cf_db_query: no SQL, or parameters missing");
    cf_task *t = cf_task_current();
    if (t && t->cancelled && !t->shielded) /* nobody will read the result */
        return fail_now(q, CF_ECANCELED, NULL);
    db_ctx *ctx = ctx_get(rq, true);
    q->ctx = ctx;
    if (ctx->abandoned)
        return fail_now(q, CF_EFAIL, "a task of this request crashed");
    if (ctx->txn_lost)
        return fail_now(q, CF_EDBCONN, "the connection of this transaction was lost; roll it back");
    q->sql = cf_strdup(rq, sql);
    q->n = n;
    if (n) {
        q->params = cf_alloc(rq, n * sizeof *q->params);
        for (size_t i = 0; i < n; i++) {
            cf_value v = params[i];
            if (v.type == CF_V_TEXT && v.s) {
                v.s = cf_strdup(rq, v.s);
            } else if (v.type == CF_V_BLOB) {
                char *b = cf_alloc(rq, v.len ? v.len : 1);
                if (v.len)
                    memcpy(b, v.s, v.len);
                v.s = b;
            } else if (v.type == CF_V_TEXT) {
                v.type = CF_V_NULL;
            } else if ((unsigned)v.type > CF_V_BLOB) {
                return fail_now(q, CF_EINVAL, "a query parameter has an unknown type");
            }
            q->params[i] = v;
        }
    }
    return submit(q);
}

/* The outcome of an awaited call, recorded for cf_db_error / cf_errmsg. */
static int settle(cf_req *rq, cf_dbq *q, int rc)
{
    db_ctx *ctx = ctx_get(rq, true);
    if (rc == 0 && q->err == 0) {
        if (ctx)
            ctx->last_err = 0;
        return 0;
    }
    if (rc == 0)
        rc = q->err;
    const char *msg = (rc == q->err && q->errmsg) ? q->errmsg : cf_strerror(rc);
    if (ctx)
        ctx->last_err = rc;
    rq->errmsg = msg;
    return rc;
}

cf_rows *cf_db_query_n(cf_req *rq, const char *sql, const cf_value *params, size_t n)
{
    cf_dbq *q = cf_db_start_n(rq, sql, params, n);
    int rc = cf_await(rq, q, -1);
    if (settle(rq, q, rc) != 0)
        return NULL;
    return q->rows;
}

int cf_db_error(cf_req *rq)
{
    db_ctx *ctx = ctx_get(rq, false);
    return ctx ? ctx->last_err : 0;
}

cf_rows *cf_dbq_rows(cf_dbq *q) { return q && q->finished && !q->err ? q->rows : NULL; }

int cf_dbq_error(cf_dbq *q)
{
    if (!q)
        return CF_EINVAL;
    if (q->finished)
        return q->err;
    return q->w.done ? q->w.result : CF_EINVAL;
}

const char *cf_dbq_errmsg(cf_dbq *q)
{
    int err = cf_dbq_error(q);
    if (!err)
        return "";
    return q->finished && q->errmsg ? q->errmsg : cf_strerror(err);
}

/* ---- transactions ------------------------------------------------------------ */

static int txn_call(cf_req *rq, int kind)
{
    cf_dbq *q = new_op(rq, kind);
    int err = 0;
    const char *why = refusal(rq, &err);
    db_ctx *ctx = why ? NULL : ctx_get(rq, true);
    q->ctx = ctx;
    cf_task *t = cf_task_current();
    if (why) {
        fail_now(q, err, why);
    } else if (ctx->abandoned) {
        fail_now(q, CF_EFAIL, "a task of this request crashed");
    } else if (t && t->cancelled && !t->shielded) {
        /* Not even a COMMIT: the caller would not hear that it happened
         * (the request's end rolls back what is open). */
        fail_now(q, CF_ECANCELED, NULL);
    } else if (kind == OP_BEGIN) {
        ctx->txn_lost = false;
        if (ctx->txn != TXN_NONE)
            fail_now(q, CF_EINVAL, "already in a transaction (no nesting)");
        else
            ctx->txn = TXN_BEGINNING;
    } else if (ctx->txn_lost) {
        ctx->txn_lost = false;
        if (kind == OP_COMMIT)
            fail_now(q, CF_EDBCONN, "the connection was lost during the transaction; "
                                    "nothing of it was committed");
        else
            fail_now(q, 0, NULL);
    } else if (ctx->txn != TXN_OPEN) {
        fail_now(q, CF_EINVAL, ctx->txn == TXN_NONE ? "not in a transaction"
                                                    : "the transaction is still starting or ending");
    } else {
        ctx->txn = TXN_ENDING;
    }
    if (!q->finished)
        submit(q);
    int rc = cf_await(rq, q, -1);
    return settle(rq, q, rc);
}

int cf_db_begin(cf_req *rq) { return txn_call(rq, OP_BEGIN); }
int cf_db_commit(cf_req *rq) { return txn_call(rq, OP_COMMIT); }
int cf_db_rollback(cf_req *rq) { return txn_call(rq, OP_ROLLBACK); }

/* ---- rows ------------------------------------------------------------------ */

static const db_cell *cell(cf_rows *r, size_t col)
{
    if (!r || col >= r->ncols || r->nrows == 0)
        return NULL;
    size_t row = r->cur ? r->cur - 1 : 0;
    if (row >= r->nrows)
        return NULL;
    return &r->cells[row * r->ncols + col];
}

bool cf_rows_next(cf_rows *r)
{
    if (!r || r->cur > r->nrows)
        return false;
    r->cur++;
    return r->cur <= r->nrows;
}

size_t cf_rows_count(cf_rows *r) { return r ? r->nrows : 0; }
size_t cf_rows_columns(cf_rows *r) { return r ? r->ncols : 0; }
const char *cf_rows_name(cf_rows *r, size_t col) { return r && col < r->ncols ? r->names[col] : NULL; }
int64_t cf_rows_affected(cf_rows *r) { return r ? r->affected : 0; }
int64_t cf_rows_last_id(cf_rows *r) { return r ? r->last_id : 0; }

long cf_rows_index(cf_rows *r, const char *name)
{
    for (size_t i = 0; r && name && i < r->ncols; i++)
        if (strcmp(r->names[i], name) == 0)
            return (long)i;
    return -1;
}

bool cf_row_is_null(cf_rows *r, size_t col)
{
    const db_cell *c = cell(r, col);
    return !c || c->type == CELL_NULL;
}

int64_t cf_row_int(cf_rows *r, size_t col)
{
    const db_cell *c = cell(r, col);
    if (!c)
        return 0;
    switch (c->type) {
    case CELL_INT:
    case CELL_BOOL:
        return c->v.i;
    case CELL_REAL:
        if (isnan(c->v.d))
            return 0;
        if (c->v.d >= 9.2233720368547758e18)
            return INT64_MAX;
        if (c->v.d <= -9.2233720368547758e18)
            return INT64_MIN;
        return (int64_t)c->v.d;
    case CELL_TEXT:
    case CELL_JSON:
        return strtoll(c->v.s, NULL, 10);
    default:
        return 0;
    }
}

double cf_row_real(cf_rows *r, size_t col)
{
    const db_cell *c = cell(r, col);
    if (!c)
        return 0.0;
    switch (c->type) {
    case CELL_INT:
    case CELL_BOOL:
        return (double)c->v.i;
    case CELL_REAL:
        return c->v.d;
    case CELL_TEXT:
    case CELL_JSON:
        return strtod(c->v.s, NULL);
    default:
        return 0.0;
    }
}

const char *cf_row_text(cf_rows *r, size_t col)
{
    const db_cell *c = cell(r, col);
    if (!c)
        return NULL;
    switch (c->type) {
    case CELL_INT:
        return cf_sprintf(r->rq, "%" PRId64, c->v.i);
    case CELL_BOOL:
        return c->v.i ? "true" : "false";
    case CELL_REAL:
        return cf_sprintf(r->rq, "%.17g", c->v.d);
    case CELL_TEXT:
    case CELL_BLOB:
    case CELL_JSON:
        return c->v.s;
    default:
        return NULL;
    }
}

const void *cf_row_blob(cf_rows *r, size_t col, size_t *len)
{
    const db_cell *c = cell(r, col);
    const char *p = NULL;
    size_t n = 0;
    if (c && (c->type == CELL_TEXT || c->type == CELL_BLOB || c->type == CELL_JSON)) {
        p = c->v.s;
        n = c->len;
    } else if (c && c->type != CELL_NULL) { /* a number: its text */
        p = cf_row_text(r, col);
        n = strlen(p);
    }
    if (len)
        *len = n;
    return p;
}

static json_t *base64(const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t outlen = 4 * ((n + 2) / 3);
    char *out = malloc(outlen + 1);
    if (!out)
        return NULL;
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    json_t *s = json_stringn_nocheck(out, o);
    free(out);
    return s;
}

static json_t *cell_json(const db_cell *c)
{
    switch (c->type) {
    case CELL_INT:
        return json_integer(c->v.i);
    case CELL_BOOL:
        return json_boolean(c->v.i);
    case CELL_REAL: {
        json_t *j = json_real(c->v.d); /* NULL for NaN and infinities */
        return j ? j : json_null();
    }
    case CELL_TEXT: {
        /* Text that is not UTF-8 (SQLite does not check) cannot be a JSON
         * string: it goes out as base64, like a blob. */
        json_t *j = json_stringn(c->v.s, c->len);
        return j ? j : base64((const unsigned char *)c->v.s, c->len);
    }
    case CELL_BLOB:
        return base64((const unsigned char *)c->v.s, c->len);
    case CELL_JSON: {
        json_t *j = json_loadb(c->v.s, c->len, JSON_DECODE_ANY, NULL);
        return j ? j : json_stringn(c->v.s, c->len);
    }
    default:
        return json_null();
    }
}

static json_t *row_object_at(cf_rows *r, size_t row)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    const db_cell *cells = &r->cells[row * r->ncols];
    for (size_t i = 0; i < r->ncols; i++) {
        json_t *v = cell_json(&cells[i]);
        json_object_set_new(o, r->names[i], v ? v : json_null());
    }
    return o;
}

json_t *cf_row_object(cf_rows *r)
{
    if (!r || r->nrows == 0)
        return json_null();
    size_t row = r->cur ? r->cur - 1 : 0;
    if (row >= r->nrows)
        return json_null();
    return row_object_at(r, row);
}

json_t *cf_rows_json(cf_rows *r)
{
    json_t *a = json_array();
    for (size_t i = 0; a && r && i < r->nrows; i++)
        json_array_append_new(a, row_object_at(r, i));
    return a;
}
