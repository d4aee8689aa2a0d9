/* test_route_table.c: the JSON transcoding routes: jobhub's own
 * google.api.http rules read from the embedded descriptor set, templates
 * ("**", variables over several segments, nested fields, verbs),
 * percent-decoding, trailing slashes, 404 and 405 with the allowed methods,
 * conflicts named both ways, and the time of a million matches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "jobhub_descriptor_set.h"
#include "rpc/descriptor_pool.h"
#include "rpc_descriptor_set.h"
#include "server/http/percent.h"
#include "server/http/route_rules.h"
#include "server/http/route_table.h"

typedef struct fixture {
  rpc_descriptor_pool *pool;
  http_route_table *table;
} fixture;

static int set_up_jobhub(void **state) {
  static fixture f;
  f.pool = rpc_descriptor_pool_new();
  f.table = http_route_table_new();
  assert_non_null(f.pool);
  assert_non_null(f.table);
  assert_int_equal(rpc_descriptor_pool_add_set(f.pool, rpc_descriptor_set,
                                               rpc_descriptor_set_size),
                   0);
  assert_int_equal(rpc_descriptor_pool_add_set(f.pool, jobhub_descriptor_set,
                                               jobhub_descriptor_set_size),
                   0);
  char err[512] = "";
  int rv = http_route_rules_add_pool(f.table, f.pool, err, sizeof(err));
  if (rv != 0) {
    fail_msg("%s", err);
  }
  *state = &f;
  return 0;
}

static int tear_down_jobhub(void **state) {
  fixture *f = *state;
  http_route_table_free(f->table);
  rpc_descriptor_pool_free(f->pool);
  return 0;
}

typedef struct found {
  http_route_outcome outcome;
  http_route_match match;
  http_route_binding bindings[HTTP_TEMPLATE_MAX_VARIABLES];
} found;

static found match(const http_route_table *table, const char *method,
                   const char *path) {
  found r;
  memset(&r, 0, sizeof(r));
  r.outcome = http_route_table_match(table, method, path, strlen(path),
                                     r.bindings, &r.match);
  return r;
}

static http_route_table *new_table(void) {
  http_route_table *table = http_route_table_new();
  assert_non_null(table);
  return table;
}

/* Asserts method path routes to rpc_path, and, when field is not NULL,
 * binds field to the raw text value (its only binding). */
static const http_route *expect_route(const http_route_table *table,
                                      const char *method, const char *path,
                                      const char *rpc_path, const char *field,
                                      const char *value) {
  found r = match(table, method, path);
  if (r.outcome != HTTP_ROUTE_FOUND) {
    fail_msg("%s %s: outcome %d, expected %s", method, path, r.outcome,
             rpc_path);
  }
  assert_string_equal(r.match.route->rpc_path, rpc_path);
  if (field == NULL) {
    assert_int_equal(r.match.binding_count, 0);
    return r.match.route;
  }
  assert_int_equal(r.match.binding_count, 1);
  assert_string_equal(r.bindings[0].field_path, field);
  assert_int_equal(r.bindings[0].len, strlen(value));
  assert_memory_equal(r.bindings[0].value, value, strlen(value));
  return r.match.route;
}

/* Asserts a 405 whose allowed methods are exactly the comma-separated
 * list allowed (in any order). */
static void expect_not_allowed(const http_route_table *table,
                               const char *method, const char *path,
                               const char *allowed) {
  found r = match(table, method, path);
  assert_int_equal(r.outcome, HTTP_ROUTE_METHOD_NOT_ALLOWED);
  size_t listed = 0;
  for (const char *at = allowed; *at; listed++) {
    const char *comma = strchr(at, ',');
    size_t len = comma != NULL ? (size_t)(comma - at) : strlen(at);
    bool present = false;
    for (size_t i = 0; i < r.match.allowed_count; i++) {
      present |= strlen(r.match.allowed[i]) == len &&
                 memcmp(r.match.allowed[i], at, len) == 0;
    }
    if (!present) {
      fail_msg("%s %s: %.*s not among the allowed methods", method, path,
               (int)len, at);
    }
    at += comma != NULL ? len + 1 : len;
  }
  assert_int_equal(r.match.allowed_count, listed);
}

