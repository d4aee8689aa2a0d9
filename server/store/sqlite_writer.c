/* store/sqlite_writer.c: the SQLite store's writer and syncer threads:
 * group commit (a job's writes within a group merged into one row
 * write), a probe of the disk, and one fdatasync of the WAL per group. */
#include "server/store/sqlite_writer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rpc/log.h"
#include "server/store/sqlite_history.h"
#include "server/store/sqlite_schema.h"

/* The store threads' nice value (see lower_priority). */
#define STORE_NICE 5

/* history || ?: blobs concatenate bytewise; the CAST keeps a blob. */
#define SAVE_JOB_SQL                                                           \
  "INSERT INTO jobs (" JOB_COLUMNS ", history) VALUES (?1, ?2, ?3, ?4, ?5,"    \
  " ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?17, ?18, ?16)"              \
  " ON CONFLICT(seq) DO UPDATE SET state = excluded.state,"                    \
  " pool_id = excluded.pool_id, job_type_id = excluded.job_type_id,"           \
  " priority = excluded.priority, not_before_us = excluded.not_before_us,"     \
  " lease_expires_us = excluded.lease_expires_us,"                             \
  " lease_seconds = excluded.lease_seconds,"                                   \
  " max_attempts = excluded.max_attempts,"                                     \
  " idempotency_key = excluded.idempotency_key,"                               \
  " subject = excluded.subject, job = excluded.job,"                           \
  " status = excluded.status, result = excluded.result,"                       \
  " leases = excluded.leases, lease_secret = excluded.lease_secret,"           \
  " history = CAST(COALESCE(history, x'') ||"                                  \
  " COALESCE(excluded.history, x'') AS BLOB)"
#define UPDATE_JOB_SQL                                                         \
  "UPDATE jobs SET state = ?2, not_before_us = ?3, lease_expires_us = ?4,"     \
  " leases = ?8, lease_secret = ?9,"                                           \
  " status = ?5, result = COALESCE(?6, result), history = CASE WHEN ?7 IS"     \
  " NULL THEN history ELSE CAST(COALESCE(history, x'') || ?7 AS BLOB) END"     \
  " WHERE seq = ?1"

