/* services/worker_messages.c: the Workers messages that more than one
 * file of the service builds, and the encoders the core is handed. */
#include "server/services/worker_messages.h"

#include <stdlib.h>

#include "server/core/mailbox.h"

/* Field numbers of proto/jobhub/v1/workers.proto that messages are put
 * together with from bytes packed before (protobuf-c names none). */
enum {
  WORKER_CONFIG = 12,             /* Worker.worker_config */
  ASSIGNMENT_JOB = 1,             /* Assignment.job */
  LEASE_RESPONSE_ASSIGNMENTS = 1, /* LeaseResponse.assignments */
  HUB_MESSAGE_ASSIGNMENT = 2,     /* HubMessage.assignment */
};

static void timestamp_of(Google__Protobuf__Timestamp *ts, int64_t us) {
  ts->seconds = us / 1000000;
  ts->nanos = (int32_t)(us % 1000000) * 1000;
}

int worker_pack(const hub_worker *worker, rpc_buffer *out) {
  Jobhub__V1__Worker w = JOBHUB__V1__WORKER__INIT;
  Google__Protobuf__Timestamp connected = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  Google__Protobuf__Timestamp seen = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  w.worker_idx = worker->worker_idx;
  if (worker->client_id != NULL) {
    w.client_id = worker->client_id;
  }
  w.pool_id = worker->pool_id;
  w.n_job_type_ids = worker->n_job_types;
  w.job_type_ids = worker->job_type_ids;
  if (worker->hostname != NULL) {
    w.hostname = worker->hostname;
  }
  w.capacity = worker->capacity;
  w.status = worker->reserved   ? JOBHUB__V1__WORKER_STATUS__WORKER_RESERVED
             : worker->draining ? JOBHUB__V1__WORKER_STATUS__WORKER_DRAINING
             : !worker->live    ? JOBHUB__V1__WORKER_STATUS__WORKER_DISCONNECTED
             : worker->running > 0 ? JOBHUB__V1__WORKER_STATUS__WORKER_BUSY
                                   : JOBHUB__V1__WORKER_STATUS__WORKER_IDLE;
  w.running = worker->running;
  if (worker->connected_us != 0) {
    timestamp_of(&connected, worker->connected_us);
    w.connected_at = &connected;
  }
  timestamp_of(&seen, worker->last_seen_us);
  w.last_seen = &seen;
  w.port = worker->port;
  size_t start = out->len;
  if (pb_append_message(out, &w.base) != 0) {
    return -1;
  }
  if (worker->worker_config != NULL &&
      pb_append_bytes_field(out, WORKER_CONFIG, worker->worker_config,
                            worker->worker_config_size) != 0) {
    out->len = start;
    return -1;
  }
  return 0;
}

/* The encoders the core is handed (worker_wire.h). */

/* Appends Assignment { job, lease_id, lease_expires_at } of job to out;
 * the job is packed in scratch. */
static int assignment_pack(rpc_buffer *out, const job_record *job,
                           rpc_buffer *scratch) {
  char lease_id[LEASE_ID_SIZE];
  lease_id_format(job, lease_id);
  Google__Protobuf__Timestamp expires = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  expires.seconds = job->lease.due_us / 1000000;
  expires.nanos = (int32_t)(job->lease.due_us % 1000000) * 1000;
  Jobhub__V1__Assignment rest = JOBHUB__V1__ASSIGNMENT__INIT;
  rest.lease_id = lease_id;
  rest.lease_expires_at = &expires;
  rpc_buffer_reset(scratch);
  if (job_record_pack(job, scratch) != 0 ||
      pb_append_bytes_field(out, ASSIGNMENT_JOB, scratch->data, scratch->len) !=
          0 ||
      pb_append_message(out, &rest.base) != 0) {
    return -1;
  }
  return 0;
}

/* Appends to out, as its field field, the Assignment of job. */
static int assignment_field_add(rpc_buffer *out, uint32_t field,
                                const job_record *job, rpc_buffer *scratch,
                                rpc_buffer *work) {
  rpc_buffer_reset(work);
  if (assignment_pack(work, job, scratch) != 0 ||
      pb_append_bytes_field(out, field, work->data, work->len) != 0) {
    return -1;
  }
  return 0;
}

static int lease_answer_add(rpc_buffer *answer, const job_record *job,
                            rpc_buffer *scratch, rpc_buffer *work) {
  return assignment_field_add(answer, LEASE_RESPONSE_ASSIGNMENTS, job, scratch,
                              work);
}

static int stream_assignment(rpc_buffer *message, const job_record *job,
                             rpc_buffer *scratch, rpc_buffer *work) {
  return assignment_field_add(message, HUB_MESSAGE_ASSIGNMENT, job, scratch,
                              work);
}

static int stream_cancel(rpc_buffer *message, const job_record *job) {
  char lease_id[LEASE_ID_SIZE];
  lease_id_format(job, lease_id);
  Jobhub__V1__JobCancellation cancel = JOBHUB__V1__JOB_CANCELLATION__INIT;
  cancel.job_id = (char *)job->id; /* only read by the packing */
  cancel.lease_id = lease_id;
  Jobhub__V1__HubMessage hub_message = JOBHUB__V1__HUB_MESSAGE__INIT;
  hub_message.message_case = JOBHUB__V1__HUB_MESSAGE__MESSAGE_CANCEL;
  hub_message.cancel = &cancel;
  return pb_append_message(message, &hub_message.base);
}

const hub_worker_wire worker_wire_encoders = {
    .lease_answer_add = lease_answer_add,
    .stream_assignment = stream_assignment,
    .stream_cancel = stream_cancel,
};

void worker_conn_send(job_hub *hub, worker_conn *conn,
                      const Jobhub__V1__HubMessage *message) {
  rpc_buffer_reset(hub_scratch(hub));
  if (pb_append_message(hub_scratch(hub), &message->base) != 0 ||
      core_stream_send(hub, &conn->stream, hub_scratch(hub)->data,
                       hub_scratch(hub)->len) != 0) {
    core_stream_finish(hub, &conn->stream, RPC_STATUS_RESOURCE_EXHAUSTED,
                       "out of memory");
  }
}

bool worker_progress_valid(double progress) {
  return progress >= 0 && progress <= 1; /* false for NaN */
}
