/* test_core.c: the hub core driven directly, without sockets, services or
 * a client (core_harness.h: an in-memory store, the core on a loop the
 * test turns itself): queue order, lease expiry and re-queue, lease ids
 * of earlier attempts, Complete and Fail refusing a stale or forged lease,
 * Complete and Fail by subject (a claim by table), Cancel and Reset,
 * observer fan-out, and recovery from a store image.
 * Sticky routing is test_core_routing.c's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rpc/log.h"
#include "server/core/ids.h"
#include "server/core/job_actions.h"
#include "server/core/job_table.h"
#include "server/core/leased_jobs.h"
#include "server/core/observers.h"
#include "server/core/registry.h"
#include "tests/unit/core_harness.h"
#include "tests/unit/fake_store.h"

/* An observer that writes down every job transition it hears. */
typedef struct transition {
  uint64_t sequence;
  int from, to;
} transition;

typedef struct recorder {
  transition seen[64];
  size_t count;
} recorder;

static void record(job_hub *hub, job_record *job, int from_state, void *arg) {
  (void)hub;
  recorder *r = arg;
  assert_true(r->count < 64);
  r->seen[r->count++] =
      (transition){job->entry.sequence, from_state, job->state};
}

static void listen(core *c, recorder *r) {
  hub_observer observer = {.job_changed = record, .arg = r};
  assert_int_equal(hub_observe(c->hub, &observer), 0);
}

static void assert_transitions(const recorder *r, const transition *want,
                               size_t n) {
  assert_int_equal(r->count, n);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(r->seen[i].sequence, want[i].sequence);
    assert_int_equal(r->seen[i].from, want[i].from);
    assert_int_equal(r->seen[i].to, want[i].to);
  }
}

/* The transitions of job seq submitted, leased, given back, leased again
 * and failed. */
#define LEASED_TWICE_THEN_FAILED 5
static void leased_twice_then_failed(uint64_t seq, transition *want) {
  const int states[] = {SUBMITTED, QUEUED,      IN_PROGRESS,
                        QUEUED,    IN_PROGRESS, FAILED};
  for (size_t i = 0; i < LEASED_TWICE_THEN_FAILED; i++) {
    want[i] = (transition){seq, states[i], states[i + 1]};
  }
}

/* Queue order: priority first, then submission order within a priority;
 * a job whose not_before is ahead waits for it, however high its
 * priority. */
static void test_queue_order(void **state) {
  (void)state;
  core c;
  core_open(&c, 3);
  hub_worker *worker = add_worker(&c);
  int64_t submitted_us = time_now_us();
  job_record *later = submit(&c, 9, NULL, submitted_us + 40000);
  job_record *low1 = submit(&c, 0, NULL, 0);
  job_record *high1 = submit(&c, 5, NULL, 0);
  job_record *low2 = submit(&c, 0, NULL, 0);
  job_record *high2 = submit(&c, 5, NULL, 0);
  job_record *negative = submit(&c, -1, NULL, 0);
  settle(&c);
  job_record *want[] = {high1, high2, low1, low2, negative};
  for (size_t i = 0; i < 5; i++) {
    assert_ptr_equal(lease_next(&c, worker), want[i]);
    assert_int_equal(want[i]->state, IN_PROGRESS);
  }
  assert_null(lease_next(&c, worker)); /* later is not due */
  assert_int_equal(later->state, QUEUED);
  run_for(&c, 0.06);
  assert_ptr_equal(lease_next(&c, worker), later);
  assert_true(later->started_us >= submitted_us + 40000);
  core_close(&c);
}

/* A lease that runs out puts its job back in the queue, the attempt
 * counted; on the last attempt the job fails. Observers and the store
 * hear each transition. */
