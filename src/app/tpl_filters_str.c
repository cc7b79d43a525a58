/*
 * tpl_filters_str.c — Jinja 3.1's builtin filters on strings and numbers:
 * escaping (escape, forceescape, safe, striptags), case and spacing
 * (lower, upper, capitalize, title, trim, center, indent, truncate,
 * wordcount), conversions (int, float, round, abs, string, filesizeformat,
 * pprint), formatting (format, replace) and encodings (tojson, urlencode,
 * xmlattr). The sequence filters, the tests and the name tables are in
 * tpl_filters.c. Each follows jinja2/filters.py's behaviour, including
 * where Markup (a safe string) stays Markup and where it does not.
 */
#include "app/tpl_vutil.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- argument helpers ------------------------------------------------------- */

int tu_check_params(tpl_rt *rt, const tu_fargs *a, const char *const *params)
{
    size_t np = 0;
    while (params[np])
        np++;
    if (a->nargs > np)
        return tpl_error(rt, "%s() takes at most %zu argument%s after the value (%zu given)",
                         a->filter, np, np == 1 ? "" : "s", a->nargs);
    for (size_t i = 0; i < a->nkw; i++) {
        size_t k = 0;
        for (; k < np; k++)
            if (strcmp(a->kw[i].name, params[k]) == 0)
                break;
        if (k == np)
            return tpl_error(rt, "%s() got an unexpected keyword argument '%s'", a->filter,
                             a->kw[i].name);
        if (k < a->nargs)
            return tpl_error(rt, "%s() got multiple values for argument '%s'", a->filter,
                             a->kw[i].name);
    }
    return 0;
}

tv tu_param(const tu_fargs *a, size_t pos, const char *name, tv def)
{
    tv v;
    if (tu_arg(a->args, a->nargs, a->kw, a->nkw, pos, name, &v))
        return v;
    return def;
}

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

/* soft_str: a string stays itself (Markup stays Markup), anything else is
 * str()'d; undefined is "". */
static int soft_str(tpl_rt *rt, tv v, tv *out) { return tv_to_str(rt, v, out); }

static int need_bool_int(tpl_rt *rt, tv v, const char *what, int64_t *out)
{
    return tu_int_arg(rt, v, what, out);
}

/* ---- escaping ---------------------------------------------------------------- */

static tv escaped(tpl_rt *rt, tv s)
{
    if (s.safe)
        return s;
    tpl_buf b;
    tpl_buf_init(&b, rt);
    tpl_buf_put_escaped(&b, s.str.s, s.str.len);
    return tu_buf_value(&b, true);
}

TU_FILTER(tf_escape)
{
    NOARGS("escape");
    tv s;
    if (soft_str(rt, in, &s) < 0)
        return -1;
    *out = escaped(rt, s);
    return 0;
}

TU_FILTER(tf_forceescape)
{
    NOARGS("forceescape");
    tv s;
    if (soft_str(rt, in, &s) < 0)
        return -1;
    s.safe = false; /* __html__() first: a Markup is escaped again */
    *out = escaped(rt, s);
    return 0;
}

TU_FILTER(tf_safe)
{
    NOARGS("safe");
    if (soft_str(rt, in, out) < 0)
        return -1;
    out->safe = true;
    return 0;
}

TU_FILTER(tf_string)
{
    NOARGS("string");
    return soft_str(rt, in, out);
}

/* html.unescape ------------------------------------------------------------ */

/* HTML 4's names for U+00A0..U+00FF, in order (html5 also accepts these
 * without the semicolon). */
