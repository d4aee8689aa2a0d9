/* job_actions.c: Submit, Cancel and Reset of jobs by a client, and the
 * jobs List and GetResult may show. */
#include "server/core/job_actions.h"

#include <stdlib.h>
#include <string.h>

#include "server/core/dispatch.h"
#include "server/core/hub_state.h"
#include "server/core/leases.h"
#include "server/core/observers.h"
#include "server/core/persist.h"

uint32_t hub_submit_max_attempts(const job_hub *hub,
                                 const Jobhub__V1__SubmitRequest *request) {
  return request->max_attempts ? request->max_attempts
                               : hub_options_of(hub)->max_attempts;
}

/* Whether a Submit asks for the job existing is: the same fixed part
 * (packed the same way: job type, pool, subject, config, payload, meta,
 * priority, max_attempts as resolved) and lease_seconds. not_before is
 * not compared: a retry may well compute it again. */
static bool same_submit(const job_record *existing,
                        const Jobhub__V1__SubmitRequest *request,
                        const uint8_t *fixed, size_t fixed_size) {
  return existing->fixed_size == fixed_size &&
         (fixed_size == 0 ||
          memcmp(job_record_fixed(existing), fixed, fixed_size) == 0) &&
         existing->lease_seconds == request->lease_seconds;
}

int hub_submit_job(job_hub *hub, const Jobhub__V1__SubmitRequest *request,
                   const uint8_t *fixed, size_t fixed_size,
                   job_store_done_fn done_new, job_store_done_fn done_existing,
                   void *arg, job_record **job, hub_refusal *why) {
  why->code = RPC_STATUS_OK;
  why->message[0] = '\0';
  if (request->idempotency_key[0] != '\0') {
    job_record *existing = hub_find_job_by_key(hub, request->idempotency_key);
    if (existing != NULL) {
      if (!same_submit(existing, request, fixed, fixed_size)) {
        (void)hub_refuse(why, RPC_STATUS_ALREADY_EXISTS,
                         "idempotency_key \"%s\" is job %s, submitted with "
                         "a different request",
                         request->idempotency_key, existing->id);
        return -1;
      }
      *job = existing; /* before done_existing, which may run at once */
      if (hub_after_writes(hub, existing, done_existing, arg) != 0) {
        (void)hub_refuse(why, RPC_STATUS_UNAVAILABLE,
                         "the job could not be stored");
        return -1;
      }
      return 1;
    }
  }
  *job = hub_submit(hub, request, fixed, fixed_size,
                    hub_submit_max_attempts(hub, request), done_new, arg);
  if (*job == NULL) {
    (void)hub_refuse(why, RPC_STATUS_UNAVAILABLE,
                     "the job could not be stored");
    return -1;
  }
  return 0;
}

int hub_submit_written(job_hub *hub, job_record *job, bool existing, int status,
                       hub_refusal *why) {
  if (status == 0) {
    job->durable = true;
    return 0;
  }
  if (existing && hub_find_job(hub, job->id) != job) {
    /* Its own Submit's write failed: a retry makes the job anew. */
    (void)hub_refuse(why, RPC_STATUS_UNAVAILABLE,
                     "the job of this idempotency_key was not stored: retry");
    return -1;
  }
  char cause[220];
  rpc_status_code code = hub_store_failure(hub, status, cause, sizeof(cause));
  if (!existing) {
    hub_drop_job(hub, job);
  }
  (void)hub_refuse(why, code, "the job was not stored: %s", cause);
  return -1;
}

job_record *hub_cancel_job(job_hub *hub, const char *id, job_store_done_fn done,
                           void *arg, job_undo *undo, hub_refusal *why) {
  job_record *job = hub_find_job(hub, id);
  if (job == NULL) {
    return hub_refuse(why, RPC_STATUS_NOT_FOUND, "no job with id \"%s\"", id);
  }
  if (hub_state_is_final(job->state)) {
    return hub_refuse(why, RPC_STATUS_FAILED_PRECONDITION,
                      "job %s is %s already", job->id,
                      hub_state_name(job->state));
  }
  int from = job->state;
  hub_undo_begin(job, undo);
  if (from == JOBHUB__V1__JOB_STATE__QUEUED) {
    hub_unqueue(hub, job);
  } else {
    hub_cancel_lease(hub, job);
    hub_release_lease(hub, job);
  }
  job->finished_us = time_now_us();
  hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__CANCELLED);
  hub_undo_made(job, undo);
  hub_notify(hub, job, from);
  if (hub_save(hub, job, from, "client", NULL, NULL, 0, done, arg) != 0) {
    hub_undo_failed(hub, job, undo);
    return hub_refuse(why, RPC_STATUS_UNAVAILABLE,
                      "the cancellation could not be stored");
  }
  return job;
}

int hub_client_write_done(job_hub *hub, job_record *job, job_undo *undo,
                          int status, hub_refusal *why) {
  if (status == 0) {
    job->durable = true;
    return 0;
  }
  char cause[220];
  rpc_status_code code = hub_store_failure(hub, status, cause, sizeof(cause));
  hub_undo_failed(hub, job, undo);
  (void)hub_refuse(why, code, "job %s could not be written: %s", job->id,
                   cause);
  return -1;
}

