/* store_sqlite.c: the job store on SQLite (WAL), with a writer thread that
 * group-commits. */
#include "server/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ev.h>
#include <sqlite3.h>

#include "rpc/log.h"

/* Schema migrations, applied in order; PRAGMA user_version counts those
 * done. Never edit one that has shipped: append a new one. */
static const char *const migrations[] = {
    "CREATE TABLE jobs ("
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
    /* 2: the job splits into the part fixed at Submit (job) and the part
     * that changes (status), so a transition rewrites only the latter. */
    "ALTER TABLE jobs ADD COLUMN status BLOB;"
    "ALTER TABLE jobs ADD COLUMN subject TEXT;"
    "ALTER TABLE jobs ADD COLUMN lease_seconds INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 0;",
};

#define SAVE_JOB_SQL                                                          \
  "INSERT INTO jobs (id, state, pool_id, job_type_id, priority,"              \
  " not_before_us, created_us, lease_expires_us, idempotency_key, job,"       \
  " result, status, subject, lease_seconds, max_attempts) VALUES (?1, ?2,"    \
  " ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"                \
  " ON CONFLICT(id) DO UPDATE SET state = excluded.state,"                    \
  " pool_id = excluded.pool_id, job_type_id = excluded.job_type_id,"          \
  " priority = excluded.priority, not_before_us = excluded.not_before_us,"    \
  " lease_expires_us = excluded.lease_expires_us, job = excluded.job,"        \
  " result = excluded.result, status = excluded.status,"                      \
  " subject = excluded.subject, lease_seconds = excluded.lease_seconds,"      \
  " max_attempts = excluded.max_attempts"
#define UPDATE_JOB_SQL                                                        \
  "UPDATE jobs SET state = ?2, not_before_us = ?3, lease_expires_us = ?4,"    \
  " status = ?5, result = COALESCE(?6, result) WHERE id = ?1"
#define SAVE_EVENT_SQL                                                        \
  "INSERT INTO job_events (job_id, from_state, to_state, time_us, actor,"     \
  " worker_idx, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
#define LOAD_JOBS_SQL                                                         \
  "SELECT id, state, pool_id, job_type_id, priority, not_before_us,"          \
  " created_us, lease_expires_us, idempotency_key, job, result, status,"      \
  " subject, lease_seconds, max_attempts FROM jobs ORDER BY id"
#define LOAD_RESULT_SQL "SELECT result FROM jobs WHERE id = ?1"
#define LOAD_EVENTS_SQL                                                       \
  "SELECT job_id, from_state, to_state, time_us, actor, worker_idx, detail"   \
  " FROM job_events WHERE job_id = ?1 ORDER BY seq"

/* A queued write: the records and, after them in data, copies of every
 * string and blob they point to. */
typedef struct write_op {
  struct write_op *next;
  job_store_done_fn done;
  void *arg;
  int status;
  stored_job job;
  stored_event event;
  bool has_event;
  uint8_t data[];
} write_op;

struct job_store {
  sqlite3 *writer;
  sqlite3 *reader;
  sqlite3_stmt *save_job;
  sqlite3_stmt *update_job;
  sqlite3_stmt *load_result;
  sqlite3_stmt *save_event;
  sqlite3_stmt *load_jobs;
  sqlite3_stmt *load_events;
  pthread_t thread;
  bool thread_started;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  write_op *queue_head, *queue_tail; /* waiting for the writer */
  write_op *done_head, *done_tail;   /* committed, callbacks owed */
  bool closing;
  struct ev_loop *loop;
  ev_async completed;
  atomic_uint_fast64_t commits;
  atomic_uint_fast64_t writes;
};

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

static int update_job(job_store *store, const stored_job *job) {
  sqlite3_stmt *s = store->update_job;
  sqlite3_bind_text(s, 1, job->id, -1, SQLITE_STATIC);
  sqlite3_bind_int(s, 2, job->state);
  sqlite3_bind_int64(s, 3, job->not_before_us);
  sqlite3_bind_int64(s, 4, job->lease_expires_us);
  bind_blob(s, 5, job->status, job->status_size);
  bind_blob(s, 6, job->result, job->result_size);
  return run_statement(s);
}