static const char *const latin1_names[96] = {
    "nbsp",   "iexcl",  "cent",   "pound",  "curren", "yen",    "brvbar", "sect",
    "uml",    "copy",   "ordf",   "laquo",  "not",    "shy",    "reg",    "macr",
    "deg",    "plusmn", "sup2",   "sup3",   "acute",  "micro",  "para",   "middot",
    "cedil",  "sup1",   "ordm",   "raquo",  "frac14", "frac12", "frac34", "iquest",
    "Agrave", "Aacute", "Acirc",  "Atilde", "Auml",   "Aring",  "AElig",  "Ccedil",
    "Egrave", "Eacute", "Ecirc",  "Euml",   "Igrave", "Iacute", "Icirc",  "Iuml",
    "ETH",    "Ntilde", "Ograve", "Oacute", "Ocirc",  "Otilde", "Ouml",   "times",
    "Oslash", "Ugrave", "Uacute", "Ucirc",  "Uuml",   "Yacute", "THORN",  "szlig",
    "agrave", "aacute", "acirc",  "atilde", "auml",   "aring",  "aelig",  "ccedil",
    "egrave", "eacute", "ecirc",  "euml",   "igrave", "iacute", "icirc",  "iuml",
    "eth",    "ntilde", "ograve", "oacute", "ocirc",  "otilde", "ouml",   "divide",
    "oslash", "ugrave", "uacute", "ucirc",  "uuml",   "yacute", "thorn",  "yuml"};

/* names also accepted without ';' besides the Latin-1 ones */
static const struct {
    const char *name;
    uint32_t cp;
} legacy_names[] = {{"amp", '&'}, {"lt", '<'},  {"gt", '>'}, {"quot", '"'}, {"AMP", '&'},
                    {"LT", '<'},  {"GT", '>'},  {"QUOT", '"'}, {"COPY", 0xA9}, {"REG", 0xAE}};

/* names only recognised with ';' */
static const struct {
    const char *name;
    uint32_t cp;
} more_names[] = {
    {"apos", '\''},    {"hellip", 0x2026}, {"mdash", 0x2014}, {"ndash", 0x2013},
    {"lsquo", 0x2018}, {"rsquo", 0x2019},  {"ldquo", 0x201C}, {"rdquo", 0x201D},
    {"sbquo", 0x201A}, {"bdquo", 0x201E},  {"bull", 0x2022},  {"euro", 0x20AC},
    {"trade", 0x2122}, {"larr", 0x2190},   {"rarr", 0x2192},  {"uarr", 0x2191},
    {"darr", 0x2193},  {"harr", 0x2194},   {"lsaquo", 0x2039}, {"rsaquo", 0x203A},
    {"dagger", 0x2020}, {"Dagger", 0x2021}, {"permil", 0x2030}, {"prime", 0x2032},
    {"Prime", 0x2033}, {"thinsp", 0x2009}, {"ensp", 0x2002},  {"emsp", 0x2003},
    {"zwnj", 0x200C},  {"zwj", 0x200D},    {"lrm", 0x200E},   {"rlm", 0x200F},
    {"minus", 0x2212}, {"infin", 0x221E},  {"ne", 0x2260},    {"le", 0x2264},
    {"ge", 0x2265},    {"asymp", 0x2248},  {"sum", 0x2211},   {"prod", 0x220F},
    {"radic", 0x221A}, {"hearts", 0x2665}, {"spades", 0x2660}, {"clubs", 0x2663},
    {"diams", 0x2666}, {"loz", 0x25CA},    {"check", 0x2713}, {"alpha", 0x3B1},
    {"beta", 0x3B2},   {"gamma", 0x3B3},   {"delta", 0x3B4},  {"pi", 0x3C0},
    {"sigma", 0x3C3},  {"mu", 0x3BC},      {"lambda", 0x3BB}, {"omega", 0x3C9},
    {"OElig", 0x152},  {"oelig", 0x153},   {"Scaron", 0x160}, {"scaron", 0x161},
    {"Yuml", 0x178},   {"fnof", 0x192},    {"circ", 0x2C6},   {"tilde", 0x2DC},
    {"Tab", 9},        {"NewLine", 10},    {"nbsp", 0xA0},    {"num", '#'},
    {"dollar", '$'},   {"percnt", '%'},    {"lpar", '('},     {"rpar", ')'},
    {"ast", '*'},      {"plus", '+'},      {"comma", ','},    {"period", '.'},
    {"sol", '/'},      {"colon", ':'},     {"semi", ';'},     {"equals", '='},
    {"quest", '?'},    {"commat", '@'},    {"lsqb", '['},     {"rsqb", ']'},
    {"bsol", '\\'},    {"lowbar", '_'},    {"grave", '`'},    {"lcub", '{'},
    {"rcub", '}'},     {"verbar", '|'},    {"excl", '!'},
};

