/* watchers.c: Watch calls' core halves and their fan-out: a job's change
 * (heard as an observer) goes to the job's watchers and to the filter
 * watchers it matches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/log.h"
#include "server/core/hub_state.h"
#include "server/core/job_table.h"
#include "server/core/mailbox.h"
#include "server/core/observers.h"
#include "server/core/watchers.h"

static bool watcher_matches(const job_watcher *w, const job_record *job) {
  const Jobhub__V1__WatchRequest *f = &w->filter;
  return (f->state == JOBHUB__V1__JOB_STATE__JOB_STATE_UNSPECIFIED ||
          (int)f->state == job->state) &&
         (f->any_pool || f->pool_id == job->pool_id) &&
         (f->any_job_type || f->job_type_id == job->job_type_id) &&
         (w->subject == NULL ||
          strcmp(w->subject, job_record_subject(job)) == 0);
}

/* The job_changed observer: the job's watchers and the filter watchers it
 * matches get the job as it is now. */
static void watchers_job_changed(job_hub *hub, job_record *job, int from_state,
                                 void *arg) {
  (void)from_state;
  (void)arg;
  bool any = job->watchers != NULL;
  for (job_watcher *w = hub->filter_watchers; w != NULL && !any; w = w->next) {
    any = watcher_matches(w, job);
  }
  if (!any) {
    return; /* nobody to tell: no packing */
  }
  rpc_buffer packed;
  rpc_buffer_init(&packed);
  if (job_record_pack(job, &packed) != 0) {
    rpc_log(RPC_LOG_ERROR, "watch_failed", "job=%s error=\"out of memory\"",
            job->id);
    return;
  }
  for (job_watcher *w = hub->filter_watchers; w != NULL; w = w->next) {
    if (watcher_matches(w, job)) {
      (void)core_stream_send(hub, &w->stream, packed.data, packed.len);
    }
  }
  bool final = hub_state_is_final(job->state);
  job_watcher *w = job->watchers;
  if (final) {
    job->watchers = NULL;
  }
  while (w != NULL) {
    job_watcher *next = w->next;
    if (core_stream_send(hub, &w->stream, packed.data, packed.len) != 0 &&
        !w->stream.sent_final && !w->stream.got_closed) {
      core_stream_finish(hub, &w->stream, RPC_STATUS_RESOURCE_EXHAUSTED,
                         "out of memory");
    }
    if (final) {
      w->job = NULL;
      w->next = NULL;
      core_stream_finish(hub, &w->stream, RPC_STATUS_OK, NULL);
    }
    w = next;
  }
  rpc_buffer_free(&packed);
}

static void free_watcher(job_watcher *w) {
  free(w->subject);
  free(w);
}

static void unlink_watcher(job_watcher **list, job_watcher *w) {
  for (job_watcher **at = list; *at != NULL; at = &(*at)->next) {
    if (*at == w) {
      *at = w->next;
      w->next = NULL;
      return;
    }
  }
}

static void watcher_closed(job_hub *hub, core_stream *stream) {
  job_watcher *w = (job_watcher *)stream;
  if (w->job != NULL) {
    unlink_watcher(&w->job->watchers, w);
    w->job = NULL;
  } else {
    unlink_watcher(&hub->filter_watchers, w);
  }
  core_stream_finish(hub, stream, RPC_STATUS_OK, NULL);
  free_watcher(w);
}

static void watcher_opened(job_hub *hub, core_stream *stream) {
  job_watcher *w = (job_watcher *)stream;
  if (hub->closing) {
    core_stream_finish(hub, stream, RPC_STATUS_UNAVAILABLE,
                       "the hub is shutting down");
    return;
  }
  if (w->filter.id[0] == '\0') {
    w->next = hub->filter_watchers;
    hub->filter_watchers = w;
    return;
  }
  job_record *job = hub_find_job(hub, w->filter.id);
  if (job == NULL) {
    char message[128];
    snprintf(message, sizeof(message), "no job with id \"%s\"", w->filter.id);
    core_stream_finish(hub, stream, RPC_STATUS_NOT_FOUND, message);
    return;
  }
  rpc_buffer_reset(&hub->scratch);
  if (job_record_pack(job, &hub->scratch) != 0 ||
      core_stream_send(hub, stream, hub->scratch.data, hub->scratch.len) != 0) {
    core_stream_finish(hub, stream, RPC_STATUS_RESOURCE_EXHAUSTED,
                       "out of memory");
    return;
  }
  if (hub_state_is_final(job->state)) {
    core_stream_finish(hub, stream, RPC_STATUS_OK, NULL);
    return;
  }
  w->job = job;
  w->next = job->watchers;
  job->watchers = w;
}

void hub_watch(job_hub *hub, rpc_call *call,
               const Jobhub__V1__WatchRequest *request) {
  job_watcher *w = calloc(1, sizeof(*w));
  if (w == NULL) {
    rpc_call_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  /* The request is freed with the call, which the loop may finish first:
   * the core keeps copies. */
  w->filter = *request;
  w->filter.id = w->id;
  w->filter.subject = NULL; /* w->subject holds it */
  if (strlen(request->id) >= sizeof(w->id) ||
      (request->subject[0] != '\0' &&
       (w->subject = strdup(request->subject)) == NULL)) {
    free_watcher(w);
    if (strlen(request->id) >= sizeof(w->id)) {
      rpc_call_finishf(call, RPC_STATUS_NOT_FOUND, "no job with id \"%s\"",
                       request->id);
    } else {
      rpc_call_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    }
    return;
  }
  memcpy(w->id, request->id, strlen(request->id) + 1);
  w->stream.on_closed = watcher_closed;
  if (loop_stream_open(hub, call, &w->stream, watcher_opened, false) != 0) {
    free_watcher(w);
    rpc_call_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
}

/* The stopping observer: every Watch ends UNAVAILABLE. */
static void watchers_stopping(job_hub *hub, void *arg) {
  (void)arg;
  for (job_record *job = hub->first_job; job != NULL; job = job->next) {
    for (job_watcher *w = job->watchers; w != NULL; w = w->next) {
      core_stream_finish(hub, &w->stream, RPC_STATUS_UNAVAILABLE,
                         "the hub is shutting down");
    }
  }
  for (job_watcher *w = hub->filter_watchers; w != NULL; w = w->next) {
    core_stream_finish(hub, &w->stream, RPC_STATUS_UNAVAILABLE,
                       "the hub is shutting down");
  }
}

void hub_watchers_job_dropped(job_hub *hub, job_record *job) {
  char message[96];
  snprintf(message, sizeof(message), "job %s was not stored", job->id);
  for (job_watcher *w = job->watchers; w != NULL;) {
    job_watcher *next = w->next;
    w->job = NULL;
    w->next = NULL;
    core_stream_finish(hub, &w->stream, RPC_STATUS_NOT_FOUND, message);
    w = next;
  }
  job->watchers = NULL;
}

int hub_watchers_init(job_hub *hub) {
  hub_observer observer = {.job_changed = watchers_job_changed,
                           .stopping = watchers_stopping};
  return hub_observers_add(&hub->observers, &observer);
}
