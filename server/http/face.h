/* face.h: the HTTP face, what the port serves besides gRPC (SPEC "HTTP
 * face, auth, browsers, operations"): the protocol hook's http_request
 * (rpc/protocol_hook.h) sends each request, by content-type and path, to
 * gRPC-Web (grpc_web.h), Connect (connect.h) or JSON transcoding
 * (transcode.h, by the route table of route_rules.h), and answers CORS for the
 * configured origins. Everything else gets 404 with the JSON error body. */
#ifndef JOBHUB_SERVER_HTTP_FACE_H
#define JOBHUB_SERVER_HTTP_FACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/descriptor_pool.h"
#include "rpc/http_request.h"
#include "rpc/server.h"

typedef struct http_face http_face;

typedef struct http_face_options {
  rpc_server *server;              /* borrowed; outlives the face's use */
  const rpc_descriptor_pool *pool; /* borrowed; ProtoJSON's types */
  /* --cors-origin values (copied): exact origins such as
   * "https://app.example.com", or "*" for any. None: no CORS headers. */
  const char *const *cors_origins;
  size_t cors_origin_count;
  /* The pool and job type of the legacy paths without ?pool=&jobType=
   * (legacy.h). */
  uint32_t legacy_pool;
  uint32_t legacy_job_type;
} http_face_options;

/* http_face_new makes the face. Returns NULL when memory is exhausted. */
http_face *http_face_new(const http_face_options *options);

/* http_face_free releases the face, after the server stopped. */
void http_face_free(http_face *face);

/* http_face_load_routes builds the JSON transcoding routes from the
 * google.api.http rules of every method in the face's descriptor pool
 * (fill the pool first). Returns 0, or -1 with a message in err: a rule
 * that does not parse, or two rules that conflict (both named). */
int http_face_load_routes(http_face *face, char *err, size_t err_size);

/* http_face_serve is the protocol hook's http_request (user: the face):
 * it takes the request and answers it. */
void http_face_serve(void *face, rpc_http_request *request);

/* http_face_allows_origin tells whether the face answers CORS for origin
 * (NULL: no Origin header, never). */
bool http_face_allows_origin(const http_face *face, const char *origin);

#endif
