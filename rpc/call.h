/* call.h: one server-side RPC as a handler sees it.
 *
 * Life of a call: the runtime creates it when HEADERS for a known method
 * arrive, then calls the method's handler: for unary and server-streaming
 * methods once the single request message has arrived, for client-streaming
 * and bidi methods at once (the handler then installs hooks to receive
 * messages). All functions here run on the call's loop thread only.
 *
 * The handler owns one reference until it calls rpc_call_finish, exactly
 * once, even after a cancellation (then nothing is sent). After finish the
 * handler must not touch the call again. */
#ifndef JOBHUB_RPC_CALL_H
#define JOBHUB_RPC_CALL_H

#include <stdbool.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "rpc/loop_thread.h"
#include "rpc/metadata.h"
#include "rpc/method.h"
#include "rpc/status.h"

struct ev_loop;

enum {
  RPC_CALL_ERR_NOMEM = -1,
  RPC_CALL_ERR_CLOSED = -2,    /* cancelled, or finish already called */
  RPC_CALL_ERR_TOO_LARGE = -3, /* message over the peer's receive limit */
  RPC_CALL_ERR_STATE = -4,     /* e.g. metadata after headers went out */
};

/* Most custom metadata entries a response carries, initial and trailing
 * each. */
#define RPC_CALL_MAX_METADATA 64

/* Hooks a handler installs; every member may be NULL. Messages are borrowed
 * for the duration of on_message and freed by the runtime afterwards,
 * unless takes_messages is set: the handler then owns each message it is
 * given and frees it with protobuf_c_message_free_unpacked(message, NULL)
 * (on any thread), so it can hand it on without a copy. */
typedef struct rpc_call_hooks {
  bool takes_messages;
  /* A request message of a client-streaming or bidi call. */
  void (*on_message)(rpc_call *call, const ProtobufCMessage *message,
                     void *arg);
  /* The client half-closed: no more messages will come. */
  void (*on_half_close)(rpc_call *call, void *arg);
  /* The call ended without the handler: reason is CANCELLED (client
   * RST_STREAM or connection lost) or DEADLINE_EXCEEDED. The handler stops
   * its work and calls rpc_call_finish to release the call. */
  void (*on_cancel)(rpc_call *call, rpc_status_code reason, void *arg);
  /* Every queued response byte has been handed to HTTP/2 flow control: a
   * streaming handler may produce more. */
  void (*on_writable)(rpc_call *call, void *arg);
} rpc_call_hooks;

/* rpc_call_set_hooks installs hooks (copied) and their argument. */
void rpc_call_set_hooks(rpc_call *call, const rpc_call_hooks *hooks, void *arg);

/* rpc_call_method returns the method being called. */
const rpc_method *rpc_call_method(const rpc_call *call);

/* rpc_call_request_metadata returns the custom metadata the client sent
 * (reserved headers removed, -bin values decoded). Owned by the call. */
const rpc_metadata *rpc_call_request_metadata(const rpc_call *call);

/* rpc_call_loop returns the libev loop the call lives on: timers a handler
 * starts for the call belong there. */
struct ev_loop *rpc_call_loop(const rpc_call *call);

/* rpc_call_loop_thread returns the mailbox of the call's loop: work done
 * for the call on another thread posts its outcome there, and the task
 * finishes the call. It stays valid while the server runs. */
rpc_loop_thread *rpc_call_loop_thread(const rpc_call *call);

/* rpc_call_is_cancelled tells whether the call has ended without the
 * handler (cancel, deadline, lost connection). */
bool rpc_call_is_cancelled(const rpc_call *call);

/* rpc_call_add_initial_metadata queues response metadata for the HEADERS
 * frame. Returns 0, RPC_CALL_ERR_STATE once headers went out (the first
 * send or finish sends them), or RPC_CALL_ERR_NOMEM. -1 for an invalid
 * or reserved key, a value that is not printable ASCII (unless the key
 * ends in -bin), or more than RPC_CALL_MAX_METADATA entries. */
int rpc_call_add_initial_metadata(rpc_call *call, const char *key,
                                  const uint8_t *value, size_t value_len);

/* rpc_call_add_trailing_metadata queues metadata for the trailers.
 * Returns 0, RPC_CALL_ERR_STATE after finish, RPC_CALL_ERR_NOMEM, or -1
 * as for initial metadata. */
int rpc_call_add_trailing_metadata(rpc_call *call, const char *key,
                                   const uint8_t *value, size_t value_len);

/* rpc_call_send serializes message (gzip-compressed when the client
 * accepts gzip and compression pays) and queues it. Returns 0, or
 * RPC_CALL_ERR_CLOSED, RPC_CALL_ERR_NOMEM. */
int rpc_call_send(rpc_call *call, const ProtobufCMessage *message);

/* rpc_call_send_packed queues a message already serialized as the
 * method's response type (data, size bytes; copied). Returns as
 * rpc_call_send. */
int rpc_call_send_packed(rpc_call *call, const uint8_t *data, size_t size);

/* rpc_call_pending_bytes returns response bytes queued but not yet taken
 * by HTTP/2 flow control: the backpressure signal of a streaming handler. */
size_t rpc_call_pending_bytes(const rpc_call *call);

/* rpc_call_finish ends the call with status code and message (may be
 * NULL) in the trailers, after every queued message, and releases the
 * handler's reference. If no message was sent and code is not OK, the
 * response is trailers-only. After cancellation it only releases. */
void rpc_call_finish(rpc_call *call, rpc_status_code code, const char *message);

/* rpc_call_finishf is rpc_call_finish with a printf-formatted message. */
void rpc_call_finishf(rpc_call *call, rpc_status_code code, const char *fmt,
                      ...) __attribute__((format(printf, 3, 4)));

/* rpc_call_reply sends message then finishes OK: a unary handler's
 * answer. If the send fails the call finishes with the matching status. */
void rpc_call_reply(rpc_call *call, const ProtobufCMessage *message);

/* rpc_call_reply_packed is rpc_call_reply for a serialized answer. */
void rpc_call_reply_packed(rpc_call *call, const uint8_t *data, size_t size);

#endif
