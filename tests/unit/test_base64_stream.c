/* test_base64_stream.c: gRPC-Web-text bodies decoded as they arrive, in
 * chunks of every size, padded encodings one after another. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rpc/base64.h"
#include "server/http/base64_stream.h"

/* Decodes text fed in chunks of chunk bytes; returns the decoder's result
 * and leaves the bytes in out. */
static int decode_in_chunks(const char *text, size_t chunk, rpc_buffer *out,
                            base64_stream *stream) {
  size_t len = strlen(text);
  base64_stream_init(stream);
  for (size_t at = 0; at < len; at += chunk) {
    size_t n = len - at < chunk ? len - at : chunk;
    if (base64_stream_decode(stream, (const uint8_t *)text + at, n, out) != 0) {
      return -1;
    }
  }
  return 0;
}

static void test_every_chunk_size_gives_the_same_bytes(void **state) {
  (void)state;
  uint8_t bytes[300];
  for (size_t i = 0; i < sizeof(bytes); i++) {
    bytes[i] = (uint8_t)(i * 7 + 3);
  }
  /* Three writes padded on their own, as a server flushes them. */
  rpc_buffer text;
  rpc_buffer_init(&text);
  assert_int_equal(rpc_base64_encode(bytes, 100, &text), 0);
  assert_int_equal(rpc_base64_encode(bytes + 100, 101, &text), 0);
  assert_int_equal(rpc_base64_encode(bytes + 201, 99, &text), 0);
  assert_int_equal(rpc_buffer_append(&text, "", 1), 0);
  for (size_t chunk = 1; chunk <= 64; chunk++) {
    rpc_buffer out;
    rpc_buffer_init(&out);
    base64_stream stream;
    assert_int_equal(
        decode_in_chunks((const char *)text.data, chunk, &out, &stream), 0);
    assert_false(base64_stream_is_partial(&stream));
    assert_int_equal(out.len, sizeof(bytes));
    assert_memory_equal(out.data, bytes, sizeof(bytes));
    rpc_buffer_free(&out);
  }
  rpc_buffer_free(&text);
}

static void test_line_breaks_are_skipped(void **state) {
  (void)state;
  rpc_buffer out;
  rpc_buffer_init(&out);
  base64_stream stream;
  assert_int_equal(decode_in_chunks("aGVs\r\nbG8=\n", 3, &out, &stream), 0);
  assert_int_equal(out.len, 5);
  assert_memory_equal(out.data, "hello", 5);
  rpc_buffer_free(&out);
}

static void test_a_cut_quantum_is_partial(void **state) {
  (void)state;
  rpc_buffer out;
  rpc_buffer_init(&out);
  base64_stream stream;
  assert_int_equal(decode_in_chunks("aGVsbG", 4, &out, &stream), 0);
  assert_true(base64_stream_is_partial(&stream));
  assert_int_equal(out.len, 3); /* the complete quantum only */
  rpc_buffer_free(&out);
}

static void test_invalid_text_is_refused(void **state) {
  (void)state;
  static const char *const cases[] = {
      "aGV*",    /* outside the alphabet */
      "a===",    /* padding too early */
      "=AAA",    /* padding first */
      "aG=s",    /* padding inside a quantum */
      "aGVs b=", /* a space */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    rpc_buffer out;
    rpc_buffer_init(&out);
    base64_stream stream;
    assert_int_equal(decode_in_chunks(cases[i], 2, &out, &stream), -1);
    rpc_buffer_free(&out);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_chunk_size_gives_the_same_bytes),
      cmocka_unit_test(test_line_breaks_are_skipped),
      cmocka_unit_test(test_a_cut_quantum_is_partial),
      cmocka_unit_test(test_invalid_text_is_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
