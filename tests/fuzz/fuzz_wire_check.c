/* fuzz_wire_check.c: rpc_wire_check on arbitrary bytes. The first byte
 * picks the message type (modulo the table below), the second the depth
 * limit (1 + byte % RPC_MAX_MESSAGE_DEPTH); the rest is the message. The
 * error text is always terminated and says something; whatever passes is
 * safe to unpack (ASan watches the stack), and what protobuf-c unpacks
 * from it packs back into bytes that pass with the same limit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/struct.pb-c.h"
#include "jobhub/v1/jobs.pb-c.h"
#include "jobhub/v1/workers.pb-c.h"
#include "json_test.pb-c.h"
#include "rpc/wire_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCMessageDescriptor *const types[] = {
    &jobhub__v1__submit_request__descriptor,
    &jobhub__v1__job__descriptor,
    &jobhub__v1__list_jobs_response__descriptor,
    &jobhub__v1__worker_message__descriptor,
    &jobhub__v1__hub_message__descriptor,
    &google__protobuf__struct__descriptor,
    &google__protobuf__value__descriptor,
    &jobhub__test__scalars__descriptor,
    &jobhub__test__repeated__descriptor,
    &jobhub__test__maps__descriptor,
    &jobhub__test__presence__descriptor,
    &jobhub__test__well_known__descriptor,
    &jobhub__test__recursive__descriptor,
};
#define TYPE_COUNT (sizeof(types) / sizeof(types[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) {
    return 0;
  }
  const ProtobufCMessageDescriptor *type = types[data[0] % TYPE_COUNT];
  unsigned max_depth = 1u + data[1] % RPC_MAX_MESSAGE_DEPTH;
  data += 2;
  size -= 2;
  char err[256];
  memset(err, 'x', sizeof(err));
  int rv = rpc_wire_check(type, data, size, max_depth, err, sizeof(err));
  if (memchr(err, '\0', sizeof(err)) == NULL ||
      (rv != 0 && (err[0] == '\0' || (rv != RPC_WIRE_CHECK_ERR_MALFORMED &&
                                      rv != RPC_WIRE_CHECK_ERR_INVALID)))) {
    fprintf(stderr, "fuzz_wire_check: %s: rv %d, err not right\n", type->name,
            rv);
    abort();
  }
  if (rv != 0) {
    return 0;
  }
  ProtobufCMessage *message = protobuf_c_message_unpack(type, NULL, size, data);
  if (message == NULL) {
    return 0; /* e.g. a known field with another wire type */
  }
  size_t packed_size = protobuf_c_message_get_packed_size(message);
  uint8_t *packed = malloc(packed_size > 0 ? packed_size : 1);
  if (packed == NULL) {
    protobuf_c_message_free_unpacked(message, NULL);
    return 0;
  }
  protobuf_c_message_pack(message, packed);
  rv = rpc_wire_check(type, packed, packed_size, max_depth, err, sizeof(err));
  if (rv != 0) {
    fprintf(stderr, "fuzz_wire_check: %s: passed, repacked fails: %s\n",
            type->name, err);
    abort();
  }
  free(packed);
  protobuf_c_message_free_unpacked(message, NULL);
  return 0;
}
