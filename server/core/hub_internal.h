/* hub_internal.h: what the services see of the core: the core's modules
 * and the functions the services give the core. Everything here runs on
 * the core thread unless it says "loop". */
#ifndef JOBHUB_SERVER_CORE_HUB_INTERNAL_H
#define JOBHUB_SERVER_CORE_HUB_INTERNAL_H

#include "server/core/dispatch.h"
#include "server/core/hub.h"
#include "server/core/hub_state.h"
#include "server/core/job_table.h"
#include "server/core/leases.h"
#include "server/core/mailbox.h"
#include "server/core/persist.h"
#include "server/core/registry.h"
#include "server/core/watchers.h"

/* The services' handler tables. */
extern const struct jobhub_v1_jobs_handlers hub_jobs_handlers;
extern const struct jobhub_v1_workers_handlers hub_workers_handlers;

/* Stream plumbing for the services: the core's end of every stream at
 * shutdown. */
void hub_workers_close_all(job_hub *hub);
void hub_watchers_close_all(job_hub *hub);
void hub_queries_fail_all(job_hub *hub, hub_worker *worker);

/* Worker penalties (services/workers.c): hub_penalties_expire forgets
 * those whose last drop and pause are long past (housekeeping);
 * hub_penalties_free frees them all (at close). */
void hub_penalties_expire(job_hub *hub, int64_t now_us);
void hub_penalties_free(job_hub *hub);

#endif
