/* services/workers.c: jobhub.v1.Workers: registration, the Connect stream,
 * the unary worker calls and the admin calls. The lease checks are shared
 * by the unary calls and the messages of Connect. */
#include "server/services/workers.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobhub/v1/workers.rpc.h"
#include "rpc/log.h"
#include "server/core/dispatch.h"
#include "server/core/ids.h"
#include "server/core/job_table.h"
#include "server/core/leases.h"
#include "server/core/mailbox.h"
#include "server/core/observers.h"
#include "server/core/penalties.h"
#include "server/core/persist.h"
#include "server/core/queries.h"
#include "server/core/registry.h"
#include "server/core/worker_wire.h"

#define MAX_WAIT_MS 60000
#define MAX_LEASE_JOBS 1000
#define SUBJECT_STATE_TIMEOUT 5.0

/* Field numbers of proto/jobhub/v1/workers.proto that answers are put
 * together with from bytes packed before (protobuf-c names none). */
enum {
  WORKER_CONFIG = 12,                  /* Worker.worker_config */
  ASSIGNMENT_JOB = 1,                  /* Assignment.job */
  LEASE_RESPONSE_ASSIGNMENTS = 1,      /* LeaseResponse.assignments */
  HUB_MESSAGE_WELCOME = 1,             /* HubMessage.welcome */
  HUB_MESSAGE_ASSIGNMENT = 2,          /* HubMessage.assignment */
  LIST_WORKERS_RESPONSE_WORKERS = 1,   /* ListWorkersResponse.workers */
  HEARTBEAT_RESPONSE_CANCELLED = 1,    /* HeartbeatResponse.cancelled_job_ids */
  WORKER_STATS_RESPONSE_JOB_TYPES = 1, /* WorkerStatsResponse.job_types */
};

static void timestamp_of(Google__Protobuf__Timestamp *ts, int64_t us) {
  ts->seconds = us / 1000000;
  ts->nanos = (int32_t)(us % 1000000) * 1000;
}

/* Appends worker as a Worker to out. Returns 0 or -1 (no memory; out as
 * it was). */
static int worker_pack(const hub_worker *worker, rpc_buffer *out) {
  Jobhub__V1__Worker w = JOBHUB__V1__WORKER__INIT;
  Google__Protobuf__Timestamp connected = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  Google__Protobuf__Timestamp seen = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  w.worker_idx = worker->worker_idx;
  if (worker->client_id != NULL) {
    w.client_id = worker->client_id;
  }
  w.pool_id = worker->pool_id;
  w.n_job_type_ids = worker->n_job_types;
  w.job_type_ids = worker->job_type_ids;
  if (worker->hostname != NULL) {
    w.hostname = worker->hostname;
  }
  w.capacity = worker->capacity;
  w.status = worker->reserved   ? JOBHUB__V1__WORKER_STATUS__WORKER_RESERVED
             : worker->draining ? JOBHUB__V1__WORKER_STATUS__WORKER_DRAINING
             : !worker->live    ? JOBHUB__V1__WORKER_STATUS__WORKER_DISCONNECTED
             : worker->running > 0 ? JOBHUB__V1__WORKER_STATUS__WORKER_BUSY
                                   : JOBHUB__V1__WORKER_STATUS__WORKER_IDLE;
  w.running = worker->running;
  if (worker->connected_us != 0) {
    timestamp_of(&connected, worker->connected_us);
    w.connected_at = &connected;
  }
  timestamp_of(&seen, worker->last_seen_us);
  w.last_seen = &seen;
  w.port = worker->port;
  size_t start = out->len;
  if (pb_append_message(out, &w.base) != 0) {
    return -1;
  }
  if (worker->worker_config != NULL &&
      pb_append_bytes_field(out, WORKER_CONFIG, worker->worker_config,
                            worker->worker_config_size) != 0) {
    out->len = start;
    return -1;
  }
  return 0;
}

/* The encoders the core is handed (worker_wire.h). */

/* Appends Assignment { job, lease_id, lease_expires_at } of job to out;
 * the job is packed in scratch. */
static int assignment_pack(rpc_buffer *out, const job_record *job,
                           rpc_buffer *scratch) {
  char lease_id[LEASE_ID_SIZE];
  lease_id_format(job, lease_id);
  Google__Protobuf__Timestamp expires = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  expires.seconds = job->lease.due_us / 1000000;
  expires.nanos = (int32_t)(job->lease.due_us % 1000000) * 1000;
  Jobhub__V1__Assignment rest = JOBHUB__V1__ASSIGNMENT__INIT;
  rest.lease_id = lease_id;
  rest.lease_expires_at = &expires;
  rpc_buffer_reset(scratch);
  if (job_record_pack(job, scratch) != 0 ||
      pb_append_bytes_field(out, ASSIGNMENT_JOB, scratch->data, scratch->len) !=
          0 ||
      pb_append_message(out, &rest.base) != 0) {
    return -1;
  }
  return 0;
}

/* Appends to out, as its field field, the Assignment of job. */
static int assignment_field_add(rpc_buffer *out, uint32_t field,
                                const job_record *job, rpc_buffer *scratch,
                                rpc_buffer *work) {
  rpc_buffer_reset(work);
  if (assignment_pack(work, job, scratch) != 0 ||
      pb_append_bytes_field(out, field, work->data, work->len) != 0) {
    return -1;
  }
  return 0;
}

static int lease_answer_add(rpc_buffer *answer, const job_record *job,
                            rpc_buffer *scratch, rpc_buffer *work) {
  return assignment_field_add(answer, LEASE_RESPONSE_ASSIGNMENTS, job, scratch,
                              work);
}

static int stream_assignment(rpc_buffer *message, const job_record *job,
                             rpc_buffer *scratch, rpc_buffer *work) {
  return assignment_field_add(message, HUB_MESSAGE_ASSIGNMENT, job, scratch,
                              work);
}

static int stream_cancel(rpc_buffer *message, const job_record *job) {
  char lease_id[LEASE_ID_SIZE];
  lease_id_format(job, lease_id);
  Jobhub__V1__JobCancellation cancel = JOBHUB__V1__JOB_CANCELLATION__INIT;
  cancel.job_id = (char *)job->id; /* only read by the packing */
  cancel.lease_id = lease_id;
  Jobhub__V1__HubMessage hub_message = JOBHUB__V1__HUB_MESSAGE__INIT;
  hub_message.message_case = JOBHUB__V1__HUB_MESSAGE__MESSAGE_CANCEL;
  hub_message.cancel = &cancel;
  return pb_append_message(message, &hub_message.base);
}

