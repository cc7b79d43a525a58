/*
 * tpl_ast.h — the template engine's own insides, shared by its files and
 * nobody else: tokens (tpl_lex.c), the tree templates compile to
 * (tpl_parse.c), the environment (tpl_env.c) and one render's state
 * (tpl_rt.c, tpl_render.c, tpl_stmt.c). tpl.h is the interface.
 */
#ifndef CF_APP_TPL_AST_H
#define CF_APP_TPL_AST_H

#include "app/tpl.h"

#include <string.h>

/* ---- limits ----------------------------------------------------------------- */

#define TPL_MAX_NEST 100            /* parser: nested blocks, brackets, tree height */
#define TPL_MAX_DEPTH 100           /* render: nested includes, macro calls, blocks */
#define TPL_MAX_OUTPUT (64u << 20)  /* bytes in any one output buffer */
#define TPL_MAX_MEMORY (256u << 20) /* bytes one render may allocate */
#define TPL_RANGE_ITEM_STEPS 4      /* a range() item costs as much (JSON memory) */
#define TPL_MAX_STEPS 10000000u     /* loop iterations and calls per render */
#define TPL_MAX_RANGE 100000        /* items range() makes */
/* Stack use of a render. On a coroutine (the server's 64 KiB stacks) a
 * render stops recursing while TPL_STACK_RESERVE bytes are still free, for
 * the frames that report its error; on a thread's own stack (carafe-render,
 * threaded routes) it may use TPL_STACK_BUDGET. Sanitizers make frames
 * several times larger. */
#if defined(__SANITIZE_ADDRESS__)
#define TPL_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TPL_SANITIZED 1
#endif
#endif
#ifdef TPL_SANITIZED
#define TPL_STACK_BUDGET (400u << 10)
#define TPL_STACK_RESERVE (32u << 10)
#else
#define TPL_STACK_BUDGET (256u << 10)
#define TPL_STACK_RESERVE (12u << 10)
#endif

/* ---- tokens ----------------------------------------------------------------- */

typedef enum tpl_tok_kind {
    TK_EOF,
    TK_DATA,
    TK_VAR_BEGIN,
    TK_VAR_END,
    TK_BLOCK_BEGIN,
    TK_BLOCK_END,
    TK_NAME,
    TK_STRING,
    TK_INT,
    TK_FLOAT,
    TK_OP,
} tpl_tok_kind;

typedef enum tpl_opc {
    OP_NONE,
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_TILDE,
    OP_LBRACKET, OP_RBRACKET, OP_LPAREN, OP_RPAREN, OP_LBRACE, OP_RBRACE,
    OP_EQ, OP_NE, OP_GT, OP_GE, OP_LT, OP_LE, OP_ASSIGN, OP_DOT, OP_COLON,
    OP_PIPE, OP_COMMA, OP_SEMICOLON,
} tpl_opc;

typedef struct tpl_tok {
    uint8_t kind; /* tpl_tok_kind */
    uint8_t op;   /* TK_OP: tpl_opc */
    int line, col;
    const char *s; /* TK_DATA, TK_NAME, TK_STRING (decoded): in the env's arena */
    size_t len;
    int64_t i;
    double f;
} tpl_tok;

typedef struct tpl_toks {
    tpl_tok *v;
    size_t n, cap;
} tpl_toks;

/* Tokenize src (already newline-normalized, NUL-terminated, in the env's
 * arena). 0, or -1 with *line, *col and msg set. */
int tpl_lex(tpl_env *env, const char *src, size_t len, tpl_toks *out, int *line, int *col,
            char *msg, size_t cap);

/* ---- the tree ----------------------------------------------------------------- */

