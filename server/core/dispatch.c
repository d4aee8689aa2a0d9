/* dispatch.c: assigning queued jobs to workers: the shared queue and
 * the sticky queues, delayed jobs, waking workers with room, and pumping
 * jobs to them before the core loop sleeps. */
#include <stdlib.h>

#include "rpc/log.h"
#include "server/core/dispatch.h"
#include "server/core/hub_state.h"
#include "server/core/ids.h"
#include "server/core/job_table.h"
#include "server/core/leases.h"
#include "server/core/mailbox.h"
#include "server/core/persist.h"
#include "server/core/registry.h"
#include "server/core/watchers.h"
#include "server/core/worker_wire.h"

static bool worker_has_room(const job_hub *hub, const hub_worker *worker) {
  if (worker->pending_lease != NULL) {
    return true;
  }
  return worker->conn != NULL && !worker->draining &&
         worker->paused_until_us == 0 && worker->running < worker->capacity &&
         !hub_store_behind(hub);
}

bool hub_store_behind(const job_hub *hub) {
  return hub->writes_pending >= HUB_MAX_WRITES_PENDING;
}

/* Wakes every worker that may have room: the store caught up. */
static int wake_each_worker(void *value, void *arg) {
  hub_worker *worker = value;
  job_hub *hub = arg;
  if (worker->live && worker_has_room(hub, worker)) {
    hub_wake_worker(hub, worker);
  }
  return 0;
}

/* Wakes a worker that can take a job of pool_idx just made ready. */
static void wake_pool(job_hub *hub, uint32_t pool_idx, const job_record *job) {
  hub_pool *pool = hub_pool_get(hub, pool_idx, false);
  if (pool == NULL || pool->n_live == 0) {
    return;
  }
  if (job != NULL && job->subject_size > 0) {
    uint64_t owner_idx;
    if (subject_router_lookup(pool->router, job_record_subject(job),
                              job->subject_size, &owner_idx) == 0) {
      hub_worker *owner = hub_find_worker(hub, owner_idx);
      if (owner != NULL) {
        hub_wake_worker(hub, owner);
        return;
      }
    }
  }
  for (size_t i = 0; i < pool->n_live; i++) {
    hub_worker *worker = pool->live[(pool->next_worker + i) % pool->n_live];
    if (worker_has_room(hub, worker)) {
      pool->next_worker = (pool->next_worker + i + 1) % pool->n_live;
      hub_wake_worker(hub, worker);
      return;
    }
  }
}

static void on_promoted(uint32_t pool_idx, void *arg) {
  wake_pool(arg, pool_idx, NULL);
}

void hub_arm_delay_timer(job_hub *hub, int64_t next_us) {
  ev_timer_stop(hub->loop, &hub->delay_timer);
  if (next_us != INT64_MAX) {
    double wait = (double)(next_us - time_now_us()) / 1e6;
    ev_timer_set(&hub->delay_timer, wait > 0 ? wait : 0, 0);
    ev_timer_start(hub->loop, &hub->delay_timer);
  }
}

void hub_on_delay_timer(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  job_hub *hub = timer->data;
  hub_arm_delay_timer(
      hub, job_queue_promote(hub->queue, time_now_us(), on_promoted, hub));
}

int hub_queue_push(job_queue *queue, job_record *job, int64_t now) {
  job->queued_in = queue;
  return job_queue_push(queue, &job->entry, now);
}

void hub_unqueue(job_hub *hub, job_record *job) {
  (void)hub;
  if (job->entry.queued) {
    job_queue_remove(job->queued_in, &job->entry);
  }
}

