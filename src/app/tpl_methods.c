/*
 * tpl_methods.c — looking into template values: Jinja's getattr and
 * getitem, slices, len(), iteration, and the methods of dicts, strings and
 * lists that templates call.
 */
#include "app/tpl.h"

int tv_getattr(tpl_rt *rt, tv v, const char *name, tv *out)
{
    (void)rt;
    if (v.kind == TV_OBJECT) {
        json_t *j = json_object_get(v.json, name);
        *out = j ? tv_from_json(j) : tv_undef(name);
        return 0;
    }
    *out = tv_undef(name);
    return 0;
}

int tv_getitem(tpl_rt *rt, tv v, tv key, tv *out)
{
    if (key.kind == TV_STR)
        return tv_getattr(rt, v, key.str.s, out);
    *out = tv_undef("item");
    return 0;
}

int tv_slice(tpl_rt *rt, tv v, tv start, tv stop, tv step, tv *out)
{
    (void)v; (void)start; (void)stop; (void)step;
    *out = tv_none();
    return tpl_error(rt, "slices not implemented yet");
}

int tv_length(tpl_rt *rt, tv v, int64_t *out)
{
    *out = 0;
    if (v.kind == TV_ARRAY) { *out = (int64_t)json_array_size(v.json); return 0; }
    if (v.kind == TV_OBJECT) { *out = (int64_t)json_object_size(v.json); return 0; }
    if (v.kind == TV_STR) { *out = (int64_t)v.str.len; return 0; }
    return tpl_error(rt, "object has no len()");
}

int tv_iterate(tpl_rt *rt, tv v, tv **items, size_t *n)
{
    *items = NULL;
    *n = 0;
    if (v.kind == TV_ARRAY) {
        size_t c = json_array_size(v.json);
        *items = tpl_alloc(rt, (c ? c : 1) * sizeof(tv));
        for (size_t i = 0; i < c; i++)
            (*items)[i] = tv_from_json(json_array_get(v.json, i));
        *n = c;
    }
    return 0;
}

int tv_call_method(tpl_rt *rt, tv v, const char *name, const tv *args, size_t nargs,
                   const tpl_kwarg *kw, size_t nkw, tv *out, bool *found)
{
    (void)rt; (void)v; (void)name; (void)args; (void)nargs; (void)kw; (void)nkw;
    *out = tv_none();
    *found = false;
    return 0;
}
