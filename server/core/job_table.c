/* job_table.c: the jobs the core holds: lookups, states and the pools'
 * counters, the job list and indexes, Submit, a Submit that was not
 * stored, and undoing a transition whose write failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/log.h"
#include "server/core/dispatch.h"
#include "server/core/hub_state.h"
#include "server/core/ids.h"
#include "server/core/job_table.h"
#include "server/core/leases.h"
#include "server/core/persist.h"
#include "server/core/registry.h"
#include "server/core/watchers.h"

/* Lookups. */

job_record *hub_find_job(job_hub *hub, const char *id) {
  uint64_t sequence;
  if (job_id_parse(id, &sequence) != 0) {
    return NULL;
  }
  return job_index_get(hub->jobs_by_id, sequence);
}

static bool job_has_key(const void *value, const void *key) {
  return strcmp(job_record_key(value), key) == 0;
}

job_record *hub_find_job_by_key(job_hub *hub, const char *key) {
  return hash_table_find(hub->jobs_by_key, hash_bytes(key, strlen(key)),
                         job_has_key, key);
}

/* States. */

bool hub_state_is_final(int state) {
  return state == JOBHUB__V1__JOB_STATE__DONE ||
         state == JOBHUB__V1__JOB_STATE__FAILED ||
         state == JOBHUB__V1__JOB_STATE__CANCELLED;
}

const char *hub_state_name(int state) {
  switch (state) {
  case JOBHUB__V1__JOB_STATE__QUEUED:
    return "QUEUED";
  case JOBHUB__V1__JOB_STATE__IN_PROGRESS:
    return "IN_PROGRESS";
  case JOBHUB__V1__JOB_STATE__DONE:
    return "DONE";
  case JOBHUB__V1__JOB_STATE__FAILED:
    return "FAILED";
  case JOBHUB__V1__JOB_STATE__CANCELLED:
    return "CANCELLED";
  default:
    return "JOB_STATE_UNSPECIFIED";
  }
}

static uint64_t *state_counter(hub_pool *pool, int state) {
  switch (state) {
  case JOBHUB__V1__JOB_STATE__QUEUED:
    return &pool->queued;
  case JOBHUB__V1__JOB_STATE__IN_PROGRESS:
    return &pool->in_progress;
  case JOBHUB__V1__JOB_STATE__DONE:
    return &pool->done;
  case JOBHUB__V1__JOB_STATE__FAILED:
    return &pool->failed;
  default:
    return NULL;
  }
}

static void count_state(job_hub *hub, const job_record *job, int state,
                        int delta) {
  hub_pool *pool = hub_pool_get(hub, job->entry.pool_idx, true);
  uint64_t *counter = pool != NULL ? state_counter(pool, state) : NULL;
  if (counter != NULL) {
    *counter += (uint64_t)(int64_t)delta;
  }
}

void hub_set_state(job_hub *hub, job_record *job, int state) {
  count_state(hub, job, job->state, -1);
  job->state = state;
  count_state(hub, job, state, 1);
  if (state == JOBHUB__V1__JOB_STATE__DONE && job->started_us != 0) {
    hub_pool *pool = hub_pool_get(hub, job->entry.pool_idx, false);
    if (pool != NULL) {
      pool->run_seconds += (double)(job->finished_us - job->started_us) / 1e6;
    }
  }
}

int hub_index_job(job_hub *hub, job_record *job) {
  if (job_index_put(hub->jobs_by_id, job->entry.sequence, job) != 0) {
    return -1;
  }
  if (job->key_size > 0 &&
      hash_table_insert(hub->jobs_by_key,
                        hash_bytes(job_record_key(job), job->key_size),
                        job) != 0) {
    job_index_remove(hub->jobs_by_id, job->entry.sequence);
    return -1;
  }
  job->prev = hub->last_job;
  if (hub->last_job != NULL) {
    hub->last_job->next = job;
  } else {
    hub->first_job = job;
  }
  hub->last_job = job;
  hub->job_count++;
  return 0;
}

void hub_drop_job(job_hub *hub, job_record *job) {
  rpc_log(RPC_LOG_WARN, "job_not_stored", "job=%s state=%s", job->id,
          hub_state_name(job->state));
  if (job->state == JOBHUB__V1__JOB_STATE__QUEUED) {
    hub_unqueue(hub, job);
  } else if (job->state == JOBHUB__V1__JOB_STATE__IN_PROGRESS) {
    hub_cancel_lease(hub, job); /* as Cancel does: the worker stops */
    hub_release_lease(hub, job);
  }
  if (job->lease_unsaved) {
    hub_unsaved_unlink(hub, job);
  }
  hub_watchers_job_dropped(hub, job);
  count_state(hub, job, job->state, -1);
  job->state = JOBHUB__V1__JOB_STATE__JOB_STATE_UNSPECIFIED;
  job_index_remove(hub->jobs_by_id, job->entry.sequence);
  if (job->key_size > 0) {
    (void)hash_table_remove(
        hub->jobs_by_key, hash_bytes(job_record_key(job), job->key_size), job);
  }
  if (job->prev != NULL) {
    job->prev->next = job->next;
  } else {
    hub->first_job = job->next;
  }
  if (job->next != NULL) {
    job->next->prev = job->prev;
  } else {
    hub->last_job = job->prev;
  }
  hub->job_count--;
  job->prev = NULL;
  job->next = hub->dropped;
  hub->dropped = job;
}

