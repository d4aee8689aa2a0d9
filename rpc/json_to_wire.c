/* json_to_wire.c: rpc_json_to_wire, JSON -> wire.
 *
 * Parses with jansson (numbers decoded as reals), then finds each number's
 * own text again so that 64-bit integers and integral checks are exact,
 * and writes fields in field-number order, each nested message written in
 * place and its length inserted in front afterwards. */
#include "rpc/json_internal.h"

#include <stdlib.h>
#include <string.h>

static int encode_message_value(context *ctx, const type_ref *type,
                                const json_t *v);

/* Writes field number: the message of type from v, length-delimited. */
static int encode_message_field(context *ctx, uint32_t number,
                                const type_ref *type, const json_t *v) {
  if (rpc_json_put_tag(ctx, number, WIRE_LEN) != 0) {
    return -1;
  }
  size_t start = rpc_json_begin_len(ctx);
  if (encode_message_value(ctx, type, v) != 0) {
    return -1;
  }
  return rpc_json_end_len(ctx, start);
}

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
      if (rpc_json_put_tag(ctx, fi->number, WIRE_START_GROUP) != 0 ||
          encode_message_value(ctx, &fi->message, v) != 0) {
        return -1;
      }
      return rpc_json_put_tag(ctx, fi->number, WIRE_END_GROUP);
    }
    return encode_message_field(ctx, fi->number, &fi->message, v);
  }
  scalar s;
  if (rpc_json_parse_scalar(ctx, fi, v, &s) != 0) {
    return -1;
  }
  if (!keep_default && !fi->presence && rpc_json_scalar_is_default(fi, &s)) {
    return 0;
  }
  if (rpc_json_put_tag(ctx, fi->number, wire_type_of(fi->type)) != 0) {
    return -1;
  }
  return rpc_json_put_scalar(ctx, fi, &s);
}

static int encode_list(context *ctx, const field_info *fi, const json_t *v) {
  if (!json_is_array(v)) {
    return rpc_json_fail(ctx, "expected an array for repeated field %s, got %s",
                         field_name(fi->field), rpc_json_kind(v));
  }
  size_t count = json_array_size(v);
  if (count == 0) {
    return 0;
  }
  size_t start = 0;
  if (fi->packed) {
    if (rpc_json_put_tag(ctx, fi->number, WIRE_LEN) != 0) {
      return -1;
    }
    start = rpc_json_begin_len(ctx);
  }
  for (size_t i = 0; i < count; i++) {
    const json_t *element = json_array_get(v, i);
    size_t saved = rpc_json_push_index(ctx, i);
    int rv = 0;
    if (json_is_null(element) && !field_takes_null(fi)) {
      rv = rpc_json_fail(ctx, "null is not allowed in a repeated field");
    } else if (fi->packed) {
      scalar s;
      rv = rpc_json_parse_scalar(ctx, fi, element, &s);
      if (rv == 0) {
        rv = rpc_json_put_scalar(ctx, fi, &s);
      }
    } else {
      rv = encode_single(ctx, fi, element, true);
    }
    rpc_json_pop_path(ctx, saved);
    if (rv != 0) {
      return -1;
    }
  }
  return fi->packed ? rpc_json_end_len(ctx, start) : 0;
}

