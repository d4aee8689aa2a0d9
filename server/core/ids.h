/* ids.h: the existing hub's packed ids, so its users' ids carry over.
 *
 *   pool_idx   = (pool_id << 10) | job_type_id                 20 bits
 *   worker_idx = (pool_id << 20) | (job_type_id << 10) | worker_id  30 bits
 *
 * Every field is 10 bits (0..1023); a value that does not fit is refused,
 * never truncated. */
#ifndef JOBHUB_SERVER_CORE_IDS_H
#define JOBHUB_SERVER_CORE_IDS_H

#include <stdint.h>

#define JOBHUB_ID_FIELD_BITS 10
#define JOBHUB_ID_FIELD_MAX ((1u << JOBHUB_ID_FIELD_BITS) - 1) /* 1023 */

/* pool_idx_pack stores the pool_idx of pool_id and job_type_id. Returns 0,
 * or -1 when a field is over JOBHUB_ID_FIELD_MAX. */
int pool_idx_pack(uint32_t pool_id, uint32_t job_type_id, uint32_t *pool_idx);

/* pool_idx_unpack splits pool_idx. Returns 0, or -1 when it has bits above
 * the 20 it may use. */
int pool_idx_unpack(uint32_t pool_idx, uint32_t *pool_id,
                    uint32_t *job_type_id);

/* worker_idx_pack stores the worker_idx of the three fields. Returns 0, or
 * -1 when a field is over JOBHUB_ID_FIELD_MAX. */
int worker_idx_pack(uint32_t pool_id, uint32_t job_type_id, uint32_t worker_id,
                    uint64_t *worker_idx);

/* worker_idx_unpack splits worker_idx. Returns 0, or -1 when it has bits
 * above the 30 it may use. */
int worker_idx_unpack(uint64_t worker_idx, uint32_t *pool_id,
                      uint32_t *job_type_id, uint32_t *worker_id);

#endif