/* Records the cause of a failure for job_store_error. */
static void set_error(sqlite_store *store, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_error(sqlite_store *store, const char *fmt, ...) {
  char why[sizeof(store->last_error)];
  va_list args;
  va_start(args, fmt);
  vsnprintf(why, sizeof(why), fmt, args);
  va_end(args);
  pthread_mutex_lock(&store->lock);
  memcpy(store->last_error, why, sizeof(why));
  pthread_mutex_unlock(&store->lock);
}

/* Classifies the writer's last error: a disk full, a constraint (this
 * write alone), or anything else (I/O). */
static int failure_of(sqlite3 *db) {
  int code = sqlite3_errcode(db) & 0xff;
  if (code == SQLITE_FULL) {
    return JOB_STORE_FULL;
  }
  if (code == SQLITE_CONSTRAINT) {
    return JOB_STORE_REFUSED;
  }
  int system = code == SQLITE_IOERR ? sqlite3_system_errno(db) : 0;
  return system == ENOSPC || system == EDQUOT ? JOB_STORE_FULL : JOB_STORE_IO;
}

void write_op_append(write_op **head, write_op **tail, write_op *list) {
  if (list == NULL) {
    return;
  }
  if (*tail != NULL) {
    (*tail)->next = list;
  } else {
    *head = list;
  }
  while (list->next != NULL) {
    list = list->next;
  }
  *tail = list;
}

/* Writing. */

static int bind_text(sqlite3_stmt *stmt, int index, const char *text) {
  return text != NULL && text[0] != '\0'
             ? sqlite3_bind_text(stmt, index, text, -1, SQLITE_STATIC)
             : sqlite3_bind_null(stmt, index);
}

static void bind_blob(sqlite3_stmt *stmt, int index, const uint8_t *blob,
                      size_t size) {
  if (blob != NULL) {
    sqlite3_bind_blob(stmt, index, blob, (int)size, SQLITE_STATIC);
  }
}

/* A lease secret, or NULL when it is all zero (none). */
static void bind_secret(sqlite3_stmt *stmt, int index,
                        const uint8_t secret[STORED_LEASE_SECRET_SIZE]) {
  uint8_t any = 0;
  for (size_t i = 0; i < STORED_LEASE_SECRET_SIZE; i++) {
    any |= secret[i];
  }
  if (any != 0) {
    sqlite3_bind_blob(stmt, index, secret, STORED_LEASE_SECRET_SIZE,
                      SQLITE_STATIC);
  }
}

static int update_job(sqlite_store *store, const write_op *op) {
  const stored_job *job = &op->job;
  sqlite3_stmt *s = store->update_job;
  sqlite3_bind_int64(s, 1, (sqlite3_int64)job->sequence);
  sqlite3_bind_int(s, 2, job->state);
  sqlite3_bind_int64(s, 3, job->not_before_us);
  sqlite3_bind_int64(s, 4, job->lease_expires_us);
  bind_blob(s, 5, job->status, job->status_size);
  bind_blob(s, 6, job->result, job->result_size);
  bind_blob(s, 7, op->history, op->history_size);
  sqlite3_bind_int64(s, 8, job->leases);
  bind_secret(s, 9, job->lease_secret);
  if (sqlite_run_statement(s) != 0) {
    return failure_of(store->writer);
  }
  /* An update of a job never stored would lose its event silently. */
  return sqlite3_changes(store->writer) == 1 ? 0 : JOB_STORE_REFUSED;
}

static int write_job(sqlite_store *store, const write_op *op) {
  const stored_job *job = &op->job;
  if (job->job == NULL) {
    return update_job(store, op);
  }
  sqlite3_stmt *s = store->save_job;
  sqlite3_bind_int64(s, 1, (sqlite3_int64)job->sequence);
  sqlite3_bind_int(s, 2, job->state);
  sqlite3_bind_int64(s, 3, job->pool_id);
  sqlite3_bind_int64(s, 4, job->job_type_id);
  sqlite3_bind_int(s, 5, job->priority);
  sqlite3_bind_int64(s, 6, job->not_before_us);
  sqlite3_bind_int64(s, 7, job->created_us);
  sqlite3_bind_int64(s, 8, job->lease_expires_us);
  sqlite3_bind_int64(s, 9, job->lease_seconds);
  sqlite3_bind_int64(s, 10, job->max_attempts);
  bind_text(s, 11, job->idempotency_key);
  bind_text(s, 12, job->subject);
  sqlite3_bind_blob(s, 13, job->job, (int)job->job_size, SQLITE_STATIC);
  bind_blob(s, 14, job->status, job->status_size);
  bind_blob(s, 15, job->result, job->result_size);
  bind_blob(s, 16, op->history, op->history_size);
  sqlite3_bind_int64(s, 17, job->leases);
  bind_secret(s, 18, job->lease_secret);
  return sqlite_run_statement(s) == 0 ? 0 : failure_of(store->writer);
}

/* Folds op's earlier write prev of the same job into op, so that one row
 * write does both: the later status wins, a result and the fixed part
 * carry over, the events of both are appended. Returns 0, or -1 (no
 * memory: both are written). */
static int merge_into(write_op *prev, write_op *op) {
  size_t size = prev->history_size + op->history_size;
  uint8_t *history = NULL;
  if (size > 0) {
    history = malloc(size);
    if (history == NULL) {
      return -1;
    }
    if (prev->history_size > 0) {
      memcpy(history, prev->history, prev->history_size);
    }
    if (op->history_size > 0) {
      memcpy(history + prev->history_size, op->history, op->history_size);
    }
  }
  if (op->job.result == NULL) {
    op->job.result = prev->job.result;
    op->job.result_size = prev->job.result_size;
  }
  if (prev->job.job != NULL) { /* the insert becomes the last state's */
    stored_job merged = prev->job;
    merged.state = op->job.state;
    merged.not_before_us = op->job.not_before_us;
    merged.lease_expires_us = op->job.lease_expires_us;
    merged.status = op->job.status;
    merged.status_size = op->job.status_size;
    merged.result = op->job.result;
    merged.result_size = op->job.result_size;
    merged.leases = op->job.leases;
    memcpy(merged.lease_secret, op->job.lease_secret,
           sizeof(merged.lease_secret));
    op->job = merged;
  }
  free(op->merged_history);
  op->merged_history = history;
  op->history = history;
  op->history_size = size;
  prev->merged_into = op;
  return 0;
}

/* Merges the updates of a job within group into its last write: with the
 * submit, lease and result of a job often in one group, that is one row
 * write instead of three. Uses the store's table of the last write of
 * each sequence (open addressing). */
static void merge_writes(sqlite_store *store, write_op *group, size_t count) {
  size_t capacity = 16;
  while (capacity < count * 2) {
    capacity *= 2;
  }
  if (capacity > store->merge_capacity) {
    write_op **grown = realloc(store->merge_slots, capacity * sizeof(*grown));
    if (grown == NULL) {
      return; /* nothing merged: every write is done on its own */
    }
    store->merge_slots = grown;
    store->merge_capacity = capacity;
  }
  memset(store->merge_slots, 0, capacity * sizeof(*store->merge_slots));
  for (write_op *op = group; op != NULL; op = op->next) {
    if (op->probe) {
      continue;
    }
    size_t slot =
        (size_t)(op->job.sequence * 0x9E3779B97F4A7C15ull) & (capacity - 1);
    while (store->merge_slots[slot] != NULL &&
           store->merge_slots[slot]->job.sequence != op->job.sequence) {
      slot = (slot + 1) & (capacity - 1);
    }
    write_op *prev = store->merge_slots[slot];
    if (prev != NULL && op->job.job == NULL) {
      (void)merge_into(prev, op);
    }
    store->merge_slots[slot] = op;
  }
}

/* Fails every write of group with status (JOB_STORE_FULL or _IO): the
 * transaction is rolled back, so none of them stands. */
static void fail_group(sqlite_store *store, write_op *group, int status,
                       const char *step) {
  const char *why = sqlite3_errmsg(store->writer);
  rpc_log(RPC_LOG_ERROR, "store_group_failed", "step=%s error=\"%s\"", step,
          why);
  set_error(store, "%s: %s", step, why);
  if (!sqlite3_get_autocommit(store->writer)) {
    sqlite3_exec(store->writer, "ROLLBACK", NULL, NULL, NULL);
  }
  for (write_op *op = group; op != NULL; op = op->next) {
    op->status = status;
  }
}

/* The probe's write: the schema version, set to what it is (a change of
 * the database header, so a page of the log). */
static int write_probe(sqlite_store *store) {
  char pragma[64];
  snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d",
           sqlite_schema_version());
  return sqlite3_exec(store->writer, pragma, NULL, NULL, NULL) == SQLITE_OK
             ? 0
             : failure_of(store->writer);
}

