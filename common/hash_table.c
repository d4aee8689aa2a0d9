/* hash_table.c: open addressing, linear probing, backward-shift removal. */
#include "common/hash_table.h"

#include <stdlib.h>

typedef struct slot {
  uint64_t hash;
  void *value; /* NULL: empty */
} slot;

struct hash_table {
  slot *slots;
  size_t mask; /* capacity - 1; capacity is a power of two */
  size_t count;
};

#define INITIAL_CAPACITY 16

hash_table *hash_table_new(void) {
  hash_table *table = malloc(sizeof(*table));
  if (table == NULL) {
    return NULL;
  }
  table->slots = calloc(INITIAL_CAPACITY, sizeof(slot));
  if (table->slots == NULL) {
    free(table);
    return NULL;
  }
  table->mask = INITIAL_CAPACITY - 1;
  table->count = 0;
  return table;
}

void hash_table_free(hash_table *table) {
  if (table != NULL) {
    free(table->slots);
    free(table);
  }
}

static void place(slot *slots, size_t mask, uint64_t hash, void *value) {
  size_t i = (size_t)hash & mask;
  while (slots[i].value != NULL) {
    i = (i + 1) & mask;
  }
  slots[i] = (slot){hash, value};
}

static int grow(hash_table *table) {
  size_t capacity = (table->mask + 1) * 2;
  slot *slots = calloc(capacity, sizeof(slot));
  if (slots == NULL) {
    return -1;
  }
  for (size_t i = 0; i <= table->mask; i++) {
    if (table->slots[i].value != NULL) {
      place(slots, capacity - 1, table->slots[i].hash, table->slots[i].value);
    }
  }
  free(table->slots);
  table->slots = slots;
  table->mask = capacity - 1;
  return 0;
}

int hash_table_insert(hash_table *table, uint64_t hash, void *value) {
  /* At most half full: probes stay short. */
  if ((table->count + 1) * 2 > table->mask + 1 && grow(table) != 0) {
    return -1;
  }
  place(table->slots, table->mask, hash, value);
  table->count++;
  return 0;
}

void *hash_table_find(const hash_table *table, uint64_t hash,
                      hash_table_match_fn match, const void *key) {
  for (size_t i = (size_t)hash & table->mask; table->slots[i].value != NULL;
       i = (i + 1) & table->mask) {
    if (table->slots[i].hash == hash && match(table->slots[i].value, key)) {
      return table->slots[i].value;
    }
  }
  return NULL;
}

int hash_table_remove(hash_table *table, uint64_t hash, const void *value) {
  size_t mask = table->mask;
  size_t i = (size_t)hash & mask;
  while (table->slots[i].value != value) {
    if (table->slots[i].value == NULL) {
      return -1;
    }
    i = (i + 1) & mask;
  }
  /* Shift back every later entry of the run whose home is not between the
   * hole and itself, so lookups never stop early at the hole. */
  size_t hole = i;
  for (size_t j = (i + 1) & mask; table->slots[j].value != NULL;
       j = (j + 1) & mask) {
    size_t home = (size_t)table->slots[j].hash & mask;
    if (((j - home) & mask) >= ((j - hole) & mask)) {
      table->slots[hole] = table->slots[j];
      hole = j;
    }
  }
  table->slots[hole] = (slot){0, NULL};
  table->count--;
  return 0;
}

size_t hash_table_count(const hash_table *table) { return table->count; }

int hash_table_each(const hash_table *table, int (*fn)(void *value, void *arg),
                    void *arg) {
  for (size_t i = 0; i <= table->mask; i++) {
    if (table->slots[i].value != NULL) {
      int rv = fn(table->slots[i].value, arg);
      if (rv != 0) {
        return rv;
      }
    }
  }
  return 0;
}

uint64_t hash_u64(uint64_t key) {
  key ^= key >> 30;
  key *= 0xbf58476d1ce4e5b9ULL;
  key ^= key >> 27;
  key *= 0x94d049bb133111ebULL;
  key ^= key >> 31;
  return key;
}

uint64_t hash_bytes(const void *data, size_t size) {
  const uint8_t *bytes = data;
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < size; i++) {
    hash = (hash ^ bytes[i]) * 0x100000001b3ULL;
  }
  return hash_u64(hash);
}
