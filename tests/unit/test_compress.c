/* test_compress.c: gzip round trips, corrupt input, the inflate bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rpc/compress.h"

static void test_round_trip(void **state) {
  (void)state;
  static const size_t sizes[] = {0, 1, 100, 65536, 1000000};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    uint8_t *data = malloc(sizes[i] + 1);
    for (size_t j = 0; j < sizes[i]; j++) {
      data[j] = (uint8_t)(j % 251);
    }
    rpc_buffer packed, unpacked;
    rpc_buffer_init(&packed);
    rpc_buffer_init(&unpacked);
    assert_int_equal(rpc_gzip_compress(data, sizes[i], &packed), 0);
    assert_true(packed.len >= 18); /* gzip header and trailer */
    assert_int_equal(packed.data[0], 0x1f);
    assert_int_equal(packed.data[1], 0x8b);
    assert_int_equal(
        rpc_gzip_decompress(packed.data, packed.len, sizes[i], &unpacked), 0);
    assert_int_equal(unpacked.len, sizes[i]);
    if (sizes[i] > 0) {
      assert_memory_equal(unpacked.data, data, sizes[i]);
    }
    rpc_buffer_free(&packed);
    rpc_buffer_free(&unpacked);
    free(data);
  }
}

static void test_corrupt_and_truncated(void **state) {
  (void)state;
  const char text[] = "some text to compress, some text to compress";
  rpc_buffer packed, out;
  rpc_buffer_init(&packed);
  rpc_buffer_init(&out);
  assert_int_equal(
      rpc_gzip_compress((const uint8_t *)text, sizeof(text), &packed), 0);
  assert_int_equal(rpc_gzip_decompress(packed.data, packed.len / 2, 1024, &out),
                   RPC_COMPRESS_ERR_CORRUPT);
  assert_int_equal(out.len, 0);
  packed.data[packed.len / 2] ^= 0xff;
  assert_int_equal(rpc_gzip_decompress(packed.data, packed.len, 1024, &out),
                   RPC_COMPRESS_ERR_CORRUPT);
  const uint8_t garbage[] = "not gzip at all";
  assert_int_equal(rpc_gzip_decompress(garbage, sizeof(garbage), 1024, &out),
                   RPC_COMPRESS_ERR_CORRUPT);
  rpc_buffer_free(&packed);
  rpc_buffer_free(&out);
}

static void test_bomb_is_refused_early(void **state) {
  (void)state;
  size_t size = 10u << 20;
  uint8_t *zeros = calloc(size, 1);
  rpc_buffer packed, out;
  rpc_buffer_init(&packed);
  rpc_buffer_init(&out);
  assert_int_equal(rpc_gzip_compress(zeros, size, &packed), 0);
  assert_true(packed.len < 64 << 10);
  assert_int_equal(rpc_gzip_decompress(packed.data, packed.len, 1u << 20, &out),
                   RPC_COMPRESS_ERR_TOO_LARGE);
  assert_int_equal(out.len, 0);
  /* It stopped early: the buffer (which grows by doubling) never got
   * near the 10 MiB the bomb inflates to. */
  assert_true(out.cap <= (2u << 20) + (128u << 10));
  rpc_buffer_free(&packed);
  rpc_buffer_free(&out);
  free(zeros);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_corrupt_and_truncated),
      cmocka_unit_test(test_bomb_is_refused_early),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
