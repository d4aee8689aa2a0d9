/* test_forecast.c: the forecast module on synthetic series (exact linear
 * extrapolation, a changepoint, a recovered sine, interval order and
 * calibration, reproducibility, max_n_points, seasonality selection),
 * every error case, the forecast_freq table, and allocation failures. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "worker/modules/forecast.h"

#define DAY 86400.0
#define HOUR 3600.0
#define START 1.7e9 /* unix seconds, November 2023 */
#define PI 3.14159265358979323846

/* A deterministic PRNG (splitmix64) and Gaussian noise, so failures
 * reproduce. */
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

typedef struct series {
  double *ts;
  double *values;
  size_t n;
} series;

static series series_new(size_t n, double start, double step) {
  series s = {.ts = calloc(n, sizeof(double)),
              .values = calloc(n, sizeof(double)),
              .n = n};
  assert_non_null(s.ts);
  assert_non_null(s.values);
  for (size_t i = 0; i < n; i++) {
    s.ts[i] = start + (double)i * step;
  }
  return s;
}

static void series_free(series *s) {
  free(s->ts);
  free(s->values);
}

static forecast_params params_for(size_t periods, double step) {
  forecast_params params;
  forecast_params_init(&params);
  params.periods = periods;
  params.step = step;
  return params;
}

static void run_ok(const forecast_params *params, const series *s,
                   forecast_result *result) {
  char err[256] = "";
  int rv =
      forecast_run(params, s->ts, s->values, s->n, result, err, sizeof(err));
  if (rv != FORECAST_OK) {
    fail_msg("forecast_run: %d %s", rv, err);
  }
  assert_int_equal(result->count, params->periods);
}

static void test_defaults(void **state) {
  (void)state;
  forecast_params params;
  forecast_params_init(&params);
  assert_int_equal(params.periods, 0);
  assert_true(params.step == 0.0);
  assert_true(params.changepoint_range == 0.8);
  assert_int_equal(params.n_changepoints, 25);
  assert_true(params.changepoint_prior_scale == 0.05);
  assert_true(params.seasonality_prior_scale == 10.0);
  assert_false(params.smooth);
  assert_int_equal(params.yearly_order, FORECAST_AUTO);
  assert_int_equal(params.weekly_order, FORECAST_AUTO);
  assert_int_equal(params.daily_order, FORECAST_AUTO);
  assert_int_equal(params.uncertainty_samples, 1000);
  assert_true(params.interval_width == 0.8);
  assert_int_equal(params.max_n_points, 20000);
  assert_null(params.allocator);
}

static void test_parse_freq_table(void **state) {
  (void)state;
  static const struct {
    const char *freq;
    double seconds;
  } cases[] = {
      {"30T", 1800},
      {"30min", 1800},
      {"T", 60},
      {"min", 60},
      {"H", 3600},
      {"h", 3600},
      {"2H", 7200},
      {"1.5H", 5400},
      {"0.5D", 43200},
      {"D", 86400},
      {"d", 86400},
      {"7D", 604800},
      {"W", 604800},
      {"W-SUN", 604800},
      {"2W-MON", 1209600},
      {"S", 1},
      {"s", 1},
      {"15S", 15},
      {"L", 1e-3},
      {"ms", 1e-3},
      {"100ms", 0.1},
      {"U", 1e-6},
      {"us", 1e-6},
      {"N", 1e-9},
      {"ns", 1e-9},
      {"M", 2629746},
      {"ME", 2629746},
      {"MS", 2629746},
      {"3M", 7889238},
      {"Q", 7889238},
      {"QS-JAN", 7889238},
      {"A", 31556952},
      {"Y", 31556952},
      {"YS", 31556952},
      {"A-DEC", 31556952},
      {"AS-JAN", 31556952},
      {"001H", 3600},
      {".5H", 1800},
      {"5.H", 18000},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    double seconds = -1.0;
    char err[128] = "";
    int rv = forecast_parse_freq(cases[i].freq, &seconds, err, sizeof(err));
    if (rv != FORECAST_OK) {
      fail_msg("'%s': %s", cases[i].freq, err);
    }
    assert_close(seconds, cases[i].seconds, 1e-9 * cases[i].seconds);
  }
}

