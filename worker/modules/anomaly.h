/* anomaly.h: the numerical core of the worker's `anomaly` module: a
 * robust z-score of each point against the trailing window of points
 * before it (median and MAD, the Iglewicz-Hoaglin modified z-score), the
 * points scoring beyond a threshold reported as anomalies. Pure
 * computation: no I/O, no global state. */
#ifndef JOBHUB_WORKER_MODULES_ANOMALY_H
#define JOBHUB_WORKER_MODULES_ANOMALY_H

#include <stddef.h>

#include "worker/modules/module_allocator.h"

/* Return codes of anomaly_detect. */
enum {
  ANOMALY_OK = 0,
  ANOMALY_EPARAMS = -1, /* a parameter is out of range */
  ANOMALY_EDATA = -2,   /* unordered timestamps, NaN ... */
  ANOMALY_ENOMEM = -3,  /* an allocation failed */
};

#define ANOMALY_MIN_WINDOW 3
#define ANOMALY_MAX_WINDOW 100000

typedef struct anomaly_params {
  /* Each point i >= window is scored against points i - window .. i - 1
   * (the point itself excluded, so a spike cannot mask itself); the first
   * window points are history only. */
  size_t window;
  double threshold;                  /* |score| above it is an anomaly, > 0 */
  const module_allocator *allocator; /* NULL: malloc/free */
} anomaly_params;

typedef struct anomaly_point {
  size_t index;    /* into the input */
  double ts;       /* as given */
  double value;    /* as given */
  double expected; /* the window's median */
  /* (value - median) / (1.4826 MAD), MAD the window's median absolute
   * deviation; when the MAD is 0, 1.2533 x the mean absolute deviation
   * stands in (Iglewicz and Hoaglin); when that is 0 too (a constant
   * window), +-INFINITY. */
  double score;
} anomaly_point;

typedef struct anomaly_result {
  size_t count;          /* anomalies */
  anomaly_point *points; /* count of them, in input order; NULL if none */
  size_t scored;         /* points scored: n - window, or 0 */
  const module_allocator *allocator; /* the result's; do not touch */
} anomaly_result;

/* anomaly_params_init sets the defaults: window 60, threshold 3.5 (the
 * modified z-score cut-off Iglewicz and Hoaglin recommend), allocator
 * NULL. */
void anomaly_params_init(anomaly_params *params);

/* anomaly_detect scores the n points (timestamps strictly ascending and
 * finite, values finite; fewer than window + 1 points score none) and
 * fills *out with the anomalies, which the caller frees with
 * anomaly_result_free. Returns 0; or ANOMALY_EPARAMS (window outside
 * ANOMALY_MIN_WINDOW..ANOMALY_MAX_WINDOW, threshold not positive and
 * finite, NULL pointers), ANOMALY_EDATA or ANOMALY_ENOMEM with a message
 * in err, *out then being empty (freeing it is harmless). */
int anomaly_detect(const anomaly_params *params, const double *timestamps,
                   const double *values, size_t n, anomaly_result *out,
                   char *err, size_t err_size);

/* anomaly_result_free frees the points of result and empties it; safe on
 * an empty result and twice. */
void anomaly_result_free(anomaly_result *result);

#endif
