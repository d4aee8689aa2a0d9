/* compress.h: grpc-encoding gzip (PROTOCOL-HTTP2 "Compression"). */
#ifndef JOBHUB_RPC_COMPRESS_H
#define JOBHUB_RPC_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "rpc/buffer.h"

enum {
  RPC_COMPRESS_ERR_NOMEM = -1,
  RPC_COMPRESS_ERR_CORRUPT = -2,   /* not a valid gzip stream */
  RPC_COMPRESS_ERR_TOO_LARGE = -3, /* output would pass max_output */
};

/* rpc_gzip_compress appends the gzip encoding of in to out. Returns 0 or
 * RPC_COMPRESS_ERR_NOMEM (out is then left as it was). */
int rpc_gzip_compress(const uint8_t *in, size_t len, rpc_buffer *out);

/* rpc_gzip_decompress appends the decoding of one gzip stream to out,
 * refusing to produce more than max_output bytes (a compression bomb then
 * fails early, having inflated at most max_output + one chunk). Returns 0
 * or an RPC_COMPRESS_ERR_* code; on error out is left as it was. */
int rpc_gzip_decompress(const uint8_t *in, size_t len, size_t max_output,
                        rpc_buffer *out);

#endif