/* Windows-1252 for &#x80; .. &#x9F; as html.unescape maps them */
static const uint16_t cp1252[32] = {
    0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x8D,   0x017D, 0x8F,   0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};

static bool named_exact(const char *s, size_t n, uint32_t *cp)
{
    for (size_t i = 0; i < 96; i++)
        if (strlen(latin1_names[i]) == n && memcmp(latin1_names[i], s, n) == 0) {
            *cp = 0xA0 + (uint32_t)i;
            return true;
        }
    for (size_t i = 0; i < sizeof legacy_names / sizeof *legacy_names; i++)
        if (strlen(legacy_names[i].name) == n && memcmp(legacy_names[i].name, s, n) == 0) {
            *cp = legacy_names[i].cp;
            return true;
        }
    for (size_t i = 0; i < sizeof more_names / sizeof *more_names; i++)
        if (strlen(more_names[i].name) == n && memcmp(more_names[i].name, s, n) == 0) {
            *cp = more_names[i].cp;
            return true;
        }
    return false;
}

/* the longest name (Latin-1 or legacy) that s starts with, usable without ';' */
static size_t named_prefix(const char *s, size_t n, uint32_t *cp)
{
    size_t best = 0;
    for (size_t i = 0; i < 96; i++) {
        size_t l = strlen(latin1_names[i]);
        if (l <= n && l > best && memcmp(latin1_names[i], s, l) == 0) {
            best = l;
            *cp = 0xA0 + (uint32_t)i;
        }
    }
    for (size_t i = 0; i < sizeof legacy_names / sizeof *legacy_names; i++) {
        size_t l = strlen(legacy_names[i].name);
        if (l <= n && l > best && memcmp(legacy_names[i].name, s, l) == 0) {
            best = l;
            *cp = legacy_names[i].cp;
        }
    }
    return best;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

void tu_put_unescaped(tpl_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        if (s[i] != '&') {
            tpl_buf_putc(b, s[i++]);
            continue;
        }
        size_t j = i + 1;
        if (j < n && s[j] == '#') {
            /* &#123; &#x1F; (the ';' is optional) */
            j++;
            bool hex = j < n && (s[j] == 'x' || s[j] == 'X');
            if (hex)
                j++;
            size_t ds = j;
            uint64_t v = 0;
            while (j < n && (hex ? is_hex(s[j]) : (s[j] >= '0' && s[j] <= '9'))) {
                if (v < 0x1000000)
                    v = v * (hex ? 16 : 10) +
                        (uint64_t)(s[j] <= '9' ? s[j] - '0' : (s[j] | 0x20) - 'a' + 10);
                j++;
            }
            if (j == ds) {
                tpl_buf_putc(b, s[i++]);
                continue;
            }
            if (j < n && s[j] == ';')
                j++;
            uint32_t cp;
            if (v >= 0x80 && v <= 0x9F)
                cp = cp1252[v - 0x80];
            else if (v == 0 || (v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF)
                cp = 0xFFFD;
            else
                cp = (uint32_t)v;
            tu_put_cp(b, cp);
            i = j;
            continue;
        }
        /* a name: [^\t\n\f <&#;]{1,32};? */
        size_t ns = j;
        while (j < n && j - ns < 32 && !strchr("\t\n\f <&#;", s[j]) && s[j])
            j++;
        if (j == ns) {
            tpl_buf_putc(b, s[i++]);
            continue;
        }
        uint32_t cp;
        if (j < n && s[j] == ';' && named_exact(s + ns, j - ns, &cp)) {
            tu_put_cp(b, cp);
            i = j + 1;
            continue;
        }
        size_t l = named_prefix(s + ns, j - ns, &cp);
        if (l) {
            tu_put_cp(b, cp);
            i = ns + l;
            continue;
        }
        tpl_buf_putc(b, s[i++]);
    }
}

TU_FILTER(tf_striptags)
{
    NOARGS("striptags");
    tv s;
    if (soft_str(rt, in, &s) < 0)
        return -1;
    const char *p = s.str.s;
    size_t n = s.str.len;
    /* comments <!--...--> first, then tags <...> (both shortest matches) */
    tpl_buf a;
    tpl_buf_init(&a, rt);
    for (size_t i = 0; i < n;) {
        if (i + 4 <= n && memcmp(p + i, "<!--", 4) == 0) {
            const char *e = NULL;
            for (size_t k = i + 4; k + 3 <= n; k++)
                if (memcmp(p + k, "-->", 3) == 0) {
                    e = p + k;
                    break;
                }
            if (e) {
                i = (size_t)(e - p) + 3;
                continue;
            }
        }
        tpl_buf_putc(&a, p[i++]);
    }
    const char *q = tpl_buf_cstr(&a);
    size_t qn = a.len;
    tpl_buf t;
    tpl_buf_init(&t, rt);
    for (size_t i = 0; i < qn;) {
        if (q[i] == '<') {
            const char *e = memchr(q + i + 1, '>', qn - i - 1);
            if (e) {
                i = (size_t)(e - q) + 1;
                continue;
            }
        }
        tpl_buf_putc(&t, q[i++]);
    }
    /* " ".join(value.split()) */
    const char *w = tpl_buf_cstr(&t);
    size_t wn = t.len;
    tpl_buf j;
    tpl_buf_init(&j, rt);
    bool any = false;
    for (size_t i = 0; i < wn;) {
        size_t k = i;
        if (tu_isspace(tu_next(w, wn, &k))) {
            i = k;
            continue;
        }
        size_t st = i;
        while (i < wn) {
            k = i;
            if (tu_isspace(tu_next(w, wn, &k)))
                break;
            i = k;
        }
        if (any)
            tpl_buf_putc(&j, ' ');
        tpl_buf_put(&j, w + st, i - st);
        any = true;
    }
    tpl_buf u;
    tpl_buf_init(&u, rt);
    tu_put_unescaped(&u, tpl_buf_cstr(&j), j.len);
    *out = tu_buf_value(&u, false);
    return 0;
}

/* ---- case and spacing ------------------------------------------------------- */

TU_FILTER(tf_lower)
{
    NOARGS("lower");
    tv s;
    if (soft_str(rt, in, &s) < 0)
        return -1;
    tpl_buf b;
    tpl_buf_init(&b, rt);
    tu_put_lower(&b, s.str.s, s.str.len);
    *out = tu_buf_value(&b, s.safe);
    return 0;
}

TU_FILTER(tf_upper)
{
    NOARGS("upper");
    tv s;
    if (soft_str(rt, in, &s) < 0)
        return -1;
    tpl_buf b;
    tpl_buf_init(&b, rt);
    tu_put_upper(&b, s.str.s, s.str.len);
    *out = tu_buf_value(&b, s.safe);
    return 0;
}

TU_FILTER(tf_capitalize)
{
    NOARGS("capitalize");
    tv s;
    if (soft_str(rt, in, &s) < 0)
        return -1;
    *out = tu_capitalize(rt, s);
    return 0;
}

/* Jinja's title: words begin after runs of whitespace, '-', '(', '{', '['
 * and '<'; the first character of each is upper-cased, the others lowered.
 * The result is a plain str even for Markup (it is joined by str.join). */
static bool title_sep(uint32_t c)
{
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || tu_isspace(c);
}

TU_FILTER(tf_title)
{
    NOARGS("title");
    tv s;
    if (soft_str(rt, in, &s) < 0)
        return -1;
    tpl_buf b;
    tpl_buf_init(&b, rt);
    bool start = true;
    for (size_t i = 0; i < s.str.len;) {
        size_t at = i;
        uint32_t c = tu_next(s.str.s, s.str.len, &i);
        if (title_sep(c)) {
            tpl_buf_put(&b, s.str.s + at, i - at);
            start = true;
        } else if (start) {
            tu_put_upper(&b, s.str.s + at, i - at);
            start = false;
        } else {
            tu_put_lower(&b, s.str.s + at, i - at);
        }
    }
    *out = tu_buf_value(&b, false);
    return 0;
}

TU_FILTER(tf_trim)
{
    FARGS("trim", "chars");
    tv s, chars = tu_param(&fa, 0, "chars", tv_none());
    if (soft_str(rt, in, &s) < 0)
        return -1;
    if (chars.kind != TV_NONE && chars.kind != TV_STR)
        return tpl_error(rt, "strip arg must be None or str");
    *out = tu_strip(rt, s, chars.kind == TV_STR ? &chars : NULL, true, true);
    return 0;
}

TU_FILTER(tf_center)
{
    FARGS("center", "width");
    tv s;
    int64_t w;
    if (soft_str(rt, in, &s) < 0 ||
        need_bool_int(rt, tu_param(&fa, 0, "width", tv_int(80)), "center width", &w) < 0)
        return -1;
    *out = tu_justify(rt, s, w, ' ', 'c');
    return 0;
}

/* Python's str.splitlines() boundaries: returns the length of the line
 * break at s[i] (0 when none). */
static size_t line_break(const char *s, size_t n, size_t i)
{
    unsigned char c = (unsigned char)s[i];
    if (c == '\r')
        return i + 1 < n && s[i + 1] == '\n' ? 2 : 1;
    if (c == '\n' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E)
        return 1;
    if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] == 0x85)
        return 2;
    if (c == 0xE2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
        ((unsigned char)s[i + 2] == 0xA8 || (unsigned char)s[i + 2] == 0xA9))
        return 3;
    return 0;
}

