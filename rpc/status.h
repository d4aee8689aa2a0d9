/* status.h: gRPC status codes, their names, grpc-message percent-encoding
 * and the HTTP status mapping. */
#ifndef JOBHUB_RPC_STATUS_H
#define JOBHUB_RPC_STATUS_H

#include <stdbool.h>
#include <stddef.h>

#include "rpc/buffer.h"

/* The codes of grpc/doc/statuscodes.md, with their wire values. */
typedef enum rpc_status_code {
  RPC_STATUS_OK = 0,
  RPC_STATUS_CANCELLED = 1,
  RPC_STATUS_UNKNOWN = 2,
  RPC_STATUS_INVALID_ARGUMENT = 3,
  RPC_STATUS_DEADLINE_EXCEEDED = 4,
  RPC_STATUS_NOT_FOUND = 5,
  RPC_STATUS_ALREADY_EXISTS = 6,
  RPC_STATUS_PERMISSION_DENIED = 7,
  RPC_STATUS_RESOURCE_EXHAUSTED = 8,
  RPC_STATUS_FAILED_PRECONDITION = 9,
  RPC_STATUS_ABORTED = 10,
  RPC_STATUS_OUT_OF_RANGE = 11,
  RPC_STATUS_UNIMPLEMENTED = 12,
  RPC_STATUS_INTERNAL = 13,
  RPC_STATUS_UNAVAILABLE = 14,
  RPC_STATUS_DATA_LOSS = 15,
  RPC_STATUS_UNAUTHENTICATED = 16,
} rpc_status_code;

#define RPC_STATUS_CODE_MAX RPC_STATUS_UNAUTHENTICATED

/* A status with an optional message. The status owns message (malloc'd,
 * NUL-terminated, may be NULL). */
typedef struct rpc_status {
  rpc_status_code code;
  char *message;
} rpc_status;

/* rpc_status_code_name returns "NOT_FOUND" etc., or "UNKNOWN" for a value
 * outside the enum. */
const char *rpc_status_code_name(int code);

/* rpc_status_code_parse reads a decimal grpc-status value (no sign, no
 * spaces). Returns 0 and stores the code (any value 0..2^31 is kept; the
 * caller maps values above RPC_STATUS_CODE_MAX to UNKNOWN), or -1. */
int rpc_status_code_parse(const char *text, size_t len, int *code);

/* rpc_status_to_http returns the HTTP status of Google's mapping
 * (google/rpc/code.proto): NOT_FOUND 404, UNAUTHENTICATED 401, ... */
int rpc_status_to_http(rpc_status_code code);

/* rpc_status_from_http maps the HTTP status of a response that carried no
 * grpc-status, as PROTOCOL-HTTP2 prescribes (400 INTERNAL, 401
 * UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 429/502/503/504
 * UNAVAILABLE, other UNKNOWN). */
rpc_status_code rpc_status_from_http(int http_status);

/* rpc_status_set replaces status with code and a printf-formatted message
 * (fmt may be NULL). Returns 0, or -1 if the message could not be
 * allocated (the code is set all the same, the message is NULL). */
int rpc_status_set(rpc_status *status, rpc_status_code code, const char *fmt,
                   ...) __attribute__((format(printf, 3, 4)));

/* rpc_status_clear frees the message and resets to OK. */
void rpc_status_clear(rpc_status *status);

/* rpc_percent_encode appends the grpc-message encoding of in: bytes outside
 * printable ASCII 0x20-0x7E, and '%', become %XX (upper-case hex), UTF-8
 * byte by byte. Returns 0 or -1 (no memory). */
int rpc_percent_encode(const char *in, size_t len, rpc_buffer *out);

/* rpc_percent_decode appends the decoding of in. As PROTOCOL-HTTP2 asks,
 * a '%' not followed by two hex digits is kept as it is, never an error.
 * Appends a NUL that is not counted in out->len. Returns 0 or -1 (no
 * memory). */
int rpc_percent_decode(const char *in, size_t len, rpc_buffer *out);

/* rpc_hex_value is the value of the hex digit c (either case), or -1. */
int rpc_hex_value(char c);

#endif
