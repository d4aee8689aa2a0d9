/* server_h2.c: a connection's HTTP/2 session (nghttp2): its callbacks,
 * the frames that carry no work, the list of its streams, and where each
 * request goes: a gRPC call (call.c) of the routed method, or the
 * protocol hook's request (http_request.c) when it is not gRPC. */
#include "rpc/server_h2.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "rpc/call_internal.h"
#include "rpc/http_request_internal.h"
#include "rpc/log.h"

/* HTTP/2 windows: large enough that a fast link is not throttled. */
#define STREAM_WINDOW_BYTES (1 << 20)
#define CONNECTION_WINDOW_BYTES (16 << 20)

static nghttp2_session_callbacks *session_callbacks;
static pthread_once_t callbacks_once = PTHREAD_ONCE_INIT;

/* What the connection's streams may ask of it (rpc/stream.h). */

static void stream_schedule_flush(void *connection) {
  server_schedule_flush(connection);
}

static void stream_output_changed(void *connection, size_t before,
                                  size_t after) {
  rpc_connection *c = connection;
  c->streams_output = c->streams_output + after - before;
}

static size_t stream_queued_output(const void *connection) {
  const rpc_connection *c = connection;
  return c->streams_output + (c->out.len - c->out_offset);
}

static const rpc_stream_conn_ops stream_conn_ops = {
    .schedule_flush = stream_schedule_flush,
    .output_changed = stream_output_changed,
    .queued_output = stream_queued_output,
};

/* The client's IP address, looked up once per connection. */
static const char *connection_peer(rpc_connection *c) {
  if (c->peer[0] == '\0') {
    rpc_socket_peer_address(c->socket.fd, c->peer, sizeof(c->peer));
  }
  return c->peer;
}

/* nghttp2 callbacks. */

/* Takes a token from the connection's bucket of frames that carry no work
 * (rpc/server.h). Returns 0, or NGHTTP2_ERR_CALLBACK_FAILURE when the
 * bucket is empty: GOAWAY ENHANCE_YOUR_CALM is queued, and the failure
 * makes nghttp2_session_mem_recv stop at once, so the connection is
 * closed after a last flush instead of parsing the rest of the flood. */
static int charge_idle_frame(rpc_connection *c) {
  ev_tstamp now = ev_now(c->thread->loop);
  c->idle_frame_tokens +=
      (now - c->idle_frames_refilled) * RPC_SERVER_IDLE_FRAME_RATE;
  if (c->idle_frame_tokens > RPC_SERVER_IDLE_FRAME_BURST) {
    c->idle_frame_tokens = RPC_SERVER_IDLE_FRAME_BURST;
  }
  c->idle_frames_refilled = now;
  if (c->idle_frame_tokens >= 1.) {
    c->idle_frame_tokens -= 1.;
    return 0;
  }
  rpc_log(RPC_LOG_WARN, "h2_frame_flood", "error=\"ENHANCE_YOUR_CALM\"");
  (void)nghttp2_session_terminate_session(c->session,
                                          NGHTTP2_ENHANCE_YOUR_CALM);
  return NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* Counts the frames that carry no work. A WINDOW_UPDATE or DATA frame is
 * judged at the next frame: it was useful if on_frame_recv saw a large
 * increment or on_data_chunk_recv saw data (nghttp2 reports neither for a
 * closed stream: such frames count). */
static int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd,
                          void *user_data) {
  (void)session;
  rpc_connection *c = user_data;
  if (c->frame_may_be_idle) {
    c->frame_may_be_idle = false;
    int rv = charge_idle_frame(c);
    if (rv != 0) {
      return rv;
    }
  }
  switch (hd->type) {
  case NGHTTP2_PRIORITY:
  case NGHTTP2_RST_STREAM:
    return charge_idle_frame(c);
  case NGHTTP2_WINDOW_UPDATE:
    c->frame_may_be_idle = true;
    break;
  case NGHTTP2_DATA:
    c->frame_may_be_idle = !(hd->flags & NGHTTP2_FLAG_END_STREAM);
    break;
  default:
    break;
  }
  return 0;
}

static void link_stream(rpc_connection *c, rpc_stream *stream) {
  stream->next = c->streams;
  if (c->streams != NULL) {
    c->streams->prev = stream;
  }
  c->streams = stream;
  c->stream_count++;
  nghttp2_session_set_stream_user_data(c->session, stream->id, stream);
}

