/*
 * tpl_env.c — the template environment: templates compiled once (from a
 * folder or from memory) into trees kept in the env's arena, the interned
 * names those trees use, registered C globals and filters, and
 * tpl_render, the entry to one render. Read-only once loaded, so renders
 * on several threads may share one env.
 */
#include "app/tpl_ast.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void *tpl_env_alloc(tpl_env *env, size_t n)
{
    void *p = cf_arena_alloc(&env->arena, n);
    if (!p)
        abort();
    return p;
}

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

const char *tpl_intern(tpl_env *env, const char *s, size_t n)
{
    if (env->nnames * 2 >= env->ncap) {
        size_t cap = env->ncap ? env->ncap * 2 : 256;
        const char **v = calloc(cap, sizeof *v);
        if (!v)
            abort();
        for (size_t k = 0; k < env->ncap; k++)
            if (env->names[k]) {
                size_t at = hash(env->names[k], strlen(env->names[k])) & (cap - 1);
                while (v[at])
                    at = (at + 1) & (cap - 1);
                v[at] = env->names[k];
            }
        free(env->names);
        env->names = v;
        env->ncap = cap;
    }
    size_t at = hash(s, n) & (env->ncap - 1);
    for (; env->names[at]; at = (at + 1) & (env->ncap - 1))
        if (strncmp(env->names[at], s, n) == 0 && env->names[at][n] == 0)
            return env->names[at];
    char *d = tpl_env_alloc(env, n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    env->names[at] = d;
    env->nnames++;
    return d;
}

tpl_env *tpl_env_new(void)
{
    tpl_env *env = calloc(1, sizeof *env);
    if (!env)
        abort();
    cf_arena_init(&env->arena, NULL, 0);
    env->n_loop = tpl_intern(env, "loop", 4);
    env->n_super = tpl_intern(env, "super", 5);
    env->n_caller = tpl_intern(env, "caller", 6);
    env->n_self = tpl_intern(env, "self", 4);
    env->n_varargs = tpl_intern(env, "varargs", 7);
    env->n_kwargs = tpl_intern(env, "kwargs", 6);
    return env;
}

void tpl_env_free(tpl_env *env)
{
    if (!env)
        return;
    cf_arena_reset(&env->arena); /* runs the json_decref of tpl_env_keep */
    free(env->tpls);
    free(env->names);
    for (tpl_reg *r = env->regs, *next; r; r = next) {
        next = r->next;
        free(r);
    }
    free(env);
}

static void decref(void *j) { json_decref(j); }

void tpl_env_keep(tpl_env *env, json_t *j)
{
    if (j && cf_arena_defer_add(&env->arena, decref, j) != 0)
        abort();
}

const tpl_template *tpl_env_find(const tpl_env *env, const char *name)
{
    if (!env->tcap || !name)
        return NULL;
    size_t at = hash(name, strlen(name)) & (env->tcap - 1);
    for (; env->tpls[at]; at = (at + 1) & (env->tcap - 1))
        if (strcmp(env->tpls[at]->name, name) == 0)
            return env->tpls[at];
    return NULL;
}

bool tpl_env_has(const tpl_env *env, const char *name) { return tpl_env_find(env, name) != NULL; }

static void put_template(tpl_env *env, tpl_template *t)
{
    if (env->ntpls * 2 >= env->tcap) {
        size_t cap = env->tcap ? env->tcap * 2 : 64;
        tpl_template **v = calloc(cap, sizeof *v);
        if (!v)
            abort();
        for (size_t k = 0; k < env->tcap; k++)
            if (env->tpls[k]) {
                size_t at = hash(env->tpls[k]->name, strlen(env->tpls[k]->name)) & (cap - 1);
                while (v[at])
                    at = (at + 1) & (cap - 1);
                v[at] = env->tpls[k];
            }
        free(env->tpls);
        env->tpls = v;
        env->tcap = cap;
    }
    size_t at = hash(t->name, strlen(t->name)) & (env->tcap - 1);
    for (; env->tpls[at]; at = (at + 1) & (env->tcap - 1))
        if (strcmp(env->tpls[at]->name, t->name) == 0) {
            env->tpls[at] = t; /* added again: the new one */
            return;
        }
    env->tpls[at] = t;
    env->ntpls++;
}

const tpl_reg *tpl_env_find_reg(const tpl_env *env, bool filter, const char *name)
{
    for (const tpl_reg *r = env->regs; r; r = r->next)
        if (r->filter == filter && strcmp(r->name, name) == 0)
            return r;
    return NULL;
}

int tpl_env_register(tpl_env *env, bool filter, const char *name, tpl_ext_fn fn, void *arg)
{
    if (!env || !name || !fn)
        return -1;
    for (tpl_reg *r = env->regs; r; r = r->next)
        if (r->filter == filter && strcmp(r->name, name) == 0) {
            r->fn = fn;
            r->arg = arg;
            return 0;
        }
    tpl_reg *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->name = tpl_intern(env, name, strlen(name));
    r->filter = filter;
    r->fn = fn;
    r->arg = arg;
    r->next = env->regs;
    env->regs = r;
    return 0;
}

/* Flask's choice of autoescaped templates. */
static bool autoescaped(const char *name)
{
    static const char *const exts[] = {".html", ".htm", ".xml", ".xhtml", ".svg"};
    size_t n = strlen(name);
    for (size_t k = 0; k < sizeof exts / sizeof exts[0]; k++) {
        size_t e = strlen(exts[k]);
        if (n >= e && strcmp(name + n - e, exts[k]) == 0)
            return true;
    }
    return false;
}

/* Compile src as `name`; errors name the file as `shown`. */
static int add_template(tpl_env *env, const char *name, const char *shown, const char *src, size_t len,
                        char *err, size_t cap)
{
    /* Jinja's newlines: \r\n and \r are \n, and one final newline goes */
    char *text = tpl_env_alloc(env, len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            text[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n')
                i++;
        } else {
            text[n++] = src[i];
        }
    }
    if (n && text[n - 1] == '\n')
        n--;
    text[n] = 0;
    tpl_template *t = tpl_env_alloc(env, sizeof *t);
    memset(t, 0, sizeof *t);
    t->name = tpl_intern(env, name, strlen(name));
    t->autoescape = autoescaped(name);
    tpl_toks toks = {0};
    int line = 1, col = 1;
    char msg[700];
    msg[0] = 0;
    int rc = tpl_lex(env, text, n, &toks, &line, &col, msg, sizeof msg);
    int prc = tpl_parse(env, t, &toks, rc != 0, &line, &col, msg, sizeof msg);
    rc = rc != 0 || prc != 0 ? -1 : 0;
    free(toks.v);
    if (rc != 0) {
        if (err && cap)
            snprintf(err, cap, "%s:%d:%d: %s", shown, line, col, msg);
        return -1;
    }
    put_template(env, t);
    return 0;
}

int tpl_env_add(tpl_env *env, const char *name, const char *src, size_t len, char *err, size_t cap)
{
    return add_template(env, name, name, src, len, err, cap);
}

static int load_file(tpl_env *env, const char *path, const char *name, char *err, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, cap, "%s: %s", path, strerror(errno));
        return -1;
    }
    size_t len = 0, bcap = 4096;
    char *buf = malloc(bcap);
    if (!buf)
        abort();
    for (;;) {
        if (len == bcap) {
            bcap *= 2;
            char *nb = realloc(buf, bcap);
            if (!nb)
                abort();
            buf = nb;
        }
        size_t got = fread(buf + len, 1, bcap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    bool bad = ferror(f);
    fclose(f);
    int rc = -1;
    if (bad)
        snprintf(err, cap, "%s: read error", path);
    else
        rc = add_template(env, name, path, buf, len, err, cap);
    free(buf);
    return rc;
}

/* Every file under dir/rel (rel "" at the top), depth-bounded. */
static int load_tree(tpl_env *env, const char *dir, const char *rel, int depth, char *err, size_t cap)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", dir, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d) {
        snprintf(err, cap, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.') /* ., .., hidden and editor files */
            continue;
        char sub[4096], full[8192];
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", dir, sub);
        struct stat st;
        if (stat(full, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth < 32)
                rc = load_tree(env, dir, sub, depth + 1, err, cap);
        } else if (S_ISREG(st.st_mode)) {
            rc = load_file(env, full, sub, err, cap);
        }
    }
    closedir(d);
    return rc;
}

