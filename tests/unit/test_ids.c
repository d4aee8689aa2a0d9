/* test_ids.c: pool_idx and worker_idx, both ways, and out-of-range ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/core/ids.h"

static void test_pool_idx_layout_and_round_trip(void **state) {
  (void)state;
  static const struct {
    uint32_t pool_id, job_type_id, pool_idx;
  } cases[] = {
      {0, 0, 0},
      {0, 1, 1},
      {1, 0, 1024},
      {1, 3, 1027},
      {1023, 1023, 1048575},
      {5, 1017, 5 * 1024 + 1017},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    uint32_t packed, pool_id, job_type_id;
    assert_int_equal(
        pool_idx_pack(cases[i].pool_id, cases[i].job_type_id, &packed), 0);
    assert_int_equal(packed, cases[i].pool_idx);
    assert_int_equal(pool_idx_unpack(packed, &pool_id, &job_type_id), 0);
    assert_int_equal(pool_id, cases[i].pool_id);
    assert_int_equal(job_type_id, cases[i].job_type_id);
  }
}

static void test_worker_idx_layout_and_round_trip(void **state) {
  (void)state;
  for (uint32_t pool = 0; pool <= 1023; pool += 341) {
    for (uint32_t type = 0; type <= 1023; type += 93) {
      for (uint32_t worker = 0; worker <= 1023; worker += 511) {
        uint64_t packed;
        uint32_t p, t, w;
        assert_int_equal(worker_idx_pack(pool, type, worker, &packed), 0);
        assert_true(packed ==
                    ((uint64_t)pool << 20 | (uint64_t)type << 10 | worker));
        assert_int_equal(worker_idx_unpack(packed, &p, &t, &w), 0);
        assert_int_equal(p, pool);
        assert_int_equal(t, type);
        assert_int_equal(w, worker);
      }
    }
  }
  uint64_t packed;
  assert_int_equal(worker_idx_pack(2, 1, 7, &packed), 0);
  assert_true(packed == 2098183); /* (2 << 20) | (1 << 10) | 7 */
}

static void test_values_that_do_not_fit_are_refused(void **state) {
  (void)state;
  uint32_t pool_idx, a, b, c;
  uint64_t worker_idx;
  assert_int_equal(pool_idx_pack(1024, 0, &pool_idx), -1);
  assert_int_equal(pool_idx_pack(0, 1024, &pool_idx), -1);
  assert_int_equal(pool_idx_unpack(1u << 20, &a, &b), -1);
  assert_int_equal(worker_idx_pack(1024, 0, 0, &worker_idx), -1);
  assert_int_equal(worker_idx_pack(0, 1024, 0, &worker_idx), -1);
  assert_int_equal(worker_idx_pack(0, 0, 1024, &worker_idx), -1);
  assert_int_equal(worker_idx_unpack(1ull << 30, &a, &b, &c), -1);
  assert_int_equal(worker_idx_unpack(UINT64_MAX, &a, &b, &c), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pool_idx_layout_and_round_trip),
      cmocka_unit_test(test_worker_idx_layout_and_round_trip),
      cmocka_unit_test(test_values_that_do_not_fit_are_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
