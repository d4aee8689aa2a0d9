/* test_binary_heap.c: order with ties, removal from every position,
 * updates both ways, reserved room, and random operations checked against
 * a sorted reference (fixed seed, so failures reproduce). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "common/binary_heap.h"
#include "test_random.h"

/* An entry ordered by key, then by sequence: a strict total order, so
 * the expected order of any set is the sorted one. */
typedef struct item {
  int key;
  unsigned sequence;
  binary_heap_node node;
  bool in_heap; /* the test's model */
} item;

#define ITEM_OF(heap_node) BINARY_HEAP_ENTRY(heap_node, item, node)

static int compare_items(const item *a, const item *b) {
  if (a->key != b->key) {
    return a->key < b->key ? -1 : 1;
  }
  return (a->sequence > b->sequence) - (a->sequence < b->sequence);
}

static bool item_before(const binary_heap_node *a, const binary_heap_node *b) {
  return compare_items(BINARY_HEAP_CONST_ENTRY(a, item, node),
                       BINARY_HEAP_CONST_ENTRY(b, item, node)) < 0;
}

static int compare_item_pointers(const void *a, const void *b) {
  return compare_items(*(item *const *)a, *(item *const *)b);
}

/* Checks every node's index and the heap property at every parent. */
static void check_heap(const binary_heap *heap) {
  assert_true(heap->count <= heap->capacity);
  for (size_t i = 0; i < heap->count; i++) {
    assert_int_equal(heap->items[i]->index, i);
    if (i > 0) {
      assert_false(item_before(heap->items[i], heap->items[(i - 1) / 2]));
    }
  }
}

/* Takes the first item out and returns it. */
static item *pop(binary_heap *heap) {
  binary_heap_node *first = binary_heap_first(heap);
  assert_non_null(first);
  binary_heap_remove(heap, first, item_before);
  return ITEM_OF(first);
}

static void test_empty_heap(void **state) {
  (void)state;
  binary_heap heap;
  binary_heap_init(&heap);
  assert_null(binary_heap_first(&heap));
  binary_heap_free(&heap);
  assert_null(binary_heap_first(&heap));
  item one = {.key = 1};
  assert_int_equal(binary_heap_push(&heap, &one.node, item_before), 0);
  assert_ptr_equal(pop(&heap), &one);
  binary_heap_free(&heap);
  binary_heap_free(&heap); /* twice is harmless */
}

static void test_sorted_order_with_ties(void **state) {
  (void)state;
  static const int keys[] = {5, 1, 4, 1, 3, 2, 5, 0, -5, 1, 4, 4};
  enum { N = sizeof(keys) / sizeof(keys[0]) };
  item items[N];
  item *sorted[N];
  binary_heap heap;
  binary_heap_init(&heap);
  for (size_t i = 0; i < N; i++) {
    items[i] = (item){.key = keys[i], .sequence = (unsigned)(N - i)};
    sorted[i] = &items[i];
    assert_int_equal(binary_heap_push(&heap, &items[i].node, item_before), 0);
    check_heap(&heap);
  }
  qsort(sorted, N, sizeof(sorted[0]), compare_item_pointers);
  for (size_t i = 0; i < N; i++) {
    assert_ptr_equal(pop(&heap), sorted[i]);
    check_heap(&heap);
  }
  assert_null(binary_heap_first(&heap));
  binary_heap_free(&heap);
}

static void test_remove_from_every_position(void **state) {
  (void)state;
  enum { N = 31 }; /* five full levels */
  for (size_t removed = 0; removed < N; removed++) {
    item items[N];
    binary_heap heap;
    binary_heap_init(&heap);
    for (size_t i = 0; i < N; i++) {
      items[i] = (item){.key = (int)((i * 11) % N), .sequence = (unsigned)i};
      assert_int_equal(binary_heap_push(&heap, &items[i].node, item_before), 0);
    }
    binary_heap_remove(&heap, &items[removed].node, item_before);
    check_heap(&heap);
    assert_int_equal(heap.count, N - 1);
    item *last = NULL;
    for (size_t k = 0; k < N - 1; k++) {
      item *next = pop(&heap);
      assert_ptr_not_equal(next, &items[removed]);
      assert_true(last == NULL || compare_items(last, next) < 0);
      last = next;
    }
    /* A removed node may be pushed again. */
    assert_int_equal(binary_heap_push(&heap, &items[removed].node, item_before),
                     0);
    assert_ptr_equal(binary_heap_first(&heap), &items[removed].node);
    binary_heap_free(&heap);
  }
}

