/* recovery.c: rebuilding the core's state from the store at start. */
#include <stdio.h>

#include "rpc/log.h"
#include "server/core/dispatch.h"
#include "server/core/hub_state.h"
#include "server/core/ids.h"
#include "server/core/job_table.h"
#include "server/core/persist.h"
#include "server/core/recovery.h"

/* Recovery. */

typedef struct recovery {
  job_hub *hub;
  int64_t now;
  size_t queued, leased, requeued;
} recovery;

static int recover_job(const stored_job *stored, void *arg) {
  recovery *r = arg;
  job_hub *hub = r->hub;
  uint64_t sequence = stored->sequence;
  uint32_t pool_idx;
  if (pool_idx_pack(stored->pool_id, stored->job_type_id, &pool_idx) != 0) {
    rpc_log(RPC_LOG_ERROR, "recovery_skipped_job", "id=%016llx",
            (unsigned long long)sequence);
    return 0;
  }
  job_record *job = job_record_new(sequence, stored->job, stored->job_size,
                                   stored->subject, stored->idempotency_key);
  if (job == NULL || (stored->status != NULL &&
                      job_record_apply_status(job, stored->status,
                                              stored->status_size) != 0)) {
    job_record_free(job);
    return -1;
  }
  job->entry.priority = stored->priority;
  job->entry.pool_idx = pool_idx;
  job->entry.not_before_us = stored->not_before_us;
  job->pool_id = stored->pool_id;
  job->job_type_id = stored->job_type_id;
  job->lease_seconds = stored->lease_seconds;
  job->max_attempts = stored->max_attempts;
  job->created_us = stored->created_us;
  /* Rows from before migration 4 have no count: attempts is it. */
  job->leases = stored->leases > job->attempts ? stored->leases : job->attempts;
  memcpy(job->lease_secret, stored->lease_secret, sizeof(job->lease_secret));
  job->durable = true;
  job->state = JOBHUB__V1__JOB_STATE__JOB_STATE_UNSPECIFIED;
  if (hub_index_job(hub, job) != 0) {
    job_record_free(job);
    return -1;
  }
  if (sequence >= hub->next_sequence) {
    hub->next_sequence = sequence + 1;
  }
  hub_set_state(hub, job, stored->state);
  if (stored->state == JOBHUB__V1__JOB_STATE__IN_PROGRESS) {
    if (stored->lease_expires_us > r->now) {
      /* The worker may still finish it: the lease runs to its expiry. */
      job->lease.due_us = stored->lease_expires_us;
      if (deadline_heap_push(&hub->leases, &job->lease) != 0) {
        return -1;
      }
      r->leased++;
      return 0;
    }
    /* Expired while the hub was down: the attempt counts. */
    hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__QUEUED);
    hub_save_quietly(hub, job, JOBHUB__V1__JOB_STATE__IN_PROGRESS, "hub",
                     "lease expired while the hub was down");
    r->requeued++;
  }
  if (job->state == JOBHUB__V1__JOB_STATE__QUEUED) {
    if (hub_queue_push(hub->queue, job, r->now) != 0) {
      return -1;
    }
    r->queued++;
  }
  return 0;
}

int hub_recover(job_hub *hub, char *err, size_t err_size) {
  ev_tstamp started = ev_time();
  recovery r = {hub, time_now_us(), 0, 0, 0};
  if (job_store_load_jobs(hub->store, recover_job, &r) != 0) {
    snprintf(err, err_size, "cannot read the jobs in %s/jobhub.db",
             hub->data_dir);
    return -1;
  }
  rpc_log(RPC_LOG_INFO, "recovered",
          "jobs=%zu queued=%zu leased=%zu requeued=%zu seconds=%.3f",
          hub->job_count, r.queued, r.leased, r.requeued, ev_time() - started);
  return 0;
}
