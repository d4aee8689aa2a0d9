/* log.h: structured logs, one line per event on stderr:
 * `2026-11-23T10:00:00.123Z level=info event=listening addr=127.0.0.1:50051`.
 * Thread-safe; a line is written with one write(2). */
#ifndef JOBHUB_RPC_LOG_H
#define JOBHUB_RPC_LOG_H

typedef enum rpc_log_level {
  RPC_LOG_DEBUG = 0,
  RPC_LOG_INFO = 1,
  RPC_LOG_WARN = 2,
  RPC_LOG_ERROR = 3,
} rpc_log_level;

/* rpc_log_set_level drops lines below level (default INFO). */
void rpc_log_set_level(rpc_log_level level);

/* rpc_log_level_parse reads "debug", "info", "warn" or "error". Returns 0,
 * or -1 for another word. */
int rpc_log_level_parse(const char *text, rpc_log_level *level);

/* rpc_log writes one line: the event name then fields, a printf format
 * that should produce space-separated key=value pairs (may be NULL). */
void rpc_log(rpc_log_level level, const char *event, const char *fields, ...)
    __attribute__((format(printf, 3, 4)));

#endif
