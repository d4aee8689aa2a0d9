/* job_queue.c: binary heaps of intrusive entries, one ready heap per
 * pool_idx (found through an open-addressing table) and one delayed heap
 * for everything not yet due. */
#include "server/core/job_queue.h"

#include <stdlib.h>

#define ENTRY_OF(heap_node) BINARY_HEAP_ENTRY(heap_node, job_queue_entry, node)
#define CONST_ENTRY_OF(heap_node)                                              \
  BINARY_HEAP_CONST_ENTRY(heap_node, job_queue_entry, node)

typedef struct ready_heap {
  binary_heap heap;
  size_t reserved; /* room kept for delayed entries of this pool */
} ready_heap;

typedef struct pool_slot {
  uint32_t key; /* pool_idx + 1; 0: empty */
  ready_heap *ready;
} pool_slot;

struct job_queue {
  pool_slot *pools;
  size_t pool_count;
  size_t pool_cap; /* a power of two */
  binary_heap delayed;
  size_t size;
};

static bool ready_before(const binary_heap_node *node_a,
                         const binary_heap_node *node_b) {
  const job_queue_entry *a = CONST_ENTRY_OF(node_a);
  const job_queue_entry *b = CONST_ENTRY_OF(node_b);
  if (a->priority != b->priority) {
    return a->priority > b->priority;
  }
  return a->sequence < b->sequence;
}

static bool delayed_before(const binary_heap_node *node_a,
                           const binary_heap_node *node_b) {
  const job_queue_entry *a = CONST_ENTRY_OF(node_a);
  const job_queue_entry *b = CONST_ENTRY_OF(node_b);
  if (a->not_before_us != b->not_before_us) {
    return a->not_before_us < b->not_before_us;
  }
  return a->sequence < b->sequence;
}

/* The entry that comes out of h first, or NULL. */
static job_queue_entry *first_of(const binary_heap *h) {
  binary_heap_node *first = binary_heap_first(h);
  return first != NULL ? ENTRY_OF(first) : NULL;
}

job_queue *job_queue_new(void) {
  job_queue *queue = calloc(1, sizeof(*queue));
  if (queue != NULL) {
    binary_heap_init(&queue->delayed);
  }
  return queue;
}

void job_queue_free(job_queue *queue) {
  if (queue == NULL) {
    return;
  }
  for (size_t i = 0; i < queue->pool_cap; i++) {
    if (queue->pools[i].ready != NULL) {
      binary_heap_free(&queue->pools[i].ready->heap);
      free(queue->pools[i].ready);
    }
  }
  free(queue->pools);
  binary_heap_free(&queue->delayed);
  free(queue);
}

static size_t slot_of(const pool_slot *slots, size_t cap, uint32_t pool_idx) {
  size_t i = (pool_idx * 2654435761u) & (cap - 1); /* Knuth's multiplier */
  while (slots[i].key != 0 && slots[i].key != pool_idx + 1) {
    i = (i + 1) & (cap - 1);
  }
  return i;
}

static ready_heap *find_ready(const job_queue *queue, uint32_t pool_idx) {
  if (queue->pool_cap == 0) {
    return NULL;
  }
  return queue->pools[slot_of(queue->pools, queue->pool_cap, pool_idx)].ready;
}

/* The ready heap of pool_idx, made if missing. NULL: no memory. */
static ready_heap *ready_heap_of(job_queue *queue, uint32_t pool_idx) {
  ready_heap *found = find_ready(queue, pool_idx);
  if (found != NULL) {
    return found;
  }
  if ((queue->pool_count + 1) * 2 > queue->pool_cap) {
    size_t cap = queue->pool_cap ? queue->pool_cap * 2 : 16;
    pool_slot *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL) {
      return NULL;
    }
    for (size_t i = 0; i < queue->pool_cap; i++) {
      if (queue->pools[i].key != 0) {
        slots[slot_of(slots, cap, queue->pools[i].key - 1)] = queue->pools[i];
      }
    }
    free(queue->pools);
    queue->pools = slots;
    queue->pool_cap = cap;
  }
  ready_heap *ready = calloc(1, sizeof(*ready));
  if (ready == NULL) {
    return NULL;
  }
  binary_heap_init(&ready->heap);
  queue->pools[slot_of(queue->pools, queue->pool_cap, pool_idx)] =
      (pool_slot){pool_idx + 1, ready};
  queue->pool_count++;
  return ready;
}

int job_queue_push(job_queue *queue, job_queue_entry *entry, int64_t now_us) {
  ready_heap *ready = ready_heap_of(queue, entry->pool_idx);
  if (ready == NULL ||
      binary_heap_reserve(&ready->heap, ready->reserved + 1) != 0) {
    return -1;
  }
  entry->delayed = entry->not_before_us > now_us;
  if (entry->delayed) {
    if (binary_heap_reserve(&queue->delayed, 1) != 0) {
      return -1;
    }
    ready->reserved++; /* promotion will need no memory */
    binary_heap_insert(&queue->delayed, &entry->node, delayed_before);
  } else {
    binary_heap_insert(&ready->heap, &entry->node, ready_before);
  }
  entry->queued = true;
  queue->size++;
  return 0;
}

job_queue_entry *job_queue_peek(const job_queue *queue, uint32_t pool_idx) {
  const ready_heap *ready = find_ready(queue, pool_idx);
  return ready != NULL ? first_of(&ready->heap) : NULL;
}

job_queue_entry *job_queue_pop(job_queue *queue, uint32_t pool_idx) {
  job_queue_entry *entry = job_queue_peek(queue, pool_idx);
  if (entry != NULL) {
    job_queue_remove(queue, entry);
  }
  return entry;
}

void job_queue_remove(job_queue *queue, job_queue_entry *entry) {
  if (!entry->queued) {
    return;
  }
  ready_heap *ready = find_ready(queue, entry->pool_idx);
  if (entry->delayed) {
    binary_heap_remove(&queue->delayed, &entry->node, delayed_before);
    ready->reserved--;
  } else {
    binary_heap_remove(&ready->heap, &entry->node, ready_before);
  }
  entry->queued = false;
  entry->delayed = false;
  queue->size--;
}

int64_t job_queue_promote(job_queue *queue, int64_t now_us,
                          void (*on_ready)(uint32_t pool_idx, void *arg),
                          void *arg) {
  job_queue_entry *entry;
  while ((entry = first_of(&queue->delayed)) != NULL &&
         entry->not_before_us <= now_us) {
    binary_heap_remove(&queue->delayed, &entry->node, delayed_before);
    ready_heap *ready = find_ready(queue, entry->pool_idx);
    ready->reserved--;
    entry->delayed = false;
    binary_heap_insert(&ready->heap, &entry->node, ready_before);
    if (on_ready != NULL) {
      on_ready(entry->pool_idx, arg);
    }
  }
  entry = first_of(&queue->delayed);
  return entry != NULL ? entry->not_before_us : INT64_MAX;
}

size_t job_queue_ready_count(const job_queue *queue, uint32_t pool_idx) {
  const ready_heap *ready = find_ready(queue, pool_idx);
  return ready != NULL ? ready->heap.count : 0;
}

size_t job_queue_size(const job_queue *queue) { return queue->size; }
