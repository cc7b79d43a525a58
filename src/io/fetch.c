/*
 * fetch.c — the outgoing HTTP client: libcurl's multi-socket interface
 * driven by the worker's libuv loop.
 *
 * One CURLM per loop (the scheduler's CF_SVC_FETCH slot), created on first
 * use. libcurl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION: one
 * uv_poll per socket) and when to call it back (CURLMOPT_TIMERFUNCTION: one
 * uv_timer); we hand it socket events through curl_multi_socket_action and
 * collect finished transfers with curl_multi_info_read. No thread per call:
 * every transfer of the worker runs on its loop, and the multi's connection
 * cache keeps connections (and a share handle TLS sessions and DNS answers)
 * for the next request. Easy handles are pooled per loop as well.
 *
 * A fetch is a cf_waitable in the request's arena, owned by the task that
 * started it. Its life on the loop: added to the multi (the request's scope
 * is referenced, so its memory outlives every libcurl callback for it) →
 * either finished by libcurl (DONE message) or cancelled (the cancel
 * callback removes it from the multi at once, so no callback fires for it
 * afterwards) → removed, easy handle back to the pool, waitable completed
 * (which may run the awaiting task at once), scope released. Bodies grow in malloc'd memory (a big response need
 * not fit an arena block, and growing never copies arena memory around),
 * freed with the request by a deferred callback, like the parsed JSON.
 *
 * Name resolution: Debian's libcurl uses its threaded resolver
 * (CURL_VERSION_ASYNCHDNS; checked once, with a warning if missing), so a
 * lookup never blocks the loop; it costs a short-lived thread per lookup
 * that misses the DNS cache (60 s), none for numeric addresses, and with
 * CURLOPT_QUICK_EXIT a cancelled lookup is detached, not joined.
 *
 * In a threaded handler (a pool thread, no loop) a fetch is performed at
 * once with curl_easy_perform on a private easy handle: blocking that
 * thread is the point of such handlers.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <uv.h>

#include "app/req.h"
#include "core/sched.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_MAX_BODY ((size_t)16 << 20)
#define MAX_REDIRECTS 10
/* Response header bytes kept per call (all responses of a redirect chain
 * together): a server sending headers without end must not grow the
 * request's memory without end. */
#define MAX_HEADER_BYTES ((size_t)256 << 10)
#define EASY_POOL_MAX 64
#define MAX_CACHED_CONNECTIONS 256

typedef struct fetch_svc fetch_svc;
typedef struct sock_ctx sock_ctx;

typedef struct fetch_hdr {
    const char *name, *value;
} fetch_hdr;

struct cf_fetch {
    cf_waitable w; /* first: a fetch is awaitable */
    cf_req *rq;
    cf_scope *scope; /* referenced while in the multi */
    fetch_svc *svc;
    CURL *easy;
    struct curl_slist *req_headers;
    const char *method;
    const char *url;     /* as called, query included */
    const char *eff_url; /* after redirects */
    cf_fetch *prev, *next; /* svc->active while in the multi */
    bool in_multi;
    bool zombie; /* cancelled inside a libcurl call: removed afterwards */
    bool toobig;
    bool headers_toobig;
    size_t header_bytes;
    bool json_done;
    int status;
    int error;
    const char *errmsg;
    size_t max_body;
    char *body; /* malloc'd, NUL-terminated when done */
    size_t len, cap;
    fetch_hdr *hdrs;
    size_t nhdrs, hdrs_cap;
    json_t *json;
    const char *req_body; /* kept until the transfer ends (POSTFIELDS) */
    char errbuf[CURL_ERROR_SIZE];
};

struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    fetch_svc *svc;
    sock_ctx *prev, *next;
};

struct fetch_svc {
    uv_loop_t *loop;
    CURLM *multi;
    CURLSH *share;
    uv_timer_t timer;
    CURL *pool[EASY_POOL_MAX];
    size_t npool;
    cf_fetch *active;   /* fetches in the multi */
    cf_fetch *zombies;  /* cancelled inside libcurl, removed after it returns */
    sock_ctx *socks;    /* watched sockets */
    int in_curl;        /* inside curl_multi_socket_action */
};

/* ---- process-wide set-up ------------------------------------------------ */

/* The only process-wide state: libcurl's own one-time initialisation. */
static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static bool global_ok;

