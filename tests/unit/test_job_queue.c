/* test_job_queue.c: priority then FIFO, pools apart, not_before delays,
 * removal anywhere, checked against a reference ordering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "server/core/job_queue.h"

static job_queue_entry entry_of(int32_t priority, uint64_t sequence,
                                uint32_t pool_idx, int64_t not_before_us) {
  return (job_queue_entry){.priority = priority,
                           .sequence = sequence,
                           .pool_idx = pool_idx,
                           .not_before_us = not_before_us};
}

static void test_priority_then_oldest_first(void **state) {
  (void)state;
  job_queue *queue = job_queue_new();
  int32_t priorities[] = {0, 5, 0, 5, 1};
  job_queue_entry entries[5];
  for (int i = 0; i < 5; i++) {
    entries[i] = entry_of(priorities[i], (uint64_t)i + 1, 1027, 0);
    assert_int_equal(job_queue_push(queue, &entries[i], 100), 0);
  }
  uint64_t expected[] = {2, 4, 5, 1, 3};
  for (int i = 0; i < 5; i++) {
    job_queue_entry *next = job_queue_pop(queue, 1027);
    assert_non_null(next);
    assert_true(next->sequence == expected[i]);
    assert_false(next->queued);
  }
  assert_null(job_queue_pop(queue, 1027));
  assert_int_equal(job_queue_size(queue), 0);
  job_queue_free(queue);
}

static void test_pools_are_apart(void **state) {
  (void)state;
  job_queue *queue = job_queue_new();
  job_queue_entry a = entry_of(0, 1, 1, 0), b = entry_of(9, 2, 2, 0);
  assert_int_equal(job_queue_push(queue, &a, 0), 0);
  assert_int_equal(job_queue_push(queue, &b, 0), 0);
  assert_ptr_equal(job_queue_peek(queue, 1), &a);
  assert_ptr_equal(job_queue_peek(queue, 2), &b);
  assert_null(job_queue_peek(queue, 3));
  assert_int_equal(job_queue_ready_count(queue, 1), 1);
  job_queue_free(queue);
}

static int woken;
static void on_ready(uint32_t pool_idx, void *arg) {
  (void)arg;
  assert_int_equal(pool_idx, 7);
  woken++;
}

static void test_not_before_delays(void **state) {
  (void)state;
  job_queue *queue = job_queue_new();
  job_queue_entry later = entry_of(9, 1, 7, 5000);
  job_queue_entry soon = entry_of(0, 2, 7, 2000);
  job_queue_entry now = entry_of(0, 3, 7, 0);
  assert_int_equal(job_queue_push(queue, &later, 1000), 0);
  assert_int_equal(job_queue_push(queue, &soon, 1000), 0);
  assert_int_equal(job_queue_push(queue, &now, 1000), 0);
  assert_true(later.delayed && soon.delayed && !now.delayed);
  assert_int_equal(job_queue_ready_count(queue, 7), 1);
  woken = 0;
  assert_true(job_queue_promote(queue, 1500, on_ready, NULL) == 2000);
  assert_int_equal(woken, 0);
  assert_true(job_queue_promote(queue, 2000, on_ready, NULL) == 5000);
  assert_int_equal(woken, 1);
  /* Same priority: submission order (sequence) decides, not readiness. */
  assert_ptr_equal(job_queue_pop(queue, 7), &soon);
  assert_ptr_equal(job_queue_pop(queue, 7), &now);
  assert_null(job_queue_pop(queue, 7));
  assert_true(job_queue_promote(queue, 9000, on_ready, NULL) == INT64_MAX);
  assert_ptr_equal(job_queue_pop(queue, 7), &later);
  job_queue_free(queue);
}

static int reference_order(const void *a, const void *b) {
  const job_queue_entry *x = *(job_queue_entry *const *)a;
  const job_queue_entry *y = *(job_queue_entry *const *)b;
  if (x->priority != y->priority) {
    return x->priority > y->priority ? -1 : 1;
  }
  return x->sequence < y->sequence ? -1 : 1;
}

static void test_random_pushes_and_removals_match_reference(void **state) {
  (void)state;
  enum { COUNT = 20000 };
  job_queue_entry *entries = calloc(COUNT, sizeof(*entries));
  job_queue_entry **kept = calloc(COUNT, sizeof(*kept));
  job_queue *queue = job_queue_new();
  srand(42);
  for (int i = 0; i < COUNT; i++) {
    int64_t not_before = rand() % 4 == 0 ? 100 + rand() % 1000 : 0;
    entries[i] = entry_of(rand() % 8, (uint64_t)i, 5, not_before);
    assert_int_equal(job_queue_push(queue, &entries[i], 50), 0);
  }
  size_t kept_count = 0;
  for (int i = 0; i < COUNT; i++) {
    if (rand() % 3 == 0) {
      job_queue_remove(queue, &entries[i]); /* ready or delayed */
      assert_false(entries[i].queued);
    } else {
      kept[kept_count++] = &entries[i];
    }
  }
  assert_int_equal(job_queue_size(queue), kept_count);
  assert_true(job_queue_promote(queue, 10000, NULL, NULL) == INT64_MAX);
  qsort(kept, kept_count, sizeof(*kept), reference_order);
  for (size_t i = 0; i < kept_count; i++) {
    assert_ptr_equal(job_queue_pop(queue, 5), kept[i]);
  }
  assert_null(job_queue_pop(queue, 5));
  job_queue_free(queue);
  free(kept);
  free(entries);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_priority_then_oldest_first),
      cmocka_unit_test(test_pools_are_apart),
      cmocka_unit_test(test_not_before_delays),
      cmocka_unit_test(test_random_pushes_and_removals_match_reference),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
