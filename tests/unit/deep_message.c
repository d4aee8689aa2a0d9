/* deep_message.c: deeply nested protobuf wire messages for the tests. */
#include "deep_message.h"

#include <setjmp.h>
#include <stdarg.h>
#include <string.h>

#include <cmocka.h>

size_t deep_wrap_field(uint8_t *buf, size_t size, size_t start,
                       uint32_t number) {
  size_t len = size - start;
  uint8_t varint[10];
  size_t n = 0;
  do {
    varint[n++] = (uint8_t)((len & 0x7f) | (len >= 0x80 ? 0x80 : 0));
    len >>= 7;
  } while (len > 0);
  assert_true(start >= n + 1);
  start -= n;
  memcpy(buf + start, varint, n);
  buf[--start] = (uint8_t)(number << 3 | 2);
  return start;
}

size_t deep_wrap_fields(uint8_t *buf, size_t size, size_t start,
                        const uint32_t *numbers, size_t levels) {
  for (size_t i = 0; i < levels; i++) {
    start = deep_wrap_field(buf, size, start, numbers[i]);
  }
  return start;
}

size_t deep_submit_struct(uint8_t *buf, size_t size, size_t levels) {
  static const uint32_t value_struct[] = {5, 2}; /* struct_value, value */
  static const uint32_t fields[] = {1};          /* Struct.fields */
  static const uint32_t outer[] = {5, 4};        /* module_params, config */
  size_t start = size;
  for (size_t i = 0; i < levels; i++) {
    start = deep_wrap_fields(buf, size, start, value_struct, 2);
    /* the entry's key before its value */
    assert_true(start >= 3);
    start -= 3;
    memcpy(buf + start, "\x0a\x01k", 3);
    start = deep_wrap_fields(buf, size, start, fields, 1);
  }
  return deep_wrap_fields(buf, size, start, outer, 2);
}
