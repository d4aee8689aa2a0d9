/* test_job_record.c: the record's one allocation and accessors, its text
 * fields, the fixed and status parts that concatenate into a whole
 * jobhub.v1.Job, the status round trip, job and lease ids (tables, with
 * malformed forms), and length-delimited fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "jobhub/v1/workers.pb-c.h"
#include "server/core/job_record.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Record construction and accessors. */

static void test_new_copies_parts_and_zeroes_the_rest(void **state) {
  (void)state;
  static const uint8_t fixed[] = {0x18, 0x07, 0x20, 0x02}; /* type 7, pool 2 */
  static const struct {
    const uint8_t *fixed;
    size_t fixed_size;
    const char *subject, *key;
    const char *want_subject, *want_key;
  } cases[] = {
      {fixed, sizeof(fixed), "series-a", "key-1", "series-a", "key-1"},
      {fixed, sizeof(fixed), NULL, NULL, "", ""},
      {fixed, sizeof(fixed), "", "", "", ""},
      {fixed, sizeof(fixed), "s", NULL, "s", ""},
      {fixed, sizeof(fixed), NULL, "k", "", "k"},
      {NULL, 0, "subject only", "and a key", "subject only", "and a key"},
      {NULL, 0, NULL, NULL, "", ""},
  };
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    uint64_t sequence = 0x1234 + i;
    job_record *job =
        job_record_new(sequence, cases[i].fixed, cases[i].fixed_size,
                       cases[i].subject, cases[i].key);
    assert_non_null(job);
    assert_true(job->entry.sequence == sequence);
    char id[JOB_ID_SIZE];
    job_id_format(sequence, id);
    assert_string_equal(job->id, id);
    assert_int_equal(job->state, JOBHUB__V1__JOB_STATE__QUEUED);
    assert_int_equal(job->fixed_size, cases[i].fixed_size);
    if (cases[i].fixed_size > 0) {
      assert_memory_equal(job_record_fixed(job), cases[i].fixed,
                          cases[i].fixed_size);
    }
    assert_string_equal(job_record_subject(job), cases[i].want_subject);
    assert_string_equal(job_record_key(job), cases[i].want_key);
    assert_int_equal(job->subject_size, strlen(cases[i].want_subject));
    assert_int_equal(job->key_size, strlen(cases[i].want_key));
    /* Everything else is zero. */
    assert_int_equal(job->entry.priority, 0);
    assert_true(job->entry.not_before_us == 0);
    assert_int_equal(job->entry.pool_idx, 0);
    assert_false(job->entry.queued);
    assert_null(job->queued_in);
    assert_false(job->lease.queued);
    assert_null(job->prev);
    assert_null(job->next);
    assert_null(job->run_prev);
    assert_null(job->run_next);
    assert_null(job->holder);
    assert_null(job->watchers);
    assert_true(job->created_us == 0 && job->started_us == 0 &&
                job->finished_us == 0);
    assert_true(job->worker_idx == 0);
    assert_true(job->progress == 0.0);
    assert_null(job->progress_message);
    assert_null(job->error);
    assert_int_equal(job->pool_id, 0);
    assert_int_equal(job->job_type_id, 0);
    assert_int_equal(job->attempts, 0);
    assert_int_equal(job->max_attempts, 0);
    assert_int_equal(job->lease_seconds, 0);
    assert_false(job->durable);
    job_record_free(job);
  }
  job_record_free(NULL);
}

static void test_new_keeps_copies(void **state) {
  (void)state;
  uint8_t fixed[3] = {1, 2, 3};
  char subject[] = "subject", key[] = "key";
  job_record *job = job_record_new(1, fixed, sizeof(fixed), subject, key);
  assert_non_null(job);
  memset(fixed, 0, sizeof(fixed));
  subject[0] = 'X';
  key[0] = 'X';
  assert_memory_equal(job_record_fixed(job), "\x01\x02\x03", 3);
  assert_string_equal(job_record_subject(job), "subject");
  assert_string_equal(job_record_key(job), "key");
  job_record_free(job);
}

static void test_set_text(void **state) {
  (void)state;
  char *field = NULL;
  char text[] = "halfway";
  assert_int_equal(job_record_set_text(&field, text), 0);
  assert_non_null(field);
  assert_ptr_not_equal(field, text); /* a copy */
  text[0] = 'X';
  assert_string_equal(field, "halfway");
  assert_int_equal(job_record_set_text(&field, "almost done"), 0);
  assert_string_equal(field, "almost done");
  assert_int_equal(job_record_set_text(&field, ""), 0);
  assert_null(field);
  assert_int_equal(job_record_set_text(&field, "again"), 0);
  assert_string_equal(field, "again");
  assert_int_equal(job_record_set_text(&field, NULL), 0);
  assert_null(field);
  assert_int_equal(job_record_set_text(&field, NULL), 0);
  assert_null(field);

  /* The record frees what it owns (ASan would report a leak). */
  job_record *job = job_record_new(9, NULL, 0, NULL, NULL);
  assert_non_null(job);
  assert_int_equal(job_record_set_text(&job->progress_message, "m"), 0);
  assert_int_equal(job_record_set_text(&job->error, "e"), 0);
  job_record_free(job);
}

