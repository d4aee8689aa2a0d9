/* json_records.c: a message's wire bytes as records, sorted by field
 * number (keeping wire order), and what they give each field: the last
 * record of a singular field, all of a singular message merged, the member
 * of a oneof seen last, a map's entries sorted by key. */
#include "rpc/json_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int malformed(context *ctx, const char *type, const char *what) {
  return rpc_json_fail(ctx, "malformed wire data for %s: %s", type, what);
}

/* Reads the field at data[*offset] into r. Returns 1, 0 at the end-group
 * tag of group_number (0: none; *offset is then past it), or -1. */
static int next_field(context *ctx, const char *type, const uint8_t *data,
                      size_t size, size_t *offset, uint32_t group_number,
                      int depth, record *r) {
  uint64_t tag;
  size_t used = rpc_json_read_varint(data + *offset, size - *offset, &tag);
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
    used = rpc_json_read_varint(data + *offset, left, &r->value);
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
    r->value = rpc_json_read_little_endian(data + *offset, width);
    *offset += width;
    return 1;
  }
  case WIRE_LEN: {
    uint64_t len;
    used = rpc_json_read_varint(data + *offset, left, &len);
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
      return rpc_json_fail(ctx, "nested deeper than %d levels",
                           RPC_JSON_MAX_DEPTH);
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
int rpc_json_scan_message(context *ctx, const char *type, const uint8_t *data,
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
        return rpc_json_fail_no_memory(ctx);
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
size_t rpc_json_find_run(const record_list *list, uint32_t number,
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

/* The last record of the run that fits fi, or NULL. */
const record *rpc_json_last_fitting(const field_info *fi, const record *run,
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
int rpc_json_merged_message(context *ctx, const field_info *fi,
                            const record *run, size_t count, size_t cutoff,
                            const uint8_t **data, size_t *len,
                            uint8_t **owned) {
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
    return rpc_json_fail_no_memory(ctx);
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

bool rpc_json_same_key(const map_entry *x, const map_entry *y) {
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
    return (int32_t)rpc_json_zigzag_decode((uint64_t)(uint32_t)value);
  case FIELD_TYPE(SINT64):
    return rpc_json_zigzag_decode(value);
  default:
    return (int64_t)value;
  }
}

static bool is_signed_key(int type) {
  return type == FIELD_TYPE(INT32) || type == FIELD_TYPE(SFIXED32) ||
         type == FIELD_TYPE(SINT32) || type == FIELD_TYPE(INT64) ||
         type == FIELD_TYPE(SFIXED64) || type == FIELD_TYPE(SINT64);
}

void rpc_json_key_text(int type, uint64_t value, char *buf, size_t size) {
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

void rpc_json_free_entries(map_entry *entries, size_t count) {
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
  if (rpc_json_scan_message(ctx, entry_type, r->data, r->len, &fields) != 0) {
    free(fields.items);
    return -1;
  }
  const record *run;
  size_t count = rpc_json_find_run(&fields, 1, &run);
  const record *key_record = rpc_json_last_fitting(key, run, count);
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
  count = rpc_json_find_run(&fields, 2, &run);
  int rv = 0;
  if (is_message(value->type)) {
    const uint8_t *data;
    size_t len;
    rv = rpc_json_merged_message(ctx, value, run, count, SIZE_MAX, &data, &len,
                                 &entry->owned);
    entry->has_value = rpc_json_last_fitting(value, run, count) != NULL;
    entry->value.data = data;
    entry->value.len = len;
  } else {
    const record *found = rpc_json_last_fitting(value, run, count);
    entry->has_value = found != NULL;
    if (found != NULL) {
      entry->value = *found;
    }
  }
  free(fields.items);
  return rv;
}

/* Reads the entries of a map from its records and sorts them. */
int rpc_json_read_map_entries(context *ctx, const char *entry_type,
                              const field_info *key, const field_info *value,
                              const record *run, size_t count,
                              map_entry **entries_out, size_t *n_out) {
  map_entry *entries = calloc(count + 1, sizeof(*entries));
  if (entries == NULL) {
    return rpc_json_fail_no_memory(ctx);
  }
  size_t n = 0;
  for (size_t i = 0; i < count; i++) {
    if (run[i].wire_type != WIRE_LEN) {
      continue;
    }
    entries[n].index = n;
    if (read_entry(ctx, entry_type, key, value, &run[i], &entries[n]) != 0) {
      rpc_json_free_entries(entries, n + 1);
      return -1;
    }
    n++;
  }
  qsort(entries, n, sizeof(*entries), compare_entries);
  *entries_out = entries;
  *n_out = n;
  return 0;
}

void rpc_json_free_member_state(member_state *state) {
  free(state->infos);
  free(state->resolved);
  free(state->last);
  free(state->oneofs);
}

/* Resolves the fields present on the wire and settles the oneofs. */
int rpc_json_settle_fields(context *ctx, const type_ref *type,
                           const record_list *records, member_state *state) {
  const message_type *m = type->message;
  size_t n = m->n_field;
  state->infos = calloc(n + 1, sizeof(*state->infos));
  state->resolved = calloc(n + 1, sizeof(*state->resolved));
  state->last = calloc(n + 1, sizeof(*state->last));
  state->oneofs = calloc(m->n_oneof_decl + 1, sizeof(*state->oneofs));
  if (state->infos == NULL || state->resolved == NULL || state->last == NULL ||
      state->oneofs == NULL) {
    return rpc_json_fail_no_memory(ctx);
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
    size_t count =
        rpc_json_find_run(records, (uint32_t)m->field[i]->number, &run);
    if (count == 0) {
      continue;
    }
    if (rpc_json_resolve_field(ctx, type, m->field[i], &state->infos[i]) != 0) {
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
