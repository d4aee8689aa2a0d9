/* fuzz_json.c: ProtoJSON on arbitrary input, for jobhub types and those
 * of tests/unit/json_test.proto (every scalar, map, oneof and well-known
 * type). The first byte picks the type and the direction: the rest is JSON
 * for rpc_json_to_wire, or (first byte >= 128) wire bytes for
 * rpc_json_from_wire. Whatever JSON is accepted must print; whatever
 * prints must parse back; and printing is a fixpoint (wire -> JSON ->
 * wire -> JSON gives the same JSON), the indented, proto-named,
 * defaults-included spelling giving the same bytes. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobhub_descriptor_set.h"
#include "json_test_descriptor_set.h"
#include "rpc/buffer.h"
#include "rpc/descriptor_pool.h"
#include "rpc/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const types[] = {
    "jobhub.v1.SubmitRequest", "jobhub.v1.Job",         "jobhub.v1.EngineState",
    "jobhub.v1.Arguments",     "jobhub.test.Scalars",   "jobhub.test.Repeated",
    "jobhub.test.Maps",        "jobhub.test.Presence",  "jobhub.test.WellKnown",
    "jobhub.test.Recursive",   "google.protobuf.Value",
};
#define TYPE_COUNT (sizeof(types) / sizeof(types[0]))

static rpc_descriptor_pool *pool;

static void die(const char *what, const char *type, const char *err,
                const rpc_buffer *text) {
  fprintf(stderr, "fuzz_json: %s (%s): %s\n%.*s\n", what, type, err,
          (int)text->len, (const char *)text->data);
  abort();
}

static bool same(const rpc_buffer *a, const rpc_buffer *b) {
  return a->len == b->len &&
         (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* The checks on wire bytes that printed as first. */
static void check_fixpoint(const char *type, const rpc_buffer *first) {
  char err[512];
  rpc_buffer wire, second, pretty, wire_again;
  rpc_buffer_init(&wire);
  rpc_buffer_init(&second);
  rpc_buffer_init(&pretty);
  rpc_buffer_init(&wire_again);
  if (rpc_json_to_wire(pool, type, (const char *)first->data, first->len, &wire,
                       err, sizeof(err)) != 0) {
    /* jansson cannot hold a NUL in an object key; a map key on the wire
     * can. */
    if (strstr(err, "NUL byte in object key") == NULL) {
      die("printed JSON does not parse", type, err, first);
    }
    goto out;
  }
  if (rpc_json_from_wire(pool, type, wire.data, wire.len, NULL, &second, err,
                         sizeof(err)) != 0) {
    die("re-encoded bytes do not print", type, err, first);
  }
  if (!same(first, &second)) {
    die("JSON -> wire -> JSON is not a fixpoint", type, "", first);
  }
  rpc_json_options fancy = {
      .emit_defaults = true, .proto_names = true, .indent = 2};
  if (rpc_json_from_wire(pool, type, wire.data, wire.len, &fancy, &pretty, err,
                         sizeof(err)) != 0) {
    die("bytes print plainly but not with options", type, err, first);
  }
  if (rpc_json_to_wire(pool, type, (const char *)pretty.data, pretty.len,
                       &wire_again, err, sizeof(err)) != 0) {
    die("the optioned spelling does not parse", type, err, &pretty);
  }
  if (!same(&wire, &wire_again)) {
    die("the optioned spelling gives other bytes", type, "", &pretty);
  }
out:
  rpc_buffer_free(&wire);
  rpc_buffer_free(&second);
  rpc_buffer_free(&pretty);
  rpc_buffer_free(&wire_again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (pool == NULL) {
    pool = rpc_descriptor_pool_new();
    if (pool == NULL ||
        rpc_descriptor_pool_add_set(pool, jobhub_descriptor_set,
                                    jobhub_descriptor_set_size) != 0 ||
        rpc_descriptor_pool_add_set(pool, json_test_descriptor_set,
                                    json_test_descriptor_set_size) != 0) {
      abort();
    }
  }
  if (size < 1) {
    return 0;
  }
  const char *type = types[data[0] % TYPE_COUNT];
  bool wire_input = data[0] >= 128;
  data++;
  size--;
  char err[512];
  rpc_buffer wire, first;
  rpc_buffer_init(&wire);
  rpc_buffer_init(&first);
  if (wire_input) {
    if (rpc_buffer_append(&wire, data, size) != 0) {
      abort();
    }
  } else if (rpc_json_to_wire(pool, type, (const char *)data, size, &wire, err,
                              sizeof(err)) != 0) {
    goto out;
  }
  if (rpc_json_from_wire(pool, type, wire.data, wire.len, NULL, &first, err,
                         sizeof(err)) != 0) {
    if (!wire_input) {
      rpc_buffer input = {(uint8_t *)data, size, size};
      die("accepted JSON gives bytes that do not print", type, err, &input);
    }
    goto out;
  }
  check_fixpoint(type, &first);
out:
  rpc_buffer_free(&wire);
  rpc_buffer_free(&first);
  return 0;
}
