/* test_route_rules.c: google.api.http rules read from MethodOptions, on
 * descriptor sets built here: every pattern kind, additional bindings,
 * body and response_body, and the start-up errors (a path variable, body
 * or response_body naming no fitting field, a rule without a pattern,
 * malformed rule bytes, a conflict between two methods) naming the method
 * and the template. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "google/api/http.pb-c.h"
#include "google/protobuf/descriptor.pb-c.h"
#include "rpc/descriptor_pool.h"
#include "server/http/route_rules.h"
#include "server/http/route_table.h"

#define HTTP_RULE_EXTENSION 72295728u
#define MAX_METHODS 4

/* A method's rule: a pattern and its bindings, or raw bytes. */
typedef struct rule_case {
  Google__Api__HttpRule__PatternCase pattern; /* NOT_SET: no pattern */
  const char *path;
  const char *custom_kind;
  const char *body;
  const char *response_body;
  const char *additional_get; /* NULL: none */
  const char *raw;            /* not NULL: these bytes instead */
} rule_case;

/* A pool holding one file "t/rules.proto": messages t.Req {string id;
 * t.Sub sub;}, t.Sub {int32 n;}, t.Resp {string out;} and service t.S
 * with methods M0.. whose rules are cases[0..count). */
typedef struct built {
  rpc_descriptor_pool *pool;
  uint8_t *set; /* borrowed by the pool */
  char err[512];
  int rv;
  http_route_table *table;
} built;

static Google__Protobuf__FieldDescriptorProto *
new_field(const char *name, int number,
          Google__Protobuf__FieldDescriptorProto__Type type,
          const char *type_name) {
  Google__Protobuf__FieldDescriptorProto *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  google__protobuf__field_descriptor_proto__init(f);
  f->name = (char *)name;
  f->has_number = true;
  f->number = number;
  f->has_label = true;
  f->label = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_OPTIONAL;
  f->has_type = true;
  f->type = type;
  f->type_name = (char *)type_name;
  return f;
}

static Google__Protobuf__DescriptorProto *
new_message(const char *name, Google__Protobuf__FieldDescriptorProto *a,
            Google__Protobuf__FieldDescriptorProto *b) {
  Google__Protobuf__DescriptorProto *m = calloc(1, sizeof(*m));
  assert_non_null(m);
  google__protobuf__descriptor_proto__init(m);
  m->name = (char *)name;
  m->field = calloc(2, sizeof(*m->field));
  assert_non_null(m->field);
  m->field[m->n_field++] = a;
  if (b != NULL) {
    m->field[m->n_field++] = b;
  }
  return m;
}

static void set_pattern(Google__Api__HttpRule *rule,
                        Google__Api__HttpRule__PatternCase pattern,
                        const char *path,
                        Google__Api__CustomHttpPattern *custom,
                        const char *kind) {
  rule->pattern_case = pattern;
  switch (pattern) {
  case GOOGLE__API__HTTP_RULE__PATTERN_GET:
    rule->get = (char *)path;
    break;
  case GOOGLE__API__HTTP_RULE__PATTERN_PUT:
    rule->put = (char *)path;
    break;
  case GOOGLE__API__HTTP_RULE__PATTERN_POST:
    rule->post = (char *)path;
    break;
  case GOOGLE__API__HTTP_RULE__PATTERN_DELETE:
    rule->delete_ = (char *)path;
    break;
  case GOOGLE__API__HTTP_RULE__PATTERN_PATCH:
    rule->patch = (char *)path;
    break;
  case GOOGLE__API__HTTP_RULE__PATTERN_CUSTOM:
    custom->kind = (char *)kind;
    custom->path = (char *)path;
    rule->custom = custom;
    break;
  default:
    break;
  }
}

/* The extension's bytes as protobuf-c keeps an unknown field: the length
 * prefix, then the packed HttpRule. The caller frees *data. */
static void rule_bytes(const rule_case *c, uint8_t **data, size_t *len) {
  Google__Api__HttpRule rule = GOOGLE__API__HTTP_RULE__INIT;
  Google__Api__HttpRule extra = GOOGLE__API__HTTP_RULE__INIT;
  Google__Api__HttpRule *extras[] = {&extra};
  Google__Api__CustomHttpPattern custom =
      GOOGLE__API__CUSTOM_HTTP_PATTERN__INIT;
  set_pattern(&rule, c->pattern, c->path, &custom, c->custom_kind);
  rule.body = (char *)(c->body != NULL ? c->body : "");
  rule.response_body =
      (char *)(c->response_body != NULL ? c->response_body : "");
  if (c->additional_get != NULL) {
    set_pattern(&extra, GOOGLE__API__HTTP_RULE__PATTERN_GET, c->additional_get,
                NULL, NULL);
    rule.n_additional_bindings = 1;
    rule.additional_bindings = extras;
  }
  size_t size = c->raw != NULL ? strlen(c->raw)
                               : google__api__http_rule__get_packed_size(&rule);
  assert_true(size < 128);
  *data = malloc(size + 1);
  assert_non_null(*data);
  (*data)[0] = (uint8_t)size;
  if (c->raw != NULL) {
    memcpy(*data + 1, c->raw, size);
  } else {
    google__api__http_rule__pack(&rule, *data + 1);
  }
  *len = size + 1;
}

