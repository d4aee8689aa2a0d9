/* services/jobs.c: jobhub.v1.Jobs. Handlers check what they can on the
 * loop thread, then the core serves the request (hub_call_post). */
#include "server/services/jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobhub/v1/jobs.rpc.h"
#include "rpc/log.h"
#include "server/core/dispatch.h"
#include "server/core/ids.h"
#include "server/core/job_table.h"
#include "server/core/leases.h"
#include "server/core/mailbox.h"
#include "server/core/observers.h"
#include "server/core/persist.h"
#include "server/core/watchers.h"

#define LIST_DEFAULT_PAGE 100
#define LIST_MAX_PAGE 1000
#define MAX_ATTEMPTS_LIMIT 1000

/* Field numbers of proto/jobhub/v1/jobs.proto that answers are put
 * together with from bytes packed before (protobuf-c names none). */
enum {
  LIST_JOBS_RESPONSE_JOBS = 1,            /* ListJobsResponse.jobs */
  LIST_JOBS_RESPONSE_NEXT_PAGE_TOKEN = 2, /* ListJobsResponse.next_page_token */
  RESET_RESPONSE_JOBS = 1,                /* ResetResponse.jobs */
};

/* The longest lease a Submit may ask for: 7 days. Longer is a mistake
 * (2^32-1 s is 136 years: a lost worker would hold the job for ever). */
#define MAX_LEASE_SECONDS (7 * 24 * 3600)

/* Answers hc with job once the write it waits for is durable. A failed
 * write is answered with its cause (hub_store_failure), the transition
 * undone (hc->undo; docs/core-design.md, "A failed write"). */
