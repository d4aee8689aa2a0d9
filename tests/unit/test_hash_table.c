/* test_hash_table.c: find by hash and match, removal of any entry from
 * clustered and wrapping runs, growth to 100k entries, iteration that
 * stops on a non-zero return, and the hash functions' reference values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/hash_table.h"

typedef struct item {
  uint64_t key;
  uint64_t hash;
  int visits; /* by hash_table_each */
  bool present;
} item;

static bool match_key(const void *value, const void *key) {
  return ((const item *)value)->key == *(const uint64_t *)key;
}

static item *find_item(const hash_table *table, const item *it) {
  return hash_table_find(table, it->hash, match_key, &it->key);
}

/* A deterministic PRNG (splitmix64), so failures reproduce. */
static uint64_t next_random(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static size_t random_below(uint64_t *state, size_t bound) {
  return (size_t)(next_random(state) % bound);
}

static int count_visit(void *value, void *arg) {
  ((item *)value)->visits++;
  (*(size_t *)arg)++;
  return 0;
}

/* Checks that exactly the present items are found, and the count. */
static void check_against_model(const hash_table *table, item *items,
                                size_t n) {
  size_t present = 0;
  for (size_t i = 0; i < n; i++) {
    item *found = find_item(table, &items[i]);
    if (items[i].present) {
      assert_ptr_equal(found, &items[i]);
      present++;
    } else {
      assert_null(found);
    }
  }
  assert_int_equal(hash_table_count(table), present);
}

static void test_empty_table(void **state) {
  (void)state;
  hash_table *table = hash_table_new();
  assert_non_null(table);
  assert_int_equal(hash_table_count(table), 0);
  item it = {.key = 1, .hash = hash_u64(1)};
  assert_null(find_item(table, &it));
  assert_int_equal(hash_table_remove(table, it.hash, &it), -1);
  size_t calls = 0;
  assert_int_equal(hash_table_each(table, count_visit, &calls), 0);
  assert_int_equal(calls, 0);
  hash_table_free(table);
  hash_table_free(NULL); /* like free(NULL) */
}

static void test_insert_find_remove(void **state) {
  (void)state;
  hash_table *table = hash_table_new();
  item items[3] = {{.key = 10}, {.key = 20}, {.key = 30}};
  for (size_t i = 0; i < 3; i++) {
    items[i].hash = hash_u64(items[i].key);
    assert_int_equal(hash_table_insert(table, items[i].hash, &items[i]), 0);
    items[i].present = true;
  }
  check_against_model(table, items, 3);

  /* A key that is not there, and a match that refuses everything. */
  uint64_t other = 40;
  assert_null(hash_table_find(table, hash_u64(other), match_key, &other));
  assert_null(hash_table_find(table, items[0].hash, match_key, &other));

  /* Removal is by address: another value, even an equal one, is not it. */
  item twin = items[1];
  assert_int_equal(hash_table_remove(table, items[1].hash, &twin), -1);
  assert_int_equal(hash_table_count(table), 3);

  assert_int_equal(hash_table_remove(table, items[1].hash, &items[1]), 0);
  items[1].present = false;
  check_against_model(table, items, 3);
  assert_int_equal(hash_table_remove(table, items[1].hash, &items[1]), -1);
  assert_int_equal(hash_table_count(table), 2);

  /* Reinserting after removal works. */
  assert_int_equal(hash_table_insert(table, items[1].hash, &items[1]), 0);
  items[1].present = true;
  check_against_model(table, items, 3);
  hash_table_free(table);
}

static bool match_any(const void *value, const void *key) {
  (void)value;
  (void)key;
  return true;
}

/* A value under another hash is not "under hash", even when match would
 * accept it and it sits on hash's probe path. */
static void test_find_returns_only_values_under_hash(void **state) {
  (void)state;
  hash_table *table = hash_table_new();
  /* Both call slot 2 home: a takes it, b the next. */
  item a = {.key = 1, .hash = 0x1002}, b = {.key = 2, .hash = 0x2002};
  assert_int_equal(hash_table_insert(table, a.hash, &a), 0);
  assert_int_equal(hash_table_insert(table, b.hash, &b), 0);
  assert_ptr_equal(hash_table_find(table, b.hash, match_any, NULL), &b);
  assert_ptr_equal(hash_table_find(table, a.hash, match_any, NULL), &a);
  assert_null(hash_table_find(table, 0x3002, match_any, NULL));
  hash_table_free(table);
}

/* At every fill level, including just before and after each growth, an
 * absent key is reported absent (a probe must always meet an empty slot). */
static void test_absent_keys_at_every_fill_level(void **state) {
  (void)state;
  enum { N = 1100 };
  item *items = calloc(N, sizeof(*items));
  assert_non_null(items);
  hash_table *table = hash_table_new();
  uint64_t missing = UINT64_MAX;
  for (size_t i = 0; i < N; i++) {
    items[i] = (item){.key = i, .hash = hash_u64(i), .present = true};
    assert_int_equal(hash_table_insert(table, items[i].hash, &items[i]), 0);
    assert_null(hash_table_find(table, hash_u64(missing), match_key, &missing));
    for (uint64_t home = 0; home < 4; home++) {
      assert_null(hash_table_find(table, home, match_key, &missing));
    }
    item stranger = {.key = missing, .hash = items[i].hash};
    assert_int_equal(hash_table_remove(table, stranger.hash, &stranger), -1);
  }
  check_against_model(table, items, N);
  hash_table_free(table);
  free(items);
}

static void test_equal_hashes_are_told_apart_by_match(void **state) {
  (void)state;
  enum { N = 40 };
  item items[N];
  for (size_t order = 0; order < 3; order++) {
    hash_table *table = hash_table_new();
    for (size_t i = 0; i < N; i++) {
      items[i] = (item){.key = i, .hash = 0x5eed, .present = true};
      assert_int_equal(hash_table_insert(table, items[i].hash, &items[i]), 0);
    }
    check_against_model(table, items, N);
    /* Remove from the front, the back, and the middle outwards. */
    for (size_t k = 0; k < N; k++) {
      size_t i = order == 0 ? k
                 : order == 1
                     ? N - 1 - k
                     : (k % 2 == 0 ? N / 2 + k / 2 : N / 2 - 1 - k / 2);
      assert_int_equal(hash_table_remove(table, items[i].hash, &items[i]), 0);
      items[i].present = false;
      check_against_model(table, items, N);
    }
    hash_table_free(table);
  }
}

/* Hashes whose home slots crowd the end of the array make runs that wrap
 * to the front; removing any one of them must leave the rest findable. */
static void test_removal_of_any_entry_in_wrapping_runs(void **state) {
  (void)state;
  /* At most 7 entries keep the table at its first capacity, 16; low bits
   * pick the home slot, high bits tell equal homes apart. */
  static const uint64_t hashes[][7] = {
      {15, 15, 15, 0, 0, 1, 14},
      {14, 15, 0x10 | 15, 0x20 | 14, 0, 1, 0x30 | 0},
      {13, 13, 13, 13, 13, 13, 13},
      {15, 0, 1, 2, 3, 4, 5},
      {0, 0x10, 15, 0x20, 15 | 0x40, 1, 0x50 | 1},
  };
  for (size_t c = 0; c < sizeof(hashes) / sizeof(hashes[0]); c++) {
    for (size_t removed = 0; removed < 7; removed++) {
      hash_table *table = hash_table_new();
      item items[7];
      for (size_t i = 0; i < 7; i++) {
        items[i] = (item){.key = i, .hash = hashes[c][i], .present = true};
        assert_int_equal(hash_table_insert(table, items[i].hash, &items[i]), 0);
      }
      assert_int_equal(
          hash_table_remove(table, items[removed].hash, &items[removed]), 0);
      items[removed].present = false;
      check_against_model(table, items, 7);
      /* Then everything else, from the one after it round. */
      for (size_t k = 1; k < 7; k++) {
        size_t i = (removed + k) % 7;
        assert_int_equal(hash_table_remove(table, items[i].hash, &items[i]), 0);
        items[i].present = false;
        check_against_model(table, items, 7);
      }
      assert_int_equal(hash_table_count(table), 0);
      hash_table_free(table);
    }
  }
}

/* Random inserts and removals over few home slots (long runs, many
 * shifts), checked after every step against a model of who is present. */
static void test_random_operations_match_model(void **state) {
  (void)state;
  enum { N = 300, STEPS = 20000 };
  item *items = calloc(N, sizeof(*items));
  assert_non_null(items);
  uint64_t rng = 7;
  for (size_t i = 0; i < N; i++) {
    /* 64 home slots at most, whatever the capacity; full hashes differ. */
    items[i].key = i;
    items[i].hash = (next_random(&rng) & ~(uint64_t)0xfff) | (i % 64);
  }
  hash_table *table = hash_table_new();
  for (size_t step = 0; step < STEPS; step++) {
    item *it = &items[random_below(&rng, N)];
    if (it->present) {
      assert_int_equal(hash_table_remove(table, it->hash, it), 0);
      it->present = false;
    } else {
      assert_int_equal(hash_table_insert(table, it->hash, it), 0);
      it->present = true;
    }
    if (step % 50 == 0 || step > STEPS - 50) {
      check_against_model(table, items, N);
    }
  }
  check_against_model(table, items, N);
  hash_table_free(table);
  free(items);
}

static void test_grows_to_100k_entries_and_removes_any(void **state) {
  (void)state;
  enum { N = 100000 };
  item *items = calloc(N, sizeof(*items));
  size_t *order = malloc(N * sizeof(*order));
  assert_non_null(items);
  assert_non_null(order);
  hash_table *table = hash_table_new();
  for (size_t i = 0; i < N; i++) {
    items[i].key = (uint64_t)i * 7919 + 3;
    items[i].hash = hash_u64(items[i].key);
    assert_int_equal(hash_table_insert(table, items[i].hash, &items[i]), 0);
    items[i].present = true;
    assert_int_equal(hash_table_count(table), i + 1);
    if (i + 1 == 17 || i + 1 == 1000) { /* just past growth steps */
      for (size_t j = 0; j <= i; j++) {
        assert_ptr_equal(find_item(table, &items[j]), &items[j]);
      }
    }
  }
  check_against_model(table, items, N);

  /* Every value is visited exactly once. */
  size_t calls = 0;
  assert_int_equal(hash_table_each(table, count_visit, &calls), 0);
  assert_int_equal(calls, N);
  for (size_t i = 0; i < N; i++) {
    assert_int_equal(items[i].visits, 1);
  }

  /* Remove half, in a shuffled order, then check; then the rest. */
  for (size_t i = 0; i < N; i++) {
    order[i] = i;
  }
  uint64_t rng = 2024;
  for (size_t i = N - 1; i > 0; i--) {
    size_t j = random_below(&rng, i + 1);
    size_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  for (size_t k = 0; k < N; k++) {
    item *it = &items[order[k]];
    assert_int_equal(hash_table_remove(table, it->hash, it), 0);
    it->present = false;
    assert_int_equal(hash_table_count(table), N - k - 1);
    if (k == N / 2) {
      check_against_model(table, items, N);
      for (size_t i = 0; i < N; i++) {
        items[i].visits = 0;
      }
      calls = 0;
      assert_int_equal(hash_table_each(table, count_visit, &calls), 0);
      assert_int_equal(calls, N - k - 1);
      for (size_t i = 0; i < N; i++) {
        assert_int_equal(items[i].visits, items[i].present ? 1 : 0);
      }
    }
  }
  check_against_model(table, items, N);
  hash_table_free(table);
  free(order);
  free(items);
}

typedef struct stopper {
  size_t calls;
  size_t stop_at; /* returns stop_with on this call (1-based) */
  int stop_with;
} stopper;

static int stop_after(void *value, void *arg) {
  (void)value;
  stopper *s = arg;
  s->calls++;
  return s->calls == s->stop_at ? s->stop_with : 0;
}

static void test_each_stops_on_non_zero(void **state) {
  (void)state;
  enum { N = 100 };
  item items[N];
  hash_table *table = hash_table_new();
  for (size_t i = 0; i < N; i++) {
    items[i] = (item){.key = i, .hash = hash_u64(i)};
    assert_int_equal(hash_table_insert(table, items[i].hash, &items[i]), 0);
  }
  static const struct {
    size_t stop_at;
    int stop_with;
    int want_rv;
    size_t want_calls;
  } cases[] = {
      {1, 7, 7, 1}, {10, -3, -3, 10},
      {N, 1, 1, N}, {N + 1, 5, 0, N}, /* never stops: every value, and 0 */
      {0, 0, 0, N},
  };
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    stopper s = {0, cases[c].stop_at, cases[c].stop_with};
    assert_int_equal(hash_table_each(table, stop_after, &s), cases[c].want_rv);
    assert_int_equal(s.calls, cases[c].want_calls);
  }
  hash_table_free(table);
}

static void test_hash_reference_values(void **state) {
  (void)state;
  /* splitmix64 from seed 0 outputs the finalizer of k * 0x9e37...: */
  static const struct {
    uint64_t in, out;
  } mix[] = {
      {0x9e3779b97f4a7c15ULL, 0xe220a8397b1dcdafULL},
      {0x3c6ef372fe94f82aULL, 0x6e789e6aa1b965f4ULL},
      {0xdaa66d2c7ddf743fULL, 0x06c45d188009454fULL},
      {0, 0},
  };
  for (size_t i = 0; i < sizeof(mix) / sizeof(mix[0]); i++) {
    assert_true(hash_u64(mix[i].in) == mix[i].out);
  }
  /* FNV-1a 64 reference values, then mixed. */
  static const struct {
    const char *data;
    uint64_t fnv1a;
  } bytes[] = {
      {"", 0xcbf29ce484222325ULL},
      {"a", 0xaf63dc4c8601ec8cULL},
      {"foobar", 0x85944171f73967e8ULL},
  };
  for (size_t i = 0; i < sizeof(bytes) / sizeof(bytes[0]); i++) {
    assert_true(hash_bytes(bytes[i].data, strlen(bytes[i].data)) ==
                hash_u64(bytes[i].fnv1a));
  }
  /* Exactly size bytes are hashed, including zeros. */
  assert_true(hash_bytes("abc", 2) == hash_bytes("ab", 2));
  assert_true(hash_bytes("ab", 2) != hash_bytes("ba", 2));
  assert_true(hash_bytes("a\0b", 3) != hash_bytes("a", 1));
  assert_true(hash_u64(1) != hash_u64(2));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty_table),
      cmocka_unit_test(test_insert_find_remove),
      cmocka_unit_test(test_find_returns_only_values_under_hash),
      cmocka_unit_test(test_absent_keys_at_every_fill_level),
      cmocka_unit_test(test_equal_hashes_are_told_apart_by_match),
      cmocka_unit_test(test_removal_of_any_entry_in_wrapping_runs),
      cmocka_unit_test(test_random_operations_match_model),
      cmocka_unit_test(test_grows_to_100k_entries_and_removes_any),
      cmocka_unit_test(test_each_stops_on_non_zero),
      cmocka_unit_test(test_hash_reference_values),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
