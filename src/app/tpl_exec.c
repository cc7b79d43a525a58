/*
 * tpl_exec.c — running statements: output, if, for (the loop object,
 * filtered and recursive loops), set (names, tuples, namespace
 * attributes, block set), macros and call blocks, filter and autoescape
 * blocks, with, and templates: inheritance (extends, blocks, super(),
 * self), include, import and from-import. Jinja's scoping: a loop
 * iteration, a macro call, a block and an included template each get
 * their own scope; a template's top level is shared by its whole
 * inheritance chain.
 */
#include "app/tpl_ast.h"

#include <stdio.h>
#include <string.h>

#define HELPER static __attribute__((noinline)) int

static tv opaque(const tpl_opaque_type *type, void *ptr)
{
    tv v = {.kind = TV_OPAQUE};
    v.op.type = type;
    v.op.ptr = ptr;
    return v;
}

/* Render body into a fresh buffer; the result is Markup when autoescaping. */
static int capture(tpl_rt *rt, tpl_ctx *c, const tpl_node *body, tv *out)
{
    tpl_buf b;
    tpl_buf_init(&b, rt);
    if (tpl_render_list(rt, c, body, &b))
        return -1;
    const char *s = tpl_buf_cstr(&b);
    *out = tv_strn(s, b.len, rt->autoescape);
    return rt->failed ? -1 : 0;
}

/* ---- assignment --------------------------------------------------------------- */

static int assign(tpl_rt *rt, tpl_ctx *c, tpl_scope *scope, const tpl_node *target, tv v)
{
    if (target->kind == N_NAME) {
        tpl_scope_set(rt, scope, target->name, v);
        return 0;
    }
    if (target->kind == N_GETATTR) { /* ns.attr */
        tv ns;
        if (tpl_eval(rt, c, target->a, &ns))
            return -1;
        return tpl_ns_assign(rt, ns, target->name, v);
    }
    tv *items;
    size_t n;
    if (tv_iterate(rt, v, &items, &n))
        return -1;
    size_t want = 0;
    for (const tpl_node *t = target->args; t; t = t->next)
        want++;
    if (n < want)
        return tpl_error(rt, "not enough values to unpack (expected %zu, got %zu)", want, n);
    if (n > want)
        return tpl_error(rt, "too many values to unpack (expected %zu)", want);
    size_t k = 0;
    for (const tpl_node *t = target->args; t; t = t->next)
        if (assign(rt, c, scope, t, items[k++]))
            return -1;
    return 0;
}

/* ---- macros ----------------------------------------------------------------- */

typedef struct tpl_macro {
    const tpl_node *node; /* S_MACRO or S_CALLBLOCK: parameters in args, body */
    tpl_scope *closure;
    tpl_tstate *ts;
    const tpl_template *tpl;
    bool autoescape;
} tpl_macro;

/* The call's arguments into the macro's scope, as Jinja's Macro does:
 * positional, then keywords, then defaults (evaluated now, in the macro's
 * scope); extra ones go to varargs/kwargs/caller when the body uses them. */
