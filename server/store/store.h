/* store.h: the interface of the hub's durable state: a table of
 * operations (job_store_ops) that hub_open is given, and the records they
 * take. The core calls a store only through its table, so that SQLite
 * (server/store/sqlite.h) or another store (a test's, PostgreSQL's) can be
 * given. Every operation is called on the core's thread; whatever blocks
 * (the disk, a network round trip) runs on threads of the store's own,
 * and its completions come back on the core's loop: writes (save_job)
 * and the reads that answer calls (load_result, load_events) alike. Only
 * open, load_jobs (the recovery, before the core serves calls) and close
 * may block. */
#ifndef JOBHUB_SERVER_STORE_STORE_H
#define JOBHUB_SERVER_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;

typedef struct job_store_ops job_store_ops;

/* An open store. Each store's own state begins with one (its first
 * member), so that the core reaches the store's operations from the
 * handle alone; the rest is the store's. */
typedef struct job_store {
  const job_store_ops *ops;
} job_store;

/* Bytes of a lease id's secret (job_record.h LEASE_SECRET_SIZE). */
#define STORED_LEASE_SECRET_SIZE 16

/* A job as stored: the fields the hub queries by, and the jobhub.v1.Job in
 * two serialized parts with disjoint fields, so that their concatenation
 * parses as the whole Job: job, the fields fixed at Submit, written once,
 * and status, the fields that change (state, attempts, times, progress,
 * error). Jobs are keyed by sequence, the number their id spells. Times
 * are microseconds since the Unix epoch, 0 for none. */
typedef struct stored_job {
  uint64_t sequence; /* 0 .. INT64_MAX: SQLite's integers are signed */
  int state;         /* jobhub.v1.JobState */
  uint32_t pool_id;
  uint32_t job_type_id;
  int32_t priority;
  int64_t not_before_us;
  int64_t created_us;
  int64_t lease_expires_us;
  const char *idempotency_key; /* NULL or "": none; unique otherwise */
  const char *subject;         /* NULL or "": none */
  uint32_t lease_seconds;      /* as submitted; 0: the hub's default */
  uint32_t max_attempts;
  uint32_t leases; /* leases the job had (lease ids' numbers) */
  /* The random part of its last lease id; all zero: none (a row written
   * before migration 5). */
  uint8_t lease_secret[STORED_LEASE_SECRET_SIZE];
  const uint8_t *job; /* the fixed part; NULL on save: update the rest */
  size_t job_size;
  const uint8_t *status; /* the changing part */
  size_t status_size;
  const uint8_t *result; /* serialized jobhub.v1.JobResult, or NULL */
  size_t result_size;
} stored_job;

/* One transition of a job, for History. The events of a job are kept in
 * its own row (appended, in the store's compact form), so that a
 * transition costs one row write. */
typedef struct stored_event {
  const struct stored_event *next; /* a later event to append, or NULL */
  int from_state;
  int to_state;
  int64_t time_us;
  const char *actor;
  uint64_t worker_idx;
  const char *detail; /* may be NULL */
} stored_event;

/* Called on the core loop: status 0 once the write is durable, or one of
 * the JOB_STORE_* failures below if it failed (nothing of it was stored;
 * the reason is logged, and job_store_error has it). */
typedef void (*job_store_done_fn)(int status, void *arg);

/* Why a write failed. REFUSED: this write alone (a constraint, a row not
 * stored); the store still writes. FULL: the disk is full (SQLITE_FULL,
 * ENOSPC, EDQUOT). IO: any other error of the file or the database. FULL
 * and IO fail the whole group the write was committed in, and the store
 * is "not writable" until a later write (or a probe) succeeds. */
#define JOB_STORE_REFUSED (-1)
#define JOB_STORE_FULL (-2)
#define JOB_STORE_IO (-3)

/* What an asynchronous read found about job sequence, borrowed for the
 * completion only: for load_result the serialized jobhub.v1.JobResult
 * (NULL: the job has none, or is not stored), for load_events its
 * events, oldest first, linked through next (NULL: none). */
typedef struct stored_read {
  uint64_t sequence;
  const uint8_t *result;
  size_t result_size;
  const stored_event *events;
} stored_read;

/* Called on the core loop once a read is done: status 0 with what it
 * found, or JOB_STORE_IO (a read error, a damaged history, no memory;
 * logged) with nothing found. */
typedef void (*job_store_read_fn)(int status, const stored_read *read,
                                  void *arg);

/* A store's operations. The job_store_* functions below call them: see
 * there what each does. */
