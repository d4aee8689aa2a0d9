/* test_metadata.c: custom metadata and base64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rpc/base64.h"
#include "rpc/metadata.h"

static void test_base64_round_trip_every_length(void **state) {
  (void)state;
  uint8_t data[64];
  for (size_t i = 0; i < sizeof(data); i++) {
    data[i] = (uint8_t)(i * 37 + 11);
  }
  for (size_t len = 0; len <= sizeof(data); len++) {
    rpc_buffer encoded, decoded;
    rpc_buffer_init(&encoded);
    rpc_buffer_init(&decoded);
    assert_int_equal(rpc_base64_encode(data, len, &encoded), 0);
    assert_int_equal(encoded.len % 4, 0);
    assert_int_equal(
        rpc_base64_decode((char *)encoded.data, encoded.len, &decoded), 0);
    assert_int_equal(decoded.len, len);
    assert_memory_equal(decoded.data, data, len);
    rpc_buffer_free(&encoded);
    rpc_buffer_free(&decoded);
  }
}

static void test_base64_forms(void **state) {
  (void)state;
  static const struct {
    const char *in;
    const char *out; /* NULL: invalid */
    size_t out_len;
  } cases[] = {
      {"AQI=", "\x01\x02", 2}, {"AQI", "\x01\x02", 2}, {"+/8=", "\xfb\xff", 2},
      {"-_8", "\xfb\xff", 2},  {"TWFu", "Man", 3},     {"", "", 0},
      {"A", NULL, 0},          {"AQ=I", NULL, 0},      {"AQ==", "\x01", 1},
      {"AQ===", NULL, 0},      {"A Q=", NULL, 0},      {"AQI*", NULL, 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    rpc_buffer out;
    rpc_buffer_init(&out);
    int rv = rpc_base64_decode(cases[i].in, strlen(cases[i].in), &out);
    if (cases[i].out == NULL) {
      assert_int_equal(rv, -1);
      assert_int_equal(out.len, 0);
    } else {
      assert_int_equal(rv, 0);
      assert_int_equal(out.len, cases[i].out_len);
      assert_memory_equal(out.data, cases[i].out, cases[i].out_len);
    }
    rpc_buffer_free(&out);
  }
}

static void test_binary_values_decode_and_reencode_padded(void **state) {
  (void)state;
  rpc_metadata md;
  rpc_metadata_init(&md);
  assert_int_equal(rpc_metadata_add_wire(&md, "X-Trace-Bin", 11, "AQI", 3), 0);
  assert_int_equal(rpc_metadata_add_wire(&md, "x-plain", 7, "AQI", 3), 0);
  assert_int_equal(rpc_metadata_add_wire(&md, "x-bad-bin", 9, "A", 1), -1);
  assert_int_equal(rpc_metadata_add_wire(&md, "bad key", 7, "v", 1), -1);
  assert_int_equal(md.count, 2);
  const rpc_metadata_entry *trace = rpc_metadata_get(&md, "x-trace-bin");
  assert_non_null(trace);
  assert_int_equal(trace->value_len, 2);
  assert_memory_equal(trace->value, "\x01\x02", 2);
  rpc_buffer wire;
  rpc_buffer_init(&wire);
  assert_int_equal(rpc_metadata_wire_value(trace, &wire), 0);
  assert_int_equal(wire.len, 4);
  assert_memory_equal(wire.data, "AQI=", 4);
  rpc_buffer_free(&wire);
  assert_string_equal((char *)rpc_metadata_get(&md, "x-plain")->value, "AQI");
  assert_null(rpc_metadata_get(&md, "missing"));
  rpc_metadata_free(&md);
}

static void test_keys(void **state) {
  (void)state;
  assert_true(rpc_metadata_key_is_valid("x-user.id_2", 11));
  assert_true(rpc_metadata_key_is_valid("X-Upper", 7));
  assert_false(rpc_metadata_key_is_valid("", 0));
  assert_false(rpc_metadata_key_is_valid("sp ace", 6));
  assert_false(rpc_metadata_key_is_valid("colon:", 6));
  assert_true(rpc_metadata_key_is_binary("a-bin", 5));
  assert_false(rpc_metadata_key_is_binary("-bin", 4));
  assert_false(rpc_metadata_key_is_binary("binary", 6));
  static const char *const reserved[] = {
      ":path",      "grpc-timeout", "content-type", "te",
      "user-agent", "Grpc-Status",  "connection"};
  for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
    assert_true(rpc_metadata_key_is_reserved(reserved[i], strlen(reserved[i])));
  }
  assert_false(rpc_metadata_key_is_reserved("grpc-trace-bin", 14));
  assert_false(rpc_metadata_key_is_reserved("authorization", 13));
  assert_true(rpc_metadata_value_is_valid((const uint8_t *)"ok value~", 9));
  assert_false(rpc_metadata_value_is_valid((const uint8_t *)"tab\there", 8));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_base64_round_trip_every_length),
      cmocka_unit_test(test_base64_forms),
      cmocka_unit_test(test_binary_values_decode_and_reencode_padded),
      cmocka_unit_test(test_keys),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
