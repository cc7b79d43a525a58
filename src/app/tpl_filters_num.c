/*
 * tpl_filters_num.c — Jinja 3.1's builtin filters on numbers (int, float,
 * abs, round, filesizeformat) and formatting (format, replace, pprint),
 * with Python's parsing of numbers in strings and its correctly rounded
 * round(). Encodings are in tpl_filters_enc.c, text filters in
 * tpl_filters_str.c, sequence filters and the tables in tpl_filters.c.
 */
#include "app/tpl_vutil.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unictype.h>

static int soft_str(tpl_rt *rt, tv v, tv *out) { return tv_to_str(rt, v, out); }

/* ---- numbers ------------------------------------------------------------------ */

/* ASCII case-insensitive equality of s[0..n) and the lowercase word w */
static bool ascii_ieq(const char *s, size_t n, const char *w)
{
    if (strlen(w) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]) != w[i])
            return false;
    return true;
}

/* s with every Unicode decimal digit (Nd: '٣', '１') as its ASCII digit,
 * as int() and float() read them */
static tv ascii_digits(tpl_rt *rt, tv s)
{
    bool ascii = true;
    for (size_t i = 0; i < s.str.len; i++)
        ascii = ascii && !((unsigned char)s.str.s[i] & 0x80);
    if (ascii)
        return s;
    tpl_buf b;
    tpl_buf_init(&b, rt);
    for (size_t i = 0; i < s.str.len;) {
        size_t at = i;
        uint32_t c = tu_next(s.str.s, s.str.len, &i);
        int d = c >= 0x80 && c < 0x110000 ? uc_decimal_value(c) : -1;
        if (d >= 0)
            tpl_buf_putc(&b, (char)('0' + d));
        else
            tpl_buf_put(&b, s.str.s + at, i - at);
    }
    return tu_buf_value(&b, false);
}

/* Python's float(str): whitespace around, a sign, digits with single '_'
 * between them, '.', an exponent, or inf/infinity/nan. */
static bool parse_py_float(tpl_rt *rt, tv s, double *out)
{
    tv t = ascii_digits(rt, tu_strip(rt, s, NULL, true, true));
    const char *p = t.str.s;
    size_t n = t.str.len;
    if (n == 0 || memchr(p, 0, n))
        return false;
    char *clean = tpl_alloc(rt, n + 1);
    size_t k = 0, i = 0;
    if (p[i] == '+' || p[i] == '-')
        clean[k++] = p[i++];
    const char *rest = p + i;
    size_t rn = n - i;
    if (ascii_ieq(rest, rn, "inf") || ascii_ieq(rest, rn, "infinity")) {
        *out = clean[0] == '-' ? -INFINITY : INFINITY;
        return true;
    }
    if (ascii_ieq(rest, rn, "nan")) {
        *out = NAN;
        return true;
    }
    bool digits = false, dot = false, exp = false, expdigits = false;
    char prev = 0;
    for (; i < n; i++) {
        char c = p[i];
        if (c >= '0' && c <= '9') {
            if (exp)
                expdigits = true;
            else
                digits = true;
            clean[k++] = c;
        } else if (c == '_') {
            if (!(prev >= '0' && prev <= '9') || i + 1 >= n || p[i + 1] < '0' || p[i + 1] > '9')
                return false;
        } else if (c == '.' && !dot && !exp) {
            dot = true;
            clean[k++] = c;
        } else if ((c == 'e' || c == 'E') && !exp && digits) {
            exp = true;
            clean[k++] = c;
            if (i + 1 < n && (p[i + 1] == '+' || p[i + 1] == '-'))
                clean[k++] = p[++i];
        } else {
            return false;
        }
        prev = c;
    }
    if (!digits || (exp && !expdigits))
        return false;
    clean[k] = 0;
    *out = strtod(clean, NULL);
    return true;
}

