/* route_table.h: the JSON transcoding routes, built once at start-up from
 * the google.api.http rules of the served methods, and matched per
 * request: (HTTP method, path) to the RPC, its body rules and the path
 * variables bound. Matching walks a trie by segment (literals before "*"
 * before "**") and allocates nothing. */
#ifndef JOBHUB_SERVER_HTTP_ROUTE_TABLE_H
#define JOBHUB_SERVER_HTTP_ROUTE_TABLE_H

#include <stdbool.h>
#include <stddef.h>

#include "server/http/route_template.h"

/* A request path of more segments than this matches nothing, and a
 * template of more is refused. */
#define HTTP_ROUTE_MAX_SEGMENTS 64

/* A 405 lists at most this many methods in Allow. */
#define HTTP_ROUTE_MAX_ALLOWED 8

typedef struct http_route_table http_route_table;

/* One binding of one RPC method: what the face needs to call it. All
 * strings are owned by the table. */
typedef struct http_route {
  const char *http_method;   /* "GET", ..., or a custom rule's kind */
  const char *path_template; /* as declared, "/v1/jobs/{id}" */
  const char *rpc_path;      /* "/jobhub.v1.Jobs/Get" */
  const char *input_type;    /* "jobhub.v1.GetRequest", no leading dot */
  const char *output_type;
  const char *body;          /* NULL: none; "*"; or a request field path */
  const char *response_body; /* NULL: the whole response; or a field */
  bool client_streaming;
  bool server_streaming;
  const char *const *variables; /* the field paths the template binds */
  size_t variable_count;
} http_route;

/* What http_route_table_add takes; the table copies every string. */
typedef struct http_route_spec {
  const char *http_method;
  const char *path_template;
  const char *rpc_path;
  const char *input_type; /* a leading dot is dropped */
  const char *output_type;
  const char *body;          /* NULL or "" for none */
  const char *response_body; /* NULL or "" for the whole response */
  bool client_streaming;
  bool server_streaming;
} http_route_spec;

/* A path variable bound by a match: the raw (still percent-encoded) text
 * of the request path it covers. request_fields.h decodes it. */
typedef struct http_route_binding {
  const char *field_path; /* "id", "a.b"; owned by the table */
  const char *value;      /* points into the matched path */
  size_t len;
  bool multi_segment; /* decode keeping %2F */
} http_route_binding;

typedef enum http_route_outcome {
  HTTP_ROUTE_FOUND,
  HTTP_ROUTE_NOT_FOUND,
  HTTP_ROUTE_METHOD_NOT_ALLOWED, /* the path matches for other methods */
} http_route_outcome;

/* The result of a match. HTTP_ROUTE_FOUND: route and binding_count (the
 * bindings array filled). HTTP_ROUTE_METHOD_NOT_ALLOWED: allowed[0..
 * allowed_count) names the methods the path has, for an Allow header. */
typedef struct http_route_match {
  const http_route *route;
  size_t binding_count;
  const char *allowed[HTTP_ROUTE_MAX_ALLOWED];
  size_t allowed_count;
} http_route_match;

/* http_route_table_new returns an empty table, or NULL (no memory). */
http_route_table *http_route_table_new(void);

/* http_route_table_free frees the table, its routes and their strings. */
void http_route_table_free(http_route_table *table);

/* http_route_table_add adds one binding and, when added is not NULL,
 * points *added at its route (owned by the table). Returns 0, or -1 with a
 * message
 * in err[0..err_size): a malformed template (see route_template.h), a
 * missing method, path or RPC, more than HTTP_ROUTE_MAX_SEGMENTS
 * segments, no memory, or a conflict: a route of the
 * same HTTP method whose template is equivalent (the same segments and
 * verb, whatever its variables are called), the message naming both RPCs
 * and both templates. On error the table is as it was. */
int http_route_table_add(http_route_table *table, const http_route_spec *spec,
                         const http_route **added, char *err, size_t err_size);

/* http_route_table_count is the number of routes added. */
size_t http_route_table_count(const http_route_table *table);

/* http_route_table_match finds the route of method (NUL-terminated, "GET")
 * and path[0..path_len), cut at a '?' or '#': its segments split at '/',
 * one trailing '/' ignored, a last segment "x:verb" tried first as x with
 * the verb. Literals match before "*", "*" before "**"; "*" does not
 * match an empty segment. bindings must hold HTTP_TEMPLATE_MAX_VARIABLES
 * entries; they point into path and the table, which must outlive them.
 * Fills match and returns the outcome. Never allocates. */
http_route_outcome http_route_table_match(const http_route_table *table,
                                          const char *method, const char *path,
                                          size_t path_len,
                                          http_route_binding *bindings,
                                          http_route_match *match);

#endif
