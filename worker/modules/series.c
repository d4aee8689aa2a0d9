/* series.c: the forecast and anomaly modules: a job's series (inline
 * points, module_params.points = [[unix_seconds, value], ...]) and
 * parameters read on the loop, the computation on a compute thread, the
 * answer built on the loop. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/modules/anomaly.h"
#include "worker/modules/compute.h"
#include "worker/modules/forecast.h"
#include "worker/modules/modules.h"

typedef enum series_kind { SERIES_FORECAST, SERIES_ANOMALY } series_kind;

/* One job's computation: its inputs, its outputs, and whether the job is
 * still waiting for them. */
typedef struct series_run {
  compute_task task;
  worker_job *job; /* NULL once cancelled */
  series_kind kind;
  double *ts, *values;
  size_t n;
  forecast_params forecast;
  anomaly_params anomaly;
  forecast_result forecast_out;
  anomaly_result anomaly_out;
  int rv;
  char err[256];
} series_run;

static int open_pool(struct ev_loop *loop, const char *config, void **state,
                     char *err, size_t err_size) {
  (void)config;
  *state = compute_pool_new(loop, 0, err, err_size);
  return *state != NULL ? 0 : -1;
}

static void close_pool(void *state) { compute_pool_free(state); }

static void run_free(series_run *run) {
  free(run->ts);
  free(run->values);
  forecast_result_free(&run->forecast_out);
  anomaly_result_free(&run->anomaly_out);
  free(run);
}

/* Reads module_params.points into run (ts, values). Returns 0, or -1 with
 * a message in err. */
static int read_points(const Jobhub__V1__Job *job, series_run *run, char *err,
                       size_t err_size) {
  const Google__Protobuf__Value *points = module_param(job, "points");
  if (points == NULL ||
      points->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE) {
    snprintf(err, err_size,
             "module_params.points is missing: the series inline, as "
             "[[unix_seconds, value], ...]");
    return -1;
  }
  const Google__Protobuf__ListValue *list = points->list_value;
  run->n = list->n_values;
  run->ts = malloc((run->n ? run->n : 1) * sizeof(double));
  run->values = malloc((run->n ? run->n : 1) * sizeof(double));
  if (run->ts == NULL || run->values == NULL) {
    snprintf(err, err_size, "out of memory");
    return -1;
  }
  for (size_t i = 0; i < run->n; i++) {
    const Google__Protobuf__Value *point = list->values[i];
    const Google__Protobuf__ListValue *pair =
        point->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE
            ? point->list_value
            : NULL;
    if (pair == NULL || pair->n_values != 2 ||
        pair->values[0]->kind_case !=
            GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE ||
        pair->values[1]->kind_case !=
            GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE) {
      snprintf(err, err_size,
               "module_params.points[%zu] is not [unix_seconds, value] "
               "(two numbers)",
               i);
      return -1;
    }
    run->ts[i] = pair->values[0]->number_value;
    run->values[i] = pair->values[1]->number_value;
  }
  return 0;
}

static int read_forecast_params(const Jobhub__V1__Job *job, series_run *run,
                                char *err, size_t err_size) {
  forecast_params *p = &run->forecast;
  forecast_params_init(p);
  double periods, range, samples;
  if (module_param_number(job, "periods", 0, 1, FORECAST_MAX_PERIODS,
                          &periods) != 0 ||
      periods < 1 || periods != floor(periods)) {
    snprintf(err, err_size,
             "module_params.periods must be a whole number of points to "
             "forecast, 1..%d",
             FORECAST_MAX_PERIODS);
    return -1;
  }
  const Google__Protobuf__Value *freq = module_param(job, "forecast_freq");
  if (freq == NULL ||
      freq->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE) {
    snprintf(err, err_size,
             "module_params.forecast_freq is missing: the step of the "
             "forecast, a pandas alias such as \"30T\", \"H\", \"D\"");
    return -1;
  }
  char why[200];
  if (forecast_parse_freq(freq->string_value, &p->step, why, sizeof(why)) !=
      0) {
    snprintf(err, err_size, "module_params.forecast_freq: %s", why);
    return -1;
  }
  if (module_param_number(job, "changepoint_range", p->changepoint_range, 0, 1,
                          &range) != 0) {
    snprintf(err, err_size,
             "module_params.changepoint_range must be in "
             "[0, 1]");
    return -1;
  }
  if (module_param_number(job, "uncertainty_samples",
                          (double)p->uncertainty_samples, 0,
                          FORECAST_MAX_SAMPLES, &samples) != 0) {
    snprintf(err, err_size, "module_params.uncertainty_samples must be 0..%d",
             FORECAST_MAX_SAMPLES);
    return -1;
  }
  const Google__Protobuf__Value *smooth = module_param(job, "smooth");
  if (smooth != NULL &&
      smooth->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE &&
      smooth->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE) {
    snprintf(err, err_size, "module_params.smooth must be true or false");
    return -1;
  }
  p->periods = (size_t)periods;
  p->changepoint_range = range;
  p->uncertainty_samples = (size_t)samples;
  p->smooth = smooth != NULL &&
              smooth->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE &&
              smooth->bool_value;
  if (job->config != NULL && job->config->max_n_points > 0) {
    p->max_n_points = job->config->max_n_points;
  }
  /* Reproducible per job: the same job forecasts the same intervals. */
  p->seed = strtoull(job->id, NULL, 16);
  return 0;
}

