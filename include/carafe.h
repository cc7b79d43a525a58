/*
 * carafe.h — the whole public API of Carafe, an async-first, Flask-shaped web
 * framework for C.
 *
 * Every handler, hook and error handler runs as a coroutine on its worker's
 * event loop. A Carafe call that waits (cf_sleep, cf_await, cf_to_thread, ...)
 * suspends only the calling coroutine; the worker serves other requests in
 * the meantime. Handlers read like blocking code and never free what Carafe
 * hands them: request memory lives in a per-request arena released in one
 * step after the teardown hooks.
 *
 * Conventions: functions that can fail return 0 or a negative CF_E* code
 * (cf_strerror explains it), or NULL. "Suspends" in a comment means the call
 * may switch to other coroutines before it returns.
 */
#ifndef CARAFE_H
#define CARAFE_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* C only: the set-up macros (cf_route, the hooks, ...) pick a function by
 * type with _Generic, and cf_db_query and the awaits pass their arguments
 * as compound-literal arrays; C++ has neither. */
#ifdef __cplusplus
#error "carafe.h is C only (C11 or later): write the code that uses Carafe in C"
#endif

/* The library is built with hidden visibility: what this header declares is
 * all that libcarafe.so exports. */
#pragma GCC visibility push(default)

#define CF_VERSION "0.1.0"

/* printf-style format checks where the compiler has them (GCC, clang); the
 * header stays plain C11 for the others. */
#ifdef __GNUC__
#define CF__PRINTF(fmt, first) __attribute__((format(printf, fmt, first)))
#else
#define CF__PRINTF(fmt, first)
#endif

/* ------------------------------------------------------------------ */
/* Errors                                                             */
/* ------------------------------------------------------------------ */

enum {
    CF_OK = 0,
    CF_EINVAL = -22,      /* bad argument */
    CF_ENOMEM = -12,      /* out of memory */
    CF_ECANCELED = -125,  /* the waiting task was cancelled (client gone) */
    CF_ETIMEDOUT = -110,  /* a timeout given to an await expired */
    CF_EPERM = -1,        /* not allowed here (e.g. await on a pool thread) */
    CF_EFAIL = -1000,     /* a task or handler reported failure */
    CF_ENOTFOUND = -1001, /* no such item (route name, header, ...) */
    CF_EJSON = -1002,     /* body is not valid JSON or has the wrong type */
    CF_ECLOSED = -1003,   /* the WebSocket is closed */
};

/* A static English description of a CF_E* code. */
const char *cf_strerror(int code);

/* ------------------------------------------------------------------ */
/* Applications and routes                                            */
/* ------------------------------------------------------------------ */

typedef struct cf_app cf_app;     /* routes, hooks, options; one per program */
typedef struct cf_req cf_req;     /* one request and its response */
typedef struct cf_route cf_route; /* one URL rule bound to a handler */
typedef struct cf_group cf_group; /* a blueprint: URL prefix + own hooks */

/* Handlers, hooks and error handlers all share this shape. A handler answers
 * by calling one of the response functions (cf_text, cf_json, ...), or
 * cf_abort to hand over to the error handler for a status code. Returning
 * without answering counts as a failure: the client gets a 500. */
typedef void (*cf_handler)(cf_req *rq);

/* Middleware wraps handlers: it runs in place of the handler and calls
 * cf_next(rq) to run the rest of the chain (further middleware, then the
 * handler); code after cf_next sees the response. Not calling cf_next
 * short-circuits the handler. */
typedef void (*cf_middleware)(cf_req *rq);

/* A new application with default options. Free it with cf_app_free after
 * cf_run returns (or after tests). */
cf_app *cf_app_new(void);
void cf_app_free(cf_app *app);

/* Most set-up functions take either the app or a group (a blueprint, below):
 * CF_GROUP(x) turns an app into its root group and leaves a group as is. */
cf_group *cf_app_group(cf_app *app);
static inline cf_group *cf__group_id(cf_group *g) { return g; }
#define CF_GROUP(x) _Generic((x), cf_app *: cf_app_group, \
                             cf_group *: cf__group_id)(x)

/* Register `handler` for `methods` ("GET", "GET,POST", or "*" for any) on
 * `rule`, e.g. "/user/<int:id>". Converters: int, float, string (the
 * default: one non-empty segment without '/'), path (the rest of the path,
 * slashes included), uuid; a converter fills a whole segment. Static
 * segments win over converters, path converters lose to all others. A rule
 * ending in "/" also answers its form without the slash by a 308 redirect.
 * The route's name for cf_url_for is the handler's identifier (change it
 * with cf_route_set_name). HEAD is answered by the GET handler without the
 * body, OPTIONS automatically with Allow. On an invalid rule the program
 * stops with a message: routes are set up at start-up, where failing
 * loudly is the useful behaviour. */
