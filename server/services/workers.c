/* services/workers.c: jobhub.v1.Workers: registration, the unary worker
 * calls (Lease, Heartbeat, Progress, Complete, Fail) and the admin calls;
 * Connect and GetSubjectState are worker_connect.c's. Each handler
 * decodes, posts to the core (server/core/leased_jobs.h,
 * worker_sessions.h), and encodes the answer. */
#include "server/services/workers.h"

#include <string.h>

#include "jobhub/v1/workers.rpc.h"
#include "rpc/log.h"
#include "server/core/ids.h"
#include "server/core/leased_jobs.h"
#include "server/core/mailbox.h"
#include "server/core/registry.h"
#include "server/core/worker_sessions.h"
#include "server/services/worker_connect.h"
#include "server/services/worker_messages.h"

/* Field numbers of proto/jobhub/v1/workers.proto that answers are put
 * together with from bytes packed before (protobuf-c names none). */
enum {
  LIST_WORKERS_RESPONSE_WORKERS = 1,   /* ListWorkersResponse.workers */
  HEARTBEAT_RESPONSE_CANCELLED = 1,    /* HeartbeatResponse.cancelled_job_ids */
  WORKER_STATS_RESPONSE_JOB_TYPES = 1, /* WorkerStatsResponse.job_types */
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
  if (!worker_progress_valid(request->progress)) {
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
                           request->client_id, NULL, request->table};
  hub_refusal why;
  job_record *job =
      hub_complete_leased_job(hub, &claim, request->result,
                              answer_job_when_stored, hc, &hc->undo, &why);
  answer_finished(hub, hc, job, &why);
}

static void run_fail(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__FailRequest *request = hc->request;
  hub_lease_claim claim = {request->job_id, request->lease_id,
                           request->client_id, NULL, request->table};
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

/* Answers hc with worker as a Worker, or (worker NULL) fails it with
 * why. */
static void answer_worker(job_hub *hub, hub_call *hc, const hub_worker *worker,
                          const hub_refusal *why) {
  if (worker == NULL) {
    hub_call_fail(hub, hc, why->code, "%s", why->message);
  } else if (worker_pack(worker, &hc->answer) != 0) {
    hub_call_fail(hub, hc, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  } else {
    hub_call_answer(hub, hc);
  }
}

static void run_register(job_hub *hub, hub_call *hc) {
  hub_refusal why;
  answer_worker(hub, hc, hub_register_worker(hub, hc->request, &why), &why);
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

/* Admin: List, Stats, Add, Delete. */

typedef struct pool_scan {
  hub_call *hc;
  uint32_t pool_id;
  int rv;
} pool_scan;

/* Appends to scan's answer, as its field field, the message packed holds
 * (packed_rv -1: it could not be packed), and frees packed. Returns
 * scan->rv: -1 once out of memory (the scan stops). */
static int scan_add(pool_scan *scan, uint32_t field, rpc_buffer *packed,
                    int packed_rv) {
  if (packed_rv != 0 || pb_append_bytes_field(&scan->hc->answer, field,
                                              packed->data, packed->len) != 0) {
    scan->rv = -1;
  }
  rpc_buffer_free(packed);
  return scan->rv;
}

/* Answers hc, filled by a scan of the hub that returned rv. */
static void answer_scanned(job_hub *hub, hub_call *hc, int rv) {
  if (rv != 0) {
    hub_call_fail(hub, hc, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  hub_call_answer(hub, hc);
}

static int add_worker_each(void *value, void *arg) {
  hub_worker *worker = value;
  pool_scan *scan = arg;
  if (worker->pool_id != scan->pool_id) {
    return 0;
  }
  rpc_buffer packed;
  rpc_buffer_init(&packed);
  return scan_add(scan, LIST_WORKERS_RESPONSE_WORKERS, &packed,
                  worker_pack(worker, &packed));
}

static void run_list(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__ListWorkersRequest *request = hc->request;
  pool_scan scan = {hc, request->pool_id, 0};
  answer_scanned(hub, hc, hub_each_worker(hub, add_worker_each, &scan));
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
  return scan_add(scan, WORKER_STATS_RESPONSE_JOB_TYPES, &packed,
                  pb_append_message(&packed, &stats.base));
}

static void run_stats(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__WorkerStatsRequest *request = hc->request;
  pool_scan scan = {hc, request->pool_id, 0};
  answer_scanned(hub, hc, hub_each_pool(hub, add_stats_each, &scan));
}

static void stats(rpc_call *call, const Jobhub__V1__WorkerStatsRequest *request,
                  void *user) {
  hub_call_post(user, call, request, run_stats, NULL, NULL, 0);
}

static void run_add(job_hub *hub, hub_call *hc) {
  hub_refusal why;
  answer_worker(hub, hc, hub_add_reserved_worker(hub, hc->request, &why), &why);
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
    worker_conn_send(hub, worker->conn, &message);
  }
  hub_remove_idle_worker(hub, worker);
  hub_call_answer(hub, hc);
}

static void delete_worker(rpc_call *call,
                          const Jobhub__V1__DeleteWorkerRequest *request,
                          void *user) {
  hub_call_post(user, call, request, run_delete, NULL, NULL, 0);
}

static const jobhub_v1_workers_handlers workers_handlers = {
    .register_ = register_worker,
    .connect = worker_connect,
    .lease = lease,
    .heartbeat = heartbeat,
    .progress = progress,
    .complete = complete,
    .fail = fail,
    .list = list,
    .stats = stats,
    .add = add,
    .delete = delete_worker,
    .get_subject_state = worker_subject_state,
};

int workers_service_add(rpc_server *server, job_hub *hub) {
  if (jobhub_v1_workers_add_to_server(server, &workers_handlers, hub) != 0 ||
      worker_connect_observe(hub) != 0) {
    return -1;
  }
  hub_set_worker_wire(hub, &worker_wire_encoders);
  return 0;
}
