/*
 * tpl_filters.c — Jinja 3.1's builtin filters on sequences and mappings
 * (attr, batch, default, dictsort, first, groupby, items, join, last,
 * length, list, map, max, min, random, reject, rejectattr, reverse,
 * select, selectattr, slice, sort, sum, unique). The table
 * tpl_builtin_filter searches is in tpl_filter_table.c, the text filters
 * in tpl_filters_str.c, numbers in tpl_filters_num.c, encodings in
 * tpl_filters_enc.c, the tests in tpl_tests.c.
 *
 * Jinja returns generators from map, select, reject, unique and reverse;
 * these return lists (so `{{ x|map('upper') }}` prints the list where
 * Jinja prints "<generator object ...>").
 */
#include "app/tpl_vutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- attribute getters (make_attrgetter) -------------------------------------- */

/* "a.0.b" looks up item 'a', then item 0, then item 'b' (environment.getitem) */
typedef struct getter {
    tv *parts;
    size_t n;
    bool lower;  /* ignore_case: strings lowered */
    bool has_def;
    tv def;      /* replaces an undefined result */
} getter;

static void getter_parse(tpl_rt *rt, getter *g, const char *s, size_t len)
{
    size_t count = 1;
    for (size_t i = 0; i < len; i++)
        count += s[i] == '.';
    g->parts = tpl_alloc(rt, count * sizeof *g->parts);
    g->n = 0;
    size_t st = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.')
            continue;
        bool digits = i > st;
        for (size_t k = st; k < i; k++)
            digits = digits && s[k] >= '0' && s[k] <= '9';
        if (digits && i - st < 18)
            g->parts[g->n++] = tv_int(strtoll(tpl_strndup(rt, s + st, i - st), NULL, 10));
        else
            g->parts[g->n++] = tu_str_value(rt, s + st, i - st, false);
        st = i + 1;
    }
}

/* attribute: None (the item itself), a string path, or an int */
static int getter_init(tpl_rt *rt, getter *g, tv attribute, bool lower)
{
    memset(g, 0, sizeof *g);
    g->lower = lower;
    if (attribute.kind == TV_NONE || attribute.kind == TV_UNDEF)
        return 0;
    if (attribute.kind == TV_STR) {
        getter_parse(rt, g, attribute.str.s, attribute.str.len);
        return 0;
    }
    g->parts = tpl_alloc(rt, sizeof *g->parts);
    g->parts[0] = attribute;
    g->n = 1;
    return 0;
}

static tv lowered(tpl_rt *rt, tv v)
{
    if (v.kind != TV_STR)
        return v;
    tpl_buf b;
    tpl_buf_init(&b, rt);
    tu_put_lower(&b, v.str.s, v.str.len);
    return tu_buf_value(&b, v.safe);
}

static int getter_get(tpl_rt *rt, const getter *g, tv item, tv *out)
{
    for (size_t i = 0; i < g->n; i++) {
        if (tv_getitem(rt, item, g->parts[i], &item) < 0)
            return -1;
        if (g->has_def && item.kind == TV_UNDEF)
            item = g->def;
    }
    *out = g->lower ? lowered(rt, item) : item;
    return 0;
}

/* ---- a stable sort whose comparisons may fail --------------------------------- */

typedef struct sort_ctx {
    tpl_rt *rt;
    tv *keys;     /* keys[i * nk .. ]: the key of item i (nk values: a list key) */
    size_t nk;
    bool reverse;
    bool failed;
} sort_ctx;

/* keys of a and b compared like Python lists (or single values, nk == 1
 * and not a list key) */
static int key_cmp(sort_ctx *c, size_t a, size_t b)
{
    if (c->failed)
        return 0;
    for (size_t i = 0; i < c->nk; i++) {
        tv x = c->keys[a * c->nk + i], y = c->keys[b * c->nk + i];
        if (c->nk > 1 && tu_eq(x, y))
            continue;
        int r;
        if (tu_cmp(c->rt, x, y, "<", &r) < 0) {
            c->failed = true;
            return 0;
        }
        if (r == 2)
            r = 0; /* nan: neither less nor greater */
        if (r)
            return c->reverse ? -r : r;
    }
    return 0;
}

