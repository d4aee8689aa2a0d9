/* test_json_headers.c: which request headers of JSON transcoding reach a
 * call, under which names, and X-Request-Timeout as its deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rpc/http_request_internal.h"
#include "server/http/json_headers.h"

/* A request without a session holding the given header (NULL: none) and
 * grpc-timeout when grpc_timeout is not NULL. */
static rpc_http_request *make_request(const char *timeout,
                                      const char *grpc_timeout) {
  rpc_buffer block;
  rpc_buffer_init(&block);
  size_t count = 0;
  const char *names[] = {"x-request-timeout", "grpc-timeout"};
  const char *values[] = {timeout, grpc_timeout};
  for (size_t i = 0; i < 2; i++) {
    if (values[i] != NULL) {
      assert_int_equal(rpc_http_request_add_header(
                           &block, (const uint8_t *)names[i], strlen(names[i]),
                           (const uint8_t *)values[i], strlen(values[i])),
                       0);
      count++;
    }
  }
  rpc_http_request_origin origin = {.stream_id = 1, .peer = "192.0.2.1"};
  rpc_http_request *request = rpc_http_request_new(&origin, &block, count);
  assert_non_null(request);
  return request;
}

static void drop_request(rpc_http_request *request) {
  rpc_http_request_finish(request, NULL, 0);
  rpc_http_request_on_stream_close(request);
}

static void test_headers_that_reach_the_call(void **state) {
  (void)state;
  assert_string_equal(json_call_header("authorization"), "authorization");
  assert_string_equal(json_call_header("grpc-metadata-tenant"), "tenant");
  assert_string_equal(json_call_header("grpc-metadata-trace-bin"), "trace-bin");
  assert_string_equal(json_call_header("grpc-timeout"), "grpc-timeout");
  assert_null(json_call_header("grpc-metadata-"));
  assert_null(json_call_header("x-tenant"));
  assert_null(json_call_header("accept"));
  assert_null(json_call_header("cookie"));
}

static void test_request_timeout_in_seconds(void **state) {
  (void)state;
  static const struct {
    const char *text;
    uint64_t ns;
  } cases[] = {
      {"1", 1000000000u},   {"2.5", 2500000000u}, {"0.001", 1000000u},
      {"30", 30000000000u}, {"0.0000000019", 1u}, {"0", 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    rpc_http_request *request = make_request(cases[i].text, NULL);
    uint64_t ns = 42;
    assert_int_equal(json_call_deadline(request, &ns), 0);
    assert_true(ns == cases[i].ns);
    drop_request(request);
  }
  static const char *const bad[] = {"",   "x",  "1s",    "-1",
                                    "1.", ".5", "1.2.3", "12345678901"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    rpc_http_request *request = make_request(bad[i], NULL);
    uint64_t ns;
    assert_int_equal(json_call_deadline(request, &ns), -1);
    drop_request(request);
  }
}

static void test_no_timeout_or_grpc_timeout_first(void **state) {
  (void)state;
  uint64_t ns = 42;
  rpc_http_request *request = make_request(NULL, NULL);
  assert_int_equal(json_call_deadline(request, &ns), 0);
  assert_true(ns == 0);
  drop_request(request);
  request = make_request("5", "100m");
  assert_int_equal(json_call_deadline(request, &ns), 0);
  assert_true(ns == 0); /* the call reads grpc-timeout itself */
  drop_request(request);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_headers_that_reach_the_call),
      cmocka_unit_test(test_request_timeout_in_seconds),
      cmocka_unit_test(test_no_timeout_or_grpc_timeout_first),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
