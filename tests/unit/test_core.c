/* test_core.c: the hub core driven directly, without sockets, services or
 * a client: an in-memory store (fake_store.h), the core on a loop this
 * test owns (hub_options.loop_thread, never started: the test's thread is
 * the core thread and turns the loop itself), workers registered and
 * given jobs through the core's own functions. Queue order, lease expiry
 * and re-queue, lease ids of earlier attempts, sticky routing as workers
 * join and leave, observer fan-out, and recovery from a store image. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ev.h>

#include "rpc/log.h"
#include "server/core/dispatch.h"
#include "server/core/hub_state.h"
#include "server/core/ids.h"
#include "server/core/job_table.h"
#include "server/core/leases.h"
#include "server/core/registry.h"
#include "tests/unit/fake_store.h"

#define POOL 3
#define JOB_TYPE 1
#define QUEUED JOBHUB__V1__JOB_STATE__QUEUED
#define IN_PROGRESS JOBHUB__V1__JOB_STATE__IN_PROGRESS
#define DONE JOBHUB__V1__JOB_STATE__DONE
#define FAILED JOBHUB__V1__JOB_STATE__FAILED
#define SUBMITTED JOBHUB__V1__JOB_STATE__JOB_STATE_UNSPECIFIED

/* A hub on a loop thread of the test's, not started. */
typedef struct core {
  rpc_loop_thread *thread;
  struct ev_loop *loop;
  job_hub *hub;
} core;

static void core_open(core *c, uint32_t max_attempts) {
  c->thread = rpc_loop_thread_new(NULL);
  assert_non_null(c->thread);
  c->loop = rpc_loop_thread_loop(c->thread);
  hub_options options = {
      .data_dir = "unused",
      .lease_seconds = 30,
      .max_attempts = max_attempts,
      .retry_backoff_ms = 0, /* a retry is queued at once */
      .worker_timeout = 30,
      .loop_thread = c->thread,
      .store = &fake_store_ops,
  };
  char err[256] = "";
  c->hub = hub_open(&options, err, sizeof(err));
  assert_non_null(c->hub);
}

static void core_close(core *c) {
  hub_close(c->hub);
  rpc_loop_thread_free(c->thread);
  fake_store_set_image(NULL, 0);
}

/* Turns the loop until nothing is ready now (the store's completions). */
static void settle(core *c) {
  for (int i = 0; i < 4; i++) {
    ev_run(c->loop, EVRUN_NOWAIT);
  }
}

static void on_elapsed(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  *(bool *)timer->data = true;
}

/* Turns the loop for seconds of real time (its timers fire meanwhile). */
static void run_for(core *c, double seconds) {
  bool elapsed = false;
  ev_timer timer;
  ev_timer_init(&timer, on_elapsed, seconds, 0);
  timer.data = &elapsed;
  ev_timer_start(c->loop, &timer);
  while (!elapsed) {
    ev_run(c->loop, EVRUN_ONCE);
  }
}

/* Submits a job of POOL, JOB_TYPE as the Jobs service does. */
static job_record *submit(core *c, int32_t priority, const char *subject,
                          int64_t not_before_us) {
  Jobhub__V1__SubmitRequest request = JOBHUB__V1__SUBMIT_REQUEST__INIT;
  Google__Protobuf__Timestamp not_before = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  request.pool_id = POOL;
  request.job_type_id = JOB_TYPE;
  request.priority = priority;
  request.subject = (char *)(subject != NULL ? subject : "");
  if (not_before_us != 0) {
    not_before.seconds = not_before_us / 1000000;
    not_before.nanos = (int32_t)(not_before_us % 1000000) * 1000;
    request.not_before = &not_before;
  }
  uint32_t max_attempts = hub_options_of(c->hub)->max_attempts;
  size_t size;
  uint8_t *fixed = job_fixed_pack(&request, max_attempts, &size);
  assert_non_null(fixed);
  job_record *job =
      hub_submit(c->hub, &request, fixed, size, max_attempts, NULL, NULL);
  free(fixed);
  assert_non_null(job);
  return job;
}