static void test_jobs_routes(void **state) {
  const fixture *f = *state;
  const http_route *get = expect_route(f->table, "GET", "/v1/jobs/123",
                                       "/jobhub.v1.Jobs/Get", "id", "123");
  assert_string_equal(get->input_type, "jobhub.v1.GetRequest");
  assert_string_equal(get->output_type, "jobhub.v1.Job");
  assert_null(get->body);
  assert_null(get->response_body);
  assert_false(get->server_streaming);
  expect_route(f->table, "GET", "/jobs/123", "/jobhub.v1.Jobs/Get", "id",
               "123");
  expect_route(f->table, "GET", "/jobs/7/results", "/jobhub.v1.Jobs/GetResult",
               "id", "7");
  expect_route(f->table, "GET", "/v1/jobs/7/result",
               "/jobhub.v1.Jobs/GetResult", "id", "7");
  const http_route *cancel = expect_route(f->table, "POST", "/v1/jobs/9:cancel",
                                          "/jobhub.v1.Jobs/Cancel", "id", "9");
  assert_string_equal(cancel->body, "*");
  expect_route(f->table, "POST", "/v1/jobs:reset", "/jobhub.v1.Jobs/Reset",
               NULL, NULL);
  const http_route *submit = expect_route(f->table, "POST", "/jobs",
                                          "/jobhub.v1.Jobs/Submit", NULL, NULL);
  assert_string_equal(submit->body, "*");
  expect_route(f->table, "GET", "/jobs", "/jobhub.v1.Jobs/List", NULL, NULL);
  const http_route *watch = expect_route(f->table, "GET", "/v1/jobs/5:watch",
                                         "/jobhub.v1.Jobs/Watch", "id", "5");
  assert_true(watch->server_streaming);
  expect_route(f->table, "GET", "/v1/jobs:watch", "/jobhub.v1.Jobs/Watch", NULL,
               NULL);
  /* The query is not part of the path. */
  expect_route(f->table, "GET", "/v1/jobs/123?view=full", "/jobhub.v1.Jobs/Get",
               "id", "123");
}

static void test_worker_and_legacy_routes(void **state) {
  const fixture *f = *state;
  expect_route(f->table, "POST", "/getWork", "/jobhub.v1.Workers/Lease", NULL,
               NULL);
  expect_route(f->table, "POST", "/getWork?client=abc",
               "/jobhub.v1.Workers/Lease", NULL, NULL);
  expect_route(f->table, "PUT", "/storeResult/forecasts",
               "/jobhub.v1.Workers/Complete", "table", "forecasts");
  expect_route(f->table, "PUT", "/storeError/forecasts",
               "/jobhub.v1.Workers/Fail", "table", "forecasts");
  expect_route(f->table, "POST", "/v1/jobs/3:complete",
               "/jobhub.v1.Workers/Complete", "job_id", "3");
  expect_route(f->table, "GET", "/api/worker/stats/2",
               "/jobhub.v1.Workers/Stats", "pool_id", "2");
  expect_route(f->table, "GET", "/api/worker/2", "/jobhub.v1.Workers/List",
               "pool_id", "2");
  /* The literal "stats" only has GET: DELETE falls through to the
   * variables. */
  found r = match(f->table, "DELETE", "/api/worker/stats/2");
  assert_int_equal(r.outcome, HTTP_ROUTE_FOUND);
  assert_string_equal(r.match.route->rpc_path, "/jobhub.v1.Workers/Delete");
  assert_int_equal(r.match.binding_count, 2);
  assert_string_equal(r.bindings[0].field_path, "pool_id");
  assert_memory_equal(r.bindings[0].value, "stats", 5);
  assert_string_equal(r.bindings[1].field_path, "job_type_id");
  assert_memory_equal(r.bindings[1].value, "2", 1);
  r = match(f->table, "GET", "/api/series/s1/state/0/7");
  assert_int_equal(r.outcome, HTTP_ROUTE_FOUND);
  assert_string_equal(r.match.route->rpc_path,
                      "/jobhub.v1.Workers/GetSubjectState");
  assert_int_equal(r.match.binding_count, 3);
  expect_route(f->table, "GET", "/enodo/status", "/jobhub.v1.Hub/Status", NULL,
               NULL);
  const http_route *run =
      expect_route(f->table, "POST", "/api/series/s1/run?byName=1&poolID=0",
                   "/jobhub.v1.Series/Run", "name", "s1");
  assert_string_equal(run->body, "*");
  expect_route(f->table, "GET", "/api/enodo/output/event",
               "/jobhub.v1.Outputs/List", "type_name", "event");
  found out = match(f->table, "DELETE", "/api/enodo/output/result/4");
  assert_int_equal(out.outcome, HTTP_ROUTE_FOUND);
  assert_string_equal(out.match.route->rpc_path, "/jobhub.v1.Outputs/Delete");
  assert_int_equal(out.match.binding_count, 2);
}

