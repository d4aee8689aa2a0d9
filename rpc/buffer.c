/* buffer.c: growable byte buffer. */
#include "rpc/buffer.h"

#include <stdlib.h>
#include <string.h>

void rpc_buffer_init(rpc_buffer *buffer) {
  buffer->data = NULL;
  buffer->len = 0;
  buffer->cap = 0;
}

void rpc_buffer_free(rpc_buffer *buffer) {
  free(buffer->data);
  rpc_buffer_init(buffer);
}

int rpc_buffer_reserve(rpc_buffer *buffer, size_t extra) {
  if (extra > SIZE_MAX - buffer->len) {
    return -1;
  }
  size_t need = buffer->len + extra;
  /* Even a reservation of 0 leaves valid memory: data + len is then a
   * pointer callers may do arithmetic on (NULL + 0 is undefined). */
  if (need <= buffer->cap && buffer->data != NULL) {
    return 0;
  }
  size_t cap = buffer->cap > 0 ? buffer->cap : 64;
  while (cap < need) {
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  }
  uint8_t *data = realloc(buffer->data, cap);
  if (data == NULL) {
    return -1;
  }
  buffer->data = data;
  buffer->cap = cap;
  return 0;
}

int rpc_buffer_append(rpc_buffer *buffer, const void *data, size_t size) {
  if (size == 0) {
    return 0;
  }
  if (rpc_buffer_reserve(buffer, size) != 0) {
    return -1;
  }
  memcpy(buffer->data + buffer->len, data, size);
  buffer->len += size;
  return 0;
}

void rpc_buffer_consume(rpc_buffer *buffer, size_t size) {
  if (size >= buffer->len) {
    buffer->len = 0;
    return;
  }
  memmove(buffer->data, buffer->data + size, buffer->len - size);
  buffer->len -= size;
}

size_t rpc_buffer_take(rpc_buffer *buffer, size_t *offset, uint8_t *out,
                       size_t max) {
  size_t queued = buffer->len - *offset;
  size_t n = queued < max ? queued : max;
  if (n > 0) {
    memcpy(out, buffer->data + *offset, n);
    *offset += n;
  }
  if (*offset == buffer->len) {
    buffer->len = 0;
    *offset = 0;
  }
  return n;
}

void rpc_buffer_reset(rpc_buffer *buffer) { buffer->len = 0; }
