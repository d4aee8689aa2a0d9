/* cli_input.c: request text, and JSON sequences cut with jansson. */
#include "client/cli_input.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

static int read_stream(FILE *in, rpc_buffer *out) {
  for (;;) {
    if (rpc_buffer_reserve(out, 65536) != 0) {
      return -1;
    }
    size_t got = fread(out->data + out->len, 1, out->cap - out->len - 1, in);
    out->len += got;
    if (got == 0) {
      return ferror(in) ? -1 : 0;
    }
  }
}

int cli_input_read(const char *arg, rpc_buffer *out, char *err,
                   size_t err_size) {
  rpc_buffer_init(out);
  int rv;
  if (strcmp(arg, "-") == 0) {
    rv = read_stream(stdin, out);
    if (rv != 0) {
      snprintf(err, err_size, "cannot read stdin: %s", strerror(errno));
    }
  } else if (arg[0] == '@') {
    FILE *in = fopen(arg + 1, "rb");
    if (in == NULL) {
      snprintf(err, err_size, "cannot open %s: %s", arg + 1, strerror(errno));
      return -1;
    }
    rv = read_stream(in, out);
    if (rv != 0) {
      snprintf(err, err_size, "cannot read %s: %s", arg + 1, strerror(errno));
    }
    fclose(in);
  } else {
    rv = rpc_buffer_append(out, arg, strlen(arg));
    if (rv != 0) {
      snprintf(err, err_size, "out of memory");
    }
  }
  if (rv == 0 && rpc_buffer_reserve(out, 1) != 0) {
    snprintf(err, err_size, "out of memory");
    rv = -1;
  }
  if (rv != 0) {
    rpc_buffer_free(out);
    return -1;
  }
  out->data[out->len] = '\0';
  return 0;
}

int cli_input_next_json(const char *text, size_t len, size_t *offset,
                        size_t *start, size_t *end, char *err,
                        size_t err_size) {
  size_t at = *offset;
  while (at < len && isspace((unsigned char)text[at])) {
    at++;
  }
  *offset = at;
  if (at == len) {
    return 0;
  }
  /* jansson reads one value and says how far it read; a value that is a
   * bare number is read one character past its end, which is white space
   * or the next value's opening and is handed back. */
  json_error_t error;
  json_t *value = json_loadb(text + at, len - at,
                             JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &error);
  if (value == NULL) {
    snprintf(err, err_size, "not JSON at line %d, column %d: %s", error.line,
             error.column, error.text);
    return -1;
  }
  size_t used = (size_t)error.position;
  if (json_is_number(value) && used > 0 && at + used <= len &&
      !isdigit((unsigned char)text[at + used - 1])) {
    used--;
  }
  json_decref(value);
  *start = at;
  *end = at + used;
  *offset = at + used;
  return 1;
}