void hub_requeue(job_hub *hub, job_record *job, int64_t delay_us) {
  int64_t now = time_now_us();
  if (delay_us > 0) {
    job->entry.not_before_us = now + delay_us;
  }
  if (hub_queue_push(hub->queue, job, now) != 0) {
    /* Out of memory: the job stays QUEUED in the store and comes back at
     * the next start; say so rather than lose track of it silently. */
    rpc_log(RPC_LOG_ERROR, "queue_push_failed", "job=%s", job->id);
    return;
  }
  if (job->entry.delayed) {
    ev_tstamp remaining = ev_timer_remaining(hub->loop, &hub->delay_timer);
    int64_t due = now + (int64_t)(remaining * 1e6);
    if (!ev_is_active(&hub->delay_timer) || job->entry.not_before_us < due) {
      hub_arm_delay_timer(hub, job->entry.not_before_us);
    }
    return;
  }
  wake_pool(hub, job->entry.pool_idx, job);
}

/* Is a better than b: higher priority, then older. */
static bool entry_before(const job_queue_entry *a, const job_queue_entry *b) {
  if (b == NULL) {
    return true;
  }
  return a->priority != b->priority ? a->priority > b->priority
                                    : a->sequence < b->sequence;
}

job_record *hub_take_job(job_hub *hub, hub_worker *worker) {
  job_queue_entry *best = NULL;
  job_queue *best_queue = NULL;
  int64_t now = time_now_us();
  for (size_t t = 0; t < worker->n_job_types; t++) {
    uint32_t pool_idx;
    if (pool_idx_pack(worker->pool_id, worker->job_type_ids[t], &pool_idx) !=
        0) {
      continue;
    }
    hub_pool *pool = hub_pool_get(hub, pool_idx, false);
    /* Subject jobs at the head of the shared queue go to their owners'
     * own queues; the first one this worker owns (or any job without a
     * subject) is a candidate. */
    job_queue_entry *head;
    while ((head = job_queue_peek(hub->queue, pool_idx)) != NULL) {
      job_record *job = JOB_OF_ENTRY(head);
      uint64_t owner_idx;
      if (job->subject_size == 0 || pool == NULL ||
          subject_router_lookup(pool->router, job_record_subject(job),
                                job->subject_size, &owner_idx) != 0 ||
          owner_idx == worker->worker_idx) {
        break;
      }
      hub_worker *owner = hub_find_worker(hub, owner_idx);
      if (owner == NULL) {
        break; /* a stale table; never strand the job */
      }
      job_queue_pop(hub->queue, pool_idx);
      if (hub_queue_push(owner->sticky, job, now) != 0) {
        (void)hub_queue_push(hub->queue, job, now); /* room was there */
        break;
      }
      hub_wake_worker(hub, owner);
    }
    if (head != NULL && entry_before(head, best)) {
      best = head;
      best_queue = hub->queue;
    }
    job_queue_entry *own = job_queue_peek(worker->sticky, pool_idx);
    if (own != NULL && entry_before(own, best)) {
      best = own;
      best_queue = worker->sticky;
    }
  }
  if (best == NULL) {
    return NULL;
  }
  job_queue_remove(best_queue, best);
  return JOB_OF_ENTRY(best);
}

/* Pumping: workers with room take jobs, batched before the loop sleeps. */

void hub_wake_worker(job_hub *hub, hub_worker *worker) {
  if (worker->pump_scheduled) {
    return;
  }
  if (hub->n_pumps == hub->pumps_capacity) {
    size_t capacity = hub->pumps_capacity ? hub->pumps_capacity * 2 : 64;
    hub_worker **grown = realloc(hub->pumps, capacity * sizeof(*grown));
    if (grown == NULL) {
      hub_pump(hub, worker); /* at once rather than never */
      return;
    }
    hub->pumps = grown;
    hub->pumps_capacity = capacity;
  }
  worker->pump_scheduled = true;
  hub->pumps[hub->n_pumps++] = worker;
}

void hub_unschedule_pump(job_hub *hub, hub_worker *worker) {
  for (size_t i = 0; worker->pump_scheduled && i < hub->n_pumps; i++) {
    if (hub->pumps[i] == worker) {
      hub->pumps[i] = hub->pumps[--hub->n_pumps];
      worker->pump_scheduled = false;
    }
  }
}

