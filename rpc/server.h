/* server.h: the gRPC server: listeners, one libev loop per thread, HTTP/2
 * sessions, and the registered services.
 *
 * TLS writes go through OpenSSL's write(2): a program using TLS must
 * ignore SIGPIPE (plain sockets use MSG_NOSIGNAL). */
#ifndef JOBHUB_RPC_SERVER_H
#define JOBHUB_RPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "rpc/loop_thread.h"
#include "rpc/method.h"
#include "rpc/protocol_hook.h"
#include "rpc/status.h"

struct ev_loop;

typedef struct rpc_server rpc_server;

/* What an authorization hook sees of a call. The strings are borrowed for
 * the duration of the hook. */
typedef struct rpc_auth_request {
  const char *service;       /* fully qualified: "jobhub.v1.Jobs" */
  const char *method;        /* "Submit" */
  const char *authorization; /* the authorization header's value, or NULL */
  const char *cert_cn;       /* the verified client certificate's subject CN
                                (TLS with a client CA), or NULL */
  const char *peer;          /* the client's IP address, for logs */
} rpc_auth_request;

/* rpc_authorize_fn decides whether a call may run: it returns
 * RPC_STATUS_OK, or the status (with a message written to message) the
 * call is answered with at once, before its handler runs. Called on the
 * loop threads, concurrently: it must be thread-safe and must not block. */
typedef rpc_status_code (*rpc_authorize_fn)(void *user,
                                            const rpc_auth_request *request,
                                            char *message, size_t message_size);
/* Frames that make the server work but carry no work: PRIORITY,
 * RST_STREAM from the client, WINDOW_UPDATE adding fewer than
 * RPC_SERVER_SMALL_WINDOW_UPDATE bytes (or naming a closed stream) beyond
 * two per DATA frame the server sent (a stream's and the connection's), and
 * DATA with neither data nor END_STREAM. Each connection has a token
 * bucket of RPC_SERVER_IDLE_FRAME_BURST of them, refilled at
 * RPC_SERVER_IDLE_FRAME_RATE per second; a connection that runs out gets
 * GOAWAY ENHANCE_YOUR_CALM and is closed. nghttp2 1.52 (Debian) bounds
 * the rest itself: queued PING and SETTINGS acks (1000), CONTINUATION
 * frames per header block (8), and RST_STREAM (graceful GOAWAY past 33/s
 * after a burst of 1000, which this bucket turns into a close). */
#define RPC_SERVER_IDLE_FRAME_BURST 1000
#define RPC_SERVER_IDLE_FRAME_RATE 100.     /* frames per second */
#define RPC_SERVER_SMALL_WINDOW_UPDATE 1024 /* bytes */

typedef struct rpc_server_options {
  const char *listen;               /* "127.0.0.1:50051", port 0: any */
  unsigned threads;                 /* loop threads; 0: one per core */
  size_t max_receive_message_bytes; /* larger: RESOURCE_EXHAUSTED */
  uint32_t max_concurrent_streams;  /* SETTINGS_MAX_CONCURRENT_STREAMS */
  uint32_t max_header_list_bytes;   /* SETTINGS_MAX_HEADER_LIST_SIZE */
  double idle_timeout;              /* s without streams before GOAWAY */
  double keepalive_interval;        /* s between PINGs on a quiet conn */
  double keepalive_timeout;         /* s to wait for the PING ack */
  double shutdown_grace;            /* s in-flight calls get on shutdown */
  double busy_poll;                 /* s a loop spins after activity */
  /* Response bytes a server-streaming or bidi call may have queued that
   * HTTP/2 flow control has not taken (the client does not read): a send
   * past it ends the call with RESOURCE_EXHAUSTED. A call may always
   * queue one message, however large, when its queue is empty. */
  size_t max_stream_output_bytes;
  /* The same for all calls of a connection together, plus the bytes
   * waiting for the socket: any answer that would go past it (a unary
   * one too) ends its call with RESOURCE_EXHAUSTED instead of being
   * queued. */
  size_t max_connection_output_bytes;
  SSL_CTX *tls; /* NULL: h2c only. Borrowed; outlives the server. */
  /* With tls: also serve cleartext h2c on the port (which bypasses any
   * client-certificate check). false: cleartext is refused, see
   * docs/architecture.md "TLS and cleartext". Ignored without tls. */
  bool allow_plaintext;
  /* NULL, or the loop of the only loop thread (threads must be 1), shared
   * with a service that runs on it too (the hub core): the server starts
   * its thread and joins it at shutdown; the caller frees it after
   * rpc_server_free. One core serves calls without a thread switch. */
  rpc_loop_thread *loop_thread;
  /* NULL: every call runs. Otherwise called once per call of a known
   * method, when its request headers are complete. */
  rpc_authorize_fn authorize;
  void *authorize_user; /* passed to authorize; borrowed */
} rpc_server_options;

