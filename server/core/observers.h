/* observers.h: the core's events and who hears them: a job changed (a
 * state transition, or its progress), a worker joined or left the
 * registry, the hub stops serving. Watch fan-out hears them here, and so
 * will webhooks, metrics and the dashboard.
 *
 * Observers run on the core thread, inside the change, with every job and
 * worker as the core holds them: they must not block (no disk, no
 * network, no lock another thread may hold long; post such work to
 * another thread), must not free what they are given, and must not
 * subscribe or unsubscribe while an event is being told. An empty list
 * costs a loop over zero entries. */
#ifndef JOBHUB_SERVER_CORE_OBSERVERS_H
#define JOBHUB_SERVER_CORE_OBSERVERS_H

#include <stddef.h>

#include "server/core/hub.h"
#include "server/core/job_record.h"

struct hub_worker;

/* One subscriber: any callback may be NULL (not interested); arg is given
 * back to each. */
typedef struct hub_observer {
  /* job is in its new state (job->state); from_state is the state before
   * (JOB_STATE_UNSPECIFIED for a Submit). Equal states: its progress
   * changed. */
  void (*job_changed)(job_hub *hub, job_record *job, int from_state, void *arg);
  /* A worker was registered (Register, Add, a Connect hello or Lease of a
   * new worker_idx). */
  void (*worker_joined)(job_hub *hub, struct hub_worker *worker, void *arg);
  /* A worker leaves the registry (its stream ended, Delete, silent too
   * long); it is freed after the observers ran. */
  void (*worker_left)(job_hub *hub, struct hub_worker *worker, void *arg);
  /* The hub stops serving (hub_stop_streams): end the streams and calls
   * the observer holds; later requests are refused by the core. */
  void (*stopping)(job_hub *hub, void *arg);
  void *arg;
} hub_observer;

/* The subscribers, in the order they subscribed. */
typedef struct hub_observers {
  hub_observer *list; /* owned */
  size_t count;
} hub_observers;

/* hub_observe subscribes a copy of observer. Call it before the server
 * serves (so no event is being told): a hub with its own core thread
 * changes the list on the core, a hub on a shared loop (not started yet)
 * at once. Returns 0, or -1 (no memory: not subscribed). */
int hub_observe(job_hub *hub, const hub_observer *observer);

/* hub_observers_add appends a copy of observer to observers (on the core
 * thread, or before it runs). Returns 0, or -1 (no memory). */
int hub_observers_add(hub_observers *observers, const hub_observer *observer);

/* hub_notify tells every observer that job changed from from_state to
 * job->state (or, equal, that its progress changed). */
void hub_notify(job_hub *hub, job_record *job, int from_state);

/* hub_notify_worker_joined, hub_notify_worker_left and
 * hub_notify_stopping tell every observer of those events. */
void hub_notify_worker_joined(job_hub *hub, struct hub_worker *worker);
void hub_notify_worker_left(job_hub *hub, struct hub_worker *worker);
void hub_notify_stopping(job_hub *hub);

/* hub_observers_free frees the list (at close). */
void hub_observers_free(hub_observers *observers);

#endif