static const hub_worker_wire worker_wire = {
    .lease_answer_add = lease_answer_add,
    .stream_assignment = stream_assignment,
    .stream_cancel = stream_cancel,
};

/* An outcome: OK, or a status with a message. */
typedef struct outcome {
  rpc_status_code code;
  char message[200];
} outcome;

static job_record *refuse(outcome *out, rpc_status_code code, const char *fmt,
                          ...) __attribute__((format(printf, 3, 4)));

static job_record *refuse(outcome *out, rpc_status_code code, const char *fmt,
                          ...) {
  va_list args;
  va_start(args, fmt);
  out->code = code;
  vsnprintf(out->message, sizeof(out->message), fmt, args);
  va_end(args);
  return NULL;
}

/* Whether the lease of job may be used by the caller: on a Connect
 * stream, the stream's worker (stream_worker) must be the holder; on a
 * unary call, client_id must be the holder's. After a hub restart, until
 * the holder re-attaches it (WorkerHello.resend_lease_ids), a lease has no
 * holder: on Connect the worker must then have the stored worker_idx; on
 * a unary call the lease id's secret alone binds. Neither given: the hub
 * itself asks. */
static bool lease_caller_allowed(const job_record *job, const char *client_id,
                                 const hub_worker *stream_worker) {
  const hub_worker *holder = job->holder;
  if (stream_worker != NULL) {
    return holder != NULL ? holder == stream_worker
                          : job->worker_idx == stream_worker->worker_idx;
  }
  if (client_id == NULL || holder == NULL) {
    return true;
  }
  return holder->client_id != NULL && strcmp(holder->client_id, client_id) == 0;
}

/* The job of a lease the caller (see lease_caller_allowed) still holds,
 * or NULL with why: NOT_FOUND for an unknown, older or forged lease (a
 * wrong secret is an unknown lease), FAILED_PRECONDITION when its job
 * finished, PERMISSION_DENIED for a lease held by another worker. */
static job_record *leased_job(job_hub *hub, const char *job_id,
                              const char *lease_id, const char *client_id,
                              const hub_worker *stream_worker, outcome *out) {
  uint64_t sequence;
  uint32_t lease;
  uint8_t secret[LEASE_SECRET_SIZE];
  out->code = RPC_STATUS_OK;
  if (lease_id_parse(lease_id, &sequence, &lease, secret) != 0) {
    return refuse(out, RPC_STATUS_NOT_FOUND, "no lease \"%s\"", lease_id);
  }
  char id[JOB_ID_SIZE];
  job_id_format(sequence, id);
  job_record *job = hub_find_job(hub, id);
  if (job == NULL || (job_id[0] != '\0' && strcmp(job_id, id) != 0) ||
      (job->leases == lease &&
       !lease_secret_equal(secret, job->lease_secret))) {
    return refuse(out, RPC_STATUS_NOT_FOUND, "no lease \"%s\" for this job",
                  lease_id);
  }
  if (hub_state_is_final(job->state)) {
    out->code = RPC_STATUS_FAILED_PRECONDITION;
    snprintf(out->message, sizeof(out->message), "job %s is %s already", id,
             hub_state_name(job->state));
    return NULL;
  }
  if (job->state != JOBHUB__V1__JOB_STATE__IN_PROGRESS ||
      job->leases != lease) {
    return refuse(out, RPC_STATUS_NOT_FOUND,
                  "lease \"%s\" expired (the job was leased again or is "
                  "queued)",
                  lease_id);
  }
  if (!lease_caller_allowed(job, client_id, stream_worker)) {
    return refuse(out, RPC_STATUS_PERMISSION_DENIED,
                  "lease \"%s\" is held by another worker", lease_id);
  }
  return job;
}

static void touch_holder(job_record *job) {
  if (job->holder != NULL) {
    job->holder->last_seen_us = time_now_us();
  }
}

static void apply_progress(job_hub *hub, job_record *job,
                           const Jobhub__V1__ProgressRequest *request) {
  job->progress = request->progress < 0   ? 0
                  : request->progress > 1 ? 1
                                          : request->progress;
  (void)job_record_set_text(&job->progress_message, request->message);
  touch_holder(job);
  char actor[HUB_ACTOR_SIZE];
  hub_actor_of_worker(job->worker_idx, actor);
  (void)hub_save(hub, job, job->state, actor, NULL, NULL, 0, NULL, NULL);
  hub_notify(hub, job, job->state); /* progress: no transition */
}

/* Ends a leased job as DONE (result) or after a failure; done is awaited
 * when not NULL, and undo (not NULL) records how to undo it if the write
 * fails. Returns 0 or -1 (the store refused the write). */
static int finish_job(job_hub *hub, job_record *job,
                      const Jobhub__V1__JobResult *result,
                      const Jobhub__V1__FailRequest *failure,
                      job_store_done_fn done, void *arg, job_undo *undo) {
  int from = job->state;
  hub_undo_begin(job, undo);
  char actor[HUB_ACTOR_SIZE];
  hub_actor_of_worker(job->worker_idx, actor);
  touch_holder(job);
  hub_release_lease(hub, job);
  int64_t now = time_now_us();
  uint8_t *packed = NULL;
  size_t packed_size = 0;
  if (failure == NULL) {
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
    (void)job_record_set_text(&job->error, failure->error);
    if (failure->retryable && job->attempts < job->max_attempts) {
      hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__QUEUED);
    } else {
      job->finished_us = now;
      hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__FAILED);
    }
  }
  hub_undo_made(job, undo);
  int rv =
      hub_save(hub, job, from, actor, failure != NULL ? failure->error : NULL,
               packed, packed_size, done, arg);
  free(packed);
  if (job->state == JOBHUB__V1__JOB_STATE__QUEUED) {
    hub_requeue(hub, job, hub_backoff_us(hub, job->attempts));
  }
  hub_notify(hub, job, from);
  return rv;
}

static void extend_lease(job_hub *hub, job_record *job) {
  hub_extend_lease(hub, job);
  touch_holder(job);
}

/* Unary calls: the client id is their credential. */

static bool client_missing(rpc_call *call, const char *client_id) {
  if (client_id[0] == '\0') {
    rpc_call_finish(call, RPC_STATUS_UNAUTHENTICATED,
                    "client_id is missing: workers identify themselves");
    return true;
  }
  return false;
}

