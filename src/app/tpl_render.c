/*
 * tpl_render.c — evaluating expressions: name lookup (render-local
 * variables, the context, registered globals, the builtin globals range,
 * dict, namespace, cycler, joiner and self, then the host), attributes and items, calls
 * (methods, macros, C functions), filters and tests, Python's `and`/`or`,
 * chained comparisons, inline if, and list/tuple/dict literals. Values
 * and their semantics are tpl_value.c's (tv_*).
 */
#include "app/tpl_ast.h"

#include <stdio.h>
#include <string.h>

const char *tpl_type_name(tv v)
{
    switch (v.kind) {
    case TV_UNDEF: return "Undefined";
    case TV_NONE: return "NoneType";
    case TV_BOOL: return "bool";
    case TV_INT: return "int";
    case TV_FLOAT: return "float";
    case TV_STR: return "str";
    case TV_ARRAY: return "list";
    case TV_OBJECT: return "dict";
    default: return v.op.type->name;
    }
}

static tv opaque(const tpl_opaque_type *type, void *ptr)
{
    tv v = {.kind = TV_OPAQUE};
    v.op.type = type;
    v.op.ptr = ptr;
    return v;
}

/* ---- C functions (tpl_env_register) ---------------------------------------- */

static int ext_invoke(tpl_rt *rt, const tpl_reg *reg, const tv *first, const tv *args, size_t nargs,
                      const tpl_kwarg *kw, size_t nkw, tv *out)
{
    json_t *a = tpl_keep(rt, json_array()), *k = tpl_keep(rt, json_object());
    if (!a || !k)
        return tpl_error(rt, "out of memory");
    if (first)
        json_array_append(a, tv_to_json(rt, *first));
    for (size_t i = 0; i < nargs; i++)
        json_array_append(a, tv_to_json(rt, args[i]));
    for (size_t i = 0; i < nkw; i++)
        json_object_set(k, kw[i].name, tv_to_json(rt, kw[i].value));
    if (rt->failed)
        return -1;
    json_t *r = reg->fn(rt->host ? rt->host->data : NULL, a, k, reg->arg);
    if (!r)
        return tpl_error(rt, "%s() failed", reg->name);
    *out = tv_from_json(tpl_keep(rt, r));
    return 0;
}

static int ext_call(tpl_rt *rt, void *ptr, const tv *args, size_t nargs, const tpl_kwarg *kw, size_t nkw,
                    tv *out)
{
    return ext_invoke(rt, ptr, NULL, args, nargs, kw, nkw, out);
}

static const tpl_opaque_type ext_type = {.name = "function", .call = ext_call};

/* ---- builtin globals -------------------------------------------------------- */

static int int_arg(tpl_rt *rt, tv v, int64_t *out)
{
    if (v.kind == TV_INT) {
        *out = v.i;
        return 0;
    }
    if (v.kind == TV_BOOL) {
        *out = v.b;
        return 0;
    }
    return tpl_error(rt, "'%s' object cannot be interpreted as an integer", tpl_type_name(v));
}

static int range_call(tpl_rt *rt, void *ptr, const tv *args, size_t nargs, const tpl_kwarg *kw, size_t nkw,
                      tv *out)
{
    int64_t start = 0, stop = 0, step = 1;
    if (nkw)
        return tpl_error(rt, "range() takes no keyword arguments");
    if (nargs < 1 || nargs > 3)
        return tpl_error(rt, "range expected at most 3 arguments, got %zu", nargs);
    if (nargs == 1) {
        if (int_arg(rt, args[0], &stop))
            return -1;
    } else if (int_arg(rt, args[0], &start) || int_arg(rt, args[1], &stop) ||
               (nargs == 3 && int_arg(rt, args[2], &step))) {
        return -1;
    }
    if (step == 0)
        return tpl_error(rt, "range() arg 3 must not be zero");
    double count = step > 0 ? ((double)stop - (double)start) / (double)step
                            : ((double)start - (double)stop) / (double)-step;
    if (count > TPL_MAX_RANGE)
        return tpl_error(rt, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).",
                         TPL_MAX_RANGE);
    /* each item counts as a step: a loop of ranges must not eat memory */
    rt->steps += count > 0 ? (size_t)count * TPL_RANGE_ITEM_STEPS : 0;
    if (tpl_rt_step(rt))
        return -1;
    json_t *a = tpl_keep(rt, json_array());
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
        json_array_append_new(a, json_integer(i));
    *out = tv_from_json(a);
    return 0;
}