HELPER bind_args(tpl_rt *rt, const tpl_macro *m, tpl_ctx *c, const tv *args, size_t nargs,
                 const tpl_kwarg *kw, size_t nkw)
{
    const tpl_env *env = rt->env;
    tpl_scope *scope = c->scope;
    const char *mname = m->node->name ? m->node->name : "caller";
    size_t i = 0;
    bool *used = nkw ? tpl_alloc(rt, nkw) : NULL;
    if (nkw)
        memset(used, 0, nkw);
    for (const tpl_node *p = m->node->args; p; p = p->next, i++) {
        tv v;
        bool have = false;
        if (i < nargs) {
            v = args[i];
            have = true;
        }
        for (size_t k = 0; k < nkw; k++)
            if (kw[k].name == p->name || strcmp(kw[k].name, p->name) == 0) {
                if (have)
                    return tpl_error(rt, "macro '%s' got multiple values for argument '%s'", mname, p->name);
                v = kw[k].value;
                used[k] = have = true;
            }
        if (!have && p->a) {
            if (tpl_eval(rt, c, p->a, &v))
                return -1;
        } else if (!have) {
            v = tv_undef(p->name);
        }
        tpl_scope_set(rt, scope, p->name, v);
    }
    uint16_t fl = m->node->flags;
    size_t nparams = i;
    json_t *va = NULL, *kwa = NULL;
    if (nargs > nparams) {
        if (!(fl & NF_VARARGS))
            return tpl_error(rt, "macro '%s' takes not more than %zu argument(s)", mname, nparams);
        va = tpl_keep(rt, json_array());
        for (; i < nargs; i++)
            json_array_append(va, tv_to_json(rt, args[i]));
    }
    bool have_caller = false;
    for (size_t k = 0; k < nkw; k++) {
        if (used[k])
            continue;
        bool is_caller = kw[k].name == env->n_caller || !strcmp(kw[k].name, "caller");
        if (is_caller && (fl & NF_CALLER)) {
            tpl_scope_set(rt, scope, env->n_caller, kw[k].value);
            have_caller = true;
        } else if (fl & NF_KWARGS) {
            if (!kwa)
                kwa = tpl_keep(rt, json_object());
            json_object_set(kwa, kw[k].name, tv_to_json(rt, kw[k].value));
        } else if (is_caller) {
            return tpl_error(rt, "macro '%s' was invoked with two values for the special caller argument."
                                 " This is most likely a bug.", mname);
        } else {
            return tpl_error(rt, "macro '%s' takes no keyword argument '%s'", mname, kw[k].name);
        }
    }
    if (fl & NF_CALLER && !have_caller)
        tpl_scope_set(rt, scope, env->n_caller, tv_undef("caller"));
    if (fl & NF_VARARGS)
        tpl_scope_set(rt, scope, env->n_varargs, tv_from_json(va ? va : tpl_keep(rt, json_array())));
    if (fl & NF_KWARGS)
        tpl_scope_set(rt, scope, env->n_kwargs, tv_from_json(kwa ? kwa : tpl_keep(rt, json_object())));
    return rt->failed ? -1 : 0;
}

static int macro_call(tpl_rt *rt, void *ptr, const tv *args, size_t nargs, const tpl_kwarg *kw, size_t nkw,
                      tv *out)
{
    tpl_macro *m = ptr;
    if (tpl_rt_enter(rt))
        return -1;
    tpl_ctx c = {.scope = tpl_scope_new(rt, m->closure, NULL), .ts = m->ts, .tpl = m->tpl};
    const char *saved_name = rt->tname;
    bool saved_ae = rt->autoescape;
    int saved_line = rt->line;
    rt->tname = m->tpl->name;
    rt->autoescape = m->autoescape;
    int rc = bind_args(rt, m, &c, args, nargs, kw, nkw);
    if (!rc)
        rc = capture(rt, &c, m->node->body, out);
    /* Markup when the caller autoescapes (Jinja decides at the call) */
    if (!rc)
        out->safe = saved_ae;
    rt->tname = saved_name;
    rt->autoescape = saved_ae;
    rt->line = saved_line;
    tpl_rt_leave(rt);
    return rc;
}

static int macro_getattr(tpl_rt *rt, void *ptr, const char *name, tv *out)
{
    tpl_macro *m = ptr;
    if (!strcmp(name, "name") && m->node->name)
        *out = tv_strn(m->node->name, strlen(m->node->name), false);
    else
        *out = tv_undef(name);
    return 0;
}

static const tpl_opaque_type macro_type = {.name = "Macro", .getattr = macro_getattr, .call = macro_call};

static __attribute__((noinline)) tv make_macro(tpl_rt *rt, tpl_ctx *c, const tpl_node *n)
{
    tpl_macro *m = tpl_alloc(rt, sizeof *m);
    m->node = n;
    m->closure = c->scope;
    m->ts = c->ts;
    m->tpl = c->tpl;
    m->autoescape = rt->autoescape;
    return opaque(&macro_type, m);
}

/* ---- loops ----------------------------------------------------------------- */

typedef struct tpl_loop {
    tv *items;
    size_t n, i;
    int depth0;
    const tpl_node *node;
    tpl_ctx *outer;
    bool have_changed;
    tv last_changed;
} tpl_loop;

static int run_loop(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tv *items, size_t count, int depth0,
                    tpl_buf *out);