static void global_init(void)
{
    /* Thread-safe itself in this libcurl (CURL_VERSION_THREADSAFE), but
     * older ones are not, and once per process is all it needs. */
    global_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    if (global_ok && !(v->features & CURL_VERSION_ASYNCHDNS))
        fprintf(stderr, "carafe: warning: libcurl %s resolves host names synchronously; "
                        "a DNS lookup in cf_fetch_* blocks the worker\n", v->version);
}

/* ---- messages ----------------------------------------------------------- */

/* The URL for messages: without user:password@. */
static const char *url_for_msg(cf_req *rq, const char *url)
{
    const char *auth = strstr(url, "://");
    if (!auth)
        return url;
    auth += 3;
    size_t alen = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', alen);
    if (!at)
        return url;
    return cf_sprintf(rq, "%.*s%s", (int)(auth - url), url, at + 1);
}

static const char *what_failed(int code)
{
    switch (code) {
    case CF_EDNS: return "could not resolve the host name";
    case CF_ECONNREFUSED: return "could not connect";
    case CF_ETLS: return "TLS failure";
    case CF_ETOOBIG: return "response too large";
    case CF_ETIMEDOUT: return "timed out";
    case CF_ECANCELED: return "cancelled";
    case CF_EINVAL: return "invalid request";
    case CF_ENOMEM: return "out of memory";
    case CF_EPERM: return "not allowed here";
    default: return "transfer failed";
    }
}

/* Record the error and its message ("GET http://x/y: timed out (...)"). */
static void set_error(cf_fetch *f, int code, const char *detail)
{
    cf_req *rq = f->rq;
    f->error = code;
    const char *url = url_for_msg(rq, f->url ? f->url : "(no URL)");
    if (detail && *detail)
        f->errmsg = cf_sprintf(rq, "%s %s: %s (%s)", f->method, url, what_failed(code), detail);
    else
        f->errmsg = cf_sprintf(rq, "%s %s: %s", f->method, url, what_failed(code));
    /* The handler's view of it: cf_errmsg(rq) after a failed await. */
    if (code != CF_ECANCELED)
        rq->errmsg = f->errmsg;
}

static int map_curl_error(cf_fetch *f, CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return 0;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return CF_EDNS;
    case CURLE_COULDNT_CONNECT:
        return CF_ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        return CF_ETIMEDOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
        return CF_ETLS;
    case CURLE_FILESIZE_EXCEEDED:
        return CF_ETOOBIG;
    case CURLE_WRITE_ERROR:
        return f->toobig ? CF_ETOOBIG : CF_ENETWORK;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT:
        return CF_EINVAL;
    case CURLE_OUT_OF_MEMORY:
        return CF_ENOMEM;
    default:
        return CF_ENETWORK;
    }
}

/* ---- libcurl callbacks for one transfer ---------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    cf_fetch *f = ud;
    size_t n = size * nmemb;
    if (f->zombie)
        return 0; /* abort: nobody wants it any more */
    if (n > f->max_body - f->len) {
        f->toobig = true;
        return 0; /* CURLE_WRITE_ERROR, reported as CF_ETOOBIG */
    }
    if (f->len + n + 1 > f->cap) {
        size_t want = f->cap ? f->cap * 2 : 4096;
        if (!f->cap) {
            /* Size the first buffer from Content-Length when there is one. */
            curl_off_t cl = -1;
            if (curl_easy_getinfo(f->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK &&
                cl > 0 && (uint64_t)cl < f->max_body && (uint64_t)cl < ((size_t)1 << 40))
                want = (size_t)cl + 1;
        }
        if (want < f->len + n + 1)
            want = f->len + n + 1;
        char *p = realloc(f->body, want);
        if (!p)
            return 0;
        f->body = p;
        f->cap = want;
    }
    memcpy(f->body + f->len, data, n);
    f->len += n;
    return n;
}