void hub_on_prepare(struct ev_loop *loop, ev_prepare *prepare, int events) {
  (void)loop;
  (void)events;
  job_hub *hub = prepare->data;
  if (hub->dropped != NULL) {
    hub_free_dropped(hub);
  }
  /* Pumping may schedule more (subject jobs routed to their owners). */
  while (hub->n_pumps > 0) {
    hub_worker *worker = hub->pumps[--hub->n_pumps];
    worker->pump_scheduled = false;
    hub_pump(hub, worker);
  }
}

/* Puts back a job taken for a worker that could not get it: at once, its
 * attempt not counted. */
static void unlease(job_hub *hub, job_record *job) {
  if (job->state == JOBHUB__V1__JOB_STATE__IN_PROGRESS) {
    hub_release_lease(hub, job);
    job->attempts--;
    int from = job->state;
    hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__QUEUED);
    hub_save_quietly(hub, job, from, "hub", "assignment not delivered");
    hub_notify(hub, job, from);
  }
  hub_requeue(hub, job, 0);
}

void hub_pump(job_hub *hub, hub_worker *worker) {
  worker->pump_scheduled = false;
  hub_call *hc = worker->pending_lease;
  if (hc != NULL) {
    uint32_t leased = 0;
    job_record *job;
    rpc_buffer assignment;
    rpc_buffer_init(&assignment);
    while (leased < hc->want && hub->worker_wire.lease_answer_add != NULL &&
           (job = hub_take_job(hub, worker)) != NULL) {
      if (hub_lease_to(hub, worker, job) != 0 ||
          hub->worker_wire.lease_answer_add(&hc->answer, job, &hub->scratch,
                                            &assignment) != 0) {
        unlease(hub, job);
        break;
      }
      leased++;
    }
    rpc_buffer_free(&assignment);
    if (leased > 0) {
      hub_end_pending_lease(hub, worker);
    }
    return;
  }
  if (worker->conn == NULL || worker->draining ||
      worker->paused_until_us != 0) {
    return;
  }
  rpc_buffer assignment;
  rpc_buffer_init(&assignment);
  rpc_buffer message;
  rpc_buffer_init(&message);
  job_record *job;
  while (worker->running < worker->capacity && !hub_store_behind(hub) &&
         hub->worker_wire.stream_assignment != NULL &&
         (job = hub_take_job(hub, worker)) != NULL) {
    rpc_buffer_reset(&message);
    if (hub_lease_to(hub, worker, job) != 0 ||
        hub->worker_wire.stream_assignment(&message, job, &hub->scratch,
                                           &assignment) != 0 ||
        core_stream_send(hub, &worker->conn->stream, message.data,
                         message.len) != 0) {
      unlease(hub, job);
      break;
    }
  }
  rpc_buffer_free(&assignment);
  rpc_buffer_free(&message);
}

void hub_end_pending_lease(job_hub *hub, hub_worker *worker) {
  hub_call *hc = worker->pending_lease;
  if (hc == NULL) {
    return;
  }
  worker->pending_lease = NULL;
  if (hc->timer_active) {
    ev_timer_stop(hub->loop, &hc->timer);
  }
  hub_call_answer(hub, hc);
}

void hub_wake_workers_with_room(job_hub *hub) {
  hash_table_each(hub->workers, wake_each_worker, hub);
}

typedef struct wire_setting {
  const hub_worker_wire *wire;
} wire_setting;

static void set_worker_wire(job_hub *hub, void *arg) {
  hub->worker_wire = *((const wire_setting *)arg)->wire;
}

void hub_set_worker_wire(job_hub *hub, const hub_worker_wire *wire) {
  wire_setting setting = {wire};
  hub_configure(hub, set_worker_wire, &setting);
}
