/* test_wire_check.c: rpc_wire_check on tables of wire bytes (strings in
 * every place a string field can be, UTF-8 edge cases, malformed wire
 * data), the depth limit at its boundary, messages protobuf-c itself
 * packs, and rpc_message_decode's use of it. Wire bytes in the tables are
 * hex. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "deep_message.h"
#include "google/protobuf/struct.pb-c.h"
#include "jobhub/v1/jobs.pb-c.h"
#include "json_test.pb-c.h"
#include "rpc/buffer.h"
#include "rpc/compress.h"
#include "rpc/message.h"
#include "rpc/wire_check.h"

#define SCALARS (&jobhub__test__scalars__descriptor)
#define REPEATED (&jobhub__test__repeated__descriptor)
#define MAPS (&jobhub__test__maps__descriptor)
#define PRESENCE (&jobhub__test__presence__descriptor)
#define WELL_KNOWN (&jobhub__test__well_known__descriptor)
#define SUBMIT (&jobhub__v1__submit_request__descriptor)

static size_t from_hex(const char *hex, uint8_t *out, size_t max) {
  size_t n = 0;
  for (const char *p = hex; p[0] != '\0';) {
    if (p[0] == ' ') {
      p++;
      continue;
    }
    unsigned byte;
    assert_int_equal(sscanf(p, "%2x", &byte), 1);
    assert_true(n < max);
    out[n++] = (uint8_t)byte;
    p += 2;
  }
  return n;
}

typedef struct check_case {
  const ProtobufCMessageDescriptor *descriptor;
  const char *hex;
  int rv;
  const char *message; /* err, exactly; "" when rv is 0 */
} check_case;

static void run_cases(const check_case *cases, size_t count) {
  for (size_t i = 0; i < count; i++) {
    uint8_t data[256];
    size_t len = from_hex(cases[i].hex, data, sizeof(data));
    char err[256];
    int rv = rpc_wire_check(cases[i].descriptor, data, len,
                            RPC_MAX_MESSAGE_DEPTH, err, sizeof(err));
    if (rv != cases[i].rv || strcmp(err, cases[i].message) != 0) {
      fail_msg("%s [%s]\n  got:  %d %s\n  want: %d %s",
               cases[i].descriptor->name, cases[i].hex, rv, err, cases[i].rv,
               cases[i].message);
    }
  }
}

#define INVALID RPC_WIRE_CHECK_ERR_INVALID
#define MALFORMED RPC_WIRE_CHECK_ERR_MALFORMED

