/* hash_table.h: pointers found by a 64-bit hash and a match function, for
 * the core's indexes (jobs by id, idempotency keys, workers, pools). Open
 * addressing with linear probing and backward-shift removal: no
 * tombstones, one array, 16 bytes a slot; the table owns no value. */
#ifndef JOBHUB_COMMON_HASH_TABLE_H
#define JOBHUB_COMMON_HASH_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hash_table hash_table;

/* Tells whether value is the one key names. */
typedef bool (*hash_table_match_fn)(const void *value, const void *key);

/* hash_table_new returns an empty table, or NULL (no memory). */
hash_table *hash_table_new(void);

/* hash_table_free frees the table, not the values. */
void hash_table_free(hash_table *table);

/* hash_table_insert adds value (not NULL) under hash; the caller makes
 * sure it is not there already. Returns 0, or -1 (no memory). */
int hash_table_insert(hash_table *table, uint64_t hash, void *value);

/* hash_table_find returns the value under hash that match accepts for
 * key, or NULL. */
void *hash_table_find(const hash_table *table, uint64_t hash,
                      hash_table_match_fn match, const void *key);

/* hash_table_remove takes value (compared by address) out from under
 * hash. Returns 0, or -1 when it is not there. */
int hash_table_remove(hash_table *table, uint64_t hash, const void *value);

/* hash_table_count returns how many values the table holds. */
size_t hash_table_count(const hash_table *table);

/* hash_table_each calls fn for every value, in no order, until fn returns
 * non-zero; fn must not change the table. Returns fn's non-zero or 0. */
int hash_table_each(const hash_table *table, int (*fn)(void *value, void *arg),
                    void *arg);

/* hash_bytes is a 64-bit hash of data (FNV-1a, then mixed), for keys that
 * are strings. */
uint64_t hash_bytes(const void *data, size_t size);

/* hash_u64 mixes an integer key (splitmix64's finalizer). */
uint64_t hash_u64(uint64_t key);

#endif
