/* services/worker_connect.c: Workers.Connect, a worker's stream (hello
 * and welcome, results acked once durable, heartbeats, progress, drain),
 * and GetSubjectState, asked of a connected worker over it. */
#include "server/services/worker_connect.h"

#include <stdio.h>
#include <stdlib.h>

#include "rpc/log.h"
#include "server/core/ids.h"
#include "server/core/leased_jobs.h"
#include "server/core/mailbox.h"
#include "server/core/observers.h"
#include "server/core/queries.h"
#include "server/core/registry.h"
#include "server/core/worker_sessions.h"
#include "server/services/worker_messages.h"

#define SUBJECT_STATE_TIMEOUT 5.0 /* s */

enum {
  HUB_MESSAGE_WELCOME = 1, /* HubMessage.welcome */
};

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
    worker_conn_send(hub, conn, &message);
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
  hub_worker_heard(worker);
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
    if (!worker_progress_valid(message->progress->progress)) {
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

void worker_connect(rpc_call *call, void *user) {
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
  job_hub *hub = arg;
  worker_conn *conn = hub_worker_stop(hub, value);
  if (conn != NULL) {
    core_stream_finish(hub, &conn->stream, RPC_STATUS_UNAVAILABLE,
                       "the hub is shutting down");
  }
  return 0;
}

/* The stopping observer: Connect streams end UNAVAILABLE (their leases
 * stay), waiting Lease calls are answered empty, queries fail. */
static void workers_stopping(job_hub *hub, void *arg) {
  (void)arg;
  hub_each_worker(hub, close_conn_each, hub);
  fail_queries(hub, NULL);
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
  worker_conn_send(hub, worker->conn, &message);
}

void worker_subject_state(rpc_call *call,
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

/* The worker_left observer: its queries cannot be answered any more. */
static void worker_left(job_hub *hub, hub_worker *worker, void *arg) {
  (void)arg;
  fail_queries(hub, worker);
}

int worker_connect_observe(job_hub *hub) {
  hub_observer observer = {.worker_left = worker_left,
                           .stopping = workers_stopping};
  return hub_observe(hub, &observer);
}