TU_FILTER(tf_indent)
{
    FARGS("indent", "width", "first", "blank");
    if (in.kind == TV_UNDEF)
        return tu_undefined_error(rt, in);
    if (in.kind != TV_STR)
        return tpl_error(rt, "unsupported operand type(s) for +=: '%s' and 'str'",
                         tu_type_name(in));
    tv width = tu_param(&fa, 0, "width", tv_int(4));
    bool first = tv_truthy(tu_param(&fa, 1, "first", tv_bool(false)));
    bool blank = tv_truthy(tu_param(&fa, 2, "blank", tv_bool(false)));
    tpl_buf ind;
    tpl_buf_init(&ind, rt);
    if (width.kind == TV_STR) {
        tpl_buf_put(&ind, width.str.s, width.str.len);
    } else {
        int64_t w;
        if (tu_int_arg(rt, width, "indent width", &w) < 0)
            return -1;
        for (int64_t i = 0; i < w && i < 100000; i++)
            tpl_buf_putc(&ind, ' ');
    }
    const char *is = tpl_buf_cstr(&ind);
    size_t il = ind.len;
    /* s + "\n", split into lines */
    size_t n = in.str.len + 1;
    char *s = tpl_alloc(rt, n + 1);
    memcpy(s, in.str.s, in.str.len);
    s[n - 1] = '\n';
    tpl_buf b;
    tpl_buf_init(&b, rt);
    if (first)
        tpl_buf_put(&b, is, il);
    size_t line = 0;
    for (size_t i = 0; i < n;) {
        size_t lb = line_break(s, n, i);
        if (!lb) {
            i++;
            continue;
        }
        /* the line s[line..i) */
        if (line > 0) {
            tpl_buf_putc(&b, '\n');
            if (blank || i > line)
                tpl_buf_put(&b, is, il);
        }
        tpl_buf_put(&b, s + line, i - line);
        i += lb;
        line = i;
    }
    *out = tu_buf_value(&b, in.safe);
    return 0;
}

