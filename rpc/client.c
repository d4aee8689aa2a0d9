/* client.c: the gRPC client. A channel owns connections (the current one,
 * and any still draining after a GOAWAY); a call is one stream. Closes are
 * delivered from the loop, never from inside the call that caused them.
 *
 * Lifetimes: a call is freed right after its on_close. nghttp2 may still
 * hold its stream then (a RST_STREAM not yet written), so nothing nghttp2
 * keeps points at the call: the stream user data is cleared on close and
 * the data provider finds the call through it. A connection lives until
 * the last call bound to it has closed. */
#include "rpc/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <ev.h>
#include <nghttp2/nghttp2.h>

#include "rpc/compress.h"
#include "rpc/frame.h"
#include "rpc/h2_io.h"
#include "rpc/message.h"
#include "rpc/socket.h"
#include "rpc/timeout.h"
#include "rpc/wire_check.h"

#define READ_BUFFER_SIZE 65536
#define READS_PER_EVENT 16
#define DEFAULT_MAX_RECEIVE (4u << 20)
#define DEFAULT_CONNECT_TIMEOUT 10.
#define STREAM_WINDOW_BYTES (1 << 20)
#define CONNECTION_WINDOW_BYTES (16 << 20)
/* Custom metadata entries a request may carry. */
#define MAX_REQUEST_METADATA 64
/* Fixed request headers: pseudo-headers, content-type, te, user-agent,
 * grpc-accept-encoding, grpc-encoding, grpc-timeout. */
#define FIXED_REQUEST_HEADERS 10

typedef struct connection connection;

typedef enum connection_state {
  CONNECTING,
  HANDSHAKING,
  READY,
  FAILED,
} connection_state;

struct connection {
  rpc_channel *channel;
  rpc_socket socket;
  ev_io read_watcher, write_watcher;
  ev_timer connect_timer; /* connect and TLS handshake, all addresses */
  connection_state state;
  nghttp2_session *session;
  rpc_buffer out; /* output not yet written */
  size_t out_offset;
  struct addrinfo *addresses; /* the target resolved, tried in turn */
  struct addrinfo *address;   /* the one being tried */
  size_t calls;               /* calls bound here whose on_close is owed */
  bool goaway;                /* no new calls: received GOAWAY */
  connection *next;
};

struct rpc_client_call {
  rpc_channel *channel;
  connection *connection; /* NULL until submitted */
  int32_t stream_id;      /* -1 until submitted and once nghttp2 closed it */
  const rpc_method *method;
  rpc_client_hooks hooks;
  void *arg;
  rpc_stream *stream; /* the blocking stream this call feeds, or NULL */
  rpc_metadata request_metadata;
  uint64_t timeout_ms;
  bool compress;
  rpc_buffer send_queue; /* framed messages nghttp2 has not taken yet */
  size_t send_offset;
  bool send_closed;
  rpc_deframer deframer;
  bool response_gzip;
  bool headers_seen;  /* the (final) response HEADERS */
  bool trailers_seen; /* trailers, or a trailers-only response */
  bool reset;         /* the server sent RST_STREAM */
  int http_status;
  bool content_type_ok;
  bool has_grpc_status;
  rpc_metadata initial;
  rpc_metadata trailers;
  rpc_status status;
  bool local_status; /* status decided here (deadline, cancel, errors) */
  bool closing;      /* queued for on_close */
  ev_timer deadline;
  rpc_client_call *prev, *next; /* the channel's calls not yet closed */
  rpc_client_call *closing_next;
};

struct rpc_channel {
  struct ev_loop *loop;
  bool owns_loop;
  char *target;
  char *host; /* of target, without IPv6 brackets */
  char *port;
  char *authority;
  char *server_name;
  bool server_name_is_ip; /* no SNI for address literals (RFC 6066) */
  SSL_CTX *tls;
  size_t max_receive;      /* bytes */
  double connect_timeout;  /* s */
  connection *current;     /* where new calls go */
  connection *connections; /* all, current included */
  rpc_client_call *calls;
  rpc_client_call *closing; /* on_close owed */
  ev_prepare flusher;
  ev_idle closer; /* active while closes are owed: the loop does not block */
  uint8_t read_buffer[READ_BUFFER_SIZE];
};

/* A response held by a blocking stream: decoded, or for a raw method the
 * serialized bytes (malloc'd). */
typedef struct stream_item {
  ProtobufCMessage *message;
  uint8_t *data;
  size_t size;
} stream_item;

struct rpc_stream {
  rpc_channel *channel;
  rpc_client_call *call; /* NULL once closed */
  bool raw;              /* the method is raw: items hold bytes */
  stream_item *items;    /* received, not yet read */
  size_t head, count, cap;
  bool closed;
  rpc_status status;
  rpc_metadata initial;
  rpc_metadata trailers;
};

static nghttp2_session_callbacks *client_callbacks;
static pthread_once_t callbacks_once = PTHREAD_ONCE_INIT;

static connection *connection_open(rpc_channel *channel);
static void connection_fail(connection *c, const char *why);
static int stream_push(rpc_stream *stream, stream_item item);
static void stream_closed(rpc_stream *stream, rpc_client_call *call);

/* Closing calls. */

/* Decides the status here unless one was already decided or received. */
static void set_local_status(rpc_client_call *call, rpc_status_code code,
                             const char *message) {
  if (call->local_status || call->has_grpc_status) {
    return;
  }
  call->local_status = true;
  rpc_status_set(&call->status, code, "%s", message);
}

/* Queues on_close; delivered by the channel's idle watcher. */
static void schedule_close(rpc_client_call *call) {
  if (call->closing) {
    return;
  }
  call->closing = true;
  ev_timer_stop(call->channel->loop, &call->deadline);
  call->closing_next = call->channel->closing;
  call->channel->closing = call;
  ev_idle_start(call->channel->loop, &call->channel->closer);
}

/* Ends the call here with code: resets its stream (if open) and queues
 * on_close. */
static void abort_call(rpc_client_call *call, rpc_status_code code,
                       const char *message) {
  set_local_status(call, code, message);
  if (call->connection != NULL && call->stream_id > 0 &&
      call->connection->session != NULL) {
    (void)nghttp2_submit_rst_stream(call->connection->session,
                                    NGHTTP2_FLAG_NONE, call->stream_id,
                                    NGHTTP2_CANCEL);
  }
  schedule_close(call);
}

static void call_free(rpc_client_call *call) {
  rpc_metadata_free(&call->request_metadata);
  rpc_metadata_free(&call->initial);
  rpc_metadata_free(&call->trailers);
  rpc_status_clear(&call->status);
  rpc_buffer_free(&call->send_queue);
  rpc_deframer_free(&call->deframer);
  free(call);
}

