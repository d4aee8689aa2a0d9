/* wire_check.c: protobuf wire bytes checked before unpacking. */
#include "rpc/wire_check.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* A path longer than this is shortened to its head, "..." and its tail. */
#define PATH_MAX_CHARS 120
#define PATH_HEAD_CHARS 80

/* The largest field number protobuf allows. */
#define MAX_FIELD_NUMBER 536870911u

typedef struct checker {
  unsigned max_depth;
  /* Names of the fields from the top message down to the one checked. */
  const char *path[RPC_MAX_MESSAGE_DEPTH + 1];
  unsigned path_len;
  char *err;
  size_t err_size;
} checker;

/* Appends text to err at *at, as much as fits. */
static void append(const checker *c, size_t *at, const char *text) {
  if (c->err_size == 0 || *at >= c->err_size - 1) {
    return;
  }
  size_t room = c->err_size - 1 - *at;
  size_t n = strlen(text);
  if (n > room) {
    n = room;
  }
  memcpy(c->err + *at, text, n);
  *at += n;
  c->err[*at] = '\0';
}

/* Writes "path: problem" to err; a long path keeps its first components
 * and its last one around "...". Returns code. */
static int fail(const checker *c, int code, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(const checker *c, int code, const char *format, ...) {
  if (c->err_size == 0) {
    return code;
  }
  c->err[0] = '\0';
  size_t at = 0;
  size_t total = 0;
  for (unsigned i = 0; i < c->path_len; i++) {
    total += strlen(c->path[i]) + 1;
  }
  size_t written = 0;
  for (unsigned i = 0; i < c->path_len; i++) {
    size_t n = strlen(c->path[i]);
    bool last = i + 1 == c->path_len;
    if (total > PATH_MAX_CHARS && !last && written + n > PATH_HEAD_CHARS) {
      append(c, &at, "...");
      append(c, &at, c->path[c->path_len - 1]);
      break;
    }
    if (i > 0) {
      append(c, &at, ".");
    }
    append(c, &at, c->path[i]);
    written += n + 1;
  }
  if (c->path_len > 0) {
    append(c, &at, ": ");
  }
  char problem[160];
  va_list args;
  va_start(args, format);
  vsnprintf(problem, sizeof(problem), format, args);
  va_end(args);
  append(c, &at, problem);
  return code;
}

/* Reads a varint of at most 10 bytes at *p. Returns false if it runs past
 * end or is longer. */
static bool read_varint(const uint8_t **p, const uint8_t *end,
                        uint64_t *value) {
  uint64_t v = 0;
  for (unsigned shift = 0; shift < 70; shift += 7) {
    if (*p == end) {
      return false;
    }
    uint8_t byte = *(*p)++;
    v |= (uint64_t)(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *value = v;
      return true;
    }
  }
  return false;
}

/* Is s[0..len) well-formed UTF-8 (RFC 3629: shortest forms, no surrogates,
 * nothing past U+10FFFF)? *has_nul tells whether it holds a U+0000. */
static bool utf8_valid(const uint8_t *s, size_t len, bool *has_nul) {
  *has_nul = false;
  size_t i = 0;
  while (i < len) {
    uint8_t b = s[i];
    if (b < 0x80) {
      if (b == 0) {
        *has_nul = true;
      }
      i++;
      continue;
    }
    size_t need;
    uint8_t low = 0x80, high = 0xbf; /* range of the second byte */
    if (b >= 0xc2 && b <= 0xdf) {
      need = 1;
    } else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b == 0xe0) {
        low = 0xa0; /* shorter forms are overlong */
      } else if (b == 0xed) {
        high = 0x9f; /* U+D800..U+DFFF are surrogates */
      }
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b == 0xf0) {
        low = 0x90;
      } else if (b == 0xf4) {
        high = 0x8f; /* past U+10FFFF */
      }
    } else {
      return false; /* a continuation byte, C0, C1 or F5..FF */
    }
    if (len - i <= need || s[i + 1] < low || s[i + 1] > high) {
      return false;
    }
    for (size_t k = 2; k <= need; k++) {
      if (s[i + k] < 0x80 || s[i + k] > 0xbf) {
        return false;
      }
    }
    i += need + 1;
  }
  return true;
}

