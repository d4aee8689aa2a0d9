/* buffer.h: a growable byte buffer, the unit of I/O in the runtime. */
#ifndef JOBHUB_RPC_BUFFER_H
#define JOBHUB_RPC_BUFFER_H

#include <stddef.h>
#include <stdint.h>

/* data[0..len) is valid; cap bytes are allocated. The buffer owns data. */
typedef struct rpc_buffer {
  uint8_t *data;
  size_t len;
  size_t cap;
} rpc_buffer;

/* rpc_buffer_init makes an empty buffer that owns no memory. */
void rpc_buffer_init(rpc_buffer *buffer);

/* rpc_buffer_free releases the memory and leaves an empty buffer. */
void rpc_buffer_free(rpc_buffer *buffer);

/* rpc_buffer_reserve makes room for at least extra more bytes after len;
 * afterwards data is never NULL. Returns 0, or -1 when memory is exhausted
 * (the buffer is unchanged). */
int rpc_buffer_reserve(rpc_buffer *buffer, size_t extra);

/* rpc_buffer_append copies size bytes to the end. Returns 0 or -1 (no
 * memory; unchanged). */
int rpc_buffer_append(rpc_buffer *buffer, const void *data, size_t size);

/* rpc_buffer_consume drops the first size bytes (size <= len). */
void rpc_buffer_consume(rpc_buffer *buffer, size_t size);

/* rpc_buffer_take copies up to max bytes from data[*offset..len) to out,
 * advances *offset, and empties the buffer (keeping its memory) once all
 * is taken: a queue read from the front. Returns the count copied. */
size_t rpc_buffer_take(rpc_buffer *buffer, size_t *offset, uint8_t *out,
                       size_t max);

/* rpc_buffer_reset empties the buffer but keeps its memory. */
void rpc_buffer_reset(rpc_buffer *buffer);

#endif
