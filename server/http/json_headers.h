/* json_headers.h: how JSON transcoding's requests (SPEC "JSON
 * transcoding, the details clients depend on") reach a bridged call
 * (rpc/call_bridge.h): as the codec's call_header and deadline. */
#ifndef JOBHUB_SERVER_HTTP_JSON_HEADERS_H
#define JOBHUB_SERVER_HTTP_JSON_HEADERS_H

#include <stdint.h>

#include "rpc/http_request.h"

/* json_call_header maps a request header to the call: Authorization as
 * itself, Grpc-Metadata-KEY as metadata KEY, grpc-timeout as itself;
 * every other header stays out (returns NULL). The result points into
 * name or is static. */
const char *json_call_header(const char *name);

/* json_call_deadline reads X-Request-Timeout, in seconds (digits, an
 * optional fraction: "2.5"), into *timeout_ns (0: none). grpc-timeout,
 * when both are given, wins (json_call_header passes it on). Returns 0,
 * or -1 for a malformed value. */
int json_call_deadline(const rpc_http_request *request, uint64_t *timeout_ns);

#endif
