/*
 * tpl_lex.c — the template lexer: template text into tokens, as Jinja's
 * lexer does with the default delimiters ({{ }}, {% %}, {# #}),
 * whitespace control (- and +), raw blocks, and Jinja's rule that a
 * closing delimiter only counts while brackets are balanced.
 * The source is already newline-normalized (tpl_env.c).
 */
#include "app/tpl_ast.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lexer {
    tpl_env *env;
    const char *src;
    size_t len, pos;
    /* line bookkeeping: `at` has been counted up to */
    size_t at, line_start;
    int line;
    tpl_toks *out;
    char *msg;
    size_t cap;
    int err_line, err_col;
    char balance[TPL_MAX_NEST];
    int nbalance;
} lexer;

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

/* Bytes of the whitespace character at p (Python's str.isspace, in
 * UTF-8: Jinja strips and skips Unicode whitespace), 0 if none. */
static size_t space_at(const char *s, size_t p, size_t len)
{
    unsigned char c = (unsigned char)s[p];
    if (is_space((char)c) || (c >= 0x1c && c <= 0x1f))
        return 1;
    if (c < 0xc2 || p + 1 >= len)
        return 0;
    unsigned char c1 = (unsigned char)s[p + 1];
    if (c == 0xc2)
        return c1 == 0x85 || c1 == 0xa0 ? 2 : 0;
    if (p + 2 >= len)
        return 0;
    unsigned char c2 = (unsigned char)s[p + 2];
    if (c == 0xe1)
        return c1 == 0x9a && c2 == 0x80 ? 3 : 0;
    if (c == 0xe2 && c1 == 0x80)
        return c2 <= 0x8a || c2 == 0xa8 || c2 == 0xa9 || c2 == 0xaf ? 3 : 0;
    if (c == 0xe2 && c1 == 0x81)
        return c2 == 0x9f ? 3 : 0;
    if (c == 0xe3)
        return c1 == 0x80 && c2 == 0x80 ? 3 : 0;
    return 0;
}

static size_t skip_space(const char *s, size_t p, size_t len)
{
    size_t n;
    while (p < len && (n = space_at(s, p, len)))
        p += n;
    return p;
}

/* The end of s[from, p) with trailing whitespace removed. */
static size_t strip_end(const char *s, size_t from, size_t p)
{
    while (p > from) {
        size_t k = 1;
        while (k < 3 && p - k > from && ((unsigned char)s[p - k] & 0xc0) == 0x80)
            k++;
        if (space_at(s, p - k, p) != k)
            break;
        p -= k;
    }
    return p;
}

/* Line and column (1-based) of position p; positions only move forward. */
static void where(lexer *lx, size_t p, int *line, int *col)
{
    if (p < lx->at) { /* rare: recount from the start */
        lx->at = 0;
        lx->line = 1;
        lx->line_start = 0;
    }
    for (; lx->at < p; lx->at++)
        if (lx->src[lx->at] == '\n') {
            lx->line++;
            lx->line_start = lx->at + 1;
        }
    *line = lx->line;
    *col = (int)(p - lx->line_start) + 1;
}

static int fail_at(lexer *lx, size_t p, const char *fmt, const char *arg)
{
    where(lx, p, &lx->err_line, &lx->err_col);
    snprintf(lx->msg, lx->cap, fmt, arg);
    return -1;
}

static tpl_tok *emit(lexer *lx, tpl_tok_kind kind, size_t p)
{
    tpl_toks *t = lx->out;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        tpl_tok *v = realloc(t->v, cap * sizeof *v);
        if (!v)
            abort();
        t->v = v;
        t->cap = cap;
    }
    tpl_tok *tk = &t->v[t->n++];
    memset(tk, 0, sizeof *tk);
    tk->kind = (uint8_t)kind;
    where(lx, p, &tk->line, &tk->col);
    return tk;
}

static void emit_data(lexer *lx, size_t from, size_t to)
{
    if (to <= from)
        return;
    tpl_tok *tk = emit(lx, TK_DATA, from);
    tk->s = lx->src + from;
    tk->len = to - from;
}

