/* test_anomaly.c: the anomaly module: spikes found with their scores,
 * every score checked against a brute-force median/MAD (odd and even
 * windows, ties), the MAD-zero fallbacks, a level shift, short series,
 * every error case and allocation failures. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "worker/modules/anomaly.h"

#define PI 3.14159265358979323846

static uint64_t next_random(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static double gaussian(uint64_t *state) {
  double u1 = ((double)(next_random(state) >> 11) + 0.5) * 0x1.0p-53;
  double u2 = ((double)(next_random(state) >> 11) + 0.5) * 0x1.0p-53;
  return sqrt(-2.0 * log(u1)) * cos(2.0 * PI * u2);
}

static void assert_close(double actual, double expected, double tolerance) {
  if (!(fabs(actual - expected) <= tolerance)) {
    fail_msg("%.17g differs from %.17g by more than %g", actual, expected,
             tolerance);
  }
}

static double *timestamps_new(size_t n) {
  double *ts = calloc(n ? n : 1, sizeof(double));
  assert_non_null(ts);
  for (size_t i = 0; i < n; i++) {
    ts[i] = 1.7e9 + 60.0 * (double)i;
  }
  return ts;
}

static void detect_ok(const anomaly_params *params, const double *ts,
                      const double *values, size_t n, anomaly_result *out) {
  char err[256] = "";
  int rv = anomaly_detect(params, ts, values, n, out, err, sizeof(err));
  if (rv != ANOMALY_OK) {
    fail_msg("anomaly_detect: %d %s", rv, err);
  }
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median_of(double *items, size_t count) {
  qsort(items, count, sizeof(double), compare_doubles);
  return count % 2 ? items[count / 2]
                   : 0.5 * (items[count / 2 - 1] + items[count / 2]);
}

/* The score by definition, from scratch. */
static double brute_force_score(const double *values, size_t i, size_t window) {
  double items[64];
  assert_true(window <= 64);
  memcpy(items, values + i - window, window * sizeof(double));
  double median = median_of(items, window);
  double mean_deviation = 0.0;
  for (size_t k = 0; k < window; k++) {
    items[k] = fabs(items[k] - median);
    mean_deviation += items[k] / (double)window;
  }
  double scale = 1.482602218505602 * median_of(items, window);
  if (scale == 0.0) {
    scale = 1.253314137315500 * mean_deviation;
  }
  double deviation = values[i] - median;
  if (scale == 0.0) {
    return deviation == 0.0 ? 0.0 : copysign(INFINITY, deviation);
  }
  return deviation / scale;
}

static void test_defaults(void **state) {
  (void)state;
  anomaly_params params;
  anomaly_params_init(&params);
  assert_int_equal(params.window, 60);
  assert_true(params.threshold == 3.5);
  assert_null(params.allocator);
}

static void test_spikes_found(void **state) {
  (void)state;
  enum { N = 1000 };
  static const size_t spikes[] = {100, 101, 400, 777, 999};
  double *ts = timestamps_new(N);
  double values[N];
  uint64_t random = 5;
  for (size_t i = 0; i < N; i++) {
    values[i] = 20.0 + 3.0 * sin((double)i / 50.0) + gaussian(&random);
  }
  for (size_t k = 0; k < sizeof(spikes) / sizeof(spikes[0]); k++) {
    values[spikes[k]] += k % 2 ? -15.0 : 15.0;
  }
  anomaly_params params;
  anomaly_params_init(&params);
  params.threshold = 5.0;
  anomaly_result result;
  detect_ok(&params, ts, values, N, &result);
  assert_int_equal(result.scored, N - 60);
  assert_int_equal(result.count, 5);
  for (size_t k = 0; k < result.count; k++) {
    const anomaly_point *point = &result.points[k];
    assert_int_equal(point->index, spikes[k]);
    assert_true(point->ts == ts[spikes[k]]);
    assert_true(point->value == values[spikes[k]]);
    assert_true(k % 2 ? point->score < -8.0 : point->score > 8.0);
    assert_close(point->expected, 20.0 + 3.0 * sin((double)spikes[k] / 50.0),
                 1.5);
  }
  anomaly_result_free(&result);
  anomaly_result_free(&result); /* twice is harmless */
  free(ts);
}

/* Every score against the definition: a threshold below every nonzero
 * score reports them all. Small integer values make ties and zero MADs. */