static char *arena_strndup(cf_req *rq, const char *s, size_t n)
{
    char *p = cf_alloc(rq, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    cf_fetch *f = ud;
    size_t n = size * nmemb;
    if (f->zombie)
        return 0;
    if (n > MAX_HEADER_BYTES - f->header_bytes) {
        f->toobig = f->headers_toobig = true;
        return 0; /* CURLE_WRITE_ERROR, reported as CF_ETOOBIG */
    }
    f->header_bytes += n;
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* A new response (an interim 1xx, or the next after a redirect):
         * only the last one's headers are kept. */
        f->nhdrs = 0;
        return n;
    }
    size_t len = n;
    while (len && (data[len - 1] == '\r' || data[len - 1] == '\n'))
        len--;
    if (!len || data[0] == ' ' || data[0] == '\t')
        return n; /* the blank line, or obsolete line folding */
    const char *colon = memchr(data, ':', len);
    if (!colon || colon == data)
        return n;
    const char *v = colon + 1, *end = data + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (f->nhdrs == f->hdrs_cap) {
        size_t cap = f->hdrs_cap ? f->hdrs_cap * 2 : 16;
        fetch_hdr *h = cf_alloc(f->rq, cap * sizeof *h);
        if (f->nhdrs)
            memcpy(h, f->hdrs, f->nhdrs * sizeof *h);
        f->hdrs = h;
        f->hdrs_cap = cap;
    }
    f->hdrs[f->nhdrs].name = arena_strndup(f->rq, data, (size_t)(colon - data));
    f->hdrs[f->nhdrs].value = arena_strndup(f->rq, v, (size_t)(end - v));
    f->nhdrs++;
    return n;
}

/* ---- building the request ------------------------------------------------ */

static bool is_unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Write name=value&... percent-encoded (form: space as '+') at `out`, which
 * must hold pairs_size(pairs) bytes. Returns the new end; *odd is set when
 * a name has no value. */
static char *encode_pairs(char *out, const char *const *pairs, bool form, bool *odd)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i = 0;
    for (; pairs[i]; i++) {
        if (i % 2 == 0 && i > 0)
            *out++ = '&';
        else if (i % 2 == 1)
            *out++ = '=';
        for (const unsigned char *s = (const unsigned char *)pairs[i]; *s; s++) {
            if (is_unreserved(*s)) {
                *out++ = (char)*s;
            } else if (*s == ' ' && form) {
                *out++ = '+';
            } else {
                *out++ = '%';
                *out++ = hex[*s >> 4];
                *out++ = hex[*s & 15];
            }
        }
    }
    *odd = i % 2 != 0;
    return out;
}

static size_t pairs_size(const char *const *pairs)
{
    size_t n = 0;
    for (size_t i = 0; pairs[i]; i++)
        n += 3 * strlen(pairs[i]) + 1;
    return n;
}

/* url + '?'/'&' + encoded query, before any #fragment. NULL: odd list. */
static const char *build_url(cf_req *rq, const char *url, const char *const *query)
{
    if (!query || !query[0])
        return url;
    size_t frag = strcspn(url, "#");
    char *out = cf_alloc(rq, strlen(url) + pairs_size(query) + 2);
    memcpy(out, url, frag);
    char *p = out + frag;
    const char *q = memchr(url, '?', frag);
    if (!q)
        *p++ = '?';
    else if (p[-1] != '?' && p[-1] != '&')
        *p++ = '&';
    bool odd;
    p = encode_pairs(p, query, false, &odd);
    strcpy(p, url + frag);
    return odd ? NULL : out;
}

static bool is_token(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return false;
    return true;
}

static bool has_header(const char *const *headers, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; headers && headers[i]; i++)
        if (strncasecmp(headers[i], name, n) == 0 && (headers[i][n] == ':' || headers[i][n] == ';'))
            return true;
    return false;
}

static void free_json_dump(void *p) { free(p); }

/* Set every option of the transfer. Returns 0 or an error (with the
 * message already set). */
