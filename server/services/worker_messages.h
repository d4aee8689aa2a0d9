/* worker_messages.h: what the files of the Workers service share: the
 * Worker message, the encoders the core is handed (worker_wire.h), a
 * HubMessage sent on a Connect stream, and the check of a progress value.
 * All run on the core thread (worker_progress_valid anywhere). */
#ifndef JOBHUB_SERVER_SERVICES_WORKER_MESSAGES_H
#define JOBHUB_SERVER_SERVICES_WORKER_MESSAGES_H

#include <stdbool.h>

#include "jobhub/v1/workers.pb-c.h"
#include "rpc/buffer.h"
#include "server/core/hub.h"
#include "server/core/registry.h"
#include "server/core/worker_wire.h"

/* worker_pack appends worker as a jobhub.v1.Worker to out. Returns 0, or
 * -1 (no memory; out as it was). */
int worker_pack(const hub_worker *worker, rpc_buffer *out);

/* worker_wire_encoders are the Workers encoders of what the core gives
 * workers (assignments, cancellations), handed to it at start-up. */
extern const hub_worker_wire worker_wire_encoders;

/* worker_conn_send sends message on conn's Connect stream; out of memory,
 * the stream is finished RESOURCE_EXHAUSTED. */
void worker_conn_send(job_hub *hub, worker_conn *conn,
                      const Jobhub__V1__HubMessage *message);

/* worker_progress_valid tells whether progress is a fraction in [0, 1]:
 * NaN, infinities and values outside are refused rather than stored. */
bool worker_progress_valid(double progress);

#endif
