/* client.h: the gRPC client: a channel is one HTTP/2 connection (h2c or
 * TLS with ALPN h2) on a libev loop; calls are streams on it. Used through
 * the generated stubs, asynchronously (hooks on a shared loop) or
 * blocking (the channel runs a private loop until the answer is in).
 *
 * A raw method is an rpc_method whose input and output are NULL: built
 * at run time from a path alone (a method learned through reflection),
 * its requests go in serialized (the *_send_packed verbs) and its
 * responses come out serialized (on_packed_message, rpc_stream_recv_packed),
 * inflated if they came compressed; nothing is decoded.
 *
 * TLS writes go through OpenSSL's write(2): a program using TLS must
 * ignore SIGPIPE (plain sockets use MSG_NOSIGNAL). */
#ifndef JOBHUB_RPC_CLIENT_H
#define JOBHUB_RPC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <protobuf-c/protobuf-c.h>

#include "rpc/buffer.h"
#include "rpc/metadata.h"
#include "rpc/method.h"
#include "rpc/status.h"

struct ev_loop;

typedef struct rpc_channel rpc_channel;
typedef struct rpc_client_call rpc_client_call;
typedef struct rpc_stream rpc_stream;

typedef struct rpc_channel_options {
  const char *target;      /* "host:port" */
  SSL_CTX *tls;            /* NULL: h2c. Borrowed; outlives the channel */
  const char *server_name; /* SNI and certificate name; NULL: host */
  const char *authority;   /* ":authority"; NULL: target */
  size_t max_receive_message_bytes; /* 0: 4 MiB */
  double connect_timeout;           /* s; 0: 10 */
} rpc_channel_options;

typedef struct rpc_call_options {
  uint64_t timeout_ms;          /* 0: no deadline */
  const rpc_metadata *metadata; /* custom metadata to send; may be NULL */
  bool compress;                /* gzip request messages */
} rpc_call_options;

/* Hooks of an asynchronous call; every member may be NULL. Messages and
 * metadata are borrowed for the duration of the hook. */
typedef struct rpc_client_hooks {
  void (*on_initial_metadata)(rpc_client_call *call, const rpc_metadata *md,
                              void *arg);
  void (*on_message)(rpc_client_call *call, const ProtobufCMessage *message,
                     void *arg);
  /* Runs exactly once, last; the call is freed when it returns. */
  void (*on_close)(rpc_client_call *call, const rpc_status *status,
                   const rpc_metadata *trailers, void *arg);
  /* For a raw method, instead of on_message: the message serialized
   * (data, size bytes). Last, so that positional initializers of the
   * three above still compile. */
  void (*on_packed_message)(rpc_client_call *call, const uint8_t *data,
                            size_t size, void *arg);
} rpc_client_hooks;

/* rpc_channel_new makes a channel to options->target on loop, or on a
 * private loop when loop is NULL (needed for the blocking calls). It
 * connects lazily, on the first call, and again after a connection loss.
 * Returns NULL with a message in err. */
rpc_channel *rpc_channel_new(struct ev_loop *loop,
                             const rpc_channel_options *options, char *err,
                             size_t err_size);

/* rpc_channel_free closes the connection; calls still open end with
 * CANCELLED (their on_close runs before this returns). */
void rpc_channel_free(rpc_channel *channel);

/* rpc_channel_start_call opens a call of method. Connection errors come
 * through on_close (UNAVAILABLE). Returns NULL only when memory is
 * exhausted; on_close is then never called. */
rpc_client_call *rpc_channel_start_call(rpc_channel *channel,
                                        const rpc_method *method,
                                        const rpc_call_options *options,
                                        const rpc_client_hooks *hooks,
                                        void *arg);

/* rpc_client_call_send queues a request message. Returns 0, or -1 after
 * close_send, after the call ended, or when memory is exhausted. */
int rpc_client_call_send(rpc_client_call *call,
                         const ProtobufCMessage *message);

/* rpc_client_call_send_packed queues a request message already
 * serialized (data, size bytes; copied). Returns as rpc_client_call_send. */
int rpc_client_call_send_packed(rpc_client_call *call, const uint8_t *data,
                                size_t size);

/* rpc_client_call_close_send half-closes: no more messages. Returns 0/-1. */
int rpc_client_call_close_send(rpc_client_call *call);

/* rpc_client_call_cancel resets the stream (RST_STREAM CANCEL); on_close
 * follows with CANCELLED from the loop, not from inside this function. */
void rpc_client_call_cancel(rpc_client_call *call);

/* rpc_channel_call_unary makes a blocking unary call on a channel with a
 * private loop. On OK, *response holds the answer (free it with
 * protobuf_c_message_free_unpacked(*response, NULL)); otherwise it is
 * NULL. status receives the outcome (its message is owned by the caller:
 * rpc_status_clear). initial and trailers, when not NULL, receive the
 * response metadata (initialized here; the caller frees them). Returns
 * status->code. Not for raw methods (see rpc_stream_recv_packed). */
rpc_status_code
rpc_channel_call_unary(rpc_channel *channel, const rpc_method *method,
                       const ProtobufCMessage *request,
                       const rpc_call_options *options,
                       ProtobufCMessage **response, rpc_status *status,
                       rpc_metadata *initial, rpc_metadata *trailers);

/* rpc_channel_open_stream opens a blocking stream of any shape on a
 * channel with a private loop. Returns NULL when memory is exhausted. */
rpc_stream *rpc_channel_open_stream(rpc_channel *channel,
                                    const rpc_method *method,
                                    const rpc_call_options *options);

/* rpc_stream_send, rpc_stream_send_packed and rpc_stream_close_send: as
 * for rpc_client_call. */
int rpc_stream_send(rpc_stream *stream, const ProtobufCMessage *message);
int rpc_stream_send_packed(rpc_stream *stream, const uint8_t *data,
                           size_t size);
int rpc_stream_close_send(rpc_stream *stream);

/* rpc_stream_recv waits for the next response message. Returns 1 with
 * *message set (the caller frees it as above), 0 when the call has ended
 * (rpc_stream_status tells how), or -1 if the loop failed or the method
 * is raw. */
int rpc_stream_recv(rpc_stream *stream, ProtobufCMessage **message);

/* rpc_stream_recv_packed is rpc_stream_recv for a raw method: on 1, the
 * message's bytes replace the content of out (owned by the caller).
 * Returns 1, 0 when the call has ended, or -1 if the loop failed or the
 * method is not raw (out is then emptied). */
int rpc_stream_recv_packed(rpc_stream *stream, rpc_buffer *out);

/* rpc_stream_status is the final status once rpc_stream_recv returned 0;
 * rpc_stream_initial_metadata and rpc_stream_trailers likewise (empty
 * until received). All are owned by the stream. */
const rpc_status *rpc_stream_status(const rpc_stream *stream);
const rpc_metadata *rpc_stream_initial_metadata(const rpc_stream *stream);
const rpc_metadata *rpc_stream_trailers(const rpc_stream *stream);

/* rpc_stream_cancel resets the stream; a later recv returns 0 with
 * CANCELLED. */
void rpc_stream_cancel(rpc_stream *stream);

/* rpc_stream_free cancels the stream if still open and frees it. */
void rpc_stream_free(rpc_stream *stream);

#endif
