/*
 * pg_hosts.c — resolving PostgreSQL host names on libuv's thread pool (see
 * pg_hosts.h for why).
 *
 * libpq accepts comma-separated lists for host, hostaddr and port, tried in
 * order, where an empty hostaddr entry means "use the host entry as it is".
 * A name that resolves to several addresses becomes several entries (the
 * name repeated, one address each, its port repeated), so libpq still falls
 * back from one address to the next as it would after its own lookup.
 */
#include "io/pg_hosts.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Enough for dual-stack names and small clusters; libpq's own lookup
 * would try them all, but a name with dozens of addresses is a DNS
 * load-balancer, where the first few are as good as any. */
#define MAX_ADDRS_PER_NAME 8

typedef struct pg_host {
    char *entry;   /* as written: a name, an address or a socket directory */
    char *port;    /* its port ("" = libpq's default) */
    bool is_name;
} pg_host;

struct pg_hosts {
    char *conninfo;
    pg_host *list;
    size_t n;
    bool has_port; /* pass port= (else leave libpq its default) */
};

struct pg_resolve {
    const pg_hosts *hosts;
    pg_resolved_cb cb;
    void *ud;
    bool abandoned;  /* cb is not called */
    size_t pending;  /* lookups not called back yet */
    int first_error; /* of a name that failed */
    const char *failed_name;
    struct lookup {
        uv_getaddrinfo_t req;
        pg_resolve *r; /* NULL: no lookup (not a name, or it could not start) */
        size_t index;
        struct addrinfo *res;
    } *lookups;      /* one per host entry */
};

static bool is_numeric_address(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* A host entry that needs a lookup: not empty (the default), not a socket
 * directory ('/') or abstract socket ('@'), not an address already. */
static bool is_name(const char *entry)
{
    return entry[0] && entry[0] != '/' && entry[0] != '@' && !is_numeric_address(entry);
}

/* Split a comma-separated list; "" gives one empty item. */
static char **split(const char *s, size_t *n)
{
    size_t count = 1;
    for (const char *p = s; *p; p++)
        count += *p == ',';
    char **items = calloc(count, sizeof *items);
    if (!items)
        return NULL;
    for (size_t i = 0; i < count; i++) {
        size_t len = strcspn(s, ",");
        if (!(items[i] = strndup(s, len))) {
            while (i)
                free(items[--i]);
            free(items);
            return NULL;
        }
        s += len + (s[len] == ',');
    }
    *n = count;
    return items;
}

static void free_items(char **items, size_t n)
{
    for (size_t i = 0; items && i < n; i++)
        free(items[i]);
    free(items);
}

static const char *option(PQconninfoOption *opts, const char *key, const char *env)
{
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, key) == 0 && o->val && *o->val)
            return o->val;
    const char *v = getenv(env);
    return v && *v ? v : NULL;
}

void pg_hosts_free(pg_hosts *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++) {
        free(h->list[i].entry);
        free(h->list[i].port);
    }
    free(h->list);
    free(h->conninfo);
    free(h);
}

pg_hosts *pg_hosts_parse(const char *conninfo)
{
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    if (!opts)
        return NULL;
    const char *host = option(opts, "host", "PGHOST");
    const char *port = option(opts, "port", "PGPORT");
    bool direct = option(opts, "hostaddr", "PGHOSTADDR") != NULL || !host;
    bool has_port = port != NULL;
    size_t nhost = 0, nport = 0;
    char **hosts = direct ? NULL : split(host, &nhost);
    char **ports = hosts && has_port ? split(port, &nport) : NULL;
    PQconninfoFree(opts); /* host and port point into it: not used below */
    pg_hosts *h = NULL;
    bool any_name = false;
    for (size_t i = 0; hosts && i < nhost; i++)
        any_name |= is_name(hosts[i]);
    /* A port list of another length is libpq's error to report. */
    if (!any_name || (has_port && (!ports || (nport != 1 && nport != nhost))))
        goto out;
    if (!(h = calloc(1, sizeof *h)) || !(h->list = calloc(nhost, sizeof *h->list)) ||
        !(h->conninfo = strdup(conninfo)))
        goto fail;
    h->n = nhost;
    h->has_port = has_port;
    for (size_t i = 0; i < nhost; i++) {
        pg_host *e = &h->list[i];
        e->entry = hosts[i];
        hosts[i] = NULL;
        e->port = strdup(ports ? ports[nport == 1 ? 0 : i] : "");
        if (!e->port)
            goto fail;
        e->is_name = is_name(e->entry);
    }
    goto out;
fail:
    pg_hosts_free(h);
    h = NULL;
out:
    free_items(hosts, nhost);
    free_items(ports, nport);
    return h;
}

/* ---- lookups ------------------------------------------------------------------ */

