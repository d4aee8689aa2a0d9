/* http1.c: the HTTP/1.x connections the protocol hook hands over
 * (rpc/http1.h): their sockets on the connection's loop, the order of
 * exchanges on each (one at a time), the output, and the header, idle
 * and lingering timeouts. Parsing and responses are http1_exchange.c's. */
#include "rpc/http1.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "rpc/http1_connection.h"
#include "rpc/http_request_internal.h"
#include "rpc/log.h"

/* A closing connection reads and drops what the client still sends for
 * this long after its last answer went out, so that an unread body does
 * not make the kernel reset the connection (and lose the answer). */
#define LINGER_SECONDS 2.
/* Reads per readiness event before other connections get a turn. */
#define READS_PER_EVENT 16
#define READ_CHUNK 16384
/* Rounds of progress in one prepare callback before others get a turn. */
#define PROGRESS_ROUNDS 16

void rpc_http1_options_default(rpc_http1_options *options,
                               const rpc_server_options *server_options) {
  *options = (rpc_http1_options){
      .max_body_bytes = server_options->max_receive_message_bytes,
      .max_header_bytes = server_options->max_header_list_bytes,
      .header_timeout = 10.,
      .idle_timeout = server_options->idle_timeout,
      .max_stream_output_bytes = server_options->max_stream_output_bytes,
      .max_connection_output_bytes =
          server_options->max_connection_output_bytes,
  };
}

rpc_http1_server *rpc_http1_server_new(const rpc_http1_options *options,
                                       rpc_http1_request_fn fn, void *user) {
  rpc_http1_server *server = calloc(1, sizeof(*server));
  if (server == NULL) {
    return NULL;
  }
  if (pthread_mutex_init(&server->lock, NULL) != 0) {
    free(server);
    return NULL;
  }
  server->options = *options;
  server->fn = fn;
  server->user = user;
  return server;
}

void rpc_http1_server_free(rpc_http1_server *server) {
  if (server != NULL) {
    pthread_mutex_destroy(&server->lock);
    free(server);
  }
}

void rpc_http1_http2_request(void *user, rpc_http_request *request) {
  const rpc_http1_server *server = user;
  server->fn(server->user, request);
}

void rpc_http1_protocol_hook(rpc_protocol_hook *hook,
                             rpc_http1_server *server) {
  *hook = (rpc_protocol_hook){
      .http1_accept = rpc_http1_accept,
      .http1_close_loop = rpc_http1_close_loop,
      .http_request = rpc_http1_http2_request,
      .user = server,
  };
}

static void connection_close(http1_connection *c) {
  http1_exchange_cancel(c);
  ev_io_stop(c->loop, &c->read_watcher);
  ev_io_stop(c->loop, &c->write_watcher);
  ev_timer_stop(c->loop, &c->timer);
  ev_prepare_stop(c->loop, &c->flush_runner);
  rpc_http1_server *server = c->server;
  pthread_mutex_lock(&server->lock);
  if (c->prev != NULL) {
    c->prev->next = c->next;
  } else {
    server->connections = c->next;
  }
  if (c->next != NULL) {
    c->next->prev = c->prev;
  }
  pthread_mutex_unlock(&server->lock);
  rpc_socket_close(&c->socket);
  rpc_buffer_free(&c->in);
  rpc_buffer_free(&c->out);
  rpc_buffer_free(&c->url);
  rpc_buffer_free(&c->field);
  rpc_buffer_free(&c->value);
  rpc_buffer_free(&c->headers);
  free(c->cert_cn);
  free(c);
}

void http1_schedule_progress(http1_connection *c) {
  if (!c->progress_scheduled) {
    c->progress_scheduled = true;
    ev_prepare_start(c->loop, &c->flush_runner);
  }
}

/* Writes what is queued. Returns 0, or -1 when the client is gone. */
static int flush(http1_connection *c) {
  while (c->out_offset < c->out.len) {
    ssize_t n = rpc_socket_write(&c->socket, c->out.data + c->out_offset,
                                 c->out.len - c->out_offset);
    if (n == RPC_SOCKET_AGAIN) {
      ev_io_start(c->loop, &c->write_watcher);
      return 0;
    }
    if (n < 0) {
      return -1;
    }
    c->out_offset += (size_t)n;
  }
  rpc_buffer_reset(&c->out);
  c->out_offset = 0;
  c->head_end = 0;
  if (!c->read_needs_write) {
    ev_io_stop(c->loop, &c->write_watcher);
  }
  return 0;
}

