/* timeout.c: grpc-timeout values: 1-8 digits and a unit. */
#include "rpc/timeout.h"

#include <stdio.h>

#define MAX_DIGITS 8
#define MAX_COUNT 99999999u

int rpc_timeout_parse(const char *text, size_t len, uint64_t *nanoseconds) {
  if (len < 2 || len > MAX_DIGITS + 1) {
    return -1;
  }
  uint64_t count = 0;
  for (size_t i = 0; i + 1 < len; i++) {
    if (text[i] < '0' || text[i] > '9') {
      return -1;
    }
    count = count * 10 + (uint64_t)(text[i] - '0');
  }
  uint64_t unit;
  switch (text[len - 1]) {
  case 'H':
    unit = 3600000000000u;
    break;
  case 'M':
    unit = 60000000000u;
    break;
  case 'S':
    unit = 1000000000u;
    break;
  case 'm':
    unit = 1000000u;
    break;
  case 'u':
    unit = 1000u;
    break;
  case 'n':
    unit = 1u;
    break;
  default:
    return -1;
  }
  *nanoseconds = count > UINT64_MAX / unit ? UINT64_MAX : count * unit;
  return 0;
}

size_t rpc_timeout_format(uint64_t nanoseconds,
                          char out[RPC_TIMEOUT_TEXT_SIZE]) {
  static const struct {
    uint64_t nanoseconds;
    char unit;
  } units[] = {{1u, 'n'},          {1000u, 'u'},        {1000000u, 'm'},
               {1000000000u, 'S'}, {60000000000u, 'M'}, {3600000000000u, 'H'}};
  for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
    uint64_t size = units[i].nanoseconds;
    /* Round up: a deadline is never made shorter than asked. */
    uint64_t count = nanoseconds / size + (nanoseconds % size != 0);
    if (count <= MAX_COUNT) {
      return (size_t)snprintf(out, RPC_TIMEOUT_TEXT_SIZE, "%llu%c",
                              (unsigned long long)count, units[i].unit);
    }
  }
  return (size_t)snprintf(out, RPC_TIMEOUT_TEXT_SIZE, "%uH", MAX_COUNT);
}