static void test_trailing_slash(void **state) {
  const fixture *f = *state;
  expect_route(f->table, "GET", "/jobs/7/", "/jobhub.v1.Jobs/Get", "id", "7");
  expect_route(f->table, "GET", "/jobs/", "/jobhub.v1.Jobs/List", NULL, NULL);
  expect_route(f->table, "POST", "/getWork/?client=x",
               "/jobhub.v1.Workers/Lease", NULL, NULL);
  expect_route(f->table, "GET", "/jobs/7/results/", "/jobhub.v1.Jobs/GetResult",
               "id", "7");
  /* One slash only; an empty segment is no "{id}". */
  assert_int_equal(match(f->table, "GET", "/jobs//").outcome,
                   HTTP_ROUTE_NOT_FOUND);
}

static void test_method_not_allowed(void **state) {
  const fixture *f = *state;
  expect_not_allowed(f->table, "DELETE", "/v1/jobs/123", "GET");
  expect_not_allowed(f->table, "PUT", "/jobs", "GET,POST");
  expect_not_allowed(f->table, "GET", "/v1/jobs:reset", "POST");
  expect_not_allowed(f->table, "GET", "/getWork", "POST");
  expect_not_allowed(f->table, "POST", "/storeResult/t", "PUT");
  expect_not_allowed(f->table, "PATCH", "/api/worker/2", "GET,POST");
}

static void test_not_found(void **state) {
  const fixture *f = *state;
  static const char *const paths[] = {
      "/nothing",
      "/v1/jobs/1/2/3",
      "",
      "jobs",
      "/",
      "/v1/jobs/1:nosuchverb/x",
      "/api/worker/stats/2/3/4",
  };
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    found r = match(f->table, "GET", paths[i]);
    if (r.outcome != HTTP_ROUTE_NOT_FOUND) {
      fail_msg("GET %s: outcome %d, expected 404", paths[i], r.outcome);
    }
    assert_int_equal(r.match.allowed_count, 0);
  }
  /* More segments than a request may have. */
  char deep[2 * HTTP_ROUTE_MAX_SEGMENTS + 8] = "";
  for (size_t i = 0; i <= HTTP_ROUTE_MAX_SEGMENTS; i++) {
    strcat(deep, "/x");
  }
  assert_int_equal(match(f->table, "GET", deep).outcome, HTTP_ROUTE_NOT_FOUND);
}

static void test_unknown_service(void **state) {
  const fixture *f = *state;
  http_route_table *table = new_table();
  char err[256] = "";
  assert_int_equal(http_route_rules_add_service(
                       table, f->pool, "jobhub.v1.Nope", err, sizeof(err)),
                   -1);
  assert_non_null(strstr(err, "jobhub.v1.Nope"));
  assert_int_equal(http_route_rules_add_service(
                       table, f->pool, "jobhub.v1.Jobs", err, sizeof(err)),
                   0);
  /* Jobs: 8 rules and 5 additional bindings. */
  assert_int_equal(http_route_table_count(table), 13);
  http_route_table_free(table);
}

static void test_pool_twice_conflicts(void **state) {
  const fixture *f = *state;
  char err[512] = "";
  assert_int_equal(
      http_route_rules_add_pool(f->table, f->pool, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "conflicting"));
}

/* ---- synthetic rules ---- */

static void add(http_route_table *table, const char *method,
                const char *path_template, const char *rpc_path) {
  http_route_spec spec = {.http_method = method,
                          .path_template = path_template,
                          .rpc_path = rpc_path,
                          .input_type = ".test.Request",
                          .output_type = ".test.Response"};
  char err[512] = "";
  if (http_route_table_add(table, &spec, NULL, err, sizeof(err)) != 0) {
    fail_msg("%s %s: %s", method, path_template, err);
  }
}

