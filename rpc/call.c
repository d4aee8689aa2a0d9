/* call.c: one server-side gRPC call on an HTTP/2 stream: request headers,
 * deframing and decoding, the deadline, the response queue, and the final
 * status in trailers (PROTOCOL-HTTP2). */
#include "rpc/call_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/log.h"
#include "rpc/message.h"
#include "rpc/timeout.h"
#include "rpc/wire_check.h"

/* Room for our own response headers beside the custom metadata. */
#define FIXED_RESPONSE_HEADERS 4

static void release(rpc_call *call);
static void commit_status(rpc_call *call, rpc_status_code code,
                          const char *message);

#define NV_STATIC(name, value)                                                 \
  {                                                                            \
    (uint8_t *)(name), (uint8_t *)(value), sizeof(name) - 1,                   \
        sizeof(value) - 1,                                                     \
        NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE           \
  }

static bool header_is(const uint8_t *name, size_t name_len, const char *want) {
  size_t want_len = strlen(want);
  return name_len == want_len && memcmp(name, want, want_len) == 0;
}

static char *copy_string(const uint8_t *data, size_t len) {
  char *copy = malloc(len + 1);
  if (copy != NULL) {
    memcpy(copy, data, len);
    copy[len] = '\0';
  }
  return copy;
}

/* Token search in a comma-separated header value ("identity, gzip"). */
static bool list_contains(const uint8_t *value, size_t len, const char *token) {
  size_t token_len = strlen(token);
  size_t i = 0;
  while (i < len) {
    while (i < len && (value[i] == ' ' || value[i] == ',')) {
      i++;
    }
    size_t start = i;
    while (i < len && value[i] != ',') {
      i++;
    }
    size_t end = i;
    while (end > start && value[end - 1] == ' ') {
      end--;
    }
    if (end - start == token_len &&
        memcmp(value + start, token, token_len) == 0) {
      return true;
    }
  }
  return false;
}

static void h2_kick(rpc_call *call);

/* The gRPC HTTP/2 stream as a call's transport. */
static const rpc_call_transport h2_transport = {.kick = h2_kick};

/* A call with nothing of its transport set but the table. */
static rpc_call *call_new(const rpc_call_transport *transport,
                          rpc_loop_thread *loop_thread,
                          const rpc_call_limits *limits) {
  rpc_call *call = calloc(1, sizeof(*call));
  if (call == NULL) {
    return NULL;
  }
  call->transport = transport;
  call->loop = rpc_loop_thread_loop(loop_thread);
  call->loop_thread = loop_thread;
  call->refs = 1;
  call->max_receive_bytes = limits->max_receive_bytes;
  call->max_stream_output_bytes = limits->max_stream_output_bytes;
  call->max_connection_output_bytes = limits->max_connection_output_bytes;
  rpc_metadata_init(&call->request_metadata);
  rpc_metadata_init(&call->initial_metadata);
  rpc_metadata_init(&call->trailing_metadata);
  rpc_buffer_init(&call->send_queue);
  rpc_deframer_init(&call->deframer, limits->max_receive_bytes);
  call->deadline_timer.data = call;
  return call;
}

rpc_call *rpc_call_new(const rpc_stream_conn_ops *conn_ops, void *connection,
                       nghttp2_session *session, rpc_loop_thread *loop_thread,
                       int32_t stream_id, const rpc_call_limits *limits) {
  rpc_call *call = call_new(&h2_transport, loop_thread, limits);
  if (call != NULL) {
    call->stream = (rpc_stream){.kind = RPC_STREAM_GRPC_CALL,
                                .conn_ops = conn_ops,
                                .connection = connection,
                                .session = session,
                                .id = stream_id};
  }
  return call;
}

rpc_call *rpc_call_new_bridged(const rpc_call_transport *transport,
                               void *transport_arg,
                               rpc_loop_thread *loop_thread,
                               const rpc_call_limits *limits) {
  /* No HTTP/2 stream of its own: session stays NULL; the transport may
   * set stream.conn_ops and connection so that the call's queue counts on
   * a connection (else that accounting is a no-op). */
  rpc_call *call = call_new(transport, loop_thread, limits);
  if (call != NULL) {
    call->transport_arg = transport_arg;
  }
  return call;
}

