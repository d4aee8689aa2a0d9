/* json.c: the protobuf JSON mapping, walking FileDescriptorProtos.
 *
 * Wire -> JSON scans each message's fields into records, sorts them by
 * field number (keeping wire order), and writes the fields in declaration
 * order: a singular field takes its last record, a singular message merges
 * all of them (parsing their concatenation), a oneof takes the member seen
 * last, repeated scalars take packed and unpacked records alike.
 *
 * JSON -> wire parses with jansson (numbers decoded as reals), then finds
 * each number's own text again so that 64-bit integers and integral checks
 * are exact, and writes fields in field-number order, each nested message
 * written in place and its length inserted in front afterwards. */
#include "rpc/json.h"

#include <float.h>
#include <inttypes.h>
#include <jansson.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/base64.h"

typedef Google__Protobuf__DescriptorProto message_type;
typedef Google__Protobuf__FieldDescriptorProto field_type;
typedef Google__Protobuf__EnumDescriptorProto enum_type;

#define FIELD_TYPE(name)                                                       \
  GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_##name
#define LABEL_REPEATED                                                         \
  GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED

enum {
  WIRE_VARINT = 0,
  WIRE_FIXED64 = 1,
  WIRE_LEN = 2,
  WIRE_START_GROUP = 3,
  WIRE_END_GROUP = 4,
  WIRE_FIXED32 = 5,
};

#define PATH_CAP 256
#define MAX_FIELD_NUMBER 536870911u /* 2^29 - 1 */
/* google/protobuf/timestamp.proto and duration.proto */
#define TIMESTAMP_MIN_SECONDS INT64_C(-62135596800) /* 0001-01-01T00:00:00Z */
#define TIMESTAMP_MAX_SECONDS INT64_C(253402300799) /* 9999-12-31T23:59:59Z */
#define DURATION_MAX_SECONDS INT64_C(315576000000)  /* 10000 years */
#define NANOS_PER_SECOND 1000000000

/* The well-known types whose JSON form is their own. */
typedef enum wkt {
  WKT_NONE, /* an ordinary message */
  WKT_ANY,
  WKT_DURATION,
  WKT_TIMESTAMP,
  WKT_FIELD_MASK,
  WKT_STRUCT,
  WKT_VALUE,
  WKT_LIST_VALUE,
  WKT_EMPTY,
  WKT_WRAPPER, /* DoubleValue ... BytesValue: the bare value */
} wkt;

static const struct {
  const char *name;
  wkt kind;
  int wrapped; /* WKT_WRAPPER: the type of its field 1 "value" */
} well_known[] = {
    {"google.protobuf.Any", WKT_ANY, 0},
    {"google.protobuf.Duration", WKT_DURATION, 0},
    {"google.protobuf.Timestamp", WKT_TIMESTAMP, 0},
    {"google.protobuf.FieldMask", WKT_FIELD_MASK, 0},
    {"google.protobuf.Struct", WKT_STRUCT, 0},
    {"google.protobuf.Value", WKT_VALUE, 0},
    {"google.protobuf.ListValue", WKT_LIST_VALUE, 0},
    {"google.protobuf.Empty", WKT_EMPTY, 0},
    {"google.protobuf.DoubleValue", WKT_WRAPPER, FIELD_TYPE(DOUBLE)},
    {"google.protobuf.FloatValue", WKT_WRAPPER, FIELD_TYPE(FLOAT)},
    {"google.protobuf.Int64Value", WKT_WRAPPER, FIELD_TYPE(INT64)},
    {"google.protobuf.UInt64Value", WKT_WRAPPER, FIELD_TYPE(UINT64)},
    {"google.protobuf.Int32Value", WKT_WRAPPER, FIELD_TYPE(INT32)},
    {"google.protobuf.UInt32Value", WKT_WRAPPER, FIELD_TYPE(UINT32)},
    {"google.protobuf.BoolValue", WKT_WRAPPER, FIELD_TYPE(BOOL)},
    {"google.protobuf.StringValue", WKT_WRAPPER, FIELD_TYPE(STRING)},
    {"google.protobuf.BytesValue", WKT_WRAPPER, FIELD_TYPE(BYTES)},
};

#define NULL_VALUE_TYPE "google.protobuf.NullValue"

/* A message type as the transcoder sees it. */
typedef struct type_ref {
  const char *name; /* fully qualified, no leading dot */
  wkt kind;
  int wrapped;                 /* WKT_WRAPPER */
  const message_type *message; /* WKT_NONE: its descriptor */
  bool proto3;                 /* WKT_NONE: declared in a proto3 file */
} type_ref;

/* A field, its type resolved. */
typedef struct field_info {
  const field_type *field; /* NULL for the fields of well-known types */
  uint32_t number;
  int type; /* FIELD_TYPE(...) */
  bool repeated;
  bool packed;   /* repeated numeric, written packed */
  bool presence; /* singular with explicit presence */
  bool is_map;
  type_ref message;             /* MESSAGE and GROUP; a map: its entry */
  const enum_type *enumeration; /* ENUM, unless null_value */
  bool closed_enum;             /* a proto2 enum: unknown numbers refused */
  bool null_value;              /* enum google.protobuf.NullValue */
} field_info;

/* A number token of the JSON text, found again for a parsed value. */
typedef struct number_token {
  const json_t *node;
  const char *text;
  size_t len;
} number_token;

typedef struct context {
  const rpc_descriptor_pool *pool;
  char *err;
  size_t err_size;
  bool failed;
  char path[PATH_CAP]; /* where in the JSON, "config.moduleParams" */
  size_t path_len;
  int depth;
  rpc_buffer *out;
  /* wire -> JSON */
  rpc_json_options options;
  int level; /* of indentation */
  bool out_of_memory;
  /* JSON -> wire */
  number_token *numbers; /* sorted by node */
  size_t number_count;
} context;

/* One field of a message on the wire. */
typedef struct record {
  uint32_t number;
  uint8_t wire_type;
  size_t position;     /* in wire order */
  uint64_t value;      /* VARINT, FIXED32, FIXED64 */
  const uint8_t *data; /* LEN, START_GROUP: the contents */
  size_t len;
} record;

typedef struct record_list {
  record *items;
  size_t count;
  size_t cap;
} record_list;

/* ---- errors and paths ---- */

