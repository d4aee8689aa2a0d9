/* json_internal.h: what the parts of the ProtoJSON transcoder (rpc/json.h)
 * share; not for callers outside rpc/json_*.c, but for server/http/
 * (request_fields.c fills fields from URL text with the same field lookup
 * and scalar parsing; route_rules.c reads a varint).
 *
 * The parts, each calling only those above it in this list:
 *   json_context.c   errors with the JSON path, nesting depth
 *   json_schema.c    types and fields resolved from the descriptor pool
 *   json_wire.c      varints, fixed-width values and tags, both ways
 *   json_records.c   a message's wire bytes as records; oneofs, map entries
 *   json_text.c      JSON text written; the number tokens of JSON read
 *   json_scalar.c    one scalar value, wire -> JSON and JSON -> wire
 *   json_wkt.c       Timestamp, Duration and FieldMask, both ways
 *   json_from_wire.c rpc_json_from_wire: messages, lists, maps, Any, Struct
 *   json_to_wire.c   rpc_json_to_wire: the same the other way
 * The walks over messages recurse through Any, Struct, Value and ListValue,
 * so those live in the two walks, one per direction.
 *
 * Every function that takes a context and returns int returns 0, or -1
 * after recording the error in it (the first error is kept, prefixed with
 * the path). */
#ifndef JOBHUB_RPC_JSON_INTERNAL_H
#define JOBHUB_RPC_JSON_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rpc/buffer.h"
#include "rpc/descriptor_pool.h"
#include "rpc/json.h"

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

#define NULL_VALUE_TYPE "google.protobuf.NullValue"

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

/* One transcoding, either way. */
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

/* A scalar parsed from JSON: the wire value, or the text of a string or
 * of base64 bytes. */
typedef struct scalar {
  uint64_t bits;
  const char *text;
  size_t len;
} scalar;

static inline const char *without_dot(const char *name) {
  return name[0] == '.' ? name + 1 : name;
}

static inline const char *field_name(const field_type *field) {
  return field->name != NULL ? field->name : "";
}

static inline bool is_numeric(int type) {
  return type != FIELD_TYPE(STRING) && type != FIELD_TYPE(BYTES) &&
         type != FIELD_TYPE(MESSAGE) && type != FIELD_TYPE(GROUP);
}

static inline bool is_message(int type) {
  return type == FIELD_TYPE(MESSAGE) || type == FIELD_TYPE(GROUP);
}

/* Whether the C string name is key[0..len). */
static inline bool equals(const char *name, const char *key, size_t len) {
  return strlen(name) == len && memcmp(name, key, len) == 0;
}

static inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* The wire type of a value of field type type (not packed). */
static inline uint8_t wire_type_of(int type) {
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

/* The index of the oneof field belongs to in m, or -1 (none, or an index
 * out of range). */
static inline int oneof_of(const message_type *m, const field_type *field) {
  if (!field->has_oneof_index || field->oneof_index < 0 ||
      (size_t)field->oneof_index >= m->n_oneof_decl) {
    return -1;
  }
  return field->oneof_index;
}

/* Whether r has the wire type of fi's values (or is a packed run of
 * them). */
static inline bool record_fits(const field_info *fi, const record *r) {
  return r->wire_type == wire_type_of(fi->type) ||
         (fi->repeated && is_numeric(fi->type) && r->wire_type == WIRE_LEN);
}

/* ---- json_context.c: errors, paths and depth ---- */

/* rpc_json_init_context clears ctx for one call writing to out, errors to
 * err[0..err_size) (emptied now; may be NULL). */
void rpc_json_init_context(context *ctx, const rpc_descriptor_pool *pool,
                           rpc_buffer *out, char *err, size_t err_size);

/* rpc_json_fail records the first error of ctx, prefixed with the current
 * path; later ones are dropped. Returns -1. */
int rpc_json_fail(context *ctx, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* rpc_json_fail_no_memory records "out of memory". Returns -1. */
int rpc_json_fail_no_memory(context *ctx);

/* rpc_json_push_key appends ".key" (or "key" at the root) to the path, cut
 * at PATH_CAP, control characters as '?'; rpc_json_push_index appends
 * "[index]". Both return the length that rpc_json_pop_path restores. */
size_t rpc_json_push_key(context *ctx, const char *key, size_t len);
size_t rpc_json_push_index(context *ctx, size_t index);
void rpc_json_pop_path(context *ctx, size_t saved);

/* rpc_json_enter counts one more level of nesting; fails beyond
 * RPC_JSON_MAX_DEPTH. rpc_json_leave undoes an rpc_json_enter that
 * succeeded (after a failure the whole call fails). */
int rpc_json_enter(context *ctx);
void rpc_json_leave(context *ctx);

/* ---- json_schema.c: types and fields from the descriptor pool ---- */

/* rpc_json_find_message fills ref for the message type name (a leading dot
 * allowed); false if the pool lacks it. The well-known types with their
 * own JSON form need no descriptor. ref points into pool and name. */
bool rpc_json_find_message(const rpc_descriptor_pool *pool, const char *name,
                           type_ref *ref);

/* rpc_json_resolve_message is rpc_json_find_message that fails when the
 * type is not in the pool. */
int rpc_json_resolve_message(context *ctx, const char *name, type_ref *ref);

/* rpc_json_resolve_field fills fi for field of the message owner, its
 * message or enum type looked up. Fails on a field without a (known) type
 * or whose type is not in the pool. */
int rpc_json_resolve_field(context *ctx, const type_ref *owner,
                           const field_type *field, field_info *fi);

/* rpc_json_resolve_map_entry fills key and value with the key (1) and
 * value (2) fields of the map field map's entry. Fails when either is
 * missing, unresolvable, or the key is not of an integer, bool or string
 * type. */
int rpc_json_resolve_map_entry(context *ctx, const field_info *map,
                               field_info *key, field_info *value);

/* rpc_json_plain_field is a synthetic singular field: the fields of the
 * well-known types. */
field_info rpc_json_plain_field(uint32_t number, int type);

/* rpc_json_takes_null says whether a field's JSON accepts null as a value
 * rather than as "unset": google.protobuf.Value (a NullValue) and the
 * NullValue enum itself. */
bool rpc_json_takes_null(const field_type *field);

/* rpc_json_name_of is protoc's ToJsonName of field's name (drop each '_'
 * and capitalize the letter after), malloc'ed: the caller frees it. NULL
 * when out of memory. */
char *rpc_json_name_of(const field_type *field);

/* rpc_json_field_by_key is the index in m of the field the JSON key
 * key[0..len) names: its JSON name first, then its proto name; SIZE_MAX if
 * none. */
size_t rpc_json_field_by_key(const message_type *m, const char *key,
                             size_t len);

/* rpc_json_type_of_url copies the type name of a type URL url[0..len),
 * what follows its last '/', into buf[0..size) and returns buf; NULL when
 * it is empty, does not fit or holds a NUL. */
const char *rpc_json_type_of_url(const char *url, size_t len, char *buf,
                                 size_t size);

/* ---- json_wire.c: the wire format's primitives ---- */

/* rpc_json_read_varint reads a varint at data[0..size) into *value;
 * returns the bytes used, 0 if it is truncated or longer than 10 bytes. */
size_t rpc_json_read_varint(const uint8_t *data, size_t size, uint64_t *value);

/* rpc_json_read_little_endian reads size (4 or 8) bytes. */
uint64_t rpc_json_read_little_endian(const uint8_t *data, size_t size);

/* rpc_json_zigzag_decode is the signed value of a sint64 varint. */
int64_t rpc_json_zigzag_decode(uint64_t value);

/* rpc_json_put appends data[0..len) to ctx->out; rpc_json_put_varint,
 * rpc_json_put_tag and rpc_json_put_fixed (width 4 or 8, little-endian)
 * append the encodings; rpc_json_put_string appends field number as a
 * length-delimited text[0..len). All fail only when out of memory. */
int rpc_json_put(context *ctx, const void *data, size_t len);
int rpc_json_put_varint(context *ctx, uint64_t value);
int rpc_json_put_tag(context *ctx, uint32_t number, uint8_t wire_type);
int rpc_json_put_fixed(context *ctx, uint64_t value, size_t width);
int rpc_json_put_string(context *ctx, uint32_t number, const char *text,
                        size_t len);

/* Length-delimited contents are written in place: note rpc_json_begin_len
 * before, and rpc_json_end_len inserts their length in front (fails only
 * when out of memory). */
size_t rpc_json_begin_len(context *ctx);
int rpc_json_end_len(context *ctx, size_t start);

/* ---- json_records.c: a message's wire bytes read ---- */

/* rpc_json_scan_message scans the fields of a message of type (for
 * errors) in data[0..size) into list, sorted by number then wire order.
 * Fails on malformed wire bytes, groups nested beyond RPC_JSON_MAX_DEPTH,
 * or no memory. The records point into data; the caller frees list->items,
 * also after a failure. */
int rpc_json_scan_message(context *ctx, const char *type, const uint8_t *data,
                          size_t size, record_list *list);

/* rpc_json_find_run sets *run to the first record of field number in list
 * and returns how many there are. */
size_t rpc_json_find_run(const record_list *list, uint32_t number,
                         const record **run);

/* rpc_json_last_fitting is the last record of run[0..count) that fits fi,
 * or NULL. */
const record *rpc_json_last_fitting(const field_info *fi, const record *run,
                                    size_t count);

/* rpc_json_merged_message sets *data and *len to the bytes of a singular
 * message field fi: its fitting records in run[0..count) after position
 * cutoff (SIZE_MAX: all), concatenated, which parses as their merge. When
 * *owned is set it holds the bytes and the caller frees it. Fails only when
 * out of memory. */
int rpc_json_merged_message(context *ctx, const field_info *fi,
                            const record *run, size_t count, size_t cutoff,
                            const uint8_t **data, size_t *len, uint8_t **owned);

/* rpc_json_read_map_entries reads the entries of a map (of entry type
 * entry_type, with key and value fields key and value) from its records
 * run[0..count), sorted by key, equal keys in wire order. On success the
 * caller frees *entries with rpc_json_free_entries(*entries, *n); on
 * failure (malformed entries, no memory) nothing is left to free. */
int rpc_json_read_map_entries(context *ctx, const char *entry_type,
                              const field_info *key, const field_info *value,
                              const record *run, size_t count,
                              map_entry **entries, size_t *n);

/* rpc_json_same_key says whether two entries of one map have equal keys. */
bool rpc_json_same_key(const map_entry *x, const map_entry *y);

/* rpc_json_key_text writes the JSON key text of a numeric or bool map key
 * of field type type and wire value value to buf[0..size). */
void rpc_json_key_text(int type, uint64_t value, char *buf, size_t size);

/* rpc_json_free_entries frees entries[0..count) and their merged values. */
void rpc_json_free_entries(map_entry *entries, size_t count);

/* rpc_json_settle_fields resolves the fields of the ordinary message type
 * that are present in records and settles its oneofs: the member seen last
 * wins. Fails on a field that does not resolve or no memory. The caller
 * frees state with rpc_json_free_member_state, also after a failure
 * (state starts zeroed). */
int rpc_json_settle_fields(context *ctx, const type_ref *type,
                           const record_list *records, member_state *state);
void rpc_json_free_member_state(member_state *state);

/* ---- json_text.c: JSON text ---- */

/* rpc_json_emit appends data[0..len) to ctx->out; rpc_json_emit_text a C
 * string; rpc_json_emit_format at most 63 formatted bytes. Running out of
 * memory sets ctx->out_of_memory, which rpc_json_from_wire reports at the
 * end. */
void rpc_json_emit(context *ctx, const void *data, size_t len);
void rpc_json_emit_text(context *ctx, const char *text);
void rpc_json_emit_format(context *ctx, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* rpc_json_open_container writes '{' or '[' and indents one more level;
 * rpc_json_close_container the closing one on a new line unless empty.
 * rpc_json_begin_item starts an element (a ',' unless *first, a new line),
 * rpc_json_begin_member an object member: the element, its key, ':'.
 * rpc_json_begin_member fails when the key is not UTF-8. */
void rpc_json_open_container(context *ctx, char open);
void rpc_json_close_container(context *ctx, char close, bool empty);
void rpc_json_begin_item(context *ctx, bool *first);
int rpc_json_begin_member(context *ctx, bool *first, const char *key,
                          size_t len);

/* rpc_json_utf8_valid says whether s[0..len) is UTF-8 (no overlong forms,
 * surrogates or code points past U+10FFFF). */
bool rpc_json_utf8_valid(const uint8_t *s, size_t len);

/* rpc_json_emit_string writes s[0..len) as a JSON string, escaped; fails
 * when it is not UTF-8. rpc_json_emit_text_string takes a C string. */
int rpc_json_emit_string(context *ctx, const uint8_t *s, size_t len);
int rpc_json_emit_text_string(context *ctx, const char *text);

/* rpc_json_emit_double writes a double (or, with single, a float) with the
 * fewest digits that read back, "NaN", "Infinity" or "-Infinity" quoted. */
void rpc_json_emit_double(context *ctx, double value, bool single);

/* rpc_json_kind names the JSON type of v for errors ("an object"). */
const char *rpc_json_kind(const json_t *v);

/* rpc_json_index_numbers pairs each number of the parsed tree root with its
 * own text in text[0..len), which root was parsed from, for
 * rpc_json_number_text. ctx->numbers is then owned by the caller, freed
 * also after a failure (no memory, or the text and tree disagree). */
int rpc_json_index_numbers(context *ctx, const json_t *root, const char *text,
                           size_t len);

/* rpc_json_number_text is the text of the number v, or NULL. */
const number_token *rpc_json_number_text(const context *ctx, const json_t *v);

/* ---- json_scalar.c: one scalar value ---- */

/* rpc_json_write_scalar writes the JSON of a scalar of fi's type from its
 * wire value (value for numbers, data[0..len) for strings and bytes).
 * Fails on a string that is not UTF-8 or a type that is no scalar. */
int rpc_json_write_scalar(context *ctx, const field_info *fi, uint64_t value,
                          const uint8_t *data, size_t len);

/* rpc_json_is_default_value says whether a singular value without
 * presence is its default and so not written (proto3: zero bits, an empty
 * string). */
bool rpc_json_is_default_value(const field_info *fi, const record *r);

/* rpc_json_double_of_bits is the double of a fixed64's bits. */
double rpc_json_double_of_bits(uint64_t bits);

/* rpc_json_parse_scalar parses the JSON value v of fi's scalar type into
 * out (whose text points into v). Fails on a value of the wrong JSON type,
 * out of range, not an integer where one is needed, or an unknown enum
 * name. */
int rpc_json_parse_scalar(context *ctx, const field_info *fi, const json_t *v,
                          scalar *out);

/* rpc_json_parse_key parses the map key text[0..len) (always a JSON
 * string) of the key field's type into out. Fails like
 * rpc_json_parse_scalar. */
int rpc_json_parse_key(context *ctx, const field_info *key, const char *text,
                       size_t len, scalar *out);

/* rpc_json_scalar_is_default says whether s is the default of fi's type. */
bool rpc_json_scalar_is_default(const field_info *fi, const scalar *s);

/* rpc_json_put_scalar writes s's value (without its tag). Fails on bad
 * base64 or no memory. */
int rpc_json_put_scalar(context *ctx, const field_info *fi, const scalar *s);

/* ---- json_wkt.c: Timestamp, Duration and FieldMask ---- */

/* rpc_json_write_timestamp, rpc_json_write_duration and
 * rpc_json_write_field_mask write the JSON string of the message whose
 * records are given. They fail on a value out of range or a FieldMask
 * path without a lowerCamelCase form. */
int rpc_json_write_timestamp(context *ctx, const record_list *records);
int rpc_json_write_duration(context *ctx, const record_list *records);
int rpc_json_write_field_mask(context *ctx, const record_list *records);

/* rpc_json_encode_time (kind WKT_TIMESTAMP or WKT_DURATION) and
 * rpc_json_encode_field_mask write the fields of the message given by the
 * JSON v. They fail on a value that is no string, malformed or out of
 * range. */
int rpc_json_encode_time(context *ctx, wkt kind, const json_t *v);
int rpc_json_encode_field_mask(context *ctx, const json_t *v);

#endif
