/* json_from_wire.c: rpc_json_from_wire, wire -> JSON.
 *
 * Scans each message's fields into records, sorts them by field number
 * (keeping wire order), and writes the fields in declaration order: a
 * singular field takes its last record, a singular message merges all of
 * them (parsing their concatenation), a oneof takes the member seen last,
 * repeated scalars take packed and unpacked records alike. */
#include "rpc/json_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int write_message(context *ctx, const type_ref *type,
                         const uint8_t *data, size_t size);

/* Writes one value of field fi from its record (not packed). */
static int write_value(context *ctx, const field_info *fi, const record *r) {
  if (is_message(fi->type)) {
    return write_message(ctx, &fi->message, r->data, r->len);
  }
  return rpc_json_write_scalar(ctx, fi, r->value, r->data, r->len);
}

/* Writes the elements of a repeated field as a JSON array. */
static int write_list(context *ctx, const field_info *fi, const record *run,
                      size_t count) {
  bool first = true;
  size_t index = 0;
  rpc_json_open_container(ctx, '[');
  for (size_t i = 0; i < count; i++) {
    const record *r = &run[i];
    if (!record_fits(fi, r)) {
      continue;
    }
    if (r->wire_type != WIRE_LEN || !is_numeric(fi->type)) {
      rpc_json_begin_item(ctx, &first);
      size_t saved = rpc_json_push_index(ctx, index++);
      int rv = write_value(ctx, fi, r);
      rpc_json_pop_path(ctx, saved);
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
        size_t used =
            rpc_json_read_varint(r->data + offset, r->len - offset, &value);
        if (used == 0) {
          return rpc_json_fail(ctx,
                               "malformed wire data: truncated packed varint");
        }
        offset += used;
      } else {
        size_t width = element_type == WIRE_FIXED64 ? 8 : 4;
        if (r->len - offset < width) {
          return rpc_json_fail(ctx,
                               "malformed wire data: truncated packed value");
        }
        value = rpc_json_read_little_endian(r->data + offset, width);
        offset += width;
      }
      rpc_json_begin_item(ctx, &first);
      size_t saved = rpc_json_push_index(ctx, index++);
      int rv = rpc_json_write_scalar(ctx, fi, value, NULL, 0);
      rpc_json_pop_path(ctx, saved);
      if (rv != 0) {
        return -1;
      }
    }
  }
  rpc_json_close_container(ctx, ']', first);
  return 0;
}

/* Writes a map: its entries sorted by key, the last of equal keys kept.
 * value may be a well-known type's field (Struct). */
static int write_map(context *ctx, const char *entry_type,
                     const field_info *key, const field_info *value,
                     const record *run, size_t count) {
  map_entry *entries;
  size_t n;
  if (rpc_json_read_map_entries(ctx, entry_type, key, value, run, count,
                                &entries, &n) != 0) {
    return -1;
  }
  bool first = true;
  int rv = 0;
  rpc_json_open_container(ctx, '{');
  for (size_t i = 0; i < n && rv == 0; i++) {
    if (i + 1 < n && rpc_json_same_key(&entries[i], &entries[i + 1])) {
      continue; /* a later entry of the same key wins */
    }
    const map_entry *entry = &entries[i];
    char number[32];
    const char *text = (const char *)entry->key_data;
    size_t text_len = entry->key_len;
    if (!entry->string_key) {
      rpc_json_key_text(key->type, entry->key_value, number, sizeof(number));
      text = number;
      text_len = strlen(number);
    } else if (!rpc_json_utf8_valid(entry->key_data, entry->key_len)) {
      rv = rpc_json_fail(ctx, "map key is not valid UTF-8");
      break;
    }
    if (rpc_json_begin_member(ctx, &first, text, text_len) != 0) {
      rv = -1;
      break;
    }
    size_t saved = rpc_json_push_key(ctx, text, text_len);
    if (is_message(value->type)) {
      rv = write_message(ctx, &value->message, entry->value.data,
                         entry->value.len);
    } else if (entry->has_value) {
      rv = rpc_json_write_scalar(ctx, value, entry->value.value,
                                 entry->value.data, entry->value.len);
    } else {
      rv = rpc_json_write_scalar(ctx, value, 0, NULL, 0);
    }
    rpc_json_pop_path(ctx, saved);
  }
  if (rv == 0) {
    rpc_json_close_container(ctx, '}', first);
  }
  rpc_json_free_entries(entries, n);
  return rv;
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
  *owned = rpc_json_name_of(field);
  return *owned;
}

