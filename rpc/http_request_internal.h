/* http_request_internal.h: what the server's connection layer (server.c)
 * tells a request it gave to the protocol hook (rpc/http_request.h). The
 * request reaches its connection only through the rpc_stream_conn_ops it
 * is given (rpc/stream.h). Not for handlers. */
#ifndef JOBHUB_RPC_HTTP_REQUEST_INTERNAL_H
#define JOBHUB_RPC_HTTP_REQUEST_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "rpc/buffer.h"
#include "rpc/http_request.h"
#include "rpc/loop_thread.h"
#include "rpc/stream.h"

/* Where a request lives and what bounds its output. */
typedef struct rpc_http_request_origin {
  const rpc_stream_conn_ops *conn_ops; /* static */
  void *connection;
  nghttp2_session *session;
  int32_t stream_id;
  rpc_loop_thread *loop_thread;
  const char *peer;    /* copied */
  const char *cert_cn; /* copied; may be NULL */
  size_t max_stream_output_bytes;
  size_t max_connection_output_bytes;
} rpc_http_request_origin;

/* rpc_http_request_new makes the request for a stream whose headers are
 * complete, holding the stream's and the handler's references. headers
 * holds count headers, each "name\0value\0" (rpc_http_request_add_header
 * writes them); its memory moves to the request, leaving headers empty.
 * Returns NULL when memory is exhausted (headers then unchanged). */
rpc_http_request *rpc_http_request_new(const rpc_http_request_origin *origin,
                                       rpc_buffer *headers, size_t count);

/* rpc_http_request_add_header appends one header to a block that
 * rpc_http_request_new takes. Returns 0 or -1 (no memory). */
int rpc_http_request_add_header(rpc_buffer *headers, const uint8_t *name,
                                size_t name_len, const uint8_t *value,
                                size_t value_len);

/* rpc_http_request_of_stream returns the request whose stream (kind
 * RPC_STREAM_HTTP_REQUEST) this is. */
static inline rpc_http_request *rpc_http_request_of_stream(rpc_stream *stream) {
  return (rpc_http_request *)stream;
}

/* rpc_http_request_stream returns the request's stream (its first
 * member). */
static inline rpc_stream *rpc_http_request_stream(rpc_http_request *request) {
  return (rpc_stream *)request;
}

/* rpc_http_request_on_data feeds request body bytes. */
void rpc_http_request_on_data(rpc_http_request *request, const uint8_t *data,
                              size_t len);

/* rpc_http_request_on_remote_close runs at the client's END_STREAM. */
void rpc_http_request_on_remote_close(rpc_http_request *request);

/* rpc_http_request_on_response_end runs when our END_STREAM went out: a
 * client still sending is told to stop (RST_STREAM NO_ERROR). */
void rpc_http_request_on_response_end(rpc_http_request *request);

/* rpc_http_request_on_stream_close runs when the stream is gone and drops
 * the stream's reference: the request may be freed. */
void rpc_http_request_on_stream_close(rpc_http_request *request);

/* rpc_http_request_deliver_writable runs an owed on_writable after a
 * flush. */
void rpc_http_request_deliver_writable(rpc_http_request *request);

#endif
