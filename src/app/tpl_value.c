/*
 * tpl_value.c — template values with Python's semantics: JSON in and out,
 * truth, str() and repr() (floats as Python's shortest round-trip repr),
 * what {{ v }} writes (autoescaping), arithmetic and comparisons
 * (tv_binop); Python's equality and ordering (tu_eq, tu_cmp) are in
 * tpl_compare.c. UTF-8
 * and the small shared helpers are in tpl_vutil.c; attributes, items,
 * slices, iteration and methods in tpl_methods.c and tpl_strmethods.c;
 * %-formatting and str.format in tpl_format.c.
 *
 * Integers are int64: where Python's unbounded integers would grow past it
 * (+ - * ** //, unary -), the render fails with "integer overflow".
 */
#include "app/tpl_vutil.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest string or list * n builds before failing (Python would try). */
#define TU_MAX_REPEAT ((size_t)64 << 20)


/* ---- JSON ------------------------------------------------------------------- */

tv tv_from_json(json_t *j)
{
    if (!j)
        return tv_none();
    switch (json_typeof(j)) {
    case JSON_NULL: return tv_none();
    case JSON_TRUE: return tv_bool(true);
    case JSON_FALSE: return tv_bool(false);
    case JSON_INTEGER: return tv_int((int64_t)json_integer_value(j));
    case JSON_REAL: return tv_float(json_real_value(j));
    case JSON_STRING: return tv_strn(json_string_value(j), json_string_length(j), false);
    case JSON_ARRAY: return tu_array_value(j);
    case JSON_OBJECT: {
        /* cf_markup's {"__html__": "..."} is Markup */
        json_t *h = json_object_get(j, "__html__");
        if (h && json_object_size(j) == 1 && json_is_string(h))
            return tv_strn(json_string_value(h), json_string_length(h), true);
        /* an undefined stored in a list or dict by a filter (tu_json) */
        json_t *u = json_object_get(j, "__undefined__");
        if (u && json_object_size(j) == 1 && json_is_string(u))
            return tv_undef(json_string_value(u));
        /* a tuple stored in JSON (tu_tuple_json) */
        json_t *t = json_object_get(j, "__tuple__");
        if (t && json_object_size(j) == 1 && json_is_array(t))
            return tv_tuple(t);
        tv v = {.kind = TV_OBJECT, .json = j};
        return v;
    }
    }
    return tv_none();
}

json_t *tu_tuple_json(json_t *arr)
{
    json_t *o = json_object();
    json_object_set_new(o, "__tuple__", arr);
    return o;
}

json_t *tu_json(tv v)
{
    switch (v.kind) {
    case TV_UNDEF: /* kept as Undefined in a list: [Undefined] as Jinja prints it */
        return json_pack("{ss}", "__undefined__", v.undef_name ? v.undef_name : "value");
    case TV_NONE:
    case TV_OPAQUE: return json_null();
    case TV_BOOL: return json_boolean(v.b);
    case TV_INT: return json_integer((json_int_t)v.i);
    case TV_FLOAT: return json_real(v.f);
    case TV_STR: {
        json_t *s = json_stringn_nocheck(v.str.s, v.str.len);
        if (!v.safe)
            return s;
        json_t *o = json_object();
        json_object_set_new(o, "__html__", s);
        return o;
    }
    case TV_ARRAY:
        if (v.safe)
            return tu_tuple_json(json_incref(v.json));
        return json_incref(v.json);
    case TV_OBJECT: return json_incref(v.json);
    }
    return json_null();
}

json_t *tv_to_json(tpl_rt *rt, tv v)
{
    /* tpl.h: undefined is null (inside lists and dicts a filter made, it
     * stays the {"__undefined__": name} that tu_json writes) */
    return tpl_keep(rt, v.kind == TV_UNDEF ? json_null() : tu_json(v));
}

bool tv_truthy(tv v)
{
    switch (v.kind) {
    case TV_UNDEF:
    case TV_NONE: return false;
    case TV_BOOL: return v.b;
    case TV_INT: return v.i != 0;
    case TV_FLOAT: return v.f != 0;
    case TV_STR: return v.str.len != 0;
    case TV_ARRAY: return json_array_size(v.json) != 0;
    case TV_OBJECT: return json_object_size(v.json) != 0;
    case TV_OPAQUE: return true;
    }
    return false;
}

