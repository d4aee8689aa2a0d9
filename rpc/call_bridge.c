/* call_bridge.c: a gRPC call whose transport is an rpc_http_request and a
 * codec (see the header): the call's framed response queue is handed to
 * the codec message by message as the request's output bounds allow. */
#include "rpc/call_bridge.h"

#include <stdlib.h>
#include <string.h>

#include "rpc/call_internal.h"
#include "rpc/http_request_internal.h"
#include "rpc/server_state.h"

/* Request body bytes a call answered early drops while it waits for the
 * body's end, at most: past them the request is ended at once (HTTP/2
 * RST_STREAM NO_ERROR after the answer, which some clients, curl among
 * them, report as an error). */
#define DRAIN_BYTES_MAX (16u << 20)

struct rpc_bridge {
  rpc_call *call;
  rpc_http_request *request; /* NULL once finished or cancelled */
  const rpc_bridge_codec *codec;
  void *codec_arg;
  /* Deferred to the loop's next turn, out of whatever handler code is
   * running: dropping the transport's reference of the call (the request
   * is done) and an on_cancel the call owes its handler. */
  ev_prepare step;
  bool close_owed;
  bool body_ended;     /* the client's END_STREAM came */
  size_t body_dropped; /* bytes that came after the call was answered */
};

static void bridge_free(void *arg) {
  rpc_bridge *bridge = arg;
  if (bridge->codec->free != NULL) {
    bridge->codec->free(bridge->codec_arg);
  }
  free(bridge);
}

static void on_step(struct ev_loop *loop, ev_prepare *watcher, int events) {
  (void)events;
  rpc_bridge *bridge = watcher->data;
  rpc_call *call = bridge->call;
  ev_prepare_stop(loop, watcher);
  if (bridge->close_owed) {
    bridge->close_owed = false;
    /* Fires an owed on_cancel too; may free the call and the bridge. */
    rpc_call_on_stream_close(call);
    return;
  }
  if (call->cancel_owed) {
    rpc_call_deliver_writable(call);
  }
}

static void schedule_step(rpc_bridge *bridge) {
  ev_prepare_start(bridge->call->loop, &bridge->step);
}

/* The request is over for the bridge: the call loses its transport at
 * the next turn. */
static void end_request(rpc_bridge *bridge) {
  rpc_call *call = bridge->call;
  /* The connection may go before the step runs: the call lets go of it
   * now, with what it has still queued. */
  rpc_stream_output_changed(&call->stream, rpc_call_pending_bytes(call), 0);
  call->stream.connection = NULL;
  bridge->request = NULL;
  bridge->close_owed = true;
  schedule_step(bridge);
}

static uint32_t frame_length(const uint8_t *frame) {
  return (uint32_t)frame[1] << 24 | (uint32_t)frame[2] << 16 |
         (uint32_t)frame[3] << 8 | (uint32_t)frame[4];
}

/* An answer to a call whose client sends one message waits for the end of
 * its body, within DRAIN_BYTES_MAX: the client then gets the whole
 * answer. Streaming clients may wait for the answer before they end. */
static bool waits_for_body_end(const rpc_bridge *bridge) {
  const rpc_call *call = bridge->call;
  return !bridge->body_ended && bridge->body_dropped <= DRAIN_BYTES_MAX &&
         (call->method == NULL ||
          RPC_SHAPE_HAS_SINGLE_REQUEST(call->method->shape));
}

/* The call's transport kick: hands queued messages, then the status, to
 * the codec while the request takes them. */
