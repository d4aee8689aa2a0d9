/* ids.c: pool_idx and worker_idx packing. */
#include "server/core/ids.h"

#define MASK JOBHUB_ID_FIELD_MAX
#define BITS JOBHUB_ID_FIELD_BITS

int pool_idx_pack(uint32_t pool_id, uint32_t job_type_id, uint32_t *pool_idx) {
  if (pool_id > MASK || job_type_id > MASK) {
    return -1;
  }
  *pool_idx = pool_id << BITS | job_type_id;
  return 0;
}

int pool_idx_unpack(uint32_t pool_idx, uint32_t *pool_id,
                    uint32_t *job_type_id) {
  if (pool_idx >> (2 * BITS) != 0) {
    return -1;
  }
  *pool_id = pool_idx >> BITS;
  *job_type_id = pool_idx & MASK;
  return 0;
}

int worker_idx_pack(uint32_t pool_id, uint32_t job_type_id, uint32_t worker_id,
                    uint64_t *worker_idx) {
  if (pool_id > MASK || job_type_id > MASK || worker_id > MASK) {
    return -1;
  }
  *worker_idx = (uint64_t)pool_id << (2 * BITS) |
                (uint64_t)job_type_id << BITS | worker_id;
  return 0;
}

int worker_idx_unpack(uint64_t worker_idx, uint32_t *pool_id,
                      uint32_t *job_type_id, uint32_t *worker_id) {
  if (worker_idx >> (3 * BITS) != 0) {
    return -1;
  }
  *pool_id = (uint32_t)(worker_idx >> (2 * BITS));
  *job_type_id = (uint32_t)(worker_idx >> BITS) & MASK;
  *worker_id = (uint32_t)worker_idx & MASK;
  return 0;
}
