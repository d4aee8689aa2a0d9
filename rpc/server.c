/* server.c: the gRPC server's transport: one listening socket that every
 * loop thread accepts from, one libev loop per thread, connections that
 * sniff TLS or h2c, an nghttp2 session per connection, and the route from
 * ":path" to a method. What a call means is call.c's business. */
#include "rpc/server.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <nghttp2/nghttp2.h>

#include "rpc/call_internal.h"
#include "rpc/h2_io.h"
#include "rpc/http_request_internal.h"
#include "rpc/log.h"
#include "rpc/loop_thread.h"
#include "rpc/server_internal.h"
#include "rpc/socket.h"
#include "rpc/stream.h"
#include "rpc/tls.h"

#define READ_BUFFER_SIZE 65536
/* Reads per readiness event before other connections get a turn. */
#define READS_PER_EVENT 16
#define ACCEPTS_PER_EVENT 64
/* s a thread stops accepting after running out of file descriptors: the
 * pending connection stays in the backlog, and accept() would fail again
 * at once (a level-triggered watcher would spin on it). */
#define ACCEPT_PAUSE_SECONDS 0.1
/* HTTP/2 windows: large enough that a fast link is not throttled. */
#define STREAM_WINDOW_BYTES (1 << 20)
#define CONNECTION_WINDOW_BYTES (16 << 20)
#define H2_PREFACE_PREFIX "PRI "
#define TLS_HANDSHAKE_RECORD 0x16
/* What reading returns when the connection went to the protocol hook: the
 * connection is freed, touch nothing of it. */
#define CONNECTION_HANDED_OVER 1

typedef struct server_thread server_thread;
typedef struct rpc_connection rpc_connection;

typedef struct registered_service {
  const rpc_service_desc *desc;
  const void *handlers;
  void *user;
} registered_service;

typedef struct route {
  const char *path; /* NULL: empty slot */
  const rpc_method *method;
  const registered_service *service;
} route;


typedef enum connection_phase {
  PHASE_SNIFF,         /* first bytes not seen yet */
  PHASE_TLS_HANDSHAKE, /* TLS ClientHello seen */
  PHASE_PLAIN_PREFACE, /* cleartext: is it the HTTP/2 preface? */
  PHASE_H2,
  PHASE_CLOSING, /* write what is left, then close */
} connection_phase;

struct rpc_connection {
  server_thread *thread;
  rpc_socket socket;
  ev_io read_watcher;
  ev_io write_watcher;
  ev_timer timer; /* idle timeout and keepalive */
  connection_phase phase;
  nghttp2_session *session;
  uint8_t preface[4];
  size_t preface_len;
  rpc_buffer out; /* bytes for the socket, from out_offset */
  size_t out_offset;
  size_t streams_output; /* bytes queued in its streams' send queues */
  rpc_stream *streams;   /* open streams, for teardown */
  size_t stream_count;
  ev_tstamp last_read;
  ev_tstamp last_busy; /* last time a call was open */
  ev_tstamp ping_sent;
  bool ping_outstanding;
  bool flush_scheduled;
  bool read_needs_write; /* TLS read wants the fd writable */
  bool goaway_sent;
  char *peer_cn; /* verified client certificate CN, or NULL; owned */
  char peer[48]; /* the client's IP address, "" until a call needs it */
  /* With a protocol hook for requests: the headers of the request stream
   * hook_headers_stream (0: none) until its content-type says gRPC. */
  rpc_buffer hook_headers;
  size_t hook_header_count;
  int32_t hook_headers_stream;
  double idle_frame_tokens; /* RPC_SERVER_IDLE_FRAME_* bucket */
  ev_tstamp idle_frames_refilled;
  bool frame_may_be_idle; /* last frame: charged unless it proved useful */
  uint32_t window_updates_owed; /* 2 per DATA frame sent: stream, conn */
  rpc_connection *flush_next;
  rpc_connection *prev, *next;
};

struct server_thread {
  rpc_server *server;
  unsigned index;
  rpc_loop_thread *runner; /* the loop, its thread and mailbox */
  bool owns_runner;        /* false: options.loop_thread, the caller's */
  struct ev_loop *loop;    /* the runner's */
  bool running;            /* the runner's thread was started */
  ev_io accept_watcher;    /* on the server's listen_fd */
  ev_timer accept_pause;   /* accepting again after EMFILE */
  ev_prepare flusher;
  ev_idle spinner;      /* active: the loop polls without sleeping */
  ev_tstamp last_input; /* when a connection last had bytes to read */
  ev_timer grace_timer;
  rpc_loop_task shutdown_task;
  rpc_connection *connections;
  rpc_connection *flush_list;
  bool stopping;
  uint8_t read_buffer[READ_BUFFER_SIZE];
};