static int fail(context *ctx, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* Records the first error, prefixed with the current path. Returns -1. */
static int fail(context *ctx, const char *format, ...) {
  if (ctx->failed) {
    return -1;
  }
  ctx->failed = true;
  if (ctx->err == NULL || ctx->err_size == 0) {
    return -1;
  }
  int used = 0;
  if (ctx->path_len > 0) {
    used = snprintf(ctx->err, ctx->err_size, "%s: ", ctx->path);
  }
  if (used < 0) {
    used = 0;
    ctx->err[0] = '\0';
  }
  if ((size_t)used < ctx->err_size) {
    va_list args;
    va_start(args, format);
    vsnprintf(ctx->err + used, ctx->err_size - (size_t)used, format, args);
    va_end(args);
  }
  return -1;
}

static int fail_no_memory(context *ctx) { return fail(ctx, "out of memory"); }

/* Appends ".key" (or "key" at the root); returns the length to restore. */
static size_t push_key(context *ctx, const char *key, size_t len) {
  size_t saved = ctx->path_len;
  size_t at = ctx->path_len;
  if (at > 0 && at < PATH_CAP - 1) {
    ctx->path[at++] = '.';
  }
  for (size_t i = 0; i < len && at < PATH_CAP - 1; i++) {
    unsigned char c = (unsigned char)key[i];
    ctx->path[at++] = c < 0x20 || c == 0x7F ? '?' : (char)c;
  }
  ctx->path[at] = '\0';
  ctx->path_len = at;
  return saved;
}

static size_t push_index(context *ctx, size_t index) {
  size_t saved = ctx->path_len;
  int used = snprintf(ctx->path + ctx->path_len, PATH_CAP - ctx->path_len,
                      "[%zu]", index);
  if (used > 0) {
    ctx->path_len += (size_t)used;
    if (ctx->path_len > PATH_CAP - 1) {
      ctx->path_len = PATH_CAP - 1;
    }
  }
  return saved;
}

static void pop_path(context *ctx, size_t saved) {
  ctx->path_len = saved;
  ctx->path[saved] = '\0';
}

static int enter(context *ctx) {
  if (++ctx->depth > RPC_JSON_MAX_DEPTH) {
    return fail(ctx, "nested deeper than %d levels", RPC_JSON_MAX_DEPTH);
  }
  return 0;
}

static void leave(context *ctx) { ctx->depth--; }

/* ---- descriptors ---- */

static const char *without_dot(const char *name) {
  return name[0] == '.' ? name + 1 : name;
}

static const char *field_name(const field_type *field) {
  return field->name != NULL ? field->name : "";
}

static bool is_proto3(const rpc_descriptor_file *file) {
  return file != NULL && file->proto->syntax != NULL &&
         strcmp(file->proto->syntax, "proto3") == 0;
}

static wkt well_known_kind(const char *name, int *wrapped) {
  if (strncmp(name, "google.protobuf.", 16) != 0) {
    return WKT_NONE;
  }
  for (size_t i = 0; i < sizeof(well_known) / sizeof(well_known[0]); i++) {
    if (strcmp(name, well_known[i].name) == 0) {
      *wrapped = well_known[i].wrapped;
      return well_known[i].kind;
    }
  }
  return WKT_NONE;
}

/* Fills ref for the message type name; false if the pool lacks it. The
 * well-known types with their own JSON form need no descriptor. */
static bool find_message(const rpc_descriptor_pool *pool, const char *name,
                         type_ref *ref) {
  memset(ref, 0, sizeof(*ref));
  ref->name = without_dot(name);
  ref->kind = well_known_kind(ref->name, &ref->wrapped);
  if (ref->kind != WKT_NONE) {
    return true;
  }
  const rpc_descriptor_file *file = NULL;
  ref->message = rpc_descriptor_pool_find_message(pool, ref->name, &file);
  ref->proto3 = is_proto3(file);
  return ref->message != NULL;
}

static int resolve_message(context *ctx, const char *name, type_ref *ref) {
  if (!find_message(ctx->pool, name, ref)) {
    return fail(ctx, "message type %s is not in the descriptor pool",
                without_dot(name));
  }
  return 0;
}

static bool is_numeric(int type) {
  return type != FIELD_TYPE(STRING) && type != FIELD_TYPE(BYTES) &&
         type != FIELD_TYPE(MESSAGE) && type != FIELD_TYPE(GROUP);
}

static bool is_message(int type) {
  return type == FIELD_TYPE(MESSAGE) || type == FIELD_TYPE(GROUP);
}

static uint8_t wire_type_of(int type) {
  switch (type) {
  case FIELD_TYPE(DOUBLE):
  case FIELD_TYPE(FIXED64):
  case FIELD_TYPE(SFIXED64):
    return WIRE_FIXED64;
  case FIELD_TYPE(FLOAT):
  case FIELD_TYPE(FIXED32):
  case FIELD_TYPE(SFIXED32):
    return WIRE_FIXED32;
  case FIELD_TYPE(STRING):
  case FIELD_TYPE(BYTES):
  case FIELD_TYPE(MESSAGE):
    return WIRE_LEN;
  case FIELD_TYPE(GROUP):
    return WIRE_START_GROUP;
  default:
    return WIRE_VARINT;
  }
}

/* Whether a field's JSON accepts null as a value rather than as "unset":
 * google.protobuf.Value (a NullValue) and the NullValue enum itself. */
static bool takes_null(const field_type *field) {
  if (field->type_name == NULL) {
    return false;
  }
  const char *name = without_dot(field->type_name);
  return strcmp(name, "google.protobuf.Value") == 0 ||
         strcmp(name, NULL_VALUE_TYPE) == 0;
}

static int resolve_enum(context *ctx, const char *type_name, field_info *fi) {
  const char *name = without_dot(type_name);
  if (strcmp(name, NULL_VALUE_TYPE) == 0) {
    fi->null_value = true;
    return 0;
  }
  const rpc_descriptor_file *file = NULL;
  fi->enumeration = rpc_descriptor_pool_find_enum(ctx->pool, name, &file);
  if (fi->enumeration == NULL) {
    return fail(ctx, "enum type %s is not in the descriptor pool", name);
  }
  fi->closed_enum = !is_proto3(file);
  return 0;
}

/* Resolves field of the message owner. */
static int resolve_field(context *ctx, const type_ref *owner,
                         const field_type *field, field_info *fi) {
  memset(fi, 0, sizeof(*fi));
  fi->field = field;
  fi->number = field->number > 0 ? (uint32_t)field->number : 0;
  fi->repeated = field->has_label && field->label == LABEL_REPEATED;
  if (field->has_type) {
    fi->type = (int)field->type;
  } else if (field->type_name != NULL) {
    /* An unresolved descriptor: the name tells message from enum. */
    fi->type =
        rpc_descriptor_pool_find_enum(ctx->pool, without_dot(field->type_name),
                                      NULL) != NULL ||
                strcmp(without_dot(field->type_name), NULL_VALUE_TYPE) == 0
            ? FIELD_TYPE(ENUM)
            : FIELD_TYPE(MESSAGE);
  } else {
    return fail(ctx, "field %s of %s has no type", field_name(field),
                owner->name);
  }
  if (fi->type < FIELD_TYPE(DOUBLE) || fi->type > FIELD_TYPE(SINT64)) {
    return fail(ctx, "field %s of %s has an unknown type %d", field_name(field),
                owner->name, fi->type);
  }
  if (is_message(fi->type) || fi->type == FIELD_TYPE(ENUM)) {
    if (field->type_name == NULL) {
      return fail(ctx, "field %s of %s has no type name", field_name(field),
                  owner->name);
    }
    if (fi->type == FIELD_TYPE(ENUM)) {
      if (resolve_enum(ctx, field->type_name, fi) != 0) {
        return -1;
      }
    } else if (resolve_message(ctx, field->type_name, &fi->message) != 0) {
      return -1;
    }
  }
  const message_type *entry = fi->message.message;
  fi->is_map = fi->repeated && fi->type == FIELD_TYPE(MESSAGE) &&
               entry != NULL && entry->options != NULL &&
               entry->options->has_map_entry && entry->options->map_entry;
  fi->presence =
      !fi->repeated && (is_message(fi->type) || field->has_oneof_index ||
                        field->proto3_optional || !owner->proto3);
  if (fi->repeated && is_numeric(fi->type)) {
    const Google__Protobuf__FieldOptions *options = field->options;
    bool stated = options != NULL && options->has_packed;
    fi->packed =
        owner->proto3 ? !stated || options->packed : stated && options->packed;
  }
  return 0;
}

/* Finds the entry's key (1) and value (2) fields, resolved. */
static int resolve_map_entry(context *ctx, const field_info *map,
                             field_info *key, field_info *value) {
  const message_type *entry = map->message.message;
  const field_type *key_field = NULL, *value_field = NULL;
  for (size_t i = 0; i < entry->n_field; i++) {
    if (entry->field[i]->number == 1) {
      key_field = entry->field[i];
    } else if (entry->field[i]->number == 2) {
      value_field = entry->field[i];
    }
  }
  if (key_field == NULL || value_field == NULL) {
    return fail(ctx, "map entry %s lacks its key or value field",
                map->message.name);
  }
  if (resolve_field(ctx, &map->message, key_field, key) != 0 ||
      resolve_field(ctx, &map->message, value_field, value) != 0) {
    return -1;
  }
  if (!is_numeric(key->type) && key->type != FIELD_TYPE(STRING)) {
    return fail(ctx, "map entry %s has a key of type %d", map->message.name,
                key->type);
  }
  if (key->type == FIELD_TYPE(FLOAT) || key->type == FIELD_TYPE(DOUBLE) ||
      key->type == FIELD_TYPE(ENUM)) {
    return fail(ctx, "map entry %s has a key of type %d", map->message.name,
                key->type);
  }
  return 0;
}

/* A synthetic singular field: the fields of the well-known types. */
static field_info plain_field(uint32_t number, int type) {
  field_info fi;
  memset(&fi, 0, sizeof(fi));
  fi.number = number;
  fi.type = type;
  return fi;
}

static field_info value_field(uint32_t number) {
  field_info fi = plain_field(number, FIELD_TYPE(MESSAGE));
  fi.message.name = "google.protobuf.Value";
  fi.message.kind = WKT_VALUE;
  return fi;
}

/* protoc's ToJsonName: drop each '_' and capitalize the letter after. */
static char *json_name_of(const field_type *field) {
  const char *name = field_name(field);
  char *out = malloc(strlen(name) + 1);
  if (out == NULL) {
    return NULL;
  }
  size_t at = 0;
  bool capitalize = false;
  for (const char *c = name; *c; c++) {
    if (*c == '_') {
      capitalize = true;
    } else if (capitalize) {
      out[at++] = *c >= 'a' && *c <= 'z' ? (char)(*c - 'a' + 'A') : *c;
      capitalize = false;
    } else {
      out[at++] = *c;
    }
  }
  out[at] = '\0';
  return out;
}

static bool computed_json_name_equals(const char *name, const char *key,
                                      size_t len) {
  size_t at = 0;
  bool capitalize = false;
  for (const char *c = name; *c; c++) {
    if (*c == '_') {
      capitalize = true;
      continue;
    }
    char expected = *c;
    if (capitalize && expected >= 'a' && expected <= 'z') {
      expected = (char)(expected - 'a' + 'A');
    }
    capitalize = false;
    if (at >= len || key[at] != expected) {
      return false;
    }
    at++;
  }
  return at == len;
}

static bool equals(const char *name, const char *key, size_t len) {
  return strlen(name) == len && memcmp(name, key, len) == 0;
}

/* ---- wire reading ---- */

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

static uint64_t read_little_endian(const uint8_t *data, size_t size) {
  uint64_t value = 0;
  for (size_t i = size; i > 0; i--) {
    value = value << 8 | data[i - 1];
  }
  return value;
}

static int malformed(context *ctx, const char *type, const char *what) {
  return fail(ctx, "malformed wire data for %s: %s", type, what);
}

/* Reads the field at data[*offset] into r. Returns 1, 0 at the end-group
 * tag of group_number (0: none; *offset is then past it), or -1. */
static int next_field(context *ctx, const char *type, const uint8_t *data,
                      size_t size, size_t *offset, uint32_t group_number,
                      int depth, record *r) {
  uint64_t tag;
  size_t used = read_varint(data + *offset, size - *offset, &tag);
  if (used == 0) {
    return malformed(ctx, type, "truncated tag");
  }
  if (tag > UINT32_MAX || (tag >> 3) == 0) {
    return malformed(ctx, type, "invalid field number");
  }
  *offset += used;
  r->number = (uint32_t)(tag >> 3);
  r->wire_type = (uint8_t)(tag & 7);
  r->value = 0;
  r->data = NULL;
  r->len = 0;
  size_t left = size - *offset;
  switch (r->wire_type) {
  case WIRE_VARINT:
    used = read_varint(data + *offset, left, &r->value);
    if (used == 0) {
      return malformed(ctx, type, "truncated varint");
    }
    *offset += used;
    return 1;
  case WIRE_FIXED64:
  case WIRE_FIXED32: {
    size_t width = r->wire_type == WIRE_FIXED64 ? 8 : 4;
    if (left < width) {
      return malformed(ctx, type, "truncated fixed-width field");
    }
    r->value = read_little_endian(data + *offset, width);
    *offset += width;
    return 1;
  }
  case WIRE_LEN: {
    uint64_t len;
    used = read_varint(data + *offset, left, &len);
    if (used == 0 || len > left - used) {
      return malformed(ctx, type, "truncated length-delimited field");
    }
    r->data = data + *offset + used;
    r->len = (size_t)len;
    *offset += used + (size_t)len;
    return 1;
  }
  case WIRE_START_GROUP: {
    if (depth >= RPC_JSON_MAX_DEPTH) {
      return fail(ctx, "nested deeper than %d levels", RPC_JSON_MAX_DEPTH);
    }
    size_t start = *offset;
    while (*offset < size) {
      size_t before = *offset;
      record inner;
      int rv = next_field(ctx, type, data, size, offset, r->number, depth + 1,
                          &inner);
      if (rv < 0) {
        return -1;
      }
      if (rv == 0) {
        r->data = data + start;
        r->len = before - start;
        return 1;
      }
    }
    return malformed(ctx, type, "unterminated group");
  }
  case WIRE_END_GROUP:
    if (group_number != 0 && r->number == group_number) {
      return 0;
    }
    return malformed(ctx, type, "unexpected end-group tag");
  default:
    return malformed(ctx, type, "invalid wire type");
  }
}

static int compare_records(const void *a, const void *b) {
  const record *x = a, *y = b;
  if (x->number != y->number) {
    return x->number < y->number ? -1 : 1;
  }
  return x->position < y->position ? -1 : x->position > y->position;
}

/* Scans a message's fields into list, sorted by number then wire order.
 * The caller frees list->items. */
static int scan_message(context *ctx, const char *type, const uint8_t *data,
                        size_t size, record_list *list) {
  memset(list, 0, sizeof(*list));
  size_t offset = 0;
  while (offset < size) {
    record r;
    int rv = next_field(ctx, type, data, size, &offset, 0, ctx->depth, &r);
    if (rv < 0) {
      return -1;
    }
    if (list->count == list->cap) {
      size_t cap = list->cap ? list->cap * 2 : 16;
      record *grown = realloc(list->items, cap * sizeof(*grown));
      if (grown == NULL) {
        return fail_no_memory(ctx);
      }
      list->items = grown;
      list->cap = cap;
    }
    r.position = list->count;
    list->items[list->count++] = r;
  }
  if (list->count > 1) {
    qsort(list->items, list->count, sizeof(record), compare_records);
  }
  return 0;
}

/* The records of field number: *run points at the first; returns the
 * count. */
static size_t find_run(const record_list *list, uint32_t number,
                       const record **run) {
  size_t low = 0, high = list->count;
  while (low < high) {
    size_t middle = low + (high - low) / 2;
    if (list->items[middle].number < number) {
      low = middle + 1;
    } else {
      high = middle;
    }
  }
  size_t end = low;
  while (end < list->count && list->items[end].number == number) {
    end++;
  }
  *run = list->items != NULL ? list->items + low : NULL;
  return end - low;
}

static bool record_fits(const field_info *fi, const record *r) {
  return r->wire_type == wire_type_of(fi->type) ||
         (fi->repeated && is_numeric(fi->type) && r->wire_type == WIRE_LEN);
}

/* The last record of the run that fits fi, or NULL. */
static const record *last_fitting(const field_info *fi, const record *run,
                                  size_t count) {
  for (size_t i = count; i > 0; i--) {
    if (record_fits(fi, &run[i - 1])) {
      return &run[i - 1];
    }
  }
  return NULL;
}

/* The last record of the run that gives the field a value: for a
 * repeated numeric field an empty packed record holds no element. */
static const record *last_present(const field_info *fi, const record *run,
                                  size_t count) {
  for (size_t i = count; i > 0; i--) {
    const record *r = &run[i - 1];
    if (record_fits(fi, r) && !(fi->repeated && is_numeric(fi->type) &&
                                r->wire_type == WIRE_LEN && r->len == 0)) {
      return r;
    }
  }
  return NULL;
}

/* The bytes of a singular message: its records after position cutoff
 * (SIZE_MAX: all), merged. *owned, when set, is to be freed. */
static int merged_message(context *ctx, const field_info *fi, const record *run,
                          size_t count, size_t cutoff, const uint8_t **data,
                          size_t *len, uint8_t **owned) {
  *owned = NULL;
  *data = NULL;
  *len = 0;
  size_t matching = 0, total = 0;
  const record *only = NULL;
  for (size_t i = 0; i < count; i++) {
    if (record_fits(fi, &run[i]) &&
        (cutoff == SIZE_MAX || run[i].position > cutoff)) {
      matching++;
      total += run[i].len;
      only = &run[i];
    }
  }
  if (matching <= 1) {
    if (only != NULL) {
      *data = only->data;
      *len = only->len;
    }
    return 0;
  }
  uint8_t *joined = malloc(total);
  if (joined == NULL) {
    return fail_no_memory(ctx);
  }
  size_t at = 0;
  for (size_t i = 0; i < count; i++) {
    if (record_fits(fi, &run[i]) &&
        (cutoff == SIZE_MAX || run[i].position > cutoff)) {
      memcpy(joined + at, run[i].data, run[i].len);
      at += run[i].len;
    }
  }
  *owned = joined;
  *data = joined;
  *len = total;
  return 0;
}

/* ---- JSON text output ---- */

static void emit(context *ctx, const void *data, size_t len) {
  if (!ctx->out_of_memory && rpc_buffer_append(ctx->out, data, len) != 0) {
    ctx->out_of_memory = true;
  }
}

static void emit_text(context *ctx, const char *text) {
  emit(ctx, text, strlen(text));
}

static void emit_newline(context *ctx) {
  static const char spaces[] = "                                ";
  if (ctx->options.indent <= 0) {
    return;
  }
  emit(ctx, "\n", 1);
  size_t todo = (size_t)ctx->options.indent * (size_t)ctx->level;
  while (todo > 0) {
    size_t chunk = todo < sizeof(spaces) - 1 ? todo : sizeof(spaces) - 1;
    emit(ctx, spaces, chunk);
    todo -= chunk;
  }
}

static void open_container(context *ctx, char open) {
  emit(ctx, &open, 1);
  ctx->level++;
}

static void close_container(context *ctx, char close, bool empty) {
  ctx->level--;
  if (!empty) {
    emit_newline(ctx);
  }
  emit(ctx, &close, 1);
}

static void begin_item(context *ctx, bool *first) {
  if (!*first) {
    emit(ctx, ",", 1);
  }
  *first = false;
  emit_newline(ctx);
}

/* Length of the valid UTF-8 sequence at s, or 0. */
static size_t utf8_sequence(const uint8_t *s, size_t len) {
  uint8_t c = s[0];
  size_t need;
  uint32_t min, code;
  if (c < 0x80) {
    return 1;
  } else if ((c & 0xE0) == 0xC0) {
    need = 2, min = 0x80, code = c & 0x1Fu;
  } else if ((c & 0xF0) == 0xE0) {
    need = 3, min = 0x800, code = c & 0x0Fu;
  } else if ((c & 0xF8) == 0xF0) {
    need = 4, min = 0x10000, code = c & 0x07u;
  } else {
    return 0;
  }
  if (len < need) {
    return 0;
  }
  for (size_t i = 1; i < need; i++) {
    if ((s[i] & 0xC0) != 0x80) {
      return 0;
    }
    code = code << 6 | (s[i] & 0x3Fu);
  }
  if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
    return 0;
  }
  return need;
}

static bool utf8_valid(const uint8_t *s, size_t len) {
  for (size_t i = 0; i < len;) {
    size_t used = utf8_sequence(s + i, len - i);
    if (used == 0) {
      return false;
    }
    i += used;
  }
  return true;
}

