/*
 * metrics.c — request counts, latency histograms and worker gauges in a
 * shared anonymous mapping, rendered as Prometheus text.
 *
 * The master maps the memory before forking, so every worker writes its
 * own slot without locks and any worker can sum all slots for /metrics:
 * the totals cover every worker, including replaced ones (a new worker
 * takes over its predecessor's slot and keeps counting from there).
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "server/server.h"

static const int statuses[] = {200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308,
                               400, 401, 403, 404, 405, 408, 409, 410, 413, 414, 415,
                               422, 429, 431, 500, 501, 502, 503, 504, 505};
#define NSTATUS (sizeof statuses / sizeof *statuses)
#define NCLASS 5 /* other 1xx..5xx */
static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKET (sizeof buckets / sizeof *buckets)
/* A route's row: status counts, class counts, buckets (+Inf last), sum ns. */
#define ROW_LEN (NSTATUS + NCLASS + NBUCKET + 1 + 1)
enum { G_PID, G_INFLIGHT, G_COROS, G_CONNS, G_LAG_US, G_COUNT };

struct cf_metrics {
    cf_app *app;
    cf_route **routes; /* by row */
    int nslots, nrows;
    size_t slot_len; /* in uint64_t */
    uint64_t *restarts;
    uint64_t *slots;
    uint64_t *mine; /* this worker's slot */
    size_t map_len;
};

cf_metrics *cf_metrics_new(cf_app *app, int nslots)
{
    cf_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    int n = 0;
    for (cf_route *r = app->routes; r; r = r->next_all)
        r->metrics_index = n++;
    if (!(m->routes = calloc((size_t)n + 1, sizeof *m->routes))) {
        free(m);
        return NULL;
    }
    for (cf_route *r = app->routes; r; r = r->next_all)
        m->routes[r->metrics_index] = r;
    m->app = app;
    m->nslots = nslots;
    m->nrows = n + 1; /* the last row: requests that matched no route */
    m->slot_len = G_COUNT + (size_t)m->nrows * ROW_LEN;
    m->map_len = sizeof(uint64_t) * (1 + (size_t)nslots * m->slot_len);
    void *map = mmap(NULL, m->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
        free(m->routes);
        free(m);
        return NULL;
    }
    m->restarts = map;
    m->slots = (uint64_t *)map + 1;
    return m;
}

void cf_metrics_free(cf_metrics *m)
{
    if (!m)
        return;
    munmap(m->restarts, m->map_len);
    free(m->routes);
    free(m);
}

void cf_metrics_count_restart(cf_metrics *m)
{
    if (m)
        __atomic_add_fetch(m->restarts, 1, __ATOMIC_RELAXED);
}

void cf_metrics_bind(cf_metrics *m, int slot)
{
    if (!m)
        return;
    m->mine = m->slots + (size_t)slot * m->slot_len;
    m->mine[G_PID] = (uint64_t)getpid();
}

static int status_col(int status)
{
    for (size_t i = 0; i < NSTATUS; i++)
        if (statuses[i] == status)
            return (int)i;
    int cls = status / 100;
    return (int)NSTATUS + (cls >= 1 && cls <= 5 ? cls - 1 : 4);
}

void cf_metrics_request(cf_metrics *m, cf_route *route, int status, uint64_t ns)
{
    if (!m || !m->mine)
        return;
    int row = route ? route->metrics_index : m->nrows - 1;
    if (row < 0 || row >= m->nrows)
        row = m->nrows - 1;
    uint64_t *r = m->mine + G_COUNT + (size_t)row * ROW_LEN;
    r[status_col(status)]++;
    double s = (double)ns / 1e9;
    size_t b = 0;
    while (b < NBUCKET && s > buckets[b])
        b++;
    r[NSTATUS + NCLASS + b]++; /* cumulated when rendered */
    r[ROW_LEN - 1] += ns;
}

void cf_metrics_gauges(cf_metrics *m, int64_t inflight, int64_t coros, int64_t conns,
                       uint64_t lag_us)
{
    if (!m || !m->mine)
        return;
    m->mine[G_INFLIGHT] = (uint64_t)inflight;
    m->mine[G_COROS] = (uint64_t)coros;
    m->mine[G_CONNS] = (uint64_t)conns;
    m->mine[G_LAG_US] = lag_us;
}

typedef struct out {
    char *buf;
    size_t len, cap;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *b = realloc(o->buf, cap);
        if (!b)
            return;
        o->buf = b;
        o->cap = cap;
    }
}

/* A route's rule as a label value: quotes and backslashes escaped. */
static void put_label(out *o, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            put(o, "\\%c", *s);
        else if (*s == '\n')
            put(o, "\\n");
        else
            put(o, "%c", *s);
    }
}

