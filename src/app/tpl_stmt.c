/*
 * tpl_stmt.c — the template parser's statements: template text, {{ }}
 * and every {% tag %} (if, for, set, block, extends, include, import,
 * from, macro, call, filter, with, autoescape, print), with Jinja's
 * messages for unknown tags and unclosed blocks and its line numbers.
 * Expressions are tpl_parse.c's.
 */
#include "app/tpl_ast.h"

#include <stdio.h>
#include <string.h>

static tpl_node *parse_body(tpl_parser *p, const char *const *ends);

static bool block_end(tpl_parser *p) { return tp_expect_kind(p, TK_BLOCK_END, "end of statement block"); }

/* "'endfor' or 'else'" */
static void ends_text(const char *const *ends, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = 0;
    for (int k = 0; ends[k] && n < cap; k++)
        n += (size_t)snprintf(buf + n, cap - n, "%s'%s'", k ? " or " : "", ends[k]);
}

/* Jinja's message for an unknown tag (name) or the end of the template. */
static void *fail_unclosed(tpl_parser *p, const char *name, const tpl_tok *at)
{
    char msg[600], looking[200];
    size_t n = (size_t)snprintf(msg, sizeof msg, name ? "Encountered unknown tag '%s'." : "Unexpected end of template.", name);
    if (p->nends) {
        ends_text(p->ends[p->nends - 1], looking, sizeof looking);
        bool expected = false;
        for (int k = 0; name && k < p->nends; k++)
            for (int j = 0; p->ends[k][j]; j++)
                expected |= !strcmp(p->ends[k][j], name);
        if (expected)
            n += (size_t)snprintf(msg + n, sizeof msg - n,
                                  " You probably made a nesting mistake. Jinja is expecting this tag,"
                                  " but currently looking for %s.", looking);
        else
            n += (size_t)snprintf(msg + n, sizeof msg - n, " Jinja was looking for the following tags: %s.",
                                  looking);
    }
    if (p->ntags && n < sizeof msg)
        snprintf(msg + n, sizeof msg - n, " The innermost block that needs to be closed is '%s'.",
                 p->tags[p->ntags - 1]);
    return tp_fail_at(p, at->line, at->col, "%s", msg);
}

/* `%}` then the body up to one of ends (left as the current token). */
static tpl_node *statements(tpl_parser *p, const char *const *ends, bool drop_needle)
{
    if (tp_is_op(tp_cur(p), OP_COLON))
        tp_next(p);
    if (!block_end(p))
        return NULL;
    tpl_node *body = parse_body(p, ends);
    if (p->failed)
        return NULL;
    if (tp_cur(p)->kind == TK_EOF) {
        p->ends[p->nends++] = ends;
        fail_unclosed(p, NULL, tp_cur(p));
        p->nends--;
        return NULL;
    }
    if (drop_needle)
        tp_next(p);
    return body;
}

static const char *kind_name(const tpl_node *n)
{
    switch (n->kind) {
    case N_CONST: return "const";
    case N_GETATTR: return "getattr";
    case N_GETITEM: return "getitem";
    case N_CALL: return "call";
    case N_FILTER: return "filter";
    case N_LIST: return "list";
    case N_DICT: return "dict";
    default: return "expression";
    }
}

static bool assignable(tpl_parser *p, const tpl_node *t, int depth)
{
    if (t->kind == N_NAME)
        return true;
    if (t->kind == N_TUPLE && depth < 8) {
        for (const tpl_node *x = t->args; x; x = x->next)
            if (!assignable(p, x, depth + 1))
                return false;
        return true;
    }
    tp_fail_at(p, t->line, 1, "can't assign to '%s'", kind_name(t));
    return false;
}

static tpl_node *name_target(tpl_parser *p)
{
    const tpl_tok *t = tp_cur(p);
    if (!tp_expect_kind(p, TK_NAME, "name"))
        return NULL;
    tpl_node *n = tp_node(p, N_NAME, t->line);
    n->name = t->s;
    return tp_seal(p, n);
}

