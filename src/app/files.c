/*
 * files.c — file responses (Flask's send_file, send_from_directory and
 * static folder).
 *
 * The file is opened and read on the thread pool, 64 KiB at a time, and
 * sent as a streamed body with its Content-Length, so the loop never waits
 * on the disk and a large file costs one buffer, not its size. The usual
 * conditional requests are answered: ETag and Last-Modified with 304, and a
 * single byte range with 206 (416 when it lies outside the file). A
 * compressible file with a precompressed copy beside it (name.br, name.gz)
 * the client accepts is sent as that copy, its own ETag and length.
 */
#define _GNU_SOURCE /* strptime, timegm */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app/compress.h"
#include "app/req.h"

#define PIECE (64 * 1024)

typedef struct file_send {
    const char *path;
    int fd, err;
    struct stat st;
    uint64_t off, left; /* the part being sent */
    char *buf;          /* PIECE bytes of request memory */
    ssize_t got;        /* bytes in buf, read at off */
    /* Precompressed copies to look for, in order (path.br, path.gz), and
     * the coding of the file opened. */
    const char *copy[2];
    cf_coding copy_coding[2], coding;
} file_send;

static void close_fd(void *p)
{
    file_send *f = p;
    if (f->fd >= 0)
        close(f->fd);
}

static int read_job(void *arg)
{
    file_send *f = arg;
    size_t n = f->left < PIECE ? (size_t)f->left : PIECE;
    do
        f->got = pread(f->fd, f->buf, n, (off_t)f->off);
    while (f->got < 0 && errno == EINTR);
    return 0;
}

/* Open, and read the first piece in the same trip to the pool: a small
 * file then costs one pool job, not two. */
static int open_job(void *arg)
{
    file_send *f = arg;
    f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0 || fstat(f->fd, &f->st) != 0)
        f->err = errno;
    else if (!S_ISREG(f->st.st_mode))
        f->err = EISDIR; /* directories, devices, sockets: not files to send */
    else {
        for (int i = 0; i < 2 && f->copy[i]; i++) {
            struct stat st;
            int fd = open(f->copy[i], O_RDONLY | O_CLOEXEC);
            if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
                close(f->fd);
                f->fd = fd;
                f->st = st;
                f->coding = f->copy_coding[i];
                break;
            }
            if (fd >= 0)
                close(fd);
        }
        f->off = 0;
        f->left = (uint64_t)f->st.st_size;
        read_job(f);
    }
    return 0;
}

/* The producer: piece by piece from the pool to the client (the first
 * may be in buf already, from open_job). */
static int send_pieces(cf_req *rq, void *arg)
{
    file_send *f = arg;
    while (f->left) {
        if (f->got <= 0) {
            cf_task *job = cf_to_thread(rq, read_job, f);
            int rc = job ? cf_await(rq, job, -1) : CF_ENOMEM;
            if (rc != 0)
                return rc;
        }
        if (f->got <= 0)
            return CF_EFAIL; /* the file shrank or failed: the body is cut */
        size_t n = (uint64_t)f->got < f->left ? (size_t)f->got : (size_t)f->left;
        f->got = 0;
        int rc = cf_write(rq, f->buf, n);
        if (rc != 0)
            return rc;
        f->off += n;
        f->left -= n;
    }
    return 0;
}

static const struct {
    const char *ext, *type;
} types[] = {
    {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},   {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"}, {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"}, {"csv", "text/csv; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"}, {"xml", "application/xml"},
    {"svg", "image/svg+xml"},             {"png", "image/png"},
    {"jpg", "image/jpeg"},                {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},                 {"webp", "image/webp"},
    {"avif", "image/avif"},               {"ico", "image/vnd.microsoft.icon"},
    {"pdf", "application/pdf"},           {"wasm", "application/wasm"},
    {"woff", "font/woff"},                {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},                  {"otf", "font/otf"},
    {"mp4", "video/mp4"},                 {"webm", "video/webm"},
    {"mp3", "audio/mpeg"},                {"ogg", "audio/ogg"},
    {"wav", "audio/wav"},                 {"zip", "application/zip"},
    {"gz", "application/gzip"},           {"tar", "application/x-tar"},
};