static void resolve_free(pg_resolve *r)
{
    for (size_t i = 0; i < r->hosts->n; i++)
        if (r->lookups[i].res)
            uv_freeaddrinfo(r->lookups[i].res);
    free(r->lookups);
    free(r);
}

/* A comma-separated list being built. */
typedef struct strlist {
    char *s;
    size_t len, cap;
    size_t items; /* an item may be empty: the separators still count */
    bool oom;
} strlist;

/* Appends ",item" (or "item" first). */
static void list_add(strlist *l, const char *item)
{
    size_t n = strlen(item), need = l->len + n + 2;
    if (l->oom)
        return;
    if (need > l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 128;
        while (cap < need)
            cap *= 2;
        char *s = realloc(l->s, cap);
        if (!s) {
            l->oom = true;
            return;
        }
        l->s = s;
        l->cap = cap;
    }
    if (l->items++)
        l->s[l->len++] = ',';
    memcpy(l->s + l->len, item, n + 1);
    l->len += n;
}

static void add_entry(strlist *host, strlist *addr, strlist *port, const pg_host *e,
                      const char *address)
{
    list_add(host, e->entry);
    list_add(addr, address);
    list_add(port, e->port);
}

/* Every lookup answered: hand libpq the lists. */
static void resolve_finish(pg_resolve *r)
{
    const pg_hosts *h = r->hosts;
    strlist host = {0}, addr = {0}, port = {0};
    size_t entries = 0;
    for (size_t i = 0; i < h->n; i++) {
        const pg_host *e = &h->list[i];
        if (!e->is_name) {
            add_entry(&host, &addr, &port, e, is_numeric_address(e->entry) ? e->entry : "");
            entries++;
            continue;
        }
        size_t used = 0;
        char seen[MAX_ADDRS_PER_NAME][INET6_ADDRSTRLEN];
        for (struct addrinfo *ai = r->lookups[i].res; ai && used < MAX_ADDRS_PER_NAME;
             ai = ai->ai_next) {
            char text[INET6_ADDRSTRLEN];
            if (uv_ip_name(ai->ai_addr, text, sizeof text) != 0)
                continue;
            bool dup = false;
            for (size_t k = 0; k < used; k++)
                dup |= strcmp(seen[k], text) == 0;
            if (dup)
                continue;
            strcpy(seen[used++], text);
            add_entry(&host, &addr, &port, e, text);
            entries++;
        }
    }
    char error[300];
    if (host.oom || addr.oom || port.oom) {
        r->cb(r->ud, NULL, NULL, "out of memory");
    } else if (!entries) {
        snprintf(error, sizeof error, "could not translate host name \"%s\" to an address: %s",
                 r->failed_name ? r->failed_name : "?",
                 r->first_error ? uv_strerror(r->first_error) : "no address");
        r->cb(r->ud, NULL, NULL, error);
    } else {
        const char *keys[] = {"dbname", "host", "hostaddr", h->has_port ? "port" : NULL, NULL};
        const char *values[] = {h->conninfo, host.s, addr.s, port.s, NULL};
        r->cb(r->ud, keys, values, NULL);
    }
    free(host.s);
    free(addr.s);
    free(port.s);
}

static void on_lookup(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct lookup *l = req->data;
    pg_resolve *r = l->r;
    l->res = res;
    if (status != 0 && !r->first_error) {
        r->first_error = status;
        r->failed_name = r->hosts->list[l->index].entry;
    }
    if (--r->pending)
        return;
    if (!r->abandoned)
        resolve_finish(r);
    resolve_free(r);
}

pg_resolve *pg_resolve_start(uv_loop_t *loop, const pg_hosts *h, pg_resolved_cb cb, void *ud)
{
    pg_resolve *r = calloc(1, sizeof *r);
    if (!r || !(r->lookups = calloc(h->n, sizeof *r->lookups))) {
        free(r);
        return NULL;
    }
    r->hosts = h;
    r->cb = cb;
    r->ud = ud;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    for (size_t i = 0; i < h->n; i++) {
        if (!h->list[i].is_name)
            continue;
        struct lookup *l = &r->lookups[i];
        l->index = i;
        l->req.data = l;
        if (uv_getaddrinfo(loop, &l->req, on_lookup, h->list[i].entry, NULL, &hints) != 0)
            continue; /* only out of memory: the other names may do */
        l->r = r;
        r->pending++;
    }
    if (!r->pending) {
        resolve_free(r);
        return NULL;
    }
    return r;
}

void pg_resolve_abandon(pg_resolve *r)
{
    r->abandoned = true;
    for (size_t i = 0; i < r->hosts->n; i++)
        if (r->lookups[i].r)
            uv_cancel((uv_req_t *)&r->lookups[i].req);
}
