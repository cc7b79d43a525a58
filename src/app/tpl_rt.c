/*
 * tpl_rt.c — one render's state: its arena allocations, the JSON values it
 * keeps, its first error ("name:line: message"), its output buffers (with
 * markupsafe's escaping), variable scopes, and the bounds every render
 * keeps to (output size, memory, steps, depth and stack).
 */
#include "app/tpl_ast.h"
#include "core/coro.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tpl_rt_init(tpl_rt *rt, const tpl_env *env, const tpl_host *host, cf_arena *arena)
{
    memset(rt, 0, sizeof *rt);
    rt->env = env;
    rt->host = host;
    rt->arena = arena;
    rt->tname = "";
    /* only compared with, never dereferenced */
    rt->stack_base = (const char *)__builtin_frame_address(0);
}

void tpl_rt_done(tpl_rt *rt)
{
    for (size_t k = 0; k < rt->nkept; k++)
        json_decref(rt->kept[k]);
    rt->nkept = 0;
}

void *tpl_alloc(tpl_rt *rt, size_t n)
{
    rt->allocated += n;
    if (rt->allocated > TPL_MAX_MEMORY && !rt->failed)
        tpl_error(rt, "the render uses too much memory (more than %u MiB)", TPL_MAX_MEMORY >> 20);
    void *p = cf_arena_alloc(rt->arena, n);
    if (!p)
        abort();
    return p;
}

char *tpl_strndup(tpl_rt *rt, const char *s, size_t n)
{
    char *d = tpl_alloc(rt, n + 1);
    if (n)
        memcpy(d, s, n);
    d[n] = 0;
    return d;
}

json_t *tpl_keep(tpl_rt *rt, json_t *j)
{
    if (!j)
        return NULL;
    if (rt->nkept == rt->capkept) {
        size_t cap = rt->capkept ? rt->capkept * 2 : 16;
        json_t **v = tpl_alloc(rt, cap * sizeof *v);
        if (rt->nkept)
            memcpy(v, rt->kept, rt->nkept * sizeof *v);
        rt->kept = v;
        rt->capkept = cap;
    }
    rt->kept[rt->nkept++] = j;
    return j;
}

int tpl_error(tpl_rt *rt, const char *fmt, ...)
{
    if (rt->failed)
        return -1;
    rt->failed = true;
    int n = snprintf(rt->err, sizeof rt->err, "%s:%d: ", rt->tname, rt->line);
    if (n < 0 || (size_t)n >= sizeof rt->err)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rt->err + n, sizeof rt->err - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

bool tpl_autoescape(const tpl_rt *rt) { return rt->autoescape; }

int tpl_rt_step(tpl_rt *rt)
{
    if (++rt->steps > TPL_MAX_STEPS)
        return tpl_error(rt, "the render takes too many steps (more than %u loop iterations and calls)",
                         TPL_MAX_STEPS);
    return rt->failed ? -1 : 0;
}

int tpl_rt_check_stack(tpl_rt *rt)
{
    char here;
    uintptr_t base = (uintptr_t)rt->stack_base, at = (uintptr_t)&here;
    size_t used = base > at ? base - at : at - base;
    /* On a coroutine the real limit is what is left of its stack (64 KiB
     * by default, part of it used by the handler); the fixed budget is for
     * thread stacks (carafe-render, threaded routes). */
    if (used > TPL_STACK_BUDGET || cf_coro_stack_left() < TPL_STACK_RESERVE)
        return tpl_error(rt, "maximum recursion depth exceeded (the template nests too deeply)");
    return rt->failed ? -1 : 0;
}

int tpl_rt_enter(tpl_rt *rt)
{
    if (rt->depth >= TPL_MAX_DEPTH)
        return tpl_error(rt, "maximum recursion depth exceeded");
    if (tpl_rt_check_stack(rt))
        return -1;
    rt->depth++;
    return 0;
}

/* ---- output buffers ----------------------------------------------------------- */

void tpl_buf_init(tpl_buf *b, tpl_rt *rt)
{
    b->rt = rt;
    b->data = NULL;
    b->len = b->cap = 0;
}

static bool grow(tpl_buf *b, size_t add)
{
    if (b->cap - b->len > add)
        return true;
    if (b->len + add > TPL_MAX_OUTPUT) {
        tpl_error(b->rt, "the output is too large (more than %u MiB)", TPL_MAX_OUTPUT >> 20);
        return false;
    }
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap <= b->len + add)
        cap *= 2;
    b->rt->allocated += cap; /* the old block stays in the arena when moved */
    if (b->rt->allocated > TPL_MAX_MEMORY) {
        tpl_error(b->rt, "the render uses too much memory (more than %u MiB)", TPL_MAX_MEMORY >> 20);
        return false;
    }
    char *d = cf_arena_realloc(b->rt->arena, b->data, b->cap, cap);
    if (!d)
        abort();
    b->data = d;
    b->cap = cap;
    return true;
}

void tpl_buf_put(tpl_buf *b, const char *s, size_t n)
{
    if (!n || !grow(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

void tpl_buf_puts(tpl_buf *b, const char *s) { tpl_buf_put(b, s, strlen(s)); }

void tpl_buf_putc(tpl_buf *b, char c)
{
    if (!grow(b, 1))
        return;
    b->data[b->len++] = c;
}

/* markupsafe's replacements, and which bytes have one */
static const char *const html_escape[256] = {
    ['&'] = "&amp;", ['<'] = "&lt;", ['>'] = "&gt;", ['"'] = "&#34;", ['\''] = "&#39;",
};

void tpl_buf_put_escaped(tpl_buf *b, const char *s, size_t n)
{
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep = html_escape[(unsigned char)s[i]];
        if (!rep)
            continue;
        tpl_buf_put(b, s + from, i - from);
        tpl_buf_put(b, rep, strlen(rep));
        from = i + 1;
    }
    tpl_buf_put(b, s + from, n - from);
}

const char *tpl_buf_cstr(tpl_buf *b)
{
    if (!grow(b, 1))
        return b->data && b->len < b->cap ? (b->data[b->len] = 0, b->data) : "";
    b->data[b->len] = 0;
    return b->data;
}

/* ---- scopes ---------------------------------------------------------------------- */

void tpl_scope_init(tpl_scope *s, tpl_scope *parent, json_t *ctx)
{
    s->parent = parent;
    s->ctx = ctx;
    s->vars = s->inline_vars;
    s->n = 0;
    s->cap = sizeof s->inline_vars / sizeof s->inline_vars[0];
}

tpl_scope *tpl_scope_new(tpl_rt *rt, tpl_scope *parent, json_t *ctx)
{
    tpl_scope *s = tpl_alloc(rt, sizeof *s);
    tpl_scope_init(s, parent, ctx);
    return s;
}

void tpl_scope_set(tpl_rt *rt, tpl_scope *s, const char *name, tv v)
{
    for (uint32_t k = 0; k < s->n; k++)
        if (s->vars[k].name == name) {
            s->vars[k].value = v;
            return;
        }
    if (s->n == s->cap) {
        uint32_t cap = s->cap * 2;
        tpl_var *vars = tpl_alloc(rt, cap * sizeof *vars);
        memcpy(vars, s->vars, s->n * sizeof *vars);
        s->vars = vars;
        s->cap = cap;
    }
    s->vars[s->n].name = name;
    s->vars[s->n].value = v;
    s->n++;
}

bool tpl_scope_get_own(const tpl_scope *s, const char *name, tv *out)
{
    for (uint32_t k = s->n; k-- > 0;)
        if (s->vars[k].name == name) {
            *out = s->vars[k].value;
            return true;
        }
    return false;
}