static void test_scores_match_definition(void **state) {
  (void)state;
  enum { N = 600 };
  double *ts = timestamps_new(N);
  double values[N];
  uint64_t random = 9;
  static const size_t windows[] = {3, 4, 7, 8, 31, 64};
  for (size_t round = 0; round < 3; round++) {
    for (size_t i = 0; i < N; i++) {
      double noise = gaussian(&random);
      values[i] = round == 0   ? noise
                  : round == 1 ? floor(2.0 * noise)
                               : (next_random(&random) % 10 == 0 ? 1.0 : 0.0);
    }
    for (size_t w = 0; w < sizeof(windows) / sizeof(windows[0]); w++) {
      anomaly_params params;
      anomaly_params_init(&params);
      params.window = windows[w];
      params.threshold = 1e-300;
      anomaly_result result;
      detect_ok(&params, ts, values, N, &result);
      size_t k = 0;
      for (size_t i = windows[w]; i < N; i++) {
        double expected = brute_force_score(values, i, windows[w]);
        if (expected == 0.0) {
          continue;
        }
        assert_true(k < result.count);
        assert_int_equal(result.points[k].index, i);
        if (isinf(expected)) {
          assert_true(result.points[k].score == expected);
        } else {
          assert_close(result.points[k].score, expected, 1e-9 * fabs(expected));
        }
        k++;
      }
      assert_int_equal(k, result.count);
      anomaly_result_free(&result);
    }
  }
  free(ts);
}

static void test_zero_mad_fallbacks(void **state) {
  (void)state;
  double *ts = timestamps_new(8);
  anomaly_params params;
  anomaly_params_init(&params);
  params.window = 5;
  anomaly_result result;

  /* 0 0 0 0 1 | 3: MAD 0, mean deviation 0.2 -> 3 / (1.2533 x 0.2) */
  double some[] = {0, 0, 0, 0, 1, 3};
  detect_ok(&params, ts, some, 6, &result);
  assert_int_equal(result.count, 1);
  assert_close(result.points[0].score, 3.0 / (1.253314137315500 * 0.2), 1e-12);
  assert_true(result.points[0].expected == 0.0);
  anomaly_result_free(&result);

  /* A constant window: a different value is infinitely far, an equal one
   * not at all. */
  double constant[] = {2, 2, 2, 2, 2, 1, 2, 2};
  detect_ok(&params, ts, constant, 8, &result);
  assert_int_equal(result.scored, 3);
  assert_int_equal(result.count, 1);
  assert_int_equal(result.points[0].index, 5);
  assert_true(isinf(result.points[0].score) && result.points[0].score < 0);
  anomaly_result_free(&result);
  free(ts);
}

/* A step from 0 to 10: the points after it are anomalous until the
 * window's median moves to the new level. */
static void test_level_shift(void **state) {
  (void)state;
  enum { N = 200 };
  double *ts = timestamps_new(N);
  double values[N];
  uint64_t random = 21;
  for (size_t i = 0; i < N; i++) {
    values[i] = (i < 100 ? 0.0 : 10.0) + 0.5 * gaussian(&random);
  }
  anomaly_params params;
  anomaly_params_init(&params);
  params.window = 20;
  anomaly_result result;
  detect_ok(&params, ts, values, N, &result);
  /* Exactly 100..109 around the step; a 20-point MAD is noisy, so a few
   * false alarms elsewhere at 3.5 are expected. */
  size_t around = 0;
  for (size_t k = 0; k < result.count; k++) {
    size_t index = result.points[k].index;
    if (index >= 90 && index < 130) {
      assert_int_equal(index, 100 + around);
      assert_true(result.points[k].score > 3.5);
      around++;
    }
  }
  assert_int_equal(around, 10);
  assert_true(result.count <= 14);
  anomaly_result_free(&result);
  free(ts);
}

static void test_short_series(void **state) {
  (void)state;
  double *ts = timestamps_new(60);
  double values[60] = {0};
  values[59] = 1e6;
  anomaly_params params;
  anomaly_params_init(&params);
  anomaly_result result;
  detect_ok(&params, ts, values, 60, &result); /* n == window */
  assert_int_equal(result.count, 0);
  assert_int_equal(result.scored, 0);
  assert_null(result.points);
  detect_ok(&params, NULL, NULL, 0, &result);
  assert_int_equal(result.scored, 0);
  anomaly_result_free(&result);
  free(ts);
}

static void expect_error(const anomaly_params *params, const double *ts,
                         const double *values, size_t n, int code,
                         const char *message) {
  anomaly_result result;
  memset(&result, 0xab, sizeof(result));
  char err[256] = "";
  int rv = anomaly_detect(params, ts, values, n, &result, err, sizeof(err));
  if (rv != code || strstr(err, message) == NULL) {
    fail_msg("rv %d, message '%s'; wanted %d, '%s'", rv, err, code, message);
  }
  assert_null(result.points);
  assert_int_equal(result.count, 0);
  anomaly_result_free(&result);
}

