/* hub_internal.h: the hub core's state and the plumbing between the loop
 * threads and the core, shared by hub_core.c and the two
 * services. Everything here runs on the core thread unless it says
 * "loop". */
#ifndef JOBHUB_SERVER_CORE_HUB_INTERNAL_H
#define JOBHUB_SERVER_CORE_HUB_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "jobhub/v1/workers.pb-c.h"
#include "rpc/call.h"
#include "rpc/loop_thread.h"
#include "common/deadline_heap.h"
#include "common/hash_table.h"
#include "server/core/hub.h"
#include "server/core/job_index.h"
#include "server/core/job_queue.h"
#include "server/core/job_record.h"
#include "server/core/router.h"
#include "server/store/store.h"

typedef struct hub_call hub_call;
typedef void (*hub_call_fn)(job_hub *hub, hub_call *hc);

/* What a transition awaited by its caller (Cancel, Complete, Fail)
 * changed, to put the job back as it was if its write fails: the caller
 * is told, and may retry. */
typedef struct job_undo {
  bool set;
  int from_state, to_state;
  uint32_t leases; /* the job's lease number at the transition */
  uint64_t worker_idx;
  int64_t finished_us, lease_due_us, not_before_us;
  double progress;
  char *error; /* owned: a copy of the error before, or NULL */
  bool lease_unsaved;
} job_undo;

/* A unary call handed to the core. The request is the call's (it lives
 * until the call finishes) and is only read. The core answers with
 * hub_call_answer*, once; the loop then sends and finishes. */
struct hub_call {
  rpc_loop_task task;
  job_hub *hub;
  rpc_call *call;               /* loop only */
  rpc_loop_thread *loop_thread; /* where the answer goes */
  const void *request;
  hub_call_fn run;         /* core: serves the request */
  hub_call_fn undelivered; /* core: an OK answer could not be sent */
  rpc_status_code code;
  char message[256];
  rpc_buffer answer; /* the packed response when OK */
  /* Core state of a call the core holds on to. */
  hub_call *next_waiting;
  ev_timer timer;
  bool timer_active;
  struct hub_worker *worker;
  uint32_t want;
  job_record *job;
  uint64_t query_id;
  uint8_t *data; /* owned: bytes prepared on the loop (a fixed part) */
  size_t data_size;
  job_undo undo; /* of the transition the call waits for; freed with it */
};

/* hub_call_post (loop) hands the call to the core, which runs run; data
 * (malloc'd, may be NULL) goes with it and is freed with it. */
void hub_call_post(job_hub *hub, rpc_call *call, const void *request,
                   hub_call_fn run, hub_call_fn undelivered, uint8_t *data,
                   size_t data_size);

/* hub_call_answer sends answer (filled) with OK; hub_call_fail the error.
 * Either posts the call back to its loop; the core must not touch hc
 * afterwards. */
