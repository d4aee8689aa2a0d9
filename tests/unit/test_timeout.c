/* test_timeout.c: grpc-timeout parsing and formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rpc/timeout.h"

static void test_valid_values(void **state) {
  (void)state;
  static const struct {
    const char *text;
    uint64_t nanoseconds;
  } cases[] = {
      {"1n", 1},
      {"100u", 100000},
      {"250m", 250000000},
      {"5S", 5000000000u},
      {"2M", 120000000000u},
      {"1H", 3600000000000u},
      {"0m", 0},
      {"99999999S", 99999999000000000u},
      {"00000001m", 1000000},
      {"99999999H", UINT64_MAX}, /* saturates */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    uint64_t ns = 42;
    assert_int_equal(
        rpc_timeout_parse(cases[i].text, strlen(cases[i].text), &ns), 0);
    assert_true(ns == cases[i].nanoseconds);
  }
}

static void test_invalid_values(void **state) {
  (void)state;
  static const char *const cases[] = {
      "",    "m",   "100", "123456789m", "10x", "-5m",   "+5m",
      " 5m", "5m ", "5 m", "1.5S",       "5s",  "0x10m", "5mm",
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    uint64_t ns = 0;
    assert_int_equal(rpc_timeout_parse(cases[i], strlen(cases[i]), &ns), -1);
  }
}

static void test_format_picks_finest_unit_and_rounds_up(void **state) {
  (void)state;
  static const struct {
    uint64_t nanoseconds;
    const char *text;
  } cases[] = {
      {1, "1n"},
      {99999999, "99999999n"},
      {100000000, "100000u"},
      {100000001, "100001u"}, /* never shorter than asked */
      {5000000000u, "5000000u"},
      {200000000000000u, "200000S"},
      {UINT64_MAX, "5124096H"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char text[RPC_TIMEOUT_TEXT_SIZE];
    size_t len = rpc_timeout_format(cases[i].nanoseconds, text);
    assert_string_equal(text, cases[i].text);
    assert_int_equal(len, strlen(cases[i].text));
    uint64_t back;
    assert_int_equal(rpc_timeout_parse(text, len, &back), 0);
    assert_true(back >= cases[i].nanoseconds || back == UINT64_MAX);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_values),
      cmocka_unit_test(test_invalid_values),
      cmocka_unit_test(test_format_picks_finest_unit_and_rounds_up),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
