/* modules.c: the module table and module_params helpers. */
#include "worker/modules/modules.h"

#include <math.h>
#include <string.h>

static const worker_module *const modules[] = {&echo_module, &sleep_module,
                                               &exec_module, &forecast_module,
                                               &anomaly_module};

const char module_names[] = "echo, sleep, exec, forecast, anomaly";

const worker_module *module_find(const char *name) {
  for (size_t i = 0; i < sizeof(modules) / sizeof(modules[0]); i++) {
    if (strcmp(modules[i]->name, name) == 0) {
      return modules[i];
    }
  }
  return NULL;
}

const Google__Protobuf__Value *module_param(const Jobhub__V1__Job *job,
                                            const char *name) {
  const Google__Protobuf__Struct *params =
      job->config != NULL ? job->config->module_params : NULL;
  for (size_t i = 0; params != NULL && i < params->n_fields; i++) {
    if (strcmp(params->fields[i]->key, name) == 0) {
      return params->fields[i]->value;
    }
  }
  return NULL;
}

int module_param_number(const Jobhub__V1__Job *job, const char *name,
                        double fallback, double min, double max,
                        double *value) {
  const Google__Protobuf__Value *v = module_param(job, name);
  if (v == NULL || v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE) {
    *value = fallback;
    return 0;
  }
  if (v->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE ||
      !isfinite(v->number_value) || v->number_value < min ||
      v->number_value > max) {
    return -1;
  }
  *value = v->number_value;
  return 0;
}
