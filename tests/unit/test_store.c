/* test_store.c: the SQLite job store through its operations table:
 * durability across reopen, upsert, the update path that leaves the fixed
 * part alone, results and events read off the loop (in order, seeing every
 * write acknowledged, at close), group commit, per-write failures, and
 * schema checks. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>
#include <sqlite3.h>

#include "server/store/sqlite.h"

#define JOBS 2000
/* Sequences of the jobs of the later tests, apart from 0..JOBS+1. */
#define UPDATED 0x100001
#define NEVER_STORED 0x199999
#define WITH_RESULT 0x200001
#define EVENTS_A 0x300001
#define EVENTS_B 0x300002
#define EVENTS_NONE 0x300003

static char dir[64];

static int make_dir(void **state) {
  (void)state;
  snprintf(dir, sizeof(dir), "/tmp/jobhub-store-test-XXXXXX");
  return mkdtemp(dir) != NULL ? 0 : -1;
}

static int remove_dir(void **state) {
  (void)state;
  char command[128];
  snprintf(command, sizeof(command), "rm -rf %s", dir);
  return system(command) == 0 ? 0 : -1;
}

/* Opens the SQLite store in path, through its operations table. */
static job_store *open_store(const char *path, struct ev_loop *loop) {
  char err[256];
  job_store *store =
      job_store_open(&job_store_sqlite_ops, path, loop, err, sizeof(err));
  if (store == NULL) {
    fail_msg("open: %s", err);
  }
  return store;
}

typedef struct tally {
  int done;
  int failed;
  int status; /* of the last failure */
} tally;

static void on_done(int status, void *arg) {
  tally *t = arg;
  t->done++;
  t->failed += status != 0;
  if (status != 0) {
    t->status = status;
  }
}

static stored_job job_record(int i, char *key, size_t key_size) {
  snprintf(key, key_size, "key-%05d", i);
  static uint8_t body[100];
  memset(body, 'b', sizeof(body));
  return (stored_job){.sequence = (uint64_t)i,
                      .state = 1,
                      .pool_id = (uint32_t)(i % 3),
                      .job_type_id = 1,
                      .priority = i % 5,
                      .created_us = 1000 + i,
                      .idempotency_key = key,
                      .job = body,
                      .job_size = sizeof(body)};
}

/* Runs loop until t->done reaches want (bounded by 20 s). */
static void wait_done(struct ev_loop *loop, tally *t, int want) {
  for (int i = 0; i < 20000 && t->done < want; i++) {
    ev_run(loop, EVRUN_ONCE | EVRUN_NOWAIT);
    usleep(1000);
  }
  assert_int_equal(t->done, want);
}

typedef struct event_log {
  int count;
  stored_event events[16]; /* actor and detail point into the arrays */
  char actors[16][16], details[16][16];
  int has_detail[16];
} event_log;

/* Copies the event: it is borrowed for the call only. */
static void log_event(const stored_event *event, event_log *log) {
  assert_true(log->count < 16);
  int i = log->count++;
  log->events[i] = *event;
  assert_non_null(event->actor);
  snprintf(log->actors[i], sizeof(log->actors[i]), "%s", event->actor);
  log->has_detail[i] = event->detail != NULL;
  snprintf(log->details[i], sizeof(log->details[i]), "%s",
           event->detail ? event->detail : "");
  log->events[i].actor = log->actors[i];
  log->events[i].detail = log->has_detail[i] ? log->details[i] : NULL;
}

/* A read's completion, copied (what it is given is borrowed). */
typedef struct read_outcome {
  int calls;
  int status;
  uint64_t sequence;
  int order; /* how many reads had completed before it, plus one */
  bool has_result;
  uint8_t result[64];
  size_t result_size;
  event_log log;
} read_outcome;

static int reads_completed;

static void on_read(int status, const stored_read *read, void *arg) {
  read_outcome *out = arg;
  out->calls++;
  out->status = status;
  out->sequence = read->sequence;
  out->order = ++reads_completed;
  out->has_result = read->result != NULL;
  out->result_size = read->result_size;
  if (read->result != NULL) {
    assert_true(read->result_size <= sizeof(out->result));
    memcpy(out->result, read->result, read->result_size);
  }
  for (const stored_event *e = read->events; e != NULL; e = e->next) {
    log_event(e, &out->log);
  }
}

/* Runs loop until out's read completed (bounded by 20 s). */
static void wait_read(struct ev_loop *loop, const read_outcome *out) {
  for (int i = 0; i < 20000 && out->calls == 0; i++) {
    ev_run(loop, EVRUN_ONCE | EVRUN_NOWAIT);
    usleep(1000);
  }
  assert_int_equal(out->calls, 1);
}

/* Reads job sequence's events (events true) or result into *out and
 * waits for it: the completion never runs before the call returns. */
static void read_job(job_store *store, struct ev_loop *loop, uint64_t sequence,
                     bool events, read_outcome *out) {
  *out = (read_outcome){0};
  assert_int_equal(events
                       ? job_store_load_events(store, sequence, on_read, out)
                       : job_store_load_result(store, sequence, on_read, out),
                   0);
  assert_int_equal(out->calls, 0);
  wait_read(loop, out);
  assert_true(out->sequence == sequence);
  assert_int_equal(events ? out->has_result : out->log.count, 0);
}

static void read_result(job_store *store, struct ev_loop *loop,
                        uint64_t sequence, read_outcome *out) {
  read_job(store, loop, sequence, false, out);
}

static void read_events(job_store *store, struct ev_loop *loop,
                        uint64_t sequence, read_outcome *out) {
  read_job(store, loop, sequence, true, out);
}

static int count_job(const stored_job *job, void *arg) {
  int *count = arg;
  assert_int_equal(job->job_size, 100);
  (*count)++;
  return 0;
}

