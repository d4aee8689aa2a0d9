/* router.c: the Maglev lookup table of a pool/job-type's workers. */
#include "server/core/router.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Table sizes: primes, so that every skip visits every slot. The table is
 * at least ~1000 slots per worker, which keeps the share of subjects that
 * move on a change close to the ideal 1/N. */
static const uint32_t table_sizes[] = {1021,   4093,    16381,  65521,
                                       262139, 1048573, 4194301};

struct subject_router {
  uint64_t *workers; /* sorted worker_idx values */
  size_t count;
  uint16_t *table; /* slot -> index into workers */
  uint32_t size;   /* slots */
};

/* splitmix64's finalizer: a well-mixed 64-bit value from any input. */
static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9u;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebu;
  x ^= x >> 31;
  return x;
}

static uint64_t hash_bytes(const char *data, size_t len, uint64_t seed) {
  uint64_t hash = 14695981039346656037u ^ seed; /* FNV-1a, then mixed */
  for (size_t i = 0; i < len; i++) {
    hash = (hash ^ (uint8_t)data[i]) * 1099511628211u;
  }
  return mix64(hash);
}

subject_router *subject_router_new(void) {
  return calloc(1, sizeof(subject_router));
}

void subject_router_free(subject_router *router) {
  if (router == NULL) {
    return;
  }
  free(router->workers);
  free(router->table);
  free(router);
}

static int compare_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Fills table: workers take turns claiming their next preferred free slot
 * (Maglev's population). */
static int populate(uint16_t *table, uint32_t size, const uint64_t *workers,
                    size_t count) {
  uint32_t *next = calloc(count, sizeof(*next)); /* preference reached */
  uint32_t *offset = calloc(count, sizeof(*offset));
  uint32_t *skip = calloc(count, sizeof(*skip));
  bool *taken = calloc(size, sizeof(*taken));
  int rv = -1;
  if (next == NULL || offset == NULL || skip == NULL || taken == NULL) {
    goto out;
  }
  for (size_t i = 0; i < count; i++) {
    offset[i] = (uint32_t)(mix64(workers[i] ^ 0x6a09e667f3bcc909u) % size);
    skip[i] =
        (uint32_t)(mix64(workers[i] ^ 0xbb67ae8584caa73bu) % (size - 1)) + 1;
  }
  uint32_t filled = 0;
  while (filled < size) {
    for (size_t i = 0; i < count && filled < size; i++) {
      uint32_t slot;
      do {
        slot = (uint32_t)((offset[i] + (uint64_t)next[i] * skip[i]) % size);
        next[i]++;
      } while (taken[slot]);
      taken[slot] = true;
      table[slot] = (uint16_t)i;
      filled++;
    }
  }
  rv = 0;
out:
  free(next);
  free(offset);
  free(skip);
  free(taken);
  return rv;
}

int subject_router_set_workers(subject_router *router,
                               const uint64_t *worker_idxs, size_t count) {
  if (count > SUBJECT_ROUTER_MAX_WORKERS) {
    return -1;
  }
  uint64_t *workers = NULL;
  uint16_t *table = NULL;
  uint32_t size = 0;
  if (count > 0) {
    workers = malloc(count * sizeof(*workers));
    if (workers == NULL) {
      return -1;
    }
    memcpy(workers, worker_idxs, count * sizeof(*workers));
    /* Sorted, so the table does not depend on the order given. */
    qsort(workers, count, sizeof(*workers), compare_u64);
    for (size_t i = 1; i < count; i++) {
      if (workers[i] == workers[i - 1]) {
        free(workers);
        return -1;
      }
    }
    size_t wanted = count * 1000;
    size_t last = sizeof(table_sizes) / sizeof(table_sizes[0]) - 1;
    size = table_sizes[last];
    for (size_t i = 0; i < last; i++) {
      if (table_sizes[i] >= wanted) {
        size = table_sizes[i];
        break;
      }
    }
    table = malloc(size * sizeof(*table));
    if (table == NULL || populate(table, size, workers, count) != 0) {
      free(workers);
      free(table);
      return -1;
    }
  }
  free(router->workers);
  free(router->table);
  router->workers = workers;
  router->count = count;
  router->table = table;
  router->size = size;
  return 0;
}

int subject_router_lookup(const subject_router *router, const char *subject,
                          size_t subject_len, uint64_t *worker_idx) {
  if (router->count == 0) {
    return -1;
  }
  uint64_t hash = hash_bytes(subject, subject_len, 0);
  *worker_idx = router->workers[router->table[hash % router->size]];
  return 0;
}

size_t subject_router_worker_count(const subject_router *router) {
  return router->count;
}
