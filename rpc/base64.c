/* base64.c: RFC 4648 base64, padded on output, lenient on input. */
#include "rpc/base64.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The 6-bit value of c in either alphabet, or -1. */
static int decode_char(uint8_t c) {
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  if (c == '+' || c == '-') {
    return 62;
  }
  if (c == '/' || c == '_') {
    return 63;
  }
  return -1;
}

int rpc_base64_encode(const uint8_t *in, size_t len, rpc_buffer *out) {
  size_t groups = len / 3 + (len % 3 != 0);
  if (groups > SIZE_MAX / 4 || rpc_buffer_reserve(out, groups * 4) != 0) {
    return -1;
  }
  uint8_t *p = out->data + out->len;
  size_t i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    *p++ = (uint8_t)alphabet[v >> 18];
    *p++ = (uint8_t)alphabet[(v >> 12) & 63];
    *p++ = (uint8_t)alphabet[(v >> 6) & 63];
    *p++ = (uint8_t)alphabet[v & 63];
  }
  if (i < len) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < len) {
      v |= (uint32_t)in[i + 1] << 8;
    }
    *p++ = (uint8_t)alphabet[v >> 18];
    *p++ = (uint8_t)alphabet[(v >> 12) & 63];
    *p++ = i + 1 < len ? (uint8_t)alphabet[(v >> 6) & 63] : '=';
    *p++ = '=';
  }
  out->len = (size_t)(p - out->data);
  return 0;
}

int rpc_base64_decode(const char *in, size_t len, rpc_buffer *out) {
  /* Padding, if any, is one or two '=' at the very end. */
  size_t data_len = len;
  while (data_len > 0 && in[data_len - 1] == '=' && len - data_len < 2) {
    data_len--;
  }
  if (data_len % 4 == 1 || (len != data_len && len % 4 != 0)) {
    return -1;
  }
  if (rpc_buffer_reserve(out, data_len / 4 * 3 + 3) != 0) {
    return -1;
  }
  uint8_t *start = out->data + out->len;
  uint8_t *p = start;
  uint32_t v = 0;
  size_t n = 0;
  for (size_t i = 0; i < data_len; i++) {
    int d = decode_char((uint8_t)in[i]);
    if (d < 0) {
      return -1;
    }
    v = v << 6 | (uint32_t)d;
    if (++n == 4) {
      *p++ = (uint8_t)(v >> 16);
      *p++ = (uint8_t)(v >> 8);
      *p++ = (uint8_t)v;
      v = 0;
      n = 0;
    }
  }
  if (n == 2) {
    *p++ = (uint8_t)(v >> 4);
  } else if (n == 3) {
    *p++ = (uint8_t)(v >> 10);
    *p++ = (uint8_t)(v >> 2);
  }
  out->len += (size_t)(p - start);
  return 0;
}
