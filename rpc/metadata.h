/* metadata.h: custom metadata of a call (PROTOCOL-HTTP2 "Custom-Metadata"):
 * ordered key/value pairs; keys ending in "-bin" carry binary values that
 * travel as base64. */
#ifndef JOBHUB_RPC_METADATA_H
#define JOBHUB_RPC_METADATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/buffer.h"

/* key is lower-case and NUL-terminated; value holds the decoded bytes (for
 * -bin keys the binary value) followed by a NUL not counted in value_len. */
typedef struct rpc_metadata_entry {
  char *key;
  size_t key_len;
  uint8_t *value;
  size_t value_len;
} rpc_metadata_entry;

/* The metadata owns its entries and their keys and values. */
typedef struct rpc_metadata {
  rpc_metadata_entry *entries;
  size_t count;
  size_t cap;
} rpc_metadata;

void rpc_metadata_init(rpc_metadata *md);
void rpc_metadata_free(rpc_metadata *md);

/* rpc_metadata_add appends a copy of key (lower-cased) and of the decoded
 * value. Returns 0, or -1 (no memory; md unchanged). */
int rpc_metadata_add(rpc_metadata *md, const char *key, size_t key_len,
                     const uint8_t *value, size_t value_len);

/* rpc_metadata_add_wire appends a header as received: for -bin keys the
 * value is base64 (padded or not) and is decoded. Returns 0, or -1 for an
 * invalid key, invalid base64 or no memory (md unchanged). */
int rpc_metadata_add_wire(rpc_metadata *md, const char *key, size_t key_len,
                          const char *value, size_t value_len);

/* rpc_metadata_get returns the first entry with key (NUL-terminated,
 * lower-case), or NULL. */
const rpc_metadata_entry *rpc_metadata_get(const rpc_metadata *md,
                                           const char *key);

/* rpc_metadata_wire_value appends the value as it goes on the wire: padded
 * base64 for -bin keys, the bytes as they are otherwise. Returns 0 or -1. */
int rpc_metadata_wire_value(const rpc_metadata_entry *entry, rpc_buffer *out);

/* rpc_metadata_key_is_binary tells whether key ends in "-bin", in any
 * case. */
bool rpc_metadata_key_is_binary(const char *key, size_t key_len);

/* rpc_metadata_key_is_valid checks the PROTOCOL-HTTP2 key grammar:
 * 1*( %x30-39 / %x61-7A / "_" / "-" / ".") after lower-casing. */
bool rpc_metadata_key_is_valid(const char *key, size_t key_len);

/* rpc_metadata_key_is_reserved tells whether a header is the transport's,
 * not custom metadata: pseudo-headers, grpc-* (except grpc-trace-bin and
 * grpc-tags-bin, which applications may see), content-type, te,
 * user-agent, host, connection-specific headers. */
bool rpc_metadata_key_is_reserved(const char *key, size_t key_len);

/* rpc_metadata_value_is_valid checks a non-binary value: printable ASCII
 * 0x20-0x7E. */
bool rpc_metadata_value_is_valid(const uint8_t *value, size_t len);

#endif