static void route_label(out *o, cf_metrics *m, int row)
{
    put(o, "route=\"");
    if (row == m->nrows - 1) {
        put(o, "(unmatched)");
    } else {
        const cf_route *r = m->routes[row];
        put_label(o, cf_rule_text(r->rule));
        put(o, "\",method=\"");
        put(o, "%s", r->methods == CF_M_ANY ? "*" : "");
        bool first = true;
        static const char *names[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
        for (int i = 0; i < 7 && r->methods != CF_M_ANY; i++)
            if ((r->methods & (1u << i)) && i != 1) {
                put(o, "%s%s", first ? "" : ",", names[i]);
                first = false;
            }
    }
    put(o, "\"");
}

char *cf_metrics_render(cf_metrics *m, size_t *len)
{
    out o = {malloc(16384), 0, 16384};
    if (!o.buf)
        return NULL;
    o.buf[0] = 0;
    uint64_t *row = calloc((size_t)m->nrows * ROW_LEN, sizeof *row);
    if (!row) {
        free(o.buf);
        return NULL;
    }
    for (int s = 0; s < m->nslots; s++) {
        uint64_t *slot = m->slots + (size_t)s * m->slot_len + G_COUNT;
        for (size_t i = 0; i < (size_t)m->nrows * ROW_LEN; i++)
            row[i] += slot[i];
    }
    put(&o, "# HELP carafe_requests_total Requests answered, by route and status.\n"
            "# TYPE carafe_requests_total counter\n");
    static const char *cls[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int r = 0; r < m->nrows; r++) {
        uint64_t *c = row + (size_t)r * ROW_LEN;
        for (size_t k = 0; k < NSTATUS + NCLASS; k++) {
            if (!c[k])
                continue;
            put(&o, "carafe_requests_total{");
            route_label(&o, m, r);
            if (k < NSTATUS)
                put(&o, ",status=\"%d\"} %llu\n", statuses[k], (unsigned long long)c[k]);
            else
                put(&o, ",status=\"%s\"} %llu\n", cls[k - NSTATUS], (unsigned long long)c[k]);
        }
    }
    put(&o, "# HELP carafe_request_duration_seconds Time from request head to response.\n"
            "# TYPE carafe_request_duration_seconds histogram\n");
    for (int r = 0; r < m->nrows; r++) {
        uint64_t *c = row + (size_t)r * ROW_LEN + NSTATUS + NCLASS;
        uint64_t cum = 0, total = 0;
        for (size_t b = 0; b <= NBUCKET; b++)
            total += c[b];
        if (!total)
            continue;
        for (size_t b = 0; b <= NBUCKET; b++) {
            cum += c[b];
            put(&o, "carafe_request_duration_seconds_bucket{");
            route_label(&o, m, r);
            if (b < NBUCKET)
                put(&o, ",le=\"%g\"} %llu\n", buckets[b], (unsigned long long)cum);
            else
                put(&o, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        }
        put(&o, "carafe_request_duration_seconds_sum{");
        route_label(&o, m, r);
        put(&o, "} %.6f\n", (double)c[NBUCKET + 1] / 1e9);
        put(&o, "carafe_request_duration_seconds_count{");
        route_label(&o, m, r);
        put(&o, "} %llu\n", (unsigned long long)total);
    }
    static const struct {
        int g;
        const char *name, *help;
    } gauges[] = {
        {G_INFLIGHT, "carafe_requests_in_flight", "Requests being handled."},
        {G_COROS, "carafe_coroutines_alive", "Coroutines alive (requests and their tasks)."},
        {G_CONNS, "carafe_connections_open", "Open client connections."},
        {G_LAG_US, "carafe_loop_lag_seconds", "How late the worker's loop ran a 100 ms timer, last sample."},
    };
    for (size_t g = 0; g < sizeof gauges / sizeof *gauges; g++) {
        put(&o, "# HELP %s %s\n# TYPE %s gauge\n", gauges[g].name, gauges[g].help, gauges[g].name);
        for (int s = 0; s < m->nslots; s++) {
            uint64_t *slot = m->slots + (size_t)s * m->slot_len;
            if (!slot[G_PID] || kill((pid_t)slot[G_PID], 0) != 0)
                continue; /* a slot no live worker holds */
            uint64_t v = slot[gauges[g].g];
            if (gauges[g].g == G_LAG_US)
                put(&o, "%s{worker=\"%d\"} %.6f\n", gauges[g].name, s, (double)v / 1e6);
            else
                put(&o, "%s{worker=\"%d\"} %llu\n", gauges[g].name, s, (unsigned long long)v);
        }
    }
    put(&o, "# HELP carafe_worker_restarts_total Workers started again after dying or retiring.\n"
            "# TYPE carafe_worker_restarts_total counter\ncarafe_worker_restarts_total %llu\n",
        (unsigned long long)__atomic_load_n(m->restarts, __ATOMIC_RELAXED));
    free(row);
    *len = o.len;
    return o.buf;
}