/* Registers a live worker of POOL, JOB_TYPE (the next free worker_id). */
static hub_worker *add_worker(core *c) {
  uint32_t job_type = JOB_TYPE;
  rpc_status_code code;
  char why[200];
  hub_worker *worker =
      hub_worker_new(c->hub, 0, POOL, &job_type, 1, &code, why, sizeof(why));
  assert_non_null(worker);
  worker->capacity = 1000;
  hub_worker_set_live(c->hub, worker, true);
  return worker;
}

/* Takes the best job for worker and leases it, as a Lease call does. */
static job_record *lease_next(core *c, hub_worker *worker) {
  job_record *job = hub_take_job(c->hub, worker);
  if (job != NULL) {
    assert_int_equal(hub_lease_to(c->hub, worker, job), 0);
  }
  return job;
}

/* Makes job's lease due now, as if its lease seconds had run out, and lets
 * the core's lease timer see it. */
static void expire_lease(core *c, job_record *job) {
  assert_true(job->lease.queued);
  job->lease.due_us = time_now_us() - 1;
  deadline_heap_update(&c->hub->leases, &job->lease);
  hub_arm_lease_timer(c->hub);
  settle(c);
}

/* An observer that writes down every job transition it hears. */
typedef struct transition {
  uint64_t sequence;
  int from, to;
} transition;

typedef struct recorder {
  transition seen[64];
  size_t count;
} recorder;

static void record(job_hub *hub, job_record *job, int from_state, void *arg) {
  (void)hub;
  recorder *r = arg;
  assert_true(r->count < 64);
  r->seen[r->count++] =
      (transition){job->entry.sequence, from_state, job->state};
}

static void listen(core *c, recorder *r) {
  hub_observer observer = {.job_changed = record, .arg = r};
  assert_int_equal(hub_observe(c->hub, &observer), 0);
}

static void assert_transitions(const recorder *r, const transition *want,
                               size_t n) {
  assert_int_equal(r->count, n);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(r->seen[i].sequence, want[i].sequence);
    assert_int_equal(r->seen[i].from, want[i].from);
    assert_int_equal(r->seen[i].to, want[i].to);
  }
}

/* Queue order: priority first, then submission order within a priority;
 * a job whose not_before is ahead waits for it, however high its
 * priority. */
static void test_queue_order(void **state) {
  (void)state;
  core c;
  core_open(&c, 3);
  hub_worker *worker = add_worker(&c);
  int64_t submitted_us = time_now_us();
  job_record *later = submit(&c, 9, NULL, submitted_us + 40000);
  job_record *low1 = submit(&c, 0, NULL, 0);
  job_record *high1 = submit(&c, 5, NULL, 0);
  job_record *low2 = submit(&c, 0, NULL, 0);
  job_record *high2 = submit(&c, 5, NULL, 0);
  job_record *negative = submit(&c, -1, NULL, 0);
  settle(&c);
  job_record *want[] = {high1, high2, low1, low2, negative};
  for (size_t i = 0; i < 5; i++) {
    assert_ptr_equal(lease_next(&c, worker), want[i]);
    assert_int_equal(want[i]->state, IN_PROGRESS);
  }
  assert_null(lease_next(&c, worker)); /* later is not due */
  assert_int_equal(later->state, QUEUED);
  run_for(&c, 0.06);
  assert_ptr_equal(lease_next(&c, worker), later);
  assert_true(later->started_us >= submitted_us + 40000);
  core_close(&c);
}

/* A lease that runs out puts its job back in the queue, the attempt
 * counted; on the last attempt the job fails. Observers and the store
 * hear each transition. */
