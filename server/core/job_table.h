/* job_table.h: the jobs the core holds: lookups, states and the pools'
 * counters, the job list and indexes, Submit, dropping a job whose Submit
 * was not stored, and undoing a transition whose write failed. Core
 * thread only. */
#ifndef JOBHUB_SERVER_CORE_JOB_TABLE_H
#define JOBHUB_SERVER_CORE_JOB_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobhub/v1/jobs.pb-c.h"
#include "server/core/hub.h"
#include "server/core/job_record.h"
#include "server/store/store.h"

/* What a transition awaited by its caller (Cancel, Complete, Fail)
 * changed, to put the job back as it was if its write fails: the caller
 * is told, and may retry. */
typedef struct job_undo {
  bool set;
  int from_state, to_state;
  uint32_t leases; /* the job's lease number at the transition */
  uint64_t worker_idx;
  int64_t finished_us, lease_due_us, not_before_us;
  double progress;
  char *error; /* owned: a copy of the error before, or NULL */
  bool lease_unsaved;
} job_undo;

/* hub_find_job finds a job by its id; hub_find_job_by_key by its
 * idempotency key. NULL when there is none. */
job_record *hub_find_job(job_hub *hub, const char *id);
job_record *hub_find_job_by_key(job_hub *hub, const char *key);

/* hub_state_is_final tells whether state is DONE, FAILED or CANCELLED;
 * hub_state_name names a jobhub.v1.JobState. */
bool hub_state_is_final(int state);
const char *hub_state_name(int state);

/* hub_set_state moves job to state, keeping the pools' counters. */
void hub_set_state(job_hub *hub, job_record *job, int state);

/* hub_index_job adds job (not yet indexed) to the id and key indexes and
 * the end of the job list. Returns 0, or -1 (no memory: nothing added). */
int hub_index_job(job_hub *hub, job_record *job);

/* hub_submit adds a job (fixed part packed by the loop) and saves it;
 * done runs on the core when the write is durable (status 0) or failed.
 * Returns the job, or NULL (no memory, or the store refused: done is not
 * run). */
job_record *hub_submit(job_hub *hub, const Jobhub__V1__SubmitRequest *request,
                       const uint8_t *fixed, size_t fixed_size,
                       uint32_t max_attempts, job_store_done_fn done,
                       void *arg);

/* hub_drop_job removes every trace of a job whose Submit write failed:
 * out of its queue, the indexes and the job list; a worker holding it is
 * told to cancel (its result is then NOT_FOUND); its Watch calls end with
 * NOT_FOUND. The record is freed once its writes in flight complete. */
void hub_drop_job(job_hub *hub, job_record *job);

/* hub_undo_begin records job as it is, before a transition;
 * hub_undo_made records the state the transition made. hub_undo_failed
 * (the transition's write failed) puts the job back as it was, if nothing
 * changed it since (same state, same lease number, still indexed): out
 * of the queue, its lease and holder back, its error, progress and times;
 * else memory stays ahead of the store and the job's next write carries
 * its whole status. hub_undo_free frees what undo owns. */
void hub_undo_begin(const job_record *job, job_undo *undo);
void hub_undo_made(const job_record *job, job_undo *undo);
void hub_undo_failed(job_hub *hub, job_record *job, job_undo *undo);
void hub_undo_free(job_undo *undo);

#endif
