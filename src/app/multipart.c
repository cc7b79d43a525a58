/*
 * multipart.c — multipart/form-data request bodies: parts read one by one
 * as the body arrives (cf_part_next, cf_part_read), and the whole form
 * taken at once (cf_form_parse: fields into cf_form, files into memory up
 * to a threshold and spooled to temporary files past it).
 *
 * Everything reads through cf_body_read, so on a route that streams its
 * body (multipart bodies do unless the route is threaded, see request.c)
 * a part of any size passes with the reader's buffer. Temporary files go
 * when the request ends, also when it fails or is cancelled (a deferred
 * unlink), or when a handler crashes (cf_multipart_crashed, from the
 * request's crash hook: its deferred calls never run then).
 */
#define _GNU_SOURCE /* mkostemp */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/multipart.h"
#include "app/req.h"

#define READ_BUF (64 * 1024)
#define SPOOL_BATCH (256 * 1024) /* bytes written per thread-pool job */

enum { R_BETWEEN, R_IN_PART, R_DONE, R_FAILED };

struct cf_mp_reader {
    cf_mp mp;
    char *buf;
    size_t pos, len;   /* body bytes read, not yet parsed: buf[pos..len) */
    bool body_end;
    int state;
    int error;         /* R_FAILED: the CF_E* code */
    size_t nparts;
    uint64_t part_size;
    bool part_is_file;
    const char *pending; /* data of the current part not yet handed out */
    size_t pending_len;
    int64_t max_parts, max_field, max_file;
};

static int64_t limit(cf_req *rq, cf_option opt)
{
    int64_t v = rq->route ? cf_route_get(rq->route, opt) : -1;
    return v >= 0 ? v : rq->app->opt[opt];
}

static void reader_free(void *p)
{
    struct cf_mp_reader *r = p;
    cf_mp_free(&r->mp);
    free(r->buf);
}

static int fail(cf_req *rq, struct cf_mp_reader *r, int code, const char *why)
{
    r->state = R_FAILED;
    r->error = code;
    rq->errmsg = why;
    return code;
}

/* The request's reader, made on first use; NULL with rq->errmsg when the
 * body is not multipart/form-data or its boundary is bad. */
static struct cf_mp_reader *reader(cf_req *rq, int *err)
{
    if (rq->mp)
        return rq->mp;
    char boundary[CF_MP_MAX_BOUNDARY + 1];
    const char *why = NULL;
    int bl = cf_mp_boundary(cf_header(rq, "Content-Type"), boundary, &why);
    if (bl <= 0) {
        rq->errmsg = bl == 0 ? "the body is not multipart/form-data" : why;
        *err = CF_EINVAL;
        return NULL;
    }
    struct cf_mp_reader *r = cf_alloc(rq, sizeof *r);
    memset(r, 0, sizeof *r);
    r->buf = malloc(READ_BUF);
    if (!r->buf)
        abort();
    cf_mp_init(&r->mp, boundary, (size_t)limit(rq, CF_OPT_MAX_PART_HEADER));
    cf_defer(rq, reader_free, r);
    r->max_parts = limit(rq, CF_OPT_MAX_PARTS);
    r->max_field = limit(rq, CF_OPT_MAX_FIELD_SIZE);
    r->max_file = limit(rq, CF_OPT_MAX_FILE_SIZE);
    rq->mp = r;
    return r;
}

/* The parser's next event, reading more of the body as it needs. */
static int next_event(cf_req *rq, struct cf_mp_reader *r)
{
    for (;;) {
        if (r->pos < r->len || r->body_end) {
            size_t used = 0;
            const char *why = NULL;
            int ev = cf_mp_step(&r->mp, r->buf + r->pos, r->len - r->pos, r->body_end, &used, &why);
            r->pos += used;
            if (ev == -2)
                return fail(rq, r, CF_ETOOBIG, why);
            if (ev < 0)
                return fail(rq, r, CF_EINVAL, why);
            if (ev != CF_MP_MORE)
                return ev;
        }
        /* What the parser left (a possible delimiter's start) moves to the
         * front: never more than a delimiter, so there is room. */
        memmove(r->buf, r->buf + r->pos, r->len - r->pos);
        r->len -= r->pos;
        r->pos = 0;
        long n = cf_body_read(rq, r->buf + r->len, READ_BUF - r->len);
        if (n < 0)
            return fail(rq, r, (int)n, rq->x.errmsg ? rq->x.errmsg : cf_strerror((int)n));
        if (n == 0)
            r->body_end = true;
        r->len += (size_t)n;
    }
}