/* Writes a JSON string; the text must be UTF-8. */
static int emit_string(context *ctx, const uint8_t *s, size_t len) {
  if (len == 0) {
    s = (const uint8_t *)""; /* an absent map key: NULL */
  }
  if (!utf8_valid(s, len)) {
    return fail(ctx, "string is not valid UTF-8");
  }
  emit(ctx, "\"", 1);
  size_t run = 0;
  for (size_t i = 0; i < len; i++) {
    uint8_t c = s[i];
    if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7F) {
      continue;
    }
    emit(ctx, s + run, i - run);
    run = i + 1;
    char escape[8];
    switch (c) {
    case '"':
      emit(ctx, "\\\"", 2);
      break;
    case '\\':
      emit(ctx, "\\\\", 2);
      break;
    case '\n':
      emit(ctx, "\\n", 2);
      break;
    case '\r':
      emit(ctx, "\\r", 2);
      break;
    case '\t':
      emit(ctx, "\\t", 2);
      break;
    case '\b':
      emit(ctx, "\\b", 2);
      break;
    case '\f':
      emit(ctx, "\\f", 2);
      break;
    default:
      snprintf(escape, sizeof(escape), "\\u%04x", (unsigned)c);
      emit(ctx, escape, 6);
    }
  }
  emit(ctx, s + run, len - run);
  emit(ctx, "\"", 1);
  return 0;
}

static int emit_text_string(context *ctx, const char *text) {
  return emit_string(ctx, (const uint8_t *)text, strlen(text));
}

static int begin_member(context *ctx, bool *first, const char *key) {
  begin_item(ctx, first);
  if (emit_text_string(ctx, key) != 0) {
    return -1;
  }
  emit(ctx, ctx->options.indent > 0 ? ": " : ":",
       ctx->options.indent > 0 ? 2 : 1);
  return 0;
}

static bool reads_back(const char *text, double value, bool single) {
  return single ? strtof(text, NULL) == (float)value
                : strtod(text, NULL) == value;
}

/* Formats a finite double (or float) with the fewest digits that read
 * back to the same value, '.' as the decimal point whatever the locale.
 * Reading back is monotone in the precision, so it is searched. */
static void format_number(double value, bool single, char *buf, size_t size) {
  int low = 1, high = single ? 9 : 17; /* high always reads back */
  while (low < high) {
    int middle = low + (high - low) / 2;
    snprintf(buf, size, "%.*e", middle - 1, value);
    if (reads_back(buf, value, single)) {
      high = middle;
    } else {
      low = middle + 1;
    }
  }
  /* Plain digits from 1e-4 up to 1e21, an exponent beyond, as Go's
   * protojson (and JavaScript) write numbers. */
  snprintf(buf, size, "%.*e", high - 1, value);
  const char *e = strchr(buf, 'e');
  long exponent = e != NULL ? strtol(e + 1, NULL, 10) : 0;
  if (exponent >= -4 && exponent < 21) {
    long decimals = high - 1 - exponent;
    snprintf(buf, size, "%.*f", decimals > 0 ? (int)decimals : 0, value);
  }
  const char *point = localeconv()->decimal_point;
  if (point != NULL && point[0] != '.' && point[0] != '\0') {
    char *found = strchr(buf, point[0]);
    if (found != NULL) {
      *found = '.';
    }
  }
}

static void emit_double(context *ctx, double value, bool single) {
  if (isnan(value)) {
    emit_text(ctx, "\"NaN\"");
  } else if (isinf(value)) {
    emit_text(ctx, value > 0 ? "\"Infinity\"" : "\"-Infinity\"");
  } else {
    char buf[40];
    format_number(value, single, buf, sizeof(buf));
    emit_text(ctx, buf);
  }
}