/* ---- str() and repr() ------------------------------------------------------- */

void tu_put_float(tpl_buf *b, double f)
{
    if (isnan(f)) {
        tpl_buf_puts(b, "nan");
        return;
    }
    if (isinf(f)) {
        tpl_buf_puts(b, f < 0 ? "-inf" : "inf");
        return;
    }
    /* the fewest significant digits that read back as f */
    char e[40];
    int prec = 0;
    for (; prec < 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec, f);
        if (strtod(e, NULL) == f)
            break;
    }
    /* e is [-]d[.ddd]e[+-]xx: take the digits and the exponent */
    const char *p = e;
    bool neg = *p == '-';
    if (neg)
        p++;
    char digits[24];
    size_t nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.')
            digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = 0;
    int exp = atoi(p + 1);
    if (neg)
        tpl_buf_putc(b, '-');
    if (exp < -4 || exp >= 16) {
        /* Python's repr: d[.ddd]e[+-]XX */
        tpl_buf_putc(b, digits[0]);
        if (nd > 1) {
            tpl_buf_putc(b, '.');
            tpl_buf_put(b, digits + 1, nd - 1);
        }
        char x[16];
        snprintf(x, sizeof x, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        tpl_buf_puts(b, x);
    } else if (exp < 0) {
        tpl_buf_puts(b, "0.");
        for (int i = -1; i > exp; i--)
            tpl_buf_putc(b, '0');
        tpl_buf_put(b, digits, nd);
    } else {
        size_t intd = (size_t)exp + 1;
        for (size_t i = 0; i < intd; i++)
            tpl_buf_putc(b, i < nd ? digits[i] : '0');
        tpl_buf_putc(b, '.');
        if (nd > intd)
            tpl_buf_put(b, digits + intd, nd - intd);
        else
            tpl_buf_putc(b, '0');
    }
}

/* Python's str.isprintable() for one non-ASCII character (the usual
 * non-printable ranges; not the whole Unicode table). */
static bool printable_cp(uint32_t c)
{
    if (c < 0xA1 || c == 0xAD)
        return false;
    if (c == 0x1680 || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) ||
        (c >= 0x205F && c <= 0x2064) || c == 0x3000 || c == 0xFEFF ||
        (c >= 0xD800 && c <= 0xF8FF) || (c >= 0xFFF9 && c <= 0xFFFB) || c == 0xFFFE ||
        c == 0xFFFF || c > 0x10FFFF || (c >= 0xF0000))
        return false;
    return true;
}

static void repr_str(tpl_buf *b, const char *s, size_t n)
{
    /* Python picks ' unless the string has ' and no " */
    bool sq = memchr(s, '\'', n) != NULL, dq = memchr(s, '"', n) != NULL;
    char q = sq && !dq ? '"' : '\'';
    tpl_buf_putc(b, q);
    for (size_t i = 0; i < n;) {
        size_t at = i;
        uint32_t c = tu_next(s, n, &i);
        char x[16];
        if (c == (uint32_t)q || c == '\\') {
            tpl_buf_putc(b, '\\');
            tpl_buf_putc(b, (char)c);
        } else if (c == '\n') {
            tpl_buf_puts(b, "\\n");
        } else if (c == '\r') {
            tpl_buf_puts(b, "\\r");
        } else if (c == '\t') {
            tpl_buf_puts(b, "\\t");
        } else if (c < 0x20 || c == 0x7F) {
            snprintf(x, sizeof x, "\\x%02x", c);
            tpl_buf_puts(b, x);
        } else if (c < 0x80) {
            tpl_buf_putc(b, (char)c);
        } else if (i - at == 1) {
            /* an invalid byte: shown as its Latin-1 escape */
            snprintf(x, sizeof x, "\\x%02x", c);
            tpl_buf_puts(b, x);
        } else if (printable_cp(c)) {
            tpl_buf_put(b, s + at, i - at);
        } else {
            if (c < 0x100)
                snprintf(x, sizeof x, "\\x%02x", c);
            else if (c < 0x10000)
                snprintf(x, sizeof x, "\\u%04x", c);
            else
                snprintf(x, sizeof x, "\\U%08x", c);
            tpl_buf_puts(b, x);
        }
    }
    tpl_buf_putc(b, q);
}

