/* test_service_table.c: services and the route from ":path" to a method. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rpc/service_table.h"

static const rpc_method jobs_methods[] = {
    {.path = "/pkg.Jobs/Submit", .name = "Submit"},
    {.path = "/pkg.Jobs/Get", .name = "Get"},
};
static const rpc_service_desc jobs = {"pkg.Jobs", 2, jobs_methods};

static const rpc_method health_methods[] = {
    {.path = "/grpc.health.v1.Health/Check", .name = "Check"},
};
static const rpc_service_desc health = {"grpc.health.v1.Health", 1,
                                        health_methods};

static void test_routes_find_each_method_and_its_service(void **state) {
  (void)state;
  rpc_service_table table;
  rpc_service_table_init(&table);
  int jobs_user = 1, health_user = 2;
  assert_int_equal(rpc_service_table_add(&table, &jobs, "jobs", &jobs_user), 0);
  assert_int_equal(
      rpc_service_table_add(&table, &health, "health", &health_user), 0);
  assert_int_equal(rpc_service_table_build_routes(&table), 0);

  const rpc_route *route = rpc_service_table_find(&table, "/pkg.Jobs/Get");
  assert_non_null(route);
  assert_ptr_equal(route->method, &jobs_methods[1]);
  assert_ptr_equal(route->service->handlers, "jobs");
  assert_ptr_equal(route->service->user, &jobs_user);
  route = rpc_service_table_find(&table, "/grpc.health.v1.Health/Check");
  assert_non_null(route);
  assert_ptr_equal(route->service->user, &health_user);
  assert_null(rpc_service_table_find(&table, "/pkg.Jobs/Delete"));
  assert_null(rpc_service_table_find(&table, "/pkg.Jobs/Get/"));
  assert_null(rpc_service_table_find(&table, ""));
  rpc_service_table_free(&table);
}

static void test_a_service_is_added_once(void **state) {
  (void)state;
  rpc_service_table table;
  rpc_service_table_init(&table);
  assert_int_equal(rpc_service_table_add(&table, &jobs, NULL, NULL), 0);
  assert_int_equal(rpc_service_table_add(&table, &jobs, NULL, NULL), -1);
  assert_int_equal(table.service_count, 1);
  rpc_service_table_free(&table);
}

static void test_service_name_of_an_unknown_method(void **state) {
  (void)state;
  rpc_service_table table;
  rpc_service_table_init(&table);
  assert_int_equal(rpc_service_table_add(&table, &jobs, NULL, NULL), 0);
  assert_int_equal(rpc_service_table_build_routes(&table), 0);
  assert_string_equal(rpc_service_table_service_name(&table, "/pkg.Jobs/X"),
                      "pkg.Jobs");
  assert_null(rpc_service_table_service_name(&table, "/pkg.Job/X"));
  assert_null(rpc_service_table_service_name(&table, "/pkg.Jobs"));
  assert_null(rpc_service_table_service_name(&table, "pkg.Jobs/X"));
  assert_null(rpc_service_table_service_name(&table, NULL));
  rpc_service_table_free(&table);
}

/* Many methods: the table grows past 16 slots and every probe ends. */
static void test_many_methods_all_found(void **state) {
  (void)state;
  enum { COUNT = 100 };
  static char paths[COUNT][32];
  static rpc_method methods[COUNT];
  for (int i = 0; i < COUNT; i++) {
    snprintf(paths[i], sizeof(paths[i]), "/pkg.Many/M%d", i);
    methods[i] = (rpc_method){.path = paths[i], .name = paths[i] + 10};
  }
  const rpc_service_desc many = {"pkg.Many", COUNT, methods};
  rpc_service_table table;
  rpc_service_table_init(&table);
  assert_int_equal(rpc_service_table_add(&table, &many, NULL, NULL), 0);
  assert_int_equal(rpc_service_table_build_routes(&table), 0);
  assert_true(table.route_mask + 1 >= 2 * COUNT);
  for (int i = 0; i < COUNT; i++) {
    const rpc_route *route = rpc_service_table_find(&table, paths[i]);
    assert_non_null(route);
    assert_ptr_equal(route->method, &methods[i]);
  }
  rpc_service_table_free(&table);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_routes_find_each_method_and_its_service),
      cmocka_unit_test(test_a_service_is_added_once),
      cmocka_unit_test(test_service_name_of_an_unknown_method),
      cmocka_unit_test(test_many_methods_all_found),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
