/* hub_core.c: the core thread's state: jobs, queue, leases, workers'
 * routing, watchers, recovery, and the calls and streams between the
 * loops and the core. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "jobhub/v1/jobs.rpc.h"
#include "jobhub/v1/workers.rpc.h"
#include "rpc/log.h"
#include "server/core/hub_internal.h"
#include "server/core/ids.h"

#define JOB_OF_ENTRY(e)                                                        \
  ((job_record *)(void *)((char *)(e)-offsetof(job_record, entry)))
#define JOB_OF_LEASE(e)                                                        \
  ((job_record *)(void *)((char *)(e)-offsetof(job_record, lease)))

/* The longest wait between attempts. */
#define MAX_BACKOFF_US (300 * 1000000LL)

/* Calls between the loops and the core. */

static void hub_call_free(hub_call *hc) {
  hub_undo_free(&hc->undo);
  rpc_buffer_free(&hc->answer);
  free(hc->data);
  free(hc);
}

static void core_undelivered(struct ev_loop *loop, void *arg) {
  (void)loop;
  hub_call *hc = arg;
  hc->undelivered(hc->hub, hc);
  hub_call_free(hc);
}

/* On the call's loop: send the answer and finish. */
static void loop_deliver(struct ev_loop *loop, void *arg) {
  (void)loop;
  hub_call *hc = arg;
  if (hc->code != RPC_STATUS_OK) {
    rpc_call_finish(hc->call, hc->code, hc->message);
    hub_call_free(hc);
    return;
  }
  int rv = rpc_call_send_packed(hc->call, hc->answer.data, hc->answer.len);
  if (rv == RPC_CALL_ERR_TOO_LARGE || rv == RPC_CALL_ERR_NOMEM) {
    rpc_call_finish(hc->call, RPC_STATUS_RESOURCE_EXHAUSTED,
                    rv == RPC_CALL_ERR_TOO_LARGE ? "response message too large"
                                                 : "out of memory");
  } else {
    rpc_call_finish(hc->call, RPC_STATUS_OK, NULL);
  }
  if (rv != 0 && hc->undelivered != NULL) {
    /* What the answer gave away (leased jobs) goes back at once. */
    hc->call = NULL;
    hc->task.fn = core_undelivered;
    rpc_loop_thread_post(hc->hub->core, &hc->task);
    return;
  }
  hub_call_free(hc);
}

static void core_run(struct ev_loop *loop, void *arg) {
  (void)loop;
  hub_call *hc = arg;
  if (hc->hub->closing) {
    hub_call_fail(hc->hub, hc, RPC_STATUS_UNAVAILABLE,
                  "the hub is shutting down");
    return;
  }
  hc->run(hc->hub, hc);
}

