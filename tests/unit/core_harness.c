/* core_harness.c: the hub core for unit tests (core_harness.h). */
#include "tests/unit/core_harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "server/core/dispatch.h"
#include "server/core/hub_state.h"
#include "server/core/job_table.h"
#include "server/core/leases.h"
#include "tests/unit/fake_store.h"

void core_open(core *c, uint32_t max_attempts) {
  c->thread = rpc_loop_thread_new(NULL);
  assert_non_null(c->thread);
  c->loop = rpc_loop_thread_loop(c->thread);
  hub_options options = {
      .data_dir = "unused",
      .lease_seconds = 30,
      .max_attempts = max_attempts,
      .retry_backoff_ms = 0, /* a retry is queued at once */
      .worker_timeout = 30,
      .loop_thread = c->thread,
      .store = &fake_store_ops,
  };
  char err[256] = "";
  c->hub = hub_open(&options, err, sizeof(err));
  assert_non_null(c->hub);
}

void core_close(core *c) {
  hub_close(c->hub);
  rpc_loop_thread_free(c->thread);
  fake_store_set_image(NULL, 0);
}

void settle(core *c) {
  for (int i = 0; i < 4; i++) {
    ev_run(c->loop, EVRUN_NOWAIT);
  }
}

static void on_elapsed(struct ev_loop *loop, ev_timer *timer, int events) {
  (void)loop;
  (void)events;
  *(bool *)timer->data = true;
}

void run_for(core *c, double seconds) {
  bool elapsed = false;
  ev_timer timer;
  ev_timer_init(&timer, on_elapsed, seconds, 0);
  timer.data = &elapsed;
  ev_timer_start(c->loop, &timer);
  while (!elapsed) {
    ev_run(c->loop, EVRUN_ONCE);
  }
}

job_record *submit(core *c, int32_t priority, const char *subject,
                   int64_t not_before_us) {
  Jobhub__V1__SubmitRequest request = JOBHUB__V1__SUBMIT_REQUEST__INIT;
  Google__Protobuf__Timestamp not_before = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  request.pool_id = POOL;
  request.job_type_id = JOB_TYPE;
  request.priority = priority;
  request.subject = (char *)(subject != NULL ? subject : "");
  if (not_before_us != 0) {
    not_before.seconds = not_before_us / 1000000;
    not_before.nanos = (int32_t)(not_before_us % 1000000) * 1000;
    request.not_before = &not_before;
  }
  uint32_t max_attempts = hub_options_of(c->hub)->max_attempts;
  size_t size;
  uint8_t *fixed = job_fixed_pack(&request, max_attempts, &size);
  assert_non_null(fixed);
  job_record *job =
      hub_submit(c->hub, &request, fixed, size, max_attempts, NULL, NULL);
  free(fixed);
  assert_non_null(job);
  return job;
}

hub_worker *add_worker(core *c) {
  uint32_t job_type = JOB_TYPE;
  rpc_status_code code;
  char why[200];
  hub_worker *worker =
      hub_worker_new(c->hub, 0, POOL, &job_type, 1, &code, why, sizeof(why));
  assert_non_null(worker);
  worker->capacity = 1000;
  hub_worker_set_live(c->hub, worker, true);
  return worker;
}

job_record *lease_next(core *c, hub_worker *worker) {
  job_record *job = hub_take_job(c->hub, worker);
  if (job != NULL) {
    assert_int_equal(hub_lease_to(c->hub, worker, job), 0);
  }
  return job;
}

void expire_lease(core *c, job_record *job) {
  assert_true(job->lease.queued);
  job->lease.due_us = time_now_us() - 1;
  deadline_heap_update(&c->hub->leases, &job->lease);
  hub_arm_lease_timer(c->hub);
  settle(c);
}
