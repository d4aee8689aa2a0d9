/* deadline_heap.h: a min-heap of intrusive entries ordered by a due time,
 * for lease expiries: the core keeps one timer, for the earliest. A
 * binary_heap keyed by due_us. */
#ifndef JOBHUB_COMMON_DEADLINE_HEAP_H
#define JOBHUB_COMMON_DEADLINE_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/binary_heap.h"

typedef struct deadline_heap_entry {
  int64_t due_us;
  binary_heap_node node; /* the heap's */
  bool queued;           /* the heap's */
} deadline_heap_entry;

typedef struct deadline_heap {
  binary_heap heap;
} deadline_heap;

/* deadline_heap_init makes an empty heap; deadline_heap_free frees its
 * array (never the entries). */
void deadline_heap_init(deadline_heap *heap);
void deadline_heap_free(deadline_heap *heap);

/* deadline_heap_push adds entry (not queued) with its due_us set. Returns
 * 0, or -1 (no memory; not added). */
int deadline_heap_push(deadline_heap *heap, deadline_heap_entry *entry);

/* deadline_heap_update moves a queued entry after its due_us changed. */
void deadline_heap_update(deadline_heap *heap, deadline_heap_entry *entry);

/* deadline_heap_remove takes a queued entry out. */
void deadline_heap_remove(deadline_heap *heap, deadline_heap_entry *entry);

/* deadline_heap_first returns the earliest entry, or NULL. */
deadline_heap_entry *deadline_heap_first(const deadline_heap *heap);

#endif
