/* services/jobs.c: jobhub.v1.Jobs. Handlers check what they can on the
 * loop thread, post the request to the core (hub_call_post; the core's
 * server/core/job_actions.h decides and changes the jobs), and encode its
 * answer. */
#include "server/services/jobs.h"

#include <stdio.h>
#include <string.h>

#include "jobhub/v1/jobs.rpc.h"
#include "rpc/log.h"
#include "server/core/ids.h"
#include "server/core/job_actions.h"
#include "server/core/job_table.h"
#include "server/core/mailbox.h"
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

/* Answers hc with its answer, packed before (empty: packing it failed). */
static void answer_packed(hub_call *hc) {
  if (hc->answer.len == 0) {
    hub_call_fail(hc->hub, hc, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  hub_call_answer(hc->hub, hc);
}

/* Answers a Cancel once its write is durable. A failed write is answered
 * with its cause, the transition undone (hc->undo; docs/core-design.md,
 * "A failed write"). */
static void answer_when_stored(int status, void *arg) {
  hub_call *hc = arg;
  hub_refusal why;
  if (hub_client_write_done(hc->hub, hc->job, &hc->undo, status, &why) != 0) {
    hub_call_fail(hc->hub, hc, why.code, "%s", why.message);
    return;
  }
  answer_packed(hc);
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

/* Answers a Submit once its job is durable (a new job: with the job as
 * submitted; one of an idempotency key: as it is now). */
static void answer_submit_written(hub_call *hc, bool existing, int status) {
  hub_refusal why;
  if (hub_submit_written(hc->hub, hc->job, existing, status, &why) != 0) {
    hub_call_fail(hc->hub, hc, why.code, "%s", why.message);
    return;
  }
  if (existing && pack_job_answer(hc->hub, hc, hc->job) != 0) {
    return;
  }
  answer_packed(hc);
}

static void answer_submit(int status, void *arg) {
  answer_submit_written(arg, false, status);
}

static void answer_existing(int status, void *arg) {
  answer_submit_written(arg, true, status);
}

static void run_submit(job_hub *hub, hub_call *hc) {
  hub_refusal why;
  int rv = hub_submit_job(hub, hc->request, hc->data, hc->data_size,
                          answer_submit, answer_existing, hc, &hc->job, &why);
  if (rv < 0) {
    hub_call_fail(hub, hc, why.code, "%s", why.message);
  } else if (rv == 0) {
    /* The write's callback sends the job as submitted. */
    (void)job_record_pack(hc->job, &hc->answer);
  } /* else answer_existing answers, maybe already has */
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
      job_fixed_pack(request, hub_submit_max_attempts(hub, request), &size);
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

static void run_list(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__ListJobsRequest *request = hc->request;
  const job_record *after = NULL;
  if (request->page_token[0] != '\0') {
    after = hub_find_job(hub, request->page_token);
    if (after == NULL) {
      hub_call_fail(hub, hc, RPC_STATUS_INVALID_ARGUMENT,
                    "page_token \"%s\" is not from a previous answer",
                    request->page_token);
      return;
    }
  }
  uint32_t page = request->page_size ? request->page_size : LIST_DEFAULT_PAGE;
  uint32_t count = 0;
  const job_record *last = NULL;
  for (const job_record *job = hub_list_next(hub, after, request); job != NULL;
       job = hub_list_next(hub, job, request)) {
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
  hub_refusal why;
  if (hub_result_readable(hub, job, status, &why) != 0) {
    hub_call_fail(hub, hc, why.code, "%s", why.message);
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
  hub_refusal why;
  job_record *job =
      hub_cancel_job(hub, request->id, answer_when_stored, hc, &hc->undo, &why);
  if (job == NULL) {
    hub_call_fail(hub, hc, why.code, "%s", why.message);
    return;
  }
  /* answer_when_stored runs later, on the core */
  hc->job = job;
  (void)job_record_pack(job, &hc->answer);
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

/* Adds a job the Reset put back to its answer. */
static void add_reset_job(const job_record *job, void *arg) {
  hub_call *hc = arg;
  rpc_buffer_reset(hub_scratch(hc->hub));
  if (job_record_pack(job, hub_scratch(hc->hub)) != 0 ||
      pb_append_bytes_field(&hc->answer, RESET_RESPONSE_JOBS,
                            hub_scratch(hc->hub)->data,
                            hub_scratch(hc->hub)->len) != 0) {
    rpc_log(RPC_LOG_ERROR, "reset_answer_incomplete",
            "error=\"out of memory\"");
  }
}

static void run_reset(job_hub *hub, hub_call *hc) {
  hub_refusal why;
  long count =
      hub_reset_jobs(hub, hc->request, add_reset_job, answer_reset, hc, &why);
  if (count < 0) {
    hub_call_fail(hub, hc, why.code, "%s", why.message);
  } else if (count == 0) {
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