static int cycle_call(tpl_rt *rt, void *ptr, const tv *args, size_t nargs, const tpl_kwarg *kw, size_t nkw,
                      tv *out)
{
    tpl_loop *l = ptr;
    if (!nargs)
        return tpl_error(rt, "no items for cycling given");
    *out = args[l->i % nargs];
    return 0;
}

static int changed_call(tpl_rt *rt, void *ptr, const tv *args, size_t nargs, const tpl_kwarg *kw,
                        size_t nkw, tv *out)
{
    tpl_loop *l = ptr;
    json_t *now = tpl_keep(rt, json_array());
    for (size_t k = 0; k < nargs; k++)
        json_array_append(now, tv_to_json(rt, args[k]));
    tv v = tv_from_json(now), eq = tv_bool(false);
    if (l->have_changed && tv_binop(rt, TV_EQ, v, l->last_changed, &eq))
        return -1;
    l->have_changed = true;
    l->last_changed = v;
    *out = tv_bool(!tv_truthy(eq));
    return 0;
}

static const tpl_opaque_type cycle_type = {.name = "method", .call = cycle_call};
static const tpl_opaque_type changed_type = {.name = "method", .call = changed_call};

static int loop_getattr(tpl_rt *rt, void *ptr, const char *name, tv *out)
{
    tpl_loop *l = ptr;
    int64_t i = (int64_t)l->i, n = (int64_t)l->n;
    if (!strcmp(name, "index"))
        *out = tv_int(i + 1);
    else if (!strcmp(name, "index0"))
        *out = tv_int(i);
    else if (!strcmp(name, "revindex"))
        *out = tv_int(n - i);
    else if (!strcmp(name, "revindex0"))
        *out = tv_int(n - i - 1);
    else if (!strcmp(name, "first"))
        *out = tv_bool(i == 0);
    else if (!strcmp(name, "last"))
        *out = tv_bool(i == n - 1);
    else if (!strcmp(name, "length"))
        *out = tv_int(n);
    else if (!strcmp(name, "depth"))
        *out = tv_int(l->depth0 + 1);
    else if (!strcmp(name, "depth0"))
        *out = tv_int(l->depth0);
    else if (!strcmp(name, "previtem"))
        *out = i > 0 ? l->items[i - 1] : tv_undef("there is no previous item");
    else if (!strcmp(name, "nextitem"))
        *out = i + 1 < n ? l->items[i + 1] : tv_undef("there is no next item");
    else if (!strcmp(name, "cycle"))
        *out = opaque(&cycle_type, l);
    else if (!strcmp(name, "changed"))
        *out = opaque(&changed_type, l);
    else
        *out = tv_undef(name);
    return 0;
}

/* loop(items) in a recursive loop */
static int loop_call(tpl_rt *rt, void *ptr, const tv *args, size_t nargs, const tpl_kwarg *kw, size_t nkw,
                     tv *out)
{
    tpl_loop *l = ptr;
    if (!(l->node->flags & NF_RECURSIVE))
        return tpl_error(rt, "Tried to call non recursive loop.  Maybe you forgot the 'recursive' modifier.");
    if (nargs != 1)
        return tpl_error(rt, "loop() takes exactly one argument");
    tv *items;
    size_t n;
    if (tpl_rt_enter(rt))
        return -1;
    int rc = tv_iterate(rt, args[0], &items, &n);
    tpl_buf b;
    tpl_buf_init(&b, rt);
    if (!rc)
        rc = run_loop(rt, l->outer, l->node, items, n, l->depth0 + 1, &b);
    tpl_rt_leave(rt);
    if (rc)
        return -1;
    const char *s = tpl_buf_cstr(&b);
    *out = tv_strn(s, b.len, rt->autoescape);
    return 0;
}

static const tpl_opaque_type loop_type = {.name = "LoopContext", .getattr = loop_getattr, .call = loop_call};

