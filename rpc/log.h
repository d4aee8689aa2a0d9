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

/* rpc_log_folded is rpc_log for lines a peer or a fault can repeat fast
 * (accept failures, refused connections): lines of one event (the key)
 * within the fold interval are folded. The first is written; later ones
 * are counted, and the first one after the interval has passed since the
 * last written line is written with "repeated=N", N the lines folded
 * since. A burst that stops leaves its count untold until the event comes
 * again. Keys are compared by content; up to 64 events are tracked, the
 * least recently written one giving way. */
void rpc_log_folded(rpc_log_level level, const char *event, const char *fields,
                    ...) __attribute__((format(printf, 3, 4)));

/* rpc_log_set_fold_interval sets the interval of rpc_log_folded (default
 * 1 s; values <= 0 turn folding off). */
void rpc_log_set_fold_interval(double seconds);

/* rpc_log_set_clock replaces the monotonic clock rpc_log_folded reads (s)
 * with now, for tests; NULL restores it. Also forgets every folded event. */
void rpc_log_set_clock(double (*now)(void));

/* rpc_log_set_fd sends the lines to fd instead of stderr (borrowed; -1
 * restores stderr), for tests. */
void rpc_log_set_fd(int fd);

#endif
