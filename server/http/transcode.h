/* transcode.h: JSON transcoding (SPEC "JSON transcoding endpoint"): a
 * request that matched a google.api.http route (route_table.h) becomes a
 * call of its RPC through the call bridge (rpc/call_bridge.h): the JSON
 * body (whole, a field of the request, or none), then the query
 * parameters, then the path variables fill the request message; the
 * answer is the response as ProtoJSON (or its response_body field), a
 * server stream is newline-delimited JSON ({"result": ...} per message,
 * a failure as a last {"error": ...} line), and an error is grpc-gateway's
 * body {"code", "message", "details"} under the HTTP status Google maps
 * the gRPC code to. */
#ifndef JOBHUB_SERVER_HTTP_TRANSCODE_H
#define JOBHUB_SERVER_HTTP_TRANSCODE_H

#include <stddef.h>

#include "server/http/legacy.h"
#include "server/http/response.h"
#include "server/http/route_table.h"

/* transcode_serve serves the exchange's request as a call of route, with
 * bindings[0..binding_count) found in its ":path" header (they point into
 * that header's value, which lives as long as the request) and query, the
 * text after its '?' (NULL: none; also the request's). legacy_submit
 * (NULL for every other route) makes it the Jobs API's POST /jobs: a body
 * that is not a SubmitRequest but a JSON object is a job of that pool and
 * job type whose config.module_params is the object, and the query names
 * the legacy pool and job type instead of request fields (SPEC, legacy
 * paths). The request is taken and finished (with a 500 when memory is
 * exhausted). */
void transcode_serve(const http_exchange *exchange, const http_route *route,
                     const http_route_binding *bindings, size_t binding_count,
                     const char *query, const legacy_target *legacy_submit);

#endif
