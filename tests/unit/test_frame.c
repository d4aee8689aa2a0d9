/* test_frame.c: the gRPC deframer: reassembly at every split point, the
 * size limit before allocation, the flag byte, zero-copy delivery. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rpc/frame.h"

typedef struct seen {
  int count;
  bool compressed[8];
  size_t lengths[8];
  uint8_t bytes[8][64];
  const uint8_t *pointers[8];
} seen;

static int record(void *arg, bool compressed, const uint8_t *data, size_t len) {
  seen *s = arg;
  assert_true(s->count < 8 && len <= 64);
  s->compressed[s->count] = compressed;
  s->lengths[s->count] = len;
  s->pointers[s->count] = data;
  memcpy(s->bytes[s->count], data, len);
  s->count++;
  return 0;
}

/* Three messages: "abc" plain, empty, "hello world" compressed. */
static size_t build_stream(uint8_t *out) {
  size_t n = 0;
  rpc_frame_header_write(out + n, false, 3);
  memcpy(out + n + 5, "abc", 3);
  n += 8;
  rpc_frame_header_write(out + n, false, 0);
  n += 5;
  rpc_frame_header_write(out + n, true, 11);
  memcpy(out + n + 5, "hello world", 11);
  n += 16;
  return n;
}

static void check_three(const seen *s) {
  assert_int_equal(s->count, 3);
  assert_false(s->compressed[0]);
  assert_int_equal(s->lengths[0], 3);
  assert_memory_equal(s->bytes[0], "abc", 3);
  assert_int_equal(s->lengths[1], 0);
  assert_true(s->compressed[2]);
  assert_int_equal(s->lengths[2], 11);
  assert_memory_equal(s->bytes[2], "hello world", 11);
}

static void test_header_write(void **state) {
  (void)state;
  uint8_t header[5];
  rpc_frame_header_write(header, true, 0x01020304);
  uint8_t want[5] = {1, 1, 2, 3, 4};
  assert_memory_equal(header, want, 5);
}

static void test_every_split_point(void **state) {
  (void)state;
  uint8_t stream[64];
  size_t len = build_stream(stream);
  for (size_t cut = 0; cut <= len; cut++) {
    rpc_deframer d;
    seen s = {0};
    rpc_deframer_init(&d, 1024);
    assert_int_equal(rpc_deframer_feed(&d, stream, cut, record, &s), 0);
    assert_int_equal(rpc_deframer_feed(&d, stream + cut, len - cut, record, &s),
                     0);
    check_three(&s);
    assert_false(rpc_deframer_is_partial(&d));
    rpc_deframer_free(&d);
  }
}

static void test_one_byte_chunks(void **state) {
  (void)state;
  uint8_t stream[64];
  size_t len = build_stream(stream);
  rpc_deframer d;
  seen s = {0};
  rpc_deframer_init(&d, 1024);
  for (size_t i = 0; i < len; i++) {
    assert_int_equal(rpc_deframer_feed(&d, stream + i, 1, record, &s), 0);
  }
  check_three(&s);
  rpc_deframer_free(&d);
}

static void test_whole_message_is_not_copied(void **state) {
  (void)state;
  uint8_t stream[64];
  size_t len = build_stream(stream);
  rpc_deframer d;
  seen s = {0};
  rpc_deframer_init(&d, 1024);
  assert_int_equal(rpc_deframer_feed(&d, stream, len, record, &s), 0);
  assert_ptr_equal(s.pointers[0], stream + 5);
  assert_ptr_equal(s.pointers[2], stream + 13 + 5);
  rpc_deframer_free(&d);
}

static void test_partial_at_end(void **state) {
  (void)state;
  uint8_t stream[64];
  build_stream(stream);
  rpc_deframer d;
  seen s = {0};
  rpc_deframer_init(&d, 1024);
  assert_int_equal(rpc_deframer_feed(&d, stream, 6, record, &s), 0);
  assert_true(rpc_deframer_is_partial(&d));
  assert_int_equal(s.count, 0);
  rpc_deframer_free(&d);
}

static void test_too_large_before_body(void **state) {
  (void)state;
  uint8_t header[5];
  rpc_frame_header_write(header, false, 5u << 20);
  rpc_deframer d;
  seen s = {0};
  rpc_deframer_init(&d, 4u << 20);
  /* Known from the header alone: nothing of the body is needed. */
  assert_int_equal(rpc_deframer_feed(&d, header, 5, record, &s),
                   RPC_FRAME_ERR_TOO_LARGE);
  assert_int_equal(d.body.cap, 0);
  rpc_deframer_free(&d);
  rpc_deframer_init(&d, 4u << 20);
  assert_int_equal(rpc_deframer_feed(&d, header, 3, record, &s), 0);
  assert_int_equal(rpc_deframer_feed(&d, header + 3, 2, record, &s),
                   RPC_FRAME_ERR_TOO_LARGE);
  rpc_deframer_free(&d);
}

static void test_bad_flag(void **state) {
  (void)state;
  uint8_t bad[6] = {2, 0, 0, 0, 1, 'x'};
  rpc_deframer d;
  seen s = {0};
  rpc_deframer_init(&d, 1024);
  assert_int_equal(rpc_deframer_feed(&d, bad, sizeof(bad), record, &s),
                   RPC_FRAME_ERR_BAD_FLAG);
  assert_int_equal(s.count, 0);
  rpc_deframer_free(&d);
}

static int stop_after_first(void *arg, bool compressed, const uint8_t *data,
                            size_t len) {
  (void)compressed;
  (void)data;
  (void)len;
  (*(int *)arg)++;
  return 7;
}

static void test_callback_stops_feeding(void **state) {
  (void)state;
  uint8_t stream[64];
  size_t len = build_stream(stream);
  rpc_deframer d;
  int calls = 0;
  rpc_deframer_init(&d, 1024);
  assert_int_equal(rpc_deframer_feed(&d, stream, len, stop_after_first, &calls),
                   7);
  assert_int_equal(calls, 1);
  rpc_deframer_free(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_header_write),
      cmocka_unit_test(test_every_split_point),
      cmocka_unit_test(test_one_byte_chunks),
      cmocka_unit_test(test_whole_message_is_not_copied),
      cmocka_unit_test(test_partial_at_end),
      cmocka_unit_test(test_too_large_before_body),
      cmocka_unit_test(test_bad_flag),
      cmocka_unit_test(test_callback_stops_feeding),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