void hub_call_post(job_hub *hub, rpc_call *call, const void *request,
                   hub_call_fn run, hub_call_fn undelivered, uint8_t *data,
                   size_t data_size) {
  hub_call *hc = calloc(1, sizeof(*hc));
  if (hc == NULL) {
    free(data);
    rpc_call_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  hc->hub = hub;
  hc->call = call;
  hc->loop_thread = rpc_call_loop_thread(call);
  hc->request = request;
  hc->run = run;
  hc->undelivered = undelivered;
  hc->data = data;
  hc->data_size = data_size;
  rpc_buffer_init(&hc->answer);
  hc->task = (rpc_loop_task){core_run, hc, false, NULL};
  rpc_loop_thread_post(hub->core, &hc->task);
}

void hub_call_answer(job_hub *hub, hub_call *hc) {
  (void)hub;
  hc->code = RPC_STATUS_OK;
  hc->task.fn = loop_deliver;
  rpc_loop_thread_post(hc->loop_thread, &hc->task);
}

void hub_call_fail(job_hub *hub, hub_call *hc, rpc_status_code code,
                   const char *fmt, ...) {
  (void)hub;
  va_list args;
  va_start(args, fmt);
  vsnprintf(hc->message, sizeof(hc->message), fmt, args);
  va_end(args);
  hc->code = code;
  hc->task.fn = loop_deliver;
  rpc_loop_thread_post(hc->loop_thread, &hc->task);
}

/* Streams: the loop half. */

struct loop_stream {
  job_hub *hub;
  rpc_call *call; /* NULL once finished */
  core_stream *core;
  bool sent_closed;
  rpc_loop_task final_task; /* posted by the core, once */
  rpc_status_code final_code;
  char final_message[200];
};

typedef struct stream_message {
  rpc_loop_task task;
  job_hub *hub;
  loop_stream *loop; /* core to loop */
  core_stream *core; /* loop to core */
  void (*opened)(job_hub *hub, core_stream *stream);
  ProtobufCMessage *message; /* loop to core: the client's, owned */
  size_t size;
  uint8_t data[]; /* core to loop: the packed message */
} stream_message;

static void core_stream_closed(struct ev_loop *loop, void *arg);

static void loop_send_closed(loop_stream *ls) {
  if (!ls->sent_closed) {
    ls->sent_closed = true;
    rpc_loop_thread_post(ls->hub->core, &ls->core->closed_task);
  }
}

static void loop_stream_final(struct ev_loop *loop, void *arg) {
  (void)loop;
  loop_stream *ls = arg;
  if (ls->call != NULL) {
    rpc_call_finish(ls->call, ls->final_code,
                    ls->final_message[0] ? ls->final_message : NULL);
    ls->call = NULL;
  }
  loop_send_closed(ls);
  free(ls);
}

static void loop_stream_send(struct ev_loop *loop, void *arg) {
  (void)loop;
  stream_message *m = arg;
  if (m->loop->call != NULL) {
    /* A failed send means the call is gone; its cancel hook tells the
     * core. */
    (void)rpc_call_send_packed(m->loop->call, m->data, m->size);
  }
}

static void free_carried_message(void *arg) {
  stream_message *m = arg;
  if (m->message != NULL) {
    protobuf_c_message_free_unpacked(m->message, NULL);
    m->message = NULL;
  }
}

static void core_stream_message(struct ev_loop *loop, void *arg) {
  (void)loop;
  stream_message *m = arg;
  if (m->opened != NULL) {
    m->opened(m->hub, m->core);
  } else if (m->core->on_message != NULL && !m->core->sent_final) {
    m->core->on_message(m->hub, m->core, m->message);
  }
  free_carried_message(m);
}

static void core_stream_closed(struct ev_loop *loop, void *arg) {
  (void)loop;
  core_stream *cs = arg;
  cs->got_closed = true;
  cs->on_closed(cs->hub, cs);
}

/* The message is ours (takes_messages): it goes to the core as it is. */
static void on_stream_message(rpc_call *call, const ProtobufCMessage *message,
                              void *arg) {
  loop_stream *ls = arg;
  ProtobufCMessage *owned = (ProtobufCMessage *)message;
  if (ls->sent_closed) {
    protobuf_c_message_free_unpacked(owned, NULL);
    return;
  }
  stream_message *m = malloc(sizeof(*m));
  if (m == NULL) {
    protobuf_c_message_free_unpacked(owned, NULL);
    rpc_call_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    ls->call = NULL;
    loop_send_closed(ls);
    return;
  }
  *m = (stream_message){
      {core_stream_message, m, true, NULL, free_carried_message},
      ls->hub,
      NULL,
      ls->core,
      NULL,
      owned,
      0};
  rpc_loop_thread_post(ls->hub->core, &m->task);
}

static void on_stream_half_close(rpc_call *call, void *arg) {
  (void)call;
  loop_send_closed(arg);
}

static void on_stream_cancel(rpc_call *call, rpc_status_code reason,
                             void *arg) {
  (void)reason;
  loop_stream *ls = arg;
  rpc_call_finish(call, RPC_STATUS_CANCELLED, NULL); /* only releases */
  ls->call = NULL;
  loop_send_closed(ls);
}

int loop_stream_open(job_hub *hub, rpc_call *call, core_stream *stream,
                     void (*opened)(job_hub *hub, core_stream *stream),
                     bool client_streams) {
  loop_stream *ls = calloc(1, sizeof(*ls));
  stream_message *m = malloc(sizeof(*m));
  if (ls == NULL || m == NULL) {
    free(ls);
    free(m);
    return -1;
  }
  ls->hub = hub;
  ls->call = call;
  ls->core = stream;
  ls->final_task = (rpc_loop_task){loop_stream_final, ls, false, NULL};
  stream->hub = hub;
  stream->loop = ls;
  stream->loop_thread = rpc_call_loop_thread(call);
  stream->closed_task =
      (rpc_loop_task){core_stream_closed, stream, false, NULL};
  rpc_call_hooks hooks = {
      .takes_messages = true,
      .on_message = client_streams ? on_stream_message : NULL,
      .on_half_close = client_streams ? on_stream_half_close : NULL,
      .on_cancel = on_stream_cancel,
  };
  rpc_call_set_hooks(call, &hooks, ls);
  *m = (stream_message){{core_stream_message, m, true, NULL, NULL},
                        hub,
                        NULL,
                        stream,
                        opened,
                        NULL,
                        0};
  rpc_loop_thread_post(hub->core, &m->task);
  return 0;
}

/* Streams: the core half. */

int core_stream_send(job_hub *hub, core_stream *stream, const uint8_t *data,
                     size_t size) {
  (void)hub;
  if (stream->sent_final || stream->got_closed) {
    return -1;
  }
  stream_message *m = malloc(sizeof(*m) + size);
  if (m == NULL) {
    return -1;
  }
  *m = (stream_message){{loop_stream_send, m, true, NULL, NULL},
                        hub,
                        stream->loop,
                        NULL,
                        NULL,
                        NULL,
                        size};
  memcpy(m->data, data, size);
  rpc_loop_thread_post(stream->loop_thread, &m->task);
  return 0;
}

void core_stream_finish(job_hub *hub, core_stream *stream, rpc_status_code code,
                        const char *message) {
  (void)hub;
  if (stream->sent_final) {
    return;
  }
  stream->sent_final = true;
  loop_stream *ls = stream->loop;
  ls->final_code = code;
  snprintf(ls->final_message, sizeof(ls->final_message), "%s",
           message != NULL ? message : "");
  rpc_loop_thread_post(stream->loop_thread, &ls->final_task);
}

/* Lookups. */

job_record *hub_find_job(job_hub *hub, const char *id) {
  uint64_t sequence;
  if (job_id_parse(id, &sequence) != 0) {
    return NULL;
  }
  return job_index_get(hub->jobs_by_id, sequence);
}

static bool job_has_key(const void *value, const void *key) {
  return strcmp(job_record_key(value), key) == 0;
}

job_record *hub_find_job_by_key(job_hub *hub, const char *key) {
  return hash_table_find(hub->jobs_by_key, hash_bytes(key, strlen(key)),
                         job_has_key, key);
}

static bool pool_has_idx(const void *value, const void *key) {
  return ((const hub_pool *)value)->pool_idx == *(const uint32_t *)key;
}

hub_pool *hub_pool_get(job_hub *hub, uint32_t pool_idx, bool create) {
  hub_pool *pool =
      hash_table_find(hub->pools, hash_u64(pool_idx), pool_has_idx, &pool_idx);
  if (pool != NULL || !create) {
    return pool;
  }
  pool = calloc(1, sizeof(*pool));
  if (pool == NULL || (pool->router = subject_router_new()) == NULL ||
      hash_table_insert(hub->pools, hash_u64(pool_idx), pool) != 0) {
    if (pool != NULL) {
      subject_router_free(pool->router);
    }
    free(pool);
    return NULL;
  }
  pool->pool_idx = pool_idx;
  return pool;
}

static bool worker_has_idx(const void *value, const void *key) {
  return ((const hub_worker *)value)->worker_idx == *(const uint64_t *)key;
}

hub_worker *hub_find_worker(job_hub *hub, uint64_t worker_idx) {
  return hash_table_find(hub->workers, hash_u64(worker_idx), worker_has_idx,
                         &worker_idx);
}

/* States. */

bool hub_state_is_final(int state) {
  return state == JOBHUB__V1__JOB_STATE__DONE ||
         state == JOBHUB__V1__JOB_STATE__FAILED ||
         state == JOBHUB__V1__JOB_STATE__CANCELLED;
}

const char *hub_state_name(int state) {
  switch (state) {
  case JOBHUB__V1__JOB_STATE__QUEUED:
    return "QUEUED";
  case JOBHUB__V1__JOB_STATE__IN_PROGRESS:
    return "IN_PROGRESS";
  case JOBHUB__V1__JOB_STATE__DONE:
    return "DONE";
  case JOBHUB__V1__JOB_STATE__FAILED:
    return "FAILED";
  case JOBHUB__V1__JOB_STATE__CANCELLED:
    return "CANCELLED";
  default:
    return "JOB_STATE_UNSPECIFIED";
  }
}

static uint64_t *state_counter(hub_pool *pool, int state) {
  switch (state) {
  case JOBHUB__V1__JOB_STATE__QUEUED:
    return &pool->queued;
  case JOBHUB__V1__JOB_STATE__IN_PROGRESS:
    return &pool->in_progress;
  case JOBHUB__V1__JOB_STATE__DONE:
    return &pool->done;
  case JOBHUB__V1__JOB_STATE__FAILED:
    return &pool->failed;
  default:
    return NULL;
  }
}

static void count_state(job_hub *hub, const job_record *job, int state,
                        int delta) {
  hub_pool *pool = hub_pool_get(hub, job->entry.pool_idx, true);
  uint64_t *counter = pool != NULL ? state_counter(pool, state) : NULL;
  if (counter != NULL) {
    *counter += (uint64_t)(int64_t)delta;
  }
}

void hub_set_state(job_hub *hub, job_record *job, int state) {
  count_state(hub, job, job->state, -1);
  job->state = state;
  count_state(hub, job, state, 1);
  if (state == JOBHUB__V1__JOB_STATE__DONE && job->started_us != 0) {
    hub_pool *pool = hub_pool_get(hub, job->entry.pool_idx, false);
    if (pool != NULL) {
      pool->run_seconds += (double)(job->finished_us - job->started_us) / 1e6;
    }
  }
}

/* The store. */

static int wake_each_worker(void *value, void *arg);

/* A dropped job by sequence (the list is empty but after a failed
 * Submit write). */
static job_record *dropped_job(job_hub *hub, uint64_t sequence) {
  for (job_record *job = hub->dropped; job != NULL; job = job->next) {
    if (job->entry.sequence == sequence) {
      return job;
    }
  }
  return NULL;
}

/* Frees the dropped jobs whose writes have all completed: no write's
 * callback can reach them any more. */
static void free_dropped(job_hub *hub) {
  job_record **at = &hub->dropped;
  while (*at != NULL) {
    job_record *job = *at;
    if (job->writes_pending == 0) {
      *at = job->next;
      job_record_free(job);
    } else {
      at = &job->next;
    }
  }
}

static void on_job_written(uint64_t sequence, void *arg) {
  job_hub *hub = arg;
  job_record *job = job_index_get(hub->jobs_by_id, sequence);
  if (job == NULL && hub->dropped != NULL) {
    job = dropped_job(hub, sequence);
  }
  if (job != NULL && job->writes_pending > 0) {
    job->writes_pending--;
  }
  bool was_behind = hub_store_behind(hub);
  hub->writes_pending--;
  if (was_behind && !hub_store_behind(hub)) {
    hash_table_each(hub->workers, wake_each_worker, hub);
  }
}

static void on_store_writable(bool writable, void *arg) {
  job_hub *hub = arg;
  hub->store_writable = writable;
  if (!hub->closing && hub->store_listener != NULL) {
    hub->store_listener(writable, hub->store_listener_arg);
  }
}

rpc_status_code hub_store_failure(job_hub *hub, int status, char *why,
                                  size_t why_size) {
  char cause[200];
  job_store_error(hub->store, cause, sizeof(cause));
  switch (status) {
  case JOB_STORE_FULL:
    snprintf(why, why_size, "disk full: %s", cause);
    return RPC_STATUS_RESOURCE_EXHAUSTED;
  case JOB_STORE_IO:
    snprintf(why, why_size, "the store cannot write: %s", cause);
    return RPC_STATUS_UNAVAILABLE;
  default:
    snprintf(why, why_size, "the store refused the write: %s", cause);
    return RPC_STATUS_INTERNAL;
  }
}

/* A lease's write waits this long for the job's next write (its result,
 * usually) to go with it: one row write instead of two. A crash in that
 * time loses the lease, not the job: it is queued again at the restart,
 * the attempt not counted, and the worker's late result is refused. */
#define LEASE_WRITE_DELAY 0.05 /* s */

static void unsaved_unlink(job_hub *hub, job_record *job) {
  if (job->unsaved_prev != NULL) {
    job->unsaved_prev->unsaved_next = job->unsaved_next;
  } else {
    hub->unsaved_leases = job->unsaved_next;
  }
  if (job->unsaved_next != NULL) {
    job->unsaved_next->unsaved_prev = job->unsaved_prev;
  }
  job->unsaved_prev = job->unsaved_next = NULL;
  job->lease_unsaved = false;
}

int hub_save(job_hub *hub, job_record *job, int from_state, const char *actor,
             const char *detail, const uint8_t *result, size_t result_size,
             job_store_done_fn done, void *arg) {
  rpc_buffer_reset(&hub->scratch);
  if (job_record_pack_status(job, &hub->scratch) != 0) {
    return -1;
  }
  stored_job stored = {
      .sequence = job->entry.sequence,
      .state = job->state,
      .not_before_us = job->entry.not_before_us,
      .lease_expires_us = job->state == JOBHUB__V1__JOB_STATE__IN_PROGRESS
                              ? job->lease.due_us
                              : 0,
      .status = hub->scratch.data,
      .status_size = hub->scratch.len,
      .result = result,
      .result_size = result_size,
      .leases = job->leases,
  };
  memcpy(stored.lease_secret, job->lease_secret, sizeof(stored.lease_secret));
  stored_event event = {
      .from_state = from_state,
      .to_state = job->state,
      .time_us = time_now_us(),
      .actor = actor,
      .worker_idx = job->worker_idx,
      .detail = detail,
  };
  const stored_event *events = from_state != job->state ? &event : NULL;
  char lease_actor[HUB_ACTOR_SIZE];
  stored_event lease = {
      .next = events,
      .from_state = JOBHUB__V1__JOB_STATE__QUEUED,
      .to_state = JOBHUB__V1__JOB_STATE__IN_PROGRESS,
      .time_us = job->started_us,
      .actor = lease_actor,
      .worker_idx = job->worker_idx,
  };
  if (job->lease_unsaved) {
    hub_actor_of_worker(job->worker_idx, lease_actor);
    events = &lease;
  }
  int rv = job_store_save_job(hub->store, &stored, events, done, arg);
  if (rv != 0) {
    rpc_log(RPC_LOG_ERROR, "store_write_refused", "job=%s", job->id);
    return rv;
  }
  job->writes_pending++;
  hub->writes_pending++;
  if (job->lease_unsaved) {
    unsaved_unlink(hub, job);
  }
  return 0;
}

int hub_after_writes(job_hub *hub, job_record *job, job_store_done_fn done,
                     void *arg) {
  if (job->writes_pending == 0 && !job->lease_unsaved) {
    done(0, arg);
    return 0;
  }
  return hub_save(hub, job, job->state, NULL, NULL, NULL, 0, done, arg);
}

void hub_save_lease(job_hub *hub, job_record *job) {
  if (job->lease_unsaved) {
    (void)hub_save(hub, job, job->state, NULL, NULL, NULL, 0, NULL, NULL);
  }
}

static void on_lease_writer(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  job_hub *hub = timer->data;
  while (hub->unsaved_leases != NULL) {
    job_record *job = hub->unsaved_leases;
    if (hub_save(hub, job, job->state, NULL, NULL, NULL, 0, NULL, NULL) != 0) {
      unsaved_unlink(hub, job); /* logged; it is not retried forever */
    }
  }
}

/* Marks job's new lease to be written with its next write, or by the
 * lease writer. */
static void defer_lease_write(job_hub *hub, job_record *job) {
  if (job->lease_unsaved) {
    hub_save_lease(hub, job); /* an older lease first */
  }
  job->lease_unsaved = true;
  job->unsaved_prev = NULL;
  job->unsaved_next = hub->unsaved_leases;
  if (hub->unsaved_leases != NULL) {
    hub->unsaved_leases->unsaved_prev = job;
  }
  hub->unsaved_leases = job;
  if (!ev_is_active(&hub->lease_writer)) {
    ev_timer_set(&hub->lease_writer, LEASE_WRITE_DELAY, 0);
    ev_timer_start(hub->loop, &hub->lease_writer);
  }
}

/* A transition nobody waits for: still written, in order. */
static void save_quietly(job_hub *hub, job_record *job, int from_state,
                         const char *actor, const char *detail) {
  (void)hub_save(hub, job, from_state, actor, detail, NULL, 0, NULL, NULL);
}

static int index_job(job_hub *hub, job_record *job) {
  if (job_index_put(hub->jobs_by_id, job->entry.sequence, job) != 0) {
    return -1;
  }
  if (job->key_size > 0 &&
      hash_table_insert(hub->jobs_by_key,
                        hash_bytes(job_record_key(job), job->key_size),
                        job) != 0) {
    job_index_remove(hub->jobs_by_id, job->entry.sequence);
    return -1;
  }
  job->prev = hub->last_job;
  if (hub->last_job != NULL) {
    hub->last_job->next = job;
  } else {
    hub->first_job = job;
  }
  hub->last_job = job;
  hub->job_count++;
  return 0;
}

void hub_drop_job(job_hub *hub, job_record *job) {
  rpc_log(RPC_LOG_WARN, "job_not_stored", "job=%s state=%s", job->id,
          hub_state_name(job->state));
  if (job->state == JOBHUB__V1__JOB_STATE__QUEUED) {
    hub_unqueue(hub, job);
  } else if (job->state == JOBHUB__V1__JOB_STATE__IN_PROGRESS) {
    hub_cancel_lease(hub, job); /* as Cancel does: the worker stops */
    hub_release_lease(hub, job);
  }
  if (job->lease_unsaved) {
    unsaved_unlink(hub, job);
  }
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
  count_state(hub, job, job->state, -1);
  job->state = JOBHUB__V1__JOB_STATE__JOB_STATE_UNSPECIFIED;
  job_index_remove(hub->jobs_by_id, job->entry.sequence);
  if (job->key_size > 0) {
    (void)hash_table_remove(
        hub->jobs_by_key, hash_bytes(job_record_key(job), job->key_size), job);
  }
  if (job->prev != NULL) {
    job->prev->next = job->next;
  } else {
    hub->first_job = job->next;
  }
  if (job->next != NULL) {
    job->next->prev = job->prev;
  } else {
    hub->last_job = job->prev;
  }
  hub->job_count--;
  job->prev = NULL;
  job->next = hub->dropped;
  hub->dropped = job;
}

static void arm_lease_timer(job_hub *hub);

void hub_undo_begin(const job_record *job, job_undo *undo) {
  *undo = (job_undo){
      .set = true,
      .from_state = job->state,
      .to_state = job->state,
      .leases = job->leases,
      .worker_idx = job->worker_idx,
      .finished_us = job->finished_us,
      .lease_due_us = job->lease.due_us,
      .not_before_us = job->entry.not_before_us,
      .progress = job->progress,
      .error = job->error != NULL ? strdup(job->error) : NULL,
      .lease_unsaved = job->lease_unsaved,
  };
  if (job->error != NULL && undo->error == NULL) {
    undo->set = false; /* no memory: not undone */
  }
}

void hub_undo_made(const job_record *job, job_undo *undo) {
  undo->to_state = job->state;
}

void hub_undo_free(job_undo *undo) {
  free(undo->error);
  undo->error = NULL;
  undo->set = false;
}

void hub_undo_failed(job_hub *hub, job_record *job, job_undo *undo) {
  if (!undo->set ||
      job_index_get(hub->jobs_by_id, job->entry.sequence) != job ||
      job->state != undo->to_state || job->leases != undo->leases ||
      (undo->from_state != JOBHUB__V1__JOB_STATE__QUEUED &&
       undo->from_state != JOBHUB__V1__JOB_STATE__IN_PROGRESS)) {
    return; /* changed since: its next write carries it */
  }
  rpc_log(RPC_LOG_WARN, "transition_undone", "job=%s state=%s back_to=%s",
          job->id, hub_state_name(job->state),
          hub_state_name(undo->from_state));
  if (job->state == JOBHUB__V1__JOB_STATE__QUEUED) {
    hub_unqueue(hub, job);
  }
  free(job->error);
  job->error = undo->error;
  undo->error = NULL;
  job->finished_us = undo->finished_us;
  job->entry.not_before_us = undo->not_before_us; /* a retry's backoff */
  job->progress = undo->progress;
  job->worker_idx = undo->worker_idx;
  hub_set_state(hub, job, undo->from_state);
  if (undo->from_state == JOBHUB__V1__JOB_STATE__QUEUED) {
    hub_requeue(hub, job, 0); /* its not_before stands */
  } else {
    /* The lease runs to its expiry again, held by its worker if that is
     * still here (a worker told to cancel has let it go: the lease then
     * expires). */
    job->lease.due_us = undo->lease_due_us;
    if (deadline_heap_push(&hub->leases, &job->lease) == 0 &&
        deadline_heap_first(&hub->leases) == &job->lease) {
      arm_lease_timer(hub);
    }
    hub_worker *holder = hub_find_worker(hub, job->worker_idx);
    if (holder != NULL) {
      hub_hold_lease(holder, job);
    }
    if (undo->lease_unsaved && !job->lease_unsaved) {
      defer_lease_write(hub, job); /* its event was in the failed write */
    }
  }
  hub_notify(hub, job);
}

/* A job indexed but never stored leaves no trace (hub_drop_job); the
 * caller answers with an error. */
static job_record *hub_submit_refused(job_hub *hub, job_record *job) {
  rpc_log(RPC_LOG_ERROR, "store_write_refused", "job=%s", job->id);
  hub_drop_job(hub, job);
  return NULL;
}

job_record *hub_submit(job_hub *hub, const Jobhub__V1__SubmitRequest *request,
                       const uint8_t *fixed, size_t fixed_size,
                       uint32_t max_attempts, job_store_done_fn done,
                       void *arg) {
  uint32_t pool_idx = 0;
  (void)pool_idx_pack(request->pool_id, request->job_type_id, &pool_idx);
  job_record *job = job_record_new(hub->next_sequence, fixed, fixed_size,
                                   request->subject, request->idempotency_key);
  if (job == NULL) {
    return NULL;
  }
  job->entry.priority = request->priority;
  job->entry.pool_idx = pool_idx;
  job->pool_id = request->pool_id;
  job->job_type_id = request->job_type_id;
  job->max_attempts = max_attempts;
  job->lease_seconds = request->lease_seconds;
  job->created_us = time_now_us();
  if (request->not_before != NULL) {
    job->entry.not_before_us = request->not_before->seconds * 1000000 +
                               request->not_before->nanos / 1000;
  }
  job->state = JOBHUB__V1__JOB_STATE__JOB_STATE_UNSPECIFIED;
  if (index_job(hub, job) != 0) {
    job_record_free(job);
    return NULL;
  }
  hub->next_sequence++;
  hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__QUEUED);
  rpc_buffer_reset(&hub->scratch);
  if (job_record_pack_status(job, &hub->scratch) != 0) {
    return hub_submit_refused(hub, job);
  }
  stored_job stored = {
      .sequence = job->entry.sequence,
      .state = job->state,
      .pool_id = job->pool_id,
      .job_type_id = job->job_type_id,
      .priority = job->entry.priority,
      .not_before_us = job->entry.not_before_us,
      .created_us = job->created_us,
      .idempotency_key = job_record_key(job),
      .subject = job_record_subject(job),
      .lease_seconds = job->lease_seconds,
      .max_attempts = job->max_attempts,
      .job = fixed,
      .job_size = fixed_size,
      .status = hub->scratch.data,
      .status_size = hub->scratch.len,
  };
  stored_event event = {
      .from_state = JOBHUB__V1__JOB_STATE__JOB_STATE_UNSPECIFIED,
      .to_state = job->state,
      .time_us = job->created_us,
      .actor = "client",
  };
  if (job_store_save_job(hub->store, &stored, &event, done, arg) != 0) {
    return hub_submit_refused(hub, job);
  }
  job->writes_pending++;
  hub->writes_pending++;
  /* Queued before it is durable, for latency: the Submit is answered only
   * once it is, and a crash before then loses a job nobody was told of. */
  hub_requeue(hub, job, 0);
  hub_notify(hub, job);
  return job;
}