static void deliver_close(rpc_client_call *call) {
  rpc_channel *channel = call->channel;
  if (call->prev != NULL) {
    call->prev->next = call->next;
  } else {
    channel->calls = call->next;
  }
  if (call->next != NULL) {
    call->next->prev = call->prev;
  }
  connection *c = call->connection;
  if (c != NULL) {
    c->calls--;
    if (c->session != NULL && call->stream_id > 0) {
      /* The stream may outlive the call (RST_STREAM not yet written). */
      (void)nghttp2_session_set_stream_user_data(c->session, call->stream_id,
                                                 NULL);
    }
  }
  if (call->stream != NULL) {
    stream_closed(call->stream, call);
  } else if (call->hooks.on_close != NULL) {
    call->hooks.on_close(call, &call->status, &call->trailers, call->arg);
  }
  call_free(call);
}

/* Delivers every owed on_close. */
static void deliver_closes(rpc_channel *channel) {
  while (channel->closing != NULL) {
    rpc_client_call *call = channel->closing;
    channel->closing = call->closing_next;
    deliver_close(call);
  }
  ev_idle_stop(channel->loop, &channel->closer);
}

static void on_idle(struct ev_loop *loop, ev_idle *watcher, int events) {
  (void)loop;
  (void)events;
  deliver_closes(watcher->data);
}

/* Output. */

static int connection_flush(connection *c) {
  int rv = rpc_h2_flush(c->state == READY ? c->session : NULL, &c->socket,
                        &c->out, &c->out_offset);
  if (rv == RPC_H2_BLOCKED) {
    ev_io_start(c->channel->loop, &c->write_watcher);
  } else if (rv == RPC_H2_FLUSHED) {
    ev_io_stop(c->channel->loop, &c->write_watcher);
  }
  return rv < 0 ? -1 : 0;
}

static void connection_free(connection *c) {
  rpc_channel *channel = c->channel;
  ev_io_stop(channel->loop, &c->read_watcher);
  ev_io_stop(channel->loop, &c->write_watcher);
  ev_timer_stop(channel->loop, &c->connect_timer);
  for (connection **link = &channel->connections; *link != NULL;
       link = &(*link)->next) {
    if (*link == c) {
      *link = c->next;
      break;
    }
  }
  if (channel->current == c) {
    channel->current = NULL;
  }
  nghttp2_session_del(c->session);
  rpc_socket_close(&c->socket);
  rpc_buffer_free(&c->out);
  if (c->addresses != NULL) {
    freeaddrinfo(c->addresses);
  }
  free(c);
}

/* Flushes every connection before the loop waits, and drops connections
 * that are done: failed, or drained (after GOAWAY the session wants
 * neither to read nor to write), once no call is bound to them. */
static void on_prepare(struct ev_loop *loop, ev_prepare *watcher, int events) {
  (void)loop;
  (void)events;
  rpc_channel *channel = watcher->data;
  for (connection *c = channel->connections, *next; c != NULL; c = next) {
    next = c->next;
    if (c->state == READY && connection_flush(c) != 0) {
      connection_fail(c, "connection lost while writing");
    }
    if (c->state == READY && !nghttp2_session_want_read(c->session) &&
        !nghttp2_session_want_write(c->session)) {
      connection_fail(c, "the connection was shut down");
    }
    if (c->state == FAILED && c->calls == 0) {
      connection_free(c);
    }
  }
}

/* Responses. */

static rpc_client_call *stream_call(nghttp2_session *session, int32_t id) {
  return nghttp2_session_get_stream_user_data(session, id);
}

/* Deframer callback. Returns 0, or STOP_FEEDING once the call has ended
 * (here, or in a hook that cancelled it). */
enum { STOP_FEEDING = 1 };

