/* worker_sessions.c: workers coming and going: Register, Lease's long
 * poll, Connect's hello and end, Add, Delete and drain. */
#include "server/core/worker_sessions.h"

#include <stdlib.h>
#include <string.h>

#include "rpc/log.h"
#include "server/core/dispatch.h"
#include "server/core/ids.h"
#include "server/core/leases.h"
#include "server/core/penalties.h"

/* The longest wait of a Lease call, and the most jobs it gets. */
#define MAX_WAIT_MS 60000
#define MAX_LEASE_JOBS 1000

static void out_of_memory(hub_refusal *why) {
  why->code = RPC_STATUS_RESOURCE_EXHAUSTED;
  strcpy(why->message, "out of memory");
}

static hub_worker *new_worker(job_hub *hub, uint64_t worker_idx,
                              uint32_t pool_id, const uint32_t *job_type_ids,
                              size_t n, hub_refusal *why) {
  return hub_worker_new(hub, worker_idx, pool_id, job_type_ids, n, &why->code,
                        why->message, sizeof(why->message));
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

hub_worker *hub_register_worker(job_hub *hub,
                                const Jobhub__V1__RegisterRequest *request,
                                hub_refusal *why) {
  hub_worker *worker =
      new_worker(hub, 0, request->pool_id, request->job_type_ids,
                 request->n_job_type_ids, why);
  if (worker == NULL) {
    return NULL;
  }
  if (job_record_set_text(&worker->client_id, request->client_id) != 0 ||
      job_record_set_text(&worker->hostname, request->hostname) != 0) {
    hub_worker_remove(hub, worker);
    out_of_memory(why);
    return NULL;
  }
  worker->capacity = capped(hub, worker, request->capacity, "capacity");
  hub_worker_set_live(hub, worker, true);
  return worker;
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

/* The worker a Lease call polls for, or NULL after failing hc. */
static hub_worker *polling_worker(job_hub *hub, hub_call *hc,
                                  const Jobhub__V1__LeaseRequest *request) {
  hub_worker *worker = NULL;
  if (request->worker_idx != 0) {
    worker = hub_find_worker(hub, request->worker_idx);
    if (worker == NULL) {
      hub_call_fail(hub, hc, RPC_STATUS_NOT_FOUND,
                    "no worker with worker_idx %llu",
                    (unsigned long long)request->worker_idx);
      return NULL;
    }
    if (worker->client_id != NULL &&
        strcmp(worker->client_id, request->client_id) != 0) {
      hub_call_fail(hub, hc, RPC_STATUS_PERMISSION_DENIED,
                    "worker_idx %llu belongs to another client_id",
                    (unsigned long long)request->worker_idx);
      return NULL;
    }
  } else if (request->n_job_type_ids > 0) {
    client_search search = {request->client_id, request->pool_id,
                            request->job_type_ids[0], NULL};
    hub_each_worker(hub, match_client, &search);
    worker = search.found;
  }
  if (worker == NULL) {
    hub_refusal why;
    worker = new_worker(hub, 0, request->pool_id, request->job_type_ids,
                        request->n_job_type_ids, &why);
    if (worker == NULL) {
      hub_call_fail(hub, hc, why.code, "%s", why.message);
      return NULL;
    }
    if (job_record_set_text(&worker->client_id, request->client_id) != 0) {
      hub_worker_remove(hub, worker);
      hub_call_fail(hub, hc, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      return NULL;
    }
  }
  if (worker->conn != NULL) {
    hub_call_fail(hub, hc, RPC_STATUS_FAILED_PRECONDITION,
                  "worker %llu is connected over Connect; it gets its jobs "
                  "there",
                  (unsigned long long)worker->worker_idx);
    return NULL;
  }
  return worker;
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

void hub_lease_poll(job_hub *hub, hub_call *hc) {
  const Jobhub__V1__LeaseRequest *request = hc->request;
  hub_worker *worker = polling_worker(hub, hc, request);
  if (worker == NULL) {
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

hub_worker *hub_connect_worker(job_hub *hub, worker_conn *conn,
                               const Jobhub__V1__WorkerHello *hello) {
  if (hello->client_id[0] == '\0') {
    core_stream_finish(hub, &conn->stream, RPC_STATUS_UNAUTHENTICATED,
                       "hello.client_id is missing");
    return NULL;
  }
  hub_worker *worker =
      hello->worker_idx != 0 ? hub_find_worker(hub, hello->worker_idx) : NULL;
  if (worker == NULL) {
    hub_refusal why;
    worker = new_worker(hub, hello->worker_idx, hello->pool_id,
                        hello->job_type_ids, hello->n_job_type_ids, &why);
    if (worker == NULL) {
      core_stream_finish(hub, &conn->stream, why.code, why.message);
      return NULL;
    }
  } else if (worker->client_id != NULL &&
             strcmp(worker->client_id, hello->client_id) != 0) {
    /* Its leases are bound to the client that holds the worker_idx. */
    core_stream_finish(hub, &conn->stream, RPC_STATUS_PERMISSION_DENIED,
                       "worker_idx belongs to another client_id");
    return NULL;
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
  if (job_record_set_text(&worker->client_id, hello->client_id) != 0 ||
      (hello->hostname[0] != '\0' &&
       job_record_set_text(&worker->hostname, hello->hostname) != 0)) {
    core_stream_finish(hub, &conn->stream, RPC_STATUS_RESOURCE_EXHAUSTED,
                       "out of memory");
    return NULL;
  }
  worker->capacity = capped(hub, worker, hello->capacity, "capacity");
  hub_penalty_apply(hub, worker);
  /* Leases it still holds from before (a hub restart recovered them with
   * no holder): its again, so they count toward its capacity. */
  for (size_t i = 0; i < hello->n_resend_lease_ids; i++) {
    hub_reattach_lease(hub, worker, hello->resend_lease_ids[i]);
  }
  return worker;
}

void hub_worker_welcomed(job_hub *hub, hub_worker *worker) {
  if (worker->paused_until_us == 0) {
    hub_worker_set_live(hub, worker, true); /* then assignments follow */
  } /* else out of the routing tables until the pause is over */
}

void hub_worker_disconnected(job_hub *hub, hub_worker *worker) {
  worker->conn = NULL;
  /* Out of the routing tables first: its subject jobs go back to the
   * shared queue rather than to it. */
  hub_worker_set_live(hub, worker, false);
  uint32_t dropped = hub_requeue_unacknowledged(hub, worker);
  hub_penalty_note_stream_end(hub, worker, dropped);
  hub_worker_remove(hub, worker); /* its other jobs go back at once */
}

void hub_worker_heard(hub_worker *worker) {
  worker->last_seen_us = time_now_us();
}

worker_conn *hub_worker_stop(job_hub *hub, hub_worker *worker) {
  worker_conn *conn = worker->conn;
  if (conn != NULL) {
    conn->worker = NULL;
    worker->conn = NULL;
  }
  hub_end_pending_lease(hub, worker);
  return conn;
}

/* The job type of an Add: job_type_id, or when that is 0 the Enodo hub's
 * worker_config.job_type_id (SPEC: the Enodo paths keep Enodo's meaning),
 * when it is a whole number in range. */
static uint32_t added_job_type(const Jobhub__V1__AddWorkerRequest *request) {
  const Google__Protobuf__Struct *config = request->worker_config;
  for (size_t i = 0;
       request->job_type_id == 0 && config != NULL && i < config->n_fields;
       i++) {
    const Google__Protobuf__Value *value = config->fields[i]->value;
    if (strcmp(config->fields[i]->key, "job_type_id") == 0 && value != NULL &&
        value->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE &&
        value->number_value >= 0 && value->number_value <= UINT32_MAX &&
        value->number_value == (double)(uint32_t)value->number_value) {
      return (uint32_t)value->number_value;
    }
  }
  return request->job_type_id;
}

hub_worker *hub_add_reserved_worker(job_hub *hub,
                                    const Jobhub__V1__AddWorkerRequest *request,
                                    hub_refusal *why) {
  uint32_t job_type_id = added_job_type(request);
  hub_worker *worker =
      new_worker(hub, 0, request->pool_id, &job_type_id, 1, why);
  if (worker == NULL) {
    return NULL;
  }
  worker->reserved = true;
  worker->port = request->port;
  if (request->worker_config != NULL) {
    worker->worker_config_size =
        google__protobuf__struct__get_packed_size(request->worker_config);
    worker->worker_config = malloc(worker->worker_config_size + 1);
  }
  if (job_record_set_text(&worker->hostname, request->hostname) != 0 ||
      (request->worker_config != NULL && worker->worker_config == NULL)) {
    hub_worker_remove(hub, worker);
    out_of_memory(why);
    return NULL;
  }
  if (request->worker_config != NULL) {
    google__protobuf__struct__pack(request->worker_config,
                                   worker->worker_config);
  }
  return worker;
}

typedef struct latest_search {
  uint32_t pool_id;
  uint32_t job_type_id;
  hub_worker *latest;
} latest_search;

static int find_latest_each(void *value, void *arg) {
  hub_worker *worker = value;
  latest_search *search = arg;
  if (worker->pool_id == search->pool_id &&
      worker->job_type_ids[0] == search->job_type_id && !worker->draining &&
      (search->latest == NULL || worker->created > search->latest->created)) {
    search->latest = worker;
  }
  return 0;
}

hub_worker *hub_latest_worker(job_hub *hub, uint32_t pool_id,
                              uint32_t job_type_id) {
  latest_search search = {pool_id, job_type_id, NULL};
  hub_each_worker(hub, find_latest_each, &search);
  return search.latest;
}

void hub_drain_worker(job_hub *hub, hub_worker *worker) {
  worker->draining = true;
  hub_worker_set_live(hub, worker, false);
}

void hub_remove_idle_worker(job_hub *hub, hub_worker *worker) {
  if (worker->conn == NULL && worker->running == 0) {
    hub_worker_remove(hub, worker);
  }
}

hub_worker *hub_subject_worker(job_hub *hub, uint32_t pool_id,
                               uint32_t job_type_id, const char *subject) {
  uint32_t pool_idx;
  (void)pool_idx_pack(pool_id, job_type_id, &pool_idx);
  hub_pool *pool = hub_pool_get(hub, pool_idx, false);
  uint64_t worker_idx;
  hub_worker *worker = NULL;
  if (pool != NULL &&
      subject_router_lookup(pool->router, subject, strlen(subject),
                            &worker_idx) == 0) {
    worker = hub_find_worker(hub, worker_idx);
  }
  return worker != NULL && worker->conn != NULL ? worker : NULL;
}
