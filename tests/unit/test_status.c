/* test_status.c: status names, HTTP mapping, grpc-message encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rpc/status.h"

static void test_names(void **state) {
  (void)state;
  assert_string_equal(rpc_status_code_name(RPC_STATUS_OK), "OK");
  assert_string_equal(rpc_status_code_name(RPC_STATUS_NOT_FOUND), "NOT_FOUND");
  assert_string_equal(rpc_status_code_name(RPC_STATUS_UNAUTHENTICATED),
                      "UNAUTHENTICATED");
  assert_string_equal(rpc_status_code_name(17), "UNKNOWN");
  assert_string_equal(rpc_status_code_name(-1), "UNKNOWN");
}

static void test_parse(void **state) {
  (void)state;
  int code = -1;
  assert_int_equal(rpc_status_code_parse("0", 1, &code), 0);
  assert_int_equal(code, 0);
  assert_int_equal(rpc_status_code_parse("16", 2, &code), 0);
  assert_int_equal(code, 16);
  assert_int_equal(rpc_status_code_parse("", 0, &code), -1);
  assert_int_equal(rpc_status_code_parse("-1", 2, &code), -1);
  assert_int_equal(rpc_status_code_parse("1 ", 2, &code), -1);
  assert_int_equal(rpc_status_code_parse("99999999999", 11, &code), -1);
}

static void test_http_mapping(void **state) {
  (void)state;
  static const struct {
    rpc_status_code code;
    int http;
  } google[] = {
      {RPC_STATUS_OK, 200},
      {RPC_STATUS_INVALID_ARGUMENT, 400},
      {RPC_STATUS_FAILED_PRECONDITION, 400},
      {RPC_STATUS_UNAUTHENTICATED, 401},
      {RPC_STATUS_PERMISSION_DENIED, 403},
      {RPC_STATUS_NOT_FOUND, 404},
      {RPC_STATUS_ALREADY_EXISTS, 409},
      {RPC_STATUS_RESOURCE_EXHAUSTED, 429},
      {RPC_STATUS_CANCELLED, 499},
      {RPC_STATUS_UNIMPLEMENTED, 501},
      {RPC_STATUS_UNAVAILABLE, 503},
      {RPC_STATUS_DEADLINE_EXCEEDED, 504},
  };
  for (size_t i = 0; i < sizeof(google) / sizeof(google[0]); i++) {
    assert_int_equal(rpc_status_to_http(google[i].code), google[i].http);
  }
  assert_int_equal(rpc_status_from_http(404), RPC_STATUS_UNIMPLEMENTED);
  assert_int_equal(rpc_status_from_http(503), RPC_STATUS_UNAVAILABLE);
  assert_int_equal(rpc_status_from_http(401), RPC_STATUS_UNAUTHENTICATED);
  assert_int_equal(rpc_status_from_http(418), RPC_STATUS_UNKNOWN);
}

static void test_status_set_and_clear(void **state) {
  (void)state;
  rpc_status status = {RPC_STATUS_OK, NULL};
  assert_int_equal(rpc_status_set(&status, RPC_STATUS_NOT_FOUND, "job %s", "7"),
                   0);
  assert_int_equal(status.code, RPC_STATUS_NOT_FOUND);
  assert_string_equal(status.message, "job 7");
  rpc_status_clear(&status);
  assert_null(status.message);
  assert_int_equal(status.code, RPC_STATUS_OK);
}

static void encode(const char *in, const char *want) {
  rpc_buffer out;
  rpc_buffer_init(&out);
  assert_int_equal(rpc_percent_encode(in, strlen(in), &out), 0);
  assert_int_equal(out.len, strlen(want));
  assert_memory_equal(out.data, want, out.len);
  rpc_buffer back;
  rpc_buffer_init(&back);
  assert_int_equal(rpc_percent_decode((char *)out.data, out.len, &back), 0);
  assert_string_equal((char *)back.data, in);
  rpc_buffer_free(&out);
  rpc_buffer_free(&back);
}

static void test_percent_round_trips(void **state) {
  (void)state;
  encode("plain text", "plain text");
  encode("100%", "100%25");
  encode("caf\xc3\xa9", "caf%C3%A9");
  encode("line\nbreak\t", "line%0Abreak%09");
  encode("~ and \x7f", "~ and %7F");
  encode("", "");
}

static void decode(const char *in, const char *want) {
  rpc_buffer out;
  rpc_buffer_init(&out);
  assert_int_equal(rpc_percent_decode(in, strlen(in), &out), 0);
  assert_string_equal((char *)out.data, want);
  rpc_buffer_free(&out);
}

static void test_percent_decode_is_lenient(void **state) {
  (void)state;
  decode("%zz", "%zz");
  decode("%4", "%4");
  decode("50%", "50%");
  decode("%e2%98%83", "\xe2\x98\x83"); /* lower-case hex too */
  decode("a%2", "a%2");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_http_mapping),
      cmocka_unit_test(test_status_set_and_clear),
      cmocka_unit_test(test_percent_round_trips),
      cmocka_unit_test(test_percent_decode_is_lenient),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