static void emit_format(context *ctx, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void emit_format(context *ctx, const char *format, ...) {
  char buf[64];
  va_list args;
  va_start(args, format);
  int used = vsnprintf(buf, sizeof(buf), format, args);
  va_end(args);
  if (used > 0) {
    emit(ctx, buf, (size_t)used < sizeof(buf) ? (size_t)used : sizeof(buf) - 1);
  }
}

static double double_of_bits(uint64_t bits) {
  double value;
  memcpy(&value, &bits, sizeof(value));
  return value;
}

static float float_of_bits(uint32_t bits) {
  float value;
  memcpy(&value, &bits, sizeof(value));
  return value;
}

static int64_t zigzag_decode(uint64_t value) {
  return (int64_t)(value >> 1) ^ -(int64_t)(value & 1);
}

static const char *enum_name(const enum_type *enumeration, int32_t number) {
  for (size_t i = 0; i < enumeration->n_value; i++) {
    if (enumeration->value[i]->number == number &&
        enumeration->value[i]->name != NULL) {
      return enumeration->value[i]->name;
    }
  }
  return NULL;
}

/* Writes a scalar of fi's type from its wire value (value for numbers,
 * data[0..len) for strings and bytes). */
static int write_scalar(context *ctx, const field_info *fi, uint64_t value,
                        const uint8_t *data, size_t len) {
  switch (fi->type) {
  case FIELD_TYPE(DOUBLE):
    emit_double(ctx, double_of_bits(value), false);
    return 0;
  case FIELD_TYPE(FLOAT):
    emit_double(ctx, (double)float_of_bits((uint32_t)value), true);
    return 0;
  case FIELD_TYPE(INT64):
  case FIELD_TYPE(SFIXED64):
    emit_format(ctx, "\"%" PRId64 "\"", (int64_t)value);
    return 0;
  case FIELD_TYPE(SINT64):
    emit_format(ctx, "\"%" PRId64 "\"", zigzag_decode(value));
    return 0;
  case FIELD_TYPE(UINT64):
  case FIELD_TYPE(FIXED64):
    emit_format(ctx, "\"%" PRIu64 "\"", value);
    return 0;
  case FIELD_TYPE(INT32):
  case FIELD_TYPE(SFIXED32):
    emit_format(ctx, "%" PRId32, (int32_t)(uint32_t)value);
    return 0;
  case FIELD_TYPE(SINT32):
    emit_format(ctx, "%" PRId32,
                (int32_t)zigzag_decode((uint64_t)(uint32_t)value));
    return 0;
  case FIELD_TYPE(UINT32):
  case FIELD_TYPE(FIXED32):
    emit_format(ctx, "%" PRIu32, (uint32_t)value);
    return 0;
  case FIELD_TYPE(BOOL):
    emit_text(ctx, value != 0 ? "true" : "false");
    return 0;
  case FIELD_TYPE(ENUM): {
    int32_t number = (int32_t)(uint32_t)value;
    const char *name =
        fi->null_value ? NULL : enum_name(fi->enumeration, number);
    if (fi->null_value) {
      emit_text(ctx, "null");
    } else if (name != NULL) {
      return emit_text_string(ctx, name);
    } else {
      emit_format(ctx, "%" PRId32, number);
    }
    return 0;
  }
  case FIELD_TYPE(STRING):
    return emit_string(ctx, data, len);
  case FIELD_TYPE(BYTES):
    emit(ctx, "\"", 1);
    if (!ctx->out_of_memory && rpc_base64_encode(data, len, ctx->out) != 0) {
      ctx->out_of_memory = true;
    }
    emit(ctx, "\"", 1);
    return 0;
  default:
    return fail(ctx, "unexpected field type %d", fi->type);
  }
}

/* Whether a singular value without presence is its default and so not
 * written (proto3: zero bits, an empty string). */
static bool is_default_value(const field_info *fi, const record *r) {
  switch (fi->type) {
  case FIELD_TYPE(STRING):
  case FIELD_TYPE(BYTES):
    return r->len == 0;
  case FIELD_TYPE(INT32):
  case FIELD_TYPE(UINT32):
  case FIELD_TYPE(SINT32):
  case FIELD_TYPE(FIXED32):
  case FIELD_TYPE(SFIXED32):
  case FIELD_TYPE(FLOAT):
  case FIELD_TYPE(ENUM):
    return (uint32_t)r->value == 0;
  default:
    return r->value == 0;
  }
}

static int write_message(context *ctx, const type_ref *type,
                         const uint8_t *data, size_t size);

/* Writes one value of field fi from its record (not packed). */
static int write_value(context *ctx, const field_info *fi, const record *r) {
  if (is_message(fi->type)) {
    return write_message(ctx, &fi->message, r->data, r->len);
  }
  return write_scalar(ctx, fi, r->value, r->data, r->len);
}

/* Writes the elements of a repeated field as a JSON array. */
static int write_list(context *ctx, const field_info *fi, const record *run,
                      size_t count) {
  bool first = true;
  size_t index = 0;
  open_container(ctx, '[');
  for (size_t i = 0; i < count; i++) {
    const record *r = &run[i];
    if (!record_fits(fi, r)) {
      continue;
    }
    if (r->wire_type != WIRE_LEN || !is_numeric(fi->type)) {
      begin_item(ctx, &first);
      size_t saved = push_index(ctx, index++);
      int rv = write_value(ctx, fi, r);
      pop_path(ctx, saved);
      if (rv != 0) {
        return -1;
      }
      continue;
    }
    /* Packed: the values back to back, without tags. */
    uint8_t element_type = wire_type_of(fi->type);
    size_t offset = 0;
    while (offset < r->len) {
      uint64_t value;
      if (element_type == WIRE_VARINT) {
        size_t used = read_varint(r->data + offset, r->len - offset, &value);
        if (used == 0) {
          return fail(ctx, "malformed wire data: truncated packed varint");
        }
        offset += used;
      } else {
        size_t width = element_type == WIRE_FIXED64 ? 8 : 4;
        if (r->len - offset < width) {
          return fail(ctx, "malformed wire data: truncated packed value");
        }
        value = read_little_endian(r->data + offset, width);
        offset += width;
      }
      begin_item(ctx, &first);
      size_t saved = push_index(ctx, index++);
      int rv = write_scalar(ctx, fi, value, NULL, 0);
      pop_path(ctx, saved);
      if (rv != 0) {
        return -1;
      }
    }
  }
  close_container(ctx, ']', first);
  return 0;
}

/* A map entry read off the wire. */
typedef struct map_entry {
  bool string_key;
  uint64_t key_order; /* numeric keys: sorts like the key */
  uint64_t key_value; /* as on the wire */
  const uint8_t *key_data;
  size_t key_len;
  bool has_value;
  record value;
  uint8_t *owned; /* merged message value */
  size_t index;
} map_entry;

static int compare_entries(const void *a, const void *b) {
  const map_entry *x = a, *y = b;
  if (x->string_key) {
    size_t shorter = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = shorter > 0 ? memcmp(x->key_data, y->key_data, shorter) : 0;
    if (c != 0) {
      return c;
    }
    if (x->key_len != y->key_len) {
      return x->key_len < y->key_len ? -1 : 1;
    }
  } else if (x->key_order != y->key_order) {
    return x->key_order < y->key_order ? -1 : 1;
  }
  return x->index < y->index ? -1 : x->index > y->index;
}

static bool same_key(const map_entry *x, const map_entry *y) {
  if (x->string_key) {
    return x->key_len == y->key_len &&
           (x->key_len == 0 ||
            memcmp(x->key_data, y->key_data, x->key_len) == 0);
  }
  return x->key_order == y->key_order;
}

/* The signed value of a key of an integer type, as wire value. */
static int64_t signed_key(int type, uint64_t value) {
  switch (type) {
  case FIELD_TYPE(INT32):
  case FIELD_TYPE(SFIXED32):
    return (int32_t)(uint32_t)value;
  case FIELD_TYPE(SINT32):
    return (int32_t)zigzag_decode((uint64_t)(uint32_t)value);
  case FIELD_TYPE(SINT64):
    return zigzag_decode(value);
  default:
    return (int64_t)value;
  }
}

static bool is_signed_key(int type) {
  return type == FIELD_TYPE(INT32) || type == FIELD_TYPE(SFIXED32) ||
         type == FIELD_TYPE(SINT32) || type == FIELD_TYPE(INT64) ||
         type == FIELD_TYPE(SFIXED64) || type == FIELD_TYPE(SINT64);
}

static void key_text(int type, uint64_t value, char *buf, size_t size) {
  if (type == FIELD_TYPE(BOOL)) {
    snprintf(buf, size, "%s", value != 0 ? "true" : "false");
  } else if (is_signed_key(type)) {
    snprintf(buf, size, "%" PRId64, signed_key(type, value));
  } else if (type == FIELD_TYPE(UINT32) || type == FIELD_TYPE(FIXED32)) {
    snprintf(buf, size, "%" PRIu32, (uint32_t)value);
  } else {
    snprintf(buf, size, "%" PRIu64, value);
  }
}

static void free_entries(map_entry *entries, size_t count) {
  for (size_t i = 0; i < count; i++) {
    free(entries[i].owned);
  }
  free(entries);
}

/* Reads one entry's key and value. */
static int read_entry(context *ctx, const char *entry_type,
                      const field_info *key, const field_info *value,
                      const record *r, map_entry *entry) {
  record_list fields;
  if (scan_message(ctx, entry_type, r->data, r->len, &fields) != 0) {
    free(fields.items);
    return -1;
  }
  const record *run;
  size_t count = find_run(&fields, 1, &run);
  const record *key_record = last_fitting(key, run, count);
  entry->string_key = key->type == FIELD_TYPE(STRING);
  if (key_record != NULL) {
    entry->key_value = key_record->value;
    entry->key_data = key_record->data;
    entry->key_len = key_record->len;
  }
  if (entry->string_key) {
    entry->key_order = 0;
  } else if (key->type == FIELD_TYPE(BOOL)) {
    entry->key_order = entry->key_value != 0;
  } else if (is_signed_key(key->type)) {
    entry->key_order =
        (uint64_t)signed_key(key->type, entry->key_value) ^ (UINT64_C(1) << 63);
  } else if (key->type == FIELD_TYPE(UINT32) ||
             key->type == FIELD_TYPE(FIXED32)) {
    entry->key_order = (uint32_t)entry->key_value;
  } else {
    entry->key_order = entry->key_value;
  }
  count = find_run(&fields, 2, &run);
  int rv = 0;
  if (is_message(value->type)) {
    const uint8_t *data;
    size_t len;
    rv = merged_message(ctx, value, run, count, SIZE_MAX, &data, &len,
                        &entry->owned);
    entry->has_value = last_fitting(value, run, count) != NULL;
    entry->value.data = data;
    entry->value.len = len;
  } else {
    const record *found = last_fitting(value, run, count);
    entry->has_value = found != NULL;
    if (found != NULL) {
      entry->value = *found;
    }
  }
  free(fields.items);
  return rv;
}

/* Writes a map: its entries sorted by key, the last of equal keys kept.
 * value may be a well-known type's field (Struct). */
static int write_map(context *ctx, const char *entry_type,
                     const field_info *key, const field_info *value,
                     const record *run, size_t count) {
  map_entry *entries = calloc(count + 1, sizeof(*entries));
  if (entries == NULL) {
    return fail_no_memory(ctx);
  }
  size_t n = 0;
  for (size_t i = 0; i < count; i++) {
    if (run[i].wire_type != WIRE_LEN) {
      continue;
    }
    entries[n].index = n;
    if (read_entry(ctx, entry_type, key, value, &run[i], &entries[n]) != 0) {
      free_entries(entries, n + 1);
      return -1;
    }
    n++;
  }
  qsort(entries, n, sizeof(*entries), compare_entries);
  bool first = true;
  open_container(ctx, '{');
  for (size_t i = 0; i < n; i++) {
    if (i + 1 < n && same_key(&entries[i], &entries[i + 1])) {
      continue; /* a later entry of the same key wins */
    }
    const map_entry *entry = &entries[i];
    char number[32];
    const char *text = number;
    size_t text_len;
    if (entry->string_key) {
      if (!utf8_valid(entry->key_data, entry->key_len)) {
        free_entries(entries, n);
        return fail(ctx, "map key is not valid UTF-8");
      }
      begin_item(ctx, &first);
      if (emit_string(ctx, entry->key_data, entry->key_len) != 0) {
        free_entries(entries, n);
        return -1;
      }
      emit(ctx, ctx->options.indent > 0 ? ": " : ":",
           ctx->options.indent > 0 ? 2 : 1);
      text = (const char *)entry->key_data;
      text_len = entry->key_len;
    } else {
      key_text(key->type, entry->key_value, number, sizeof(number));
      text_len = strlen(number);
      if (begin_member(ctx, &first, number) != 0) {
        free_entries(entries, n);
        return -1;
      }
    }
    size_t saved = push_key(ctx, text, text_len);
    int rv;
    if (is_message(value->type)) {
      rv = write_message(ctx, &value->message, entry->value.data,
                         entry->value.len);
    } else if (entry->has_value) {
      rv = write_scalar(ctx, value, entry->value.value, entry->value.data,
                        entry->value.len);
    } else {
      rv = write_scalar(ctx, value, 0, NULL, 0);
    }
    pop_path(ctx, saved);
    if (rv != 0) {
      free_entries(entries, n);
      return -1;
    }
  }
  close_container(ctx, '}', first);
  free_entries(entries, n);
  return 0;
}

/* The output key of a field; *owned, when set, is to be freed. */
static const char *output_name(context *ctx, const field_type *field,
                               char **owned) {
  *owned = NULL;
  if (ctx->options.proto_names) {
    return field_name(field);
  }
  if (field->json_name != NULL) {
    return field->json_name;
  }
  *owned = json_name_of(field);
  return *owned;
}

/* The value a field without presence shows by default. */
static int write_default(context *ctx, const field_info *fi) {
  if (fi->is_map) {
    emit_text(ctx, "{}");
    return 0;
  }
  if (fi->repeated) {
    emit_text(ctx, "[]");
    return 0;
  }
  return write_scalar(ctx, fi, 0, (const uint8_t *)"", 0);
}

/* Per message: what the oneofs resolved to. */
typedef struct oneof_state {
  size_t winner; /* field index; SIZE_MAX: none */
  size_t last;   /* the winner's last position */
  size_t cutoff; /* the others' last position; SIZE_MAX: none */
} oneof_state;

typedef struct member_state {
  field_info *infos; /* per field; resolved when present */
  bool *resolved;
  size_t *last; /* last fitting position, SIZE_MAX: none */
  oneof_state *oneofs;
} member_state;

static void free_member_state(member_state *state) {
  free(state->infos);
  free(state->resolved);
  free(state->last);
  free(state->oneofs);
}

static int oneof_of(const message_type *m, const field_type *field) {
  if (!field->has_oneof_index || field->oneof_index < 0 ||
      (size_t)field->oneof_index >= m->n_oneof_decl) {
    return -1;
  }
  return field->oneof_index;
}

/* Resolves the fields present on the wire and settles the oneofs. */
static int settle_fields(context *ctx, const type_ref *type,
                         const record_list *records, member_state *state) {
  const message_type *m = type->message;
  size_t n = m->n_field;
  state->infos = calloc(n + 1, sizeof(*state->infos));
  state->resolved = calloc(n + 1, sizeof(*state->resolved));
  state->last = calloc(n + 1, sizeof(*state->last));
  state->oneofs = calloc(m->n_oneof_decl + 1, sizeof(*state->oneofs));
  if (state->infos == NULL || state->resolved == NULL || state->last == NULL ||
      state->oneofs == NULL) {
    return fail_no_memory(ctx);
  }
  for (size_t o = 0; o < m->n_oneof_decl; o++) {
    state->oneofs[o] = (oneof_state){SIZE_MAX, 0, SIZE_MAX};
  }
  for (size_t i = 0; i < n; i++) {
    state->last[i] = SIZE_MAX;
    if (m->field[i]->number <= 0) {
      continue;
    }
    const record *run = NULL;
    size_t count = find_run(records, (uint32_t)m->field[i]->number, &run);
    if (count == 0) {
      continue;
    }
    if (resolve_field(ctx, type, m->field[i], &state->infos[i]) != 0) {
      return -1;
    }
    state->resolved[i] = true;
    const record *last = last_present(&state->infos[i], run, count);
    if (last == NULL) {
      continue;
    }
    state->last[i] = last->position;
    int oneof = oneof_of(m, m->field[i]);
    if (oneof < 0) {
      continue;
    }
    oneof_state *o = &state->oneofs[oneof];
    if (o->winner == SIZE_MAX || last->position > o->last) {
      if (o->winner != SIZE_MAX) {
        o->cutoff = o->last;
      }
      o->winner = i;
      o->last = last->position;
    } else if (o->cutoff == SIZE_MAX || last->position > o->cutoff) {
      o->cutoff = last->position;
    }
  }
  return 0;
}

/* Writes one field present on the wire (or its default). */
static int write_field(context *ctx, const type_ref *type, member_state *state,
                       const record_list *records, size_t i, bool *first) {
  const message_type *m = type->message;
  const field_type *field = m->field[i];
  const record *run = NULL;
  size_t count =
      field->number > 0 ? find_run(records, (uint32_t)field->number, &run) : 0;
  field_info *fi = &state->infos[i];
  int oneof = oneof_of(m, field);
  size_t cutoff = SIZE_MAX;
  if (state->last[i] == SIZE_MAX) {
    if (!ctx->options.emit_defaults) {
      return 0;
    }
    if (!state->resolved[i]) {
      if (resolve_field(ctx, type, field, fi) != 0) {
        return -1;
      }
      state->resolved[i] = true;
    }
    if (fi->presence) {
      return 0;
    }
    count = 0;
  } else if (oneof >= 0) {
    if (state->oneofs[oneof].winner != i) {
      return 0;
    }
    cutoff = state->oneofs[oneof].cutoff;
  }
  const record *last = count > 0 ? last_fitting(fi, run, count) : NULL;
  if (!fi->repeated && !is_message(fi->type) && !fi->presence && last != NULL &&
      is_default_value(fi, last) && !ctx->options.emit_defaults) {
    return 0;
  }
  char *owned_name;
  const char *name = output_name(ctx, field, &owned_name);
  if (name == NULL) {
    return fail_no_memory(ctx);
  }
  size_t saved = push_key(ctx, name, strlen(name));
  int rv = begin_member(ctx, first, name);
  free(owned_name);
  if (rv != 0) {
    return -1;
  }
  if (last == NULL) {
    rv = write_default(ctx, fi);
  } else if (fi->is_map) {
    field_info key, value;
    rv = resolve_map_entry(ctx, fi, &key, &value);
    if (rv == 0) {
      rv = write_map(ctx, fi->message.name, &key, &value, run, count);
    }
  } else if (fi->repeated) {
    rv = write_list(ctx, fi, run, count);
  } else if (is_message(fi->type)) {
    const uint8_t *data;
    size_t len;
    uint8_t *owned;
    rv = merged_message(ctx, fi, run, count, cutoff, &data, &len, &owned);
    if (rv == 0) {
      rv = write_message(ctx, &fi->message, data, len);
    }
    free(owned);
  } else {
    rv = write_value(ctx, fi, last);
  }
  pop_path(ctx, saved);
  return rv;
}

/* Writes the members of an ordinary message (no braces). */
static int write_members(context *ctx, const type_ref *type,
                         const uint8_t *data, size_t size, bool *first) {
  record_list records;
  member_state state = {0};
  int rv = scan_message(ctx, type->name, data, size, &records);
  if (rv == 0) {
    rv = settle_fields(ctx, type, &records, &state);
  }
  for (size_t i = 0; rv == 0 && i < type->message->n_field; i++) {
    rv = write_field(ctx, type, &state, &records, i, first);
  }
  free_member_state(&state);
  free(records.items);
  return rv;
}

/* Reads the last fitting varint or fixed value of a field. */
static bool scalar_of(const record_list *records, uint32_t number, int type,
                      uint64_t *value) {
  field_info fi = plain_field(number, type);
  const record *run;
  size_t count = find_run(records, number, &run);
  const record *last = last_fitting(&fi, run, count);
  *value = last != NULL ? last->value : 0;
  return last != NULL;
}

/* civil_from_days and days_from_civil: Howard Hinnant's algorithms for
 * the proleptic Gregorian calendar. */
static void civil_from_days(int64_t days, int64_t *year, unsigned *month,
                            unsigned *day) {
  days += 719468;
  int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  unsigned day_of_era = (unsigned)(days - era * 146097);
  unsigned year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 -
                          day_of_era / 146096) /
                         365;
  unsigned day_of_year =
      day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  unsigned mp = (5 * day_of_year + 2) / 153;
  *day = day_of_year - (153 * mp + 2) / 5 + 1;
  *month = mp < 10 ? mp + 3 : mp - 9;
  *year = (int64_t)year_of_era + era * 400 + (*month <= 2);
}

