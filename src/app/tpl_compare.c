/*
 * tpl_compare.c — Python's equality and ordering of template values
 * (tu_eq, tu_cmp): ints and floats compared exactly, strings by code
 * point, lists element by element, and Python's TypeError for the rest.
 */
#include "app/tpl_vutil.h"

#include <math.h>
#include <string.h>


/* ---- equality and ordering -------------------------------------------------- */

/* int vs float exactly, as Python does (no rounding of the int). */
static int cmp_int_float(int64_t i, double f)
{
    if (f >= 9223372036854775808.0)
        return -1;
    if (f < -9223372036854775808.0)
        return 1;
    double t = trunc(f);
    int64_t ti = (int64_t)t;
    if (i != ti)
        return i < ti ? -1 : 1;
    double frac = f - t;
    return frac > 0 ? -1 : frac < 0 ? 1 : 0;
}

/* Numbers: -2 when unordered (nan). */
static int cmp_num(tv a, tv b)
{
    if (a.kind != TV_FLOAT && b.kind != TV_FLOAT) {
        int64_t x = tu_as_i(a), y = tu_as_i(b);
        return x < y ? -1 : x > y;
    }
    if (a.kind == TV_FLOAT && b.kind == TV_FLOAT) {
        if (isnan(a.f) || isnan(b.f))
            return -2;
        return a.f < b.f ? -1 : a.f > b.f;
    }
    if (a.kind == TV_FLOAT) {
        if (isnan(a.f))
            return -2;
        return -cmp_int_float(tu_as_i(b), a.f);
    }
    if (isnan(b.f))
        return -2;
    return cmp_int_float(tu_as_i(a), b.f);
}

static int cmp_bytes(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c)
        return c < 0 ? -1 : 1;
    return an < bn ? -1 : an > bn;
}

bool tu_eq(tv a, tv b)
{
    if (tu_is_num(a) && tu_is_num(b))
        return cmp_num(a, b) == 0;
    if (a.kind != b.kind)
        return false;
    switch (a.kind) {
    case TV_UNDEF:
    case TV_NONE: return true;
    case TV_STR: return a.str.len == b.str.len && memcmp(a.str.s, b.str.s, a.str.len) == 0;
    case TV_ARRAY: {
        size_t n = json_array_size(a.json);
        if (a.safe != b.safe) /* a tuple never equals a list */
            return false;
        if (a.json == b.json)
            return true;
        if (n != json_array_size(b.json))
            return false;
        for (size_t i = 0; i < n; i++)
            if (!tu_eq(tv_from_json(json_array_get(a.json, i)),
                       tv_from_json(json_array_get(b.json, i))))
                return false;
        return true;
    }
    case TV_OBJECT: {
        if (a.json == b.json)
            return true;
        if (json_object_size(a.json) != json_object_size(b.json))
            return false;
        const char *k;
        json_t *e;
        json_object_foreach(a.json, k, e) {
            json_t *o = json_object_get(b.json, k);
            if (!o || !tu_eq(tv_from_json(e), tv_from_json(o)))
                return false;
        }
        return true;
    }
    case TV_OPAQUE: return a.op.ptr == b.op.ptr && a.op.type == b.op.type;
    default: return false;
    }
}

static int order_error(tpl_rt *rt, tv a, tv b, const char *op)
{
    if (a.kind == TV_UNDEF)
        return tu_undefined_error(rt, a);
    if (b.kind == TV_UNDEF)
        return tu_undefined_error(rt, b);
    return tpl_error(rt, "'%s' not supported between instances of '%s' and '%s'", op,
                     tu_type_name(a), tu_type_name(b));
}

int tu_cmp(tpl_rt *rt, tv a, tv b, const char *op, int *res)
{
    if (tu_is_num(a) && tu_is_num(b)) {
        int c = cmp_num(a, b);
        /* nan: every ordering is false; callers see "not equal, not less":
         * report it as 2 (the caller treats 2 as false for all orders) */
        *res = c == -2 ? 2 : c;
        return 0;
    }
    if (a.kind == TV_STR && b.kind == TV_STR) {
        *res = cmp_bytes(a.str.s, a.str.len, b.str.s, b.str.len);
        return 0;
    }
    if (a.kind == TV_ARRAY && b.kind == TV_ARRAY && a.safe == b.safe) {
        size_t an = json_array_size(a.json), bn = json_array_size(b.json);
        for (size_t i = 0; i < an && i < bn; i++) {
            tv x = tv_from_json(json_array_get(a.json, i));
            tv y = tv_from_json(json_array_get(b.json, i));
            if (!tu_eq(x, y))
                return tu_cmp(rt, x, y, op, res);
        }
        *res = an < bn ? -1 : an > bn;
        return 0;
    }
    return order_error(rt, a, b, op);
}