static int setup(cf_fetch *f, CURL *e, const cf_fetch_opts *o, fetch_svc *svc)
{
    static const cf_fetch_opts none;
    if (!o)
        o = &none;
    cf_req *rq = f->rq;
    const char *const *h = o->headers;
    struct curl_slist *sl = NULL;
#define ADD(s) do { struct curl_slist *n_ = curl_slist_append(sl, (s)); \
                    if (!n_) { curl_slist_free_all(sl); return CF_ENOMEM; } sl = n_; } while (0)
    for (size_t i = 0; h && h[i]; i++) {
        const char *c = strpbrk(h[i], ":;");
        if (strpbrk(h[i], "\r\n") || !c || c == h[i]) {
            curl_slist_free_all(sl);
            set_error(f, CF_EINVAL, cf_sprintf(rq, "bad header \"%s\"", h[i]));
            return CF_EINVAL;
        }
        ADD(h[i]);
    }
    /* curl would send Expect: 100-continue for big bodies and wait up to a
     * second for servers that ignore it. */
    if (!has_header(h, "Expect"))
        ADD("Expect:");

    const char *body = o->body;
    size_t body_len = o->body_len;
    const char *ctype = NULL;
    if (o->json) {
        char *dump = json_dumps(o->json, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!dump) {
            curl_slist_free_all(sl);
            set_error(f, CF_EINVAL, "the JSON body could not be serialized");
            return CF_EINVAL;
        }
        cf_defer(rq, free_json_dump, dump);
        body = dump;
        body_len = strlen(dump);
        ctype = "Content-Type: application/json";
    } else if (o->form) {
        char *fb = cf_alloc(rq, pairs_size(o->form) + 1);
        bool odd;
        char *end = encode_pairs(fb, o->form, true, &odd);
        *end = 0;
        if (odd) {
            curl_slist_free_all(sl);
            set_error(f, CF_EINVAL, "the form list has a name without a value");
            return CF_EINVAL;
        }
        body = fb;
        body_len = (size_t)(end - fb);
        ctype = "Content-Type: application/x-www-form-urlencoded";
    }
    if (ctype && !has_header(h, "Content-Type"))
        ADD(ctype);
#undef ADD
    f->req_headers = sl;
    f->req_body = body;

    int64_t cto = o->connect_timeout_ms ? o->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    int64_t to = o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    f->max_body = o->max_body ? o->max_body : DEFAULT_MAX_BODY;

    curl_easy_setopt(e, CURLOPT_PRIVATE, f);
    curl_easy_setopt(e, CURLOPT_URL, f->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075700
    /* Removing a transfer (cancel, connect timeout) while its host name is
     * being resolved would otherwise join the resolver thread, blocking
     * the loop until getaddrinfo returns; this detaches it instead (the
     * thread frees its own state when the lookup ends). */
    curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
#endif
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, f->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, sl);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "carafe/" CF_VERSION);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* all it can decode */
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, cto > 0 ? (long)cto : 0L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, to > 0 ? (long)to : 0L);
    if (f->max_body != SIZE_MAX)
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)f->max_body);
    if (o->follow_redirects) {
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)MAX_REDIRECTS);
    }
    if (o->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
    if (svc) {
        curl_easy_setopt(e, CURLOPT_SHARE, svc->share);
        /* Over TLS, wait for the first connection to a host to learn
         * whether it multiplexes (HTTP/2) instead of opening one per call. */
        if (strncasecmp(f->url, "https:", 6) == 0)
            curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    }

    const char *m = f->method;
    bool with_body = body || o->json || o->form;
    if (strcmp(m, "HEAD") == 0 && !with_body) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(m, "GET") == 0 && !with_body) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        /* POST, PUT and PATCH always send a body (maybe empty: Content-Length: 0). */
        if (with_body || !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH")) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
        }
        if (strcmp(m, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
    }
    return 0;
}

/* ---- the loop side ------------------------------------------------------- */

static void svc_process(fetch_svc *svc);

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_ctx *c = h->data;
    fetch_svc *svc = c->svc;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    svc->in_curl++;
    curl_multi_socket_action(svc->multi, c->fd, flags, &running);
    svc->in_curl--;
    svc_process(svc);
}

static void free_sock_ctx(uv_handle_t *h) { free(h->data); }

static void sock_close(fetch_svc *svc, sock_ctx *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        svc->socks = c->next;
    if (c->next)
        c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->poll, free_sock_ctx);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)e;
    fetch_svc *svc = userp;
    sock_ctx *c = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (c) {
            curl_multi_assign(svc->multi, s, NULL);
            sock_close(svc, c);
        }
        return 0;
    }
    if (!c) {
        c = malloc(sizeof *c);
        if (!c)
            return -1;
        if (uv_poll_init_socket(svc->loop, &c->poll, s) != 0) {
            free(c);
            return -1;
        }
        c->fd = s;
        c->svc = svc;
        c->poll.data = c;
        c->prev = NULL;
        c->next = svc->socks;
        if (svc->socks)
            svc->socks->prev = c;
        svc->socks = c;
        curl_multi_assign(svc->multi, s, c);
    }
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    return uv_poll_start(&c->poll, ev, on_poll) == 0 ? 0 : -1;
}