static void call_free(rpc_call *call) {
  ev_timer_stop(call->loop, &call->deadline_timer);
  free(call->path);
  free(call->request_encoding);
  free(call->status_message);
  free(call->denied_message);
  rpc_metadata_free(&call->request_metadata);
  rpc_metadata_free(&call->initial_metadata);
  rpc_metadata_free(&call->trailing_metadata);
  rpc_buffer_free(&call->send_queue);
  rpc_deframer_free(&call->deframer);
  if (call->request != NULL) {
    protobuf_c_message_free_unpacked(call->request, NULL);
  }
  if (call->transport->free != NULL) {
    call->transport->free(call->transport_arg);
  }
  free(call);
}

static void release(rpc_call *call) {
  if (--call->refs == 0) {
    call_free(call);
  }
}

void rpc_call_on_header(rpc_call *call, const uint8_t *name, size_t name_len,
                        const uint8_t *value, size_t value_len) {
  if (name_len > 0 && name[0] == ':') {
    if (header_is(name, name_len, ":path")) {
      free(call->path);
      call->path = copy_string(value, value_len);
    } else if (header_is(name, name_len, ":method")) {
      call->method_is_post = header_is(value, value_len, "POST");
    }
    return;
  }
  if (header_is(name, name_len, "content-type")) {
    /* PROTOCOL-HTTP2: "application/grpc" [("+proto" / "+json" / {custom})] */
    call->content_type_is_grpc =
        value_len >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
        (value_len == 16 || value[16] == '+' || value[16] == ';');
  } else if (header_is(name, name_len, "grpc-timeout")) {
    if (rpc_timeout_parse((const char *)value, value_len, &call->timeout_ns) !=
        0) {
      call->timeout_invalid = true;
    }
  } else if (header_is(name, name_len, "grpc-encoding")) {
    free(call->request_encoding);
    call->request_encoding = header_is(value, value_len, "identity")
                                 ? NULL
                                 : copy_string(value, value_len);
  } else if (header_is(name, name_len, "grpc-accept-encoding")) {
    call->accepts_gzip = list_contains(value, value_len, "gzip");
  } else if (!rpc_metadata_key_is_reserved((const char *)name, name_len)) {
    if (rpc_metadata_add_wire(&call->request_metadata, (const char *)name,
                              name_len, (const char *)value, value_len) != 0) {
      call->metadata_invalid = true;
    }
  }
}

/* Adds every entry of md to nva as wire headers; values of -bin keys are
 * encoded into scratch, which must stay alive until nva is submitted.
 * Pointers into scratch are taken only once it is complete. */
static int add_metadata_headers(const rpc_metadata *md, nghttp2_nv *nva,
                                size_t *count, rpc_buffer *scratch) {
  size_t first = *count;
  for (size_t i = 0; i < md->count; i++) {
    size_t before = scratch->len;
    if (rpc_metadata_wire_value(&md->entries[i], scratch) != 0) {
      return -1;
    }
    nva[first + i] = (nghttp2_nv){(uint8_t *)md->entries[i].key, NULL,
                                  md->entries[i].key_len, scratch->len - before,
                                  NGHTTP2_NV_FLAG_NONE};
  }
  size_t offset = 0;
  for (size_t i = 0; i < md->count; i++) {
    nva[first + i].value = scratch->data + offset;
    offset += nva[first + i].valuelen;
  }
  *count += md->count;
  return 0;
}

static ssize_t read_response(nghttp2_session *session, int32_t stream_id,
                             uint8_t *buf, size_t length, uint32_t *flags,
                             nghttp2_data_source *source, void *user_data);

/* Status headers (grpc-status, grpc-message, trailing metadata) for
 * trailers or a trailers-only response; nva has room for them. Each
 * scratch buffer is filled before pointers into it are taken, and must
 * outlive the submission. */
