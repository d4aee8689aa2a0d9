/* client.c: the gRPC client. A channel owns connections (the current one,
 * and any still draining after a GOAWAY); a call is one stream. Closes are
 * delivered from the loop, never from inside the call that caused them. */
#include "rpc/client.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <ev.h>
#include <nghttp2/nghttp2.h>

#include "rpc/call.h"
#include "rpc/frame.h"
#include "rpc/h2_io.h"
#include "rpc/message.h"
#include "rpc/socket.h"
#include "rpc/timeout.h"

#define READ_BUFFER_SIZE 65536
#define DEFAULT_MAX_RECEIVE (4u << 20)
#define DEFAULT_CONNECT_TIMEOUT 10.
#define STREAM_WINDOW_BYTES (1 << 20)
#define CONNECTION_WINDOW_BYTES (16 << 20)

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
  ev_timer connect_timer;
  connection_state state;
  nghttp2_session *session;
  rpc_buffer out;
  size_t out_offset;
  bool goaway;
  connection *next;
};

struct rpc_client_call {
  rpc_channel *channel;
  connection *connection; /* NULL until submitted */
  int32_t stream_id;
  const rpc_method *method;
  rpc_client_hooks hooks;
  void *arg;
  rpc_metadata request_metadata;
  uint64_t timeout_ms;
  bool compress;
  rpc_buffer send_queue;
  size_t send_offset;
  bool send_closed;
  rpc_deframer deframer;
  bool response_gzip;
  bool trailers_phase; /* response HEADERS seen: next HEADERS are trailers */
  int http_status;
  bool content_type_ok;
  bool has_grpc_status;
  rpc_metadata initial;
  rpc_metadata trailers;
  rpc_status status;
  bool local_status; /* status decided here (deadline, cancel, errors) */
  bool closing;      /* queued for on_close */
  ev_timer deadline;
  rpc_client_call *prev, *next;     /* the channel's open calls */
  rpc_client_call *closing_next;
};

struct rpc_channel {
  struct ev_loop *loop;
  bool owns_loop;
  char *target;
  char *authority;
  char *server_name;
  SSL_CTX *tls;
  size_t max_receive;
  double connect_timeout;
  connection *current;     /* where new calls go */
  connection *connections; /* all, current included */
  rpc_client_call *calls;
  rpc_client_call *closing; /* on_close owed */
  ev_prepare flusher;
  ev_idle closer; /* active while closes are owed: the loop does not block */
  uint8_t read_buffer[READ_BUFFER_SIZE];
};

static nghttp2_session_callbacks *client_callbacks;
static pthread_once_t callbacks_once = PTHREAD_ONCE_INIT;

static void connection_fail(connection *c, const char *why);
static int submit(rpc_client_call *call);

/* Closing calls. */

/* Decides the status here unless one was already decided. */
static void set_local_status(rpc_client_call *call, rpc_status_code code,
                             const char *message) {
  if (call->local_status || call->has_grpc_status) {
    return;
  }
  call->local_status = true;
  rpc_status_set(&call->status, code, "%s", message);
}