static void on_timer(uv_timer_t *t)
{
    fetch_svc *svc = t->data;
    int running;
    svc->in_curl++;
    curl_multi_socket_action(svc->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    svc->in_curl--;
    svc_process(svc);
}

static int on_curl_timer(CURLM *m, long ms, void *userp)
{
    (void)m;
    fetch_svc *svc = userp;
    if (ms < 0)
        uv_timer_stop(&svc->timer);
    else
        uv_timer_start(&svc->timer, on_timer, (uint64_t)ms, 0);
    return 0;
}

static CURL *easy_get(fetch_svc *svc)
{
    if (svc->npool)
        return svc->pool[--svc->npool];
    return curl_easy_init();
}

static void easy_put(fetch_svc *svc, CURL *e)
{
    if (svc->npool < EASY_POOL_MAX) {
        curl_easy_reset(e); /* keeps its caches, drops our options */
        svc->pool[svc->npool++] = e;
    } else {
        curl_easy_cleanup(e);
    }
}

static void active_unlink(fetch_svc *svc, cf_fetch *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else
        svc->active = f->next;
    if (f->next)
        f->next->prev = f->prev;
    f->prev = f->next = NULL;
}

/* Take the transfer out of the multi and give its handle back. */
static void fetch_remove(cf_fetch *f)
{
    fetch_svc *svc = f->svc;
    active_unlink(svc, f);
    curl_multi_remove_handle(svc->multi, f->easy);
    curl_slist_free_all(f->req_headers);
    f->req_headers = NULL;
    easy_put(svc, f->easy);
    f->easy = NULL;
    f->in_multi = false;
}

/* The request's memory may go once every fetch of it left the multi. */
static void fetch_release_scope(cf_fetch *f)
{
    cf_scope *s = f->scope;
    f->scope = NULL;
    if (s)
        cf_scope_unref(s); /* last: may free f itself */
}

/* Results of a transfer libcurl ended (or curl_easy_perform returned). */
static void fetch_collect(cf_fetch *f, CURL *e, CURLcode rc)
{
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    f->status = (int)code;
    char *eff = NULL;
    if (curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &eff) == CURLE_OK && eff)
        f->eff_url = cf_strdup(f->rq, eff);
    if (f->body)
        f->body[f->len] = 0;
    int err = map_curl_error(f, rc);
    if (err) {
        const char *detail = f->errbuf[0] ? f->errbuf : curl_easy_strerror(rc);
        if (err == CF_ETOOBIG && f->headers_toobig)
            detail = cf_sprintf(f->rq, "response headers over %zu bytes", MAX_HEADER_BYTES);
        else if (err == CF_ETOOBIG)
            detail = cf_sprintf(f->rq, "more than max_body = %zu bytes", f->max_body);
        set_error(f, err, detail);
    }
}

static void svc_process(fetch_svc *svc)
{
    if (svc->in_curl)
        return;
    /* Fetches cancelled while libcurl was running (never, as the code
     * stands: nothing in our callbacks runs tasks; kept for safety). */
    while (svc->zombies) {
        cf_fetch *f = svc->zombies;
        svc->zombies = f->next;
        f->next = NULL;
        curl_multi_remove_handle(svc->multi, f->easy);
        curl_slist_free_all(f->req_headers);
        f->req_headers = NULL;
        easy_put(svc, f->easy);
        f->easy = NULL;
        f->in_multi = false;
        fetch_release_scope(f);
    }
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(svc->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *e = msg->easy_handle;
        CURLcode rc = msg->data.result;
        char *priv = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        cf_fetch *f = (cf_fetch *)priv;
        if (!f || !f->in_multi || f->zombie)
            continue;
        fetch_collect(f, e, rc);
        fetch_remove(f);
        /* Waking the awaiting task runs it right away; it may start or
         * cancel other fetches, which libcurl allows here (we are not in
         * one of its callbacks), and removing a handle drops its pending
         * message, so the loop goes on safely. */
        cf_waitable_complete(&f->w, f->error);
        fetch_release_scope(f);
    }
    cf_sched_run();
}

static void free_svc(uv_handle_t *h) { free(h->data); }

/* Scheduler close: the requests are gone (or abandoned by a forced stop).
 * Nothing here wakes a task any more. */