static void bridge_kick(rpc_call *call) {
  rpc_bridge *bridge = call->transport_arg;
  if (bridge->request == NULL) {
    return;
  }
  while (call->send_queue.len > call->send_offset) {
    const uint8_t *frame = call->send_queue.data + call->send_offset;
    size_t length = frame_length(frame);
    call->headers_sent = true;
    int rv =
        bridge->codec->write_message(bridge, bridge->codec_arg, frame, length);
    if (rv == RPC_HTTP_REQUEST_ERR_FULL) {
      return; /* the request's on_writable resumes */
    }
    if (rv != 0) {
      rpc_http_request_finish(bridge->request, NULL, 0);
      end_request(bridge);
      return;
    }
    size_t before = rpc_call_pending_bytes(call);
    call->send_offset += RPC_FRAME_HEADER_SIZE + length;
    rpc_stream_output_changed(&call->stream, before,
                              rpc_call_pending_bytes(call));
    if (call->send_offset == call->send_queue.len) {
      rpc_buffer_reset(&call->send_queue);
      call->send_offset = 0;
    }
  }
  if (call->cancel_owed) {
    schedule_step(bridge);
  }
  if (!call->status_committed || waits_for_body_end(bridge)) {
    return;
  }
  call->headers_sent = true;
  rpc_bridge_end end = {
      .code = call->status_code,
      .message = call->status_message,
      .initial_metadata = &call->initial_metadata,
      .trailing_metadata = &call->trailing_metadata,
  };
  if (bridge->codec->finish(bridge, bridge->codec_arg, &end) !=
      RPC_HTTP_REQUEST_ERR_FULL) {
    end_request(bridge);
  }
}

static const rpc_call_transport bridge_transport = {.kick = bridge_kick,
                                                    .free = bridge_free};

/* Request hooks. */

static int on_request_data(rpc_http_request *request, const uint8_t *data,
                           size_t len, void *arg) {
  (void)request;
  rpc_bridge *bridge = arg;
  rpc_call *call = bridge->call;
  if (call->method == NULL || call->status_committed || call->cancelled) {
    /* Answered already: the rest of the body is dropped. */
    bridge->body_dropped += len;
    if (bridge->body_dropped > DRAIN_BYTES_MAX) {
      bridge_kick(call);
    }
    return 0;
  }
  if (bridge->codec->on_body != NULL) {
    bridge->codec->on_body(bridge, bridge->codec_arg, data, len);
  } else {
    rpc_call_on_data(call, data, len);
  }
  return 0;
}

static void on_request_end(rpc_http_request *request, void *arg) {
  (void)request;
  rpc_bridge *bridge = arg;
  rpc_call *call = bridge->call;
  if (bridge->codec->on_body_end != NULL && call->method != NULL &&
      !call->status_committed && !call->cancelled) {
    bridge->codec->on_body_end(bridge, bridge->codec_arg);
  }
  bridge->body_ended = true;
  rpc_call_on_remote_close(call);
  if (call->status_committed) {
    bridge_kick(call); /* an answer that waited for the end */
  }
}

static void on_request_cancel(rpc_http_request *request, void *arg) {
  rpc_bridge *bridge = arg;
  bridge->request = NULL;
  bridge->close_owed = false;
  ev_prepare_stop(bridge->call->loop, &bridge->step);
  rpc_http_request_finish(request, NULL, 0); /* releases only */
  /* The client went away: the handler's on_cancel (CANCELLED); may free
   * the call and the bridge. */
  rpc_call_on_stream_close(bridge->call);
}

static void on_request_writable(rpc_http_request *request, void *arg) {
  (void)request;
  rpc_bridge *bridge = arg;
  rpc_call *call = bridge->call;
  bridge_kick(call);
  if (bridge->request != NULL && !call->status_committed &&
      rpc_call_pending_bytes(call) == 0) {
    call->writable_wanted = call->hooks.on_writable != NULL;
    rpc_call_deliver_writable(call);
  }
}

/* Feeds the request's headers to the call through the codec's names. */
static void take_headers(rpc_call *call, const rpc_http_request *request,
                         const rpc_bridge_codec *codec) {
  size_t count = rpc_http_request_header_count(request);
  for (size_t i = 0; i < count; i++) {
    const char *name, *value;
    (void)rpc_http_request_header_at(request, i, &name, &value);
    if (name[0] == ':' || strcmp(name, "content-type") == 0 ||
        strcmp(name, "grpc-accept-encoding") == 0) {
      continue; /* the bridge's own; responses are never compressed */
    }
    const char *key = codec->call_header(name);
    if (key != NULL) {
      rpc_call_on_header(call, (const uint8_t *)key, strlen(key),
                         (const uint8_t *)value, strlen(value));
    }
  }
  uint64_t timeout_ns = 0;
  if (codec->deadline != NULL) {
    if (codec->deadline(request, &timeout_ns) != 0) {
      call->timeout_invalid = true;
    } else if (timeout_ns > 0) {
      call->timeout_ns = timeout_ns;
    }
  }
}