static void test_lease_expiry_requeues_then_fails(void **state) {
  (void)state;
  core c;
  core_open(&c, 2);
  recorder heard = {0};
  listen(&c, &heard);
  hub_worker *worker = add_worker(&c);
  job_record *job = submit(&c, 0, NULL, 0);
  uint64_t seq = job->entry.sequence;
  assert_ptr_equal(lease_next(&c, worker), job);
  assert_int_equal(job->attempts, 1);
  assert_int_equal(worker->running, 1);

  expire_lease(&c, job);
  assert_int_equal(job->state, QUEUED);
  assert_int_equal(job->attempts, 1);
  assert_null(job->holder);
  assert_int_equal(worker->running, 0);
  assert_false(job->lease.queued);
  assert_true(job->entry.queued);
  assert_int_equal(fake_store_state(seq), QUEUED);

  assert_ptr_equal(lease_next(&c, worker), job);
  assert_int_equal(job->attempts, 2);
  expire_lease(&c, job);
  assert_int_equal(job->state, FAILED);
  assert_int_equal(job->attempts, 2);
  assert_string_equal(job->error, "lease expired on the last attempt");
  assert_true(job->finished_us != 0);
  assert_false(job->entry.queued);
  assert_null(lease_next(&c, worker));
  assert_int_equal(fake_store_state(seq), FAILED);
  assert_int_equal(fake_store_pending(), 0);

  transition want[LEASED_TWICE_THEN_FAILED];
  leased_twice_then_failed(seq, want);
  assert_transitions(&heard, want, LEASED_TWICE_THEN_FAILED);
  /* The store has the same history (the leases written with the job's
   * next write). */
  size_t n;
  const fake_event *events = fake_store_events(seq, &n);
  assert_int_equal(n, LEASED_TWICE_THEN_FAILED);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(events[i].from_state, want[i].from);
    assert_int_equal(events[i].to_state, want[i].to);
  }
  core_close(&c);
}

/* A lease id names one attempt: once the job is leased again, the id of
 * the earlier lease has another lease number and secret, and an id with a
 * forged secret does not match the job's; lease_id_parse and
 * lease_secret_equal are what the Workers service refuses them by. */
static void test_earlier_and_forged_lease_ids_do_not_match(void **state) {
  (void)state;
  core c;
  core_open(&c, 3);
  hub_worker *worker = add_worker(&c);
  job_record *job = submit(&c, 0, NULL, 0);
  assert_ptr_equal(lease_next(&c, worker), job);
  char first[LEASE_ID_SIZE];
  lease_id_format(job, first);
  expire_lease(&c, job);
  assert_ptr_equal(lease_next(&c, worker), job);
  char second[LEASE_ID_SIZE];
  lease_id_format(job, second);

  uint64_t sequence;
  uint32_t lease;
  uint8_t secret[LEASE_SECRET_SIZE];
  assert_int_equal(lease_id_parse(first, &sequence, &lease, secret), 0);
  assert_int_equal(sequence, job->entry.sequence);
  assert_int_equal(lease, 1);
  assert_int_equal(job->leases, 2);
  assert_false(lease_secret_equal(secret, job->lease_secret));

  assert_int_equal(lease_id_parse(second, &sequence, &lease, secret), 0);
  assert_int_equal(lease, job->leases);
  assert_true(lease_secret_equal(secret, job->lease_secret));
  char forged[LEASE_ID_SIZE];
  memcpy(forged, second, sizeof(forged));
  char *last = &forged[strlen(forged) - 1];
  *last = *last == '0' ? '1' : '0';
  assert_int_equal(lease_id_parse(forged, &sequence, &lease, secret), 0);
  assert_int_equal(lease, job->leases);
  assert_false(lease_secret_equal(secret, job->lease_secret));
  assert_int_equal(job->state, IN_PROGRESS);
  assert_ptr_equal(job->holder, worker);
  core_close(&c);
}

/* The completion of an outcome's write, counted. */
typedef struct outcome_write {
  int calls;
  int status;
} outcome_write;

static void outcome_written(int status, void *arg) {
  outcome_write *write = arg;
  write->calls++;
  write->status = status;
}

/* What a refused Complete or Fail must leave as it was. */
typedef struct job_snapshot {
  int state;
  uint32_t attempts, leases;
  const hub_worker *holder;
  int64_t lease_due_us;
  int stored_state;
  size_t stored_events;
} job_snapshot;

static job_snapshot snapshot(const job_record *job) {
  size_t events;
  (void)fake_store_events(job->entry.sequence, &events);
  return (job_snapshot){
      job->state,  job->attempts,     job->leases,
      job->holder, job->lease.due_us, fake_store_state(job->entry.sequence),
      events};
}