static void test_lease_expiry_requeues_then_fails(void **state) {
  (void)state;
  core c;
  core_open(&c, 2);
  recorder heard = {0};
  listen(&c, &heard);
  hub_worker *worker = add_worker(&c);
  job_record *job = submit(&c, 0, NULL, 0);
  uint64_t seq = job->entry.sequence;
  assert_ptr_equal(lease_next(&c, worker), job);
  assert_int_equal(job->attempts, 1);
  assert_int_equal(worker->running, 1);

  expire_lease(&c, job);
  assert_int_equal(job->state, QUEUED);
  assert_int_equal(job->attempts, 1);
  assert_null(job->holder);
  assert_int_equal(worker->running, 0);
  assert_false(job->lease.queued);
  assert_true(job->entry.queued);
  assert_int_equal(fake_store_state(seq), QUEUED);

  assert_ptr_equal(lease_next(&c, worker), job);
  assert_int_equal(job->attempts, 2);
  expire_lease(&c, job);
  assert_int_equal(job->state, FAILED);
  assert_int_equal(job->attempts, 2);
  assert_string_equal(job->error, "lease expired on the last attempt");
  assert_true(job->finished_us != 0);
  assert_false(job->entry.queued);
  assert_null(lease_next(&c, worker));
  assert_int_equal(fake_store_state(seq), FAILED);
  assert_int_equal(fake_store_pending(), 0);

  const transition want[] = {{seq, SUBMITTED, QUEUED},
                             {seq, QUEUED, IN_PROGRESS},
                             {seq, IN_PROGRESS, QUEUED},
                             {seq, QUEUED, IN_PROGRESS},
                             {seq, IN_PROGRESS, FAILED}};
  assert_transitions(&heard, want, 5);
  /* The store has the same history (the leases written with the job's
   * next write). */
  size_t n;
  const fake_event *events = fake_store_events(seq, &n);
  assert_int_equal(n, 5);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(events[i].from_state, want[i].from);
    assert_int_equal(events[i].to_state, want[i].to);
  }
  core_close(&c);
}

/* A lease id names one attempt: once the job is leased again, the id of
 * the earlier lease has another lease number and secret, and an id with a
 * forged secret does not match the job's; lease_id_parse and
 * lease_secret_equal are what the Workers service refuses them by. */
static void test_earlier_and_forged_lease_ids_do_not_match(void **state) {
  (void)state;
  core c;
  core_open(&c, 3);
  hub_worker *worker = add_worker(&c);
  job_record *job = submit(&c, 0, NULL, 0);
  assert_ptr_equal(lease_next(&c, worker), job);
  char first[LEASE_ID_SIZE];
  lease_id_format(job, first);
  expire_lease(&c, job);
  assert_ptr_equal(lease_next(&c, worker), job);
  char second[LEASE_ID_SIZE];
  lease_id_format(job, second);

  uint64_t sequence;
  uint32_t lease;
  uint8_t secret[LEASE_SECRET_SIZE];
  assert_int_equal(lease_id_parse(first, &sequence, &lease, secret), 0);
  assert_int_equal(sequence, job->entry.sequence);
  assert_int_equal(lease, 1);
  assert_int_equal(job->leases, 2);
  assert_false(lease_secret_equal(secret, job->lease_secret));

  assert_int_equal(lease_id_parse(second, &sequence, &lease, secret), 0);
  assert_int_equal(lease, job->leases);
  assert_true(lease_secret_equal(secret, job->lease_secret));
  char forged[LEASE_ID_SIZE];
  memcpy(forged, second, sizeof(forged));
  char *last = &forged[strlen(forged) - 1];
  *last = *last == '0' ? '1' : '0';
  assert_int_equal(lease_id_parse(forged, &sequence, &lease, secret), 0);
  assert_int_equal(lease, job->leases);
  assert_false(lease_secret_equal(secret, job->lease_secret));
  assert_int_equal(job->state, IN_PROGRESS);
  assert_ptr_equal(job->holder, worker);
  core_close(&c);
}

/* Sticky routing. */

#define SUBJECTS 200
#define MAX_WORKERS 4

