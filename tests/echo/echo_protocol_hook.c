/* echo_protocol_hook.c: the test server's protocol hook (see the header):
 * the smallest HTTP/1.x responder over rpc_socket, and an HTTP/2 request
 * handler that reads the body and answers with what it saw. */
#include "echo_protocol_hook.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "rpc/buffer.h"

/* HTTP/1.x. */

typedef struct http1_connection {
  rpc_socket socket;
  struct ev_loop *loop;
  ev_io watcher;
  rpc_buffer in;
  rpc_buffer out; /* the answer, from out_offset */
  size_t out_offset;
  struct http1_connection *prev, *next;
} http1_connection;

/* Connections of every loop; each is only touched on its own loop. */
static pthread_mutex_t connections_lock = PTHREAD_MUTEX_INITIALIZER;
static http1_connection *connections;

static void http1_close(http1_connection *c) {
  ev_io_stop(c->loop, &c->watcher);
  pthread_mutex_lock(&connections_lock);
  if (c->prev != NULL) {
    c->prev->next = c->next;
  } else {
    connections = c->next;
  }
  if (c->next != NULL) {
    c->next->prev = c->prev;
  }
  pthread_mutex_unlock(&connections_lock);
  rpc_socket_close(&c->socket);
  rpc_buffer_free(&c->in);
  rpc_buffer_free(&c->out);
  free(c);
}

/* Waits for the event the socket needs next. */
static void http1_wait(http1_connection *c, bool for_write) {
  ev_io_stop(c->loop, &c->watcher);
  ev_io_set(&c->watcher, c->socket.fd, for_write ? EV_WRITE : EV_READ);
  ev_io_start(c->loop, &c->watcher);
}

/* Makes the answer once the request head is complete. Returns 0, or -1
 * (no memory). */
static int http1_answer(http1_connection *c) {
  const char *line = (const char *)c->in.data;
  const char *end = memchr(line, '\r', c->in.len);
  char body[300];
  snprintf(body, sizeof(body), "http1 hook: %.*s\n",
           (int)(end != NULL ? end - line : 0), line);
  /* "GET /x HTTP/1.1" -> "GET /x" */
  char *version = strstr(body, " HTTP/");
  if (version != NULL) {
    strcpy(version, "\n");
  }
  char head[200];
  int head_len = snprintf(head, sizeof(head),
                          "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                          "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                          strlen(body));
  return rpc_buffer_append(&c->out, head, (size_t)head_len) == 0 &&
                 rpc_buffer_append(&c->out, body, strlen(body)) == 0
             ? 0
             : -1;
}

/* Reads until the request head is complete, then writes the answer and
 * closes. Returns 0 while going on, -1 when c was closed. */
static int http1_progress(http1_connection *c) {
  while (c->out.len == 0) {
    if (c->in.len >= 4 && memmem(c->in.data, c->in.len, "\r\n\r\n", 4)) {
      if (http1_answer(c) != 0) {
        http1_close(c);
        return -1;
      }
      break;
    }
    uint8_t chunk[4096];
    ssize_t n = rpc_socket_read(&c->socket, chunk, sizeof(chunk));
    if (n == RPC_SOCKET_AGAIN) {
      http1_wait(c, c->socket.want_write);
      return 0;
    }
    if (n <= 0 || c->in.len > 65536 ||
        rpc_buffer_append(&c->in, chunk, (size_t)n) != 0) {
      http1_close(c);
      return -1;
    }
  }
  while (c->out_offset < c->out.len) {
    ssize_t n = rpc_socket_write(&c->socket, c->out.data + c->out_offset,
                                 c->out.len - c->out_offset);
    if (n == RPC_SOCKET_AGAIN) {
      http1_wait(c, c->socket.want_write);
      return 0;
    }
    if (n < 0) {
      break;
    }
    c->out_offset += (size_t)n;
  }
  http1_close(c);
  return -1;
}

static void on_http1_io(struct ev_loop *loop, ev_io *watcher, int events) {
  (void)loop;
  (void)events;
  (void)http1_progress(watcher->data);
}

static int http1_accept(void *user, const rpc_http1_handoff *handoff) {
  (void)user;
  http1_connection *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    return -1;
  }
  rpc_buffer_init(&c->in);
  rpc_buffer_init(&c->out);
  if (handoff->preread_len > 0 &&
      rpc_buffer_append(&c->in, handoff->preread, handoff->preread_len) != 0) {
    free(c);
    return -1;
  }
  c->socket = handoff->socket;
  c->loop = handoff->loop;
  ev_io_init(&c->watcher, on_http1_io, c->socket.fd, EV_READ);
  c->watcher.data = c;
  pthread_mutex_lock(&connections_lock);
  c->next = connections;
  if (connections != NULL) {
    connections->prev = c;
  }
  connections = c;
  pthread_mutex_unlock(&connections_lock);
  (void)http1_progress(c); /* the head may have come whole */
  return 0;
}