static int write_job(job_store *store, const stored_job *job) {
  if (job->job == NULL) {
    return update_job(store, job);
  }
  sqlite3_stmt *s = store->save_job;
  sqlite3_bind_text(s, 1, job->id, -1, SQLITE_STATIC);
  sqlite3_bind_int(s, 2, job->state);
  sqlite3_bind_int64(s, 3, job->pool_id);
  sqlite3_bind_int64(s, 4, job->job_type_id);
  sqlite3_bind_int(s, 5, job->priority);
  sqlite3_bind_int64(s, 6, job->not_before_us);
  sqlite3_bind_int64(s, 7, job->created_us);
  sqlite3_bind_int64(s, 8, job->lease_expires_us);
  bind_text(s, 9, job->idempotency_key);
  sqlite3_bind_blob(s, 10, job->job, (int)job->job_size, SQLITE_STATIC);
  bind_blob(s, 11, job->result, job->result_size);
  bind_blob(s, 12, job->status, job->status_size);
  bind_text(s, 13, job->subject);
  sqlite3_bind_int64(s, 14, job->lease_seconds);
  sqlite3_bind_int64(s, 15, job->max_attempts);
  return run_statement(s);
}

static int write_event(job_store *store, const stored_event *event) {
  sqlite3_stmt *s = store->save_event;
  sqlite3_bind_text(s, 1, event->job_id, -1, SQLITE_STATIC);
  sqlite3_bind_int(s, 2, event->from_state);
  sqlite3_bind_int(s, 3, event->to_state);
  sqlite3_bind_int64(s, 4, event->time_us);
  sqlite3_bind_text(s, 5, event->actor, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 6, (sqlite3_int64)event->worker_idx);
  bind_text(s, 7, event->detail);
  return run_statement(s);
}

/* Commits a group in one transaction. A write that fails (a constraint)
 * fails alone; a failed COMMIT fails them all. */
