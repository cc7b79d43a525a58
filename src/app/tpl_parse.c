/*
 * tpl_parse.c — the template parser: tokens into the tree of tpl_ast.h,
 * following Jinja's grammar (its precedence, its tuple and subscript
 * rules, `is` tests binding like filters) and its error messages and line
 * numbers. Unknown filters and tests are, as in Jinja, compile errors
 * found after the whole template parsed, except inside `if` and inline
 * `if`, where they fail only when run.
 */
#include "app/tpl_ast.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MAX_HEIGHT 200 /* expression tree height: the renderer recurses over it */

void *tp_fail_at(tpl_parser *p, int line, int col, const char *fmt, ...)
{
    if (p->failed)
        return NULL;
    p->failed = true;
    p->fail_index = p->i;
    p->line = line;
    p->col = col;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->msg, p->cap, fmt, ap);
    va_end(ap);
    return NULL;
}

static const char *op_text(tpl_opc op)
{
    static const char *const s[] = {"", "+", "-", "*", "/", "//", "%", "**", "~", "[", "]", "(", ")",
                                    "{", "}", "==", "!=", ">", ">=", "<", "<=", "=", ".", ":", "|",
                                    ",", ";"};
    return s[op];
}

/* Jinja's describe_token */
const char *tp_describe(const tpl_tok *t)
{
    switch (t->kind) {
    case TK_NAME: return t->s;
    case TK_OP: return op_text((tpl_opc)t->op);
    case TK_EOF: return "end of template";
    case TK_DATA: return "template data / text";
    case TK_VAR_BEGIN: return "begin of print statement";
    case TK_VAR_END: return "end of print statement";
    case TK_BLOCK_BEGIN: return "begin of statement block";
    case TK_BLOCK_END: return "end of statement block";
    case TK_STRING: return "string";
    case TK_INT: return "integer";
    default: return "float";
    }
}

bool tp_expect_kind(tpl_parser *p, tpl_tok_kind kind, const char *what)
{
    const tpl_tok *t = tp_cur(p);
    if (t->kind == kind) {
        tp_next(p);
        return true;
    }
    if (t->kind == TK_EOF)
        tp_fail_at(p, t->line, t->col, "unexpected end of template, expected '%s'.", what);
    else
        tp_fail_at(p, t->line, t->col, "expected token '%s', got '%s'", what, tp_describe(t));
    return false;
}

bool tp_expect_op(tpl_parser *p, tpl_opc op) { return tp_is_op(tp_cur(p), op) ? (tp_next(p), true) : tp_expect_kind(p, TK_OP + 100, op_text(op)); }

bool tp_expect_name(tpl_parser *p, const char *name)
{
    if (tp_is_name(tp_cur(p), name)) {
        tp_next(p);
        return true;
    }
    return tp_expect_kind(p, TK_OP + 100, name);
}

tpl_node *tp_node(tpl_parser *p, tpl_node_kind kind, int line)
{
    tpl_node *n = tpl_env_alloc(p->env, sizeof *n);
    memset(n, 0, sizeof *n);
    n->kind = (uint8_t)kind;
    n->line = line;
    return n;
}

static uint16_t height_of(const tpl_node *n) { return n ? n->height : 0; }

/* Height from the children; too tall a tree is a syntax error. */
tpl_node *tp_seal(tpl_parser *p, tpl_node *n)
{
    if (!n)
        return NULL;
    uint16_t h = height_of(n->a);
    if (height_of(n->b) > h)
        h = height_of(n->b);
    if (height_of(n->c) > h)
        h = height_of(n->c);
    uint16_t na = 0, nk = 0;
    for (const tpl_node *x = n->args; x; x = x->next) {
        if (height_of(x) > h)
            h = height_of(x);
        if (x->kind == N_KWARG)
            nk++;
        else
            na++;
    }
    n->nargs = na;
    n->nkw = nk;
    n->height = (uint16_t)(h + 1);
    if (n->height > MAX_HEIGHT)
        return tp_fail_at(p, n->line, 1, "expression nested too deeply");
    return n;
}

tpl_node *tp_mk(tpl_parser *p, tpl_node_kind kind, int line, tpl_node *a, tpl_node *b)
{
    if (p->failed)
        return NULL;
    tpl_node *n = tp_node(p, kind, line);
    n->a = a;
    n->b = b;
    return tp_seal(p, n);
}

