/* queries.h: calls the core holds while a Connect worker answers them
 * (GetSubjectState), on the core thread: each waits under a query id, at
 * most a timeout, and is taken back by the answer, the timeout, or the
 * worker leaving. */
#ifndef JOBHUB_SERVER_CORE_QUERIES_H
#define JOBHUB_SERVER_CORE_QUERIES_H

#include <stdint.h>

#include <ev.h>

#include "server/core/hub.h"
#include "server/core/mailbox.h"

struct hub_worker;

/* hub_query_wait makes hc (hc->worker set: the worker asked) wait for its
 * answer under a new query id (returned, and in hc->query_id); after
 * timeout seconds on_timeout runs (timer->data is hc), which must take
 * hc back with hub_query_forget. */
uint64_t hub_query_wait(job_hub *hub, hub_call *hc, double timeout,
                        void (*on_timeout)(struct ev_loop *loop,
                                           ev_timer *timer, int events));

/* hub_query_take takes back the call waiting under query_id for the
 * worker worker_idx, or returns NULL (none: answered, timed out, or
 * another worker's). */
hub_call *hub_query_take(job_hub *hub, uint64_t query_id, uint64_t worker_idx);

/* hub_query_take_of takes back a call waiting for worker (NULL: for any
 * worker), or returns NULL when none waits. */
hub_call *hub_query_take_of(job_hub *hub, const struct hub_worker *worker);

/* hub_query_forget takes hc back: out of the list, its timer stopped. */
void hub_query_forget(job_hub *hub, hub_call *hc);

#endif