static int run_loop(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tv *items, size_t count, int depth0,
                    tpl_buf *out)
{
    tpl_scope *scope = tpl_scope_new(rt, c->scope, NULL);
    tpl_ctx inner = *c;
    inner.scope = scope;
    if (n->b) { /* for x in xs if cond: the loop only sees what passes */
        size_t kept = 0;
        tv *passed = count ? tpl_alloc(rt, count * sizeof *passed) : NULL;
        for (size_t i = 0; i < count; i++) {
            tv ok;
            tpl_scope_init(scope, c->scope, NULL);
            if (tpl_rt_step(rt) || assign(rt, &inner, scope, n->target, items[i]) ||
                tpl_eval(rt, &inner, n->b, &ok))
                return -1;
            if (tv_truthy(ok))
                passed[kept++] = items[i];
        }
        items = passed;
        count = kept;
    }
    if (!count)
        return tpl_render_list(rt, c, n->orelse, out);
    tpl_loop *l = tpl_alloc(rt, sizeof *l);
    memset(l, 0, sizeof *l);
    l->items = items;
    l->n = count;
    l->depth0 = depth0;
    l->node = n;
    l->outer = c;
    tv loopv = opaque(&loop_type, l);
    for (size_t i = 0; i < count; i++) {
        l->i = i;
        tpl_scope_init(scope, c->scope, NULL); /* each iteration starts afresh */
        if (tpl_rt_step(rt) || assign(rt, &inner, scope, n->target, items[i]))
            return -1;
        tpl_scope_set(rt, scope, rt->env->n_loop, loopv);
        if (tpl_render_list(rt, &inner, n->body, out))
            return -1;
    }
    return 0;
}

HELPER exec_for(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tpl_buf *out)
{
    tv v, *items;
    size_t count;
    if (tpl_eval(rt, c, n->a, &v))
        return -1;
    rt->line = n->line;
    if (tv_iterate(rt, v, &items, &count))
        return -1;
    return run_loop(rt, c, n, items, count, 0, out);
}

/* ---- blocks and inheritance ------------------------------------------------------ */

static tpl_bchain *find_chain(tpl_tstate *ts, const char *name)
{
    for (tpl_bchain *b = ts->chains; b; b = b->next)
        if (b->name == name || strcmp(b->name, name) == 0)
            return b;
    return NULL;
}

static void add_blocks(tpl_rt *rt, tpl_tstate *ts, const tpl_template *t)
{
    for (const tpl_blockdef *d = t->blocks; d; d = d->next) {
        tpl_bchain *b = find_chain(ts, d->name);
        if (!b) {
            b = tpl_alloc(rt, sizeof *b);
            memset(b, 0, sizeof *b);
            b->name = d->name;
            b->next = ts->chains;
            ts->chains = b;
        }
        tpl_bitem *it = tpl_alloc(rt, sizeof *it);
        it->node = d->node;
        it->tpl = t;
        it->next = NULL;
        if (b->last)
            b->last->next = it;
        else
            b->first = it;
        b->last = it;
    }
}

typedef struct tpl_super {
    tpl_tstate *ts;
    tpl_bchain *chain;
    tpl_bitem *item; /* what super() renders; NULL: nothing left */
    tpl_scope *scope;
} tpl_super;

static int render_block_item(tpl_rt *rt, tpl_tstate *ts, tpl_scope *outer, tpl_bchain *chain,
                             tpl_bitem *item, tpl_buf *out);

static int super_call(tpl_rt *rt, void *ptr, const tv *args, size_t nargs, const tpl_kwarg *kw, size_t nkw,
                      tv *out)
{
    tpl_super *s = ptr;
    if (!s->item)
        return tpl_error(rt, "there is no parent block called '%s'.", s->chain->name);
    tpl_buf b;
    tpl_buf_init(&b, rt);
    if (render_block_item(rt, s->ts, s->scope, s->chain, s->item, &b))
        return -1;
    const char *str = tpl_buf_cstr(&b);
    *out = tv_strn(str, b.len, rt->autoescape);
    return 0;
}

static const tpl_opaque_type super_type = {.name = "function", .call = super_call};