static void http1_close_loop(void *user, struct ev_loop *loop) {
  (void)user;
  for (;;) {
    pthread_mutex_lock(&connections_lock);
    http1_connection *found = connections;
    while (found != NULL && found->loop != loop) {
      found = found->next;
    }
    pthread_mutex_unlock(&connections_lock);
    if (found == NULL) {
      return;
    }
    http1_close(found);
  }
}

/* HTTP/2 requests that are not gRPC. */

typedef struct http2_exchange {
  size_t body_bytes;
  size_t bytes_to_send; /* /big/N: zero bytes still to write */
} http2_exchange;

static void http2_done(rpc_http_request *request, http2_exchange *exchange,
                       const rpc_http_header *trailers, size_t count) {
  rpc_http_request_finish(request, trailers, count);
  free(exchange);
}

static int on_http2_data(rpc_http_request *request, const uint8_t *data,
                         size_t len, void *arg) {
  (void)data;
  http2_exchange *exchange = arg;
  exchange->body_bytes += len;
  const char *path = rpc_http_request_header(request, ":path");
  return path != NULL && strcmp(path, "/refuse") == 0 ? -1 : 0;
}

/* Writes what is left of a /big/N answer until the queue is full; the
 * rest follows from on_writable. */
static void send_big(rpc_http_request *request, http2_exchange *exchange) {
  static const uint8_t chunk[65536];
  while (exchange->bytes_to_send > 0) {
    size_t n = exchange->bytes_to_send < sizeof(chunk) ? exchange->bytes_to_send
                                                       : sizeof(chunk);
    int rv = rpc_http_request_write(request, chunk, n);
    if (rv == RPC_HTTP_REQUEST_ERR_FULL) {
      return;
    }
    if (rv != 0) {
      break;
    }
    exchange->bytes_to_send -= n;
  }
  http2_done(request, exchange, NULL, 0);
}

static void on_http2_writable(rpc_http_request *request, void *arg) {
  send_big(request, arg);
}

static void on_http2_end(rpc_http_request *request, void *arg) {
  const char *method = rpc_http_request_header(request, ":method");
  const char *path = rpc_http_request_header(request, ":path");
  const char *type = rpc_http_request_header(request, "content-type");
  if (path != NULL && strncmp(path, "/big/", 5) == 0) {
    http2_exchange *exchange = arg;
    exchange->bytes_to_send = strtoull(path + 5, NULL, 10);
    const rpc_http_header binary[] = {
        {"content-type", "application/octet-stream"}};
    if (rpc_http_request_respond(request, 200, binary, 1) != 0) {
      http2_done(request, exchange, NULL, 0);
      return;
    }
    send_big(request, exchange);
    return;
  }
  char body[600];
  snprintf(body, sizeof(body),
           "http2 hook: %.100s %.300s content-type=%.100s body=%zu\n",
           method != NULL ? method : "-", path != NULL ? path : "-",
           type != NULL ? type : "-", ((http2_exchange *)arg)->body_bytes);
  const rpc_http_header headers[] = {{"content-type", "text/plain"},
                                     {"x-hook", "http2"}};
  static const rpc_http_header trailers[] = {{"x-hook-trailer", "done"}};
  bool with_trailers = path != NULL && strcmp(path, "/trailers") == 0;
  if (rpc_http_request_respond(request, 200, headers, 2) == 0) {
    (void)rpc_http_request_write(request, body, strlen(body));
  }
  http2_done(request, arg, trailers, with_trailers ? 1 : 0);
}

static void on_http2_cancel(rpc_http_request *request, void *arg) {
  http2_done(request, arg, NULL, 0);
}

static void on_http2_request(void *user, rpc_http_request *request) {
  (void)user;
  http2_exchange *exchange = calloc(1, sizeof(*exchange));
  if (exchange == NULL) {
    rpc_http_request_finish(request, NULL, 0); /* reset: no answer */
    return;
  }
  static const rpc_http_request_hooks hooks = {
      .on_data = on_http2_data,
      .on_end = on_http2_end,
      .on_cancel = on_http2_cancel,
      .on_writable = on_http2_writable,
  };
  rpc_http_request_set_hooks(request, &hooks, exchange);
}

int echo_protocol_hook_install(rpc_server *server) {
  static const rpc_protocol_hook hook = {
      .http1_accept = http1_accept,
      .http1_close_loop = http1_close_loop,
      .http_request = on_http2_request,
  };
  return rpc_server_set_protocol_hook(server, &hook);
}