/* Python's int(str, base); false when it raises ValueError. */
static int parse_py_int(tpl_rt *rt, tv s, int64_t base, int64_t *out, bool *ok)
{
    *ok = false;
    if (base != 0 && (base < 2 || base > 36))
        return 0;
    tv t = ascii_digits(rt, tu_strip(rt, s, NULL, true, true));
    const char *p = t.str.s;
    size_t n = t.str.len, i = 0;
    bool neg = false;
    if (i < n && (p[i] == '+' || p[i] == '-'))
        neg = p[i++] == '-';
    bool prefixed = false;
    if (i + 1 < n && p[i] == '0') {
        char c = (char)(p[i + 1] | 0x20);
        int64_t pb = c == 'x' ? 16 : c == 'o' ? 8 : c == 'b' ? 2 : 0;
        if (pb && (base == 0 || base == pb)) {
            base = pb;
            i += 2;
            prefixed = true;
        }
    }
    bool base0 = base == 0;
    if (base0)
        base = 10;
    if (i >= n)
        return 0;
    uint64_t v = 0;
    bool any = false, lastus = prefixed; /* "0x_1" is valid: '_' may follow a prefix */
    bool allzero = true;
    size_t first = i;
    for (; i < n; i++) {
        char c = p[i];
        if (c == '_') {
            if (!lastus && !any)
                return 0;
            if (i + 1 >= n || p[i + 1] == '_')
                return 0;
            lastus = true;
            continue;
        }
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'z' ? c - 'a' + 10
                : c >= 'A' && c <= 'Z' ? c - 'A' + 10
                                       : 99;
        if (d >= base)
            return 0;
        if (d)
            allzero = false;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
            return tpl_error(rt, "integer overflow");
        v = v * (uint64_t)base + (uint64_t)d;
        any = true;
        lastus = false;
    }
    (void)first;
    if (!any)
        return 0;
    /* base 0 forbids leading zeros in a non-zero decimal ("010") */
    if (base0 && !prefixed && p[first] == '0' && !allzero)
        return 0;
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
        return tpl_error(rt, "integer overflow");
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    *ok = true;
    return 0;
}

static int float_to_int(tpl_rt *rt, double f, int64_t *out, bool *ok)
{
    *ok = false;
    if (isnan(f))
        return 0; /* ValueError */
    if (isinf(f))
        return tpl_error(rt, "cannot convert float infinity to integer");
    if (f >= 9223372036854775808.0 || f < -9223372036854775808.0)
        return tpl_error(rt, "integer overflow");
    *out = (int64_t)f;
    *ok = true;
    return 0;
}

TU_FILTER(tf_int)
{
    FARGS("int", "default", "base");
    tv def = tu_param(&fa, 0, "default", tv_int(0));
    int64_t base;
    if (tu_int_arg(rt, tu_param(&fa, 1, "base", tv_int(10)), "int base", &base) < 0)
        return -1;
    int64_t r;
    bool ok = false;
    switch (in.kind) {
    case TV_UNDEF: return tu_undefined_error(rt, in);
    case TV_BOOL: *out = tv_int(in.b); return 0;
    case TV_INT: *out = in; return 0;
    case TV_FLOAT:
        if (float_to_int(rt, in.f, &r, &ok) < 0)
            return -1;
        break;
    case TV_STR: {
        if (parse_py_int(rt, in, base, &r, &ok) < 0)
            return -1;
        if (!ok) { /* int(float(value)) */
            double f;
            if (parse_py_float(rt, in, &f) && float_to_int(rt, f, &r, &ok) < 0)
                return -1;
        }
        break;
    }
    default: break;
    }
    *out = ok ? tv_int(r) : def;
    return 0;
}

TU_FILTER(tf_float)
{
    FARGS("float", "default");
    tv def = tu_param(&fa, 0, "default", tv_float(0.0));
    double f;
    switch (in.kind) {
    case TV_UNDEF: return tu_undefined_error(rt, in);
    case TV_BOOL: *out = tv_float(in.b); return 0;
    case TV_INT: *out = tv_float((double)in.i); return 0;
    case TV_FLOAT: *out = in; return 0;
    case TV_STR: *out = parse_py_float(rt, in, &f) ? tv_float(f) : def; return 0;
    default: *out = def; return 0;
    }
}

TU_FILTER(tf_abs)
{
    NOARGS("abs");
    switch (in.kind) {
    case TV_UNDEF: return tu_undefined_error(rt, in);
    case TV_BOOL: *out = tv_int(in.b); return 0;
    case TV_INT:
        if (in.i == INT64_MIN)
            return tpl_error(rt, "integer overflow");
        *out = tv_int(in.i < 0 ? -in.i : in.i);
        return 0;
    case TV_FLOAT: *out = tv_float(fabs(in.f)); return 0;
    default: return tpl_error(rt, "bad operand type for abs(): '%s'", tu_type_name(in));
    }
}

