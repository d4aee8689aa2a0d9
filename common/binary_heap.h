/* binary_heap.h: a binary min-heap of intrusive nodes, ordered by a
 * comparison its owner gives. Each node keeps its own index in the heap,
 * so a node leaves or moves from anywhere in O(log n) without a search.
 * The heap owns only its array of pointers, never the nodes; it allocates
 * only when that array grows (binary_heap_reserve, binary_heap_push).
 *
 * The operations that move nodes are inline and take the comparison at
 * each call, not from the heap: with a constant comparison the compiler
 * inlines it into the sifts, so the job queue and the lease heap pay no
 * indirect call per step on the dispatch path. A heap must be given the
 * same comparison at every call. */
#ifndef JOBHUB_COMMON_BINARY_HEAP_H
#define JOBHUB_COMMON_BINARY_HEAP_H

#include <stdbool.h>
#include <stddef.h>

/* Embedded in each entry; the heap writes it while the entry is in it. */
typedef struct binary_heap_node {
  size_t index; /* the heap's: where the node is in items */
} binary_heap_node;

/* Tells whether a comes out before b: a strict order (false for equals),
 * so that equal nodes are never swapped. */
typedef bool (*binary_heap_before_fn)(const binary_heap_node *a,
                                      const binary_heap_node *b);

typedef struct binary_heap {
  binary_heap_node **items; /* items[0] first; items[i] after its parent */
  size_t count;
  size_t capacity;
} binary_heap;

/* BINARY_HEAP_ENTRY gives the entry of type whose member is node, and
 * BINARY_HEAP_CONST_ENTRY the same for a const node (in a comparison). */
#define BINARY_HEAP_ENTRY(node, type, member)                                  \
  ((type *)(void *)((char *)(node)-offsetof(type, member)))
#define BINARY_HEAP_CONST_ENTRY(node, type, member)                            \
  ((const type *)(const void *)((const char *)(node)-offsetof(type, member)))

/* binary_heap_init makes an empty heap. */
void binary_heap_init(binary_heap *heap);

/* binary_heap_free frees the array (never the nodes) and leaves the heap
 * empty, ready for use again. */
void binary_heap_free(binary_heap *heap);

/* binary_heap_reserve makes room for extra more nodes than count, so that
 * as many binary_heap_insert calls need no memory. Returns 0, or -1 (no
 * memory; the heap is unchanged). */
int binary_heap_reserve(binary_heap *heap, size_t extra);

/* binary_heap_first returns the node that comes out first, or NULL when
 * the heap is empty. */
static inline binary_heap_node *binary_heap_first(const binary_heap *heap) {
  return heap->count > 0 ? heap->items[0] : NULL;
}

/* binary_heap_place puts node at index and tells the node where it is. */
static inline void binary_heap_place(binary_heap *heap, size_t index,
                                     binary_heap_node *node) {
  heap->items[index] = node;
  node->index = index;
}

/* binary_heap_sift_up moves the node at index up past every parent it
 * comes before; binary_heap_sift_down moves it down below every child
 * that comes before it. With binary_heap_place, the building blocks of
 * the verbs below. */
static inline void binary_heap_sift_up(binary_heap *heap, size_t index,
                                       binary_heap_before_fn before) {
  binary_heap_node *node = heap->items[index];
  while (index > 0) {
    size_t parent = (index - 1) / 2;
    if (!before(node, heap->items[parent])) {
      break;
    }
    binary_heap_place(heap, index, heap->items[parent]);
    index = parent;
  }
  binary_heap_place(heap, index, node);
}

static inline void binary_heap_sift_down(binary_heap *heap, size_t index,
                                         binary_heap_before_fn before) {
  binary_heap_node *node = heap->items[index];
  for (;;) {
    size_t child = 2 * index + 1;
    if (child >= heap->count) {
      break;
    }
    if (child + 1 < heap->count &&
        before(heap->items[child + 1], heap->items[child])) {
      child++;
    }
    if (!before(heap->items[child], node)) {
      break;
    }
    binary_heap_place(heap, index, heap->items[child]);
    index = child;
  }
  binary_heap_place(heap, index, node);
}

/* binary_heap_insert adds node (in no heap) into room reserved before;
 * it cannot fail. */
static inline void binary_heap_insert(binary_heap *heap, binary_heap_node *node,
                                      binary_heap_before_fn before) {
  heap->items[heap->count] = node;
  binary_heap_sift_up(heap, heap->count++, before);
}

/* binary_heap_push reserves room for node and adds it. Returns 0, or -1
 * (no memory; node is not added). */
static inline int binary_heap_push(binary_heap *heap, binary_heap_node *node,
                                   binary_heap_before_fn before) {
  if (binary_heap_reserve(heap, 1) != 0) {
    return -1;
  }
  binary_heap_insert(heap, node, before);
  return 0;
}

/* binary_heap_update moves node (in the heap) to its place after the
 * fields the order reads changed. */
static inline void binary_heap_update(binary_heap *heap, binary_heap_node *node,
                                      binary_heap_before_fn before) {
  binary_heap_sift_up(heap, node->index, before);
  binary_heap_sift_down(heap, node->index, before);
}

/* binary_heap_remove takes node (in the heap) out, wherever it is. */
static inline void binary_heap_remove(binary_heap *heap, binary_heap_node *node,
                                      binary_heap_before_fn before) {
  binary_heap_node *last = heap->items[--heap->count];
  if (last != node) {
    /* The last node fills the hole and may belong above or below it. */
    binary_heap_place(heap, node->index, last);
    binary_heap_update(heap, last, before);
  }
}

#endif
