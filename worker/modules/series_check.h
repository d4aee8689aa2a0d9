/* series_check.h: the checks the numerical modules (forecast, anomaly)
 * make of a series before they use it. */
#ifndef JOBHUB_WORKER_MODULES_SERIES_CHECK_H
#define JOBHUB_WORKER_MODULES_SERIES_CHECK_H

#include <stddef.h>

/* series_check tells whether the n timestamps are finite and strictly
 * ascending and the values finite. Returns 0, or -1 with a message in err
 * naming the first point that is not. */
int series_check(const double *timestamps, const double *values, size_t n,
                 char *err, size_t err_size);

#endif