/* Python's round(x, n) for n < 0 on a float: round the exact binary value
 * half to even at 10**-n. */
static double round_neg(tpl_rt *rt, double x, int64_t n)
{
    size_t cap = 1400;
    /* the exact decimal expansion of |x| (a double has at most 1074
     * fraction digits) */
    char *exact = tpl_alloc(rt, cap);
    snprintf(exact, cap, "%.1074f", fabs(x));
    char *dot = strchr(exact, '.');
    size_t il = (size_t)(dot - exact);
    size_t k = (size_t)-n; /* digits to drop from the integer part */
    bool neg = signbit(x);
    if (k > il) /* everything dropped: below half of 10**k */
        return neg ? -0.0 : 0.0;
    size_t keep = il - k;
    char *r = tpl_alloc(rt, il + 2);
    memcpy(r, exact, keep);
    r[keep] = 0;
    /* compare the dropped part with half */
    int cmp = 0;
    char first = exact[keep];
    if (first > '5')
        cmp = 1;
    else if (first < '5')
        cmp = -1;
    else {
        for (size_t i = keep + 1; i < strlen(exact); i++)
            if (exact[i] != '0' && exact[i] != '.') {
                cmp = 1;
                break;
            }
    }
    bool up = cmp > 0 || (cmp == 0 && keep > 0 && ((r[keep - 1] - '0') & 1));
    if (keep == 0) {
        up = cmp > 0; /* 0 is even */
        strcpy(r, "0");
        keep = 1;
    }
    if (up) {
        /* add one to the kept digits */
        size_t i = keep;
        while (i > 0 && r[i - 1] == '9')
            r[--i] = '0';
        if (i == 0) {
            memmove(r + 1, r, keep + 1);
            r[0] = '1';
            keep++;
        } else {
            r[i - 1]++;
        }
    }
    char *full = tpl_alloc(rt, keep + k + 2);
    memcpy(full, r, keep);
    memset(full + keep, '0', k);
    full[keep + k] = 0;
    double v = strtod(full, NULL);
    return neg ? -v : v;
}

TU_FILTER(tf_round)
{
    FARGS("round", "precision", "method");
    int64_t prec;
    tv method = tu_param(&fa, 1, "method", tv_strn("common", 6, false));
    if (tu_int_arg(rt, tu_param(&fa, 0, "precision", tv_int(0)), "round precision", &prec) < 0)
        return -1;
    if (method.kind != TV_STR || (strcmp(method.str.s, "common") && strcmp(method.str.s, "ceil") &&
                                  strcmp(method.str.s, "floor")))
        return tpl_error(rt, "method must be common, ceil or floor");
    if (in.kind == TV_UNDEF)
        return tu_undefined_error(rt, in);
    if (!tu_is_num(in))
        return tpl_error(rt, "type %s doesn't define __round__ method", tu_type_name(in));
    if (method.str.s[0] != 'c' || method.str.s[1] == 'e') {
        /* math.ceil/floor(value * 10 ** precision) / 10 ** precision */
        double x = in.kind == TV_FLOAT ? in.f : in.kind == TV_BOOL ? in.b : (double)in.i;
        double p = pow(10.0, (double)prec);
        double y = x * p;
        if (!isfinite(y))
            return tpl_error(rt, "cannot convert float infinity to integer");
        y = method.str.s[0] == 'f' ? floor(y) : ceil(y);
        *out = tv_float(y / p);
        return 0;
    }
    if (in.kind != TV_FLOAT) {
        /* round(int, n) is an int */
        int64_t x = in.kind == TV_BOOL ? in.b : in.i;
        if (prec >= 0) {
            *out = tv_int(x);
            return 0;
        }
        if (prec < -18) {
            *out = tv_int(0);
            return 0;
        }
        int64_t p = 1;
        for (int64_t i = 0; i < -prec; i++)
            p *= 10;
        uint64_t m = x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
        uint64_t q = m / (uint64_t)p, r = m % (uint64_t)p;
        if (2 * r > (uint64_t)p || (2 * r == (uint64_t)p && (q & 1)))
            q++;
        if (q > (uint64_t)INT64_MAX / (uint64_t)p)
            return tpl_error(rt, "integer overflow");
        int64_t v = (int64_t)(q * (uint64_t)p);
        *out = tv_int(x < 0 ? -v : v);
        return 0;
    }
    double x = in.f;
    if (!isfinite(x) || prec > 323) {
        *out = in;
        return 0;
    }
    if (prec < -308) {
        *out = tv_float(0.0 * x);
        return 0;
    }
    if (prec >= 0) {
        /* glibc's printf rounds the exact value half to even: Python's
         * correctly rounded round() */
        char *buf = tpl_alloc(rt, 1400);
        snprintf(buf, 1400, "%.*f", (int)prec, x);
        double r = strtod(buf, NULL);
        if (isinf(r))
            return tpl_error(rt, "rounded value too large to represent");
        *out = tv_float(r);
        return 0;
    }
    *out = tv_float(round_neg(rt, x, prec));
    return 0;
}

