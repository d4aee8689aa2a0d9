/* forecast.h: the numerical core of the worker's `forecast` module, in the
 * manner of Prophet: a piecewise-linear trend with changepoints in the
 * first changepoint_range of the history plus Fourier seasonalities
 * (yearly, weekly, daily), fitted by ridge-regularized least squares, and
 * yhat_lower / yhat_upper from simulated future trend changes plus
 * observation noise. Pure computation: no I/O, no global state; every call
 * is independent and reproducible from params->seed. */
#ifndef JOBHUB_WORKER_MODULES_FORECAST_H
#define JOBHUB_WORKER_MODULES_FORECAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker/modules/module_allocator.h"

/* Return codes of forecast_run and forecast_parse_freq. */
enum {
  FORECAST_OK = 0,
  FORECAST_EPARAMS = -1, /* a parameter is out of range */
  FORECAST_EDATA = -2,   /* too few points, unordered timestamps, NaN ... */
  FORECAST_ENOMEM = -3,  /* an allocation failed */
};

/* A seasonality order of FORECAST_AUTO enables it with its default order
 * when the data can show it (see forecast_params); 0 disables it; a
 * positive order forces it on with that many Fourier pairs. */
enum { FORECAST_AUTO = -1 };

/* Default Fourier orders (Prophet's). */
enum {
  FORECAST_YEARLY_ORDER = 10,
  FORECAST_WEEKLY_ORDER = 3,
  FORECAST_DAILY_ORDER = 4,
};

/* Bits of forecast_result.seasonalities. */
enum {
  FORECAST_YEARLY = 1u << 0,
  FORECAST_WEEKLY = 1u << 1,
  FORECAST_DAILY = 1u << 2,
};

/* Fewer points are FORECAST_EDATA: a line plus one residual for the
 * noise. */
#define FORECAST_MIN_POINTS 3
/* Limits on the parameters (each breach is FORECAST_EPARAMS). */
#define FORECAST_MAX_PERIODS 1000000
#define FORECAST_MAX_CHANGEPOINTS 200
#define FORECAST_MAX_ORDER 50
#define FORECAST_MAX_SAMPLES 100000
/* periods * uncertainty_samples: the samples are kept to take quantiles */
#define FORECAST_MAX_SAMPLE_VALUES 10000000

typedef struct forecast_params {
  size_t periods; /* future points to forecast, >= 1 */
  double step;    /* seconds between them, > 0 (forecast_parse_freq) */
  /* Changepoints sit at evenly spaced points (by index) of the first
   * changepoint_range (0..1) of the history; the trend after the last one
   * is a straight line. */
  double changepoint_range;
  size_t n_changepoints; /* at most; fewer when the history is short */
  /* Ridge prior standard deviations, in scaled units (time and values
   * both scaled to 0..1 over the history): of each changepoint's slope
   * change, and of each Fourier coefficient. The penalty is
   * sigma^2 / scale^2, sigma being the residual noise, re-estimated until
   * it settles, so the prior means the same at any noise level. */
  double changepoint_prior_scale;
  double seasonality_prior_scale;
  /* smooth: a stiffer trend. The changepoint prior scale is divided by
   * FORECAST_SMOOTH_FACTOR (the penalty multiplied by its square), so the
   * trend bends only where the data insist, and the simulated future
   * changes, drawn at the fitted deltas' scale, shrink with it. */
  bool smooth;
  /* FORECAST_AUTO: yearly if the history spans >= 730 days, weekly if it
   * spans >= 14 days, daily if it spans >= 2 days, each only when the
   * median spacing of the points is shorter than its period. */
  int yearly_order, weekly_order, daily_order;
  size_t uncertainty_samples;        /* 0: no intervals */
  double interval_width;             /* 0 < w < 1, central probability */
  uint64_t seed;                     /* of the sampling PRNG */
  size_t max_n_points;               /* use only the last N points; 0: all */
  const module_allocator *allocator; /* NULL: malloc/free */
} forecast_params;

#define FORECAST_SMOOTH_FACTOR 10.0

/* The forecast: count == periods entries in each array. */
typedef struct forecast_result {
  size_t count;
  double *ts;   /* unix seconds: last timestamp + (i + 1) * step */
  double *yhat; /* point forecast */
  /* The interval_width central interval of the sampled forecasts, clamped
   * so that yhat_lower <= yhat <= yhat_upper. Both NULL when
   * uncertainty_samples is 0. */
  double *yhat_lower;
  double *yhat_upper;
  size_t points_used;     /* after max_n_points */
  size_t changepoints;    /* placed in the history */
  unsigned seasonalities; /* FORECAST_YEARLY | FORECAST_WEEKLY | ... */
  double sigma;           /* residual standard deviation, value units */
  const module_allocator *allocator; /* the result's; do not touch */
} forecast_result;

/* forecast_params_init sets the defaults: periods 0 and step 0 (the caller
 * must set both), changepoint_range 0.8, n_changepoints 25, prior scales
 * 0.05 and 10, smooth false, every seasonality FORECAST_AUTO,
 * uncertainty_samples 1000, interval_width 0.8, seed 0, max_n_points
 * 20000, allocator NULL. */
void forecast_params_init(forecast_params *params);

/* forecast_parse_freq parses a pandas offset alias: an optional positive
 * decimal multiple and a unit, "30T", "30min", "H", "1.5h", "D", "W",
 * "W-SUN" (the anchor is accepted and ignored), "ms", "S" ... into
 * *seconds. The calendar units M/ME/MS, Q/QE/QS and A/Y/YE/AS/YS (anchors
 * "-JAN".."-DEC" allowed) have no fixed length and are taken at their mean
 * Gregorian length (a month is 2629746 s). Returns 0, or FORECAST_EPARAMS
 * with a message in err (unknown unit, such as business days "B", zero or
 * malformed multiple); *seconds is then untouched. */
int forecast_parse_freq(const char *freq, double *seconds, char *err,
                        size_t err_size);

/* forecast_run fits the model to the n points (timestamps in unix
 * seconds, strictly ascending; values finite) and forecasts params->periods
 * points after the last. Returns 0 and fills *out, which the caller frees
 * with forecast_result_free; or returns FORECAST_EPARAMS (a parameter out
 * of range, checked before the data; a step too small to advance the last
 * timestamp), FORECAST_EDATA (fewer than FORECAST_MIN_POINTS points, a
 * timestamp not after its predecessor or not finite, a value NaN or
 * infinite, anywhere in the input, not only in the max_n_points used) or
 * FORECAST_ENOMEM, with a message in err, *out then being empty (freeing
 * it is harmless). The inputs are only read. */
int forecast_run(const forecast_params *params, const double *timestamps,
                 const double *values, size_t n, forecast_result *out,
                 char *err, size_t err_size);

/* forecast_result_free frees the arrays of result and empties it; safe on
 * an empty result and twice. */
void forecast_result_free(forecast_result *result);

#endif
