/* stream.h: one HTTP/2 request stream as the server's connection layer
 * (server.c) and the layer that answers it (call.c for gRPC,
 * http_request.c for requests given to the server's HTTP hook) share it.
 *
 * The connection owns the list of its streams (prev, next) and hands each
 * stream a table of the few things a stream may ask of it. A stream never
 * names the connection's functions: data flows down (server.c -> call.c,
 * http_request.c -> stream.h) and back up only through these callbacks.
 * Not for handlers. */
#ifndef JOBHUB_RPC_STREAM_H
#define JOBHUB_RPC_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#include "rpc/buffer.h"

typedef enum rpc_stream_kind {
  RPC_STREAM_GRPC_CALL,    /* an rpc_call (call_internal.h) */
  RPC_STREAM_HTTP_REQUEST, /* an rpc_http_request (http_request_internal.h) */
} rpc_stream_kind;

/* What a stream may ask of its connection. Each function gets the
 * connection pointer the stream was given. */
typedef struct rpc_stream_conn_ops {
  /* Hand what nghttp2 has queued to the socket before the loop next
   * waits. */
  void (*schedule_flush)(void *connection);
  /* The stream's queued response bytes went from before to after. */
  void (*output_changed)(void *connection, size_t before, size_t after);
  /* The response bytes every stream of the connection has queued, plus
   * those waiting for the socket. */
  size_t (*queued_output)(const void *connection);
} rpc_stream_conn_ops;

/* The first member of an rpc_call and an rpc_http_request: the stream's
 * user data in the nghttp2 session points to it. */
typedef struct rpc_stream {
  rpc_stream_kind kind;
  const rpc_stream_conn_ops *conn_ops; /* borrowed, static */
  void *connection;                    /* NULL once the stream is gone */
  nghttp2_session *session;            /* NULL once the stream is gone */
  int32_t id;
  size_t header_bytes;            /* received, counted by the connection */
  struct rpc_stream *prev, *next; /* the connection's list: its own */
} rpc_stream;

/* rpc_stream_schedule_flush asks the connection, if the stream still has
 * one, to flush before the loop waits. */
static inline void rpc_stream_schedule_flush(const rpc_stream *stream) {
  if (stream->connection != NULL) {
    stream->conn_ops->schedule_flush(stream->connection);
  }
}

/* rpc_stream_output_changed tells the connection, if any, that the
 * stream's queued response bytes went from before to after. */
static inline void rpc_stream_output_changed(const rpc_stream *stream,
                                             size_t before, size_t after) {
  if (stream->connection != NULL) {
    stream->conn_ops->output_changed(stream->connection, before, after);
  }
}

/* rpc_stream_queued_output returns the bytes queued on the stream's
 * connection (0 once the stream is gone). */
static inline size_t rpc_stream_queued_output(const rpc_stream *stream) {
  return stream->connection != NULL
             ? stream->conn_ops->queued_output(stream->connection)
             : 0;
}

/* rpc_stream_take_output is the body of a stream's nghttp2 data provider:
 * it copies up to length bytes of queue (read from *offset) to buf, tells
 * the connection, and sets *drained when nothing is left queued. Returns
 * the count copied. */
static inline size_t rpc_stream_take_output(const rpc_stream *stream,
                                            rpc_buffer *queue, size_t *offset,
                                            uint8_t *buf, size_t length,
                                            bool *drained) {
  size_t queued = queue->len - *offset;
  size_t n = rpc_buffer_take(queue, offset, buf, length);
  rpc_stream_output_changed(stream, queued, queued - n);
  *drained = n == queued;
  return n;
}

#endif
