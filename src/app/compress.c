/*
 * compress.c — response compression: gzip (zlib) and brotli, negotiated
 * from Accept-Encoding.
 *
 * The decision is taken once, when the response is final and before its
 * head goes out (cf_compress_response, from the pipeline): every answer the
 * app produces passes there, error pages and automatic answers included.
 * A body given whole is compressed at once into the request's arena. A
 * streamed body gets an encoder that each cf_write goes through; every
 * write is flushed (a sync flush), so an event or a progress line reaches
 * the client when it is written, not when a buffer fills. A streamed file
 * loses its Content-Length (the compressed length is not known ahead) and
 * goes chunked.
 *
 * Encoders of streams are kept small: an event stream may stay open for
 * hours, and ten thousand of them with zlib's default state (261 KiB
 * each, measured with mallinfo2 after 3,000 flushed events) would be
 * gigabytes. A 4 KiB window and hash make it 37 KiB and compressed such
 * events as well. Brotli's encoder keeps 300 to 700 KiB per stream at
 * quality 2 and above, whatever the window (quality 0 and 1 make flushed
 * small events larger than they were), so a stream goes out in gzip when
 * the client takes both, in brotli only for a client that takes no gzip.
 */
#include <brotli/encode.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "app/compress.h"
#include "app/req.h"

#define STREAM_GZIP_WBITS 12    /* 4 KiB window... */
#define STREAM_GZIP_MEMLEVEL 5  /* ...and hash: 37 KiB per stream */
#define STREAM_BROTLI_LGWIN 16  /* 64 KiB window */
#define OUT_PIECE (16 * 1024)   /* encoder output handed to the protocol at once */

struct cf_encoder {
    cf_coding coding;
    z_stream z;
    BrotliEncoderState *br;
    unsigned char out[OUT_PIECE];
};

/* ---- what may be compressed ----------------------------------------------- */

bool cf_compressible_type(const char *type)
{
    if (!type)
        return false;
    size_t len = strcspn(type, ";");
    while (len && (type[len - 1] == ' ' || type[len - 1] == '\t'))
        len--;
    const char *slash = memchr(type, '/', len);
    if (!slash)
        return false;
    size_t major = (size_t)(slash - type);
    const char *sub = slash + 1;
    size_t sublen = len - major - 1;
#define IS(s, n, lit) ((n) == sizeof lit - 1 && strncasecmp((s), lit, sizeof lit - 1) == 0)
#define ENDS(s, n, lit) ((n) >= sizeof lit - 1 && strncasecmp((s) + (n) - (sizeof lit - 1), lit, sizeof lit - 1) == 0)
    if (IS(type, major, "text"))
        return true;
    if (ENDS(sub, sublen, "+json") || ENDS(sub, sublen, "+xml"))
        return true;
    if (IS(type, major, "application"))
        return IS(sub, sublen, "json") || IS(sub, sublen, "javascript") ||
               IS(sub, sublen, "xml") || IS(sub, sublen, "x-javascript") ||
               IS(sub, sublen, "wasm") || IS(sub, sublen, "x-ndjson") ||
               IS(sub, sublen, "manifest+json") || IS(sub, sublen, "x-www-form-urlencoded");
    if (IS(type, major, "image"))
        return IS(sub, sublen, "svg+xml") || IS(sub, sublen, "x-icon") ||
               IS(sub, sublen, "vnd.microsoft.icon") || IS(sub, sublen, "bmp");
    if (IS(type, major, "font"))
        return IS(sub, sublen, "ttf") || IS(sub, sublen, "otf");
    return false;
#undef IS
#undef ENDS
}

/* Route, then its groups nearest first, then the app. */
bool cf_compress_enabled(cf_req *rq)
{
    if (rq->route) {
        if (rq->route->opt[CF_OPT_COMPRESS] >= 0)
            return rq->route->opt[CF_OPT_COMPRESS] != 0;
        for (cf_group *g = rq->route->group; g; g = g->parent)
            if (g->compress)
                return g->compress > 0;
    } else if (rq->app->root.compress) {
        return rq->app->root.compress > 0;
    }
    return rq->app->opt[CF_OPT_COMPRESS] != 0;
}

void cf_compress_set(cf_group *group, bool on)
{
    if (group)
        group->compress = on ? 1 : -1;
}

/* ---- Accept-Encoding (RFC 9110 12.5.3) -------------------------------------- */