static int put_value(tpl_rt *rt, tpl_buf *b, tv v, bool repr, int depth)
{
    if (depth > 200)
        return tpl_error(rt, "maximum recursion depth exceeded while getting the repr");
    char t[32];
    switch (v.kind) {
    case TV_UNDEF:
        if (repr)
            tpl_buf_puts(b, "Undefined");
        return 0;
    case TV_NONE: tpl_buf_puts(b, "None"); return 0;
    case TV_BOOL: tpl_buf_puts(b, v.b ? "True" : "False"); return 0;
    case TV_INT: {
        /* by hand: snprintf was a tenth of a fortunes render */
        char *e = t + sizeof t, *p = e;
        uint64_t u = v.i < 0 ? 0 - (uint64_t)v.i : (uint64_t)v.i;
        do
            *--p = (char)('0' + u % 10);
        while (u /= 10);
        if (v.i < 0)
            *--p = '-';
        tpl_buf_put(b, p, (size_t)(e - p));
        return 0;
    }
    case TV_FLOAT: tu_put_float(b, v.f); return 0;
    case TV_STR:
        if (!repr) {
            tpl_buf_put(b, v.str.s, v.str.len);
        } else if (v.safe) { /* repr(Markup('x')) */
            tpl_buf_puts(b, "Markup(");
            repr_str(b, v.str.s, v.str.len);
            tpl_buf_putc(b, ')');
        } else {
            repr_str(b, v.str.s, v.str.len);
        }
        return 0;
    case TV_ARRAY: {
        /* a list [1, 2], a tuple (1, 2), (1,) or () */
        tpl_buf_putc(b, v.safe ? '(' : '[');
        size_t i, n = json_array_size(v.json);
        json_t *e;
        json_array_foreach(v.json, i, e) {
            if (i)
                tpl_buf_puts(b, ", ");
            if (put_value(rt, b, tv_from_json(e), true, depth + 1) < 0)
                return -1;
        }
        if (v.safe && n == 1)
            tpl_buf_putc(b, ',');
        tpl_buf_putc(b, v.safe ? ')' : ']');
        return 0;
    }
    case TV_OBJECT: {
        tpl_buf_putc(b, '{');
        const char *k;
        json_t *e;
        bool first = true;
        json_object_foreach(v.json, k, e) {
            if (!first)
                tpl_buf_puts(b, ", ");
            first = false;
            repr_str(b, k, strlen(k));
            tpl_buf_puts(b, ": ");
            if (put_value(rt, b, tv_from_json(e), true, depth + 1) < 0)
                return -1;
        }
        tpl_buf_putc(b, '}');
        return 0;
    }
    case TV_OPAQUE:
        tpl_buf_putc(b, '<');
        tpl_buf_puts(b, tu_type_name(v));
        tpl_buf_putc(b, '>');
        return 0;
    }
    return 0;
}

int tv_str(tpl_rt *rt, tpl_buf *b, tv v) { return put_value(rt, b, v, false, 0); }
int tv_repr(tpl_rt *rt, tpl_buf *b, tv v) { return put_value(rt, b, v, true, 0); }

int tv_to_str(tpl_rt *rt, tv v, tv *out)
{
    if (v.kind == TV_STR) {
        *out = v;
        return 0;
    }
    tpl_buf b;
    tpl_buf_init(&b, rt);
    if (tv_str(rt, &b, v) < 0)
        return -1;
    *out = tu_buf_value(&b, false);
    return 0;
}

int tu_put_escaped_str(tpl_rt *rt, tpl_buf *b, tv v)
{
    if (v.kind == TV_STR) {
        if (v.safe)
            tpl_buf_put(b, v.str.s, v.str.len);
        else
            tpl_buf_put_escaped(b, v.str.s, v.str.len);
        return 0;
    }
    tv s;
    if (tv_to_str(rt, v, &s) < 0)
        return -1;
    tpl_buf_put_escaped(b, s.str.s, s.str.len);
    return 0;
}

int tv_output(tpl_rt *rt, tpl_buf *b, tv v)
{
    if (tpl_autoescape(rt))
        return tu_put_escaped_str(rt, b, v);
    return tv_str(rt, b, v);
}

/* ---- arithmetic ------------------------------------------------------------- */

static int overflow(tpl_rt *rt) { return tpl_error(rt, "integer overflow"); }

