/* jobs.h: the jobhub.v1.Jobs service over the hub core: its handlers
 * decode on the loop threads, post to the core, and encode its answers. */
#ifndef JOBHUB_SERVER_SERVICES_JOBS_H
#define JOBHUB_SERVER_SERVICES_JOBS_H

#include "rpc/server.h"
#include "server/core/hub.h"

/* jobs_service_add serves Jobs on server, over hub; before the server
 * starts. Returns 0, or -1 (no memory). */
int jobs_service_add(rpc_server *server, job_hub *hub);

#endif
