/* leased_jobs.c: the lease check of a worker's calls, and the transitions
 * of the jobs workers hold. */
#include "server/core/leased_jobs.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/core/dispatch.h"
#include "server/core/ids.h"
#include "server/core/leases.h"
#include "server/core/observers.h"
#include "server/core/persist.h"
#include "server/core/registry.h"

job_record *hub_refuse(hub_refusal *why, rpc_status_code code, const char *fmt,
                       ...) {
  va_list args;
  va_start(args, fmt);
  why->code = code;
  vsnprintf(why->message, sizeof(why->message), fmt, args);
  va_end(args);
  return NULL;
}

/* Whether the lease of job may be used by claim's caller (see
 * hub_leased_job). */
static bool lease_caller_allowed(const job_record *job,
                                 const hub_lease_claim *claim) {
  const hub_worker *holder = job->holder;
  if (claim->stream_worker != NULL) {
    return holder != NULL ? holder == claim->stream_worker
                          : job->worker_idx == claim->stream_worker->worker_idx;
  }
  if (claim->client_id == NULL || holder == NULL) {
    return true;
  }
  return holder->client_id != NULL &&
         strcmp(holder->client_id, claim->client_id) == 0;
}

/* A claim by table (hub_lease_claim): the job of that subject the
 * client's workers hold, and the final one they held last. The registry
 * has no index of workers by client_id, so its workers are scanned (as
 * Lease does), then for each only the jobs it holds now and the ring of
 * those it held last (hub_worker.released): never every job. The ring
 * costs no allocation per lease and is enough for the work manager,
 * whose client re-sends a result soon after its first one; a job it held
 * before its last HUB_WORKER_RELEASED, or before it left the registry,
 * is NOT_FOUND rather than final. */
typedef struct table_search {
  job_hub *hub;
  const char *client_id, *table;
  job_record *held;  /* the latest leased of that subject, or NULL */
  job_record *final; /* one of that subject held and now final, or NULL */
} table_search;

static bool of_subject(const job_record *job, const char *table) {
  return strcmp(job_record_subject(job), table) == 0;
}

static int search_client_worker(void *value, void *arg) {
  const hub_worker *worker = value;
  table_search *search = arg;
  if (worker->client_id == NULL ||
      strcmp(worker->client_id, search->client_id) != 0) {
    return 0;
  }
  /* The newest lease is first in running_jobs. */
  for (job_record *job = worker->running_jobs; job != NULL;
       job = job->run_next) {
    if (of_subject(job, search->table)) {
      if (search->held == NULL || job->started_us > search->held->started_us) {
        search->held = job;
      }
      break;
    }
  }
  uint32_t kept = worker->released_count < HUB_WORKER_RELEASED
                      ? worker->released_count
                      : HUB_WORKER_RELEASED;
  for (uint32_t i = 0; i < kept && search->final == NULL; i++) {
    uint32_t slot = (worker->released_count - 1 - i) % HUB_WORKER_RELEASED;
    char id[JOB_ID_SIZE];
    job_id_format(worker->released[slot], id);
    job_record *job = hub_find_job(search->hub, id);
    if (job != NULL && hub_state_is_final(job->state) &&
        of_subject(job, search->table)) {
      search->final = job;
    }
  }
  return 0;
}

static job_record *job_of_table(job_hub *hub, const hub_lease_claim *claim,
                                hub_refusal *why) {
  table_search search = {hub, claim->client_id, claim->table, NULL, NULL};
  (void)hub_each_worker(hub, search_client_worker, &search);
  if (search.held != NULL) {
    return search.held;
  }
  if (search.final != NULL) {
    return hub_refuse(why, RPC_STATUS_FAILED_PRECONDITION,
                      "job %s is %s already", search.final->id,
                      hub_state_name(search.final->state));
  }
  return hub_refuse(why, RPC_STATUS_NOT_FOUND,
                    "client \"%s\" holds no job of subject \"%s\"",
                    claim->client_id, claim->table);
}

static bool claims_by_table(const hub_lease_claim *claim) {
  return claim->table != NULL && claim->table[0] != '\0' &&
         claim->client_id != NULL && claim->job_id[0] == '\0' &&
         claim->lease_id[0] == '\0';
}