static void test_update_moves_both_ways(void **state) {
  (void)state;
  item a = {.key = 10}, b = {.key = 20}, c = {.key = 30}, d = {.key = 40};
  item *all[] = {&a, &b, &c, &d};
  binary_heap heap;
  binary_heap_init(&heap);
  for (size_t i = 0; i < 4; i++) {
    assert_int_equal(binary_heap_push(&heap, &all[i]->node, item_before), 0);
  }
  d.key = 5; /* last to first */
  binary_heap_update(&heap, &d.node, item_before);
  assert_ptr_equal(binary_heap_first(&heap), &d.node);
  d.key = 100; /* first to last */
  binary_heap_update(&heap, &d.node, item_before);
  assert_ptr_equal(binary_heap_first(&heap), &a.node);
  a.key = 25; /* first to the middle */
  binary_heap_update(&heap, &a.node, item_before);
  check_heap(&heap);
  item *want[] = {&b, &a, &c, &d};
  for (size_t i = 0; i < 4; i++) {
    assert_ptr_equal(pop(&heap), want[i]);
  }
  binary_heap_free(&heap);
}

static void test_reserved_room_needs_no_memory(void **state) {
  (void)state;
  enum { N = 1000 };
  item *items = calloc(N, sizeof(*items));
  assert_non_null(items);
  binary_heap heap;
  binary_heap_init(&heap);
  assert_int_equal(binary_heap_reserve(&heap, N), 0);
  assert_true(heap.capacity >= N);
  binary_heap_node **array = heap.items;
  for (size_t i = 0; i < N; i++) {
    items[i].key = (int)(N - i); /* each insert is a new first */
    binary_heap_insert(&heap, &items[i].node, item_before);
    assert_ptr_equal(binary_heap_first(&heap), &items[i].node);
  }
  assert_ptr_equal(heap.items, array); /* never moved: never reallocated */
  assert_int_equal(binary_heap_reserve(&heap, 0), 0);
  assert_ptr_equal(heap.items, array);
  check_heap(&heap);
  for (size_t i = 0; i < N; i++) {
    assert_ptr_equal(pop(&heap), &items[N - 1 - i]);
  }
  binary_heap_free(&heap);
  free(items);
}

/* Random pushes, removals from anywhere, key changes and pops, each pop
 * checked against the smallest of the model; at the end the heap drains
 * in the model's sorted order. */
static void test_random_operations_match_sorted_reference(void **state) {
  (void)state;
  enum { N = 400, STEPS = 40000 };
  item *items = calloc(N, sizeof(*items));
  item **sorted = calloc(N, sizeof(*sorted));
  assert_non_null(items);
  assert_non_null(sorted);
  for (size_t i = 0; i < N; i++) {
    items[i].sequence = (unsigned)i;
  }
  binary_heap heap;
  binary_heap_init(&heap);
  uint64_t rng = 20261205;
  size_t in_heap = 0;
  for (size_t step = 0; step < STEPS; step++) {
    item *it = &items[random_below(&rng, N)];
    int key = (int)random_below(&rng, 100) - 30; /* many ties */
    size_t op = random_below(&rng, 10);
    if (!it->in_heap) {
      it->key = key;
      assert_int_equal(binary_heap_push(&heap, &it->node, item_before), 0);
      it->in_heap = true;
      in_heap++;
    } else if (op < 3) {
      binary_heap_remove(&heap, &it->node,
                         item_before); /* often from the middle */
      it->in_heap = false;
      in_heap--;
    } else if (op < 7) {
      it->key = key;
      binary_heap_update(&heap, &it->node, item_before);
    } else {
      item *smallest = NULL;
      for (size_t k = 0; k < N; k++) {
        if (items[k].in_heap &&
            (smallest == NULL || compare_items(&items[k], smallest) < 0)) {
          smallest = &items[k];
        }
      }
      assert_ptr_equal(pop(&heap), smallest);
      smallest->in_heap = false;
      in_heap--;
    }
    assert_int_equal(heap.count, in_heap);
    if (step % 64 == 0) {
      check_heap(&heap);
    }
  }
  check_heap(&heap);
  size_t n = 0;
  for (size_t k = 0; k < N; k++) {
    if (items[k].in_heap) {
      sorted[n++] = &items[k];
    }
  }
  assert_int_equal(n, heap.count);
  qsort(sorted, n, sizeof(sorted[0]), compare_item_pointers);
  for (size_t k = 0; k < n; k++) {
    assert_ptr_equal(pop(&heap), sorted[k]);
  }
  assert_null(binary_heap_first(&heap));
  binary_heap_free(&heap);
  free(sorted);
  free(items);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty_heap),
      cmocka_unit_test(test_sorted_order_with_ties),
      cmocka_unit_test(test_remove_from_every_position),
      cmocka_unit_test(test_update_moves_both_ways),
      cmocka_unit_test(test_reserved_room_needs_no_memory),
      cmocka_unit_test(test_random_operations_match_sorted_reference),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