static void merge_sort(sort_ctx *c, size_t *idx, size_t *tmp, size_t n)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    merge_sort(c, idx, tmp, h);
    merge_sort(c, idx + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        /* take from the right only when strictly smaller: stable */
        if (key_cmp(c, idx[j], idx[i]) < 0)
            tmp[k++] = idx[j++];
        else
            tmp[k++] = idx[i++];
    }
    while (i < h)
        tmp[k++] = idx[i++];
    while (j < n)
        tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
}

/* sorted order of n items given their keys; -1 after an error */
static int sort_order(tpl_rt *rt, tv *keys, size_t nk, size_t n, bool reverse, size_t **order)
{
    sort_ctx c = {rt, keys, nk, reverse, false};
    size_t *idx = tpl_alloc(rt, (n ? n : 1) * sizeof *idx);
    size_t *tmp = tpl_alloc(rt, (n ? n : 1) * sizeof *tmp);
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    merge_sort(&c, idx, tmp, n);
    if (c.failed)
        return -1;
    *order = idx;
    return 0;
}

static json_t *array_of(tpl_rt *rt, const tv *items, size_t n)
{
    json_t *a = tu_new_array(rt);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, tu_json(items[i]));
    return a;
}

static bool case_sensitive(const tu_fargs *fa, size_t pos)
{
    return tv_truthy(tu_param(fa, pos, "case_sensitive", tv_bool(false)));
}

/* ---- the filters -------------------------------------------------------------- */

int tf_default(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
               size_t nkw, tv *out)
{
    FARGS("default", "default_value", "boolean");
    tv def = tu_param(&fa, 0, "default_value", tv_strn("", 0, false));
    bool boolean = tv_truthy(tu_param(&fa, 1, "boolean", tv_bool(false)));
    *out = in.kind == TV_UNDEF || (boolean && !tv_truthy(in)) ? def : in;
    return 0;
}

int tf_length(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
              size_t nkw, tv *out)
{
    NOARGS("length");
    int64_t n;
    if (tv_length(rt, in, &n) < 0)
        return -1;
    *out = tv_int(n);
    return 0;
}

int tf_list(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
            size_t nkw, tv *out)
{
    NOARGS("list");
    tv *it;
    size_t n;
    if (tv_iterate(rt, in, &it, &n) < 0)
        return -1;
    *out = tu_array_value(array_of(rt, it, n));
    return 0;
}

int tf_attr(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
            size_t nkw, tv *out)
{
    FARGS("attr", "name");
    tv name;
    if (!tu_arg(args, nargs, kw, nkw, 0, "name", &name) || name.kind != TV_STR)
        return tpl_error(rt, "attr() needs an attribute name");
    if (in.kind == TV_UNDEF)
        return tu_undefined_error(rt, in);
    /* only a real attribute (a method here, or an engine object's), never
     * an item: attr() looks the attribute up without the item fallback */
    tv r;
    if (tv_getattr(rt, in, name.str.s, &r) < 0)
        return -1;
    if (in.kind != TV_OPAQUE && r.kind != TV_OPAQUE)
        r = tv_undef(name.str.s);
    *out = r;
    return 0;
}