static void commit_group(job_store *store, write_op *group) {
  size_t count = 0;
  if (sqlite3_exec(store->writer, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
      SQLITE_OK) {
    rpc_log(RPC_LOG_ERROR, "store_begin_failed", "error=\"%s\"",
            sqlite3_errmsg(store->writer));
    for (write_op *op = group; op != NULL; op = op->next) {
      op->status = -1;
    }
    return;
  }
  for (write_op *op = group; op != NULL; op = op->next, count++) {
    op->status = write_job(store, &op->job);
    if (op->status == 0 && op->has_event) {
      op->status = write_event(store, &op->event);
    }
    if (op->status != 0) {
      rpc_log(RPC_LOG_WARN, "store_write_failed", "job=%s error=\"%s\"",
              op->job.id, sqlite3_errmsg(store->writer));
    }
  }
  if (sqlite3_exec(store->writer, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    rpc_log(RPC_LOG_ERROR, "store_commit_failed", "error=\"%s\"",
            sqlite3_errmsg(store->writer));
    sqlite3_exec(store->writer, "ROLLBACK", NULL, NULL, NULL);
    for (write_op *op = group; op != NULL; op = op->next) {
      op->status = -1;
    }
  }
  atomic_fetch_add(&store->commits, 1);
  atomic_fetch_add(&store->writes, count);
}

static void *writer_main(void *arg) {
  job_store *store = arg;
  for (;;) {
    pthread_mutex_lock(&store->lock);
    while (store->queue_head == NULL && !store->closing) {
      pthread_cond_wait(&store->wake, &store->lock);
    }
    write_op *group = store->queue_head;
    store->queue_head = store->queue_tail = NULL;
    pthread_mutex_unlock(&store->lock);
    if (group == NULL) {
      return NULL; /* closing, and nothing left to write */
    }
    commit_group(store, group);
    pthread_mutex_lock(&store->lock);
    append(&store->done_head, &store->done_tail, group);
    pthread_mutex_unlock(&store->lock);
    ev_async_send(store->loop, &store->completed);
  }
}

static void deliver_completions(job_store *store) {
  pthread_mutex_lock(&store->lock);
  write_op *list = store->done_head;
  store->done_head = store->done_tail = NULL;
  pthread_mutex_unlock(&store->lock);
  while (list != NULL) {
    write_op *next = list->next;
    list->done(list->status, list->arg);
    free(list);
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

static const uint8_t *copy_blob(write_op *op, size_t *used,
                                const uint8_t *blob, size_t size) {
  if (blob == NULL) {
    return NULL;
  }
  uint8_t *copy = op->data + *used;
  memcpy(copy, blob, size);
  *used += size;
  return copy;
}

static size_t text_size(const char *text) {
  return text != NULL ? strlen(text) + 1 : 0;
}

int job_store_save_job(job_store *store, const stored_job *job,
                       const stored_event *event, job_store_done_fn done,
                       void *arg) {
  size_t size = text_size(job->id) + text_size(job->idempotency_key) +
                text_size(job->subject) + (job->job ? job->job_size : 0) +
                (job->result ? job->result_size : 0) +
                (job->status ? job->status_size : 0);
  if (event != NULL) {
    size += text_size(event->job_id) + text_size(event->actor) +
            text_size(event->detail);
  }
  write_op *op = malloc(sizeof(*op) + size);
  if (op == NULL) {
    return -1;
  }
  size_t used = 0;
  *op = (write_op){.done = done, .arg = arg, .job = *job};
  op->job.id = copy_text(op, &used, job->id);
  op->job.idempotency_key = copy_text(op, &used, job->idempotency_key);
  op->job.job = copy_blob(op, &used, job->job, job->job_size);
  op->job.result = copy_blob(op, &used, job->result, job->result_size);
  op->job.status = copy_blob(op, &used, job->status, job->status_size);
  op->job.subject = copy_text(op, &used, job->subject);
  if (event != NULL) {
    op->has_event = true;
    op->event = *event;
    op->event.job_id = copy_text(op, &used, event->job_id);
    op->event.actor = copy_text(op, &used, event->actor);
    op->event.detail = copy_text(op, &used, event->detail);
  }
  pthread_mutex_lock(&store->lock);
  if (store->closing) {
    pthread_mutex_unlock(&store->lock);
    free(op);
    return -1;
  }
  append(&store->queue_head, &store->queue_tail, op);
  pthread_cond_signal(&store->wake);
  pthread_mutex_unlock(&store->lock);
  return 0;
}

/* Reading. */

static const char *column_text(sqlite3_stmt *s, int column) {
  return (const char *)sqlite3_column_text(s, column);
}

int job_store_load_jobs(job_store *store,
                        int (*each)(const stored_job *job, void *arg),
                        void *arg) {
  sqlite3_stmt *s = store->load_jobs;
  int rv = 0;
  int step = SQLITE_DONE;
  while (rv == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
    stored_job job = {
        .id = column_text(s, 0),
        .state = sqlite3_column_int(s, 1),
        .pool_id = (uint32_t)sqlite3_column_int64(s, 2),
        .job_type_id = (uint32_t)sqlite3_column_int64(s, 3),
        .priority = sqlite3_column_int(s, 4),
        .not_before_us = sqlite3_column_int64(s, 5),
        .created_us = sqlite3_column_int64(s, 6),
        .lease_expires_us = sqlite3_column_int64(s, 7),
        .idempotency_key = column_text(s, 8),
        .job = sqlite3_column_blob(s, 9),
        .job_size = (size_t)sqlite3_column_bytes(s, 9),
        .result = sqlite3_column_blob(s, 10),
        .result_size = (size_t)sqlite3_column_bytes(s, 10),
        .status = sqlite3_column_blob(s, 11),
        .status_size = (size_t)sqlite3_column_bytes(s, 11),
        .subject = column_text(s, 12),
        .lease_seconds = (uint32_t)sqlite3_column_int64(s, 13),
        .max_attempts = (uint32_t)sqlite3_column_int64(s, 14),
    };
    rv = each(&job, arg);
  }
  if (rv == 0 && step != SQLITE_DONE) {
    rpc_log(RPC_LOG_ERROR, "store_read_failed", "error=\"%s\"",
            sqlite3_errmsg(store->reader));
    rv = -1;
  }
  sqlite3_reset(s);
  return rv;
}

int job_store_load_events(job_store *store, const char *job_id,
                          int (*each)(const stored_event *event, void *arg),
                          void *arg) {
  sqlite3_stmt *s = store->load_events;
  sqlite3_bind_text(s, 1, job_id, -1, SQLITE_STATIC);
  int rv = 0;
  int step = SQLITE_DONE;
  while (rv == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
    stored_event event = {
        .job_id = column_text(s, 0),
        .from_state = sqlite3_column_int(s, 1),
        .to_state = sqlite3_column_int(s, 2),
        .time_us = sqlite3_column_int64(s, 3),
        .actor = column_text(s, 4),
        .worker_idx = (uint64_t)sqlite3_column_int64(s, 5),
        .detail = column_text(s, 6),
    };
    rv = each(&event, arg);
  }
  if (rv == 0 && step != SQLITE_DONE) {
    rpc_log(RPC_LOG_ERROR, "store_read_failed", "error=\"%s\"",
            sqlite3_errmsg(store->reader));
    rv = -1;
  }
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return rv;
}

int job_store_load_result(job_store *store, const char *job_id,
                          uint8_t **result, size_t *result_size) {
  sqlite3_stmt *s = store->load_result;
  sqlite3_bind_text(s, 1, job_id, -1, SQLITE_STATIC);
  int rv = 0;
  *result = NULL;
  *result_size = 0;
  int step = sqlite3_step(s);
  if (step == SQLITE_ROW) {
    const void *blob = sqlite3_column_blob(s, 0);
    size_t size = (size_t)sqlite3_column_bytes(s, 0);
    if (blob != NULL || sqlite3_column_type(s, 0) != SQLITE_NULL) {
      *result = malloc(size > 0 ? size : 1);
      if (*result == NULL) {
        rv = -1;
      } else {
        memcpy(*result, blob, size);
        *result_size = size;
      }
    }
  } else if (step != SQLITE_DONE) {
    rpc_log(RPC_LOG_ERROR, "store_read_failed", "error=\"%s\"",
            sqlite3_errmsg(store->reader));
    rv = -1;
  }
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return rv;
}

uint64_t job_store_commits(const job_store *store) {
  return atomic_load(&store->commits);
}

uint64_t job_store_writes(const job_store *store) {
  return atomic_load(&store->writes);
}

/* Opening and closing. */

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
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, &message) != SQLITE_OK ||
        sqlite3_exec(db, migrations[i], NULL, NULL, &message) != SQLITE_OK ||
        sqlite3_exec(db, pragma, NULL, NULL, &message) != SQLITE_OK ||
        sqlite3_exec(db, "COMMIT", NULL, NULL, &message) != SQLITE_OK) {
      snprintf(err, err_size, "migration %d failed: %s", i + 1,
               message ? message : "unknown error");
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
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
              SQLITE_OPEN_NOMUTEX;
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

job_store *job_store_open(const char *dir, struct ev_loop *loop, char *err,
                          size_t err_size) {
  if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
    snprintf(err, err_size, "cannot create %s: %s", dir, strerror(errno));
    return NULL;
  }
  char path[4096];
  snprintf(path, sizeof(path), "%s/jobhub.db", dir);
  job_store *store = calloc(1, sizeof(*store));
  if (store == NULL) {
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  pthread_mutex_init(&store->lock, NULL);
  pthread_cond_init(&store->wake, NULL);
  store->loop = loop;
  /* synchronous=FULL: in WAL mode each COMMIT syncs the log, so an
   * acknowledged write survives power loss. */
  store->writer = open_connection(
      path,
      "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
      " PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
      err, err_size);
  if (store->writer == NULL || migrate(store->writer, err, err_size) != 0) {
    goto fail;
  }
  store->reader =
      open_connection(path, "PRAGMA busy_timeout = 5000;", err, err_size);
  if (store->reader == NULL) {
    goto fail;
  }
  if (sqlite3_prepare_v2(store->writer, SAVE_JOB_SQL, -1, &store->save_job,
                         NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(store->writer, UPDATE_JOB_SQL, -1, &store->update_job,
                         NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(store->writer, SAVE_EVENT_SQL, -1, &store->save_event,
                         NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(store->reader, LOAD_RESULT_SQL, -1,
                         &store->load_result, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(store->reader, LOAD_JOBS_SQL, -1, &store->load_jobs,
                         NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(store->reader, LOAD_EVENTS_SQL, -1,
                         &store->load_events, NULL) != SQLITE_OK) {
    snprintf(err, err_size, "cannot prepare statements: %s",
             sqlite3_errmsg(store->writer));
    goto fail;
  }
  ev_async_init(&store->completed, on_completed);
  store->completed.data = store;
  ev_async_start(loop, &store->completed);
  int rv = pthread_create(&store->thread, NULL, writer_main, store);
  if (rv != 0) {
    snprintf(err, err_size, "cannot start the writer: %s", strerror(rv));
    ev_async_stop(loop, &store->completed);
    goto fail;
  }
  store->thread_started = true;
  return store;
fail:
  job_store_close(store);
  return NULL;
}

void job_store_close(job_store *store) {
  if (store == NULL) {
    return;
  }
  if (store->thread_started) {
    pthread_mutex_lock(&store->lock);
    store->closing = true;
    pthread_cond_signal(&store->wake);
    pthread_mutex_unlock(&store->lock);
    pthread_join(store->thread, NULL); /* it drains the queue first */
    ev_async_stop(store->loop, &store->completed);
    deliver_completions(store);
  }
  sqlite3_finalize(store->save_job);
  sqlite3_finalize(store->update_job);
  sqlite3_finalize(store->load_result);
  sqlite3_finalize(store->save_event);
  sqlite3_finalize(store->load_jobs);
  sqlite3_finalize(store->load_events);
  sqlite3_close(store->reader);
  sqlite3_close(store->writer);
  pthread_cond_destroy(&store->wake);
  pthread_mutex_destroy(&store->lock);
  free(store);
}
