/* workers.h: the jobhub.v1.Workers service over the hub core: its handlers
 * decode on the loop threads, post to the core, and encode its answers;
 * its Connect streams and GetSubjectState queries end when the hub stops
 * (an observer of the core). */
#ifndef JOBHUB_SERVER_SERVICES_WORKERS_H
#define JOBHUB_SERVER_SERVICES_WORKERS_H

#include "rpc/server.h"
#include "server/core/hub.h"

/* workers_service_add serves Workers on server, over hub, and subscribes
 * to the hub's events (a worker that leaves fails its queries; the hub
 * stopping ends Connect streams, waiting Lease calls and queries); before
 * the server starts. Returns 0, or -1 (no memory). */
int workers_service_add(rpc_server *server, job_hub *hub);

#endif