static int render_block_item(tpl_rt *rt, tpl_tstate *ts, tpl_scope *outer, tpl_bchain *chain,
                             tpl_bitem *item, tpl_buf *out)
{
    const tpl_node *n = item->node;
    if ((n->flags & NF_REQUIRED) && item == chain->first)
        return tpl_error(rt, "Required block '%s' not found.", chain->name);
    if (tpl_rt_enter(rt))
        return -1;
    /* `outer` is given when the {% block %} being run is scoped */
    tpl_scope *scope = tpl_scope_new(rt, outer ? outer : ts->root, NULL);
    tpl_super *sup = tpl_alloc(rt, sizeof *sup);
    sup->ts = ts;
    sup->chain = chain;
    sup->item = item->next;
    sup->scope = outer;
    tpl_scope_set(rt, scope, rt->env->n_super, opaque(&super_type, sup));
    tpl_ctx c = {.scope = scope, .ts = ts, .tpl = item->tpl};
    const char *saved_name = rt->tname;
    bool saved_ae = rt->autoescape;
    rt->tname = item->tpl->name;
    rt->autoescape = item->tpl->autoescape;
    int rc = tpl_render_list(rt, &c, n->body, out);
    rt->tname = saved_name;
    rt->autoescape = saved_ae;
    tpl_rt_leave(rt);
    return rc;
}

/* self.name(): a block of the template being rendered */
typedef struct tpl_blockref {
    tpl_tstate *ts;
    tpl_bchain *chain;
} tpl_blockref;

static int blockref_call(tpl_rt *rt, void *ptr, const tv *args, size_t nargs, const tpl_kwarg *kw,
                         size_t nkw, tv *out)
{
    tpl_blockref *r = ptr;
    tpl_buf b;
    tpl_buf_init(&b, rt);
    if (render_block_item(rt, r->ts, NULL, r->chain, r->chain->first, &b))
        return -1;
    const char *s = tpl_buf_cstr(&b);
    *out = tv_strn(s, b.len, rt->autoescape);
    return 0;
}

static const tpl_opaque_type blockref_type = {.name = "BlockReference", .call = blockref_call};

static int self_getattr(tpl_rt *rt, void *ptr, const char *name, tv *out)
{
    tpl_tstate *ts = ptr;
    tpl_bchain *b = find_chain(ts, name);
    if (!b)
        return tpl_error(rt, "'TemplateReference' object has no attribute '%s'", name);
    tpl_blockref *r = tpl_alloc(rt, sizeof *r);
    r->ts = ts;
    r->chain = b;
    *out = opaque(&blockref_type, r);
    return 0;
}

static const tpl_opaque_type self_type = {.name = "TemplateReference", .getattr = self_getattr};

tv tpl_self_object(tpl_rt *rt, tpl_tstate *ts) { return opaque(&self_type, ts); }

int tpl_render_template(tpl_rt *rt, const tpl_template *t, tpl_scope *scope, tpl_buf *out,
                        tpl_tstate **ts_out)
{
    if (tpl_rt_enter(rt))
        return -1;
    tpl_tstate *ts = tpl_alloc(rt, sizeof *ts);
    memset(ts, 0, sizeof *ts);
    ts->tpl = t;
    ts->root = scope;
    add_blocks(rt, ts, t);
    tpl_ctx c = {.scope = scope, .ts = ts, .tpl = t, .toplevel = true};
    const char *saved_name = rt->tname;
    bool saved_ae = rt->autoescape;
    rt->tname = t->name;
    rt->autoescape = t->autoescape;
    int rc = tpl_render_list(rt, &c, t->body, out);
    int levels = 0;
    while (rc == 0 && ts->parent) {
        /* the child's top level ran; now its parent, with all blocks known */
        const tpl_template *p = ts->parent;
        ts->parent = NULL;
        if (++levels > TPL_MAX_DEPTH) {
            rc = tpl_error(rt, "maximum recursion depth exceeded (extends)");
            break;
        }
        add_blocks(rt, ts, p);
        ts->tpl = p;
        c.tpl = p;
        rt->tname = p->name;
        rt->autoescape = p->autoescape;
        rc = tpl_render_list(rt, &c, p->body, out);
    }
    rt->tname = saved_name;
    rt->autoescape = saved_ae;
    tpl_rt_leave(rt);
    if (ts_out)
        *ts_out = ts;
    return rc;
}

/* ---- include, import -------------------------------------------------------------- */

