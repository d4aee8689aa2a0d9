/* log.c: structured one-line logs on stderr. */
#include "rpc/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int minimum_level = RPC_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void rpc_log_set_level(rpc_log_level level) {
  atomic_store(&minimum_level, (int)level);
}

int rpc_log_level_parse(const char *text, rpc_log_level *level) {
  for (int i = RPC_LOG_DEBUG; i <= RPC_LOG_ERROR; i++) {
    if (strcasecmp(text, level_names[i]) == 0) {
      *level = (rpc_log_level)i;
      return 0;
    }
  }
  return -1;
}

void rpc_log(rpc_log_level level, const char *event, const char *fields,
             ...) {
  if ((int)level < atomic_load(&minimum_level)) {
    return;
  }
  char line[1024];
  struct timeval now;
  struct tm utc;
  gettimeofday(&now, NULL);
  gmtime_r(&now.tv_sec, &utc);
  size_t used = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &utc);
  int n = snprintf(line + used, sizeof(line) - used,
                   ".%03dZ level=%s event=%s", (int)(now.tv_usec / 1000),
                   level_names[level], event);
  if (n > 0) {
    used += (size_t)n;
  }
  if (fields != NULL && used + 2 < sizeof(line)) {
    line[used++] = ' ';
    va_list args;
    va_start(args, fields);
    n = vsnprintf(line + used, sizeof(line) - used, fields, args);
    va_end(args);
    if (n > 0) {
      used += (size_t)n;
    }
  }
  if (used > sizeof(line) - 2) {
    used = sizeof(line) - 2; /* truncated: keep the line whole */
  }
  line[used++] = '\n';
  /* One write per line so that threads never interleave within a line. */
  ssize_t written = write(STDERR_FILENO, line, used);
  (void)written; /* nowhere left to report a failing stderr */
}
