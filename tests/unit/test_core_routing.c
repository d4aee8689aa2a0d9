/* test_core_routing.c: sticky routing in the hub core, driven directly
 * (core_harness.h): a subject's jobs all go to the worker the pool's
 * router names, and as workers join and leave only the subjects that
 * must move move (router.h: about 1/N of them), no job lost. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rpc/log.h"
#include "server/core/ids.h"
#include "server/core/job_queue.h"
#include "server/core/registry.h"
#include "server/core/router.h"
#include "tests/unit/core_harness.h"

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

/* Submits a job for each subject wanted (NULL: every one). */
static void submit_subjects(core *c, const bool *wanted) {
  for (size_t i = 0; i < SUBJECTS; i++) {
    if (wanted == NULL || wanted[i]) {
      char name[16];
      subject_name(i, name);
      (void)submit(c, 0, name, 0);
    }
  }
}

/* Lets the workers take every queued job, in turns: each job must go to
 * the worker the router names for its subject, written in owner[subject]
 * (0: none of its jobs was taken). Returns how many were taken. */
static size_t take_every_job(core *c, hub_worker **workers, size_t n_workers,
                             uint64_t owner[SUBJECTS]) {
  memset(owner, 0, SUBJECTS * sizeof(uint64_t));
  size_t taken = 0;
  for (bool any = true; any;) {
    any = false;
    for (size_t w = 0; w < n_workers; w++) {
      job_record *job = lease_next(c, workers[w]);
      if (job != NULL) {
        any = true;
        taken++;
        size_t i = subject_index(job);
        assert_int_equal(workers[w]->worker_idx, router_owner(c, i));
        owner[i] = workers[w]->worker_idx;
      }
    }
  }
  return taken;
}

/* A subject's jobs all go to one worker. A worker that joins takes over
 * about a quarter of the subjects (1/N), few move between the others;
 * one that leaves gives away only its own subjects, and the jobs routed
 * to it but not taken, and those it held, go to their new owners. */
static void test_sticky_routing_on_join_and_leave(void **state) {
  (void)state;
  core c;
  core_open(&c, 3);
  hub_worker *workers[MAX_WORKERS];
  for (size_t w = 0; w < 3; w++) {
    workers[w] = add_worker(&c);
  }
  uint64_t before[SUBJECTS], after[SUBJECTS];
  submit_subjects(&c, NULL);
  submit_subjects(&c, NULL);
  assert_int_equal(take_every_job(&c, workers, 3, before), 2 * SUBJECTS);

  workers[3] = add_worker(&c);
  uint64_t joined_idx = workers[3]->worker_idx;
  submit_subjects(&c, NULL);
  assert_int_equal(take_every_job(&c, workers, 4, after), SUBJECTS);
  size_t moved = 0, moved_elsewhere = 0;
  for (size_t i = 0; i < SUBJECTS; i++) {
    if (after[i] != before[i]) {
      moved++;
      moved_elsewhere += after[i] != joined_idx;
    }
  }
  assert_true(moved >= SUBJECTS / 8 && moved <= SUBJECTS * 35 / 100);
  assert_true(moved_elsewhere <= moved / 5);

  /* Jobs routed to the sticky queue of the worker that then leaves: its
   * subjects' first, so that another worker's Lease routes them there. */
  bool its[SUBJECTS], others[SUBJECTS];
  for (size_t i = 0; i < SUBJECTS; i++) {
    its[i] = after[i] == joined_idx;
    others[i] = !its[i];
  }
  submit_subjects(&c, its);
  submit_subjects(&c, others);
  assert_non_null(lease_next(&c, workers[0]));
  assert_true(job_queue_size(workers[3]->sticky) > 0);
  size_t held = workers[3]->running; /* back to the queue as it leaves */
  assert_true(held > 0);
  hub_worker_remove(c.hub, workers[3]);
  memcpy(before, after, sizeof(before));
  assert_int_equal(take_every_job(&c, workers, 3, after),
                   SUBJECTS - 1 + held); /* none lost */
  size_t moved_unneeded = 0;
  for (size_t i = 0; i < SUBJECTS; i++) {
    uint64_t owner = router_owner(&c, i);
    assert_true(owner != joined_idx);
    moved_unneeded += before[i] != joined_idx && owner != before[i];
  }
  assert_true(moved_unneeded <= SUBJECTS * 3 / 100);
  core_close(&c);
}

int main(void) {
  rpc_log_set_level(RPC_LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sticky_routing_on_join_and_leave),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
