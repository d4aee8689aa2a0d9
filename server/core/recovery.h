/* recovery.h: rebuilding the core's state from the store at start. */
#ifndef JOBHUB_SERVER_CORE_RECOVERY_H
#define JOBHUB_SERVER_CORE_RECOVERY_H

#include <stddef.h>

#include "server/core/hub.h"

/* hub_recover loads every stored job, before the core serves: QUEUED ones
 * to the queue, IN_PROGRESS ones keep their lease until its expiry (one
 * that expired while the hub was down is queued again, the attempt
 * counted), final ones stay for Get. Returns 0, or -1 with a message in
 * err (the caller frees the hub). */
int hub_recover(job_hub *hub, char *err, size_t err_size);

#endif
