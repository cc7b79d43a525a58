/*
 * tpl.h — the template engine's internal interface: a compatible subset of
 * Jinja2 (docs/templates.md lists what is supported and every difference).
 *
 * Three parts, each in its own files:
 *   - the engine (tpl_lex.c, tpl_parse.c, tpl_render.c, tpl_env.c): a folder
 *     of templates compiled once into trees, rendered by walking them;
 *   - values (tpl_value.c): Python's semantics for what templates compute
 *     with — truth, str(), arithmetic, comparisons, attributes and items,
 *     the methods templates call on dicts, lists and strings;
 *   - builtin filters and tests (tpl_filters.c).
 * The engine knows no request: request-aware globals come from the host
 * (render.c for cf_render, tools/carafe_render.c for the command line).
 */
#ifndef CF_APP_TPL_H
#define CF_APP_TPL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

/* ---- one render ------------------------------------------------------------ */

/* The state of one render: its arena (everything a render allocates lives
 * there and ends with it), the JSON values it made (released at its end),
 * whether output is autoescaped, and the first error. */
typedef struct tpl_rt tpl_rt;

void *tpl_alloc(tpl_rt *rt, size_t n);           /* never NULL (aborts like cf_alloc) */
char *tpl_strndup(tpl_rt *rt, const char *s, size_t n); /* NUL-terminated copy */
/* Take a new reference made during the render: released when it ends.
 * Returns j (NULL stays NULL). */
json_t *tpl_keep(tpl_rt *rt, json_t *j);
/* Record the error (the first one wins; the engine adds "name:line: ")
 * and return -1. */
int tpl_error(tpl_rt *rt, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool tpl_autoescape(const tpl_rt *rt);

/* ---- output ---------------------------------------------------------------- */

/* A growing byte buffer in the render's arena. */
typedef struct tpl_buf {
    tpl_rt *rt;
    char *data;
    size_t len, cap;
} tpl_buf;

void tpl_buf_init(tpl_buf *b, tpl_rt *rt);
void tpl_buf_put(tpl_buf *b, const char *s, size_t n);
void tpl_buf_puts(tpl_buf *b, const char *s);
void tpl_buf_putc(tpl_buf *b, char c);
/* markupsafe's escape: & < > " ' as &amp; &lt; &gt; &#34; &#39; */
void tpl_buf_put_escaped(tpl_buf *b, const char *s, size_t n);
/* NUL-terminate and return data (never NULL: "" when empty). */
const char *tpl_buf_cstr(tpl_buf *b);

/* ---- values ---------------------------------------------------------------- */

typedef enum tv_kind {
    TV_UNDEF,  /* a name or attribute that does not exist (Jinja's Undefined) */
    TV_NONE,
    TV_BOOL,
    TV_INT,
    TV_FLOAT,
    TV_STR,    /* UTF-8, NUL-terminated, len bytes; `safe` = Markup */
    TV_ARRAY,  /* a JSON array (Python list; tuples are arrays too) */
    TV_OBJECT, /* a JSON object (Python dict, insertion order) */
    TV_OPAQUE, /* an engine object: macro, loop, callable, namespace, ... */
} tv_kind;

typedef struct tv {
    tv_kind kind;
    bool safe; /* TV_STR: already HTML, not escaped again */
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *s;
            size_t len;
        } str;
        json_t *json; /* TV_ARRAY / TV_OBJECT: borrowed, alive for the render */
        struct {
            const struct tpl_opaque_type *type;
            void *ptr;
        } op;
        const char *undef_name; /* TV_UNDEF: what was looked up, for errors */
    };
} tv;

struct tpl_kwarg; /* defined below; named here for the call hook */

/* An engine object's behaviour; any hook may be NULL. */
typedef struct tpl_opaque_type {
    const char *name; /* "macro", "loop", ... for messages and str() */
    int (*getattr)(tpl_rt *rt, void *ptr, const char *name, tv *out);
    int (*call)(tpl_rt *rt, void *ptr, const tv *args, size_t nargs, const struct tpl_kwarg *kw,
                size_t nkw, tv *out);
} tpl_opaque_type;

