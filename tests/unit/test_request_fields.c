/* test_request_fields.c: request fields from path variables and query
 * parameters, checked through the ProtoJSON of the bytes appended: every
 * scalar type, JSON and proto names, repeated keys, nested keys, merging
 * over a body, percent-decoding, and the errors naming key and value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "jobhub_descriptor_set.h"
#include "json_test_descriptor_set.h"
#include "rpc/descriptor_pool.h"
#include "rpc/json.h"
#include "rpc_descriptor_set.h"
#include "server/http/request_fields.h"

static rpc_descriptor_pool *pool;

static int set_up(void **state) {
  (void)state;
  pool = rpc_descriptor_pool_new();
  assert_non_null(pool);
  assert_int_equal(rpc_descriptor_pool_add_set(pool, rpc_descriptor_set,
                                               rpc_descriptor_set_size),
                   0);
  assert_int_equal(rpc_descriptor_pool_add_set(pool, jobhub_descriptor_set,
                                               jobhub_descriptor_set_size),
                   0);
  assert_int_equal(rpc_descriptor_pool_add_set(pool, json_test_descriptor_set,
                                               json_test_descriptor_set_size),
                   0);
  return 0;
}

static int tear_down(void **state) {
  (void)state;
  rpc_descriptor_pool_free(pool);
  return 0;
}

/* Asserts that wire, a message of type, reads as the JSON expected. */
static void expect_json(const char *type, const rpc_buffer *wire,
                        const char *expected) {
  rpc_buffer json;
  rpc_buffer_init(&json);
  char err[256] = "";
  if (rpc_json_from_wire(pool, type, wire->data, wire->len, NULL, &json, err,
                         sizeof(err)) != 0) {
    fail_msg("%s: %s", expected, err);
  }
  assert_int_equal(rpc_buffer_append(&json, "", 1), 0);
  assert_string_equal((const char *)json.data, expected);
  rpc_buffer_free(&json);
}

/* Applies the query to an empty message of type (or body, JSON, when
 * not NULL) and asserts the JSON that results. */
static void expect_query(const char *type, const char *body, const char *query,
                         const char *expected) {
  rpc_buffer wire;
  rpc_buffer_init(&wire);
  char err[256] = "";
  if (body != NULL && rpc_json_to_wire(pool, type, body, strlen(body), &wire,
                                       err, sizeof(err)) != 0) {
    fail_msg("body %s: %s", body, err);
  }
  if (http_request_fields_from_query(pool, type, query, strlen(query), &wire,
                                     err, sizeof(err)) != 0) {
    fail_msg("?%s: %s", query, err);
  }
  expect_json(type, &wire, expected);
  rpc_buffer_free(&wire);
}

/* Asserts the query fails, leaving the bytes as they were, with an error
 * holding each of the NULL-terminated strings named. */
static void expect_query_error(const char *type, const char *query, ...) {
  rpc_buffer wire;
  rpc_buffer_init(&wire);
  assert_int_equal(rpc_buffer_append(&wire, "\x18\x01", 2), 0);
  char err[256] = "";
  if (http_request_fields_from_query(pool, type, query, strlen(query), &wire,
                                     err, sizeof(err)) != -1) {
    fail_msg("?%s was accepted", query);
  }
  assert_int_equal(wire.len, 2);
  va_list named;
  va_start(named, query);
  for (const char *s = va_arg(named, const char *); s != NULL;
       s = va_arg(named, const char *)) {
    if (strstr(err, s) == NULL) {
      fail_msg("?%s: \"%s\" not in the error \"%s\"", query, s, err);
    }
  }
  va_end(named);
  rpc_buffer_free(&wire);
}

#define SCALARS "jobhub.test.Scalars"