static void answer_when_stored(int status, void *arg) {
  hub_call *hc = arg;
  if (status != 0) {
    char why[220];
    rpc_status_code code = hub_store_failure(hc->hub, status, why, sizeof(why));
    hub_undo_failed(hc->hub, hc->job, &hc->undo);
    hub_call_fail(hc->hub, hc, code, "job %s could not be written: %s",
                  hc->job->id, why);
    return;
  }
  hc->job->durable = true;
  if (hc->answer.len == 0) {
    hub_call_fail(hc->hub, hc, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  hub_call_answer(hc->hub, hc);
}

/* Fills hc's answer with job; 0 or -1 (failed: hc is answered). */
static int pack_job_answer(job_hub *hub, hub_call *hc, const job_record *job) {
  rpc_buffer_reset(&hc->answer);
  if (job_record_pack(job, &hc->answer) != 0) {
    hub_call_fail(hub, hc, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return -1;
  }
  return 0;
}

/* Finds the job a request names, or answers NOT_FOUND. */
static job_record *job_or_fail(job_hub *hub, hub_call *hc, const char *id) {
  job_record *job = hub_find_job(hub, id);
  if (job == NULL) {
    hub_call_fail(hub, hc, RPC_STATUS_NOT_FOUND, "no job with id \"%s\"", id);
  }
  return job;
}

static bool id_missing(rpc_call *call, const char *id) {
  if (id[0] == '\0') {
    rpc_call_finish(call, RPC_STATUS_INVALID_ARGUMENT, "id is empty");
    return true;
  }
  return false;
}

/* Submit. */

/* Answers a Submit once its job is durable. If the write failed, the job
 * leaves no trace (hub_drop_job): nobody was told of it. */
static void answer_submit(int status, void *arg) {
  hub_call *hc = arg;
  if (status != 0) {
    char why[220];
    rpc_status_code code = hub_store_failure(hc->hub, status, why, sizeof(why));
    hub_drop_job(hc->hub, hc->job);
    hub_call_fail(hc->hub, hc, code, "the job was not stored: %s", why);
    return;
  }
  answer_when_stored(status, arg);
}

/* A Submit repeating an idempotency key gets the job once that is durable
 * (the first Submit's write may still fail: the job is then gone). */
static void answer_existing(int status, void *arg) {
  hub_call *hc = arg;
  if (status != 0 && hub_find_job(hc->hub, hc->job->id) != hc->job) {
    /* Its Submit's write failed: a retry makes the job anew. */
    hub_call_fail(hc->hub, hc, RPC_STATUS_UNAVAILABLE,
                  "the job of this idempotency_key was not stored: retry");
    return;
  }
  if (status != 0) {
    char why[220];
    rpc_status_code code = hub_store_failure(hc->hub, status, why, sizeof(why));
    hub_call_fail(hc->hub, hc, code, "the job was not stored: %s", why);
    return;
  }
  if (pack_job_answer(hc->hub, hc, hc->job) == 0) {
    hub_call_answer(hc->hub, hc);
  }
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

static void run_submit(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__SubmitRequest *request = hc->request;
  if (request->idempotency_key[0] != '\0') {
    job_record *existing = hub_find_job_by_key(hub, request->idempotency_key);
    if (existing != NULL) {
      if (!same_submit(existing, request, hc->data, hc->data_size)) {
        hub_call_fail(hub, hc, RPC_STATUS_ALREADY_EXISTS,
                      "idempotency_key \"%s\" is job %s, submitted with a "
                      "different request",
                      request->idempotency_key, existing->id);
        return;
      }
      hc->job = existing;
      if (hub_after_writes(hub, existing, answer_existing, hc) != 0) {
        hub_call_fail(hub, hc, RPC_STATUS_UNAVAILABLE,
                      "the job could not be stored");
      }
      return;
    }
  }
  uint32_t max_attempts = request->max_attempts
                              ? request->max_attempts
                              : hub_options_of(hub)->max_attempts;
  job_record *job = hub_submit(hub, request, hc->data, hc->data_size,
                               max_attempts, answer_submit, hc);
  if (job == NULL) {
    hub_call_fail(hub, hc, RPC_STATUS_UNAVAILABLE,
                  "the job could not be stored");
    return;
  }
  /* The answer is the job as submitted; the write's callback sends it. */
  hc->job = job;
  (void)job_record_pack(job, &hc->answer);
}

static void submit(rpc_call *call, const Jobhub__V1__SubmitRequest *request,
                   void *user) {
  job_hub *hub = user;
  if (request->pool_id > JOBHUB_ID_FIELD_MAX ||
      request->job_type_id > JOBHUB_ID_FIELD_MAX) {
    rpc_call_finishf(call, RPC_STATUS_INVALID_ARGUMENT,
                     "pool_id %u and job_type_id %u must be at most %u",
                     request->pool_id, request->job_type_id,
                     JOBHUB_ID_FIELD_MAX);
    return;
  }
  if (request->max_attempts > MAX_ATTEMPTS_LIMIT) {
    rpc_call_finishf(call, RPC_STATUS_INVALID_ARGUMENT,
                     "max_attempts %u is over %u", request->max_attempts,
                     MAX_ATTEMPTS_LIMIT);
    return;
  }
  if (request->lease_seconds > MAX_LEASE_SECONDS) {
    rpc_call_finishf(call, RPC_STATUS_INVALID_ARGUMENT,
                     "lease_seconds %u is over %u (7 days)",
                     request->lease_seconds, MAX_LEASE_SECONDS);
    return;
  }
  if (request->not_before != NULL && (request->not_before->nanos < 0 ||
                                      request->not_before->nanos > 999999999)) {
    rpc_call_finish(call, RPC_STATUS_INVALID_ARGUMENT,
                    "not_before.nanos must be in 0..999999999");
    return;
  }
  /* The fixed part is packed here, on the loop thread, to spare the
   * core. */
  size_t size = 0;
  uint8_t *fixed =
      job_fixed_pack(request,
                     request->max_attempts ? request->max_attempts
                                           : hub_options_of(hub)->max_attempts,
                     &size);
  if (fixed == NULL) {
    rpc_call_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  hub_call_post(hub, call, request, run_submit, NULL, fixed, size);
}

/* Get. */

static void run_get(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__GetRequest *request = hc->request;
  job_record *job = job_or_fail(hub, hc, request->id);
  if (job != NULL && pack_job_answer(hub, hc, job) == 0) {
    hub_call_answer(hub, hc);
  }
}

static void get(rpc_call *call, const Jobhub__V1__GetRequest *request,
                void *user) {
  if (!id_missing(call, request->id)) {
    hub_call_post(user, call, request, run_get, NULL, NULL, 0);
  }
}

/* List. */

static bool list_matches(const Jobhub__V1__ListJobsRequest *f,
                         const job_record *job) {
  return (f->state == JOBHUB__V1__JOB_STATE__JOB_STATE_UNSPECIFIED ||
          (int)f->state == job->state) &&
         (f->any_pool || f->pool_id == job->pool_id) &&
         (f->any_job_type || f->job_type_id == job->job_type_id) &&
         (f->subject[0] == '\0' ||
          strcmp(f->subject, job_record_subject(job)) == 0);
}

static void run_list(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__ListJobsRequest *request = hc->request;
  job_record *job = hub_first_job(hub);
  if (request->page_token[0] != '\0') {
    job_record *after = hub_find_job(hub, request->page_token);
    if (after == NULL) {
      hub_call_fail(hub, hc, RPC_STATUS_INVALID_ARGUMENT,
                    "page_token \"%s\" is not from a previous answer",
                    request->page_token);
      return;
    }
    job = after->next;
  }
  uint32_t page = request->page_size ? request->page_size : LIST_DEFAULT_PAGE;
  uint32_t count = 0;
  const job_record *last = NULL;
  for (; job != NULL; job = job->next) {
    if (!list_matches(request, job)) {
      continue;
    }
    if (count == page) {
      /* One more matches: the page is not the last. */
      if (pb_append_bytes_field(&hc->answer, LIST_JOBS_RESPONSE_NEXT_PAGE_TOKEN,
                                last->id, JOB_ID_SIZE - 1) != 0) {
        goto no_memory;
      }
      break;
    }
    rpc_buffer_reset(hub_scratch(hub));
    if (job_record_pack(job, hub_scratch(hub)) != 0 ||
        pb_append_bytes_field(&hc->answer, LIST_JOBS_RESPONSE_JOBS,
                              hub_scratch(hub)->data,
                              hub_scratch(hub)->len) != 0) {
      goto no_memory;
    }
    last = job;
    count++;
  }
  hub_call_answer(hub, hc);
  return;
no_memory:
  hub_call_fail(hub, hc, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
}

static void list(rpc_call *call, const Jobhub__V1__ListJobsRequest *request,
                 void *user) {
  if (request->page_size > LIST_MAX_PAGE) {
    rpc_call_finishf(call, RPC_STATUS_INVALID_ARGUMENT,
                     "page_size %u is over %u", request->page_size,
                     LIST_MAX_PAGE);
    return;
  }
  uint64_t sequence;
  if (request->page_token[0] != '\0' &&
      job_id_parse(request->page_token, &sequence) != 0) {
    rpc_call_finishf(call, RPC_STATUS_INVALID_ARGUMENT,
                     "page_token \"%s\" is not from a previous answer",
                     request->page_token);
    return;
  }
  hub_call_post(user, call, request, run_list, NULL, NULL, 0);
}

/* GetResult. */

/* The store's read of a DONE job's result (off the core thread): the
 * answer. Names the job by the read's sequence, not by the record. */
static void answer_stored_result(int status, const stored_read *read,
                                 void *arg) {
  hub_call *hc = arg;
  char id[JOB_ID_SIZE];
  job_id_format(read->sequence, id);
  if (status != 0) {
    hub_call_fail(hc->hub, hc, RPC_STATUS_INTERNAL,
                  "the result of job %s could not be read", id);
    return;
  }
  /* The stored result carries job_id already; an empty one still names
   * the job. */
  Jobhub__V1__JobResult named = JOBHUB__V1__JOB_RESULT__INIT;
  named.job_id = id;
  if ((read->result != NULL
           ? rpc_buffer_append(&hc->answer, read->result, read->result_size)
           : pb_append_message(&hc->answer, &named.base)) != 0) {
    hub_call_fail(hc->hub, hc, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  hub_call_answer(hc->hub, hc);
}

/* Once the job's writes are durable (a result just reported is in the
 * store): answers with the result, or why there is none. */
static void answer_result(int status, void *arg) {
  hub_call *hc = arg;
  job_hub *hub = hc->hub;
  job_record *job = hc->job;
  if (status != 0) {
    char why[200];
    rpc_status_code code = hub_store_failure(hub, status, why, sizeof(why));
    hub_call_fail(hub, hc, code, "the result of job %s could not be read: %s",
                  job->id, why);
    return;
  }
  if (job->state != JOBHUB__V1__JOB_STATE__DONE) {
    hub_call_fail(hub, hc, RPC_STATUS_FAILED_PRECONDITION,
                  "job %s is %s%s%s, not DONE: it has no result", job->id,
                  hub_state_name(job->state), job->error ? ": " : "",
                  job->error ? job->error : "");
    return;
  }
  if (hub_read_result(hub, job, answer_stored_result, hc) != 0) {
    hub_call_fail(hub, hc, RPC_STATUS_INTERNAL,
                  "the result of job %s could not be read", job->id);
  }
}

/* Runs done once every write of job id is durable, so that the store's
 * read sees them; what names the read in errors ("result", "history"). */
static void read_after_writes(job_hub *hub, hub_call *hc, const char *id,
                              const char *what, job_store_done_fn done) {
  job_record *job = job_or_fail(hub, hc, id);
  if (job == NULL) {
    return;
  }
  hc->job = job;
  if (hub_after_writes(hub, job, done, hc) != 0) {
    hub_call_fail(hub, hc, RPC_STATUS_UNAVAILABLE,
                  "the %s of job %s could not be read", what, job->id);
  }
}

static void run_get_result(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__GetResultRequest *request = hc->request;
  read_after_writes(hub, hc, request->id, "result", answer_result);
}

static void get_result(rpc_call *call,
                       const Jobhub__V1__GetResultRequest *request,
                       void *user) {
  if (!id_missing(call, request->id)) {
    hub_call_post(user, call, request, run_get_result, NULL, NULL, 0);
  }
}

/* Cancel. */

static void run_cancel(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__CancelRequest *request = hc->request;
  job_record *job = job_or_fail(hub, hc, request->id);
  if (job == NULL) {
    return;
  }
  if (hub_state_is_final(job->state)) {
    hub_call_fail(hub, hc, RPC_STATUS_FAILED_PRECONDITION,
                  "job %s is %s already", job->id, hub_state_name(job->state));
    return;
  }
  int from = job->state;
  hub_undo_begin(job, &hc->undo);
  if (from == JOBHUB__V1__JOB_STATE__QUEUED) {
    hub_unqueue(hub, job);
  } else {
    hub_cancel_lease(hub, job);
    hub_release_lease(hub, job);
  }
  job->finished_us = time_now_us();
  hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__CANCELLED);
  hub_undo_made(job, &hc->undo);
  hub_notify(hub, job, from);
  hc->job = job;
  if (pack_job_answer(hub, hc, job) != 0) {
    return;
  }
  if (hub_save(hub, job, from, "client", NULL, NULL, 0, answer_when_stored,
               hc) != 0) {
    hub_undo_failed(hub, job, &hc->undo);
    hub_call_fail(hub, hc, RPC_STATUS_UNAVAILABLE,
                  "the cancellation could not be stored");
  }
}

static void cancel(rpc_call *call, const Jobhub__V1__CancelRequest *request,
                   void *user) {
  if (!id_missing(call, request->id)) {
    hub_call_post(user, call, request, run_cancel, NULL, NULL, 0);
  }
}

/* Watch: the core keeps the watchers (server/core/watchers.c). */

static void watch(rpc_call *call, const Jobhub__V1__WatchRequest *request,
                  void *user) {
  hub_watch(user, call, request);
}

/* Reset. */

/* Puts a job back in the queue as new: attempts 0, no error. */
static void reset_job(job_hub *hub, job_record *job, job_store_done_fn done,
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
  (void)hub_save(hub, job, from, "client", "reset", NULL, 0, done, arg);
  hub_requeue(hub, job, 0);
  hub_notify(hub, job, from);
}

static void answer_reset(int status, void *arg) {
  hub_call *hc = arg;
  if (status != 0) {
    char why[220];
    rpc_status_code code = hub_store_failure(hc->hub, status, why, sizeof(why));
    hub_call_fail(hc->hub, hc, code, "the reset could not be stored: %s", why);
    return;
  }
  hub_call_answer(hc->hub, hc);
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

static void run_reset(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__ResetRequest *request = hc->request;
  for (size_t i = 0; i < request->n_ids; i++) {
    if (job_or_fail(hub, hc, request->ids[i]) == NULL) {
      return; /* nothing changed */
    }
  }
  /* Select first, so that the answer lists each job once; the last write
   * is awaited, and the writes before it commit no later. */
  size_t count = 0;
  job_record **selected = NULL;
  size_t limit = request->n_ids > 0 ? request->n_ids : hub_job_count(hub);
  selected = malloc((limit ? limit : 1) * sizeof(*selected));
  if (selected == NULL) {
    hub_call_fail(hub, hc, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
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
  } else {
    for (job_record *job = hub_first_job(hub); job != NULL; job = job->next) {
      if (reset_selects(request, job)) {
        selected[count++] = job;
      }
    }
  }
  for (size_t i = 0; i < count; i++) {
    bool last = i + 1 == count;
    reset_job(hub, selected[i], last ? answer_reset : NULL, last ? hc : NULL);
    rpc_buffer_reset(hub_scratch(hub));
    if (job_record_pack(selected[i], hub_scratch(hub)) != 0 ||
        pb_append_bytes_field(&hc->answer, RESET_RESPONSE_JOBS,
                              hub_scratch(hub)->data,
                              hub_scratch(hub)->len) != 0) {
      rpc_log(RPC_LOG_ERROR, "reset_answer_incomplete",
              "error=\"out of memory\"");
    }
  }
  free(selected);
  if (count == 0) {
    hub_call_answer(hub, hc);
  }
}

static void reset(rpc_call *call, const Jobhub__V1__ResetRequest *request,
                  void *user) {
  if (request->n_ids == 0 && (request->pool_id > JOBHUB_ID_FIELD_MAX ||
                              request->job_type_id > JOBHUB_ID_FIELD_MAX)) {
    rpc_call_finishf(call, RPC_STATUS_INVALID_ARGUMENT,
                     "pool_id and job_type_id must be at most %u",
                     JOBHUB_ID_FIELD_MAX);
    return;
  }
  hub_call_post(user, call, request, run_reset, NULL, NULL, 0);
}

/* History. */

typedef struct history_answer {
  hub_call *hc;
  const char *job_id;
} history_answer;

static int add_event(const stored_event *stored, void *arg) {
  history_answer *history = arg;
  Jobhub__V1__JobEvent event = JOBHUB__V1__JOB_EVENT__INIT;
  Google__Protobuf__Timestamp time = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  event.job_id = (char *)history->job_id;
  event.from_state = (Jobhub__V1__JobState)stored->from_state;
  event.to_state = (Jobhub__V1__JobState)stored->to_state;
  time.seconds = stored->time_us / 1000000;
  time.nanos = (int32_t)(stored->time_us % 1000000) * 1000;
  event.time = &time;
  event.actor = (char *)stored->actor;
  event.worker_idx = stored->worker_idx;
  if (stored->detail != NULL) {
    event.detail = (char *)stored->detail;
  }
  rpc_buffer packed;
  rpc_buffer_init(&packed);
  int rv = pb_append_message(&packed, &event.base) != 0 ||
                   pb_append_bytes_field(&history->hc->answer, 1, packed.data,
                                         packed.len) != 0
               ? -2
               : 0;
  rpc_buffer_free(&packed);
  return rv;
}

/* The store's read of the job's events (off the core thread): the
 * answer. Names the job by the read's sequence, not by the record. */
static void answer_stored_history(int status, const stored_read *read,
                                  void *arg) {
  char id[JOB_ID_SIZE];
  job_id_format(read->sequence, id);
  history_answer history = {arg, id};
  int rv = status != 0 ? -1 : 0;
  for (const stored_event *e = read->events; rv == 0 && e != NULL;
       e = e->next) {
    rv = add_event(e, &history);
  }
  if (rv != 0) {
    hub_call_fail(history.hc->hub, history.hc,
                  rv == -2 ? RPC_STATUS_RESOURCE_EXHAUSTED
                           : RPC_STATUS_INTERNAL,
                  "the history of job %s could not be read", id);
    return;
  }
  hub_call_answer(history.hc->hub, history.hc);
}

/* The history is read once every earlier write of the job is durable, so
 * that it holds every transition before the call. */
static void answer_history(int status, void *arg) {
  hub_call *hc = arg;
  job_hub *hub = hc->hub;
  job_record *job = hc->job;
  if (status != 0) {
    char why[200];
    rpc_status_code code = hub_store_failure(hub, status, why, sizeof(why));
    hub_call_fail(hub, hc, code, "the history of job %s could not be read: %s",
                  job->id, why);
    return;
  }
  if (hub_read_events(hub, job, answer_stored_history, hc) != 0) {
    hub_call_fail(hub, hc, RPC_STATUS_INTERNAL,
                  "the history of job %s could not be read", job->id);
  }
}

static void run_history(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__HistoryRequest *request = hc->request;
  read_after_writes(hub, hc, request->id, "history", answer_history);
}

static void history(rpc_call *call, const Jobhub__V1__HistoryRequest *request,
                    void *user) {
  if (!id_missing(call, request->id)) {
    hub_call_post(user, call, request, run_history, NULL, NULL, 0);
  }
}

static const jobhub_v1_jobs_handlers jobs_handlers = {
    .submit = submit,
    .get = get,
    .list = list,
    .get_result = get_result,
    .cancel = cancel,
    .watch = watch,
    .reset = reset,
    .history = history,
};

int jobs_service_add(rpc_server *server, job_hub *hub) {
  return jobhub_v1_jobs_add_to_server(server, &jobs_handlers, hub);
}
