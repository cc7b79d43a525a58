/*
 * tpl_format.c — Python's printf-style formatting, `fmt % args`, for the
 * `%` operator on strings and the `format` filter: %s %r %a %d %i %u %o %x
 * %X %e %E %f %F %g %G %c %% with flags (- + space # 0), width, precision
 * (both may be *), and %(name)s with a mapping. On a Markup format string
 * the arguments are escaped and the result is Markup (markupsafe's
 * Markup.__mod__).
 */
#include "app/tpl_vutil.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fmt_args {
    tv single;       /* the argument when not a tuple */
    const tv *tuple; /* a tuple: its items one by one */
    json_t *mapping; /* a dict, for %(name)s */
    size_t next, count;
} fmt_args;

static int next_arg(tpl_rt *rt, fmt_args *a, tv *out)
{
    if (a->next >= a->count)
        return tpl_error(rt, "not enough arguments for format string");
    *out = a->tuple ? a->tuple[a->next] : a->single;
    a->next++;
    return 0;
}

/* pad s (len bytes, cps code points) to width with spaces */
static void put_padded(tpl_buf *b, const char *s, size_t len, size_t cps, int64_t width, bool left)
{
    size_t pad = width > 0 && (uint64_t)width > cps ? (size_t)width - cps : 0;
    if (!left)
        for (size_t i = 0; i < pad; i++)
            tpl_buf_putc(b, ' ');
    tpl_buf_put(b, s, len);
    if (left)
        for (size_t i = 0; i < pad; i++)
            tpl_buf_putc(b, ' ');
}

/* an int as %d %o %x %X with Python's sign and prefix handling */
static void put_int(tpl_buf *b, int64_t v, char conv, const char *flags, int64_t width, int64_t prec)
{
    bool left = strchr(flags, '-'), zero = strchr(flags, '0') && !left, alt = strchr(flags, '#');
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    char digits[32], prefix[8] = "";
    size_t pl = 0;
    if (v < 0)
        prefix[pl++] = '-';
    else if (strchr(flags, '+'))
        prefix[pl++] = '+';
    else if (strchr(flags, ' '))
        prefix[pl++] = ' ';
    if (conv == 'o') {
        snprintf(digits, sizeof digits, "%" PRIo64, mag);
        if (alt) {
            prefix[pl++] = '0';
            prefix[pl++] = 'o';
        }
    } else if (conv == 'x' || conv == 'X') {
        snprintf(digits, sizeof digits, conv == 'x' ? "%" PRIx64 : "%" PRIX64, mag);
        if (alt) {
            prefix[pl++] = '0';
            prefix[pl++] = conv;
        }
    } else {
        snprintf(digits, sizeof digits, "%" PRIu64, mag);
    }
    prefix[pl] = 0;
    size_t dl = strlen(digits);
    size_t zeros = prec > 0 && (uint64_t)prec > dl ? (size_t)prec - dl : 0;
    size_t total = pl + zeros + dl;
    if (zero && width > 0 && (uint64_t)width > total) {
        zeros += (size_t)width - total;
        total = (size_t)width;
    }
    size_t pad = width > 0 && (uint64_t)width > total ? (size_t)width - total : 0;
    if (!left)
        for (size_t i = 0; i < pad; i++)
            tpl_buf_putc(b, ' ');
    tpl_buf_puts(b, prefix);
    for (size_t i = 0; i < zeros; i++)
        tpl_buf_putc(b, '0');
    tpl_buf_puts(b, digits);
    if (left)
        for (size_t i = 0; i < pad; i++)
            tpl_buf_putc(b, ' ');
}

static void put_float(tpl_buf *b, double v, char conv, const char *flags, int64_t width, int64_t prec)
{
    char f[32], out[512];
    if (width > 200)
        width = 200;
    if (prec > 120)
        prec = 120;
    snprintf(f, sizeof f, "%%%s%s*.*%c", flags, "", conv);
    int n = snprintf(out, sizeof out, f, (int)width, (int)(prec < 0 ? 6 : prec), v);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof out) {
        /* a huge %f: print it without width into a big buffer */
        char *big = tpl_alloc(b->rt, (size_t)n + 1);
        snprintf(big, (size_t)n + 1, f, (int)width, (int)(prec < 0 ? 6 : prec), v);
        tpl_buf_put(b, big, (size_t)n);
        return;
    }
    tpl_buf_put(b, out, (size_t)n);
}