/* A name, a tuple of names, or (with_namespace) ns.attr. */
static tpl_node *assign_target(tpl_parser *p, const char *extra_end, bool with_namespace)
{
    if (with_namespace && tp_cur(p)->kind == TK_NAME && tp_is_op(tp_peek(p), OP_DOT)) {
        tpl_node *ns = name_target(p);
        tp_next(p);
        const tpl_tok *a = tp_cur(p);
        if (!tp_expect_kind(p, TK_NAME, "name"))
            return NULL;
        tpl_node *g = tp_node(p, N_GETATTR, a->line);
        g->a = ns;
        g->name = a->s;
        return tp_seal(p, g);
    }
    tpl_node *t = tp_tuple(p, true, true, extra_end, false);
    if (!t || !assignable(p, t, 0))
        return NULL;
    return t;
}

/* with/without context */
static void import_context(tpl_parser *p, tpl_node *n, bool dflt)
{
    const tpl_tok *t = tp_cur(p);
    if ((tp_is_name(t, "with") || tp_is_name(t, "without")) && tp_is_name(tp_peek(p), "context")) {
        dflt = tp_is_name(t, "with");
        tp_next(p);
        tp_next(p);
    }
    if (dflt)
        n->flags |= NF_WITH_CONTEXT;
}

/* (a, b=1): parameters as N_NAME nodes, a default in ->a. */
static bool signature(tpl_parser *p, tpl_node *n)
{
    if (!tp_expect_op(p, OP_LPAREN))
        return false;
    tpl_node *tail = NULL;
    bool defaults = false;
    while (!p->failed && !tp_is_op(tp_cur(p), OP_RPAREN)) {
        if (n->args && !tp_expect_op(p, OP_COMMA))
            return false;
        tpl_node *arg = name_target(p);
        if (!arg)
            return false;
        if (tp_is_op(tp_cur(p), OP_ASSIGN)) {
            tp_next(p);
            arg->a = tp_expression(p, true);
            defaults = true;
        } else if (defaults) {
            TP_FAIL(p, tp_cur(p), "non-default argument follows default argument");
            return false;
        }
        tp_append(&n->args, &tail, arg);
    }
    return !p->failed && tp_expect_op(p, OP_RPAREN);
}

static void add_block(tpl_parser *p, tpl_node *b)
{
    tpl_blockdef **at = &p->tpl->blocks;
    for (; *at; at = &(*at)->next)
        if ((*at)->name == b->name && !p->late_block) {
            /* the compiler's check: before unknown filters */
            p->late = p->late_block = true;
            p->late_line = b->line;
            p->late_col = 1;
            snprintf(p->late_msg, sizeof p->late_msg, "block '%s' defined twice", b->name);
        }
    tpl_blockdef *d = tpl_env_alloc(p->env, sizeof *d);
    d->name = b->name;
    d->node = b;
    d->next = NULL;
    *at = d;
}

static tpl_node *parse_if(tpl_parser *p, int line)
{
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    static const char *const end_if[] = {"endif", NULL};
    bool soft = p->soft;
    p->soft = true; /* unknown filters here fail when run (Jinja 3) */
    tpl_node *top = tp_node(p, S_IF, line), *n = top;
    for (;;) {
        n->a = tp_tuple(p, false, false, NULL, false);
        n->body = statements(p, ends, false);
        if (p->failed)
            break;
        const tpl_tok *t = tp_next(p);
        if (tp_is_name(t, "elif")) {
            tpl_node *e = tp_node(p, S_IF, tp_cur(p)->line);
            n->orelse = e;
            n = e;
            continue;
        }
        if (tp_is_name(t, "else"))
            n->orelse = statements(p, end_if, true);
        break;
    }
    p->soft = soft;
    return p->failed ? NULL : top;
}

static tpl_node *parse_for(tpl_parser *p, int line)
{
    static const char *const ends[] = {"endfor", "else", NULL};
    static const char *const end_for[] = {"endfor", NULL};
    tpl_node *n = tp_node(p, S_FOR, line);
    n->target = assign_target(p, "in", false);
    if (!n->target || !tp_expect_name(p, "in"))
        return NULL;
    n->a = tp_tuple(p, false, false, "recursive", false);
    bool soft = p->soft;
    p->soft = false;
    if (n->a && tp_is_name(tp_cur(p), "if")) {
        tp_next(p);
        n->b = tp_expression(p, true);
    }
    if (tp_is_name(tp_cur(p), "recursive")) {
        tp_next(p);
        n->flags |= NF_RECURSIVE;
    }
    if (!p->failed)
        n->body = statements(p, ends, false);
    if (!p->failed && tp_is_name(tp_next(p), "else"))
        n->orelse = statements(p, end_for, true);
    p->soft = soft;
    return p->failed ? NULL : n;
}

