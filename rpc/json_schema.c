/* json_schema.c: message types, fields, map entries and JSON names
 * resolved from the FileDescriptorProtos of the descriptor pool. */
#include "rpc/json_internal.h"

#include <stdlib.h>
#include <string.h>

static bool is_proto3(const rpc_descriptor_file *file) {
  return file != NULL && file->proto->syntax != NULL &&
         strcmp(file->proto->syntax, "proto3") == 0;
}

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
bool rpc_json_find_message(const rpc_descriptor_pool *pool, const char *name,
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

int rpc_json_resolve_message(context *ctx, const char *name, type_ref *ref) {
  if (!rpc_json_find_message(ctx->pool, name, ref)) {
    return rpc_json_fail(ctx, "message type %s is not in the descriptor pool",
                         without_dot(name));
  }
  return 0;
}

/* Whether a field's JSON accepts null as a value rather than as "unset":
 * google.protobuf.Value (a NullValue) and the NullValue enum itself. */
bool rpc_json_takes_null(const field_type *field) {
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
    return rpc_json_fail(ctx, "enum type %s is not in the descriptor pool",
                         name);
  }
  fi->closed_enum = !is_proto3(file);
  return 0;
}

/* Resolves field of the message owner. */
int rpc_json_resolve_field(context *ctx, const type_ref *owner,
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
    return rpc_json_fail(ctx, "field %s of %s has no type", field_name(field),
                         owner->name);
  }
  if (fi->type < FIELD_TYPE(DOUBLE) || fi->type > FIELD_TYPE(SINT64)) {
    return rpc_json_fail(ctx, "field %s of %s has an unknown type %d",
                         field_name(field), owner->name, fi->type);
  }
  if (is_message(fi->type) || fi->type == FIELD_TYPE(ENUM)) {
    if (field->type_name == NULL) {
      return rpc_json_fail(ctx, "field %s of %s has no type name",
                           field_name(field), owner->name);
    }
    if (fi->type == FIELD_TYPE(ENUM)) {
      if (resolve_enum(ctx, field->type_name, fi) != 0) {
        return -1;
      }
    } else if (rpc_json_resolve_message(ctx, field->type_name, &fi->message) !=
               0) {
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
int rpc_json_resolve_map_entry(context *ctx, const field_info *map,
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
    return rpc_json_fail(ctx, "map entry %s lacks its key or value field",
                         map->message.name);
  }
  if (rpc_json_resolve_field(ctx, &map->message, key_field, key) != 0 ||
      rpc_json_resolve_field(ctx, &map->message, value_field, value) != 0) {
    return -1;
  }
  if (!is_numeric(key->type) && key->type != FIELD_TYPE(STRING)) {
    return rpc_json_fail(ctx, "map entry %s has a key of type %d",
                         map->message.name, key->type);
  }
  if (key->type == FIELD_TYPE(FLOAT) || key->type == FIELD_TYPE(DOUBLE) ||
      key->type == FIELD_TYPE(ENUM)) {
    return rpc_json_fail(ctx, "map entry %s has a key of type %d",
                         map->message.name, key->type);
  }
  return 0;
}

/* A synthetic singular field: the fields of the well-known types. */
field_info rpc_json_plain_field(uint32_t number, int type) {
  field_info fi;
  memset(&fi, 0, sizeof(fi));
  fi.number = number;
  fi.type = type;
  return fi;
}

/* protoc's ToJsonName: drop each '_' and capitalize the letter after. */
char *rpc_json_name_of(const field_type *field) {
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

/* The field a JSON key names: its JSON name first, then its proto name. */
size_t rpc_json_field_by_key(const message_type *m, const char *key,
                             size_t len) {
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

/* The type name of a type URL: what follows its last '/'. */
const char *rpc_json_type_of_url(const char *url, size_t len, char *buf,
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
