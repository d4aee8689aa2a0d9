/* log.c: structured one-line logs on stderr. */
#include "rpc/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int minimum_level = RPC_LOG_INFO;
static atomic_int output_fd = STDERR_FILENO;

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

/* Writes one line; repeated > 0 adds "repeated=N" after the fields. */
__attribute__((format(printf, 4, 0))) static void
write_line(rpc_log_level level, const char *event, unsigned long long repeated,
           const char *fields, va_list args) {
  char line[1024];
  struct timeval now;
  struct tm utc;
  gettimeofday(&now, NULL);
  gmtime_r(&now.tv_sec, &utc);
  size_t used = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &utc);
  int n = snprintf(line + used, sizeof(line) - used, ".%03dZ level=%s event=%s",
                   (int)(now.tv_usec / 1000), level_names[level], event);
  if (n > 0) {
    used += (size_t)n;
  }
  if (fields != NULL && used + 2 < sizeof(line)) {
    line[used++] = ' ';
    n = vsnprintf(line + used, sizeof(line) - used, fields, args);
    if (n > 0) {
      used += (size_t)n;
    }
  }
  if (repeated > 0 && used < sizeof(line)) {
    n = snprintf(line + used, sizeof(line) - used, " repeated=%llu", repeated);
    if (n > 0) {
      used += (size_t)n;
    }
  }
  if (used > sizeof(line) - 2) {
    used = sizeof(line) - 2; /* truncated: keep the line whole */
  }
  line[used++] = '\n';
  /* One write per line so that threads never interleave within a line. */
  ssize_t written = write(atomic_load(&output_fd), line, used);
  (void)written; /* nowhere left to report a failing stderr */
}

void rpc_log(rpc_log_level level, const char *event, const char *fields, ...) {
  if ((int)level < atomic_load(&minimum_level)) {
    return;
  }
  va_list args;
  va_start(args, fields);
  write_line(level, event, 0, fields, args);
  va_end(args);
}

/* Folding: one slot per event key, under one lock (folded lines are rare
 * by nature: a slot is only touched when such a line is logged). */
#define FOLD_SLOTS 64
#define FOLD_KEY_SIZE 48

typedef struct fold_slot {
  char key[FOLD_KEY_SIZE];   /* "": free */
  double last_written;       /* s, on the fold clock */
  unsigned long long folded; /* lines counted since last_written */
} fold_slot;

static pthread_mutex_t fold_lock = PTHREAD_MUTEX_INITIALIZER;
static fold_slot fold_slots[FOLD_SLOTS];
static double fold_interval = 1.0; /* s; under fold_lock */
static double (*fold_clock)(void); /* NULL: CLOCK_MONOTONIC */

static double monotonic_seconds(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* The slot of key, or a free or the stalest one, reset for key. */
static fold_slot *find_fold_slot(const char *key, bool *fresh) {
  fold_slot *stalest = &fold_slots[0];
  for (size_t i = 0; i < FOLD_SLOTS; i++) {
    fold_slot *slot = &fold_slots[i];
    if (slot->key[0] != '\0' &&
        strncmp(slot->key, key, FOLD_KEY_SIZE - 1) == 0) {
      *fresh = false;
      return slot;
    }
    if (slot->key[0] == '\0' || (stalest->key[0] != '\0' &&
                                 slot->last_written < stalest->last_written)) {
      stalest = slot;
    }
  }
  snprintf(stalest->key, sizeof(stalest->key), "%s", key);
  stalest->folded = 0;
  *fresh = true;
  return stalest;
}

void rpc_log_folded(rpc_log_level level, const char *event, const char *fields,
                    ...) {
  if ((int)level < atomic_load(&minimum_level)) {
    return;
  }
  pthread_mutex_lock(&fold_lock);
  double now = fold_clock != NULL ? fold_clock() : monotonic_seconds();
  bool fresh = false;
  fold_slot *slot = find_fold_slot(event, &fresh);
  unsigned long long repeated = 0;
  bool write_it =
      fresh || fold_interval <= 0 || now - slot->last_written >= fold_interval;
  if (write_it) {
    repeated = slot->folded;
    slot->folded = 0;
    slot->last_written = now;
  } else {
    slot->folded++;
  }
  pthread_mutex_unlock(&fold_lock);
  if (write_it) {
    va_list args;
    va_start(args, fields);
    write_line(level, event, repeated, fields, args);
    va_end(args);
  }
}

void rpc_log_set_fold_interval(double seconds) {
  pthread_mutex_lock(&fold_lock);
  fold_interval = seconds;
  pthread_mutex_unlock(&fold_lock);
}

void rpc_log_set_clock(double (*now)(void)) {
  pthread_mutex_lock(&fold_lock);
  fold_clock = now;
  memset(fold_slots, 0, sizeof(fold_slots));
  pthread_mutex_unlock(&fold_lock);
}

void rpc_log_set_fd(int fd) {
  atomic_store(&output_fd, fd >= 0 ? fd : STDERR_FILENO);
}