/* rpc_server_options_default fills the defaults (4 MiB messages, 100
 * streams, 16 KiB headers, 300 s idle, 60 s keepalive, 20 s ack, 10 s
 * grace, 200 us busy poll, 8 MiB output per stream, 64 MiB per
 * connection). */
void rpc_server_options_default(rpc_server_options *options);

/* rpc_server_new makes a server that is not yet listening. options is
 * copied (not tls). Returns NULL with a message in err on failure. */
rpc_server *rpc_server_new(const rpc_server_options *options, char *err,
                           size_t err_size);

/* rpc_server_add_service serves desc's methods with handlers, a pointer to
 * the service's generated typed handler table (borrowed: it must outlive
 * the server), and user, passed to every handler. Only before start.
 * Returns 0, or -1 if the service is already added or no memory. */
int rpc_server_add_service(rpc_server *server, const rpc_service_desc *desc,
                           const void *handlers, void *user);

/* rpc_server_set_protocol_hook gives the server what serves HTTP/1.x
 * connections and HTTP/2 requests that are not gRPC (rpc/protocol_hook.h;
 * hook is copied, its functions and user borrowed). Only before start.
 * Returns 0, or -1 when started or when http1_accept is set without
 * http1_close_loop. */
int rpc_server_set_protocol_hook(rpc_server *server,
                                 const rpc_protocol_hook *hook);

/* rpc_server_service_count and rpc_server_service return the added
 * services, in order. */
size_t rpc_server_service_count(const rpc_server *server);
const rpc_service_desc *rpc_server_service(const rpc_server *server,
                                           size_t index);

/* rpc_server_start binds the listening socket (one, shared by the loop
 * threads; not SO_REUSEPORT, so a port another process listens on fails
 * with "Address already in use") and starts the loop threads. Returns 0,
 * or -1 with a message in err (nothing is left running). */
int rpc_server_start(rpc_server *server, char *err, size_t err_size);

/* rpc_server_port returns the bound port once started. */
uint16_t rpc_server_port(const rpc_server *server);

/* rpc_server_thread_count and rpc_server_loop give the loop threads, for
 * services that keep per-loop state. */
unsigned rpc_server_thread_count(const rpc_server *server);
struct ev_loop *rpc_server_loop(const rpc_server *server, unsigned index);

/* rpc_server_run_on_loops calls fn(loop, arg) on every loop thread, on
 * that thread, and returns at once; fn runs later. Returns 0 or -1 (no
 * memory: fn then runs nowhere). */
int rpc_server_run_on_loops(rpc_server *server,
                            void (*fn)(struct ev_loop *loop, void *arg),
                            void *arg);

/* rpc_server_shutdown stops accepting, sends GOAWAY on every connection,
 * lets in-flight calls finish for up to shutdown_grace seconds, then
 * cancels the rest and joins the threads. Call from the thread that
 * started the server; returns when everything has stopped. */
void rpc_server_shutdown(rpc_server *server);

/* rpc_server_free releases a server that was never started or was shut
 * down. */
void rpc_server_free(rpc_server *server);

#endif
