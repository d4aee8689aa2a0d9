/* json_text.c: JSON text. Writing: strings escaped and checked for
 * UTF-8, numbers with the fewest digits that read back, indentation.
 * Reading: jansson parses numbers as doubles and keeps no text, so each
 * number token is found again in the text for exact integers. */
#include "rpc/json_internal.h"

#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rpc_json_emit(context *ctx, const void *data, size_t len) {
  if (!ctx->out_of_memory && rpc_buffer_append(ctx->out, data, len) != 0) {
    ctx->out_of_memory = true;
  }
}

void rpc_json_emit_text(context *ctx, const char *text) {
  rpc_json_emit(ctx, text, strlen(text));
}

static void emit_newline(context *ctx) {
  static const char spaces[] = "                                ";
  if (ctx->options.indent <= 0) {
    return;
  }
  rpc_json_emit(ctx, "\n", 1);
  size_t todo = (size_t)ctx->options.indent * (size_t)ctx->level;
  while (todo > 0) {
    size_t chunk = todo < sizeof(spaces) - 1 ? todo : sizeof(spaces) - 1;
    rpc_json_emit(ctx, spaces, chunk);
    todo -= chunk;
  }
}

void rpc_json_open_container(context *ctx, char open) {
  rpc_json_emit(ctx, &open, 1);
  ctx->level++;
}

void rpc_json_close_container(context *ctx, char close, bool empty) {
  ctx->level--;
  if (!empty) {
    emit_newline(ctx);
  }
  rpc_json_emit(ctx, &close, 1);
}

void rpc_json_begin_item(context *ctx, bool *first) {
  if (!*first) {
    rpc_json_emit(ctx, ",", 1);
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

bool rpc_json_utf8_valid(const uint8_t *s, size_t len) {
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
int rpc_json_emit_string(context *ctx, const uint8_t *s, size_t len) {
  if (len == 0) {
    s = (const uint8_t *)""; /* an absent map key: NULL */
  }
  if (!rpc_json_utf8_valid(s, len)) {
    return rpc_json_fail(ctx, "string is not valid UTF-8");
  }
  rpc_json_emit(ctx, "\"", 1);
  size_t run = 0;
  for (size_t i = 0; i < len; i++) {
    uint8_t c = s[i];
    if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7F) {
      continue;
    }
    rpc_json_emit(ctx, s + run, i - run);
    run = i + 1;
    /* The characters with a two-character escape, then their letters. */
    static const char escaped[] = "\"\\\n\r\t\b\f";
    static const char letters[] = "\"\\nrtbf";
    const char *found = memchr(escaped, c, sizeof(escaped) - 1);
    char escape[8];
    if (found != NULL) {
      escape[0] = '\\';
      escape[1] = letters[found - escaped];
      rpc_json_emit(ctx, escape, 2);
    } else {
      snprintf(escape, sizeof(escape), "\\u%04x", (unsigned)c);
      rpc_json_emit(ctx, escape, 6);
    }
  }
  rpc_json_emit(ctx, s + run, len - run);
  rpc_json_emit(ctx, "\"", 1);
  return 0;
}

int rpc_json_emit_text_string(context *ctx, const char *text) {
  return rpc_json_emit_string(ctx, (const uint8_t *)text, strlen(text));
}

int rpc_json_begin_member(context *ctx, bool *first, const char *key,
                          size_t len) {
  rpc_json_begin_item(ctx, first);
  if (rpc_json_emit_string(ctx, (const uint8_t *)key, len) != 0) {
    return -1;
  }
  rpc_json_emit(ctx, ctx->options.indent > 0 ? ": " : ":",
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
  /* Whole numbers (most numbers in Structs: counts, ids, timestamps) print
   * as their exact digits, which is what the search below ends in for
   * any whole number under 1e21, without its snprintf and strtod calls. */
  if (fabs(value) < 0x1p62 && value == (double)(long long)value &&
      !(value == 0 && signbit(value))) {
    snprintf(buf, size, "%lld", (long long)value);
    return;
  }
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

void rpc_json_emit_double(context *ctx, double value, bool single) {
  if (isnan(value)) {
    rpc_json_emit_text(ctx, "\"NaN\"");
  } else if (isinf(value)) {
    rpc_json_emit_text(ctx, value > 0 ? "\"Infinity\"" : "\"-Infinity\"");
  } else {
    char buf[40];
    format_number(value, single, buf, sizeof(buf));
    rpc_json_emit_text(ctx, buf);
  }
}

void rpc_json_emit_format(context *ctx, const char *format, ...) {
  char buf[64];
  va_list args;
  va_start(args, format);
  int used = vsnprintf(buf, sizeof(buf), format, args);
  va_end(args);
  if (used > 0) {
    rpc_json_emit(ctx, buf,
                  (size_t)used < sizeof(buf) ? (size_t)used : sizeof(buf) - 1);
  }
}

const char *rpc_json_kind(const json_t *v) {
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

/* Every real of the tree, in document order (jansson keeps objects in
 * insertion order), to be matched with the number tokens of the text. */
static int walk_numbers(context *ctx, size_t *cap, const json_t *v) {
  if (json_is_real(v)) {
    if (ctx->number_count == *cap) {
      size_t grown_cap = *cap ? *cap * 2 : 32;
      number_token *grown = realloc(ctx->numbers, grown_cap * sizeof(*grown));
      if (grown == NULL) {
        return rpc_json_fail_no_memory(ctx);
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

static bool in_number(char c) {
  return is_digit(c) || c == '-' || c == '+' || c == '.' || c == 'e' ||
         c == 'E';
}

/* Pairs each parsed number with its text: jansson keeps none, and a
 * 64-bit integer must not pass through a double. */
int rpc_json_index_numbers(context *ctx, const json_t *root, const char *text,
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
    return rpc_json_fail(ctx,
                         "internal error: %zu numbers in the text, %zu parsed",
                         found, ctx->number_count);
  }
  if (ctx->number_count > 1) {
    qsort(ctx->numbers, ctx->number_count, sizeof(number_token),
          compare_tokens);
  }
  return 0;
}

const number_token *rpc_json_number_text(const context *ctx, const json_t *v) {
  number_token key = {v, NULL, 0};
  if (ctx->number_count == 0) {
    return NULL;
  }
  return bsearch(&key, ctx->numbers, ctx->number_count, sizeof(number_token),
                 compare_tokens);
}
