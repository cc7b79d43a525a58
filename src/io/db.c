/*
 * db.c — the database front end: DATABASE_URL parsing and options, the
 * public query and transaction calls and the per-request state (reading
 * results is db_rows.c). The backends (db_sqlite.c, db_pg.c) run the
 * statements; see db.h for how the pieces fit.
 *
 * A handler's view: cf_db_query starts a statement and awaits it; the
 * rows it returns live in the request. Errors are values: NULL with the
 * code in cf_db_error(rq) and the message in cf_errmsg(rq).
 */
#include "io/db.h"

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

static int db_prepare(cf_app *app, void *state);
static void db_free(void *p);
static void db_request_crashed(cf_req *rq, void *state);

/* How the database plugs into the app: it connects when the app is about
 * to be served, its state goes with the app, and a request that crashed
 * gives its connections back. */
const cf_service cf__db_service = {
    .name = "database",
    .prepare = db_prepare,
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
        db->wal_limit = 16 << 20;
        db->loop_read_steps = 20000;
        if (cf_app_attach_service(app, &cf__db_service, db) != 0)
            cf_setup_fail("too many I/O modules attached to the app");
    }
    return cf__db_of(app);
}

static void drop_scripts(cf_db *db)
{
    for (size_t i = 0; i < db->nscripts; i++)
        free(db->scripts[i]);
    free(db->scripts);
    db->scripts = NULL;
    db->nscripts = 0;
}

/* Forget the database opened before (cf_db_open again replaces it). */
static void db_reset(cf_db *db)
{
    const db_backend *be = backend_of(db);
    if (be)
        be->free(db);
    db->be = NULL;
    db->kind = DB_NONE;
    db->url_unset = false;
    db->ready = false;
    drop_scripts(db);
    free(db->display);
    db->display = NULL;
}

static void db_free(void *p)
{
    cf_db *db = p;
    if (!db)
        return;
    db_reset(db);
    free(db);
}

static const char url_examples[] =
    "examples: sqlite:///app.db, sqlite:////var/lib/app/app.db, sqlite://:memory:, "
    "postgresql://user:password@localhost:5432/app";

/* The app is about to be served: open the database, run the scripts set-up
 * recorded. Once: a second test client of the same app finds it ready. */
static int db_prepare(cf_app *app, void *state)
{
    (void)app;
    cf_db *db = state;
    if (db->ready)
        return 0;
    if (db->url_unset) {
        fprintf(stderr, "carafe: DATABASE_URL is not set; %s\n", url_examples);
        return CF_EDBURL;
    }
    const db_backend *be = backend_of(db);
    if (!be)
        return 0;
    int rc = be->connect ? be->connect(db) : 0;
    for (size_t i = 0; rc == 0 && i < db->nscripts; i++)
        rc = be->exec_script(db, db->scripts[i]);
    if (rc != 0)
        return rc;
    drop_scripts(db);
    db->ready = true;
    return 0;
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
    case CF_DB_WAL_LIMIT:
        if (value < (1 << 16))
            return CF_EINVAL;
        db->wal_limit = value;
        return 0;
    case CF_DB_LOOP_READ_STEPS:
        if (value > INT32_MAX)
            return CF_EINVAL;
        db->loop_read_steps = value;
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
    bool from_env = !url;
    const char *from = from_env ? "DATABASE_URL" : "the database URL";
    if (from_env)
        url = getenv("DATABASE_URL");
    cf_db *db = db_config(app);
    db_reset(db);
    if (!url || !*url) {
        if (from_env) { /* reported when the app is served: --help needs no database */
            db->url_unset = true;
            return 0;
        }
        fprintf(stderr, "carafe: %s is empty; %s\n", from, url_examples);
        return CF_EDBURL;
    }
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
    cf_db *db = cf__db_of(app);
    const db_backend *be = backend_of(db);
    if (!be && !(db && db->url_unset)) {
        fprintf(stderr, "carafe: cf_db_exec_script before cf_db_open\n");
        return CF_EINVAL;
    }
    if (cf_task_current()) {
        fprintf(stderr, "carafe: cf_db_exec_script blocks: call it at start-up, not in a handler\n");
        return CF_EPERM;
    }
    if (db->ready)
        return be->exec_script(db, sql);
    char **more = realloc(db->scripts, (db->nscripts + 1) * sizeof *more);
    char *copy = strdup(sql);
    if (!more || !copy)
        cf_setup_fail("out of memory");
    db->scripts = more;
    db->scripts[db->nscripts++] = copy;
    return 0;
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
