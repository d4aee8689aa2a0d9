/* test_json.c: ProtoJSON both ways. Each JSON case goes to wire bytes and
 * back, and protobuf-c's own unpack and pack of those bytes (the compiled
 * jobhub__v1__* and jobhub__test__* types) must read back the same, so
 * the wire side is checked by another implementation. Then every error
 * with its message, wire-side semantics (packed and not, last one wins,
 * merging, oneofs, unknown fields), the options, and a proto2 type built
 * at run time with no compiled code at all. JSON in the tables is written
 * with ' for " (no case needs a literal '). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "deep_message.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "google/protobuf/field_mask.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"
#include "jobhub/v1/common.pb-c.h"
#include "jobhub/v1/jobs.pb-c.h"
#include "jobhub_descriptor_set.h"
#include "json_test.pb-c.h"
#include "json_test_descriptor_set.h"
#include "rpc/buffer.h"
#include "rpc/descriptor_pool.h"
#include "rpc/json.h"

static rpc_descriptor_pool *pool;

static int setup(void **state) {
  (void)state;
  pool = rpc_descriptor_pool_new();
  if (pool == NULL ||
      rpc_descriptor_pool_add_set(pool, jobhub_descriptor_set,
                                  jobhub_descriptor_set_size) != 0 ||
      rpc_descriptor_pool_add_set(pool, json_test_descriptor_set,
                                  json_test_descriptor_set_size) != 0) {
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  rpc_descriptor_pool_free(pool);
  return 0;
}

/* A table's JSON with ' turned into ", in one of a few rotating buffers. */
static const char *q(const char *text) {
  static char buffers[4][8192];
  static int next;
  char *out = buffers[next++ % 4];
  size_t len = strlen(text);
  assert_true(len < sizeof(buffers[0]));
  for (size_t i = 0; i <= len; i++) {
    out[i] = text[i] == '\'' ? '"' : text[i];
  }
  return out;
}

/* The JSON of wire bytes; fails the test on error. Caller frees. */
static char *json_of(const char *type, const uint8_t *data, size_t size,
                     const rpc_json_options *options) {
  rpc_buffer out;
  rpc_buffer_init(&out);
  char err[512];
  if (rpc_json_from_wire(pool, type, data, size, options, &out, err,
                         sizeof(err)) != 0) {
    fail_msg("from_wire %s: %s", type, err);
  }
  char *text = malloc(out.len + 1);
  assert_non_null(text);
  if (out.len > 0) {
    memcpy(text, out.data, out.len);
  }
  text[out.len] = '\0';
  rpc_buffer_free(&out);
  return text;
}

static void wire_of(const char *type, const char *json, rpc_buffer *out) {
  char err[512];
  if (rpc_json_to_wire(pool, type, json, strlen(json), out, err, sizeof(err)) !=
      0) {
    fail_msg("to_wire %s %s: %s", type, json, err);
  }
}

static const ProtobufCMessageDescriptor *compiled(const char *type) {
  static const struct {
    const char *name;
    const ProtobufCMessageDescriptor *descriptor;
  } types[] = {
      {"jobhub.test.Scalars", &jobhub__test__scalars__descriptor},
      {"jobhub.test.Repeated", &jobhub__test__repeated__descriptor},
      {"jobhub.test.Maps", &jobhub__test__maps__descriptor},
      {"jobhub.test.Presence", &jobhub__test__presence__descriptor},
      {"jobhub.test.WellKnown", &jobhub__test__well_known__descriptor},
      {"jobhub.test.Recursive", &jobhub__test__recursive__descriptor},
      {"jobhub.v1.SubmitRequest", &jobhub__v1__submit_request__descriptor},
      {"jobhub.v1.Job", &jobhub__v1__job__descriptor},
      {"google.protobuf.Value", &google__protobuf__value__descriptor},
      {"google.protobuf.Struct", &google__protobuf__struct__descriptor},
      {"google.protobuf.ListValue", &google__protobuf__list_value__descriptor},
      {"google.protobuf.Timestamp", &google__protobuf__timestamp__descriptor},
      {"google.protobuf.Duration", &google__protobuf__duration__descriptor},
      {"google.protobuf.Empty", &google__protobuf__empty__descriptor},
      {"google.protobuf.FieldMask", &google__protobuf__field_mask__descriptor},
      {"google.protobuf.Any", &google__protobuf__any__descriptor},
      {"google.protobuf.Int64Value",
       &google__protobuf__int64_value__descriptor},
  };
  for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
    if (strcmp(types[i].name, type) == 0) {
      return types[i].descriptor;
    }
  }
  return NULL;
}

/* JSON -> wire -> JSON must give expected; protobuf-c must read the wire
 * bytes, and its own serialization of them must give expected too. */
static void check_round_trip(const char *type, const char *json,
                             const char *expected,
                             const rpc_json_options *options) {
  rpc_buffer wire;
  rpc_buffer_init(&wire);
  wire_of(type, json, &wire);
  char *text = json_of(type, wire.data, wire.len, options);
  if (strcmp(text, expected) != 0) {
    fail_msg("%s\n  in:   %s\n  out:  %s\n  want: %s", type, json, text,
             expected);
  }
  free(text);
  const ProtobufCMessageDescriptor *descriptor = compiled(type);
  assert_non_null(descriptor);
  ProtobufCMessage *message =
      protobuf_c_message_unpack(descriptor, NULL, wire.len, wire.data);
  if (message == NULL) {
    fail_msg("protobuf-c cannot unpack %s from %s", type, json);
  }
  size_t size = protobuf_c_message_get_packed_size(message);
  uint8_t *packed = malloc(size + 1);
  assert_non_null(packed);
  assert_int_equal(protobuf_c_message_pack(message, packed), size);
  text = json_of(type, packed, size, options);
  if (strcmp(text, expected) != 0) {
    fail_msg("%s repacked by protobuf-c\n  in:   %s\n  out:  %s\n  want: %s",
             type, json, text, expected);
  }
  free(text);
  free(packed);
  protobuf_c_message_free_unpacked(message, NULL);
  rpc_buffer_free(&wire);
}

typedef struct json_case {
  const char *type;
  const char *json;
  const char *expected; /* NULL: json itself */
} json_case;

static void run_cases(const json_case *cases, size_t count) {
  for (size_t i = 0; i < count; i++) {
    char json[8192], expected[8192];
    snprintf(json, sizeof(json), "%s", q(cases[i].json));
    snprintf(expected, sizeof(expected), "%s",
             q(cases[i].expected != NULL ? cases[i].expected : cases[i].json));
    check_round_trip(cases[i].type, json, expected, NULL);
  }
}

#define RUN(cases) run_cases(cases, sizeof(cases) / sizeof(cases[0]))

/* ---- jobhub.v1 messages against protobuf-c ---- */

static Google__Protobuf__Value number_value(double number) {
  Google__Protobuf__Value v = GOOGLE__PROTOBUF__VALUE__INIT;
  v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
  v.number_value = number;
  return v;
}

static void test_submit_request(void **state) {
  (void)state;
  /* config.module_params = {"enabled": true, "name": "x",
   * "periods": [1, 2.5], "window": {"size": 3}, "z": null} */
  Google__Protobuf__Value one = number_value(1), two_half = number_value(2.5),
                          three = number_value(3);
  Google__Protobuf__Value *period_items[] = {&one, &two_half};
  Google__Protobuf__ListValue periods = GOOGLE__PROTOBUF__LIST_VALUE__INIT;
  periods.n_values = 2;
  periods.values = period_items;
  Google__Protobuf__Struct__FieldsEntry size_entry =
      GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
  size_entry.key = (char *)"size";
  size_entry.value = &three;
  Google__Protobuf__Struct__FieldsEntry *window_entries[] = {&size_entry};
  Google__Protobuf__Struct window = GOOGLE__PROTOBUF__STRUCT__INIT;
  window.n_fields = 1;
  window.fields = window_entries;
  Google__Protobuf__Value enabled = GOOGLE__PROTOBUF__VALUE__INIT,
                          name = GOOGLE__PROTOBUF__VALUE__INIT,
                          periods_value = GOOGLE__PROTOBUF__VALUE__INIT,
                          window_value = GOOGLE__PROTOBUF__VALUE__INIT,
                          null_value = GOOGLE__PROTOBUF__VALUE__INIT;
  enabled.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
  enabled.bool_value = 1;
  name.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
  name.string_value = (char *)"x";
  periods_value.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE;
  periods_value.list_value = &periods;
  window_value.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
  window_value.struct_value = &window;
  null_value.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE;
  null_value.null_value = GOOGLE__PROTOBUF__NULL_VALUE__NULL_VALUE;
  Google__Protobuf__Struct__FieldsEntry entries[5];
  Google__Protobuf__Struct__FieldsEntry *entry_pointers[5];
  const char *keys[] = {"enabled", "name", "periods", "window", "z"};
  Google__Protobuf__Value *values[] = {&enabled, &name, &periods_value,
                                       &window_value, &null_value};
  for (size_t i = 0; i < 5; i++) {
    google__protobuf__struct__fields_entry__init(&entries[i]);
    entries[i].key = (char *)keys[i];
    entries[i].value = values[i];
    entry_pointers[i] = &entries[i];
  }
  Google__Protobuf__Struct params = GOOGLE__PROTOBUF__STRUCT__INIT;
  params.n_fields = 5;
  params.fields = entry_pointers;
  Jobhub__V1__JobConfig config = JOBHUB__V1__JOB_CONFIG__INIT;
  config.config_name = (char *)"c1";
  config.job_type_id = 3;
  config.module = (char *)"forecast";
  config.max_n_points = 100;
  config.module_params = &params;
  Jobhub__V1__SubmitRequest__MetaEntry meta_a =
      JOBHUB__V1__SUBMIT_REQUEST__META_ENTRY__INIT;
  Jobhub__V1__SubmitRequest__MetaEntry meta_b =
      JOBHUB__V1__SUBMIT_REQUEST__META_ENTRY__INIT;
  meta_a.key = (char *)"a";
  meta_a.value = (char *)"1";
  meta_b.key = (char *)"b";
  meta_b.value = (char *)"two";
  Jobhub__V1__SubmitRequest__MetaEntry *meta[] = {&meta_a, &meta_b};
  Google__Protobuf__Timestamp not_before = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  not_before.seconds = 1714979289; /* 2024-05-06T07:08:09Z */
  not_before.nanos = 123000000;
  static uint8_t payload[] = {0x00, 0x01, 0xFF};
  Jobhub__V1__SubmitRequest request = JOBHUB__V1__SUBMIT_REQUEST__INIT;
  request.job_type_id = 3;
  request.pool_id = 1;
  request.subject = (char *)"series-a";
  request.config = &config;
  request.payload.data = payload;
  request.payload.len = sizeof(payload);
  request.n_meta = 2;
  request.meta = meta;
  request.priority = -5;
  request.not_before = &not_before;
  request.lease_seconds = 30;
  request.max_attempts = 4;
  request.idempotency_key = (char *)"k-1";
  request.response_output_id = UINT64_MAX;
  size_t size = jobhub__v1__submit_request__get_packed_size(&request);
  uint8_t *packed = malloc(size);
  assert_non_null(packed);
  jobhub__v1__submit_request__pack(&request, packed);

  const char *expected =
      q("{'jobTypeId':3,'poolId':1,'subject':'series-a','config':{"
        "'configName':'c1','jobTypeId':3,'module':'forecast','maxNPoints':100,"
        "'moduleParams':{'enabled':true,'name':'x','periods':[1,2.5],"
        "'window':{'size':3},'z':null}},'payload':'AAH/',"
        "'meta':{'a':'1','b':'two'},'priority':-5,"
        "'notBefore':'2024-05-06T07:08:09.123Z','leaseSeconds':30,"
        "'maxAttempts':4,'idempotencyKey':'k-1',"
        "'responseOutputId':'18446744073709551615'}");
  char *text = json_of("jobhub.v1.SubmitRequest", packed, size, NULL);
  assert_string_equal(text, expected);
  free(text);

  /* Back to the very bytes protobuf-c wrote, from the canonical JSON and
   * from the proto field names existing users send. */
  const char *as_users_write =
      q("{'meta':{'a':'1','b':'two'},'config':{'config_name':'c1',"
        "'job_type_id':3,'module':'forecast','max_n_points':100,"
        "'module_params':{'enabled':true,'name':'x','periods':[1,2.5],"
        "'window':{'size':3},'z':null}},'job_type_id':'3','pool_id':1,"
        "'subject':'series-a','payload':'AAH_','priority':-5,"
        "'not_before':'2024-05-06T09:08:09.123+02:00','lease_seconds':30,"
        "'max_attempts':4,'idempotency_key':'k-1',"
        "'response_output_id':18446744073709551615}");
  const char *inputs[] = {expected, as_users_write};
  for (size_t i = 0; i < 2; i++) {
    rpc_buffer wire;
    rpc_buffer_init(&wire);
    wire_of("jobhub.v1.SubmitRequest", inputs[i], &wire);
    assert_int_equal(wire.len, size);
    assert_memory_equal(wire.data, packed, size);
    rpc_buffer_free(&wire);
  }
  free(packed);
}