int tf_batch(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
             size_t nkw, tv *out)
{
    FARGS("batch", "linecount", "fill_with");
    tv lc, fill = tu_param(&fa, 1, "fill_with", tv_none());
    int64_t linecount;
    if (!tu_arg(args, nargs, kw, nkw, 0, "linecount", &lc))
        return tpl_error(rt, "batch() missing required argument 'linecount'");
    if (tu_int_arg(rt, lc, "batch linecount", &linecount) < 0)
        return -1;
    tv *it;
    size_t n;
    if (tv_iterate(rt, in, &it, &n) < 0)
        return -1;
    json_t *res = tu_new_array(rt), *tmp = json_array();
    for (size_t i = 0; i < n; i++) {
        if ((int64_t)json_array_size(tmp) == linecount) {
            json_array_append_new(res, tmp);
            tmp = json_array();
        }
        json_array_append_new(tmp, tu_json(it[i]));
    }
    if (json_array_size(tmp)) {
        if (fill.kind != TV_NONE)
            while ((int64_t)json_array_size(tmp) < linecount)
                json_array_append_new(tmp, tu_json(fill));
        json_array_append_new(res, tmp);
    } else {
        json_decref(tmp);
    }
    *out = tu_array_value(res);
    return 0;
}

int tf_slice(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
             size_t nkw, tv *out)
{
    FARGS("slice", "slices", "fill_with");
    tv sl, fill = tu_param(&fa, 1, "fill_with", tv_none());
    int64_t slices;
    if (!tu_arg(args, nargs, kw, nkw, 0, "slices", &sl))
        return tpl_error(rt, "slice() missing required argument 'slices'");
    if (tu_int_arg(rt, sl, "slice count", &slices) < 0)
        return -1;
    if (slices <= 0)
        return tpl_error(rt, slices == 0 ? "integer division or modulo by zero"
                                         : "slice count must be positive");
    tv *it;
    size_t n;
    if (tv_iterate(rt, in, &it, &n) < 0)
        return -1;
    int64_t length = (int64_t)n, per = length / slices, extra = length % slices, offset = 0;
    json_t *res = tu_new_array(rt);
    for (int64_t s = 0; s < slices && s < 1000000; s++) {
        int64_t start = offset + s * per;
        if (s < extra)
            offset++;
        int64_t end = offset + (s + 1) * per;
        json_t *tmp = json_array();
        for (int64_t k = start; k < end && k < length; k++)
            json_array_append_new(tmp, tu_json(it[k]));
        if (fill.kind != TV_NONE && s >= extra)
            json_array_append_new(tmp, tu_json(fill));
        json_array_append_new(res, tmp);
    }
    *out = tu_array_value(res);
    return 0;
}

int tf_first(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
             size_t nkw, tv *out)
{
    NOARGS("first");
    tv *it;
    size_t n;
    if (tv_iterate(rt, in, &it, &n) < 0)
        return -1;
    *out = n ? it[0] : tv_undef("first");
    return 0;
}

int tf_last(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
            size_t nkw, tv *out)
{
    NOARGS("last");
    if (in.kind != TV_ARRAY && in.kind != TV_STR && in.kind != TV_OBJECT && in.kind != TV_UNDEF)
        return tpl_error(rt, "'%s' object is not reversible", tu_type_name(in));
    if (in.kind == TV_STR) {
        /* reversed() indexes: a Markup's last character is Markup */
        if (in.str.len == 0) {
            *out = tv_undef("last");
            return 0;
        }
        return tv_getitem(rt, in, tv_int(-1), out);
    }
    tv *it;
    size_t n;
    if (tv_iterate(rt, in, &it, &n) < 0)
        return -1;
    *out = n ? it[n - 1] : tv_undef("last");
    return 0;
}

int tf_random(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
              size_t nkw, tv *out)
{
    NOARGS("random");
    tv *it;
    size_t n;
    if (tv_iterate(rt, in, &it, &n) < 0)
        return -1;
    *out = n ? it[(size_t)rand() % n] : tv_undef("random");
    return 0;
}

int tf_reverse(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
               size_t nkw, tv *out)
{
    NOARGS("reverse");
    if (in.kind == TV_STR)
        return tv_slice(rt, in, tv_none(), tv_none(), tv_int(-1), out);
    if (in.kind != TV_ARRAY && in.kind != TV_OBJECT && in.kind != TV_UNDEF)
        return tpl_error(rt, "argument must be iterable");
    tv *it;
    size_t n;
    if (tv_iterate(rt, in, &it, &n) < 0)
        return -1;
    json_t *a = tu_new_array(rt);
    for (size_t i = n; i-- > 0;)
        json_array_append_new(a, tu_json(it[i]));
    *out = tu_array_value(a);
    return 0;
}