/* The answer to a result whose write failed: NOT_FOUND when the job
 * itself was never stored (its Submit's write failed too: hub_drop_job),
 * else the store's failure (hub_store_failure). */
static rpc_status_code outcome_failure(job_hub *hub, int status,
                                       const char *job_id, char *why,
                                       size_t why_size) {
  if (hub_find_job(hub, job_id) == NULL) {
    snprintf(why, why_size, "job %s was not stored", job_id);
    return RPC_STATUS_NOT_FOUND;
  }
  char cause[180];
  rpc_status_code code = hub_store_failure(hub, status, cause, sizeof(cause));
  snprintf(why, why_size, "the outcome could not be stored: %s", cause);
  return code;
}

static void answer_job_when_stored(int status, void *arg) {
  hub_call *hc = arg;
  if (status != 0) {
    char why[220];
    rpc_status_code code =
        outcome_failure(hc->hub, status, hc->job->id, why, sizeof(why));
    hub_undo_failed(hc->hub, hc->job, &hc->undo);
    hub_call_fail(hc->hub, hc, code, "%s", why);
    return;
  }
  hub_call_answer(hc->hub, hc);
}

/* Progress is a fraction: NaN, infinities and values outside [0, 1] are
 * refused rather than stored. */
static bool progress_valid(double progress) {
  return progress >= 0 && progress <= 1; /* false for NaN */
}

