/* hub.c: the hub's life: open (store, recovery, core thread), stop the
 * streams, close. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/log.h"
#include "server/core/dispatch.h"
#include "server/core/hub.h"
#include "server/core/hub_state.h"
#include "server/core/leases.h"
#include "server/core/mailbox.h"
#include "server/core/observers.h"
#include "server/core/penalties.h"
#include "server/core/persist.h"
#include "server/core/recovery.h"
#include "server/core/registry.h"
#include "server/core/watchers.h"

static void hub_free(job_hub *hub) {
  if (hub == NULL) {
    return;
  }
  job_store_close(hub->store);
  for (job_record *job = hub->first_job; job != NULL;) {
    job_record *next = job->next;
    job_record_free(job);
    job = next;
  }
  while (hub->dropped != NULL) {
    job_record *next = hub->dropped->next;
    job_record_free(hub->dropped);
    hub->dropped = next;
  }
  hub_registry_free(hub);
  job_index_free(hub->jobs_by_id);
  hash_table_free(hub->jobs_by_key);
  hash_table_free(hub->pools);
  hash_table_free(hub->workers);
  hub_observers_free(&hub->observers);
  if (hub->penalties != NULL) {
    hub_penalties_free(hub);
    hash_table_free(hub->penalties);
  }
  job_queue_free(hub->queue);
  deadline_heap_free(&hub->leases);
  free(hub->pumps);
  rpc_buffer_free(&hub->scratch);
  if (hub->core != NULL) {
    struct ev_loop *loop = hub->loop;
    ev_timer_stop(loop, &hub->lease_timer);
    ev_timer_stop(loop, &hub->delay_timer);
    ev_timer_stop(loop, &hub->housekeeping);
    ev_timer_stop(loop, &hub->lease_writer);
    ev_prepare_stop(loop, &hub->pumper);
    if (hub->owns_core) {
      rpc_loop_thread_free(hub->core);
    }
  }
  free(hub);
}

job_hub *hub_open(const hub_options *options, char *err, size_t err_size) {
  job_hub *hub = calloc(1, sizeof(*hub));
  if (hub == NULL) {
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  hub->options = *options;
  snprintf(hub->data_dir, sizeof(hub->data_dir), "%s", options->data_dir);
  hub->options.data_dir = hub->data_dir;
  hub->next_sequence = 1;
  hub->rng = (uint32_t)time_now_us();
  rpc_buffer_init(&hub->scratch);
  deadline_heap_init(&hub->leases);
  hub->owns_core = options->loop_thread == NULL;
  hub->core = hub->owns_core ? rpc_loop_thread_new(NULL) : options->loop_thread;
  hub->queue = job_queue_new();
  hub->jobs_by_id = job_index_new();
  hub->jobs_by_key = hash_table_new();
  hub->pools = hash_table_new();
  hub->workers = hash_table_new();
  hub->penalties = hash_table_new();
  hub->random_used = sizeof(hub->random); /* read at the first lease */
  if (hub->core == NULL || hub->queue == NULL || hub->jobs_by_id == NULL ||
      hub->jobs_by_key == NULL || hub->pools == NULL || hub->workers == NULL ||
      hub->penalties == NULL || hub_watchers_init(hub) != 0) {
    snprintf(err, err_size, "out of memory");
    hub_free(hub);
    return NULL;
  }
  hub->loop = rpc_loop_thread_loop(hub->core);
  ev_timer_init(&hub->lease_timer, hub_on_lease_timer, 0, 0);
  hub->lease_timer.data = hub;
  ev_timer_init(&hub->delay_timer, hub_on_delay_timer, 0, 0);
  hub->delay_timer.data = hub;
  ev_timer_init(&hub->housekeeping, hub_on_housekeeping, 1, 1);
  hub->housekeeping.data = hub;
  ev_timer_init(&hub->lease_writer, hub_on_lease_writer, LEASE_WRITE_DELAY, 0);
  hub->lease_writer.data = hub;
  ev_prepare_init(&hub->pumper, hub_on_prepare);
  hub->pumper.data = hub;

  hub->store =
      job_store_open(options->store, hub->data_dir, hub->loop, err, err_size);
  if (hub->store == NULL) {
    hub_free(hub);
    return NULL;
  }
  job_store_on_written(hub->store, hub_on_job_written, hub);
  hub->store_writable = true;
  job_store_on_writable(hub->store, hub_on_store_turned, hub);
  if (hub_recover(hub, err, err_size) != 0) {
    hub_free(hub);
    return NULL;
  }
  hub_arm_lease_timer(hub);
  hub_arm_delay_timer(hub,
                      job_queue_promote(hub->queue, time_now_us(), NULL, NULL));
  ev_timer_start(hub->loop, &hub->housekeeping);
  ev_prepare_start(hub->loop, &hub->pumper);
  if (!hub->owns_core) {
    return hub; /* its owner starts the loop */
  }
  int rv = rpc_loop_thread_start(hub->core, "hub-core");
  if (rv != 0) {
    snprintf(err, err_size, "cannot start the core thread: %s", strerror(rv));
    hub_free(hub);
    return NULL;
  }
  return hub;
}

size_t hub_job_count(const job_hub *hub) { return hub->job_count; }

const hub_options *hub_options_of(const job_hub *hub) { return &hub->options; }

struct ev_loop *hub_loop(job_hub *hub) {
  return hub->loop;
}

rpc_buffer *hub_scratch(job_hub *hub) { return &hub->scratch; }

bool hub_is_closing(const job_hub *hub) { return hub->closing; }

static void stop_streams(job_hub *hub, void *arg) {
  (void)arg;
  hub->closing = true;
  hub_notify_stopping(hub);
}

void hub_stop_streams(job_hub *hub) {
  hub_run_on_core(hub, stop_streams, NULL);
}

typedef struct store_listener {
  void (*fn)(bool writable, void *arg);
  void *arg;
} store_listener;

static void set_store_listener(job_hub *hub, void *arg) {
  const store_listener *listener = arg;
  hub->store_listener = listener->fn;
  hub->store_listener_arg = listener->arg;
  if (!hub->store_writable && !hub->closing && listener->fn != NULL) {
    listener->fn(false, listener->arg);
  }
}

void hub_on_store_writable(job_hub *hub, void (*fn)(bool writable, void *arg),
                           void *arg) {
  store_listener listener = {fn, arg};
  hub_run_on_core(hub, set_store_listener, &listener);
}

/* Leases not yet written go to the store before it closes. */
static void flush_leases(job_hub *hub) {
  hub_on_lease_writer(hub->loop, &hub->lease_writer, 0);
}

static void break_core(job_hub *hub, void *arg) {
  (void)arg;
  flush_leases(hub);
  ev_break(hub->loop, EVBREAK_ALL);
}

void hub_close(job_hub *hub) {
  if (hub == NULL) {
    return;
  }
  if (hub->owns_core) {
    hub_run_on_core(hub, break_core, NULL);
    rpc_loop_thread_join(hub->core);
  } else {
    flush_leases(hub); /* the shared loop has stopped: this thread owns it */
  }
  rpc_log(RPC_LOG_INFO, "store_closing", "commits=%llu writes=%llu",
          (unsigned long long)job_store_commits(hub->store),
          (unsigned long long)job_store_writes(hub->store));
  hub_free(hub);
}
