/* fuzz_routes.c: the HTTP face's routes on arbitrary input. First byte
 * below 128: the rest is a path template, added to an empty table; when
 * accepted, a template without variables or wildcards must route to
 * itself. Otherwise the first byte picks an HTTP method and the rest is a
 * request target (path and query) matched against jobhub's own rules;
 * bindings must lie inside the path, and the path variables and query
 * parameters are filled into the route's request: accepted fields must
 * read back as ProtoJSON, refused ones must leave the bytes as they were. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobhub_descriptor_set.h"
#include "rpc/buffer.h"
#include "rpc/descriptor_pool.h"
#include "rpc/json.h"
#include "rpc_descriptor_set.h"
#include "server/http/request_fields.h"
#include "server/http/route_rules.h"
#include "server/http/route_table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH"};

static rpc_descriptor_pool *pool;
static http_route_table *jobhub_routes;

static void set_up(void) {
  char err[512];
  pool = rpc_descriptor_pool_new();
  jobhub_routes = http_route_table_new();
  if (pool == NULL || jobhub_routes == NULL ||
      rpc_descriptor_pool_add_set(pool, rpc_descriptor_set,
                                  rpc_descriptor_set_size) != 0 ||
      rpc_descriptor_pool_add_set(pool, jobhub_descriptor_set,
                                  jobhub_descriptor_set_size) != 0 ||
      http_route_rules_add_pool(jobhub_routes, pool, err, sizeof(err)) != 0) {
    abort();
  }
}

static void fuzz_template(const char *text, size_t len) {
  http_route_table *table = http_route_table_new();
  if (table == NULL) {
    abort();
  }
  http_route_spec spec = {.http_method = "GET",
                          .path_template = text,
                          .rpc_path = "/fuzz.S/M",
                          .input_type = "fuzz.Req",
                          .output_type = "fuzz.Resp"};
  char err[512];
  http_route_binding bindings[HTTP_TEMPLATE_MAX_VARIABLES];
  http_route_match match;
  if (http_route_table_add(table, &spec, NULL, err, sizeof(err)) == 0 &&
      strpbrk(text, "{*?#") == NULL &&
      http_route_table_match(table, "GET", text, len, bindings, &match) !=
          HTTP_ROUTE_FOUND) {
    fprintf(stderr, "fuzz_routes: literal template %s does not route\n", text);
    abort();
  }
  http_route_table_free(table);
}

static void fill(const http_route *route, const http_route_binding *bindings,
                 size_t count, const char *query, size_t query_len) {
  rpc_buffer wire, json;
  rpc_buffer_init(&wire);
  rpc_buffer_init(&json);
  char err[512];
  if (http_request_fields_from_path(pool, route->input_type, bindings, count,
                                    &wire, err, sizeof(err)) != 0 &&
      wire.len != 0) {
    abort();
  }
  size_t before = wire.len;
  if (http_request_fields_from_query(pool, route->input_type, query, query_len,
                                     &wire, err, sizeof(err)) != 0 &&
      wire.len != before) {
    abort();
  }
  if (rpc_json_from_wire(pool, route->input_type, wire.data, wire.len, NULL,
                         &json, err, sizeof(err)) != 0) {
    fprintf(stderr, "fuzz_routes: fields of %s do not read back: %s\n",
            route->input_type, err);
    abort();
  }
  rpc_buffer_free(&wire);
  rpc_buffer_free(&json);
}

static void fuzz_request(const char *method, const char *target, size_t len) {
  http_route_binding bindings[HTTP_TEMPLATE_MAX_VARIABLES];
  http_route_match match;
  if (http_route_table_match(jobhub_routes, method, target, len, bindings,
                             &match) != HTTP_ROUTE_FOUND) {
    return;
  }
  for (size_t i = 0; i < match.binding_count; i++) {
    if (bindings[i].value < target ||
        bindings[i].value + bindings[i].len > target + len) {
      abort();
    }
  }
  const char *mark = memchr(target, '?', len);
  const char *query = mark != NULL ? mark + 1 : target + len;
  fill(match.route, bindings, match.binding_count, query,
       (size_t)(target + len - query));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (pool == NULL) {
    set_up();
  }
  if (size == 0) {
    return 0;
  }
  char *text = malloc(size);
  if (text == NULL) {
    return 0;
  }
  memcpy(text, data + 1, size - 1);
  text[size - 1] = '\0';
  if (data[0] < 128) {
    if (memchr(text, '\0', size - 1) == NULL) {
      fuzz_template(text, size - 1);
    }
  } else {
    fuzz_request(methods[(data[0] - 128) % 5], text, size - 1);
  }
  free(text);
  return 0;
}