/* Puts a job back in the queue as new: attempts 0, no error. Returns
 * hub_save's answer. */
static int reset_job(job_hub *hub, job_record *job, job_store_done_fn done,
                     void *arg) {
  hub_save_lease(hub, job); /* its event needs the fields cleared here */
  int from = job->state;
  if (from == JOBHUB__V1__JOB_STATE__IN_PROGRESS) {
    job->voided_lease = job->leases;
    hub_cancel_lease(hub, job);
    hub_release_lease(hub, job);
  }
  job->attempts = 0;
  job->worker_idx = 0;
  job->started_us = job->finished_us = 0;
  job->progress = 0;
  (void)job_record_set_text(&job->progress_message, NULL);
  (void)job_record_set_text(&job->error, NULL);
  job->entry.not_before_us = 0;
  hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__QUEUED);
  int rv = hub_save(hub, job, from, "client", "reset", NULL, 0, done, arg);
  hub_requeue(hub, job, 0);
  hub_notify(hub, job, from);
  return rv;
}

static bool reset_selects(const Jobhub__V1__ResetRequest *request,
                          const job_record *job) {
  if (request->n_ids > 0) {
    return job->state != JOBHUB__V1__JOB_STATE__QUEUED;
  }
  return job->state == JOBHUB__V1__JOB_STATE__FAILED &&
         (request->any_pool || request->pool_id == job->pool_id) &&
         (request->any_job_type || request->job_type_id == job->job_type_id);
}

/* Fills selected (room for every id, or every job) with the jobs request
 * resets, each once; returns how many. */
static size_t select_for_reset(job_hub *hub,
                               const Jobhub__V1__ResetRequest *request,
                               job_record **selected) {
  size_t count = 0;
  if (request->n_ids > 0) {
    for (size_t i = 0; i < request->n_ids; i++) {
      job_record *job = hub_find_job(hub, request->ids[i]);
      bool seen = false;
      for (size_t k = 0; k < count && !seen; k++) {
        seen = selected[k] == job;
      }
      if (!seen && reset_selects(request, job)) {
        selected[count++] = job;
      }
    }
    return count;
  }
  for (job_record *job = hub->first_job; job != NULL; job = job->next) {
    if (reset_selects(request, job)) {
      selected[count++] = job;
    }
  }
  return count;
}

long hub_reset_jobs(job_hub *hub, const Jobhub__V1__ResetRequest *request,
                    void (*each)(const job_record *job, void *arg),
                    job_store_done_fn done, void *arg, hub_refusal *why) {
  for (size_t i = 0; i < request->n_ids; i++) {
    if (hub_find_job(hub, request->ids[i]) == NULL) {
      (void)hub_refuse(why, RPC_STATUS_NOT_FOUND, "no job with id \"%s\"",
                       request->ids[i]);
      return -1; /* nothing changed */
    }
  }
  /* Select first, so that the answer lists each job once; the last write
   * is awaited, and the writes before it commit no later. */
  size_t limit = request->n_ids > 0 ? request->n_ids : hub->job_count;
  job_record **selected = malloc((limit ? limit : 1) * sizeof(*selected));
  if (selected == NULL) {
    (void)hub_refuse(why, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return -1;
  }
  size_t count = select_for_reset(hub, request, selected);
  int last_saved = 0;
  for (size_t i = 0; i < count; i++) {
    bool last = i + 1 == count;
    last_saved =
        reset_job(hub, selected[i], last ? done : NULL, last ? arg : NULL);
    each(selected[i], arg);
  }
  free(selected);
  if (last_saved != 0) {
    (void)hub_refuse(why, RPC_STATUS_UNAVAILABLE,
                     "the reset could not be stored");
    return -1;
  }
  return (long)count;
}

static bool list_selects(const Jobhub__V1__ListJobsRequest *f,
                         const job_record *job) {
  return (f->state == JOBHUB__V1__JOB_STATE__JOB_STATE_UNSPECIFIED ||
          (int)f->state == job->state) &&
         (f->any_pool || f->pool_id == job->pool_id) &&
         (f->any_job_type || f->job_type_id == job->job_type_id) &&
         (f->subject[0] == '\0' ||
          strcmp(f->subject, job_record_subject(job)) == 0);
}

const job_record *hub_list_next(job_hub *hub, const job_record *after,
                                const Jobhub__V1__ListJobsRequest *filter) {
  const job_record *job = after != NULL ? after->next : hub->first_job;
  while (job != NULL && !list_selects(filter, job)) {
    job = job->next;
  }
  return job;
}

int hub_result_readable(job_hub *hub, const job_record *job, int status,
                        hub_refusal *why) {
  if (status != 0) {
    char cause[200];
    rpc_status_code code = hub_store_failure(hub, status, cause, sizeof(cause));
    (void)hub_refuse(why, code, "the result of job %s could not be read: %s",
                     job->id, cause);
    return -1;
  }
  if (job->state != JOBHUB__V1__JOB_STATE__DONE) {
    (void)hub_refuse(why, RPC_STATUS_FAILED_PRECONDITION,
                     "job %s is %s%s%s, not DONE: it has no result", job->id,
                     hub_state_name(job->state), job->error ? ": " : "",
                     job->error ? job->error : "");
    return -1;
  }
  return 0;
}