static int unsupported(tpl_rt *rt, const char *op, tv a, tv b)
{
    if (a.kind == TV_UNDEF)
        return tu_undefined_error(rt, a);
    if (b.kind == TV_UNDEF)
        return tu_undefined_error(rt, b);
    if (strcmp(op, "+") == 0 && (a.kind == TV_STR || a.kind == TV_ARRAY))
        return tpl_error(rt, "can only concatenate %s (not \"%s\") to %s",
                         a.kind == TV_STR ? "str" : tu_type_name(a), tu_type_name(b),
                         a.kind == TV_STR ? "str" : tu_type_name(a));
    return tpl_error(rt, "unsupported operand type(s) for %s: '%s' and '%s'", op,
                     tu_type_name(a), tu_type_name(b));
}

/* s * n (n <= 0: empty), for strings (safe kept) and lists. */
static int repeat(tpl_rt *rt, tv s, int64_t n, tv *out)
{
    if (s.kind == TV_STR) {
        if (n <= 0 || s.str.len == 0) {
            *out = tv_strn("", 0, s.safe);
            return 0;
        }
        if ((uint64_t)n > TU_MAX_REPEAT / s.str.len)
            return tpl_error(rt, "repeated string too long");
        tpl_buf b;
        tpl_buf_init(&b, rt);
        for (int64_t i = 0; i < n; i++)
            tpl_buf_put(&b, s.str.s, s.str.len);
        *out = tu_buf_value(&b, s.safe);
        return 0;
    }
    json_t *a = tu_new_array(rt);
    size_t len = json_array_size(s.json);
    if (n > 0 && len && (uint64_t)n > TU_MAX_REPEAT / 16 / len)
        return tpl_error(rt, "repeated list too long");
    for (int64_t i = 0; i < n && len; i++)
        for (size_t k = 0; k < len; k++)
            json_array_append(a, json_array_get(s.json, k));
    *out = tu_array_value(a);
    out->safe = s.safe; /* a tuple stays a tuple */
    return 0;
}

/* str + str with Markup's rules: a safe operand escapes the other. */
static int add_strings(tpl_rt *rt, tv a, tv b, tv *out)
{
    tpl_buf buf;
    tpl_buf_init(&buf, rt);
    bool safe = a.safe || b.safe;
    if (safe) {
        tu_put_escaped_str(rt, &buf, a);
        tu_put_escaped_str(rt, &buf, b);
    } else {
        tpl_buf_put(&buf, a.str.s, a.str.len);
        tpl_buf_put(&buf, b.str.s, b.str.len);
    }
    *out = tu_buf_value(&buf, safe);
    return 0;
}

static int int_pow(tpl_rt *rt, int64_t x, int64_t y, tv *out)
{
    int64_t r = 1;
    while (y > 0) {
        if (y & 1) {
            if (__builtin_mul_overflow(r, x, &r))
                return overflow(rt);
        }
        y >>= 1;
        if (y && __builtin_mul_overflow(x, x, &x))
            return overflow(rt);
    }
    *out = tv_int(r);
    return 0;
}

static int float_pow(tpl_rt *rt, double x, double y, tv *out)
{
    if (x == 0 && y < 0)
        return tpl_error(rt, "0.0 cannot be raised to a negative power");
    if (x < 0 && isfinite(y) && y != floor(y))
        return tpl_error(rt, "complex result not supported");
    double r = pow(x, y);
    if (isinf(r) && isfinite(x) && isfinite(y))
        return tpl_error(rt, "(34, 'Numerical result out of range')");
    *out = tv_float(r);
    return 0;
}

