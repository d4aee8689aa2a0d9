/* http_request_internal.h: what a transport tells a request it gave to
 * the protocol hook (rpc/http_request.h), and what a request asks of its
 * transport. An HTTP/2 request (server_h2.c) reaches its connection only
 * through the rpc_stream_conn_ops it is given (rpc/stream.h); a request
 * on another transport (HTTP/1.1, rpc/http1.h) through the backend table
 * it is made with. Not for handlers. */
#ifndef JOBHUB_RPC_HTTP_REQUEST_INTERNAL_H
#define JOBHUB_RPC_HTTP_REQUEST_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/buffer.h"
#include "rpc/http_request.h"
#include "rpc/loop_thread.h"
#include "rpc/stream.h"

/* What a transport other than HTTP/2 does for its requests. The public
 * functions of rpc/http_request.h check the request's state (responded,
 * finished, cancelled, the status range) and call these only for a
 * request that is not cancelled, with its transport (see
 * rpc_http_request_transport) still set. */
typedef struct rpc_http_request_backend {
  /* Sends or queues the response head. Returns 0 or an
   * RPC_HTTP_REQUEST_ERR_ code. */
  int (*respond)(rpc_http_request *request, int status,
                 const rpc_http_header *headers, size_t count);
  /* Queues body bytes (copied) within the output bounds. Returns 0 or an
   * RPC_HTTP_REQUEST_ERR_ code (ERR_FULL: queued nothing). */
  int (*write)(rpc_http_request *request, const void *data, size_t len);
  /* Body bytes queued and not yet taken by the transport. */
  size_t (*pending_bytes)(const rpc_http_request *request);
  /* The handler's finish: ends the response with trailers (copied), or
   * aborts it when it never responded. */
  void (*finish)(rpc_http_request *request, const rpc_http_header *trailers,
                 size_t count);
  /* on_data refused the rest of the body: on_cancel follows. */
  void (*refuse)(rpc_http_request *request);
} rpc_http_request_backend;

/* Where a request lives and what bounds its output. */
typedef struct rpc_http_request_origin {
  /* NULL for an HTTP/2 stream (the members below up to stream_id apply);
   * otherwise the transport's table, and transport its pointer. */
  const rpc_http_request_backend *backend; /* static */
  void *transport;
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

/* rpc_http_request_output_fits tells whether len more body bytes fit the
 * output bounds of rpc_http_request_write: pending queued for this
 * request, connection_queued for its whole connection. */
static inline bool
rpc_http_request_output_fits(size_t pending, size_t connection_queued,
                             size_t len, size_t max_stream_output_bytes,
                             size_t max_connection_output_bytes) {
  return !((pending > 0 && len > max_stream_output_bytes - pending) ||
           len > max_connection_output_bytes ||
           connection_queued > max_connection_output_bytes - len);
}

/* rpc_http_request_new makes the request for a stream (or a transport's
 * request) whose headers are complete, holding the stream's (the
 * transport's) and the handler's references. headers
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

/* rpc_http_request_transport returns the transport pointer the request
 * was made with, or NULL once rpc_http_request_on_transport_close ran. */
void *rpc_http_request_transport(const rpc_http_request *request);

/* rpc_http_request_drained tells the request that its transport took
 * every queued body byte: on_writable is owed (when the handler has the
 * hook), and delivered by rpc_http_request_deliver_writable. */
void rpc_http_request_drained(rpc_http_request *request);

/* rpc_http_request_on_transport_close runs when the transport is done
 * with the request (the exchange ended, or the connection is gone): the
 * handler gets on_cancel unless it finished, and the transport's
 * reference is dropped: the request may be freed. */
void rpc_http_request_on_transport_close(rpc_http_request *request);

#endif
