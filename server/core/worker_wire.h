/* worker_wire.h: how what the core gives workers reaches the wire. The
 * core leases jobs and voids leases; the Workers service, which owns the
 * messages, encodes them (its encoders are handed to the core at
 * start-up, so the core knows no field of the Workers protocol). The
 * encoders run on the core thread and must not block. */
#ifndef JOBHUB_SERVER_CORE_WORKER_WIRE_H
#define JOBHUB_SERVER_CORE_WORKER_WIRE_H

#include "rpc/buffer.h"
#include "server/core/hub.h"
#include "server/core/job_record.h"

typedef struct hub_worker_wire {
  /* Appends to answer (a Lease call's response being built) the
   * assignment of job, just leased. scratch and work are buffers of the
   * core's to reset and use. Returns 0, or -1 (no memory). */
  int (*lease_answer_add)(rpc_buffer *answer, const job_record *job,
                          rpc_buffer *scratch, rpc_buffer *work);
  /* Appends to message (empty) the Connect message that assigns job,
   * just leased; scratch and work as above. Returns 0 or -1. */
  int (*stream_assignment)(rpc_buffer *message, const job_record *job,
                           rpc_buffer *scratch, rpc_buffer *work);
  /* Appends to message (empty) the Connect message that tells a worker
   * job's lease is void. Returns 0 or -1. */
  int (*stream_cancel)(rpc_buffer *message, const job_record *job);
} hub_worker_wire;

/* hub_set_worker_wire hands the core the encoders (copied); before the
 * server serves, as hub_observe. Without them (a core under test), no job
 * is assigned and no cancellation sent. */
void hub_set_worker_wire(job_hub *hub, const hub_worker_wire *wire);

#endif
