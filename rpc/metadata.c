/* metadata.c: custom metadata of a call. */
#include "rpc/metadata.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rpc/base64.h"

void rpc_metadata_init(rpc_metadata *md) {
  md->entries = NULL;
  md->count = 0;
  md->cap = 0;
}

void rpc_metadata_free(rpc_metadata *md) {
  for (size_t i = 0; i < md->count; i++) {
    free(md->entries[i].key); /* the value shares the key's allocation */
  }
  free(md->entries);
  rpc_metadata_init(md);
}

int rpc_metadata_add(rpc_metadata *md, const char *key, size_t key_len,
                     const uint8_t *value, size_t value_len) {
  if (md->count == md->cap) {
    size_t cap = md->cap > 0 ? md->cap * 2 : 4;
    rpc_metadata_entry *grown = realloc(md->entries, cap * sizeof(*grown));
    if (grown == NULL) {
      return -1;
    }
    md->entries = grown;
    md->cap = cap;
  }
  /* One allocation: key, NUL, value, NUL. */
  if (key_len > SIZE_MAX / 2 || value_len > SIZE_MAX / 2) {
    return -1;
  }
  char *block = malloc(key_len + value_len + 2);
  if (block == NULL) {
    return -1;
  }
  for (size_t i = 0; i < key_len; i++) {
    char c = key[i];
    block[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
  }
  block[key_len] = '\0';
  uint8_t *stored = (uint8_t *)block + key_len + 1;
  if (value_len > 0) {
    memcpy(stored, value, value_len);
  }
  stored[value_len] = '\0';
  md->entries[md->count++] =
      (rpc_metadata_entry){block, key_len, stored, value_len};
  return 0;
}

int rpc_metadata_add_wire(rpc_metadata *md, const char *key, size_t key_len,
                          const char *value, size_t value_len) {
  if (!rpc_metadata_key_is_valid(key, key_len)) {
    return -1;
  }
  if (!rpc_metadata_key_is_binary(key, key_len)) {
    return rpc_metadata_add(md, key, key_len, (const uint8_t *)value,
                            value_len);
  }
  rpc_buffer decoded;
  rpc_buffer_init(&decoded);
  int rv = rpc_base64_decode(value, value_len, &decoded);
  if (rv == 0) {
    rv = rpc_metadata_add(md, key, key_len, decoded.data, decoded.len);
  }
  rpc_buffer_free(&decoded);
  return rv;
}

const rpc_metadata_entry *rpc_metadata_get(const rpc_metadata *md,
                                           const char *key) {
  for (size_t i = 0; i < md->count; i++) {
    if (strcmp(md->entries[i].key, key) == 0) {
      return &md->entries[i];
    }
  }
  return NULL;
}

int rpc_metadata_wire_value(const rpc_metadata_entry *entry, rpc_buffer *out) {
  if (rpc_metadata_key_is_binary(entry->key, entry->key_len)) {
    return rpc_base64_encode(entry->value, entry->value_len, out);
  }
  return rpc_buffer_append(out, entry->value, entry->value_len);
}

bool rpc_metadata_key_is_binary(const char *key, size_t key_len) {
  return key_len > 4 && strncasecmp(key + key_len - 4, "-bin", 4) == 0;
}

bool rpc_metadata_key_is_valid(const char *key, size_t key_len) {
  if (key_len == 0) {
    return false;
  }
  for (size_t i = 0; i < key_len; i++) {
    char c = key[i];
    if (c >= 'A' && c <= 'Z') {
      c = (char)(c - 'A' + 'a');
    }
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '_' ||
          c == '-' || c == '.')) {
      return false;
    }
  }
  return true;
}

static bool key_equals(const char *key, size_t key_len, const char *name) {
  size_t name_len = strlen(name);
  return key_len == name_len && strncasecmp(key, name, key_len) == 0;
}

bool rpc_metadata_key_is_reserved(const char *key, size_t key_len) {
  static const char *const transport[] = {
      "content-type",      "te",
      "user-agent",        "host",
      "connection",        "keep-alive",
      "transfer-encoding", "upgrade",
      "proxy-connection",  "content-length",
  };
  if (key_len > 0 && key[0] == ':') {
    return true;
  }
  if (key_len >= 5 && strncasecmp(key, "grpc-", 5) == 0) {
    return !key_equals(key, key_len, "grpc-trace-bin") &&
           !key_equals(key, key_len, "grpc-tags-bin");
  }
  for (size_t i = 0; i < sizeof(transport) / sizeof(transport[0]); i++) {
    if (key_equals(key, key_len, transport[i])) {
      return true;
    }
  }
  return false;
}

bool rpc_metadata_value_is_valid(const uint8_t *value, size_t len) {
  for (size_t i = 0; i < len; i++) {
    if (value[i] < 0x20 || value[i] > 0x7E) {
      return false;
    }
  }
  return true;
}