/* ---- strings and numbers ------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A quoted string at lx->pos, decoded with Python's escapes. */
static int lex_string(lexer *lx)
{
    size_t start = lx->pos;
    char q = lx->src[start];
    size_t p = start + 1;
    while (p < lx->len && lx->src[p] != q) {
        if (lx->src[p] == '\\' && p + 1 < lx->len)
            p++;
        p++;
    }
    if (p >= lx->len)
        return fail_at(lx, start, "unexpected char %s", q == '\'' ? "\"'\" at string start" : "'\"' at string start");
    /* decoding never grows the text: every escape is at least as long as
     * the UTF-8 it stands for */
    char *o = tpl_env_alloc(lx->env, p - start + 1);
    size_t n = 0;
    for (size_t i = start + 1; i < p; i++) {
        char c = lx->src[i];
        if (c != '\\') {
            o[n++] = c;
            continue;
        }
        char e = lx->src[++i];
        switch (e) {
        case '\n': break; /* a continued line */
        case '\\': o[n++] = '\\'; break;
        case '\'': o[n++] = '\''; break;
        case '"': o[n++] = '"'; break;
        case 'a': o[n++] = '\a'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'v': o[n++] = '\v'; break;
        case 'x': case 'u': case 'U': {
            int digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t cp = 0;
            for (int k = 0; k < digits; k++) {
                int h = i + 1 < p ? hexval(lx->src[i + 1]) : -1;
                if (h < 0)
                    return fail_at(lx, start, "%s", "truncated \\xXX escape in a string");
                cp = cp * 16 + (uint32_t)h;
                i++;
            }
            if (cp > 0x10FFFF)
                return fail_at(lx, start, "%s", "illegal Unicode character in a string");
            n += put_utf8(o + n, cp);
            break;
        }
        default:
            if (e >= '0' && e <= '7') {
                uint32_t cp = (uint32_t)(e - '0');
                for (int k = 0; k < 2 && i + 1 < p && lx->src[i + 1] >= '0' && lx->src[i + 1] <= '7'; k++)
                    cp = cp * 8 + (uint32_t)(lx->src[++i] - '0');
                n += put_utf8(o + n, cp);
            } else {
                o[n++] = '\\';
                o[n++] = e;
            }
        }
    }
    o[n] = 0;
    tpl_tok *tk = emit(lx, TK_STRING, start);
    tk->s = o;
    tk->len = n;
    lx->pos = p + 1;
    return 0;
}

/* digits with single '_' separators: the end, or `at` when none */
static size_t digits(const lexer *lx, size_t at)
{
    size_t p = at;
    if (p >= lx->len || !is_digit(lx->src[p]))
        return at;
    while (p < lx->len) {
        if (is_digit(lx->src[p]))
            p++;
        else if (lx->src[p] == '_' && p + 1 < lx->len && is_digit(lx->src[p + 1]))
            p++;
        else
            break;
    }
    return p;
}

static int lex_number(lexer *lx)
{
    size_t start = lx->pos, p = digits(lx, start);
    const char *s = lx->src;
    bool is_float = false;
    size_t end = p;
    if (!(start > 0 && s[start - 1] == '.')) {
        size_t q = p;
        bool frac = false;
        if (q < lx->len && s[q] == '.' && digits(lx, q + 1) > q + 1) {
            q = digits(lx, q + 1);
            frac = true;
        }
        if (q < lx->len && (s[q] == 'e' || s[q] == 'E')) {
            size_t r = q + 1;
            if (r < lx->len && (s[r] == '+' || s[r] == '-'))
                r++;
            if (digits(lx, r) > r) {
                q = digits(lx, r);
                frac = true;
            }
        }
        if (frac) {
            is_float = true;
            end = q;
        }
    }
    char buf[128];
    size_t bn = 0;
    if (is_float) {
        for (size_t i = start; i < end && bn < sizeof buf - 1; i++)
            if (s[i] != '_')
                buf[bn++] = s[i];
        buf[bn] = 0;
        tpl_tok *tk = emit(lx, TK_FLOAT, start);
        tk->f = strtod(buf, NULL);
        lx->pos = end;
        return 0;
    }
    int base = 10;
    size_t from = start;
    if (s[start] == '0' && start + 1 < lx->len) {
        char b = s[start + 1] | 0x20;
        base = b == 'x' ? 16 : b == 'o' ? 8 : b == 'b' ? 2 : 10;
        if (base != 10) {
            from = start + 2;
            end = from;
            while (end < lx->len && (s[end] == '_' || (hexval(s[end]) >= 0 && hexval(s[end]) < base)))
                end++;
            if (end == from)
                return fail_at(lx, start, "%s", "invalid integer literal");
        } else {
            /* Jinja's decimal zero is 0(_?0)*: "012" is 0 then 12 */
            end = start + 1;
            while (end < lx->len && (s[end] == '0' || (s[end] == '_' && end + 1 < lx->len && s[end + 1] == '0')))
                end++;
        }
    }
    uint64_t v = 0;
    for (size_t i = from; i < end; i++) {
        if (s[i] == '_')
            continue;
        uint64_t d = (uint64_t)hexval(s[i]);
        if (v > (UINT64_MAX - d) / (uint64_t)base || v * (uint64_t)base + d > (uint64_t)INT64_MAX)
            return fail_at(lx, start, "%s", "integer literal too large");
        v = v * (uint64_t)base + d;
    }
    tpl_tok *tk = emit(lx, TK_INT, start);
    tk->i = (int64_t)v;
    lx->pos = end;
    return 0;
}