int tf_items(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
             size_t nkw, tv *out)
{
    NOARGS("items");
    if (in.kind == TV_UNDEF) {
        *out = tu_array_value(tu_new_array(rt));
        return 0;
    }
    if (in.kind != TV_OBJECT)
        return tpl_error(rt, "Can only get item pairs from a mapping.");
    bool found;
    return tv_call_method(rt, in, "items", NULL, 0, NULL, 0, out, &found);
}

int tf_dictsort(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
                size_t nkw, tv *out)
{
    FARGS("dictsort", "case_sensitive", "by", "reverse");
    bool cs = case_sensitive(&fa, 0);
    tv by = tu_param(&fa, 1, "by", tv_strn("key", 3, false));
    bool reverse = tv_truthy(tu_param(&fa, 2, "reverse", tv_bool(false)));
    int pos;
    if (by.kind == TV_STR && strcmp(by.str.s, "key") == 0)
        pos = 0;
    else if (by.kind == TV_STR && strcmp(by.str.s, "value") == 0)
        pos = 1;
    else
        return tpl_error(rt, "You can only sort by either \"key\" or \"value\"");
    if (in.kind != TV_OBJECT)
        return tpl_error(rt, "'%s' object has no attribute 'items'", tu_type_name(in));
    size_t n = json_object_size(in.json), i = 0;
    tv *keys = tpl_alloc(rt, (n ? n : 1) * sizeof *keys);
    const char **names = tpl_alloc(rt, (n ? n : 1) * sizeof *names);
    const char *k;
    json_t *e;
    json_object_foreach(in.json, k, e) {
        names[i] = k;
        tv v = pos ? tv_from_json(e) : tv_strn(k, strlen(k), false);
        keys[i++] = cs ? v : lowered(rt, v);
    }
    size_t *order;
    if (sort_order(rt, keys, 1, n, reverse, &order) < 0)
        return -1;
    json_t *a = tu_new_array(rt);
    for (i = 0; i < n; i++)
        json_array_append_new(a, tu_tuple_json(json_pack("[sO]", names[order[i]],
                                           json_object_get(in.json, names[order[i]]))));
    *out = tu_array_value(a);
    return 0;
}

int tf_sort(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
            size_t nkw, tv *out)
{
    FARGS("sort", "reverse", "case_sensitive", "attribute");
    bool reverse = tv_truthy(tu_param(&fa, 0, "reverse", tv_bool(false)));
    bool cs = case_sensitive(&fa, 1);
    tv attribute = tu_param(&fa, 2, "attribute", tv_none());
    /* make_multi_attrgetter: "a,b" sorts by a then b; the key is a list */
    getter *gs;
    size_t ng = 1;
    if (attribute.kind == TV_STR) {
        for (size_t i = 0; i < attribute.str.len; i++)
            ng += attribute.str.s[i] == ',';
        gs = tpl_alloc(rt, ng * sizeof *gs);
        size_t st = 0, g = 0;
        for (size_t i = 0; i <= attribute.str.len; i++) {
            if (i < attribute.str.len && attribute.str.s[i] != ',')
                continue;
            memset(&gs[g], 0, sizeof gs[g]);
            gs[g].lower = !cs;
            getter_parse(rt, &gs[g], attribute.str.s + st, i - st);
            g++;
            st = i + 1;
        }
    } else {
        gs = tpl_alloc(rt, sizeof *gs);
        getter_init(rt, gs, attribute, !cs);
    }
    tv *it;
    size_t n;
    if (tv_iterate(rt, in, &it, &n) < 0)
        return -1;
    tv *keys = tpl_alloc(rt, (n ? n : 1) * ng * sizeof *keys);
    for (size_t i = 0; i < n; i++)
        for (size_t g = 0; g < ng; g++)
            if (getter_get(rt, &gs[g], it[i], &keys[i * ng + g]) < 0)
                return -1;
    /* a one-part key is still a list in Jinja: equal items are never
     * ordered, so compare with == first (nk > 1 does that; emulate for 1) */
    size_t *order;
    if (ng == 1) {
        tv *k2 = tpl_alloc(rt, (n ? n : 1) * 2 * sizeof *k2);
        for (size_t i = 0; i < n; i++) {
            k2[2 * i] = keys[i];
            k2[2 * i + 1] = tv_int(0);
        }
        keys = k2;
        ng = 2;
    }
    if (sort_order(rt, keys, ng, n, reverse, &order) < 0)
        return -1;
    json_t *a = tu_new_array(rt);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, tu_json(it[order[i]]));
    *out = tu_array_value(a);
    return 0;
}

