/* deadline_heap.c: a binary_heap whose order is the entries' due_us. */
#include "common/deadline_heap.h"

#define ENTRY_OF(heap_node)                                                    \
  BINARY_HEAP_ENTRY(heap_node, deadline_heap_entry, node)

static bool due_before(const binary_heap_node *a, const binary_heap_node *b) {
  return BINARY_HEAP_CONST_ENTRY(a, deadline_heap_entry, node)->due_us <
         BINARY_HEAP_CONST_ENTRY(b, deadline_heap_entry, node)->due_us;
}

void deadline_heap_init(deadline_heap *heap) { binary_heap_init(&heap->heap); }

void deadline_heap_free(deadline_heap *heap) { binary_heap_free(&heap->heap); }

int deadline_heap_push(deadline_heap *heap, deadline_heap_entry *entry) {
  if (binary_heap_push(&heap->heap, &entry->node, due_before) != 0) {
    return -1;
  }
  entry->queued = true;
  return 0;
}

void deadline_heap_update(deadline_heap *heap, deadline_heap_entry *entry) {
  binary_heap_update(&heap->heap, &entry->node, due_before);
}

void deadline_heap_remove(deadline_heap *heap, deadline_heap_entry *entry) {
  binary_heap_remove(&heap->heap, &entry->node, due_before);
  entry->queued = false;
}

deadline_heap_entry *deadline_heap_first(const deadline_heap *heap) {
  binary_heap_node *first = binary_heap_first(&heap->heap);
  return first != NULL ? ENTRY_OF(first) : NULL;
}
