/* test_router.c: sticky subject routing: stability, balance, and how few
 * subjects move when a worker joins or leaves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "server/core/ids.h"
#include "server/core/router.h"

#define SUBJECTS 10000

static uint64_t assignment[SUBJECTS];

static void worker_list(uint64_t *workers, size_t count, uint32_t first) {
  for (size_t i = 0; i < count; i++) {
    assert_int_equal(worker_idx_pack(3, 1, first + (uint32_t)i, &workers[i]),
                     0);
  }
}

static void route_all(const subject_router *router, uint64_t *out) {
  for (int i = 0; i < SUBJECTS; i++) {
    char subject[32];
    int len = snprintf(subject, sizeof(subject), "series-%d", i);
    assert_int_equal(
        subject_router_lookup(router, subject, (size_t)len, &out[i]), 0);
  }
}

static void test_empty_router_has_no_worker(void **state) {
  (void)state;
  subject_router *router = subject_router_new();
  uint64_t worker;
  assert_int_equal(subject_router_lookup(router, "a", 1, &worker), -1);
  subject_router_free(router);
}

static void test_same_set_same_mapping_in_any_order(void **state) {
  (void)state;
  uint64_t workers[10], reversed[10];
  worker_list(workers, 10, 0);
  for (int i = 0; i < 10; i++) {
    reversed[i] = workers[9 - i];
  }
  subject_router *a = subject_router_new();
  subject_router *b = subject_router_new();
  assert_int_equal(subject_router_set_workers(a, workers, 10), 0);
  assert_int_equal(subject_router_set_workers(b, reversed, 10), 0);
  static uint64_t other[SUBJECTS];
  route_all(a, assignment);
  route_all(b, other);
  assert_memory_equal(assignment, other, sizeof(assignment));
  subject_router_free(a);
  subject_router_free(b);
}

static void test_balance_with_ten_workers(void **state) {
  (void)state;
  uint64_t workers[10];
  worker_list(workers, 10, 0);
  subject_router *router = subject_router_new();
  assert_int_equal(subject_router_set_workers(router, workers, 10), 0);
  route_all(router, assignment);
  int counts[10] = {0};
  for (int i = 0; i < SUBJECTS; i++) {
    uint32_t pool, type, worker;
    assert_int_equal(worker_idx_unpack(assignment[i], &pool, &type, &worker),
                     0);
    counts[worker]++;
  }
  int busiest = 0;
  for (int w = 0; w < 10; w++) {
    busiest = counts[w] > busiest ? counts[w] : busiest;
  }
  double mean = SUBJECTS / 10.0;
  printf("busiest worker: %d subjects, %.3fx the mean\n", busiest,
         busiest / mean);
  assert_true(busiest <= 1.1 * mean);
  subject_router_free(router);
}

static void test_eleventh_worker_moves_few_subjects(void **state) {
  (void)state;
  uint64_t workers[11];
  worker_list(workers, 11, 0);
  subject_router *router = subject_router_new();
  assert_int_equal(subject_router_set_workers(router, workers, 10), 0);
  route_all(router, assignment);
  static uint64_t after[SUBJECTS];
  assert_int_equal(subject_router_set_workers(router, workers, 11), 0);
  route_all(router, after);
  int moved = 0, moved_elsewhere = 0;
  for (int i = 0; i < SUBJECTS; i++) {
    if (after[i] != assignment[i]) {
      moved++;
      moved_elsewhere += after[i] != workers[10];
    }
  }
  printf("adding an 11th worker moved %.1f%% of subjects\n",
         100.0 * moved / SUBJECTS);
  assert_true(moved <= SUBJECTS * 12 / 100);
  /* Most of what moves goes to the new worker. */
  assert_true(moved_elsewhere <= moved / 5);
  subject_router_free(router);
}

static void test_leaving_worker_moves_only_its_subjects_mostly(void **state) {
  (void)state;
  uint64_t workers[10];
  worker_list(workers, 10, 0);
  subject_router *router = subject_router_new();
  assert_int_equal(subject_router_set_workers(router, workers, 10), 0);
  route_all(router, assignment);
  static uint64_t after[SUBJECTS];
  assert_int_equal(subject_router_set_workers(router, workers + 1, 9), 0);
  route_all(router, after);
  int moved_unneeded = 0;
  for (int i = 0; i < SUBJECTS; i++) {
    assert_true(after[i] != workers[0]);
    if (assignment[i] != workers[0] && after[i] != assignment[i]) {
      moved_unneeded++;
    }
  }
  printf("removing a worker moved %.1f%% of the others' subjects\n",
         100.0 * moved_unneeded / SUBJECTS);
  assert_true(moved_unneeded <= SUBJECTS * 3 / 100);
  subject_router_free(router);
}

static void test_duplicates_and_too_many_are_refused(void **state) {
  (void)state;
  subject_router *router = subject_router_new();
  uint64_t workers[3] = {7, 9, 7};
  assert_int_equal(subject_router_set_workers(router, workers, 3), -1);
  assert_int_equal(subject_router_worker_count(router), 0);
  assert_int_equal(subject_router_set_workers(router, workers, 2), 0);
  assert_int_equal(subject_router_set_workers(router, workers,
                                              SUBJECT_ROUTER_MAX_WORKERS + 1),
                   -1);
  assert_int_equal(subject_router_worker_count(router), 2); /* kept */
  subject_router_free(router);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty_router_has_no_worker),
      cmocka_unit_test(test_same_set_same_mapping_in_any_order),
      cmocka_unit_test(test_balance_with_ten_workers),
      cmocka_unit_test(test_eleventh_worker_moves_few_subjects),
      cmocka_unit_test(test_leaving_worker_moves_only_its_subjects_mostly),
      cmocka_unit_test(test_duplicates_and_too_many_are_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
