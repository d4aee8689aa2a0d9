/* h2_io.h: moving an nghttp2 session's output to a socket in batches,
 * shared by server and client connections. */
#ifndef JOBHUB_RPC_H2_IO_H
#define JOBHUB_RPC_H2_IO_H

#include <stddef.h>

#include <nghttp2/nghttp2.h>

#include "rpc/buffer.h"
#include "rpc/socket.h"

/* Output is gathered up to this much before a write(2). */
#define RPC_H2_WRITE_BATCH 65536

enum {
  RPC_H2_FLUSHED = 0, /* everything went out */
  RPC_H2_BLOCKED = 1, /* the socket would block: wait for it writable */
};

/* rpc_h2_flush writes out[*offset..] and then what session (may be NULL)
 * has queued, gathering up to RPC_H2_WRITE_BATCH bytes per write. A large
 * drained buffer is freed, so idle connections stay small. Returns
 * RPC_H2_FLUSHED, RPC_H2_BLOCKED, or -1 when the session or the socket
 * failed (close the connection). */
int rpc_h2_flush(nghttp2_session *session, rpc_socket *socket, rpc_buffer *out,
                 size_t *offset);

#endif