static void unlink_stream(rpc_connection *c, rpc_stream *stream) {
  if (c->session != NULL) {
    nghttp2_session_set_stream_user_data(c->session, stream->id, NULL);
  }
  if (stream->prev != NULL) {
    stream->prev->next = stream->next;
  } else {
    c->streams = stream->next;
  }
  if (stream->next != NULL) {
    stream->next->prev = stream->prev;
  }
  stream->prev = stream->next = NULL;
  c->stream_count--;
  if (c->stream_count == 0) {
    c->last_busy = ev_now(c->thread->loop);
  }
}

/* The stream is gone: unlinks it and tells its layer, which may free it. */
static void close_stream(rpc_connection *c, rpc_stream *stream) {
  unlink_stream(c, stream);
  if (stream->kind == RPC_STREAM_GRPC_CALL) {
    rpc_call_on_stream_close(rpc_call_of_stream(stream));
  } else {
    rpc_http_request_on_stream_close(rpc_http_request_of_stream(stream));
  }
}

static void stream_deliver_writable(rpc_stream *stream) {
  if (stream->kind == RPC_STREAM_GRPC_CALL) {
    rpc_call_deliver_writable(rpc_call_of_stream(stream));
  } else {
    rpc_http_request_deliver_writable(rpc_http_request_of_stream(stream));
  }
}

static int on_begin_headers(nghttp2_session *session,
                            const nghttp2_frame *frame, void *user_data) {
  rpc_connection *c = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS ||
      frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
    return 0;
  }
  const rpc_server *server = c->thread->server;
  const rpc_server_options *options = &server->options;
  rpc_call_limits limits = {options->max_receive_message_bytes,
                            options->max_stream_output_bytes,
                            options->max_connection_output_bytes};
  rpc_call *call = rpc_call_new(&stream_conn_ops, c, session, c->thread->runner,
                                frame->hd.stream_id, &limits);
  if (call == NULL) {
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                              NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  link_stream(c, &call->stream);
  if (server->hook.http_request != NULL) {
    /* Every header is kept until the content-type says gRPC: the request
     * may be the hook's. Header blocks of streams do not interleave. */
    rpc_buffer_reset(&c->hook_headers);
    c->hook_header_count = 0;
    c->hook_headers_stream = frame->hd.stream_id;
  }
  return 0;
}

/* Keeps a request header for the protocol hook, until the content-type
 * shows the request is gRPC. Returns 0 or -1 (no memory). */
static int keep_header_for_hook(rpc_connection *c, const rpc_call *call,
                                const uint8_t *name, size_t name_len,
                                const uint8_t *value, size_t value_len) {
  if (call->content_type_is_grpc) {
    c->hook_headers_stream = 0;
    return 0;
  }
  if (rpc_http_request_add_header(&c->hook_headers, name, name_len, value,
                                  value_len) != 0) {
    return -1;
  }
  c->hook_header_count++;
  return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame,
                     const uint8_t *name, size_t name_len, const uint8_t *value,
                     size_t value_len, uint8_t flags, void *user_data) {
  (void)flags;
  rpc_connection *c = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS) {
    return 0;
  }
  rpc_stream *stream =
      nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (stream == NULL) {
    return 0;
  }
  /* RFC 7540 6.5.2: each entry counts its name, value and 32 bytes;
   * request headers and trailers alike. */
  stream->header_bytes += name_len + value_len + 32;
  if (stream->header_bytes <=
      c->thread->server->options.max_header_list_bytes) {
    if (stream->kind != RPC_STREAM_GRPC_CALL ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
      return 0; /* gRPC clients send no trailers; ignore any */
    }
    rpc_call *call = rpc_call_of_stream(stream);
    rpc_call_on_header(call, name, name_len, value, value_len);
    if (c->hook_headers_stream != stream->id ||
        keep_header_for_hook(c, call, name, name_len, value, value_len) == 0) {
      return 0;
    }
  }
  /* Over the limit: stop here. Returning 0 would let nghttp2 validate
   * every remaining header, and HPACK makes each 1-byte reference to a
   * 4 KiB table entry cost a 4 KiB scan (the "HPACK bomb"). A temporal
   * failure makes nghttp2 only decode the rest of the block (to keep the
   * HPACK state) and reset the stream; the RST_STREAM we queue first
   * carries ENHANCE_YOUR_CALM, which gRPC clients report as
   * RESOURCE_EXHAUSTED (PROTOCOL-HTTP2 "Errors"), and keeps nghttp2's own
   * INTERNAL_ERROR one from being queued (the stream is then closing). A
   * trailers-only answer cannot be sent: the queued reset would drop it.
   * No memory to keep a header for the hook ends the stream the same
   * way. */
  nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                            NGHTTP2_ENHANCE_YOUR_CALM);
  return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