static int conv_number(tpl_rt *rt, tv v, char conv, bool want_int, tv *out)
{
    if (v.kind == TV_UNDEF)
        return tu_undefined_error(rt, v);
    if (v.kind == TV_INT || v.kind == TV_BOOL || v.kind == TV_FLOAT) {
        if (want_int && v.kind == TV_FLOAT) {
            if (conv == 'd' || conv == 'i' || conv == 'u') {
                if (!isfinite(v.f))
                    return tpl_error(rt, "cannot convert float %s to integer",
                                     isnan(v.f) ? "NaN" : "infinity");
                if (v.f >= 9223372036854775808.0 || v.f < -9223372036854775808.0)
                    return tpl_error(rt, "integer overflow");
                *out = tv_int((int64_t)v.f);
                return 0;
            }
            return tpl_error(rt, "%%%c format: an integer is required, not float", conv);
        }
        *out = v;
        return 0;
    }
    if (want_int && conv != 'd' && conv != 'i' && conv != 'u')
        return tpl_error(rt, "%%%c format: an integer is required, not %s", conv, tu_type_name(v));
    return tpl_error(rt, "%%%c format: a real number is required, not %s", conv, tu_type_name(v));
}

/* Python takes only a tuple as the arguments; a list is one argument (a
 * "mapping" that may go unused). Tuple literals may reach here as lists
 * (an engine that does not make them with tv_tuple), so a list is taken
 * as a tuple too while this is 1. */
#define TU_LIST_AS_TUPLE 0

static int percent_format(tpl_rt *rt, tv fmt, const tv *items, size_t nitems, json_t *mapping,
                          bool unused_ok, tv *out);

int tu_percent_format(tpl_rt *rt, tv fmt, tv args, tv *out)
{
    if (args.kind == TV_ARRAY && (args.safe || TU_LIST_AS_TUPLE)) {
        tv *items;
        size_t n;
        if (tv_iterate(rt, args, &items, &n) < 0)
            return -1;
        return tu_percent_format_items(rt, fmt, items, n, NULL, out);
    }
    if (args.kind == TV_OBJECT)
        return tu_percent_format_items(rt, fmt, &args, 1, args.json, out);
    if (args.kind == TV_ARRAY) /* a list: one argument, which may go unused */
        return percent_format(rt, fmt, &args, 1, NULL, true, out);
    return tu_percent_format_items(rt, fmt, &args, 1, NULL, out);
}

int tu_percent_format_items(tpl_rt *rt, tv fmt, const tv *items, size_t nitems, json_t *mapping,
                            tv *out)
{
    return percent_format(rt, fmt, items, nitems, mapping, false, out);
}

