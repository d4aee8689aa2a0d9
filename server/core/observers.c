/* observers.c: the core's subscribers and the telling of events. */
#include "server/core/observers.h"

#include <stdbool.h>
#include <stdlib.h>

#include "server/core/hub_state.h"
#include "server/core/mailbox.h"

typedef struct subscription {
  const hub_observer *observer;
  int rv;
} subscription;

int hub_observers_add(hub_observers *observers, const hub_observer *observer) {
  hub_observer *grown = realloc(observers->list, (observers->count + 1) *
                                                     sizeof(*observers->list));
  if (grown == NULL) {
    return -1;
  }
  observers->list = grown;
  observers->list[observers->count++] = *observer;
  return 0;
}

static void subscribe(job_hub *hub, void *arg) {
  subscription *s = arg;
  s->rv = hub_observers_add(&hub->observers, s->observer);
}

int hub_observe(job_hub *hub, const hub_observer *observer) {
  subscription s = {observer, -1};
  hub_configure(hub, subscribe, &s);
  return s.rv;
}

void hub_notify(job_hub *hub, job_record *job, int from_state) {
  const hub_observers *observers = &hub->observers;
  for (size_t i = 0; i < observers->count; i++) {
    const hub_observer *o = &observers->list[i];
    if (o->job_changed != NULL) {
      o->job_changed(hub, job, from_state, o->arg);
    }
  }
}

static void tell_worker(job_hub *hub, struct hub_worker *worker, bool joined) {
  const hub_observers *observers = &hub->observers;
  for (size_t i = 0; i < observers->count; i++) {
    const hub_observer *o = &observers->list[i];
    void (*fn)(job_hub *, struct hub_worker *, void *) =
        joined ? o->worker_joined : o->worker_left;
    if (fn != NULL) {
      fn(hub, worker, o->arg);
    }
  }
}

void hub_notify_worker_joined(job_hub *hub, struct hub_worker *worker) {
  tell_worker(hub, worker, true);
}

void hub_notify_worker_left(job_hub *hub, struct hub_worker *worker) {
  tell_worker(hub, worker, false);
}

void hub_notify_stopping(job_hub *hub) {
  const hub_observers *observers = &hub->observers;
  for (size_t i = 0; i < observers->count; i++) {
    const hub_observer *o = &observers->list[i];
    if (o->stopping != NULL) {
      o->stopping(hub, o->arg);
    }
  }
}

void hub_observers_free(hub_observers *observers) {
  free(observers->list);
  observers->list = NULL;
  observers->count = 0;
}