static void test_multi_segment_variables(void **state) {
  (void)state;
  http_route_table *table = new_table();
  add(table, "GET", "/files/{name=**}", "/test.S/File");
  add(table, "GET", "/v1/{name=shelves/*}/books", "/test.S/Books");
  add(table, "GET", "/v1/{name=shelves/*}", "/test.S/Shelf");
  add(table, "GET", "/raw/**", "/test.S/Raw");
  const http_route *file = expect_route(table, "GET", "/files/a/b/c",
                                        "/test.S/File", "name", "a/b/c");
  assert_string_equal(file->input_type, "test.Request");
  expect_route(table, "GET", "/files/a", "/test.S/File", "name", "a");
  expect_route(table, "GET", "/files", "/test.S/File", "name", "");
  expect_route(table, "GET", "/files/a%2Fb/c", "/test.S/File", "name",
               "a%2Fb/c");
  expect_route(table, "GET", "/raw/x/y", "/test.S/Raw", NULL, NULL);
  expect_route(table, "GET", "/v1/shelves/s1/books", "/test.S/Books", "name",
               "shelves/s1");
  expect_route(table, "GET", "/v1/shelves/s1", "/test.S/Shelf", "name",
               "shelves/s1");
  assert_int_equal(match(table, "GET", "/v1/other/s1/books").outcome,
                   HTTP_ROUTE_NOT_FOUND);
  found r = match(table, "GET", "/files/x");
  assert_true(r.bindings[0].multi_segment);
  r = match(table, "GET", "/v1/shelves/s1");
  assert_true(r.bindings[0].multi_segment);
  http_route_table_free(table);
}

static void test_nested_fields_and_verbs(void **state) {
  (void)state;
  http_route_table *table = new_table();
  add(table, "GET", "/v1/{a.b}/x/{c.d.e}", "/test.S/Nested");
  add(table, "GET", "/v1/things/{id}", "/test.S/Get");
  add(table, "POST", "/v1/things/{id}:frob", "/test.S/Frob");
  add(table, "GET", "/v1/things/special", "/test.S/Special");
  found r = match(table, "GET", "/v1/p/x/q");
  assert_int_equal(r.outcome, HTTP_ROUTE_FOUND);
  assert_int_equal(r.match.binding_count, 2);
  assert_string_equal(r.bindings[0].field_path, "a.b");
  assert_memory_equal(r.bindings[0].value, "p", 1);
  assert_false(r.bindings[0].multi_segment);
  assert_string_equal(r.bindings[1].field_path, "c.d.e");
  assert_memory_equal(r.bindings[1].value, "q", 1);
  expect_route(table, "POST", "/v1/things/7:frob", "/test.S/Frob", "id", "7");
  /* A literal wins over a variable. */
  expect_route(table, "GET", "/v1/things/special", "/test.S/Special", NULL,
               NULL);
  /* Without a route of that verb, the colon is part of the value. */
  expect_route(table, "GET", "/v1/things/7:other", "/test.S/Get", "id",
               "7:other");
  /* The verb's route is POST only, the plain one GET. */
  expect_route(table, "GET", "/v1/things/7:frob", "/test.S/Get", "id",
               "7:frob");
  expect_not_allowed(table, "DELETE", "/v1/things/7:frob", "POST,GET");
  http_route_table_free(table);
}

static void test_percent_decoding(void **state) {
  (void)state;
  static const struct {
    const char *in;
    http_percent_mode mode;
    const char *out; /* NULL: malformed */
  } cases[] = {
      {"a%2Fb%20c", HTTP_PERCENT_SEGMENT, "a/b c"},
      {"a%2fb/c%41", HTTP_PERCENT_MULTI_SEGMENT, "a%2fb/cA"},
      {"a+b%2B", HTTP_PERCENT_QUERY, "a b+"},
      {"a+b", HTTP_PERCENT_SEGMENT, "a+b"},
      {"%e2%82%ac", HTTP_PERCENT_SEGMENT, "\xe2\x82\xac"},
      {"%", HTTP_PERCENT_SEGMENT, NULL},
      {"%4", HTTP_PERCENT_SEGMENT, NULL},
      {"%zz", HTTP_PERCENT_QUERY, NULL},
      {"", HTTP_PERCENT_QUERY, ""},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char out[32];
    size_t len = 0;
    int rv = http_percent_decode(cases[i].in, strlen(cases[i].in),
                                 cases[i].mode, out, &len);
    if (cases[i].out == NULL) {
      assert_int_equal(rv, -1);
      continue;
    }
    assert_int_equal(rv, 0);
    assert_int_equal(len, strlen(cases[i].out));
    assert_memory_equal(out, cases[i].out, len);
  }
}

/* Adds first then second; the second must be refused, naming both RPCs
 * and both templates. */