/* Commits a group in one transaction. A write refused by a constraint
 * fails alone; any other error (a disk full, I/O) and a failed COMMIT
 * fail them all, the transaction rolled back: SQLite may already have
 * rolled it back itself, and the writes after it would then commit one
 * by one. */
static void commit_group(sqlite_store *store, write_op *group) {
  size_t count = 0;
  if (sqlite3_exec(store->writer, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
      SQLITE_OK) {
    int status = failure_of(store->writer);
    fail_group(store, group,
               status == JOB_STORE_FULL ? JOB_STORE_FULL : JOB_STORE_IO,
               "begin");
    return;
  }
  for (write_op *op = group; op != NULL; op = op->next) {
    count++;
  }
  merge_writes(store, group, count);
  for (write_op *op = group; op != NULL; op = op->next) {
    if (op->merged_into != NULL) {
      continue;
    }
    op->status = op->probe ? write_probe(store) : write_job(store, op);
    if (op->status == 0) {
      continue;
    }
    if (op->status != JOB_STORE_REFUSED ||
        sqlite3_get_autocommit(store->writer)) {
      fail_group(store, group,
                 op->status == JOB_STORE_FULL ? JOB_STORE_FULL : JOB_STORE_IO,
                 "write");
      return;
    }
    const char *why = sqlite3_errcode(store->writer) == SQLITE_OK
                          ? "the job is not stored"
                          : sqlite3_errmsg(store->writer);
    rpc_log(RPC_LOG_WARN, "store_write_failed", "job=%016llx error=\"%s\"",
            (unsigned long long)op->job.sequence, why);
    set_error(store, "job %016llx: %s", (unsigned long long)op->job.sequence,
              why);
  }
  for (write_op *op = group; op != NULL; op = op->next) {
    write_op *last = op;
    while (last->merged_into != NULL) {
      last = last->merged_into;
    }
    op->status = last->status;
  }
  if (sqlite3_exec(store->writer, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    int status = failure_of(store->writer);
    fail_group(store, group,
               status == JOB_STORE_FULL ? JOB_STORE_FULL : JOB_STORE_IO,
               "commit");
    return;
  }
  atomic_fetch_add(&store->commits, 1);
  atomic_fetch_add(&store->writes, count);
}

/* The writer and the syncer yield the CPU to the threads that serve
 * calls: a writer that gets less CPU writes bigger groups, while a
 * delayed core thread delays every answer. */
static void lower_priority(void) {
  if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), STORE_NICE) != 0) {
    rpc_log(RPC_LOG_DEBUG, "store_nice_failed", "error=\"%s\"",
            strerror(errno));
  }
}

