/*
 * db_sqlite_stmt.c — the SQLite backend's statements, on a pool thread:
 * the per-connection cache of prepared statements (LRU, with the $N to
 * slot map SQLite needs), binding, stepping into rows written to the
 * statement's own arena, the progress handler that stops a cancelled
 * statement, and the uv_work_t body that runs one (db_sqlite.c has the
 * design, the connections and the lanes on the loop).
 */
#include "io/db.h"
#include "io/db_sqlite_int.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- statements (pool thread) ---------------------------------------------------- */

static uint64_t hash_sql(const char *s)
{
    uint64_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static void stmt_drop(sq_stmt *e)
{
    sqlite3_finalize(e->st);
    free(e->sql);
    free(e->map);
    memset(e, 0, sizeof *e);
}

static bool only_space(const char *p)
{
    for (; *p; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != ';')
            return false;
    return true;
}

/* Prepare `sql` into *e: one statement, $N placeholders mapped. */
static bool stmt_prepare(sq_op *op, sq_conn *c, const char *sql, uint64_t hash, sq_stmt *e)
{
    memset(e, 0, sizeof *e);
    const char *tail = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v3(c->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, &tail);
    if (rc != SQLITE_OK) {
        op->busy = (sqlite3_extended_errcode(c->h) & 0xff) == SQLITE_BUSY; /* schema locked */
        cf__sq_op_fail(op, cf__sq_map_rc(sqlite3_extended_errcode(c->h), true), sqlite3_errmsg(c->h));
        return false;
    }
    if (!st) {
        cf__sq_op_fail(op, CF_EINVAL, "empty SQL statement");
        return false;
    }
    if (tail && !only_space(tail)) {
        /* Only comments may follow; a second statement is refused. */
        sqlite3_stmt *more = NULL;
        rc = sqlite3_prepare_v2(c->h, tail, -1, &more, NULL);
        sqlite3_finalize(more);
        if (rc != SQLITE_OK || more) {
            sqlite3_finalize(st);
            cf__sq_op_fail(op, CF_EDBSYNTAX, "one statement per query (use cf_db_exec_script for scripts)");
            return false;
        }
    }
    int n = sqlite3_bind_parameter_count(st);
    int *map = calloc((size_t)n + 1, sizeof *map);
    char *copy = strdup(sql);
    if (!map || !copy) {
        free(map);
        free(copy);
        sqlite3_finalize(st);
        cf__sq_op_fail(op, CF_ENOMEM, "out of memory");
        return false;
    }
    int maxp = 0;
    for (int j = 1; j <= n; j++) {
        const char *name = sqlite3_bind_parameter_name(st, j);
        long k = j; /* a bare "?" is positional */
        if (name) {
            char *end = NULL;
            k = (name[0] == '$' || name[0] == '?') ? strtol(name + 1, &end, 10) : 0;
            if (!end || *end || end == name + 1 || k < 1 || k > 32766) {
                char m[160];
                snprintf(m, sizeof m, "parameter %s: use $1, $2, ... placeholders", name);
                free(map);
                free(copy);
                sqlite3_finalize(st);
                cf__sq_op_fail(op, CF_EINVAL, m);
                return false;
            }
        }
        map[j] = (int)k;
        if (k > maxp)
            maxp = (int)k;
    }
    e->hash = hash;
    e->sql = copy;
    e->st = st;
    e->map = map;
    e->nslots = n;
    e->maxp = maxp;
    return true;
}

/* The cached statement for `sql`, or one prepared into *tmp (not cached:
 * the caller drops it). NULL on failure (op->err set). */
static sq_stmt *stmt_get(sq_op *op, sq_conn *c, const char *sql, sq_stmt *tmp)
{
    uint64_t hash = hash_sql(sql);
    for (size_t i = 0; i < c->ncache; i++) {
        sq_stmt *e = &c->cache[i];
        if (e->hash == hash && strcmp(e->sql, sql) == 0) {
            e->used = ++c->tick;
            return e;
        }
    }
    size_t max = (size_t)op->s->db->stmt_cache;
    if (!stmt_prepare(op, c, sql, hash, tmp))
        return NULL;
    if (max == 0)
        return tmp;
    if (!c->cache) {
        c->cache = calloc(max, sizeof *c->cache);
        if (!c->cache)
            return tmp;
    }
    sq_stmt *slot;
    if (c->ncache < max) {
        slot = &c->cache[c->ncache++];
    } else {
        slot = &c->cache[0];
        for (size_t i = 1; i < c->ncache; i++)
            if (c->cache[i].used < slot->used)
                slot = &c->cache[i];
        stmt_drop(slot);
    }
    *slot = *tmp;
    slot->used = ++c->tick;
    return slot;
}

static int bind_value(sqlite3_stmt *st, int slot, const cf_value *v)
{
    switch (v->type) {
    case CF_V_INT:
        return sqlite3_bind_int64(st, slot, v->i);
    case CF_V_REAL:
        return sqlite3_bind_double(st, slot, v->d);
    case CF_V_TEXT:
        return sqlite3_bind_text(st, slot, v->s, -1, SQLITE_STATIC);
    case CF_V_BLOB:
        return sqlite3_bind_blob64(st, slot, v->s, v->len, SQLITE_STATIC);
    default:
        return sqlite3_bind_null(st, slot);
    }
}

static bool add_row(sq_op *op, cf_rows *r, sqlite3_stmt *st)
{
    size_t need = (r->nrows + 1) * r->ncols;
    if (need > op->cells_cap) {
        size_t cap = op->cells_cap ? op->cells_cap * 2 : (r->ncols < 4 ? 4 : r->ncols);
        while (cap < need)
            cap *= 2;
        db_cell *cells = cf_arena_realloc(&op->priv, r->cells, op->cells_cap * sizeof *cells,
                                          cap * sizeof *cells);
        if (!cells)
            return false;
        r->cells = cells;
        op->cells_cap = cap;
    }
    db_cell *row = &r->cells[r->nrows * r->ncols];
    for (size_t i = 0; i < r->ncols; i++) {
        db_cell *c = &row[i];
        c->len = 0;
        switch (sqlite3_column_type(st, (int)i)) {
        case SQLITE_INTEGER:
            c->type = CELL_INT;
            c->v.i = sqlite3_column_int64(st, (int)i);
            break;
        case SQLITE_FLOAT:
            c->type = CELL_REAL;
            c->v.d = sqlite3_column_double(st, (int)i);
            break;
        case SQLITE_TEXT:
        case SQLITE_BLOB: {
            bool text = sqlite3_column_type(st, (int)i) == SQLITE_TEXT;
            const void *p = text ? (const void *)sqlite3_column_text(st, (int)i)
                                 : sqlite3_column_blob(st, (int)i);
            size_t n = (size_t)sqlite3_column_bytes(st, (int)i);
            char *s = cf_arena_alloc(&op->priv, n + 1);
            if (!s)
                return false;
            if (n)
                memcpy(s, p, n);
            s[n] = 0;
            c->type = text ? CELL_TEXT : CELL_BLOB;
            c->v.s = s;
            c->len = n;
            break;
        }
        default:
            c->type = CELL_NULL;
            break;
        }
    }
    r->nrows++;
    return true;
}

/* Run one statement on c; the outcome goes to op (err/msg, q.rows). */
void cf__sq_run(sq_op *op, sq_conn *c, const char *sql, const cf_value *params, size_t n)
{
    sq_stmt tmp;
    sq_stmt *e = stmt_get(op, c, sql, &tmp);
    if (!e)
        return;
    sqlite3 *h = c->h;
    sqlite3_stmt *st = e->st;
    cf_rows *r = NULL;
    if (op->on_loop && !(sqlite3_stmt_readonly(st) && sqlite3_column_count(st) > 0)) {
        /* BEGIN, ATTACH and the like are "read-only" too, but have no rows. */
        op->not_read = true;
        goto out;
    }
    if ((size_t)e->maxp != n) {
        char m[200];
        snprintf(m, sizeof m, "the statement uses %d parameter(s) ($1..$%d) but %zu were given",
                 e->maxp, e->maxp, n);
        cf__sq_op_fail(op, CF_EINVAL, m);
        goto out;
    }
    for (int j = 1; j <= e->nslots; j++) {
        if (bind_value(st, j, &params[e->map[j] - 1]) != SQLITE_OK) {
            cf__sq_op_fail(op, cf__sq_map_rc(sqlite3_extended_errcode(h), false), sqlite3_errmsg(h));
            goto out;
        }
    }
    r = cf_arena_alloc(&op->priv, sizeof *r);
    if (!r) {
        cf__sq_op_fail(op, CF_ENOMEM, "out of memory");
        goto out;
    }
    memset(r, 0, sizeof *r);
    r->rq = op->q.ctx->rq;
    r->ncols = (size_t)sqlite3_column_count(st);
    if (r->ncols) {
        r->names = cf_arena_alloc(&op->priv, r->ncols * sizeof *r->names);
        for (size_t i = 0; r->names && i < r->ncols; i++) {
            const char *nm = sqlite3_column_name(st, (int)i);
            r->names[i] = cf__sq_priv_strdup(op, nm ? nm : "?");
        }
        if (!r->names) {
            cf__sq_op_fail(op, CF_ENOMEM, "out of memory");
            goto out;
        }
    }
    sqlite3_set_last_insert_rowid(h, 0);
    int64_t before = sqlite3_total_changes64(h);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!add_row(op, r, st)) {
            cf__sq_op_fail(op, CF_ENOMEM, "out of memory for the result");
            goto out;
        }
    }
    if (rc != SQLITE_DONE) {
        op->busy = (sqlite3_extended_errcode(h) & 0xff) == SQLITE_BUSY;
        cf__sq_op_fail(op, cf__sq_map_rc(sqlite3_extended_errcode(h), false), sqlite3_errmsg(h));
        goto out;
    }
    /* changes() keeps the count of the last INSERT/UPDATE/DELETE: trust it
     * only if this statement changed something. */
    r->affected = sqlite3_total_changes64(h) != before ? sqlite3_changes64(h) : 0;
    r->last_id = sqlite3_last_insert_rowid(h);
    op->q.rows = r;
out:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (e == &tmp)
        stmt_drop(&tmp);
}

static int on_progress(void *p)
{
    sq_op *op = p;
    if (op->on_loop) { /* called once the budget of steps is spent */
        op->over_budget = true;
        return 1;
    }
    return atomic_load_explicit(&op->stop, memory_order_relaxed);
}

static void clear_outcome(sq_op *op)
{
    op->busy = false;
    op->err = 0;
    op->msg = NULL;
    op->q.rows = NULL;
}

bool cf__sq_try_on_loop(sq_op *op)
{
    sq_conn *c = cf__sq_tls_conn(op->s, op->uid);
    if (!c)
        return false;
    if (!c->h) {
        char m[512];
        if (cf__sq_conn_open(op->s, c, m, sizeof m) != 0)
            return false; /* the pool tries again and reports it */
        sqlite3_busy_timeout(c->h, 0); /* locked: the pool waits, not the loop */
    }
    clear_outcome(op);
    op->on_loop = true;
    op->not_read = op->over_budget = false;
    sqlite3_progress_handler(c->h, (int)op->s->db->loop_read_steps, on_progress, op);
    cf__sq_run(op, c, op->q.sql, op->q.params, op->q.n);
    sqlite3_progress_handler(c->h, 0, NULL, NULL);
    op->on_loop = false;
    if (!op->not_read && !op->over_budget && !op->busy)
        return true;
    /* Start over on the pool, from an empty result. */
    clear_outcome(op);
    op->cells_cap = 0;
    cf_arena_reset(&op->priv);
    return false;
}

