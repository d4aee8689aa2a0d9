/* router.h: sticky routing of subjects to the live workers of one
 * (pool_id, job_type_id), through a lookup table built as in Maglev
 * (Eisenbud et al., NSDI 2016): each worker fills table slots in its own
 * pseudo-random order, in turns, so every worker owns an equal share (to
 * one slot) and a join or leave moves about 1/N of the subjects. A lookup
 * is one hash and one array read. */
#ifndef JOBHUB_SERVER_CORE_ROUTER_H
#define JOBHUB_SERVER_CORE_ROUTER_H

#include <stddef.h>
#include <stdint.h>

/* Most workers one table routes to. */
#define SUBJECT_ROUTER_MAX_WORKERS 4096

typedef struct subject_router subject_router;

/* subject_router_new returns a router with no workers, or NULL (no
 * memory). */
subject_router *subject_router_new(void);

/* subject_router_free frees the router. */
void subject_router_free(subject_router *router);

/* subject_router_set_workers rebuilds the table for exactly these workers
 * (their worker_idx values, in any order; the result does not depend on
 * it). Returns 0, or -1 for more than SUBJECT_ROUTER_MAX_WORKERS, a
 * duplicate, or no memory (the router keeps its previous table). */
int subject_router_set_workers(subject_router *router,
                               const uint64_t *worker_idxs, size_t count);

/* subject_router_lookup stores the worker responsible for subject.
 * Returns 0, or -1 when the router has no workers. */
int subject_router_lookup(const subject_router *router, const char *subject,
                          size_t subject_len, uint64_t *worker_idx);

/* subject_router_worker_count returns how many workers the table has. */
size_t subject_router_worker_count(const subject_router *router);

#endif