static const char *type_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (dot)
        for (size_t i = 0; i < sizeof types / sizeof *types; i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

/* Does an If-None-Match list name this ETag (weak comparison)? */
static bool etag_listed(const char *list, const char *etag)
{
    size_t elen = strlen(etag);
    for (const char *p = list; *p;) {
        p += strspn(p, " \t,");
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (strncmp(p, etag, elen) == 0 && (p[elen] == 0 || strchr(" \t,", p[elen])))
            return true;
        p += strcspn(p, ",");
    }
    return false;
}

/* "bytes=a-b", "bytes=a-" or "bytes=-n" against a file of `size` bytes:
 * 1 with [*from, *to] set, 0 to ignore the header (malformed, or several
 * ranges: the whole file is sent), -1 when unsatisfiable (416). */
static int parse_range(const char *h, uint64_t size, uint64_t *from, uint64_t *to)
{
    if (strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
        return 0;
    const char *p = h + 6;
    char *end;
    if (*p == '-') {
        unsigned long long n = strtoull(p + 1, &end, 10);
        if (end == p + 1 || *end)
            return 0;
        if (n == 0 || size == 0)
            return -1;
        *from = n >= size ? 0 : size - n;
        *to = size - 1;
        return 1;
    }
    if (*p < '0' || *p > '9')
        return 0;
    unsigned long long a = strtoull(p, &end, 10), b;
    if (*end != '-')
        return 0;
    if (end[1] == 0) {
        b = size ? size - 1 : 0;
    } else {
        const char *q = end + 1;
        if (*q < '0' || *q > '9')
            return 0;
        b = strtoull(q, &end, 10);
        if (*end || b < a)
            return 0;
    }
    if (a >= size)
        return -1;
    *from = a;
    *to = b >= size ? size - 1 : b;
    return 1;
}

static void http_date(char *out, size_t cap, time_t t)
{
    struct tm tm;
    strftime(out, cap, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&t, &tm));
}

static time_t parse_http_date(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return end && !*end ? timegm(&tm) : (time_t)-1;
}

void cf_send_file(cf_req *rq, const char *path, const char *content_type)
{
    file_send *f = cf_alloc(rq, sizeof *f);
    memset(f, 0, sizeof *f);
    f->path = cf_strdup(rq, path ? path : "");
    f->fd = -1;
    f->buf = cf_alloc(rq, PIECE);
    cf_defer(rq, close_fd, f);
    const char *type = content_type ? content_type : type_of(f->path);
    cf_coding coding = CF_CODING_IDENTITY; /* the coding preferred for it */
    if (cf_compress_enabled(rq) && cf_compressible_type(type)) {
        coding = cf_compress_negotiate(rq);
        cf_coding other = coding == CF_CODING_BR ? CF_CODING_GZIP : CF_CODING_BR;
        int n = 0;
        if (coding != CF_CODING_IDENTITY) {
            f->copy_coding[n] = coding;
            f->copy[n++] = cf_sprintf(rq, "%s.%s", f->path, coding == CF_CODING_BR ? "br" : "gz");
            if (cf_compress_accepts(rq, other)) {
                f->copy_coding[n] = other;
                f->copy[n++] = cf_sprintf(rq, "%s.%s", f->path, other == CF_CODING_BR ? "br" : "gz");
            }
        }
    }
    if (cf_on_loop_thread()) {
        cf_task *job = cf_to_thread(rq, open_job, f);
        int rc = job ? cf_await(rq, job, -1) : CF_ENOMEM;
        if (rc != 0) {
            cf_abort(rq, 503); /* cancelled (nobody reads it) or no memory */
            return;
        }
    } else {
        open_job(f); /* a threaded handler: its thread may block */
    }
    if (f->err) {
        /* The page names no path: it would tell clients about the disk. */
        rq->errmsg = "The requested URL was not found on the server.";
        cf_abort(rq, 404);
        return;
    }
    uint64_t size = (uint64_t)f->st.st_size;
    char etag[64], modified[40];
    snprintf(etag, sizeof etag, "\"%llx-%llx\"",
             (unsigned long long)f->st.st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)f->st.st_mtim.tv_nsec,
             (unsigned long long)size);
    http_date(modified, sizeof modified, f->st.st_mtim.tv_sec);
    if (f->coding != CF_CODING_IDENTITY)
        cf_set_header(rq, "Content-Encoding", cf_coding_name(f->coding)); /* the copy, as it is */

    /* Conditional requests (RFC 9110 13.2.2): If-None-Match wins over
     * If-Modified-Since. */
    const char *inm = cf_header(rq, "If-None-Match"), *ims = cf_header(rq, "If-Modified-Since");
    bool safe = strcmp(cf_method(rq), "GET") == 0 || strcmp(cf_method(rq), "HEAD") == 0;
    /* A client that got the file compressed on the way (a stream: in
     * cf_compress_stream_coding's coding) holds that ETag. */
    const char *compressed_etag =
        f->coding == CF_CODING_IDENTITY && coding != CF_CODING_IDENTITY
            ? cf_compress_etag(rq, etag, cf_compress_stream_coding(rq)) : etag;
    bool not_modified = inm ? etag_listed(inm, etag) || etag_listed(inm, compressed_etag)
                            : ims && parse_http_date(ims) != (time_t)-1 &&
                                  parse_http_date(ims) >= f->st.st_mtim.tv_sec;
    cf_set_header(rq, "ETag", inm && etag_listed(inm, compressed_etag) ? compressed_etag : etag);
    cf_set_header(rq, "Last-Modified", modified);
    if (not_modified && safe) {
        cf_send(rq, 304, NULL, "", 0);
        return;
    }
    cf_set_header(rq, "Accept-Ranges", "bytes");
    int status = 200; /* f->off 0, f->left the size, its first piece in buf */
    const char *range = cf_header(rq, "Range"), *if_range = cf_header(rq, "If-Range");
    if (range && safe && (!if_range || strcmp(if_range, etag) == 0 || strcmp(if_range, modified) == 0)) {
        uint64_t from, to;
        int r = parse_range(range, size, &from, &to);
        if (r < 0) {
            cf_set_header(rq, "Content-Range", cf_sprintf(rq, "bytes */%llu", (unsigned long long)size));
            rq->errmsg = "the range lies outside the file";
            cf_abort(rq, 416);
            return;
        }
        if (r > 0) {
            status = 206;
            if (from != 0)
                f->got = 0; /* the piece read at 0 is not wanted */
            f->off = from;
            f->left = to - from + 1;
            cf_set_header(rq, "Content-Range",
                          cf_sprintf(rq, "bytes %llu-%llu/%llu", (unsigned long long)from,
                                     (unsigned long long)to, (unsigned long long)size));
        }
    }
    cf_stream_sized(rq, status, type, f->left, send_pieces, f);
}

