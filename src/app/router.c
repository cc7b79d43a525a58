/*
 * router.c — the URL rule compiler, matcher and builder behind cf_route and
 * cf_url_for (see router.h for the matching semantics).
 *
 * Rules are compiled into a trie with one level per path segment. A node has
 * static children (matched by length + memcmp, through a small open-address
 * hash once there are many of them) and at most one child per converter
 * type. Parameter names are not part of the trie: two rules that differ only
 * in names share nodes, values are recorded positionally while descending,
 * and the winning rule supplies the names. That keeps the trie small and
 * makes every node reachable by exactly one sequence of segments, so the
 * backtracking search visits each node at most once per match: worst case
 * is linear in the size of the trie, never exponential.
 *
 * Nothing here allocates while matching; segment boundaries are found with
 * memchr on the remaining bytes only.
 */
#include "app/router.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum conv { CONV_INT, CONV_FLOAT, CONV_UUID, CONV_STRING, CONV_PATH, NCONV, CONV_STATIC };

/* Priority order at a segment, after static children: the typed converters
 * (they cannot overlap each other), then string, then path. */
static const char *const conv_names[NCONV] = {"int", "float", "uuid", "string", "path"};

/* Above this many static children a node gets a hash index; below it a
 * linear scan comparing lengths first is as fast and simpler. */
#define HASH_MIN_CHILDREN 8

typedef struct node node;

typedef struct edge {
    const char *text; /* points into the text of the rule that created it */
    size_t len;
    uint32_t hash;
    node *child;
} edge;

struct node {
    edge *statics;
    size_t nstatic, capstatic;
    uint32_t *index; /* slot = edge position + 1, 0 = empty; NULL if small */
    uint32_t index_mask;
    node *conv[NCONV];
    cf_rule *rule; /* first rule ending here; later ones are shadowed */
};

/* One piece of a rule for building: static text (slashes included) or a
 * parameter. "/user/<int:id>/posts" is "/user/", id, "/posts". */
typedef struct part {
    const char *text; /* static: slice of the rule text; NULL for a param */
    size_t len;
    size_t param;
} part;

struct cf_rule {
    char *text;
    char *names_buf; /* copy of text with NULs cut in, so names are C strings */
    void *data;
    size_t nparams;
    const char *names[CF_MAX_PARAMS];
    unsigned char convs[CF_MAX_PARAMS];
    size_t nparts;
    part parts[2 * CF_MAX_PARAMS + 1];
    cf_rule *shadowed_by;
    cf_rule *next; /* router's list, in add order */
};

struct cf_router {
    node root;
    cf_rule *rules, *last;
};

/* ------------------------------------------------------------------ */
/* Converters                                                          */
/* ------------------------------------------------------------------ */

static inline bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static inline bool is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Leading zeros are accepted (as werkzeug does); only the value must fit
 * int64, so that cf_param_int never has to report an overflow. */
static bool conv_int(const char *s, size_t n)
{
    if (n == 0)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!is_digit(c))
            return false;
        unsigned d = c - '0';
        if (v > ((uint64_t)INT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    return true;
}

static bool conv_float(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && is_digit((unsigned char)s[i]))
        i++;
    if (i == 0 || i == n || s[i] != '.')
        return false;
    size_t frac = ++i;
    while (i < n && is_digit((unsigned char)s[i]))
        i++;
    return i == n && i > frac;
}

