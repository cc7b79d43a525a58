/*
 * stderr_capture.h — run code with stderr going to a temporary file and
 * get what it wrote, for tests of what Carafe logs.
 */
#ifndef CF_TEST_STDERR_CAPTURE_H
#define CF_TEST_STDERR_CAPTURE_H
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct capture {
    int saved, fd;
    char path[64];
} capture;

static void capture_begin(capture *c)
{
    fflush(stderr);
    snprintf(c->path, sizeof c->path, "/tmp/cf-test-stderr-XXXXXX");
    c->fd = mkstemp(c->path);
    c->saved = dup(2);
    dup2(c->fd, 2);
}

/* What was written since capture_begin (malloc'd, NUL-terminated); stderr
 * is back as it was. */
static char *capture_end(capture *c)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    off_t len = lseek(c->fd, 0, SEEK_END);
    char *text = calloc(1, (size_t)len + 1);
    if (text && len > 0 && pread(c->fd, text, (size_t)len, 0) != len)
        text[0] = 0;
    close(c->fd);
    unlink(c->path);
    return text;
}

#endif