static int dict_call(tpl_rt *rt, void *ptr, const tv *args, size_t nargs, const tpl_kwarg *kw, size_t nkw,
                     tv *out)
{
    json_t *o = tpl_keep(rt, json_object());
    if (nargs > 1)
        return tpl_error(rt, "dict expected at most 1 argument, got %zu", nargs);
    if (nargs == 1) {
        if (args[0].kind != TV_OBJECT)
            return tpl_error(rt, "'%s' object is not iterable as a dict", tpl_type_name(args[0]));
        json_object_update(o, args[0].json);
    }
    for (size_t i = 0; i < nkw; i++)
        json_object_set(o, kw[i].name, tv_to_json(rt, kw[i].value));
    *out = tv_from_json(o);
    return rt->failed ? -1 : 0;
}

/* namespace(): attributes set with {% set ns.x = ... %} */
typedef struct tpl_ns {
    tpl_var *vars;
    size_t n, cap;
} tpl_ns;

static int ns_getattr(tpl_rt *rt, void *ptr, const char *name, tv *out)
{
    tpl_ns *ns = ptr;
    for (size_t k = 0; k < ns->n; k++)
        if (strcmp(ns->vars[k].name, name) == 0) {
            *out = ns->vars[k].value;
            return 0;
        }
    *out = tv_undef(name);
    return 0;
}

static const tpl_opaque_type ns_type = {.name = "Namespace", .getattr = ns_getattr};

static void ns_set(tpl_rt *rt, tpl_ns *ns, const char *name, tv v)
{
    for (size_t k = 0; k < ns->n; k++)
        if (strcmp(ns->vars[k].name, name) == 0) {
            ns->vars[k].value = v;
            return;
        }
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 4;
        tpl_var *v2 = tpl_alloc(rt, cap * sizeof *v2);
        if (ns->n)
            memcpy(v2, ns->vars, ns->n * sizeof *v2);
        ns->vars = v2;
        ns->cap = cap;
    }
    ns->vars[ns->n].name = name;
    ns->vars[ns->n].value = v;
    ns->n++;
}

static int ns_call(tpl_rt *rt, void *ptr, const tv *args, size_t nargs, const tpl_kwarg *kw, size_t nkw,
                   tv *out)
{
    tpl_ns *ns = tpl_alloc(rt, sizeof *ns);
    memset(ns, 0, sizeof *ns);
    if (nargs > 1)
        return tpl_error(rt, "namespace expected at most 1 argument, got %zu", nargs);
    if (nargs == 1) {
        if (args[0].kind != TV_OBJECT)
            return tpl_error(rt, "'%s' object is not a mapping", tpl_type_name(args[0]));
        const char *key;
        json_t *val;
        json_object_foreach(args[0].json, key, val) ns_set(rt, ns, key, tv_from_json(val));
    }
    for (size_t i = 0; i < nkw; i++)
        ns_set(rt, ns, kw[i].name, kw[i].value);
    *out = opaque(&ns_type, ns);
    return 0;
}

/* cycler(a, b, ...): .next(), .current, .reset() */
typedef struct tpl_cycler {
    tv *items;
    size_t n, pos;
} tpl_cycler;

static int cycler_next(tpl_rt *rt, void *ptr, const tv *args, size_t nargs, const tpl_kwarg *kw,
                       size_t nkw, tv *out)
{
    tpl_cycler *cy = ptr;
    if (!cy->n)
        return tpl_error(rt, "at least one item has to be provided");
    *out = cy->items[cy->pos];
    cy->pos = (cy->pos + 1) % cy->n;
    return 0;
}

