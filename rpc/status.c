/* status.c: gRPC status codes, HTTP mapping, grpc-message encoding. */
#include "rpc/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const code_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

/* google/rpc/code.proto: the HTTP status of each code. */
static const int http_statuses[] = {
    200, 499, 500, 400, 504, 404, 409, 403, 429,
    400, 409, 400, 501, 500, 503, 500, 401,
};

const char *rpc_status_code_name(int code) {
  if (code < 0 || code > RPC_STATUS_CODE_MAX) {
    return "UNKNOWN";
  }
  return code_names[code];
}

int rpc_status_code_parse(const char *text, size_t len, int *code) {
  if (len == 0 || len > 10) {
    return -1;
  }
  long long value = 0;
  for (size_t i = 0; i < len; i++) {
    if (text[i] < '0' || text[i] > '9') {
      return -1;
    }
    value = value * 10 + (text[i] - '0');
  }
  if (value > INT32_MAX) {
    return -1;
  }
  *code = (int)value;
  return 0;
}

int rpc_status_to_http(rpc_status_code code) {
  if ((int)code < 0 || code > RPC_STATUS_CODE_MAX) {
    return 500;
  }
  return http_statuses[code];
}

rpc_status_code rpc_status_from_http(int http_status) {
  switch (http_status) {
  case 400:
    return RPC_STATUS_INTERNAL;
  case 401:
    return RPC_STATUS_UNAUTHENTICATED;
  case 403:
    return RPC_STATUS_PERMISSION_DENIED;
  case 404:
    return RPC_STATUS_UNIMPLEMENTED;
  case 429:
  case 502:
  case 503:
  case 504:
    return RPC_STATUS_UNAVAILABLE;
  default:
    return RPC_STATUS_UNKNOWN;
  }
}

int rpc_status_set(rpc_status *status, rpc_status_code code, const char *fmt,
                   ...) {
  free(status->message);
  status->message = NULL;
  status->code = code;
  if (fmt == NULL) {
    return 0;
  }
  va_list args;
  va_start(args, fmt);
  int rv = vasprintf(&status->message, fmt, args);
  va_end(args);
  if (rv < 0) {
    status->message = NULL;
    return -1;
  }
  return 0;
}

void rpc_status_clear(rpc_status *status) {
  free(status->message);
  status->message = NULL;
  status->code = RPC_STATUS_OK;
}

static const char hex_digits[] = "0123456789ABCDEF";

int rpc_percent_encode(const char *in, size_t len, rpc_buffer *out) {
  /* Worst case every byte becomes three. */
  if (len > SIZE_MAX / 3 || rpc_buffer_reserve(out, len * 3) != 0) {
    return -1;
  }
  uint8_t *p = out->data + out->len;
  for (size_t i = 0; i < len; i++) {
    uint8_t c = (uint8_t)in[i];
    if (c >= 0x20 && c <= 0x7E && c != '%') {
      *p++ = c;
    } else {
      *p++ = '%';
      *p++ = (uint8_t)hex_digits[c >> 4];
      *p++ = (uint8_t)hex_digits[c & 15];
    }
  }
  out->len = (size_t)(p - out->data);
  return 0;
}

int rpc_hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

int rpc_percent_decode(const char *in, size_t len, rpc_buffer *out) {
  if (rpc_buffer_reserve(out, len + 1) != 0) {
    return -1;
  }
  uint8_t *p = out->data + out->len;
  for (size_t i = 0; i < len; i++) {
    /* PROTOCOL-HTTP2: an invalid escape is kept as it is. */
    if (in[i] == '%' && i + 2 < len) {
      int high = rpc_hex_value(in[i + 1]);
      int low = rpc_hex_value(in[i + 2]);
      if (high >= 0 && low >= 0) {
        *p++ = (uint8_t)(high << 4 | low);
        i += 2;
        continue;
      }
    }
    *p++ = (uint8_t)in[i];
  }
  out->len = (size_t)(p - out->data);
  *p = '\0';
  return 0;
}
