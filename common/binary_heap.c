/* binary_heap.c: the array of a binary heap (children of i at 2i+1 and
 * 2i+2); the sifts are inline in binary_heap.h. */
#include "common/binary_heap.h"

#include <stdlib.h>

/* The first array's length: enough for most queues without a realloc. */
#define FIRST_CAPACITY 16

void binary_heap_init(binary_heap *heap) { *heap = (binary_heap){NULL, 0, 0}; }

void binary_heap_free(binary_heap *heap) {
  free(heap->items);
  binary_heap_init(heap);
}

int binary_heap_reserve(binary_heap *heap, size_t extra) {
  size_t need = heap->count + extra;
  if (need <= heap->capacity) {
    return 0;
  }
  size_t capacity = heap->capacity ? heap->capacity * 2 : FIRST_CAPACITY;
  while (capacity < need) {
    capacity *= 2;
  }
  binary_heap_node **items = realloc(heap->items, capacity * sizeof(*items));
  if (items == NULL) {
    return -1;
  }
  heap->items = items;
  heap->capacity = capacity;
  return 0;
}
