/* worker.c: the Connect session of a worker: jobs, results, heartbeats,
 * reconnects, drain, subject state. */
#include "worker/worker.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "common/hash_table.h"
#include "jobhub/v1/workers.rpc.h"
#include "rpc/base64.h"
#include "rpc/client.h"
#include "rpc/log.h"

/* Heartbeats come at this fraction of the shortest lease left, within
 * these bounds (s). */
#define HEARTBEAT_FRACTION 0.3
#define HEARTBEAT_MIN 0.2
#define HEARTBEAT_MAX 10.0

struct worker_job {
  worker *w;
  worker_job *prev, *next; /* running, or waiting for a free slot */
  Jobhub__V1__Job *job;    /* owned (unpacked copy of the assignment's) */
  char *lease_id;          /* owned */
  ev_tstamp lease_expires; /* ev_time() clock */
  double lease_length;     /* s a heartbeat extends it by */
  void *data;              /* the module's */
  bool started;
};

/* A result or error sent (or to be sent) and not yet acked. */
typedef struct pending_result {
  struct pending_result *next;
  char *lease_id;   /* owned */
  uint8_t *message; /* a packed WorkerMessage, owned */
  size_t size;
} pending_result;

/* What the worker knows of one subject, for GetSubjectState. */
typedef struct subject_state {
  char *subject; /* owned */
  uint64_t done, failed, running;
  char last_job_id[32];
  double last_finished; /* s since the epoch; 0: none */
} subject_state;

typedef struct job_list {
  worker_job *head, *tail;
  size_t count;
} job_list;

struct worker {
  struct ev_loop *loop;
  worker_options options;
  char *address, *client_id, *hostname;
  uint32_t *job_type_ids;
  rpc_metadata metadata;
  rpc_channel *channel;
  rpc_client_call *call;
  bool welcomed;
  uint64_t worker_idx; /* the hub's name for us, kept across reconnects */
  void *module_state;
  bool module_open;
  job_list running, waiting;
  pending_result *results; /* unacked, oldest first */
  pending_result **results_tail;
  hash_table *subjects;
  ev_timer reconnect;
  ev_timer heartbeat;
  ev_idle stop_check;
  double backoff; /* s: the next reconnect's wait */
  uint32_t rng;
  bool draining, drain_sent, stopped;
  void (*on_stopped)(worker *w, void *arg);
  void *on_stopped_arg;
};

static void connect_now(worker *w);
static void schedule_stop_check(worker *w);

/* Lists. */

static void list_push(job_list *list, worker_job *job) {
  job->next = NULL;
  job->prev = list->tail;
  if (list->tail != NULL) {
    list->tail->next = job;
  } else {
    list->head = job;
  }
  list->tail = job;
  list->count++;
}

static void list_remove(job_list *list, worker_job *job) {
  if (job->prev != NULL) {
    job->prev->next = job->next;
  } else {
    list->head = job->next;
  }
  if (job->next != NULL) {
    job->next->prev = job->prev;
  } else {
    list->tail = job->prev;
  }
  job->prev = job->next = NULL;
  list->count--;
}

static worker_job *list_find(const job_list *list, const char *lease_id) {
  for (worker_job *job = list->head; job != NULL; job = job->next) {
    if (strcmp(job->lease_id, lease_id) == 0) {
      return job;
    }
  }
  return NULL;
}

/* Subject state. */

static bool subject_is(const void *value, const void *key) {
  return strcmp(((const subject_state *)value)->subject, key) == 0;
}

/* The state of subject (created on first use), or NULL when the job has
 * no subject or memory is out. */
static subject_state *subject_of(worker *w, const char *subject) {
  if (subject == NULL || subject[0] == '\0') {
    return NULL;
  }
  uint64_t hash = hash_bytes(subject, strlen(subject));
  subject_state *state =
      hash_table_find(w->subjects, hash, subject_is, subject);
  if (state != NULL) {
    return state;
  }
  state = calloc(1, sizeof(*state));
  if (state == NULL || (state->subject = strdup(subject)) == NULL ||
      hash_table_insert(w->subjects, hash, state) != 0) {
    if (state != NULL) {
      free(state->subject);
    }
    free(state);
    return NULL;
  }
  return state;
}