static void subject_name(size_t i, char name[16]) {
  snprintf(name, 16, "subject-%zu", i);
}

/* The i of a job's "subject-<i>". */
static size_t subject_index(const job_record *job) {
  size_t i = SUBJECTS;
  assert_int_equal(sscanf(job_record_subject(job), "subject-%zu", &i), 1);
  assert_true(i < SUBJECTS);
  return i;
}

/* The worker the pool's router names for subject i. */
static uint64_t router_owner(core *c, size_t i) {
  uint32_t pool_idx;
  assert_int_equal(pool_idx_pack(POOL, JOB_TYPE, &pool_idx), 0);
  hub_pool *pool = hub_pool_get(c->hub, pool_idx, false);
  assert_non_null(pool);
  char name[16];
  subject_name(i, name);
  uint64_t owner;
  assert_int_equal(
      subject_router_lookup(pool->router, name, strlen(name), &owner), 0);
  return owner;
}

/* Submits copies jobs per subject, then lets the workers take every job
 * in turns; writes down which worker took each subject's jobs (all of a
 * subject's must go to one, the one the router names). Returns how many
 * jobs were taken. */
static size_t take_all(core *c, hub_worker **workers, size_t n_workers,
                       size_t copies, uint64_t owner[SUBJECTS]) {
  job_record *jobs[SUBJECTS * 2];
  assert_true(copies <= 2);
  for (size_t k = 0; k < copies; k++) {
    for (size_t i = 0; i < SUBJECTS; i++) {
      char name[16];
      subject_name(i, name);
      jobs[k * SUBJECTS + i] = submit(c, 0, name, 0);
    }
  }
  for (size_t i = 0; i < SUBJECTS; i++) {
    owner[i] = 0;
  }
  size_t taken = 0;
  for (bool any = true; any;) {
    any = false;
    for (size_t w = 0; w < n_workers; w++) {
      job_record *job = lease_next(c, workers[w]);
      if (job == NULL) {
        continue;
      }
      any = true;
      taken++;
      size_t k = (size_t)(job->entry.sequence - jobs[0]->entry.sequence);
      assert_true(k < copies * SUBJECTS);
      assert_ptr_equal(job, jobs[k]);
      size_t i = k % SUBJECTS;
      if (owner[i] == 0) {
        owner[i] = workers[w]->worker_idx;
      }
      assert_int_equal(owner[i], workers[w]->worker_idx);
    }
  }
  for (size_t i = 0; i < SUBJECTS; i++) {
    assert_int_equal(owner[i], router_owner(c, i));
  }
  return taken;
}

/* A subject's jobs all go to one worker. A worker that joins takes over
 * about a fifth of the subjects (1/N of them), few move between the
 * others; one that leaves gives away only its own subjects, and the jobs
 * routed to it but not taken go to their new owners. */
