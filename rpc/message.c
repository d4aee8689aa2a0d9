/* message.c: gRPC messages to and from bytes. */
#include "rpc/message.h"

#include <string.h>

#include "rpc/compress.h"
#include "rpc/frame.h"
#include "rpc/wire_check.h"

/* Compresses the size body bytes at out->data + start + prefix when it
 * pays, then writes the prefix and commits the length. */
static void finish_frame(rpc_buffer *out, size_t start, size_t size,
                         bool gzip) {
  uint8_t *body = out->data + start + RPC_FRAME_HEADER_SIZE;
  bool compressed = false;
  if (gzip && size >= RPC_MESSAGE_GZIP_MIN_BYTES) {
    rpc_buffer packed;
    rpc_buffer_init(&packed);
    if (rpc_gzip_compress(body, size, &packed) == 0 && packed.len < size) {
      memcpy(body, packed.data, packed.len);
      size = packed.len;
      compressed = true;
    }
    rpc_buffer_free(&packed);
  }
  rpc_frame_header_write(out->data + start, compressed, (uint32_t)size);
  out->len = start + RPC_FRAME_HEADER_SIZE + size;
}

int rpc_message_encode(rpc_buffer *out, const ProtobufCMessage *message,
                       bool gzip) {
  size_t size = protobuf_c_message_get_packed_size(message);
  if (size > UINT32_MAX) {
    return RPC_MESSAGE_ERR_TOO_LARGE;
  }
  size_t start = out->len;
  if (rpc_buffer_reserve(out, RPC_FRAME_HEADER_SIZE + size) != 0) {
    return RPC_MESSAGE_ERR_NOMEM;
  }
  /* Packed in place, after room for the prefix: no copy when plain. */
  protobuf_c_message_pack(message, out->data + start + RPC_FRAME_HEADER_SIZE);
  finish_frame(out, start, size, gzip);
  return 0;
}

int rpc_message_encode_packed(rpc_buffer *out, const uint8_t *data, size_t size,
                              bool gzip) {
  if (size > UINT32_MAX) {
    return RPC_MESSAGE_ERR_TOO_LARGE;
  }
  size_t start = out->len;
  if (rpc_buffer_reserve(out, RPC_FRAME_HEADER_SIZE + size) != 0) {
    return RPC_MESSAGE_ERR_NOMEM;
  }
  if (size > 0) {
    memcpy(out->data + start + RPC_FRAME_HEADER_SIZE, data, size);
  }
  finish_frame(out, start, size, gzip);
  return 0;
}

int rpc_message_decode(const ProtobufCMessageDescriptor *descriptor,
                       bool compressed, const uint8_t *data, size_t len,
                       size_t max_size, unsigned max_depth,
                       ProtobufCMessage **message, char *err, size_t err_size) {
  *message = NULL;
  if (err_size > 0) {
    err[0] = '\0';
  }
  rpc_buffer inflated;
  rpc_buffer_init(&inflated);
  if (compressed) {
    int rv = rpc_gzip_decompress(data, len, max_size, &inflated);
    if (rv != 0) {
      rpc_buffer_free(&inflated);
      return rv == RPC_COMPRESS_ERR_TOO_LARGE ? RPC_MESSAGE_ERR_TOO_LARGE
             : rv == RPC_COMPRESS_ERR_CORRUPT ? RPC_MESSAGE_ERR_CORRUPT
                                              : RPC_MESSAGE_ERR_NOMEM;
    }
    data = inflated.data;
    len = inflated.len;
  }
  /* Before unpacking: protobuf-c recurses without a limit, and hands
   * strings to C as they came. */
  int rv = rpc_wire_check(descriptor, data, len, max_depth, err, err_size);
  if (rv == 0) {
    *message = protobuf_c_message_unpack(descriptor, NULL, len, data);
    rv = *message != NULL ? 0 : RPC_MESSAGE_ERR_PARSE;
  } else {
    rv = rv == RPC_WIRE_CHECK_ERR_INVALID ? RPC_MESSAGE_ERR_INVALID
                                          : RPC_MESSAGE_ERR_PARSE;
  }
  rpc_buffer_free(&inflated);
  return rv;
}
