/* test_descriptor_pool.c: the embedded descriptor sets: files, symbols of
 * every kind, extensions, and refusal of a malformed set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "jobhub_descriptor_set.h"
#include "rpc/descriptor_pool.h"
#include "rpc_descriptor_set.h"

static rpc_descriptor_pool *pool_of_both(void) {
  rpc_descriptor_pool *pool = rpc_descriptor_pool_new();
  assert_non_null(pool);
  assert_int_equal(rpc_descriptor_pool_add_set(pool, rpc_descriptor_set,
                                               rpc_descriptor_set_size),
                   0);
  assert_int_equal(rpc_descriptor_pool_add_set(pool, jobhub_descriptor_set,
                                               jobhub_descriptor_set_size),
                   0);
  return pool;
}

static void test_files_and_dependency_order(void **state) {
  (void)state;
  rpc_descriptor_pool *pool = pool_of_both();
  const rpc_descriptor_file *jobs =
      rpc_descriptor_pool_find_file(pool, "jobhub/v1/jobs.proto");
  assert_non_null(jobs);
  assert_string_equal(jobs->proto->package, "jobhub.v1");
  /* Shared files (descriptor.proto, google/api) are added once. */
  size_t seen_descriptor = 0, jobs_index = 0, common_index = 0;
  for (size_t i = 0; i < rpc_descriptor_pool_file_count(pool); i++) {
    const char *name = rpc_descriptor_pool_file(pool, i)->name;
    seen_descriptor += strcmp(name, "google/protobuf/descriptor.proto") == 0;
    if (strcmp(name, "jobhub/v1/jobs.proto") == 0) {
      jobs_index = i;
    }
    if (strcmp(name, "jobhub/v1/common.proto") == 0) {
      common_index = i;
    }
  }
  assert_int_equal(seen_descriptor, 1);
  assert_true(common_index < jobs_index);
  assert_null(rpc_descriptor_pool_find_file(pool, "nope.proto"));
  rpc_descriptor_pool_free(pool);
}

