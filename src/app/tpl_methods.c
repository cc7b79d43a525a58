/*
 * tpl_methods.c — looking into template values: Jinja's getattr (`v.name`:
 * the Python attribute first, then the item) and getitem (`v[k]`: the item
 * first, then the attribute), slices, len(), what `for` iterates, and the
 * methods of dicts, strings and lists that templates call. A method looked
 * up without a call (`d.items`) is a bound method: a TV_OPAQUE whose call
 * hook runs tv_call_method. Case mapping uses libunistring (Python's full
 * Unicode mappings, e.g. 'ß'.upper() == 'SS').
 */
#include "app/tpl_vutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unicase.h>
#include <unictype.h>

/* ---- case mapping ----------------------------------------------------------- */

typedef uint8_t *(*case_fn)(const uint8_t *, size_t, const char *, uninorm_t, uint8_t *,
                            size_t *);

/* s mapped by fn (u8_toupper, u8_tolower, u8_totitle) appended to b; bytes
 * that are not UTF-8 stay as they are. */
static void put_mapped(tpl_buf *b, const char *s, size_t n, case_fn fn)
{
    if (n == 0)
        return;
    uint8_t small[64];
    size_t len = sizeof small;
    uint8_t *r = fn((const uint8_t *)s, n, NULL, NULL, small, &len);
    if (!r) {
        tpl_buf_put(b, s, n);
        return;
    }
    tpl_buf_put(b, (const char *)r, len);
    if (r != small)
        free(r);
}

void tu_put_upper(tpl_buf *b, const char *s, size_t n) { put_mapped(b, s, n, u8_toupper); }
void tu_put_lower(tpl_buf *b, const char *s, size_t n) { put_mapped(b, s, n, u8_tolower); }
void tu_put_titlecase(tpl_buf *b, const char *s, size_t n) { put_mapped(b, s, n, u8_totitle); }

bool tu_is_cased(uint32_t c)
{
    return c < 0x110000 && uc_is_general_category_withtable(
                               c, UC_CATEGORY_MASK_Lu | UC_CATEGORY_MASK_Ll | UC_CATEGORY_MASK_Lt);
}
bool tu_is_alpha(uint32_t c) { return c < 0x110000 && uc_is_general_category(c, UC_CATEGORY_L); }
bool tu_is_digit(uint32_t c)
{
    return c < 0x110000 && (uc_is_general_category(c, UC_CATEGORY_Nd) || uc_digit_value(c) >= 0 ||
                            (c >= 0xB2 && c <= 0xB3) || c == 0xB9 || (c >= 0x2070 && c <= 0x2079) ||
                            (c >= 0x2080 && c <= 0x2089));
}
bool tu_is_word(uint32_t c)
{
    return c == '_' ||
           (c < 0x110000 && uc_is_general_category_withtable(
                                c, UC_CATEGORY_MASK_L | UC_CATEGORY_MASK_N));
}
bool tu_is_upper(uint32_t c) { return c < 0x110000 && (uc_is_general_category(c, UC_CATEGORY_Lu) || uc_is_general_category(c, UC_CATEGORY_Lt)); }
bool tu_is_lower(uint32_t c) { return c < 0x110000 && uc_is_general_category(c, UC_CATEGORY_Ll); }

/* Python's str.title(): a cased character after a cased one is lowered,
 * any other is title-cased. */
static tv py_title(tpl_rt *rt, tv s)
{
    tpl_buf b;
    tpl_buf_init(&b, rt);
    bool prev = false;
    for (size_t i = 0; i < s.str.len;) {
        size_t at = i;
        uint32_t c = tu_next(s.str.s, s.str.len, &i);
        if (prev)
            tu_put_lower(&b, s.str.s + at, i - at);
        else
            tu_put_titlecase(&b, s.str.s + at, i - at);
        prev = tu_is_cased(c);
    }
    return tu_buf_value(&b, s.safe);
}

/* Python's str.capitalize(): the first character title-cased, the rest
 * lowered. */
