/* watchers.h: Watch calls' core halves and their fan-out, on the core
 * thread: a job's change (an observer's event) goes to the Watch calls on
 * that job and to the filter watchers it matches. */
#ifndef JOBHUB_SERVER_CORE_WATCHERS_H
#define JOBHUB_SERVER_CORE_WATCHERS_H

#include "jobhub/v1/jobs.pb-c.h"
#include "rpc/call.h"
#include "server/core/hub.h"
#include "server/core/job_record.h"
#include "server/core/mailbox.h"

/* A Watch call's core half. */
typedef struct job_watcher {
  core_stream stream;
  struct job_watcher *next;        /* on the job, or in the filter list */
  job_record *job;                 /* NULL: a filter watcher */
  Jobhub__V1__WatchRequest filter; /* copied scalars */
  char id[JOB_ID_SIZE];
  char *subject; /* owned; NULL: any */
} job_watcher;

/* hub_watch (loop) serves a Watch call: the core half (a copy of the
 * request) goes to the core, which sends the job as it is and then each
 * change (a filter watch: every change of a matching job); a single-job
 * watch ends OK after a final state, NOT_FOUND for an unknown id. Out of
 * memory: the call is finished RESOURCE_EXHAUSTED. */
void hub_watch(job_hub *hub, rpc_call *call,
               const Jobhub__V1__WatchRequest *request);

/* hub_watchers_job_dropped ends the watches of a job whose Submit was not
 * stored with NOT_FOUND. */
void hub_watchers_job_dropped(job_hub *hub, job_record *job);

/* hub_watchers_init subscribes the Watch fan-out to the hub's observers
 * (at open). Returns 0, or -1 (no memory). */
int hub_watchers_init(job_hub *hub);

#endif
