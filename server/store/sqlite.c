/* store/sqlite.c: the job store on SQLite (WAL): its operations on the
 * loop thread (queueing writes, delivering their completions, the probe
 * while not writable), opening and closing. The writer and syncer threads
 * are sqlite_writer.c's, the migrations sqlite_schema.c's. */
#include "server/store/sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>
#include <sqlite3.h>

#include "rpc/log.h"
#include "server/store/sqlite_history.h"
#include "server/store/sqlite_reader.h"
#include "server/store/sqlite_schema.h"
#include "server/store/sqlite_store.h"
#include "server/store/sqlite_writer.h"

/* While the store is not writable it commits a probe this often, so that
 * it turns writable again without waiting for a client's write. */
#define STORE_PROBE_INTERVAL 1.0 /* s */

/* Write ops, made and freed on the loop thread. */

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
  write_op_append(&store->queue_head, &store->queue_tail, op);
  pthread_cond_signal(&store->wake);
  pthread_mutex_unlock(&store->lock);
  return 0;
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
   * commit makes the commit itself durable (see sqlite_writer_main).
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
  if (store->writer == NULL ||
      sqlite_schema_migrate(store->writer, err, err_size) != 0) {
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
  if (sqlite_writer_prepare(store, err, err_size) != 0) {
    goto fail;
  }
  ev_async_init(&store->completed, on_completed);
  store->completed.data = store;
  ev_async_start(loop, &store->completed);
  int rv = pthread_create(&store->syncer, NULL, sqlite_syncer_main, store);
  if (rv == 0) {
    (void)pthread_setname_np(store->syncer, "store-syncer");
  }
  if (rv != 0) {
    snprintf(err, err_size, "cannot start the syncer: %s", strerror(rv));
    ev_async_stop(loop, &store->completed);
    goto fail;
  }
  store->syncer_started = true;
  rv = pthread_create(&store->thread, NULL, sqlite_writer_main, store);
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
