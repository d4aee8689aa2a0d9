/* watchers.c: Watch fan-out: a job's change goes to its watchers and to
 * the filter watchers it matches. */
#include <string.h>

#include "rpc/log.h"
#include "server/core/hub_state.h"
#include "server/core/job_table.h"
#include "server/core/mailbox.h"
#include "server/core/watchers.h"

/* Watchers. */

static bool watcher_matches(const job_watcher *w, const job_record *job) {
  const Jobhub__V1__WatchRequest *f = &w->filter;
  return (f->state == JOBHUB__V1__JOB_STATE__JOB_STATE_UNSPECIFIED ||
          (int)f->state == job->state) &&
         (f->any_pool || f->pool_id == job->pool_id) &&
         (f->any_job_type || f->job_type_id == job->job_type_id) &&
         (w->subject == NULL ||
          strcmp(w->subject, job_record_subject(job)) == 0);
}

void hub_notify(job_hub *hub, job_record *job) {
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
