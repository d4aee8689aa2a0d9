/* store.h: the hub's durable state, in SQLite in WAL mode, one file in the
 * data folder (jobhub.db). Writes are queued to a writer thread that
 * commits them in groups: every write that arrives while a commit runs
 * goes into the next transaction, so one fsync makes a whole group
 * durable. Each write's callback runs on the core's loop once the write is
 * durable (or failed): a job is acknowledged only then. Reads (start-up
 * recovery, history) are synchronous on the calling thread, through a
 * connection of their own that WAL lets read while the writer writes. */
#ifndef JOBHUB_SERVER_STORE_STORE_H
#define JOBHUB_SERVER_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;

typedef struct job_store job_store;

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
  uint32_t leases;    /* leases the job had (lease ids' numbers) */
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

/* job_store_open opens (creating, migrating) dir/jobhub.db and starts the
 * writer thread, whose completions run on loop. Returns NULL with a
 * message in err. */
job_store *job_store_open(const char *dir, struct ev_loop *loop, char *err,
                          size_t err_size);

/* job_store_save_job queues an insert-or-replace of job (copied) with
 * optional events (a list through next, copied; NULL for none) appended to
 * the job's history in the same transaction; when job->job is NULL it updates
 * only state, not_before_us, lease_expires_us, leases, lease_secret, status and
 * (when not NULL) result of a stored job, and fails (status -1) for a job that
 * is not stored. done (NULL: nobody waits) runs once, on the loop. Returns 0,
 * or -1 (a sequence over INT64_MAX, an event state outside 0..255, no memory,
 * or the store is closing: done is then never called). */
int job_store_save_job(job_store *store, const stored_job *job,
                       const stored_event *event, job_store_done_fn done,
                       void *arg);

/* job_store_load_jobs calls each for every stored job, in sequence order,
 * until each returns non-zero. The record is borrowed for the call.
 * Returns 0, each's non-zero return, or -1 on a read error. */
int job_store_load_jobs(job_store *store,
                        int (*each)(const stored_job *job, void *arg),
                        void *arg);

/* job_store_load_result stores in *result a malloc'd copy of the result
 * of job sequence (the caller frees it), or NULL when there is none.
 * Returns 0, or -1 on a read error or no memory. */
int job_store_load_result(job_store *store, uint64_t sequence, uint8_t **result,
                          size_t *result_size);

/* job_store_load_events calls each for every event of job sequence, oldest
 * first (the event is borrowed for the call). Returns as
 * job_store_load_jobs; -1 also when the stored history is damaged. */
int job_store_load_events(job_store *store, uint64_t sequence,
                          int (*each)(const stored_event *event, void *arg),
                          void *arg);

/* job_store_commits returns how many transactions the writer committed,
 * and job_store_writes how many writes they held: their ratio is the
 * group size. */
uint64_t job_store_commits(const job_store *store);
uint64_t job_store_writes(const job_store *store);

/* job_store_on_written sets fn to run on the loop after each write (with
 * its job's sequence), before the write's own done: how the hub counts
 * the writes of a job that are not durable yet. */
void job_store_on_written(job_store *store,
                          void (*fn)(uint64_t sequence, void *arg), void *arg);

/* job_store_error copies into why the cause of the latest failed write
 * (SQLite's message or the errno's), "" if none failed yet. */
void job_store_error(job_store *store, char *why, size_t why_size);

/* job_store_on_writable sets fn to run on the loop whenever the store
 * turns not writable (a write failed with JOB_STORE_FULL or _IO) or
 * writable again (a later write, or the probe the store then commits
 * every second on its own, succeeded). */
void job_store_on_writable(job_store *store,
                           void (*fn)(bool writable, void *arg), void *arg);

/* job_store_close waits for every queued write to be committed, runs the
 * callbacks still owed on the calling thread (the loop's), stops the
 * writer and closes the database. */
void job_store_close(job_store *store);

#endif