static bool conv_uuid(const char *s, size_t n)
{
    if (n != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!is_hex((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

static bool conv_string(const char *s, size_t n) { return n > 0 && !memchr(s, '/', n); }

/* Never starting with '/': "/files/<path:p>" must not hand "/etc/passwd" to
 * a handler for "/files//etc/passwd". */
static bool conv_path(const char *s, size_t n) { return n > 0 && s[0] != '/'; }

static bool conv_check(int conv, const char *s, size_t n)
{
    switch (conv) {
    case CONV_INT: return conv_int(s, n);
    case CONV_FLOAT: return conv_float(s, n);
    case CONV_UUID: return conv_uuid(s, n);
    case CONV_STRING: return conv_string(s, n);
    case CONV_PATH: return conv_path(s, n);
    }
    return false;
}

/* ------------------------------------------------------------------ */
/* Trie                                                                */
/* ------------------------------------------------------------------ */

static inline uint32_t seg_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a: segments are short, this is enough */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static node *find_static(const node *n, const char *s, size_t len)
{
    if (n->index) {
        uint32_t h = seg_hash(s, len);
        for (uint32_t i = h & n->index_mask;; i = (i + 1) & n->index_mask) {
            uint32_t slot = n->index[i];
            if (!slot)
                return NULL;
            const edge *e = &n->statics[slot - 1];
            if (e->hash == h && e->len == len && memcmp(e->text, s, len) == 0)
                return e->child;
        }
    }
    for (size_t i = 0; i < n->nstatic; i++) {
        const edge *e = &n->statics[i];
        if (e->len == len && memcmp(e->text, s, len) == 0)
            return e->child;
    }
    return NULL;
}

static bool rebuild_index(node *n)
{
    if (n->nstatic <= HASH_MIN_CHILDREN)
        return true;
    size_t size = 16;
    while (size < n->nstatic * 2)
        size *= 2;
    uint32_t *idx = calloc(size, sizeof *idx);
    if (!idx)
        return false;
    for (size_t k = 0; k < n->nstatic; k++) {
        size_t i = n->statics[k].hash & (size - 1);
        while (idx[i])
            i = (i + 1) & (size - 1);
        idx[i] = (uint32_t)(k + 1);
    }
    free(n->index);
    n->index = idx;
    n->index_mask = (uint32_t)(size - 1);
    return true;
}

static node *add_static(node *n, const char *s, size_t len)
{
    node *c = find_static(n, s, len);
    if (c)
        return c;
    if (n->nstatic == n->capstatic) {
        size_t cap = n->capstatic ? n->capstatic * 2 : 4;
        edge *e = realloc(n->statics, cap * sizeof *e);
        if (!e)
            return NULL;
        n->statics = e;
        n->capstatic = cap;
    }
    if (!(c = calloc(1, sizeof *c)))
        return NULL;
    n->statics[n->nstatic++] = (edge){s, len, seg_hash(s, len), c};
    if (!rebuild_index(n)) {
        n->nstatic--;
        free(c);
        return NULL;
    }
    return c;
}

static void node_free_children(node *n)
{
    for (size_t i = 0; i < n->nstatic; i++) {
        node_free_children(n->statics[i].child);
        free(n->statics[i].child);
    }
    for (int k = 0; k < NCONV; k++) {
        if (n->conv[k]) {
            node_free_children(n->conv[k]);
            free(n->conv[k]);
        }
    }
    free(n->statics);
    free(n->index);
}

/* ------------------------------------------------------------------ */
/* Rule compiler                                                       */
/* ------------------------------------------------------------------ */

typedef struct seg {
    const char *text; /* static text (slice of rule->text) */
    size_t len;
    int conv; /* CONV_STATIC or a converter */
} seg;

static bool ident_ok(const char *s, size_t n)
{
    if (n == 0 || is_digit((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(is_digit(c) || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return false;
    }
    return true;
}

static int conv_lookup(const char *s, size_t n)
{
    for (int k = 0; k < NCONV; k++)
        if (strlen(conv_names[k]) == n && memcmp(conv_names[k], s, n) == 0)
            return k;
    return -1;
}

/* Fills rule->names/convs/parts and segs (nsegs entries, sized by the
 * caller from the number of '/'). Returns NULL or the error message. */
static const char *compile(cf_rule *rule, seg *segs, size_t *nsegs)
{
    const char *t = rule->text;
    size_t tlen = strlen(t);
    size_t ns = 0, static_from = 0;
    size_t pos = 1;

    rule->nparams = 0;
    rule->nparts = 0;
    for (;;) {
        const char *slash = memchr(t + pos, '/', tlen - pos);
        size_t end = slash ? (size_t)(slash - t) : tlen;
        const char *s = t + pos;
        size_t n = end - pos;

        if (ns > 0 && segs[ns - 1].conv == CONV_PATH)
            return "the path converter must be the last segment";

        int depth = 0, count = 0;
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '<') {
                if (depth)
                    return "unbalanced '<' or '>' in rule";
                depth = 1;
            } else if (s[i] == '>') {
                if (!depth)
                    return "unbalanced '<' or '>' in rule";
                depth = 0;
                count++;
            }
        }
        if (depth)
            return "unbalanced '<' or '>' in rule";
        if (count > 1 || (count == 1 && (s[0] != '<' || s[n - 1] != '>')))
            return "a converter must fill a whole segment, e.g. /a/<int:x>";

        if (count == 0) {
            segs[ns++] = (seg){s, n, CONV_STATIC};
        } else {
            const char *in = s + 1;
            size_t inlen = n - 2;
            const char *colon = memchr(in, ':', inlen);
            int conv = CONV_STRING;
            const char *name = in;
            size_t namelen = inlen;
            if (colon) {
                conv = conv_lookup(in, (size_t)(colon - in));
                if (conv < 0)
                    return "unknown converter (int, float, string, path, uuid)";
                name = colon + 1;
                namelen = inlen - (size_t)(colon - in) - 1;
            }
            if (!ident_ok(name, namelen))
                return "bad parameter name (letters, digits and '_', not starting with a digit)";
            if (rule->nparams == CF_MAX_PARAMS)
                return "too many parameters in rule (at most 16)";
            /* names_buf mirrors text, so cutting a NUL after the name there
             * turns the slice into a C string without another allocation. */
            size_t off = (size_t)(name - t);
            rule->names_buf[off + namelen] = '\0';
            const char *cname = rule->names_buf + off;
            for (size_t i = 0; i < rule->nparams; i++)
                if (strcmp(rule->names[i], cname) == 0)
                    return "duplicate parameter name in rule";
            /* the static text before this param, separators included */
            rule->parts[rule->nparts++] = (part){t + static_from, pos - static_from, 0};
            rule->parts[rule->nparts++] = (part){NULL, 0, rule->nparams};
            static_from = end;
            rule->names[rule->nparams] = cname;
            rule->convs[rule->nparams] = (unsigned char)conv;
            rule->nparams++;
            segs[ns++] = (seg){NULL, 0, conv};
        }
        if (!slash)
            break;
        pos = end + 1;
    }
    if (static_from < tlen || rule->nparts == 0)
        rule->parts[rule->nparts++] = (part){t + static_from, tlen - static_from, 0};
    *nsegs = ns;
    return NULL;
}

/* strdup is POSIX, not C11; this file needs nothing beyond libc. */
static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    return d ? memcpy(d, s, n) : NULL;
}

static cf_rule *fail(const char **errmsg, const char *msg)
{
    if (errmsg)
        *errmsg = msg;
    return NULL;
}

static void rule_free(cf_rule *rule)
{
    if (rule) {
        free(rule->text);
        free(rule->names_buf);
        free(rule);
    }
}

cf_router *cf_router_new(void) { return calloc(1, sizeof(cf_router)); }

void cf_router_free(cf_router *r)
{
    if (!r)
        return;
    node_free_children(&r->root);
    for (cf_rule *rule = r->rules, *next; rule; rule = next) {
        next = rule->next;
        rule_free(rule);
    }
    free(r);
}

cf_rule *cf_router_add(cf_router *r, const char *text, const char **errmsg)
{
    if (!r || !text)
        return fail(errmsg, "no router or rule given");
    if (text[0] != '/')
        return fail(errmsg, "a rule must start with '/'");
    for (cf_rule *rule = r->rules; rule; rule = rule->next)
        if (strcmp(rule->text, text) == 0)
            return rule;

    size_t nslash = 0;
    for (const char *p = text; *p; p++)
        nslash += *p == '/';
    cf_rule *rule = calloc(1, sizeof *rule);
    seg *segs = malloc(nslash * sizeof *segs);
    if (rule) {
        rule->text = dup_str(text);
        rule->names_buf = dup_str(text);
    }
    if (!rule || !segs || !rule->text || !rule->names_buf) {
        rule_free(rule);
        free(segs);
        return fail(errmsg, "out of memory");
    }
    size_t nsegs;
    const char *msg = compile(rule, segs, &nsegs);
    if (msg) {
        rule_free(rule);
        free(segs);
        return fail(errmsg, msg);
    }

    /* Nodes created before an allocation failure stay behind empty; they
     * cannot match anything without a rule, so the router stays correct. */
    node *n = &r->root;
    for (size_t i = 0; i < nsegs && n; i++) {
        if (segs[i].conv == CONV_STATIC) {
            n = add_static(n, segs[i].text, segs[i].len);
        } else {
            node **c = &n->conv[segs[i].conv];
            if (!*c)
                *c = calloc(1, sizeof **c);
            n = *c;
        }
    }
    free(segs);
    if (!n) {
        rule_free(rule);
        return fail(errmsg, "out of memory");
    }
    if (n->rule)
        rule->shadowed_by = n->rule;
    else
        n->rule = rule;
    if (r->last)
        r->last->next = rule;
    else
        r->rules = rule;
    r->last = rule;
    return rule;
}

void cf_rule_set_data(cf_rule *rule, void *data) { rule->data = data; }
void *cf_rule_data(const cf_rule *rule) { return rule->data; }
const char *cf_rule_text(const cf_rule *rule) { return rule->text; }
size_t cf_rule_nparams(const cf_rule *rule) { return rule->nparams; }
cf_rule *cf_rule_shadowed_by(const cf_rule *rule) { return rule->shadowed_by; }

const char *cf_rule_param_name(const cf_rule *rule, size_t i)
{
    return i < rule->nparams ? rule->names[i] : NULL;
}

bool cf_rule_has_param(const cf_rule *rule, const char *name)
{
    for (size_t i = 0; i < rule->nparams; i++)
        if (strcmp(rule->names[i], name) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------------------ */
/* Matcher                                                             */
/* ------------------------------------------------------------------ */

/* The search state that does not change while descending. With `virt` the
 * path is read as if a '/' followed it, which is how the trailing-slash
 * redirect is found without copying the path. */
typedef struct mctx {
    const char *p;
    size_t len;
    bool virt;
    cf_match *m;
} mctx;

static bool found(const mctx *c, cf_rule *rule, size_t k)
{
    c->m->rule = rule;
    c->m->nparams = k;
    for (size_t i = 0; i < k; i++)
        c->m->params[i].name = rule->names[i];
    return true;
}

/* The segment under `n` starts at byte `pos` (just after a '/'). */
static bool match_node(const mctx *c, const node *n, size_t pos, size_t k)
{
    const char *p = c->p;
    size_t len = c->len, end, next = 0;
    bool last;
    const char *slash = pos < len ? memchr(p + pos, '/', len - pos) : NULL;

    if (slash) {
        end = (size_t)(slash - p);
        last = false;
        next = end + 1;
    } else if (c->virt && pos <= len) {
        end = len; /* the imagined '/' sits at len */
        last = false;
        next = len + 1;
    } else {
        /* real end of path, or the empty segment after the imagined '/' */
        if (pos > len)
            pos = len;
        end = len;
        last = true;
    }
    const char *s = p + pos;
    size_t slen = end - pos;

    const node *child = n->nstatic ? find_static(n, s, slen) : NULL;
    if (child) {
        if (last ? child->rule != NULL : match_node(c, child, next, k))
            return last ? found(c, child->rule, k) : true;
    }
    if (slen == 0 || k == CF_MAX_PARAMS)
        return false; /* no converter matches an empty segment */
    for (int conv = CONV_INT; conv <= CONV_STRING; conv++) {
        child = n->conv[conv];
        if (!child || !conv_check(conv, s, slen))
            continue;
        c->m->params[k].value = s;
        c->m->params[k].len = slen;
        if (last ? child->rule != NULL : match_node(c, child, next, k + 1))
            return last ? found(c, child->rule, k + 1) : true;
    }
    /* path takes the rest; a path rule never ends in '/', so it can't be a
     * redirect target */
    child = n->conv[CONV_PATH];
    if (child && child->rule && !c->virt && conv_path(s, len - pos)) {
        c->m->params[k].value = s;
        c->m->params[k].len = len - pos;
        return found(c, child->rule, k + 1);
    }
    return false;
}

int cf_router_match(const cf_router *r, const char *path, size_t len, cf_match *m)
{
    if (len == 0 || path[0] != '/')
        return 0;
    mctx c = {path, len, false, m};
    if (match_node(&c, &r->root, 1, 0))
        return 1;
    /* Only misses pay for the second pass. */
    c.virt = true;
    if (match_node(&c, &r->root, 1, 0))
        return 2;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Builder                                                             */
/* ------------------------------------------------------------------ */

typedef struct sbuf {
    char *out;
    size_t cap, n;
} sbuf;

static inline void put(sbuf *b, char ch)
{
    if (b->n + 1 < b->cap)
        b->out[b->n] = ch;
    b->n++;
}

/* Kept as-is: unreserved characters plus the sub-delims, ':' and '@' that
 * RFC 3986 allows in a path segment (werkzeug's safe set). Everything else,
 * notably space, '?', '#' and '%', is percent-encoded so the built URL
 * decodes back to exactly the value. */
static bool safe_char(unsigned char c, bool keep_slash)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c))
        return true;
    if (c == '/')
        return keep_slash;
    return c && strchr("-._~!$&'()*+,;=:@", c) != NULL;
}

static void put_encoded(sbuf *b, const char *s, size_t n, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (safe_char(ch, keep_slash)) {
            put(b, (char)ch);
        } else {
            put(b, '%');
            put(b, hex[ch >> 4]);
            put(b, hex[ch & 15]);
        }
    }
}

int cf_rule_build(const cf_rule *rule, const char *(*get)(void *ctx, const char *name),
                  void *ctx, char *out, size_t outlen)
{
    sbuf b = {out, outlen, 0};
    for (size_t i = 0; i < rule->nparts; i++) {
        const part *pt = &rule->parts[i];
        if (pt->text) {
            /* static text matches the decoded path, so it is encoded too */
            put_encoded(&b, pt->text, pt->len, true);
            continue;
        }
        const char *v = get(ctx, rule->names[pt->param]);
        if (!v)
            return -1;
        int conv = rule->convs[pt->param];
        size_t vlen = strlen(v);
        if (!conv_check(conv, v, vlen))
            return -1;
        put_encoded(&b, v, vlen, conv == CONV_PATH);
    }
    if (b.n > INT_MAX)
        return -1;
    if (outlen)
        out[b.n < outlen ? b.n : outlen - 1] = '\0';
    return (int)b.n;
}
