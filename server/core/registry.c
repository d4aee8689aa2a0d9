/* registry.c: workers and their routing: pools, registration, going
 * live or leaving (sticky subjects routed again), pauses of flapping
 * workers, the Worker message, and housekeeping of silent workers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/log.h"
#include "server/core/dispatch.h"
#include "server/core/hub_state.h"
#include "server/core/ids.h"
#include "server/core/job_table.h"
#include "server/core/leases.h"
#include "server/core/mailbox.h"
#include "server/core/penalties.h"
#include "server/core/persist.h"
#include "server/core/registry.h"
#include "server/core/watchers.h"

static bool pool_has_idx(const void *value, const void *key) {
  return ((const hub_pool *)value)->pool_idx == *(const uint32_t *)key;
}

hub_pool *hub_pool_get(job_hub *hub, uint32_t pool_idx, bool create) {
  hub_pool *pool =
      hash_table_find(hub->pools, hash_u64(pool_idx), pool_has_idx, &pool_idx);
  if (pool != NULL || !create) {
    return pool;
  }
  pool = calloc(1, sizeof(*pool));
  if (pool == NULL || (pool->router = subject_router_new()) == NULL ||
      hash_table_insert(hub->pools, hash_u64(pool_idx), pool) != 0) {
    if (pool != NULL) {
      subject_router_free(pool->router);
    }
    free(pool);
    return NULL;
  }
  pool->pool_idx = pool_idx;
  return pool;
}

static bool worker_has_idx(const void *value, const void *key) {
  return ((const hub_worker *)value)->worker_idx == *(const uint64_t *)key;
}

hub_worker *hub_find_worker(job_hub *hub, uint64_t worker_idx) {
  return hash_table_find(hub->workers, hash_u64(worker_idx), worker_has_idx,
                         &worker_idx);
}

/* Workers. */

int hub_each_worker(job_hub *hub, int (*fn)(void *worker, void *arg),
                    void *arg) {
  return hash_table_each(hub->workers, fn, arg);
}

int hub_each_pool(job_hub *hub, int (*fn)(void *pool, void *arg), void *arg) {
  return hash_table_each(hub->pools, fn, arg);
}

hub_worker *hub_worker_new(job_hub *hub, uint64_t worker_idx, uint32_t pool_id,
                           const uint32_t *job_type_ids, size_t n,
                           rpc_status_code *code, char *why, size_t why_size) {
  *code = RPC_STATUS_INVALID_ARGUMENT;
  if (n == 0) {
    snprintf(why, why_size,
             "job_type_ids is empty: a worker serves at "
             "least one job type");
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    uint32_t pool_idx;
    if (pool_idx_pack(pool_id, job_type_ids[i], &pool_idx) != 0) {
      snprintf(why, why_size, "pool_id %u or job_type_id %u is over %u",
               pool_id, job_type_ids[i], JOBHUB_ID_FIELD_MAX);
      return NULL;
    }
  }
  if (worker_idx != 0) {
    uint32_t idx_pool, idx_type, idx_id;
    if (worker_idx_unpack(worker_idx, &idx_pool, &idx_type, &idx_id) != 0 ||
        idx_pool != pool_id || idx_type != job_type_ids[0] || idx_id == 0) {
      snprintf(why, why_size,
               "worker_idx %llu does not pack pool_id %u and job_type_id %u",
               (unsigned long long)worker_idx, pool_id, job_type_ids[0]);
      return NULL;
    }
    if (hub_find_worker(hub, worker_idx) != NULL) {
      *code = RPC_STATUS_ALREADY_EXISTS;
      snprintf(why, why_size, "worker_idx %llu is taken",
               (unsigned long long)worker_idx);
      return NULL;
    }
  } else {
    for (uint32_t id = 1; id <= JOBHUB_ID_FIELD_MAX; id++) {
      uint64_t candidate;
      (void)worker_idx_pack(pool_id, job_type_ids[0], id, &candidate);
      if (hub_find_worker(hub, candidate) == NULL) {
        worker_idx = candidate;
        break;
      }
    }
    if (worker_idx == 0) {
      *code = RPC_STATUS_RESOURCE_EXHAUSTED;
      snprintf(why, why_size, "pool %u, job type %u has %u workers already",
               pool_id, job_type_ids[0], JOBHUB_ID_FIELD_MAX);
      return NULL;
    }
  }
  *code = RPC_STATUS_RESOURCE_EXHAUSTED;
  snprintf(why, why_size, "out of memory");
  hub_worker *worker = calloc(1, sizeof(*worker));
  if (worker == NULL) {
    return NULL;
  }
  worker->job_type_ids = malloc(n * sizeof(uint32_t));
  worker->sticky = job_queue_new();
  if (worker->job_type_ids == NULL || worker->sticky == NULL ||
      hash_table_insert(hub->workers, hash_u64(worker_idx), worker) != 0) {
    job_queue_free(worker->sticky);
    free(worker->job_type_ids);
    free(worker);
    return NULL;
  }
  memcpy(worker->job_type_ids, job_type_ids, n * sizeof(uint32_t));
  worker->n_job_types = n;
  worker->worker_idx = worker_idx;
  worker->pool_id = pool_id;
  worker->capacity = 1;
  worker->last_seen_us = time_now_us();
  worker->created = ++hub->workers_created;
  *code = RPC_STATUS_OK;
  hub_notify_worker_joined(hub, worker);
  return worker;
}

