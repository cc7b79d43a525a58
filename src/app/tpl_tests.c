/*
 * tpl_tests.c — Jinja 3.1's builtin tests (`x is odd`, `x is divisibleby 3`,
 * `x is in [1, 2]`, ...) and the sorted table tpl_builtin_test searches.
 * Each follows jinja2/tests.py, with Python's operators from tv_binop.
 */
#include "app/tpl_vutil.h"

#include <stdlib.h>
#include <string.h>

static int hashable(tpl_rt *rt, tv v)
{
    if ((v.kind == TV_ARRAY && !v.safe) || v.kind == TV_OBJECT)
        return tpl_error(rt, "unhashable type: '%s'", tu_type_name(v));
    return 0;
}

/* ---- tests -------------------------------------------------------------------- */

#define TEST(name) static int name(tpl_rt *rt, tv in, const tv *args, size_t nargs, bool *out)

static int want(tpl_rt *rt, const char *test, size_t nargs, size_t n)
{
    if (nargs != n)
        return tpl_error(rt, "the test '%s' takes %zu argument%s (%zu given)", test, n,
                         n == 1 ? "" : "s", nargs);
    return 0;
}

TEST(t_defined) { *out = in.kind != TV_UNDEF; return want(rt, "defined", nargs, 0); }
TEST(t_undefined) { *out = in.kind == TV_UNDEF; return want(rt, "undefined", nargs, 0); }
TEST(t_none) { *out = in.kind == TV_NONE; return want(rt, "none", nargs, 0); }
TEST(t_boolean) { *out = in.kind == TV_BOOL; return want(rt, "boolean", nargs, 0); }
TEST(t_false) { *out = in.kind == TV_BOOL && !in.b; return want(rt, "false", nargs, 0); }
TEST(t_true) { *out = in.kind == TV_BOOL && in.b; return want(rt, "true", nargs, 0); }
TEST(t_integer) { *out = in.kind == TV_INT; return want(rt, "integer", nargs, 0); }
TEST(t_float) { *out = in.kind == TV_FLOAT; return want(rt, "float", nargs, 0); }
TEST(t_number) { *out = tu_is_num(in); return want(rt, "number", nargs, 0); }
TEST(t_string) { *out = in.kind == TV_STR; return want(rt, "string", nargs, 0); }
TEST(t_mapping) { *out = in.kind == TV_OBJECT; return want(rt, "mapping", nargs, 0); }
TEST(t_escaped) { *out = in.kind == TV_STR && in.safe; return want(rt, "escaped", nargs, 0); }
/* len() and __getitem__: Undefined has both */
TEST(t_sequence)
{
    *out = in.kind == TV_STR || in.kind == TV_ARRAY || in.kind == TV_OBJECT || in.kind == TV_UNDEF;
    return want(rt, "sequence", nargs, 0);
}
TEST(t_iterable)
{
    *out = in.kind == TV_STR || in.kind == TV_ARRAY || in.kind == TV_OBJECT || in.kind == TV_UNDEF;
    return want(rt, "iterable", nargs, 0);
}
TEST(t_callable)
{
    *out = in.kind == TV_OPAQUE && in.op.type && in.op.type->call;
    return want(rt, "callable", nargs, 0);
}

/* value % 2 == r, with Python's % (3.0 is odd; a string is an error) */
static int mod_test(tpl_rt *rt, tv in, tv by, int64_t r, bool *out)
{
    tv m, eq;
    if (tv_binop(rt, TV_MOD, in, by, &m) < 0 || tv_binop(rt, TV_EQ, m, tv_int(r), &eq) < 0)
        return -1;
    *out = eq.b;
    return 0;
}

TEST(t_odd) { return want(rt, "odd", nargs, 0) < 0 ? -1 : mod_test(rt, in, tv_int(2), 1, out); }
TEST(t_even) { return want(rt, "even", nargs, 0) < 0 ? -1 : mod_test(rt, in, tv_int(2), 0, out); }
TEST(t_divisibleby)
{
    return want(rt, "divisibleby", nargs, 1) < 0 ? -1 : mod_test(rt, in, args[0], 0, out);
}

static int cmp_test(tpl_rt *rt, const char *name, tv_op op, tv in, const tv *args, size_t nargs,
                    bool *out)
{
    tv r;
    if (want(rt, name, nargs, 1) < 0 || tv_binop(rt, op, in, args[0], &r) < 0)
        return -1;
    *out = r.b;
    return 0;
}