/* A response of a raw method: inflated, then handed over as bytes. */
static int on_raw_message(rpc_client_call *call, bool compressed,
                          const uint8_t *data, size_t len) {
  rpc_buffer inflated;
  rpc_buffer_init(&inflated);
  if (compressed) {
    int rv =
        rpc_gzip_decompress(data, len, call->channel->max_receive, &inflated);
    if (rv != 0) {
      abort_call(call,
                 rv == RPC_COMPRESS_ERR_TOO_LARGE
                     ? RPC_STATUS_RESOURCE_EXHAUSTED
                     : RPC_STATUS_INTERNAL,
                 rv == RPC_COMPRESS_ERR_TOO_LARGE
                     ? "decompressed response larger than the receive limit"
                     : "cannot decompress a response message");
      return STOP_FEEDING;
    }
    data = inflated.data;
    len = inflated.len;
  }
  if (call->stream != NULL) {
    uint8_t *copy = malloc(len > 0 ? len : 1);
    if (copy != NULL && len > 0) {
      memcpy(copy, data, len);
    }
    if (copy == NULL ||
        stream_push(call->stream, (stream_item){NULL, copy, len}) != 0) {
      free(copy);
      rpc_buffer_free(&inflated);
      abort_call(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      return STOP_FEEDING;
    }
  } else if (call->hooks.on_packed_message != NULL) {
    call->hooks.on_packed_message(call, data, len, call->arg);
  }
  rpc_buffer_free(&inflated);
  return 0;
}

static int on_message(void *arg, bool compressed, const uint8_t *data,
                      size_t len) {
  rpc_client_call *call = arg;
  if (call->closing) {
    return STOP_FEEDING;
  }
  if (compressed && !call->response_gzip) {
    abort_call(call, RPC_STATUS_INTERNAL,
               "compressed response without grpc-encoding gzip");
    return STOP_FEEDING;
  }
  if (call->method->output == NULL) {
    return on_raw_message(call, compressed, data, len);
  }
  ProtobufCMessage *message = NULL;
  char why[200];
  int rv = rpc_message_decode(call->method->output, compressed, data, len,
                              call->channel->max_receive, RPC_MAX_MESSAGE_DEPTH,
                              &message, why, sizeof(why));
  if (rv != 0) {
    /* A response that cannot be parsed is INTERNAL (gRPC's convention). */
    char text[300];
    snprintf(text, sizeof(text), "failed to parse response%s%s",
             why[0] != '\0' ? ": " : "", why);
    abort_call(call,
               rv == RPC_MESSAGE_ERR_TOO_LARGE ? RPC_STATUS_RESOURCE_EXHAUSTED
                                               : RPC_STATUS_INTERNAL,
               rv == RPC_MESSAGE_ERR_PARSE || rv == RPC_MESSAGE_ERR_INVALID
                   ? text
               : rv == RPC_MESSAGE_ERR_TOO_LARGE
                   ? "decompressed response larger than the receive limit"
                   : "cannot decompress a response message");
    return STOP_FEEDING;
  }
  if (call->stream != NULL) {
    /* The blocking stream takes the message as it is: no copy. */
    if (stream_push(call->stream, (stream_item){message, NULL, 0}) != 0) {
      protobuf_c_message_free_unpacked(message, NULL);
      abort_call(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      return STOP_FEEDING;
    }
    return 0;
  }
  if (call->hooks.on_message != NULL) {
    call->hooks.on_message(call, message, call->arg);
  }
  protobuf_c_message_free_unpacked(message, NULL);
  return 0;
}

static bool is(const uint8_t *name, size_t len, const char *want) {
  return len == strlen(want) && memcmp(name, want, len) == 0;
}

/* "application/grpc", alone or followed by "+proto", ";charset" etc. */
static bool is_grpc_content_type(const uint8_t *value, size_t len) {
  static const char prefix[] = "application/grpc";
  size_t n = sizeof(prefix) - 1;
  return len >= n && strncasecmp((const char *)value, prefix, n) == 0 &&
         (len == n || value[n] == '+' || value[n] == ';');
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame,
                     const uint8_t *name, size_t name_len, const uint8_t *value,
                     size_t value_len, uint8_t flags, void *user_data) {
  (void)flags;
  (void)user_data;
  rpc_client_call *call = stream_call(session, frame->hd.stream_id);
  if (call == NULL || call->closing || frame->hd.type != NGHTTP2_HEADERS) {
    return 0;
  }
  /* PROTOCOL-HTTP2: Trailers-Only carries the status in the first HEADERS
   * (with END_STREAM). nghttp2 has checked the header syntax, and name
   * and value are NUL-terminated. */
  bool trailers =
      call->headers_seen || (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (is(name, name_len, ":status")) {
    call->http_status = atoi((const char *)value);
  } else if (is(name, name_len, "content-type")) {
    call->content_type_ok = is_grpc_content_type(value, value_len);
  } else if (is(name, name_len, "grpc-encoding")) {
    call->response_gzip = is(value, value_len, "gzip");
  } else if (is(name, name_len, "grpc-status")) {
    int code;
    if (trailers && !call->local_status &&
        rpc_status_code_parse((const char *)value, value_len, &code) == 0) {
      call->has_grpc_status = true;
      call->status.code = code <= RPC_STATUS_CODE_MAX ? (rpc_status_code)code
                                                      : RPC_STATUS_UNKNOWN;
    }
  } else if (is(name, name_len, "grpc-message")) {
    rpc_buffer decoded;
    rpc_buffer_init(&decoded);
    if (trailers && !call->local_status &&
        rpc_percent_decode((const char *)value, value_len, &decoded) == 0) {
      free(call->status.message);
      call->status.message = (char *)decoded.data; /* NUL-terminated */
    } else {
      rpc_buffer_free(&decoded);
    }
  } else if (!rpc_metadata_key_is_reserved((const char *)name, name_len)) {
    /* A malformed -bin value is dropped rather than failing the call. */
    (void)rpc_metadata_add_wire(trailers ? &call->trailers : &call->initial,
                                (const char *)name, name_len,
                                (const char *)value, value_len);
  }
  return 0;
}

/* Maps how a stream ended when no grpc-status says it (PROTOCOL-HTTP2
 * "Errors" for RST_STREAM codes; "HTTP to gRPC Status Code Mapping" for
 * responses that are not gRPC). */
static void synthesize_status(rpc_client_call *call, uint32_t error_code) {
  if (call->has_grpc_status || call->local_status) {
    return;
  }
  char message[128];
  rpc_status_code code = RPC_STATUS_INTERNAL;
  if (call->reset || error_code != NGHTTP2_NO_ERROR) {
    switch (error_code) {
    case NGHTTP2_REFUSED_STREAM:
      code = RPC_STATUS_UNAVAILABLE;
      break;
    case NGHTTP2_CANCEL:
      code = RPC_STATUS_CANCELLED;
      break;
    case NGHTTP2_ENHANCE_YOUR_CALM:
      code = RPC_STATUS_RESOURCE_EXHAUSTED;
      break;
    case NGHTTP2_INADEQUATE_SECURITY:
      code = RPC_STATUS_PERMISSION_DENIED;
      break;
    default:
      code = RPC_STATUS_INTERNAL;
      break;
    }
    snprintf(message, sizeof(message), "stream reset: %s",
             nghttp2_http2_strerror(error_code));
  } else if (!call->headers_seen) {
    code = RPC_STATUS_INTERNAL;
    snprintf(message, sizeof(message), "stream ended without a response");
  } else if (call->http_status != 200) {
    code = rpc_status_from_http(call->http_status);
    snprintf(message, sizeof(message), "HTTP status %d", call->http_status);
  } else if (!call->content_type_ok) {
    code = RPC_STATUS_UNKNOWN;
    snprintf(message, sizeof(message), "response is not gRPC");
  } else if (call->trailers_seen) {
    code = RPC_STATUS_UNKNOWN;
    snprintf(message, sizeof(message), "no grpc-status in the trailers");
  } else {
    code = RPC_STATUS_INTERNAL;
    snprintf(message, sizeof(message),
             "server closed the stream without sending trailers");
  }
  set_local_status(call, code, message);
}

/* The server's side of the stream ended (END_STREAM) or the stream
 * closed: the call is over whatever is still to send. */
static void finish_call(rpc_client_call *call, uint32_t error_code) {
  if (call->closing) {
    return;
  }
  if (rpc_deframer_is_partial(&call->deframer) && !call->local_status &&
      (!call->has_grpc_status || call->status.code == RPC_STATUS_OK)) {
    call->has_grpc_status = false;
    set_local_status(call, RPC_STATUS_INTERNAL, "truncated response message");
  }
  synthesize_status(call, error_code);
  schedule_close(call);
}

/* The first response HEADERS: a response that is not gRPC ends the call
 * at once with the status PROTOCOL-HTTP2 maps it to. */
static void on_response_headers(rpc_client_call *call, bool end_stream) {
  call->headers_seen = true;
  if (end_stream) {
    call->trailers_seen = true; /* Trailers-Only */
    return;
  }
  if (call->http_status != 200) {
    char message[64];
    snprintf(message, sizeof(message), "HTTP status %d", call->http_status);
    abort_call(call, rpc_status_from_http(call->http_status), message);
    return;
  }
  if (!call->content_type_ok) {
    abort_call(call, RPC_STATUS_UNKNOWN, "response is not gRPC");
    return;
  }
  if (call->stream != NULL) {
    rpc_metadata_free(&call->stream->initial);
    call->stream->initial = call->initial;
    rpc_metadata_init(&call->initial);
  } else if (call->hooks.on_initial_metadata != NULL) {
    call->hooks.on_initial_metadata(call, &call->initial, call->arg);
  }
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data) {
  connection *c = user_data;
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    /* New calls go to a new connection; this one drains. nghttp2 closes
     * the streams above last_stream_id with REFUSED_STREAM: UNAVAILABLE. */
    c->goaway = true;
    if (c->channel->current == c) {
      c->channel->current = NULL;
    }
    return 0;
  }
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA &&
      frame->hd.type != NGHTTP2_RST_STREAM) {
    return 0;
  }
  rpc_client_call *call = stream_call(session, frame->hd.stream_id);
  if (call == NULL || call->closing) {
    return 0;
  }
  if (frame->hd.type == NGHTTP2_RST_STREAM) {
    call->reset = true; /* even NO_ERROR: PROTOCOL-HTTP2 maps it INTERNAL */
    return 0;
  }
  bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (frame->hd.type == NGHTTP2_HEADERS) {
    if (!call->headers_seen && call->http_status / 100 == 1 && !end_stream) {
      /* 1xx: informational, the response is still to come. */
      call->http_status = 0;
      rpc_metadata_free(&call->initial);
      rpc_metadata_init(&call->initial);
      return 0;
    }
    if (!call->headers_seen) {
      on_response_headers(call, end_stream);
    } else {
      call->trailers_seen = true;
    }
  }
  if (end_stream && !call->closing) {
    /* The response is complete. If our side is still open, tell the
     * server we will send no more (RFC 7540 8.1: RST_STREAM NO_ERROR). */
    if (nghttp2_session_get_stream_local_close(session, frame->hd.stream_id) ==
        0) {
      (void)nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE,
                                      frame->hd.stream_id, NGHTTP2_NO_ERROR);
    }
    finish_call(call, NGHTTP2_NO_ERROR);
  }
  return 0;
}

