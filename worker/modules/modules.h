/* modules.h: the modules jobhub-worker runs jobs with, and the helpers
 * they share to read a job's module_params. */
#ifndef JOBHUB_WORKER_MODULES_H
#define JOBHUB_WORKER_MODULES_H

#include <stdbool.h>

#include "worker/worker.h"

/* echo: answers at once with the job's payload as the result's data and
 * its module_params as the result's value. */
extern const worker_module echo_module;

/* sleep: waits module_params.seconds (default 1; 0..86400), then answers
 * {"slept": seconds}; cancellable. */
extern const worker_module sleep_module;

/* forecast: module_params.points ([[unix_seconds, value], ...]),
 * periods, forecast_freq, smooth, changepoint_range, uncertainty_samples
 * and config.max_n_points (forecast.h) -> {"points": [{"ts", "yhat",
 * "yhat_lower", "yhat_upper"}, ...], "points_used"}. anomaly: points,
 * window, threshold (anomaly.h) -> {"points": [{"ts", "value", "expected",
 * "score"}, ...] of the anomalies, "scored"}. Both compute on threads of
 * their own (compute.h). */
extern const worker_module forecast_module;
extern const worker_module anomaly_module;

/* exec: runs --module-config (/bin/sh -c) per job, the Job as JSON on
 * stdin, its stdout (JSON) the result's value; see exec.c. */
extern const worker_module exec_module;

/* module_find returns the module called name, or NULL. */
const worker_module *module_find(const char *name);

/* module_names is the names, comma-separated, for --help. */
extern const char module_names[];

/* module_param returns module_params.name of job, or NULL when absent. */
const Google__Protobuf__Value *module_param(const Jobhub__V1__Job *job,
                                            const char *name);

/* module_param_number stores module_params.name in *value (or fallback
 * when absent). Returns 0, or -1 when it is there but not a number in
 * [min, max]. */
int module_param_number(const Jobhub__V1__Job *job, const char *name,
                        double fallback, double min, double max, double *value);

#endif