/* Rebuilds a pool's table after its live set changed; subject jobs
 * already routed go back to the shared queue to be routed again. */
static void reroute_pool(job_hub *hub, hub_pool *pool, hub_worker *leaving) {
  uint64_t *idxs = malloc((pool->n_live + 1) * sizeof(uint64_t));
  if (idxs == NULL) {
    rpc_log(RPC_LOG_ERROR, "reroute_failed", "error=\"out of memory\"");
    return;
  }
  for (size_t i = 0; i < pool->n_live; i++) {
    idxs[i] = pool->live[i]->worker_idx;
  }
  if (subject_router_set_workers(pool->router, idxs, pool->n_live) != 0) {
    rpc_log(RPC_LOG_ERROR, "reroute_failed", "pool_idx=%u", pool->pool_idx);
  }
  free(idxs);
  int64_t now = time_now_us();
  for (size_t i = 0; i <= pool->n_live; i++) {
    hub_worker *w = i < pool->n_live ? pool->live[i] : leaving;
    job_queue_entry *e;
    while (w != NULL &&
           (e = job_queue_pop(w->sticky, pool->pool_idx)) != NULL) {
      if (hub_queue_push(hub->queue, JOB_OF_ENTRY(e), now) != 0) {
        rpc_log(RPC_LOG_ERROR, "queue_push_failed", "job=%s",
                JOB_OF_ENTRY(e)->id);
      }
    }
    if (i < pool->n_live) {
      hub_wake_worker(hub, pool->live[i]);
    }
  }
}

void hub_worker_set_live(job_hub *hub, hub_worker *worker, bool live) {
  if (worker->live == live) {
    return;
  }
  worker->live = live;
  for (size_t t = 0; t < worker->n_job_types; t++) {
    uint32_t pool_idx;
    (void)pool_idx_pack(worker->pool_id, worker->job_type_ids[t], &pool_idx);
    hub_pool *pool = hub_pool_get(hub, pool_idx, true);
    if (pool == NULL) {
      continue;
    }
    if (live) {
      if (pool->n_live == pool->live_capacity) {
        size_t capacity = pool->live_capacity ? pool->live_capacity * 2 : 8;
        hub_worker **grown = realloc(pool->live, capacity * sizeof(*grown));
        if (grown == NULL) {
          continue;
        }
        pool->live = grown;
        pool->live_capacity = capacity;
      }
      pool->live[pool->n_live++] = worker;
      reroute_pool(hub, pool, NULL);
    } else {
      for (size_t i = 0; i < pool->n_live; i++) {
        if (pool->live[i] == worker) {
          pool->live[i] = pool->live[--pool->n_live];
          break;
        }
      }
      reroute_pool(hub, pool, worker);
    }
  }
  if (live) {
    hub_wake_worker(hub, worker);
  }
}

