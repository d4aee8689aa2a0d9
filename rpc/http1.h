/* http1.h: HTTP/1.1 (and 1.0) on the server's port. The server's protocol
 * hook (rpc/protocol_hook.h) hands over each HTTP/1.x connection; this
 * module parses its requests with libhttp-parser on the connection's own
 * socket (plain or TLS) and loop, and gives each to the same request
 * function HTTP/2 requests go to, as an rpc_http_request
 * (rpc/http_request.h) that a handler cannot tell from an HTTP/2 one:
 * pseudo-headers :method, :path, :authority (from Host) and :scheme come
 * first, header names are in lower case, and hop-by-hop headers
 * (Connection, Keep-Alive, Transfer-Encoding, Upgrade, Expect, Host) are
 * not given.
 *
 * One request at a time on a connection (pipelined bytes wait, kept,
 * until the response before has finished); keep-alive as HTTP/1.1 and
 * 1.0 say; chunked request bodies; a response with the handler's
 * content-length, else chunked (HTTP/1.0: ended by the close), with the
 * handler's trailers only when the request said "TE: trailers"; Expect:
 * 100-continue. Limits answer and close: a body over max_body_bytes 413,
 * a head over max_header_bytes 431, a malformed request 400; a head not
 * complete within header_timeout, or a kept-alive connection quiet for
 * idle_timeout, is closed. See docs/http1.md.
 *
 * Set up, with the server's protocol hook:
 *   rpc_http1_options options;
 *   rpc_http1_options_default(&options, &server_options);
 *   rpc_http1_server *http1 = rpc_http1_server_new(&options, fn, user);
 *   hook.http1_accept = rpc_http1_accept;
 *   hook.http1_close_loop = rpc_http1_close_loop;
 *   hook.http_request = rpc_http1_http2_request;   (fn, for HTTP/2 too)
 *   hook.user = http1;
 * (rpc_http1_protocol_hook fills those four), and
 * rpc_http1_server_free(http1) after rpc_server_free. */
#ifndef JOBHUB_RPC_HTTP1_H
#define JOBHUB_RPC_HTTP1_H

#include <stddef.h>

#include "rpc/http_request.h"
#include "rpc/protocol_hook.h"
#include "rpc/server.h"

struct ev_loop;

typedef struct rpc_http1_server rpc_http1_server;

/* The request function: takes a request whose head is complete, as the
 * protocol hook's http_request does. */
typedef void (*rpc_http1_request_fn)(void *user, rpc_http_request *request);

typedef struct rpc_http1_options {
  size_t max_body_bytes;          /* request body; larger: 413 and close */
  size_t max_header_bytes;        /* request line and headers; larger: 431 */
  double header_timeout;          /* s for a whole request head to arrive */
  double idle_timeout;            /* s a connection may wait for a request */
  size_t max_stream_output_bytes; /* as rpc_server_options' */
  size_t max_connection_output_bytes; /* as rpc_server_options' */
} rpc_http1_options;

/* rpc_http1_options_default fills options from the server's: the body
 * limit is max_receive_message_bytes, the head limit
 * max_header_list_bytes, the idle timeout idle_timeout, the output
 * bounds the same; a head gets 10 s. */
void rpc_http1_options_default(rpc_http1_options *options,
                               const rpc_server_options *server_options);

/* rpc_http1_server_new makes the server of handed-over connections that
 * gives each request to fn(user, request) (fn and user borrowed).
 * options is copied. Returns NULL when memory is exhausted. */
rpc_http1_server *rpc_http1_server_new(const rpc_http1_options *options,
                                       rpc_http1_request_fn fn, void *user);

/* rpc_http1_server_free frees it; every connection must be closed
 * (rpc_http1_close_loop on every loop, as the server's shutdown does). */
void rpc_http1_server_free(rpc_http1_server *server);

/* rpc_http1_accept is the protocol hook's http1_accept (user: the
 * rpc_http1_server): it takes the connection and serves it on
 * handoff->loop. Returns 0, or -1 (no memory: nothing was taken). */
int rpc_http1_accept(void *user, const rpc_http1_handoff *handoff);

/* rpc_http1_close_loop is the protocol hook's http1_close_loop: closes
 * every connection on loop at once (a request in progress gets
 * on_cancel). Call on loop's thread. */
void rpc_http1_close_loop(void *user, struct ev_loop *loop);

/* rpc_http1_protocol_hook fills hook with this module's three functions
 * and server as their user: what rpc_server_set_protocol_hook takes to
 * serve HTTP/1.x and HTTP/2 requests that are not gRPC with server's fn. */
void rpc_http1_protocol_hook(rpc_protocol_hook *hook, rpc_http1_server *server);

/* rpc_http1_http2_request is a protocol hook http_request that passes
 * HTTP/2 requests to the server's fn, so that one handler serves both. */
void rpc_http1_http2_request(void *user, rpc_http_request *request);

#endif
