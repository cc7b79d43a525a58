/*
 * fanout_floor.c — how fast can the bench's fanout scenario go at all?
 *
 * The fanout scenario (32 connections, each request making three concurrent
 * 50 ms calls to the bench harness's delay server) is bounded by that delay
 * server, not only by the framework under test. This client measures the
 * bound: it plays 32 "requests" in a closed loop like wrk does, each sending
 * its three GETs at once on its own keep-alive connections and starting over
 * when all three answered, with nothing in between — no framework, no extra
 * hop, a few microseconds of work per response. What it achieves is what
 * any server could achieve against the same upstream on the same machine.
 *
 *   fanout-floor [-c loops] [-n calls] [-m ms] [-d seconds] HOST:PORT
 *
 * Prints requests/s and the latency average, median and p99. Only plain
 * HTTP/1.1 with Content-Length answers (what the delay server sends).
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct call {
    int fd;
    int loop;      /* index of the loop it belongs to */
    size_t got;    /* bytes of the current answer so far */
    char buf[4096];
} call;

typedef struct loop {
    double started;
    int pending; /* calls not answered yet */
} loop;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* 1 when buf holds a whole answer, 0 when more is needed, -1 if it is not
 * one we understand. */
static int answer_complete(const char *buf, size_t len)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return len < 4096 ? 0 : -1;
    if (strncmp(buf, "HTTP/1.1 200 ", 13) != 0)
        return -1;
    size_t head = (size_t)(end - buf) + 4;
    for (const char *p = buf; p < end;) {
        if (strncasecmp(p, "Content-Length:", 15) == 0) {
            size_t body = strtoul(p + 15, NULL, 10);
            return len >= head + body ? (len == head + body ? 1 : -1) : 0;
        }
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        p = nl + 1;
    }
    return -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int nloops = 32, ncalls = 3, ms = 50;
    double seconds = 10;
    int opt;
    while ((opt = getopt(argc, argv, "c:n:m:d:")) != -1) {
        switch (opt) {
        case 'c': nloops = atoi(optarg); break;
        case 'n': ncalls = atoi(optarg); break;
        case 'm': ms = atoi(optarg); break;
        case 'd': seconds = atof(optarg); break;
        default: goto usage;
        }
    }
    if (optind != argc - 1 || nloops < 1 || ncalls < 1 || ms < 0 || seconds <= 0)
        goto usage;
    char host[64];
    int port;
    if (sscanf(argv[optind], "%63[^:]:%d", host, &port) != 2)
        goto usage;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        goto usage;

    char req[256];
    int reqlen = snprintf(req, sizeof req, "GET /delay?ms=%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n",
                          ms, host, port);
    int ep = epoll_create1(0);
    if (ep < 0)
        die("epoll_create1");
    size_t n = (size_t)nloops * (size_t)ncalls;
    call *calls = calloc(n, sizeof *calls);
    loop *loops = calloc((size_t)nloops, sizeof *loops);
    size_t max_samples = (size_t)(seconds * 1000.0 / (ms ? ms : 1) + 1) * (size_t)nloops * 4 + 1024;
    double *lat = malloc(max_samples * sizeof *lat);
    if (!calls || !loops || !lat)
        die("malloc");
    for (size_t i = 0; i < n; i++) {
        calls[i].loop = (int)(i / (size_t)ncalls);
        calls[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (calls[i].fd < 0 || connect(calls[i].fd, (struct sockaddr *)&addr, sizeof addr) != 0)
            die("connect");
        int one = 1;
        setsockopt(calls[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, calls[i].fd, &ev) != 0)
            die("epoll_ctl");
    }

    double start = now(), end = start + seconds;
    size_t done = 0;
    for (int l = 0; l < nloops; l++) {
        loops[l].started = now();
        loops[l].pending = ncalls;
        for (int c = 0; c < ncalls; c++)
            if (write(calls[l * ncalls + c].fd, req, (size_t)reqlen) != reqlen)
                die("write");
    }
    struct epoll_event evs[256];
    while (now() < end) {
        int k = epoll_wait(ep, evs, 256, 100);
        if (k < 0 && errno != EINTR)
            die("epoll_wait");
        for (int j = 0; j < k; j++) {
            call *c = &calls[evs[j].data.u64];
            ssize_t r = read(c->fd, c->buf + c->got, sizeof c->buf - c->got);
            if (r <= 0) {
                fprintf(stderr, "fanout-floor: the upstream closed a connection\n");
                return 1;
            }
            c->got += (size_t)r;
            int complete = answer_complete(c->buf, c->got);
            if (complete < 0) {
                fprintf(stderr, "fanout-floor: unexpected answer: %.*s\n", (int)c->got, c->buf);
                return 1;
            }
            if (!complete)
                continue;
            c->got = 0;
            loop *l = &loops[c->loop];
            if (--l->pending)
                continue;
            double t = now();
            if (done < max_samples)
                lat[done] = t - l->started;
            done++;
            l->started = t;
            l->pending = ncalls;
            for (int i = 0; i < ncalls; i++)
                if (write(calls[c->loop * ncalls + i].fd, req, (size_t)reqlen) != reqlen)
                    die("write");
        }
    }
    double elapsed = now() - start;
    size_t m = done < max_samples ? done : max_samples;
    if (!m) {
        fprintf(stderr, "fanout-floor: no request completed\n");
        return 1;
    }
    double sum = 0;
    for (size_t i = 0; i < m; i++)
        sum += lat[i];
    qsort(lat, m, sizeof *lat, cmp_double);
    printf("%.1f requests/s, latency avg %.2f ms, p50 %.2f ms, p99 %.2f ms (%zu requests, "
           "%d loops x %d calls of %d ms)\n",
           (double)done / elapsed, sum / (double)m * 1e3, lat[m / 2] * 1e3,
           lat[(size_t)((double)m * 0.99)] * 1e3, done, nloops, ncalls, ms);
    return 0;

usage:
    fprintf(stderr, "usage: fanout-floor [-c loops] [-n calls] [-m ms] [-d seconds] HOST:PORT\n");
    return 2;
}
