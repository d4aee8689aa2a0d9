/* series_check.c: a series' timestamps and values, checked. */
#include "worker/modules/series_check.h"

#include <math.h>
#include <stdio.h>

int series_check(const double *timestamps, const double *values, size_t n,
                 char *err, size_t err_size) {
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(timestamps[i])) {
      snprintf(err, err_size, "timestamps[%zu] is not finite", i);
      return -1;
    }
    if (i > 0 && !(timestamps[i] > timestamps[i - 1])) {
      snprintf(err, err_size,
               "timestamps must be strictly ascending: timestamps[%zu] = "
               "%.17g is not after timestamps[%zu] = %.17g",
               i, timestamps[i], i - 1, timestamps[i - 1]);
      return -1;
    }
    if (isnan(values[i])) {
      snprintf(err, err_size, "values[%zu] is NaN", i);
      return -1;
    }
    if (isinf(values[i])) {
      snprintf(err, err_size, "values[%zu] is infinite", i);
      return -1;
    }
  }
  return 0;
}
