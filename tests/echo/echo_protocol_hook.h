/* echo_protocol_hook.h: a small protocol hook for jobhub-test-server, to
 * show that the server hands over what is not gRPC (rpc/protocol_hook.h):
 * HTTP/1.x connections are served by rpc/http1.h, and its requests and
 * HTTP/2 requests that are not gRPC go to one handler, which answers by
 * path:
 *   /echo       200, the request body, with content-length;
 *   /headers    200, the request headers as "name: value\n" lines;
 *   /trailers   200, the summary below without content-length, and the
 *               trailer "x-hook-trailer: done";
 *   /stream/N   200 without content-length: N lines "chunk I\n", one
 *               every 50 ms;
 *   /cancels    200, how many requests ended with on_cancel so far;
 *   /big/N      N zero bytes, written as the output bounds allow;
 *   /refuse     refuses the body once bytes arrive (a reset, or a close);
 *   /early      200 "early\n" at once, before any body is read;
 *   otherwise   200 "hook: METHOD PATH content-type=TYPE body=BYTES\n"
 *               (BYTES: the request body's length), with content-length.
 * Every answer has the header "x-hook: yes".
 *
 * rpc/http1 options come from the server defaults, changed by the
 * environment: JOBHUB_TEST_HTTP1_HEADER_TIMEOUT and
 * JOBHUB_TEST_HTTP1_IDLE_TIMEOUT (seconds), JOBHUB_TEST_HTTP1_MAX_BODY and
 * JOBHUB_TEST_HTTP1_MAX_HEADER (bytes). */
#ifndef JOBHUB_TESTS_ECHO_PROTOCOL_HOOK_H
#define JOBHUB_TESTS_ECHO_PROTOCOL_HOOK_H

#include "rpc/http_request.h"
#include "rpc/server.h"

/* echo_protocol_hook_install sets the hook on server (before start); it
 * lives as long as the process. Returns 0 or -1. */
int echo_protocol_hook_install(rpc_server *server);

/* echo_protocol_hook_request is the handler above, for other harnesses
 * (the HTTP/1.1 fuzz target): user is unused. */
void echo_protocol_hook_request(void *user, rpc_http_request *request);

#endif