/* The q-value after a coding's name: 1000 for "q=1" or none, 0..999 for
 * "q=0.xyz"; -1 for a malformed one (the element is then ignored). */
static int qvalue(const char *p, const char *end)
{
    int q = 1000;
    while (p < end) {
        while (p < end && (*p == ';' || *p == ' ' || *p == '\t'))
            p++;
        const char *param = p;
        while (p < end && *p != ';')
            p++;
        const char *e = p;
        while (e > param && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e - param < 2 || (param[0] != 'q' && param[0] != 'Q') || param[1] != '=')
            continue; /* another parameter: none is defined, ignore it */
        const char *v = param + 2;
        if (v < e && *v == '1') {
            q = 1000;
            for (v++; v < e && (*v == '.' || *v == '0'); v++)
                ;
        } else if (v < e && *v == '0') {
            q = 0;
            v++;
            if (v < e && *v == '.') {
                int scale = 100;
                for (v++; v < e && *v >= '0' && *v <= '9' && scale; v++, scale /= 10)
                    q += (*v - '0') * scale;
            }
        } else {
            return -1;
        }
        if (v != e)
            return -1;
    }
    return q;
}

/* The q-values (0..1000) of br and gzip in rq's Accept-Encoding. */
static void accepted(cf_req *rq, int *br, int *gzip)
{
    const char *h = cf_header(rq, "Accept-Encoding");
    *br = *gzip = 0;
    if (!h)
        return; /* "any" in theory; in practice a client that cannot say */
    int q_br = -1, q_gzip = -1, q_any = -1;
    for (const char *p = h; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *name = p;
        while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
            p++;
        size_t nlen = (size_t)(p - name);
        const char *params = p;
        while (*p && *p != ',')
            p++;
        if (!nlen)
            continue;
        int q = qvalue(params, p);
        if (q < 0)
            continue;
        if (nlen == 2 && strncasecmp(name, "br", 2) == 0)
            q_br = q;
        else if ((nlen == 4 && strncasecmp(name, "gzip", 4) == 0) ||
                 (nlen == 6 && strncasecmp(name, "x-gzip", 6) == 0))
            q_gzip = q > q_gzip ? q : q_gzip;
        else if (nlen == 1 && *name == '*')
            q_any = q;
    }
    *br = q_br >= 0 ? q_br : q_any > 0 ? q_any : 0;
    *gzip = q_gzip >= 0 ? q_gzip : q_any > 0 ? q_any : 0;
}

cf_coding cf_compress_negotiate(cf_req *rq)
{
    int br, gzip;
    accepted(rq, &br, &gzip);
    if (br == 0 && gzip == 0)
        return CF_CODING_IDENTITY;
    return br >= gzip ? CF_CODING_BR : CF_CODING_GZIP; /* brotli on a tie: smaller */
}

cf_coding cf_compress_stream_coding(cf_req *rq)
{
    int br, gzip;
    accepted(rq, &br, &gzip);
    if (gzip > 0)
        return CF_CODING_GZIP; /* a tenth of brotli's memory per open stream */
    return br > 0 ? CF_CODING_BR : CF_CODING_IDENTITY;
}

bool cf_compress_accepts(cf_req *rq, cf_coding c)
{
    int br, gzip;
    accepted(rq, &br, &gzip);
    return c == CF_CODING_IDENTITY || (c == CF_CODING_BR ? br : gzip) > 0;
}

const char *cf_coding_name(cf_coding c)
{
    return c == CF_CODING_BR ? "br" : c == CF_CODING_GZIP ? "gzip" : "identity";
}

const char *cf_compress_etag(cf_req *rq, const char *etag, cf_coding c)
{
    size_t len = etag ? strlen(etag) : 0;
    if (c == CF_CODING_IDENTITY || len < 2 || etag[len - 1] != '"')
        return etag;
    /* "abc" -> "abc-gzip", W/"abc" -> W/"abc-gzip": a different entity. */
    return cf_sprintf(rq, "%.*s-%s\"", (int)(len - 1), etag, cf_coding_name(c));
}

/* ---- whole bodies ---------------------------------------------------------- */

/* The smallest window (in bits, min..max) that holds the whole body: the
 * same output, and zlib's default state (256 KiB to set up per body) was
 * most of the cost of a small one (tools/compress_levels.c: 4 KiB of
 * JSON at level 6 took 92 us with it, 17 us with a window to size). */