static int percent_format(tpl_rt *rt, tv fmt, const tv *items, size_t nitems, json_t *mapping,
                          bool unused_ok, tv *out)
{
    fmt_args a = {.tuple = items, .count = nitems, .mapping = mapping};
    bool used_mapping = false;
    bool safe = fmt.safe;
    const char *s = fmt.str.s;
    size_t n = fmt.str.len;
    tpl_buf b;
    tpl_buf_init(&b, rt);
    for (size_t i = 0; i < n;) {
        const char *pct = memchr(s + i, '%', n - i);
        if (!pct) {
            tpl_buf_put(&b, s + i, n - i);
            break;
        }
        tpl_buf_put(&b, s + i, (size_t)(pct - (s + i)));
        i = (size_t)(pct - s) + 1;
        tv arg;
        bool have = false;
        if (i < n && s[i] == '(') {
            size_t depth = 1, st = ++i;
            while (i < n && depth) {
                if (s[i] == '(')
                    depth++;
                else if (s[i] == ')')
                    depth--;
                i++;
            }
            if (depth)
                return tpl_error(rt, "incomplete format key");
            if (!a.mapping)
                return tpl_error(rt, "format requires a mapping");
            char *key = tpl_strndup(rt, s + st, i - 1 - st);
            json_t *j = json_object_get(a.mapping, key);
            if (!j)
                return tpl_error(rt, "KeyError: '%s'", key);
            arg = tv_from_json(j);
            have = true;
            used_mapping = true;
        }
        char flags[8];
        size_t fl = 0;
        while (i < n && strchr("-+ #0", s[i]) && s[i]) {
            if (fl < sizeof flags - 1 && !memchr(flags, s[i], fl))
                flags[fl++] = s[i];
            i++;
        }
        flags[fl] = 0;
        int64_t width = -1, prec = -1;
        if (i < n && s[i] == '*') {
            tv w;
            if (next_arg(rt, &a, &w) < 0 || tu_int_arg(rt, w, "* wants int", &width) < 0)
                return -1;
            i++;
        } else {
            while (i < n && s[i] >= '0' && s[i] <= '9' && width < 100000000)
                width = (width < 0 ? 0 : width * 10) + (s[i++] - '0');
        }
        if (i < n && s[i] == '.') {
            i++;
            prec = 0;
            if (i < n && s[i] == '*') {
                tv p;
                if (next_arg(rt, &a, &p) < 0 || tu_int_arg(rt, p, "* wants int", &prec) < 0)
                    return -1;
                i++;
            } else {
                while (i < n && s[i] >= '0' && s[i] <= '9' && prec < 100000000)
                    prec = prec * 10 + (s[i++] - '0');
            }
        }
        while (i < n && (s[i] == 'h' || s[i] == 'l' || s[i] == 'L'))
            i++;
        if (i >= n)
            return tpl_error(rt, "incomplete format");
        char conv = s[i++];
        if (conv == '%') {
            tpl_buf_putc(&b, '%');
            continue;
        }
        if (!have && next_arg(rt, &a, &arg) < 0)
            return -1;
        bool left = strchr(flags, '-') != NULL;
        switch (conv) {
        case 's':
        case 'r':
        case 'a': {
            tpl_buf t;
            tpl_buf_init(&t, rt);
            int rc;
            if (conv == 's' && safe)
                rc = tu_put_escaped_str(rt, &t, arg);
            else if (conv == 's')
                rc = tv_str(rt, &t, arg);
            else
                rc = tv_repr(rt, &t, arg);
            if (rc < 0)
                return -1;
            const char *ts = tpl_buf_cstr(&t);
            size_t tl = t.len;
            if (conv != 's' && safe) { /* repr under Markup is escaped too */
                tpl_buf e;
                tpl_buf_init(&e, rt);
                tpl_buf_put_escaped(&e, ts, tl);
                ts = tpl_buf_cstr(&e);
                tl = e.len;
            }
            if (prec >= 0)
                tl = tu_cp_offset(ts, tl, (size_t)prec);
            put_padded(&b, ts, tl, tu_cp_count(ts, tl), width, left);
            break;
        }
        case 'd':
        case 'i':
        case 'u':
        case 'o':
        case 'x':
        case 'X': {
            tv v;
            if (conv_number(rt, arg, conv, true, &v) < 0)
                return -1;
            put_int(&b, v.kind == TV_BOOL ? v.b : v.i, conv, flags, width, prec);
            break;
        }
        case 'e':
        case 'E':
        case 'f':
        case 'F':
        case 'g':
        case 'G': {
            tv v;
            if (conv_number(rt, arg, conv, false, &v) < 0)
                return -1;
            double d = v.kind == TV_FLOAT ? v.f : v.kind == TV_BOOL ? v.b : (double)v.i;
            put_float(&b, d, conv, flags, width, prec);
            break;
        }
        case 'c': {
            tpl_buf t;
            tpl_buf_init(&t, rt);
            if (arg.kind == TV_INT || arg.kind == TV_BOOL) {
                int64_t c = arg.kind == TV_BOOL ? arg.b : arg.i;
                if (c < 0 || c > 0x10FFFF)
                    return tpl_error(rt, "%%c arg not in range(0x110000)");
                tu_put_cp(&t, (uint32_t)c);
            } else if (arg.kind == TV_STR && tu_cp_count(arg.str.s, arg.str.len) == 1) {
                tpl_buf_put(&t, arg.str.s, arg.str.len);
            } else {
                return tpl_error(rt, "%%c requires an int or a unicode character, not %s",
                                 tu_type_name(arg));
            }
            put_padded(&b, tpl_buf_cstr(&t), t.len, 1, width, left);
            break;
        }
        default:
            return tpl_error(rt, "unsupported format character '%c' (0x%x) at index %zu", conv,
                             (unsigned)(unsigned char)conv, i - 1);
        }
    }
    if (!used_mapping && !a.mapping && !unused_ok && a.next < a.count)
        return tpl_error(rt, "not all arguments converted during string formatting");
    *out = tu_buf_value(&b, safe);
    return 0;
}