static void assert_unchanged(core *c, const job_record *job,
                             const job_snapshot *before) {
  settle(c);
  job_snapshot now = snapshot(job);
  assert_int_equal(now.state, before->state);
  assert_int_equal(now.attempts, before->attempts);
  assert_int_equal(now.leases, before->leases);
  assert_ptr_equal(now.holder, before->holder);
  assert_int_equal(now.lease_due_us, before->lease_due_us);
  assert_int_equal(now.stored_state, before->stored_state);
  assert_int_equal(now.stored_events, before->stored_events);
  assert_null(job->error);
}

/* A Complete with the lease of an earlier attempt, after that lease ran
 * out and the job was queued again, is refused (NOT_FOUND) and changes
 * nothing: neither while the job waits in the queue nor once the next
 * attempt holds it. Observers hear nothing; done is never run. */
static void test_complete_with_a_stale_lease_is_refused(void **state) {
  (void)state;
  core c;
  core_open(&c, 3);
  hub_worker *worker = add_worker(&c);
  job_record *job = submit(&c, 0, NULL, 0);
  assert_ptr_equal(lease_next(&c, worker), job);
  char first[LEASE_ID_SIZE];
  lease_id_format(job, first);
  expire_lease(&c, job);
  assert_int_equal(job->state, QUEUED);
  recorder heard = {0};
  listen(&c, &heard);
  outcome_write write = {0, 0};
  hub_lease_claim claim = {job->id, first, NULL, worker};
  hub_refusal why;
  job_undo undo = {0};

  job_snapshot queued = snapshot(job);
  assert_null(hub_complete_leased_job(c.hub, &claim, NULL, outcome_written,
                                      &write, &undo, &why));
  assert_int_equal(why.code, RPC_STATUS_NOT_FOUND);
  assert_non_null(strstr(why.message, "expired"));
  assert_unchanged(&c, job, &queued);
  assert_true(job->entry.queued);

  assert_ptr_equal(lease_next(&c, worker), job);
  settle(&c);
  size_t lease_events = heard.count;
  job_snapshot leased = snapshot(job);
  assert_int_equal(leased.leases, 2);
  assert_null(hub_complete_leased_job(c.hub, &claim, NULL, outcome_written,
                                      &write, &undo, &why));
  assert_int_equal(why.code, RPC_STATUS_NOT_FOUND);
  assert_unchanged(&c, job, &leased);
  assert_true(job->lease.queued);
  /* The same from a unary call of any client. */
  claim = (hub_lease_claim){job->id, first, "client-a", NULL};
  assert_null(hub_complete_leased_job(c.hub, &claim, NULL, outcome_written,
                                      &write, &undo, &why));
  assert_int_equal(why.code, RPC_STATUS_NOT_FOUND);
  assert_unchanged(&c, job, &leased);
  assert_int_equal(heard.count, lease_events);
  assert_int_equal(write.calls, 0);
  hub_undo_free(&undo);
  core_close(&c);
}

/* A Fail whose lease id carries a wrong secret (the right job, the right
 * lease number) is refused as an unknown lease and changes nothing; the
 * same Fail with the right lease id is taken: the job fails (not
 * retryable), the write is awaited and durable. */
