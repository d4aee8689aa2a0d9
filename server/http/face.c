/* face.c: the HTTP face's entry (see the header): CORS, then the protocol
 * by content-type and path. */
#include "server/http/face.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/http/connect.h"
#include "server/http/grpc_web.h"
#include "server/http/legacy.h"
#include "server/http/response.h"
#include "server/http/route_rules.h"
#include "server/http/transcode.h"

/* What a browser may read of a response from another origin: gRPC-Web's
 * status (PROTOCOL-WEB) and Connect's headers. */
#define EXPOSED_HEADERS                                                        \
  "grpc-status, grpc-message, grpc-status-details-bin, grpc-encoding, "        \
  "connect-content-encoding, connect-accept-encoding, content-encoding, "      \
  "www-authenticate"

/* What a preflight allows when the browser names no headers. */
#define DEFAULT_ALLOWED_HEADERS                                                \
  "authorization, content-type, x-grpc-web, x-user-agent, grpc-timeout, "      \
  "connect-protocol-version, connect-timeout-ms"

#define PREFLIGHT_MAX_AGE "7200" /* s a browser may cache a preflight */

/* Room for a path in messages and routing; longer ones are cut. */
#define PATH_TEXT_SIZE 512

struct http_face {
  rpc_server *server;
  const rpc_descriptor_pool *pool;
  char **cors_origins;
  size_t cors_origin_count;
  http_route_table *routes; /* NULL until http_face_load_routes */
  legacy_target legacy;     /* --legacy-pool, --legacy-job-type */
};

http_face *http_face_new(const http_face_options *options) {
  http_face *face = calloc(1, sizeof(*face));
  if (face == NULL) {
    return NULL;
  }
  face->server = options->server;
  face->pool = options->pool;
  face->legacy =
      (legacy_target){options->legacy_pool, options->legacy_job_type};
  if (options->cors_origin_count > 0) {
    face->cors_origins =
        calloc(options->cors_origin_count, sizeof(*face->cors_origins));
    if (face->cors_origins == NULL) {
      free(face);
      return NULL;
    }
  }
  for (size_t i = 0; i < options->cors_origin_count; i++) {
    face->cors_origins[i] = strdup(options->cors_origins[i]);
    face->cors_origin_count++;
    if (face->cors_origins[i] == NULL) {
      http_face_free(face);
      return NULL;
    }
  }
  return face;
}

void http_face_free(http_face *face) {
  if (face == NULL) {
    return;
  }
  for (size_t i = 0; i < face->cors_origin_count; i++) {
    free(face->cors_origins[i]);
  }
  free(face->cors_origins);
  http_route_table_free(face->routes);
  free(face);
}

int http_face_load_routes(http_face *face, char *err, size_t err_size) {
  http_route_table *routes = http_route_table_new();
  if (routes == NULL) {
    snprintf(err, err_size, "out of memory");
    return -1;
  }
  if (http_route_rules_add_pool(routes, face->pool, err, err_size) != 0) {
    http_route_table_free(routes);
    return -1;
  }
  http_route_table_free(face->routes);
  face->routes = routes;
  return 0;
}

bool http_face_allows_origin(const http_face *face, const char *origin) {
  if (origin == NULL) {
    return false;
  }
  for (size_t i = 0; i < face->cors_origin_count; i++) {
    if (strcmp(face->cors_origins[i], "*") == 0 ||
        strcmp(face->cors_origins[i], origin) == 0) {
      return true;
    }
  }
  return false;
}

/* "/pkg.Service/Method": the path of an RPC, as Connect calls it. */
static bool path_names_rpc(const char *path) {
  const char *slash = strchr(path + 1, '/');
  return path[0] == '/' && slash != NULL && slash > path + 1 &&
         memchr(path + 1, '.', (size_t)(slash - path - 1)) != NULL &&
         slash[1] != '\0' && strchr(slash + 1, '/') == NULL;
}

/* A CORS preflight (OPTIONS with Origin and
 * Access-Control-Request-Method): 204 with what the origin may do. */
static void answer_preflight(const http_face *face,
                             const http_exchange *exchange,
                             const char *origin) {
  if (!http_face_allows_origin(face, origin)) {
    char message[PATH_TEXT_SIZE];
    snprintf(message, sizeof(message), "origin %.400s is not allowed", origin);
    http_respond_json_error(exchange, 403, RPC_STATUS_PERMISSION_DENIED,
                            message);
    return;
  }
  const char *asked = rpc_http_request_header(exchange->request,
                                              "access-control-request-headers");
  http_header_list list;
  http_header_list_init(&list);
  size_t count = 0;
  const rpc_http_header *headers = NULL;
  if (http_header_list_add(&list, "access-control-allow-origin", origin) == 0 &&
      http_header_list_add(&list, "vary", "origin") == 0 &&
      http_header_list_add(&list, "access-control-allow-methods",
                           "GET, POST, PUT, PATCH, DELETE, OPTIONS") == 0 &&
      http_header_list_add(&list, "access-control-allow-headers",
                           asked != NULL ? asked : DEFAULT_ALLOWED_HEADERS) ==
          0 &&
      http_header_list_add(&list, "access-control-max-age",
                           PREFLIGHT_MAX_AGE) == 0) {
    headers = http_header_list_view(&list, &count);
  }
  if (headers != NULL) {
    (void)rpc_http_request_respond(exchange->request, 204, headers, count);
  }
  rpc_http_request_finish(exchange->request, NULL, 0);
  http_header_list_free(&list);
}

