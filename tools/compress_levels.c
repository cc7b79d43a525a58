/*
 * compress_levels.c — what each gzip level and brotli quality costs and
 * saves on bodies a web app sends, to choose CF_OPT_GZIP_LEVEL and
 * CF_OPT_BROTLI_QUALITY (docs/benchmarks.md has the figures).
 *
 *   compress-levels [rounds]
 *
 * Bodies: a JSON list of 100 objects (about 5 KiB, what compressapp's
 * /json sends), the same with 2,000 (about 100 KiB), an HTML page like
 * the bench's fortunes table, and a CSS file. Each is compressed whole,
 * as compress.c does for bodies given at once, `rounds` times per setting
 * (default 200); printed: the median microseconds of CPU per body over 5
 * runs, and the size as a percentage of the original.
 */
#include <brotli/encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

typedef struct {
    const char *name;
    char *data;
    size_t len;
} body;

static double cpu_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static char *json_list(int n, size_t *len)
{
    char *s = malloc((size_t)n * 64 + 8);
    size_t k = 0;
    s[k++] = '[';
    for (int i = 0; i < n; i++)
        k += (size_t)sprintf(s + k, "%s{\"id\":%d,\"name\":\"%s\",\"done\":%s}", i ? "," : "", i,
                             i % 2 ? "odd item" : "even item", i % 3 ? "false" : "true");
    s[k++] = ']';
    *len = k;
    return s;
}

static char *fortunes(size_t *len)
{
    static const char *msgs[] = {"fortune: No such file or directory",
                                 "A computer scientist is someone who fixes things that aren't broken.",
                                 "After enough decimal places, nobody gives a damn.",
                                 "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1",
                                 "A computer program does what you tell it to do, not what you want it to do.",
                                 "Emacs is a nice operating system, but I prefer UNIX. — Tom Christaensen",
                                 "Any program that runs right is obsolete.",
                                 "A list is only as strong as its weakest link. — Donald Knuth",
                                 "Feature: A bug with seniority.",
                                 "Computers make very fast, very accurate mistakes.",
                                 "<script>alert(\"This should not be displayed in a browser alert box.\");</script>",
                                 "フレームワークのベンチマーク"};
    char *s = malloc(8192);
    size_t k = (size_t)sprintf(s, "<!DOCTYPE html><html><head><title>Fortunes</title></head><body>"
                                  "<table><tr><th>id</th><th>message</th></tr>");
    for (int i = 0; i < 12; i++)
        k += (size_t)sprintf(s + k, "<tr><td>%d</td><td>%s</td></tr>", i + 1, msgs[i]);
    k += (size_t)sprintf(s + k, "</table></body></html>");
    *len = k;
    return s;
}

static char *css(size_t *len)
{
    char *s = malloc(64 * 1024);
    size_t k = 0;
    for (int i = 0; i < 300; i++)
        k += (size_t)sprintf(s + k, ".item-%d { margin: %dpx %dpx; padding: 0 %dpx; color: #%06x; }\n", i,
                             i % 7, i % 5, i % 3, (i * 2654435761u) & 0xffffff);
    *len = k;
    return s;
}

/* As compress.c sizes them: the window no larger than the body. */
static int window_bits(size_t len, int min, int max)
{
    int bits = min;
    while (bits < max && ((size_t)1 << bits) < len)
        bits++;
    return bits;
}

static size_t gzip_once(const body *b, int level, unsigned char *out, size_t cap)
{
    int wbits = window_bits(b->len, 9, 15);
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, level, Z_DEFLATED, 16 + wbits, wbits > 9 ? wbits - 7 : 2, Z_DEFAULT_STRATEGY);
    z.next_in = (unsigned char *)b->data;
    z.avail_in = (uInt)b->len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    size_t n = z.total_out;
    deflateEnd(&z);
    return n;
}

static size_t brotli_once(const body *b, int quality, unsigned char *out, size_t cap)
{
    size_t n = cap;
    BrotliEncoderCompress(quality, window_bits(b->len, BROTLI_MIN_WINDOW_BITS, BROTLI_DEFAULT_WINDOW), BROTLI_MODE_GENERIC, b->len,
                          (const uint8_t *)b->data, &n, out);
    return n;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void measure(const body *b, const char *what, int setting, int rounds,
                    size_t (*fn)(const body *, int, unsigned char *, size_t))
{
    size_t cap = b->len * 2 + 1024, n = 0;
    unsigned char *out = malloc(cap);
    double runs[5];
    for (int r = 0; r < 5; r++) {
        double t0 = cpu_us();
        for (int i = 0; i < rounds; i++)
            n = fn(b, setting, out, cap);
        runs[r] = (cpu_us() - t0) / rounds;
    }
    qsort(runs, 5, sizeof *runs, cmp);
    printf("  %-7s %2d  %8.1f us  %5.1f%%  (%zu -> %zu bytes)\n", what, setting, runs[2],
           100.0 * (double)n / (double)b->len, b->len, n);
    free(out);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 200;
    body bodies[4] = {{"JSON, 100 objects", 0, 0}, {"JSON, 2000 objects", 0, 0},
                      {"HTML, fortunes", 0, 0}, {"CSS", 0, 0}};
    bodies[0].data = json_list(100, &bodies[0].len);
    bodies[1].data = json_list(2000, &bodies[1].len);
    bodies[2].data = fortunes(&bodies[2].len);
    bodies[3].data = css(&bodies[3].len);
    for (int i = 0; i < 4; i++) {
        printf("%s (%zu bytes)\n", bodies[i].name, bodies[i].len);
        for (int level = 1; level <= 9; level++)
            measure(&bodies[i], "gzip", level, rounds, gzip_once);
        for (int q = 0; q <= 11; q++)
            measure(&bodies[i], "brotli", q, q >= 10 ? rounds / 20 + 1 : rounds, brotli_once);
        free(bodies[i].data);
    }
    return 0;
}