static tpl_node *parse_set(tpl_parser *p, int line)
{
    static const char *const ends[] = {"endset", NULL};
    tpl_node *target = assign_target(p, NULL, true);
    if (!target)
        return NULL;
    if (tp_is_op(tp_cur(p), OP_ASSIGN)) {
        tp_next(p);
        tpl_node *n = tp_node(p, S_SET, line);
        n->target = target;
        n->a = tp_tuple(p, false, true, NULL, false);
        return p->failed ? NULL : n;
    }
    if (target->kind != N_NAME && target->kind != N_GETATTR)
        return TP_FAIL(p, tp_cur(p), "expected token '=', got '%s'", tp_describe(tp_cur(p)));
    tpl_node *n = tp_node(p, S_SETBLOCK, line);
    n->target = target;
    bool soft = p->soft;
    p->soft = false;
    if (tp_is_op(tp_cur(p), OP_PIPE)) {
        tpl_node *ph = tp_node(p, N_CONST, line);
        ph->flags = NF_PLACEHOLDER;
        n->b = tp_filters(p, tp_seal(p, ph), false);
    }
    if (!p->failed)
        n->body = statements(p, ends, true);
    p->soft = soft;
    return p->failed ? NULL : n;
}

static tpl_node *parse_block(tpl_parser *p, int line)
{
    static const char *const ends[] = {"endblock", NULL};
    tpl_node *n = tp_node(p, S_BLOCK, line);
    const tpl_tok *t = tp_cur(p);
    if (!tp_expect_kind(p, TK_NAME, "name"))
        return NULL;
    n->name = t->s;
    for (;;) {
        if (tp_is_name(tp_cur(p), "scoped"))
            n->flags |= NF_SCOPED;
        else if (tp_is_name(tp_cur(p), "required"))
            n->flags |= NF_REQUIRED;
        else
            break;
        tp_next(p);
    }
    if (tp_is_op(tp_cur(p), OP_SUB))
        return TP_FAIL(p, tp_cur(p), "Block names in Jinja have to be valid Python identifiers and may not"
                                     " contain hyphens, use an underscore instead.");
    bool soft = p->soft;
    p->soft = false;
    n->body = statements(p, ends, true);
    p->soft = soft;
    if (p->failed)
        return NULL;
    if (n->flags & NF_REQUIRED)
        for (const tpl_node *s = n->body; s; s = s->next)
            if (s->kind != S_DATA || strspn(s->name, " \t\r\n\f\v") < s->len)
                return tp_fail_at(p, s->line, 1, "Required blocks can only contain comments or whitespace");
    if (tp_cur(p)->kind == TK_NAME && tp_cur(p)->s == n->name)
        tp_next(p);
    add_block(p, n);
    return n;
}

static tpl_node *parse_include(tpl_parser *p, int line)
{
    tpl_node *n = tp_node(p, S_INCLUDE, line);
    n->a = tp_expression(p, true);
    if (tp_is_name(tp_cur(p), "ignore") && tp_is_name(tp_peek(p), "missing")) {
        n->flags |= NF_IGNORE_MISSING;
        tp_next(p);
        tp_next(p);
    }
    import_context(p, n, true);
    return p->failed ? NULL : n;
}

static tpl_node *parse_import(tpl_parser *p, int line)
{
    tpl_node *n = tp_node(p, S_IMPORT, line);
    n->a = tp_expression(p, true);
    if (p->failed || !tp_expect_name(p, "as"))
        return NULL;
    tpl_node *t = name_target(p);
    if (!t)
        return NULL;
    n->alias = t->name;
    import_context(p, n, false);
    return n;
}

static bool from_context(tpl_parser *p, tpl_node *n, bool *seen)
{
    const tpl_tok *t = tp_cur(p);
    if ((tp_is_name(t, "with") || tp_is_name(t, "without")) && tp_is_name(tp_peek(p), "context")) {
        if (tp_is_name(t, "with"))
            n->flags |= NF_WITH_CONTEXT;
        tp_next(p);
        tp_next(p);
        *seen = true;
        return true;
    }
    return false;
}