static void test_parse_freq_errors(void **state) {
  (void)state;
  static const struct {
    const char *freq;
    const char *message; /* a part of it */
  } cases[] = {
      {"", "empty"},
      {"30", "no unit"},
      {"0H", "positive"},
      {"0.0D", "positive"},
      {"B", "unsupported unit 'B'"},
      {"2BH", "unsupported unit 'BH'"},
      {"-1H", "unsupported unit"},
      {"1e3H", "unsupported unit 'e3H'"},
      {" H", "unsupported unit"},
      {"H ", "unsupported unit 'H '"},
      {"hour", "unsupported unit 'hour'"},
      {".H", "malformed multiple"},
      {"H-SUN", "bad anchor 'SUN'"},
      {"W-FOO", "bad anchor 'FOO'"},
      {"W-", "bad anchor ''"},
      {"Q-MON", "bad anchor 'MON'"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    double seconds = 42.0;
    char err[256] = "";
    int rv = forecast_parse_freq(cases[i].freq, &seconds, err, sizeof(err));
    if (rv != FORECAST_EPARAMS || strstr(err, cases[i].message) == NULL) {
      fail_msg("'%s': rv %d, message '%s', wanted '%s'", cases[i].freq, rv, err,
               cases[i].message);
    }
    assert_true(seconds == 42.0); /* untouched */
  }
  double seconds = 42.0;
  assert_int_equal(forecast_parse_freq(NULL, &seconds, NULL, 0),
                   FORECAST_EPARAMS);
  assert_true(seconds == 42.0);
}

/* A pure line, daily for 120 days (weekly seasonality is on by the auto
 * rule and must stay at zero): extrapolated exactly, with a vanishing
 * interval. */
static void test_linear_trend_extrapolates_exactly(void **state) {
  (void)state;
  series s = series_new(120, START, DAY);
  for (size_t i = 0; i < s.n; i++) {
    s.values[i] = 3.0 + 0.5 * (double)i;
  }
  forecast_params params = params_for(60, DAY);
  forecast_result result;
  run_ok(&params, &s, &result);
  assert_int_equal(result.seasonalities, FORECAST_WEEKLY);
  for (size_t i = 0; i < result.count; i++) {
    double day = (double)(s.n + i);
    assert_close(result.ts[i], START + day * DAY, 1e-3);
    assert_close(result.yhat[i], 3.0 + 0.5 * day, 1e-6);
    assert_true(result.yhat_lower[i] <= result.yhat[i]);
    assert_true(result.yhat[i] <= result.yhat_upper[i]);
    assert_close(result.yhat_upper[i] - result.yhat_lower[i], 0.0, 1e-3);
  }
  assert_true(result.sigma < 1e-4);
  forecast_result_free(&result);
  series_free(&s);
}

/* Slope 1 until day 50, slope 3 after: the forecast continues at slope
 * 3 from the right level. */
static void test_trend_with_one_changepoint(void **state) {
  (void)state;
  series s = series_new(101, START, DAY);
  for (size_t i = 0; i < s.n; i++) {
    double day = (double)i;
    s.values[i] = day <= 50 ? day : 50.0 + 3.0 * (day - 50.0);
  }
  forecast_params params = params_for(30, DAY);
  params.weekly_order = 0;
  forecast_result result;
  run_ok(&params, &s, &result);
  assert_int_equal(result.seasonalities, 0);
  assert_int_equal(result.changepoints, 25);
  for (size_t i = 0; i < result.count; i++) {
    double day = (double)(s.n + i);
    /* The kink falls between two changepoints, which share it; after
     * both, the fit is exact again. */
    assert_close(result.yhat[i], 50.0 + 3.0 * (day - 50.0), 0.01);
  }
  double slope = (result.yhat[29] - result.yhat[0]) / 29.0;
  assert_close(slope, 3.0, 1e-3);
  forecast_result_free(&result);
  series_free(&s);
}

/* 10 + 2 sin(2 pi h / 24) hourly for 21 days with noise of sd 0.1: daily
 * seasonality is picked and recovered. */
static void test_sine_seasonality_recovered(void **state) {
  (void)state;
  uint64_t random = 1;
  series s = series_new(21 * 24, START, HOUR);
  for (size_t i = 0; i < s.n; i++) {
    s.values[i] =
        10.0 + 2.0 * sin(2.0 * PI * s.ts[i] / DAY) + 0.1 * gaussian(&random);
  }
  forecast_params params = params_for(48, HOUR);
  forecast_result result;
  run_ok(&params, &s, &result);
  assert_int_equal(result.seasonalities, FORECAST_WEEKLY | FORECAST_DAILY);
  for (size_t i = 0; i < result.count; i++) {
    double truth = 10.0 + 2.0 * sin(2.0 * PI * result.ts[i] / DAY);
    assert_close(result.yhat[i], truth, 0.1);
  }
  assert_close(result.sigma, 0.1, 0.02);
  forecast_result_free(&result);
  series_free(&s);
}

/* White noise of sd 1 around a constant: lower <= yhat <= upper, and the
 * 80% interval is close to +-1.2816 sd; 95% wider still. */
static void test_intervals_ordered_and_calibrated(void **state) {
  (void)state;
  uint64_t random = 7;
  series s = series_new(2000, START, HOUR);
  for (size_t i = 0; i < s.n; i++) {
    s.values[i] = 100.0 + gaussian(&random);
  }
  forecast_params params = params_for(24, HOUR);
  params.daily_order = 0;
  params.weekly_order = 0;
  params.uncertainty_samples = 4000;
  forecast_result result;
  run_ok(&params, &s, &result);
  params.interval_width = 0.95;
  forecast_result wide;
  run_ok(&params, &s, &wide);
  for (size_t i = 0; i < result.count; i++) {
    assert_true(result.yhat_lower[i] <= result.yhat[i]);
    assert_true(result.yhat[i] <= result.yhat_upper[i]);
    assert_close(result.yhat[i], 100.0, 0.15);
    assert_close(result.yhat_upper[i] - result.yhat[i], 1.2816, 0.15);
    assert_close(result.yhat[i] - result.yhat_lower[i], 1.2816, 0.15);
    assert_true(wide.yhat_lower[i] < result.yhat_lower[i]);
    assert_true(wide.yhat_upper[i] > result.yhat_upper[i]);
    assert_true(wide.yhat[i] == result.yhat[i]);
  }
  assert_close(result.sigma, 1.0, 0.05);
  forecast_result_free(&wide);
  forecast_result_free(&result);
  series_free(&s);
}

/* Intervals widen with the horizon: future changepoints accumulate. */
static void test_trend_uncertainty_grows(void **state) {
  (void)state;
  uint64_t random = 3;
  series s = series_new(200, START, DAY);
  double level = 0.0, slope = 1.0;
  for (size_t i = 0; i < s.n; i++) {
    if (i % 20 == 0) {
      slope += 0.5 * gaussian(&random);
    }
    level += slope;
    s.values[i] = level + 0.5 * gaussian(&random);
  }
  forecast_params params = params_for(400, DAY);
  params.weekly_order = 0;
  forecast_result result;
  run_ok(&params, &s, &result);
  double first = result.yhat_upper[0] - result.yhat_lower[0];
  double last = result.yhat_upper[399] - result.yhat_lower[399];
  assert_true(last > 3.0 * first);
  forecast_result_free(&result);
  series_free(&s);
}

static void test_reproducible_by_seed(void **state) {
  (void)state;
  uint64_t random = 11;
  series s = series_new(300, START, DAY);
  for (size_t i = 0; i < s.n; i++) {
    s.values[i] = 0.1 * (double)i + gaussian(&random);
  }
  forecast_params params = params_for(30, DAY);
  params.seed = 5;
  forecast_result a, b, c;
  run_ok(&params, &s, &a);
  run_ok(&params, &s, &b);
  params.seed = 6;
  run_ok(&params, &s, &c);
  bool differs = false;
  for (size_t i = 0; i < a.count; i++) {
    assert_true(a.yhat_lower[i] == b.yhat_lower[i]);
    assert_true(a.yhat_upper[i] == b.yhat_upper[i]);
    assert_true(a.yhat[i] == c.yhat[i]);
    differs = differs || a.yhat_lower[i] != c.yhat_lower[i];
  }
  assert_true(differs);
  forecast_result_free(&a);
  forecast_result_free(&b);
  forecast_result_free(&c);
  series_free(&s);
}

static void test_no_intervals_without_samples(void **state) {
  (void)state;
  series s = series_new(50, START, DAY);
  for (size_t i = 0; i < s.n; i++) {
    s.values[i] = (double)(i % 7);
  }
  forecast_params params = params_for(10, DAY);
  params.uncertainty_samples = 0;
  forecast_result result;
  run_ok(&params, &s, &result);
  assert_null(result.yhat_lower);
  assert_null(result.yhat_upper);
  assert_non_null(result.yhat);
  /* The weekly cycle, exact in the data, is reproduced. */
  for (size_t i = 0; i < result.count; i++) {
    assert_close(result.yhat[i], (double)((s.n + i) % 7), 0.05);
  }
  forecast_result_free(&result);
  forecast_result_free(&result); /* twice is harmless */
  series_free(&s);
}

/* Only the last max_n_points are used: the same as passing them alone. */
static void test_max_n_points(void **state) {
  (void)state;
  uint64_t random = 13;
  series s = series_new(500, START, HOUR);
  for (size_t i = 0; i < s.n; i++) {
    /* An early regime the window must not see. */
    s.values[i] =
        (i < 300 ? 50.0 : 0.0) + 0.01 * (double)i + 0.1 * gaussian(&random);
  }
  forecast_params params = params_for(5, HOUR);
  params.max_n_points = 200;
  forecast_result windowed, tail;
  run_ok(&params, &s, &windowed);
  assert_int_equal(windowed.points_used, 200);
  series last = {.ts = s.ts + 300, .values = s.values + 300, .n = 200};
  params.max_n_points = 0;
  run_ok(&params, &last, &tail);
  assert_int_equal(tail.points_used, 200);
  for (size_t i = 0; i < 5; i++) {
    assert_true(windowed.yhat[i] == tail.yhat[i]);
    assert_true(windowed.yhat_upper[i] == tail.yhat_upper[i]);
    assert_close(windowed.yhat[i], 0.01 * (double)(500 + i), 0.3);
  }
  forecast_result_free(&windowed);
  forecast_result_free(&tail);
  series_free(&s);
}

static unsigned seasonalities_of(size_t n, double step, int yearly, int weekly,
                                 int daily) {
  series s = series_new(n, START, step);
  for (size_t i = 0; i < n; i++) {
    s.values[i] = sin((double)i);
  }
  forecast_params params = params_for(1, step);
  params.yearly_order = yearly;
  params.weekly_order = weekly;
  params.daily_order = daily;
  params.uncertainty_samples = 0;
  forecast_result result;
  run_ok(&params, &s, &result);
  unsigned seasonalities = result.seasonalities;
  forecast_result_free(&result);
  series_free(&s);
  return seasonalities;
}

static void test_seasonality_selection(void **state) {
  (void)state;
  const int a = FORECAST_AUTO;
  /* yearly needs 730 days */
  assert_int_equal(seasonalities_of(731, DAY, a, a, a),
                   FORECAST_YEARLY | FORECAST_WEEKLY);
  assert_int_equal(seasonalities_of(730, DAY, a, a, a), FORECAST_WEEKLY);
  /* weekly points show no weekly cycle, daily points no daily one */
  assert_int_equal(seasonalities_of(200, 7 * DAY, a, a, a), FORECAST_YEARLY);
  assert_int_equal(seasonalities_of(14, DAY, a, a, a), 0);
  assert_int_equal(seasonalities_of(15, DAY, a, a, a), FORECAST_WEEKLY);
  /* daily needs 2 days of sub-daily points */
  assert_int_equal(seasonalities_of(48, HOUR, a, a, a), 0);
  assert_int_equal(seasonalities_of(49, HOUR, a, a, a), FORECAST_DAILY);
  /* forced on and off */
  assert_int_equal(seasonalities_of(49, HOUR, 2, 1, 0),
                   FORECAST_YEARLY | FORECAST_WEEKLY);
  assert_int_equal(seasonalities_of(731, DAY, 0, 0, 0), 0);
}

/* smooth stiffens the trend: a late slope change is followed less. */
static void test_smooth_stiffens_trend(void **state) {
  (void)state;
  uint64_t random = 17;
  series s = series_new(200, START, DAY);
  for (size_t i = 0; i < s.n; i++) {
    double day = (double)i;
    s.values[i] = (day < 140 ? day : 140.0 + 2.0 * (day - 140.0)) +
                  2.0 * gaussian(&random);
  }
  forecast_params params = params_for(50, DAY);
  params.weekly_order = 0;
  params.changepoint_range = 0.9;
  forecast_result flexible, smooth;
  run_ok(&params, &s, &flexible);
  params.smooth = true;
  run_ok(&params, &s, &smooth);
  double flexible_slope = (flexible.yhat[49] - flexible.yhat[0]) / 49.0;
  double smooth_slope = (smooth.yhat[49] - smooth.yhat[0]) / 49.0;
  assert_close(flexible_slope, 2.0, 0.15);
  assert_true(smooth_slope < flexible_slope - 0.1);
  assert_true(smooth_slope > 1.0);
  forecast_result_free(&flexible);
  forecast_result_free(&smooth);
  series_free(&s);
}

static void test_constant_series(void **state) {
  (void)state;
  series s = series_new(30, START, DAY);
  for (size_t i = 0; i < s.n; i++) {
    s.values[i] = -4.0;
  }
  forecast_params params = params_for(10, DAY);
  forecast_result result;
  run_ok(&params, &s, &result);
  for (size_t i = 0; i < result.count; i++) {
    assert_close(result.yhat[i], -4.0, 1e-9);
    assert_close(result.yhat_lower[i], -4.0, 1e-4);
    assert_close(result.yhat_upper[i], -4.0, 1e-4);
  }
  forecast_result_free(&result);
  series_free(&s);
}

/* The existing hub's example request: 30-minute points, periods 200,
 * changepoint_range 0.95, 1000 samples, max_n_points 20000 of 25000. */
static void test_hub_example_size(void **state) {
  (void)state;
  uint64_t random = 19;
  series s = series_new(25000, START, 1800.0);
  for (size_t i = 0; i < s.n; i++) {
    double hours = (double)i / 2.0;
    s.values[i] = 50.0 + 0.001 * hours + 5.0 * sin(2.0 * PI * hours / 24.0) +
                  2.0 * sin(2.0 * PI * hours / 168.0) + gaussian(&random);
  }
  forecast_params params;
  forecast_params_init(&params);
  params.periods = 200;
  assert_int_equal(forecast_parse_freq("30T", &params.step, NULL, 0), 0);
  params.changepoint_range = 0.95;
  params.smooth = true;
  forecast_result result;
  run_ok(&params, &s, &result);
  assert_int_equal(result.points_used, 20000);
  assert_int_equal(result.seasonalities, FORECAST_WEEKLY | FORECAST_DAILY);
  size_t inside = 0;
  for (size_t i = 0; i < result.count; i++) {
    double hours = (double)(s.n + i) / 2.0;
    double truth = 50.0 + 0.001 * hours + 5.0 * sin(2.0 * PI * hours / 24.0) +
                   2.0 * sin(2.0 * PI * hours / 168.0);
    assert_close(result.yhat[i], truth, 0.3);
    double actual = truth + gaussian(&random);
    inside += result.yhat_lower[i] <= actual && actual <= result.yhat_upper[i];
  }
  assert_true(inside >= 140 && inside <= 180); /* of 200, 80% expected */
  forecast_result_free(&result);
  series_free(&s);
}

static void expect_error(const forecast_params *params, const series *s,
                         int code, const char *message) {
  forecast_result result;
  memset(&result, 0xab, sizeof(result));
  char err[256] = "";
  int rv =
      forecast_run(params, s->ts, s->values, s->n, &result, err, sizeof(err));
  if (rv != code || strstr(err, message) == NULL) {
    fail_msg("rv %d, message '%s'; wanted %d, '%s'", rv, err, code, message);
  }
  assert_null(result.ts);
  assert_null(result.yhat);
  assert_int_equal(result.count, 0);
  forecast_result_free(&result);
}

static void test_data_errors(void **state) {
  (void)state;
  series s = series_new(10, START, DAY);
  forecast_params params = params_for(5, DAY);
  series two = {.ts = s.ts, .values = s.values, .n = 2};
  expect_error(&params, &two, FORECAST_EDATA,
               "too few points: 2 given, at least 3 needed");
  series none = {.ts = NULL, .values = NULL, .n = 0};
  expect_error(&params, &none, FORECAST_EDATA,
               "too few points: 0 given, at least 3 needed");

  s.ts[4] = s.ts[3];
  expect_error(&params, &s, FORECAST_EDATA,
               "timestamps must be strictly ascending: timestamps[4] = "
               "1700259200 is not after timestamps[3] = 1700259200");
  s.ts[4] = s.ts[3] - 1.0;
  expect_error(&params, &s, FORECAST_EDATA, "timestamps[4] = 1700259199");
  s.ts[4] = NAN;
  expect_error(&params, &s, FORECAST_EDATA, "timestamps[4] is not finite");
  s.ts[4] = START + 4 * DAY;

  s.values[7] = NAN;
  expect_error(&params, &s, FORECAST_EDATA, "values[7] is NaN");
  s.values[7] = -INFINITY;
  expect_error(&params, &s, FORECAST_EDATA, "values[7] is infinite");
  s.values[7] = 0.0;

  /* max_n_points does not hide bad points before the window */
  params.max_n_points = 3;
  s.values[0] = NAN;
  expect_error(&params, &s, FORECAST_EDATA, "values[0] is NaN");
  s.values[0] = 0.0;
  params.max_n_points = 0;

  s.values[1] = 1e308;
  s.values[2] = -1e308;
  expect_error(&params, &s, FORECAST_EDATA, "span more than a double");
  s.values[1] = s.values[2] = 0.0;
  params.step = 1e307;
  params.periods = 1000;
  expect_error(&params, &s, FORECAST_EDATA, "span more than a double");
  params.step = 1e-9; /* "N" after unix seconds of 2023 */
  params.periods = 5;
  expect_error(&params, &s, FORECAST_EPARAMS,
               "step 1e-09 s is below the resolution of timestamps near "
               "1700777600");
  series_free(&s);
}

static void test_param_errors(void **state) {
  (void)state;
  series s = series_new(10, START, DAY);
  forecast_params good = params_for(5, DAY);
  forecast_params params;
  static const struct {
    const char *message;
  } messages[] = {
      {"periods must be 1..1000000, got 0"},
      {"periods must be 1..1000000, got 1000001"},
      {"step must be a positive number of seconds, got 0"},
      {"step must be a positive number of seconds, got nan"},
      {"step must be a positive number of seconds, got inf"},
      {"changepoint_range must be 0..1, got 1.5"},
      {"changepoint_range must be 0..1, got nan"},
      {"n_changepoints must be 0..200, got 201"},
      {"must be positive, got 0 and 10"},
      {"must be positive, got 0.05 and -1"},
      {"yearly_order must be -1 (auto), 0 (off) or 1..50, got -2"},
      {"daily_order must be -1 (auto), 0 (off) or 1..50, got 51"},
      {"uncertainty_samples must be 0..100000, got 100001"},
      {"periods * uncertainty_samples must be at most 10000000, got "
       "200000 * 100"},
      {"interval_width must be between 0 and 1 (exclusive), got 1"},
      {"interval_width must be between 0 and 1 (exclusive), got 0"},
      {"max_n_points must be 0 (all) or at least 3, got 2"},
      {"the allocator needs alloc and release"},
  };
  module_allocator half = {.alloc = NULL, .release = NULL};
  for (size_t i = 0; i < sizeof(messages) / sizeof(messages[0]); i++) {
    params = good;
    switch (i) {
    case 0:
      params.periods = 0;
      break;
    case 1:
      params.periods = 1000001;
      break;
    case 2:
      params.step = 0.0;
      break;
    case 3:
      params.step = NAN;
      break;
    case 4:
      params.step = INFINITY;
      break;
    case 5:
      params.changepoint_range = 1.5;
      break;
    case 6:
      params.changepoint_range = NAN;
      break;
    case 7:
      params.n_changepoints = 201;
      break;
    case 8:
      params.changepoint_prior_scale = 0.0;
      break;
    case 9:
      params.seasonality_prior_scale = -1.0;
      break;
    case 10:
      params.yearly_order = -2;
      break;
    case 11:
      params.daily_order = 51;
      break;
    case 12:
      params.uncertainty_samples = 100001;
      break;
    case 13:
      params.periods = 200000;
      params.uncertainty_samples = 100;
      break;
    case 14:
      params.interval_width = 1.0;
      break;
    case 15:
      params.interval_width = 0.0;
      break;
    case 16:
      params.max_n_points = 2;
      break;
    case 17:
      params.allocator = &half;
      break;
    default:
      fail();
    }
    expect_error(&params, &s, FORECAST_EPARAMS, messages[i].message);
  }
  /* Parameters are checked before the data. */
  params = good;
  params.periods = 0;
  series one = {.ts = s.ts, .values = s.values, .n = 1};
  expect_error(&params, &one, FORECAST_EPARAMS, "periods");

  forecast_result result;
  char err[128];
  assert_int_equal(
      forecast_run(NULL, s.ts, s.values, s.n, &result, err, sizeof(err)),
      FORECAST_EPARAMS);
  assert_null(result.ts);
  assert_int_equal(
      forecast_run(&good, s.ts, s.values, s.n, NULL, err, sizeof(err)),
      FORECAST_EPARAMS);
  assert_int_equal(
      forecast_run(&good, NULL, s.values, s.n, &result, err, sizeof(err)),
      FORECAST_EPARAMS);
  assert_non_null(strstr(err, "must not be NULL"));
  /* A NULL or empty err buffer is fine. */
  assert_int_equal(forecast_run(&good, s.ts, s.values, 1, &result, NULL, 0),
                   FORECAST_EDATA);
  series_free(&s);
}

/* An allocator that fails its Nth allocation and counts what is live. */
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

static void test_allocation_failures(void **state) {
  (void)state;
  uint64_t random = 23;
  series s = series_new(100, START, HOUR);
  for (size_t i = 0; i < s.n; i++) {
    s.values[i] = sin((double)i / 4.0) + 0.1 * gaussian(&random);
  }
  failing_allocator counter = {.fail_at = SIZE_MAX};
  module_allocator allocator = {
      .alloc = failing_alloc, .release = failing_release, .context = &counter};
  forecast_params params = params_for(12, HOUR);
  params.allocator = &allocator;
  forecast_result reference;
  run_ok(&params, &s, &reference);
  size_t total = counter.calls;
  assert_true(total > 5);
  forecast_result_free(&reference);
  assert_int_equal(counter.live, 0);
  for (size_t n = 0; n < total; n++) {
    counter = (failing_allocator){.fail_at = n};
    forecast_result result;
    char err[128] = "";
    int rv =
        forecast_run(&params, s.ts, s.values, s.n, &result, err, sizeof(err));
    if (rv != FORECAST_ENOMEM || strstr(err, "out of memory") == NULL) {
      fail_msg("allocation %zu: rv %d '%s'", n, rv, err);
    }
    assert_null(result.ts);
    assert_int_equal(counter.live, 0);
  }
  series_free(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_parse_freq_table),
      cmocka_unit_test(test_parse_freq_errors),
      cmocka_unit_test(test_linear_trend_extrapolates_exactly),
      cmocka_unit_test(test_trend_with_one_changepoint),
      cmocka_unit_test(test_sine_seasonality_recovered),
      cmocka_unit_test(test_intervals_ordered_and_calibrated),
      cmocka_unit_test(test_trend_uncertainty_grows),
      cmocka_unit_test(test_reproducible_by_seed),
      cmocka_unit_test(test_no_intervals_without_samples),
      cmocka_unit_test(test_max_n_points),
      cmocka_unit_test(test_seasonality_selection),
      cmocka_unit_test(test_smooth_stiffens_trend),
      cmocka_unit_test(test_constant_series),
      cmocka_unit_test(test_hub_example_size),
      cmocka_unit_test(test_data_errors),
      cmocka_unit_test(test_param_errors),
      cmocka_unit_test(test_allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
