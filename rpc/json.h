/* json.h: the protobuf JSON mapping (ProtoJSON), between a message's wire
 * bytes and its JSON text, driven only by the FileDescriptorProtos of an
 * rpc_descriptor_pool, so it serves message types compiled in and types
 * learned at run time (a foreign server's reflection) alike.
 *
 * Covered: lowerCamelCase or declared json_name keys (both those and the
 * proto field names are accepted on input), 64-bit integers as decimal
 * strings, enums by name, bytes as base64, "NaN"/"Infinity"/"-Infinity",
 * repeated fields (packed or not on the wire), maps, oneofs, explicit
 * presence (proto2, proto3 `optional`), proto2 groups, and the well-known
 * types with their own JSON forms: Any, Struct, Value, ListValue,
 * NullValue, Timestamp, Duration, FieldMask, Empty and the wrappers.
 * Unknown wire fields and extensions are skipped on output; unknown JSON
 * keys are an error. */
#ifndef JOBHUB_RPC_JSON_H
#define JOBHUB_RPC_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/buffer.h"
#include "rpc/descriptor_pool.h"

/* Nesting (messages, groups, Struct/Value levels) deeper than this is an
 * error both ways, as protobuf's own parsers limit recursion. */
#define RPC_JSON_MAX_DEPTH 100

/* A larger rpc_json_options.indent counts as this. */
#define RPC_JSON_MAX_INDENT 16

/* How rpc_json_from_wire writes. All false/0 (or a NULL pointer) is the
 * canonical compact form. */
typedef struct rpc_json_options {
  /* Also write fields that have no presence and hold their default: 0, "",
   * false, the enum's zero value, [] and {}. Message fields, oneof members
   * and fields with explicit presence are still written only when set. */
  bool emit_defaults;
  /* Keys are the .proto field names instead of the JSON names. */
  bool proto_names;
  /* 0: one line, no spaces; n > 0: a newline and n spaces per level (at
   * most RPC_JSON_MAX_INDENT). */
  int indent;
} rpc_json_options;

/* rpc_json_from_wire appends to out the JSON text of the message of type
 * (fully qualified, a leading dot allowed) serialized in data[0..size).
 * Maps are written with their keys sorted, a repeated key keeping its last
 * value, as parsing the wire bytes would. Returns 0, or -1 with a message
 * in err (truncated to err_size, always terminated when err_size > 0) that
 * says what and where (a JSON path such as "config.moduleParams"): type or
 * a type it uses is not in the pool (the Any type included), the wire bytes
 * are malformed, a string is not UTF-8, a value has no JSON form (Timestamp
 * or Duration out of range, a NaN in a Value, a FieldMask path that does
 * not map to lowerCamelCase), nesting exceeds RPC_JSON_MAX_DEPTH, or no
 * memory. On error out is left as it was. The caller owns out. */
int rpc_json_from_wire(const rpc_descriptor_pool *pool, const char *type,
                       const uint8_t *data, size_t size,
                       const rpc_json_options *options, rpc_buffer *out,
                       char *err, size_t err_size);

/* rpc_json_to_wire appends to out the wire serialization of the message of
 * type described by the JSON text json[0..len), fields in number order.
 * JSON null means the default (for google.protobuf.Value it is a
 * NullValue). Returns 0, or -1 with a message in err as above: the text is
 * not JSON (with line and column) or has a duplicate key, an unknown field
 * (named), a field given under both its names, two members of one oneof, a
 * value of the wrong JSON type, a number out of range or not an integer
 * where one is needed, an unknown enum name, bad base64, a malformed
 * Timestamp, Duration or FieldMask, an Any without "@type" or of a type not
 * in the pool, nesting beyond RPC_JSON_MAX_DEPTH, or no memory. On error
 * out is left as it was. The caller owns out. */
int rpc_json_to_wire(const rpc_descriptor_pool *pool, const char *type,
                     const char *json, size_t len, rpc_buffer *out, char *err,
                     size_t err_size);

#endif
