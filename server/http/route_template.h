/* route_template.h: a google.api.http path template parsed, per the
 * grammar of google/api/http.proto:
 *
 *   Template = "/" Segments [ Verb ] ;
 *   Segments = Segment { "/" Segment } ;
 *   Segment  = "*" | "**" | LITERAL | Variable ;
 *   Variable = "{" FieldPath [ "=" Segments ] "}" ;
 *   FieldPath = IDENT { "." IDENT } ;
 *   Verb     = ":" LITERAL ;
 *
 * "{var}" is "{var=*}". As in grpc-gateway and Envoy, "**" may only be the
 * last segment, so a template is a fixed run of segments, maybe followed
 * by one that takes the rest of the path. */
#ifndef JOBHUB_SERVER_HTTP_ROUTE_TEMPLATE_H
#define JOBHUB_SERVER_HTTP_ROUTE_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

/* At most this many variables in one template. */
#define HTTP_TEMPLATE_MAX_VARIABLES 16

typedef enum http_segment_kind {
  HTTP_SEGMENT_LITERAL,
  HTTP_SEGMENT_SINGLE, /* "*": one segment */
  HTTP_SEGMENT_MULTI,  /* "**": the rest of the path, maybe nothing */
} http_segment_kind;

typedef struct http_template_segment {
  http_segment_kind kind;
  char *literal; /* HTTP_SEGMENT_LITERAL: its text; else NULL */
  size_t literal_len;
} http_template_segment;

/* A variable binds segments [first, first + count) of the path, or from
 * first to the end when its last segment is "**". */
typedef struct http_template_variable {
  char *field_path; /* "id", "a.b" */
  size_t first;
  size_t count;
  bool multi_segment; /* more than one segment, or "**" */
} http_template_variable;

typedef struct http_template {
  http_template_segment *segments;
  size_t segment_count;
  http_template_variable *variables;
  size_t variable_count;
  char *verb; /* after ':', or NULL */
} http_template;

/* http_template_parse parses text into template (which the caller frees
 * with http_template_free, on success only). Returns 0, or -1 with a
 * message naming the position in err[0..err_size) on a syntax error, an
 * empty template, "**" anywhere but last, a variable inside a variable, a
 * field path bound twice, more than HTTP_TEMPLATE_MAX_VARIABLES variables,
 * or no memory. */
int http_template_parse(const char *text, http_template *template, char *err,
                        size_t err_size);

/* http_template_free frees what http_template_parse allocated. */
void http_template_free(http_template *template);

#endif
