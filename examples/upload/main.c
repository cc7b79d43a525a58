/*
 * examples/upload — file uploads that stream to disk.
 *
 *   GET  /               an HTML form to try it in a browser
 *   POST /upload         multipart/form-data, field "file", any number of
 *                        files: each is stored under UPLOAD_DIR with a safe
 *                        name; 201 [{"name", "size", "sha256"}]
 *   GET  /files/<name>   a stored file (ranges and conditional requests work)
 *
 * Each file goes to a temporary file in UPLOAD_DIR while it arrives, its
 * SHA-256 computed on the way (never by reading it again), written on the
 * thread pool so a slow disk never stalls the worker. Only when the whole
 * body has arrived intact are the temporary files renamed to their names;
 * a refused or broken upload (a file over MAX_FILE_SIZE, a truncated body,
 * a client that leaves) stores nothing: a deferred call removes what was
 * written. So a 1 GiB upload costs the worker one 256 KiB buffer.
 *
 * Environment: UPLOAD_DIR (default ./uploads), MAX_FILE_SIZE in bytes
 * (default 1 GiB), MAX_UPLOAD_SIZE for the whole body (default 4 GiB).
 * Build: cc main.c $(pkg-config --cflags --libs carafe libcrypto)
 */
#define _POSIX_C_SOURCE 200809L
#include <carafe.h>

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *upload_dir = "./uploads";

static const char form_page[] =
    "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Upload</title></head><body>\n"
    "<h1>Upload files</h1>\n"
    "<form method=\"post\" action=\"/upload\" enctype=\"multipart/form-data\">\n"
    "  <input type=\"file\" name=\"file\" multiple>\n"
    "  <button type=\"submit\">Upload</button>\n"
    "</form>\n</body></html>\n";

static void index_page(cf_req *rq) { cf_html(rq, 200, form_page); }

/* ---- writing on the thread pool ------------------------------------------------ */

typedef struct write_job {
    int fd;
    const char *data;
    size_t len;
} write_job;