/* Reads what the socket has into c->in (or drops it while lingering).
 * Returns 0, or -1 at the end of the stream or on an error. While an
 * exchange whose request is read runs, what follows (pipelined requests)
 * is kept up to a bound, then reading stops until the exchange ends. */
static int fill(http1_connection *c) {
  size_t limit = c->server->options.max_header_bytes + READ_CHUNK;
  for (int i = 0; i < READS_PER_EVENT; i++) {
    if (c->request_done && c->in.len - c->in_offset > limit) {
      ev_io_stop(c->loop, &c->read_watcher); /* until this exchange ends */
      return 0;
    }
    uint8_t sink[READ_CHUNK];
    uint8_t *into = sink;
    if (!c->lingering) {
      if (rpc_buffer_reserve(&c->in, READ_CHUNK) != 0) {
        return -1;
      }
      into = c->in.data + c->in.len;
    }
    ssize_t n = rpc_socket_read(&c->socket, into, READ_CHUNK);
    if (n == RPC_SOCKET_AGAIN) {
      c->read_needs_write = c->socket.want_write;
      if (c->read_needs_write) {
        ev_io_start(c->loop, &c->write_watcher);
      }
      return 0;
    }
    if (n <= 0) {
      return -1;
    }
    c->last_active = ev_now(c->loop);
    if (!c->lingering) {
      c->in.len += (size_t)n;
    }
    if (!c->in_exchange && c->head_started == 0) {
      c->head_started = c->last_active; /* the header timeout runs */
    }
    if ((size_t)n < READ_CHUNK && c->socket.ssl == NULL) {
      return 0; /* the kernel's buffer is drained: no read for EAGAIN */
    }
  }
  return 0;
}

/* When what the connection waits for is due: the rest of a head, the
 * next request, more of a request body, or the end of lingering. 0:
 * nothing (an exchange whose request is read is the handler's to bound,
 * as HTTP/2 streams are). */
static ev_tstamp deadline(const http1_connection *c) {
  const rpc_http1_options *options = &c->server->options;
  if (c->lingering) {
    return c->linger_until;
  }
  if (c->in_exchange) {
    return c->request_done ? 0. : c->last_active + options->idle_timeout;
  }
  if (c->head_started > 0) {
    return c->head_started + options->header_timeout;
  }
  return c->last_active + options->idle_timeout;
}

static void arm_timer(http1_connection *c) {
  ev_timer_stop(c->loop, &c->timer);
  ev_tstamp due = deadline(c);
  if (due > 0) {
    ev_tstamp wait = due - ev_now(c->loop);
    ev_timer_set(&c->timer, wait > 0 ? wait : 0., 0.);
    ev_timer_start(c->loop, &c->timer);
  }
}

/* Closing with everything written: a client that may still be sending
 * gets its bytes read and dropped for a while (lingering), else the
 * close is at once. Returns true when c was closed. */
static bool finish_closing(http1_connection *c) {
  if (c->lingering) {
    return false;
  }
  if (c->peer_eof || (!c->in_exchange && c->error_status == 0)) {
    connection_close(c);
    return true;
  }
  http1_exchange_cancel(c);
  c->lingering = true;
  c->linger_until = ev_now(c->loop) + LINGER_SECONDS;
  (void)shutdown(c->socket.fd, SHUT_WR);
  ev_io_start(c->loop, &c->read_watcher);
  return false;
}

/* Moves the connection on: ends a finished exchange, parses the next
 * request, writes what is queued, delivers on_writable, and closes when
 * it is time. Runs outside the handler's calls. Returns true when c was
 * closed. */
static bool progress(http1_connection *c) {
  for (;;) {
    if (c->in_exchange && c->response_done && c->request_done) {
      http1_exchange_end(c);
      if (!c->closing && !c->peer_eof) {
        ev_io_start(c->loop, &c->read_watcher);
      }
    } else if (c->in_exchange && c->response_done && !c->keep_alive) {
      c->closing = true; /* no need to wait for the rest of the body */
    }
    if (c->closing || c->request_done || c->in_offset == c->in.len) {
      break;
    }
    if (http1_exchange_parse(c) != 0) {
      http1_exchange_fail(c);
      break;
    }
  }
  if (c->peer_eof && !c->closing) {
    /* Nothing more will come: a request that is not whole, or whose
     * answer is not, is given up (as Go's net/http cancels its context). */
    if (c->in_exchange && !c->response_done) {
      http1_exchange_cancel(c);
    }
    c->closing = true;
  }
  size_t written_before = c->out.len;
  if (flush(c) != 0) {
    connection_close(c);
    return true;
  }
  bool drained = c->out.len == 0;
  if (drained && c->closing) {
    if (finish_closing(c)) {
      return true;
    }
  } else if (drained && written_before > 0 && c->request != NULL &&
             c->responded && !c->response_done) {
    rpc_http_request_drained(c->request);
    rpc_http_request_deliver_writable(c->request);
  }
  arm_timer(c);
  return false;
}