/* Wire forms. */

/* A SubmitRequest that sets every field, with the parts it points to. */
typedef struct submit_fixture {
  Jobhub__V1__SubmitRequest request;
  Jobhub__V1__JobConfig config;
  Google__Protobuf__Struct params;
  Google__Protobuf__Struct__FieldsEntry param;
  Google__Protobuf__Struct__FieldsEntry *params_list[1];
  Google__Protobuf__Value param_value;
  Jobhub__V1__SubmitRequest__MetaEntry meta[2];
  Jobhub__V1__SubmitRequest__MetaEntry *meta_list[2];
  Google__Protobuf__Timestamp not_before;
} submit_fixture;

static void submit_fixture_init(submit_fixture *f) {
  static uint8_t payload[300]; /* over 127 bytes: a two-byte length */
  for (size_t i = 0; i < sizeof(payload); i++) {
    payload[i] = (uint8_t)i;
  }
  jobhub__v1__submit_request__init(&f->request);
  jobhub__v1__job_config__init(&f->config);
  google__protobuf__struct__init(&f->params);
  google__protobuf__struct__fields_entry__init(&f->param);
  google__protobuf__value__init(&f->param_value);
  google__protobuf__timestamp__init(&f->not_before);
  f->param_value.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
  f->param_value.number_value = 2.5;
  f->param.key = (char *)"window";
  f->param.value = &f->param_value;
  f->params_list[0] = &f->param;
  f->params.n_fields = 1;
  f->params.fields = f->params_list;
  f->config.config_name = (char *)"nightly";
  f->config.job_type_id = 7;
  f->config.module = (char *)"mod.resample";
  f->config.max_n_points = 1000;
  f->config.module_params = &f->params;
  static const char *const meta[2][2] = {{"team", "data"}, {"env", "prod"}};
  for (size_t i = 0; i < 2; i++) {
    jobhub__v1__submit_request__meta_entry__init(&f->meta[i]);
    f->meta[i].key = (char *)meta[i][0];
    f->meta[i].value = (char *)meta[i][1];
    f->meta_list[i] = &f->meta[i];
  }
  f->not_before.seconds = 1700000000;
  f->request.job_type_id = 7;
  f->request.pool_id = 3;
  f->request.subject = (char *)"series/42";
  f->request.config = &f->config;
  f->request.payload.data = payload;
  f->request.payload.len = sizeof(payload);
  f->request.n_meta = 2;
  f->request.meta = f->meta_list;
  f->request.priority = -4;
  f->request.not_before = &f->not_before;
  f->request.lease_seconds = 90;
  f->request.max_attempts = 2; /* resolved to another value below */
  f->request.idempotency_key = (char *)"idem-1";
  f->request.response_output_id = 77;
}

/* Checks the fields of the fixed part that submit_fixture_init set, with
 * max_attempts resolved to 6. */
static void check_fixed_fields(const Jobhub__V1__Job *job) {
  assert_int_equal(job->job_type_id, 7);
  assert_int_equal(job->pool_id, 3);
  assert_string_equal(job->subject, "series/42");
  assert_non_null(job->config);
  assert_string_equal(job->config->config_name, "nightly");
  assert_int_equal(job->config->job_type_id, 7);
  assert_string_equal(job->config->module, "mod.resample");
  assert_int_equal(job->config->max_n_points, 1000);
  assert_non_null(job->config->module_params);
  assert_int_equal(job->config->module_params->n_fields, 1);
  assert_string_equal(job->config->module_params->fields[0]->key, "window");
  assert_true(job->config->module_params->fields[0]->value->number_value ==
              2.5);
  assert_int_equal(job->payload.len, 300);
  for (size_t i = 0; i < 300; i++) {
    assert_int_equal(job->payload.data[i], (uint8_t)i);
  }
  assert_int_equal(job->n_meta, 2);
  bool team = false, env = false;
  for (size_t i = 0; i < job->n_meta; i++) {
    if (strcmp(job->meta[i]->key, "team") == 0) {
      assert_string_equal(job->meta[i]->value, "data");
      team = true;
    } else {
      assert_string_equal(job->meta[i]->key, "env");
      assert_string_equal(job->meta[i]->value, "prod");
      env = true;
    }
  }
  assert_true(team && env);
  assert_int_equal(job->priority, -4);
  assert_int_equal(job->max_attempts, 6);
}

