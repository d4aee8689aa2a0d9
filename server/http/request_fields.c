/* request_fields.c: path variables and query parameters as request
 * fields. Field lookup, scalar parsing and the wire primitives are
 * ProtoJSON's (rpc/json_internal.h), so a key and a value mean here what
 * they mean in a JSON body. */
#include "server/http/request_fields.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/json_internal.h"
#include "server/http/percent.h"

/* A key of more dotted parts than this is refused. */
#define MAX_KEY_PARTS 32

/* Values are quoted in errors up to this many bytes. */
#define SHOWN(len) ((len) > 64 ? 64 : (int)(len))

static int put_bool(context *ctx, const field_info *fi, const char *value,
                    size_t len) {
  uint64_t bit;
  if (equals("true", value, len) || equals("1", value, len)) {
    bit = 1;
  } else if (equals("false", value, len) || equals("0", value, len)) {
    bit = 0;
  } else {
    return rpc_json_fail(ctx, "\"%.*s\" is not a bool (true, false, 1 or 0)",
                         SHOWN(len), value);
  }
  if (rpc_json_put_tag(ctx, fi->number, WIRE_VARINT) != 0) {
    return -1;
  }
  return rpc_json_put_varint(ctx, bit);
}

/* A number, or a string holding one, parsed as ProtoJSON parses it. */
static int parse_number(context *ctx, const field_info *fi, const char *value,
                        size_t len, scalar *out) {
  json_t *text = json_stringn_nocheck(value, len);
  if (text == NULL) {
    return rpc_json_fail_no_memory(ctx);
  }
  int rv = rpc_json_parse_scalar(ctx, fi, text, out);
  json_decref(text);
  return rv;
}

static int enum_number(context *ctx, const field_info *fi, const char *value,
                       size_t len, uint64_t *bits) {
  if (fi->null_value) {
    if (equals("NULL_VALUE", value, len) || equals("0", value, len)) {
      *bits = 0;
      return 0;
    }
    return rpc_json_fail(ctx, "\"%.*s\" is not NULL_VALUE", SHOWN(len), value);
  }
  const enum_type *e = fi->enumeration;
  const char *enum_name = without_dot(fi->field->type_name);
  for (size_t i = 0; i < e->n_value; i++) {
    if (e->value[i]->name != NULL && equals(e->value[i]->name, value, len)) {
      *bits = (uint64_t)(int64_t)e->value[i]->number;
      return 0;
    }
  }
  if (len == 0 || !(is_digit(value[0]) || value[0] == '-')) {
    return rpc_json_fail(ctx, "unknown value \"%.*s\" for enum %s", SHOWN(len),
                         value, enum_name);
  }
  field_info as_int32 = rpc_json_plain_field(fi->number, FIELD_TYPE(INT32));
  scalar number;
  if (parse_number(ctx, &as_int32, value, len, &number) != 0) {
    return -1;
  }
  *bits = number.bits;
  for (size_t i = 0; fi->closed_enum && i < e->n_value; i++) {
    if ((uint64_t)(int64_t)e->value[i]->number == number.bits) {
      return 0;
    }
  }
  if (fi->closed_enum) {
    return rpc_json_fail(ctx, "%.*s is not a value of enum %s", SHOWN(len),
                         value, enum_name);
  }
  return 0;
}

/* Writes the tag and value of the scalar field fi from value[0..len). */
static int put_value(context *ctx, const field_info *fi, const char *value,
                     size_t len) {
  scalar s = {.text = value, .len = len};
  switch (fi->type) {
  case FIELD_TYPE(STRING):
    if (!rpc_json_utf8_valid((const uint8_t *)value, len)) {
      return rpc_json_fail(ctx, "\"%.*s\" is not UTF-8", SHOWN(len), value);
    }
    return rpc_json_put_string(ctx, fi->number, value, len);
  case FIELD_TYPE(BYTES):
    break; /* rpc_json_put_scalar decodes base64 and base64url */
  case FIELD_TYPE(BOOL):
    return put_bool(ctx, fi, value, len);
  case FIELD_TYPE(ENUM):
    if (enum_number(ctx, fi, value, len, &s.bits) != 0) {
      return -1;
    }
    break;
  default:
    if (parse_number(ctx, fi, value, len, &s) != 0) {
      return -1;
    }
  }
  if (rpc_json_put_tag(ctx, fi->number, wire_type_of(fi->type)) != 0) {
    return -1;
  }
  return rpc_json_put_scalar(ctx, fi, &s);
}

