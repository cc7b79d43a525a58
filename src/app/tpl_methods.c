/*
 * tpl_methods.c — looking into template values: Jinja's getattr (`v.name`:
 * the Python attribute first, then the item) and getitem (`v[k]`: the item
 * first, then the attribute), slices, len(), what `for` iterates, and the
 * methods of dicts, strings and lists that templates call. A method looked
 * up without a call (`d.items`) is a bound method: a TV_OPAQUE whose call
 * hook runs tv_call_method. The string methods are in tpl_strmethods.c.
 */
#include "app/tpl_vutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- bound methods ---------------------------------------------------------- */

typedef struct bound {
    tpl_opaque_type type; /* first: named "built-in method NAME" */
    tv self;
    const char *name;
} bound;

static int bound_call(tpl_rt *rt, void *ptr, const tv *args, size_t nargs,
                      const struct tpl_kwarg *kw, size_t nkw, tv *out)
{
    bound *m = ptr;
    bool found;
    if (tv_call_method(rt, m->self, m->name, args, nargs, kw, nkw, out, &found) < 0)
        return -1;
    if (!found)
        return tpl_error(rt, "the %s method '%s' is not supported", tu_type_name(m->self),
                         m->name);
    return 0;
}

static tv make_bound(tpl_rt *rt, tv self, const char *name)
{
    bound *m = tpl_alloc(rt, sizeof *m);
    size_t nl = strlen(name);
    char *tn = tpl_alloc(rt, nl + 20);
    snprintf(tn, nl + 20, "built-in method %s", name);
    m->type.name = tn;
    m->type.getattr = NULL;
    m->type.call = bound_call;
    m->self = self;
    m->name = tpl_strndup(rt, name, nl);
    tv v = {.kind = TV_OPAQUE, .op = {&m->type, m}};
    return v;
}

static bool in_list(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(*list, name) == 0)
            return true;
    return false;
}

static const char *const dict_methods[] = {
    "clear", "copy", "fromkeys", "get", "items", "keys", "pop", "popitem", "setdefault",
    "update", "values", NULL};
static const char *const list_methods[] = {
    "append", "clear", "copy", "count", "extend", "index", "insert", "pop", "remove",
    "reverse", "sort", NULL};
static const char *const tuple_methods[] = {"count", "index", NULL};
static const char *const str_methods[] = {
    "capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find",
    "format", "format_map", "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit",
    "isidentifier", "islower", "isnumeric", "isprintable", "isspace", "istitle", "isupper",
    "join", "ljust", "lower", "lstrip", "maketrans", "partition", "removeprefix",
    "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit", "rstrip",
    "split", "splitlines", "startswith", "strip", "swapcase", "title", "translate", "upper",
    "zfill", NULL};

/* The Python attribute `name` of v (a method), or false. */
static bool method_of(tpl_rt *rt, tv v, const char *name, tv *out)
{
    const char *const *list = v.kind == TV_OBJECT  ? dict_methods
                              : v.kind == TV_ARRAY ? (v.safe ? tuple_methods : list_methods)
                              : v.kind == TV_STR   ? str_methods
                                                   : NULL;
    if (!list || !in_list(name, list))
        return false;
    *out = make_bound(rt, v, name);
    return true;
}

/* ---- attributes and items --------------------------------------------------- */

