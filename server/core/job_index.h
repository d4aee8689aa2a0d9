/* job_index.h: the hub's jobs by sequence number (the number a job id
 * spells). Sequences are handed out in order, so the index is a directory
 * of pages of 4096 slots: a lookup is two loads, and growing never moves
 * a slot, so no insert pauses the core to rehash, as a hash table's would
 * at a million jobs. The index owns no value. */
#ifndef JOBHUB_SERVER_CORE_JOB_INDEX_H
#define JOBHUB_SERVER_CORE_JOB_INDEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct job_index job_index;

/* The highest sequence the index takes: its directory costs 8 bytes per
 * page below the highest one in use. */
#define JOB_INDEX_MAX_SEQUENCE ((UINT64_C(1) << 40) - 1)

/* job_index_new returns an empty index, or NULL (no memory). */
job_index *job_index_new(void);

/* job_index_free frees the index, not the values. */
void job_index_free(job_index *index);

/* job_index_put sets the value (not NULL) of sequence, replacing any.
 * Returns 0, or -1 (no memory, or sequence over JOB_INDEX_MAX_SEQUENCE:
 * the index is unchanged). */
int job_index_put(job_index *index, uint64_t sequence, void *value);

/* job_index_get returns the value of sequence, or NULL. */
void *job_index_get(const job_index *index, uint64_t sequence);

/* job_index_remove clears sequence's value (nothing if it had none); a
 * page left empty is freed. */
void job_index_remove(job_index *index, uint64_t sequence);

/* job_index_count returns how many values the index holds. */
size_t job_index_count(const job_index *index);

#endif