/* ---- expressions ------------------------------------------------------------- */

static tpl_node *parse_unary(tpl_parser *p, bool with_filter);
static tpl_node *parse_postfix(tpl_parser *p, tpl_node *n);

static bool enter(tpl_parser *p)
{
    if (++p->depth > TPL_MAX_NEST) {
        TP_FAIL(p, tp_cur(p), "expression nested too deeply");
        return false;
    }
    return true;
}

/* Append x to a list kept by its head and a tail pointer. */
void tp_append(tpl_node **head, tpl_node **tail, tpl_node *x)
{
    if (!x)
        return;
    if (*tail)
        (*tail)->next = x;
    else
        *head = x;
    *tail = x;
}

static tpl_node *parse_call_args(tpl_parser *p, tpl_node *n, int line)
{
    const tpl_tok *open = tp_cur(p);
    if (!tp_expect_op(p, OP_LPAREN))
        return NULL;
    tpl_node *head = NULL, *tail = NULL;
    bool comma = false, kw_seen = false;
    while (!p->failed && !tp_is_op(tp_cur(p), OP_RPAREN)) {
        if (comma) {
            if (!tp_expect_op(p, OP_COMMA))
                return NULL;
            if (tp_is_op(tp_cur(p), OP_RPAREN))
                break;
        }
        if (tp_is_op(tp_cur(p), OP_MUL) || tp_is_op(tp_cur(p), OP_POW))
            return TP_FAIL(p, tp_cur(p), "*args and **kwargs in calls are not supported");
        if (tp_cur(p)->kind == TK_NAME && tp_is_op(tp_peek(p), OP_ASSIGN)) {
            tpl_node *kw = tp_node(p, N_KWARG, tp_cur(p)->line);
            kw->name = tp_cur(p)->s;
            tp_next(p);
            tp_next(p);
            kw->a = tp_expression(p, true);
            tp_append(&head, &tail, tp_seal(p, kw));
            kw_seen = true;
        } else {
            if (kw_seen)
                return TP_FAIL(p, open, "invalid syntax for function call expression");
            tp_append(&head, &tail, tp_expression(p, true));
        }
        comma = true;
    }
    if (p->failed || !tp_expect_op(p, OP_RPAREN))
        return NULL;
    if (n)
        n->args = head;
    (void)line;
    return n;
}

/* A dotted filter or test name. */
static const char *dotted_name(tpl_parser *p)
{
    const tpl_tok *t = tp_cur(p);
    if (t->kind != TK_NAME) {
        tp_expect_kind(p, TK_NAME, "name");
        return NULL;
    }
    tp_next(p);
    if (!tp_is_op(tp_cur(p), OP_DOT))
        return t->s;
    char buf[256];
    size_t n = (size_t)snprintf(buf, sizeof buf, "%s", t->s);
    while (tp_is_op(tp_cur(p), OP_DOT)) {
        tp_next(p);
        if (tp_cur(p)->kind != TK_NAME) {
            tp_expect_kind(p, TK_NAME, "name");
            return NULL;
        }
        n += (size_t)snprintf(buf + n, n < sizeof buf ? sizeof buf - n : 0, ".%s", tp_next(p)->s);
        if (n >= sizeof buf)
            n = sizeof buf - 1;
    }
    return tpl_intern(p->env, buf, n);
}

static void unknown(tpl_parser *p, const tpl_node *n, const char *what)
{
    if (p->soft || p->late)
        return; /* in an if: fails when run */
    p->late = true;
    p->late_line = n->line;
    p->late_col = 1;
    snprintf(p->late_msg, sizeof p->late_msg, "No %s named '%s'.", what, n->name);
}

/* `|f(args)|g` on n (n NULL: a filter block's chain, on a placeholder). */
tpl_node *tp_filters(tpl_parser *p, tpl_node *n, bool start_inline)
{
    while (!p->failed && (tp_is_op(tp_cur(p), OP_PIPE) || start_inline)) {
        if (!start_inline)
            tp_next(p);
        start_inline = false;
        const tpl_tok *t = tp_cur(p);
        tpl_node *f = tp_node(p, N_FILTER, t->line);
        f->name = dotted_name(p);
        if (!f->name)
            return NULL;
        f->a = n;
        if (tp_is_op(tp_cur(p), OP_LPAREN) && !parse_call_args(p, f, t->line))
            return NULL;
        f->reg = tpl_env_find_reg(p->env, true, f->name);
        if (!f->reg)
            f->filter = tpl_builtin_filter(f->name);
        if (!f->reg && !f->filter)
            unknown(p, f, "filter");
        n = tp_seal(p, f);
    }
    return n;
}