static void svc_close(void *state)
{
    fetch_svc *svc = state;
    while (svc->zombies) {
        cf_fetch *f = svc->zombies;
        svc->zombies = f->next;
        curl_multi_remove_handle(svc->multi, f->easy);
        curl_easy_cleanup(f->easy);
        curl_slist_free_all(f->req_headers);
    }
    while (svc->active) {
        cf_fetch *f = svc->active;
        active_unlink(svc, f);
        curl_multi_remove_handle(svc->multi, f->easy);
        curl_easy_cleanup(f->easy);
        curl_slist_free_all(f->req_headers);
        f->easy = NULL;
        f->req_headers = NULL;
        f->in_multi = false;
    }
    /* Stop watching first, so libcurl closing its cached connections below
     * finds no watcher on a socket it closes. */
    while (svc->socks) {
        sock_ctx *c = svc->socks;
        curl_multi_assign(svc->multi, c->fd, NULL);
        sock_close(svc, c);
    }
    while (svc->npool)
        curl_easy_cleanup(svc->pool[--svc->npool]);
    curl_multi_cleanup(svc->multi);
    curl_share_cleanup(svc->share);
    /* If libcurl re-registered a socket while closing, let it go too. */
    while (svc->socks)
        sock_close(svc, svc->socks);
    uv_timer_stop(&svc->timer);
    svc->timer.data = svc;
    uv_close((uv_handle_t *)&svc->timer, free_svc);
}

