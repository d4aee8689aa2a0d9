/* json_headers.c: JSON transcoding's request headers (see the header). */
#include "server/http/json_headers.h"

#include <string.h>

/* "Grpc-Metadata-" in the lower case HTTP/2 gives header names. */
#define METADATA_PREFIX "grpc-metadata-"

/* Longest whole seconds of X-Request-Timeout: past 100 years is no
 * deadline anyone means, and the nanoseconds stay in 64 bits. */
#define TIMEOUT_SECONDS_DIGITS_MAX 10

const char *json_call_header(const char *name) {
  size_t prefix_len = strlen(METADATA_PREFIX);
  if (strncmp(name, METADATA_PREFIX, prefix_len) == 0 &&
      name[prefix_len] != '\0') {
    return name + prefix_len;
  }
  if (strcmp(name, "authorization") == 0 || strcmp(name, "grpc-timeout") == 0) {
    return name;
  }
  return NULL;
}

int json_call_deadline(const rpc_http_request *request, uint64_t *timeout_ns) {
  const char *value = rpc_http_request_header(request, "x-request-timeout");
  *timeout_ns = 0;
  if (value == NULL ||
      rpc_http_request_header(request, "grpc-timeout") != NULL) {
    return 0;
  }
  size_t whole = strspn(value, "0123456789");
  if (whole == 0 || whole > TIMEOUT_SECONDS_DIGITS_MAX) {
    return -1;
  }
  uint64_t ns = 0;
  for (size_t i = 0; i < whole; i++) {
    ns = ns * 10 + (uint64_t)(value[i] - '0');
  }
  ns *= 1000000000u;
  const char *fraction = value + whole;
  if (*fraction == '.') {
    size_t digits = strspn(fraction + 1, "0123456789");
    if (digits == 0 || fraction[1 + digits] != '\0') {
      return -1;
    }
    uint64_t scale = 100000000u; /* ns of the first fraction digit */
    for (size_t i = 1; i <= digits && scale > 0; i++, scale /= 10) {
      ns += (uint64_t)(fraction[i] - '0') * scale;
    }
  } else if (*fraction != '\0') {
    return -1;
  }
  *timeout_ns = ns;
  return 0;
}
