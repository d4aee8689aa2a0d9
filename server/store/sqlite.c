/* store/sqlite.c: the job store on SQLite (WAL), with a writer thread that
 * group-commits. */
#include "server/store/sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <ev.h>
#include <sqlite3.h>

#include "rpc/log.h"
#include "server/store/sqlite_history.h"
#include "server/store/sqlite_reader.h"
#include "server/store/sqlite_schema.h"

/* The store threads' nice value (see lower_priority). */
#define STORE_NICE 5

/* While the store is not writable it commits a probe this often, so that
 * it turns writable again without waiting for a client's write. */
#define STORE_PROBE_INTERVAL 1.0 /* s */

/* A schema change: SQL, or a function for what SQL cannot do alone. */
typedef struct migration {
  const char *sql;
  int (*run)(sqlite3 *db, char *err, size_t err_size);
} migration;

static int migrate_to_sequence_keys(sqlite3 *db, char *err, size_t err_size);

/* Schema migrations, applied in order; PRAGMA user_version counts those
 * done. Never edit one that has shipped: append a new one. */
static const migration migrations[] = {
    {"CREATE TABLE jobs ("
     "  id TEXT PRIMARY KEY,"
     "  state INTEGER NOT NULL,"
     "  pool_id INTEGER NOT NULL,"
     "  job_type_id INTEGER NOT NULL,"
     "  priority INTEGER NOT NULL,"
     "  not_before_us INTEGER NOT NULL,"
     "  created_us INTEGER NOT NULL,"
     "  lease_expires_us INTEGER NOT NULL,"
     "  idempotency_key TEXT UNIQUE,"
     "  job BLOB NOT NULL,"
     "  result BLOB);"
     "CREATE INDEX jobs_by_state ON jobs(state, pool_id, job_type_id);"
     "CREATE TABLE job_events ("
     "  seq INTEGER PRIMARY KEY,"
     "  job_id TEXT NOT NULL,"
     "  from_state INTEGER NOT NULL,"
     "  to_state INTEGER NOT NULL,"
     "  time_us INTEGER NOT NULL,"
     "  actor TEXT NOT NULL,"
     "  worker_idx INTEGER NOT NULL,"
     "  detail TEXT);"
     "CREATE INDEX job_events_by_job ON job_events(job_id, seq);",
     NULL},
    /* 2: the job splits into the part fixed at Submit (job) and the part
     * that changes (status), so a transition rewrites only the latter. */
    {"ALTER TABLE jobs ADD COLUMN status BLOB;"
     "ALTER TABLE jobs ADD COLUMN subject TEXT;"
     "ALTER TABLE jobs ADD COLUMN lease_seconds INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE jobs ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 0;",
     NULL},
    /* 3: one b-tree per write: rows keyed by the id's number (the rowid),
     * events appended to their job's row, no index but the idempotency
     * keys'. A transition was five b-tree writes; it is one. */
    {"CREATE TABLE jobs_by_sequence ("
     "  seq INTEGER PRIMARY KEY,"
     "  state INTEGER NOT NULL,"
     "  pool_id INTEGER NOT NULL,"
     "  job_type_id INTEGER NOT NULL,"
     "  priority INTEGER NOT NULL,"
     "  not_before_us INTEGER NOT NULL,"
     "  created_us INTEGER NOT NULL,"
     "  lease_expires_us INTEGER NOT NULL,"
     "  lease_seconds INTEGER NOT NULL,"
     "  max_attempts INTEGER NOT NULL,"
     "  idempotency_key TEXT,"
     "  subject TEXT,"
     "  job BLOB NOT NULL,"
     "  status BLOB,"
     "  result BLOB,"
     "  history BLOB);",
     migrate_to_sequence_keys},
    /* 4: lease numbers outlive a Reset (attempts do not). */
    {"ALTER TABLE jobs ADD COLUMN leases INTEGER NOT NULL DEFAULT 0;", NULL},
    /* 5: lease ids carry a secret; a worker re-sends its result with it
     * after a restart. NULL: a row of before (its lease id is void). */
    {"ALTER TABLE jobs ADD COLUMN lease_secret BLOB;", NULL},
};

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

