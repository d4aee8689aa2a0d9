/* leases.c: a job's lease: handing it to a worker, its secret and
 * expiry, releasing and cancelling it, re-queueing jobs a worker never
 * acknowledged, and the backoff between attempts. */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

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

#define JOB_OF_LEASE(e)                                                        \
  ((job_record *)(void *)((char *)(e)-offsetof(job_record, lease)))

/* The longest wait between attempts. */
#define MAX_BACKOFF_US (300 * 1000000LL)

void hub_actor_of_worker(uint64_t worker_idx, char actor[HUB_ACTOR_SIZE]) {
  memcpy(actor, "worker:", 7);
  (void)decimal_format(worker_idx, actor + 7);
}

int64_t hub_backoff_us(job_hub *hub, uint32_t attempts) {
  int64_t delay = (int64_t)hub->options.retry_backoff_ms * 1000;
  for (uint32_t i = 1; i < attempts && delay < MAX_BACKOFF_US; i++) {
    delay *= 2;
  }
  if (delay > MAX_BACKOFF_US) {
    delay = MAX_BACKOFF_US;
  }
  /* Jitter in [0.5, 1]: retries of a burst do not come back together. */
  hub->rng = hub->rng * 1664525u + 1013904223u;
  return delay / 2 +
         (int64_t)((double)(delay / 2) * (hub->rng >> 8) / (double)(1u << 24));
}

void hub_arm_lease_timer(job_hub *hub) {
  deadline_heap_entry *first = deadline_heap_first(&hub->leases);
  ev_timer_stop(hub->loop, &hub->lease_timer);
  if (first != NULL) {
    double wait = (double)(first->due_us - time_now_us()) / 1e6;
    ev_timer_set(&hub->lease_timer, wait > 0 ? wait : 0, 0);
    ev_timer_start(hub->loop, &hub->lease_timer);
  }
}

void hub_hold_lease(hub_worker *worker, job_record *job) {
  job->holder = worker;
  job->run_prev = NULL;
  job->run_next = worker->running_jobs;
  if (worker->running_jobs != NULL) {
    worker->running_jobs->run_prev = job;
  }
  worker->running_jobs = job;
  worker->running++;
}

int hub_lease_to(job_hub *hub, hub_worker *worker, job_record *job) {
  int64_t now = time_now_us();
  uint32_t seconds =
      job->lease_seconds ? job->lease_seconds : hub->options.lease_seconds;
  if (hub_fill_lease_secret(hub, job->lease_secret) != 0) {
    return -1;
  }
  job->lease_acknowledged = false;
  job->attempts++;
  job->leases++;
  job->started_us = now;
  job->worker_idx = worker->worker_idx;
  job->progress = 0;
  (void)job_record_set_text(&job->progress_message, NULL);
  job->lease.due_us = now + (int64_t)seconds * 1000000;
  if (deadline_heap_push(&hub->leases, &job->lease) != 0) {
    job->attempts--;
    return -1;
  }
  if (deadline_heap_first(&hub->leases) == &job->lease) {
    hub_arm_lease_timer(hub);
  }
  hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__IN_PROGRESS);
  hub_hold_lease(worker, job);

  hub_defer_lease_write(hub, job);
  hub_notify(hub, job, JOBHUB__V1__JOB_STATE__QUEUED); /* taken from it */

  return 0;
}

void hub_extend_lease(job_hub *hub, job_record *job) {
  uint32_t seconds =
      job->lease_seconds ? job->lease_seconds : hub->options.lease_seconds;
  job->lease.due_us = time_now_us() + (int64_t)seconds * 1000000;
  if (job->lease.queued) {
    deadline_heap_update(&hub->leases, &job->lease);
  }
}

void hub_release_lease(job_hub *hub, job_record *job) {
  if (job->lease.queued) {
    deadline_heap_remove(&hub->leases, &job->lease);
  }
  hub_worker *holder = job->holder;
  if (holder == NULL) {
    return;
  }
  if (job->run_prev != NULL) {
    job->run_prev->run_next = job->run_next;
  } else {
    holder->running_jobs = job->run_next;
  }
  if (job->run_next != NULL) {
    job->run_next->run_prev = job->run_prev;
  }
  job->run_prev = job->run_next = NULL;
  job->holder = NULL;
  holder->released[holder->released_count++ % HUB_WORKER_RELEASED] =
      job->entry.sequence;
  holder->running--;
  hub_wake_worker(hub, holder); /* it has room again */
}

/* Tells the holder of a lease that it is void: on its stream, or in its
 * next Heartbeat. */
void hub_cancel_lease(job_hub *hub, job_record *job) {
  hub_worker *holder = job->holder;
  /* A unary worker learns it from its next Heartbeat, which finds the
   * lease's job no longer IN_PROGRESS. */
  if (holder == NULL || holder->conn == NULL) {
    return;
  }
  if (hub->worker_wire.stream_cancel == NULL) {
    return;
  }
  rpc_buffer_reset(&hub->scratch);
  if (hub->worker_wire.stream_cancel(&hub->scratch, job) == 0) {
    (void)core_stream_send(hub, &holder->conn->stream, hub->scratch.data,
                           hub->scratch.len);
  }
}

void hub_on_lease_timer(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  job_hub *hub = timer->data;
  int64_t now = time_now_us();
  deadline_heap_entry *first;
  while ((first = deadline_heap_first(&hub->leases)) != NULL &&
         first->due_us <= now) {
    job_record *job = JOB_OF_LEASE(first);
    hub_cancel_lease(hub, job);
    hub_release_lease(hub, job);
    int from = job->state;
    if (job->attempts < job->max_attempts) {
      hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__QUEUED);
      hub_save_quietly(hub, job, from, "hub", "lease expired");
      hub_requeue(hub, job, hub_backoff_us(hub, job->attempts));
    } else {
      job->finished_us = now;
      (void)job_record_set_text(&job->error,
                                "lease expired on the last attempt");
      hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__FAILED);
      hub_save_quietly(hub, job, from, "hub",
                       "lease expired on the last attempt");
    }
    hub_notify(hub, job, from);
  }
  hub_arm_lease_timer(hub);
}

int hub_fill_lease_secret(job_hub *hub, uint8_t *secret) {
  if (hub->random_used + LEASE_SECRET_SIZE > sizeof(hub->random)) {
    size_t got = 0;
    while (got < sizeof(hub->random)) {
      ssize_t n = getrandom(hub->random + got, sizeof(hub->random) - got, 0);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        rpc_log(RPC_LOG_ERROR, "random_bytes_failed", "error=\"%s\"",
                strerror(errno));
        return -1;
      }
      got += (size_t)n;
    }
    hub->random_used = 0;
  }
  memcpy(secret, hub->random + hub->random_used, LEASE_SECRET_SIZE);
  /* Spent bytes are not left behind for anyone reading memory later. */
  memset(hub->random + hub->random_used, 0, LEASE_SECRET_SIZE);
  hub->random_used += LEASE_SECRET_SIZE;
  return 0;
}

uint32_t hub_requeue_unacknowledged(job_hub *hub, hub_worker *worker) {
  uint32_t count = 0;
  job_record *job = worker->running_jobs;
  while (job != NULL) {
    job_record *next = job->run_next;
    if (!job->lease_acknowledged) {
      hub_release_lease(hub, job);
      if (job->attempts > 0) {
        job->attempts--;
      }
      int from = job->state;
      hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__QUEUED);
      hub_save_quietly(hub, job, from, "hub",
                       "worker left before it started the job");
      hub_requeue(hub, job, 0);
      hub_notify(hub, job, from);
      count++;
    }
    job = next;
  }
  return count;
}