static void test_job(void **state) {
  (void)state;
  Google__Protobuf__Timestamp created = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  Google__Protobuf__Timestamp started = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  started.seconds = 63108020; /* 1972-01-01T10:00:20Z */
  started.nanos = 21000;
  Jobhub__V1__JobConfig config = JOBHUB__V1__JOB_CONFIG__INIT;
  config.module = (char *)"m";
  Jobhub__V1__Job job = JOBHUB__V1__JOB__INIT;
  job.id = (char *)"j-1";
  job.state = JOBHUB__V1__JOB_STATE__IN_PROGRESS;
  job.job_type_id = 2;
  job.config = &config;
  job.attempts = 1;
  job.worker_idx = (UINT64_C(1) << 20) | (UINT64_C(2) << 10) | 1;
  job.created_at = &created;
  job.started_at = &started;
  job.progress = 0.25;
  job.progress_message = (char *)"half \"way\"\n\x01";
  size_t size = jobhub__v1__job__get_packed_size(&job);
  uint8_t *packed = malloc(size);
  assert_non_null(packed);
  jobhub__v1__job__pack(&job, packed);
  const char *expected =
      q("{'id':'j-1','state':'IN_PROGRESS','jobTypeId':2,"
        "'config':{'module':'m'},'attempts':1,'workerIdx':'1050625',"
        "'createdAt':'1970-01-01T00:00:00Z',"
        "'startedAt':'1972-01-01T10:00:20.000021Z','progress':0.25,"
        "'progressMessage':'half \\'way\\'\\n\\u0001'}");
  char *text = json_of("jobhub.v1.Job", packed, size, NULL);
  assert_string_equal(text, expected);
  free(text);
  rpc_buffer wire;
  rpc_buffer_init(&wire);
  wire_of("jobhub.v1.Job", expected, &wire);
  assert_int_equal(wire.len, size);
  assert_memory_equal(wire.data, packed, size);
  rpc_buffer_free(&wire);
  free(packed);
}

/* ---- round trips, type by type ---- */

static void test_scalars(void **state) {
  (void)state;
  static const json_case cases[] = {
      {"jobhub.test.Scalars", "{}", NULL},
      {"jobhub.test.Scalars",
       "{'fDouble':1.5,'fFloat':-2.25,'fInt32':-7,"
       "'fInt64':'-9007199254740993','fUint32':4294967295,"
       "'fUint64':'18446744073709551615','fSint32':-2147483648,"
       "'fSint64':'-9223372036854775808','fFixed32':4294967295,"
       "'fFixed64':'18446744073709551615','fSfixed32':-2147483648,"
       "'fSfixed64':'9223372036854775807','fBool':true,"
       "'fString':'h\xc3\xa9llo \\'q\\' \\\\ \\n\\u0001\\u007f',"
       "'fBytes':'AAEC/w==','fColor':'GREEN'}",
       NULL},
      /* Proto field names, and enum numbers, are accepted. */
      {"jobhub.test.Scalars", "{'f_int32':5,'f_color':1}",
       "{'fInt32':5,'fColor':'RED'}"},
      /* Numbers as strings, strings as numbers. */
      {"jobhub.test.Scalars",
       "{'fInt32':'12','fDouble':'1e3','fFloat':'NaN','fUint64':12,"
       "'fSfixed64':-1,'fInt64':'1e2'}",
       "{'fDouble':1000,'fFloat':'NaN','fInt32':12,'fInt64':'100',"
       "'fUint64':'12','fSfixed64':'-1'}"},
      /* Integral numbers in any JSON notation. */
      {"jobhub.test.Scalars",
       "{'fInt32':1e2,'fInt64':1.5e3,'fUint32':100.000,'fSint64':-0,"
       "'fFixed32':4.294967295E9}",
       "{'fInt32':100,'fInt64':'1500','fUint32':100,'fFixed32':4294967295}"},
      {"jobhub.test.Scalars", "{'fDouble':'-Infinity','fFloat':'Infinity'}",
       NULL},
      /* Defaults and nulls are left out. */
      {"jobhub.test.Scalars",
       "{'fInt32':0,'fString':'','fBool':false,'fColor':'COLOR_UNSPECIFIED',"
       "'fBytes':'','fDouble':0,'fUint64':'0','fFloat':null,'fSint32':null}",
       "{}"},
      /* The shortest text that reads back the same value. */
      {"jobhub.test.Scalars", "{'fDouble':0.1,'fFloat':0.1}", NULL},
      {"jobhub.test.Scalars", "{'fFloat':3.4028235e38}",
       "{'fFloat':3.4028235e+38}"},
      {"jobhub.test.Scalars", "{'fFloat':3.40282356e38}",
       "{'fFloat':3.4028235e+38}"},
      {"jobhub.test.Scalars", "{'fFloat':1e-46}", "{}"},
      {"jobhub.test.Scalars", "{'fFloat':'1.4e-45','fDouble':'4.9e-324'}",
       "{'fDouble':5e-324,'fFloat':1e-45}"},
      {"jobhub.test.Scalars", "{'fFloat':16777217}", "{'fFloat':16777216}"},
      {"jobhub.test.Scalars", "{'fFloat':'0.30000001192092896'}",
       "{'fFloat':0.3}"},
      {"jobhub.test.Scalars", "{'fDouble':1e300,'fFloat':-1.17549435e-38}",
       "{'fDouble':1e+300,'fFloat':-1.1754944e-38}"},
      {"jobhub.test.Scalars", "{'fDouble':9007199254740993}",
       "{'fDouble':9007199254740992}"},
      {"jobhub.test.Scalars", "{'fDouble':123456789.125}", NULL},
      {"jobhub.test.Scalars", "{'fDouble':1e20,'fFloat':1e21}",
       "{'fDouble':100000000000000000000,'fFloat':1e+21}"},
      {"jobhub.test.Scalars", "{'fDouble':0.0001,'fFloat':0.00001}",
       "{'fDouble':0.0001,'fFloat':1e-05}"},
      {"jobhub.test.Scalars", "{'fDouble':1.7976931348623157e308}",
       "{'fDouble':1.7976931348623157e+308}"},
      /* An enum number with no name stays a number. */
      {"jobhub.test.Scalars", "{'fColor':7}", NULL},
      {"jobhub.test.Scalars", "{'fColor':-1}", NULL},
      /* 64-bit extremes as JSON numbers, exactly. */
      {"jobhub.test.Scalars", "{'fUint64':18446744073709551615}",
       "{'fUint64':'18446744073709551615'}"},
      {"jobhub.test.Scalars", "{'fInt64':-9223372036854775808}",
       "{'fInt64':'-9223372036854775808'}"},
      {"jobhub.test.Scalars", "{'fInt64':9223372036854775807}",
       "{'fInt64':'9223372036854775807'}"},
      {"jobhub.test.Scalars", "{'fFixed64':1.8446744073709551615e19}",
       "{'fFixed64':'18446744073709551615'}"},
      {"jobhub.test.Scalars", "{'fInt64':'-9223372036854775808'}", NULL},
      {"jobhub.test.Scalars", "{'fSint64':'9223372036854775807'}", NULL},
      {"jobhub.test.Scalars", "{'fSint32':2147483647}", NULL},
      {"jobhub.test.Scalars", "{'fSfixed32':2147483647}", NULL},
      /* URL-safe and unpadded base64 in; standard padded out. */
      {"jobhub.test.Scalars", "{'fBytes':'-_8'}", "{'fBytes':'+/8='}"},
      {"jobhub.test.Scalars", "{'fBytes':'AQ'}", "{'fBytes':'AQ=='}"},
      /* A string may hold any Unicode, escaped or not. */
      {"jobhub.test.Scalars", "{'fString':'\\ud83d\\ude00 \\/'}",
       "{'fString':'\xf0\x9f\x98\x80 /'}"},
  };
  RUN(cases);
  /* -0 is not the default (its bits are not zero), as in protobuf's C++
   * and Go; protobuf-c would drop it, so it is checked here alone. */
  rpc_buffer wire;
  rpc_buffer_init(&wire);
  wire_of("jobhub.test.Scalars", "{\"fDouble\":-0}", &wire);
  assert_int_equal(wire.len, 9);
  assert_memory_equal(wire.data, "\x09\0\0\0\0\0\0\0\x80", 9);
  char *text = json_of("jobhub.test.Scalars", wire.data, wire.len, NULL);
  assert_string_equal(text, "{\"fDouble\":-0}");
  free(text);
  /* So is a NUL in a string, which protobuf-c's C strings cannot hold. */
  rpc_buffer_reset(&wire);
  wire_of("jobhub.test.Scalars", "{\"fString\":\"a\\u0000b\"}", &wire);
  assert_int_equal(wire.len, 5);
  assert_memory_equal(wire.data,
                      "\x72\x03"
                      "a\0b",
                      5);
  text = json_of("jobhub.test.Scalars", wire.data, wire.len, NULL);
  assert_string_equal(text, "{\"fString\":\"a\\u0000b\"}");
  free(text);
  rpc_buffer_free(&wire);
}

