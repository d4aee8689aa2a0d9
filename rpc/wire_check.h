/* wire_check.h: checks the protobuf wire bytes of a message against its
 * protobuf-c descriptor before protobuf_c_message_unpack sees them, for
 * what unpack does not refuse by itself: nesting deep enough to overflow
 * its recursion, and strings that other protobuf implementations cannot
 * read back (not UTF-8) or that C would truncate (an embedded NUL).
 * No allocation; one pass over the bytes; recursion bounded by the
 * depth limit. */
#ifndef JOBHUB_RPC_WIRE_CHECK_H
#define JOBHUB_RPC_WIRE_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* The deepest nesting any message may have, as protobuf's own parsers
 * allow by default (C++ CodedInputStream, upb under python and grpcio).
 * Depth counts messages inside messages: the message checked is at depth
 * 0, a message held in one of its fields is at depth 1, and so on. A map
 * entry is a message (map<k, v> is a repeated entry message with fields
 * key and value), and so are google.protobuf.Struct, Value and ListValue:
 * each JSON level of a Struct holds 3 (entry, Value, Struct or ListValue).
 * A message whose deepest message is at depth RPC_MAX_MESSAGE_DEPTH passes;
 * one deeper is refused. */
#define RPC_MAX_MESSAGE_DEPTH 100

/* Requests a server takes are held to a few levels less, because answers
 * carry what requests held deeper down, and every protobuf client must
 * still read them: a Job's config from SubmitRequest (config at depth 1)
 * comes back in ListJobsResponse (depth 2) and, to workers, in
 * LeaseResponse and HubMessage (depth 3). */
#define RPC_MAX_REQUEST_DEPTH (RPC_MAX_MESSAGE_DEPTH - 4)

enum {
  RPC_WIRE_CHECK_ERR_MALFORMED = -1, /* not protobuf wire format */
  RPC_WIRE_CHECK_ERR_INVALID = -2,   /* too deep, or a bad string */
};

/* rpc_wire_check checks data[0..len), the serialized message of type
 * descriptor: well-formed wire format (no truncated varint or field,
 * lengths within their message, wire types 0, 1, 2 and 5 only, field
 * numbers 1 to 2^29-1), no message nested deeper than max_depth (at most
 * RPC_MAX_MESSAGE_DEPTH; larger counts as that), and every field of type
 * string, at any depth, valid UTF-8 (no overlong forms, surrogates or code
 * points past U+10FFFF) without a NUL byte. Fields the descriptor does not
 * know are skipped by their wire type, and so are known fields sent with
 * another wire type than theirs (unpack refuses those).
 * Returns 0, RPC_WIRE_CHECK_ERR_MALFORMED or RPC_WIRE_CHECK_ERR_INVALID
 * with a message in err (always terminated when err_size > 0) naming the
 * field path, e.g. "subject: invalid UTF-8" or
 * "config.module_params.fields.value...: nested deeper than 100 levels". */
int rpc_wire_check(const ProtobufCMessageDescriptor *descriptor,
                   const uint8_t *data, size_t len, unsigned max_depth,
                   char *err, size_t err_size);

#endif