static int encode_map(context *ctx, const field_info *fi, const json_t *v) {
  if (!json_is_object(v)) {
    return rpc_json_fail(ctx, "expected an object for map field %s, got %s",
                         field_name(fi->field), rpc_json_kind(v));
  }
  field_info key, value;
  if (rpc_json_resolve_map_entry(ctx, fi, &key, &value) != 0) {
    return -1;
  }
  json_t *object = (json_t *)v;
  for (void *it = json_object_iter(object); it != NULL;
       it = json_object_iter_next(object, it)) {
    const char *name = json_object_iter_key(it);
    size_t name_len = json_object_iter_key_len(it);
    const json_t *element = json_object_iter_value(it);
    size_t saved = rpc_json_push_key(ctx, name, name_len);
    scalar key_value;
    int rv = rpc_json_parse_key(ctx, &key, name, name_len, &key_value);
    if (rv == 0 && json_is_null(element) && !field_takes_null(&value)) {
      rv = rpc_json_fail(ctx, "null is not allowed as a map value");
    }
    size_t start = 0;
    if (rv == 0) {
      rv = rpc_json_put_tag(ctx, fi->number, WIRE_LEN);
      start = rpc_json_begin_len(ctx);
    }
    if (rv == 0) {
      rv = rpc_json_put_tag(ctx, 1, wire_type_of(key.type));
    }
    if (rv == 0) {
      rv = rpc_json_put_scalar(ctx, &key, &key_value);
    }
    if (rv == 0) {
      rv = encode_single(ctx, &value, element, true);
    }
    if (rv == 0) {
      rv = rpc_json_end_len(ctx, start);
    }
    rpc_json_pop_path(ctx, saved);
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
    return rpc_json_fail(ctx, "expected an object for %s, got %s", type->name,
                         rpc_json_kind(v));
  }
  const message_type *m = type->message;
  size_t n = m->n_field;
  const json_t **values = calloc(n + 1, sizeof(*values));
  const char **keys = calloc(n + 1, sizeof(*keys));
  size_t *oneof_seen = calloc(m->n_oneof_decl + 1, sizeof(*oneof_seen));
  field_order *order = calloc(n + 1, sizeof(*order));
  int rv = 0;
  if (values == NULL || keys == NULL || oneof_seen == NULL || order == NULL) {
    rv = rpc_json_fail_no_memory(ctx);
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
    size_t index = rpc_json_field_by_key(m, key, key_len);
    if (index == SIZE_MAX) {
      rv = rpc_json_fail(ctx, "unknown field \"%s\" in %s", key, type->name);
      goto out;
    }
    if (values[index] != NULL) {
      rv = rpc_json_fail(
          ctx, "field %s of %s is given twice, as \"%s\" and \"%s\"",
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
        (json_is_null(values[i]) && !rpc_json_takes_null(m->field[i]))) {
      continue;
    }
    if (oneof_seen[oneof] != SIZE_MAX) {
      const char *oneof_name = m->oneof_decl[oneof]->name;
      rv =
          rpc_json_fail(ctx,
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
    size_t saved = rpc_json_push_key(ctx, keys[i], strlen(keys[i]));
    field_info fi;
    rv = rpc_json_resolve_field(ctx, type, m->field[i], &fi);
    if (rv == 0 && fi.number == 0) {
      rv = rpc_json_fail(ctx, "field %s of %s has no valid number",
                         field_name(m->field[i]), type->name);
    }
    if (rv == 0) {
      rv = encode_field(ctx, &fi, values[i]);
    }
    rpc_json_pop_path(ctx, saved);
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
    return rpc_json_put_tag(ctx, 1, WIRE_VARINT) != 0
               ? -1
               : rpc_json_put_varint(ctx, 0);
  case JSON_TRUE:
  case JSON_FALSE:
    return rpc_json_put_tag(ctx, 4, WIRE_VARINT) != 0
               ? -1
               : rpc_json_put_varint(ctx, json_is_true(v));
  case JSON_INTEGER:
  case JSON_REAL: {
    double number = json_number_value(v);
    uint64_t bits;
    memcpy(&bits, &number, sizeof(bits));
    return rpc_json_put_tag(ctx, 2, WIRE_FIXED64) != 0
               ? -1
               : rpc_json_put_fixed(ctx, bits, 8);
  }
  case JSON_STRING:
    return rpc_json_put_string(ctx, 3, json_string_value(v),
                               json_string_length(v));
  default: {
    bool object = json_is_object(v);
    type_ref ref =
        object ? well_known_ref(WKT_STRUCT, "google.protobuf.Struct")
               : well_known_ref(WKT_LIST_VALUE, "google.protobuf.ListValue");
    return encode_message_field(ctx, object ? 5 : 6, &ref, v);
  }
  }
}

static int encode_struct(context *ctx, const json_t *v) {
  if (!json_is_object(v)) {
    return rpc_json_fail(
        ctx, "expected an object for google.protobuf.Struct, got %s",
        rpc_json_kind(v));
  }
  type_ref value = well_known_ref(WKT_VALUE, "google.protobuf.Value");
  json_t *object = (json_t *)v;
  for (void *it = json_object_iter(object); it != NULL;
       it = json_object_iter_next(object, it)) {
    const char *key = json_object_iter_key(it);
    size_t key_len = json_object_iter_key_len(it);
    size_t saved = rpc_json_push_key(ctx, key, key_len);
    size_t entry = 0;
    int rv = rpc_json_put_tag(ctx, 1, WIRE_LEN);
    if (rv == 0) {
      entry = rpc_json_begin_len(ctx);
      rv = rpc_json_put_string(ctx, 1, key, key_len);
    }
    if (rv == 0) {
      rv = encode_message_field(ctx, 2, &value, json_object_iter_value(it));
    }
    if (rv == 0) {
      rv = rpc_json_end_len(ctx, entry);
    }
    rpc_json_pop_path(ctx, saved);
    if (rv != 0) {
      return -1;
    }
  }
  return 0;
}

static int encode_list_value(context *ctx, const json_t *v) {
  if (!json_is_array(v)) {
    return rpc_json_fail(
        ctx, "expected an array for google.protobuf.ListValue, got %s",
        rpc_json_kind(v));
  }
  type_ref value = well_known_ref(WKT_VALUE, "google.protobuf.Value");
  for (size_t i = 0; i < json_array_size(v); i++) {
    size_t saved = rpc_json_push_index(ctx, i);
    int rv = encode_message_field(ctx, 1, &value, json_array_get(v, i));
    rpc_json_pop_path(ctx, saved);
    if (rv != 0) {
      return -1;
    }
  }
  return 0;
}

static int encode_any(context *ctx, const json_t *v) {
  if (!json_is_object(v)) {
    return rpc_json_fail(ctx,
                         "expected an object for google.protobuf.Any, got %s",
                         rpc_json_kind(v));
  }
  const json_t *type_url = json_object_getn(v, "@type", 5);
  if (type_url == NULL) {
    if (json_object_size(v) == 0) {
      return 0;
    }
    return rpc_json_fail(ctx, "google.protobuf.Any needs an \"@type\"");
  }
  size_t saved = rpc_json_push_key(ctx, "@type", 5);
  if (!json_is_string(type_url)) {
    int rv = rpc_json_fail(ctx, "expected a type URL string, got %s",
                           rpc_json_kind(type_url));
    rpc_json_pop_path(ctx, saved);
    return rv;
  }
  const char *url = json_string_value(type_url);
  size_t url_len = json_string_length(type_url);
  char name[512];
  type_ref inner;
  if (rpc_json_type_of_url(url, url_len, name, sizeof(name)) == NULL ||
      !rpc_json_find_message(ctx->pool, name, &inner)) {
    int rv = rpc_json_fail(ctx, "Any type \"%s\" is not in the descriptor pool",
                           url);
    rpc_json_pop_path(ctx, saved);
    return rv;
  }
  rpc_json_pop_path(ctx, saved);
  if (rpc_json_put_string(ctx, 1, url, url_len) != 0) {
    return -1;
  }
  size_t tag_at = ctx->out->len;
  if (rpc_json_put_tag(ctx, 2, WIRE_LEN) != 0) {
    return -1;
  }
  size_t start = rpc_json_begin_len(ctx);
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
        rv = rpc_json_fail(
            ctx, "unknown field \"%s\" in an Any of %s (only \"value\")", key,
            inner.name);
      }
    }
    const json_t *value = json_object_getn(v, "value", 5);
    if (rv == 0) {
      saved = rpc_json_push_key(ctx, "value", 5);
      rv = encode_message_value(ctx, &inner,
                                value != NULL ? value : json_null());
      rpc_json_pop_path(ctx, saved);
    }
  }
  if (rv != 0) {
    return -1;
  }
  if (ctx->out->len == start) {
    ctx->out->len = tag_at; /* an empty value is left out */
    return 0;
  }
  return rpc_json_end_len(ctx, start);
}

