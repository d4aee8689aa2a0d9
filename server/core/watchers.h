/* watchers.h: Watch fan-out on the core thread: a job's change goes to
 * the Watch calls on that job and to the filter watchers it matches. */
#ifndef JOBHUB_SERVER_CORE_WATCHERS_H
#define JOBHUB_SERVER_CORE_WATCHERS_H

#include "jobhub/v1/jobs.pb-c.h"
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

/* hub_notify tells the watchers of job (and matching filter watchers)
 * its new state; ends single-job watches after a final state. */
void hub_notify(job_hub *hub, job_record *job);

#endif
