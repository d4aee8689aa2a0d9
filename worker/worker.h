/* worker.h: a jobhub worker: one Workers.Connect stream to a hub, on a
 * libev loop, running the jobs the hub pushes with a module. It
 * heartbeats every lease it holds, keeps each result until the hub acks
 * it as durable (re-sending it after a reconnect), reconnects with
 * exponential backoff when the stream ends, keeps a little state per
 * subject for GetSubjectState, and drains on request: it tells the hub to
 * send no more, finishes what runs, and stops. */
#ifndef JOBHUB_WORKER_WORKER_H
#define JOBHUB_WORKER_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "jobhub/v1/workers.pb-c.h"

struct ev_loop;

typedef struct worker worker;
typedef struct worker_job worker_job;

/* A module runs jobs. start begins one and the job ends later, exactly
 * once, with worker_job_succeed or worker_job_fail (possibly from inside
 * start), unless it is cancelled first. */
typedef struct worker_module {
  const char *name;
  /* Sets up what the module shares across jobs (its state, owned by it)
   * from config (the --module-config text, may be NULL). May be NULL.
   * Returns 0, or -1 with a message in err: the worker does not start. */
  int (*open)(struct ev_loop *loop, const char *config, void **state, char *err,
              size_t err_size);
  /* Frees the state, after every job ended or was cancelled. May be NULL. */
  void (*close)(void *state);
  /* Returns 0, or -1 with a message in err: the job fails at once with it
   * (not retryable). */
  int (*start)(worker_job *job, char *err, size_t err_size);
  /* Stops a started job that has not ended (the hub cancelled it, or the
   * worker is freed); the module never ends it afterwards. */
  void (*cancel)(worker_job *job);
} worker_module;

typedef struct worker_options {
  const char *address;   /* "host:port" */
  SSL_CTX *tls;          /* NULL: h2c; borrowed */
  const char *token;     /* "authorization: Bearer <token>", or NULL */
  const char *basic;     /* "user:password" sent as Basic auth, or NULL
                            (not with token) */
  const char *client_id; /* required */
  const char *hostname;  /* may be NULL */
  uint32_t pool_id;
  const uint32_t *job_type_ids; /* copied */
  size_t n_job_type_ids;        /* at least 1 */
  uint32_t capacity;            /* jobs at once; at least 1 */
  const worker_module *module;  /* borrowed */
  const char *module_config;    /* given to module->open; may be NULL */
  double backoff_initial;       /* s before the first reconnect */
  double backoff_max;           /* s: the longest wait */
} worker_options;

/* worker_new makes a worker on loop (not connected yet). Returns NULL with
 * a message in err. */
worker *worker_new(struct ev_loop *loop, const worker_options *options,
                   char *err, size_t err_size);

/* worker_start connects; the loop does the rest. */
void worker_start(worker *w);

/* worker_drain asks the hub for no more jobs, lets the running ones
 * finish and their results be acked, then closes the stream:
 * worker_stopped turns true and on_stopped (if set) runs. */
void worker_drain(worker *w, void (*on_stopped)(worker *w, void *arg),
                  void *arg);

/* worker_stopped tells whether a drain is complete. */
bool worker_stopped(const worker *w);

/* worker_free cancels what runs and frees the worker. */
void worker_free(worker *w);

/* For modules. */

/* The job as assigned (owned by the worker job), its lease id, the loop,
 * and the module's state (from its open). */
const Jobhub__V1__Job *worker_job_job(const worker_job *job);
const char *worker_job_lease_id(const worker_job *job);
struct ev_loop *worker_job_loop(const worker_job *job);
void *worker_job_module_state(const worker_job *job);

/* A pointer the module keeps with the job. */
void *worker_job_data(const worker_job *job);
void worker_job_set_data(worker_job *job, void *data);

/* worker_job_succeed ends the job with result (packed and kept until the
 * hub acks it; result->job_id is filled in). worker_job_fail ends it with
 * error. Either frees the worker job: the module must not touch it again. */
void worker_job_succeed(worker_job *job, const Jobhub__V1__JobResult *result);
void worker_job_fail(worker_job *job, const char *error, bool retryable);

/* worker_job_progress reports progress (0..1) and a message (may be NULL). */
void worker_job_progress(worker_job *job, double progress, const char *message);

#endif
