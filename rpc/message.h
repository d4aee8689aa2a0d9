/* message.h: one gRPC message to and from bytes: protobuf packing, gzip
 * and the length prefix, shared by the server's calls and the client. */
#ifndef JOBHUB_RPC_MESSAGE_H
#define JOBHUB_RPC_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "rpc/buffer.h"

/* Messages smaller than this are never worth compressing. */
#define RPC_MESSAGE_GZIP_MIN_BYTES 1024

enum {
  RPC_MESSAGE_ERR_NOMEM = -1,
  RPC_MESSAGE_ERR_TOO_LARGE = -2, /* over 4 GiB, or over the limit */
  RPC_MESSAGE_ERR_CORRUPT = -3,   /* not valid gzip */
  RPC_MESSAGE_ERR_PARSE = -4,     /* not a valid protobuf message */
  /* well-formed but refused: nested too deep, or a string field not UTF-8
   * or holding a NUL (rpc/wire_check.h) */
  RPC_MESSAGE_ERR_INVALID = -5,
};

/* rpc_message_encode appends message to out as a length-prefixed gRPC
 * message, gzip-compressed when gzip is true, the message is at least
 * RPC_MESSAGE_GZIP_MIN_BYTES and compression makes it smaller. Returns 0,
 * RPC_MESSAGE_ERR_NOMEM or RPC_MESSAGE_ERR_TOO_LARGE (out unchanged). */
int rpc_message_encode(rpc_buffer *out, const ProtobufCMessage *message,
                       bool gzip);

/* rpc_message_encode_packed is rpc_message_encode for a message already
 * serialized (data, size bytes): for answers built from stored bytes. */
int rpc_message_encode_packed(rpc_buffer *out, const uint8_t *data, size_t size,
                              bool gzip);

/* rpc_message_decode inflates data when compressed (refusing to inflate
 * past max_size bytes), checks it with rpc_wire_check (nesting at most
 * max_depth, at most RPC_MAX_MESSAGE_DEPTH; strings UTF-8 without NUL) and
 * unpacks it as descriptor. On success *message is the caller's
 * (protobuf_c_message_free_unpacked(*message, NULL)). Returns 0 or an
 * RPC_MESSAGE_ERR_* code; for RPC_MESSAGE_ERR_PARSE and
 * RPC_MESSAGE_ERR_INVALID, err says what and where (field path), for the
 * other codes it is empty. err is always terminated when err_size > 0. */
int rpc_message_decode(const ProtobufCMessageDescriptor *descriptor,
                       bool compressed, const uint8_t *data, size_t len,
                       size_t max_size, unsigned max_depth,
                       ProtobufCMessage **message, char *err, size_t err_size);

#endif