int tpl_env_load_dir(tpl_env *env, const char *dir, char *err, size_t cap)
{
    char dummy[8];
    if (!err || !cap) {
        err = dummy;
        cap = sizeof dummy;
    }
    err[0] = 0;
    return load_tree(env, dir, "", 0, err, cap);
}

int tpl_render(const tpl_env *env, const char *name, json_t *ctx, const tpl_host *host,
               cf_arena *arena, const char **out, size_t *outlen, char *err, size_t cap)
{
    const tpl_template *t = tpl_env_find(env, name);
    if (!t) {
        if (err && cap)
            snprintf(err, cap, "%s:1: template '%s' not found", name, name);
        return -1;
    }
    tpl_rt rt;
    tpl_rt_init(&rt, env, host, arena);
    tpl_scope *root = tpl_scope_new(&rt, NULL, json_is_object(ctx) ? ctx : NULL);
    tpl_buf b;
    tpl_buf_init(&b, &rt);
    int rc = tpl_render_template(&rt, t, root, &b, NULL);
    if (rc == 0 && rt.failed)
        rc = -1;
    if (rc == 0) {
        const char *s = tpl_buf_cstr(&b);
        if (rt.failed) {
            rc = -1;
        } else {
            *out = s;
            *outlen = b.len;
        }
    }
    if (rc != 0 && err && cap)
        snprintf(err, cap, "%s", rt.failed ? rt.err : "render failed");
    tpl_rt_done(&rt);
    return rc;
}