/* Sending. */

static int send_message(worker *w, const Jobhub__V1__WorkerMessage *message) {
  if (w->call == NULL) {
    return -1;
  }
  return rpc_client_call_send(w->call, &message->base);
}

static void send_hello(worker *w) {
  Jobhub__V1__WorkerHello hello = JOBHUB__V1__WORKER_HELLO__INIT;
  hello.client_id = w->client_id;
  hello.worker_idx = w->worker_idx;
  hello.pool_id = w->options.pool_id;
  hello.n_job_type_ids = w->options.n_job_type_ids;
  hello.job_type_ids = w->job_type_ids;
  if (w->hostname != NULL) {
    hello.hostname = w->hostname;
  }
  hello.capacity = w->options.capacity;
  /* Every lease still ours: running, waiting, or with a result to re-send. */
  size_t n = w->running.count + w->waiting.count;
  for (pending_result *r = w->results; r != NULL; r = r->next) {
    n++;
  }
  char **ids = n > 0 ? malloc(n * sizeof(*ids)) : NULL;
  size_t i = 0;
  if (ids != NULL) {
    for (worker_job *job = w->running.head; job != NULL; job = job->next) {
      ids[i++] = job->lease_id;
    }
    for (worker_job *job = w->waiting.head; job != NULL; job = job->next) {
      ids[i++] = job->lease_id;
    }
    for (pending_result *r = w->results; r != NULL; r = r->next) {
      ids[i++] = r->lease_id;
    }
    hello.n_resend_lease_ids = i;
    hello.resend_lease_ids = ids;
  }
  Jobhub__V1__WorkerMessage message = JOBHUB__V1__WORKER_MESSAGE__INIT;
  message.message_case = JOBHUB__V1__WORKER_MESSAGE__MESSAGE_HELLO;
  message.hello = &hello;
  if (send_message(w, &message) != 0) {
    rpc_log(RPC_LOG_WARN, "worker_send_failed", "message=hello");
  }
  free(ids);
}

static void send_drain(worker *w) {
  if (w->drain_sent || w->call == NULL || !w->welcomed) {
    return;
  }
  Jobhub__V1__Drain drain = JOBHUB__V1__DRAIN__INIT;
  Jobhub__V1__WorkerMessage message = JOBHUB__V1__WORKER_MESSAGE__INIT;
  message.message_case = JOBHUB__V1__WORKER_MESSAGE__MESSAGE_DRAIN;
  message.drain = &drain;
  if (send_message(w, &message) == 0) {
    w->drain_sent = true;
  }
}

static void send_results(worker *w) {
  for (pending_result *r = w->results; r != NULL && w->call != NULL;
       r = r->next) {
    if (rpc_client_call_send_packed(w->call, r->message, r->size) != 0) {
      return; /* the stream is going: they go again on the next one */
    }
  }
}

/* Keeps message (for lease_id) until it is acked, and sends it now if the
 * stream is up. */
static void queue_result(worker *w, const char *lease_id,
                         const Jobhub__V1__WorkerMessage *message) {
  pending_result *r = calloc(1, sizeof(*r));
  size_t size = protobuf_c_message_get_packed_size(&message->base);
  if (r == NULL || (r->lease_id = strdup(lease_id)) == NULL ||
      (r->message = malloc(size ? size : 1)) == NULL) {
    if (r != NULL) {
      free(r->lease_id);
    }
    free(r);
    rpc_log(RPC_LOG_ERROR, "worker_result_lost",
            "lease=%s error=\"out of memory\"", lease_id);
    return;
  }
  r->size = protobuf_c_message_pack(&message->base, r->message);
  *w->results_tail = r;
  w->results_tail = &r->next;
  if (w->call != NULL && w->welcomed &&
      rpc_client_call_send_packed(w->call, r->message, r->size) != 0) {
    rpc_log(RPC_LOG_DEBUG, "worker_result_deferred", "lease=%s", lease_id);
  }
}