static void test_jobs_survive_reopen_and_are_group_committed(void **state) {
  (void)state;
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  job_store *store = open_store(dir, loop);
  tally t = {0};
  for (int i = 0; i < JOBS; i++) {
    char key[32];
    stored_job job = job_record(i, key, sizeof(key));
    stored_event event = {.from_state = 0,
                          .to_state = 1,
                          .time_us = 1000 + i,
                          .actor = "client:test"};
    assert_int_equal(job_store_save_job(store, &job, &event, on_done, &t), 0);
  }
  wait_done(loop, &t, JOBS);
  assert_int_equal(t.failed, 0);
  uint64_t commits = job_store_commits(store);
  printf("%d writes in %llu commits\n", JOBS, (unsigned long long)commits);
  assert_true(job_store_writes(store) == JOBS);
  assert_true(commits < JOBS / 4); /* writes were grouped */
  job_store_close(store);

  store = open_store(dir, loop);
  int count = 0;
  assert_int_equal(job_store_load_jobs(store, count_job, &count), 0);
  assert_int_equal(count, JOBS);
  job_store_close(store);
  ev_loop_destroy(loop);
}

static int find_state(const stored_job *job, void *arg) {
  int *state = arg;
  if (job->sequence == 7) {
    *state = job->state;
    assert_int_equal(job->result_size, 3);
    assert_memory_equal(job->result, "res", 3);
    assert_string_equal(job->idempotency_key, "key-00007");
  }
  return 0;
}

static void test_upsert_and_events(void **state) {
  (void)state;
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  job_store *store = open_store(dir, loop);
  char key[32];
  stored_job job = job_record(7, key, sizeof(key));
  job.state = 3;
  job.result = (const uint8_t *)"res";
  job.result_size = 3;
  stored_event event = {.from_state = 2,
                        .to_state = 3,
                        .time_us = 5000,
                        .actor = "worker:7",
                        .worker_idx = 7,
                        .detail = "done"};
  tally t = {0};
  assert_int_equal(job_store_save_job(store, &job, &event, on_done, &t), 0);
  wait_done(loop, &t, 1);
  assert_int_equal(t.failed, 0);
  int found = 0;
  assert_int_equal(job_store_load_jobs(store, find_state, &found), 0);
  assert_int_equal(found, 3);
  read_outcome events;
  read_events(store, loop, 7, &events);
  assert_int_equal(events.status, 0);
  assert_int_equal(events.log.count, 2); /* submitted, then done */
  assert_int_equal(events.log.events[0].to_state, 1);
  assert_int_equal(events.log.events[1].to_state, 3);
  job_store_close(store);
  ev_loop_destroy(loop);
}

static void test_duplicate_idempotency_key_fails_alone(void **state) {
  (void)state;
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  job_store *store = open_store(dir, loop);
  char key[32];
  stored_job clash = job_record(1, key, sizeof(key));
  clash.sequence = 900001; /* another job, with the key of job 1 */
  char key2[32];
  stored_job fine = job_record(JOBS + 1, key2, sizeof(key2));
  tally bad = {0}, good = {0};
  assert_int_equal(job_store_save_job(store, &clash, NULL, on_done, &bad), 0);
  assert_int_equal(job_store_save_job(store, &fine, NULL, on_done, &good), 0);
  wait_done(loop, &bad, 1);
  wait_done(loop, &good, 1);
  assert_int_equal(bad.failed, 1);
  assert_int_equal(bad.status, JOB_STORE_REFUSED);
  assert_int_equal(good.failed, 0);
  char why[256];
  job_store_error(store, why, sizeof(why));
  assert_non_null(strstr(why, "UNIQUE"));
  job_store_close(store);
  ev_loop_destroy(loop);
}

static void test_close_runs_owed_callbacks(void **state) {
  (void)state;
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  job_store *store = open_store(dir, loop);
  tally t = {0};
  for (int i = 0; i < 50; i++) {
    char key[32];
    stored_job job = job_record(i, key, sizeof(key));
    job.idempotency_key = NULL;
    assert_int_equal(job_store_save_job(store, &job, NULL, on_done, &t), 0);
  }
  job_store_close(store); /* no loop run: close delivers them */
  assert_int_equal(t.done, 50);
  assert_int_equal(t.failed, 0);
  ev_loop_destroy(loop);
}

/* A copy of one stored job, taken from job_store_load_jobs. */
typedef struct job_copy {
  uint64_t want_sequence;
  int found;
  int state;
  uint32_t pool_id, job_type_id, lease_seconds, max_attempts;
  int32_t priority;
  int64_t not_before_us, created_us, lease_expires_us;
  char idempotency_key[32], subject[32];
  uint8_t job[32], status[32], result[32];
  size_t job_size, status_size, result_size;
  int has_status, has_result;
  uint64_t last_sequence; /* of the jobs seen, to check the order */
  int seen;
  int out_of_order;
} job_copy;

static void copy_bytes(uint8_t *to, size_t *to_size, int *has,
                       const uint8_t *from, size_t size) {
  assert_true(size <= 32);
  *has = from != NULL;
  *to_size = size;
  if (size > 0) {
    memcpy(to, from, size);
  }
}

static int copy_job(const stored_job *job, void *arg) {
  job_copy *c = arg;
  if (c->seen++ > 0 && c->last_sequence >= job->sequence) {
    c->out_of_order++;
  }
  c->last_sequence = job->sequence;
  if (job->sequence != c->want_sequence) {
    return 0;
  }
  c->found++;
  c->state = job->state;
  c->pool_id = job->pool_id;
  c->job_type_id = job->job_type_id;
  c->lease_seconds = job->lease_seconds;
  c->max_attempts = job->max_attempts;
  c->priority = job->priority;
  c->not_before_us = job->not_before_us;
  c->created_us = job->created_us;
  c->lease_expires_us = job->lease_expires_us;
  snprintf(c->idempotency_key, sizeof(c->idempotency_key), "%s",
           job->idempotency_key ? job->idempotency_key : "(null)");
  snprintf(c->subject, sizeof(c->subject), "%s",
           job->subject ? job->subject : "(null)");
  int has_job;
  copy_bytes(c->job, &c->job_size, &has_job, job->job, job->job_size);
  assert_true(has_job);
  copy_bytes(c->status, &c->status_size, &c->has_status, job->status,
             job->status_size);
  copy_bytes(c->result, &c->result_size, &c->has_result, job->result,
             job->result_size);
  return 0;
}