int cf_part_next(cf_req *rq, cf_part *part)
{
    int err = 0;
    struct cf_mp_reader *r = reader(rq, &err);
    if (!r)
        return err;
    char skip[4096];
    while (r->state == R_IN_PART) { /* the rest of the current part */
        long n = cf_part_read(rq, skip, sizeof skip);
        if (n < 0)
            return (int)n;
    }
    if (r->state == R_FAILED)
        return r->error;
    if (r->state == R_DONE)
        return 0;
    int ev = next_event(rq, r);
    if (ev < 0)
        return ev;
    if (ev == CF_MP_END) {
        r->state = R_DONE;
        return 0;
    }
    if (ev != CF_MP_PART)
        return fail(rq, r, CF_EINVAL, "a malformed multipart body");
    if (r->max_parts && ++r->nparts > (size_t)r->max_parts)
        return fail(rq, r, CF_ETOOBIG, "the form has more parts than the limit");
    part->name = cf_strdup(rq, r->mp.name);
    part->filename = r->mp.filename ? cf_strdup(rq, r->mp.filename) : NULL;
    part->content_type = cf_strdup(rq, r->mp.content_type ? r->mp.content_type
                                       : r->mp.filename ? "application/octet-stream"
                                                        : "text/plain");
    r->part_is_file = r->mp.filename != NULL;
    r->part_size = 0;
    r->state = R_IN_PART;
    return 1;
}

long cf_part_read(cf_req *rq, void *buf, size_t cap)
{
    struct cf_mp_reader *r = rq->mp;
    if (!r || r->state == R_BETWEEN || r->state == R_DONE)
        return 0;
    if (r->state == R_FAILED)
        return r->error;
    if (!r->pending_len) {
        int ev = next_event(rq, r);
        if (ev < 0)
            return ev;
        if (ev == CF_MP_PART_END) {
            r->state = R_BETWEEN;
            return 0;
        }
        if (ev != CF_MP_DATA)
            return fail(rq, r, CF_EINVAL, "a malformed multipart body");
        r->part_size += r->mp.len;
        int64_t max = r->part_is_file ? r->max_file : r->max_field;
        if (max && r->part_size > (uint64_t)max)
            return fail(rq, r, CF_ETOOBIG, r->part_is_file ? "a file is larger than the limit"
                                                           : "a form field is larger than the limit");
        r->pending = r->mp.data;
        r->pending_len = r->mp.len;
    }
    size_t n = r->pending_len < cap ? r->pending_len : cap;
    memcpy(buf, r->pending, n);
    r->pending += n;
    r->pending_len -= n;
    return (long)n;
}

/* ---- the whole form at once -------------------------------------------------- */

/* A temporary file of the request: unlinked when it ends, or crashes. */
typedef struct cf_spool spool;

static void spool_drop(void *p)
{
    spool *s = p;
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    if (s->path)
        unlink(s->path);
    s->path = NULL;
}

void cf_multipart_crashed(cf_req *rq)
{
    for (spool *s = rq->spools; s; s = s->next)
        spool_drop(s);
}

typedef struct write_job {
    int fd;
    const char *data;
    size_t len;
    int err;
} write_job;

static int write_all(void *arg)
{
    write_job *j = arg;
    for (size_t off = 0; off < j->len;) {
        ssize_t n = write(j->fd, j->data + off, j->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            j->err = errno ? errno : EIO;
            return -1;
        }
        off += (size_t)n;
    }
    return 0;
}

/* Write on the thread pool: a disk may block, the loop must not. */
static int spool_write(cf_req *rq, spool *s, const char *data, size_t len)
{
    write_job j = {s->fd, data, len, 0};
    cf_task *t = cf_to_thread(rq, write_all, &j);
    if (!t) /* a threaded handler (already on a pool thread) writes itself */
        return write_all(&j) == 0 ? 0 : CF_EFAIL;
    int rc = cf_await(rq, t, -1);
    if (rc == 0 && j.err)
        rc = CF_EFAIL;
    return rc;
}

static spool *spool_open(cf_req *rq)
{
    const char *dir = rq->app->upload_dir ? rq->app->upload_dir : getenv("TMPDIR");
    spool *s = cf_alloc(rq, sizeof *s);
    s->path = cf_sprintf(rq, "%s/carafe-upload-XXXXXX", dir && *dir ? dir : "/tmp");
    s->fd = mkostemp(s->path, O_CLOEXEC);
    if (s->fd < 0)
        return NULL;
    s->next = rq->spools;
    rq->spools = s;
    cf_defer(rq, spool_drop, s);
    return s;
}