struct rpc_server {
  rpc_server_options options;
  registered_service *services;
  size_t service_count;
  route *routes;
  size_t route_mask; /* slots - 1, a power of two minus one */
  server_thread **threads;
  unsigned thread_count;
  /* One socket for every thread (not one SO_REUSEPORT socket each, which
   * another process could join): each thread has an accept watcher on it,
   * and the threads that lose the race for a connection get EAGAIN. */
  int listen_fd;
  atomic_uint accepting_threads; /* at shutdown: the last closes listen_fd */
  uint16_t port;
  bool started;
  rpc_protocol_hook hook; /* all NULL: the server's own answers */
};

static nghttp2_session_callbacks *session_callbacks;
static pthread_once_t callbacks_once = PTHREAD_ONCE_INIT;

static void connection_close(rpc_connection *c);
static void stream_deliver_writable(rpc_stream *stream);
static void arm_connection_timer(rpc_connection *c);

/* Options and services. */

void rpc_server_options_default(rpc_server_options *options) {
  *options = (rpc_server_options){
      .listen = "127.0.0.1:50051",
      .threads = 0,
      .max_receive_message_bytes = 4u << 20,
      .max_concurrent_streams = 100,
      .max_header_list_bytes = 16u << 10,
      .idle_timeout = 300.,
      .keepalive_interval = 60.,
      .keepalive_timeout = 20.,
      .shutdown_grace = 10.,
      .busy_poll = 200e-6,
      .max_stream_output_bytes = 8u << 20,
      .max_connection_output_bytes = 64u << 20,
      .tls = NULL,
  };
}

