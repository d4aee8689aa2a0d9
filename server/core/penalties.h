/* penalties.h: flapping workers, on the core thread: a worker identity
 * (client_id) whose Connect streams keep ending with jobs it had not
 * acknowledged is paused before it gets new ones (docs/core-design.md
 * "Connect"). The records live in the hub's penalties table. */
#ifndef JOBHUB_SERVER_CORE_PENALTIES_H
#define JOBHUB_SERVER_CORE_PENALTIES_H

#include <stdint.h>

#include "server/core/hub.h"

struct hub_worker;

/* hub_penalty_note_stream_end notes that a Connect stream of worker ended
 * having dropped this many jobs it had not acknowledged: a second drop
 * within 60 s pauses the identity (1 s, doubling up to 60 s), logged once
 * per episode; a stream that ran 30 s without a drop ends the episode. */
void hub_penalty_note_stream_end(job_hub *hub, struct hub_worker *worker,
                                 uint32_t dropped);

/* hub_penalty_apply pauses worker (just connected, its client_id set)
 * until its identity's pause is over, if it has one. */
void hub_penalty_apply(job_hub *hub, struct hub_worker *worker);

/* hub_penalties_expire forgets the identities whose last drop and pause
 * are long past (housekeeping); hub_penalties_free frees them all (at
 * close). */
void hub_penalties_expire(job_hub *hub, int64_t now_us);
void hub_penalties_free(job_hub *hub);

#endif