static int add_status_headers(rpc_call *call, nghttp2_nv *nva, size_t *count,
                              char *code_text, rpc_buffer *metadata_scratch,
                              rpc_buffer *message_scratch) {
  snprintf(code_text, 12, "%d", (int)call->status_code);
  nva[(*count)++] =
      (nghttp2_nv){(uint8_t *)"grpc-status", (uint8_t *)code_text, 11,
                   strlen(code_text), NGHTTP2_NV_FLAG_NO_COPY_NAME};
  if (add_metadata_headers(&call->trailing_metadata, nva, count,
                           metadata_scratch) != 0) {
    return -1;
  }
  if (call->status_message != NULL && call->status_message[0] != '\0') {
    if (rpc_percent_encode(call->status_message, strlen(call->status_message),
                           message_scratch) != 0) {
      return -1;
    }
    nva[(*count)++] =
        (nghttp2_nv){(uint8_t *)"grpc-message", message_scratch->data, 12,
                     message_scratch->len, NGHTTP2_NV_FLAG_NO_COPY_NAME};
  }
  return 0;
}

/* Submits the response HEADERS, with the data provider unless the
 * response is trailers-only. Returns 0 or an nghttp2 error. */
static int submit_headers(rpc_call *call, bool trailers_only) {
  nghttp2_nv nva[FIXED_RESPONSE_HEADERS + 2 * RPC_CALL_MAX_METADATA + 2];
  size_t count = 0;
  rpc_buffer scratch[3];
  char code_text[12];
  int rv = -1;

  for (size_t i = 0; i < 3; i++) {
    rpc_buffer_init(&scratch[i]);
  }
  nva[count++] = (nghttp2_nv)NV_STATIC(":status", "200");
  nva[count++] = (nghttp2_nv)NV_STATIC("content-type", "application/grpc");
  nva[count++] = (nghttp2_nv)NV_STATIC("grpc-accept-encoding", "identity,gzip");
  if (call->response_gzip) {
    nva[count++] = (nghttp2_nv)NV_STATIC("grpc-encoding", "gzip");
  }
  if (add_metadata_headers(&call->initial_metadata, nva, &count, &scratch[0]) !=
      0) {
    goto out;
  }
  if (trailers_only) {
    if (add_status_headers(call, nva, &count, code_text, &scratch[1],
                           &scratch[2]) != 0) {
      goto out;
    }
    rv = nghttp2_submit_response(call->stream.session, call->stream.id, nva,
                                 count, NULL);
  } else {
    nghttp2_data_provider provider = {.source.ptr = call,
                                      .read_callback = read_response};
    rv = nghttp2_submit_response(call->stream.session, call->stream.id, nva,
                                 count, &provider);
  }
  call->headers_sent = true;
out:
  for (size_t i = 0; i < 3; i++) {
    rpc_buffer_free(&scratch[i]);
  }
  return rv;
}

static void submit_trailers(rpc_call *call) {
  nghttp2_nv nva[RPC_CALL_MAX_METADATA + 2];
  size_t count = 0;
  rpc_buffer metadata_scratch, message_scratch;
  char code_text[12];

  rpc_buffer_init(&metadata_scratch);
  rpc_buffer_init(&message_scratch);
  if (add_status_headers(call, nva, &count, code_text, &metadata_scratch,
                         &message_scratch) == 0) {
    int rv = nghttp2_submit_trailer(call->stream.session, call->stream.id, nva,
                                    count);
    if (rv != 0) {
      rpc_log_folded(RPC_LOG_WARN, "trailers_failed", "error=\"%s\"",
                     nghttp2_strerror(rv));
    }
  } else {
    nghttp2_submit_rst_stream(call->stream.session, NGHTTP2_FLAG_NONE,
                              call->stream.id, NGHTTP2_INTERNAL_ERROR);
  }
  rpc_buffer_free(&metadata_scratch);
  rpc_buffer_free(&message_scratch);
}