static job_copy load_copy(job_store *store, uint64_t sequence) {
  job_copy c = {.want_sequence = sequence};
  assert_int_equal(job_store_load_jobs(store, copy_job, &c), 0);
  assert_int_equal(c.out_of_order, 0); /* in sequence order */
  return c;
}

static void save_and_wait(job_store *store, struct ev_loop *loop,
                          const stored_job *job, const stored_event *event) {
  tally t = {0};
  assert_int_equal(job_store_save_job(store, job, event, on_done, &t), 0);
  wait_done(loop, &t, 1);
  assert_int_equal(t.failed, 0);
}

static void check_result(job_store *store, struct ev_loop *loop,
                         uint64_t sequence, const char *want) {
  read_outcome out;
  read_result(store, loop, sequence, &out);
  assert_int_equal(out.status, 0);
  if (want == NULL) {
    assert_false(out.has_result);
    assert_int_equal(out.result_size, 0);
  } else {
    assert_true(out.has_result);
    assert_int_equal(out.result_size, strlen(want));
    assert_memory_equal(out.result, want, out.result_size);
  }
}

/* The fields a save with job NULL must leave alone, as first saved. */
static void check_fixed_columns(const job_copy *c) {
  assert_int_equal(c->found, 1);
  assert_int_equal(c->pool_id, 2);
  assert_int_equal(c->job_type_id, 3);
  assert_int_equal(c->priority, 4);
  assert_true(c->created_us == 20);
  assert_string_equal(c->idempotency_key, "upd-key");
  assert_string_equal(c->subject, "upd-subject");
  assert_int_equal(c->lease_seconds, 30);
  assert_int_equal(c->max_attempts, 5);
  assert_int_equal(c->job_size, 5);
  assert_memory_equal(c->job, "fixed", 5);
}

static void test_update_writes_only_the_changing_fields(void **state) {
  (void)state;
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  job_store *store = open_store(dir, loop);
  stored_job job = {.sequence = UPDATED,
                    .state = 1,
                    .pool_id = 2,
                    .job_type_id = 3,
                    .priority = 4,
                    .not_before_us = 10,
                    .created_us = 20,
                    .lease_expires_us = 0,
                    .idempotency_key = "upd-key",
                    .subject = "upd-subject",
                    .lease_seconds = 30,
                    .max_attempts = 5,
                    .job = (const uint8_t *)"fixed",
                    .job_size = 5,
                    .status = (const uint8_t *)"s1",
                    .status_size = 2};
  save_and_wait(store, loop, &job, NULL);
  job_copy c = load_copy(store, UPDATED);
  check_fixed_columns(&c);
  assert_int_equal(c.state, 1);
  assert_true(c.not_before_us == 10);
  assert_true(c.lease_expires_us == 0);
  assert_int_equal(c.status_size, 2);
  assert_memory_equal(c.status, "s1", 2);
  assert_false(c.has_result);
  check_result(store, loop, UPDATED, NULL);

  /* An update: every other field differs, and none of them may land. */
  stored_job update = {.sequence = UPDATED,
                       .state = 2,
                       .pool_id = 9,
                       .job_type_id = 9,
                       .priority = 9,
                       .not_before_us = 11,
                       .created_us = 99,
                       .lease_expires_us = 12345,
                       .idempotency_key = "other-key",
                       .subject = "other-subject",
                       .lease_seconds = 99,
                       .max_attempts = 99,
                       .status = (const uint8_t *)"s2-longer",
                       .status_size = 9};
  save_and_wait(store, loop, &update, NULL);
  c = load_copy(store, UPDATED);
  check_fixed_columns(&c);
  assert_int_equal(c.state, 2);
  assert_true(c.not_before_us == 11);
  assert_true(c.lease_expires_us == 12345);
  assert_int_equal(c.status_size, 9);
  assert_memory_equal(c.status, "s2-longer", 9);
  assert_false(c.has_result);
  check_result(store, loop, UPDATED, NULL);

  /* An update with a result writes it... */
  update.state = 3;
  update.lease_expires_us = 0;
  update.status = (const uint8_t *)"s3";
  update.status_size = 2;
  update.result = (const uint8_t *)"result-1";
  update.result_size = 8;
  save_and_wait(store, loop, &update, NULL);
  c = load_copy(store, UPDATED);
  check_fixed_columns(&c);
  assert_int_equal(c.state, 3);
  assert_true(c.lease_expires_us == 0);
  assert_memory_equal(c.status, "s3", 2);
  assert_true(c.has_result);
  assert_int_equal(c.result_size, 8);
  assert_memory_equal(c.result, "result-1", 8);
  check_result(store, loop, UPDATED, "result-1");

  /* ...and a later one without a result keeps it. */
  update.state = 5;
  update.not_before_us = 77;
  update.status = (const uint8_t *)"s4";
  update.result = NULL;
  update.result_size = 0;
  save_and_wait(store, loop, &update, NULL);
  c = load_copy(store, UPDATED);
  check_fixed_columns(&c);
  assert_int_equal(c.state, 5);
  assert_true(c.not_before_us == 77);
  assert_memory_equal(c.status, "s4", 2);
  assert_true(c.has_result);
  assert_int_equal(c.result_size, 8);
  assert_memory_equal(c.result, "result-1", 8);
  check_result(store, loop, UPDATED, "result-1");

  /* An update of a job never stored fails and inserts nothing. */
  stored_job stray = {.sequence = NEVER_STORED,
                      .state = 2,
                      .status = (const uint8_t *)"s",
                      .status_size = 1,
                      .result = (const uint8_t *)"r",
                      .result_size = 1};
  tally t = {0};
  assert_int_equal(job_store_save_job(store, &stray, NULL, on_done, &t), 0);
  wait_done(loop, &t, 1);
  assert_int_equal(t.failed, 1);
  c = load_copy(store, NEVER_STORED);
  assert_int_equal(c.found, 0);
  check_result(store, loop, NEVER_STORED, NULL);
  job_store_close(store);

  /* All of it was durable. */
  store = open_store(dir, loop);
  c = load_copy(store, UPDATED);
  check_fixed_columns(&c);
  assert_int_equal(c.state, 5);
  assert_memory_equal(c.status, "s4", 2);
  check_result(store, loop, UPDATED, "result-1");
  job_store_close(store);
  ev_loop_destroy(loop);
}

