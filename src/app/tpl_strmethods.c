/*
 * tpl_strmethods.c — the str methods templates call ('a b'.split(),
 * s.upper(), s.replace(...), s.format(...) is in tpl_format.c), with
 * Python's semantics: its whitespace (str.isspace) for split and strip,
 * its full Unicode case mappings (through libunistring: 'ß'.upper() is
 * 'SS', str.title() and capitalize() use title case), code point indexes
 * for find/count. A Markup keeps being Markup where markupsafe wraps the
 * method (upper, lower, strip, replace with its arguments escaped, ...).
 */
#include "app/tpl_vutil.h"

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

/* a piece of a split: Markup.split gives Markup */
static void split_push(json_t *a, bool safe, const char *p, size_t n)
{
    json_array_append_new(a, tu_json(tv_strn(p, n, safe)));
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
            split_push(a, s.safe, p + i, (size_t)at - i);
            i = (size_t)at + sep->str.len;
            done++;
        }
        split_push(a, s.safe, p + i, n - i);
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
                split_push(a, s.safe, p + i, n - i);
                break;
            }
            size_t st = i;
            while (i < n) {
                size_t k = i;
                if (tu_isspace(tu_next(p, n, &k)))
                    break;
                i = k;
            }
            split_push(a, s.safe, p + st, i - st);
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

int tu_str_method(tpl_rt *rt, tv v, const char *name, const tv *args, size_t nargs,
                      const tpl_kwarg *kw, size_t nkw, tv *out, bool *found)
{
    if (strcmp(name, "format") == 0)
        return tu_str_format(rt, v, args, nargs, kw, nkw, out);
    if (strcmp(name, "upper") == 0 || strcmp(name, "lower") == 0 ||
        strcmp(name, "title") == 0 || strcmp(name, "capitalize") == 0 ||
        strcmp(name, "swapcase") == 0) {
        if (tu_want_args(rt, name, nargs, nkw, 0, 0) < 0)
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
        if (tu_want_args(rt, name, nargs, nkw, 0, 1) < 0)
            return -1;
        const tv *chars = nargs && args[0].kind != TV_NONE ? &args[0] : NULL;
        if (chars && tu_want_str(rt, *chars, "strip arg") < 0)
            return -1;
        *out = tu_strip(rt, v, chars, name[0] != 'r', name[0] != 'l');
        return 0;
    }
    if (strcmp(name, "startswith") == 0 || strcmp(name, "endswith") == 0) {
        if (tu_want_args(rt, name, nargs, nkw, 1, 1) < 0)
            return -1;
        bool end = name[0] == 'e';
        if (args[0].kind == TV_ARRAY) {
            size_t i;
            json_t *e;
            bool r = false;
            json_array_foreach(args[0].json, i, e) {
                tv a = tv_from_json(e);
                if (tu_want_str(rt, a, "tuple item") < 0)
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
        if (tu_want_args(rt, name, nargs, nkw, 1, 1) < 0 || tu_want_str(rt, args[0], "argument") < 0)
            return -1;
        bool end = name[6] == 's';
        *out = v;
        out->safe = false; /* not a Markup method (markupsafe 2.1): a str */
        if (affix_match(v, args[0], end))
            *out = tu_str_value(rt, end ? v.str.s : v.str.s + args[0].str.len,
                                v.str.len - args[0].str.len, false);
        return 0;
    }
    if (strcmp(name, "replace") == 0) {
        if (tu_want_args(rt, name, nargs, nkw, 2, 3) < 0 || tu_want_str(rt, args[0], "replace arg") < 0 ||
            tu_want_str(rt, args[1], "replace arg") < 0)
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
        if (sep.kind != TV_NONE && tu_want_str(rt, sep, "sep") < 0)
            return -1;
        return py_split(rt, v, sep.kind == TV_NONE ? NULL : &sep, maxsplit, out);
    }
    if (strcmp(name, "join") == 0) {
        if (tu_want_args(rt, name, nargs, nkw, 1, 1) < 0)
            return -1;
        return tu_join_strings(rt, v, args[0], out);
    }
    if (strcmp(name, "count") == 0 || strcmp(name, "find") == 0 || strcmp(name, "index") == 0 ||
        strcmp(name, "rfind") == 0) {
        if (tu_want_args(rt, name, nargs, nkw, 1, 1) < 0 || tu_want_str(rt, args[0], "substring") < 0)
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
        if (tu_want_args(rt, name, nargs, nkw, 0, 0) < 0)
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
        if (tu_want_args(rt, name, nargs, nkw, 1, 2) < 0)
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
        if (tu_want_args(rt, name, nargs, nkw, 1, 1) < 0)
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

