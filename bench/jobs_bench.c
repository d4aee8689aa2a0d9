/* jobs_bench: the load client of bench/jobs.sh for jobhubd. Submitters
 * keep --inflight Submits open on each of --connections channels; workers
 * hold a Workers.Connect stream each with --capacity and answer every
 * pushed assignment with a result at once. A job counts when its result
 * is acked (durable). Everything runs on one libev loop: the client side
 * is meant to be pinned to one core.
 *
 * Modes: e2e (submit and work), fill (submit only), drain (work only, until
 * --jobs results are acked), external (submit only, while workers of
 * another program do the work). With --watch (always in external mode) a
 * job counts once a filter Watch of the pool reports it DONE, so that runs
 * with and without our own workers measure the same thing. The final
 * line is
 *   jobs_bench mode=M jobs=N seconds=S jobs_per_s=X submit_p50_us=..
 *   submit_p99_us=.. assign_p50_us=.. assign_p99_us=.. errors=E
 * where assign is submit-sent to assignment-received (e2e only). Exit 0,
 * 1 on any error (a failed call, a job assigned twice), 2 usage. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>

#include "jobhub/v1/jobs.rpc.h"
#include "jobhub/v1/workers.rpc.h"
#include "rpc/client.h"

typedef struct bench bench;

typedef struct submitter {
  bench *bench;
  rpc_channel *channel;
  uint32_t inflight;
} submitter;

typedef struct submit_call {
  submitter *submitter;
  int64_t sent_ns;
} submit_call;

typedef struct worker {
  bench *bench;
  rpc_channel *channel;
  rpc_client_call *call;
  char client_id[32];
  bool welcomed;
} worker;

struct bench {
  struct ev_loop *loop;
  const char *addr;
  const char *mode;
  uint64_t jobs;
  uint32_t connections, inflight, workers, capacity, body, pool_id, job_type;
  double rate; /* jobs/s; 0: as fast as the hub answers */
  bool submit, work, watch;
  uint64_t submitted, answered, assigned, acked, watched_done, errors;
  rpc_channel *watch_channel;
  rpc_client_call *watch_call;
  double tokens;
  ev_timer pacer;
  ev_timer guard;
  submitter *submitters;
  worker *worker_list;
  uint32_t *submit_us, *assign_us; /* latencies, one per job */
  uint8_t *seen;                   /* assignments per job sequence */
  uint64_t seen_size;
  int64_t start_ns, end_ns;
};

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void finish_if_done(bench *b) {
  bool submits_done = !b->submit || b->answered == b->jobs;
  bool work_done = (!b->work || b->acked == b->jobs) &&
                   (!b->watch || b->watched_done == b->jobs);
  if ((submits_done && work_done) || b->errors > 0) {
    b->end_ns = now_ns();
    ev_break(b->loop, EVBREAK_ALL);
  }
}

static void error(bench *b, const char *what, const char *detail) {
  if (b->errors++ < 10) {
    fprintf(stderr, "jobs_bench: %s%s%s\n", what, detail ? ": " : "",
            detail ? detail : "");
  }
}

/* Submitting. */

static void submit_more(submitter *s);

static void on_submit_close(rpc_client_call *call, const rpc_status *status,
                            const rpc_metadata *trailers, void *arg) {
  (void)call;
  (void)trailers;
  submit_call *sc = arg;
  submitter *s = sc->submitter;
  bench *b = s->bench;
  if (status->code != RPC_STATUS_OK) {
    error(b, "Submit failed",
          status->message ? status->message
                          : rpc_status_code_name((int)status->code));
  } else {
    b->submit_us[b->answered] = (uint32_t)((now_ns() - sc->sent_ns) / 1000);
    b->answered++;
  }
  free(sc);
  s->inflight--;
  submit_more(s);
  finish_if_done(b);
}