static int write_all(void *arg)
{
    write_job *j = arg;
    while (j->len) {
        ssize_t n = write(j->fd, j->data, j->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return CF_EFAIL;
        j->data += n;
        j->len -= (size_t)n;
    }
    return 0;
}

static int write_off_loop(cf_req *rq, int fd, const char *data, size_t len)
{
    write_job j = {fd, data, len};
    return cf_await(rq, cf_to_thread(rq, write_all, &j), -1);
}

/* ---- one stored file ------------------------------------------------------------- */

typedef struct stored {
    char *tmp;       /* the temporary file; NULL once renamed */
    const char *name;
    unsigned long long size;
    char sha256[65];
    struct stored *next;
} stored;

/* Deferred: whatever was not renamed goes (an error, a cancel, a 4xx). */
static void remove_tmp(void *arg)
{
    stored *s = arg;
    if (s->tmp)
        unlink(s->tmp);
    s->tmp = NULL;
}

/* Copy the current part into a temporary file, hashing it on the way. */
static int receive(cf_req *rq, stored *s)
{
    enum { BATCH = 256 * 1024 };
    char *buf = cf_alloc(rq, BATCH);
    s->tmp = cf_sprintf(rq, "%s/.upload-XXXXXX", upload_dir);
    int fd = mkstemp(s->tmp);
    if (fd < 0) {
        s->tmp = NULL;
        return CF_EFAIL;
    }
    cf_defer(rq, remove_tmp, s);
    fchmod(fd, 0644); /* mkstemp's 0600 would keep the stored file private */
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    int rc = 0;
    size_t len = 0;
    for (;;) {
        long n = cf_part_read(rq, buf + len, BATCH - len);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        EVP_DigestUpdate(md, buf + len, (size_t)n);
        len += (size_t)n;
        s->size += (unsigned long long)n;
        if (len == BATCH || (n == 0 && len)) {
            rc = write_off_loop(rq, fd, buf, len);
            len = 0;
            if (rc != 0)
                break;
        }
        if (n == 0)
            break;
    }
    unsigned char digest[32];
    unsigned int dlen = 0;
    EVP_DigestFinal_ex(md, digest, &dlen);
    EVP_MD_CTX_free(md);
    for (unsigned i = 0; i < dlen; i++)
        snprintf(s->sha256 + 2 * i, 3, "%02x", digest[i]);
    if (close(fd) != 0 && rc == 0)
        rc = CF_EFAIL;
    return rc;
}

/* A name not taken yet in the folder: "a.txt", else "a-1.txt", ... */
static const char *free_name(cf_req *rq, const char *safe)
{
    const char *dot = strrchr(safe, '.');
    size_t stem = dot && dot != safe ? (size_t)(dot - safe) : strlen(safe);
    const char *name = safe;
    struct stat st;
    for (int i = 1; stat(cf_sprintf(rq, "%s/%s", upload_dir, name), &st) == 0; i++)
        name = cf_sprintf(rq, "%.*s-%d%s", (int)stem, safe, i, safe + stem);
    return name;
}

static void upload(cf_req *rq)
{
    stored *first = NULL, **last = &first;
    cf_part part;
    int rc;
    while ((rc = cf_part_next(rq, &part)) > 0) {
        if (strcmp(part.name, "file") != 0 || !part.filename)
            continue; /* other fields: skipped (cf_part_next drops the rest) */
        stored *s = cf_alloc(rq, sizeof *s);
        memset(s, 0, sizeof *s);
        const char *safe = cf_secure_filename(rq, part.filename);
        s->name = *safe ? safe : "upload";
        *last = s;
        last = &s->next;
        if ((rc = receive(rq, s)) != 0)
            break;
    }
    if (rc != 0) /* gone before the answer, so a client told 4xx sees no trace */
        for (stored *s = first; s; s = s->next)
            remove_tmp(s);
    if (rc == CF_ETOOBIG) {
        cf_json(rq, 413, "{s:s}", "error", cf_errmsg(rq));
        return;
    }
    if (rc == CF_EINVAL) {
        cf_json(rq, 400, "{s:s}", "error", cf_errmsg(rq));
        return;
    }
    if (rc != 0) { /* CF_ECANCELED (nobody to answer), a disk error, ... */
        cf_abort(rq, 500);
        return;
    }
    if (!first) {
        cf_json(rq, 400, "{s:s}", "error", "no file in the field \"file\"");
        return;
    }
    /* The body is complete: give each file its name. */
    json_t *out = json_array();
    for (stored *s = first; s; s = s->next) {
        s->name = free_name(rq, s->name);
        if (rename(s->tmp, cf_sprintf(rq, "%s/%s", upload_dir, s->name)) != 0) {
            json_decref(out);
            cf_abort(rq, 500);
            return;
        }
        s->tmp = NULL;
        json_array_append_new(out, json_pack("{s:s,s:I,s:s}", "name", s->name, "size",
                                             (json_int_t)s->size, "sha256", s->sha256));
    }
    cf_json_value(rq, 201, out);
}

static void get_file(cf_req *rq) { cf_send_from_directory(rq, upload_dir, cf_param(rq, "name")); }

static long long env_size(const char *name, long long dflt)
{
    const char *v = getenv(name);
    long long n = v ? strtoll(v, NULL, 10) : 0;
    return n > 0 ? n : dflt;
}

int main(int argc, char **argv)
{
    if (getenv("UPLOAD_DIR") && *getenv("UPLOAD_DIR"))
        upload_dir = getenv("UPLOAD_DIR");
    if (mkdir(upload_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "upload: cannot create %s: %s\n", upload_dir, strerror(errno));
        return 1;
    }
    long long max_file = env_size("MAX_FILE_SIZE", 1LL << 30);
    long long max_body = env_size("MAX_UPLOAD_SIZE", 4LL << 30);

    cf_app *app = cf_app_new();
    cf_route(app, "GET", "/", index_page);
    cf_route *up = cf_route(app, "POST", "/upload", upload);
    cf_route_set(up, CF_OPT_MAX_BODY, max_body);
    cf_route_set(up, CF_OPT_MAX_FILE_SIZE, max_file);
    cf_route(app, "GET", "/files/<name>", get_file);
    int rc = cf_run(app, argc, argv);
    cf_app_free(app);
    return rc;
}