static void test_fail_with_a_forged_lease_is_refused(void **state) {
  (void)state;
  core c;
  core_open(&c, 3);
  hub_worker *worker = add_worker(&c);
  job_record *job = submit(&c, 0, NULL, 0);
  assert_ptr_equal(lease_next(&c, worker), job);
  settle(&c);
  char right[LEASE_ID_SIZE], forged[LEASE_ID_SIZE];
  lease_id_format(job, right);
  memcpy(forged, right, sizeof(forged));
  char *last = &forged[strlen(forged) - 1];
  *last = *last == '0' ? '1' : '0';
  recorder heard = {0};
  listen(&c, &heard);
  outcome_write write = {0, 0};
  hub_refusal why;
  job_undo undo = {0};

  job_snapshot before = snapshot(job);
  hub_lease_claim claim = {job->id, forged, NULL, NULL};
  assert_null(hub_fail_leased_job(c.hub, &claim, "boom", false, outcome_written,
                                  &write, &undo, &why));
  assert_int_equal(why.code, RPC_STATUS_NOT_FOUND);
  assert_unchanged(&c, job, &before);
  assert_ptr_equal(job->holder, worker);
  assert_int_equal(worker->running, 1);
  assert_int_equal(heard.count, 0);
  assert_int_equal(write.calls, 0);

  claim.lease_id = right;
  assert_ptr_equal(hub_fail_leased_job(c.hub, &claim, "boom", false,
                                       outcome_written, &write, &undo, &why),
                   job);
  assert_int_equal(job->state, FAILED);
  assert_string_equal(job->error, "boom");
  assert_null(job->holder);
  assert_int_equal(worker->running, 0);
  settle(&c);
  assert_int_equal(write.calls, 1);
  assert_int_equal(write.status, 0);
  assert_int_equal(fake_store_state(job->entry.sequence), FAILED);
  transition want[] = {{job->entry.sequence, IN_PROGRESS, FAILED}};
  assert_transitions(&heard, want, 1);
  /* Once the job failed, its lease is used up. */
  assert_null(hub_fail_leased_job(c.hub, &claim, "again", false,
                                  outcome_written, &write, &undo, &why));
  assert_int_equal(why.code, RPC_STATUS_FAILED_PRECONDITION);
  hub_undo_free(&undo);
  core_close(&c);
}

#define CANCELLED JOBHUB__V1__JOB_STATE__CANCELLED

/* A unary worker of client_id (as a Lease call registers one). */
static hub_worker *add_client_worker(core *c, const char *client_id) {
  hub_worker *worker = add_worker(c);
  assert_int_equal(job_record_set_text(&worker->client_id, client_id), 0);
  return worker;
}

/* Job ids a unary worker's Heartbeat is told to stop. */
typedef struct stop_list {
  char ids[4][JOB_ID_SIZE];
  size_t count;
} stop_list;

static int told_to_stop(const char *job_id, void *arg) {
  stop_list *stops = arg;
  assert_true(stops->count < 4);
  snprintf(stops->ids[stops->count++], JOB_ID_SIZE, "%s", job_id);
  return 0;
}

/* Submits a job and leases it to worker; its lease id in lease_id. */
static job_record *leased_job(core *c, hub_worker *worker,
                              char lease_id[LEASE_ID_SIZE]) {
  job_record *job = submit(c, 0, NULL, 0);
  assert_ptr_equal(lease_next(c, worker), job);
  lease_id_format(job, lease_id);
  settle(c);
  return job;
}

/* Cancel of a QUEUED job: out of the queue (no worker gets it),
 * CANCELLED with its finish time, the write awaited and durable, the
 * observers told once. */
static void test_cancel_of_a_queued_job(void **state) {
  (void)state;
  core c;
  core_open(&c, 3);
  hub_worker *worker = add_worker(&c);
  job_record *job = submit(&c, 0, NULL, 0);
  settle(&c);
  recorder heard = {0};
  listen(&c, &heard);
  outcome_write write = {0, 0};
  hub_refusal why;
  job_undo undo = {0};
  assert_ptr_equal(
      hub_cancel_job(c.hub, job->id, outcome_written, &write, &undo, &why),
      job);
  assert_int_equal(job->state, CANCELLED);
  assert_false(job->entry.queued);
  assert_true(job->finished_us != 0);
  assert_null(lease_next(&c, worker));
  assert_int_equal(write.calls, 0); /* awaited: not yet durable */
  settle(&c);
  assert_int_equal(write.calls, 1);
  assert_int_equal(write.status, 0);
  assert_int_equal(hub_client_write_done(c.hub, job, &undo, 0, &why), 0);
  assert_int_equal(fake_store_state(job->entry.sequence), CANCELLED);
  transition want[] = {{job->entry.sequence, QUEUED, CANCELLED}};
  assert_transitions(&heard, want, 1);
  /* An unknown id changes nothing. */
  assert_null(hub_cancel_job(c.hub, "00000000000000ff", outcome_written, &write,
                             &undo, &why));
  assert_int_equal(why.code, RPC_STATUS_NOT_FOUND);
  hub_undo_free(&undo);
  core_close(&c);
}

/* Cancel of an IN_PROGRESS job: its lease ends (out of the expiry heap,
 * the worker has room again) and the worker is told through the core's
 * cancellation path: a unary worker's next Heartbeat names the job. */
