/* submit_and_wait: submits one job to a jobhub hub, watches it until it
 * ends, and prints its result. An example of libjobhub-client:
 *
 *   cc submit_and_wait.c $(pkg-config --cflags --libs --static jobhub-client)
 *   ./a.out 127.0.0.1:50051 POOL_ID JOB_TYPE_ID PAYLOAD
 *
 * Exit codes: 0 the job is DONE (its result printed), 1 it FAILED or was
 * CANCELLED, or a call failed (the status printed), 2 usage. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobhub/v1/jobs.rpc.h"
#include "rpc/client.h"

static const char *state_name(Jobhub__V1__JobState state) {
  const ProtobufCEnumValue *value = protobuf_c_enum_descriptor_get_value(
      &jobhub__v1__job_state__descriptor, (int)state);
  return value != NULL ? value->name : "?";
}

static int failed(const char *what, rpc_status *status) {
  fprintf(stderr, "%s: %s: %s\n", what, rpc_status_code_name((int)status->code),
          status->message != NULL ? status->message : "");
  rpc_status_clear(status);
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s HOST:PORT POOL_ID JOB_TYPE_ID PAYLOAD\n",
            argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN); /* as client.h asks of TLS users */
  char err[256];
  rpc_channel_options options = {.target = argv[1]};
  rpc_channel *channel = rpc_channel_new(NULL, &options, err, sizeof(err));
  if (channel == NULL) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  Jobhub__V1__SubmitRequest submit = JOBHUB__V1__SUBMIT_REQUEST__INIT;
  submit.pool_id = (uint32_t)strtoul(argv[2], NULL, 10);
  submit.job_type_id = (uint32_t)strtoul(argv[3], NULL, 10);
  submit.payload.data = (uint8_t *)argv[4];
  submit.payload.len = strlen(argv[4]);
  rpc_call_options call_options = {.timeout_ms = 10000};
  rpc_status status = {0};
  Jobhub__V1__Job *job = NULL;
  int exit_code = 1;
  if (jobhub_v1_jobs_submit(channel, &submit, &job, &call_options, &status) !=
      RPC_STATUS_OK) {
    exit_code = failed("Submit", &status);
    goto out;
  }
  printf("submitted %s\n", job->id);

  /* Watch: the job now, then each change, until it ends. */
  Jobhub__V1__WatchRequest watch = JOBHUB__V1__WATCH_REQUEST__INIT;
  watch.id = job->id;
  rpc_stream *stream = jobhub_v1_jobs_watch_open(channel, &watch, NULL);
  Jobhub__V1__Job *change = NULL;
  Jobhub__V1__JobState last = JOBHUB__V1__JOB_STATE__JOB_STATE_UNSPECIFIED;
  while (stream != NULL && jobhub_v1_jobs_watch_read(stream, &change) == 1) {
    last = change->state;
    printf("%s %s", change->id, state_name(change->state));
    if (change->progress > 0) {
      printf(" %.0f%%", change->progress * 100);
    }
    printf("\n");
    jobhub__v1__job__free_unpacked(change, NULL);
  }
  if (stream == NULL || rpc_stream_status(stream)->code != RPC_STATUS_OK) {
    fprintf(stderr, "Watch ended: %s\n",
            stream ? rpc_status_code_name((int)rpc_stream_status(stream)->code)
                   : "out of memory");
    rpc_stream_free(stream);
    goto out;
  }
  rpc_stream_free(stream);
  if (last != JOBHUB__V1__JOB_STATE__DONE) {
    goto out;
  }

  Jobhub__V1__GetResultRequest get = JOBHUB__V1__GET_RESULT_REQUEST__INIT;
  get.id = job->id;
  Jobhub__V1__JobResult *result = NULL;
  if (jobhub_v1_jobs_get_result(channel, &get, &result, &call_options,
                                &status) != RPC_STATUS_OK) {
    exit_code = failed("GetResult", &status);
    goto out;
  }
  printf("result data: %.*s\n", (int)result->data.len,
         (const char *)result->data.data);
  jobhub__v1__job_result__free_unpacked(result, NULL);
  exit_code = 0;
out:
  if (job != NULL) {
    jobhub__v1__job__free_unpacked(job, NULL);
  }
  rpc_channel_free(channel);
  return exit_code;
}