static void submit_more(submitter *s) {
  bench *b = s->bench;
  static const rpc_client_hooks hooks = {.on_close = on_submit_close};
  uint8_t payload[4096];
  while (s->inflight < b->inflight && b->submitted < b->jobs &&
         b->errors == 0 && (b->rate == 0 || b->tokens >= 1)) {
    submit_call *sc = malloc(sizeof(*sc));
    if (sc == NULL) {
      error(b, "out of memory", NULL);
      return;
    }
    sc->submitter = s;
    sc->sent_ns = now_ns();
    /* The body starts with the send time: the worker measures
     * submit-to-assignment from it. */
    memset(payload, 'j', b->body);
    memcpy(payload, &sc->sent_ns, sizeof(sc->sent_ns));
    Jobhub__V1__SubmitRequest request = JOBHUB__V1__SUBMIT_REQUEST__INIT;
    request.pool_id = b->pool_id;
    request.job_type_id = b->job_type;
    request.payload.data = payload;
    request.payload.len = b->body;
    if (jobhub_v1_jobs_submit_start(s->channel, &request, NULL, &hooks, sc) ==
        NULL) {
      free(sc);
      error(b, "cannot start a Submit", NULL);
      return;
    }
    s->inflight++;
    b->submitted++;
    if (b->rate > 0) {
      b->tokens -= 1;
    }
  }
}

static void on_pacer(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  bench *b = timer->data;
  /* 1 ms ticks; a burst after a stall is capped at one tick's worth. */
  b->tokens += b->rate / 1000;
  if (b->tokens > b->rate / 1000 + 1) {
    b->tokens = b->rate / 1000 + 1;
  }
  for (uint32_t i = 0; i < b->connections; i++) {
    submit_more(&b->submitters[i]);
  }
}

/* Working. */

static void send_worker_message(worker *w, const Jobhub__V1__WorkerMessage *m) {
  if (rpc_client_call_send(w->call, &m->base) != 0) {
    error(w->bench, "cannot send on Connect", NULL);
  }
}

static void on_assignment(worker *w, const Jobhub__V1__Assignment *a) {
  bench *b = w->bench;
  const Jobhub__V1__Job *job = a->job;
  uint64_t sequence = strtoull(job->id, NULL, 16);
  if (sequence < b->seen_size) {
    if (b->seen[sequence]++ != 0) {
      error(b, "job assigned twice", job->id);
    }
  }
  if (b->submit && job->payload.len >= sizeof(int64_t) &&
      b->assigned < b->jobs) {
    int64_t sent;
    memcpy(&sent, job->payload.data, sizeof(sent));
    b->assign_us[b->assigned] = (uint32_t)((now_ns() - sent) / 1000);
  }
  b->assigned++;
  Jobhub__V1__JobResult result = JOBHUB__V1__JOB_RESULT__INIT;
  Jobhub__V1__CompleteRequest complete = JOBHUB__V1__COMPLETE_REQUEST__INIT;
  complete.client_id = w->client_id;
  complete.job_id = job->id;
  complete.lease_id = a->lease_id;
  complete.result = &result;
  Jobhub__V1__WorkerMessage m = JOBHUB__V1__WORKER_MESSAGE__INIT;
  m.message_case = JOBHUB__V1__WORKER_MESSAGE__MESSAGE_RESULT;
  m.result = &complete;
  send_worker_message(w, &m);
}

