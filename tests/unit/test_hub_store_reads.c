/* test_hub_store_reads.c: Jobs.GetResult and Jobs.History against a hub
 * whose store's reads are held back (a store of this test's own, through
 * the ops table: SQLite, with load_result and load_events parked until the
 * test lets them go). While they wait, the core keeps answering other
 * calls (Get, Submit, Reset), a waiting call whose client gave up is
 * answered and freed once, and the held calls answer from the read. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "jobhub/v1/jobs.rpc.h"
#include "jobhub/v1/workers.rpc.h"
#include "rpc/client.h"
#include "rpc/log.h"
#include "server/core/hub.h"
#include "server/services/jobs.h"
#include "server/services/workers.h"
#include "server/store/sqlite.h"

/* A read the held store has not passed on yet. */
typedef struct parked_read {
  struct parked_read *next;
  uint64_t sequence;
  bool events;
  job_store_read_fn done;
  void *arg;
} parked_read;

/* The held store: SQLite underneath; reads wait in parked (core thread
 * only) until release runs on the core's loop. */
typedef struct held_store {
  job_store base;
  job_store *sqlite;
  struct ev_loop *loop;
  ev_async release;
  parked_read *parked;
  bool released;
} held_store;

static held_store *held;
static atomic_int reads_asked;

static held_store *held_of(job_store *store) { return (held_store *)store; }

static int pass_on(held_store *store, uint64_t sequence, bool events,
                   job_store_read_fn done, void *arg) {
  return events ? job_store_load_events(store->sqlite, sequence, done, arg)
                : job_store_load_result(store->sqlite, sequence, done, arg);
}

static void pass_on_parked(held_store *store) {
  while (store->parked != NULL) {
    parked_read *read = store->parked;
    store->parked = read->next;
    if (pass_on(store, read->sequence, read->events, read->done, read->arg) !=
        0) {
      fail_msg("the SQLite store refused a read");
    }
    free(read);
  }
}

static void on_release(struct ev_loop *loop, ev_async *watcher, int events) {
  (void)loop;
  (void)events;
  held_store *store = watcher->data;
  store->released = true;
  pass_on_parked(store);
}

static int park(job_store *base, uint64_t sequence, bool events,
                job_store_read_fn done, void *arg) {
  held_store *store = held_of(base);
  atomic_fetch_add(&reads_asked, 1);
  if (store->released) {
    return pass_on(store, sequence, events, done, arg);
  }
  parked_read *read = calloc(1, sizeof(*read));
  if (read == NULL) {
    return -1;
  }
  /* Last first: the order of completions is not what this test checks. */
  *read = (parked_read){store->parked, sequence, events, done, arg};
  store->parked = read;
  return 0;
}

static job_store *held_open(const char *dir, struct ev_loop *loop, char *err,
                            size_t err_size);

static int held_save_job(job_store *store, const stored_job *job,
                         const stored_event *event, job_store_done_fn done,
                         void *arg) {
  return job_store_save_job(held_of(store)->sqlite, job, event, done, arg);
}

static int held_load_jobs(job_store *store,
                          int (*each)(const stored_job *job, void *arg),
                          void *arg) {
  return job_store_load_jobs(held_of(store)->sqlite, each, arg);
}

static int held_load_result(job_store *store, uint64_t sequence,
                            job_store_read_fn done, void *arg) {
  return park(store, sequence, false, done, arg);
}

static int held_load_events(job_store *store, uint64_t sequence,
                            job_store_read_fn done, void *arg) {
  return park(store, sequence, true, done, arg);
}

static uint64_t held_commits(const job_store *store) {
  return job_store_commits(((const held_store *)store)->sqlite);
}

static uint64_t held_writes(const job_store *store) {
  return job_store_writes(((const held_store *)store)->sqlite);
}

static void held_on_written(job_store *store,
                            void (*fn)(uint64_t sequence, void *arg),
                            void *arg) {
  job_store_on_written(held_of(store)->sqlite, fn, arg);
}