static int on_data_chunk_recv(nghttp2_session *session, uint8_t flags,
                              int32_t stream_id, const uint8_t *data,
                              size_t len, void *user_data) {
  (void)flags;
  (void)user_data;
  rpc_client_call *call = stream_call(session, stream_id);
  if (call == NULL || call->closing) {
    return 0;
  }
  int rv = rpc_deframer_feed(&call->deframer, data, len, on_message, call);
  if (rv == RPC_FRAME_ERR_TOO_LARGE) {
    abort_call(call, RPC_STATUS_RESOURCE_EXHAUSTED,
               "response message larger than the receive limit");
  } else if (rv == RPC_FRAME_ERR_NOMEM) {
    abort_call(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  } else if (rv < 0) {
    abort_call(call, RPC_STATUS_INTERNAL, "malformed response framing");
  }
  return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id,
                           uint32_t error_code, void *user_data) {
  connection *c = user_data;
  rpc_client_call *call = stream_call(session, stream_id);
  if (call == NULL) {
    return 0;
  }
  call->stream_id = -1;
  if (error_code == NGHTTP2_REFUSED_STREAM && c->goaway && !call->reset) {
    /* Above the GOAWAY's last_stream_id: never processed. */
    set_local_status(call, RPC_STATUS_UNAVAILABLE,
                     "the server went away before handling the call");
  }
  finish_call(call, error_code);
  return 0;
}

/* A request HEADERS that could not go out opened no stream, so no
 * on_stream_close follows: most often a GOAWAY arrived first. */
static int on_frame_not_send(nghttp2_session *session,
                             const nghttp2_frame *frame, int lib_error_code,
                             void *user_data) {
  (void)session;
  (void)lib_error_code;
  connection *c = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS ||
      frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
    return 0;
  }
  for (rpc_client_call *call = c->channel->calls; call; call = call->next) {
    if (call->connection == c && call->stream_id == frame->hd.stream_id) {
      call->stream_id = -1;
      set_local_status(call, RPC_STATUS_UNAVAILABLE,
                       "the connection went away before the call started");
      schedule_close(call);
      break;
    }
  }
  return 0;
}

static void make_callbacks(void) {
  nghttp2_session_callbacks *callbacks;
  if (nghttp2_session_callbacks_new(&callbacks) != 0) {
    return;
  }
  nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks,
                                                       on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks,
                                                            on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks,
                                                         on_stream_close);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(callbacks,
                                                           on_frame_not_send);
  client_callbacks = callbacks;
}

/* Requests. */

/* The data provider: the call's queued messages. It finds the call
 * through the stream user data, which is NULL once the call has closed. */
static ssize_t read_request(nghttp2_session *session, int32_t stream_id,
                            uint8_t *buf, size_t length, uint32_t *flags,
                            nghttp2_data_source *source, void *user_data) {
  (void)source;
  (void)user_data;
  rpc_client_call *call = stream_call(session, stream_id);
  if (call == NULL || call->closing) {
    return NGHTTP2_ERR_DEFERRED; /* a RST_STREAM is on its way */
  }
  size_t queued = call->send_queue.len - call->send_offset;
  size_t n =
      rpc_buffer_take(&call->send_queue, &call->send_offset, buf, length);
  if (n == queued) {
    if (call->send_closed) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
    } else if (n == 0) {
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  return (ssize_t)n;
}

#define NV(name, value)                                                        \
  ((nghttp2_nv){(uint8_t *)(name), (uint8_t *)(value), strlen(name),           \
                strlen(value), NGHTTP2_NV_FLAG_NONE})

enum { SUBMITTED = 0, WAITING = 1, NEEDS_CONNECTION = 2 };

/* Opens the call's stream on the current connection. Returns SUBMITTED,
 * WAITING (the connection is not ready yet), NEEDS_CONNECTION (this one
 * has run out of stream ids) or -1. */
static int submit(rpc_client_call *call) {
  rpc_channel *channel = call->channel;
  connection *c = channel->current;
  if (c == NULL || c->state != READY) {
    return WAITING;
  }
  size_t count = 0;
  nghttp2_nv nva[FIXED_REQUEST_HEADERS + MAX_REQUEST_METADATA];
  char timeout[RPC_TIMEOUT_TEXT_SIZE];
  nva[count++] = NV(":method", "POST");
  nva[count++] = NV(":scheme", channel->tls != NULL ? "https" : "http");
  nva[count++] = NV(":path", call->method->path);
  nva[count++] = NV(":authority", channel->authority);
  nva[count++] = NV("content-type", "application/grpc");
  nva[count++] = NV("te", "trailers");
  nva[count++] = NV("grpc-accept-encoding", "identity,gzip");
  nva[count++] = NV("user-agent", "jobhub-c/" JOBHUB_VERSION);
  if (call->compress) {
    nva[count++] = NV("grpc-encoding", "gzip");
  }
  if (call->timeout_ms > 0) {
    /* What is left of the deadline: the call may have waited for the
     * connection. */
    double left = ev_timer_remaining(channel->loop, &call->deadline);
    uint64_t ns = left >= 1.8e10 ? UINT64_MAX
                  : left > 1e-9  ? (uint64_t)(left * 1e9)
                                 : 1;
    rpc_timeout_format(ns, timeout);
    nva[count++] = NV("grpc-timeout", timeout);
  }
  /* -bin values go out as base64, each in its own buffer. */
  rpc_buffer values[MAX_REQUEST_METADATA];
  size_t md_count = call->request_metadata.count;
  int rv = -1;
  for (size_t i = 0; i < md_count; i++) {
    rpc_buffer_init(&values[i]);
  }
  for (size_t i = 0; i < md_count; i++) {
    const rpc_metadata_entry *entry = &call->request_metadata.entries[i];
    if (rpc_metadata_wire_value(entry, &values[i]) != 0) {
      goto out;
    }
    nva[count++] =
        (nghttp2_nv){(uint8_t *)entry->key, values[i].data, entry->key_len,
                     values[i].len, NGHTTP2_NV_FLAG_NONE};
  }
  nghttp2_data_provider provider = {.source.ptr = NULL,
                                    .read_callback = read_request};
  int32_t id =
      nghttp2_submit_request(c->session, NULL, nva, count, &provider, call);
  if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) {
    /* This connection has used all its stream ids: it drains. */
    c->goaway = true;
    channel->current = NULL;
    rv = NEEDS_CONNECTION;
    goto out;
  }
  if (id < 0) {
    goto out;
  }
  call->stream_id = id;
  call->connection = c;
  c->calls++;
  rv = SUBMITTED;
out:
  for (size_t i = 0; i < md_count; i++) {
    rpc_buffer_free(&values[i]);
  }
  return rv;
}