/* Sets every status field of job to a distinct value. */
static void set_status_fields(job_record *job) {
  job->state = JOBHUB__V1__JOB_STATE__IN_PROGRESS;
  job->attempts = 3;
  job->leases = 3;
  job->worker_idx = (uint64_t)3 << 20 | (uint64_t)7 << 10 | 5;
  job->created_us = 1700000000123456;
  job->started_us = 1700000001000001;
  job->finished_us = 1700000002999999;
  job->progress = 0.625;
  assert_int_equal(job_record_set_text(&job->progress_message, "resampling"),
                   0);
  assert_int_equal(job_record_set_text(&job->error, "retrying after EIO"), 0);
}

static void check_timestamp(const Google__Protobuf__Timestamp *ts,
                            int64_t seconds, int32_t nanos) {
  assert_non_null(ts);
  assert_true(ts->seconds == seconds);
  assert_int_equal(ts->nanos, nanos);
}

static void check_status_fields(const Jobhub__V1__Job *job, const char *id) {
  assert_string_equal(job->id, id);
  assert_int_equal(job->state, JOBHUB__V1__JOB_STATE__IN_PROGRESS);
  assert_int_equal(job->attempts, 3);
  assert_true(job->worker_idx == ((uint64_t)3 << 20 | (uint64_t)7 << 10 | 5));
  check_timestamp(job->created_at, 1700000000, 123456000);
  check_timestamp(job->started_at, 1700000001, 1000);
  check_timestamp(job->finished_at, 1700000002, 999999000);
  assert_true(job->progress == 0.625);
  assert_string_equal(job->progress_message, "resampling");
  assert_string_equal(job->error, "retrying after EIO");
}

static job_record *submitted_job(uint64_t sequence) {
  submit_fixture f;
  submit_fixture_init(&f);
  size_t size = 0;
  uint8_t *fixed = job_fixed_pack(&f.request, 6, &size);
  assert_non_null(fixed);
  job_record *job = job_record_new(sequence, fixed, size, f.request.subject,
                                   f.request.idempotency_key);
  free(fixed);
  assert_non_null(job);
  return job;
}

static void test_fixed_pack_holds_what_submit_sets(void **state) {
  (void)state;
  submit_fixture f;
  submit_fixture_init(&f);
  size_t size = 0;
  uint8_t *fixed = job_fixed_pack(&f.request, 6, &size);
  assert_non_null(fixed);
  assert_true(size > 300);
  Jobhub__V1__Job *job = jobhub__v1__job__unpack(NULL, size, fixed);
  assert_non_null(job);
  check_fixed_fields(job);
  /* Nothing of the status part, and nothing that is not a Job field. */
  assert_string_equal(job->id, "");
  assert_int_equal(job->state, JOBHUB__V1__JOB_STATE__JOB_STATE_UNSPECIFIED);
  assert_int_equal(job->attempts, 0);
  assert_true(job->worker_idx == 0);
  assert_null(job->created_at);
  assert_null(job->started_at);
  assert_null(job->finished_at);
  assert_true(job->progress == 0.0);
  assert_string_equal(job->progress_message, "");
  assert_string_equal(job->error, "");
  assert_int_equal(job->base.n_unknown_fields, 0);
  jobhub__v1__job__free_unpacked(job, NULL);
  free(fixed);

  /* A request that sets nothing packs to nothing, still a buffer. */
  Jobhub__V1__SubmitRequest empty = JOBHUB__V1__SUBMIT_REQUEST__INIT;
  size = 99;
  fixed = job_fixed_pack(&empty, 0, &size);
  assert_non_null(fixed);
  assert_int_equal(size, 0);
  free(fixed);

  /* Without meta, only max_attempts as resolved. */
  size = 0;
  fixed = job_fixed_pack(&empty, 4, &size);
  assert_non_null(fixed);
  job = jobhub__v1__job__unpack(NULL, size, fixed);
  assert_non_null(job);
  assert_int_equal(job->max_attempts, 4);
  assert_int_equal(job->n_meta, 0);
  assert_null(job->config);
  jobhub__v1__job__free_unpacked(job, NULL);
  free(fixed);
}