int tv_getattr(tpl_rt *rt, tv v, const char *name, tv *out)
{
    if (v.kind == TV_UNDEF)
        return tu_undefined_error(rt, v);
    if (v.kind == TV_OPAQUE) {
        if (v.op.type && v.op.type->getattr)
            return v.op.type->getattr(rt, v.op.ptr, name, out);
        *out = tv_undef(name);
        return 0;
    }
    if (method_of(rt, v, name, out))
        return 0;
    /* the data attributes of numbers: 1.real, x.imag, ... */
    if (v.kind == TV_INT || v.kind == TV_BOOL || v.kind == TV_FLOAT) {
        bool f = v.kind == TV_FLOAT;
        int64_t i = v.kind == TV_BOOL ? v.b : v.i;
        if (strcmp(name, "real") == 0) {
            *out = f ? v : tv_int(i);
            return 0;
        }
        if (strcmp(name, "imag") == 0) {
            *out = f ? tv_float(0.0) : tv_int(0);
            return 0;
        }
        if (!f && (strcmp(name, "numerator") == 0 || strcmp(name, "denominator") == 0)) {
            *out = tv_int(name[0] == 'n' ? i : 1);
            return 0;
        }
    }
    /* groupby's (grouper, list) pairs are 2-item lists here: give them
     * the namedtuple's field names */
    if (v.kind == TV_ARRAY && v.safe && json_array_size(v.json) == 2 &&
        (strcmp(name, "grouper") == 0 || strcmp(name, "list") == 0)) {
        *out = tv_from_json(json_array_get(v.json, name[0] == 'g' ? 0 : 1));
        return 0;
    }
    if (v.kind == TV_OBJECT) {
        json_t *j = json_object_get(v.json, name);
        if (j) {
            *out = tv_from_json(j);
            return 0;
        }
    }
    *out = tv_undef(name);
    return 0;
}

static const char *key_name(tpl_rt *rt, tv key)
{
    if (key.kind == TV_STR)
        return key.str.s;
    tpl_buf b;
    tpl_buf_init(&b, rt);
    tv_repr(rt, &b, key);
    return tpl_buf_cstr(&b);
}

int tv_getitem(tpl_rt *rt, tv v, tv key, tv *out)
{
    if (v.kind == TV_UNDEF)
        return tu_undefined_error(rt, v);
    if (v.kind == TV_OPAQUE) {
        if (key.kind == TV_STR)
            return tv_getattr(rt, v, key.str.s, out);
        *out = tv_undef(key_name(rt, key));
        return 0;
    }
    bool intkey = key.kind == TV_INT || key.kind == TV_BOOL;
    int64_t k = key.kind == TV_BOOL ? key.b : key.i;
    if (v.kind == TV_OBJECT && key.kind == TV_STR) {
        json_t *j = json_object_get(v.json, key.str.s);
        if (j) {
            *out = tv_from_json(j);
            return 0;
        }
    } else if (v.kind == TV_ARRAY && intkey) {
        int64_t n = (int64_t)json_array_size(v.json);
        if (k < 0)
            k += n;
        if (k >= 0 && k < n) {
            *out = tv_from_json(json_array_get(v.json, (size_t)k));
            return 0;
        }
    } else if (v.kind == TV_STR && intkey) {
        int64_t n = (int64_t)tu_cp_count(v.str.s, v.str.len);
        if (k < 0)
            k += n;
        if (k >= 0 && k < n) {
            size_t a = tu_cp_offset(v.str.s, v.str.len, (size_t)k), e = a;
            tu_next(v.str.s, v.str.len, &e);
            *out = tu_str_value(rt, v.str.s + a, e - a, v.safe);
            return 0;
        }
    }
    if (key.kind == TV_STR && method_of(rt, v, key.str.s, out))
        return 0;
    *out = tv_undef(key_name(rt, key));
    return 0;
}

/* ---- slices ----------------------------------------------------------------- */

static int slice_bound(tpl_rt *rt, tv b, bool *given, int64_t *out)
{
    *given = false;
    if (b.kind == TV_NONE)
        return 0;
    if (b.kind == TV_INT || b.kind == TV_BOOL) {
        *given = true;
        *out = b.kind == TV_BOOL ? b.b : b.i;
        return 0;
    }
    if (b.kind == TV_UNDEF)
        return tu_undefined_error(rt, b);
    return tpl_error(rt, "slice indices must be integers or None or have an __index__ method");
}