/* Resolves the field key[0..key_len) names in type into chain[0..*count):
 * the messages its dotted parts go through, then the leaf, a scalar unless
 * any_leaf. ctx's path is the whole key. */
static int resolve_key(context *ctx, const char *type, const char *key,
                       size_t key_len, bool any_leaf, field_info *chain,
                       size_t *count) {
  type_ref owner;
  if (rpc_json_resolve_message(ctx, type, &owner) != 0) {
    return -1;
  }
  *count = 0;
  const char *part = key;
  const char *end = key + key_len;
  for (;;) {
    const char *dot = memchr(part, '.', (size_t)(end - part));
    size_t part_len = (size_t)((dot != NULL ? dot : end) - part);
    size_t index = owner.message != NULL
                       ? rpc_json_field_by_key(owner.message, part, part_len)
                       : SIZE_MAX;
    if (index == SIZE_MAX) {
      return rpc_json_fail(ctx, "no field \"%.*s\" in %s", SHOWN(part_len),
                           part, owner.name);
    }
    field_info *fi = &chain[(*count)++];
    if (rpc_json_resolve_field(ctx, &owner, owner.message->field[index], fi) !=
        0) {
      return -1;
    }
    if (dot == NULL) {
      if (!any_leaf && is_message(fi->type)) {
        return rpc_json_fail(ctx, "%s is a message, not a value",
                             field_name(fi->field));
      }
      return 0;
    }
    if (fi->type != FIELD_TYPE(MESSAGE) || fi->repeated ||
        fi->message.kind != WKT_NONE || *count == MAX_KEY_PARTS) {
      return rpc_json_fail(ctx, "%s is not a singular message to go into",
                           field_name(fi->field));
    }
    owner = fi->message;
    part = dot + 1;
  }
}

/* Appends the field key names: each message on its way opened, the value,
 * the messages closed. */
static int append_field(context *ctx, const char *type, const char *key,
                        size_t key_len, const char *value, size_t value_len) {
  field_info chain[MAX_KEY_PARTS];
  size_t count = 0;
  if (resolve_key(ctx, type, key, key_len, false, chain, &count) != 0) {
    return -1;
  }
  size_t starts[MAX_KEY_PARTS];
  for (size_t i = 0; i + 1 < count; i++) {
    if (rpc_json_put_tag(ctx, chain[i].number, WIRE_LEN) != 0) {
      return -1;
    }
    starts[i] = rpc_json_begin_len(ctx);
  }
  if (put_value(ctx, &chain[count - 1], value, value_len) != 0) {
    return -1;
  }
  for (size_t i = count - 1; i > 0; i--) {
    if (rpc_json_end_len(ctx, starts[i - 1]) != 0) {
      return -1;
    }
  }
  return 0;
}

int http_request_field_check(const rpc_descriptor_pool *pool, const char *type,
                             const char *key, bool any_leaf, char *err,
                             size_t err_size) {
  context ctx;
  rpc_json_init_context(&ctx, pool, NULL, err, err_size);
  rpc_json_push_key(&ctx, key, strlen(key));
  field_info chain[MAX_KEY_PARTS];
  size_t count = 0;
  return resolve_key(&ctx, type, key, strlen(key), any_leaf, chain, &count);
}

