/* echo_protocol_hook.h: a small protocol hook for jobhub-test-server, to
 * show that the server hands over what is not gRPC (rpc/protocol_hook.h).
 *
 * HTTP/1.x: answers each connection's first request with 200 and the body
 * "http1 hook: METHOD TARGET\n", then closes. HTTP/2 requests that are not
 * gRPC: 200 with the body "http2 hook: METHOD PATH content-type=TYPE
 * body=BYTES\n" (BYTES: the request body's length); for the path
 * /trailers also the trailer "x-hook-trailer: done"; for /big/N, N zero
 * bytes written as flow control takes them; for /refuse, a reset once
 * body bytes arrive. */
#ifndef JOBHUB_TESTS_ECHO_PROTOCOL_HOOK_H
#define JOBHUB_TESTS_ECHO_PROTOCOL_HOOK_H

#include "rpc/server.h"

/* echo_protocol_hook_install sets the hook on server (before start); it
 * lives as long as the process. Returns 0 or -1. */
int echo_protocol_hook_install(rpc_server *server);

#endif
