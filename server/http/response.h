/* response.h: what every protocol of the HTTP face (server/http/) needs to
 * answer a request: the exchange (the request with what the face decided
 * for it, such as CORS headers), a list of response headers built from
 * strings and call metadata, and whole small responses. */
#ifndef JOBHUB_SERVER_HTTP_RESPONSE_H
#define JOBHUB_SERVER_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "rpc/buffer.h"
#include "rpc/call_bridge.h"
#include "rpc/descriptor_pool.h"
#include "rpc/http_request.h"
#include "rpc/metadata.h"
#include "rpc/server.h"
#include "rpc/status.h"

/* Most headers the face adds to every response of a request (CORS). */
#define HTTP_EXCHANGE_MAX_EXTRA 3

/* One request as the face hands it to a protocol. Borrowed pointers:
 * server and pool outlive it; the strings of extra are the request's
 * header values or static, valid until the request is finished. */
typedef struct http_exchange {
  rpc_server *server;
  const rpc_descriptor_pool *pool;
  rpc_http_request *request;
  rpc_http_header extra[HTTP_EXCHANGE_MAX_EXTRA];
  size_t extra_count;
} http_exchange;

/* Response headers being built: copies of names and values. */
typedef struct http_header_list {
  rpc_buffer text; /* "name\0value\0" each */
  size_t count;
  rpc_http_header *view; /* made by http_header_list_view */
} http_header_list;

/* http_header_list_init makes an empty list. */
void http_header_list_init(http_header_list *list);

/* http_header_list_free releases the list and its view. */
void http_header_list_free(http_header_list *list);

/* http_header_list_add appends name (lower case) and value, copied.
 * Returns 0 or -1 (no memory; the list is unchanged). */
int http_header_list_add(http_header_list *list, const char *name,
                         const char *value);

/* http_header_list_add_metadata appends every entry of md as a header
 * named prefix + key, -bin values base64-encoded. Returns 0 or -1 (no
 * memory; entries may have been added). */
int http_header_list_add_metadata(http_header_list *list, const char *prefix,
                                  const rpc_metadata *md);

/* http_header_list_add_extra appends the exchange's extra headers.
 * Returns 0 or -1 (no memory). */
int http_header_list_add_extra(http_header_list *list,
                               const http_exchange *exchange);

/* http_header_list_view returns the headers as an array valid until the
 * list changes or is freed, with the count in *count; NULL when memory is
 * exhausted. */
const rpc_http_header *http_header_list_view(http_header_list *list,
                                             size_t *count);

/* http_media_type_is tells whether content-type value (NULL: none) is
 * type, ignoring parameters after ';'. */
bool http_media_type_is(const char *value, const char *type);

/* http_header_is_transport tells whether request header name (lower
 * case) belongs to HTTP or the browser (accept, origin, cookie, sec-...,
 * x-grpc-web, ...) rather than to the call: gRPC-Web and Connect give
 * every other header to the call as metadata. */
bool http_header_is_transport(const char *name);

/* Request body bytes an answer given before the body ended drops while it
 * waits for that end, at most: past them it goes out at once, and the
 * request is reset after it (HTTP/2 RST_STREAM NO_ERROR, which some
 * clients, curl among them, report as an error). */
#define HTTP_DRAIN_BYTES_MAX (16u << 20)

/* http_respond_whole answers the exchange's request, which it takes over
 * (its hooks are replaced): status, content-type (static; NULL: none),
 * the extra headers, and body (len bytes, copied), then finishes it. The
 * answer goes once the request body has ended (see HTTP_DRAIN_BYTES_MAX).
 * Returns 0, or -1 (the request is finished anyway). */
int http_respond_whole(const http_exchange *exchange, int status,
                       const char *content_type, const void *body, size_t len);

/* http_respond_call sends the response headers of a call: status,
 * content-type, the initial metadata, the trailing metadata as headers
 * named trailing_prefix + key (trailing NULL: none; Connect's unary
 * answers put it there), WWW-Authenticate with a 401 (SPEC "Auth"), and
 * the exchange's extra headers. Returns 0 or an RPC_HTTP_REQUEST_ERR_*
 * code. */
int http_respond_call(const http_exchange *exchange, int status,
                      const char *content_type, const rpc_metadata *initial,
                      const char *trailing_prefix,
                      const rpc_metadata *trailing);

/* No content-length: the body is as long as what is written (chunked on
 * HTTP/1.1). */
#define HTTP_LENGTH_UNKNOWN SIZE_MAX

/* http_respond_call_sized is http_respond_call for a body of length bytes
 * known in advance (a content-length header, so HTTP/1.1 need not chunk
 * it), or HTTP_LENGTH_UNKNOWN. */
int http_respond_call_sized(const http_exchange *exchange, int status,
                            const char *content_type,
                            const rpc_metadata *initial,
                            const char *trailing_prefix,
                            const rpc_metadata *trailing, size_t length);

/* http_json_message returns a new JSON string of message (NULL: ""), or
 * a placeholder when it is not UTF-8; NULL when memory is exhausted. */
json_t *http_json_message(const char *message);

/* http_json_dump appends the compact text of value to out and releases
 * value (NULL: fails). Returns 0 or -1. */
int http_json_dump(json_t *value, rpc_buffer *out);

/* http_json_error_body appends grpc-gateway's error body
 * {"code":<code number>,"message":"...","details":[]} to out. Returns 0
 * or -1 (no memory). */
int http_json_error_body(int code, const char *message, rpc_buffer *out);

/* http_collect_body appends request body bytes (a bridge codec's
 * on_body) to body, up to the call's limit of one message: past it the
 * call fails RESOURCE_EXHAUSTED as gRPC's does, *too_large is set and
 * later bytes are dropped. No memory fails the call too. */
void http_collect_body(rpc_bridge *bridge, rpc_buffer *body,
                       const uint8_t *data, size_t len, bool *too_large);

/* http_respond_json_error answers the exchange's request (taken over, as
 * http_respond_whole does) with http_status and the JSON error body of
 * code and message (a 500 text when memory is exhausted). */
void http_respond_json_error(const http_exchange *exchange, int http_status,
                             rpc_status_code code, const char *message);

#endif