int rpc_server_bridge_call(rpc_server *server, rpc_http_request *request,
                           const char *path, const rpc_bridge_codec *codec,
                           void *arg) {
  const rpc_server_options *options = &server->options;
  rpc_bridge *bridge = calloc(1, sizeof(*bridge));
  char *path_copy = strdup(path);
  rpc_call_limits limits = {options->max_receive_message_bytes,
                            options->max_stream_output_bytes,
                            options->max_connection_output_bytes};
  rpc_call *call =
      bridge != NULL && path_copy != NULL
          ? rpc_call_new_bridged(&bridge_transport, bridge,
                                 rpc_http_request_loop_thread(request), &limits)
          : NULL;
  if (call == NULL) {
    free(bridge);
    free(path_copy);
    return -1;
  }
  *bridge = (rpc_bridge){
      .call = call, .request = request, .codec = codec, .codec_arg = arg};
  /* The call's queue counts on the request's connection, as a gRPC
   * call's does: the connection's output bound covers both. */
  const rpc_stream *origin = rpc_http_request_stream(request);
  call->stream.conn_ops = origin->conn_ops;
  call->stream.connection = origin->connection;
  ev_prepare_init(&bridge->step, on_step);
  bridge->step.data = bridge;
  call->path = path_copy;
  /* What gRPC checks in headers the codec's protocol settled already. */
  call->method_is_post = true;
  call->content_type_is_grpc = true;
  take_headers(call, request, codec);
  static const rpc_http_request_hooks hooks = {
      .on_data = on_request_data,
      .on_end = on_request_end,
      .on_cancel = on_request_cancel,
      .on_writable = on_request_writable,
  };
  rpc_http_request_set_hooks(request, &hooks, bridge);

  const rpc_route *found = rpc_service_table_find(&server->services, path);
  if (found == NULL) {
    rpc_call_begin(call, NULL,
                   rpc_service_table_service_name(&server->services, path),
                   NULL, NULL);
    return 0;
  }
  if (options->authorize != NULL) {
    rpc_call_authorize(call, options->authorize, options->authorize_user,
                       found->service->desc->name, found->method->name,
                       rpc_http_request_cert_cn(request),
                       rpc_http_request_peer(request));
  }
  rpc_call_begin(call, found->method, found->service->desc->name,
                 found->service->handlers, found->service->user);
  return 0;
}

rpc_http_request *rpc_bridge_request(const rpc_bridge *bridge) {
  return bridge->request;
}

const rpc_method *rpc_bridge_method(const rpc_bridge *bridge) {
  return bridge->call->method;
}

const rpc_metadata *rpc_bridge_initial_metadata(const rpc_bridge *bridge) {
  return &bridge->call->initial_metadata;
}

size_t rpc_bridge_max_message_bytes(const rpc_bridge *bridge) {
  return bridge->call->max_receive_bytes;
}

void rpc_bridge_feed_frames(rpc_bridge *bridge, const uint8_t *data,
                            size_t len) {
  rpc_call_on_data(bridge->call, data, len);
}

void rpc_bridge_feed_message(rpc_bridge *bridge, bool compressed,
                             const uint8_t *data, size_t len) {
  if (len > UINT32_MAX) {
    rpc_bridge_fail_too_large(bridge);
    return;
  }
  uint8_t prefix[RPC_FRAME_HEADER_SIZE];
  rpc_frame_header_write(prefix, compressed, (uint32_t)len);
  rpc_call_on_data(bridge->call, prefix, sizeof(prefix));
  rpc_call_on_data(bridge->call, data, len);
}

void rpc_bridge_fail_too_large(rpc_bridge *bridge) {
  uint8_t prefix[RPC_FRAME_HEADER_SIZE];
  size_t max = bridge->call->max_receive_bytes;
  /* The deframer refuses the declared length with gRPC's own answer. */
  rpc_frame_header_write(prefix, false,
                         max >= UINT32_MAX ? UINT32_MAX : (uint32_t)max + 1);
  rpc_call_on_data(bridge->call, prefix, sizeof(prefix));
}

void rpc_bridge_fail(rpc_bridge *bridge, rpc_status_code code,
                     const char *message) {
  rpc_call_fail(bridge->call, code, message);
}