static void test_cancel_of_a_leased_job_tells_its_worker(void **state) {
  (void)state;
  core c;
  core_open(&c, 3);
  hub_worker *worker = add_client_worker(&c, "client-a");
  char lease_id[LEASE_ID_SIZE];
  job_record *job = leased_job(&c, worker, lease_id);
  char *lease_ids[] = {lease_id};
  stop_list stops = {.count = 0};
  hub_refusal why;
  assert_int_equal(hub_heartbeat_leases(c.hub, lease_ids, 1, "client-a",
                                        told_to_stop, &stops, &why),
                   0);
  assert_int_equal(stops.count, 0); /* held: not told to stop */
  recorder heard = {0};
  listen(&c, &heard);
  outcome_write write = {0, 0};
  job_undo undo = {0};
  assert_ptr_equal(
      hub_cancel_job(c.hub, job->id, outcome_written, &write, &undo, &why),
      job);
  assert_int_equal(job->state, CANCELLED);
  assert_null(job->holder);
  assert_false(job->lease.queued);
  assert_int_equal(worker->running, 0);
  settle(&c);
  assert_int_equal(write.calls, 1);
  assert_int_equal(fake_store_state(job->entry.sequence), CANCELLED);
  transition want[] = {{job->entry.sequence, IN_PROGRESS, CANCELLED}};
  assert_transitions(&heard, want, 1);
  assert_int_equal(hub_heartbeat_leases(c.hub, lease_ids, 1, "client-a",
                                        told_to_stop, &stops, &why),
                   0);
  assert_int_equal(stops.count, 1);
  assert_string_equal(stops.ids[0], job->id);
  /* Its result is refused: the job is final. */
  hub_lease_claim claim = {job->id, lease_id, "client-a", NULL, NULL};
  assert_null(hub_complete_leased_job(c.hub, &claim, NULL, outcome_written,
                                      &write, &undo, &why));
  assert_int_equal(why.code, RPC_STATUS_FAILED_PRECONDITION);
  hub_undo_free(&undo);
  core_close(&c);
}

/* Cancel of a job that finished is refused (FAILED_PRECONDITION) and
 * changes nothing: state, store, observers; done is never run. */
static void test_cancel_of_a_finished_job_is_refused(void **state) {
  (void)state;
  core c;
  core_open(&c, 3);
  hub_worker *worker = add_worker(&c);
  char lease_id[LEASE_ID_SIZE];
  job_record *job = leased_job(&c, worker, lease_id);
  hub_lease_claim claim = {job->id, lease_id, NULL, worker, NULL};
  outcome_write write = {0, 0};
  hub_refusal why;
  job_undo undo = {0};
  assert_ptr_equal(hub_complete_leased_job(c.hub, &claim, NULL, outcome_written,
                                           &write, &undo, &why),
                   job);
  settle(&c);
  assert_int_equal(write.calls, 1);
  int64_t finished_us = job->finished_us;
  job_snapshot before = snapshot(job);
  recorder heard = {0};
  listen(&c, &heard);
  job_undo cancel_undo = {0};
  assert_null(hub_cancel_job(c.hub, job->id, outcome_written, &write,
                             &cancel_undo, &why));
  assert_int_equal(why.code, RPC_STATUS_FAILED_PRECONDITION);
  assert_non_null(strstr(why.message, "DONE already"));
  assert_unchanged(&c, job, &before);
  assert_int_equal(job->state, DONE);
  assert_int_equal(job->finished_us, finished_us);
  assert_int_equal(heard.count, 0);
  assert_int_equal(write.calls, 1);
  hub_undo_free(&undo);
  hub_undo_free(&cancel_undo);
  core_close(&c);
}

typedef struct reset_answer {
  const job_record *jobs[4];
  size_t count;
  outcome_write write;
} reset_answer;

static void reset_listed(const job_record *job, void *arg) {
  reset_answer *answer = arg;
  assert_true(answer->count < 4);
  answer->jobs[answer->count++] = job;
}

static void reset_written(int status, void *arg) {
  outcome_written(status, &((reset_answer *)arg)->write);
}

/* Reset of a FAILED job (named by id, twice: reset once): queued again
 * as new, attempts 0, error and finish time cleared, stored and heard;
 * the next lease is its first attempt. */
