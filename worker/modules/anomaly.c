/* anomaly.c: rolling robust z-scores. The trailing window is kept sorted
 * (binary search and memmove per step), so the median is read off and the
 * MAD is found by merging the two runs of deviations either side of the
 * middle: O(window) per point, no re-sorting. */
#include "worker/modules/anomaly.h"
#include "worker/modules/series_check.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define MAD_TO_SIGMA 1.482602218505602     /* 1 / Phi^-1(3/4) */
#define MEAN_AD_TO_SIGMA 1.253314137315500 /* sqrt(pi / 2) */

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

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void anomaly_params_init(anomaly_params *params) {
  *params = (anomaly_params){.window = 60, .threshold = 3.5, .allocator = NULL};
}

/* The first index of sorted[0..count) whose value is >= value. */
static size_t lower_bound(const double *sorted, size_t count, double value) {
  size_t low = 0, high = count;
  while (low < high) {
    size_t middle = low + (high - low) / 2;
    if (sorted[middle] < value) {
      low = middle + 1;
    } else {
      high = middle;
    }
  }
  return low;
}

static double sorted_median(const double *sorted, size_t count) {
  return count % 2 ? sorted[count / 2]
                   : 0.5 * (sorted[count / 2 - 1] + sorted[count / 2]);
}

/* The median of |sorted[k] - median|: the deviations of sorted[q-1],
 * sorted[q-2], ... (below the middle q = count / 2) and of sorted[q],
 * sorted[q+1], ... each increase, so merging them yields the deviations in
 * order. */
static double sorted_mad(const double *sorted, size_t count, double median) {
  size_t q = count / 2, left = 0, right = 0;
  size_t low_rank = (count - 1) / 2, high_rank = count / 2;
  double low = 0.0, deviation = 0.0;
  for (size_t rank = 0; rank <= high_rank; rank++) {
    bool has_left = left < q, has_right = q + right < count;
    double left_deviation = has_left ? median - sorted[q - 1 - left] : 0.0;
    double right_deviation = has_right ? sorted[q + right] - median : 0.0;
    if (has_left && (!has_right || left_deviation <= right_deviation)) {
      deviation = left_deviation;
      left++;
    } else {
      deviation = right_deviation;
      right++;
    }
    if (rank == low_rank) {
      low = deviation;
    }
  }
  return 0.5 * (low + deviation);
}

static double mean_absolute_deviation(const double *sorted, size_t count,
                                      double median) {
  double sum = 0.0;
  for (size_t k = 0; k < count; k++) {
    sum += fabs(sorted[k] - median);
  }
  return sum / (double)count;
}

static int check(const anomaly_params *params, const double *timestamps,
                 const double *values, size_t n, char *err, size_t err_size) {
  if (params->window < ANOMALY_MIN_WINDOW ||
      params->window > ANOMALY_MAX_WINDOW) {
    set_error(err, err_size, "window must be %d..%d, got %zu",
              ANOMALY_MIN_WINDOW, ANOMALY_MAX_WINDOW, params->window);
    return ANOMALY_EPARAMS;
  }
  if (!(params->threshold > 0.0) || !isfinite(params->threshold)) {
    set_error(err, err_size, "threshold must be positive, got %g",
              params->threshold);
    return ANOMALY_EPARAMS;
  }
  const module_allocator *allocator = params->allocator;
  if (allocator != NULL &&
      (allocator->alloc == NULL || allocator->release == NULL)) {
    set_error(err, err_size, "the allocator needs alloc and release");
    return ANOMALY_EPARAMS;
  }
  if (series_check(timestamps, values, n, err, err_size) != 0) {
    return ANOMALY_EDATA;
  }
  return ANOMALY_OK;
}

/* Appends point to result, doubling its array when full. */
static int append(anomaly_result *result, size_t *capacity,
                  const anomaly_point *point) {
  if (result->count == *capacity) {
    size_t grown = *capacity ? 2 * *capacity : 16;
    anomaly_point *points =
        module_alloc(result->allocator, grown, sizeof(anomaly_point));
    if (points == NULL) {
      return -1;
    }
    if (result->count > 0) {
      memcpy(points, result->points, result->count * sizeof(anomaly_point));
    }
    module_release(result->allocator, result->points);
    result->points = points;
    *capacity = grown;
  }
  result->points[result->count++] = *point;
  return 0;
}

int anomaly_detect(const anomaly_params *params, const double *timestamps,
                   const double *values, size_t n, anomaly_result *out,
                   char *err, size_t err_size) {
  if (out != NULL) {
    *out = (anomaly_result){0};
  }
  if (params == NULL || out == NULL ||
      (n > 0 && (timestamps == NULL || values == NULL))) {
    set_error(err, err_size,
              "params, out, timestamps and values must not be NULL");
    return ANOMALY_EPARAMS;
  }
  int rv = check(params, timestamps, values, n, err, err_size);
  if (rv != ANOMALY_OK) {
    return rv;
  }
  size_t window = params->window;
  anomaly_result result = {.allocator = params->allocator};
  if (n <= window) {
    *out = result;
    return ANOMALY_OK;
  }
  double *sorted = module_alloc(params->allocator, window, sizeof(double));
  if (sorted == NULL) {
    set_error(err, err_size, "out of memory for a window of %zu", window);
    return ANOMALY_ENOMEM;
  }
  memcpy(sorted, values, window * sizeof(double));
  qsort(sorted, window, sizeof(double), compare_doubles);
  size_t capacity = 0;
  for (size_t i = window; i < n; i++) {
    double median = sorted_median(sorted, window);
    double scale = MAD_TO_SIGMA * sorted_mad(sorted, window, median);
    if (!(scale > 0.0)) {
      scale =
          MEAN_AD_TO_SIGMA * mean_absolute_deviation(sorted, window, median);
    }
    double deviation = values[i] - median;
    double score = scale > 0.0        ? deviation / scale
                   : deviation == 0.0 ? 0.0
                                      : copysign(INFINITY, deviation);
    if (fabs(score) > params->threshold) {
      anomaly_point point = {.index = i,
                             .ts = timestamps[i],
                             .value = values[i],
                             .expected = median,
                             .score = score};
      if (append(&result, &capacity, &point) != 0) {
        set_error(err, err_size, "out of memory for %zu anomalies",
                  result.count + 1);
        module_release(params->allocator, sorted);
        anomaly_result_free(&result);
        return ANOMALY_ENOMEM;
      }
    }
    /* Slide: values[i - window] leaves, values[i] enters. */
    size_t leaving = lower_bound(sorted, window, values[i - window]);
    memmove(sorted + leaving, sorted + leaving + 1,
            (window - leaving - 1) * sizeof(double));
    size_t entering = lower_bound(sorted, window - 1, values[i]);
    memmove(sorted + entering + 1, sorted + entering,
            (window - 1 - entering) * sizeof(double));
    sorted[entering] = values[i];
  }
  module_release(params->allocator, sorted);
  result.scored = n - window;
  *out = result;
  return ANOMALY_OK;
}

void anomaly_result_free(anomaly_result *result) {
  if (result == NULL) {
    return;
  }
  module_release(result->allocator, result->points);
  *result = (anomaly_result){0};
}