static void test_errors(void **state) {
  (void)state;
  double *ts = timestamps_new(10);
  double values[10] = {0};
  anomaly_params good, params;
  anomaly_params_init(&good);
  good.window = 3;

  params = good;
  params.window = 2;
  expect_error(&params, ts, values, 10, ANOMALY_EPARAMS,
               "window must be 3..100000, got 2");
  params.window = 100001;
  expect_error(&params, ts, values, 10, ANOMALY_EPARAMS, "got 100001");
  params = good;
  params.threshold = 0.0;
  expect_error(&params, ts, values, 10, ANOMALY_EPARAMS,
               "threshold must be positive, got 0");
  params.threshold = NAN;
  expect_error(&params, ts, values, 10, ANOMALY_EPARAMS, "got nan");
  params.threshold = INFINITY;
  expect_error(&params, ts, values, 10, ANOMALY_EPARAMS, "got inf");
  params = good;
  module_allocator half = {0};
  params.allocator = &half;
  expect_error(&params, ts, values, 10, ANOMALY_EPARAMS,
               "the allocator needs alloc and release");
  expect_error(NULL, ts, values, 10, ANOMALY_EPARAMS, "must not be NULL");
  expect_error(&good, NULL, values, 10, ANOMALY_EPARAMS, "must not be NULL");
  assert_int_equal(anomaly_detect(&good, ts, values, 10, NULL, NULL, 0),
                   ANOMALY_EPARAMS);

  ts[6] = ts[5];
  expect_error(&good, ts, values, 10, ANOMALY_EDATA,
               "timestamps must be strictly ascending: timestamps[6] = "
               "1700000300 is not after timestamps[5] = 1700000300");
  ts[6] = INFINITY;
  expect_error(&good, ts, values, 10, ANOMALY_EDATA,
               "timestamps[6] is not finite");
  ts[6] = 1.7e9 + 360.0;
  values[2] = NAN;
  expect_error(&good, ts, values, 10, ANOMALY_EDATA, "values[2] is NaN");
  values[2] = INFINITY;
  expect_error(&good, ts, values, 10, ANOMALY_EDATA, "values[2] is infinite");
  free(ts);
}

typedef struct failing_allocator {
  size_t fail_at; /* 0-based; SIZE_MAX: never */
  size_t calls;
  size_t live;
} failing_allocator;

static void *failing_alloc(size_t size, void *context) {
  failing_allocator *state = context;
  if (state->calls++ == state->fail_at) {
    return NULL;
  }
  void *pointer = malloc(size);
  if (pointer != NULL) {
    state->live++;
  }
  return pointer;
}

static void failing_release(void *pointer, void *context) {
  failing_allocator *state = context;
  state->live--;
  free(pointer);
}

/* 40 anomalies make the result grow twice; each allocation fails once. */
static void test_allocation_failures(void **state) {
  (void)state;
  enum { N = 400 };
  double *ts = timestamps_new(N);
  double values[N];
  uint64_t random = 31;
  for (size_t i = 0; i < N; i++) {
    values[i] = gaussian(&random) + (i % 10 == 5 ? 50.0 : 0.0);
  }
  failing_allocator counter = {.fail_at = SIZE_MAX};
  module_allocator allocator = {
      .alloc = failing_alloc, .release = failing_release, .context = &counter};
  anomaly_params params;
  anomaly_params_init(&params);
  params.window = 30;
  params.allocator = &allocator;
  anomaly_result reference;
  detect_ok(&params, ts, values, N, &reference);
  assert_true(reference.count >= 33);
  size_t total = counter.calls;
  assert_int_equal(total, 4); /* the window, then 16, 32, 64 points */
  anomaly_result_free(&reference);
  assert_int_equal(counter.live, 0);
  for (size_t n = 0; n < total; n++) {
    counter = (failing_allocator){.fail_at = n};
    anomaly_result result;
    char err[128] = "";
    int rv = anomaly_detect(&params, ts, values, N, &result, err, sizeof(err));
    if (rv != ANOMALY_ENOMEM || strstr(err, "out of memory") == NULL) {
      fail_msg("allocation %zu: rv %d '%s'", n, rv, err);
    }
    assert_null(result.points);
    assert_int_equal(counter.live, 0);
  }
  free(ts);
}

/* A big window over a long series stays fast (O(window) per point). */
static void test_large(void **state) {
  (void)state;
  enum { N = 50000 };
  double *ts = timestamps_new(N);
  double *values = calloc(N, sizeof(double));
  assert_non_null(values);
  uint64_t random = 41;
  for (size_t i = 0; i < N; i++) {
    values[i] = gaussian(&random);
  }
  values[30000] = 100.0;
  anomaly_params params;
  anomaly_params_init(&params);
  params.window = 2000;
  params.threshold = 6.0;
  anomaly_result result;
  detect_ok(&params, ts, values, N, &result);
  assert_int_equal(result.count, 1);
  assert_int_equal(result.points[0].index, 30000);
  assert_close(result.points[0].score, 100.0, 5.0);
  anomaly_result_free(&result);
  free(values);
  free(ts);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_spikes_found),
      cmocka_unit_test(test_scores_match_definition),
      cmocka_unit_test(test_zero_mad_fallbacks),
      cmocka_unit_test(test_level_shift),
      cmocka_unit_test(test_short_series),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_allocation_failures),
      cmocka_unit_test(test_large),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