/* The value a field without presence shows by default. */
static int write_default(context *ctx, const field_info *fi) {
  if (fi->is_map) {
    rpc_json_emit_text(ctx, "{}");
    return 0;
  }
  if (fi->repeated) {
    rpc_json_emit_text(ctx, "[]");
    return 0;
  }
  return rpc_json_write_scalar(ctx, fi, 0, (const uint8_t *)"", 0);
}

/* Writes one field present on the wire (or its default). */
static int write_field(context *ctx, const type_ref *type, member_state *state,
                       const record_list *records, size_t i, bool *first) {
  const message_type *m = type->message;
  const field_type *field = m->field[i];
  const record *run = NULL;
  size_t count = field->number > 0
                     ? rpc_json_find_run(records, (uint32_t)field->number, &run)
                     : 0;
  field_info *fi = &state->infos[i];
  int oneof = oneof_of(m, field);
  size_t cutoff = SIZE_MAX;
  if (state->last[i] == SIZE_MAX) {
    if (!ctx->options.emit_defaults) {
      return 0;
    }
    if (!state->resolved[i]) {
      if (rpc_json_resolve_field(ctx, type, field, fi) != 0) {
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
  const record *last = count > 0 ? rpc_json_last_fitting(fi, run, count) : NULL;
  if (!fi->repeated && !is_message(fi->type) && !fi->presence && last != NULL &&
      rpc_json_is_default_value(fi, last) && !ctx->options.emit_defaults) {
    return 0;
  }
  char *owned_name;
  const char *name = output_name(ctx, field, &owned_name);
  if (name == NULL) {
    return rpc_json_fail_no_memory(ctx);
  }
  size_t saved = rpc_json_push_key(ctx, name, strlen(name));
  int rv = rpc_json_begin_member(ctx, first, name, strlen(name));
  free(owned_name);
  if (rv != 0) {
    return -1;
  }
  if (last == NULL) {
    rv = write_default(ctx, fi);
  } else if (fi->is_map) {
    field_info key, value;
    rv = rpc_json_resolve_map_entry(ctx, fi, &key, &value);
    if (rv == 0) {
      rv = write_map(ctx, fi->message.name, &key, &value, run, count);
    }
  } else if (fi->repeated) {
    rv = write_list(ctx, fi, run, count);
  } else if (is_message(fi->type)) {
    const uint8_t *data;
    size_t len;
    uint8_t *owned;
    rv = rpc_json_merged_message(ctx, fi, run, count, cutoff, &data, &len,
                                 &owned);
    if (rv == 0) {
      rv = write_message(ctx, &fi->message, data, len);
    }
    free(owned);
  } else {
    rv = write_value(ctx, fi, last);
  }
  rpc_json_pop_path(ctx, saved);
  return rv;
}

/* Writes the members of an ordinary message (no braces). */
static int write_members(context *ctx, const type_ref *type,
                         const uint8_t *data, size_t size, bool *first) {
  record_list records;
  member_state state = {0};
  int rv = rpc_json_scan_message(ctx, type->name, data, size, &records);
  if (rv == 0) {
    rv = rpc_json_settle_fields(ctx, type, &records, &state);
  }
  for (size_t i = 0; rv == 0 && i < type->message->n_field; i++) {
    rv = write_field(ctx, type, &state, &records, i, first);
  }
  rpc_json_free_member_state(&state);
  free(records.items);
  return rv;
}

static field_info value_field(uint32_t number) {
  field_info fi = rpc_json_plain_field(number, FIELD_TYPE(MESSAGE));
  fi.message.name = "google.protobuf.Value";
  fi.message.kind = WKT_VALUE;
  return fi;
}

static int write_struct_or_list(context *ctx, bool is_struct,
                                const uint8_t *data, size_t size);

/* google.protobuf.Value: its kind, the last one set; none is null. */
static int write_struct_value(context *ctx, const record_list *records) {
  static const uint8_t wire_types[7] = {
      0, WIRE_VARINT, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT, WIRE_LEN, WIRE_LEN};
  const record *chosen = NULL;
  size_t cutoff = SIZE_MAX;
  for (uint32_t number = 1; number <= 6; number++) {
    const record *run;
    size_t count = rpc_json_find_run(records, number, &run);
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
    rpc_json_emit_text(ctx, "null");
    return 0;
  }
  switch (chosen->number) {
  case 2: {
    double number = rpc_json_double_of_bits(chosen->value);
    if (!isfinite(number)) {
      return rpc_json_fail(ctx, "a Value cannot hold %s in JSON",
                           isnan(number) ? "NaN" : "an infinity");
    }
    rpc_json_emit_double(ctx, number, false);
    return 0;
  }
  case 3:
    return rpc_json_emit_string(ctx, chosen->data, chosen->len);
  case 4:
    rpc_json_emit_text(ctx, chosen->value != 0 ? "true" : "false");
    return 0;
  default: {
    field_info fi = rpc_json_plain_field(chosen->number, FIELD_TYPE(MESSAGE));
    const record *run;
    size_t count = rpc_json_find_run(records, chosen->number, &run);
    const uint8_t *data;
    size_t len;
    uint8_t *owned;
    int rv = rpc_json_merged_message(ctx, &fi, run, count, cutoff, &data, &len,
                                     &owned);
    if (rv == 0) {
      if (rpc_json_enter(ctx) != 0) {
        rv = -1;
      } else {
        rv = write_struct_or_list(ctx, chosen->number == 5, data, len);
        rpc_json_leave(ctx);
      }
    }
    free(owned);
    return rv;
  }
  }
}

/* A Struct (is_struct: its field 1, a map of Values) or a ListValue (its
 * field 1, a list of Values). */
static int write_struct_or_list(context *ctx, bool is_struct,
                                const uint8_t *data, size_t size) {
  record_list records;
  int rv = rpc_json_scan_message(
      ctx, is_struct ? "google.protobuf.Struct" : "google.protobuf.ListValue",
      data, size, &records);
  if (rv == 0) {
    const record *run;
    size_t count = rpc_json_find_run(&records, 1, &run);
    if (is_struct) {
      field_info key = rpc_json_plain_field(1, FIELD_TYPE(STRING));
      field_info value = value_field(2);
      rv = write_map(ctx, "google.protobuf.Struct.FieldsEntry", &key, &value,
                     run, count);
    } else {
      field_info values = value_field(1);
      values.repeated = true;
      rv = write_list(ctx, &values, run, count);
    }
  }
  free(records.items);
  return rv;
}

static int write_wrapper(context *ctx, const type_ref *type,
                         const record_list *records) {
  field_info fi = rpc_json_plain_field(1, type->wrapped);
  const record *run;
  size_t count = rpc_json_find_run(records, 1, &run);
  const record *last = rpc_json_last_fitting(&fi, run, count);
  if (last == NULL) {
    return rpc_json_write_scalar(ctx, &fi, 0, (const uint8_t *)"", 0);
  }
  return rpc_json_write_scalar(ctx, &fi, last->value, last->data, last->len);
}

static int write_any(context *ctx, const record_list *records) {
  field_info text = rpc_json_plain_field(1, FIELD_TYPE(STRING));
  const record *run;
  size_t count = rpc_json_find_run(records, 1, &run);
  const record *url = rpc_json_last_fitting(&text, run, count);
  count = rpc_json_find_run(records, 2, &run);
  const record *value = rpc_json_last_fitting(&text, run, count);
  if (url == NULL || url->len == 0) {
    if (value != NULL && value->len > 0) {
      return rpc_json_fail(ctx, "Any has a value but no type URL");
    }
    rpc_json_emit_text(ctx, "{}");
    return 0;
  }
  char name[512];
  type_ref inner;
  if (!rpc_json_utf8_valid(url->data, url->len)) {
    return rpc_json_fail(ctx, "Any type URL is not valid UTF-8");
  }
  if (rpc_json_type_of_url((const char *)url->data, url->len, name,
                           sizeof(name)) == NULL ||
      !rpc_json_find_message(ctx->pool, name, &inner)) {
    return rpc_json_fail(ctx, "Any type \"%.*s\" is not in the descriptor pool",
                         (int)(url->len > 200 ? 200 : url->len),
                         (const char *)url->data);
  }
  const uint8_t *data = value != NULL ? value->data : NULL;
  size_t len = value != NULL ? value->len : 0;
  bool first = true;
  rpc_json_open_container(ctx, '{');
  if (rpc_json_begin_member(ctx, &first, "@type", 5) != 0 ||
      rpc_json_emit_string(ctx, url->data, url->len) != 0) {
    return -1;
  }
  int rv;
  if (inner.kind == WKT_NONE) {
    rv = write_members(ctx, &inner, data, len, &first);
  } else {
    rv = rpc_json_begin_member(ctx, &first, "value", 5);
    if (rv == 0) {
      rv = write_message(ctx, &inner, data, len);
    }
  }
  rpc_json_close_container(ctx, '}', first);
  return rv;
}

/* Writes a message of type from its wire bytes. */
static int write_message(context *ctx, const type_ref *type,
                         const uint8_t *data, size_t size) {
  if (rpc_json_enter(ctx) != 0) {
    return -1;
  }
  int rv = 0;
  if (type->kind == WKT_NONE) {
    bool first = true;
    rpc_json_open_container(ctx, '{');
    rv = write_members(ctx, type, data, size, &first);
    rpc_json_close_container(ctx, '}', first);
  } else if (type->kind == WKT_STRUCT || type->kind == WKT_LIST_VALUE) {
    rv = write_struct_or_list(ctx, type->kind == WKT_STRUCT, data, size);
  } else {
    record_list records;
    rv = rpc_json_scan_message(ctx, type->name, data, size, &records);
    if (rv == 0) {
      switch (type->kind) {
      case WKT_ANY:
        rv = write_any(ctx, &records);
        break;
      case WKT_DURATION:
        rv = rpc_json_write_duration(ctx, &records);
        break;
      case WKT_TIMESTAMP:
        rv = rpc_json_write_timestamp(ctx, &records);
        break;
      case WKT_FIELD_MASK:
        rv = rpc_json_write_field_mask(ctx, &records);
        break;
      case WKT_VALUE:
        rv = write_struct_value(ctx, &records);
        break;
      case WKT_WRAPPER:
        rv = write_wrapper(ctx, type, &records);
        break;
      default: /* WKT_EMPTY: unknown fields are skipped */
        rpc_json_emit_text(ctx, "{}");
        break;
      }
    }
    free(records.items);
  }
  rpc_json_leave(ctx);
  return rv;
}

int rpc_json_from_wire(const rpc_descriptor_pool *pool, const char *type,
                       const uint8_t *data, size_t size,
                       const rpc_json_options *options, rpc_buffer *out,
                       char *err, size_t err_size) {
  context ctx;
  rpc_json_init_context(&ctx, pool, out, err, err_size);
  if (options != NULL) {
    ctx.options = *options;
  }
  if (ctx.options.indent > RPC_JSON_MAX_INDENT) {
    ctx.options.indent = RPC_JSON_MAX_INDENT;
  }
  size_t start = out->len;
  type_ref ref;
  int rv = rpc_json_resolve_message(&ctx, type, &ref);
  if (rv == 0) {
    rv = write_message(&ctx, &ref, data != NULL ? data : (const uint8_t *)"",
                       size);
  }
  if (rv == 0 && ctx.out_of_memory) {
    rv = rpc_json_fail_no_memory(&ctx);
  }
  if (rv != 0) {
    out->len = start;
    return -1;
  }
  return 0;
}