static void test_reset_of_a_failed_job_queues_it_again(void **state) {
  (void)state;
  core c;
  core_open(&c, 3);
  hub_worker *worker = add_worker(&c);
  char lease_id[LEASE_ID_SIZE];
  job_record *job = leased_job(&c, worker, lease_id);
  hub_lease_claim claim = {job->id, lease_id, NULL, worker, NULL};
  outcome_write write = {0, 0};
  hub_refusal why;
  job_undo undo = {0};
  assert_non_null(hub_fail_leased_job(c.hub, &claim, "boom", false,
                                      outcome_written, &write, &undo, &why));
  settle(&c);
  assert_int_equal(job->state, FAILED);
  assert_int_equal(job->attempts, 1);
  recorder heard = {0};
  listen(&c, &heard);
  char *ids[] = {job->id, job->id};
  Jobhub__V1__ResetRequest request = JOBHUB__V1__RESET_REQUEST__INIT;
  request.ids = ids;
  request.n_ids = 2;
  reset_answer answer = {.count = 0};
  assert_int_equal(hub_reset_jobs(c.hub, &request, reset_listed, reset_written,
                                  &answer, &why),
                   1);
  assert_int_equal(answer.count, 1);
  assert_ptr_equal(answer.jobs[0], job);
  assert_int_equal(job->state, QUEUED);
  assert_int_equal(job->attempts, 0);
  assert_null(job->error);
  assert_int_equal(job->finished_us, 0);
  assert_true(job->entry.queued);
  settle(&c);
  assert_int_equal(answer.write.calls, 1);
  assert_int_equal(answer.write.status, 0);
  assert_int_equal(fake_store_state(job->entry.sequence), QUEUED);
  transition want[] = {{job->entry.sequence, FAILED, QUEUED}};
  assert_transitions(&heard, want, 1);
  assert_ptr_equal(lease_next(&c, worker), job);
  assert_int_equal(job->attempts, 1);
  /* An unknown id among them: nothing changes. */
  char missing[] = "00000000000000ff";
  char *unknown[] = {job->id, missing};
  request.ids = unknown;
  assert_int_equal(hub_reset_jobs(c.hub, &request, reset_listed, reset_written,
                                  &answer, &why),
                   -1);
  assert_int_equal(why.code, RPC_STATUS_NOT_FOUND);
  assert_int_equal(job->state, IN_PROGRESS);
  hub_undo_free(&undo);
  core_close(&c);
}

/* Complete and Fail by table (the work manager's storeResult/{table}):
 * the job of that subject the client holds is named without job or lease
 * id; another client's job, an unknown subject are NOT_FOUND; once the
 * job is final, FAILED_PRECONDITION. */
static void test_complete_and_fail_by_table(void **state) {
  (void)state;
  core c;
  core_open(&c, 3);
  hub_worker *mine = add_client_worker(&c, "guid-1");
  hub_worker *theirs = add_client_worker(&c, "guid-2");
  job_record *first = submit(&c, 0, "table-a", 0);
  job_record *second = submit(&c, 0, "table-b", 0);
  job_record *other = submit(&c, 0, "table-c", 0);
  assert_ptr_equal(lease_next(&c, mine), first);
  assert_ptr_equal(lease_next(&c, mine), second);
  assert_ptr_equal(lease_next(&c, theirs), other);
  settle(&c);
  outcome_write write = {0, 0};
  hub_refusal why;
  job_undo undo = {0};
  hub_lease_claim claim = {"", "", "guid-1", NULL, "table-a"};
  Jobhub__V1__JobResult result = JOBHUB__V1__JOB_RESULT__INIT;
  uint8_t rows[] = "rows=3";
  result.data.data = rows;
  result.data.len = sizeof(rows) - 1;
  assert_ptr_equal(hub_complete_leased_job(c.hub, &claim, &result,
                                           outcome_written, &write, &undo,
                                           &why),
                   first);
  assert_int_equal(first->state, DONE);
  assert_int_equal(second->state, IN_PROGRESS);
  settle(&c);
  assert_int_equal(write.calls, 1);
  assert_int_equal(fake_store_state(first->entry.sequence), DONE);
  /* Again: the job is final. */
  assert_null(hub_complete_leased_job(c.hub, &claim, &result, outcome_written,
                                      &write, &undo, &why));
  assert_int_equal(why.code, RPC_STATUS_FAILED_PRECONDITION);
  /* Another client's subject, and one nobody holds. */
  job_snapshot before = snapshot(other);
  claim.table = "table-c";
  assert_null(hub_complete_leased_job(c.hub, &claim, &result, outcome_written,
                                      &write, &undo, &why));
  assert_int_equal(why.code, RPC_STATUS_NOT_FOUND);
  assert_string_equal(why.message,
                      "client \"guid-1\" holds no job of subject \"table-c\"");
  assert_unchanged(&c, other, &before);
  assert_ptr_equal(other->holder, theirs);
  claim.table = "no-such-table";
  assert_null(hub_fail_leased_job(c.hub, &claim, "lost", false, outcome_written,
                                  &write, &undo, &why));
  assert_int_equal(why.code, RPC_STATUS_NOT_FOUND);
  /* Fail by table, not retryable: FAILED with its error. */
  claim.table = "table-b";
  assert_ptr_equal(hub_fail_leased_job(c.hub, &claim, "disk on fire", false,
                                       outcome_written, &write, &undo, &why),
                   second);
  assert_int_equal(second->state, FAILED);
  assert_string_equal(second->error, "disk on fire");
  settle(&c);
  assert_int_equal(write.calls, 2);
  assert_int_equal(mine->running, 0);
  assert_int_equal(write.status, 0);
  hub_undo_free(&undo);
  core_close(&c);
}

