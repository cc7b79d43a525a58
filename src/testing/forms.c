/*
 * forms.c — the test client's request helpers: GET, JSON posts, and form
 * posts built the way browsers build them (urlencoded, multipart).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testing/client.h"

cf_test_response *cf_test_get(cf_test_client *tc, const char *target)
{
    return cf_test_request(tc, "GET", target, NULL, NULL, 0);
}

cf_test_response *cf_test_post_json(cf_test_client *tc, const char *target, const char *json_text)
{
    static const char *const h[] = {"Content-Type: application/json", NULL};
    return cf_test_request(tc, "POST", target, h, json_text, strlen(json_text));
}

/* application/x-www-form-urlencoded: unreserved bytes as they are, space
 * as '+', everything else %XX (what a browser sends). */
static void put_encoded(tbuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._*", *p)) {
            tbuf_put(b, p, 1);
        } else if (*p == ' ') {
            tbuf_put(b, "+", 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            tbuf_put(b, e, 3);
        }
    }
}

cf_test_response *cf_test_post_form(cf_test_client *tc, const char *target,
                                    const char *const *fields)
{
    tbuf b = {0};
    for (size_t i = 0; fields && fields[i] && fields[i + 1]; i += 2) {
        if (i)
            tbuf_put(&b, "&", 1);
        put_encoded(&b, fields[i]);
        tbuf_put(&b, "=", 1);
        put_encoded(&b, fields[i + 1]);
    }
    static const char *const h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    cf_test_response *r = cf_test_request(tc, "POST", target, h, b.data ? b.data : "", b.len);
    free(b.data);
    return r;
}

/* A quoted-string parameter of Content-Disposition: quotes and line
 * breaks percent-encoded, as browsers (and the HTML standard) do. */
static void put_quoted(tbuf *b, const char *s)
{
    tbuf_put(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"')
            tbuf_put(b, "%22", 3);
        else if (*s == '\r')
            tbuf_put(b, "%0D", 3);
        else if (*s == '\n')
            tbuf_put(b, "%0A", 3);
        else
            tbuf_put(b, s, 1);
    }
    tbuf_put(b, "\"", 1);
}

cf_test_response *cf_test_post_multipart(cf_test_client *tc, const char *target,
                                         const cf_test_part *parts, size_t nparts)
{
    static unsigned counter;
    char boundary[64];
    snprintf(boundary, sizeof boundary, "----CarafeTestBoundary%08x%04x", ++counter,
             (unsigned)rand() & 0xffff);
    tbuf b = {0};
    for (size_t i = 0; i < nparts; i++) {
        const cf_test_part *p = &parts[i];
        tbuf_put(&b, "--", 2);
        tbuf_put(&b, boundary, strlen(boundary));
        tbuf_put(&b, "\r\nContent-Disposition: form-data; name=", 39);
        put_quoted(&b, p->name ? p->name : "");
        if (p->filename) {
            tbuf_put(&b, "; filename=", 11);
            put_quoted(&b, p->filename);
        }
        const char *ct = p->content_type ? p->content_type
                         : p->filename   ? "application/octet-stream"
                                         : NULL;
        if (ct) {
            tbuf_put(&b, "\r\nContent-Type: ", 16);
            tbuf_put(&b, ct, strlen(ct));
        }
        tbuf_put(&b, "\r\n\r\n", 4);
        if (p->len)
            tbuf_put(&b, p->data, p->len);
        tbuf_put(&b, "\r\n", 2);
    }
    tbuf_put(&b, "--", 2);
    tbuf_put(&b, boundary, strlen(boundary));
    tbuf_put(&b, "--\r\n", 4);
    char ctype[128];
    snprintf(ctype, sizeof ctype, "Content-Type: multipart/form-data; boundary=%s", boundary);
    const char *const h[] = {ctype, NULL};
    cf_test_response *r = cf_test_request(tc, "POST", target, h, b.data, b.len);
    free(b.data);
    return r;
}
