/*
 * uploads.c — what a handler does with uploaded files (cf_file, parsed by
 * multipart.c): find them, move them where they belong, and make a
 * client's filename safe to use as a path component.
 *
 * cf_secure_filename follows Werkzeug's secure_filename on POSIX exactly
 * (tests/integration/test_uploads.py compares the two): NFKD (here by
 * libunistring), non-ASCII dropped, '/' to a space, whitespace runs to
 * one '_', everything outside [A-Za-z0-9_.-] dropped, '.' and '_' trimmed
 * from both ends.
 */
#define _GNU_SOURCE /* mkostemp */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uninorm.h>

#include "app/req.h"

const cf_file *const *cf_files(cf_req *rq, const char *field, size_t *n)
{
    cf_form_parse(rq);
    size_t count = 0;
    for (size_t i = 0; i < rq->nfiles; i++)
        count += !field || strcmp(rq->files[i]->field, field) == 0;
    const cf_file **out = cf_alloc(rq, (count + 1) * sizeof *out);
    size_t o = 0;
    for (size_t i = 0; i < rq->nfiles; i++)
        if (!field || strcmp(rq->files[i]->field, field) == 0)
            out[o++] = rq->files[i];
    out[o] = NULL;
    if (n)
        *n = count;
    return out;
}

const cf_file *cf_file_get(cf_req *rq, const char *field)
{
    cf_form_parse(rq);
    for (size_t i = 0; i < rq->nfiles; i++)
        if (strcmp(rq->files[i]->field, field) == 0)
            return rq->files[i];
    return NULL;
}

/* ---- saving ---------------------------------------------------------------------- */

typedef struct save_job {
    const cf_file *f;
    const char *dest;
    const char *err;
} save_job;

static int write_fd(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A copy into a new file beside dest, renamed over it at the end, so dest
 * never holds half a file. On the thread pool: it may take long. */
static int copy_job(void *arg)
{
    save_job *j = arg;
    size_t dl = strlen(j->dest);
    char *tmp = malloc(dl + 16);
    if (!tmp) {
        j->err = "out of memory";
        return -1;
    }
    snprintf(tmp, dl + 16, "%s.partXXXXXX", j->dest);
    int out = mkostemp(tmp, O_CLOEXEC);
    if (out < 0) {
        j->err = "cannot create the destination file";
        free(tmp);
        return -1;
    }
    int rc = 0;
    if (j->f->path) {
        int in = open(j->f->path, O_RDONLY | O_CLOEXEC);
        if (in < 0) {
            rc = -1;
        } else {
            char buf[64 * 1024];
            ssize_t n;
            while (rc == 0 && (n = read(in, buf, sizeof buf)) != 0) {
                if (n < 0 && errno == EINTR)
                    continue;
                rc = n < 0 ? -1 : write_fd(out, buf, (size_t)n);
            }
            close(in);
        }
    } else {
        rc = write_fd(out, j->f->data, (size_t)j->f->size);
    }
    if (close(out) != 0)
        rc = -1;
    if (rc == 0 && rename(tmp, j->dest) != 0)
        rc = -1;
    if (rc != 0) {
        j->err = "cannot write the destination file";
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

int cf_file_save(cf_req *rq, const cf_file *f, const char *dest)
{
    if (!f || !dest || !*dest) {
        rq->errmsg = "cf_file_save needs a file and a destination";
        return CF_EFAIL;
    }
    /* A spooled file on dest's filesystem just moves; the request's
     * clean-up then finds nothing to delete. */
    if (f->path && rename(f->path, dest) == 0) {
        for (struct cf_spool *s = rq->spools; s; s = s->next)
            if (s->path == f->path)
                s->path = NULL;
        ((cf_file *)f)->path = dest == f->path ? f->path : cf_strdup(rq, dest);
        return 0;
    }
    save_job j = {f, dest, NULL};
    cf_task *t = cf_to_thread(rq, copy_job, &j);
    int rc = t ? cf_await(rq, t, -1) : copy_job(&j); /* a threaded handler copies itself */
    if (rc != 0) {
        rq->errmsg = j.err ? j.err : "the copy was interrupted";
        return CF_EFAIL;
    }
    return 0;
}

/* ---- safe names -------------------------------------------------------------------- */

/* Python's str.split() whitespace, within ASCII. */
static bool py_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }

static bool kept(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

const char *cf_secure_filename(cf_req *rq, const char *filename)
{
    size_t n = filename ? strlen(filename) : 0, dn = 0;
    /* Not UTF-8: there is no decomposition to make; its ASCII remains. */
    uint8_t *d = n ? u8_normalize(UNINORM_NFKD, (const uint8_t *)filename, n, NULL, &dn) : NULL;
    const char *src = d ? (const char *)d : filename ? filename : "";
    size_t len = d ? dn : n;
    char *out = cf_alloc(rq, len + 1);
    size_t o = 0;
    bool gap = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c >= 0x80)
            continue; /* encode("ascii", "ignore") */
        if (c == '/' || py_space(c)) {
            gap = true;
            continue;
        }
        if (gap && o) /* "_".join(name.split()) */
            out[o++] = '_';
        gap = false;
        if (kept(c))
            out[o++] = (char)c;
    }
    free(d);
    size_t start = 0;
    while (start < o && (out[start] == '.' || out[start] == '_'))
        start++;
    while (o > start && (out[o - 1] == '.' || out[o - 1] == '_'))
        o--;
    out[o] = 0;
    return out + start;
}