static const struct {
    const char *s;
    tpl_opc op;
} operators[] = {
    {"//", OP_FLOORDIV}, {"**", OP_POW}, {"==", OP_EQ}, {"!=", OP_NE}, {">=", OP_GE},
    {"<=", OP_LE}, {"+", OP_ADD}, {"-", OP_SUB}, {"/", OP_DIV}, {"*", OP_MUL},
    {"%", OP_MOD}, {"~", OP_TILDE}, {"[", OP_LBRACKET}, {"]", OP_RBRACKET},
    {"(", OP_LPAREN}, {")", OP_RPAREN}, {"{", OP_LBRACE}, {"}", OP_RBRACE},
    {">", OP_GT}, {"<", OP_LT}, {"=", OP_ASSIGN}, {".", OP_DOT}, {":", OP_COLON},
    {"|", OP_PIPE}, {",", OP_COMMA}, {";", OP_SEMICOLON},
};

static int lex_operator(lexer *lx)
{
    const char *s = lx->src + lx->pos;
    for (size_t k = 0; k < sizeof operators / sizeof operators[0]; k++) {
        size_t n = strlen(operators[k].s);
        if (lx->pos + n > lx->len || memcmp(s, operators[k].s, n) != 0)
            continue;
        char c = operators[k].s[0];
        if (n == 1 && (c == '(' || c == '[' || c == '{')) {
            if (lx->nbalance == TPL_MAX_NEST)
                return fail_at(lx, lx->pos, "%s", "brackets nested too deeply");
            lx->balance[lx->nbalance++] = c == '(' ? ')' : c == '[' ? ']' : '}';
        } else if (n == 1 && (c == ')' || c == ']' || c == '}')) {
            char tmp[64];
            if (!lx->nbalance) {
                snprintf(tmp, sizeof tmp, "unexpected '%c'", c);
                return fail_at(lx, lx->pos, "%s", tmp);
            }
            char want = lx->balance[--lx->nbalance];
            if (want != c) {
                snprintf(tmp, sizeof tmp, "unexpected '%c', expected '%c'", c, want);
                return fail_at(lx, lx->pos, "%s", tmp);
            }
        }
        tpl_tok *tk = emit(lx, TK_OP, lx->pos);
        tk->op = (uint8_t)operators[k].op;
        lx->pos += n;
        return 0;
    }
    char tmp[64];
    unsigned char c = (unsigned char)*s;
    if (c == '\'')
        snprintf(tmp, sizeof tmp, "unexpected char \"'\" at %zu", lx->pos);
    else if (c >= 0x20 && c < 0x7f)
        snprintf(tmp, sizeof tmp, "unexpected char '%c' at %zu", c, lx->pos);
    else
        snprintf(tmp, sizeof tmp, "unexpected char '\\x%02x' at %zu", c, lx->pos);
    return fail_at(lx, lx->pos, "%s", tmp);
}

/* The inside of {{ }} or {% %}, after the opening delimiter. */
static int lex_tag(lexer *lx, bool block)
{
    const char *s = lx->src;
    lx->nbalance = 0;
    for (;;) {
        lx->pos = skip_space(s, lx->pos, lx->len);
        if (lx->pos >= lx->len)
            return 0; /* the parser reports the unfinished tag */
        size_t p = lx->pos;
        char c = s[p];
        if (!lx->nbalance) {
            char close = block ? '%' : '}';
            size_t n = 0;
            bool strip = false;
            if (c == '-' && p + 2 < lx->len + 0 && s[p + 1] == close && s[p + 2] == '}') {
                n = 3;
                strip = true;
            } else if (block && c == '+' && p + 2 < lx->len && s[p + 1] == '%' && s[p + 2] == '}') {
                n = 3;
            } else if (c == close && p + 1 < lx->len && s[p + 1] == '}') {
                n = 2;
            }
            if (n) {
                emit(lx, block ? TK_BLOCK_END : TK_VAR_END, p);
                lx->pos = p + n;
                if (strip)
                    lx->pos = skip_space(s, lx->pos, lx->len);
                return 0;
            }
        }
        int rc;
        if (is_digit(c)) {
            rc = lex_number(lx);
        } else if (is_name_start(c)) {
            size_t e = p;
            while (e < lx->len && is_name_char(s[e]))
                e++;
            tpl_tok *tk = emit(lx, TK_NAME, p);
            tk->s = tpl_intern(lx->env, s + p, e - p);
            tk->len = e - p;
            lx->pos = e;
            rc = 0;
        } else if (c == '\'' || c == '"') {
            rc = lex_string(lx);
        } else {
            rc = lex_operator(lx);
        }
        if (rc)
            return rc;
    }
}

/* After "{%" and an optional sign at p: is this "raw" then "%}"? Returns
 * the position after the closing delimiter (and its stripping), or 0. */