/* Fan-out: two observers both hear every transition of a job, once, in
 * order, and those of no other job in between. */
static void test_observers_hear_each_transition_once_in_order(void **state) {
  (void)state;
  core c;
  core_open(&c, 2);
  recorder first = {0}, second = {0};
  listen(&c, &first);
  listen(&c, &second);
  hub_worker *a = add_worker(&c);
  job_record *job = submit(&c, 0, NULL, 0);
  uint64_t seq = job->entry.sequence;
  assert_ptr_equal(lease_next(&c, a), job);
  hub_worker_remove(c.hub, a); /* the job goes back: "worker left" */
  assert_int_equal(job->state, QUEUED);
  hub_worker *b = add_worker(&c);
  assert_ptr_equal(lease_next(&c, b), job);
  expire_lease(&c, job); /* the last attempt */
  settle(&c);
  transition want[LEASED_TWICE_THEN_FAILED];
  leased_twice_then_failed(seq, want);
  assert_transitions(&first, want, LEASED_TWICE_THEN_FAILED);
  assert_transitions(&second, want, LEASED_TWICE_THEN_FAILED);
  core_close(&c);
}

/* Recovery. */

/* A stored job of POOL, JOB_TYPE in state, its status part in status
 * (reset). */
static stored_job stored(uint64_t sequence, int state, uint32_t attempts,
                         int32_t priority, int64_t lease_expires_us,
                         rpc_buffer *status) {
  job_record *job = job_record_new(sequence, NULL, 0, NULL, NULL);
  assert_non_null(job);
  job->state = state;
  job->attempts = attempts;
  job->max_attempts = 3;
  rpc_buffer_reset(status);
  assert_int_equal(job_record_pack_status(job, status), 0);
  job_record_free(job);
  return (stored_job){.sequence = sequence,
                      .state = state,
                      .pool_id = POOL,
                      .job_type_id = JOB_TYPE,
                      .priority = priority,
                      .created_us = 1,
                      .lease_expires_us = lease_expires_us,
                      .max_attempts = 3,
                      .leases = attempts,
                      .status = status->data,
                      .status_size = status->len};
}

/* docs/core-design.md "Recovery": QUEUED jobs to the queue; IN_PROGRESS
 * ones whose lease expired while the hub was down QUEUED (attempt
 * counted, the transition written), the others keep their lease until
 * expiry; DONE and FAILED stay for Get; new ids follow the last. */
