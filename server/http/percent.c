/* percent.c: percent-decoding of path variables and query parameters. */
#include "server/http/percent.h"

#include "rpc/status.h"

int http_percent_decode(const char *in, size_t len, http_percent_mode mode,
                        char *out, size_t *out_len) {
  size_t at = 0;
  for (size_t i = 0; i < len; i++) {
    if (in[i] == '+' && mode == HTTP_PERCENT_QUERY) {
      out[at++] = ' ';
      continue;
    }
    if (in[i] != '%') {
      out[at++] = in[i];
      continue;
    }
    int high = i + 2 < len ? rpc_hex_value(in[i + 1]) : -1;
    int low = i + 2 < len ? rpc_hex_value(in[i + 2]) : -1;
    if (high < 0 || low < 0) {
      return -1;
    }
    char decoded = (char)(high << 4 | low);
    if (decoded == '/' && mode == HTTP_PERCENT_MULTI_SEGMENT) {
      /* http.proto: a multi-segment variable keeps %2F as it came. */
      out[at++] = in[i];
      out[at++] = in[i + 1];
      out[at++] = in[i + 2];
    } else {
      out[at++] = decoded;
    }
    i += 2;
  }
  *out_len = at;
  return 0;
}
