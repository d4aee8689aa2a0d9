/* route_rules.c: google.api.http rules read from the MethodOptions of a
 * descriptor pool. protobuf-c knows no extensions, so the rule arrives as
 * an unknown field of the decoded MethodOptions; its bytes are unpacked
 * as the HttpRule they are. */
#include "server/http/route_rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/api/http.pb-c.h"
#include "rpc/buffer.h"
#include "rpc/json_internal.h" /* rpc_json_read_varint */
#include "server/http/request_fields.h"

/* google/api/annotations.proto: extend MethodOptions { HttpRule http =
 * 72295728; } */
#define HTTP_RULE_EXTENSION 72295728u

/* protobuf-c keeps a length-delimited unknown field as it came after its
 * tag, length prefix included. Returns the prefix's size, or 0 when f is
 * not such a field or its prefix does not give its length. */
static size_t length_prefix(const ProtobufCMessageUnknownField *f) {
  uint64_t value = 0;
  size_t used = f->wire_type == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED
                    ? rpc_json_read_varint(f->data, f->len, &value)
                    : 0;
  return used > 0 && value == f->len - used ? used : 0;
}

/* The HttpRule of options, or NULL when it has none. A field given in
 * several records is their concatenation, as the wire format merges
 * them. Sets *malformed when the bytes do not unpack (or no memory). The
 * caller frees the rule with google__api__http_rule__free_unpacked. */
static Google__Api__HttpRule *
http_rule_of(const Google__Protobuf__MethodOptions *options, bool *malformed) {
  *malformed = false;
  if (options == NULL) {
    return NULL;
  }
  rpc_buffer bytes;
  rpc_buffer_init(&bytes);
  bool present = false;
  for (unsigned i = 0; i < options->base.n_unknown_fields; i++) {
    const ProtobufCMessageUnknownField *f = &options->base.unknown_fields[i];
    if (f->tag != HTTP_RULE_EXTENSION) {
      continue;
    }
    present = true;
    size_t prefix = length_prefix(f);
    if (prefix == 0 ||
        rpc_buffer_append(&bytes, f->data + prefix, f->len - prefix) != 0) {
      *malformed = true;
    }
  }
  Google__Api__HttpRule *rule = NULL;
  if (present && !*malformed) {
    rule = google__api__http_rule__unpack(NULL, bytes.len, bytes.data);
    *malformed = rule == NULL;
  }
  rpc_buffer_free(&bytes);
  return rule;
}

/* The HTTP method and path of a rule's pattern; false when it has none. */
static bool pattern_of(const Google__Api__HttpRule *rule, const char **method,
                       const char **path) {
  switch (rule->pattern_case) {
  case GOOGLE__API__HTTP_RULE__PATTERN_GET:
    *method = "GET";
    *path = rule->get;
    return true;
  case GOOGLE__API__HTTP_RULE__PATTERN_PUT:
    *method = "PUT";
    *path = rule->put;
    return true;
  case GOOGLE__API__HTTP_RULE__PATTERN_POST:
    *method = "POST";
    *path = rule->post;
    return true;
  case GOOGLE__API__HTTP_RULE__PATTERN_DELETE:
    *method = "DELETE";
    *path = rule->delete_;
    return true;
  case GOOGLE__API__HTTP_RULE__PATTERN_PATCH:
    *method = "PATCH";
    *path = rule->patch;
    return true;
  case GOOGLE__API__HTTP_RULE__PATTERN_CUSTOM:
    *method = rule->custom != NULL ? rule->custom->kind : NULL;
    *path = rule->custom != NULL ? rule->custom->path : NULL;
    return *method != NULL && *method[0] != '\0' && *path != NULL;
  default:
    return false;
  }
}

/* Fails with err naming the route when field of type is not one the
 * rule may name. */
static int check_field(const rpc_descriptor_pool *pool,
                       const http_route_spec *spec, const char *what,
                       const char *type, const char *field, bool any_leaf,
                       char *err, size_t err_size) {
  char why[256];
  if (http_request_field_check(pool, type, field, any_leaf, why, sizeof(why)) ==
      0) {
    return 0;
  }
  snprintf(err, err_size, "%s %s of %s: %s: %s", spec->http_method,
           spec->path_template, spec->rpc_path, what, why);
  return -1;
}

/* The fields a route just added binds must exist in its messages: path
 * variables scalars of the request, body and response_body any field. */
