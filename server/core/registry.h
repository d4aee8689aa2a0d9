/* registry.h: workers and their routing, on the core thread: the pools
 * (one per pool_id and job type), registration, going live or leaving
 * (sticky subjects are routed again), pauses of flapping workers, the
 * Worker message, and housekeeping of silent unary workers. */
#ifndef JOBHUB_SERVER_CORE_REGISTRY_H
#define JOBHUB_SERVER_CORE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "rpc/buffer.h"
#include "rpc/status.h"
#include "server/core/hub.h"
#include "server/core/job_queue.h"
#include "server/core/job_record.h"
#include "server/core/mailbox.h"
#include "server/core/router.h"

/* How many of the jobs whose lease a worker held last it remembers
 * (hub_worker.released). */
#define HUB_WORKER_RELEASED 16

/* A worker, registered, reserved by Add, polling with Lease, or connected
 * over Connect. */
typedef struct worker_conn worker_conn;

typedef struct hub_worker {
  uint64_t worker_idx;
  uint32_t pool_id;
  uint32_t *job_type_ids;
  size_t n_job_types;
  uint32_t pool_idxs[8]; /* of the first job types, for quick checks */
  char *client_id;
  char *hostname;
  uint32_t capacity;
  uint32_t port;
  uint8_t *worker_config; /* packed google.protobuf.Struct, or NULL */
  size_t worker_config_size;
  int64_t connected_us, last_seen_us;
  bool reserved; /* by Add, not yet connected */
  bool draining; /* takes no new jobs */
  bool live;     /* in its pools' routing tables */
  bool pump_scheduled;
  worker_conn *conn; /* the Connect stream, or NULL */
  uint32_t running;
  job_record *running_jobs;
  /* The sequences of the last HUB_WORKER_RELEASED jobs whose lease it
   * held (finished, cancelled or given back), a ring whose newest is at
   * released_count - 1: what tells a claim by subject (a Complete by
   * table) that the job it names is final, without a scan of the jobs. */
  uint64_t released[HUB_WORKER_RELEASED];
  uint32_t released_count;
  job_queue *sticky; /* subject jobs routed to this worker */
  hub_call *pending_lease;
  uint64_t created; /* order of creation, for Delete's "latest" */
  /* A Connect worker that kept dropping jobs gets none before this. */
  int64_t paused_until_us;
  ev_timer pause_timer;        /* wakes it then */
  job_hub *pause_hub;          /* whose loop pause_timer runs on */
  bool capacity_capped_logged; /* its capacity was clamped, and logged */
} hub_worker;

struct worker_conn {
  core_stream stream;
  hub_worker *worker; /* NULL before hello or after it left */
  uint32_t acks_owed; /* results waiting for the store to be acked */
  bool closed;        /* the stream ended; freed when acks_owed is 0 */
};

/* Routing state of one (pool_id, job_type_id). */
typedef struct hub_pool {
  uint32_t pool_idx;
  subject_router *router;
  hub_worker **live;
  size_t n_live, live_capacity;
  size_t next_worker; /* round robin start for subject-less jobs */
  uint64_t queued, in_progress, done, failed;
  double run_seconds; /* of done jobs, for the mean */
} hub_pool;

/* hub_pool_get finds the pool of pool_idx, making it when create is set.
 * NULL: none (or no memory to make it). */
hub_pool *hub_pool_get(job_hub *hub, uint32_t pool_idx, bool create);

/* hub_find_worker finds a registered worker by worker_idx, or NULL. */
hub_worker *hub_find_worker(job_hub *hub, uint64_t worker_idx);

/* hub_each_worker calls fn(worker, arg) for every registered worker, and
 * hub_each_pool fn(pool, arg) for every pool, until fn returns non-zero
 * (returned; else 0). fn must not add or remove workers or pools. */
int hub_each_worker(job_hub *hub, int (*fn)(void *worker, void *arg),
                    void *arg);
int hub_each_pool(job_hub *hub, int (*fn)(void *pool, void *arg), void *arg);

/* hub_worker_new registers a worker (worker_idx 0: the lowest free one of
 * its pool and first job type), not live. NULL with *code and why set:
 * INVALID_ARGUMENT, ALREADY_EXISTS (worker_idx taken), RESOURCE_EXHAUSTED
 * (pool full, no memory). The registry owns the worker. */
hub_worker *hub_worker_new(job_hub *hub, uint64_t worker_idx, uint32_t pool_id,
                           const uint32_t *job_type_ids, size_t n,
                           rpc_status_code *code, char *why, size_t why_size);

/* hub_worker_set_live puts worker in or out of its pools' routing tables;
 * the pools' subject jobs are routed again. */
void hub_worker_set_live(job_hub *hub, hub_worker *worker, bool live);

/* hub_worker_pause gives worker no new jobs until until_us (a time of
 * the wall clock); then a Connect worker that is not draining goes live
 * (its caller keeps it out of the routing tables meanwhile) and is woken. */
void hub_worker_pause(job_hub *hub, hub_worker *worker, int64_t until_us);

/* hub_worker_remove unregisters worker and frees it: its jobs go back to
 * the queue (or fail on their last attempt), a waiting Lease is answered
 * empty, its GetSubjectState queries fail. */
void hub_worker_remove(job_hub *hub, hub_worker *worker);

/* hub_on_housekeeping (the housekeeping timer's callback, timer->data the
 * hub): silent unary workers leave the routing tables, and after ten
 * times as long the registry; old penalties are forgotten. */
void hub_on_housekeeping(struct ev_loop *loop, ev_timer *timer, int events);

/* hub_registry_free frees every worker and pool (at close). */
void hub_registry_free(job_hub *hub);

#endif