/* ---- str.format() and format specs ------------------------------------------ */

/* digits with a grouping character every three from the right (before
 * any '.' or 'e') */
static void put_grouped(tpl_buf *b, const char *s, size_t n, char group)
{
    size_t intlen = 0;
    while (intlen < n && s[intlen] >= '0' && s[intlen] <= '9')
        intlen++;
    for (size_t i = 0; i < intlen; i++) {
        if (i && (intlen - i) % 3 == 0)
            tpl_buf_putc(b, group);
        tpl_buf_putc(b, s[i]);
    }
    tpl_buf_put(b, s + intlen, n - intlen);
}

int tu_format_spec(tpl_rt *rt, tpl_buf *out, tv v, const char *spec, size_t n)
{
    if (n == 0)
        return tv_str(rt, out, v);
    /* [[fill]align][sign][#][0][width][grouping][.precision][type] */
    size_t i = 0, after_fill = 0;
    uint32_t fill = ' ';
    char align = 0, sign = 0, group = 0, type = 0;
    bool alt = false, zero = false;
    int64_t width = -1, prec = -1;
    uint32_t c0 = tu_next(spec, n, &after_fill);
    if (after_fill < n && strchr("<>=^", spec[after_fill])) {
        fill = c0;
        align = spec[after_fill];
        i = after_fill + 1;
    } else if (strchr("<>=^", spec[0])) {
        align = spec[0];
        i = 1;
    }
    if (i < n && (spec[i] == '+' || spec[i] == '-' || spec[i] == ' '))
        sign = spec[i++];
    if (i < n && spec[i] == '#') {
        alt = true;
        i++;
    }
    if (i < n && spec[i] == '0') {
        zero = true;
        i++;
    }
    while (i < n && spec[i] >= '0' && spec[i] <= '9' && width < 100000)
        width = (width < 0 ? 0 : width * 10) + (spec[i++] - '0');
    if (i < n && (spec[i] == ',' || spec[i] == '_'))
        group = spec[i++];
    if (i < n && spec[i] == '.') {
        i++;
        prec = 0;
        if (i >= n || spec[i] < '0' || spec[i] > '9')
            return tpl_error(rt, "Format specifier missing precision");
        while (i < n && spec[i] >= '0' && spec[i] <= '9' && prec < 100000)
            prec = prec * 10 + (spec[i++] - '0');
    }
    if (i < n)
        type = spec[i++];
    if (i < n)
        return tpl_error(rt, "Invalid format specifier");
    if (zero && !align) {
        fill = '0';
        align = '=';
    }
    tpl_buf body;
    tpl_buf_init(&body, rt);
    const char *signstr = "";
    char defalign = '>';
    if (v.kind == TV_STR) {
        if (type && type != 's')
            return tpl_error(rt, "Unknown format code '%c' for object of type 'str'", type);
        if (sign)
            return tpl_error(rt, "Sign not allowed in string format specifier");
        if (align == '=')
            return tpl_error(rt, "'=' alignment not allowed in string format specifier");
        size_t len = v.str.len;
        if (prec >= 0)
            len = tu_cp_offset(v.str.s, v.str.len, (size_t)prec);
        tpl_buf_put(&body, v.str.s, len);
        defalign = '<';
    } else if ((v.kind == TV_INT || v.kind == TV_BOOL) && !strchr("eEfFgG%", type ? type : 'd')) {
        int64_t x = v.kind == TV_BOOL ? v.b : v.i;
        if (prec >= 0)
            return tpl_error(rt, "Precision not allowed in integer format specifier");
        if (type == 'c') {
            if (x < 0 || x > 0x10FFFF)
                return tpl_error(rt, "%%c arg not in range(0x110000)");
            tu_put_cp(&body, (uint32_t)x);
        } else {
            if (type && !strchr("dnboxX", type))
                return tpl_error(rt, "Unknown format code '%c' for object of type 'int'", type);
            uint64_t mag = x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
            char d[80];
            size_t dl = 0;
            if (type == 'b') {
                char r[70];
                size_t k = 0;
                do {
                    r[k++] = (char)('0' + (mag & 1));
                    mag >>= 1;
                } while (mag);
                while (k)
                    d[dl++] = r[--k];
                d[dl] = 0;
            } else {
                snprintf(d, sizeof d,
                         type == 'o'   ? "%" PRIo64
                         : type == 'x' ? "%" PRIx64
                         : type == 'X' ? "%" PRIX64
                                       : "%" PRIu64,
                         mag);
                dl = strlen(d);
            }
            if (alt && type && strchr("boxX", type)) {
                tpl_buf_putc(&body, '0');
                tpl_buf_putc(&body, type == 'X' ? 'X' : type);
            }
            if (group)
                put_grouped(&body, d, dl, group);
            else
                tpl_buf_put(&body, d, dl);
            signstr = x < 0 ? "-" : sign == '+' ? "+" : sign == ' ' ? " " : "";
        }
    } else if (v.kind == TV_INT || v.kind == TV_BOOL || v.kind == TV_FLOAT) {
        double x = v.kind == TV_FLOAT ? v.f : v.kind == TV_BOOL ? v.b : (double)v.i;
        if (type && !strchr("eEfFgG%n", type))
            return tpl_error(rt, "Unknown format code '%c' for object of type '%s'", type,
                             tu_type_name(v));
        bool neg = signbit(x) && !isnan(x);
        double ax = fabs(x);
        char d[400];
        if (!isfinite(ax)) {
            snprintf(d, sizeof d, "%s", isnan(ax) ? "nan" : "inf");
            if (type == 'E' || type == 'F' || type == 'G')
                for (char *p = d; *p; p++)
                    *p = (char)(*p - 'a' + 'A');
            if (type == '%')
                strcat(d, "%");
        } else if (!type && prec < 0) {
            tpl_buf t;
            tpl_buf_init(&t, rt);
            tu_put_float(&t, ax);
            snprintf(d, sizeof d, "%s", tpl_buf_cstr(&t));
        } else {
            char f[16];
            int p = (int)(prec < 0 ? 6 : prec > 100 ? 100 : prec);
            char t = type == '%' ? 'f' : type == 'n' || !type ? 'g' : type;
            if (!type && p == 0)
                p = 1;
            snprintf(f, sizeof f, "%%%s.*%c", alt ? "#" : "", t);
            snprintf(d, sizeof d - 2, f, p, type == '%' ? ax * 100 : ax);
            if (!type && !strpbrk(d, ".e"))
                strcat(d, ".0"); /* no type: fixed notation keeps a decimal */
            if (type == '%')
                strcat(d, "%");
        }
        if (group)
            put_grouped(&body, d, strlen(d), group);
        else
            tpl_buf_puts(&body, d);
        signstr = neg ? "-" : sign == '+' ? "+" : sign == ' ' ? " " : "";
    } else {
        return tpl_error(rt, "unsupported format string passed to %s.__format__",
                         tu_type_name(v));
    }
    if (!align)
        align = defalign;
    size_t len = strlen(signstr) + tu_cp_count(body.data ? body.data : "", body.len);
    size_t pad = width > 0 && (uint64_t)width > len ? (size_t)width - len : 0;
    size_t left = align == '>' ? pad : align == '^' ? pad / 2 : 0;
    if (align == '=') {
        tpl_buf_puts(out, signstr);
        for (size_t k = 0; k < pad; k++)
            tu_put_cp(out, fill);
        tpl_buf_put(out, tpl_buf_cstr(&body), body.len);
        return 0;
    }
    for (size_t k = 0; k < left; k++)
        tu_put_cp(out, fill);
    tpl_buf_puts(out, signstr);
    tpl_buf_put(out, tpl_buf_cstr(&body), body.len);
    for (size_t k = left; k < pad; k++)
        tu_put_cp(out, fill);
    return 0;
}