/* A queued write: the record and, after it in data, copies of every
 * string and blob it points to, and the encoded event (history). */
typedef struct write_op {
  struct write_op *next;
  job_store_done_fn done;
  void *arg;
  int status;
  stored_job job;
  const uint8_t *history; /* the events to append, or NULL */
  size_t history_size;
  /* Set by the writer: a later write of the same job in the group that
   * carries this one's changes too, and the events the two make. */
  struct write_op *merged_into;
  uint8_t *merged_history; /* owned */
  bool probe;              /* no job: a write that tests the disk */
  size_t capacity;         /* of data */
  uint8_t data[];
} write_op;

/* Write ops are made and freed on the store's loop thread, a group's worth
 * at a time; the common ones (a job without a big payload or result) are
 * of one size and kept for reuse, so that a group does not go through
 * malloc and free in a burst. */
#define WRITE_OP_POOLED_CAPACITY 1024
#define WRITE_OP_POOL_MAX 4096

struct sqlite_store {
  job_store base; /* first: the handle the core holds */
  sqlite3 *writer;
  sqlite_reader *reader;
  sqlite3_stmt *save_job;
  sqlite3_stmt *update_job;
  pthread_t thread;
  bool thread_started;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  write_op *queue_head, *queue_tail;       /* waiting for the writer */
  write_op *unsynced_head, *unsynced_tail; /* committed, not yet synced */
  write_op *done_head, *done_tail;         /* durable, callbacks owed */
  bool closing;
  bool writer_done; /* the writer has stopped: the syncer drains, stops */
  int wal_fd;       /* the -wal file, synced by the syncer */
  pthread_t syncer;
  bool syncer_started;
  pthread_cond_t sync_wake;
  write_op **merge_slots; /* the writer's table for merge_writes */
  size_t merge_capacity;
  write_op *spare_ops; /* the loop thread's pool of pooled-size ops */
  size_t spare_count;
  struct ev_loop *loop;
  ev_async completed;
  void (*on_written)(uint64_t sequence, void *arg);
  void *on_written_arg;
  atomic_uint_fast64_t commits;
  atomic_uint_fast64_t writes;
  char last_error[256]; /* the latest failure's cause; under lock */
  /* The loop's: whether the latest write completed wrote, the probe. */
  bool writable;
  bool probe_pending;
  ev_timer probe_timer;
  void (*on_writable)(bool writable, void *arg);
  void *on_writable_arg;
};

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