static int64_t days_from_civil(int64_t year, unsigned month, unsigned day) {
  year -= month <= 2;
  int64_t era = (year >= 0 ? year : year - 399) / 400;
  unsigned year_of_era = (unsigned)(year - era * 400);
  unsigned day_of_year =
      (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  unsigned day_of_era =
      year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + (int64_t)day_of_era - 719468;
}

/* ".5" style fractions: 0, 3, 6 or 9 digits, as the mapping asks. */
static void format_nanos(int32_t nanos, char *buf, size_t size) {
  if (nanos == 0) {
    buf[0] = '\0';
  } else if (nanos % 1000000 == 0) {
    snprintf(buf, size, ".%03" PRId32, nanos / 1000000);
  } else if (nanos % 1000 == 0) {
    snprintf(buf, size, ".%06" PRId32, nanos / 1000);
  } else {
    snprintf(buf, size, ".%09" PRId32, nanos);
  }
}

static int write_timestamp(context *ctx, const record_list *records) {
  uint64_t seconds_bits, nanos_bits;
  (void)scalar_of(records, 1, FIELD_TYPE(INT64), &seconds_bits);
  (void)scalar_of(records, 2, FIELD_TYPE(INT32), &nanos_bits);
  int64_t seconds = (int64_t)seconds_bits;
  int32_t nanos = (int32_t)(uint32_t)nanos_bits;
  if (seconds < TIMESTAMP_MIN_SECONDS || seconds > TIMESTAMP_MAX_SECONDS ||
      nanos < 0 || nanos >= NANOS_PER_SECOND) {
    return fail(ctx,
                "Timestamp %" PRId64 "s %" PRId32
                "ns is outside 0001-01-01 to 9999-12-31",
                seconds, nanos);
  }
  int64_t days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400;
  int64_t rest = seconds - days * 86400;
  int64_t year;
  unsigned month, day;
  civil_from_days(days, &year, &month, &day);
  char fraction[16];
  format_nanos(nanos, fraction, sizeof(fraction));
  emit_format(ctx, "\"%04" PRId64 "-%02u-%02uT%02u:%02u:%02u%sZ\"", year, month,
              day, (unsigned)(rest / 3600), (unsigned)(rest / 60 % 60),
              (unsigned)(rest % 60), fraction);
  return 0;
}

static int write_duration(context *ctx, const record_list *records) {
  uint64_t seconds_bits, nanos_bits;
  (void)scalar_of(records, 1, FIELD_TYPE(INT64), &seconds_bits);
  (void)scalar_of(records, 2, FIELD_TYPE(INT32), &nanos_bits);
  int64_t seconds = (int64_t)seconds_bits;
  int32_t nanos = (int32_t)(uint32_t)nanos_bits;
  if (seconds < -DURATION_MAX_SECONDS || seconds > DURATION_MAX_SECONDS ||
      nanos <= -NANOS_PER_SECOND || nanos >= NANOS_PER_SECOND ||
      (seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0)) {
    return fail(ctx, "Duration %" PRId64 "s %" PRId32 "ns is out of range",
                seconds, nanos);
  }
  bool negative = seconds < 0 || nanos < 0;
  char fraction[16];
  format_nanos(negative ? -nanos : nanos, fraction, sizeof(fraction));
  emit_format(ctx, "\"%s%" PRId64 "%ss\"", negative ? "-" : "",
              negative ? -seconds : seconds, fraction);
  return 0;
}

/* FieldMask: the paths in lowerCamelCase, joined by commas. */
static int write_field_mask(context *ctx, const record_list *records) {
  const record *run;
  size_t count = find_run(records, 1, &run);
  rpc_buffer joined;
  rpc_buffer_init(&joined);
  bool first = true;
  for (size_t i = 0; i < count; i++) {
    if (run[i].wire_type != WIRE_LEN) {
      continue;
    }
    if (!first && rpc_buffer_append(&joined, ",", 1) != 0) {
      rpc_buffer_free(&joined);
      return fail_no_memory(ctx);
    }
    first = false;
    const uint8_t *path = run[i].data;
    for (size_t k = 0; k < run[i].len; k++) {
      char c = (char)path[k];
      if (c == '_' && k + 1 < run[i].len && path[k + 1] >= 'a' &&
          path[k + 1] <= 'z') {
        c = (char)(path[++k] - 'a' + 'A');
      } else if (c == '_' || (c >= 'A' && c <= 'Z')) {
        rpc_buffer_free(&joined);
        return fail(ctx, "FieldMask path \"%.*s\" has no lowerCamelCase form",
                    (int)(run[i].len > 64 ? 64 : run[i].len),
                    (const char *)path);
      }
      if (rpc_buffer_append(&joined, &c, 1) != 0) {
        rpc_buffer_free(&joined);
        return fail_no_memory(ctx);
      }
    }
  }
  int rv = emit_string(
      ctx, joined.data != NULL ? joined.data : (const uint8_t *)"", joined.len);
  rpc_buffer_free(&joined);
  return rv;
}

static int write_struct(context *ctx, const uint8_t *data, size_t size);
static int write_list_value(context *ctx, const uint8_t *data, size_t size);

/* google.protobuf.Value: its kind, the last one set; none is null. */
static int write_struct_value(context *ctx, const record_list *records) {
  static const uint8_t wire_types[7] = {
      0, WIRE_VARINT, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT, WIRE_LEN, WIRE_LEN};
  const record *chosen = NULL;
  size_t cutoff = SIZE_MAX;
  for (uint32_t number = 1; number <= 6; number++) {
    const record *run;
    size_t count = find_run(records, number, &run);
    for (size_t i = count; i > 0; i--) {
      if (run[i - 1].wire_type != wire_types[number]) {
        continue;
      }
      if (chosen == NULL || run[i - 1].position > chosen->position) {
        if (chosen != NULL) {
          cutoff = chosen->position;
        }
        chosen = &run[i - 1];
      } else if (cutoff == SIZE_MAX || run[i - 1].position > cutoff) {
        cutoff = run[i - 1].position;
      }
      break;
    }
  }
  if (chosen == NULL || chosen->number == 1) {
    emit_text(ctx, "null");
    return 0;
  }
  switch (chosen->number) {
  case 2: {
    double number = double_of_bits(chosen->value);
    if (!isfinite(number)) {
      return fail(ctx, "a Value cannot hold %s in JSON",
                  isnan(number) ? "NaN" : "an infinity");
    }
    emit_double(ctx, number, false);
    return 0;
  }
  case 3:
    return emit_string(ctx, chosen->data, chosen->len);
  case 4:
    emit_text(ctx, chosen->value != 0 ? "true" : "false");
    return 0;
  default: {
    field_info fi = plain_field(chosen->number, FIELD_TYPE(MESSAGE));
    const record *run;
    size_t count = find_run(records, chosen->number, &run);
    const uint8_t *data;
    size_t len;
    uint8_t *owned;
    int rv = merged_message(ctx, &fi, run, count, cutoff, &data, &len, &owned);
    if (rv == 0) {
      if (enter(ctx) != 0) {
        rv = -1;
      } else {
        rv = chosen->number == 5 ? write_struct(ctx, data, len)
                                 : write_list_value(ctx, data, len);
        leave(ctx);
      }
    }
    free(owned);
    return rv;
  }
  }
}

static int write_struct(context *ctx, const uint8_t *data, size_t size) {
  record_list records;
  int rv = scan_message(ctx, "google.protobuf.Struct", data, size, &records);
  if (rv == 0) {
    field_info key = plain_field(1, FIELD_TYPE(STRING));
    field_info value = value_field(2);
    const record *run;
    size_t count = find_run(&records, 1, &run);
    rv = write_map(ctx, "google.protobuf.Struct.FieldsEntry", &key, &value, run,
                   count);
  }
  free(records.items);
  return rv;
}

static int write_list_value(context *ctx, const uint8_t *data, size_t size) {
  record_list records;
  int rv = scan_message(ctx, "google.protobuf.ListValue", data, size, &records);
  if (rv == 0) {
    field_info values = value_field(1);
    values.repeated = true;
    const record *run;
    size_t count = find_run(&records, 1, &run);
    rv = write_list(ctx, &values, run, count);
  }
  free(records.items);
  return rv;
}

static int write_wrapper(context *ctx, const type_ref *type,
                         const record_list *records) {
  field_info fi = plain_field(1, type->wrapped);
  const record *run;
  size_t count = find_run(records, 1, &run);
  const record *last = last_fitting(&fi, run, count);
  if (last == NULL) {
    return write_scalar(ctx, &fi, 0, (const uint8_t *)"", 0);
  }
  return write_scalar(ctx, &fi, last->value, last->data, last->len);
}

/* The type name of a type URL: what follows its last '/'. */
static const char *type_of_url(const char *url, size_t len, char *buf,
                               size_t size) {
  size_t start = 0;
  for (size_t i = 0; i < len; i++) {
    if (url[i] == '/') {
      start = i + 1;
    }
  }
  if (len - start >= size || start == len) {
    return NULL;
  }
  memcpy(buf, url + start, len - start);
  buf[len - start] = '\0';
  return memchr(buf, '\0', len - start) == NULL ? buf : NULL;
}

static int write_any(context *ctx, const record_list *records) {
  field_info text = plain_field(1, FIELD_TYPE(STRING));
  const record *run;
  size_t count = find_run(records, 1, &run);
  const record *url = last_fitting(&text, run, count);
  count = find_run(records, 2, &run);
  const record *value = last_fitting(&text, run, count);
  if (url == NULL || url->len == 0) {
    if (value != NULL && value->len > 0) {
      return fail(ctx, "Any has a value but no type URL");
    }
    emit_text(ctx, "{}");
    return 0;
  }
  char name[512];
  type_ref inner;
  if (!utf8_valid(url->data, url->len)) {
    return fail(ctx, "Any type URL is not valid UTF-8");
  }
  if (type_of_url((const char *)url->data, url->len, name, sizeof(name)) ==
          NULL ||
      !find_message(ctx->pool, name, &inner)) {
    return fail(ctx, "Any type \"%.*s\" is not in the descriptor pool",
                (int)(url->len > 200 ? 200 : url->len),
                (const char *)url->data);
  }
  const uint8_t *data = value != NULL ? value->data : NULL;
  size_t len = value != NULL ? value->len : 0;
  bool first = true;
  open_container(ctx, '{');
  if (begin_member(ctx, &first, "@type") != 0 ||
      emit_string(ctx, url->data, url->len) != 0) {
    return -1;
  }
  int rv;
  if (inner.kind == WKT_NONE) {
    rv = write_members(ctx, &inner, data, len, &first);
  } else {
    rv = begin_member(ctx, &first, "value");
    if (rv == 0) {
      rv = write_message(ctx, &inner, data, len);
    }
  }
  close_container(ctx, '}', first);
  return rv;
}

/* Writes a message of type from its wire bytes. */
static int write_message(context *ctx, const type_ref *type,
                         const uint8_t *data, size_t size) {
  if (enter(ctx) != 0) {
    return -1;
  }
  int rv = 0;
  if (type->kind == WKT_NONE) {
    bool first = true;
    open_container(ctx, '{');
    rv = write_members(ctx, type, data, size, &first);
    close_container(ctx, '}', first);
  } else if (type->kind == WKT_STRUCT) {
    rv = write_struct(ctx, data, size);
  } else if (type->kind == WKT_LIST_VALUE) {
    rv = write_list_value(ctx, data, size);
  } else {
    record_list records;
    rv = scan_message(ctx, type->name, data, size, &records);
    if (rv == 0) {
      switch (type->kind) {
      case WKT_ANY:
        rv = write_any(ctx, &records);
        break;
      case WKT_DURATION:
        rv = write_duration(ctx, &records);
        break;
      case WKT_TIMESTAMP:
        rv = write_timestamp(ctx, &records);
        break;
      case WKT_FIELD_MASK:
        rv = write_field_mask(ctx, &records);
        break;
      case WKT_VALUE:
        rv = write_struct_value(ctx, &records);
        break;
      case WKT_WRAPPER:
        rv = write_wrapper(ctx, type, &records);
        break;
      default: /* WKT_EMPTY: unknown fields are skipped */
        emit_text(ctx, "{}");
        break;
      }
    }
    free(records.items);
  }
  leave(ctx);
  return rv;
}

static void init_context(context *ctx, const rpc_descriptor_pool *pool,
                         rpc_buffer *out, char *err, size_t err_size) {
  memset(ctx, 0, sizeof(*ctx));
  ctx->pool = pool;
  ctx->out = out;
  ctx->err = err;
  ctx->err_size = err_size;
  if (err != NULL && err_size > 0) {
    err[0] = '\0';
  }
}

int rpc_json_from_wire(const rpc_descriptor_pool *pool, const char *type,
                       const uint8_t *data, size_t size,
                       const rpc_json_options *options, rpc_buffer *out,
                       char *err, size_t err_size) {
  context ctx;
  init_context(&ctx, pool, out, err, err_size);
  if (options != NULL) {
    ctx.options = *options;
  }
  if (ctx.options.indent > RPC_JSON_MAX_INDENT) {
    ctx.options.indent = RPC_JSON_MAX_INDENT;
  }
  size_t start = out->len;
  type_ref ref;
  int rv = resolve_message(&ctx, type, &ref);
  if (rv == 0) {
    rv = write_message(&ctx, &ref, data != NULL ? data : (const uint8_t *)"",
                       size);
  }
  if (rv == 0 && ctx.out_of_memory) {
    rv = fail_no_memory(&ctx);
  }
  if (rv != 0) {
    out->len = start;
    return -1;
  }
  return 0;
}

/* ---- JSON -> wire ---- */

static const char *json_kind(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "an object";
  case JSON_ARRAY:
    return "an array";
  case JSON_STRING:
    return "a string";
  case JSON_INTEGER:
  case JSON_REAL:
    return "a number";
  case JSON_TRUE:
  case JSON_FALSE:
    return "a boolean";
  default:
    return "null";
  }
}

static const char *type_label(int type) {
  static const char *const labels[] = {
      "?",        "double",   "float",   "int64",  "uint64",
      "int32",    "fixed64",  "fixed32", "bool",   "string",
      "group",    "message",  "bytes",   "uint32", "enum",
      "sfixed32", "sfixed64", "sint32",  "sint64"};
  return type >= 1 && type <= 18 ? labels[type] : labels[0];
}

static int put(context *ctx, const void *data, size_t len) {
  if (len > 0 && rpc_buffer_append(ctx->out, data, len) != 0) {
    return fail_no_memory(ctx);
  }
  return 0;
}

static size_t encode_varint(uint64_t value, uint8_t *buf) {
  size_t n = 0;
  while (value >= 0x80) {
    buf[n++] = (uint8_t)(value | 0x80);
    value >>= 7;
  }
  buf[n++] = (uint8_t)value;
  return n;
}

static int put_varint(context *ctx, uint64_t value) {
  uint8_t buf[10];
  return put(ctx, buf, encode_varint(value, buf));
}

static int put_tag(context *ctx, uint32_t number, uint8_t wire_type) {
  return put_varint(ctx, (uint64_t)number << 3 | wire_type);
}

static int put_fixed(context *ctx, uint64_t value, size_t width) {
  uint8_t buf[8];
  for (size_t i = 0; i < width; i++) {
    buf[i] = (uint8_t)(value >> (8 * i));
  }
  return put(ctx, buf, width);
}

static int put_string(context *ctx, uint32_t number, const char *text,
                      size_t len) {
  if (put_tag(ctx, number, WIRE_LEN) != 0 || put_varint(ctx, len) != 0) {
    return -1;
  }
  return put(ctx, text, len);
}

/* Length-delimited contents are written in place: note begin_len before,
 * and end_len inserts their length in front. */
static size_t begin_len(context *ctx) { return ctx->out->len; }

static int end_len(context *ctx, size_t start) {
  size_t len = ctx->out->len - start;
  uint8_t prefix[10];
  size_t n = encode_varint(len, prefix);
  if (rpc_buffer_reserve(ctx->out, n) != 0) {
    return fail_no_memory(ctx);
  }
  memmove(ctx->out->data + start + n, ctx->out->data + start, len);
  memcpy(ctx->out->data + start, prefix, n);
  ctx->out->len += n;
  return 0;
}

/* Every real of the tree, in document order (jansson keeps objects in
 * insertion order), to be matched with the number tokens of the text. */
static int walk_numbers(context *ctx, size_t *cap, const json_t *v) {
  if (json_is_real(v)) {
    if (ctx->number_count == *cap) {
      size_t grown_cap = *cap ? *cap * 2 : 32;
      number_token *grown = realloc(ctx->numbers, grown_cap * sizeof(*grown));
      if (grown == NULL) {
        return fail_no_memory(ctx);
      }
      ctx->numbers = grown;
      *cap = grown_cap;
    }
    ctx->numbers[ctx->number_count++] = (number_token){v, NULL, 0};
  } else if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++) {
      if (walk_numbers(ctx, cap, json_array_get(v, i)) != 0) {
        return -1;
      }
    }
  } else if (json_is_object(v)) {
    json_t *object = (json_t *)v;
    for (void *it = json_object_iter(object); it != NULL;
         it = json_object_iter_next(object, it)) {
      if (walk_numbers(ctx, cap, json_object_iter_value(it)) != 0) {
        return -1;
      }
    }
  }
  return 0;
}