static int cycler_reset(tpl_rt *rt, void *ptr, const tv *args, size_t nargs, const tpl_kwarg *kw,
                        size_t nkw, tv *out)
{
    ((tpl_cycler *)ptr)->pos = 0;
    *out = tv_none();
    return 0;
}

static const tpl_opaque_type cycler_next_type = {.name = "method", .call = cycler_next};
static const tpl_opaque_type cycler_reset_type = {.name = "method", .call = cycler_reset};

static int cycler_getattr(tpl_rt *rt, void *ptr, const char *name, tv *out)
{
    tpl_cycler *cy = ptr;
    if (!strcmp(name, "next") || !strcmp(name, "__next__"))
        *out = opaque(&cycler_next_type, cy);
    else if (!strcmp(name, "reset"))
        *out = opaque(&cycler_reset_type, cy);
    else if (!strcmp(name, "current") && cy->n)
        *out = cy->items[cy->pos];
    else
        *out = tv_undef(name);
    return 0;
}

static const tpl_opaque_type cycler_type = {.name = "Cycler", .getattr = cycler_getattr};

static int cycler_call(tpl_rt *rt, void *ptr, const tv *args, size_t nargs, const tpl_kwarg *kw,
                       size_t nkw, tv *out)
{
    if (!nargs)
        return tpl_error(rt, "at least one item has to be provided");
    tpl_cycler *cy = tpl_alloc(rt, sizeof *cy);
    cy->items = tpl_alloc(rt, nargs * sizeof *cy->items);
    memcpy(cy->items, args, nargs * sizeof *args);
    cy->n = nargs;
    cy->pos = 0;
    *out = opaque(&cycler_type, cy);
    return 0;
}

/* joiner(sep=", "): "" the first time it is called, sep after */
typedef struct tpl_joiner {
    tv sep;
    bool used;
} tpl_joiner;

static int joiner_use(tpl_rt *rt, void *ptr, const tv *args, size_t nargs, const tpl_kwarg *kw, size_t nkw,
                      tv *out)
{
    tpl_joiner *j = ptr;
    *out = j->used ? j->sep : tv_strn("", 0, false);
    j->used = true;
    return 0;
}

static const tpl_opaque_type joiner_obj_type = {.name = "Joiner", .call = joiner_use};

static int joiner_call(tpl_rt *rt, void *ptr, const tv *args, size_t nargs, const tpl_kwarg *kw,
                       size_t nkw, tv *out)
{
    tpl_joiner *j = tpl_alloc(rt, sizeof *j);
    j->sep = nargs ? args[0] : tv_strn(", ", 2, false);
    for (size_t k = 0; k < nkw; k++)
        if (!strcmp(kw[k].name, "sep"))
            j->sep = kw[k].value;
    j->used = false;
    *out = opaque(&joiner_obj_type, j);
    return 0;
}

static const tpl_opaque_type cyclermaker_type = {.name = "type", .call = cycler_call};
static const tpl_opaque_type joinermaker_type = {.name = "type", .call = joiner_call};
static const tpl_opaque_type range_type = {.name = "builtin_function_or_method", .call = range_call};
static const tpl_opaque_type dict_type = {.name = "type", .call = dict_call};
static const tpl_opaque_type nsmaker_type = {.name = "type", .call = ns_call};

static bool builtin(tpl_rt *rt, tpl_ctx *c, const char *name, tv *out)
{
    if (name == rt->env->n_self) {
        *out = tpl_self_object(rt, c->ts);
        return true;
    }
    if (!strcmp(name, "range"))
        *out = opaque(&range_type, NULL);
    else if (!strcmp(name, "dict"))
        *out = opaque(&dict_type, NULL);
    else if (!strcmp(name, "namespace"))
        *out = opaque(&nsmaker_type, NULL);
    else if (!strcmp(name, "cycler"))
        *out = opaque(&cyclermaker_type, NULL);
    else if (!strcmp(name, "joiner"))
        *out = opaque(&joinermaker_type, NULL);
    else
        return false;
    return true;
}

