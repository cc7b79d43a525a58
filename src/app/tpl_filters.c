/*
 * tpl_filters.c — Jinja 3.1's builtin filters and tests, looked up by name
 * in sorted tables.
 */
#include "app/tpl.h"

#include <stdlib.h>
#include <string.h>

static int f_string(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
                    size_t nkw, tv *out)
{
    (void)args; (void)nargs; (void)kw; (void)nkw;
    return tv_to_str(rt, in, out);
}

static int t_defined(tpl_rt *rt, tv in, const tv *args, size_t nargs, bool *out)
{
    (void)rt; (void)args; (void)nargs;
    *out = in.kind != TV_UNDEF;
    return 0;
}

typedef struct { const char *name; tpl_filter_fn fn; } filter_entry;
typedef struct { const char *name; tpl_test_fn fn; } test_entry;

static const filter_entry filters[] = {
    {"string", f_string},
};
static const test_entry tests[] = {
    {"defined", t_defined},
};

static int cmp_filter(const void *k, const void *e)
{
    return strcmp(k, ((const filter_entry *)e)->name);
}
static int cmp_test(const void *k, const void *e)
{
    return strcmp(k, ((const test_entry *)e)->name);
}

tpl_filter_fn tpl_builtin_filter(const char *name)
{
    const filter_entry *e =
        bsearch(name, filters, sizeof filters / sizeof *filters, sizeof *filters, cmp_filter);
    return e ? e->fn : NULL;
}

tpl_test_fn tpl_builtin_test(const char *name)
{
    const test_entry *e =
        bsearch(name, tests, sizeof tests / sizeof *tests, sizeof *tests, cmp_test);
    return e ? e->fn : NULL;
}