/* Python's slice.indices(len): the first index, the step and the count. */
static int slice_indices(tpl_rt *rt, tv start, tv stop, tv step, int64_t len, int64_t *first,
                         int64_t *st, int64_t *count)
{
    bool hs, he, hp;
    int64_t s = 0, e = 0, p = 1;
    if (slice_bound(rt, start, &hs, &s) < 0 || slice_bound(rt, stop, &he, &e) < 0 ||
        slice_bound(rt, step, &hp, &p) < 0)
        return -1;
    if (!hp)
        p = 1;
    if (p == 0)
        return tpl_error(rt, "slice step cannot be zero");
    if (p == INT64_MIN)
        p = -INT64_MAX;
    if (p > 0) {
        if (!hs)
            s = 0;
        else if (s < 0)
            s = s + len < 0 ? 0 : s + len;
        else if (s > len)
            s = len;
        if (!he)
            e = len;
        else if (e < 0)
            e = e + len < 0 ? 0 : e + len;
        else if (e > len)
            e = len;
        *count = e > s ? (e - s - 1) / p + 1 : 0;
    } else {
        if (!hs)
            s = len - 1;
        else if (s < 0)
            s = s + len < -1 ? -1 : s + len;
        else if (s > len - 1)
            s = len - 1;
        if (!he)
            e = -1;
        else if (e < 0)
            e = e + len < -1 ? -1 : e + len;
        else if (e > len - 1)
            e = len - 1;
        *count = s > e ? (s - e - 1) / (-p) + 1 : 0;
    }
    *first = s;
    *st = p;
    return 0;
}

int tv_slice(tpl_rt *rt, tv v, tv start, tv stop, tv step, tv *out)
{
    if (v.kind == TV_UNDEF)
        return tu_undefined_error(rt, v);
    int64_t first, st, count;
    if (v.kind == TV_ARRAY) {
        if (slice_indices(rt, start, stop, step, (int64_t)json_array_size(v.json), &first, &st,
                          &count) < 0)
            return -1;
        json_t *a = tu_new_array(rt);
        for (int64_t i = 0; i < count; i++)
            json_array_append(a, json_array_get(v.json, (size_t)(first + i * st)));
        *out = tu_array_value(a);
        out->safe = v.safe; /* a tuple's slice is a tuple */
        return 0;
    }
    if (v.kind == TV_STR) {
        size_t n = tu_cp_count(v.str.s, v.str.len);
        if (slice_indices(rt, start, stop, step, (int64_t)n, &first, &st, &count) < 0)
            return -1;
        /* byte offsets of each code point (and the end) */
        size_t *off = tpl_alloc(rt, (n + 1) * sizeof *off);
        for (size_t i = 0, k = 0; k <= n; k++) {
            off[k] = i;
            if (k < n)
                tu_next(v.str.s, v.str.len, &i);
        }
        tpl_buf b;
        tpl_buf_init(&b, rt);
        if (st == 1 && count > 0) {
            tpl_buf_put(&b, v.str.s + off[first], off[first + count] - off[first]);
        } else {
            for (int64_t i = 0; i < count; i++) {
                size_t k = (size_t)(first + i * st);
                tpl_buf_put(&b, v.str.s + off[k], off[k + 1] - off[k]);
            }
        }
        *out = tu_buf_value(&b, v.safe);
        return 0;
    }
    /* Jinja compiles x[a:b] to a plain subscription: no undefined here */
    if (v.kind == TV_OBJECT)
        return tpl_error(rt, "unhashable type: 'slice'");
    return tpl_error(rt, "'%s' object is not subscriptable", tu_type_name(v));
}

/* ---- len() and iteration ---------------------------------------------------- */

int tv_length(tpl_rt *rt, tv v, int64_t *out)
{
    *out = 0;
    switch (v.kind) {
    case TV_UNDEF: return 0; /* Undefined.__len__ is 0 */
    case TV_STR: *out = (int64_t)tu_cp_count(v.str.s, v.str.len); return 0;
    case TV_ARRAY: *out = (int64_t)json_array_size(v.json); return 0;
    case TV_OBJECT: *out = (int64_t)json_object_size(v.json); return 0;
    default: return tpl_error(rt, "object of type '%s' has no len()", tu_type_name(v));
    }
}