static __attribute__((noinline)) int lookup(tpl_rt *rt, tpl_ctx *c, const char *name, tv *out)
{
    for (const tpl_scope *s = c->scope; s; s = s->parent) {
        if (tpl_scope_get_own(s, name, out))
            return 0;
        if (s->ctx) {
            json_t *j = json_object_get(s->ctx, name);
            if (j) {
                *out = tv_from_json(j);
                return 0;
            }
        }
    }
    const tpl_reg *reg = tpl_env_find_reg(rt->env, false, name);
    if (reg) {
        *out = opaque(&ext_type, (void *)reg);
        return 0;
    }
    if (builtin(rt, c, name, out))
        return 0;
    if (rt->host && rt->host->lookup) {
        json_t *j = rt->host->lookup(rt->host->data, name);
        if (j) {
            *out = tv_from_json(j);
            return 0;
        }
    }
    *out = tv_undef(name);
    return 0;
}

/* ---- attributes, items, calls ----------------------------------------------- */

static int get_attr(tpl_rt *rt, tv v, const char *name, tv *out)
{
    if (v.kind == TV_OPAQUE) {
        if (v.op.type->getattr)
            return v.op.type->getattr(rt, v.op.ptr, name, out);
        *out = tv_undef(name);
        return 0;
    }
    return tv_getattr(rt, v, name, out);
}

int tpl_call_value(tpl_rt *rt, tv fn, const tv *args, size_t nargs, const tpl_kwarg *kw, size_t nkw,
                   tv *out)
{
    if (fn.kind == TV_OPAQUE && fn.op.type->call) {
        if (tpl_rt_step(rt))
            return -1;
        return fn.op.type->call(rt, fn.op.ptr, args, nargs, kw, nkw, out);
    }
    if (fn.kind == TV_UNDEF)
        return tpl_error(rt, "'%s' is undefined", fn.undef_name ? fn.undef_name : "value");
    return tpl_error(rt, "'%s' object is not callable", tpl_type_name(fn));
}

/* Arguments of a call, filter or test node into arena arrays. */
static int eval_args(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, const tv *caller, tv **args,
                     tpl_kwarg **kw)
{
    size_t nkw = n->nkw + (caller ? 1u : 0u);
    *args = n->nargs ? tpl_alloc(rt, n->nargs * sizeof **args) : NULL;
    *kw = nkw ? tpl_alloc(rt, nkw * sizeof **kw) : NULL;
    size_t ia = 0, ik = 0;
    for (const tpl_node *a = n->args; a; a = a->next) {
        if (a->kind == N_KWARG) {
            (*kw)[ik].name = a->name;
            if (tpl_eval(rt, c, a->a, &(*kw)[ik].value))
                return -1;
            ik++;
        } else if (tpl_eval(rt, c, a, &(*args)[ia++])) {
            return -1;
        }
    }
    if (caller) {
        (*kw)[ik].name = rt->env->n_caller;
        (*kw)[ik].value = *caller;
    }
    return 0;
}

int tpl_eval_call(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, const tv *caller, tv *out)
{
    const tpl_node *callee = n->a;
    tv fn, obj = {0};
    bool method = callee->kind == N_GETATTR;
    if (tpl_eval(rt, c, method ? callee->a : callee, method ? &obj : &fn))
        return -1;
    tv *args;
    tpl_kwarg *kw;
    if (eval_args(rt, c, n, caller, &args, &kw))
        return -1;
    size_t nkw = n->nkw + (caller ? 1u : 0u);
    rt->line = n->line;
    if (method) {
        if (obj.kind != TV_OPAQUE && obj.kind != TV_UNDEF) {
            bool found = false;
            if (tv_call_method(rt, obj, callee->name, args, n->nargs, kw, nkw, out, &found))
                return -1;
            if (found)
                return 0;
        }
        if (get_attr(rt, obj, callee->name, &fn))
            return -1;
        if (fn.kind == TV_UNDEF && obj.kind != TV_OPAQUE)
            return tpl_error(rt, "'%s object' has no attribute '%s'", tpl_type_name(obj), callee->name);
    }
    return tpl_call_value(rt, fn, args, n->nargs, kw, nkw, out);
}

