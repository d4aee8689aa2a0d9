/* base64.h: standard base64 (RFC 4648 section 4), as -bin metadata, Basic
 * auth and the protobuf JSON mapping of bytes use it. */
#ifndef JOBHUB_RPC_BASE64_H
#define JOBHUB_RPC_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "rpc/buffer.h"

/* rpc_base64_encode appends the padded encoding of in. Returns 0 or -1
 * (no memory). */
int rpc_base64_encode(const uint8_t *in, size_t len, rpc_buffer *out);

/* rpc_base64_decode appends the decoding of in, which may be padded or
 * not; the URL-safe alphabet ('-', '_') is accepted too, as the protobuf
 * JSON mapping asks. Returns 0, or -1 for invalid input or no memory (out
 * is then left as it was). */
int rpc_base64_decode(const char *in, size_t len, rpc_buffer *out);

#endif
