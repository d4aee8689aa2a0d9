/* persist.c: writing jobs to the store, in order: a transition's
 * write, leases deferred to the job's next write, what the store's
 * completions tell the core, and jobs dropped after a failed Submit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/log.h"
#include "server/core/dispatch.h"
#include "server/core/hub_state.h"
#include "server/core/job_table.h"
#include "server/core/leases.h"
#include "server/core/persist.h"
#include "server/core/registry.h"

/* A dropped job by sequence (the list is empty but after a failed
 * Submit write). */
static job_record *dropped_job(job_hub *hub, uint64_t sequence) {
  for (job_record *job = hub->dropped; job != NULL; job = job->next) {
    if (job->entry.sequence == sequence) {
      return job;
    }
  }
  return NULL;
}

/* Frees the dropped jobs whose writes have all completed: no write's
 * callback can reach them any more. */
void hub_free_dropped(job_hub *hub) {
  job_record **at = &hub->dropped;
  while (*at != NULL) {
    job_record *job = *at;
    if (job->writes_pending == 0) {
      *at = job->next;
      job_record_free(job);
    } else {
      at = &job->next;
    }
  }
}

void hub_on_job_written(uint64_t sequence, void *arg) {
  job_hub *hub = arg;
  job_record *job = job_index_get(hub->jobs_by_id, sequence);
  if (job == NULL && hub->dropped != NULL) {
    job = dropped_job(hub, sequence);
  }
  if (job != NULL && job->writes_pending > 0) {
    job->writes_pending--;
  }
  bool was_behind = hub_store_behind(hub);
  hub->writes_pending--;
  if (was_behind && !hub_store_behind(hub)) {
    hub_wake_workers_with_room(hub);
  }
}

void hub_on_store_turned(bool writable, void *arg) {
  job_hub *hub = arg;
  hub->store_writable = writable;
  if (!hub->closing && hub->store_listener != NULL) {
    hub->store_listener(writable, hub->store_listener_arg);
  }
}

rpc_status_code hub_store_failure(job_hub *hub, int status, char *why,
                                  size_t why_size) {
  char cause[200];
  job_store_error(hub->store, cause, sizeof(cause));
  switch (status) {
  case JOB_STORE_FULL:
    snprintf(why, why_size, "disk full: %s", cause);
    return RPC_STATUS_RESOURCE_EXHAUSTED;
  case JOB_STORE_IO:
    snprintf(why, why_size, "the store cannot write: %s", cause);
    return RPC_STATUS_UNAVAILABLE;
  default:
    snprintf(why, why_size, "the store refused the write: %s", cause);
    return RPC_STATUS_INTERNAL;
  }
}

/* A lease's write waits this long for the job's next write (its result,
 * usually) to go with it: one row write instead of two. A crash in that
 * time loses the lease, not the job: it is queued again at the restart,
 * the attempt not counted, and the worker's late result is refused. */
#define LEASE_WRITE_DELAY 0.05 /* s */

void hub_unsaved_unlink(job_hub *hub, job_record *job) {
  if (job->unsaved_prev != NULL) {
    job->unsaved_prev->unsaved_next = job->unsaved_next;
  } else {
    hub->unsaved_leases = job->unsaved_next;
  }
  if (job->unsaved_next != NULL) {
    job->unsaved_next->unsaved_prev = job->unsaved_prev;
  }
  job->unsaved_prev = job->unsaved_next = NULL;
  job->lease_unsaved = false;
}