static __attribute__((noinline)) int eval_filter(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tv *out)
{
    tv in;
    if (n->a->flags & NF_PLACEHOLDER)
        in = c->placeholder ? *c->placeholder : tv_strn("", 0, false);
    else if (tpl_eval(rt, c, n->a, &in))
        return -1;
    tv *args;
    tpl_kwarg *kw;
    if (eval_args(rt, c, n, NULL, &args, &kw))
        return -1;
    rt->line = n->line;
    if (n->reg)
        return ext_invoke(rt, n->reg, &in, args, n->nargs, kw, n->nkw, out);
    if (!n->filter)
        return tpl_error(rt, "No filter named '%s' found.", n->name);
    return n->filter(rt, in, args, n->nargs, kw, n->nkw, out);
}

static __attribute__((noinline)) int eval_test(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tv *out)
{
    tv in;
    if (tpl_eval(rt, c, n->a, &in))
        return -1;
    tv *args;
    tpl_kwarg *kw;
    if (eval_args(rt, c, n, NULL, &args, &kw))
        return -1;
    rt->line = n->line;
    if (!n->test)
        return tpl_error(rt, "No test named '%s' found.", n->name);
    if (n->nkw)
        return tpl_error(rt, "test '%s' takes no keyword arguments", n->name);
    bool b = false;
    if (n->test(rt, in, args, n->nargs, &b))
        return -1;
    *out = tv_bool(b);
    return 0;
}

static __attribute__((noinline)) int eval_compare(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tv *out)
{
    tv left, right;
    if (tpl_eval(rt, c, n->a, &left))
        return -1;
    for (const tpl_node *op = n->args; op; op = op->next) {
        if (tpl_eval(rt, c, op->a, &right))
            return -1;
        rt->line = op->line;
        if (tv_binop(rt, (tv_op)op->op, left, right, out))
            return -1;
        if (!tv_truthy(*out))
            return 0;
        left = right;
    }
    return 0;
}

static __attribute__((noinline)) int eval_slice(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tv *out)
{
    tv v, parts[3] = {tv_none(), tv_none(), tv_none()};
    const tpl_node *exprs[3] = {n->b, n->c, n->args};
    if (tpl_eval(rt, c, n->a, &v))
        return -1;
    for (int k = 0; k < 3; k++)
        if (exprs[k] && tpl_eval(rt, c, exprs[k], &parts[k]))
            return -1;
    rt->line = n->line;
    return tv_slice(rt, v, parts[0], parts[1], parts[2], out);
}

static __attribute__((noinline)) int eval_getitem(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tv *out)
{
    tv v, key;
    if (tpl_eval(rt, c, n->a, &v) || tpl_eval(rt, c, n->b, &key))
        return -1;
    rt->line = n->line;
    if (v.kind == TV_OPAQUE) {
        if (key.kind == TV_STR)
            return get_attr(rt, v, tpl_strndup(rt, key.str.s, key.str.len), out);
        *out = tv_undef("item");
        return 0;
    }
    return tv_getitem(rt, v, key, out);
}

static __attribute__((noinline)) int eval_literal(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tv *out)
{
    bool dict = n->kind == N_DICT;
    json_t *j = tpl_keep(rt, dict ? json_object() : json_array());
    if (!j)
        return tpl_error(rt, "out of memory");
    for (const tpl_node *x = n->args; x; x = x->next) {
        tv v;
        if (tpl_eval(rt, c, dict ? x->b : x, &v))
            return -1;
        if (!dict) {
            json_array_append(j, tv_to_json(rt, v));
            continue;
        }
        tv k;
        if (tpl_eval(rt, c, x->a, &k))
            return -1;
        tpl_buf key;
        tpl_buf_init(&key, rt);
        if (k.kind == TV_STR)
            tpl_buf_put(&key, k.str.s, k.str.len);
        else if (tv_str(rt, &key, k))
            return -1;
        json_object_set(j, tpl_buf_cstr(&key), tv_to_json(rt, v));
    }
    if (rt->failed)
        return -1;
    *out = n->kind == N_TUPLE ? tv_tuple(j) : tv_from_json(j);
    return 0;
}