static void test_sticky_routing_on_join_and_leave(void **state) {
  (void)state;
  core c;
  core_open(&c, 3);
  hub_worker *workers[MAX_WORKERS + 1];
  for (size_t w = 0; w < 3; w++) {
    workers[w] = add_worker(&c);
  }
  uint64_t before[SUBJECTS], after[SUBJECTS];
  assert_int_equal(take_all(&c, workers, 3, 2, before), 2 * SUBJECTS);

  workers[3] = add_worker(&c);
  assert_int_equal(take_all(&c, workers, 4, 1, after), SUBJECTS);
  size_t moved = 0, moved_elsewhere = 0;
  for (size_t i = 0; i < SUBJECTS; i++) {
    if (after[i] != before[i]) {
      moved++;
      moved_elsewhere += after[i] != workers[3]->worker_idx;
    }
  }
  assert_true(moved >= SUBJECTS / 8 && moved <= SUBJECTS * 35 / 100);
  assert_true(moved_elsewhere <= moved / 5);

  /* Jobs routed to the sticky queue of the worker that then leaves: its
   * subjects' first, so that another worker's Lease routes them there. */
  for (int its = 1; its >= 0; its--) {
    for (size_t i = 0; i < SUBJECTS; i++) {
      char name[16];
      subject_name(i, name);
      if ((after[i] == workers[3]->worker_idx) == its) {
        (void)submit(&c, 0, name, 0);
      }
    }
  }
  job_record *first = lease_next(&c, workers[0]);
  assert_non_null(first);
  assert_true(job_queue_size(workers[3]->sticky) > 0);
  hub_worker *leaving = workers[3];
  uint64_t left_idx = leaving->worker_idx;
  size_t held = leaving->running; /* back to the queue as it leaves */
  assert_true(held > 0);
  memcpy(before, after, sizeof(before));
  hub_worker_remove(c.hub, leaving);
  size_t taken = 0;
  for (bool any = true; any;) {
    any = false;
    for (size_t w = 0; w < 3; w++) {
      job_record *job = lease_next(&c, workers[w]);
      if (job != NULL) {
        any = true;
        taken++;
        size_t i = subject_index(job);
        assert_int_equal(workers[w]->worker_idx, router_owner(&c, i));
        after[i] = workers[w]->worker_idx;
      }
    }
  }
  assert_int_equal(taken, SUBJECTS - 1 + held); /* none lost */
  size_t moved_unneeded = 0;
  for (size_t i = 0; i < SUBJECTS; i++) {
    assert_true(router_owner(&c, i) != left_idx);
    if (before[i] != left_idx) {
      moved_unneeded += router_owner(&c, i) != before[i];
    }
  }
  assert_true(moved_unneeded <= SUBJECTS * 3 / 100);
  core_close(&c);
}

/* Fan-out: two observers both hear every transition of a job, once, in
 * order, and those of no other job in between. */
static void test_observers_hear_each_transition_once_in_order(void **state) {
  (void)state;
  core c;
  core_open(&c, 2);
  recorder first = {0}, second = {0};
  listen(&c, &first);
  listen(&c, &second);
  hub_worker *a = add_worker(&c);
  job_record *job = submit(&c, 0, NULL, 0);
  uint64_t seq = job->entry.sequence;
  assert_ptr_equal(lease_next(&c, a), job);
  hub_worker_remove(c.hub, a); /* the job goes back: "worker left" */
  assert_int_equal(job->state, QUEUED);
  hub_worker *b = add_worker(&c);
  assert_ptr_equal(lease_next(&c, b), job);
  expire_lease(&c, job); /* the last attempt */
  settle(&c);
  const transition want[] = {{seq, SUBMITTED, QUEUED},
                             {seq, QUEUED, IN_PROGRESS},
                             {seq, IN_PROGRESS, QUEUED},
                             {seq, QUEUED, IN_PROGRESS},
                             {seq, IN_PROGRESS, FAILED}};
  assert_transitions(&first, want, 5);
  assert_transitions(&second, want, 5);
  core_close(&c);
}

/* Recovery. */

/* A stored job of POOL, JOB_TYPE in state, its status part in status
 * (reset). */
static stored_job stored(uint64_t sequence, int state, uint32_t attempts,
                         int32_t priority, int64_t lease_expires_us,
                         rpc_buffer *status) {
  job_record *job = job_record_new(sequence, NULL, 0, NULL, NULL);
  assert_non_null(job);
  job->state = state;
  job->attempts = attempts;
  job->max_attempts = 3;
  rpc_buffer_reset(status);
  assert_int_equal(job_record_pack_status(job, status), 0);
  job_record_free(job);
  return (stored_job){.sequence = sequence,
                      .state = state,
                      .pool_id = POOL,
                      .job_type_id = JOB_TYPE,
                      .priority = priority,
                      .created_us = 1,
                      .lease_expires_us = lease_expires_us,
                      .max_attempts = 3,
                      .leases = attempts,
                      .status = status->data,
                      .status_size = status->len};
}

