/* test_deadline_heap.c: earliest first, removal and update anywhere,
 * growth, extreme times, and random pushes, removals and updates checked
 * against a reference model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "common/deadline_heap.h"
#include "test_random.h"

/* Removes the first entry, checking that it is queued and no earlier than
 * the previous one; returns it. */
static deadline_heap_entry *pop_first(deadline_heap *heap, int64_t *last) {
  deadline_heap_entry *first = deadline_heap_first(heap);
  assert_non_null(first);
  assert_true(first->queued);
  assert_true(first->due_us >= *last);
  *last = first->due_us;
  deadline_heap_remove(heap, first);
  assert_false(first->queued);
  return first;
}

static void test_empty_heap(void **state) {
  (void)state;
  deadline_heap heap;
  deadline_heap_init(&heap);
  assert_null(deadline_heap_first(&heap));
  assert_int_equal(heap.heap.count, 0);
  deadline_heap_free(&heap);
  assert_null(deadline_heap_first(&heap));
  deadline_heap_free(&heap); /* twice is harmless: free leaves it empty */
}

static void test_earliest_first_with_ties(void **state) {
  (void)state;
  static const int64_t dues[] = {50, 10, 40, 10, 30, 20, 50, 0, -5, 10};
  enum { N = sizeof(dues) / sizeof(dues[0]) };
  static const int64_t sorted[N] = {-5, 0, 10, 10, 10, 20, 30, 40, 50, 50};
  deadline_heap heap;
  deadline_heap_init(&heap);
  deadline_heap_entry entries[N];
  int64_t min = INT64_MAX;
  for (size_t i = 0; i < N; i++) {
    entries[i] = (deadline_heap_entry){.due_us = dues[i]};
    assert_int_equal(deadline_heap_push(&heap, &entries[i]), 0);
    assert_true(entries[i].queued);
    min = dues[i] < min ? dues[i] : min;
    assert_true(deadline_heap_first(&heap)->due_us == min);
  }
  assert_int_equal(heap.heap.count, N);
  int64_t last = INT64_MIN;
  for (size_t i = 0; i < N; i++) {
    deadline_heap_entry *first = pop_first(&heap, &last);
    assert_true(first->due_us == sorted[i]);
  }
  assert_null(deadline_heap_first(&heap));
  for (size_t i = 0; i < N; i++) {
    assert_false(entries[i].queued);
  }
  deadline_heap_free(&heap);
}

static void test_remove_anywhere(void **state) {
  (void)state;
  enum { N = 15 };
  for (size_t removed = 0; removed < N; removed++) {
    deadline_heap heap;
    deadline_heap_init(&heap);
    deadline_heap_entry entries[N];
    for (size_t i = 0; i < N; i++) {
      /* A mix of orders, so the removed one sits at every depth. */
      entries[i] = (deadline_heap_entry){.due_us = (int64_t)((i * 7) % N)};
      assert_int_equal(deadline_heap_push(&heap, &entries[i]), 0);
    }
    deadline_heap_remove(&heap, &entries[removed]);
    assert_false(entries[removed].queued);
    assert_int_equal(heap.heap.count, N - 1);
    int64_t last = INT64_MIN;
    for (size_t k = 0; k < N - 1; k++) {
      deadline_heap_entry *first = pop_first(&heap, &last);
      assert_ptr_not_equal(first, &entries[removed]);
    }
    assert_null(deadline_heap_first(&heap));
    /* A removed entry may be pushed again. */
    assert_int_equal(deadline_heap_push(&heap, &entries[removed]), 0);
    assert_ptr_equal(deadline_heap_first(&heap), &entries[removed]);
    deadline_heap_free(&heap);
  }
}

static void test_update_moves_both_ways(void **state) {
  (void)state;
  deadline_heap heap;
  deadline_heap_init(&heap);
  deadline_heap_entry a = {.due_us = 100}, b = {.due_us = 200},
                      c = {.due_us = 300}, d = {.due_us = 400};
  deadline_heap_entry *all[] = {&a, &b, &c, &d};
  for (size_t i = 0; i < 4; i++) {
    assert_int_equal(deadline_heap_push(&heap, all[i]), 0);
  }
  assert_ptr_equal(deadline_heap_first(&heap), &a);
  d.due_us = 50; /* later to earliest */
  deadline_heap_update(&heap, &d);
  assert_ptr_equal(deadline_heap_first(&heap), &d);
  d.due_us = 1000; /* earliest to latest */
  deadline_heap_update(&heap, &d);
  assert_ptr_equal(deadline_heap_first(&heap), &a);
  a.due_us = 250; /* the first, to the middle */
  deadline_heap_update(&heap, &a);
  assert_ptr_equal(deadline_heap_first(&heap), &b);
  b.due_us = 200; /* unchanged */
  deadline_heap_update(&heap, &b);
  assert_ptr_equal(deadline_heap_first(&heap), &b);
  deadline_heap_entry *want[] = {&b, &a, &c, &d};
  int64_t last = INT64_MIN;
  for (size_t i = 0; i < 4; i++) {
    assert_ptr_equal(pop_first(&heap, &last), want[i]);
  }
  deadline_heap_free(&heap);
}