static void test_recovery_from_a_store_image(void **state) {
  (void)state;
  int64_t now = time_now_us();
  rpc_buffer status[7];
  for (size_t i = 0; i < 7; i++) {
    rpc_buffer_init(&status[i]);
  }
  stored_job image[] = {
      stored(2, QUEUED, 0, 0, 0, &status[0]),
      stored(3, IN_PROGRESS, 1, 0, now + 60000000, &status[1]),
      stored(5, IN_PROGRESS, 2, 0, now - 1000000, &status[2]),
      stored(6, DONE, 1, 0, 0, &status[3]),
      stored(7, FAILED, 3, 0, 0, &status[4]),
      stored(8, QUEUED, 1, 5, 0, &status[5]),
      stored(9, QUEUED, 0, 0, 0, &status[6]),
  };
  fake_store_set_image(image, 7);
  core c;
  core_open(&c, 3);
  assert_int_equal(hub_job_count(c.hub), 7);
  int want_state[] = {QUEUED, IN_PROGRESS, QUEUED, DONE,
                      FAILED, QUEUED,      QUEUED};
  for (size_t i = 0; i < 7; i++) {
    char id[JOB_ID_SIZE];
    job_id_format(image[i].sequence, id);
    job_record *job = hub_find_job(c.hub, id);
    assert_non_null(job);
    assert_int_equal(job->state, want_state[i]);
    assert_int_equal(job->attempts, image[i].leases);
    assert_int_equal(job->entry.queued, want_state[i] == QUEUED);
    assert_null(job->holder);
  }
  job_record *leased = hub_find_job(c.hub, "0000000000000003");
  assert_true(leased->lease.queued);
  assert_int_equal(leased->lease.due_us, now + 60000000);
  uint32_t pool_idx;
  assert_int_equal(pool_idx_pack(POOL, JOB_TYPE, &pool_idx), 0);
  hub_pool *pool = hub_pool_get(c.hub, pool_idx, false);
  assert_non_null(pool);
  assert_int_equal(pool->queued, 4);
  assert_int_equal(pool->in_progress, 1);
  assert_int_equal(pool->done, 1);
  assert_int_equal(pool->failed, 1);
  settle(&c);
  assert_int_equal(fake_store_state(5), QUEUED);
  assert_int_equal(fake_store_state(2), -1); /* unchanged: not written */
  size_t n;
  const fake_event *events = fake_store_events(5, &n);
  assert_int_equal(n, 1);
  assert_int_equal(events[0].from_state, IN_PROGRESS);
  assert_int_equal(events[0].to_state, QUEUED);

  /* The queue's order is priority, then id; a new job's id follows. */
  hub_worker *worker = add_worker(&c);
  job_record *fresh = submit(&c, 0, NULL, 0);
  assert_int_equal(fresh->entry.sequence, 10);
  const uint64_t order[] = {8, 2, 5, 9, 10};
  for (size_t i = 0; i < 5; i++) {
    job_record *job = lease_next(&c, worker);
    assert_non_null(job);
    assert_int_equal(job->entry.sequence, order[i]);
  }
  assert_null(lease_next(&c, worker));
  /* The recovered lease runs out as any other: re-queued, its attempt
   * counted, the store told. */
  expire_lease(&c, leased);
  assert_int_equal(leased->state, QUEUED);
  assert_int_equal(leased->attempts, 1);
  assert_int_equal(fake_store_state(3), QUEUED);
  assert_ptr_equal(lease_next(&c, worker), leased);
  assert_int_equal(leased->attempts, 2);
  core_close(&c);
  for (size_t i = 0; i < 7; i++) {
    rpc_buffer_free(&status[i]);
  }
}

int main(void) {
  rpc_log_set_level(RPC_LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_queue_order),
      cmocka_unit_test(test_lease_expiry_requeues_then_fails),
      cmocka_unit_test(test_earlier_and_forged_lease_ids_do_not_match),
      cmocka_unit_test(test_complete_with_a_stale_lease_is_refused),
      cmocka_unit_test(test_fail_with_a_forged_lease_is_refused),
      cmocka_unit_test(test_cancel_of_a_queued_job),
      cmocka_unit_test(test_cancel_of_a_leased_job_tells_its_worker),
      cmocka_unit_test(test_cancel_of_a_finished_job_is_refused),
      cmocka_unit_test(test_reset_of_a_failed_job_queues_it_again),
      cmocka_unit_test(test_complete_and_fail_by_table),
      cmocka_unit_test(test_observers_hear_each_transition_once_in_order),
      cmocka_unit_test(test_recovery_from_a_store_image),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
