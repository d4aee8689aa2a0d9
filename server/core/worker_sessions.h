/* worker_sessions.h: how workers come and go, on the core thread: Register,
 * the long poll of Lease, a Connect stream's hello and end, Add (a worker
 * reserved for a port), Delete and drain, and which connected worker
 * answers for a subject. The Workers service decodes the calls and
 * encodes the answers (the Worker message, the welcome); these functions
 * decide. */
#ifndef JOBHUB_SERVER_CORE_WORKER_SESSIONS_H
#define JOBHUB_SERVER_CORE_WORKER_SESSIONS_H

#include <stddef.h>
#include <stdint.h>

#include "jobhub/v1/workers.pb-c.h"
#include "server/core/hub.h"
#include "server/core/leased_jobs.h"
#include "server/core/mailbox.h"
#include "server/core/registry.h"

/* hub_register_worker registers a unary worker (Register): client_id and
 * hostname (copied), its capacity asked for (0 is 1, clamped to
 * --max-worker-capacity, the clamp logged once), live at once. Returns
 * the worker (the registry's), or NULL with why (as hub_worker_new). */
hub_worker *hub_register_worker(job_hub *hub,
                                const Jobhub__V1__RegisterRequest *request,
                                hub_refusal *why);

/* hub_lease_poll serves the Lease call hc of request (hc->request, with
 * client_id set): its worker is the one of worker_idx (which must be
 * client_id's), else client_id's unary worker of the pool and first job
 * type, else a new one. It goes live (unless draining); an older poll of
 * it is answered; then hc is answered with up to max_jobs jobs (clamped
 * as a capacity, at most 1000) as soon as there are some, or empty after
 * wait_ms (at most 60 s; 0: at once). Errors fail hc: NOT_FOUND (no such
 * worker_idx), PERMISSION_DENIED (another client's),
 * FAILED_PRECONDITION (the worker is on Connect), and those of
 * hub_worker_new. */
void hub_lease_poll(job_hub *hub, hub_call *hc);

/* hub_connect_worker binds the Connect stream conn to the worker its
 * hello names (worker_idx 0, or one not registered: a new worker with
 * that index): client_id, hostname and capacity set, a penalty applied,
 * the leases it re-sends held again (hub_reattach_lease). A stream of
 * the same worker still open ends ABORTED. Returns the worker, not yet
 * live (hub_worker_welcomed, after the welcome is sent), or NULL after
 * finishing conn's stream: UNAUTHENTICATED (no client_id),
 * PERMISSION_DENIED (the worker_idx is another client's),
 * RESOURCE_EXHAUSTED, or those of hub_worker_new. */
hub_worker *hub_connect_worker(job_hub *hub, worker_conn *conn,
                               const Jobhub__V1__WorkerHello *hello);

/* hub_worker_welcomed puts a worker that was sent its welcome in the
 * routing tables (its assignments follow), unless it is paused for
 * dropping jobs (it goes live when the pause is over). */
void hub_worker_welcomed(job_hub *hub, hub_worker *worker);

/* hub_worker_disconnected handles the end of worker's Connect stream:
 * out of the routing tables (its subject jobs go to others), the jobs it
 * never acknowledged queued again (the attempt not counted, a penalty
 * noted), then unregistered and freed: its other jobs go back. */
void hub_worker_disconnected(job_hub *hub, hub_worker *worker);

/* hub_worker_heard notes that worker sent a message: it is alive. */
void hub_worker_heard(hub_worker *worker);

/* hub_worker_stop (the hub stopping) unbinds worker's Connect stream and
 * returns it (NULL: none) for its owner to end; the worker and its leases
 * stay (after a restart it re-sends its results). A waiting Lease call of
 * worker is answered with what it holds. */
worker_conn *hub_worker_stop(job_hub *hub, hub_worker *worker);

/* hub_add_reserved_worker registers a worker reserved by Add for a port
 * (not live until it connects): hostname and worker_config (packed, may
 * be NULL) kept. Returns it, or NULL with why (as hub_worker_new, or
 * RESOURCE_EXHAUSTED). */
hub_worker *hub_add_reserved_worker(job_hub *hub,
                                    const Jobhub__V1__AddWorkerRequest *request,
                                    hub_refusal *why);

/* hub_latest_worker is the newest worker of pool_id and job_type_id that
 * is not draining (Delete's), or NULL. */
hub_worker *hub_latest_worker(job_hub *hub, uint32_t pool_id,
                              uint32_t job_type_id);

/* hub_drain_worker makes worker take no new jobs (it finishes those it
 * runs; its subjects move to others now). hub_remove_idle_worker
 * unregisters and frees it if it runs nothing and is not connected (its
 * Connect stream is told to drain instead). */
void hub_drain_worker(job_hub *hub, hub_worker *worker);
void hub_remove_idle_worker(job_hub *hub, hub_worker *worker);

/* hub_subject_worker is the worker connected over Connect that subject
 * of pool_id and job_type_id is routed to, or NULL. */
hub_worker *hub_subject_worker(job_hub *hub, uint32_t pool_id,
                               uint32_t job_type_id, const char *subject);

#endif
