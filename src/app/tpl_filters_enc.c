/*
 * tpl_filters_enc.c — Jinja 3.1's builtin filters that encode values:
 * tojson (Jinja's HTML-safe json.dumps), urlencode (urllib's quoting) and
 * xmlattr.
 */
#include "app/tpl_vutil.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- encodings ---------------------------------------------------------------- */

/* json.dumps(sort_keys=True) with htmlsafe_json_dumps' escapes */
static int json_put_str(tpl_buf *b, const char *s, size_t n)
{
    tpl_buf_putc(b, '"');
    for (size_t i = 0; i < n;) {
        uint32_t c = tu_next(s, n, &i);
        char x[16];
        switch (c) {
        case '"': tpl_buf_puts(b, "\\\""); continue;
        case '\\': tpl_buf_puts(b, "\\\\"); continue;
        case '\n': tpl_buf_puts(b, "\\n"); continue;
        case '\r': tpl_buf_puts(b, "\\r"); continue;
        case '\t': tpl_buf_puts(b, "\\t"); continue;
        case '\b': tpl_buf_puts(b, "\\b"); continue;
        case '\f': tpl_buf_puts(b, "\\f"); continue;
        case '<': tpl_buf_puts(b, "\\u003c"); continue;
        case '>': tpl_buf_puts(b, "\\u003e"); continue;
        case '&': tpl_buf_puts(b, "\\u0026"); continue;
        case '\'': tpl_buf_puts(b, "\\u0027"); continue;
        default: break;
        }
        if (c >= 0x20 && c < 0x7F) {
            tpl_buf_putc(b, (char)c);
        } else if (c < 0x10000) {
            snprintf(x, sizeof x, "\\u%04x", c);
            tpl_buf_puts(b, x);
        } else {
            uint32_t v = c - 0x10000;
            snprintf(x, sizeof x, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
            tpl_buf_puts(b, x);
        }
    }
    tpl_buf_putc(b, '"');
    return 0;
}

static void json_newline(tpl_buf *b, const char *indent, size_t il, int level)
{
    tpl_buf_putc(b, '\n');
    for (int i = 0; i < level; i++)
        tpl_buf_put(b, indent, il);
}

static int json_put(tpl_rt *rt, tpl_buf *b, tv v, const char *indent, size_t il, int level)
{
    if (level > 200)
        return tpl_error(rt, "maximum recursion depth exceeded while encoding a JSON object");
    char t[32];
    switch (v.kind) {
    case TV_NONE: tpl_buf_puts(b, "null"); return 0;
    case TV_BOOL: tpl_buf_puts(b, v.b ? "true" : "false"); return 0;
    case TV_INT:
        snprintf(t, sizeof t, "%" PRId64, v.i);
        tpl_buf_puts(b, t);
        return 0;
    case TV_FLOAT:
        if (isnan(v.f))
            tpl_buf_puts(b, "NaN");
        else if (isinf(v.f))
            tpl_buf_puts(b, v.f < 0 ? "-Infinity" : "Infinity");
        else
            tu_put_float(b, v.f);
        return 0;
    case TV_STR: return json_put_str(b, v.str.s, v.str.len);
    case TV_ARRAY: {
        size_t n = json_array_size(v.json);
        if (n == 0) {
            tpl_buf_puts(b, "[]");
            return 0;
        }
        tpl_buf_putc(b, '[');
        for (size_t i = 0; i < n; i++) {
            if (i)
                tpl_buf_puts(b, indent ? "," : ", ");
            if (indent)
                json_newline(b, indent, il, level + 1);
            if (json_put(rt, b, tv_from_json(json_array_get(v.json, i)), indent, il, level + 1) < 0)
                return -1;
        }
        if (indent)
            json_newline(b, indent, il, level);
        tpl_buf_putc(b, ']');
        return 0;
    }
    case TV_OBJECT: {
        size_t n = json_object_size(v.json), i = 0;
        if (n == 0) {
            tpl_buf_puts(b, "{}");
            return 0;
        }
        const char **keys = tu_sorted_keys(rt, v.json, &n); /* sort_keys=True */
        tpl_buf_putc(b, '{');
        for (i = 0; i < n; i++) {
            if (i)
                tpl_buf_puts(b, indent ? "," : ", ");
            if (indent)
                json_newline(b, indent, il, level + 1);
            json_put_str(b, keys[i], strlen(keys[i]));
            tpl_buf_puts(b, ": ");
            if (json_put(rt, b, tv_from_json(json_object_get(v.json, keys[i])), indent, il,
                         level + 1) < 0)
                return -1;
        }
        if (indent)
            json_newline(b, indent, il, level);
        tpl_buf_putc(b, '}');
        return 0;
    }
    default:
        return tpl_error(rt, "Object of type %s is not JSON serializable", tu_type_name(v));
    }
}

TU_FILTER(tf_tojson)
{
    FARGS("tojson", "indent");
    tv ind = tu_param(&fa, 0, "indent", tv_none());
    const char *indent = NULL;
    size_t il = 0;
    if (ind.kind == TV_STR) {
        indent = ind.str.s;
        il = ind.str.len;
    } else if (ind.kind != TV_NONE) {
        int64_t w;
        if (tu_int_arg(rt, ind, "tojson indent", &w) < 0)
            return -1;
        if (w < 0)
            w = 0;
        if (w > 1000)
            w = 1000;
        char *sp = tpl_alloc(rt, (size_t)w + 1);
        memset(sp, ' ', (size_t)w);
        indent = sp;
        il = (size_t)w;
    }
    tpl_buf b;
    tpl_buf_init(&b, rt);
    if (json_put(rt, &b, in, indent, il, 0) < 0)
        return -1;
    *out = tu_buf_value(&b, true);
    return 0;
}

/* urllib.parse.quote(str(v).encode(), safe) */
static int url_quote(tpl_rt *rt, tpl_buf *b, tv v, bool for_qs)
{
    tv s;
    if (tv_to_str(rt, v, &s) < 0)
        return -1;
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < s.str.len; i++) {
        unsigned char c = (unsigned char)s.str.s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '_' || c == '.' || c == '-' || c == '~' || (c == '/' && !for_qs)) {
            tpl_buf_putc(b, (char)c);
        } else if (c == ' ' && for_qs) {
            tpl_buf_putc(b, '+');
        } else {
            tpl_buf_putc(b, '%');
            tpl_buf_putc(b, hex[c >> 4]);
            tpl_buf_putc(b, hex[c & 15]);
        }
    }
    return 0;
}