static void add_file(cf_req *rq, cf_file *f)
{
    if (rq->nfiles == rq->files_cap) {
        size_t cap = rq->files_cap ? rq->files_cap * 2 : 4;
        cf_file **grown = cf_alloc(rq, (cap + 1) * sizeof *grown);
        if (rq->nfiles)
            memcpy(grown, rq->files, rq->nfiles * sizeof *grown);
        rq->files = grown;
        rq->files_cap = cap;
    }
    rq->files[rq->nfiles++] = f;
    rq->files[rq->nfiles] = NULL;
}

/* A malloc'd buffer the request frees when it ends. */
typedef struct owned {
    char *p;
} owned;

static void owned_free(void *arg) { free(((owned *)arg)->p); }

/* Bytes a request keeps in memory for its form (fields and small files):
 * past this, files are spooled whatever their size and fields refused. */
static size_t memory_budget(cf_req *rq) { return 8 * (size_t)rq->app->opt[CF_OPT_UPLOAD_MEMORY]; }

/* One file part: in memory up to the threshold (and the request's
 * budget), then in a spool file written a batch at a time. */
static int take_file(cf_req *rq, const cf_part *p)
{
    cf_file *f = cf_alloc(rq, sizeof *f);
    memset(f, 0, sizeof *f);
    f->field = p->name;
    f->filename = p->filename;
    f->content_type = p->content_type;
    size_t mem_max = (size_t)rq->app->opt[CF_OPT_UPLOAD_MEMORY];
    size_t budget = memory_budget(rq);
    if (rq->form_memory + mem_max > budget)
        mem_max = budget > rq->form_memory ? budget - rq->form_memory : 0;
    owned *buf = cf_alloc(rq, sizeof *buf);
    buf->p = NULL;
    cf_defer(rq, owned_free, buf);
    size_t cap = 0, len = 0;
    spool *s = NULL;
    for (;;) {
        if (len == cap) {
            if (!s && len > mem_max && !(s = spool_open(rq))) {
                rq->errmsg = "cannot create a temporary file for an upload";
                return CF_EFAIL;
            }
            if (s && len >= SPOOL_BATCH) {
                int rc = spool_write(rq, s, buf->p, len);
                if (rc < 0) {
                    rq->errmsg = "cannot write an upload to its temporary file";
                    return rc;
                }
                len = 0;
            } else { /* grow: to one byte past the threshold, or to a batch */
                size_t top = s ? SPOOL_BATCH : mem_max + 1;
                size_t ncap = cap ? cap * 2 : 4096;
                ncap = ncap > top ? top : ncap;
                char *grown = realloc(buf->p, ncap + 1);
                if (!grown)
                    abort();
                buf->p = grown;
                cap = ncap;
            }
        }
        long n = cf_part_read(rq, buf->p + len, cap - len);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        len += (size_t)n;
        f->size += (uint64_t)n;
    }
    if (s) {
        int rc = len ? spool_write(rq, s, buf->p, len) : 0;
        if (rc < 0) {
            rq->errmsg = "cannot write an upload to its temporary file";
            return rc;
        }
        f->path = s->path;
    } else {
        if (!buf->p && !(buf->p = malloc(1)))
            abort();
        buf->p[len] = 0;
        f->data = buf->p;
        rq->form_memory += len;
    }
    add_file(rq, f);
    return 0;
}

static int take_field(cf_req *rq, const cf_part *p)
{
    size_t cap = 256, len = 0;
    char *v = cf_alloc(rq, cap);
    for (;;) {
        if (len + 1 == cap) {
            char *grown = cf_alloc(rq, cap * 2);
            memcpy(grown, v, len);
            v = grown;
            cap *= 2;
        }
        long n = cf_part_read(rq, v + len, cap - 1 - len);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        len += (size_t)n;
        if (rq->form_memory + len > memory_budget(rq)) {
            rq->errmsg = "the form's fields are larger than the limit";
            return CF_ETOOBIG;
        }
    }
    v[len] = 0;
    rq->form_memory += len;
    cf_kv_add(rq, &rq->form, (char *)p->name, v);
    return 0;
}

int cf_multipart_parse_all(cf_req *rq)
{
    cf_part p;
    int rc;
    while ((rc = cf_part_next(rq, &p)) > 0) {
        rc = p.filename ? take_file(rq, &p) : take_field(rq, &p);
        if (rc < 0)
            break;
    }
    return rc;
}