/* The template a name expression names (a list: the first that exists). */
static int find_template(tpl_rt *rt, tpl_ctx *c, const tpl_node *expr, bool missing_ok,
                         const tpl_template **out)
{
    tv v;
    *out = NULL;
    if (tpl_eval(rt, c, expr, &v))
        return -1;
    rt->line = expr->line;
    tv *names = &v;
    size_t n = 1;
    if ((v.kind == TV_ARRAY) && tv_iterate(rt, v, &names, &n))
        return -1;
    for (size_t k = 0; k < n; k++) {
        if (names[k].kind != TV_STR)
            return tpl_error(rt, "a template name must be a string, not '%s'", tpl_type_name(names[k]));
        *out = tpl_env_find(rt->env, names[k].str.s);
        if (*out)
            return 0;
    }
    if (missing_ok)
        return 0;
    if (v.kind == TV_ARRAY)
        return tpl_error(rt, "none of the templates given were found");
    return tpl_error(rt, "template '%s' not found", v.str.s);
}

typedef struct tpl_module {
    tpl_scope *scope;
    const tpl_template *tpl;
} tpl_module;

static int module_getattr(tpl_rt *rt, void *ptr, const char *name, tv *out)
{
    tpl_module *m = ptr;
    if (name[0] != '_')
        for (uint32_t k = 0; k < m->scope->n; k++)
            if (strcmp(m->scope->vars[k].name, name) == 0) {
                *out = m->scope->vars[k].value;
                return 0;
            }
    *out = tv_undef(name);
    return 0;
}

static const tpl_opaque_type module_type = {.name = "TemplateModule", .getattr = module_getattr};

static int import_module(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tpl_module **out)
{
    const tpl_template *t;
    if (find_template(rt, c, n->a, false, &t))
        return -1;
    tpl_module *m = tpl_alloc(rt, sizeof *m);
    m->tpl = t;
    m->scope = tpl_scope_new(rt, (n->flags & NF_WITH_CONTEXT) ? c->scope : NULL, NULL);
    tpl_buf discard;
    tpl_buf_init(&discard, rt);
    if (tpl_render_template(rt, t, m->scope, &discard, NULL))
        return -1;
    *out = m;
    return 0;
}

/* ---- statements ------------------------------------------------------------------- */

HELPER exec_call_block(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tpl_buf *out)
{
    tv caller = make_macro(rt, c, n), v;
    if (tpl_eval_call(rt, c, n->a, &caller, &v))
        return -1;
    return tv_output(rt, out, v);
}

HELPER exec_filter_block(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tpl_buf *out)
{
    tv body, v;
    if (capture(rt, c, n->body, &body))
        return -1;
    tpl_ctx fc = *c;
    fc.placeholder = &body;
    if (tpl_eval(rt, &fc, n->b, &v))
        return -1;
    return tv_output(rt, out, v);
}

HELPER exec_set_block(tpl_rt *rt, tpl_ctx *c, const tpl_node *n)
{
    tv body, v;
    if (capture(rt, c, n->body, &body))
        return -1;
    v = body;
    if (n->b) {
        tpl_ctx fc = *c;
        fc.placeholder = &body;
        if (tpl_eval(rt, &fc, n->b, &v))
            return -1;
    }
    return assign(rt, c, c->scope, n->target, v);
}

HELPER exec_with(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tpl_buf *out)
{
    tpl_scope *scope = tpl_scope_new(rt, c->scope, NULL);
    tpl_ctx inner = *c;
    inner.scope = scope;
    for (const tpl_node *s = n->args; s; s = s->next) {
        tv v;
        if (tpl_eval(rt, c, s->a, &v) || assign(rt, &inner, scope, s->target, v))
            return -1;
    }
    return tpl_render_list(rt, &inner, n->body, out);
}

HELPER exec_output(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tpl_buf *out)
{
    tv v;
    if (tpl_eval(rt, c, n->a, &v))
        return -1;
    rt->line = n->line;
    return tv_output(rt, out, v);
}

HELPER exec_if(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tpl_buf *out)
{
    tv v;
    if (tpl_eval(rt, c, n->a, &v))
        return -1;
    return tpl_render_list(rt, c, tv_truthy(v) ? n->body : n->orelse, out);
}

HELPER exec_set(tpl_rt *rt, tpl_ctx *c, const tpl_node *n)
{
    tv v;
    if (tpl_eval(rt, c, n->a, &v))
        return -1;
    return assign(rt, c, c->scope, n->target, v);
}