static void append(write_op **head, write_op **tail, write_op *list) {
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

static int run_statement(sqlite3_stmt *stmt) {
  int rv = sqlite3_step(stmt);
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  return rv == SQLITE_DONE ? 0 : -1;
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
  if (run_statement(s) != 0) {
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
  return run_statement(s) == 0 ? 0 : failure_of(store->writer);
}

static write_op *write_op_new(sqlite_store *store, size_t size) {
  if (size <= WRITE_OP_POOLED_CAPACITY && store->spare_ops != NULL) {
    write_op *op = store->spare_ops;
    store->spare_ops = op->next;
    store->spare_count--;
    return op;
  }
  size_t capacity =
      size <= WRITE_OP_POOLED_CAPACITY ? WRITE_OP_POOLED_CAPACITY : size;
  write_op *op = malloc(sizeof(*op) + capacity);
  if (op != NULL) {
    op->capacity = capacity;
  }
  return op;
}

static void write_op_free(sqlite_store *store, write_op *op) {
  free(op->merged_history);
  if (op->capacity == WRITE_OP_POOLED_CAPACITY &&
      store->spare_count < WRITE_OP_POOL_MAX) {
    op->next = store->spare_ops;
    store->spare_ops = op;
    store->spare_count++;
    return;
  }
  free(op);
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
           (int)(sizeof(migrations) / sizeof(migrations[0])));
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

/* The writer commits groups without syncing (synchronous=NORMAL) and
 * hands them to the syncer, whose fdatasync of the WAL makes every group
 * committed before it durable; so the next group is written while the
 * last one syncs. */
static void *writer_main(void *arg) {
  sqlite_store *store = arg;
  lower_priority();
  for (;;) {
    pthread_mutex_lock(&store->lock);
    while (store->queue_head == NULL && !store->closing) {
      pthread_cond_wait(&store->wake, &store->lock);
    }
    write_op *group = store->queue_head;
    store->queue_head = store->queue_tail = NULL;
    if (group == NULL) {
      store->writer_done = true; /* closing, and nothing left to write */
      pthread_cond_signal(&store->sync_wake);
      pthread_mutex_unlock(&store->lock);
      return NULL;
    }
    pthread_mutex_unlock(&store->lock);
    commit_group(store, group);
    pthread_mutex_lock(&store->lock);
    append(&store->unsynced_head, &store->unsynced_tail, group);
    pthread_cond_signal(&store->sync_wake);
    pthread_mutex_unlock(&store->lock);
  }
}

static void *syncer_main(void *arg) {
  sqlite_store *store = arg;
  lower_priority();
  for (;;) {
    pthread_mutex_lock(&store->lock);
    while (store->unsynced_head == NULL && !store->writer_done) {
      pthread_cond_wait(&store->sync_wake, &store->lock);
    }
    write_op *list = store->unsynced_head;
    store->unsynced_head = store->unsynced_tail = NULL;
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
    pthread_mutex_lock(&store->lock);
    append(&store->done_head, &store->done_tail, list);
    pthread_mutex_unlock(&store->lock);
    ev_async_send(store->loop, &store->completed);
  }
}

static int queue_op(sqlite_store *store, write_op *op);

static void on_probe_timer(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  sqlite_store *store = timer->data;
  if (store->probe_pending) {
    return;
  }
  write_op *op = write_op_new(store, 0);
  if (op == NULL) {
    return; /* the next tick tries again */
  }
  *op = (write_op){.probe = true, .capacity = op->capacity};
  store->probe_pending = true;
  queue_op(store, op);
}

/* Follows the outcome of each completed write, in commit order: the
 * store is writable after a write that succeeded, not after one that
 * failed for the disk. While it is not, the probe timer runs. */
static void track_writable(sqlite_store *store, int status) {
  bool writable = store->writable;
  if (status == 0) {
    writable = true;
  } else if (status == JOB_STORE_FULL || status == JOB_STORE_IO) {
    writable = false;
  }
  if (writable == store->writable) {
    return;
  }
  store->writable = writable;
  rpc_log(writable ? RPC_LOG_INFO : RPC_LOG_ERROR,
          writable ? "store_writable" : "store_not_writable", NULL);
  if (writable) {
    ev_timer_stop(store->loop, &store->probe_timer);
  } else if (!store->closing) {
    ev_timer_again(store->loop, &store->probe_timer);
  }
  if (store->on_writable != NULL) {
    store->on_writable(writable, store->on_writable_arg);
  }
}

static void deliver_completions(sqlite_store *store) {
  pthread_mutex_lock(&store->lock);
  write_op *list = store->done_head;
  store->done_head = store->done_tail = NULL;
  pthread_mutex_unlock(&store->lock);
  while (list != NULL) {
    write_op *next = list->next;
    track_writable(store, list->status);
    if (list->probe) {
      store->probe_pending = false;
    } else if (store->on_written != NULL) {
      store->on_written(list->job.sequence, store->on_written_arg);
    }
    if (list->done != NULL) {
      list->done(list->status, list->arg);
    }
    write_op_free(store, list);
    list = next;
  }
}

static void on_completed(struct ev_loop *loop, ev_async *watcher, int events) {
  (void)loop;
  (void)events;
  deliver_completions(watcher->data);
}

/* Copies text into op->data at *used; returns the copy (NULL stays NULL). */
static const char *copy_text(write_op *op, size_t *used, const char *text) {
  if (text == NULL) {
    return NULL;
  }
  size_t len = strlen(text) + 1;
  char *copy = (char *)op->data + *used;
  memcpy(copy, text, len);
  *used += len;
  return copy;
}

static const uint8_t *copy_blob(write_op *op, size_t *used, const uint8_t *blob,
                                size_t size) {
  if (blob == NULL) {
    return NULL;
  }
  uint8_t *copy = op->data + *used;
  memcpy(copy, blob, size);
  *used += size;
  return copy;
}

static int save_job(job_store *base, const stored_job *job,
                    const stored_event *event, job_store_done_fn done,
                    void *arg) {
  sqlite_store *store = (sqlite_store *)base;
  if (job->sequence > INT64_MAX) {
    return -1;
  }
  size_t history_size = 0;
  for (const stored_event *e = event; e != NULL; e = e->next) {
    if (e->from_state < 0 || e->from_state > 255 || e->to_state < 0 ||
        e->to_state > 255) {
      return -1;
    }
    history_size += history_event_size(e);
  }
  size_t size = history_text_size(job->idempotency_key) +
                history_text_size(job->subject) +
                (job->job ? job->job_size : 0) +
                (job->result ? job->result_size : 0) +
                (job->status ? job->status_size : 0) + history_size;
  write_op *op = write_op_new(store, size);
  if (op == NULL) {
    return -1;
  }
  size_t used = 0;
  *op = (write_op){
      .done = done, .arg = arg, .job = *job, .capacity = op->capacity};
  op->job.idempotency_key = copy_text(op, &used, job->idempotency_key);
  op->job.job = copy_blob(op, &used, job->job, job->job_size);
  op->job.result = copy_blob(op, &used, job->result, job->result_size);
  op->job.status = copy_blob(op, &used, job->status, job->status_size);
  op->job.subject = copy_text(op, &used, job->subject);
  if (event != NULL) {
    op->history = op->data + used;
    op->history_size = history_size;
    for (const stored_event *e = event; e != NULL; e = e->next) {
      history_event_encode(e, op->data + used);
      used += history_event_size(e);
    }
  }
  return queue_op(store, op);
}

/* Hands op to the writer. Returns 0, or -1 (closing: op is freed). */
static int queue_op(sqlite_store *store, write_op *op) {
  pthread_mutex_lock(&store->lock);
  if (store->closing) {
    pthread_mutex_unlock(&store->lock);
    write_op_free(store, op);
    return -1;
  }
  append(&store->queue_head, &store->queue_tail, op);
  pthread_cond_signal(&store->wake);
  pthread_mutex_unlock(&store->lock);
  return 0;
}

static const char *column_text(sqlite3_stmt *s, int column) {
  return (const char *)sqlite3_column_text(s, column);
}

static int load_jobs(job_store *base,
                     int (*each)(const stored_job *job, void *arg), void *arg) {
  return sqlite_reader_load_jobs(((sqlite_store *)base)->reader, each, arg);
}

static int load_result(job_store *base, uint64_t sequence,
                       job_store_read_fn done, void *arg) {
  return sqlite_reader_load(((sqlite_store *)base)->reader, sequence, false,
                            done, arg);
}

static int load_events(job_store *base, uint64_t sequence,
                       job_store_read_fn done, void *arg) {
  return sqlite_reader_load(((sqlite_store *)base)->reader, sequence, true,
                            done, arg);
}

static void on_written(job_store *base,
                       void (*fn)(uint64_t sequence, void *arg), void *arg) {
  sqlite_store *store = (sqlite_store *)base;
  store->on_written = fn;
  store->on_written_arg = arg;
}

static void on_writable(job_store *base, void (*fn)(bool writable, void *arg),
                        void *arg) {
  sqlite_store *store = (sqlite_store *)base;
  store->on_writable = fn;
  store->on_writable_arg = arg;
}

static void error_cause(job_store *base, char *why, size_t why_size) {
  sqlite_store *store = (sqlite_store *)base;
  pthread_mutex_lock(&store->lock);
  snprintf(why, why_size, "%s", store->last_error);
  pthread_mutex_unlock(&store->lock);
}

static uint64_t commits(const job_store *base) {
  return atomic_load(&((const sqlite_store *)base)->commits);
}

static uint64_t writes(const job_store *base) {
  return atomic_load(&((const sqlite_store *)base)->writes);
}

/* Opening and closing. */

/* Migration 3's work: copies each job of the old table into
 * jobs_by_sequence with its id as the key, appends its events to its
 * history, and drops the old tables. */
static int migrate_to_sequence_keys(sqlite3 *db, char *err, size_t err_size) {
  static const char *const copy_sql =
      "INSERT INTO jobs_by_sequence (" JOB_COLUMNS_V3 ") SELECT ?1, state,"
      " pool_id, job_type_id, priority, not_before_us, created_us,"
      " lease_expires_us, lease_seconds, max_attempts, idempotency_key,"
      " subject, job, status, result FROM jobs WHERE id = ?2";
  static const char *const event_sql =
      "UPDATE jobs_by_sequence SET history = CAST(COALESCE(history, x'') ||"
      " ?2 AS BLOB) WHERE seq = ?1";
  sqlite3_stmt *ids = NULL, *copy = NULL, *events = NULL, *append = NULL;
  int rv = -1;
  uint8_t *buffer = NULL;
  if (sqlite3_prepare_v2(db, "SELECT id FROM jobs", -1, &ids, NULL) !=
          SQLITE_OK ||
      sqlite3_prepare_v2(db, copy_sql, -1, &copy, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db,
                         "SELECT job_id, from_state, to_state, time_us, actor,"
                         " worker_idx, detail FROM job_events ORDER BY seq",
                         -1, &events, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db, event_sql, -1, &append, NULL) != SQLITE_OK) {
    snprintf(err, err_size, "%s", sqlite3_errmsg(db));
    goto out;
  }
  while (sqlite3_step(ids) == SQLITE_ROW) {
    const char *id = column_text(ids, 0);
    char *end = NULL;
    unsigned long long sequence = id ? strtoull(id, &end, 16) : 0;
    if (id == NULL || strlen(id) != 16 || *end != '\0') {
      snprintf(err, err_size, "job id \"%s\" is not 16 hex digits",
               id ? id : "");
      goto out;
    }
    sqlite3_bind_int64(copy, 1, (sqlite3_int64)sequence);
    sqlite3_bind_text(copy, 2, id, -1, SQLITE_STATIC);
    if (run_statement(copy) != 0) {
      snprintf(err, err_size, "copying job %s: %s", id, sqlite3_errmsg(db));
      goto out;
    }
  }
  while (sqlite3_step(events) == SQLITE_ROW) {
    const char *id = column_text(events, 0);
    stored_event event = {
        .from_state = sqlite3_column_int(events, 1),
        .to_state = sqlite3_column_int(events, 2),
        .time_us = sqlite3_column_int64(events, 3),
        .actor = column_text(events, 4),
        .worker_idx = (uint64_t)sqlite3_column_int64(events, 5),
        .detail = column_text(events, 6),
    };
    size_t size = history_event_size(&event);
    uint8_t *grown = realloc(buffer, size);
    if (grown == NULL) {
      snprintf(err, err_size, "out of memory");
      goto out;
    }
    buffer = grown;
    history_event_encode(&event, buffer);
    sqlite3_bind_int64(append, 1,
                       (sqlite3_int64)strtoull(id ? id : "0", NULL, 16));
    sqlite3_bind_blob(append, 2, buffer, (int)size, SQLITE_STATIC);
    if (run_statement(append) != 0) {
      snprintf(err, err_size, "copying events: %s", sqlite3_errmsg(db));
      goto out;
    }
  }
  char *message = NULL;
  if (sqlite3_exec(db,
                   "DROP TABLE job_events; DROP TABLE jobs;"
                   " ALTER TABLE jobs_by_sequence RENAME TO jobs;"
                   " CREATE UNIQUE INDEX jobs_by_key ON jobs(idempotency_key)"
                   " WHERE idempotency_key IS NOT NULL;",
                   NULL, NULL, &message) != SQLITE_OK) {
    snprintf(err, err_size, "%s", message ? message : sqlite3_errmsg(db));
    sqlite3_free(message);
    goto out;
  }
  rv = 0;
out:
  free(buffer);
  sqlite3_finalize(ids);
  sqlite3_finalize(copy);
  sqlite3_finalize(events);
  sqlite3_finalize(append);
  return rv;
}

static int migrate(sqlite3 *db, char *err, size_t err_size) {
  sqlite3_stmt *s = NULL;
  int version = 0;
  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) ==
          SQLITE_OK &&
      sqlite3_step(s) == SQLITE_ROW) {
    version = sqlite3_column_int(s, 0);
  }
  sqlite3_finalize(s);
  int known = (int)(sizeof(migrations) / sizeof(migrations[0]));
  if (version > known) {
    snprintf(err, err_size,
             "the database has schema version %d; this jobhubd knows %d",
             version, known);
    return -1;
  }
  for (int i = version; i < known; i++) {
    char pragma[64];
    snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", i + 1);
    char *message = NULL;
    char why[200] = "unknown error";
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, &message) != SQLITE_OK ||
        sqlite3_exec(db, migrations[i].sql, NULL, NULL, &message) !=
            SQLITE_OK ||
        (migrations[i].run != NULL &&
         migrations[i].run(db, why, sizeof(why)) != 0) ||
        sqlite3_exec(db, pragma, NULL, NULL, &message) != SQLITE_OK ||
        sqlite3_exec(db, "COMMIT", NULL, NULL, &message) != SQLITE_OK) {
      snprintf(err, err_size, "migration %d failed: %s", i + 1,
               message ? message : why);
      sqlite3_free(message);
      sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
      return -1;
    }
  }
  return 0;
}