TU_FILTER(tf_truncate)
{
    FARGS("truncate", "length", "killwords", "end", "leeway");
    int64_t length, leeway;
    tv end = tu_param(&fa, 2, "end", tv_strn("...", 3, false));
    bool killwords = tv_truthy(tu_param(&fa, 1, "killwords", tv_bool(false)));
    if (tu_int_arg(rt, tu_param(&fa, 0, "length", tv_int(255)), "truncate length", &length) < 0 ||
        tu_int_arg(rt, tu_param(&fa, 3, "leeway", tv_int(5)), "truncate leeway", &leeway) < 0)
        return -1;
    if (tu_param(&fa, 3, "leeway", tv_none()).kind == TV_NONE)
        leeway = 5;
    if (end.kind != TV_STR)
        return tpl_error(rt, "truncate: end must be a string");
    int64_t endlen = (int64_t)tu_cp_count(end.str.s, end.str.len);
    if (length < endlen)
        return tpl_error(rt, "expected length >= %" PRId64 ", got %" PRId64, endlen, length);
    if (leeway < 0)
        return tpl_error(rt, "expected leeway >= 0, got %" PRId64, leeway);
    if (in.kind == TV_UNDEF) { /* len(Undefined) is 0: returned as is */
        *out = in;
        return 0;
    }
    if (in.kind != TV_STR)
        return tpl_error(rt, "object of type '%s' has no len()", tu_type_name(in));
    int64_t len = (int64_t)tu_cp_count(in.str.s, in.str.len);
    if (len <= length + leeway) {
        *out = in;
        return 0;
    }
    size_t cut = tu_cp_offset(in.str.s, in.str.len, (size_t)(length - endlen));
    if (!killwords) {
        /* s[:cut].rsplit(' ', 1)[0] */
        for (size_t k = cut; k > 0; k--)
            if (in.str.s[k - 1] == ' ') {
                cut = k - 1;
                break;
            }
    }
    tpl_buf b;
    tpl_buf_init(&b, rt);
    tpl_buf_put(&b, in.str.s, cut);
    if (in.safe && !end.safe) /* Markup + str escapes the str */
        tpl_buf_put_escaped(&b, end.str.s, end.str.len);
    else
        tpl_buf_put(&b, end.str.s, end.str.len);
    *out = tu_buf_value(&b, in.safe || end.safe);
    return 0;
}

