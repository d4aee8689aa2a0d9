/* forecast_eval.c: a command-line driver of worker/modules/forecast for
 * the accuracy test. Reads "ts,value" lines (unix seconds, a header line
 * allowed) on stdin, writes "ts,yhat,yhat_lower,yhat_upper" lines on
 * stdout (the interval fields empty when --samples 0) and one line of fit
 * diagnostics on stderr.
 *
 * Usage: forecast_eval --periods N --freq ALIAS [--changepoint-range X]
 *   [--changepoint-prior-scale X] [--n-changepoints N] [--samples N]
 * [--interval-width X] [--seed N]
 *   [--smooth] [--max-points N] [--yearly-order N] [--weekly-order N]
 *   [--daily-order N]
 * Exit codes: 0 done, 1 the forecast failed, 2 bad usage, 3 bad input or
 * no memory reading it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/modules/forecast.h"

static int usage(const char *message) {
  fprintf(stderr,
          "forecast_eval: %s\n"
          "usage: forecast_eval --periods N --freq ALIAS "
          "[--changepoint-range X] [--changepoint-prior-scale X] "
          "[--n-changepoints N] [--samples N] "
          "[--interval-width X] [--seed N] [--smooth] [--max-points N] "
          "[--yearly-order N] [--weekly-order N] [--daily-order N] "
          "< ts,value CSV\n",
          message);
  return 2;
}

static int parse_size(const char *text, size_t *value) {
  char *end;
  errno = 0;
  unsigned long long parsed = strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-') {
    return -1;
  }
  *value = (size_t)parsed;
  return 0;
}

static int parse_double(const char *text, double *value) {
  char *end;
  errno = 0;
  *value = strtod(text, &end);
  return errno != 0 || end == text || *end != '\0' ? -1 : 0;
}

static int parse_order(const char *text, int *value) {
  char *end;
  errno = 0;
  long parsed = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || parsed < -1 ||
      parsed > 1000) {
    return -1;
  }
  *value = (int)parsed;
  return 0;
}

/* Reads the CSV into growing arrays; returns 0 or -1 (message printed). */
static int read_points(double **timestamps, double **values, size_t *count) {
  size_t capacity = 0;
  char line[256];
  size_t line_number = 0;
  *timestamps = NULL;
  *values = NULL;
  *count = 0;
  while (fgets(line, sizeof(line), stdin) != NULL) {
    line_number++;
    char *end;
    double ts = strtod(line, &end);
    if (end == line || *end != ',') {
      if (line_number == 1) {
        continue; /* a header */
      }
      fprintf(stderr, "forecast_eval: line %zu: expected ts,value\n",
              line_number);
      return -1;
    }
    char *value_text = end + 1;
    double value = strtod(value_text, &end);
    if (end == value_text) {
      fprintf(stderr, "forecast_eval: line %zu: bad value\n", line_number);
      return -1;
    }
    if (*count == capacity) {
      capacity = capacity ? 2 * capacity : 1024;
      double *grown_ts = realloc(*timestamps, capacity * sizeof(double));
      if (grown_ts == NULL) {
        fprintf(stderr, "forecast_eval: out of memory\n");
        return -1;
      }
      *timestamps = grown_ts;
      double *grown_values = realloc(*values, capacity * sizeof(double));
      if (grown_values == NULL) {
        fprintf(stderr, "forecast_eval: out of memory\n");
        return -1;
      }
      *values = grown_values;
    }
    (*timestamps)[*count] = ts;
    (*values)[*count] = value;
    (*count)++;
  }
  return 0;
}

int main(int argc, char **argv) {
  forecast_params params;
  forecast_params_init(&params);
  const char *freq = NULL;
  bool have_periods = false;
  for (int i = 1; i < argc; i++) {
    const char *flag = argv[i];
    if (strcmp(flag, "--smooth") == 0) {
      params.smooth = true;
      continue;
    }
    if (i + 1 >= argc) {
      return usage("missing value after a flag");
    }
    const char *value = argv[++i];
    int bad = 0;
    if (strcmp(flag, "--periods") == 0) {
      bad = parse_size(value, &params.periods);
      have_periods = true;
    } else if (strcmp(flag, "--freq") == 0) {
      freq = value;
    } else if (strcmp(flag, "--changepoint-range") == 0) {
      bad = parse_double(value, &params.changepoint_range);
    } else if (strcmp(flag, "--changepoint-prior-scale") == 0) {
      bad = parse_double(value, &params.changepoint_prior_scale);
    } else if (strcmp(flag, "--n-changepoints") == 0) {
      bad = parse_size(value, &params.n_changepoints);
    } else if (strcmp(flag, "--samples") == 0) {
      bad = parse_size(value, &params.uncertainty_samples);
    } else if (strcmp(flag, "--interval-width") == 0) {
      bad = parse_double(value, &params.interval_width);
    } else if (strcmp(flag, "--seed") == 0) {
      size_t seed;
      bad = parse_size(value, &seed);
      params.seed = (uint64_t)seed;
    } else if (strcmp(flag, "--max-points") == 0) {
      bad = parse_size(value, &params.max_n_points);
    } else if (strcmp(flag, "--yearly-order") == 0) {
      bad = parse_order(value, &params.yearly_order);
    } else if (strcmp(flag, "--weekly-order") == 0) {
      bad = parse_order(value, &params.weekly_order);
    } else if (strcmp(flag, "--daily-order") == 0) {
      bad = parse_order(value, &params.daily_order);
    } else {
      return usage("unknown flag");
    }
    if (bad) {
      return usage("bad flag value");
    }
  }
  if (!have_periods || freq == NULL) {
    return usage("--periods and --freq are required");
  }
  char err[256];
  if (forecast_parse_freq(freq, &params.step, err, sizeof(err)) != 0) {
    fprintf(stderr, "forecast_eval: %s\n", err);
    return 2;
  }

  double *timestamps, *values;
  size_t count;
  if (read_points(&timestamps, &values, &count) != 0) {
    free(timestamps);
    free(values);
    return 3;
  }
  forecast_result result;
  int rv = forecast_run(&params, timestamps, values, count, &result, err,
                        sizeof(err));
  free(timestamps);
  free(values);
  if (rv != FORECAST_OK) {
    fprintf(stderr, "forecast_eval: %s\n", err);
    return 1;
  }
  for (size_t i = 0; i < result.count; i++) {
    if (result.yhat_lower != NULL) {
      printf("%.17g,%.17g,%.17g,%.17g\n", result.ts[i], result.yhat[i],
             result.yhat_lower[i], result.yhat_upper[i]);
    } else {
      printf("%.17g,%.17g,,\n", result.ts[i], result.yhat[i]);
    }
  }
  fprintf(
      stderr,
      "forecast_eval: points_used=%zu changepoints=%zu seasonalities=%s%s%s "
      "sigma=%g\n",
      result.points_used, result.changepoints,
      result.seasonalities & FORECAST_YEARLY ? "yearly," : "",
      result.seasonalities & FORECAST_WEEKLY ? "weekly," : "",
      result.seasonalities & FORECAST_DAILY ? "daily," : "", result.sigma);
  forecast_result_free(&result);
  return 0;
}