TU_FILTER(tf_urlencode)
{
    NOARGS("urlencode");
    tpl_buf b;
    tpl_buf_init(&b, rt);
    if (in.kind == TV_OBJECT) {
        const char *k;
        json_t *e;
        bool first = true;
        json_object_foreach(in.json, k, e) {
            if (!first)
                tpl_buf_putc(&b, '&');
            first = false;
            if (url_quote(rt, &b, tv_strn(k, strlen(k), false), true) < 0)
                return -1;
            tpl_buf_putc(&b, '=');
            if (url_quote(rt, &b, tv_from_json(e), true) < 0)
                return -1;
        }
    } else if (in.kind == TV_ARRAY || in.kind == TV_UNDEF) {
        tv *it;
        size_t n;
        if (tv_iterate(rt, in, &it, &n) < 0)
            return -1;
        for (size_t i = 0; i < n; i++) {
            tv *pair;
            size_t pn;
            if (it[i].kind != TV_ARRAY && it[i].kind != TV_STR)
                return tpl_error(rt, "cannot unpack non-iterable %s object", tu_type_name(it[i]));
            if (tv_iterate(rt, it[i], &pair, &pn) < 0)
                return -1;
            if (pn != 2)
                return tpl_error(rt, "%s values to unpack (expected 2, got %zu)",
                                 pn > 2 ? "too many" : "not enough", pn);
            if (i)
                tpl_buf_putc(&b, '&');
            if (url_quote(rt, &b, pair[0], true) < 0)
                return -1;
            tpl_buf_putc(&b, '=');
            if (url_quote(rt, &b, pair[1], true) < 0)
                return -1;
        }
    } else {
        if (url_quote(rt, &b, in, false) < 0)
            return -1;
    }
    *out = tu_buf_value(&b, false);
    return 0;
}

TU_FILTER(tf_xmlattr)
{
    FARGS("xmlattr", "autospace");
    bool autospace = tv_truthy(tu_param(&fa, 0, "autospace", tv_bool(true)));
    if (in.kind != TV_OBJECT)
        return tpl_error(rt, "'%s' object has no attribute 'items'", tu_type_name(in));
    tpl_buf b;
    tpl_buf_init(&b, rt);
    const char *k;
    json_t *e;
    json_object_foreach(in.json, k, e) {
        tv v = tv_from_json(e);
        if (v.kind == TV_NONE)
            continue;
        for (const char *p = k; *p; p++)
            if (strchr(" \t\n\r\f\v/>=", *p)) {
                tpl_buf r;
                tpl_buf_init(&r, rt);
                tv_repr(rt, &r, tv_strn(k, strlen(k), false));
                return tpl_error(rt, "Invalid character in attribute name: %s", tpl_buf_cstr(&r));
            }
        if (b.len || autospace)
            tpl_buf_putc(&b, ' ');
        tpl_buf_put_escaped(&b, k, strlen(k));
        tpl_buf_puts(&b, "=\"");
        if (tu_put_escaped_str(rt, &b, v) < 0)
            return -1;
        tpl_buf_putc(&b, '"');
    }
    *out = tu_buf_value(&b, tpl_autoescape(rt));
    return 0;
}