TU_FILTER(tf_wordcount)
{
    NOARGS("wordcount");
    tv s;
    if (soft_str(rt, in, &s) < 0)
        return -1;
    int64_t c = 0;
    bool inword = false;
    for (size_t i = 0; i < s.str.len;) {
        bool w = tu_is_word(tu_next(s.str.s, s.str.len, &i));
        if (w && !inword)
            c++;
        inword = w;
    }
    *out = tv_int(c);
    return 0;
}

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

/* Python's float(str): whitespace around, a sign, digits with single '_'
 * between them, '.', an exponent, or inf/infinity/nan. */
static bool parse_py_float(tpl_rt *rt, tv s, double *out)
{
    tv t = tu_strip(rt, s, NULL, true, true);
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
    tv t = tu_strip(rt, s, NULL, true, true);
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
        s = escaped(rt, s);
    if (s.safe) { /* Markup.replace escapes its arguments */
        so = escaped(rt, so);
        sn = escaped(rt, sn);
    }
    *out = tu_replace(rt, s, so, sn, count, s.safe);
    return 0;
}

/* pprint: repr with dict keys sorted (pformat's sort_dicts); long values
 * are not wrapped at 80 columns as pprint would. */
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
        size_t n = json_object_size(v.json), i = 0;
        const char **keys = tpl_alloc(rt, (n ? n : 1) * sizeof *keys);
        const char *k;
        json_t *e;
        json_object_foreach(v.json, k, e) keys[i++] = k;
        for (size_t a = 1; a < n; a++)
            for (size_t c = a; c > 0 && strcmp(keys[c - 1], keys[c]) > 0; c--) {
                const char *t = keys[c];
                keys[c] = keys[c - 1];
                keys[c - 1] = t;
            }
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

TU_FILTER(tf_pprint)
{
    NOARGS("pprint");
    tpl_buf b;
    tpl_buf_init(&b, rt);
    if (pp(rt, &b, in, 0) < 0)
        return -1;
    *out = tu_buf_value(&b, false);
    return 0;
}

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
        const char **keys = tpl_alloc(rt, n * sizeof *keys);
        const char *k;
        json_t *e;
        json_object_foreach(v.json, k, e) keys[i++] = k;
        /* sort_keys=True: code point order is UTF-8 byte order */
        for (size_t a = 1; a < n; a++)
            for (size_t c = a; c > 0 && strcmp(keys[c - 1], keys[c]) > 0; c--) {
                const char *x = keys[c];
                keys[c] = keys[c - 1];
                keys[c - 1] = x;
            }
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