/* Starts the call on the current connection, opening one if there is
 * none; the call waits if it is not ready yet. */
static void dispatch(rpc_client_call *call) {
  rpc_channel *channel = call->channel;
  for (int attempt = 0; attempt < 2 && !call->closing; attempt++) {
    if (channel->current == NULL && connection_open(channel) == NULL) {
      abort_call(call, RPC_STATUS_UNAVAILABLE, "out of memory");
      return;
    }
    if (call->closing) {
      return; /* the connection failed at once */
    }
    int rv = submit(call);
    if (rv < 0) {
      abort_call(call, RPC_STATUS_INTERNAL, "cannot start the stream");
    }
    if (rv != NEEDS_CONNECTION) {
      return;
    }
  }
}

/* Connections. */

static void connection_fail(connection *c, const char *why) {
  if (c->state == FAILED) {
    return;
  }
  rpc_channel *channel = c->channel;
  bool was_current = channel->current == c;
  c->state = FAILED;
  ev_io_stop(channel->loop, &c->read_watcher);
  ev_io_stop(channel->loop, &c->write_watcher);
  ev_timer_stop(channel->loop, &c->connect_timer);
  if (was_current) {
    channel->current = NULL;
  }
  for (rpc_client_call *call = channel->calls; call; call = call->next) {
    if (call->connection == c || (call->connection == NULL && was_current)) {
      set_local_status(call, RPC_STATUS_UNAVAILABLE, why);
      schedule_close(call);
    }
  }
}

static void submit_waiting_calls(rpc_channel *channel) {
  for (rpc_client_call *call = channel->calls; call; call = call->next) {
    if (call->connection == NULL && !call->closing) {
      dispatch(call);
    }
  }
}

static int start_session(connection *c) {
  if (!rpc_socket_alpn_is_h2(&c->socket)) {
    connection_fail(c, "the server did not negotiate h2 (ALPN)");
    return -1;
  }
  if (nghttp2_session_client_new(&c->session, client_callbacks, c) != 0) {
    connection_fail(c, "out of memory");
    return -1;
  }
  /* The client preface and SETTINGS go out with the first flush. */
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW_BYTES},
  };
  if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings, 2) !=
          0 ||
      nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
                                            CONNECTION_WINDOW_BYTES) != 0) {
    connection_fail(c, "out of memory");
    return -1;
  }
  c->state = READY;
  ev_timer_stop(c->channel->loop, &c->connect_timer);
  submit_waiting_calls(c->channel);
  return 0;
}

/* Starts a non-blocking connect to c->address or, if that fails at once,
 * to the addresses after it. Returns 0, or -1 with why filled when none
 * is left. */
static int connect_next(connection *c, char *why, size_t why_size) {
  rpc_channel *channel = c->channel;
  for (; c->address != NULL; c->address = c->address->ai_next) {
    char host[NI_MAXHOST], port[NI_MAXSERV], address[NI_MAXHOST + 16];
    int rv = getnameinfo(c->address->ai_addr, c->address->ai_addrlen, host,
                         sizeof(host), port, sizeof(port),
                         NI_NUMERICHOST | NI_NUMERICSERV);
    if (rv != 0) {
      snprintf(why, why_size, "cannot connect to %s: %s", channel->target,
               gai_strerror(rv));
      continue;
    }
    snprintf(address, sizeof(address),
             c->address->ai_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host,
             port);
    char err[256];
    int fd = rpc_socket_connect(address, err, sizeof(err));
    if (fd < 0) {
      snprintf(why, why_size, "%s", err);
      continue;
    }
    rpc_socket_init(&c->socket, fd, NULL);
    ev_io_set(&c->read_watcher, fd, EV_READ);
    ev_io_set(&c->write_watcher, fd, EV_WRITE);
    ev_io_start(channel->loop, &c->write_watcher);
    return 0;
  }
  return -1;
}

/* A connect failed: the next address, or the connection fails. */
static void connect_failed(connection *c, int error) {
  rpc_channel *channel = c->channel;
  char why[320];
  snprintf(why, sizeof(why), "cannot connect to %s: %s", channel->target,
           strerror(error));
  ev_io_stop(channel->loop, &c->write_watcher);
  rpc_socket_close(&c->socket);
  c->address = c->address->ai_next;
  if (c->address != NULL && connect_next(c, why, sizeof(why)) == 0) {
    return;
  }
  connection_fail(c, why);
}