static void test_symbols(void **state) {
  (void)state;
  rpc_descriptor_pool *pool = pool_of_both();
  static const struct {
    const char *symbol;
    const char *file; /* NULL: unknown */
  } cases[] = {
      {"jobhub.v1.Jobs", "jobhub/v1/jobs.proto"},
      {"jobhub.v1.Jobs.Submit", "jobhub/v1/jobs.proto"},
      {".jobhub.v1.Job", "jobhub/v1/common.proto"},
      {"jobhub.v1.Job.meta", "jobhub/v1/common.proto"},
      {"jobhub.v1.Job.MetaEntry", "jobhub/v1/common.proto"},
      {"jobhub.v1.JobState", "jobhub/v1/common.proto"},
      {"jobhub.v1.IN_PROGRESS", "jobhub/v1/common.proto"},
      {"grpc.health.v1.HealthCheckResponse.ServingStatus",
       "grpc/health/v1/health.proto"},
      {"grpc.health.v1.HealthCheckResponse.SERVING",
       "grpc/health/v1/health.proto"},
      {"google.api.http", "google/api/annotations.proto"},
      {"jobhub.v1.NoSuch", NULL},
      {"jobhub", NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const rpc_descriptor_file *file =
        rpc_descriptor_pool_find_symbol(pool, cases[i].symbol);
    if (cases[i].file == NULL) {
      assert_null(file);
    } else {
      assert_non_null(file);
      assert_string_equal(file->name, cases[i].file);
    }
  }
  rpc_descriptor_pool_free(pool);
}

/* The typed lookups find messages and enums, nested too, and nothing of
 * another kind. */
static void test_messages_and_enums(void **state) {
  (void)state;
  rpc_descriptor_pool *pool = pool_of_both();
  const rpc_descriptor_file *file = NULL;
  const Google__Protobuf__DescriptorProto *job =
      rpc_descriptor_pool_find_message(pool, "jobhub.v1.Job", &file);
  assert_non_null(job);
  assert_string_equal(job->name, "Job");
  assert_string_equal(file->name, "jobhub/v1/common.proto");
  const Google__Protobuf__DescriptorProto *entry =
      rpc_descriptor_pool_find_message(pool, ".jobhub.v1.Job.MetaEntry", NULL);
  assert_non_null(entry);
  assert_true(entry->options != NULL && entry->options->map_entry);
  const Google__Protobuf__EnumDescriptorProto *status =
      rpc_descriptor_pool_find_enum(
          pool, "grpc.health.v1.HealthCheckResponse.ServingStatus", &file);
  assert_non_null(status);
  assert_string_equal(file->name, "grpc/health/v1/health.proto");
  assert_non_null(
      rpc_descriptor_pool_find_enum(pool, "jobhub.v1.JobState", NULL));
  assert_non_null(
      rpc_descriptor_pool_find_message(pool, "google.protobuf.Struct", NULL));
  static const char *const not_messages[] = {
      "jobhub.v1.JobState", "jobhub.v1.Jobs",        "jobhub.v1.Jobs.Submit",
      "jobhub.v1.Job.meta", "jobhub.v1.IN_PROGRESS", "jobhub.v1.NoSuch"};
  for (size_t i = 0; i < sizeof(not_messages) / sizeof(not_messages[0]); i++) {
    assert_null(rpc_descriptor_pool_find_message(pool, not_messages[i], NULL));
  }
  assert_null(rpc_descriptor_pool_find_enum(pool, "jobhub.v1.Job", NULL));
  assert_null(rpc_descriptor_pool_find_enum(pool, "jobhub.v1.QUEUED", NULL));
  rpc_descriptor_pool_free(pool);
  rpc_descriptor_pool *empty = rpc_descriptor_pool_new();
  assert_non_null(empty);
  assert_null(rpc_descriptor_pool_find_message(empty, "jobhub.v1.Job", NULL));
  assert_null(rpc_descriptor_pool_find_enum(empty, "jobhub.v1.JobState", NULL));
  rpc_descriptor_pool_free(empty);
}

static void test_extensions(void **state) {
  (void)state;
  rpc_descriptor_pool *pool = pool_of_both();
  int32_t numbers[8];
  size_t count = rpc_descriptor_pool_extension_numbers(
      pool, "google.protobuf.MethodOptions", numbers, 8);
  assert_int_equal(count, 1);
  assert_int_equal(numbers[0], 72295728);
  const rpc_descriptor_file *file = rpc_descriptor_pool_find_extension(
      pool, "google.protobuf.MethodOptions", 72295728);
  assert_non_null(file);
  assert_string_equal(file->name, "google/api/annotations.proto");
  assert_null(rpc_descriptor_pool_find_extension(
      pool, "google.protobuf.MethodOptions", 1));
  rpc_descriptor_pool_free(pool);
}

static void test_malformed_set_is_refused(void **state) {
  (void)state;
  rpc_descriptor_pool *pool = rpc_descriptor_pool_new();
  static const uint8_t wrong_tag[] = {0x12, 0x00};
  static const uint8_t too_long[] = {0x0A, 0x7F, 0x01};
  static const uint8_t not_a_file[] = {0x0A, 0x02, 0xFF, 0xFF};
  assert_int_equal(rpc_descriptor_pool_add_set(pool, wrong_tag, 2), -1);
  assert_int_equal(rpc_descriptor_pool_add_set(pool, too_long, 3), -1);
  assert_int_equal(rpc_descriptor_pool_add_set(pool, not_a_file, 4), -1);
  assert_int_equal(rpc_descriptor_pool_file_count(pool), 0);
  rpc_descriptor_pool_free(pool);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_files_and_dependency_order),
      cmocka_unit_test(test_symbols),
      cmocka_unit_test(test_messages_and_enums),
      cmocka_unit_test(test_extensions),
      cmocka_unit_test(test_malformed_set_is_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