static void on_result_ack(worker *w, const Jobhub__V1__ResultAck *ack) {
  pending_result **link = &w->results;
  while (*link != NULL && strcmp((*link)->lease_id, ack->lease_id) != 0) {
    link = &(*link)->next;
  }
  pending_result *r = *link;
  if (r == NULL) {
    return; /* acked twice (re-sent after a reconnect): nothing to do */
  }
  if (ack->code != 0) {
    /* Refused: the lease was void (cancelled, expired, taken back). The
     * job is the hub's to run again; nothing of ours to keep. */
    rpc_log(RPC_LOG_INFO, "worker_result_refused",
            "lease=%s code=%s reason=\"%s\"", ack->lease_id,
            rpc_status_code_name(ack->code), ack->message);
  }
  *link = r->next;
  if (w->results_tail == &r->next) {
    w->results_tail = link;
  }
  free(r->lease_id);
  free(r->message);
  free(r);
  schedule_stop_check(w);
}

/* Jobs. */

static void job_free(worker_job *job) {
  if (job->job != NULL) {
    jobhub__v1__job__free_unpacked(job->job, NULL);
  }
  free(job->lease_id);
  free(job);
}

/* Tells the hub the job of lease_id has begun: if the stream ends before
 * that, the hub gives the job back without counting the attempt; after
 * it, the attempt counts. A stream that is down: the hello re-sends every
 * lease we hold, which says the same. */
static void send_started(worker *w, char *lease_id) {
  Jobhub__V1__Started started = JOBHUB__V1__STARTED__INIT;
  started.n_lease_ids = 1;
  started.lease_ids = &lease_id;
  Jobhub__V1__WorkerMessage message = JOBHUB__V1__WORKER_MESSAGE__INIT;
  message.message_case = JOBHUB__V1__WORKER_MESSAGE__MESSAGE_STARTED;
  message.started = &started;
  (void)send_message(w, &message);
}

static void start_job(worker *w, worker_job *job) {
  subject_state *state = subject_of(w, job->job->subject);
  if (state != NULL) {
    state->running++;
  }
  job->started = true;
  send_started(w, job->lease_id);
  char err[256] = "the module refused the job";
  if (w->options.module->start(job, err, sizeof(err)) != 0) {
    worker_job_fail(job, err, false);
  }
}

/* Starts waiting jobs while there are free slots. */
static void fill_slots(worker *w) {
  while (w->waiting.head != NULL && w->running.count < w->options.capacity) {
    worker_job *job = w->waiting.head;
    list_remove(&w->waiting, job);
    list_push(&w->running, job);
    start_job(w, job);
  }
}

/* Ends job (running) and frees it; records it for its subject. */
static void end_job(worker_job *job, bool succeeded) {
  worker *w = job->w;
  subject_state *state = subject_of(w, job->job->subject);
  if (state != NULL) {
    state->running -= state->running > 0;
    if (succeeded) {
      state->done++;
    } else {
      state->failed++;
    }
    snprintf(state->last_job_id, sizeof(state->last_job_id), "%s",
             job->job->id);
    state->last_finished = ev_time();
  }
  list_remove(&w->running, job);
  job_free(job);
  fill_slots(w);
  schedule_stop_check(w);
}

static void arm_heartbeat(worker *w);

