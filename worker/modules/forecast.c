/* forecast.c: Prophet-style forecasting. The model, in scaled time
 * t = (ts - first) / span (0..1 over the history) and scaled value
 * y = (value - min) / (max - min), is
 *
 *   y(t) = a + k t + sum_j delta_j (t - s_j)+ + sum_seasonality Fourier(ts)
 *
 * fitted by ridge least squares: two Householder QR passes, one of the
 * n x p design (once), one of the small [R; sqrt(penalty)] stack (per noise
 * estimate). The penalties are sigma^2 / prior_scale^2 with sigma^2 the
 * residual variance, re-estimated (RSS / (n - effective parameters)) until
 * it settles: a Gaussian prior whose weight against the data does not
 * depend on the noise level. Intervals follow Prophet's MAP mode: future
 * changepoints at the historical rate with Laplace slope changes at the
 * fitted deltas' mean size, plus Gaussian observation noise, and quantiles
 * over the sampled paths. */
#include "worker/modules/forecast.h"
#include "worker/modules/series_check.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECONDS_PER_DAY 86400.0
#define YEAR_DAYS 365.25
#define WEEK_DAYS 7.0
#define PI 3.14159265358979323846
/* Scaled values span 1: a noise floor of 1e-6 of the range keeps the
 * penalties positive when a series is fitted exactly. */
#define SIGMA2_FLOOR 1e-12
#define NOISE_ROUNDS 50
#define NOISE_TOLERANCE 1e-7 /* relative change of sigma^2 that is settled */

enum { SEASONALITY_COUNT = 3 };

typedef struct seasonality {
  double period_days;
  size_t order; /* Fourier pairs; 0: off */
  unsigned bit;
} seasonality;

/* The fitted model, in scaled units. */
typedef struct model {
  size_t n; /* points used */
  const double *ts, *values;
  double first_ts, span; /* seconds */
  double value_offset, value_scale;
  size_t changepoint_count;
  double *changepoints; /* scaled t */
  seasonality seasonalities[SEASONALITY_COUNT];
  size_t columns;
  double *beta;
  double sigma2;
} model;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
set_error(char *err, size_t err_size, const char *format, ...) {
  if (err == NULL || err_size == 0) {
    return;
  }
  va_list args;
  va_start(args, format);
  vsnprintf(err, err_size, format, args);
  va_end(args);
}

/* xoshiro256** seeded through splitmix64 (Blackman and Vigna). */
typedef struct prng {
  uint64_t s[4];
} prng;

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static void prng_seed(prng *rng, uint64_t seed) {
  for (size_t i = 0; i < 4; i++) {
    rng->s[i] = splitmix64(&seed);
  }
}

