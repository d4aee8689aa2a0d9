/* call_internal.h: what the server's connection layer (server.c) tells
 * the call layer (call.c). The call reaches back to its connection only
 * through the rpc_stream_conn_ops it is given (rpc/stream.h). Not for
 * handlers. */
#ifndef JOBHUB_RPC_CALL_INTERNAL_H
#define JOBHUB_RPC_CALL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <nghttp2/nghttp2.h>

#include "rpc/call.h"
#include "rpc/frame.h"
#include "rpc/server.h"
#include "rpc/stream.h"

/* Limits a call gets from the server's options. */
typedef struct rpc_call_limits {
  size_t max_receive_bytes;           /* one request message */
  size_t max_stream_output_bytes;     /* queued, streamed responses */
  size_t max_connection_output_bytes; /* queued on the whole connection */
} rpc_call_limits;

/* What carries a call's response: the gRPC HTTP/2 stream (call.c's own,
 * for calls from rpc_call_new) or another protocol's request
 * (call_bridge.c, for calls from rpc_call_new_bridged). */
typedef struct rpc_call_transport {
  /* Queued response messages, or the committed status after them, wait:
   * make them go out (now or from the transport's own callbacks). */
  void (*kick)(rpc_call *call);
  /* The call is being freed: release transport_arg. NULL: nothing. */
  void (*free)(void *transport_arg);
} rpc_call_transport;

struct rpc_call {
  rpc_stream stream;                   /* first: kind RPC_STREAM_GRPC_CALL */
  const rpc_call_transport *transport; /* static */
  void *transport_arg;
  struct ev_loop *loop;
  rpc_loop_thread *loop_thread; /* the loop's mailbox */
  int refs; /* the stream's, the handler's, temporary ones */

  /* Request, as the headers arrive. */
  char *path;
  bool method_is_post;
  bool content_type_is_grpc;
  bool timeout_invalid;
  bool metadata_invalid;
  char *request_encoding; /* grpc-encoding, NULL for identity */
  bool accepts_gzip;      /* grpc-accept-encoding lists gzip */
  uint64_t timeout_ns;    /* 0: no deadline */
  rpc_metadata request_metadata;

  /* Request body. */
  const rpc_method *method;
  const void *handlers;
  void *user;
  size_t max_receive_bytes;
  size_t max_stream_output_bytes;
  size_t max_connection_output_bytes;
  rpc_deframer deframer;
  ProtobufCMessage *request; /* single-request shapes; owned */
  bool remote_closed;        /* END_STREAM from the client seen */
  bool dispatched;           /* handler called */
  bool handler_owned;        /* handler holds a reference */
  ev_timer deadline_timer;

  /* Response. */
  rpc_metadata initial_metadata;
  rpc_metadata trailing_metadata;
  rpc_buffer send_queue; /* framed messages; sent from send_offset */
  size_t send_offset;
  bool headers_sent;
  bool response_gzip;
  bool status_committed; /* final status decided */
  bool cancelled;        /* ended without the handler's status */
  bool writable_wanted;  /* on_writable owed once the queue drains */
  bool cancel_owed;      /* on_cancel owed: the runtime ended the call */
  rpc_status_code status_code;
  char *status_message;
  rpc_call_hooks hooks;
  void *hooks_arg;

  /* Set by rpc_call_deny: answered by rpc_call_begin instead of running. */
  rpc_status_code denied_code;
  char *denied_message;
};

/* rpc_call_new makes the call for a new request stream of session,
 * holding the stream's reference; conn_ops (static) and connection are
 * how it reaches its connection, limits are copied. Returns NULL when
 * memory is exhausted. */
rpc_call *rpc_call_new(const rpc_stream_conn_ops *conn_ops, void *connection,
                       nghttp2_session *session, rpc_loop_thread *loop_thread,
                       int32_t stream_id, const rpc_call_limits *limits);

/* rpc_call_new_bridged makes a call whose response transport (static)
 * carries, with transport_arg, instead of an HTTP/2 gRPC stream (the
 * transport may set stream.conn_ops and stream.connection for the output
 * accounting, and clears connection before it goes); the call
 * holds one reference for the transport, which drops it with
 * rpc_call_on_stream_close when its request is gone. limits are copied.
 * Returns NULL when memory is exhausted. */
rpc_call *rpc_call_new_bridged(const rpc_call_transport *transport,
                               void *transport_arg,
                               rpc_loop_thread *loop_thread,
                               const rpc_call_limits *limits);

/* rpc_call_of_stream returns the call whose stream (kind
 * RPC_STREAM_GRPC_CALL) this is. */
static inline rpc_call *rpc_call_of_stream(rpc_stream *stream) {
  return (rpc_call *)stream;
}

/* rpc_call_on_header records one request header. Problems with a header
 * are remembered and answered by rpc_call_begin. */
void rpc_call_on_header(rpc_call *call, const uint8_t *name, size_t name_len,
                        const uint8_t *value, size_t value_len);

/* rpc_call_deny makes rpc_call_begin answer code and message (copied) at
 * once, trailers-only, instead of starting a known method: the server's
 * authorization hook said no. Call before rpc_call_begin. */
void rpc_call_deny(rpc_call *call, rpc_status_code code, const char *message);

/* rpc_call_authorize asks authorize (the server's hook) whether the
 * call of service's method may run, with the call's authorization
 * metadata and the connection's cert_cn (may be NULL) and peer; a refusal
 * is remembered as rpc_call_deny does. Call before rpc_call_begin. */
void rpc_call_authorize(rpc_call *call, rpc_authorize_fn authorize,
                        void *authorize_user, const char *service,
                        const char *method, const char *cert_cn,
                        const char *peer);

/* rpc_call_fail ends a begun call at once with code and message (copied)
 * in the runtime's name, as a malformed request message does: a bridge's
 * codec could not turn the request body into messages. A handler that
 * runs learns it through on_cancel. */
void rpc_call_fail(rpc_call *call, rpc_status_code code, const char *message);

/* rpc_call_begin runs when the request headers are complete: it answers
 * a malformed request or an unknown method (method NULL) at once,
 * otherwise arms the deadline and, for streaming shapes, starts the
 * handler. */
void rpc_call_begin(rpc_call *call, const rpc_method *method,
                    const char *service_name, const void *handlers, void *user);

/* rpc_call_on_data feeds request DATA. */
void rpc_call_on_data(rpc_call *call, const uint8_t *data, size_t len);

/* rpc_call_on_remote_close runs at the client's END_STREAM. */
void rpc_call_on_remote_close(rpc_call *call);

/* rpc_call_on_response_end runs when our END_STREAM went out: a client
 * still sending is told to stop (RST_STREAM NO_ERROR). */
void rpc_call_on_response_end(rpc_call *call);

/* rpc_call_on_stream_close runs when the stream is gone (closed, reset,
 * or the connection lost) and drops the stream's reference: the call may
 * be freed. */
void rpc_call_on_stream_close(rpc_call *call);

/* rpc_call_deliver_writable runs owed hooks after a flush: on_cancel of
 * a call the runtime ended while its handler ran (output limit), else
 * on_writable. */
void rpc_call_deliver_writable(rpc_call *call);

/* rpc_call_respond_http answers a request that is not gRPC with a plain
 * HTTP status and text body. */
void rpc_call_respond_http(rpc_call *call, int http_status, const char *body);

#endif
