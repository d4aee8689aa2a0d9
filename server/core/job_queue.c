/* job_queue.c: binary heaps of intrusive entries, one ready heap per
 * pool_idx (found through an open-addressing table) and one delayed heap
 * for everything not yet due. */
#include "server/core/job_queue.h"

#include <stdlib.h>

typedef bool (*heap_order)(const job_queue_entry *a, const job_queue_entry *b);

typedef struct heap {
  job_queue_entry **items;
  size_t count;
  size_t cap;
  size_t reserved; /* room kept for delayed entries of this pool */
  heap_order before;
} heap;

typedef struct pool_slot {
  uint32_t key; /* pool_idx + 1; 0: empty */
  heap *ready;
} pool_slot;

struct job_queue {
  pool_slot *pools;
  size_t pool_count;
  size_t pool_cap; /* a power of two */
  heap delayed;
  size_t size;
};

static bool ready_before(const job_queue_entry *a, const job_queue_entry *b) {
  if (a->priority != b->priority) {
    return a->priority > b->priority;
  }
  return a->sequence < b->sequence;
}

static bool delayed_before(const job_queue_entry *a, const job_queue_entry *b) {
  if (a->not_before_us != b->not_before_us) {
    return a->not_before_us < b->not_before_us;
  }
  return a->sequence < b->sequence;
}

static void place(heap *h, size_t index, job_queue_entry *entry) {
  h->items[index] = entry;
  entry->heap_index = index;
}

static void sift_up(heap *h, size_t index) {
  job_queue_entry *entry = h->items[index];
  while (index > 0) {
    size_t parent = (index - 1) / 2;
    if (!h->before(entry, h->items[parent])) {
      break;
    }
    place(h, index, h->items[parent]);
    index = parent;
  }
  place(h, index, entry);
}

static void sift_down(heap *h, size_t index) {
  job_queue_entry *entry = h->items[index];
  for (;;) {
    size_t child = 2 * index + 1;
    if (child >= h->count) {
      break;
    }
    if (child + 1 < h->count &&
        h->before(h->items[child + 1], h->items[child])) {
      child++;
    }
    if (!h->before(h->items[child], entry)) {
      break;
    }
    place(h, index, h->items[child]);
    index = child;
  }
  place(h, index, entry);
}

/* Makes room for extra more items beyond count and reserved. */
static int heap_reserve(heap *h, size_t extra) {
  size_t need = h->count + h->reserved + extra;
  if (need <= h->cap) {
    return 0;
  }
  size_t cap = h->cap ? h->cap * 2 : 16;
  while (cap < need) {
    cap *= 2;
  }
  job_queue_entry **items = realloc(h->items, cap * sizeof(*items));
  if (items == NULL) {
    return -1;
  }
  h->items = items;
  h->cap = cap;
  return 0;
}

static void heap_insert(heap *h, job_queue_entry *entry) {
  place(h, h->count++, entry);
  sift_up(h, entry->heap_index);
}

static void heap_remove(heap *h, job_queue_entry *entry) {
  size_t index = entry->heap_index;
  job_queue_entry *last = h->items[--h->count];
  if (index < h->count) {
    place(h, index, last);
    sift_up(h, index);
    sift_down(h, last->heap_index);
  }
}

job_queue *job_queue_new(void) {
  job_queue *queue = calloc(1, sizeof(*queue));
  if (queue != NULL) {
    queue->delayed.before = delayed_before;
  }
  return queue;
}

void job_queue_free(job_queue *queue) {
  if (queue == NULL) {
    return;
  }
  for (size_t i = 0; i < queue->pool_cap; i++) {
    if (queue->pools[i].ready != NULL) {
      free(queue->pools[i].ready->items);
      free(queue->pools[i].ready);
    }
  }
  free(queue->pools);
  free(queue->delayed.items);
  free(queue);
}

static size_t slot_of(const pool_slot *slots, size_t cap, uint32_t pool_idx) {
  size_t i = (pool_idx * 2654435761u) & (cap - 1); /* Knuth's multiplier */
  while (slots[i].key != 0 && slots[i].key != pool_idx + 1) {
    i = (i + 1) & (cap - 1);
  }
  return i;
}

static heap *find_ready(const job_queue *queue, uint32_t pool_idx) {
  if (queue->pool_cap == 0) {
    return NULL;
  }
  return queue->pools[slot_of(queue->pools, queue->pool_cap, pool_idx)].ready;
}

/* The ready heap of pool_idx, made if missing. NULL: no memory. */
static heap *ready_heap(job_queue *queue, uint32_t pool_idx) {
  heap *found = find_ready(queue, pool_idx);
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
  heap *ready = calloc(1, sizeof(*ready));
  if (ready == NULL) {
    return NULL;
  }
  ready->before = ready_before;
  queue->pools[slot_of(queue->pools, queue->pool_cap, pool_idx)] =
      (pool_slot){pool_idx + 1, ready};
  queue->pool_count++;
  return ready;
}

int job_queue_push(job_queue *queue, job_queue_entry *entry, int64_t now_us) {
  heap *ready = ready_heap(queue, entry->pool_idx);
  if (ready == NULL || heap_reserve(ready, 1) != 0) {
    return -1;
  }
  entry->delayed = entry->not_before_us > now_us;
  if (entry->delayed) {
    if (heap_reserve(&queue->delayed, 1) != 0) {
      return -1;
    }
    ready->reserved++; /* promotion will need no memory */
    heap_insert(&queue->delayed, entry);
  } else {
    heap_insert(ready, entry);
  }
  entry->queued = true;
  queue->size++;
  return 0;
}

job_queue_entry *job_queue_peek(const job_queue *queue, uint32_t pool_idx) {
  const heap *ready = find_ready(queue, pool_idx);
  return ready != NULL && ready->count > 0 ? ready->items[0] : NULL;
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
  heap *ready = find_ready(queue, entry->pool_idx);
  if (entry->delayed) {
    heap_remove(&queue->delayed, entry);
    ready->reserved--;
  } else {
    heap_remove(ready, entry);
  }
  entry->queued = false;
  entry->delayed = false;
  queue->size--;
}

int64_t job_queue_promote(job_queue *queue, int64_t now_us,
                          void (*on_ready)(uint32_t pool_idx, void *arg),
                          void *arg) {
  heap *delayed = &queue->delayed;
  while (delayed->count > 0 && delayed->items[0]->not_before_us <= now_us) {
    job_queue_entry *entry = delayed->items[0];
    heap_remove(delayed, entry);
    heap *ready = find_ready(queue, entry->pool_idx);
    ready->reserved--;
    entry->delayed = false;
    heap_insert(ready, entry);
    if (on_ready != NULL) {
      on_ready(entry->pool_idx, arg);
    }
  }
  return delayed->count > 0 ? delayed->items[0]->not_before_us : INT64_MAX;
}

size_t job_queue_ready_count(const job_queue *queue, uint32_t pool_idx) {
  const heap *ready = find_ready(queue, pool_idx);
  return ready != NULL ? ready->count : 0;
}

size_t job_queue_size(const job_queue *queue) { return queue->size; }