#define HELPER static __attribute__((noinline)) int

HELPER eval_getattr(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tv *out)
{
    tv a;
    if (tpl_eval(rt, c, n->a, &a))
        return -1;
    rt->line = n->line;
    return get_attr(rt, a, n->name, out);
}

HELPER eval_unary(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tv *out)
{
    tv a;
    if (tpl_eval(rt, c, n->a, &a))
        return -1;
    rt->line = n->line;
    if (n->kind == N_NOT) {
        *out = tv_bool(!tv_truthy(a));
        return 0;
    }
    return tv_binop(rt, n->kind == N_NEG ? TV_NEG : TV_POS, a, a, out);
}

/* Python's and/or: the deciding operand itself */
HELPER eval_logic(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tv *out)
{
    if (tpl_eval(rt, c, n->a, out))
        return -1;
    if (tv_truthy(*out) == (n->kind == N_OR))
        return 0;
    return tpl_eval(rt, c, n->b, out);
}

HELPER eval_binop(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tv *out)
{
    tv a, b;
    if (tpl_eval(rt, c, n->a, &a) || tpl_eval(rt, c, n->b, &b))
        return -1;
    rt->line = n->line;
    return tv_binop(rt, (tv_op)n->op, a, b, out);
}

HELPER eval_cond(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tv *out)
{
    tv a;
    if (tpl_eval(rt, c, n->a, &a))
        return -1;
    if (tv_truthy(a))
        return tpl_eval(rt, c, n->b, out);
    if (n->c)
        return tpl_eval(rt, c, n->c, out);
    *out = tv_undef("the inline if expression's else");
    return 0;
}

HELPER eval_call(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tv *out) { return tpl_eval_call(rt, c, n, NULL, out); }

/* A dispatch without locals of its own (the helpers are not inlined):
 * its frame is on the stack once per level of an expression. */
int tpl_eval(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tv *out)
{
    switch (n->kind) {
    case N_CONST:
        *out = n->value;
        return 0;
    case N_NAME:
        return lookup(rt, c, n->name, out);
    default:
        break;
    }
    if (tpl_rt_check_stack(rt))
        return -1;
    rt->line = n->line;
    switch (n->kind) {
    case N_GETATTR: return eval_getattr(rt, c, n, out);
    case N_GETITEM: return eval_getitem(rt, c, n, out);
    case N_SLICE: return eval_slice(rt, c, n, out);
    case N_CALL: return eval_call(rt, c, n, out);
    case N_FILTER: return eval_filter(rt, c, n, out);
    case N_TEST: return eval_test(rt, c, n, out);
    case N_NOT:
    case N_NEG:
    case N_POS: return eval_unary(rt, c, n, out);
    case N_AND:
    case N_OR: return eval_logic(rt, c, n, out);
    case N_BINOP: return eval_binop(rt, c, n, out);
    case N_COMPARE: return eval_compare(rt, c, n, out);
    case N_COND: return eval_cond(rt, c, n, out);
    case N_LIST:
    case N_TUPLE:
    case N_DICT: return eval_literal(rt, c, n, out);
    default: return tpl_error(rt, "cannot evaluate this expression");
    }
}

/* ---- assignment helpers used by statements ----------------------------------- */

int tpl_ns_assign(tpl_rt *rt, tv ns, const char *attr, tv v)
{
    if (ns.kind != TV_OPAQUE || ns.op.type != &ns_type)
        return tpl_error(rt, "Cannot assign attribute on non-namespace object");
    ns_set(rt, ns.op.ptr, attr, v);
    return 0;
}