static void test_pack_status_holds_only_status_fields(void **state) {
  (void)state;
  job_record *job = submitted_job(0xabc);
  set_status_fields(job);
  rpc_buffer out;
  rpc_buffer_init(&out);
  assert_int_equal(job_record_pack_status(job, &out), 0);
  Jobhub__V1__Job *status = jobhub__v1__job__unpack(NULL, out.len, out.data);
  assert_non_null(status);
  check_status_fields(status, "0000000000000abc");
  assert_int_equal(status->job_type_id, 0);
  assert_int_equal(status->pool_id, 0);
  assert_string_equal(status->subject, "");
  assert_null(status->config);
  assert_int_equal(status->payload.len, 0);
  assert_int_equal(status->n_meta, 0);
  assert_int_equal(status->priority, 0);
  assert_int_equal(status->max_attempts, 0);
  jobhub__v1__job__free_unpacked(status, NULL);
  rpc_buffer_free(&out);
  job_record_free(job);
}

/* The status part is encoded by hand: byte for byte what protobuf-c packs
 * for the same fields, over a table of values at the edges of each
 * encoding (zero, one-byte and ten-byte varints, negative times, long
 * strings). */
static void test_pack_status_matches_protobuf_c(void **state) {
  (void)state;
  char long_text[300];
  memset(long_text, 'e', sizeof(long_text) - 1);
  long_text[sizeof(long_text) - 1] = '\0';
  static const struct {
    int state;
    uint32_t attempts;
    uint64_t worker_idx;
    int64_t created_us, started_us, finished_us;
    double progress;
    bool message, error;
  } cases[] = {
      {0, 0, 0, 0, 0, 0, 0, false, false},
      {1, 1, 1, 1, 999999, 1000000, 0.5, true, false},
      {3, 127, 128, 1764633600123456, 1764633600999999, 1764633601000000, 1.0,
       false, true},
      {5, UINT32_MAX, UINT64_MAX, -1, -1000001, INT64_MAX / 2, -0.25, true,
       true},
      {2, 1000, (uint64_t)1 << 40, 1000000, 0, 0, 1e-300, false, false},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    job_record *job = submitted_job(0x1234 + i);
    job->state = cases[i].state;
    job->attempts = cases[i].attempts;
    job->worker_idx = cases[i].worker_idx;
    job->created_us = cases[i].created_us;
    job->started_us = cases[i].started_us;
    job->finished_us = cases[i].finished_us;
    job->progress = cases[i].progress;
    assert_int_equal(job_record_set_text(&job->progress_message,
                                         cases[i].message ? "half way" : NULL),
                     0);
    assert_int_equal(
        job_record_set_text(&job->error, cases[i].error ? long_text : NULL), 0);

    Jobhub__V1__Job want = JOBHUB__V1__JOB__INIT;
    Google__Protobuf__Timestamp times[3] = {GOOGLE__PROTOBUF__TIMESTAMP__INIT,
                                            GOOGLE__PROTOBUF__TIMESTAMP__INIT,
                                            GOOGLE__PROTOBUF__TIMESTAMP__INIT};
    int64_t us[3] = {job->created_us, job->started_us, job->finished_us};
    Google__Protobuf__Timestamp **fields[3] = {
        &want.created_at, &want.started_at, &want.finished_at};
    for (int t = 0; t < 3; t++) {
      if (us[t] != 0) {
        times[t].seconds = us[t] / 1000000;
        times[t].nanos = (int32_t)(us[t] % 1000000) * 1000;
        *fields[t] = &times[t];
      }
    }
    want.id = job->id;
    want.state = (Jobhub__V1__JobState)job->state;
    want.attempts = job->attempts;
    want.worker_idx = job->worker_idx;
    want.progress = job->progress;
    if (job->progress_message != NULL) {
      want.progress_message = job->progress_message;
    }
    if (job->error != NULL) {
      want.error = job->error;
    }
    size_t want_size = jobhub__v1__job__get_packed_size(&want);
    uint8_t *want_bytes = malloc(want_size + 1);
    assert_non_null(want_bytes);
    jobhub__v1__job__pack(&want, want_bytes);

    rpc_buffer out;
    rpc_buffer_init(&out);
    assert_int_equal(job_record_pack_status(job, &out), 0);
    if (out.len != want_size || memcmp(out.data, want_bytes, want_size) != 0) {
      fail_msg("case %zu: %zu bytes, protobuf-c packs %zu differently", i,
               out.len, want_size);
    }
    free(want_bytes);
    rpc_buffer_free(&out);
    job_record_free(job);
  }
}