static void on_assignment(worker *w, const Jobhub__V1__Assignment *a) {
  if (a->job == NULL || a->lease_id[0] == '\0') {
    return;
  }
  if (list_find(&w->running, a->lease_id) != NULL ||
      list_find(&w->waiting, a->lease_id) != NULL) {
    return; /* ours already */
  }
  worker_job *job = calloc(1, sizeof(*job));
  size_t size = jobhub__v1__job__get_packed_size(a->job);
  uint8_t *packed = malloc(size ? size : 1);
  if (job == NULL || packed == NULL ||
      (job->lease_id = strdup(a->lease_id)) == NULL) {
    free(packed);
    if (job != NULL) {
      free(job->lease_id);
    }
    free(job);
    rpc_log(RPC_LOG_ERROR, "worker_job_dropped",
            "lease=%s error=\"out of memory\"", a->lease_id);
    return; /* its lease expires and it goes to another worker */
  }
  jobhub__v1__job__pack(a->job, packed);
  job->job = jobhub__v1__job__unpack(NULL, size, packed);
  free(packed);
  if (job->job == NULL) {
    job_free(job);
    return;
  }
  job->w = w;
  double expires = a->lease_expires_at != NULL
                       ? (double)a->lease_expires_at->seconds +
                             a->lease_expires_at->nanos / 1e9
                       : ev_time() + 60;
  job->lease_expires = expires;
  /* The lease's length, as the hub counts it (its clock is ours give or
   * take a little: the heartbeats come well before). */
  job->lease_length = expires - ev_time() > 1 ? expires - ev_time() : 1;
  list_push(&w->waiting, job);
  fill_slots(w);
  arm_heartbeat(w);
}

static worker_job *find_job(worker *w, const char *lease_id, job_list **list) {
  worker_job *job = list_find(&w->running, lease_id);
  *list = &w->running;
  if (job == NULL) {
    job = list_find(&w->waiting, lease_id);
    *list = &w->waiting;
  }
  return job;
}

static void on_cancel(worker *w, const Jobhub__V1__JobCancellation *cancel) {
  job_list *list;
  worker_job *job = find_job(w, cancel->lease_id, &list);
  if (job == NULL) {
    return;
  }
  rpc_log(RPC_LOG_INFO, "worker_job_cancelled", "job=%s lease=%s",
          cancel->job_id, cancel->lease_id);
  if (job->started) {
    w->options.module->cancel(job);
    subject_state *state = subject_of(w, job->job->subject);
    if (state != NULL) {
      state->running -= state->running > 0;
    }
  }
  list_remove(list, job);
  job_free(job);
  fill_slots(w);
  schedule_stop_check(w);
}

static void on_subject_query(worker *w,
                             const Jobhub__V1__SubjectStateQuery *query) {
  subject_state *state = subject_of(w, query->subject);
  Google__Protobuf__Value values[5];
  Google__Protobuf__Struct__FieldsEntry entries[5];
  Google__Protobuf__Struct__FieldsEntry *fields[5];
  static const char *const names[] = {"jobs_done", "jobs_failed",
                                      "jobs_running", "last_job_id",
                                      "last_finished"};
  size_t n = 0;
  if (state != NULL) {
    double numbers[] = {(double)state->done, (double)state->failed,
                        (double)state->running};
    for (; n < 3; n++) {
      values[n] = (Google__Protobuf__Value)GOOGLE__PROTOBUF__VALUE__INIT;
      values[n].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
      values[n].number_value = numbers[n];
    }
    if (state->last_job_id[0] != '\0') {
      values[n] = (Google__Protobuf__Value)GOOGLE__PROTOBUF__VALUE__INIT;
      values[n].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
      values[n].string_value = state->last_job_id;
      n++;
      values[n] = (Google__Protobuf__Value)GOOGLE__PROTOBUF__VALUE__INIT;
      values[n].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
      values[n].number_value = state->last_finished;
      n++;
    }
  }
  for (size_t i = 0; i < n; i++) {
    entries[i] = (Google__Protobuf__Struct__FieldsEntry)
        GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
    entries[i].key = (char *)names[i];
    entries[i].value = &values[i];
    fields[i] = &entries[i];
  }
  Google__Protobuf__Struct fields_struct = GOOGLE__PROTOBUF__STRUCT__INIT;
  fields_struct.n_fields = n;
  fields_struct.fields = fields;
  Jobhub__V1__SubjectState answer = JOBHUB__V1__SUBJECT_STATE__INIT;
  answer.query_id = query->query_id;
  answer.subject = query->subject;
  answer.worker_idx = w->worker_idx;
  answer.state = &fields_struct;
  Jobhub__V1__WorkerMessage message = JOBHUB__V1__WORKER_MESSAGE__INIT;
  message.message_case = JOBHUB__V1__WORKER_MESSAGE__MESSAGE_SUBJECT_STATE;
  message.subject_state = &answer;
  (void)send_message(w, &message);
}