static void on_hub_message(rpc_client_call *call,
                           const ProtobufCMessage *message, void *arg) {
  (void)call;
  worker *w = arg;
  bench *b = w->bench;
  const Jobhub__V1__HubMessage *m = (const Jobhub__V1__HubMessage *)message;
  switch (m->message_case) {
  case JOBHUB__V1__HUB_MESSAGE__MESSAGE_WELCOME:
    w->welcomed = true;
    break;
  case JOBHUB__V1__HUB_MESSAGE__MESSAGE_ASSIGNMENT:
    on_assignment(w, m->assignment);
    break;
  case JOBHUB__V1__HUB_MESSAGE__MESSAGE_RESULT_ACK:
    if (m->result_ack->code != 0) {
      error(b, "result refused", m->result_ack->message);
    } else {
      b->acked++;
      finish_if_done(b);
    }
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
  bench *b = w->bench;
  if (b->end_ns == 0) {
    error(b, "Connect ended",
          status->message ? status->message
                          : rpc_status_code_name((int)status->code));
    finish_if_done(b);
  }
}

/* Watching. */

static void on_watched(rpc_client_call *call, const ProtobufCMessage *message,
                       void *arg) {
  (void)call;
  (void)message; /* the filter lets only DONE through */
  bench *b = arg;
  b->watched_done++;
  finish_if_done(b);
}

static void on_watch_close(rpc_client_call *call, const rpc_status *status,
                           const rpc_metadata *trailers, void *arg) {
  (void)call;
  (void)trailers;
  bench *b = arg;
  b->watch_call = NULL;
  if (b->end_ns == 0) {
    error(b, "Watch ended",
          status->message ? status->message
                          : rpc_status_code_name((int)status->code));
    finish_if_done(b);
  }
}

static int start_watch(bench *b) {
  static const rpc_client_hooks hooks = {.on_message = on_watched,
                                         .on_close = on_watch_close};
  Jobhub__V1__WatchRequest request = JOBHUB__V1__WATCH_REQUEST__INIT;
  request.state = JOBHUB__V1__JOB_STATE__DONE;
  request.pool_id = b->pool_id;
  request.job_type_id = b->job_type;
  b->watch_call =
      jobhub_v1_jobs_watch_start(b->watch_channel, &request, NULL, &hooks, b);
  return b->watch_call != NULL ? 0 : -1;
}

static int start_worker(bench *b, worker *w, uint32_t index) {
  static const rpc_client_hooks hooks = {.on_message = on_hub_message,
                                         .on_close = on_connect_close};
  w->bench = b;
  snprintf(w->client_id, sizeof(w->client_id), "bench-worker-%u", index);
  w->call = jobhub_v1_workers_connect_start(w->channel, NULL, &hooks, w);
  if (w->call == NULL) {
    return -1;
  }
  uint32_t job_types[1] = {b->job_type};
  Jobhub__V1__WorkerHello hello = JOBHUB__V1__WORKER_HELLO__INIT;
  hello.client_id = w->client_id;
  hello.pool_id = b->pool_id;
  hello.n_job_type_ids = 1;
  hello.job_type_ids = job_types;
  hello.capacity = b->capacity;
  Jobhub__V1__WorkerMessage m = JOBHUB__V1__WORKER_MESSAGE__INIT;
  m.message_case = JOBHUB__V1__WORKER_MESSAGE__MESSAGE_HELLO;
  m.hello = &hello;
  send_worker_message(w, &m);
  return 0;
}

/* Reporting. */

static int compare_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static uint32_t percentile(uint32_t *values, uint64_t n, double p) {
  if (n == 0) {
    return 0;
  }
  qsort(values, n, sizeof(*values), compare_u32);
  uint64_t i = (uint64_t)(p * (double)(n - 1) + 0.5);
  return values[i];
}

static void on_guard(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)events;
  bench *b = timer->data;
  error(b, "timed out", NULL);
  ev_break(loop, EVBREAK_ALL);
}

static void usage(void) {
  fprintf(stderr,
          "usage: jobs_bench --addr HOST:PORT [--mode e2e|fill|drain|external]"
          " [--watch]"
          " [--jobs N] [--connections C]\n"
          "       [--inflight M] [--workers W] [--capacity K] [--body BYTES]"
          " [--rate JOBS_PER_S]\n"
          "       [--pool ID] [--job-type ID] [--timeout SECONDS]\n");
  exit(2);
}

