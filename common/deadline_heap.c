/* deadline_heap.c: a binary min-heap with indexes kept in the entries. */
#include "common/deadline_heap.h"

#include <stdlib.h>

void deadline_heap_init(deadline_heap *heap) {
  *heap = (deadline_heap){NULL, 0, 0};
}

void deadline_heap_free(deadline_heap *heap) {
  free(heap->items);
  deadline_heap_init(heap);
}

static void put(deadline_heap *heap, size_t i, deadline_heap_entry *entry) {
  heap->items[i] = entry;
  entry->index = i;
}

static void sift_up(deadline_heap *heap, size_t i) {
  deadline_heap_entry *entry = heap->items[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (heap->items[parent]->due_us <= entry->due_us) {
      break;
    }
    put(heap, i, heap->items[parent]);
    i = parent;
  }
  put(heap, i, entry);
}

static void sift_down(deadline_heap *heap, size_t i) {
  deadline_heap_entry *entry = heap->items[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= heap->count) {
      break;
    }
    if (child + 1 < heap->count &&
        heap->items[child + 1]->due_us < heap->items[child]->due_us) {
      child++;
    }
    if (entry->due_us <= heap->items[child]->due_us) {
      break;
    }
    put(heap, i, heap->items[child]);
    i = child;
  }
  put(heap, i, entry);
}

int deadline_heap_push(deadline_heap *heap, deadline_heap_entry *entry) {
  if (heap->count == heap->capacity) {
    size_t capacity = heap->capacity ? heap->capacity * 2 : 64;
    deadline_heap_entry **items =
        realloc(heap->items, capacity * sizeof(*items));
    if (items == NULL) {
      return -1;
    }
    heap->items = items;
    heap->capacity = capacity;
  }
  entry->queued = true;
  put(heap, heap->count++, entry);
  sift_up(heap, entry->index);
  return 0;
}

void deadline_heap_update(deadline_heap *heap, deadline_heap_entry *entry) {
  sift_up(heap, entry->index);
  sift_down(heap, entry->index);
}

void deadline_heap_remove(deadline_heap *heap, deadline_heap_entry *entry) {
  size_t i = entry->index;
  entry->queued = false;
  deadline_heap_entry *last = heap->items[--heap->count];
  if (last != entry) {
    put(heap, i, last);
    deadline_heap_update(heap, last);
  }
}

deadline_heap_entry *deadline_heap_first(const deadline_heap *heap) {
  return heap->count > 0 ? heap->items[0] : NULL;
}