/* Heartbeats: every lease held, before the shortest one runs out. */

static void arm_heartbeat(worker *w) {
  if (w->call == NULL || !w->welcomed ||
      w->running.count + w->waiting.count == 0) {
    ev_timer_stop(w->loop, &w->heartbeat);
    return;
  }
  ev_tstamp now = ev_time();
  ev_tstamp soonest = HUGE_VAL;
  for (int l = 0; l < 2; l++) {
    for (worker_job *job = (l == 0 ? w->running : w->waiting).head; job != NULL;
         job = job->next) {
      if (job->lease_expires < soonest) {
        soonest = job->lease_expires;
      }
    }
  }
  double wait = (soonest - now) * HEARTBEAT_FRACTION;
  wait = wait < HEARTBEAT_MIN   ? HEARTBEAT_MIN
         : wait > HEARTBEAT_MAX ? HEARTBEAT_MAX
                                : wait;
  if (!ev_is_active(&w->heartbeat) ||
      ev_timer_remaining(w->loop, &w->heartbeat) > wait) {
    ev_timer_stop(w->loop, &w->heartbeat);
    ev_timer_set(&w->heartbeat, wait, 0);
    ev_timer_start(w->loop, &w->heartbeat);
  }
}

static void on_heartbeat(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  worker *w = timer->data;
  size_t n = w->running.count + w->waiting.count;
  if (n == 0 || w->call == NULL) {
    return;
  }
  char **ids = malloc(n * sizeof(*ids));
  if (ids == NULL) {
    arm_heartbeat(w);
    return;
  }
  size_t i = 0;
  ev_tstamp now = ev_time();
  for (int l = 0; l < 2; l++) {
    for (worker_job *job = (l == 0 ? w->running : w->waiting).head; job != NULL;
         job = job->next) {
      ids[i++] = job->lease_id;
      job->lease_expires = now + job->lease_length; /* as the hub does */
    }
  }
  Jobhub__V1__HeartbeatRequest beat = JOBHUB__V1__HEARTBEAT_REQUEST__INIT;
  beat.client_id = w->client_id;
  beat.n_lease_ids = i;
  beat.lease_ids = ids;
  Jobhub__V1__WorkerMessage message = JOBHUB__V1__WORKER_MESSAGE__INIT;
  message.message_case = JOBHUB__V1__WORKER_MESSAGE__MESSAGE_HEARTBEAT;
  message.heartbeat = &beat;
  (void)send_message(w, &message);
  free(ids);
  arm_heartbeat(w);
}

/* The stream. */

static void on_hub_message(rpc_client_call *call, const ProtobufCMessage *base,
                           void *arg) {
  (void)call;
  worker *w = arg;
  const Jobhub__V1__HubMessage *m = (const Jobhub__V1__HubMessage *)base;
  switch (m->message_case) {
  case JOBHUB__V1__HUB_MESSAGE__MESSAGE_WELCOME:
    w->welcomed = true;
    w->worker_idx = m->welcome->worker_idx;
    w->backoff = w->options.backoff_initial;
    rpc_log(RPC_LOG_INFO, "worker_connected",
            "worker_idx=%" PRIu64 " address=%s", w->worker_idx, w->address);
    send_results(w);
    if (w->draining) {
      send_drain(w);
    }
    arm_heartbeat(w);
    break;
  case JOBHUB__V1__HUB_MESSAGE__MESSAGE_ASSIGNMENT:
    on_assignment(w, m->assignment);
    break;
  case JOBHUB__V1__HUB_MESSAGE__MESSAGE_CANCEL:
    on_cancel(w, m->cancel);
    break;
  case JOBHUB__V1__HUB_MESSAGE__MESSAGE_SUBJECT_STATE_QUERY:
    on_subject_query(w, m->subject_state_query);
    break;
  case JOBHUB__V1__HUB_MESSAGE__MESSAGE_DRAIN:
    rpc_log(RPC_LOG_INFO, "worker_drained_by_hub", "worker_idx=%" PRIu64,
            w->worker_idx);
    w->draining = true;
    w->drain_sent = true; /* the hub knows */
    schedule_stop_check(w);
    break;
  case JOBHUB__V1__HUB_MESSAGE__MESSAGE_RESULT_ACK:
    on_result_ack(w, m->result_ack);
    break;
  default:
    break;
  }
}

