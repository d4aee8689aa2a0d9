/* test_job_index.c: put, get, replace and remove across pages, pages
 * freed when emptied, the sequence limit, and a random run against a
 * reference model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "server/core/job_index.h"

static void test_put_get_remove(void **state) {
  (void)state;
  job_index *index = job_index_new();
  assert_non_null(index);
  int a, b, c;
  /* 0, a page's last and next slots, and a far page. */
  static const uint64_t sequences[] = {0, 4095, 4096, 1u << 30};
  int *values[] = {&a, &b, &c, &a};
  for (size_t i = 0; i < 4; i++) {
    assert_null(job_index_get(index, sequences[i]));
    assert_int_equal(job_index_put(index, sequences[i], values[i]), 0);
  }
  assert_int_equal(job_index_count(index), 4);
  for (size_t i = 0; i < 4; i++) {
    assert_ptr_equal(job_index_get(index, sequences[i]), values[i]);
  }
  assert_null(job_index_get(index, 1));
  assert_null(job_index_get(index, (1u << 30) + 1));
  assert_null(job_index_get(index, UINT64_MAX));
  /* Replacing keeps the count. */
  assert_int_equal(job_index_put(index, 4095, &c), 0);
  assert_ptr_equal(job_index_get(index, 4095), &c);
  assert_int_equal(job_index_count(index), 4);
  job_index_remove(index, 4095);
  job_index_remove(index, 4095); /* twice: nothing */
  job_index_remove(index, 77);   /* never put */
  job_index_remove(index, UINT64_MAX);
  assert_null(job_index_get(index, 4095));
  assert_ptr_equal(job_index_get(index, 0), &a);
  assert_int_equal(job_index_count(index), 3);
  job_index_free(index);
}

static void test_sequence_limit(void **state) {
  (void)state;
  job_index *index = job_index_new();
  int a;
  assert_int_equal(job_index_put(index, JOB_INDEX_MAX_SEQUENCE + 1, &a), -1);
  assert_int_equal(job_index_put(index, UINT64_MAX, &a), -1);
  assert_int_equal(job_index_count(index), 0);
  assert_null(job_index_get(index, JOB_INDEX_MAX_SEQUENCE + 1));
  job_index_free(index);
}

/* A page emptied and filled again works (its memory was freed). */
static void test_emptied_page_comes_back(void **state) {
  (void)state;
  job_index *index = job_index_new();
  int a;
  for (uint64_t s = 8192; s < 8192 + 4096; s++) {
    assert_int_equal(job_index_put(index, s, &a), 0);
  }
  for (uint64_t s = 8192; s < 8192 + 4096; s++) {
    job_index_remove(index, s);
  }
  assert_int_equal(job_index_count(index), 0);
  assert_null(job_index_get(index, 9000));
  assert_int_equal(job_index_put(index, 9000, &a), 0);
  assert_ptr_equal(job_index_get(index, 9000), &a);
  job_index_free(index);
}

static uint64_t next_random(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static void test_random_against_model(void **state) {
  (void)state;
  enum { SPAN = 50000, STEPS = 200000 };
  job_index *index = job_index_new();
  void **model = calloc(SPAN, sizeof(*model));
  assert_non_null(model);
  static char values[16];
  uint64_t rng = 42;
  size_t count = 0;
  for (int i = 0; i < STEPS; i++) {
    uint64_t r = next_random(&rng);
    uint64_t sequence = r % SPAN;
    if ((r >> 32) % 3 != 0) {
      void *value = &values[(r >> 40) % 16];
      count += model[sequence] == NULL;
      model[sequence] = value;
      assert_int_equal(job_index_put(index, sequence, value), 0);
    } else {
      count -= model[sequence] != NULL;
      model[sequence] = NULL;
      job_index_remove(index, sequence);
    }
  }
  assert_int_equal(job_index_count(index), count);
  for (uint64_t s = 0; s < SPAN; s++) {
    assert_ptr_equal(job_index_get(index, s), model[s]);
  }
  free(model);
  job_index_free(index);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_put_get_remove),
      cmocka_unit_test(test_sequence_limit),
      cmocka_unit_test(test_emptied_page_comes_back),
      cmocka_unit_test(test_random_against_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