static int arith(tpl_rt *rt, tv_op op, tv a, tv b, tv *out)
{
    static const char *const names[] = {"+", "-", "*", "/", "//", "%", "**"};
    const char *name = names[op];
    if (tu_is_num(a) && tu_is_num(b)) {
        bool ints = a.kind != TV_FLOAT && b.kind != TV_FLOAT;
        if (ints) {
            int64_t x = tu_as_i(a), y = tu_as_i(b), r;
            switch (op) {
            case TV_ADD:
                if (__builtin_add_overflow(x, y, &r))
                    return overflow(rt);
                *out = tv_int(r);
                return 0;
            case TV_SUB:
                if (__builtin_sub_overflow(x, y, &r))
                    return overflow(rt);
                *out = tv_int(r);
                return 0;
            case TV_MUL:
                if (__builtin_mul_overflow(x, y, &r))
                    return overflow(rt);
                *out = tv_int(r);
                return 0;
            case TV_DIV:
                if (y == 0)
                    return tpl_error(rt, "division by zero");
                *out = tv_float((double)x / (double)y);
                return 0;
            case TV_FLOORDIV:
            case TV_MOD: {
                if (y == 0)
                    return tpl_error(rt, op == TV_MOD ? "integer modulo by zero"
                                                      : "integer division or modulo by zero");
                if (x == INT64_MIN && y == -1) {
                    if (op == TV_MOD) {
                        *out = tv_int(0);
                        return 0;
                    }
                    return overflow(rt);
                }
                int64_t q = x / y, m = x % y;
                if (m != 0 && ((m < 0) != (y < 0))) { /* floor, not truncate */
                    q -= 1;
                    m += y;
                }
                *out = tv_int(op == TV_MOD ? m : q);
                return 0;
            }
            case TV_POW:
                if (y < 0)
                    return float_pow(rt, (double)x, (double)y, out);
                return int_pow(rt, x, y, out);
            default: break;
            }
        } else {
            double x = tu_as_f(a), y = tu_as_f(b);
            switch (op) {
            case TV_ADD: *out = tv_float(x + y); return 0;
            case TV_SUB: *out = tv_float(x - y); return 0;
            case TV_MUL: *out = tv_float(x * y); return 0;
            case TV_DIV:
                if (y == 0)
                    return tpl_error(rt, "float division by zero");
                *out = tv_float(x / y);
                return 0;
            case TV_FLOORDIV:
            case TV_MOD: {
                if (y == 0)
                    return tpl_error(rt, op == TV_MOD ? "float modulo"
                                                      : "float floor division by zero");
                /* CPython's float_divmod */
                double mod = fmod(x, y), div = (x - mod) / y, fl;
                if (mod != 0) {
                    if ((y < 0) != (mod < 0)) {
                        mod += y;
                        div -= 1.0;
                    }
                } else {
                    mod = copysign(0.0, y);
                }
                if (div != 0) {
                    fl = floor(div);
                    if (div - fl > 0.5)
                        fl += 1.0;
                } else {
                    fl = copysign(0.0, x / y);
                }
                *out = tv_float(op == TV_MOD ? mod : fl);
                return 0;
            }
            case TV_POW: return float_pow(rt, x, y, out);
            default: break;
            }
        }
    }
    if (a.kind == TV_UNDEF || b.kind == TV_UNDEF)
        return unsupported(rt, name, a, b);
    switch (op) {
    case TV_ADD:
        if (a.kind == TV_STR && b.kind == TV_STR)
            return add_strings(rt, a, b, out);
        if (a.kind == TV_ARRAY && b.kind == TV_ARRAY && a.safe == b.safe) {
            json_t *r = tu_new_array(rt);
            json_array_extend(r, a.json);
            json_array_extend(r, b.json);
            *out = tu_array_value(r);
            out->safe = a.safe; /* tuple + tuple is a tuple */
            return 0;
        }
        break;
    case TV_MUL:
        if ((a.kind == TV_STR || a.kind == TV_ARRAY) && (b.kind == TV_INT || b.kind == TV_BOOL))
            return repeat(rt, a, tu_as_i(b), out);
        if ((b.kind == TV_STR || b.kind == TV_ARRAY) && (a.kind == TV_INT || a.kind == TV_BOOL))
            return repeat(rt, b, tu_as_i(a), out);
        if (a.kind == TV_STR || a.kind == TV_ARRAY || b.kind == TV_STR || b.kind == TV_ARRAY)
            return tpl_error(rt, "can't multiply sequence by non-int of type '%s'",
                             tu_type_name(a.kind == TV_STR || a.kind == TV_ARRAY ? b : a));
        break;
    case TV_MOD:
        if (a.kind == TV_STR)
            return tu_percent_format(rt, a, b, out);
        break;
    default: break;
    }
    return unsupported(rt, name, a, b);
}

/* `~`: str(a) + str(b); under autoescape Jinja joins with markup_join (a
 * safe operand makes the result safe and escapes the other). */