/* The queue and the workers. */

void hub_actor_of_worker(uint64_t worker_idx, char actor[HUB_ACTOR_SIZE]) {
  memcpy(actor, "worker:", 7);
  (void)decimal_format(worker_idx, actor + 7);
}

int64_t hub_backoff_us(job_hub *hub, uint32_t attempts) {
  int64_t delay = (int64_t)hub->options.retry_backoff_ms * 1000;
  for (uint32_t i = 1; i < attempts && delay < MAX_BACKOFF_US; i++) {
    delay *= 2;
  }
  if (delay > MAX_BACKOFF_US) {
    delay = MAX_BACKOFF_US;
  }
  /* Jitter in [0.5, 1]: retries of a burst do not come back together. */
  hub->rng = hub->rng * 1664525u + 1013904223u;
  return delay / 2 +
         (int64_t)((double)(delay / 2) * (hub->rng >> 8) / (double)(1u << 24));
}

static bool worker_has_room(const job_hub *hub, const hub_worker *worker) {
  if (worker->pending_lease != NULL) {
    return true;
  }
  return worker->conn != NULL && !worker->draining &&
         worker->paused_until_us == 0 && worker->running < worker->capacity &&
         !hub_store_behind(hub);
}

bool hub_store_behind(const job_hub *hub) {
  return hub->writes_pending >= HUB_MAX_WRITES_PENDING;
}