TU_FILTER(tf_filesizeformat)
{
    FARGS("filesizeformat", "binary");
    bool binary = tv_truthy(tu_param(&fa, 0, "binary", tv_bool(false)));
    double bytes;
    if (in.kind == TV_UNDEF)
        return tu_undefined_error(rt, in);
    if (in.kind == TV_STR) {
        if (!parse_py_float(rt, in, &bytes))
            return tpl_error(rt, "could not convert string to float: '%s'", in.str.s);
    } else if (tu_is_num(in)) {
        bytes = in.kind == TV_FLOAT ? in.f : in.kind == TV_BOOL ? in.b : (double)in.i;
    } else {
        return tpl_error(rt, "float() argument must be a string or a real number, not '%s'",
                         tu_type_name(in));
    }
    static const char *const dec[] = {"kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
    static const char *const bin[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"};
    double base = binary ? 1024 : 1000;
    char t[512];
    if (bytes == 1) {
        snprintf(t, sizeof t, "1 Byte");
    } else if (bytes < base) {
        int64_t r;
        bool ok;
        if (float_to_int(rt, bytes, &r, &ok) < 0)
            return -1;
        if (!ok)
            return tpl_error(rt, "cannot convert float NaN to integer");
        snprintf(t, sizeof t, "%" PRId64 " Bytes", r);
    } else {
        size_t i = 0;
        double unit = base * base;
        for (; i < 8; i++) {
            unit = pow(base, (double)i + 2);
            if (bytes < unit)
                break;
        }
        if (i == 8)
            i = 7;
        snprintf(t, sizeof t, "%.1f %s", base * bytes / unit, binary ? bin[i] : dec[i]);
    }
    *out = tu_str_value(rt, t, strlen(t), false);
    return 0;
}

/* ---- formatting ---------------------------------------------------------------- */

TU_FILTER(tf_format)
{
    if (nargs && nkw)
        return tpl_error(rt, "can't handle positional and keyword arguments at the same time");
    tv s;
    if (soft_str(rt, in, &s) < 0)
        return -1;
    if (nkw) {
        json_t *o = tpl_keep(rt, json_object());
        for (size_t i = 0; i < nkw; i++)
            json_object_set_new(o, kw[i].name, tu_json(kw[i].value));
        tv d = {.kind = TV_OBJECT, .json = o};
        return tu_percent_format_items(rt, s, &d, 1, o, out);
    }
    /* value % args: always a tuple (an undefined argument prints "") */
    return tu_percent_format_items(rt, s, args, nargs, NULL, out);
}

TU_FILTER(tf_replace)
{
    FARGS("replace", "old", "new", "count");
    tv old, nw;
    if (!tu_arg(args, nargs, kw, nkw, 0, "old", &old) || !tu_arg(args, nargs, kw, nkw, 1, "new", &nw))
        return tpl_error(rt, "replace() missing required arguments 'old' and 'new'");
    tv c = tu_param(&fa, 2, "count", tv_none());
    int64_t count = -1;
    if (c.kind != TV_NONE && tu_int_arg(rt, c, "replace count", &count) < 0)
        return -1;
    tv s, so, sn;
    if (soft_str(rt, in, &s) < 0 || soft_str(rt, old, &so) < 0 || soft_str(rt, nw, &sn) < 0)
        return -1;
    if (!tpl_autoescape(rt)) {
        /* str(s).replace(str(old), str(new)): plain strings */
        s.safe = so.safe = sn.safe = false;
        *out = tu_replace(rt, s, so, sn, count, false);
        return 0;
    }
    if (so.safe || (sn.safe && !s.safe))
        s = tu_escaped(rt, s);
    if (s.safe) { /* Markup.replace escapes its arguments */
        so = tu_escaped(rt, so);
        sn = tu_escaped(rt, sn);
    }
    *out = tu_replace(rt, s, so, sn, count, s.safe);
    return 0;
}

/* pprint: pformat(value) — repr with dict keys sorted, and what does not
 * fit in 80 columns broken over lines the way pprint.PrettyPrinter does
 * (lists, tuples, dicts one item a line; long strings in pieces). */
static int pp(tpl_rt *rt, tpl_buf *b, tv v, int depth)
{
    if (depth > 200)
        return tpl_error(rt, "maximum recursion depth exceeded");
    if (v.kind == TV_ARRAY) {
        tpl_buf_putc(b, v.safe ? '(' : '[');
        size_t i;
        json_t *e;
        json_array_foreach(v.json, i, e) {
            if (i)
                tpl_buf_puts(b, ", ");
            if (pp(rt, b, tv_from_json(e), depth + 1) < 0)
                return -1;
        }
        if (v.safe && json_array_size(v.json) == 1)
            tpl_buf_putc(b, ',');
        tpl_buf_putc(b, v.safe ? ')' : ']');
        return 0;
    }
    if (v.kind == TV_OBJECT) {
        size_t n, i;
        const char **keys = tu_sorted_keys(rt, v.json, &n);
        tpl_buf_putc(b, '{');
        for (i = 0; i < n; i++) {
            if (i)
                tpl_buf_puts(b, ", ");
            tv_repr(rt, b, tv_strn(keys[i], strlen(keys[i]), false));
            tpl_buf_puts(b, ": ");
            if (pp(rt, b, tv_from_json(json_object_get(v.json, keys[i])), depth + 1) < 0)
                return -1;
        }
        tpl_buf_putc(b, '}');
        return 0;
    }
    return tv_repr(rt, b, v);
}

static const char *pp_repr(tpl_rt *rt, tv v, size_t *cps)
{
    tpl_buf b;
    tpl_buf_init(&b, rt);
    pp(rt, &b, v, 0);
    const char *s = tpl_buf_cstr(&b);
    *cps = tu_cp_count(s, b.len);
    return s;
}

static void pf(tpl_rt *rt, tpl_buf *b, tv v, int64_t indent, int64_t allowance, int level);

static void pf_spaces(tpl_buf *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        tpl_buf_putc(b, ' ');
}

static void pf_items(tpl_rt *rt, tpl_buf *b, tv *items, size_t n, int64_t indent,
                     int64_t allowance, int level)
{
    indent += 1;
    for (size_t i = 0; i < n; i++) {
        if (i) {
            tpl_buf_puts(b, ",\n");
            pf_spaces(b, indent);
        }
        pf(rt, b, items[i], indent, i + 1 == n ? allowance : 1, level);
    }
}

/* PrettyPrinter._pprint_str: a long string as adjacent literals */
static void pf_str(tpl_rt *rt, tpl_buf *b, tv v, int64_t indent, int64_t allowance, int level)
{
    if (level == 1) {
        indent += 1;
        allowance += 1;
    }
    int64_t maxw = 80 - indent, maxw1 = maxw;
    const char **chunks = tpl_alloc(rt, (v.str.len + 2) * sizeof *chunks);
    size_t nch = 0;
    const char *s = v.str.s;
    size_t n = v.str.len;
    const char *lastrep = "";
    for (size_t i = 0; i < n;) {
        /* the line with its line break (splitlines(True)) */
        size_t st = i;
        while (i < n && s[i] != '\n' && s[i] != '\r')
            i++;
        if (i < n)
            i += (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') ? 2 : 1;
        bool lastline = i >= n;
        size_t cps;
        const char *rep = pp_repr(rt, tv_strn(tpl_strndup(rt, s + st, i - st), i - st, false), &cps);
        lastrep = rep;
        if (lastline)
            maxw1 -= allowance;
        if ((int64_t)cps <= maxw1) {
            chunks[nch++] = rep;
            continue;
        }
        /* parts: \S*\s* */
        int64_t maxw2 = maxw;
        size_t cur = st, p = st;
        while (p < i) {
            size_t q = p;
            while (q < i) {
                size_t r = q;
                if (tu_isspace(tu_next(s, i, &r)))
                    break;
                q = r;
            }
            while (q < i) {
                size_t r = q;
                if (!tu_isspace(tu_next(s, i, &r)))
                    break;
                q = r;
            }
            bool lastpart = q >= i;
            if (lastpart && lastline)
                maxw2 -= allowance;
            size_t c2;
            pp_repr(rt, tv_strn(tpl_strndup(rt, s + cur, q - cur), q - cur, false), &c2);
            if ((int64_t)c2 > maxw2) {
                if (p > cur) {
                    size_t c3;
                    chunks[nch++] = pp_repr(rt, tv_strn(tpl_strndup(rt, s + cur, p - cur), p - cur, false), &c3);
                }
                cur = p;
            }
            p = q;
        }
        if (cur < i) {
            size_t c3;
            chunks[nch++] = pp_repr(rt, tv_strn(tpl_strndup(rt, s + cur, i - cur), i - cur, false), &c3);
        }
    }
    if (nch == 1) {
        tpl_buf_puts(b, lastrep);
        return;
    }
    if (level == 1)
        tpl_buf_putc(b, '(');
    for (size_t i = 0; i < nch; i++) {
        if (i) {
            tpl_buf_putc(b, '\n');
            pf_spaces(b, indent);
        }
        tpl_buf_puts(b, chunks[i]);
    }
    if (level == 1)
        tpl_buf_putc(b, ')');
}

static void pf(tpl_rt *rt, tpl_buf *b, tv v, int64_t indent, int64_t allowance, int level)
{
    size_t cps;
    const char *rep = pp_repr(rt, v, &cps);
    if ((int64_t)cps <= 80 - indent - allowance || level > 200 ||
        (v.kind != TV_ARRAY && v.kind != TV_OBJECT && !(v.kind == TV_STR && !v.safe && v.str.len))) {
        tpl_buf_puts(b, rep);
        return;
    }
    level++;
    if (v.kind == TV_STR) {
        pf_str(rt, b, v, indent, allowance, level);
        return;
    }
    if (v.kind == TV_ARRAY) {
        tv *items;
        size_t n;
        tv_iterate(rt, v, &items, &n);
        const char *end = v.safe ? (n == 1 ? ",)" : ")") : "]";
        tpl_buf_putc(b, v.safe ? '(' : '[');
        pf_items(rt, b, items, n, indent, allowance + (int64_t)strlen(end), level);
        tpl_buf_puts(b, end);
        return;
    }
    size_t n, i;
    const char **keys = tu_sorted_keys(rt, v.json, &n);
    tpl_buf_putc(b, '{');
    int64_t ind = indent + 1;
    for (i = 0; i < n; i++) {
        size_t kc;
        const char *kr = pp_repr(rt, tv_strn(keys[i], strlen(keys[i]), false), &kc);
        tpl_buf_puts(b, kr);
        tpl_buf_puts(b, ": ");
        pf(rt, b, tv_from_json(json_object_get(v.json, keys[i])), ind + (int64_t)kc + 2,
           i + 1 == n ? allowance + 1 : 1, level);
        if (i + 1 < n) {
            tpl_buf_puts(b, ",\n");
            pf_spaces(b, ind);
        }
    }
    tpl_buf_putc(b, '}');
}

TU_FILTER(tf_pprint)
{
    NOARGS("pprint");
    tpl_buf b;
    tpl_buf_init(&b, rt);
    tpl_buf probe; /* fails first on what pf cannot print (too deep) */
    tpl_buf_init(&probe, rt);
    if (pp(rt, &probe, in, 0) < 0)
        return -1;
    pf(rt, &b, in, 0, 0, 0);
    *out = tu_buf_value(&b, false);
    return 0;
}