static void test_extreme_times(void **state) {
  (void)state;
  deadline_heap heap;
  deadline_heap_init(&heap);
  deadline_heap_entry entries[] = {{.due_us = INT64_MAX},
                                   {.due_us = 0},
                                   {.due_us = INT64_MIN},
                                   {.due_us = -1},
                                   {.due_us = INT64_MAX - 1}};
  for (size_t i = 0; i < 5; i++) {
    assert_int_equal(deadline_heap_push(&heap, &entries[i]), 0);
  }
  static const int64_t want[] = {INT64_MIN, -1, 0, INT64_MAX - 1, INT64_MAX};
  int64_t last = INT64_MIN;
  for (size_t i = 0; i < 5; i++) {
    assert_true(pop_first(&heap, &last)->due_us == want[i]);
  }
  deadline_heap_free(&heap);
}

static void test_grows_past_its_first_array(void **state) {
  (void)state;
  enum { N = 10000 };
  deadline_heap_entry *entries = calloc(N, sizeof(*entries));
  assert_non_null(entries);
  deadline_heap heap;
  deadline_heap_init(&heap);
  for (size_t i = 0; i < N; i++) {
    entries[i].due_us = (int64_t)(N - i); /* each push is a new first */
    assert_int_equal(deadline_heap_push(&heap, &entries[i]), 0);
    assert_ptr_equal(deadline_heap_first(&heap), &entries[i]);
  }
  assert_int_equal(heap.heap.count, N);
  int64_t last = INT64_MIN;
  for (size_t i = 0; i < N; i++) {
    assert_ptr_equal(pop_first(&heap, &last), &entries[N - 1 - i]);
  }
  deadline_heap_free(&heap);
  free(entries);
}

/* The entry at index i of the heap's array. */
static const deadline_heap_entry *entry_at(const deadline_heap *heap,
                                           size_t i) {
  return BINARY_HEAP_CONST_ENTRY(heap->heap.items[i], deadline_heap_entry,
                                 node);
}

/* Checks the heap's own bookkeeping and order, and that its first is the
 * model's earliest. */
static void check_against_model(const deadline_heap *heap,
                                deadline_heap_entry *entries, size_t n) {
  size_t queued = 0;
  int64_t min = INT64_MAX;
  for (size_t i = 0; i < n; i++) {
    if (entries[i].queued) {
      queued++;
      min = entries[i].due_us < min ? entries[i].due_us : min;
      assert_true(entries[i].node.index < heap->heap.count);
      assert_ptr_equal(entry_at(heap, entries[i].node.index), &entries[i]);
    }
  }
  assert_int_equal(heap->heap.count, queued);
  for (size_t i = 1; i < heap->heap.count; i++) {
    assert_true(entry_at(heap, (i - 1) / 2)->due_us <=
                entry_at(heap, i)->due_us);
  }
  deadline_heap_entry *first = deadline_heap_first(heap);
  if (queued == 0) {
    assert_null(first);
  } else {
    assert_non_null(first);
    assert_true(first->due_us == min);
  }
}

static int compare_due(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static void test_random_operations_match_model(void **state) {
  (void)state;
  enum { N = 500, STEPS = 50000 };
  deadline_heap_entry *entries = calloc(N, sizeof(*entries));
  bool *in_model = calloc(N, sizeof(*in_model));
  int64_t *model_due = calloc(N, sizeof(*model_due));
  assert_non_null(entries);
  assert_non_null(in_model);
  assert_non_null(model_due);
  deadline_heap heap;
  deadline_heap_init(&heap);
  uint64_t rng = 12345;
  for (size_t step = 0; step < STEPS; step++) {
    size_t i = random_below(&rng, N);
    /* Few distinct times, so ties are common. */
    int64_t due = (int64_t)random_below(&rng, 1000) - 200;
    size_t op = random_below(&rng, 10);
    if (!in_model[i]) {
      entries[i].due_us = due;
      assert_int_equal(deadline_heap_push(&heap, &entries[i]), 0);
      in_model[i] = true;
      model_due[i] = due;
    } else if (op < 3) {
      deadline_heap_remove(&heap, &entries[i]);
      in_model[i] = false;
    } else if (op < 8) {
      entries[i].due_us = due;
      deadline_heap_update(&heap, &entries[i]);
      model_due[i] = due;
    } else {
      /* Take the first out, as the lease timer does. */
      deadline_heap_entry *first = deadline_heap_first(&heap);
      size_t j = (size_t)(first - entries);
      assert_true(j < N && in_model[j]);
      deadline_heap_remove(&heap, first);
      in_model[j] = false;
    }
    for (size_t k = 0; k < N; k++) {
      assert_true(entries[k].queued == in_model[k]);
    }
    if (step % 16 == 0) {
      check_against_model(&heap, entries, N);
    }
  }
  check_against_model(&heap, entries, N);

  /* Draining gives the model's times, sorted. */
  int64_t *want = calloc(N, sizeof(*want));
  assert_non_null(want);
  size_t n = 0;
  for (size_t k = 0; k < N; k++) {
    if (in_model[k]) {
      assert_true(entries[k].due_us == model_due[k]);
      want[n++] = model_due[k];
    }
  }
  qsort(want, n, sizeof(*want), compare_due);
  int64_t last = INT64_MIN;
  for (size_t k = 0; k < n; k++) {
    assert_true(pop_first(&heap, &last)->due_us == want[k]);
  }
  assert_null(deadline_heap_first(&heap));
  deadline_heap_free(&heap);
  free(want);
  free(model_due);
  free(in_model);
  free(entries);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty_heap),
      cmocka_unit_test(test_earliest_first_with_ties),
      cmocka_unit_test(test_remove_anywhere),
      cmocka_unit_test(test_update_moves_both_ways),
      cmocka_unit_test(test_extreme_times),
      cmocka_unit_test(test_grows_past_its_first_array),
      cmocka_unit_test(test_random_operations_match_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
