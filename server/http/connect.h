/* connect.h: the Connect protocol (connectrpc.com/docs/protocol) over the
 * call bridge (rpc/call_bridge.h): unary POSTs of application/proto or
 * application/json (ProtoJSON through rpc/json) with bare messages,
 * Connect's error JSON and the HTTP status of each code; streams of
 * application/connect+proto or +json envelopes ending with an
 * EndStreamResponse that carries the error and trailing metadata. */
#ifndef JOBHUB_SERVER_HTTP_CONNECT_H
#define JOBHUB_SERVER_HTTP_CONNECT_H

#include "rpc/status.h"
#include "server/http/response.h"

typedef enum connect_kind {
  CONNECT_NONE,         /* not a Connect content-type */
  CONNECT_UNARY_PROTO,  /* application/proto */
  CONNECT_UNARY_JSON,   /* application/json */
  CONNECT_STREAM_PROTO, /* application/connect+proto */
  CONNECT_STREAM_JSON,  /* application/connect+json */
} connect_kind;

/* connect_kind_of classifies a content-type value (NULL: none);
 * parameters after ';' are ignored. */
connect_kind connect_kind_of(const char *content_type);

/* connect_code_name returns Connect's name of code: "not_found",
 * "canceled" (one l), ...; "unknown" outside the enum. */
const char *connect_code_name(rpc_status_code code);

/* connect_http_status returns the HTTP status Connect gives code (its
 * table matches Google's mapping: not_found 404, unimplemented 501, ...). */
int connect_http_status(rpc_status_code code);

/* connect_serve serves the exchange's POST request to path, of kind (not
 * CONNECT_NONE), as a Connect call, and finishes the request (with a 500
 * when memory is exhausted). */
void connect_serve(const http_exchange *exchange, const char *path,
                   connect_kind kind);

#endif