static int hashable(tpl_rt *rt, tv v)
{
    if ((v.kind == TV_ARRAY && !v.safe) || v.kind == TV_OBJECT)
        return tpl_error(rt, "unhashable type: '%s'", tu_type_name(v));
    return 0;
}

int tf_unique(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
              size_t nkw, tv *out)
{
    FARGS("unique", "case_sensitive", "attribute");
    getter g;
    getter_init(rt, &g, tu_param(&fa, 1, "attribute", tv_none()), !case_sensitive(&fa, 0));
    tv *it;
    size_t n;
    if (tv_iterate(rt, in, &it, &n) < 0)
        return -1;
    tv *seen = tpl_alloc(rt, (n ? n : 1) * sizeof *seen);
    size_t ns = 0;
    json_t *a = tu_new_array(rt);
    for (size_t i = 0; i < n; i++) {
        tv k;
        if (getter_get(rt, &g, it[i], &k) < 0 || hashable(rt, k) < 0)
            return -1;
        bool dup = false;
        for (size_t s = 0; s < ns && !dup; s++)
            dup = tu_eq(seen[s], k);
        if (!dup) {
            seen[ns++] = k;
            json_array_append_new(a, tu_json(it[i]));
        }
    }
    *out = tu_array_value(a);
    return 0;
}

static int min_max(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
                   size_t nkw, tv *out, bool max)
{
    FARGS(max ? "max" : "min", "case_sensitive", "attribute");
    getter g;
    getter_init(rt, &g, tu_param(&fa, 1, "attribute", tv_none()), !case_sensitive(&fa, 0));
    tv *it;
    size_t n;
    if (tv_iterate(rt, in, &it, &n) < 0)
        return -1;
    if (n == 0) {
        *out = tv_undef(max ? "max" : "min");
        return 0;
    }
    size_t best = 0;
    tv bk;
    if (getter_get(rt, &g, it[0], &bk) < 0)
        return -1;
    for (size_t i = 1; i < n; i++) {
        tv k;
        int c;
        if (getter_get(rt, &g, it[i], &k) < 0 || tu_cmp(rt, k, bk, max ? ">" : "<", &c) < 0)
            return -1;
        if (c != 2 && (max ? c > 0 : c < 0)) {
            best = i;
            bk = k;
        }
    }
    *out = it[best];
    return 0;
}

int tf_max(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
           size_t nkw, tv *out)
{
    return min_max(rt, in, args, nargs, kw, nkw, out, true);
}

int tf_min(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
           size_t nkw, tv *out)
{
    return min_max(rt, in, args, nargs, kw, nkw, out, false);
}

