/* base64_stream.c: chunked base64 decoding (see the header). */
#include "server/http/base64_stream.h"

#include <string.h>

#include "rpc/base64.h"

void base64_stream_init(base64_stream *stream) { stream->pending_len = 0; }

static bool in_alphabet(uint8_t c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=';
}

/* A quantum is valid when padding, if any, only ends it (one or two '='
 * after at least two characters). */
static bool quantum_is_valid(const char quantum[4]) {
  if (quantum[0] == '=' || quantum[1] == '=') {
    return false;
  }
  return quantum[2] != '=' || quantum[3] == '=';
}

int base64_stream_decode(base64_stream *stream, const uint8_t *text, size_t len,
                         rpc_buffer *out) {
  for (size_t i = 0; i < len; i++) {
    uint8_t c = text[i];
    if (c == '\r' || c == '\n') {
      continue;
    }
    if (!in_alphabet(c)) {
      return -1;
    }
    stream->pending[stream->pending_len++] = (char)c;
    if (stream->pending_len < 4) {
      continue;
    }
    stream->pending_len = 0;
    /* One quantum at a time: each may carry its own padding. */
    if (!quantum_is_valid(stream->pending) ||
        rpc_base64_decode(stream->pending, 4, out) != 0) {
      return -1;
    }
  }
  return 0;
}

bool base64_stream_is_partial(const base64_stream *stream) {
  return stream->pending_len > 0;
}
