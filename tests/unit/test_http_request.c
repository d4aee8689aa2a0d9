/* test_http_request.c: a request given to the protocol hook, without a
 * session: its header block, peer, and the references of the stream and
 * the handler (freed after both are dropped, in either order; hooks never
 * run after finish). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rpc/http_request_internal.h"

static int add(rpc_buffer *block, const char *name, const char *value) {
  return rpc_http_request_add_header(block, (const uint8_t *)name, strlen(name),
                                     (const uint8_t *)value, strlen(value));
}

static rpc_http_request *make_request(const char *cert_cn) {
  rpc_buffer block;
  rpc_buffer_init(&block);
  assert_int_equal(add(&block, ":method", "GET"), 0);
  assert_int_equal(add(&block, ":path", "/jobs/7?x=1"), 0);
  assert_int_equal(add(&block, "accept", "application/json"), 0);
  assert_int_equal(add(&block, "x-empty", ""), 0);
  assert_int_equal(add(&block, "accept", "text/plain"), 0);
  rpc_http_request_origin origin = {
      .stream_id = 1,
      .peer = "192.0.2.7",
      .cert_cn = cert_cn,
      .max_stream_output_bytes = 1 << 20,
      .max_connection_output_bytes = 1 << 20,
  };
  rpc_http_request *request = rpc_http_request_new(&origin, &block, 5);
  assert_non_null(request);
  assert_int_equal(block.len, 0); /* moved */
  return request;
}

static void test_headers_in_order_and_by_name(void **state) {
  (void)state;
  rpc_http_request *request = make_request(NULL);
  assert_string_equal(rpc_http_request_header(request, ":path"), "/jobs/7?x=1");
  assert_string_equal(rpc_http_request_header(request, "accept"),
                      "application/json"); /* the first */
  assert_string_equal(rpc_http_request_header(request, "x-empty"), "");
  assert_null(rpc_http_request_header(request, "content-type"));
  assert_int_equal(rpc_http_request_header_count(request), 5);
  const char *name, *value;
  assert_int_equal(rpc_http_request_header_at(request, 4, &name, &value), 0);
  assert_string_equal(name, "accept");
  assert_string_equal(value, "text/plain");
  assert_int_equal(rpc_http_request_header_at(request, 5, &name, &value), -1);
  assert_string_equal(rpc_http_request_peer(request), "192.0.2.7");
  assert_null(rpc_http_request_cert_cn(request));
  rpc_http_request_finish(request, NULL, 0);
  rpc_http_request_on_stream_close(request);
}

static int cancels;

static void count_cancel(rpc_http_request *request, void *arg) {
  (void)arg;
  cancels++;
  rpc_http_request_finish(request, NULL, 0);
}

/* The stream goes first: on_cancel, whose finish drops the last
 * reference. */
static void test_stream_gone_cancels_the_handler(void **state) {
  (void)state;
  rpc_http_request *request = make_request("client-1");
  assert_string_equal(rpc_http_request_cert_cn(request), "client-1");
  const rpc_http_request_hooks hooks = {.on_cancel = count_cancel};
  rpc_http_request_set_hooks(request, &hooks, NULL);
  cancels = 0;
  rpc_http_request_on_stream_close(request);
  assert_int_equal(cancels, 1);
}

/* The handler goes first: no hook runs after finish. */
static void test_no_hook_after_finish(void **state) {
  (void)state;
  rpc_http_request *request = make_request(NULL);
  const rpc_http_request_hooks hooks = {.on_cancel = count_cancel};
  rpc_http_request_set_hooks(request, &hooks, NULL);
  cancels = 0;
  rpc_http_request_finish(request, NULL, 0);
  rpc_http_request_on_stream_close(request);
  assert_int_equal(cancels, 0);
}

static void test_write_before_respond_is_a_state_error(void **state) {
  (void)state;
  rpc_http_request *request = make_request(NULL);
  assert_int_equal(rpc_http_request_write(request, "x", 1),
                   RPC_HTTP_REQUEST_ERR_STATE);
  assert_int_equal(rpc_http_request_respond(request, 99, NULL, 0),
                   RPC_HTTP_REQUEST_ERR_STATE);
  rpc_http_request_on_stream_close(request);
  /* Without a session the stream is gone: respond says so. */
  assert_int_equal(rpc_http_request_respond(request, 200, NULL, 0),
                   RPC_HTTP_REQUEST_ERR_CLOSED);
  rpc_http_request_finish(request, NULL, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_headers_in_order_and_by_name),
      cmocka_unit_test(test_stream_gone_cancels_the_handler),
      cmocka_unit_test(test_no_hook_after_finish),
      cmocka_unit_test(test_write_before_respond_is_a_state_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
