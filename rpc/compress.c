/* compress.c: gzip for grpc-encoding, with a bound on inflated size. */
#include "rpc/compress.h"

#include <limits.h>
#include <zlib.h>

/* windowBits 15 + 16: a gzip wrapper rather than zlib's. */
#define GZIP_WINDOW_BITS (15 + 16)
#define INFLATE_CHUNK 65536

int rpc_gzip_compress(const uint8_t *in, size_t len, rpc_buffer *out) {
  if (len > UINT_MAX) {
    return RPC_COMPRESS_ERR_NOMEM;
  }
  z_stream stream = {0};
  if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, GZIP_WINDOW_BITS,
                   8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return RPC_COMPRESS_ERR_NOMEM;
  }
  size_t bound = deflateBound(&stream, (uLong)len);
  size_t start = out->len;
  if (bound > UINT_MAX || rpc_buffer_reserve(out, bound) != 0) {
    deflateEnd(&stream);
    return RPC_COMPRESS_ERR_NOMEM;
  }
  stream.next_in = (Bytef *)in;
  stream.avail_in = (uInt)len;
  stream.next_out = out->data + start;
  stream.avail_out = (uInt)bound;
  int rv = deflate(&stream, Z_FINISH);
  deflateEnd(&stream);
  if (rv != Z_STREAM_END) {
    return RPC_COMPRESS_ERR_NOMEM;
  }
  out->len = start + stream.total_out;
  return 0;
}

int rpc_gzip_decompress(const uint8_t *in, size_t len, size_t max_output,
                        rpc_buffer *out) {
  if (len > UINT_MAX) {
    return RPC_COMPRESS_ERR_TOO_LARGE;
  }
  z_stream stream = {0};
  if (inflateInit2(&stream, GZIP_WINDOW_BITS) != Z_OK) {
    return RPC_COMPRESS_ERR_NOMEM;
  }
  size_t start = out->len;
  stream.next_in = (Bytef *)in;
  stream.avail_in = (uInt)len;
  int result = RPC_COMPRESS_ERR_CORRUPT;
  for (;;) {
    if (rpc_buffer_reserve(out, INFLATE_CHUNK) != 0) {
      result = RPC_COMPRESS_ERR_NOMEM;
      break;
    }
    stream.next_out = out->data + out->len;
    stream.avail_out = INFLATE_CHUNK;
    int rv = inflate(&stream, Z_NO_FLUSH);
    out->len = start + stream.total_out;
    if (out->len - start > max_output) {
      result = RPC_COMPRESS_ERR_TOO_LARGE;
      break;
    }
    if (rv == Z_STREAM_END) {
      /* One gzip member, nothing after it. */
      result = stream.avail_in == 0 ? 0 : RPC_COMPRESS_ERR_CORRUPT;
      break;
    }
    if (rv == Z_MEM_ERROR) {
      result = RPC_COMPRESS_ERR_NOMEM;
      break;
    }
    if (rv != Z_OK || (stream.avail_in == 0 && stream.avail_out != 0)) {
      break; /* corrupt, or truncated input */
    }
  }
  inflateEnd(&stream);
  if (result != 0) {
    out->len = start;
  }
  return result;
}