/* The socket connected: TLS next, or HTTP/2 at once. */
static void on_connected(connection *c) {
  rpc_channel *channel = c->channel;
  ev_io_stop(channel->loop, &c->write_watcher);
  ev_io_start(channel->loop, &c->read_watcher);
  if (channel->tls == NULL) {
    (void)start_session(c);
    return;
  }
  SSL *ssl = SSL_new(channel->tls);
  if (ssl == NULL || SSL_set_fd(ssl, c->socket.fd) != 1 ||
      (!channel->server_name_is_ip &&
       SSL_set_tlsext_host_name(ssl, channel->server_name) != 1) ||
      SSL_set1_host(ssl, channel->server_name) != 1) {
    SSL_free(ssl);
    connection_fail(c, "cannot start TLS");
    return;
  }
  SSL_set_connect_state(ssl);
  rpc_socket_attach_tls(&c->socket, ssl);
  c->state = HANDSHAKING;
}

static void connection_io(connection *c) {
  rpc_channel *channel = c->channel;
  if (c->state == CONNECTING) {
    int error = 0;
    socklen_t len = sizeof(error);
    if (getsockopt(c->socket.fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0) {
      error = errno;
    }
    if (error != 0) {
      connect_failed(c, error);
      return;
    }
    on_connected(c);
  }
  if (c->state == HANDSHAKING) {
    int rv = rpc_socket_handshake(&c->socket);
    if (rv < 0) {
      long verify = SSL_get_verify_result(c->socket.ssl);
      char why[200];
      snprintf(why, sizeof(why), "TLS handshake with %s failed%s%s",
               channel->target, verify != X509_V_OK ? ": " : "",
               verify != X509_V_OK ? X509_verify_cert_error_string(verify)
                                   : "");
      connection_fail(c, why);
      return;
    }
    if (rv == 0) {
      if (c->socket.want_write) {
        ev_io_start(channel->loop, &c->write_watcher);
      } else {
        ev_io_stop(channel->loop, &c->write_watcher);
      }
      return;
    }
    ev_io_stop(channel->loop, &c->write_watcher);
    if (start_session(c) != 0) {
      return;
    }
  }
  if (c->state != READY) {
    return;
  }
  /* OpenSSL may hold a decrypted record the fd no longer signals. */
  for (int i = 0; i < READS_PER_EVENT ||
                  (c->socket.ssl != NULL && SSL_has_pending(c->socket.ssl));
       i++) {
    ssize_t n = rpc_socket_read(&c->socket, channel->read_buffer,
                                sizeof(channel->read_buffer));
    if (n == RPC_SOCKET_AGAIN) {
      break;
    }
    if (n <= 0) {
      connection_fail(c, n == 0 ? "the server closed the connection"
                                : "connection error");
      return;
    }
    ssize_t rv =
        nghttp2_session_mem_recv(c->session, channel->read_buffer, (size_t)n);
    if (rv < 0) {
      char why[128];
      snprintf(why, sizeof(why), "HTTP/2 error: %s", nghttp2_strerror((int)rv));
      connection_fail(c, why);
      return;
    }
  }
  if (connection_flush(c) != 0) {
    connection_fail(c, "connection lost while writing");
  }
}

static void on_io(struct ev_loop *loop, ev_io *watcher, int events) {
  (void)loop;
  (void)events;
  connection_io(watcher->data);
}

static void on_connect_timeout(struct ev_loop *loop, ev_timer *timer,
                               int events) {
  (void)loop;
  (void)events;
  connection *c = timer->data;
  char why[300];
  snprintf(why, sizeof(why), "connecting to %s timed out", c->channel->target);
  connection_fail(c, why);
}

/* Opens a connection to the channel's target and makes it current. When
 * it fails at once, the calls waiting for it are failed (UNAVAILABLE).
 * Returns NULL only when memory is exhausted. */
static connection *connection_open(rpc_channel *channel) {
  connection *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    return NULL;
  }
  c->channel = channel;
  rpc_buffer_init(&c->out);
  rpc_socket_init(&c->socket, -1, NULL);
  ev_io_init(&c->read_watcher, on_io, -1, EV_READ);
  ev_io_init(&c->write_watcher, on_io, -1, EV_WRITE);
  c->read_watcher.data = c->write_watcher.data = c;
  ev_timer_init(&c->connect_timer, on_connect_timeout, channel->connect_timeout,
                0.);
  c->connect_timer.data = c;
  c->state = CONNECTING;
  c->next = channel->connections;
  channel->connections = c;
  channel->current = c;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  char why[320];
  int rv = getaddrinfo(channel->host, channel->port, &hints, &c->addresses);
  if (rv != 0) {
    c->addresses = NULL;
    snprintf(why, sizeof(why), "cannot resolve %s: %s", channel->target,
             gai_strerror(rv));
    connection_fail(c, why);
    return c;
  }
  c->address = c->addresses;
  snprintf(why, sizeof(why), "cannot connect to %s", channel->target);
  if (connect_next(c, why, sizeof(why)) != 0) {
    connection_fail(c, why);
    return c;
  }
  ev_timer_start(channel->loop, &c->connect_timer);
  return c;
}

/* Calls. */

static void on_deadline(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  abort_call(timer->data, RPC_STATUS_DEADLINE_EXCEEDED, "deadline exceeded");
}

/* Copies the request metadata, refusing what gRPC does not let an
 * application send. Returns 0 or -1. */
static int copy_request_metadata(rpc_client_call *call,
                                 const rpc_metadata *md) {
  if (md->count > MAX_REQUEST_METADATA) {
    return -1;
  }
  for (size_t i = 0; i < md->count; i++) {
    const rpc_metadata_entry *entry = &md->entries[i];
    if (!rpc_metadata_key_is_valid(entry->key, entry->key_len) ||
        rpc_metadata_key_is_reserved(entry->key, entry->key_len) ||
        (!rpc_metadata_key_is_binary(entry->key, entry->key_len) &&
         !rpc_metadata_value_is_valid(entry->value, entry->value_len)) ||
        rpc_metadata_add(&call->request_metadata, entry->key, entry->key_len,
                         entry->value, entry->value_len) != 0) {
      return -1;
    }
  }
  return 0;
}

static rpc_client_call *start_call(rpc_channel *channel,
                                   const rpc_method *method,
                                   const rpc_call_options *options,
                                   const rpc_client_hooks *hooks, void *arg,
                                   rpc_stream *stream) {
  rpc_client_call *call = calloc(1, sizeof(*call));
  if (call == NULL) {
    return NULL;
  }
  call->channel = channel;
  call->method = method;
  if (hooks != NULL) {
    call->hooks = *hooks;
  }
  call->arg = arg;
  call->stream = stream;
  call->stream_id = -1;
  rpc_metadata_init(&call->request_metadata);
  rpc_metadata_init(&call->initial);
  rpc_metadata_init(&call->trailers);
  rpc_buffer_init(&call->send_queue);
  rpc_deframer_init(&call->deframer, channel->max_receive);
  ev_timer_init(&call->deadline, on_deadline, 0., 0.);
  call->deadline.data = call;
  call->next = channel->calls;
  if (channel->calls != NULL) {
    channel->calls->prev = call;
  }
  channel->calls = call;
  if (options != NULL) {
    call->timeout_ms = options->timeout_ms;
    call->compress = options->compress;
    if (options->metadata != NULL &&
        copy_request_metadata(call, options->metadata) != 0) {
      abort_call(call, RPC_STATUS_INTERNAL,
                 "invalid or too much request metadata");
      return call;
    }
  }
  if (call->timeout_ms > 0) {
    /* The deadline counts from now, not from the loop's last wake-up. */
    ev_now_update(channel->loop);
    ev_timer_set(&call->deadline, (double)call->timeout_ms / 1000., 0.);
    ev_timer_start(channel->loop, &call->deadline);
  }
  dispatch(call);
  return call;
}