int tv_iterate(tpl_rt *rt, tv v, tv **items, size_t *n)
{
    *items = NULL;
    *n = 0;
    switch (v.kind) {
    case TV_UNDEF: return 0;
    case TV_ARRAY: {
        size_t c = json_array_size(v.json);
        tv *it = tpl_alloc(rt, (c ? c : 1) * sizeof *it);
        for (size_t i = 0; i < c; i++)
            it[i] = tv_from_json(json_array_get(v.json, i));
        *items = it;
        *n = c;
        return 0;
    }
    case TV_OBJECT: {
        size_t c = json_object_size(v.json), i = 0;
        tv *it = tpl_alloc(rt, (c ? c : 1) * sizeof *it);
        const char *k;
        json_t *e;
        json_object_foreach(v.json, k, e) {
            (void)e;
            it[i++] = tv_strn(k, strlen(k), false);
        }
        *items = it;
        *n = i;
        return 0;
    }
    case TV_STR: {
        size_t c = tu_cp_count(v.str.s, v.str.len), k = 0;
        tv *it = tpl_alloc(rt, (c ? c : 1) * sizeof *it);
        for (size_t i = 0; i < v.str.len;) {
            size_t at = i;
            tu_next(v.str.s, v.str.len, &i);
            it[k++] = tv_strn(v.str.s + at, i - at, false); /* iter(Markup) gives str */
        }
        /* each character borrows the string: NUL-terminate copies */
        for (size_t j = 0; j < k; j++)
            it[j].str.s = tpl_strndup(rt, it[j].str.s, it[j].str.len);
        *items = it;
        *n = k;
        return 0;
    }
    default:
        return tpl_error(rt, "'%s' object is not iterable", tu_type_name(v));
    }
}

/* ---- methods ---------------------------------------------------------------- */

int tu_want_args(tpl_rt *rt, const char *name, size_t nargs, size_t nkw, size_t min, size_t max)
{
    if (nkw)
        return tpl_error(rt, "%s() takes no keyword arguments", name);
    if (nargs < min || nargs > max) {
        if (min == max)
            return tpl_error(rt, "%s() takes exactly %zu argument%s (%zu given)", name, min,
                             min == 1 ? "" : "s", nargs);
        return tpl_error(rt, "%s expected at most %zu argument%s, got %zu", name, max,
                         max == 1 ? "" : "s", nargs);
    }
    return 0;
}

int tu_want_str(tpl_rt *rt, tv v, const char *what)
{
    if (v.kind == TV_STR)
        return 0;
    return tpl_error(rt, "%s must be str, not %s", what, tu_type_name(v));
}

static int dict_method(tpl_rt *rt, tv v, const char *name, const tv *args, size_t nargs,
                       size_t nkw, tv *out, bool *found)
{
    const char *k;
    json_t *e;
    if (strcmp(name, "items") == 0 || strcmp(name, "keys") == 0 || strcmp(name, "values") == 0) {
        if (tu_want_args(rt, name, nargs, nkw, 0, 0) < 0)
            return -1;
        json_t *a = tu_new_array(rt);
        json_object_foreach(v.json, k, e) {
            if (name[0] == 'k')
                json_array_append_new(a, json_string_nocheck(k));
            else if (name[0] == 'v')
                json_array_append(a, e);
            else
                json_array_append_new(a, tu_tuple_json(json_pack("[sO]", k, e)));
        }
        *out = tu_array_value(a);
        return 0;
    }
    if (strcmp(name, "get") == 0) {
        if (tu_want_args(rt, name, nargs, nkw, 1, 2) < 0)
            return -1;
        json_t *j = args[0].kind == TV_STR ? json_object_get(v.json, args[0].str.s) : NULL;
        *out = j ? tv_from_json(j) : nargs > 1 ? args[1] : tv_none();
        return 0;
    }
    if (strcmp(name, "copy") == 0) {
        if (tu_want_args(rt, name, nargs, nkw, 0, 0) < 0)
            return -1;
        tv c = {.kind = TV_OBJECT, .json = tpl_keep(rt, json_copy(v.json))};
        *out = c;
        return 0;
    }
    if (strcmp(name, "update") == 0) {
        if (tu_want_args(rt, name, nargs, nkw, 0, 1) < 0)
            return -1;
        if (nargs && args[0].kind != TV_OBJECT)
            return tpl_error(rt, "dict.update() wants a dict");
        if (nargs)
            json_object_update(v.json, args[0].json);
        *out = tv_none();
        return 0;
    }
    if (strcmp(name, "setdefault") == 0) {
        if (tu_want_args(rt, name, nargs, nkw, 1, 2) < 0 || tu_want_str(rt, args[0], "key") < 0)
            return -1;
        json_t *j = json_object_get(v.json, args[0].str.s);
        if (!j) {
            json_object_set_new(v.json, args[0].str.s, nargs > 1 ? tu_json(args[1]) : json_null());
            j = json_object_get(v.json, args[0].str.s);
        }
        *out = tv_from_json(j);
        return 0;
    }
    *found = false;
    return 0;
}