int http_request_field_append(const rpc_descriptor_pool *pool, const char *type,
                              const char *key, size_t key_len,
                              const char *value, size_t value_len,
                              rpc_buffer *wire, char *err, size_t err_size) {
  context ctx;
  rpc_json_init_context(&ctx, pool, wire, err, err_size);
  rpc_json_push_key(&ctx, key, key_len);
  size_t original = wire->len;
  if (append_field(&ctx, type, key, key_len, value, value_len) != 0) {
    wire->len = original;
    return -1;
  }
  return 0;
}

/* Decodes in[0..len) by mode into scratch (grown as needed; the caller
 * frees it), its length in *decoded_len. Returns 0, or -1 with err filled
 * (what names the part) on a malformed escape or no memory. */
static int decode(const char *in, size_t len, http_percent_mode mode,
                  const char *what, rpc_buffer *scratch, size_t *decoded_len,
                  char *err, size_t err_size) {
  rpc_buffer_reset(scratch);
  if (rpc_buffer_reserve(scratch, len + 1) != 0) {
    snprintf(err, err_size, "out of memory");
    return -1;
  }
  if (http_percent_decode(in, len, mode, (char *)scratch->data, decoded_len) !=
      0) {
    snprintf(err, err_size, "%s \"%.*s\": a '%%' without two hex digits", what,
             SHOWN(len), in);
    return -1;
  }
  return 0;
}

int http_request_fields_from_path(const rpc_descriptor_pool *pool,
                                  const char *type,
                                  const http_route_binding *bindings,
                                  size_t count, rpc_buffer *wire, char *err,
                                  size_t err_size) {
  size_t original = wire->len;
  rpc_buffer value;
  rpc_buffer_init(&value);
  int rv = 0;
  for (size_t i = 0; rv == 0 && i < count; i++) {
    const http_route_binding *b = &bindings[i];
    size_t len = 0;
    rv = decode(b->value, b->len,
                b->multi_segment ? HTTP_PERCENT_MULTI_SEGMENT
                                 : HTTP_PERCENT_SEGMENT,
                b->field_path, &value, &len, err, err_size);
    if (rv == 0) {
      rv = http_request_field_append(
          pool, type, b->field_path, strlen(b->field_path),
          (const char *)value.data, len, wire, err, err_size);
    }
  }
  rpc_buffer_free(&value);
  if (rv != 0) {
    wire->len = original;
  }
  return rv;
}

int http_request_fields_from_query(const rpc_descriptor_pool *pool,
                                   const char *type, const char *query,
                                   size_t len, rpc_buffer *wire, char *err,
                                   size_t err_size) {
  size_t original = wire->len;
  rpc_buffer key, value;
  rpc_buffer_init(&key);
  rpc_buffer_init(&value);
  int rv = 0;
  const char *end = query + len;
  for (const char *pair = query; rv == 0 && pair < end;) {
    const char *amp = memchr(pair, '&', (size_t)(end - pair));
    const char *pair_end = amp != NULL ? amp : end;
    const char *equal = memchr(pair, '=', (size_t)(pair_end - pair));
    const char *key_end = equal != NULL ? equal : pair_end;
    const char *value_start = equal != NULL ? equal + 1 : pair_end;
    size_t key_len = 0, value_len = 0;
    if (pair_end > pair) {
      rv = decode(pair, (size_t)(key_end - pair), HTTP_PERCENT_QUERY,
                  "query key", &key, &key_len, err, err_size);
      if (rv == 0) {
        rv = decode(value_start, (size_t)(pair_end - value_start),
                    HTTP_PERCENT_QUERY, "query value", &value, &value_len, err,
                    err_size);
      }
      if (rv == 0) {
        rv = http_request_field_append(pool, type, (const char *)key.data,
                                       key_len, (const char *)value.data,
                                       value_len, wire, err, err_size);
      }
    }
    pair = pair_end + 1;
  }
  rpc_buffer_free(&key);
  rpc_buffer_free(&value);
  if (rv != 0) {
    wire->len = original;
  }
  return rv;
}