/* Wakes every worker that may have room: the store caught up. */
static int wake_each_worker(void *value, void *arg) {
  hub_worker *worker = value;
  job_hub *hub = arg;
  if (worker->live && worker_has_room(hub, worker)) {
    hub_wake_worker(hub, worker);
  }
  return 0;
}

/* Wakes a worker that can take a job of pool_idx just made ready. */
static void wake_pool(job_hub *hub, uint32_t pool_idx, const job_record *job) {
  hub_pool *pool = hub_pool_get(hub, pool_idx, false);
  if (pool == NULL || pool->n_live == 0) {
    return;
  }
  if (job != NULL && job->subject_size > 0) {
    uint64_t owner_idx;
    if (subject_router_lookup(pool->router, job_record_subject(job),
                              job->subject_size, &owner_idx) == 0) {
      hub_worker *owner = hub_find_worker(hub, owner_idx);
      if (owner != NULL) {
        hub_wake_worker(hub, owner);
        return;
      }
    }
  }
  for (size_t i = 0; i < pool->n_live; i++) {
    hub_worker *worker = pool->live[(pool->next_worker + i) % pool->n_live];
    if (worker_has_room(hub, worker)) {
      pool->next_worker = (pool->next_worker + i + 1) % pool->n_live;
      hub_wake_worker(hub, worker);
      return;
    }
  }
}

static void on_promoted(uint32_t pool_idx, void *arg) {
  wake_pool(arg, pool_idx, NULL);
}

static void arm_delay_timer(job_hub *hub, int64_t next_us) {
  ev_timer_stop(hub->loop, &hub->delay_timer);
  if (next_us != INT64_MAX) {
    double wait = (double)(next_us - time_now_us()) / 1e6;
    ev_timer_set(&hub->delay_timer, wait > 0 ? wait : 0, 0);
    ev_timer_start(hub->loop, &hub->delay_timer);
  }
}

static void on_delay_timer(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  job_hub *hub = timer->data;
  arm_delay_timer(
      hub, job_queue_promote(hub->queue, time_now_us(), on_promoted, hub));
}

static int queue_push(job_queue *queue, job_record *job, int64_t now) {
  job->queued_in = queue;
  return job_queue_push(queue, &job->entry, now);
}

void hub_unqueue(job_hub *hub, job_record *job) {
  (void)hub;
  if (job->entry.queued) {
    job_queue_remove(job->queued_in, &job->entry);
  }
}

void hub_requeue(job_hub *hub, job_record *job, int64_t delay_us) {
  int64_t now = time_now_us();
  if (delay_us > 0) {
    job->entry.not_before_us = now + delay_us;
  }
  if (queue_push(hub->queue, job, now) != 0) {
    /* Out of memory: the job stays QUEUED in the store and comes back at
     * the next start; say so rather than lose track of it silently. */
    rpc_log(RPC_LOG_ERROR, "queue_push_failed", "job=%s", job->id);
    return;
  }
  if (job->entry.delayed) {
    ev_tstamp remaining = ev_timer_remaining(hub->loop, &hub->delay_timer);
    int64_t due = now + (int64_t)(remaining * 1e6);
    if (!ev_is_active(&hub->delay_timer) || job->entry.not_before_us < due) {
      arm_delay_timer(hub, job->entry.not_before_us);
    }
    return;
  }
  wake_pool(hub, job->entry.pool_idx, job);
}