/* Answers 405 with Allow: the path has routes for other methods only. */
static void refuse_method(const http_exchange *exchange, const char *method,
                          const char *path, const http_route_match *match) {
  char allow[128] = "";
  size_t used = 0;
  for (size_t i = 0; i < match->allowed_count && used < sizeof(allow); i++) {
    int n = snprintf(allow + used, sizeof(allow) - used, "%s%s",
                     i > 0 ? ", " : "", match->allowed[i]);
    used += n > 0 ? (size_t)n : 0;
  }
  char message[PATH_TEXT_SIZE + 192];
  snprintf(message, sizeof(message), "%.16s is not allowed on %s (allowed: %s)",
           method, path, allow);
  rpc_buffer body;
  rpc_buffer_init(&body);
  http_header_list list;
  http_header_list_init(&list);
  size_t count = 0;
  const rpc_http_header *headers = NULL;
  if (http_json_error_body((int)RPC_STATUS_UNIMPLEMENTED, message, &body) ==
          0 &&
      http_header_list_add(&list, "content-type", "application/json") == 0 &&
      http_header_list_add(&list, "allow", allow) == 0 &&
      http_header_list_add_extra(&list, exchange) == 0) {
    headers = http_header_list_view(&list, &count);
  }
  if (headers != NULL &&
      rpc_http_request_respond(exchange->request, 405, headers, count) == 0) {
    (void)rpc_http_request_write(exchange->request, body.data, body.len);
  }
  rpc_http_request_finish(exchange->request, NULL, 0);
  http_header_list_free(&list);
  rpc_buffer_free(&body);
}

/* JSON transcoding: the google.api.http route of method and target (the
 * request's ":path", which the bindings point into), or 404 / 405. */
static void serve_route(const http_face *face, const http_exchange *exchange,
                        const char *method, const char *target,
                        const char *path) {
  size_t path_len = strcspn(target, "?#");
  http_route_binding bindings[HTTP_TEMPLATE_MAX_VARIABLES];
  http_route_match match;
  http_route_outcome outcome = http_route_table_match(
      face->routes, method, target, path_len, bindings, &match);
  legacy_path which;
  const char *table;
  size_t table_len;
  const char *query = target[path_len] == '?' ? target + path_len + 1 : NULL;
  if (legacy_path_of(method, target, path_len, &which, &table, &table_len)) {
    legacy_serve(exchange, which, table, table_len, query, &face->legacy);
  } else if (outcome == HTTP_ROUTE_FOUND) {
    /* The Jobs API's POST /jobs takes its own bodies (transcode.h). */
    legacy_target submit;
    char err[128];
    bool jobs_api = strcmp(method, "POST") == 0 &&
                    (strcmp(path, "/jobs") == 0 || strcmp(path, "/jobs/") == 0);
    if (jobs_api && legacy_read_target(query, &face->legacy, &submit, err,
                                       sizeof(err)) != 0) {
      http_respond_json_error(exchange, 400, RPC_STATUS_INVALID_ARGUMENT, err);
      return;
    }
    transcode_serve(exchange, match.route, bindings, match.binding_count, query,
                    jobs_api ? &submit : NULL);
  } else if (outcome == HTTP_ROUTE_METHOD_NOT_ALLOWED) {
    refuse_method(exchange, method, path, &match);
  } else {
    char message[PATH_TEXT_SIZE + 64];
    snprintf(message, sizeof(message), "no route for %.16s %s", method, path);
    http_respond_json_error(exchange, 404, RPC_STATUS_NOT_FOUND, message);
  }
}

void http_face_serve(void *user, rpc_http_request *request) {
  const http_face *face = user;
  const char *method = rpc_http_request_header(request, ":method");
  const char *target = rpc_http_request_header(request, ":path");
  const char *origin = rpc_http_request_header(request, "origin");
  const char *content_type = rpc_http_request_header(request, "content-type");
  char path[PATH_TEXT_SIZE];
  snprintf(path, sizeof(path), "%.*s",
           (int)strcspn(target != NULL ? target : "", "?#"),
           target != NULL ? target : "");
  method = method != NULL ? method : "";

  http_exchange exchange = {
      .server = face->server, .pool = face->pool, .request = request};
  if (http_face_allows_origin(face, origin)) {
    exchange.extra[0] =
        (rpc_http_header){"access-control-allow-origin", origin};
    exchange.extra[1] = (rpc_http_header){"vary", "origin"};
    exchange.extra[2] =
        (rpc_http_header){"access-control-expose-headers", EXPOSED_HEADERS};
    exchange.extra_count = 3;
  }
  bool post = strcmp(method, "POST") == 0;
  if (strcmp(method, "OPTIONS") == 0 && origin != NULL &&
      rpc_http_request_header(request, "access-control-request-method") !=
          NULL) {
    answer_preflight(face, &exchange, origin);
    return;
  }
  grpc_web_kind web = grpc_web_kind_of(content_type);
  if (web != GRPC_WEB_NONE) {
    if (!post) {
      http_respond_json_error(&exchange, 405, RPC_STATUS_UNIMPLEMENTED,
                              "gRPC-Web requires POST");
    } else if (web == GRPC_WEB_OTHER) {
      http_respond_json_error(&exchange, 415, RPC_STATUS_UNIMPLEMENTED,
                              "gRPC-Web is served with protobuf messages only");
    } else {
      grpc_web_serve(&exchange, path, web);
    }
    return;
  }
  connect_kind connect = connect_kind_of(content_type);
  if (connect != CONNECT_NONE && post && path_names_rpc(path)) {
    connect_serve(&exchange, path, connect);
    return;
  }
  if (face->routes != NULL && target != NULL) {
    serve_route(face, &exchange, method, target, path);
    return;
  }
  char message[PATH_TEXT_SIZE + 64];
  snprintf(message, sizeof(message), "no route for %.16s %s", method, path);
  http_respond_json_error(&exchange, 404, RPC_STATUS_NOT_FOUND, message);
}