static int concat(tpl_rt *rt, tv a, tv b, tv *out)
{
    tv sa, sb;
    if (tv_to_str(rt, a, &sa) < 0 || tv_to_str(rt, b, &sb) < 0)
        return -1;
    tpl_buf buf;
    tpl_buf_init(&buf, rt);
    bool safe = tpl_autoescape(rt) && (sa.safe || sb.safe);
    if (safe) {
        tu_put_escaped_str(rt, &buf, sa);
        tu_put_escaped_str(rt, &buf, sb);
    } else {
        tpl_buf_put(&buf, sa.str.s, sa.str.len);
        tpl_buf_put(&buf, sb.str.s, sb.str.len);
    }
    *out = tu_buf_value(&buf, safe);
    return 0;
}

/* `a in b` */
static int contains(tpl_rt *rt, tv a, tv b, bool *res)
{
    switch (b.kind) {
    case TV_UNDEF: *res = false; return 0; /* Undefined iterates nothing */
    case TV_STR:
        if (a.kind != TV_STR)
            return tpl_error(rt, "'in <string>' requires string as left operand, not %s",
                             tu_type_name(a));
        if (a.str.len == 0) {
            *res = true;
            return 0;
        }
        *res = false;
        for (size_t i = 0; i + a.str.len <= b.str.len; i++)
            if (memcmp(b.str.s + i, a.str.s, a.str.len) == 0) {
                *res = true;
                break;
            }
        return 0;
    case TV_ARRAY: {
        size_t i;
        json_t *e;
        *res = false;
        json_array_foreach(b.json, i, e) if (tu_eq(a, tv_from_json(e))) {
            *res = true;
            break;
        }
        return 0;
    }
    case TV_OBJECT:
        if (a.kind == TV_ARRAY || a.kind == TV_OBJECT)
            return tpl_error(rt, "unhashable type: '%s'", tu_type_name(a));
        if (a.kind == TV_UNDEF)
            return tu_undefined_error(rt, a);
        *res = a.kind == TV_STR && memchr(a.str.s, 0, a.str.len) == NULL &&
               json_object_get(b.json, a.str.s) != NULL;
        return 0;
    default:
        return tpl_error(rt, "argument of type '%s' is not iterable", tu_type_name(b));
    }
}

int tv_binop(tpl_rt *rt, tv_op op, tv a, tv b, tv *out)
{
    *out = tv_none();
    switch (op) {
    case TV_ADD:
    case TV_SUB:
    case TV_MUL:
    case TV_DIV:
    case TV_FLOORDIV:
    case TV_MOD:
    case TV_POW: return arith(rt, op, a, b, out);
    case TV_CONCAT: return concat(rt, a, b, out);
    case TV_NEG:
    case TV_POS:
        if (a.kind == TV_UNDEF)
            return tu_undefined_error(rt, a);
        if (a.kind == TV_FLOAT) {
            *out = tv_float(op == TV_NEG ? -a.f : a.f);
            return 0;
        }
        if (a.kind == TV_INT || a.kind == TV_BOOL) {
            int64_t x = tu_as_i(a);
            if (op == TV_NEG && x == INT64_MIN)
                return overflow(rt);
            *out = tv_int(op == TV_NEG ? -x : x);
            return 0;
        }
        return tpl_error(rt, "bad operand type for unary %s: '%s'", op == TV_NEG ? "-" : "+",
                         tu_type_name(a));
    case TV_EQ: *out = tv_bool(tu_eq(a, b)); return 0;
    case TV_NE: *out = tv_bool(!tu_eq(a, b)); return 0;
    case TV_LT:
    case TV_LE:
    case TV_GT:
    case TV_GE: {
        static const char *const ops[] = {"<", "<=", ">", ">="};
        int c;
        if (tu_cmp(rt, a, b, ops[op - TV_LT], &c) < 0)
            return -1;
        bool r = c == 2 ? false
                 : op == TV_LT ? c < 0
                 : op == TV_LE ? c <= 0
                 : op == TV_GT ? c > 0
                               : c >= 0;
        *out = tv_bool(r);
        return 0;
    }
    case TV_IN:
    case TV_NOTIN: {
        bool r = false;
        if (contains(rt, a, b, &r) < 0)
            return -1;
        *out = tv_bool(op == TV_IN ? r : !r);
        return 0;
    }
    }
    return tpl_error(rt, "unknown operator");
}