int hub_save(job_hub *hub, job_record *job, int from_state, const char *actor,
             const char *detail, const uint8_t *result, size_t result_size,
             job_store_done_fn done, void *arg) {
  rpc_buffer_reset(&hub->scratch);
  if (job_record_pack_status(job, &hub->scratch) != 0) {
    return -1;
  }
  stored_job stored = {
      .sequence = job->entry.sequence,
      .state = job->state,
      .not_before_us = job->entry.not_before_us,
      .lease_expires_us = job->state == JOBHUB__V1__JOB_STATE__IN_PROGRESS
                              ? job->lease.due_us
                              : 0,
      .status = hub->scratch.data,
      .status_size = hub->scratch.len,
      .result = result,
      .result_size = result_size,
      .leases = job->leases,
  };
  memcpy(stored.lease_secret, job->lease_secret, sizeof(stored.lease_secret));
  stored_event event = {
      .from_state = from_state,
      .to_state = job->state,
      .time_us = time_now_us(),
      .actor = actor,
      .worker_idx = job->worker_idx,
      .detail = detail,
  };
  const stored_event *events = from_state != job->state ? &event : NULL;
  char lease_actor[HUB_ACTOR_SIZE];
  stored_event lease = {
      .next = events,
      .from_state = JOBHUB__V1__JOB_STATE__QUEUED,
      .to_state = JOBHUB__V1__JOB_STATE__IN_PROGRESS,
      .time_us = job->started_us,
      .actor = lease_actor,
      .worker_idx = job->worker_idx,
  };
  if (job->lease_unsaved) {
    hub_actor_of_worker(job->worker_idx, lease_actor);
    events = &lease;
  }
  int rv = job_store_save_job(hub->store, &stored, events, done, arg);
  if (rv != 0) {
    rpc_log(RPC_LOG_ERROR, "store_write_refused", "job=%s", job->id);
    return rv;
  }
  job->writes_pending++;
  hub->writes_pending++;
  if (job->lease_unsaved) {
    hub_unsaved_unlink(hub, job);
  }
  return 0;
}

int hub_after_writes(job_hub *hub, job_record *job, job_store_done_fn done,
                     void *arg) {
  if (job->writes_pending == 0 && !job->lease_unsaved) {
    done(0, arg);
    return 0;
  }
  return hub_save(hub, job, job->state, NULL, NULL, NULL, 0, done, arg);
}

void hub_save_lease(job_hub *hub, job_record *job) {
  if (job->lease_unsaved) {
    (void)hub_save(hub, job, job->state, NULL, NULL, NULL, 0, NULL, NULL);
  }
}

void hub_on_lease_writer(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  job_hub *hub = timer->data;
  while (hub->unsaved_leases != NULL) {
    job_record *job = hub->unsaved_leases;
    if (hub_save(hub, job, job->state, NULL, NULL, NULL, 0, NULL, NULL) != 0) {
      hub_unsaved_unlink(hub, job); /* logged; it is not retried forever */
    }
  }
}

/* Marks job's new lease to be written with its next write, or by the
 * lease writer. */
void hub_defer_lease_write(job_hub *hub, job_record *job) {
  if (job->lease_unsaved) {
    hub_save_lease(hub, job); /* an older lease first */
  }
  job->lease_unsaved = true;
  job->unsaved_prev = NULL;
  job->unsaved_next = hub->unsaved_leases;
  if (hub->unsaved_leases != NULL) {
    hub->unsaved_leases->unsaved_prev = job;
  }
  hub->unsaved_leases = job;
  if (!ev_is_active(&hub->lease_writer)) {
    ev_timer_set(&hub->lease_writer, LEASE_WRITE_DELAY, 0);
    ev_timer_start(hub->loop, &hub->lease_writer);
  }
}

/* A transition nobody waits for: still written, in order. */
void hub_save_quietly(job_hub *hub, job_record *job, int from_state,
                      const char *actor, const char *detail) {
  (void)hub_save(hub, job, from_state, actor, detail, NULL, 0, NULL, NULL);
}

int hub_read_result(job_hub *hub, const job_record *job, job_store_read_fn done,
                    void *arg) {
  return job_store_load_result(hub->store, job->entry.sequence, done, arg);
}

int hub_read_events(job_hub *hub, const job_record *job, job_store_read_fn done,
                    void *arg) {
  return job_store_load_events(hub->store, job->entry.sequence, done, arg);
}
