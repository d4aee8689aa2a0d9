/* echo.c: the echo module, for tests and benchmarks. */
#include "worker/modules/modules.h"

static int echo_start(worker_job *job, char *err, size_t err_size) {
  (void)err;
  (void)err_size;
  const Jobhub__V1__Job *j = worker_job_job(job);
  Google__Protobuf__Value value = GOOGLE__PROTOBUF__VALUE__INIT;
  Jobhub__V1__JobResult result = JOBHUB__V1__JOB_RESULT__INIT;
  result.data = j->payload;
  if (j->config != NULL && j->config->module_params != NULL) {
    value.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
    value.struct_value = j->config->module_params;
    result.value = &value;
  }
  worker_job_succeed(job, &result);
  return 0;
}

static void echo_cancel(worker_job *job) { (void)job; }

const worker_module echo_module = {"echo", NULL, NULL, echo_start, echo_cancel};