job_record *hub_leased_job(job_hub *hub, const hub_lease_claim *claim,
                           hub_refusal *why) {
  uint64_t sequence;
  uint32_t lease;
  uint8_t secret[LEASE_SECRET_SIZE];
  why->code = RPC_STATUS_OK;
  why->message[0] = '\0';
  if (claims_by_table(claim)) {
    return job_of_table(hub, claim, why);
  }
  const char *lease_id = claim->lease_id;
  if (lease_id_parse(lease_id, &sequence, &lease, secret) != 0) {
    return hub_refuse(why, RPC_STATUS_NOT_FOUND, "no lease \"%s\"", lease_id);
  }
  char id[JOB_ID_SIZE];
  job_id_format(sequence, id);
  job_record *job = hub_find_job(hub, id);
  if (job == NULL ||
      (claim->job_id[0] != '\0' && strcmp(claim->job_id, id) != 0) ||
      (job->leases == lease &&
       !lease_secret_equal(secret, job->lease_secret))) {
    return hub_refuse(why, RPC_STATUS_NOT_FOUND, "no lease \"%s\" for this job",
                      lease_id);
  }
  if (hub_state_is_final(job->state)) {
    return hub_refuse(why, RPC_STATUS_FAILED_PRECONDITION,
                      "job %s is %s already", id, hub_state_name(job->state));
  }
  if (job->state != JOBHUB__V1__JOB_STATE__IN_PROGRESS ||
      job->leases != lease) {
    return hub_refuse(why, RPC_STATUS_NOT_FOUND,
                      "lease \"%s\" expired (the job was leased again or is "
                      "queued)",
                      lease_id);
  }
  if (!lease_caller_allowed(job, claim)) {
    return hub_refuse(why, RPC_STATUS_PERMISSION_DENIED,
                      "lease \"%s\" is held by another worker", lease_id);
  }
  return job;
}

static void touch_holder(job_record *job) {
  if (job->holder != NULL) {
    job->holder->last_seen_us = time_now_us();
  }
}

/* Ends a leased job as DONE (result) or after a failure (error); see
 * hub_complete_leased_job. Returns 0 or -1 (the store refused the write). */
static int finish(job_hub *hub, job_record *job, bool done_ok,
                  const Jobhub__V1__JobResult *result, const char *error,
                  bool retryable, job_store_done_fn done, void *arg,
                  job_undo *undo) {
  int from = job->state;
  hub_undo_begin(job, undo);
  char actor[HUB_ACTOR_SIZE];
  hub_actor_of_worker(job->worker_idx, actor);
  touch_holder(job);
  hub_release_lease(hub, job);
  int64_t now = time_now_us();
  uint8_t *packed = NULL;
  size_t packed_size = 0;
  if (done_ok) {
    Jobhub__V1__JobResult named = JOBHUB__V1__JOB_RESULT__INIT;
    if (result != NULL) {
      named = *result;
    }
    named.job_id = job->id;
    packed_size = jobhub__v1__job_result__get_packed_size(&named);
    packed = malloc(packed_size ? packed_size : 1);
    if (packed != NULL) {
      jobhub__v1__job_result__pack(&named, packed);
    }
    job->finished_us = now;
    job->progress = 1;
    hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__DONE);
  } else {
    (void)job_record_set_text(&job->error, error);
    if (retryable && job->attempts < job->max_attempts) {
      hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__QUEUED);
    } else {
      job->finished_us = now;
      hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__FAILED);
    }
  }
  hub_undo_made(job, undo);
  int rv = hub_save(hub, job, from, actor, done_ok ? NULL : error, packed,
                    packed_size, done, arg);
  free(packed);
  if (job->state == JOBHUB__V1__JOB_STATE__QUEUED) {
    hub_requeue(hub, job, hub_backoff_us(hub, job->attempts));
  }
  hub_notify(hub, job, from);
  return rv;
}

/* The job of claim's lease ended by finish, or NULL with why. */
static job_record *finish_leased(job_hub *hub, const hub_lease_claim *claim,
                                 bool done_ok,
                                 const Jobhub__V1__JobResult *result,
                                 const char *error, bool retryable,
                                 job_store_done_fn done, void *arg,
                                 job_undo *undo, hub_refusal *why) {
  job_record *job = hub_leased_job(hub, claim, why);
  if (job == NULL) {
    return NULL;
  }
  if (finish(hub, job, done_ok, result, error, retryable, done, arg, undo) !=
      0) {
    hub_undo_failed(hub, job, undo);
    return hub_refuse(why, RPC_STATUS_UNAVAILABLE,
                      "the outcome could not be stored");
  }
  return job;
}

job_record *hub_complete_leased_job(job_hub *hub, const hub_lease_claim *claim,
                                    const Jobhub__V1__JobResult *result,
                                    job_store_done_fn done, void *arg,
                                    job_undo *undo, hub_refusal *why) {
  return finish_leased(hub, claim, true, result, NULL, false, done, arg, undo,
                       why);
}

job_record *hub_fail_leased_job(job_hub *hub, const hub_lease_claim *claim,
                                const char *error, bool retryable,
                                job_store_done_fn done, void *arg,
                                job_undo *undo, hub_refusal *why) {
  return finish_leased(hub, claim, false, NULL, error, retryable, done, arg,
                       undo, why);
}

void hub_lease_outcome_failed(job_hub *hub, const char *job_id, job_record *job,
                              job_undo *undo, int status, hub_refusal *why) {
  if (hub_find_job(hub, job_id) == NULL) {
    (void)hub_refuse(why, RPC_STATUS_NOT_FOUND, "job %s was not stored",
                     job_id);
  } else {
    char cause[180];
    rpc_status_code code = hub_store_failure(hub, status, cause, sizeof(cause));
    (void)hub_refuse(why, code, "the outcome could not be stored: %s", cause);
  }
  hub_undo_failed(hub, job, undo);
}

