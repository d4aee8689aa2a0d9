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
#include "server/core/leased_jobs.h"
#include "server/core/leases.h"
#include "server/core/mailbox.h"
#include "server/core/observers.h"
#include "server/core/penalties.h"
#include "server/core/persist.h"
#include "server/core/queries.h"
#include "server/core/registry.h"
#include "server/core/worker_sessions.h"
#include "server/core/worker_wire.h"

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

/* Unary calls: the client id is their credential. */

static bool client_missing(rpc_call *call, const char *client_id) {
  if (client_id[0] == '\0') {
    rpc_call_finish(call, RPC_STATUS_UNAUTHENTICATED,
                    "client_id is missing: workers identify themselves");
    return true;
  }
  return false;
}

static void answer_job_when_stored(int status, void *arg) {
  hub_call *hc = arg;
  if (status != 0) {
    hub_refusal why;
    hub_lease_outcome_failed(hc->hub, hc->job->id, hc->job, &hc->undo, status,
                             &why);
    hub_call_fail(hc->hub, hc, why.code, "%s", why.message);
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
  hub_lease_claim claim = {request->job_id, request->lease_id,
                           request->client_id, NULL};
  hub_refusal why;
  job_record *job = hub_progress_leased_job(hub, &claim, request->progress,
                                            request->message, &why);
  if (job == NULL) {
    hub_call_fail(hub, hc, why.code, "%s", why.message);
    return;
  }
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

/* Answers hc with the job (job, or NULL with why) of a Complete or Fail
 * once its outcome is durable. */
static void answer_finished(job_hub *hub, hub_call *hc, job_record *job,
                            const hub_refusal *why) {
  if (job == NULL) {
    hub_call_fail(hub, hc, why->code, "%s", why->message);
    return;
  }
  hc->job = job; /* answer_job_when_stored runs later, on the core */
  (void)job_record_pack(job, &hc->answer);
}

static void run_complete(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__CompleteRequest *request = hc->request;
  hub_lease_claim claim = {request->job_id, request->lease_id,
                           request->client_id, NULL};
  hub_refusal why;
  job_record *job =
      hub_complete_leased_job(hub, &claim, request->result,
                              answer_job_when_stored, hc, &hc->undo, &why);
  answer_finished(hub, hc, job, &why);
}

static void run_fail(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__FailRequest *request = hc->request;
  hub_lease_claim claim = {request->job_id, request->lease_id,
                           request->client_id, NULL};
  hub_refusal why;
  job_record *job =
      hub_fail_leased_job(hub, &claim, request->error, request->retryable,
                          answer_job_when_stored, hc, &hc->undo, &why);
  answer_finished(hub, hc, job, &why);
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

static int add_cancelled(const char *job_id, void *arg) {
  hub_call *hc = arg;
  return pb_append_bytes_field(&hc->answer, HEARTBEAT_RESPONSE_CANCELLED,
                               job_id, strlen(job_id));
}

static void run_heartbeat(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__HeartbeatRequest *request = hc->request;
  hub_refusal why;
  if (hub_heartbeat_leases(hub, request->lease_ids, request->n_lease_ids,
                           request->client_id, add_cancelled, hc, &why) != 0) {
    hub_call_fail(hub, hc, why.code, "%s", why.message);
    return;
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

static void run_register(job_hub *hub, hub_call *hc) {
  hub_refusal why;
  hub_worker *worker = hub_register_worker(hub, hc->request, &why);
  if (worker == NULL) {
    hub_call_fail(hub, hc, why.code, "%s", why.message);
    return;
  }
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
    hub_requeue_undelivered_lease(hub, response->assignments[i]->lease_id);
  }
  jobhub__v1__lease_response__free_unpacked(response, NULL);
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
  hub_call_post(user, call, request, hub_lease_poll, lease_undelivered, NULL,
                0);
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
  hub_worker *worker = hub_connect_worker(hub, conn, hello);
  if (worker == NULL) {
    return; /* the stream was finished */
  }
  rpc_buffer welcome;
  rpc_buffer_init(&welcome);
  rpc_buffer message;
  rpc_buffer_init(&message);
  /* Leases it still holds from before (a hub restart recovered them with
   * no holder): its again, so they count toward its capacity. */
  for (size_t i = 0; i < hello->n_resend_lease_ids; i++) {
    hub_reattach_lease(hub, worker, hello->resend_lease_ids[i]);
  }
  if (worker_pack(worker, &welcome) != 0 ||
      pb_append_bytes_field(&message, HUB_MESSAGE_WELCOME, welcome.data,
                            welcome.len) != 0 ||
      core_stream_send(hub, &conn->stream, message.data, message.len) != 0) {
    core_stream_finish(hub, &conn->stream, RPC_STATUS_RESOURCE_EXHAUSTED,
                       "out of memory");
  } else {
    hub_worker_welcomed(hub, worker);
  }
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
  hub_refusal why = {RPC_STATUS_OK, ""};
  if (status != 0) {
    hub_lease_outcome_failed(hub, wait->job_id, wait->job, &wait->undo, status,
                             &why);
  }
  hub_undo_free(&wait->undo);
  send_result_ack(hub, conn, wait->job_id, wait->lease_id, why.code,
                  why.message);
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
                          hub_refusal *why) {
  result_ack_wait *wait = calloc(1, sizeof(*wait)); /* undo: none yet */
  if (wait == NULL) {
    *why = (hub_refusal){RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory"};
    send_result_ack(hub, conn, job_id, lease_id, why->code, why->message);
    return;
  }
  hub_lease_claim claim = {job_id, lease_id, NULL, conn->worker};
  job_record *job =
      failure == NULL
          ? hub_complete_leased_job(hub, &claim, result, ack_when_stored, wait,
                                    &wait->undo, why)
          : hub_fail_leased_job(hub, &claim, failure->error, failure->retryable,
                                ack_when_stored, wait, &wait->undo, why);
  if (job == NULL) {
    hub_undo_free(&wait->undo);
    free(wait);
    send_result_ack(hub, conn, job_id, lease_id, why->code, why->message);
    return;
  }
  /* ack_when_stored runs later, on the core. */
  wait->hub = hub;
  wait->conn = conn;
  wait->job = job;
  snprintf(wait->job_id, sizeof(wait->job_id), "%s", job->id);
  lease_id_format(job, wait->lease_id);
  conn->acks_owed++;
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
  hub_refusal why = {RPC_STATUS_OK, ""};
  hub_lease_claim claim = {"", NULL, NULL, worker};
  switch (message->message_case) {
  case JOBHUB__V1__WORKER_MESSAGE__MESSAGE_HEARTBEAT:
    for (size_t i = 0; i < message->heartbeat->n_lease_ids; i++) {
      claim.lease_id = message->heartbeat->lease_ids[i];
      (void)hub_heartbeat_leased_job(hub, &claim, &why);
    }
    break;
  case JOBHUB__V1__WORKER_MESSAGE__MESSAGE_STARTED:
    for (size_t i = 0; i < message->started->n_lease_ids; i++) {
      claim.lease_id = message->started->lease_ids[i];
      (void)hub_start_leased_job(hub, &claim, &why);
    }
    break;
  case JOBHUB__V1__WORKER_MESSAGE__MESSAGE_PROGRESS:
    if (!progress_valid(message->progress->progress)) {
      why.code = RPC_STATUS_INVALID_ARGUMENT;
      snprintf(why.message, sizeof(why.message), "progress %g is not in [0, 1]",
               message->progress->progress);
      break;
    }
    claim.job_id = message->progress->job_id;
    claim.lease_id = message->progress->lease_id;
    (void)hub_progress_leased_job(hub, &claim, message->progress->progress,
                                  message->progress->message, &why);
    break;
  case JOBHUB__V1__WORKER_MESSAGE__MESSAGE_RESULT:
    settle_result(hub, conn, message->result->job_id, message->result->lease_id,
                  message->result->result, NULL, &why);
    break;
  case JOBHUB__V1__WORKER_MESSAGE__MESSAGE_ERROR:
    settle_result(hub, conn, message->error->job_id, message->error->lease_id,
                  NULL, message->error, &why);
    break;
  case JOBHUB__V1__WORKER_MESSAGE__MESSAGE_SUBJECT_STATE:
    answer_query(hub, message->subject_state, worker->worker_idx);
    break;
  case JOBHUB__V1__WORKER_MESSAGE__MESSAGE_DRAIN:
    hub_drain_worker(hub, worker);
    break;
  default:
    break; /* a second hello, or a newer kind: nothing to do */
  }
  if (why.code != RPC_STATUS_OK &&
      message->message_case != JOBHUB__V1__WORKER_MESSAGE__MESSAGE_HELLO &&
      message->message_case !=
          JOBHUB__V1__WORKER_MESSAGE__MESSAGE_SUBJECT_STATE) {
    rpc_log(RPC_LOG_DEBUG, "worker_message_refused",
            "worker_idx=%llu reason=\"%s\"",
            (unsigned long long)worker->worker_idx, why.message);
  }
}

static void conn_closed(job_hub *hub, core_stream *stream) {
  worker_conn *conn = (worker_conn *)stream;
  hub_worker *worker = conn->worker;
  if (worker != NULL) {
    conn->worker = NULL;
    hub_worker_disconnected(hub, worker);
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
  pool_scan scan = {hc, request->pool_id, 0};
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
  pool_scan scan = {hc, request->pool_id, 0};
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
  hub_refusal why;
  hub_worker *worker = hub_add_reserved_worker(hub, hc->request, &why);
  if (worker == NULL) {
    hub_call_fail(hub, hc, why.code, "%s", why.message);
    return;
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

static void run_delete(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__DeleteWorkerRequest *request = hc->request;
  hub_worker *worker =
      hub_latest_worker(hub, request->pool_id, request->job_type_id);
  if (worker == NULL) {
    hub_call_fail(hub, hc, RPC_STATUS_NOT_FOUND,
                  "no worker in pool %u for job type %u", request->pool_id,
                  request->job_type_id);
    return;
  }
  /* It takes no new jobs; a connected one finishes what it runs. */
  hub_drain_worker(hub, worker);
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
  }
  hub_remove_idle_worker(hub, worker);
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
  hub_worker *worker = hub_subject_worker(
      hub, request->pool_id, request->job_type_id, request->subject);
  if (worker == NULL) {
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