static int check_fields(const rpc_descriptor_pool *pool,
                        const http_route_spec *spec, const http_route *route,
                        char *err, size_t err_size) {
  for (size_t i = 0; i < route->variable_count; i++) {
    if (check_field(pool, spec, "path variable", route->input_type,
                    route->variables[i], false, err, err_size) != 0) {
      return -1;
    }
  }
  if (route->body != NULL && strcmp(route->body, "*") != 0 &&
      check_field(pool, spec, "body", route->input_type, route->body, true, err,
                  err_size) != 0) {
    return -1;
  }
  if (route->response_body != NULL &&
      check_field(pool, spec, "response_body", route->output_type,
                  route->response_body, true, err, err_size) != 0) {
    return -1;
  }
  return 0;
}

static int add_binding(http_route_table *table, const rpc_descriptor_pool *pool,
                       const Google__Api__HttpRule *rule, http_route_spec spec,
                       char *err, size_t err_size) {
  if (!pattern_of(rule, &spec.http_method, &spec.path_template)) {
    snprintf(err, err_size, "the google.api.http rule of %s has no pattern",
             spec.rpc_path);
    return -1;
  }
  spec.body = rule->body;
  spec.response_body = rule->response_body;
  const http_route *route = NULL;
  if (http_route_table_add(table, &spec, &route, err, err_size) != 0) {
    return -1;
  }
  return check_fields(pool, &spec, route, err, err_size);
}

static int add_method(http_route_table *table, const rpc_descriptor_pool *pool,
                      const char *service,
                      const Google__Protobuf__MethodDescriptorProto *method,
                      char *err, size_t err_size) {
  bool malformed = false;
  Google__Api__HttpRule *rule = http_rule_of(method->options, &malformed);
  char rpc_path[512];
  snprintf(rpc_path, sizeof(rpc_path), "/%s/%s", service,
           method->name != NULL ? method->name : "");
  if (malformed) {
    snprintf(err, err_size, "the google.api.http rule of %s is malformed",
             rpc_path);
    return -1;
  }
  if (rule == NULL) {
    return 0;
  }
  http_route_spec spec = {
      .rpc_path = rpc_path,
      .input_type = method->input_type,
      .output_type = method->output_type,
      .client_streaming =
          method->has_client_streaming && method->client_streaming,
      .server_streaming =
          method->has_server_streaming && method->server_streaming,
  };
  int rv = add_binding(table, pool, rule, spec, err, err_size);
  for (size_t i = 0; rv == 0 && i < rule->n_additional_bindings; i++) {
    rv = add_binding(table, pool, rule->additional_bindings[i], spec, err,
                     err_size);
  }
  google__api__http_rule__free_unpacked(rule, NULL);
  return rv;
}

static int add_file_service(http_route_table *table,
                            const rpc_descriptor_pool *pool,
                            const Google__Protobuf__FileDescriptorProto *file,
                            const Google__Protobuf__ServiceDescriptorProto *s,
                            char *err, size_t err_size) {
  char service[256];
  const char *package = file->package != NULL ? file->package : "";
  snprintf(service, sizeof(service), "%s%s%s", package, package[0] ? "." : "",
           s->name != NULL ? s->name : "");
  for (size_t i = 0; i < s->n_method; i++) {
    if (add_method(table, pool, service, s->method[i], err, err_size) != 0) {
      return -1;
    }
  }
  return 0;
}

int http_route_rules_add_service(http_route_table *table,
                                 const rpc_descriptor_pool *pool,
                                 const char *service, char *err,
                                 size_t err_size) {
  const rpc_descriptor_file *file =
      rpc_descriptor_pool_find_symbol(pool, service);
  const Google__Protobuf__FileDescriptorProto *proto =
      file != NULL ? file->proto : NULL;
  const char *package =
      proto != NULL && proto->package != NULL ? proto->package : "";
  size_t package_len = strlen(package);
  for (size_t i = 0; proto != NULL && i < proto->n_service; i++) {
    const char *name = proto->service[i]->name;
    if (name == NULL) {
      continue;
    }
    bool same = package_len == 0
                    ? strcmp(service, name) == 0
                    : strncmp(service, package, package_len) == 0 &&
                          service[package_len] == '.' &&
                          strcmp(service + package_len + 1, name) == 0;
    if (same) {
      return add_file_service(table, pool, proto, proto->service[i], err,
                              err_size);
    }
  }
  snprintf(err, err_size, "service %s is not in the descriptor pool", service);
  return -1;
}

int http_route_rules_add_pool(http_route_table *table,
                              const rpc_descriptor_pool *pool, char *err,
                              size_t err_size) {
  for (size_t i = 0; i < rpc_descriptor_pool_file_count(pool); i++) {
    const Google__Protobuf__FileDescriptorProto *proto =
        rpc_descriptor_pool_file(pool, i)->proto;
    for (size_t j = 0; j < proto->n_service; j++) {
      if (add_file_service(table, pool, proto, proto->service[j], err,
                           err_size) != 0) {
        return -1;
      }
    }
  }
  return 0;
}