/* Is a better than b: higher priority, then older. */
static bool entry_before(const job_queue_entry *a, const job_queue_entry *b) {
  if (b == NULL) {
    return true;
  }
  return a->priority != b->priority ? a->priority > b->priority
                                    : a->sequence < b->sequence;
}

job_record *hub_take_job(job_hub *hub, hub_worker *worker) {
  job_queue_entry *best = NULL;
  job_queue *best_queue = NULL;
  int64_t now = time_now_us();
  for (size_t t = 0; t < worker->n_job_types; t++) {
    uint32_t pool_idx;
    if (pool_idx_pack(worker->pool_id, worker->job_type_ids[t], &pool_idx) !=
        0) {
      continue;
    }
    hub_pool *pool = hub_pool_get(hub, pool_idx, false);
    /* Subject jobs at the head of the shared queue go to their owners'
     * own queues; the first one this worker owns (or any job without a
     * subject) is a candidate. */
    job_queue_entry *head;
    while ((head = job_queue_peek(hub->queue, pool_idx)) != NULL) {
      job_record *job = JOB_OF_ENTRY(head);
      uint64_t owner_idx;
      if (job->subject_size == 0 || pool == NULL ||
          subject_router_lookup(pool->router, job_record_subject(job),
                                job->subject_size, &owner_idx) != 0 ||
          owner_idx == worker->worker_idx) {
        break;
      }
      hub_worker *owner = hub_find_worker(hub, owner_idx);
      if (owner == NULL) {
        break; /* a stale table; never strand the job */
      }
      job_queue_pop(hub->queue, pool_idx);
      if (queue_push(owner->sticky, job, now) != 0) {
        (void)queue_push(hub->queue, job, now); /* room was there */
        break;
      }
      hub_wake_worker(hub, owner);
    }
    if (head != NULL && entry_before(head, best)) {
      best = head;
      best_queue = hub->queue;
    }
    job_queue_entry *own = job_queue_peek(worker->sticky, pool_idx);
    if (own != NULL && entry_before(own, best)) {
      best = own;
      best_queue = worker->sticky;
    }
  }
  if (best == NULL) {
    return NULL;
  }
  job_queue_remove(best_queue, best);
  return JOB_OF_ENTRY(best);
}

static void arm_lease_timer(job_hub *hub) {
  deadline_heap_entry *first = deadline_heap_first(&hub->leases);
  ev_timer_stop(hub->loop, &hub->lease_timer);
  if (first != NULL) {
    double wait = (double)(first->due_us - time_now_us()) / 1e6;
    ev_timer_set(&hub->lease_timer, wait > 0 ? wait : 0, 0);
    ev_timer_start(hub->loop, &hub->lease_timer);
  }
}

void hub_hold_lease(hub_worker *worker, job_record *job) {
  job->holder = worker;
  job->run_prev = NULL;
  job->run_next = worker->running_jobs;
  if (worker->running_jobs != NULL) {
    worker->running_jobs->run_prev = job;
  }
  worker->running_jobs = job;
  worker->running++;
}

int hub_lease_to(job_hub *hub, hub_worker *worker, job_record *job,
                 rpc_buffer *out) {
  int64_t now = time_now_us();
  uint32_t seconds =
      job->lease_seconds ? job->lease_seconds : hub->options.lease_seconds;
  if (hub_fill_lease_secret(hub, job->lease_secret) != 0) {
    return -1;
  }
  job->lease_acknowledged = false;
  job->attempts++;
  job->leases++;
  job->started_us = now;
  job->worker_idx = worker->worker_idx;
  job->progress = 0;
  (void)job_record_set_text(&job->progress_message, NULL);
  job->lease.due_us = now + (int64_t)seconds * 1000000;
  if (deadline_heap_push(&hub->leases, &job->lease) != 0) {
    job->attempts--;
    return -1;
  }
  if (deadline_heap_first(&hub->leases) == &job->lease) {
    arm_lease_timer(hub);
  }
  hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__IN_PROGRESS);
  hub_hold_lease(worker, job);

  defer_lease_write(hub, job);
  hub_notify(hub, job);

  /* Assignment { job, lease_id, lease_expires_at } */
  char lease_id[LEASE_ID_SIZE];
  lease_id_format(job, lease_id);
  Google__Protobuf__Timestamp expires = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  expires.seconds = job->lease.due_us / 1000000;
  expires.nanos = (int32_t)(job->lease.due_us % 1000000) * 1000;
  Jobhub__V1__Assignment rest = JOBHUB__V1__ASSIGNMENT__INIT;
  rest.lease_id = lease_id;
  rest.lease_expires_at = &expires;
  rpc_buffer_reset(&hub->scratch);
  if (job_record_pack(job, &hub->scratch) != 0 ||
      pb_append_bytes_field(out, 1, hub->scratch.data, hub->scratch.len) != 0 ||
      pb_append_message(out, &rest.base) != 0) {
    return -1;
  }
  return 0;
}

void hub_release_lease(job_hub *hub, job_record *job) {
  if (job->lease.queued) {
    deadline_heap_remove(&hub->leases, &job->lease);
  }
  hub_worker *holder = job->holder;
  if (holder == NULL) {
    return;
  }
  if (job->run_prev != NULL) {
    job->run_prev->run_next = job->run_next;
  } else {
    holder->running_jobs = job->run_next;
  }
  if (job->run_next != NULL) {
    job->run_next->run_prev = job->run_prev;
  }
  job->run_prev = job->run_next = NULL;
  job->holder = NULL;
  holder->running--;
  hub_wake_worker(hub, holder); /* it has room again */
}

/* Tells the holder of a lease that it is void: on its stream, or in its
 * next Heartbeat. */
void hub_cancel_lease(job_hub *hub, job_record *job) {
  hub_worker *holder = job->holder;
  /* A unary worker learns it from its next Heartbeat, which finds the
   * lease's job no longer IN_PROGRESS. */
  if (holder == NULL || holder->conn == NULL) {
    return;
  }
  char lease_id[LEASE_ID_SIZE];
  lease_id_format(job, lease_id);
  Jobhub__V1__JobCancellation cancel = JOBHUB__V1__JOB_CANCELLATION__INIT;
  cancel.job_id = job->id;
  cancel.lease_id = lease_id;
  Jobhub__V1__HubMessage message = JOBHUB__V1__HUB_MESSAGE__INIT;
  message.message_case = JOBHUB__V1__HUB_MESSAGE__MESSAGE_CANCEL;
  message.cancel = &cancel;
  rpc_buffer_reset(&hub->scratch);
  if (pb_append_message(&hub->scratch, &message.base) == 0) {
    (void)core_stream_send(hub, &holder->conn->stream, hub->scratch.data,
                           hub->scratch.len);
  }
}

static void on_lease_timer(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  job_hub *hub = timer->data;
  int64_t now = time_now_us();
  deadline_heap_entry *first;
  while ((first = deadline_heap_first(&hub->leases)) != NULL &&
         first->due_us <= now) {
    job_record *job = JOB_OF_LEASE(first);
    hub_cancel_lease(hub, job);
    hub_release_lease(hub, job);
    int from = job->state;
    if (job->attempts < job->max_attempts) {
      hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__QUEUED);
      save_quietly(hub, job, from, "hub", "lease expired");
      hub_requeue(hub, job, hub_backoff_us(hub, job->attempts));
    } else {
      job->finished_us = now;
      (void)job_record_set_text(&job->error,
                                "lease expired on the last attempt");
      hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__FAILED);
      save_quietly(hub, job, from, "hub", "lease expired on the last attempt");
    }
    hub_notify(hub, job);
  }
  arm_lease_timer(hub);
}

/* Pumping: workers with room take jobs, batched before the loop sleeps. */

void hub_wake_worker(job_hub *hub, hub_worker *worker) {
  if (worker->pump_scheduled) {
    return;
  }
  if (hub->n_pumps == hub->pumps_capacity) {
    size_t capacity = hub->pumps_capacity ? hub->pumps_capacity * 2 : 64;
    hub_worker **grown = realloc(hub->pumps, capacity * sizeof(*grown));
    if (grown == NULL) {
      hub_pump(hub, worker); /* at once rather than never */
      return;
    }
    hub->pumps = grown;
    hub->pumps_capacity = capacity;
  }
  worker->pump_scheduled = true;
  hub->pumps[hub->n_pumps++] = worker;
}