static built build(const rule_case *cases, size_t count) {
  assert_true(count <= MAX_METHODS);
  Google__Protobuf__FileDescriptorProto file =
      GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
  file.name = (char *)"t/rules.proto";
  file.package = (char *)"t";
  file.syntax = (char *)"proto3";
  Google__Protobuf__DescriptorProto *messages[] = {
      new_message(
          "Req",
          new_field("id", 1,
                    GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_STRING,
                    NULL),
          new_field(
              "sub", 2,
              GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_MESSAGE,
              ".t.Sub")),
      new_message(
          "Sub",
          new_field("n", 1,
                    GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT32,
                    NULL),
          NULL),
      new_message(
          "Resp",
          new_field("out", 1,
                    GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_STRING,
                    NULL),
          NULL),
  };
  file.message_type = messages;
  file.n_message_type = 3;
  static const char *const names[MAX_METHODS] = {"M0", "M1", "M2", "M3"};
  Google__Protobuf__MethodDescriptorProto methods[MAX_METHODS];
  Google__Protobuf__MethodDescriptorProto *method_list[MAX_METHODS];
  Google__Protobuf__MethodOptions options[MAX_METHODS];
  ProtobufCMessageUnknownField unknown[MAX_METHODS];
  for (size_t i = 0; i < count; i++) {
    google__protobuf__method_descriptor_proto__init(&methods[i]);
    google__protobuf__method_options__init(&options[i]);
    methods[i].name = (char *)names[i];
    methods[i].input_type = (char *)".t.Req";
    methods[i].output_type = (char *)".t.Resp";
    methods[i].options = &options[i];
    unknown[i].tag = HTTP_RULE_EXTENSION;
    unknown[i].wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
    rule_bytes(&cases[i], &unknown[i].data, &unknown[i].len);
    options[i].base.n_unknown_fields = 1;
    options[i].base.unknown_fields = &unknown[i];
    method_list[i] = &methods[i];
  }
  Google__Protobuf__ServiceDescriptorProto service =
      GOOGLE__PROTOBUF__SERVICE_DESCRIPTOR_PROTO__INIT;
  Google__Protobuf__ServiceDescriptorProto *services[] = {&service};
  service.name = (char *)"S";
  service.method = method_list;
  service.n_method = count;
  file.service = services;
  file.n_service = 1;
  Google__Protobuf__FileDescriptorProto *files[] = {&file};
  Google__Protobuf__FileDescriptorSet set =
      GOOGLE__PROTOBUF__FILE_DESCRIPTOR_SET__INIT;
  set.file = files;
  set.n_file = 1;
  built b;
  memset(&b, 0, sizeof(b));
  size_t size = google__protobuf__file_descriptor_set__get_packed_size(&set);
  b.set = malloc(size);
  assert_non_null(b.set);
  google__protobuf__file_descriptor_set__pack(&set, b.set);
  for (size_t i = 0; i < count; i++) {
    free(unknown[i].data);
  }
  for (size_t i = 0; i < 3; i++) {
    for (size_t j = 0; j < messages[i]->n_field; j++) {
      free(messages[i]->field[j]);
    }
    free(messages[i]->field);
    free(messages[i]);
  }
  b.pool = rpc_descriptor_pool_new();
  b.table = http_route_table_new();
  assert_non_null(b.pool);
  assert_non_null(b.table);
  assert_int_equal(rpc_descriptor_pool_add_set(b.pool, b.set, size), 0);
  b.rv = http_route_rules_add_service(b.table, b.pool, "t.S", b.err,
                                      sizeof(b.err));
  return b;
}

static void free_built(built *b) {
  http_route_table_free(b->table);
  rpc_descriptor_pool_free(b->pool);
  free(b->set);
}

static const http_route *route_of(const built *b, const char *method,
                                  const char *path) {
  http_route_binding bindings[HTTP_TEMPLATE_MAX_VARIABLES];
  http_route_match m;
  if (http_route_table_match(b->table, method, path, strlen(path), bindings,
                             &m) != HTTP_ROUTE_FOUND) {
    fail_msg("%s %s is not routed", method, path);
  }
  return m.route;
}

