/*
 * router.h — URL rules: compiling "/user/<int:id>"-style rules into a trie,
 * matching request paths against it, and building paths back from
 * parameters (the machinery under cf_route and cf_url_for).
 *
 * The router is plain libc and knows nothing about methods, handlers or
 * requests: a rule carries one opaque data pointer, and the app layer hangs
 * its per-method routes there. Adding rules allocates; matching never does,
 * because it runs once per request on the hot path. A router is not
 * thread-safe for adds, but concurrent matches on a finished router are fine
 * (matching only reads).
 *
 * Matching semantics (werkzeug's, which Flask users already know):
 *   - a rule is a sequence of '/'-separated segments, each either static
 *     text or a whole "<conv:name>" / "<name>" parameter;
 *   - converters: int (ASCII digits, fits int64), float (digits.digits),
 *     uuid (8-4-4-4-12 hex), string (default; non-empty, no '/'), path
 *     (the rest of the path, '/' included, non-empty, not starting with '/');
 *   - at every segment static text beats int/float/uuid, which beat string,
 *     which beats path, whatever the registration order; when a branch
 *     fails further down the matcher backtracks to the next candidate;
 *   - "/items/" matches only "/items/"; "/items" then reports 2 so the
 *     caller can answer 308 to "/items/".
 */
#ifndef CF_APP_ROUTER_H
#define CF_APP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#define CF_MAX_PARAMS 16

typedef struct cf_router cf_router;
typedef struct cf_rule cf_rule; /* one compiled rule, owned by the router */

typedef struct cf_match {
    cf_rule *rule;
    size_t nparams;
    struct {
        const char *name;  /* from the rule, NUL-terminated, lives with it */
        const char *value; /* slice of the matched path, NOT NUL-terminated */
        size_t len;
    } params[CF_MAX_PARAMS];
} cf_match;

/* A new, empty router; NULL when out of memory. */
cf_router *cf_router_new(void);
/* Free the router and every rule it owns (NULL is fine). Rule data pointers
 * are not touched: they belong to whoever set them. */
void cf_router_free(cf_router *r);

/* Compile and add `rule`. Adding the same rule text twice returns the same
 * cf_rule (routes with different methods share a rule). Returns NULL and
 * sets *errmsg (a static string; errmsg may be NULL) on an invalid rule or
 * when out of memory; the router is then unchanged. */
cf_rule *cf_router_add(cf_router *r, const char *rule, const char **errmsg);

void cf_rule_set_data(cf_rule *rule, void *data);
void *cf_rule_data(const cf_rule *rule);
/* The rule's text as given to cf_router_add. */
const char *cf_rule_text(const cf_rule *rule);
bool cf_rule_has_param(const cf_rule *rule, const char *name);
/* Number of parameters and the name of parameter i (in rule order). */
size_t cf_rule_nparams(const cf_rule *rule);
const char *cf_rule_param_name(const cf_rule *rule, size_t i);
/* Rules with different text can accept exactly the same paths
 * ("/a/<x>" and "/a/<string:y>"); the first one added always wins. For a
 * rule that is shadowed that way this returns the earlier rule (the app can
 * warn at start-up), otherwise NULL. */
cf_rule *cf_rule_shadowed_by(const cf_rule *rule);

/* Match a percent-decoded path of `len` bytes (need not be NUL-terminated).
 * Returns 1 and fills *m on a match; 2 when nothing matches but path + "/"
 * matches a rule ending in "/" (*m then describes that rule; the caller
 * answers 308 to path + "/"); 0 otherwise. Never allocates. */
int cf_router_match(const cf_router *r, const char *path, size_t len, cf_match *m);

/* Build the path of `rule`: get(ctx, name) returns the value of a parameter
 * (NULL if missing). Values are checked against their converter (int:
 * digits fitting int64; float: digits.digits; uuid; string: non-empty, no
 * '/'; path: non-empty, not starting with '/') and percent-encoded (the path
 * converter keeps '/'). Writes a NUL-terminated path to out and returns its
 * length; returns -1 if a parameter is missing or invalid; if outlen is too
 * small returns the length needed (without the NUL), like snprintf, and out
 * holds a truncated, NUL-terminated prefix. */
int cf_rule_build(const cf_rule *rule, const char *(*get)(void *ctx, const char *name),
                  void *ctx, char *out, size_t outlen);

#endif
