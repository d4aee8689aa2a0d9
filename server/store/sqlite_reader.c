/* store/sqlite_reader.c: the SQLite store's reads, on a reader thread
 * with a read-only connection (sqlite_reader.h). */
#include "server/store/sqlite_reader.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <sqlite3.h>

#include "rpc/log.h"
#include "server/store/sqlite_history.h"
#include "server/store/sqlite_schema.h"

#define LOAD_JOBS_SQL "SELECT " JOB_COLUMNS " FROM jobs ORDER BY seq"
#define LOAD_RESULT_SQL "SELECT result FROM jobs WHERE seq = ?1"
#define LOAD_HISTORY_SQL "SELECT history FROM jobs WHERE seq = ?1"

/* A queued read, and what it found: its blob (owned) and, for events,
 * the events decoded from it (owned; they point into the blob). */
typedef struct read_op {
  struct read_op *next;
  bool events;
  job_store_read_fn done;
  void *arg;
  int status;
  uint8_t *blob;
  stored_event *decoded;
  stored_read read;
} read_op;

struct sqlite_reader {
  sqlite3 *db;
  /* The connection is used by the reader thread and by load_jobs (at
   * start-up); never by two at once. */
  pthread_mutex_t db_lock;
  sqlite3_stmt *load_jobs;
  sqlite3_stmt *load_result;
  sqlite3_stmt *load_history;
  pthread_t thread;
  bool thread_started;
  pthread_mutex_t lock; /* guards the lists and closing */
  pthread_cond_t wake;
  read_op *queue_head, *queue_tail; /* waiting for the thread */
  read_op *done_head, *done_tail;   /* done, completions owed */
  bool closing;
  struct ev_loop *loop;
  ev_async completed;
};

static void append(read_op **head, read_op **tail, read_op *op) {
  op->next = NULL;
  if (*tail != NULL) {
    (*tail)->next = op;
  } else {
    *head = op;
  }
  *tail = op;
}

static void read_op_free(read_op *op) {
  free(op->blob);
  free(op->decoded);
  free(op);
}

static const char *column_text(sqlite3_stmt *s, int column) {
  return (const char *)sqlite3_column_text(s, column);
}

static void log_read_failed(sqlite_reader *reader) {
  rpc_log(RPC_LOG_ERROR, "store_read_failed", "error=\"%s\"",
          sqlite3_errmsg(reader->db));
}

int sqlite_reader_load_jobs(sqlite_reader *reader,
                            int (*each)(const stored_job *job, void *arg),
                            void *arg) {
  pthread_mutex_lock(&reader->db_lock);
  sqlite3_stmt *s = reader->load_jobs;
  int rv = 0;
  int step = SQLITE_DONE;
  while (rv == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
    stored_job job = {
        .sequence = (uint64_t)sqlite3_column_int64(s, 0),
        .state = sqlite3_column_int(s, 1),
        .pool_id = (uint32_t)sqlite3_column_int64(s, 2),
        .job_type_id = (uint32_t)sqlite3_column_int64(s, 3),
        .priority = sqlite3_column_int(s, 4),
        .not_before_us = sqlite3_column_int64(s, 5),
        .created_us = sqlite3_column_int64(s, 6),
        .lease_expires_us = sqlite3_column_int64(s, 7),
        .lease_seconds = (uint32_t)sqlite3_column_int64(s, 8),
        .max_attempts = (uint32_t)sqlite3_column_int64(s, 9),
        .idempotency_key = column_text(s, 10),
        .subject = column_text(s, 11),
        .job = sqlite3_column_blob(s, 12),
        .job_size = (size_t)sqlite3_column_bytes(s, 12),
        .status = sqlite3_column_blob(s, 13),
        .status_size = (size_t)sqlite3_column_bytes(s, 13),
        .result = sqlite3_column_blob(s, 14),
        .result_size = (size_t)sqlite3_column_bytes(s, 14),
        .leases = (uint32_t)sqlite3_column_int64(s, 15),
    };
    if (sqlite3_column_bytes(s, 16) == STORED_LEASE_SECRET_SIZE) {
      memcpy(job.lease_secret, sqlite3_column_blob(s, 16),
             STORED_LEASE_SECRET_SIZE);
    }
    rv = each(&job, arg);
  }
  if (rv == 0 && step != SQLITE_DONE) {
    log_read_failed(reader);
    rv = -1;
  }
  sqlite3_reset(s);
  pthread_mutex_unlock(&reader->db_lock);
  return rv;
}