static void unschedule_pump(job_hub *hub, hub_worker *worker) {
  for (size_t i = 0; worker->pump_scheduled && i < hub->n_pumps; i++) {
    if (hub->pumps[i] == worker) {
      hub->pumps[i] = hub->pumps[--hub->n_pumps];
      worker->pump_scheduled = false;
    }
  }
}

static void on_prepare(struct ev_loop *loop, ev_prepare *prepare, int events) {
  (void)loop;
  (void)events;
  job_hub *hub = prepare->data;
  if (hub->dropped != NULL) {
    free_dropped(hub);
  }
  /* Pumping may schedule more (subject jobs routed to their owners). */
  while (hub->n_pumps > 0) {
    hub_worker *worker = hub->pumps[--hub->n_pumps];
    worker->pump_scheduled = false;
    hub_pump(hub, worker);
  }
}

/* Puts back a job taken for a worker that could not get it: at once, its
 * attempt not counted. */
static void unlease(job_hub *hub, job_record *job) {
  if (job->state == JOBHUB__V1__JOB_STATE__IN_PROGRESS) {
    hub_release_lease(hub, job);
    job->attempts--;
    int from = job->state;
    hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__QUEUED);
    save_quietly(hub, job, from, "hub", "assignment not delivered");
    hub_notify(hub, job);
  }
  hub_requeue(hub, job, 0);
}

void hub_pump(job_hub *hub, hub_worker *worker) {
  worker->pump_scheduled = false;
  hub_call *hc = worker->pending_lease;
  if (hc != NULL) {
    uint32_t leased = 0;
    job_record *job;
    rpc_buffer assignment;
    rpc_buffer_init(&assignment);
    while (leased < hc->want && (job = hub_take_job(hub, worker)) != NULL) {
      rpc_buffer_reset(&assignment);
      if (hub_lease_to(hub, worker, job, &assignment) != 0 ||
          pb_append_bytes_field(&hc->answer, 1, assignment.data,
                                assignment.len) != 0) {
        unlease(hub, job);
        break;
      }
      leased++;
    }
    rpc_buffer_free(&assignment);
    if (leased > 0) {
      worker->pending_lease = NULL;
      if (hc->timer_active) {
        ev_timer_stop(hub->loop, &hc->timer);
      }
      hub_call_answer(hub, hc);
    }
    return;
  }
  if (worker->conn == NULL || worker->draining ||
      worker->paused_until_us != 0) {
    return;
  }
  rpc_buffer assignment;
  rpc_buffer_init(&assignment);
  rpc_buffer message;
  rpc_buffer_init(&message);
  job_record *job;
  while (worker->running < worker->capacity && !hub_store_behind(hub) &&
         (job = hub_take_job(hub, worker)) != NULL) {
    rpc_buffer_reset(&assignment);
    rpc_buffer_reset(&message);
    if (hub_lease_to(hub, worker, job, &assignment) != 0 ||
        pb_append_bytes_field(&message, 2, assignment.data, assignment.len) !=
            0 ||
        core_stream_send(hub, &worker->conn->stream, message.data,
                         message.len) != 0) {
      unlease(hub, job);
      break;
    }
  }
  rpc_buffer_free(&assignment);
  rpc_buffer_free(&message);
}

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

/* Workers. */

hub_worker *hub_worker_new(job_hub *hub, uint64_t worker_idx, uint32_t pool_id,
                           const uint32_t *job_type_ids, size_t n,
                           rpc_status_code *code, char *why, size_t why_size) {
  *code = RPC_STATUS_INVALID_ARGUMENT;
  if (n == 0) {
    snprintf(why, why_size,
             "job_type_ids is empty: a worker serves at "
             "least one job type");
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    uint32_t pool_idx;
    if (pool_idx_pack(pool_id, job_type_ids[i], &pool_idx) != 0) {
      snprintf(why, why_size, "pool_id %u or job_type_id %u is over %u",
               pool_id, job_type_ids[i], JOBHUB_ID_FIELD_MAX);
      return NULL;
    }
  }
  if (worker_idx != 0) {
    uint32_t idx_pool, idx_type, idx_id;
    if (worker_idx_unpack(worker_idx, &idx_pool, &idx_type, &idx_id) != 0 ||
        idx_pool != pool_id || idx_type != job_type_ids[0] || idx_id == 0) {
      snprintf(why, why_size,
               "worker_idx %llu does not pack pool_id %u and job_type_id %u",
               (unsigned long long)worker_idx, pool_id, job_type_ids[0]);
      return NULL;
    }
    if (hub_find_worker(hub, worker_idx) != NULL) {
      *code = RPC_STATUS_ALREADY_EXISTS;
      snprintf(why, why_size, "worker_idx %llu is taken",
               (unsigned long long)worker_idx);
      return NULL;
    }
  } else {
    for (uint32_t id = 1; id <= JOBHUB_ID_FIELD_MAX; id++) {
      uint64_t candidate;
      (void)worker_idx_pack(pool_id, job_type_ids[0], id, &candidate);
      if (hub_find_worker(hub, candidate) == NULL) {
        worker_idx = candidate;
        break;
      }
    }
    if (worker_idx == 0) {
      *code = RPC_STATUS_RESOURCE_EXHAUSTED;
      snprintf(why, why_size, "pool %u, job type %u has %u workers already",
               pool_id, job_type_ids[0], JOBHUB_ID_FIELD_MAX);
      return NULL;
    }
  }
  *code = RPC_STATUS_RESOURCE_EXHAUSTED;
  snprintf(why, why_size, "out of memory");
  hub_worker *worker = calloc(1, sizeof(*worker));
  if (worker == NULL) {
    return NULL;
  }
  worker->job_type_ids = malloc(n * sizeof(uint32_t));
  worker->sticky = job_queue_new();
  if (worker->job_type_ids == NULL || worker->sticky == NULL ||
      hash_table_insert(hub->workers, hash_u64(worker_idx), worker) != 0) {
    job_queue_free(worker->sticky);
    free(worker->job_type_ids);
    free(worker);
    return NULL;
  }
  memcpy(worker->job_type_ids, job_type_ids, n * sizeof(uint32_t));
  worker->n_job_types = n;
  worker->worker_idx = worker_idx;
  worker->pool_id = pool_id;
  worker->capacity = 1;
  worker->last_seen_us = time_now_us();
  worker->created = ++hub->workers_created;
  *code = RPC_STATUS_OK;
  return worker;
}

/* Rebuilds a pool's table after its live set changed; subject jobs
 * already routed go back to the shared queue to be routed again. */
static void reroute_pool(job_hub *hub, hub_pool *pool, hub_worker *leaving) {
  uint64_t *idxs = malloc((pool->n_live + 1) * sizeof(uint64_t));
  if (idxs == NULL) {
    rpc_log(RPC_LOG_ERROR, "reroute_failed", "error=\"out of memory\"");
    return;
  }
  for (size_t i = 0; i < pool->n_live; i++) {
    idxs[i] = pool->live[i]->worker_idx;
  }
  if (subject_router_set_workers(pool->router, idxs, pool->n_live) != 0) {
    rpc_log(RPC_LOG_ERROR, "reroute_failed", "pool_idx=%u", pool->pool_idx);
  }
  free(idxs);
  int64_t now = time_now_us();
  for (size_t i = 0; i <= pool->n_live; i++) {
    hub_worker *w = i < pool->n_live ? pool->live[i] : leaving;
    job_queue_entry *e;
    while (w != NULL &&
           (e = job_queue_pop(w->sticky, pool->pool_idx)) != NULL) {
      if (queue_push(hub->queue, JOB_OF_ENTRY(e), now) != 0) {
        rpc_log(RPC_LOG_ERROR, "queue_push_failed", "job=%s",
                JOB_OF_ENTRY(e)->id);
      }
    }
    if (i < pool->n_live) {
      hub_wake_worker(hub, pool->live[i]);
    }
  }
}