static uint64_t parse_count(const char *text, uint64_t max) {
  char *end;
  errno = 0;
  unsigned long long value = strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || end == text || value > max) {
    usage();
  }
  return value;
}

int main(int argc, char **argv) {
  bench b = {.mode = "e2e",
             .jobs = 100000,
             .connections = 4,
             .inflight = 64,
             .workers = 1,
             .capacity = 256,
             .body = 100,
             .pool_id = 0,
             .job_type = 1};
  double timeout = 300;
  static const struct option options[] = {
      {"addr", required_argument, NULL, 'a'},
      {"mode", required_argument, NULL, 'm'},
      {"jobs", required_argument, NULL, 'n'},
      {"connections", required_argument, NULL, 'c'},
      {"inflight", required_argument, NULL, 'i'},
      {"workers", required_argument, NULL, 'w'},
      {"capacity", required_argument, NULL, 'k'},
      {"body", required_argument, NULL, 'b'},
      {"rate", required_argument, NULL, 'r'},
      {"pool", required_argument, NULL, 'p'},
      {"job-type", required_argument, NULL, 't'},
      {"timeout", required_argument, NULL, 'T'},
      {"watch", no_argument, NULL, 'W'},
      {NULL, 0, NULL, 0}};
  int opt;
  while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
    switch (opt) {
    case 'a':
      b.addr = optarg;
      break;
    case 'm':
      b.mode = optarg;
      break;
    case 'n':
      b.jobs = parse_count(optarg, 100000000);
      break;
    case 'c':
      b.connections = (uint32_t)parse_count(optarg, 1000);
      break;
    case 'i':
      b.inflight = (uint32_t)parse_count(optarg, 100000);
      break;
    case 'w':
      b.workers = (uint32_t)parse_count(optarg, 1000);
      break;
    case 'k':
      b.capacity = (uint32_t)parse_count(optarg, 100000);
      break;
    case 'b':
      b.body = (uint32_t)parse_count(optarg, 4096);
      break;
    case 'r':
      b.rate = (double)parse_count(optarg, 100000000);
      break;
    case 'p':
      b.pool_id = (uint32_t)parse_count(optarg, 1023);
      break;
    case 't':
      b.job_type = (uint32_t)parse_count(optarg, 1023);
      break;
    case 'T':
      timeout = (double)parse_count(optarg, 86400);
      break;
    case 'W':
      b.watch = true;
      break;
    default:
      usage();
    }
  }
  if (b.addr == NULL || optind != argc || b.jobs == 0 ||
      b.body < sizeof(int64_t)) {
    usage();
  }
  bool external = strcmp(b.mode, "external") == 0;
  b.submit = strcmp(b.mode, "drain") != 0;
  b.work = strcmp(b.mode, "fill") != 0 && !external;
  b.watch = b.watch || external;
  if (strcmp(b.mode, "e2e") != 0 && !external && !(b.submit ^ b.work)) {
    usage();
  }
  if ((b.submit && b.connections == 0) || (b.work && b.workers == 0) ||
      b.inflight == 0 || b.capacity == 0) {
    usage();
  }
  signal(SIGPIPE, SIG_IGN);
  b.loop = EV_DEFAULT;
  b.submit_us = calloc(b.jobs, sizeof(uint32_t));
  b.assign_us = calloc(b.jobs, sizeof(uint32_t));
  /* Ids of a fresh store run from 1; later ones are not checked. */
  b.seen_size = b.jobs * 2 + 1;
  b.seen = calloc(b.seen_size, 1);
  b.submitters = calloc(b.connections, sizeof(submitter));
  b.worker_list = calloc(b.workers, sizeof(worker));
  if (b.submit_us == NULL || b.assign_us == NULL || b.seen == NULL ||
      b.submitters == NULL || b.worker_list == NULL) {
    fprintf(stderr, "jobs_bench: out of memory\n");
    return 1;
  }
  rpc_channel_options channel_options = {.target = b.addr};
  char err[256];
  uint32_t n_channels = b.submit ? b.connections : 0;
  for (uint32_t i = 0; i < n_channels; i++) {
    b.submitters[i].bench = &b;
    b.submitters[i].channel =
        rpc_channel_new(b.loop, &channel_options, err, sizeof(err));
    if (b.submitters[i].channel == NULL) {
      fprintf(stderr, "jobs_bench: %s\n", err);
      return 1;
    }
  }
  for (uint32_t i = 0; b.work && i < b.workers; i++) {
    b.worker_list[i].channel =
        rpc_channel_new(b.loop, &channel_options, err, sizeof(err));
    if (b.worker_list[i].channel == NULL ||
        start_worker(&b, &b.worker_list[i], i) != 0) {
      fprintf(stderr, "jobs_bench: cannot start worker %u\n", i);
      return 1;
    }
  }
  if (b.watch) {
    b.watch_channel =
        rpc_channel_new(b.loop, &channel_options, err, sizeof(err));
    if (b.watch_channel == NULL || start_watch(&b) != 0) {
      fprintf(stderr, "jobs_bench: cannot watch\n");
      return 1;
    }
    /* The Watch is open before the first Submit. */
    for (int i = 0; i < 200 && b.watch_call != NULL; i++) {
      ev_run(b.loop, EVRUN_NOWAIT);
    }
  }
  ev_timer_init(&b.guard, on_guard, timeout, 0);
  b.guard.data = &b;
  ev_timer_start(b.loop, &b.guard);
  if (b.rate > 0) {
    ev_timer_init(&b.pacer, on_pacer, 0.001, 0.001);
    b.pacer.data = &b;
    ev_timer_start(b.loop, &b.pacer);
  }
  b.start_ns = now_ns();
  for (uint32_t i = 0; i < n_channels; i++) {
    submit_more(&b.submitters[i]);
  }
  ev_run(b.loop, 0);
  if (b.end_ns == 0) {
    b.end_ns = now_ns();
  }
  double seconds = (double)(b.end_ns - b.start_ns) / 1e9;
  uint64_t jobs = b.watch ? b.watched_done : b.work ? b.acked : b.answered;
  uint64_t assigned = b.assigned < b.jobs ? b.assigned : b.jobs;
  printf("jobs_bench mode=%s jobs=%" PRIu64 " seconds=%.3f jobs_per_s=%.0f"
         " submit_p50_us=%u submit_p99_us=%u assign_p50_us=%u"
         " assign_p99_us=%u errors=%" PRIu64 "\n",
         b.mode, jobs, seconds, seconds > 0 ? (double)jobs / seconds : 0,
         percentile(b.submit_us, b.answered, 0.50),
         percentile(b.submit_us, b.answered, 0.99),
         b.submit ? percentile(b.assign_us, assigned, 0.50) : 0,
         b.submit ? percentile(b.assign_us, assigned, 0.99) : 0, b.errors);
  ev_timer_stop(b.loop, &b.guard);
  ev_timer_stop(b.loop, &b.pacer);
  for (uint32_t i = 0; i < b.workers; i++) {
    if (b.worker_list[i].call != NULL) {
      rpc_client_call_cancel(b.worker_list[i].call);
    }
  }
  if (b.watch_call != NULL) {
    rpc_client_call_cancel(b.watch_call);
  }
  rpc_channel_free(b.watch_channel);
  for (uint32_t i = 0; i < n_channels; i++) {
    rpc_channel_free(b.submitters[i].channel);
  }
  for (uint32_t i = 0; b.work && i < b.workers; i++) {
    rpc_channel_free(b.worker_list[i].channel);
  }
  free(b.submit_us);
  free(b.assign_us);
  free(b.seen);
  free(b.submitters);
  free(b.worker_list);
  return b.errors == 0 && jobs == b.jobs ? 0 : 1;
}