/* Copies op's column (the result or the history) into op->blob: NULL
 * when the job is not stored or the column is NULL. Returns 0 or
 * JOB_STORE_IO. */
static int read_blob(sqlite_reader *reader, read_op *op, size_t *size) {
  sqlite3_stmt *s = op->events ? reader->load_history : reader->load_result;
  int rv = 0;
  *size = 0;
  pthread_mutex_lock(&reader->db_lock);
  sqlite3_bind_int64(s, 1, (sqlite3_int64)op->read.sequence);
  int step = sqlite3_step(s);
  if (step == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
    const void *blob = sqlite3_column_blob(s, 0);
    *size = (size_t)sqlite3_column_bytes(s, 0);
    op->blob = malloc(*size > 0 ? *size : 1);
    if (op->blob == NULL) {
      rpc_log(RPC_LOG_ERROR, "store_read_failed", "error=\"out of memory\"");
      rv = JOB_STORE_IO;
    } else if (*size > 0) {
      memcpy(op->blob, blob, *size);
    }
  } else if (step != SQLITE_ROW && step != SQLITE_DONE) {
    log_read_failed(reader);
    rv = JOB_STORE_IO;
  }
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  pthread_mutex_unlock(&reader->db_lock);
  return rv;
}

/* Decodes the history in op->blob into op->decoded, linked oldest first.
 * Returns 0 or JOB_STORE_IO (damaged, or no memory). */
static int decode_events(read_op *op, size_t size) {
  size_t count = 0;
  stored_event event;
  for (size_t offset = 0; offset < size; count++) {
    if (history_event_decode(op->blob, size, &offset, &event) != 0) {
      rpc_log(RPC_LOG_ERROR, "store_history_damaged", "job=%016llx",
              (unsigned long long)op->read.sequence);
      return JOB_STORE_IO;
    }
  }
  if (count == 0) {
    return 0;
  }
  op->decoded = calloc(count, sizeof(*op->decoded));
  if (op->decoded == NULL) {
    rpc_log(RPC_LOG_ERROR, "store_read_failed", "error=\"out of memory\"");
    return JOB_STORE_IO;
  }
  size_t offset = 0;
  for (size_t i = 0; i < count; i++) {
    (void)history_event_decode(op->blob, size, &offset, &op->decoded[i]);
    op->decoded[i].next = i + 1 < count ? &op->decoded[i + 1] : NULL;
  }
  op->read.events = op->decoded;
  return 0;
}

static void run_read(sqlite_reader *reader, read_op *op) {
  size_t size = 0;
  op->status = read_blob(reader, op, &size);
  if (op->status == 0 && op->events) {
    op->status = decode_events(op, size);
  } else if (op->status == 0) {
    op->read.result = op->blob;
    op->read.result_size = size;
  }
  if (op->status != 0) { /* a failed read found nothing */
    op->read = (stored_read){.sequence = op->read.sequence};
  }
}

static void *reader_main(void *arg) {
  sqlite_reader *reader = arg;
  pthread_mutex_lock(&reader->lock);
  for (;;) {
    while (reader->queue_head == NULL && !reader->closing) {
      pthread_cond_wait(&reader->wake, &reader->lock);
    }
    read_op *op = reader->queue_head;
    if (op == NULL) {
      break; /* closing, and every read is done */
    }
    reader->queue_head = op->next;
    if (reader->queue_head == NULL) {
      reader->queue_tail = NULL;
    }
    pthread_mutex_unlock(&reader->lock);
    run_read(reader, op);
    pthread_mutex_lock(&reader->lock);
    append(&reader->done_head, &reader->done_tail, op);
    ev_async_send(reader->loop, &reader->completed);
  }
  pthread_mutex_unlock(&reader->lock);
  return NULL;
}