/* A name that stays inside its directory: relative, no "." or ".."
 * segment, no empty segment. */
static bool safe_name(const char *name)
{
    if (!name || !*name || name[0] == '/')
        return false;
    for (const char *p = name; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        p += n;
        if (*p == '/')
            p++;
    }
    return name[strlen(name) - 1] != '/';
}

void cf_send_from_directory(cf_req *rq, const char *dir, const char *name)
{
    if (!safe_name(name)) {
        rq->errmsg = "The requested URL was not found on the server.";
        cf_abort(rq, 404);
        return;
    }
    cf_send_file(rq, cf_sprintf(rq, "%s/%s", dir && *dir ? dir : ".", name), NULL);
}

static void serve_static(cf_req *rq)
{
    cf_send_from_directory(rq, rq->route->static_dir, cf_param(rq, "filename"));
}

cf_route *cf_static_add(cf_group *group, const char *prefix, const char *dir)
{
    if (!prefix || !dir)
        cf_setup_fail("cf_static: a URL prefix and a directory are required");
    char rule[1024];
    snprintf(rule, sizeof rule, "%s/<path:filename>", strcmp(prefix, "/") == 0 ? "" : prefix);
    cf_route *r = cf_route_add(group, "GET", rule, serve_static, "static");
    r->static_dir = strdup(dir);
    if (!r->static_dir)
        abort();
    return r;
}
