/*
 * tpl_filter_table.c — Jinja's builtin filters by name: the sorted table
 * tpl_builtin_filter searches (the filters are in tpl_filters*.c).
 */
#include "app/tpl_vutil.h"

#include <stdlib.h>
#include <string.h>

/* ---- the tables (sorted by strcmp for bsearch) ---------------------------------- */

typedef struct {
    const char *name;
    tpl_filter_fn fn;
} filter_entry;

static const filter_entry filters[] = {
    {"abs", tf_abs},
    {"attr", tf_attr},
    {"batch", tf_batch},
    {"capitalize", tf_capitalize},
    {"center", tf_center},
    {"count", tf_length},
    {"d", tf_default},
    {"default", tf_default},
    {"dictsort", tf_dictsort},
    {"e", tf_escape},
    {"escape", tf_escape},
    {"filesizeformat", tf_filesizeformat},
    {"first", tf_first},
    {"float", tf_float},
    {"forceescape", tf_forceescape},
    {"format", tf_format},
    {"groupby", tf_groupby},
    {"indent", tf_indent},
    {"int", tf_int},
    {"items", tf_items},
    {"join", tf_join},
    {"last", tf_last},
    {"length", tf_length},
    {"list", tf_list},
    {"lower", tf_lower},
    {"map", tf_map},
    {"max", tf_max},
    {"min", tf_min},
    {"pprint", tf_pprint},
    {"random", tf_random},
    {"reject", tf_reject},
    {"rejectattr", tf_rejectattr},
    {"replace", tf_replace},
    {"reverse", tf_reverse},
    {"round", tf_round},
    {"safe", tf_safe},
    {"select", tf_select},
    {"selectattr", tf_selectattr},
    {"slice", tf_slice},
    {"sort", tf_sort},
    {"string", tf_string},
    {"striptags", tf_striptags},
    {"sum", tf_sum},
    {"title", tf_title},
    {"tojson", tf_tojson},
    {"trim", tf_trim},
    {"truncate", tf_truncate},
    {"unique", tf_unique},
    {"upper", tf_upper},
    {"urlencode", tf_urlencode},
    {"wordcount", tf_wordcount},
    {"wordwrap", tf_wordwrap},
    {"xmlattr", tf_xmlattr},
};


static int cmp_filter(const void *k, const void *e)
{
    return strcmp(k, ((const filter_entry *)e)->name);
}


tpl_filter_fn tpl_builtin_filter(const char *name)
{
    const filter_entry *e =
        bsearch(name, filters, sizeof filters / sizeof *filters, sizeof *filters, cmp_filter);
    return e ? e->fn : NULL;
}

