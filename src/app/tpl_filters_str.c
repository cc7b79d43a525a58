/*
 * tpl_filters_str.c — Jinja 3.1's builtin filters on text: escaping
 * (escape, forceescape, safe, string, striptags with html.unescape), case
 * and spacing (lower, upper, capitalize, title, trim, center, indent,
 * truncate, wordcount, wordwrap), and the argument helpers all filters
 * share. Numbers, formatting and encodings are in tpl_filters_num.c; the
 * sequence filters, the tests and the name tables in tpl_filters.c. Each
 * follows jinja2/filters.py's behaviour (Jinja 3.1.2 with markupsafe 2.1),
 * including where Markup (a safe string) stays Markup and where not.
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

/* soft_str: a string stays itself (Markup stays Markup), anything else is
 * str()'d; undefined is "". */
static int soft_str(tpl_rt *rt, tv v, tv *out) { return tv_to_str(rt, v, out); }

static int need_bool_int(tpl_rt *rt, tv v, const char *what, int64_t *out)
{
    return tu_int_arg(rt, v, what, out);
}

/* ---- escaping ---------------------------------------------------------------- */

tv tu_escaped(tpl_rt *rt, tv s)
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
    *out = tu_escaped(rt, s);
    return 0;
}

TU_FILTER(tf_forceescape)
{
    NOARGS("forceescape");
    tv s;
    if (soft_str(rt, in, &s) < 0)
        return -1;
    s.safe = false; /* __html__() first: a Markup is escaped again */
    *out = tu_escaped(rt, s);
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
    if (in.kind != TV_STR) {
        /* len() works on lists and dicts: short ones come back as they are;
         * slicing and rsplit then fail on long ones, as in Jinja */
        int64_t l;
        if (tv_length(rt, in, &l) < 0)
            return -1;
        if (l <= length + leeway) {
            *out = in;
            return 0;
        }
        return tpl_error(rt, "'%s' object has no attribute 'rsplit'", tu_type_name(in));
    }
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


/* ---- wordwrap: textwrap.wrap per line ----------------------------------------- */

/* textwrap's whitespace: ASCII only */
static bool tw_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static bool tw_letter(uint32_t c) { return tu_is_word(c) && c != '_' && !(c >= '0' && c <= '9'); }

typedef struct tw_chunk {
    const char *s;
    size_t len;  /* bytes */
    size_t cps;  /* code points */
    bool space;
} tw_chunk;

/* textwrap's chunks: runs of whitespace, and words, a word also ending
 * after a hyphen between letters ("long-" "word") when break_on_hyphens
 * (the em-dash rule of its regex is not done) */
static size_t tw_split(tpl_rt *rt, const char *s, size_t n, bool hyphens, tw_chunk **out)
{
    tw_chunk *c = tpl_alloc(rt, (n + 1) * sizeof *c);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t st = i;
        bool sp = tw_space(s[i]);
        if (sp) {
            while (i < n && tw_space(s[i]))
                i++;
        } else {
            while (i < n && !tw_space(s[i])) {
                size_t at = i;
                uint32_t ch = tu_next(s, n, &i);
                if (hyphens && ch == '-' && at >= st + 2 && i < n) {
                    /* (?<=letter{2}-) or (?<=letter-letter-), then (?=letter -? letter) */
                    size_t p1 = at - 1, p0;
                    while (p1 > st && ((unsigned char)s[p1] & 0xC0) == 0x80)
                        p1--;
                    size_t q = p1;
                    uint32_t b1 = tu_next(s, n, &q);
                    p0 = p1;
                    if (p0 > st) {
                        p0--;
                        while (p0 > st && ((unsigned char)s[p0] & 0xC0) == 0x80)
                            p0--;
                    }
                    q = p0;
                    uint32_t b0 = p0 < p1 ? tu_next(s, n, &q) : 0;
                    size_t r = i;
                    uint32_t a0 = tu_next(s, n, &r);
                    uint32_t a1 = r < n ? tu_next(s, n, &(size_t){r}) : 0;
                    if (a1 == '-' && r + 1 < n) {
                        size_t r2 = r + 1;
                        a1 = tu_next(s, n, &r2);
                    }
                    bool before = tw_letter(b1) && (tw_letter(b0) || b0 == '-');
                    if (before && tw_letter(a0) && tw_letter(a1))
                        break;
                }
            }
        }
        c[k].s = s + st;
        c[k].len = i - st;
        c[k].cps = tu_cp_count(s + st, i - st);
        c[k].space = sp;
        k++;
    }
    *out = c;
    return k;
}