typedef struct writable_log {
  int changes;
  bool writable;
} writable_log;

static void on_writable(bool writable, void *arg) {
  writable_log *log = arg;
  log->changes++;
  log->writable = writable;
}

/* Counts the stored jobs of test_failed_file_write_fails_the_group. */
static int count_probe_range(const stored_job *job, void *arg) {
  int *count = arg;
  *count += job->sequence >= 0x400001 && job->sequence <= 0x400101;
  return 0;
}

static off_t file_size(const char *name) {
  char path[128];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  struct stat st;
  return stat(path, &st) == 0 ? st.st_size : 0;
}

/* A file that cannot grow (RLIMIT_FSIZE: as a full disk does, EFBIG for
 * ENOSPC) fails every write of the groups it hit, none of them stored;
 * the store turns not writable, and writable again through its probe
 * once the file may grow, without any other write. */
static void test_failed_file_write_fails_the_group(void **state) {
  (void)state;
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  job_store *store = open_store(dir, loop);
  writable_log log = {0, true};
  job_store_on_writable(store, on_writable, &log);
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit before;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &before), 0);
  off_t wal = file_size("jobhub.db-wal");
  off_t db = file_size("jobhub.db");
  struct rlimit limited = before;
  limited.rlim_cur = (rlim_t)(wal > db ? wal : db);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &limited), 0);
  enum { REFUSED_JOBS = 40 };
  static uint8_t big[8192];
  memset(big, 'x', sizeof(big));
  tally t = {0};
  for (int i = 0; i < REFUSED_JOBS; i++) {
    stored_job job = {.sequence = (uint64_t)(0x400001 + i),
                      .state = 1,
                      .job = big,
                      .job_size = sizeof(big)};
    assert_int_equal(job_store_save_job(store, &job, NULL, on_done, &t), 0);
  }
  wait_done(loop, &t, REFUSED_JOBS);
  assert_int_equal(t.failed, REFUSED_JOBS);
  assert_true(t.status == JOB_STORE_FULL || t.status == JOB_STORE_IO);
  assert_int_equal(log.changes, 1);
  assert_false(log.writable);
  char why[256];
  job_store_error(store, why, sizeof(why));
  assert_true(why[0] != '\0');

  assert_int_equal(setrlimit(RLIMIT_FSIZE, &before), 0);
  for (int i = 0; i < 5000 && !log.writable; i++) {
    ev_run(loop, EVRUN_ONCE | EVRUN_NOWAIT);
    usleep(1000);
  }
  assert_true(log.writable); /* the probe wrote */
  assert_int_equal(log.changes, 2);
  tally ok = {0};
  stored_job after = {
      .sequence = 0x400101, .state = 1, .job = big, .job_size = sizeof(big)};
  assert_int_equal(job_store_save_job(store, &after, NULL, on_done, &ok), 0);
  wait_done(loop, &ok, 1);
  assert_int_equal(ok.failed, 0);
  job_store_close(store);

  store = open_store(dir, loop);
  int stored = 0; /* the one written after, none of the refused */
  assert_int_equal(job_store_load_jobs(store, count_probe_range, &stored), 0);
  assert_int_equal(stored, 1);
  job_store_close(store);
  ev_loop_destroy(loop);
}

static void test_load_result(void **state) {
  (void)state;
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  job_store *store = open_store(dir, loop);
  /* A result with zero bytes inside, saved with the whole job. */
  static const uint8_t result[] = {0x0a, 0x00, 0x1a, 0x03, 0x00, 0xff, 0x00};
  stored_job job = {.sequence = WITH_RESULT,
                    .state = 3,
                    .job = (const uint8_t *)"j",
                    .job_size = 1,
                    .result = result,
                    .result_size = sizeof(result)};
  save_and_wait(store, loop, &job, NULL);
  read_outcome loaded;
  read_result(store, loop, WITH_RESULT, &loaded);
  assert_int_equal(loaded.status, 0);
  assert_true(loaded.has_result);
  assert_int_equal(loaded.result_size, sizeof(result));
  assert_memory_equal(loaded.result, result, sizeof(result));
  /* Unknown jobs and jobs without one have none; reads repeat. */
  check_result(store, loop, NEVER_STORED, NULL);
  check_result(store, loop, UINT64_MAX, NULL);
  check_result(store, loop, 3, NULL); /* saved without a result */
  read_result(store, loop, WITH_RESULT, &loaded);
  assert_int_equal(loaded.result_size, sizeof(result));
  job_store_close(store);
  ev_loop_destroy(loop);
}

