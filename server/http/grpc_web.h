/* grpc_web.h: gRPC-Web (grpc's PROTOCOL-WEB) over the call bridge
 * (rpc/call_bridge.h): application/grpc-web[+proto] and, base64-encoded
 * both ways, application/grpc-web-text[+proto]; the status and trailing
 * metadata travel in the body as a last frame flagged 0x80. */
#ifndef JOBHUB_SERVER_HTTP_GRPC_WEB_H
#define JOBHUB_SERVER_HTTP_GRPC_WEB_H

#include "server/http/response.h"

typedef enum grpc_web_kind {
  GRPC_WEB_NONE,   /* not application/grpc-web... */
  GRPC_WEB_BINARY, /* application/grpc-web[+proto] */
  GRPC_WEB_TEXT,   /* application/grpc-web-text[+proto] */
  GRPC_WEB_OTHER,  /* gRPC-Web with a codec other than proto: 415 */
} grpc_web_kind;

/* grpc_web_kind_of classifies a content-type value (NULL: none);
 * parameters after ';' are ignored. */
grpc_web_kind grpc_web_kind_of(const char *content_type);

/* grpc_web_serve serves the exchange's POST request to path as a gRPC-Web
 * call of kind GRPC_WEB_BINARY or GRPC_WEB_TEXT, and finishes the request
 * (with a 500 when memory is exhausted). */
void grpc_web_serve(const http_exchange *exchange, const char *path,
                    grpc_web_kind kind);

#endif
