/*
 * fetch_loop.c — the HTTP client's per-loop driver: libcurl's multi-socket
 * interface run by the worker's libuv loop.
 *
 * One CURLM per loop (a scheduler-local slot), created on first
 * use. libcurl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION: one
 * uv_poll per socket) and when to call it back (CURLMOPT_TIMERFUNCTION: one
 * uv_timer); we hand it socket events through curl_multi_socket_action and
 * collect finished transfers with curl_multi_info_read. The multi's
 * connection cache keeps connections (and a share handle TLS sessions and
 * DNS answers) for the next request; easy handles are pooled per loop as
 * well.
 *
 * A finished transfer is removed here, its easy handle goes back to the
 * pool and its waitable is completed (which may run the awaiting task at
 * once) before the scope it referenced is released. Starting and
 * cancelling transfers is fetch.c's; what a transfer sends, fetch_req.c's.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "fetch_int.h"

/* Names this module's per-loop state among the scheduler's slots. */
static const char fetch_loop_key;

#define MAX_CACHED_CONNECTIONS 256

struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    fetch_svc *svc;
    sock_ctx *prev, *next;
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

bool cf__fetch_global_init(void)
{
    pthread_once(&global_once, global_init);
    return global_ok;
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

CURL *cf__fetch_easy_get(fetch_svc *svc)
{
    if (svc->npool)
        return svc->pool[--svc->npool];
    return curl_easy_init();
}

void cf__fetch_easy_put(fetch_svc *svc, CURL *e)
{
    if (svc->npool < EASY_POOL_MAX) {
        curl_easy_reset(e); /* keeps its caches, drops our options */
        svc->pool[svc->npool++] = e;
    } else {
        curl_easy_cleanup(e);
    }
}

void cf__fetch_active_unlink(fetch_svc *svc, cf_fetch *f)
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
void cf__fetch_remove(cf_fetch *f)
{
    fetch_svc *svc = f->svc;
    cf__fetch_active_unlink(svc, f);
    curl_multi_remove_handle(svc->multi, f->easy);
    curl_slist_free_all(f->req_headers);
    f->req_headers = NULL;
    cf__fetch_easy_put(svc, f->easy);
    f->easy = NULL;
    f->in_multi = false;
}

/* The request's memory may go once every fetch of it left the multi. */
void cf__fetch_release_scope(cf_fetch *f)
{
    cf_scope *s = f->scope;
    f->scope = NULL;
    if (s)
        cf_scope_unref(s); /* last: may free f itself */
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
        cf__fetch_easy_put(svc, f->easy);
        f->easy = NULL;
        f->in_multi = false;
        cf__fetch_release_scope(f);
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
        cf__fetch_collect(f, e, rc);
        cf__fetch_remove(f);
        /* Waking the awaiting task runs it right away; it may start or
         * cancel other fetches, which libcurl allows here (we are not in
         * one of its callbacks), and removing a handle drops its pending
         * message, so the loop goes on safely. */
        cf_waitable_complete(&f->w, f->error);
        cf__fetch_release_scope(f);
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
        cf__fetch_active_unlink(svc, f);
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

fetch_svc *cf__fetch_svc_get(void)
{
    fetch_svc *svc = cf_sched_local_get(&fetch_loop_key);
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
    cf_sched_set_local(&fetch_loop_key, svc, svc_close);
    return svc;
}
