/* json_wire.c: the protobuf wire format's primitives: varints,
 * little-endian fixed-width values, zigzag, tags, and length prefixes
 * inserted in front of contents written in place. */
#include "rpc/json_internal.h"

#include <string.h>

size_t rpc_json_read_varint(const uint8_t *data, size_t size, uint64_t *value) {
  *value = 0;
  for (size_t i = 0; i < size && i < 10; i++) {
    *value |= (uint64_t)(data[i] & 0x7F) << (7 * i);
    if ((data[i] & 0x80) == 0) {
      return i + 1;
    }
  }
  return 0;
}

uint64_t rpc_json_read_little_endian(const uint8_t *data, size_t size) {
  uint64_t value = 0;
  for (size_t i = size; i > 0; i--) {
    value = value << 8 | data[i - 1];
  }
  return value;
}

int64_t rpc_json_zigzag_decode(uint64_t value) {
  return (int64_t)(value >> 1) ^ -(int64_t)(value & 1);
}

int rpc_json_put(context *ctx, const void *data, size_t len) {
  if (len > 0 && rpc_buffer_append(ctx->out, data, len) != 0) {
    return rpc_json_fail_no_memory(ctx);
  }
  return 0;
}

static size_t encode_varint(uint64_t value, uint8_t *buf) {
  size_t n = 0;
  while (value >= 0x80) {
    buf[n++] = (uint8_t)(value | 0x80);
    value >>= 7;
  }
  buf[n++] = (uint8_t)value;
  return n;
}

int rpc_json_put_varint(context *ctx, uint64_t value) {
  uint8_t buf[10];
  return rpc_json_put(ctx, buf, encode_varint(value, buf));
}

int rpc_json_put_tag(context *ctx, uint32_t number, uint8_t wire_type) {
  return rpc_json_put_varint(ctx, (uint64_t)number << 3 | wire_type);
}

int rpc_json_put_fixed(context *ctx, uint64_t value, size_t width) {
  uint8_t buf[8];
  for (size_t i = 0; i < width; i++) {
    buf[i] = (uint8_t)(value >> (8 * i));
  }
  return rpc_json_put(ctx, buf, width);
}

int rpc_json_put_string(context *ctx, uint32_t number, const char *text,
                        size_t len) {
  if (rpc_json_put_tag(ctx, number, WIRE_LEN) != 0 ||
      rpc_json_put_varint(ctx, len) != 0) {
    return -1;
  }
  return rpc_json_put(ctx, text, len);
}

/* Length-delimited contents are written in place: note
 * rpc_json_begin_len before, and rpc_json_end_len inserts their length in
 * front. */
size_t rpc_json_begin_len(context *ctx) { return ctx->out->len; }

int rpc_json_end_len(context *ctx, size_t start) {
  size_t len = ctx->out->len - start;
  uint8_t prefix[10];
  size_t n = encode_varint(len, prefix);
  if (rpc_buffer_reserve(ctx->out, n) != 0) {
    return rpc_json_fail_no_memory(ctx);
  }
  memmove(ctx->out->data + start + n, ctx->out->data + start, len);
  memcpy(ctx->out->data + start, prefix, n);
  ctx->out->len += n;
  return 0;
}