#define cf_route(app_or_group, methods, rule, handler) \
    cf_route_add(CF_GROUP(app_or_group), (methods), (rule), (handler), #handler)
cf_route *cf_route_add(cf_group *group, const char *methods, const char *rule,
                       cf_handler handler, const char *name);

/* Per-route settings. */
void cf_route_set_name(cf_route *route, const char *name);
/* Largest accepted body for this route in bytes (413 above it). */
void cf_route_set_max_body(cf_route *route, size_t bytes);
/* Run the handler itself on the thread pool (Flask's plain `def` view), for
 * handlers that call blocking libraries. Hooks and middleware still run on
 * the loop. In such a handler cf_sleep blocks its thread, and cf_spawn,
 * cf_to_thread and the awaits fail with CF_EPERM. While it runs, no task of
 * the same request may touch the request (a child spawned by a hook must be
 * awaited before cf_next). */
void cf_route_set_threaded(cf_route *route, bool threaded);
/* Hand this route the request body as it arrives instead of whole: the
 * handler starts once the head is in and reads with cf_body_read, so an
 * upload of any size costs the worker no more memory than its reads.
 * The route's body limit still applies (a Content-Length over it is a 413
 * before the handler runs; a chunked body passing it fails cf_body_read).
 * Expect: 100-continue is answered by the first read. */
void cf_route_set_stream_body(cf_route *route, bool stream);
/* Wrap this route's handler in `mw` (the first added is the outermost). */
void cf_route_use(cf_route *route, cf_middleware mw);

/* Method views: one struct of per-method handlers for one rule (Flask's
 * MethodView). NULL members are methods not allowed (405 with Allow). */
typedef struct cf_view {
    cf_handler get, post, put, patch, delete_;
} cf_view;
#define cf_route_view(app_or_group, rule, view, name) \
    cf_view_add(CF_GROUP(app_or_group), (rule), (view), (name))
cf_route *cf_view_add(cf_group *group, const char *rule, const cf_view *view,
                      const char *name);

/* Groups (Flask blueprints): routes under a URL prefix with their own
 * hooks, middleware and error handlers, which run inside the parent's.
 * Groups nest. */
#define cf_group_new(app_or_group, prefix) \
    cf_group_add(CF_GROUP(app_or_group), (prefix))
cf_group *cf_group_add(cf_group *parent, const char *prefix);

/* Hooks, on the app or a group; all of them may await.
 * before_request: runs before the handler; if it answers (or aborts), the
 *     handler is skipped. Outer (app) hooks run first.
 * after_request: runs after the handler or error handler and may change
 *     the response (cf_set_status, cf_set_header, ...). Inner (group) hooks
 *     run first, and later-registered ones before earlier ones, as in Flask.
 * teardown: always runs last, also after a failure or cancellation (its
 *     awaits work again then); cf_req_error(rq) tells what went wrong. It
 *     runs after the response has been handed to the connection. */
#define cf_before_request(x, hook) cf_hook_add(CF_GROUP(x), CF_HOOK_BEFORE, (hook))
#define cf_after_request(x, hook) cf_hook_add(CF_GROUP(x), CF_HOOK_AFTER, (hook))
#define cf_teardown_request(x, hook) cf_hook_add(CF_GROUP(x), CF_HOOK_TEARDOWN, (hook))
typedef enum { CF_HOOK_BEFORE, CF_HOOK_AFTER, CF_HOOK_TEARDOWN } cf_hook_kind;
void cf_hook_add(cf_group *group, cf_hook_kind kind, cf_handler hook);
/* Handler for responses with `status` (404, 500, ...): produced by cf_abort,
 * by routing (404/405), or by a failed handler (500). A group's handlers
 * take precedence for its routes. cf_req_status() gives the code and
 * cf_errmsg() the message. */
#define cf_errorhandler(x, status, handler) \
    cf_errorhandler_add(CF_GROUP(x), (status), (handler))
void cf_errorhandler_add(cf_group *group, int status, cf_handler handler);
/* Middleware around every handler of the app or group. */
#define cf_use(x, mw) cf_use_add(CF_GROUP(x), (mw))
void cf_use_add(cf_group *group, cf_middleware mw);
/* Inside middleware: run the rest of the chain. */
void cf_next(cf_req *rq);

/* ------------------------------------------------------------------ */
/* App-wide wrappers, serving hooks, CORS, logging                    */
/* ------------------------------------------------------------------ */

/* Wrap the whole app (what WSGI/ASGI middleware sees): fn runs around the
 * entire pipeline — before hooks, routing (404, 405, 308, automatic
 * OPTIONS), middleware, handler, error handlers, after hooks — so it sees
 * every response the app produces, refusals included. In fn, cf_next(rq)
 * runs the rest (inner wrappers, then the pipeline); after it the response
 * can be read and changed (cf_req_status, cf_set_header, ...). Not calling
 * cf_next answers without running the app; cf_abort there is answered by
 * the app's error handlers. The first registered is the outermost. The
 * response goes out when the outermost returns; teardown hooks run after. */
void cf_wrap(cf_app *app, cf_middleware fn);

/* Serving hooks (Quart's before_serving / after_serving), once per worker
 * process (and per test client). fn runs as a coroutine in a context of
 * its own, like a background task: cf_alloc, cf_sleep, cf_fetch, cf_db_*,
 * cf_spawn, cf_log all work there. Return 0, or a negative CF_E* code.
 *   before_serving: in order, before the worker accepts its first
 *     connection. A failure (or a crash) stops the worker before it
 *     serves (logged with the hook's name and cf_errmsg); the master
 *     starts it again after a growing delay (1 s, 2 s, 4 s ... 30 s) and
 *     never gives up, so a database that is not up yet heals by itself.
 *     The hooks after a failed one, and every after_serving hook, are
 *     skipped. The test client runs them in cf_test_client_new, which
 *     returns NULL when one fails.
 *   after_serving: in reverse order, once the worker has drained (its last
 *     request and background task ended, or the graceful timeout ran
 *     out), before it exits; a failure is logged and the next hook still
 *     runs. They are cancelled (their awaits return CF_ECANCELED) if they
 *     take longer than the graceful timeout. The test client runs them in
 *     cf_test_client_free. */
typedef int (*cf_serving_fn)(cf_req *rq);
#define cf_before_serving(app, fn) cf_serving_add((app), false, (fn), #fn)
#define cf_after_serving(app, fn) cf_serving_add((app), true, (fn), #fn)
void cf_serving_add(cf_app *app, bool after, cf_serving_fn fn, const char *name);

/* CORS (the Fetch standard's protocol; Flask-CORS's features). A config on
 * the app, a group or a route applies to the requests it routes (the
 * route's own, else the nearest group's, else the app's; unmatched paths
 * take the app's); it is copied when set.
 *   - A request with an Origin header that is allowed gets
 *     Access-Control-Allow-Origin (the origin itself, or "*" when any
 *     origin is allowed without credentials), Allow-Credentials and
 *     Expose-Headers as configured; on every response, errors too.
 *   - A disallowed origin gets no CORS header at all (the browser then
 *     refuses the response to the page); the response is otherwise as
 *     usual, not an error page.
 *   - A preflight (OPTIONS with Origin and Access-Control-Request-Method)
 *     on a rule without an OPTIONS route is answered 204 once the before
 *     hooks let it through (so they can still refuse it; see
 *     cf_cors_preflight). It is allowed when the origin is, the requested
 *     method is among `methods` and routed on that URL, and each requested
 *     header is among `allow_headers`; then it gets Allow-Origin,
 *     Allow-Methods, Allow-Headers, Allow-Credentials and Max-Age. A
 *     preflight a hook answered with an error gets only the headers of
 *     any response (the browser fails it either way).
 *   - Vary: Origin is added to every response the config covers, since
 *     they differ by Origin (shared caches must key on it).
 * Origins are compared byte for byte ("https://a.example", scheme and
 * port included; "null" only when listed). */
typedef bool (*cf_cors_origin_fn)(cf_req *rq, const char *origin, void *arg);
typedef struct cf_cors_opts {
    /* NULL-terminated list of allowed origins; "*" in it allows any. */
    const char *const *origins;
    /* Also allowed: the origins for which this returns true (may await). */
    cf_cors_origin_fn allow_origin;
    void *allow_origin_arg;
    /* Allowed methods, "GET, PUT" (or "*"); NULL: those the URL routes. */
    const char *methods;
    /* Allowed request headers, "Content-Type, X-Token", case-insensitive;
     * NULL or "*": any the preflight asks for (echoed back, so it works
     * with credentials too, as in Flask-CORS). */
    const char *allow_headers;
    /* Response headers the page may read beyond the safelisted ones. */
    const char *expose_headers;
    /* Cookies and HTTP auth: Access-Control-Allow-Credentials: true, and
     * the origin echoed even when "*" allows any. */
    bool credentials;
    /* Seconds a browser may cache a preflight answer; 0: not sent. */
    int64_t max_age;
} cf_cors_opts;
/* (Variadic so that a compound literal with commas can be the opts.) */
#define cf_cors(app_or_group, ...) cf_cors_add(CF_GROUP(app_or_group), __VA_ARGS__)
/* Returns 0, or CF_EINVAL (no origin allowed, or a value with CR/LF).
 * opts NULL removes the group's config. */
int cf_cors_add(cf_group *group, const cf_cors_opts *opts);
int cf_route_set_cors(cf_route *route, const cf_cors_opts *opts);
/* True for a CORS preflight request: a before hook that checks
 * credentials should let it through (browsers send none with it). */
bool cf_cors_preflight(cf_req *rq);

/* Response compression, on by default: gzip or brotli as the request's
 * Accept-Encoding prefers (q-values; brotli on a tie; none without the
 * header), for bodies of compressible types (text/..., JSON, JavaScript,
 * XML, SVG, ...) of at least CF_OPT_COMPRESS_MIN_SIZE bytes. Streams and
 * event streams too: each write is flushed, so each event arrives when it
 * is sent (streams prefer gzip when both are accepted: brotli's stream
 * state is ten times larger). Never for a 206, a body that has a Content-Encoding already,
 * Cache-Control: no-transform, or HEAD. Such responses carry
 * Vary: Accept-Encoding whether compressed or not, and a compressed one's
 * ETag gets "-gzip" or "-br" inside its quotes. Files with a precompressed
 * copy beside them (style.css.br, style.css.gz) are sent as that copy.
 * Off or on for an app or a group (nearest wins; a route with
 * cf_route_set(route, CF_OPT_COMPRESS, 0 or 1)); set it up before cf_run. */
#define cf_compress(app_or_group, on) cf_compress_set(CF_GROUP(app_or_group), on)
void cf_compress_set(cf_group *group, bool on);

/* Logging: one line per call on stderr, written whole (lines of several
 * workers do not interleave):
 *   2026-11-21T23:50:01.123Z INFO 4242 9f2c3a1b0d4e5f60 message
 * (time, level, worker pid, request id or "-", message), or with
 * --log-format json one object per line: {"time", "level", "pid",
 * "request_id", "method", "path", "message"}. The request id is the
 * X-Request-Id the access log and the response carry (made on first use
 * if none). Lines below the app's level (default info; cf_log_set_level,
 * or --log-level debug|info|warning|error) cost one comparison. */
typedef enum cf_log_level {
    CF_LOG_DEBUG, CF_LOG_INFO, CF_LOG_WARNING, CF_LOG_ERROR
} cf_log_level;
/* In a handler, hook, background task or serving hook. */
void cf_log(cf_req *rq, cf_log_level level, const char *fmt, ...)
    CF__PRINTF(3, 4);
/* Without a request (set-up code, a library's callbacks). */
void cf_app_log(cf_app *app, cf_log_level level, const char *fmt, ...)
    CF__PRINTF(3, 4);
/* Returns 0, or CF_EINVAL for a level outside the enum. */
int cf_log_set_level(cf_app *app, cf_log_level level);
bool cf_log_enabled(const cf_app *app, cf_log_level level);

/* App options. Sizes in bytes, times in milliseconds. */
typedef enum cf_option {
    CF_OPT_STACK_SIZE,         /* coroutine stack, default 64 KiB */
    CF_OPT_MAX_BODY,           /* request body, default 1 MiB (413) */
    CF_OPT_MAX_HEADER,         /* whole header block, default 8 KiB (431) */
    CF_OPT_MAX_TARGET,         /* request target, default 4 KiB (414) */
    CF_OPT_HEADER_TIMEOUT,     /* header block must arrive in 10 s (408) */
    CF_OPT_BODY_TIMEOUT,       /* gap between body bytes, default 30 s (408) */
    CF_OPT_KEEPALIVE_TIMEOUT,  /* idle keep-alive connection, default 5 s */
    CF_OPT_MAX_CONNECTIONS,    /* per worker, default 16384 (503 above) */
    CF_OPT_DEBUG,              /* 1: error details in 500 bodies */
    CF_OPT_ACCESS_LOG,         /* 1 (default): one line per request */
    CF_OPT_HANDLER_TIMEOUT,    /* whole pipeline; 0 (default): none (503) */
    CF_OPT_WORKERS,            /* worker processes; 0 (default): one per core */
    CF_OPT_GRACEFUL_TIMEOUT,   /* drain on SIGTERM/SIGHUP, default 30 s */
    CF_OPT_MAX_REQUESTS,       /* recycle a worker after N; 0 (default): never */
    CF_OPT_SEND_TIMEOUT,       /* a streaming response waits this long for a
                                * client that takes nothing, default 30 s;
                                * 0: no limit */
    /* multipart/form-data bodies (413 past a limit; 0: no limit) */
    CF_OPT_UPLOAD_MEMORY,      /* a file up to this stays in memory, default
                                * 512 KiB; larger ones go to a temporary file */
    CF_OPT_MAX_PARTS,          /* parts of one body, default 1000 */
    CF_OPT_MAX_FIELD_SIZE,     /* one plain field, default 512 KiB */
    CF_OPT_MAX_FILE_SIZE,      /* one file, default 0: the body's limit */
    CF_OPT_MAX_PART_HEADER,    /* one part's header block, default 8 KiB */
    /* response compression (see cf_compress) */
    CF_OPT_COMPRESS,           /* 1 (default): on; 0: off (per route too) */
    CF_OPT_COMPRESS_MIN_SIZE,  /* smaller bodies go as they are, default 512 */
    CF_OPT_GZIP_LEVEL,         /* 1..9, default 5 */
    CF_OPT_BROTLI_QUALITY,     /* 0..11, default 3 (docs/benchmarks.md) */
} cf_option;
int cf_app_set(cf_app *app, cf_option option, int64_t value);
int64_t cf_app_get(const cf_app *app, cf_option option);
/* Per route: CF_OPT_MAX_BODY and the multipart limits above override the
 * app's for that route (other options: CF_EINVAL). cf_route_get gives the
 * route's own value, or -1 when it has none. */
int cf_route_set(cf_route *route, cf_option option, int64_t value);
int64_t cf_route_get(const cf_route *route, cf_option option);
/* Where uploads larger than CF_OPT_UPLOAD_MEMORY are spooled (copied);
 * default $TMPDIR, else /tmp. Put it on the filesystem of the files'
 * destination so cf_file_save renames instead of copying. */
void cf_app_set_upload_dir(cf_app *app, const char *dir);

/* Run the app as a prefork server: a master process that keeps the worker
 * processes alive (restarting any that die), drains them on SIGTERM/SIGINT,
 * replaces them on SIGHUP, and stops at once on SIGQUIT. Options (see
 * --help and docs/deployment.md): --host, --port, --unix, --workers,
 * --user, --group, --max-requests, --graceful-timeout, --access-log,
 * --log-format, --metrics, --debug and every limit; HOST, PORT and
 * WEB_CONCURRENCY from the environment; systemd socket activation
 * (LISTEN_FDS). Command line beats environment beats cf_app_set. Returns
 * the process exit status. */
int cf_run(cf_app *app, int argc, char **argv);

/* ------------------------------------------------------------------ */
/* Requests                                                           */
/* ------------------------------------------------------------------ */

/* All strings returned here belong to the request and stay valid until the
 * request ends; NULL means absent. */
const char *cf_method(cf_req *rq);        /* "GET" */
const char *cf_path(cf_req *rq);          /* percent-decoded path */
const char *cf_query_string(cf_req *rq);  /* raw, without '?'; "" if none */
const char *cf_arg(cf_req *rq, const char *name);    /* first query value */
const char *cf_header(cf_req *rq, const char *name); /* case-insensitive */
const char *cf_cookie(cf_req *rq, const char *name);
const char *cf_form(cf_req *rq, const char *name);   /* urlencoded or multipart body */
/* Query and form fields decode as Werkzeug's do: '+' is a space, an escape
 * that is not %XX ("%ZZ") stays as written; bytes are passed on as decoded
 * (not checked for UTF-8). A repeated field (tag=a&tag=b) gives the first
 * value to cf_arg/cf_form; the _list calls give all of them in order, as a
 * NULL-terminated array owned by the request (n may be NULL), and the _at
 * calls walk every field in order (false past the last). */
const char **cf_arg_list(cf_req *rq, const char *name, size_t *n);
const char **cf_form_list(cf_req *rq, const char *name, size_t *n);
bool cf_arg_at(cf_req *rq, size_t i, const char **name, const char **value);
bool cf_form_at(cf_req *rq, size_t i, const char **name, const char **value);
/* Uploads (multipart/form-data, RFC 7578), parsed as the body arrives: a
 * route that takes multipart bodies streams them (unless it is threaded),
 * so its limit (cf_route_set_max_body) may be large. A plain field goes to
 * cf_form / cf_form_list like an urlencoded one; a file (a part with a
 * filename) becomes a cf_file. Everything belongs to the request; its
 * temporary files are deleted when it ends (failed, cancelled or crashed
 * too) unless cf_file_save moved them. */
typedef struct cf_file {
    const char *field;        /* the form field's name */
    const char *filename;     /* as the client sent it: not a safe path, see
                               * cf_secure_filename; may be "" */
    const char *content_type; /* the part's; application/octet-stream if none */
    uint64_t size;
    const char *data;         /* the bytes (NUL-terminated) when in memory */
    const char *path;         /* else the temporary file holding them */
} cf_file;
/* Read and parse the form body now (urlencoded or multipart), suspending
 * while it arrives; cf_form and the cf_file calls do it on first use.
 * Returns 0, CF_EINVAL (malformed: no boundary, a part without a name, a
 * truncated body: answer 400), CF_ETOOBIG (a limit: 413), CF_ETIMEDOUT,
 * CF_ECANCELED, CF_EFAIL (a temporary file could not be written: 500);
 * cf_errmsg(rq) says why. On failure the request is aborted with that
 * status (the handler may still answer otherwise) and the form is empty. */
int cf_form_parse(cf_req *rq);
/* The first file of a field, or NULL. */
const cf_file *cf_file_get(cf_req *rq, const char *field);
/* Every file of a field (NULL: of every field), in order, NULL-terminated;
 * n may be NULL. */
const cf_file *const *cf_files(cf_req *rq, const char *field, size_t *n);
/* Move the file to dest (a rename when on the same filesystem, else a
 * copy on the thread pool; suspends then). Returns 0 or CF_EFAIL with
 * cf_errmsg(rq) saying why. An in-memory file is written there. */
int cf_file_save(cf_req *rq, const cf_file *f, const char *dest);
/* Werkzeug's secure_filename: a name safe to use as one path component
 * (ASCII letters, digits, '_', '.', '-'; accents dropped after NFKD;
 * separators and spaces become '_'; no leading or trailing '.' or '_').
 * May be "": choose a name then. Owned by the request. */
const char *cf_secure_filename(cf_req *rq, const char *filename);

/* Parts one by one, for handlers that stream uploads themselves (hash or
 * store them as they arrive). cf_part_next returns 1 with the next part's
 * head in *part (the rest of the previous part is skipped), 0 after the
 * last part, or an error as cf_form_parse does. cf_part_read reads the
 * current part's data: the count, 0 at its end, or an error. Both
 * suspend while the body arrives. Do not mix with cf_form_parse. */
typedef struct cf_part {
    const char *name;
    const char *filename;     /* NULL: a plain field */
    const char *content_type; /* text/plain or application/octet-stream if none */
} cf_part;
int cf_part_next(cf_req *rq, cf_part *part);
long cf_part_read(cf_req *rq, void *buf, size_t cap);
/* The body as received (chunked bodies de-chunked); NUL-terminated. On a
 * route that streams its body (cf_route_set_stream_body) this reads what
 * cf_body_read has not returned yet, suspending until it is in; if that
 * fails, it returns "" (length 0) and cf_errmsg(rq) says why. */
const char *cf_body(cf_req *rq, size_t *len);
/* Read the next piece of the body into buf[0..cap): suspends until some
 * is in (a streaming route), or copies from the received body. Returns the
 * number of bytes, 0 at its end, or CF_ETOOBIG (past the route's body
 * limit: answer 413), CF_EINVAL (malformed framing: 400), CF_ETIMEDOUT
 * (the client sent nothing for the body timeout: 408), CF_ECANCELED (the
 * client left), CF_EPERM (a threaded handler); cf_errmsg(rq) says why. */
long cf_body_read(cf_req *rq, void *buf, size_t cap);
/* The body parsed as JSON, or NULL with cf_errmsg(rq) saying why (wrong
 * Content-Type, invalid JSON and where). Borrowed: owned by the request. */
json_t *cf_get_json(cf_req *rq);
/* Header iteration: returns false past the last one. */
bool cf_header_at(cf_req *rq, size_t i, const char **name, const char **value);

/* Route parameters, as matched: cf_param gives the text, the typed getters
 * convert (int: 0 and float: 0.0 when absent). */
const char *cf_param(cf_req *rq, const char *name);
int64_t cf_param_int(cf_req *rq, const char *name);
double cf_param_float(cf_req *rq, const char *name);

/* Name of the matched route, or NULL (404). */
const char *cf_endpoint(cf_req *rq);

/* Build the URL of route `name` with parameters given as NULL-terminated
 * name/value string pairs; pairs that are not rule parameters become the
 * query string. NULL if the route is unknown or a parameter is missing or
 * does not fit its converter. Allocated in the request. */
char *cf_url_for(cf_req *rq, const char *name, ...);

/* Request-scoped storage (Flask's g): values live until the request ends. */
void cf_g_set(cf_req *rq, const char *key, void *value);
void *cf_g_get(cf_req *rq, const char *key);

/* The same storage for values templates read: what is set in this JSON
 * object (borrowed, owned by the request) is `g` in a template, e.g.
 * json_object_set_new(cf_g_json(rq), "user", cf_row_object(row)). */
json_t *cf_g_json(cf_req *rq);

/* The app a request is served by. */
cf_app *cf_req_app(cf_req *rq);

/* Configuration (Flask's app.config): one JSON object owned by the app,
 * borrowed; set its keys during set-up. Sessions read SECRET_KEY and the
 * SESSION_COOKIE_* keys from it; templates see it as `config`.
 * cf_config_str: a string value, or NULL. cf_config_from_env: copy the named
 * environment variables that are set (NULL-terminated list); returns how
 * many were. */
json_t *cf_config(cf_app *app);
const char *cf_config_str(const cf_app *app, const char *key);
int cf_config_from_env(cf_app *app, const char *const *names);

/* Request arena: memory freed in one step after teardown. Never NULL: on
 * exhaustion the worker aborts, like most C servers. */
void *cf_alloc(cf_req *rq, size_t size);
char *cf_strdup(cf_req *rq, const char *s);
char *cf_sprintf(cf_req *rq, const char *fmt, ...)
    CF__PRINTF(2, 3);
/* Run fn(ptr) when the request's memory is released (after teardown). */
void cf_defer(cf_req *rq, void (*fn)(void *), void *ptr);

/* ------------------------------------------------------------------ */
/* Responses                                                          */
/* ------------------------------------------------------------------ */

/* Each of these sets the whole response (a later call replaces it). Bodies
 * are copied into the request. */
void cf_send(cf_req *rq, int status, const char *content_type,
             const void *body, size_t len);
void cf_text(cf_req *rq, int status, const char *text);
void cf_textf(cf_req *rq, int status, const char *fmt, ...)
    CF__PRINTF(3, 4);
void cf_html(cf_req *rq, int status, const char *html);
/* JSON built with a jansson pack format, e.g. cf_json(rq, 200, "{s:i}",
 * "id", 7). A bad format becomes a 500 with the reason in cf_errmsg. */
void cf_json(cf_req *rq, int status, const char *fmt, ...);
/* JSON from a value; takes over the caller's reference. */
void cf_json_value(cf_req *rq, int status, json_t *value);
/* Redirect (status 301, 302, 303, 307 or 308) to `location`. */
void cf_redirect(cf_req *rq, int status, const char *location);
/* Stop with an error status: the error handler for `status` (or a default
 * page) produces the response. The handler should return right after. */
void cf_abort(cf_req *rq, int status);
/* Fail with a message (500, message shown with --debug). */
void cf_fail(cf_req *rq, const char *fmt, ...)
    CF__PRINTF(2, 3);

/* Response headers. set replaces any header of that name, add appends.
 * Names and values with CR, LF or NUL are refused with CF_EINVAL. */
int cf_set_header(cf_req *rq, const char *name, const char *value);
int cf_add_header(cf_req *rq, const char *name, const char *value);
const char *cf_response_header(cf_req *rq, const char *name);
void cf_set_status(cf_req *rq, int status);

typedef struct cf_cookie_opts {
    int64_t max_age;     /* seconds; 0: a session cookie; < 0: delete it now */
    const char *path;    /* default "/" */
    const char *domain;
    bool secure, http_only;
    const char *same_site; /* "Lax", "Strict", "None" or NULL */
} cf_cookie_opts;
/* Add a Set-Cookie header; opts may be NULL. */
int cf_set_cookie(cf_req *rq, const char *name, const char *value,
                  const cf_cookie_opts *opts);

/* Response state, for hooks and error handlers. */
bool cf_responded(cf_req *rq);     /* a response (or abort) is set */
int cf_req_status(cf_req *rq);     /* response or abort status, 0 if none */
const char *cf_response_body(cf_req *rq, size_t *len);
/* Why the request failed (0 if it did not): CF_EFAIL, CF_ECANCELED ... */
int cf_req_error(cf_req *rq);
/* The last error message of this request ("" if none). */
const char *cf_errmsg(cf_req *rq);

/* ------------------------------------------------------------------ */
/* Templates (a compatible subset of Jinja2: docs/templates.md)       */
/* ------------------------------------------------------------------ */

/* Compile every template under `dir` (NULL: "templates" in the working
 * directory) once, at set-up; names are paths relative to it
 * ("auth/login.html"). A syntax error prints file:line:col and the reason
 * and exits with status 1, like any set-up error. Call it after
 * registering filters and globals that templates use. */
void cf_templates(cf_app *app, const char *dir);

/* Render template `name` with the variables of `context` (a JSON object or
 * NULL; takes over the caller's reference) and answer with it: HTML for
 * .html/.htm/.xml/.xhtml/.svg names (autoescaped), text/plain otherwise.
 * Every template also sees url_for, request (method, path, url, args, form,
 * endpoint), g (cf_g_json), session, get_flashed_messages, csrf_token and
 * config. A render error (unknown template, an undefined value used in
 * arithmetic, ...) fails the request: 500, with "name:line: reason" in
 * cf_errmsg and the log. Does not suspend. */
void cf_render(cf_req *rq, int status, const char *name, json_t *context);
/* The same rendering as a string in request memory; NULL on failure (the
 * reason in cf_errmsg). */
char *cf_render_string(cf_req *rq, const char *name, json_t *context);

/* A C function templates can call, as a global `name(...)` or a filter
 * `value|name(...)`: args is a JSON array (for a filter, the filtered value
 * first), kwargs a JSON object of keyword arguments; both borrowed. Return
 * a new reference, or NULL to fail the render. rq is NULL outside a request
 * (carafe-render). Register before cf_templates. */
typedef json_t *(*cf_template_fn)(cf_req *rq, json_t *args, json_t *kwargs, void *arg);
void cf_template_global(cf_app *app, const char *name, cf_template_fn fn, void *arg);
void cf_template_filter(cf_app *app, const char *name, cf_template_fn fn, void *arg);
/* A string templates output as is, without escaping (Jinja's Markup): the
 * JSON object {"__html__": html}. New reference. */
json_t *cf_markup(const char *html);

/* ------------------------------------------------------------------ */
/* Sessions, flash messages, CSRF                                      */
/* ------------------------------------------------------------------ */

/* Flask's `session`: a signed cookie that Flask 3.1 and Carafe both read
 * and write (SecureCookieSessionInterface: itsdangerous'
 * URLSafeTimedSerializer, salt "cookie-session", HMAC-SHA1; Flask's
 * tagged JSON). Settings come from the app's config (cf_config) with
 * Flask's names and defaults:
 *   SECRET_KEY               signs the cookie; without it the session reads
 *                            as empty and writing it fails the request (500,
 *                            "The session is unavailable because no secret
 *                            key was set...", logged)
 *   SECRET_KEY_FALLBACKS     array of older keys still accepted for reading
 *   SESSION_COOKIE_NAME      "session"
 *   SESSION_COOKIE_DOMAIN, SESSION_COOKIE_PATH ("/"), SESSION_COOKIE_SECURE
 *   (false), SESSION_COOKIE_HTTPONLY (true), SESSION_COOKIE_SAMESITE (none;
 *   "Lax", "Strict", "None"), SESSION_COOKIE_PARTITIONED (false)
 *   PERMANENT_SESSION_LIFETIME   seconds, 2678400 (31 days): the oldest
 *                            signature accepted, and a permanent cookie's
 *                            Expires
 *   SESSION_REFRESH_EACH_REQUEST true: a permanent session is re-sent on
 *                            every response
 * The session is loaded from the cookie on first use; a missing, tampered,
 * expired, wrongly signed or undecodable cookie is an empty session, never
 * an error. It is saved when the response goes out (error pages, redirects
 * and a stream's head included; after the after_request hooks and
 * wrappers): when its JSON changed, a new Set-Cookie; when it was emptied,
 * the cookie is deleted (only if the request sent one); a permanent one is
 * re-sent anyway (see above); else no Set-Cookie. A response of a request
 * that used the session carries Vary: Cookie. Values set by a stream's
 * producer after the head went out are not saved.
 *
 * Values are JSON as Flask's TaggedJSONSerializer writes them: Flask's
 * tuple is {" t": [...]}, bytes {" b": "<base64>"}, Markup {" m": "..."},
 * UUID {" u": "<hex>"}, datetime {" d": "<HTTP date>"}, and a dict whose
 * only key is one of those is {" di": {"<key>__": value}}; such objects are
 * kept as they are, so a Flask value survives a Carafe request. Keep the
 * whole session small: browsers keep about 4 KB per cookie. */

/* The session as a JSON object (borrowed, owned by the request). Changing
 * it directly (json_object_set_new, ...) counts like cf_session_set. */
json_t *cf_session(cf_req *rq);
/* A string value (also a Markup one), or NULL: request memory. */
const char *cf_session_get(cf_req *rq, const char *key);
/* Set key to value (stolen, also on failure). 0, CF_EINVAL (NULL key or
 * value), CF_EPERM (no SECRET_KEY; the request then fails with a 500). */
int cf_session_set(cf_req *rq, const char *key, json_t *value);
/* The same with a copy of a string (CF_EINVAL: not UTF-8). */
int cf_session_set_str(cf_req *rq, const char *key, const char *value);
/* 0, or CF_ENOTFOUND when the key was not there. */
int cf_session_remove(cf_req *rq, const char *key);
/* Empty the session: its cookie is deleted when the response goes out. */
void cf_session_clear(cf_req *rq);
/* Flask's session.permanent, kept in the session as "_permanent": a
 * permanent session's cookie gets Expires = now + PERMANENT_SESSION_LIFETIME,
 * another one lasts the browser session. Returns what cf_session_set does. */
int cf_session_set_permanent(cf_req *rq, bool permanent);
bool cf_session_permanent(cf_req *rq);

/* Flask's flash(message, category): appends (category, message) to the
 * session's "_flashes" list, as Flask stores it (a tagged tuple), so each
 * side shows the other's. category NULL: "message". Returns what
 * cf_session_set does (CF_EINVAL for a NULL or non-UTF-8 message). */
int cf_flash(cf_req *rq, const char *category, const char *message);
/* Flask's get_flashed_messages: the first call of a request takes the
 * flashes out of the session (so the next request no longer sees them),
 * later calls of the same request see the same ones. A JSON array of the
 * messages, or with_categories of [category, message] arrays; with a
 * category_filter (NULL-terminated list; NULL or empty: all) only those
 * categories. Borrowed: owned by the request. Templates call it for
 * get_flashed_messages(). */
json_t *cf_flashed_messages(cf_req *rq, bool with_categories,
                            const char *const *category_filter);

/* CSRF protection (Flask-WTF's CSRFProtect): a random token kept in the
 * session under "_csrf_token", made on first use; put it in forms as the
 * field "csrf_token" (or send it as the X-CSRFToken header). Request
 * memory; NULL without SECRET_KEY. */
const char *cf_csrf_token(cf_req *rq);
/* True when the request's form field "csrf_token", else its X-CSRFToken
 * (or X-CSRF-Token) header, equals the session's token (compared in
 * constant time). May read the form body (suspends then). */
bool cf_csrf_valid(cf_req *rq);
/* Middleware (cf_use, cf_route_use): POST, PUT, PATCH and DELETE without a
 * valid token are answered 400 with "The CSRF token is missing.", "The
 * CSRF session token is missing." or "The CSRF tokens do not match." (the
 * message in cf_errmsg and the default error page); other methods pass. */
void cf_csrf_protect(cf_req *rq);

/* ------------------------------------------------------------------ */
/* Passwords                                                          */
/* ------------------------------------------------------------------ */

/* Password hashes in Werkzeug 3.1's formats (generate_password_hash,
 * check_password_hash), so a user table can be shared with a Flask app:
 *   "scrypt:32768:8:1$<salt>$<128 hex digits>"   the default
 *   "pbkdf2:sha256:1000000$<salt>$<64 hex digits>"
 * with a 16-character random salt of [a-zA-Z0-9]. Methods: "scrypt" or
 * "scrypt:N:r:p" (N a power of 2), "pbkdf2", "pbkdf2:<digest>" or
 * "pbkdf2:<digest>:<iterations>" (any OpenSSL digest name: sha256,
 * sha512, ...); missing parts take Werkzeug's defaults (scrypt 32768:8:1,
 * pbkdf2 sha256 with 1,000,000 iterations). Hashing takes tens of
 * milliseconds by design: the request calls run it on the thread pool and
 * suspend (in a threaded handler they run on its thread). */

/* A new hash of password with scrypt (Werkzeug's default); request memory,
 * NULL on failure (cancelled, out of memory). Suspends. */
char *cf_password_hash(cf_req *rq, const char *password);
/* The same with a method as above; NULL also for an unknown or malformed
 * method. Suspends. */
char *cf_password_hash_method(cf_req *rq, const char *password, const char *method);
/* 1 when password matches hash, else 0: also for a malformed hash, an
 * unknown method, parameters beyond sane bounds (scrypt over 1 GiB, over
 * 100,000,000 pbkdf2 iterations) or a cancelled request. The comparison
 * takes constant time. Suspends. */
int cf_password_verify(cf_req *rq, const char *hash, const char *password);
/* Without a request, blocking the caller (set-up code, tools): a malloc'd
 * hash (free it; NULL on failure; method NULL: "scrypt"), and the check. */
char *cf_password_hash_now(const char *password, const char *method);
int cf_password_verify_now(const char *hash, const char *password);

/* ------------------------------------------------------------------ */
/* Async                                                              */
/* ------------------------------------------------------------------ */

/* Awaitables: a cf_task, and the handles later I/O calls return. The await
 * functions take any of them as `void *`. A timeout of -1 means none. */
typedef struct cf_task cf_task;
/* A child task's body: returns 0 or a negative error code, which its await
 * returns. Results travel through `arg`. */
typedef int (*cf_task_fn)(cf_req *rq, void *arg);

/* Suspend for `ms` milliseconds of the loop's clock, which counts whole
 * milliseconds from the start of its iteration: by a real clock, up to
 * 3 ms less. Returns 0, or CF_ECANCELED. */
int cf_sleep(cf_req *rq, uint64_t ms);

/* Start fn(rq, arg) as a child coroutine of the calling task; it runs when
 * the caller next suspends. It shares the request (memory, storage) and is
 * cancelled with it; when the request ends, children still running are
 * cancelled and waited for. Returns NULL (CF_EPERM) on a pool thread. */
cf_task *cf_spawn(cf_req *rq, cf_task_fn fn, void *arg);

/* Run fn(arg) on libuv's thread pool (asyncio.to_thread). fn must not call
 * Carafe functions. If the request is cancelled, the await returns
 * CF_ECANCELED at once; the request's memory is kept until fn finished. */
typedef int (*cf_work_fn)(void *arg);
cf_task *cf_to_thread(cf_req *rq, cf_work_fn fn, void *arg);

/* Wait for one awaitable. Returns its result (0 or its error), CF_ETIMEDOUT
 * after timeout_ms (the awaitable is then cancelled), or CF_ECANCELED when
 * the caller itself is cancelled. Suspends. */
int cf_await(cf_req *rq, void *awaitable, int64_t timeout_ms);
/* Wait for all (gather): 0 when all succeeded, else the first error in
 * argument order; on timeout the unfinished ones are cancelled. */
int cf_await_all_n(cf_req *rq, void *const *awaitables, size_t n,
                   int64_t timeout_ms);
/* Wait for the first to finish: returns its index, or a negative error
 * (CF_ETIMEDOUT, CF_ECANCELED). The others keep running. */
int cf_await_any_n(cf_req *rq, void *const *awaitables, size_t n,
                   int64_t timeout_ms);
#define CF__AWS(...) ((void *const[]){__VA_ARGS__})
#define CF__NAWS(...) (sizeof(CF__AWS(__VA_ARGS__)) / sizeof(void *))
/* cf_await_all(rq, a, b, c) and cf_await_any(rq, a, b): no timeout. */
#define cf_await_all(rq, ...) \
    cf_await_all_n((rq), CF__AWS(__VA_ARGS__), CF__NAWS(__VA_ARGS__), -1)
#define cf_await_any(rq, ...) \
    cf_await_any_n((rq), CF__AWS(__VA_ARGS__), CF__NAWS(__VA_ARGS__), -1)

/* Start fn(ctx, arg) as a background task that outlives the request (the
 * seed articles' "start a task and answer at once"; Quart's
 * add_background_task). It runs in a context of its own, like a request
 * without a client: memory (cf_alloc), storage and every await work there,
 * responses go nowhere. It is cancelled only when the server stops and the
 * graceful timeout runs out. A negative return is logged with `name`, and a
 * crash in it is reported like a handler's. `arg_size` bytes of `arg` are
 * copied into the task's own memory (0: arg is passed as is and must stay
 * valid: not request memory). Returns 0, or CF_EPERM off the loop thread. */
int cf_background(cf_req *rq, const char *name, cf_task_fn fn, const void *arg,
                  size_t arg_size);
/* Background tasks running in this worker (or test client). */
size_t cf_background_count(void);

/* Cancel an awaitable: a task's pending await returns CF_ECANCELED. */
void cf_cancel(void *awaitable);
/* True once the awaitable has finished; its result then. */
bool cf_done(void *awaitable);
int cf_result(void *awaitable);
/* True if the calling task has been cancelled (client gone). */
bool cf_cancelled(cf_req *rq);

/* ------------------------------------------------------------------ */
/* Streaming responses and Server-Sent Events                         */
/* ------------------------------------------------------------------ */

/* Streaming responses (Flask's Response(generator), Quart's async
 * generators): the handler sets the status and content type and names the
 * producer; the after_request hooks run and the head goes out; then
 * fn(rq, arg) runs on the request's coroutine and writes the body piece by
 * piece with cf_write. HTTP/1.1 clients get chunked transfer encoding,
 * HTTP/1.0 clients a body ended by closing the connection. fn returning 0
 * ends the body; a negative return cuts it (the connection closes without
 * the last chunk, so the client knows the body is incomplete). fn is not
 * run for HEAD, 204 and 304. The handler timeout does not cover fn; the
 * client going away makes its waits return CF_ECANCELED. On a graceful stop
 * it runs to its end like any request (up to the graceful timeout); event
 * streams (cf_sse) are cancelled instead, and ended properly. Like the other
 * response calls, a later one replaces it. */
void cf_stream(cf_req *rq, int status, const char *content_type,
               cf_task_fn fn, void *arg);
/* Send a piece of a streaming body, at once (in its producer, or a task it
 * spawned). The bytes are copied; a long stream does not grow the request's
 * memory. Suspends while more than 64 KiB wait for the client. Returns 0,
 * CF_ECANCELED (client gone; for an event stream also the server stopping),
 * CF_ETIMEDOUT (the client took nothing for the send timeout: the
 * connection is closed), or CF_EPERM (no streaming body is being sent). */
int cf_write(cf_req *rq, const void *data, size_t len);
/* cf_write of a printf-formatted piece. */
int cf_writef(cf_req *rq, const char *fmt, ...)
    CF__PRINTF(2, 3);
/* Server-Sent Events: a 200 text/event-stream response (Cache-Control:
 * no-cache, and X-Accel-Buffering: no, which turns nginx's buffering off
 * for the stream whatever its configuration)
 * whose producer is fn. The client's Last-Event-ID header says where a
 * reconnecting client left off. */
void cf_sse(cf_req *rq, cf_task_fn fn, void *arg);
/* Send one event: `event` (the type; NULL: "message") and `id` may be
 * NULL; `data` may hold several lines, each sent as a data: line. Returns
 * what cf_write returns, or CF_EINVAL for an event or id with a line break.
 * A comment line (": ping\n\n" with cf_write) keeps idle proxies open. */
int cf_sse_send(cf_req *rq, const char *event, const char *id, const char *data);

/* ------------------------------------------------------------------ */
/* WebSocket                                                          */
/* ------------------------------------------------------------------ */

/* Accept a WebSocket handshake (Quart's websocket routes): answers 101 and
 * runs fn(rq, arg) as the session, on the request's coroutine, after the
 * hooks. A request that is not a handshake gets 426 (with Upgrade:
 * websocket), a bad key 400, the test client 501. When fn returns, the
 * session is closed (1000; 1011 if fn failed; 1001 when the server stops,
 * which cancels sessions like event streams). Messages larger than the
 * route's body limit close it with 1009, text that is not UTF-8 with 1007.
 * Ping frames are answered by Carafe. */
void cf_websocket(cf_req *rq, cf_task_fn fn, void *arg);
typedef struct cf_ws_message {
    const char *data; /* valid until the next cf_ws_recv; NUL-terminated */
    size_t len;
    bool binary;      /* false: UTF-8 text */
} cf_ws_message;
/* Wait for the next whole message (fragments are joined). Returns 0,
 * CF_ECLOSED once the client closed (cf_ws_close_code says how) or broke
 * the protocol, CF_ECANCELED (the connection is gone, or the server
 * stops), CF_ETIMEDOUT, CF_EPERM outside a session. Suspends. */
int cf_ws_recv(cf_req *rq, cf_ws_message *msg, int64_t timeout_ms);
/* Send a message (text must be UTF-8: CF_EINVAL otherwise); suspends while
 * more than 64 KiB wait for the client. Returns 0, CF_ECLOSED,
 * CF_ECANCELED, CF_ETIMEDOUT (send timeout), CF_EPERM. Any task of the
 * request may send while another waits in cf_ws_recv. */
int cf_ws_send(cf_req *rq, const void *data, size_t len, bool binary);
int cf_ws_send_text(cf_req *rq, const char *text);
/* Start the closing handshake with `code` (1000, 1001-1014 but not
 * 1004-1006, or 3000-4999) and a reason of at most 123 bytes; cf_ws_recv
 * then returns CF_ECLOSED once the client answered. */
int cf_ws_close(cf_req *rq, int code, const char *reason);
/* The code of the client's close frame (1005: none given), 0 before. */
int cf_ws_close_code(cf_req *rq);

/* ------------------------------------------------------------------ */
/* Files                                                              */
/* ------------------------------------------------------------------ */

/* Answer with the file at `path` (Flask's send_file). It is opened and read
 * on the thread pool and sent in 64 KiB pieces with its Content-Length (a
 * big file costs one buffer). content_type NULL: from the extension
 * (application/octet-stream if unknown). Sets ETag and Last-Modified and
 * answers 304 to a matching If-None-Match or If-Modified-Since; a single
 * byte Range gets 206 (416 outside the file), several get the whole file.
 * A missing file, a directory or one that cannot be read: 404 (cf_abort,
 * naming no path). Suspends. */
void cf_send_file(cf_req *rq, const char *path, const char *content_type);
/* cf_send_file of `name` inside `dir` (Flask's send_from_directory): a
 * name with a "." or ".." segment, an empty one, or a leading "/" is a 404,
 * so a name from the URL cannot leave dir. */
void cf_send_from_directory(cf_req *rq, const char *dir, const char *name);
/* Serve the files under `dir` at `prefix` (Flask's static folder): GET and
 * HEAD on prefix/<path:filename>, route name "static" (cf_url_for(rq,
 * "static", "filename", "app.css", NULL)). dir is copied. */
#define cf_static(app_or_group, prefix, dir) \
    cf_static_add(CF_GROUP(app_or_group), (prefix), (dir))
cf_route *cf_static_add(cf_group *group, const char *prefix, const char *dir);

/* ------------------------------------------------------------------ */
/* Outgoing HTTP (libcurl's multi interface on the worker's loop)       */
/* ------------------------------------------------------------------ */

/* Error codes of outgoing calls (also CF_ETIMEDOUT for the connect and
 * total timeouts, CF_ECANCELED, CF_EINVAL for a bad URL, method or header). */
enum {
    CF_EDNS = -1100,        /* the host name could not be resolved */
    CF_ECONNREFUSED = -1101,/* nothing listens there (or connect failed) */
    CF_ETLS = -1102,        /* TLS handshake or certificate failure */
    CF_ETOOBIG = -1103,     /* the response body passed max_body, or its
                             * headers 256 KiB (cf_body_read: the request
                             * body passed its route's limit) */
    CF_EHTTPSTATUS = -1104, /* cf_fetch_raise_for_status: not a 2xx */
    CF_ENETWORK = -1105,    /* any other transfer failure (reset, ...) */
};

/* A pending or finished outgoing call; awaitable with cf_await & co. It
 * belongs to the request: freed with it. It is owned by the task that
 * started it and cancelled with it (client gone, cf_cancel, an await's
 * timeout, or that task ending first): the transfer is removed from the
 * loop at once and the fetch finishes with CF_ECANCELED. Its await result
 * is 0 once a response arrived, whatever its status (see
 * cf_fetch_raise_for_status), else the fetch's error. */
typedef struct cf_fetch cf_fetch;

/* Options of one call; all members may be left zero. Name/value arrays are
 * copied (encoded) when the call starts. */
typedef struct cf_fetch_opts {
    const char *const *headers;  /* "Name: value" strings, NULL-terminated;
                                    "Name:" removes a default header */
    const char *const *query;    /* name, value, ..., NULL: appended, encoded */
    const void *body;            /* raw body (with a Content-Type header) */
    size_t body_len;
    json_t *json;                /* JSON body (borrowed; sets Content-Type) */
    const char *const *form;     /* name, value, ..., NULL: urlencoded body */
    int64_t connect_timeout_ms;  /* 0: 10 s; < 0: none */
    int64_t timeout_ms;          /* whole call; 0: 30 s; < 0: none */
    size_t max_body;             /* 0: 16 MiB (CF_ETOOBIG above); SIZE_MAX: none */
    bool follow_redirects;       /* default off; at most 10, http(s) only */
    const char *ca_file;         /* PEM CA bundle instead of the system's */
} cf_fetch_opts;

/* Start a call; it runs while the caller goes on (await it to get the
 * result). method: any token ("GET", "POST", "PUT", "PATCH", "DELETE",
 * ...); url: http:// or https://. Never NULL: a bad URL or option shows as
 * the fetch's error. opts may be NULL. Connections (and TLS sessions, DNS
 * answers) are reused across requests of a worker; HTTP/2 is used over TLS
 * when the server offers it. Costs no thread: the transfer runs on the
 * worker's loop. In a threaded handler (cf_route_set_threaded) the call is
 * made right here, blocking that thread, and the fetch returns finished. */
cf_fetch *cf_fetch_start(cf_req *rq, const char *method, const char *url,
                         const cf_fetch_opts *opts);
/* Start and await: returns the finished fetch (check cf_fetch_error).
 * Suspends. */
cf_fetch *cf_fetch_do(cf_req *rq, const char *method, const char *url,
                      const cf_fetch_opts *opts);
/* Results, valid once the fetch is done. Strings belong to the request. */
int cf_fetch_error(cf_fetch *f);          /* 0 or a CF_E* code */
const char *cf_fetch_errmsg(cf_fetch *f); /* what failed, naming the URL; "" if nothing */
int cf_fetch_status(cf_fetch *f);         /* HTTP status, 0 if none */
/* A response header (case-insensitive, the first of that name), or NULL.
 * After redirects, those of the last response. */
const char *cf_fetch_header(cf_fetch *f, const char *name);
/* Header iteration: false past the last one. */
bool cf_fetch_header_at(cf_fetch *f, size_t i, const char **name, const char **value);
/* The body (decoded if the server compressed it); NUL-terminated, "" if none. */
const char *cf_fetch_body(cf_fetch *f, size_t *len);
json_t *cf_fetch_json(cf_fetch *f);       /* parsed body, borrowed; NULL if not JSON */
const char *cf_fetch_url(cf_fetch *f);    /* the URL called (after redirects: the last) */
/* 0 for a 2xx response; else CF_EHTTPSTATUS (or the transfer error) with
 * cf_fetch_errmsg (and cf_errmsg of the request) saying which status from
 * which URL; cf_fetch_error then returns that code too. */
int cf_fetch_raise_for_status(cf_fetch *f);
/* GET each of urls[0..n) with at most `concurrency` calls at once (0: all
 * at once), filling out[i]; returns 0 when every call succeeded with a 2xx,
 * else the first error in URL order (cf_errmsg(rq) says which), or
 * CF_ECANCELED. Calls not started then are filled in as cancelled. Suspends. */
int cf_fetch_all(cf_req *rq, const char *const *urls, size_t n, size_t concurrency,
                 const cf_fetch_opts *opts, cf_fetch **out);

/* ------------------------------------------------------------------ */
/* Database (SQLite on the thread pool, PostgreSQL on the loop)         */
/* ------------------------------------------------------------------ */

/* One API over two backends, chosen by the URL given to cf_db_open:
 *   SQLite: every statement runs on libuv's thread pool (never on the
 *     loop), one connection per pool thread, WAL mode, a busy timeout and a
 *     prepared-statement cache per connection; foreign keys are enforced.
 *   PostgreSQL: libpq in non-blocking pipeline mode, its socket polled by
 *     the worker's loop (no thread per query); a pool of connections per
 *     worker (CF_DB_POOL_SIZE), requests wait in FIFO order when all are
 *     busy. Queries a request has in flight at once share its connection
 *     and are pipelined (cf_db_start + cf_await_all).
 * Placeholders are $1, $2, ... on both; parameters are always bound. */

/* Error codes of database calls (also CF_ETIMEDOUT, CF_ECANCELED,
 * CF_EINVAL for a parameter count or value that does not fit). The message
 * is in cf_errmsg(rq) (or cf_dbq_errmsg). */
enum {
    CF_EDB = -1200,            /* other database error */
    CF_EDBSYNTAX = -1201,      /* SQL syntax or unknown table/column */
    CF_EUNIQUE = -1202,        /* unique or primary key violation (-> 409) */
    CF_EFOREIGNKEY = -1203,    /* foreign key violation */
    CF_ENOTNULL = -1204,       /* NOT NULL violation */
    CF_ECONSTRAINT = -1205,    /* another constraint (CHECK, ...) */
    CF_EDBCONN = -1206,        /* connection lost or refused */
    CF_EDBURL = -1207,         /* DATABASE_URL missing or malformed */
};

/* A query parameter, always bound (never spliced into the SQL text).
 * Placeholders are $1, $2, ... on both backends. */
typedef struct cf_value {
    enum { CF_V_NULL, CF_V_INT, CF_V_REAL, CF_V_TEXT, CF_V_BLOB } type;
    int64_t i;
    double d;
    const char *s;   /* text (NUL-terminated) or blob bytes */
    size_t len;      /* blob length */
} cf_value;
static inline cf_value cf_v_null(void) { cf_value v = {CF_V_NULL, 0, 0, 0, 0}; return v; }
static inline cf_value cf_v_int(int64_t i) { cf_value v = {CF_V_INT, i, 0, 0, 0}; return v; }
static inline cf_value cf_v_real(double d) { cf_value v = {CF_V_REAL, 0, d, 0, 0}; return v; }
static inline cf_value cf_v_text(const char *s)
{ cf_value v = {s ? CF_V_TEXT : CF_V_NULL, 0, 0, s, 0}; return v; }
static inline cf_value cf_v_blob(const void *p, size_t n)
{ cf_value v = {CF_V_BLOB, 0, 0, (const char *)p, n}; return v; }

/* The result of a statement: rows (fully fetched), affected count, last
 * insert id. Belongs to the request. */
typedef struct cf_rows cf_rows;

/* Choose the app's database from `url` (NULL: the DATABASE_URL environment
 * variable):
 *   sqlite:///relative.db         relative to the current directory
 *   sqlite:////absolute/path.db   (a query such as ?mode=ro is passed to
 *                                 SQLite as URI parameters)
 *   sqlite://:memory:             one in-memory database per worker process,
 *                                 on a single connection (queries take turns)
 *   postgresql://user:pass@host:port/db?...   libpq's URI (postgres:// too)
 * Called at set-up, before cf_run. Only the URL's syntax is checked here
 * (CF_EDBURL, the reason on stderr): nothing connects until the app is
 * served, so `./app --help` needs no database. cf_run (before it forks its
 * workers) and cf_test_client_new then open it: a SQLite file that cannot
 * be opened, a failed schema script or an unset DATABASE_URL stop the
 * start there, with the reason on stderr (cf_run returns 1, the test
 * client is NULL). PostgreSQL connections open lazily in each worker.
 * Opening again replaces the previous database (and its pending scripts). */
int cf_db_open(cf_app *app, const char *url);
/* A schema script (several statements separated by ';'), run once,
 * blocking, on its own connection (not through the pools), when the app
 * is about to be served (see cf_db_open), in the order given; returns 0
 * (CF_EINVAL before cf_db_open). After that (the app already started) it
 * runs at once and returns 0 or a CF_E* code with the reason on stderr.
 * Refused (CF_EPERM) inside a handler. */
int cf_db_exec_script(cf_app *app, const char *sql);
/* Open what the app attached (the database and its pending schema
 * scripts, the queue) now, as cf_run does before serving: for one-off
 * commands such as `--init-db`. 0, or a CF_E* code with the reason on
 * stderr. Blocking; call it at set-up, not in a handler. */
int cf_app_open(cf_app *app);
/* "sqlite" or "postgresql" (NULL before cf_db_open, or when it was given
 * NULL and DATABASE_URL is unset). */
const char *cf_db_backend(const cf_app *app);

/* Database options; set them before cf_run (before or after cf_db_open). */
typedef enum cf_db_option {
    CF_DB_POOL_SIZE,       /* PostgreSQL connections per worker, default 10 */
    CF_DB_CONNECT_TIMEOUT, /* PostgreSQL connection set-up, default 10000 ms */
    CF_DB_BUSY_TIMEOUT,    /* SQLite: wait this long for a lock, default 5000 ms;
                            * then CF_ETIMEDOUT */
    CF_DB_STMT_CACHE,      /* SQLite prepared statements kept per connection,
                            * default 64 (0: none) */
    CF_DB_WAL_LIMIT,       /* SQLite: a commit that finds the write-ahead log
                            * (the -wal file) longer than this checkpoints it
                            * and truncates it, default 16 MiB (at least
                            * 64 KiB); see the guide for the bound it keeps */
    CF_DB_LOOP_READ_STEPS, /* SQLite: a read outside a transaction runs on the
                            * worker's loop thread for up to this many VM
                            * steps, then again on the thread pool; default
                            * 20000 (0: every statement on the pool) */
} cf_db_option;
int cf_db_set(cf_app *app, cf_db_option option, int64_t value);

/* Run one statement with parameters; suspends (a pool-thread hop on
 * SQLite unless a short read ran on the loop, a round trip on PostgreSQL). NULL on failure, with the code in
 * cf_db_error(rq) and the message in cf_errmsg(rq). The rows belong to the
 * request. Not available in threaded routes (NULL, CF_EPERM). */
cf_rows *cf_db_query_n(cf_req *rq, const char *sql, const cf_value *params, size_t n);
#define cf_db_query(rq, ...) CF__DBQ(cf_db_query_n, rq, __VA_ARGS__, CF__DBQ_END)
#define CF__DBQ_END ((cf_value){CF_V_NULL, -4242, 0, 0, 0})
#define CF__DBQ(fn, rq, sql, ...) \
    fn((rq), (sql), (const cf_value[]){__VA_ARGS__}, \
       sizeof((const cf_value[]){__VA_ARGS__}) / sizeof(cf_value) - 1)
/* The error code of the request's last database call (0 if it succeeded). */
int cf_db_error(cf_req *rq);

/* Start a statement without waiting: the handle is awaitable (cf_await,
 * cf_await_all, ...) and its result is 0 or the statement's error. On
 * PostgreSQL the statements a request has in flight together go down one
 * connection in pipeline mode (one round trip for all); on SQLite they run
 * on pool threads side by side. SQL and parameters are copied, so the
 * caller's buffers may go at once. Never NULL; cancelled with the calling
 * task (a running SQLite statement is interrupted). */
typedef struct cf_dbq cf_dbq;
cf_dbq *cf_db_start_n(cf_req *rq, const char *sql, const cf_value *params, size_t n);
#define cf_db_start(rq, ...) CF__DBQ(cf_db_start_n, rq, __VA_ARGS__, CF__DBQ_END)
/* Once it is done: the rows (NULL if it failed), its error code (0, a CF_E*
 * code, or CF_ECANCELED / CF_EINVAL while not done) and message. */
cf_rows *cf_dbq_rows(cf_dbq *q);
int cf_dbq_error(cf_dbq *q);
const char *cf_dbq_errmsg(cf_dbq *q);

/* Rows: a cursor over the fetched result. Before the first cf_rows_next the
 * getters read the first row (handy for one-row results); past the end they
 * read nothing (NULL / 0). Column indexes start at 0. */
bool cf_rows_next(cf_rows *r);             /* advance; false past the end */
size_t cf_rows_count(cf_rows *r);          /* number of rows */
size_t cf_rows_columns(cf_rows *r);
const char *cf_rows_name(cf_rows *r, size_t col);
/* Index of the column called `name`, or -1. */
long cf_rows_index(cf_rows *r, const char *name);
bool cf_row_is_null(cf_rows *r, size_t col);
int64_t cf_row_int(cf_rows *r, size_t col);       /* 0 for NULL; text is parsed */
double cf_row_real(cf_rows *r, size_t col);       /* 0.0 for NULL */
/* NULL for NULL; numbers are formatted (into the request). */
const char *cf_row_text(cf_rows *r, size_t col);
const void *cf_row_blob(cf_rows *r, size_t col, size_t *len);
/* The current row as a JSON object, and the whole result as an array of
 * objects (jsonify(rows)); new references. Integers become JSON integers,
 * reals reals, text strings, NULL null, blobs (SQLite BLOB, PostgreSQL
 * bytea) base64 strings (RFC 4648, with padding); PostgreSQL booleans
 * become true/false, json/jsonb columns embedded JSON, numeric reals.
 * Text that is not valid UTF-8 (SQLite keeps whatever bytes it was given)
 * is still a string: each invalid sequence becomes U+FFFD, exactly as
 * Python's bytes.decode("utf-8", errors="replace") does; cf_row_text and
 * cf_row_blob give the bytes as stored. */
json_t *cf_row_object(cf_rows *r);
json_t *cf_rows_json(cf_rows *r);
/* Rows changed by INSERT/UPDATE/DELETE (0 for other statements). */
int64_t cf_rows_affected(cf_rows *r);
/* SQLite: the rowid of the row an INSERT added (0 otherwise). PostgreSQL:
 * always 0, use INSERT ... RETURNING id (SQLite has RETURNING too). */
int64_t cf_rows_last_id(cf_rows *r);

/* Transactions on one connection, held by the request until commit or
 * rollback; a request that ends (fails, is cancelled, forgets to commit)
 * inside one is rolled back when it ends. Queries of the request between
 * begin and commit use that connection, in order. SQLite begins with BEGIN
 * IMMEDIATE (the write lock is taken at once, other writers wait up to
 * CF_DB_BUSY_TIMEOUT). No nesting (CF_EINVAL). Each suspends. */
int cf_db_begin(cf_req *rq);
/* The transaction ends even if this fails. CF_ECANCELED when the caller was
 * cancelled during the commit: it may have happened. */
int cf_db_commit(cf_req *rq);
int cf_db_rollback(cf_req *rq);

/* ------------------------------------------------------------------ */
/* Task queue                                                         */
/* ------------------------------------------------------------------ */

/* A durable queue of named jobs with JSON payloads (docs/tasks.md).
 * Delivery is at least once: a job is deleted only after its handler
 * returned 0; a failure is retried with exponential back-off, then moved to
 * the dead letters; a job whose worker died is delivered again once its
 * lease (the visibility timeout) has run out. Backend: QUEUE_URL, or
 * cf_queue_open; SQLite by default (jobs survive restarts), or Redis. */
typedef struct cf_job {
    int64_t id;
    const char *name;
    const char *payload;   /* JSON text as enqueued */
    json_t *data;          /* payload parsed (borrowed; NULL if not JSON) */
    int attempt;           /* 1 on the first delivery */
    int max_attempts;
} cf_job;
/* A job handler: runs as a coroutine in a context of its own (like a
 * background task: cf_alloc, cf_sleep, cf_db_query, cf_fetch... all work).
 * Returns 0 (done: acknowledged) or a negative code (retried later). */
typedef int (*cf_job_fn)(cf_req *rq, const cf_job *job);

typedef struct cf_queue_opts {
    int concurrency;        /* jobs of this name at once per worker (default 16) */
    int max_attempts;       /* deliveries before the dead letters (default 5) */
    int64_t backoff_ms;     /* retry n waits backoff_ms * 2^(n-1) (default 1000, max 1 h) */
    int64_t visibility_ms;  /* lease of a claimed job (default 30000), renewed
                             * while it runs: how long a dead worker's jobs
                             * wait before another worker takes them */
} cf_queue_opts;

/* Choose the backend before cf_run (NULL: QUEUE_URL; unset: the file
 * beside the app's SQLite database, "<db>-queue.db", else queue.db in the
 * current directory):
 *   sqlite:///relative.db, sqlite:////absolute/path.db
 *   redis://[[user]:password@]host[:port][/db]   Redis Streams (several
 *                                  machines); percent-encode the password
 * Checks the URL: 0, or CF_EDBURL with the reason on stderr. When the app
 * is about to be served (like cf_db_open: not at set-up, so --help needs
 * no queue) it creates the SQLite tables if needed / checks that Redis
 * answers (AUTH, SELECT, PING), or stops the start with the reason on
 * stderr. Called implicitly by the first cf_queue_handler. */
int cf_queue_open(cf_app *app, const char *url);
/* Register the handler of job `name` (opts NULL: defaults). At start-up. */
int cf_queue_handler(cf_app *app, const char *name, cf_job_fn fn, const cf_queue_opts *opts);
/* Enqueue job `name` once per period of `period_s` seconds (periods are
 * aligned on the Unix epoch) across every worker and process sharing the
 * queue: a (name, period start) row with a unique key decides who does.
 * Its payload is {"period_start": <unix seconds>}. Needs a handler. */
int cf_queue_periodic(cf_app *app, const char *name, int64_t period_s);
/* The same on a cron schedule, "min hour day month weekday" in UTC (e.g.
 * "*\/15 * * * *", "0 3 * * 1-5"; numbers, ranges, steps and lists): one
 * run per matching minute across every worker and process. Payload
 * {"period_start": <unix seconds of that minute>}. */
int cf_queue_cron(cf_app *app, const char *name, const char *schedule);
/* Enqueue from any task (handler, background task, job): payload_json is
 * JSON text (NULL: "{}"), run no earlier than delay_ms from now. Suspends
 * (a pool-thread hop). Returns the job id (> 0) or a negative CF_E* code
 * (CF_EINVAL: bad name or payload not JSON; CF_EPERM: no queue). */
int64_t cf_enqueue(cf_req *rq, const char *name, const char *payload_json, int64_t delay_ms);
/* The same, to run at `at_ms` (Unix time in milliseconds). */
int64_t cf_enqueue_at(cf_req *rq, const char *name, const char *payload_json, int64_t at_ms);
/* Dead letters (name NULL: all), oldest first, at most `limit` (0: 100):
 * a new JSON array of {"id", "job_id", "name", "payload", "attempts",
 * "error", "failed_at"}; NULL on error. Suspends. */
json_t *cf_queue_dead(cf_req *rq, const char *name, size_t limit);
/* Put dead letter `dead_id` (0: all of them) back in the queue with a fresh
 * attempt count. Returns how many were re-queued, or a negative code. */
int64_t cf_queue_requeue(cf_req *rq, int64_t dead_id);
/* Jobs waiting or running (not dead), of `name` (NULL: all). Suspends. */
int64_t cf_queue_pending(cf_req *rq, const char *name);

#pragma GCC visibility pop

#include "carafe/testing.h" /* the in-process test client */

#endif /* CARAFE_H */
