/* protocol_hook.h: the server's extension point for what arrives on its
 * port that is not gRPC (docs/architecture.md "Port sniffing").
 *
 * The server sniffs each connection: TLS or cleartext, then HTTP/2 or not.
 * It serves gRPC itself and gives the rest to a hook set at start-up with
 * rpc_server_set_protocol_hook:
 *   - an HTTP/1.x connection (cleartext that does not begin with the
 *     HTTP/2 preface, or TLS whose ALPN did not pick h2) is handed over
 *     whole to http1_accept, which owns it from then on;
 *   - an HTTP/2 request whose content-type is not application/grpc[+...]
 *     is given to http_request (rpc/http_request.h) instead of being
 *     refused; gRPC requests on the same connection are unaffected.
 * Without a hook (or with a member NULL) the server keeps its own answers:
 * HTTP/1.1 505 on cleartext, a close for TLS without h2, and HTTP/2 405
 * (not POST) or 415 (not gRPC) for requests.
 *
 * Everything here runs on the connection's loop thread. */
#ifndef JOBHUB_RPC_PROTOCOL_HOOK_H
#define JOBHUB_RPC_PROTOCOL_HOOK_H

#include <stddef.h>
#include <stdint.h>

#include "rpc/http_request.h"
#include "rpc/loop_thread.h"
#include "rpc/socket.h"

struct ev_loop;

/* What the server hands over of an HTTP/1.x connection. */
typedef struct rpc_http1_handoff {
  /* The connection: non-blocking, plain or TLS with the handshake done
   * (ALPN "http/1.1" or none). Owned by the handler once http1_accept
   * returns 0; it watches the fd on loop and ends with rpc_socket_close. */
  rpc_socket socket;
  /* Bytes the server already read from the socket: the start of the
   * first request (cleartext; none over TLS). Borrowed for the call. */
  const uint8_t *preread;
  size_t preread_len;
  struct ev_loop *loop;         /* the loop thread the connection is on */
  rpc_loop_thread *loop_thread; /* that loop's mailbox, for other threads */
} rpc_http1_handoff;

/* The hook. Borrowed members; user is passed to every function. */
typedef struct rpc_protocol_hook {
  /* Takes an HTTP/1.x connection. Returns 0 (the handler owns
   * handoff->socket), or -1 (nothing was taken: the server closes it).
   * With it set, the server's TLS also offers ALPN "http/1.1" after h2.
   * NULL: cleartext gets a 505, TLS without h2 is closed. */
  int (*http1_accept)(void *user, const rpc_http1_handoff *handoff);
  /* The server is closing every connection of loop (shutdown, or
   * rpc_server_close_connections): the handler closes every connection it
   * took on loop, at once, and stops their watchers. Called on loop's
   * thread, possibly more than once. Required with http1_accept. */
  void (*http1_close_loop)(void *user, struct ev_loop *loop);
  /* Takes an HTTP/2 request that is not gRPC, once its headers are
   * complete; see rpc/http_request.h for its life. NULL: 405 or 415. */
  void (*http_request)(void *user, rpc_http_request *request);
  void *user;
} rpc_protocol_hook;

#endif