/* Asks the server's authorization hook about a call of a known method;
 * a refusal is answered by rpc_call_begin. */
static void authorize_call(rpc_connection *c, rpc_call *call,
                           const rpc_route *found) {
  const rpc_server_options *options = &c->thread->server->options;
  rpc_call_authorize(call, options->authorize, options->authorize_user,
                     found->service->desc->name, found->method->name,
                     c->peer_cn, connection_peer(c));
}

/* Gives a request that is not gRPC to the protocol hook in place of its
 * call, with the headers kept for it. Returns the request's stream, or
 * NULL (no memory: the stream is reset). */
static rpc_stream *hand_request_to_hook(rpc_connection *c, rpc_call *call) {
  const rpc_server *server = c->thread->server;
  rpc_http_request_origin origin = {
      .conn_ops = &stream_conn_ops,
      .connection = c,
      .session = c->session,
      .stream_id = call->stream.id,
      .loop_thread = c->thread->runner,
      .peer = connection_peer(c),
      .cert_cn = c->peer_cn,
      .max_stream_output_bytes = server->options.max_stream_output_bytes,
      .max_connection_output_bytes =
          server->options.max_connection_output_bytes,
  };
  c->hook_headers_stream = 0;
  rpc_http_request *request =
      rpc_http_request_new(&origin, &c->hook_headers, c->hook_header_count);
  size_t header_bytes = call->stream.header_bytes;
  /* The call was never begun: closing its stream frees it. */
  close_stream(c, &call->stream);
  if (request == NULL) {
    nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, origin.stream_id,
                              NGHTTP2_INTERNAL_ERROR);
    return NULL;
  }
  rpc_stream *stream = rpc_http_request_stream(request);
  stream->header_bytes = header_bytes;
  link_stream(c, stream);
  server->hook.http_request(server->hook.user, request);
  return stream;
}

/* Routes a request whose headers are complete. Returns its stream: the
 * call's, or the hook's request that replaced it (NULL: none). */
static rpc_stream *begin_request(rpc_connection *c, rpc_call *call) {
  const rpc_server *server = c->thread->server;
  if (c->hook_headers_stream == call->stream.id) {
    return hand_request_to_hook(c, call);
  }
  const rpc_route *found =
      call->path != NULL ? rpc_service_table_find(&server->services, call->path)
                         : NULL;
  if (found == NULL) {
    rpc_call_begin(
        call, NULL,
        rpc_service_table_service_name(&server->services, call->path), NULL,
        NULL);
    return &call->stream;
  }
  if (server->options.authorize != NULL) {
    authorize_call(c, call, found);
  }
  rpc_call_begin(call, found->method, found->service->desc->name,
                 found->service->handlers, found->service->user);
  return &call->stream;
}

static void stream_on_remote_close(rpc_stream *stream) {
  if (stream->kind == RPC_STREAM_GRPC_CALL) {
    rpc_call_on_remote_close(rpc_call_of_stream(stream));
  } else {
    rpc_http_request_on_remote_close(rpc_http_request_of_stream(stream));
  }
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data) {
  rpc_connection *c = user_data;
  rpc_stream *stream =
      frame->hd.stream_id != 0
          ? nghttp2_session_get_stream_user_data(session, frame->hd.stream_id)
          : NULL;
  switch (frame->hd.type) {
  case NGHTTP2_HEADERS:
    if (stream != NULL && frame->headers.cat == NGHTTP2_HCAT_REQUEST &&
        stream->kind == RPC_STREAM_GRPC_CALL) {
      stream = begin_request(c, rpc_call_of_stream(stream));
    }
    if (stream != NULL && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
      stream_on_remote_close(stream);
    }
    break;
  case NGHTTP2_DATA:
    if (stream != NULL && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
      stream_on_remote_close(stream);
    }
    break;
  case NGHTTP2_PING:
    if (frame->hd.flags & NGHTTP2_FLAG_ACK) {
      c->ping_outstanding = false;
    }
    break;
  case NGHTTP2_WINDOW_UPDATE:
    /* A small one is useful when it gives back a DATA frame we sent
     * (gRPC clients return small answers byte for byte). */
    if (frame->window_update.window_size_increment >=
        RPC_SERVER_SMALL_WINDOW_UPDATE) {
      c->frame_may_be_idle = false;
    } else if (c->window_updates_owed > 0) {
      c->window_updates_owed--;
      c->frame_may_be_idle = false;
    }
    break;
  default:
    break;
  }
  return 0;
}