static int compare_tokens(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)((const number_token *)a)->node;
  uintptr_t y = (uintptr_t)((const number_token *)b)->node;
  return x < y ? -1 : x > y;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool in_number(char c) {
  return is_digit(c) || c == '-' || c == '+' || c == '.' || c == 'e' ||
         c == 'E';
}

/* Pairs each parsed number with its text: jansson keeps none, and a
 * 64-bit integer must not pass through a double. */
static int index_numbers(context *ctx, const json_t *root, const char *text,
                         size_t len) {
  size_t cap = 0;
  if (walk_numbers(ctx, &cap, root) != 0) {
    return -1;
  }
  size_t found = 0;
  for (size_t i = 0; i < len;) {
    if (text[i] == '"') {
      for (i++; i < len && text[i] != '"'; i++) {
        if (text[i] == '\\') {
          i++;
        }
      }
      i++;
    } else if (text[i] == '-' || is_digit(text[i])) {
      size_t start = i;
      while (i < len && in_number(text[i])) {
        i++;
      }
      if (found < ctx->number_count) {
        ctx->numbers[found].text = text + start;
        ctx->numbers[found].len = i - start;
      }
      found++;
    } else {
      i++;
    }
  }
  if (found != ctx->number_count) {
    return fail(ctx, "internal error: %zu numbers in the text, %zu parsed",
                found, ctx->number_count);
  }
  if (ctx->number_count > 1) {
    qsort(ctx->numbers, ctx->number_count, sizeof(number_token),
          compare_tokens);
  }
  return 0;
}

static const number_token *number_text(const context *ctx, const json_t *v) {
  number_token key = {v, NULL, 0};
  if (ctx->number_count == 0) {
    return NULL;
  }
  return bsearch(&key, ctx->numbers, ctx->number_count, sizeof(number_token),
                 compare_tokens);
}

typedef enum number_problem {
  NUMBER_OK,
  NUMBER_SYNTAX,   /* not a JSON number */
  NUMBER_FRACTION, /* not an integer */
  NUMBER_RANGE,    /* magnitude beyond 2^64 - 1 */
} number_problem;

/* The k-th digit of a number's integer digits then fraction digits. */
static int digit_at(const char *s, size_t int_start, size_t int_count,
                    size_t frac_start, size_t k) {
  return (k < int_count ? s[int_start + k] : s[frac_start + k - int_count]) -
         '0';
}

/* Parses JSON number text s[0..len) as an exact integer: "1e3" and
 * "100.0" are integers, "1.5" is not. */
static number_problem parse_integer(const char *s, size_t len, bool *negative,
                                    uint64_t *magnitude) {
  size_t i = 0;
  *negative = false;
  *magnitude = 0;
  if (i < len && s[i] == '-') {
    *negative = true;
    i++;
  }
  size_t int_start = i;
  if (i < len && s[i] == '0') {
    i++;
  } else if (i < len && s[i] >= '1' && s[i] <= '9') {
    while (i < len && is_digit(s[i])) {
      i++;
    }
  } else {
    return NUMBER_SYNTAX;
  }
  size_t int_count = i - int_start;
  size_t frac_start = i, frac_count = 0;
  if (i < len && s[i] == '.') {
    frac_start = ++i;
    while (i < len && is_digit(s[i])) {
      i++;
    }
    frac_count = i - frac_start;
    if (frac_count == 0) {
      return NUMBER_SYNTAX;
    }
  }
  int64_t exponent = 0;
  if (i < len && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    bool negative_exponent = false;
    if (i < len && (s[i] == '+' || s[i] == '-')) {
      negative_exponent = s[i] == '-';
      i++;
    }
    size_t exponent_start = i;
    while (i < len && is_digit(s[i])) {
      if (exponent < 100000) {
        exponent = exponent * 10 + (s[i] - '0');
      }
      i++;
    }
    if (i == exponent_start) {
      return NUMBER_SYNTAX;
    }
    if (negative_exponent) {
      exponent = -exponent;
    }
  }
  if (i != len) {
    return NUMBER_SYNTAX;
  }
  size_t total = int_count + frac_count;
  size_t first = 0;
  while (first < total &&
         digit_at(s, int_start, int_count, frac_start, first) == 0) {
    first++;
  }
  if (first == total) {
    return NUMBER_OK; /* zero */
  }
  size_t end = total;
  int64_t scale = exponent - (int64_t)frac_count;
  while (scale < 0 && end > first &&
         digit_at(s, int_start, int_count, frac_start, end - 1) == 0) {
    end--;
    scale++;
  }
  if (scale < 0) {
    return NUMBER_FRACTION;
  }
  if ((int64_t)(end - first) + scale > 20) {
    return NUMBER_RANGE;
  }
  uint64_t value = 0;
  for (size_t k = first; k < end; k++) {
    uint64_t d = (uint64_t)digit_at(s, int_start, int_count, frac_start, k);
    if (value > (UINT64_MAX - d) / 10) {
      return NUMBER_RANGE;
    }
    value = value * 10 + d;
  }
  for (int64_t k = 0; k < scale; k++) {
    if (value > UINT64_MAX / 10) {
      return NUMBER_RANGE;
    }
    value *= 10;
  }
  *magnitude = value;
  return NUMBER_OK;
}

static bool fits(int type, bool negative, uint64_t magnitude) {
  switch (type) {
  case FIELD_TYPE(INT32):
  case FIELD_TYPE(SINT32):
  case FIELD_TYPE(SFIXED32):
  case FIELD_TYPE(ENUM):
    return magnitude <= (negative ? UINT64_C(2147483648) : INT32_MAX);
  case FIELD_TYPE(INT64):
  case FIELD_TYPE(SINT64):
  case FIELD_TYPE(SFIXED64):
    return magnitude <= (negative ? UINT64_C(1) << 63 : (uint64_t)INT64_MAX);
  case FIELD_TYPE(UINT32):
  case FIELD_TYPE(FIXED32):
    return (!negative || magnitude == 0) && magnitude <= UINT32_MAX;
  default: /* UINT64, FIXED64 */
    return !negative || magnitude == 0;
  }
}

/* The wire value of an integer of type (varint as written, fixed-width in
 * the low bits). */
static uint64_t integer_bits(int type, bool negative, uint64_t magnitude) {
  uint64_t twos = negative ? 0 - magnitude : magnitude;
  if (type == FIELD_TYPE(SINT32)) {
    int32_t n = (int32_t)(int64_t)twos;
    return (uint64_t)(((uint32_t)n << 1) ^ (uint32_t)(n >> 31));
  }
  if (type == FIELD_TYPE(SINT64)) {
    int64_t n = (int64_t)twos;
    return ((uint64_t)n << 1) ^ (uint64_t)(n >> 63);
  }
  return twos;
}

/* Parses text as an integer of type into its wire value. */
static int integer_of_text(context *ctx, int type, const char *text, size_t len,
                           uint64_t *bits) {
  bool negative;
  uint64_t magnitude;
  int shown = len > 64 ? 64 : (int)len;
  switch (parse_integer(text, len, &negative, &magnitude)) {
  case NUMBER_SYNTAX:
    return fail(ctx, "\"%.*s\" is not a number", shown, text);
  case NUMBER_FRACTION:
    return fail(ctx, "%.*s is not an integer", shown, text);
  case NUMBER_RANGE:
    return fail(ctx, "%.*s is out of range for %s", shown, text,
                type_label(type));
  default:
    break;
  }
  if (!fits(type, negative, magnitude)) {
    return fail(ctx, "%.*s is out of range for %s", shown, text,
                type_label(type));
  }
  *bits = integer_bits(type, negative, magnitude);
  return 0;
}

/* An integer field: a JSON number or a string holding one. */
static int integer_value(context *ctx, int type, const json_t *v,
                         uint64_t *bits) {
  if (json_is_string(v)) {
    return integer_of_text(ctx, type, json_string_value(v),
                           json_string_length(v), bits);
  }
  if (!json_is_real(v)) {
    return fail(ctx, "expected a number for %s, got %s", type_label(type),
                json_kind(v));
  }
  const number_token *token = number_text(ctx, v);
  if (token == NULL) {
    return fail(ctx, "internal error: a number without its text");
  }
  return integer_of_text(ctx, type, token->text, token->len, bits);
}

/* Reads a float straight from its decimal text: through a double it
 * could round twice. */
static int float_of_text(context *ctx, const char *text, size_t len,
                         float *value) {
  char small[64];
  char *copy = len < sizeof(small) ? small : malloc(len + 1);
  if (copy == NULL) {
    return fail_no_memory(ctx);
  }
  memcpy(copy, text, len);
  copy[len] = '\0';
  const char *point = localeconv()->decimal_point;
  char *dot = strchr(copy, '.');
  if (dot != NULL && point != NULL && point[0] != '\0' && point[1] == '\0') {
    *dot = point[0];
  }
  *value = strtof(copy, NULL);
  if (copy != small) {
    free(copy);
  }
  return 0;
}

/* A float or double: a number, or a string holding one or "NaN",
 * "Infinity", "-Infinity". */
static int real_value(context *ctx, int type, const json_t *v, uint64_t *bits) {
  double value;
  const char *text = NULL; /* a finite number's text */
  size_t len = 0;
  if (json_is_real(v)) {
    value = json_real_value(v);
    const number_token *token = number_text(ctx, v);
    if (token == NULL) {
      return fail(ctx, "internal error: a number without its text");
    }
    text = token->text;
    len = token->len;
  } else if (json_is_string(v)) {
    const char *string = json_string_value(v);
    size_t string_len = json_string_length(v);
    bool negative;
    uint64_t magnitude;
    if (equals("NaN", string, string_len)) {
      value = NAN;
    } else if (equals("Infinity", string, string_len)) {
      value = INFINITY;
    } else if (equals("-Infinity", string, string_len)) {
      value = -INFINITY;
    } else if (parse_integer(string, string_len, &negative, &magnitude) ==
               NUMBER_SYNTAX) {
      return fail(ctx, "\"%.*s\" is not a number",
                  string_len > 64 ? 64 : (int)string_len, string);
    } else {
      text = string;
      len = string_len;
      /* jansson reads the number, whatever the locale's decimal point. */
      json_error_t error;
      json_t *number =
          json_loadb(string, string_len,
                     JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &error);
      if (number == NULL || !json_is_real(number)) {
        json_decref(number);
        return fail(ctx, "%.*s is out of range for %s",
                    len > 64 ? 64 : (int)len, text, type_label(type));
      }
      value = json_real_value(number);
      json_decref(number);
    }
  } else {
    return fail(ctx, "expected a number for %s, got %s", type_label(type),
                json_kind(v));
  }
  if (type == FIELD_TYPE(DOUBLE)) {
    memcpy(bits, &value, sizeof(value));
    return 0;
  }
  float single = (float)value; /* NaN and the infinities */
  if (text != NULL) {
    if (float_of_text(ctx, text, len, &single) != 0) {
      return -1;
    }
    if (isinf(single)) {
      return fail(ctx, "%.*s is out of range for float",
                  len > 64 ? 64 : (int)len, text);
    }
  }
  uint32_t single_bits;
  memcpy(&single_bits, &single, sizeof(single));
  *bits = single_bits;
  return 0;
}

static int enum_value(context *ctx, const field_info *fi, const json_t *v,
                      uint64_t *bits) {
  if (fi->null_value) {
    if (json_is_null(v) ||
        (json_is_string(v) &&
         equals("NULL_VALUE", json_string_value(v), json_string_length(v))) ||
        (json_is_real(v) && json_real_value(v) == 0)) {
      *bits = 0;
      return 0;
    }
    return fail(ctx, "expected null for %s, got %s", NULL_VALUE_TYPE,
                json_kind(v));
  }
  const enum_type *e = fi->enumeration;
  const char *enum_name_text = without_dot(fi->field->type_name);
  if (json_is_string(v)) {
    const char *name = json_string_value(v);
    size_t len = json_string_length(v);
    for (size_t i = 0; i < e->n_value; i++) {
      if (e->value[i]->name != NULL && equals(e->value[i]->name, name, len)) {
        *bits = (uint64_t)(int64_t)e->value[i]->number;
        return 0;
      }
    }
    return fail(ctx, "unknown value \"%.*s\" for enum %s",
                len > 64 ? 64 : (int)len, name, enum_name_text);
  }
  if (!json_is_real(v)) {
    return fail(ctx, "expected a name or number for enum %s, got %s",
                enum_name_text, json_kind(v));
  }
  if (integer_value(ctx, FIELD_TYPE(ENUM), v, bits) != 0) {
    return -1;
  }
  int32_t number = (int32_t)(int64_t)*bits;
  if (fi->closed_enum && enum_name(e, number) == NULL) {
    return fail(ctx, "%" PRId32 " is not a value of enum %s", number,
                enum_name_text);
  }
  return 0;
}

/* A scalar parsed from JSON: the wire value, or the text of a string or
 * of base64 bytes. */
typedef struct scalar {
  uint64_t bits;
  const char *text;
  size_t len;
} scalar;