typedef enum tpl_node_kind {
    /* expressions */
    N_CONST,   /* value */
    N_NAME,    /* name */
    N_GETATTR, /* a.name */
    N_GETITEM, /* a[b] */
    N_SLICE,   /* a[b:c:d] (NULL parts are None) */
    N_CALL,    /* a(args) */
    N_FILTER,  /* a|name(args) */
    N_TEST,    /* a is name(args) */
    N_NOT, N_NEG, N_POS,
    N_AND, N_OR,
    N_BINOP,   /* op, a, b */
    N_COMPARE, /* a, then args: N_CMPOP (op, a) */
    N_CMPOP,
    N_COND,    /* b if a else c */
    N_LIST, N_TUPLE, /* args */
    N_DICT,    /* args: N_PAIR (a key, b value) */
    N_PAIR,
    N_KWARG,   /* name=a, in call argument lists */
    /* statements */
    S_DATA,      /* name/len: the text */
    S_OUTPUT,    /* a */
    S_IF,        /* a cond, body, orelse */
    S_FOR,       /* target, a iterable, b filter, body, orelse; flag recursive */
    S_SET,       /* target, a */
    S_SETBLOCK,  /* target, body, b filter chain (on an N_CONST placeholder) */
    S_BLOCK,     /* name, body; flag scoped */
    S_EXTENDS,   /* a */
    S_INCLUDE,   /* a; flags */
    S_IMPORT,    /* a, name (alias); flags */
    S_FROM,      /* a, args: N_PAIR-less list of N_NAME (name, alias in str) */
    S_MACRO,     /* name, args: N_NAME params (a = default), body */
    S_CALLBLOCK, /* a the call, args params, body */
    S_FILTERBLOCK, /* b filter chain on a placeholder, body */
    S_AUTOESCAPE,  /* a, body */
    S_WITH,        /* args: N_KWARG-like assignments (target in name, a value), body */
} tpl_node_kind;

#define NF_RECURSIVE 1u      /* for ... recursive */
#define NF_SCOPED 2u         /* block scoped */
#define NF_IGNORE_MISSING 4u /* include ignore missing */
#define NF_WITH_CONTEXT 8u   /* import/include with context */
#define NF_NEGATE 16u        /* is not */
#define NF_PLACEHOLDER 32u   /* the filter-block's input */
#define NF_REQUIRED 64u      /* block required */
#define NF_VARARGS 128u      /* a macro whose body uses varargs */
#define NF_KWARGS 256u       /* ... kwargs */
#define NF_CALLER 512u       /* ... caller */

typedef struct tpl_reg tpl_reg;

typedef struct tpl_node tpl_node;
struct tpl_node {
    uint8_t kind;  /* tpl_node_kind */
    uint8_t op;    /* N_BINOP, N_CMPOP: tv_op */
    uint16_t flags;
    uint16_t height; /* of an expression tree: bounds the renderer's recursion */
    uint16_t nargs, nkw;
    int line;
    tpl_node *next; /* the next statement, argument, item */
    tpl_node *a, *b, *c;
    tpl_node *args;    /* arguments, items, parameters (linked by next) */
    tpl_node *target;  /* for/set: N_NAME, N_TUPLE of N_NAME, or N_GETATTR (ns.x) */
    tpl_node *body, *orelse;
    const char *name;  /* interned; S_DATA: the text */
    const char *alias; /* import/from: the local name (interned) */
    size_t len;
    tv value; /* N_CONST */
    tpl_filter_fn filter;
    tpl_test_fn test;
    const tpl_reg *reg; /* a registered filter */
};

/* A template's blocks, found at compile time. */
typedef struct tpl_blockdef {
    const char *name;
    const tpl_node *node;
    struct tpl_blockdef *next;
} tpl_blockdef;

typedef struct tpl_template {
    const char *name;
    tpl_node *body;
    tpl_blockdef *blocks;
    bool autoescape;
} tpl_template;

struct tpl_reg {
    const char *name;
    bool filter;
    tpl_ext_fn fn;
    void *arg;
    tpl_reg *next;
};

struct tpl_env {
    cf_arena arena;           /* every template's tokens' text and tree */
    tpl_template **tpls;      /* open addressing by name */
    size_t ntpls, tcap;
    const char **names;       /* interned names, open addressing */
    size_t nnames, ncap;
    tpl_reg *regs;
    /* interned names the renderer binds itself */
    const char *n_loop, *n_super, *n_caller, *n_self, *n_varargs, *n_kwargs;
};

