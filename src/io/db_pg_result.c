/*
 * db_pg_result.c — the PostgreSQL backend's results: SQLSTATE to Carafe's
 * error codes, error messages, and PGresults turned into rows (bytea
 * decoded, numbers parsed once; the PGresult kept until the request ends).
 */
#include "io/db.h"
#include "io/db_pg_int.h"
#include "io/pg_hosts.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors and results ---------------------------------------------------------- */

int cf__pg_map_sqlstate(const char *s)
{
    if (!s || strlen(s) != 5)
        return CF_EDB;
    if (strcmp(s, "23505") == 0)
        return CF_EUNIQUE;
    if (strcmp(s, "23503") == 0)
        return CF_EFOREIGNKEY;
    if (strcmp(s, "23502") == 0)
        return CF_ENOTNULL;
    if (strncmp(s, "23", 2) == 0)
        return CF_ECONSTRAINT;
    if (strcmp(s, "57014") == 0) /* query_canceled: statement_timeout */
        return CF_ETIMEDOUT;
    if (strcmp(s, "42P18") == 0 || strcmp(s, "08P01") == 0) /* parameter count/types */
        return CF_EINVAL;
    if (strncmp(s, "42", 2) == 0 && strcmp(s, "42501") != 0)
        return CF_EDBSYNTAX;
    if (strncmp(s, "08", 2) == 0 || strncmp(s, "57P", 3) == 0)
        return CF_EDBCONN;
    if (strncmp(s, "22", 2) == 0) /* a value that does not fit its type */
        return CF_EINVAL;
    return CF_EDB;
}

const char *cf__pg_error_text(cf_req *rq, const PGresult *res)
{
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    if (!primary)
        return cf_db_copy_msg(rq, NULL, PQresultErrorMessage(res));
    if (detail)
        return cf_sprintf(rq, "%s (%s)", primary, detail);
    return cf_strdup(rq, primary);
}

static int hexdig(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* bytea in text form: "\x" and hex (the server's default output). */
static void bytea_cell(cf_req *rq, db_cell *cell, const char *v, size_t len)
{
    cell->type = CELL_BLOB;
    if (len >= 2 && v[0] == '\\' && v[1] == 'x') {
        size_t n = (len - 2) / 2;
        char *out = cf_alloc(rq, n + 1);
        for (size_t i = 0; i < n; i++) {
            int hi = hexdig(v[2 + 2 * i]), lo = hexdig(v[3 + 2 * i]);
            out[i] = (char)((hi < 0 ? 0 : hi) << 4 | (lo < 0 ? 0 : lo));
        }
        out[n] = 0;
        cell->v.s = out;
        cell->len = n;
        return;
    }
    size_t n = 0; /* the old "escape" format: \\ and \ooo */
    char *out = cf_alloc(rq, len + 1);
    for (size_t i = 0; i < len; i++) {
        if (v[i] == '\\' && i + 1 < len && v[i + 1] == '\\') {
            out[n++] = '\\';
            i++;
        } else if (v[i] == '\\' && i + 3 < len) {
            out[n++] = (char)((v[i + 1] - '0') * 64 + (v[i + 2] - '0') * 8 + (v[i + 3] - '0'));
            i += 3;
        } else {
            out[n++] = v[i];
        }
    }
    out[n] = 0;
    cell->v.s = out;
    cell->len = n;
}

static void clear_result(void *res) { PQclear(res); }

/* NOTICEs ("table does not exist, skipping") are not errors: not logged. */
void cf__pg_quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* The rows of `res`, which the request keeps (strings point into it). */
cf_rows *cf__pg_to_rows(cf_req *rq, PGresult *res)
{
    cf_rows *r = cf_alloc(rq, sizeof *r);
    memset(r, 0, sizeof *r);
    r->rq = rq;
    cf_defer(rq, clear_result, res);
    r->ncols = (size_t)PQnfields(res);
    r->nrows = (size_t)PQntuples(res);
    if (r->ncols) {
        r->names = cf_alloc(rq, r->ncols * sizeof *r->names);
        for (size_t i = 0; i < r->ncols; i++)
            r->names[i] = PQfname(res, (int)i);
    }
    if (r->ncols && r->nrows) {
        Oid *types = cf_alloc(rq, r->ncols * sizeof *types);
        for (size_t i = 0; i < r->ncols; i++)
            types[i] = PQftype(res, (int)i);
        r->cells = cf_alloc(rq, r->nrows * r->ncols * sizeof *r->cells);
        for (size_t row = 0; row < r->nrows; row++) {
            for (size_t col = 0; col < r->ncols; col++) {
                db_cell *cell = &r->cells[row * r->ncols + col];
                cell->len = 0;
                if (PQgetisnull(res, (int)row, (int)col)) {
                    cell->type = CELL_NULL;
                    continue;
                }
                const char *v = PQgetvalue(res, (int)row, (int)col);
                size_t len = (size_t)PQgetlength(res, (int)row, (int)col);
                switch (types[col]) {
                case OID_BOOL:
                    cell->type = CELL_BOOL;
                    cell->v.i = v[0] == 't';
                    break;
                case OID_INT2:
                case OID_INT4:
                case OID_INT8:
                case OID_OID:
                    cell->type = CELL_INT;
                    cell->v.i = strtoll(v, NULL, 10);
                    break;
                case OID_FLOAT4:
                case OID_FLOAT8:
                case OID_NUMERIC:
                    cell->type = CELL_REAL;
                    cell->v.d = strtod(v, NULL);
                    break;
                case OID_BYTEA:
                    bytea_cell(rq, cell, v, len);
                    break;
                case OID_JSON:
                case OID_JSONB:
                    cell->type = CELL_JSON;
                    cell->v.s = v;
                    cell->len = len;
                    break;
                default:
                    cell->type = CELL_TEXT;
                    cell->v.s = v;
                    cell->len = len;
                    break;
                }
            }
        }
    }
    const char *cmd = PQcmdStatus(res);
    if (strncmp(cmd, "INSERT", 6) == 0 || strncmp(cmd, "UPDATE", 6) == 0 ||
        strncmp(cmd, "DELETE", 6) == 0 || strncmp(cmd, "MERGE", 5) == 0)
        r->affected = strtoll(PQcmdTuples(res), NULL, 10);
    return r;
}
