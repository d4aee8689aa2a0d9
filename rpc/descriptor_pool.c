/* descriptor_pool.c: embedded FileDescriptorSets, indexed by file name and
 * by fully qualified symbol. Files keep their embedded bytes: each is
 * sliced out of the set's wire format, never re-encoded. */
#include "rpc/descriptor_pool.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILE_FIELD_TAG 0x0A /* FileDescriptorSet.file: field 1, bytes */

/* What a symbol names, for the typed lookups. */
typedef enum symbol_kind {
  SYMBOL_OTHER,   /* service, method, field, enum value, extension */
  SYMBOL_MESSAGE, /* descriptor: a DescriptorProto */
  SYMBOL_ENUM,    /* descriptor: an EnumDescriptorProto */
} symbol_kind;

typedef struct symbol_slot {
  char *name; /* owned; NULL: empty */
  size_t file;
  symbol_kind kind;
  const void *descriptor; /* in the file's decoded proto; NULL: other */
} symbol_slot;

struct rpc_descriptor_pool {
  rpc_descriptor_file *files;
  size_t file_count;
  size_t file_cap;
  symbol_slot *symbols;
  size_t symbol_count;
  size_t symbol_cap; /* a power of two */
};

rpc_descriptor_pool *rpc_descriptor_pool_new(void) {
  return calloc(1, sizeof(rpc_descriptor_pool));
}

void rpc_descriptor_pool_free(rpc_descriptor_pool *pool) {
  if (pool == NULL) {
    return;
  }
  for (size_t i = 0; i < pool->file_count; i++) {
    google__protobuf__file_descriptor_proto__free_unpacked(pool->files[i].proto,
                                                           NULL);
  }
  for (size_t i = 0; i < pool->symbol_cap; i++) {
    free(pool->symbols[i].name);
  }
  free(pool->files);
  free(pool->symbols);
  free(pool);
}

static size_t hash_name(const char *name) {
  size_t hash = 14695981039346656037u; /* FNV-1a */
  for (; *name; name++) {
    hash = (hash ^ (uint8_t)*name) * 1099511628211u;
  }
  return hash;
}

static symbol_slot *find_slot(symbol_slot *slots, size_t cap,
                              const char *name) {
  size_t i = hash_name(name) & (cap - 1);
  while (slots[i].name != NULL && strcmp(slots[i].name, name) != 0) {
    i = (i + 1) & (cap - 1);
  }
  return &slots[i];
}

static int grow_symbols(rpc_descriptor_pool *pool) {
  size_t cap = pool->symbol_cap ? pool->symbol_cap * 2 : 256;
  symbol_slot *slots = calloc(cap, sizeof(*slots));
  if (slots == NULL) {
    return -1;
  }
  for (size_t i = 0; i < pool->symbol_cap; i++) {
    if (pool->symbols[i].name != NULL) {
      *find_slot(slots, cap, pool->symbols[i].name) = pool->symbols[i];
    }
  }
  free(pool->symbols);
  pool->symbols = slots;
  pool->symbol_cap = cap;
  return 0;
}

/* Adds scope.name (or name at the root) for file. A name seen before keeps
 * its first file. */
static int add_symbol_of(rpc_descriptor_pool *pool, const char *scope,
                         const char *name, size_t file, symbol_kind kind,
                         const void *descriptor) {
  if ((pool->symbol_count + 1) * 2 > pool->symbol_cap &&
      grow_symbols(pool) != 0) {
    return -1;
  }
  char *full = NULL;
  if (asprintf(&full, "%s%s%s", scope, scope[0] ? "." : "", name) < 0) {
    return -1;
  }
  symbol_slot *slot = find_slot(pool->symbols, pool->symbol_cap, full);
  if (slot->name != NULL) {
    free(full);
    return 0;
  }
  slot->name = full;
  slot->file = file;
  slot->kind = kind;
  slot->descriptor = descriptor;
  pool->symbol_count++;
  return 0;
}

static int add_symbol(rpc_descriptor_pool *pool, const char *scope,
                      const char *name, size_t file) {
  return add_symbol_of(pool, scope, name, file, SYMBOL_OTHER, NULL);
}

static int add_enum(rpc_descriptor_pool *pool, const char *scope,
                    const Google__Protobuf__EnumDescriptorProto *e,
                    size_t file) {
  if (add_symbol_of(pool, scope, e->name, file, SYMBOL_ENUM, e) != 0) {
    return -1;
  }
  /* As in C++, enum values live in the enum's enclosing scope. */
  for (size_t i = 0; i < e->n_value; i++) {
    if (add_symbol(pool, scope, e->value[i]->name, file) != 0) {
      return -1;
    }
  }
  return 0;
}