static void expect_conflict(const char *first, const char *second) {
  http_route_table *table = new_table();
  add(table, "GET", first, "/test.S/First");
  http_route_spec spec = {.http_method = "GET",
                          .path_template = second,
                          .rpc_path = "/test.S/Second"};
  char err[512] = "";
  assert_int_equal(http_route_table_add(table, &spec, NULL, err, sizeof(err)),
                   -1);
  static const char *const named[] = {"/test.S/First", "/test.S/Second"};
  for (size_t i = 0; i < 2; i++) {
    assert_non_null(strstr(err, named[i]));
  }
  assert_non_null(strstr(err, first));
  assert_non_null(strstr(err, second));
  assert_int_equal(http_route_table_count(table), 1);
  http_route_table_free(table);
}

static void test_conflicts(void **state) {
  (void)state;
  expect_conflict("/jobs/{id}", "/jobs/{name}");
  expect_conflict("/jobs/{name}", "/jobs/{id}");
  expect_conflict("/x/{a=**}", "/x/**");
  expect_conflict("/x/{a}:go", "/x/*:go");
  expect_conflict("/v1/{name=shelves/*}", "/v1/shelves/{id}");
  /* Other methods, verbs or literals do not conflict. */
  http_route_table *table = new_table();
  add(table, "GET", "/jobs/{id}", "/test.S/A");
  add(table, "POST", "/jobs/{id}", "/test.S/B");
  add(table, "GET", "/jobs/{id}:go", "/test.S/C");
  add(table, "GET", "/jobs/fixed", "/test.S/D");
  add(table, "GET", "/jobs/{id}/{rest=**}", "/test.S/E");
  assert_int_equal(http_route_table_count(table), 5);
  http_route_table_free(table);
}

static void test_bad_templates(void **state) {
  (void)state;
  const char *bad[] = {
      "v1/x",     "/",         "/v1/{",       "/v1/{a",
      "/v1/{1a}", "/v1/**/x",  "/v1/{a={b}}", "/v1/{a}/{a}",
      "/v1/x:",   "/v1/x:a:b", "/v1//x",      "/v1/x/",
      "/v1/{a=}", "/v1/{a.}",  "/v1/x y",     NULL, /* too deep, below */
  };
  char deep[2 * HTTP_ROUTE_MAX_SEGMENTS + 8] = "";
  for (size_t i = 0; i <= HTTP_ROUTE_MAX_SEGMENTS; i++) {
    strcat(deep, "/x");
  }
  bad[sizeof(bad) / sizeof(bad[0]) - 1] = deep;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    http_route_table *table = new_table();
    http_route_spec spec = {.http_method = "GET",
                            .path_template = bad[i],
                            .rpc_path = "/test.S/Bad"};
    char err[512] = "";
    if (http_route_table_add(table, &spec, NULL, err, sizeof(err)) != -1) {
      fail_msg("template \"%s\" was accepted", bad[i]);
    }
    assert_non_null(strstr(err, "/test.S/Bad"));
    assert_non_null(strstr(err, bad[i]));
    http_route_table_free(table);
  }
}

static void test_million_matches(void **state) {
  const fixture *f = *state;
  static const char path[] = "/v1/jobs/123";
  http_route_binding bindings[HTTP_TEMPLATE_MAX_VARIABLES];
  http_route_match m;
  size_t found_count = 0;
  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (int i = 0; i < 1000000; i++) {
    found_count +=
        http_route_table_match(f->table, "GET", path, sizeof(path) - 1,
                               bindings, &m) == HTTP_ROUTE_FOUND;
  }
  clock_gettime(CLOCK_MONOTONIC, &end);
  assert_int_equal(found_count, 1000000);
  double seconds = (double)(end.tv_sec - start.tv_sec) +
                   (double)(end.tv_nsec - start.tv_nsec) / 1e9;
  printf("1000000 matches of GET %s: %.3f s (%.0f ns each)\n", path, seconds,
         seconds * 1e3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_jobs_routes),
      cmocka_unit_test(test_worker_and_legacy_routes),
      cmocka_unit_test(test_trailing_slash),
      cmocka_unit_test(test_method_not_allowed),
      cmocka_unit_test(test_not_found),
      cmocka_unit_test(test_unknown_service),
      cmocka_unit_test(test_million_matches),
      cmocka_unit_test(test_multi_segment_variables),
      cmocka_unit_test(test_nested_fields_and_verbs),
      cmocka_unit_test(test_percent_decoding),
      cmocka_unit_test(test_conflicts),
      cmocka_unit_test(test_bad_templates),
      cmocka_unit_test(test_pool_twice_conflicts),
  };
  return cmocka_run_group_tests(tests, set_up_jobhub, tear_down_jobhub);
}
