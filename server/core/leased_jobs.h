/* leased_jobs.h: what a worker does with a job it holds, on the core
 * thread: the check of a lease it names (job, lease number, secret,
 * holder), and the transitions that follow: Complete, Fail (queued again
 * or failed), Progress, Started and Heartbeat (the lease acknowledged,
 * extended), a lease re-attached after a hub restart, and a Lease answer
 * that never reached its worker. The Workers service decodes the calls
 * and encodes the answers; every decision is taken here. */
#ifndef JOBHUB_SERVER_CORE_LEASED_JOBS_H
#define JOBHUB_SERVER_CORE_LEASED_JOBS_H

#include <stdbool.h>
#include <stddef.h>

#include "jobhub/v1/common.pb-c.h"
#include "rpc/status.h"
#include "server/core/hub.h"
#include "server/core/job_record.h"
#include "server/core/job_table.h"
#include "server/store/store.h"

struct hub_worker;

/* Why a lease was refused: the status the caller is answered with, and
 * its message. code is RPC_STATUS_OK when nothing was refused. */
typedef struct hub_refusal {
  rpc_status_code code;
  char message[256]; /* as long as a call's (hub_call) */
} hub_refusal;

/* hub_refuse sets why to code and the message of fmt; returns NULL (for
 * the functions that return a job or NULL with why). */
job_record *hub_refuse(hub_refusal *why, rpc_status_code code, const char *fmt,
                       ...) __attribute__((format(printf, 3, 4)));

/* A lease a worker names, and who names it: on a Connect stream its
 * worker (stream_worker, client_id NULL); on a unary call its client_id
 * (stream_worker NULL); neither: the hub itself. job_id "" names no job
 * (the lease id alone does). On a unary call with job_id and lease_id ""
 * and table set (NULL or "": none), the lease is the one client_id holds
 * of a job whose subject is table (the work manager's storeResult/{table}
 * and storeError/{table}). The strings are borrowed for the call. */
typedef struct hub_lease_claim {
  const char *job_id;
  const char *lease_id;
  const char *client_id;
  const struct hub_worker *stream_worker;
  const char *table;
} hub_lease_claim;

/* hub_leased_job returns the job of the lease claim names if its caller
 * may use it, or NULL with why: NOT_FOUND for an unknown lease, one of an
 * earlier attempt, a forged one (a wrong secret is an unknown lease) or
 * one whose job is queued again; FAILED_PRECONDITION when the job
 * finished; PERMISSION_DENIED for a lease another worker holds. A claim
 * by table names the job of that subject client_id's workers hold (the
 * latest leased if several), else NOT_FOUND, or FAILED_PRECONDITION when
 * one of their last jobs of that subject (HUB_WORKER_RELEASED each) is
 * final; another client's jobs are never named. After a
 * hub restart a lease has no holder until its worker re-attaches it: on
 * Connect the worker must then be the stored one; on a unary call the
 * secret alone binds. Nothing changes. */
job_record *hub_leased_job(job_hub *hub, const hub_lease_claim *claim,
                           hub_refusal *why);

/* hub_complete_leased_job ends the job of claim's lease as DONE with
 * result (NULL: an empty one), and hub_fail_leased_job after a failure
 * (error, copied): queued again after a backoff when retryable and
 * attempts are left, else FAILED. The write is awaited: done(status, arg)
 * runs on the core thread once it is durable or failed; undo records how
 * to put the job back if it fails (hub_lease_outcome_failed). Return the
 * job, or NULL with why: the lease is refused (as hub_leased_job; nothing
 * changed) or the store refused the write (UNAVAILABLE; the transition
 * undone). done is not run when NULL is returned. */
job_record *hub_complete_leased_job(job_hub *hub, const hub_lease_claim *claim,
                                    const Jobhub__V1__JobResult *result,
                                    job_store_done_fn done, void *arg,
                                    job_undo *undo, hub_refusal *why);
job_record *hub_fail_leased_job(job_hub *hub, const hub_lease_claim *claim,
                                const char *error, bool retryable,
                                job_store_done_fn done, void *arg,
                                job_undo *undo, hub_refusal *why);

/* hub_lease_outcome_failed handles the failed write (status, JOB_STORE_*)
 * of the outcome of job_id (job, as returned above): the transition is
 * undone, and why says what to answer: NOT_FOUND when the job itself was
 * never stored (its Submit's write failed too: hub_drop_job), else the
 * store's failure (hub_store_failure). undo is not freed. */
void hub_lease_outcome_failed(job_hub *hub, const char *job_id, job_record *job,
                              job_undo *undo, int status, hub_refusal *why);

/* hub_progress_leased_job sets the progress (in [0, 1]) and message
 * (copied, NULL: none) of the job of claim's lease, and writes them (not
 * awaited); on a Connect stream the lease is acknowledged too. Returns
 * the job, or NULL with why (as hub_leased_job). */
job_record *hub_progress_leased_job(job_hub *hub, const hub_lease_claim *claim,
                                    double progress, const char *message,
                                    hub_refusal *why);

/* hub_start_leased_job (Connect's Started) acknowledges the lease of
 * claim: its job is not given back when the stream ends.
 * hub_heartbeat_leased_job acknowledges it too and runs it for its lease
 * seconds again. Return the job, or NULL with why (as hub_leased_job). */
job_record *hub_start_leased_job(job_hub *hub, const hub_lease_claim *claim,
                                 hub_refusal *why);
job_record *hub_heartbeat_leased_job(job_hub *hub, const hub_lease_claim *claim,
                                     hub_refusal *why);

/* hub_heartbeat_leases is a unary Heartbeat of client_id: every lease of
 * lease_ids is checked before any changes; an unknown lease is refused
 * before one held by another worker (PERMISSION_DENIED), while a lease
 * whose job finished or that a Reset took back is not refused. Then the
 * leases still held are extended, and cancelled(job_id, arg) is told of
 * each of the others: the worker must stop their jobs. Returns 0, or -1
 * with why (refused: nothing changed; cancelled returned non-zero:
 * RESOURCE_EXHAUSTED, the leases before it extended). */
int hub_heartbeat_leases(job_hub *hub, char *const *lease_ids, size_t n,
                         const char *client_id,
                         int (*cancelled)(const char *job_id, void *arg),
                         void *arg, hub_refusal *why);

/* hub_reattach_lease makes worker (on Connect, after a hub restart) the
 * holder of lease_id again if the lease is its and has no holder, and
 * acknowledges it: the worker says it runs the job. Other leases are
 * ignored. */
void hub_reattach_lease(job_hub *hub, struct hub_worker *worker,
                        const char *lease_id);

/* hub_requeue_undelivered_lease gives back the job of lease_id, whose
 * Lease answer did not reach its worker: queued again at once, the
 * attempt not counted, the lease void. A lease no longer held is left. */
void hub_requeue_undelivered_lease(job_hub *hub, const char *lease_id);

#endif
