/* worker_connect.h: Workers.Connect, a worker's stream with the hub, and
 * GetSubjectState, which is asked of a connected worker over its stream.
 * Handlers run on the loop threads (user: the hub). */
#ifndef JOBHUB_SERVER_SERVICES_WORKER_CONNECT_H
#define JOBHUB_SERVER_SERVICES_WORKER_CONNECT_H

#include "jobhub/v1/workers.pb-c.h"
#include "rpc/call.h"
#include "server/core/hub.h"

/* worker_connect serves a Connect call: its stream's messages go to the
 * core; it ends when the client goes, or UNAVAILABLE when the hub stops
 * (its leases stay). */
void worker_connect(rpc_call *call, void *user);

/* worker_subject_state serves GetSubjectState: the worker responsible
 * for the subject is asked over its stream; UNAVAILABLE when none is
 * connected or it leaves, DEADLINE_EXCEEDED after 5 s without answer. */
void worker_subject_state(rpc_call *call,
                          const Jobhub__V1__SubjectStateRequest *request,
                          void *user);

/* worker_connect_observe subscribes to hub's events: a worker that leaves
 * fails its queries; the hub stopping ends Connect streams, waiting
 * Lease calls and queries. Before the server starts. Returns 0, or -1
 * (no memory). */
int worker_connect_observe(job_hub *hub);

#endif
