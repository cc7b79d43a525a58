/*
 * db_rows.c — reading a result: the cursor, the typed getters and the
 * conversion of rows to JSON (cf_row_object, cf_rows_json). The rows were
 * built by a backend (db_sqlite_stmt.c, db_pg_result.c) in the request's
 * memory; nothing here allocates except the JSON values.
 */
#include "io/db.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* Bytes after a lead byte: the range of the first continuation byte
 * (narrower after E0, ED, F0, F4: no overlong forms, surrogates or code
 * points past U+10FFFF) and how many follow in all; 0 for a byte that
 * cannot start a sequence. */
static int utf8_lead(unsigned char b, unsigned char *lo, unsigned char *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF)
        return 1;
    if (b >= 0xE0 && b <= 0xEF) {
        if (b == 0xE0)
            *lo = 0xA0;
        else if (b == 0xED)
            *hi = 0x9F;
        return 2;
    }
    if (b >= 0xF0 && b <= 0xF4) {
        if (b == 0xF0)
            *lo = 0x90;
        else if (b == 0xF4)
            *hi = 0x8F;
        return 3;
    }
    return 0;
}

/* Text that is not UTF-8 as a JSON string, each maximal subpart of an
 * invalid sequence replaced by U+FFFD (Unicode's recommended practice,
 * which Python's errors="replace" follows): a user sees where the bad
 * bytes were, and the value stays text. */
static json_t *utf8_repaired(const unsigned char *p, size_t n)
{
    char *out = malloc(3 * n + 1); /* a bad byte (1) grows to 3 at most */
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned char lo, hi;
        int more = p[i] < 0x80 ? 0 : utf8_lead(p[i], &lo, &hi);
        size_t k = 1; /* bytes of this sequence that fit so far */
        if (more) {
            while (k <= (size_t)more && i + k < n && p[i + k] >= lo && p[i + k] <= hi) {
                lo = 0x80;
                hi = 0xBF;
                k++;
            }
        }
        if (p[i] < 0x80 || (more && k == (size_t)more + 1)) {
            memcpy(out + o, p + i, k);
            o += k;
        } else { /* the lead and the continuation bytes that fit: one U+FFFD */
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
        }
        i += k;
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
        /* SQLite stores whatever bytes it was given as TEXT. */
        json_t *j = json_stringn(c->v.s, c->len);
        return j ? j : utf8_repaired((const unsigned char *)c->v.s, c->len);
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