static void test_events_come_oldest_first(void **state) {
  (void)state;
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  job_store *store = open_store(dir, loop);
  static const struct {
    uint64_t sequence;
    int from, to;
    const char *actor;
    uint64_t worker_idx;
    const char *detail;
  } history[] = {
      {EVENTS_A, 0, 1, "client:1", 0, NULL},
      {EVENTS_B, 0, 1, "client:2", 0, "b submitted"},
      {EVENTS_A, 1, 2, "worker:5", 5, "leased"},
      {EVENTS_A, 2, 1, "hub", 5, "lease expired"},
      {EVENTS_B, 1, 5, "client:2", 0, NULL},
      {EVENTS_A, 1, 2, "worker:6", UINT64_MAX, NULL},
      {EVENTS_A, 2, 3, "worker:6", UINT64_MAX, "done"},
  };
  enum { N = sizeof(history) / sizeof(history[0]) };
  /* The first two in transactions of their own, the rest queued at once
   * so they share one; each job is saved whole, then updated. */
  tally t = {0};
  bool saved_a = false, saved_b = false;
  for (size_t i = 0; i < N; i++) {
    bool *saved = history[i].sequence == EVENTS_A ? &saved_a : &saved_b;
    stored_job job = {.sequence = history[i].sequence,
                      .state = history[i].to,
                      .status = (const uint8_t *)"s",
                      .status_size = 1};
    if (!*saved) {
      job.job = (const uint8_t *)"j";
      job.job_size = 1;
      *saved = true;
    }
    stored_event event = {.from_state = history[i].from,
                          .to_state = history[i].to,
                          .time_us = 1000 + (int64_t)i,
                          .actor = history[i].actor,
                          .worker_idx = history[i].worker_idx,
                          .detail = history[i].detail};
    assert_int_equal(job_store_save_job(store, &job, &event, on_done, &t), 0);
    if (i < 2) {
      wait_done(loop, &t, (int)i + 1);
    }
  }
  wait_done(loop, &t, N);
  assert_int_equal(t.failed, 0);

  for (int pass = 0; pass < 2; pass++) { /* the read can be repeated */
    if (pass == 1) {                     /* and survives a reopen */
      job_store_close(store);
      store = open_store(dir, loop);
    }
    static const uint64_t jobs[] = {EVENTS_A, EVENTS_B};
    for (size_t j = 0; j < 2; j++) {
      read_outcome read;
      read_events(store, loop, jobs[j], &read);
      assert_int_equal(read.status, 0);
      const event_log *log = &read.log;
      int k = 0;
      for (size_t i = 0; i < N; i++) {
        if (history[i].sequence != jobs[j]) {
          continue;
        }
        assert_true(k < log->count);
        assert_int_equal(log->events[k].from_state, history[i].from);
        assert_int_equal(log->events[k].to_state, history[i].to);
        assert_true(log->events[k].time_us == 1000 + (int64_t)i);
        assert_string_equal(log->actors[k], history[i].actor);
        assert_true(log->events[k].worker_idx == history[i].worker_idx);
        assert_int_equal(log->has_detail[k], history[i].detail != NULL);
        if (history[i].detail != NULL) {
          assert_string_equal(log->details[k], history[i].detail);
        }
        k++;
      }
      assert_int_equal(log->count, k);
    }
  }

  /* A job without events, and one never stored, have none. */
  stored_job quiet = {.sequence = EVENTS_NONE,
                      .state = 1,
                      .job = (const uint8_t *)"j",
                      .job_size = 1};
  save_and_wait(store, loop, &quiet, NULL);
  read_outcome none;
  read_events(store, loop, EVENTS_NONE, &none);
  assert_int_equal(none.status, 0);
  assert_int_equal(none.log.count, 0);
  read_events(store, loop, NEVER_STORED, &none);
  assert_int_equal(none.status, 0);
  assert_int_equal(none.log.count, 0);

  /* Reads asked for at once, of both kinds, complete in that order, none
   * before the loop runs. */
  read_outcome reads[6] = {0};
  static const uint64_t asked[] = {EVENTS_A,     EVENTS_B, EVENTS_A,
                                   NEVER_STORED, EVENTS_B, EVENTS_A};
  for (size_t i = 0; i < 6; i++) {
    assert_int_equal(
        i % 2 == 0 ? job_store_load_events(store, asked[i], on_read, &reads[i])
                   : job_store_load_result(store, asked[i], on_read, &reads[i]),
        0);
  }
  usleep(20000); /* time for the reader: still, nothing runs off the loop */
  for (size_t i = 0; i < 6; i++) {
    assert_int_equal(reads[i].calls, 0);
  }
  wait_read(loop, &reads[5]);
  for (size_t i = 0; i < 6; i++) {
    assert_int_equal(reads[i].calls, 1);
    assert_int_equal(reads[i].status, 0);
    assert_true(reads[i].sequence == asked[i]);
    assert_int_equal(reads[i].order, reads[0].order + (int)i);
  }
  assert_int_equal(reads[0].log.count, 5);
  assert_int_equal(reads[0].log.events[0].to_state, 1);
  assert_int_equal(reads[2].log.count, 5);
  assert_int_equal(reads[4].log.count, 2);
  for (size_t i = 1; i < 6; i += 2) {
    assert_false(reads[i].has_result); /* saved without one, or never */
  }
  job_store_close(store);
  ev_loop_destroy(loop);
}

/* Overwrites the stored history of job sequence with size bytes. */
static void damage_history(uint64_t sequence, const void *bytes, size_t size) {
  char path[128];
  snprintf(path, sizeof(path), "%s/jobhub.db", dir);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *s;
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "UPDATE jobs SET history = ?2"
                                      " WHERE seq = ?1",
                                      -1, &s, NULL),
                   SQLITE_OK);
  sqlite3_bind_int64(s, 1, (sqlite3_int64)sequence);
  sqlite3_bind_blob(s, 2, bytes, (int)size, SQLITE_TRANSIENT);
  assert_int_equal(sqlite3_step(s), SQLITE_DONE);
  assert_int_equal(sqlite3_changes(db), 1);
  sqlite3_finalize(s);
  sqlite3_close(db);
}