static void on_connect_close(rpc_client_call *call, const rpc_status *status,
                             const rpc_metadata *trailers, void *arg) {
  (void)call;
  (void)trailers;
  worker *w = arg;
  w->call = NULL;
  w->welcomed = false;
  w->drain_sent = false;
  ev_timer_stop(w->loop, &w->heartbeat);
  if (w->stopped) {
    return;
  }
  /* Jittered in [0.5, 1] of the backoff, which doubles up to its cap. */
  w->rng = w->rng * 1664525u + 1013904223u;
  double wait = w->backoff * (0.5 + 0.5 * (w->rng >> 8) / (double)(1u << 24));
  w->backoff = w->backoff * 2 < w->options.backoff_max ? w->backoff * 2
                                                       : w->options.backoff_max;
  rpc_log(RPC_LOG_WARN, "worker_disconnected",
          "code=%s message=\"%s\" retry_in=%.2f",
          rpc_status_code_name((int)status->code),
          status->message != NULL ? status->message : "", wait);
  ev_timer_set(&w->reconnect, wait, 0);
  ev_timer_start(w->loop, &w->reconnect);
}

static void connect_now(worker *w) {
  static const rpc_client_hooks hooks = {.on_message = on_hub_message,
                                         .on_close = on_connect_close};
  rpc_call_options options = {.metadata = &w->metadata};
  w->welcomed = false;
  w->call = jobhub_v1_workers_connect_start(w->channel, &options, &hooks, w);
  if (w->call == NULL) {
    rpc_log(RPC_LOG_ERROR, "worker_connect_failed", "error=\"out of memory\"");
    ev_timer_set(&w->reconnect, w->options.backoff_max, 0);
    ev_timer_start(w->loop, &w->reconnect);
    return;
  }
  send_hello(w);
}

static void on_reconnect(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  connect_now(timer->data);
}

/* Draining ends once nothing runs or waits and every result is acked. */
static void on_stop_check(struct ev_loop *loop, ev_idle *idle, int events) {
  (void)events;
  worker *w = idle->data;
  ev_idle_stop(loop, idle);
  if (!w->draining || w->stopped || w->running.count + w->waiting.count > 0 ||
      w->results != NULL) {
    return;
  }
  w->stopped = true;
  ev_timer_stop(loop, &w->reconnect);
  ev_timer_stop(loop, &w->heartbeat);
  if (w->call != NULL) {
    (void)rpc_client_call_close_send(w->call);
  }
  rpc_log(RPC_LOG_INFO, "worker_drained", "worker_idx=%" PRIu64, w->worker_idx);
  if (w->on_stopped != NULL) {
    w->on_stopped(w, w->on_stopped_arg);
  }
}

static void schedule_stop_check(worker *w) {
  if (w->draining && !w->stopped) {
    ev_idle_start(w->loop, &w->stop_check);
  }
}

/* Life. */

/* The authorization metadata every call sends: "Bearer TOKEN" or "Basic
 * base64(user:password)" (RFC 7617). Returns 0 or -1 with err. */
static int add_authorization(rpc_metadata *metadata,
                             const worker_options *options, char *err,
                             size_t err_size) {
  if (options->token == NULL && options->basic == NULL) {
    return 0;
  }
  rpc_buffer value;
  rpc_buffer_init(&value);
  int rv = 0;
  if (options->token != NULL) {
    if (rpc_buffer_append(&value, "Bearer ", 7) != 0 ||
        rpc_buffer_append(&value, options->token, strlen(options->token)) !=
            0) {
      rv = -1;
    }
  } else if (rpc_buffer_append(&value, "Basic ", 6) != 0 ||
             rpc_base64_encode((const uint8_t *)options->basic,
                               strlen(options->basic), &value) != 0) {
    rv = -1;
  }
  if (rv == 0 && (!rpc_metadata_value_is_valid(value.data, value.len) ||
                  rpc_metadata_add(metadata, "authorization", 13, value.data,
                                   value.len) != 0)) {
    rv = -1;
  }
  if (rv != 0) {
    snprintf(err, err_size, "the credentials are not a valid header value");
  }
  rpc_buffer_free(&value);
  return rv;
}