/* Queues on_close; delivered by the channel's prepare watcher. */
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
  if (call->connection != NULL && call->connection->session != NULL &&
      call->stream_id > 0) {
    nghttp2_session_set_stream_user_data(call->connection->session,
                                         call->stream_id, NULL);
  }
  if (call->hooks.on_close != NULL) {
    call->hooks.on_close(call, &call->status, &call->trailers, call->arg);
  }
  call_free(call);
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
  for (connection **link = &channel->connections; *link; link = &(*link)->next) {
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
  free(c);
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

/* Flushes every connection before the loop waits, and drops connections
 * nothing uses any more. */
static void on_prepare(struct ev_loop *loop, ev_prepare *watcher, int events) {
  (void)loop;
  (void)events;
  rpc_channel *channel = watcher->data;
  for (connection *c = channel->connections, *next; c != NULL; c = next) {
    next = c->next;
    if (c->state == READY && connection_flush(c) != 0) {
      connection_fail(c, "connection lost while writing");
    }
  }
  /* A drained connection after GOAWAY, or a failed one, goes away. */
  for (connection *c = channel->connections, *next; c != NULL; c = next) {
    next = c->next;
    bool idle = c->state == READY && c->goaway &&
                !nghttp2_session_want_read(c->session) &&
                !nghttp2_session_want_write(c->session);
    bool in_use = false;
    for (rpc_client_call *call = channel->calls; call; call = call->next) {
      in_use = in_use || call->connection == c;
    }
    if ((c->state == FAILED && !in_use) || (idle && !in_use)) {
      connection_free(c);
    }
  }
}

/* nghttp2 callbacks. */

static int on_message(void *arg, bool compressed, const uint8_t *data,
                      size_t len) {
  rpc_client_call *call = arg;
  if (compressed && !call->response_gzip) {
    set_local_status(call, RPC_STATUS_INTERNAL,
                     "compressed response without grpc-encoding gzip");
    return -1;
  }
  ProtobufCMessage *message = NULL;
  int rv = rpc_message_decode(call->method->output, compressed, data, len,
                              call->channel->max_receive, &message);
  if (rv != 0) {
    set_local_status(call,
                     rv == RPC_MESSAGE_ERR_TOO_LARGE
                         ? RPC_STATUS_RESOURCE_EXHAUSTED
                         : RPC_STATUS_INTERNAL,
                     rv == RPC_MESSAGE_ERR_PARSE
                         ? "failed to parse response"
                         : "cannot decompress a response message");
    return -1;
  }
  if (call->hooks.on_message != NULL && !call->local_status) {
    call->hooks.on_message(call, message, call->arg);
  }
  protobuf_c_message_free_unpacked(message, NULL);
  return 0;
}

static rpc_client_call *stream_call(nghttp2_session *session, int32_t id) {
  return nghttp2_session_get_stream_user_data(session, id);
}

static bool is(const uint8_t *name, size_t len, const char *want) {
  return len == strlen(want) && memcmp(name, want, len) == 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame,
                     const uint8_t *name, size_t name_len, const uint8_t *value,
                     size_t value_len, uint8_t flags, void *user_data) {
  (void)flags;
  (void)user_data;
  rpc_client_call *call = stream_call(session, frame->hd.stream_id);
  if (call == NULL || frame->hd.type != NGHTTP2_HEADERS) {
    return 0;
  }
  /* Trailers-only responses carry the status in the first HEADERS. */
  bool trailers = call->trailers_phase ||
                  (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (is(name, name_len, ":status")) {
    call->http_status = atoi((const char *)value);
  } else if (is(name, name_len, "content-type")) {
    call->content_type_ok =
        value_len >= 16 && memcmp(value, "application/grpc", 16) == 0;
  } else if (is(name, name_len, "grpc-encoding")) {
    call->response_gzip = is(value, value_len, "gzip");
  } else if (is(name, name_len, "grpc-status")) {
    int code;
    if (rpc_status_code_parse((const char *)value, value_len, &code) == 0) {
      call->has_grpc_status = !call->local_status;
      if (call->has_grpc_status) {
        call->status.code = code <= RPC_STATUS_CODE_MAX
                                ? (rpc_status_code)code
                                : RPC_STATUS_UNKNOWN;
      }
    }
  } else if (is(name, name_len, "grpc-message")) {
    rpc_buffer decoded;
    rpc_buffer_init(&decoded);
    if (!call->local_status &&
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

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data) {
  connection *c = user_data;
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    /* New calls go to a new connection; this one drains. */
    c->goaway = true;
    if (c->channel->current == c) {
      c->channel->current = NULL;
    }
    return 0;
  }
  if (frame->hd.type != NGHTTP2_HEADERS) {
    return 0;
  }
  rpc_client_call *call = stream_call(session, frame->hd.stream_id);
  if (call == NULL || call->trailers_phase) {
    return 0;
  }
  call->trailers_phase = true;
  if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0 &&
      call->hooks.on_initial_metadata != NULL && !call->local_status) {
    call->hooks.on_initial_metadata(call, &call->initial, call->arg);
  }
  return 0;
}

static int on_data_chunk_recv(nghttp2_session *session, uint8_t flags,
                              int32_t stream_id, const uint8_t *data,
                              size_t len, void *user_data) {
  (void)flags;
  (void)user_data;
  rpc_client_call *call = stream_call(session, stream_id);
  if (call == NULL || call->local_status) {
    return 0;
  }
  int rv = rpc_deframer_feed(&call->deframer, data, len, on_message, call);
  if (rv == RPC_FRAME_ERR_TOO_LARGE) {
    set_local_status(call, RPC_STATUS_RESOURCE_EXHAUSTED,
                     "response message larger than the receive limit");
  } else if (rv != 0) {
    set_local_status(call, RPC_STATUS_INTERNAL, "malformed response framing");
  }
  if (call->local_status) {
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id,
                              NGHTTP2_CANCEL);
  }
  return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id,
                           uint32_t error_code, void *user_data) {
  (void)user_data;
  rpc_client_call *call = stream_call(session, stream_id);
  if (call == NULL) {
    return 0;
  }
  nghttp2_session_set_stream_user_data(session, stream_id, NULL);
  call->stream_id = -1;
  if (!call->has_grpc_status && !call->local_status) {
    char message[128];
    rpc_status_code code;
    if (error_code == NGHTTP2_REFUSED_STREAM) {
      code = RPC_STATUS_UNAVAILABLE;
      snprintf(message, sizeof(message), "stream refused by the server");
    } else if (error_code == NGHTTP2_CANCEL) {
      code = RPC_STATUS_CANCELLED;
      snprintf(message, sizeof(message), "stream cancelled by the server");
    } else if (error_code != NGHTTP2_NO_ERROR) {
      code = RPC_STATUS_INTERNAL;
      snprintf(message, sizeof(message), "stream reset: %s",
               nghttp2_http2_strerror(error_code));
    } else if (call->http_status != 200) {
      code = rpc_status_from_http(call->http_status);
      snprintf(message, sizeof(message), "HTTP status %d", call->http_status);
    } else if (!call->content_type_ok) {
      code = RPC_STATUS_UNKNOWN;
      snprintf(message, sizeof(message), "response is not gRPC");
    } else {
      code = RPC_STATUS_UNKNOWN;
      snprintf(message, sizeof(message), "response without grpc-status");
    }
    set_local_status(call, code, message);
  }
  schedule_close(call);
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
  client_callbacks = callbacks;
}

/* Connections. */

static void connection_fail(connection *c, const char *why) {
  if (c->state == FAILED) {
    return;
  }
  c->state = FAILED;
  ev_io_stop(c->channel->loop, &c->read_watcher);
  ev_io_stop(c->channel->loop, &c->write_watcher);
  ev_timer_stop(c->channel->loop, &c->connect_timer);
  if (c->channel->current == c) {
    c->channel->current = NULL;
  }
  for (rpc_client_call *call = c->channel->calls; call; call = call->next) {
    if (call->connection == c || (call->connection == NULL && !c->goaway)) {
      set_local_status(call, RPC_STATUS_UNAVAILABLE, why);
      schedule_close(call);
    }
  }
}

static void submit_waiting_calls(rpc_channel *channel) {
  for (rpc_client_call *call = channel->calls; call; call = call->next) {
    if (call->connection == NULL && !call->closing && submit(call) != 0) {
      set_local_status(call, RPC_STATUS_INTERNAL, "cannot start the stream");
      schedule_close(call);
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
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW_BYTES},
  };
  nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings, 2);
  nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
                                        CONNECTION_WINDOW_BYTES);
  c->state = READY;
  ev_timer_stop(c->channel->loop, &c->connect_timer);
  submit_waiting_calls(c->channel);
  return 0;
}