static sqlite3 *open_connection(const char *path, const char *pragmas,
                                char *err, size_t err_size) {
  sqlite3 *db = NULL;
  /* Each connection is used by one thread only. */
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  char *message = NULL;
  if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK ||
      sqlite3_exec(db, pragmas, NULL, NULL, &message) != SQLITE_OK) {
    snprintf(err, err_size, "cannot open %s: %s", path,
             message ? message : (db ? sqlite3_errmsg(db) : "no memory"));
    sqlite3_free(message);
    sqlite3_close(db);
    return NULL;
  }
  return db;
}

/* SQLite's memory statistics take a global mutex on every allocation;
 * the store never reads them. Only possible before SQLite initializes:
 * later (another user in the process) it is refused, harmlessly. */
static void configure_sqlite(void) {
  (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static void close_store(job_store *base);

static job_store *open_store(const char *dir, struct ev_loop *loop, char *err,
                             size_t err_size) {
  static pthread_once_t configured = PTHREAD_ONCE_INIT;
  (void)pthread_once(&configured, configure_sqlite);
  if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
    snprintf(err, err_size, "cannot create %s: %s", dir, strerror(errno));
    return NULL;
  }
  char path[4096];
  snprintf(path, sizeof(path), "%s/jobhub.db", dir);
  struct stat file;
  if (stat(path, &file) == 0 && file.st_size == 0) {
    /* SQLite takes an empty file for a new database: say so, in case it
     * was a database once (truncated, or a copy gone wrong). */
    rpc_log(RPC_LOG_WARN, "store_file_empty",
            "path=%s reason=\"the database file is empty (0 bytes): "
            "starting with no jobs\"",
            path);
  }
  sqlite_store *store = calloc(1, sizeof(*store));
  if (store == NULL) {
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  store->base.ops = &job_store_sqlite_ops;
  pthread_mutex_init(&store->lock, NULL);
  pthread_cond_init(&store->wake, NULL);
  pthread_cond_init(&store->sync_wake, NULL);
  store->wal_fd = -1;
  store->loop = loop;
  store->writable = true;
  ev_timer_init(&store->probe_timer, on_probe_timer, 0, STORE_PROBE_INTERVAL);
  store->probe_timer.data = store;
  /* synchronous=NORMAL: SQLite syncs the WAL before each checkpoint and
   * the database after it; the syncer's fdatasync of the WAL after each
   * commit makes the commit itself durable (see writer_main).
   * cache_size stays small (2,000 pages): a row that grows splits its
   * page, and that split makes the commit scan the whole page cache's
   * hash (SQLite re-keys a page through the lock-byte page number); with
   * 64 MiB that scan cost a quarter of the writer's time. The writes
   * touch the table's right edge and recent rows, which fit. */
  store->writer = open_connection(
      path,
      "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
      " PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;"
      " PRAGMA cache_size = 2000; PRAGMA wal_autocheckpoint = 10000;",
      err, err_size);
  if (store->writer == NULL || migrate(store->writer, err, err_size) != 0) {
    goto fail;
  }
  /* The WAL file stays (it is never deleted and made anew while the hub
   * runs), so the descriptor synced is always the log's. */
  int persist = 1;
  char wal_path[4200];
  snprintf(wal_path, sizeof(wal_path), "%s-wal", path);
  if (sqlite3_file_control(store->writer, "main", SQLITE_FCNTL_PERSIST_WAL,
                           &persist) != SQLITE_OK ||
      (store->wal_fd = open(wal_path, O_RDWR | O_CLOEXEC)) < 0) {
    snprintf(err, err_size, "cannot open %s: %s", wal_path, strerror(errno));
    goto fail;
  }
  store->reader = sqlite_reader_open(path, loop, err, err_size);
  if (store->reader == NULL) {
    goto fail;
  }
  if (sqlite3_prepare_v2(store->writer, SAVE_JOB_SQL, -1, &store->save_job,
                         NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(store->writer, UPDATE_JOB_SQL, -1, &store->update_job,
                         NULL) != SQLITE_OK) {
    snprintf(err, err_size, "cannot prepare statements: %s",
             sqlite3_errmsg(store->writer));
    goto fail;
  }
  ev_async_init(&store->completed, on_completed);
  store->completed.data = store;
  ev_async_start(loop, &store->completed);
  int rv = pthread_create(&store->syncer, NULL, syncer_main, store);
  if (rv == 0) {
    (void)pthread_setname_np(store->syncer, "store-syncer");
  }
  if (rv != 0) {
    snprintf(err, err_size, "cannot start the syncer: %s", strerror(rv));
    ev_async_stop(loop, &store->completed);
    goto fail;
  }
  store->syncer_started = true;
  rv = pthread_create(&store->thread, NULL, writer_main, store);
  if (rv != 0) {
    snprintf(err, err_size, "cannot start the writer: %s", strerror(rv));
    goto fail;
  }
  store->thread_started = true;
  (void)pthread_setname_np(store->thread, "store-writer");
  return &store->base;
fail:
  close_store(&store->base);
  return NULL;
}

/* The writes first: their callbacks may ask for reads (History after its
 * write), which the reader still does. */
static void close_store(job_store *base) {
  sqlite_store *store = (sqlite_store *)base;
  pthread_mutex_lock(&store->lock);
  store->closing = true;
  pthread_cond_signal(&store->wake);
  if (!store->thread_started) {
    store->writer_done = true; /* no writer: the syncer may stop */
    pthread_cond_signal(&store->sync_wake);
  }
  pthread_mutex_unlock(&store->lock);
  if (store->thread_started) {
    pthread_join(store->thread, NULL); /* it drains the queue first */
  }
  if (store->syncer_started) {
    pthread_join(store->syncer, NULL); /* and it syncs what was written */
    ev_async_stop(store->loop, &store->completed);
    deliver_completions(store);
  }
  ev_timer_stop(store->loop, &store->probe_timer);
  if (store->wal_fd >= 0) {
    close(store->wal_fd);
  }
  free(store->merge_slots);
  while (store->spare_ops != NULL) {
    write_op *next = store->spare_ops->next;
    free(store->spare_ops);
    store->spare_ops = next;
  }
  sqlite3_finalize(store->save_job);
  sqlite3_finalize(store->update_job);
  sqlite_reader_close(store->reader);
  sqlite3_close(store->writer);
  pthread_cond_destroy(&store->wake);
  pthread_cond_destroy(&store->sync_wake);
  pthread_mutex_destroy(&store->lock);
  free(store);
}

const job_store_ops job_store_sqlite_ops = {
    .name = "sqlite",
    .open = open_store,
    .save_job = save_job,
    .load_jobs = load_jobs,
    .load_result = load_result,
    .load_events = load_events,
    .commits = commits,
    .writes = writes,
    .on_written = on_written,
    .error = error_cause,
    .on_writable = on_writable,
    .close = close_store,
};
