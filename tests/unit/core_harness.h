/* core_harness.h: the hub core for unit tests, without sockets, services
 * or a client: a hub over the in-memory store (fake_store.h) whose core
 * runs on a loop thread of the test's that is never started
 * (hub_options.loop_thread): the test's thread is the core thread, calls
 * the core's functions directly and turns the loop itself. Every helper
 * fails the running cmocka test on an error. */
#ifndef JOBHUB_TESTS_UNIT_CORE_HARNESS_H
#define JOBHUB_TESTS_UNIT_CORE_HARNESS_H

#include <stdint.h>

#include <ev.h>

#include "rpc/loop_thread.h"
#include "server/core/hub.h"
#include "server/core/job_record.h"
#include "server/core/registry.h"

/* The pool and job type of every job and worker the helpers make. */
#define POOL 3
#define JOB_TYPE 1

#define SUBMITTED JOBHUB__V1__JOB_STATE__JOB_STATE_UNSPECIFIED
#define QUEUED JOBHUB__V1__JOB_STATE__QUEUED
#define IN_PROGRESS JOBHUB__V1__JOB_STATE__IN_PROGRESS
#define DONE JOBHUB__V1__JOB_STATE__DONE
#define FAILED JOBHUB__V1__JOB_STATE__FAILED

/* A hub and the loop its core runs on. */
typedef struct core {
  rpc_loop_thread *thread;
  struct ev_loop *loop;
  job_hub *hub;
} core;

/* core_open opens a hub over the fake store (recovering its image, if
 * one was set): leases of 30 s, max_attempts attempts, retries queued at
 * once. core_close closes it, frees the loop and forgets the image. */
void core_open(core *c, uint32_t max_attempts);
void core_close(core *c);

/* settle turns the loop until nothing is ready now (the store's
 * completions); run_for turns it for seconds of real time, its timers
 * firing meanwhile. */
void settle(core *c);
void run_for(core *c, double seconds);

/* submit adds a job of POOL, JOB_TYPE as the Jobs service does (subject
 * NULL: none; not_before_us 0: none) and returns it (the hub's). */
job_record *submit(core *c, int32_t priority, const char *subject,
                   int64_t not_before_us);

/* add_worker registers a live worker of POOL, JOB_TYPE (the next free
 * worker_id) with room for many jobs, and returns it (the hub's). */
hub_worker *add_worker(core *c);

/* lease_next takes the best job for worker and leases it to it, as a
 * Lease call does; NULL when none is ready. */
job_record *lease_next(core *c, hub_worker *worker);

/* expire_lease makes job's lease due now, as if its lease seconds had
 * run out, and lets the core's lease timer see it. */
void expire_lease(core *c, job_record *job);

#endif
