/* test_store.c: the SQLite job store: durability across reopen, upsert,
 * events, group commit, per-write failures, and schema checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>
#include <sqlite3.h>

#include "server/store.h"

#define JOBS 2000

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

typedef struct tally {
  int done;
  int failed;
} tally;

static void on_done(int status, void *arg) {
  tally *t = arg;
  t->done++;
  t->failed += status != 0;
}

static stored_job job_record(int i, char *id, size_t id_size, char *key,
                             size_t key_size) {
  snprintf(id, id_size, "job-%05d", i);
  snprintf(key, key_size, "key-%05d", i);
  static uint8_t body[100];
  memset(body, 'b', sizeof(body));
  return (stored_job){.id = id,
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

static int count_job(const stored_job *job, void *arg) {
  int *count = arg;
  assert_int_equal(job->job_size, 100);
  assert_non_null(job->id);
  (*count)++;
  return 0;
}

static void test_jobs_survive_reopen_and_are_group_committed(void **state) {
  (void)state;
  char err[256];
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  job_store *store = job_store_open(dir, loop, err, sizeof(err));
  assert_non_null(store);
  tally t = {0};
  for (int i = 0; i < JOBS; i++) {
    char id[32], key[32];
    stored_job job = job_record(i, id, sizeof(id), key, sizeof(key));
    stored_event event = {.job_id = id, .from_state = 0, .to_state = 1,
                          .time_us = 1000 + i, .actor = "client:test"};
    assert_int_equal(job_store_save_job(store, &job, &event, on_done, &t), 0);
  }
  wait_done(loop, &t, JOBS);
  assert_int_equal(t.failed, 0);
  uint64_t commits = job_store_commits(store);
  printf("%d writes in %llu commits\n", JOBS, (unsigned long long)commits);
  assert_true(job_store_writes(store) == JOBS);
  assert_true(commits < JOBS / 4); /* writes were grouped */
  job_store_close(store);

  store = job_store_open(dir, loop, err, sizeof(err));
  assert_non_null(store);
  int count = 0;
  assert_int_equal(job_store_load_jobs(store, count_job, &count), 0);
  assert_int_equal(count, JOBS);
  job_store_close(store);
  ev_loop_destroy(loop);
}

static int find_state(const stored_job *job, void *arg) {
  int *state = arg;
  if (strcmp(job->id, "job-00007") == 0) {
    *state = job->state;
    assert_int_equal(job->result_size, 3);
    assert_memory_equal(job->result, "res", 3);
    assert_string_equal(job->idempotency_key, "key-00007");
  }
  return 0;
}

static int collect_event(const stored_event *event, void *arg) {
  int *states = arg;
  states[states[0] + 1] = event->to_state;
  states[0]++;
  assert_string_equal(event->job_id, "job-00007");
  return 0;
}

static void test_upsert_and_events(void **state) {
  (void)state;
  char err[256];
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  job_store *store = job_store_open(dir, loop, err, sizeof(err));
  assert_non_null(store);
  char id[32], key[32];
  stored_job job = job_record(7, id, sizeof(id), key, sizeof(key));
  job.state = 3;
  job.result = (const uint8_t *)"res";
  job.result_size = 3;
  stored_event event = {.job_id = id, .from_state = 2, .to_state = 3,
                        .time_us = 5000, .actor = "worker:7",
                        .worker_idx = 7, .detail = "done"};
  tally t = {0};
  assert_int_equal(job_store_save_job(store, &job, &event, on_done, &t), 0);
  wait_done(loop, &t, 1);
  assert_int_equal(t.failed, 0);
  int found = 0;
  assert_int_equal(job_store_load_jobs(store, find_state, &found), 0);
  assert_int_equal(found, 3);
  int states[8] = {0};
  assert_int_equal(job_store_load_events(store, id, collect_event, states), 0);
  assert_int_equal(states[0], 2); /* submitted, then done */
  assert_int_equal(states[1], 1);
  assert_int_equal(states[2], 3);
  job_store_close(store);
  ev_loop_destroy(loop);
}

static void test_duplicate_idempotency_key_fails_alone(void **state) {
  (void)state;
  char err[256];
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  job_store *store = job_store_open(dir, loop, err, sizeof(err));
  char id[32], key[32];
  stored_job clash = job_record(1, id, sizeof(id), key, sizeof(key));
  clash.id = "another-job"; /* same key as job-00001 */
  char id2[32], key2[32];
  stored_job fine = job_record(JOBS + 1, id2, sizeof(id2), key2, sizeof(key2));
  tally bad = {0}, good = {0};
  assert_int_equal(job_store_save_job(store, &clash, NULL, on_done, &bad), 0);
  assert_int_equal(job_store_save_job(store, &fine, NULL, on_done, &good), 0);
  wait_done(loop, &bad, 1);
  wait_done(loop, &good, 1);
  assert_int_equal(bad.failed, 1);
  assert_int_equal(good.failed, 0);
  job_store_close(store);
  ev_loop_destroy(loop);
}

static void test_close_runs_owed_callbacks(void **state) {
  (void)state;
  char err[256];
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  job_store *store = job_store_open(dir, loop, err, sizeof(err));
  tally t = {0};
  for (int i = 0; i < 50; i++) {
    char id[32], key[32];
    stored_job job = job_record(i, id, sizeof(id), key, sizeof(key));
    job.idempotency_key = NULL;
    assert_int_equal(job_store_save_job(store, &job, NULL, on_done, &t), 0);
  }
  job_store_close(store); /* no loop run: close delivers them */
  assert_int_equal(t.done, 50);
  assert_int_equal(t.failed, 0);
  ev_loop_destroy(loop);
}

static void test_newer_schema_and_bad_dir_are_refused(void **state) {
  (void)state;
  char err[256], path[128];
  snprintf(path, sizeof(path), "%s/jobhub.db", dir);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL,
                                NULL),
                   SQLITE_OK);
  sqlite3_close(db);
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  assert_null(job_store_open(dir, loop, err, sizeof(err)));
  assert_non_null(strstr(err, "schema version 99"));
  assert_null(job_store_open("/proc/jobhub-no-such-dir", loop, err,
                             sizeof(err)));
  assert_non_null(strstr(err, "/proc/jobhub-no-such-dir"));
  ev_loop_destroy(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_jobs_survive_reopen_and_are_group_committed),
      cmocka_unit_test(test_upsert_and_events),
      cmocka_unit_test(test_duplicate_idempotency_key_fails_alone),
      cmocka_unit_test(test_close_runs_owed_callbacks),
      cmocka_unit_test(test_newer_schema_and_bad_dir_are_refused),
  };
  return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