TEST(t_eq) { return cmp_test(rt, "eq", TV_EQ, in, args, nargs, out); }
TEST(t_ne) { return cmp_test(rt, "ne", TV_NE, in, args, nargs, out); }
TEST(t_lt) { return cmp_test(rt, "lt", TV_LT, in, args, nargs, out); }
TEST(t_le) { return cmp_test(rt, "le", TV_LE, in, args, nargs, out); }
TEST(t_gt) { return cmp_test(rt, "gt", TV_GT, in, args, nargs, out); }
TEST(t_ge) { return cmp_test(rt, "ge", TV_GE, in, args, nargs, out); }
TEST(t_in) { return cmp_test(rt, "in", TV_IN, in, args, nargs, out); }

TEST(t_lower)
{
    tv s;
    if (want(rt, "lower", nargs, 0) < 0 || tv_to_str(rt, in, &s) < 0)
        return -1;
    *out = tu_str_islower(s);
    return 0;
}

TEST(t_upper)
{
    tv s;
    if (want(rt, "upper", nargs, 0) < 0 || tv_to_str(rt, in, &s) < 0)
        return -1;
    *out = tu_str_isupper(s);
    return 0;
}

/* `is`: identity. Values are copied here, so it is approximated: None,
 * booleans, the small ints CPython caches (-5..256), the same JSON
 * container or engine object, the same string bytes in memory. */
TEST(t_sameas)
{
    if (want(rt, "sameas", nargs, 1) < 0)
        return -1;
    tv o = args[0];
    *out = false;
    if (in.kind != o.kind)
        return 0;
    switch (in.kind) {
    case TV_NONE: *out = true; break;
    case TV_BOOL: *out = in.b == o.b; break;
    case TV_INT: *out = in.i == o.i && in.i >= -5 && in.i <= 256; break;
    case TV_STR: *out = in.str.s == o.str.s && in.str.len == o.str.len; break;
    case TV_ARRAY:
    case TV_OBJECT: *out = in.json == o.json; break;
    case TV_OPAQUE: *out = in.op.ptr == o.op.ptr; break;
    default: break;
    }
    return 0;
}

TEST(t_filter)
{
    if (want(rt, "filter", nargs, 0) < 0 || hashable(rt, in) < 0)
        return -1;
    *out = in.kind == TV_STR && tpl_builtin_filter(in.str.s) != NULL;
    return 0;
}

TEST(t_test)
{
    if (want(rt, "test", nargs, 0) < 0 || hashable(rt, in) < 0)
        return -1;
    *out = in.kind == TV_STR && tpl_builtin_test(in.str.s) != NULL;
    return 0;
}

/* ---- the table (sorted by strcmp for bsearch) ---- */

typedef struct {
    const char *name;
    tpl_test_fn fn;
} test_entry;

static const test_entry tests[] = {
    {"!=", t_ne},
    {"<", t_lt},
    {"<=", t_le},
    {"==", t_eq},
    {">", t_gt},
    {">=", t_ge},
    {"boolean", t_boolean},
    {"callable", t_callable},
    {"defined", t_defined},
    {"divisibleby", t_divisibleby},
    {"eq", t_eq},
    {"equalto", t_eq},
    {"escaped", t_escaped},
    {"even", t_even},
    {"false", t_false},
    {"filter", t_filter},
    {"float", t_float},
    {"ge", t_ge},
    {"greaterthan", t_gt},
    {"gt", t_gt},
    {"in", t_in},
    {"integer", t_integer},
    {"iterable", t_iterable},
    {"le", t_le},
    {"lessthan", t_lt},
    {"lower", t_lower},
    {"lt", t_lt},
    {"mapping", t_mapping},
    {"ne", t_ne},
    {"none", t_none},
    {"number", t_number},
    {"odd", t_odd},
    {"sameas", t_sameas},
    {"sequence", t_sequence},
    {"string", t_string},
    {"test", t_test},
    {"true", t_true},
    {"undefined", t_undefined},
    {"upper", t_upper},
};

static int cmp_test_entry(const void *k, const void *e)
{
    return strcmp(k, ((const test_entry *)e)->name);
}

tpl_test_fn tpl_builtin_test(const char *name)
{
    const test_entry *e =
        bsearch(name, tests, sizeof tests / sizeof *tests, sizeof *tests, cmp_test_entry);
    return e ? e->fn : NULL;
}