static void on_pause_over(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  hub_worker *worker = timer->data;
  job_hub *hub = worker->pause_hub;
  worker->paused_until_us = 0;
  /* A paused Connect worker stays out of the routing tables, so that no
   * subject's jobs wait for it. */
  if (worker->conn != NULL && !worker->draining) {
    hub_worker_set_live(hub, worker, true);
  }
  hub_wake_worker(hub, worker);
}

void hub_worker_pause(job_hub *hub, hub_worker *worker, int64_t until_us) {
  int64_t wait_us = until_us - time_now_us();
  if (wait_us <= 0) {
    return;
  }
  if (ev_is_active(&worker->pause_timer)) {
    ev_timer_stop(hub->loop, &worker->pause_timer);
  }
  worker->paused_until_us = until_us;
  worker->pause_hub = hub;
  ev_timer_init(&worker->pause_timer, on_pause_over, (double)wait_us / 1e6, 0);
  worker->pause_timer.data = worker;
  ev_timer_start(hub->loop, &worker->pause_timer);
}

static void worker_free(hub_worker *worker) {
  if (ev_is_active(&worker->pause_timer)) {
    ev_timer_stop(worker->pause_hub->loop, &worker->pause_timer);
  }
  job_queue_free(worker->sticky);
  free(worker->job_type_ids);
  free(worker->client_id);
  free(worker->hostname);
  free(worker->worker_config);
  free(worker);
}

void hub_worker_remove(job_hub *hub, hub_worker *worker) {
  hub_worker_set_live(hub, worker, false);
  /* Its jobs go back at once (SPEC: a worker that left holds nothing). */
  while (worker->running_jobs != NULL) {
    job_record *job = worker->running_jobs;
    hub_release_lease(hub, job);
    int from = job->state;
    if (job->attempts < job->max_attempts) {
      hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__QUEUED);
      hub_save_quietly(hub, job, from, "hub", "worker left");
      hub_requeue(hub, job, 0);
    } else {
      job->finished_us = time_now_us();
      (void)job_record_set_text(&job->error,
                                "worker left during the last attempt");
      hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__FAILED);
      hub_save_quietly(hub, job, from, "hub",
                       "worker left on the last attempt");
    }
    hub_notify(hub, job, from);
  }
  hub_unschedule_pump(hub, worker);
  hub_end_pending_lease(hub, worker); /* empty */
  hub_notify_worker_left(hub, worker);
  hash_table_remove(hub->workers, hash_u64(worker->worker_idx), worker);
  worker_free(worker);
}

/* Housekeeping: unary workers that went silent leave the routing tables,
 * and after ten times as long the registry. */

typedef struct silent_scan {
  job_hub *hub;
  int64_t now;
  hub_worker *forget; /* one per pass; the table must not change in each */
} silent_scan;

static int check_silent(void *value, void *arg) {
  hub_worker *worker = value;
  silent_scan *scan = arg;
  if (worker->conn != NULL || worker->reserved ||
      worker->pending_lease != NULL) {
    return 0;
  }
  double silent = (double)(scan->now - worker->last_seen_us) / 1e6;
  if (worker->live && silent > scan->hub->options.worker_timeout) {
    hub_worker_set_live(scan->hub, worker, false);
  }
  if (!worker->live && worker->running == 0 &&
      silent > 10 * scan->hub->options.worker_timeout) {
    scan->forget = worker;
    return 1;
  }
  return 0;
}

void hub_on_housekeeping(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  job_hub *hub = timer->data;
  silent_scan scan = {hub, time_now_us(), NULL};
  while (hash_table_each(hub->workers, check_silent, &scan) != 0) {
    hub_worker_remove(hub, scan.forget);
    scan.forget = NULL;
  }
  hub_penalties_expire(hub, scan.now);
}

static int free_worker_each(void *value, void *arg) {
  (void)arg;
  worker_free(value);
  return 0;
}

static int free_pool_each(void *value, void *arg) {
  hub_pool *pool = value;
  (void)arg;
  subject_router_free(pool->router);
  free(pool->live);
  free(pool);
  return 0;
}

void hub_registry_free(job_hub *hub) {
  if (hub->workers != NULL) {
    hash_table_each(hub->workers, free_worker_each, NULL);
  }
  if (hub->pools != NULL) {
    hash_table_each(hub->pools, free_pool_each, NULL);
  }
}