static void test_pack_is_the_whole_job(void **state) {
  (void)state;
  job_record *job = submitted_job(0xfeed);
  set_status_fields(job);
  rpc_buffer out;
  rpc_buffer_init(&out);
  /* Packing appends: what is in the buffer stays. */
  assert_int_equal(rpc_buffer_append(&out, "xyz", 3), 0);
  assert_int_equal(job_record_pack(job, &out), 0);
  assert_memory_equal(out.data, "xyz", 3);
  Jobhub__V1__Job *whole =
      jobhub__v1__job__unpack(NULL, out.len - 3, out.data + 3);
  assert_non_null(whole);
  check_fixed_fields(whole);
  check_status_fields(whole, "000000000000feed");
  assert_int_equal(whole->base.n_unknown_fields, 0);
  jobhub__v1__job__free_unpacked(whole, NULL);

  /* It is the fixed part, then the status part. */
  rpc_buffer parts;
  rpc_buffer_init(&parts);
  assert_int_equal(
      rpc_buffer_append(&parts, job_record_fixed(job), job->fixed_size), 0);
  assert_int_equal(job_record_pack_status(job, &parts), 0);
  assert_int_equal(parts.len, out.len - 3);
  assert_memory_equal(parts.data, out.data + 3, parts.len);
  rpc_buffer_free(&parts);
  rpc_buffer_free(&out);
  job_record_free(job);
}

static void test_pack_of_a_fresh_record(void **state) {
  (void)state;
  job_record *job = job_record_new(5, NULL, 0, NULL, NULL);
  assert_non_null(job);
  rpc_buffer out;
  rpc_buffer_init(&out);
  assert_int_equal(job_record_pack(job, &out), 0);
  Jobhub__V1__Job *whole = jobhub__v1__job__unpack(NULL, out.len, out.data);
  assert_non_null(whole);
  assert_string_equal(whole->id, "0000000000000005");
  assert_int_equal(whole->state, JOBHUB__V1__JOB_STATE__QUEUED);
  /* Zero times are absent, not the epoch. */
  assert_null(whole->created_at);
  assert_null(whole->started_at);
  assert_null(whole->finished_at);
  assert_string_equal(whole->progress_message, "");
  assert_string_equal(whole->error, "");
  jobhub__v1__job__free_unpacked(whole, NULL);
  rpc_buffer_free(&out);
  job_record_free(job);
}

/* Packs job's status part and applies it to a fresh record. */
static job_record *status_round_trip(const job_record *job) {
  rpc_buffer out;
  rpc_buffer_init(&out);
  assert_int_equal(job_record_pack_status(job, &out), 0);
  job_record *copy = job_record_new(job->entry.sequence, NULL, 0, NULL, NULL);
  assert_non_null(copy);
  assert_int_equal(job_record_apply_status(copy, out.data, out.len), 0);
  rpc_buffer_free(&out);
  return copy;
}

static void test_apply_status_round_trip(void **state) {
  (void)state;
  job_record *job = submitted_job(77);
  set_status_fields(job);
  job_record *copy = status_round_trip(job);
  assert_int_equal(copy->attempts, job->attempts);
  assert_true(copy->worker_idx == job->worker_idx);
  assert_true(copy->created_us == job->created_us);
  assert_true(copy->started_us == job->started_us);
  assert_true(copy->finished_us == job->finished_us);
  assert_true(copy->progress == job->progress);
  assert_string_equal(copy->progress_message, job->progress_message);
  assert_string_equal(copy->error, job->error);
  assert_ptr_not_equal(copy->error, job->error);
  job_record_free(copy);

  /* Times of every size, each alone; zero stays zero. */
  static const int64_t times[] = {1, 999999, 1000000, 1700000000000000,
                                  4102444800000000 - 1};
  for (size_t i = 0; i < ARRAY_SIZE(times); i++) {
    job->created_us = times[i];
    job->started_us = 0;
    job->finished_us = times[i] + 1;
    copy = status_round_trip(job);
    assert_true(copy->created_us == times[i]);
    assert_true(copy->started_us == 0);
    assert_true(copy->finished_us == times[i] + 1);
    job_record_free(copy);
  }
  job_record_free(job);
}

/* The status part carries the state (job_record.h: "the status part ...
 * (id, state, attempts, ...)"), and apply_status "sets the record's status
 * fields" from it. */
static void test_apply_status_sets_state(void **state) {
  (void)state;
  static const int states[] = {
      JOBHUB__V1__JOB_STATE__IN_PROGRESS, JOBHUB__V1__JOB_STATE__DONE,
      JOBHUB__V1__JOB_STATE__FAILED, JOBHUB__V1__JOB_STATE__CANCELLED};
  for (size_t i = 0; i < ARRAY_SIZE(states); i++) {
    job_record *job = job_record_new(1, NULL, 0, NULL, NULL);
    assert_non_null(job);
    job->state = states[i];
    job_record *copy = status_round_trip(job);
    int got = copy->state;
    job_record_free(copy);
    job_record_free(job);
    assert_int_equal(got, states[i]);
  }
}