int tu_str_format(tpl_rt *rt, tv fmt, const tv *args, size_t nargs, const tpl_kwarg *kw,
                  size_t nkw, tv *out)
{
    const char *s = fmt.str.s;
    size_t n = fmt.str.len;
    tpl_buf b;
    tpl_buf_init(&b, rt);
    int autonum = 0; /* 0 unknown, 1 automatic, 2 manual */
    size_t next = 0;
    for (size_t i = 0; i < n;) {
        char c = s[i];
        if (c == '}') {
            if (i + 1 < n && s[i + 1] == '}') {
                tpl_buf_putc(&b, '}');
                i += 2;
                continue;
            }
            return tpl_error(rt, "Single '}' encountered in format string");
        }
        if (c != '{') {
            tpl_buf_putc(&b, c);
            i++;
            continue;
        }
        if (i + 1 < n && s[i + 1] == '{') {
            tpl_buf_putc(&b, '{');
            i += 2;
            continue;
        }
        size_t st = ++i;
        while (i < n && s[i] != '}' && s[i] != '{')
            i++;
        if (i >= n || s[i] == '{')
            return tpl_error(rt, i >= n ? "expected '}' before end of string"
                                        : "nested format fields are not supported");
        const char *field = s + st;
        size_t flen = i - st;
        i++;
        /* field: name[.attr|[key]]...[!conv][:spec] */
        const char *colon = memchr(field, ':', flen);
        size_t hl = colon ? (size_t)(colon - field) : flen;
        const char *bang = memchr(field, '!', hl);
        size_t namelen = bang ? (size_t)(bang - field) : hl;
        char conv = 0;
        if (bang) {
            if (hl - namelen != 2)
                return tpl_error(rt, "expected ':' after conversion specifier");
            conv = bang[1];
            if (conv != 'r' && conv != 's' && conv != 'a')
                return tpl_error(rt, "Unknown conversion specifier %c", conv);
        }
        size_t k = 0;
        while (k < namelen && field[k] != '.' && field[k] != '[')
            k++;
        tv v;
        if (k == 0) {
            if (autonum == 2)
                return tpl_error(rt, "cannot switch from manual field specification to automatic field numbering");
            autonum = 1;
            if (next >= nargs)
                return tpl_error(rt, "Replacement index %zu out of range for positional args tuple", next);
            v = args[next++];
        } else if (field[0] >= '0' && field[0] <= '9') {
            if (autonum == 1)
                return tpl_error(rt, "cannot switch from automatic field numbering to manual field specification");
            autonum = 2;
            size_t idx = 0;
            for (size_t q = 0; q < k; q++) {
                if (field[q] < '0' || field[q] > '9')
                    return tpl_error(rt, "invalid format field");
                idx = idx * 10 + (size_t)(field[q] - '0');
                if (idx > 1000000)
                    break;
            }
            if (idx >= nargs)
                return tpl_error(rt, "Replacement index %zu out of range for positional args tuple", idx);
            v = args[idx];
        } else {
            size_t q = 0;
            for (; q < nkw; q++)
                if (strlen(kw[q].name) == k && memcmp(kw[q].name, field, k) == 0)
                    break;
            if (q == nkw)
                return tpl_error(rt, "KeyError: '%.*s'", (int)k, field);
            v = kw[q].value;
        }
        /* .attr and [key] */
        while (k < namelen) {
            char sep = field[k++];
            size_t as = k;
            if (sep == '.') {
                while (k < namelen && field[k] != '.' && field[k] != '[')
                    k++;
                if (tv_getattr(rt, v, tpl_strndup(rt, field + as, k - as), &v) < 0)
                    return -1;
            } else {
                while (k < namelen && field[k] != ']')
                    k++;
                if (k >= namelen)
                    return tpl_error(rt, "Missing ']' in format string");
                bool digits = k > as;
                for (size_t q = as; q < k; q++)
                    digits = digits && field[q] >= '0' && field[q] <= '9';
                tv key = digits ? tv_int(strtoll(tpl_strndup(rt, field + as, k - as), NULL, 10))
                                : tu_str_value(rt, field + as, k - as, false);
                if (tv_getitem(rt, v, key, &v) < 0)
                    return -1;
                k++;
            }
            if (v.kind == TV_UNDEF)
                return tpl_error(rt, "format field '%.*s' not found", (int)namelen, field);
        }
        bool argsafe = v.kind == TV_STR && v.safe;
        if (conv) {
            tpl_buf t;
            tpl_buf_init(&t, rt);
            if ((conv == 's' ? tv_str(rt, &t, v) : tv_repr(rt, &t, v)) < 0)
                return -1;
            v = tu_buf_value(&t, false);
            argsafe = false;
        }
        tpl_buf t;
        tpl_buf_init(&t, rt);
        if (tu_format_spec(rt, &t, v, colon ? colon + 1 : "", colon ? flen - hl - 1 : 0) < 0)
            return -1;
        if (fmt.safe && !argsafe) /* Markup.format escapes what it inserts */
            tpl_buf_put_escaped(&b, tpl_buf_cstr(&t), t.len);
        else
            tpl_buf_put(&b, tpl_buf_cstr(&t), t.len);
    }
    *out = tu_buf_value(&b, fmt.safe);
    return 0;
}