/* Scalars.f_string is field 14 (tag 72), f_bytes field 15 (tag 7a). */
static void test_utf8(void **state) {
  (void)state;
  static const check_case cases[] = {
      {SCALARS, "", 0, ""},
      {SCALARS, "72 02 6869", 0, ""},
      {SCALARS, "72 00", 0, ""},
      {SCALARS, "72 02 c280", 0, ""},     /* U+0080 */
      {SCALARS, "72 02 dfbf", 0, ""},     /* U+07FF */
      {SCALARS, "72 03 e0a080", 0, ""},   /* U+0800 */
      {SCALARS, "72 03 e282ac", 0, ""},   /* U+20AC */
      {SCALARS, "72 03 ed9fbf", 0, ""},   /* U+D7FF */
      {SCALARS, "72 03 ee8080", 0, ""},   /* U+E000 */
      {SCALARS, "72 03 efbfbf", 0, ""},   /* U+FFFF */
      {SCALARS, "72 04 f0908080", 0, ""}, /* U+10000 */
      {SCALARS, "72 04 f48fbfbf", 0, ""}, /* U+10FFFF */
      {SCALARS, "72 01 ff", INVALID, "f_string: invalid UTF-8"},
      {SCALARS, "72 01 80", INVALID, "f_string: invalid UTF-8"},
      {SCALARS, "72 02 c080", INVALID, "f_string: invalid UTF-8"}, /* over */
      {SCALARS, "72 02 c1bf", INVALID, "f_string: invalid UTF-8"}, /* long */
      {SCALARS, "72 03 e09fbf", INVALID, "f_string: invalid UTF-8"},
      {SCALARS, "72 04 f08fbfbf", INVALID, "f_string: invalid UTF-8"},
      {SCALARS, "72 03 eda080", INVALID, "f_string: invalid UTF-8"}, /* D800 */
      {SCALARS, "72 03 edbfbf", INVALID, "f_string: invalid UTF-8"}, /* DFFF */
      {SCALARS, "72 04 f4908080", INVALID, "f_string: invalid UTF-8"},
      {SCALARS, "72 04 f5808080", INVALID, "f_string: invalid UTF-8"},
      {SCALARS, "72 02 e282", INVALID, "f_string: invalid UTF-8"}, /* cut */
      {SCALARS, "72 03 e22861", INVALID, "f_string: invalid UTF-8"},
      {SCALARS, "72 03 f09080", INVALID, "f_string: invalid UTF-8"},
      {SCALARS, "72 03 610062", INVALID, "f_string: contains a NUL byte"},
      {SCALARS, "72 01 00", INVALID, "f_string: contains a NUL byte"},
      /* bytes are bytes */
      {SCALARS, "7a 03 ff0080", 0, ""},
      /* the first problem in wire order is the one told */
      {SCALARS, "72 01 61 72 01 ff 72 01 00", INVALID,
       "f_string: invalid UTF-8"},
  };
  run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

/* Strings wherever a string field can be. */
static void test_string_places(void **state) {
  (void)state;
  static const check_case cases[] = {
      /* repeated string (Repeated.r_string = 4) */
      {REPEATED, "22 01 61 22 01 ff", INVALID, "r_string: invalid UTF-8"},
      /* a string inside a repeated message (r_message = 7, Scalars) */
      {REPEATED, "3a 03 72 01 61 3a 03 72 01 00", INVALID,
       "r_message.f_string: contains a NUL byte"},
      /* packed ints and repeated bytes are not strings */
      {REPEATED, "0a 03 01 ff 7f 2a 01 ff", 0, ""},
      /* map<string, string> key and value (Maps.string_string = 1) */
      {MAPS, "0a 06 0a 01 6b 12 01 76", 0, ""},
      {MAPS, "0a 06 0a 01 ff 12 01 76", INVALID,
       "string_string.key: invalid UTF-8"},
      {MAPS, "0a 06 0a 01 6b 12 01 00", INVALID,
       "string_string.value: contains a NUL byte"},
      /* map<bool, string> value (3); map<sint32, bytes> value is bytes (6) */
      {MAPS, "1a 05 08 01 12 01 c0", INVALID,
       "bool_string.value: invalid UTF-8"},
      {MAPS, "32 05 08 02 12 01 ff", 0, ""},
      /* map<uint64, Scalars> (4): a string in the message value */
      {MAPS, "22 07 08 01 12 03 72 01 ff", INVALID,
       "uint64_message.value.f_string: invalid UTF-8"},
      /* map<string, Value> (7): Value.string_value (3) */
      {MAPS, "3a 08 0a 01 6b 12 03 1a 01 ff", INVALID,
       "string_value.value.string_value: invalid UTF-8"},
      /* oneof members (Presence.other_string = 2, name = 3) */
      {PRESENCE, "12 01 ff", INVALID, "other_string: invalid UTF-8"},
      {PRESENCE, "1a 02 6100", INVALID, "name: contains a NUL byte"},
      /* a message in a oneof (nested = 5, Scalars) */
      {PRESENCE, "2a 03 72 01 ff", INVALID, "nested.f_string: invalid UTF-8"},
      /* Struct (WellKnown.struct_field = 5): a key, a string value */
      {WELL_KNOWN, "2a 07 0a 05 0a 01 ff 12 00", INVALID,
       "struct_field.fields.key: invalid UTF-8"},
      {WELL_KNOWN, "2a 0a 0a 08 0a 01 6b 12 03 1a 01 00", INVALID,
       "struct_field.fields.value.string_value: contains a NUL byte"},
      /* ListValue (list = 7): values (1) of Value */
      {WELL_KNOWN, "3a 05 0a 03 1a 01 ff", INVALID,
       "list.values.string_value: invalid UTF-8"},
      /* StringValue wrapper (w_string = 16, tag 82 01) */
      {WELL_KNOWN, "82 01 03 0a 01 ff", INVALID,
       "w_string.value: invalid UTF-8"},
      /* SubmitRequest.subject and meta */
      {SUBMIT, "1a 02 c3a9", 0, ""},
      {SUBMIT, "1a 01 ff", INVALID, "subject: invalid UTF-8"},
      {SUBMIT, "1a 03 610062", INVALID, "subject: contains a NUL byte"},
      {SUBMIT, "32 06 0a 01 ff 12 01 76", INVALID, "meta.key: invalid UTF-8"},
  };
  run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_malformed_and_unknown(void **state) {
  (void)state;
  static const check_case cases[] = {
      /* unknown fields are skipped by wire type, strings in them too */
      {SCALARS, "f8 07 01", 0, ""},                /* 127, varint */
      {SCALARS, "9a 06 01 ff", 0, ""},             /* 99, len */
      {SCALARS, "99 06 0102030405060708", 0, ""},  /* 99, fixed64 */
      {SCALARS, "9d 06 01020304", 0, ""},          /* 99, fixed32 */
      {SCALARS, "fa ff ff ff 0f 01 ff", 0, ""},    /* 2^29-1 */
      {SCALARS, "08 ffffffffffffffffff01", 0, ""}, /* 10-byte varint */
      /* a known string with another wire type: left to unpack */
      {SCALARS, "70 ff 01", 0, ""},
      {SCALARS, "08", MALFORMED, "field 1: truncated varint"},
      {SCALARS, "08 80", MALFORMED, "field 1: truncated varint"},
      {SCALARS, "08 ffffffffffffffffffff01", MALFORMED,
       "field 1: truncated varint"}, /* 11 bytes */
      {SCALARS, "80", MALFORMED, "truncated field tag"},
      {SCALARS, "72 05 6869", MALFORMED, "field 14: length past the end"},
      {SCALARS, "72", MALFORMED, "field 14: length past the end"},
      {SCALARS, "72 ffffffffffffffffff01", MALFORMED,
       "field 14: length past the end"},
      {SCALARS, "09 01020304050607", MALFORMED,
       "field 1: truncated fixed value"},
      {SCALARS, "0d 010203", MALFORMED, "field 1: truncated fixed value"},
      {SCALARS, "0b 0c", MALFORMED, "field 1: wire type 3"},
      {SCALARS, "0c", MALFORMED, "field 1: wire type 4"},
      {SCALARS, "0e", MALFORMED, "field 1: wire type 6"},
      {SCALARS, "0f", MALFORMED, "field 1: wire type 7"},
      {SCALARS, "02 00", MALFORMED, "field number 0"},
      {SCALARS, "82 80 80 80 10 00", MALFORMED, "field number 536870912"},
      /* inside a nested message, with its path */
      {REPEATED, "3a 02 72 05", MALFORMED,
       "r_message: field 14: length past the end"},
  };
  run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

/* Recursive.child (1) nested depth times: the deepest at depth `depth`. */
static size_t recursive(uint8_t *out, size_t size, size_t depth) {
  size_t start = size;
  for (size_t i = 0; i < depth; i++) {
    start = deep_wrap_field(out, size, start, 1);
  }
  return start;
}

static void test_depth_boundary(void **state) {
  (void)state;
  static uint8_t buf[1 << 18];
  const ProtobufCMessageDescriptor *d = &jobhub__test__recursive__descriptor;
  char err[256];
  for (unsigned limit = 1; limit <= RPC_MAX_MESSAGE_DEPTH; limit++) {
    size_t start = recursive(buf, sizeof(buf), limit);
    assert_int_equal(rpc_wire_check(d, buf + start, sizeof(buf) - start, limit,
                                    err, sizeof(err)),
                     0);
    start = recursive(buf, sizeof(buf), limit + 1);
    assert_int_equal(rpc_wire_check(d, buf + start, sizeof(buf) - start, limit,
                                    err, sizeof(err)),
                     INVALID);
  }
  /* 100 levels pass, 101 do not; a larger limit counts as 100. */
  size_t start = recursive(buf, sizeof(buf), 100);
  assert_int_equal(
      rpc_wire_check(d, buf + start, sizeof(buf) - start, 100, err, 256), 0);
  ProtobufCMessage *m =
      protobuf_c_message_unpack(d, NULL, sizeof(buf) - start, buf + start);
  assert_non_null(m); /* and protobuf-c reads it */
  protobuf_c_message_free_unpacked(m, NULL);
  start = recursive(buf, sizeof(buf), 101);
  assert_int_equal(
      rpc_wire_check(d, buf + start, sizeof(buf) - start, 100, err, 256),
      INVALID);
  assert_non_null(strstr(err, ": nested deeper than 100 levels"));
  assert_int_equal(strncmp(err, "child.child.child.", 18), 0);
  assert_true(strlen(err) < 160); /* the path is shortened */
  assert_int_equal(rpc_wire_check(d, buf + start, sizeof(buf) - start, 100000,
                                  err, sizeof(err)),
                   INVALID);
  /* The server's request limit leaves room for answers. */
  assert_int_equal(RPC_MAX_REQUEST_DEPTH, 96);
  /* Deep enough to crash an unbounded recursion: refused, not followed. */
  start = recursive(buf, sizeof(buf), 20000);
  assert_int_equal(rpc_wire_check(d, buf + start, sizeof(buf) - start, 100, err,
                                  sizeof(err)),
                   INVALID);
  /* Malformed below the limit is a parse error; past it, the depth. */
  static const uint32_t three[] = {1, 1, 1};
  buf[sizeof(buf) - 1] = 0x0a; /* a truncated child inside the third */
  start = deep_wrap_fields(buf, sizeof(buf), sizeof(buf) - 1, three, 3);
  assert_int_equal(rpc_wire_check(d, buf + start, sizeof(buf) - start, 100, err,
                                  sizeof(err)),
                   MALFORMED);
  assert_string_equal(err, "child.child.child: field 1: length past the end");
}

static void test_struct_depth(void **state) {
  (void)state;
  static uint8_t buf[1 << 17];
  char err[256];
  /* levels JSON levels: deepest Struct at depth 2 + 3 * levels. 32 levels
   * reach 98; 33 reach 101. */
  size_t start = deep_submit_struct(buf, sizeof(buf), 32);
  assert_int_equal(rpc_wire_check(SUBMIT, buf + start, sizeof(buf) - start,
                                  RPC_MAX_MESSAGE_DEPTH, err, sizeof(err)),
                   0);
  ProtobufCMessage *m =
      protobuf_c_message_unpack(SUBMIT, NULL, sizeof(buf) - start, buf + start);
  assert_non_null(m);
  protobuf_c_message_free_unpacked(m, NULL);
  start = deep_submit_struct(buf, sizeof(buf), 33);
  assert_int_equal(rpc_wire_check(SUBMIT, buf + start, sizeof(buf) - start,
                                  RPC_MAX_MESSAGE_DEPTH, err, sizeof(err)),
                   INVALID);
  assert_int_equal(
      strncmp(err, "config.module_params.fields.value.struct_value.fields.",
              54),
      0);
  assert_non_null(
      strstr(err, "...struct_value: nested deeper than 100 levels"));
  /* The crash: 3,000 levels (about 41 KB). */
  start = deep_submit_struct(buf, sizeof(buf), 3000);
  assert_int_equal(rpc_wire_check(SUBMIT, buf + start, sizeof(buf) - start,
                                  RPC_MAX_MESSAGE_DEPTH, err, sizeof(err)),
                   INVALID);
}

/* Whatever protobuf-c packs from valid values passes. */
static void test_packed_by_protobuf_c(void **state) {
  (void)state;
  char value[] = "d\xc3\xa9j\xc3\xa0 \xf0\x9f\x98\x80", key[] = "cl\xc3\xa9",
       meta_key[] = "k", meta_value[] = "\xe2\x82\xac",
       subject[] = "sub\xc3\xa9";
  Google__Protobuf__Value inner = GOOGLE__PROTOBUF__VALUE__INIT;
  inner.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
  inner.string_value = value;
  Google__Protobuf__Struct__FieldsEntry entry =
      GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
  entry.key = key;
  entry.value = &inner;
  Google__Protobuf__Struct__FieldsEntry *entries[] = {&entry};
  Google__Protobuf__Struct params = GOOGLE__PROTOBUF__STRUCT__INIT;
  params.n_fields = 1;
  params.fields = entries;
  Jobhub__V1__JobConfig config = JOBHUB__V1__JOB_CONFIG__INIT;
  config.module_params = &params;
  Jobhub__V1__SubmitRequest__MetaEntry meta =
      JOBHUB__V1__SUBMIT_REQUEST__META_ENTRY__INIT;
  meta.key = meta_key;
  meta.value = meta_value;
  Jobhub__V1__SubmitRequest__MetaEntry *metas[] = {&meta};
  Jobhub__V1__SubmitRequest request = JOBHUB__V1__SUBMIT_REQUEST__INIT;
  request.subject = subject;
  request.config = &config;
  request.n_meta = 1;
  request.meta = metas;
  uint8_t buf[512];
  size_t len = protobuf_c_message_get_packed_size(&request.base);
  assert_true(len <= sizeof(buf));
  protobuf_c_message_pack(&request.base, buf);
  char err[256];
  assert_int_equal(
      rpc_wire_check(SUBMIT, buf, len, RPC_MAX_MESSAGE_DEPTH, err, sizeof(err)),
      0);
  assert_string_equal(err, "");
}

static void test_small_err_buffer(void **state) {
  (void)state;
  uint8_t data[] = {0x72, 0x01, 0xff};
  char err[8];
  memset(err, 'x', sizeof(err));
  assert_int_equal(
      rpc_wire_check(SCALARS, data, sizeof(data), 100, err, sizeof(err)),
      INVALID);
  assert_string_equal(err, "f_strin");
  assert_int_equal(rpc_wire_check(SCALARS, data, sizeof(data), 100, NULL, 0),
                   INVALID);
}

/* rpc_message_decode checks before unpacking, compressed messages too. */
static void test_message_decode(void **state) {
  (void)state;
  static uint8_t buf[1 << 17];
  ProtobufCMessage *m = NULL;
  char err[256];
  uint8_t bad[] = {0x1a, 0x01, 0xff};
  assert_int_equal(rpc_message_decode(SUBMIT, false, bad, sizeof(bad), 1 << 20,
                                      RPC_MAX_MESSAGE_DEPTH, &m, err,
                                      sizeof(err)),
                   RPC_MESSAGE_ERR_INVALID);
  assert_null(m);
  assert_string_equal(err, "subject: invalid UTF-8");
  uint8_t truncated[] = {0x1a, 0x05, 0x61};
  assert_int_equal(
      rpc_message_decode(SUBMIT, false, truncated, sizeof(truncated), 1 << 20,
                         RPC_MAX_MESSAGE_DEPTH, &m, err, sizeof(err)),
      RPC_MESSAGE_ERR_PARSE);
  assert_string_equal(err, "field 3: length past the end");
  /* 3,000 levels gzip-compressed: inflated, then refused. */
  size_t start = deep_submit_struct(buf, sizeof(buf), 3000);
  rpc_buffer packed;
  rpc_buffer_init(&packed);
  assert_int_equal(rpc_gzip_compress(buf + start, sizeof(buf) - start, &packed),
                   0);
  assert_int_equal(rpc_message_decode(SUBMIT, true, packed.data, packed.len,
                                      1 << 20, RPC_MAX_MESSAGE_DEPTH, &m, err,
                                      sizeof(err)),
                   RPC_MESSAGE_ERR_INVALID);
  assert_null(m);
  assert_non_null(strstr(err, "nested deeper than 100 levels"));
  rpc_buffer_free(&packed);
  /* A smaller limit given by the caller. */
  start = deep_submit_struct(buf, sizeof(buf), 32); /* depth 98 */
  assert_int_equal(
      rpc_message_decode(SUBMIT, false, buf + start, sizeof(buf) - start,
                         1 << 20, RPC_MAX_REQUEST_DEPTH, &m, err, sizeof(err)),
      RPC_MESSAGE_ERR_INVALID);
  assert_non_null(strstr(err, "nested deeper than 96 levels"));
  assert_int_equal(
      rpc_message_decode(SUBMIT, false, buf + start, sizeof(buf) - start,
                         1 << 20, RPC_MAX_MESSAGE_DEPTH, &m, err, sizeof(err)),
      0);
  assert_non_null(m);
  assert_string_equal(err, "");
  protobuf_c_message_free_unpacked(m, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_utf8),
      cmocka_unit_test(test_string_places),
      cmocka_unit_test(test_malformed_and_unknown),
      cmocka_unit_test(test_depth_boundary),
      cmocka_unit_test(test_struct_depth),
      cmocka_unit_test(test_packed_by_protobuf_c),
      cmocka_unit_test(test_small_err_buffer),
      cmocka_unit_test(test_message_decode),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