static size_t raw_open_end(const lexer *lx, size_t p)
{
    const char *s = lx->src;
    p = skip_space(s, p, lx->len);
    if (lx->len - p < 3 || memcmp(s + p, "raw", 3) != 0)
        return 0;
    p = skip_space(s, p + 3, lx->len);
    if (p + 2 < lx->len + 0 && s[p] == '-' && s[p + 1] == '%' && s[p + 2] == '}') {
        return skip_space(s, p + 3, lx->len);
    }
    if (p + 1 < lx->len && s[p] == '%' && s[p + 1] == '}')
        return p + 2;
    return 0;
}

/* The raw block's content from p: emits it, returns the position after
 * {% endraw %}, or 0 when there is none. */
static size_t raw_body(lexer *lx, size_t p)
{
    const char *s = lx->src;
    for (size_t q = p; q + 1 < lx->len; q++) {
        if (s[q] != '{' || s[q + 1] != '%')
            continue;
        size_t r = q + 2;
        char sign = r < lx->len ? s[r] : 0;
        if (sign == '-' || sign == '+')
            r++;
        r = skip_space(s, r, lx->len);
        if (lx->len - r < 6 || memcmp(s + r, "endraw", 6) != 0)
            continue;
        r = skip_space(s, r + 6, lx->len);
        size_t end = 0;
        bool strip = false;
        if (r + 2 < lx->len + 0 && (s[r] == '-' || s[r] == '+') && s[r + 1] == '%' && s[r + 2] == '}') {
            end = r + 3;
            strip = s[r] == '-';
        } else if (r + 1 < lx->len && s[r] == '%' && s[r + 1] == '}') {
            end = r + 2;
        }
        if (!end)
            continue;
        size_t text_end = q;
        if (sign == '-')
            text_end = strip_end(s, p, text_end);
        emit_data(lx, p, text_end);
        if (strip)
            end = skip_space(s, end, lx->len);
        return end;
    }
    return 0;
}

int tpl_lex(tpl_env *env, const char *src, size_t len, tpl_toks *out, int *line, int *col,
            char *msg, size_t cap)
{
    tpl_tok *eof;
    lexer lx = {.env = env, .src = src, .len = len, .line = 1, .out = out, .msg = msg, .cap = cap};
    const char *s = src;
    while (lx.pos < len) {
        size_t q = lx.pos;
        while (q + 1 < len && !(s[q] == '{' && (s[q + 1] == '{' || s[q + 1] == '%' || s[q + 1] == '#')))
            q++;
        if (q + 1 >= len) {
            emit_data(&lx, lx.pos, len);
            break;
        }
        char kind = s[q + 1];
        size_t after = q + 2;
        char sign = after < len ? s[after] : 0;
        if (sign == '-' || sign == '+')
            after++;
        else
            sign = 0;
        size_t text_end = q;
        if (sign == '-')
            text_end = strip_end(s, lx.pos, text_end);
        size_t raw_end = kind == '%' ? raw_open_end(&lx, after) : 0;
        emit_data(&lx, lx.pos, text_end);
        if (raw_end) {
            size_t end = raw_end < len ? raw_body(&lx, raw_end) : len;
            if (!end) {
                fail_at(&lx, q, "%s", "Missing end of raw directive");
                goto fail;
            }
            lx.pos = end;
        } else if (kind == '#') {
            size_t e = after;
            while (e + 1 < len && !(s[e] == '#' && s[e + 1] == '}'))
                e++;
            if (e + 1 >= len && after >= len)
                break; /* "{#" at the very end: Jinja ends quietly */
            if (e + 1 >= len) {
                fail_at(&lx, q, "%s", "Missing end of comment tag");
                goto fail;
            }
            lx.pos = e + 2;
            if (e > after && s[e - 1] == '-')
                lx.pos = skip_space(s, lx.pos, len);
        } else {
            emit(&lx, kind == '{' ? TK_VAR_BEGIN : TK_BLOCK_BEGIN, q);
            lx.pos = after;
            if (lex_tag(&lx, kind == '%'))
                goto fail;
        }
    }
    /* Jinja's end-of-template token is on the line of the last token */
    int eof_line = out->n ? out->v[out->n - 1].line : 1;
    int eof_col = out->n ? out->v[out->n - 1].col : 1;
    eof = emit(&lx, TK_EOF, len);
    eof->line = eof_line;
    eof->col = eof_col;
    return 0;
fail:
    /* Jinja's lexer runs as the parser reads: an error the parser meets
     * before this point wins, so the tokens so far end in an end token */
    *line = lx.err_line;
    *col = lx.err_col;
    eof = emit(&lx, TK_EOF, len);
    eof->line = lx.err_line;
    eof->col = lx.err_col;
    return -1;
}