const char *tpl_intern(tpl_env *env, const char *s, size_t n);
void *tpl_env_alloc(tpl_env *env, size_t n);
const tpl_template *tpl_env_find(const tpl_env *env, const char *name);
const tpl_reg *tpl_env_find_reg(const tpl_env *env, bool filter, const char *name);
/* Keep a JSON value made at compile time until the env is freed. */
void tpl_env_keep(tpl_env *env, json_t *j);

/* Parse toks into t (name already set). 0, or -1 with *line, *col, msg.
 * lex_failed: the lexer failed where toks end; 1 when its error stands
 * (the parser met none before). */
int tpl_parse(tpl_env *env, tpl_template *t, const tpl_toks *toks, bool lex_failed, int *line, int *col,
              char *msg, size_t cap);


/* ---- the parser's shared parts (tpl_parse.c expressions, tpl_stmt.c statements) -- */

typedef struct tpl_parser {
    tpl_env *env;
    tpl_template *tpl;
    const tpl_tok *t;
    size_t n, i;
    int depth;
    bool failed, soft;
    size_t fail_index; /* the token the parser failed at */
    unsigned uses; /* NF_VARARGS, NF_KWARGS, NF_CALLER seen in the macro body being parsed */
    char *msg;
    size_t cap;
    int line, col;
    /* the first compile error found in a parsed tree (unknown filter or
     * test, a block defined twice), reported once parsing succeeded */
    bool late, late_block;
    int late_line, late_col;
    char late_msg[200];
    /* open tags and the end tags they wait for, for "unexpected end" */
    const char *tags[TPL_MAX_NEST + 2];
    const char *const *ends[TPL_MAX_NEST + 2];
    int ntags, nends;
} tpl_parser;

static inline const tpl_tok *tp_cur(const tpl_parser *p) { return &p->t[p->i]; }
static inline const tpl_tok *tp_peek(const tpl_parser *p) { return &p->t[p->i + 1 < p->n ? p->i + 1 : p->i]; }
static inline const tpl_tok *tp_next(tpl_parser *p)
{
    const tpl_tok *t = &p->t[p->i];
    if (p->i + 1 < p->n)
        p->i++;
    return t;
}
static inline bool tp_is_op(const tpl_tok *t, tpl_opc op) { return t->kind == TK_OP && t->op == op; }
static inline bool tp_is_name(const tpl_tok *t, const char *s) { return t->kind == TK_NAME && strcmp(t->s, s) == 0; }

