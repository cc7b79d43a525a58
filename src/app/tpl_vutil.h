/*
 * tpl_vutil.h — helpers shared by the value files (tpl_value.c,
 * tpl_methods.c, tpl_format.c) and the filters (tpl_filters*.c): UTF-8,
 * Python's equality and ordering, type names, building strings and JSON in
 * the render. Not part of the engine's interface (that is tpl.h).
 */
#ifndef CF_APP_TPL_VUTIL_H
#define CF_APP_TPL_VUTIL_H

#include "app/tpl.h"

/* ---- UTF-8 ---- */
/* Decode the code point at s[*i] (invalid bytes decode as themselves) and
 * advance *i. */
uint32_t tu_next(const char *s, size_t n, size_t *i);
void tu_put_cp(tpl_buf *b, uint32_t cp);
size_t tu_cp_count(const char *s, size_t n);
/* Byte offset of code point number k (k may be the count: the end). */
size_t tu_cp_offset(const char *s, size_t n, size_t k);
bool tu_isspace(uint32_t cp); /* Python's str.isspace() for one character */

/* ---- values ---- */
const char *tu_type_name(tv v);                        /* Python's type(v).__name__ */
tv tu_buf_value(tpl_buf *b, bool safe);                 /* the buffer as a string value */
tv tu_str_value(tpl_rt *rt, const char *s, size_t n, bool safe); /* a copy in the arena */
tv tu_array_value(json_t *a);                           /* a TV_ARRAY over a */
json_t *tu_new_array(tpl_rt *rt);                       /* a new array kept by the render */
/* v as a new JSON reference (not kept), for the lists and dicts values
 * make: a safe string is {"__html__": s}, a tuple {"__tuple__": [...]},
 * an undefined {"__undefined__": name} (tv_from_json reads them back). */
json_t *tu_json(tv v);
/* {"__tuple__": arr}: how a tuple is stored inside JSON (arr is stolen). */
json_t *tu_tuple_json(json_t *arr);
int tu_undefined_error(tpl_rt *rt, tv v);               /* "'name' is undefined" */
bool tu_is_num(tv v);                                   /* bool, int or float */
bool tu_eq(tv a, tv b);                                 /* Python's == */
/* Python's ordering: *res < 0, 0, > 0; an error (TypeError's message with
 * op, e.g. "<") when a and b cannot be ordered. */
int tu_cmp(tpl_rt *rt, tv a, tv b, const char *op, int *res);
/* Python's repr() of a float, e.g. 0.1, 1e+16, 1.5e-05, inf, nan. */
void tu_put_float(tpl_buf *b, double f);
/* str(v) appended, HTML-escaped unless v is safe (markupsafe's escape). */
int tu_put_escaped_str(tpl_rt *rt, tpl_buf *b, tv v);
/* Python's `fmt % args` (tpl_format.c); args is a tuple when an array, a
 * mapping when a dict and fmt uses %(name)s, else the single argument.
 * When fmt is safe, the arguments are escaped and the result is safe. */
int tu_percent_format(tpl_rt *rt, tv fmt, tv args, tv *out);
/* The same with the arguments given as nitems values (a tuple), or as a
 * mapping for %(name)s (then items[0] is the mapping itself, for %s). */
int tu_percent_format_items(tpl_rt *rt, tv fmt, const tv *items, size_t nitems, json_t *mapping,
                            tv *out);

/* ---- strings (tpl_methods.c, tpl_format.c) ---- */
/* Python's full case mappings (libunistring), appended to b. */
void tu_put_upper(tpl_buf *b, const char *s, size_t n);
void tu_put_lower(tpl_buf *b, const char *s, size_t n);
void tu_put_titlecase(tpl_buf *b, const char *s, size_t n);
bool tu_is_cased(uint32_t c);
bool tu_is_alpha(uint32_t c);
bool tu_is_digit(uint32_t c);
bool tu_is_word(uint32_t c); /* the regex \w (Unicode) */
bool tu_is_upper(uint32_t c);
bool tu_is_lower(uint32_t c);
bool tu_str_islower(tv s); /* str.islower() */
bool tu_str_isupper(tv s); /* str.isupper() */
tv tu_capitalize(tpl_rt *rt, tv s); /* str.capitalize() */
/* str.strip/lstrip/rstrip(chars); chars NULL: whitespace. */
tv tu_strip(tpl_rt *rt, tv s, const tv *chars, bool left, bool right);
/* str.replace(old, new, count) (count < 0: all); the result's safe flag. */
tv tu_replace(tpl_rt *rt, tv s, tv old, tv new_, int64_t count, bool safe);
/* sep.join(iterable); a safe sep escapes the items (Markup.join). */
int tu_join_strings(tpl_rt *rt, tv sep, tv iterable, tv *out);
/* str.center ('c'), ljust ('l'), rjust ('r') */
tv tu_justify(tpl_rt *rt, tv s, int64_t width, uint32_t fill, char how);
/* str.format(*args, **kw): {} {0} {name}, !r !s, and format specs. */
int tu_str_format(tpl_rt *rt, tv fmt, const tv *args, size_t nargs, const tpl_kwarg *kw,
                  size_t nkw, tv *out);
/* format(v, spec) appended to b */
int tu_format_spec(tpl_rt *rt, tpl_buf *b, tv v, const char *spec, size_t n);