static void test_repeated(void **state) {
  (void)state;
  static const json_case cases[] = {
      {"jobhub.test.Repeated",
       "{'rInt32':[1,-2,3],'rInt64':['1','-2',3],'rDouble':[0.5,'NaN'],"
       "'rString':['a',''],'rBytes':['AQ==',''],'rColor':['RED',2,9,0],"
       "'rMessage':[{},{'fInt32':1}],'rBool':[true,false],"
       "'rSint64':['-1'],'rFixed32':[7,0],'rFloat':[1.5,0],"
       "'rUint64':['0']}",
       "{'rInt32':[1,-2,3],'rInt64':['1','-2','3'],'rDouble':[0.5,'NaN'],"
       "'rString':['a',''],'rBytes':['AQ==',''],"
       "'rColor':['RED','GREEN',9,'COLOR_UNSPECIFIED'],"
       "'rMessage':[{},{'fInt32':1}],'rBool':[true,false],"
       "'rSint64':['-1'],'rFixed32':[7,0],'rFloat':[1.5,0],"
       "'rUint64':['0']}"},
      {"jobhub.test.Repeated", "{'rInt32':null,'rMessage':[]}", "{}"},
      {"jobhub.test.Repeated", "{'r_int32':[5]}", "{'rInt32':[5]}"},
  };
  RUN(cases);
}

static void test_maps(void **state) {
  (void)state;
  static const json_case cases[] = {
      /* Keys come out sorted (numerically for numbers). */
      {"jobhub.test.Maps",
       "{'stringString':{'b':'2','a':'1','':''},"
       "'int32Int64':{'-1':'5','10':0,'2':'-3'},"
       "'boolString':{'true':'t','false':'f'},"
       "'uint64Message':{'18446744073709551615':{'fInt32':1},'0':{}},"
       "'stringColor':{'x':'RED','y':0},'sint32Bytes':{'-5':'AQI='},"
       "'stringValue':{'n':null,'s':'x','l':[1,{'a':true}]},"
       "'fixed64Double':{'1':'Infinity'}}",
       "{'stringString':{'':'','a':'1','b':'2'},"
       "'int32Int64':{'-1':'5','2':'-3','10':'0'},"
       "'boolString':{'false':'f','true':'t'},"
       "'uint64Message':{'0':{},'18446744073709551615':{'fInt32':1}},"
       "'stringColor':{'x':'RED','y':'COLOR_UNSPECIFIED'},"
       "'sint32Bytes':{'-5':'AQI='},"
       "'stringValue':{'l':[1,{'a':true}],'n':null,'s':'x'},"
       "'fixed64Double':{'1':'Infinity'}}"},
      {"jobhub.test.Maps", "{'stringString':null,'int32Int64':{}}", "{}"},
      {"jobhub.test.Maps", "{'int32Int64':{'-2147483648':'1','1e1':'2'}}",
       "{'int32Int64':{'-2147483648':'1','10':'2'}}"},
  };
  RUN(cases);
}

static void test_presence_and_oneofs(void **state) {
  (void)state;
  static const json_case cases[] = {
      /* Explicit presence keeps a default; implicit leaves it out. */
      {"jobhub.test.Presence", "{'otherInt32':0,'plain':0,'customName':'x'}",
       "{'otherInt32':0,'customName':'x'}"},
      {"jobhub.test.Presence", "{'otherColor':'COLOR_UNSPECIFIED'}", NULL},
      {"jobhub.test.Presence", "{'otherString':''}", NULL},
      /* A declared json_name, and the proto name, both work. */
      {"jobhub.test.Presence", "{'renamed':'y'}", "{'customName':'y'}"},
      {"jobhub.test.Presence", "{'number':'5'}", NULL},
      {"jobhub.test.Presence", "{'name':''}", NULL},
      {"jobhub.test.Presence", "{'nested':{}}", NULL},
      {"jobhub.test.Presence", "{'nothing':null}", NULL},
      {"jobhub.test.Presence", "{'nothing':'NULL_VALUE'}", "{'nothing':null}"},
      /* A null member does not count as set. */
      {"jobhub.test.Presence", "{'name':null,'number':'3'}", "{'number':'3'}"},
      {"jobhub.test.Presence", "{'other_int32':-1,'plain':2,'number':0}",
       "{'otherInt32':-1,'number':'0','plain':2}"},
  };
  RUN(cases);
}

static void test_well_known_types(void **state) {
  (void)state;
  static const json_case cases[] = {
      {"jobhub.test.WellKnown", "{'duration':'1.5s'}", "{'duration':'1.500s'}"},
      {"jobhub.test.WellKnown", "{'duration':'-0.5s'}",
       "{'duration':'-0.500s'}"},
      {"jobhub.test.WellKnown", "{'duration':'3s'}", NULL},
      {"jobhub.test.WellKnown", "{'duration':'0s'}", NULL},
      {"jobhub.test.WellKnown", "{'duration':'-315576000000.999999999s'}",
       NULL},
      {"jobhub.test.WellKnown", "{'duration':'0.000000001s'}", NULL},
      {"jobhub.test.WellKnown", "{'duration':'1.12s'}",
       "{'duration':'1.120s'}"},
      {"jobhub.test.WellKnown", "{'duration':'1.0001s'}",
       "{'duration':'1.000100s'}"},
      {"jobhub.test.WellKnown", "{'time':'1972-01-01T10:00:20.021Z'}", NULL},
      {"jobhub.test.WellKnown", "{'time':'1970-01-01T00:00:00Z'}", NULL},
      {"jobhub.test.WellKnown", "{'time':'2024-02-29T23:30:00.5+01:00'}",
       "{'time':'2024-02-29T22:30:00.500Z'}"},
      {"jobhub.test.WellKnown", "{'time':'1969-12-31T23:59:59.999999999Z'}",
       NULL},
      {"jobhub.test.WellKnown", "{'time':'0001-01-01T00:00:00Z'}", NULL},
      {"jobhub.test.WellKnown", "{'time':'9999-12-31T23:59:59.999999999Z'}",
       NULL},
      {"jobhub.test.WellKnown", "{'time':'2000-03-01T00:00:00.000001-00:30'}",
       "{'time':'2000-03-01T00:30:00.000001Z'}"},
      {"jobhub.test.WellKnown", "{'empty':{}}", NULL},
      {"jobhub.test.WellKnown", "{'mask':'user.displayName,photo'}", NULL},
      {"jobhub.test.WellKnown", "{'mask':''}", NULL},
      {"jobhub.test.WellKnown",
       "{'structField':{'a':1,'b':[true,null,'s',[]],'c':{},'d':-1.5e-7}}",
       "{'structField':{'a':1,'b':[true,null,'s',[]],'c':{},'d':-1.5e-07}}"},
      {"jobhub.test.WellKnown", "{'structField':{}}", NULL},
      {"jobhub.test.WellKnown", "{'value':null}", NULL},
      {"jobhub.test.WellKnown", "{'value':1.5}", NULL},
      {"jobhub.test.WellKnown", "{'value':'s'}", NULL},
      {"jobhub.test.WellKnown", "{'value':false}", NULL},
      {"jobhub.test.WellKnown", "{'value':[]}", NULL},
      {"jobhub.test.WellKnown", "{'value':{}}", NULL},
      {"jobhub.test.WellKnown", "{'list':[1,'a',null,{'x':[]}]}", NULL},
      {"jobhub.test.WellKnown", "{'list':[]}", NULL},
      /* A wrapper is its bare value, a default one included. */
      {"jobhub.test.WellKnown",
       "{'wDouble':0,'wFloat':1.5,'wInt64':'-3',"
       "'wUint64':'18446744073709551615','wInt32':0,'wUint32':4,"
       "'wBool':false,'wString':'','wBytes':'AQ=='}",
       NULL},
      {"jobhub.test.WellKnown",
       "{'wInt64':5,'wInt32':'6','wFloat':'-Infinity'}",
       "{'wFloat':'-Infinity','wInt64':'5','wInt32':6}"},
      {"jobhub.test.WellKnown", "{'wInt32':null,'wString':null}", "{}"},
      {"jobhub.test.WellKnown", "{'rWrapper':[1,0]}", NULL},
      {"jobhub.test.WellKnown", "{'values':[null,1,'a']}", NULL},
      {"jobhub.test.WellKnown", "{'nullValue':null}", "{}"},
      {"jobhub.test.WellKnown",
       "{'any':{'@type':'type.googleapis.com/jobhub.test.Scalars',"
       "'fInt32':3}}",
       NULL},
      /* "@type" need not come first, and comes out first. */
      {"jobhub.test.WellKnown",
       "{'any':{'fInt32':3,'@type':'type.googleapis.com/jobhub.test.Scalars'}}",
       "{'any':{'@type':'type.googleapis.com/jobhub.test.Scalars',"
       "'fInt32':3}}"},
      {"jobhub.test.WellKnown",
       "{'any':{'@type':'type.googleapis.com/jobhub.test.Scalars'}}", NULL},
      {"jobhub.test.WellKnown",
       "{'any':{'@type':'type.googleapis.com/google.protobuf.Duration',"
       "'value':'2s'}}",
       NULL},
      {"jobhub.test.WellKnown",
       "{'any':{'@type':'type.googleapis.com/google.protobuf.Value',"
       "'value':{'k':[1]}}}",
       NULL},
      {"jobhub.test.WellKnown",
       "{'any':{'@type':'type.googleapis.com/google.protobuf.Empty',"
       "'value':{}}}",
       NULL},
      {"jobhub.test.WellKnown",
       "{'any':{'@type':'type.googleapis.com/google.protobuf.Any',"
       "'value':{'@type':'type.googleapis.com/google.protobuf.Int32Value',"
       "'value':5}}}",
       NULL},
      {"jobhub.test.WellKnown",
       "{'any':{'@type':'type.googleapis.com/google.protobuf.FieldMask',"
       "'value':'a.b,cD'}}",
       NULL},
      {"jobhub.test.WellKnown",
       "{'any':{'@type':'example.com/x/jobhub.v1.JobConfig',"
       "'module_params':{'p':2}}}",
       "{'any':{'@type':'example.com/x/jobhub.v1.JobConfig',"
       "'moduleParams':{'p':2}}}"},
      {"jobhub.test.WellKnown", "{'any':{}}", NULL},
      {"jobhub.test.WellKnown",
       "{'anys':[{'@type':'type.googleapis.com/jobhub.test.Recursive',"
       "'depth':1},{}]}",
       NULL},
      /* The well-known types at the top level. */
      {"google.protobuf.Value", "[1,'a',{'b':null},true]", NULL},
      {"google.protobuf.Value", "null", NULL},
      {"google.protobuf.Value", "'x'", NULL},
      {"google.protobuf.Struct", "{'a':{'b':{}}}", NULL},
      {"google.protobuf.ListValue", "[[],[[]]]", NULL},
      {"google.protobuf.Timestamp", "'2020-01-01T00:00:00Z'", NULL},
      {"google.protobuf.Duration", "'-1s'", NULL},
      {"google.protobuf.Empty", "{}", NULL},
      {"google.protobuf.Int64Value", "'9'", NULL},
      {"google.protobuf.FieldMask", "'a,b.c'", NULL},
      {"google.protobuf.Any", "{}", NULL},
      {"jobhub.test.Recursive", "{'child':{'child':{'depth':3}},'depth':1}",
       NULL},
  };
  RUN(cases);
}

