/*
 * carafe_render.c — render one template from the command line, the way
 * Carafe's engine renders it in a server:
 *
 *     carafe-render --templates DIR NAME < context.json
 *
 * stdin holds the context, a JSON object (empty stdin: no context). The
 * folder is compiled first (a syntax error: "file:line:col: message" on
 * stderr, exit 1); the output bytes go to stdout (exit 0); a render error
 * is "carafe-render: NAME:LINE: message" on stderr (exit 1). Bad usage
 * exits 2. Used by the differential tests against Jinja2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/tpl.h"

static int usage(void)
{
    fputs("usage: carafe-render --templates DIR NAME < context.json\n", stderr);
    return 2;
}

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    for (;;) {
        if (n == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (!got)
            break;
    }
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--templates") && i + 1 < argc)
            dir = argv[++i];
        else if (!strncmp(argv[i], "--templates=", 12))
            dir = argv[i] + 12;
        else if (argv[i][0] == '-' || name)
            return usage();
        else
            name = argv[i];
    }
    if (!dir || !name)
        return usage();

    size_t len = 0;
    char *input = read_all(stdin, &len);
    if (!input) {
        fputs("carafe-render: out of memory\n", stderr);
        return 1;
    }
    json_t *ctx = NULL;
    size_t blank = 0;
    while (blank < len && strchr(" \t\r\n", input[blank]))
        blank++;
    if (blank < len) {
        json_error_t jerr;
        ctx = json_loadb(input, len, JSON_DECODE_ANY, &jerr);
        if (!json_is_object(ctx)) {
            fprintf(stderr, "carafe-render: the context on stdin is not a JSON object%s%s\n",
                    ctx ? "" : ": ", ctx ? "" : jerr.text);
            json_decref(ctx);
            free(input);
            return 1;
        }
    }
    free(input);

    int status = 1;
    char err[1024];
    tpl_env *env = tpl_env_new();
    if (tpl_env_load_dir(env, dir, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
    } else {
        cf_arena arena;
        cf_arena_init(&arena, NULL, 0);
        const char *out;
        size_t outlen;
        if (tpl_render(env, name, ctx, NULL, &arena, &out, &outlen, err, sizeof err) != 0) {
            fprintf(stderr, "carafe-render: %s\n", err);
        } else {
            fwrite(out, 1, outlen, stdout);
            status = fflush(stdout) == 0 ? 0 : 1;
        }
        cf_arena_reset(&arena);
    }
    tpl_env_free(env);
    json_decref(ctx);
    return status;
}