static tv py_capitalize(tpl_rt *rt, tv s)
{
    tpl_buf b;
    tpl_buf_init(&b, rt);
    size_t i = 0;
    if (s.str.len) {
        tu_next(s.str.s, s.str.len, &i);
        tu_put_titlecase(&b, s.str.s, i);
        tu_put_lower(&b, s.str.s + i, s.str.len - i);
    }
    return tu_buf_value(&b, s.safe);
}

tv tu_capitalize(tpl_rt *rt, tv s) { return py_capitalize(rt, s); }

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
    /* Jinja's getitem turns the TypeError into an undefined */
    *out = tv_undef("slice");
    return 0;
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
            it[k++] = tv_strn(v.str.s + at, i - at, v.safe);
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

static int want_args(tpl_rt *rt, const char *name, size_t nargs, size_t nkw, size_t min, size_t max)
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

static int want_str(tpl_rt *rt, tv v, const char *what)
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
        if (want_args(rt, name, nargs, nkw, 0, 0) < 0)
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
        if (want_args(rt, name, nargs, nkw, 1, 2) < 0)
            return -1;
        json_t *j = args[0].kind == TV_STR ? json_object_get(v.json, args[0].str.s) : NULL;
        *out = j ? tv_from_json(j) : nargs > 1 ? args[1] : tv_none();
        return 0;
    }
    if (strcmp(name, "copy") == 0) {
        if (want_args(rt, name, nargs, nkw, 0, 0) < 0)
            return -1;
        tv c = {.kind = TV_OBJECT, .json = tpl_keep(rt, json_copy(v.json))};
        *out = c;
        return 0;
    }
    if (strcmp(name, "update") == 0) {
        if (want_args(rt, name, nargs, nkw, 0, 1) < 0)
            return -1;
        if (nargs && args[0].kind != TV_OBJECT)
            return tpl_error(rt, "dict.update() wants a dict");
        if (nargs)
            json_object_update(v.json, args[0].json);
        *out = tv_none();
        return 0;
    }
    if (strcmp(name, "setdefault") == 0) {
        if (want_args(rt, name, nargs, nkw, 1, 2) < 0 || want_str(rt, args[0], "key") < 0)
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
        if (want_args(rt, name, nargs, nkw, 1, 1) < 0)
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
        if (want_args(rt, name, nargs, nkw, 0, 0) < 0)
            return -1;
        json_t *a = tu_new_array(rt);
        json_array_extend(a, v.json);
        *out = tu_array_value(a);
        return 0;
    }
    if (strcmp(name, "append") == 0) {
        if (want_args(rt, name, nargs, nkw, 1, 1) < 0)
            return -1;
        json_array_append_new(v.json, tu_json(args[0]));
        *out = tv_none();
        return 0;
    }
    if (strcmp(name, "extend") == 0) {
        if (want_args(rt, name, nargs, nkw, 1, 1) < 0)
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
        if (want_args(rt, name, nargs, nkw, 0, 1) < 0)
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

/* ---- string methods ---- */

static bool in_chars(uint32_t c, tv chars)
{
    for (size_t i = 0; i < chars.str.len;)
        if (tu_next(chars.str.s, chars.str.len, &i) == c)
            return true;
    return false;
}

tv tu_strip(tpl_rt *rt, tv s, const tv *chars, bool left, bool right)
{
    (void)rt;
    size_t a = 0, e = s.str.len;
    if (left) {
        while (a < e) {
            size_t i = a;
            uint32_t c = tu_next(s.str.s, e, &i);
            if (chars ? !in_chars(c, *chars) : !tu_isspace(c))
                break;
            a = i;
        }
    }
    if (right) {
        while (e > a) {
            /* step back one code point */
            size_t st = e - 1;
            while (st > a && ((unsigned char)s.str.s[st] & 0xC0) == 0x80)
                st--;
            size_t i = st;
            uint32_t c = tu_next(s.str.s, e, &i);
            if (i != e) { /* invalid tail byte */
                st = e - 1;
                i = st;
                c = tu_next(s.str.s, e, &i);
            }
            if (chars ? !in_chars(c, *chars) : !tu_isspace(c))
                break;
            e = st;
        }
    }
    return tu_str_value(rt, s.str.s + a, e - a, s.safe);
}

/* first byte offset of sub in s at or after from, or -1 */
static int64_t find_bytes(const char *s, size_t n, const char *sub, size_t sn, size_t from)
{
    if (sn == 0)
        return from <= n ? (int64_t)from : -1;
    for (size_t i = from; i + sn <= n; i++)
        if (s[i] == sub[0] && memcmp(s + i, sub, sn) == 0)
            return (int64_t)i;
    return -1;
}

tv tu_replace(tpl_rt *rt, tv s, tv old, tv new_, int64_t count, bool safe)
{
    tpl_buf b;
    tpl_buf_init(&b, rt);
    if (old.str.len == 0) {
        /* Python inserts new before every character and at the end */
        int64_t done = 0;
        for (size_t i = 0; i <= s.str.len;) {
            if (count < 0 || done < count) {
                tpl_buf_put(&b, new_.str.s, new_.str.len);
                done++;
            }
            if (i == s.str.len)
                break;
            size_t at = i;
            tu_next(s.str.s, s.str.len, &i);
            tpl_buf_put(&b, s.str.s + at, i - at);
        }
        return tu_buf_value(&b, safe);
    }
    size_t i = 0;
    int64_t done = 0;
    for (;;) {
        int64_t at = count >= 0 && done >= count
                         ? -1
                         : find_bytes(s.str.s, s.str.len, old.str.s, old.str.len, i);
        if (at < 0)
            break;
        tpl_buf_put(&b, s.str.s + i, (size_t)at - i);
        tpl_buf_put(&b, new_.str.s, new_.str.len);
        i = (size_t)at + old.str.len;
        done++;
    }
    tpl_buf_put(&b, s.str.s + i, s.str.len - i);
    return tu_buf_value(&b, safe);
}

/* Python's str.split(sep=None, maxsplit=-1) */
static int py_split(tpl_rt *rt, tv s, const tv *sep, int64_t maxsplit, tv *out)
{
    json_t *a = tu_new_array(rt);
    const char *p = s.str.s;
    size_t n = s.str.len;
    if (sep) {
        if (sep->str.len == 0)
            return tpl_error(rt, "empty separator");
        size_t i = 0;
        int64_t done = 0;
        for (;;) {
            int64_t at = maxsplit >= 0 && done >= maxsplit
                             ? -1
                             : find_bytes(p, n, sep->str.s, sep->str.len, i);
            if (at < 0)
                break;
            json_array_append_new(a, json_stringn_nocheck(p + i, (size_t)at - i));
            i = (size_t)at + sep->str.len;
            done++;
        }
        json_array_append_new(a, json_stringn_nocheck(p + i, n - i));
    } else {
        size_t i = 0;
        int64_t done = 0;
        for (;;) {
            /* skip whitespace */
            while (i < n) {
                size_t k = i;
                if (!tu_isspace(tu_next(p, n, &k)))
                    break;
                i = k;
            }
            if (i >= n)
                break;
            if (maxsplit >= 0 && done >= maxsplit) {
                json_array_append_new(a, json_stringn_nocheck(p + i, n - i));
                break;
            }
            size_t st = i;
            while (i < n) {
                size_t k = i;
                if (tu_isspace(tu_next(p, n, &k)))
                    break;
                i = k;
            }
            json_array_append_new(a, json_stringn_nocheck(p + st, i - st));
            done++;
        }
    }
    *out = tu_array_value(a);
    return 0;
}

/* Python's str.join(iterable); a Markup separator escapes the items. */
int tu_join_strings(tpl_rt *rt, tv sep, tv iterable, tv *out)
{
    tv *it;
    size_t n;
    if (tv_iterate(rt, iterable, &it, &n) < 0)
        return -1;
    tpl_buf b;
    tpl_buf_init(&b, rt);
    for (size_t i = 0; i < n; i++) {
        if (!sep.safe && it[i].kind != TV_STR)
            return tpl_error(rt, "sequence item %zu: expected str instance, %s found", i,
                             tu_type_name(it[i]));
        if (i)
            tpl_buf_put(&b, sep.str.s, sep.str.len);
        if (sep.safe) {
            if (tu_put_escaped_str(rt, &b, it[i]) < 0)
                return -1;
        } else {
            tpl_buf_put(&b, it[i].str.s, it[i].str.len);
        }
    }
    *out = tu_buf_value(&b, sep.safe);
    return 0;
}

static bool affix_match(tv s, tv a, bool end)
{
    if (a.str.len > s.str.len)
        return false;
    const char *p = end ? s.str.s + s.str.len - a.str.len : s.str.s;
    return memcmp(p, a.str.s, a.str.len) == 0;
}

/* s.center/ljust/rjust(width[, fill]) */
tv tu_justify(tpl_rt *rt, tv s, int64_t width, uint32_t fill, char how)
{
    int64_t len = (int64_t)tu_cp_count(s.str.s, s.str.len);
    if (width <= len)
        return s;
    int64_t pad = width - len, left = 0;
    if (how == 'c')
        left = pad / 2 + (pad & width & 1); /* CPython's centering */
    else if (how == 'r')
        left = pad;
    tpl_buf b;
    tpl_buf_init(&b, rt);
    for (int64_t i = 0; i < left; i++)
        tu_put_cp(&b, fill);
    tpl_buf_put(&b, s.str.s, s.str.len);
    for (int64_t i = left; i < pad; i++)
        tu_put_cp(&b, fill);
    return tu_buf_value(&b, s.safe);
}

static int str_method(tpl_rt *rt, tv v, const char *name, const tv *args, size_t nargs,
                      const tpl_kwarg *kw, size_t nkw, tv *out, bool *found)
{
    if (strcmp(name, "format") == 0)
        return tu_str_format(rt, v, args, nargs, kw, nkw, out);
    if (strcmp(name, "upper") == 0 || strcmp(name, "lower") == 0 ||
        strcmp(name, "title") == 0 || strcmp(name, "capitalize") == 0 ||
        strcmp(name, "swapcase") == 0) {
        if (want_args(rt, name, nargs, nkw, 0, 0) < 0)
            return -1;
        tpl_buf b;
        tpl_buf_init(&b, rt);
        if (name[0] == 'u') {
            tu_put_upper(&b, v.str.s, v.str.len);
        } else if (name[0] == 'l') {
            tu_put_lower(&b, v.str.s, v.str.len);
        } else if (name[0] == 't') {
            *out = py_title(rt, v);
            return 0;
        } else if (name[0] == 'c') {
            *out = py_capitalize(rt, v);
            return 0;
        } else {
            for (size_t i = 0; i < v.str.len;) {
                size_t at = i;
                uint32_t c = tu_next(v.str.s, v.str.len, &i);
                if (tu_is_upper(c))
                    tu_put_lower(&b, v.str.s + at, i - at);
                else if (tu_is_lower(c))
                    tu_put_upper(&b, v.str.s + at, i - at);
                else
                    tpl_buf_put(&b, v.str.s + at, i - at);
            }
        }
        *out = tu_buf_value(&b, v.safe);
        return 0;
    }
    if (strcmp(name, "strip") == 0 || strcmp(name, "lstrip") == 0 ||
        strcmp(name, "rstrip") == 0) {
        if (want_args(rt, name, nargs, nkw, 0, 1) < 0)
            return -1;
        const tv *chars = nargs && args[0].kind != TV_NONE ? &args[0] : NULL;
        if (chars && want_str(rt, *chars, "strip arg") < 0)
            return -1;
        *out = tu_strip(rt, v, chars, name[0] != 'r', name[0] != 'l');
        return 0;
    }
    if (strcmp(name, "startswith") == 0 || strcmp(name, "endswith") == 0) {
        if (want_args(rt, name, nargs, nkw, 1, 1) < 0)
            return -1;
        bool end = name[0] == 'e';
        if (args[0].kind == TV_ARRAY) {
            size_t i;
            json_t *e;
            bool r = false;
            json_array_foreach(args[0].json, i, e) {
                tv a = tv_from_json(e);
                if (want_str(rt, a, "tuple item") < 0)
                    return -1;
                r = r || affix_match(v, a, end);
            }
            *out = tv_bool(r);
            return 0;
        }
        if (args[0].kind != TV_STR)
            return tpl_error(rt, "%s first arg must be str or a tuple of str, not %s", name,
                             tu_type_name(args[0]));
        *out = tv_bool(affix_match(v, args[0], end));
        return 0;
    }
    if (strcmp(name, "removeprefix") == 0 || strcmp(name, "removesuffix") == 0) {
        if (want_args(rt, name, nargs, nkw, 1, 1) < 0 || want_str(rt, args[0], "argument") < 0)
            return -1;
        bool end = name[6] == 's';
        *out = v;
        if (affix_match(v, args[0], end))
            *out = tu_str_value(rt, end ? v.str.s : v.str.s + args[0].str.len,
                                v.str.len - args[0].str.len, v.safe);
        return 0;
    }
    if (strcmp(name, "replace") == 0) {
        if (want_args(rt, name, nargs, nkw, 2, 3) < 0 || want_str(rt, args[0], "replace arg") < 0 ||
            want_str(rt, args[1], "replace arg") < 0)
            return -1;
        int64_t count = -1;
        if (nargs > 2 && tu_int_arg(rt, args[2], "replace count", &count) < 0)
            return -1;
        tv o = args[0], nw = args[1];
        if (v.safe) { /* Markup.replace escapes its arguments */
            tpl_buf b1, b2;
            tpl_buf_init(&b1, rt);
            tpl_buf_init(&b2, rt);
            tu_put_escaped_str(rt, &b1, o);
            tu_put_escaped_str(rt, &b2, nw);
            o = tu_buf_value(&b1, true);
            nw = tu_buf_value(&b2, true);
        }
        *out = tu_replace(rt, v, o, nw, count, v.safe);
        return 0;
    }
    if (strcmp(name, "split") == 0) {
        tv sep = tv_none(), ms = tv_int(-1);
        if (nargs > 2)
            return tpl_error(rt, "split() takes at most 2 arguments (%zu given)", nargs);
        tu_arg(args, nargs, kw, nkw, 0, "sep", &sep);
        tu_arg(args, nargs, kw, nkw, 1, "maxsplit", &ms);
        int64_t maxsplit;
        if (tu_int_arg(rt, ms, "maxsplit", &maxsplit) < 0)
            return -1;
        if (sep.kind != TV_NONE && want_str(rt, sep, "sep") < 0)
            return -1;
        return py_split(rt, v, sep.kind == TV_NONE ? NULL : &sep, maxsplit, out);
    }
    if (strcmp(name, "join") == 0) {
        if (want_args(rt, name, nargs, nkw, 1, 1) < 0)
            return -1;
        return tu_join_strings(rt, v, args[0], out);
    }
    if (strcmp(name, "count") == 0 || strcmp(name, "find") == 0 || strcmp(name, "index") == 0 ||
        strcmp(name, "rfind") == 0) {
        if (want_args(rt, name, nargs, nkw, 1, 1) < 0 || want_str(rt, args[0], "substring") < 0)
            return -1;
        tv sub = args[0];
        if (name[0] == 'c') {
            int64_t c = 0;
            if (sub.str.len == 0) {
                c = (int64_t)tu_cp_count(v.str.s, v.str.len) + 1;
            } else {
                for (int64_t at = 0;
                     (at = find_bytes(v.str.s, v.str.len, sub.str.s, sub.str.len, (size_t)at)) >= 0;
                     at += (int64_t)sub.str.len)
                    c++;
            }
            *out = tv_int(c);
            return 0;
        }
        int64_t at = -1;
        if (name[0] == 'r') {
            for (int64_t k = (int64_t)v.str.len - (int64_t)sub.str.len; k >= 0; k--)
                if (memcmp(v.str.s + k, sub.str.s, sub.str.len) == 0) {
                    at = k;
                    break;
                }
        } else {
            at = find_bytes(v.str.s, v.str.len, sub.str.s, sub.str.len, 0);
        }
        if (at < 0 && name[0] == 'i')
            return tpl_error(rt, "substring not found");
        *out = tv_int(at < 0 ? -1 : (int64_t)tu_cp_count(v.str.s, (size_t)at));
        return 0;
    }
    if (strncmp(name, "is", 2) == 0 &&
        (strcmp(name, "isdigit") == 0 || strcmp(name, "isalpha") == 0 ||
         strcmp(name, "isalnum") == 0 || strcmp(name, "isspace") == 0 ||
         strcmp(name, "isdecimal") == 0 || strcmp(name, "isnumeric") == 0 ||
         strcmp(name, "isascii") == 0 || strcmp(name, "islower") == 0 ||
         strcmp(name, "isupper") == 0)) {
        if (want_args(rt, name, nargs, nkw, 0, 0) < 0)
            return -1;
        if (strcmp(name, "islower") == 0 || strcmp(name, "isupper") == 0) {
            *out = tv_bool(name[2] == 'l' ? tu_str_islower(v) : tu_str_isupper(v));
            return 0;
        }
        bool r = v.str.len > 0 || strcmp(name, "isascii") == 0;
        for (size_t i = 0; i < v.str.len && r;) {
            uint32_t c = tu_next(v.str.s, v.str.len, &i);
            switch (name[2]) {
            case 'd': r = name[3] == 'i' ? tu_is_digit(c) : (c < 0x110000 && uc_is_general_category(c, UC_CATEGORY_Nd)); break;
            case 'n': r = c < 0x110000 && uc_is_general_category(c, UC_CATEGORY_N); break;
            case 's': r = tu_isspace(c); break;
            default:
                if (strcmp(name, "isascii") == 0)
                    r = c < 0x80;
                else if (strcmp(name, "isalpha") == 0)
                    r = tu_is_alpha(c);
                else
                    r = tu_is_word(c) && c != '_';
            }
        }
        *out = tv_bool(r);
        return 0;
    }
    if (strcmp(name, "center") == 0 || strcmp(name, "ljust") == 0 || strcmp(name, "rjust") == 0) {
        if (want_args(rt, name, nargs, nkw, 1, 2) < 0)
            return -1;
        int64_t w;
        if (tu_int_arg(rt, args[0], name, &w) < 0)
            return -1;
        uint32_t fill = ' ';
        if (nargs > 1) {
            if (args[1].kind != TV_STR || tu_cp_count(args[1].str.s, args[1].str.len) != 1)
                return tpl_error(rt, "The fill character must be exactly one character long");
            size_t i = 0;
            fill = tu_next(args[1].str.s, args[1].str.len, &i);
        }
        *out = tu_justify(rt, v, w, fill, name[0]);
        return 0;
    }
    if (strcmp(name, "zfill") == 0) {
        if (want_args(rt, name, nargs, nkw, 1, 1) < 0)
            return -1;
        int64_t w;
        if (tu_int_arg(rt, args[0], name, &w) < 0)
            return -1;
        int64_t len = (int64_t)tu_cp_count(v.str.s, v.str.len);
        if (w <= len) {
            *out = v;
            return 0;
        }
        tpl_buf b;
        tpl_buf_init(&b, rt);
        size_t st = 0;
        if (v.str.len && (v.str.s[0] == '+' || v.str.s[0] == '-')) {
            tpl_buf_putc(&b, v.str.s[0]);
            st = 1;
        }
        for (int64_t i = len; i < w; i++)
            tpl_buf_putc(&b, '0');
        tpl_buf_put(&b, v.str.s + st, v.str.len - st);
        *out = tu_buf_value(&b, v.safe);
        return 0;
    }
    *found = false;
    return 0;
}

bool tu_str_islower(tv v)
{
    bool cased = false;
    for (size_t i = 0; i < v.str.len;) {
        uint32_t c = tu_next(v.str.s, v.str.len, &i);
        if (tu_is_upper(c))
            return false;
        if (tu_is_lower(c))
            cased = true;
    }
    return cased;
}

bool tu_str_isupper(tv v)
{
    bool cased = false;
    for (size_t i = 0; i < v.str.len;) {
        uint32_t c = tu_next(v.str.s, v.str.len, &i);
        if (tu_is_lower(c))
            return false;
        if (tu_is_upper(c))
            cased = true;
    }
    return cased;
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
    case TV_STR: return str_method(rt, v, name, args, nargs, kw, nkw, out, found);
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