static void test_patterns_and_bindings(void **state) {
  (void)state;
  const rule_case cases[] = {
      {.pattern = GOOGLE__API__HTTP_RULE__PATTERN_GET,
       .path = "/r/{id}",
       .response_body = "out",
       .additional_get = "/legacy/{sub.n}"},
      {.pattern = GOOGLE__API__HTTP_RULE__PATTERN_POST,
       .path = "/r",
       .body = "sub"},
      {.pattern = GOOGLE__API__HTTP_RULE__PATTERN_CUSTOM,
       .path = "/h/{id}",
       .custom_kind = "HEAD"},
      {.pattern = GOOGLE__API__HTTP_RULE__PATTERN_PATCH,
       .path = "/r/{id}",
       .body = "*"},
  };
  built b = build(cases, 4);
  if (b.rv != 0) {
    fail_msg("%s", b.err);
  }
  assert_int_equal(http_route_table_count(b.table), 5);
  const http_route *get = route_of(&b, "GET", "/r/1");
  assert_string_equal(get->rpc_path, "/t.S/M0");
  assert_string_equal(get->input_type, "t.Req");
  assert_string_equal(get->output_type, "t.Resp");
  assert_string_equal(get->response_body, "out");
  assert_null(get->body);
  assert_int_equal(get->variable_count, 1);
  assert_string_equal(get->variables[0], "id");
  const http_route *legacy = route_of(&b, "GET", "/legacy/5");
  assert_string_equal(legacy->rpc_path, "/t.S/M0");
  assert_string_equal(legacy->variables[0], "sub.n");
  /* An additional binding has its own body and response_body. */
  assert_null(legacy->response_body);
  const http_route *post = route_of(&b, "POST", "/r");
  assert_string_equal(post->rpc_path, "/t.S/M1");
  assert_string_equal(post->body, "sub");
  assert_string_equal(route_of(&b, "HEAD", "/h/x")->rpc_path, "/t.S/M2");
  assert_string_equal(route_of(&b, "PATCH", "/r/2")->body, "*");
  free_built(&b);
}

/* Asserts that one method whose rule is c is refused at start-up, the
 * error holding each of the NULL-terminated strings. */
static void expect_refused(const rule_case *cases, size_t count, ...) {
  built b = build(cases, count);
  assert_int_equal(b.rv, -1);
  va_list named;
  va_start(named, count);
  for (const char *s = va_arg(named, const char *); s != NULL;
       s = va_arg(named, const char *)) {
    if (strstr(b.err, s) == NULL) {
      fail_msg("\"%s\" not in the error \"%s\"", s, b.err);
    }
  }
  va_end(named);
  free_built(&b);
}

static void test_start_up_errors(void **state) {
  (void)state;
  const rule_case unknown_variable[] = {
      {.pattern = GOOGLE__API__HTTP_RULE__PATTERN_GET, .path = "/r/{nope}"}};
  expect_refused(unknown_variable, 1, "/t.S/M0", "/r/{nope}", "nope", NULL);
  const rule_case message_variable[] = {
      {.pattern = GOOGLE__API__HTTP_RULE__PATTERN_GET, .path = "/r/{sub}"}};
  expect_refused(message_variable, 1, "/t.S/M0", "sub", NULL);
  const rule_case bad_body[] = {
      {.pattern = GOOGLE__API__HTTP_RULE__PATTERN_POST,
       .path = "/r",
       .body = "sub.m"}};
  expect_refused(bad_body, 1, "/t.S/M0", "body", "sub.m", NULL);
  const rule_case bad_response_body[] = {
      {.pattern = GOOGLE__API__HTTP_RULE__PATTERN_GET,
       .path = "/r",
       .response_body = "id"}};
  expect_refused(bad_response_body, 1, "/t.S/M0", "response_body", "id", NULL);
  const rule_case no_pattern[] = {{.body = "*"}};
  expect_refused(no_pattern, 1, "/t.S/M0", "no pattern", NULL);
  const rule_case malformed[] = {{.raw = "\x12\x7f/r"}};
  expect_refused(malformed, 1, "/t.S/M0", "malformed", NULL);
  const rule_case bad_template[] = {
      {.pattern = GOOGLE__API__HTTP_RULE__PATTERN_GET, .path = "/r/{id"}};
  expect_refused(bad_template, 1, "/t.S/M0", "/r/{id", NULL);
  const rule_case conflict[] = {
      {.pattern = GOOGLE__API__HTTP_RULE__PATTERN_GET, .path = "/r/{id}"},
      {.pattern = GOOGLE__API__HTTP_RULE__PATTERN_GET, .path = "/r/{sub.n}"},
  };
  expect_refused(conflict, 2, "/t.S/M0", "/t.S/M1", "/r/{id}", "/r/{sub.n}",
                 NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_patterns_and_bindings),
      cmocka_unit_test(test_start_up_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