static tpl_node *parse_from(tpl_parser *p, int line)
{
    tpl_node *n = tp_node(p, S_FROM, line), *tail = NULL;
    n->a = tp_expression(p, true);
    if (p->failed || !tp_expect_name(p, "import"))
        return NULL;
    bool ctx = false;
    for (;;) {
        if (n->args && !tp_expect_op(p, OP_COMMA))
            return NULL;
        if (tp_cur(p)->kind != TK_NAME) {
            tp_expect_kind(p, TK_NAME, "name");
            return NULL;
        }
        if (from_context(p, n, &ctx))
            break;
        tpl_node *name = name_target(p);
        if (!name)
            return NULL;
        if (name->name[0] == '_')
            return tp_fail_at(p, name->line, 1, "names starting with an underline can not be imported");
        name->alias = name->name;
        if (tp_is_name(tp_cur(p), "as")) {
            tp_next(p);
            tpl_node *alias = name_target(p);
            if (!alias)
                return NULL;
            name->alias = alias->name;
        }
        tp_append(&n->args, &tail, name);
        if (from_context(p, n, &ctx) || !tp_is_op(tp_cur(p), OP_COMMA))
            break;
    }
    return p->failed ? NULL : n;
}

static tpl_node *parse_macro(tpl_parser *p, int line)
{
    static const char *const ends[] = {"endmacro", NULL};
    tpl_node *n = tp_node(p, S_MACRO, line);
    tpl_node *name = name_target(p);
    if (!name || !signature(p, n))
        return NULL;
    n->name = name->name;
    bool soft = p->soft;
    unsigned uses = p->uses;
    p->soft = false;
    p->uses = 0;
    n->body = statements(p, ends, true);
    n->flags |= (uint16_t)p->uses;
    p->soft = soft;
    p->uses = uses;
    return p->failed ? NULL : n;
}

static tpl_node *parse_callblock(tpl_parser *p, int line)
{
    static const char *const ends[] = {"endcall", NULL};
    tpl_node *n = tp_node(p, S_CALLBLOCK, line);
    if (tp_is_op(tp_cur(p), OP_LPAREN) && !signature(p, n))
        return NULL;
    n->a = tp_expression(p, true);
    if (p->failed)
        return NULL;
    if (n->a->kind != N_CALL)
        return tp_fail_at(p, line, 1, "expected call");
    bool soft = p->soft;
    unsigned uses = p->uses;
    p->soft = false;
    p->uses = 0;
    n->body = statements(p, ends, true);
    n->flags |= (uint16_t)p->uses;
    p->soft = soft;
    p->uses = uses;
    return p->failed ? NULL : n;
}

static tpl_node *parse_filterblock(tpl_parser *p, int line)
{
    static const char *const ends[] = {"endfilter", NULL};
    tpl_node *n = tp_node(p, S_FILTERBLOCK, line);
    tpl_node *ph = tp_node(p, N_CONST, line);
    ph->flags = NF_PLACEHOLDER;
    bool soft = p->soft;
    p->soft = false;
    n->b = tp_filters(p, tp_seal(p, ph), true);
    if (!p->failed)
        n->body = statements(p, ends, true);
    p->soft = soft;
    return p->failed ? NULL : n;
}

static tpl_node *parse_with(tpl_parser *p, int line)
{
    static const char *const ends[] = {"endwith", NULL};
    tpl_node *n = tp_node(p, S_WITH, line), *tail = NULL;
    while (!p->failed && tp_cur(p)->kind != TK_BLOCK_END) {
        if (n->args && !tp_expect_op(p, OP_COMMA))
            return NULL;
        tpl_node *set = tp_node(p, S_SET, tp_cur(p)->line);
        set->target = assign_target(p, NULL, false);
        if (!set->target || !tp_expect_op(p, OP_ASSIGN))
            return NULL;
        set->a = tp_expression(p, true);
        tp_append(&n->args, &tail, set);
    }
    bool soft = p->soft;
    p->soft = false;
    if (!p->failed)
        n->body = statements(p, ends, true);
    p->soft = soft;
    return p->failed ? NULL : n;
}

static tpl_node *parse_autoescape(tpl_parser *p, int line)
{
    static const char *const ends[] = {"endautoescape", NULL};
    tpl_node *n = tp_node(p, S_AUTOESCAPE, line);
    n->a = tp_expression(p, true);
    if (!p->failed)
        n->body = statements(p, ends, true);
    return p->failed ? NULL : n;
}

static tpl_node *parse_print(tpl_parser *p, int line)
{
    /* several expressions: one output statement each */
    tpl_node *head = NULL, *tail = NULL;
    while (!p->failed && tp_cur(p)->kind != TK_BLOCK_END) {
        if (head && !tp_expect_op(p, OP_COMMA))
            return NULL;
        tpl_node *o = tp_node(p, S_OUTPUT, line);
        o->a = tp_expression(p, true);
        tp_append(&head, &tail, o);
    }
    if (!head) {
        head = tp_node(p, S_DATA, line);
        head->name = "";
    }
    return p->failed ? NULL : head;
}

