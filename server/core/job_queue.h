/* job_queue.h: jobs waiting for a worker, per pool_idx: highest priority
 * first, then oldest (lowest sequence) first; jobs whose not_before is in
 * the future wait in a delayed heap until job_queue_promote makes them
 * ready. Entries are intrusive (embedded in the caller's job record): the
 * queue allocates nothing per job and owns no entry. */
#ifndef JOBHUB_SERVER_CORE_JOB_QUEUE_H
#define JOBHUB_SERVER_CORE_JOB_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/binary_heap.h"

/* Set priority, sequence, not_before_us and pool_idx before a push; the
 * rest is the queue's. */
typedef struct job_queue_entry {
  int32_t priority;      /* higher first */
  uint64_t sequence;     /* lower (older) first among equal priorities */
  int64_t not_before_us; /* not ready before this time; 0: at once */
  uint32_t pool_idx;
  binary_heap_node node; /* the queue's */
  bool delayed;          /* the queue's: in the delayed heap */
  bool queued;           /* the queue's: in some heap */
} job_queue_entry;

typedef struct job_queue job_queue;

/* job_queue_new returns an empty queue, or NULL (no memory). */
job_queue *job_queue_new(void);

/* job_queue_free frees the queue, not the entries. */
void job_queue_free(job_queue *queue);

/* job_queue_push queues entry (not already queued): ready at once, or
 * delayed if its not_before_us is after now_us. Returns 0, or -1 (no
 * memory; the entry is not queued). */
int job_queue_push(job_queue *queue, job_queue_entry *entry, int64_t now_us);

/* job_queue_pop removes and returns the next ready entry of pool_idx, or
 * NULL when none is ready. */
job_queue_entry *job_queue_pop(job_queue *queue, uint32_t pool_idx);

/* job_queue_peek returns it without removing it. */
job_queue_entry *job_queue_peek(const job_queue *queue, uint32_t pool_idx);

/* job_queue_remove takes a queued entry out, wherever it is (Cancel). */
void job_queue_remove(job_queue *queue, job_queue_entry *entry);

/* job_queue_promote makes every delayed entry due by now_us ready and
 * returns the not_before_us of the next delayed one, or INT64_MAX. It
 * calls on_ready (may be NULL) for each entry made ready, so that idle
 * workers can be woken. It cannot fail: the push of a delayed entry
 * reserved its room in the ready heap. */
int64_t job_queue_promote(job_queue *queue, int64_t now_us,
                          void (*on_ready)(uint32_t pool_idx, void *arg),
                          void *arg);

/* job_queue_ready_count returns the ready entries of pool_idx, and
 * job_queue_size every entry queued, ready or delayed. */
size_t job_queue_ready_count(const job_queue *queue, uint32_t pool_idx);
size_t job_queue_size(const job_queue *queue);

#endif