static tpl_node *parse_test(tpl_parser *p, tpl_node *n)
{
    const tpl_tok *is = tp_next(p);
    bool negated = false;
    if (tp_is_name(tp_cur(p), "not")) {
        tp_next(p);
        negated = true;
    }
    tpl_node *t = tp_node(p, N_TEST, is->line);
    t->name = dotted_name(p);
    if (!t->name)
        return NULL;
    t->a = n;
    const tpl_tok *c = tp_cur(p);
    if (tp_is_op(c, OP_LPAREN)) {
        if (!parse_call_args(p, t, is->line))
            return NULL;
    } else if ((c->kind == TK_NAME || c->kind == TK_STRING || c->kind == TK_INT || c->kind == TK_FLOAT ||
                tp_is_op(c, OP_LBRACKET) || tp_is_op(c, OP_LBRACE)) &&
               !tp_is_name(c, "else") && !tp_is_name(c, "or") && !tp_is_name(c, "and")) {
        if (tp_is_name(c, "is"))
            return TP_FAIL(p, c, "You cannot chain multiple tests with is");
        tpl_node *arg = parse_postfix(p, tp_primary(p));
        t->args = arg;
    }
    t->test = tpl_builtin_test(t->name);
    if (!t->test)
        unknown(p, t, "test");
    n = tp_seal(p, t);
    if (negated)
        n = tp_mk(p, N_NOT, is->line, n, NULL);
    return n;
}

static tpl_node *parse_filter_expr(tpl_parser *p, tpl_node *n)
{
    for (;;) {
        if (p->failed)
            return NULL;
        const tpl_tok *t = tp_cur(p);
        if (tp_is_op(t, OP_PIPE)) {
            n = tp_filters(p, n, false);
        } else if (tp_is_name(t, "is")) {
            n = parse_test(p, n);
        } else if (tp_is_op(t, OP_LPAREN)) {
            tpl_node *call = tp_node(p, N_CALL, t->line);
            call->a = n;
            n = tp_seal(p, parse_call_args(p, call, t->line));
        } else {
            return n;
        }
    }
}

/* One part of a subscript: an expression or a slice. */
static tpl_node *parse_subscribed(tpl_parser *p)
{
    const tpl_tok *t = tp_cur(p);
    tpl_node *parts[3] = {NULL, NULL, NULL};
    if (tp_is_op(t, OP_COLON)) {
        tp_next(p);
    } else {
        tpl_node *e = tp_expression(p, true);
        if (!e || !tp_is_op(tp_cur(p), OP_COLON))
            return e;
        tp_next(p);
        parts[0] = e;
    }
    if (!tp_is_op(tp_cur(p), OP_COLON) && !tp_is_op(tp_cur(p), OP_RBRACKET) && !tp_is_op(tp_cur(p), OP_COMMA))
        parts[1] = tp_expression(p, true);
    if (tp_is_op(tp_cur(p), OP_COLON)) {
        tp_next(p);
        if (!tp_is_op(tp_cur(p), OP_RBRACKET) && !tp_is_op(tp_cur(p), OP_COMMA))
            parts[2] = tp_expression(p, true);
    }
    tpl_node *s = tp_node(p, N_SLICE, t->line);
    s->b = parts[0];
    s->c = parts[1];
    s->args = parts[2]; /* the step */
    return s;
}