static int list_method(tpl_rt *rt, tv v, const char *name, const tv *args, size_t nargs,
                       size_t nkw, tv *out, bool *found)
{
    size_t i;
    json_t *e;
    if (strcmp(name, "index") == 0 || strcmp(name, "count") == 0) {
        if (tu_want_args(rt, name, nargs, nkw, 1, 1) < 0)
            return -1;
        int64_t c = 0;
        json_array_foreach(v.json, i, e) {
            if (tu_eq(tv_from_json(e), args[0])) {
                if (name[0] == 'i') {
                    *out = tv_int((int64_t)i);
                    return 0;
                }
                c++;
            }
        }
        if (name[0] == 'i') {
            tpl_buf b;
            tpl_buf_init(&b, rt);
            tv_repr(rt, &b, args[0]);
            return tpl_error(rt, "%s is not in list", tpl_buf_cstr(&b));
        }
        *out = tv_int(c);
        return 0;
    }
    if (strcmp(name, "copy") == 0) {
        if (tu_want_args(rt, name, nargs, nkw, 0, 0) < 0)
            return -1;
        json_t *a = tu_new_array(rt);
        json_array_extend(a, v.json);
        *out = tu_array_value(a);
        return 0;
    }
    if (strcmp(name, "append") == 0) {
        if (tu_want_args(rt, name, nargs, nkw, 1, 1) < 0)
            return -1;
        json_array_append_new(v.json, tu_json(args[0]));
        *out = tv_none();
        return 0;
    }
    if (strcmp(name, "extend") == 0) {
        if (tu_want_args(rt, name, nargs, nkw, 1, 1) < 0)
            return -1;
        tv *it;
        size_t n;
        if (tv_iterate(rt, args[0], &it, &n) < 0)
            return -1;
        for (size_t k = 0; k < n; k++)
            json_array_append_new(v.json, tu_json(it[k]));
        *out = tv_none();
        return 0;
    }
    if (strcmp(name, "pop") == 0) {
        if (tu_want_args(rt, name, nargs, nkw, 0, 1) < 0)
            return -1;
        int64_t n = (int64_t)json_array_size(v.json), k = n - 1;
        if (nargs && tu_int_arg(rt, args[0], "pop()", &k) < 0)
            return -1;
        if (k < 0)
            k += n;
        if (n == 0 || k < 0 || k >= n)
            return tpl_error(rt, n == 0 ? "pop from empty list" : "pop index out of range");
        json_t *j = tpl_keep(rt, json_incref(json_array_get(v.json, (size_t)k)));
        json_array_remove(v.json, (size_t)k);
        *out = tv_from_json(j);
        return 0;
    }
    *found = false;
    return 0;
}

int tv_call_method(tpl_rt *rt, tv v, const char *name, const tv *args, size_t nargs,
                   const tpl_kwarg *kw, size_t nkw, tv *out, bool *found)
{
    *out = tv_none();
    *found = true;
    switch (v.kind) {
    case TV_UNDEF: return tu_undefined_error(rt, v);
    case TV_OBJECT: return dict_method(rt, v, name, args, nargs, nkw, out, found);
    case TV_ARRAY: return list_method(rt, v, name, args, nargs, nkw, out, found);
    case TV_STR: return tu_str_method(rt, v, name, args, nargs, kw, nkw, out, found);
    case TV_OPAQUE:
        if (v.op.type && v.op.type->getattr) {
            tv m;
            if (v.op.type->getattr(rt, v.op.ptr, name, &m) < 0)
                return -1;
            if (m.kind == TV_OPAQUE && m.op.type && m.op.type->call)
                return m.op.type->call(rt, m.op.ptr, args, nargs, kw, nkw, out);
        }
        *found = false;
        return 0;
    default: *found = false; return 0;
    }
}