rpc_client_call *rpc_channel_start_call(rpc_channel *channel,
                                        const rpc_method *method,
                                        const rpc_call_options *options,
                                        const rpc_client_hooks *hooks,
                                        void *arg) {
  return start_call(channel, method, options, hooks, arg, NULL);
}

static void wake(rpc_client_call *call) {
  if (call->connection != NULL && call->stream_id > 0) {
    (void)nghttp2_session_resume_data(call->connection->session,
                                      call->stream_id);
  }
}

/* Whether call can take a message; drops what nghttp2 has taken once it
 * is half the queue, so the queue stays small however long the stream. */
static bool ready_to_send(rpc_client_call *call) {
  if (call->send_closed || call->closing) {
    return false;
  }
  if (call->send_offset > 0 && call->send_offset >= call->send_queue.len / 2) {
    rpc_buffer_consume(&call->send_queue, call->send_offset);
    call->send_offset = 0;
  }
  return true;
}

int rpc_client_call_send(rpc_client_call *call,
                         const ProtobufCMessage *message) {
  if (!ready_to_send(call) ||
      rpc_message_encode(&call->send_queue, message, call->compress) != 0) {
    return -1;
  }
  wake(call);
  return 0;
}

int rpc_client_call_send_packed(rpc_client_call *call, const uint8_t *data,
                                size_t size) {
  if (!ready_to_send(call) ||
      rpc_message_encode_packed(&call->send_queue, data, size,
                                call->compress) != 0) {
    return -1;
  }
  wake(call);
  return 0;
}

int rpc_client_call_close_send(rpc_client_call *call) {
  if (call->send_closed || call->closing) {
    return -1;
  }
  call->send_closed = true;
  wake(call);
  return 0;
}

void rpc_client_call_cancel(rpc_client_call *call) {
  if (call->closing) {
    return;
  }
  abort_call(call, RPC_STATUS_CANCELLED, "cancelled by the client");
}

/* Channels. */

/* Splits target into host (without IPv6 brackets) and port. */
static int split_target(const char *target, char **host, char **port) {
  const char *colon = strrchr(target, ':');
  if (colon == NULL || colon == target || colon[1] == '\0') {
    return -1;
  }
  const char *start = target;
  size_t len = (size_t)(colon - target);
  if (target[0] == '[') {
    if (len < 3 || target[len - 1] != ']') {
      return -1;
    }
    start++;
    len -= 2;
  }
  *host = strndup(start, len);
  *port = strdup(colon + 1);
  return 0;
}

static bool is_ip_literal(const char *name) {
  unsigned char address[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, name, address) == 1 ||
         inet_pton(AF_INET6, name, address) == 1;
}