static uint64_t rotate_left(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

static uint64_t prng_next(prng *rng) {
  uint64_t *s = rng->s;
  uint64_t result = rotate_left(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotate_left(s[3], 45);
  return result;
}

/* Uniform in the open interval (0, 1). */
static double prng_uniform(prng *rng) {
  return ((double)(prng_next(rng) >> 11) + 0.5) * 0x1.0p-53;
}

static double prng_normal(prng *rng) {
  double radius = sqrt(-2.0 * log(prng_uniform(rng)));
  return radius * cos(2.0 * PI * prng_uniform(rng));
}

static double prng_exponential(prng *rng, double rate) {
  return -log(prng_uniform(rng)) / rate;
}

static double prng_laplace(prng *rng, double scale) {
  double magnitude = -scale * log(prng_uniform(rng));
  return (prng_next(rng) >> 63) ? magnitude : -magnitude;
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The q-quantile of sorted[0..count), interpolated linearly (numpy's
 * default). */
static double quantile(const double *sorted, size_t count, double q) {
  double position = q * (double)(count - 1);
  double below = floor(position);
  size_t index = (size_t)below;
  if (index + 1 >= count) {
    return sorted[count - 1];
  }
  return sorted[index] +
         (position - below) * (sorted[index + 1] - sorted[index]);
}

void forecast_params_init(forecast_params *params) {
  *params = (forecast_params){
      .periods = 0,
      .step = 0.0,
      .changepoint_range = 0.8,
      .n_changepoints = 25,
      .changepoint_prior_scale = 0.05,
      .seasonality_prior_scale = 10.0,
      .smooth = false,
      .yearly_order = FORECAST_AUTO,
      .weekly_order = FORECAST_AUTO,
      .daily_order = FORECAST_AUTO,
      .uncertainty_samples = 1000,
      .interval_width = 0.8,
      .seed = 0,
      .max_n_points = 20000,
      .allocator = NULL,
  };
}

/* Units of pandas offset aliases with a fixed (or, for calendar units,
 * mean Gregorian) length. anchor: which "-XXX" suffixes the unit takes. */
enum { ANCHOR_NONE, ANCHOR_DAY, ANCHOR_MONTH };

typedef struct freq_unit {
  const char *name;
  double seconds;
  int anchor;
} freq_unit;

#define MEAN_YEAR_SECONDS (365.2425 * SECONDS_PER_DAY)

static const freq_unit freq_units[] = {
    {"N", 1e-9, ANCHOR_NONE},
    {"ns", 1e-9, ANCHOR_NONE},
    {"U", 1e-6, ANCHOR_NONE},
    {"us", 1e-6, ANCHOR_NONE},
    {"L", 1e-3, ANCHOR_NONE},
    {"ms", 1e-3, ANCHOR_NONE},
    {"S", 1.0, ANCHOR_NONE},
    {"s", 1.0, ANCHOR_NONE},
    {"T", 60.0, ANCHOR_NONE},
    {"min", 60.0, ANCHOR_NONE},
    {"H", 3600.0, ANCHOR_NONE},
    {"h", 3600.0, ANCHOR_NONE},
    {"D", SECONDS_PER_DAY, ANCHOR_NONE},
    {"d", SECONDS_PER_DAY, ANCHOR_NONE},
    {"W", 7 * SECONDS_PER_DAY, ANCHOR_DAY},
    {"M", MEAN_YEAR_SECONDS / 12, ANCHOR_NONE},
    {"ME", MEAN_YEAR_SECONDS / 12, ANCHOR_NONE},
    {"MS", MEAN_YEAR_SECONDS / 12, ANCHOR_NONE},
    {"Q", MEAN_YEAR_SECONDS / 4, ANCHOR_MONTH},
    {"QE", MEAN_YEAR_SECONDS / 4, ANCHOR_MONTH},
    {"QS", MEAN_YEAR_SECONDS / 4, ANCHOR_MONTH},
    {"A", MEAN_YEAR_SECONDS, ANCHOR_MONTH},
    {"Y", MEAN_YEAR_SECONDS, ANCHOR_MONTH},
    {"YE", MEAN_YEAR_SECONDS, ANCHOR_MONTH},
    {"AS", MEAN_YEAR_SECONDS, ANCHOR_MONTH},
    {"YS", MEAN_YEAR_SECONDS, ANCHOR_MONTH},
};

static bool anchor_valid(const char *anchor, int kind) {
  static const char *const days[] = {"MON", "TUE", "WED", "THU",
                                     "FRI", "SAT", "SUN"};
  static const char *const months[] = {"JAN", "FEB", "MAR", "APR",
                                       "MAY", "JUN", "JUL", "AUG",
                                       "SEP", "OCT", "NOV", "DEC"};
  if (kind == ANCHOR_DAY) {
    for (size_t i = 0; i < sizeof(days) / sizeof(days[0]); i++) {
      if (strcmp(anchor, days[i]) == 0) {
        return true;
      }
    }
  } else if (kind == ANCHOR_MONTH) {
    for (size_t i = 0; i < sizeof(months) / sizeof(months[0]); i++) {
      if (strcmp(anchor, months[i]) == 0) {
        return true;
      }
    }
  }
  return false;
}

int forecast_parse_freq(const char *freq, double *seconds, char *err,
                        size_t err_size) {
  if (freq == NULL || *freq == '\0') {
    set_error(err, err_size, "forecast_freq is empty");
    return FORECAST_EPARAMS;
  }
  /* The multiple, parsed by hand: strtod would take "inf", "1e3", "-2",
   * leading spaces and the locale's decimal point. */
  const char *p = freq;
  double multiple = 1.0;
  if ((*p >= '0' && *p <= '9') || *p == '.') {
    double whole = 0.0, fraction = 0.0, place = 1.0;
    size_t digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
      whole = whole * 10.0 + (double)(*p - '0');
    }
    if (*p == '.') {
      for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
        place /= 10.0;
        fraction += place * (double)(*p - '0');
      }
    }
    multiple = whole + fraction;
    if (digits == 0) {
      set_error(err, err_size, "forecast_freq '%s': malformed multiple", freq);
      return FORECAST_EPARAMS;
    }
    if (!(multiple > 0.0) || !isfinite(multiple)) {
      set_error(err, err_size,
                "forecast_freq '%s': the multiple must be positive", freq);
      return FORECAST_EPARAMS;
    }
  }
  if (*p == '\0') {
    set_error(err, err_size, "forecast_freq '%s': no unit", freq);
    return FORECAST_EPARAMS;
  }
  const char *dash = strchr(p, '-');
  size_t unit_length = dash != NULL ? (size_t)(dash - p) : strlen(p);
  for (size_t i = 0; i < sizeof(freq_units) / sizeof(freq_units[0]); i++) {
    const freq_unit *unit = &freq_units[i];
    if (strlen(unit->name) != unit_length ||
        strncmp(unit->name, p, unit_length) != 0) {
      continue;
    }
    if (dash != NULL && !anchor_valid(dash + 1, unit->anchor)) {
      set_error(err, err_size, "forecast_freq '%s': bad anchor '%s'", freq,
                dash + 1);
      return FORECAST_EPARAMS;
    }
    *seconds = multiple * unit->seconds;
    return FORECAST_OK;
  }
  set_error(err, err_size,
            "forecast_freq '%s': unsupported unit '%.*s' (use N/ns, U/us, "
            "L/ms, S/s, T/min, H/h, D, W, M/MS, Q/QS or A/Y/YS)",
            freq, (int)unit_length, p);
  return FORECAST_EPARAMS;
}

static int check_params(const forecast_params *params, char *err,
                        size_t err_size) {
  if (params->periods < 1 || params->periods > FORECAST_MAX_PERIODS) {
    set_error(err, err_size, "periods must be 1..%d, got %zu",
              FORECAST_MAX_PERIODS, params->periods);
    return FORECAST_EPARAMS;
  }
  if (!(params->step > 0.0) || !isfinite(params->step)) {
    set_error(err, err_size,
              "step must be a positive number of seconds, "
              "got %g",
              params->step);
    return FORECAST_EPARAMS;
  }
  if (!(params->changepoint_range >= 0.0 && params->changepoint_range <= 1.0)) {
    set_error(err, err_size, "changepoint_range must be 0..1, got %g",
              params->changepoint_range);
    return FORECAST_EPARAMS;
  }
  if (params->n_changepoints > FORECAST_MAX_CHANGEPOINTS) {
    set_error(err, err_size, "n_changepoints must be 0..%d, got %zu",
              FORECAST_MAX_CHANGEPOINTS, params->n_changepoints);
    return FORECAST_EPARAMS;
  }
  if (!(params->changepoint_prior_scale > 0.0) ||
      !isfinite(params->changepoint_prior_scale) ||
      !(params->seasonality_prior_scale > 0.0) ||
      !isfinite(params->seasonality_prior_scale)) {
    set_error(err, err_size,
              "changepoint_prior_scale and seasonality_prior_scale must be "
              "positive, got %g and %g",
              params->changepoint_prior_scale, params->seasonality_prior_scale);
    return FORECAST_EPARAMS;
  }
  const int orders[] = {params->yearly_order, params->weekly_order,
                        params->daily_order};
  static const char *const names[] = {"yearly", "weekly", "daily"};
  for (size_t i = 0; i < SEASONALITY_COUNT; i++) {
    if (orders[i] < FORECAST_AUTO || orders[i] > FORECAST_MAX_ORDER) {
      set_error(err, err_size,
                "%s_order must be -1 (auto), 0 (off) or 1..%d, got %d",
                names[i], FORECAST_MAX_ORDER, orders[i]);
      return FORECAST_EPARAMS;
    }
  }
  if (params->uncertainty_samples > FORECAST_MAX_SAMPLES) {
    set_error(err, err_size, "uncertainty_samples must be 0..%d, got %zu",
              FORECAST_MAX_SAMPLES, params->uncertainty_samples);
    return FORECAST_EPARAMS;
  }
  if (params->uncertainty_samples >
      FORECAST_MAX_SAMPLE_VALUES / params->periods) {
    set_error(err, err_size,
              "periods * uncertainty_samples must be at most %d, got "
              "%zu * %zu",
              FORECAST_MAX_SAMPLE_VALUES, params->periods,
              params->uncertainty_samples);
    return FORECAST_EPARAMS;
  }
  if (!(params->interval_width > 0.0 && params->interval_width < 1.0)) {
    set_error(err, err_size,
              "interval_width must be between 0 and 1 "
              "(exclusive), got %g",
              params->interval_width);
    return FORECAST_EPARAMS;
  }
  if (params->max_n_points != 0 && params->max_n_points < FORECAST_MIN_POINTS) {
    set_error(err, err_size,
              "max_n_points must be 0 (all) or at least %d, "
              "got %zu",
              FORECAST_MIN_POINTS, params->max_n_points);
    return FORECAST_EPARAMS;
  }
  const module_allocator *allocator = params->allocator;
  if (allocator != NULL &&
      (allocator->alloc == NULL || allocator->release == NULL)) {
    set_error(err, err_size, "the allocator needs alloc and release");
    return FORECAST_EPARAMS;
  }
  return FORECAST_OK;
}

static int check_data(const double *timestamps, const double *values, size_t n,
                      char *err, size_t err_size) {
  if (n < FORECAST_MIN_POINTS) {
    set_error(err, err_size, "too few points: %zu given, at least %d needed", n,
              FORECAST_MIN_POINTS);
    return FORECAST_EDATA;
  }
  if (series_check(timestamps, values, n, err, err_size) != 0) {
    return FORECAST_EDATA;
  }
  return FORECAST_OK;
}

/* Chooses the seasonalities: forced orders as given, FORECAST_AUTO ones
 * when the history spans two periods and the median spacing of the points
 * is shorter than one (the forecast step does not matter: daily points
 * forecast hourly cannot show a daily cycle, hourly points forecast daily
 * still place each day's forecast at its time of day). */
static int choose_seasonalities(model *m, const forecast_params *params,
                                const module_allocator *allocator) {
  double *gaps = module_alloc(allocator, m->n - 1, sizeof(double));
  if (gaps == NULL) {
    return FORECAST_ENOMEM;
  }
  for (size_t i = 1; i < m->n; i++) {
    gaps[i - 1] = m->ts[i] - m->ts[i - 1];
  }
  size_t count = m->n - 1;
  qsort(gaps, count, sizeof(double), compare_doubles);
  double spacing_days =
      (count % 2 ? gaps[count / 2]
                 : 0.5 * (gaps[count / 2 - 1] + gaps[count / 2])) /
      SECONDS_PER_DAY;
  module_release(allocator, gaps);
  double span_days = m->span / SECONDS_PER_DAY;

  const int orders[SEASONALITY_COUNT] = {
      params->yearly_order, params->weekly_order, params->daily_order};
  static const int defaults[SEASONALITY_COUNT] = {
      FORECAST_YEARLY_ORDER, FORECAST_WEEKLY_ORDER, FORECAST_DAILY_ORDER};
  static const double periods[SEASONALITY_COUNT] = {YEAR_DAYS, WEEK_DAYS, 1.0};
  static const unsigned bits[SEASONALITY_COUNT] = {
      FORECAST_YEARLY, FORECAST_WEEKLY, FORECAST_DAILY};
  /* Prophet's auto rule for yearly: 730 days of history. */
  static const double min_span_days[SEASONALITY_COUNT] = {730.0, 14.0, 2.0};
  for (size_t i = 0; i < SEASONALITY_COUNT; i++) {
    int order = orders[i];
    if (order == FORECAST_AUTO) {
      bool shown = span_days >= min_span_days[i] && spacing_days < periods[i];
      order = shown ? defaults[i] : 0;
    }
    m->seasonalities[i] = (seasonality){
        .period_days = periods[i], .order = (size_t)order, .bit = bits[i]};
  }
  return FORECAST_OK;
}

/* Places the changepoints as Prophet does: evenly by index over the first
 * changepoint_range of the points, the first point excluded. */
static int place_changepoints(model *m, const forecast_params *params,
                              const module_allocator *allocator) {
  size_t history = (size_t)floor((double)m->n * params->changepoint_range);
  size_t count = params->n_changepoints;
  if (count + 1 > history) {
    count = history > 0 ? history - 1 : 0;
  }
  m->changepoint_count = count;
  m->changepoints = module_alloc(allocator, count, sizeof(double));
  if (m->changepoints == NULL) {
    return FORECAST_ENOMEM;
  }
  for (size_t j = 1; j <= count; j++) {
    double position = (double)j * (double)(history - 1) / (double)count;
    size_t index = (size_t)floor(position + 0.5);
    m->changepoints[j - 1] = (m->ts[index] - m->first_ts) / m->span;
  }
  return FORECAST_OK;
}

/* Writes the p features of time ts (scaled t) to row[0], row[stride], ...:
 * 1, t, (t - s_j)+ per changepoint, then sin and cos of 2 pi k ts / period
 * for k = 1..order per seasonality, in days since the epoch so that phases
 * do not depend on the window. */
static void design_row(const model *m, double t, double ts, double *row,
                       size_t stride) {
  size_t column = 0;
  row[column++ * stride] = 1.0;
  row[column++ * stride] = t;
  for (size_t j = 0; j < m->changepoint_count; j++) {
    double after = t - m->changepoints[j];
    row[column++ * stride] = after > 0.0 ? after : 0.0;
  }
  double days = ts / SECONDS_PER_DAY;
  for (size_t s = 0; s < SEASONALITY_COUNT; s++) {
    const seasonality *season = &m->seasonalities[s];
    for (size_t k = 1; k <= season->order; k++) {
      double angle = 2.0 * PI * (double)k * fmod(days, season->period_days) /
                     season->period_days;
      row[column++ * stride] = sin(angle);
      row[column++ * stride] = cos(angle);
    }
  }
}

/* Reduces the rows x columns matrix a (column-major, leading dimension
 * lda) to upper-trapezoidal R with Householder reflections, applied to rhs
 * as well: afterwards rhs holds Q^T rhs. Below R is zeroed. */
static void householder_reduce(double *a, size_t lda, size_t rows,
                               size_t columns, double *rhs) {
  size_t steps = rows < columns ? rows : columns;
  for (size_t j = 0; j < steps; j++) {
    double *x = a + j * lda;
    double norm2 = 0.0;
    for (size_t i = j; i < rows; i++) {
      norm2 += x[i] * x[i];
    }
    if (norm2 == 0.0) {
      continue;
    }
    double norm = sqrt(norm2);
    double alpha = x[j] > 0.0 ? -norm : norm; /* no cancellation in v_j */
    x[j] -= alpha;                            /* x is now v */
    double tau = -1.0 / (alpha * x[j]);       /* 2 / (v^T v) */
    for (size_t c = j + 1; c < columns; c++) {
      double *y = a + c * lda;
      double dot = 0.0;
      for (size_t i = j; i < rows; i++) {
        dot += x[i] * y[i];
      }
      dot *= tau;
      for (size_t i = j; i < rows; i++) {
        y[i] -= dot * x[i];
      }
    }
    double dot = 0.0;
    for (size_t i = j; i < rows; i++) {
      dot += x[i] * rhs[i];
    }
    dot *= tau;
    for (size_t i = j; i < rows; i++) {
      rhs[i] -= dot * x[i];
    }
    x[j] = alpha;
    for (size_t i = j + 1; i < rows; i++) {
      x[i] = 0.0;
    }
  }
}

/* Solves the ridge problem min |R beta - z|^2 + sum penalty_j beta_j^2
 * given the r_rows x p trapezoid R (in design, leading dimension lda) and
 * z: QR of the small stack [R; diag(sqrt(penalty))] into stack, then back
 * substitution. Sets *parameters to the effective number of parameters,
 * trace(X (X^T X + L)^-1 X^T) = |R S^-1|_F^2 with S the stack's R
 * (inverse is p x p scratch). Returns 0, or -1 if S is singular. */
static int solve_penalized(const double *design, size_t lda, size_t r_rows,
                           size_t p, const double *z, const double *penalty,
                           double *stack, double *stack_rhs, double *inverse,
                           double *beta, double *parameters) {
  size_t rows = r_rows + p;
  memset(stack, 0, rows * p * sizeof(double));
  for (size_t j = 0; j < p; j++) {
    for (size_t i = 0; i <= j && i < r_rows; i++) {
      stack[i + j * rows] = design[i + j * lda];
    }
    stack[r_rows + j + j * rows] = sqrt(penalty[j]);
  }
  memcpy(stack_rhs, z, r_rows * sizeof(double));
  memset(stack_rhs + r_rows, 0, p * sizeof(double));
  householder_reduce(stack, rows, rows, p, stack_rhs);
  for (size_t j = p; j-- > 0;) {
    double diagonal = stack[j + j * rows];
    if (!(fabs(diagonal) > 0.0) || !isfinite(diagonal)) {
      return -1;
    }
    double sum = stack_rhs[j];
    for (size_t k = j + 1; k < p; k++) {
      sum -= stack[j + k * rows] * beta[k];
    }
    beta[j] = sum / diagonal;
  }
  memset(inverse, 0, p * p * sizeof(double));
  for (size_t c = 0; c < p; c++) {
    inverse[c + c * p] = 1.0 / stack[c + c * rows];
    for (size_t i = c; i-- > 0;) {
      double sum = 0.0;
      for (size_t k = i + 1; k <= c; k++) {
        sum += stack[i + k * rows] * inverse[k + c * p];
      }
      inverse[i + c * p] = -sum / stack[i + i * rows];
    }
  }
  double trace = 0.0;
  for (size_t c = 0; c < p; c++) {
    for (size_t i = 0; i < r_rows && i <= c; i++) {
      double entry = 0.0;
      for (size_t k = i; k <= c; k++) {
        entry += design[i + k * lda] * inverse[k + c * p];
      }
      trace += entry * entry;
    }
  }
  *parameters = trace;
  return 0;
}

/* Fits m->beta and m->sigma2 to the scaled points: one Householder QR of
 * the design X (n x p) gives R and z = Q^T y; then, per noise estimate,
 * the ridge solution from the small stack, and sigma^2 = RSS / (n -
 * effective parameters), the penalties being sigma^2 / prior_scale^2,
 * until sigma^2 settles. */
static int fit(model *m, const forecast_params *params,
               const module_allocator *allocator, char *err, size_t err_size) {
  int rv = FORECAST_ENOMEM;
  size_t n = m->n, p = m->columns;
  size_t r_rows = n < p ? n : p;
  size_t stack_rows = r_rows + p;
  double *design = module_alloc(allocator, n * p, sizeof(double));
  double *rhs = module_alloc(allocator, n, sizeof(double));
  double *stack = module_alloc(allocator, stack_rows * p, sizeof(double));
  double *stack_rhs = module_alloc(allocator, stack_rows, sizeof(double));
  double *inverse = module_alloc(allocator, p * p, sizeof(double));
  double *penalty = module_alloc(allocator, p, sizeof(double));
  m->beta = module_alloc(allocator, p, sizeof(double));
  if (design == NULL || rhs == NULL || stack == NULL || stack_rhs == NULL ||
      inverse == NULL || penalty == NULL || m->beta == NULL) {
    set_error(err, err_size, "out of memory fitting %zu points x %zu columns",
              n, p);
    goto out;
  }

  double mean = 0.0;
  for (size_t i = 0; i < n; i++) {
    double t = (m->ts[i] - m->first_ts) / m->span;
    design_row(m, t, m->ts[i], design + i, n);
    rhs[i] = (m->values[i] - m->value_offset) / m->value_scale;
    mean += rhs[i];
  }
  mean /= (double)n;
  double variance = 0.0;
  for (size_t i = 0; i < n; i++) {
    variance += (rhs[i] - mean) * (rhs[i] - mean);
  }
  variance /= (double)n;

  householder_reduce(design, n, n, p, rhs);
  double rss_outside = 0.0; /* the part of y no coefficient can reach */
  for (size_t i = r_rows; i < n; i++) {
    rss_outside += rhs[i] * rhs[i];
  }

  double delta_scale = params->changepoint_prior_scale;
  if (params->smooth) {
    delta_scale /= FORECAST_SMOOTH_FACTOR;
  }
  double season_scale = params->seasonality_prior_scale;
  size_t first_season = 2 + m->changepoint_count;
  /* From above (the variance of y): sigma^2 then decreases monotonically
   * to the largest fixed point, the least overfitted one. */
  double sigma2 = variance > SIGMA2_FLOOR ? variance : SIGMA2_FLOOR;
  for (int round = 0; round < NOISE_ROUNDS; round++) {
    /* Intercept and slope unpenalized (Prophet's priors on them are
     * vague); n >= 3 distinct times keep those two columns independent. */
    for (size_t j = 0; j < p; j++) {
      double scale = j < first_season ? delta_scale : season_scale;
      penalty[j] = j < 2 ? 0.0 : sigma2 / (scale * scale);
    }
    double parameters;
    if (solve_penalized(design, n, r_rows, p, rhs, penalty, stack, stack_rhs,
                        inverse, m->beta, &parameters) != 0) {
      set_error(err, err_size, "the least-squares system is singular");
      rv = FORECAST_EDATA;
      goto out;
    }
    /* RSS = |z - R beta|^2 + what lies outside the column space. */
    double rss = rss_outside;
    for (size_t i = 0; i < r_rows; i++) {
      double fitted = 0.0;
      for (size_t k = i; k < p; k++) {
        fitted += design[i + k * n] * m->beta[k];
      }
      rss += (rhs[i] - fitted) * (rhs[i] - fitted);
    }
    double freedom = (double)n - parameters;
    double next = rss / (freedom > 1.0 ? freedom : 1.0);
    if (next < SIGMA2_FLOOR) {
      next = SIGMA2_FLOOR;
    }
    bool settled = fabs(next - sigma2) <= NOISE_TOLERANCE * sigma2;
    sigma2 = next;
    if (settled) {
      break;
    }
  }
  m->sigma2 = sigma2;
  rv = FORECAST_OK;
out:
  module_release(allocator, design);
  module_release(allocator, rhs);
  module_release(allocator, stack);
  module_release(allocator, stack_rhs);
  module_release(allocator, inverse);
  module_release(allocator, penalty);
  return rv;
}

/* Samples the forecast paths into samples[period * count + sample] (scaled
 * values): future changepoints arrive as a Poisson process at the
 * historical rate (changepoint_count per history span) from the end of
 * the history, each changing the slope by a Laplace draw at the mean
 * absolute fitted delta, plus Gaussian noise of sd sigma. */
static void sample_paths(const model *m, const forecast_params *params,
                         const double *future_t, const double *yhat_scaled,
                         double *samples) {
  size_t count = params->uncertainty_samples, periods = params->periods;
  double rate = (double)m->changepoint_count;
  double delta_scale = 1e-8;
  for (size_t j = 0; j < m->changepoint_count; j++) {
    delta_scale += fabs(m->beta[2 + j]) / (double)m->changepoint_count;
  }
  double sigma = sqrt(m->sigma2);
  prng rng;
  prng_seed(&rng, params->seed);
  for (size_t s = 0; s < count; s++) {
    double next = rate > 0.0 ? 1.0 + prng_exponential(&rng, rate) : INFINITY;
    double slope_sum = 0.0, offset_sum = 0.0;
    for (size_t i = 0; i < periods; i++) {
      double t = future_t[i];
      while (next < t) {
        double delta = prng_laplace(&rng, delta_scale);
        slope_sum += delta;
        offset_sum += delta * next;
        next += prng_exponential(&rng, rate);
      }
      samples[i * count + s] = yhat_scaled[i] + slope_sum * t - offset_sum +
                               sigma * prng_normal(&rng);
    }
  }
}

int forecast_run(const forecast_params *params, const double *timestamps,
                 const double *values, size_t n, forecast_result *out,
                 char *err, size_t err_size) {
  if (out != NULL) {
    *out = (forecast_result){0};
  }
  if (params == NULL || out == NULL ||
      (n > 0 && (timestamps == NULL || values == NULL))) {
    set_error(err, err_size,
              "params, out, timestamps and values must not be NULL");
    return FORECAST_EPARAMS;
  }
  int rv = check_params(params, err, err_size);
  if (rv != FORECAST_OK) {
    return rv;
  }
  rv = check_data(timestamps, values, n, err, err_size);
  if (rv != FORECAST_OK) {
    return rv;
  }
  const module_allocator *allocator = params->allocator;
  model m = {0};
  double *future_t = NULL, *yhat_scaled = NULL, *samples = NULL;
  double *row = NULL;
  forecast_result result = {.count = params->periods, .allocator = allocator};

  size_t used = n;
  if (params->max_n_points != 0 && used > params->max_n_points) {
    used = params->max_n_points;
  }
  m.n = used;
  m.ts = timestamps + (n - used);
  m.values = values + (n - used);
  m.first_ts = m.ts[0];
  m.span = m.ts[used - 1] - m.first_ts;
  double low = m.values[0], high = m.values[0];
  for (size_t i = 1; i < used; i++) {
    low = m.values[i] < low ? m.values[i] : low;
    high = m.values[i] > high ? m.values[i] : high;
  }
  m.value_offset = low;
  m.value_scale = high - low;
  if (!(m.value_scale > 0.0)) {
    m.value_scale = fabs(high) > 0.0 ? fabs(high) : 1.0; /* a constant */
  }
  double last_future = m.ts[used - 1] + (double)params->periods * params->step;
  if (!isfinite(m.span) || !isfinite(m.value_scale) || !isfinite(last_future)) {
    set_error(err, err_size,
              "timestamps or values span more than a double can hold");
    return FORECAST_EDATA;
  }
  if (!(m.ts[used - 1] + params->step > m.ts[used - 1])) {
    set_error(err, err_size,
              "step %g s is below the resolution of timestamps near %.17g",
              params->step, m.ts[used - 1]);
    return FORECAST_EPARAMS;
  }

  rv = FORECAST_ENOMEM;
  if (choose_seasonalities(&m, params, allocator) != FORECAST_OK ||
      place_changepoints(&m, params, allocator) != FORECAST_OK) {
    set_error(err, err_size, "out of memory");
    goto fail;
  }
  m.columns = 2 + m.changepoint_count;
  for (size_t s = 0; s < SEASONALITY_COUNT; s++) {
    m.columns += 2 * m.seasonalities[s].order;
    if (m.seasonalities[s].order > 0) {
      result.seasonalities |= m.seasonalities[s].bit;
    }
  }
  rv = fit(&m, params, allocator, err, err_size);
  if (rv != FORECAST_OK) {
    goto fail;
  }

  rv = FORECAST_ENOMEM;
  size_t periods = params->periods;
  bool intervals = params->uncertainty_samples > 0;
  future_t = module_alloc(allocator, periods, sizeof(double));
  yhat_scaled = module_alloc(allocator, periods, sizeof(double));
  row = module_alloc(allocator, m.columns, sizeof(double));
  result.ts = module_alloc(allocator, periods, sizeof(double));
  result.yhat = module_alloc(allocator, periods, sizeof(double));
  if (future_t == NULL || yhat_scaled == NULL || row == NULL ||
      result.ts == NULL || result.yhat == NULL) {
    set_error(err, err_size, "out of memory for %zu periods", periods);
    goto fail;
  }
  if (intervals) {
    result.yhat_lower = module_alloc(allocator, periods, sizeof(double));
    result.yhat_upper = module_alloc(allocator, periods, sizeof(double));
    samples = module_alloc(allocator, periods * params->uncertainty_samples,
                           sizeof(double));
    if (result.yhat_lower == NULL || result.yhat_upper == NULL ||
        samples == NULL) {
      set_error(err, err_size, "out of memory for %zu x %zu samples", periods,
                params->uncertainty_samples);
      goto fail;
    }
  }

  double last_ts = m.ts[used - 1];
  for (size_t i = 0; i < periods; i++) {
    double ts = last_ts + (double)(i + 1) * params->step;
    double t = (ts - m.first_ts) / m.span;
    design_row(&m, t, ts, row, 1);
    double y = 0.0;
    for (size_t c = 0; c < m.columns; c++) {
      y += row[c] * m.beta[c];
    }
    future_t[i] = t;
    yhat_scaled[i] = y;
    result.ts[i] = ts;
    result.yhat[i] = m.value_offset + m.value_scale * y;
  }
  if (intervals) {
    size_t count = params->uncertainty_samples;
    double tail = 0.5 * (1.0 - params->interval_width);
    sample_paths(&m, params, future_t, yhat_scaled, samples);
    for (size_t i = 0; i < periods; i++) {
      double *column = samples + i * count;
      qsort(column, count, sizeof(double), compare_doubles);
      double lower =
          m.value_offset + m.value_scale * quantile(column, count, tail);
      double upper =
          m.value_offset + m.value_scale * quantile(column, count, 1.0 - tail);
      result.yhat_lower[i] = lower < result.yhat[i] ? lower : result.yhat[i];
      result.yhat_upper[i] = upper > result.yhat[i] ? upper : result.yhat[i];
    }
  }
  result.points_used = used;
  result.changepoints = m.changepoint_count;
  result.sigma = sqrt(m.sigma2) * m.value_scale;
  *out = result;
  rv = FORECAST_OK;
  goto out;

fail:
  forecast_result_free(&result);
out:
  module_release(allocator, m.changepoints);
  module_release(allocator, m.beta);
  module_release(allocator, future_t);
  module_release(allocator, yhat_scaled);
  module_release(allocator, row);
  module_release(allocator, samples);
  return rv;
}

void forecast_result_free(forecast_result *result) {
  if (result == NULL) {
    return;
  }
  const module_allocator *allocator = result->allocator;
  module_release(allocator, result->ts);
  module_release(allocator, result->yhat);
  module_release(allocator, result->yhat_lower);
  module_release(allocator, result->yhat_upper);
  *result = (forecast_result){0};
}