static int check_message(checker *c,
                         const ProtobufCMessageDescriptor *descriptor,
                         const uint8_t *p, const uint8_t *end, unsigned depth);

/* Checks the length-delimited value p[0..len) of field. */
static int check_len_value(checker *c, const ProtobufCFieldDescriptor *field,
                           const uint8_t *p, size_t len, unsigned depth) {
  if (field->type == PROTOBUF_C_TYPE_STRING) {
    bool has_nul;
    c->path[c->path_len++] = field->name;
    int rv = 0;
    if (!utf8_valid(p, len, &has_nul)) {
      rv = fail(c, RPC_WIRE_CHECK_ERR_INVALID, "invalid UTF-8");
    } else if (has_nul) {
      rv = fail(c, RPC_WIRE_CHECK_ERR_INVALID, "contains a NUL byte");
    }
    c->path_len--;
    return rv;
  }
  if (field->type != PROTOBUF_C_TYPE_MESSAGE) {
    return 0; /* bytes, or a packed repeated scalar */
  }
  c->path[c->path_len++] = field->name;
  int rv = depth + 1 > c->max_depth
               ? fail(c, RPC_WIRE_CHECK_ERR_INVALID,
                      "nested deeper than %u levels", c->max_depth)
               : check_message(c, field->descriptor, p, p + len, depth + 1);
  c->path_len--;
  return rv;
}

static int check_message(checker *c,
                         const ProtobufCMessageDescriptor *descriptor,
                         const uint8_t *p, const uint8_t *end, unsigned depth) {
  while (p < end) {
    uint64_t tag;
    if (!read_varint(&p, end, &tag)) {
      return fail(c, RPC_WIRE_CHECK_ERR_MALFORMED, "truncated field tag");
    }
    uint64_t number = tag >> 3;
    unsigned wire_type = (unsigned)(tag & 7);
    if (number == 0 || number > MAX_FIELD_NUMBER) {
      return fail(c, RPC_WIRE_CHECK_ERR_MALFORMED, "field number %llu",
                  (unsigned long long)number);
    }
    uint64_t value;
    switch (wire_type) {
    case 0:
      if (!read_varint(&p, end, &value)) {
        return fail(c, RPC_WIRE_CHECK_ERR_MALFORMED,
                    "field %u: truncated varint", (unsigned)number);
      }
      break;
    case 1:
    case 5: {
      size_t width = wire_type == 1 ? 8 : 4;
      if ((size_t)(end - p) < width) {
        return fail(c, RPC_WIRE_CHECK_ERR_MALFORMED,
                    "field %u: truncated fixed value", (unsigned)number);
      }
      p += width;
      break;
    }
    case 2: {
      if (!read_varint(&p, end, &value) || value > (uint64_t)(end - p)) {
        return fail(c, RPC_WIRE_CHECK_ERR_MALFORMED,
                    "field %u: length past the end", (unsigned)number);
      }
      const ProtobufCFieldDescriptor *field =
          protobuf_c_message_descriptor_get_field(descriptor, (unsigned)number);
      if (field != NULL) {
        int rv = check_len_value(c, field, p, (size_t)value, depth);
        if (rv != 0) {
          return rv;
        }
      }
      p += value;
      break;
    }
    default: /* 3 and 4 (groups: not in protobuf-c), 6 and 7 (none) */
      return fail(c, RPC_WIRE_CHECK_ERR_MALFORMED, "field %u: wire type %u",
                  (unsigned)number, wire_type);
    }
  }
  return 0;
}

int rpc_wire_check(const ProtobufCMessageDescriptor *descriptor,
                   const uint8_t *data, size_t len, unsigned max_depth,
                   char *err, size_t err_size) {
  /* Fields set one by one: the path needs no zeroing (808 bytes a call). */
  checker c;
  c.max_depth =
      max_depth < RPC_MAX_MESSAGE_DEPTH ? max_depth : RPC_MAX_MESSAGE_DEPTH;
  c.path_len = 0;
  c.err = err;
  c.err_size = err_size;
  if (err_size > 0) {
    err[0] = '\0';
  }
  if (len == 0) {
    return 0;
  }
  return check_message(&c, descriptor, data, data + len, 0);
}