static ssize_t read_response(nghttp2_session *session, int32_t stream_id,
                             uint8_t *buf, size_t length, uint32_t *flags,
                             nghttp2_data_source *source, void *user_data) {
  (void)session;
  (void)stream_id;
  (void)user_data;
  rpc_call *call = source->ptr;
  bool drained;
  size_t n = rpc_stream_take_output(&call->stream, &call->send_queue,
                                    &call->send_offset, buf, length, &drained);
  if (drained) {
    if (call->status_committed) {
      /* PROTOCOL-HTTP2: the status travels in trailers after the data. */
      *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
      submit_trailers(call);
      return (ssize_t)n;
    }
    if (n == 0) {
      call->writable_wanted = call->hooks.on_writable != NULL;
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  return (ssize_t)n;
}

/* Makes sure queued data or a committed status will go out. */
static void h2_kick(rpc_call *call) {
  if (call->stream.session == NULL) {
    return;
  }
  if (!call->headers_sent) {
    bool trailers_only = call->status_committed && call->send_queue.len == 0;
    int rv = submit_headers(call, trailers_only);
    if (rv != 0) {
      rpc_log_folded(RPC_LOG_WARN, "response_failed", "error=\"%s\"",
                     rv < 0 ? nghttp2_strerror(rv) : "no memory");
      nghttp2_submit_rst_stream(call->stream.session, NGHTTP2_FLAG_NONE,
                                call->stream.id, NGHTTP2_INTERNAL_ERROR);
    }
  } else {
    /* Not deferred is fine: the provider will be called anyway. */
    (void)nghttp2_session_resume_data(call->stream.session, call->stream.id);
  }
  rpc_stream_schedule_flush(&call->stream);
}

/* Decides the final status once. The handler may still own the call. */
static void commit_status(rpc_call *call, rpc_status_code code,
                          const char *message) {
  if (call->status_committed || call->cancelled) {
    return;
  }
  call->status_committed = true;
  call->status_code = code;
  call->status_message = message != NULL ? strdup(message) : NULL;
  ev_timer_stop(call->loop, &call->deadline_timer);
  call->transport->kick(call);
}

/* Tells the handler its call ended without it. The caller holds a
 * reference of its own (the stream's, or a temporary one), so the call
 * outlives the hook even when the hook finishes it. */
static void fire_cancel(rpc_call *call, rpc_status_code reason) {
  if (call->cancelled) {
    return;
  }
  call->cancelled = true;
  ev_timer_stop(call->loop, &call->deadline_timer);
  if (call->handler_owned && call->hooks.on_cancel != NULL) {
    call->hooks.on_cancel(call, reason, call->hooks_arg);
  }
}

static void on_deadline(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  rpc_call *call = timer->data;
  call->refs++;
  commit_status(call, RPC_STATUS_DEADLINE_EXCEEDED, "deadline exceeded");
  /* The client gets the status; the handler learns it was cancelled. */
  fire_cancel(call, RPC_STATUS_DEADLINE_EXCEEDED);
  if (call->stream.session != NULL && !call->remote_closed) {
    rpc_stream_schedule_flush(&call->stream);
  }
  release(call);
}

void rpc_call_deny(rpc_call *call, rpc_status_code code, const char *message) {
  call->denied_code = code;
  free(call->denied_message);
  call->denied_message = message != NULL ? strdup(message) : NULL;
}

void rpc_call_authorize(rpc_call *call, rpc_authorize_fn authorize,
                        void *authorize_user, const char *service,
                        const char *method, const char *cert_cn,
                        const char *peer) {
  const rpc_metadata_entry *authorization =
      rpc_metadata_get(&call->request_metadata, "authorization");
  rpc_auth_request request = {
      .service = service,
      .method = method,
      .authorization =
          authorization != NULL ? (const char *)authorization->value : NULL,
      .cert_cn = cert_cn,
      .peer = peer,
  };
  char message[256] = "";
  rpc_status_code code =
      authorize(authorize_user, &request, message, sizeof(message));
  if (code != RPC_STATUS_OK) {
    rpc_call_deny(call, code, message);
  }
}

void rpc_call_fail(rpc_call *call, rpc_status_code code, const char *message) {
  if (call->status_committed || call->cancelled) {
    return;
  }
  commit_status(call, code, message);
  /* As a refused send does: the handler learns after this turn. */
  call->cancel_owed = call->handler_owned;
}

void rpc_call_begin(rpc_call *call, const rpc_method *method,
                    const char *service_name, const void *handlers,
                    void *user) {
  if (!call->method_is_post) {
    rpc_call_respond_http(call, 405, "gRPC requires POST\n");
    return;
  }
  if (!call->content_type_is_grpc) {
    /* PROTOCOL-HTTP2: a non-gRPC content-type gets HTTP 415. */
    rpc_call_respond_http(call, 415, "content-type must be application/grpc\n");
    return;
  }
  if (call->timeout_invalid) {
    commit_status(call, RPC_STATUS_INVALID_ARGUMENT,
                  "malformed grpc-timeout header");
    return;
  }
  if (call->metadata_invalid) {
    commit_status(call, RPC_STATUS_INVALID_ARGUMENT,
                  "malformed metadata (invalid key or -bin base64 value)");
    return;
  }
  if (call->request_encoding != NULL &&
      strcmp(call->request_encoding, "gzip") != 0) {
    char message[160];
    snprintf(message, sizeof(message),
             "grpc-encoding %.64s is not supported (identity, gzip are)",
             call->request_encoding);
    commit_status(call, RPC_STATUS_UNIMPLEMENTED, message);
    return;
  }
  if (method != NULL && call->denied_code != RPC_STATUS_OK) {
    commit_status(call, call->denied_code,
                  call->denied_message != NULL ? call->denied_message
                                               : "not authorized");
    return;
  }
  if (method == NULL) {
    char message[400];
    if (service_name != NULL) {
      snprintf(message, sizeof(message),
               "unknown method %.200s of service %.80s",
               call->path != NULL ? call->path : "", service_name);
    } else {
      snprintf(message, sizeof(message), "unknown service or method %.200s",
               call->path != NULL ? call->path : "(no :path)");
    }
    commit_status(call, RPC_STATUS_UNIMPLEMENTED, message);
    return;
  }
  call->method = method;
  call->handlers = handlers;
  call->user = user;
  if (call->timeout_ns > 0) {
    ev_timer_init(&call->deadline_timer, on_deadline,
                  (ev_tstamp)call->timeout_ns / 1e9, 0.);
    ev_timer_start(call->loop, &call->deadline_timer);
  }
  if (!RPC_SHAPE_HAS_SINGLE_REQUEST(method->shape)) {
    call->dispatched = true;
    call->handler_owned = true;
    call->refs++;
    if (!method->dispatch(call, NULL, handlers, user)) {
      rpc_call_finishf(call, RPC_STATUS_UNIMPLEMENTED,
                       "method %s is not implemented", method->path + 1);
    }
  }
}

static void dispatch_single(rpc_call *call) {
  call->dispatched = true;
  call->handler_owned = true;
  call->refs++;
  if (!call->method->dispatch(call, call->request, call->handlers,
                              call->user)) {
    rpc_call_finishf(call, RPC_STATUS_UNIMPLEMENTED,
                     "method %s is not implemented", call->method->path + 1);
  }
}

static int on_request_message(void *arg, bool compressed, const uint8_t *data,
                              size_t len) {
  rpc_call *call = arg;
  if (compressed && call->request_encoding == NULL) {
    commit_status(call, RPC_STATUS_INTERNAL,
                  "compressed message without grpc-encoding");
    return -1;
  }
  ProtobufCMessage *message = NULL;
  char why[200];
  int rv = rpc_message_decode(call->method->input, compressed, data, len,
                              call->max_receive_bytes, RPC_MAX_REQUEST_DEPTH,
                              &message, why, sizeof(why));
  if (rv != 0) {
    char text[400];
    switch (rv) {
    case RPC_MESSAGE_ERR_TOO_LARGE:
      commit_status(call, RPC_STATUS_RESOURCE_EXHAUSTED,
                    "decompressed message larger than the receive limit");
      break;
    case RPC_MESSAGE_ERR_CORRUPT:
      commit_status(call, RPC_STATUS_INTERNAL, "message is not valid gzip");
      break;
    case RPC_MESSAGE_ERR_PARSE:
      snprintf(text, sizeof(text), "failed to parse request as %s%s%s",
               call->method->input->name, why[0] != '\0' ? ": " : "", why);
      commit_status(call, RPC_STATUS_INVALID_ARGUMENT, text);
      break;
    case RPC_MESSAGE_ERR_INVALID:
      commit_status(call, RPC_STATUS_INVALID_ARGUMENT, why);
      break;
    default:
      commit_status(call, RPC_STATUS_RESOURCE_EXHAUSTED,
                    "out of memory receiving a message");
      break;
    }
    return -1;
  }
  if (RPC_SHAPE_HAS_SINGLE_REQUEST(call->method->shape)) {
    if (call->request != NULL) {
      protobuf_c_message_free_unpacked(message, NULL);
      commit_status(call, RPC_STATUS_INVALID_ARGUMENT,
                    "more than one request message for a unary request");
      return -1;
    }
    call->request = message;
    return 0;
  }
  if (call->hooks.on_message != NULL && call->handler_owned) {
    call->hooks.on_message(call, message, call->hooks_arg);
    if (call->hooks.takes_messages) {
      message = NULL; /* the handler's now */
    }
  }
  if (message != NULL) {
    protobuf_c_message_free_unpacked(message, NULL);
  }
  /* The hook may have finished the call: stop feeding it. */
  return call->status_committed || call->cancelled ? 1 : 0;
}

void rpc_call_on_data(rpc_call *call, const uint8_t *data, size_t len) {
  if (call->method == NULL || call->status_committed || call->cancelled) {
    return; /* answered already; the rest of the body is dropped */
  }
  call->refs++;
  int rv =
      rpc_deframer_feed(&call->deframer, data, len, on_request_message, call);
  if (rv == RPC_FRAME_ERR_TOO_LARGE) {
    char text[160];
    snprintf(text, sizeof(text),
             "received message larger than max (%zu bytes allowed)",
             call->max_receive_bytes);
    commit_status(call, RPC_STATUS_RESOURCE_EXHAUSTED, text);
  } else if (rv == RPC_FRAME_ERR_BAD_FLAG) {
    commit_status(call, RPC_STATUS_INTERNAL,
                  "invalid compressed flag in message prefix");
  } else if (rv == RPC_FRAME_ERR_NOMEM) {
    commit_status(call, RPC_STATUS_RESOURCE_EXHAUSTED,
                  "out of memory receiving a message");
  }
  release(call);
}

void rpc_call_on_remote_close(rpc_call *call) {
  call->remote_closed = true;
  if (call->method == NULL || call->status_committed || call->cancelled) {
    return;
  }
  if (rpc_deframer_is_partial(&call->deframer)) {
    commit_status(call, RPC_STATUS_INTERNAL,
                  "stream ended inside a length-prefixed message");
    return;
  }
  if (RPC_SHAPE_HAS_SINGLE_REQUEST(call->method->shape)) {
    if (call->request == NULL) {
      commit_status(call, RPC_STATUS_INVALID_ARGUMENT,
                    "no request message for a unary request");
      return;
    }
    dispatch_single(call);
    return;
  }
  if (call->hooks.on_half_close != NULL && call->handler_owned) {
    call->refs++;
    call->hooks.on_half_close(call, call->hooks_arg);
    release(call);
  }
}

void rpc_call_on_response_end(rpc_call *call) {
  if (!call->remote_closed && call->stream.session != NULL) {
    /* RFC 7540 8.1: a complete response may end the request with
     * RST_STREAM NO_ERROR. */
    nghttp2_submit_rst_stream(call->stream.session, NGHTTP2_FLAG_NONE,
                              call->stream.id, NGHTTP2_NO_ERROR);
  }
}

void rpc_call_on_stream_close(rpc_call *call) {
  rpc_stream_output_changed(&call->stream, rpc_call_pending_bytes(call), 0);
  call->stream.session = NULL;
  call->stream.connection = NULL;
  call->cancel_owed = false; /* fire_cancel below covers it */
  if (!call->status_committed) {
    fire_cancel(call, RPC_STATUS_CANCELLED);
  } else if (!call->cancelled && call->handler_owned) {
    /* The runtime answered (e.g. a receive error) while the handler still
     * runs: it must learn that nothing more will be sent. */
    fire_cancel(call, call->status_code);
  }
  call->cancelled = true;
  release(call);
}

void rpc_call_deliver_writable(rpc_call *call) {
  if (call->cancel_owed) {
    call->cancel_owed = false;
    call->writable_wanted = false;
    call->refs++;
    fire_cancel(call, call->status_code);
    release(call);
    return;
  }
  if (!call->writable_wanted) {
    return;
  }
  call->writable_wanted = false;
  if (call->hooks.on_writable != NULL && call->handler_owned &&
      !call->status_committed && !call->cancelled) {
    call->refs++;
    call->hooks.on_writable(call, call->hooks_arg);
    release(call);
  }
}

/* Data provider of a plain HTTP body: the stream ends with the body. */
static ssize_t read_plain_body(nghttp2_session *session, int32_t stream_id,
                               uint8_t *buf, size_t length, uint32_t *flags,
                               nghttp2_data_source *source, void *user_data) {
  (void)session;
  (void)stream_id;
  (void)user_data;
  rpc_call *call = source->ptr;
  bool drained;
  size_t n = rpc_stream_take_output(&call->stream, &call->send_queue,
                                    &call->send_offset, buf, length, &drained);
  if (drained) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
  }
  return (ssize_t)n;
}

void rpc_call_respond_http(rpc_call *call, int http_status, const char *body) {
  char status_text[8];
  snprintf(status_text, sizeof(status_text), "%d", http_status);
  nghttp2_nv nva[] = {
      {(uint8_t *)":status", (uint8_t *)status_text, 7, strlen(status_text),
       NGHTTP2_NV_FLAG_NO_COPY_NAME},
      NV_STATIC("content-type", "text/plain; charset=utf-8"),
  };
  call->status_committed = true;
  call->headers_sent = true;
  call->status_code = RPC_STATUS_UNKNOWN;
  nghttp2_data_provider provider = {.source.ptr = call,
                                    .read_callback = read_plain_body};
  size_t before = rpc_call_pending_bytes(call);
  int appended = rpc_buffer_append(&call->send_queue, body, strlen(body));
  rpc_stream_output_changed(&call->stream, before,
                            rpc_call_pending_bytes(call));
  if (appended != 0 ||
      nghttp2_submit_response(call->stream.session, call->stream.id, nva, 2,
                              &provider) != 0) {
    nghttp2_submit_rst_stream(call->stream.session, NGHTTP2_FLAG_NONE,
                              call->stream.id, NGHTTP2_INTERNAL_ERROR);
  }
  rpc_stream_schedule_flush(&call->stream);
}

/* Public API for handlers. */

void rpc_call_set_hooks(rpc_call *call, const rpc_call_hooks *hooks,
                        void *arg) {
  call->hooks = *hooks;
  call->hooks_arg = arg;
}

const rpc_method *rpc_call_method(const rpc_call *call) { return call->method; }

const rpc_metadata *rpc_call_request_metadata(const rpc_call *call) {
  return &call->request_metadata;
}

struct ev_loop *rpc_call_loop(const rpc_call *call) {
  return call->loop;
}

rpc_loop_thread *rpc_call_loop_thread(const rpc_call *call) {
  return call->loop_thread;
}

bool rpc_call_is_cancelled(const rpc_call *call) { return call->cancelled; }

static int add_metadata(rpc_metadata *md, const char *key, const uint8_t *value,
                        size_t value_len) {
  size_t key_len = strlen(key);
  if (md->count == RPC_CALL_MAX_METADATA ||
      !rpc_metadata_key_is_valid(key, key_len) ||
      rpc_metadata_key_is_reserved(key, key_len) ||
      (!rpc_metadata_key_is_binary(key, key_len) &&
       !rpc_metadata_value_is_valid(value, value_len))) {
    return -1;
  }
  return rpc_metadata_add(md, key, key_len, value, value_len) == 0
             ? 0
             : RPC_CALL_ERR_NOMEM;
}

int rpc_call_add_initial_metadata(rpc_call *call, const char *key,
                                  const uint8_t *value, size_t value_len) {
  if (call->headers_sent || call->status_committed) {
    return RPC_CALL_ERR_STATE;
  }
  return add_metadata(&call->initial_metadata, key, value, value_len);
}

int rpc_call_add_trailing_metadata(rpc_call *call, const char *key,
                                   const uint8_t *value, size_t value_len) {
  if (call->status_committed) {
    return RPC_CALL_ERR_STATE;
  }
  return add_metadata(&call->trailing_metadata, key, value, value_len);
}

size_t rpc_call_pending_bytes(const rpc_call *call) {
  return call->send_queue.len - call->send_offset;
}

/* Returns 0 when a message may be sent, deciding on the first one whether
 * responses announce gzip. */
static int prepare_send(rpc_call *call, size_t size) {
  /* A transport that is gone has cancelled the call (on_stream_close). */
  if (call->status_committed || call->cancelled) {
    return RPC_CALL_ERR_CLOSED;
  }
  if (!call->headers_sent && call->accepts_gzip &&
      size >= RPC_MESSAGE_GZIP_MIN_BYTES) {
    call->response_gzip = true;
  }
  return 0;
}

/* A client that does not read (a zero window) would otherwise make the
 * server buffer without limit. Returns 0 when size more bytes may be
 * queued. Otherwise the call ends at once with RESOURCE_EXHAUSTED (after
 * what is queued already), its handler learns it through on_cancel after
 * the next flush (not from inside its own send), and the result is
 * RPC_CALL_ERR_CLOSED. */
static int admit_output(rpc_call *call, size_t size) {
  size_t pending = rpc_call_pending_bytes(call);
  size_t connection_queued = rpc_stream_queued_output(&call->stream);
  bool streamed = call->method != NULL &&
                  (call->method->shape == RPC_SHAPE_SERVER_STREAMING ||
                   call->method->shape == RPC_SHAPE_BIDI_STREAMING);
  char message[160];
  if (streamed && pending > 0 &&
      size > call->max_stream_output_bytes - pending) {
    snprintf(message, sizeof(message),
             "client is not reading: %zu bytes queued", pending);
  } else if (size > call->max_connection_output_bytes ||
             connection_queued > call->max_connection_output_bytes - size) {
    snprintf(message, sizeof(message),
             "client is not reading: %zu bytes queued on the connection "
             "(a %zu-byte response would pass %zu)",
             connection_queued, size, call->max_connection_output_bytes);
  } else {
    return 0;
  }
  commit_status(call, RPC_STATUS_RESOURCE_EXHAUSTED, message);
  call->cancel_owed = call->handler_owned;
  return RPC_CALL_ERR_CLOSED;
}

static int sent(rpc_call *call, size_t before, int rv) {
  rpc_stream_output_changed(&call->stream, before,
                            rpc_call_pending_bytes(call));
  if (rv != 0) {
    return rv == RPC_MESSAGE_ERR_TOO_LARGE ? RPC_CALL_ERR_TOO_LARGE
                                           : RPC_CALL_ERR_NOMEM;
  }
  call->transport->kick(call);
  return 0;
}

int rpc_call_send(rpc_call *call, const ProtobufCMessage *message) {
  size_t size = protobuf_c_message_get_packed_size(message);
  int rv = prepare_send(call, size);
  if (rv == 0) {
    rv = admit_output(call, RPC_FRAME_HEADER_SIZE + size);
  }
  size_t before = rpc_call_pending_bytes(call);
  return rv != 0 ? rv
                 : sent(call, before,
                        rpc_message_encode(&call->send_queue, message,
                                           call->response_gzip));
}

int rpc_call_send_packed(rpc_call *call, const uint8_t *data, size_t size) {
  int rv = prepare_send(call, size);
  if (rv == 0) {
    rv = admit_output(call, RPC_FRAME_HEADER_SIZE + size);
  }
  size_t before = rpc_call_pending_bytes(call);
  return rv != 0 ? rv
                 : sent(call, before,
                        rpc_message_encode_packed(&call->send_queue, data, size,
                                                  call->response_gzip));
}

void rpc_call_finish(rpc_call *call, rpc_status_code code,
                     const char *message) {
  if (!call->handler_owned) {
    rpc_log(RPC_LOG_ERROR, "call_finish_twice", "path=%s",
            call->path != NULL ? call->path : "");
    return;
  }
  commit_status(call, code, message);
  call->handler_owned = false;
  release(call);
}

void rpc_call_finishf(rpc_call *call, rpc_status_code code, const char *fmt,
                      ...) {
  char message[512];
  va_list args;
  va_start(args, fmt);
  vsnprintf(message, sizeof(message), fmt, args);
  va_end(args);
  rpc_call_finish(call, code, message);
}

/* Finishes a unary call after the send of its answer returned rv. */
static void finish_reply(rpc_call *call, int rv) {
  switch (rv) {
  case 0:
  case RPC_CALL_ERR_CLOSED:
    rpc_call_finish(call, RPC_STATUS_OK, NULL);
    break;
  case RPC_CALL_ERR_TOO_LARGE:
    rpc_call_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED,
                    "response message too large");
    break;
  default:
    rpc_call_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED,
                    "out of memory sending the response");
    break;
  }
}

void rpc_call_reply(rpc_call *call, const ProtobufCMessage *message) {
  finish_reply(call, rpc_call_send(call, message));
}

void rpc_call_reply_packed(rpc_call *call, const uint8_t *data, size_t size) {
  finish_reply(call, rpc_call_send_packed(call, data, size));
}