/* The writer and the syncer hand lists of writes on under store->lock:
 * take_when_ready (the lock held) waits on wake until the list of head
 * has writes or *stop is set, and takes the list (NULL: stopped, and
 * nothing left); hand_over appends list to another and signals wake (NULL:
 * no one waits on it). */
static write_op *take_when_ready(sqlite_store *store, pthread_cond_t *wake,
                                 write_op **head, write_op **tail,
                                 const bool *stop) {
  while (*head == NULL && !*stop) {
    pthread_cond_wait(wake, &store->lock);
  }
  write_op *list = *head;
  *head = *tail = NULL;
  return list;
}

static void hand_over(sqlite_store *store, write_op **head, write_op **tail,
                      write_op *list, pthread_cond_t *wake) {
  pthread_mutex_lock(&store->lock);
  write_op_append(head, tail, list);
  if (wake != NULL) {
    pthread_cond_signal(wake);
  }
  pthread_mutex_unlock(&store->lock);
}

/* The writer commits groups without syncing (synchronous=NORMAL) and
 * hands them to the syncer, whose fdatasync of the WAL makes every group
 * committed before it durable; so the next group is written while the
 * last one syncs. */
void *sqlite_writer_main(void *arg) {
  sqlite_store *store = arg;
  lower_priority();
  for (;;) {
    pthread_mutex_lock(&store->lock);
    write_op *group = take_when_ready(store, &store->wake, &store->queue_head,
                                      &store->queue_tail, &store->closing);
    if (group == NULL) {
      store->writer_done = true; /* closing, and nothing left to write */
      pthread_cond_signal(&store->sync_wake);
      pthread_mutex_unlock(&store->lock);
      return NULL;
    }
    pthread_mutex_unlock(&store->lock);
    commit_group(store, group);
    hand_over(store, &store->unsynced_head, &store->unsynced_tail, group,
              &store->sync_wake);
  }
}

void *sqlite_syncer_main(void *arg) {
  sqlite_store *store = arg;
  lower_priority();
  for (;;) {
    pthread_mutex_lock(&store->lock);
    write_op *list =
        take_when_ready(store, &store->sync_wake, &store->unsynced_head,
                        &store->unsynced_tail, &store->writer_done);
    pthread_mutex_unlock(&store->lock);
    if (list == NULL) {
      return NULL; /* the writer stopped and everything is synced */
    }
    if (fdatasync(store->wal_fd) != 0) {
      /* What the failed sync covered may be lost: none of it is
       * acknowledged. */
      int error = errno;
      rpc_log(RPC_LOG_ERROR, "store_sync_failed", "error=\"%s\"",
              strerror(error));
      set_error(store, "fdatasync: %s", strerror(error));
      for (write_op *op = list; op != NULL; op = op->next) {
        op->status =
            error == ENOSPC || error == EDQUOT ? JOB_STORE_FULL : JOB_STORE_IO;
      }
    }
    hand_over(store, &store->done_head, &store->done_tail, list, NULL);
    ev_async_send(store->loop, &store->completed);
  }
}

int sqlite_writer_prepare(sqlite_store *store, char *err, size_t err_size) {
  if (sqlite3_prepare_v2(store->writer, SAVE_JOB_SQL, -1, &store->save_job,
                         NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(store->writer, UPDATE_JOB_SQL, -1, &store->update_job,
                         NULL) != SQLITE_OK) {
    snprintf(err, err_size, "cannot prepare statements: %s",
             sqlite3_errmsg(store->writer));
    return -1;
  }
  return 0;
}