typedef struct tpl_kwarg {
    const char *name;
    tv value;
} tpl_kwarg;

static inline tv tv_undef(const char *name) { tv v = {.kind = TV_UNDEF, .undef_name = name}; return v; }
static inline tv tv_none(void) { tv v = {.kind = TV_NONE}; return v; }
static inline tv tv_bool(bool b) { tv v = {.kind = TV_BOOL, .b = b}; return v; }
static inline tv tv_int(int64_t i) { tv v = {.kind = TV_INT, .i = i}; return v; }
static inline tv tv_float(double f) { tv v = {.kind = TV_FLOAT, .f = f}; return v; }
static inline tv tv_strn(const char *s, size_t n, bool safe)
{
    tv v = {.kind = TV_STR, .safe = safe, .str = {s, n}};
    return v;
}

/* tpl_value.c. Every int function returns 0, or -1 after tpl_error. */

/* A JSON value as a template value (borrowed: strings point into j). An
 * object {"__html__": "<b>x</b>"} (cf_markup) is a safe string. */
tv tv_from_json(json_t *j);
/* A template value as JSON: a new reference kept by the render
 * (tpl_keep); undefined is null. */
json_t *tv_to_json(tpl_rt *rt, tv v);
bool tv_truthy(tv v);                       /* Python's bool(); undefined is false */
/* Python's str(v) appended to b (None, True, 1.5, 1e+16, [1, 'a'],
 * {'a': 1}; undefined is ""). */
int tv_str(tpl_rt *rt, tpl_buf *b, tv v);
int tv_repr(tpl_rt *rt, tpl_buf *b, tv v);  /* Python's repr() */
/* str(v) as a value (a string stays itself, safe flag kept). */
int tv_to_str(tpl_rt *rt, tv v, tv *out);
/* What {{ v }} writes: str(v), HTML-escaped when the render autoescapes
 * and v is not safe. */
int tv_output(tpl_rt *rt, tpl_buf *b, tv v);

typedef enum tv_op {
    TV_ADD, TV_SUB, TV_MUL, TV_DIV, TV_FLOORDIV, TV_MOD, TV_POW, TV_CONCAT, /* ~ */
    TV_NEG, TV_POS,                                                         /* unary: b unused */
    TV_EQ, TV_NE, TV_LT, TV_LE, TV_GT, TV_GE, TV_IN, TV_NOTIN,
} tv_op;
/* a OP b with Python's rules (int/float promotion, str + str, str * int,
 * list + list, floor division and modulo signs, 1/0 an error, comparing
 * undefined is an error except ==/!=; `in` on strings, lists and dict
 * keys). Results of comparisons are TV_BOOL. */
int tv_binop(tpl_rt *rt, tv_op op, tv a, tv b, tv *out);

/* Jinja's getattr (`v.name`: attribute, then item) and getitem
 * (`v[key]`: item, then attribute), incl. negative list indexes. A missing
 * one is TV_UNDEF (not an error); looking into an undefined value is the
 * error "'x' is undefined". */
int tv_getattr(tpl_rt *rt, tv v, const char *name, tv *out);
int tv_getitem(tpl_rt *rt, tv v, tv key, tv *out);
/* v[start:stop:step] (each may be TV_NONE), for lists and strings. */
int tv_slice(tpl_rt *rt, tv v, tv start, tv stop, tv step, tv *out);
/* len(v) for strings (code points), lists and dicts; an error otherwise. */
int tv_length(tpl_rt *rt, tv v, int64_t *out);
/* What `for x in v` iterates: a list's items, a dict's keys, a string's
 * characters; undefined iterates nothing. The items are written to *items
 * (in the render's arena), *n their count. */