static fetch_svc *svc_get(void)
{
    fetch_svc *svc = cf_sched_service(CF_SVC_FETCH);
    if (svc)
        return svc;
    pthread_once(&global_once, global_init);
    if (!global_ok)
        return NULL;
    svc = calloc(1, sizeof *svc);
    if (!svc)
        return NULL;
    svc->loop = cf_sched_get()->loop;
    svc->multi = curl_multi_init();
    svc->share = curl_share_init();
    if (!svc->multi || !svc->share || uv_timer_init(svc->loop, &svc->timer) != 0) {
        if (svc->multi)
            curl_multi_cleanup(svc->multi);
        if (svc->share)
            curl_share_cleanup(svc->share);
        free(svc);
        return NULL;
    }
    svc->timer.data = svc;
    /* One thread per loop: the share needs no lock callbacks. */
    curl_share_setopt(svc->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(svc->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_multi_setopt(svc->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(svc->multi, CURLMOPT_SOCKETDATA, svc);
    curl_multi_setopt(svc->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(svc->multi, CURLMOPT_TIMERDATA, svc);
    curl_multi_setopt(svc->multi, CURLMOPT_MAXCONNECTS, (long)MAX_CACHED_CONNECTIONS);
    cf_sched_set_service(CF_SVC_FETCH, svc, svc_close);
    return svc;
}

/* ---- the public calls ----------------------------------------------------- */

static void fetch_cancel(cf_waitable *w)
{
    cf_fetch *f = (cf_fetch *)w;
    if (f->w.done)
        return;
    set_error(f, CF_ECANCELED, NULL);
    if (f->in_multi) {
        fetch_svc *svc = f->svc;
        if (svc->in_curl) {
            /* libcurl is on the stack: it cannot remove the handle now.
             * The callbacks ignore the transfer from here on, and the
             * scope stays referenced until it is removed. */
            active_unlink(svc, f);
            f->zombie = true;
            f->next = svc->zombies;
            svc->zombies = f;
            cf_waitable_complete(&f->w, CF_ECANCELED);
            return;
        }
        fetch_remove(f);
        cf_waitable_complete(&f->w, CF_ECANCELED);
        fetch_release_scope(f);
        return;
    }
    cf_waitable_complete(&f->w, CF_ECANCELED);
}

static void fetch_free(void *p)
{
    cf_fetch *f = p;
    free(f->body);
    json_decref(f->json);
}

static cf_fetch *fetch_new(cf_req *rq, const char *method, const char *url)
{
    if (!rq) {
        fprintf(stderr, "carafe: cf_fetch_start needs the request\n");
        abort();
    }
    cf_fetch *f = cf_alloc(rq, sizeof *f);
    memset(f, 0, sizeof *f);
    cf_waitable_init(&f->w, fetch_cancel);
    f->rq = rq;
    f->url = url ? cf_strdup(rq, url) : NULL;
    char *m = cf_strdup(rq, method ? method : "GET");
    for (char *p = m; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    f->method = m;
    cf_defer(rq, fetch_free, f);
    return f;
}

static cf_fetch *fetch_fail(cf_fetch *f, int code, const char *detail)
{
    set_error(f, code, detail);
    cf_waitable_complete(&f->w, code);
    return f;
}

/* A threaded handler: perform the call here, blocking this thread. */
static cf_fetch *fetch_blocking(cf_fetch *f, const cf_fetch_opts *opts)
{
    pthread_once(&global_once, global_init);
    CURL *e = global_ok ? curl_easy_init() : NULL;
    if (!e)
        return fetch_fail(f, CF_ENOMEM, "no libcurl handle");
    f->easy = e;
    int rc = setup(f, e, opts, NULL);
    if (rc == 0) {
        CURLcode cr = curl_easy_perform(e);
        fetch_collect(f, e, cr);
    } else if (!f->error) {
        set_error(f, rc, NULL);
    }
    curl_slist_free_all(f->req_headers);
    f->req_headers = NULL;
    curl_easy_cleanup(e);
    f->easy = NULL;
    cf_waitable_complete(&f->w, f->error);
    return f;
}

cf_fetch *cf_fetch_start(cf_req *rq, const char *method, const char *url,
                         const cf_fetch_opts *opts)
{
    cf_fetch *f = fetch_new(rq, method, url);
    if (!url || !*url)
        return fetch_fail(f, CF_EINVAL, "no URL given");
    if (!is_token(f->method))
        return fetch_fail(f, CF_EINVAL, "the method is not an HTTP token");
    if (strpbrk(url, "\r\n\t "))
        return fetch_fail(f, CF_EINVAL, "the URL has white space or control characters");
    if (opts && opts->query) {
        const char *full = build_url(rq, f->url, opts->query);
        if (!full)
            return fetch_fail(f, CF_EINVAL, "the query list has a name without a value");
        f->url = full;
    }
    if (!cf_on_loop_thread())
        return fetch_blocking(f, opts);

    cf_task *t = cf_task_current();
    if (t && t->cancelled && !t->shielded)
        return fetch_fail(f, CF_ECANCELED, NULL);
    fetch_svc *svc = svc_get();
    if (!svc)
        return fetch_fail(f, CF_ENOMEM, "the HTTP client could not start");
    CURL *e = easy_get(svc);
    if (!e)
        return fetch_fail(f, CF_ENOMEM, "no libcurl handle");
    f->svc = svc;
    f->easy = e;
    int rc = setup(f, e, opts, svc);
    if (rc != 0) {
        curl_slist_free_all(f->req_headers);
        f->req_headers = NULL;
        easy_put(svc, e);
        f->easy = NULL;
        if (!f->error)
            set_error(f, rc, NULL);
        cf_waitable_complete(&f->w, rc);
        return f;
    }
    if (curl_multi_add_handle(svc->multi, e) != CURLM_OK) {
        curl_slist_free_all(f->req_headers);
        f->req_headers = NULL;
        easy_put(svc, e);
        f->easy = NULL;
        return fetch_fail(f, CF_ENOMEM, "libcurl refused the transfer");
    }
    f->in_multi = true;
    f->next = svc->active;
    if (svc->active)
        svc->active->prev = f;
    svc->active = f;
    f->scope = cf__req_scope(rq);
    cf_scope_ref(f->scope);
    return f;
}

cf_fetch *cf_fetch_do(cf_req *rq, const char *method, const char *url, const cf_fetch_opts *opts)
{
    cf_fetch *f = cf_fetch_start(rq, method, url, opts);
    if (!f->w.done) {
        int rc = cf_await(rq, f, -1);
        if (!f->w.done) { /* the await itself failed (e.g. outside a task) */
            cf_cancel(f);
            if (rc != CF_ECANCELED && f->error == CF_ECANCELED)
                f->error = rc;
        }
    }
    return f;
}

int cf_fetch_error(cf_fetch *f) { return f ? f->error : CF_EINVAL; }

const char *cf_fetch_errmsg(cf_fetch *f) { return f && f->errmsg ? f->errmsg : ""; }

int cf_fetch_status(cf_fetch *f) { return f ? f->status : 0; }

const char *cf_fetch_header(cf_fetch *f, const char *name)
{
    if (!f || !name)
        return NULL;
    for (size_t i = 0; i < f->nhdrs; i++)
        if (strcasecmp(f->hdrs[i].name, name) == 0)
            return f->hdrs[i].value;
    return NULL;
}

bool cf_fetch_header_at(cf_fetch *f, size_t i, const char **name, const char **value)
{
    if (!f || i >= f->nhdrs)
        return false;
    if (name)
        *name = f->hdrs[i].name;
    if (value)
        *value = f->hdrs[i].value;
    return true;
}

const char *cf_fetch_body(cf_fetch *f, size_t *len)
{
    if (len)
        *len = f && f->body ? f->len : 0;
    return f && f->body ? f->body : "";
}

json_t *cf_fetch_json(cf_fetch *f)
{
    if (!f || !f->w.done)
        return NULL;
    if (!f->json_done) {
        f->json_done = true;
        if (f->body && f->len)
            f->json = json_loadb(f->body, f->len, JSON_DECODE_ANY, NULL);
    }
    return f->json;
}

const char *cf_fetch_url(cf_fetch *f)
{
    if (!f)
        return NULL;
    return f->eff_url ? f->eff_url : f->url;
}

int cf_fetch_raise_for_status(cf_fetch *f)
{
    if (!f)
        return CF_EINVAL;
    if (!f->w.done) {
        f->rq->errmsg = "cf_fetch_raise_for_status: the fetch has not finished";
        return CF_EINVAL;
    }
    if (f->error) {
        if (f->errmsg && f->error != CF_ECANCELED)
            f->rq->errmsg = f->errmsg;
        return f->error;
    }
    if (f->status >= 200 && f->status < 300)
        return 0;
    cf_req *rq = f->rq;
    f->error = CF_EHTTPSTATUS;
    f->errmsg = cf_sprintf(rq, "%s %s: HTTP status %d", f->method,
                           url_for_msg(rq, cf_fetch_url(f)), f->status);
    rq->errmsg = f->errmsg;
    return CF_EHTTPSTATUS;
}

int cf_fetch_all(cf_req *rq, const char *const *urls, size_t n, size_t concurrency,
                 const cf_fetch_opts *opts, cf_fetch **out)
{
    if (!rq || !out || (n && !urls))
        return CF_EINVAL;
    if (concurrency == 0 || concurrency > n)
        concurrency = n;
    size_t next = 0;
    int rc = 0;
    if (!cf_on_loop_thread()) {
        for (; next < n; next++)
            out[next] = cf_fetch_start(rq, "GET", urls[next], opts); /* blocking */
    } else if (concurrency == n) {
        /* No cap: one gather over all of them. */
        for (; next < n; next++)
            out[next] = cf_fetch_start(rq, "GET", urls[next], opts);
        int k = cf_await_all_n(rq, (void *const *)out, n, -1);
        for (size_t i = 0; i < n; i++) {
            if (!out[i]->w.done) { /* the wait itself failed */
                cf_cancel(out[i]);
                rc = k;
            }
        }
    } else {
        void **inflight = cf_alloc(rq, concurrency * sizeof *inflight);
        size_t nin = 0;
        for (;;) {
            while (next < n && nin < concurrency) {
                out[next] = cf_fetch_start(rq, "GET", urls[next], opts);
                inflight[nin++] = out[next++];
            }
            if (nin == 0)
                break;
            int k = cf_await_any_n(rq, inflight, nin, -1);
            if (k < 0) {
                /* Cancelled (the in-flight calls were cancelled with the
                 * task): the rest never starts. */
                for (size_t i = 0; i < nin; i++)
                    cf_cancel(inflight[i]);
                for (; next < n; next++)
                    out[next] = fetch_fail(fetch_new(rq, "GET", urls[next]), k, NULL);
                rc = k;
                break;
            }
            size_t keep = 0;
            for (size_t i = 0; i < nin; i++)
                if (!((cf_waitable *)inflight[i])->done)
                    inflight[keep++] = inflight[i];
            nin = keep;
        }
    }
    const char *msg = NULL;
    for (size_t i = 0; i < n; i++) {
        int e = cf_fetch_raise_for_status(out[i]);
        if (e && !rc) {
            rc = e;
            msg = out[i]->errmsg;
        }
    }
    if (msg)
        rq->errmsg = msg;
    return rc;
}