static int add_message(rpc_descriptor_pool *pool, const char *scope,
                       const Google__Protobuf__DescriptorProto *m,
                       size_t file) {
  char *full = NULL;
  if (add_symbol_of(pool, scope, m->name, file, SYMBOL_MESSAGE, m) != 0 ||
      asprintf(&full, "%s%s%s", scope, scope[0] ? "." : "", m->name) < 0) {
    return -1;
  }
  int rv = 0;
  for (size_t i = 0; i < m->n_field && rv == 0; i++) {
    rv = add_symbol(pool, full, m->field[i]->name, file);
  }
  for (size_t i = 0; i < m->n_extension && rv == 0; i++) {
    rv = add_symbol(pool, full, m->extension[i]->name, file);
  }
  for (size_t i = 0; i < m->n_nested_type && rv == 0; i++) {
    rv = add_message(pool, full, m->nested_type[i], file);
  }
  for (size_t i = 0; i < m->n_enum_type && rv == 0; i++) {
    rv = add_enum(pool, full, m->enum_type[i], file);
  }
  free(full);
  return rv;
}

static int index_file(rpc_descriptor_pool *pool, size_t index) {
  const Google__Protobuf__FileDescriptorProto *f = pool->files[index].proto;
  const char *package = f->package != NULL ? f->package : "";
  for (size_t i = 0; i < f->n_message_type; i++) {
    if (add_message(pool, package, f->message_type[i], index) != 0) {
      return -1;
    }
  }
  for (size_t i = 0; i < f->n_enum_type; i++) {
    if (add_enum(pool, package, f->enum_type[i], index) != 0) {
      return -1;
    }
  }
  for (size_t i = 0; i < f->n_extension; i++) {
    if (add_symbol(pool, package, f->extension[i]->name, index) != 0) {
      return -1;
    }
  }
  for (size_t i = 0; i < f->n_service; i++) {
    const Google__Protobuf__ServiceDescriptorProto *s = f->service[i];
    char *service = NULL;
    if (add_symbol(pool, package, s->name, index) != 0 ||
        asprintf(&service, "%s%s%s", package, package[0] ? "." : "", s->name) <
            0) {
      return -1;
    }
    int rv = 0;
    for (size_t m = 0; m < s->n_method && rv == 0; m++) {
      rv = add_symbol(pool, service, s->method[m]->name, index);
    }
    free(service);
    if (rv != 0) {
      return -1;
    }
  }
  return 0;
}

/* Reads a base-128 varint. Returns bytes used, or 0 if malformed. */
static size_t read_varint(const uint8_t *data, size_t size, uint64_t *value) {
  *value = 0;
  for (size_t i = 0; i < size && i < 10; i++) {
    *value |= (uint64_t)(data[i] & 0x7F) << (7 * i);
    if ((data[i] & 0x80) == 0) {
      return i + 1;
    }
  }
  return 0;
}

int rpc_descriptor_pool_add_set(rpc_descriptor_pool *pool, const uint8_t *data,
                                size_t size) {
  size_t offset = 0;
  while (offset < size) {
    if (data[offset] != FILE_FIELD_TAG) {
      return -1; /* a FileDescriptorSet holds only files */
    }
    uint64_t len;
    size_t used = read_varint(data + offset + 1, size - offset - 1, &len);
    if (used == 0 || len > size - offset - 1 - used) {
      return -1;
    }
    const uint8_t *bytes = data + offset + 1 + used;
    offset += 1 + used + (size_t)len;
    Google__Protobuf__FileDescriptorProto *proto =
        google__protobuf__file_descriptor_proto__unpack(NULL, (size_t)len,
                                                        bytes);
    if (proto == NULL || proto->name == NULL) {
      if (proto != NULL) {
        google__protobuf__file_descriptor_proto__free_unpacked(proto, NULL);
      }
      return -1;
    }
    if (rpc_descriptor_pool_find_file(pool, proto->name) != NULL) {
      google__protobuf__file_descriptor_proto__free_unpacked(proto, NULL);
      continue;
    }
    if (pool->file_count == pool->file_cap) {
      size_t cap = pool->file_cap ? pool->file_cap * 2 : 16;
      rpc_descriptor_file *grown = realloc(pool->files, cap * sizeof(*grown));
      if (grown == NULL) {
        google__protobuf__file_descriptor_proto__free_unpacked(proto, NULL);
        return -1;
      }
      pool->files = grown;
      pool->file_cap = cap;
    }
    pool->files[pool->file_count] =
        (rpc_descriptor_file){proto->name, bytes, (size_t)len, proto};
    if (index_file(pool, pool->file_count++) != 0) {
      return -1;
    }
  }
  return 0;
}

const rpc_descriptor_file *
rpc_descriptor_pool_find_file(const rpc_descriptor_pool *pool,
                              const char *name) {
  for (size_t i = 0; i < pool->file_count; i++) {
    if (strcmp(pool->files[i].name, name) == 0) {
      return &pool->files[i];
    }
  }
  return NULL;
}