static tpl_node *parse_statement(tpl_parser *p)
{
    const tpl_tok *t = tp_cur(p);
    if (t->kind != TK_NAME)
        return TP_FAIL(p, t, "tag name expected");
    static const struct {
        const char *name;
        tpl_node *(*parse)(tpl_parser *, int);
    } tags[] = {
        {"if", parse_if},         {"for", parse_for},       {"set", parse_set},
        {"block", parse_block},   {"include", parse_include}, {"import", parse_import},
        {"from", parse_from},     {"macro", parse_macro},   {"call", parse_callblock},
        {"filter", parse_filterblock}, {"with", parse_with}, {"autoescape", parse_autoescape},
        {"print", parse_print},   {"extends", NULL},
    };
    for (size_t k = 0; k < sizeof tags / sizeof tags[0]; k++) {
        if (strcmp(t->s, tags[k].name) != 0)
            continue;
        if (p->ntags >= TPL_MAX_NEST)
            return TP_FAIL(p, t, "blocks nested too deeply");
        p->tags[p->ntags++] = t->s;
        tp_next(p);
        tpl_node *n;
        if (tags[k].parse) {
            n = tags[k].parse(p, t->line);
        } else {
            n = tp_node(p, S_EXTENDS, t->line);
            n->a = tp_expression(p, true);
            if (p->failed)
                n = NULL;
        }
        p->ntags--;
        return n;
    }
    return fail_unclosed(p, t->s, t);
}

static tpl_node *parse_body(tpl_parser *p, const char *const *ends)
{
    if (p->nends >= TPL_MAX_NEST)
        return TP_FAIL(p, tp_cur(p), "blocks nested too deeply");
    if (ends)
        p->ends[p->nends++] = ends;
    tpl_node *head = NULL, *tail = NULL;
    while (!p->failed) {
        const tpl_tok *t = tp_cur(p);
        if (t->kind == TK_EOF)
            break;
        if (t->kind == TK_DATA) {
            tpl_node *d = tp_node(p, S_DATA, t->line);
            d->name = t->s;
            d->len = t->len;
            tp_append(&head, &tail, d);
            tp_next(p);
        } else if (t->kind == TK_VAR_BEGIN) {
            tp_next(p);
            tpl_node *o = tp_node(p, S_OUTPUT, t->line);
            o->a = tp_tuple(p, false, true, NULL, false);
            if (!o->a || !tp_expect_kind(p, TK_VAR_END, "end of print statement"))
                break;
            tp_append(&head, &tail, o);
        } else if (t->kind == TK_BLOCK_BEGIN) {
            tp_next(p);
            const tpl_tok *name = tp_cur(p);
            bool end = false;
            for (int k = 0; ends && ends[k] && !end; k++)
                end = tp_is_name(name, ends[k]);
            if (end)
                break;
            tpl_node *s = parse_statement(p);
            if (!s || !block_end(p))
                break;
            tp_append(&head, &tail, s);
            while (tail->next) /* print makes several */
                tail = tail->next;
        } else {
            TP_FAIL(p, t, "unexpected '%s'", tp_describe(t));
        }
    }
    if (ends)
        p->nends--;
    return head;
}

int tpl_parse(tpl_env *env, tpl_template *t, const tpl_toks *toks, bool lex_failed, int *line, int *col,
              char *msg, size_t cap)
{
    char pmsg[700];
    tpl_parser p = {.env = env, .tpl = t, .t = toks->v, .n = toks->n, .msg = lex_failed ? pmsg : msg,
                    .cap = lex_failed ? sizeof pmsg : cap};
    t->body = parse_body(&p, NULL);
    if (lex_failed) {
        if (!p.failed || p.fail_index + 1 >= toks->n)
            return 1; /* the parser read up to the lexer's error */
        snprintf(msg, cap, "%s", pmsg);
        *line = p.line;
        *col = p.col;
        return -1;
    }
    if (!p.failed && p.late)
        tp_fail_at(&p, p.late_line, p.late_col, "%s", p.late_msg);
    if (p.failed) {
        *line = p.line;
        *col = p.col;
        return -1;
    }
    return 0;
}