static int parse_scalar(context *ctx, const field_info *fi, const json_t *v,
                        scalar *out) {
  memset(out, 0, sizeof(*out));
  switch (fi->type) {
  case FIELD_TYPE(DOUBLE):
  case FIELD_TYPE(FLOAT):
    return real_value(ctx, fi->type, v, &out->bits);
  case FIELD_TYPE(BOOL):
    if (!json_is_boolean(v)) {
      return fail(ctx, "expected true or false, got %s", json_kind(v));
    }
    out->bits = json_is_true(v);
    return 0;
  case FIELD_TYPE(STRING):
  case FIELD_TYPE(BYTES):
    if (!json_is_string(v)) {
      return fail(ctx, "expected a %sstring, got %s",
                  fi->type == FIELD_TYPE(BYTES) ? "base64 " : "", json_kind(v));
    }
    out->text = json_string_value(v);
    out->len = json_string_length(v);
    return 0;
  case FIELD_TYPE(ENUM):
    return enum_value(ctx, fi, v, &out->bits);
  default:
    return integer_value(ctx, fi->type, v, &out->bits);
  }
}

static bool scalar_is_default(const field_info *fi, const scalar *s) {
  if (fi->type == FIELD_TYPE(STRING) || fi->type == FIELD_TYPE(BYTES)) {
    return s->len == 0;
  }
  return s->bits == 0;
}

/* Writes a scalar's value (without its tag). */
static int put_scalar(context *ctx, const field_info *fi, const scalar *s) {
  switch (wire_type_of(fi->type)) {
  case WIRE_FIXED32:
    return put_fixed(ctx, s->bits, 4);
  case WIRE_FIXED64:
    return put_fixed(ctx, s->bits, 8);
  case WIRE_LEN:
    if (fi->type == FIELD_TYPE(STRING)) {
      if (put_varint(ctx, s->len) != 0) {
        return -1;
      }
      return put(ctx, s->text, s->len);
    } else {
      size_t start = begin_len(ctx);
      if (rpc_base64_decode(s->text, s->len, ctx->out) != 0) {
        return fail(ctx, "\"%.*s\" is not valid base64",
                    s->len > 64 ? 64 : (int)s->len, s->text);
      }
      return end_len(ctx, start);
    }
  default:
    return put_varint(ctx, s->bits);
  }
}

static int encode_message_value(context *ctx, const type_ref *type,
                                const json_t *v);

static bool field_takes_null(const field_info *fi) {
  return fi->null_value ||
         (is_message(fi->type) && fi->message.kind == WKT_VALUE);
}

/* Writes one value of fi with its tag. A default scalar without presence
 * is left out unless keep_default (list elements, map values). */
static int encode_single(context *ctx, const field_info *fi, const json_t *v,
                         bool keep_default) {
  if (is_message(fi->type)) {
    if (json_is_null(v) && fi->message.kind != WKT_VALUE) {
      return 0;
    }
    if (fi->type == FIELD_TYPE(GROUP)) {
      if (put_tag(ctx, fi->number, WIRE_START_GROUP) != 0 ||
          encode_message_value(ctx, &fi->message, v) != 0) {
        return -1;
      }
      return put_tag(ctx, fi->number, WIRE_END_GROUP);
    }
    if (put_tag(ctx, fi->number, WIRE_LEN) != 0) {
      return -1;
    }
    size_t start = begin_len(ctx);
    if (encode_message_value(ctx, &fi->message, v) != 0) {
      return -1;
    }
    return end_len(ctx, start);
  }
  scalar s;
  if (parse_scalar(ctx, fi, v, &s) != 0) {
    return -1;
  }
  if (!keep_default && !fi->presence && scalar_is_default(fi, &s)) {
    return 0;
  }
  if (put_tag(ctx, fi->number, wire_type_of(fi->type)) != 0) {
    return -1;
  }
  return put_scalar(ctx, fi, &s);
}

static int encode_list(context *ctx, const field_info *fi, const json_t *v) {
  if (!json_is_array(v)) {
    return fail(ctx, "expected an array for repeated field %s, got %s",
                field_name(fi->field), json_kind(v));
  }
  size_t count = json_array_size(v);
  if (count == 0) {
    return 0;
  }
  size_t start = 0;
  if (fi->packed) {
    if (put_tag(ctx, fi->number, WIRE_LEN) != 0) {
      return -1;
    }
    start = begin_len(ctx);
  }
  for (size_t i = 0; i < count; i++) {
    const json_t *element = json_array_get(v, i);
    size_t saved = push_index(ctx, i);
    int rv = 0;
    if (json_is_null(element) && !field_takes_null(fi)) {
      rv = fail(ctx, "null is not allowed in a repeated field");
    } else if (fi->packed) {
      scalar s;
      rv = parse_scalar(ctx, fi, element, &s);
      if (rv == 0) {
        rv = put_scalar(ctx, fi, &s);
      }
    } else {
      rv = encode_single(ctx, fi, element, true);
    }
    pop_path(ctx, saved);
    if (rv != 0) {
      return -1;
    }
  }
  return fi->packed ? end_len(ctx, start) : 0;
}

/* Parses a map key (always a JSON string) of the key field's type. */
static int parse_key(context *ctx, const field_info *key, const char *text,
                     size_t len, scalar *out) {
  memset(out, 0, sizeof(*out));
  if (key->type == FIELD_TYPE(STRING)) {
    out->text = text;
    out->len = len;
    return 0;
  }
  if (key->type == FIELD_TYPE(BOOL)) {
    if (equals("true", text, len)) {
      out->bits = 1;
      return 0;
    }
    if (equals("false", text, len)) {
      return 0;
    }
    return fail(ctx, "a bool map key is \"true\" or \"false\"");
  }
  return integer_of_text(ctx, key->type, text, len, &out->bits);
}

static int encode_map(context *ctx, const field_info *fi, const json_t *v) {
  if (!json_is_object(v)) {
    return fail(ctx, "expected an object for map field %s, got %s",
                field_name(fi->field), json_kind(v));
  }
  field_info key, value;
  if (resolve_map_entry(ctx, fi, &key, &value) != 0) {
    return -1;
  }
  json_t *object = (json_t *)v;
  for (void *it = json_object_iter(object); it != NULL;
       it = json_object_iter_next(object, it)) {
    const char *name = json_object_iter_key(it);
    size_t name_len = json_object_iter_key_len(it);
    const json_t *element = json_object_iter_value(it);
    size_t saved = push_key(ctx, name, name_len);
    scalar key_value;
    int rv = parse_key(ctx, &key, name, name_len, &key_value);
    if (rv == 0 && json_is_null(element) && !field_takes_null(&value)) {
      rv = fail(ctx, "null is not allowed as a map value");
    }
    size_t start = 0;
    if (rv == 0) {
      rv = put_tag(ctx, fi->number, WIRE_LEN);
      start = begin_len(ctx);
    }
    if (rv == 0) {
      rv = put_tag(ctx, 1, wire_type_of(key.type));
    }
    if (rv == 0) {
      rv = put_scalar(ctx, &key, &key_value);
    }
    if (rv == 0) {
      rv = encode_single(ctx, &value, element, true);
    }
    if (rv == 0) {
      rv = end_len(ctx, start);
    }
    pop_path(ctx, saved);
    if (rv != 0) {
      return -1;
    }
  }
  return 0;
}

static int encode_field(context *ctx, const field_info *fi, const json_t *v) {
  if (json_is_null(v) && (fi->repeated || !field_takes_null(fi))) {
    return 0; /* null: the default */
  }
  if (fi->is_map) {
    return encode_map(ctx, fi, v);
  }
  if (fi->repeated) {
    return encode_list(ctx, fi, v);
  }
  return encode_single(ctx, fi, v, false);
}

/* The field a JSON key names: its JSON name first, then its proto name. */
static size_t field_by_key(const message_type *m, const char *key, size_t len) {
  for (size_t i = 0; i < m->n_field; i++) {
    const field_type *f = m->field[i];
    if (f->json_name != NULL
            ? equals(f->json_name, key, len)
            : computed_json_name_equals(field_name(f), key, len)) {
      return i;
    }
  }
  for (size_t i = 0; i < m->n_field; i++) {
    if (equals(field_name(m->field[i]), key, len)) {
      return i;
    }
  }
  return SIZE_MAX;
}

typedef struct field_order {
  int32_t number;
  size_t index;
} field_order;

static int compare_order(const void *a, const void *b) {
  const field_order *x = a, *y = b;
  return x->number < y->number ? -1 : x->number > y->number;
}

/* Fields of an ordinary message; skip_type leaves out an Any's "@type". */
static int encode_object(context *ctx, const type_ref *type, const json_t *v,
                         bool skip_type) {
  if (!json_is_object(v)) {
    return fail(ctx, "expected an object for %s, got %s", type->name,
                json_kind(v));
  }
  const message_type *m = type->message;
  size_t n = m->n_field;
  const json_t **values = calloc(n + 1, sizeof(*values));
  const char **keys = calloc(n + 1, sizeof(*keys));
  size_t *oneof_seen = calloc(m->n_oneof_decl + 1, sizeof(*oneof_seen));
  field_order *order = calloc(n + 1, sizeof(*order));
  int rv = 0;
  if (values == NULL || keys == NULL || oneof_seen == NULL || order == NULL) {
    rv = fail_no_memory(ctx);
    goto out;
  }
  json_t *object = (json_t *)v;
  for (void *it = json_object_iter(object); it != NULL;
       it = json_object_iter_next(object, it)) {
    const char *key = json_object_iter_key(it);
    size_t key_len = json_object_iter_key_len(it);
    if (skip_type && equals("@type", key, key_len)) {
      continue;
    }
    size_t index = field_by_key(m, key, key_len);
    if (index == SIZE_MAX) {
      rv = fail(ctx, "unknown field \"%s\" in %s", key, type->name);
      goto out;
    }
    if (values[index] != NULL) {
      rv = fail(ctx, "field %s of %s is given twice, as \"%s\" and \"%s\"",
                field_name(m->field[index]), type->name, keys[index], key);
      goto out;
    }
    values[index] = json_object_iter_value(it);
    keys[index] = key;
  }
  for (size_t o = 0; o < m->n_oneof_decl; o++) {
    oneof_seen[o] = SIZE_MAX;
  }
  for (size_t i = 0; i < n; i++) {
    int oneof = oneof_of(m, m->field[i]);
    if (values[i] == NULL || oneof < 0 ||
        (json_is_null(values[i]) && !takes_null(m->field[i]))) {
      continue;
    }
    if (oneof_seen[oneof] != SIZE_MAX) {
      const char *oneof_name = m->oneof_decl[oneof]->name;
      rv = fail(ctx,
                "\"%s\" and \"%s\" are both set, but only one field of "
                "oneof %s may be",
                keys[oneof_seen[oneof]], keys[i],
                oneof_name != NULL ? oneof_name : "?");
      goto out;
    }
    oneof_seen[oneof] = i;
  }
  for (size_t i = 0; i < n; i++) {
    order[i] = (field_order){m->field[i]->number, i};
  }
  qsort(order, n, sizeof(*order), compare_order);
  for (size_t k = 0; k < n && rv == 0; k++) {
    size_t i = order[k].index;
    if (values[i] == NULL) {
      continue;
    }
    size_t saved = push_key(ctx, keys[i], strlen(keys[i]));
    field_info fi;
    rv = resolve_field(ctx, type, m->field[i], &fi);
    if (rv == 0 && fi.number == 0) {
      rv = fail(ctx, "field %s of %s has no valid number",
                field_name(m->field[i]), type->name);
    }
    if (rv == 0) {
      rv = encode_field(ctx, &fi, values[i]);
    }
    pop_path(ctx, saved);
  }
out:
  free(values);
  free(keys);
  free(oneof_seen);
  free(order);
  return rv;
}

static type_ref well_known_ref(wkt kind, const char *name) {
  type_ref ref;
  memset(&ref, 0, sizeof(ref));
  ref.kind = kind;
  ref.name = name;
  return ref;
}

/* google.protobuf.Value from any JSON value. */
static int encode_struct_value(context *ctx, const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_NULL:
    return put_tag(ctx, 1, WIRE_VARINT) != 0 ? -1 : put_varint(ctx, 0);
  case JSON_TRUE:
  case JSON_FALSE:
    return put_tag(ctx, 4, WIRE_VARINT) != 0 ? -1
                                             : put_varint(ctx, json_is_true(v));
  case JSON_INTEGER:
  case JSON_REAL: {
    double number = json_number_value(v);
    uint64_t bits;
    memcpy(&bits, &number, sizeof(bits));
    return put_tag(ctx, 2, WIRE_FIXED64) != 0 ? -1 : put_fixed(ctx, bits, 8);
  }
  case JSON_STRING:
    return put_string(ctx, 3, json_string_value(v), json_string_length(v));
  default: {
    bool object = json_is_object(v);
    type_ref ref =
        object ? well_known_ref(WKT_STRUCT, "google.protobuf.Struct")
               : well_known_ref(WKT_LIST_VALUE, "google.protobuf.ListValue");
    if (put_tag(ctx, object ? 5 : 6, WIRE_LEN) != 0) {
      return -1;
    }
    size_t start = begin_len(ctx);
    if (encode_message_value(ctx, &ref, v) != 0) {
      return -1;
    }
    return end_len(ctx, start);
  }
  }
}

static int encode_struct(context *ctx, const json_t *v) {
  if (!json_is_object(v)) {
    return fail(ctx, "expected an object for google.protobuf.Struct, got %s",
                json_kind(v));
  }
  type_ref value = well_known_ref(WKT_VALUE, "google.protobuf.Value");
  json_t *object = (json_t *)v;
  for (void *it = json_object_iter(object); it != NULL;
       it = json_object_iter_next(object, it)) {
    const char *key = json_object_iter_key(it);
    size_t key_len = json_object_iter_key_len(it);
    size_t saved = push_key(ctx, key, key_len);
    size_t entry = 0, inner = 0;
    int rv = put_tag(ctx, 1, WIRE_LEN);
    if (rv == 0) {
      entry = begin_len(ctx);
      rv = put_string(ctx, 1, key, key_len);
    }
    if (rv == 0) {
      rv = put_tag(ctx, 2, WIRE_LEN);
      inner = begin_len(ctx);
    }
    if (rv == 0) {
      rv = encode_message_value(ctx, &value, json_object_iter_value(it));
    }
    if (rv == 0) {
      rv = end_len(ctx, inner);
    }
    if (rv == 0) {
      rv = end_len(ctx, entry);
    }
    pop_path(ctx, saved);
    if (rv != 0) {
      return -1;
    }
  }
  return 0;
}