static void connection_io(connection *c) {
  rpc_channel *channel = c->channel;
  if (c->state == CONNECTING) {
    int error = 0;
    socklen_t len = sizeof(error);
    if (getsockopt(c->socket.fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0 ||
        error != 0) {
      char why[160];
      snprintf(why, sizeof(why), "cannot connect to %s: %s", channel->target,
               strerror(error != 0 ? error : errno));
      connection_fail(c, why);
      return;
    }
    ev_io_stop(channel->loop, &c->write_watcher);
    ev_io_start(channel->loop, &c->read_watcher);
    if (channel->tls == NULL) {
      (void)start_session(c);
      return;
    }
    SSL *ssl = SSL_new(channel->tls);
    if (ssl == NULL || SSL_set_fd(ssl, c->socket.fd) != 1 ||
        SSL_set_tlsext_host_name(ssl, channel->server_name) != 1 ||
        SSL_set1_host(ssl, channel->server_name) != 1) {
      SSL_free(ssl);
      connection_fail(c, "cannot start TLS");
      return;
    }
    SSL_set_connect_state(ssl);
    rpc_socket_attach_tls(&c->socket, ssl);
    c->state = HANDSHAKING;
  }
  if (c->state == HANDSHAKING) {
    int rv = rpc_socket_handshake(&c->socket);
    if (rv < 0) {
      long verify = SSL_get_verify_result(c->socket.ssl);
      char why[200];
      snprintf(why, sizeof(why), "TLS handshake failed%s%s",
               verify != X509_V_OK ? ": " : "",
               verify != X509_V_OK ? X509_verify_cert_error_string(verify)
                                   : "");
      connection_fail(c, why);
      return;
    }
    if (rv == 0) {
      if (c->socket.want_write) {
        ev_io_start(channel->loop, &c->write_watcher);
      }
      return;
    }
    if (start_session(c) != 0) {
      return;
    }
  }
  if (c->state != READY) {
    return;
  }
  for (int i = 0; i < 16; i++) {
    ssize_t n =
        rpc_socket_read(&c->socket, channel->read_buffer,
                        sizeof(channel->read_buffer));
    if (n == RPC_SOCKET_AGAIN) {
      break;
    }
    if (n <= 0) {
      connection_fail(c, n == 0 ? "the server closed the connection"
                                : "connection error");
      return;
    }
    if (nghttp2_session_mem_recv(c->session, channel->read_buffer,
                                 (size_t)n) < 0) {
      connection_fail(c, "HTTP/2 protocol error");
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
  connection_fail(timer->data, "connect timed out");
}

static connection *connection_open(rpc_channel *channel) {
  connection *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    return NULL;
  }
  char err[256];
  c->channel = channel;
  rpc_buffer_init(&c->out);
  c->next = channel->connections;
  channel->connections = c;
  int fd = rpc_socket_connect(channel->target, err, sizeof(err));
  rpc_socket_init(&c->socket, fd, NULL);
  ev_io_init(&c->read_watcher, on_io, fd, EV_READ);
  ev_io_init(&c->write_watcher, on_io, fd, EV_WRITE);
  c->read_watcher.data = c->write_watcher.data = c;
  ev_timer_init(&c->connect_timer, on_connect_timeout, channel->connect_timeout,
                0.);
  c->connect_timer.data = c;
  c->state = CONNECTING;
  if (fd < 0) {
    c->state = FAILED; /* reported to calls by the caller */
    return c;
  }
  ev_io_start(channel->loop, &c->write_watcher);
  ev_timer_start(channel->loop, &c->connect_timer);
  return c;
}

/* Calls. */

static ssize_t read_request(nghttp2_session *session, int32_t stream_id,
                            uint8_t *buf, size_t length, uint32_t *flags,
                            nghttp2_data_source *source, void *user_data) {
  (void)session;
  (void)stream_id;
  (void)user_data;
  rpc_client_call *call = source->ptr;
  size_t queued = call->send_queue.len - call->send_offset;
  size_t n = rpc_buffer_take(&call->send_queue, &call->send_offset, buf, length);
  if (n == queued) {
    if (call->send_closed) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
    } else if (n == 0) {
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  return (ssize_t)n;
}

#define NV(name, value)                                                       \
  {(uint8_t *)(name), (uint8_t *)(value), strlen(name), strlen(value),        \
   NGHTTP2_NV_FLAG_NONE}

static int submit(rpc_client_call *call) {
  rpc_channel *channel = call->channel;
  connection *c = channel->current;
  if (c == NULL || c->state != READY) {
    return 0; /* submitted when the connection is ready */
  }
  size_t count = 0;
  nghttp2_nv nva[9 + RPC_CALL_MAX_METADATA];
  char timeout[RPC_TIMEOUT_TEXT_SIZE];
  nva[count++] = (nghttp2_nv)NV(":method", "POST");
  nva[count++] = (nghttp2_nv)NV(":scheme", channel->tls ? "https" : "http");
  nva[count++] = (nghttp2_nv)NV(":path", call->method->path);
  nva[count++] = (nghttp2_nv)NV(":authority", channel->authority);
  nva[count++] = (nghttp2_nv)NV("content-type", "application/grpc");
  nva[count++] = (nghttp2_nv)NV("te", "trailers");
  nva[count++] = (nghttp2_nv)NV("grpc-accept-encoding", "identity,gzip");
  nva[count++] = (nghttp2_nv)NV("user-agent", "jobhub-c/" JOBHUB_VERSION);
  if (call->compress) {
    nva[count++] = (nghttp2_nv)NV("grpc-encoding", "gzip");
  }
  if (call->timeout_ms > 0) {
    rpc_timeout_format(call->timeout_ms * 1000000u, timeout);
    nva[count++] = (nghttp2_nv)NV("grpc-timeout", timeout);
  }
  /* -bin values go out as base64, each in its own buffer. */
  rpc_buffer values[RPC_CALL_MAX_METADATA];
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
    nva[count++] = (nghttp2_nv){(uint8_t *)entry->key, values[i].data,
                                entry->key_len, values[i].len,
                                NGHTTP2_NV_FLAG_NONE};
  }
  nghttp2_data_provider provider = {.source.ptr = call,
                                    .read_callback = read_request};
  int32_t id =
      nghttp2_submit_request(c->session, NULL, nva, count, &provider, call);
  if (id < 0) {
    goto out;
  }
  call->stream_id = id;
  call->connection = c;
  rv = 0;
out:
  for (size_t i = 0; i < md_count; i++) {
    rpc_buffer_free(&values[i]);
  }
  return rv;
}

static void on_deadline(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  rpc_client_call *call = timer->data;
  set_local_status(call, RPC_STATUS_DEADLINE_EXCEEDED, "deadline exceeded");
  if (call->connection != NULL && call->stream_id > 0) {
    nghttp2_submit_rst_stream(call->connection->session, NGHTTP2_FLAG_NONE,
                              call->stream_id, NGHTTP2_CANCEL);
  } else {
    schedule_close(call);
  }
}

rpc_client_call *rpc_channel_start_call(rpc_channel *channel,
                                        const rpc_method *method,
                                        const rpc_call_options *options,
                                        const rpc_client_hooks *hooks,
                                        void *arg) {
  rpc_client_call *call = calloc(1, sizeof(*call));
  if (call == NULL) {
    return NULL;
  }
  call->channel = channel;
  call->method = method;
  call->hooks = hooks != NULL ? *hooks : (rpc_client_hooks){0};
  call->arg = arg;
  call->stream_id = -1;
  rpc_metadata_init(&call->request_metadata);
  rpc_metadata_init(&call->initial);
  rpc_metadata_init(&call->trailers);
  rpc_buffer_init(&call->send_queue);
  rpc_deframer_init(&call->deframer, channel->max_receive);
  call->deadline.data = call;
  ev_timer_init(&call->deadline, on_deadline, 0., 0.);
  call->next = channel->calls;
  if (channel->calls != NULL) {
    channel->calls->prev = call;
  }
  channel->calls = call;
  if (options != NULL) {
    call->timeout_ms = options->timeout_ms;
    call->compress = options->compress;
    const rpc_metadata *md = options->metadata;
    for (size_t i = 0; md != NULL && i < md->count; i++) {
      const rpc_metadata_entry *entry = &md->entries[i];
      if (i >= RPC_CALL_MAX_METADATA ||
          !rpc_metadata_key_is_valid(entry->key, entry->key_len) ||
          rpc_metadata_add(&call->request_metadata, entry->key,
                           entry->key_len, entry->value,
                           entry->value_len) != 0) {
        set_local_status(call, RPC_STATUS_INVALID_ARGUMENT,
                         "invalid or too much request metadata");
        schedule_close(call);
        return call;
      }
    }
  }
  if (call->timeout_ms > 0) {
    ev_timer_set(&call->deadline, (ev_tstamp)call->timeout_ms / 1000., 0.);
    ev_timer_start(channel->loop, &call->deadline);
  }
  if (channel->current == NULL) {
    channel->current = connection_open(channel);
    if (channel->current == NULL) {
      set_local_status(call, RPC_STATUS_UNAVAILABLE, "out of memory");
      schedule_close(call);
      return call;
    }
    if (channel->current->state == FAILED) {
      char why[300];
      snprintf(why, sizeof(why), "cannot connect to %s", channel->target);
      connection_fail(channel->current, why);
      channel->current = NULL;
      set_local_status(call, RPC_STATUS_UNAVAILABLE, why);
      schedule_close(call);
      return call;
    }
  }
  if (submit(call) != 0) {
    set_local_status(call, RPC_STATUS_INTERNAL, "cannot start the stream");
    schedule_close(call);
  }
  return call;
}

static void wake(rpc_client_call *call) {
  if (call->connection != NULL && call->stream_id > 0) {
    (void)nghttp2_session_resume_data(call->connection->session,
                                      call->stream_id);
  }
}

int rpc_client_call_send(rpc_client_call *call,
                         const ProtobufCMessage *message) {
  if (call->send_closed || call->closing || call->local_status) {
    return -1;
  }
  if (rpc_message_encode(&call->send_queue, message, call->compress) != 0) {
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
  set_local_status(call, RPC_STATUS_CANCELLED, "cancelled by the client");
  if (call->connection != NULL && call->stream_id > 0) {
    nghttp2_submit_rst_stream(call->connection->session, NGHTTP2_FLAG_NONE,
                              call->stream_id, NGHTTP2_CANCEL);
  } else {
    schedule_close(call);
  }
}

/* Channels. */

rpc_channel *rpc_channel_new(struct ev_loop *loop,
                             const rpc_channel_options *options, char *err,
                             size_t err_size) {
  pthread_once(&callbacks_once, make_callbacks);
  if (client_callbacks == NULL) {
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  if (options->target == NULL || strrchr(options->target, ':') == NULL) {
    snprintf(err, err_size, "target must be host:port");
    return NULL;
  }
  rpc_channel *channel = calloc(1, sizeof(*channel));
  if (channel == NULL) {
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  channel->owns_loop = loop == NULL;
  channel->loop = loop != NULL ? loop : ev_loop_new(EVFLAG_AUTO);
  channel->target = strdup(options->target);
  channel->authority =
      strdup(options->authority ? options->authority : options->target);
  const char *colon = strrchr(options->target, ':');
  channel->server_name =
      options->server_name
          ? strdup(options->server_name)
          : strndup(options->target, (size_t)(colon - options->target));
  channel->tls = options->tls;
  channel->max_receive = options->max_receive_message_bytes
                             ? options->max_receive_message_bytes
                             : DEFAULT_MAX_RECEIVE;
  channel->connect_timeout = options->connect_timeout > 0
                                 ? options->connect_timeout
                                 : DEFAULT_CONNECT_TIMEOUT;
  if (channel->loop == NULL || channel->target == NULL ||
      channel->authority == NULL || channel->server_name == NULL) {
    snprintf(err, err_size, "out of memory");
    rpc_channel_free(channel);
    return NULL;
  }
  ev_prepare_init(&channel->flusher, on_prepare);
  channel->flusher.data = channel;
  ev_prepare_start(channel->loop, &channel->flusher);
  ev_unref(channel->loop); /* the prepare watcher alone keeps no loop alive */
  ev_idle_init(&channel->closer, on_idle);
  channel->closer.data = channel;
  return channel;
}

void rpc_channel_free(rpc_channel *channel) {
  if (channel == NULL) {
    return;
  }
  for (rpc_client_call *call = channel->calls; call; call = call->next) {
    set_local_status(call, RPC_STATUS_CANCELLED, "channel closed");
    schedule_close(call);
  }
  deliver_closes(channel);
  while (channel->connections != NULL) {
    connection_free(channel->connections);
  }
  if (channel->loop != NULL) {
    if (ev_is_active(&channel->flusher)) {
      ev_ref(channel->loop); /* undo the unref of rpc_channel_new */
      ev_prepare_stop(channel->loop, &channel->flusher);
    }
    if (channel->owns_loop) {
      ev_loop_destroy(channel->loop);
    }
  }
  free(channel->target);
  free(channel->authority);
  free(channel->server_name);
  free(channel);
}

/* Blocking use, on a private loop. */

struct rpc_stream {
  rpc_channel *channel;
  rpc_client_call *call; /* NULL once closed */
  ProtobufCMessage **messages; /* received, not yet read */
  size_t head, count, cap;
  bool closed;
  rpc_status status;
  rpc_metadata initial;
  rpc_metadata trailers;
};

static void stream_on_initial(rpc_client_call *call, const rpc_metadata *md,
                              void *arg) {
  (void)call;
  rpc_stream *stream = arg;
  for (size_t i = 0; i < md->count; i++) {
    (void)rpc_metadata_add(&stream->initial, md->entries[i].key,
                           md->entries[i].key_len, md->entries[i].value,
                           md->entries[i].value_len);
  }
}

static void stream_on_message(rpc_client_call *call,
                              const ProtobufCMessage *message, void *arg) {
  rpc_stream *stream = arg;
  /* The hook's message is borrowed: keep a copy for the reader. */
  size_t size = protobuf_c_message_get_packed_size(message);
  rpc_buffer bytes;
  rpc_buffer_init(&bytes);
  ProtobufCMessage *copy = NULL;
  if (rpc_buffer_reserve(&bytes, size + 1) == 0) {
    protobuf_c_message_pack(message, bytes.data);
    copy = protobuf_c_message_unpack(message->descriptor, NULL, size,
                                     bytes.data);
  }
  rpc_buffer_free(&bytes);
  if (stream->head + stream->count == stream->cap) {
    if (stream->head > 0) {
      memmove(stream->messages, stream->messages + stream->head,
              stream->count * sizeof(*stream->messages));
      stream->head = 0;
    } else {
      size_t cap = stream->cap ? stream->cap * 2 : 8;
      ProtobufCMessage **grown =
          realloc(stream->messages, cap * sizeof(*grown));
      if (grown == NULL) {
        if (copy != NULL) {
          protobuf_c_message_free_unpacked(copy, NULL);
        }
        copy = NULL;
      } else {
        stream->messages = grown;
        stream->cap = cap;
      }
    }
  }
  if (copy == NULL) {
    rpc_client_call_cancel(call);
    return;
  }
  stream->messages[stream->head + stream->count++] = copy;
}

static void stream_on_close(rpc_client_call *call, const rpc_status *status,
                            const rpc_metadata *trailers, void *arg) {
  (void)call;
  rpc_stream *stream = arg;
  stream->closed = true;
  stream->call = NULL;
  stream->status.code = status->code;
  stream->status.message = status->message ? strdup(status->message) : NULL;
  for (size_t i = 0; i < trailers->count; i++) {
    (void)rpc_metadata_add(&stream->trailers, trailers->entries[i].key,
                           trailers->entries[i].key_len,
                           trailers->entries[i].value,
                           trailers->entries[i].value_len);
  }
}

static const rpc_client_hooks stream_hooks = {
    .on_initial_metadata = stream_on_initial,
    .on_message = stream_on_message,
    .on_close = stream_on_close,
};

rpc_stream *rpc_channel_open_stream(rpc_channel *channel,
                                    const rpc_method *method,
                                    const rpc_call_options *options) {
  rpc_stream *stream = calloc(1, sizeof(*stream));
  if (stream == NULL) {
    return NULL;
  }
  stream->channel = channel;
  rpc_metadata_init(&stream->initial);
  rpc_metadata_init(&stream->trailers);
  stream->call =
      rpc_channel_start_call(channel, method, options, &stream_hooks, stream);
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

int rpc_stream_close_send(rpc_stream *stream) {
  return stream->call != NULL ? rpc_client_call_close_send(stream->call) : -1;
}

int rpc_stream_recv(rpc_stream *stream, ProtobufCMessage **message) {
  *message = NULL;
  while (stream->count == 0 && !stream->closed) {
    ev_ref(stream->channel->loop); /* keep ev_run from returning at once */
    ev_run(stream->channel->loop, EVRUN_ONCE);
    ev_unref(stream->channel->loop);
  }
  if (stream->count == 0) {
    return 0;
  }
  *message = stream->messages[stream->head++];
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
      ev_ref(stream->channel->loop);
      ev_run(stream->channel->loop, EVRUN_ONCE);
      ev_unref(stream->channel->loop);
    }
  }
  for (size_t i = 0; i < stream->count; i++) {
    protobuf_c_message_free_unpacked(stream->messages[stream->head + i], NULL);
  }
  free(stream->messages);
  rpc_status_clear(&stream->status);
  rpc_metadata_free(&stream->initial);
  rpc_metadata_free(&stream->trailers);
  free(stream);
}

rpc_status_code rpc_channel_call_unary(rpc_channel *channel,
                                       const rpc_method *method,
                                       const ProtobufCMessage *request,
                                       const rpc_call_options *options,
                                       ProtobufCMessage **response,
                                       rpc_status *status,
                                       rpc_metadata *initial,
                                       rpc_metadata *trailers) {
  *response = NULL;
  status->code = RPC_STATUS_OK;
  status->message = NULL;
  rpc_stream *stream = rpc_channel_open_stream(channel, method, options);
  if (stream == NULL) {
    rpc_status_set(status, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return status->code;
  }
  if (rpc_stream_send(stream, request) == 0) {
    (void)rpc_stream_close_send(stream);
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
