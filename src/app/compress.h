/*
 * compress.h — response compression (compress.c): the pipeline's decision
 * before the head goes out, the encoder streamed writes go through, and
 * the negotiation files.c shares for precompressed files and ETags.
 */
#ifndef CF_APP_COMPRESS_H
#define CF_APP_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "carafe.h"

typedef enum cf_coding { CF_CODING_IDENTITY, CF_CODING_GZIP, CF_CODING_BR } cf_coding;
typedef struct cf_encoder cf_encoder;

/* text/..., JSON, JavaScript, XML, SVG and the like (parameters ignored). */
bool cf_compressible_type(const char *content_type);
/* Compression is on for rq's route (route, groups, app). */
bool cf_compress_enabled(cf_req *rq);
/* The coding rq's Accept-Encoding prefers among gzip and br, else identity. */
cf_coding cf_compress_negotiate(cf_req *rq);
/* The coding of a compressed stream: gzip whenever accepted (brotli's
 * stream state is ten times larger), else brotli, else identity. */
cf_coding cf_compress_stream_coding(cf_req *rq);
/* Accept-Encoding allows c (a q-value above 0; identity always). */
bool cf_compress_accepts(cf_req *rq, cf_coding c);
const char *cf_coding_name(cf_coding c);
/* The ETag of the entity in coding c: "-gzip" or "-br" inside the quotes. */
const char *cf_compress_etag(cf_req *rq, const char *etag, cf_coding c);
/* Add Accept-Encoding to the response's Vary. */
void cf_compress_vary(cf_req *rq);
/* The response is final: compress it, or set up rq->encoder for its
 * stream, when it qualifies. */
void cf_compress_response(cf_req *rq);
/* A streamed piece through rq->encoder, flushed; and the stream's end. */
int cf_compress_write(cf_req *rq, const void *data, size_t len);
int cf_compress_finish(cf_req *rq);

#endif