static void on_flush_runner(struct ev_loop *loop, ev_prepare *watcher,
                            int events) {
  (void)events;
  http1_connection *c = watcher->data;
  /* A prepare watcher started from here would only run after the loop
   * waits: progress that on_writable asks for again runs now, a bounded
   * number of rounds, then on the socket's next writability. */
  for (int round = 0; round < PROGRESS_ROUNDS; round++) {
    c->progress_scheduled = false;
    if (progress(c)) {
      return;
    }
    if (!c->progress_scheduled) {
      ev_prepare_stop(loop, watcher);
      return;
    }
  }
  ev_io_start(loop, &c->write_watcher);
}

/* Reads, then moves on (see progress for the end of the stream). */
static void on_readable(struct ev_loop *loop, ev_io *watcher, int events) {
  (void)loop;
  (void)events;
  http1_connection *c = watcher->data;
  if (fill(c) != 0) {
    if (c->lingering) {
      connection_close(c);
      return;
    }
    c->peer_eof = true;
    c->keep_alive = false;
    ev_io_stop(c->loop, &c->read_watcher);
  }
  (void)progress(c);
}

static void on_writable(struct ev_loop *loop, ev_io *watcher, int events) {
  (void)loop;
  (void)events;
  http1_connection *c = watcher->data;
  if (c->read_needs_write) {
    c->read_needs_write = false;
    on_readable(loop, &c->read_watcher, EV_READ); /* a TLS read needs it */
    return;
  }
  (void)progress(c);
}

static void on_timer(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)events;
  http1_connection *c = timer->data;
  ev_tstamp due = deadline(c);
  if (due > 0 && ev_now(loop) >= due) {
    if (!c->lingering && !c->in_exchange && c->head_started > 0) {
      rpc_log_folded(RPC_LOG_INFO, "http1_header_timeout", NULL);
    }
    connection_close(c);
    return;
  }
  arm_timer(c);
}

int rpc_http1_accept(void *user, const rpc_http1_handoff *handoff) {
  rpc_http1_server *server = user;
  http1_connection *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    return -1;
  }
  c->server = server;
  c->loop = handoff->loop;
  c->loop_thread = handoff->loop_thread;
  rpc_buffer_init(&c->in);
  rpc_buffer_init(&c->out);
  rpc_buffer_init(&c->url);
  rpc_buffer_init(&c->field);
  rpc_buffer_init(&c->value);
  rpc_buffer_init(&c->headers);
  if (handoff->preread_len > 0 &&
      rpc_buffer_append(&c->in, handoff->preread, handoff->preread_len) != 0) {
    rpc_buffer_free(&c->in);
    free(c);
    return -1;
  }
  c->socket = handoff->socket;
  rpc_socket_peer_address(c->socket.fd, c->peer, sizeof(c->peer));
  c->cert_cn = rpc_socket_peer_cn(&c->socket);
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  c->last_active = ev_now(c->loop);
  c->head_started = c->in.len > 0 ? c->last_active : 0;
  ev_io_init(&c->read_watcher, on_readable, c->socket.fd, EV_READ);
  ev_io_init(&c->write_watcher, on_writable, c->socket.fd, EV_WRITE);
  ev_timer_init(&c->timer, on_timer, 0., 0.);
  ev_prepare_init(&c->flush_runner, on_flush_runner);
  c->read_watcher.data = c->write_watcher.data = c;
  c->timer.data = c->flush_runner.data = c;
  pthread_mutex_lock(&server->lock);
  c->next = server->connections;
  if (server->connections != NULL) {
    server->connections->prev = c;
  }
  server->connections = c;
  pthread_mutex_unlock(&server->lock);
  ev_io_start(c->loop, &c->read_watcher);
  /* The first request may have come whole: serve it before the loop
   * waits, outside this call (the server still holds its connection). */
  http1_schedule_progress(c);
  arm_timer(c);
  return 0;
}

void rpc_http1_close_loop(void *user, struct ev_loop *loop) {
  rpc_http1_server *server = user;
  for (;;) {
    pthread_mutex_lock(&server->lock);
    http1_connection *found = server->connections;
    while (found != NULL && found->loop != loop) {
      found = found->next;
    }
    pthread_mutex_unlock(&server->lock);
    if (found == NULL) {
      return;
    }
    connection_close(found);
  }
}