static void test_damaged_history_is_a_read_error(void **state) {
  (void)state;
  char path[128];
  snprintf(path, sizeof(path), "%s/jobhub.db", dir);
  /* The intact history of job 7 (two events, from the earlier tests). */
  uint8_t intact[512];
  size_t intact_size;
  {
    sqlite3 *db;
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT history FROM jobs WHERE seq = 7", -1, &s,
                           NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    intact_size = (size_t)sqlite3_column_bytes(s, 0);
    assert_true(intact_size <= sizeof(intact));
    memcpy(intact, sqlite3_column_blob(s, 0), intact_size);
    sqlite3_finalize(s);
    sqlite3_close(db);
  }
  assert_true(intact_size > 2);
  /* Cut short anywhere, or with bytes after the last event. */
  uint8_t longer[520];
  memcpy(longer, intact, intact_size);
  memset(longer + intact_size, 0xff, 5);
  const struct {
    const uint8_t *bytes;
    size_t size;
  } cases[] = {
      {intact, 1},
      {intact, intact_size / 2},
      {intact, intact_size - 1},
      {longer, intact_size + 5},
  };
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    damage_history(7, cases[i].bytes, cases[i].size);
    job_store *store = open_store(dir, loop);
    read_outcome damaged;
    read_events(store, loop, 7, &damaged);
    assert_int_equal(damaged.status, JOB_STORE_IO);
    assert_int_equal(damaged.log.count, 0);
    job_store_close(store);
  }
  damage_history(7, intact, intact_size);
  job_store *store = open_store(dir, loop);
  read_outcome intact_read;
  read_events(store, loop, 7, &intact_read);
  assert_int_equal(intact_read.status, 0);
  assert_int_equal(intact_read.log.count, 2);
  job_store_close(store);
  ev_loop_destroy(loop);
}

static int collect_sequence(const stored_job *job, void *arg) {
  uint64_t *seen = arg; /* seen[0] counts, the sequences follow */
  assert_true(seen[0] < 7);
  seen[++seen[0]] = job->sequence;
  return 0;
}

static int stop_at_second(const stored_job *job, void *arg) {
  (void)job;
  int *calls = arg;
  return ++*calls == 2 ? 42 : 0;
}

/* Sequences run to INT64_MAX (SQLite's integers are signed), in order;
 * a larger one is refused. */
static void test_jobs_load_in_sequence_order(void **state) {
  (void)state;
  char sub[96];
  snprintf(sub, sizeof(sub), "%s/order", dir);
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  job_store *store = open_store(sub, loop);
  for (size_t i = 0; i < 2; i++) {
    uint64_t too_big = i == 0 ? (uint64_t)1 << 63 : UINT64_MAX;
    stored_job job = {.sequence = too_big,
                      .state = 1,
                      .job = (const uint8_t *)"j",
                      .job_size = 1};
    assert_int_equal(job_store_save_job(store, &job, NULL, NULL, NULL), -1);
  }
  static const uint64_t saved[] = {INT64_MAX, 5, (uint64_t)1 << 62,
                                   ((uint64_t)1 << 62) - 1, 0};
  static const uint64_t sorted[] = {0, 5, ((uint64_t)1 << 62) - 1,
                                    (uint64_t)1 << 62, INT64_MAX};
  for (size_t i = 0; i < 5; i++) {
    stored_job job = {.sequence = saved[i],
                      .state = 1,
                      .job = (const uint8_t *)"j",
                      .job_size = 1};
    save_and_wait(store, loop, &job, NULL);
  }
  int calls = 0;
  assert_int_equal(job_store_load_jobs(store, stop_at_second, &calls), 42);
  assert_int_equal(calls, 2);
  uint64_t seen[8] = {0};
  assert_int_equal(job_store_load_jobs(store, collect_sequence, seen), 0);
  assert_true(seen[0] == 5);
  for (size_t i = 0; i < 5; i++) {
    if (seen[i + 1] != sorted[i]) {
      fail_msg("job %zu loaded is %016llx, want %016llx", i,
               (unsigned long long)seen[i + 1], (unsigned long long)sorted[i]);
    }
  }
  job_store_close(store);
  ev_loop_destroy(loop);
}

static void test_newer_schema_and_bad_dir_are_refused(void **state) {
  (void)state;
  char err[256], path[128];
  snprintf(path, sizeof(path), "%s/jobhub.db", dir);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(
      sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL),
      SQLITE_OK);
  sqlite3_close(db);
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  assert_null(
      job_store_open(&job_store_sqlite_ops, dir, loop, err, sizeof(err)));
  assert_non_null(strstr(err, "schema version 99"));
  assert_null(job_store_open(&job_store_sqlite_ops, "/proc/jobhub-no-such-dir",
                             loop, err, sizeof(err)));
  assert_non_null(strstr(err, "/proc/jobhub-no-such-dir"));
  ev_loop_destroy(loop);
}

/* A schema-2 file (text ids, an events table) as jobhubd wrote it before
 * migration 3: its jobs, results and events survive the migration, in
 * order, and a key stays unique. */
static int collect_migrated(const stored_job *job, void *arg) {
  int *seen = arg;
  if (job->sequence == 0x2a) {
    assert_int_equal(job->state, 3);
    assert_int_equal(job->pool_id, 4);
    assert_int_equal(job->job_type_id, 5);
    assert_int_equal(job->priority, -2);
    assert_int_equal(job->lease_seconds, 30);
    assert_int_equal(job->max_attempts, 7);
    assert_string_equal(job->idempotency_key, "k1");
    assert_string_equal(job->subject, "series-a");
    assert_int_equal(job->job_size, 3);
    assert_memory_equal(job->job, "fix", 3);
    assert_int_equal(job->status_size, 2);
    assert_memory_equal(job->status, "st", 2);
  } else {
    assert_true(job->sequence == 0x2b);
    assert_null(job->idempotency_key);
  }
  seen[seen[0] + 1] = (int)job->sequence;
  seen[0]++;
  return 0;
}