void cf__sq_sq_work(uv_work_t *w)
{
    sq_op *op = w->data;
    cf_dbq *q = &op->q;
    op->busy = false;
    op->err = 0;
    op->msg = NULL;
    q->rows = NULL;
    if (atomic_load(&op->stop)) {
        cf__sq_op_fail(op, CF_ECANCELED, "cancelled");
        return;
    }
    sq_conn *c = op->conn ? op->conn : cf__sq_tls_conn(op->s, op->uid);
    if (!c) {
        cf__sq_op_fail(op, CF_ENOMEM, "out of memory");
        return;
    }
    if (!c->h) {
        char m[512];
        int rc = cf__sq_conn_open(op->s, c, m, sizeof m);
        if (rc) {
            cf__sq_op_fail(op, rc, m);
            return;
        }
    }
    sqlite3_progress_handler(c->h, 1000, on_progress, op);
    switch (q->kind) {
    case OP_BEGIN:
        cf__sq_run(op, c, "BEGIN IMMEDIATE", NULL, 0);
        break;
    case OP_COMMIT:
        cf__sq_run(op, c, "COMMIT", NULL, 0);
        /* Locked out: try again later, the transaction still open. Any
         * other failure (or the last try) ends it. */
        if (!sqlite3_get_autocommit(c->h) && !(op->busy && op->may_retry))
            sqlite3_exec(c->h, "ROLLBACK", NULL, NULL, NULL);
        break;
    case OP_ROLLBACK:
        cf__sq_run(op, c, "ROLLBACK", NULL, 0);
        if (op->err && sqlite3_get_autocommit(c->h)) { /* nothing left to roll back */
            op->err = 0;
            op->msg = NULL;
        }
        break;
    default:
        cf__sq_run(op, c, q->sql, q->params, q->n);
        break;
    }
    if (op->solo && !sqlite3_get_autocommit(c->h)) {
        /* A "BEGIN" sent as a query would leave the (shared) connection in
         * a transaction other requests then join. */
        sqlite3_exec(c->h, "ROLLBACK", NULL, NULL, NULL);
        if (!op->err)
            cf__sq_op_fail(op, CF_EINVAL, "a transaction was left open and rolled back: "
                                   "use cf_db_begin and cf_db_commit");
    }
    sqlite3_progress_handler(c->h, 0, NULL, NULL);
    if (sqlite3_get_autocommit(c->h)) /* not inside a transaction: it would hold the log */
        cf__sq_wal_bound(op->s, c);
}