static tpl_node *parse_postfix(tpl_parser *p, tpl_node *n)
{
    for (;;) {
        if (p->failed || !n)
            return NULL;
        const tpl_tok *t = tp_cur(p);
        if (tp_is_op(t, OP_DOT)) {
            tp_next(p);
            const tpl_tok *a = tp_next(p);
            if (a->kind == TK_NAME) {
                tpl_node *g = tp_node(p, N_GETATTR, t->line);
                g->a = n;
                g->name = a->s;
                n = tp_seal(p, g);
            } else if (a->kind == TK_INT) {
                tpl_node *k = tp_node(p, N_CONST, a->line);
                k->value = tv_int(a->i);
                n = tp_mk(p, N_GETITEM, t->line, n, tp_seal(p, k));
            } else {
                return TP_FAIL(p, a, "expected name or number");
            }
        } else if (tp_is_op(t, OP_LBRACKET)) {
            tp_next(p);
            tpl_node *head = NULL, *tail = NULL;
            int count = 0;
            while (!p->failed && !tp_is_op(tp_cur(p), OP_RBRACKET)) {
                if (count && !tp_expect_op(p, OP_COMMA))
                    return NULL;
                tp_append(&head, &tail, parse_subscribed(p));
                count++;
            }
            if (p->failed || !tp_expect_op(p, OP_RBRACKET))
                return NULL;
            if (!head)
                return TP_FAIL(p, t, "expected subscript expression");
            if (count == 1 && head->kind == N_SLICE) {
                head->a = n;
                tpl_node *step = head->args;
                head->args = NULL;
                tp_seal(p, head);
                if (step && step->height + 1 > head->height)
                    head->height = (uint16_t)(step->height + 1);
                head->args = step;
                n = head;
            } else if (count == 1) {
                n = tp_mk(p, N_GETITEM, t->line, n, head);
            } else {
                for (const tpl_node *x = head; x; x = x->next)
                    if (x->kind == N_SLICE)
                        return TP_FAIL(p, t, "a slice in a tuple subscript is not supported");
                tpl_node *tup = tp_node(p, N_TUPLE, t->line);
                tup->args = head;
                n = tp_mk(p, N_GETITEM, t->line, n, tp_seal(p, tup));
            }
        } else if (tp_is_op(t, OP_LPAREN)) {
            tpl_node *call = tp_node(p, N_CALL, t->line);
            call->a = n;
            n = tp_seal(p, parse_call_args(p, call, t->line));
        } else {
            return n;
        }
    }
}

static tpl_node *constant(tpl_parser *p, int line, tv v)
{
    tpl_node *n = tp_node(p, N_CONST, line);
    n->value = v;
    return tp_seal(p, n);
}

tpl_node *tp_primary(tpl_parser *p)
{
    const tpl_tok *t = tp_cur(p);
    if (p->failed)
        return NULL;
    if (t->kind == TK_NAME) {
        tp_next(p);
        if (!strcmp(t->s, "true") || !strcmp(t->s, "True"))
            return constant(p, t->line, tv_bool(true));
        if (!strcmp(t->s, "false") || !strcmp(t->s, "False"))
            return constant(p, t->line, tv_bool(false));
        if (!strcmp(t->s, "none") || !strcmp(t->s, "None"))
            return constant(p, t->line, tv_none());
        tpl_node *n = tp_node(p, N_NAME, t->line);
        n->name = t->s;
        if (n->name == p->env->n_varargs)
            p->uses |= NF_VARARGS;
        else if (n->name == p->env->n_kwargs)
            p->uses |= NF_KWARGS;
        else if (n->name == p->env->n_caller)
            p->uses |= NF_CALLER;
        return tp_seal(p, n);
    }
    if (t->kind == TK_STRING) {
        tp_next(p);
        if (tp_cur(p)->kind != TK_STRING)
            return constant(p, t->line, tv_strn(t->s, t->len, false));
        size_t len = t->len;
        for (size_t k = p->i; p->t[k].kind == TK_STRING; k++)
            len += p->t[k].len;
        char *s = tpl_env_alloc(p->env, len + 1);
        memcpy(s, t->s, t->len);
        size_t o = t->len;
        while (tp_cur(p)->kind == TK_STRING) {
            memcpy(s + o, tp_cur(p)->s, tp_cur(p)->len);
            o += tp_cur(p)->len;
            tp_next(p);
        }
        s[o] = 0;
        return constant(p, t->line, tv_strn(s, len, false));
    }
    if (t->kind == TK_INT) {
        tp_next(p);
        return constant(p, t->line, tv_int(t->i));
    }
    if (t->kind == TK_FLOAT) {
        tp_next(p);
        return constant(p, t->line, tv_float(t->f));
    }
    if (tp_is_op(t, OP_LPAREN)) {
        tp_next(p);
        tpl_node *n = tp_tuple(p, false, true, NULL, true);
        if (!n || !tp_expect_op(p, OP_RPAREN))
            return NULL;
        return n;
    }
    if (tp_is_op(t, OP_LBRACKET) || tp_is_op(t, OP_LBRACE)) {
        bool dict = tp_is_op(t, OP_LBRACE);
        tpl_opc close = dict ? OP_RBRACE : OP_RBRACKET;
        tp_next(p);
        tpl_node *n = tp_node(p, dict ? N_DICT : N_LIST, t->line), *tail = NULL;
        while (!p->failed && !tp_is_op(tp_cur(p), close)) {
            if (n->args && !tp_expect_op(p, OP_COMMA))
                return NULL;
            if (tp_is_op(tp_cur(p), close))
                break;
            tpl_node *item = tp_expression(p, true);
            if (dict && item) {
                if (!tp_expect_op(p, OP_COLON))
                    return NULL;
                item = tp_mk(p, N_PAIR, item->line, item, tp_expression(p, true));
            }
            if (!item)
                return NULL;
            tp_append(&n->args, &tail, item);
        }
        if (p->failed || !tp_expect_op(p, close))
            return NULL;
        return tp_seal(p, n);
    }
    return TP_FAIL(p, t, "unexpected '%s'", tp_describe(t));
}