static void test_schema_2_is_migrated(void **state) {
  (void)state;
  char sub[96], path[128];
  snprintf(sub, sizeof(sub), "%s/v2", dir);
  assert_int_equal(mkdir(sub, 0700), 0);
  snprintf(path, sizeof(path), "%s/jobhub.db", sub);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  static const char *const v2 =
      "CREATE TABLE jobs (id TEXT PRIMARY KEY, state INTEGER NOT NULL,"
      " pool_id INTEGER NOT NULL, job_type_id INTEGER NOT NULL,"
      " priority INTEGER NOT NULL, not_before_us INTEGER NOT NULL,"
      " created_us INTEGER NOT NULL, lease_expires_us INTEGER NOT NULL,"
      " idempotency_key TEXT UNIQUE, job BLOB NOT NULL, result BLOB);"
      "CREATE INDEX jobs_by_state ON jobs(state, pool_id, job_type_id);"
      "CREATE TABLE job_events (seq INTEGER PRIMARY KEY,"
      " job_id TEXT NOT NULL, from_state INTEGER NOT NULL,"
      " to_state INTEGER NOT NULL, time_us INTEGER NOT NULL,"
      " actor TEXT NOT NULL, worker_idx INTEGER NOT NULL, detail TEXT);"
      "CREATE INDEX job_events_by_job ON job_events(job_id, seq);"
      "ALTER TABLE jobs ADD COLUMN status BLOB;"
      "ALTER TABLE jobs ADD COLUMN subject TEXT;"
      "ALTER TABLE jobs ADD COLUMN lease_seconds INTEGER NOT NULL DEFAULT 0;"
      "ALTER TABLE jobs ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 0;"
      "INSERT INTO jobs VALUES ('000000000000002a', 3, 4, 5, -2, 0, 100, 0,"
      " 'k1', CAST('fix' AS BLOB), CAST('res' AS BLOB), CAST('st' AS BLOB),"
      " 'series-a', 30, 7);"
      "INSERT INTO jobs VALUES ('000000000000002b', 1, 0, 1, 0, 0, 200, 0,"
      " NULL, CAST('j' AS BLOB), NULL, NULL, NULL, 0, 3);"
      "INSERT INTO job_events (job_id, from_state, to_state, time_us, actor,"
      " worker_idx, detail) VALUES"
      " ('000000000000002a', 0, 1, 100, 'client', 0, NULL),"
      " ('000000000000002b', 0, 1, 200, 'client', 0, NULL),"
      " ('000000000000002a', 1, 2, 150, 'worker:9', 9, NULL),"
      " ('000000000000002a', 2, 3, 160, 'worker:9', 9, 'done');"
      "PRAGMA user_version = 2;";
  assert_int_equal(sqlite3_exec(db, v2, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);

  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  job_store *store = open_store(sub, loop);
  int seen[4] = {0};
  assert_int_equal(job_store_load_jobs(store, collect_migrated, seen), 0);
  assert_int_equal(seen[0], 2);
  assert_int_equal(seen[1], 0x2a);
  assert_int_equal(seen[2], 0x2b);
  check_result(store, loop, 0x2a, "res");
  read_outcome read;
  read_events(store, loop, 0x2a, &read);
  assert_int_equal(read.status, 0);
  const event_log *log = &read.log;
  assert_int_equal(log->count, 3);
  assert_int_equal(log->events[0].to_state, 1);
  assert_int_equal(log->events[1].to_state, 2);
  assert_int_equal(log->events[1].worker_idx, 9);
  assert_string_equal(log->events[1].actor, "worker:9");
  assert_int_equal(log->events[2].to_state, 3);
  assert_int_equal(log->events[2].time_us, 160);
  assert_string_equal(log->events[2].detail, "done");
  /* The key is still unique after the migration. */
  stored_job clash = {.sequence = 0x2c,
                      .state = 1,
                      .idempotency_key = "k1",
                      .job = (const uint8_t *)"j",
                      .job_size = 1};
  tally t = {0};
  assert_int_equal(job_store_save_job(store, &clash, NULL, on_done, &t), 0);
  wait_done(loop, &t, 1);
  assert_int_equal(t.failed, 1);
  job_store_close(store);
  ev_loop_destroy(loop);
}

/* A schema-4 file (before lease secrets): its rows load with no secret
 * (their lease ids are void), and secrets saved after the migration, by
 * insert and by update, come back after a reopen. */
typedef struct secrets_seen {
  int count;
  uint64_t sequences[4];
  uint8_t secrets[4][STORED_LEASE_SECRET_SIZE];
  uint32_t leases[4];
} secrets_seen;

static int collect_secret(const stored_job *job, void *arg) {
  secrets_seen *seen = arg;
  assert_true(seen->count < 4);
  seen->sequences[seen->count] = job->sequence;
  seen->leases[seen->count] = job->leases;
  memcpy(seen->secrets[seen->count], job->lease_secret,
         STORED_LEASE_SECRET_SIZE);
  seen->count++;
  return 0;
}

static void test_schema_4_is_migrated_and_lease_secrets_survive(void **state) {
  (void)state;
  char sub[96], path[128];
  snprintf(sub, sizeof(sub), "%s/v4", dir);
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  /* The current schema less migration 5 is schema 4. */
  job_store *store = open_store(sub, loop);
  stored_job old = {.sequence = 7,
                    .state = 2,
                    .leases = 2,
                    .lease_expires_us = 99,
                    .job = (const uint8_t *)"j",
                    .job_size = 1};
  save_and_wait(store, loop, &old, NULL);
  job_store_close(store);
  snprintf(path, sizeof(path), "%s/jobhub.db", sub);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db,
                                "ALTER TABLE jobs DROP COLUMN lease_secret;"
                                "PRAGMA user_version = 4;",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);

  store = open_store(sub, loop);
  static const uint8_t zero[STORED_LEASE_SECRET_SIZE] = {0};
  secrets_seen seen = {0};
  assert_int_equal(job_store_load_jobs(store, collect_secret, &seen), 0);
  assert_int_equal(seen.count, 1);
  assert_int_equal(seen.leases[0], 2);
  assert_memory_equal(seen.secrets[0], zero, STORED_LEASE_SECRET_SIZE);
  /* An update of the old row, and an insert. */
  stored_job updated = old;
  updated.job = NULL;
  updated.job_size = 0;
  updated.leases = 3;
  memset(updated.lease_secret, 0xa5, STORED_LEASE_SECRET_SIZE);
  save_and_wait(store, loop, &updated, NULL);
  stored_job inserted = {.sequence = 8,
                         .state = 2,
                         .leases = 1,
                         .job = (const uint8_t *)"k",
                         .job_size = 1};
  for (size_t i = 0; i < STORED_LEASE_SECRET_SIZE; i++) {
    inserted.lease_secret[i] = (uint8_t)(i + 1);
  }
  save_and_wait(store, loop, &inserted, NULL);
  job_store_close(store);

  store = open_store(sub, loop);
  memset(&seen, 0, sizeof(seen));
  assert_int_equal(job_store_load_jobs(store, collect_secret, &seen), 0);
  assert_int_equal(seen.count, 2);
  assert_true(seen.sequences[0] == 7 && seen.sequences[1] == 8);
  assert_int_equal(seen.leases[0], 3);
  assert_memory_equal(seen.secrets[0], updated.lease_secret,
                      STORED_LEASE_SECRET_SIZE);
  assert_int_equal(seen.leases[1], 1);
  assert_memory_equal(seen.secrets[1], inserted.lease_secret,
                      STORED_LEASE_SECRET_SIZE);
  job_store_close(store);
  ev_loop_destroy(loop);
}