static void test_apply_status_clears_what_is_absent(void **state) {
  (void)state;
  job_record *job = job_record_new(3, NULL, 0, NULL, NULL);
  assert_non_null(job);
  set_status_fields(job);
  /* An empty status part parses as a Job with every field at its default. */
  assert_int_equal(job_record_apply_status(job, (const uint8_t *)"", 0), 0);
  assert_int_equal(job->attempts, 0);
  assert_true(job->worker_idx == 0);
  assert_true(job->created_us == 0 && job->started_us == 0 &&
              job->finished_us == 0);
  assert_true(job->progress == 0.0);
  assert_null(job->progress_message);
  assert_null(job->error);
  job_record_free(job);
}

static void test_apply_status_refuses_what_does_not_parse(void **state) {
  (void)state;
  static const struct {
    const char *bytes;
    size_t size;
  } cases[] = {
      {"\x10", 1},     /* state: varint cut off */
      {"\x50\xff", 2}, /* attempts: varint cut off */
      {"\x0a\x05"
       "abc",
       5},                     /* id: longer than the data */
      {"\x6a\x04\x08\x01", 4}, /* created_at: longer than the data */
      {"\x81\x01", 2},         /* fixed64 of field 16, cut off */
      {"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11}, /* length */
  };
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    job_record *job = job_record_new(3, NULL, 0, NULL, NULL);
    assert_non_null(job);
    assert_int_equal(job_record_apply_status(
                         job, (const uint8_t *)cases[i].bytes, cases[i].size),
                     -1);
    job_record_free(job);
  }
}

/* Ids. */