static void tw_wrap(tpl_rt *rt, tpl_buf *b, const char *s, size_t n, int64_t width, bool long_words,
                    bool hyphens, tv wrapstring, bool *first_line)
{
    tw_chunk *ch;
    size_t nc = tw_split(rt, s, n, hyphens, &ch), i = 0;
    bool lines = false;
    tw_chunk *cur = tpl_alloc(rt, (nc + 2) * sizeof *cur);
    while (i < nc) {
        size_t ncur = 0;
        int64_t len = 0;
        if (ch[i].space && lines)
            i++; /* drop whitespace at the start of all lines but the first */
        while (i < nc && len + (int64_t)ch[i].cps <= width) {
            len += (int64_t)ch[i].cps;
            cur[ncur++] = ch[i++];
        }
        if (i < nc && (int64_t)ch[i].cps > width) {
            /* _handle_long_word */
            int64_t left = width - len < 1 ? 1 : width - len;
            if (long_words) {
                size_t end = (size_t)left; /* in code points */
                if (hyphens && (int64_t)ch[i].cps > left) {
                    /* the last '-' before left, with something else before it */
                    size_t off = tu_cp_offset(ch[i].s, ch[i].len, (size_t)left);
                    for (size_t h = off; h-- > 0;)
                        if (ch[i].s[h] == '-') {
                            bool other = false;
                            for (size_t q = 0; q < h; q++)
                                other = other || ch[i].s[q] != '-';
                            if (h > 0 && other)
                                end = tu_cp_count(ch[i].s, h) + 1;
                            break;
                        }
                }
                size_t eb = tu_cp_offset(ch[i].s, ch[i].len, end);
                cur[ncur] = ch[i];
                cur[ncur].len = eb;
                cur[ncur].cps = end;
                ncur++;
                len += (int64_t)end;
                ch[i].s += eb;
                ch[i].len -= eb;
                ch[i].cps -= end;
            } else if (ncur == 0) {
                cur[ncur++] = ch[i++];
            }
        }
        if (ncur && cur[ncur - 1].space)
            ncur--; /* trailing whitespace */
        if (ncur) {
            if (!*first_line)
                tpl_buf_put(b, wrapstring.str.s, wrapstring.str.len);
            *first_line = false;
            for (size_t k = 0; k < ncur; k++)
                tpl_buf_put(b, cur[k].s, cur[k].len);
            lines = true;
        }
    }
}

TU_FILTER(tf_wordwrap)
{
    FARGS("wordwrap", "width", "break_long_words", "wrapstring", "break_on_hyphens");
    int64_t width;
    if (tu_int_arg(rt, tu_param(&fa, 0, "width", tv_int(79)), "wordwrap width", &width) < 0)
        return -1;
    if (width <= 0)
        return tpl_error(rt, "invalid width %" PRId64 " (must be > 0)", width);
    bool long_words = tv_truthy(tu_param(&fa, 1, "break_long_words", tv_bool(true)));
    tv ws = tu_param(&fa, 2, "wrapstring", tv_none());
    if (ws.kind == TV_NONE)
        ws = tv_strn("\n", 1, false);
    if (ws.kind != TV_STR)
        return tpl_error(rt, "wordwrap: wrapstring must be a string");
    bool hyphens = tv_truthy(tu_param(&fa, 3, "break_on_hyphens", tv_bool(true)));
    if (in.kind == TV_UNDEF)
        return tu_undefined_error(rt, in);
    if (in.kind != TV_STR)
        return tpl_error(rt, "'%s' object has no attribute 'splitlines'", tu_type_name(in));
    /* wrapstring.join(wrapstring.join(wrap(line)) for line in s.splitlines()) */
    tpl_buf b;
    tpl_buf_init(&b, rt);
    const char *s = in.str.s;
    size_t n = in.str.len, line = 0;
    bool firstline = true;
    for (size_t i = 0; i <= n;) {
        size_t lb = i < n ? line_break(s, n, i) : 0;
        if (i < n && !lb) {
            i++;
            continue;
        }
        if (i == n && line == n && n > 0)
            break; /* a final line break ends the last line */
        if (!firstline)
            tpl_buf_put(&b, ws.str.s, ws.str.len);
        firstline = false;
        bool first = true;
        tw_wrap(rt, &b, s + line, i - line, width, long_words, hyphens, ws, &first);
        if (i == n)
            break;
        i += lb;
        line = i;
    }
    *out = tu_buf_value(&b, false);
    return 0;
}