static int window_bits(size_t len, int min, int max)
{
    int bits = min;
    while (bits < max && ((size_t)1 << bits) < len)
        bits++;
    return bits;
}

static bool compress_whole(cf_req *rq, cf_coding c)
{
    const unsigned char *in = (const unsigned char *)rq->x.resp_body;
    size_t len = rq->x.resp_len, cap;
    unsigned char *out;
    if (c == CF_CODING_BR) {
        cap = BrotliEncoderMaxCompressedSize(len);
        if (!cap || !(out = cf_arena_alloc(&rq->arena, cap)))
            return false;
        int mode = strncasecmp(rq->x.content_type ? rq->x.content_type : "", "text/", 5) == 0
                       ? BROTLI_MODE_TEXT : BROTLI_MODE_GENERIC;
        int lgwin = window_bits(len, BROTLI_MIN_WINDOW_BITS, BROTLI_DEFAULT_WINDOW);
        if (!BrotliEncoderCompress((int)rq->app->opt[CF_OPT_BROTLI_QUALITY], lgwin,
                                   (BrotliEncoderMode)mode, len, in, &cap, out))
            return false;
    } else {
        z_stream z;
        memset(&z, 0, sizeof z);
        int wbits = window_bits(len, 9, 15);
        if (deflateInit2(&z, (int)rq->app->opt[CF_OPT_GZIP_LEVEL], Z_DEFLATED, 16 + wbits,
                         wbits > 9 ? wbits - 7 : 2, Z_DEFAULT_STRATEGY) != Z_OK)
            return false;
        cap = deflateBound(&z, len);
        out = cf_arena_alloc(&rq->arena, cap);
        z.next_in = (unsigned char *)in;
        z.avail_in = (uInt)len;
        z.next_out = out;
        z.avail_out = (uInt)cap;
        int rc = out ? deflate(&z, Z_FINISH) : Z_MEM_ERROR;
        cap = z.total_out;
        deflateEnd(&z);
        if (rc != Z_STREAM_END)
            return false;
    }
    rq->x.resp_body = (char *)out;
    rq->x.resp_len = cap;
    return true;
}

/* ---- streams ------------------------------------------------------------------ */

static void encoder_free(void *p)
{
    cf_encoder *e = p;
    if (e->coding == CF_CODING_BR)
        BrotliEncoderDestroyInstance(e->br);
    else
        deflateEnd(&e->z);
    free(e);
}