void hub_worker_set_live(job_hub *hub, hub_worker *worker, bool live) {
  if (worker->live == live) {
    return;
  }
  worker->live = live;
  for (size_t t = 0; t < worker->n_job_types; t++) {
    uint32_t pool_idx;
    (void)pool_idx_pack(worker->pool_id, worker->job_type_ids[t], &pool_idx);
    hub_pool *pool = hub_pool_get(hub, pool_idx, true);
    if (pool == NULL) {
      continue;
    }
    if (live) {
      if (pool->n_live == pool->live_capacity) {
        size_t capacity = pool->live_capacity ? pool->live_capacity * 2 : 8;
        hub_worker **grown = realloc(pool->live, capacity * sizeof(*grown));
        if (grown == NULL) {
          continue;
        }
        pool->live = grown;
        pool->live_capacity = capacity;
      }
      pool->live[pool->n_live++] = worker;
      reroute_pool(hub, pool, NULL);
    } else {
      for (size_t i = 0; i < pool->n_live; i++) {
        if (pool->live[i] == worker) {
          pool->live[i] = pool->live[--pool->n_live];
          break;
        }
      }
      reroute_pool(hub, pool, worker);
    }
  }
  if (live) {
    hub_wake_worker(hub, worker);
  }
}

int hub_fill_lease_secret(job_hub *hub, uint8_t *secret) {
  if (hub->random_used + LEASE_SECRET_SIZE > sizeof(hub->random)) {
    size_t got = 0;
    while (got < sizeof(hub->random)) {
      ssize_t n = getrandom(hub->random + got, sizeof(hub->random) - got, 0);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        rpc_log(RPC_LOG_ERROR, "random_bytes_failed", "error=\"%s\"",
                strerror(errno));
        return -1;
      }
      got += (size_t)n;
    }
    hub->random_used = 0;
  }
  memcpy(secret, hub->random + hub->random_used, LEASE_SECRET_SIZE);
  /* Spent bytes are not left behind for anyone reading memory later. */
  memset(hub->random + hub->random_used, 0, LEASE_SECRET_SIZE);
  hub->random_used += LEASE_SECRET_SIZE;
  return 0;
}

uint32_t hub_requeue_unacknowledged(job_hub *hub, hub_worker *worker) {
  uint32_t count = 0;
  job_record *job = worker->running_jobs;
  while (job != NULL) {
    job_record *next = job->run_next;
    if (!job->lease_acknowledged) {
      hub_release_lease(hub, job);
      if (job->attempts > 0) {
        job->attempts--;
      }
      int from = job->state;
      hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__QUEUED);
      save_quietly(hub, job, from, "hub",
                   "worker left before it started the job");
      hub_requeue(hub, job, 0);
      hub_notify(hub, job);
      count++;
    }
    job = next;
  }
  return count;
}

static void on_pause_over(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  hub_worker *worker = timer->data;
  job_hub *hub = worker->pause_hub;
  worker->paused_until_us = 0;
  /* A paused Connect worker stays out of the routing tables, so that no
   * subject's jobs wait for it. */
  if (worker->conn != NULL && !worker->draining) {
    hub_worker_set_live(hub, worker, true);
  }
  hub_wake_worker(hub, worker);
}

void hub_worker_pause(job_hub *hub, hub_worker *worker, int64_t until_us) {
  int64_t wait_us = until_us - time_now_us();
  if (wait_us <= 0) {
    return;
  }
  if (ev_is_active(&worker->pause_timer)) {
    ev_timer_stop(hub->loop, &worker->pause_timer);
  }
  worker->paused_until_us = until_us;
  worker->pause_hub = hub;
  ev_timer_init(&worker->pause_timer, on_pause_over, (double)wait_us / 1e6, 0);
  worker->pause_timer.data = worker;
  ev_timer_start(hub->loop, &worker->pause_timer);
}

static void worker_free(hub_worker *worker) {
  if (ev_is_active(&worker->pause_timer)) {
    ev_timer_stop(worker->pause_hub->loop, &worker->pause_timer);
  }
  job_queue_free(worker->sticky);
  free(worker->job_type_ids);
  free(worker->client_id);
  free(worker->hostname);
  free(worker->worker_config);
  free(worker);
}

void hub_worker_remove(job_hub *hub, hub_worker *worker) {
  hub_worker_set_live(hub, worker, false);
  /* Its jobs go back at once (SPEC: a worker that left holds nothing). */
  while (worker->running_jobs != NULL) {
    job_record *job = worker->running_jobs;
    hub_release_lease(hub, job);
    int from = job->state;
    if (job->attempts < job->max_attempts) {
      hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__QUEUED);
      save_quietly(hub, job, from, "hub", "worker left");
      hub_requeue(hub, job, 0);
    } else {
      job->finished_us = time_now_us();
      (void)job_record_set_text(&job->error,
                                "worker left during the last attempt");
      hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__FAILED);
      save_quietly(hub, job, from, "hub", "worker left on the last attempt");
    }
    hub_notify(hub, job);
  }
  unschedule_pump(hub, worker);
  if (worker->pending_lease != NULL) {
    hub_call *hc = worker->pending_lease;
    worker->pending_lease = NULL;
    if (hc->timer_active) {
      ev_timer_stop(hub->loop, &hc->timer);
    }
    hub_call_answer(hub, hc); /* empty */
  }
  hub_queries_fail_all(hub, worker);
  hash_table_remove(hub->workers, hash_u64(worker->worker_idx), worker);
  worker_free(worker);
}

static void timestamp_of(Google__Protobuf__Timestamp *ts, int64_t us) {
  ts->seconds = us / 1000000;
  ts->nanos = (int32_t)(us % 1000000) * 1000;
}

int hub_worker_pack(const hub_worker *worker, rpc_buffer *out) {
  Jobhub__V1__Worker w = JOBHUB__V1__WORKER__INIT;
  Google__Protobuf__Timestamp connected = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  Google__Protobuf__Timestamp seen = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  w.worker_idx = worker->worker_idx;
  if (worker->client_id != NULL) {
    w.client_id = worker->client_id;
  }
  w.pool_id = worker->pool_id;
  w.n_job_type_ids = worker->n_job_types;
  w.job_type_ids = worker->job_type_ids;
  if (worker->hostname != NULL) {
    w.hostname = worker->hostname;
  }
  w.capacity = worker->capacity;
  w.status = worker->reserved   ? JOBHUB__V1__WORKER_STATUS__WORKER_RESERVED
             : worker->draining ? JOBHUB__V1__WORKER_STATUS__WORKER_DRAINING
             : !worker->live    ? JOBHUB__V1__WORKER_STATUS__WORKER_DISCONNECTED
             : worker->running > 0 ? JOBHUB__V1__WORKER_STATUS__WORKER_BUSY
                                   : JOBHUB__V1__WORKER_STATUS__WORKER_IDLE;
  w.running = worker->running;
  if (worker->connected_us != 0) {
    timestamp_of(&connected, worker->connected_us);
    w.connected_at = &connected;
  }
  timestamp_of(&seen, worker->last_seen_us);
  w.last_seen = &seen;
  w.port = worker->port;
  size_t start = out->len;
  if (pb_append_message(out, &w.base) != 0) {
    return -1;
  }
  if (worker->worker_config != NULL &&
      pb_append_bytes_field(out, 12, worker->worker_config,
                            worker->worker_config_size) != 0) {
    out->len = start;
    return -1;
  }
  return 0;
}

/* Housekeeping: unary workers that went silent leave the routing tables,
 * and after ten times as long the registry. */

typedef struct silent_scan {
  job_hub *hub;
  int64_t now;
  hub_worker *forget; /* one per pass; the table must not change in each */
} silent_scan;

static int check_silent(void *value, void *arg) {
  hub_worker *worker = value;
  silent_scan *scan = arg;
  if (worker->conn != NULL || worker->reserved ||
      worker->pending_lease != NULL) {
    return 0;
  }
  double silent = (double)(scan->now - worker->last_seen_us) / 1e6;
  if (worker->live && silent > scan->hub->options.worker_timeout) {
    hub_worker_set_live(scan->hub, worker, false);
  }
  if (!worker->live && worker->running == 0 &&
      silent > 10 * scan->hub->options.worker_timeout) {
    scan->forget = worker;
    return 1;
  }
  return 0;
}

static void on_housekeeping(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  job_hub *hub = timer->data;
  silent_scan scan = {hub, time_now_us(), NULL};
  while (hash_table_each(hub->workers, check_silent, &scan) != 0) {
    hub_worker_remove(hub, scan.forget);
    scan.forget = NULL;
  }
  hub_penalties_expire(hub, scan.now);
}

/* Recovery. */

typedef struct recovery {
  job_hub *hub;
  int64_t now;
  size_t queued, leased, requeued;
} recovery;