static tpl_node *parse_unary(tpl_parser *p, bool with_filter)
{
    if (!enter(p))
        return NULL;
    const tpl_tok *t = tp_cur(p);
    tpl_node *n;
    if (tp_is_op(t, OP_SUB) || tp_is_op(t, OP_ADD)) {
        tp_next(p);
        n = tp_mk(p, tp_is_op(t, OP_SUB) ? N_NEG : N_POS, t->line, parse_unary(p, false), NULL);
    } else {
        n = tp_primary(p);
    }
    n = parse_postfix(p, n);
    if (with_filter)
        n = parse_filter_expr(p, n);
    p->depth--;
    return p->failed ? NULL : n;
}

static tpl_node *binop(tpl_parser *p, int line, tv_op op, tpl_node *a, tpl_node *b)
{
    tpl_node *n = tp_mk(p, N_BINOP, line, a, b);
    if (n)
        n->op = (uint8_t)op;
    return n;
}

static tpl_node *parse_pow(tpl_parser *p)
{
    tpl_node *n = parse_unary(p, true);
    while (n && tp_is_op(tp_cur(p), OP_POW)) {
        int line = tp_next(p)->line;
        n = binop(p, line, TV_POW, n, parse_unary(p, true));
    }
    return n;
}

static tpl_node *parse_math2(tpl_parser *p)
{
    tpl_node *n = parse_pow(p);
    for (;;) {
        const tpl_tok *t = tp_cur(p);
        tv_op op;
        if (tp_is_op(t, OP_MUL))
            op = TV_MUL;
        else if (tp_is_op(t, OP_DIV))
            op = TV_DIV;
        else if (tp_is_op(t, OP_FLOORDIV))
            op = TV_FLOORDIV;
        else if (tp_is_op(t, OP_MOD))
            op = TV_MOD;
        else
            return n;
        if (!n)
            return NULL;
        tp_next(p);
        n = binop(p, t->line, op, n, parse_pow(p));
    }
}

static tpl_node *parse_concat(tpl_parser *p)
{
    tpl_node *n = parse_math2(p);
    while (n && tp_is_op(tp_cur(p), OP_TILDE)) {
        int line = tp_next(p)->line;
        n = binop(p, line, TV_CONCAT, n, parse_math2(p));
    }
    return n;
}

static tpl_node *parse_math1(tpl_parser *p)
{
    tpl_node *n = parse_concat(p);
    while (n && (tp_is_op(tp_cur(p), OP_ADD) || tp_is_op(tp_cur(p), OP_SUB))) {
        const tpl_tok *t = tp_next(p);
        n = binop(p, t->line, tp_is_op(t, OP_ADD) ? TV_ADD : TV_SUB, n, parse_concat(p));
    }
    return n;
}

