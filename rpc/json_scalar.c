/* json_scalar.c: one scalar value (numbers, bool, enum, string, bytes)
 * between its wire value and its JSON: 64-bit integers as decimal strings,
 * enums by name, bytes as base64, "NaN" and the infinities quoted. Integers
 * are parsed exactly from their text ("1e3" and "100.0" are integers, "1.5"
 * is not), floats straight from their decimal text. */
#include "rpc/json_internal.h"

#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/base64.h"

double rpc_json_double_of_bits(uint64_t bits) {
  double value;
  memcpy(&value, &bits, sizeof(value));
  return value;
}

static float float_of_bits(uint32_t bits) {
  float value;
  memcpy(&value, &bits, sizeof(value));
  return value;
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
int rpc_json_write_scalar(context *ctx, const field_info *fi, uint64_t value,
                          const uint8_t *data, size_t len) {
  switch (fi->type) {
  case FIELD_TYPE(DOUBLE):
    rpc_json_emit_double(ctx, rpc_json_double_of_bits(value), false);
    return 0;
  case FIELD_TYPE(FLOAT):
    rpc_json_emit_double(ctx, (double)float_of_bits((uint32_t)value), true);
    return 0;
  case FIELD_TYPE(INT64):
  case FIELD_TYPE(SFIXED64):
    rpc_json_emit_format(ctx, "\"%" PRId64 "\"", (int64_t)value);
    return 0;
  case FIELD_TYPE(SINT64):
    rpc_json_emit_format(ctx, "\"%" PRId64 "\"", rpc_json_zigzag_decode(value));
    return 0;
  case FIELD_TYPE(UINT64):
  case FIELD_TYPE(FIXED64):
    rpc_json_emit_format(ctx, "\"%" PRIu64 "\"", value);
    return 0;
  case FIELD_TYPE(INT32):
  case FIELD_TYPE(SFIXED32):
    rpc_json_emit_format(ctx, "%" PRId32, (int32_t)(uint32_t)value);
    return 0;
  case FIELD_TYPE(SINT32):
    rpc_json_emit_format(
        ctx, "%" PRId32,
        (int32_t)rpc_json_zigzag_decode((uint64_t)(uint32_t)value));
    return 0;
  case FIELD_TYPE(UINT32):
  case FIELD_TYPE(FIXED32):
    rpc_json_emit_format(ctx, "%" PRIu32, (uint32_t)value);
    return 0;
  case FIELD_TYPE(BOOL):
    rpc_json_emit_text(ctx, value != 0 ? "true" : "false");
    return 0;
  case FIELD_TYPE(ENUM): {
    int32_t number = (int32_t)(uint32_t)value;
    const char *name =
        fi->null_value ? NULL : enum_name(fi->enumeration, number);
    if (fi->null_value) {
      rpc_json_emit_text(ctx, "null");
    } else if (name != NULL) {
      return rpc_json_emit_text_string(ctx, name);
    } else {
      rpc_json_emit_format(ctx, "%" PRId32, number);
    }
    return 0;
  }
  case FIELD_TYPE(STRING):
    return rpc_json_emit_string(ctx, data, len);
  case FIELD_TYPE(BYTES):
    rpc_json_emit(ctx, "\"", 1);
    if (!ctx->out_of_memory && rpc_base64_encode(data, len, ctx->out) != 0) {
      ctx->out_of_memory = true;
    }
    rpc_json_emit(ctx, "\"", 1);
    return 0;
  default:
    return rpc_json_fail(ctx, "unexpected field type %d", fi->type);
  }
}

/* Whether a singular value without presence is its default and so not
 * written (proto3: zero bits, an empty string). */
bool rpc_json_is_default_value(const field_info *fi, const record *r) {
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

static const char *type_label(int type) {
  static const char *const labels[] = {
      "?",        "double",   "float",   "int64",  "uint64",
      "int32",    "fixed64",  "fixed32", "bool",   "string",
      "group",    "message",  "bytes",   "uint32", "enum",
      "sfixed32", "sfixed64", "sint32",  "sint64"};
  return type >= 1 && type <= 18 ? labels[type] : labels[0];
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
    return rpc_json_fail(ctx, "\"%.*s\" is not a number", shown, text);
  case NUMBER_FRACTION:
    return rpc_json_fail(ctx, "%.*s is not an integer", shown, text);
  case NUMBER_RANGE:
    return rpc_json_fail(ctx, "%.*s is out of range for %s", shown, text,
                         type_label(type));
  default:
    break;
  }
  if (!fits(type, negative, magnitude)) {
    return rpc_json_fail(ctx, "%.*s is out of range for %s", shown, text,
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
    return rpc_json_fail(ctx, "expected a number for %s, got %s",
                         type_label(type), rpc_json_kind(v));
  }
  const number_token *token = rpc_json_number_text(ctx, v);
  if (token == NULL) {
    return rpc_json_fail(ctx, "internal error: a number without its text");
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
    return rpc_json_fail_no_memory(ctx);
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
    const number_token *token = rpc_json_number_text(ctx, v);
    if (token == NULL) {
      return rpc_json_fail(ctx, "internal error: a number without its text");
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
      return rpc_json_fail(ctx, "\"%.*s\" is not a number",
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
        return rpc_json_fail(ctx, "%.*s is out of range for %s",
                             len > 64 ? 64 : (int)len, text, type_label(type));
      }
      value = json_real_value(number);
      json_decref(number);
    }
  } else {
    return rpc_json_fail(ctx, "expected a number for %s, got %s",
                         type_label(type), rpc_json_kind(v));
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
      return rpc_json_fail(ctx, "%.*s is out of range for float",
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
    return rpc_json_fail(ctx, "expected null for %s, got %s", NULL_VALUE_TYPE,
                         rpc_json_kind(v));
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
    return rpc_json_fail(ctx, "unknown value \"%.*s\" for enum %s",
                         len > 64 ? 64 : (int)len, name, enum_name_text);
  }
  if (!json_is_real(v)) {
    return rpc_json_fail(ctx, "expected a name or number for enum %s, got %s",
                         enum_name_text, rpc_json_kind(v));
  }
  if (integer_value(ctx, FIELD_TYPE(ENUM), v, bits) != 0) {
    return -1;
  }
  int32_t number = (int32_t)(int64_t)*bits;
  if (fi->closed_enum && enum_name(e, number) == NULL) {
    return rpc_json_fail(ctx, "%" PRId32 " is not a value of enum %s", number,
                         enum_name_text);
  }
  return 0;
}

int rpc_json_parse_scalar(context *ctx, const field_info *fi, const json_t *v,
                          scalar *out) {
  memset(out, 0, sizeof(*out));
  switch (fi->type) {
  case FIELD_TYPE(DOUBLE):
  case FIELD_TYPE(FLOAT):
    return real_value(ctx, fi->type, v, &out->bits);
  case FIELD_TYPE(BOOL):
    if (!json_is_boolean(v)) {
      return rpc_json_fail(ctx, "expected true or false, got %s",
                           rpc_json_kind(v));
    }
    out->bits = json_is_true(v);
    return 0;
  case FIELD_TYPE(STRING):
  case FIELD_TYPE(BYTES):
    if (!json_is_string(v)) {
      return rpc_json_fail(ctx, "expected a %sstring, got %s",
                           fi->type == FIELD_TYPE(BYTES) ? "base64 " : "",
                           rpc_json_kind(v));
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

bool rpc_json_scalar_is_default(const field_info *fi, const scalar *s) {
  if (fi->type == FIELD_TYPE(STRING) || fi->type == FIELD_TYPE(BYTES)) {
    return s->len == 0;
  }
  return s->bits == 0;
}

/* Writes a scalar's value (without its tag). */
int rpc_json_put_scalar(context *ctx, const field_info *fi, const scalar *s) {
  switch (wire_type_of(fi->type)) {
  case WIRE_FIXED32:
    return rpc_json_put_fixed(ctx, s->bits, 4);
  case WIRE_FIXED64:
    return rpc_json_put_fixed(ctx, s->bits, 8);
  case WIRE_LEN:
    if (fi->type == FIELD_TYPE(STRING)) {
      if (rpc_json_put_varint(ctx, s->len) != 0) {
        return -1;
      }
      return rpc_json_put(ctx, s->text, s->len);
    } else {
      size_t start = rpc_json_begin_len(ctx);
      if (rpc_base64_decode(s->text, s->len, ctx->out) != 0) {
        return rpc_json_fail(ctx, "\"%.*s\" is not valid base64",
                             s->len > 64 ? 64 : (int)s->len, s->text);
      }
      return rpc_json_end_len(ctx, start);
    }
  default:
    return rpc_json_put_varint(ctx, s->bits);
  }
}

/* Parses a map key (always a JSON string) of the key field's type. */
int rpc_json_parse_key(context *ctx, const field_info *key, const char *text,
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
    return rpc_json_fail(ctx, "a bool map key is \"true\" or \"false\"");
  }
  return integer_of_text(ctx, key->type, text, len, &out->bits);
}