worker *worker_new(struct ev_loop *loop, const worker_options *options,
                   char *err, size_t err_size) {
  if (options->client_id == NULL || options->client_id[0] == '\0' ||
      options->n_job_type_ids == 0 || options->capacity == 0 ||
      options->module == NULL || options->address == NULL) {
    snprintf(err, err_size,
             "a worker needs an address, a client id, a "
             "module, a capacity and at least one job type");
    return NULL;
  }
  worker *w = calloc(1, sizeof(*w));
  if (w == NULL) {
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  w->loop = loop;
  w->options = *options;
  rpc_metadata_init(&w->metadata);
  w->address = strdup(options->address);
  w->client_id = strdup(options->client_id);
  w->hostname = options->hostname ? strdup(options->hostname) : NULL;
  w->job_type_ids = malloc(options->n_job_type_ids * sizeof(uint32_t));
  w->subjects = hash_table_new();
  w->results_tail = &w->results;
  if (w->address == NULL || w->client_id == NULL ||
      (options->hostname != NULL && w->hostname == NULL) ||
      w->job_type_ids == NULL || w->subjects == NULL) {
    snprintf(err, err_size, "out of memory");
    worker_free(w);
    return NULL;
  }
  memcpy(w->job_type_ids, options->job_type_ids,
         options->n_job_type_ids * sizeof(uint32_t));
  if (add_authorization(&w->metadata, options, err, err_size) != 0) {
    worker_free(w);
    return NULL;
  }
  rpc_channel_options channel = {.target = w->address, .tls = options->tls};
  w->channel = rpc_channel_new(loop, &channel, err, err_size);
  if (w->channel == NULL) {
    worker_free(w);
    return NULL;
  }
  if (w->options.backoff_initial <= 0) {
    w->options.backoff_initial = 0.1;
  }
  if (w->options.backoff_max < w->options.backoff_initial) {
    w->options.backoff_max = 30;
  }
  w->backoff = w->options.backoff_initial;
  if (options->module->open != NULL) {
    if (options->module->open(loop, options->module_config, &w->module_state,
                              err, err_size) != 0) {
      worker_free(w);
      return NULL;
    }
  }
  w->module_open = true;
  w->rng = (uint32_t)(uint64_t)(ev_time() * 1e6); /* the low bits */
  ev_timer_init(&w->reconnect, on_reconnect, 0, 0);
  w->reconnect.data = w;
  ev_timer_init(&w->heartbeat, on_heartbeat, 0, 0);
  w->heartbeat.data = w;
  ev_idle_init(&w->stop_check, on_stop_check);
  w->stop_check.data = w;
  return w;
}

void worker_start(worker *w) { connect_now(w); }

void worker_drain(worker *w, void (*on_stopped)(worker *w, void *arg),
                  void *arg) {
  w->on_stopped = on_stopped;
  w->on_stopped_arg = arg;
  if (!w->draining) {
    rpc_log(RPC_LOG_INFO, "worker_draining", "running=%zu results=%s",
            w->running.count, w->results != NULL ? "unacked" : "none");
  }
  w->draining = true;
  /* Jobs not started yet go back: the hub gives them to another worker
   * when their lease ends or this stream does. */
  send_drain(w);
  schedule_stop_check(w);
}

bool worker_stopped(const worker *w) { return w->stopped; }

static int free_subject(void *value, void *arg) {
  (void)arg;
  subject_state *state = value;
  free(state->subject);
  free(state);
  return 0;
}

void worker_free(worker *w) {
  if (w == NULL) {
    return;
  }
  if (w->loop != NULL) {
    ev_timer_stop(w->loop, &w->reconnect);
    ev_timer_stop(w->loop, &w->heartbeat);
    ev_idle_stop(w->loop, &w->stop_check);
  }
  w->stopped = true; /* no reconnect from the close below */
  while (w->running.head != NULL) {
    worker_job *job = w->running.head;
    if (job->started) {
      w->options.module->cancel(job);
    }
    list_remove(&w->running, job);
    job_free(job);
  }
  while (w->waiting.head != NULL) {
    worker_job *job = w->waiting.head;
    list_remove(&w->waiting, job);
    job_free(job);
  }
  rpc_channel_free(w->channel); /* the call's on_close runs here */
  if (w->module_open && w->options.module->close != NULL) {
    w->options.module->close(w->module_state);
  }
  while (w->results != NULL) {
    pending_result *r = w->results;
    w->results = r->next;
    free(r->lease_id);
    free(r->message);
    free(r);
  }
  if (w->subjects != NULL) {
    hash_table_each(w->subjects, free_subject, NULL);
    hash_table_free(w->subjects);
  }
  rpc_metadata_free(&w->metadata);
  free(w->address);
  free(w->client_id);
  free(w->hostname);
  free(w->job_type_ids);
  free(w);
}

/* For modules. */

const Jobhub__V1__Job *worker_job_job(const worker_job *job) {
  return job->job;
}

const char *worker_job_lease_id(const worker_job *job) { return job->lease_id; }

struct ev_loop *worker_job_loop(const worker_job *job) {
  return job->w->loop;
}

void *worker_job_module_state(const worker_job *job) {
  return job->w->module_state;
}

void *worker_job_data(const worker_job *job) { return job->data; }

void worker_job_set_data(worker_job *job, void *data) { job->data = data; }

void worker_job_succeed(worker_job *job, const Jobhub__V1__JobResult *result) {
  worker *w = job->w;
  Jobhub__V1__JobResult named = JOBHUB__V1__JOB_RESULT__INIT;
  if (result != NULL) {
    named = *result;
  }
  named.job_id = job->job->id;
  Jobhub__V1__CompleteRequest complete = JOBHUB__V1__COMPLETE_REQUEST__INIT;
  complete.client_id = w->client_id;
  complete.job_id = job->job->id;
  complete.lease_id = job->lease_id;
  complete.result = &named;
  Jobhub__V1__WorkerMessage message = JOBHUB__V1__WORKER_MESSAGE__INIT;
  message.message_case = JOBHUB__V1__WORKER_MESSAGE__MESSAGE_RESULT;
  message.result = &complete;
  queue_result(w, job->lease_id, &message);
  end_job(job, true);
}

void worker_job_fail(worker_job *job, const char *error, bool retryable) {
  worker *w = job->w;
  Jobhub__V1__FailRequest fail = JOBHUB__V1__FAIL_REQUEST__INIT;
  fail.client_id = w->client_id;
  fail.job_id = job->job->id;
  fail.lease_id = job->lease_id;
  fail.error = (char *)(error != NULL ? error : "");
  fail.retryable = retryable;
  Jobhub__V1__WorkerMessage message = JOBHUB__V1__WORKER_MESSAGE__INIT;
  message.message_case = JOBHUB__V1__WORKER_MESSAGE__MESSAGE_ERROR;
  message.error = &fail;
  queue_result(w, job->lease_id, &message);
  end_job(job, false);
}

void worker_job_progress(worker_job *job, double progress,
                         const char *message_text) {
  worker *w = job->w;
  Jobhub__V1__ProgressRequest request = JOBHUB__V1__PROGRESS_REQUEST__INIT;
  request.client_id = w->client_id;
  request.job_id = job->job->id;
  request.lease_id = job->lease_id;
  request.progress = progress;
  if (message_text != NULL) {
    request.message = (char *)message_text;
  }
  Jobhub__V1__WorkerMessage message = JOBHUB__V1__WORKER_MESSAGE__INIT;
  message.message_case = JOBHUB__V1__WORKER_MESSAGE__MESSAGE_PROGRESS;
  message.progress = &request;
  (void)send_message(w, &message);
}