rpc_server *rpc_server_new(const rpc_server_options *options, char *err,
                           size_t err_size) {
  rpc_server *server = calloc(1, sizeof(*server));
  if (server == NULL) {
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  server->options = *options;
  server->listen_fd = -1;
  server->options.listen = strdup(options->listen);
  if (server->options.listen == NULL) {
    free(server);
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  if (server->options.threads == 0) {
    server->options.threads = rpc_usable_cpus();
  }
  if (server->options.loop_thread != NULL && server->options.threads != 1) {
    snprintf(err, err_size, "a shared loop thread needs exactly one thread");
    free((char *)server->options.listen);
    free(server);
    return NULL;
  }
  return server;
}

int rpc_server_add_service(rpc_server *server, const rpc_service_desc *desc,
                           const void *handlers, void *user) {
  if (server->started) {
    return -1;
  }
  for (size_t i = 0; i < server->service_count; i++) {
    if (strcmp(server->services[i].desc->name, desc->name) == 0) {
      return -1;
    }
  }
  registered_service *grown =
      realloc(server->services,
              (server->service_count + 1) * sizeof(*server->services));
  if (grown == NULL) {
    return -1;
  }
  server->services = grown;
  server->services[server->service_count++] =
      (registered_service){desc, handlers, user};
  return 0;
}

int rpc_server_set_protocol_hook(rpc_server *server,
                                 const rpc_protocol_hook *hook) {
  if (server->started ||
      (hook->http1_accept != NULL && hook->http1_close_loop == NULL)) {
    return -1;
  }
  server->hook = *hook;
  return 0;
}

size_t rpc_server_service_count(const rpc_server *server) {
  return server->service_count;
}

const rpc_service_desc *rpc_server_service(const rpc_server *server,
                                           size_t index) {
  return index < server->service_count ? server->services[index].desc : NULL;
}

static size_t hash_path(const char *text, size_t len) {
  size_t hash = 14695981039346656037u; /* FNV-1a */
  for (size_t i = 0; i < len; i++) {
    hash = (hash ^ (uint8_t)text[i]) * 1099511628211u;
  }
  return hash;
}

/* Builds the open-addressing table from ":path" to method. */
static int build_routes(rpc_server *server) {
  size_t methods = 0;
  for (size_t i = 0; i < server->service_count; i++) {
    methods += server->services[i].desc->method_count;
  }
  size_t slots = 16;
  while (slots < methods * 2) {
    slots *= 2;
  }
  server->routes = calloc(slots, sizeof(*server->routes));
  if (server->routes == NULL) {
    return -1;
  }
  server->route_mask = slots - 1;
  for (size_t i = 0; i < server->service_count; i++) {
    const rpc_service_desc *desc = server->services[i].desc;
    for (size_t m = 0; m < desc->method_count; m++) {
      const char *path = desc->methods[m].path;
      size_t slot = hash_path(path, strlen(path)) & server->route_mask;
      while (server->routes[slot].path != NULL) {
        slot = (slot + 1) & server->route_mask;
      }
      server->routes[slot] =
          (route){path, &desc->methods[m], &server->services[i]};
    }
  }
  return 0;
}

static const route *find_route(const rpc_server *server, const char *path) {
  size_t len = strlen(path);
  size_t slot = hash_path(path, len) & server->route_mask;
  while (server->routes[slot].path != NULL) {
    if (strcmp(server->routes[slot].path, path) == 0) {
      return &server->routes[slot];
    }
    slot = (slot + 1) & server->route_mask;
  }
  return NULL;
}

/* The service named by "/pkg.Service/Method", for a clearer UNIMPLEMENTED. */
static const char *find_service_name(const rpc_server *server,
                                     const char *path) {
  if (path == NULL || path[0] != '/') {
    return NULL;
  }
  const char *slash = strchr(path + 1, '/');
  if (slash == NULL) {
    return NULL;
  }
  size_t len = (size_t)(slash - path - 1);
  for (size_t i = 0; i < server->service_count; i++) {
    const char *name = server->services[i].desc->name;
    if (strlen(name) == len && memcmp(name, path + 1, len) == 0) {
      return name;
    }
  }
  return NULL;
}

/* Output. */

static void schedule_flush(rpc_connection *c) {
  if (c->flush_scheduled) {
    return;
  }
  c->flush_scheduled = true;
  c->flush_next = c->thread->flush_list;
  c->thread->flush_list = c;
}

/* What the connection's streams may ask of it (rpc/stream.h). */

static void stream_schedule_flush(void *connection) {
  schedule_flush(connection);
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

static bool connection_done(const rpc_connection *c) {
  if (c->out.len > c->out_offset) {
    return false;
  }
  if (c->phase == PHASE_CLOSING) {
    return true;
  }
  return c->phase == PHASE_H2 && !nghttp2_session_want_read(c->session) &&
         !nghttp2_session_want_write(c->session);
}

/* Writes what nghttp2 has for the socket. Returns 0, or -1 when the
 * connection failed and must be closed. */
static int connection_flush(rpc_connection *c) {
  int rv = rpc_h2_flush(c->phase == PHASE_H2 ? c->session : NULL, &c->socket,
                        &c->out, &c->out_offset);
  if (rv == RPC_H2_BLOCKED) {
    ev_io_start(c->thread->loop, &c->write_watcher);
  } else if (rv == RPC_H2_FLUSHED && !c->read_needs_write) {
    ev_io_stop(c->thread->loop, &c->write_watcher);
  }
  return rv < 0 ? -1 : 0;
}

/* Runs every scheduled flush, and the on_writable hooks they owe, before
 * the loop waits: replies made in one loop iteration share a write. */
static void on_prepare(struct ev_loop *loop, ev_prepare *watcher, int events) {
  (void)loop;
  (void)events;
  server_thread *thread = watcher->data;
  while (thread->flush_list != NULL) {
    rpc_connection *c = thread->flush_list;
    thread->flush_list = c->flush_next;
    c->flush_scheduled = false;
    if (connection_flush(c) != 0 || connection_done(c)) {
      connection_close(c);
      continue;
    }
    for (rpc_stream *stream = c->streams; stream != NULL;) {
      rpc_stream *next = stream->next;
      stream_deliver_writable(stream);
      stream = next;
    }
  }
}

/* Waking a thread that sleeps in epoll costs tens of microseconds; right
 * after input the next request is likely close, so the loop polls without
 * sleeping for busy_poll seconds before it blocks again. */
static void on_spin(struct ev_loop *loop, ev_idle *watcher, int events) {
  (void)events;
  server_thread *thread = watcher->data;
  if (ev_time() - thread->last_input > thread->server->options.busy_poll) {
    ev_idle_stop(loop, watcher);
  }
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

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame,
                            void *user_data) {
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
                           const route *found) {
  const rpc_server_options *options = &c->thread->server->options;
  const rpc_metadata_entry *authorization =
      rpc_metadata_get(&call->request_metadata, "authorization");
  rpc_auth_request request = {
      .service = found->service->desc->name,
      .method = found->method->name,
      .authorization =
          authorization != NULL ? (const char *)authorization->value : NULL,
      .cert_cn = c->peer_cn,
      .peer = connection_peer(c),
  };
  char message[256] = "";
  rpc_status_code code = options->authorize(options->authorize_user, &request,
                                            message, sizeof(message));
  if (code != RPC_STATUS_OK) {
    rpc_call_deny(call, code, message);
  }
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
  const route *found = call->path != NULL ? find_route(server, call->path) : NULL;
  if (found == NULL) {
    rpc_call_begin(call, NULL, find_service_name(server, call->path), NULL,
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

/* Connections. */

static int start_h2(rpc_connection *c) {
  const rpc_server_options *options = &c->thread->server->options;
  if (nghttp2_session_server_new(&c->session, session_callbacks, c) != 0) {
    return -1;
  }
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, options->max_concurrent_streams},
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
  arm_connection_timer(c);
  if (c->thread->stopping) {
    /* Accepted just before shutdown: let it know at once. */
    nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR,
                          NULL, 0);
    c->goaway_sent = true;
  }
  schedule_flush(c);
  return 0;
}

/* Feeds received bytes to the session. Returns 0 or -1 (close). */
static int feed_h2(rpc_connection *c, const uint8_t *data, size_t len) {
  ssize_t rv = nghttp2_session_mem_recv(c->session, data, len);
  if (rv < 0) {
    rpc_log_folded(RPC_LOG_DEBUG, "h2_protocol_error", "error=\"%s\"",
                   nghttp2_strerror((int)rv));
    /* nghttp2 queued a GOAWAY for protocol errors: try to send it. */
    (void)connection_flush(c);
    return -1;
  }
  schedule_flush(c);
  return 0;
}

/* With TLS configured, cleartext would bypass the client certificate
 * check (mTLS): it is refused unless allow_plaintext. As Go's net/http
 * does on a TLS port, what looks like HTTP/1.x gets a 400 that says why,
 * then the close; anything else (the HTTP/2 preface too) is closed without
 * a byte, which gRPC clients report as UNAVAILABLE. Returns 0 or -1. */
static int refuse_plaintext(rpc_connection *c) {
  rpc_log_folded(RPC_LOG_INFO, "plaintext_refused",
                 "reason=\"TLS is configured\"");
  if (memcmp(c->preface, H2_PREFACE_PREFIX, sizeof(c->preface)) == 0) {
    return -1;
  }
  static const char reply[] =
      "HTTP/1.0 400 Bad Request\r\n"
      "Content-Type: text/plain\r\nConnection: close\r\n\r\n"
      "Client sent an HTTP request to an HTTPS server.\n";
  c->phase = PHASE_CLOSING;
  if (rpc_buffer_append(&c->out, reply, sizeof(reply) - 1) != 0) {
    return -1;
  }
  schedule_flush(c);
  return 0;
}

/* Hands an HTTP/1.x connection to the protocol hook with the bytes read
 * so far (head, then rest). Returns CONNECTION_HANDED_OVER (c is freed),
 * or -1 (the hook did not take it, or no memory: close it). */
static int hand_connection_to_hook(rpc_connection *c, const uint8_t *head,
                                   size_t head_len, const uint8_t *rest,
                                   size_t rest_len) {
  const rpc_protocol_hook *hook = &c->thread->server->hook;
  rpc_buffer preread;
  rpc_buffer_init(&preread);
  if ((head_len > 0 && rpc_buffer_append(&preread, head, head_len) != 0) ||
      (rest_len > 0 && rpc_buffer_append(&preread, rest, rest_len) != 0)) {
    rpc_buffer_free(&preread);
    return -1;
  }
  rpc_http1_handoff handoff = {
      .socket = c->socket,
      .preread = preread.data,
      .preread_len = preread.len,
      .loop = c->thread->loop,
      .loop_thread = c->thread->runner,
  };
  int taken = hook->http1_accept(hook->user, &handoff);
  rpc_buffer_free(&preread);
  if (taken != 0) {
    return -1;
  }
  rpc_socket_init(&c->socket, -1, NULL); /* the hook's now */
  connection_close(c);
  return CONNECTION_HANDED_OVER;
}

/* Cleartext: HTTP/2 with prior knowledge begins "PRI "; anything else is
 * HTTP/1.x, the protocol hook's if there is one. Returns 0, -1 (close),
 * or CONNECTION_HANDED_OVER. */
static int feed_plain_preface(rpc_connection *c, const uint8_t *data,
                              size_t len) {
  size_t need = sizeof(c->preface) - c->preface_len;
  size_t take = len < need ? len : need;
  memcpy(c->preface + c->preface_len, data, take);
  c->preface_len += take;
  if (c->preface_len < sizeof(c->preface)) {
    return 0;
  }
  const rpc_server_options *options = &c->thread->server->options;
  if (options->tls != NULL && !options->allow_plaintext) {
    return refuse_plaintext(c);
  }
  if (memcmp(c->preface, H2_PREFACE_PREFIX, sizeof(c->preface)) != 0 &&
      c->thread->server->hook.http1_accept != NULL) {
    return hand_connection_to_hook(c, c->preface, sizeof(c->preface),
                                   data + take, len - take);
  }
  if (memcmp(c->preface, H2_PREFACE_PREFIX, sizeof(c->preface)) != 0) {
    static const char reply[] =
        "HTTP/1.1 505 HTTP Version Not Supported\r\n"
        "Content-Type: text/plain\r\nConnection: close\r\n"
        "Content-Length: 58\r\n\r\n"
        "this port speaks HTTP/2 (gRPC); use HTTP/2 prior knowledge\n";
    c->phase = PHASE_CLOSING;
    if (rpc_buffer_append(&c->out, reply, sizeof(reply) - 1) != 0) {
      return -1;
    }
    schedule_flush(c);
    return 0;
  }
  if (start_h2(c) != 0) {
    return -1;
  }
  if (feed_h2(c, c->preface, sizeof(c->preface)) != 0) {
    return -1;
  }
  return len > take ? feed_h2(c, data + take, len - take) : 0;
}

/* Returns 0, -1 (close), or CONNECTION_HANDED_OVER. */
static int feed(rpc_connection *c, const uint8_t *data, size_t len) {
  switch (c->phase) {
  case PHASE_H2:
    return feed_h2(c, data, len);
  case PHASE_PLAIN_PREFACE:
    return feed_plain_preface(c, data, len);
  default:
    return 0; /* closing: drop */
  }
}

/* Decides TLS or cleartext from the first byte without consuming it. */
static int sniff(rpc_connection *c) {
  uint8_t first;
  ssize_t n = recv(c->socket.fd, &first, 1, MSG_PEEK);
  if (n == 0) {
    return -1;
  }
  if (n < 0) {
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
  }
  const rpc_server *server = c->thread->server;
  SSL_CTX *tls = server->options.tls;
  if (first == TLS_HANDSHAKE_RECORD && tls != NULL) {
    SSL *ssl = SSL_new(tls);
    if (ssl == NULL || SSL_set_fd(ssl, c->socket.fd) != 1 ||
        (server->hook.http1_accept != NULL &&
         rpc_tls_server_offer_http1(ssl) != 0)) {
      SSL_free(ssl);
      return -1;
    }
    SSL_set_accept_state(ssl);
    rpc_socket_attach_tls(&c->socket, ssl);
    c->phase = PHASE_TLS_HANDSHAKE;
  } else {
    c->phase = PHASE_PLAIN_PREFACE;
  }
  return 0;
}

/* Drives the TLS handshake; when done, serves HTTP/2 (ALPN h2) or hands
 * the connection to the protocol hook. Returns 0, -1 (close), or
 * CONNECTION_HANDED_OVER. */
static int handshake(rpc_connection *c) {
  int rv = rpc_socket_handshake(&c->socket);
  if (rv < 0) {
    rpc_log_folded(RPC_LOG_DEBUG, "tls_handshake_failed", NULL);
    return -1;
  }
  if (rv == 0) {
    c->read_needs_write = c->socket.want_write;
    if (c->socket.want_write) {
      ev_io_start(c->thread->loop, &c->write_watcher);
    }
    return 0;
  }
  c->read_needs_write = false;
  const rpc_server *server = c->thread->server;
  if (!rpc_socket_alpn_is_h2(&c->socket)) {
    if (server->hook.http1_accept != NULL) {
      return hand_connection_to_hook(c, NULL, 0, NULL, 0);
    }
    rpc_log_folded(RPC_LOG_DEBUG, "tls_without_h2", NULL);
    return -1;
  }
  if (server->options.authorize != NULL || server->hook.http_request != NULL) {
    c->peer_cn = rpc_socket_peer_cn(&c->socket); /* once per connection */
  }
  return start_h2(c);
}

/* Reads and processes what the socket has. Returns 0, -1 (close), or
 * CONNECTION_HANDED_OVER (c is freed). */
static int connection_read(rpc_connection *c) {
  server_thread *thread = c->thread;
  if (c->phase == PHASE_SNIFF && sniff(c) != 0) {
    return -1;
  }
  if (c->phase == PHASE_TLS_HANDSHAKE) {
    int rv = handshake(c);
    if (rv != 0) {
      return rv;
    }
    if (c->phase == PHASE_TLS_HANDSHAKE) {
      return 0;
    }
  }
  if (c->phase == PHASE_SNIFF) {
    return 0;
  }
  for (int i = 0; i < READS_PER_EVENT; i++) {
    ssize_t n = rpc_socket_read(&c->socket, thread->read_buffer,
                                sizeof(thread->read_buffer));
    if (n == RPC_SOCKET_AGAIN) {
      c->read_needs_write = c->socket.want_write;
      if (c->read_needs_write) {
        ev_io_start(thread->loop, &c->write_watcher);
      }
      return 0;
    }
    if (n <= 0) {
      return -1; /* end of stream or error */
    }
    c->last_read = ev_now(thread->loop);
    if (thread->server->options.busy_poll > 0) {
      thread->last_input = ev_time();
      ev_idle_start(thread->loop, &thread->spinner);
    }
    int rv = feed(c, thread->read_buffer, (size_t)n);
    if (rv != 0) {
      return rv;
    }
    if ((size_t)n < sizeof(thread->read_buffer) && c->socket.ssl == NULL) {
      return 0; /* drained the kernel buffer */
    }
  }
  return 0;
}

static void on_readable(struct ev_loop *loop, ev_io *watcher, int events) {
  (void)loop;
  (void)events;
  rpc_connection *c = watcher->data;
  if (connection_read(c) < 0) {
    connection_close(c);
  }
}

static void on_writable(struct ev_loop *loop, ev_io *watcher, int events) {
  (void)loop;
  (void)events;
  rpc_connection *c = watcher->data;
  if (c->read_needs_write) {
    c->read_needs_write = false;
    int rv = connection_read(c);
    if (rv != 0) {
      if (rv < 0) {
        connection_close(c);
      }
      return;
    }
  }
  if (connection_flush(c) != 0 || connection_done(c)) {
    connection_close(c);
  }
}

static void submit_goaway(rpc_connection *c) {
  if (c->goaway_sent || c->phase != PHASE_H2) {
    return;
  }
  c->goaway_sent = true;
  nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(c->session),
                        NGHTTP2_NO_ERROR, NULL, 0);
  schedule_flush(c);
}

/* Arms the connection's one timer for its next check: half the shortest
 * bound that applies now, so that each is noticed within 1.5 times it. */
static void arm_connection_timer(rpc_connection *c) {
  const rpc_server_options *options = &c->thread->server->options;
  ev_tstamp next = options->keepalive_timeout; /* handshake, PING ack */
  if (c->phase == PHASE_H2 && !c->ping_outstanding) {
    next = options->keepalive_interval < options->idle_timeout
               ? options->keepalive_interval
               : options->idle_timeout;
  }
  ev_timer_stop(c->thread->loop, &c->timer);
  ev_timer_set(&c->timer, next / 2, 0.);
  ev_timer_start(c->thread->loop, &c->timer);
}

/* Idle timeout and keepalive on one timer, re-armed for the next due
 * moment. */
static void on_connection_timer(struct ev_loop *loop, ev_timer *timer,
                                int events) {
  (void)events;
  rpc_connection *c = timer->data;
  const rpc_server_options *options = &c->thread->server->options;
  ev_tstamp now = ev_now(loop);
  if (c->phase != PHASE_H2) {
    /* Handshakes and prefaces get one keepalive timeout to complete. */
    if (now - c->last_read >= options->keepalive_timeout) {
      connection_close(c);
      return;
    }
  } else if (c->ping_outstanding) {
    if (now - c->ping_sent >= options->keepalive_timeout) {
      rpc_log_folded(RPC_LOG_INFO, "keepalive_timeout", NULL);
      connection_close(c);
      return;
    }
  } else if (c->stream_count == 0 &&
             now - c->last_busy >= options->idle_timeout) {
    submit_goaway(c);
  } else if (now - c->last_read >= options->keepalive_interval) {
    if (nghttp2_submit_ping(c->session, NGHTTP2_FLAG_NONE, NULL) == 0) {
      c->ping_outstanding = true;
      c->ping_sent = now;
      schedule_flush(c);
    }
  }
  arm_connection_timer(c);
}

/* Serves fd, which the connection then owns. Returns 0, or -1 (no
 * memory; fd closed). */
static int connection_open(server_thread *thread, int fd) {
  rpc_connection *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    rpc_log_folded(RPC_LOG_WARN, "accept_no_memory", NULL);
    close(fd);
    return -1;
  }
  int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  c->thread = thread;
  rpc_socket_init(&c->socket, fd, NULL);
  rpc_buffer_init(&c->out);
  c->phase = PHASE_SNIFF;
  c->last_read = c->last_busy = ev_now(thread->loop);
  ev_io_init(&c->read_watcher, on_readable, fd, EV_READ);
  ev_io_init(&c->write_watcher, on_writable, fd, EV_WRITE);
  c->read_watcher.data = c->write_watcher.data = c;
  ev_timer_init(&c->timer, on_connection_timer, 0., 0.);
  c->timer.data = c;
  ev_io_start(thread->loop, &c->read_watcher);
  arm_connection_timer(c);
  c->next = thread->connections;
  if (thread->connections != NULL) {
    thread->connections->prev = c;
  }
  thread->connections = c;
  return 0;
}

static void connection_close(rpc_connection *c) {
  server_thread *thread = c->thread;
  ev_io_stop(thread->loop, &c->read_watcher);
  ev_io_stop(thread->loop, &c->write_watcher);
  ev_timer_stop(thread->loop, &c->timer);
  /* nghttp2_session_del calls no stream-close callback: end streams
   * here. */
  while (c->streams != NULL) {
    close_stream(c, c->streams);
  }
  if (c->flush_scheduled) {
    rpc_connection **link = &thread->flush_list;
    while (*link != c) {
      link = &(*link)->flush_next;
    }
    *link = c->flush_next;
  }
  nghttp2_session_del(c->session);
  rpc_socket_close(&c->socket);
  rpc_buffer_free(&c->out);
  rpc_buffer_free(&c->hook_headers);
  free(c->peer_cn);
  if (c->prev != NULL) {
    c->prev->next = c->next;
  } else {
    thread->connections = c->next;
  }
  if (c->next != NULL) {
    c->next->prev = c->prev;
  }
  free(c);
  if (thread->stopping && thread->connections == NULL) {
    ev_break(thread->loop, EVBREAK_ALL);
  }
}

/* Out of descriptors (or kernel memory) the connection stays queued and
 * accept() fails again at once: pause this thread's accepting for a
 * moment instead of spinning on the level-triggered watcher. */
static void pause_accepting(server_thread *thread, int error) {
  rpc_log_folded(RPC_LOG_WARN, "accept_paused", "error=\"%s\" pause_ms=%d",
                 strerror(error), (int)(ACCEPT_PAUSE_SECONDS * 1000));
  ev_io_stop(thread->loop, &thread->accept_watcher);
  ev_timer_stop(thread->loop, &thread->accept_pause);
  ev_timer_set(&thread->accept_pause, ACCEPT_PAUSE_SECONDS, 0.);
  ev_timer_start(thread->loop, &thread->accept_pause);
}

static void on_accept_pause_end(struct ev_loop *loop, ev_timer *timer,
                                int events) {
  (void)events;
  server_thread *thread = timer->data;
  if (!thread->stopping) {
    ev_io_start(loop, &thread->accept_watcher);
  }
}

static void on_accept(struct ev_loop *loop, ev_io *watcher, int events) {
  (void)loop;
  (void)events;
  server_thread *thread = watcher->data;
  for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
    int fd = accept4(thread->server->listen_fd, NULL, NULL,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int error = errno;
      if (error == EMFILE || error == ENFILE || error == ENOBUFS ||
          error == ENOMEM) {
        pause_accepting(thread, error);
      } else if (error != EAGAIN && error != EWOULDBLOCK && error != EINTR &&
                 error != ECONNABORTED) {
        rpc_log_folded(RPC_LOG_WARN, "accept_failed", "error=\"%s\"",
                       strerror(error));
      }
      return;
    }
    rpc_log(RPC_LOG_DEBUG, "connection_accepted", "thread=%u", thread->index);
    (void)connection_open(thread, fd); /* failure is logged */
  }
}

/* Threads, tasks and shutdown. */

int rpc_server_run_on_loops(rpc_server *server,
                            void (*fn)(struct ev_loop *loop, void *arg),
                            void *arg) {
  /* All or nothing: allocate every task before posting any. */
  rpc_loop_task *list = NULL;
  for (unsigned i = 0; i < server->thread_count; i++) {
    rpc_loop_task *task = malloc(sizeof(*task));
    if (task == NULL) {
      while (list != NULL) {
        rpc_loop_task *next = list->next;
        free(list);
        list = next;
      }
      return -1;
    }
    *task = (rpc_loop_task){fn, arg, true, list};
    list = task;
  }
  for (unsigned i = 0; i < server->thread_count; i++) {
    rpc_loop_task *task = list;
    list = task->next;
    rpc_loop_thread_post(server->threads[i]->runner, task);
  }
  return 0;
}

/* Closes what the protocol hook took on the thread's loop. */
static void close_hook_connections(server_thread *thread) {
  const rpc_protocol_hook *hook = &thread->server->hook;
  if (hook->http1_close_loop != NULL) {
    hook->http1_close_loop(hook->user, thread->loop);
  }
}

static void on_grace_expired(struct ev_loop *loop, ev_timer *timer,
                             int events) {
  (void)events;
  server_thread *thread = timer->data;
  if (thread->connections != NULL) {
    rpc_log(RPC_LOG_WARN, "shutdown_grace_expired", "thread=%u",
            thread->index);
  }
  while (thread->connections != NULL) {
    connection_close(thread->connections);
  }
  ev_break(loop, EVBREAK_ALL);
}

static void begin_shutdown(struct ev_loop *loop, void *arg) {
  server_thread *thread = arg;
  thread->stopping = true;
  ev_io_stop(loop, &thread->accept_watcher);
  ev_timer_stop(loop, &thread->accept_pause);
  /* The socket is shared: the last thread to stop accepting closes it,
   * after which connecting is refused. */
  rpc_server *server = thread->server;
  if (server->listen_fd >= 0 &&
      atomic_fetch_sub(&server->accepting_threads, 1) == 1) {
    close(server->listen_fd);
    server->listen_fd = -1;
  }
  close_hook_connections(thread);
  for (rpc_connection *c = thread->connections, *next; c != NULL; c = next) {
    next = c->next;
    if (c->phase == PHASE_H2) {
      submit_goaway(c);
    } else {
      connection_close(c);
    }
  }
  if (thread->connections == NULL) {
    ev_break(loop, EVBREAK_ALL);
    return;
  }
  ev_timer_init(&thread->grace_timer, on_grace_expired,
                thread->server->options.shutdown_grace, 0.);
  thread->grace_timer.data = thread;
  ev_timer_start(loop, &thread->grace_timer);
}

static void thread_free(server_thread *thread) {
  if (thread == NULL) {
    return;
  }
  while (thread->connections != NULL) {
    connection_close(thread->connections);
  }
  if (thread->runner != NULL) {
    close_hook_connections(thread);
    ev_prepare_stop(thread->loop, &thread->flusher);
    ev_idle_stop(thread->loop, &thread->spinner);
    ev_io_stop(thread->loop, &thread->accept_watcher);
    ev_timer_stop(thread->loop, &thread->accept_pause);
    if (thread->owns_runner) {
      rpc_loop_thread_free(thread->runner);
    }
  }
  free(thread);
}

/* thread_new makes loop thread index, accepting from the server's
 * listening socket (which thread 0 opens) unless loop is given (the
 * caller's loop: no listener, no thread of its own). */
static server_thread *thread_new(rpc_server *server, unsigned index,
                                 struct ev_loop *loop, char *err,
                                 size_t err_size) {
  server_thread *thread = calloc(1, sizeof(*thread));
  if (thread == NULL) {
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  thread->server = server;
  thread->index = index;
  thread->owns_runner = loop != NULL || server->options.loop_thread == NULL;
  thread->runner = thread->owns_runner ? rpc_loop_thread_new(loop)
                                       : server->options.loop_thread;
  if (thread->runner == NULL) {
    snprintf(err, err_size, "cannot create an event loop");
    thread_free(thread);
    return NULL;
  }
  thread->loop = rpc_loop_thread_loop(thread->runner);
  ev_prepare_init(&thread->flusher, on_prepare);
  thread->flusher.data = thread;
  ev_prepare_start(thread->loop, &thread->flusher);
  ev_idle_init(&thread->spinner, on_spin);
  thread->spinner.data = thread;
  ev_timer_init(&thread->accept_pause, on_accept_pause_end, 0., 0.);
  thread->accept_pause.data = thread;
  if (loop != NULL) {
    return thread;
  }
  if (index == 0) {
    server->listen_fd =
        rpc_socket_listen(server->options.listen, err, err_size);
    if (server->listen_fd < 0) {
      thread_free(thread);
      return NULL;
    }
    server->port = (uint16_t)rpc_socket_local_port(server->listen_fd);
  }
  ev_io_init(&thread->accept_watcher, on_accept, server->listen_fd, EV_READ);
  thread->accept_watcher.data = thread;
  ev_io_start(thread->loop, &thread->accept_watcher);
  return thread;
}

/* What every way of starting needs: callbacks, routes, thread slots. */
static int prepare_start(rpc_server *server, unsigned threads, char *err,
                         size_t err_size) {
  if (server->started) {
    snprintf(err, err_size, "server already started");
    return -1;
  }
  pthread_once(&callbacks_once, make_callbacks);
  if (session_callbacks == NULL || build_routes(server) != 0) {
    snprintf(err, err_size, "out of memory");
    return -1;
  }
  server->threads = calloc(threads, sizeof(*server->threads));
  if (server->threads == NULL) {
    snprintf(err, err_size, "out of memory");
    return -1;
  }
  return 0;
}

int rpc_server_start_on_loop(rpc_server *server, struct ev_loop *loop,
                             char *err, size_t err_size) {
  if (prepare_start(server, 1, err, err_size) != 0) {
    return -1;
  }
  server->threads[0] = thread_new(server, 0, loop, err, err_size);
  if (server->threads[0] == NULL) {
    return -1;
  }
  server->thread_count = 1;
  server->started = true;
  return 0;
}

int rpc_server_adopt_fd(rpc_server *server, int fd) {
  if (server->thread_count == 0) {
    close(fd);
    return -1;
  }
  return connection_open(server->threads[0], fd);
}

void rpc_server_close_connections(rpc_server *server) {
  for (unsigned i = 0; i < server->thread_count; i++) {
    close_hook_connections(server->threads[i]);
    while (server->threads[i]->connections != NULL) {
      connection_close(server->threads[i]->connections);
    }
  }
}

int rpc_server_start(rpc_server *server, char *err, size_t err_size) {
  if (prepare_start(server, server->options.threads, err, err_size) != 0) {
    return -1;
  }
  for (unsigned i = 0; i < server->options.threads; i++) {
    server->threads[i] = thread_new(server, i, NULL, err, err_size);
    if (server->threads[i] == NULL) {
      goto fail;
    }
    server->thread_count = i + 1;
  }
  for (unsigned i = 0; i < server->thread_count; i++) {
    char name[16];
    snprintf(name, sizeof(name), "rpc-loop-%u", i % 1000);
    int rv = rpc_loop_thread_start(server->threads[i]->runner, name);
    if (rv != 0) {
      snprintf(err, err_size, "cannot start a thread: %s", strerror(rv));
      goto fail;
    }
    server->threads[i]->running = true;
  }
  server->started = true;
  return 0;
fail:
  server->started = true; /* so that shutdown joins what runs */
  rpc_server_shutdown(server);
  return -1;
}

uint16_t rpc_server_port(const rpc_server *server) { return server->port; }

unsigned rpc_server_thread_count(const rpc_server *server) {
  return server->thread_count;
}

struct ev_loop *rpc_server_loop(const rpc_server *server, unsigned index) {
  return index < server->thread_count ? server->threads[index]->loop : NULL;
}

void rpc_server_shutdown(rpc_server *server) {
  unsigned running = 0;
  for (unsigned i = 0; i < server->thread_count; i++) {
    running += server->threads[i]->running ? 1u : 0u;
  }
  atomic_store(&server->accepting_threads, running);
  for (unsigned i = 0; i < server->thread_count; i++) {
    server_thread *thread = server->threads[i];
    if (thread->running) {
      /* The task lives in the thread: no allocation can fail here. */
      thread->shutdown_task = (rpc_loop_task){begin_shutdown, thread, false,
                                              NULL};
      rpc_loop_thread_post(thread->runner, &thread->shutdown_task);
    }
  }
  for (unsigned i = 0; i < server->thread_count; i++) {
    server_thread *thread = server->threads[i];
    if (thread->running) {
      rpc_loop_thread_join(thread->runner);
      thread->running = false;
    }
  }
}

void rpc_server_free(rpc_server *server) {
  if (server == NULL) {
    return;
  }
  for (unsigned i = 0; i < server->thread_count; i++) {
    thread_free(server->threads[i]);
  }
  if (server->listen_fd >= 0) {
    close(server->listen_fd);
  }
  free(server->threads);
  free(server->routes);
  free(server->services);
  free((char *)server->options.listen);
  free(server);
}