/* docs/core-design.md "Recovery": QUEUED jobs to the queue; IN_PROGRESS
 * ones whose lease expired while the hub was down QUEUED (attempt
 * counted, the transition written), the others keep their lease until
 * expiry; DONE and FAILED stay for Get; new ids follow the last. */
static void test_recovery_from_a_store_image(void **state) {
  (void)state;
  int64_t now = time_now_us();
  rpc_buffer status[7];
  for (size_t i = 0; i < 7; i++) {
    rpc_buffer_init(&status[i]);
  }
  stored_job image[] = {
      stored(2, QUEUED, 0, 0, 0, &status[0]),
      stored(3, IN_PROGRESS, 1, 0, now + 60000000, &status[1]),
      stored(5, IN_PROGRESS, 2, 0, now - 1000000, &status[2]),
      stored(6, DONE, 1, 0, 0, &status[3]),
      stored(7, FAILED, 3, 0, 0, &status[4]),
      stored(8, QUEUED, 1, 5, 0, &status[5]),
      stored(9, QUEUED, 0, 0, 0, &status[6]),
  };
  fake_store_set_image(image, 7);
  core c;
  core_open(&c, 3);
  assert_int_equal(hub_job_count(c.hub), 7);
  int want_state[] = {QUEUED, IN_PROGRESS, QUEUED, DONE,
                      FAILED, QUEUED,      QUEUED};
  for (size_t i = 0; i < 7; i++) {
    char id[JOB_ID_SIZE];
    job_id_format(image[i].sequence, id);
    job_record *job = hub_find_job(c.hub, id);
    assert_non_null(job);
    assert_int_equal(job->state, want_state[i]);
    assert_int_equal(job->attempts, image[i].leases);
    assert_int_equal(job->entry.queued, want_state[i] == QUEUED);
    assert_null(job->holder);
  }
  job_record *leased = hub_find_job(c.hub, "0000000000000003");
  assert_true(leased->lease.queued);
  assert_int_equal(leased->lease.due_us, now + 60000000);
  uint32_t pool_idx;
  assert_int_equal(pool_idx_pack(POOL, JOB_TYPE, &pool_idx), 0);
  hub_pool *pool = hub_pool_get(c.hub, pool_idx, false);
  assert_non_null(pool);
  assert_int_equal(pool->queued, 4);
  assert_int_equal(pool->in_progress, 1);
  assert_int_equal(pool->done, 1);
  assert_int_equal(pool->failed, 1);
  settle(&c);
  assert_int_equal(fake_store_state(5), QUEUED);
  assert_int_equal(fake_store_state(2), -1); /* unchanged: not written */
  size_t n;
  const fake_event *events = fake_store_events(5, &n);
  assert_int_equal(n, 1);
  assert_int_equal(events[0].from_state, IN_PROGRESS);
  assert_int_equal(events[0].to_state, QUEUED);

  /* The queue's order is priority, then id; a new job's id follows. */
  hub_worker *worker = add_worker(&c);
  job_record *fresh = submit(&c, 0, NULL, 0);
  assert_int_equal(fresh->entry.sequence, 10);
  const uint64_t order[] = {8, 2, 5, 9, 10};
  for (size_t i = 0; i < 5; i++) {
    job_record *job = lease_next(&c, worker);
    assert_non_null(job);
    assert_int_equal(job->entry.sequence, order[i]);
  }
  assert_null(lease_next(&c, worker));
  core_close(&c);
  for (size_t i = 0; i < 7; i++) {
    rpc_buffer_free(&status[i]);
  }
}

int main(void) {
  rpc_log_set_level(RPC_LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_queue_order),
      cmocka_unit_test(test_lease_expiry_requeues_then_fails),
      cmocka_unit_test(test_earlier_and_forged_lease_ids_do_not_match),
      cmocka_unit_test(test_sticky_routing_on_join_and_leave),
      cmocka_unit_test(test_observers_hear_each_transition_once_in_order),
      cmocka_unit_test(test_recovery_from_a_store_image),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