static int read_anomaly_params(const Jobhub__V1__Job *job, series_run *run,
                               char *err, size_t err_size) {
  anomaly_params *p = &run->anomaly;
  anomaly_params_init(p);
  double window, threshold;
  if (module_param_number(job, "window", (double)p->window, ANOMALY_MIN_WINDOW,
                          ANOMALY_MAX_WINDOW, &window) != 0) {
    snprintf(err, err_size, "module_params.window must be %d..%d points",
             ANOMALY_MIN_WINDOW, ANOMALY_MAX_WINDOW);
    return -1;
  }
  if (module_param_number(job, "threshold", p->threshold, 1e-9, 1e9,
                          &threshold) != 0) {
    snprintf(err, err_size,
             "module_params.threshold must be a positive "
             "number");
    return -1;
  }
  p->window = (size_t)window;
  p->threshold = threshold;
  return 0;
}

static void compute(compute_task *task) {
  series_run *run = (series_run *)task;
  run->rv = run->kind == SERIES_FORECAST
                ? forecast_run(&run->forecast, run->ts, run->values, run->n,
                               &run->forecast_out, run->err, sizeof(run->err))
                : anomaly_detect(&run->anomaly, run->ts, run->values, run->n,
                                 &run->anomaly_out, run->err, sizeof(run->err));
}

/* Answers. A JSON number cannot be infinite: a constant window's score is
 * reported as +-1e308. */
static double finite_or_max(double x) {
  return isfinite(x) ? x : x > 0 ? 1e308 : -1e308;
}

/* Builds {"points": [{names[0]: rows[0][i], ...}, ...], extra...} as a
 * Value in memory owned by the arrays the caller frees. */
typedef struct answer_builder {
  Google__Protobuf__Value *cells;
  Google__Protobuf__Struct__FieldsEntry *entries;
  Google__Protobuf__Struct__FieldsEntry **entry_ptrs;
  Google__Protobuf__Struct *rows;
  Google__Protobuf__Value *row_values;
  Google__Protobuf__Value **row_ptrs;
} answer_builder;

static void builder_free(answer_builder *b) {
  free(b->cells);
  free(b->entries);
  free(b->entry_ptrs);
  free(b->rows);
  free(b->row_values);
  free(b->row_ptrs);
}

/* Fills list with count rows of n_columns named numbers, column c of row i
 * being columns[c][i]. Returns 0 or -1 (no memory). */
