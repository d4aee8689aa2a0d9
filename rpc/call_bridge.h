/* call_bridge.h: a served gRPC method called over an rpc_http_request
 * (rpc/http_request.h) in another protocol: gRPC-Web, Connect, JSON
 * transcoding. The call is the same rpc_call a gRPC client gets (same
 * method table and handler, deadline, metadata, authorization hook, size
 * limit, deframer, wire check and unpack); a codec the caller gives turns
 * the request body into messages and the response into its protocol.
 *
 * Life: rpc_server_bridge_call takes the request over (its hooks are the
 * bridge's) and calls the codec on the request's loop thread:
 *   - request side: on_body with the body as it arrives, on_body_end once
 *     at its end; the codec feeds messages with rpc_bridge_feed_frames or
 *     rpc_bridge_feed_message, or refuses with rpc_bridge_fail;
 *   - response side: write_message for each response message in order,
 *     then finish once with the status, after which the codec has finished
 *     the request (rpc_http_request_finish). A write_message or finish
 *     that returns RPC_HTTP_REQUEST_ERR_FULL has written nothing and is
 *     called again with the same arguments once the request drains;
 *     meanwhile the call's own queue grows, bounded as a gRPC stream's.
 *   - free(arg) when the call is freed; no codec function runs after.
 * The client going away cancels the call (the handler's on_cancel). */
#ifndef JOBHUB_RPC_CALL_BRIDGE_H
#define JOBHUB_RPC_CALL_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#include "rpc/http_request.h"
#include "rpc/metadata.h"
#include "rpc/method.h"
#include "rpc/server.h"
#include "rpc/status.h"

typedef struct rpc_bridge rpc_bridge;

/* How a call ended, for the codec's finish. Borrowed for the call. */
typedef struct rpc_bridge_end {
  rpc_status_code code;
  const char *message; /* NULL or "": none */
  /* The initial metadata, for a codec that has not responded yet (no
   * message was written): it then answers headers and status at once. */
  const rpc_metadata *initial_metadata;
  const rpc_metadata *trailing_metadata;
} rpc_bridge_end;

/* A protocol's codec. Functions get the arg given to
 * rpc_server_bridge_call; members marked optional may be NULL. */
typedef struct rpc_bridge_codec {
  /* The name under which request header name (lower case, never a
   * pseudo-header, content-type or grpc-accept-encoding) reaches the call,
   * as a gRPC request header of that name would (custom metadata, or
   * grpc-timeout / grpc-encoding), or NULL to leave it out. Required. */
  const char *(*call_header)(const char *name);
  /* Optional: the deadline from this protocol's own header. Returns 0
   * with *timeout_ns set (0: none), or -1 for a malformed value
   * (INVALID_ARGUMENT). */
  int (*deadline)(const rpc_http_request *request, uint64_t *timeout_ns);
  /* Optional: request body bytes (borrowed), only while the call takes
   * them. NULL: the body is gRPC length-prefixed messages, fed as is. */
  void (*on_body)(rpc_bridge *bridge, void *arg, const uint8_t *data,
                  size_t len);
  /* Optional: the body is complete; runs before the call learns it. */
  void (*on_body_end)(rpc_bridge *bridge, void *arg);
  /* One response message: framed holds the 5-byte gRPC prefix (flags 0,
   * big-endian length) then length bytes of the packed message. The first
   * call responds (headers from rpc_bridge_initial_metadata). Returns 0,
   * RPC_HTTP_REQUEST_ERR_FULL (nothing written: called again), or another
   * error (the request is then given up and the call cancelled). */
  int (*write_message)(rpc_bridge *bridge, void *arg, const uint8_t *framed,
                       size_t length);
  /* The end: writes the status its protocol's way and finishes the
   * request. Returns 0, RPC_HTTP_REQUEST_ERR_FULL (nothing written and
   * not finished: called again), or another error (the codec has finished
   * the request anyway). */
  int (*finish)(rpc_bridge *bridge, void *arg, const rpc_bridge_end *end);
  /* Optional: releases arg. */
  void (*free)(void *arg);
} rpc_bridge_codec;

/* rpc_server_bridge_call serves request (the handler's reference, which
 * moves to the bridge) as a call of the method at path
 * ("/jobhub.v1.Jobs/Get") of server's services, with codec (static) and
 * arg. Unknown paths are answered UNIMPLEMENTED, refusals of the
 * server's authorization hook as it says, all through codec->finish.
 * Returns 0, or -1 when memory is exhausted: nothing was taken (request
 * and arg stay the caller's, no codec function ran). */
int rpc_server_bridge_call(rpc_server *server, rpc_http_request *request,
                           const char *path, const rpc_bridge_codec *codec,
                           void *arg);

/* rpc_bridge_request returns the request being served, or NULL once the
 * codec finished it or it was cancelled. */
rpc_http_request *rpc_bridge_request(const rpc_bridge *bridge);

/* rpc_bridge_method returns the method being called, NULL for an unknown
 * path. */
const rpc_method *rpc_bridge_method(const rpc_bridge *bridge);

/* rpc_bridge_initial_metadata returns the response's initial metadata,
 * for the headers of the codec's first write_message. */
const rpc_metadata *rpc_bridge_initial_metadata(const rpc_bridge *bridge);

/* rpc_bridge_max_message_bytes returns the receive limit of one request
 * message, for a codec that buffers one. */
size_t rpc_bridge_max_message_bytes(const rpc_bridge *bridge);

/* rpc_bridge_feed_frames feeds request bytes that are gRPC length-prefixed
 * messages (any split) to the call. */
void rpc_bridge_feed_frames(rpc_bridge *bridge, const uint8_t *data,
                            size_t len);

/* rpc_bridge_feed_message feeds one whole request message, packed
 * (gzip-compressed when compressed: the call's grpc-encoding must say
 * gzip), to the call. */
void rpc_bridge_feed_message(rpc_bridge *bridge, bool compressed,
                             const uint8_t *data, size_t len);

/* rpc_bridge_fail_too_large ends the call with RESOURCE_EXHAUSTED as the
 * deframer does for gRPC: the codec saw a request message (or a body that
 * holds one) over rpc_bridge_max_message_bytes. */
void rpc_bridge_fail_too_large(rpc_bridge *bridge);

/* rpc_bridge_fail ends the call with code and message (copied): the
 * codec could not make messages of the body (bad JSON, say). */
void rpc_bridge_fail(rpc_bridge *bridge, rpc_status_code code,
                     const char *message);

#endif
