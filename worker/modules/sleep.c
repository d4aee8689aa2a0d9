/* sleep.c: the sleep module: a job that takes a while, for tests of
 * progress, cancellation, drain and failover. */
#include <stdio.h>
#include <stdlib.h>

#include <ev.h>

#include "worker/modules/modules.h"

typedef struct sleep_run {
  ev_timer timer;
  worker_job *job;
  double seconds;
} sleep_run;

static void on_slept(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  sleep_run *run = timer->data;
  worker_job *job = run->job;
  Google__Protobuf__Value seconds = GOOGLE__PROTOBUF__VALUE__INIT;
  seconds.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
  seconds.number_value = run->seconds;
  Google__Protobuf__Struct__FieldsEntry entry =
      GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
  char key[] = "slept";
  entry.key = key;
  entry.value = &seconds;
  Google__Protobuf__Struct__FieldsEntry *fields[] = {&entry};
  Google__Protobuf__Struct slept = GOOGLE__PROTOBUF__STRUCT__INIT;
  slept.n_fields = 1;
  slept.fields = fields;
  Google__Protobuf__Value value = GOOGLE__PROTOBUF__VALUE__INIT;
  value.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
  value.struct_value = &slept;
  Jobhub__V1__JobResult result = JOBHUB__V1__JOB_RESULT__INIT;
  result.value = &value;
  free(run);
  worker_job_succeed(job, &result);
}

static int sleep_start(worker_job *job, char *err, size_t err_size) {
  double seconds;
  if (module_param_number(worker_job_job(job), "seconds", 1, 0, 86400,
                          &seconds) != 0) {
    snprintf(err, err_size,
             "module_params.seconds must be a number of seconds in "
             "[0, 86400]");
    return -1;
  }
  sleep_run *run = malloc(sizeof(*run));
  if (run == NULL) {
    snprintf(err, err_size, "out of memory");
    return -1;
  }
  run->job = job;
  run->seconds = seconds;
  ev_timer_init(&run->timer, on_slept, seconds, 0);
  run->timer.data = run;
  ev_timer_start(worker_job_loop(job), &run->timer);
  worker_job_set_data(job, run);
  return 0;
}

static void sleep_cancel(worker_job *job) {
  sleep_run *run = worker_job_data(job);
  ev_timer_stop(worker_job_loop(job), &run->timer);
  free(run);
}

const worker_module sleep_module = {"sleep", NULL, NULL, sleep_start,
                                    sleep_cancel};