void *tp_fail_at(tpl_parser *p, int line, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#define TP_FAIL(p, tok, ...) tp_fail_at((p), (tok)->line, (tok)->col, __VA_ARGS__)
const char *tp_describe(const tpl_tok *t);
bool tp_expect_kind(tpl_parser *p, tpl_tok_kind kind, const char *what);
bool tp_expect_op(tpl_parser *p, tpl_opc op);
bool tp_expect_name(tpl_parser *p, const char *name);
tpl_node *tp_node(tpl_parser *p, tpl_node_kind kind, int line);
tpl_node *tp_seal(tpl_parser *p, tpl_node *n);
tpl_node *tp_mk(tpl_parser *p, tpl_node_kind kind, int line, tpl_node *a, tpl_node *b);
void tp_append(tpl_node **head, tpl_node **tail, tpl_node *x);
tpl_node *tp_expression(tpl_parser *p, bool with_condexpr);
tpl_node *tp_tuple(tpl_parser *p, bool simplified, bool with_condexpr, const char *extra_end,
                   bool explicit_parens);
tpl_node *tp_primary(tpl_parser *p);
/* `|f(args)|g` applied to n; start_inline: the first `|` is implied. */
tpl_node *tp_filters(tpl_parser *p, tpl_node *n, bool start_inline);

/* ---- one render ------------------------------------------------------------------ */

typedef struct tpl_var {
    const char *name; /* interned */
    tv value;
} tpl_var;

/* Variables of one level (template, loop iteration, macro call, block);
 * the root of a render also looks into the context object. */
typedef struct tpl_scope {
    struct tpl_scope *parent;
    json_t *ctx;
    tpl_var *vars;
    uint32_t n, cap;
    tpl_var inline_vars[4];
} tpl_scope;

/* One template being rendered: its variables, the blocks of its
 * inheritance chain (most derived first), the parent it extends. */
typedef struct tpl_bitem {
    const tpl_node *node;
    const tpl_template *tpl;
    struct tpl_bitem *next;
} tpl_bitem;

typedef struct tpl_bchain {
    const char *name;
    tpl_bitem *first, *last;
    struct tpl_bchain *next;
} tpl_bchain;

typedef struct tpl_tstate {
    const tpl_template *tpl;
    tpl_scope *root;
    tpl_bchain *chains;
    const tpl_template *parent; /* set by extends, not yet rendered */
} tpl_tstate;

/* Where a statement runs. */
typedef struct tpl_ctx {
    tpl_scope *scope;
    tpl_tstate *ts;
    const tpl_template *tpl; /* whose nodes these are (for errors) */
    bool toplevel;           /* the template's own body: silent once it extends */
    const tv *placeholder;   /* a filter block's body, the input of its filters */
} tpl_ctx;

struct tpl_rt {
    cf_arena *arena;
    const tpl_env *env;
    const tpl_host *host;
    json_t **kept;
    size_t nkept, capkept;
    size_t allocated;
    size_t steps;
    int depth;
    bool autoescape;
    bool failed;
    const char *tname; /* the template being rendered, for messages */
    int line;
    const char *stack_base;
    char err[512];
};

void tpl_rt_init(tpl_rt *rt, const tpl_env *env, const tpl_host *host, cf_arena *arena);
void tpl_rt_done(tpl_rt *rt);
/* Count one step (loop iteration, call): -1 after an error past the budget. */
int tpl_rt_step(tpl_rt *rt);
/* -1 after an error when the render is too deep (calls or stack). */
int tpl_rt_enter(tpl_rt *rt);
/* -1 after an error when the render used its stack budget (or failed). */
int tpl_rt_check_stack(tpl_rt *rt);
static inline void tpl_rt_leave(tpl_rt *rt) { rt->depth--; }

void tpl_scope_init(tpl_scope *s, tpl_scope *parent, json_t *ctx);
tpl_scope *tpl_scope_new(tpl_rt *rt, tpl_scope *parent, json_t *ctx);
void tpl_scope_set(tpl_rt *rt, tpl_scope *s, const char *name, tv v);
/* Only s itself, not its parents. */
bool tpl_scope_get_own(const tpl_scope *s, const char *name, tv *out);

/* tpl_render.c */
int tpl_eval(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tv *out);
int tpl_call_value(tpl_rt *rt, tv fn, const tv *args, size_t nargs, const tpl_kwarg *kw,
                   size_t nkw, tv *out);
int tpl_render_list(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tpl_buf *out);
/* tpl_stmt.c */
int tpl_render_stmt(tpl_rt *rt, tpl_ctx *c, const tpl_node *n, tpl_buf *out);
int tpl_render_template(tpl_rt *rt, const tpl_template *t, tpl_scope *scope, tpl_buf *out,
                        tpl_tstate **ts_out);
/* A call node, with `caller` (a macro) passed as a keyword when given. */
int tpl_eval_call(tpl_rt *rt, tpl_ctx *c, const tpl_node *call, const tv *caller, tv *out);
tv tpl_self_object(tpl_rt *rt, tpl_tstate *ts);
/* {% set ns.attr = v %} */
int tpl_ns_assign(tpl_rt *rt, tv ns, const char *attr, tv v);
/* Python's type name of v, for messages. */
const char *tpl_type_name(tv v);

#endif