static int encode_list_value(context *ctx, const json_t *v) {
  if (!json_is_array(v)) {
    return fail(ctx, "expected an array for google.protobuf.ListValue, got %s",
                json_kind(v));
  }
  type_ref value = well_known_ref(WKT_VALUE, "google.protobuf.Value");
  for (size_t i = 0; i < json_array_size(v); i++) {
    size_t saved = push_index(ctx, i);
    size_t start = 0;
    int rv = put_tag(ctx, 1, WIRE_LEN);
    if (rv == 0) {
      start = begin_len(ctx);
      rv = encode_message_value(ctx, &value, json_array_get(v, i));
    }
    if (rv == 0) {
      rv = end_len(ctx, start);
    }
    pop_path(ctx, saved);
    if (rv != 0) {
      return -1;
    }
  }
  return 0;
}

/* n digits at s into *value; false if any is not a digit. */
static bool fixed_digits(const char *s, size_t n, unsigned *value) {
  *value = 0;
  for (size_t i = 0; i < n; i++) {
    if (!is_digit(s[i])) {
      return false;
    }
    *value = *value * 10 + (unsigned)(s[i] - '0');
  }
  return true;
}

/* ".d{1,9}" at s[*i]: the nanoseconds; false if malformed. */
static bool parse_fraction(const char *s, size_t len, size_t *i,
                           int32_t *nanos) {
  *nanos = 0;
  if (*i >= len || s[*i] != '.') {
    return true;
  }
  size_t start = ++*i;
  int32_t value = 0;
  while (*i < len && is_digit(s[*i])) {
    if (*i - start >= 9) {
      return false;
    }
    value = value * 10 + (s[*i] - '0');
    ++*i;
  }
  size_t count = *i - start;
  if (count == 0) {
    return false;
  }
  for (size_t k = count; k < 9; k++) {
    value *= 10;
  }
  *nanos = value;
  return true;
}

static unsigned days_in_month(unsigned year, unsigned month) {
  static const unsigned days[] = {31, 28, 31, 30, 31, 30,
                                  31, 31, 30, 31, 30, 31};
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : days[month - 1];
}

/* RFC 3339: "1972-01-01T10:00:20.021Z" or with an offset "+01:00".
 * Returns 0, -1 (malformed) or -2 (outside years 1 to 9999). */
static int parse_timestamp(const char *s, size_t len, int64_t *seconds,
                           int32_t *nanos) {
  unsigned year, month, day, hour, minute, second;
  if (len < 20 || !fixed_digits(s, 4, &year) || s[4] != '-' ||
      !fixed_digits(s + 5, 2, &month) || s[7] != '-' ||
      !fixed_digits(s + 8, 2, &day) || s[10] != 'T' ||
      !fixed_digits(s + 11, 2, &hour) || s[13] != ':' ||
      !fixed_digits(s + 14, 2, &minute) || s[16] != ':' ||
      !fixed_digits(s + 17, 2, &second)) {
    return -1;
  }
  size_t i = 19;
  if (!parse_fraction(s, len, &i, nanos)) {
    return -1;
  }
  int64_t offset = 0;
  if (i < len && s[i] == 'Z') {
    i++;
  } else if (i < len && (s[i] == '+' || s[i] == '-')) {
    unsigned offset_hours, offset_minutes;
    if (len - i < 6 || !fixed_digits(s + i + 1, 2, &offset_hours) ||
        s[i + 3] != ':' || !fixed_digits(s + i + 4, 2, &offset_minutes) ||
        offset_hours > 23 || offset_minutes > 59) {
      return -1;
    }
    offset = (int64_t)(offset_hours * 3600 + offset_minutes * 60);
    if (s[i] == '-') {
      offset = -offset;
    }
    i += 6;
  } else {
    return -1;
  }
  if (i != len || year < 1 || month < 1 || month > 12 || day < 1 ||
      day > days_in_month(year, month) || hour > 23 || minute > 59 ||
      second > 59) {
    return -1;
  }
  *seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 +
             minute * 60 + second - offset;
  if (*seconds < TIMESTAMP_MIN_SECONDS || *seconds > TIMESTAMP_MAX_SECONDS) {
    return -2;
  }
  return 0;
}

/* "1.5s", "-0.000000001s". Returns 0, -1 (malformed) or -2 (beyond
 * +-315576000000 s). */
static int parse_duration(const char *s, size_t len, int64_t *seconds,
                          int32_t *nanos) {
  size_t i = 0;
  bool negative = i < len && s[i] == '-';
  if (negative) {
    i++;
  }
  size_t start = i;
  int64_t whole = 0;
  while (i < len && is_digit(s[i])) {
    if (whole <= DURATION_MAX_SECONDS) {
      whole = whole * 10 + (s[i] - '0');
    }
    i++;
  }
  if (i == start || !parse_fraction(s, len, &i, nanos) || i + 1 != len ||
      s[i] != 's') {
    return -1;
  }
  if (whole > DURATION_MAX_SECONDS) {
    return -2;
  }
  *seconds = negative ? -whole : whole;
  *nanos = negative ? -*nanos : *nanos;
  return 0;
}

static int put_seconds_nanos(context *ctx, int64_t seconds, int32_t nanos) {
  if (seconds != 0 && (put_tag(ctx, 1, WIRE_VARINT) != 0 ||
                       put_varint(ctx, (uint64_t)seconds) != 0)) {
    return -1;
  }
  if (nanos != 0 && (put_tag(ctx, 2, WIRE_VARINT) != 0 ||
                     put_varint(ctx, (uint64_t)(int64_t)nanos) != 0)) {
    return -1;
  }
  return 0;
}

static int encode_time(context *ctx, wkt kind, const json_t *v) {
  const char *what = kind == WKT_TIMESTAMP ? "google.protobuf.Timestamp"
                                           : "google.protobuf.Duration";
  if (!json_is_string(v)) {
    return fail(ctx, "expected a string for %s, got %s", what, json_kind(v));
  }
  const char *text = json_string_value(v);
  size_t len = json_string_length(v);
  int shown = len > 64 ? 64 : (int)len;
  int64_t seconds = 0;
  int32_t nanos = 0;
  int rv = kind == WKT_TIMESTAMP ? parse_timestamp(text, len, &seconds, &nanos)
                                 : parse_duration(text, len, &seconds, &nanos);
  if (rv == -1) {
    return fail(ctx,
                kind == WKT_TIMESTAMP
                    ? "\"%.*s\" is not an RFC 3339 timestamp "
                      "(like 1972-01-01T10:00:20.021Z)"
                    : "\"%.*s\" is not a duration (like 1.5s)",
                shown, text);
  }
  if (rv == -2) {
    return fail(ctx,
                kind == WKT_TIMESTAMP
                    ? "\"%.*s\" is outside 0001-01-01 to 9999-12-31"
                    : "\"%.*s\" is beyond 315576000000 seconds",
                shown, text);
  }
  return put_seconds_nanos(ctx, seconds, nanos);
}

/* FieldMask: "a.fooBar,b" -> paths "a.foo_bar", "b". */
static int encode_field_mask(context *ctx, const json_t *v) {
  if (!json_is_string(v)) {
    return fail(ctx, "expected a string for google.protobuf.FieldMask, got %s",
                json_kind(v));
  }
  const char *text = json_string_value(v);
  size_t len = json_string_length(v);
  if (len == 0) {
    return 0;
  }
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && text[i] != ',') {
      continue;
    }
    if (put_tag(ctx, 1, WIRE_LEN) != 0) {
      return -1;
    }
    size_t path = begin_len(ctx);
    for (size_t k = start; k < i; k++) {
      char c = text[k];
      if (c == '_') {
        return fail(ctx, "FieldMask path \"%.*s\" is not lowerCamelCase",
                    (int)(i - start > 64 ? 64 : i - start), text + start);
      }
      if (c >= 'A' && c <= 'Z') {
        char snake[2] = {'_', (char)(c - 'A' + 'a')};
        if (put(ctx, snake, 2) != 0) {
          return -1;
        }
      } else if (put(ctx, &c, 1) != 0) {
        return -1;
      }
    }
    if (end_len(ctx, path) != 0) {
      return -1;
    }
    start = i + 1;
  }
  return 0;
}

static int encode_any(context *ctx, const json_t *v) {
  if (!json_is_object(v)) {
    return fail(ctx, "expected an object for google.protobuf.Any, got %s",
                json_kind(v));
  }
  const json_t *type_url = json_object_getn(v, "@type", 5);
  if (type_url == NULL) {
    if (json_object_size(v) == 0) {
      return 0;
    }
    return fail(ctx, "google.protobuf.Any needs an \"@type\"");
  }
  size_t saved = push_key(ctx, "@type", 5);
  if (!json_is_string(type_url)) {
    int rv =
        fail(ctx, "expected a type URL string, got %s", json_kind(type_url));
    pop_path(ctx, saved);
    return rv;
  }
  const char *url = json_string_value(type_url);
  size_t url_len = json_string_length(type_url);
  char name[512];
  type_ref inner;
  if (type_of_url(url, url_len, name, sizeof(name)) == NULL ||
      !find_message(ctx->pool, name, &inner)) {
    int rv = fail(ctx, "Any type \"%s\" is not in the descriptor pool", url);
    pop_path(ctx, saved);
    return rv;
  }
  pop_path(ctx, saved);
  if (put_string(ctx, 1, url, url_len) != 0) {
    return -1;
  }
  size_t tag_at = ctx->out->len;
  if (put_tag(ctx, 2, WIRE_LEN) != 0) {
    return -1;
  }
  size_t start = begin_len(ctx);
  int rv = 0;
  if (inner.kind == WKT_NONE) {
    rv = encode_object(ctx, &inner, v, true);
  } else {
    /* A type with its own JSON form sits in "value". */
    json_t *object = (json_t *)v;
    for (void *it = json_object_iter(object); it != NULL && rv == 0;
         it = json_object_iter_next(object, it)) {
      const char *key = json_object_iter_key(it);
      size_t key_len = json_object_iter_key_len(it);
      if (!equals("@type", key, key_len) && !equals("value", key, key_len)) {
        rv = fail(ctx, "unknown field \"%s\" in an Any of %s (only \"value\")",
                  key, inner.name);
      }
    }
    const json_t *value = json_object_getn(v, "value", 5);
    if (rv == 0) {
      saved = push_key(ctx, "value", 5);
      rv = encode_message_value(ctx, &inner,
                                value != NULL ? value : json_null());
      pop_path(ctx, saved);
    }
  }
  if (rv != 0) {
    return -1;
  }
  if (ctx->out->len == start) {
    ctx->out->len = tag_at; /* an empty value is left out */
    return 0;
  }
  return end_len(ctx, start);
}

/* Writes the contents of a message of type from its JSON. */
static int encode_message_value(context *ctx, const type_ref *type,
                                const json_t *v) {
  if (enter(ctx) != 0) {
    return -1;
  }
  int rv = 0;
  if (type->kind == WKT_VALUE) {
    rv = encode_struct_value(ctx, v);
  } else if (json_is_null(v)) {
    rv = 0; /* the default: empty */
  } else {
    switch (type->kind) {
    case WKT_NONE:
      rv = encode_object(ctx, type, v, false);
      break;
    case WKT_EMPTY:
      if (!json_is_object(v)) {
        rv = fail(ctx, "expected an object for google.protobuf.Empty, got %s",
                  json_kind(v));
      } else if (json_object_size(v) > 0) {
        rv = fail(ctx, "unknown field \"%s\" in google.protobuf.Empty",
                  json_object_iter_key(json_object_iter((json_t *)v)));
      }
      break;
    case WKT_ANY:
      rv = encode_any(ctx, v);
      break;
    case WKT_STRUCT:
      rv = encode_struct(ctx, v);
      break;
    case WKT_LIST_VALUE:
      rv = encode_list_value(ctx, v);
      break;
    case WKT_TIMESTAMP:
    case WKT_DURATION:
      rv = encode_time(ctx, type->kind, v);
      break;
    case WKT_FIELD_MASK:
      rv = encode_field_mask(ctx, v);
      break;
    default: { /* WKT_WRAPPER */
      field_info fi = plain_field(1, type->wrapped);
      rv = encode_single(ctx, &fi, v, false);
      break;
    }
    }
  }
  leave(ctx);
  return rv;
}

int rpc_json_to_wire(const rpc_descriptor_pool *pool, const char *type,
                     const char *json, size_t len, rpc_buffer *out, char *err,
                     size_t err_size) {
  context ctx;
  init_context(&ctx, pool, out, err, err_size);
  size_t start = out->len;
  type_ref ref;
  if (resolve_message(&ctx, type, &ref) != 0) {
    return -1;
  }
  json_error_t error;
  json_t *root = json_loadb(json != NULL ? json : "", json != NULL ? len : 0,
                            JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL |
                                JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                            &error);
  if (root == NULL) {
    return fail(&ctx, "invalid JSON at line %d, column %d: %s", error.line,
                error.column, error.text);
  }
  int rv = index_numbers(&ctx, root, json, len);
  if (rv == 0) {
    rv = encode_message_value(&ctx, &ref, root);
  }
  json_decref(root);
  free(ctx.numbers);
  if (rv != 0) {
    out->len = start;
    return -1;
  }
  return 0;
}