/* A job whose write's callback asks for its result at once, as GetResult
 * does after Complete. */
typedef struct acked_read {
  job_store *store;
  uint64_t sequence;
  int asked; /* load_result's return + 1: 1 asked, 0 refused */
  read_outcome out;
  int refused_after; /* a read asked from out's completion: refused */
} acked_read;

static void read_when_acked(int status, void *arg) {
  acked_read *r = arg;
  assert_int_equal(status, 0);
  r->asked = job_store_load_result(r->store, r->sequence, on_read, &r->out) + 1;
}

#define ACKED 300
#define ACKED_FIRST 0x500001

static void test_a_read_sees_every_acknowledged_write(void **state) {
  (void)state;
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  job_store *store = open_store(dir, loop);
  static acked_read reads[ACKED];
  for (int i = 0; i < ACKED; i++) {
    char result[32];
    int size = snprintf(result, sizeof(result), "result-%d", i);
    stored_job job = {.sequence = ACKED_FIRST + (uint64_t)i,
                      .state = 1,
                      .job = (const uint8_t *)"j",
                      .job_size = 1};
    /* Inserted, then updated with its result: the two may share a group,
     * and the read comes right after the second is durable. */
    assert_int_equal(job_store_save_job(store, &job, NULL, NULL, NULL), 0);
    job.job = NULL;
    job.state = 3;
    job.result = (const uint8_t *)result;
    job.result_size = (size_t)size;
    reads[i] = (acked_read){.store = store, .sequence = job.sequence};
    assert_int_equal(
        job_store_save_job(store, &job, NULL, read_when_acked, &reads[i]), 0);
    if (i % 7 == 0) {
      ev_run(loop, EVRUN_NOWAIT); /* some are read while others write */
    }
  }
  wait_read(loop, &reads[ACKED - 1].out);
  for (int i = 0; i < ACKED; i++) {
    char want[32];
    int size = snprintf(want, sizeof(want), "result-%d", i);
    assert_int_equal(reads[i].asked, 1);
    assert_int_equal(reads[i].out.calls, 1);
    assert_int_equal(reads[i].out.status, 0);
    assert_true(reads[i].out.has_result);
    assert_int_equal(reads[i].out.result_size, size);
    assert_memory_equal(reads[i].out.result, want, (size_t)size);
  }
  job_store_close(store);
  ev_loop_destroy(loop);
}

static void read_then_ask_again(int status, const stored_read *read,
                                void *arg) {
  acked_read *r = arg;
  on_read(status, read, &r->out);
  r->refused_after =
      job_store_load_result(r->store, r->sequence, on_read, &r->out) == -1;
}

static void test_close_does_the_reads_owed(void **state) {
  (void)state;
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  job_store *store = open_store(dir, loop);
  stored_job job = {.sequence = ACKED_FIRST + ACKED,
                    .state = 3,
                    .job = (const uint8_t *)"j",
                    .job_size = 1,
                    .result = (const uint8_t *)"late",
                    .result_size = 4};
  acked_read after_write = {.store = store, .sequence = job.sequence};
  acked_read direct = {.store = store, .sequence = job.sequence};
  assert_int_equal(
      job_store_save_job(store, &job, NULL, read_when_acked, &after_write), 0);
  assert_int_equal(
      job_store_load_result(store, job.sequence, read_then_ask_again, &direct),
      0);
  job_store_close(store); /* no loop run: close delivers them all */
  /* The read asked for before the write was durable may or may not see
   * it; the one asked for by the write's callback does. */
  assert_int_equal(direct.out.calls, 1);
  assert_int_equal(direct.out.status, 0);
  assert_int_equal(direct.refused_after, 1);
  assert_int_equal(after_write.asked, 1);
  assert_int_equal(after_write.out.calls, 1);
  assert_true(after_write.out.has_result);
  assert_memory_equal(after_write.out.result, "late", 4);
  ev_loop_destroy(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_jobs_survive_reopen_and_are_group_committed),
      cmocka_unit_test(test_upsert_and_events),
      cmocka_unit_test(test_duplicate_idempotency_key_fails_alone),
      cmocka_unit_test(test_failed_file_write_fails_the_group),
      cmocka_unit_test(test_close_runs_owed_callbacks),
      cmocka_unit_test(test_update_writes_only_the_changing_fields),
      cmocka_unit_test(test_load_result),
      cmocka_unit_test(test_events_come_oldest_first),
      cmocka_unit_test(test_a_read_sees_every_acknowledged_write),
      cmocka_unit_test(test_close_does_the_reads_owed),
      cmocka_unit_test(test_damaged_history_is_a_read_error),
      cmocka_unit_test(test_jobs_load_in_sequence_order),
      cmocka_unit_test(test_newer_schema_and_bad_dir_are_refused),
      cmocka_unit_test(test_schema_2_is_migrated),
      cmocka_unit_test(test_schema_4_is_migrated_and_lease_secrets_survive),
  };
  return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