static int on_data_chunk_recv(nghttp2_session *session, uint8_t flags,
                              int32_t stream_id, const uint8_t *data,
                              size_t len, void *user_data) {
  (void)flags;
  rpc_connection *c = user_data;
  if (len > 0) {
    c->frame_may_be_idle = false;
  }
  rpc_stream *stream = nghttp2_session_get_stream_user_data(session, stream_id);
  if (stream == NULL) {
    return 0;
  }
  if (stream->kind == RPC_STREAM_GRPC_CALL) {
    rpc_call_on_data(rpc_call_of_stream(stream), data, len);
  } else {
    rpc_http_request_on_data(rpc_http_request_of_stream(stream), data, len);
  }
  return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id,
                           uint32_t error_code, void *user_data) {
  (void)error_code;
  rpc_stream *stream = nghttp2_session_get_stream_user_data(session, stream_id);
  if (stream != NULL) {
    close_stream(user_data, stream);
  }
  return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data) {
  rpc_connection *c = user_data;
  if (frame->hd.type == NGHTTP2_DATA && frame->hd.length > 0 &&
      c->window_updates_owed < UINT32_MAX - 2) {
    c->window_updates_owed += 2;
  }
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    rpc_stream *stream =
        nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (stream == NULL) {
      return 0;
    }
    if (stream->kind == RPC_STREAM_GRPC_CALL) {
      rpc_call_on_response_end(rpc_call_of_stream(stream));
    } else {
      rpc_http_request_on_response_end(rpc_http_request_of_stream(stream));
    }
  }
  return 0;
}

static void make_callbacks(void) {
  nghttp2_session_callbacks *callbacks;
  if (nghttp2_session_callbacks_new(&callbacks) != 0) {
    return; /* session_callbacks stays NULL: start-up reports it */
  }
  nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks,
                                                        on_begin_frame);
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks,
                                                          on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks,
                                                       on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks,
                                                            on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks,
                                                         on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(callbacks,
                                                       on_frame_send);
  session_callbacks = callbacks;
}

int server_h2_init(void) {
  pthread_once(&callbacks_once, make_callbacks);
  return session_callbacks != NULL ? 0 : -1;
}

int server_h2_start(rpc_connection *c) {
  const rpc_server_options *options = &c->thread->server->options;
  if (nghttp2_session_server_new(&c->session, session_callbacks, c) != 0) {
    return -1;
  }
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
       options->max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW_BYTES},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, options->max_header_list_bytes},
  };
  if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings,
                              sizeof(settings) / sizeof(settings[0])) != 0 ||
      nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
                                            CONNECTION_WINDOW_BYTES) != 0) {
    return -1;
  }
  c->phase = PHASE_H2;
  c->idle_frame_tokens = RPC_SERVER_IDLE_FRAME_BURST;
  c->idle_frames_refilled = ev_now(c->thread->loop);
  if (c->thread->stopping) {
    /* Accepted just before shutdown: let it know at once. */
    nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR,
                          NULL, 0);
    c->goaway_sent = true;
  }
  server_schedule_flush(c);
  return 0;
}

int server_h2_feed(rpc_connection *c, const uint8_t *data, size_t len) {
  ssize_t rv = nghttp2_session_mem_recv(c->session, data, len);
  if (rv < 0) {
    rpc_log_folded(RPC_LOG_DEBUG, "h2_protocol_error", "error=\"%s\"",
                   nghttp2_strerror((int)rv));
    return -1;
  }
  server_schedule_flush(c);
  return 0;
}

void server_h2_goaway(rpc_connection *c) {
  if (c->goaway_sent || c->phase != PHASE_H2) {
    return;
  }
  c->goaway_sent = true;
  nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(c->session),
                        NGHTTP2_NO_ERROR, NULL, 0);
  server_schedule_flush(c);
}

void server_h2_deliver_writable(rpc_connection *c) {
  for (rpc_stream *stream = c->streams; stream != NULL;) {
    rpc_stream *next = stream->next;
    stream_deliver_writable(stream);
    stream = next;
  }
}

void server_h2_end(rpc_connection *c) {
  /* nghttp2_session_del calls no stream-close callback: end streams
   * here. */
  while (c->streams != NULL) {
    close_stream(c, c->streams);
  }
  nghttp2_session_del(c->session);
  c->session = NULL;
}