static void test_job_id_format_and_parse(void **state) {
  (void)state;
  static const struct {
    uint64_t sequence;
    const char *id;
  } cases[] = {
      {0, "0000000000000000"},
      {1, "0000000000000001"},
      {0xdeadbeef, "00000000deadbeef"},
      {0x0123456789abcdef, "0123456789abcdef"},
      {0xfedcba9876543210, "fedcba9876543210"},
      {UINT64_MAX, "ffffffffffffffff"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    char id[JOB_ID_SIZE];
    memset(id, 'x', sizeof(id));
    job_id_format(cases[i].sequence, id);
    assert_string_equal(id, cases[i].id);
    uint64_t sequence = 0;
    assert_int_equal(job_id_parse(cases[i].id, &sequence), 0);
    assert_true(sequence == cases[i].sequence);
  }
}

static void test_job_id_parse_refuses_malformed(void **state) {
  (void)state;
  static const char *const malformed[] = {
      "",
      "0",
      "000000000000000",   /* 15 digits */
      "00000000000000000", /* 17 */
      "000000000000000a0",
      "ABCDEF0123456789", /* upper case */
      "abcdef012345678F",
      "000000000000000g",
      " 000000000000001",
      "000000000000001 ",
      "-000000000000001",
      "+000000000000001",
      "0x00000000000001",
      "000000000000001\n",
      "0000000000000001\n",
      "0000000000000001.1",
      "00000000\3770000001", /* a byte above ASCII */
      "000000000000000:",    /* just past '9' */
      "000000000000000/",    /* just before '0' */
      "000000000000000`",    /* just before 'a' */
  };
  for (size_t i = 0; i < ARRAY_SIZE(malformed); i++) {
    uint64_t sequence = 42;
    if (job_id_parse(malformed[i], &sequence) != -1) {
      fail_msg("job_id_parse accepted \"%s\"", malformed[i]);
    }
  }
}

#define SECRET_HEX "00112233445566778899aabbccddeeff"

static void test_lease_id_format_and_parse(void **state) {
  (void)state;
  static const struct {
    uint64_t sequence;
    uint32_t leases;
    const char *lease_id;
  } cases[] = {
      {1, 0, "0000000000000001.0." SECRET_HEX},
      {1, 1, "0000000000000001.1." SECRET_HEX},
      {0xabc, 42, "0000000000000abc.42." SECRET_HEX},
      {UINT64_MAX, UINT32_MAX, "ffffffffffffffff.4294967295." SECRET_HEX},
      {0, 1000000000, "0000000000000000.1000000000." SECRET_HEX},
  };
  static const uint8_t secret[LEASE_SECRET_SIZE] = {
      0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
      0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    job_record *job = job_record_new(cases[i].sequence, NULL, 0, NULL, NULL);
    assert_non_null(job);
    /* The number is the lease count, not attempts (Reset zeroes those). */
    job->leases = cases[i].leases;
    job->attempts = 7;
    memcpy(job->lease_secret, secret, LEASE_SECRET_SIZE);
    char lease_id[LEASE_ID_SIZE];
    lease_id_format(job, lease_id);
    assert_string_equal(lease_id, cases[i].lease_id);
    assert_true(strlen(lease_id) < LEASE_ID_SIZE);
    uint64_t sequence = 0;
    uint32_t lease = 0;
    uint8_t parsed[LEASE_SECRET_SIZE] = {0};
    assert_int_equal(
        lease_id_parse(cases[i].lease_id, &sequence, &lease, parsed), 0);
    assert_true(sequence == cases[i].sequence);
    assert_int_equal(lease, cases[i].leases);
    assert_memory_equal(parsed, secret, LEASE_SECRET_SIZE);
    assert_true(lease_secret_equal(parsed, job->lease_secret));
    job_record_free(job);
  }
}

static void test_lease_secret_equal_compares_every_byte(void **state) {
  (void)state;
  uint8_t a[LEASE_SECRET_SIZE], b[LEASE_SECRET_SIZE];
  for (size_t i = 0; i < LEASE_SECRET_SIZE; i++) {
    a[i] = (uint8_t)(i * 17 + 3);
  }
  memcpy(b, a, sizeof(a));
  assert_true(lease_secret_equal(a, b));
  for (size_t i = 0; i < LEASE_SECRET_SIZE; i++) {
    for (unsigned bit = 0; bit < 8; bit++) {
      b[i] ^= (uint8_t)(1u << bit);
      assert_false(lease_secret_equal(a, b));
      b[i] ^= (uint8_t)(1u << bit);
    }
  }
}

static void test_lease_id_parse_refuses_malformed(void **state) {
  (void)state;
  static const char *const malformed[] = {
      "",
      ".",
      "0000000000000001",
      "0000000000000001.",   /* no lease number */
      "0000000000000001.1",  /* no secret: the form before secrets */
      "0000000000000001.1.", /* an empty secret */
      "0000000000000001.1.00112233445566778899aabbccddeef",   /* 31 digits */
      "0000000000000001.1.00112233445566778899aabbccddeeff0", /* 33 digits */
      "0000000000000001.1.00112233445566778899AABBCCDDEEFF",  /* capitals */
      "0000000000000001.1.00112233445566778899aabbccddeefg",
      "0000000000000001.1.00112233445566778899aabbccddee f",
      "0000000000000001.1." SECRET_HEX " ",
      "0000000000000001.1:" SECRET_HEX,
      "0000000000000001." SECRET_HEX, /* no number */
      "0000000000000001.." SECRET_HEX,
      "00000000000000011." SECRET_HEX, /* no dot */
      "0000000000000001:1." SECRET_HEX,
      "000000000000001.1." SECRET_HEX,   /* 15-digit id */
      "00000000000000001.1." SECRET_HEX, /* 17-digit id */
      "000000000000000G.1." SECRET_HEX,
      "000000000000000A.1." SECRET_HEX,
      " 000000000000001.1." SECRET_HEX,
      "0000000000000001.-1." SECRET_HEX,
      "0000000000000001.+1." SECRET_HEX,
      "0000000000000001. 1." SECRET_HEX,
      "0000000000000001.1 ." SECRET_HEX,
      "0000000000000001.1a." SECRET_HEX,
      "0000000000000001.0x1." SECRET_HEX,
      "0000000000000001.1.2." SECRET_HEX,
      "0000000000000001.4294967296." SECRET_HEX, /* UINT32_MAX + 1 */
      "0000000000000001.4294967300." SECRET_HEX,
      "0000000000000001.9999999999." SECRET_HEX,
      "0000000000000001.42949672950." SECRET_HEX, /* 11 digits */
      "0000000000000001.99999999999999999999999." SECRET_HEX,
  };
  for (size_t i = 0; i < ARRAY_SIZE(malformed); i++) {
    uint64_t sequence = 0;
    uint32_t attempt = 0;
    uint8_t secret[LEASE_SECRET_SIZE];
    if (lease_id_parse(malformed[i], &sequence, &attempt, secret) != -1) {
      fail_msg("lease_id_parse accepted \"%s\"", malformed[i]);
    }
  }
}

/* Protobuf fields. */

static void test_bytes_field_encoding(void **state) {
  (void)state;
  static const uint8_t big[300] = {0};
  static const struct {
    uint32_t field;
    const void *data;
    size_t size;
    const char *header; /* the tag and length */
    size_t header_size;
  } cases[] = {
      {1, "abc", 3, "\x0a\x03", 2},
      {2, NULL, 0, "\x12\x00", 2},
      {2, "", 0, "\x12\x00", 2},
      {15, "x", 1, "\x7a\x01", 2},
      {16, "x", 1, "\x82\x01\x01", 3},
      {12, big, 127, "\x62\x7f", 2},
      {12, big, 128, "\x62\x80\x01", 3},
      {1, big, 300, "\x0a\xac\x02", 3},
      {536870911, "y", 1, "\xfa\xff\xff\xff\x0f\x01", 6}, /* largest field */
  };
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    rpc_buffer out;
    rpc_buffer_init(&out);
    assert_int_equal(rpc_buffer_append(&out, "pre", 3), 0);
    assert_int_equal(pb_append_bytes_field(&out, cases[i].field, cases[i].data,
                                           cases[i].size),
                     0);
    assert_int_equal(out.len, 3 + cases[i].header_size + cases[i].size);
    assert_memory_equal(out.data, "pre", 3);
    assert_memory_equal(out.data + 3, cases[i].header, cases[i].header_size);
    if (cases[i].size > 0) {
      assert_memory_equal(out.data + 3 + cases[i].header_size, cases[i].data,
                          cases[i].size);
    }
    rpc_buffer_free(&out);
  }
}