static void run_progress(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__ProgressRequest *request = hc->request;
  outcome out;
  job_record *job = leased_job(hub, request->job_id, request->lease_id,
                               request->client_id, NULL, &out);
  if (job == NULL) {
    hub_call_fail(hub, hc, out.code, "%s", out.message);
    return;
  }
  apply_progress(hub, job, request);
  if (job_record_pack(job, &hc->answer) != 0) {
    hub_call_fail(hub, hc, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  hub_call_answer(hub, hc);
}

static void progress(rpc_call *call, const Jobhub__V1__ProgressRequest *request,
                     void *user) {
  if (client_missing(call, request->client_id)) {
    return;
  }
  if (!progress_valid(request->progress)) {
    rpc_call_finishf(call, RPC_STATUS_INVALID_ARGUMENT,
                     "progress %g is not in [0, 1]", request->progress);
    return;
  }
  hub_call_post(user, call, request, run_progress, NULL, NULL, 0);
}

static void run_finish(job_hub *hub, hub_call *hc, const char *client_id,
                       const char *job_id, const char *lease_id,
                       const Jobhub__V1__JobResult *result,
                       const Jobhub__V1__FailRequest *failure) {
  outcome out;
  job_record *job = leased_job(hub, job_id, lease_id, client_id, NULL, &out);
  if (job == NULL) {
    hub_call_fail(hub, hc, out.code, "%s", out.message);
    return;
  }
  hc->job = job;
  if (finish_job(hub, job, result, failure, answer_job_when_stored, hc,
                 &hc->undo) != 0) {
    hub_undo_failed(hub, job, &hc->undo);
    hub_call_fail(hub, hc, RPC_STATUS_UNAVAILABLE,
                  "the outcome could not be stored");
    return;
  }
  (void)job_record_pack(job, &hc->answer);
}

static void run_complete(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__CompleteRequest *request = hc->request;
  run_finish(hub, hc, request->client_id, request->job_id, request->lease_id,
             request->result, NULL);
}

static void run_fail(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__FailRequest *request = hc->request;
  run_finish(hub, hc, request->client_id, request->job_id, request->lease_id,
             NULL, request);
}

static void complete(rpc_call *call, const Jobhub__V1__CompleteRequest *request,
                     void *user) {
  if (!client_missing(call, request->client_id)) {
    hub_call_post(user, call, request, run_complete, NULL, NULL, 0);
  }
}

static void fail(rpc_call *call, const Jobhub__V1__FailRequest *request,
                 void *user) {
  if (!client_missing(call, request->client_id)) {
    hub_call_post(user, call, request, run_fail, NULL, NULL, 0);
  }
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

static void run_heartbeat(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__HeartbeatRequest *request = hc->request;
  /* Check every lease before changing any; an unknown lease is reported
   * before one held by another worker. */
  outcome denied = {RPC_STATUS_OK, ""};
  for (size_t i = 0; i < request->n_lease_ids; i++) {
    outcome out;
    if (leased_job(hub, "", request->lease_ids[i], request->client_id, NULL,
                   &out) != NULL ||
        out.code == RPC_STATUS_FAILED_PRECONDITION) {
      continue;
    }
    if (out.code == RPC_STATUS_PERMISSION_DENIED) {
      if (denied.code == RPC_STATUS_OK) {
        denied = out;
      }
    } else if (!voided_by_reset(hub, request->lease_ids[i])) {
      hub_call_fail(hub, hc, out.code, "%s", out.message);
      return;
    }
  }
  if (denied.code != RPC_STATUS_OK) {
    hub_call_fail(hub, hc, denied.code, "%s", denied.message);
    return;
  }
  for (size_t i = 0; i < request->n_lease_ids; i++) {
    outcome out;
    job_record *job = leased_job(hub, "", request->lease_ids[i],
                                 request->client_id, NULL, &out);
    if (job != NULL) {
      job->lease_acknowledged = true;
      extend_lease(hub, job);
      continue;
    }
    /* Finished by someone else (cancelled) or taken back by Reset: the
     * worker must stop. */
    uint64_t sequence;
    uint32_t lease;
    uint8_t secret[LEASE_SECRET_SIZE];
    (void)lease_id_parse(request->lease_ids[i], &sequence, &lease, secret);
    char id[JOB_ID_SIZE];
    job_id_format(sequence, id);
    if (pb_append_bytes_field(&hc->answer, HEARTBEAT_RESPONSE_CANCELLED, id,
                              JOB_ID_SIZE - 1) != 0) {
      hub_call_fail(hub, hc, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      return;
    }
  }
  hub_call_answer(hub, hc);
}

static void heartbeat(rpc_call *call,
                      const Jobhub__V1__HeartbeatRequest *request, void *user) {
  if (!client_missing(call, request->client_id)) {
    hub_call_post(user, call, request, run_heartbeat, NULL, NULL, 0);
  }
}

/* Register and Lease. */

static int set_text(char **field, const char *text) {
  return job_record_set_text(field, text);
}

/* The capacity (or Lease max_jobs) worker asked for, 0 being 1, clamped
 * to --max-worker-capacity; a clamp is logged once per worker. */
static uint32_t capped(job_hub *hub, hub_worker *worker, uint32_t asked,
                       const char *what) {
  uint32_t cap = hub_options_of(hub)->max_worker_capacity
                     ? hub_options_of(hub)->max_worker_capacity
                     : HUB_DEFAULT_MAX_WORKER_CAPACITY;
  if (asked == 0) {
    return 1;
  }
  if (asked <= cap) {
    return asked;
  }
  if (!worker->capacity_capped_logged) {
    worker->capacity_capped_logged = true;
    rpc_log(RPC_LOG_WARN, "worker_capacity_capped",
            "worker_idx=%llu client_id=\"%s\" %s=%u max_worker_capacity=%u",
            (unsigned long long)worker->worker_idx,
            worker->client_id != NULL ? worker->client_id : "", what, asked,
            cap);
  }
  return cap;
}

static void run_register(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__RegisterRequest *request = hc->request;
  rpc_status_code code;
  char why[200];
  hub_worker *worker =
      hub_worker_new(hub, 0, request->pool_id, request->job_type_ids,
                     request->n_job_type_ids, &code, why, sizeof(why));
  if (worker == NULL) {
    hub_call_fail(hub, hc, code, "%s", why);
    return;
  }
  if (set_text(&worker->client_id, request->client_id) != 0 ||
      set_text(&worker->hostname, request->hostname) != 0) {
    hub_worker_remove(hub, worker);
    hub_call_fail(hub, hc, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  worker->capacity = capped(hub, worker, request->capacity, "capacity");
  hub_worker_set_live(hub, worker, true);
  if (worker_pack(worker, &hc->answer) != 0) {
    hub_call_fail(hub, hc, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  hub_call_answer(hub, hc);
}

static void register_worker(rpc_call *call,
                            const Jobhub__V1__RegisterRequest *request,
                            void *user) {
  if (!client_missing(call, request->client_id)) {
    hub_call_post(user, call, request, run_register, NULL, NULL, 0);
  }
}

typedef struct client_search {
  const char *client_id;
  uint32_t pool_id;
  uint32_t job_type_id;
  hub_worker *found;
} client_search;

static int match_client(void *value, void *arg) {
  hub_worker *worker = value;
  client_search *search = arg;
  if (worker->conn == NULL && worker->client_id != NULL &&
      strcmp(worker->client_id, search->client_id) == 0 &&
      worker->pool_id == search->pool_id &&
      worker->job_type_ids[0] == search->job_type_id) {
    search->found = worker;
    return 1;
  }
  return 0;
}

static void on_lease_wait_over(struct ev_loop *loop, ev_timer *timer,
                               int events) {
  (void)loop;
  (void)events;
  hub_call *hc = timer->data;
  hc->timer_active = false;
  if (hc->worker->pending_lease == hc) {
    hc->worker->pending_lease = NULL;
  }
  hub_call_answer(hc->hub, hc); /* no work: empty */
}

/* The answer of a Lease did not reach the worker: its jobs go back at
 * once, their attempts not counted. */
static void lease_undelivered(job_hub *hub, hub_call *hc) {
  Jobhub__V1__LeaseResponse *response =
      jobhub__v1__lease_response__unpack(NULL, hc->answer.len, hc->answer.data);
  if (response == NULL) {
    rpc_log(RPC_LOG_ERROR, "lease_requeue_failed", NULL);
    return;
  }
  for (size_t i = 0; i < response->n_assignments; i++) {
    outcome out;
    job_record *job = leased_job(hub, "", response->assignments[i]->lease_id,
                                 NULL, NULL, &out);
    if (job != NULL) {
      hub_cancel_lease(hub, job);
      hub_release_lease(hub, job);
      job->attempts--;
      int from = job->state;
      hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__QUEUED);
      (void)hub_save(hub, job, from, "hub", "lease answer not delivered", NULL,
                     0, NULL, NULL);
      hub_requeue(hub, job, 0);
      hub_notify(hub, job, from);
    }
  }
  jobhub__v1__lease_response__free_unpacked(response, NULL);
}

static void run_lease(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__LeaseRequest *request = hc->request;
  hub_worker *worker = NULL;
  if (request->worker_idx != 0) {
    worker = hub_find_worker(hub, request->worker_idx);
    if (worker == NULL) {
      hub_call_fail(hub, hc, RPC_STATUS_NOT_FOUND,
                    "no worker with worker_idx %llu",
                    (unsigned long long)request->worker_idx);
      return;
    }
    if (worker->client_id != NULL &&
        strcmp(worker->client_id, request->client_id) != 0) {
      hub_call_fail(hub, hc, RPC_STATUS_PERMISSION_DENIED,
                    "worker_idx %llu belongs to another client_id",
                    (unsigned long long)request->worker_idx);
      return;
    }
  } else if (request->n_job_type_ids > 0) {
    client_search search = {request->client_id, request->pool_id,
                            request->job_type_ids[0], NULL};
    hub_each_worker(hub, match_client, &search);
    worker = search.found;
  }
  if (worker == NULL) {
    rpc_status_code code;
    char why[200];
    worker = hub_worker_new(hub, 0, request->pool_id, request->job_type_ids,
                            request->n_job_type_ids, &code, why, sizeof(why));
    if (worker == NULL) {
      hub_call_fail(hub, hc, code, "%s", why);
      return;
    }
    if (set_text(&worker->client_id, request->client_id) != 0) {
      hub_worker_remove(hub, worker);
      hub_call_fail(hub, hc, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      return;
    }
  }
  if (worker->conn != NULL) {
    hub_call_fail(hub, hc, RPC_STATUS_FAILED_PRECONDITION,
                  "worker %llu is connected over Connect; it gets its jobs "
                  "there",
                  (unsigned long long)worker->worker_idx);
    return;
  }
  worker->last_seen_us = time_now_us();
  worker->reserved = false;
  if (!worker->draining) {
    hub_worker_set_live(hub, worker, true);
  }
  hub_end_pending_lease(hub, worker); /* one poll per worker: the older
                                         one ends, empty */
  hc->worker = worker;
  hc->want = capped(hub, worker, request->max_jobs, "max_jobs");
  if (hc->want > MAX_LEASE_JOBS) {
    hc->want = MAX_LEASE_JOBS;
  }
  worker->pending_lease = hc;
  if (!worker->draining) {
    hub_pump(hub, worker); /* answers hc if it found work */
  }
  if (worker->pending_lease != hc) {
    return;
  }
  uint32_t wait_ms =
      request->wait_ms < MAX_WAIT_MS ? request->wait_ms : MAX_WAIT_MS;
  if (wait_ms == 0) {
    worker->pending_lease = NULL;
    hub_call_answer(hub, hc);
    return;
  }
  ev_timer_init(&hc->timer, on_lease_wait_over, wait_ms / 1000.0, 0);
  hc->timer.data = hc;
  hc->timer_active = true;
  ev_timer_start(hub_loop(hub), &hc->timer);
}

static void lease(rpc_call *call, const Jobhub__V1__LeaseRequest *request,
                  void *user) {
  if (client_missing(call, request->client_id)) {
    return;
  }
  if (request->worker_idx == 0 && request->n_job_type_ids == 0) {
    rpc_call_finish(call, RPC_STATUS_INVALID_ARGUMENT,
                    "worker_idx is 0 and job_type_ids is empty: say which "
                    "worker, or which jobs");
    return;
  }
  hub_call_post(user, call, request, run_lease, lease_undelivered, NULL, 0);
}

/* Connect. */

static void send_hub_message(job_hub *hub, worker_conn *conn,
                             const Jobhub__V1__HubMessage *message) {
  rpc_buffer_reset(hub_scratch(hub));
  if (pb_append_message(hub_scratch(hub), &message->base) != 0 ||
      core_stream_send(hub, &conn->stream, hub_scratch(hub)->data,
                       hub_scratch(hub)->len) != 0) {
    core_stream_finish(hub, &conn->stream, RPC_STATUS_RESOURCE_EXHAUSTED,
                       "out of memory");
  }
}

static void conn_hello(job_hub *hub, worker_conn *conn,
                       const Jobhub__V1__WorkerHello *hello) {
  if (hello->client_id[0] == '\0') {
    core_stream_finish(hub, &conn->stream, RPC_STATUS_UNAUTHENTICATED,
                       "hello.client_id is missing");
    return;
  }
  hub_worker *worker =
      hello->worker_idx != 0 ? hub_find_worker(hub, hello->worker_idx) : NULL;
  if (worker == NULL) {
    rpc_status_code code;
    char why[200];
    worker = hub_worker_new(hub, hello->worker_idx, hello->pool_id,
                            hello->job_type_ids, hello->n_job_type_ids, &code,
                            why, sizeof(why));
    if (worker == NULL) {
      core_stream_finish(hub, &conn->stream, code, why);
      return;
    }
  } else if (worker->client_id != NULL &&
             strcmp(worker->client_id, hello->client_id) != 0) {
    /* Its leases are bound to the client that holds the worker_idx. */
    core_stream_finish(hub, &conn->stream, RPC_STATUS_PERMISSION_DENIED,
                       "worker_idx belongs to another client_id");
    return;
  } else if (worker->conn != NULL) {
    /* The same worker again (a reconnect the hub has not noticed yet):
     * the old stream ends, the jobs stay with the worker. */
    worker_conn *old = worker->conn;
    old->worker = NULL;
    core_stream_finish(hub, &old->stream, RPC_STATUS_ABORTED,
                       "replaced by a newer Connect of this worker");
  }
  worker->conn = conn;
  conn->worker = worker;
  worker->reserved = false;
  worker->draining = false;
  worker->connected_us = worker->last_seen_us = time_now_us();
  if (set_text(&worker->client_id, hello->client_id) != 0 ||
      (hello->hostname[0] != '\0' &&
       set_text(&worker->hostname, hello->hostname) != 0)) {
    core_stream_finish(hub, &conn->stream, RPC_STATUS_RESOURCE_EXHAUSTED,
                       "out of memory");
    return;
  }
  worker->capacity = capped(hub, worker, hello->capacity, "capacity");
  hub_penalty_apply(hub, worker);
  rpc_buffer welcome;
  rpc_buffer_init(&welcome);
  rpc_buffer message;
  rpc_buffer_init(&message);
  /* Leases it still holds from before (a hub restart recovered them with
   * no holder): its again, so they count toward its capacity. */
  for (size_t i = 0; i < hello->n_resend_lease_ids; i++) {
    outcome out;
    job_record *job =
        leased_job(hub, "", hello->resend_lease_ids[i], NULL, worker, &out);
    if (job != NULL && job->holder == NULL) {
      hub_hold_lease(worker, job);
    }
    if (job != NULL) {
      job->lease_acknowledged = true; /* it says it runs the job */
    }
  }
  if (worker_pack(worker, &welcome) != 0 ||
      pb_append_bytes_field(&message, HUB_MESSAGE_WELCOME, welcome.data,
                            welcome.len) != 0 ||
      core_stream_send(hub, &conn->stream, message.data, message.len) != 0) {
    core_stream_finish(hub, &conn->stream, RPC_STATUS_RESOURCE_EXHAUSTED,
                       "out of memory");
  } else if (worker->paused_until_us == 0) {
    hub_worker_set_live(hub, worker, true); /* then assignments follow */
  } /* else out of the routing tables until the pause is over */
  rpc_buffer_free(&welcome);
  rpc_buffer_free(&message);
}

static void answer_query(job_hub *hub, const Jobhub__V1__SubjectState *state,
                         uint64_t worker_idx);

static void conn_free_if_done(worker_conn *conn) {
  if (conn->closed && conn->acks_owed == 0) {
    free(conn);
  }
}

static void send_result_ack(job_hub *hub, worker_conn *conn, const char *job_id,
                            const char *lease_id, rpc_status_code code,
                            const char *why) {
  Jobhub__V1__ResultAck ack = JOBHUB__V1__RESULT_ACK__INIT;
  ack.job_id = (char *)job_id;
  ack.lease_id = (char *)lease_id;
  ack.code = (int32_t)code;
  ack.message = (char *)why;
  Jobhub__V1__HubMessage message = JOBHUB__V1__HUB_MESSAGE__INIT;
  message.message_case = JOBHUB__V1__HUB_MESSAGE__MESSAGE_RESULT_ACK;
  message.result_ack = &ack;
  if (!conn->closed) {
    send_hub_message(hub, conn, &message);
  }
}

/* A result or error of a Connect worker waiting to be durable. */
typedef struct result_ack_wait {
  job_hub *hub;
  worker_conn *conn;
  job_record *job;
  job_undo undo;
  char job_id[JOB_ID_SIZE];
  char lease_id[LEASE_ID_SIZE];
} result_ack_wait;

static void ack_when_stored(int status, void *arg) {
  result_ack_wait *wait = arg;
  job_hub *hub = wait->hub;
  worker_conn *conn = wait->conn;
  char why[220] = "";
  rpc_status_code code =
      status == 0
          ? RPC_STATUS_OK
          : outcome_failure(hub, status, wait->job_id, why, sizeof(why));
  if (status != 0) {
    hub_undo_failed(hub, wait->job, &wait->undo);
  }
  hub_undo_free(&wait->undo);
  send_result_ack(hub, conn, wait->job_id, wait->lease_id, code, why);
  conn->acks_owed--;
  free(wait);
  conn_free_if_done(conn);
}

/* Ends the leased job of a result or error sent on Connect; the worker is
 * acked once it is durable, or at once when the lease is void. */
static void settle_result(job_hub *hub, worker_conn *conn, const char *job_id,
                          const char *lease_id,
                          const Jobhub__V1__JobResult *result,
                          const Jobhub__V1__FailRequest *failure,
                          outcome *out) {
  job_record *job = leased_job(hub, job_id, lease_id, NULL, conn->worker, out);
  if (job == NULL) {
    send_result_ack(hub, conn, job_id, lease_id, out->code, out->message);
    return;
  }
  result_ack_wait *wait = malloc(sizeof(*wait));
  if (wait == NULL) {
    *out = (outcome){RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory"};
    send_result_ack(hub, conn, job_id, lease_id, out->code, out->message);
    return;
  }
  wait->hub = hub;
  wait->conn = conn;
  wait->job = job;
  snprintf(wait->job_id, sizeof(wait->job_id), "%s", job->id);
  lease_id_format(job, wait->lease_id);
  conn->acks_owed++;
  if (finish_job(hub, job, result, failure, ack_when_stored, wait,
                 &wait->undo) != 0) {
    hub_undo_failed(hub, job, &wait->undo);
    conn->acks_owed--;
    hub_undo_free(&wait->undo);
    free(wait);
    *out = (outcome){RPC_STATUS_UNAVAILABLE, "the outcome could not be stored"};
    send_result_ack(hub, conn, job_id, lease_id, out->code, out->message);
  }
}

static void conn_message(job_hub *hub, core_stream *stream,
                         const ProtobufCMessage *base) {
  worker_conn *conn = (worker_conn *)stream;
  const Jobhub__V1__WorkerMessage *message =
      (const Jobhub__V1__WorkerMessage *)base;
  hub_worker *worker = conn->worker;
  if (worker == NULL) {
    if (message->message_case == JOBHUB__V1__WORKER_MESSAGE__MESSAGE_HELLO) {
      conn_hello(hub, conn, message->hello);
    } else {
      core_stream_finish(hub, stream, RPC_STATUS_FAILED_PRECONDITION,
                         "the first message on Connect must be hello");
    }
    return;
  }
  worker->last_seen_us = time_now_us();
  outcome out = {RPC_STATUS_OK, ""};
  job_record *job;
  switch (message->message_case) {
  case JOBHUB__V1__WORKER_MESSAGE__MESSAGE_HEARTBEAT:
    for (size_t i = 0; i < message->heartbeat->n_lease_ids; i++) {
      job = leased_job(hub, "", message->heartbeat->lease_ids[i], NULL, worker,
                       &out);
      if (job != NULL) {
        job->lease_acknowledged = true;
        extend_lease(hub, job);
      }
    }
    break;
  case JOBHUB__V1__WORKER_MESSAGE__MESSAGE_STARTED:
    for (size_t i = 0; i < message->started->n_lease_ids; i++) {
      job = leased_job(hub, "", message->started->lease_ids[i], NULL, worker,
                       &out);
      if (job != NULL) {
        job->lease_acknowledged = true;
      }
    }
    break;
  case JOBHUB__V1__WORKER_MESSAGE__MESSAGE_PROGRESS:
    if (!progress_valid(message->progress->progress)) {
      (void)refuse(&out, RPC_STATUS_INVALID_ARGUMENT,
                   "progress %g is not in [0, 1]", message->progress->progress);
      break;
    }
    job = leased_job(hub, message->progress->job_id,
                     message->progress->lease_id, NULL, worker, &out);
    if (job != NULL) {
      job->lease_acknowledged = true;
      apply_progress(hub, job, message->progress);
    }
    break;
  case JOBHUB__V1__WORKER_MESSAGE__MESSAGE_RESULT:
    settle_result(hub, conn, message->result->job_id, message->result->lease_id,
                  message->result->result, NULL, &out);
    break;
  case JOBHUB__V1__WORKER_MESSAGE__MESSAGE_ERROR:
    settle_result(hub, conn, message->error->job_id, message->error->lease_id,
                  NULL, message->error, &out);
    break;
  case JOBHUB__V1__WORKER_MESSAGE__MESSAGE_SUBJECT_STATE:
    answer_query(hub, message->subject_state, worker->worker_idx);
    break;
  case JOBHUB__V1__WORKER_MESSAGE__MESSAGE_DRAIN:
    /* It finishes what it runs; its subjects move to the others now. */
    worker->draining = true;
    hub_worker_set_live(hub, worker, false);
    break;
  default:
    break; /* a second hello, or a newer kind: nothing to do */
  }
  if (out.code != RPC_STATUS_OK &&
      message->message_case != JOBHUB__V1__WORKER_MESSAGE__MESSAGE_HELLO &&
      message->message_case !=
          JOBHUB__V1__WORKER_MESSAGE__MESSAGE_SUBJECT_STATE) {
    rpc_log(RPC_LOG_DEBUG, "worker_message_refused",
            "worker_idx=%llu reason=\"%s\"",
            (unsigned long long)worker->worker_idx, out.message);
  }
}

static void conn_closed(job_hub *hub, core_stream *stream) {
  worker_conn *conn = (worker_conn *)stream;
  hub_worker *worker = conn->worker;
  if (worker != NULL) {
    worker->conn = NULL;
    conn->worker = NULL;
    /* Out of the routing tables first: its subject jobs go back to the
     * shared queue rather than to it. */
    hub_worker_set_live(hub, worker, false);
    uint32_t dropped = hub_requeue_unacknowledged(hub, worker);
    hub_penalty_note_stream_end(hub, worker, dropped);
    hub_worker_remove(hub, worker); /* its other jobs go back at once */
  }
  core_stream_finish(hub, stream, RPC_STATUS_OK, NULL);
  conn->closed = true;
  conn_free_if_done(conn);
}

static void conn_opened(job_hub *hub, core_stream *stream) {
  if (hub_is_closing(hub)) {
    core_stream_finish(hub, stream, RPC_STATUS_UNAVAILABLE,
                       "the hub is shutting down");
  }
}

static void connect_worker(rpc_call *call, void *user) {
  worker_conn *conn = calloc(1, sizeof(*conn));
  if (conn == NULL) {
    rpc_call_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  conn->stream.on_message = conn_message;
  conn->stream.on_closed = conn_closed;
  if (loop_stream_open(user, call, &conn->stream, conn_opened, true) != 0) {
    free(conn);
    rpc_call_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
}

static void fail_queries(job_hub *hub, hub_worker *worker);

static int close_conn_each(void *value, void *arg) {
  hub_worker *worker = value;
  job_hub *hub = arg;
  if (worker->conn != NULL) {
    /* Leases stay: after a restart the worker re-sends its results. */
    worker_conn *conn = worker->conn;
    conn->worker = NULL;
    worker->conn = NULL;
    core_stream_finish(hub, &conn->stream, RPC_STATUS_UNAVAILABLE,
                       "the hub is shutting down");
  }
  hub_end_pending_lease(hub, worker);
  return 0;
}

/* The stopping observer: Connect streams end UNAVAILABLE (their leases
 * stay), waiting Lease calls are answered empty, queries fail. */
static void workers_stopping(job_hub *hub, void *arg) {
  (void)arg;
  hub_each_worker(hub, close_conn_each, hub);
  fail_queries(hub, NULL);
}

/* Admin: List, Stats, Add, Delete. */

typedef struct pool_scan {
  hub_call *hc;
  uint32_t pool_id;
  uint32_t job_type_id;
  hub_worker *latest;
  int rv;
} pool_scan;

static int add_worker_each(void *value, void *arg) {
  hub_worker *worker = value;
  pool_scan *scan = arg;
  if (worker->pool_id != scan->pool_id) {
    return 0;
  }
  rpc_buffer packed;
  rpc_buffer_init(&packed);
  if (worker_pack(worker, &packed) != 0 ||
      pb_append_bytes_field(&scan->hc->answer, LIST_WORKERS_RESPONSE_WORKERS,
                            packed.data, packed.len) != 0) {
    scan->rv = -1;
  }
  rpc_buffer_free(&packed);
  return scan->rv;
}

static void run_list(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__ListWorkersRequest *request = hc->request;
  pool_scan scan = {hc, request->pool_id, 0, NULL, 0};
  if (hub_each_worker(hub, add_worker_each, &scan) != 0) {
    hub_call_fail(hub, hc, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  hub_call_answer(hub, hc);
}

static void list(rpc_call *call, const Jobhub__V1__ListWorkersRequest *request,
                 void *user) {
  hub_call_post(user, call, request, run_list, NULL, NULL, 0);
}

static int add_stats_each(void *value, void *arg) {
  hub_pool *pool = value;
  pool_scan *scan = arg;
  uint32_t pool_id, job_type_id;
  (void)pool_idx_unpack(pool->pool_idx, &pool_id, &job_type_id);
  if (pool_id != scan->pool_id) {
    return 0;
  }
  Jobhub__V1__JobTypeStats stats = JOBHUB__V1__JOB_TYPE_STATS__INIT;
  stats.pool_id = pool_id;
  stats.job_type_id = job_type_id;
  stats.workers = (uint32_t)pool->n_live;
  for (size_t i = 0; i < pool->n_live; i++) {
    stats.busy += pool->live[i]->running > 0;
  }
  stats.queued = pool->queued;
  stats.in_progress = pool->in_progress;
  stats.done = pool->done;
  stats.failed = pool->failed;
  stats.mean_run_seconds =
      pool->done > 0 ? pool->run_seconds / (double)pool->done : 0;
  rpc_buffer packed;
  rpc_buffer_init(&packed);
  if (pb_append_message(&packed, &stats.base) != 0 ||
      pb_append_bytes_field(&scan->hc->answer, WORKER_STATS_RESPONSE_JOB_TYPES,
                            packed.data, packed.len) != 0) {
    scan->rv = -1;
  }
  rpc_buffer_free(&packed);
  return scan->rv;
}

static void run_stats(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__WorkerStatsRequest *request = hc->request;
  pool_scan scan = {hc, request->pool_id, 0, NULL, 0};
  if (hub_each_pool(hub, add_stats_each, &scan) != 0) {
    hub_call_fail(hub, hc, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  hub_call_answer(hub, hc);
}

static void stats(rpc_call *call, const Jobhub__V1__WorkerStatsRequest *request,
                  void *user) {
  hub_call_post(user, call, request, run_stats, NULL, NULL, 0);
}

static void run_add(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__AddWorkerRequest *request = hc->request;
  rpc_status_code code;
  char why[200];
  hub_worker *worker =
      hub_worker_new(hub, 0, request->pool_id, &request->job_type_id, 1, &code,
                     why, sizeof(why));
  if (worker == NULL) {
    hub_call_fail(hub, hc, code, "%s", why);
    return;
  }
  worker->reserved = true;
  worker->port = request->port;
  if (request->worker_config != NULL) {
    worker->worker_config_size =
        google__protobuf__struct__get_packed_size(request->worker_config);
    worker->worker_config = malloc(worker->worker_config_size + 1);
  }
  if (set_text(&worker->hostname, request->hostname) != 0 ||
      (request->worker_config != NULL && worker->worker_config == NULL)) {
    hub_worker_remove(hub, worker);
    hub_call_fail(hub, hc, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  if (request->worker_config != NULL) {
    google__protobuf__struct__pack(request->worker_config,
                                   worker->worker_config);
  }
  if (worker_pack(worker, &hc->answer) != 0) {
    hub_call_fail(hub, hc, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  hub_call_answer(hub, hc);
}

static void add(rpc_call *call, const Jobhub__V1__AddWorkerRequest *request,
                void *user) {
  hub_call_post(user, call, request, run_add, NULL, NULL, 0);
}

static int find_latest_each(void *value, void *arg) {
  hub_worker *worker = value;
  pool_scan *scan = arg;
  if (worker->pool_id == scan->pool_id &&
      worker->job_type_ids[0] == scan->job_type_id && !worker->draining &&
      (scan->latest == NULL || worker->created > scan->latest->created)) {
    scan->latest = worker;
  }
  return 0;
}

static void run_delete(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__DeleteWorkerRequest *request = hc->request;
  pool_scan scan = {hc, request->pool_id, request->job_type_id, NULL, 0};
  hub_each_worker(hub, find_latest_each, &scan);
  hub_worker *worker = scan.latest;
  if (worker == NULL) {
    hub_call_fail(hub, hc, RPC_STATUS_NOT_FOUND,
                  "no worker in pool %u for job type %u", request->pool_id,
                  request->job_type_id);
    return;
  }
  /* It takes no new jobs; a connected one finishes what it runs. */
  worker->draining = true;
  hub_worker_set_live(hub, worker, false);
  if (worker_pack(worker, &hc->answer) != 0) {
    hub_call_fail(hub, hc, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  if (worker->conn != NULL) {
    Jobhub__V1__Drain drain = JOBHUB__V1__DRAIN__INIT;
    Jobhub__V1__HubMessage message = JOBHUB__V1__HUB_MESSAGE__INIT;
    message.message_case = JOBHUB__V1__HUB_MESSAGE__MESSAGE_DRAIN;
    message.drain = &drain;
    send_hub_message(hub, worker->conn, &message);
  } else if (worker->running == 0) {
    hub_worker_remove(hub, worker);
  }
  hub_call_answer(hub, hc);
}

static void delete_worker(rpc_call *call,
                          const Jobhub__V1__DeleteWorkerRequest *request,
                          void *user) {
  hub_call_post(user, call, request, run_delete, NULL, NULL, 0);
}

/* GetSubjectState: asked of the responsible worker over its stream. */

static void answer_query(job_hub *hub, const Jobhub__V1__SubjectState *state,
                         uint64_t worker_idx) {
  char *end = NULL;
  uint64_t query_id = strtoull(state->query_id, &end, 10);
  hub_call *hc =
      end != state->query_id ? hub_query_take(hub, query_id, worker_idx) : NULL;
  if (hc == NULL) {
    return; /* late, or not one of ours */
  }
  Jobhub__V1__SubjectState answer = *state;
  answer.worker_idx = worker_idx;
  if (pb_append_message(&hc->answer, &answer.base) != 0) {
    hub_call_fail(hub, hc, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  hub_call_answer(hub, hc);
}

static void on_query_timeout(struct ev_loop *loop, ev_timer *timer,
                             int events) {
  (void)loop;
  (void)events;
  hub_call *hc = timer->data;
  hc->timer_active = false;
  hub_query_forget(hc->hub, hc);
  hub_call_fail(hc->hub, hc, RPC_STATUS_DEADLINE_EXCEEDED,
                "worker %llu did not answer within %.0f s",
                (unsigned long long)hc->worker->worker_idx,
                SUBJECT_STATE_TIMEOUT);
}

/* Fails the queries waiting for worker (NULL: all of them). */
static void fail_queries(job_hub *hub, hub_worker *worker) {
  hub_call *hc;
  while ((hc = hub_query_take_of(hub, worker)) != NULL) {
    hub_call_fail(hub, hc, RPC_STATUS_UNAVAILABLE,
                  "the worker responsible for the subject left");
  }
}

static void run_subject_state(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__SubjectStateRequest *request = hc->request;
  uint32_t pool_idx;
  (void)pool_idx_pack(request->pool_id, request->job_type_id, &pool_idx);
  hub_pool *pool = hub_pool_get(hub, pool_idx, false);
  uint64_t worker_idx;
  hub_worker *worker = NULL;
  if (pool != NULL &&
      subject_router_lookup(pool->router, request->subject,
                            strlen(request->subject), &worker_idx) == 0) {
    worker = hub_find_worker(hub, worker_idx);
  }
  if (worker == NULL || worker->conn == NULL) {
    hub_call_fail(hub, hc, RPC_STATUS_UNAVAILABLE,
                  "no worker connected over Connect for pool %u, job type %u",
                  request->pool_id, request->job_type_id);
    return;
  }
  hc->worker = worker;
  (void)hub_query_wait(hub, hc, SUBJECT_STATE_TIMEOUT, on_query_timeout);
  char query_id[24];
  snprintf(query_id, sizeof(query_id), "%llu",
           (unsigned long long)hc->query_id);
  Jobhub__V1__SubjectStateQuery query = JOBHUB__V1__SUBJECT_STATE_QUERY__INIT;
  query.query_id = query_id;
  query.subject = request->subject;
  query.job_type_id = request->job_type_id;
  Jobhub__V1__HubMessage message = JOBHUB__V1__HUB_MESSAGE__INIT;
  message.message_case = JOBHUB__V1__HUB_MESSAGE__MESSAGE_SUBJECT_STATE_QUERY;
  message.subject_state_query = &query;
  send_hub_message(hub, worker->conn, &message);
}

static void subject_state(rpc_call *call,
                          const Jobhub__V1__SubjectStateRequest *request,
                          void *user) {
  if (request->pool_id > JOBHUB_ID_FIELD_MAX ||
      request->job_type_id > JOBHUB_ID_FIELD_MAX) {
    rpc_call_finishf(call, RPC_STATUS_INVALID_ARGUMENT,
                     "pool_id and job_type_id must be at most %u",
                     JOBHUB_ID_FIELD_MAX);
    return;
  }
  hub_call_post(user, call, request, run_subject_state, NULL, NULL, 0);
}

static const jobhub_v1_workers_handlers workers_handlers = {
    .register_ = register_worker,
    .connect = connect_worker,
    .lease = lease,
    .heartbeat = heartbeat,
    .progress = progress,
    .complete = complete,
    .fail = fail,
    .list = list,
    .stats = stats,
    .add = add,
    .delete = delete_worker,
    .get_subject_state = subject_state,
};

/* The worker_left observer: its queries cannot be answered any more. */
static void worker_left(job_hub *hub, hub_worker *worker, void *arg) {
  (void)arg;
  fail_queries(hub, worker);
}

int workers_service_add(rpc_server *server, job_hub *hub) {
  hub_observer observer = {.worker_left = worker_left,
                           .stopping = workers_stopping};
  if (jobhub_v1_workers_add_to_server(server, &workers_handlers, hub) != 0 ||
      hub_observe(hub, &observer) != 0) {
    return -1;
  }
  hub_set_worker_wire(hub, &worker_wire);
  return 0;
}