HELPER exec_block(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tpl_buf *out)
{
    tpl_bchain *b = find_chain(c->ts, n->name);
    if (!b)
        return tpl_error(rt, "block '%s' not found", n->name);
    return render_block_item(rt, c->ts, (n->flags & NF_SCOPED) ? c->scope : NULL, b, b->first, out);
}

HELPER exec_extends(tpl_rt *rt, tpl_ctx *c, const tpl_node *n)
{
    const tpl_template *t;
    if (c->ts->parent)
        return tpl_error(rt, "extended multiple times");
    if (find_template(rt, c, n->a, false, &t))
        return -1;
    c->ts->parent = t;
    return 0;
}

HELPER exec_include(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tpl_buf *out)
{
    const tpl_template *t;
    if (find_template(rt, c, n->a, n->flags & NF_IGNORE_MISSING, &t))
        return -1;
    if (!t)
        return 0;
    tpl_scope *scope = tpl_scope_new(rt, (n->flags & NF_WITH_CONTEXT) ? c->scope : NULL, NULL);
    tpl_scope_set(rt, scope, rt->env->n_loop, tv_undef("loop")); /* Jinja keeps loop out */
    return tpl_render_template(rt, t, scope, out, NULL);
}

HELPER exec_import(tpl_rt *rt, tpl_ctx *c, const tpl_node *n)
{
    tpl_module *m;
    if (import_module(rt, c, n, &m))
        return -1;
    if (n->kind == S_IMPORT) {
        tpl_scope_set(rt, c->scope, n->alias, opaque(&module_type, m));
        return 0;
    }
    for (const tpl_node *x = n->args; x; x = x->next) {
        tv v;
        if (module_getattr(rt, m, x->name, &v))
            return -1;
        tpl_scope_set(rt, c->scope, x->alias, v);
    }
    return 0;
}

HELPER exec_autoescape(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tpl_buf *out)
{
    tv v;
    if (tpl_eval(rt, c, n->a, &v))
        return -1;
    bool saved = rt->autoescape;
    rt->autoescape = tv_truthy(v);
    int rc = tpl_render_list(rt, c, n->body, out);
    rt->autoescape = saved;
    return rc;
}

/* A dispatch without locals of its own, like tpl_eval. */
int tpl_render_stmt(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tpl_buf *out)
{
    rt->line = n->line;
    switch (n->kind) {
    case S_DATA:
        tpl_buf_put(out, n->name, n->len);
        return rt->failed ? -1 : 0;
    case S_OUTPUT: return exec_output(rt, c, n, out);
    case S_IF: return exec_if(rt, c, n, out);
    case S_FOR: return exec_for(rt, c, n, out);
    case S_SET: return exec_set(rt, c, n);
    case S_SETBLOCK: return exec_set_block(rt, c, n);
    case S_BLOCK: return exec_block(rt, c, n, out);
    case S_EXTENDS: return exec_extends(rt, c, n);
    case S_INCLUDE: return exec_include(rt, c, n, out);
    case S_IMPORT:
    case S_FROM: return exec_import(rt, c, n);
    case S_MACRO:
        tpl_scope_set(rt, c->scope, n->name, make_macro(rt, c, n));
        return 0;
    case S_CALLBLOCK: return exec_call_block(rt, c, n, out);
    case S_FILTERBLOCK: return exec_filter_block(rt, c, n, out);
    case S_AUTOESCAPE: return exec_autoescape(rt, c, n, out);
    case S_WITH: return exec_with(rt, c, n, out);
    default: return tpl_error(rt, "cannot run this statement");
    }
}

static bool is_output(const tpl_node *n)
{
    return n->kind == S_DATA || n->kind == S_OUTPUT || n->kind == S_BLOCK || n->kind == S_INCLUDE ||
           n->kind == S_CALLBLOCK || n->kind == S_FILTERBLOCK;
}

int tpl_render_list(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tpl_buf *out)
{
    if (tpl_rt_check_stack(rt))
        return -1;
    int rc = 0;
    for (; n && !rc; n = n->next) {
        /* once a template extends another, its own top level prints nothing */
        if (c->toplevel && c->ts->parent && is_output(n))
            continue;
        rc = tpl_render_stmt(rt, c, n, out);
        if (rt->failed)
            rc = -1;
    }
    return rc;
}