static void test_bytes_field_nests_a_job_in_an_assignment(void **state) {
  (void)state;
  job_record *job = submitted_job(0x10);
  set_status_fields(job);
  char lease_id[LEASE_ID_SIZE];
  lease_id_format(job, lease_id);
  rpc_buffer packed, out;
  rpc_buffer_init(&packed);
  rpc_buffer_init(&out);
  assert_int_equal(job_record_pack(job, &packed), 0);
  assert_int_equal(pb_append_bytes_field(&out, 1, packed.data, packed.len), 0);
  assert_int_equal(pb_append_bytes_field(&out, 2, lease_id, strlen(lease_id)),
                   0);
  Jobhub__V1__Assignment *assignment =
      jobhub__v1__assignment__unpack(NULL, out.len, out.data);
  assert_non_null(assignment);
  assert_non_null(assignment->job);
  check_fixed_fields(assignment->job);
  check_status_fields(assignment->job, "0000000000000010");
  assert_string_equal(assignment->lease_id,
                      "0000000000000010.3.00000000000000000000000000000000");
  jobhub__v1__assignment__free_unpacked(assignment, NULL);
  rpc_buffer_free(&out);
  rpc_buffer_free(&packed);
  job_record_free(job);
}

static void test_append_message_packs_it(void **state) {
  (void)state;
  Jobhub__V1__JobConfig config = JOBHUB__V1__JOB_CONFIG__INIT;
  config.config_name = (char *)"c";
  config.max_n_points = 300;
  uint8_t want[32];
  size_t want_size = jobhub__v1__job_config__pack(&config, want);
  rpc_buffer out;
  rpc_buffer_init(&out);
  assert_int_equal(rpc_buffer_append(&out, "pre", 3), 0);
  assert_int_equal(pb_append_message(&out, &config.base), 0);
  assert_int_equal(out.len, 3 + want_size);
  assert_memory_equal(out.data + 3, want, want_size);
  /* An empty message appends nothing. */
  Jobhub__V1__JobConfig empty = JOBHUB__V1__JOB_CONFIG__INIT;
  assert_int_equal(pb_append_message(&out, &empty.base), 0);
  assert_int_equal(out.len, 3 + want_size);
  rpc_buffer_free(&out);
}

static void test_time_now_is_the_wall_clock(void **state) {
  (void)state;
  int64_t before = (int64_t)time(NULL);
  int64_t now = time_now_us();
  int64_t after = (int64_t)time(NULL);
  /* time() may read a coarser clock: allow it a second either way. */
  assert_true(now / 1000000 >= before - 1 && now / 1000000 <= after + 1);
  assert_true(now > 1577836800000000); /* after 2020 */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_new_copies_parts_and_zeroes_the_rest),
      cmocka_unit_test(test_new_keeps_copies),
      cmocka_unit_test(test_set_text),
      cmocka_unit_test(test_fixed_pack_holds_what_submit_sets),
      cmocka_unit_test(test_pack_status_holds_only_status_fields),
      cmocka_unit_test(test_pack_status_matches_protobuf_c),
      cmocka_unit_test(test_pack_is_the_whole_job),
      cmocka_unit_test(test_pack_of_a_fresh_record),
      cmocka_unit_test(test_apply_status_round_trip),
      cmocka_unit_test(test_apply_status_sets_state),
      cmocka_unit_test(test_apply_status_clears_what_is_absent),
      cmocka_unit_test(test_apply_status_refuses_what_does_not_parse),
      cmocka_unit_test(test_job_id_format_and_parse),
      cmocka_unit_test(test_job_id_parse_refuses_malformed),
      cmocka_unit_test(test_lease_id_format_and_parse),
      cmocka_unit_test(test_lease_id_parse_refuses_malformed),
      cmocka_unit_test(test_lease_secret_equal_compares_every_byte),
      cmocka_unit_test(test_bytes_field_encoding),
      cmocka_unit_test(test_bytes_field_nests_a_job_in_an_assignment),
      cmocka_unit_test(test_append_message_packs_it),
      cmocka_unit_test(test_time_now_is_the_wall_clock),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
