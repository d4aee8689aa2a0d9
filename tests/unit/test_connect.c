/* test_connect.c: the Connect protocol's tables: code names, the HTTP
 * status of each code (connectrpc.com/docs/protocol "Error Codes"), and
 * which content-types are Connect's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "server/http/connect.h"

static void test_codes_and_http_statuses(void **state) {
  (void)state;
  /* The protocol's table, as published. */
  static const struct {
    rpc_status_code code;
    const char *name;
    int http_status;
  } table[] = {
      {RPC_STATUS_CANCELLED, "canceled", 499},
      {RPC_STATUS_UNKNOWN, "unknown", 500},
      {RPC_STATUS_INVALID_ARGUMENT, "invalid_argument", 400},
      {RPC_STATUS_DEADLINE_EXCEEDED, "deadline_exceeded", 504},
      {RPC_STATUS_NOT_FOUND, "not_found", 404},
      {RPC_STATUS_ALREADY_EXISTS, "already_exists", 409},
      {RPC_STATUS_PERMISSION_DENIED, "permission_denied", 403},
      {RPC_STATUS_RESOURCE_EXHAUSTED, "resource_exhausted", 429},
      {RPC_STATUS_FAILED_PRECONDITION, "failed_precondition", 400},
      {RPC_STATUS_ABORTED, "aborted", 409},
      {RPC_STATUS_OUT_OF_RANGE, "out_of_range", 400},
      {RPC_STATUS_UNIMPLEMENTED, "unimplemented", 501},
      {RPC_STATUS_INTERNAL, "internal", 500},
      {RPC_STATUS_UNAVAILABLE, "unavailable", 503},
      {RPC_STATUS_DATA_LOSS, "data_loss", 500},
      {RPC_STATUS_UNAUTHENTICATED, "unauthenticated", 401},
  };
  for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
    assert_string_equal(connect_code_name(table[i].code), table[i].name);
    assert_int_equal(connect_http_status(table[i].code), table[i].http_status);
  }
  assert_string_equal(connect_code_name((rpc_status_code)99), "unknown");
  assert_int_equal(connect_http_status((rpc_status_code)99), 500);
}

static void test_content_types(void **state) {
  (void)state;
  assert_int_equal(connect_kind_of("application/proto"), CONNECT_UNARY_PROTO);
  assert_int_equal(connect_kind_of("application/json; charset=utf-8"),
                   CONNECT_UNARY_JSON);
  assert_int_equal(connect_kind_of("application/connect+proto"),
                   CONNECT_STREAM_PROTO);
  assert_int_equal(connect_kind_of("Application/Connect+JSON"),
                   CONNECT_STREAM_JSON);
  assert_int_equal(connect_kind_of("application/grpc"), CONNECT_NONE);
  assert_int_equal(connect_kind_of("application/jsonx"), CONNECT_NONE);
  assert_int_equal(connect_kind_of(NULL), CONNECT_NONE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_codes_and_http_statuses),
      cmocka_unit_test(test_content_types),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
