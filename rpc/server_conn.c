/* server_conn.c: a server connection's socket: sniffing TLS or
 * cleartext, the TLS handshake and ALPN, the HTTP/2 preface or the hand-over
 * of HTTP/1.x to the protocol hook, reads and batched writes, and the
 * timer for handshakes, idle connections and keepalive. The HTTP/2
 * session is server_h2.c's. */
#include "rpc/server_conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rpc/h2_io.h"
#include "rpc/log.h"
#include "rpc/server_h2.h"
#include "rpc/tls.h"

/* Reads per readiness event before other connections get a turn. */
#define READS_PER_EVENT 16
#define H2_PREFACE_PREFIX "PRI "
#define TLS_HANDSHAKE_RECORD 0x16
/* What reading returns when the connection went to the protocol hook: the
 * connection is freed, touch nothing of it. */
#define CONNECTION_HANDED_OVER 1

static void arm_connection_timer(rpc_connection *c);

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
void server_conn_on_prepare(struct ev_loop *loop, ev_prepare *watcher,
                            int events) {
  (void)loop;
  (void)events;
  server_thread *thread = watcher->data;
  while (thread->flush_list != NULL) {
    rpc_connection *c = thread->flush_list;
    thread->flush_list = c->flush_next;
    c->flush_scheduled = false;
    if (connection_flush(c) != 0 || connection_done(c)) {
      server_conn_close(c);
      continue;
    }
    server_h2_deliver_writable(c);
  }
}

/* Waking a thread that sleeps in epoll costs tens of microseconds; right
 * after input the next request is likely close, so the loop polls without
 * sleeping for busy_poll seconds before it blocks again. */
void server_conn_on_spin(struct ev_loop *loop, ev_idle *watcher, int events) {
  (void)events;
  server_thread *thread = watcher->data;
  if (ev_time() - thread->last_input > thread->server->options.busy_poll) {
    ev_idle_stop(loop, watcher);
  }
}

/* Sends reply (len bytes) on a connection that is not HTTP/2, then
 * closes it. Returns 0 or -1 (no memory: close now). */
static int reply_and_close(rpc_connection *c, const char *reply, size_t len) {
  c->phase = PHASE_CLOSING;
  if (rpc_buffer_append(&c->out, reply, len) != 0) {
    return -1;
  }
  server_schedule_flush(c);
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
  return reply_and_close(c, reply, sizeof(reply) - 1);
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
  server_conn_close(c);
  return CONNECTION_HANDED_OVER;
}

/* Starts HTTP/2 on c. Returns 0 or -1 (close). */
static int start_h2(rpc_connection *c) {
  if (server_h2_start(c) != 0) {
    return -1;
  }
  arm_connection_timer(c);
  return 0;
}

/* Feeds received bytes to the session. Returns 0 or -1 (close). */
static int feed_h2(rpc_connection *c, const uint8_t *data, size_t len) {
  if (server_h2_feed(c, data, len) != 0) {
    /* nghttp2 queued a GOAWAY for protocol errors: try to send it. */
    (void)connection_flush(c);
    return -1;
  }
  return 0;
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
    return reply_and_close(c, reply, sizeof(reply) - 1);
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
    server_conn_close(c);
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
        server_conn_close(c);
      }
      return;
    }
  }
  if (connection_flush(c) != 0 || connection_done(c)) {
    server_conn_close(c);
  }
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
      server_conn_close(c);
      return;
    }
  } else if (c->ping_outstanding) {
    if (now - c->ping_sent >= options->keepalive_timeout) {
      rpc_log_folded(RPC_LOG_INFO, "keepalive_timeout", NULL);
      server_conn_close(c);
      return;
    }
  } else if (c->stream_count == 0 &&
             now - c->last_busy >= options->idle_timeout) {
    server_h2_goaway(c);
  } else if (now - c->last_read >= options->keepalive_interval) {
    if (nghttp2_submit_ping(c->session, NGHTTP2_FLAG_NONE, NULL) == 0) {
      c->ping_outstanding = true;
      c->ping_sent = now;
      server_schedule_flush(c);
    }
  }
  arm_connection_timer(c);
}

int server_conn_open(server_thread *thread, int fd) {
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

void server_conn_close(rpc_connection *c) {
  server_thread *thread = c->thread;
  ev_io_stop(thread->loop, &c->read_watcher);
  ev_io_stop(thread->loop, &c->write_watcher);
  ev_timer_stop(thread->loop, &c->timer);
  server_h2_end(c);
  if (c->flush_scheduled) {
    rpc_connection **link = &thread->flush_list;
    while (*link != c) {
      link = &(*link)->flush_next;
    }
    *link = c->flush_next;
  }
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

void server_conn_close_hooked(server_thread *thread) {
  const rpc_protocol_hook *hook = &thread->server->hook;
  if (hook->http1_close_loop != NULL) {
    hook->http1_close_loop(hook->user, thread->loop);
  }
}