int tv_iterate(tpl_rt *rt, tv v, tv **items, size_t *n);
/* A method call v.name(args): dict items/keys/values/get, str upper/lower/
 * strip/lstrip/rstrip/startswith/endswith/replace/split/join/title/
 * capitalize/count/find/format, list index/count. *found = false when v has
 * no such method (the engine then reports it). */
int tv_call_method(tpl_rt *rt, tv v, const char *name, const tv *args, size_t nargs,
                   const tpl_kwarg *kw, size_t nkw, tv *out, bool *found);

/* ---- filters and tests (tpl_filters.c) ------------------------------------- */

/* A filter gets the filtered value first: `x|f(a, b=c)` is f(x, a, b=c). */
typedef int (*tpl_filter_fn)(tpl_rt *rt, tv in, const tv *args, size_t nargs,
                             const tpl_kwarg *kw, size_t nkw, tv *out);
/* `x is t(a)`; *out is the answer. */
typedef int (*tpl_test_fn)(tpl_rt *rt, tv in, const tv *args, size_t nargs, bool *out);

tpl_filter_fn tpl_builtin_filter(const char *name); /* NULL: no such filter */
tpl_test_fn tpl_builtin_test(const char *name);     /* NULL: no such test */

/* ---- the engine (tpl_env.c, tpl_render.c) ---------------------------------- */

/* A C function a template can call as a global or a filter (the public
 * cf_template_fn, with the host's data): args is a JSON array (for a
 * filter, the filtered value first), kwargs a JSON object. Returns a new
 * reference, or NULL for an error (the render fails naming the function). */
typedef json_t *(*tpl_ext_fn)(void *host, json_t *args, json_t *kwargs, void *arg);

/* Names the host provides at render time (request, session, g, config,
 * url_for, ...), looked up only when a template uses them and not found in
 * the context. Return a borrowed JSON value (kept alive for the render) or
 * NULL. */
typedef struct tpl_host {
    void *data; /* passed to lookup and to every tpl_ext_fn */
    json_t *(*lookup)(void *data, const char *name);
} tpl_host;

typedef struct tpl_env tpl_env;

tpl_env *tpl_env_new(void);
void tpl_env_free(tpl_env *env);
/* Compile every file under dir (recursively; names relative to dir with
 * '/', e.g. "auth/login.html"). On a syntax error: -1 with
 * "file:line:col: message" in err (file as given: dir/name). */
int tpl_env_load_dir(tpl_env *env, const char *dir, char *err, size_t cap);
/* Compile one template from memory (tests, fuzzing). Same errors. */
int tpl_env_add(tpl_env *env, const char *name, const char *src, size_t len, char *err,
                size_t cap);
bool tpl_env_has(const tpl_env *env, const char *name);
/* Register a C global or filter (replaces a builtin of the same name). */
int tpl_env_register(tpl_env *env, bool filter, const char *name, tpl_ext_fn fn, void *arg);

/* Render template `name` with the variables of ctx (a JSON object or NULL;
 * borrowed). The output goes to *out and *outlen in arena (NUL-terminated).
 * On failure: -1 with "name:line: message" in err. Autoescaping is on for
 * names ending in .html .htm .xml .xhtml .svg (Flask's choice). */
int tpl_render(const tpl_env *env, const char *name, json_t *ctx, const tpl_host *host,
               cf_arena *arena, const char **out, size_t *outlen, char *err, size_t cap);

/* ---- appended by the values helper ------------------------------------------ */

/* A Python tuple over the JSON array arr: a TV_ARRAY with `safe` set
 * (`safe` means "tuple" on arrays). It prints as (1, 2), (1,) and (), is
 * never equal to a list, and keeps being a tuple inside other values: as
 * JSON (tv_to_json) it is {"__tuple__": [...]}, which tv_from_json reads
 * back as a tuple. dict.items(), |items, |dictsort and |groupby make
 * tuples; the engine should make tuple literals with it. */
static inline tv tv_tuple(json_t *arr)
{
    tv v = {.kind = TV_ARRAY, .safe = true, .json = arr};
    return v;
}

#endif
