/* leases.h: a job's lease, on the core thread: handing a job to a worker
 * (lease number, secret, expiry), holding, releasing and cancelling it,
 * expiry and re-queue, jobs a worker never acknowledged, and the backoff
 * between attempts. */
#ifndef JOBHUB_SERVER_CORE_LEASES_H
#define JOBHUB_SERVER_CORE_LEASES_H

#include <stdint.h>

#include <ev.h>

#include "rpc/buffer.h"
#include "server/core/hub.h"
#include "server/core/job_record.h"

struct hub_worker;

/* hub_actor_of_worker writes History's actor for a worker,
 * "worker:<worker_idx>". */
#define HUB_ACTOR_SIZE 28
void hub_actor_of_worker(uint64_t worker_idx, char actor[HUB_ACTOR_SIZE]);

/* hub_backoff_us is the wait before attempt number attempts + 1:
 * --retry-backoff-ms doubled per attempt, at most 300 s, times a random
 * factor in [0.5, 1]. */
int64_t hub_backoff_us(job_hub *hub, uint32_t attempts);

/* hub_lease_to hands job (already out of the queue) to worker: attempt,
 * lease, store; the caller then delivers it (worker_wire.h). Returns 0 or
 * -1 (no memory, no random bytes: the caller puts the job back). */
int hub_lease_to(job_hub *hub, struct hub_worker *worker, job_record *job);

/* hub_hold_lease makes worker the holder of job's lease (IN_PROGRESS,
 * held by no one): it counts toward its capacity and goes back to the
 * queue if it leaves. */
void hub_hold_lease(struct hub_worker *worker, job_record *job);

/* hub_extend_lease runs job's lease for its lease seconds (the hub's
 * default when the Submit gave none) from now: a heartbeat. */
void hub_extend_lease(job_hub *hub, job_record *job);

/* hub_release_lease takes job's lease out of the expiry heap and detaches
 * it from its holder (which is woken: it has room). */
void hub_release_lease(job_hub *hub, job_record *job);

/* hub_cancel_lease tells the holder of job's lease that it is void: on its
 * Connect stream, or (a unary worker) in its next Heartbeat. */
void hub_cancel_lease(job_hub *hub, job_record *job);

/* hub_requeue_unacknowledged puts back in the queue every job worker
 * holds that it never acknowledged (Started, heartbeat, progress, result):
 * at once, the attempt not counted (the lease number stays used, so a
 * late result of that lease is refused). For a Connect stream that ended.
 * Returns how many. */
uint32_t hub_requeue_unacknowledged(job_hub *hub, struct hub_worker *worker);

/* hub_fill_lease_secret writes LEASE_SECRET_SIZE random bytes from the
 * OS (getrandom, read in batches) into secret. Returns 0, or -1 when the
 * OS gives none (logged). */
int hub_fill_lease_secret(job_hub *hub, uint8_t *secret);

/* hub_arm_lease_timer sets the lease timer for the earliest expiry;
 * hub_on_lease_timer (its callback, timer->data the hub) re-queues or
 * fails the jobs whose lease expired. */
void hub_arm_lease_timer(job_hub *hub);
void hub_on_lease_timer(struct ev_loop *loop, ev_timer *timer, int events);

#endif
