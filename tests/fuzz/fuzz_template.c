/*
 * fuzz_template.c — libFuzzer target for the template engine (lexer,
 * parser, renderer, with the value and filter code it calls). The input
 * is cut at 0xFF bytes into up to three templates, "a.html", "b.txt" and
 * "c.html" (so they can extend, include and import each other); each is
 * compiled (syntax errors are fine) and each that compiled is rendered
 * with a small fixed context. Nothing may crash, overflow the stack,
 * leak or run away (the renderer's own bounds apply).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/tpl.h"

static const char *const names[] = {"a.html", "b.txt", "c.html"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *ctx;
    if (!ctx)
        ctx = json_loads("{\"x\": \"<b>&\", \"n\": 3, \"f\": 1.5, \"xs\": [1, 2, 3], \"t\": true,"
                         " \"d\": {\"a\": 1, \"b\": [\"p\", \"q\"]}, \"e\": \"\", \"nul\": null,"
                         " \"m\": {\"__html__\": \"<i>safe</i>\"}, \"name\": \"b.txt\"}",
                         0, NULL);
    tpl_env *env = tpl_env_new();
    char err[512];
    size_t start = 0;
    int count = 0;
    for (size_t i = 0; i <= size && count < 3; i++) {
        if (i == size || data[i] == 0xFF) {
            tpl_env_add(env, names[count], (const char *)data + start, i - start, err, sizeof err);
            count++;
            start = i + 1;
        }
    }
    for (int k = 0; k < count; k++) {
        if (!tpl_env_has(env, names[k]))
            continue;
        cf_arena arena;
        cf_arena_init(&arena, NULL, 0);
        const char *out;
        size_t len;
        if (tpl_render(env, names[k], ctx, NULL, &arena, &out, &len, err, sizeof err) == 0 &&
            strlen(out) > len)
            abort(); /* the output is NUL-terminated at len (it may hold NULs itself) */
        cf_arena_reset(&arena);
    }
    tpl_env_free(env);
    return 0;
}