static int build_rows(answer_builder *b, size_t count, size_t n_columns,
                      char *const *names, const double *const *columns,
                      Google__Protobuf__ListValue *list) {
  size_t cells = count * n_columns;
  b->cells = calloc(cells ? cells : 1, sizeof(*b->cells));
  b->entries = calloc(cells ? cells : 1, sizeof(*b->entries));
  b->entry_ptrs = calloc(cells ? cells : 1, sizeof(*b->entry_ptrs));
  b->rows = calloc(count ? count : 1, sizeof(*b->rows));
  b->row_values = calloc(count ? count : 1, sizeof(*b->row_values));
  b->row_ptrs = calloc(count ? count : 1, sizeof(*b->row_ptrs));
  if (b->cells == NULL || b->entries == NULL || b->entry_ptrs == NULL ||
      b->rows == NULL || b->row_values == NULL || b->row_ptrs == NULL) {
    return -1;
  }
  for (size_t i = 0; i < count; i++) {
    for (size_t c = 0; c < n_columns; c++) {
      size_t k = i * n_columns + c;
      b->cells[k] = (Google__Protobuf__Value)GOOGLE__PROTOBUF__VALUE__INIT;
      b->cells[k].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
      b->cells[k].number_value = finite_or_max(columns[c][i]);
      b->entries[k] = (Google__Protobuf__Struct__FieldsEntry)
          GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
      b->entries[k].key = names[c];
      b->entries[k].value = &b->cells[k];
      b->entry_ptrs[k] = &b->entries[k];
    }
    b->rows[i] = (Google__Protobuf__Struct)GOOGLE__PROTOBUF__STRUCT__INIT;
    b->rows[i].n_fields = n_columns;
    b->rows[i].fields = &b->entry_ptrs[i * n_columns];
    b->row_values[i] = (Google__Protobuf__Value)GOOGLE__PROTOBUF__VALUE__INIT;
    b->row_values[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
    b->row_values[i].struct_value = &b->rows[i];
    b->row_ptrs[i] = &b->row_values[i];
  }
  list->n_values = count;
  list->values = b->row_ptrs;
  return 0;
}

/* Ends job with {"points": rows, key: number}. */
static void answer(worker_job *job, Google__Protobuf__ListValue *rows,
                   const char *key, double number) {
  char points_key[] = "points";
  char *extra_key = (char *)key;
  Google__Protobuf__Value points = GOOGLE__PROTOBUF__VALUE__INIT;
  points.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE;
  points.list_value = rows;
  Google__Protobuf__Value extra = GOOGLE__PROTOBUF__VALUE__INIT;
  extra.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
  extra.number_value = number;
  Google__Protobuf__Struct__FieldsEntry entries[2] = {
      GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT,
      GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT};
  entries[0].key = points_key;
  entries[0].value = &points;
  entries[1].key = extra_key;
  entries[1].value = &extra;
  Google__Protobuf__Struct__FieldsEntry *fields[2] = {&entries[0], &entries[1]};
  Google__Protobuf__Struct top = GOOGLE__PROTOBUF__STRUCT__INIT;
  top.n_fields = 2;
  top.fields = fields;
  Google__Protobuf__Value value = GOOGLE__PROTOBUF__VALUE__INIT;
  value.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
  value.struct_value = &top;
  Jobhub__V1__JobResult result = JOBHUB__V1__JOB_RESULT__INIT;
  result.value = &value;
  worker_job_succeed(job, &result);
}

static void computed(compute_task *task) {
  series_run *run = (series_run *)task;
  worker_job *job = run->job;
  if (job == NULL) { /* cancelled while it computed */
    run_free(run);
    return;
  }
  if (run->rv != 0) {
    /* Bad data or parameters fail for good; no memory may pass. */
    worker_job_fail(job, run->err, run->rv == FORECAST_ENOMEM);
    run_free(run);
    return;
  }
  answer_builder b = {0};
  Google__Protobuf__ListValue rows = GOOGLE__PROTOBUF__LIST_VALUE__INIT;
  int rv;
  if (run->kind == SERIES_FORECAST) {
    const forecast_result *f = &run->forecast_out;
    static char ts[] = "ts", yhat[] = "yhat", lower[] = "yhat_lower",
                upper[] = "yhat_upper";
    char *names[] = {ts, yhat, lower, upper};
    const double *columns[] = {f->ts, f->yhat,
                               f->yhat_lower ? f->yhat_lower : f->yhat,
                               f->yhat_upper ? f->yhat_upper : f->yhat};
    rv = build_rows(&b, f->count, 4, names, columns, &rows);
    if (rv == 0) {
      answer(job, &rows, "points_used", (double)f->points_used);
    }
  } else {
    const anomaly_result *a = &run->anomaly_out;
    double *columns_data =
        malloc((a->count ? a->count : 1) * 4 * sizeof(double));
    rv = columns_data != NULL ? 0 : -1;
    if (rv == 0) {
      for (size_t i = 0; i < a->count; i++) {
        columns_data[i] = a->points[i].ts;
        columns_data[a->count + i] = a->points[i].value;
        columns_data[2 * a->count + i] = a->points[i].expected;
        columns_data[3 * a->count + i] = a->points[i].score;
      }
      static char ts[] = "ts", value[] = "value", expected[] = "expected",
                  score[] = "score";
      char *names[] = {ts, value, expected, score};
      const double *columns[] = {columns_data, columns_data + a->count,
                                 columns_data + 2 * a->count,
                                 columns_data + 3 * a->count};
      rv = build_rows(&b, a->count, 4, names, columns, &rows);
      if (rv == 0) {
        answer(job, &rows, "scored", (double)a->scored);
      }
    }
    free(columns_data);
  }
  if (rv != 0) {
    worker_job_fail(job, "out of memory building the answer", true);
  }
  builder_free(&b);
  run_free(run);
}

static int start(worker_job *job, series_kind kind, char *err,
                 size_t err_size) {
  series_run *run = calloc(1, sizeof(*run));
  if (run == NULL) {
    snprintf(err, err_size, "out of memory");
    return -1;
  }
  run->kind = kind;
  const Jobhub__V1__Job *j = worker_job_job(job);
  if (read_points(j, run, err, err_size) != 0 ||
      (kind == SERIES_FORECAST
           ? read_forecast_params(j, run, err, err_size)
           : read_anomaly_params(j, run, err, err_size)) != 0) {
    run_free(run);
    return -1;
  }
  run->job = job;
  run->task.run = compute;
  run->task.done = computed;
  worker_job_set_data(job, run);
  compute_pool_submit(worker_job_module_state(job), &run->task);
  return 0;
}

static int forecast_start(worker_job *job, char *err, size_t err_size) {
  return start(job, SERIES_FORECAST, err, err_size);
}

static int anomaly_start(worker_job *job, char *err, size_t err_size) {
  return start(job, SERIES_ANOMALY, err, err_size);
}

/* The computation cannot be stopped midway; its answer is dropped. */
static void series_cancel(worker_job *job) {
  series_run *run = worker_job_data(job);
  run->job = NULL;
}

const worker_module forecast_module = {"forecast", open_pool, close_pool,
                                       forecast_start, series_cancel};
const worker_module anomaly_module = {"anomaly", open_pool, close_pool,
                                      anomaly_start, series_cancel};