static int recover_job(const stored_job *stored, void *arg) {
  recovery *r = arg;
  job_hub *hub = r->hub;
  uint64_t sequence = stored->sequence;
  uint32_t pool_idx;
  if (pool_idx_pack(stored->pool_id, stored->job_type_id, &pool_idx) != 0) {
    rpc_log(RPC_LOG_ERROR, "recovery_skipped_job", "id=%016llx",
            (unsigned long long)sequence);
    return 0;
  }
  job_record *job = job_record_new(sequence, stored->job, stored->job_size,
                                   stored->subject, stored->idempotency_key);
  if (job == NULL || (stored->status != NULL &&
                      job_record_apply_status(job, stored->status,
                                              stored->status_size) != 0)) {
    job_record_free(job);
    return -1;
  }
  job->entry.priority = stored->priority;
  job->entry.pool_idx = pool_idx;
  job->entry.not_before_us = stored->not_before_us;
  job->pool_id = stored->pool_id;
  job->job_type_id = stored->job_type_id;
  job->lease_seconds = stored->lease_seconds;
  job->max_attempts = stored->max_attempts;
  job->created_us = stored->created_us;
  /* Rows from before migration 4 have no count: attempts is it. */
  job->leases = stored->leases > job->attempts ? stored->leases : job->attempts;
  memcpy(job->lease_secret, stored->lease_secret, sizeof(job->lease_secret));
  job->durable = true;
  job->state = JOBHUB__V1__JOB_STATE__JOB_STATE_UNSPECIFIED;
  if (index_job(hub, job) != 0) {
    job_record_free(job);
    return -1;
  }
  if (sequence >= hub->next_sequence) {
    hub->next_sequence = sequence + 1;
  }
  hub_set_state(hub, job, stored->state);
  if (stored->state == JOBHUB__V1__JOB_STATE__IN_PROGRESS) {
    if (stored->lease_expires_us > r->now) {
      /* The worker may still finish it: the lease runs to its expiry. */
      job->lease.due_us = stored->lease_expires_us;
      if (deadline_heap_push(&hub->leases, &job->lease) != 0) {
        return -1;
      }
      r->leased++;
      return 0;
    }
    /* Expired while the hub was down: the attempt counts. */
    hub_set_state(hub, job, JOBHUB__V1__JOB_STATE__QUEUED);
    save_quietly(hub, job, JOBHUB__V1__JOB_STATE__IN_PROGRESS, "hub",
                 "lease expired while the hub was down");
    r->requeued++;
  }
  if (job->state == JOBHUB__V1__JOB_STATE__QUEUED) {
    if (queue_push(hub->queue, job, r->now) != 0) {
      return -1;
    }
    r->queued++;
  }
  return 0;
}

/* Life. */

static int free_worker_each(void *value, void *arg) {
  (void)arg;
  worker_free(value);
  return 0;
}

static int free_pool_each(void *value, void *arg) {
  hub_pool *pool = value;
  (void)arg;
  subject_router_free(pool->router);
  free(pool->live);
  free(pool);
  return 0;
}

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
  if (hub->workers != NULL) {
    hash_table_each(hub->workers, free_worker_each, NULL);
  }
  if (hub->pools != NULL) {
    hash_table_each(hub->pools, free_pool_each, NULL);
  }
  job_index_free(hub->jobs_by_id);
  hash_table_free(hub->jobs_by_key);
  hash_table_free(hub->pools);
  hash_table_free(hub->workers);
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
      hub->penalties == NULL) {
    snprintf(err, err_size, "out of memory");
    hub_free(hub);
    return NULL;
  }
  hub->loop = rpc_loop_thread_loop(hub->core);
  ev_timer_init(&hub->lease_timer, on_lease_timer, 0, 0);
  hub->lease_timer.data = hub;
  ev_timer_init(&hub->delay_timer, on_delay_timer, 0, 0);
  hub->delay_timer.data = hub;
  ev_timer_init(&hub->housekeeping, on_housekeeping, 1, 1);
  hub->housekeeping.data = hub;
  ev_timer_init(&hub->lease_writer, on_lease_writer, LEASE_WRITE_DELAY, 0);
  hub->lease_writer.data = hub;
  ev_prepare_init(&hub->pumper, on_prepare);
  hub->pumper.data = hub;

  hub->store =
      job_store_open(options->store, hub->data_dir, hub->loop, err, err_size);
  if (hub->store == NULL) {
    hub_free(hub);
    return NULL;
  }
  job_store_on_written(hub->store, on_job_written, hub);
  hub->store_writable = true;
  job_store_on_writable(hub->store, on_store_writable, hub);
  ev_tstamp started = ev_time();
  recovery r = {hub, time_now_us(), 0, 0, 0};
  if (job_store_load_jobs(hub->store, recover_job, &r) != 0) {
    snprintf(err, err_size, "cannot read the jobs in %s/jobhub.db",
             hub->data_dir);
    hub_free(hub);
    return NULL;
  }
  rpc_log(RPC_LOG_INFO, "recovered",
          "jobs=%zu queued=%zu leased=%zu requeued=%zu seconds=%.3f",
          hub->job_count, r.queued, r.leased, r.requeued, ev_time() - started);
  arm_lease_timer(hub);
  arm_delay_timer(hub,
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

/* Runs fn on the core and waits for it. */
typedef struct core_sync {
  rpc_loop_task task;
  job_hub *hub;
  void (*fn)(job_hub *hub);
  void (*fn_arg)(job_hub *hub, void *arg); /* instead of fn, with arg */
  void *arg;
  pthread_mutex_t lock;
  pthread_cond_t done_cond;
  bool done;
} core_sync;

static void core_sync_run(struct ev_loop *loop, void *arg) {
  (void)loop;
  core_sync *sync = arg;
  if (sync->fn_arg != NULL) {
    sync->fn_arg(sync->hub, sync->arg);
  } else {
    sync->fn(sync->hub);
  }
  pthread_mutex_lock(&sync->lock);
  sync->done = true;
  pthread_cond_signal(&sync->done_cond);
  pthread_mutex_unlock(&sync->lock);
}

static void run_on_core_sync(core_sync *sync_in);

static void run_on_core(job_hub *hub, void (*fn)(job_hub *hub)) {
  core_sync sync = {.hub = hub, .fn = fn};
  run_on_core_sync(&sync);
}

static void run_on_core_sync(core_sync *sync_in) {
  core_sync sync = *sync_in;
  sync.task = (rpc_loop_task){core_sync_run, &sync, false, NULL};
  pthread_mutex_init(&sync.lock, NULL);
  pthread_cond_init(&sync.done_cond, NULL);
  rpc_loop_thread_post(sync.hub->core, &sync.task);
  pthread_mutex_lock(&sync.lock);
  while (!sync.done) {
    pthread_cond_wait(&sync.done_cond, &sync.lock);
  }
  pthread_mutex_unlock(&sync.lock);
  pthread_cond_destroy(&sync.done_cond);
  pthread_mutex_destroy(&sync.lock);
}

static void stop_streams(job_hub *hub) {
  hub->closing = true;
  hub_workers_close_all(hub);
  hub_watchers_close_all(hub);
  hub_queries_fail_all(hub, NULL);
}

void hub_stop_streams(job_hub *hub) { run_on_core(hub, stop_streams); }

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
  core_sync sync = {.hub = hub, .fn_arg = set_store_listener, .arg = &listener};
  run_on_core_sync(&sync);
}

/* Leases not yet written go to the store before it closes. */
static void flush_leases(job_hub *hub) {
  on_lease_writer(hub->loop, &hub->lease_writer, 0);
}

static void break_core(job_hub *hub) {
  flush_leases(hub);
  ev_break(hub->loop, EVBREAK_ALL);
}

void hub_close(job_hub *hub) {
  if (hub == NULL) {
    return;
  }
  if (hub->owns_core) {
    run_on_core(hub, break_core);
    rpc_loop_thread_join(hub->core);
  } else {
    flush_leases(hub); /* the shared loop has stopped: this thread owns it */
  }
  rpc_log(RPC_LOG_INFO, "store_closing", "commits=%llu writes=%llu",
          (unsigned long long)job_store_commits(hub->store),
          (unsigned long long)job_store_writes(hub->store));
  hub_free(hub);
}

int hub_add_services(job_hub *hub, rpc_server *server) {
  return jobhub_v1_jobs_add_to_server(server, &hub_jobs_handlers, hub) ||
                 jobhub_v1_workers_add_to_server(server, &hub_workers_handlers,
                                                 hub)
             ? -1
             : 0;
}