struct job_store_ops {
  const char *name; /* for logs: "sqlite" */
  job_store *(*open)(const char *dir, struct ev_loop *loop, char *err,
                     size_t err_size);
  int (*save_job)(job_store *store, const stored_job *job,
                  const stored_event *event, job_store_done_fn done, void *arg);
  int (*load_jobs)(job_store *store,
                   int (*each)(const stored_job *job, void *arg), void *arg);
  int (*load_result)(job_store *store, uint64_t sequence,
                     job_store_read_fn done, void *arg);
  int (*load_events)(job_store *store, uint64_t sequence,
                     job_store_read_fn done, void *arg);
  uint64_t (*commits)(const job_store *store);
  uint64_t (*writes)(const job_store *store);
  void (*on_written)(job_store *store, void (*fn)(uint64_t sequence, void *arg),
                     void *arg);
  void (*error)(job_store *store, char *why, size_t why_size);
  void (*on_writable)(job_store *store, void (*fn)(bool writable, void *arg),
                      void *arg);
  void (*close)(job_store *store);
};

/* job_store_open opens the store of ops in the data folder dir (SQLite:
 * dir/jobhub.db, created and migrated) and starts its threads, whose
 * completions run on loop. Returns NULL with a message in err. */
static inline job_store *job_store_open(const job_store_ops *ops,
                                        const char *dir, struct ev_loop *loop,
                                        char *err, size_t err_size) {
  return ops->open(dir, loop, err, err_size);
}

/* job_store_save_job queues an insert-or-replace of job (copied) with
 * optional events (a list through next, copied; NULL for none) appended to
 * the job's history in the same transaction; when job->job is NULL it updates
 * only state, not_before_us, lease_expires_us, leases, lease_secret, status and
 * (when not NULL) result of a stored job, and fails (status -1) for a job that
 * is not stored. done (NULL: nobody waits) runs once, on the loop. Writes
 * are durable in the order they were queued. Returns 0, or -1 (a sequence
 * over INT64_MAX, an event state outside 0..255, no memory, or the store
 * is closing: done is then never called). */
static inline int job_store_save_job(job_store *store, const stored_job *job,
                                     const stored_event *event,
                                     job_store_done_fn done, void *arg) {
  return store->ops->save_job(store, job, event, done, arg);
}

/* job_store_load_jobs calls each for every stored job, in sequence order,
 * until each returns non-zero: the recovery at start-up, on the calling
 * thread. The record is borrowed for the call. Returns 0, each's non-zero
 * return, or -1 on a read error. */
static inline int
job_store_load_jobs(job_store *store,
                    int (*each)(const stored_job *job, void *arg), void *arg) {
  return store->ops->load_jobs(store, each, arg);
}

/* job_store_load_result reads the result of job sequence off the loop;
 * done runs once, on the loop, with it (read->result). A read sees every
 * write whose done ran before the read was asked for; reads complete in
 * the order they were asked for. Returns 0, or -1 (no memory, or the
 * store is closing: done is then never called). */
static inline int job_store_load_result(job_store *store, uint64_t sequence,
                                        job_store_read_fn done, void *arg) {
  return store->ops->load_result(store, sequence, done, arg);
}

/* job_store_load_events reads the events of job sequence (read->events,
 * oldest first) as job_store_load_result reads its result; a damaged
 * stored history is a read error. */
static inline int job_store_load_events(job_store *store, uint64_t sequence,
                                        job_store_read_fn done, void *arg) {
  return store->ops->load_events(store, sequence, done, arg);
}

/* job_store_commits returns how many transactions the writer committed,
 * and job_store_writes how many writes they held: their ratio is the
 * group size. */
static inline uint64_t job_store_commits(const job_store *store) {
  return store->ops->commits(store);
}
static inline uint64_t job_store_writes(const job_store *store) {
  return store->ops->writes(store);
}

/* job_store_on_written sets fn to run on the loop after each write (with
 * its job's sequence), before the write's own done: how the hub counts
 * the writes of a job that are not durable yet. */
static inline void
job_store_on_written(job_store *store, void (*fn)(uint64_t sequence, void *arg),
                     void *arg) {
  store->ops->on_written(store, fn, arg);
}

/* job_store_error copies into why the cause of the latest failed write
 * (SQLite's message or the errno's), "" if none failed yet. */
static inline void job_store_error(job_store *store, char *why,
                                   size_t why_size) {
  store->ops->error(store, why, why_size);
}

/* job_store_on_writable sets fn to run on the loop whenever the store
 * turns not writable (a write failed with JOB_STORE_FULL or _IO) or
 * writable again (a later write, or the probe the store then commits
 * every second on its own, succeeded). */
static inline void job_store_on_writable(job_store *store,
                                         void (*fn)(bool writable, void *arg),
                                         void *arg) {
  store->ops->on_writable(store, fn, arg);
}

/* job_store_close waits for every queued write and read to be done, runs
 * the callbacks still owed on the calling thread (the loop's; a read or
 * write they ask for is refused), stops the store's threads and frees
 * the store. NULL: nothing. */
static inline void job_store_close(job_store *store) {
  if (store != NULL) {
    store->ops->close(store);
  }
}

#endif