static tpl_node *parse_compare(tpl_parser *p)
{
    int line = tp_cur(p)->line;
    tpl_node *first = parse_math1(p);
    tpl_node *head = NULL, *tail = NULL;
    for (;;) {
        if (!first || p->failed)
            return NULL;
        const tpl_tok *t = tp_cur(p);
        tv_op op;
        if (t->kind == TK_OP && t->op >= OP_EQ && t->op <= OP_LE) {
            static const tv_op ops[] = {TV_EQ, TV_NE, TV_GT, TV_GE, TV_LT, TV_LE};
            op = ops[t->op - OP_EQ];
            tp_next(p);
        } else if (tp_is_name(t, "in")) {
            op = TV_IN;
            tp_next(p);
        } else if (tp_is_name(t, "not") && tp_is_name(tp_peek(p), "in")) {
            op = TV_NOTIN;
            tp_next(p);
            tp_next(p);
        } else {
            break;
        }
        tpl_node *c = tp_mk(p, N_CMPOP, t->line, parse_math1(p), NULL);
        if (!c)
            return NULL;
        c->op = (uint8_t)op;
        tp_append(&head, &tail, c);
    }
    if (!head)
        return first;
    tpl_node *n = tp_node(p, N_COMPARE, line);
    n->a = first;
    n->args = head;
    return tp_seal(p, n);
}

static tpl_node *parse_not(tpl_parser *p)
{
    if (tp_is_name(tp_cur(p), "not")) {
        int line = tp_next(p)->line;
        if (!enter(p))
            return NULL;
        tpl_node *n = tp_mk(p, N_NOT, line, parse_not(p), NULL);
        p->depth--;
        return n;
    }
    return parse_compare(p);
}

static tpl_node *parse_and(tpl_parser *p)
{
    tpl_node *n = parse_not(p);
    while (n && tp_is_name(tp_cur(p), "and")) {
        int line = tp_next(p)->line;
        n = tp_mk(p, N_AND, line, n, parse_not(p));
    }
    return n;
}

static tpl_node *parse_or(tpl_parser *p)
{
    tpl_node *n = parse_and(p);
    while (n && tp_is_name(tp_cur(p), "or")) {
        int line = tp_next(p)->line;
        n = tp_mk(p, N_OR, line, n, parse_and(p));
    }
    return n;
}

static tpl_node *parse_condexpr(tpl_parser *p)
{
    tpl_node *n = parse_or(p);
    while (n && tp_is_name(tp_cur(p), "if")) {
        int line = tp_next(p)->line;
        bool soft = p->soft;
        p->soft = true;
        tpl_node *cond = parse_or(p), *other = NULL;
        if (cond && tp_is_name(tp_cur(p), "else")) {
            tp_next(p);
            other = parse_condexpr(p);
            if (!other) {
                p->soft = soft;
                return NULL;
            }
        }
        p->soft = soft;
        tpl_node *c = tp_node(p, N_COND, line);
        c->a = cond;
        c->b = n;
        c->c = other;
        n = cond ? tp_seal(p, c) : NULL;
    }
    return n;
}

tpl_node *tp_expression(tpl_parser *p, bool with_condexpr)
{
    return with_condexpr ? parse_condexpr(p) : parse_or(p);
}

static bool tuple_end(const tpl_parser *p, const char *extra_end)
{
    const tpl_tok *t = tp_cur(p);
    if (t->kind == TK_VAR_END || t->kind == TK_BLOCK_END || tp_is_op(t, OP_RPAREN))
        return true;
    return extra_end && tp_is_name(t, extra_end);
}

tpl_node *tp_tuple(tpl_parser *p, bool simplified, bool with_condexpr, const char *extra_end,
                             bool explicit_parens)
{
    int line = tp_cur(p)->line;
    tpl_node *head = NULL, *tail = NULL;
    bool is_tuple = false;
    for (;;) {
        if (head && !tp_expect_op(p, OP_COMMA))
            return NULL;
        if (tuple_end(p, extra_end))
            break;
        tpl_node *e = simplified ? tp_primary(p) : tp_expression(p, with_condexpr);
        if (!e)
            return NULL;
        tp_append(&head, &tail, e);
        if (!tp_is_op(tp_cur(p), OP_COMMA))
            break;
        is_tuple = true;
        line = tp_cur(p)->line;
    }
    if (!is_tuple) {
        if (head)
            return head;
        if (!explicit_parens)
            return TP_FAIL(p, tp_cur(p), "Expected an expression, got '%s'", tp_describe(tp_cur(p)));
    }
    tpl_node *n = tp_node(p, N_TUPLE, line);
    n->args = head;
    return tp_seal(p, n);
}
