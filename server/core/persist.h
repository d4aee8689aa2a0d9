/* persist.h: writing jobs to the store, in order, on the core thread: a
 * transition's write (awaited or not), leases deferred to the job's next
 * write, what the store's completions tell the core, and the jobs dropped
 * after a failed Submit until their writes complete. */
#ifndef JOBHUB_SERVER_CORE_PERSIST_H
#define JOBHUB_SERVER_CORE_PERSIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "rpc/status.h"
#include "server/core/hub.h"
#include "server/core/job_record.h"
#include "server/store/store.h"

/* A lease's write waits this long for the job's next write (its result,
 * usually) to go with it: one row write instead of two. A crash in that
 * time loses the lease, not the job: it is queued again at the restart,
 * the attempt not counted, and the worker's late result is refused. */
#define LEASE_WRITE_DELAY 0.05 /* s */

/* hub_store_failure turns a failed write's status (JOB_STORE_*) into the
 * answer's code, and writes its cause into why: RESOURCE_EXHAUSTED for a
 * disk full, UNAVAILABLE for other I/O errors, INTERNAL for a write the
 * store refused alone. */
rpc_status_code hub_store_failure(job_hub *hub, int status, char *why,
                                  size_t why_size);

/* hub_save writes job's changing part with an event (actor, worker_idx,
 * detail; none when from_state is the job's state) and optionally its
 * result; done may be NULL (not awaited). A lease not yet written goes
 * with it, first. Returns 0, or -1 (the store refused, logged: done is
 * not run). */
int hub_save(job_hub *hub, job_record *job, int from_state, const char *actor,
             const char *detail, const uint8_t *result, size_t result_size,
             job_store_done_fn done, void *arg);

/* hub_save_quietly is hub_save of a transition nobody waits for: still
 * written, in order; a refusal is logged only. */
void hub_save_quietly(job_hub *hub, job_record *job, int from_state,
                      const char *actor, const char *detail);

/* hub_after_writes runs done(0, arg) once every write of job made so far
 * is durable: at once when none is pending, else after a write of the
 * job as it is (writes are committed in order). done gets -1 if that
 * write fails. Returns 0, or -1 (the store refused: done is not run). */
int hub_after_writes(job_hub *hub, job_record *job, job_store_done_fn done,
                     void *arg);

/* hub_save_lease writes job's lease if it is not written yet: before a
 * change of the fields its event is made of (worker_idx, started_us). */
void hub_save_lease(job_hub *hub, job_record *job);

/* hub_defer_lease_write marks job's new lease to be written with its next
 * write, or by the lease writer after LEASE_WRITE_DELAY;
 * hub_unsaved_unlink takes job off that list (its lease is then not
 * written by itself). */
void hub_defer_lease_write(job_hub *hub, job_record *job);
void hub_unsaved_unlink(job_hub *hub, job_record *job);

/* hub_on_lease_writer (the lease_writer timer's callback, timer->data the
 * hub) writes every lease not yet written; before the store closes too. */
void hub_on_lease_writer(struct ev_loop *loop, ev_timer *timer, int events);

/* hub_on_job_written and hub_on_store_turned are the store's completion
 * and writability callbacks (arg: the hub): a write of a job is durable
 * (workers waiting for the store are woken when it caught up); the store
 * turned (not) writable (told to the listener of hub_on_store_writable). */
void hub_on_job_written(uint64_t sequence, void *arg);
void hub_on_store_turned(bool writable, void *arg);

/* hub_read_result and hub_read_events ask the store for a job's result or
 * its events (History) off the core thread; done runs on the core thread
 * with what was read. Call them after hub_after_writes, so that the read
 * sees every acknowledged write. Return 0, or -1 (the store refused: done
 * is not run). */
int hub_read_result(job_hub *hub, const job_record *job, job_store_read_fn done,
                    void *arg);
int hub_read_events(job_hub *hub, const job_record *job, job_store_read_fn done,
                    void *arg);

/* hub_free_dropped frees the dropped jobs whose writes have all
 * completed: no write's callback can reach them any more. */
void hub_free_dropped(job_hub *hub);

#endif
