/* hub.h: the job hub: every job, worker, lease, queue and watcher, owned
 * by one core thread (its own libev loop, or the server's only loop).
 * The services (server/services/) post requests to it from the server's
 * loop threads; the core answers by posting back to the call's loop, and
 * tells its events to the observers that subscribed (observers.h). Durable
 * state lives in the store (store.h), whose completions run on the core.
 * docs/core-design.md has the design and the settled semantics. */
#ifndef JOBHUB_SERVER_CORE_HUB_H
#define JOBHUB_SERVER_CORE_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/buffer.h"
#include "rpc/loop_thread.h"

typedef struct job_hub job_hub;
struct job_store_ops;

/* --max-worker-capacity's default. */
#define HUB_DEFAULT_MAX_WORKER_CAPACITY 1024

typedef struct hub_options {
  const char *data_dir;      /* the store's folder */
  uint32_t lease_seconds;    /* default lease */
  uint32_t max_attempts;     /* default attempts */
  uint32_t retry_backoff_ms; /* first retry delay; doubles */
  double worker_timeout;     /* s before a silent unary worker leaves */
  /* Largest capacity (Register, Connect hello) and Lease max_jobs a
   * worker gets; more is clamped. 0: HUB_DEFAULT_MAX_WORKER_CAPACITY. */
  uint32_t max_worker_capacity;
  /* NULL: the core gets a thread of its own. Else the core runs on this
   * loop thread, which someone else starts (the server, as its only
   * loop), stops before hub_close and frees after it. */
  rpc_loop_thread *loop_thread;
  /* The store's operations (server/store/store.h), opened on data_dir:
   * jobhubd's are job_store_sqlite_ops (server/store/sqlite.h). */
  const struct job_store_ops *store;
} hub_options;

/* hub_open opens the store, recovers every job and starts the core thread
 * (unless options->loop_thread is set: its owner starts it). Returns NULL
 * with a message in err. */
job_hub *hub_open(const hub_options *options, char *err, size_t err_size);

/* hub_stop_streams ends Connect, Watch and waiting Lease calls and makes
 * every later request UNAVAILABLE, so that the server's shutdown does not
 * wait for them; leases stay (workers re-send results after a restart).
 * Returns once the core has done it. */
void hub_stop_streams(job_hub *hub);

/* hub_close flushes the store, stops the core and frees everything; after
 * the server has shut down (a shared loop thread has then stopped). */
void hub_close(job_hub *hub);

/* hub_on_store_writable sets fn to run (on the core thread) whenever the
 * store turns not writable (a write failed: disk full, I/O error) or
 * writable again, and at once if it is not writable now; how jobhubd
 * reports NOT_SERVING. Not run once the hub is closing. Returns once set. */
void hub_on_store_writable(job_hub *hub, void (*fn)(bool writable, void *arg),
                           void *arg);

/* hub_job_count returns how many jobs the hub holds (for logs, and on the
 * core thread exactly). */
size_t hub_job_count(const job_hub *hub);

/* hub_options_of returns the options the hub was opened with; they do not
 * change, so any thread may read them. */
const hub_options *hub_options_of(const job_hub *hub);

/* On the core thread: hub_loop is the core's libev loop (for the timers
 * of calls the core holds); hub_scratch a buffer of the core's to reset
 * and use until the next call into the core; hub_is_closing tells whether
 * the hub stopped serving (hub_stop_streams): new streams are refused. */
struct ev_loop *hub_loop(job_hub *hub);
rpc_buffer *hub_scratch(job_hub *hub);
bool hub_is_closing(const job_hub *hub);

#endif