int tf_sum(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
           size_t nkw, tv *out)
{
    FARGS("sum", "attribute", "start");
    getter g;
    getter_init(rt, &g, tu_param(&fa, 0, "attribute", tv_none()), false);
    tv acc = tu_param(&fa, 1, "start", tv_int(0));
    if (acc.kind == TV_STR)
        return tpl_error(rt, "sum() can't sum strings [use ''.join(seq) instead]");
    tv *it;
    size_t n;
    if (tv_iterate(rt, in, &it, &n) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        tv v;
        if (getter_get(rt, &g, it[i], &v) < 0 || tv_binop(rt, TV_ADD, acc, v, &acc) < 0)
            return -1;
    }
    *out = acc;
    return 0;
}

int tf_join(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
            size_t nkw, tv *out)
{
    FARGS("join", "d", "attribute");
    tv d = tu_param(&fa, 0, "d", tv_strn("", 0, false));
    getter g;
    getter_init(rt, &g, tu_param(&fa, 1, "attribute", tv_none()), false);
    tv *it;
    size_t n;
    if (tv_iterate(rt, in, &it, &n) < 0)
        return -1;
    tv sd;
    if (tv_to_str(rt, d, &sd) < 0)
        return -1;
    bool any_safe = false;
    for (size_t i = 0; i < n; i++) {
        if (getter_get(rt, &g, it[i], &it[i]) < 0)
            return -1;
        any_safe = any_safe || (it[i].kind == TV_STR && it[i].safe);
    }
    /* without autoescape: str(d).join(map(str, value)), plain; with it,
     * a safe separator or any safe item makes a Markup join (the others
     * escaped) */
    bool markup = tpl_autoescape(rt) && (sd.safe || any_safe);
    tpl_buf b;
    tpl_buf_init(&b, rt);
    for (size_t i = 0; i < n; i++) {
        if (i) {
            if (markup)
                tu_put_escaped_str(rt, &b, sd);
            else
                tpl_buf_put(&b, sd.str.s, sd.str.len);
        }
        int rc = markup ? tu_put_escaped_str(rt, &b, it[i]) : tv_str(rt, &b, it[i]);
        if (rc < 0)
            return -1;
    }
    *out = tu_buf_value(&b, markup);
    return 0;
}

int tf_groupby(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
               size_t nkw, tv *out)
{
    FARGS("groupby", "attribute", "default", "case_sensitive");
    tv attribute;
    if (!tu_arg(args, nargs, kw, nkw, 0, "attribute", &attribute))
        return tpl_error(rt, "groupby() missing required argument 'attribute'");
    tv def = tu_param(&fa, 1, "default", tv_none());
    bool cs = case_sensitive(&fa, 2);
    getter g, orig;
    getter_init(rt, &g, attribute, !cs);
    getter_init(rt, &orig, attribute, false);
    if (def.kind != TV_NONE) {
        g.has_def = orig.has_def = true;
        g.def = orig.def = def;
    }
    tv *it;
    size_t n;
    if (tv_iterate(rt, in, &it, &n) < 0)
        return -1;
    tv *keys = tpl_alloc(rt, (n ? n : 1) * sizeof *keys);
    for (size_t i = 0; i < n; i++)
        if (getter_get(rt, &g, it[i], &keys[i]) < 0)
            return -1;
    size_t *order;
    if (sort_order(rt, keys, 1, n, false, &order) < 0)
        return -1;
    /* consecutive equal keys form a group: [grouper, list] */
    json_t *res = tu_new_array(rt);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && tu_eq(keys[order[j]], keys[order[i]]))
            j++;
        tv grouper = keys[order[i]];
        if (!cs && getter_get(rt, &orig, it[order[i]], &grouper) < 0)
            return -1;
        json_t *list = json_array();
        for (size_t k = i; k < j; k++)
            json_array_append_new(list, tu_json(it[order[k]]));
        json_t *pair = json_array();
        json_array_append_new(pair, tu_json(grouper));
        json_array_append_new(pair, list);
        json_array_append_new(res, tu_tuple_json(pair));
        i = j;
    }
    *out = tu_array_value(res);
    return 0;
}

/* map / select / reject ------------------------------------------------------ */

