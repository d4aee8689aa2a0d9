/* dispatch.h: assigning queued jobs to workers, on the core thread: the
 * shared queue and each worker's sticky queue (subject jobs routed to
 * their owner), delayed jobs (not_before), waking workers that have room,
 * and pumping jobs to them before the core loop sleeps. */
#ifndef JOBHUB_SERVER_CORE_DISPATCH_H
#define JOBHUB_SERVER_CORE_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "server/core/hub.h"
#include "server/core/job_queue.h"
#include "server/core/job_record.h"

struct hub_worker;

/* The job whose queue entry (or lease heap entry) e is. */
#define JOB_OF_ENTRY(e)                                                        \
  ((job_record *)(void *)((char *)(e)-offsetof(job_record, entry)))

/* hub_store_behind tells whether HUB_MAX_WRITES_PENDING writes wait for
 * the store: workers then get no new jobs until it catches up, so what
 * waits for it (and the memory it holds) stays bounded when workers
 * finish jobs faster than the disk takes their results. */
#define HUB_MAX_WRITES_PENDING 20000
bool hub_store_behind(const job_hub *hub);

/* hub_queue_push puts job in queue (the shared one or a worker's sticky
 * one), remembering which. Returns 0, or -1 (no memory). */
int hub_queue_push(job_queue *queue, job_record *job, int64_t now);

/* hub_requeue puts a job back in the shared queue (after delay_us) and
 * wakes a worker that can take it; hub_unqueue takes it out of its
 * queue. */
void hub_requeue(job_hub *hub, job_record *job, int64_t delay_us);
void hub_unqueue(job_hub *hub, job_record *job);

/* hub_take_job pops the best queued job for worker (routing the subject
 * jobs ahead of it to their owners), or NULL. */
job_record *hub_take_job(job_hub *hub, struct hub_worker *worker);

/* hub_pump gives queued jobs to worker while it has room (a waiting Lease
 * call, or a Connect stream under capacity); hub_wake_worker does it
 * before the core loop next sleeps; hub_unschedule_pump forgets that
 * (a worker that leaves). */
void hub_pump(job_hub *hub, struct hub_worker *worker);
void hub_wake_worker(job_hub *hub, struct hub_worker *worker);
void hub_unschedule_pump(job_hub *hub, struct hub_worker *worker);

/* hub_end_pending_lease answers worker's waiting Lease call now, with the
 * jobs it holds (none, unless pumped), if there is one. */
void hub_end_pending_lease(job_hub *hub, struct hub_worker *worker);

/* hub_wake_workers_with_room wakes every live worker with room: the store
 * caught up. */
void hub_wake_workers_with_room(job_hub *hub);

/* hub_arm_delay_timer sets the delay timer for next_us (INT64_MAX: none),
 * when the first delayed job is due. hub_on_delay_timer (its callback,
 * timer->data the hub) makes the due jobs ready; hub_on_prepare (the
 * pumper's, before the loop sleeps) pumps the woken workers and frees
 * dropped jobs. */
void hub_arm_delay_timer(job_hub *hub, int64_t next_us);
void hub_on_delay_timer(struct ev_loop *loop, ev_timer *timer, int events);
void hub_on_prepare(struct ev_loop *loop, ev_prepare *prepare, int events);

#endif