const rpc_descriptor_file *
rpc_descriptor_pool_find_symbol(const rpc_descriptor_pool *pool,
                                const char *symbol) {
  if (pool->symbol_cap == 0) {
    return NULL;
  }
  if (symbol[0] == '.') {
    symbol++;
  }
  const symbol_slot *slot = find_slot(pool->symbols, pool->symbol_cap, symbol);
  return slot->name != NULL ? &pool->files[slot->file] : NULL;
}

/* The slot of symbol if it is of kind, else NULL. */
static const symbol_slot *find_typed(const rpc_descriptor_pool *pool,
                                     const char *symbol, symbol_kind kind) {
  if (pool->symbol_cap == 0) {
    return NULL;
  }
  if (symbol[0] == '.') {
    symbol++;
  }
  const symbol_slot *slot = find_slot(pool->symbols, pool->symbol_cap, symbol);
  return slot->name != NULL && slot->kind == kind ? slot : NULL;
}

const Google__Protobuf__DescriptorProto *
rpc_descriptor_pool_find_message(const rpc_descriptor_pool *pool,
                                 const char *name,
                                 const rpc_descriptor_file **file) {
  const symbol_slot *slot = find_typed(pool, name, SYMBOL_MESSAGE);
  if (slot == NULL) {
    return NULL;
  }
  if (file != NULL) {
    *file = &pool->files[slot->file];
  }
  return slot->descriptor;
}

const Google__Protobuf__EnumDescriptorProto *
rpc_descriptor_pool_find_enum(const rpc_descriptor_pool *pool, const char *name,
                              const rpc_descriptor_file **file) {
  const symbol_slot *slot = find_typed(pool, name, SYMBOL_ENUM);
  if (slot == NULL) {
    return NULL;
  }
  if (file != NULL) {
    *file = &pool->files[slot->file];
  }
  return slot->descriptor;
}

/* Counts the extensions of containing_type in a list, storing up to max
 * numbers; matched tells whether number is among them. */
static size_t
each_extension_in(Google__Protobuf__FieldDescriptorProto **extensions,
                  size_t count, const char *containing_type, int32_t number,
                  int32_t *numbers, size_t max, size_t found, bool *matched) {
  for (size_t i = 0; i < count; i++) {
    const char *extendee = extensions[i]->extendee;
    if (extendee == NULL) {
      continue;
    }
    if (extendee[0] == '.') {
      extendee++;
    }
    if (strcmp(extendee, containing_type) != 0) {
      continue;
    }
    if (extensions[i]->number == number) {
      *matched = true;
    }
    if (found < max) {
      numbers[found] = extensions[i]->number;
    }
    found++;
  }
  return found;
}

static size_t scan_message_extensions(
    const Google__Protobuf__DescriptorProto *m, const char *containing_type,
    int32_t number, int32_t *numbers, size_t max, size_t found, bool *matched) {
  found = each_extension_in(m->extension, m->n_extension, containing_type,
                            number, numbers, max, found, matched);
  for (size_t i = 0; i < m->n_nested_type; i++) {
    found = scan_message_extensions(m->nested_type[i], containing_type, number,
                                    numbers, max, found, matched);
  }
  return found;
}

/* Counts extensions of containing_type in file, storing their numbers. */
static size_t scan_file_extensions(const rpc_descriptor_file *file,
                                   const char *containing_type, int32_t number,
                                   int32_t *numbers, size_t max, size_t found,
                                   bool *matched) {
  const Google__Protobuf__FileDescriptorProto *f = file->proto;
  found = each_extension_in(f->extension, f->n_extension, containing_type,
                            number, numbers, max, found, matched);
  for (size_t i = 0; i < f->n_message_type; i++) {
    found = scan_message_extensions(f->message_type[i], containing_type, number,
                                    numbers, max, found, matched);
  }
  return found;
}

const rpc_descriptor_file *
rpc_descriptor_pool_find_extension(const rpc_descriptor_pool *pool,
                                   const char *containing_type,
                                   int32_t number) {
  for (size_t i = 0; i < pool->file_count; i++) {
    bool matched = false;
    (void)scan_file_extensions(&pool->files[i], containing_type, number, NULL,
                               0, 0, &matched);
    if (matched) {
      return &pool->files[i];
    }
  }
  return NULL;
}

size_t rpc_descriptor_pool_extension_numbers(const rpc_descriptor_pool *pool,
                                             const char *containing_type,
                                             int32_t *numbers, size_t max) {
  size_t found = 0;
  bool matched = false;
  for (size_t i = 0; i < pool->file_count; i++) {
    found = scan_file_extensions(&pool->files[i], containing_type, 0, numbers,
                                 max, found, &matched);
  }
  return found;
}

size_t rpc_descriptor_pool_file_count(const rpc_descriptor_pool *pool) {
  return pool->file_count;
}

const rpc_descriptor_file *
rpc_descriptor_pool_file(const rpc_descriptor_pool *pool, size_t index) {
  return index < pool->file_count ? &pool->files[index] : NULL;
}