rpc_channel *rpc_channel_new(struct ev_loop *loop,
                             const rpc_channel_options *options, char *err,
                             size_t err_size) {
  pthread_once(&callbacks_once, make_callbacks);
  if (client_callbacks == NULL) {
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  rpc_channel *channel = calloc(1, sizeof(*channel));
  if (channel == NULL) {
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  ev_prepare_init(&channel->flusher, on_prepare);
  channel->flusher.data = channel;
  ev_idle_init(&channel->closer, on_idle);
  /* Above every other watcher, so owed closes never wait for a lull. */
  ev_set_priority(&channel->closer, EV_MAXPRI);
  channel->closer.data = channel;
  if (options->target == NULL ||
      split_target(options->target, &channel->host, &channel->port) != 0) {
    snprintf(err, err_size, "target %s is not host:port",
             options->target != NULL ? options->target : "(none)");
    rpc_channel_free(channel);
    return NULL;
  }
  channel->owns_loop = loop == NULL;
  channel->loop = loop != NULL ? loop : ev_loop_new(EVFLAG_AUTO);
  channel->target = strdup(options->target);
  channel->authority =
      strdup(options->authority != NULL ? options->authority : options->target);
  channel->server_name = options->server_name != NULL
                             ? strdup(options->server_name)
                         : channel->host != NULL ? strdup(channel->host)
                                                 : NULL;
  channel->tls = options->tls;
  channel->max_receive = options->max_receive_message_bytes > 0
                             ? options->max_receive_message_bytes
                             : DEFAULT_MAX_RECEIVE;
  channel->connect_timeout = options->connect_timeout > 0
                                 ? options->connect_timeout
                                 : DEFAULT_CONNECT_TIMEOUT;
  if (channel->loop == NULL || channel->target == NULL ||
      channel->host == NULL || channel->port == NULL ||
      channel->authority == NULL || channel->server_name == NULL) {
    snprintf(err, err_size,
             channel->loop == NULL ? "cannot create a loop" : "out of memory");
    rpc_channel_free(channel);
    return NULL;
  }
  channel->server_name_is_ip = is_ip_literal(channel->server_name);
  ev_prepare_start(channel->loop, &channel->flusher);
  ev_unref(channel->loop); /* the prepare watcher alone keeps no loop alive */
  return channel;
}

void rpc_channel_free(rpc_channel *channel) {
  if (channel == NULL) {
    return;
  }
  if (channel->loop != NULL) {
    for (rpc_client_call *call = channel->calls; call; call = call->next) {
      set_local_status(call, RPC_STATUS_CANCELLED, "channel closed");
      schedule_close(call);
    }
    deliver_closes(channel);
    while (channel->connections != NULL) {
      connection_free(channel->connections);
    }
    if (ev_is_active(&channel->flusher)) {
      ev_ref(channel->loop); /* undo the unref of rpc_channel_new */
      ev_prepare_stop(channel->loop, &channel->flusher);
    }
    if (channel->owns_loop) {
      ev_loop_destroy(channel->loop);
    }
  }
  free(channel->target);
  free(channel->host);
  free(channel->port);
  free(channel->authority);
  free(channel->server_name);
  free(channel);
}

/* Blocking use, on a private loop. The stream's call hands over messages,
 * metadata and status without copies. */

static int stream_push(rpc_stream *stream, stream_item item) {
  if (stream->head + stream->count == stream->cap) {
    if (stream->head > 0) {
      memmove(stream->items, stream->items + stream->head,
              stream->count * sizeof(*stream->items));
      stream->head = 0;
    } else {
      size_t cap = stream->cap > 0 ? stream->cap * 2 : 8;
      stream_item *grown = realloc(stream->items, cap * sizeof(*grown));
      if (grown == NULL) {
        return -1;
      }
      stream->items = grown;
      stream->cap = cap;
    }
  }
  stream->items[stream->head + stream->count++] = item;
  return 0;
}

static void stream_closed(rpc_stream *stream, rpc_client_call *call) {
  stream->closed = true;
  stream->call = NULL;
  rpc_status_clear(&stream->status);
  stream->status = call->status;
  call->status.message = NULL;
  rpc_metadata_free(&stream->trailers);
  stream->trailers = call->trailers;
  rpc_metadata_init(&call->trailers);
}

/* Runs the loop once, keeping ev_run from returning at once when the
 * channel's watchers are all unreferenced. */
static void run_once(struct ev_loop *loop) {
  ev_ref(loop);
  ev_run(loop, EVRUN_ONCE);
  ev_unref(loop);
}

rpc_stream *rpc_channel_open_stream(rpc_channel *channel,
                                    const rpc_method *method,
                                    const rpc_call_options *options) {
  rpc_stream *stream = calloc(1, sizeof(*stream));
  if (stream == NULL) {
    return NULL;
  }
  stream->channel = channel;
  stream->raw = method->output == NULL;
  rpc_metadata_init(&stream->initial);
  rpc_metadata_init(&stream->trailers);
  stream->call = start_call(channel, method, options, NULL, NULL, stream);
  if (stream->call == NULL) {
    free(stream);
    return NULL;
  }
  return stream;
}

int rpc_stream_send(rpc_stream *stream, const ProtobufCMessage *message) {
  return stream->call != NULL ? rpc_client_call_send(stream->call, message)
                              : -1;
}

int rpc_stream_send_packed(rpc_stream *stream, const uint8_t *data,
                           size_t size) {
  return stream->call != NULL
             ? rpc_client_call_send_packed(stream->call, data, size)
             : -1;
}

int rpc_stream_close_send(rpc_stream *stream) {
  return stream->call != NULL ? rpc_client_call_close_send(stream->call) : -1;
}

/* Waits for a response or the end. Returns whether one is queued. */
static bool stream_wait(rpc_stream *stream) {
  while (stream->count == 0 && !stream->closed) {
    run_once(stream->channel->loop);
  }
  return stream->count > 0;
}

int rpc_stream_recv(rpc_stream *stream, ProtobufCMessage **message) {
  *message = NULL;
  if (stream->raw) {
    return -1;
  }
  if (!stream_wait(stream)) {
    return 0;
  }
  *message = stream->items[stream->head++].message;
  stream->count--;
  return 1;
}

int rpc_stream_recv_packed(rpc_stream *stream, rpc_buffer *out) {
  rpc_buffer_reset(out);
  if (!stream->raw) {
    return -1;
  }
  if (!stream_wait(stream)) {
    return 0;
  }
  stream_item *item = &stream->items[stream->head];
  if (rpc_buffer_append(out, item->data, item->size) != 0) {
    return -1; /* the message stays queued */
  }
  free(item->data);
  stream->head++;
  stream->count--;
  return 1;
}

const rpc_status *rpc_stream_status(const rpc_stream *stream) {
  return &stream->status;
}

const rpc_metadata *rpc_stream_initial_metadata(const rpc_stream *stream) {
  return &stream->initial;
}

const rpc_metadata *rpc_stream_trailers(const rpc_stream *stream) {
  return &stream->trailers;
}

void rpc_stream_cancel(rpc_stream *stream) {
  if (stream->call != NULL) {
    rpc_client_call_cancel(stream->call);
  }
}

void rpc_stream_free(rpc_stream *stream) {
  if (stream == NULL) {
    return;
  }
  if (stream->call != NULL) {
    rpc_client_call_cancel(stream->call);
    while (!stream->closed) {
      run_once(stream->channel->loop);
    }
  }
  for (size_t i = 0; i < stream->count; i++) {
    stream_item *item = &stream->items[stream->head + i];
    if (item->message != NULL) {
      protobuf_c_message_free_unpacked(item->message, NULL);
    }
    free(item->data);
  }
  free(stream->items);
  rpc_status_clear(&stream->status);
  rpc_metadata_free(&stream->initial);
  rpc_metadata_free(&stream->trailers);
  free(stream);
}

rpc_status_code
rpc_channel_call_unary(rpc_channel *channel, const rpc_method *method,
                       const ProtobufCMessage *request,
                       const rpc_call_options *options,
                       ProtobufCMessage **response, rpc_status *status,
                       rpc_metadata *initial, rpc_metadata *trailers) {
  *response = NULL;
  status->code = RPC_STATUS_OK;
  status->message = NULL;
  if (initial != NULL) {
    rpc_metadata_init(initial);
  }
  if (trailers != NULL) {
    rpc_metadata_init(trailers);
  }
  if (method->output == NULL) {
    rpc_status_set(status, RPC_STATUS_INTERNAL,
                   "a raw method needs rpc_stream_recv_packed");
    return status->code;
  }
  rpc_stream *stream = rpc_channel_open_stream(channel, method, options);
  if (stream == NULL) {
    rpc_status_set(status, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return status->code;
  }
  if (rpc_stream_send(stream, request) == 0) {
    (void)rpc_stream_close_send(stream);
  } else if (stream->call != NULL) {
    abort_call(stream->call, RPC_STATUS_INTERNAL, "cannot encode the request");
  }
  ProtobufCMessage *message = NULL;
  while (rpc_stream_recv(stream, &message) == 1) {
    if (*response == NULL) {
      *response = message;
    } else {
      protobuf_c_message_free_unpacked(message, NULL);
    }
  }
  *status = stream->status;
  stream->status.message = NULL; /* moved to the caller */
  if (status->code == RPC_STATUS_OK && *response == NULL) {
    rpc_status_set(status, RPC_STATUS_INTERNAL,
                   "no response message for a unary call");
  }
  if (status->code != RPC_STATUS_OK && *response != NULL) {
    protobuf_c_message_free_unpacked(*response, NULL);
    *response = NULL;
  }
  if (initial != NULL) {
    *initial = stream->initial;
    rpc_metadata_init(&stream->initial);
  }
  if (trailers != NULL) {
    *trailers = stream->trailers;
    rpc_metadata_init(&stream->trailers);
  }
  rpc_stream_free(stream);
  return status->code;
}
