/*
 * tpl_vutil.c — the small helpers tpl_vutil.h declares for the value and
 * filter files: UTF-8 decoding and encoding, Python's whitespace, type
 * names, string and array values in the render, argument lookup.
 */
#include "app/tpl_vutil.h"

#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 ------------------------------------------------------------------ */

uint32_t tu_next(const char *s, size_t n, size_t *i)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t k = *i;
    uint32_t c = u[k];
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len <= 1 || k + len > n) {
        *i = k + 1;
        return c;
    }
    uint32_t cp = c & (0xFF >> (len + 1));
    for (size_t j = 1; j < len; j++) {
        if ((u[k + j] & 0xC0) != 0x80) {
            *i = k + 1;
            return c;
        }
        cp = (cp << 6) | (u[k + j] & 0x3F);
    }
    *i = k + len;
    return cp;
}

void tu_put_cp(tpl_buf *b, uint32_t cp)
{
    char t[4];
    size_t n;
    if (cp < 0x80) {
        t[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        t[0] = (char)(0xC0 | (cp >> 6));
        t[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        t[0] = (char)(0xE0 | (cp >> 12));
        t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        t[0] = (char)(0xF0 | (cp >> 18));
        t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    tpl_buf_put(b, t, n);
}

size_t tu_cp_count(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n;) {
        tu_next(s, n, &i);
        c++;
    }
    return c;
}

size_t tu_cp_offset(const char *s, size_t n, size_t k)
{
    size_t i = 0;
    while (k-- > 0 && i < n)
        tu_next(s, n, &i);
    return i;
}

bool tu_isspace(uint32_t c)
{
    return (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* ---- small helpers ---------------------------------------------------------- */

const char *tu_type_name(tv v)
{
    switch (v.kind) {
    case TV_UNDEF: return "Undefined";
    case TV_NONE: return "NoneType";
    case TV_BOOL: return "bool";
    case TV_INT: return "int";
    case TV_FLOAT: return "float";
    case TV_STR: return v.safe ? "Markup" : "str";
    case TV_ARRAY: return v.safe ? "tuple" : "list";
    case TV_OBJECT: return "dict";
    case TV_OPAQUE: return v.op.type && v.op.type->name ? v.op.type->name : "object";
    }
    return "object";
}

tv tu_buf_value(tpl_buf *b, bool safe)
{
    const char *s = tpl_buf_cstr(b);
    return tv_strn(s, b->len, safe);
}

tv tu_str_value(tpl_rt *rt, const char *s, size_t n, bool safe)
{
    return tv_strn(tpl_strndup(rt, s, n), n, safe);
}

tv tu_array_value(json_t *a)
{
    tv v = {.kind = TV_ARRAY, .json = a};
    return v;
}

json_t *tu_new_array(tpl_rt *rt) { return tpl_keep(rt, json_array()); }

int tu_undefined_error(tpl_rt *rt, tv v)
{
    return tpl_error(rt, "'%s' is undefined", v.undef_name ? v.undef_name : "value");
}

bool tu_is_num(tv v) { return v.kind == TV_BOOL || v.kind == TV_INT || v.kind == TV_FLOAT; }

/* bool and int as int64 */
static int64_t as_i(tv v) { return v.kind == TV_BOOL ? (int64_t)v.b : v.i; }

bool tu_arg(const tv *args, size_t nargs, const tpl_kwarg *kw, size_t nkw, size_t pos,
            const char *name, tv *out)
{
    if (pos < nargs) {
        *out = args[pos];
        return true;
    }
    for (size_t i = 0; i < nkw; i++)
        if (name && strcmp(kw[i].name, name) == 0) {
            *out = kw[i].value;
            return true;
        }
    return false;
}

int tu_int_arg(tpl_rt *rt, tv v, const char *what, int64_t *out)
{
    if (v.kind == TV_INT || v.kind == TV_BOOL) {
        *out = as_i(v);
        return 0;
    }
    return tpl_error(rt, "%s: an integer is required, not '%s'", what, tu_type_name(v));
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char **tu_sorted_keys(tpl_rt *rt, json_t *obj, size_t *n)
{
    *n = json_object_size(obj);
    const char **keys = tpl_alloc(rt, (*n ? *n : 1) * sizeof *keys);
    size_t i = 0;
    const char *k;
    json_t *e;
    json_object_foreach(obj, k, e) keys[i++] = k;
    qsort(keys, *n, sizeof *keys, cmp_key);
    return keys;
}