int tf_map(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
           size_t nkw, tv *out)
{
    json_t *res = tu_new_array(rt);
    *out = tu_array_value(res);
    if (!tv_truthy(in))
        return 0;
    tv *it;
    size_t n;
    if (tv_iterate(rt, in, &it, &n) < 0)
        return -1;
    tv attribute;
    if (nargs == 0 && tu_arg(NULL, 0, kw, nkw, 0, "attribute", &attribute)) {
        getter g;
        getter_init(rt, &g, attribute, false);
        for (size_t i = 0; i < nkw; i++) {
            if (strcmp(kw[i].name, "default") == 0 && kw[i].value.kind != TV_NONE) {
                g.has_def = true;
                g.def = kw[i].value;
            } else if (strcmp(kw[i].name, "attribute") != 0) {
                return tpl_error(rt, "Unexpected keyword argument '%s'", kw[i].name);
            }
        }
        for (size_t i = 0; i < n; i++) {
            tv v;
            if (getter_get(rt, &g, it[i], &v) < 0)
                return -1;
            json_array_append_new(res, tu_json(v));
        }
        return 0;
    }
    if (nargs == 0 || args[0].kind != TV_STR)
        return tpl_error(rt, "map requires a filter argument");
    tpl_filter_fn f = tpl_builtin_filter(args[0].str.s);
    if (!f)
        return tpl_error(rt, "No filter named '%s'.", args[0].str.s);
    for (size_t i = 0; i < n; i++) {
        tv v;
        if (f(rt, it[i], args + 1, nargs - 1, kw, nkw, &v) < 0)
            return -1;
        json_array_append_new(res, tu_json(v));
    }
    return 0;
}

static int select_reject(tpl_rt *rt, tv in, const tv *args, size_t nargs, tv *out, bool keep,
                         bool attr)
{
    json_t *res = tu_new_array(rt);
    *out = tu_array_value(res);
    if (!tv_truthy(in))
        return 0;
    getter g;
    size_t off = 0;
    if (attr) {
        if (nargs == 0)
            return tpl_error(rt, "Missing parameter for attribute name");
        getter_init(rt, &g, args[0], false);
        off = 1;
    }
    tpl_test_fn test = NULL;
    if (nargs > off) {
        if (args[off].kind != TV_STR)
            return tpl_error(rt, "the test name must be a string");
        test = tpl_builtin_test(args[off].str.s);
        if (!test)
            return tpl_error(rt, "No test named '%s'.", args[off].str.s);
    }
    tv *it;
    size_t n;
    if (tv_iterate(rt, in, &it, &n) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        tv v = it[i];
        if (attr && getter_get(rt, &g, v, &v) < 0)
            return -1;
        bool r;
        if (test) {
            if (test(rt, v, args + off + 1, nargs - off - 1, &r) < 0)
                return -1;
        } else {
            r = tv_truthy(v);
        }
        if (r == keep)
            json_array_append_new(res, tu_json(it[i]));
    }
    return 0;
}

static int no_kwargs(tpl_rt *rt, const char *f, size_t nkw)
{
    return nkw ? tpl_error(rt, "%s(): keyword arguments to the test are not supported", f) : 0;
}

int tf_select(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
              size_t nkw, tv *out)
{
    return no_kwargs(rt, "select", nkw) < 0 ? -1 : select_reject(rt, in, args, nargs, out, true, false);
}

int tf_reject(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
              size_t nkw, tv *out)
{
    return no_kwargs(rt, "reject", nkw) < 0 ? -1 : select_reject(rt, in, args, nargs, out, false, false);
}

int tf_selectattr(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
                  size_t nkw, tv *out)
{
    return no_kwargs(rt, "selectattr", nkw) < 0 ? -1 : select_reject(rt, in, args, nargs, out, true, true);
}

int tf_rejectattr(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
                  size_t nkw, tv *out)
{
    return no_kwargs(rt, "rejectattr", nkw) < 0 ? -1 : select_reject(rt, in, args, nargs, out, false, true);
}