job_record *hub_progress_leased_job(job_hub *hub, const hub_lease_claim *claim,
                                    double progress, const char *message,
                                    hub_refusal *why) {
  job_record *job = hub_leased_job(hub, claim, why);
  if (job == NULL) {
    return NULL;
  }
  if (claim->stream_worker != NULL) {
    job->lease_acknowledged = true; /* on Connect: it runs the job */
  }
  job->progress = progress < 0 ? 0 : progress > 1 ? 1 : progress;
  (void)job_record_set_text(&job->progress_message, message);
  touch_holder(job);
  char actor[HUB_ACTOR_SIZE];
  hub_actor_of_worker(job->worker_idx, actor);
  (void)hub_save(hub, job, job->state, actor, NULL, NULL, 0, NULL, NULL);
  hub_notify(hub, job, job->state); /* progress: no transition */
  return job;
}

job_record *hub_start_leased_job(job_hub *hub, const hub_lease_claim *claim,
                                 hub_refusal *why) {
  job_record *job = hub_leased_job(hub, claim, why);
  if (job != NULL) {
    job->lease_acknowledged = true;
  }
  return job;
}

job_record *hub_heartbeat_leased_job(job_hub *hub, const hub_lease_claim *claim,
                                     hub_refusal *why) {
  job_record *job = hub_start_leased_job(hub, claim, why);
  if (job != NULL) {
    hub_extend_lease(hub, job);
    touch_holder(job);
  }
  return job;
}

/* Whether lease_id is the lease a Reset took back (its worker is told as
 * for Cancel, not refused as for an expired lease). */
static bool voided_by_reset(job_hub *hub, const char *lease_id) {
  uint64_t sequence;
  uint32_t lease;
  uint8_t secret[LEASE_SECRET_SIZE];
  if (lease_id_parse(lease_id, &sequence, &lease, secret) != 0) {
    return false;
  }
  char id[JOB_ID_SIZE];
  job_id_format(sequence, id);
  job_record *job = hub_find_job(hub, id);
  /* The secret is the job's until it is leased again. */
  return job != NULL && lease != 0 && job->voided_lease == lease &&
         (job->leases != lease ||
          lease_secret_equal(secret, job->lease_secret));
}

int hub_heartbeat_leases(job_hub *hub, char *const *lease_ids, size_t n,
                         const char *client_id,
                         int (*cancelled)(const char *job_id, void *arg),
                         void *arg, hub_refusal *why) {
  hub_refusal denied = {RPC_STATUS_OK, ""};
  hub_lease_claim claim = {"", NULL, client_id, NULL};
  for (size_t i = 0; i < n; i++) {
    claim.lease_id = lease_ids[i];
    if (hub_leased_job(hub, &claim, why) != NULL ||
        why->code == RPC_STATUS_FAILED_PRECONDITION) {
      continue;
    }
    if (why->code == RPC_STATUS_PERMISSION_DENIED) {
      if (denied.code == RPC_STATUS_OK) {
        denied = *why;
      }
    } else if (!voided_by_reset(hub, lease_ids[i])) {
      return -1;
    }
  }
  if (denied.code != RPC_STATUS_OK) {
    *why = denied;
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    claim.lease_id = lease_ids[i];
    if (hub_heartbeat_leased_job(hub, &claim, why) != NULL) {
      continue;
    }
    /* Finished by someone else (cancelled) or taken back by Reset: the
     * worker must stop. */
    uint64_t sequence;
    uint32_t lease;
    uint8_t secret[LEASE_SECRET_SIZE];
    (void)lease_id_parse(lease_ids[i], &sequence, &lease, secret);
    char id[JOB_ID_SIZE];
    job_id_format(sequence, id);
    if (cancelled(id, arg) != 0) {
      (void)hub_refuse(why, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      return -1;
    }
  }
  why->code = RPC_STATUS_OK;
  return 0;
}

void hub_reattach_lease(job_hub *hub, hub_worker *worker,
                        const char *lease_id) {
  hub_lease_claim claim = {"", lease_id, NULL, worker};
  hub_refusal why;
  job_record *job = hub_start_leased_job(hub, &claim, &why);
  if (job != NULL && job->holder == NULL) {
    hub_hold_lease(worker, job);
  }
}

void hub_requeue_undelivered_lease(job_hub *hub, const char *lease_id) {
  hub_lease_claim claim = {"", lease_id, NULL, NULL};
  hub_refusal why;
  job_record *job = hub_leased_job(hub, &claim, &why);
  if (job == NULL) {
    return;
  }
  hub_cancel_lease(hub, job);
  hub_release_lease(hub, job);
  job->attempts--;
  int from = job->state;
  hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__QUEUED);
  (void)hub_save(hub, job, from, "hub", "lease answer not delivered", NULL, 0,
                 NULL, NULL);
  hub_requeue(hub, job, 0);
  hub_notify(hub, job, from);
}