void hub_call_answer(job_hub *hub, hub_call *hc);
void hub_call_fail(job_hub *hub, hub_call *hc, rpc_status_code code,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A stream (Connect, Watch) has two halves: the loop's, which owns the
 * rpc_call, and the core's. Each half sends exactly one final message to
 * the other (the core: "finish with this status"; the loop: "closed") and
 * frees itself once it has both sent and received one. */
typedef struct loop_stream loop_stream;
typedef struct core_stream core_stream;

struct core_stream {
  job_hub *hub;
  loop_stream *loop;
  rpc_loop_task closed_task; /* the loop's final, posted once */
  rpc_loop_thread *loop_thread;
  bool sent_final, got_closed;
  /* A message from the client (Connect: a WorkerMessage), borrowed for
   * the call. */
  void (*on_message)(job_hub *hub, core_stream *stream,
                     const ProtobufCMessage *message);
  /* The loop half is done (client gone, or after our final): the owner
   * cleans up, and frees itself if sent_final. */
  void (*on_closed)(job_hub *hub, core_stream *stream);
};

/* loop_stream_open (loop) binds call to stream, a core half the caller
 * allocated (its ownership passes to the core), and posts opened to the
 * core, which runs there first. Returns 0, or -1 (no memory: the caller
 * finishes the call and frees stream). */
int loop_stream_open(job_hub *hub, rpc_call *call, core_stream *stream,
                     void (*opened)(job_hub *hub, core_stream *stream),
                     bool client_streams);

/* core_stream_send queues message bytes for the client. Returns 0 or -1
 * (no memory, or the final was sent). */
int core_stream_send(job_hub *hub, core_stream *stream, const uint8_t *data,
                     size_t size);

/* core_stream_finish sends the final: the call ends with code. */
void core_stream_finish(job_hub *hub, core_stream *stream, rpc_status_code code,
                        const char *message);

/* A worker, registered, reserved by Add, polling with Lease, or connected
 * over Connect. */
typedef struct worker_conn worker_conn;

typedef struct hub_worker {
  uint64_t worker_idx;
  uint32_t pool_id;
  uint32_t *job_type_ids;
  size_t n_job_types;
  uint32_t pool_idxs[8]; /* of the first job types, for quick checks */
  char *client_id;
  char *hostname;
  uint32_t capacity;
  uint32_t port;
  uint8_t *worker_config; /* packed google.protobuf.Struct, or NULL */
  size_t worker_config_size;
  int64_t connected_us, last_seen_us;
  bool reserved; /* by Add, not yet connected */
  bool draining; /* takes no new jobs */
  bool live;     /* in its pools' routing tables */
  bool pump_scheduled;
  worker_conn *conn; /* the Connect stream, or NULL */
  uint32_t running;
  job_record *running_jobs;
  job_queue *sticky; /* subject jobs routed to this worker */
  hub_call *pending_lease;
  uint64_t created; /* order of creation, for Delete's "latest" */
  /* A Connect worker that kept dropping jobs gets none before this. */
  int64_t paused_until_us;
  ev_timer pause_timer;        /* wakes it then */
  job_hub *pause_hub;          /* whose loop pause_timer runs on */
  bool capacity_capped_logged; /* its capacity was clamped, and logged */
} hub_worker;

struct worker_conn {
  core_stream stream;
  hub_worker *worker; /* NULL before hello or after it left */
  uint32_t acks_owed; /* results waiting for the store to be acked */
  bool closed;        /* the stream ended; freed when acks_owed is 0 */
};

/* Routing state of one (pool_id, job_type_id). */
typedef struct hub_pool {
  uint32_t pool_idx;
  subject_router *router;
  hub_worker **live;
  size_t n_live, live_capacity;
  size_t next_worker; /* round robin start for subject-less jobs */
  uint64_t queued, in_progress, done, failed;
  double run_seconds; /* of done jobs, for the mean */
} hub_pool;

/* A Watch call's core half. */
typedef struct job_watcher {
  core_stream stream;
  struct job_watcher *next;        /* on the job, or in the filter list */
  job_record *job;                 /* NULL: a filter watcher */
  Jobhub__V1__WatchRequest filter; /* copied scalars */
  char id[JOB_ID_SIZE];
  char *subject; /* owned; NULL: any */
} job_watcher;

struct job_hub {
  hub_options options;
  char data_dir[4096];
  rpc_loop_thread *core; /* options.loop_thread, or the hub's own */
  bool owns_core;        /* the hub made, started and frees core */
  struct ev_loop *loop;
  job_store *store;
  job_queue *queue;
  job_index *jobs_by_id;
  hash_table *jobs_by_key;
  hash_table *pools;
  hash_table *workers;
  job_record *first_job, *last_job;
  size_t job_count;
  uint64_t next_sequence;
  deadline_heap leases;
  ev_timer lease_timer;
  ev_timer delay_timer;
  ev_timer housekeeping;
  job_record *unsaved_leases; /* leases to write with the job's next write */
  uint64_t writes_pending;    /* writes queued, not yet durable */
  ev_timer lease_writer;      /* writes them at the latest this much later */
  hub_worker **pumps;         /* workers to give jobs before the loop sleeps */
  size_t n_pumps, pumps_capacity;
  ev_prepare pumper;
  job_watcher *filter_watchers;
  hub_call *queries; /* GetSubjectState calls waiting for a worker */
  uint64_t next_query_id;
  uint64_t workers_created;
  bool closing;
  rpc_buffer scratch;
  uint32_t rng;
  /* Random bytes for lease secrets, read from the OS a batch at a time
   * (a lease costs no syscall); those before random_used are spent. */
  uint8_t random[4096];
  size_t random_used;
  /* worker_penalty by client_id: Connect workers that dropped jobs. */
  hash_table *penalties;
  /* Jobs whose Submit was not stored (hub_drop_job): out of every index,
   * freed once their writes in flight have completed. Linked by next. */
  job_record *dropped;
  bool store_writable;
  void (*store_listener)(bool writable, void *arg);
  void *store_listener_arg;
};

/* What the hub remembers of a worker identity (client_id) whose Connect
 * streams ended holding jobs it had not acknowledged: it is slowed down
 * when it does it again (docs/core-design.md "Connect"). */
typedef struct worker_penalty {
  char *client_id;         /* owned */
  int64_t last_drop_us;    /* its last stream end that dropped jobs */
  int64_t backoff_us;      /* the last pause it got; 0: none yet */
  int64_t paused_until_us; /* its next Connect gets no jobs before this */
  bool logged;             /* this episode has its log line */
} worker_penalty;

/* Core operations shared by the services. */
job_record *hub_find_job(job_hub *hub, const char *id);
job_record *hub_find_job_by_key(job_hub *hub, const char *key);
hub_pool *hub_pool_get(job_hub *hub, uint32_t pool_idx, bool create);
hub_worker *hub_find_worker(job_hub *hub, uint64_t worker_idx);

/* hub_submit adds a job (fixed part packed by the loop) and saves it;
 * done runs on the core when the write is durable (status 0) or failed. */
job_record *hub_submit(job_hub *hub, const Jobhub__V1__SubmitRequest *request,
                       const uint8_t *fixed, size_t fixed_size,
                       uint32_t max_attempts, job_store_done_fn done,
                       void *arg);

/* hub_drop_job removes every trace of a job whose Submit write failed:
 * out of its queue, the indexes and the job list; a worker holding it is
 * told to cancel (its result is then NOT_FOUND); its Watch calls end with
 * NOT_FOUND. The record is freed once its writes in flight complete. */
void hub_drop_job(job_hub *hub, job_record *job);

/* hub_undo_begin records job as it is, before a transition;
 * hub_undo_made records the state the transition made. hub_undo_failed
 * (the transition's write failed) puts the job back as it was, if nothing
 * changed it since (same state, same lease number, still indexed): out
 * of the queue, its lease and holder back, its error, progress and times;
 * else memory stays ahead of the store and the job's next write carries
 * its whole status. hub_undo_free frees what undo owns. */
void hub_undo_begin(const job_record *job, job_undo *undo);
void hub_undo_made(const job_record *job, job_undo *undo);
void hub_undo_failed(job_hub *hub, job_record *job, job_undo *undo);
void hub_undo_free(job_undo *undo);

/* hub_store_failure turns a failed write's status (JOB_STORE_*) into the
 * answer's code, and writes its cause into why: RESOURCE_EXHAUSTED for a
 * disk full, UNAVAILABLE for other I/O errors, INTERNAL for a write the
 * store refused alone. */
rpc_status_code hub_store_failure(job_hub *hub, int status, char *why,
                                  size_t why_size);

/* hub_save writes job's changing part with an event (actor, worker_idx,
 * detail; none when from_state is the job's state) and optionally its
 * result; done may be NULL (not awaited). A lease not yet written goes
 * with it, first. */
int hub_save(job_hub *hub, job_record *job, int from_state, const char *actor,
             const char *detail, const uint8_t *result, size_t result_size,
             job_store_done_fn done, void *arg);

/* hub_after_writes runs done(0, arg) once every write of job made so far
 * is durable: at once when none is pending, else after a write of the
 * job as it is (writes are committed in order). done gets -1 if that
 * write fails. Returns 0, or -1 (the store refused: done is not run). */
int hub_after_writes(job_hub *hub, job_record *job, job_store_done_fn done,
                     void *arg);

/* hub_save_lease writes job's lease if it is not written yet: before a
 * change of the fields its event is made of (worker_idx, started_us). */
void hub_save_lease(job_hub *hub, job_record *job);

/* hub_set_state moves job to state, keeping the pools' counters. */
void hub_set_state(job_hub *hub, job_record *job, int state);

/* hub_requeue puts a job back in the queue (after delay_us) and wakes
 * workers; hub_release_lease detaches it from its holder first. */
void hub_requeue(job_hub *hub, job_record *job, int64_t delay_us);
void hub_unqueue(job_hub *hub, job_record *job); /* out of its queue */
void hub_release_lease(job_hub *hub, job_record *job);

/* hub_actor_of_worker writes History's actor for a worker,
 * "worker:<worker_idx>". */
#define HUB_ACTOR_SIZE 28
void hub_actor_of_worker(uint64_t worker_idx, char actor[HUB_ACTOR_SIZE]);

/* hub_backoff_us is the wait before attempt number attempts + 1. */
int64_t hub_backoff_us(job_hub *hub, uint32_t attempts);

/* hub_finish_job ends a leased job as DONE or FAILED (by its worker) or
 * CANCELLED, telling the holder when cancelled. */
void hub_cancel_lease(job_hub *hub, job_record *job);

/* hub_notify tells the watchers of job (and matching filter watchers)
 * its new state; ends single-job watches after a final state. */
void hub_notify(job_hub *hub, job_record *job);

/* hub_pump gives queued jobs to worker while it has room; hub_wake_worker
 * does it before the core loop next sleeps. */
void hub_pump(job_hub *hub, hub_worker *worker);
void hub_wake_worker(job_hub *hub, hub_worker *worker);

/* hub_lease_to hands job (already out of the queue) to worker: attempt,
 * lease, store; appends the Assignment to out. Returns 0 or -1. */
int hub_lease_to(job_hub *hub, hub_worker *worker, job_record *job,
                 rpc_buffer *out);

/* hub_store_behind tells whether HUB_MAX_WRITES_PENDING writes wait for
 * the store: workers then get no new jobs until it catches up, so what
 * waits for it (and the memory it holds) stays bounded when workers
 * finish jobs faster than the disk takes their results. */
#define HUB_MAX_WRITES_PENDING 20000
bool hub_store_behind(const job_hub *hub);

/* hub_hold_lease makes worker the holder of job's lease (IN_PROGRESS,
 * held by no one): it counts toward its capacity and goes back to the
 * queue if it leaves. */
void hub_hold_lease(hub_worker *worker, job_record *job);

/* hub_requeue_unacknowledged puts back in the queue every job worker
 * holds that it never acknowledged (Started, heartbeat, progress, result):
 * at once, the attempt not counted (the lease number stays used, so a
 * late result of that lease is refused). For a Connect stream that ended.
 * Returns how many. */
uint32_t hub_requeue_unacknowledged(job_hub *hub, hub_worker *worker);

/* hub_worker_pause gives worker no new jobs until until_us (a time of
 * the wall clock); then a Connect worker that is not draining goes live
 * (its caller keeps it out of the routing tables meanwhile) and is woken. */
void hub_worker_pause(job_hub *hub, hub_worker *worker, int64_t until_us);

/* hub_fill_lease_secret writes LEASE_SECRET_SIZE random bytes from the
 * OS (getrandom, read in batches) into secret. Returns 0, or -1 when the
 * OS gives none (logged). */
int hub_fill_lease_secret(job_hub *hub, uint8_t *secret);

/* hub_take_job pops the best queued job for worker, or NULL. */
job_record *hub_take_job(job_hub *hub, hub_worker *worker);

/* Workers: registration and liveness. */
hub_worker *hub_worker_new(job_hub *hub, uint64_t worker_idx, uint32_t pool_id,
                           const uint32_t *job_type_ids, size_t n,
                           rpc_status_code *code, char *why, size_t why_size);
void hub_worker_set_live(job_hub *hub, hub_worker *worker, bool live);
void hub_worker_remove(job_hub *hub, hub_worker *worker);
int hub_worker_pack(const hub_worker *worker, rpc_buffer *out);

/* hub_job_is_final tells whether state is DONE, FAILED or CANCELLED. */
bool hub_state_is_final(int state);
const char *hub_state_name(int state);

/* The services' handler tables. */
extern const struct jobhub_v1_jobs_handlers hub_jobs_handlers;
extern const struct jobhub_v1_workers_handlers hub_workers_handlers;

/* Stream plumbing for the services (hub_streams.c): the core's end of
 * every stream at shutdown. */
void hub_workers_close_all(job_hub *hub);
void hub_watchers_close_all(job_hub *hub);
void hub_queries_fail_all(job_hub *hub, hub_worker *worker);

/* Worker penalties (services/workers.c): hub_penalties_expire forgets
 * those whose last drop and pause are long past (housekeeping);
 * hub_penalties_free frees them all (at close). */
void hub_penalties_expire(job_hub *hub, int64_t now_us);
void hub_penalties_free(job_hub *hub);

#endif
