/* job_actions.h: what a client does to jobs, on the core thread: Submit
 * (or the job its idempotency key names already), Cancel, Reset, the
 * outcome of the writes they wait for, and which jobs List and GetResult
 * may show. The Jobs service decodes the calls and encodes the answers;
 * every decision and every change of a job is taken here. */
#ifndef JOBHUB_SERVER_CORE_JOB_ACTIONS_H
#define JOBHUB_SERVER_CORE_JOB_ACTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobhub/v1/jobs.pb-c.h"
#include "server/core/hub.h"
#include "server/core/job_record.h"
#include "server/core/job_table.h"
#include "server/core/leased_jobs.h"
#include "server/store/store.h"

/* hub_submit_max_attempts is the max_attempts a Submit of request gets:
 * its own, or the hub's default. Any thread (the options do not change). */
uint32_t hub_submit_max_attempts(const job_hub *hub,
                                 const Jobhub__V1__SubmitRequest *request);

/* hub_submit_job serves a Submit of request whose fixed part (fixed,
 * fixed_size; packed with hub_submit_max_attempts) the loop packed. A
 * new job is added and saved: done_new(status, arg) runs once its write
 * is durable or failed, never before this returns. A job the hub holds
 * under the request's idempotency_key is taken instead if the request
 * asks for the same job (same fixed part and lease_seconds):
 * done_existing(status, arg) runs once its writes so far are durable,
 * which may be at once, before this returns. Either way pass the
 * completion's status to hub_submit_written. *job is set to the job
 * before either can run. Returns 0 (a new job), 1 (the existing job; arg
 * may be gone once this returns), or -1 with why (done not run):
 * ALREADY_EXISTS (the key is another request's job), UNAVAILABLE (no
 * memory, or the store refused). Allocates nothing but the job. */
int hub_submit_job(job_hub *hub, const Jobhub__V1__SubmitRequest *request,
                   const uint8_t *fixed, size_t fixed_size,
                   job_store_done_fn done_new, job_store_done_fn done_existing,
                   void *arg, job_record **job, hub_refusal *why);

/* hub_submit_written takes the completion (status, JOB_STORE_*) of the
 * write a Submit waited for (existing: done_existing's). Returns 0 (the
 * job is durable), or -1 with why: a new job leaves no trace
 * (hub_drop_job: nobody was told of it); the job of an idempotency key
 * whose own Submit was not stored is UNAVAILABLE (a retry makes it
 * anew); else the store's failure (hub_store_failure). */
int hub_submit_written(job_hub *hub, job_record *job, bool existing, int status,
                       hub_refusal *why);

/* hub_cancel_job cancels job id: taken out of the queue, or its lease
 * ended and its holder told to stop (hub_cancel_lease: on its Connect
 * stream, or in its next Heartbeat); CANCELLED, the observers told, the
 * write awaited: done(status, arg) runs once it is durable or failed
 * (pass status to hub_client_write_done with undo). Returns the job, or
 * NULL with why (nothing changed, done not run): NOT_FOUND, and
 * FAILED_PRECONDITION for a job already final; UNAVAILABLE when the store
 * refused the write (the cancellation undone). */
job_record *hub_cancel_job(job_hub *hub, const char *id, job_store_done_fn done,
                           void *arg, job_undo *undo, hub_refusal *why);

/* hub_client_write_done takes the completion (status) of the write of a
 * client's transition (Cancel): 0, the job is durable; or -1 with why
 * (the store's failure), the transition undone (hub_undo_failed with
 * undo, which is not freed). */
int hub_client_write_done(job_hub *hub, job_record *job, job_undo *undo,
                          int status, hub_refusal *why);

/* hub_reset_jobs serves a Reset of request: the jobs its ids name that
 * are not QUEUED (each once; every id must name a job, else NOT_FOUND and
 * nothing changed), or with no ids every FAILED job of its pool and job
 * type filter. Each is put back in the queue as new: attempts 0, no
 * error, progress and times cleared, a lease it had voided and its holder
 * told to stop; saved, the observers told, then each(job, arg) runs (to
 * answer with it). done(status, arg) runs once the last write is durable
 * or failed. Returns how many were reset (0: done is not run), or -1 with
 * why: NOT_FOUND, RESOURCE_EXHAUSTED (no memory: nothing changed),
 * UNAVAILABLE (the store refused the last write: done is not run). */
long hub_reset_jobs(job_hub *hub, const Jobhub__V1__ResetRequest *request,
                    void (*each)(const job_record *job, void *arg),
                    job_store_done_fn done, void *arg, hub_refusal *why);

/* hub_list_next is the first job after `after` (NULL: from the first) in
 * id order that filter (state, pool, job type, subject) selects, or NULL. */
const job_record *hub_list_next(job_hub *hub, const job_record *after,
                                const Jobhub__V1__ListJobsRequest *filter);

/* hub_result_readable tells whether job's result may be read once the
 * job's writes completed with status: 0, or -1 with why (the store's
 * failure; FAILED_PRECONDITION for a job that is not DONE). */
int hub_result_readable(job_hub *hub, const job_record *job, int status,
                        hub_refusal *why);

#endif