static void test_each_value_type(void **state) {
  (void)state;
  static const struct {
    const char *query;
    const char *json;
  } cases[] = {
      {"f_double=1.5", "{\"fDouble\":1.5}"},
      {"fDouble=-Infinity", "{\"fDouble\":\"-Infinity\"}"},
      {"f_float=0.25", "{\"fFloat\":0.25}"},
      {"f_int32=-7", "{\"fInt32\":-7}"},
      {"f_int64=9007199254740993", "{\"fInt64\":\"9007199254740993\"}"},
      {"f_int64=-9223372036854775808", "{\"fInt64\":\"-9223372036854775808\"}"},
      {"f_uint32=4294967295", "{\"fUint32\":4294967295}"},
      {"f_uint64=18446744073709551615",
       "{\"fUint64\":\"18446744073709551615\"}"},
      {"f_sint32=-3", "{\"fSint32\":-3}"},
      {"f_sint64=-4", "{\"fSint64\":\"-4\"}"},
      {"f_fixed32=5", "{\"fFixed32\":5}"},
      {"f_fixed64=6", "{\"fFixed64\":\"6\"}"},
      {"f_sfixed32=-8", "{\"fSfixed32\":-8}"},
      {"f_sfixed64=-9", "{\"fSfixed64\":\"-9\"}"},
      {"f_bool=true", "{\"fBool\":true}"},
      {"f_bool=1", "{\"fBool\":true}"},
      {"f_bool=1&f_bool=0", "{}"},
      {"f_bool=true&f_bool=false", "{}"},
      {"f_string=h%C3%A9llo+w%C3%B6rld",
       "{\"fString\":\"h\xc3\xa9llo w\xc3\xb6rld\"}"},
      {"f_string=", "{}"},
      {"f_bytes=aGk%3D", "{\"fBytes\":\"aGk=\"}"},
      {"f_bytes=aGk", "{\"fBytes\":\"aGk=\"}"},
      {"f_bytes=-_8", "{\"fBytes\":\"+/8=\"}"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    expect_query(SCALARS, NULL, cases[i].query, cases[i].json);
  }
}

static void test_json_and_proto_names(void **state) {
  (void)state;
  expect_query(SCALARS, NULL, "fInt32=1&f_uint32=2",
               "{\"fInt32\":1,\"fUint32\":2}");
  expect_query("jobhub.test.Presence", NULL, "customName=a",
               "{\"customName\":\"a\"}");
  expect_query("jobhub.test.Presence", NULL, "renamed=b",
               "{\"customName\":\"b\"}");
  /* The Enodo clients' spelling, declared as json_name in series.proto. */
  expect_query("jobhub.v1.RunSeriesRequest", NULL,
               "byName=1&poolID=0&responseOutputID=1017",
               "{\"byName\":true,\"responseOutputID\":\"1017\"}");
  expect_query("jobhub.v1.RunSeriesRequest", NULL, "pool_id=3&by_name=true",
               "{\"byName\":true,\"poolID\":3}");
  expect_query("jobhub.v1.LeaseRequest", NULL, "client=abc-1",
               "{\"client\":\"abc-1\"}");
  /* A key may be percent-encoded too. */
  expect_query(SCALARS, NULL, "f%5Fint32=4", "{\"fInt32\":4}");
}

static void test_enums(void **state) {
  (void)state;
  expect_query("jobhub.test.Presence", NULL, "otherColor=GREEN",
               "{\"otherColor\":\"GREEN\"}");
  expect_query("jobhub.test.Presence", NULL, "other_color=1",
               "{\"otherColor\":\"RED\"}");
  /* proto3 enums are open: an unnamed number is kept. */
  expect_query("jobhub.test.Presence", NULL, "otherColor=7",
               "{\"otherColor\":7}");
  expect_query("jobhub.v1.ListJobsRequest", NULL, "state=QUEUED",
               "{\"state\":\"QUEUED\"}");
  expect_query_error("jobhub.test.Presence", "otherColor=PURPLE", "otherColor",
                     "PURPLE", NULL);
  expect_query_error("jobhub.test.Presence", "otherColor=2147483648",
                     "otherColor", "2147483648", NULL);
}

static void test_repeated(void **state) {
  (void)state;
  expect_query("jobhub.test.Repeated", NULL, "rInt32=1&rInt32=2&r_int32=-3",
               "{\"rInt32\":[1,2,-3]}");
  expect_query("jobhub.test.Repeated", NULL, "rString=a&rString=&rString=c",
               "{\"rString\":[\"a\",\"\",\"c\"]}");
  expect_query("jobhub.test.Repeated", NULL, "rColor=RED&rColor=2",
               "{\"rColor\":[\"RED\",\"GREEN\"]}");
  /* Repeated keys append to the body's list. */
  expect_query("jobhub.test.Repeated", "{\"rInt64\":[\"5\"]}", "rInt64=6",
               "{\"rInt64\":[\"5\",\"6\"]}");
}

static void test_nested(void **state) {
  (void)state;
  expect_query("jobhub.test.Recursive", NULL, "child.child.depth=3",
               "{\"child\":{\"child\":{\"depth\":3}}}");
  expect_query("jobhub.test.Presence", NULL, "nested.fInt32=4&nested.f_bool=1",
               "{\"nested\":{\"fInt32\":4,\"fBool\":true}}");
  /* Merged into what the body set. */
  expect_query("jobhub.test.Recursive",
               "{\"child\":{\"depth\":1,\"child\":{\"depth\":9}}}",
               "child.depth=5",
               "{\"child\":{\"child\":{\"depth\":9},\"depth\":5}}");
  expect_query("jobhub.v1.SubmitRequest", NULL, "config.job_type_id=7",
               "{\"config\":{\"jobTypeId\":7}}");
}

static void test_overrides_the_body(void **state) {
  (void)state;
  expect_query(SCALARS, "{\"fInt32\":1,\"fString\":\"body\"}",
               "fInt32=2&fString=query",
               "{\"fInt32\":2,\"fString\":\"query\"}");
  expect_query("jobhub.test.Presence", "{\"name\":\"body\"}", "number=3",
               "{\"number\":\"3\"}");
}

static void test_errors_name_key_and_value(void **state) {
  (void)state;
  expect_query_error(SCALARS, "nope=1", "nope", NULL);
  expect_query_error(SCALARS, "fInt32=1&nope=1", "nope", NULL);
  expect_query_error("jobhub.test.Recursive", "child.nope=1", "child.nope",
                     "nope", NULL);
  expect_query_error("jobhub.test.Recursive", "depth.x=1", "depth.x", NULL);
  expect_query_error(SCALARS, "fInt32=abc", "fInt32", "abc", NULL);
  expect_query_error(SCALARS, "fInt32=1.5", "fInt32", "1.5", NULL);
  expect_query_error(SCALARS, "fInt32=", "fInt32", "not a number", NULL);
  expect_query_error(SCALARS, "fDouble=x1", "fDouble", "x1", NULL);
  expect_query_error(SCALARS, "fInt32=2147483648", "fInt32", "2147483648",
                     "out of range", NULL);
  expect_query_error(SCALARS, "fUint32=-1", "fUint32", "-1", "out of range",
                     NULL);
  expect_query_error(SCALARS, "fUint64=18446744073709551616", "fUint64",
                     "18446744073709551616", NULL);
  expect_query_error(SCALARS, "fFloat=1e39", "fFloat", "1e39", NULL);
  expect_query_error(SCALARS, "fBool=yes", "fBool", "yes", NULL);
  expect_query_error(SCALARS, "fBytes=!!", "fBytes", "!!", NULL);
  expect_query_error(SCALARS, "fString=%FF", "fString", "UTF-8", NULL);
  expect_query_error(SCALARS, "fString=%zz", "%zz", NULL);
  expect_query_error(SCALARS, "f%2=1", "f%2", NULL);
  /* Message-typed leaves and paths through non-messages. */
  expect_query_error("jobhub.test.Presence", "nested=1", "nested", NULL);
  expect_query_error("jobhub.test.Maps", "stringString=x", "stringString",
                     NULL);
  expect_query_error("jobhub.test.WellKnown", "wInt32=3", "wInt32", NULL);
  expect_query_error("jobhub.test.Repeated", "rMessage.fInt32=3",
                     "rMessage.fInt32", NULL);
  expect_query_error("jobhub.test.WellKnown", "duration.seconds=3",
                     "duration.seconds", NULL);
  expect_query_error("jobhub.test.Nope", "a=1", "jobhub.test.Nope", NULL);
}

static void test_query_forms(void **state) {
  (void)state;
  expect_query(SCALARS, NULL, "", "{}");
  expect_query(SCALARS, NULL, "&&fInt32=1&", "{\"fInt32\":1}");
  expect_query(SCALARS, NULL, "fString", "{}");
  expect_query(SCALARS, NULL, "fString=a%26b%3Dc+d",
               "{\"fString\":\"a&b=c d\"}");
  expect_query(SCALARS, NULL, "fString=a=b", "{\"fString\":\"a=b\"}");
}

static void test_path_variables(void **state) {
  (void)state;
  static const char raw[] = "a%2Fb%20c/d";
  http_route_binding bindings[] = {
      {.field_path = "id", .value = raw, .len = 5, .multi_segment = false},
  };
  rpc_buffer wire;
  rpc_buffer_init(&wire);
  char err[256] = "";
  assert_int_equal(http_request_fields_from_path(pool, "jobhub.v1.GetRequest",
                                                 bindings, 1, &wire, err,
                                                 sizeof(err)),
                   0);
  expect_json("jobhub.v1.GetRequest", &wire, "{\"id\":\"a/b\"}");
  /* A multi-segment variable keeps %2F, decodes the rest. */
  rpc_buffer_reset(&wire);
  bindings[0].len = strlen(raw);
  bindings[0].multi_segment = true;
  assert_int_equal(http_request_fields_from_path(pool, "jobhub.v1.GetRequest",
                                                 bindings, 1, &wire, err,
                                                 sizeof(err)),
                   0);
  expect_json("jobhub.v1.GetRequest", &wire, "{\"id\":\"a%2Fb c/d\"}");
  /* Nested and typed: the worker stats path, and a bad pool id. */
  rpc_buffer_reset(&wire);
  http_route_binding nested[] = {
      {.field_path = "child.depth", .value = "12", .len = 2},
      {.field_path = "depth", .value = "3", .len = 1},
  };
  assert_int_equal(http_request_fields_from_path(pool, "jobhub.test.Recursive",
                                                 nested, 2, &wire, err,
                                                 sizeof(err)),
                   0);
  expect_json("jobhub.test.Recursive", &wire,
              "{\"child\":{\"depth\":12},\"depth\":3}");
  size_t before = wire.len;
  http_route_binding bad[] = {
      {.field_path = "depth", .value = "4", .len = 1},
      {.field_path = "child.depth", .value = "x%zz", .len = 4},
  };
  assert_int_equal(http_request_fields_from_path(pool, "jobhub.test.Recursive",
                                                 bad, 2, &wire, err,
                                                 sizeof(err)),
                   -1);
  assert_int_equal(wire.len, before);
  assert_non_null(strstr(err, "child.depth"));
  http_route_binding pool_id[] = {
      {.field_path = "pool_id", .value = "stats", .len = 5},
  };
  assert_int_equal(
      http_request_fields_from_path(pool, "jobhub.v1.WorkerStatsRequest",
                                    pool_id, 1, &wire, err, sizeof(err)),
      -1);
  assert_non_null(strstr(err, "pool_id"));
  assert_non_null(strstr(err, "stats"));
  rpc_buffer_free(&wire);
}

static void test_field_check(void **state) {
  (void)state;
  char err[256] = "";
  assert_int_equal(http_request_field_check(pool, "jobhub.test.Recursive",
                                            "child.child.depth", false, err,
                                            sizeof(err)),
                   0);
  assert_int_equal(http_request_field_check(pool, "jobhub.test.Recursive",
                                            "child", true, err, sizeof(err)),
                   0);
  assert_int_equal(http_request_field_check(pool, "jobhub.test.Recursive",
                                            "child", false, err, sizeof(err)),
                   -1);
  assert_non_null(strstr(err, "child"));
  assert_int_equal(http_request_field_check(pool, "jobhub.test.Recursive",
                                            "child.nope", true, err,
                                            sizeof(err)),
                   -1);
  assert_non_null(strstr(err, "nope"));
  assert_int_equal(http_request_field_check(pool, "jobhub.test.Repeated",
                                            "rMessage", true, err, sizeof(err)),
                   0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_each_value_type),
      cmocka_unit_test(test_json_and_proto_names),
      cmocka_unit_test(test_enums),
      cmocka_unit_test(test_repeated),
      cmocka_unit_test(test_nested),
      cmocka_unit_test(test_overrides_the_body),
      cmocka_unit_test(test_errors_name_key_and_value),
      cmocka_unit_test(test_query_forms),
      cmocka_unit_test(test_path_variables),
      cmocka_unit_test(test_field_check),
  };
  return cmocka_run_group_tests(tests, set_up, tear_down);
}
