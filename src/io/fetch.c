/*
 * fetch.c — the outgoing HTTP client: libcurl's multi-socket interface
 * driven by the worker's libuv loop.
 *
 * This file has the public calls (cf_fetch_start and the rest of
 * cf_fetch_*: results, headers, body, JSON, status checks, cancellation,
 * cf_fetch_all) and the errors and their messages. fetch_loop.c drives the
 * loop's multi handle (one CURLM per loop, a uv_poll per socket, a timer,
 * pooled easy handles); fetch_req.c sets up one transfer's easy handle and
 * takes in its response. No thread per call: every transfer of the worker
 * runs on its loop, and the multi's connection cache keeps connections
 * (and a share handle TLS sessions and DNS answers) for the next request.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fetch_int.h"

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
void cf__fetch_set_error(cf_fetch *f, int code, const char *detail)
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

/* ---- results ------------------------------------------------------------ */

/* Results of a transfer libcurl ended (or curl_easy_perform returned). */
void cf__fetch_collect(cf_fetch *f, CURL *e, CURLcode rc)
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
        cf__fetch_set_error(f, err, detail);
    }
}

/* ---- the public calls ----------------------------------------------------- */

static void fetch_cancel(cf_waitable *w)
{
    cf_fetch *f = (cf_fetch *)w;
    if (f->w.done)
        return;
    cf__fetch_set_error(f, CF_ECANCELED, NULL);
    if (f->in_multi) {
        fetch_svc *svc = f->svc;
        if (svc->in_curl) {
            /* libcurl is on the stack: it cannot remove the handle now.
             * The callbacks ignore the transfer from here on, and the
             * scope stays referenced until it is removed. */
            cf__fetch_active_unlink(svc, f);
            f->zombie = true;
            f->next = svc->zombies;
            svc->zombies = f;
            cf_waitable_complete(&f->w, CF_ECANCELED);
            return;
        }
        cf__fetch_remove(f);
        cf_waitable_complete(&f->w, CF_ECANCELED);
        cf__fetch_release_scope(f);
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
    cf__fetch_set_error(f, code, detail);
    cf_waitable_complete(&f->w, code);
    return f;
}

/* A threaded handler: perform the call here, blocking this thread. */
static cf_fetch *fetch_blocking(cf_fetch *f, const cf_fetch_opts *opts)
{
    CURL *e = cf__fetch_global_init() ? curl_easy_init() : NULL;
    if (!e)
        return fetch_fail(f, CF_ENOMEM, "no libcurl handle");
    f->easy = e;
    int rc = cf__fetch_setup(f, e, opts, NULL);
    if (rc == 0) {
        CURLcode cr = curl_easy_perform(e);
        cf__fetch_collect(f, e, cr);
    } else if (!f->error) {
        cf__fetch_set_error(f, rc, NULL);
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
    if (!cf__fetch_is_token(f->method))
        return fetch_fail(f, CF_EINVAL, "the method is not an HTTP token");
    if (strpbrk(url, "\r\n\t "))
        return fetch_fail(f, CF_EINVAL, "the URL has white space or control characters");
    if (opts && opts->query) {
        const char *full = cf__fetch_build_url(rq, f->url, opts->query);
        if (!full)
            return fetch_fail(f, CF_EINVAL, "the query list has a name without a value");
        f->url = full;
    }
    if (!cf_on_loop_thread())
        return fetch_blocking(f, opts);

    cf_task *t = cf_task_current();
    if (t && t->cancelled && !t->shielded)
        return fetch_fail(f, CF_ECANCELED, NULL);
    fetch_svc *svc = cf__fetch_svc_get();
    if (!svc)
        return fetch_fail(f, CF_ENOMEM, "the HTTP client could not start");
    CURL *e = cf__fetch_easy_get(svc);
    if (!e)
        return fetch_fail(f, CF_ENOMEM, "no libcurl handle");
    f->svc = svc;
    f->easy = e;
    int rc = cf__fetch_setup(f, e, opts, svc);
    if (rc != 0) {
        curl_slist_free_all(f->req_headers);
        f->req_headers = NULL;
        cf__fetch_easy_put(svc, e);
        f->easy = NULL;
        if (!f->error)
            cf__fetch_set_error(f, rc, NULL);
        cf_waitable_complete(&f->w, rc);
        return f;
    }
    if (curl_multi_add_handle(svc->multi, e) != CURLM_OK) {
        curl_slist_free_all(f->req_headers);
        f->req_headers = NULL;
        cf__fetch_easy_put(svc, e);
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