/* ---- methods (tpl_methods.c, tpl_strmethods.c) ---- */
/* Fail unless nargs is within [min, max] and there are no keywords. */
int tu_want_args(tpl_rt *rt, const char *name, size_t nargs, size_t nkw, size_t min, size_t max);
int tu_want_str(tpl_rt *rt, tv v, const char *what); /* fail unless a string */
/* The str method `name` of v; *found = false when there is none. */
int tu_str_method(tpl_rt *rt, tv v, const char *name, const tv *args, size_t nargs,
                  const tpl_kwarg *kw, size_t nkw, tv *out, bool *found);

/* ---- filter and method arguments ---- */
/* Argument `pos` (positional index) or keyword `name`: true when given. */
bool tu_arg(const tv *args, size_t nargs, const tpl_kwarg *kw, size_t nkw, size_t pos,
            const char *name, tv *out);
/* An integer argument (bool counts); an error naming what when not. */
int tu_int_arg(tpl_rt *rt, tv v, const char *what, int64_t *out);

/* ---- filters (tpl_filters.c, tpl_filters_str.c) ---- */
/* The arguments a filter was given, after the filtered value. */
typedef struct tu_fargs {
    const char *filter;
    const tv *args;
    size_t nargs;
    const tpl_kwarg *kw;
    size_t nkw;
} tu_fargs;
/* Fail unless every positional argument has a parameter and every keyword
 * names one of params (NULL-terminated, in order). */
int tu_check_params(tpl_rt *rt, const tu_fargs *a, const char *const *params);
/* Parameter number pos (0 after the value) or named name, else def. */
tv tu_param(const tu_fargs *a, size_t pos, const char *name, tv def);
/* Python's html.unescape for the entities templates meet (numeric ones,
 * the HTML 4 Latin-1 names and a few more), appended to b. */
void tu_put_unescaped(tpl_buf *b, const char *s, size_t n);
/* markupsafe's escape() of a string value: itself when safe. */
tv tu_escaped(tpl_rt *rt, tv s);

/* Declare a filter's parameters (after the value) and check the call. */
#define FARGS(fname, ...)                                                                    \
    tu_fargs fa = {fname, args, nargs, kw, nkw};                                              \
    static const char *const params_[] = {__VA_ARGS__, NULL};                                 \
    if (tu_check_params(rt, &fa, params_) < 0)                                                \
        return -1
#define NOARGS(fname)                                                                        \
    tu_fargs fa = {fname, args, nargs, kw, nkw};                                              \
    static const char *const params_[] = {NULL};                                              \
    if (tu_check_params(rt, &fa, params_) < 0)                                                \
        return -1

/* The keys of a JSON object in code point order (UTF-8 byte order), as
 * Python's sort_keys and pprint sort them; in the render's arena. */
const char **tu_sorted_keys(tpl_rt *rt, json_t *obj, size_t *n);

/* bool and int as int64 (callers checked tu_is_num and not float). */
static inline int64_t tu_as_i(tv v) { return v.kind == TV_BOOL ? (int64_t)v.b : v.i; }
static inline double tu_as_f(tv v) { return v.kind == TV_FLOAT ? v.f : (double)tu_as_i(v); }

#define TU_FILTER(name)                                                                      \
    int name(tpl_rt *rt, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw, size_t nkw, \
             tv *out)
TU_FILTER(tf_abs);
TU_FILTER(tf_capitalize);
TU_FILTER(tf_center);
TU_FILTER(tf_escape);
TU_FILTER(tf_filesizeformat);
TU_FILTER(tf_float);
TU_FILTER(tf_forceescape);
TU_FILTER(tf_format);
TU_FILTER(tf_indent);
TU_FILTER(tf_int);
TU_FILTER(tf_lower);
TU_FILTER(tf_pprint);
TU_FILTER(tf_replace);
TU_FILTER(tf_round);
TU_FILTER(tf_safe);
TU_FILTER(tf_string);
TU_FILTER(tf_striptags);
TU_FILTER(tf_title);
TU_FILTER(tf_tojson);
/* tpl_filters.c */
TU_FILTER(tf_default);
TU_FILTER(tf_length);
TU_FILTER(tf_list);
TU_FILTER(tf_attr);
TU_FILTER(tf_batch);
TU_FILTER(tf_slice);
TU_FILTER(tf_first);
TU_FILTER(tf_last);
TU_FILTER(tf_random);
TU_FILTER(tf_reverse);
TU_FILTER(tf_items);
TU_FILTER(tf_dictsort);
TU_FILTER(tf_sort);
TU_FILTER(tf_unique);
TU_FILTER(tf_max);
TU_FILTER(tf_min);
TU_FILTER(tf_sum);
TU_FILTER(tf_join);
TU_FILTER(tf_groupby);
TU_FILTER(tf_map);
TU_FILTER(tf_select);
TU_FILTER(tf_reject);
TU_FILTER(tf_selectattr);
TU_FILTER(tf_rejectattr);

TU_FILTER(tf_trim);
TU_FILTER(tf_truncate);
TU_FILTER(tf_upper);
TU_FILTER(tf_urlencode);
TU_FILTER(tf_wordcount);
TU_FILTER(tf_xmlattr);
TU_FILTER(tf_wordwrap);

#endif