/* ---- errors ---- */

typedef struct error_case {
  const char *type;
  const char *json;
  const char *message;
} error_case;

static void test_json_errors(void **state) {
  (void)state;
  static const error_case cases[] = {
      {"jobhub.test.Scalars", "{'fInt32':2147483648}",
       "fInt32: 2147483648 is out of range for int32"},
      {"jobhub.test.Scalars", "{'fInt32':-2147483649}",
       "fInt32: -2147483649 is out of range for int32"},
      {"jobhub.test.Scalars", "{'fInt32':1.5}",
       "fInt32: 1.5 is not an integer"},
      {"jobhub.test.Scalars", "{'fInt32':1e-1}",
       "fInt32: 1e-1 is not an integer"},
      {"jobhub.test.Scalars", "{'fInt32':'abc'}",
       "fInt32: \"abc\" is not a number"},
      {"jobhub.test.Scalars", "{'fInt32':' 1'}",
       "fInt32: \" 1\" is not a number"},
      {"jobhub.test.Scalars", "{'fInt32':'01'}",
       "fInt32: \"01\" is not a number"},
      {"jobhub.test.Scalars", "{'fInt32':''}", "fInt32: \"\" is not a number"},
      {"jobhub.test.Scalars", "{'fInt32':true}",
       "fInt32: expected a number for int32, got a boolean"},
      {"jobhub.test.Scalars", "{'fInt32':[1]}",
       "fInt32: expected a number for int32, got an array"},
      {"jobhub.test.Scalars", "{'fUint32':-1}",
       "fUint32: -1 is out of range for uint32"},
      {"jobhub.test.Scalars", "{'fUint32':4294967296}",
       "fUint32: 4294967296 is out of range for uint32"},
      {"jobhub.test.Scalars", "{'fInt64':9223372036854775808}",
       "fInt64: 9223372036854775808 is out of range for int64"},
      {"jobhub.test.Scalars", "{'fInt64':'-9223372036854775809'}",
       "fInt64: -9223372036854775809 is out of range for int64"},
      {"jobhub.test.Scalars", "{'fUint64':18446744073709551616}",
       "fUint64: 18446744073709551616 is out of range for uint64"},
      {"jobhub.test.Scalars", "{'fUint64':'-1'}",
       "fUint64: -1 is out of range for uint64"},
      {"jobhub.test.Scalars", "{'fUint64':1e20}",
       "fUint64: 1e20 is out of range for uint64"},
      {"jobhub.test.Scalars", "{'fSint32':'2147483648'}",
       "fSint32: 2147483648 is out of range for sint32"},
      {"jobhub.test.Scalars", "{'fFixed64':1.5e0}",
       "fFixed64: 1.5e0 is not an integer"},
      {"jobhub.test.Scalars", "{'fFloat':3.5e38}",
       "fFloat: 3.5e38 is out of range for float"},
      {"jobhub.test.Scalars", "{'fFloat':'-3.5e38'}",
       "fFloat: -3.5e38 is out of range for float"},
      {"jobhub.test.Scalars", "{'fDouble':'1e999'}",
       "fDouble: 1e999 is out of range for double"},
      {"jobhub.test.Scalars", "{'fDouble':'nan'}",
       "fDouble: \"nan\" is not a number"},
      {"jobhub.test.Scalars", "{'fDouble':'1.5 '}",
       "fDouble: \"1.5 \" is not a number"},
      {"jobhub.test.Scalars", "{'fDouble':{}}",
       "fDouble: expected a number for double, got an object"},
      {"jobhub.test.Scalars", "{'fBool':'true'}",
       "fBool: expected true or false, got a string"},
      {"jobhub.test.Scalars", "{'fBool':1}",
       "fBool: expected true or false, got a number"},
      {"jobhub.test.Scalars", "{'fString':1}",
       "fString: expected a string, got a number"},
      {"jobhub.test.Scalars", "{'fBytes':true}",
       "fBytes: expected a base64 string, got a boolean"},
      {"jobhub.test.Scalars", "{'fBytes':'!!'}",
       "fBytes: \"!!\" is not valid base64"},
      {"jobhub.test.Scalars", "{'fBytes':'A'}",
       "fBytes: \"A\" is not valid base64"},
      {"jobhub.test.Scalars", "{'fColor':'BLUE'}",
       "fColor: unknown value \"BLUE\" for enum jobhub.test.Color"},
      {"jobhub.test.Scalars", "{'fColor':'red'}",
       "fColor: unknown value \"red\" for enum jobhub.test.Color"},
      {"jobhub.test.Scalars", "{'fColor':1.5}",
       "fColor: 1.5 is not an integer"},
      {"jobhub.test.Scalars", "{'fColor':2147483648}",
       "fColor: 2147483648 is out of range for enum"},
      {"jobhub.test.Scalars", "{'fColor':{}}",
       "fColor: expected a name or number for enum jobhub.test.Color, got "
       "an object"},
      {"jobhub.test.Scalars", "{'nope':1}",
       "unknown field \"nope\" in jobhub.test.Scalars"},
      {"jobhub.test.Scalars", "{'FInt32':1}",
       "unknown field \"FInt32\" in jobhub.test.Scalars"},
      {"jobhub.test.Scalars", "{'fInt32':1,'f_int32':2}",
       "field f_int32 of jobhub.test.Scalars is given twice, as \"fInt32\" "
       "and \"f_int32\""},
      {"jobhub.test.Scalars", "{'fInt32':1,'fInt32':2}",
       "invalid JSON at line 1, column 20: duplicate object key near "
       "'\"fInt32\"'"},
      {"jobhub.test.Scalars", "{'fInt32':1",
       "invalid JSON at line 1, column 11: '}' expected near end of file"},
      {"jobhub.test.Scalars", "",
       "invalid JSON at line 1, column 0: unexpected token near end of file"},
      {"jobhub.test.Scalars", "{} {}",
       "invalid JSON at line 1, column 4: end of file expected near '{'"},
      {"jobhub.test.Scalars", "{'fDouble':1e400}",
       "invalid JSON at line 1, column 16: real number overflow near "
       "'1e400'"},
      {"jobhub.test.Scalars", "[]",
       "expected an object for jobhub.test.Scalars, got an array"},
      {"jobhub.test.Scalars", "3",
       "expected an object for jobhub.test.Scalars, got a number"},
      {"jobhub.test.Repeated", "{'rInt32':1}",
       "rInt32: expected an array for repeated field r_int32, got a number"},
      {"jobhub.test.Repeated", "{'rInt32':[1,null]}",
       "rInt32[1]: null is not allowed in a repeated field"},
      {"jobhub.test.Repeated", "{'rInt64':[1,'x']}",
       "rInt64[1]: \"x\" is not a number"},
      {"jobhub.test.Repeated", "{'rMessage':[{},{'bad':1}]}",
       "rMessage[1]: unknown field \"bad\" in jobhub.test.Scalars"},
      {"jobhub.test.Repeated", "{'rMessage':[null]}",
       "rMessage[0]: null is not allowed in a repeated field"},
      {"jobhub.test.Maps", "{'int32Int64':{'x':1}}",
       "int32Int64.x: \"x\" is not a number"},
      {"jobhub.test.Maps", "{'int32Int64':{'1':{}}}",
       "int32Int64.1: expected a number for int64, got an object"},
      {"jobhub.test.Maps", "{'boolString':{'yes':'a'}}",
       "boolString.yes: a bool map key is \"true\" or \"false\""},
      {"jobhub.test.Maps", "{'stringString':{'a':null}}",
       "stringString.a: null is not allowed as a map value"},
      {"jobhub.test.Maps", "{'stringString':[]}",
       "stringString: expected an object for map field string_string, got "
       "an array"},
      {"jobhub.test.Maps", "{'uint64Message':{'-1':{}}}",
       "uint64Message.-1: -1 is out of range for uint64"},
      {"jobhub.test.Presence", "{'name':'a','number':1}",
       "\"name\" and \"number\" are both set, but only one field of oneof "
       "choice may be"},
      {"jobhub.test.Presence", "{'nothing':null,'nested':{}}",
       "\"nested\" and \"nothing\" are both set, but only one field of oneof "
       "choice may be"},
      {"jobhub.test.Presence", "{'otherString':'a','otherInt32':1}",
       "\"otherInt32\" and \"otherString\" are both set, but only one field "
       "of oneof other may be"},
      {"jobhub.test.Presence", "{'nothing':1}",
       "nothing: expected null for google.protobuf.NullValue, got a number"},
      {"jobhub.test.WellKnown", "{'time':'1972-01-01 10:00:20Z'}",
       "time: \"1972-01-01 10:00:20Z\" is not an RFC 3339 timestamp (like "
       "1972-01-01T10:00:20.021Z)"},
      {"jobhub.test.WellKnown", "{'time':'2023-02-29T00:00:00Z'}",
       "time: \"2023-02-29T00:00:00Z\" is not an RFC 3339 timestamp (like "
       "1972-01-01T10:00:20.021Z)"},
      {"jobhub.test.WellKnown", "{'time':'1972-01-01T10:00:20.0000000001Z'}",
       "time: \"1972-01-01T10:00:20.0000000001Z\" is not an RFC 3339 "
       "timestamp (like 1972-01-01T10:00:20.021Z)"},
      {"jobhub.test.WellKnown", "{'time':'1972-01-01T10:00:20z'}",
       "time: \"1972-01-01T10:00:20z\" is not an RFC 3339 timestamp (like "
       "1972-01-01T10:00:20.021Z)"},
      {"jobhub.test.WellKnown", "{'time':'1972-01-01T24:00:00Z'}",
       "time: \"1972-01-01T24:00:00Z\" is not an RFC 3339 timestamp (like "
       "1972-01-01T10:00:20.021Z)"},
      {"jobhub.test.WellKnown", "{'time':'0001-01-01T00:00:00+00:01'}",
       "time: \"0001-01-01T00:00:00+00:01\" is outside 0001-01-01 to "
       "9999-12-31"},
      {"jobhub.test.WellKnown", "{'time':5}",
       "time: expected a string for google.protobuf.Timestamp, got a number"},
      {"jobhub.test.WellKnown", "{'duration':'1.5'}",
       "duration: \"1.5\" is not a duration (like 1.5s)"},
      {"jobhub.test.WellKnown", "{'duration':'.5s'}",
       "duration: \".5s\" is not a duration (like 1.5s)"},
      {"jobhub.test.WellKnown", "{'duration':'1.0000000001s'}",
       "duration: \"1.0000000001s\" is not a duration (like 1.5s)"},
      {"jobhub.test.WellKnown", "{'duration':'315576000001s'}",
       "duration: \"315576000001s\" is beyond 315576000000 seconds"},
      {"jobhub.test.WellKnown", "{'mask':'a_b'}",
       "mask: FieldMask path \"a_b\" is not lowerCamelCase"},
      {"jobhub.test.WellKnown", "{'mask':['a']}",
       "mask: expected a string for google.protobuf.FieldMask, got an array"},
      {"jobhub.test.WellKnown", "{'structField':[]}",
       "structField: expected an object for google.protobuf.Struct, got an "
       "array"},
      {"jobhub.test.WellKnown", "{'list':{}}",
       "list: expected an array for google.protobuf.ListValue, got an object"},
      {"jobhub.test.WellKnown", "{'empty':{'a':1}}",
       "empty: unknown field \"a\" in google.protobuf.Empty"},
      {"jobhub.test.WellKnown", "{'wInt32':'x'}",
       "wInt32: \"x\" is not a number"},
      {"jobhub.test.WellKnown", "{'wBool':{}}",
       "wBool: expected true or false, got an object"},
      {"jobhub.test.WellKnown", "{'rWrapper':[1,null]}",
       "rWrapper[1]: null is not allowed in a repeated field"},
      {"jobhub.test.WellKnown", "{'any':{'fInt32':1}}",
       "any: google.protobuf.Any needs an \"@type\""},
      {"jobhub.test.WellKnown",
       "{'any':{'@type':'type.googleapis.com/no.Such'}}",
       "any.@type: Any type \"type.googleapis.com/no.Such\" is not in the "
       "descriptor pool"},
      {"jobhub.test.WellKnown", "{'any':{'@type':'type.googleapis.com/'}}",
       "any.@type: Any type \"type.googleapis.com/\" is not in the "
       "descriptor pool"},
      {"jobhub.test.WellKnown", "{'any':{'@type':5}}",
       "any.@type: expected a type URL string, got a number"},
      {"jobhub.test.WellKnown",
       "{'any':{'@type':'type.googleapis.com/google.protobuf.Duration',"
       "'value':'1s','x':1}}",
       "any: unknown field \"x\" in an Any of google.protobuf.Duration (only "
       "\"value\")"},
      {"jobhub.test.WellKnown",
       "{'any':{'@type':'type.googleapis.com/jobhub.test.Scalars','value':1}}",
       "any: unknown field \"value\" in jobhub.test.Scalars"},
      {"jobhub.test.WellKnown",
       "{'anys':[{'@type':'type.googleapis.com/google.protobuf.Timestamp',"
       "'value':'x'}]}",
       "anys[0].value: \"x\" is not an RFC 3339 timestamp (like "
       "1972-01-01T10:00:20.021Z)"},
      /* The path names each step, through Structs too. */
      {"jobhub.v1.SubmitRequest",
       "{'config':{'module_params':{'periods':[1,2]},'maxNPoints':-1}}",
       "config.maxNPoints: -1 is out of range for uint32"},
      {"jobhub.v1.SubmitRequest", "{'config':{'modulle':'x'}}",
       "config: unknown field \"modulle\" in jobhub.v1.JobConfig"},
      {"jobhub.v1.SubmitRequest", "{'payload':'a'}",
       "payload: \"a\" is not valid base64"},
      {"jobhub.v1.SubmitRequest", "{'notBefore':'2020-13-01T00:00:00Z'}",
       "notBefore: \"2020-13-01T00:00:00Z\" is not an RFC 3339 timestamp "
       "(like 1972-01-01T10:00:20.021Z)"},
      {"jobhub.v1.SubmitRequest", "{'meta':{'k':1}}",
       "meta.k: expected a string, got a number"},
      {"jobhub.v1.Job", "{'state':'RUNNING'}",
       "state: unknown value \"RUNNING\" for enum jobhub.v1.JobState"},
      {"jobhub.v1.Nope", "{}",
       "message type jobhub.v1.Nope is not in the descriptor pool"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    rpc_buffer out;
    rpc_buffer_init(&out);
    assert_int_equal(rpc_buffer_append(&out, "keep", 4), 0);
    char err[512];
    const char *json = q(cases[i].json);
    int rv = rpc_json_to_wire(pool, cases[i].type, json, strlen(json), &out,
                              err, sizeof(err));
    if (rv != -1) {
      fail_msg("%s %s: accepted", cases[i].type, json);
    }
    if (strcmp(err, cases[i].message) != 0) {
      fail_msg("%s %s\n  got:  %s\n  want: %s", cases[i].type, json, err,
               cases[i].message);
    }
    /* On error out is as it was. */
    assert_int_equal(out.len, 4);
    assert_memory_equal(out.data, "keep", 4);
    rpc_buffer_free(&out);
  }
}

static void test_depth_limit(void **state) {
  (void)state;
  char json[4096];
  /* RPC_JSON_MAX_DEPTH messages deep is fine, one more is not. */
  for (int depth = RPC_JSON_MAX_DEPTH; depth <= RPC_JSON_MAX_DEPTH + 1;
       depth++) {
    size_t at = 0;
    for (int i = 1; i < depth; i++) {
      at += (size_t)snprintf(json + at, sizeof(json) - at, "{\"child\":");
    }
    at += (size_t)snprintf(json + at, sizeof(json) - at, "{}");
    for (int i = 1; i < depth; i++) {
      json[at++] = '}';
    }
    json[at] = '\0';
    rpc_buffer out;
    rpc_buffer_init(&out);
    char err[512];
    int rv = rpc_json_to_wire(pool, "jobhub.test.Recursive", json, at, &out,
                              err, sizeof(err));
    if (depth == RPC_JSON_MAX_DEPTH) {
      assert_int_equal(rv, 0);
      char *text = json_of("jobhub.test.Recursive", out.data, out.len, NULL);
      assert_string_equal(text, json);
      free(text);
    } else {
      assert_int_equal(rv, -1);
      assert_non_null(strstr(err, "nested deeper than 100 levels"));
      assert_int_equal(strncmp(err, "child.child.child.", 18), 0);
    }
    rpc_buffer_free(&out);
  }
  /* Inside a Struct too, with the path down to the problem. */
  size_t at = (size_t)snprintf(json, sizeof(json),
                               "{\"config\":{\"module_params\":{\"periods\":");
  for (int i = 0; i < 120; i++) {
    json[at++] = '[';
  }
  for (int i = 0; i < 120; i++) {
    json[at++] = ']';
  }
  at += (size_t)snprintf(json + at, sizeof(json) - at, "}}}");
  rpc_buffer out;
  rpc_buffer_init(&out);
  char err[512];
  assert_int_equal(rpc_json_to_wire(pool, "jobhub.v1.SubmitRequest", json, at,
                                    &out, err, sizeof(err)),
                   -1);
  assert_int_equal(strncmp(err, "config.module_params.periods[0][0][0]", 37),
                   0);
  assert_non_null(strstr(err, ": nested deeper than 100 levels"));
  rpc_buffer_free(&out);
}

/* Nesting far past the limit, as an attacker sends it (the CLI transcodes
 * answers of raw-bytes calls without protobuf-c): refused both ways, not
 * followed down the stack. */
static void test_depth_limit_far_past(void **state) {
  (void)state;
  static uint8_t buf[1 << 18];
  rpc_buffer out;
  rpc_buffer_init(&out);
  char err[512];
  /* SubmitRequest.config.module_params, a Struct 3,000 levels deep. */
  size_t start = deep_submit_struct(buf, sizeof(buf), 3000);
  assert_int_equal(rpc_json_from_wire(pool, "jobhub.v1.SubmitRequest",
                                      buf + start, sizeof(buf) - start, NULL,
                                      &out, err, sizeof(err)),
                   -1);
  assert_non_null(strstr(err, "nested deeper than 100 levels"));
  assert_int_equal(strncmp(err, "config.moduleParams.k.k.k", 25), 0);
  /* A plain message 20,000 levels deep. */
  start = sizeof(buf);
  for (int i = 0; i < 20000; i++) {
    start = deep_wrap_field(buf, sizeof(buf), start, 1);
  }
  assert_int_equal(rpc_json_from_wire(pool, "jobhub.test.Recursive",
                                      buf + start, sizeof(buf) - start, NULL,
                                      &out, err, sizeof(err)),
                   -1);
  assert_non_null(strstr(err, "nested deeper than 100 levels"));
  assert_int_equal(out.len, 0);
  /* JSON 2,000 levels deep (jansson itself stops at 2,048): arrays and
   * objects in a Struct, and messages. */
  static char json[1 << 15];
  static const struct {
    const char *type, *head, *open, *close, *tail;
  } deep[] = {
      {"jobhub.v1.SubmitRequest", "{\"config\":{\"moduleParams\":{\"a\":", "[",
       "]", "}}}"},
      {"jobhub.v1.SubmitRequest",
       "{\"config\":{\"moduleParams\":", "{\"k\":", "}", "}}"},
      {"jobhub.test.Recursive", "", "{\"child\":", "}", ""},
  };
  for (size_t c = 0; c < sizeof(deep) / sizeof(deep[0]); c++) {
    size_t at = (size_t)snprintf(json, sizeof(json), "%s", deep[c].head);
    for (int i = 0; i < 2000; i++) {
      at += (size_t)snprintf(json + at, sizeof(json) - at, "%s", deep[c].open);
    }
    at += (size_t)snprintf(json + at, sizeof(json) - at, "{}");
    for (int i = 0; i < 2000; i++) {
      at += (size_t)snprintf(json + at, sizeof(json) - at, "%s", deep[c].close);
    }
    at += (size_t)snprintf(json + at, sizeof(json) - at, "%s", deep[c].tail);
    assert_true(at < sizeof(json) - 1);
    assert_int_equal(
        rpc_json_to_wire(pool, deep[c].type, json, at, &out, err, sizeof(err)),
        -1);
    if (strstr(err, "nested deeper than 100 levels") == NULL) {
      fail_msg("%s: %s", deep[c].type, err);
    }
    assert_int_equal(out.len, 0);
  }
  rpc_buffer_free(&out);
}

/* ---- the wire side ---- */

typedef struct wire_case {
  const char *type;
  const char *hex;      /* wire bytes */
  const char *expected; /* JSON, or NULL */
  const char *message;  /* the error, when expected is NULL */
} wire_case;

static size_t from_hex(const char *hex, uint8_t *out, size_t max) {
  size_t n = 0;
  for (const char *p = hex; *p;) {
    if (*p == ' ') {
      p++;
      continue;
    }
    unsigned value;
    assert_int_equal(sscanf(p, "%2x", &value), 1);
    assert_true(n < max);
    out[n++] = (uint8_t)value;
    p += 2;
  }
  return n;
}

static void test_wire_side(void **state) {
  (void)state;
  static const wire_case cases[] = {
      /* Packed and unpacked records of one field, mixed. */
      {"jobhub.test.Repeated", "08 01 0a 02 02 03 08 04",
       "{'rInt32':[1,2,3,4]}", NULL},
      /* An unpacked-by-default field sent packed, and the other way. */
      {"jobhub.test.Repeated", "12 02 05 06 10 07", "{'rInt64':['5','6','7']}",
       NULL},
      {"jobhub.test.Repeated", "5d 00 00 c0 3f 5a 04 00 00 20 40",
       "{'rFloat':[1.5,2.5]}", NULL},
      /* An empty packed record holds no element (found by fuzz_json). */
      {"jobhub.test.Repeated", "3d 0a 60 74 22 12 00", "{}", NULL},
      {"jobhub.test.Repeated", "12 00 10 01 12 00", "{'rInt64':['1']}", NULL},
      /* Unknown fields of every wire type are skipped. */
      {"jobhub.test.Scalars",
       "f8 06 01 fa 06 02 61 62 fb 06 08 01 fc 06 fd 06 00 00 00 00 "
       "f9 06 00 00 00 00 00 00 00 00 18 05",
       "{'fInt32':5}", NULL},
      /* The last of a singular field wins; a default one hides the field. */
      {"jobhub.test.Scalars", "18 01 18 02", "{'fInt32':2}", NULL},
      {"jobhub.test.Scalars", "18 01 18 00", "{}", NULL},
      /* A wrong wire type is an unknown field. */
      {"jobhub.test.Scalars", "18 07 1a 00", "{'fInt32':7}", NULL},
      /* Ten-byte negative int32, a bool of 2, a truncated int32. */
      {"jobhub.test.Scalars",
       "18 ff ff ff ff ff ff ff ff ff 01 68 02 28 80 80 80 80 10",
       "{'fInt32':-1,'fBool':true}", NULL},
      /* A singular message seen twice is merged. */
      {"jobhub.test.Presence", "2a 02 18 01 2a 02 20 02",
       "{'nested':{'fInt32':1,'fInt64':'2'}}", NULL},
      /* A oneof takes the member seen last ... */
      {"jobhub.test.Presence", "1a 01 78 20 05", "{'number':'5'}", NULL},
      {"jobhub.test.Presence", "20 05 1a 01 78", "{'name':'x'}", NULL},
      /* ... and merges only what came after another member. */
      {"jobhub.test.Presence", "2a 02 18 01 1a 01 78 2a 02 20 02",
       "{'nested':{'fInt64':'2'}}", NULL},
      {"jobhub.test.Presence", "30 00", "{'nothing':null}", NULL},
      /* Map entries: the last of a key wins; a missing key or value is
       * its default. */
      {"jobhub.test.Maps",
       "0a 06 0a 01 61 12 01 31 0a 06 0a 01 61 12 01 32 0a 00 0a 03 12 01 7a",
       "{'stringString':{'':'z','a':'2'}}", NULL},
      {"jobhub.test.Maps", "22 02 08 07", "{'uint64Message':{'7':{}}}", NULL},
      {"jobhub.test.Maps", "3a 03 0a 01 6b", "{'stringValue':{'k':null}}",
       NULL},
      /* A Struct's duplicate keys, a Value's last kind. */
      {"jobhub.test.WellKnown",
       "2a 10 0a 0e 0a 01 61 12 09 11 00 00 00 00 00 00 f0 3f "
       "2a 0a 0a 08 0a 01 61 12 03 1a 01 62",
       "{'structField':{'a':'b'}}", NULL},
      {"jobhub.test.WellKnown", "32 04 20 01 08 00", "{'value':null}", NULL},
      {"jobhub.test.WellKnown", "32 00", "{'value':null}", NULL},
      /* Errors, each with where it is. */
      {"jobhub.test.Scalars", "08 80", NULL,
       "malformed wire data for jobhub.test.Scalars: truncated varint"},
      {"jobhub.test.Scalars", "72 05 61", NULL,
       "malformed wire data for jobhub.test.Scalars: truncated "
       "length-delimited field"},
      {"jobhub.test.Scalars", "09 00 00", NULL,
       "malformed wire data for jobhub.test.Scalars: truncated fixed-width "
       "field"},
      {"jobhub.test.Scalars", "0e", NULL,
       "malformed wire data for jobhub.test.Scalars: invalid wire type"},
      {"jobhub.test.Scalars", "00 01", NULL,
       "malformed wire data for jobhub.test.Scalars: invalid field number"},
      {"jobhub.test.Scalars", "0c", NULL,
       "malformed wire data for jobhub.test.Scalars: unexpected end-group "
       "tag"},
      {"jobhub.test.Scalars", "0b 10 01", NULL,
       "malformed wire data for jobhub.test.Scalars: unterminated group"},
      {"jobhub.test.Scalars", "0b 14", NULL,
       "malformed wire data for jobhub.test.Scalars: unexpected end-group "
       "tag"},
      {"jobhub.test.Scalars", "72 01 ff", NULL,
       "fString: string is not valid UTF-8"},
      {"jobhub.test.Scalars", "72 03 ed a0 80", NULL,
       "fString: string is not valid UTF-8"},
      {"jobhub.test.Scalars", "72 02 c0 80", NULL,
       "fString: string is not valid UTF-8"},
      {"jobhub.test.Repeated", "3a 02 08 80", NULL,
       "rMessage[0]: malformed wire data for jobhub.test.Scalars: truncated "
       "varint"},
      {"jobhub.test.Repeated", "0a 02 01 80", NULL,
       "rInt32: malformed wire data: truncated packed varint"},
      {"jobhub.test.Repeated", "52 03 01 00 00", NULL,
       "rFixed32: malformed wire data: truncated packed value"},
      {"jobhub.test.Maps", "0a 02 0a 05", NULL,
       "stringString: malformed wire data for "
       "jobhub.test.Maps.StringStringEntry: truncated length-delimited "
       "field"},
      {"jobhub.test.WellKnown", "32 09 11 00 00 00 00 00 00 f8 7f", NULL,
       "value: a Value cannot hold NaN in JSON"},
      {"jobhub.test.WellKnown", "3a 0b 0a 09 11 00 00 00 00 00 00 f0 7f", NULL,
       "list[0]: a Value cannot hold an infinity in JSON"},
      {"jobhub.test.WellKnown", "42 07 08 80 83 d1 ff af 07", NULL,
       "time: Timestamp 253402300800s 0ns is outside 0001-01-01 to "
       "9999-12-31"},
      {"jobhub.test.WellKnown", "42 02 10 7f 42 00",
       "{'time':'1970-01-01T00:00:00.000000127Z'}", NULL},
      {"jobhub.test.WellKnown", "42 0b 10 ff ff ff ff ff ff ff ff ff 01", NULL,
       "time: Timestamp 0s -1ns is outside 0001-01-01 to 9999-12-31"},
      {"jobhub.test.WellKnown", "12 0d 08 01 10 ff ff ff ff ff ff ff ff ff 01",
       NULL, "duration: Duration 1s -1ns is out of range"},
      {"jobhub.test.WellKnown", "22 05 0a 03 61 5f 31", NULL,
       "mask: FieldMask path \"a_1\" has no lowerCamelCase form"},
      {"jobhub.test.WellKnown", "22 04 0a 02 61 42", NULL,
       "mask: FieldMask path \"aB\" has no lowerCamelCase form"},
      {"jobhub.test.WellKnown", "0a 07 0a 05 61 2f 62 2e 63", NULL,
       "any: Any type \"a/b.c\" is not in the descriptor pool"},
      {"jobhub.test.WellKnown", "0a 03 12 01 00", NULL,
       "any: Any has a value but no type URL"},
      {"jobhub.test.WellKnown",
       "0a 25 0a 21 74 79 70 65 2e 67 6f 6f 67 6c 65 61 70 69 73 2e 63 6f 6d "
       "2f 6a 6f 62 68 75 62 2e 76 31 2e 4a 6f 62 12 00",
       "{'any':{'@type':'type.googleapis.com/jobhub.v1.Job'}}", NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    uint8_t data[256];
    size_t size = from_hex(cases[i].hex, data, sizeof(data));
    rpc_buffer out;
    rpc_buffer_init(&out);
    char err[512];
    int rv = rpc_json_from_wire(pool, cases[i].type, data, size, NULL, &out,
                                err, sizeof(err));
    if (cases[i].expected != NULL) {
      if (rv != 0) {
        fail_msg("%s [%s]: %s", cases[i].type, cases[i].hex, err);
      }
      const char *expected = q(cases[i].expected);
      if (out.len != strlen(expected) ||
          memcmp(out.data, expected, out.len) != 0) {
        fail_msg("%s [%s]\n  got:  %.*s\n  want: %s", cases[i].type,
                 cases[i].hex, (int)out.len, (const char *)out.data, expected);
      }
    } else {
      if (rv != -1) {
        fail_msg("%s [%s]: accepted as %.*s", cases[i].type, cases[i].hex,
                 (int)out.len, (const char *)out.data);
      }
      if (strcmp(err, cases[i].message) != 0) {
        fail_msg("%s [%s]\n  got:  %s\n  want: %s", cases[i].type, cases[i].hex,
                 err, cases[i].message);
      }
      assert_int_equal(out.len, 0);
    }
    rpc_buffer_free(&out);
  }
  rpc_buffer out;
  rpc_buffer_init(&out);
  char err[20];
  assert_int_equal(rpc_json_from_wire(pool, ".jobhub.test.Nope", NULL, 0, NULL,
                                      &out, err, sizeof(err)),
                   -1);
  assert_string_equal(err, "message type jobhub"); /* cut to err_size */
  /* No err buffer at all is fine. */
  assert_int_equal(rpc_json_from_wire(pool, "jobhub.test.Nope", NULL, 0, NULL,
                                      &out, NULL, 0),
                   -1);
  rpc_buffer_free(&out);
}

/* ---- options ---- */

static void check_options(const char *type, const char *json,
                          const rpc_json_options *options,
                          const char *expected) {
  rpc_buffer wire;
  rpc_buffer_init(&wire);
  wire_of(type, q(json), &wire);
  char *text = json_of(type, wire.data, wire.len, options);
  if (strcmp(text, expected) != 0) {
    fail_msg("%s %s\n  got:  %s\n  want: %s", type, json, text, expected);
  }
  /* Whatever the options, the output reads back to the same bytes. */
  rpc_buffer again;
  rpc_buffer_init(&again);
  wire_of(type, text, &again);
  assert_int_equal(again.len, wire.len);
  if (wire.len > 0) {
    assert_memory_equal(again.data, wire.data, wire.len);
  }
  free(text);
  rpc_buffer_free(&again);
  rpc_buffer_free(&wire);
}

static void test_options(void **state) {
  (void)state;
  rpc_json_options defaults = {.emit_defaults = true};
  check_options("jobhub.test.Scalars", "{}", &defaults,
                q("{'fDouble':0,'fFloat':0,'fInt32':0,'fInt64':'0','fUint32':0,"
                  "'fUint64':'0','fSint32':0,'fSint64':'0','fFixed32':0,"
                  "'fFixed64':'0','fSfixed32':0,'fSfixed64':'0','fBool':false,"
                  "'fString':'','fBytes':'','fColor':'COLOR_UNSPECIFIED'}"));
  /* Fields with presence and messages still only when set. */
  check_options("jobhub.test.Presence", "{}", &defaults,
                q("{'plain':0,'customName':''}"));
  check_options("jobhub.test.Presence", "{'otherInt32':0}", &defaults,
                q("{'otherInt32':0,'plain':0,'customName':''}"));
  check_options("jobhub.test.Repeated", "{'rBool':[false]}", &defaults,
                q("{'rInt32':[],'rInt64':[],'rDouble':[],'rString':[],"
                  "'rBytes':[],'rColor':[],'rMessage':[],'rBool':[false],"
                  "'rSint64':[],'rFixed32':[],'rFloat':[],'rUint64':[]}"));
  check_options("jobhub.test.Maps", "{}", &defaults,
                q("{'stringString':{},'int32Int64':{},'boolString':{},"
                  "'uint64Message':{},'stringColor':{},'sint32Bytes':{},"
                  "'stringValue':{},'fixed64Double':{}}"));
  check_options("jobhub.test.WellKnown", "{'value':null}", &defaults,
                q("{'value':null,'values':[],'nullValue':null,'anys':[],"
                  "'rWrapper':[]}"));
  rpc_json_options names = {.proto_names = true};
  check_options("jobhub.test.Presence", "{'customName':'x','otherInt32':1}",
                &names, q("{'other_int32':1,'renamed':'x'}"));
  check_options(
      "jobhub.test.WellKnown",
      "{'any':{'@type':'type.googleapis.com/jobhub.test.Scalars','fInt32':1}}",
      &names,
      q("{'any':{'@type':'type.googleapis.com/jobhub.test.Scalars',"
        "'f_int32':1}}"));
  rpc_json_options indented = {.indent = 2};
  check_options("jobhub.test.Repeated",
                "{'rInt32':[1,2],'rMessage':[{},{'fString':'a'}]}", &indented,
                "{\n"
                "  \"rInt32\": [\n"
                "    1,\n"
                "    2\n"
                "  ],\n"
                "  \"rMessage\": [\n"
                "    {},\n"
                "    {\n"
                "      \"fString\": \"a\"\n"
                "    }\n"
                "  ]\n"
                "}");
  check_options("jobhub.test.WellKnown",
                "{'structField':{'a':[],'b':{}},'empty':{},'any':{}}",
                &indented,
                "{\n"
                "  \"any\": {},\n"
                "  \"empty\": {},\n"
                "  \"structField\": {\n"
                "    \"a\": [],\n"
                "    \"b\": {}\n"
                "  }\n"
                "}");
  check_options("jobhub.test.Scalars", "{}", &indented, "{}");
  rpc_json_options all = {
      .emit_defaults = true, .proto_names = true, .indent = 1};
  check_options(
      "jobhub.test.Presence", "{'number':1}", &all,
      "{\n \"number\": \"1\",\n \"plain\": 0,\n \"renamed\": \"\"\n}");
}

/* Output is appended to what out holds. */
static void test_appends(void **state) {
  (void)state;
  rpc_buffer out;
  rpc_buffer_init(&out);
  assert_int_equal(rpc_buffer_append(&out, "x", 1), 0);
  char err[256];
  const char *json = "{\"fInt32\":1}";
  assert_int_equal(rpc_json_to_wire(pool, "jobhub.test.Scalars", json,
                                    strlen(json), &out, err, sizeof(err)),
                   0);
  assert_int_equal(out.len, 3);
  assert_memory_equal(out.data, "x\x18\x01", 3);
  assert_int_equal(rpc_json_from_wire(pool, "jobhub.test.Scalars", out.data + 1,
                                      2, NULL, &out, err, sizeof(err)),
                   0);
  assert_int_equal(out.len, 3 + 12);
  assert_memory_equal(out.data + 3, json, 12);
  rpc_buffer_free(&out);
}

/* ---- a type learned at run time: proto2, no compiled code ---- */

static uint8_t runtime_set[2048];
static size_t runtime_set_size;

/* rt/thing.proto, proto2, as a foreign server's reflection would send it
 * (json_name left out, so it is computed):
 *   enum Kind { KIND_A = 1; KIND_B = 2; }
 *   message Thing {
 *     optional int32 count = 1;
 *     optional group Part = 2 { optional string label = 3; }
 *     optional Kind kind = 4;
 *     repeated int32 nums = 5 [packed = true];
 *     repeated int32 loose = 6;
 *     optional string snake_case_name = 7;
 *     required int64 big = 8;
 *   } */
static void build_runtime_set(void) {
  typedef Google__Protobuf__FieldDescriptorProto field;
  field fields[8];
  field *field_pointers[7];
  static const struct {
    const char *name;
    int number;
    int label;
    int type;
    const char *type_name;
  } shape[] = {
      {"count", 1, 1, 5, NULL},       {"part", 2, 1, 10, ".rt.Thing.Part"},
      {"kind", 4, 1, 14, ".rt.Kind"}, {"nums", 5, 3, 5, NULL},
      {"loose", 6, 3, 5, NULL},       {"snake_case_name", 7, 1, 9, NULL},
      {"big", 8, 2, 3, NULL},         {"label", 3, 1, 9, NULL},
  };
  for (size_t i = 0; i < 8; i++) {
    google__protobuf__field_descriptor_proto__init(&fields[i]);
    fields[i].name = (char *)shape[i].name;
    fields[i].has_number = 1;
    fields[i].number = shape[i].number;
    fields[i].has_label = 1;
    fields[i].label =
        (Google__Protobuf__FieldDescriptorProto__Label)shape[i].label;
    fields[i].has_type = 1;
    fields[i].type =
        (Google__Protobuf__FieldDescriptorProto__Type)shape[i].type;
    fields[i].type_name = (char *)shape[i].type_name;
    if (i < 7) {
      field_pointers[i] = &fields[i];
    }
  }
  Google__Protobuf__FieldOptions packed = GOOGLE__PROTOBUF__FIELD_OPTIONS__INIT;
  packed.has_packed = 1;
  packed.packed = 1;
  fields[3].options = &packed;
  field *label_pointer = &fields[7];
  Google__Protobuf__DescriptorProto part =
      GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__INIT;
  part.name = (char *)"Part";
  part.n_field = 1;
  part.field = &label_pointer;
  Google__Protobuf__DescriptorProto *nested = &part;
  Google__Protobuf__DescriptorProto thing =
      GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__INIT;
  thing.name = (char *)"Thing";
  thing.n_field = 7;
  thing.field = field_pointers;
  thing.n_nested_type = 1;
  thing.nested_type = &nested;
  Google__Protobuf__EnumValueDescriptorProto a =
      GOOGLE__PROTOBUF__ENUM_VALUE_DESCRIPTOR_PROTO__INIT;
  Google__Protobuf__EnumValueDescriptorProto b =
      GOOGLE__PROTOBUF__ENUM_VALUE_DESCRIPTOR_PROTO__INIT;
  a.name = (char *)"KIND_A";
  a.has_number = 1;
  a.number = 1;
  b.name = (char *)"KIND_B";
  b.has_number = 1;
  b.number = 2;
  Google__Protobuf__EnumValueDescriptorProto *values[] = {&a, &b};
  Google__Protobuf__EnumDescriptorProto kind =
      GOOGLE__PROTOBUF__ENUM_DESCRIPTOR_PROTO__INIT;
  kind.name = (char *)"Kind";
  kind.n_value = 2;
  kind.value = values;
  Google__Protobuf__DescriptorProto *messages[] = {&thing};
  Google__Protobuf__EnumDescriptorProto *enums[] = {&kind};
  Google__Protobuf__FileDescriptorProto file =
      GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
  file.name = (char *)"rt/thing.proto";
  file.package = (char *)"rt";
  file.n_message_type = 1;
  file.message_type = messages;
  file.n_enum_type = 1;
  file.enum_type = enums;
  Google__Protobuf__FileDescriptorProto *files[] = {&file};
  Google__Protobuf__FileDescriptorSet set =
      GOOGLE__PROTOBUF__FILE_DESCRIPTOR_SET__INIT;
  set.n_file = 1;
  set.file = files;
  runtime_set_size =
      google__protobuf__file_descriptor_set__get_packed_size(&set);
  assert_true(runtime_set_size <= sizeof(runtime_set));
  google__protobuf__file_descriptor_set__pack(&set, runtime_set);
}

static void test_runtime_proto2_type(void **state) {
  (void)state;
  build_runtime_set();
  rpc_descriptor_pool *runtime = rpc_descriptor_pool_new();
  assert_non_null(runtime);
  assert_int_equal(
      rpc_descriptor_pool_add_set(runtime, runtime_set, runtime_set_size), 0);
  const rpc_descriptor_file *file = NULL;
  assert_non_null(
      rpc_descriptor_pool_find_message(runtime, ".rt.Thing.Part", &file));
  assert_string_equal(file->name, "rt/thing.proto");
  assert_non_null(rpc_descriptor_pool_find_enum(runtime, "rt.Kind", NULL));
  assert_null(rpc_descriptor_pool_find_message(runtime, "rt.Kind", NULL));
  assert_null(rpc_descriptor_pool_find_enum(runtime, "rt.Thing", NULL));
  assert_null(
      rpc_descriptor_pool_find_message(runtime, "rt.Thing.count", NULL));

  const char *json = q("{'count':0,'part':{'label':'x'},'kind':'KIND_B',"
                       "'nums':[1,2],'loose':[3,4],'snakeCaseName':'s',"
                       "'big':'5'}");
  /* proto2: a default that is set is written; groups; packed only when
   * asked. */
  static const uint8_t expected[] = {
      0x08, 0x00, 0x13, 0x1a, 0x01, 'x',  0x14, 0x20, 0x02, 0x2a, 0x02,
      0x01, 0x02, 0x30, 0x03, 0x30, 0x04, 0x3a, 0x01, 's',  0x40, 0x05};
  rpc_buffer wire;
  rpc_buffer_init(&wire);
  char err[256];
  assert_int_equal(rpc_json_to_wire(runtime, "rt.Thing", json, strlen(json),
                                    &wire, err, sizeof(err)),
                   0);
  assert_int_equal(wire.len, sizeof(expected));
  assert_memory_equal(wire.data, expected, sizeof(expected));
  rpc_buffer text;
  rpc_buffer_init(&text);
  assert_int_equal(rpc_json_from_wire(runtime, "rt.Thing", wire.data, wire.len,
                                      NULL, &text, err, sizeof(err)),
                   0);
  assert_int_equal(text.len, strlen(json));
  assert_memory_equal(text.data, json, text.len);
  rpc_buffer_reset(&text);
  /* The proto name is accepted too; a closed enum refuses a stranger but
   * one that came on the wire is shown as its number. */
  const char *snake = "{\"snake_case_name\":\"t\"}";
  rpc_buffer_reset(&wire);
  assert_int_equal(rpc_json_to_wire(runtime, "rt.Thing", snake, strlen(snake),
                                    &wire, err, sizeof(err)),
                   0);
  const char *stranger = "{\"kind\":3}";
  assert_int_equal(rpc_json_to_wire(runtime, "rt.Thing", stranger,
                                    strlen(stranger), &wire, err, sizeof(err)),
                   -1);
  assert_string_equal(err, "kind: 3 is not a value of enum rt.Kind");
  static const uint8_t unknown_kind[] = {0x20, 0x03, 0x13, 0x14};
  assert_int_equal(rpc_json_from_wire(runtime, "rt.Thing", unknown_kind,
                                      sizeof(unknown_kind), NULL, &text, err,
                                      sizeof(err)),
                   0);
  assert_int_equal(text.len, strlen("{\"part\":{},\"kind\":3}"));
  assert_memory_equal(text.data, "{\"part\":{},\"kind\":3}", text.len);
  /* A type the pool lacks, referenced by a field. */
  rpc_buffer_reset(&text);
  assert_int_equal(rpc_json_from_wire(runtime, "rt.Nope", unknown_kind,
                                      sizeof(unknown_kind), NULL, &text, err,
                                      sizeof(err)),
                   -1);
  assert_string_equal(err,
                      "message type rt.Nope is not in the descriptor pool");
  rpc_buffer_free(&text);
  rpc_buffer_free(&wire);
  rpc_descriptor_pool_free(runtime);
}

/* rt3/opt.proto, proto3 with `optional`, which protoc-c cannot compile:
 *   enum Level { LEVEL_ZERO = 0; LEVEL_ONE = 1; }
 *   message Opt {
 *     optional int32 a = 1;
 *     int32 b = 2;
 *     repeated int32 packed_default = 3;
 *     repeated int32 unpacked = 4 [packed = false];
 *     optional Level level = 5;
 *   } */
static void test_runtime_proto3_optional(void **state) {
  (void)state;
  static const struct {
    const char *name;
    int number;
    int label;
    int type;
    const char *type_name;
    int oneof; /* -1: none */
  } shape[] = {
      {"a", 1, 1, 5, NULL, 0},
      {"b", 2, 1, 5, NULL, -1},
      {"packed_default", 3, 3, 5, NULL, -1},
      {"unpacked", 4, 3, 5, NULL, -1},
      {"level", 5, 1, 14, ".rt3.Level", 1},
  };
  Google__Protobuf__FieldDescriptorProto fields[5];
  Google__Protobuf__FieldDescriptorProto *field_pointers[5];
  for (size_t i = 0; i < 5; i++) {
    google__protobuf__field_descriptor_proto__init(&fields[i]);
    fields[i].name = (char *)shape[i].name;
    fields[i].has_number = 1;
    fields[i].number = shape[i].number;
    fields[i].has_label = 1;
    fields[i].label =
        (Google__Protobuf__FieldDescriptorProto__Label)shape[i].label;
    fields[i].has_type = 1;
    fields[i].type =
        (Google__Protobuf__FieldDescriptorProto__Type)shape[i].type;
    fields[i].type_name = (char *)shape[i].type_name;
    if (shape[i].oneof >= 0) {
      fields[i].has_oneof_index = 1;
      fields[i].oneof_index = shape[i].oneof;
      fields[i].has_proto3_optional = 1;
      fields[i].proto3_optional = 1;
    }
    field_pointers[i] = &fields[i];
  }
  Google__Protobuf__FieldOptions unpacked =
      GOOGLE__PROTOBUF__FIELD_OPTIONS__INIT;
  unpacked.has_packed = 1;
  unpacked.packed = 0;
  fields[3].options = &unpacked;
  Google__Protobuf__OneofDescriptorProto oneof_a =
      GOOGLE__PROTOBUF__ONEOF_DESCRIPTOR_PROTO__INIT;
  Google__Protobuf__OneofDescriptorProto oneof_level =
      GOOGLE__PROTOBUF__ONEOF_DESCRIPTOR_PROTO__INIT;
  oneof_a.name = (char *)"_a";
  oneof_level.name = (char *)"_level";
  Google__Protobuf__OneofDescriptorProto *oneofs[] = {&oneof_a, &oneof_level};
  Google__Protobuf__DescriptorProto opt =
      GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__INIT;
  opt.name = (char *)"Opt";
  opt.n_field = 5;
  opt.field = field_pointers;
  opt.n_oneof_decl = 2;
  opt.oneof_decl = oneofs;
  Google__Protobuf__EnumValueDescriptorProto zero =
      GOOGLE__PROTOBUF__ENUM_VALUE_DESCRIPTOR_PROTO__INIT;
  Google__Protobuf__EnumValueDescriptorProto one =
      GOOGLE__PROTOBUF__ENUM_VALUE_DESCRIPTOR_PROTO__INIT;
  zero.name = (char *)"LEVEL_ZERO";
  zero.has_number = 1;
  one.name = (char *)"LEVEL_ONE";
  one.has_number = 1;
  one.number = 1;
  Google__Protobuf__EnumValueDescriptorProto *values[] = {&zero, &one};
  Google__Protobuf__EnumDescriptorProto level =
      GOOGLE__PROTOBUF__ENUM_DESCRIPTOR_PROTO__INIT;
  level.name = (char *)"Level";
  level.n_value = 2;
  level.value = values;
  Google__Protobuf__DescriptorProto *messages[] = {&opt};
  Google__Protobuf__EnumDescriptorProto *enums[] = {&level};
  Google__Protobuf__FileDescriptorProto file =
      GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
  file.name = (char *)"rt3/opt.proto";
  file.package = (char *)"rt3";
  file.syntax = (char *)"proto3";
  file.n_message_type = 1;
  file.message_type = messages;
  file.n_enum_type = 1;
  file.enum_type = enums;
  Google__Protobuf__FileDescriptorProto *files[] = {&file};
  Google__Protobuf__FileDescriptorSet set =
      GOOGLE__PROTOBUF__FILE_DESCRIPTOR_SET__INIT;
  set.n_file = 1;
  set.file = files;
  static uint8_t bytes[512];
  size_t size = google__protobuf__file_descriptor_set__get_packed_size(&set);
  assert_true(size <= sizeof(bytes));
  google__protobuf__file_descriptor_set__pack(&set, bytes);
  rpc_descriptor_pool *runtime = rpc_descriptor_pool_new();
  assert_non_null(runtime);
  assert_int_equal(rpc_descriptor_pool_add_set(runtime, bytes, size), 0);

  static const struct {
    const char *json;
    const char *hex;
    const char *back;
    bool emit_defaults;
  } cases[] = {
      /* optional keeps a set default; implicit presence and proto3's
       * packing by default. */
      {"{'a':0,'b':0,'packedDefault':[1,2],'unpacked':[3],'level':'LEVEL_ZERO'"
       "}",
       "08 00 1a 02 01 02 20 03 28 00",
       "{'a':0,'packedDefault':[1,2],'unpacked':[3],'level':'LEVEL_ZERO'}",
       false},
      /* An open enum takes any number. */
      {"{'level':7}", "28 07", "{'level':7}", false},
      {"{}", "", "{'b':0,'packedDefault':[],'unpacked':[]}", true},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    uint8_t expected[64];
    size_t expected_size = from_hex(cases[i].hex, expected, sizeof(expected));
    rpc_buffer wire, text;
    rpc_buffer_init(&wire);
    rpc_buffer_init(&text);
    char err[256];
    const char *json = q(cases[i].json);
    assert_int_equal(rpc_json_to_wire(runtime, "rt3.Opt", json, strlen(json),
                                      &wire, err, sizeof(err)),
                     0);
    assert_int_equal(wire.len, expected_size);
    if (expected_size > 0) {
      assert_memory_equal(wire.data, expected, expected_size);
    }
    rpc_json_options options = {.emit_defaults = cases[i].emit_defaults};
    assert_int_equal(rpc_json_from_wire(runtime, "rt3.Opt", wire.data, wire.len,
                                        &options, &text, err, sizeof(err)),
                     0);
    const char *back = q(cases[i].back);
    assert_int_equal(text.len, strlen(back));
    assert_memory_equal(text.data, back, text.len);
    rpc_buffer_free(&wire);
    rpc_buffer_free(&text);
  }
  rpc_descriptor_pool_free(runtime);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_submit_request),
      cmocka_unit_test(test_job),
      cmocka_unit_test(test_scalars),
      cmocka_unit_test(test_repeated),
      cmocka_unit_test(test_maps),
      cmocka_unit_test(test_presence_and_oneofs),
      cmocka_unit_test(test_well_known_types),
      cmocka_unit_test(test_json_errors),
      cmocka_unit_test(test_depth_limit),
      cmocka_unit_test(test_depth_limit_far_past),
      cmocka_unit_test(test_wire_side),
      cmocka_unit_test(test_options),
      cmocka_unit_test(test_appends),
      cmocka_unit_test(test_runtime_proto2_type),
      cmocka_unit_test(test_runtime_proto3_optional),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