static void deliver_completions(sqlite_reader *reader) {
  pthread_mutex_lock(&reader->lock);
  read_op *list = reader->done_head;
  reader->done_head = reader->done_tail = NULL;
  pthread_mutex_unlock(&reader->lock);
  while (list != NULL) {
    read_op *next = list->next;
    list->done(list->status, &list->read, list->arg);
    read_op_free(list);
    list = next;
  }
}

static void on_completed(struct ev_loop *loop, ev_async *watcher, int events) {
  (void)loop;
  (void)events;
  deliver_completions(watcher->data);
}

int sqlite_reader_load(sqlite_reader *reader, uint64_t sequence, bool events,
                       job_store_read_fn done, void *arg) {
  read_op *op = calloc(1, sizeof(*op));
  if (op == NULL) {
    return -1;
  }
  *op = (read_op){
      .events = events, .done = done, .arg = arg, .read.sequence = sequence};
  pthread_mutex_lock(&reader->lock);
  if (reader->closing) {
    pthread_mutex_unlock(&reader->lock);
    free(op);
    return -1;
  }
  append(&reader->queue_head, &reader->queue_tail, op);
  pthread_cond_signal(&reader->wake);
  pthread_mutex_unlock(&reader->lock);
  return 0;
}

sqlite_reader *sqlite_reader_open(const char *path, struct ev_loop *loop,
                                  char *err, size_t err_size) {
  sqlite_reader *reader = calloc(1, sizeof(*reader));
  if (reader == NULL) {
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  pthread_mutex_init(&reader->db_lock, NULL);
  pthread_mutex_init(&reader->lock, NULL);
  pthread_cond_init(&reader->wake, NULL);
  reader->loop = loop;
  ev_async_init(&reader->completed, on_completed);
  reader->completed.data = reader;
  /* Used by one thread at a time (db_lock): no mutex of SQLite's. */
  int flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path, &reader->db, flags, NULL) != SQLITE_OK ||
      sqlite3_busy_timeout(reader->db, 5000) != SQLITE_OK ||
      sqlite3_prepare_v2(reader->db, LOAD_JOBS_SQL, -1, &reader->load_jobs,
                         NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(reader->db, LOAD_RESULT_SQL, -1, &reader->load_result,
                         NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(reader->db, LOAD_HISTORY_SQL, -1,
                         &reader->load_history, NULL) != SQLITE_OK) {
    snprintf(err, err_size, "cannot open %s for reading: %s", path,
             reader->db ? sqlite3_errmsg(reader->db) : "no memory");
    goto fail;
  }
  ev_async_start(loop, &reader->completed);
  int rv = pthread_create(&reader->thread, NULL, reader_main, reader);
  if (rv != 0) {
    snprintf(err, err_size, "cannot start the reader: %s", strerror(rv));
    goto fail;
  }
  reader->thread_started = true;
  (void)pthread_setname_np(reader->thread, "store-reader");
  return reader;
fail:
  sqlite_reader_close(reader);
  return NULL;
}

void sqlite_reader_close(sqlite_reader *reader) {
  if (reader == NULL) {
    return;
  }
  pthread_mutex_lock(&reader->lock);
  reader->closing = true;
  pthread_cond_signal(&reader->wake);
  pthread_mutex_unlock(&reader->lock);
  if (reader->thread_started) {
    pthread_join(reader->thread, NULL); /* it does the queued reads first */
  }
  ev_async_stop(reader->loop, &reader->completed);
  deliver_completions(reader);
  sqlite3_finalize(reader->load_jobs);
  sqlite3_finalize(reader->load_result);
  sqlite3_finalize(reader->load_history);
  sqlite3_close(reader->db);
  pthread_cond_destroy(&reader->wake);
  pthread_mutex_destroy(&reader->lock);
  pthread_mutex_destroy(&reader->db_lock);
  free(reader);
}