/* Writes the contents of a message of type from its JSON. */
static int encode_message_value(context *ctx, const type_ref *type,
                                const json_t *v) {
  if (rpc_json_enter(ctx) != 0) {
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
        rv = rpc_json_fail(
            ctx, "expected an object for google.protobuf.Empty, got %s",
            rpc_json_kind(v));
      } else if (json_object_size(v) > 0) {
        rv = rpc_json_fail(ctx, "unknown field \"%s\" in google.protobuf.Empty",
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
      rv = rpc_json_encode_time(ctx, type->kind, v);
      break;
    case WKT_FIELD_MASK:
      rv = rpc_json_encode_field_mask(ctx, v);
      break;
    default: { /* WKT_WRAPPER */
      field_info fi = rpc_json_plain_field(1, type->wrapped);
      rv = encode_single(ctx, &fi, v, false);
      break;
    }
    }
  }
  rpc_json_leave(ctx);
  return rv;
}

int rpc_json_to_wire(const rpc_descriptor_pool *pool, const char *type,
                     const char *json, size_t len, rpc_buffer *out, char *err,
                     size_t err_size) {
  context ctx;
  rpc_json_init_context(&ctx, pool, out, err, err_size);
  size_t start = out->len;
  type_ref ref;
  if (rpc_json_resolve_message(&ctx, type, &ref) != 0) {
    return -1;
  }
  json_error_t error;
  json_t *root = json_loadb(json != NULL ? json : "", json != NULL ? len : 0,
                            JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL |
                                JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                            &error);
  if (root == NULL) {
    return rpc_json_fail(&ctx, "invalid JSON at line %d, column %d: %s",
                         error.line, error.column, error.text);
  }
  int rv = rpc_json_index_numbers(&ctx, root, json, len);
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