static void held_error(job_store *store, char *why, size_t why_size) {
  job_store_error(held_of(store)->sqlite, why, why_size);
}

static void held_on_writable(job_store *store,
                             void (*fn)(bool writable, void *arg), void *arg) {
  job_store_on_writable(held_of(store)->sqlite, fn, arg);
}

/* Reads still parked go to SQLite, whose close does them. */
static void held_close(job_store *base) {
  held_store *store = held_of(base);
  ev_async_stop(store->loop, &store->release);
  pass_on_parked(store);
  job_store_close(store->sqlite);
  free(store);
  held = NULL;
}

static const job_store_ops held_ops = {
    .name = "held",
    .open = held_open,
    .save_job = held_save_job,
    .load_jobs = held_load_jobs,
    .load_result = held_load_result,
    .load_events = held_load_events,
    .commits = held_commits,
    .writes = held_writes,
    .on_written = held_on_written,
    .error = held_error,
    .on_writable = held_on_writable,
    .close = held_close,
};

static job_store *held_open(const char *dir, struct ev_loop *loop, char *err,
                            size_t err_size) {
  held_store *store = calloc(1, sizeof(*store));
  if (store == NULL) {
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  store->sqlite =
      job_store_open(&job_store_sqlite_ops, dir, loop, err, err_size);
  if (store->sqlite == NULL) {
    free(store);
    return NULL;
  }
  store->base.ops = &held_ops;
  store->loop = loop;
  ev_async_init(&store->release, on_release);
  store->release.data = store;
  ev_async_start(loop, &store->release);
  held = store;
  return &store->base;
}

/* The hub, served on a port of 127.0.0.1. */
static struct {
  char dir[64];
  job_hub *hub;
  rpc_server *server;
  char target[64];
} f;

static int setup(void **state) {
  (void)state;
  char err[256];
  rpc_log_set_level(RPC_LOG_ERROR);
  snprintf(f.dir, sizeof(f.dir), "/tmp/jobhub-hub-reads-XXXXXX");
  if (mkdtemp(f.dir) == NULL) {
    return -1;
  }
  hub_options hub_config = {
      .data_dir = f.dir,
      .store = &held_ops,
      .lease_seconds = 60,
      .max_attempts = 3,
      .retry_backoff_ms = 1000,
      .worker_timeout = 30,
  };
  f.hub = hub_open(&hub_config, err, sizeof(err));
  rpc_server_options options;
  rpc_server_options_default(&options);
  options.listen = "127.0.0.1:0";
  options.threads = 1;
  f.server = f.hub != NULL ? rpc_server_new(&options, err, sizeof(err)) : NULL;
  if (f.server == NULL || jobs_service_add(f.server, f.hub) != 0 ||
      workers_service_add(f.server, f.hub) != 0 ||
      rpc_server_start(f.server, err, sizeof(err)) != 0) {
    fprintf(stderr, "setup: %s\n", err);
    return -1;
  }
  snprintf(f.target, sizeof(f.target), "127.0.0.1:%u",
           rpc_server_port(f.server));
  return 0;
}

static int teardown(void **state) {
  (void)state;
  hub_stop_streams(f.hub);
  rpc_server_shutdown(f.server);
  hub_close(f.hub);
  rpc_server_free(f.server);
  char command[128];
  snprintf(command, sizeof(command), "rm -rf %s", f.dir);
  return system(command) == 0 ? 0 : -1;
}

static rpc_channel *open_channel(void) {
  char err[256];
  rpc_channel_options options = {.target = f.target};
  rpc_channel *channel = rpc_channel_new(NULL, &options, err, sizeof(err));
  assert_non_null(channel);
  return channel;
}

static const rpc_call_options five_seconds = {.timeout_ms = 5000};

static void assert_ok(rpc_status_code code, rpc_status *status) {
  if (code != RPC_STATUS_OK) {
    fail_msg("%s: %s", rpc_status_code_name((int)code),
             status->message ? status->message : "");
  }
}

/* Submits a job and returns its id (malloc'd). */
static char *submit(rpc_channel *channel, const char *payload) {
  Jobhub__V1__SubmitRequest request = JOBHUB__V1__SUBMIT_REQUEST__INIT;
  request.pool_id = 1;
  request.job_type_id = 1;
  request.payload.data = (uint8_t *)payload;
  request.payload.len = strlen(payload);
  Jobhub__V1__Job *job = NULL;
  rpc_status status = {0};
  assert_ok(
      jobhub_v1_jobs_submit(channel, &request, &job, &five_seconds, &status),
      &status);
  char *id = strdup(job->id);
  jobhub__v1__job__free_unpacked(job, NULL);
  return id;
}

/* Leases the one queued job and completes it with result bytes. */
static void lease_and_complete(rpc_channel *channel, const char *id,
                               const char *result) {
  static char worker[] = "test-worker";
  uint32_t job_types[] = {1};
  Jobhub__V1__LeaseRequest lease = JOBHUB__V1__LEASE_REQUEST__INIT;
  lease.client_id = worker;
  lease.pool_id = 1;
  lease.n_job_type_ids = 1;
  lease.job_type_ids = job_types;
  lease.max_jobs = 1;
  Jobhub__V1__LeaseResponse *leased = NULL;
  rpc_status status = {0};
  assert_ok(
      jobhub_v1_workers_lease(channel, &lease, &leased, &five_seconds, &status),
      &status);
  assert_int_equal(leased->n_assignments, 1);
  assert_string_equal(leased->assignments[0]->job->id, id);
  Jobhub__V1__JobResult job_result = JOBHUB__V1__JOB_RESULT__INIT;
  job_result.job_id = (char *)id;
  job_result.data.data = (uint8_t *)result;
  job_result.data.len = strlen(result);
  Jobhub__V1__CompleteRequest complete = JOBHUB__V1__COMPLETE_REQUEST__INIT;
  complete.client_id = worker;
  complete.job_id = (char *)id;
  complete.lease_id = leased->assignments[0]->lease_id;
  complete.result = &job_result;
  Jobhub__V1__Job *done = NULL;
  assert_ok(jobhub_v1_workers_complete(channel, &complete, &done, &five_seconds,
                                       &status),
            &status);
  assert_int_equal(done->state, JOBHUB__V1__JOB_STATE__DONE);
  jobhub__v1__job__free_unpacked(done, NULL);
  jobhub__v1__lease_response__free_unpacked(leased, NULL);
}

/* A GetResult or History call made on a thread of its own. */
typedef struct held_call {
  const char *id;
  bool history;
  uint64_t timeout_ms;
  pthread_t thread;
  atomic_bool answered;
  rpc_status_code code;
  char result[64];   /* GetResult: the result's data */
  size_t n_events;   /* History */
  int last_to_state; /* History: its last event's */
} held_call;

static void *run_held_call(void *arg) {
  held_call *call = arg;
  rpc_channel *channel = open_channel();
  rpc_call_options options = {.timeout_ms = call->timeout_ms};
  rpc_status status = {0};
  if (call->history) {
    Jobhub__V1__HistoryRequest request = JOBHUB__V1__HISTORY_REQUEST__INIT;
    request.id = (char *)call->id;
    Jobhub__V1__HistoryResponse *response = NULL;
    call->code =
        jobhub_v1_jobs_history(channel, &request, &response, &options, &status);
    if (response != NULL) {
      call->n_events = response->n_events;
      call->last_to_state =
          response->n_events > 0
              ? (int)response->events[response->n_events - 1]->to_state
              : -1;
      jobhub__v1__history_response__free_unpacked(response, NULL);
    }
  } else {
    Jobhub__V1__GetResultRequest request = JOBHUB__V1__GET_RESULT_REQUEST__INIT;
    request.id = (char *)call->id;
    Jobhub__V1__JobResult *response = NULL;
    call->code = jobhub_v1_jobs_get_result(channel, &request, &response,
                                           &options, &status);
    if (response != NULL) {
      snprintf(call->result, sizeof(call->result), "%.*s",
               (int)response->data.len, (const char *)response->data.data);
      jobhub__v1__job_result__free_unpacked(response, NULL);
    }
  }
  rpc_status_clear(&status);
  rpc_channel_free(channel);
  atomic_store(&call->answered, true);
  return NULL;
}

static void start_held_call(held_call *call) {
  assert_int_equal(pthread_create(&call->thread, NULL, run_held_call, call), 0);
}

/* Waits (bounded by 5 s) until the store was asked for want reads. */
static void wait_reads_asked(int want) {
  for (int i = 0; i < 5000 && atomic_load(&reads_asked) < want; i++) {
    usleep(1000);
  }
  assert_int_equal(atomic_load(&reads_asked), want);
}

static void test_a_held_read_stalls_only_its_calls(void **state) {
  (void)state;
  rpc_channel *channel = open_channel();
  char *id = submit(channel, "slow-read");
  lease_and_complete(channel, id, "the result");

  held_call get_result = {.id = id, .timeout_ms = 20000};
  held_call history = {.id = id, .history = true, .timeout_ms = 20000};
  /* A client that gives up while its read is held: the hub answers the
   * call (to nobody) once the read is done, and frees it once. */
  held_call given_up = {.id = id, .timeout_ms = 200};
  start_held_call(&get_result);
  start_held_call(&history);
  start_held_call(&given_up);
  wait_reads_asked(3);

  /* The core answers everything else meanwhile. */
  Jobhub__V1__GetRequest get = JOBHUB__V1__GET_REQUEST__INIT;
  get.id = id;
  Jobhub__V1__Job *job = NULL;
  rpc_status status = {0};
  assert_ok(jobhub_v1_jobs_get(channel, &get, &job, &five_seconds, &status),
            &status);
  assert_int_equal(job->state, JOBHUB__V1__JOB_STATE__DONE);
  jobhub__v1__job__free_unpacked(job, NULL);
  char *other = submit(channel, "while a read is held");
  assert_string_not_equal(other, id);
  free(other);
  /* And the job changes under the held reads: Reset queues it again. */
  Jobhub__V1__ResetRequest reset = JOBHUB__V1__RESET_REQUEST__INIT;
  char *ids[] = {id};
  reset.n_ids = 1;
  reset.ids = ids;
  Jobhub__V1__ResetResponse *reset_response = NULL;
  assert_ok(jobhub_v1_jobs_reset(channel, &reset, &reset_response,
                                 &five_seconds, &status),
            &status);
  jobhub__v1__reset_response__free_unpacked(reset_response, NULL);
  assert_int_equal(pthread_join(given_up.thread, NULL), 0);
  assert_int_equal(given_up.code, RPC_STATUS_DEADLINE_EXCEEDED);
  assert_false(atomic_load(&get_result.answered));
  assert_false(atomic_load(&history.answered));

  ev_async_send(held->loop, &held->release);
  assert_int_equal(pthread_join(get_result.thread, NULL), 0);
  assert_int_equal(pthread_join(history.thread, NULL), 0);
  /* GetResult was asked while the job was DONE: its result, as stored. */
  assert_int_equal(get_result.code, RPC_STATUS_OK);
  assert_string_equal(get_result.result, "the result");
  /* History reads what is durable when the read runs: the Reset too. */
  assert_int_equal(history.code, RPC_STATUS_OK);
  assert_true(history.n_events >= 3); /* submitted, leased, done, ... */
  assert_int_equal(history.last_to_state, JOBHUB__V1__JOB_STATE__QUEUED);

  /* Reads let go: the next ones answer at once. */
  held_call again = {.id = id, .history = true, .timeout_ms = 5000};
  run_held_call(&again);
  assert_int_equal(again.code, RPC_STATUS_OK);
  assert_int_equal(again.n_events, history.n_events);
  free(id);
  rpc_channel_free(channel);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_a_held_read_stalls_only_its_calls),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