static cf_encoder *encoder_new(cf_req *rq, cf_coding c)
{
    cf_encoder *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->coding = c;
    if (c == CF_CODING_BR) {
        e->br = BrotliEncoderCreateInstance(NULL, NULL, NULL);
        if (!e->br) {
            free(e);
            return NULL;
        }
        BrotliEncoderSetParameter(e->br, BROTLI_PARAM_QUALITY, (uint32_t)rq->app->opt[CF_OPT_BROTLI_QUALITY]);
        BrotliEncoderSetParameter(e->br, BROTLI_PARAM_LGWIN, STREAM_BROTLI_LGWIN);
    } else if (deflateInit2(&e->z, (int)rq->app->opt[CF_OPT_GZIP_LEVEL], Z_DEFLATED,
                            16 + STREAM_GZIP_WBITS, STREAM_GZIP_MEMLEVEL, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(e);
        return NULL;
    }
    cf_defer(rq, encoder_free, e);
    return e;
}

/* Hand the encoder's output so far to the protocol, waiting for the peer
 * as cf_write does. */
static int emit(cf_req *rq, const void *p, size_t n)
{
    int rc = rq->x.ops->write(&rq->x, p, n);
    if (rc == 0 && rq->x.ops->drain)
        rc = rq->x.ops->drain(&rq->x);
    return rc;
}

/* Feed len bytes and flush (finish: end the compressed stream). */
static int encode(cf_req *rq, const void *data, size_t len, bool finish)
{
    cf_encoder *e = rq->encoder;
    if (e->coding == CF_CODING_BR) {
        const uint8_t *in = data;
        size_t avail_in = len;
        BrotliEncoderOperation op = finish ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_FLUSH;
        for (;;) {
            uint8_t *out = e->out;
            size_t avail_out = sizeof e->out;
            if (!BrotliEncoderCompressStream(e->br, op, &avail_in, &in, &avail_out, &out, NULL))
                return CF_EFAIL;
            size_t n = sizeof e->out - avail_out;
            if (n) {
                int rc = emit(rq, e->out, n);
                if (rc != 0)
                    return rc;
            }
            if (avail_in == 0 && !BrotliEncoderHasMoreOutput(e->br) &&
                (!finish || BrotliEncoderIsFinished(e->br)))
                return 0;
        }
    }
    e->z.next_in = (unsigned char *)data;
    e->z.avail_in = (uInt)len;
    for (;;) {
        e->z.next_out = e->out;
        e->z.avail_out = sizeof e->out;
        int zrc = deflate(&e->z, finish ? Z_FINISH : Z_SYNC_FLUSH);
        if (zrc != Z_OK && zrc != Z_STREAM_END && zrc != Z_BUF_ERROR)
            return CF_EFAIL;
        size_t n = sizeof e->out - e->z.avail_out;
        if (n) {
            int rc = emit(rq, e->out, n);
            if (rc != 0)
                return rc;
        }
        /* Done when deflate left output room: all input taken and flushed. */
        if (finish ? zrc == Z_STREAM_END : e->z.avail_out != 0)
            return 0;
    }
}

int cf_compress_write(cf_req *rq, const void *data, size_t len)
{
    /* deflate counts input in 32 bits: larger writes go in parts. */
    const char *p = data;
    do {
        size_t n = len < (1u << 30) ? len : (1u << 30);
        int rc = encode(rq, p, n, false);
        if (rc != 0)
            return rc;
        p += n;
        len -= n;
    } while (len);
    return 0;
}

int cf_compress_finish(cf_req *rq) { return encode(rq, "", 0, true); }

/* ---- the decision ------------------------------------------------------------- */

static bool has_token(const char *list, const char *token)
{
    size_t tlen = strlen(token);
    for (const char *p = list; p && *p;) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        size_t k = n;
        while (k && (p[k - 1] == ' ' || p[k - 1] == '\t'))
            k--;
        if (k >= tlen && strncasecmp(p, token, tlen) == 0 && (k == tlen || p[tlen] == '=' || p[tlen] == ' '))
            return true;
        p += n;
    }
    return false;
}

void cf_compress_vary(cf_req *rq)
{
    const char *vary = cf_response_header(rq, "Vary");
    if (!vary)
        cf_set_header(rq, "Vary", "Accept-Encoding");
    else if (!has_token(vary, "Accept-Encoding") && !has_token(vary, "*"))
        cf_set_header(rq, "Vary", cf_sprintf(rq, "%s, Accept-Encoding", vary));
}

void cf_compress_response(cf_req *rq)
{
    cf_exchange *x = &rq->x;
    if (x->upgrade || !cf_compress_enabled(rq) || !cf_status_has_body(x->status))
        return;
    if (!cf_compressible_type(cf_response_header(rq, "Content-Type")))
        return;
    /* Whether it is compressed now or not, the representation depends on
     * Accept-Encoding: caches must key on it. */
    cf_compress_vary(rq);
    if (x->status == 206 || x->is_head || cf_response_header(rq, "Content-Encoding") ||
        cf_response_header(rq, "Content-Range") ||
        has_token(cf_response_header(rq, "Cache-Control"), "no-transform"))
        return;
    uint64_t size = x->streaming ? (x->stream_sized ? x->stream_len : UINT64_MAX) : x->resp_len;
    if (size < (uint64_t)rq->app->opt[CF_OPT_COMPRESS_MIN_SIZE])
        return;
    if (x->stream && !x->streaming)
        return; /* a stream with no body to send (HEAD, 304, ...) */
    cf_coding c = x->streaming ? cf_compress_stream_coding(rq) : cf_compress_negotiate(rq);
    if (c == CF_CODING_IDENTITY)
        return;
    if (x->streaming) {
        if (!(rq->encoder = encoder_new(rq, c)))
            return; /* no memory for it: the identity body is as correct */
        x->stream_sized = false;
    } else if (!compress_whole(rq, c)) {
        return;
    }
    cf_set_header(rq, "Content-Encoding", cf_coding_name(c));
    const char *etag = cf_response_header(rq, "ETag");
    if (etag)
        cf_set_header(rq, "ETag", cf_compress_etag(rq, etag, c));
}
