/* hub_state.h: the hub core's state, one struct that the files of
 * server/core/ share: they are one state machine on the core thread and
 * may call each other. Nothing outside server/core/ reads it. */
#ifndef JOBHUB_SERVER_CORE_HUB_STATE_H
#define JOBHUB_SERVER_CORE_HUB_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "common/deadline_heap.h"
#include "common/hash_table.h"
#include "rpc/buffer.h"
#include "rpc/loop_thread.h"
#include "server/core/hub.h"
#include "server/core/job_index.h"
#include "server/core/job_queue.h"
#include "server/core/job_record.h"
#include "server/core/mailbox.h"
#include "server/core/observers.h"
#include "server/core/registry.h"
#include "server/core/watchers.h"
#include "server/core/worker_wire.h"
#include "server/store/store.h"

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
  hub_observers observers;     /* told of job and worker events */
  hub_worker_wire worker_wire; /* the Workers service's encoders */
};

#endif
