/* server_state.h: the state of a server, its loop threads and their
 * connections, shared by server.c (threads, accept, shutdown),
 * server_conn.c (a connection's socket: sniffing, TLS, reads and writes,
 * timers) and server_h2.c (a connection's HTTP/2 session and streams).
 * Internal to the server. */
#ifndef JOBHUB_RPC_SERVER_STATE_H
#define JOBHUB_RPC_SERVER_STATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <nghttp2/nghttp2.h>

#include "rpc/buffer.h"
#include "rpc/loop_thread.h"
#include "rpc/server.h"
#include "rpc/service_table.h"
#include "rpc/socket.h"
#include "rpc/stream.h"

#define SERVER_READ_BUFFER_SIZE 65536

typedef struct server_thread server_thread;
typedef struct rpc_connection rpc_connection;

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
  uint8_t read_buffer[SERVER_READ_BUFFER_SIZE];
};

struct rpc_server {
  rpc_server_options options;
  rpc_service_table services; /* and the routes to their methods */
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

/* server_schedule_flush makes c write what it has for the socket before
 * its loop next waits (server_conn_on_prepare): replies made in one loop
 * iteration share a write. */
static inline void server_schedule_flush(rpc_connection *c) {
  if (c->flush_scheduled) {
    return;
  }
  c->flush_scheduled = true;
  c->flush_next = c->thread->flush_list;
  c->thread->flush_list = c;
}

#endif
