/* h2_io.c: batched output of an nghttp2 session. */
#include "rpc/h2_io.h"

int rpc_h2_flush(nghttp2_session *session, rpc_socket *socket, rpc_buffer *out,
                 size_t *offset) {
  for (;;) {
    while (session != NULL && out->len - *offset < RPC_H2_WRITE_BATCH) {
      const uint8_t *data;
      ssize_t n = nghttp2_session_mem_send(session, &data);
      if (n < 0) {
        return -1;
      }
      if (n == 0) {
        break;
      }
      if (rpc_buffer_append(out, data, (size_t)n) != 0) {
        return -1;
      }
    }
    size_t pending = out->len - *offset;
    if (pending == 0) {
      return RPC_H2_FLUSHED;
    }
    ssize_t written = rpc_socket_write(socket, out->data + *offset, pending);
    if (written == RPC_SOCKET_AGAIN) {
      return RPC_H2_BLOCKED;
    }
    if (written < 0) {
      return -1;
    }
    *offset += (size_t)written;
    if (*offset == out->len) {
      *offset = 0;
      if (out->cap > 4 * RPC_H2_WRITE_BATCH) {
        rpc_buffer_free(out);
      } else {
        rpc_buffer_reset(out);
      }
    }
  }
}