void hub_undo_begin(const job_record *job, job_undo *undo) {
  *undo = (job_undo){
      .set = true,
      .from_state = job->state,
      .to_state = job->state,
      .leases = job->leases,
      .worker_idx = job->worker_idx,
      .finished_us = job->finished_us,
      .lease_due_us = job->lease.due_us,
      .not_before_us = job->entry.not_before_us,
      .progress = job->progress,
      .error = job->error != NULL ? strdup(job->error) : NULL,
      .lease_unsaved = job->lease_unsaved,
  };
  if (job->error != NULL && undo->error == NULL) {
    undo->set = false; /* no memory: not undone */
  }
}

void hub_undo_made(const job_record *job, job_undo *undo) {
  undo->to_state = job->state;
}

void hub_undo_free(job_undo *undo) {
  free(undo->error);
  undo->error = NULL;
  undo->set = false;
}

void hub_undo_failed(job_hub *hub, job_record *job, job_undo *undo) {
  if (!undo->set ||
      job_index_get(hub->jobs_by_id, job->entry.sequence) != job ||
      job->state != undo->to_state || job->leases != undo->leases ||
      (undo->from_state != JOBHUB__V1__JOB_STATE__QUEUED &&
       undo->from_state != JOBHUB__V1__JOB_STATE__IN_PROGRESS)) {
    return; /* changed since: its next write carries it */
  }
  rpc_log(RPC_LOG_WARN, "transition_undone", "job=%s state=%s back_to=%s",
          job->id, hub_state_name(job->state),
          hub_state_name(undo->from_state));
  if (job->state == JOBHUB__V1__JOB_STATE__QUEUED) {
    hub_unqueue(hub, job);
  }
  free(job->error);
  job->error = undo->error;
  undo->error = NULL;
  job->finished_us = undo->finished_us;
  job->entry.not_before_us = undo->not_before_us; /* a retry's backoff */
  job->progress = undo->progress;
  job->worker_idx = undo->worker_idx;
  hub_set_state(hub, job, undo->from_state);
  if (undo->from_state == JOBHUB__V1__JOB_STATE__QUEUED) {
    hub_requeue(hub, job, 0); /* its not_before stands */
  } else {
    /* The lease runs to its expiry again, held by its worker if that is
     * still here (a worker told to cancel has let it go: the lease then
     * expires). */
    job->lease.due_us = undo->lease_due_us;
    if (deadline_heap_push(&hub->leases, &job->lease) == 0 &&
        deadline_heap_first(&hub->leases) == &job->lease) {
      hub_arm_lease_timer(hub);
    }
    hub_worker *holder = hub_find_worker(hub, job->worker_idx);
    if (holder != NULL) {
      hub_hold_lease(holder, job);
    }
    if (undo->lease_unsaved && !job->lease_unsaved) {
      hub_defer_lease_write(hub, job); /* its event was in the failed write */
    }
  }
  hub_notify(hub, job, undo->to_state);
}

/* A job indexed but never stored leaves no trace (hub_drop_job); the
 * caller answers with an error. */
static job_record *hub_submit_refused(job_hub *hub, job_record *job) {
  rpc_log(RPC_LOG_ERROR, "store_write_refused", "job=%s", job->id);
  hub_drop_job(hub, job);
  return NULL;
}

job_record *hub_submit(job_hub *hub, const Jobhub__V1__SubmitRequest *request,
                       const uint8_t *fixed, size_t fixed_size,
                       uint32_t max_attempts, job_store_done_fn done,
                       void *arg) {
  uint32_t pool_idx = 0;
  (void)pool_idx_pack(request->pool_id, request->job_type_id, &pool_idx);
  job_record *job = job_record_new(hub->next_sequence, fixed, fixed_size,
                                   request->subject, request->idempotency_key);
  if (job == NULL) {
    return NULL;
  }
  job->entry.priority = request->priority;
  job->entry.pool_idx = pool_idx;
  job->pool_id = request->pool_id;
  job->job_type_id = request->job_type_id;
  job->max_attempts = max_attempts;
  job->lease_seconds = request->lease_seconds;
  job->created_us = time_now_us();
  if (request->not_before != NULL) {
    job->entry.not_before_us = request->not_before->seconds * 1000000 +
                               request->not_before->nanos / 1000;
  }
  job->state = JOBHUB__V1__JOB_STATE__JOB_STATE_UNSPECIFIED;
  if (hub_index_job(hub, job) != 0) {
    job_record_free(job);
    return NULL;
  }
  hub->next_sequence++;
  hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__QUEUED);
  rpc_buffer_reset(&hub->scratch);
  if (job_record_pack_status(job, &hub->scratch) != 0) {
    return hub_submit_refused(hub, job);
  }
  stored_job stored = {
      .sequence = job->entry.sequence,
      .state = job->state,
      .pool_id = job->pool_id,
      .job_type_id = job->job_type_id,
      .priority = job->entry.priority,
      .not_before_us = job->entry.not_before_us,
      .created_us = job->created_us,
      .idempotency_key = job_record_key(job),
      .subject = job_record_subject(job),
      .lease_seconds = job->lease_seconds,
      .max_attempts = job->max_attempts,
      .job = fixed,
      .job_size = fixed_size,
      .status = hub->scratch.data,
      .status_size = hub->scratch.len,
  };
  stored_event event = {
      .from_state = JOBHUB__V1__JOB_STATE__JOB_STATE_UNSPECIFIED,
      .to_state = job->state,
      .time_us = job->created_us,
      .actor = "client",
  };
  if (job_store_save_job(hub->store, &stored, &event, done, arg) != 0) {
    return hub_submit_refused(hub, job);
  }
  job->writes_pending++;
  hub->writes_pending++;
  /* Queued before it is durable, for latency: the Submit is answered only
   * once it is, and a crash before then loses a job nobody was told of. */
  hub_requeue(hub, job, 0);
  hub_notify(hub, job, JOBHUB__V1__JOB_STATE__JOB_STATE_UNSPECIFIED);
  return job;
}
